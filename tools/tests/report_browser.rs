//! `bourse report` makes one self-contained HTML page, and a real browser renders it: headless Chromium, driven
//! over WebDriver by chromedriver, loads the page with the network unused, and DOM queries check that both plots
//! drew their lines, that the stage table holds one row per tag with the right counts, and that the configuration
//! and host facts are there; a screenshot is taken and must show a drawn page, not a blank one.
//!
//! Without Chromium and chromedriver (Debian's `chromium` and `chromium-driver`, which ci/setup.sh installs) the
//! browser part prints `skipped: <reason>`; the page's own checks still run.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bourse::demo::TempDir;
use bourse_appliance::obs::hlog::HlogWriter;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TAGS: [(&str, u64); 3] = [("rx_decoded", 800), ("journaled", 1_500), ("rx_tx", 12_000)];
const INTERVALS: u64 = 6;
const SAMPLES_PER_INTERVAL: u64 = 1_000;

/// An interval log of three tags, six 1 s intervals each, values spread over two decades.
fn write_hlog(path: &Path) {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut w = HlogWriter::new(Vec::new(), base, "bourse stage latencies, values in nanoseconds").unwrap();
    for i in 0..INTERVALS {
        for (tag, base_ns) in TAGS {
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
            for s in 0..SAMPLES_PER_INTERVAL {
                h.record(base_ns + (s * s * 7 + i * 131) % (base_ns * 20)).unwrap();
            }
            w.write(tag, Duration::from_secs(i), Duration::from_secs(1), &h).unwrap();
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}

fn make_report(dir: &Path) -> PathBuf {
    let hlog = dir.join("stages.hlog");
    write_hlog(&hlog);
    let out = dir.join("report.html");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bourse.example.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["report", "--hlog"])
        .arg(&hlog)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .args(["--title", "report test run"])
        .status()
        .unwrap();
    assert!(status.success(), "bourse report failed: {status}");
    out
}

#[test]
fn the_page_is_self_contained() {
    let dir = TempDir::new("bourse-report-page").unwrap();
    let page = std::fs::read_to_string(make_report(dir.path())).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Nothing to fetch: no scripts, stylesheets, images or frames by reference; the one URL is the SVG namespace.
    for forbidden in ["<script", "<link", "<img", "<iframe", "src=", "@import"] {
        assert!(!page.contains(forbidden), "the page references {forbidden}");
    }
    let urls: Vec<&str> = page.match_indices("http").map(|(i, _)| &page[i..(i + 26).min(page.len())]).collect();
    assert!(urls.iter().all(|u| u.starts_with("http://www.w3.org/2000/svg")), "{urls:?}");
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(!page.contains("<?xml"), "inline SVG keeps no XML declaration");
}

#[test]
fn a_bad_hlog_is_named_in_the_error() {
    let dir = TempDir::new("bourse-report-bad").unwrap();
    let missing = dir.path().join("missing.hlog");
    let out = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["report", "--hlog"])
        .arg(&missing)
        .arg("--out")
        .arg(dir.path().join("r.html"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.hlog"), "{stderr}");
    assert!(!dir.path().join("r.html").exists());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ureq::get(&format!("{}/status", driver.base)).call() {
                let v: Value = r.into_json().unwrap();
                if v["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match body {
            Some(b) => ureq::request(method, &url).send_json(b),
            None => ureq::request(method, &url).call(),
        };
        match response {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(code, r)) => {
                let mut text = String::new();
                let _ = r.into_reader().read_to_string(&mut text);
                panic!("WebDriver {method} {path}: HTTP {code}: {text}")
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }
}

/// What the page shows, read from the live DOM by the browser.
const DOM_QUERY: &str = r#"
const svgs = [...document.querySelectorAll('figure svg')];
// Data lines are polylines of many points spanning the plot (axes have two or three points, legend samples are
// 20 px wide).
const drawn = (svg) => [...svg.querySelectorAll('polyline')]
    .filter((e) => e.points.numberOfItems > 4 && e.getBBox().width > 100).length;
const rows = [...document.querySelectorAll('#stages tbody tr')]
    .map((r) => [...r.cells].map((c) => c.textContent));
const facts = (id) => Object.fromEntries([...document.querySelectorAll('#' + id + ' tr')]
    .map((r) => [r.cells[0].textContent, r.cells[1].textContent]));
return {
  title: document.title,
  figures: svgs.map((s) => ({ id: s.parentElement.id, width: s.getBoundingClientRect().width, lines: drawn(s),
                               texts: [...s.querySelectorAll('text')].map((t) => t.textContent) })),
  rows: rows,
  config: facts('config'),
  host: facts('host'),
  resources: performance.getEntriesByType('resource').length,
};
"#;

#[test]
fn headless_chromium_renders_the_plots_and_tables() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            println!("skipped: {tool} is not installed (Debian's chromium and chromium-driver; ci/setup.sh installs them)");
            return;
        }
    }
    let dir = TempDir::new("bourse-report-browser").unwrap();
    let page = make_report(dir.path());
    let driver = Driver::start();
    let session = driver.call(
        "POST",
        "/session",
        Some(json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"]
        }}}})),
    );
    let id = session["value"]["sessionId"].as_str().expect("a WebDriver session id").to_string();
    let url = format!("file://{}", page.display());
    driver.call("POST", &format!("/session/{id}/url"), Some(json!({ "url": url })));
    let dom = driver.call("POST", &format!("/session/{id}/execute/sync"), Some(json!({ "script": DOM_QUERY, "args": [] })))
        ["value"]
        .clone();
    let shot = driver.call("GET", &format!("/session/{id}/screenshot"), None)["value"].as_str().unwrap().to_string();
    driver.call("DELETE", &format!("/session/{id}"), None);

    assert_eq!(dom["title"], "report test run");
    assert_eq!(dom["resources"], 0, "the page fetched something: {dom}");
    let figures = dom["figures"].as_array().unwrap();
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["percentiles", "timeseries"]);
    // One line per tag in the percentile plot; p50, p99 and max per tag over time.
    assert_eq!(figures[0]["lines"].as_u64().unwrap(), TAGS.len() as u64, "{dom}");
    assert_eq!(figures[1]["lines"].as_u64().unwrap(), 3 * TAGS.len() as u64, "{dom}");
    for f in figures {
        assert!(f["width"].as_f64().unwrap() > 400.0, "a plot was not laid out: {f}");
        let texts: Vec<&str> = f["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert!(texts.iter().any(|t| t.contains("latency (µs)")), "axis label in µs: {texts:?}");
    }
    let percentile_texts = figures[0]["texts"].to_string();
    assert!(percentile_texts.contains("99.9%"), "{percentile_texts}");

    let rows = dom["rows"].as_array().unwrap();
    let mut tags: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    tags.sort_unstable();
    let mut want: Vec<&str> = TAGS.iter().map(|t| t.0).collect();
    want.sort_unstable();
    assert_eq!(tags, want);
    for r in rows {
        assert_eq!(r[1].as_str().unwrap(), (INTERVALS * SAMPLES_PER_INTERVAL).to_string(), "count column: {r}");
        assert_eq!(r.as_array().unwrap().len(), 9, "tag, count, mean and six percentiles: {r}");
    }
    assert_eq!(dom["config"]["backend"], "socket on 127.0.0.1:9000", "{dom}");
    assert!(dom["config"]["WAL mode"].is_string(), "{dom}");
    assert!(dom["host"]["cores available"].as_str().unwrap().parse::<u32>().unwrap() >= 1, "{dom}");

    let png_bytes = base64::engine::general_purpose::STANDARD.decode(shot).unwrap();
    let shot_path = dir.path().join("report.png");
    std::fs::write(&shot_path, &png_bytes).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width >= 1000 && info.height >= 800, "{}x{}", info.width, info.height);
    let pixels = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let distinct: std::collections::HashSet<&[u8]> = pixels.chunks(channels).collect();
    assert!(distinct.len() > 16, "the screenshot is nearly blank: {} colours", distinct.len());
    println!("screenshot {}x{}, {} colours", info.width, info.height, distinct.len());
    // To look at it: BOURSE_REPORT_KEEP=<dir> keeps the page and its screenshot.
    if let Some(keep) = std::env::var_os("BOURSE_REPORT_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report.html")).unwrap();
        std::fs::copy(&shot_path, keep.join("report.png")).unwrap();
    }
}
