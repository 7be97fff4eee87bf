//! Reconciliation: the database against the journal, and the database against itself.
//!
//! - At the journal position S the database covers, every account's cash and every position equal the engine's
//!   state after replaying the journal to S; the trade count equals the executions up to S.
//! - Every balance equals the sum of its ledger entries (per book, account and asset); every transfer balances.
//! - Conservation: per asset and book, the accounts together hold exactly what came in from outside (account -1).
//! - Every trade has its two obligations.

use std::collections::BTreeMap;
use std::path::Path;

use bourse_engine::Capacity;

use crate::book::{cash_asset, shares_asset, BOOK_SETTLED, BOOK_TRADE};
use crate::follow::Follower;
use crate::schema::{journal_position, EXTERNAL_ACCOUNT};
use crate::store::{query_int, Store};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub position: u64,
    pub accounts: u64,
    pub trades: u64,
    pub differences: Vec<String>,
}

pub fn reconcile(s: &mut dyn Store, wal_dir: &Path, capacity: Capacity, currency: &str) -> anyhow::Result<Reconciliation> {
    let position = journal_position(s)?;
    let f = Follower::at(wal_dir, capacity, position)?;
    let mut diff = Vec::new();
    let cash = cash_asset(currency);

    // Balances as the database holds them: (book, account, asset) -> amount.
    let mut balances: BTreeMap<(String, i64, String), i64> = BTreeMap::new();
    for r in s.query("SELECT account, cash, settled_cash FROM accounts", &[])? {
        let a = r[0].int()?;
        balances.insert((BOOK_TRADE.into(), a, cash.clone()), r[1].int()?);
        balances.insert((BOOK_SETTLED.into(), a, cash.clone()), r[2].int()?);
    }
    for r in s.query("SELECT account, symbol, qty, settled_qty FROM positions", &[])? {
        let (a, sym) = (r[0].int()?, r[1].int()?);
        let asset = shares_asset(sym as u16);
        balances.insert((BOOK_TRADE.into(), a, asset.clone()), r[2].int()?);
        balances.insert((BOOK_SETTLED.into(), a, asset), r[3].int()?);
    }

    // Against the engine at S.
    for (account, _firm) in f.accounts() {
        let e = f.engine().account(account).map_or(0, |v| v.cash_total);
        let d = balances.get(&(BOOK_TRADE.into(), account.into(), cash.clone())).copied();
        if d != Some(e) {
            diff.push(format!("account {account}: cash {} in the database, {e} in the engine at seq {position}", show(d)));
        }
        for &sym in f.symbols() {
            let e = f.engine().position(account, sym).map_or(0, |p| p.total);
            let d = balances.get(&(BOOK_TRADE.into(), account.into(), shares_asset(sym))).copied();
            if d.unwrap_or(0) != e {
                diff.push(format!(
                    "account {account} symbol {sym}: position {} in the database, {e} in the engine at seq {position}",
                    show(d)
                ));
            }
        }
    }
    let db_accounts = query_int(s, "SELECT COUNT(*) FROM accounts", &[])?;
    let engine_accounts = f.accounts().count() as i64;
    if db_accounts != engine_accounts {
        diff.push(format!("{db_accounts} accounts in the database, {engine_accounts} in the journal at seq {position}"));
    }
    let trades = query_int(s, "SELECT COUNT(*) FROM trades", &[])?;
    if trades as u64 != f.trades_seen() {
        diff.push(format!("{trades} trades in the database, {} executions in the journal to seq {position}", f.trades_seen()));
    }

    // Balances against the ledger.
    let mut ledger: BTreeMap<(String, i64, String), i64> = BTreeMap::new();
    let sums = s.query(
        "SELECT book, account, asset, CAST(SUM(debit) - SUM(credit) AS BIGINT) FROM entries GROUP BY book, account, asset",
        &[],
    )?;
    for r in sums {
        ledger.insert((r[0].text()?.into(), r[1].int()?, r[2].text()?.into()), r[3].int()?);
    }
    let mut totals: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (key, &held) in &balances {
        let booked = ledger.get(key).copied().unwrap_or(0);
        if held != booked {
            diff.push(format!("book {} account {} {}: balance {held}, ledger entries sum to {booked}", key.0, key.1, key.2));
        }
        totals.entry((key.0.clone(), key.2.clone())).or_default().0 += held;
    }
    for (key, &booked) in &ledger {
        if key.1 == EXTERNAL_ACCOUNT {
            totals.entry((key.0.clone(), key.2.clone())).or_default().1 -= booked;
        } else if !balances.contains_key(key) && booked != 0 {
            diff.push(format!("book {} account {} {}: ledger entries sum to {booked}, no balance row", key.0, key.1, key.2));
        }
    }
    for ((book, asset), (held, came_in)) in totals {
        if held != came_in {
            diff.push(format!("book {book} {asset}: accounts hold {held}, but {came_in} came in from outside (not conserved)"));
        }
    }
    let unbalanced = s.query(
        "SELECT transfer_id, book, asset FROM entries GROUP BY transfer_id, book, asset HAVING SUM(debit) <> SUM(credit)",
        &[],
    )?;
    for r in unbalanced {
        diff.push(format!("transfer {} book {} {}: debits differ from credits", r[0].text()?, r[1].text()?, r[2].text()?));
    }
    let short = s.query(
        "SELECT t.match_number, COUNT(o.id) FROM trades t LEFT JOIN obligations o ON o.match_number = t.match_number \
         GROUP BY t.match_number HAVING COUNT(o.id) <> 2",
        &[],
    )?;
    for r in short {
        diff.push(format!("trade {}: {} obligations, not 2", r[0].int()?, r[1].int()?));
    }
    Ok(Reconciliation { position, accounts: engine_accounts as u64, trades: trades as u64, differences: diff })
}

fn show(v: Option<i64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}
