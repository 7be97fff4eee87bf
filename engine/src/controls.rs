//! What a firm controls about its own session beyond single orders (OUCH 5.0 sections 2.5-2.7): the mass cancel
//! and the order-entry switch.
//!
//! Both introduce a UserRefNum like a new order does, so they must come from a bound session with a UserRefNum
//! above every one it used; a repeat changes nothing and is reported `Ignored` (the gateway answers it from the
//! first reply). A mass cancel walks the books, stop books and halt queue of the symbols in scope in a fixed order
//! (see [`crate::MassCancel`]), so replay and the reference model cancel in the same order; it costs one visit
//! per order resting in those symbols, every session's, and never allocates.

use crate::engine::{side_index, Engine};
use crate::slab::{Loc, NIL};
use crate::{
    CancelReason, Event, EventSink, IgnoreReason, MassCancel, RejectReason, SessionId, SetOrderEntry, Side,
    SymbolId, UserRef,
};

impl Engine {
    /// Whether a control from `session` with `user_ref` may act; if so, the session has used `user_ref` up.
    fn control_allowed<S: EventSink>(&mut self, session: SessionId, user_ref: UserRef, out: &mut S) -> bool {
        let Some(sess) = self.sessions.get(session as usize).filter(|s| s.account != NIL) else {
            out.event(&Event::Rejected { session, user_ref, reason: RejectReason::UnknownSession });
            return false;
        };
        if user_ref <= sess.last_user_ref {
            out.event(&Event::Ignored { session, user_ref, reason: IgnoreReason::NotIncreasing });
            return false;
        }
        self.sessions[session as usize].last_user_ref = user_ref;
        true
    }

    pub(crate) fn set_order_entry<S: EventSink>(&mut self, c: &SetOrderEntry, out: &mut S) {
        if self.control_allowed(c.session, c.user_ref, out) {
            self.sessions[c.session as usize].entry_disabled = !c.enabled;
            out.event(&Event::OrderEntrySet { session: c.session, user_ref: c.user_ref, enabled: c.enabled });
        }
    }

    pub(crate) fn mass_cancel<S: EventSink>(&mut self, m: &MassCancel, out: &mut S) {
        if !self.control_allowed(m.session, m.user_ref, out) {
            return;
        }
        let (first, end) = match m.symbol {
            Some(s) => (u32::from(s), u32::from(s) + 1),
            None => (0, u32::from(self.cap.symbols_max)),
        };
        let mut canceled = 0;
        for s in first..end {
            if self.symbols.get(s as usize).is_some_and(|sym| sym.exists) {
                canceled += self.mass_cancel_symbol(s as SymbolId, m, out);
            }
        }
        out.event(&Event::MassCanceled { session: m.session, user_ref: m.user_ref, canceled });
    }

    /// Cancels `m`'s orders in one symbol; returns how many.
    fn mass_cancel_symbol<S: EventSink>(&mut self, sym: SymbolId, m: &MassCancel, out: &mut S) -> u32 {
        let sides = [Side::Buy, Side::Sell].into_iter().filter(|&side| m.side.is_none_or(|s| s == side));
        let mut n = 0;
        for side in sides.clone() {
            let list = sym as usize * 2 + side_index(side);
            let mut idx = match side {
                Side::Buy => self.books[list].bits.last(),
                Side::Sell => self.books[list].bits.first(),
            };
            while let Some(i) = idx {
                let head = self.books[list].levels[i as usize].list.head;
                n += self.cancel_from(head, m.session, None, out);
                // The level may be empty now: the next one is searched from the neighbouring slot.
                idx = match side {
                    Side::Buy => i.checked_sub(1).and_then(|j| self.books[list].bits.prev_from(j)),
                    Side::Sell => self.books[list].bits.next_from(i + 1),
                };
            }
        }
        for side in sides {
            let list = sym as usize * 2 + side_index(side);
            let mut idx = self.stops[list].bits.first();
            while let Some(i) = idx {
                let head = self.stops[list].levels[i as usize].list.head;
                n += self.cancel_from(head, m.session, None, out);
                idx = self.stops[list].bits.next_from(i + 1);
            }
        }
        let head = self.symbols[sym as usize].queue.head;
        n + self.cancel_from(head, m.session, m.side, out)
    }

    /// Cancels, from handle `h` to the end of its list, the orders of `session` (and of `side`, when given);
    /// returns how many. Each is answered `Canceled` (user requested), then leaves the book (`BookDelete`).
    fn cancel_from<S: EventSink>(&mut self, mut h: u32, session: SessionId, side: Option<Side>, out: &mut S) -> u32 {
        let mut n = 0;
        while h != NIL {
            let o = self.slab.orders[h as usize];
            // Read before the cut, which unlinks `h`.
            let next = o.next;
            debug_assert!(matches!(o.loc, Loc::Book | Loc::Stop | Loc::Queue));
            if o.session == session && side.is_none_or(|s| s == o.side) {
                let order_ref = self.slab.order_ref(h);
                let cut = self.cut_to(h, 0);
                out.event(&Event::Canceled {
                    order_ref,
                    session,
                    user_ref: o.user_ref,
                    symbol: o.symbol,
                    side: o.side,
                    canceled_qty: cut,
                    leaves_qty: 0,
                    reason: CancelReason::UserRequested,
                });
                self.publish_cut(h, &o, cut, 0, out);
                n += 1;
            }
            h = next;
        }
        n
    }
}
