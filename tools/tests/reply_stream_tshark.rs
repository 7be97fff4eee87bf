//! The appliance's real reply stream, decoded by a decoder nobody on this project wrote: tshark's MoldUDP64
//! dissector (MoldUDP64 1.00: header = session (10), sequence of the first message (8), message count (2), then
//! blocks of length (2) + message). A firm trades, the appliance is restarted, and the firm logs in again asking
//! for sequence 1; every datagram it received — live replies and the login replay — is written to a pcap and
//! decoded by tshark, which must see the session, sequence numbers, counts and message lengths our own decoder
//! saw, and a replay that covers the stream from 1 without a gap.

mod support;

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bourse::demo::{demo_config, InProcess, TempDir};
use bourse_nic::wire::moldudp64::Packet;
use support::firm::RawFirm;

/// A pcap (LINKTYPE_ETHERNET) of `datagrams`, each in Ethernet/IPv4/UDP from `src` to `dst`.
fn write_pcap(path: &Path, src: SocketAddrV4, dst: SocketAddrV4, datagrams: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, d) in datagrams.iter().enumerate() {
        let mut f = Vec::new();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + 8 + d.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src.ip().octets());
        ip[16..20].copy_from_slice(&dst.ip().octets());
        let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&src.port().to_be_bytes());
        f.extend_from_slice(&dst.port().to_be_bytes());
        f.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // UDP checksum 0: not computed (RFC 768)
        f.extend_from_slice(d);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    std::fs::write(path, out).unwrap();
}

/// (session, sequence, count, message lengths) of one datagram, as tshark decodes it.
type Decoded = (String, u64, u16, Vec<usize>);

fn tshark_decode(pcap: &Path, port: u16) -> Option<Vec<Decoded>> {
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-d", &format!("udp.port=={port},moldudp64"), "-T", "fields"])
        .args(["-e", "moldudp64.session", "-e", "moldudp64.sequence", "-e", "moldudp64.count", "-e", "moldudp64.msglen"])
        .args(["-E", "separator=;"])
        .output()
        .ok()?;
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(';').collect();
                let lens = f[3].split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
                (f[0].trim().to_string(), f[1].parse().unwrap(), f[2].parse().unwrap(), lens)
            })
            .collect(),
    )
}

#[test]
fn tshark_decodes_the_reply_stream_and_the_login_replay_as_we_do() {
    if Command::new("tshark").arg("-v").output().is_err() {
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
