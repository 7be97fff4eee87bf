//! Zero allocation after start-up: a counting global allocator watches a long mixed stream.

mod common;

use bourse_engine::*;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn apply_never_allocates_after_setup() {
    let mut engine = Engine::new(CAP);
    let mut feed = Feed::new();
    let mut sink = HashSink::default();
    for c in setup_commands(2) {
        engine.apply(&feed.input(1, c), &mut sink);
    }
    let mut stream = Stream::new(42);
    let inputs: Vec<Input> = (0..150_000)
        .map(|_| {
            let (dt, c) = stream.next();
            feed.input(dt, c)
        })
        .collect();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in &inputs {
        engine.apply(i, &mut sink);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "apply allocated {} times",
        after - before
    );
    assert!(
        sink.trades > 500,
        "the stream must trade to prove anything: {}",
        sink.trades
    );
    engine.check_invariants().unwrap();
}

#[test]
fn the_reference_table_grows_without_allocating() {
    // 6,000 open orders take the table's prefix in use from 4,096 slots to 16,384: both growths happen in `apply`.
    let cap = Capacity {
        orders_max: 16_384,
        ..CAP
    };
    let mut engine = Engine::new(cap);
    let mut feed = Feed::new();
    let mut setup = setup_commands(2);
    for a in 0..4 {
        setup.push(Command::Deposit(Deposit {
            account: a,
            amount: 1_000_000_000_000,
        }));
    }
    for c in setup {
        engine.apply(&feed.input(1, c), &mut NullSink);
    }
    let inputs: Vec<Input> = (0..6_000u32)
        .map(|i| feed.input(1, new_order((i % 4) as u16, i / 4 + 1, Side::Buy, 1, 9_000 + (i % 40) * 10)))
        .collect();
    let mut sink = HashSink::default();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in &inputs {
        engine.apply(i, &mut sink);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "apply allocated {} times", after - before);
    assert_eq!(sink.events, 6_000 * 2, "every order rests (Accepted + BookAdd)");
    engine.check_invariants().unwrap();
}

/// A mass cancel walks the books in place and the order-entry switch is a flag: neither allocates.
#[test]
fn mass_cancel_and_order_entry_switch_never_allocate() {
    let mut engine = Engine::new(CAP);
    let mut feed = Feed::new();
    for c in setup_commands(2) {
        engine.apply(&feed.input(1, c), &mut NullSink);
    }
    let mut stream = Stream::new(7);
    for _ in 0..5_000 {
        let (dt, c) = stream.next();
        engine.apply(&feed.input(dt, c), &mut NullSink);
    }
    let open = engine.orders_open();
    let mut inputs = Vec::new();
    for s in 0..4u16 {
        let user_ref = 1 << 30;
        inputs.push(feed.input(1, Command::SetOrderEntry(SetOrderEntry { session: s, user_ref, enabled: false })));
        let scope = MassCancel { session: s, user_ref: user_ref + 1, symbol: None, side: None };
        inputs.push(feed.input(1, Command::MassCancel(scope)));
    }
    let mut sink = HashSink::default();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in &inputs {
        engine.apply(i, &mut sink);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "apply allocated {} times", after - before);
    assert!(open > 0, "the stream must leave orders open to prove anything");
    assert_eq!(engine.orders_open(), 0, "every session's orders canceled");
    engine.check_invariants().unwrap();
}
