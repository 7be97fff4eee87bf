//! `bourse bench ledger --lag`: how far the books of record trail the journal while the demo runs. Without
//! `--lag`, `bourse bench ledger` is the ingest throughput benchmark of [`bourse_ledger::bench`].
//!
//! The appliance is started as `bourse demo` starts it ([`crate::demo::Appliance`]: the primary and hot standby
//! pair by default, `--single` for one in this process), and `bourse ledger ingest --follow` runs as a child
//! process on the primary's WAL directory, as an operator would run it, off the pipeline's core. Once the ledger
//! has booked the appliance's start-up inputs, the demo's load generator offers `--rate` messages per second for
//! `--duration-s`; the run ends when the ledger has booked everything committed when the load stopped.
//!
//! **What is measured, and how.** For each ledger transaction, lag = the time it committed − the time the
//! appliance committed the journal position it covers (the last input it books). Both ends are read from outside
//! the two programs, on the wall clock:
//!
//! - the ledger's commit: this process polls the ledger's journal position every `--sample-us`, in the ledger's own
//!   database (the row each transaction moves together with what it books, so a position seen is a transaction
//!   committed), and stamps each change with the wall clock. It is seen late by less than one sample interval;
//!   two transactions committed within one interval are seen as one, the later (`commits_seen` against the
//!   ledger's own count, `batches`);
//! - the appliance's commit: the sequencer timestamp of input P, read from the WAL record itself (this process
//!   follows the journal with its own [`Tail`]). The sequencer clock is the wall clock read at the appliance's start
//!   advanced by the TSC (calibrated over 50 ms against CLOCK_MONOTONIC), so over a run it stays within a fraction
//!   of a millisecond of this process's wall clock, unless the wall clock is stepped meanwhile. An input is
//!   committed after it is sequenced (the group commit's msync and, in the pair, the standby landing it), so this
//!   end is early by the journal's commit latency: the lag is overstated by it, never understated.
//!
//! The commit index (`commit seq` in the stats block) is not the clock: the pipeline refreshes it only every 4096
//! polls of its loop, and in a trial most ledger transactions (262 of 350, at 5,000 msg/s) were seen before it
//! showed their position, so it would date commits late and understate the lag. Part of that is real: the ledger
//! reads a record once its `crc|length` word is published, which can be before the appliance's commit covers it.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use bourse_ledger::schema::journal_position;
use bourse_ledger::store::Store;
use bourse_persist::wal::Tail;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::demo::{self, Appliance, DemoArgs, TempDir};
use crate::load::LoadReport;
use crate::node::{keep_off, Node};

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub ingest: bourse_ledger::bench::LedgerBenchArgs,
    /// Measure instead how far `bourse ledger ingest --follow` trails the appliance's commit under the demo's load
    /// (into SQLite beside the WAL, or into --postgres, which must name an empty database).
    #[arg(long)]
    pub lag: bool,
    /// With --lag: offered rate, messages per second.
    #[arg(long, default_value_t = 50_000.0, requires = "lag")]
    pub rate: f64,
    /// With --lag: seconds of load.
    #[arg(long, default_value_t = 20.0, requires = "lag")]
    pub duration_s: f64,
    /// With --lag: one appliance in this process instead of the demo's primary and standby pair.
    #[arg(long, requires = "lag")]
    pub single: bool,
    /// With --lag: pin nothing (for hosts shared with other work).
    #[arg(long, requires = "lag")]
    pub no_pin: bool,
    /// With --lag: the load generator's seed.
    #[arg(long, default_value_t = 1, requires = "lag")]
    pub seed: u64,
    /// With --lag: microseconds between samples of the ledger's journal position.
    #[arg(long, default_value_t = 1_000, requires = "lag")]
    pub sample_us: u64,
}

/// How long the ledger may take to book the start-up inputs, and to catch up once the load stops.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// The ledger stops after this long without a new record, once the appliance has stopped. Far above any pause of
/// the appliance under load (a rotation waiting for its segment to be prepared takes milliseconds to a few hundred).
const LEDGER_IDLE_EXIT_MS: u64 = 3_000;

