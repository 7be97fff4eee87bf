//! Captures for decoders written elsewhere: datagrams into a pcap, and tshark's MoldUDP64 dissector over it.

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::Command;

/// Whether tshark runs here (ci/setup.sh installs it).
pub fn tshark_installed() -> bool {
    Command::new("tshark").arg("-v").output().is_ok()
}

/// A pcap (LINKTYPE_ETHERNET) of `datagrams`, each in Ethernet/IPv4/UDP from `src` to `dst`.
pub fn write_pcap(path: &Path, src: SocketAddrV4, dst: SocketAddrV4, datagrams: &[Vec<u8>]) {
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
pub type Decoded = (String, u64, u16, Vec<usize>);

pub fn tshark_decode(pcap: &Path, port: u16) -> Option<Vec<Decoded>> {
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
