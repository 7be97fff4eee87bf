//! `bourse demo`: the main job in one command.
//!
//! By default it runs the product: a primary and a hot standby as two `bourse` processes on 127.0.0.1 ([`pair`]),
//! the WAL mirrored over TCP, the primary acknowledging by `ack = "replicated"` (an output leaves once the
//! standby has landed its input in memory; both nodes msync behind it). `--single` runs one appliance in-process
//! instead, acknowledging after its own msync. Either way each node gets the embedded configuration (socket
//! backend with free ports, the WAL in a fresh temporary directory, two firms, two symbols); the load generator
//! drives the primary at a few offered rates, and the demo prints the latency table, the rule that produced it,
//! and each node's summary, then removes the WAL directories.
//!
//! Cores: the primary's pipeline thread is pinned to the last core and the load generator to the first (on a
//! one-core host neither is pinned); `--pipeline-core` and `--load-core` choose others. The standby is unpinned.

pub mod pair;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bourse_appliance::config::Config;

use crate::load::{self, FirmLogin, LoadOptions, LoadReport};

// The embedded configuration and the in-process appliance live with the appliance (its own unit tests start one);
// the demo, the integration tests and the benchmarks reach them here, next to `load_options`.
pub use bourse_appliance::demo::{demo_config, demo_toml, free_udp_port, InProcess, TempDir};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Offered rates, messages per second, one table row each.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000.0, 50_000.0, 100_000.0])]
    pub rates: Vec<f64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 2.0)]
    pub duration_s: f64,
    /// Seconds at the first rate before measuring (fills the book).
    #[arg(long, default_value_t = 0.5)]
    pub warmup_s: f64,
    /// Print exactly one JSON object (the load report plus the appliance summary).
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Core of the appliance's pipeline thread (default: the last core).
    #[arg(long)]
    pub pipeline_core: Option<usize>,
    /// Core of the load generator (default: the first core).
    #[arg(long)]
    pub load_core: Option<usize>,
    /// Pin nothing (for hosts shared with other work).
    #[arg(long)]
    pub no_pin: bool,
    /// One appliance, acknowledging after its own msync (group commit), instead of the primary and standby pair.
    #[arg(long)]
    pub single: bool,
    /// The pair's acknowledgement rule: replicated (the standby landed the input in memory), durable (the standby
    /// synced it) or local (the primary synced it). Ignored with --single.
    #[arg(long, default_value = "replicated")]
    pub ack: String,
    /// WAL durability mode of every node: msync (group commit, durable) or none (benchmark only).
    #[arg(long, default_value = "msync")]
    pub wal_mode: String,
    /// Resting orders the generator keeps.
    #[arg(long, default_value_t = 1_000)]
    pub resting: usize,
    /// Write the generator's latency histograms here (.hlog).
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Print a progress line per rate on stderr.
    #[arg(long)]
    pub progress: bool,
}

/// Load options for `config`'s firms, symbols and address.
pub fn load_options(config: &Config, rates: Vec<f64>, duration: Duration, seed: u64) -> anyhow::Result<LoadOptions> {
    let firms: Vec<FirmLogin> =
        config.firms.iter().map(|f| FirmLogin { username: f.username.clone(), password: f.password.clone() }).collect();
    let usernames: Vec<String> = firms.iter().map(|f| f.username.clone()).collect();
    Ok(LoadOptions {
        targets: vec![config.backend.bind],
        firms,
        bind_ip: Ipv4Addr::LOCALHOST,
        rates,
        closed_loop: false,
        duration,
        warmup: Duration::ZERO,
        seed,
        mix: load::mix_from_config(config, &usernames, &[], None)?,
        failover: Duration::from_secs(1),
        login_timeout: Duration::from_secs(2),
        drain: Duration::from_secs(1),
        hlog: None,
        md: Some(config.market_data.group),
        progress: false,
        core: None,
        stop: None,
    })
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let total_s = args.warmup_s + args.duration_s * args.rates.len() as f64;
    if total_s > 25.0 {
        bail!("{} rates × {} s + {} s warm-up is {total_s} s: the demo is meant to finish in under 30 s", args.rates.len(), args.duration_s, args.warmup_s);
    }
    let (pipeline_core, load_core) = cores(&args);
    let dir = TempDir::new("bourse-demo-wal")?;
    let appliance = Appliance::start(&args, dir.path(), pipeline_core, load_core)?;
    let config = appliance.config.clone();
    let result = drive(&args, &config, load_core);
    let stopped = appliance.stop();
    let report = result?;
    let run = stopped?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut v: serde_json::Value = serde_json::from_str(&report.to_json())?;
        if let Some(o) = v.as_object_mut() {
            o.insert("mode".into(), (if args.single { "single" } else { "pair" }).into());
            o.insert("ack".into(), run.ack.clone().into());
            o.insert("appliance".into(), run.primary.clone().into());
            o.insert("standby".into(), run.standby.clone().map_or(serde_json::Value::Null, Into::into));
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "bourse demo: {} on {}, pipeline core {}, load core {}",
            run.setup,
            config.backend.bind,
            pipeline_core.map_or("unpinned".to_string(), |c| c.to_string()),
            load_core.map_or("unpinned".to_string(), |c| c.to_string()),
        )?;
        writeln!(out, "acknowledgement: {}", run.ack)?;
        report.write_text(&mut out)?;
        writeln!(out, "primary: {}", run.primary)?;
        if let Some(s) = &run.standby {
            writeln!(out, "standby: {s}")?;
        }
    }
    drop(dir);
    Ok(())
}

