//! A counting global allocator: the proof that the hot path does not allocate.
//!
//! The `bourse` binary installs [`CountingAlloc`] as its global allocator; benchmarks read [`allocations`] before and
//! after a timed loop and report the difference. Counting costs one relaxed atomic add per allocation, and nothing
//! on the hot path allocates, so it costs nothing there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without a destructor, so touching it never allocates.
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

pub struct CountingAlloc;

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations (alloc, alloc_zeroed, realloc) made so far by the process, if [`CountingAlloc`] is installed.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations made so far by the calling thread: what a pinned pipeline thread's proof reads, undisturbed by the
/// journal's group-commit thread or the aux thread.
pub fn allocations_on_this_thread() -> u64 {
    THREAD_ALLOCATIONS.try_with(|c| c.get()).unwrap_or(0)
}
