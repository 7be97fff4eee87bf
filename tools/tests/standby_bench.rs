//! The small size of `bourse bench mirror`, so the benchmark keeps running: primary and standby in-process over
//! TCP on loopback, every record committed through the standby's acknowledgement. Timing is reported, never
//! asserted against a target (that is the benchmark's job, on a quiet host).

use bourse::bench::mirror::{measure, MirrorArgs};

#[test]
fn mirror_bench_small_run_commits_every_record_through_the_standby() {
    let args = MirrorArgs {
        transport: "tcp".into(),
        records: 300,
        burst_records: 3_000,
        wal_mode: "none".into(),
        veth: false,
        json: true,
    };
    let r = measure(&args).unwrap();
    assert_eq!(r.records, 300);
    assert!(r.commit_p50_us > 0.0 && r.commit_p99_us >= r.commit_p50_us && r.commit_max_us >= r.commit_p99_us, "{r:?}");
    assert!(r.records_per_s > 0.0, "{r:?}");
    eprintln!("mirror bench (small, dev profile): {r:?}");

    let wrong = MirrorArgs { transport: "verbs".into(), ..args };
    let err = format!("{:#}", measure(&wrong).unwrap_err());
    assert!(err.contains("RDMA"), "{err}");
}
