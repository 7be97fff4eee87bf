//! `bourse hist` on known histograms: HdrHistogram's percentile lines, the summary, `--tag`, `--compare`, and
//! PNG/SVG plots checked by decoding them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use bourse_appliance::obs::hlog::HlogWriter;
use hdrhistogram::Histogram;

struct TempDir(PathBuf);
impl TempDir {
    fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("bourse-hist-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Values 1..=n × scale, each once, split over two intervals, under `tag`; plus `other` with 10× the values.
fn write_log(path: &Path, n: u64, scale: u64) {
    let mut w = HlogWriter::new(
        std::fs::File::create(path).unwrap(),
        SystemTime::now(),
        "hist test",
    )
    .unwrap();
    for half in 0..2u64 {
        let mut a = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
        let mut b = a.clone();
        for v in (1..=n).filter(|v| v % 2 == half) {
            a.record(v * scale).unwrap();
            b.record(v * scale * 10).unwrap();
        }
        let start = Duration::from_secs(half);
        w.write("rx_tx", start, Duration::from_secs(1), &a).unwrap();
        w.write("other", start, Duration::from_secs(1), &b).unwrap();
    }
}

fn bourse(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bourse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn prints_hdrhistogram_percentile_distribution_and_summary() {
    let dir = TempDir::new("dist");
    let log = dir.0.join("a.hlog");
    write_log(&log, 1000, 1);
    let text = bourse(&[
        "hist",
        log.to_str().unwrap(),
        "--units",
        "ns",
        "--tag",
        "rx_tx",
    ]);
    // HdrHistogram's header, then exact lines for values 1..=1000 (all exactly representable).
    assert!(
        text.contains("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"),
        "{text}"
    );
    assert!(
        text.contains("\n       1.000 0.000000000000          1           1.00\n"),
        "{text}"
    );
    assert!(
        text.contains("\n     500.000 0.500000000000        500           2.00\n"),
        "{text}"
    );
    // The percentile steps accumulate in floating point as in HdrHistogram, so the 90 % step may land one value up.
    let p90 = text
        .lines()
        .find(|l| words(l).get(1) == Some(&"0.900000000000"))
        .expect("a 90 % line");
    let v90: f64 = words(p90)[0].parse().unwrap();
    assert!(
        (900.0..=901.0).contains(&v90) && words(p90)[3] == "10.00",
        "{p90}"
    );
    assert!(
        text.contains("\n    1000.000 1.000000000000       1000\n"),
        "{text}"
    );
    assert!(
        text.contains("#[Mean    =      500.500, StdDeviation   =      288.675]\n"),
        "{text}"
    );
    assert!(
        text.contains("#[Max     =     1000.000, Total count    =         1000]\n"),
        "{text}"
    );
    assert!(text.contains("SubBuckets     =         2048]\n"), "{text}");
    // The tag filter left `other` out; the summary has the one row.
    assert!(!text.contains("other"), "{text}");
    let summary = text.lines().find(|l| l.starts_with("rx_tx ")).unwrap();
    assert_eq!(
        words(summary),
        ["rx_tx", "1000", "500.000", "900.000", "990.000", "999.000", "1000.000", "1000.000"]
    );

    // Microseconds divide by 1000.
    let text = bourse(&["hist", log.to_str().unwrap(), "--summary-only"]);
    let summary = text.lines().find(|l| l.starts_with("rx_tx ")).unwrap();
    assert_eq!(
        words(summary),
        ["rx_tx", "1000", "0.500", "0.900", "0.990", "0.999", "1.000", "1.000"]
    );
    let other = text.lines().find(|l| l.starts_with("other ")).unwrap();
    // 5000 ns is not exactly representable at 3 digits: HdrHistogram reports its bucket's highest value.
    assert_eq!(words(other)[0..2], ["other", "1000"]);
    let p50: f64 = words(other)[2].parse().unwrap();
    assert!((p50 - 5.0).abs() <= 5.0e-3, "{other}");
}

#[test]
fn compare_prints_ratios_per_percentile_and_tag() {
    let dir = TempDir::new("compare");
    let (a, b) = (dir.0.join("a.hlog"), dir.0.join("b.hlog"));
    write_log(&a, 1000, 1);
    write_log(&b, 1000, 2);
    let text = bourse(&[
        "hist",
        "--compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--units",
        "ns",
    ]);
    assert!(text.contains("# tag rx_tx: 1000 vs 1000 values"), "{text}");
    assert!(text.contains("# tag other: 1000 vs 1000 values"), "{text}");
    let p50: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("p50 "))
        .collect();
    assert_eq!(p50.len(), 2);
    // b doubles every value: 500 → 1000 for rx_tx (exact), ratio 2.
    assert!(
        p50.iter()
            .any(|l| words(l) == ["p50", "500.000", "1000.000", "2.000"]),
        "{text}"
    );
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with('p') && !l.contains("percentile"))
    {
        let ratio: f64 = words(line)[3].parse().unwrap();
        assert!((ratio - 2.0).abs() < 0.01, "{line}");
    }
}

#[test]
fn plots_are_valid_png_and_svg_with_a_line_per_series() {
    let dir = TempDir::new("plot");
    let (a, b) = (dir.0.join("a.hlog"), dir.0.join("b.hlog"));
    write_log(&a, 5000, 1000);
    write_log(&b, 5000, 1300);
    let png = dir.0.join("out.png");
    let svg = dir.0.join("out.svg");
    bourse(&[
        "hist",
        a.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
        "--summary-only",
    ]);
    bourse(&[
        "hist",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--summary-only",
    ]);

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1024, 640));
    // Not a blank image: at least a few hundred non-white pixels (axes, labels, two curves).
    let channels = info.color_type.samples();
    let inked = pixels[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    assert!(inked > 500, "only {inked} inked pixels");

    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1024"));
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for series in [
        "a.hlog:rx_tx",
        "a.hlog:other",
        "b.hlog:rx_tx",
        "b.hlog:other",
    ] {
        assert!(
            labels.contains(&series),
            "legend lacks {series}: {labels:?}"
        );
    }
    for pct in ["90%", "99%", "99.9%"] {
        assert!(labels.contains(&pct), "x axis lacks {pct}: {labels:?}");
    }
    // One polyline per curve (plotters draws line series as polylines), of many points each.
    let curves = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split_whitespace().count() > 20)
        })
        .count();
    assert_eq!(curves, 4, "expected one long polyline per series");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = TempDir::new("bad");
    let bad = dir.0.join("bad.hlog");
    std::fs::write(&bad, "Tag=x,0.0,1.0,2.0,@@@@\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["hist", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.hlog"));
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["hist", bad.to_str().unwrap(), "--plot", "/tmp/x.jpg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn csv_and_json_summaries_hold_the_same_figures() {
    let dir = TempDir::new("csvjson");
    let a = dir.0.join("a.hlog");
    write_log(&a, 1000, 1000);
    let csv = bourse(&["hist", a.to_str().unwrap(), "--csv", "--tag", "rx_tx"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "file,tag,count,mean_us,p50_us,p90_us,p99_us,p99_9_us,p99_99_us,max_us");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((row[1], row[2]), ("rx_tx", "1000"), "{csv}");
    // 1..=1000 µs: the median is 500 µs and the max 1000 µs, within the histogram's 3-digit precision.
    let p50: f64 = row[4].parse().unwrap();
    let max: f64 = row[9].parse().unwrap();
    assert!((p50 - 500.0).abs() < 0.5 && (max - 1000.0).abs() < 1.0, "{csv}");

    let json = bourse(&["hist", a.to_str().unwrap(), "--json"]);
    assert_eq!(json.trim().lines().count(), 1, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["values"], "ns");
    let tags = v["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    let rx = tags.iter().find(|t| t["tag"] == "rx_tx").unwrap();
    assert_eq!(rx["count"], 1000);
    assert_eq!(rx["p50_ns"].as_f64().unwrap() / 1e3, p50);
    assert_eq!(rx["max_ns"].as_f64().unwrap() / 1e3, max);
}

#[test]
fn log_scaled_plot_in_the_unit_of_its_range_with_plain_labels() {
    let dir = TempDir::new("logy");
    let a = dir.0.join("a.hlog");
    // Values up to 10 s: the axis is in seconds, not 10,000,000 µs.
    write_log(&a, 1000, 1_000_000);
    let svg = dir.0.join("log.svg");
    bourse(&["hist", a.to_str().unwrap(), "--plot", svg.to_str().unwrap(), "--log-y", "--summary-only"]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let labels: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    assert!(labels.contains(&"latency (s)"), "{labels:?}");
    let numbers: Vec<&&str> = labels.iter().filter(|l| l.replace(',', "").parse::<f64>().is_ok()).collect();
    assert!(numbers.len() >= 3, "{labels:?}");
    assert!(!numbers.iter().any(|l| l.ends_with(".0") || l.len() > 8), "long or padded labels: {labels:?}");
    let curves = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| n.attribute("points").is_some_and(|p| p.split_whitespace().count() > 20))
        .count();
    assert_eq!(curves, 2);

    // A plot path that cannot be created is named in a plain error, not a debug dump.
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["hist", a.to_str().unwrap(), "--plot", "/nonexistent-dir/x.svg"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/nonexistent-dir/x.svg: cannot create the plot file"), "{err}");
    assert!(!err.contains("Os {"), "{err}");
}

#[test]
fn time_series_and_a_time_window() {
    let dir = TempDir::new("timeseries");
    let a = dir.0.join("a.hlog");
    write_log(&a, 1000, 1000);
    let svg = dir.0.join("ts.svg");
    bourse(&["hist", a.to_str().unwrap(), "--timeseries", svg.to_str().unwrap(), "--summary-only"]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let labels: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    for series in ["rx_tx p50", "rx_tx p99", "rx_tx max", "other p99"] {
        assert!(labels.contains(&series), "legend lacks {series}: {labels:?}");
    }
    assert!(labels.contains(&"latency (ms)"), "values up to 10 ms are drawn in ms: {labels:?}");
    // Two intervals per tag: one two-point line per tag and statistic.
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| n.attribute("points").is_some_and(|p| p.split_whitespace().count() == 2))
        .count();
    assert!(lines >= 6, "{lines} two-point lines");

    // --start keeps only the intervals starting at or after it: the second half of the values.
    let csv = bourse(&["hist", a.to_str().unwrap(), "--csv", "--tag", "rx_tx", "--start", "1"]);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[2], "500", "{csv}");
    let csv = bourse(&["hist", a.to_str().unwrap(), "--csv", "--tag", "rx_tx", "--end", "1"]);
    assert_eq!(csv.lines().nth(1).unwrap().split(',').nth(2), Some("500"), "{csv}");
}
