//! Recording on the pipeline side never allocates: stage histograms, the swap, and the stats counters, measured
//! with the counting global allocator. One test only, so no other test thread allocates during the count.

use bourse::alloc_count::{allocations, CountingAlloc};
use bourse_appliance::obs::stages::{stage_recorder, HistConfig, Span, Stage, StageStamps};
use bourse_appliance::obs::statsblock::{Counter, StatsWriter};
use bourse_appliance::obs::tsc::Clock;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn pipeline_side_recording_does_not_allocate() {
    let clock = Clock::calibrate(std::time::Duration::from_millis(50));
    let (mut recorder, mut exporter) = stage_recorder(clock, HistConfig::default()).unwrap();
    let stats = StatsWriter::in_memory();
    let mut stamps = StageStamps::default();

    // Warm up once so lazily initialised thread-locals (none expected) are not counted.
    recorder.record(&stamps);
    let before = allocations();
    let mut swaps = 0;
    for i in 0..200_000u64 {
        let t0 = clock.now();
        stamps.set(Stage::Rx, t0);
        stamps.set(Stage::Decoded, t0 + 10 + i % 7);
        stamps.set(Stage::Journaled, t0 + 200 + i % 1000);
        stamps.set(Stage::Matched, t0 + 300 + i % 1000);
        stamps.set(Stage::Committed, t0 + 5000 + i % 100_000);
        stamps.set(Stage::Tx, t0 + 6000 + (i * 7919) % 10_000_000_000);
        recorder.record(&stamps);
        recorder.record_span(Span::RxTx, u64::MAX); // saturates, must not resize
        stats.add_rx(1);
        stats.add_tx(1);
        stats.add_drop(3, 1);
        stats.set_counter(Counter::KernelDrops, i);
        stats.add_reject(40, 1); // out of range: counted in the last slot, not a panic
                                 // The aux core's half runs on this thread too, but only between bursts and it does not allocate either.
        if i % 50_000 == 0 {
            exporter.request_swap();
        }
        if recorder.poll_swap() {
            swaps += 1;
            assert!(exporter.try_collect().is_some());
        }
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "recording allocated {} times",
        after - before
    );
    // The counter itself works: one deliberate allocation is seen.
    let boxed = std::hint::black_box(Box::new(after));
    assert!(
        allocations() > after,
        "the counting allocator is not installed ({boxed})"
    );
    assert_eq!(swaps, 4);
    assert_eq!(stats.block().rx_total(), 200_000);
    assert_eq!(stats.block().counter(Counter::KernelDrops), 199_999);
    assert_eq!(
        stats
            .block()
            .rejects(bourse_appliance::obs::statsblock::REJECT_REASONS_MAX - 1),
        200_000
    );
}
