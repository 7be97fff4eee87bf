//! Snapshots in production, and retiring the segments they make unnecessary.
//!
//! A snapshot is taken by a *read-only follower of this node's own log* on its own thread: it recovers the exchange
//! state from the newest snapshot plus the committed log after it (through the read-only mappings recovery uses,
//! in live mode, never judging or truncating the tail the writer is appending to) and writes the state at the
//! committed seq. The pipeline never pauses for it. After each snapshot, the newest `wal.snapshots_keep` are kept
//! and every segment wholly before the oldest kept one is retired by `wal.retire` (archive, delete or keep), so
//! the WAL directory stays bounded and recovery replays only what follows a snapshot.
//!
//! What retirement gives up: a standby further behind than the oldest kept snapshot can no longer be caught up
//! from this node's segments (the mirror fails naming the missing segment). Re-seed such a standby by copying this
//! node's newest snapshot and the segments after it into its WAL directory, then start it; or keep segments
//! (`retire = "keep"`/`"archive"` and copy from the archive).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bourse_persist::recovery::recover_state;
use bourse_persist::snapshot;
use bourse_persist::wal::segment::list_segments;
use bourse_persist::{CommitIndex, RecoveryOptions};

use super::setup;
use crate::config::{Config, Retire};

/// What the snapshotter did, for the stats exporter (each event is also logged): nothing it passes over, refuses or
/// falls short of is silent.
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    /// Snapshots written and verified.
    pub taken: AtomicU64,
    /// Attempts that failed (reported; retried at the next interval).
    pub failed: AtomicU64,
    /// Snapshot files recovery could not restore and passed over for an older one.
    pub skipped: AtomicU64,
    /// Snapshots written that did not restore to the state they were taken from: removed, nothing pruned for them.
    pub unverified: AtomicU64,
    /// Snapshots that reached less than the committed seq asked for (the newest segment not yet under its final
    /// name): valid, at an earlier seq.
    pub short: AtomicU64,
    /// Segments retired by `wal.retire`.
    pub segments_retired: AtomicU64,
}

/// Snapshots the exchange state of `dir` at `upto_seq` (committed) without touching the log; returns the new
/// snapshot's path and seq, or `None` when the newest snapshot is already there.
///
/// The snapshot is read back and restored before anything is pruned: it must restore, and restore to the very
/// bytes it was taken from. One that does not is removed and the attempt fails, so pruning and retirement only ever
/// rest on snapshots recovery can use.
pub fn take(
    config: &Config,
    dir: &Path,
    upto_seq: u64,
    counters: &SnapshotCounters,
) -> anyhow::Result<Option<(PathBuf, u64)>> {
    let mut opts = RecoveryOptions::new(dir, config.engine_capacity());
    opts.truncate = false;
    opts.live = true;
    opts.upto_seq = Some(upto_seq);
    let fresh = setup::new_exchange(config)?;
    let r = recover_state(&opts, || fresh, |path, seq| setup::load_exchange(config, path, seq))
        .with_context(|| format!("replaying {} for a snapshot", dir.display()))?;
    for s in &r.skipped_snapshots {
        counters.skipped.fetch_add(1, Ordering::Relaxed);
        eprintln!("bourse: warning: snapshot {} does not restore, passed over: {}", s.path.display(), s.error);
    }
    if r.replayed == 0 && r.snapshot.is_some() {
        return Ok(None);
    }
    let seq = r.state.last_seq();
    if seq < upto_seq {
        counters.short.fetch_add(1, Ordering::Relaxed);
        eprintln!("bourse: note: snapshot reaches seq {seq} of the committed {upto_seq} (the newest segment is not renamed yet)");
    }
    let mut payload = Vec::new();
    r.state.snapshot(&mut payload);
    let path = snapshot::write_snapshot(dir, seq, &payload)?;
    if let Err(e) = verify(config, &path, seq, &payload) {
        counters.unverified.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::remove_file(&path);
        return Err(e.context(format!("snapshot {} removed, nothing pruned", path.display())));
    }
    snapshot::prune(dir, config.wal.snapshots_keep)?;
    counters.taken.fetch_add(1, Ordering::Relaxed);
    Ok(Some((path, seq)))
}

