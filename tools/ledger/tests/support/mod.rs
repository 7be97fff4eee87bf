//! Journals with real trades for the ledger tests: the seeded workload (`bourse_persist::workload`) appended to a
//! real WAL through the appliance's writer, with sequencer time spread over given trading days.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bourse_engine::{Capacity, Engine, Event, EventSink};
use bourse_ledger::store::{Store, Val};
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_bourse-ledger");

/// 14:30 UTC on a day, in nanoseconds since the epoch.
pub fn day_ns(date: &str) -> u64 {
    let d = bourse_ledger::calendar::parse_date(date).unwrap();
    let days = (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as u64;
    days * 86_400_000_000_000 + 14 * 3_600_000_000_000 + 30 * 60_000_000_000
}

/// What a test journal holds.
pub struct Journal {
    pub dir: PathBuf,
    pub inputs: u64,
    /// Executions a fresh engine fed the same inputs reports.
    pub trades: u64,
}

struct Count(u64);
impl EventSink for Count {
    fn event(&mut self, e: &Event) {
        if matches!(e, Event::Executed { .. }) {
            self.0 += 1;
        }
    }
}

/// Writes `inputs` workload inputs (seed `seed`) into a fresh WAL at `dir`, the trading spread evenly over
/// `days` (setup on the first).
pub fn write_journal(dir: &Path, seed: u64, inputs: u64, days: &[&str]) -> Journal {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg = WalConfig::new(dir);
    cfg.mode = DurabilityMode::Msync;
    cfg.segment_bytes = 1 << 18; // several segments, so the follower crosses segment boundaries
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
    let mut w = Workload::new(seed);
    let mut engine = Engine::new(Capacity::SMALL);
    let mut count = Count(0);
    for seq in 1..=inputs {
        let input = journal_input(&mut w, seq, inputs, days);
        wal.append_unfenced(&input).unwrap();
        engine.apply(&input, &mut count);
        if seq % 64 == 0 || seq == inputs {
            wal.fence();
            assert!(commit.wait_for(seq, Duration::from_secs(30)));
        }
    }
    wal.close().unwrap();
    Journal { dir: dir.to_path_buf(), inputs, trades: count.0 }
}

/// The workload's input `seq` of `inputs`, its time moved onto `days` (spread evenly).
pub fn journal_input(w: &mut Workload, seq: u64, inputs: u64, days: &[&str]) -> bourse_engine::Input {
    let mut input = w.next(seq);
    let day = ((seq - 1) * days.len() as u64 / inputs) as usize;
    input.timestamp = day_ns(days[day]) + seq * 1_000;
    input
}

pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-ledger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn ledger(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c
}

/// Runs the ledger to completion; panics with its output unless it exits 0.
pub fn run_ok(args: &[&str]) -> String {
    let out = ledger(args).output().unwrap();
    assert!(
        out.status.success(),
        "bourse-ledger {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the ledger and SIGKILLs it after `delay`; returns true when it was killed before finishing.
pub fn kill_after(args: &[&str], delay: Duration) -> bool {
    let mut child: Child = ledger(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(delay);
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    !finished && !status.success()
}

/// Every table's rows in key order: two databases with equal dumps hold the same books.
pub fn dump(s: &mut dyn Store) -> Vec<(String, Vec<Vec<Val>>)> {
    let tables = [
        ("journal_position", "id"),
        ("accounts", "account"),
        ("positions", "account, symbol"),
        ("trades", "match_number"),
        ("obligations", "id"),
        ("transfers", "id"),
        ("entries", "transfer_id, line"),
        ("settlements", "id"),
    ];
    tables
        .iter()
        .map(|(t, key)| (t.to_string(), s.query(&format!("SELECT * FROM {t} ORDER BY {key}"), &[]).unwrap()))
        .collect()
}

/// A small deterministic generator for kill delays (SplitMix64, as the workload's).
pub fn rng(seed: u64) -> bourse_persist::workload::Rng {
    bourse_persist::workload::Rng::new(seed)
}

/// A journal written from explicit inputs (timestamps given).
pub fn write_inputs(dir: &Path, inputs: &[bourse_engine::Input]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg = WalConfig::new(dir);
    cfg.mode = DurabilityMode::Msync;
    cfg.segment_bytes = 1 << 18;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
    for i in inputs {
        wal.append_unfenced(i).unwrap();
    }
    wal.fence();
    assert!(commit.wait_for(inputs.len() as u64, Duration::from_secs(30)));
    wal.close().unwrap();
}
