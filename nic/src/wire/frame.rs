//! Whole-frame receive classification and transmit construction for the raw backends (DPDK, AF_XDP).
//!
//! A raw backend hands every received Ethernet frame to [`classify`], which says in one pass whether it is a UDP
//! datagram for our address and port (and where its payload lies), an ARP request for our address that must be
//! answered, or something to drop — with a typed [`DropReason`] so the backend can count each kind separately.
//! On transmit, [`emit_udp_headers`] writes Ethernet + IPv4 + UDP headers in front of a payload the caller has
//! already placed at [`UDP_PAYLOAD_OFFSET`], and [`emit_arp_reply`] builds the answer to an ARP request.
//! Nothing here allocates.

use core::ops::Range;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::error::{room, Error, Result};
use super::ethernet::{self, ethertype, Address};
use super::{arp, ipv4, udp};

/// Offset of the UDP payload in a frame we build: Ethernet 14 + IPv4 20 + UDP 8.
pub const UDP_PAYLOAD_OFFSET: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Who we are on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub mac: Address,
    pub ip: Ipv4Addr,
    /// Our UDP port; `None` accepts every port (several services behind one address).
    pub port: Option<u16>,
}

/// Why a frame was not delivered. Each maps to a counter slot through [`DropReason::index`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than its headers or than a length field claims.
    Truncated,
    /// Unicast to another MAC address.
    NotOurMac,
    /// Neither IPv4 nor ARP.
    UnsupportedEthertype,
    /// IPv4 header checksum failed.
    BadIpChecksum,
    /// IPv4 header malformed (version, IHL, total length).
    BadIpHeader,
    /// A fragment: we never reassemble.
    IpFragment,
    /// IPv4 but not UDP.
    NotUdp,
    /// IPv4 to another address.
    NotOurIp,
    /// UDP to another port.
    NotOurPort,
    /// UDP checksum present and wrong (neither complete, zero, nor the partial pseudo-header sum of offload).
    BadUdpChecksum,
    /// UDP length field malformed.
    BadUdpLength,
    /// ARP not for Ethernet/IPv4, or a reply, or a request for another address.
    ArpIgnored,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::NotOurMac,
        DropReason::UnsupportedEthertype,
        DropReason::BadIpChecksum,
        DropReason::BadIpHeader,
        DropReason::IpFragment,
        DropReason::NotUdp,
        DropReason::NotOurIp,
        DropReason::NotOurPort,
        DropReason::BadUdpChecksum,
        DropReason::BadUdpLength,
        DropReason::ArpIgnored,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether the frame was damaged (as opposed to simply not ours): backends count these as "malformed".
    pub const fn is_malformed(self) -> bool {
        matches!(
            self,
            DropReason::Truncated
                | DropReason::BadIpChecksum
                | DropReason::BadIpHeader
                | DropReason::BadUdpChecksum
                | DropReason::BadUdpLength
        )
    }
}

/// Per-reason drop counters; plain integers owned by the receiving core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub by_reason: [u64; DropReason::COUNT],
}

impl DropCounters {
    #[inline]
    pub fn count(&mut self, r: DropReason) {
        self.by_reason[r.index()] += 1;
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.by_reason[r.index()]
    }

    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }
}

/// What a received frame is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    /// A UDP datagram for us; `payload` indexes the frame passed to [`classify`].
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: Range<usize>,
    },
    /// "Who has our IP?" — answer with [`emit_arp_reply`].
    ArpRequestForUs {
        sender_mac: Address,
        sender_ip: Ipv4Addr,
    },
    Drop(DropReason),
}

/// Classifies one received Ethernet frame (without FCS). Never panics, whatever the bytes.
pub fn classify(frame: &[u8], local: &Local) -> Classified {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Classified::Drop(DropReason::Truncated);
    };
    let dst_mac = eth.dst_addr();
    if dst_mac != local.mac && !dst_mac.is_broadcast() && !dst_mac.is_multicast() {
        return Classified::Drop(DropReason::NotOurMac);
    }
    match eth.ethertype() {
        ethertype::IPV4 => classify_ipv4(frame, local),
        ethertype::ARP => classify_arp(eth.payload(), local),
        _ => Classified::Drop(DropReason::UnsupportedEthertype),
    }
}

