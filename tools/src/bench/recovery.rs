//! `bourse bench recovery`: start-up time of the exchange state from a long log, with and without a snapshot.
//!
//! Writes `--records` seeded inputs (orders and replaces journaled with their echo, as the appliance journals
//! them), then times three recoveries through `Exchange::apply`: the whole log from seq 1, the newest snapshot
//! (taken `--tail` records before the end) plus the log after it, and reports records/s, the time from the
//! snapshot, and the bytes on disk before and after retiring the segments the snapshot covers. Both recoveries
//! must reach the same state (compared by the hash of a snapshot of each); the hash is printed.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use bourse_engine::{Capacity, Command};
use bourse_nic::wire::alpha::{Alpha, Symbol};
use bourse_persist::recovery::recover_state;
use bourse_persist::wal::record::ECHO_BYTES;
use bourse_persist::workload::{Workload, ACCOUNTS, SYMBOLS};
use bourse_persist::{snapshot, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

use bourse_appliance::appliance::exchange::{Exchange, ExchangeLimits};
use bourse_appliance::appliance::snapshots;
use bourse_appliance::config::Retire;
use bourse_appliance::translate::{TranslateLimits, Translator};

#[derive(clap::Args, Debug)]
pub struct RecoveryArgs {
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Records after the snapshot (the tail replayed on top of it).
    #[arg(long, default_value_t = 100_000)]
    pub tail: u64,
    /// Directory for the scratch log (a fresh subdirectory is created and removed).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

const CAPACITY: Capacity = Capacity::SMALL;

fn exchange() -> Exchange {
    let names: Vec<Symbol> = (0..SYMBOLS).map(|i| Alpha::new(&format!("SYM{i}")).expect("short name")).collect();
    let sessions = ACCOUNTS as u16;
    let translator = Translator::new(&names, TranslateLimits { sessions_max: sessions, records_max: 1 << 14 });
    Exchange::new(CAPACITY, translator, ExchangeLimits { sessions, ..ExchangeLimits::DEFAULT }, &[])
}

fn restore(path: &Path) -> Result<Exchange, snapshot::SnapshotError> {
    let (_, payload) = snapshot::read_snapshot(path)?;
    let names: Vec<Symbol> = (0..SYMBOLS).map(|i| Alpha::new(&format!("SYM{i}")).expect("short name")).collect();
    let sessions = ACCOUNTS as u16;
    let translator = Translator::new(&names, TranslateLimits { sessions_max: sessions, records_max: 1 << 14 });
    Exchange::restore(&payload, translator, ExchangeLimits { sessions, ..ExchangeLimits::DEFAULT }, &[])
        .map_err(|why| snapshot::SnapshotError::State { path: path.to_path_buf(), why })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn state_hash(x: &Exchange) -> u64 {
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() uses fixed keys: the same bytes hash the same in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

pub fn run(args: RecoveryArgs) -> anyhow::Result<()> {
    ensure!(args.tail < args.records, "--tail {} must be below --records {}", args.tail, args.records);
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("bourse-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spinner = bourse_appliance::progress::spinner("bench recovery: writing the log, then recovering it");
    let result = measure(&args, &dir);
    spinner.finish_and_clear();
    let _ = std::fs::remove_dir_all(&dir);
    let v = result?;
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

fn measure(args: &RecoveryArgs, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let mut cfg = WalConfig::new(dir);
    cfg.mode = DurabilityMode::None;
    cfg.segment_bytes = 256 << 20;
    {
        let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
        let mut wal = Wal::create(cfg, 1, commit).context("creating the scratch log")?;
        let mut w = Workload::new(42);
        let mut echo = [b' '; ECHO_BYTES];
        echo[14..20].copy_from_slice(b"B0YAN\0");
        for seq in 1..=args.records {
            let input = w.next(seq);
            let echoed = matches!(input.command, Command::NewOrder(_) | Command::Replace(_));
            wal.append_entry_unfenced(&input, echoed.then_some(&echo))?;
        }
        wal.close()?;
    }
    let log_bytes = dir_bytes(dir);
    let mut opts = RecoveryOptions::new(dir, CAPACITY);
    opts.truncate = false;

    // The snapshot, taken `tail` records before the end (not timed).
    let snap_seq = args.records - args.tail;
    let mut upto = opts.clone();
    upto.upto_seq = Some(snap_seq);
    upto.use_snapshots = false;
    let at = recover_state(&upto, exchange, |p, _| restore(p))?;
    let mut payload = Vec::new();
    at.state.snapshot(&mut payload);
    snapshot::write_snapshot(dir, snap_seq, &payload)?;
    drop(at);

    let mut whole = opts.clone();
    whole.use_snapshots = false;
    let t = Instant::now();
    let full = recover_state(&whole, exchange, |p, _| restore(p))?;
    let full_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let from_snap = recover_state(&opts, exchange, |p, _| restore(p))?;
    let snap_s = t.elapsed().as_secs_f64();
    ensure!(from_snap.snapshot.is_some(), "recovery did not use the snapshot");
    let (a, b) = (state_hash(&full.state), state_hash(&from_snap.state));
    ensure!(a == b, "snapshot + tail reached another state than the whole log ({a:016x} vs {b:016x})");

    // Retention: what the directory keeps once the segments the snapshot covers are retired.
    let retired = snapshots::retire(dir, Retire::Delete, |p, _| restore(p).is_ok())?;
    let kept_bytes = dir_bytes(dir);
    Ok(serde_json::json!({
        "records": args.records,
        "tail": args.tail,
        "full_replay_ms": (full_s * 1e3 * 100.0).round() / 100.0,
        "full_replay_records_per_s": (full.replayed as f64 / full_s).round(),
        "from_snapshot_ms": (snap_s * 1e3 * 100.0).round() / 100.0,
        "from_snapshot_replayed": from_snap.replayed,
        "snapshot_bytes": payload.len(),
        "log_bytes": log_bytes,
        "segments_retired": retired.len(),
        "bytes_kept_after_retirement": kept_bytes,
        "state_hash": format!("{a:016x}"),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_run_agrees_and_reports() {
        let dir = std::env::temp_dir().join(format!("bourse-bench-recovery-test-{}", std::process::id()));
        let args = super::RecoveryArgs { records: 20_000, tail: 2_000, dir: None, json: true };
        let v = super::measure(&args, &dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(v["from_snapshot_replayed"], 2_000);
        assert!(v["full_replay_records_per_s"].as_f64().unwrap() > 0.0);
    }
}
