//! `bourse bench failover`: how long from the primary's death to the first acknowledgement from the standby.
//!
//! Each run starts a fresh pair as child processes of this binary on loopback — `bourse standby` and
//! `bourse run` with `ack = "mirrored"` — loads the primary briefly so the standby has a book to take over, and
//! kills the primary with SIGKILL. A firm standing by logs in at the standby as soon as it answers and enters an
//! order: the figure is kill → that order's acknowledgement. The standby's `SERVING` time (its backend open and
//! taking input) is reported too.
//!
//! With `--witness` an etcd member is started for each run and both nodes name it (README, "Witness"): the
//! standby serves only after winning the record's compare-and-swap, whose round trip is reported on its own.
//! `--kill standby` kills the standby instead: the figure is then the pause a firm logged in at the primary sees
//! — kill → the acknowledgement of an order entered at the kill, which the primary can release only once the
//! witness removed the standby from the members (without a witness it never does: the run fails after 10 s).
//!
//! The time is `promote_after_ms` (the silence the standby waits for) plus promotion — handing the follower's
//! engine, WAL and market-data state to the appliance, the next segment (a renamed spare), the backend — plus the
//! login and the order's durability on the promoted node (its WAL mode's commit).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use bourse_appliance::config::Config;
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
    /// Start an etcd member per run and run the pair with it as witness.
    #[arg(long)]
    pub witness: bool,
    /// Which node to kill: `primary` (failover) or `standby` (the primary's pause before acknowledging alone).
    #[arg(long, default_value = "primary", value_parser = ["primary", "standby"])]
    pub kill: String,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub runs: u32,
    pub promote_after_ms: u64,
    /// Median of `serving_ms - promote_after_ms`: handing the journal over, the new segment, the backend.
    pub promotion_work_p50_ms: f64,
    /// Kill → first acknowledgement from the promoted standby (a firm logs in there and enters an order), per run.
    pub failover_ms: Vec<f64>,
    pub failover_p50_ms: f64,
    pub failover_max_ms: f64,
    /// Kill → the promoted standby taking input, per run (`--kill primary`).
    pub serving_ms: Vec<f64>,
    pub witness: bool,
    /// `primary` or `standby`.
    pub kill: String,
    /// The witness's compare-and-swap round trip per run, as the winning node timed it (with `--witness`).
    pub cas_ms: Vec<f64>,
    pub cas_p50_ms: Option<f64>,
}

fn witness_toml(etcd: Option<&crate::etcd::EtcdMember>, run: u32, node: &str, peer: &str) -> String {
    etcd.map(|e| {
        format!(
            "[witness]\nendpoints = [\"{}\"]\nprefix = \"/bourse-bench/{}-{run}\"\nnode = \"{node}\"\npeer = \"{peer}\"\n",
            e.client,
            std::process::id()
        )
    })
    .unwrap_or_default()
}

/// The number just before `suffix` in `line` ("… (CAS 2.8 ms)" → 2.8 with suffix " ms)").
fn number_before(line: &str, suffix: &str) -> Option<f64> {
    line.split(suffix).next()?.rsplit(' ').next()?.parse().ok()
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
    ) + &bourse_appliance::config::demo_market_toml(2, "127.0.0.1"))
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

fn one_run(args: &FailoverArgs, run: u32) -> anyhow::Result<Times> {
    let tmp = TempDir::new("bourse-bench-failover")?;
    let etcd = if args.witness { Some(crate::etcd::EtcdMember::start(&format!("bench-{run}"))?) } else { None };
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let pid = std::process::id();
    let p = args.promote_after_ms;
    let primary_text = node_toml(
        &format!("bfp-{pid}-{run}"),
        &tmp.path().join("primary"),
        &args.wal_mode,
        &format!(
            "role = \"primary\"\nstandby_addr = \"127.0.0.1:{port}\"\nack = \"mirrored\"\npromote_after_ms = {p}\n{}",
            witness_toml(etcd.as_ref(), run, "a", "b")
        ),
    )?;
    let standby_text = node_toml(
        &format!("bfs-{pid}-{run}"),
        &tmp.path().join("standby"),
        &args.wal_mode,
        &format!(
            "role = \"standby\"\nlisten = \"127.0.0.1:{port}\"\npromote_after_ms = {p}\n{}",
            witness_toml(etcd.as_ref(), run, "b", "a")
        ),
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
    // A firm stands ready to fail over: from the kill on it tries to log in at the standby, then enters one
    // order; the run's figure is the kill → that order's acknowledgement.
    let next_user_ref = r.next_user_ref;
    if args.kill == "standby" {
        // Logged in at the primary beforehand: the order entered at the kill waits for the pair's decision.
        let mut firm = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, primary_cfg.backend.bind)?;
        firm.login(Duration::from_secs(5)).context("logging in at the primary")?;
        standby.child.kill().context("killing the standby")?;
        let killed = Instant::now();
        let _ = standby.child.wait();
        let paused = enter_and_wait(&mut firm, next_user_ref, killed)?;
        let cas_ms = if args.witness {
            let line = primary.wait_for("acknowledging alone", Duration::from_secs(10))?;
            number_before(&line, " ms)")
        } else {
            None
        };
        return Ok(Times { serving_ms: f64::NAN, first_ack_ms: ms(paused), cas_ms });
    }
    let target = standby_cfg.backend.bind;
    primary.child.kill().context("killing the primary")?;
    let killed = Instant::now();
    let _ = primary.child.wait();
    let firm = std::thread::spawn(move || first_ack(target, next_user_ref, killed));
    let cas_ms = if args.witness {
        let line = standby.wait_for("won the promotion", Duration::from_secs(10))?;
        number_before(&line, " ms)")
    } else {
        None
    };
    let closed = standby.wait_for("handing the journal over", Duration::from_secs(10))?;
    let startup = standby.wait_for("start-up:", Duration::from_secs(10))?;
    standby.wait_for("SERVING on", Duration::from_secs(10))?;
    let serving = killed.elapsed();
    let acked = firm.join().map_err(|_| anyhow::anyhow!("the firm thread panicked"))??;
    if std::env::var_os("BOURSE_FAILOVER_TRACE").is_some() {
        eprintln!("run {run}: serving after {:.1} ms, first ack after {:.1} ms\n       {closed}\n       {startup}", ms(serving), ms(acked));
    }
    Ok(Times { serving_ms: ms(serving), first_ack_ms: ms(acked), cas_ms })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Times {
    serving_ms: f64,
    first_ack_ms: f64,
    cas_ms: Option<f64>,
}

/// Logs in at `target` as soon as it answers, enters one resting order and returns the time from `since` to its
/// acknowledgement.
fn first_ack(target: std::net::SocketAddrV4, user_ref: u32, since: Instant) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(10);
    let mut firm = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, target)?;
    // Short attempts: a login sent before the standby serves is lost, and the next one should not wait long.
    while firm.login(Duration::from_millis(1)).is_err() {
        if Instant::now() >= deadline {
            bail!("the promoted standby did not accept a login within 10 s");
        }
    }
    enter_and_wait(&mut firm, user_ref, since)
}

