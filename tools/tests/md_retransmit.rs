//! The MoldUDP64 retransmission server of the appliance running in-process (socket backend on 127.0.0.1, WAL in
//! a temporary directory): a stranger's request is dropped and counted, a subscriber's is answered with at most
//! the configured messages, a flood from one subscriber is rate limited, and requests are answered while the
//! load generator drives the appliance hard (housekeeping no longer waits for the pipeline to go idle).
//!
//! Loopback answers for 127.0.0.0/8, so the test speaks from 127.0.0.1 (a subscriber), 127.0.0.2 (a stranger)
//! and 127.0.0.3 (a second subscriber, with its own token bucket, for the flood).
//!
//! One test function on purpose: the appliance's pipeline busy-polls (see `load_demo.rs`).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use bourse::demo::{demo_config, load_options, InProcess, TempDir};
use bourse::load::run_load;
use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{Packet, Request};

const SUBSCRIBER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const MESSAGES_PER_REQUEST_MAX: u16 = 8;
const REQUESTS_PER_S: u32 = 20;
const REQUESTS_BURST: u32 = 10;
const FLOOD_REQUESTS: u32 = 100;
/// Every answer expected arrives within this (a generous bound for a loaded two-core host).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

fn socket(ip: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddrV4::new(ip, 0)).unwrap();
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    s
}

fn ask(from: &UdpSocket, server: SocketAddrV4, session: SessionName, sequence: u64, count: u16) {
    let mut req = [0u8; 20];
    let n = Request { session, sequence, count }.emit(&mut req).unwrap();
    from.send_to(&req[..n], server).unwrap();
}

/// Waits for an answer on `sock`: `(first sequence, messages)`.
fn answer(sock: &UdpSocket, session: SessionName) -> (u64, u16) {
    let mut buf = [0u8; 9_000];
    let n = sock.recv(&mut buf).expect("the retransmission server answers");
    let p = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(p.session(), session);
    (p.sequence(), p.count())
}

#[test]
fn retransmission_answers_only_subscribers_within_limits_and_under_load() {
    let wal = TempDir::new("bourse-md-retransmit").unwrap();
    let mut config = demo_config(wal.path(), "msync", None).unwrap();
    let md = &mut config.market_data;
    md.retransmit_subscribers = vec![SUBSCRIBER.to_string(), FLOODER.to_string()];
    md.retransmit_messages_per_request_max = MESSAGES_PER_REQUEST_MAX;
    md.retransmit_requests_per_s = REQUESTS_PER_S;
    md.retransmit_requests_burst = REQUESTS_BURST;
    // Message 1 must still be kept after the load below.
    md.retransmit_messages_max = 1 << 19;
    let server = md.retransmit_bind.unwrap();
    let session = SessionName::new(&md.session).unwrap();
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();

    // Some market data to ask for.
    let mut opts = load_options(&config, vec![2_000.0], Duration::from_millis(300), 31).unwrap();
    opts.mix.resting = 100;
    let r1 = run_load(&opts).unwrap();
    assert_eq!((r1.sent, r1.lost), (600, 0), "{r1:?}");
    let published = r1.md.expect("market data was listened to").messages;
    assert!(published > u64::from(MESSAGES_PER_REQUEST_MAX), "{published} messages published");

    // A stranger asks first, then a subscriber asks for far more than the cap. One socket, taken in order: once
    // the subscriber is answered, the stranger's request was seen, and it got nothing.
    let stranger = socket(STRANGER);
    let subscriber = socket(SUBSCRIBER);
    ask(&stranger, server, session, 1, 4);
    ask(&subscriber, server, session, 1, 500);
    assert_eq!(answer(&subscriber, session), (1, MESSAGES_PER_REQUEST_MAX), "capped at the configured messages");
    stranger.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 9_000];
    assert_eq!(stranger.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock, "no reply to a stranger");

    // A flood from the second subscriber: its burst is answered, far from all of it.
    let flooder = socket(FLOODER);
    for _ in 0..FLOOD_REQUESTS {
        ask(&flooder, server, session, 2, 1);
    }
    flooder.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut flood_answered = 0u32;
    while flooder.recv(&mut buf).is_ok() {
        flood_answered += 1;
    }
    assert!(flood_answered >= 1, "the flooder's first requests are answered");
    assert!(flood_answered < FLOOD_REQUESTS / 2, "{flood_answered} of {FLOOD_REQUESTS} flood requests answered");

    // Under load: the generator offers far more than this host absorbs while a subscriber keeps asking.
    let mut heavy = load_options(&config, vec![150_000.0], Duration::from_secs(1), 32).unwrap();
    heavy.mix.first_user_ref = r1.next_user_ref;
    heavy.mix.resting = 300;
    let load = std::thread::spawn(move || run_load(&heavy));
    let mut during_load = 0u32;
    let mut i = 0u64;
    while !load.is_finished() {
        let sequence = 1 + i % (published - u64::from(MESSAGES_PER_REQUEST_MAX));
        ask(&subscriber, server, session, sequence, MESSAGES_PER_REQUEST_MAX);
        let (got, count) = answer(&subscriber, session);
        assert_eq!(got, sequence);
        assert!((1..=MESSAGES_PER_REQUEST_MAX).contains(&count), "{count} messages");
        during_load += 1;
        i += 7;
        // Well within the subscriber's rate: no request of this loop is rate limited.
        std::thread::sleep(Duration::from_millis(1_000 / u64::from(REQUESTS_PER_S) * 2));
    }
    let r2 = load.join().unwrap().unwrap();
    assert!(r2.sent > 1_000 && r2.replied > 0, "the appliance was under load: {r2:?}");
    // Each of them was answered (within ANSWER_TIMEOUT); how many fit in the run depends on the host.
    assert!(during_load >= 1, "no request was sent during the load");

    let summary = app.stop_and_join().unwrap();
    let (sent, replied, lost) = (r2.sent, r2.replied, r2.lost);
    eprintln!("load: {sent} sent, {replied} replied, {lost} lost; {during_load} retransmissions answered during it");
    eprintln!("appliance: {summary}");
    let c = summary.retransmit;
    assert_eq!(c.not_subscriber, 1, "{summary}");
    assert!(c.rate_limited >= u64::from(FLOOD_REQUESTS / 2), "{summary}");
    assert_eq!(c.answered, 1 + u64::from(flood_answered + during_load), "{summary}");
    assert_eq!(
        (c.malformed, c.bad_session, c.empty_request, c.beyond_feed, c.not_kept, c.send_failed),
        (0, 0, 0, 0, 0, 0),
        "{summary}"
    );
    assert!(c.messages_sent <= c.answered * u64::from(MESSAGES_PER_REQUEST_MAX), "{summary}");
}
