//! The settlement run, two-phase per trade, each step its own transaction:
//!
//! ```text
//!  1. intent    settlements row (UUID v5 of trade and run date) with the decision: APPLYING, or FAILED when the
//!               buyer's settled cash or the seller's settled shares fall short (a failed delivery: the trade and
//!               its obligations are marked FAILED in the same transaction, and reported)
//!  2. each leg  transfer keyed by the obligation's id (the idempotency key) + its SETTLED-book entries + the
//!               settled balances + obligation COMPLETED
//!  3. finish    trade SETTLED, intent SETTLED
//! ```
//!
//! A crash between steps leaves a trade with an APPLYING intent: the next run picks that intent up (whatever its
//! run date) and does only the steps still missing. A leg already applied is recognised by its transfer id and
//! never moves money twice. Trades are taken in match-number order, so the outcome does not depend on where a run
//! was interrupted.

use crate::book::{cash_asset, entries, BOOK_SETTLED, LEG_CASH, LEG_SECURITIES};
use crate::ids;
use crate::store::{query_int, transaction, Store, Val};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettleReport {
    pub settled: u64,
    /// Failed deliveries decided in this run: (match number, reason).
    pub failed: Vec<(u64, String)>,
    /// Legs found already applied (by an interrupted earlier run).
    pub legs_resumed: u64,
}

pub fn settle(s: &mut dyn Store, run_date: &str, currency: &str) -> anyhow::Result<SettleReport> {
    let due = s.query(
        "SELECT match_number FROM trades WHERE settle_date <= $1 AND state = 'PENDING' ORDER BY match_number",
        &[Val::from(run_date)],
    )?;
    let mut report = SettleReport::default();
    for row in due {
        let m = row[0].int()?;
        settle_trade(s, m, run_date, currency, &mut report)?;
    }
    Ok(report)
}

fn settle_trade(s: &mut dyn Store, m: i64, run_date: &str, currency: &str, r: &mut SettleReport) -> anyhow::Result<()> {
    // 1. The intent, unless an interrupted run left one.
    let intent = transaction(s, |s| {
        let existing = s.query("SELECT state, reason FROM settlements WHERE match_number = $1", &[Val::Int(m)])?;
        if let Some(row) = existing.first() {
            return Ok(row[0].text()?.to_string());
        }
        let t = &s.query(
            "SELECT buyer_account, seller_account, symbol, price * qty, qty FROM trades WHERE match_number = $1",
            &[Val::Int(m)],
        )?[0];
        let (buyer, seller, symbol, cash, qty) = (t[0].int()?, t[1].int()?, t[2].int()?, t[3].int()?, t[4].int()?);
        let have_cash = query_int(s, "SELECT settled_cash FROM accounts WHERE account = $1", &[Val::Int(buyer)])?;
        let have_qty = query_int(
            s,
            "SELECT settled_qty FROM positions WHERE account = $1 AND symbol = $2",
            &[Val::Int(seller), Val::Int(symbol)],
        )?;
        let reason = if have_cash < cash {
            format!("buyer {buyer} short of cash: settled {have_cash}, owes {cash}")
        } else if have_qty < qty {
            format!("seller {seller} short of shares of symbol {symbol}: settled {have_qty}, owes {qty}")
        } else {
            String::new()
        };
        let state = if reason.is_empty() { "APPLYING" } else { "FAILED" };
        let inserted = s.exec(
            "INSERT INTO settlements (id, match_number, run_date, state, reason) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
            &[Val::Text(ids::settlement(m as u64, run_date)), Val::Int(m), Val::from(run_date), state.into(), reason.clone().into()],
        )?;
        if inserted == 0 {
            // Another run wrote the intent after we looked: a killed run's server session can commit its last
            // transaction after the next run has started. Its decision stands.
            let row = s.query("SELECT state FROM settlements WHERE match_number = $1", &[Val::Int(m)])?;
            let Some(row) = row.first() else {
                anyhow::bail!("trade {m}: the settlement intent conflicted but cannot be read");
            };
            return Ok(row[0].text()?.to_string());
        }
        if !reason.is_empty() {
            s.exec("UPDATE trades SET state = 'FAILED' WHERE match_number = $1", &[Val::Int(m)])?;
            s.exec("UPDATE obligations SET state = 'FAILED' WHERE match_number = $1", &[Val::Int(m)])?;
            r.failed.push((m as u64, reason));
        }
        Ok(state.to_string())
    })?;
    if intent == "FAILED" {
        return Ok(());
    }
    // 2. Each leg, keyed by its obligation.
    for leg in [LEG_CASH, LEG_SECURITIES] {
        let id = ids::obligation(m as u64, leg);
        transaction(s, |s| apply_leg(s, &id, leg, m, currency, r))?;
    }
    // 3. The trade is settled.
    transaction(s, |s| {
        s.exec("UPDATE trades SET state = 'SETTLED' WHERE match_number = $1 AND state = 'PENDING'", &[Val::Int(m)])?;
        s.exec("UPDATE settlements SET state = 'SETTLED' WHERE match_number = $1", &[Val::Int(m)])?;
        Ok(())
    })?;
    r.settled += 1;
    Ok(())
}

fn apply_leg(s: &mut dyn Store, id: &str, leg: &str, m: i64, currency: &str, r: &mut SettleReport) -> anyhow::Result<()> {
    let o = s.query("SELECT from_account, to_account, asset, amount, state FROM obligations WHERE id = $1", &[id.into()])?;
    let Some(o) = o.first() else {
        anyhow::bail!("trade {m}: obligation {leg} ({id}) missing");
    };
    let (from, to, asset, amount) = (o[0].int()?, o[1].int()?, o[2].text()?.to_string(), o[3].int()?);
    let seq = query_int(s, "SELECT seq FROM trades WHERE match_number = $1", &[Val::Int(m)])?;
    let kind = format!("SETTLE_{leg}");
    let inserted = s.exec(
        "INSERT INTO transfers (id, seq, kind, match_number) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[id.into(), Val::Int(seq), kind.into(), Val::Int(m)],
    )?;
    if inserted == 0 {
        r.legs_resumed += 1;
        return Ok(());
    }
    entries(s, id, 0, BOOK_SETTLED, to, from, &asset, amount)?;
    if asset == cash_asset(currency) {
        for (account, delta) in [(from, -amount), (to, amount)] {
            s.exec(
                "UPDATE accounts SET settled_cash = settled_cash + $1 WHERE account = $2",
                &[Val::Int(delta), Val::Int(account)],
            )?;
        }
    } else {
        let symbol = asset.strip_prefix("SYM:").and_then(|v| v.parse::<i64>().ok());
        let Some(symbol) = symbol else {
            anyhow::bail!("trade {m}: obligation {leg} names an unknown asset {asset:?}");
        };
        for (account, delta) in [(from, -amount), (to, amount)] {
            s.exec(
                "UPDATE positions SET settled_qty = settled_qty + $1 WHERE account = $2 AND symbol = $3",
                &[Val::Int(delta), Val::Int(account), Val::Int(symbol)],
            )?;
        }
    }
    let done = s.exec("UPDATE obligations SET state = 'COMPLETED' WHERE id = $1 AND state = 'PENDING'", &[id.into()])?;
    if done != 1 {
        anyhow::bail!("trade {m}: obligation {leg} was not PENDING while its transfer was missing");
    }
    Ok(())
}
