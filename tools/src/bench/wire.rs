//! `bourse bench wire`: the wire-to-ack round trip of the whole appliance over a veth pair, per packet backend,
//! against that backend's bare echo on the same path.
//!
//! ```text
//!   bourse-a (10.77.0.1, veth bva)                         bourse-b (10.77.0.2, veth bvb)
//!   ┌──────────────────────────────────┐                   ┌───────────────────────────────┐
//!   │ phase 1: wire-echo (backend echo │ ◀──── 64 B ping ── │ wire-client, closed loop      │
//!   │          loop, no decoding)      │ ───── echo ─────▶ │   → echo_p50_us (the floor)   │
//!   │ phase 2: bourse run (closed)     │ ◀── OUCH order ── │ bourse load --closed-loop     │
//!   │ phase 3: bourse run (open loop)  │ ─── first reply ▶ │ bourse load --rate R          │
//!   │   pipeline pinned to core 1      │                   │   pinned to core 0            │
//!   └──────────────────────────────────┘                   └───────────────────────────────┘
//! ```
//!
//! **Processes, not threads.** Every phase runs children of our own executable under `ip netns exec`: a network
//! namespace belongs to a thread, and a DPDK EAL can be initialised once per process, so separate processes are
//! the only way to give each phase a clean namespace, a fresh EAL and a fresh appliance (the load generator's
//! shadow book assumes a fresh appliance, which is why the closed-loop and open-loop runs each start their own).
//! Children print one JSON object on stdout, which this module parses. Every child is bounded in time and killed
//! when the bound passes or when anything on our side fails ([`Proc`] kills on drop).
//!
//! **The floor.** `echo_p50_us` is the same backend in bourse-a reflecting datagrams with no decoding,
//! journaling or matching (`backend::echo::echo` for the kernel-socket backends, the zero-copy `af_xdp::echo`
//! and `dpdk::echo` for the raw ones), timed by a busy-polling kernel UDP client in bourse-b that sends one
//! 64-byte datagram at a time. The client's side of the path (a kernel socket) is the same in every phase, so
//! `appliance_overhead_p50_us = rtt_p50_us − echo_p50_us` is what decoding, sequencing, journaling, matching and
//! encoding add at the median. Medians are what this host measures repeatably; tails are reported, not judged.
//!
//! **Cores.** The appliance's pipeline thread (or the echo loop) is pinned to `--appliance-core` (default 1) and
//! the client or load generator to `--load-core` (default 0); the appliance's aux thread shares the load core so
//! it never preempts the busy-polling pipeline. DPDK gets `-l <appliance core>` so the EAL pins to the same core:
//! the dpdk backend derives it from the pipeline core, as it derives the memory and PCI flags.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bourse_nic::backend::{self, BackendConfig};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use bourse_appliance::config::Config;
use crate::demo::TempDir;

/// Namespace names, interfaces and addresses as `scripts/netns.sh` creates them.
pub const NS_APPLIANCE: &str = "bourse-a";
pub const NS_LOAD: &str = "bourse-b";
pub const VETH_APPLIANCE: &str = "bva";
pub const VETH_LOAD: &str = "bvb";
pub const ADDR_APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const ADDR_LOAD: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Payload of every echo ping: the size the issue asks for, about that of an OUCH Enter Order in SoupBinTCP.
const PING_PAYLOAD_BYTES: usize = 64;
/// A ping unanswered for this long is counted lost and the next one is sent.
const PING_TIMEOUT_MS: u64 = 200;
/// How long a child may take to open its backend and say it is ready (DPDK's EAL set-up is the slow one).
const READY_TIMEOUT_S: u64 = 30;
/// Time allowed beyond a phase's own length for start-up, logins, drains and shutdown.
const PHASE_SLACK_S: f64 = 30.0;
/// Huge pages that must be free for the dpdk backend to use `net_af_xdp` rather than `net_af_packet`.
const DPDK_HUGEPAGES_MIN: u64 = 64;

/// Which backend(s) to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum WireBackend {
    Socket,
    Uring,
    AfXdp,
    Dpdk,
    All,
}

impl WireBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            WireBackend::Socket => "socket",
            WireBackend::Uring => "uring",
            WireBackend::AfXdp => "af_xdp",
            WireBackend::Dpdk => "dpdk",
            WireBackend::All => "all",
        }
    }

    /// The backends `all` runs, in order: the kernel socket first, since every ratio is against it.
    pub const EACH: [WireBackend; 4] = [WireBackend::Socket, WireBackend::Uring, WireBackend::AfXdp, WireBackend::Dpdk];
}

