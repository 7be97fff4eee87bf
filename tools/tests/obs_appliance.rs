//! The appliance's own latency measurements, end to end: only wire inputs are measured (an idle appliance, which
//! still sequences a timer tick every 100 ms, records nothing), the metrics histograms only ever grow, the .hlog
//! holds every sample including the last interval before a stop, and a restart keeps the previous .hlog.
//!
//! One test function on purpose: the appliance's pipeline busy-polls, and two of them at once on a two-core host
//! would measure the scheduler, not the code.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

use bourse::demo::{demo_config, load_options, InProcess, TempDir};
use bourse::load::run_load;
use bourse_appliance::obs::hlog::Hlog;
use bourse_appliance::obs::stages::Span;

/// `_count` of every stage span's histogram, from one scrape of the metrics endpoint.
fn stage_counts(addr: SocketAddrV4) -> BTreeMap<String, f64> {
    scrape(addr).0
}

/// One scrape: `_count` per stage span, and the sum of `bourse_rejects_total` over its reasons.
fn scrape(addr: SocketAddrV4) -> (BTreeMap<String, f64>, f64) {
    let mut s = TcpStream::connect(addr).expect("connecting to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let counts: BTreeMap<String, f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "bourse_stage_latency_seconds_count")
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("a _count is a plain number: {other:?}"),
            };
            (s.labels.get("stage").unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(counts.len(), Span::ALL.len(), "one _count per span:\n{body}");
    let rejects = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "bourse_rejects_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("rejects are counters: {other:?}"),
        })
        .sum();
    (counts, rejects)
}

/// Samples per tag in a whole .hlog.
fn hlog_counts(log: &Hlog) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for i in &log.intervals {
        *counts.entry(i.tag.clone().unwrap_or_default()).or_insert(0) += i.hist.len();
    }
    counts
}

#[test]
fn wire_inputs_only_cumulative_metrics_and_nothing_lost_at_stop() {
    let dir = TempDir::new("bourse-obs-appliance").unwrap();
    let wal = dir.path().join("wal");
    let hlog_path = dir.path().join("stages.hlog");
    let mut config = demo_config(&wal, "msync", None).unwrap();
    let metrics = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, support::free_tcp_port());
    config.appliance.metrics_bind = Some(metrics);
    config.appliance.hlog_path = Some(hlog_path.clone());
    config.appliance.hlog_interval_ms = 250;

    // Idle for 2 s: timer ticks are sequenced (every 100 ms) but no wire input arrives, so nothing is measured.
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let idle = stage_counts(metrics);
    assert!(idle.values().all(|&c| c == 0.0), "an idle appliance measured something: {idle:?}");
    let idle_log = Hlog::read(&hlog_path).unwrap();
    assert!(idle_log.intervals.len() >= Span::ALL.len(), "the idle intervals are written too");
    assert!(idle_log.intervals.iter().all(|i| i.hist.is_empty()), "idle intervals hold samples");

    // Under load, every scrape's _count is at least the previous one's.
    let mut opts = load_options(&config, vec![2_000.0], Duration::from_secs(1), 3).unwrap();
    // Every 50th order names an unknown symbol: the appliance must count the rejects the firms see.
    opts.mix.invalid_every = 50;
    let load = {
        let opts = opts.clone();
        std::thread::spawn(move || run_load(&opts))
    };
    let mut scrapes = vec![idle];
    while !load.is_finished() {
        std::thread::sleep(Duration::from_millis(300));
        scrapes.push(stage_counts(metrics));
    }
    let r = load.join().unwrap().unwrap();
    assert_eq!((r.sent, r.replied, r.lost), (2_000, 2_000, 0), "{r:?}");
    // Past the last interval boundary, every sample is exported.
    std::thread::sleep(Duration::from_millis(600));
    let (after, rejects) = scrape(metrics);
    scrapes.push(after);
    assert!(r.rejects >= 40, "{r:?}");
    assert_eq!(rejects, r.rejects as f64, "the appliance counts every refusal the firms received: {r:?}");
    for pair in scrapes.windows(2) {
        for (stage, &before) in &pair[0] {
            assert!(pair[1][stage] >= before, "{stage}: _count went from {before} to {}", pair[1][stage]);
        }
    }
    let last = scrapes.last().unwrap();
    // Every order is one wire input, measured once per span (logins and heartbeats are not sequenced).
    assert_eq!(last["rx_tx"], 2_000.0, "{last:?}");
    assert!(last.values().all(|&c| c == 2_000.0), "{last:?}");
    let summary = app.stop_and_join().unwrap();

    // The .hlog holds exactly those samples, the last interval's included.
    let log = Hlog::read(&hlog_path).unwrap();
    let counts = hlog_counts(&log);
    for span in Span::ALL {
        assert_eq!(counts.get(span.tag()), Some(&2_000), "{counts:?}; appliance: {summary}");
    }
    let first_run = std::fs::read(&hlog_path).unwrap();

    // A short second run on the same journal: its last (partial) interval is flushed at the stop, and the
    // first run's log is kept beside the new one, not truncated.
    config.appliance.hlog_interval_ms = 60_000;
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut again = load_options(&config, vec![1_000.0], Duration::from_millis(300), 4).unwrap();
    again.mix.first_user_ref = r.next_user_ref;
    again.md = None;
    let r2 = run_load(&again).unwrap();
    assert_eq!((r2.sent, r2.lost), (300, 0), "{r2:?}");
    app.stop_and_join().unwrap();
    let counts = hlog_counts(&Hlog::read(&hlog_path).unwrap());
    assert_eq!(counts.get("rx_tx"), Some(&300), "the only interval is the one flushed at the stop: {counts:?}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &hlog_path && p.extension().is_some_and(|e| e == "hlog"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), first_run, "the first run's log is kept byte for byte");
}
