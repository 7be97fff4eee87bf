//! The mirror over RDMA verbs on a real device: soft-RoCE (rxe0) inside the VM of `ci/rxe-vm.sh`, where both ends
//! are queue pairs on the same rxe device and the TCP side channel runs on the VM's dummy-netdev address
//! (`BOURSE_RXE_ADDR`, default 10.77.0.1, else loopback). Without an RDMA device every test prints
//! `skipped: <reason>`, unless `BOURSE_RXE_REQUIRE` is set (as ci/test.sh does in the VM): then it fails.
//!
//! - a primary and a standby (two threads, two queue pairs) mirror a real rotating WAL by RDMA_WRITE_WITH_IMM into
//!   the standby's registered landing ring;
//! - a standby that starts from nothing is caught up from the oldest segment;
//! - failover: the primary is a child process (this test binary re-run with `BOURSE_VERBS_PRIMARY_ADDR`), killed
//!   with SIGKILL under load; the standby promotes and holds every record the primary saw acknowledged;
//! - a peer that vanishes (its queue pair destroyed) surfaces at the primary as a typed `QueuePair` error within a
//!   bounded time, on every later call too, and `ack = mirrored` keeps holding unmirrored records back.
//!
//! Time is real (the device is), and CPU-bound code runs ~13x slower under TCG: deadlines are generous, and no
//! test asserts a duration.
#![cfg(feature = "rdma")]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_engine::Input;
use bourse_persist::mirror::verbs::sys::RegionLease;
use bourse_persist::mirror::verbs::{self, Role, VerbsTransport};
use bourse_persist::mirror::{
    MirrorConfig, MirrorError, Position, Primary, Standby, StandbyEvent, TransportError,
    WalLog, WalRecords,
};
use bourse_persist::wal::segment::list_segments;
use bourse_persist::wal::{DurabilityMode, Wal, WalConfig};
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex};

mod support;
use support::Host;

/// Small segments: ~60 records each, so a few thousand records rotate dozens of times.
const SEGMENT_BYTES: u64 = 8192;
const PORT: u8 = 1;
/// Generous for TCG: a pair test takes a few seconds there.
const DEADLINE: Duration = Duration::from_secs(180);
const WORKLOAD_SEED: u64 = 7;

