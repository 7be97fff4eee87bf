//! A small run of `bourse bench ledger --lag`, so the benchmark cannot rot: the demo's pair, the ledger following
//! the primary's journal as its own process, 2 s of load at a low rate, and exactly one JSON object whose figures
//! are all there and nonzero. No timing is asserted.

use std::process::Command;

#[test]
fn a_short_lag_run_reports_every_figure() {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["bench", "ledger", "--lag", "--rate", "2000", "--duration-s", "2", "--no-pin", "--json"])
        .output()
        .expect("running bourse bench ledger --lag");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench ledger --lag failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one line of JSON: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["bench"], "ledger_lag");
    assert_eq!(v["backend"], "sqlite");
    assert_eq!(v["mode"], "pair");
    for k in ["commits_seen", "batches", "trades", "records"] {
        assert!(v[k].as_u64().is_some_and(|n| n > 0), "{k} in {v}");
    }
    for k in ["lag_ms_p50", "lag_ms_p99", "lag_ms_max", "seconds", "trades_per_s", "records_per_s", "achieved_per_s"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
    let (p50, p99, max) = (v["lag_ms_p50"].as_f64(), v["lag_ms_p99"].as_f64(), v["lag_ms_max"].as_f64());
    assert!(p50 <= p99 && p99 <= max, "percentiles in order: {v}");
    assert!(v["commits_seen"].as_u64() <= v["batches"].as_u64(), "no more transactions seen than made: {v}");
    // The load offered 4,000 messages, each journaled as one input; the ledger booked them all before the end.
    assert!(v["records"].as_u64().is_some_and(|n| n >= 3_000), "records in {v}");
    assert!(v["appliance"].as_str().is_some_and(|s| s.contains("inputs")), "{v}");
}
