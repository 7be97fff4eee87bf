//! Proof that appends do not allocate: a counting global allocator around a burst of appends.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn appends_do_not_allocate_in_any_mode() {
    for mode in [DurabilityMode::Dax, DurabilityMode::Msync, DurabilityMode::None] {
        let dir = std::env::temp_dir().join(format!("bourse-wal-alloc-{}-{}", mode.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = WalConfig::new(&dir);
        cfg.mode = mode;
        cfg.segment_bytes = 1 << 20;
        // The spare-segment builder is a background thread that allocates by design (it formats a path, zero-fills
        // from a buffer); it is not the append path, and this counter is process-wide.
        cfg.spare = false;
        let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
        let mut wal = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
        // Inputs are generated up front: the generator is not under test.
        let mut w = Workload::new(11);
        let inputs: Vec<_> = (1..=10_000u64).map(|s| w.next(s)).collect();
        // The first record is committed before counting: in msync mode that proves the group-commit thread is up,
        // so its start-up (thread-local set-up, which allocates) cannot land inside the counted window.
        wal.append(&inputs[0]).unwrap();
        assert!(commit.wait_for(1, Duration::from_secs(10)), "the first record commits");
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for (i, input) in inputs.iter().enumerate().skip(1) {
            if i % 8 == 7 {
                wal.append(input).unwrap();
            } else {
                wal.append_unfenced(input).unwrap();
            }
        }
        wal.fence();
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        // The group-commit thread runs concurrently in msync mode; it does not allocate either (its segment list
        // is preallocated), so the count covers both threads.
        assert_eq!(after - before, 0, "{} allocations during appends in {} mode", after - before, mode.name());
        if mode != DurabilityMode::None {
            assert!(commit.wait_for(10_000, Duration::from_secs(10)));
        }
        wal.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
