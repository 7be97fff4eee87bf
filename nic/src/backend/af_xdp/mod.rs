//! AF_XDP backend: an XSK socket bound to one queue of one interface, fed by a small XDP program that steers our
//! UDP port (and ARP about our address) to it and passes everything else to the kernel.
//!
//! ```text
//!   NIC queue ──XDP──┬─ UDP to ours:port, ARP for ours ──▶ XSK rx ring ──▶ rx_burst / echo
//!                    └─ everything else ──▶ kernel stack (XDP_PASS)
//!   tx / echo / ARP replies ──▶ XSK tx ring ──sendto kick──▶ NIC ──▶ completion ring ──▶ free tx frames
//! ```
//!
//! * [`sys`] holds the unsafe seam: ABI structs, `bpf(2)`, ring and UMEM mappings, and [`sys::Xsk`], which owns
//!   the socket and exposes its rings through safe methods.
//! * [`bpf`] assembles the XDP program from raw instructions and attaches it with `BPF_LINK_CREATE` (native
//!   first, then generic); closing the link detaches it, so a crashed process leaves nothing behind.
//!
//! **Modes.** The socket binds with `XDP_ZEROCOPY` first and falls back to `XDP_COPY` (veth refuses zero-copy
//! with `EOPNOTSUPP`); [`AfXdp::mode`] reports what is in force. The program attaches in native (driver) mode
//! first and falls back to generic (skb) mode.
//!
//! **Frames.** Received frames are parsed with [`crate::wire::frame::classify`]; UDP checksums that are zero or
//! *partial* (the pseudo-header sum a veth peer leaves under `CHECKSUM_PARTIAL`) are accepted. Transmitted frames
//! get full IPv4 and UDP checksums. Peer MAC addresses are learnt from received frames and ARP into a small fixed
//! table; multicast destinations map to `01:00:5e` MACs; a transmit to an unknown unicast destination is refused
//! with [`TxError::Unresolved`] and counted (`tx_unresolved`), and an ARP request is sent so that a later transmit
//! finds it.
//!
//! **One queue.** The socket binds one rx queue ([`AfXdpOptions::queue_id`], default 0); the program redirects
//! only frames arriving on a queue that has a socket and passes the rest to the kernel. On a multi-queue NIC,
//! steer the order-entry flow to that queue (`ethtool -N … action <queue>`) or reduce the channels to one; the
//! veth pair of `scripts/netns.sh` has a single queue.
//!
//! **Polling.** Everything is busy-polled: `rx_burst` peeks the rx ring, `tx_flush` publishes the tx ring and
//! kicks the kernel with `sendto(MSG_DONTWAIT)` when it sets `XDP_RING_NEED_WAKEUP` (always, in copy mode).
//! Nothing allocates after [`AfXdp::new`].

pub mod bpf;
pub mod sys;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::privilege::{self, Capability, Hint};
use super::{Backend, BackendConfig, BackendStats, Datagram, TxError};
use crate::wire::ethernet::{self, Address};
use crate::wire::frame::{
    self, Classified, DropCounters, DropReason, Local, UdpHeaders, UDP_PAYLOAD_OFFSET,
};
use crate::wire::arp;

pub use bpf::AttachMode;
pub use sys::{BindMode, XdpStatistics};

/// Why the backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("af_xdp: bad configuration: {0}")]
    Config(&'static str),
    #[error("af_xdp: interface {name}: {source}")]
    Interface { name: String, source: io::Error },
    #[error("af_xdp: {what}: {source}{}", Hint::for_io(source, capabilities_for(what)))]
    Sys {
        what: &'static str,
        source: io::Error,
    },
    #[error(
        "af_xdp: the kernel verifier refused the XDP program: {source}{}\n{log}",
        Hint::for_io(source, BPF_LOAD)
    )]
    Verifier { source: io::Error, log: String },
    #[error(
        "af_xdp: attaching XDP failed in native mode ({native:?}) and in generic mode ({generic}){}",
        Hint::for_io(generic, &[privilege::CAP_NET_ADMIN])
    )]
    Attach {
        native: Option<io::Error>,
        generic: io::Error,
    },
}

