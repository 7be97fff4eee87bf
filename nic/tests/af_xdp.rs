//! The AF_XDP backend on the veth pair of `scripts/netns.sh`: the XSK socket on `bva` in `bourse-a`, a kernel UDP
//! socket and a raw packet socket as its peers in `bourse-b`.
//!
//! One scenario, run once (the XDP program owns `bva` while it runs, so scenarios cannot overlap):
//! * ARP: the peer's neighbour entry is flushed, so its kernel must ask for 10.77.0.1 and the backend answers;
//!   a hand-built ARP request on a raw socket must get our MAC back.
//! * Echo: 1000 datagrams one at a time (the first 500 through the generic [`Backend`] trait echo, the rest
//!   through the backend's own copy-once `echo`), then 2000 more in windows of 16; every one back intact.
//! * Garbage: 30 damaged frames to our port (bad IPv4 checksum, bad UDP checksum, UDP length beyond the packet)
//!   must be counted as malformed, 10 frames to another MAC as dropped; none delivered.
//!
//! A second scenario forces generic (skb) XDP and copy mode, and sends first: a datagram to a peer whose MAC is
//! not known yet is dropped and counted, an ARP request goes out, the reply is learnt, and the next datagram
//! arrives; then 200 datagrams are echoed.
//!
//! Needs root and network namespaces; skips with `skipped: <reason>` otherwise.

mod support;

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bourse_nic::backend::af_xdp::XdpStatistics;
use bourse_nic::backend::af_xdp::{
    self, AfXdp, AfXdpOptions, AfXdpStats, AttachMode, BindMode, Error, Mode,
};
use bourse_nic::backend::echo::Echo;
use bourse_nic::backend::{Backend, BackendConfig, BackendStats, TxError};
use bourse_nic::wire::ethernet::Address;
use bourse_nic::wire::frame::{self, DropReason, UdpHeaders, UDP_PAYLOAD_OFFSET};
use support::{Side, ADDR_A, ADDR_B};

/// Our UDP port: distinct from the other backends' tests so a stray datagram cannot pass for ours.
const PORT: u16 = 17_301;
/// Datagrams echoed through the generic trait loop before switching to the backend's own echo.
const TRAIT_ECHO_DATAGRAMS: u64 = 500;
/// Another test (the DPDK af_xdp driver) may hold `bva`'s queue and XDP hook for a while; wait this long for it.
const ATTACH_WAIT: Duration = Duration::from_secs(60);
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_ALL: u16 = 0x0003;

struct ServerReport {
    stats: BackendStats,
    extra: AfXdpStats,
    kernel: Option<XdpStatistics>,
    echoed_trait: u64,
    echoed_own: u64,
}

/// Opens the backend, waiting while someone else's XDP program holds the interface (`EBUSY`).
fn open(opt: &AfXdpOptions) -> AfXdp {
    let mut cfg = BackendConfig::new(SocketAddrV4::new(ADDR_A, PORT));
    cfg.interface = Some(Side::A.veth().to_owned());
    let deadline = Instant::now() + ATTACH_WAIT;
    loop {
        match AfXdp::with_options(&cfg, opt) {
            Ok(x) => return x,
            // EBUSY from bind: another XSK owns the queue; from the attach: another XDP program owns the hook.
            Err(
                Error::Sys { source, .. }
                | Error::Attach {
                    generic: source, ..
                },
            ) if source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("open AF_XDP on {}: {e}", Side::A.veth()),
        }
    }
}

fn serve(xdp: &mut AfXdp, stop: &AtomicBool) -> (u64, u64) {
    let mut generic = Echo::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while generic.stats().echoed < TRAIT_ECHO_DATAGRAMS && !stop.load(Ordering::Relaxed) {
        generic.poll(xdp);
        assert!(
            Instant::now() < deadline,
            "trait echo phase did not finish within 60 s"
        );
    }
    let own = af_xdp::echo(xdp, stop);
    (generic.stats().echoed, own)
}

