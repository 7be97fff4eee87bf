//! The ingest loop: read where the database stands, bring the follower there, then book batch after batch. Any
//! database error drops the connection and starts over from the position the database holds, so a batch whose
//! commit was in doubt (the server went away mid-commit) is neither lost nor booked twice.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_engine::Capacity;

use crate::book::{book_batch, BookConfig};
use crate::commit::{CommitSource, Committed};
use crate::follow::Follower;
use crate::schema::{journal_position, migrate};
use crate::store::{open, Store};

#[derive(Clone, Debug)]
pub struct IngestOptions {
    pub wal_dir: PathBuf,
    /// How far the journal is committed, and so booked (see [`crate::commit`]).
    pub commit: CommitFrom,
    pub db: String,
    pub capacity: Capacity,
    pub book: BookConfig,
    /// Journal records per database transaction.
    pub batch_records: usize,
    /// Keep following the journal; else stop once everything committed so far is booked.
    pub follow: bool,
    /// Stop following after this long without a new record (None: never).
    pub idle_exit: Option<Duration>,
    /// How long to keep retrying a database that is down before giving up.
    pub reconnect_for: Duration,
}

/// Where the ledger learns how far the journal is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitFrom {
    /// The running appliance of this name: its stats block's commit seq.
    Appliance(String),
    /// The directory is committed as it stands.
    Whole,
}

impl CommitFrom {
    fn source(&self) -> CommitSource {
        match self {
            CommitFrom::Appliance(name) => CommitSource::appliance(name),
            CommitFrom::Whole => CommitSource::Whole,
        }
    }
}

/// What an ingest run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub position: u64,
    pub batches: u64,
    pub records: u64,
    pub trades: u64,
    pub reconnects: u64,
    /// How far the journal was known committed when the run ended (`u64::MAX`: the whole directory).
    pub committed: u64,
}

pub fn run(o: &IngestOptions) -> anyhow::Result<IngestReport> {
    let mut report = IngestReport::default();
    let mut down_since: Option<Instant> = None;
    loop {
        match session(o, &mut report) {
            Ok(()) => return Ok(report),
            Err(e) => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if !is_transient(&e) || since.elapsed() > o.reconnect_for {
                    return Err(e);
                }
                eprintln!("ledger: {e:#}; reconnecting");
                report.reconnects += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if report.batches > 0 {
            down_since = None;
        }
    }
}

/// A connection-level failure worth retrying (the server restarting), or the position moved under us (resume from
/// it), not a fault in the books.
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<crate::book::PositionMoved>())
        || e.chain().any(|c| {
        c.downcast_ref::<postgres::Error>().is_some_and(|pe| {
            pe.is_closed()
                || pe.as_db_error().is_none()
                || pe.code().is_some_and(|c| c.code().starts_with("57P") || c.code().starts_with("08"))
        })
    })
}

fn session(o: &IngestOptions, report: &mut IngestReport) -> anyhow::Result<()> {
    let mut db: Box<dyn Store> = open(&o.db)?;
    migrate(db.as_mut())?;
    let start = journal_position(db.as_mut())?;
    let mut follower = Follower::at(&o.wal_dir, o.capacity, start).context("bringing the follower to the ledger")?;
    let mut commit = o.commit.source();
    let mut said_unknown = false;
    let mut moves = Vec::new();
    let mut idle_since = Instant::now();
    loop {
        let from = follower.last_seq();
        // While the commit point is unknown nothing new is booked; what is booked already stays committed.
        let through = match commit.committed() {
            Committed::Through(seq) => {
                said_unknown = false;
                seq
            }
            Committed::Unknown(why) => {
                if !o.follow {
                    anyhow::bail!(
                        "{why}: the ledger books only what the appliance reports committed (booked through seq \
                         {from}); pass --commit whole for a journal committed as it stands"
                    );
                }
                if !said_unknown {
                    eprintln!("ledger: {why}; waiting, booked through seq {from}");
                    said_unknown = true;
                }
                from
            }
        };
        report.committed = through;
        moves.clear();
        let n = follower.step(o.batch_records, through, &mut moves)?;
        if n == 0 {
            report.position = from;
            if !o.follow || o.idle_exit.is_some_and(|d| idle_since.elapsed() > d) {
                return Ok(());
            }
            if db.is_broken() {
                anyhow::bail!("database connection lost while idle");
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        idle_since = Instant::now();
        book_batch(db.as_mut(), &o.book, from, follower.last_seq(), &moves)?;
        report.batches += 1;
        report.records += n as u64;
        report.trades += moves.iter().filter(|m| matches!(m, crate::follow::Movement::Trade(_))).count() as u64;
        report.position = follower.last_seq();
    }
}
