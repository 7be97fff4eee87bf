//! Segments built ahead of need, so that rotation on the pipeline thread does no file I/O.
//!
//! ```text
//!   preparer thread                                   writer (pipeline thread)
//!   ───────────────                                   ────────────────────────
//!   create wal-prep-<pid>-<n>.seg.prep,               rotate(): take() the slot (try_lock; empty or busy →
//!   preallocate (+ zero-fill in msync mode),                    the old inline path, counted)
//!   mmap it (+ prefault off msync)                              write the header into the mapping (memory)
//!   slot = Some(prepared) ───── single-slot mailbox ──▶         hand (private name, final name) back
//!   rename private → wal-<first seq>.seg, fsync dir ◀── renames ─┘
//!   build the next one
//! ```
//!
//! Between the rotation and the rename, the new segment's records live in a file under its private name. A crash
//! then leaves a `.seg.prep` file whose header names its first seq: [`adopt_prepared`] (run by recovery and by
//! [`super::Wal::create`], both under the directory's lock) renames such a file into place, and removes prepared
//! files that were never used (no valid header). The mirror's reader follows the writer by file name, so it picks
//! the segment up once renamed, a few microseconds to milliseconds after the rotation.
//!
//! **Renames happen in seq order.** A rotation that finds nothing prepared creates its segment inline, and that
//! segment must not appear under its final name while an earlier one still waits for its rename: a reader of the
//! directory would see `wal-<a>.seg` end, then `wal-<c>.seg`, with `wal-<b>.seg` missing in between — a gap, which
//! a live reader (the snapshotter, the mirror) reports as damage and recovery from an older snapshot cannot cross.
//! So every rename, the preparer's batch and the inline one alike, happens under one lock, and the inline path
//! first does the renames still queued ([`Preparer::rename_in_order`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::segment::{list_segments, segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES};
use super::{DurabilityMode, WalConfig};
use crate::error::WalError;
use crate::sys::Mmap;

/// Suffix of a prepared segment's private name: neither a segment name nor the old spare's.
pub const PREPARED_SUFFIX: &str = ".seg.prep";
/// Renames the writer may hand back before the preparer catches up (rotations faster than one rename apart).
const RENAMES_MAX: usize = 64;

/// A segment file created, preallocated and mapped, with no header yet.
pub(crate) struct Prepared {
    pub file: File,
    pub map: Mmap,
    pub path: PathBuf,
}

struct Shared {
    slot: Mutex<Option<Prepared>>,
    renames: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Held across every batch of renames, so segments appear under their final names in seq order.
    order: Mutex<()>,
    /// Tests only: the thread does nothing while set (a preparer descheduled under load, made deterministic).
    hold: AtomicBool,
    wake: Condvar,
    stop: AtomicBool,
    /// Rotations that found no prepared segment and built one inline.
    inline_rotations: AtomicU64,
    /// The last build or rename failure, for the operator.
    failure: Mutex<Option<String>>,
}