#[derive(Debug, Serialize)]
pub struct LagReport {
    pub bench: &'static str,
    pub backend: &'static str,
    pub mode: &'static str,
    pub rate: f64,
    pub duration_s: f64,
    pub batch_records: usize,
    pub sample_us: u64,
    /// Ledger transactions seen by the sampler during the run, each one lag sample.
    pub commits_seen: u64,
    /// Transactions the ledger reports it committed in all (start-up and the appliance's stop included).
    pub batches: u64,
    pub lag_ms_p50: f64,
    pub lag_ms_p99: f64,
    pub lag_ms_max: f64,
    /// Trades and journal records the ledger booked between the start of the load and catching up.
    pub trades: u64,
    pub records: u64,
    pub seconds: f64,
    pub trades_per_s: f64,
    pub records_per_s: f64,
    /// The load generator's achieved rate and its lost requests (a saturated appliance is not the ledger's lag).
    pub achieved_per_s: f64,
    pub lost: u64,
    /// The primary's summary when it stopped.
    pub appliance: String,
}

pub fn run(a: LedgerArgs) -> anyhow::Result<()> {
    if !a.lag {
        return bourse_ledger::bench::run(a.ingest);
    }
    if !(a.rate > 0.0 && a.duration_s > 0.0 && a.sample_us > 0) {
        bail!("--rate, --duration-s and --sample-us must be positive");
    }
    let r = measure(&a)?;
    if a.ingest.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_table(&r);
    }
    Ok(())
}

fn print_table(r: &LagReport) {
    println!(
        "ledger lag behind commit: {} appliance, {:.0} msg/s offered ({:.0} achieved, {} lost) for {} s, {}, {} records per transaction",
        r.mode, r.rate, r.achieved_per_s, r.lost, r.duration_s, r.backend, r.batch_records
    );
    println!("{:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}", "commits", "p50 ms", "p99 ms", "max ms", "trades", "trades/s", "records/s");
    println!(
        "{:>8} {:>9.1} {:>9.1} {:>9.1} {:>9} {:>10.0} {:>10.0}",
        r.commits_seen, r.lag_ms_p50, r.lag_ms_p99, r.lag_ms_max, r.trades, r.trades_per_s, r.records_per_s
    );
    println!(
        "({} of the ledger's {} transactions seen, sampled every {} us; lag = ledger commit - sequencer time of the last input it covers)",
        r.commits_seen, r.batches, r.sample_us
    );
    println!("primary: {}", r.appliance);
}

fn measure(a: &LedgerArgs) -> anyhow::Result<LagReport> {
    // The demo's defaults (pinning, acknowledgement, msync, resting orders), one rate and no warm-up.
    let demo_args = DemoArgs {
        rates: vec![a.rate],
        duration_s: a.duration_s,
        warmup_s: 0.0,
        json: false,
        seed: a.seed,
        pipeline_core: None,
        load_core: None,
        no_pin: a.no_pin,
        single: a.single,
        ack: "replicated".into(),
        wal_mode: "msync".into(),
        resting: 1_000,
        hlog: None,
        progress: false,
    };
    let (pipeline_core, load_core) = demo::cores(&demo_args);
    let dir = TempDir::new("bourse-bench-ledger-lag")?;
    let appliance = Appliance::start(&demo_args, dir.path(), pipeline_core, load_core)?;
    let result = follow_under_load(a, &demo_args, &appliance, dir.path(), pipeline_core, load_core);
    let stopped = appliance.stop();
    let (mut report, mut ledger) = result?;
    report.appliance = stopped?.primary;
    // The appliance has stopped: the ledger books what it journaled last, falls idle and says what it did.
    let line = ledger.wait_for("ingested:", Duration::from_secs(30)).context("the ledger's summary")?;
    report.batches = number_after(&line, "batches").context("the ledger's summary line")?;
    drop(dir);
    Ok(report)
}

