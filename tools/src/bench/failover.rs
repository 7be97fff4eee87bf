//! `bourse bench failover`: how long from the primary's death to the standby serving.
//!
//! Each run starts a fresh pair as child processes of this binary on loopback — `bourse standby` and
//! `bourse run` with `ack = "mirrored"` — loads the primary briefly so the standby has a book to take over, kills
//! the primary with SIGKILL, and times until the standby says it takes input (its `SERVING` line, printed when the
//! promoted appliance's backend is open). A firm then logs in at the standby's address to prove it serves.
//!
//! The time is `promote_after_ms` (the silence the standby waits for) plus promotion: closing its WAL, recovery
//! from that WAL (replaying what it followed), creating the next segment, and opening the backend.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::config::Config;
use crate::demo::{free_udp_port, load_options, TempDir};
use crate::load::client::FirmConn;
use crate::load::run_load;

#[derive(clap::Args, Debug)]
pub struct FailoverArgs {
    /// Kill-and-promote runs.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// The standby's promotion timeout for these runs (the configuration default is 5 ms; shared 2-vCPU hosts
    /// promote spuriously at that value, and at 50 ms, while other work runs). The report subtracts nothing: the
    /// promotion work itself is `failover_ms - promote_after_ms`.
    #[arg(long, default_value_t = 200)]
    pub promote_after_ms: u64,
    /// WAL mode of both nodes.
    #[arg(long, default_value = "msync")]
    pub wal_mode: String,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub runs: u32,
    pub promote_after_ms: u64,
    /// Median of `failover_ms - promote_after_ms`: closing the WAL, recovery, the new segment, the backend.
    pub promotion_work_p50_ms: f64,
    /// Kill → standby serving, per run.
    pub failover_ms: Vec<f64>,
    pub failover_p50_ms: f64,
    pub failover_max_ms: f64,
}

fn node_toml(name: &str, wal: &Path, mode: &str, mirror: &str) -> anyhow::Result<String> {
    Ok(format!(
        r#"
[appliance]
name = "{name}"
[backend]
kind = "socket"
bind = "127.0.0.1:{order}"
[market_data]
group = "127.0.0.1:{md}"
[wal]
dir = "{wal}"
mode = "{mode}"
segment_bytes = 16777216
[mirror]
{mirror}
"#,
        order = free_udp_port()?,
        md = free_udp_port()?,
        wal = wal.to_str().context("temporary path is not UTF-8")?,
    ) + &crate::config::demo_market_toml(2, "127.0.0.1"))
}

/// A child `bourse` whose stderr lines arrive on a channel.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Node {
    fn spawn(sub: &str, config: &Path) -> anyhow::Result<Node> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let mut child = Command::new(exe)
            .arg(sub)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting bourse {sub}"))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Node { child, lines: rx })
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(_) => bail!("no {needle:?} from the child within {} ms", timeout.as_millis()),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one_run(args: &FailoverArgs, run: u32) -> anyhow::Result<f64> {
    let tmp = TempDir::new("bourse-bench-failover")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let pid = std::process::id();
    let p = args.promote_after_ms;
    let primary_text = node_toml(
        &format!("bfp-{pid}-{run}"),
        &tmp.path().join("primary"),
        &args.wal_mode,
        &format!("role = \"primary\"\nstandby_addr = \"127.0.0.1:{port}\"\nack = \"mirrored\"\npromote_after_ms = {p}"),
    )?;
    let standby_text = node_toml(
        &format!("bfs-{pid}-{run}"),
        &tmp.path().join("standby"),
        &args.wal_mode,
        &format!("role = \"standby\"\nlisten = \"127.0.0.1:{port}\"\npromote_after_ms = {p}"),
    )?;
    let (pp, sp) = (tmp.path().join("primary.toml"), tmp.path().join("standby.toml"));
    std::fs::write(&pp, &primary_text)?;
    std::fs::write(&sp, &standby_text)?;
    let (primary_cfg, standby_cfg) = (Config::parse(&primary_text)?, Config::parse(&standby_text)?);
    let mut standby = Node::spawn("standby", &sp)?;
    standby.wait_for("listening for the primary", Duration::from_secs(10))?;
    let mut primary = Node::spawn("run", &pp)?;
    standby.wait_for("caught up with the primary", Duration::from_secs(10))?;
    let mut opts = load_options(&primary_cfg, vec![2_000.0], Duration::from_millis(300), u64::from(run) + 1)?;
    opts.md = None;
    opts.mix.resting = 100;
    let r = run_load(&opts).context("loading the primary")?;
    if r.lost > 0 {
        bail!("the primary lost {} of {} orders before the kill (a spurious promotion?)", r.lost, r.sent);
    }
    primary.child.kill().context("killing the primary")?;
    let killed = Instant::now();
    let _ = primary.child.wait();
    let closed = standby.wait_for("handing the journal over", Duration::from_secs(10))?;
    let startup = standby.wait_for("start-up:", Duration::from_secs(10))?;
    standby.wait_for("SERVING on", Duration::from_secs(10))?;
    let failover = killed.elapsed();
    if std::env::var_os("BOURSE_FAILOVER_TRACE").is_some() {
        eprintln!("run {run}: {closed}\n       {startup}");
    }
    let mut firm = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, standby_cfg.backend.bind)?;
    firm.login(Duration::from_secs(2)).context("logging in at the promoted standby")?;
    Ok(failover.as_secs_f64() * 1e3)
}

pub fn measure(args: &FailoverArgs) -> anyhow::Result<FailoverReport> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut times = Vec::with_capacity(args.runs as usize);
    for run in 0..args.runs {
        times.push(one_run(args, run).with_context(|| format!("failover run {}", run + 1))?);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(FailoverReport {
        runs: args.runs,
        promote_after_ms: args.promote_after_ms,
        failover_p50_ms: sorted[sorted.len() / 2],
        promotion_work_p50_ms: sorted[sorted.len() / 2] - args.promote_after_ms as f64,
        failover_max_ms: sorted[sorted.len() - 1],
        failover_ms: times,
    })
}

pub fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let r = measure(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "failover (kill -9 → standby serving), promote after {} ms: p50 {:.1} ms, max {:.1} ms over {} runs: {:?}",
            r.promote_after_ms, r.failover_p50_ms, r.failover_max_ms, r.runs, r.failover_ms
        );
    }
    Ok(())
}
