//! The engine: state and `apply`.
//!
//! State is a handful of arrays sized from [`Capacity`] in [`Engine::new`]; nothing grows afterwards. `apply`
//! first expires halts whose time has come (sequencer time arrives with every input), then dispatches the command.
//! Order handling lives in `book.rs`, snapshots in `snapshot.rs`, invariant checks in `invariants.rs`.

use crate::breaker::{self, MarketWide};
use crate::ladder::{Ladder, List};
use crate::refs::RefTable;
use crate::risk::{Account, Position};
use crate::slab::{Loc, Slab, NIL};
use crate::{
    AccountId, AddAccount, AddSymbol, Bands, BindSession, Capacity, Cash, Command, Deposit,
    DepositShares, Event, EventSink, HaltReason, Input, MarketBreaker, Nanos, OrderKind, OrderRef,
    Price, Qty, RejectReason, SessionId, SetHalt, Side, SymbolId, TradingState, UserRef,
};

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    Truncated {
        offset: usize,
    },
    BadMagic,
    BadVersion(u32),
    /// A field holds a value no engine could have written (e.g. a handle outside capacity).
    Corrupt {
        offset: usize,
        what: &'static str,
    },
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::Truncated { offset } => {
                write!(f, "engine snapshot truncated at byte {offset}")
            }
            SnapshotError::BadMagic => write!(f, "not an engine snapshot (bad magic)"),
            SnapshotError::BadVersion(v) => {
                write!(f, "engine snapshot version {v} is not supported")
            }
            SnapshotError::Corrupt { offset, what } => {
                write!(f, "engine snapshot corrupt at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Read-only view of an account's risk state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub cash_total: Cash,
    pub cash_locked: Cash,
}

/// Read-only view of one open order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub account: AccountId,
    pub symbol: SymbolId,
    pub side: Side,
    /// Current kind: a triggered stop reads as Market, a triggered stop-limit as Limit.
    pub kind: OrderKind,
    /// Open (leaves) quantity.
    pub qty: Qty,
    /// Shares its order/replace chain executed; a replace keeping `qty` open names `qty + executed`.
    pub executed: Qty,
    /// Limit price (the collar for market orders, 0 for an untriggered stop).
    pub price: Price,
    /// On a book (as opposed to a stop book or a halt queue).
    pub resting: bool,
}

/// Read-only view of one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionView {
    pub total: i64,
    pub locked: Qty,
}

/// Largest capacities [`Engine::new`] and [`Engine::restore`] accept: they bound start-up allocation, so that a
/// corrupt snapshot cannot ask for terabytes.
pub const ORDERS_MAX_LIMIT: u32 = 1 << 24;
pub const LADDER_SLOTS_TOTAL_LIMIT: u64 = 1 << 26;
pub const ACCOUNT_SYMBOL_PAIRS_LIMIT: u64 = 1 << 26;

impl Capacity {
    /// Why this capacity cannot be allocated, if it cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.orders_max == 0 || self.orders_max > ORDERS_MAX_LIMIT {
            return Err("orders_max out of range");
        }
        if self.symbols_max == 0 || self.accounts_max == 0 || self.sessions_max == 0 {
            return Err("zero symbols, accounts or sessions");
        }
        if self.levels_per_symbol == 0 || self.matches_per_order_max == 0 {
            return Err("zero levels or matches per order");
        }
        if self.symbols_max as u64 * 4 * self.levels_per_symbol as u64 > LADDER_SLOTS_TOTAL_LIMIT {
            return Err("ladders too large");
        }
        if self.accounts_max as u64 * self.symbols_max as u64 > ACCOUNT_SYMBOL_PAIRS_LIMIT {
            return Err("too many account × symbol positions");
        }
        Ok(())
    }
}

/// Per-symbol configuration and trading state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Symbol {
    pub exists: bool,
    pub config: AddSymbol,
    pub band_low: Price,
    pub band_high: Price,
    pub last_price: Price,
    pub halted: bool,
    /// Sequencer time at which the halt ends; 0 = until an operator resumes.
    pub halt_until: Nanos,
    /// Orders that arrived during the halt, in arrival order.
    pub queue: List,
}