/// How the dpdk backend reaches the veth: a virtual device over `AF_PACKET` or over `AF_XDP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DpdkVdev {
    /// `net_af_xdp` when enough huge pages are free, `net_af_packet` otherwise.
    Auto,
    AfPacket,
    AfXdp,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WireArgs {
    /// socket, uring, af_xdp, dpdk, or all of them one after another.
    #[arg(long, value_enum, default_value = "socket")]
    pub backend: WireBackend,
    /// Seconds per measured phase (closed loop through the appliance, open loop through the appliance).
    #[arg(long, default_value_t = 3.0)]
    pub duration_s: f64,
    /// Round trips of the echo floor's closed loop. The closed loop through the appliance runs for --duration-s
    /// instead, because the load generator is bounded by time, not by count; its sample count is reported.
    #[arg(long, default_value_t = 20_000)]
    pub samples: u32,
    /// Offered rate of the open-loop phase, messages per second. The default stays below what one load core
    /// can offer and receive on this 2-core host; above it the generator, not the appliance, sets the rate.
    #[arg(long, default_value_t = 50_000.0)]
    pub rate: f64,
    /// Small numbers for tests: 0.5 s phases, 2,000 samples, 20,000 messages per second.
    #[arg(long)]
    pub quick: bool,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Remove the namespaces afterwards (they are left up by default, for the next run).
    #[arg(long)]
    pub teardown: bool,
    /// WAL durability mode of the appliance: dax, msync or none.
    #[arg(long, default_value = "dax")]
    pub wal_mode: String,
    /// Core of the appliance's pipeline thread and of the echo loop.
    #[arg(long, default_value_t = 1)]
    pub appliance_core: usize,
    /// Core of the load generator, the echo client and the appliance's aux thread.
    #[arg(long, default_value_t = 0)]
    pub load_core: usize,
    /// The DPDK virtual device over the veth.
    #[arg(long, value_enum, default_value = "auto")]
    pub dpdk_vdev: DpdkVdev,
    /// UDP port of the appliance and the echo (default: one derived from our process id).
    #[arg(long)]
    pub port: Option<u16>,
}

/// The numbers of one run, after `--quick` is applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub duration_s: f64,
    pub warmup_s: f64,
    pub samples: u32,
    pub warmup_samples: u32,
    pub rate: f64,
}

impl Plan {
    pub fn from_args(args: &WireArgs) -> anyhow::Result<Plan> {
        let plan = if args.quick {
            Plan { duration_s: 0.5, warmup_s: 0.1, samples: 2_000, warmup_samples: 100, rate: 20_000.0 }
        } else {
            Plan { duration_s: args.duration_s, warmup_s: 0.5, samples: args.samples, warmup_samples: 1_000, rate: args.rate }
        };
        if !(0.05..=600.0).contains(&plan.duration_s) {
            bail!("--duration-s {}: must be between 0.05 and 600 seconds", plan.duration_s);
        }
        if plan.samples == 0 {
            bail!("--samples must be at least 1");
        }
        if !(plan.rate.is_finite() && (1.0..=10_000_000.0).contains(&plan.rate)) {
            bail!("--rate {}: must be between 1 and 10,000,000 messages per second", plan.rate);
        }
        Ok(plan)
    }
}

