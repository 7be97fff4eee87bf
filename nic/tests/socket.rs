//! The `socket` backend: loopback tests that need no privileges, then the two-namespace veth tests (root).

mod support;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bourse_nic::backend::socket::{SocketBackend, SocketError, SocketOptions};
use bourse_nic::backend::{Backend, BackendConfig, BackendStats};
use support::{cases, Side};

#[global_allocator]
static ALLOC: support::alloc_count::CountingAlloc = support::alloc_count::CountingAlloc;

fn make(cfg: &BackendConfig) -> (SocketBackend, SocketAddrV4) {
    let b = SocketBackend::new(cfg).expect("socket backend");
    let a = b.local_addr();
    (b, a)
}

#[test]
fn loopback_echo_1000() {
    cases::loopback_echo_1000(make);
}

#[test]
fn delivers_bursts_with_addresses() {
    cases::delivers_bursts_with_addresses(make);
}

#[test]
fn oversized_is_counted() {
    cases::oversized_is_counted(make);
}

/// A socket backend whose receive buffer holds only a few datagrams.
fn make_small(cfg: &BackendConfig) -> (SocketBackend, SocketAddrV4) {
    let opts = SocketOptions { recv_buffer_bytes: Some(4_096), ..SocketOptions::default() };
    let b = SocketBackend::with_options(cfg, &opts).expect("socket backend");
    let a = b.local_addr();
    (b, a)
}

#[test]
fn kernel_drops_are_counted() {
    let b = cases::kernel_drops_are_counted(make_small);
    // Every drop the kernel counted for the socket reached the backend's counter.
    let kernel = b.kernel_drop_count().expect("SO_MEMINFO");
    assert_eq!(b.stats().kernel_drops, u64::from(kernel));
}

#[test]
fn tx_full_is_backpressure() {
    cases::tx_full_is_backpressure(make);
}

#[test]
fn bad_config_is_a_typed_error() {
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.burst_max = 0;
    assert!(matches!(SocketBackend::new(&cfg), Err(SocketError::Config(_))));
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.payload_max_bytes = 70_000;
    assert!(matches!(SocketBackend::new(&cfg), Err(SocketError::Config(_))));
    // An address we do not own cannot be bound.
    let cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0));
    assert!(matches!(SocketBackend::new(&cfg), Err(SocketError::Bind { .. })));
}

#[test]
fn binds_are_exclusive_by_default_and_a_closed_port_rebinds_at_once() {
    let cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let (first, addr) = make(&cfg);
    let again = BackendConfig::new(addr);
    // A second appliance on the same bind must not start beside the first (it would take some of its orders).
    match SocketBackend::new(&again) {
        Err(SocketError::Bind { addr: a, source }) => {
            assert_eq!(a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{source}");
        }
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("a second socket bound {addr} while the first holds it"),
    }
    drop(first);
    // UDP has no TIME_WAIT: a restarted appliance rebinds at once without SO_REUSEADDR.
    let opts = SocketOptions { busy_poll_us: Some(0), recv_buffer_bytes: Some(1 << 20), ..SocketOptions::default() };
    let b = SocketBackend::with_options(&again, &opts).expect("rebind after close");
    assert_eq!(b.local_addr(), addr);
}

#[test]
fn reuse_addr_is_opt_in_and_lets_a_second_socket_share_the_port() {
    // What the default protects against: with SO_REUSEADDR on both, Linux lets two UDP sockets bind one address.
    let reuse = SocketOptions { reuse_addr: true, ..SocketOptions::default() };
    let first = SocketBackend::with_options(&BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)), &reuse)
        .expect("bind with SO_REUSEADDR");
    let addr = first.local_addr();
    let second = SocketBackend::with_options(&BackendConfig::new(addr), &reuse).expect("shared bind");
    assert_eq!(second.local_addr(), addr);
}

#[test]
fn netns_veth_echo_1000() {
    let Some(ns) = support::require_root_netns() else { return };
    let cfg = BackendConfig::new(SocketAddrV4::new(Side::A.addr(), 0));
    let server = support::spawn_echo(Some((&ns, Side::A)), move || make(&cfg), |b: &SocketBackend| b.stats());
    let to = server.addr;
    let ex = ns.run_in(Side::B, move || {
        let peer = UdpSocket::bind(SocketAddrV4::new(Side::B.addr(), 0)).expect("bind peer in bourse-b");
        support::echo_exchange(&peer, to, 1_000, 16, 1_472)
    });
    let (echoed, stats) = server.stop();
    assert_eq!((ex.echoed, echoed), (1_000, 1_000));
    assert_eq!(stats, BackendStats { rx: 1_000, tx: 1_000, ..BackendStats::default() });
    eprintln!("socket over veth: window of 16 median {:.1} us", ex.median_us());
}

/// Multicast from bourse-a out of its veth (IP_MULTICAST_IF, TTL, LOOP set) reaches a group member in bourse-b.
#[test]
fn netns_multicast_send() {
    let Some(ns) = support::require_root_netns() else { return };
    let group = Ipv4Addr::new(239, 77, 0, 1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = ns.spawn_in(Side::B, move || {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).expect("bind listener");
        s.join_multicast_v4(&group, &Side::B.addr()).expect("join group");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let port = s.local_addr().expect("addr").port();
        ready_tx.send(port).expect("ready");
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while got.len() < 5 {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => got.push((buf[..n].to_vec(), from)),
                Err(_) => break,
            }
        }
        got
    });
    let port = ready_rx.recv().expect("listener port");
    let sent = ns.run_in(Side::A, move || {
        let opts = SocketOptions {
            multicast_if: Some(Side::A.addr()),
            multicast_ttl: Some(1),
            multicast_loop: Some(false),
            ..SocketOptions::default()
        };
        let cfg = BackendConfig::new(SocketAddrV4::new(Side::A.addr(), 0));
        let mut b = SocketBackend::with_options(&cfg, &opts).expect("multicast sender");
        let dst = SocketAddrV4::new(group, port);
        for seq in 0..5 {
            b.tx(dst, &mut |buf| {
                let p = support::payload(seq, 40);
                buf[..p.len()].copy_from_slice(&p);
                p.len()
            })
            .expect("slot");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.stats().tx < 5 && Instant::now() < deadline {
            b.tx_flush();
        }
        (b.stats(), b.local_addr())
    });
    let got = listener.join().expect("listener");
    assert_eq!(sent.0.tx, 5);
    assert_eq!(got.len(), 5, "multicast datagrams received in bourse-b");
    for (seq, (p, from)) in got.iter().enumerate() {
        assert_eq!(*p, support::payload(seq as u32, 40));
        assert_eq!(*from, std::net::SocketAddr::V4(sent.1));
    }
}

#[test]
fn netns_veth_round_trip_latency() {
    let Some(ns) = support::require_root_netns() else { return };
    let rtts = support::veth_round_trips(&ns, |bind| make(&BackendConfig::new(bind)), 2_000);
    eprintln!("socket echo over veth, 2000 x 64 B: {}", support::percentiles_us(&rtts));
}

#[test]
fn hot_path_does_not_allocate() {
    cases::hot_path_does_not_allocate(make);
}
