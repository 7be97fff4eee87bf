//! The load generator against the appliance running in-process (socket backend on 127.0.0.1, free ports, WAL
//! in a temporary directory): login, every order answered, executions, no reply gaps, rejects counted, a wrong
//! password refused by silence, and garbage datagrams that do not stop the appliance.
//!
//! One test function on purpose: the appliance's pipeline busy-polls, and two of them at once on a two-core
//! host would measure the scheduler, not the code.

use std::net::UdpSocket;
use std::time::Duration;

use bourse::demo::{demo_config, load_options, InProcess, TempDir};
use bourse::load::run_load;

/// Datagrams no firm would send: random bytes, truncated and oversized SoupBinTCP, a short login, a MoldUDP64
/// request from a stranger, an empty datagram, and OUCH from an address that never logged in.
fn garbage() -> Vec<Vec<u8>> {
    let mut enter = vec![0u8, 48, b'U', b'O'];
    enter.extend_from_slice(&[0xa5; 46]);
    vec![
        (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect(),
        vec![0, 40, b'L', b'X'],
        vec![0xff, 0xff, b'U'],
        vec![0, 5, b'L', b'A', b'B', b'C', b'D'],
        b"OE00000000\0\0\0\0\0\0\0\x01\0\x05".to_vec(),
        vec![],
        enter,
        vec![0, 1, b'R', 0, 1, b'O', 0, 1, b'?'],
    ]
}

fn spray(target: std::net::SocketAddrV4) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("binding a junk socket");
    let junk = garbage();
    for d in &junk {
        sock.send_to(d, target).expect("sending junk");
    }
    junk.len()
}

#[test]
fn load_generator_against_the_in_process_appliance() {
    let wal = TempDir::new("bourse-load-test").unwrap();
    let config = demo_config(wal.path(), "msync", None).unwrap();
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let target = config.backend.bind;

    // A wrong password is answered with Login Rejected 'A' (SoupBinTCP 3.00 section 2.2.2); the error names the
    // target and what to check.
    let mut bad = load_options(&config, vec![1_000.0], Duration::from_millis(100), 7).unwrap();
    bad.firms.truncate(1);
    bad.mix.firms.truncate(1);
    bad.firms[0].password = "wrong-pw".into();
    bad.login_timeout = Duration::from_millis(400);
    bad.md = None;
    let err = format!("{:#}", run_load(&bad).unwrap_err());
    assert!(err.contains("Login Rejected 'A'"), "{err}");
    assert!(err.contains(&target.to_string()), "{err}");
    assert!(err.contains("password") && err.contains("allowed_sources"), "{err}");

    // Garbage first: the appliance drops it and keeps serving.
    let junk_sent = spray(target);

    // Two firms, 3,000 msgs/s for one second; every 50th message names an unknown symbol and must be rejected.
    let mut opts = load_options(&config, vec![3_000.0], Duration::from_secs(1), 7).unwrap();
    opts.mix.invalid_every = 50;
    opts.mix.resting = 300;
    let r = run_load(&opts).unwrap();
    assert_eq!(r.logins, 2);
    assert_eq!(r.sent, 3_000);
    assert_eq!(r.lost, 0, "every order must be answered: {r:?}");
    assert_eq!(r.replied, r.sent);
    assert_eq!(r.rates[0].replied, 3_000);
    assert!(r.executions > 0, "IOCs must trade: {r:?}");
    assert_eq!(r.gaps, 0);
    assert_eq!(r.mix.invalid, 60);
    // The shadow book is exact against a fresh appliance, so the only rejects are the deliberate ones.
    assert_eq!(r.rejects, r.mix.invalid, "{r:?}");
    let md = r.md.expect("market data was listened to");
    assert!(md.datagrams > 0 && md.messages > 0);
    assert_eq!(md.gaps, 0);
    assert!(r.rates[0].p50_us > 0.0 && r.rates[0].max_us >= r.rates[0].p99_us);
    let h = &r.histograms[0].1;
    assert_eq!(h.len(), 3_000);

    // Garbage again, then a second run continuing the UserRefNums: still served, nothing lost.
    let junk_sent = junk_sent + spray(target);
    let mut again = load_options(&config, vec![1_000.0], Duration::from_millis(300), 8).unwrap();
    again.mix.first_user_ref = r.next_user_ref;
    again.md = None;
    let r2 = run_load(&again).unwrap();
    assert_eq!((r2.sent, r2.replied, r2.lost, r2.gaps), (300, 300, 0, 0), "{r2:?}");

    let summary = app.stop_and_join().unwrap();
    // Every junk datagram (the empty one may be dropped by the backend before the session layer) is counted
    // as a drop somewhere, plus the failed logins (one Login Request every 200 ms while waiting).
    assert!(summary.session_drops + summary.malformed + summary.dropped >= junk_sent as u64, "{summary}");
    assert_eq!(summary.outputs_unsent, 0, "{summary}");
}
