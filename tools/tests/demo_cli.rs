//! `bourse demo --json` end to end: the binary starts the primary and standby pair (or, with `--single`, one
//! appliance), loads it at two small rates, and prints exactly one JSON object with the documented keys.

use std::process::Command;

fn demo(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["demo", "--rates", "2000,4000", "--duration-s", "0.5", "--warmup-s", "0.2", "--json", "--no-pin"])
        .args(["--resting", "200"])
        .args(extra)
        .output()
        .expect("running bourse demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bourse demo {extra:?} failed: {stderr}");
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
    v
}

/// The number after `key ` in `text` ("committed 812" → 812).
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no {key:?} in {text:?}")) + key.len();
    text[at..].trim_start().chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[test]
fn the_demo_runs_the_pair_by_default_and_the_standby_holds_everything_acknowledged() {
    let v = demo(&[]);
    assert_eq!(v["mode"], "pair");
    let ack = v["ack"].as_str().expect("ack");
    assert!(ack.starts_with("ack = \"replicated\""), "the default rule, with its failure model: {ack}");
    assert!(ack.contains("survives the loss of either node"), "{ack}");
    // Under `replicated` an output leaves only once the standby landed its input: everything the primary released
    // (committed) is in what the standby validated.
    let committed = number_after(v["appliance"].as_str().unwrap(), "committed");
    let validated = number_after(v["standby"].as_str().expect("the standby's last word"), "validated through seq");
    assert!(committed > 0 && validated >= committed, "standby validated {validated} < primary committed {committed}");
}

#[test]
fn the_durable_rule_is_chosen_by_ack() {
    let v = demo(&["--ack", "durable"]);
    assert_eq!(v["mode"], "pair");
    assert!(v["ack"].as_str().is_some_and(|a| a.starts_with("ack = \"durable\"")), "{}", v["ack"]);
}

#[test]
fn single_runs_one_appliance_acknowledging_after_its_own_msync() {
    let v = demo(&["--single"]);
    assert_eq!(v["mode"], "single");
    assert!(v["standby"].is_null());
    assert!(v["ack"].as_str().is_some_and(|a| a.contains("local WAL")), "{}", v["ack"]);
}

#[test]
fn an_unknown_rule_is_named_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse")).args(["demo", "--ack", "eventually"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ack \"eventually\""), "{stderr}");
}
