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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bourse_persist::recovery::recover_state;
use bourse_persist::snapshot;
use bourse_persist::wal::segment::list_segments;
use bourse_persist::{CommitIndex, RecoveryOptions};

use super::setup;
use crate::config::{Config, Retire};

/// Snapshots the exchange state of `dir` at `upto_seq` (committed) without touching the log; returns the new
/// snapshot's path and seq, or `None` when the newest snapshot is already there.
pub fn take(config: &Config, dir: &Path, upto_seq: u64) -> anyhow::Result<Option<(PathBuf, u64)>> {
    let mut opts = RecoveryOptions::new(dir, config.engine_capacity());
    opts.truncate = false;
    opts.live = true;
    opts.upto_seq = Some(upto_seq);
    let fresh = setup::new_exchange(config)?;
    let r = recover_state(&opts, || fresh, |path, seq| setup::load_exchange(config, path, seq))
        .with_context(|| format!("replaying {} for a snapshot", dir.display()))?;
    if r.replayed == 0 && r.snapshot.is_some() {
        return Ok(None);
    }
    let seq = r.state.last_seq();
    let mut payload = Vec::new();
    r.state.snapshot(&mut payload);
    let path = snapshot::write_snapshot(dir, seq, &payload)?;
    snapshot::prune(dir, config.wal.snapshots_keep)?;
    Ok(Some((path, seq)))
}

/// Retires, by `policy`, every segment of `dir` whose records all lie at or before the oldest kept snapshot;
/// returns what it retired. The newest segment is never retired.
pub fn retire(dir: &Path, policy: Retire) -> anyhow::Result<Vec<PathBuf>> {
    if policy == Retire::Keep {
        return Ok(Vec::new());
    }
    let Some(oldest) = snapshot::list_snapshots(dir)?.last().map(|(seq, _)| *seq) else {
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

/// Runs the snapshotter until `stop`: every `wal.snapshot_every_records` committed inputs, a snapshot and
/// retirement. Failures are reported and retried at the next interval; the appliance keeps serving (the log is
/// intact, recovery only takes longer).
pub fn spawn(config: &Config, dir: &Path, commit: Arc<CommitIndex>, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
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
                match take(&config, &dir, committed).and_then(|s| Ok((s, retire(&dir, config.wal.retire)?))) {
                    Ok((Some((path, seq)), retired)) => {
                        last = seq;
                        eprintln!(
                            "bourse: snapshot at seq {seq} ({}); {} segment(s) retired ({:?})",
                            path.display(),
                            retired.len(),
                            config.wal.retire
                        );
                    }
                    Ok((None, _)) => last = committed,
                    Err(e) => {
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

    #[test]
    fn snapshot_plus_tail_recovers_what_the_whole_log_does_and_retirement_bounds_the_directory() {
        let wal = TempDir::new("bourse-snapshots").unwrap();
        let mut config = demo_config(wal.path(), "msync", None).unwrap();
        config.wal.segment_bytes = 16 << 10;
        config.wal.retire = Retire::Delete;
        let clock = Clock::calibrate(Duration::from_millis(5));
        let (mut p, _exporter, _) = build_pipeline(&config, clock).unwrap();
        let mut max_segments = 0;
        for round in 0..6u32 {
            for i in 0..400 {
                p.submit(order(round * 400 + i)).unwrap();
            }
            assert!(p.commit.wait_for(p.last_seq(), Duration::from_secs(10)));
            let (_, seq) = take(&config, wal.path(), p.last_seq()).unwrap().expect("a new snapshot");
            assert_eq!(seq, p.last_seq());
            retire(wal.path(), config.wal.retire).unwrap();
            max_segments = max_segments.max(list_segments(wal.path()).unwrap().len());
        }
        let expected = observable(&p.exchange);
        let last = p.last_seq();
        p.wal.close().unwrap();
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
}
