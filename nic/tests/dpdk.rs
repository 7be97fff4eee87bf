//! Tests of the DPDK backend against real DPDK drivers.
//!
//! DPDK allows one EAL per process, with one set of arguments, so every scenario runs in a child process: the
//! test re-executes this test binary, filtered to itself, with `BOURSE_DPDK_ROLE` naming the part to play. The
//! parent checks the child's exit status and report line.
//!
//! * `ring_loopback` — the `net_ring` virtual device, whose transmit ring is its receive ring: no network needed.
//!   Exercises ARP (request, answer, learning), transmit, receive, the zero-copy echo and the counters.
//! * `veth_af_packet_echo` — the backend on `net_af_packet` over veth `bva` in namespace `bourse-a`; a kernel
//!   UDP socket in `bourse-b` sends 1000 datagrams one at a time and must get all 1000 back unchanged.
//! * `veth_af_xdp_echo` — the same over `net_af_xdp`, when huge pages can be reserved (`scripts/hugepages.sh`).
//! * `veth_af_packet_without_hugepages` — the `net_af_packet` echo as on a fresh machine: the child runs in a
//!   private mount namespace with every hugetlbfs unmounted, so no huge page is usable whatever the host has
//!   reserved, and its configuration has no memory, PCI or core flags (the backend must add working ones). After
//!   the backend closes, its runtime directory (`/var/run/dpdk/bourse-<pid>`) must be gone.
//!
//! Each needs root and skips with `skipped: <reason>` otherwise. The veth tests share one veth pair, so they take
//! a lock and run one at a time.
#![cfg(feature = "dpdk")]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bourse_nic::backend::dpdk::{self, DpdkBackend, DpdkError};
use bourse_nic::backend::{Backend, BackendConfig, TxError};
use bourse_nic::wire::frame::DropReason;
use support::{Side, ADDR_A, ADDR_B};

/// Environment variable telling a re-executed test binary which part to play.
const ROLE: &str = "BOURSE_DPDK_ROLE";
/// Datagrams the veth tests send.
const ECHO_DATAGRAMS: usize = 1000;
/// How long the client waits for one echo before calling it lost.
const ECHO_WAIT: Duration = Duration::from_millis(500);
/// Upper bound on a child's whole life: the EAL starts in about a second, and 1000 round trips take well under one.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(60);
/// UDP port of the echo under test: distinct per driver so a stray datagram from one run cannot pass for another's.
const AF_PACKET_PORT: u16 = 17_001;
const AF_XDP_PORT: u16 = 17_002;
const NO_HUGE_PORT: u16 = 17_003;

/// Unmounts every hugetlbfs, then runs the command given as the script's arguments (`$0 "$@"`).
const HIDE_HUGEPAGES_SH: &str = "umount -a -t hugetlbfs 2>/dev/null || true; exec \"$0\" \"$@\"";

/// The veth pair is one shared device: one test on it at a time.
static VETH: Mutex<()> = Mutex::new(());

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Re-runs this test binary as a child playing `role`, filtered to `test`, with `env` added to its environment.
/// Inside `netns` when given (through `ip netns exec`, so the whole child, EAL threads included, lives there).
/// With `hide_hugepages`, the child runs in a private mount namespace without any hugetlbfs mount (`unshare -m`
/// makes its mounts private, so unmounting there leaves the host's mounts alone).
fn spawn_child(
    test: &str,
    role: &str,
    netns: Option<&support::Netns>,
    env: &[(&str, String)],
    hide_hugepages: bool,
) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let program = if hide_hugepages { std::path::PathBuf::from("unshare") } else { exe.clone() };
    let mut cmd = match netns {
        Some(netns) => netns.command(Side::A, program),
        None => Command::new(program),
    };
    if hide_hugepages {
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", HIDE_HUGEPAGES_SH]).arg(exe);
    }
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().unwrap_or_else(|e| panic!("spawning child for {test}: {e}"))
}

