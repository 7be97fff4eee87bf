//! `bourse stats`: maps a running appliance's stats block read-only and shows it, refreshing in the terminal, or
//! once (`--once`, for scripts and tests), or as one JSON object (`--json`).
//!
//! The block is found by name: `--name`, or the `[appliance] name` of `--config`, or the appliance's default
//! (`bourse`). A block outlives its writer (it is a file in /dev/shm, kept so a crash can still be read), so the
//! table says when the writer's process is gone; `--list` shows every block with its writer's state and
//! `--clean` removes a dead writer's block.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bourse_appliance::config::Config;
use bourse_appliance::obs::statsblock::{stats_path, StatsReader, StatsSnapshot, STATS_DIR};
use bourse_appliance::obs::tsc::monotonic_ns;

/// The appliance's default `[appliance] name`, and so the default block.
pub const DEFAULT_NAME: &str = "bourse";

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Name of the stats block (/dev/shm/bourse-stats-<NAME>); default: the name in --config, else "bourse",
    /// the appliance's default.
    #[arg(long, conflicts_with = "config")]
    pub name: Option<String>,
    /// The appliance's configuration: its `[appliance] name` names the block.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// List every stats block in /dev/shm with its writer's pid and whether it still runs, and exit.
    #[arg(long)]
    pub list: bool,
    /// Remove the block if its writer is no longer running (a running appliance's block is never removed).
    #[arg(long)]
    pub clean: bool,
    /// Print once and exit.
    #[arg(long)]
    pub once: bool,
    /// Print one JSON object and exit.
    #[arg(long)]
    pub json: bool,
    /// Refresh period when not --once.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// Whether process `pid` exists (its /proc entry does). A reused pid would read as alive; the heartbeat's age
/// tells that case apart.
pub fn process_alive(pid: u64) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn block_name(args: &StatsArgs) -> anyhow::Result<String> {
    if let Some(n) = &args.name {
        return Ok(n.clone());
    }
    match &args.config {
        Some(path) => Ok(Config::load(path)?.appliance.name),
        None => Ok(DEFAULT_NAME.to_string()),
    }
}

/// `--list`: every block file, its writer and whether that writer runs.
fn list(out: &mut dyn Write) -> anyhow::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(STATS_DIR)
        .with_context(|| format!("listing {STATS_DIR}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("bourse-stats-").map(str::to_string))
        .collect();
    names.sort();
    writeln!(out, "{:<32} {:>10}  writer", "name", "pid")?;
    for name in names {
        match StatsReader::open(&name) {
            Ok(r) => {
                let pid = r.block().writer_pid();
                let state = if process_alive(pid) { "running" } else { "not running (remove with --clean)" };
                writeln!(out, "{name:<32} {pid:>10}  {state}")?;
            }
            Err(e) => writeln!(out, "{name:<32} {:>10}  unreadable: {e}", "-")?,
        }
    }
    Ok(())
}

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    if args.list {
        return list(&mut stdout.lock());
    }
    let name = block_name(&args)?;
    let reader = StatsReader::open(&name).with_context(|| {
        format!(
            "no readable stats block {name:?}: is the appliance running? (give --name or --config;              `bourse stats --list` shows the blocks there are)"
        )
    })?;
    let pid = reader.block().writer_pid();
    let alive = process_alive(pid);
    if args.clean {
        if alive {
            anyhow::bail!("{}: its writer, pid {pid}, is running; not removed", reader.path().display());
        }
        let path = stats_path(&name)?;
        drop(reader);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        writeln!(stdout.lock(), "removed {} (its writer, pid {pid}, was not running)", path.display())?;
        return Ok(());
    }
    if args.json {
        let snap = reader.block().snapshot();
        let mut value = serde_json::to_value(&snap)?;
        value["heartbeat_age_ns"] = monotonic_ns().saturating_sub(snap.heartbeat_ns).into();
        value["name"] = name.clone().into();
        value["writer_alive"] = alive.into();
        writeln!(stdout.lock(), "{value}")?;
        return Ok(());
    }
    if args.once {
        let snap = reader.block().snapshot();
        write_table(&mut stdout.lock(), &name, &snap, monotonic_ns())?;
        return Ok(());
    }
    loop {
        let snap = reader.block().snapshot();
        let mut out = stdout.lock();
        // Clear the screen and home the cursor, then redraw the whole table.
        write!(out, "\x1b[2J\x1b[H")?;
        write_table(&mut out, &name, &snap, monotonic_ns())?;
        out.flush()?;
        drop(out);
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(10)));
    }
}

/// The human table; `now_ns` is CLOCK_MONOTONIC now, for the heartbeat's age.
pub fn write_table(
    out: &mut dyn Write,
    name: &str,
    s: &StatsSnapshot,
    now_ns: u64,
) -> std::io::Result<()> {
    let age_ms = now_ns.saturating_sub(s.heartbeat_ns) as f64 / 1e6;
    writeln!(
        out,
        "bourse stats {name}   pid {}   backend {}   wal {}",
        s.writer_pid, s.backend, s.wal_mode
    )?;
    let alive = process_alive(s.writer_pid);
    let state = if !alive {
        "   (WRITER NOT RUNNING: these are its last values; `bourse stats --clean` removes the block)"
    } else if age_ms > 2000.0 {
        "   (STALE: the writer runs but has not updated the block)"
    } else {
        ""
    };
    writeln!(out, "heartbeat age {age_ms:.1} ms{state}")?;
    writeln!(out)?;
    writeln!(out, "{:<28} {:>12}", "rx", s.rx_total)?;
    writeln!(out, "{:<28} {:>12}", "tx", s.tx_total)?;
    writeln!(out, "{:<28} {:>12}", "orders resting", s.orders_resting)?;
    writeln!(out, "{:<28} {:>12}", "commit seq", s.commit_seq)?;
    writeln!(out, "{:<28} {:>12}", "commit backlog (inputs)", s.commit_backlog)?;
    for c in &s.counters {
        writeln!(out, "{:<28} {:>12}", c.name, c.count)?;
    }
    for d in &s.drops {
        writeln!(out, "{:<28} {:>12}", format!("drop {}", d.reason), d.count)?;
    }
    for r in &s.rejects {
        writeln!(
            out,
            "{:<28} {:>12}",
            format!("reject {}", r.reason),
            r.count
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "stage (wire inputs)", "since start", "interval", "p50 us", "p99 us", "p99.9 us"
    )?;
    for st in &s.stages {
        writeln!(
            out,
            "{:<20} {:>12} {:>10} {:>10.3} {:>10.3} {:>10.3}",
            st.stage,
            st.count,
            st.interval_count,
            st.p50_ns as f64 / 1e3,
            st.p99_ns as f64 / 1e3,
            st.p999_ns as f64 / 1e3
        )?;
    }
    writeln!(out, "(quantiles over the last interval only; \"since start\" counts every sample measured)")?;
    Ok(())
}
