//! The `uring` backend: loopback tests that need no privileges, then the two-namespace veth test (root).

mod support;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bourse_nic::backend::socket::SocketOptions;
use bourse_nic::backend::uring::{UringBackend, UringError, UringMode, UringOptions};
use bourse_nic::backend::{Backend, BackendConfig, BackendStats};
use support::{cases, Side};

#[global_allocator]
static ALLOC: support::alloc_count::CountingAlloc = support::alloc_count::CountingAlloc;

/// Builds the backend, or explains why io_uring is unavailable here (seccomp, `io_uring_disabled`).
fn try_make(cfg: &BackendConfig) -> Result<(UringBackend, SocketAddrV4), UringError> {
    let b = UringBackend::new(cfg)?;
    let a = b.local_addr();
    Ok((b, a))
}

fn make(cfg: &BackendConfig) -> (UringBackend, SocketAddrV4) {
    try_make(cfg).expect("uring backend")
}

/// True when io_uring can be set up; prints the skip reason otherwise.
fn uring_available() -> bool {
    match try_make(&BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))) {
        Ok(_) => true,
        Err(UringError::Setup { source, .. }) => {
            eprintln!("skipped: io_uring unavailable: {source}");
            false
        }
        Err(e) => panic!("uring backend: {e}"),
    }
}

#[test]
fn loopback_echo_1000() {
    if uring_available() {
        cases::loopback_echo_1000(make);
    }
}

#[test]
fn delivers_bursts_with_addresses() {
    if uring_available() {
        cases::delivers_bursts_with_addresses(make);
    }
}

#[test]
fn oversized_is_counted() {
    if uring_available() {
        cases::oversized_is_counted(make);
    }
}

/// A uring backend whose socket's receive buffer holds only a few datagrams.
fn make_small(cfg: &BackendConfig) -> (UringBackend, SocketAddrV4) {
    let opts = UringOptions {
        socket: SocketOptions { recv_buffer_bytes: Some(4_096), ..SocketOptions::default() },
        ..UringOptions::default()
    };
    let b = UringBackend::with_options(cfg, &opts).expect("uring backend");
    let a = b.local_addr();
    (b, a)
}

#[test]
fn kernel_drops_are_counted() {
    if uring_available() {
        cases::kernel_drops_are_counted(make_small);
    }
}

#[test]
fn tx_full_is_backpressure() {
    if uring_available() {
        cases::tx_full_is_backpressure(make);
    }
}

#[test]
fn reports_the_task_work_mode() {
    if !uring_available() {
        return;
    }
    let (b, _) = make(&BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)));
    // Kernel 6.1+ (these VMs run 6.18) accepts deferred task work; older kernels fall back and say so.
    eprintln!("uring mode: {:?}", b.mode());
    assert!(matches!(b.mode(), UringMode::DeferTaskrun | UringMode::CoopTaskrun | UringMode::Plain));
}

/// More datagrams wait than there are provided buffers: the multishot receive runs the ring dry, ends, and is
/// re-armed, and every datagram still arrives in order.
#[test]
fn rearms_when_the_buffer_ring_runs_dry() {
    if !uring_available() {
        return;
    }
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.burst_max = 8;
    // Four buffers: fewer than the kernel receives in one go when 300 datagrams are waiting.
    let opts = UringOptions {
        socket: SocketOptions { recv_buffer_bytes: Some(4 << 20), ..SocketOptions::default() },
        rx_buffers: Some(4),
    };
    let mut b = UringBackend::with_options(&cfg, &opts).expect("uring backend");
    let addr = b.local_addr();
    // The first poll enables the ring on this thread and arms the receive.
    assert_eq!(b.rx_burst(&mut |_| panic!("nothing was sent")), 0);
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let count = 300u32;
    for seq in 0..count {
        peer.send_to(&support::payload(seq, 64), addr).expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut next = 0u32;
    while next < count && Instant::now() < deadline {
        b.rx_burst(&mut |d| {
            assert_eq!(d.payload, &support::payload(next, 64)[..], "datagram {next}");
            next += 1;
        });
    }
    assert_eq!(next, count);
    assert_eq!(b.stats().rx, u64::from(count));
    assert!(b.rearms() >= 1, "300 datagrams through 4 buffers must end the multishot at least once");
    eprintln!("rearms: {}", b.rearms());
}

/// Built on one thread, polled on another: the ring is enabled by its first poller.
#[test]
fn moves_to_the_polling_thread() {
    if !uring_available() {
        return;
    }
    let (mut b, addr) = make(&BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)));
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let got = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            b.rx_burst(&mut |d| got.push(d.payload.to_vec()));
        }
        (got, b.os_errors())
    });
    // Sent before or after the first poll, the datagram waits in the socket buffer either way.
    peer.send_to(b"hello", addr).expect("send");
    let (got, errors) = got.join().expect("poller");
    assert_eq!(got, vec![b"hello".to_vec()]);
    assert_eq!(errors, 0);
}

#[test]
fn netns_veth_echo_1000() {
    if !uring_available() {
        return;
    }
    let Some(ns) = support::require_root_netns() else { return };
    let cfg = BackendConfig::new(SocketAddrV4::new(Side::A.addr(), 0));
    let server = support::spawn_echo(Some((&ns, Side::A)), move || make(&cfg), |b: &UringBackend| {
        (b.stats(), b.os_errors())
    });
    let to = server.addr;
    let ex = ns.run_in(Side::B, move || {
        let peer = UdpSocket::bind(SocketAddrV4::new(Side::B.addr(), 0)).expect("bind peer in bourse-b");
        support::echo_exchange(&peer, to, 1_000, 16, 1_472)
    });
    let (echoed, (stats, errors)) = server.stop();
    assert_eq!((ex.echoed, echoed), (1_000, 1_000));
    assert_eq!(stats, BackendStats { rx: 1_000, tx: 1_000, ..BackendStats::default() });
    assert_eq!(errors, 0);
    eprintln!("uring over veth: window of 16 median {:.1} us", ex.median_us());
}

#[test]
fn netns_veth_round_trip_latency() {
    if !uring_available() {
        return;
    }
    let Some(ns) = support::require_root_netns() else { return };
    let rtts = support::veth_round_trips(&ns, |bind| make(&BackendConfig::new(bind)), 2_000);
    eprintln!("uring echo over veth, 2000 x 64 B: {}", support::percentiles_us(&rtts));
}

#[test]
fn hot_path_does_not_allocate() {
    if uring_available() {
        cases::hot_path_does_not_allocate(make);
    }
}
