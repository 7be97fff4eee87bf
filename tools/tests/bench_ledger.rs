//! A small run of `bourse bench ledger` on both journals, so the throughput benchmark cannot rot: one JSON object
//! per run with every figure, the dense journal trading on every second input after its set-up, and every trade
//! booked. No timing is asserted.

use std::process::Command;

fn run(workload: &str, inputs: u64) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["bench", "ledger", "--workload", workload, "--inputs", &inputs.to_string(), "--batch", "512"])
        .args(["--no-postgres", "--json"])
        .output()
        .expect("running bourse bench ledger");
    assert!(out.status.success(), "bench ledger failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn dense_and_mixed_journals_are_booked_whole() {
    let inputs = 6_000;
    let dense = run("dense", inputs);
    assert_eq!(dense["workload"], "dense");
    let setup = bourse_persist::workload::Workload::SETUP_INPUTS;
    assert_eq!(dense["trades_in_journal"].as_u64(), Some((inputs - setup) / 2), "{dense}");
    let mixed = run("mixed", inputs);
    assert_eq!(mixed["workload"], "mixed");
    for v in [&dense, &mixed] {
        let row = &v["rows"][0];
        assert_eq!(row["backend"], "sqlite", "{v}");
        assert_eq!(row["trades"], v["trades_in_journal"], "every trade booked: {v}");
        assert_eq!(row["records"].as_u64(), Some(inputs), "{v}");
        assert!(row["trades_per_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    }
    assert!(mixed["trades_in_journal"].as_u64() < dense["trades_in_journal"].as_u64(), "{mixed}");
}