fn classify_ipv4(frame: &[u8], local: &Local) -> Classified {
    let ip_bytes = &frame[ethernet::HEADER_LEN..];
    let ip = match ipv4::Packet::new_checked(ip_bytes) {
        Ok(p) => p,
        Err(Error::Truncated { .. }) => return Classified::Drop(DropReason::Truncated),
        Err(_) => return Classified::Drop(DropReason::BadIpHeader),
    };
    let repr = match ipv4::Repr::parse(&ip) {
        Ok(r) => r,
        Err(Error::Checksum { .. }) => return Classified::Drop(DropReason::BadIpChecksum),
        Err(Error::InvalidField {
            field: "fragment", ..
        }) => return Classified::Drop(DropReason::IpFragment),
        Err(_) => return Classified::Drop(DropReason::BadIpHeader),
    };
    if repr.dst_addr != local.ip {
        return Classified::Drop(DropReason::NotOurIp);
    }
    if repr.protocol != ipv4::protocol::UDP {
        return Classified::Drop(DropReason::NotUdp);
    }
    let udp_start = ethernet::HEADER_LEN + ip.header_len();
    let udp = match udp::Packet::new_checked(ip.payload()) {
        Ok(p) => p,
        Err(Error::Truncated { .. }) => return Classified::Drop(DropReason::Truncated),
        Err(_) => return Classified::Drop(DropReason::BadUdpLength),
    };
    if local.port.is_some_and(|p| p != udp.dst_port()) {
        return Classified::Drop(DropReason::NotOurPort);
    }
    if !udp.verify_checksum(repr.src_addr, repr.dst_addr) && !udp.has_partial_checksum(repr.src_addr, repr.dst_addr) {
        return Classified::Drop(DropReason::BadUdpChecksum);
    }
    let start = udp_start + udp::HEADER_LEN;
    Classified::Udp {
        src: SocketAddrV4::new(repr.src_addr, udp.src_port()),
        dst: SocketAddrV4::new(repr.dst_addr, udp.dst_port()),
        payload: start..udp_start + usize::from(udp.len()),
    }
}

fn classify_arp(payload: &[u8], local: &Local) -> Classified {
    let Ok(p) = arp::Packet::new_checked(payload) else {
        return Classified::Drop(DropReason::Truncated);
    };
    match arp::Repr::parse(&p) {
        Ok(r) if r.operation == arp::Operation::Request && r.target_protocol_addr == local.ip => {
            Classified::ArpRequestForUs {
                sender_mac: r.source_hardware_addr,
                sender_ip: r.source_protocol_addr,
            }
        }
        _ => Classified::Drop(DropReason::ArpIgnored),
    }
}

/// Addresses of one outgoing UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeaders {
    pub src_mac: Address,
    pub dst_mac: Address,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// IPv4 identification; callers usually count it up per datagram.
    pub ident: u16,
    /// IPv4 time to live ([`ttl_for`] picks it by destination).
    pub ttl: u8,
}

/// The TTL for a datagram to `dst`: `multicast_ttl` for a multicast group (the kernel's `IP_MULTICAST_TTL`
/// default is 1, the local segment: a feed crosses routers only when configured to), otherwise
/// [`ipv4::TTL_DEFAULT`].
pub fn ttl_for(dst: Ipv4Addr, multicast_ttl: u8) -> u8 {
    if dst.is_multicast() {
        multicast_ttl
    } else {
        ipv4::TTL_DEFAULT
    }
}

