//! `bourse stats`: maps a running appliance's stats block read-only and shows it, refreshing in the terminal, or
//! once (`--once`, for scripts and tests), or as one JSON object (`--json`).

use std::io::Write;
use std::time::Duration;

use bourse_appliance::obs::statsblock::{StatsReader, StatsSnapshot};
use bourse_appliance::obs::tsc::monotonic_ns;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Name of the stats block (/dev/shm/bourse-stats-<NAME>).
    #[arg(long, default_value = "default")]
    pub name: String,
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

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let reader = StatsReader::open(&args.name)?;
    let stdout = std::io::stdout();
    if args.json {
        let snap = reader.block().snapshot();
        let mut value = serde_json::to_value(&snap)?;
        value["heartbeat_age_ns"] = monotonic_ns().saturating_sub(snap.heartbeat_ns).into();
        value["name"] = args.name.clone().into();
        writeln!(stdout.lock(), "{value}")?;
        return Ok(());
    }
    if args.once {
        let snap = reader.block().snapshot();
        write_table(&mut stdout.lock(), &args.name, &snap, monotonic_ns())?;
        return Ok(());
    }
    loop {
        let snap = reader.block().snapshot();
        let mut out = stdout.lock();
        // Clear the screen and home the cursor, then redraw the whole table.
        write!(out, "\x1b[2J\x1b[H")?;
        write_table(&mut out, &args.name, &snap, monotonic_ns())?;
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
    writeln!(
        out,
        "heartbeat age {age_ms:.1} ms{}",
        if age_ms > 2000.0 { "   (STALE)" } else { "" }
    )?;
    writeln!(out)?;
    writeln!(out, "{:<24} {:>16}", "rx", s.rx_total)?;
    writeln!(out, "{:<24} {:>16}", "tx", s.tx_total)?;
    writeln!(out, "{:<24} {:>16}", "orders resting", s.orders_resting)?;
    writeln!(out, "{:<24} {:>16}", "commit seq", s.commit_seq)?;
    writeln!(
        out,
        "{:<24} {:>16.3}",
        "commit lag (us)",
        s.commit_lag_ns as f64 / 1e3
    )?;
    for c in &s.counters {
        writeln!(out, "{:<24} {:>16}", c.name, c.count)?;
    }
    for d in &s.drops {
        writeln!(out, "{:<24} {:>16}", format!("drop {}", d.reason), d.count)?;
    }
    for r in &s.rejects {
        writeln!(
            out,
            "{:<24} {:>16}",
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
