//! One writer per WAL directory: a second writer — in this process or another — is refused with the holder's PID
//! before it changes any file, and the lock goes with its holder (dropped, or the process killed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use bourse_persist::wal::lock::LOCK_FILE_NAME;
use bourse_persist::wal::segment::list_segments;
use bourse_persist::wal::{DirLock, LockState};
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig, WalError};

/// Set in the child: the directory the helper "test" locks before it waits for its stdin to close.
const HELPER_ENV: &str = "BOURSE_WAL_LOCK_HELPER_DIR";
/// What the helper prints once it holds the lock.
const LOCKED_MARKER: &str = "helper-holds-the-lock";

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-wal-lock-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path) -> WalConfig {
    let mut c = WalConfig::new(dir);
    c.mode = DurabilityMode::None;
    c.segment_bytes = 64 * 1024;
    c.spare = false;
    c
}

fn commit() -> Arc<CommitIndex> {
    Arc::new(CommitIndex::new(AckPolicy::Local, 0))
}

fn segment_bytes_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    list_segments(dir).unwrap().into_iter().map(|s| (s.path.clone(), std::fs::read(&s.path).unwrap())).collect()
}

#[test]
fn a_second_writer_on_a_live_directory_is_refused_and_changes_nothing() {
    let dir = tempdir("second-writer");
    let mut first = Wal::create(config(&dir), 1, commit()).unwrap();
    let mut w = Workload::new(3);
    for seq in 1..=10 {
        first.append(&w.next(seq)).unwrap();
    }
    let before = segment_bytes_of(&dir);
    // The operator's second appliance: it would replace the segment `wal-11.seg`, had it not been refused.
    match Wal::create(config(&dir), 11, commit()) {
        Err(WalError::Locked { dir: d, pid }) => assert_eq!((d, pid), (dir.clone(), Some(std::process::id()))),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second writer was allowed on a live directory"),
    }
    assert_eq!(segment_bytes_of(&dir), before, "the refused writer touched no segment");
    // The first writer is unaffected.
    first.append(&w.next(11)).unwrap();
    first.close().unwrap();
    // Closed, the directory is free for the next writer.
    Wal::create(config(&dir), 12, commit()).unwrap().close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_writer_keeps_the_lock_it_is_given() {
    let dir = tempdir("given");
    let lock = DirLock::acquire(&dir).unwrap();
    let mut cfg = config(&dir);
    cfg.lock = Some(lock.clone());
    let wal = Wal::create(cfg, 1, commit()).unwrap();
    drop(lock);
    assert!(
        matches!(DirLock::acquire(&dir), Err(WalError::Locked { .. })),
        "the writer holds the lock it was handed after the caller's handle is gone"
    );
    wal.close().unwrap();
    DirLock::acquire(&dir).expect("the writer's close releases it");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The child half of the next test: a no-op unless `HELPER_ENV` names a directory.
#[test]
fn helper_hold_lock_until_stdin_closes() {
    let Ok(dir) = std::env::var(HELPER_ENV) else { return };
    let _lock = DirLock::acquire(&dir).unwrap();
    // libtest may print its "test … ..." prefix on the same line: the parent looks for the marker anywhere.
    println!("{LOCKED_MARKER}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn another_process_holding_the_lock_is_named_and_its_death_releases_it() {
    let dir = tempdir("child");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_hold_lock_until_stdin_closes", "--nocapture", "--test-threads", "1"])
        .env(HELPER_ENV, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    assert!(lines.any(|l| l.unwrap().contains(LOCKED_MARKER)), "the helper did not take the lock");

    let err = Wal::create(config(&dir), 1, commit()).err().expect("the child holds the directory");
    let message = err.to_string();
    assert!(matches!(err, WalError::Locked { pid: Some(p), .. } if p == child.id()), "{message}");
    assert!(message.contains(&format!("in use by process {}; stop it first", child.id())), "{message}");
    assert_eq!(DirLock::probe(&dir).unwrap(), LockState::Held { pid: Some(child.id()) });
    assert!(list_segments(&dir).unwrap().is_empty(), "the refused writer created no segment");

    // Killed, not asked to stop: the kernel releases the lock with the process; nothing stale is left.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(DirLock::probe(&dir).unwrap(), LockState::Free);
    let wal = Wal::create(config(&dir), 1, commit()).expect("free once the holder is gone");
    let pid = std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string(), "the new holder's PID replaced the dead one's");
    wal.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
