//! Interval logs round-trip, the swap protocol loses nothing across threads, and the load generator's helpers.

use std::time::{Duration, SystemTime};

use bourse_appliance::obs::hlog::{write_rate_table, Hlog, HlogWriter, LatencyLog};
use bourse_appliance::obs::stages::{stage_recorder, HistConfig, HistogramSet, Span};
use bourse_appliance::obs::tsc::Clock;
use hdrhistogram::Histogram;

fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

#[test]
fn exported_intervals_read_back_equal() {
    let mut sets = Vec::new();
    for interval in 0..3u64 {
        let mut set = HistogramSet::new(HistConfig::default()).unwrap();
        for (k, span) in Span::ALL.into_iter().enumerate() {
            for i in 0..(1000 + 100 * k as u64) {
                set.record(
                    span,
                    1 + (i * i * (k as u64 + 1) + interval * 13) % 5_000_000,
                );
            }
        }
        sets.push(set);
    }
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut w = HlogWriter::new(Vec::new(), base, "test log\nsecond comment line").unwrap();
    for (i, set) in sets.iter().enumerate() {
        w.write_set(set, Duration::from_secs(i as u64), Duration::from_secs(1))
            .unwrap();
    }
    let bytes = w.into_inner();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with("#test log\n#second comment line\n#[Histogram log format version 1.3]\n"),
        "{text}"
    );
    assert!(text.contains("#[StartTime: 1700000000.000 (seconds since epoch)]\n"));
    assert!(text.contains("#[BaseTime: 1700000000.000 (seconds since epoch)]\n"));
    assert!(text.contains("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"));
    assert!(text.contains("\nTag=rx_tx,2.000,1.000,"));

    let log = Hlog::parse(&bytes, "memory").unwrap();
    assert_eq!(log.base_time, Some(Duration::from_secs(1_700_000_000)));
    assert_eq!(log.intervals.len(), 3 * Span::ALL.len());
    for (n, interval) in log.intervals.iter().enumerate() {
        let set = &sets[n / Span::ALL.len()];
        let span = Span::ALL[n % Span::ALL.len()];
        assert_eq!(interval.tag.as_deref(), Some(span.tag()));
        assert_eq!(
            interval.start,
            Duration::from_secs((n / Span::ALL.len()) as u64)
        );
        assert_eq!(interval.length, Duration::from_secs(1));
        assert_eq!(interval.hist.len(), set.get(span).len());
        assert_eq!(
            recorded(&interval.hist),
            recorded(set.get(span)),
            "tag {}",
            span.tag()
        );
        let max_ms = (set.get(span).max() as f64 / 1e6 * 1e3).round() / 1e3;
        assert_eq!(interval.max, max_ms, "Interval_Max is in ms, three decimals");
    }
    let merged = log.merged_by_tag().unwrap();
    assert_eq!(merged.len(), Span::ALL.len());
    assert_eq!(merged["rx_decoded"].len(), 3 * 1000);
}

#[test]
fn malformed_logs_are_errors_not_panics() {
    assert!(Hlog::parse(b"Tag=a,0.000,1.000,2.000,!!!notbase64\n", "bad").is_err());
    assert!(Hlog::parse(b"Tag=a,0.000,1.000,2.000,AAAA\n", "bad").is_err());
    assert!(Hlog::parse(b"garbage line\n", "bad").is_err());
    assert!(Hlog::parse(b"", "empty").unwrap().intervals.is_empty());
}