#[allow(unsafe_code)]
fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(
        i,
        0,
        "no interface {name}: {}",
        std::io::Error::last_os_error()
    );
    i
}

/// A raw packet socket on `dev` receiving `protocol` (an EtherType) with a 1 s receive timeout.
#[allow(unsafe_code)]
fn packet_socket(dev: &str, protocol: u16) -> (OwnedFd, u32) {
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as i32,
        )
    };
    assert!(
        raw >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fresh descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let idx = ifindex(dev);
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = idx as i32;
    // SAFETY: `sll` is a live sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a live timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    assert_eq!(rc, 0);
    (fd, idx)
}

#[allow(unsafe_code)]
fn send_frame(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: the socket is bound to one interface; `frame` is a live buffer of the length passed.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    assert_eq!(
        n,
        frame.len() as isize,
        "raw send: {}",
        std::io::Error::last_os_error()
    );
}

#[allow(unsafe_code)]
fn recv_frame(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
        )
    };
    (n >= 0).then_some(n as usize)
}

#[allow(unsafe_code)]
fn mac_of(dev: &str) -> [u8; 6] {
    // sysfs shows the namespace that mounted it, so ask the kernel through a socket in this thread's namespace.
    let (fd, _) = packet_socket(dev, ETH_P_ARP);
    // SAFETY: ifreq is plain old data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(dev.as_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid `ifreq` whose name is NUL-terminated: the veth names are shorter than IFNAMSIZ
    // and the zeroed tail ends them.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    assert_eq!(rc, 0, "SIOCGIFHWADDR: {}", std::io::Error::last_os_error());
    // SAFETY: SIOCGIFHWADDR filled the hardware address member.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    mac
}

