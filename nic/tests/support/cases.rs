//! Test bodies shared by the kernel-socket backends (`socket`, `uring`): each takes a constructor from a config
//! to a backend and its bound address, so both backends are held to exactly the same behaviour.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bourse_nic::backend::{Backend, BackendConfig, BackendStats, TxError};

use super::{echo_exchange, payload, spawn_echo};

/// Polls `b` until `want` datagrams arrived or 5 s passed, checking each burst stays within `burst_max`.
fn receive<B: Backend>(b: &mut B, want: usize, burst_max: usize) -> Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let n = b.rx_burst(&mut |d| got.push((d.src, d.dst, d.payload.to_vec())));
        assert!(n <= burst_max, "burst of {n} exceeds burst_max {burst_max}");
    }
    got
}

fn loopback_peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind peer")
}

fn peer_addr(s: &UdpSocket) -> SocketAddrV4 {
    match s.local_addr().expect("peer address") {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("peer bound {other}"),
    }
}

/// A peer sends 1000 datagrams of varied lengths; all come back intact and the counters agree.
pub fn loopback_echo_1000<B: Backend + 'static>(make: fn(&BackendConfig) -> (B, SocketAddrV4)) {
    let cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let server = spawn_echo(None, move || make(&cfg), |b: &B| b.stats());
    let peer = loopback_peer();
    let ex = echo_exchange(&peer, server.addr, 1_000, 32, 1_472);
    let (echoed, stats) = server.stop();
    assert_eq!(ex.echoed, 1_000);
    assert_eq!(echoed, 1_000);
    assert_eq!(stats, BackendStats { rx: 1_000, tx: 1_000, ..BackendStats::default() });
    eprintln!("loopback echo: 1000 datagrams, window of 32 median {:.1} us", ex.median_us());
}

/// Datagrams arrive with the peer's source address, our bound address, their bytes, and in bursts of at most
/// `burst_max`.
pub fn delivers_bursts_with_addresses<B: Backend>(make: fn(&BackendConfig) -> (B, SocketAddrV4)) {
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.burst_max = 4;
    let (mut b, addr) = make(&cfg);
    assert_eq!(b.rx_burst(&mut |_| panic!("nothing was sent")), 0);
    let peer = loopback_peer();
    for seq in 0..10 {
        peer.send_to(&payload(seq, 10 + seq as usize), addr).expect("send");
    }
    let got = receive(&mut b, 10, 4);
    assert_eq!(got.len(), 10);
    for (seq, (src, dst, p)) in got.iter().enumerate() {
        assert_eq!(*src, peer_addr(&peer));
        assert_eq!(*dst, addr);
        assert_eq!(*p, payload(seq as u32, 10 + seq));
    }
    assert_eq!(b.stats().rx, 10);
}

/// A datagram longer than `payload_max_bytes` is counted as oversized, never delivered cut short.
pub fn oversized_is_counted<B: Backend>(make: fn(&BackendConfig) -> (B, SocketAddrV4)) {
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.payload_max_bytes = 100;
    let (mut b, addr) = make(&cfg);
    let peer = loopback_peer();
    peer.send_to(&payload(1, 101), addr).expect("send");
    peer.send_to(&payload(2, 100), addr).expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while (got.is_empty() || b.stats().oversized < 1) && Instant::now() < deadline {
        b.rx_burst(&mut |d| got.push(d.payload.to_vec()));
    }
    assert_eq!(got, vec![payload(2, 100)]);
    assert_eq!(b.stats().oversized, 1);
    assert_eq!(b.stats().malformed, 0);
    assert_eq!(b.stats().rx, 1);
}

/// Datagrams sent to the backend in this test's overflow case before it reads any.
pub const OVERFLOW_DATAGRAMS: u32 = 2_000;