/// Loading the XDP program and creating its XSKMAP: CAP_BPF, plus CAP_NET_ADMIN for the XDP program type (kernels
/// before 5.8, which lack CAP_BPF, want CAP_SYS_ADMIN instead).
const BPF_LOAD: &[Capability] = &[privilege::CAP_BPF, privilege::CAP_NET_ADMIN, privilege::CAP_SYS_ADMIN];

/// The capabilities the set-up step `what` (an [`Error::Sys`] step name) needs when run by a non-root user.
fn capabilities_for(what: &str) -> &'static [Capability] {
    if what.starts_with("socket(AF_XDP)") {
        &[privilege::CAP_NET_RAW]
    } else if what.starts_with("bpf(") {
        BPF_LOAD
    } else if what.starts_with("XDP_UMEM_REG") || what.starts_with("mmap") {
        // The UMEM is locked memory: beyond RLIMIT_MEMLOCK it needs CAP_IPC_LOCK.
        &[privilege::CAP_IPC_LOCK]
    } else {
        privilege::RAW_BACKEND
    }
}

/// AF_XDP-specific settings; [`AfXdpOptions::default`] suits veth and most NICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfXdpOptions {
    /// The interface queue to bind; traffic on other queues goes to the kernel.
    pub queue_id: u32,
    /// UMEM frames for receiving (power of two); also the fill and rx ring sizes.
    pub rx_frames: u32,
    /// UMEM chunk size: 2048 or 4096.
    pub frame_size_bytes: u32,
    /// Skip the zero-copy attempt.
    pub force_copy: bool,
    /// Skip the native attach attempt.
    pub force_generic: bool,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        AfXdpOptions {
            queue_id: 0,
            rx_frames: 2048,
            frame_size_bytes: 2048,
            force_copy: false,
            force_generic: false,
        }
    }
}

/// The modes in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub bind: BindMode,
    pub attach: AttachMode,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bind = match self.bind {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        };
        let attach = match self.attach {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        };
        write!(f, "{bind} mode, {attach} XDP")
    }
}

/// Counters beyond [`BackendStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpStats {
    /// Every dropped received frame by reason.
    pub drops: DropCounters,
    /// Rx descriptors outside the rx area (a kernel bug if ever non-zero).
    pub bad_descriptors: u64,
    /// Transmits dropped because the destination's MAC is not known yet.
    pub no_neighbor: u64,
    /// ARP requests we sent to resolve such destinations.
    pub arp_requests: u64,
    /// ARP replies to us that taught us a neighbour.
    pub arp_learnt: u64,
    /// Wakeup calls the kernel refused with an unexpected error.
    pub kick_errors: u64,
}

/// Peer MACs by IPv4 address: a fixed table with round-robin replacement, scanned linearly (it is tiny, and a
/// pipeline talks to few peers).
struct Neighbors {
    entries: [(Ipv4Addr, Address); NEIGHBORS_MAX],
    len: usize,
    next_victim: usize,
}

const NEIGHBORS_MAX: usize = 64;

impl Neighbors {
    fn new() -> Self {
        Neighbors {
            entries: [(Ipv4Addr::UNSPECIFIED, Address::default()); NEIGHBORS_MAX],
            len: 0,
            next_victim: 0,
        }
    }

    fn lookup(&self, ip: Ipv4Addr) -> Option<Address> {
        self.entries[..self.len]
            .iter()
            .find(|(i, _)| *i == ip)
            .map(|(_, m)| *m)
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: Address) {
        if mac.is_multicast() || ip.is_unspecified() {
            return;
        }
        if let Some(e) = self.entries[..self.len].iter_mut().find(|(i, _)| *i == ip) {
            e.1 = mac;
        } else if self.len < NEIGHBORS_MAX {
            self.entries[self.len] = (ip, mac);
            self.len += 1;
        } else {
            self.entries[self.next_victim] = (ip, mac);
            self.next_victim = (self.next_victim + 1) % NEIGHBORS_MAX;
        }
    }
}

