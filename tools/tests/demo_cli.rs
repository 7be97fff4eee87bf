//! `bourse demo --json` end to end: the binary starts the appliance, loads it at two small rates, and prints
//! exactly one JSON object with the documented keys.

use std::process::Command;

#[test]
fn demo_prints_one_json_object_with_the_documented_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["demo", "--rates", "2000,4000", "--duration-s", "0.5", "--warmup-s", "0.2", "--json", "--no-pin"])
        .args(["--resting", "200"])
        .output()
        .expect("running bourse demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bourse demo failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one line of JSON: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let rates = v["rates"].as_array().expect("rates");
    assert_eq!(rates.len(), 2);
    for (row, rate) in rates.iter().zip([2_000.0, 4_000.0]) {
        assert_eq!(row["rate"].as_f64(), Some(rate));
        assert_eq!(row["sent"].as_u64(), Some(rate as u64 / 2));
        assert_eq!(row["replied"], row["sent"]);
        for k in ["p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us", "msgs_per_s"] {
            assert!(row[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {row}");
        }
    }
    assert_eq!(v["lost"].as_u64(), Some(0));
    assert_eq!(v["seed"].as_u64(), Some(1));
    assert!(v["executions"].as_u64().is_some_and(|e| e > 0));
    assert!(v["rejects"].as_u64().is_some());
    assert!(v["appliance"].as_str().is_some_and(|s| s.contains("inputs")));
}
