//! The schema, as numbered migrations. Each runs in its own transaction together with the row recording it in
//! `schema_version`, so a crash mid-migration leaves the database at the previous version, and a rerun applies
//! only what is missing. One text serves SQLite and PostgreSQL.
//!
//! Books: every movement is a `transfers` row with balanced `entries` (debits equal credits per book and asset).
//! The `TRADE` book moves at trade date, as the engine does; the `SETTLED` book moves at settlement. Account -1
//! is the world outside the exchange: deposits and withdrawals are transfers against it, so the sum of every
//! balance, it included, is zero per asset and book.

use crate::store::{query_int, transaction, Store, Val};

/// The account deposits come from and withdrawals go to.
pub const EXTERNAL_ACCOUNT: i64 = -1;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "
CREATE TABLE journal_position (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL);
INSERT INTO journal_position (id, seq) VALUES (1, 0);
CREATE TABLE accounts (
    account BIGINT PRIMARY KEY, firm BIGINT NOT NULL,
    cash BIGINT NOT NULL, settled_cash BIGINT NOT NULL);
CREATE TABLE positions (
    account BIGINT NOT NULL, symbol BIGINT NOT NULL,
    qty BIGINT NOT NULL, settled_qty BIGINT NOT NULL,
    PRIMARY KEY (account, symbol));
CREATE TABLE trades (
    match_number BIGINT PRIMARY KEY, seq BIGINT NOT NULL, symbol BIGINT NOT NULL,
    price BIGINT NOT NULL, qty BIGINT NOT NULL,
    buyer_account BIGINT NOT NULL, buyer_firm BIGINT NOT NULL,
    seller_account BIGINT NOT NULL, seller_firm BIGINT NOT NULL,
    trade_time_ns BIGINT NOT NULL, trade_date TEXT NOT NULL, settle_date TEXT NOT NULL,
    state TEXT NOT NULL);
CREATE INDEX trades_by_settle_date ON trades (settle_date, state);
CREATE INDEX trades_by_trade_date ON trades (trade_date);
CREATE TABLE obligations (
    id TEXT PRIMARY KEY, match_number BIGINT NOT NULL, leg TEXT NOT NULL,
    from_account BIGINT NOT NULL, to_account BIGINT NOT NULL, asset TEXT NOT NULL,
    amount BIGINT NOT NULL, settle_date TEXT NOT NULL, state TEXT NOT NULL);
CREATE INDEX obligations_by_trade ON obligations (match_number);
CREATE TABLE transfers (
    id TEXT PRIMARY KEY, seq BIGINT NOT NULL, kind TEXT NOT NULL, match_number BIGINT NOT NULL);
CREATE TABLE entries (
    transfer_id TEXT NOT NULL, line BIGINT NOT NULL, book TEXT NOT NULL,
    account BIGINT NOT NULL, asset TEXT NOT NULL, debit BIGINT NOT NULL, credit BIGINT NOT NULL,
    PRIMARY KEY (transfer_id, line));
CREATE TABLE settlements (
    id TEXT PRIMARY KEY, match_number BIGINT NOT NULL, run_date TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX settlements_by_trade ON settlements (match_number);
",
)];

/// Applies every migration the database lacks; returns the version it is at.
pub fn migrate(s: &mut dyn Store) -> anyhow::Result<i64> {
    s.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")?;
    let mut at = query_int(s, "SELECT CAST(MAX(version) AS BIGINT) FROM schema_version", &[])?;
    for &(version, sql) in MIGRATIONS {
        if version <= at {
            continue;
        }
        transaction(s, |s| {
            s.batch(sql)?;
            s.exec("INSERT INTO schema_version (version) VALUES ($1)", &[Val::Int(version)])?;
            Ok(())
        })?;
        at = version;
    }
    Ok(at)
}

pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The journal position the database covers: every input up to it has been booked.
pub fn journal_position(s: &mut dyn Store) -> anyhow::Result<u64> {
    Ok(query_int(s, "SELECT seq FROM journal_position WHERE id = 1", &[])? as u64)
}
