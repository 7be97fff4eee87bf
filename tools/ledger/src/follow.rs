//! Following the journal: read-only on the appliance's WAL directory, never taking its lock. The ledger keeps its
//! own engine, fed the same records through the same `Engine::apply` the appliance, its standby and recovery use,
//! so the executions it books are exactly the ones the appliance made, numbered by the same match numbers.
//!
//! The journal is read through a [`Tail`]: it keeps its place in the newest segment, so each step reads only what
//! was appended since the last (re-reading the log from seq 1 every batch made a follower's work grow with the
//! square of the journal's length). Like any reader beside a live writer it stops at the first slot that does not
//! hold a valid record: the writer may be completing it. A record becomes visible here once its `crc|length` word
//! is published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bourse_engine::{AccountId, Capacity, Command, Engine, Event, EventSink, Input, Side, SymbolId};
use bourse_persist::wal::{Record, Tail};

/// One execution, both sides resolved to buyer and seller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub match_number: u64,
    pub seq: u64,
    pub timestamp_ns: u64,
    pub symbol: SymbolId,
    pub price: u32,
    pub qty: u32,
    pub buyer: AccountId,
    pub buyer_firm: u16,
    pub seller: AccountId,
    pub seller_firm: u16,
}

impl Trade {
    /// Cash the buyer pays the seller, in the engine's cash units (price ticks × shares).
    pub fn cash(&self) -> i64 {
        i64::from(self.price) * i64::from(self.qty)
    }
}

/// What one input changed in the books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// An account was opened for a firm.
    Account { seq: u64, account: AccountId, firm: u16 },
    /// Cash deposited (negative: withdrawn), as the engine applied it.
    Cash { seq: u64, account: AccountId, amount: i64 },
    /// Shares deposited (negative: withdrawn).
    Shares { seq: u64, account: AccountId, symbol: SymbolId, qty: i64 },
    Trade(Trade),
}

/// The follower's engine and what it knows of accounts and symbols.
pub struct Follower {
    dir: PathBuf,
    tail: Tail,
    /// The records of one step, kept to reuse their allocation.
    records: Vec<Record>,
    engine: Engine,
    firms: BTreeMap<AccountId, u16>,
    symbols: Vec<SymbolId>,
    trades_seen: u64,
    executions: Vec<(u64, u64, Event)>,
}

struct Collect<'a> {
    input: &'a Input,
    out: &'a mut Vec<(u64, u64, Event)>,
}

impl EventSink for Collect<'_> {
    fn event(&mut self, event: &Event) {
        if matches!(event, Event::Executed { .. }) {
            self.out.push((self.input.seq, self.input.timestamp, *event));
        }
    }
}

impl Follower {
    /// A follower whose engine has applied every input up to `upto` (read from the log from its start).
    pub fn at(dir: &Path, capacity: Capacity, upto: u64) -> anyhow::Result<Follower> {
        let mut f = Follower {
            dir: dir.to_path_buf(),
            tail: Tail::new(dir, 1),
            records: Vec::new(),
            engine: Engine::new(capacity),
            firms: BTreeMap::new(),
            symbols: Vec::new(),
            trades_seen: 0,
            executions: Vec::new(),
        };
        let mut sink = Vec::new();
        while f.engine.last_seq() < upto {
            let want = (upto - f.engine.last_seq()) as usize;
            let before = f.engine.last_seq();
            f.step(want.min(65_536), upto, &mut sink)?;
            sink.clear();
            if f.engine.last_seq() == before {
                bail!("{}: the journal ends at seq {before}, but the ledger covers seq {upto}", dir.display());
            }
        }
        Ok(f)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    pub fn last_seq(&self) -> u64 {
        self.engine.last_seq()
    }
    pub fn accounts(&self) -> impl Iterator<Item = (AccountId, u16)> + '_ {
        self.firms.iter().map(|(a, f)| (*a, *f))
    }
    pub fn symbols(&self) -> &[SymbolId] {
        &self.symbols
    }
    /// Executions derived so far, from seq 1.
    pub fn trades_seen(&self) -> u64 {
        self.trades_seen
    }

    /// Applies up to `records_max` further records, none past seq `through` (how far the journal is committed;
    /// see [`crate::commit`]), appending what they moved to `out`; returns how many were applied (0: nothing new
    /// yet). A record past `through` is not read: the tail stays before it.
    pub fn step(&mut self, records_max: usize, through: u64, out: &mut Vec<Movement>) -> anyhow::Result<usize> {
        let allowed = usize::try_from(through.saturating_sub(self.engine.last_seq())).unwrap_or(usize::MAX);
        let records_max = records_max.min(allowed);
        if records_max == 0 {
            return Ok(0);
        }
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        self.tail
            .poll(records_max, |r| records.push(*r))
            .with_context(|| format!("reading the journal in {}", self.dir.display()))?;
        for r in &records {
            if r.input.seq != self.engine.last_seq() + 1 {
                bail!("journal seq {} follows {}: a gap", r.input.seq, self.engine.last_seq());
            }
            self.apply(&r.input, out);
        }
        let n = records.len();
        self.records = records;
        Ok(n)
    }

    fn apply(&mut self, input: &Input, out: &mut Vec<Movement>) {
        let seq = input.seq;
        match input.command {
            Command::Deposit(d) => {
                let before = self.engine.account(d.account).map_or(0, |a| a.cash_total);
                self.engine.apply(input, &mut bourse_engine::NullSink);
                let after = self.engine.account(d.account).map_or(0, |a| a.cash_total);
                if after != before {
                    out.push(Movement::Cash { seq, account: d.account, amount: after - before });
                }
            }
            Command::DepositShares(d) => {
                let before = self.engine.position(d.account, d.symbol).map_or(0, |p| p.total);
                self.engine.apply(input, &mut bourse_engine::NullSink);
                let after = self.engine.position(d.account, d.symbol).map_or(0, |p| p.total);
                if after != before {
                    out.push(Movement::Shares { seq, account: d.account, symbol: d.symbol, qty: after - before });
                }
            }
            Command::AddAccount(a) => {
                let existed = self.engine.account(a.account).is_some();
                self.engine.apply(input, &mut bourse_engine::NullSink);
                if !existed && self.engine.account(a.account).is_some() {
                    self.firms.insert(a.account, a.firm);
                    out.push(Movement::Account { seq, account: a.account, firm: a.firm });
                }
            }
            Command::AddSymbol(s) => {
                self.engine.apply(input, &mut bourse_engine::NullSink);
                if !self.symbols.contains(&s.symbol) && self.engine.last_price(s.symbol).is_some() {
                    self.symbols.push(s.symbol);
                }
            }
            _ => {
                self.executions.clear();
                let mut sink = Collect { input, out: &mut self.executions };
                self.engine.apply(input, &mut sink);
                for &(seq, timestamp_ns, e) in &self.executions {
                    if let Event::Executed { symbol, match_number, price, qty, maker, taker, taker_side } = e {
                        let (buyer, seller) = match taker_side {
                            Side::Buy => (taker.account, maker.account),
                            Side::Sell => (maker.account, taker.account),
                        };
                        self.trades_seen += 1;
                        out.push(Movement::Trade(Trade {
                            match_number,
                            seq,
                            timestamp_ns,
                            symbol,
                            price,
                            qty,
                            buyer,
                            buyer_firm: self.firms.get(&buyer).copied().unwrap_or(0),
                            seller,
                            seller_firm: self.firms.get(&seller).copied().unwrap_or(0),
                        }));
                    }
                }
            }
        }
    }
}