/// Reads the snapshot at `path` back as recovery would and checks it restores to exactly `payload`.
fn verify(config: &Config, path: &Path, seq: u64, payload: &[u8]) -> anyhow::Result<()> {
    let restored = setup::load_exchange(config, path, seq).context("the snapshot just written does not restore")?;
    let mut again = Vec::with_capacity(payload.len());
    restored.snapshot(&mut again);
    if again != payload {
        let at = again.iter().zip(payload).position(|(a, b)| a != b).unwrap_or(again.len().min(payload.len()));
        anyhow::bail!(
            "{}: restores to another state (the encodings differ from payload byte {at}; {} vs {} bytes)",
            path.display(),
            again.len(),
            payload.len()
        );
    }
    Ok(())
}

/// Retires, by `policy`, every segment of `dir` whose records all lie at or before the oldest kept snapshot that
/// `restorable` accepts; returns what it retired. With no restorable snapshot nothing is retired, so the log alone
/// can still rebuild the state; and a newer snapshot that turns out damaged falls back to an older one whose
/// segments are all still there. The newest segment is never retired.
pub fn retire(
    dir: &Path,
    policy: Retire,
    mut restorable: impl FnMut(&Path, u64) -> bool,
) -> anyhow::Result<Vec<PathBuf>> {
    if policy == Retire::Keep {
        return Ok(Vec::new());
    }
    let snapshots = snapshot::list_snapshots(dir)?;
    // Oldest first: the first that restores bounds what may go.
    let Some(oldest) = snapshots.iter().rev().find(|(seq, path)| restorable(path, *seq)).map(|(seq, _)| *seq) else {
        return Ok(Vec::new());
    };
    let segments = list_segments(dir)?;
    let mut retired = Vec::new();
    for pair in segments.windows(2) {
        // Segment i holds seqs first_i .. first_{i+1} - 1: all covered by the snapshot when first_{i+1} <= oldest + 1.
        if pair[1].first_seq > oldest + 1 {
            break;
        }
        let path = &pair[0].path;
        match policy {
            Retire::Delete => {
                std::fs::remove_file(path).with_context(|| format!("deleting retired segment {}", path.display()))?
            }
            Retire::Archive => {
                let archive = dir.join("archive");
                std::fs::create_dir_all(&archive).with_context(|| format!("creating {}", archive.display()))?;
                let to = archive.join(path.file_name().context("segment file name")?);
                std::fs::rename(path, &to).with_context(|| format!("archiving {} to {}", path.display(), to.display()))?;
            }
            Retire::Keep => unreachable!(),
        }
        retired.push(path.clone());
    }
    Ok(retired)
}

/// [`retire`] for the appliance: a snapshot counts when [`setup::load_exchange`] restores it.
pub fn retire_restorable(config: &Config, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    retire(dir, config.wal.retire, |path, seq| setup::load_exchange(config, path, seq).is_ok())
}

