//! `bourse bench wire --quick --json` end to end: namespaces, the echo floor, the appliance under closed- and
//! open-loop load, per backend. The numbers are measurements, not gates (the shared VMs are noisy): the tests
//! check that every key is there and that the numbers are the kind a real run produces.
//!
//! The runs hold a lock so that two busy-polling appliances never share the two cores (and the veth) at once.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

static VETH: Mutex<()> = Mutex::new(());

/// Whole-run bound of one quick benchmark; the binary bounds its own children well within it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The reason these tests cannot run here, if any.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("needs root for network namespaces".into());
    }
    if !Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false) {
        return Some("no `ip` command (install iproute2)".into());
    }
    None
}

/// Runs `bourse bench wire --backend <backend> --quick --json` and returns its one JSON object.
fn quick(backend: &str) -> Option<Value> {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return None;
    }
    let _veth = VETH.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["bench", "wire", "--backend", backend, "--quick", "--json"])
        .output()
        .expect("running bourse bench wire");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench wire --backend {backend} failed ({}):\n{stderr}", out.status);
    assert!(started.elapsed() < RUN_LIMIT, "bench wire --backend {backend} took {:?}", started.elapsed());
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line, got:\n{stdout}");
    let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", lines[0]));
    println!("{backend}: {v}");
    Some(v)
}

fn number(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or_else(|| panic!("key {key:?} missing or not a number in {v}"))
}

/// Every key of a measured run, with sane values.
fn check_run(v: &Value, backend: &str) {
    assert_eq!(v["backend"], backend, "{v}");
    assert_eq!(v["wal_mode"], "dax", "{v}");
    let echo = number(v, "echo_p50_us");
    let (p50, p99, p999) = (number(v, "rtt_p50_us"), number(v, "rtt_p99_us"), number(v, "rtt_p999_us"));
    let overhead = number(v, "appliance_overhead_p50_us");
    let rate = number(v, "msgs_per_s");
    assert!(echo > 0.0 && echo < 10_000.0, "echo p50 {echo} us: {v}");
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "rtt percentiles out of order: {v}");
    assert!(overhead.is_finite() && (overhead - (p50 - echo)).abs() < 0.02, "overhead {overhead}: {v}");
    // The quick run offers 20,000 messages per second for half a second; a working appliance answers most.
    assert!(rate > 1_000.0 && rate <= number(v, "offered_per_s") * 1.05, "reply rate {rate}/s: {v}");
    assert!(number(v, "echo_samples") >= 1_000.0, "{v}");
    assert!(number(v, "rtt_samples") > 0.0, "{v}");
}

#[test]
fn socket_backend_quick_run_reports_every_figure() {
    let Some(v) = quick("socket") else { return };
    check_run(&v, "socket");
    assert_eq!(v["mode"], "recvmmsg/sendmmsg", "{v}");
}

#[test]
fn uring_backend_quick_run_reports_every_figure() {
    let Some(v) = quick("uring") else { return };
    check_run(&v, "uring");
}

#[test]
fn af_xdp_backend_quick_run_reports_every_figure() {
    let Some(v) = quick("af_xdp") else { return };
    check_run(&v, "af_xdp");
    let mode = v["mode"].as_str().unwrap_or_default();
    assert!(mode.contains("copy") || mode.contains("zero-copy"), "af_xdp mode {mode:?}: {v}");
}

/// In a build without DPDK the backend is reported as skipped rather than failing; with it, it is measured.
#[test]
fn dpdk_backend_is_measured_or_reported_skipped() {
    let Some(v) = quick("dpdk") else { return };
    if cfg!(feature = "dpdk") {
        check_run(&v, "dpdk");
    } else {
        assert_eq!(v, serde_json::json!({"backend": "dpdk", "skipped": "built without --features dpdk"}));
    }
}