/// The preparer: its thread and the mailbox the writer takes segments from.
pub(crate) struct Preparer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Starts the thread, which builds the first segment at once.
    pub fn start(config: &WalConfig) -> Result<Preparer, WalError> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(None),
            renames: Mutex::new(Vec::with_capacity(RENAMES_MAX)),
            order: Mutex::new(()),
            hold: AtomicBool::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            inline_rotations: AtomicU64::new(0),
            failure: Mutex::new(None),
        });
        // Without the lock: the preparer only works under the writer's, and must not make it outlive the writer.
        let config = WalConfig { lock: None, ..config.clone() };
        let dir = config.dir.clone();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wal-prepare".into())
            .spawn(move || run(&config, &thread_shared))
            .map_err(|e| WalError::io(&dir, "spawn the segment preparer", e))?;
        Ok(Preparer { shared, thread: Some(thread) })
    }

    /// The prepared segment, if one is ready and nobody holds the mailbox: never waits.
    pub fn take(&self) -> Option<Prepared> {
        let taken = self.shared.slot.try_lock().ok()?.take();
        if taken.is_some() {
            self.shared.wake.notify_one();
        }
        taken
    }

    /// Whether a prepared segment is waiting (never waits; a busy mailbox reads as "not yet").
    pub fn ready(&self) -> bool {
        self.shared.slot.try_lock().is_ok_and(|s| s.is_some())
    }

    /// Hands the rename of a taken segment (its private name to its final one) back to the preparer.
    pub fn rename_later(&self, private: PathBuf, final_path: PathBuf) {
        let mut renames = self.shared.renames.lock().unwrap_or_else(|p| p.into_inner());
        renames.push((private, final_path));
        drop(renames);
        self.shared.wake.notify_one();
    }

    /// Renames `private` to `final_path` on the calling thread (the inline rotation's path, already file I/O),
    /// after every rename still queued, so no segment appears before an earlier one.
    pub fn rename_in_order(&self, private: &Path, final_path: &Path) -> std::io::Result<()> {
        let _order = self.shared.order.lock().unwrap_or_else(|p| p.into_inner());
        let queued: Vec<(PathBuf, PathBuf)> =
            self.shared.renames.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for (from, to) in &queued {
            std::fs::rename(from, to).map_err(|e| {
                std::io::Error::new(e.kind(), format!("renaming {} to {}: {e}", from.display(), to.display()))
            })?;
        }
        std::fs::rename(private, final_path)
    }

    /// Whether every segment handed over has its final name (no rename queued or under way). Never waits.
    pub fn renames_settled(&self) -> bool {
        let Ok(_order) = self.shared.order.try_lock() else { return false };
        self.shared.renames.lock().map(|r| r.is_empty()).unwrap_or(false)
    }

    /// Tests only: stops (`true`) or resumes the thread's work, to stand for a preparer that is not scheduled.
    #[cfg(test)]
    pub(crate) fn hold(&self, on: bool) {
        self.shared.hold.store(on, Ordering::Release);
        self.shared.wake.notify_one();
    }

    pub fn note_inline_rotation(&self) {
        self.shared.inline_rotations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn inline_rotations(&self) -> u64 {
        self.shared.inline_rotations.load(Ordering::Relaxed)
    }

    /// Stops the thread after it has done every rename handed to it; the unused prepared segment is removed.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = std::fs::remove_file(&p.path);
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(config: &WalConfig, shared: &Shared) {
    let mut builds = 0u64;
    loop {
        if shared.hold.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        do_renames(config, shared);
        if shared.stop.load(Ordering::Acquire) {
            do_renames(config, shared);
            return;
        }
        let empty = shared.slot.lock().map(|s| s.is_none()).unwrap_or(false);
        if empty {
            builds += 1;
            match build(config, builds) {
                Ok(p) => *shared.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(p),
                Err(e) => {
                    *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            continue;
        }
        let slot = shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        let pending = shared.renames.lock().map(|r| !r.is_empty()).unwrap_or(false);
        if slot.is_some() && !pending && !shared.stop.load(Ordering::Acquire) {
            let _ = shared.wake.wait_timeout(slot, Duration::from_millis(50));
        }
    }
}

fn do_renames(config: &WalConfig, shared: &Shared) {
    let _order = shared.order.lock().unwrap_or_else(|p| p.into_inner());
    // Drained, not taken: the writer's pushes keep the preallocated capacity and never allocate.
    let batch: Vec<(PathBuf, PathBuf)> = shared.renames.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
    if batch.is_empty() {
        return;
    }
    for (from, to) in &batch {
        if let Err(e) = std::fs::rename(from, to) {
            *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("renaming {} to {}: {e}", from.display(), to.display()));
        }
    }
    if config.mode != DurabilityMode::None {
        let _ = File::open(&config.dir).and_then(|d| d.sync_all());
    }
}

fn build(config: &WalConfig, n: u64) -> Result<Prepared, WalError> {
    let path = config.dir.join(format!("wal-prep-{}-{n}{PREPARED_SUFFIX}", std::process::id()));
    let file = super::writer::preallocated(config, &path)?;
    let want_sync = config.mode == DurabilityMode::Dax;
    let (map, _) = Mmap::map_shared(&file, config.segment_bytes as usize, want_sync)
        .map_err(|e| WalError::Map { path: path.clone(), bytes: config.segment_bytes, source: e })?;
    // In msync mode touching every page would dirty the whole segment and make the first msync write all of it.
    if config.prefault && config.mode != DurabilityMode::Msync {
        map.prefault();
    }
    if config.mode != DurabilityMode::None {
        file.sync_all().map_err(|e| WalError::io(&path, "fsync prepared segment", e))?;
    }
    Ok(Prepared { file, map, path })
}

/// Renames into place every prepared segment of `dir` that a writer had started (its header is valid and no
/// segment of its first seq exists), and removes the ones never used. Run only under the directory's lock.
/// Returns the segments adopted.
pub fn adopt_prepared(dir: &Path) -> Result<Vec<PathBuf>, WalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WalError::io(dir, "read directory", e)),
    };
    let existing: Vec<u64> = list_segments(dir)?.into_iter().map(|s| s.first_seq).collect();
    let mut adopted = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, "read directory", e))?;
        let path = entry.path();
        if !path.to_str().is_some_and(|p| p.ends_with(PREPARED_SUFFIX)) {
            continue;
        }
        let file_bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let head = read_head(&path);
        match head.as_deref().map(|h| SegmentHeader::parse_head(h, file_bytes)) {
            Some(Ok(h)) if !existing.contains(&h.first_seq) => {
                let to = dir.join(segment_file_name(h.first_seq));
                std::fs::rename(&path, &to).map_err(|e| WalError::io(&path, "adopt prepared segment", e))?;
                adopted.push(to);
            }
            _ => std::fs::remove_file(&path).map_err(|e| WalError::io(&path, "remove unused prepared segment", e))?,
        }
    }
    if !adopted.is_empty() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(adopted)
}

fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = vec![0u8; SEGMENT_HEADER_BYTES];
    File::open(path).ok()?.read_exact(&mut head).ok()?;
    Some(head)
}
