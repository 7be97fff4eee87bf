//! Order handling: entry checks, matching, stops, halt queues, cancel and replace.
//!
//! Every path follows one shape: validate without side effects (so a reject changes nothing but the session's last
//! UserRefNum), then answer the session first (Accepted / Replaced / Canceled), then act, publishing book changes
//! and executions as they happen. Loops are bounded by `matches_per_order_max` (fills per order) and by
//! `orders_max` (stop cascades and halt-queue releases, since each step removes one order).
//!
//! Rules chosen here (documented for the wire and persistence engineers):
//! - A market order is priced on entry: its collar is the best opposite price moved `market_collar_bps` through
//!   the book (rounded to the tick grid, clamped to the ladder), and it then behaves as an IOC limit at the collar.
//!   A buy locks cash at the collar. Market orders and post-only orders are rejected with `Halted` during a halt
//!   (they cannot be priced or checked against a book that will change before they run); every other order is
//!   accepted with `queued = true`.
//! - A stop-market buy locks cash at its stop price moved `market_collar_bps` up. When it triggers, it becomes an
//!   IOC at `min(collar of the best ask, its locked price)`, so it can never pay more than it locked. A stop
//!   (limit) order must be placed on the far side of the last trade price (buy stops above it, sell stops below it),
//!   or it is rejected with `InvalidStopPrice`. `post_only` is honoured only by limit orders.
//! - Triggered stops run one at a time after the order that moved the price finished: buy stops from the lowest
//!   stop price up, then sell stops from the highest down, FIFO within a price.
//! - Self-trade prevention is the incoming order's account's [`SelfTrade`] rule, met when the best resting order
//!   belongs to the same firm: cancel newest (the incoming remainder is canceled, the default), cancel oldest (the
//!   resting order is canceled whole, Canceled + BookDelete, and matching goes on; a cancel is not a match), cancel
//!   both, or allow (the firm trades with itself).
//! - FOK is checked before acceptance: the quantity reachable at acceptable prices, within the price band and
//!   within `matches_per_order_max` orders, must cover the order; a same-firm order on the way stops the walk
//!   under cancel newest and cancel both, is passed over under cancel oldest, and counts under allow.
//! - Rejections of a replace carry the replace's `new_user_ref`; rejections of a cancel carry the order's
//!   `user_ref`. A rejected new order or replace still consumes its UserRefNum (it must keep increasing).
//! - A new order's `account` must be the account its session is bound to (`UnknownAccount` otherwise), and its
//!   session's order entry must be enabled (`EntryDisabled` otherwise; checked after the UserRefNum is used up).
//! - A cancel of an order that is not open, or with `qty >= leaves`, changes nothing and is reported as
//!   `Ignored` (OUCH 5.0 section 2.3: superfluous cancels are silently ignored). So is a replace of an order that
//!   is not open; it does not use up its new UserRefNum (section 2.2, case 1).
//! - Replace applies only to orders resting on a book (stop and queued orders: `InvalidReplace`). Its `qty` is
//!   the total liable quantity of the order/replace chain (section 2.2): the order's new open quantity is `qty`
//!   less what the chain executed, and a `qty` the chain has already executed cancels the order (Canceled
//!   UserRequested). A replace always loses time priority: the order gets a new reference, Replaced +
//!   BookReplace when it rests, or, when the new price crosses the book, Replaced + Canceled(Replaced) for the
//!   old reference's resting quantity + BookDelete, then it matches as an incoming order.

use crate::engine::{side_index, Engine};
use crate::risk::Account;
use crate::slab::{Loc, Order, NIL};
use crate::{SelfTrade, 
    Cancel, CancelReason, Event, EventSink, HaltReason, IgnoreReason, NewOrder, OrderKind, Party,
    Price, RejectReason, Replace, SessionId, Side, SymbolId, TimeInForce, UserRef,
};

impl Engine {
    /// Ladder slot of `price` for `symbol`, if the price is on the ladder's grid.
    #[inline]
    pub(crate) fn price_index(&self, symbol: SymbolId, price: Price) -> Option<u32> {
        let c = &self.symbols[symbol as usize].config;
        let off = price.checked_sub(c.ladder_min_price)?;
        if off % c.tick != 0 {
            return None;
        }
        let idx = off / c.tick;
        (idx < self.cap.levels_per_symbol).then_some(idx)
    }

    #[inline]
    pub(crate) fn price_of(&self, symbol: SymbolId, idx: u32) -> Price {
        let c = &self.symbols[symbol as usize].config;
        c.ladder_min_price + idx * c.tick
    }

