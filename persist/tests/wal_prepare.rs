//! Rotation without file I/O on the appending thread, and the crash window it opens: a segment the writer started
//! under its private name before the preparer renamed it is adopted by recovery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bourse_persist::wal::prepare::{adopt_prepared, PREPARED_SUFFIX};
use bourse_persist::wal::segment::{list_segments, segment_file_name};
use bourse_persist::wal::{scan_log, ScanOptions, Visit};
use bourse_persist::workload::Workload;
use bourse_persist::{recover, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-prep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// write(2)-family syscalls this thread has made (Linux task I/O accounting).
fn thread_write_syscalls() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("syscw: ")).and_then(|v| v.trim().parse().ok())
}

fn records(dir: &Path) -> u64 {
    let mut n = 0;
    scan_log(dir, ScanOptions { from_seq: 0, live: true }, |_, _, _| {
        n += 1;
        Visit::Continue
    })
    .unwrap();
    n
}

#[test]
fn rotating_every_few_hundred_records_makes_no_write_syscall_on_the_appending_thread() {
    let dir = tempdir("rotate");
    let mut cfg = WalConfig::new(&dir);
    // msync mode: an inline rotation zero-fills the new segment with write(2), which the count would show.
    cfg.mode = DurabilityMode::Msync;
    cfg.segment_bytes = 64 << 10;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
    let mut w = Workload::new(3);
    let before = thread_write_syscalls();
    let (n, burst) = (30_000u64, 64u64);
    let mut seq = 1;
    while seq <= n {
        // The pipeline's rule: take a burst only when it cannot force file I/O here (backpressure otherwise).
        let t = std::time::Instant::now();
        while !wal.ready_for(burst as usize * 128) && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::yield_now();
        }
        for _ in 0..burst.min(n - seq + 1) {
            wal.append_unfenced(&w.next(seq)).unwrap();
            seq += 1;
        }
        wal.fence();
    }
    let after = thread_write_syscalls();
    assert_eq!(wal.inline_rotations(), 0, "every rotation took a prepared segment");
    if let (Some(b), Some(a)) = (before, after) {
        assert_eq!(a - b, 0, "the appending thread made {} write syscalls", a - b);
    } else {
        println!("skipped: the syscall count (no /proc/thread-self/io here); the rotation count still checked");
    }
    assert!(commit.wait_for(n, std::time::Duration::from_secs(10)));
    wal.close().unwrap();
    let segments = list_segments(&dir).unwrap();
    assert!(segments.len() > 20, "{} segments: rotations happened", segments.len());
    assert_eq!(records(&dir), n);
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(PREPARED_SUFFIX)),
        "closing renamed what it used and removed what it did not"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_segment_still_under_its_private_name_at_a_crash_is_adopted_by_recovery() {
    let dir = tempdir("adopt");
    let mut cfg = WalConfig::new(&dir);
    cfg.mode = DurabilityMode::Msync;
    cfg.segment_bytes = 64 << 10;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, commit).unwrap();
    let mut w = Workload::new(4);
    for seq in 1..=3_000 {
        wal.append(&w.next(seq)).unwrap();
    }
    wal.close().unwrap();
    // The crash: the newest segment had not been renamed yet. Put it back under a private name.
    let newest = list_segments(&dir).unwrap().pop().unwrap();
    let private = dir.join(format!("wal-prep-99-1{PREPARED_SUFFIX}"));
    std::fs::rename(&newest.path, &private).unwrap();
    // And an unused prepared segment (no header) lies beside it.
    std::fs::write(dir.join(format!("wal-prep-99-2{PREPARED_SUFFIX}")), vec![0u8; 8192]).unwrap();
    assert!(records(&dir) < 3_000, "without adoption the newest segment's records are invisible");
    let r = recover(&RecoveryOptions::new(&dir, bourse_engine::Capacity::SMALL)).unwrap();
    assert_eq!(r.last_seq(), 3_000, "recovery adopted the started segment");
    assert!(dir.join(segment_file_name(newest.first_seq)).exists());
    assert!(adopt_prepared(&dir).unwrap().is_empty(), "and removed the unused one");
    assert_eq!(std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(PREPARED_SUFFIX)).count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
