//! `bourse bench mirror --transport verbs` (feature `rdma`): the same closed-loop commit latency and burst
//! throughput as over TCP, with the primary's WAL shipped one-sided by `RDMA_WRITE_WITH_IMM` into the standby's
//! registered landing ring (`bourse_persist::mirror::verbs`). Both ends are queue pairs on the first RDMA device,
//! connected through a TCP side channel on `BOURSE_RXE_ADDR` (default 10.77.0.1, the address `ci/rxe-vm.sh` gives
//! its dummy netdev; loopback if that is not here), GID index `BOURSE_RXE_GID` (default 1, RoCE v2 over IPv4).
//!
//! The mirror runs at the library level (the persist `Primary` and `Standby` state machines on their own threads);
//! the appliance's own mirror sender and `bourse standby` speak TCP only. The standby's WAL durability is not part
//! of this path, so only `--wal-mode none` is measured. On soft-RoCE, and above all under QEMU's TCG, the figures are
//! marked EMULATED: they prove the path, not the speed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use bourse_persist::mirror::verbs::sys::RegionLease;
use bourse_persist::mirror::verbs::{self, Role, VerbsTransport};
use bourse_persist::mirror::{
    MirrorConfig, Position, Primary, Standby, StandbyEvent, StandbyHost, Validated, WalLog, WalRecords,
};
use bourse_persist::wal::DurabilityMode;
use bourse_persist::{AckPolicy, CommitIndex, Wal, WalConfig};

use super::mirror::{run_phases, MirrorArgs, MirrorReport};
use crate::demo::TempDir;

const PORT: u8 = 1;

fn gid_index() -> i32 {
    std::env::var("BOURSE_RXE_GID").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// Why the figures say nothing about speed, if they do not: a software RDMA device, an emulated CPU, or both.
fn emulation(device: &str) -> Option<String> {
    let tcg = std::env::var("BOURSE_EMULATED").is_ok_and(|v| v == "tcg")
        || std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains("QEMU TCG"));
    let soft = device.starts_with("rxe");
    match (tcg, soft) {
        (true, true) => Some(format!("QEMU TCG, soft-RoCE {device}")),
        (true, false) => Some("QEMU TCG".into()),
        (false, true) => Some(format!("soft-RoCE {device}")),
        (false, false) => None,
    }
}

/// The standby's host: its own WAL durability is not in this path, so landed and validated is durable.
struct Host(Position);

impl StandbyHost for Host {
    fn on_validated(&mut self, batch: Validated<'_>) {
        self.0 = batch.to;
    }
    fn durable(&mut self) -> Position {
        self.0
    }
}

pub fn measure(args: &MirrorArgs, policy: AckPolicy) -> anyhow::Result<MirrorReport> {
    if args.wal_mode != "none" {
        bail!("--transport verbs --wal-mode {:?}: only none is measured over verbs (the mirror alone)", args.wal_mode);
    }
    if args.veth {
        bail!("--transport verbs --veth: the verbs path runs on an RDMA device, not on a veth pair");
    }
    let (_, device) = verbs::open(None).map_err(|e| anyhow!("--transport verbs: {e}"))?;
    let tmp = TempDir::new("bourse-bench-mirror-verbs")?;
    let dir = tmp.path().join("primary");
    let commit = Arc::new(CommitIndex::new(policy, 0));
    let mut wal_config = WalConfig::new(&dir);
    wal_config.mode = DurabilityMode::None;
    wal_config.segment_bytes = 64 << 20;
    let mut wal = Wal::create(wal_config, 1, Arc::clone(&commit)).context("opening the primary's WAL")?;
    let mut config = MirrorConfig::new(1 << 20);
    // Promotion would end the run: the standby's timeout is far beyond any scheduler (or emulator) hiccup.
    config.promote_after_silence_ns = 600_000_000_000;
    let ip: IpAddr = std::env::var("BOURSE_RXE_ADDR").ok().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::new(10, 77, 0, 1).into());
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).or_else(|_| TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let standby = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("bench-standby".into()).spawn(move || -> anyhow::Result<()> {
            let (mut side, _) = listener.accept()?;
            // Declared before the transport, so dropped after it: the registration goes before the memory.
            let mut region = vec![0u8; config.region_size_bytes as usize].into_boxed_slice();
            // SAFETY: `region`'s heap bytes stay allocated, and serve only as the standby's landing ring, until
            // after `transport`, which holds the only registration, has been dropped (declared later, so dropped
            // first, on the error paths too).
            #[allow(unsafe_code)]
            let lease = unsafe { RegionLease::new(region.as_mut_ptr(), region.len()) };
            let mut transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Standby(lease), 1, &mut side)?;
            let mut standby = Standby::new(config, WalRecords, 1, Position::default());
            let mut host = Host(Position::default());
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = start.elapsed().as_nanos() as u64;
                if let Some(StandbyEvent::Promoted { .. } | StandbyEvent::MustResync { .. }) =
                    standby.tick(now, &mut region, &mut transport, &mut host)?
                {
                    bail!("the standby left the follower role during the run: the numbers are not a healthy mirror's");
                }
            }
            Ok(())
        })?
    };
    let primary = {
        let (stop, dir, commit) = (Arc::clone(&stop), dir.clone(), Arc::clone(&commit));
        std::thread::Builder::new().name("bench-mirror".into()).spawn(move || -> anyhow::Result<()> {
            let mut side = TcpStream::connect(addr)?;
            let mut transport = VerbsTransport::connect(None, PORT, gid_index(), Role::Primary, 1, &mut side)?;
            let mut log = WalLog::open(&dir)?;
            let mut primary = Primary::new(config, WalRecords, 1, log.start());
            primary.gate().attach_commit_index(commit);
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if log.poll_tail(usize::MAX)? > 0 {
                    primary.on_append(log.tail());
                }
                primary.tick(start.elapsed().as_nanos() as u64, &mut log, &mut transport)?;
            }
            Ok(())
        })?
    };
    let result = run_phases(args, &mut wal, &commit);
    stop.store(true, Ordering::Relaxed);
    let primary_result = primary.join().map_err(|_| anyhow!("the mirror thread panicked"))?;
    let standby_result = standby.join().map_err(|_| anyhow!("the standby thread panicked"))?;
    // A transport failure on either side explains a stalled run better than the timeout does.
    primary_result.context("the primary's verbs mirror")?;
    standby_result.context("the standby's verbs mirror")?;
    let mut report = result?;
    report.link = "rdma";
    report.device = Some(device.clone());
    report.emulated = emulation(&device);
    Ok(report)
}