/// Runs the snapshotter until `stop`: every `wal.snapshot_every_records` committed inputs, a snapshot and
/// retirement. Failures are reported and retried at the next interval; the appliance keeps serving (the log is
/// intact, recovery only takes longer).
pub fn spawn(
    config: &Config,
    dir: &Path,
    commit: Arc<CommitIndex>,
    counters: Arc<SnapshotCounters>,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let every = config.wal.snapshot_every_records;
    if every == 0 {
        return None;
    }
    let (config, dir) = (config.clone(), dir.to_path_buf());
    let start = commit.committed();
    std::thread::Builder::new()
        .name("bourse-snapshot".into())
        .spawn(move || {
            let mut last = start;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let committed = commit.committed();
                if committed < last + every {
                    continue;
                }
                match take(&config, &dir, committed, &counters).and_then(|s| Ok((s, retire_restorable(&config, &dir)?))) {
                    Ok((Some((path, seq)), retired)) => {
                        last = seq;
                        counters.segments_retired.fetch_add(retired.len() as u64, Ordering::Relaxed);
                        eprintln!(
                            "bourse: snapshot at seq {seq} ({}); {} segment(s) retired ({:?})",
                            path.display(),
                            retired.len(),
                            config.wal.retire
                        );
                    }
                    Ok((None, retired)) => {
                        counters.segments_retired.fetch_add(retired.len() as u64, Ordering::Relaxed);
                        last = committed;
                    }
                    Err(e) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("bourse: warning: snapshot at seq {committed} failed: {e:#}");
                        last = committed;
                    }
                }
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bourse_engine::{Command, NewOrder, OrderKind, Side, TimeInForce};

    use super::*;
    use crate::appliance::setup::build_pipeline;
    use crate::demo::{demo_config, TempDir};
    use crate::obs::tsc::Clock;

    fn order(i: u32) -> Command {
        let side = if i % 3 == 2 { Side::Sell } else { Side::Buy };
        Command::NewOrder(NewOrder {
            session: (i % 2) as u16,
            user_ref: i + 1,
            account: i % 2,
            symbol: 0,
            side,
            kind: OrderKind::Limit,
            tif: if side == Side::Sell { TimeInForce::Ioc } else { TimeInForce::Day },
            post_only: false,
            qty: 10 + i % 7,
            price: if side == Side::Sell { 1_499_800 } else { 1_500_000 - (i % 5) * 100 },
            stop_price: 0,
        })
    }

    /// Everything a firm or a feed handler could ask for, to compare two recoveries.
    fn observable(x: &crate::appliance::exchange::Exchange) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for s in 0..2u16 {
            for seq in x.oldest_reply_sequence(s)..x.next_reply_sequence(s) {
                out.push(x.reply(s, seq).unwrap_or_default().to_vec());
            }
        }
        for seq in 1..x.next_market_sequence() {
            out.push(x.market(seq).unwrap_or_default().to_vec());
        }
        let mut engine = Vec::new();
        x.engine().snapshot(&mut engine);
        out.push(engine);
        out
    }

    /// Waits until every segment the writer started has its final name, so a live reader sees all that is committed.
    fn settle(wal: &bourse_persist::Wal) {
        let t = std::time::Instant::now();
        while !wal.renames_settled() {
            assert!(t.elapsed() < Duration::from_secs(10), "segment renames did not finish");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn snapshot_plus_tail_recovers_what_the_whole_log_does_and_retirement_bounds_the_directory() {
        let wal = TempDir::new("bourse-snapshots").unwrap();
        let mut config = demo_config(wal.path(), "msync", None).unwrap();
        config.wal.segment_bytes = 16 << 10;
        config.wal.retire = Retire::Delete;
        let clock = Clock::calibrate(Duration::from_millis(5));
        let (mut p, _exporter, _) = build_pipeline(&config, clock).unwrap();
        let counters = SnapshotCounters::default();
        let mut max_segments = 0;
        for round in 0..6u32 {
            for i in 0..400 {
                p.submit(order(round * 400 + i)).unwrap();
            }
            assert!(p.commit.wait_for(p.last_seq(), Duration::from_secs(10)));
            settle(&p.wal);
            let (_, seq) = take(&config, wal.path(), p.last_seq(), &counters).unwrap().expect("a new snapshot");
            assert_eq!(seq, p.last_seq());
            retire_restorable(&config, wal.path()).unwrap();
            max_segments = max_segments.max(list_segments(wal.path()).unwrap().len());
        }
        let expected = observable(&p.exchange);
        let last = p.last_seq();
        p.wal.close().unwrap();
        assert_eq!(counters.taken.load(Ordering::Relaxed), 6);
        for (name, c) in [("skipped", &counters.skipped), ("unverified", &counters.unverified), ("short", &counters.short)] {
            assert_eq!(c.load(Ordering::Relaxed), 0, "{name}");
        }
        assert_eq!(snapshot::list_snapshots(wal.path()).unwrap().len(), config.wal.snapshots_keep);
        // 2,400 orders fill well over 10 segments of 16 KiB; retirement keeps only those after the oldest snapshot.
        assert!(max_segments <= 8, "{max_segments} segments kept");

        let journal = setup::open_journal(&config, wal.path()).unwrap();
        assert!(journal.started.snapshot_seq.is_some(), "recovery starts from the newest snapshot");
        assert_eq!(journal.exchange.last_seq(), last);
        assert_eq!(observable(&journal.exchange), expected, "snapshot + tail = the live state");
        drop(journal);

        // A damaged newest snapshot: the next older one is used, and the state is the same.
        let snaps = snapshot::list_snapshots(wal.path()).unwrap();
        let mut bytes = std::fs::read(&snaps[0].1).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        std::fs::write(&snaps[0].1, &bytes).unwrap();
        let journal = setup::open_journal(&config, wal.path()).unwrap();
        assert_eq!(journal.started.snapshot_seq, Some(snaps[1].0));
        assert_eq!(observable(&journal.exchange), expected);
    }

    /// A log of `rounds` × 100 orders with a snapshot after each round; returns the pipeline's last seq.
    fn snapshotted_log(config: &Config, dir: &Path, rounds: u32, counters: &SnapshotCounters) -> u64 {
        let clock = Clock::calibrate(Duration::from_millis(5));
        let (mut p, _exporter, _) = build_pipeline(config, clock).unwrap();
        for round in 0..rounds {
            for i in 0..100 {
                p.submit(order(round * 100 + i)).unwrap();
            }
            assert!(p.commit.wait_for(p.last_seq(), Duration::from_secs(10)));
            settle(&p.wal);
            take(config, dir, p.last_seq(), counters).unwrap().expect("a new snapshot");
        }
        let last = p.last_seq();
        p.wal.close().unwrap();
        last
    }

    fn damage(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        std::fs::write(path, &bytes).unwrap();
    }

    /// Retirement rests only on snapshots that restore: with every kept snapshot damaged nothing is retired and the
    /// whole log still rebuilds the state; with the oldest damaged, the newest bounds it. A damaged snapshot passed
    /// over by the snapshotter is counted.
    #[test]
    fn retirement_never_removes_segments_a_restorable_snapshot_or_the_log_alone_still_needs() {
        let wal = TempDir::new("bourse-retire-restorable").unwrap();
        let mut config = demo_config(wal.path(), "msync", None).unwrap();
        config.wal.segment_bytes = 16 << 10;
        config.wal.retire = Retire::Delete;
        let counters = SnapshotCounters::default();
        let last = snapshotted_log(&config, wal.path(), 8, &counters);
        let segments = list_segments(wal.path()).unwrap().len();
        assert!(segments >= 4, "{segments} segments: rotations happened");
        let snaps = snapshot::list_snapshots(wal.path()).unwrap();
        assert_eq!(snaps.len(), 2);

        for (_, path) in &snaps {
            damage(path);
        }
        assert!(retire_restorable(&config, wal.path()).unwrap().is_empty(), "no snapshot restores: keep the log");
        assert_eq!(list_segments(wal.path()).unwrap().len(), segments);
        let journal = setup::open_journal(&config, wal.path()).unwrap();
        assert_eq!(journal.started.snapshot_seq, None, "both snapshots refused: the whole log replayed");
        assert_eq!(journal.exchange.last_seq(), last);
        drop(journal);

        // The snapshotter passes the damaged ones over, counts them, and writes a good one from the log.
        let (_, seq) = take(&config, wal.path(), last, &counters).unwrap().expect("a snapshot from the whole log");
        assert_eq!(seq, last);
        assert_eq!(counters.skipped.load(Ordering::Relaxed), 2);
        // Kept now: the new snapshot and one damaged one, which must not bound retirement. (Opening the journal
        // started a segment at `last + 1`.)
        let before = list_segments(wal.path()).unwrap().len();
        let retired = retire_restorable(&config, wal.path()).unwrap();
        assert_eq!(retired.len(), before - 1, "all but the newest segment lie before the only good snapshot");
        let journal = setup::open_journal(&config, wal.path()).unwrap();
        assert_eq!(journal.started.snapshot_seq, Some(last));
        assert_eq!(journal.exchange.last_seq(), last);
    }

    /// `take` reads back what it wrote: a payload that does not restore to itself is refused (and nothing pruned).
    #[test]
    fn a_snapshot_that_does_not_restore_to_its_own_bytes_is_refused() {
        let wal = TempDir::new("bourse-snapshot-verify").unwrap();
        let config = demo_config(wal.path(), "msync", None).unwrap();
        let counters = SnapshotCounters::default();
        let last = snapshotted_log(&config, wal.path(), 1, &counters);
        let (seq, path) = snapshot::list_snapshots(wal.path()).unwrap().remove(0);
        assert_eq!(seq, last);
        let (_, payload) = snapshot::read_snapshot(&path).unwrap();
        verify(&config, &path, seq, &payload).unwrap();
        let mut other = payload.clone();
        other.push(0);
        let e = verify(&config, &path, seq, &other).unwrap_err();
        assert!(format!("{e:#}").contains("restores to another state"), "{e:#}");
        damage(&path);
        let e = verify(&config, &path, seq, &payload).unwrap_err();
        assert!(format!("{e:#}").contains("does not restore"), "{e:#}");
    }
}