fn follow_under_load(
    a: &LedgerArgs,
    demo_args: &DemoArgs,
    appliance: &Appliance,
    dir: &Path,
    pipeline_core: Option<usize>,
    load_core: Option<usize>,
) -> anyhow::Result<(LagReport, Node)> {
    let (backend, db_url) = match &a.ingest.postgres {
        Some(url) => ("postgres", url.clone()),
        None => ("sqlite", dir.join("ledger.sqlite3").to_string_lossy().into_owned()),
    };
    let wal_dir = appliance.config.wal.dir.as_ref().context("the demo configuration names its WAL directory")?;
    let mut ledger = spawn_ledger(a, appliance, wal_dir, &db_url, pipeline_core)?;
    let mut journal = Journal { tail: Tail::new(wal_dir, 1), ahead: VecDeque::new() };
    let mut db = open_ledger(&db_url, &mut ledger)?;
    let start = journal.published()?;
    wait_until(&mut ledger, || Ok(journal_position(db.as_mut())? >= start), "book the start-up inputs")?;
    let trades_before = count_trades(db.as_mut())?;
    let records_before = journal_position(db.as_mut())?;

    let load = demo::spawn_load(demo_args, &appliance.config, load_core)?;
    let started = Instant::now();
    let (lag, load) = sample(a, db.as_mut(), &mut journal, &mut ledger, load, records_before)?;
    let seconds = started.elapsed().as_secs_f64();
    let trades = count_trades(db.as_mut())? - trades_before;
    let records = journal_position(db.as_mut())? - records_before;

    let ms = |v: u64| v as f64 / 1e3;
    let report = LagReport {
        bench: "ledger_lag",
        backend,
        mode: if a.single { "single" } else { "pair" },
        rate: a.rate,
        duration_s: a.duration_s,
        batch_records: a.ingest.batch.max(1),
        sample_us: a.sample_us,
        commits_seen: lag.len(),
        batches: 0,
        lag_ms_p50: ms(lag.value_at_quantile(0.5)),
        lag_ms_p99: ms(lag.value_at_quantile(0.99)),
        lag_ms_max: ms(lag.max()),
        trades,
        records,
        seconds,
        trades_per_s: trades as f64 / seconds,
        records_per_s: records as f64 / seconds,
        achieved_per_s: load.rates.first().map_or(0.0, |r| r.achieved_per_s),
        lost: load.lost,
        appliance: String::new(),
    };
    Ok((report, ledger))
}

/// `bourse ledger ingest --follow` on the primary's journal, with the primary's configuration (the engine's
/// capacities), off the pipeline's core.
fn spawn_ledger(
    a: &LedgerArgs,
    appliance: &Appliance,
    wal_dir: &Path,
    db_url: &str,
    pipeline_core: Option<usize>,
) -> anyhow::Result<Node> {
    let wal_dir = wal_dir.to_string_lossy();
    let batch = a.ingest.batch.max(1).to_string();
    let idle = LEDGER_IDLE_EXIT_MS.to_string();
    let mut command = Command::new(std::env::current_exe().context("locating the bourse binary")?);
    keep_off(&mut command, pipeline_core);
    let args = ["ledger", "ingest", "--follow", "--wal", &wal_dir, "--db", db_url, "--batch", &batch, "--idle-exit-ms", &idle];
    Node::spawn("the ledger", command, &args, &appliance.config_path)
}

