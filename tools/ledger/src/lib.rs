//! bourse-ledger: clearing and settlement. The books of record, in a real database, written exactly once from
//! the committed journal.
//!
//! The engine locks cash and shares before a trade and moves them at the fill, in memory, single-writer: that is
//! what keeps matching fast. The books of record live here instead, in SQLite (a file beside the WAL, the default)
//! or PostgreSQL, and are derived, never entered: a follower reads the appliance's journal read-only
//! ([`follow`]), feeds it through its own copy of the engine, and books what each input moved ([`book`]):
//!
//! ```text
//!  WAL segments ──scan (live, no lock)──▶ Engine::apply ──▶ movements ──one transaction per batch──▶ database
//!                                                           (accounts, deposits,    trades, obligations,
//!                                                            executions)            transfers + entries,
//!                                                                                   balances, journal position
//! ```
//!
//! Only the committed journal is booked: through the appliance's commit seq ([`commit`]), since a record past it
//! can still be cut by a failover.
//!
//! Exactly once: each batch's transaction also moves the journal position it covers, so after a crash at any
//! point the next run starts from the position the database holds — a batch is either wholly in or wholly out.
//!
//! Settlement ([`settle`]) runs T+2 business days after the trade date ([`calendar`]), two-phase per trade with
//! deterministic ids ([`ids`]): intent, each leg under its idempotency key, then the trade SETTLED.
//! Reconciliation ([`reconcile`]) checks the database against the engine replayed to the same position and
//! against itself (ledger = balances, conservation). Both backends sit behind one small trait ([`store`]) and one
//! schema ([`schema`]).

#![deny(unsafe_code)]

pub mod bench;
pub mod book;
pub mod calendar;
pub mod cli;
pub mod commit;
pub mod follow;
pub mod ids;
pub mod ingest;
pub mod pgtmp;
pub mod reconcile;
pub mod report;
pub mod schema;
pub mod settle;
pub mod store;
