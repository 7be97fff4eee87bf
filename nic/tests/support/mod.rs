//! Shared helpers for the backend tests that need two network namespaces joined by a veth pair.
//!
//! `scripts/netns.sh up` builds the topology (idempotently, so tests of several backends may call it at once):
//!
//! ```text
//!   bourse-a: veth bva, 10.77.0.1/24  <──veth──>  bourse-b: veth bvb, 10.77.0.2/24
//! ```
//!
//! A test asks for it with [`require_root_netns`], which prints `skipped: <reason>` and returns `None` when the
//! test cannot run here (not root, no `ip`, namespaces unavailable), then runs the backend under test in one
//! namespace and a kernel UDP socket peer in the other with [`Netns::spawn_in`]. A network namespace belongs to a
//! thread, so entering one with `setns(2)` on a fresh thread leaves the test harness's own threads untouched.
//!
//! Use from a test file with `mod support;` (the folder form keeps cargo from treating it as a test of its own).
#![allow(dead_code)]
#![allow(unsafe_code)]

pub mod alloc_count;
pub mod cases;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Namespace names, interfaces and addresses as `scripts/netns.sh` creates them.
pub const NS_A: &str = "bourse-a";
pub const NS_B: &str = "bourse-b";
pub const VETH_A: &str = "bva";
pub const VETH_B: &str = "bvb";
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Which end of the veth pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::A => NS_A,
            Side::B => NS_B,
        }
    }

    pub fn veth(self) -> &'static str {
        match self {
            Side::A => VETH_A,
            Side::B => VETH_B,
        }
    }

    pub fn addr(self) -> Ipv4Addr {
        match self {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        }
    }
}

/// Open handles on both namespaces; the files keep them alive even if someone runs `netns.sh down` meanwhile.
pub struct Netns {
    a: Arc<File>,
    b: Arc<File>,
}

/// The repository's `scripts/` folder, found from this crate's manifest directory.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts")
}

/// True when running as root (the namespace tests need CAP_NET_ADMIN and CAP_SYS_ADMIN).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints the reason a test is skipped, in the one format CI greps for.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
}

/// Brings the namespaces up and opens them, or prints `skipped: <reason>` and returns `None`.
pub fn require_root_netns() -> Option<Netns> {
    if !is_root() {
        skip("needs root for network namespaces");
        return None;
    }
    let has_ip = Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
    if !has_ip {
        skip("no `ip` command (install iproute2)");
        return None;
    }
    let script = scripts_dir().join("netns.sh");
    match Command::new("bash").arg(&script).arg("up").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            skip(&format!(
                "{} up failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Err(e) => {
            skip(&format!("cannot run {}: {e}", script.display()));
            return None;
        }
    }
    let open = |name: &str| File::open(format!("/run/netns/{name}"));
    match (open(NS_A), open(NS_B)) {
        (Ok(a), Ok(b)) => Some(Netns { a: Arc::new(a), b: Arc::new(b) }),
        (Err(e), _) | (_, Err(e)) => {
            skip(&format!("cannot open /run/netns/{{{NS_A},{NS_B}}}: {e}"));
            None
        }
    }
}