/// Enters one resting order on a logged-in `firm` and returns the time from `since` to its acknowledgement.
fn enter_and_wait(firm: &mut FirmConn, user_ref: u32, since: Instant) -> anyhow::Result<Duration> {
    use crate::load::mix::Op;
    let deadline = Instant::now() + Duration::from_secs(10);
    let op = Op::Enter { user_ref, side: bourse_engine::Side::Buy, qty: 1, symbol: 0, price: 1_000_000, ioc: false };
    let symbol = bourse_nic::wire::alpha::Alpha::new("AAPL").context("symbol name")?;
    firm.send(&op, &symbol, 1, 0, since);
    let mut buf = [0u8; 2048];
    loop {
        let mut answered = false;
        firm.poll(&mut buf, 8, since, &mut |_| answered = true);
        if answered {
            return Ok(since.elapsed());
        }
        if Instant::now() >= deadline {
            bail!("the order was not acknowledged within 10 s");
        }
        std::hint::spin_loop();
    }
}

pub fn measure(args: &FailoverArgs) -> anyhow::Result<FailoverReport> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut times = Vec::with_capacity(args.runs as usize);
    let mut serving = Vec::with_capacity(args.runs as usize);
    let mut cas = Vec::new();
    if args.witness && !crate::etcd::available() {
        bail!("--witness needs the etcd binary (ci/setup.sh installs etcd-server)");
    }
    for run in 0..args.runs {
        let t = one_run(args, run).with_context(|| format!("failover run {}", run + 1))?;
        times.push(t.first_ack_ms);
        serving.push(t.serving_ms);
        cas.extend(t.cas_ms);
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[s.len() - 1])
    };
    let (p50, max) = median(&times);
    let (serving_p50, _) = median(&serving);
    let cas_p50_ms = (!cas.is_empty()).then(|| median(&cas).0);
    Ok(FailoverReport {
        runs: args.runs,
        promote_after_ms: args.promote_after_ms,
        failover_p50_ms: p50,
        promotion_work_p50_ms: serving_p50 - args.promote_after_ms as f64,
        failover_max_ms: max,
        failover_ms: times,
        serving_ms: serving,
        witness: args.witness,
        kill: args.kill.clone(),
        cas_ms: cas,
        cas_p50_ms,
    })
}

pub fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let r = measure(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else if r.kill == "standby" {
        println!(
            "standby killed (kill -9 → the primary acknowledging an order entered then){}, lost after {} ms: p50 \
             {:.1} ms, max {:.1} ms over {} runs: {:?}",
            if r.witness { ", witness etcd" } else { "" },
            r.promote_after_ms,
            r.failover_p50_ms,
            r.failover_max_ms,
            r.runs,
            r.failover_ms
        );
    } else {
        println!(
            "failover (kill -9 → first ack from the promoted standby){}, promote after {} ms: p50 {:.1} ms, max {:.1} \
             ms over {} runs: {:?}; serving after {:?} ms",
            if r.witness { ", witness etcd" } else { "" },
            r.promote_after_ms,
            r.failover_p50_ms,
            r.failover_max_ms,
            r.runs,
            r.failover_ms,
            r.serving_ms
        );
    }
    if let Some(cas) = r.cas_p50_ms {
        println!("witness compare-and-swap: p50 {cas:.1} ms: {:?}", r.cas_ms);
    }
    Ok(())
}
