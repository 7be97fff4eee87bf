//! `bourse bench mirror`: commit latency and throughput of a primary WAL mirrored to a hot standby.
//!
//! Both nodes run in this process on the real code paths: the primary appends through its own `Wal` with
//! the `--ack` policy (`replicated` by default, or `durable`), the appliance's [`MirrorSender`] ships the segment over TCP on loopback from its own
//! thread, and the standby's [`follow`] loop validates, journals (its own `Wal`) and applies each record, then acks
//! what it landed and, after its own group commit, its durable seq. Commit latency is measured closed loop, one record at a time, from the start of `append` to
//! `CommitIndex::committed()` covering it; throughput appends a long burst and waits for its last record.
//!
//! `--wal-mode none` isolates the mirror (no msync on either side); `msync` adds both nodes' durability points,
//! which on these hosts' ext4 take milliseconds. `--transport verbs` (a build with `--features rdma`, on a host with an
//! RDMA device: in CI, inside the soft-RoCE VM of `ci/rxe-vm.sh`) is measured in [`super::mirror_verbs`].

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bourse_engine::{Command, Deposit, Input};
use bourse_persist::mirror::Position;
use bourse_persist::{AckPolicy, CommitIndex, Wal, WalConfig};
use hdrhistogram::Histogram;
use serde::Serialize;