    /// Best level of the given book side: (slot, price).
    #[inline]
    pub(crate) fn best_level(&self, symbol: SymbolId, side: Side) -> Option<(u32, Price)> {
        let ladder = &self.books[symbol as usize * 2 + side_index(side)];
        let idx = match side {
            Side::Buy => ladder.bits.last()?,
            Side::Sell => ladder.bits.first()?,
        };
        Some((idx, self.price_of(symbol, idx)))
    }

    /// Highest grid price not above `best × (1 + bps)`, clamped to the ladder.
    fn collar_up(&self, symbol: SymbolId, from: Price) -> Price {
        let c = &self.symbols[symbol as usize].config;
        let bps = self.symbols[symbol as usize].config.market_collar_bps as u64;
        let target = from as u64 * (10_000 + bps) / 10_000;
        let max_idx = self.cap.levels_per_symbol as u64 - 1;
        let idx = (target.saturating_sub(c.ladder_min_price as u64) / c.tick as u64).min(max_idx);
        c.ladder_min_price + idx as u32 * c.tick
    }

    /// Lowest grid price not below `best × (1 − bps)`, clamped to the ladder.
    fn collar_down(&self, symbol: SymbolId, from: Price) -> Price {
        let c = &self.symbols[symbol as usize].config;
        let bps = (c.market_collar_bps as u64).min(10_000);
        let target = from as u64 * (10_000 - bps) / 10_000;
        let off = target.saturating_sub(c.ladder_min_price as u64);
        let idx = off
            .div_ceil(c.tick as u64)
            .min(self.cap.levels_per_symbol as u64 - 1);
        c.ladder_min_price + idx as u32 * c.tick
    }

    #[inline]
    fn firm_of(&self, account: u32) -> u16 {
        self.accounts[account as usize].firm
    }

    /// Cancels resting order `m` whole for self-trade prevention: Canceled to its session, then BookDelete.
    fn cancel_resting_self_trade<S: EventSink>(&mut self, m: u32, out: &mut S) {
        let o = self.slab.orders[m as usize];
        let cut = self.cut_to(m, 0);
        out.event(&Event::Canceled {
            order_ref: self.slab.order_ref(m),
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: cut,
            leaves_qty: 0,
            reason: CancelReason::SelfTrade,
        });
        self.publish_cut(m, &o, cut, 0, out);
    }

    #[inline]
    fn pos_index(&self, account: u32, symbol: SymbolId) -> usize {
        account as usize * self.cap.symbols_max as usize + symbol as usize
    }

    /// Releases the risk lock held by `qty` open shares of order `h`.
    #[inline]
    fn unlock(&mut self, h: u32, qty: u32) {
        let o = self.slab.orders[h as usize];
        match o.side {
            Side::Buy => {
                self.accounts[o.account as usize].cash_locked -= qty as i64 * o.lock_price as i64
            }
            Side::Sell => {
                let p = self.pos_index(o.account, o.symbol);
                self.positions[p].locked -= qty as i64;
            }
        }
    }

    /// Forgets a closed order: its token and its slot.
    #[inline]
    fn finish(&mut self, h: u32) {
        let o = &self.slab.orders[h as usize];
        if o.indexed {
            let removed = self.refs.remove(o.session, o.user_ref);
            debug_assert!(removed);
        }
        self.slab.release(h);
    }

    /// Enters an order that outlives its input in the (session, UserRefNum) table, so that a later cancel or
    /// replace finds it.
    #[inline]
    fn index(&mut self, h: u32) {
        let o = &mut self.slab.orders[h as usize];
        if !o.indexed {
            o.indexed = true;
            // Cannot fail: the engine grew the table after the last input to leave room for this one.
            let inserted = self.refs.insert(o.session, o.user_ref, h);
            debug_assert!(inserted);
        }
    }

    /// Cancels the whole open quantity of a transient (incoming) order.
    fn cancel_remainder<S: EventSink>(&mut self, h: u32, reason: CancelReason, out: &mut S) {
        let o = self.slab.orders[h as usize];
        self.unlock(h, o.qty);
        out.event(&Event::Canceled {
            order_ref: self.slab.order_ref(h),
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: o.qty,
            leaves_qty: 0,
            reason,
        });
        self.slab.orders[h as usize].qty = 0;
        self.finish(h);
    }

