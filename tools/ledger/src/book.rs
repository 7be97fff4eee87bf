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

/// The database's journal position is not where this batch starts: another ingest booked meanwhile. After a
/// kill this is the killed run's server session committing its last batch after the next run started; the ingest
/// then resumes from the position the database holds.
#[derive(Debug, thiserror::Error)]
#[error("the ledger's journal position is no longer {expected}: another ingest booked meanwhile")]
pub struct PositionMoved {
    pub expected: u64,
}

/// What booking needs besides the movements.
#[derive(Clone, Debug)]
pub struct BookConfig {
    pub calendar: Calendar,
    pub currency: String,
}

/// Books `moves` and sets the journal position to `upto`, in one transaction. `expect_from` is the position the
/// caller's follower started from: if the database is elsewhere (another ingest ran meanwhile), nothing is written.
///
/// Rows go in as multi-row INSERTs and balances change once per account and position per batch: a PostgreSQL
/// round trip per row (13 per trade) held ingest to ~700 trades/s. Within the transaction nothing reads what the
/// batch wrote, so the rows and the balances at commit are the same as statement by statement.
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
            return Err(PositionMoved { expected: expect_from }.into());
        }
        let mut b = Batch::default();
        for m in moves {
            if let Movement::Account { account, firm, .. } = *m {
                s.exec(
                    "INSERT INTO accounts (account, firm, cash, settled_cash) VALUES ($1, $2, 0, 0) \
                     ON CONFLICT DO NOTHING",
                    &[Val::Int(account.into()), Val::Int(firm.into())],
                )?;
            } else {
                b.book(cfg, m);
            }
        }
        b.write(s)
    })
}

/// Rows of one table waiting to be appended in one call ([`Store::append`]: multi-row INSERTs, or COPY).
struct Rows {
    table: &'static str,
    columns: &'static [&'static str],
    vals: Vec<Val>,
}

impl Rows {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Rows {
        Rows { table, columns, vals: Vec::new() }
    }

    fn push(&mut self, row: impl IntoIterator<Item = Val>) {
        let before = self.vals.len();
        self.vals.extend(row);
        debug_assert_eq!(self.vals.len() - before, self.columns.len());
    }

    fn write(&self, s: &mut dyn Store) -> anyhow::Result<()> {
        s.append(self.table, self.columns, &self.vals)
    }
}

/// One batch's writes, gathered: rows per table, and the net change of each balance.
struct Batch {
    trades: Rows,
    obligations: Rows,
    transfers: Rows,
    entries: Rows,
    /// account → (cash, settled cash) change.
    cash: std::collections::BTreeMap<i64, (i64, i64)>,
    /// (account, symbol) → (qty, settled qty) change.
    positions: std::collections::BTreeMap<(i64, u16), (i64, i64)>,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            trades: Rows::new(
                "trades",
                &[
                    "match_number", "seq", "symbol", "price", "qty", "buyer_account", "buyer_firm", "seller_account",
                    "seller_firm", "trade_time_ns", "trade_date", "settle_date", "state",
                ],
            ),
            obligations: Rows::new(
                "obligations",
                &["id", "match_number", "leg", "from_account", "to_account", "asset", "amount", "settle_date", "state"],
            ),
            transfers: Rows::new("transfers", &["id", "seq", "kind", "match_number"]),
            entries: entry_rows(),
            cash: Default::default(),
            positions: Default::default(),
        }
    }
}

impl Batch {
    fn book(&mut self, cfg: &BookConfig, m: &Movement) {
        let cash = cash_asset(&cfg.currency);
        match *m {
            Movement::Account { .. } => {}
            Movement::Cash { seq, account, amount } => {
                let id = ids::deposit_transfer(seq, "cash");
                self.transfer(&id, seq, "DEPOSIT", 0);
                // Deposits are settled money: they enter both books at once.
                let (to, from) = flow(account.into(), EXTERNAL_ACCOUNT, amount);
                self.entries(&id, 0, BOOK_TRADE, to, from, &cash, amount.abs());
                self.entries(&id, 2, BOOK_SETTLED, to, from, &cash, amount.abs());
                let c = self.cash.entry(account.into()).or_default();
                (c.0, c.1) = (c.0 + amount, c.1 + amount);
            }
            Movement::Shares { seq, account, symbol, qty } => {
                let id = ids::deposit_transfer(seq, "shares");
                self.transfer(&id, seq, "DEPOSIT", 0);
                let asset = shares_asset(symbol);
                let (to, from) = flow(account.into(), EXTERNAL_ACCOUNT, qty);
                self.entries(&id, 0, BOOK_TRADE, to, from, &asset, qty.abs());
                self.entries(&id, 2, BOOK_SETTLED, to, from, &asset, qty.abs());
                self.position(account.into(), symbol, qty, qty);
            }
            Movement::Trade(t) => self.trade(cfg, &t),
        }
    }

