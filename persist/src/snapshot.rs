//! Snapshots: the engine's state ([`Engine::snapshot`]) in `snap-<seq:020>.snap`, with a checksummed header.
//!
//! ```text
//!  0        8         12         16      24         32            36           40        64
//!  +--------+---------+----------+-------+----------+-------------+------------+---------+------------------+
//!  | magic  | version | reserved | seq   | length   | payload crc | header crc | zero    | payload (length) |
//!  +--------+---------+----------+-------+----------+-------------+------------+---------+------------------+
//! ```
//!
//! Written to `….snap.tmp`, fsynced, renamed, and the directory fsynced: a snapshot under its final name is complete
//! or its CRC says otherwise. The newest `keep` are kept.
//!
//! **Where snapshots are taken.** Never on the pipeline core, and without pausing the writer: a *replaying reader*
//! ([`take_from_log`]) builds its own engine from the newest snapshot plus the WAL (read through its own read-only
//! mapping, in live mode, up to a seq the caller knows to be committed) and snapshots that engine. It runs on the
//! aux core or on the standby, which replays anyway. We chose this over a forked child because `fork` of a process
//! with a busy-polling pinned thread and large mappings costs page-table copies and copy-on-write faults on the hot
//! path's memory — exactly the pause we want to avoid — while replay at ≥ 10 M records/s keeps the reader close
//! behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bourse_engine::{Capacity, Engine};
use bytemuck::{Pod, Zeroable};

use crate::recovery::{recover, RecoveryError, RecoveryOptions};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"BOURSNAP";
pub const SNAPSHOT_VERSION: u32 = 1;
pub const SNAPSHOT_HEADER_BYTES: usize = 64;

#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
#[repr(C)]
pub struct SnapshotHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub reserved: u32,
    pub seq: u64,
    pub length: u64,
    pub payload_crc: u32,
    pub header_crc: u32,
}
const _: () = assert!(core::mem::size_of::<SnapshotHeader>() == 40);
const _: () = assert!(core::mem::size_of::<SnapshotHeader>() <= SNAPSHOT_HEADER_BYTES);

impl SnapshotHeader {
    fn crc(&self) -> u32 {
        crc32c::crc32c(&bytemuck::bytes_of(self)[..36])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {op}: {source}")]
    Io { path: PathBuf, op: &'static str, source: io::Error },
    #[error("{path} offset {offset}: {what}")]
    BadHeader { path: PathBuf, offset: u64, what: String },
    #[error("{path} offset {SNAPSHOT_HEADER_BYTES}: payload is {found} bytes, header says {expected} (truncated)")]
    Truncated { path: PathBuf, expected: u64, found: u64 },
    #[error("{path} offset {SNAPSHOT_HEADER_BYTES}: payload crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    PayloadCrc { path: PathBuf, stored: u32, computed: u32 },
    #[error("{path}: the engine refused the snapshot: {error:?}")]
    Restore { path: PathBuf, error: bourse_engine::SnapshotError },
    #[error("{path}: the state machine refused the snapshot: {why}")]
    State { path: PathBuf, why: String },
    #[error("{path}: header seq {header} but the restored engine is at seq {engine}")]
    SeqMismatch { path: PathBuf, header: u64, engine: u64 },
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> SnapshotError {
    SnapshotError::Io { path: path.to_path_buf(), op, source }
}

/// `snap-<seq:020>.snap`
pub fn snapshot_file_name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Snapshot files of `dir`, newest (highest seq) first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, "read directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, "read directory", e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(out)
}

/// Writes `payload` as the snapshot at `seq` (temp file, fsync, rename, directory fsync) and returns its path.
pub fn write_snapshot(dir: &Path, seq: u64, payload: &[u8]) -> Result<PathBuf, SnapshotError> {
    let path = dir.join(snapshot_file_name(seq));
    let tmp = path.with_extension("snap.tmp");
    let mut header = SnapshotHeader {
        magic: SNAPSHOT_MAGIC,
        version: SNAPSHOT_VERSION,
        reserved: 0,
        seq,
        length: payload.len() as u64,
        payload_crc: crc32c::crc32c(payload),
        header_crc: 0,
    };
    header.header_crc = header.crc();
    let mut head = [0u8; SNAPSHOT_HEADER_BYTES];
    head[..40].copy_from_slice(bytemuck::bytes_of(&header));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, "create snapshot", e))?;
    file.write_all(&head).map_err(|e| io_err(&tmp, "write snapshot header", e))?;
    file.write_all(payload).map_err(|e| io_err(&tmp, "write snapshot payload", e))?;
    file.sync_all().map_err(|e| io_err(&tmp, "fsync snapshot", e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, "rename snapshot into place", e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "fsync directory", e))?;
    Ok(path)
}

/// Snapshots `engine` at its `last_seq` into `dir`, then keeps only the newest `keep` snapshots.
pub fn take(dir: &Path, engine: &Engine, keep: usize) -> Result<PathBuf, SnapshotError> {
    let mut payload = Vec::new();
    engine.snapshot(&mut payload);
    let path = write_snapshot(dir, engine.last_seq(), &payload)?;
    prune(dir, keep)?;
    Ok(path)
}

/// Removes all but the newest `keep` snapshots (at least one is always kept); returns what was removed.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut removed = Vec::new();
    for (_, path) in list_snapshots(dir)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&path).map_err(|e| io_err(&path, "remove old snapshot", e))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Reads and checks a snapshot file: returns its seq and payload.
