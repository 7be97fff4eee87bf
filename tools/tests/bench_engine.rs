//! Small-size run of `bourse bench engine`'s code path, so the benchmark cannot rot: 20k commands, the JSON keys
//! the CI reads, zero allocations during the timed loops, and a seed that replays to the same result hash.

use bourse::bench::engine::{generate, measure};

#[global_allocator]
static ALLOC: bourse::alloc_count::CountingAlloc = bourse::alloc_count::CountingAlloc;

#[test]
fn small_engine_bench_reports_every_key_and_does_not_allocate() {
    let w = generate(7, 20_000);
    assert_eq!(w.commands.len(), 20_000);
    let r = measure(&w, 7, 1).unwrap();
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    for key in [
        "commands",
        "mops",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "p999_ns",
        "p9999_ns",
        "max_ns",
        "trades",
        "allocs_during_run",
        "seed",
        "result_hash",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(r.commands, 20_000);
    assert_eq!(
        r.allocs_during_run, 0,
        "the engine allocated on the hot path"
    );
    assert!(r.mops > 0.0 && r.p50_ns > 0 && r.p50_ns <= r.p99_ns && r.p99_ns <= r.max_ns);
    // The mix trades a few percent of commands and keeps roughly a thousand orders resting.
    assert!(
        r.trades > 20_000 / 100 && r.trades < 20_000 / 5,
        "trades {}",
        r.trades
    );
    assert!(
        (700..1_400).contains(&r.resting_orders_end),
        "resting {}",
        r.resting_orders_end
    );
    // The seed replays exactly.
    let again = measure(&generate(7, 20_000), 7, 1).unwrap();
    assert_eq!(again.result_hash, r.result_hash);
    assert_eq!(again.trades, r.trades);
    generated_mix_matches_exchange_core_shape();
}

/// Called from the test above rather than being a test of its own: the allocation counter is process-wide, and a
/// test running on another thread would allocate during the timed loop.
fn generated_mix_matches_exchange_core_shape() {
    use bourse_engine::{Command, TimeInForce};
    let w = generate(3, 50_000);
    let (mut gtc, mut ioc, mut cancel, mut moves) = (0, 0, 0, 0);
    for i in &w.commands {
        match i.command {
            Command::NewOrder(n) if n.tif == TimeInForce::Ioc => ioc += 1,
            Command::NewOrder(_) => gtc += 1,
            Command::Cancel(_) => cancel += 1,
            Command::Replace(_) => moves += 1,
            _ => panic!("unexpected command in the timed part"),
        }
    }
    let pct = |x: i32| x * 100 / 50_000;
    assert!((6..=12).contains(&pct(gtc)), "gtc {gtc}");
    assert!((2..=4).contains(&pct(ioc)), "ioc {ioc}");
    assert!((3..=9).contains(&pct(cancel)), "cancel {cancel}");
    assert!((80..=84).contains(&pct(moves)), "moves {moves}");
}