use bourse_appliance::appliance::mirror::MirrorSender;
use bourse_appliance::appliance::setup::durability;
use bourse_appliance::config::Config;
use crate::demo::TempDir;
use bourse_appliance::standby::{follow, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct MirrorArgs {
    /// Mirror transport: tcp, or verbs (a build with --features rdma, and an RDMA device).
    #[arg(long, default_value = "tcp")]
    pub transport: String,
    /// Closed-loop latency samples.
    #[arg(long, default_value_t = 5_000)]
    pub records: u64,
    /// Records in the throughput burst.
    #[arg(long, default_value_t = 100_000)]
    pub burst_records: u64,
    /// What a commit waits for: replicated (landed in the standby's memory) or durable (the standby's msync too).
    #[arg(long, default_value = "replicated")]
    pub ack: String,
    /// WAL durability mode of both nodes: none (the mirror alone) or msync.
    #[arg(long, default_value = "none")]
    pub wal_mode: String,
    /// Put the standby in namespace bourse-b and the primary's mirror in bourse-a, joined by the veth pair of
    /// `scripts/netns.sh` (root), instead of loopback.
    #[arg(long)]
    pub veth: bool,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct MirrorReport {
    pub transport: String,
    /// `veth` (two namespaces) or `loopback`.
    pub link: &'static str,
    pub wal_mode: String,
    /// The acknowledgement rule measured, and what it survives.
    pub ack: &'static str,
    pub failure_model: &'static str,
    pub records: u64,
    pub commit_p50_us: f64,
    pub commit_p99_us: f64,
    pub commit_max_us: f64,
    pub records_per_s: f64,
    /// The RDMA device (verbs only).
    pub device: Option<String>,
    /// Why the figures mean nothing about speed, when they do not (`QEMU TCG`, `soft-RoCE rxe0`).
    pub emulated: Option<String>,
}

const NODE_TOML: &str = r#"
[appliance]
name = "bench-mirror"
[backend]
kind = "socket"
bind = "127.0.0.1:9"
[market_data]
group = "127.0.0.1:9"
[wal]
dir = "@DIR@"
mode = "@MODE@"
segment_bytes = @SEGMENT@
[[symbols]]
name = "AAPL"
reference_price = "150.00"
[mirror]
@MIRROR@
"#;

fn node_config(dir: &Path, mode: &str, segment_bytes: u64, mirror: &str) -> anyhow::Result<Config> {
    let text = NODE_TOML
        .replace("@DIR@", dir.to_str().context("temporary path is not UTF-8")?)
        .replace("@MODE@", mode)
        .replace("@SEGMENT@", &segment_bytes.to_string())
        .replace("@MIRROR@", mirror);
    Config::parse(&text).context("the bench's node configuration")
}

/// Waits (spinning, then yielding) until `seq` is committed; false after `timeout`.
fn wait_committed(commit: &CommitIndex, seq: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut spins = 0u32;
    while !commit.is_committed(seq) {
        spins += 1;
        if spins.is_multiple_of(64) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    true
}

pub fn measure(args: &MirrorArgs) -> anyhow::Result<MirrorReport> {
    let policy = match args.ack.as_str() {
        "replicated" => AckPolicy::Replicated,
        "durable" | "mirrored" => AckPolicy::Mirrored,
        other => bail!("--ack {other:?}: expected replicated or durable"),
    };
    match args.transport.as_str() {
        "tcp" => {}
        #[cfg(feature = "rdma")]
        "verbs" => return super::mirror_verbs::measure(args, policy),
        #[cfg(not(feature = "rdma"))]
        "verbs" => bail!("--transport verbs: this build has no RDMA verbs support (build with --features rdma)"),
        other => bail!("--transport {other:?}: expected tcp or verbs"),
    }
    if !matches!(args.wal_mode.as_str(), "none" | "msync") {
        bail!("--wal-mode {:?}: expected none or msync", args.wal_mode);
    }
    let tmp = TempDir::new("bourse-bench-mirror")?;
    // Segments of the appliance's default size: long runs rotate, and the mirror follows.
    let segment_bytes = 64 << 20;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let standby_ip = if args.veth {
        super::wire::namespaces_up().context("setting up the veth pair (root and iproute2 needed)")?;
        super::wire::ADDR_LOAD.to_string()
    } else {
        "127.0.0.1".to_string()
    };
    // Promotion would end the run: the standby's timeout is far beyond any scheduler hiccup.
    let standby_cfg = node_config(
        &tmp.path().join("standby"),
        &args.wal_mode,
        segment_bytes,
        &format!("role = \"standby\"\nlisten = \"{standby_ip}:{port}\"\npromote_after_ms = 60000"),
    )?;
    let primary_cfg = node_config(
        &tmp.path().join("primary"),
        &args.wal_mode,
        segment_bytes,
        &format!("role = \"primary\"\nstandby_addr = \"{standby_ip}:{port}\"\nack = \"{}\"\npromote_after_ms = 60000", policy.name()),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let veth = args.veth;
    let standby = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("bench-standby".into()).spawn(move || {
            if veth {
                crate::netns::enter_named(super::wire::NS_LOAD).context("entering the standby's namespace")?;
            }
            follow(&standby_cfg, &stop)
        })?
    };
    let dir = tmp.path().join("primary");
    let commit = Arc::new(CommitIndex::new(policy, 0));
    let mut wal_config = WalConfig::new(&dir);
    wal_config.mode = durability(primary_cfg.wal.mode);
    wal_config.segment_bytes = segment_bytes;
    let mut wal = Wal::create(wal_config, 1, Arc::clone(&commit)).context("opening the primary's WAL")?;
    let mirror = {
        let (stop, dir, commit) = (Arc::clone(&stop), dir.clone(), Arc::clone(&commit));
        std::thread::Builder::new().name("bench-mirror".into()).spawn(move || -> anyhow::Result<()> {
            // The sender's socket is made on this thread, so it lives in this thread's namespace.
            if veth {
                crate::netns::enter_named(super::wire::NS_APPLIANCE).context("entering the primary's namespace")?;
            }
            let mut sender = MirrorSender::start(&primary_cfg, &dir, Position::default(), commit)?;
            let mut idle = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if sender.poll()? == 0 {
                    idle += 1;
                    if idle.is_multiple_of(16) {
                        std::thread::yield_now();
                    }
                } else {
                    idle = 0;
                }
            }
            Ok(())
        })?
    };
    let result = run_phases(args, &mut wal, &commit);
    stop.store(true, Ordering::Relaxed);
    let mirror_result = mirror.join().map_err(|_| anyhow::anyhow!("the mirror thread panicked"))?;
    let standby_result = standby.join().map_err(|_| anyhow::anyhow!("the standby thread panicked"))?;
    let report = result?;
    mirror_result?;
    if let Outcome::Promoted { .. } = standby_result? {
        bail!("the standby promoted itself during the run: the numbers are not those of a healthy mirror");
    }
    Ok(report)
}

pub(super) fn run_phases(args: &MirrorArgs, wal: &mut Wal, commit: &CommitIndex) -> anyhow::Result<MirrorReport> {
    let mut seq = 1u64;
    let input = |seq: u64| Input { seq, timestamp: seq, command: Command::Deposit(Deposit { account: 0, amount: 1 }) };
    // The first record also waits for the standby to connect and say hello.
    wal.append(&input(seq))?;
    if !wait_committed(commit, seq, Duration::from_secs(10)) {
        bail!("the standby did not acknowledge the first record within 10 s");
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for _ in 0..args.records {
        seq += 1;
        let t0 = Instant::now();
        wal.append(&input(seq))?;
        if !wait_committed(commit, seq, Duration::from_secs(10)) {
            bail!("seq {seq} was not committed within 10 s (committed {})", commit.committed());
        }
        hist.record((t0.elapsed().as_nanos() as u64).max(1))?;
    }
    let t0 = Instant::now();
    for i in 0..args.burst_records {
        seq += 1;
        wal.append_unfenced(&input(seq))?;
        if i % 64 == 63 {
            wal.fence();
        }
    }
    wal.fence();
    if !wait_committed(commit, seq, Duration::from_secs(60)) {
        bail!("the burst was not committed within 60 s (committed {} of {seq})", commit.committed());
    }
    let burst_s = t0.elapsed().as_secs_f64();
    Ok(MirrorReport {
        transport: args.transport.clone(),
        link: if args.veth { "veth" } else { "loopback" },
        wal_mode: args.wal_mode.clone(),
        ack: commit.policy().name(),
        failure_model: commit.policy().failure_model(),
        records: args.records,
        commit_p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
        commit_p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        commit_max_us: hist.max() as f64 / 1e3,
        records_per_s: args.burst_records as f64 / burst_s.max(1e-9),
        device: None,
        emulated: None,
    })
}

pub fn run(args: MirrorArgs) -> anyhow::Result<()> {
    let r = measure(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        if let Some(why) = &r.emulated {
            println!("EMULATED ({why}): these figures prove the path, not the speed; latency here means nothing");
        }
        println!(
            "mirror over {} on {} (wal {}, ack = {}: {}): commit p50 {:.1} us, p99 {:.1} us, max {:.1} us over {} records; burst {:.0} records/s",
            r.transport, r.link, r.wal_mode, r.ack, r.failure_model, r.commit_p50_us, r.commit_p99_us, r.commit_max_us, r.records, r.records_per_s
        );
    }
    Ok(())
}
