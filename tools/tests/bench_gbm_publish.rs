//! `bench engine --workload gbm --publish` at a small size, so the handoff cannot rot: every event crosses the
//! ring to the publisher thread (it counts the same trades the matcher made) and nothing allocates while it runs.

use bourse::bench::gbm::{generate, time_bourse, time_bourse_published, LEVELS, SCENARIOS};

#[global_allocator]
static ALLOC: bourse::alloc_count::CountingAlloc = bourse::alloc_count::CountingAlloc;

#[test]
fn every_event_reaches_the_publisher_without_allocating() {
    // The flash crash: the most trades per command of the five scenarios.
    let s = generate(SCENARIOS[4], 3, 30_000, LEVELS);
    let (_, trades, _, _) = time_bourse(&s);
    assert!(trades > 1_000, "the stream should trade: {trades}");
    let p = time_bourse_published(&s).unwrap();
    assert_eq!(p.trades, trades, "the publisher must see every trade the matcher made");
    assert_eq!(p.allocs, 0, "handing events over allocated");
    assert!(p.seconds > 0.0);
}
