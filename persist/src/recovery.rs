//! Recovery: the newest valid snapshot, then the WAL records after it, through the same `Engine::apply` as live
//! traffic.
//!
//! 1. Snapshots are tried newest first. One that fails its checks (CRC, header, the engine's own restore checks) is
//!    reported in [`Recovery::skipped_snapshots`] and the next older one is tried; with none left, recovery starts
//!    from an empty engine.
//! 2. The log is scanned from `snapshot seq + 1` in seq order across segments (see [`crate::wal::scan`]): a gap or
//!    damage followed by valid records is an error; a torn tail ends the replay and is reported with file, offset
//!    and seq. With `truncate`, its bytes are zeroed (and synced) so it can never be replayed later.
//! 3. Recovering twice gives the same state: the second run finds the same records and no tail to truncate.
//!
//! [`recover_with`] also hands every event of every input replayed from the log to the caller, so state derived
//! from events (the market-data feed's sequence numbers and retransmission ring) can be rebuilt from the journal
//! exactly as the live run built it. Events of inputs folded into a snapshot are not available: a caller that needs
//! all of them must check [`Recovery::snapshot`].

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bourse_engine::{Capacity, Engine, Event, EventSink, Input};

use crate::error::WalError;
use crate::snapshot::{self, SnapshotError};
use crate::wal::record::KINDS_COUNT;
use crate::wal::scan::{scan_log, LogSummary, ScanOptions, TornTail, Visit};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: the log starts at seq {first_seq} but the state (snapshot) ends at seq {state_seq}: inputs {from}..{first_seq} are missing", from = state_seq + 1)]
    LogStartsLate { path: PathBuf, first_seq: u64, state_seq: u64 },
    #[error("{dir}: the log ends at seq {last_seq}, before the snapshot's seq {state_seq}")]
    LogBehindSnapshot { dir: PathBuf, last_seq: u64, state_seq: u64 },
}

/// What to recover and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryOptions {
    pub dir: PathBuf,
    pub capacity: Capacity,
    /// Zero a torn tail. `false` for read-only inspection (`bourse wal verify`). Set it only while holding the
    /// directory's [`crate::wal::DirLock`]: a live writer's record in flight looks exactly like a torn tail.
    pub truncate: bool,
    /// A writer may be appending: read up to the first invalid slot without judging it (no truncation).
    pub live: bool,
    /// Stop after this seq.
    pub upto_seq: Option<u64>,
    /// Start from the newest valid snapshot (else from an empty engine and the whole log).
    pub use_snapshots: bool,
}

impl RecoveryOptions {
    pub fn new(dir: impl Into<PathBuf>, capacity: Capacity) -> RecoveryOptions {
        RecoveryOptions { dir: dir.into(), capacity, truncate: true, live: false, upto_seq: None, use_snapshots: true }
    }
}

/// A snapshot that could not be used, and why.
#[derive(Debug)]
pub struct SkippedSnapshot {
    pub path: PathBuf,
    pub error: SnapshotError,
}

/// The result of recovery.
pub struct Recovery {
    pub engine: Engine,
    /// The snapshot recovery started from.
    pub snapshot: Option<(PathBuf, u64)>,
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Records applied from the log.
    pub replayed: u64,
    /// Records applied per kind (`RecordKind as usize - 1`).
    pub replayed_per_kind: [u64; KINDS_COUNT],
    /// The torn tail found (and zeroed when `truncated`).
    pub torn: Option<TornTail>,
    pub truncated: bool,
    pub log: LogSummary,
}

impl Recovery {
    /// Seq of the last input in the recovered state: the writer continues at `last_seq() + 1`.
    pub fn last_seq(&self) -> u64 {
        self.engine.last_seq()
    }
}

/// Recovers the engine from `opts.dir`.
pub fn recover(opts: &RecoveryOptions) -> Result<Recovery, RecoveryError> {
    recover_with(opts, &mut |_: &Input, _: &Event| {})
}

/// An event sink that hands each event of the input being applied, with that input, to an observer: how
/// recovery and a following standby rebuild state derived from events (the market-data feed).
pub struct Observe<'a, F> {
    pub input: &'a Input,
    pub observe: &'a mut F,
}

