//! The appliance's real reply stream, decoded by a decoder nobody on this project wrote: tshark's MoldUDP64
//! dissector (MoldUDP64 1.00: header = session (10), sequence of the first message (8), message count (2), then
//! blocks of length (2) + message). A firm trades, the appliance is restarted, and the firm logs in again asking
//! for sequence 1; every datagram it received — live replies and the login replay — is written to a pcap and
//! decoded by tshark, which must see the session, sequence numbers, counts and message lengths our own decoder
//! saw, and a replay that covers the stream from 1 without a gap.

mod support;

use std::net::SocketAddrV4;
use std::time::Duration;

use bourse::demo::{demo_config, InProcess, TempDir};
use bourse_nic::wire::moldudp64::Packet;
use support::firm::RawFirm;
use support::pcap::{tshark_decode, tshark_installed, write_pcap};

#[test]
fn tshark_decodes_the_reply_stream_and_the_login_replay_as_we_do() {
    if !tshark_installed() {
        eprintln!("skipped: tshark is not installed (ci/setup.sh installs it)");
        return;
    }
    let tmp = TempDir::new("bourse-tshark").unwrap();
    let config = demo_config(tmp.path(), "msync", None).unwrap();
    let target = config.backend.bind;
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut firm = RawFirm::open(target, 0);
    assert_eq!(firm.log_in_again(Duration::from_secs(10)), Some(1));
    for r in 1..=20 {
        firm.order(r);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while firm.answered.len() < 20 && std::time::Instant::now() < deadline {
        firm.poll();
    }
    let live = firm.replies.len() as u64;
    assert!(live >= 20, "{live} replies");
    firm.logout();
    app.stop_and_join().unwrap();

    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut again = RawFirm::open(target, 0);
    again.login(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (again.replies.len() as u64) < live && std::time::Instant::now() < deadline {
        again.poll();
    }
    again.logout();
    app.stop_and_join().unwrap();
    assert_eq!(again.replies, firm.replies, "the replay is the live stream, byte for byte");

    let all: Vec<Vec<u8>> = firm.datagrams.iter().chain(&again.datagrams).cloned().collect();
    let pcap = tmp.path().join("replies.pcap");
    let firm_addr = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 40_000);
    write_pcap(&pcap, target, firm_addr, &all);
    let decoded = tshark_decode(&pcap, target.port()).expect("tshark runs");
    assert_eq!(decoded.len(), all.len(), "tshark decoded every datagram");
    for (d, (session, sequence, count, lens)) in all.iter().zip(&decoded) {
        let ours = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(session, "OE00000000");
        assert_eq!((*sequence, *count), (ours.sequence(), ours.count()));
        let our_lens: Vec<usize> = ours.messages().map(<[u8]>::len).collect();
        assert_eq!(lens, &our_lens);
    }
    // The replay's datagrams, as tshark numbers them, cover 1..=live without a gap.
    let mut next = 1;
    for (_, sequence, count, _) in &decoded[firm.datagrams.len()..] {
        assert_eq!(*sequence, next, "replay datagrams are contiguous");
        next += u64::from(*count);
    }
    assert_eq!(next, live + 1);
}
