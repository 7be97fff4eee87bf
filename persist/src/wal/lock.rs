//! The WAL directory's lock: at most one writer per directory, across processes.
//!
//! Recovery zeroes a torn tail and the writer replaces the segment it starts in, so a second process that opened a
//! directory a live appliance is writing would take the live writer's half-stored record for a torn tail, zero it,
//! and start a segment of its own beside it. Every process that may change a WAL directory therefore first takes
//! [`DirLock::acquire`], and a second one is refused with the holder's PID:
//!
//! ```text
//!   <dir>/LOCK      flock(LOCK_EX | LOCK_NB) on an open file description, held for the life of the DirLock
//!                   contents: "<pid>\n" of the holder while held, empty after a clean release
//! ```
//!
//! `flock(2)` locks belong to the open file description, so the kernel releases the lock when the holder exits,
//! however it exits (kill -9 included): no stale lock is ever left to clean up by hand, and the file is never
//! removed (removing it would let two processes lock two different inodes of the same name). The PID is only a
//! label for the refusal message; the lock itself is the kernel's. A second open of the file in the same process is
//! refused like another process, which is what lets tests provoke the refusal in-process.
//!
//! Readers (`bourse wal info`, `dump`, `verify`) take no lock: they only read. [`DirLock::probe`] tells them whether
//! a writer holds the directory, so they can say that the log may be live (its tail still being written). The probe
//! takes a shared lock for the instant of one system call; a writer starting in that instant is refused and says
//! so, it never proceeds without the lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::WalError;
use crate::sys::{self, FlockKind};

/// The lock file's name inside a WAL directory (not a segment or snapshot name, so listings ignore it).
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The exclusive lock on one WAL directory, held until the last clone is dropped.
///
/// Clones share the one lock (a [`crate::WalConfig`] is `Clone` and carries it); two values are equal when they are
/// the same lock.
#[derive(Clone)]
pub struct DirLock(Arc<Held>);

struct Held {
    dir: PathBuf,
    /// The open file description that holds the `flock`; closing it releases the lock.
    file: File,
}

/// What [`DirLock::probe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds the directory's lock (or it has never been locked).
    Free,
    /// A writer holds it: the log may be live. `pid` is the holder's, when it has written it yet.
    Held { pid: Option<u32> },
}

impl DirLock {
    /// Takes the exclusive lock on `dir` (which must exist) and writes this process's PID into `<dir>/LOCK`, or
    /// fails at once with [`WalError::Locked`] naming the holder. It never waits.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<DirLock, WalError> {
        let dir = dir.as_ref();
        let path = dir.join(LOCK_FILE_NAME);
        // No truncation on open: until the lock is ours, the file holds the current holder's PID.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| WalError::io(&path, "open the WAL directory's lock file", e))?;
        if !sys::flock_nonblocking(&file, FlockKind::Exclusive).map_err(|e| WalError::io(&path, "flock", e))? {
            return Err(WalError::Locked { dir: dir.to_path_buf(), pid: read_pid(&path) });
        }
        // The PID is written over the old contents and the file then cut to it, so a reader never sees it empty
        // while we hold the lock (only, briefly, followed by the tail of a longer old PID on the next line).
        let line = format!("{}\n", std::process::id());
        file.write_all_at(line.as_bytes(), 0)
            .and_then(|()| file.set_len(line.len() as u64))
            .map_err(|e| WalError::io(&path, "write the holder's PID into the lock file", e))?;
        Ok(DirLock(Arc::new(Held { dir: dir.to_path_buf(), file })))
    }

    /// Whether a writer holds `dir`'s lock, without taking it (see the module documentation). A directory without
    /// a lock file is [`LockState::Free`]; nothing is created.
    pub fn probe(dir: impl AsRef<Path>) -> Result<LockState, WalError> {
        let path = dir.as_ref().join(LOCK_FILE_NAME);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Free),
            Err(e) => return Err(WalError::io(&path, "open the WAL directory's lock file", e)),
        };
        if sys::flock_nonblocking(&file, FlockKind::Shared).map_err(|e| WalError::io(&path, "flock", e))? {
            // Taken shared, released when `file` closes here.
            return Ok(LockState::Free);
        }
        Ok(LockState::Held { pid: read_pid(&path) })
    }

    /// The directory this lock holds.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Still holding the lock: clear the PID so the file never names a process that no longer holds it. The
        // lock itself is released when `file` closes right after.
        let _ = self.file.set_len(0);
    }
}

impl PartialEq for DirLock {
    fn eq(&self, other: &DirLock) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DirLock {}

impl std::fmt::Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirLock({}, pid {})", self.0.dir.display(), std::process::id())
    }
}

/// The PID the lock file names, if it names one (its holder may not have written it yet).
fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// "process 1234", or a description when the PID is not known: how [`WalError::Locked`] names the holder.
pub(crate) fn describe_holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process (its PID is not recorded yet)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bourse-dirlock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder() {
        let dir = temp_dir("second");
        let held = DirLock::acquire(&dir).unwrap();
        // The second acquire opens the file again: a second open file description, which flock treats like
        // another process.
        match DirLock::acquire(&dir) {
            Err(WalError::Locked { dir: d, pid }) => {
                assert_eq!(d, dir);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("a second acquire must be refused, got {other:?}"),
        }
        let message = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(message.contains(&format!("in use by process {}; stop it first", std::process::id())), "{message}");
        assert!(message.contains(&dir.display().to_string()), "{message}");
        assert_eq!(DirLock::probe(&dir).unwrap(), LockState::Held { pid: Some(std::process::id()) });
        // A clone is the same lock, not a second one.
        let clone = held.clone();
        assert_eq!(clone, held);
        drop(held);
        assert!(matches!(DirLock::acquire(&dir), Err(WalError::Locked { .. })), "the clone still holds it");
        drop(clone);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropping_the_lock_releases_it_and_clears_the_pid() {
        let dir = temp_dir("drop");
        assert_eq!(DirLock::probe(&dir).unwrap(), LockState::Free, "no lock file yet");
        assert!(!dir.join(LOCK_FILE_NAME).exists(), "probing creates nothing");
        let lock = DirLock::acquire(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap(), format!("{}\n", std::process::id()));
        drop(lock);
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap(), "");
        assert_eq!(DirLock::probe(&dir).unwrap(), LockState::Free);
        let again = DirLock::acquire(&dir).expect("free again after drop");
        assert_eq!(again.dir(), dir.as_path());
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_lock_file() {
        let dir = temp_dir("missing").join("nope");
        match DirLock::acquire(&dir) {
            Err(WalError::Io { path, .. }) => assert_eq!(path, dir.join(LOCK_FILE_NAME)),
            other => panic!("{other:?}"),
        }
    }
}
