//! A deliberately simple reference model of the engine's rules: maps, vectors and linear scans, no bitmaps, no
//! intrusive lists, no slab. It is written from the rules in `book.rs`'s module notes, not from its code, and
//! the differential tests require it to emit exactly the engine's events.

#![allow(dead_code)]

use bourse_engine::*;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MLoc {
    Transient,
    Book,
    Stop,
    Queue,
}

#[derive(Clone, Copy, Debug)]
struct MOrder {
    id: u64,
    session: u16,
    user_ref: u32,
    account: u32,
    symbol: u16,
    side: Side,
    kind: OrderKind,
    tif: TimeInForce,
    post_only: bool,
    qty: u32,
    /// Shares the order/replace chain executed: a replace's quantity includes them.
    done: u32,
    price: u32,
    stop: u32,
    lock: u32,
    loc: MLoc,
    time: u64,
}

#[derive(Clone, Copy, Debug)]
struct MSym {
    cfg: AddSymbol,
    lo: u32,
    hi: u32,
    last: u32,
    halted: bool,
    until: u64,
}

#[derive(Clone, Copy, Debug)]
struct MAcct {
    firm: u16,
    stp: SelfTrade,
    short: u32,
    maxq: u32,
    maxn: i64,
    cash: i64,
    locked: i64,
}

pub struct Model {
    cap: Capacity,
    last_seq: u64,
    now: u64,
    matchno: u64,
    next_id: u64,
    clock: u64,
    syms: BTreeMap<u16, MSym>,
    queues: HashMap<u16, Vec<u64>>,
    accts: BTreeMap<u32, MAcct>,
    pos: HashMap<(u32, u16), (i64, i64)>,
    sess: HashMap<u16, u32>,
    last_ref: HashMap<u16, u32>,
    /// Sessions whose firm disabled order entry.
    disabled: HashSet<u16>,
    orders: BTreeMap<u64, MOrder>,
    refs: HashMap<(u16, u32), u64>,
    mw: Option<MarketBreaker>,
    fired: [bool; 3],
    dirty: bool,
}

fn crosses(side: Side, resting: u32, limit: u32) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

impl Model {
    pub fn new(cap: Capacity) -> Model {
        Model {
            cap,
            last_seq: 0,
            now: 0,
            matchno: 0,
            next_id: 1,
            clock: 0,
            syms: BTreeMap::new(),
            queues: HashMap::new(),
            accts: BTreeMap::new(),
            pos: HashMap::new(),
            sess: HashMap::new(),
            last_ref: HashMap::new(),
            disabled: HashSet::new(),
            orders: BTreeMap::new(),
            refs: HashMap::new(),
            mw: None,
            fired: [false; 3],
            dirty: false,
        }
    }

    pub fn cash(&self, a: u32) -> Option<(i64, i64)> {
        self.accts.get(&a).map(|x| (x.cash, x.locked))
    }
    pub fn position(&self, a: u32, s: u16) -> (i64, i64) {
        self.pos.get(&(a, s)).copied().unwrap_or((0, 0))
    }
    pub fn open_orders(&self) -> usize {
        self.orders.len()
    }
    pub fn best(&self, s: u16, side: Side) -> Option<(u32, u32)> {
        let p = self.best_order(s, side).map(|o| o.price)?;
        let q = self
            .orders
            .values()
            .filter(|o| o.loc == MLoc::Book && o.symbol == s && o.side == side && o.price == p)
            .map(|o| o.qty)
            .sum();
        Some((p, q))
    }

    /// Open quantity on the book at `p`.
    pub fn qty_at(&self, s: u16, side: Side, p: u32) -> u32 {
        self.orders
            .values()
            .filter(|o| o.loc == MLoc::Book && o.symbol == s && o.side == side && o.price == p)
            .map(|o| o.qty)
            .sum()
    }

    /// All book levels of `side`, best first, as (price, open quantity).
    pub fn levels(&self, s: u16, side: Side) -> Vec<(u32, u32)> {
        let mut by_price: BTreeMap<u32, u32> = BTreeMap::new();
        for o in self.orders.values() {
            if o.loc == MLoc::Book && o.symbol == s && o.side == side {
                *by_price.entry(o.price).or_default() += o.qty;
            }
        }
        let mut v: Vec<(u32, u32)> = by_price.into_iter().collect();
        if side == Side::Buy {
            v.reverse();
        }
        v
    }

    fn price_ok(&self, s: u16, p: u32) -> bool {
        let c = &self.syms[&s].cfg;
        p >= c.ladder_min_price
            && (p - c.ladder_min_price).is_multiple_of(c.tick)
            && (p - c.ladder_min_price) / c.tick < self.cap.levels_per_symbol
    }

    fn max_price(&self, s: u16) -> u64 {
        let c = &self.syms[&s].cfg;
        c.ladder_min_price as u64 + (self.cap.levels_per_symbol as u64 - 1) * c.tick as u64
    }