/// `bourse bench wire`.
pub fn run(args: WireArgs) -> anyhow::Result<()> {
    let plan = Plan::from_args(&args)?;
    if !matches!(args.wal_mode.as_str(), "dax" | "msync" | "none") {
        bail!("--wal-mode {:?}: expected dax, msync or none", args.wal_mode);
    }
    require_root()?;
    namespaces_up()?;
    let exe = std::env::current_exe().context("finding our own executable to run the phases")?;
    let port = args.port.unwrap_or_else(default_port);
    let kinds: Vec<WireBackend> =
        if args.backend == WireBackend::All { WireBackend::EACH.to_vec() } else { vec![args.backend] };
    let mut runs = Vec::with_capacity(kinds.len());
    let mut failures = Vec::new();
    for kind in kinds {
        let run = match skip_reason(kind) {
            Some(reason) => json!({ "backend": kind.as_str(), "skipped": reason }),
            None => match measure(&exe, kind, &args, &plan, port) {
                Ok(r) => serde_json::to_value(r)?,
                Err(e) if args.backend == WireBackend::All => {
                    failures.push(format!("{}: {e:#}", kind.as_str()));
                    json!({ "backend": kind.as_str(), "error": format!("{e:#}") })
                }
                Err(e) => return Err(e.context(format!("bench wire --backend {}", kind.as_str()))),
            },
        };
        if !args.json {
            eprintln!("bourse bench wire: {run}");
        }
        runs.push(run);
    }
    if args.teardown {
        namespaces_down()?;
    }
    add_ratios(&mut runs);
    let out = if args.backend == WireBackend::All {
        json!({ "runs": runs, "cores": cores_json(&args), "host": host_json() })
    } else {
        runs.last().cloned().context("no run")?
    };
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    if args.json {
        writeln!(o, "{out}")?;
    } else {
        write_table(&mut o, &runs, &args)?;
    }
    if !failures.is_empty() {
        bail!("{} backend(s) failed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}

/// Why a backend cannot run in this build, if it cannot.
fn skip_reason(kind: WireBackend) -> Option<&'static str> {
    (kind == WireBackend::Dpdk && !cfg!(feature = "dpdk")).then_some("built without --features dpdk")
}

/// A port unlikely to clash with another engineer's run in the same namespaces.
fn default_port() -> u16 {
    20_000 + (std::process::id() % 20_000) as u16
}

/// What one backend measured. Latencies in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireRun {
    pub backend: String,
    pub wal_mode: String,
    /// False when the WAL mode asked for could not be durable on this host (dax without MAP_SYNC).
    pub wal_durable: bool,
    pub echo_p50_us: f64,
    pub echo_p99_us: f64,
    pub echo_samples: u64,
    pub echo_lost: u64,
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_p999_us: f64,
    pub rtt_samples: u64,
    pub rtt_lost: u64,
    /// Replies per second received during the open-loop phase.
    pub msgs_per_s: f64,
    pub offered_per_s: f64,
    pub open_lost: u64,
    pub appliance_overhead_p50_us: f64,
    /// The appliance's own summary line after the open-loop phase (inputs, rx/tx, drops), for diagnosing losses.
    pub open_appliance: String,
    /// How the backend ran (AF_XDP copy/zero-copy and attach mode, the DPDK virtual device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// The three phases of one backend.
fn measure(exe: &Path, kind: WireBackend, args: &WireArgs, plan: &Plan, port: u16) -> anyhow::Result<WireRun> {
    let setup = BackendSetup::for_kind(kind, args.dpdk_vdev);
    let target = SocketAddrV4::new(ADDR_APPLIANCE, port);
    let echo = echo_phase(exe, &setup, args, plan, target).context("echo phase")?;
    let closed = appliance_phase(exe, &setup, args, plan, port, LoadMode::Closed).context("closed-loop phase")?;
    let open = appliance_phase(exe, &setup, args, plan, port, LoadMode::Open).context("open-loop phase")?;
    let row = closed.load.rates.first().context("the closed-loop load report has no row")?;
    let open_row = open.load.rates.first().context("the open-loop load report has no row")?;
    if row.replied == 0 {
        bail!("no order was answered in the closed loop (appliance: {})", closed.summary);
    }
    Ok(WireRun {
        backend: kind.as_str().to_string(),
        wal_mode: args.wal_mode.clone(),
        wal_durable: closed.wal_durable,
        echo_p50_us: echo.p50_us,
        echo_p99_us: echo.p99_us,
        echo_samples: echo.samples,
        echo_lost: echo.lost,
        rtt_p50_us: row.p50_us,
        rtt_p99_us: row.p99_us,
        rtt_p999_us: row.p999_us,
        rtt_samples: row.replied,
        rtt_lost: closed.load.lost,
        msgs_per_s: (open_row.replied as f64 / plan.duration_s).round(),
        offered_per_s: plan.rate,
        open_lost: open.load.lost,
        open_appliance: open.summary.clone(),
        appliance_overhead_p50_us: round2(row.p50_us - echo.p50_us),
        mode: echo.mode.or(setup.describe()),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Adds `ratio_p50_vs_socket` (round trip through the appliance) and `echo_ratio_p50_vs_socket` (the floor) to
/// every measured run, when the socket backend was measured in the same invocation.
pub fn add_ratios(runs: &mut [Value]) {
    let socket = runs.iter().find(|r| r["backend"] == "socket" && r["rtt_p50_us"].is_number()).cloned();
    let Some(socket) = socket else { return };
    let (rtt, echo) = (socket["rtt_p50_us"].as_f64().unwrap_or(0.0), socket["echo_p50_us"].as_f64().unwrap_or(0.0));
    for r in runs.iter_mut() {
        let Some(o) = r.as_object_mut() else { continue };
        let ratio = |key: &str, base: f64| o.get(key).and_then(Value::as_f64).filter(|_| base > 0.0).map(|v| v / base);
        let (a, b) = (ratio("rtt_p50_us", rtt), ratio("echo_p50_us", echo));
        if let Some(a) = a {
            o.insert("ratio_p50_vs_socket".into(), json!((a * 1_000.0).round() / 1_000.0));
        }
        if let Some(b) = b {
            o.insert("echo_ratio_p50_vs_socket".into(), json!((b * 1_000.0).round() / 1_000.0));
        }
    }
}

fn cores_json(args: &WireArgs) -> Value {
    json!({
        "appliance_pipeline": args.appliance_core,
        "echo": args.appliance_core,
        "load": args.load_core,
        "appliance_aux": args.load_core,
        "available": backend::pin::available_cores().len(),
    })
}

fn host_json() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']));
    json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu": model.unwrap_or("unknown"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "hugepages_free": hugepages_free(),
    })
}

/// The human table.
fn write_table(out: &mut dyn Write, runs: &[Value], args: &WireArgs) -> std::io::Result<()> {
    writeln!(
        out,
        "bourse bench wire: appliance in {NS_APPLIANCE} (core {}), load in {NS_LOAD} (core {}), WAL {}; µs",
        args.appliance_core, args.load_core, args.wal_mode
    )?;
    writeln!(
        out,
        "{:<8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11} {:>9}",
        "backend", "echo p50", "rtt p50", "rtt p99", "rtt p99.9", "overhead", "replies/s", "vs socket"
    )?;
    for r in runs {
        let name = r["backend"].as_str().unwrap_or("?");
        if let Some(why) = r.get("skipped").or(r.get("error")).and_then(Value::as_str) {
            writeln!(out, "{name:<8} {why}")?;
            continue;
        }
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
        writeln!(
            out,
            "{:<8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11} {:>9}",
            name,
            f("echo_p50_us"),
            f("rtt_p50_us"),
            f("rtt_p99_us"),
            f("rtt_p999_us"),
            f("appliance_overhead_p50_us"),
            r["msgs_per_s"].as_f64().map_or("-".to_string(), |v| format!("{v:.0}")),
            f("ratio_p50_vs_socket"),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Host set-up.

/// Network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN: refuse early and clearly without them.
fn require_root() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    // "Uid:  real  effective  saved  fs": the effective uid decides.
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().nth(1));
    if euid != Some("0") {
        bail!("bourse bench wire needs root: it creates network namespaces and a veth pair, and the raw backends need CAP_NET_ADMIN and CAP_BPF");
    }
    let ip = Command::new("ip").arg("-V").output();
    if !ip.map(|o| o.status.success()).unwrap_or(false) {
        bail!("bourse bench wire needs the `ip` command (iproute2) for network namespaces");
    }
    Ok(())
}

/// `scripts/netns.sh`, found next to the repository this binary was built from, or above the executable.
fn netns_script() -> Option<PathBuf> {
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|d| d.join("scripts/netns.sh")));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join("scripts/netns.sh"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Brings the namespaces and the veth pair up (idempotent), with the script when it can be found and with the
/// same `ip` calls otherwise.
pub(crate) fn namespaces_up() -> anyhow::Result<()> {
    if let Some(script) = netns_script() {
        let out = Command::new("bash").arg(&script).arg("up").output().with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} up failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        return Ok(());
    }
    let listed = ip_output(&["netns", "list"])?;
    for ns in [NS_APPLIANCE, NS_LOAD] {
        if !listed.lines().any(|l| l.split_whitespace().next() == Some(ns)) {
            ip(&["netns", "add", ns])?;
        }
    }
    let has = |ns: &str, dev: &str| ip(&["-n", ns, "link", "show", dev]).is_ok();
    if !has(NS_APPLIANCE, VETH_APPLIANCE) || !has(NS_LOAD, VETH_LOAD) {
        let _ = ip(&["-n", NS_APPLIANCE, "link", "del", VETH_APPLIANCE]);
        let _ = ip(&["-n", NS_LOAD, "link", "del", VETH_LOAD]);
        ip(&["-n", NS_APPLIANCE, "link", "add", VETH_APPLIANCE, "type", "veth", "peer", "name", VETH_LOAD])?;
        ip(&["-n", NS_APPLIANCE, "link", "set", VETH_LOAD, "netns", NS_LOAD])?;
    }
    for (ns, dev, addr) in [(NS_APPLIANCE, VETH_APPLIANCE, ADDR_APPLIANCE), (NS_LOAD, VETH_LOAD, ADDR_LOAD)] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        if !ip_output(&["-n", ns, "-4", "addr", "show", "dev", dev])?.contains(&format!("inet {addr}/")) {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
        }
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    Ok(())
}

fn namespaces_down() -> anyhow::Result<()> {
    if let Some(script) = netns_script() {
        let out = Command::new("bash").arg(&script).arg("down").output().with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} down failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        return Ok(());
    }
    for ns in [NS_APPLIANCE, NS_LOAD] {
        let _ = ip(&["netns", "del", ns]);
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(args).output().with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Free 2 MiB huge pages in a mounted hugetlbfs (0 when none are reserved or none is mounted).
fn hugepages_free() -> u64 {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")))
        .unwrap_or(false);
    if !mounted {
        return 0;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------------------------
// How each backend is opened, for the echo child and the appliance's configuration alike.

/// Backend kind, interface and EAL arguments for one backend on the veth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSetup {
    pub kind: WireBackend,
    pub interface: Option<String>,
    pub eal_args: Vec<String>,
}

impl BackendSetup {
    pub fn for_kind(kind: WireBackend, vdev: DpdkVdev) -> BackendSetup {
        match kind {
            WireBackend::AfXdp => {
                BackendSetup { kind, interface: Some(VETH_APPLIANCE.to_string()), eal_args: Vec::new() }
            }
            WireBackend::Dpdk => {
                let xdp = match vdev {
                    DpdkVdev::AfXdp => true,
                    DpdkVdev::AfPacket => false,
                    DpdkVdev::Auto => hugepages_free() >= DPDK_HUGEPAGES_MIN,
                };
                let (device, vdev) = if xdp {
                    ("net_af_xdp0", format!("--vdev=net_af_xdp0,iface={VETH_APPLIANCE},start_queue=0,queue_count=1"))
                } else {
                    ("net_af_packet0", format!("--vdev=net_af_packet0,iface={VETH_APPLIANCE}"))
                };
                // Only the device: the dpdk backend's EAL argument builder adds the memory flags this host needs
                // (--no-huge without free huge pages, --in-memory with them), --no-pci, `-l <appliance core>`
                // (from the config's pipeline core, or the echo's --core) and a per-process --file-prefix.
                let eal_args = vec![vdev, "--log-level=error".to_string()];
                BackendSetup { kind, interface: Some(device.to_string()), eal_args }
            }
            _ => BackendSetup { kind, interface: None, eal_args: Vec::new() },
        }
    }

    /// A description for the report when the child did not give a finer one.
    fn describe(&self) -> Option<String> {
        (self.kind == WireBackend::Dpdk).then(|| self.interface.clone().unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes.

/// A child process under `ip netns exec`, with its stdout read line by line and its stderr collected, killed if
/// dropped while still running.
struct Proc {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    reaped: bool,
}

impl Proc {
    fn spawn(what: &str, ns: &str, exe: &Path, args: &[String], stdin: bool) -> anyhow::Result<Proc> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(exe).args(args);
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting the {what} (ip netns exec {ns} …)"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr_pipe = child.stderr.take().context("child stderr")?;
        let (tx, lines) = mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut r = BufReader::new(stderr_pipe);
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if let Ok(mut s) = sink.lock() {
                    s.clone_from(&text);
                }
            }
        });
        Ok(Proc {
            what: what.to_string(),
            child,
            lines,
            stdout_reader: Some(stdout_reader),
            stderr,
            stderr_reader: Some(stderr_reader),
            reaped: false,
        })
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default()
    }

    fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for a stdout line that `want` accepts, at most `limit`.
    fn wait_line(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    bail!("the {} said nothing within {} s; its stderr: {}", self.what, limit.as_secs(), self.stderr_text());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(Duration::from_secs(5))?;
                    bail!("the {} exited ({status}) before it was ready; its stderr: {}", self.what, self.stderr_text());
                }
            }
        }
    }

    /// Waits for the child to exit, at most `limit`, killing it when the limit passes.
    fn wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().with_context(|| format!("waiting for the {}", self.what))? {
                self.reaped = true;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!("the {} did not finish within {} s and was killed; its stderr: {}", self.what, limit.as_secs(), self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a successful exit and returns the last stdout line that is a JSON object, parsed.
    fn finish_json<T: serde::de::DeserializeOwned>(&mut self, limit: Duration) -> anyhow::Result<T> {
        let status = self.wait(limit)?;
        if let Some(h) = self.stdout_reader.take() {
            let _ = h.join();
        }
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
        let last = self.lines.try_iter().filter(|l| l.trim_start().starts_with('{')).last();
        if !status.success() {
            bail!("the {} failed ({status}): {}", self.what, self.stderr_text());
        }
        let line = last.with_context(|| format!("the {} printed no JSON; its stderr: {}", self.what, self.stderr_text()))?;
        serde_json::from_str(&line).with_context(|| format!("parsing the {}'s JSON: {line}", self.what))
    }

    /// Asks the child to stop (SIGTERM, so the appliance drains and removes nothing half-written).
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().map(|s| s.success()).unwrap_or(false);
        if !sent {
            self.kill();
        }
    }

    fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 1: the echo floor.

/// What the echo client measured (microseconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EchoReport {
    pub samples: u64,
    pub lost: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    #[serde(default)]
    pub mode: Option<String>,
}

fn echo_phase(exe: &Path, setup: &BackendSetup, args: &WireArgs, plan: &Plan, target: SocketAddrV4) -> anyhow::Result<EchoReport> {
    // Each ping is bounded by the ping timeout; the lifetime leaves room for every one of them to time out.
    let pings = u64::from(plan.samples + plan.warmup_samples);
    let client_limit_s = (pings * PING_TIMEOUT_MS / 1_000) as f64 + PHASE_SLACK_S;
    let lifetime_s = client_limit_s + READY_TIMEOUT_S as f64 + PHASE_SLACK_S;
    let mut server_args = vec![
        "bench".into(),
        "wire-echo".into(),
        "--backend".into(),
        setup.kind.as_str().into(),
        "--bind".into(),
        target.to_string(),
        "--core".into(),
        args.appliance_core.to_string(),
        "--lifetime-s".into(),
        format!("{lifetime_s}"),
    ];
    if let Some(i) = &setup.interface {
        server_args.extend(["--interface".into(), i.clone()]);
    }
    for a in &setup.eal_args {
        server_args.push(format!("--eal-arg={a}"));
    }
    let mut server = Proc::spawn("echo server", NS_APPLIANCE, exe, &server_args, true)?;
    let ready = server.wait_line(Duration::from_secs(READY_TIMEOUT_S), |l| l.contains("\"ready\""))?;
    let mode = serde_json::from_str::<Value>(&ready).ok().and_then(|v| v["mode"].as_str().map(str::to_string));
    let client_args = vec![
        "bench".into(),
        "wire-client".into(),
        "--target".into(),
        target.to_string(),
        "--bind".into(),
        ADDR_LOAD.to_string(),
        "--samples".into(),
        plan.samples.to_string(),
        "--warmup".into(),
        plan.warmup_samples.to_string(),
        "--core".into(),
        args.load_core.to_string(),
    ];
    let mut client = Proc::spawn("echo client", NS_LOAD, exe, &client_args, false)?;
    let report: anyhow::Result<EchoReport> = client.finish_json(Duration::from_secs_f64(client_limit_s));
    // Closing the server's stdin tells it to stop; it reports how many datagrams it echoed.
    drop(server.stdin());
    let served: anyhow::Result<Value> = server.finish_json(Duration::from_secs(10));
    let mut report = report?;
    let served = served?;
    if report.samples == 0 {
        bail!("no echo came back ({} lost; echo server: {served})", report.lost);
    }
    report.mode = mode;
    Ok(report)
}

/// Hidden `bourse bench wire-echo`: opens one backend and echoes until stdin closes or the lifetime passes.
#[derive(clap::Args, Debug, Clone)]
pub struct WireEchoArgs {
    #[arg(long, value_enum)]
    pub backend: WireBackend,
    #[arg(long)]
    pub bind: SocketAddrV4,
    /// Interface (af_xdp) or DPDK device name (dpdk).
    #[arg(long)]
    pub interface: Option<String>,
    /// One DPDK EAL argument (repeatable), e.g. --eal-arg=--no-pci.
    #[arg(long = "eal-arg", allow_hyphen_values = true)]
    pub eal_args: Vec<String>,
    /// Core of the echo loop.
    #[arg(long)]
    pub core: Option<usize>,
    /// Hard bound on the run, whatever happens.
    #[arg(long, default_value_t = 120.0)]
    pub lifetime_s: f64,
}

pub fn run_echo(args: WireEchoArgs) -> anyhow::Result<()> {
    if let Some(core) = args.core {
        backend::pin::pin_current_thread(core).with_context(|| format!("pinning the echo loop to core {core}"))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let on_eof = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            on_eof.store(true, Ordering::Relaxed);
        });
        let on_timeout = Arc::clone(&stop);
        let lifetime = Duration::from_secs_f64(args.lifetime_s.clamp(0.1, 3_600.0));
        std::thread::spawn(move || {
            std::thread::sleep(lifetime);
            on_timeout.store(true, Ordering::Relaxed);
        });
    }
    let mut bc = BackendConfig::new(args.bind);
    bc.interface = args.interface.clone();
    bc.tx_slots = 1_024;
    bc.eal_args = args.eal_args.clone();
    bc.core = args.core;
    let ready = |mode: &str| {
        println!("{}", json!({ "ready": true, "backend": args.backend.as_str(), "mode": mode }));
        let _ = std::io::stdout().flush();
    };
    let echoed = match args.backend {
        WireBackend::Socket => {
            let mut b = backend::socket::SocketBackend::with_options(&bc, &socket_options()).context("opening the socket backend")?;
            ready("recvmmsg/sendmmsg");
            backend::echo::echo(&mut b, &stop)
        }
        WireBackend::Uring => {
            let opts = backend::uring::UringOptions { socket: socket_options(), rx_buffers: None };
            let mut b = backend::uring::UringBackend::with_options(&bc, &opts).context("opening the uring backend")?;
            ready(&format!("{:?}", b.mode()));
            backend::echo::echo(&mut b, &stop)
        }
        WireBackend::AfXdp => {
            let mut b = backend::af_xdp::AfXdp::new(&bc).context("opening the af_xdp backend")?;
            ready(&b.mode().to_string());
            backend::af_xdp::echo(&mut b, &stop)
        }
        WireBackend::Dpdk => echo_dpdk(&bc, &stop, &ready)?,
        WireBackend::All => bail!("wire-echo runs one backend"),
    };
    println!("{}", json!({ "echoed": echoed }));
    Ok(())
}