    pub(crate) fn new_order<S: EventSink>(&mut self, n: &NewOrder, out: &mut S) {
        let reject = |out: &mut S, reason| {
            out.event(&Event::Rejected {
                session: n.session,
                user_ref: n.user_ref,
                reason,
            });
        };
        let Some(sess) = self
            .sessions
            .get(n.session as usize)
            .copied()
            .filter(|s| s.account != NIL)
        else {
            return reject(out, RejectReason::UnknownSession);
        };
        if n.user_ref <= sess.last_user_ref {
            return reject(out, RejectReason::UserRefNotIncreasing);
        }
        self.sessions[n.session as usize].last_user_ref = n.user_ref;
        if sess.entry_disabled {
            return reject(out, RejectReason::EntryDisabled);
        }
        if n.account != sess.account {
            return reject(out, RejectReason::UnknownAccount);
        }
        let (price, lock_price, queued) = match self.check_new(n) {
            Ok(v) => v,
            Err(reason) => return reject(out, reason),
        };
        let Some(h) = self.slab.alloc() else {
            return reject(out, RejectReason::CapacityExhausted);
        };
        let stop_price = if matches!(n.kind, OrderKind::Stop | OrderKind::StopLimit) {
            n.stop_price
        } else {
            0
        };
        let gen = self.slab.orders[h as usize].gen;
        self.slab.orders[h as usize] = Order {
            gen,
            next: NIL,
            prev: NIL,
            account: n.account,
            user_ref: n.user_ref,
            qty: n.qty,
            executed: 0,
            price,
            stop_price,
            lock_price,
            slot: 0,
            session: n.session,
            symbol: n.symbol,
            side: n.side,
            kind: n.kind,
            tif: n.tif,
            post_only: n.post_only,
            loc: Loc::Transient,
            indexed: false,
        };
        match n.side {
            Side::Buy => {
                self.accounts[n.account as usize].cash_locked += n.qty as i64 * lock_price as i64
            }
            Side::Sell => {
                let p = self.pos_index(n.account, n.symbol);
                self.positions[p].locked += n.qty as i64;
            }
        }
        out.event(&Event::Accepted {
            order_ref: self.slab.order_ref(h),
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
            self.index(h);
            self.slab.orders[h as usize].loc = Loc::Queue;
            let orders = &mut self.slab.orders;
            self.symbols[n.symbol as usize].queue.push_back(orders, h);
        } else {
            self.dispatch(h, out);
            self.run_stops(n.symbol, out);
        }
    }

    /// Every check of a new order that needs no side effect. Returns (price, lock price, queued).
    fn check_new(&self, n: &NewOrder) -> Result<(Price, Price, bool), RejectReason> {
        use RejectReason as R;
        let acc = self
            .accounts
            .get(n.account as usize)
            .filter(|a| a.exists)
            .ok_or(R::UnknownAccount)?;
        let sym = self
            .symbols
            .get(n.symbol as usize)
            .filter(|s| s.exists)
            .ok_or(R::UnknownSymbol)?;
        if n.qty == 0 {
            return Err(R::ZeroQuantity);
        }
        if n.qty > acc.max_order_qty {
            return Err(R::QuantityTooLarge);
        }
        let halted = sym.halted;
        let buy = n.side == Side::Buy;
        let stop_ok = |stop: Price| {
            self.price_index(n.symbol, stop).is_some()
                && if buy {
                    stop > sym.last_price
                } else {
                    stop < sym.last_price
                }
        };
        // (limit price, lock price of a buy, price the notional is measured at)
        let (price, lock_price, notional_price) = match n.kind {
            OrderKind::Limit => {
                self.price_index(n.symbol, n.price).ok_or(R::InvalidPrice)?;
                (n.price, if buy { n.price } else { 0 }, n.price)
            }
            OrderKind::StopLimit => {
                self.price_index(n.symbol, n.price).ok_or(R::InvalidPrice)?;
                if !stop_ok(n.stop_price) {
                    return Err(R::InvalidStopPrice);
                }
                (n.price, if buy { n.price } else { 0 }, n.price)
            }
            OrderKind::Stop => {
                if !stop_ok(n.stop_price) {
                    return Err(R::InvalidStopPrice);
                }
                let lock = if buy {
                    self.collar_up(n.symbol, n.stop_price)
                } else {
                    0
                };
                (0, lock, if buy { lock } else { n.stop_price })
            }
            OrderKind::Market => {
                if n.post_only {
                    return Err(R::WouldTakeLiquidity);
                }
                if halted {
                    return Err(R::Halted);
                }
                let (_, best) = self
                    .best_level(n.symbol, n.side.opposite())
                    .ok_or(R::NoLiquidity)?;
                let collar = if buy {
                    self.collar_up(n.symbol, best)
                } else {
                    self.collar_down(n.symbol, best)
                };
                (collar, if buy { collar } else { 0 }, collar)
            }
        };
        if halted && n.post_only {
            return Err(R::Halted);
        }
        if n.qty as i128 * notional_price as i128 > acc.max_order_notional as i128 {
            return Err(R::NotionalTooLarge);
        }
        let executable = matches!(n.kind, OrderKind::Limit | OrderKind::Market);
        if !halted && n.post_only && n.kind == OrderKind::Limit {
            if let Some((_, best)) = self.best_level(n.symbol, n.side.opposite()) {
                if crosses(n.side, best, price) {
                    return Err(R::WouldTakeLiquidity);
                }
            }
        }
        if !halted
            && executable
            && n.tif == TimeInForce::Fok
            && !self.fok_fillable(n.symbol, n.side, price, n.qty, n.account)
        {
            return Err(R::FokUnfillable);
        }
        match n.side {
            Side::Buy => {
                if n.qty as i64 * lock_price as i64 > acc.cash_free() {
                    return Err(R::InsufficientFunds);
                }
            }
            Side::Sell => {
                if !self.positions[self.pos_index(n.account, n.symbol)]
                    .can_lock(n.qty as u64, acc.short_limit)
                {
                    return Err(R::InsufficientShares);
                }
            }
        }
        if self.slab.free.is_empty() || (halted && sym.queue.count >= self.cap.halt_queue_max) {
            return Err(R::CapacityExhausted);
        }
        Ok((price, lock_price, halted))
    }

    /// Whether an incoming order of `qty` could fill in full right now (see the module notes).
    fn fok_fillable(
        &self,
        symbol: SymbolId,
        side: Side,
        limit: Price,
        qty: u32,
        account: u32,
    ) -> bool {
        let Account { firm, self_trade, .. } = self.accounts[account as usize];
        let s = &self.symbols[symbol as usize];
        let ladder = &self.books[symbol as usize * 2 + side_index(side.opposite())];
        let mut need = qty as u64;
        let mut visited = 0u32;
        let mut next = match side {
            Side::Buy => ladder.bits.first(),
            Side::Sell => ladder.bits.last(),
        };
        while let Some(idx) = next {
            let price = self.price_of(symbol, idx);
            if !crosses(side, price, limit) || price < s.band_low || price > s.band_high {
                return false;
            }
            let mut h = ladder.levels[idx as usize].list.head;
            while h != NIL {
                let o = &self.slab.orders[h as usize];
                let own = self.firm_of(o.account) == firm;
                if own && self_trade == SelfTrade::CancelOldest {
                    // It would be canceled, not traded: neither fills nor uses up a match.
                    h = o.next;
                    continue;
                }
                if visited >= self.cap.matches_per_order_max || (own && self_trade != SelfTrade::Allow) {
                    return false;
                }
                visited += 1;
                need = need.saturating_sub(o.qty as u64);
                if need == 0 {
                    return true;
                }
                h = o.next;
            }
            next = match side {
                Side::Buy => ladder.bits.next_from(idx + 1),
                Side::Sell if idx == 0 => None,
                Side::Sell => ladder.bits.prev_from(idx - 1),
            };
        }
        false
    }

    /// Sends a transient order where its kind says: the stop book, or matching (after the FOK check).
    fn dispatch<S: EventSink>(&mut self, h: u32, out: &mut S) {
        let o = self.slab.orders[h as usize];
        match o.kind {
            OrderKind::Stop | OrderKind::StopLimit => {
                let idx = self.price_index(o.symbol, o.stop_price).unwrap_or(0);
                self.index(h);
                self.slab.orders[h as usize].loc = Loc::Stop;
                self.stops[o.symbol as usize * 2 + side_index(o.side)].push_back(
                    &mut self.slab.orders,
                    idx,
                    h,
                );
            }
            OrderKind::Limit | OrderKind::Market => {
                if o.tif == TimeInForce::Fok
                    && !self.fok_fillable(o.symbol, o.side, o.price, o.qty, o.account)
                {
                    self.cancel_remainder(h, CancelReason::ImmediateOrCancel, out);
                } else {
                    self.execute(h, out);
                }
            }
        }
    }

    /// Matches a transient order against the opposite book, then rests or cancels what is left.
    fn execute<S: EventSink>(&mut self, h: u32, out: &mut S) {
        let o = self.slab.orders[h as usize];
        let sym = o.symbol;
        let Account { firm, self_trade, .. } = self.accounts[o.account as usize];
        let opp = sym as usize * 2 + side_index(o.side.opposite());
        let (band_low, band_high) = (
            self.symbols[sym as usize].band_low,
            self.symbols[sym as usize].band_high,
        );
        let mut matches = 0u32;
        let mut capped = false;
        while self.slab.orders[h as usize].qty != 0 {
            let Some((idx, price)) = self.best_level(sym, o.side.opposite()) else {
                break;
            };
            if !crosses(o.side, price, o.price) {
                break;
            }
            if matches >= self.cap.matches_per_order_max {
                capped = true;
                break;
            }
            let m = self.books[opp].levels[idx as usize].list.head;
            let maker = self.slab.orders[m as usize];
            if self.firm_of(maker.account) == firm {
                match self_trade {
                    SelfTrade::Allow => {}
                    SelfTrade::CancelNewest => return self.cancel_remainder(h, CancelReason::SelfTrade, out),
                    SelfTrade::CancelOldest => {
                        self.cancel_resting_self_trade(m, out);
                        continue;
                    }
                    SelfTrade::CancelBoth => {
                        self.cancel_resting_self_trade(m, out);
                        return self.cancel_remainder(h, CancelReason::SelfTrade, out);
                    }
                }
            }
            if price < band_low || price > band_high {
                self.band_halt(h, out);
                return;
            }
            let leaves = self.slab.orders[h as usize].qty;
            let q = leaves.min(maker.qty);
            self.settle(m, h, price, q);
            self.slab.orders[m as usize].qty -= q;
            self.slab.orders[m as usize].executed += q;
            self.books[opp].levels[idx as usize].qty -= q as u64;
            self.slab.orders[h as usize].qty -= q;
            self.slab.orders[h as usize].executed += q;
            self.match_number += 1;
            out.event(&Event::Executed {
                symbol: sym,
                match_number: self.match_number,
                price,
                qty: q,
                maker: Party {
                    order_ref: self.slab.order_ref(m),
                    session: maker.session,
                    user_ref: maker.user_ref,
                    account: maker.account,
                    leaves_qty: maker.qty - q,
                },
                taker: Party {
                    order_ref: self.slab.order_ref(h),
                    session: o.session,
                    user_ref: o.user_ref,
                    account: o.account,
                    leaves_qty: leaves - q,
                },
                taker_side: o.side,
            });
            if maker.qty == q {
                self.books[opp].remove(&mut self.slab.orders, idx, m);
                self.finish(m);
            }
            self.set_last_price(sym, price);
            matches += 1;
        }
        let left = self.slab.orders[h as usize];
        if left.qty == 0 {
            self.finish(h);
        } else if !capped
            && left.tif == TimeInForce::Day
            && matches!(left.kind, OrderKind::Limit | OrderKind::StopLimit)
        {
            self.rest(h, out);
        } else {
            self.cancel_remainder(h, CancelReason::ImmediateOrCancel, out);
        }
    }

    /// Puts a transient order on its book and publishes it.
    fn rest<S: EventSink>(&mut self, h: u32, out: &mut S) {
        let o = self.slab.orders[h as usize];
        let idx = self.price_index(o.symbol, o.price).unwrap_or(0);
        self.index(h);
        self.slab.orders[h as usize].loc = Loc::Book;
        self.books[o.symbol as usize * 2 + side_index(o.side)].push_back(
            &mut self.slab.orders,
            idx,
            h,
        );
        out.event(&Event::BookAdd {
            order_ref: self.slab.order_ref(h),
            symbol: o.symbol,
            side: o.side,
            price: o.price,
            qty: o.qty,
        });
    }

    /// An execution would print outside the band: halt the symbol and park the incoming order at the head of the
    /// halt queue (the queue is empty, or `h` was just taken from its head), so arrival order is kept.
    fn band_halt<S: EventSink>(&mut self, h: u32, out: &mut S) {
        let sym = self.slab.orders[h as usize].symbol;
        let halt_ns = self.symbols[sym as usize].config.bands.halt_ns;
        let until = if halt_ns == 0 {
            0
        } else {
            self.now.saturating_add(halt_ns)
        };
        self.halt(sym, until, HaltReason::PriceBand, out);
        if self.symbols[sym as usize].queue.count >= self.cap.halt_queue_max {
            self.cancel_remainder(h, CancelReason::ImmediateOrCancel, out);
            return;
        }
        self.index(h);
        self.slab.orders[h as usize].loc = Loc::Queue;
        let orders = &mut self.slab.orders;
        self.symbols[sym as usize].queue.push_front(orders, h);
    }

    /// Moves cash and shares for one fill. The buyer's lock is released at its lock price and the maker price
    /// charged, which refunds any price improvement.
    #[inline]
    fn settle(&mut self, maker: u32, taker: u32, price: Price, q: u32) {
        let t_side = self.slab.orders[taker as usize].side;
        let (b, s) = if t_side == Side::Buy {
            (taker, maker)
        } else {
            (maker, taker)
        };
        let buyer = self.slab.orders[b as usize];
        let seller = self.slab.orders[s as usize];
        let cost = q as i64 * price as i64;
        let ba = &mut self.accounts[buyer.account as usize];
        ba.cash_total -= cost;
        ba.cash_locked -= q as i64 * buyer.lock_price as i64;
        self.accounts[seller.account as usize].cash_total += cost;
        let bp = self.pos_index(buyer.account, buyer.symbol);
        self.positions[bp].total += q as i64;
        let sp = self.pos_index(seller.account, seller.symbol);
        self.positions[sp].total -= q as i64;
        self.positions[sp].locked -= q as i64;
    }

    #[inline]
    fn set_last_price(&mut self, sym: SymbolId, price: Price) {
        let s = &mut self.symbols[sym as usize];
        let old = s.last_price;
        s.last_price = price;
        let w = s.config.index_weight as u128;
        if w != 0 && old != price {
            self.market.index_now = self.market.index_now - w * old as u128 + w * price as u128;
            self.index_dirty = true;
        }
    }

    /// Triggers stops reached by the last trade price, one at a time, each after the previous finished matching.
    pub(crate) fn run_stops<S: EventSink>(&mut self, sym: SymbolId, out: &mut S) {
        let (buys, sells) = (sym as usize * 2, sym as usize * 2 + 1);
        if self.stops[buys].orders == 0 && self.stops[sells].orders == 0 {
            return;
        }
        for _ in 0..self.cap.orders_max {
            let s = &self.symbols[sym as usize];
            if s.halted {
                return;
            }
            let last = s.last_price;
            let (ladder, idx) = match self.stops[buys].bits.first() {
                Some(i) if self.price_of(sym, i) <= last => (buys, i),
                _ => match self.stops[sells].bits.last() {
                    Some(i) if self.price_of(sym, i) >= last => (sells, i),
                    _ => return,
                },
            };
            let h = self.stops[ladder].levels[idx as usize].list.head;
            self.stops[ladder].remove(&mut self.slab.orders, idx, h);
            self.slab.orders[h as usize].loc = Loc::Transient;
            let o = self.slab.orders[h as usize];
            out.event(&Event::StopTriggered {
                order_ref: self.slab.order_ref(h),
                session: o.session,
                user_ref: o.user_ref,
                symbol: sym,
                trigger_price: last,
            });
            if o.kind == OrderKind::StopLimit {
                self.slab.orders[h as usize].kind = OrderKind::Limit;
            } else {
                let Some((_, best)) = self.best_level(sym, o.side.opposite()) else {
                    self.cancel_remainder(h, CancelReason::ImmediateOrCancel, out);
                    continue;
                };
                let price = match o.side {
                    Side::Buy => self.collar_up(sym, best).min(o.lock_price),
                    Side::Sell => self.collar_down(sym, best),
                };
                let t = &mut self.slab.orders[h as usize];
                t.kind = OrderKind::Market;
                t.price = price;
            }
            self.dispatch(h, out);
        }
    }

    /// Ends a halt: publish, then release the queue in arrival order through normal matching.
    pub(crate) fn resume<S: EventSink>(&mut self, sym: SymbolId, out: &mut S) {
        let s = &mut self.symbols[sym as usize];
        s.halted = false;
        s.halt_until = 0;
        out.event(&Event::TradingAction {
            symbol: sym,
            state: crate::TradingState::Trading,
            reason: HaltReason::Resumed,
        });
        for _ in 0..self.cap.orders_max {
            let s = &self.symbols[sym as usize];
            if s.halted || s.queue.head == NIL {
                break;
            }
            let h = s.queue.head;
            let orders = &mut self.slab.orders;
            self.symbols[sym as usize].queue.remove(orders, h);
            self.slab.orders[h as usize].loc = Loc::Transient;
            self.dispatch(h, out);
            self.run_stops(sym, out);
        }
        self.run_stops(sym, out);
        self.recompute_halt_expiry();
    }

    pub(crate) fn cancel<S: EventSink>(&mut self, c: &Cancel, out: &mut S) {
        let reject = |out: &mut S, reason| {
            out.event(&Event::Rejected {
                session: c.session,
                user_ref: c.user_ref,
                reason,
            });
        };
        if self
            .sessions
            .get(c.session as usize)
            .is_none_or(|s| s.account == NIL)
        {
            return reject(out, RejectReason::UnknownSession);
        }
        // "Superfluous Cancel Order Messages are silently ignored" (OUCH 5.0 section 2.3): a cancel of an order
        // that is not open, or one that would not reduce it, changes nothing and is answered with nothing.
        let Some(h) = self.refs.get(c.session, c.user_ref) else {
            return ignore(out, c.session, c.user_ref, IgnoreReason::UnknownOrder);
        };
        let o = self.slab.orders[h as usize];
        if c.qty >= o.qty {
            return ignore(out, c.session, c.user_ref, IgnoreReason::NotReduced);
        }
        let cut = self.cut_to(h, c.qty);
        out.event(&Event::Canceled {
            order_ref: self.slab.order_ref(h),
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: cut,
            leaves_qty: c.qty,
            reason: CancelReason::UserRequested,
        });
        self.publish_cut(h, &o, cut, c.qty, out);
    }

    /// Modify Order (OUCH 5.0 section 2.4): a reduce keeping priority, and a new sell marking.
    pub(crate) fn modify<S: EventSink>(&mut self, m: &crate::Modify, out: &mut S) {
        if self
            .sessions
            .get(m.session as usize)
            .is_none_or(|s| s.account == NIL)
        {
            return out.event(&Event::Rejected {
                session: m.session,
                user_ref: m.user_ref,
                reason: RejectReason::UnknownSession,
            });
        }
        let Some(h) = self.refs.get(m.session, m.user_ref) else {
            return ignore(out, m.session, m.user_ref, IgnoreReason::UnknownOrder);
        };
        let o = self.slab.orders[h as usize];
        if m.side != o.side {
            return ignore(out, m.session, m.user_ref, IgnoreReason::SideChange);
        }
        if m.qty > o.qty {
            return ignore(out, m.session, m.user_ref, IgnoreReason::NotReduced);
        }
        let cut = self.cut_to(h, m.qty);
        out.event(&Event::Modified {
            order_ref: self.slab.order_ref(h),
            session: o.session,
            user_ref: o.user_ref,
            symbol: o.symbol,
            side: o.side,
            side_code: m.side_code,
            canceled_qty: cut,
            leaves_qty: m.qty,
        });
        self.publish_cut(h, &o, cut, m.qty, out);
    }

    /// Reduces open order `h` to `qty` (at most its open quantity) in place, keeping its priority; returns the
    /// shares taken off. Publishes nothing: the caller answers the session, then calls `publish_cut`.
    pub(crate) fn cut_to(&mut self, h: u32, qty: u32) -> u32 {
        let o = self.slab.orders[h as usize];
        let cut = o.qty - qty;
        self.unlock(h, cut);
        let list = o.symbol as usize * 2 + side_index(o.side);
        match o.loc {
            Loc::Book | Loc::Stop => {
                let idx = o.slot;
                let ladder = if o.loc == Loc::Book {
                    &mut self.books[list]
                } else {
                    &mut self.stops[list]
                };
                ladder.levels[idx as usize].qty -= cut as u64;
                self.slab.orders[h as usize].qty = qty;
                if qty == 0 {
                    ladder.remove(&mut self.slab.orders, idx, h);
                }
            }
            _ => {
                self.slab.orders[h as usize].qty = qty;
                if qty == 0 {
                    let orders = &mut self.slab.orders;
                    self.symbols[o.symbol as usize].queue.remove(orders, h);
                }
            }
        }
        cut
    }

    /// The market-data half of a cut (`o` is the order before it), and the release of an order cut to nothing.
    pub(crate) fn publish_cut<S: EventSink>(&mut self, h: u32, o: &Order, cut: u32, qty: u32, out: &mut S) {
        let order_ref = self.slab.order_ref(h);
        if o.loc == Loc::Book {
            if qty == 0 {
                out.event(&Event::BookDelete {
                    order_ref,
                    symbol: o.symbol,
                });
            } else if cut != 0 {
                out.event(&Event::BookReduce {
                    order_ref,
                    symbol: o.symbol,
                    canceled_qty: cut,
                });
            }
        }
        if qty == 0 {
            self.finish(h);
        }
    }

    /// Every check of a replace that needs no side effect. `leaves` is the open quantity the replace asks for
    /// (its total liable quantity less what the chain executed). Returns whether the new price crosses the book,
    /// and the new price's ladder slot.
    fn check_replace(&self, r: &Replace, o: &Order, leaves: u32) -> Result<(bool, u32), RejectReason> {
        use RejectReason as R;
        let acc = &self.accounts[o.account as usize];
        let new_idx = self.price_index(o.symbol, r.price).ok_or(R::InvalidPrice)?;
        if leaves as i128 * r.price as i128 > acc.max_order_notional as i128 {
            return Err(R::NotionalTooLarge);
        }
        let crossing = self
            .best_level(o.symbol, o.side.opposite())
            .is_some_and(|(_, best)| crosses(o.side, best, r.price));
        if crossing && o.post_only {
            return Err(R::WouldTakeLiquidity);
        }
        if crossing && self.symbols[o.symbol as usize].halted {
            return Err(R::Halted);
        }
        match o.side {
            Side::Buy => {
                let delta = leaves as i64 * r.price as i64 - o.qty as i64 * o.lock_price as i64;
                if delta > acc.cash_free() {
                    return Err(R::InsufficientFunds);
                }
            }
            Side::Sell => {
                let pos = &self.positions[self.pos_index(o.account, o.symbol)];
                if leaves > o.qty && !pos.can_lock((leaves - o.qty) as u64, acc.short_limit) {
                    return Err(R::InsufficientShares);
                }
            }
        }
        Ok((crossing, new_idx))
    }

    pub(crate) fn replace<S: EventSink>(&mut self, r: &Replace, out: &mut S) {
        let reject = |out: &mut S, reason| {
            out.event(&Event::Rejected {
                session: r.session,
                user_ref: r.new_user_ref,
                reason,
            });
        };
        let Some(sess) = self
            .sessions
            .get(r.session as usize)
            .copied()
            .filter(|s| s.account != NIL)
        else {
            return reject(out, RejectReason::UnknownSession);
        };
        if r.new_user_ref <= sess.last_user_ref {
            return reject(out, RejectReason::UserRefNotIncreasing);
        }
        let Some(h) = self.refs.get(r.session, r.orig_user_ref) else {
            // OUCH 5.0 section 2.2 case 1: a replace of an order no longer live is ignored and its new UserRefNum
            // is not consumed.
            return ignore(out, r.session, r.new_user_ref, IgnoreReason::UnknownOrder);
        };
        self.sessions[r.session as usize].last_user_ref = r.new_user_ref;
        let o = self.slab.orders[h as usize];
        if o.loc != Loc::Book {
            return reject(out, RejectReason::InvalidReplace);
        }
        let acc = &self.accounts[o.account as usize];
        if r.qty == 0 {
            return reject(out, RejectReason::ZeroQuantity);
        }
        if r.qty > acc.max_order_qty {
            return reject(out, RejectReason::QuantityTooLarge);
        }
        // The quantity is the chain's total liable quantity (section 2.2): what already executed counts against
        // it. A total the chain has already executed leaves nothing to expose, so the order is canceled.
        let Some(leaves) = r.qty.checked_sub(o.executed).filter(|&q| q > 0) else {
            return self.cancel(
                &Cancel {
                    session: r.session,
                    user_ref: r.orig_user_ref,
                    qty: 0,
                },
                out,
            );
        };
        let (crossing, new_idx) = match self.check_replace(r, &o, leaves) {
            Ok(c) => c,
            Err(reason) => return reject(out, reason),
        };
        // Re-lock at the new terms.
        match o.side {
            Side::Buy => {
                let a = &mut self.accounts[o.account as usize];
                a.cash_locked += leaves as i64 * r.price as i64 - o.qty as i64 * o.lock_price as i64;
            }
            Side::Sell => {
                let p = self.pos_index(o.account, o.symbol);
                self.positions[p].locked += leaves as i64 - o.qty as i64;
            }
        }
        self.refs.remove(r.session, r.orig_user_ref);
        self.refs.insert(r.session, r.new_user_ref, h);
        let old_ref = self.slab.order_ref(h);
        let list = o.symbol as usize * 2 + side_index(o.side);
        // "Replacing an order always gives it a new timestamp for its time priority on the book" (section 2.2):
        // the order leaves its queue and takes a new reference whatever changed.
        self.books[list].remove(&mut self.slab.orders, o.slot, h);
        let t = &mut self.slab.orders[h as usize];
        t.gen = t.gen.wrapping_add(1);
        t.qty = leaves;
        t.price = r.price;
        t.user_ref = r.new_user_ref;
        t.kind = OrderKind::Limit;
        if o.side == Side::Buy {
            t.lock_price = r.price;
        }
        let new_ref = self.slab.order_ref(h);
        out.event(&Event::Replaced {
            old_ref,
            new_ref,
            session: r.session,
            orig_user_ref: r.orig_user_ref,
            new_user_ref: r.new_user_ref,
            symbol: o.symbol,
            side: o.side,
            qty: leaves,
            price: r.price,
        });
        if !crossing {
            self.books[list].push_back(&mut self.slab.orders, new_idx, h);
            out.event(&Event::BookReplace {
                old_ref,
                new_ref,
                symbol: o.symbol,
                price: r.price,
                qty: leaves,
            });
            return;
        }
        out.event(&Event::Canceled {
            order_ref: old_ref,
            session: o.session,
            user_ref: r.orig_user_ref,
            symbol: o.symbol,
            side: o.side,
            canceled_qty: o.qty,
            leaves_qty: 0,
            reason: CancelReason::Replaced,
        });
        out.event(&Event::BookDelete {
            order_ref: old_ref,
            symbol: o.symbol,
        });
        self.slab.orders[h as usize].loc = Loc::Transient;
        self.execute(h, out);
        self.run_stops(o.symbol, out);
    }
}

/// Reports an input that had nothing to act on (OUCH answers it with nothing, the appliance counts it).
fn ignore<S: EventSink>(out: &mut S, session: SessionId, user_ref: UserRef, reason: IgnoreReason) {
    out.event(&Event::Ignored {
        session,
        user_ref,
        reason,
    });
}

/// Whether a taker on `side` with limit `limit` trades against a resting price `resting`.
#[inline]
pub(crate) fn crosses(side: Side, resting: Price, limit: Price) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}
