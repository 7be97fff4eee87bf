//! Market data across a restart: the appliance runs in-process (socket backend on 127.0.0.1, WAL in a temporary
//! directory), is stopped, and is started again on the same WAL directory, as a promoted standby starts on its copy
//! of the journal. The MoldUDP64 sequence must continue where it stopped, and the restarted node's retransmission
//! server must answer for messages published before the restart with the same bytes.
//!
//! One test function on purpose: the appliance's pipeline busy-polls (see `load_demo.rs`).

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse::demo::{demo_config, load_options, InProcess, TempDir};
use bourse::load::client::set_rcvbuf;
use bourse::load::run_load;
use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{Packet, Request};

/// Sent by the test to the market-data port after each run: loopback delivers in order, so every datagram before
/// it was published before the appliance stopped.
const END_OF_RUN: &[u8] = b"end of run";

/// One run's market data: `(first sequence, messages)` per datagram.
type Run = Vec<(u64, Vec<Vec<u8>>)>;

/// Captures the market data on `sock`, sending each run's datagrams once its end-of-run marker arrives. Stops when
/// the receiver is gone or nothing arrives for 30 s.
fn capture(sock: UdpSocket, session: SessionName) -> (JoinHandle<()>, Receiver<Run>) {
    let (tx, rx) = channel();
    let handle = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut run = Run::new();
        let mut buf = [0u8; 9_000];
        while let Ok(n) = sock.recv(&mut buf) {
            if &buf[..n] == END_OF_RUN {
                if tx.send(std::mem::take(&mut run)).is_err() {
                    return;
                }
                continue;
            }
            let p = Packet::new_checked(&buf[..n]).expect("a MoldUDP64 datagram");
            assert_eq!(p.session(), session);
            let messages = p.messages().map(|m| m.to_vec()).collect::<Vec<_>>();
            assert_eq!(messages.len(), usize::from(p.count()));
            run.push((p.sequence(), messages));
        }
    });
    (handle, rx)
}

/// The run's messages in sequence order, checking the datagrams are contiguous from `first`.
fn contiguous(run: &Run, first: u64) -> Vec<Vec<u8>> {
    let mut next = first;
    let mut out = Vec::new();
    for (seq, messages) in run {
        assert_eq!(*seq, next, "market data continues without gaps or rewinds");
        next += messages.len() as u64;
        out.extend(messages.iter().cloned());
    }
    out
}

/// Asks `server` for messages `first..first + want.len()` of `session` and checks they equal `want`, byte for byte.
fn retransmitted_equal(server: SocketAddrV4, session: SessionName, first: u64, want: &[Vec<u8>]) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = [0u8; 20];
    let mut buf = [0u8; 9_000];
    let mut at = 0usize;
    while at < want.len() {
        let sequence = first + at as u64;
        let count = (want.len() - at).min(64) as u16;
        let n = Request { session, sequence, count }.emit(&mut req).unwrap();
        sock.send_to(&req[..n], server).unwrap();
        let len = sock.recv(&mut buf).expect("the retransmission server answers");
        let p = Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!((p.session(), p.sequence()), (session, sequence));
        assert!(p.count() > 0, "message {sequence} is retained and committed");
        for (i, m) in p.messages().enumerate() {
            assert_eq!(m, &want[at + i][..], "message {} retransmitted as published", sequence + i as u64);
        }
        at += usize::from(p.count());
    }
}

/// Stops the appliance, then marks the end of its run on the market-data stream and waits for the capture.
fn stop_and_capture(app: &mut InProcess, marker: &UdpSocket, md: SocketAddrV4, runs: &Receiver<Run>) -> Run {
    let summary = app.stop_and_join().unwrap();
    assert_eq!(summary.outputs_unsent, 0, "{summary}");
    marker.send_to(END_OF_RUN, md).unwrap();
    runs.recv_timeout(Duration::from_secs(30)).expect("the run's market data was captured")
}

#[test]
fn market_data_sequence_continues_across_a_restart_and_old_messages_are_retransmitted() {
    let wal = TempDir::new("bourse-md-restart").unwrap();
    let config = demo_config(wal.path(), "msync", None).unwrap();
    let session = SessionName::new(&config.market_data.session).unwrap();
    let (group, retransmit) = (config.market_data.group, config.market_data.retransmit_bind.unwrap());
    let md = UdpSocket::bind(group).unwrap();
    set_rcvbuf(&md, 8 << 20);
    let marker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (capturing, runs) = capture(md, session);

    // Run 1: a fresh journal, some trading.
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut opts = load_options(&config, vec![2_000.0], Duration::from_millis(300), 11).unwrap();
    opts.md = None;
    opts.mix.resting = 100;
    let r1 = run_load(&opts).unwrap();
    assert_eq!((r1.sent, r1.lost), (600, 0), "{r1:?}");
    let before = contiguous(&stop_and_capture(&mut app, &marker, group, &runs), 1);
    assert!(!before.is_empty(), "the first run published market data");
    let last_before = before.len() as u64;

    // Run 2 on the same configuration and WAL directory. Before any new input, the restarted node answers for
    // everything the first run published, with the same bytes.
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    retransmitted_equal(retransmit, session, 1, &before);
    let mut again = load_options(&config, vec![1_000.0], Duration::from_millis(200), 12).unwrap();
    again.md = None;
    again.mix.first_user_ref = r1.next_user_ref;
    again.mix.resting = 100;
    let r2 = run_load(&again).unwrap();
    assert_eq!((r2.sent, r2.lost), (200, 0), "{r2:?}");
    // Nothing is published at start-up: the first message after the restart is the next number.
    let after = contiguous(&stop_and_capture(&mut app, &marker, group, &runs), last_before + 1);
    assert!(!after.is_empty(), "the second run published market data");

    // Run 3, without traffic: it publishes nothing, and serves both earlier runs across the first restart.
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let from = last_before.saturating_sub(50).max(1);
    let mut across = before[(from - 1) as usize..].to_vec();
    across.extend(after.iter().take(50).cloned());
    retransmitted_equal(retransmit, session, from, &across);
    assert!(stop_and_capture(&mut app, &marker, group, &runs).is_empty(), "no start-up messages");
    // One more marker finds the receiver gone and ends the capture.
    drop(runs);
    marker.send_to(END_OF_RUN, group).unwrap();
    capturing.join().unwrap();
}