/// The pipeline's core and the load generator's: the last core and the first, unless `--no-pin` or a one-core
/// host (then neither is pinned); `--pipeline-core` and `--load-core` choose others.
pub fn cores(args: &DemoArgs) -> (Option<usize>, Option<usize>) {
    let cores = bourse_nic::backend::pin::available_cores();
    if args.no_pin || cores.len() < 2 {
        return (None, None);
    }
    (Some(args.pipeline_core.unwrap_or(cores[cores.len() - 1])), Some(args.load_core.unwrap_or(cores[0])))
}

/// What the demo loads, as `args` ask: one appliance in this process (`--single`) or the primary and standby pair.
pub struct Appliance {
    /// The configuration the load generator is pointed at (the primary's).
    pub config: Config,
    /// That configuration as a file, for other programs following the same journal (`bourse ledger --config`).
    pub config_path: PathBuf,
    nodes: Nodes,
    setup: String,
    ack: String,
}

enum Nodes {
    Single(InProcess),
    Pair(Box<pair::Pair>),
}

/// How the run was set up and what its nodes said, for the table's header and footer.
pub struct Run {
    pub setup: String,
    pub ack: String,
    pub primary: String,
    pub standby: Option<String>,
}

impl Appliance {
    /// Starts it in `dir` (its configuration files and WAL directories go there), ready for input.
    pub fn start(
        args: &DemoArgs,
        dir: &Path,
        pipeline_core: Option<usize>,
        load_core: Option<usize>,
    ) -> anyhow::Result<Appliance> {
        if !matches!(args.ack.as_str(), "replicated" | "durable" | "local") {
            bail!("--ack {:?}: expected replicated, durable or local", args.ack);
        }
        if args.single {
            let name = format!("demo-{}", std::process::id());
            let text = demo_toml(&name, &dir.join("wal"), &args.wal_mode, pipeline_core, None)?;
            let config = Config::parse(&text).context("the embedded demo configuration")?;
            let config_path = dir.join("appliance.toml");
            std::fs::write(&config_path, &text).with_context(|| format!("writing {}", config_path.display()))?;
            let appliance = InProcess::start(&config, Duration::from_secs(20))?;
            Ok(Appliance {
                config,
                config_path,
                nodes: Nodes::Single(appliance),
                setup: format!("one appliance in this process, WAL {} (removed afterwards)", args.wal_mode),
                ack: "acknowledged after the local WAL's group commit (no standby)".to_string(),
            })
        } else {
            let pair = pair::Pair::start(dir, &args.wal_mode, &args.ack, pipeline_core, load_core)?;
            Ok(Appliance {
                config: pair.primary_cfg.clone(),
                config_path: pair.primary_config_path.clone(),
                setup: format!(
                    "primary and hot standby as two processes, WAL {} on each (removed afterwards), mirror over TCP",
                    args.wal_mode
                ),
                ack: pair.ack_line.clone(),
                nodes: Nodes::Pair(Box::new(pair)),
            })
        }
    }

    /// Stops every node and returns what each said.
    pub fn stop(self) -> anyhow::Result<Run> {
        let (primary, standby) = match self.nodes {
            Nodes::Single(mut appliance) => (appliance.stop_and_join()?.to_string(), None),
            Nodes::Pair(pair) => {
                let stopped = pair.stop()?;
                (stopped.primary, Some(stopped.standby))
            }
        };
        Ok(Run { setup: self.setup, ack: self.ack, primary, standby })
    }
}

/// The load generator against `config`'s order entry, on its own thread (it pins the thread it runs on, and this
/// one stays unpinned).
fn drive(args: &DemoArgs, config: &Config, load_core: Option<usize>) -> anyhow::Result<LoadReport> {
    spawn_load(args, config, load_core)?.join().map_err(|_| anyhow::anyhow!("the load generator panicked"))?
}

/// Starts the load generator as [`drive`] runs it, and returns without waiting for it.
pub fn spawn_load(
    args: &DemoArgs,
    config: &Config,
    load_core: Option<usize>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<LoadReport>>> {
    let mut opts = load_options(config, args.rates.clone(), Duration::from_secs_f64(args.duration_s), args.seed)?;
    opts.warmup = Duration::from_secs_f64(args.warmup_s);
    opts.mix.resting = args.resting;
    opts.hlog = args.hlog.clone();
    opts.progress = args.progress;
    opts.core = load_core;
    std::thread::Builder::new()
        .name("bourse-load".into())
        .spawn(move || load::run_load(&opts))
        .context("starting the load thread")
}
