//! Booking a batch of movements: one database transaction that writes the trades, their obligations, the
//! double-entry transfers and the balances, and moves the journal position to the batch's last seq. Either all of
//! it is in the database or none of it: a crash anywhere resumes from the position, so every input is booked
//! exactly once. A trade written twice would violate the `trades` primary key and abort the batch, loudly.

use crate::calendar::{trade_date, Calendar};
use crate::follow::{Movement, Trade};
use crate::ids;
use crate::schema::EXTERNAL_ACCOUNT;
use crate::store::{transaction, Store, Val};

pub const BOOK_TRADE: &str = "TRADE";
pub const BOOK_SETTLED: &str = "SETTLED";
pub const LEG_CASH: &str = "CASH";
pub const LEG_SECURITIES: &str = "SECURITIES";

/// The asset name of cash in `currency`, and of one symbol's shares.
pub fn cash_asset(currency: &str) -> String {
    format!("CASH:{currency}")
}
pub fn shares_asset(symbol: u16) -> String {
    format!("SYM:{symbol}")
}

/// What booking needs besides the movements.
#[derive(Clone, Debug)]
pub struct BookConfig {
    pub calendar: Calendar,
    pub currency: String,
}

/// Books `moves` and sets the journal position to `upto`, in one transaction. `expect_from` is the position the
/// caller's follower started from: if the database is elsewhere (another ingest ran meanwhile), nothing is written.
pub fn book_batch(
    s: &mut dyn Store,
    cfg: &BookConfig,
    expect_from: u64,
    upto: u64,
    moves: &[Movement],
) -> anyhow::Result<()> {
    transaction(s, |s| {
        let moved = s.exec(
            "UPDATE journal_position SET seq = $1 WHERE id = 1 AND seq = $2",
            &[Val::Int(upto as i64), Val::Int(expect_from as i64)],
        )?;
        if moved != 1 {
            anyhow::bail!("the ledger's journal position is no longer {expect_from}: another ingest is running");
        }
        for m in moves {
            book_one(s, cfg, m)?;
        }
        Ok(())
    })
}

fn book_one(s: &mut dyn Store, cfg: &BookConfig, m: &Movement) -> anyhow::Result<()> {
    let cash = cash_asset(&cfg.currency);
    match *m {
        Movement::Account { account, firm, .. } => {
            s.exec(
                "INSERT INTO accounts (account, firm, cash, settled_cash) VALUES ($1, $2, 0, 0) \
                 ON CONFLICT DO NOTHING",
                &[Val::Int(account.into()), Val::Int(firm.into())],
            )?;
        }
        Movement::Cash { seq, account, amount } => {
            let id = ids::deposit_transfer(seq, "cash");
            transfer(s, &id, seq, "DEPOSIT", 0)?;
            // Deposits are settled money: they enter both books at once.
            let (to, from) = flow(account.into(), EXTERNAL_ACCOUNT, amount);
            entries(s, &id, 0, BOOK_TRADE, to, from, &cash, amount.abs())?;
            entries(s, &id, 2, BOOK_SETTLED, to, from, &cash, amount.abs())?;
            s.exec(
                "UPDATE accounts SET cash = cash + $1, settled_cash = settled_cash + $1 WHERE account = $2",
                &[Val::Int(amount), Val::Int(account.into())],
            )?;
        }
        Movement::Shares { seq, account, symbol, qty } => {
            let id = ids::deposit_transfer(seq, "shares");
            transfer(s, &id, seq, "DEPOSIT", 0)?;
            let asset = shares_asset(symbol);
            let (to, from) = flow(account.into(), EXTERNAL_ACCOUNT, qty);
            entries(s, &id, 0, BOOK_TRADE, to, from, &asset, qty.abs())?;
            entries(s, &id, 2, BOOK_SETTLED, to, from, &asset, qty.abs())?;
            add_position(s, account.into(), symbol, qty, qty)?;
        }
        Movement::Trade(t) => book_trade(s, cfg, &t)?,
    }
    Ok(())
}

/// (receiver, giver) of a signed amount moving from `from` to `to`.
fn flow(to: i64, from: i64, amount: i64) -> (i64, i64) {
    if amount >= 0 {
        (to, from)
    } else {
        (from, to)
    }
}

