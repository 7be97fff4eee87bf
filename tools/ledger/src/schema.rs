//! The schema, as numbered migrations. Each runs in its own transaction together with the row recording it in
//! `schema_version`, so a crash mid-migration leaves the database at the previous version, and a rerun applies
//! only what is missing. One text serves SQLite and PostgreSQL.
//!
//! Books: every movement is a `transfers` row with balanced `entries` (debits equal credits per book and asset).
//! The `TRADE` book moves at trade date, as the engine does; the `SETTLED` book moves at settlement. Account -1
//! is the world outside the exchange: deposits and withdrawals are transfers against it, so the sum of every
//! balance, it included, is zero per asset and book.

use crate::ids;
use crate::store::{query_int, transaction, Store, Val};

/// The account deposits come from and withdrawals go to.
pub const EXTERNAL_ACCOUNT: i64 = -1;

/// One step of the schema: SQL both databases run as written, or code for what one SQL text cannot say for both.
enum Migration {
    Sql(&'static str),
    Code(fn(&mut dyn Store) -> anyhow::Result<()>),
}

const MIGRATIONS: &[(i64, Migration)] = &[
    (
        1,
        Migration::Sql(
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
        ),
    ),
    (2, Migration::Code(order_ids)),
];

/// Version 2: the ids version 1 wrote as plain UUID v5 become the ordered ids of [`crate::ids`] (the ordering key
/// in front, the v5 id's last 64 bits kept), so the indexes they key grow at their end. An entry follows its
/// transfer's new id. Ids already ordered are left alone.
fn order_ids(s: &mut dyn Store) -> anyhow::Result<()> {
    let plain = |id: &str| id.as_bytes().get(14) == Some(&b'5');
    for table in ["obligations", "settlements"] {
        for r in s.query(&format!("SELECT id, match_number FROM {table}"), &[])? {
            let (id, m) = (r[0].text()?.to_string(), r[1].int()?);
            if plain(&id) {
                let new = ids::ordered(m as u64, &id);
                s.exec(&format!("UPDATE {table} SET id = $1 WHERE id = $2"), &[Val::Text(new), Val::Text(id)])?;
            }
        }
    }
    for r in s.query("SELECT id, seq, kind, match_number FROM transfers", &[])? {
        let (id, seq, kind, m) = (r[0].text()?.to_string(), r[1].int()?, r[2].text()?.to_string(), r[3].int()?);
        if !plain(&id) {
            continue;
        }
        let key = if kind == "DEPOSIT" { seq } else { m };
        let new = ids::ordered(key as u64, &id);
        s.exec("UPDATE entries SET transfer_id = $1 WHERE transfer_id = $2", &[Val::from(new.as_str()), Val::from(id.as_str())])?;
        s.exec("UPDATE transfers SET id = $1 WHERE id = $2", &[Val::Text(new), Val::Text(id)])?;
    }
    Ok(())
}

/// Applies every migration the database lacks; returns the version it is at.
pub fn migrate(s: &mut dyn Store) -> anyhow::Result<i64> {
    migrate_to(s, SCHEMA_VERSION)
}

/// [`migrate`], up to version `target` only (the migration tests start from an old version).
pub fn migrate_to(s: &mut dyn Store, target: i64) -> anyhow::Result<i64> {
    s.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")?;
    let mut at = query_int(s, "SELECT CAST(MAX(version) AS BIGINT) FROM schema_version", &[])?;
    for (version, step) in MIGRATIONS {
        let version = *version;
        if version <= at || version > target {
            continue;
        }
        transaction(s, |s| {
            match step {
                Migration::Sql(sql) => s.batch(sql)?,
                Migration::Code(f) => f(s)?,
            }
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::store::open;

    /// An id as version 1 wrote it: the plain UUID v5 of the name.
    fn v5(name: &str) -> String {
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"bourse-ledger");
        Uuid::new_v5(&ns, name.as_bytes()).to_string()
    }

    #[test]
    fn version_2_rewrites_version_1_ids_to_the_ordered_ids_booking_writes_now() {
        let dir = std::env::temp_dir().join(format!("bourse-ledger-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut db = open(dir.join("v1.sqlite3").to_str().unwrap()).unwrap();
        let s = db.as_mut();
        assert_eq!(migrate_to(s, 1).unwrap(), 1);
        let rows: [(&str, &[Val]); 6] = [
            (
                "INSERT INTO obligations VALUES ($1, 9, 'CASH', 1, 2, 'CASH:USD', 500, '2026-12-08', 'PENDING')",
                &[Val::Text(v5("obligation/9/CASH"))],
            ),
            (
                "INSERT INTO settlements VALUES ($1, 9, '2026-12-08', 'APPLYING', '')",
                &[Val::Text(v5("settlement/9/2026-12-08"))],
            ),
            ("INSERT INTO transfers VALUES ($1, 70, 'CASH', 9)", &[Val::Text(v5("trade/9/CASH"))]),
            ("INSERT INTO transfers VALUES ($1, 3, 'DEPOSIT', 0)", &[Val::Text(v5("deposit/3/cash"))]),
            (
                "INSERT INTO entries VALUES ($1, 0, 'TRADE', 2, 'CASH:USD', 500, 0)",
                &[Val::Text(v5("trade/9/CASH"))],
            ),
            (
                "INSERT INTO entries VALUES ($1, 0, 'TRADE', 1, 'CASH:USD', 1000, 0)",
                &[Val::Text(v5("deposit/3/cash"))],
            ),
        ];
        for (sql, params) in rows {
            s.exec(sql, params).unwrap();
        }
        assert_eq!(migrate(s).unwrap(), SCHEMA_VERSION);
        let text = |s: &mut dyn Store, sql: &str| -> Vec<String> {
            s.query(sql, &[]).unwrap().iter().map(|r| r[0].text().unwrap().to_string()).collect()
        };
        assert_eq!(text(s, "SELECT id FROM obligations"), [ids::obligation(9, "CASH")]);
        assert_eq!(text(s, "SELECT id FROM settlements"), [ids::settlement(9, "2026-12-08")]);
        let transfers = [ids::deposit_transfer(3, "cash"), ids::trade_transfer(9, "CASH")];
        assert_eq!(text(s, "SELECT id FROM transfers ORDER BY id"), transfers);
        assert_eq!(text(s, "SELECT transfer_id FROM entries ORDER BY transfer_id"), transfers, "entries follow");
        // Run again: nothing left to do, nothing changes.
        assert_eq!(migrate(s).unwrap(), SCHEMA_VERSION);
        assert_eq!(text(s, "SELECT id FROM obligations"), [ids::obligation(9, "CASH")]);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
