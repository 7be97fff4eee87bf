//! `bourse ledger …`: the subcommands, parsed here so the `bourse` binary only forwards them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bourse_engine::Capacity;

use crate::book::BookConfig;
use crate::calendar::{parse_date, Calendar};
use crate::ingest::{self, CommitFrom, IngestOptions};
use crate::report::{self, Format};
use crate::schema::migrate;
use crate::store::open;

#[derive(clap::Subcommand, Debug)]
pub enum LedgerCmd {
    /// Book the committed journal: trades, obligations, balances, ledger entries (exactly once; resumable).
    Ingest(IngestArgs),
    /// Settle every pending trade due on or before --date (two-phase; a rerun completes an interrupted run).
    Settle(SettleArgs),
    /// Compare the database with the engine replayed to the position it covers; exit 1 on any difference.
    Reconcile(ReconcileArgs),
    /// Trades, optionally of one firm (as buyer or seller) on one trade date.
    Trades(TradesArgs),
    /// Cash per account, at trade date and settled.
    Balances(ListArgs),
    /// Shares per account and symbol, at trade date and settled.
    Positions(ListArgs),
    /// Settlement obligations, optionally in one state (PENDING, COMPLETED, FAILED).
    Obligations(ObligationsArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// `postgres://user@host:port/db`, or a SQLite file. Default: `ledger.sqlite3` beside the WAL directory.
    #[arg(long)]
    pub db: Option<String>,
    /// Currency of the engine's cash.
    #[arg(long, default_value = "USD")]
    pub currency: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct JournalArgs {
    /// The appliance's WAL directory (read only; its lock is never taken).
    #[arg(long)]
    pub wal: PathBuf,
    /// The appliance's configuration: the engine is built with its capacities.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Engine capacities when there is no --config and no snapshot: `small` (the seeded workload's and the
    /// crash-test driver's).
    #[arg(long)]
    pub capacity: Option<CapacityName>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CapacityName {
    Small,
}

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Holiday calendar: one YYYY-MM-DD a line.
    #[arg(long)]
    pub holidays: Option<PathBuf>,
    /// Journal records per database transaction.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// How far the journal is committed, and so booked: `appliance` (the running appliance's commit seq, from
    /// its stats block, named by --appliance or --config's `[appliance] name`), or `whole` (the directory is
    /// committed as it stands: a stopped single appliance's journal after recovery, a standby's copy).
    #[arg(long, value_enum, default_value_t = CommitArg::Appliance)]
    pub commit: CommitArg,
    /// With --commit appliance: the appliance's `[appliance] name` (default: --config's, else "bourse").
    #[arg(long)]
    pub appliance: Option<String>,
    /// Keep following the journal as it grows.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop after this many milliseconds without a new record.
    #[arg(long)]
    pub idle_exit_ms: Option<u64>,
    /// Keep retrying a database that went away for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub reconnect_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CommitArg {
    Appliance,
    Whole,
}

#[derive(clap::Args, Debug)]
pub struct SettleArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub wal: Option<PathBuf>,
    /// The settlement date (YYYY-MM-DD).
    #[arg(long)]
    pub date: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TradesArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub wal: Option<PathBuf>,
    #[arg(long)]
    pub firm: Option<i64>,
    /// Trade date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub wal: Option<PathBuf>,
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
}

#[derive(clap::Args, Debug)]
pub struct ObligationsArgs {
    #[command(flatten)]
    pub list: ListArgs,
    #[arg(long)]
    pub state: Option<String>,
}

/// The database a command uses: `--db`, else `ledger.sqlite3` beside the WAL directory.
pub fn db_url(db: &DbArgs, wal: Option<&Path>) -> anyhow::Result<String> {
    if let Some(u) = &db.db {
        return Ok(u.clone());
    }
    let Some(wal) = wal else { bail!("give --db (or --wal, to use ledger.sqlite3 beside it)") };
    let parent = wal.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join("ledger.sqlite3").to_string_lossy().into_owned())
}

/// The engine capacities: the configuration's, else the newest valid snapshot's, else `--capacity`.
pub fn capacity(j: &JournalArgs) -> anyhow::Result<Capacity> {
    if let Some(path) = &j.config {
        return Ok(bourse_appliance::config::Config::load(path)?.engine_capacity());
    }
    for (_, path) in bourse_persist::snapshot::list_snapshots(&j.wal)? {
        if let Ok(engine) = bourse_persist::snapshot::load(&path) {
            return Ok(engine.capacity());
        }
    }
    match j.capacity {
        Some(CapacityName::Small) => Ok(Capacity::SMALL),
        None => bail!("{}: no --config, no snapshot and no --capacity to build the engine with", j.wal.display()),
    }
}

