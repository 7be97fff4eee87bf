//! `bourse bench ledger`: trades booked per second into SQLite and into PostgreSQL. A seeded workload journal is
//! written to a temporary WAL, then ingested in batches by the same code `bourse ledger ingest` runs (the follower's
//! replay included, so the figure is end to end: journal to committed rows). PostgreSQL is the server named by
//! `--postgres`, else a throwaway cluster started for the run; where neither is possible its row says why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_engine::{Capacity, Command, Engine, Event, EventSink, Input, NewOrder, OrderKind, Side, TimeInForce};
use bourse_persist::workload::{Workload, ACCOUNTS, REFERENCE_PRICE, SYMBOLS};
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig};

use crate::book::BookConfig;
use crate::calendar::Calendar;
use crate::ingest::{self, CommitFrom, IngestOptions};

#[derive(clap::Args, Debug)]
pub struct LedgerBenchArgs {
    /// Journal inputs to write and ingest.
    #[arg(long, default_value_t = 200_000)]
    pub inputs: u64,
    /// Journal records per database transaction.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// The journal: `dense` (after the set-up, every second input trades: what the books of record must keep up
    /// with in a burst) or `mixed` (the seeded workload: orders, cancels and replaces, few of which trade, so its
    /// time goes mostly to the follower's replay).
    #[arg(long, value_enum, default_value_t = JournalKind::Dense)]
    pub workload: JournalKind,
    /// A PostgreSQL server to use (a database the run may fill); default: a throwaway cluster.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub no_postgres: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    Dense,
    Mixed,
}

struct Count(u64);
impl EventSink for Count {
    fn event(&mut self, e: &Event) {
        if matches!(e, Event::Executed { .. }) {
            self.0 += 1;
        }
    }
}

#[derive(serde::Serialize)]
struct Row {
    backend: &'static str,
    trades: u64,
    records: u64,
    batches: u64,
    seconds: f64,
    trades_per_s: f64,
    records_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

pub fn run(a: LedgerBenchArgs) -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("bourse-bench-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let wal = root.join("wal");
    std::fs::create_dir_all(&wal)?;
    let trades = write_journal(&wal, a.inputs, a.workload)?;
    let mut rows = Vec::new();
    let opts = |db: String| IngestOptions {
        wal_dir: wal.clone(),
        // The benchmark's own journal, written before the run: committed as it stands.
        commit: CommitFrom::Whole,
        db,
        capacity: Capacity::SMALL,
        book: BookConfig { calendar: Calendar::default(), currency: "USD".into() },
        batch_records: a.batch.max(1),
        follow: false,
        idle_exit: None,
        reconnect_for: Duration::ZERO,
    };
    rows.push(measure("sqlite", &opts(root.join("bench.sqlite3").to_string_lossy().into_owned()))?);
    if !a.no_postgres {
        let cluster;
        let url = match &a.postgres {
            Some(u) => Ok(u.clone()),
            None => match crate::pgtmp::PgCluster::start("bench") {
                Ok(c) => {
                    cluster = c;
                    Ok(cluster.database("bench"))
                }
                Err(why) => Err(why),
            },
        };
        match url {
            Ok(u) => rows.push(measure("postgres", &opts(u))?),
            Err(why) => rows.push(Row {
                backend: "postgres",
                trades: 0,
                records: 0,
                batches: 0,
                seconds: 0.0,
                trades_per_s: 0.0,
                records_per_s: 0.0,
                skipped: Some(why),
            }),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    if a.json {
        let v = serde_json::json!({"bench": "ledger", "workload": a.workload, "inputs": a.inputs, "trades_in_journal": trades,
            "batch_records": a.batch, "rows": rows});
        println!("{v}");
    } else {
        let kind = match a.workload {
            JournalKind::Dense => "dense",
            JournalKind::Mixed => "mixed",
        };
        println!("ledger ingest: {} journal inputs ({kind}), {trades} trades, {} records per transaction", a.inputs, a.batch);
        println!("{:>9} {:>9} {:>8} {:>9} {:>12} {:>12}", "backend", "trades", "batches", "seconds", "trades/s", "records/s");
        for r in &rows {
            match &r.skipped {
                Some(why) => println!("{:>9} skipped: {why}", r.backend),
                None => println!(
                    "{:>9} {:>9} {:>8} {:>9.3} {:>12.0} {:>12.0}",
                    r.backend, r.trades, r.batches, r.seconds, r.trades_per_s, r.records_per_s
                ),
            }
        }
    }
    Ok(())
}

fn measure(backend: &'static str, o: &IngestOptions) -> anyhow::Result<Row> {
    let t = Instant::now();
    let r = ingest::run(o).with_context(|| format!("ingesting into {backend}"))?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(Row {
        backend,
        trades: r.trades,
        records: r.records,
        batches: r.batches,
        seconds,
        trades_per_s: r.trades as f64 / seconds,
        records_per_s: r.records as f64 / seconds,
        skipped: None,
    })
}

/// The journal of `kind` into a fresh WAL; returns the executions it makes.
fn write_journal(dir: &std::path::Path, inputs: u64, kind: JournalKind) -> anyhow::Result<u64> {
    let mut cfg = WalConfig::new(dir);
    cfg.mode = DurabilityMode::None;
    cfg.segment_bytes = 64 << 20;
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit))?;
    let mut w = Workload::new(1);
    let mut engine = Engine::new(Capacity::SMALL);
    let mut count = Count(0);
    // 14:30 UTC on Thursday 3rd December 2026.
    let base = 1_796_308_200_000_000_000u64;
    let mut dense = Dense::default();
    for seq in 1..=inputs {
        let mut input = match kind {
            JournalKind::Dense if seq > Workload::SETUP_INPUTS => dense.next(seq),
            _ => w.next(seq),
        };
        input.timestamp += base;
        wal.append_unfenced(&input)?;
        engine.apply(&input, &mut count);
        if seq % 4096 == 0 || seq == inputs {
            wal.fence();
            anyhow::ensure!(commit.wait_for(seq, Duration::from_secs(30)), "the bench journal's commit is stuck");
        }
    }
    wal.close()?;
    Ok(count.0)
}

/// After the seeded workload's set-up: a resting sell, then a buy IOC that takes it, over and over, so every
/// second input is one execution and the book stays empty. Account i sells to account i + 1 and each account
/// buys as often as it sells, so cash and positions stay near their deposits however long the journal.
#[derive(Default)]
struct Dense {
    step: u64,
    next_ref: [u32; ACCOUNTS as usize],
}

impl Dense {
    fn next(&mut self, seq: u64) -> Input {
        let pair = self.step / 2;
        let seller = (pair % u64::from(ACCOUNTS)) as u32;
        let (account, side, tif) = if self.step.is_multiple_of(2) {
            (seller, Side::Sell, TimeInForce::Day)
        } else {
            ((seller + 1) % ACCOUNTS, Side::Buy, TimeInForce::Ioc)
        };
        self.step += 1;
        let r = &mut self.next_ref[account as usize];
        *r += 1;
        let command = Command::NewOrder(NewOrder {
            session: account as u16,
            user_ref: *r,
            account,
            symbol: (pair % u64::from(SYMBOLS)) as u16,
            side,
            kind: OrderKind::Limit,
            tif,
            post_only: false,
            qty: 1 + (pair % 100) as u32,
            price: REFERENCE_PRICE,
            stop_price: 0,
        });
        Input { seq, timestamp: seq * 1_000, command }
    }
}