/// Writes Ethernet, IPv4 and UDP headers into `buf[..UDP_PAYLOAD_OFFSET]` for the `payload_len` bytes the caller
/// has already written at `buf[UDP_PAYLOAD_OFFSET..]`, computing both checksums. Returns the frame length. Frames
/// shorter than the Ethernet minimum are left for the NIC to pad, as NICs and veth do.
pub fn emit_udp_headers(buf: &mut [u8], h: &UdpHeaders, payload_len: usize) -> Result<usize> {
    let frame_len = UDP_PAYLOAD_OFFSET + payload_len;
    room("frame", buf.len(), frame_len)?;
    ethernet::Repr {
        src_addr: h.src_mac,
        dst_addr: h.dst_mac,
        ethertype: ethertype::IPV4,
    }
    .emit(buf)?;
    let ip = ipv4::Repr {
        src_addr: *h.src.ip(),
        dst_addr: *h.dst.ip(),
        protocol: ipv4::protocol::UDP,
        payload_len: udp::HEADER_LEN + payload_len,
        ttl: h.ttl,
    };
    ip.emit(&mut buf[ethernet::HEADER_LEN..], h.ident)?;
    let udp_start = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    udp::Repr {
        src_port: h.src.port(),
        dst_port: h.dst.port(),
    }
    .emit(
        &mut buf[udp_start..frame_len],
        payload_len,
        *h.src.ip(),
        *h.dst.ip(),
    )?;
    Ok(frame_len)
}