/// A peer overflows the receive buffer of a backend built with a small `SO_RCVBUF` (`make_small`) before it reads
/// anything; the backend drains what was queued; then the peer sends one marker datagram. The drop count rides on
/// datagrams queued after the drops, so once the marker is received `kernel_drops` holds them all and every
/// datagram sent was either received or counted. Returns the backend for backend-specific checks.
pub fn kernel_drops_are_counted<B: Backend>(make_small: fn(&BackendConfig) -> (B, SocketAddrV4)) -> B {
    let cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let (mut b, addr) = make_small(&cfg);
    let peer = loopback_peer();
    for seq in 0..OVERFLOW_DATAGRAMS {
        peer.send_to(&payload(seq, 200), addr).expect("send");
    }
    // Drain: loopback delivery happened inside send_to, so what was queued is waiting. Many empty polls in a row
    // mean it is all read (the uring backend may return empty polls while it re-arms its receive).
    let mut received = 0u64;
    let mut empty_polls = 0;
    while empty_polls < 10_000 {
        let n = b.rx_burst(&mut |_| received += 1);
        empty_polls = if n == 0 { empty_polls + 1 } else { 0 };
    }
    assert!(received > 0 && received < u64::from(OVERFLOW_DATAGRAMS), "received {received}: no overflow");
    let marker = payload(u32::MAX, 16);
    peer.send_to(&marker, addr).expect("send marker");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_marker = false;
    while !seen_marker && Instant::now() < deadline {
        b.rx_burst(&mut |d| {
            received += 1;
            seen_marker |= d.payload == marker.as_slice();
        });
    }
    assert!(seen_marker, "the marker sent into a drained buffer arrives");
    let s = b.stats();
    assert_eq!(s.rx, received);
    assert!(s.kernel_drops > 0, "a 2,000-datagram burst into a small buffer must drop some: {s:?}");
    // Loopback may also drop before the socket (the per-CPU backlog), which the socket cannot count.
    assert!(
        s.rx + s.kernel_drops <= u64::from(OVERFLOW_DATAGRAMS) + 1,
        "received {} + kernel drops {} exceed what was sent",
        s.rx,
        s.kernel_drops
    );
    b
}

/// With every transmit slot queued, `tx` refuses with `TxError::Full` and counts it; a flush frees the slots.
pub fn tx_full_is_backpressure<B: Backend>(make: fn(&BackendConfig) -> (B, SocketAddrV4)) {
    let mut cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    cfg.tx_slots = 2;
    let (mut b, _) = make(&cfg);
    let peer = loopback_peer();
    peer.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let to = peer_addr(&peer);
    let fill = |seq: u32| {
        move |buf: &mut [u8]| {
            let p = payload(seq, 20);
            buf[..p.len()].copy_from_slice(&p);
            p.len()
        }
    };
    assert_eq!(b.tx(to, &mut fill(0)), Ok(()));
    assert_eq!(b.tx(to, &mut fill(1)), Ok(()));
    assert_eq!(b.tx(to, &mut fill(2)), Err(TxError::Full));
    assert_eq!(b.stats().tx_full, 1);
    assert_eq!(b.tx_flush(), 2);
    let mut buf = [0u8; 64];
    for seq in 0..2 {
        let (n, _) = super::recv_from_retrying(&peer, &mut buf).expect("datagram");
        assert_eq!(&buf[..n], &payload(seq, 20)[..]);
    }
    // The kernel-socket backends free a slot once the kernel has taken it; wait for that (uring reports sends
    // as completions) before the next send must succeed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.stats().tx < 2 && Instant::now() < deadline {
        b.tx_flush();
    }
    assert_eq!(b.stats().tx, 2);
    assert_eq!(b.tx(to, &mut fill(3)), Ok(()));
    assert_eq!(b.tx_flush(), 1);
    let (n, _) = super::recv_from_retrying(&peer, &mut buf).expect("datagram after flush");
    assert_eq!(&buf[..n], &payload(3, 20)[..]);
}

/// After start-up, receiving, echoing and flushing 1000 datagrams allocates nothing on the backend's thread.
/// Meaningful only in a test binary that installs [`super::alloc_count::CountingAlloc`].
pub fn hot_path_does_not_allocate<B: Backend + 'static>(make: fn(&BackendConfig) -> (B, SocketAddrV4)) {
    use bourse_nic::backend::echo::Echo;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cfg = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let (mut b, addr) = make(&cfg);
        let mut echo = Echo::new();
        // Start-up: the first polls may set things up (the uring backend enables its ring here).
        echo.poll(&mut b);
        addr_tx.send(addr).expect("address");
        let before = super::alloc_count::allocations_on_this_thread();
        while !flag.load(Ordering::Relaxed) {
            echo.poll(&mut b);
        }
        let allocations = super::alloc_count::allocations_on_this_thread() - before;
        // The counter must be live, or the zero above would prove nothing.
        let probe = std::hint::black_box(Vec::<u8>::with_capacity(16));
        assert!(super::alloc_count::allocations_on_this_thread() > before + allocations, "CountingAlloc not installed");
        drop(probe);
        (allocations, echo.stats().echoed)
    });
    let addr = addr_rx.recv().expect("server address");
    let ex = echo_exchange(&loopback_peer(), addr, 1_000, 32, 1_472);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (allocations, echoed) = server.join().expect("server thread");
    assert_eq!((ex.echoed, echoed), (1_000, 1_000));
    assert_eq!(allocations, 0, "the receive/echo/flush loop allocated");
}