/// Waits for `child` to exit, killing it after `limit`; returns everything it printed and whether it succeeded.
fn finish_child(mut child: Child, limit: Duration) -> (bool, String) {
    drop(child.stdin.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    (status.is_some_and(|s| s.success()), out)
}

fn is_root() -> bool {
    support::is_root()
}

// ---------------------------------------------------------------------------------------------------------------
// net_ring loopback

#[test]
fn ring_loopback() {
    if role().as_deref() == Some("ring") {
        ring_loopback_child();
        return;
    }
    if !is_root() {
        support::skip("DPDK needs root (memory, /var/run/dpdk)");
        return;
    }
    let child = spawn_child("ring_loopback", "ring", None, &[], false);
    let (ok, out) = finish_child(child, CHILD_LIFETIME_MAX);
    print!("{out}");
    assert!(ok, "ring loopback child failed; its output is above");
    assert!(out.contains("ring loopback: ok"), "child did not report success:\n{out}");
}

fn ring_loopback_child() {
    let us = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 7000);
    let mut config = BackendConfig::new(us);
    config.eal_args = vec!["--vdev=net_ring0".into(), "--log-level=error".into()];
    config.interface = Some("net_ring0".into());
    config.tx_slots = 64;
    let mut b = DpdkBackend::new(&config).expect("DPDK backend on net_ring0");
    let free_at_start = b.pool_free_mbufs();
    println!("ring: port {} mac {:02x?}", b.port_id(), b.mac().0);

    // One EAL per process: the same request is fine, another is refused with a typed error.
    assert!(dpdk::eal_init(&config).is_ok());
    let mut other = config.clone();
    other.eal_args = vec!["--vdev=net_null0".to_owned()];
    match dpdk::eal_init(&other) {
        Err(DpdkError::EalArgsDiffer { running, asked }) => {
            assert_eq!(running.eal_args, config.eal_args);
            assert_eq!(asked.eal_args, other.eal_args);
        }
        other => panic!("second EAL init with other arguments: {other:?}"),
    }

    // A kernel interface name where a DPDK port name belongs: the error lists the ports there are.
    let mut wrong = config.clone();
    wrong.interface = Some("bva".into());
    match DpdkBackend::new(&wrong) {
        Err(e @ DpdkError::NoSuchPort { .. }) => {
            let text = e.to_string();
            assert!(text.contains("no DPDK port named \"bva\"") && text.contains("[\"net_ring0\"]"), "{text}");
        }
        Err(e) => panic!("a wrong port name gave another error: {e}"),
        Ok(_) => panic!("a wrong port name opened a backend"),
    }

    // We do not know our own MAC as a peer yet: the first send is refused with a typed error (never a silent Ok),
    // counted, and an ARP request broadcast. The ring brings the request back, we answer it (learning the sender,
    // i.e. ourselves), and the answer comes back and is ignored.
    let first = b.tx(us, &mut |buf| {
        buf[..4].copy_from_slice(b"lost");
        4
    });
    assert_eq!(first, Err(TxError::Unresolved));
    assert_eq!((b.stats().tx_unresolved, b.stats().dropped), (1, 0));
    let mut got = Vec::new();
    poll_rx(&mut b, &mut got, 2);
    assert!(got.is_empty(), "no datagram was sent yet: {got:?}");
    assert_eq!(b.stats().arp_replies, 1, "the ARP request for our address must be answered");
    assert_eq!(b.drop_counters().get(DropReason::ArpIgnored), 1, "our own ARP reply comes back and is ignored");

    // Now the address resolves: N datagrams to ourselves come back with their payloads and addresses.
    let n = 40;
    for i in 0..n {
        b.tx(us, &mut |buf| {
            let text = format!("datagram {i:03}");
            buf[..text.len()].copy_from_slice(text.as_bytes());
            text.len()
        })
        .expect("tx with free slots");
    }
    assert_eq!(b.tx_flush(), n);
    got.clear();
    poll_rx(&mut b, &mut got, n);
    assert_eq!(got.len(), n);
    for (i, (src, dst, payload)) in got.iter().enumerate() {
        assert_eq!((*src, *dst), (us, us));
        assert_eq!(payload, format!("datagram {i:03}").as_bytes());
    }

    // Transmit slots are bounded: the 65th queued datagram is refused until a flush.
    for _ in 0..config.tx_slots {
        b.tx(us, &mut |buf| {
            buf[0] = 1;
            1
        })
        .expect("free slot");
    }
    assert!(b.tx(us, &mut |_| 0).is_err(), "a full transmit queue must refuse");
    assert_eq!(b.stats().tx_full, 1);
    assert_eq!(b.tx_flush(), config.tx_slots);
    got.clear();
    poll_rx(&mut b, &mut got, config.tx_slots);
    assert_eq!(got.len(), config.tx_slots);

    // The zero-copy echo sends each datagram back to its source (here ourselves) in the same mbuf.
    for i in 0..8u8 {
        b.tx(us, &mut |buf| {
            buf[..3].copy_from_slice(&[b'e', b'0' + i, 0xff]);
            3
        })
        .expect("free slot");
    }
    b.tx_flush();
    let mut echoed = 0;
    for _ in 0..1000 {
        echoed += b.echo_burst();
        if echoed >= 8 {
            break;
        }
    }
    assert_eq!(echoed, 8);
    got.clear();
    poll_rx(&mut b, &mut got, 8);
    let payloads: Vec<Vec<u8>> = got.iter().map(|g| g.2.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'e', b'0' + i, 0xff]).collect();
    assert_eq!(payloads, expected);

    let stats = b.stats();
    let total_rx = (n + config.tx_slots + 8 + 8) as u64;
    assert_eq!(stats.rx, total_rx, "{stats:?}");
    assert_eq!(stats.tx, total_rx, "{stats:?}");
    assert_eq!(stats.malformed, 0, "{stats:?}");
    let port = b.port_stats().expect("port stats");
    assert_eq!(stats.nic_drops, port.imissed + port.rx_nombuf, "the driver's drops are exported: {port:?}");
    // Every frame we sent came back: datagrams, the ARP request and the ARP reply.
    assert_eq!(port.opackets, total_rx + 2, "{port:?}");
    assert_eq!(port.ipackets, port.opackets, "{port:?}");
    // Every mbuf went back to the pool: received ones after their burst, sent ones once the ring gave them back.
    assert_eq!(b.pool_free_mbufs(), free_at_start, "mbufs leaked");
    println!("ring loopback: ok {stats:?}");
}