impl Symbol {
    pub(crate) const EMPTY: Symbol = Symbol {
        exists: false,
        config: AddSymbol {
            symbol: 0,
            reference_price: 0,
            ladder_min_price: 0,
            tick: 1,
            bands: Bands::DEFAULT,
            market_collar_bps: 0,
            index_weight: 0,
        },
        band_low: 0,
        band_high: 0,
        last_price: 0,
        halted: false,
        halt_until: 0,
        queue: List::EMPTY,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// Bound account, or `NIL` when unbound.
    pub account: u32,
    pub last_user_ref: u32,
    /// The firm disabled its order entry (OUCH Disable Order Entry): new orders are rejected.
    pub entry_disabled: bool,
}

impl Session {
    pub(crate) const EMPTY: Session = Session {
        account: NIL,
        last_user_ref: 0,
        entry_disabled: false,
    };
}

pub struct Engine {
    pub(crate) cap: Capacity,
    pub(crate) last_seq: u64,
    pub(crate) now: Nanos,
    pub(crate) match_number: u64,
    pub(crate) slab: Slab,
    pub(crate) refs: RefTable,
    /// Resting books, index `symbol * 2 + side` (buy = 0).
    pub(crate) books: Vec<Ladder>,
    /// Stop books by stop price, same indexing.
    pub(crate) stops: Vec<Ladder>,
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) accounts: Vec<Account>,
    /// Index `account * symbols_max + symbol`.
    pub(crate) positions: Vec<Position>,
    pub(crate) sessions: Vec<Session>,
    pub(crate) market: MarketWide,
    /// Earliest `halt_until` of any timed halt (`u64::MAX` when none): one comparison per input in the common case.
    pub(crate) halt_expiry_min: Nanos,
    /// A trade changed the market-wide index during this input.
    pub(crate) index_dirty: bool,
}

fn admin<S: EventSink>(seq: u64, r: Result<(), RejectReason>, out: &mut S) {
    match r {
        Ok(()) => out.event(&Event::AdminApplied { seq }),
        Err(reason) => out.event(&Event::AdminRejected { seq, reason }),
    }
}

