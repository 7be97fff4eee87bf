//! The metrics endpoint serves the stats block as Prometheus text that a Prometheus parser reads back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bourse_appliance::obs::metrics::MetricsServer;
use bourse_appliance::obs::stages::{HistConfig, HistogramSet, Span};
use bourse_appliance::obs::statsblock::{Counter, StatsWriter, COUNTERS};

fn fetch(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_endpoint_serves_parseable_prometheus_text() {
    let stats = Arc::new(StatsWriter::in_memory());
    stats.set_names(
        "af_xdp",
        &["bad_checksum", "unknown_source"],
        &["price_band", "insufficient_funds"],
    );
    stats.set_wal_mode("msync");
    stats.add_rx(1234);
    stats.add_tx(1200);
    stats.add_drop(1, 5);
    stats.add_reject(0, 7);
    stats.set_orders_resting(42);
    stats.set_commit(99, 1500);
    stats.set_counter(Counter::KernelDrops, 17);
    stats.set_counter(Counter::IdleLogouts, 2);
    let mut set = HistogramSet::new(HistConfig::default()).unwrap();
    for v in 1..=1000u64 {
        set.record(Span::RxTx, v * 1000);
        set.record(Span::RxDecoded, v);
    }
    // Two intervals: the totals add up, the quantiles are the last interval's.
    stats.add_stage_interval(&set);
    stats.add_stage_interval(&set);
    stats.heartbeat();

    let mut server = MetricsServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The aux loop: poll without blocking until told to stop.
    let aux = {
        let stats = stats.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            while !stop.load(Ordering::Relaxed) {
                served += server.poll(stats.block()).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            served
        })
    };

    let response = fetch(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let not_found = fetch(addr, "GET /other HTTP/1.1\r\nHost: test\r\n\r\n");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(aux.join().unwrap(), 2);

    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4"),
        "{response}"
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len());

    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no sample {name} {label:?} in\n{body}"))
            .value
            .clone()
    };
    use prometheus_parse::Value;
    assert_eq!(find("bourse_rx_total", None), Value::Counter(1234.0));
    assert_eq!(find("bourse_tx_total", None), Value::Counter(1200.0));
    assert_eq!(
        find("bourse_drops_total", Some(("reason", "unknown_source"))),
        Value::Counter(5.0)
    );
    assert_eq!(
        find("bourse_drops_total", Some(("reason", "bad_checksum"))),
        Value::Counter(0.0)
    );
    assert_eq!(
        find("bourse_rejects_total", Some(("reason", "price_band"))),
        Value::Counter(7.0)
    );
    assert_eq!(find("bourse_orders_resting", None), Value::Gauge(42.0));
    assert_eq!(find("bourse_commit_seq", None), Value::Gauge(99.0));
    assert_eq!(
        find("bourse_commit_backlog_inputs", None),
        Value::Gauge(1500.0)
    );
    assert_eq!(
        find("bourse_info", Some(("backend", "af_xdp"))),
        Value::Gauge(1.0)
    );
    assert_eq!(scrape.docs["bourse_rx_total"], "Datagrams received.");
    assert_eq!(find("bourse_kernel_drops_total", None), Value::Counter(17.0));
    assert_eq!(find("bourse_idle_logouts_total", None), Value::Counter(2.0));
    for (_, name, help) in COUNTERS {
        let metric = format!("bourse_{name}_total");
        assert!(matches!(find(&metric, None), Value::Counter(_)), "{metric} is a counter");
        assert_eq!(scrape.docs[&metric], help);
    }

    // A cumulative Prometheus histogram: 2 × 1,000 values of 1..=1000 µs; buckets count values ≤ le.
    let Value::Histogram(buckets) = find("bourse_stage_latency_seconds", Some(("stage", "rx_tx"))) else {
        panic!("stage latency is not a histogram:\n{body}");
    };
    let bucket = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap_or_else(|| panic!("no le {le}")).count;
    assert_eq!(bucket(100e-6), 200.0);
    assert_eq!(bucket(1e-3), 2000.0);
    assert_eq!(bucket(f64::INFINITY), 2000.0);
    assert_eq!(bucket(1e-6), 2.0, "the 1 µs value of each interval");
    assert_eq!(bucket(500e-9), 0.0);
    assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count), "{buckets:?}");
    let sample = |name: &str| find(name, Some(("stage", "rx_tx")));
    assert_eq!(sample("bourse_stage_latency_seconds_count"), Value::Untyped(2000.0));
    // The sum is exact: 2 × Σ 1..=1000 µs = 1.001 s.
    let Value::Untyped(sum) = sample("bourse_stage_latency_seconds_sum") else { panic!("sum") };
    assert!((sum - 1.001).abs() < 1e-9, "{sum}");
    assert_eq!(sample("bourse_stage_latency_interval_samples"), Value::Gauge(1000.0));
    // A span that saw nothing says NaN, not a latency of zero.
    let nan = scrape.samples.iter().find(|s| {
        s.metric == "bourse_stage_latency_interval_seconds"
            && s.labels.get("stage") == Some("committed_tx")
            && s.labels.get("percentile") == Some("50")
    });
    assert!(matches!(nan.map(|s| &s.value), Some(Value::Gauge(v)) if v.is_nan()), "{body}");

    let quantiles: Vec<(f64, f64)> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "bourse_stage_latency_interval_seconds" && s.labels.get("stage") == Some("rx_tx"))
        .map(|s| match s.value {
            Value::Gauge(v) => (s.labels.get("percentile").unwrap().parse::<f64>().unwrap() / 100.0, v),
            ref v => panic!("quantile is not a gauge: {v:?}"),
        })
        .collect();
    let h = set.get(Span::RxTx);
    let expected = [
        (0.5, h.value_at_quantile(0.5)),
        (0.99, h.value_at_quantile(0.99)),
        (0.999, h.value_at_quantile(0.999)),
    ];
    assert_eq!(quantiles.len(), 3);
    for (got, (q, ns)) in quantiles.iter().zip(expected) {
        assert!((got.0 - q).abs() < 1e-12, "{} vs {q}", got.0);
        assert!((got.1 - ns as f64 / 1e9).abs() < 1e-12, "quantile {q}: {} vs {ns} ns", got.1);
    }
    // 500 µs is the median of 1..=1000 µs.
    assert!((quantiles[0].1 - 500e-6).abs() < 1e-6);

    // The build and the standard process metrics.
    let info = scrape.samples.iter().find(|s| s.metric == "bourse_build_info").expect("bourse_build_info");
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(info.value, Value::Gauge(1.0));
    let Value::Counter(cpu) = find("process_cpu_seconds_total", None) else { panic!("cpu is a counter") };
    assert!(cpu >= 0.0);
    let Value::Gauge(rss) = find("process_resident_memory_bytes", None) else { panic!("rss is a gauge") };
    assert!(rss > 1e6, "a running test binary holds more than a megabyte: {rss}");
    let Value::Gauge(start) = find("process_start_time_seconds", None) else { panic!("start is a gauge") };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start > now - 86_400.0 && start <= now + 1.0, "started {start}, now {now}");
    let Value::Gauge(fds) = find("process_open_fds", None) else { panic!("fds") };
    let Value::Gauge(max_fds) = find("process_max_fds", None) else { panic!("max fds") };
    assert!(fds >= 3.0 && max_fds >= fds, "{fds} of {max_fds}");

    promtool_check(body);
}

/// `promtool check metrics` (Prometheus's own linter) accepts the body without a complaint, when installed.
fn promtool_check(body: &str) {
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: promtool check: promtool not runnable ({e}); install the prometheus package");
            return;
        }
    };
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{body}");
}
