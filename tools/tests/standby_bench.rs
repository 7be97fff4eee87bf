//! The small size of `bourse bench mirror`, so the benchmark keeps running: primary and standby in-process over
//! TCP on loopback, every record committed through the standby's acknowledgement. Timing is reported, never
//! asserted against a target (that is the benchmark's job, on a quiet host).

use bourse::bench::mirror::{measure, MirrorArgs};

#[test]
fn mirror_bench_small_run_commits_every_record_through_the_standby() {
    let args = MirrorArgs {
        transport: "tcp".into(),
        ack: "durable".into(),
        records: 300,
        burst_records: 3_000,
        wal_mode: "none".into(),
        veth: false,
        json: true,
    };
    let r = measure(&args).unwrap();
    assert_eq!((r.records, r.ack), (300, "durable"));
    assert!(r.commit_p50_us > 0.0 && r.commit_p99_us >= r.commit_p50_us && r.commit_max_us >= r.commit_p99_us, "{r:?}");
    assert!(r.records_per_s > 0.0, "{r:?}");
    eprintln!("mirror bench (small, dev profile): {r:?}");

    // Replicated over msync WALs: commits complete on the standby's landing, with both nodes' msync behind them.
    let replicated = MirrorArgs { ack: "replicated".into(), wal_mode: "msync".into(), records: 100, burst_records: 1_000, ..args.clone() };
    let r = measure(&replicated).unwrap();
    assert_eq!((r.records, r.ack, r.wal_mode.as_str()), (100, "replicated", "msync"), "{r:?}");
    assert!(r.failure_model.contains("both lose power"), "{r:?}");
    eprintln!("mirror bench (small, dev profile, replicated over msync): {r:?}");

    let bad = MirrorArgs { ack: "eventually".into(), ..args.clone() };
    assert!(format!("{:#}", measure(&bad).unwrap_err()).contains("--ack"));
    let wrong = MirrorArgs { transport: "verbs".into(), ..args };
    let err = format!("{:#}", measure(&wrong).unwrap_err());
    assert!(err.contains("RDMA"), "{err}");
}
