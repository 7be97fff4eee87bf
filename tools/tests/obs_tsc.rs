//! The TSC clock is sane: monotonic over many reads and within 1 % of CLOCK_MONOTONIC over about a second.

use std::time::Duration;

use bourse_appliance::obs::tsc::{monotonic_ns, Clock, ClockSource};

#[test]
fn calibrated_clock_is_monotonic_and_agrees_with_clock_monotonic() {
    let clock = Clock::calibrate(Duration::from_millis(100));
    if clock.source() != ClockSource::Tsc {
        eprintln!("skipped: no usable TSC here (constant_tsc/nonstop_tsc missing); the clock is CLOCK_MONOTONIC");
    }
    let mut last = clock.now();
    for _ in 0..1_000_000 {
        let now = clock.now_ordered();
        assert!(now >= last, "clock went backwards: {last} then {now}");
        last = now;
    }

    let (t0, m0) = (clock.now_ordered(), monotonic_ns());
    std::thread::sleep(Duration::from_millis(900));
    let (t1, m1) = (clock.now_ordered(), monotonic_ns());
    let tsc_ns = clock.delta_ns(t0, t1) as f64;
    let mono_ns = (m1 - m0) as f64;
    let error = (tsc_ns - mono_ns).abs() / mono_ns;
    assert!(
        error < 0.01,
        "TSC says {tsc_ns} ns, CLOCK_MONOTONIC {mono_ns} ns: {:.3} % apart",
        error * 100.0
    );
    // The mapping to CLOCK_MONOTONIC time is as good as the rate.
    let mapped = clock.to_monotonic_ns(t1) as f64;
    assert!(
        (mapped - m1 as f64).abs() < 0.01 * mono_ns,
        "mapped {mapped} vs {m1}"
    );
    if clock.source() == ClockSource::Tsc {
        assert!(
            clock.hz() > 100_000_000,
            "implausible TSC frequency {}",
            clock.hz()
        );
    }
}