/// Receives until `want` datagrams (or, when `want` is 0-ish, a few idle polls) or 100 000 polls have passed.
fn poll_rx(b: &mut DpdkBackend, got: &mut Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)>, want: usize) {
    for _ in 0..100_000 {
        b.rx_burst(&mut |d| got.push((d.src, d.dst, d.payload.to_vec())));
        if got.len() >= want && b.stats().arp_replies > 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// veth echo: af_packet and af_xdp

#[test]
fn veth_af_packet_echo() {
    if role().as_deref() == Some("echo") {
        echo_child();
        return;
    }
    let vdev = format!("--vdev=net_af_packet0,iface={}", support::VETH_A);
    veth_echo_parent("veth_af_packet_echo", "net_af_packet0", &vdev, AF_PACKET_PORT, false);
}

#[test]
fn veth_af_packet_without_hugepages() {
    if role().as_deref() == Some("echo") {
        echo_child();
        return;
    }
    if is_root() && !Command::new("unshare").arg("--version").output().is_ok_and(|o| o.status.success()) {
        support::skip("no `unshare` command (util-linux) to hide the host's huge pages");
        return;
    }
    let vdev = format!("--vdev=net_af_packet0,iface={}", support::VETH_A);
    let out = veth_echo_parent("veth_af_packet_without_hugepages", "net_af_packet0", &vdev, NO_HUGE_PORT, true);
    let Some(out) = out else {
        return;
    };
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("runtime dir removed: "))
        .unwrap_or_else(|| panic!("the child did not report removing its runtime directory:\n{out}"));
    assert!(dir.contains("bourse-"), "the runtime directory {dir} is not named by our file prefix");
    assert!(!std::path::Path::new(dir).exists(), "the runtime directory {dir} was left behind");
}

#[test]
fn veth_af_xdp_echo() {
    if role().as_deref() == Some("echo") {
        echo_child();
        return;
    }
    if !is_root() {
        support::skip("needs root for huge pages and AF_XDP");
        return;
    }
    let script = support::scripts_dir().join("hugepages.sh");
    match Command::new("bash").arg(&script).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            support::skip(&format!(
                "net_af_xdp needs huge pages and {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return;
        }
        Err(e) => {
            support::skip(&format!("net_af_xdp needs huge pages and {} cannot run: {e}", script.display()));
            return;
        }
    }
    veth_echo_parent(
        "veth_af_xdp_echo",
        "net_af_xdp0",
        &format!("--vdev=net_af_xdp0,iface={},start_queue=0,queue_count=1", support::VETH_A),
        AF_XDP_PORT,
        false,
    );
}

/// Starts the DPDK echo in `bourse-a`, then sends [`ECHO_DATAGRAMS`] from a kernel socket in `bourse-b`. Returns
/// the child's output, or `None` when the test was skipped. With `hide_hugepages` the child sees no huge pages.
fn veth_echo_parent(test: &str, device: &str, vdev: &str, port: u16, hide_hugepages: bool) -> Option<String> {
    let netns = support::require_root_netns()?;
    let _veth = VETH.lock().unwrap_or_else(|p| p.into_inner());
    let env = [
        ("BOURSE_DPDK_DEVICE", device.to_owned()),
        ("BOURSE_DPDK_VDEV", vdev.to_owned()),
        ("BOURSE_DPDK_PORT", port.to_string()),
        ("BOURSE_DPDK_NO_HUGEPAGES", u8::from(hide_hugepages).to_string()),
    ];
    let mut child = spawn_child(test, "echo", Some(&netns), &env, hide_hugepages);
    // The child prints "echo ready" once its port is up; anything else before that is logged and skipped.
    let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut early = String::new();
    let ready = loop {
        let mut line = String::new();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => break false,
            Ok(_) if line.contains("echo ready") => {
                early.push_str(&line);
                break true;
            }
            Ok(_) => early.push_str(&line),
        }
    };
    if !ready {
        let (_, rest) = finish_child(child, Duration::from_secs(5));
        panic!("the DPDK echo child never became ready:\n{early}{rest}");
    }
    print!("{early}");

    let server = SocketAddrV4::new(ADDR_A, port);
    let result = netns.run_in(Side::B, move || kernel_client(server, ECHO_DATAGRAMS));

    // Closing the child's stdin tells it to stop echoing and report.
    child.stdout = Some(stdout.into_inner());
    let (ok, out) = finish_child(child, Duration::from_secs(20));
    print!("{out}");
    let (back, mut rtts_ns) = result;
    rtts_ns.sort_unstable();
    if !rtts_ns.is_empty() {
        let pick = |q: f64| rtts_ns[((rtts_ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        println!(
            "{device}: {back}/{ECHO_DATAGRAMS} echoed; round trip p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            pick(0.5),
            pick(0.99),
            pick(1.0)
        );
    }
    assert!(ok, "the DPDK echo child failed; its output is above");
    assert_eq!(back, ECHO_DATAGRAMS, "datagrams echoed back intact over {device}");
    // One datagram, one echo: the client never retransmits, so the server must have echoed exactly as many.
    assert!(out.contains(&format!("echoed {ECHO_DATAGRAMS} ")), "child did not report {ECHO_DATAGRAMS} echoes:\n{out}");
    Some(out)
}

/// Sends `count` distinct datagrams one at a time to `server` and checks each echo; returns how many came back
/// intact and their round trips in nanoseconds.
fn kernel_client(server: SocketAddrV4, count: usize) -> (usize, Vec<u64>) {
    let socket = UdpSocket::bind(SocketAddrV4::new(ADDR_B, 0)).expect("bind client socket in bourse-b");
    socket.set_read_timeout(Some(ECHO_WAIT)).expect("read timeout");
    let mut back = 0;
    let mut rtts = Vec::with_capacity(count);
    let mut buf = [0u8; 2048];
    for i in 0..count {
        // 64 bytes, distinct per datagram, so a late echo of one cannot be mistaken for another.
        let mut payload = [0u8; 64];
        let tag = format!("bourse dpdk echo {i:06}");
        payload[..tag.len()].copy_from_slice(tag.as_bytes());
        payload[63] = (i % 251) as u8;
        let start = Instant::now();
        socket.send_to(&payload, server).expect("send_to");
        let deadline = start + ECHO_WAIT;
        while Instant::now() < deadline {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == std::net::SocketAddr::V4(server) && buf[..n] == payload => {
                    rtts.push(start.elapsed().as_nanos() as u64);
                    back += 1;
                    break;
                }
                // An old echo or an unrelated datagram: keep waiting for ours.
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                // ICMP errors from the kernel side of bva surface here on some kernels; they are not our echo.
                Err(_) => continue,
            }
        }
    }
    (back, rtts)
}

/// The DPDK side of the veth tests: echo until stdin closes (or the lifetime bound), then report.
fn echo_child() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for the echo child"));
    let port: u16 = var("BOURSE_DPDK_PORT").parse().expect("port number");
    let mut config = BackendConfig::new(SocketAddrV4::new(ADDR_A, port));
    // No memory, PCI or core flags: the backend adds what this host needs.
    config.eal_args = vec![var("BOURSE_DPDK_VDEV"), "--log-level=error".into()];
    config.interface = Some(var("BOURSE_DPDK_DEVICE"));
    let no_hugepages = var("BOURSE_DPDK_NO_HUGEPAGES") == "1";
    if no_hugepages {
        assert_eq!(dpdk::hugepages_free(), 0, "the private mount namespace still shows a hugetlbfs");
    }
    let mut b = match DpdkBackend::new(&config) {
        Ok(b) => b,
        Err(e) => panic!("DPDK backend: {e}"),
    };
    let eal_args = dpdk::eal_init(&config).expect("the running EAL's arguments");
    println!("eal args: {eal_args:?}");
    if no_hugepages {
        assert!(eal_args.iter().any(|a| a == "--no-huge"), "{eal_args:?}");
        assert!(!eal_args.iter().any(|a| a == "--in-memory"), "{eal_args:?}");
    }
    let runtime_dir = dpdk::eal_runtime_dir().expect("a running EAL has a runtime directory");
    println!("runtime dir: {}", runtime_dir.display());
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Stop when the parent closes our stdin, or after the lifetime bound whatever happens.
        let on_eof = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            on_eof.store(true, Ordering::Relaxed);
        });
        let on_timeout = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(CHILD_LIFETIME_MAX);
            on_timeout.store(true, Ordering::Relaxed);
        });
    }
    println!("echo ready: port {} mac {:02x?}", b.port_id(), b.mac().0);
    let echoed = dpdk::echo(&mut b, &stop);
    println!("echoed {echoed} stats {:?} drops {:?}", b.stats(), b.drop_counters());
    // The last backend closing shuts the EAL down and removes its runtime directory.
    drop(b);
    assert!(!runtime_dir.exists(), "{} is still there after the backend closed", runtime_dir.display());
    assert_eq!(dpdk::eal_runtime_dir(), None);
    println!("runtime dir removed: {}", runtime_dir.display());
}
