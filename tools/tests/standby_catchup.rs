//! A standby attached to a primary with history is caught up from the primary's older WAL segments, and mirroring
//! follows the primary's WAL through many segment rotations. The primary first trades alone (no mirror, 16 KiB
//! segments) and stops; it restarts on the same journal with `ack = "mirrored"` and a fresh, empty standby; orders
//! flow again and every one is answered only once the standby has everything, from seq 1. Both nodes run in this
//! process on loopback.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bourse_appliance::config::Config;
use bourse::demo::{free_udp_port, load_options, InProcess, TempDir};
use bourse::load::run_load;
use bourse_appliance::standby::{follow, Outcome};
use bourse_persist::wal::segment::list_segments;
use support::wal_records;

const SEGMENT_BYTES: u64 = 16 * 1024;
const STARTUP_BOUND: Duration = Duration::from_secs(20);

fn node(name: &str, wal: &Path, mirror: &str) -> Config {
    let text = format!(
        "[appliance]\nname = \"{name}\"\n[backend]\nkind = \"socket\"\nbind = \"127.0.0.1:{order}\"\n\
         [market_data]\ngroup = \"127.0.0.1:{md}\"\nsession = \"BOURSECU\"\n\
         [wal]\ndir = \"{wal}\"\nmode = \"msync\"\nsegment_bytes = {SEGMENT_BYTES}\n{mirror}\n",
        order = free_udp_port().unwrap(),
        md = free_udp_port().unwrap(),
        wal = wal.display(),
    ) + &bourse_appliance::config::demo_market_toml(2, "127.0.0.1");
    Config::parse(&text).unwrap()
}

#[test]
fn a_fresh_standby_catches_up_from_the_first_segment_and_follows_rotations() {
    let tmp = TempDir::new("bourse-catchup").unwrap();
    let (p_dir, s_dir) = (tmp.path().join("primary"), tmp.path().join("standby"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pid = std::process::id();
    // Promotion would end the test: the standby's timeout is far beyond any scheduler hiccup.
    let primary_cfg = node(
        &format!("cup-{pid}"),
        &p_dir,
        &format!("[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:{port}\"\nack = \"mirrored\"\npromote_after_ms = 60000"),
    );
    let standby_cfg = node(
        &format!("cus-{pid}"),
        &s_dir,
        &format!("[mirror]\nrole = \"standby\"\nlisten = \"127.0.0.1:{port}\"\npromote_after_ms = 60000"),
    );

    // History: the primary alone, several segments of orders.
    let alone = node(&format!("cua-{pid}"), &p_dir, "");
    let mut first = InProcess::start(&alone, STARTUP_BOUND).unwrap();
    let mut opts = load_options(&alone, vec![2_000.0], Duration::from_millis(1_000), 4).unwrap();
    opts.md = None;
    let r0 = run_load(&opts).unwrap();
    assert_eq!(r0.lost, 0);
    first.stop_and_join().unwrap();
    let held_segments = list_segments(&p_dir).unwrap().len();
    assert!(held_segments >= 4, "history spans several segments: {held_segments}");

    // The primary restarts mirrored; the standby starts from an empty journal.
    let mut primary = InProcess::start(&primary_cfg, STARTUP_BOUND).unwrap();
    let mut opts = load_options(&primary_cfg, vec![1_500.0], Duration::from_millis(1_500), 5).unwrap();
    opts.md = None;
    opts.login_timeout = Duration::from_secs(20);
    opts.drain = Duration::from_secs(10);
    opts.mix.first_user_ref = r0.next_user_ref;
    let load = std::thread::spawn(move || run_load(&opts));
    std::thread::sleep(Duration::from_millis(300));

    let stop_standby = Arc::new(AtomicBool::new(false));
    let standby = {
        let (cfg, stop) = (standby_cfg.clone(), Arc::clone(&stop_standby));
        std::thread::spawn(move || follow(&cfg, &stop))
    };
    let report = load.join().unwrap().unwrap();
    assert_eq!(report.lost, 0, "{} of {} orders never answered", report.lost, report.sent);
    assert_eq!(report.replied, report.sent);

    primary.stop_and_join().unwrap();
    // The standby has acknowledged everything the primary answered; give it a moment to apply the final records.
    std::thread::sleep(Duration::from_millis(300));
    stop_standby.store(true, Ordering::Relaxed);
    match standby.join().unwrap().unwrap() {
        Outcome::Stopped { .. } => {}
        other => panic!("the standby promoted itself: {other:?}"),
    }

    let p = wal_records(&p_dir);
    let s = wal_records(&s_dir);
    let p_segments = list_segments(&p_dir).unwrap().len();
    assert!(p_segments >= held_segments + 2, "the primary kept rotating while mirrored: {p_segments} segments");
    assert!(s.len() >= p.len() - 2, "the standby holds the primary's log: {} of {} records", s.len(), p.len());
    for ((ps, pr), (ss, sr)) in p.iter().zip(s.iter()) {
        assert_eq!(ps, ss);
        assert_eq!(pr, sr, "seq {ps} differs between primary and standby");
    }
    eprintln!(
        "catch-up: standby joined a {held_segments}-segment history; {} + {} orders all answered; primary wrote {} \
         records in {p_segments} segments, standby holds {}",
        r0.sent,
        report.sent,
        p.len(),
        s.len()
    );
}