/// The MAC an IPv4 multicast group maps to (RFC 1112 §6.4): 01:00:5e and the group's low 23 bits.
pub fn multicast_mac(group: Ipv4Addr) -> Address {
    let o = group.octets();
    Address([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

/// One received frame, classified.
enum Rx {
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: Range<usize>,
        src_mac: Address,
    },
    ArpRequest {
        mac: Address,
        ip: Ipv4Addr,
    },
    ArpReply {
        mac: Address,
        ip: Ipv4Addr,
    },
    Drop(DropReason),
}

/// Classifies a frame ([`frame::classify`] accepts partial UDP checksums), picking out ARP replies addressed to us.
fn classify(f: &[u8], local: &Local) -> Rx {
    let src_mac = ethernet::Frame::new_checked(f)
        .map(|e| e.src_addr())
        .unwrap_or_default();
    match frame::classify(f, local) {
        Classified::Udp { src, dst, payload } => Rx::Udp {
            src,
            dst,
            payload,
            src_mac,
        },
        Classified::ArpRequestForUs {
            sender_mac,
            sender_ip,
        } => Rx::ArpRequest {
            mac: sender_mac,
            ip: sender_ip,
        },
        Classified::Drop(DropReason::ArpIgnored) => {
            arp_reply_to(f, local).unwrap_or(Rx::Drop(DropReason::ArpIgnored))
        }
        Classified::Drop(r) => Rx::Drop(r),
    }
}

/// An ARP reply telling us a neighbour's MAC (an answer to one of our requests).
fn arp_reply_to(f: &[u8], local: &Local) -> Option<Rx> {
    let e = ethernet::Frame::new_checked(f).ok()?;
    let p = arp::Packet::new_checked(e.payload()).ok()?;
    let r = arp::Repr::parse(&p).ok()?;
    (r.operation == arp::Operation::Reply && r.target_protocol_addr == local.ip).then_some(
        Rx::ArpReply {
            mac: r.source_hardware_addr,
            ip: r.source_protocol_addr,
        },
    )
}

/// The AF_XDP backend. Field order is drop order: the XDP program detaches before the socket closes.
pub struct AfXdp {
    attachment: bpf::Attachment,
    xsk: sys::Xsk,
    local: Local,
    neighbors: Neighbors,
    burst_max: u32,
    payload_max_bytes: usize,
    /// IPv4 identification of the next frame.
    ident: u16,
    /// TTL of datagrams to multicast groups.
    multicast_ttl: u8,
    /// Datagrams queued by `tx` and echo since the last flush (ARP frames are not counted as datagrams).
    staged: u32,
    /// The address of the last ARP request sent and how many transmits to it failed since, so an unknown
    /// destination is asked for once per `ARP_RETRY_MISSES` attempts instead of once per datagram.
    arp_pending: (Ipv4Addr, u32),
    stats: BackendStats,
    extra: AfXdpStats,
}

const ARP_RETRY_MISSES: u32 = 1024;

impl AfXdp {
    /// Opens the backend with default [`AfXdpOptions`].
    pub fn new(config: &BackendConfig) -> Result<AfXdp, Error> {
        Self::with_options(config, &AfXdpOptions::default())
    }

    /// Opens the backend in the calling thread's network namespace.
    pub fn with_options(config: &BackendConfig, opt: &AfXdpOptions) -> Result<AfXdp, Error> {
        let ip = *config.bind.ip();
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(Error::Config(
                "bind must be a unicast IPv4 address: the backend answers ARP for it",
            ));
        }
        if config.bind.port() == 0 {
            return Err(Error::Config("bind port must not be 0"));
        }
        let name = config
            .interface
            .as_deref()
            .ok_or(Error::Config("af_xdp needs an interface"))?;
        if opt.frame_size_bytes != 2048 && opt.frame_size_bytes != 4096 {
            return Err(Error::Config("frame_size_bytes must be 2048 or 4096"));
        }
        if !opt.rx_frames.is_power_of_two() || opt.rx_frames < 64 || opt.rx_frames > 1 << 16 {
            return Err(Error::Config(
                "rx_frames must be a power of two in 64..=65536",
            ));
        }
        let rx_room_bytes = (opt.frame_size_bytes - sys::XDP_PACKET_HEADROOM_BYTES) as usize;
        if config.payload_max_bytes == 0
            || config.payload_max_bytes + UDP_PAYLOAD_OFFSET > rx_room_bytes
        {
            return Err(Error::Config(
                "payload_max_bytes + 42 must fit a frame after the kernel's 256-byte headroom",
            ));
        }
        if config.burst_max == 0
            || config.burst_max > opt.rx_frames as usize
            || config.tx_slots == 0
        {
            return Err(Error::Config(
                "burst_max must be in 1..=rx_frames and tx_slots at least 1",
            ));
        }
        // Transmit frames: the configured slots, plus a burst's worth for echo and ARP replies.
        let tx_frames = (config.tx_slots + config.burst_max)
            .next_power_of_two()
            .min(1 << 16) as u32;

        let (ifindex, mac) = sys::interface(name).map_err(|source| Error::Interface {
            name: name.to_owned(),
            source,
        })?;
        let geometry = sys::XskGeometry {
            frame_size_bytes: opt.frame_size_bytes,
            rx_frames: opt.rx_frames,
            tx_frames,
        };
        let xsk = sys::Xsk::new(ifindex, opt.queue_id, geometry, opt.force_copy).map_err(|e| {
            Error::Sys {
                what: e.what,
                source: e.source,
            }
        })?;
        let attachment = bpf::attach(
            ifindex,
            ip,
            config.bind.port(),
            xsk.fd(),
            opt.queue_id,
            opt.force_generic,
        )?;
        Ok(AfXdp {
            attachment,
            xsk,
            local: Local {
                mac: Address(mac),
                ip,
                port: Some(config.bind.port()),
            },
            neighbors: Neighbors::new(),
            burst_max: config.burst_max as u32,
            payload_max_bytes: config.payload_max_bytes,
            ident: 0,
            multicast_ttl: config.multicast_ttl,
            staged: 0,
            arp_pending: (Ipv4Addr::UNSPECIFIED, 0),
            stats: BackendStats::default(),
            extra: AfXdpStats::default(),
        })
    }

    /// Which bind and attach modes are in force.
    pub fn mode(&self) -> Mode {
        Mode {
            bind: self.xsk.mode(),
            attach: self.attachment.mode,
        }
    }

    /// Our MAC address (the interface's).
    pub fn local_mac(&self) -> [u8; 6] {
        self.local.mac.0
    }

    pub fn extra_stats(&self) -> AfXdpStats {
        self.extra
    }

    /// The kernel's drop counters for the socket (a syscall: not for the hot path).
    pub fn kernel_stats(&self) -> io::Result<XdpStatistics> {
        self.xsk.statistics()
    }

    /// Receives one burst and sends every UDP datagram's payload back to its source, copying it once from the
    /// received frame into a transmit frame; returns how many were echoed. The floor for `bourse bench wire`.
    pub fn echo_burst(&mut self) -> usize {
        let local = self.local;
        let mut echoed = 0;
        self.rx_each(|xsk, ident, stats, rx| {
            let Some(tx_addr) = xsk.tx_alloc() else {
                stats.tx_full += 1;
                stats.dropped += 1;
                return;
            };
            let (Some(rx_frame), tx_frame) = xsk.rx_tx_pair(rx.index, tx_addr) else {
                xsk.tx_unalloc(tx_addr);
                return;
            };
            let len = rx.payload.len();
            let fits =
                tx_frame.len() >= UDP_PAYLOAD_OFFSET + len && rx_frame.len() >= rx.payload.end;
            if !fits {
                xsk.tx_unalloc(tx_addr);
                stats.dropped += 1;
                return;
            }
            tx_frame[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + len]
                .copy_from_slice(&rx_frame[rx.payload]);
            let h = UdpHeaders {
                src_mac: local.mac,
                dst_mac: rx.src_mac,
                src: rx.dst,
                dst: rx.src,
                ident: *ident,
                ttl: crate::wire::ipv4::TTL_DEFAULT,
            };
            match frame::emit_udp_headers(tx_frame, &h, len) {
                Ok(frame_len) => {
                    *ident = ident.wrapping_add(1);
                    xsk.tx_push(tx_addr, frame_len as u32);
                    echoed += 1;
                }
                Err(_) => {
                    xsk.tx_unalloc(tx_addr);
                    stats.dropped += 1;
                }
            }
        });
        self.staged += echoed as u32;
        self.tx_flush();
        echoed
    }

    /// Peeks one burst, classifies every frame, answers ARP, learns neighbours, counts drops, hands each UDP
    /// datagram for us to `on_udp`, and returns the frames to the fill ring. Returns the datagrams delivered.
    fn rx_each<F>(&mut self, mut on_udp: F) -> usize
    where
        F: FnMut(&mut sys::Xsk, &mut u16, &mut BackendStats, RxUdp),
    {
        if self.xsk.fill_needs_wakeup() && self.xsk.kick_rx().is_err() {
            self.extra.kick_errors += 1;
        }
        let n = self.xsk.rx_peek(self.burst_max);
        if n == 0 {
            return 0;
        }
        let mut delivered = 0;
        let mut control_frames = 0;
        for i in 0..n {
            let rx = match self.xsk.rx_frame(i) {
                Some(f) => classify(f, &self.local),
                None => {
                    self.extra.bad_descriptors += 1;
                    self.stats.malformed += 1;
                    continue;
                }
            };
            match rx {
                Rx::Udp {
                    src,
                    dst,
                    payload,
                    src_mac,
                } => {
                    self.neighbors.learn(*src.ip(), src_mac);
                    self.stats.rx += 1;
                    delivered += 1;
                    let u = RxUdp {
                        index: i,
                        src,
                        dst,
                        payload,
                        src_mac,
                    };
                    on_udp(&mut self.xsk, &mut self.ident, &mut self.stats, u);
                }
                Rx::ArpRequest { mac, ip } => {
                    self.neighbors.learn(ip, mac);
                    control_frames += u32::from(self.queue_arp_reply(mac, ip));
                }
                Rx::ArpReply { mac, ip } => {
                    self.neighbors.learn(ip, mac);
                    self.extra.arp_learnt += 1;
                }
                Rx::Drop(r) => {
                    self.extra.drops.count(r);
                    if r.is_malformed() {
                        self.stats.malformed += 1;
                    } else {
                        self.stats.dropped += 1;
                    }
                }
            }
        }
        self.xsk.rx_release(n);
        if control_frames > 0 {
            self.flush_frames();
        }
        delivered
    }

    /// Queues the answer to an ARP request for our address; false when no transmit frame is free.
    fn queue_arp_reply(&mut self, mac: Address, ip: Ipv4Addr) -> bool {
        let Some(addr) = self.xsk.tx_alloc() else {
            self.stats.dropped += 1;
            return false;
        };
        match frame::emit_arp_reply(self.xsk.tx_frame_mut(addr), &self.local, mac, ip) {
            Ok(len) => {
                self.xsk.tx_push(addr, len as u32);
                self.stats.arp_replies += 1;
                true
            }
            Err(_) => {
                self.xsk.tx_unalloc(addr);
                false
            }
        }
    }

    /// Broadcasts "who has `ip`?" (rate-limited per destination by the caller's miss count).
    fn send_arp_request(&mut self, ip: Ipv4Addr) {
        let Some(addr) = self.xsk.tx_alloc() else {
            return;
        };
        let buf = self.xsk.tx_frame_mut(addr);
        let eth = ethernet::Repr {
            src_addr: self.local.mac,
            dst_addr: Address::BROADCAST,
            ethertype: 0x0806,
        };
        let req = arp::Repr {
            operation: arp::Operation::Request,
            source_hardware_addr: self.local.mac,
            source_protocol_addr: self.local.ip,
            target_hardware_addr: Address::default(),
            target_protocol_addr: ip,
        };
        let end = ethernet::HEADER_LEN + arp::PACKET_LEN;
        let built = eth
            .emit(buf)
            .and_then(|()| req.emit(&mut buf[ethernet::HEADER_LEN..end]));
        if built.is_err() {
            self.xsk.tx_unalloc(addr);
            return;
        }
        buf[end..ethernet::FRAME_MIN_BYTES].fill(0);
        self.xsk.tx_push(addr, ethernet::FRAME_MIN_BYTES as u32);
        self.extra.arp_requests += 1;
        self.flush_frames();
    }

    /// The MAC for `ip`, or `None` (after asking the network, at most once per `ARP_RETRY_MISSES` misses).
    fn resolve(&mut self, ip: Ipv4Addr) -> Option<Address> {
        if ip.is_broadcast() {
            return Some(Address::BROADCAST);
        }
        if ip.is_multicast() {
            return Some(multicast_mac(ip));
        }
        if let Some(mac) = self.neighbors.lookup(ip) {
            return Some(mac);
        }
        self.extra.no_neighbor += 1;
        let (pending_ip, misses) = self.arp_pending;
        if pending_ip != ip || misses % ARP_RETRY_MISSES == 0 {
            self.send_arp_request(ip);
        }
        self.arp_pending = (
            ip,
            if pending_ip == ip {
                misses.wrapping_add(1)
            } else {
                1
            },
        );
        None
    }

    /// Publishes queued frames and wakes the kernel's transmit path when it asks for it.
    fn flush_frames(&mut self) -> u32 {
        let n = self.xsk.tx_submit();
        self.xsk.tx_reclaim();
        if self.xsk.tx_in_flight() > 0 && self.xsk.tx_needs_wakeup() && self.xsk.kick_tx().is_err()
        {
            self.extra.kick_errors += 1;
        }
        n
    }
}

/// A UDP datagram for us inside peeked rx frame `index`.
struct RxUdp {
    index: u32,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: Range<usize>,
    src_mac: Address,
}

impl Backend for AfXdp {
    fn name(&self) -> &'static str {
        "af_xdp"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        self.rx_each(|xsk, _, stats, rx| {
            match xsk.rx_frame(rx.index).and_then(|fr| fr.get(rx.payload)) {
                Some(payload) => f(Datagram {
                    src: rx.src,
                    dst: rx.dst,
                    payload,
                }),
                None => stats.malformed += 1,
            }
        })
    }

    fn tx(
        &mut self,
        dst: SocketAddrV4,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<(), TxError> {
        let Some(dst_mac) = self.resolve(*dst.ip()) else {
            // Not a lack of slots: the datagram cannot be addressed yet. Counted here (tx_unresolved, and
            // no_neighbor in `resolve`) and said to the caller, which must not believe it sent.
            self.stats.tx_unresolved += 1;
            return Err(TxError::Unresolved);
        };
        let Some(addr) = self.xsk.tx_alloc() else {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        };
        let max = self.payload_max_bytes;
        let buf = self.xsk.tx_frame_mut(addr);
        let len = fill(&mut buf[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + max]);
        assert!(
            len <= max,
            "fill returned {len} bytes for a {max}-byte slot"
        );
        let src = SocketAddrV4::new(self.local.ip, self.local.port.unwrap_or(0));
        let h = UdpHeaders {
            src_mac: self.local.mac,
            dst_mac,
            src,
            dst,
            ident: self.ident,
            ttl: frame::ttl_for(*dst.ip(), self.multicast_ttl),
        };
        match frame::emit_udp_headers(buf, &h, len) {
            Ok(frame_len) => {
                self.ident = self.ident.wrapping_add(1);
                self.xsk.tx_push(addr, frame_len as u32);
                self.staged += 1;
            }
            Err(_) => {
                // Unreachable with the sizes checked in `new`; handled rather than asserted all the same.
                self.xsk.tx_unalloc(addr);
                self.stats.dropped += 1;
            }
        }
        Ok(())
    }

    fn tx_flush(&mut self) -> usize {
        self.flush_frames();
        let n = self.staged;
        self.stats.tx += u64::from(n);
        self.staged = 0;
        n as usize
    }

    /// Our counters, with the socket's `XDP_STATISTICS` drops as `kernel_drops`: `rx_dropped` (no room in the
    /// UMEM, frame too large for a chunk) plus `rx_ring_full` (we did not drain the rx ring fast enough), plus, in
    /// zero-copy mode, `rx_fill_ring_empty_descs` (the driver found no fill-ring entry and kept or dropped the
    /// frame itself; in copy mode such a frame is already one of `rx_dropped`, so it is not added twice there). A
    /// system call: cheap at the exporter's cadence, not meant for every poll.
    fn stats(&self) -> BackendStats {
        let mut stats = self.stats;
        // On failure (never expected for a bound socket) the field stays 0, as for backends that cannot see drops.
        if let Ok(k) = self.xsk.statistics() {
            let fill_empty = match self.xsk.mode() {
                BindMode::ZeroCopy => k.rx_fill_ring_empty_descs,
                BindMode::Copy => 0,
            };
            stats.kernel_drops = k.rx_dropped + k.rx_ring_full + fill_empty;
        }
        stats
    }
}

/// Echoes every UDP datagram back to its source until `stop` is set; returns how many were echoed. Busy-polls.
pub fn echo(xdp: &mut AfXdp, stop: &AtomicBool) -> u64 {
    let mut echoed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = xdp.echo_burst();
        if n == 0 {
            std::hint::spin_loop();
        }
        echoed += n as u64;
    }
    echoed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    #[test]
    fn bad_configuration_is_a_typed_error_before_any_syscall() {
        let good = || {
            let mut c = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 4000));
            c.interface = Some("bva".into());
            c
        };
        let config_err = |c: &BackendConfig, o: &AfXdpOptions| {
            matches!(AfXdp::with_options(c, o), Err(Error::Config(_)))
        };
        let d = AfXdpOptions::default();
        let mut c = good();
        c.bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4000);
        assert!(config_err(&c, &d));
        let mut c = good();
        c.bind.set_port(0);
        assert!(config_err(&c, &d));
        let mut c = good();
        c.interface = None;
        assert!(config_err(&c, &d));
        let mut c = good();
        c.payload_max_bytes = 1_800;
        assert!(config_err(&c, &d));
        let mut c = good();
        c.burst_max = 0;
        assert!(config_err(&c, &d));
        assert!(config_err(
            &good(),
            &AfXdpOptions {
                frame_size_bytes: 3000,
                ..d
            }
        ));
        assert!(config_err(
            &good(),
            &AfXdpOptions {
                rx_frames: 1000,
                ..d
            }
        ));
        // 4 KiB frames leave room for payloads up to 4096 - 256 - 42 bytes.
        let mut c = good();
        c.payload_max_bytes = 3_798;
        c.interface = Some("bourse-no-such-if".into());
        let o = AfXdpOptions {
            frame_size_bytes: 4096,
            ..d
        };
        assert!(matches!(
            AfXdp::with_options(&c, &o),
            Err(Error::Interface { .. })
        ));
    }

    #[test]
    fn multicast_mapping_keeps_low_23_bits() {
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 129, 2, 3)),
            Address([0x01, 0x00, 0x5e, 0x01, 2, 3])
        );
        assert_eq!(
            multicast_mac(Ipv4Addr::new(224, 0, 0, 251)),
            Address([0x01, 0x00, 0x5e, 0, 0, 251])
        );
    }

    #[test]
    fn neighbor_table_learns_updates_and_evicts() {
        let mut n = Neighbors::new();
        let ip = |i: u8| Ipv4Addr::new(10, 0, 0, i);
        n.learn(ip(1), Address([2, 0, 0, 0, 0, 1]));
        n.learn(ip(1), Address([2, 0, 0, 0, 0, 9]));
        assert_eq!(n.lookup(ip(1)), Some(Address([2, 0, 0, 0, 0, 9])));
        n.learn(ip(2), Address([1, 0, 0x5e, 0, 0, 1]));
        assert_eq!(n.lookup(ip(2)), None, "group MACs are never learnt");
        for i in 0..NEIGHBORS_MAX as u8 + 1 {
            n.learn(ip(100 + i), Address([2, 0, 0, 0, 1, i]));
        }
        assert_eq!(n.len, NEIGHBORS_MAX);
        assert_eq!(n.lookup(ip(1)), None, "oldest entry evicted first");
        assert_eq!(
            n.lookup(ip(100 + NEIGHBORS_MAX as u8)),
            Some(Address([2, 0, 0, 0, 1, NEIGHBORS_MAX as u8]))
        );
    }

    fn udp_frame(checksum: Option<u16>) -> Vec<u8> {
        let mut f = vec![0xa5u8; 64];
        f[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + 4].copy_from_slice(b"ping");
        let h = UdpHeaders {
            src_mac: Address([2, 0, 0, 0, 0, 1]),
            dst_mac: Address([2, 0, 0, 0, 0, 2]),
            src: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 5555),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 4000),
            ident: 7,
            ttl: crate::wire::ipv4::TTL_DEFAULT,
        };
        let len = frame::emit_udp_headers(&mut f, &h, 4).unwrap();
        f.truncate(len);
        if let Some(c) = checksum {
            f[40..42].copy_from_slice(&c.to_be_bytes());
        }
        f
    }

    const US: Local = Local {
        mac: Address([2, 0, 0, 0, 0, 2]),
        ip: Ipv4Addr::new(10, 77, 0, 1),
        port: Some(4000),
    };

    #[test]
    fn accepts_full_zero_and_partial_checksums_only() {
        let deliver = |f: &[u8]| match classify(f, &US) {
            Rx::Udp { payload, .. } => Some(f[payload].to_vec()),
            _ => None,
        };
        assert_eq!(
            deliver(&udp_frame(None)).as_deref(),
            Some(&b"ping"[..])
        );
        assert_eq!(
            deliver(&udp_frame(Some(0))).as_deref(),
            Some(&b"ping"[..])
        );
        // The partial checksum a sender with offload leaves: the folded pseudo-header sum, not complemented.
        let pseudo = checksum::pseudo_header(
            Ipv4Addr::new(10, 77, 0, 2),
            Ipv4Addr::new(10, 77, 0, 1),
            17,
            12,
        );
        let partial = !checksum::finish(pseudo);
        assert_eq!(
            deliver(&udp_frame(Some(partial))).as_deref(),
            Some(&b"ping"[..])
        );
        assert!(deliver(&udp_frame(Some(partial ^ 0x0100))).is_none());
        assert!(matches!(
            classify(&udp_frame(Some(0x1234)), &US),
            Rx::Drop(DropReason::BadUdpChecksum)
        ));
    }

    #[test]
    fn learns_from_arp_replies_to_us() {
        let mut f = [0u8; 42];
        ethernet::Repr {
            src_addr: Address([2, 0, 0, 0, 0, 1]),
            dst_addr: US.mac,
            ethertype: 0x0806,
        }
        .emit(&mut f)
        .unwrap();
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: Address([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 77, 0, 2),
            target_hardware_addr: US.mac,
            target_protocol_addr: US.ip,
        };
        reply.emit(&mut f[14..42]).unwrap();
        match classify(&f, &US) {
            Rx::ArpReply { mac, ip } => assert_eq!(
                (mac, ip),
                (Address([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 77, 0, 2))
            ),
            _ => panic!("ARP reply to us not recognised"),
        }
        let mut other = f;
        other[41] = 9;
        assert!(matches!(
            classify(&other, &US),
            Rx::Drop(DropReason::ArpIgnored)
        ));
    }
}