pub fn read_snapshot(path: &Path) -> Result<(u64, Vec<u8>), SnapshotError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, "read snapshot", e))?;
    let bad = |offset: u64, what: String| SnapshotError::BadHeader { path: path.to_path_buf(), offset, what };
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(bad(0, format!("file is {} bytes, shorter than the header", bytes.len())));
    }
    let h: SnapshotHeader = bytemuck::pod_read_unaligned(&bytes[..40]);
    if h.magic != SNAPSHOT_MAGIC {
        return Err(bad(0, format!("wrong magic {:02x?}", h.magic)));
    }
    if h.version != SNAPSHOT_VERSION {
        return Err(bad(8, format!("unsupported version {} (this build reads {SNAPSHOT_VERSION})", h.version)));
    }
    if h.crc() != h.header_crc {
        return Err(bad(36, "header crc mismatch".into()));
    }
    let payload = &bytes[SNAPSHOT_HEADER_BYTES..];
    if payload.len() as u64 != h.length {
        return Err(SnapshotError::Truncated { path: path.to_path_buf(), expected: h.length, found: payload.len() as u64 });
    }
    let computed = crc32c::crc32c(payload);
    if computed != h.payload_crc {
        return Err(SnapshotError::PayloadCrc { path: path.to_path_buf(), stored: h.payload_crc, computed });
    }
    Ok((h.seq, payload.to_vec()))
}

/// Composite payloads: the engine's snapshot followed by the state of a machine built around it (the appliance's
/// exchange: reply streams, market-data numbering).
///
/// ```text
///  0        8              16                 16 + n
///  +--------+--------------+------------------+----------------------+
///  | magic  | engine bytes | engine snapshot  | the rest (opaque)    |
///  |BCOMP001|  n (u64 LE)  |                  |                      |
///  +--------+--------------+------------------+----------------------+
/// ```
///
/// The engine comes first so that tools which know only the engine ([`load`]) read the same files.
pub mod composite {
    pub const MAGIC: [u8; 8] = *b"BCOMP001";

    /// Writes a composite payload into `out`.
    pub fn write(engine: &[u8], rest: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(engine.len() as u64).to_le_bytes());
        out.extend_from_slice(engine);
        out.extend_from_slice(rest);
    }

    /// The engine part and the rest, or `None` when `payload` is not a (well-formed) composite.
    pub fn split(payload: &[u8]) -> Option<(&[u8], &[u8])> {
        let body = payload.strip_prefix(&MAGIC[..])?;
        let n = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
        let body = &body[8..];
        let n = usize::try_from(n).ok().filter(|&n| n <= body.len())?;
        Some(body.split_at(n))
    }
}

/// The engine's snapshot within a payload: all of it, or the engine part of a [`composite`].
pub fn engine_part(payload: &[u8]) -> &[u8] {
    match composite::split(payload) {
        Some((engine, _)) => engine,
        None => payload,
    }
}

/// Reads, checks and restores a snapshot into an engine (the engine part of a composite snapshot).
pub fn load(path: &Path) -> Result<Engine, SnapshotError> {
    let (seq, payload) = read_snapshot(path)?;
    let engine = Engine::restore(engine_part(&payload))
        .map_err(|error| SnapshotError::Restore { path: path.to_path_buf(), error })?;
    if engine.last_seq() != seq {
        return Err(SnapshotError::SeqMismatch { path: path.to_path_buf(), header: seq, engine: engine.last_seq() });
    }
    Ok(engine)
}

/// The replaying reader: rebuilds the engine from the newest snapshot and the WAL up to `upto_seq` (a seq the
/// caller knows is committed; `None` for a log with no live writer), without touching the log, and snapshots it.
/// Returns the new snapshot's path, or `None` when the log holds nothing newer than the newest snapshot.
pub fn take_from_log(
    dir: &Path,
    capacity: Capacity,
    upto_seq: Option<u64>,
    keep: usize,
) -> Result<Option<PathBuf>, RecoveryError> {
    let mut opts = RecoveryOptions::new(dir, capacity);
    opts.truncate = false;
    opts.live = upto_seq.is_some();
    opts.upto_seq = upto_seq;
    let recovered = recover(&opts)?;
    if recovered.replayed == 0 && recovered.snapshot.is_some() {
        return Ok(None);
    }
    Ok(Some(take(dir, &recovered.state, keep)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bourse-snap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_read_and_detect_damage() {
        let dir = tempdir("rw");
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let path = write_snapshot(&dir, 42, &payload).unwrap();
        assert_eq!(path.file_name().unwrap(), "snap-00000000000000000042.snap");
        assert_eq!(read_snapshot(&path).unwrap(), (42, payload.clone()));

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SNAPSHOT_HEADER_BYTES + 500] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read_snapshot(&path), Err(SnapshotError::PayloadCrc { .. })));

        bytes.truncate(SNAPSHOT_HEADER_BYTES + 10);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read_snapshot(&path), Err(SnapshotError::Truncated { .. })));

        bytes[0] = b'X';
        std::fs::write(&path, &bytes).unwrap();
        let err = read_snapshot(&path).unwrap_err().to_string();
        assert!(err.contains("magic") && err.contains("snap-00000000000000000042.snap"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempdir("prune");
        for seq in [5, 1, 9, 3] {
            write_snapshot(&dir, seq, &[1, 2, 3]).unwrap();
        }
        let removed = prune(&dir, 2).unwrap();
        assert_eq!(removed.len(), 2);
        let left: Vec<u64> = list_snapshots(&dir).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(left, vec![9, 5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
