//! Recovery: snapshots + WAL replay through `Engine::apply`, torn tails, fallbacks, idempotency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bourse_engine::{Capacity, Engine, Event, Input, NullSink};
use bourse_persist::recovery::RecoveryError;
use bourse_persist::snapshot;
use bourse_persist::workload::Workload;
use bourse_persist::{recover, recover_with, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

const CAP: Capacity = Capacity::SMALL;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn inputs(seed: u64, from: u64, to: u64) -> Vec<Input> {
    let mut w = Workload::new(seed);
    (1..=to).map(|s| w.next(s)).filter(|i| i.seq >= from).collect()
}

fn append(dir: &Path, first: u64, batch: &[Input]) {
    let mut cfg = WalConfig::new(dir);
    cfg.segment_bytes = 32 * 1024;
    cfg.mode = DurabilityMode::Msync;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, first - 1));
    let mut wal = Wal::create(cfg, first, Arc::clone(&commit)).unwrap();
    for i in batch {
        wal.append(i).unwrap();
    }
    let last = first + batch.len() as u64 - 1;
    assert!(commit.wait_for(last, Duration::from_secs(10)));
    wal.close().unwrap();
}

fn fresh_hash(seed: u64, upto: u64) -> u64 {
    let mut e = Engine::new(CAP);
    for i in inputs(seed, 1, upto) {
        e.apply(&i, &mut NullSink);
    }
    e.state_hash()
}

#[test]
fn replay_from_the_log_alone_matches_a_fresh_engine() {
    let dir = tempdir("plain");
    append(&dir, 1, &inputs(1, 1, 3_000));
    let r = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    assert_eq!((r.replayed, r.last_seq()), (3_000, 3_000));
    assert!(r.snapshot.is_none() && r.torn.is_none());
    assert_eq!(r.state.state_hash(), fresh_hash(1, 3_000));
    r.state.check_invariants().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `(input seq, input timestamp, event)` for every event a fresh engine emits over inputs `from..=to`.
fn fresh_events(seed: u64, from: u64, to: u64) -> Vec<(u64, u64, Event)> {
    let mut e = Engine::new(CAP);
    let mut out = Vec::new();
    for i in inputs(seed, 1, to) {
        let mut events: Vec<Event> = Vec::new();
        e.apply(&i, &mut events);
        if i.seq >= from {
            out.extend(events.into_iter().map(|ev| (i.seq, i.timestamp, ev)));
        }
    }
    out
}

#[test]
fn recover_with_observes_the_live_events_in_order_and_none_folded_into_a_snapshot() {
    let dir = tempdir("observe");
    append(&dir, 1, &inputs(5, 1, 1_500));
    let mut seen = Vec::new();
    let r = recover_with(&RecoveryOptions::new(&dir, CAP), &mut |i: &Input, e: &Event| {
        seen.push((i.seq, i.timestamp, *e))
    })
    .unwrap();
    assert_eq!(r.last_seq(), 1_500);
    assert!(seen.len() > 1_500, "the workload emits events ({})", seen.len());
    assert_eq!(seen, fresh_events(5, 1, 1_500));

    // From a snapshot, only the inputs after it are replayed and observed.
    snapshot::take_from_log(&dir, CAP, None, 3).unwrap().unwrap();
    append(&dir, 1_501, &inputs(5, 1_501, 1_700));
    seen.clear();
    let r = recover_with(&RecoveryOptions::new(&dir, CAP), &mut |i: &Input, e: &Event| {
        seen.push((i.seq, i.timestamp, *e))
    })
    .unwrap();
    assert_eq!(r.snapshot.as_ref().map(|s| s.1), Some(1_500));
    assert_eq!(seen, fresh_events(5, 1_501, 1_700));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_then_tail_and_a_bad_snapshot_falls_back() {
    let dir = tempdir("snap");
    append(&dir, 1, &inputs(2, 1, 1_000));
    let first = snapshot::take_from_log(&dir, CAP, None, 3).unwrap().unwrap();
    append(&dir, 1_001, &inputs(2, 1_001, 2_000));
    let second = snapshot::take_from_log(&dir, CAP, None, 3).unwrap().unwrap();
    append(&dir, 2_001, &inputs(2, 2_001, 2_500));
    let want = fresh_hash(2, 2_500);

    let r = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    assert_eq!(r.snapshot.as_ref().map(|s| s.1), Some(2_000));
    assert_eq!(r.replayed, 500);
    assert_eq!(r.state.state_hash(), want);

    // Corrupt the newest snapshot's payload: recovery reports it and starts from the older one.
    let mut bytes = std::fs::read(&second).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&second, &bytes).unwrap();
    let r = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    assert_eq!(r.skipped_snapshots.len(), 1);
    assert_eq!(r.skipped_snapshots[0].path, second);
    assert!(r.skipped_snapshots[0].error.to_string().contains("crc"), "{}", r.skipped_snapshots[0].error);
    assert_eq!(r.snapshot.as_ref().map(|s| (s.0.clone(), s.1)), Some((first, 1_000)));
    assert_eq!(r.replayed, 1_500);
    assert_eq!(r.state.state_hash(), want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torn_tail_is_truncated_recovery_is_idempotent_and_the_writer_continues() {
    let dir = tempdir("torn");
    append(&dir, 1, &inputs(3, 1, 800));
    // Tear record 800: zero its crc|length word as if the header store never happened, leaving the body.
    let mut hit = None;
    bourse_persist::wal::scan_log(&dir, Default::default(), |path, offset, rec| {
        if rec.input.seq == 800 {
            hit = Some((path.to_path_buf(), offset));
        }
        bourse_persist::wal::Visit::Continue
    })
    .unwrap();
    let (path, offset) = hit.unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset..offset + 8].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let r1 = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    let torn = r1.torn.clone().unwrap();
    assert_eq!((torn.path.clone(), torn.offset as usize, torn.seq), (path.clone(), offset, 800));
    assert!(r1.truncated);
    assert_eq!(r1.last_seq(), 799);
    assert_eq!(r1.state.state_hash(), fresh_hash(3, 799));
    let r2 = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    assert!(r2.torn.is_none(), "the tail was zeroed");
    assert_eq!(r2.state.state_hash(), r1.state.state_hash());

    // The writer resumes at 800 in a new segment; the log stays continuous.
    append(&dir, 800, &inputs(3, 800, 900));
    let r3 = recover(&RecoveryOptions::new(&dir, CAP)).unwrap();
    assert_eq!(r3.last_seq(), 900);
    assert_eq!(r3.state.state_hash(), fresh_hash(3, 900));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_that_starts_after_the_state_is_an_error() {
    let dir = tempdir("late");
    append(&dir, 1, &inputs(4, 1, 2_000));
    // Segments only: the directory also holds the writer's LOCK file.
    let mut segs: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension() == Some("seg".as_ref())).collect();
    segs.sort();
    std::fs::remove_file(&segs[0]).unwrap();
    match recover(&RecoveryOptions::new(&dir, CAP)) {
        Err(RecoveryError::LogStartsLate { state_seq: 0, .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("recovered from a log missing its start"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