#[cfg(feature = "dpdk")]
fn echo_dpdk(bc: &BackendConfig, stop: &AtomicBool, ready: &dyn Fn(&str)) -> anyhow::Result<u64> {
    let mut b = backend::dpdk::DpdkBackend::new(bc).context("opening the dpdk backend")?;
    ready(&format!("{} (port {})", bc.interface.as_deref().unwrap_or("first port"), b.port_id()));
    Ok(backend::dpdk::echo(&mut b, stop))
}

#[cfg(not(feature = "dpdk"))]
fn echo_dpdk(_bc: &BackendConfig, _stop: &AtomicBool, _ready: &dyn Fn(&str)) -> anyhow::Result<u64> {
    bail!("the dpdk backend needs a build with `--features dpdk`")
}

/// The appliance's kernel socket buffers (see `appliance::setup`), so the floor runs the same socket set-up.
fn socket_options() -> backend::socket::SocketOptions {
    backend::socket::SocketOptions {
        recv_buffer_bytes: Some(8 << 20),
        send_buffer_bytes: Some(8 << 20),
        ..Default::default()
    }
}

/// Hidden `bourse bench wire-client`: a busy-polling kernel UDP client, one 64-byte datagram in flight at a
/// time; prints an [`EchoReport`].
#[derive(clap::Args, Debug, Clone)]
pub struct WireClientArgs {
    #[arg(long)]
    pub target: SocketAddrV4,
    /// Source address.
    #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED)]
    pub bind: Ipv4Addr,
    #[arg(long, default_value_t = 20_000)]
    pub samples: u32,
    /// Untimed round trips first (caches, page tables, the peer's ARP entry).
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u32,
    #[arg(long)]
    pub core: Option<usize>,
}