/// Samples the ledger's position every `--sample-us` while the load runs and until the ledger has booked what was
/// published when the load stopped; returns one lag per transaction seen, in microseconds, and the load's report.
fn sample(
    a: &LedgerArgs,
    db: &mut dyn Store,
    journal: &mut Journal,
    ledger: &mut Node,
    load: std::thread::JoinHandle<anyhow::Result<LoadReport>>,
    from: u64,
) -> anyhow::Result<(Histogram<u64>, LoadReport)> {
    let interval = Duration::from_micros(a.sample_us);
    let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut position = from;
    let mut load = Some(load);
    let mut report = None;
    let mut end: Option<(u64, Instant)> = None;
    loop {
        let at = Instant::now();
        let p = journal_position(db)?;
        // Read after the query: the transaction that moved the position had committed by then.
        let now_ns = wall_ns();
        if p > position {
            let sequenced_ns = journal.timestamp_of(p)?;
            lag.saturating_record((now_ns.saturating_sub(sequenced_ns) / 1_000).max(1));
            position = p;
        }
        if let Some(done) = load.take_if(|l| l.is_finished()) {
            report = Some(done.join().map_err(|_| anyhow::anyhow!("the load generator panicked"))??);
            end = Some((journal.published()?, Instant::now() + CATCH_UP_TIMEOUT));
        }
        if let Some((last, deadline)) = end {
            if p >= last {
                return Ok((lag, report.take().expect("the load has reported once its end is known")));
            }
            if Instant::now() > deadline {
                bail!("the ledger did not catch up within {CATCH_UP_TIMEOUT:?} of the load's end: at seq {p} of {last}");
            }
        }
        if let Some(status) = ledger.child.try_wait()? {
            bail!(
                "the ledger exited ({status}) during the run, at seq {p} ({LEDGER_IDLE_EXIT_MS} ms without a new record \
                 ends it):\n{}",
                ledger.log()
            );
        }
        std::thread::sleep(interval.saturating_sub(at.elapsed()));
    }
}

/// The journal as this process follows it: the sequencer time of each input the ledger's position reaches.
struct Journal {
    tail: Tail,
    /// (seq, sequencer time) of the records read that the ledger's position has not passed yet.
    ahead: VecDeque<(u64, u64)>,
}

impl Journal {
    /// Reads on to the last record published so far; returns its seq.
    fn published(&mut self) -> anyhow::Result<u64> {
        while self.read(usize::MAX)? > 0 {}
        Ok(self.tail.next_seq() - 1)
    }

    /// The sequencer timestamp of input `seq`, which the ledger has booked, so the journal holds it. Positions
    /// asked for only increase.
    fn timestamp_of(&mut self, seq: u64) -> anyhow::Result<u64> {
        loop {
            while let Some(&(s, ts)) = self.ahead.front() {
                match s.cmp(&seq) {
                    std::cmp::Ordering::Less => self.ahead.pop_front(),
                    std::cmp::Ordering::Equal => return Ok(ts),
                    std::cmp::Ordering::Greater => bail!("seq {seq} asked for after seq {s}"),
                };
            }
            if self.read(4096)? == 0 {
                bail!("the ledger is at seq {seq}, but the journal ends at seq {}", self.tail.next_seq() - 1);
            }
        }
    }

    fn read(&mut self, records_max: usize) -> anyhow::Result<usize> {
        let ahead = &mut self.ahead;
        Ok(self.tail.poll(records_max, |r| ahead.push_back((r.input.seq, r.input.timestamp)))?)
    }
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The ledger's database, once the ledger has created its schema.
fn open_ledger(url: &str, ledger: &mut Node) -> anyhow::Result<Box<dyn Store>> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        // Opening a SQLite file before the ledger does would create it: wait for the ledger's own first.
        let exists = url.starts_with("postgres") || Path::new(url).exists();
        if exists {
            if let Ok(mut db) = bourse_ledger::store::open(url) {
                if journal_position(db.as_mut()).is_ok() {
                    return Ok(db);
                }
            }
        }
        if let Some(status) = ledger.child.try_wait()? {
            bail!("the ledger exited ({status}) before creating its schema:\n{}", ledger.log());
        }
        if Instant::now() > deadline {
            bail!("the ledger created no schema in {url} within {CATCH_UP_TIMEOUT:?}:\n{}", ledger.log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_until(ledger: &mut Node, mut done: impl FnMut() -> anyhow::Result<bool>, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while !done()? {
        if let Some(status) = ledger.child.try_wait()? {
            bail!("the ledger exited ({status}) before it could {what}:\n{}", ledger.log());
        }
        if Instant::now() > deadline {
            bail!("the ledger did not {what} within {CATCH_UP_TIMEOUT:?}:\n{}", ledger.log());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn count_trades(db: &mut dyn Store) -> anyhow::Result<u64> {
    Ok(bourse_ledger::store::query_int(db, "SELECT COUNT(*) FROM trades", &[])? as u64)
}

/// The number after `key ` in `line` ("batches 12" → 12).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}