fn format(json: bool, csv: bool) -> Format {
    if json {
        Format::Json
    } else if csv {
        Format::Csv
    } else {
        Format::Table
    }
}

pub fn run(cmd: LedgerCmd) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        LedgerCmd::Ingest(a) => {
            let calendar = match &a.holidays {
                Some(p) => Calendar::load(p)?,
                None => Calendar::default(),
            };
            let commit = match a.commit {
                CommitArg::Whole => CommitFrom::Whole,
                CommitArg::Appliance => CommitFrom::Appliance(match (&a.appliance, &a.journal.config) {
                    (Some(name), _) => name.clone(),
                    (None, Some(path)) => bourse_appliance::config::Config::load(path)?.appliance.name,
                    (None, None) => "bourse".to_string(),
                }),
            };
            let o = IngestOptions {
                commit,
                db: db_url(&a.db, Some(&a.journal.wal))?,
                capacity: capacity(&a.journal)?,
                wal_dir: a.journal.wal,
                book: BookConfig { calendar, currency: a.db.currency },
                batch_records: a.batch.max(1),
                follow: a.follow,
                idle_exit: a.idle_exit_ms.map(Duration::from_millis),
                reconnect_for: Duration::from_secs(a.reconnect_secs),
            };
            let r = ingest::run(&o)?;
            let committed = if r.committed == u64::MAX { "whole".to_string() } else { r.committed.to_string() };
            println!(
                "ingested: position {} batches {} records {} trades {} reconnects {} committed {committed}",
                r.position, r.batches, r.records, r.trades, r.reconnects
            );
        }
        LedgerCmd::Settle(a) => {
            let date = parse_date(&a.date)?.to_string();
            let mut db = open(&db_url(&a.db, a.wal.as_deref())?)?;
            migrate(db.as_mut())?;
            let r = crate::settle::settle(db.as_mut(), &date, &a.db.currency)?;
            if a.json {
                let failed: Vec<_> =
                    r.failed.iter().map(|(m, why)| serde_json::json!({"match_number": m, "reason": why})).collect();
                let v = serde_json::json!({"date": date, "settled": r.settled, "failed": failed,
                    "legs_resumed": r.legs_resumed});
                println!("{v}");
            } else {
                println!("settle {date}: settled {} failed {} legs resumed {}", r.settled, r.failed.len(), r.legs_resumed);
                for (m, why) in &r.failed {
                    println!("  failed delivery: trade {m}: {why}");
                }
            }
        }
        LedgerCmd::Reconcile(a) => {
            let mut db = open(&db_url(&a.db, Some(&a.journal.wal))?)?;
            migrate(db.as_mut())?;
            let cap = capacity(&a.journal)?;
            let r = crate::reconcile::reconcile(db.as_mut(), &a.journal.wal, cap, &a.db.currency)
                .context("reconciling")?;
            if a.json {
                let v = serde_json::json!({"position": r.position, "accounts": r.accounts, "trades": r.trades,
                    "differences": r.differences});
                println!("{v}");
            } else {
                println!(
                    "reconcile at seq {}: {} accounts, {} trades, {} differences",
                    r.position,
                    r.accounts,
                    r.trades,
                    r.differences.len()
                );
                for d in &r.differences {
                    println!("  {d}");
                }
            }
            if !r.differences.is_empty() {
                std::process::exit(1);
            }
        }
        LedgerCmd::Trades(a) => {
            let mut db = open(&db_url(&a.db, a.wal.as_deref())?)?;
            migrate(db.as_mut())?;
            let date = a.date.as_deref().map(parse_date).transpose()?.map(|d| d.to_string());
            let l = report::trades(db.as_mut(), a.firm, date.as_deref())?;
            report::print(&l, format(a.json, a.csv), &mut out)?;
        }
        LedgerCmd::Balances(a) => {
            let mut db = open(&db_url(&a.db, a.wal.as_deref())?)?;
            migrate(db.as_mut())?;
            report::print(&report::balances(db.as_mut())?, format(a.json, a.csv), &mut out)?;
        }
        LedgerCmd::Positions(a) => {
            let mut db = open(&db_url(&a.db, a.wal.as_deref())?)?;
            migrate(db.as_mut())?;
            report::print(&report::positions(db.as_mut())?, format(a.json, a.csv), &mut out)?;
        }
        LedgerCmd::Obligations(a) => {
            let l = a.list;
            let mut db = open(&db_url(&l.db, l.wal.as_deref())?)?;
            migrate(db.as_mut())?;
            let state = a.state.map(|s| s.to_ascii_uppercase());
            report::print(&report::obligations(db.as_mut(), state.as_deref())?, format(l.json, l.csv), &mut out)?;
        }
    }
    Ok(())
}