/// Asks "who has 10.77.0.1?" on a raw socket and returns the MAC in the first reply from 10.77.0.1.
fn arp_probe(our_mac: [u8; 6]) -> Option<[u8; 6]> {
    let (fd, _) = packet_socket(Side::B.veth(), ETH_P_ARP);
    let mut req = [0u8; 60];
    req[..6].copy_from_slice(&[0xff; 6]);
    req[6..12].copy_from_slice(&our_mac);
    req[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    req[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    req[22..28].copy_from_slice(&our_mac);
    req[28..32].copy_from_slice(&ADDR_B.octets());
    req[38..42].copy_from_slice(&ADDR_A.octets());
    send_frame(&fd, &req);
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Some(n) = recv_frame(&fd, &mut buf) else {
            continue;
        };
        let is_reply = n >= 42 && buf[20..22] == [0, 2] && buf[28..32] == ADDR_A.octets();
        if is_reply {
            return Some(buf[22..28].try_into().unwrap());
        }
    }
    None
}

/// Sends damaged and misaddressed frames from `bvb` to `bva`: returns (malformed, dropped) counts sent.
fn send_garbage(server_mac: [u8; 6], peer_mac: [u8; 6]) -> (u64, u64) {
    let (fd, _) = packet_socket(Side::B.veth(), ETH_P_ALL);
    let good = |payload: &[u8], dst_mac: [u8; 6]| -> Vec<u8> {
        let mut f = vec![0u8; UDP_PAYLOAD_OFFSET + payload.len()];
        f[UDP_PAYLOAD_OFFSET..].copy_from_slice(payload);
        let h = UdpHeaders {
            src_mac: Address(peer_mac),
            dst_mac: Address(dst_mac),
            src: SocketAddrV4::new(ADDR_B, 40_000),
            dst: SocketAddrV4::new(ADDR_A, PORT),
            ident: 1,
            ttl: bourse_nic::wire::ipv4::TTL_DEFAULT,
        };
        let n = frame::emit_udp_headers(&mut f, &h, payload.len()).unwrap();
        assert_eq!(n, f.len());
        f
    };
    let mut malformed = 0;
    let mut dropped = 0;
    for i in 0..10u8 {
        let mut bad_ip = good(&[i; 20], server_mac);
        bad_ip[24] ^= 0x5a; // IPv4 header checksum
        let mut bad_udp = good(&[i; 20], server_mac);
        bad_udp[UDP_PAYLOAD_OFFSET + 3] ^= 0x01; // payload no longer matches the full checksum
        let mut long_udp = good(&[i; 20], server_mac);
        long_udp[38..40].copy_from_slice(&200u16.to_be_bytes()); // UDP length beyond the IPv4 payload
        let other_mac = good(&[i; 20], [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        for f in [&bad_ip, &bad_udp, &long_udp] {
            send_frame(&fd, f);
            malformed += 1;
        }
        send_frame(&fd, &other_mac);
        dropped += 1;
    }
    (malformed, dropped)
}

/// The XDP hook of `bva` takes one program: the scenarios of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn veth_echo_arp_and_garbage() {
    let Some(netns) = support::require_root_netns() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Forget 10.77.0.1's MAC in bourse-b, so the first datagram makes the peer's kernel ask for it.
    let _ = netns
        .command(Side::B, "ip")
        .args(["neigh", "flush", "dev", Side::B.veth()])
        .status();

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<(Mode, [u8; 6])>();
    let flag = Arc::clone(&stop);
    let server = netns.spawn_in(Side::A, move || {
        let mut xdp = open(&AfXdpOptions::default());
        ready_tx
            .send((xdp.mode(), xdp.local_mac()))
            .expect("report readiness");
        let (echoed_trait, echoed_own) = serve(&mut xdp, &flag);
        ServerReport {
            stats: xdp.stats(),
            extra: xdp.extra_stats(),
            kernel: xdp.kernel_stats().ok(),
            echoed_trait,
            echoed_own,
        }
    });
    let (mode, server_mac) = match ready_rx.recv_timeout(ATTACH_WAIT + Duration::from_secs(10)) {
        Ok(v) => v,
        Err(_) => match server.join() {
            Ok(_) => panic!("server exited before reporting"),
            Err(p) => std::panic::resume_unwind(p),
        },
    };
    eprintln!(
        "af_xdp: {mode} on {} (MAC {server_mac:02x?})",
        Side::A.veth()
    );

    let server_addr = SocketAddrV4::new(ADDR_A, PORT);
    let client = netns.run_in(Side::B, move || {
        let peer = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).expect("bind peer");
        let one = support::echo_exchange(&peer, server_addr, 1000, 1, 1_400);
        let windowed = support::echo_exchange(&peer, server_addr, 2000, 16, 1_400);
        let peer_mac = mac_of(Side::B.veth());
        let arp = arp_probe(peer_mac);
        let garbage = send_garbage(server_mac, peer_mac);
        (one, windowed, arp, garbage)
    });
    let (one, windowed, arp, (garbage_malformed, garbage_dropped)) = client;
    // The server polls continuously; give it a moment to see the garbage before stopping it.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let report = match server.join() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    };

    eprintln!(
        "af_xdp echo: {}/1000 one at a time (median RTT {:.1} µs), {}/2000 in windows of 16 (median window {:.1} µs)",
        one.echoed,
        one.median_us(),
        windowed.echoed,
        windowed.median_us()
    );
    eprintln!(
        "af_xdp stats: {:?}\nextra: {:?}\nkernel: {:?}",
        report.stats, report.extra, report.kernel
    );

    assert_eq!(one.echoed, 1000);
    assert_eq!(windowed.echoed, 2000);
    assert_eq!(report.echoed_trait + report.echoed_own, 3000);
    assert_eq!(
        report.echoed_trait, TRAIT_ECHO_DATAGRAMS,
        "the trait path served the first 500"
    );
    assert_eq!(report.stats.rx, 3000, "garbage must not be delivered");
    assert_eq!(report.stats.tx, 3000);

    assert_eq!(arp, Some(server_mac), "no ARP reply carrying our MAC");
    // At least the probe and the peer kernel's own resolution after the flush.
    assert!(
        report.stats.arp_replies >= 2,
        "ARP replies: {}",
        report.stats.arp_replies
    );

    let d = report.extra.drops;
    assert_eq!(
        report.stats.malformed, garbage_malformed,
        "malformed: {d:?}"
    );
    assert_eq!(d.get(DropReason::BadIpChecksum), 10);
    assert_eq!(d.get(DropReason::BadUdpChecksum), 10);
    assert_eq!(
        d.get(DropReason::Truncated) + d.get(DropReason::BadUdpLength),
        10
    );
    assert!(
        report.stats.dropped >= garbage_dropped,
        "dropped: {}",
        report.stats.dropped
    );
    assert!(d.get(DropReason::NotOurMac) >= garbage_dropped);
    assert_eq!(report.extra.bad_descriptors, 0);
}

/// Port of the peer socket in the generic-mode scenario.
const PEER_PORT: u16 = 17_302;

#[test]
fn veth_generic_mode_resolves_unknown_peer_then_echoes() {
    let Some(netns) = support::require_root_netns() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // The peer socket exists before the backend sends to it, so nothing is answered with port-unreachable.
    let peer = netns.run_in(Side::B, || {
        UdpSocket::bind(SocketAddrV4::new(ADDR_B, PEER_PORT)).expect("bind peer")
    });
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let (ready_tx, ready_rx) = mpsc::channel::<Mode>();
    let server = netns.spawn_in(Side::A, move || {
        let opt = AfXdpOptions {
            force_copy: true,
            force_generic: true,
            ..AfXdpOptions::default()
        };
        let mut xdp = open(&opt);
        ready_tx.send(xdp.mode()).expect("report readiness");
        let dst = SocketAddrV4::new(ADDR_B, PEER_PORT);
        let msg = b"unsolicited";
        let mut fill = |b: &mut [u8]| {
            b[..msg.len()].copy_from_slice(msg);
            msg.len()
        };
        // Unknown MAC: refused with a typed error (never a silent Ok), counted, and an ARP request is sent.
        assert_eq!(xdp.tx(dst, &mut fill), Err(TxError::Unresolved));
        assert_eq!(xdp.tx_flush(), 0);
        let before = (xdp.extra_stats(), xdp.stats());
        let deadline = Instant::now() + Duration::from_secs(2);
        while xdp.extra_stats().arp_learnt == 0 && Instant::now() < deadline {
            xdp.rx_burst(&mut |_| {});
        }
        assert_eq!(xdp.tx(dst, &mut fill), Ok(()));
        assert_eq!(xdp.tx_flush(), 1);
        let echoed = af_xdp::echo(&mut xdp, &flag);
        (before, xdp.extra_stats(), xdp.stats(), echoed)
    });
    let mode = ready_rx
        .recv_timeout(ATTACH_WAIT + Duration::from_secs(10))
        .expect("server ready");
    eprintln!("af_xdp: {mode}");
    assert_eq!(
        mode,
        Mode {
            bind: BindMode::Copy,
            attach: AttachMode::Generic
        }
    );

    let mut buf = [0u8; 2048];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("unsolicited datagram after ARP resolution");
    assert_eq!(
        (&buf[..n], from),
        (
            &b"unsolicited"[..],
            std::net::SocketAddr::V4(SocketAddrV4::new(ADDR_A, PORT))
        )
    );
    let exchange = support::echo_exchange(&peer, SocketAddrV4::new(ADDR_A, PORT), 200, 4, 1_000);
    stop.store(true, Ordering::Relaxed);
    let ((extra0, stats0), extra, stats, echoed) = match server.join() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    };
    eprintln!(
        "generic mode: {}/200 echoed, median window of 4 {:.1} µs",
        exchange.echoed,
        exchange.median_us()
    );
    assert_eq!(
        (
            extra0.no_neighbor,
            extra0.arp_requests,
            stats0.tx_unresolved,
            stats0.dropped,
            stats0.tx
        ),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(extra.arp_learnt, 1);
    assert_eq!(exchange.echoed, 200);
    assert_eq!(echoed, 200);
    assert_eq!(stats.tx, 201);
}