pub fn run_client(args: WireClientArgs) -> anyhow::Result<()> {
    if let Some(core) = args.core {
        backend::pin::pin_current_thread(core).with_context(|| format!("pinning the echo client to core {core}"))?;
    }
    let report = ping(&args)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn ping(args: &WireClientArgs) -> anyhow::Result<EchoReport> {
    let sock = UdpSocket::bind(SocketAddrV4::new(args.bind, 0)).with_context(|| format!("binding the echo client on {}", args.bind))?;
    sock.connect(args.target).with_context(|| format!("connecting the echo client to {}", args.target))?;
    sock.set_nonblocking(true)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("allocating the histogram")?;
    let mut lost = 0u64;
    let mut out = [0u8; PING_PAYLOAD_BYTES];
    let mut buf = [0u8; 2_048];
    let timeout = Duration::from_millis(PING_TIMEOUT_MS);
    for seq in 0..u64::from(args.warmup) + u64::from(args.samples) {
        // The sequence number leads the payload so a late echo of an earlier ping is never mistaken for this one.
        out[..8].copy_from_slice(&seq.to_le_bytes());
        out[8..].fill(0xa5);
        let t0 = Instant::now();
        match sock.send(&out) {
            Ok(_) => {}
            // The echo is not up yet or a stray ICMP error was queued: a lost ping, not a failed run.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                lost += 1;
                continue;
            }
            Err(e) => return Err(e).context("sending a ping"),
        }
        let answered = loop {
            match sock.recv(&mut buf) {
                Ok(n) if n == out.len() && buf[..n] == out => break true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::ConnectionRefused) => {}
                Err(e) => return Err(e).context("receiving an echo"),
            }
            if t0.elapsed() >= timeout {
                break false;
            }
            std::hint::spin_loop();
        };
        let ns = t0.elapsed().as_nanos() as u64;
        if !answered {
            lost += 1;
        } else if seq >= u64::from(args.warmup) {
            hist.saturating_record(ns.max(1));
        }
    }
    let us = |q: f64| if hist.is_empty() { 0.0 } else { round2(hist.value_at_quantile(q) as f64 / 1_000.0) };
    Ok(EchoReport {
        samples: hist.len(),
        lost,
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: if hist.is_empty() { 0.0 } else { round2(hist.max() as f64 / 1_000.0) },
        mode: None,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Phases 2 and 3: the appliance under the load generator.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadMode {
    Closed,
    Open,
}

/// The parts of `bourse load --json` this benchmark reads.
#[derive(Clone, Debug, Deserialize)]
struct LoadJson {
    rates: Vec<LoadRow>,
    lost: u64,
}

#[derive(Clone, Debug, Deserialize)]
struct LoadRow {
    replied: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

struct AppliancePhase {
    load: LoadJson,
    summary: String,
    wal_durable: bool,
}

/// The appliance configuration for one phase, validated by the appliance's own parser.
pub fn appliance_config(setup: &BackendSetup, port: u16, wal_dir: &Path, wal_mode: &str, cores: (usize, usize), name: &str) -> anyhow::Result<String> {
    let dir = wal_dir.to_str().context("the WAL directory's path is not UTF-8")?;
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut backend = format!("kind = \"{}\"\nbind = \"{ADDR_APPLIANCE}:{port}\"\n", setup.kind.as_str());
    if let Some(i) = &setup.interface {
        backend.push_str(&format!("interface = {}\n", quote(i)));
    }
    if !setup.eal_args.is_empty() {
        let list: Vec<String> = setup.eal_args.iter().map(|a| quote(a)).collect();
        backend.push_str(&format!("eal_args = [{}]\n", list.join(", ")));
    }
    // Market data goes to the load namespace, where nobody listens: the kernel drops it there, which costs the
    // measured path nothing, while the appliance still encodes and sends every ITCH message as in production.
    let text = format!(
        r#"
[appliance]
name = {name}

[backend]
{backend}burst_max = 32
tx_slots = 1024

[market_data]
group = "{ADDR_LOAD}:{md_port}"
session = "BENCHWIRE"

[wal]
dir = {dir}
mode = {mode}
segment_bytes = 67108864

[cores]
pipeline = {pipeline}
aux = {aux}

"#,
        name = quote(name),
        md_port = port.wrapping_add(1).max(1),
        dir = quote(dir),
        mode = quote(wal_mode),
        pipeline = cores.0,
        aux = cores.1,
    ) + &bourse_appliance::config::demo_market_toml(2, &ADDR_LOAD.to_string());
    Config::parse(&text).context("the benchmark's appliance configuration")?;
    Ok(text)
}

fn appliance_phase(exe: &Path, setup: &BackendSetup, args: &WireArgs, plan: &Plan, port: u16, mode: LoadMode) -> anyhow::Result<AppliancePhase> {
    let dir = TempDir::new("bourse-benchwire")?;
    let wal_dir = dir.path().join("wal");
    let name = format!("benchwire-{}", std::process::id());
    let text = appliance_config(setup, port, &wal_dir, &args.wal_mode, (args.appliance_core, args.load_core), &name)?;
    let config_path = dir.path().join("bourse.toml");
    std::fs::write(&config_path, &text).with_context(|| format!("writing {}", config_path.display()))?;
    let config = config_path.to_string_lossy().into_owned();

    let load_s = plan.warmup_s + plan.duration_s;
    let lifetime_s = load_s + 2.0 * PHASE_SLACK_S;
    let run_args = vec!["run".into(), "--config".into(), config.clone(), "--duration-s".into(), format!("{lifetime_s}")];
    let mut appliance = Proc::spawn("appliance", NS_APPLIANCE, exe, &run_args, false)?;

    let mut load_args = vec![
        "load".into(),
        "--config".into(),
        config,
        "--bind".into(),
        ADDR_LOAD.to_string(),
        "--duration-s".into(),
        format!("{}", plan.duration_s),
        "--warmup-s".into(),
        format!("{}", plan.warmup_s),
        "--core".into(),
        args.load_core.to_string(),
        "--login-timeout-ms".into(),
        (READY_TIMEOUT_S * 1_000).to_string(),
        "--json".into(),
    ];
    match mode {
        LoadMode::Closed => load_args.push("--closed-loop".into()),
        LoadMode::Open => load_args.extend(["--rate".into(), format!("{}", plan.rate)]),
    }
    let mut load = Proc::spawn("load generator", NS_LOAD, exe, &load_args, false)?;
    let limit = Duration::from_secs_f64(load_s + READY_TIMEOUT_S as f64 + PHASE_SLACK_S);
    let report: anyhow::Result<LoadJson> = load.finish_json(limit);
    appliance.terminate();
    let stopped = appliance.wait(Duration::from_secs(15));
    let log = appliance.stderr_text();
    // The appliance leaves its stats block behind for `bourse stats`; nobody reads this one after the phase.
    if let Ok(path) = bourse_appliance::obs::statsblock::stats_path(&name) {
        let _ = std::fs::remove_file(path);
    }
    let report = report.with_context(|| format!("appliance log: {log}"))?;
    let status = stopped?;
    if !status.success() {
        bail!("the appliance failed ({status}): {log}");
    }
    let summary = log.lines().rev().find_map(|l| l.strip_prefix("bourse: stopped: ")).unwrap_or("no summary").to_string();
    Ok(AppliancePhase { load: report, summary, wal_durable: !log.contains("NOT durable on this host") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appliance_configuration_parses_for_every_backend() {
        let dir = Path::new("/tmp/bourse \"quoted\" dir");
        for kind in WireBackend::EACH {
            for vdev in [DpdkVdev::AfPacket, DpdkVdev::AfXdp] {
                let setup = BackendSetup::for_kind(kind, vdev);
                let text = appliance_config(&setup, 4_000, dir, "dax", (1, 0), "benchwire-test").unwrap();
                let c = Config::parse(&text).unwrap();
                assert_eq!(c.backend.kind.as_str(), kind.as_str());
                assert_eq!(c.backend.bind, SocketAddrV4::new(ADDR_APPLIANCE, 4_000));
                assert_eq!(c.wal.dir.as_deref(), Some(dir));
                assert_eq!((c.cores.pipeline, c.cores.aux), (Some(1), Some(0)));
                assert!(c.firms.iter().all(|f| f.allowed_sources == [ADDR_LOAD.to_string()]));
                assert_eq!(c.backend.interface, setup.interface);
                assert_eq!(c.backend.eal_args, setup.eal_args);
            }
        }
    }

    #[test]
    fn dpdk_gets_the_veth_device_and_nothing_the_backend_decides() {
        let p = BackendSetup::for_kind(WireBackend::Dpdk, DpdkVdev::AfPacket);
        assert_eq!(p.interface.as_deref(), Some("net_af_packet0"));
        // No memory, PCI or core flags of its own: the backend's EAL argument builder decides those, and two
        // deciders disagreed before (--in-memory here, --no-huge there, which EAL refuses together).
        assert_eq!(p.eal_args, ["--vdev=net_af_packet0,iface=bva", "--log-level=error"]);
        let x = BackendSetup::for_kind(WireBackend::Dpdk, DpdkVdev::AfXdp);
        assert_eq!(x.interface.as_deref(), Some("net_af_xdp0"));
        assert!(x.eal_args[0].starts_with("--vdev=net_af_xdp0,iface=bva"));
        assert_eq!(x.eal_args.len(), 2);
        let a = BackendSetup::for_kind(WireBackend::AfXdp, DpdkVdev::Auto);
        assert_eq!((a.interface.as_deref(), a.eal_args.len()), (Some("bva"), 0));
    }

    #[test]
    fn ratios_are_against_the_socket_run_and_skip_unmeasured_runs() {
        let mut runs = vec![
            json!({"backend": "socket", "rtt_p50_us": 20.0, "echo_p50_us": 10.0}),
            json!({"backend": "af_xdp", "rtt_p50_us": 12.0, "echo_p50_us": 6.0}),
            json!({"backend": "dpdk", "skipped": "built without --features dpdk"}),
        ];
        add_ratios(&mut runs);
        assert_eq!(runs[0]["ratio_p50_vs_socket"], json!(1.0));
        assert_eq!(runs[1]["ratio_p50_vs_socket"], json!(0.6));
        assert_eq!(runs[1]["echo_ratio_p50_vs_socket"], json!(0.6));
        assert!(runs[2].get("ratio_p50_vs_socket").is_none());

        let mut no_socket = vec![json!({"backend": "uring", "rtt_p50_us": 12.0, "echo_p50_us": 6.0})];
        add_ratios(&mut no_socket);
        assert!(no_socket[0].get("ratio_p50_vs_socket").is_none());
    }

    #[test]
    fn quick_shrinks_the_run_and_bad_numbers_are_refused() {
        let args = |extra: &[&str]| {
            use clap::Parser;
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                w: WireArgs,
            }
            let mut v = vec!["x"];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v).map(|c| c.w)
        };
        let q = Plan::from_args(&args(&["--quick", "--backend", "af_xdp"]).unwrap()).unwrap();
        assert_eq!((q.samples, q.duration_s), (2_000, 0.5));
        let d = Plan::from_args(&args(&[]).unwrap()).unwrap();
        assert_eq!((d.samples, d.duration_s, d.rate), (20_000, 3.0, 50_000.0));
        assert!(Plan::from_args(&args(&["--samples", "0"]).unwrap()).is_err());
        assert!(Plan::from_args(&args(&["--duration-s=-1"]).unwrap()).is_err());
        assert!(args(&["--backend", "carrier-pigeon"]).is_err());
        assert_eq!(args(&["--backend", "all"]).unwrap().backend, WireBackend::All);
    }

    #[test]
    fn the_load_generators_json_is_read_by_its_field_names() {
        let text = r#"{"rates":[{"rate":1.0,"sent":5,"replied":4,"p50_us":9.5,"p90_us":1.0,"p99_us":12.25,
            "p999_us":30.0,"p9999_us":31.0,"max_us":40.0,"msgs_per_s":5.0}],"lost":1,"rejects":0,"executions":2,
            "seed":1,"gaps":0}"#;
        let j: LoadJson = serde_json::from_str(text).unwrap();
        assert_eq!((j.rates[0].replied, j.rates[0].p50_us, j.rates[0].p99_us, j.rates[0].p999_us, j.lost), (4, 9.5, 12.25, 30.0, 1));
    }

    #[test]
    fn the_echo_client_counts_unanswered_pings_as_lost() {
        // A bound socket that never answers: every ping times out and none is recorded.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(target) = silent.local_addr().unwrap() else { panic!("v4") };
        let r = ping(&WireClientArgs { target, bind: Ipv4Addr::LOCALHOST, samples: 2, warmup: 0, core: None }).unwrap();
        assert_eq!((r.samples, r.lost, r.p50_us), (0, 2, 0.0));
    }

    #[test]
    fn the_echo_client_times_a_socket_backend_echo_on_loopback() {
        let bc = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        let mut b = backend::socket::SocketBackend::with_options(&bc, &socket_options()).unwrap();
        let target = b.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let server = std::thread::spawn(move || backend::echo::echo(&mut b, &flag));
        let r = ping(&WireClientArgs { target, bind: Ipv4Addr::LOCALHOST, samples: 200, warmup: 10, core: None });
        stop.store(true, Ordering::Relaxed);
        let echoed = server.join().unwrap();
        let r = r.unwrap();
        assert_eq!((r.samples, r.lost, echoed), (200, 0, 210));
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us && r.p99_us <= r.max_us, "{r:?}");
    }

    use std::net::SocketAddr;
}
