//! Errors of the WAL layer. Every variant that concerns a file names it, and the offset when there is one.

use std::io;
use std::path::PathBuf;

use crate::wal::lock::describe_holder;
use crate::wal::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {op}: {source}")]
    Io { path: PathBuf, op: &'static str, source: io::Error },
    #[error("{path}: disk full: cannot preallocate {bytes} bytes (ENOSPC)")]
    DiskFull { path: PathBuf, bytes: u64 },
    #[error("{path}: cannot map {bytes} bytes: {source}")]
    Map { path: PathBuf, bytes: u64, source: io::Error },
    #[error("{path} offset {offset}: bad segment header: {what}")]
    BadHeader { path: PathBuf, offset: u64, what: String },
    #[error("{path} offset {offset}: corrupt record where seq {seq} was expected ({reason}); a valid record follows at offset {next_valid}, so this is damage inside the log, not a torn tail")]
    CorruptRecord { path: PathBuf, offset: u64, seq: u64, reason: RecordError, next_valid: u64 },
    #[error("{path} offset {offset}: sequence gap: expected seq {expected}, found {found}")]
    SeqGap { path: PathBuf, offset: u64, expected: u64, found: u64 },
    #[error("{path} offset {offset}: epoch went backwards: {found} after {previous}")]
    EpochBackwards { path: PathBuf, offset: u64, previous: u32, found: u32 },
    #[error("{path} offset {offset}: torn record (seq {seq}) is followed by segment {next} holding records")]
    TornNotLast { path: PathBuf, offset: u64, seq: u64, next: PathBuf },
    #[error("append out of order: seq {found} given, {expected} expected")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("invalid WAL configuration: {0}")]
    Config(String),
    #[error("group commit failed, the commit index is frozen: {0}")]
    SyncFailed(String),
    /// Another writer holds the directory's lock ([`crate::wal::lock::DirLock`]).
    #[error("{dir}: the WAL directory is in use by {}; stop it first", describe_holder(*pid))]
    Locked { dir: PathBuf, pid: Option<u32> },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> WalError {
        WalError::Io { path: path.into(), op, source }
    }
}
