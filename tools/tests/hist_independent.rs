//! `bourse hist` reads a .hlog exactly as a decoder nobody here wrote does: the Python HdrHistogram port (PyPI's
//! `hdrhistogram`, module `hdrh`; ci/setup.sh installs it) decodes every interval of the same file, adds them per
//! tag, and its count, min, max and percentiles are compared with `bourse hist --json`.
//!
//! The rounding convention differs and is stated here: the Rust crate (and so `bourse hist`) takes the value at
//! quantile q as the first bucket whose cumulative count reaches ceil(q × total), the Python port (like Java's
//! HdrHistogram before 2.1.12) rounds q × total to the nearest count. Both report the bucket's highest equivalent
//! value. The test recomputes each percentile from the Python decoder's own counts with the ceiling rule and asserts
//! equality; it also asserts that Python's own rule never lands further than the adjacent recorded bucket.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use bourse::demo::TempDir;
use bourse_appliance::obs::hlog::HlogWriter;
use hdrhistogram::Histogram;
use serde_json::Value;

const PYTHON_CHECK: &str = r#"
import json, math, sys
from hdrh.histogram import HdrHistogram

path, want = sys.argv[1], json.loads(sys.stdin.read())
merged = {}
for line in open(path):
    if not line.startswith("Tag="):
        continue
    tag_field, start, length, interval_max, payload = line.strip().split(",")
    tag = tag_field[len("Tag="):]
    h = HdrHistogram.decode(payload)
    if tag not in merged:
        merged[tag] = HdrHistogram(1, 3600 * 10**9, 3)
    merged[tag].add(h)

def at_ceiling(h, q):
    # The first bucket whose cumulative count reaches ceil(q * total), as the Rust crate walks the counts.
    target = max(1, math.ceil(q * h.get_total_count()))
    total = 0
    for index in range(h.counts_len):
        total += h.get_count_at_index(index)
        if total >= target:
            return h.get_highest_equivalent_value(h.get_value_from_index(index))
    return 0

names = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99_9": 0.999, "p99_99": 0.9999}
checked = 0
own_rule_differs = 0
for row in want["tags"]:
    h = merged[row["tag"]]
    assert h.get_total_count() == row["count"], (row["tag"], h.get_total_count(), row["count"])
    assert h.get_max_value() == row["max_ns"], (row["tag"], h.get_max_value(), row["max_ns"])
    assert abs(h.get_mean_value() - row["mean_ns"]) <= 0.001 * row["mean_ns"], (row["tag"], h.get_mean_value(), row["mean_ns"])
    for name, q in names.items():
        ours = row[name + "_ns"]
        assert at_ceiling(h, q) == ours, (row["tag"], name, at_ceiling(h, q), ours)
        theirs = h.get_value_at_percentile(q * 100)
        if theirs != ours:
            own_rule_differs += 1
            recorded = sorted(v.value_iterated_to for v in h.get_recorded_iterator())
            i = recorded.index(ours) if ours in recorded else -1
            assert i >= 0 and theirs in recorded[max(0, i - 1): i + 2], (row["tag"], name, theirs, ours)
        checked += 1
assert len(merged) == len(want["tags"]), (sorted(merged), [r["tag"] for r in want["tags"]])
print(f"independent decoder agrees: {len(merged)} tags, {checked} percentiles; python's round-half-up rule differs by one bucket at {own_rule_differs}")
"#;

fn python_has_hdrh() -> Result<(), String> {
    let out = Command::new("python3").args(["-c", "import hdrh.histogram"]).output().map_err(|e| format!("python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn bourse_hist_agrees_with_the_python_hdrhistogram_port() {
    if let Err(why) = python_has_hdrh() {
        println!("skipped: the Python HdrHistogram port is not installed (pip install hdrhistogram): {why}");
        return;
    }
    let dir = TempDir::new("bourse-hist-independent").unwrap();
    let path = dir.path().join("run.hlog");
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut w = HlogWriter::new(Vec::new(), base, "independent decoder check").unwrap();
    // Three shapes: narrow, a long tail over five decades, and few samples (where rounding conventions part).
    for interval in 0..4u64 {
        let mut narrow = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        let mut tail = narrow.clone();
        let mut few = narrow.clone();
        for i in 0..5_000u64 {
            narrow.record(900 + (i * 37 + interval) % 400).unwrap();
            tail.record(1_000 + (i * i * 7919 + interval * 13) % 100_000_000 / (1 + i % 97)).unwrap();
        }
        for i in 0..7u64 {
            few.record(1_000 * (i + 1) * (interval + 1)).unwrap();
        }
        let at = Duration::from_secs(interval);
        w.write("narrow", at, Duration::from_secs(1), &narrow).unwrap();
        w.write("tail", at, Duration::from_secs(1), &tail).unwrap();
        w.write("few", at, Duration::from_secs(1), &few).unwrap();
    }
    std::fs::write(&path, w.into_inner()).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_bourse")).args(["hist", "--json"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ours["tags"].as_array().unwrap().len(), 3, "{ours}");

    let mut python = Command::new("python3")
        .args(["-c", PYTHON_CHECK])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    python.stdin.take().unwrap().write_all(ours.to_string().as_bytes()).unwrap();
    let result = python.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "the independent decoder disagrees:\n{said}");
    println!("{}", said.trim());
}
