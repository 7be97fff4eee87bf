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
use crate::wal::record::{Record, KINDS_COUNT};
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
    #[error("{path} offset {offset}: the state machine refused the record: {error}")]
    Refused { path: PathBuf, offset: u64, error: ApplyError },
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

/// The deterministic state machine the journal feeds: the engine alone (operator tools), or the appliance's
/// whole exchange state (engine, reply streams, market-data numbering). Recovery, snapshots and the standby's
/// follower work over this trait, each through one code path.
pub trait Replicated: Sized {
    /// Seq of the last input applied.
    fn last_seq(&self) -> u64;
    /// Applies the next journaled record (`record.input.seq == last_seq() + 1`).
    fn apply_record(&mut self, record: &Record) -> Result<(), ApplyError>;
}

/// A record the state machine refused: replay cannot continue past it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("input seq {found} is not the next one (expected {expected})")]
    OutOfSequence { expected: u64, found: u64 },
    #[error("input seq {seq}: {why}")]
    Refused { seq: u64, why: String },
}

impl Replicated for Engine {
    fn last_seq(&self) -> u64 {
        Engine::last_seq(self)
    }

    fn apply_record(&mut self, record: &Record) -> Result<(), ApplyError> {
        check_next(self.last_seq(), record.input.seq)?;
        self.apply(&record.input, &mut bourse_engine::NullSink);
        Ok(())
    }
}

/// The input contract: `found` must be exactly the seq after `last`.
pub fn check_next(last: u64, found: u64) -> Result<(), ApplyError> {
    if found == last + 1 {
        Ok(())
    } else {
        Err(ApplyError::OutOfSequence { expected: last + 1, found })
    }
}

/// The result of recovery.
pub struct Recovered<M> {
    pub state: M,
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

impl<M: Replicated> Recovered<M> {
    /// Seq of the last input in the recovered state: the writer continues at `last_seq() + 1`.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq()
    }
}

/// The engine-only recovery the operator tools use.
pub type Recovery = Recovered<Engine>;

/// Recovers the engine from `opts.dir`.
pub fn recover(opts: &RecoveryOptions) -> Result<Recovery, RecoveryError> {
    let capacity = opts.capacity;
    recover_state(opts, || Engine::new(capacity), |path, _seq| snapshot::load(path))
}

/// An event sink that hands each event of the input being applied, with that input, to an observer.
pub struct Observe<'a, F> {
    pub input: &'a Input,
    pub observe: &'a mut F,
}

impl<F: FnMut(&Input, &Event)> EventSink for Observe<'_, F> {
    fn event(&mut self, event: &Event) {
        (self.observe)(self.input, event);
    }
}

/// The engine with an observer of its events, as a [`Replicated`] machine.
struct Observed<'a, 'b, F> {
    engine: Engine,
    observe: &'a std::cell::RefCell<&'b mut F>,
}

impl<F: FnMut(&Input, &Event)> Replicated for Observed<'_, '_, F> {
    fn last_seq(&self) -> u64 {
        self.engine.last_seq()
    }

    fn apply_record(&mut self, record: &Record) -> Result<(), ApplyError> {
        check_next(self.engine.last_seq(), record.input.seq)?;
        let mut observe = self.observe.borrow_mut();
        self.engine.apply(&record.input, &mut Observe { input: &record.input, observe: &mut **observe });
        Ok(())
    }
}

/// [`recover`], calling `observe(input, event)` for every event of every input replayed from the log, in the order
/// the engine emits them. Inputs before the starting snapshot are not replayed, so their events are not observed.
pub fn recover_with<F: FnMut(&Input, &Event)>(
    opts: &RecoveryOptions,
    observe: &mut F,
) -> Result<Recovery, RecoveryError> {
    let capacity = opts.capacity;
    // Both closures hand the observer to the machine they build; only one of them ever runs.
    let observe = std::cell::RefCell::new(observe);
    let r = recover_state(
        opts,
        || Observed { engine: Engine::new(capacity), observe: &observe },
        |path, _seq| snapshot::load(path).map(|engine| Observed { engine, observe: &observe }),
    )?;
    Ok(Recovered {
        state: r.state.engine,
        snapshot: r.snapshot,
        skipped_snapshots: r.skipped_snapshots,
        replayed: r.replayed,
        replayed_per_kind: r.replayed_per_kind,
        torn: r.torn,
        truncated: r.truncated,
        log: r.log,
    })
}

/// Recovers any [`Replicated`] machine: the newest snapshot `restore` accepts (newest first; one it refuses is
/// reported and the next older tried), else `fresh()`, then every record after it through `apply_record`, the one
/// path live traffic and the standby's follower take too.
pub fn recover_state<M: Replicated>(
    opts: &RecoveryOptions,
    fresh: impl FnOnce() -> M,
    mut restore: impl FnMut(&Path, u64) -> Result<M, SnapshotError>,
) -> Result<Recovered<M>, RecoveryError> {
    if opts.truncate && !opts.live {
        // A segment a crashed writer had started under its private name holds committed records (see
        // `wal::prepare`): recovery, which may write, puts it in place first.
        crate::wal::prepare::adopt_prepared(&opts.dir)?;
    }
    let mut skipped = Vec::new();
    let mut start = None;
    if opts.use_snapshots {
        for (seq, path) in snapshot::list_snapshots(&opts.dir)? {
            if matches!(opts.upto_seq, Some(upto) if seq > upto) {
                continue;
            }
            match restore(&path, seq) {
                Ok(state) => {
                    start = Some((state, path, seq));
                    break;
                }
                Err(error) => skipped.push(SkippedSnapshot { path, error }),
            }
        }
    }
    let (mut state, snapshot) = match start {
        Some((state, path, seq)) => (state, Some((path, seq))),
        None => (fresh(), None),
    };
    let state_seq = state.last_seq();
    let upto = opts.upto_seq.unwrap_or(u64::MAX);
    let mut replayed = 0u64;
    let mut per_kind = [0u64; KINDS_COUNT];
    let mut first_visited: Option<(PathBuf, u64)> = None;
    let mut refused: Option<(PathBuf, u64, ApplyError)> = None;
    let scan = ScanOptions { from_seq: state_seq + 1, live: opts.live };
    let log = scan_log(&opts.dir, scan, |path, offset, record| {
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
        if let Err(e) = state.apply_record(record) {
            refused = Some((path.to_path_buf(), offset as u64, e));
            return Visit::Stop;
        }
        replayed += 1;
        per_kind[record.kind.index()] += 1;
        Visit::Continue
    })?;
    if let Some((path, offset, error)) = refused {
        return Err(RecoveryError::Refused { path, offset, error });
    }
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
    Ok(Recovered {
        state,
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