/// Builds the ARP reply "our IP is at our MAC" to `requester`, padded with zeros to the 60-byte Ethernet minimum
/// (ARP is the one frame we send that is always short, and some drivers do not pad). Returns the frame length.
pub fn emit_arp_reply(
    buf: &mut [u8],
    local: &Local,
    requester_mac: Address,
    requester_ip: Ipv4Addr,
) -> Result<usize> {
    room("frame", buf.len(), ethernet::FRAME_MIN_BYTES)?;
    ethernet::Repr {
        src_addr: local.mac,
        dst_addr: requester_mac,
        ethertype: ethertype::ARP,
    }
    .emit(buf)?;
    let end = ethernet::HEADER_LEN + arp::PACKET_LEN;
    arp::Repr {
        operation: arp::Operation::Reply,
        source_hardware_addr: local.mac,
        source_protocol_addr: local.ip,
        target_hardware_addr: requester_mac,
        target_protocol_addr: requester_ip,
    }
    .emit(&mut buf[ethernet::HEADER_LEN..end])?;
    buf[end..ethernet::FRAME_MIN_BYTES].fill(0);
    Ok(ethernet::FRAME_MIN_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Local = Local {
        mac: Address([2, 0, 0, 0, 0, 2]),
        ip: Ipv4Addr::new(10, 0, 0, 2),
        port: Some(5678),
    };
    const PEER_MAC: Address = Address([2, 0, 0, 0, 0, 1]);

    /// A hand-built frame: 10.0.0.1:1234 → 10.0.0.2:5678 "hi!" (checksums worked out in ipv4/udp tests).
    fn udp_frame() -> [u8; 45] {
        let mut f = [0u8; 45];
        f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        // IPv4: total 31, ident 0, DF, TTL 64, UDP; checksum computed below by hand-rolled RFC 1071 sum.
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 31, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        // Sum of header words: 4500+001f+0000+4000+4011+0000+0a00+0001+0a00+0002 = 0xd933 → !0xd933 = 0x26cc.
        f[24] = 0x26;
        f[25] = 0xcc;
        f[34..45].copy_from_slice(&[
            0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0b, 0x47, 0x6c, b'h', b'i', b'!',
        ]);
        f
    }

    #[test]
    fn classifies_udp_for_us() {
        let f = udp_frame();
        match classify(&f, &US) {
            Classified::Udp { src, dst, payload } => {
                assert_eq!(src, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234));
                assert_eq!(dst, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5678));
                assert_eq!(&f[payload], b"hi!");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drop_reasons() {
        let f = udp_frame();
        assert_eq!(
            classify(&f[..10], &US),
            Classified::Drop(DropReason::Truncated)
        );
        assert_eq!(
            classify(&f[..40], &US),
            Classified::Drop(DropReason::Truncated)
        );
        let mut g = f;
        g[0] = 4;
        assert_eq!(classify(&g, &US), Classified::Drop(DropReason::NotOurMac));
        let mut g = f;
        g[13] = 0xdd;
        assert_eq!(
            classify(&g, &US),
            Classified::Drop(DropReason::UnsupportedEthertype)
        );
        let mut g = f;
        g[25] ^= 1;
        assert_eq!(
            classify(&g, &US),
            Classified::Drop(DropReason::BadIpChecksum)
        );
        let mut g = f;
        g[44] ^= 1;
        assert_eq!(
            classify(&g, &US),
            Classified::Drop(DropReason::BadUdpChecksum)
        );
        let other_port = Local {
            port: Some(9),
            ..US
        };
        assert_eq!(
            classify(&f, &other_port),
            Classified::Drop(DropReason::NotOurPort)
        );
        let other_ip = Local {
            ip: Ipv4Addr::new(10, 0, 0, 9),
            ..US
        };
        assert_eq!(
            classify(&f, &other_ip),
            Classified::Drop(DropReason::NotOurIp)
        );
        let mut counters = DropCounters::default();
        counters.count(DropReason::NotOurIp);
        assert_eq!(counters.get(DropReason::NotOurIp), 1);
        assert_eq!(counters.total(), 1);
    }

    #[test]
    fn emit_matches_hand_built_frame() {
        let mut buf = [0xa5u8; 50];
        buf[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + 3].copy_from_slice(b"hi!");
        let h = UdpHeaders {
            src_mac: PEER_MAC,
            dst_mac: US.mac,
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5678),
            ident: 0,
            ttl: ipv4::TTL_DEFAULT,
        };
        assert_eq!(emit_udp_headers(&mut buf, &h, 3).unwrap(), 45);
        assert_eq!(&buf[..45], &udp_frame());
        assert!(buf[45..].iter().all(|b| *b == 0xa5));
    }

    /// A datagram to a multicast group carries the configured multicast TTL (IPv4 header byte 8, so frame byte
    /// 22), anything else TTL 64; the header checksum covers it.
    #[test]
    fn multicast_datagrams_carry_the_multicast_ttl() {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 78, 0, 1), 9000);
        let unicast = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5678);
        for (dst, ttl) in [(group, 3u8), (unicast, 64)] {
            let mut buf = [0u8; 50];
            let h = UdpHeaders {
                src_mac: PEER_MAC,
                dst_mac: US.mac,
                src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234),
                dst,
                ident: 0,
                ttl: ttl_for(*dst.ip(), 3),
            };
            let n = emit_udp_headers(&mut buf, &h, 3).unwrap();
            assert_eq!(buf[ethernet::HEADER_LEN + 8], ttl);
            let ip = ipv4::Packet::new_checked(&buf[ethernet::HEADER_LEN..n]).unwrap();
            assert!(ip.verify_checksum(), "{dst}");
        }
    }

    #[test]
    fn arp_request_and_reply() {
        let mut req = [0u8; 42];
        req[..14].copy_from_slice(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
        ]);
        req[14..42].copy_from_slice(&[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ]);
        let Classified::ArpRequestForUs {
            sender_mac,
            sender_ip,
        } = classify(&req, &US)
        else {
            panic!("not classified as ARP for us");
        };
        assert_eq!(
            (sender_mac, sender_ip),
            (PEER_MAC, Ipv4Addr::new(10, 0, 0, 1))
        );
        let mut out = [0xa5u8; 64];
        assert_eq!(
            emit_arp_reply(&mut out, &US, sender_mac, sender_ip).unwrap(),
            60
        );
        let expected_head: [u8; 42] = [
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06, // eth: to peer, from us, ARP
            0, 1, 8, 0, 6, 4, 0, 2, // reply
            2, 0, 0, 0, 0, 2, 10, 0, 0, 2, // sender = us
            2, 0, 0, 0, 0, 1, 10, 0, 0, 1, // target = peer
        ];
        assert_eq!(&out[..42], &expected_head);
        assert!(out[42..60].iter().all(|b| *b == 0));
        assert_eq!(&out[60..], &[0xa5; 4]);
        let mut other = req;
        other[41] = 9;
        assert_eq!(
            classify(&other, &US),
            Classified::Drop(DropReason::ArpIgnored)
        );
    }
}
