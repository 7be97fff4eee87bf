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
    stats.set_stages_from(&set);
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
        find("bourse_commit_lag_seconds", None),
        Value::Gauge(1.5e-6)
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

    let Value::Summary(quantiles) = find("bourse_stage_latency_seconds", Some(("stage", "rx_tx")))
    else {
        panic!("stage latency is not a summary:\n{body}");
    };
    let h = set.get(Span::RxTx);
    let expected = [
        (0.5, h.value_at_quantile(0.5)),
        (0.99, h.value_at_quantile(0.99)),
        (0.999, h.value_at_quantile(0.999)),
    ];
    assert_eq!(quantiles.len(), 3);
    for (got, (q, ns)) in quantiles.iter().zip(expected) {
        assert_eq!(got.quantile, q);
        assert!(
            (got.count - ns as f64 / 1e9).abs() < 1e-12,
            "quantile {q}: {} vs {ns} ns",
            got.count
        );
    }
    // 500 µs is the median of 1..=1000 µs.
    assert!((quantiles[0].count - 500e-6).abs() < 1e-6);
}
