//! `bourse demo`: the main job in one command.
//!
//! Starts the appliance in-process on an embedded configuration (socket backend on 127.0.0.1 with free ports,
//! the WAL in a fresh temporary directory in `msync` mode, two firms, two symbols), waits until it takes input,
//! runs the load generator against it at a few offered rates, stops it, prints the latency table and the
//! appliance's summary line, and removes the WAL directory.
//!
//! Cores: the pipeline thread is pinned to the last core and the load generator to the first (on a one-core
//! host neither is pinned); `--pipeline-core` and `--load-core` choose others.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::appliance::{self, Summary};
use crate::config::Config;
use crate::load::{self, FirmLogin, LoadOptions, LoadReport};

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
    /// WAL durability mode: msync (group commit, durable) or none (benchmark only).
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

/// The embedded configuration; `@…@` fields are filled in at run time.
const DEMO_TOML: &str = r#"
[appliance]
name = "@NAME@"

[backend]
kind = "socket"
bind = "127.0.0.1:@ORDER_PORT@"

[market_data]
group = "127.0.0.1:@MD_PORT@"
session = "BOURSEDEMO"
retransmit_bind = "127.0.0.1:@RETX_PORT@"
# The load generator and the tests ask from loopback; nobody else is answered.
retransmit_subscribers = ["127.0.0.1"]

[wal]
dir = "@WAL_DIR@"
mode = "@WAL_MODE@"
segment_bytes = 67108864

[cores]
@PIPELINE_CORE@

"#;

/// A UDP port nobody holds right now (bind port 0, read it, release it).
pub fn free_udp_port() -> anyhow::Result<u16> {
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).context("finding a free UDP port")?;
    Ok(s.local_addr()?.port())
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("bourse: warning: could not remove {}: {e}", self.0.display());
        }
    }
}

/// The demo configuration with fresh ports, `wal_dir`, and the pipeline pinned to `pipeline_core`.
pub fn demo_config(wal_dir: &Path, wal_mode: &str, pipeline_core: Option<usize>) -> anyhow::Result<Config> {
    if !matches!(wal_mode, "msync" | "none" | "dax") {
        bail!("--wal-mode {wal_mode:?}: expected msync, none or dax");
    }
    let dir = wal_dir.to_str().context("the temporary directory's path is not UTF-8")?;
    let text = DEMO_TOML
        .replace("@NAME@", &format!("demo-{}", std::process::id()))
        .replace("@ORDER_PORT@", &free_udp_port()?.to_string())
        .replace("@MD_PORT@", &free_udp_port()?.to_string())
        .replace("@RETX_PORT@", &free_udp_port()?.to_string())
        .replace("@WAL_DIR@", &dir.replace('\\', "\\\\").replace('"', "\\\""))
        .replace("@WAL_MODE@", wal_mode)
        .replace("@PIPELINE_CORE@", &pipeline_core.map(|c| format!("pipeline = {c}")).unwrap_or_default())
        + &crate::config::demo_market_toml(2, "127.0.0.1");
    Config::parse(&text).context("the embedded demo configuration")
}

/// The appliance running on its own thread.
pub struct InProcess {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<Summary>>>,
}

impl InProcess {
    /// Starts `serve` on a thread and waits (at most `timeout`) until it takes input.
    pub fn start(config: &Config, timeout: Duration) -> anyhow::Result<InProcess> {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let handle = {
            let (config, stop, ready) = (config.clone(), Arc::clone(&stop), Arc::clone(&ready));
            std::thread::Builder::new()
                .name("bourse-pipeline".into())
                .spawn(move || appliance::serve(&config, stop, Some(ready)))
                .context("starting the appliance thread")?
        };
        let mut me = InProcess { stop, handle: Some(handle) };
        let deadline = Instant::now() + timeout;
        while !ready.load(Ordering::Acquire) {
            if me.handle.as_ref().is_some_and(|h| h.is_finished()) {
                let err = match me.stop_and_join() {
                    Ok(s) => anyhow::anyhow!("the appliance stopped before it was ready ({s})"),
                    Err(e) => e,
                };
                return Err(err.context("starting the in-process appliance"));
            }
            if Instant::now() >= deadline {
                let _ = me.stop_and_join();
                bail!("the in-process appliance was not ready within {} ms", timeout.as_millis());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(me)
    }

    /// Stops the appliance and returns its summary.
    pub fn stop_and_join(&mut self) -> anyhow::Result<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("the appliance thread panicked"))?,
            None => bail!("the appliance was already stopped"),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.stop_and_join();
        }
    }
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
    })
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let total_s = args.warmup_s + args.duration_s * args.rates.len() as f64;
    if total_s > 25.0 {
        bail!("{} rates × {} s + {} s warm-up is {total_s} s: the demo is meant to finish in under 30 s", args.rates.len(), args.duration_s, args.warmup_s);
    }
    let cores = bourse_nic::backend::pin::available_cores();
    let (pipeline_core, load_core) = if args.no_pin || cores.len() < 2 {
        (None, None)
    } else {
        (
            Some(args.pipeline_core.unwrap_or(cores[cores.len() - 1])),
            Some(args.load_core.unwrap_or(cores[0])),
        )
    };
    let wal = TempDir::new("bourse-demo-wal")?;
    let config = demo_config(wal.path(), &args.wal_mode, pipeline_core)?;
    let mut appliance = InProcess::start(&config, Duration::from_secs(20))?;
    let mut opts = load_options(&config, args.rates.clone(), Duration::from_secs_f64(args.duration_s), args.seed)?;
    opts.warmup = Duration::from_secs_f64(args.warmup_s);
    opts.mix.resting = args.resting;
    opts.hlog = args.hlog.clone();
    opts.progress = args.progress;
    opts.core = load_core;
    // The generator pins the thread it runs on: run it on its own thread so this one stays unpinned.
    let result = std::thread::Builder::new()
        .name("bourse-load".into())
        .spawn(move || load::run_load(&opts))
        .context("starting the load thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"));
    let summary = appliance.stop_and_join();
    let report: LoadReport = result??;
    let summary = summary?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut v: serde_json::Value = serde_json::from_str(&report.to_json())?;
        if let Some(o) = v.as_object_mut() {
            o.insert("appliance".into(), serde_json::Value::String(summary.to_string()));
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "bourse demo: socket backend on {}, WAL {} (removed afterwards), pipeline core {}, load core {}",
            config.backend.bind,
            args.wal_mode,
            pipeline_core.map_or("unpinned".to_string(), |c| c.to_string()),
            load_core.map_or("unpinned".to_string(), |c| c.to_string()),
        )?;
        writeln!(out, "round trip firm → appliance → firm (µs, coordinated-omission corrected):")?;
        report.write_text(&mut out)?;
        writeln!(out, "appliance: {summary}")?;
    }
    drop(wal);
    Ok(())
}