/// GID index 1 is the IPv4-mapped RoCE v2 GID of an rxe device whose netdev has an IPv4 address.
fn gid_index() -> i32 {
    std::env::var("BOURSE_RXE_GID").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

fn device_or_skip() -> bool {
    match verbs::open(None) {
        Ok((_, name)) => {
            eprintln!("RDMA device {name}");
            true
        }
        Err(e) if std::env::var_os("BOURSE_RXE_REQUIRE").is_some() => panic!("BOURSE_RXE_REQUIRE is set: {e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn side_listener() -> TcpListener {
    let ip: IpAddr = std::env::var("BOURSE_RXE_ADDR").ok().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::new(10, 77, 0, 1).into());
    TcpListener::bind(SocketAddr::new(ip, 0)).or_else(|_| TcpListener::bind("127.0.0.1:0")).unwrap()
}

fn mirror_config(promote_after: Duration) -> MirrorConfig {
    let mut c = MirrorConfig::new(64 * 1024);
    c.write_chunk_max_bytes = 4096;
    c.inflight_max_bytes = 16 * 1024;
    c.heartbeat_interval_ns = 2_000_000;
    c.retransmit_after_ns = 500_000_000;
    c.promote_after_silence_ns = promote_after.as_nanos() as u64;
    c
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bourse-mirror-verbs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn wal(dir: &Path) -> Wal {
    let mut config = WalConfig::new(dir);
    config.mode = DurabilityMode::None;
    config.segment_bytes = SEGMENT_BYTES;
    Wal::create(config, 1, Arc::new(CommitIndex::new(AckPolicy::Local, 0))).unwrap()
}

/// The inputs the seeded workload appends as seqs 1..=n (what the primary's WAL holds).
fn workload_inputs(n: u64) -> Vec<Input> {
    let mut w = Workload::new(WORKLOAD_SEED);
    (1..=n).map(|seq| w.next(seq)).collect()
}


/// The standby's end: the transport, which holds the registration of the landing ring, then the ring itself.
/// Fields drop in declaration order, so the registration goes before the memory it covers.
struct StandbyEnd {
    transport: VerbsTransport,
    region: Box<[u8]>,
}

fn connect_standby(config: &MirrorConfig, side: &mut TcpStream, epoch: u64) -> StandbyEnd {
    let mut region = vec![0u8; config.region_size_bytes as usize].into_boxed_slice();
    // SAFETY: the ring is a heap allocation that moves (without moving its bytes) into the StandbyEnd next to the
    // transport, which is dropped before it (field order above) and is the only holder of the registration; the
    // bytes serve only as the standby's landing ring.
    #[allow(unsafe_code)]
    let lease = unsafe { RegionLease::new(region.as_mut_ptr(), region.len()) };
    let transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Standby(lease), epoch, side).unwrap();
    StandbyEnd { transport, region }
}

fn now_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// Ticks a standby until `stop`, returning what it received.
fn run_standby(listener: TcpListener, config: MirrorConfig, stop: Arc<AtomicBool>) -> (Host, bourse_persist::mirror::MirrorStats) {
    let (mut side, _) = listener.accept().unwrap();
    let mut end = connect_standby(&config, &mut side, 1);
    let mut standby = Standby::new(config, WalRecords, 1, Position::default());
    let mut host = Host { applied: Position::default(), inputs: Vec::new() };
    let start = Instant::now();
    while !stop.load(Ordering::Acquire) && start.elapsed() < DEADLINE {
        let ev = standby.tick(now_ns(start), &mut end.region, &mut end.transport, &mut host).unwrap();
        assert_eq!(ev, None, "no promotion while the primary runs");
    }
    (host, standby.stats())
}

/// Appends `records` workload inputs (the first `before_mirror` before the mirror starts) while mirroring them over
/// verbs, until the standby has acknowledged all of them.
fn mirror_wal_over_verbs(tag: &str, records: u64, before_mirror: u64) {
    let dir = temp_dir(tag);
    let mut writer = wal(&dir);
    let mut workload = Workload::new(WORKLOAD_SEED);
    let mut appended = 0u64;
    let mut append = |writer: &mut Wal, n: u64, appended: &mut u64| {
        for _ in 0..n {
            writer.append(&workload.next(writer.next_seq())).unwrap();
            *appended += 1;
        }
    };
    append(&mut writer, before_mirror, &mut appended);
    let config = mirror_config(Duration::from_secs(600));
    let listener = side_listener();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let standby = std::thread::spawn({
        let stop = stop.clone();
        move || run_standby(listener, config, stop)
    });
    let mut side = TcpStream::connect(addr).unwrap();
    let mut transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Primary, 1, &mut side).unwrap();
    let mut log = WalLog::open(&dir).unwrap();
    // The epoch begins at the oldest position the log reader starts from; a standby behind it says Hello.
    let mut primary = Primary::new(config, WalRecords, 1, log.start());
    let start = Instant::now();
    while primary.gate().mirrored_seq() < records && start.elapsed() < DEADLINE {
        if appended < records {
            append(&mut writer, 7.min(records - appended), &mut appended);
            std::thread::sleep(Duration::from_micros(50)); // lets the rotation check's clock move
        }
        if log.poll_tail(usize::MAX).unwrap() > 0 {
            primary.on_append(log.tail());
        }
        primary.tick(now_ns(start), &mut log, &mut transport).unwrap();
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    let (host, s_stats) = standby.join().unwrap();
    eprintln!("{tag}: {records} records over verbs in {elapsed:?}; primary {:?}; standby {s_stats:?}", primary.stats());
    assert_eq!(primary.gate().mirrored_seq(), records, "the mirror converges: acked {:?}", primary.acked());
    assert!(s_stats.records_validated >= records && s_stats.frames_received > 0);
    assert_eq!(host.inputs.len() as u64, records, "every record exactly once");
    assert!(host.inputs == workload_inputs(records), "the standby holds the writer's inputs, in order");
    drop(writer);
    let segments = list_segments(&dir).unwrap().len();
    assert!(segments > 20, "the writer rotated many times: {segments} segments");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verbs_pair_mirrors_a_rotating_wal() {
    if device_or_skip() {
        mirror_wal_over_verbs("rotate", 2_000, 0);
    }
}

#[test]
fn verbs_standby_that_starts_behind_is_caught_up() {
    // 1,500 records (about 25 segments) exist before the mirror starts; the standby says Hello from the empty log
    // and the primary serves it from the oldest segment, one-sided, through the same ring.
    if device_or_skip() {
        mirror_wal_over_verbs("late", 2_000, 1_500);
    }
}

/// The child side of the failover test: a primary that appends and mirrors until it is killed, printing each
/// standby-acknowledged seq as `acked <seq>` the moment its gate releases it. Does nothing unless the parent test
/// started this binary with `BOURSE_VERBS_PRIMARY_ADDR`.
#[test]
fn verbs_failover_child_primary() {
    let Ok(addr) = std::env::var("BOURSE_VERBS_PRIMARY_ADDR") else { return };
    let dir = temp_dir("failover-primary");
    let mut writer = wal(&dir);
    let mut workload = Workload::new(WORKLOAD_SEED);
    let config = mirror_config(Duration::from_millis(1500));
    let mut side = TcpStream::connect(addr.as_str()).unwrap();
    let mut transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Primary, 1, &mut side).unwrap();
    let mut log = WalLog::open(&dir).unwrap();
    let mut primary = Primary::new(config, WalRecords, 1, log.start());
    let mut out = std::io::stdout().lock();
    let mut acked = 0;
    let start = Instant::now();
    // Bounded: the parent kills us long before this.
    while start.elapsed() < DEADLINE {
        if writer.next_seq() <= primary.gate().mirrored_seq() + 64 {
            writer.append(&workload.next(writer.next_seq())).unwrap();
        }
        if log.poll_tail(usize::MAX).unwrap() > 0 {
            primary.on_append(log.tail());
        }
        primary.tick(now_ns(start), &mut log, &mut transport).unwrap();
        let m = primary.gate().mirrored_seq();
        if m > acked {
            acked = m;
            writeln!(out, "acked {m}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn verbs_standby_promotes_after_the_primary_process_is_killed() {
    if !device_or_skip() {
        return;
    }
    let config = mirror_config(Duration::from_millis(1500));
    let listener = side_listener();
    let addr = listener.local_addr().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "verbs_failover_child_primary", "--nocapture", "--test-threads=1"])
        .env("BOURSE_VERBS_PRIMARY_ADDR", addr.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let reader = std::thread::spawn({
        let acked = acked.clone();
        let stdout = child.stdout.take().unwrap();
        move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(seq) = line.strip_prefix("acked ").and_then(|s| s.parse::<u64>().ok()) {
                    acked.fetch_max(seq, Ordering::AcqRel);
                }
            }
        }
    });
    let (mut side, _) = listener.accept().unwrap();
    let mut end = connect_standby(&config, &mut side, 1);
    let mut standby = Standby::new(config, WalRecords, 1, Position::default());
    let mut host = Host { applied: Position::default(), inputs: Vec::new() };
    let start = Instant::now();
    let mut killed = None;
    let mut promoted = None;
    let mut qp_errors = 0;
    while start.elapsed() < DEADLINE && promoted.is_none() {
        match standby.tick(now_ns(start), &mut end.region, &mut end.transport, &mut host) {
            Ok(Some(ev)) => promoted = Some(ev),
            Ok(None) => {}
            // The dead primary's queue pair stops answering: our acks run out of retries. Reported once; from then
            // on the link is silent, which is what promotion waits for.
            Err(MirrorError::Transport(e @ TransportError::QueuePair { .. })) => {
                eprintln!("failover: standby transport: {e}");
                qp_errors += 1;
            }
            Err(e) => panic!("standby tick: {e}"),
        }
        if killed.is_none() && acked.load(Ordering::Acquire) >= 500 {
            // SIGKILL mid-stream: the kernel destroys its queue pair; nothing is flushed or said goodbye.
            // The kernel tears its queue pair down at exit; it is reaped after the loop.
            child.kill().unwrap();
            killed = Some(Instant::now());
        }
    }
    // A no-op when it was killed above; on the deadline path it is killed here.
    let _ = child.kill();
    child.wait().unwrap();
    reader.join().unwrap();
    let acked = acked.load(Ordering::Acquire);
    let killed = killed.expect("the primary reached 500 acknowledged records before the deadline");
    eprintln!("failover: primary killed at {acked} acked; standby event {promoted:?} {:?} after the kill; {:?}", killed.elapsed(), standby.stats());
    let Some(StandbyEvent::Promoted { epoch, at }) = promoted else { panic!("the standby did not promote: {promoted:?}") };
    assert_eq!(epoch, 2);
    assert!(at.seq >= acked, "no acknowledged record lost: promoted at {at:?}, primary saw {acked} acked");
    assert_eq!(host.applied, at);
    assert!(qp_errors <= 1, "a failed queue pair is reported once, then the link is silent");
    assert!(host.inputs == workload_inputs(at.seq), "the standby holds exactly the primary's records up to {at:?}");
}

#[test]
fn verbs_peer_gone_is_a_typed_error_and_mirrored_acks_hold() {
    if !device_or_skip() {
        return;
    }
    let dir = temp_dir("peer-gone");
    let mut writer = wal(&dir);
    let mut workload = Workload::new(WORKLOAD_SEED);
    let config = mirror_config(Duration::from_secs(600));
    let listener = side_listener();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The standby thread follows until told to stop, then destroys its queue pair (drops its transport) and leaves.
    let mut standby = Some(std::thread::spawn({
        let stop = stop.clone();
        move || run_standby(listener, config, stop)
    }));
    let mut side = TcpStream::connect(addr).unwrap();
    let mut transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Primary, 1, &mut side).unwrap();
    let mut log = WalLog::open(&dir).unwrap();
    let mut primary = Primary::new(config, WalRecords, 1, log.start());
    let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
    primary.gate().attach_commit_index(commit.clone());
    let start = Instant::now();
    let mut gone_at = None;
    let error = loop {
        assert!(start.elapsed() < DEADLINE, "the vanished peer was never reported");
        if writer.next_seq() <= 400 || gone_at.is_some() {
            writer.append(&workload.next(writer.next_seq())).unwrap();
            commit.publish_local(writer.next_seq() - 1);
        }
        if log.poll_tail(usize::MAX).unwrap() > 0 {
            primary.on_append(log.tail());
        }
        match primary.tick(now_ns(start), &mut log, &mut transport) {
            Ok(_) => {}
            Err(e) => break e,
        }
        if gone_at.is_none() && primary.gate().mirrored_seq() >= 400 {
            stop.store(true, Ordering::Release);
            if let Some(h) = standby.take() {
                h.join().unwrap();
            }
            gone_at = Some(Instant::now());
        }
    };
    let gone_at = gone_at.expect("the error came only after the standby left");
    eprintln!("peer gone: {error} after {:?}", gone_at.elapsed());
    let MirrorError::Transport(TransportError::QueuePair { status, status_name, .. }) = &error else {
        panic!("expected a queue pair error, got {error}");
    };
    assert_ne!(*status, 0, "{status_name}");
    assert!(error.to_string().contains("IBV_WC_"), "{error}");
    assert!(transport.failure().is_some(), "the transport remembers why it failed");
    // From then on the link behaves as disconnected: ticks return promptly, sends are refused and counted.
    let refused = primary.stats().sends_refused;
    for i in 0..10 {
        primary.tick(now_ns(start) + i * config.heartbeat_interval_ns * 2, &mut log, &mut transport).unwrap();
    }
    assert!(primary.stats().sends_refused > refused);
    // ack = mirrored: what the standby never acknowledged is never released, however far local durability runs.
    let mirrored = primary.gate().mirrored_seq();
    assert!(commit.local() > mirrored, "records were appended after the standby left");
    assert_eq!(commit.committed(), mirrored);
    drop(writer);
    std::fs::remove_dir_all(&dir).unwrap();
}