impl<F: FnMut(&Input, &Event)> EventSink for Observe<'_, F> {
    fn event(&mut self, event: &Event) {
        (self.observe)(self.input, event);
    }
}

/// [`recover`], calling `observe(input, event)` for every event of every input replayed from the log, in the order
/// the engine emits them (the order the live pipeline saw). Inputs that emit nothing are not observed; inputs
/// before the starting snapshot ([`Recovery::snapshot`]) are not replayed, so their events are not observed either.
pub fn recover_with<F: FnMut(&Input, &Event)>(
    opts: &RecoveryOptions,
    observe: &mut F,
) -> Result<Recovery, RecoveryError> {
    let mut skipped = Vec::new();
    let mut start = None;
    if opts.use_snapshots {
        for (seq, path) in snapshot::list_snapshots(&opts.dir)? {
            if matches!(opts.upto_seq, Some(upto) if seq > upto) {
                continue;
            }
            match snapshot::load(&path) {
                Ok(engine) => {
                    start = Some((engine, path, seq));
                    break;
                }
                Err(error) => skipped.push(SkippedSnapshot { path, error }),
            }
        }
    }
    let (mut engine, snapshot) = match start {
        Some((engine, path, seq)) => (engine, Some((path, seq))),
        None => (Engine::new(opts.capacity), None),
    };
    let state_seq = engine.last_seq();
    let upto = opts.upto_seq.unwrap_or(u64::MAX);
    let mut replayed = 0u64;
    let mut per_kind = [0u64; KINDS_COUNT];
    let mut first_visited: Option<(PathBuf, u64)> = None;
    let scan = ScanOptions { from_seq: state_seq + 1, live: opts.live };
    let log = scan_log(&opts.dir, scan, |path, _offset, record| {
        let seq = record.input.seq;
        if seq > upto {
            return Visit::Stop;
        }
        if first_visited.is_none() {
            first_visited = Some((path.to_path_buf(), seq));
            if seq != state_seq + 1 {
                return Visit::Stop;
            }
        }
        engine.apply(&record.input, &mut Observe { input: &record.input, observe: &mut *observe });
        replayed += 1;
        per_kind[record.kind as usize - 1] += 1;
        Visit::Continue
    })?;
    if let Some((path, first_seq)) = first_visited {
        if first_seq != state_seq + 1 {
            return Err(RecoveryError::LogStartsLate { path, first_seq, state_seq });
        }
    } else if let (Some(first), Some(seg)) = (log.first_seq, log.segments.first()) {
        // Nothing to replay: the log must still not start beyond the state.
        if first > state_seq + 1 {
            return Err(RecoveryError::LogStartsLate { path: seg.path.clone(), first_seq: first, state_seq });
        }
        if matches!(log.last_seq, Some(last) if last < state_seq) && !opts.live {
            return Err(RecoveryError::LogBehindSnapshot {
                dir: opts.dir.clone(),
                last_seq: log.last_seq.unwrap_or(0),
                state_seq,
            });
        }
    }
    let torn = if opts.live { None } else { log.torn.clone() };
    let mut truncated = false;
    if let (Some(t), true) = (&torn, opts.truncate) {
        zero_range(&t.path, t.offset, t.dirty_end)?;
        truncated = true;
    }
    Ok(Recovery {
        engine,
        snapshot,
        skipped_snapshots: skipped,
        replayed,
        replayed_per_kind: per_kind,
        torn,
        truncated,
        log,
    })
}

/// Zeroes a torn tail's bytes and syncs the segment (what [`recover`] does with `truncate`).
pub fn truncate_torn_tail(torn: &TornTail) -> Result<(), WalError> {
    zero_range(&torn.path, torn.offset, torn.dirty_end)
}

/// Zeroes `[from, to)` of a segment with ordinary writes and syncs it, so a torn record can never be replayed.
fn zero_range(path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| WalError::io(path, "open segment to truncate", e))?;
    let zeros = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at).map_err(|e| WalError::io(path, "zero torn tail", e))?;
        at += n as u64;
    }
    file.sync_data().map_err(|e| WalError::io(path, "fdatasync after truncation", e))
}