/// A recorder thread records while this thread swaps and collects; every value ends in exactly one interval.
#[test]
fn swap_protocol_loses_no_values_across_threads() {
    let clock = Clock::monotonic();
    let (mut recorder, mut exporter) = stage_recorder(clock, HistConfig::default()).unwrap();
    const VALUES: u64 = 300_000;
    let pipeline = std::thread::spawn(move || {
        for i in 0..VALUES {
            recorder.record_span(Span::RxTx, 1 + i % 1000);
            if i % 64 == 0 {
                recorder.poll_swap();
            }
        }
        // Keep answering requests until the aux side has drained the last interval.
        recorder
    });
    let mut total = 0u64;
    let mut intervals = 0;
    while !pipeline.is_finished() {
        exporter.request_swap();
        if let Some(set) = exporter.try_collect() {
            total += set.get(Span::RxTx).len();
            intervals += 1;
        }
        std::thread::yield_now();
    }
    let mut recorder = pipeline.join().unwrap();
    // Shutdown: collect a hand-over already made, then ask for the rest once more.
    if let Some(set) = exporter.try_collect() {
        total += set.get(Span::RxTx).len();
    }
    if !exporter.is_pending() {
        exporter.request_swap();
    }
    assert!(recorder.poll_swap());
    total += exporter
        .try_collect()
        .expect("the pipeline handed its last set over")
        .get(Span::RxTx)
        .len();
    assert_eq!(
        total, VALUES,
        "values lost or duplicated over {intervals} intervals"
    );
}

#[test]
fn latency_log_and_rate_table() {
    let dir = std::env::temp_dir().join(format!("bourse-obs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("load.hlog");
    let _ = std::fs::remove_file(&path);
    let mut log = LatencyLog::create(&path, "test log").unwrap();
    assert_eq!(log.rotated, None);
    let mut h = Histogram::<u64>::new(3).unwrap();
    for v in 1..=1000u64 {
        h.record(v * 1000).unwrap();
    }
    log.write_interval("round_trip", Duration::ZERO, Duration::from_secs(1), &h).unwrap();
    log.write_interval("round_trip", Duration::from_secs(1), Duration::from_secs(1), &h).unwrap();
    assert!(log.write_interval("bad tag", Duration::ZERO, Duration::from_secs(1), &h).is_err());
    let read = Hlog::read(&path).unwrap();
    assert_eq!(read.intervals.len(), 2);
    assert_eq!(read.merged_by_tag().unwrap()["round_trip"].len(), 2000);
    // Interval_Max is in milliseconds (Java's default unit ratio for nanosecond values): 1,000 µs is 1.000 ms.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\nTag=round_trip,1.000,1.000,1.000,HISTF"), "{text}");
    assert_eq!(read.intervals[0].max, 1.0);
    assert_eq!(read.intervals[0].hist.max(), h.max());

    // A second log at the same path moves the first aside, byte for byte, instead of truncating it.
    drop(log);
    let log2 = LatencyLog::create(&path, "second run").unwrap();
    let aside = log2.rotated.clone().expect("the first log was moved aside");
    assert_eq!(aside.parent(), path.parent());
    let aside_name = aside.file_name().unwrap().to_str().unwrap();
    assert!(aside_name.starts_with("load.") && aside_name.ends_with(".hlog"), "{aside_name}");
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), text);
    drop(log2);
    // And a third run keeps both earlier logs, even within the same second.
    let log3 = LatencyLog::create(&path, "third run").unwrap();
    let aside3 = log3.rotated.clone().unwrap();
    assert_ne!(aside3, aside);
    assert!(aside.exists() && aside3.exists());
    std::fs::remove_dir_all(&dir).unwrap();

    let mut out = Vec::new();
    write_rate_table(
        &mut out,
        &[(100_000.0, h.clone()), (1_000_000.0, h.clone())],
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["rate", "50%", "90%", "99%", "99.9%", "99.99%", "max"]
    );
    let expected: Vec<String> = std::iter::once("100,000".to_string())
        .chain(
            [0.5, 0.9, 0.99, 0.999, 0.9999]
                .iter()
                .map(|&q| format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)),
        )
        .chain(std::iter::once(format!("{:.2}", h.max() as f64 / 1000.0)))
        .collect();
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), expected);
    // The p50 of 1..=1000 µs is 500 µs, within the histogram's 3-digit precision.
    assert!((expected[1].parse::<f64>().unwrap() - 500.0).abs() < 0.5);
    assert!(lines[2].starts_with("   1,000,000"), "{text}");
}