impl Netns {
    /// Spawns a thread that enters the namespace of `side` before running `f`. Panics (failing the test) if
    /// `setns` is refused, which after a successful `require_root_netns` means something is badly wrong.
    pub fn spawn_in<T, F>(&self, side: Side, f: F) -> JoinHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = match side {
            Side::A => Arc::clone(&self.a),
            Side::B => Arc::clone(&self.b),
        };
        std::thread::Builder::new()
            .name(format!("netns-{}", side.name()))
            .spawn(move || {
                enter(&ns).unwrap_or_else(|e| panic!("setns into {}: {e}", side.name()));
                f()
            })
            .expect("spawn namespace thread")
    }

    /// Runs `f` inside the namespace of `side` on a fresh thread and waits for its result.
    pub fn run_in<T, F>(&self, side: Side, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.spawn_in(side, f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// A command that runs `program` inside the namespace (`ip netns exec <ns> program …`), for helper binaries.
    pub fn command(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", side.name()]).arg(program);
        c
    }
}

/// Moves the calling thread into the network namespace open as `ns`.
fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: the fd is a valid open namespace file for the duration of the call; setns only changes this
    // thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The test payload for sequence number `seq`: the number (little-endian) then a pattern derived from it, `len`
/// bytes in all (at least 4), so a corrupted, truncated or misrouted echo is recognised.
pub fn payload(seq: u32, len: usize) -> Vec<u8> {
    let len = len.max(4);
    let mut p = vec![0u8; len];
    p[..4].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in p[4..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8 ^ 0xa5;
    }
    p
}

/// Length of datagram `seq` in an exchange: varied between 4 and `len_max` bytes.
pub fn payload_len(seq: u32, len_max: usize) -> usize {
    4 + (seq as usize * 37) % (len_max.max(5) - 3)
}

/// What a peer saw in [`echo_exchange`].
#[derive(Debug)]
pub struct Exchange {
    /// Datagrams echoed back intact.
    pub echoed: u32,
    /// Round-trip time of each window (send `window` datagrams, receive them all), nanoseconds.
    pub window_rtt_ns: Vec<u64>,
}

impl Exchange {
    /// The median window round trip in microseconds.
    pub fn median_us(&self) -> f64 {
        let mut v = self.window_rtt_ns.clone();
        v.sort_unstable();
        v.get(v.len() / 2).map(|&ns| ns as f64 / 1_000.0).unwrap_or(f64::NAN)
    }
}

/// Plays the kernel-socket peer of an echo server at `server`: sends `count` datagrams in windows of `window`,
/// each of a different length up to `len_max`, and waits for every window's echoes before sending the next (so a
/// busy-polling server and a slow scheduler never overflow a socket buffer). Every echo must come from `server`,
/// be one of the window's datagrams, and be byte-identical; a missing echo fails the test after a 5 s timeout.
pub fn echo_exchange(
    peer: &std::net::UdpSocket,
    server: std::net::SocketAddrV4,
    count: u32,
    window: u32,
    len_max: usize,
) -> Exchange {
    use std::time::{Duration, Instant};
    peer.set_read_timeout(Some(Duration::from_secs(5))).expect("set read timeout");
    let mut buf = vec![0u8; 65_536];
    let mut seen = vec![false; count as usize];
    let mut out = Exchange { echoed: 0, window_rtt_ns: Vec::new() };
    let mut seq = 0;
    while seq < count {
        let end = (seq + window).min(count);
        let t0 = Instant::now();
        for s in seq..end {
            peer.send_to(&payload(s, payload_len(s, len_max)), server).expect("peer send");
        }
        for _ in seq..end {
            let (n, from) = recv_from_retrying(peer, &mut buf)
                .unwrap_or_else(|e| panic!("no echo within 5 s ({} of {count} back so far): {e}", out.echoed));
            assert_eq!(from, std::net::SocketAddr::V4(server), "echo from an unexpected address");
            assert!(n >= 4, "echo of {n} bytes is shorter than a sequence number");
            let s = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            assert!((seq..end).contains(&s), "echo of datagram {s} outside the window {seq}..{end}");
            assert!(!seen[s as usize], "datagram {s} echoed twice");
            assert_eq!(&buf[..n], &payload(s, payload_len(s, len_max))[..], "datagram {s} corrupted");
            seen[s as usize] = true;
            out.echoed += 1;
        }
        out.window_rtt_ns.push(t0.elapsed().as_nanos() as u64);
        seq = end;
    }
    out
}

/// A backend running [`bourse_nic::backend::echo::echo`] on its own thread (inside a namespace if asked).
pub struct EchoServer<R> {
    /// The address the backend bound.
    pub addr: std::net::SocketAddrV4,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: JoinHandle<(u64, R)>,
}

impl<R> EchoServer<R> {
    /// Stops the loop and returns how many datagrams it echoed and what `finish` reported.
    pub fn stop(self) -> (u64, R) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// Builds a backend with `make` on a new thread — in namespace `ns` when given, since a socket belongs to the
/// namespace it was created in — and runs the echo loop on it until [`EchoServer::stop`]; `finish` then reads
/// whatever the test wants from the backend before it is dropped on that same thread.
pub fn spawn_echo<B, R, M, F>(ns: Option<(&Netns, Side)>, make: M, finish: F) -> EchoServer<R>
where
    B: bourse_nic::backend::Backend,
    R: Send + 'static,
    M: FnOnce() -> (B, std::net::SocketAddrV4) + Send + 'static,
    F: FnOnce(&B) -> R + Send + 'static,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = Arc::clone(&stop);
    let body = move || {
        let (mut b, addr) = make();
        tx.send(addr).expect("report address");
        let n = bourse_nic::backend::echo::echo(&mut b, &flag);
        (n, finish(&b))
    };
    let handle = match ns {
        Some((netns, side)) => netns.spawn_in(side, body),
        None => std::thread::spawn(body),
    };
    let addr = match rx.recv() {
        Ok(a) => a,
        // The thread died before reporting: surface its panic.
        Err(_) => match handle.join() {
            Ok(_) => panic!("echo thread exited without reporting its address"),
            Err(p) => std::panic::resume_unwind(p),
        },
    };
    EchoServer { addr, stop, handle }
}

/// Round-trip latency of a backend's echo across the veth pair: the backend in bourse-a pinned to the last core,
/// a kernel-socket peer in bourse-b pinned to the first, `count` ping-pongs of 64 bytes one at a time (every echo
/// checked as in [`echo_exchange`]). Returns the sorted round trips in nanoseconds; the caller prints them — these
/// are measurements for the report, not gates, since the shared VMs are noisy.
pub fn veth_round_trips<B, M>(ns: &Netns, make: M, count: u32) -> Vec<u64>
where
    B: bourse_nic::backend::Backend,
    M: FnOnce(std::net::SocketAddrV4) -> (B, std::net::SocketAddrV4) + Send + 'static,
{
    use bourse_nic::backend::pin;
    let cores = pin::available_cores();
    let (server_core, peer_core) = (*cores.last().expect("a core"), cores[0]);
    let server = spawn_echo(
        Some((ns, Side::A)),
        move || {
            // Pinning is best effort here: an unpinned run still measures something.
            let _ = pin::pin_current_thread(server_core);
            make(std::net::SocketAddrV4::new(ADDR_A, 0))
        },
        |_b: &B| (),
    );
    let to = server.addr;
    let mut rtts = ns.run_in(Side::B, move || {
        let _ = pin::pin_current_thread(peer_core);
        let peer = std::net::UdpSocket::bind(std::net::SocketAddrV4::new(ADDR_B, 0)).expect("bind peer");
        // A short warm-up fills caches and page tables before timing.
        echo_exchange(&peer, to, 100, 1, 64);
        let mut rtts = Vec::with_capacity(count as usize);
        let mut buf = [0u8; 128];
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
        for seq in 0..count {
            let p = payload(seq, 64);
            let t0 = std::time::Instant::now();
            peer.send_to(&p, to).expect("send");
            let (n, _) = recv_from_retrying(&peer, &mut buf).expect("echo within 5 s");
            rtts.push(t0.elapsed().as_nanos() as u64);
            assert_eq!(&buf[..n], &p[..], "echo {seq} corrupted");
        }
        rtts
    });
    let (echoed, ()) = server.stop();
    assert_eq!(echoed, u64::from(count) + 100);
    rtts.sort_unstable();
    rtts
}

/// "p50 / p99 / p99.9 us" of sorted nanosecond samples.
pub fn percentiles_us(sorted_ns: &[u64]) -> String {
    let at = |q: f64| sorted_ns[((sorted_ns.len() - 1) as f64 * q) as usize] as f64 / 1_000.0;
    format!("p50 {:.1} / p99 {:.1} / p99.9 {:.1} us", at(0.5), at(0.99), at(0.999))
}

/// `recv_from` that retries EINTR: an io_uring backend in this process signals task work to its thread, which can
/// interrupt a blocking call on another thread; that is a retry, not a lost datagram. The socket's read timeout
/// still bounds each wait.
pub fn recv_from_retrying(sock: &std::net::UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, std::net::SocketAddr)> {
    loop {
        match sock.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