#[inline]
pub(crate) fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Engine {
    /// Allocates everything the engine will ever use.
    ///
    /// Panics if `cap` fails [`Capacity::check`]: a configuration error at start-up, not an input.
    pub fn new(cap: Capacity) -> Engine {
        if let Err(why) = cap.check() {
            panic!("invalid engine capacity {cap:?}: {why}");
        }
        let ladders = cap.symbols_max as usize * 2;
        Engine {
            cap,
            last_seq: 0,
            now: 0,
            match_number: 0,
            slab: Slab::new(cap.orders_max),
            refs: RefTable::new(cap.orders_max),
            books: (0..ladders)
                .map(|_| Ladder::new(cap.levels_per_symbol))
                .collect(),
            stops: (0..ladders)
                .map(|_| Ladder::new(cap.levels_per_symbol))
                .collect(),
            symbols: vec![Symbol::EMPTY; cap.symbols_max as usize],
            accounts: vec![Account::EMPTY; cap.accounts_max as usize],
            positions: vec![Position::EMPTY; cap.accounts_max as usize * cap.symbols_max as usize],
            sessions: vec![Session::EMPTY; cap.sessions_max as usize],
            market: MarketWide::EMPTY,
            halt_expiry_min: u64::MAX,
            index_dirty: false,
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    /// Applies one sequenced input. Inputs with `seq <= last_seq()` are ignored (replay idempotency).
    pub fn apply<S: EventSink>(&mut self, input: &Input, out: &mut S) {
        if input.seq <= self.last_seq {
            return;
        }
        self.last_seq = input.seq;
        // Sequencer time never decreases; a regressing timestamp is treated as "no time passed".
        self.now = self.now.max(input.timestamp);
        if self.now >= self.halt_expiry_min {
            self.expire_halts(out);
        }
        let seq = input.seq;
        match &input.command {
            Command::NewOrder(n) => self.new_order(n, out),
            Command::Cancel(c) => self.cancel(c, out),
            Command::Replace(r) => self.replace(r, out),
            Command::Modify(m) => self.modify(m, out),
            Command::AddSymbol(a) => {
                let r = self.add_symbol(a);
                admin(seq, r, out)
            }
            Command::AddAccount(a) => {
                let r = self.add_account(a);
                admin(seq, r, out)
            }
            Command::Deposit(d) => {
                let r = self.deposit(d);
                admin(seq, r, out)
            }
            Command::DepositShares(d) => {
                let r = self.deposit_shares(d);
                admin(seq, r, out)
            }
            Command::BindSession(b) => {
                let r = self.bind_session(b);
                admin(seq, r, out)
            }
            Command::SetMarketBreaker(m) => {
                let r = self.set_market_breaker(m);
                admin(seq, r, out)
            }
            Command::SetHalt(h) => self.set_halt(seq, h, out),
            Command::Tick | Command::MarketHours(_) | Command::AccountQuery(_) => {
                out.event(&Event::AdminApplied { seq })
            }
            Command::MassCancel(m) => self.mass_cancel(m, out),
            Command::SetOrderEntry(c) => self.set_order_entry(c, out),
            Command::Refuse(r) => {
                out.event(&Event::Refused { session: r.session, user_ref: r.user_ref, reason: r.reason })
            }
        }
        if self.index_dirty {
            self.index_dirty = false;
            self.check_market_wide(out);
        }
        // Between inputs, so that the next one, which inserts at most one reference, finds room.
        if self.refs.wants_growth() {
            self.rebuild_refs();
        }
    }

    /// Sizes the reference table to the open orders and one more, inserting them again from the slab. False if
    /// two open orders share a (session, UserRefNum), which only a corrupt snapshot can hold.
    #[cold]
    #[inline(never)]
    pub(crate) fn rebuild_refs(&mut self) -> bool {
        let open = self.slab.open().count();
        self.refs.reset_for(open + 1);
        let mut ok = true;
        for (h, o) in self.slab.open() {
            ok &= self.refs.get(o.session, o.user_ref).is_none() && self.refs.insert(o.session, o.user_ref, h);
        }
        ok
    }

    fn add_symbol(&mut self, a: &AddSymbol) -> Result<(), RejectReason> {
        let s = self
            .symbols
            .get(a.symbol as usize)
            .ok_or(RejectReason::InvalidAdmin)?;
        let span = (self.cap.levels_per_symbol as u64 - 1) * a.tick as u64;
        if s.exists
            || a.tick == 0
            || a.reference_price == 0
            || a.ladder_min_price as u64 + span > u32::MAX as u64
        {
            return Err(RejectReason::InvalidAdmin);
        }
        let (band_low, band_high) = breaker::band(a.reference_price, &a.bands);
        self.symbols[a.symbol as usize] = Symbol {
            exists: true,
            config: *a,
            band_low,
            band_high,
            last_price: a.reference_price,
            halted: false,
            halt_until: 0,
            queue: List::EMPTY,
        };
        let weighted = a.index_weight as u128 * a.reference_price as u128;
        self.market.index_reference += weighted;
        self.market.index_now += weighted;
        Ok(())
    }

    fn add_account(&mut self, a: &AddAccount) -> Result<(), RejectReason> {
        let acc = self
            .accounts
            .get(a.account as usize)
            .ok_or(RejectReason::InvalidAdmin)?;
        if acc.exists || a.max_order_notional < 0 {
            return Err(RejectReason::InvalidAdmin);
        }
        self.accounts[a.account as usize] = Account {
            exists: true,
            firm: a.firm,
            self_trade: a.self_trade,
            short_limit: a.short_limit,
            max_order_qty: a.max_order_qty,
            max_order_notional: a.max_order_notional,
            cash_total: 0,
            cash_locked: 0,
        };
        Ok(())
    }

    fn deposit(&mut self, d: &Deposit) -> Result<(), RejectReason> {
        if !self
            .accounts
            .get(d.account as usize)
            .is_some_and(|a| a.exists)
        {
            return Err(RejectReason::UnknownAccount);
        }
        // All cash in the engine must fit one account, since trades can move all of it into one: then no
        // settlement can overflow.
        let all: i128 = self.accounts.iter().map(|a| a.cash_total as i128).sum();
        if all + d.amount as i128 > i64::MAX as i128 {
            return Err(RejectReason::InvalidAdmin);
        }
        let acc = &mut self.accounts[d.account as usize];
        let total = acc
            .cash_total
            .checked_add(d.amount)
            .ok_or(RejectReason::InvalidAdmin)?;
        if total < acc.cash_locked {
            return Err(RejectReason::InsufficientFunds);
        }
        acc.cash_total = total;
        Ok(())
    }

    fn deposit_shares(&mut self, d: &DepositShares) -> Result<(), RejectReason> {
        if !self
            .accounts
            .get(d.account as usize)
            .is_some_and(|a| a.exists)
        {
            return Err(RejectReason::UnknownAccount);
        }
        if !self
            .symbols
            .get(d.symbol as usize)
            .is_some_and(|s| s.exists)
        {
            return Err(RejectReason::UnknownSymbol);
        }
        let p = &mut self.positions
            [d.account as usize * self.cap.symbols_max as usize + d.symbol as usize];
        p.total = p
            .total
            .checked_add(d.qty as i64)
            .ok_or(RejectReason::InvalidAdmin)?;
        Ok(())
    }

    fn bind_session(&mut self, b: &BindSession) -> Result<(), RejectReason> {
        if b.session >= self.cap.sessions_max {
            return Err(RejectReason::InvalidAdmin);
        }
        if !self
            .accounts
            .get(b.account as usize)
            .is_some_and(|a| a.exists)
        {
            return Err(RejectReason::UnknownAccount);
        }
        self.sessions[b.session as usize].account = b.account;
        Ok(())
    }

    fn set_market_breaker(&mut self, m: &MarketBreaker) -> Result<(), RejectReason> {
        let [a, b, c] = m.level_bps;
        if !(0 < a && a < b && b < c && c <= 10_000) {
            return Err(RejectReason::InvalidAdmin);
        }
        self.market.config = Some(*m);
        self.market.fired = [false; 3];
        Ok(())
    }

    fn set_halt<S: EventSink>(&mut self, seq: u64, h: &SetHalt, out: &mut S) {
        if !self
            .symbols
            .get(h.symbol as usize)
            .is_some_and(|s| s.exists)
        {
            out.event(&Event::AdminRejected {
                seq,
                reason: RejectReason::UnknownSymbol,
            });
            return;
        }
        out.event(&Event::AdminApplied { seq });
        if h.halted {
            self.halt(h.symbol, h.until, HaltReason::Operator, out);
        } else if self.symbols[h.symbol as usize].halted {
            self.resume(h.symbol, out);
        }
    }

    /// Halts one symbol until `until` (0 = until resumed) and publishes it.
    pub(crate) fn halt<S: EventSink>(
        &mut self,
        symbol: SymbolId,
        until: Nanos,
        reason: HaltReason,
        out: &mut S,
    ) {
        let s = &mut self.symbols[symbol as usize];
        s.halted = true;
        s.halt_until = until;
        if until != 0 {
            self.halt_expiry_min = self.halt_expiry_min.min(until);
        }
        out.event(&Event::TradingAction {
            symbol,
            state: TradingState::Halted,
            reason,
        });
    }

    /// Resumes timed halts whose time has come, in symbol order.
    fn expire_halts<S: EventSink>(&mut self, out: &mut S) {
        for s in 0..self.cap.symbols_max {
            let sym = &self.symbols[s as usize];
            if sym.halted && sym.halt_until != 0 && sym.halt_until <= self.now {
                self.resume(s, out);
            }
        }
        self.recompute_halt_expiry();
    }

    pub(crate) fn recompute_halt_expiry(&mut self) {
        self.halt_expiry_min = self
            .symbols
            .iter()
            .filter(|s| s.halted && s.halt_until != 0)
            .map(|s| s.halt_until)
            .min()
            .unwrap_or(u64::MAX);
    }

    fn check_market_wide<S: EventSink>(&mut self, out: &mut S) {
        if let Some((level, halt_ns)) = self.market.level_reached() {
            let until = if halt_ns == 0 {
                0
            } else {
                self.now.saturating_add(halt_ns).max(1)
            };
            for s in 0..self.cap.symbols_max {
                if self.symbols[s as usize].exists {
                    self.halt(s, until, HaltReason::MarketWide(level + 1), out);
                }
            }
        }
    }

    /// Sequence number of the last input applied (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn account(&self, account: AccountId) -> Option<AccountView> {
        let a = self.accounts.get(account as usize).filter(|a| a.exists)?;
        Some(AccountView {
            cash_total: a.cash_total,
            cash_locked: a.cash_locked,
        })
    }

    pub fn position(&self, account: AccountId, symbol: SymbolId) -> Option<PositionView> {
        self.accounts.get(account as usize).filter(|a| a.exists)?;
        self.symbols.get(symbol as usize).filter(|s| s.exists)?;
        let p = self.positions[account as usize * self.cap.symbols_max as usize + symbol as usize];
        Some(PositionView {
            total: p.total,
            locked: u32::try_from(p.locked).unwrap_or(u32::MAX),
        })
    }

    fn best(&self, symbol: SymbolId, side: Side) -> Option<(Price, Qty)> {
        let sym = self.symbols.get(symbol as usize).filter(|s| s.exists)?;
        let ladder = &self.books[symbol as usize * 2 + side_index(side)];
        let idx = match side {
            Side::Buy => ladder.bits.last()?,
            Side::Sell => ladder.bits.first()?,
        };
        let qty = ladder.levels[idx as usize].qty;
        let price = sym.config.ladder_min_price + idx * sym.config.tick;
        Some((price, u32::try_from(qty).unwrap_or(u32::MAX)))
    }

    pub fn best_bid(&self, symbol: SymbolId) -> Option<(Price, Qty)> {
        self.best(symbol, Side::Buy)
    }

    pub fn best_ask(&self, symbol: SymbolId) -> Option<(Price, Qty)> {
        self.best(symbol, Side::Sell)
    }

    /// Open quantity resting on the book at `price` on `side`, O(1); 0 for a price off the ladder's grid.
    pub fn qty_at(&self, symbol: SymbolId, side: Side, price: Price) -> Qty {
        if !self.symbols.get(symbol as usize).is_some_and(|s| s.exists) {
            return 0;
        }
        let Some(idx) = self.price_index(symbol, price) else {
            return 0;
        };
        let qty = self.books[symbol as usize * 2 + side_index(side)].levels[idx as usize].qty;
        u32::try_from(qty).unwrap_or(u32::MAX)
    }

    /// The best `out.len()` price levels of `side`, best first, as (price, open quantity); returns how many were
    /// written. Allocation-free; the cost is one bitmap step per level (what a market-data snapshot or a depth view
    /// needs, not a scan of the ladder).
    pub fn levels(&self, symbol: SymbolId, side: Side, out: &mut [(Price, Qty)]) -> usize {
        let Some(sym) = self.symbols.get(symbol as usize).filter(|s| s.exists) else {
            return 0;
        };
        let ladder = &self.books[symbol as usize * 2 + side_index(side)];
        let mut next = match side {
            Side::Buy => ladder.bits.last(),
            Side::Sell => ladder.bits.first(),
        };
        let mut n = 0;
        while let (Some(idx), true) = (next, n < out.len()) {
            let qty = ladder.levels[idx as usize].qty;
            out[n] = (
                sym.config.ladder_min_price + idx * sym.config.tick,
                u32::try_from(qty).unwrap_or(u32::MAX),
            );
            n += 1;
            next = match side {
                Side::Buy => idx.checked_sub(1).and_then(|i| ladder.bits.prev_from(i)),
                Side::Sell => ladder.bits.next_from(idx + 1),
            };
        }
        n
    }

    /// Orders resting on books, in stop books and in halt queues.
    pub fn orders_open(&self) -> u32 {
        self.cap.orders_max - self.slab.free.len() as u32
    }

    /// Whether the symbol is halted (operator, band or market-wide).
    pub fn is_halted(&self, symbol: SymbolId) -> bool {
        self.symbols.get(symbol as usize).is_some_and(|s| s.halted)
    }

    /// Last trade price of the symbol (its reference price before the first trade).
    pub fn last_price(&self, symbol: SymbolId) -> Option<Price> {
        self.symbols
            .get(symbol as usize)
            .filter(|s| s.exists)
            .map(|s| s.last_price)
    }

    /// The open order an exchange reference names (O(1), no hashing: the reference carries its slot).
    pub fn order(&self, order_ref: OrderRef) -> Option<OrderView> {
        let h = self.slab.lookup(order_ref)?;
        let o = &self.slab.orders[h as usize];
        Some(OrderView {
            session: o.session,
            user_ref: o.user_ref,
            account: o.account,
            symbol: o.symbol,
            side: o.side,
            kind: o.kind,
            qty: o.qty,
            executed: o.executed,
            price: o.price,
            resting: o.loc == Loc::Book,
        })
    }

    /// Whether `session`'s order entry is enabled (OUCH Disable / Enable Order Entry); false for no session.
    pub fn order_entry_enabled(&self, session: SessionId) -> bool {
        self.sessions.get(session as usize).is_some_and(|s| !s.entry_disabled)
    }

    /// The open order a session's UserRefNum names.
    pub fn order_ref_of(&self, session: SessionId, user_ref: UserRef) -> Option<OrderRef> {
        self.refs
            .get(session, user_ref)
            .map(|h| self.slab.order_ref(h))
    }
}