    fn collar_up(&self, s: u16, from: u32) -> u32 {
        let c = &self.syms[&s].cfg;
        let t = from as u64 * (10_000 + c.market_collar_bps as u64) / 10_000;
        let mut p = c.ladder_min_price as u64;
        while p + (c.tick as u64) <= t && p + (c.tick as u64) <= self.max_price(s) {
            p += c.tick as u64;
        }
        p as u32
    }

    fn collar_down(&self, s: u16, from: u32) -> u32 {
        let c = &self.syms[&s].cfg;
        let t = from as u64 * (10_000 - (c.market_collar_bps as u64).min(10_000)) / 10_000;
        let mut p = c.ladder_min_price as u64;
        while p < t && p < self.max_price(s) {
            p += c.tick as u64;
        }
        p as u32
    }

    /// Opposite-book orders a taker on `side` meets, best first.
    fn sorted_book(&self, s: u16, side: Side) -> Vec<MOrder> {
        let mut v: Vec<MOrder> = self
            .orders
            .values()
            .filter(|o| o.loc == MLoc::Book && o.symbol == s && o.side == side)
            .copied()
            .collect();
        v.sort_by_key(|o| {
            (
                if side == Side::Buy {
                    u32::MAX - o.price
                } else {
                    o.price
                },
                o.time,
            )
        });
        v
    }

    fn best_order(&self, s: u16, side: Side) -> Option<MOrder> {
        self.sorted_book(s, side).first().copied()
    }

    fn firm(&self, a: u32) -> u16 {
        self.accts[&a].firm
    }

