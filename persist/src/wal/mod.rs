//! The write-ahead log: records ([`record`]), segment files ([`segment`]), the writer ([`writer`]), the reader
//! ([`scan`]), a reader following a live writer ([`tail`]) and the directory's one-writer lock ([`lock`]).

pub mod lock;
pub mod prepare;
pub mod record;
pub mod scan;
pub mod segment;
pub mod tail;
pub mod truncate;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use lock::{DirLock, LockState};
pub use record::{decode, encode, Record, RecordError, RecordKind, RECORD_BYTES_MAX};
pub use scan::{scan_log, LogSummary, ScanOptions, TornTail, Visit};
pub use tail::Tail;
pub use writer::Wal;

use crate::error::WalError;
use crate::sys::{FlushKind, MapKind};

/// Where the durability point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityMode {
    /// The cache-line flush + `sfence` after each record (or burst). Durable only on a DAX filesystem that accepts
    /// `MAP_SYNC`; elsewhere it runs with the flushes and reports `durable_on_this_host = false`.
    Dax,
    /// Group commit: an aux thread `msync`s the dirty range and advances the commit index when it returns.
    Msync,
    /// No durability at all (benchmarks only; never a default).
    None,
}

impl DurabilityMode {
    pub fn name(self) -> &'static str {
        match self {
            DurabilityMode::Dax => "dax",
            DurabilityMode::Msync => "msync",
            DurabilityMode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<DurabilityMode> {
        match s {
            "dax" => Some(DurabilityMode::Dax),
            "msync" => Some(DurabilityMode::Msync),
            "none" => Some(DurabilityMode::None),
            _ => None,
        }
    }
}

/// Name of the environment variable that forces a flush instruction (`clflush` lets the WAL run under valgrind,
/// which cannot decode `clwb`/`clflushopt`).
pub const FLUSH_ENV: &str = "BOURSE_FLUSH";

/// Writer configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub mode: DurabilityMode,
    /// Size of each preallocated segment file, header included.
    pub segment_bytes: u64,
    /// Written into every record; bumped by a standby when it promotes itself.
    pub epoch: u32,
    /// Forces a flush instruction; `None` reads `BOURSE_FLUSH`, else picks the best by CPUID.
    pub flush: Option<FlushKind>,
    /// Touch every page of a new segment so appends never take a first-write page fault (dax and none modes; in
    /// msync mode it would dirty the whole segment for the first msync, so it is not done there).
    pub prefault: bool,
    /// How long the group-commit thread sleeps when there is nothing to sync.
    pub group_commit_idle: Duration,
    /// Keep the next segment prepared (preallocated, zero-filled in msync mode, mapped) by a background thread,
    /// handed over through a single-slot mailbox, so that rotating on the append path writes a header into
    /// memory and does no file I/O (see `prepare.rs`). Without it every rotation creates its segment inline.
    pub spare: bool,
    /// The directory's lock ([`DirLock`]) the writer holds for its life. `None`: [`Wal::create`] takes it. A caller
    /// that changes the directory before the writer exists (recovery zeroing a torn tail) takes it first and hands
    /// it over here, so the directory is never unlocked in between.
    pub lock: Option<DirLock>,
}

impl WalConfig {
    /// `msync` mode (the durable choice on hosts without DAX), 64 MiB segments, epoch 1.
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            mode: DurabilityMode::Msync,
            segment_bytes: 64 << 20,
            epoch: 1,
            flush: None,
            prefault: true,
            group_commit_idle: Duration::from_micros(20),
            spare: true,
            lock: None,
        }
    }

    /// The flush instruction: the explicit setting, else `BOURSE_FLUSH`, else the best the CPU has.
    pub fn flush_kind(&self) -> Result<FlushKind, WalError> {
        let chosen = match self.flush {
            Some(f) => f,
            None => match std::env::var(FLUSH_ENV) {
                Ok(v) => parse_flush(&v).ok_or_else(|| {
                    WalError::Config(format!("{FLUSH_ENV}={v}: expected clwb, clflushopt or clflush"))
                })?,
                Err(_) => FlushKind::detect(),
            },
        };
        if !chosen.supported() {
            return Err(WalError::Config(format!("this CPU cannot execute {}", chosen.name())));
        }
        Ok(chosen)
    }
}

/// Parses a flush instruction name.
pub fn parse_flush(s: &str) -> Option<FlushKind> {
    match s {
        "clwb" => Some(FlushKind::Clwb),
        "clflushopt" => Some(FlushKind::Clflushopt),
        "clflush" => Some(FlushKind::Clflush),
        _ => None,
    }
}

/// What the writer actually runs with. Reported by `bourse wal info` and the benchmarks; never silently changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalStatus {
    pub mode: DurabilityMode,
    pub map: MapKind,
    /// Why `MAP_SYNC` was refused, when it was asked for (dax mode) and refused.
    pub map_sync_refusal: Option<String>,
    pub flush: FlushKind,
    /// Whether an input is durable on this host when the commit index covers it.
    pub durable_on_this_host: bool,
}

impl WalStatus {
    pub fn map_name(&self) -> &'static str {
        match self.map {
            MapKind::Sync => "MAP_SHARED_VALIDATE|MAP_SYNC",
            MapKind::Shared => "MAP_SHARED",
        }
    }

    /// One log line on stderr saying what is in force; loud when dax was asked for and is not durable here.
    pub(crate) fn log(&self, dir: &Path) {
        if self.mode == DurabilityMode::Dax && !self.durable_on_this_host {
            eprintln!(
                "bourse-persist: WARNING: wal {}: mode dax requested but MAP_SYNC was refused ({}); running with {} \
                 flushes on {} — durable_on_this_host = false; use mode msync on this host",
                dir.display(),
                self.map_sync_refusal.as_deref().unwrap_or("unknown"),
                self.flush.name(),
                self.map_name(),
            );
        } else {
            eprintln!(
                "bourse-persist: wal {}: mode {}, mapping {}, flush {}, durable_on_this_host = {}",
                dir.display(),
                self.mode.name(),
                self.map_name(),
                self.flush.name(),
                self.durable_on_this_host
            );
        }
    }
}

/// What `mode` would run with in `dir` on this host, without creating a log: maps a scratch file the way the writer
/// would (`MAP_SYNC` attempted for dax) and reports the mapping, the flush instruction and durability.
pub fn probe(dir: &Path, mode: DurabilityMode) -> Result<WalStatus, WalError> {
    let mut cfg = WalConfig::new(dir);
    cfg.mode = mode;
    let flush = cfg.flush_kind()?;
    let path = dir.join(".bourse-probe.tmp");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| WalError::io(&path, "create probe file", e))?;
    let len = crate::sys::page_bytes();
    crate::sys::allocate(&file, len as u64).map_err(|e| WalError::io(&path, "preallocate probe file", e))?;
    let mapped = crate::sys::Mmap::map_shared(&file, len, mode == DurabilityMode::Dax);
    let _ = std::fs::remove_file(&path);
    let (map, refusal) = mapped.map_err(|e| WalError::Map { path: path.clone(), bytes: len as u64, source: e })?;
    Ok(WalStatus {
        mode,
        map: map.kind(),
        map_sync_refusal: refusal.map(|e| e.to_string()),
        flush,
        durable_on_this_host: match mode {
            DurabilityMode::Dax => map.kind() == MapKind::Sync,
            DurabilityMode::Msync => true,
            DurabilityMode::None => false,
        },
    })
}