fn book_trade(s: &mut dyn Store, cfg: &BookConfig, t: &Trade) -> anyhow::Result<()> {
    let td = trade_date(t.timestamp_ns);
    let sd = cfg.calendar.settlement_date(td);
    let (td, sd) = (td.to_string(), sd.to_string());
    let buyer = i64::from(t.buyer);
    let seller = i64::from(t.seller);
    let (bf, sf) = (i64::from(t.buyer_firm), i64::from(t.seller_firm));
    s.exec(
        "INSERT INTO trades (match_number, seq, symbol, price, qty, buyer_account, buyer_firm, seller_account, \
         seller_firm, trade_time_ns, trade_date, settle_date, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'PENDING')",
        &[
            Val::Int(t.match_number as i64),
            Val::Int(t.seq as i64),
            Val::Int(t.symbol.into()),
            Val::Int(t.price.into()),
            Val::Int(t.qty.into()),
            Val::Int(buyer),
            Val::Int(bf),
            Val::Int(seller),
            Val::Int(sf),
            Val::Int(t.timestamp_ns as i64),
            Val::Text(td),
            Val::Text(sd.clone()),
        ],
    )?;
    let cash = cash_asset(&cfg.currency);
    let shares = shares_asset(t.symbol);
    let legs = [(LEG_CASH, buyer, seller, &cash, t.cash()), (LEG_SECURITIES, seller, buyer, &shares, t.qty.into())];
    for (leg, from, to, asset, amount) in legs {
        s.exec(
            "INSERT INTO obligations (id, match_number, leg, from_account, to_account, asset, amount, settle_date, \
             state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING')",
            &[
                Val::Text(ids::obligation(t.match_number, leg)),
                Val::Int(t.match_number as i64),
                Val::from(leg),
                Val::Int(from),
                Val::Int(to),
                Val::Text(asset.clone()),
                Val::Int(amount),
                Val::Text(sd.clone()),
            ],
        )?;
        let id = ids::trade_transfer(t.match_number, leg);
        transfer(s, &id, t.seq, leg, t.match_number as i64)?;
        entries(s, &id, 0, BOOK_TRADE, to, from, asset, amount)?;
    }
    s.exec("UPDATE accounts SET cash = cash - $1 WHERE account = $2", &[Val::Int(t.cash()), Val::Int(buyer)])?;
    s.exec("UPDATE accounts SET cash = cash + $1 WHERE account = $2", &[Val::Int(t.cash()), Val::Int(seller)])?;
    add_position(s, buyer, t.symbol, t.qty.into(), 0)?;
    add_position(s, seller, t.symbol, -i64::from(t.qty), 0)?;
    Ok(())
}

pub fn transfer(s: &mut dyn Store, id: &str, seq: u64, kind: &str, match_number: i64) -> anyhow::Result<()> {
    s.exec(
        "INSERT INTO transfers (id, seq, kind, match_number) VALUES ($1, $2, $3, $4)",
        &[Val::from(id), Val::Int(seq as i64), Val::from(kind), Val::Int(match_number)],
    )?;
    Ok(())
}

/// The two entries of one movement of `amount` (≥ 0) of `asset` from `credit_account` to `debit_account`.
#[allow(clippy::too_many_arguments)]
pub fn entries(
    s: &mut dyn Store,
    transfer_id: &str,
    line: i64,
    book: &str,
    debit_account: i64,
    credit_account: i64,
    asset: &str,
    amount: i64,
) -> anyhow::Result<()> {
    let sql = "INSERT INTO entries (transfer_id, line, book, account, asset, debit, credit) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    s.exec(
        sql,
        &[
            Val::from(transfer_id),
            Val::Int(line),
            Val::from(book),
            Val::Int(debit_account),
            Val::from(asset),
            Val::Int(amount),
            Val::Int(0),
        ],
    )?;
    s.exec(
        sql,
        &[
            Val::from(transfer_id),
            Val::Int(line + 1),
            Val::from(book),
            Val::Int(credit_account),
            Val::from(asset),
            Val::Int(0),
            Val::Int(amount),
        ],
    )?;
    Ok(())
}

pub fn add_position(s: &mut dyn Store, account: i64, symbol: u16, qty: i64, settled: i64) -> anyhow::Result<()> {
    let changed = s.exec(
        "UPDATE positions SET qty = qty + $1, settled_qty = settled_qty + $2 WHERE account = $3 AND symbol = $4",
        &[Val::Int(qty), Val::Int(settled), Val::Int(account), Val::Int(symbol.into())],
    )?;
    if changed == 0 {
        s.exec(
            "INSERT INTO positions (account, symbol, qty, settled_qty) VALUES ($1, $2, $3, $4)",
            &[Val::Int(account), Val::Int(symbol.into()), Val::Int(qty), Val::Int(settled)],
        )?;
    }
    Ok(())
}