    fn trade(&mut self, cfg: &BookConfig, t: &Trade) {
        let td = trade_date(t.timestamp_ns);
        let sd = cfg.calendar.settlement_date(td).to_string();
        let buyer = i64::from(t.buyer);
        let seller = i64::from(t.seller);
        self.trades.push([
            Val::Int(t.match_number as i64),
            Val::Int(t.seq as i64),
            Val::Int(t.symbol.into()),
            Val::Int(t.price.into()),
            Val::Int(t.qty.into()),
            Val::Int(buyer),
            Val::Int(t.buyer_firm.into()),
            Val::Int(seller),
            Val::Int(t.seller_firm.into()),
            Val::Int(t.timestamp_ns as i64),
            Val::Text(td.to_string()),
            Val::Text(sd.clone()),
            Val::from("PENDING"),
        ]);
        let cash = cash_asset(&cfg.currency);
        let shares = shares_asset(t.symbol);
        let legs = [(LEG_CASH, buyer, seller, &cash, t.cash()), (LEG_SECURITIES, seller, buyer, &shares, t.qty.into())];
        for (leg, from, to, asset, amount) in legs {
            self.obligations.push([
                Val::Text(ids::obligation(t.match_number, leg)),
                Val::Int(t.match_number as i64),
                Val::from(leg),
                Val::Int(from),
                Val::Int(to),
                Val::Text(asset.clone()),
                Val::Int(amount),
                Val::Text(sd.clone()),
                Val::from("PENDING"),
            ]);
            let id = ids::trade_transfer(t.match_number, leg);
            self.transfer(&id, t.seq, leg, t.match_number as i64);
            self.entries(&id, 0, BOOK_TRADE, to, from, asset, amount);
        }
        self.cash.entry(buyer).or_default().0 -= t.cash();
        self.cash.entry(seller).or_default().0 += t.cash();
        self.position(buyer, t.symbol, t.qty.into(), 0);
        self.position(seller, t.symbol, -i64::from(t.qty), 0);
    }

    fn transfer(&mut self, id: &str, seq: u64, kind: &str, match_number: i64) {
        self.transfers.push([Val::from(id), Val::Int(seq as i64), Val::from(kind), Val::Int(match_number)]);
    }

    #[allow(clippy::too_many_arguments)]
    fn entries(&mut self, id: &str, line: i64, book: &str, debit_account: i64, credit_account: i64, asset: &str, amount: i64) {
        push_entries(&mut self.entries, id, line, book, debit_account, credit_account, asset, amount);
    }

    fn position(&mut self, account: i64, symbol: u16, qty: i64, settled: i64) {
        let p = self.positions.entry((account, symbol)).or_default();
        (p.0, p.1) = (p.0 + qty, p.1 + settled);
    }

    fn write(&self, s: &mut dyn Store) -> anyhow::Result<()> {
        for rows in [&self.trades, &self.obligations, &self.transfers, &self.entries] {
            rows.write(s)?;
        }
        for (&account, &(cash, settled)) in &self.cash {
            s.exec(
                "UPDATE accounts SET cash = cash + $1, settled_cash = settled_cash + $2 WHERE account = $3",
                &[Val::Int(cash), Val::Int(settled), Val::Int(account)],
            )?;
        }
        for (&(account, symbol), &(qty, settled)) in &self.positions {
            add_position(s, account, symbol, qty, settled)?;
        }
        Ok(())
    }
}

/// (receiver, giver) of a signed amount moving from `from` to `to`.
fn flow(to: i64, from: i64, amount: i64) -> (i64, i64) {
    if amount >= 0 {
        (to, from)
    } else {
        (from, to)
    }
}

/// The two entries of one movement of `amount` (≥ 0) of `asset` from `credit_account` to `debit_account`, written
/// now (the settlement run's legs).
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
    let mut rows = entry_rows();
    push_entries(&mut rows, transfer_id, line, book, debit_account, credit_account, asset, amount);
    rows.write(s)
}

fn entry_rows() -> Rows {
    Rows::new("entries", &["transfer_id", "line", "book", "account", "asset", "debit", "credit"])
}

/// Queues the two entries of one movement: the debit on `line`, the credit on `line + 1`.
#[allow(clippy::too_many_arguments)]
fn push_entries(
    rows: &mut Rows,
    transfer_id: &str,
    line: i64,
    book: &str,
    debit_account: i64,
    credit_account: i64,
    asset: &str,
    amount: i64,
) {
    for (line, account, debit, credit) in [(line, debit_account, amount, 0), (line + 1, credit_account, 0, amount)] {
        rows.push([
            Val::from(transfer_id),
            Val::Int(line),
            Val::from(book),
            Val::Int(account),
            Val::from(asset),
            Val::Int(debit),
            Val::Int(credit),
        ]);
    }
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