    fn tick_time(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn apply(&mut self, input: &Input, out: &mut Vec<Event>) {
        if input.seq <= self.last_seq {
            return;
        }
        self.last_seq = input.seq;
        self.now = self.now.max(input.timestamp);
        let due: Vec<u16> = self
            .syms
            .iter()
            .filter(|(_, s)| s.halted && s.until != 0 && s.until <= self.now)
            .map(|(&k, _)| k)
            .collect();
        for s in due {
            // A resume earlier in this loop cannot re-halt a later symbol with an already-due time.
            if self.syms[&s].halted && self.syms[&s].until != 0 && self.syms[&s].until <= self.now {
                self.resume(s, out);
            }
        }
        let seq = input.seq;
        let admin = |r: Result<(), RejectReason>, out: &mut Vec<Event>| match r {
            Ok(()) => out.push(Event::AdminApplied { seq }),
            Err(reason) => out.push(Event::AdminRejected { seq, reason }),
        };
        match input.command {
            Command::NewOrder(n) => self.new_order(&n, out),
            Command::Cancel(c) => self.cancel(&c, out),
            Command::Replace(r) => self.replace(&r, out),
            Command::Modify(m) => self.modify(&m, out),
            Command::AddSymbol(a) => {
                let r = self.add_symbol(&a);
                admin(r, out)
            }
            Command::AddAccount(a) => {
                let r = if a.account >= self.cap.accounts_max
                    || self.accts.contains_key(&a.account)
                    || a.max_order_notional < 0
                {
                    Err(RejectReason::InvalidAdmin)
                } else {
                    self.accts.insert(
                        a.account,
                        MAcct {
                            firm: a.firm,
                            stp: a.self_trade,
                            short: a.short_limit,
                            maxq: a.max_order_qty,
                            maxn: a.max_order_notional,
                            cash: 0,
                            locked: 0,
                        },
                    );
                    Ok(())
                };
                admin(r, out)
            }
            Command::Deposit(d) => {
                let all: i128 = self.accts.values().map(|a| a.cash as i128).sum();
                let r = match self.accts.get_mut(&d.account) {
                    None => Err(RejectReason::UnknownAccount),
                    Some(_) if all + d.amount as i128 > i64::MAX as i128 => {
                        Err(RejectReason::InvalidAdmin)
                    }
                    Some(a) => match a.cash.checked_add(d.amount) {
                        None => Err(RejectReason::InvalidAdmin),
                        Some(t) if t < a.locked => Err(RejectReason::InsufficientFunds),
                        Some(t) => {
                            a.cash = t;
                            Ok(())
                        }
                    },
                };
                admin(r, out)
            }
            Command::DepositShares(d) => {
                let r = if !self.accts.contains_key(&d.account) {
                    Err(RejectReason::UnknownAccount)
                } else if !self.syms.contains_key(&d.symbol) {
                    Err(RejectReason::UnknownSymbol)
                } else {
                    self.pos.entry((d.account, d.symbol)).or_default().0 += d.qty as i64;
                    Ok(())
                };
                admin(r, out)
            }
            Command::BindSession(b) => {
                let r = if b.session >= self.cap.sessions_max {
                    Err(RejectReason::InvalidAdmin)
                } else if !self.accts.contains_key(&b.account) {
                    Err(RejectReason::UnknownAccount)
                } else {
                    self.sess.insert(b.session, b.account);
                    Ok(())
                };
                admin(r, out)
            }
            Command::SetMarketBreaker(m) => {
                let [a, b, c] = m.level_bps;
                let r = if 0 < a && a < b && b < c && c <= 10_000 {
                    self.mw = Some(m);
                    self.fired = [false; 3];
                    Ok(())
                } else {
                    Err(RejectReason::InvalidAdmin)
                };
                admin(r, out)
            }
            Command::SetHalt(h) => {
                if !self.syms.contains_key(&h.symbol) {
                    out.push(Event::AdminRejected {
                        seq,
                        reason: RejectReason::UnknownSymbol,
                    });
                } else {
                    out.push(Event::AdminApplied { seq });
                    if h.halted {
                        self.halt(h.symbol, h.until, HaltReason::Operator, out);
                    } else if self.syms[&h.symbol].halted {
                        self.resume(h.symbol, out);
                    }
                }
            }
            Command::Tick | Command::MarketHours(_) | Command::AccountQuery(_) => {
                out.push(Event::AdminApplied { seq })
            }
            Command::MassCancel(m) => self.mass_cancel(&m, out),
            Command::SetOrderEntry(c) => {
                if self.control_ok(c.session, c.user_ref, out) {
                    if c.enabled {
                        self.disabled.remove(&c.session);
                    } else {
                        self.disabled.insert(c.session);
                    }
                    out.push(Event::OrderEntrySet { session: c.session, user_ref: c.user_ref, enabled: c.enabled });
                }
            }
            Command::Refuse(r) => {
                out.push(Event::Refused { session: r.session, user_ref: r.user_ref, reason: r.reason })
            }
        }
        if self.dirty {
            self.dirty = false;
            self.market_wide(out);
        }
    }

    fn add_symbol(&mut self, a: &AddSymbol) -> Result<(), RejectReason> {
        if a.symbol >= self.cap.symbols_max || self.syms.contains_key(&a.symbol) {
            return Err(RejectReason::InvalidAdmin);
        }
        let top =
            a.ladder_min_price as u64 + (self.cap.levels_per_symbol as u64 - 1) * a.tick as u64;
        if a.tick == 0 || a.reference_price == 0 || top > u32::MAX as u64 {
            return Err(RejectReason::InvalidAdmin);
        }
        let b = &a.bands;
        let bps = if a.reference_price > b.tier_high_price {
            b.high_bps
        } else if a.reference_price >= b.tier_low_price {
            b.mid_bps
        } else {
            b.low_bps
        };
        let w = (a.reference_price as u64 * bps as u64 / 10_000) as u32;
        self.syms.insert(
            a.symbol,
            MSym {
                cfg: *a,
                lo: a.reference_price.saturating_sub(w),
                hi: a.reference_price.saturating_add(w),
                last: a.reference_price,
                halted: false,
                until: 0,
            },
        );
        self.queues.insert(a.symbol, Vec::new());
        Ok(())
    }

    fn market_wide(&mut self, out: &mut Vec<Event>) {
        let Some(cfg) = self.mw else { return };
        let reference: u128 = self
            .syms
            .values()
            .map(|s| s.cfg.index_weight as u128 * s.cfg.reference_price as u128)
            .sum();
        let now: u128 = self
            .syms
            .values()
            .map(|s| s.cfg.index_weight as u128 * s.last as u128)
            .sum();
        if reference == 0 {
            return;
        }
        for level in (0..3).rev() {
            if now * 10_000 <= reference * (10_000 - cfg.level_bps[level].min(10_000) as u128) {
                if self.fired[level] {
                    return;
                }
                for f in 0..=level {
                    self.fired[f] = true;
                }
                let until = if cfg.halt_ns[level] == 0 {
                    0
                } else {
                    self.now.saturating_add(cfg.halt_ns[level]).max(1)
                };
                let syms: Vec<u16> = self.syms.keys().copied().collect();
                for s in syms {
                    self.halt(s, until, HaltReason::MarketWide(level as u8 + 1), out);
                }
                return;
            }
        }
    }

    fn halt(&mut self, s: u16, until: u64, reason: HaltReason, out: &mut Vec<Event>) {
        let m = self.syms.get_mut(&s).unwrap();
        m.halted = true;
        m.until = until;
        out.push(Event::TradingAction {
            symbol: s,
            state: TradingState::Halted,
            reason,
        });
    }

    fn resume(&mut self, s: u16, out: &mut Vec<Event>) {
        let m = self.syms.get_mut(&s).unwrap();
        m.halted = false;
        m.until = 0;
        out.push(Event::TradingAction {
            symbol: s,
            state: TradingState::Trading,
            reason: HaltReason::Resumed,
        });
        while !self.syms[&s].halted && !self.queues[&s].is_empty() {
            let id = self.queues.get_mut(&s).unwrap().remove(0);
            self.orders.get_mut(&id).unwrap().loc = MLoc::Transient;
            self.dispatch(id, out);
            self.run_stops(s, out);
        }
        self.run_stops(s, out);
    }

    fn unlock(&mut self, id: u64, q: u32) {
        let o = self.orders[&id];
        match o.side {
            Side::Buy => self.accts.get_mut(&o.account).unwrap().locked -= q as i64 * o.lock as i64,
            Side::Sell => self.pos.entry((o.account, o.symbol)).or_default().1 -= q as i64,
        }
    }

    fn close(&mut self, id: u64) {
        let o = self.orders.remove(&id).unwrap();
        self.refs.remove(&(o.session, o.user_ref));
    }

    fn cancel_rest(&mut self, id: u64, reason: CancelReason, out: &mut Vec<Event>) {
        let o = self.orders[&id];
        self.unlock(id, o.qty);
        out.push(Event::Canceled {
            order_ref: id,
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: o.qty,
            leaves_qty: 0,
            reason,
        });
        self.close(id);
    }

    /// Whether a FOK from `account` fills in full: walk the book as matching would, where an own-firm order stops
    /// it (cancel newest or both), is skipped (cancel oldest: it would be canceled) or counts (allow).
    fn fok_ok(&self, s: u16, side: Side, limit: u32, qty: u32, account: u32) -> bool {
        let sym = self.syms[&s];
        let (firm, stp) = (self.accts[&account].firm, self.accts[&account].stp);
        let mut need = qty as i64;
        let mut visited = 0u32;
        for o in self.sorted_book(s, side.opposite()) {
            if !crosses(side, o.price, limit) || o.price < sym.lo || o.price > sym.hi {
                return false;
            }
            let own = self.firm(o.account) == firm;
            if own && stp == SelfTrade::CancelOldest {
                continue;
            }
            if visited >= self.cap.matches_per_order_max || (own && stp != SelfTrade::Allow) {
                return false;
            }
            visited += 1;
            need -= o.qty as i64;
            if need <= 0 {
                return true;
            }
        }
        false
    }

    fn new_order(&mut self, n: &NewOrder, out: &mut Vec<Event>) {
        let rej = |out: &mut Vec<Event>, reason| {
            out.push(Event::Rejected {
                session: n.session,
                user_ref: n.user_ref,
                reason,
            })
        };
        let Some(&acct) = self.sess.get(&n.session) else {
            return rej(out, RejectReason::UnknownSession);
        };
        if n.user_ref <= self.last_ref.get(&n.session).copied().unwrap_or(0) {
            return rej(out, RejectReason::UserRefNotIncreasing);
        }
        self.last_ref.insert(n.session, n.user_ref);
        if self.disabled.contains(&n.session) {
            return rej(out, RejectReason::EntryDisabled);
        }
        if n.account != acct {
            return rej(out, RejectReason::UnknownAccount);
        }
        let (price, lock, queued) = match self.check_new(n) {
            Ok(v) => v,
            Err(r) => return rej(out, r),
        };
        let id = self.next_id;
        self.next_id += 1;
        let stop = if matches!(n.kind, OrderKind::Stop | OrderKind::StopLimit) {
            n.stop_price
        } else {
            0
        };
        self.orders.insert(
            id,
            MOrder {
                id,
                session: n.session,
                user_ref: n.user_ref,
                account: n.account,
                symbol: n.symbol,
                side: n.side,
                kind: n.kind,
                tif: n.tif,
                post_only: n.post_only,
                qty: n.qty,
                done: 0,
                price,
                stop,
                lock,
                loc: MLoc::Transient,
                time: 0,
            },
        );
        match n.side {
            Side::Buy => {
                self.accts.get_mut(&n.account).unwrap().locked += n.qty as i64 * lock as i64
            }
            Side::Sell => self.pos.entry((n.account, n.symbol)).or_default().1 += n.qty as i64,
        }
        self.refs.insert((n.session, n.user_ref), id);
        out.push(Event::Accepted {
            order_ref: id,
            session: n.session,
            user_ref: n.user_ref,
            account: n.account,
            symbol: n.symbol,
            side: n.side,
            kind: n.kind,
            tif: n.tif,
            qty: n.qty,
            price,
            queued,
        });
        if queued {
            self.orders.get_mut(&id).unwrap().loc = MLoc::Queue;
            self.queues.get_mut(&n.symbol).unwrap().push(id);
        } else {
            self.dispatch(id, out);
            self.run_stops(n.symbol, out);
        }
    }

    fn check_new(&self, n: &NewOrder) -> Result<(u32, u32, bool), RejectReason> {
        use RejectReason as R;
        let acc = self.accts.get(&n.account).ok_or(R::UnknownAccount)?;
        let sym = *self.syms.get(&n.symbol).ok_or(R::UnknownSymbol)?;
        if n.qty == 0 {
            return Err(R::ZeroQuantity);
        }
        if n.qty > acc.maxq {
            return Err(R::QuantityTooLarge);
        }
        let buy = n.side == Side::Buy;
        let stop_ok =
            |p: u32| self.price_ok(n.symbol, p) && if buy { p > sym.last } else { p < sym.last };
        let (price, lock, np) = match n.kind {
            OrderKind::Limit => {
                if !self.price_ok(n.symbol, n.price) {
                    return Err(R::InvalidPrice);
                }
                (n.price, if buy { n.price } else { 0 }, n.price)
            }
            OrderKind::StopLimit => {
                if !self.price_ok(n.symbol, n.price) {
                    return Err(R::InvalidPrice);
                }
                if !stop_ok(n.stop_price) {
                    return Err(R::InvalidStopPrice);
                }
                (n.price, if buy { n.price } else { 0 }, n.price)
            }
            OrderKind::Stop => {
                if !stop_ok(n.stop_price) {
                    return Err(R::InvalidStopPrice);
                }
                let l = if buy {
                    self.collar_up(n.symbol, n.stop_price)
                } else {
                    0
                };
                (0, l, if buy { l } else { n.stop_price })
            }
            OrderKind::Market => {
                if n.post_only {
                    return Err(R::WouldTakeLiquidity);
                }
                if sym.halted {
                    return Err(R::Halted);
                }
                let best = self
                    .best_order(n.symbol, n.side.opposite())
                    .ok_or(R::NoLiquidity)?
                    .price;
                let c = if buy {
                    self.collar_up(n.symbol, best)
                } else {
                    self.collar_down(n.symbol, best)
                };
                (c, if buy { c } else { 0 }, c)
            }
        };
        if sym.halted && n.post_only {
            return Err(R::Halted);
        }
        if n.qty as i128 * np as i128 > acc.maxn as i128 {
            return Err(R::NotionalTooLarge);
        }
        if !sym.halted && n.post_only && n.kind == OrderKind::Limit {
            if let Some(b) = self.best_order(n.symbol, n.side.opposite()) {
                if crosses(n.side, b.price, price) {
                    return Err(R::WouldTakeLiquidity);
                }
            }
        }
        if !sym.halted
            && matches!(n.kind, OrderKind::Limit | OrderKind::Market)
            && n.tif == TimeInForce::Fok
            && !self.fok_ok(n.symbol, n.side, price, n.qty, n.account)
        {
            return Err(R::FokUnfillable);
        }
        if buy {
            if n.qty as i64 * lock as i64 > acc.cash - acc.locked {
                return Err(R::InsufficientFunds);
            }
        } else {
            let (t, l) = self.position(n.account, n.symbol);
            if l + n.qty as i64 > t + acc.short as i64 {
                return Err(R::InsufficientShares);
            }
        }
        if self.orders.len() >= self.cap.orders_max as usize
            || (sym.halted && self.queues[&n.symbol].len() >= self.cap.halt_queue_max as usize)
        {
            return Err(R::CapacityExhausted);
        }
        Ok((price, lock, sym.halted))
    }

    fn dispatch(&mut self, id: u64, out: &mut Vec<Event>) {
        let o = self.orders[&id];
        match o.kind {
            OrderKind::Stop | OrderKind::StopLimit => {
                let t = self.tick_time();
                let m = self.orders.get_mut(&id).unwrap();
                m.loc = MLoc::Stop;
                m.time = t;
            }
            _ => {
                if o.tif == TimeInForce::Fok
                    && !self.fok_ok(o.symbol, o.side, o.price, o.qty, o.account)
                {
                    self.cancel_rest(id, CancelReason::ImmediateOrCancel, out);
                } else {
                    self.execute(id, out);
                }
            }
        }
    }

    fn execute(&mut self, id: u64, out: &mut Vec<Event>) {
        let o = self.orders[&id];
        let s = o.symbol;
        let firm = self.firm(o.account);
        let stp = self.accts[&o.account].stp;
        let mut matches = 0u32;
        let mut capped = false;
        while self.orders[&id].qty > 0 {
            let Some(m) = self.best_order(s, o.side.opposite()) else {
                break;
            };
            if !crosses(o.side, m.price, o.price) {
                break;
            }
            if matches >= self.cap.matches_per_order_max {
                capped = true;
                break;
            }
            if self.firm(m.account) == firm && stp != SelfTrade::Allow {
                if matches!(stp, SelfTrade::CancelOldest | SelfTrade::CancelBoth) {
                    self.unlock(m.id, m.qty);
                    out.push(Event::Canceled {
                        order_ref: m.id,
                        session: m.session,
                        user_ref: m.user_ref,
                        symbol: m.symbol,
                        side: m.side,
                        canceled_qty: m.qty,
                        leaves_qty: 0,
                        reason: CancelReason::SelfTrade,
                    });
                    out.push(Event::BookDelete { order_ref: m.id, symbol: m.symbol });
                    self.close(m.id);
                }
                if stp == SelfTrade::CancelOldest {
                    continue;
                }
                return self.cancel_rest(id, CancelReason::SelfTrade, out);
            }
            let sym = self.syms[&s];
            if m.price < sym.lo || m.price > sym.hi {
                let until = if sym.cfg.bands.halt_ns == 0 {
                    0
                } else {
                    self.now.saturating_add(sym.cfg.bands.halt_ns)
                };
                self.halt(s, until, HaltReason::PriceBand, out);
                if self.queues[&s].len() >= self.cap.halt_queue_max as usize {
                    return self.cancel_rest(id, CancelReason::ImmediateOrCancel, out);
                }
                self.orders.get_mut(&id).unwrap().loc = MLoc::Queue;
                self.queues.get_mut(&s).unwrap().insert(0, id);
                return;
            }
            let leaves = self.orders[&id].qty;
            let q = leaves.min(m.qty);
            let (b, sl) = if o.side == Side::Buy {
                (self.orders[&id], m)
            } else {
                (m, self.orders[&id])
            };
            let cost = q as i64 * m.price as i64;
            let ba = self.accts.get_mut(&b.account).unwrap();
            ba.cash -= cost;
            ba.locked -= q as i64 * b.lock as i64;
            self.accts.get_mut(&sl.account).unwrap().cash += cost;
            self.pos.entry((b.account, s)).or_default().0 += q as i64;
            let sp = self.pos.entry((sl.account, s)).or_default();
            sp.0 -= q as i64;
            sp.1 -= q as i64;
            for x in [m.id, id] {
                let x = self.orders.get_mut(&x).unwrap();
                x.qty -= q;
                x.done += q;
            }
            self.matchno += 1;
            out.push(Event::Executed {
                symbol: s,
                match_number: self.matchno,
                price: m.price,
                qty: q,
                maker: Party {
                    order_ref: m.id,
                    session: m.session,
                    user_ref: m.user_ref,
                    account: m.account,
                    leaves_qty: m.qty - q,
                },
                taker: Party {
                    order_ref: id,
                    session: o.session,
                    user_ref: o.user_ref,
                    account: o.account,
                    leaves_qty: leaves - q,
                },
                taker_side: o.side,
            });
            if m.qty == q {
                self.close(m.id);
            }
            let sym = self.syms.get_mut(&s).unwrap();
            let old = sym.last;
            sym.last = m.price;
            if sym.cfg.index_weight != 0 && old != m.price {
                self.dirty = true;
            }
            matches += 1;
        }
        let left = self.orders[&id];
        if left.qty == 0 {
            self.close(id);
        } else if !capped
            && left.tif == TimeInForce::Day
            && matches!(left.kind, OrderKind::Limit | OrderKind::StopLimit)
        {
            let t = self.tick_time();
            let m = self.orders.get_mut(&id).unwrap();
            m.loc = MLoc::Book;
            m.time = t;
            out.push(Event::BookAdd {
                order_ref: id,
                symbol: s,
                side: o.side,
                price: o.price,
                qty: left.qty,
            });
        } else {
            self.cancel_rest(id, CancelReason::ImmediateOrCancel, out);
        }
    }

    fn run_stops(&mut self, s: u16, out: &mut Vec<Event>) {
        loop {
            if self.syms[&s].halted {
                return;
            }
            let last = self.syms[&s].last;
            let buy = self
                .orders
                .values()
                .filter(|o| {
                    o.loc == MLoc::Stop && o.symbol == s && o.side == Side::Buy && o.stop <= last
                })
                .min_by_key(|o| (o.stop, o.time))
                .copied();
            let pick = buy.or_else(|| {
                self.orders
                    .values()
                    .filter(|o| {
                        o.loc == MLoc::Stop
                            && o.symbol == s
                            && o.side == Side::Sell
                            && o.stop >= last
                    })
                    .min_by_key(|o| (u32::MAX - o.stop, o.time))
                    .copied()
            });
            let Some(o) = pick else { return };
            self.orders.get_mut(&o.id).unwrap().loc = MLoc::Transient;
            out.push(Event::StopTriggered {
                order_ref: o.id,
                session: o.session,
                user_ref: o.user_ref,
                symbol: s,
                trigger_price: last,
            });
            if o.kind == OrderKind::StopLimit {
                self.orders.get_mut(&o.id).unwrap().kind = OrderKind::Limit;
            } else {
                let Some(best) = self.best_order(s, o.side.opposite()) else {
                    self.cancel_rest(o.id, CancelReason::ImmediateOrCancel, out);
                    continue;
                };
                let price = match o.side {
                    Side::Buy => self.collar_up(s, best.price).min(o.lock),
                    Side::Sell => self.collar_down(s, best.price),
                };
                let m = self.orders.get_mut(&o.id).unwrap();
                m.kind = OrderKind::Market;
                m.price = price;
            }
            self.dispatch(o.id, out);
        }
    }

    fn cancel(&mut self, c: &Cancel, out: &mut Vec<Event>) {
        let rej = |out: &mut Vec<Event>, reason| {
            out.push(Event::Rejected {
                session: c.session,
                user_ref: c.user_ref,
                reason,
            })
        };
        if !self.sess.contains_key(&c.session) {
            return rej(out, RejectReason::UnknownSession);
        }
        let ign = |out: &mut Vec<Event>, reason| {
            out.push(Event::Ignored {
                session: c.session,
                user_ref: c.user_ref,
                reason,
            })
        };
        let Some(&id) = self.refs.get(&(c.session, c.user_ref)) else {
            return ign(out, IgnoreReason::UnknownOrder);
        };
        let o = self.orders[&id];
        if c.qty >= o.qty {
            return ign(out, IgnoreReason::NotReduced);
        }
        let cut = o.qty - c.qty;
        self.unlock(id, cut);
        self.orders.get_mut(&id).unwrap().qty = c.qty;
        out.push(Event::Canceled {
            order_ref: id,
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: cut,
            leaves_qty: c.qty,
            reason: CancelReason::UserRequested,
        });
        if o.loc == MLoc::Book {
            out.push(if c.qty == 0 {
                Event::BookDelete {
                    order_ref: id,
                    symbol: o.symbol,
                }
            } else {
                Event::BookReduce {
                    order_ref: id,
                    symbol: o.symbol,
                    canceled_qty: cut,
                }
            });
        }
        if c.qty == 0 {
            if o.loc == MLoc::Queue {
                self.queues.get_mut(&o.symbol).unwrap().retain(|&x| x != id);
            }
            self.close(id);
        }
    }

    /// A mass cancel or order-entry switch acts only for a bound session with a fresh UserRefNum, which it uses.
    fn control_ok(&mut self, session: u16, user_ref: u32, out: &mut Vec<Event>) -> bool {
        if !self.sess.contains_key(&session) {
            out.push(Event::Rejected { session, user_ref, reason: RejectReason::UnknownSession });
            return false;
        }
        if user_ref <= self.last_ref.get(&session).copied().unwrap_or(0) {
            out.push(Event::Ignored { session, user_ref, reason: IgnoreReason::NotIncreasing });
            return false;
        }
        self.last_ref.insert(session, user_ref);
        true
    }

    /// Every open order of the session in scope, symbol by symbol: buy book best first, sell book best first,
    /// buy stops then sell stops by stop price (oldest first within one), then the halt queue in arrival order.
    fn mass_cancel(&mut self, m: &MassCancel, out: &mut Vec<Event>) {
        if !self.control_ok(m.session, m.user_ref, out) {
            return;
        }
        let sides: Vec<Side> =
            [Side::Buy, Side::Sell].into_iter().filter(|s| m.side.is_none_or(|x| x == *s)).collect();
        let syms: Vec<u16> = self.syms.keys().copied().filter(|s| m.symbol.is_none_or(|x| x == *s)).collect();
        let mut canceled = 0;
        for s in syms {
            let mine = |o: &MOrder| o.session == m.session;
            let mut ids: Vec<u64> = Vec::new();
            for &side in &sides {
                ids.extend(self.sorted_book(s, side).iter().filter(|o| mine(o)).map(|o| o.id));
            }
            for &side in &sides {
                let mut stops: Vec<MOrder> = self
                    .orders
                    .values()
                    .filter(|o| o.loc == MLoc::Stop && o.symbol == s && o.side == side && mine(o))
                    .copied()
                    .collect();
                stops.sort_by_key(|o| (o.stop, o.time));
                ids.extend(stops.iter().map(|o| o.id));
            }
            let queued = self.queues[&s].iter().map(|id| self.orders[id]);
            ids.extend(queued.filter(|o| mine(o) && sides.contains(&o.side)).map(|o| o.id));
            for id in ids {
                let o = self.orders[&id];
                self.unlock(id, o.qty);
                out.push(Event::Canceled {
                    order_ref: id,
                    session: o.session,
                    user_ref: o.user_ref,
                    symbol: o.symbol,
                    side: o.side,
                    canceled_qty: o.qty,
                    leaves_qty: 0,
                    reason: CancelReason::UserRequested,
                });
                if o.loc == MLoc::Book {
                    out.push(Event::BookDelete { order_ref: id, symbol: o.symbol });
                }
                if o.loc == MLoc::Queue {
                    self.queues.get_mut(&s).unwrap().retain(|&x| x != id);
                }
                self.close(id);
                canceled += 1;
            }
        }
        out.push(Event::MassCanceled { session: m.session, user_ref: m.user_ref, canceled });
    }

    fn modify(&mut self, m: &Modify, out: &mut Vec<Event>) {
        if !self.sess.contains_key(&m.session) {
            return out.push(Event::Rejected {
                session: m.session,
                user_ref: m.user_ref,
                reason: RejectReason::UnknownSession,
            });
        }
        let ign = |out: &mut Vec<Event>, reason| {
            out.push(Event::Ignored {
                session: m.session,
                user_ref: m.user_ref,
                reason,
            })
        };
        let Some(&id) = self.refs.get(&(m.session, m.user_ref)) else {
            return ign(out, IgnoreReason::UnknownOrder);
        };
        let o = self.orders[&id];
        if m.side != o.side {
            return ign(out, IgnoreReason::SideChange);
        }
        if m.qty > o.qty {
            return ign(out, IgnoreReason::NotReduced);
        }
        let cut = o.qty - m.qty;
        self.unlock(id, cut);
        self.orders.get_mut(&id).unwrap().qty = m.qty;
        out.push(Event::Modified {
            order_ref: id,
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            side_code: m.side_code,
            canceled_qty: cut,
            leaves_qty: m.qty,
        });
        if o.loc == MLoc::Book {
            if m.qty == 0 {
                out.push(Event::BookDelete { order_ref: id, symbol: o.symbol });
            } else if cut != 0 {
                out.push(Event::BookReduce { order_ref: id, symbol: o.symbol, canceled_qty: cut });
            }
        }
        if m.qty == 0 {
            if o.loc == MLoc::Queue {
                self.queues.get_mut(&o.symbol).unwrap().retain(|&x| x != id);
            }
            self.close(id);
        }
    }

    fn replace(&mut self, r: &Replace, out: &mut Vec<Event>) {
        use RejectReason as R;
        let rej = |out: &mut Vec<Event>, reason| {
            out.push(Event::Rejected {
                session: r.session,
                user_ref: r.new_user_ref,
                reason,
            })
        };
        if !self.sess.contains_key(&r.session) {
            return rej(out, R::UnknownSession);
        }
        if r.new_user_ref <= self.last_ref.get(&r.session).copied().unwrap_or(0) {
            return rej(out, R::UserRefNotIncreasing);
        }
        let Some(&id) = self.refs.get(&(r.session, r.orig_user_ref)) else {
            // Not live: ignored, and the new UserRefNum stays unused.
            return out.push(Event::Ignored {
                session: r.session,
                user_ref: r.new_user_ref,
                reason: IgnoreReason::UnknownOrder,
            });
        };
        self.last_ref.insert(r.session, r.new_user_ref);
        let o = self.orders[&id];
        if o.loc != MLoc::Book {
            return rej(out, R::InvalidReplace);
        }
        let acc = self.accts[&o.account];
        if r.qty == 0 {
            return rej(out, R::ZeroQuantity);
        }
        if r.qty > acc.maxq {
            return rej(out, R::QuantityTooLarge);
        }
        if r.qty <= o.done {
            // The chain already executed all it may: nothing left to expose.
            let c = Cancel {
                session: r.session,
                user_ref: r.orig_user_ref,
                qty: 0,
            };
            return self.cancel(&c, out);
        }
        let leaves = r.qty - o.done;
        let crossing = self
            .best_order(o.symbol, o.side.opposite())
            .is_some_and(|b| crosses(o.side, b.price, r.price));
        let check = if !self.price_ok(o.symbol, r.price) {
            Err(R::InvalidPrice)
        } else if leaves as i128 * r.price as i128 > acc.maxn as i128 {
            Err(R::NotionalTooLarge)
        } else if crossing && o.post_only {
            Err(R::WouldTakeLiquidity)
        } else if crossing && self.syms[&o.symbol].halted {
            Err(R::Halted)
        } else if o.side == Side::Buy
            && leaves as i64 * r.price as i64 - o.qty as i64 * o.lock as i64 > acc.cash - acc.locked
        {
            Err(R::InsufficientFunds)
        } else if o.side == Side::Sell && leaves > o.qty && {
            let (t, l) = self.position(o.account, o.symbol);
            l + (leaves - o.qty) as i64 > t + acc.short as i64
        } {
            Err(R::InsufficientShares)
        } else {
            Ok(())
        };
        if let Err(reason) = check {
            return rej(out, reason);
        }
        match o.side {
            Side::Buy => {
                self.accts.get_mut(&o.account).unwrap().locked +=
                    leaves as i64 * r.price as i64 - o.qty as i64 * o.lock as i64
            }
            Side::Sell => {
                self.pos.entry((o.account, o.symbol)).or_default().1 += leaves as i64 - o.qty as i64
            }
        }
        self.refs.remove(&(r.session, r.orig_user_ref));
        // Every replace takes a new reference and goes to the back of its price level.
        let new_id = self.next_id;
        self.next_id += 1;
        let ev = Event::Replaced {
            old_ref: id,
            new_ref: new_id,
            session: r.session,
            orig_user_ref: r.orig_user_ref,
            new_user_ref: r.new_user_ref,
            symbol: o.symbol,
            side: o.side,
            qty: leaves,
            price: r.price,
        };
        let mut m = self.orders.remove(&id).unwrap();
        m.id = new_id;
        m.qty = leaves;
        m.price = r.price;
        m.user_ref = r.new_user_ref;
        m.kind = OrderKind::Limit;
        if m.side == Side::Buy {
            m.lock = r.price;
        }
        self.refs.insert((r.session, r.new_user_ref), new_id);
        out.push(ev);
        if !crossing {
            m.time = self.tick_time();
            self.orders.insert(new_id, m);
            out.push(Event::BookReplace {
                old_ref: id,
                new_ref: new_id,
                symbol: o.symbol,
                price: r.price,
                qty: leaves,
            });
            return;
        }
        m.loc = MLoc::Transient;
        self.orders.insert(new_id, m);
        out.push(Event::Canceled {
            order_ref: id,
            session: o.session,
            user_ref: r.orig_user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: o.qty,
            leaves_qty: 0,
            reason: CancelReason::Replaced,
        });
        out.push(Event::BookDelete {
            order_ref: id,
            symbol: o.symbol,
        });
        self.execute(new_id, out);
        self.run_stops(o.symbol, out);
    }
}
