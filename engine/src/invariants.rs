//! `check_invariants`: every structural and money invariant, checked without trusting the state (it also runs at
//! the end of [`Engine::restore`], where the state came from disk): arithmetic is widened, indexing is checked,
//! and list walks are bounded by `orders_max`.

use crate::engine::{side_index, Engine};
use crate::ladder::Ladder;
use crate::slab::{Loc, NIL};
use crate::{OrderKind, Side};

impl Engine {
    /// Checks every structural and money invariant; `Err` names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n = self.cap.orders_max as usize;
        let orders = &self.slab.orders;
        let mut placed = vec![false; n];
        let s_max = self.cap.symbols_max as usize;
        for s in 0..s_max {
            let sym = &self.symbols[s];
            for side in [Side::Buy, Side::Sell] {
                let i = s * 2 + side_index(side);
                self.check_ladder(&self.books[i], s, side, Loc::Book, &mut placed)
                    .map_err(|e| format!("symbol {s} {side:?} book: {e}"))?;
                self.check_ladder(&self.stops[i], s, side, Loc::Stop, &mut placed)
                    .map_err(|e| format!("symbol {s} {side:?} stops: {e}"))?;
            }
            // Halt queue.
            let mut h = sym.queue.head;
            let mut prev = NIL;
            let mut count = 0u32;
            while h != NIL {
                let o = orders.get(h as usize).ok_or("queue handle out of range")?;
                if o.loc != Loc::Queue || o.symbol as usize != s || o.prev != prev {
                    return Err(format!("symbol {s} queue: order {h} misplaced"));
                }
                if std::mem::replace(&mut placed[h as usize], true) {
                    return Err(format!("order {h} in two places"));
                }
                count += 1;
                if count > self.cap.orders_max {
                    return Err("queue cycle".into());
                }
                prev = h;
                h = o.next;
            }
            if count != sym.queue.count || sym.queue.tail != prev {
                return Err(format!("symbol {s} queue count/tail wrong"));
            }
            if !sym.exists && (count != 0 || sym.halted) {
                return Err(format!("symbol {s} does not exist but has state"));
            }
            if sym.exists && !sym.halted {
                if let (Some((b, _)), Some((a, _))) =
                    (self.best_bid(s as u16), self.best_ask(s as u16))
                {
                    if b >= a {
                        return Err(format!("symbol {s} crossed: bid {b} >= ask {a}"));
                    }
                }
                if count != 0 {
                    return Err(format!("symbol {s} trading with a non-empty halt queue"));
                }
            }
        }
        // Every open order is in exactly one place; every free slot is on the free list exactly once.
        let mut free_seen = vec![false; n];
        for &f in &self.slab.free {
            let slot = free_seen
                .get_mut(f as usize)
                .ok_or("free handle out of range")?;
            if std::mem::replace(slot, true) || orders[f as usize].loc != Loc::Free {
                return Err(format!("free list entry {f} duplicated or in use"));
            }
        }
        let mut open = 0usize;
        let a_max = self.cap.accounts_max as usize;
        let mut locked_cash = vec![0i128; a_max];
        let mut locked_shares = vec![0i128; a_max * s_max];
        for (h, o) in orders.iter().enumerate() {
            match o.loc {
                Loc::Free => {
                    if !free_seen[h] {
                        return Err(format!("free order {h} not on the free list"));
                    }
                    continue;
                }
                Loc::Transient => return Err(format!("order {h} left transient")),
                _ => {}
            }
            if !placed[h] {
                return Err(format!("open order {h} in no list"));
            }
            open += 1;
            if o.qty == 0 {
                return Err(format!("open order {h} with zero quantity"));
            }
            // An order that enters the book later with a limit price (a stop-limit waiting for its trigger, a
            // limit or stop-limit order waiting in a halt queue) carries a price on its symbol's ladder, as entry
            // validation guaranteed; one that does not would be placed at the wrong level when it enters, so a
            // snapshot that says so is corrupt.
            let enters_later = matches!(o.loc, Loc::Stop | Loc::Queue)
                && matches!(o.kind, OrderKind::Limit | OrderKind::StopLimit);
            if enters_later && self.price_index(o.symbol, o.price).is_none() {
                return Err(format!("order {h} waits to enter the book at price {} off its ladder", o.price));
            }
            // Likewise a stop order waiting in a halt queue enters the stop ladder at its stop price.
            let stops_later = o.loc == Loc::Queue && matches!(o.kind, OrderKind::Stop | OrderKind::StopLimit);
            if stops_later && self.price_index(o.symbol, o.stop_price).is_none() {
                return Err(format!("queued stop order {h} has stop price {} off its ladder", o.stop_price));
            }
            if !o.indexed || self.refs.get(o.session, o.user_ref) != Some(h as u32) {
                return Err(format!("order {h} missing from the UserRef table"));
            }
            let acc = o.account as usize;
            if !self.accounts.get(acc).is_some_and(|a| a.exists) {
                return Err(format!("order {h} of unknown account"));
            }
            match o.side {
                Side::Buy => locked_cash[acc] += o.qty as i128 * o.lock_price as i128,
                Side::Sell => locked_shares[acc * s_max + o.symbol as usize] += o.qty as i128,
            }
        }
        if open != self.refs.len() || open + self.slab.free.len() != n {
            return Err(format!(
                "{open} open orders, {} refs, {} free",
                self.refs.len(),
                self.slab.free.len()
            ));
        }
        let all_cash: i128 = self.accounts.iter().map(|a| a.cash_total as i128).sum();
        if all_cash > i64::MAX as i128 {
            return Err("total cash does not fit one account: a settlement could overflow".into());
        }
        for (a, acc) in self.accounts.iter().enumerate() {
            if acc.cash_locked as i128 != locked_cash[a] {
                return Err(format!(
                    "account {a}: cash locked {} != Σ buy locks {}",
                    acc.cash_locked, locked_cash[a]
                ));
            }
            if acc.cash_locked < 0 || acc.cash_locked > acc.cash_total {
                return Err(format!(
                    "account {a}: cash locked {} outside [0, {}]",
                    acc.cash_locked, acc.cash_total
                ));
            }
            for s in 0..s_max {
                let p = &self.positions[a * s_max + s];
                if p.locked as i128 != locked_shares[a * s_max + s] {
                    return Err(format!(
                        "account {a} symbol {s}: shares locked {} != Σ sells",
                        p.locked
                    ));
                }
                if p.locked < 0 || p.locked as i128 > p.total as i128 + acc.short_limit as i128 {
                    return Err(format!(
                        "account {a} symbol {s}: shares locked {} beyond holdings",
                        p.locked
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_ladder(
        &self,
        l: &Ladder,
        s: usize,
        side: Side,
        loc: Loc,
        placed: &mut [bool],
    ) -> Result<(), String> {
        if !l.bits.consistent() {
            return Err("bitmap levels disagree".into());
        }
        let listed: u64 = l.levels.iter().map(|v| v.list.count as u64).sum();
        if listed != l.orders as u64 {
            return Err(format!("ladder counts {} orders, lists hold {listed}", l.orders));
        }
        for (idx, level) in l.levels.iter().enumerate() {
            if l.bits.get(idx as u32) != (level.list.count != 0) {
                return Err(format!("bitmap bit {idx} wrong"));
            }
            let mut h = level.list.head;
            let mut prev = NIL;
            let (mut count, mut qty) = (0u32, 0u64);
            while h != NIL {
                let o = self
                    .slab
                    .orders
                    .get(h as usize)
                    .ok_or("handle out of range")?;
                let price = if loc == Loc::Book {
                    o.price
                } else {
                    o.stop_price
                };
                let at = self.symbols[s]
                    .exists
                    .then(|| self.price_index(s as u16, price))
                    .flatten();
                if o.loc != loc
                    || o.symbol as usize != s
                    || o.side != side
                    || o.prev != prev
                    || at != Some(idx as u32)
                {
                    return Err(format!("order {h} misplaced at level {idx}"));
                }
                if std::mem::replace(&mut placed[h as usize], true) {
                    return Err(format!("order {h} in two places"));
                }
                count += 1;
                qty += o.qty as u64;
                if count > self.cap.orders_max {
                    return Err("list cycle".into());
                }
                prev = h;
                h = o.next;
            }
            if count != level.list.count || qty != level.qty || level.list.tail != prev {
                return Err(format!("level {idx} aggregates wrong"));
            }
        }
        Ok(())
    }
}
