//! The naive reference order book `bourse bench engine --compare` times bourse against: price-time matching
//! written the obvious way with the standard library's collections, so that bourse's figures come with a baseline
//! measured on the same machine, in the same run, on the identical command stream.
//!
//! ```text
//!   bids, asks: BTreeMap<Price, VecDeque<Resting>>     one FIFO per price level, empty levels removed
//!   index:      HashMap<(SessionId, UserRef), (Side, Price)>
//!               a cancel or replace finds the level here, then scans the level for the order
//! ```
//!
//! Nothing is preallocated: tree nodes, queue buffers and hash entries come and go with the orders, which is the
//! point of the comparison (bourse's engine allocates everything in `Engine::new`).
//!
//! It follows bourse's rules (engine/src/book.rs module notes) for what the exchange-core stream exercises:
//! - fills at the maker's price, best price first, oldest first within a price;
//! - a GTC (Day) remainder rests, an IOC remainder is canceled;
//! - a cancel reduces the order to its `qty` in place, keeping its priority, and is ignored when the order is not
//!   open or would not be reduced;
//! - a replace always loses priority (OUCH 5.0 section 2.2): the order leaves its level and enters again under
//!   its new UserRefNum at the new price, matching first when that price crosses. Its `qty` is the chain's total
//!   liable quantity, so the new open quantity is `qty` less what the chain executed, and nothing left cancels it;
//! - self-trade prevention, cancel newest (every account's rule in the workload): when the best resting order
//!   belongs to the incoming order's firm, the incoming remainder is canceled. Each account is its own firm with
//!   its own session, but the thousand accounts share a book of about a thousand orders, so an order sometimes
//!   meets its own account's: 45 times in seed 1's first million commands.
//!
//! What it leaves out, and why none of it changes a fill on this stream:
//! - risk: every account is funded with 10^18 in cash and 10^9 shares, and orders are at most 100 shares, so no
//!   order is rejected for funds, shares, quantity or notional;
//! - price bands and halts: the symbol's reference price is 102,048 and its default band is 10 %, wider than the
//!   whole 4,096-tick ladder the generator clamps prices to, so no execution can print outside it;
//! - `matches_per_order_max` (1,024): no order is large enough to meet more than 100 resting orders;
//! - market, stop, FOK and post-only orders, halts, Modify and several symbols: the stream has none (entering one
//!   is a programmer error here, and asserts);
//! - session and UserRefNum checks: the generator issues increasing UserRefNums on bound sessions.
//!
//! The bench does not take this on trust: before timing, both books run the stream and their fill sequences must
//! be equal (`engine::compare`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bourse_engine::{
    AccountId, Cancel, Command, FirmId, Input, NewOrder, OrderKind, Price, Qty, Replace, SelfTrade,
    SessionId, Side, TimeInForce, UserRef,
};

/// An order's name on the wire, the only name both books share.
pub type Key = (SessionId, UserRef);

/// One execution, as both books report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub maker: Key,
    pub taker: Key,
    pub price: Price,
    pub qty: Qty,
}

/// Where the reference book reports its fills.
pub trait FillSink {
    fn fill(&mut self, f: &Fill);
}

impl FillSink for Vec<Fill> {
    fn fill(&mut self, f: &Fill) {
        self.push(*f);
    }
}

/// Counts fills: the reference's counterpart of the bench's counting event sink.
#[derive(Default)]
pub struct FillCount(pub u64);

impl FillSink for FillCount {
    #[inline]
    fn fill(&mut self, _: &Fill) {
        self.0 += 1;
    }
}

struct Resting {
    key: Key,
    firm: FirmId,
    qty: Qty,
    /// What the order/replace chain has executed, which a replace's total liable quantity counts against.
    executed: Qty,
}

/// An order entering matching: a new order, or a replaced one.
struct Incoming {
    key: Key,
    firm: FirmId,
    side: Side,
    price: Price,
    qty: Qty,
    executed: Qty,
    rests: bool,
}

#[derive(Default)]
pub struct Book {
    bids: BTreeMap<Price, VecDeque<Resting>>,
    asks: BTreeMap<Price, VecDeque<Resting>>,
    index: HashMap<Key, (Side, Price)>,
    firms: HashMap<AccountId, FirmId>,
}

impl Book {
    pub fn new() -> Book {
        Book::default()
    }

    /// Applies one input, reporting every fill it makes in order.
    pub fn apply<F: FillSink>(&mut self, input: &Input, out: &mut F) {
        match &input.command {
            Command::NewOrder(n) => self.new_order(n, out),
            Command::Cancel(c) => self.cancel(c),
            Command::Replace(r) => self.replace(r, out),
            Command::AddAccount(a) => {
                assert!(
                    a.self_trade == SelfTrade::CancelNewest,
                    "the reference book mirrors cancel-newest self-trade prevention only"
                );
                self.firms.insert(a.account, a.firm);
            }
            // The symbol, deposits and session bindings matter only to the risk checks the reference leaves out.
            _ => {}
        }
    }

    /// Orders resting on the book.
    pub fn orders_open(&self) -> usize {
        self.index.len()
    }

    fn new_order<F: FillSink>(&mut self, n: &NewOrder, out: &mut F) {
        assert!(
            n.kind == OrderKind::Limit && n.tif != TimeInForce::Fok && !n.post_only,
            "the reference book takes plain GTC and IOC limit orders only"
        );
        let firm = self.firms[&n.account];
        self.enter(
            Incoming {
                key: (n.session, n.user_ref),
                firm,
                side: n.side,
                price: n.price,
                qty: n.qty,
                executed: 0,
                rests: n.tif == TimeInForce::Day,
            },
            out,
        );
    }

    fn levels(&mut self, side: Side) -> &mut BTreeMap<Price, VecDeque<Resting>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn cancel(&mut self, c: &Cancel) {
        let key = (c.session, c.user_ref);
        let Some(&(side, price)) = self.index.get(&key) else {
            return;
        };
        let level = self.levels(side).get_mut(&price).expect("an indexed order's level exists");
        let at = level.iter().position(|o| o.key == key).expect("an indexed order is on its level");
        if c.qty >= level[at].qty {
            return;
        }
        if c.qty == 0 {
            self.take_out(key, side, price);
        } else {
            level[at].qty = c.qty;
        }
    }

    /// Removes a resting order from its level and the index.
    fn take_out(&mut self, key: Key, side: Side, price: Price) -> Resting {
        let levels = self.levels(side);
        let level = levels.get_mut(&price).expect("an indexed order's level exists");
        let at = level.iter().position(|o| o.key == key).expect("an indexed order is on its level");
        let o = level.remove(at).expect("position is in range");
        if level.is_empty() {
            levels.remove(&price);
        }
        self.index.remove(&key);
        o
    }

    fn replace<F: FillSink>(&mut self, r: &Replace, out: &mut F) {
        let key = (r.session, r.orig_user_ref);
        let Some(&(side, price)) = self.index.get(&key) else {
            return;
        };
        // bourse rejects a zero total and leaves the order as it was.
        if r.qty == 0 {
            return;
        }
        let o = self.take_out(key, side, price);
        let Some(leaves) = r.qty.checked_sub(o.executed).filter(|&q| q > 0) else {
            return;
        };
        // Whether or not the new price crosses, the order enters behind everything at its price.
        self.enter(
            Incoming {
                key: (r.session, r.new_user_ref),
                firm: o.firm,
                side,
                price: r.price,
                qty: leaves,
                executed: o.executed,
                rests: true,
            },
            out,
        );
    }

    /// Matches an incoming order against the opposite side, then rests what is left when its kind says so.
    fn enter<F: FillSink>(&mut self, mut t: Incoming, out: &mut F) {
        let opposite = match t.side {
            Side::Buy => &mut self.asks,
            Side::Sell => &mut self.bids,
        };
        while t.qty > 0 {
            let best = match t.side {
                Side::Buy => opposite.first_entry(),
                Side::Sell => opposite.last_entry(),
            };
            let Some(mut level) = best else { break };
            let price = *level.key();
            let crosses = match t.side {
                Side::Buy => price <= t.price,
                Side::Sell => price >= t.price,
            };
            if !crosses {
                break;
            }
            let maker = level.get_mut().front_mut().expect("empty levels are removed");
            if maker.firm == t.firm {
                // Self-trade prevention, cancel newest: the incoming remainder is canceled.
                return;
            }
            let q = t.qty.min(maker.qty);
            out.fill(&Fill {
                maker: maker.key,
                taker: t.key,
                price,
                qty: q,
            });
            maker.qty -= q;
            maker.executed += q;
            t.qty -= q;
            t.executed += q;
            if maker.qty == 0 {
                let done = maker.key;
                self.index.remove(&done);
                level.get_mut().pop_front();
                if level.get().is_empty() {
                    level.remove();
                }
            }
        }
        if t.qty > 0 && t.rests {
            self.levels(t.side).entry(t.price).or_default().push_back(Resting {
                key: t.key,
                firm: t.firm,
                qty: t.qty,
                executed: t.executed,
            });
            self.index.insert(t.key, (t.side, t.price));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::engine::{bourse_fills, capacity, compare, generate, reference_fills};
    use bourse_engine::{AddAccount, CancelReason, Engine, Event, EventSink};

    /// What bourse did on a stream beyond fills: self-trade cancels, and the rejects and halts the reference
    /// leaves out.
    #[derive(Default)]
    struct Outcomes {
        self_trade: u32,
        rejects: u32,
        trading_actions: u32,
    }

    impl EventSink for Outcomes {
        fn event(&mut self, e: &Event) {
            match e {
                Event::Canceled {
                    reason: CancelReason::SelfTrade,
                    ..
                } => self.self_trade += 1,
                Event::Rejected { .. } => self.rejects += 1,
                Event::TradingAction { .. } => self.trading_actions += 1,
                _ => {}
            }
        }
    }

    #[test]
    fn naive_fills_equal_bourse_fills_on_the_exchange_core_stream() {
        // A seed whose first 20,000 commands include self-trade cancels, so the check covers them.
        let w = generate(6, 20_000);
        let mut engine = Engine::new(capacity());
        let mut seen = Outcomes::default();
        for i in w.setup.iter().chain(&w.commands) {
            engine.apply(i, &mut seen);
        }
        assert!(seen.self_trade > 0, "no self-trade cancel in the stream");
        assert_eq!((seen.rejects, seen.trading_actions), (0, 0), "the reference models neither");
        let ours = bourse_fills(&w);
        let theirs = reference_fills(&w);
        let first = (0..ours.len().max(theirs.len())).find(|&k| ours.get(k) != theirs.get(k));
        assert_eq!(first, None, "fills differ at {first:?} of {} / {}", ours.len(), theirs.len());
        // Enough fills that the check means something (the mix trades a few percent of its commands).
        assert!(ours.len() > 20_000 / 100, "fills {}", ours.len());
    }

    #[test]
    fn naive_compare_reports_every_kind() {
        let w = generate(5, 20_000);
        let c = compare(&w, 1).unwrap();
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, ["gtc", "ioc", "cancel", "move", "all"]);
        let all = c.kinds.last().unwrap();
        assert_eq!(all.commands, 20_000);
        assert_eq!(c.kinds[..4].iter().map(|k| k.commands).sum::<usize>(), 20_000);
        for k in &c.kinds {
            assert!(k.commands > 0, "{}: no commands", k.kind);
            assert!(k.bourse_p50_ns > 0 && k.bourse_p50_ns <= k.bourse_p99_ns, "{k:?}");
            assert!(k.reference_p50_ns > 0 && k.reference_p50_ns <= k.reference_p99_ns, "{k:?}");
        }
        assert!(c.bourse_mops > 0.0 && c.reference_mops > 0.0);
        assert!(c.fills > 0);
    }

    fn order(session: SessionId, user_ref: UserRef, side: Side, qty: Qty, price: Price, tif: TimeInForce) -> Command {
        Command::NewOrder(NewOrder {
            session,
            user_ref,
            account: session as AccountId,
            symbol: 0,
            side,
            kind: OrderKind::Limit,
            tif,
            post_only: false,
            qty,
            price,
            stop_price: 0,
        })
    }

    fn run(book: &mut Book, commands: &[Command]) -> Vec<Fill> {
        let mut fills = Vec::new();
        for (k, &command) in commands.iter().enumerate() {
            let input = Input {
                seq: k as u64 + 1,
                timestamp: 0,
                command,
            };
            book.apply(&input, &mut fills);
        }
        fills
    }

    fn fill(maker: Key, taker: Key, price: Price, qty: Qty) -> Fill {
        Fill {
            maker,
            taker,
            price,
            qty,
        }
    }

    /// A book with `accounts` accounts, each its own firm preventing self-trades by canceling the newest.
    fn book_with_accounts(accounts: AccountId) -> Book {
        let mut book = Book::new();
        let adds: Vec<Command> = (0..accounts)
            .map(|a| {
                Command::AddAccount(AddAccount {
                    account: a,
                    firm: a as FirmId,
                    self_trade: SelfTrade::CancelNewest,
                    short_limit: 0,
                    max_order_qty: 1_000,
                    max_order_notional: 1_000_000_000,
                })
            })
            .collect();
        run(&mut book, &adds);
        book
    }

    #[test]
    fn naive_replace_loses_priority_and_counts_what_the_chain_executed() {
        let mut book = book_with_accounts(4);
        let (day, ioc) = (TimeInForce::Day, TimeInForce::Ioc);
        let fills = run(
            &mut book,
            &[
                order(1, 1, Side::Sell, 10, 100, day),
                order(2, 1, Side::Sell, 10, 100, day),
                // Session 1's order trades 4 of its 10, then is replaced at the same price with a total of 10:
                // 6 open, now behind session 2's order.
                order(3, 1, Side::Buy, 4, 100, ioc),
                Command::Replace(Replace {
                    session: 1,
                    orig_user_ref: 1,
                    new_user_ref: 2,
                    qty: 10,
                    price: 100,
                }),
                order(3, 2, Side::Buy, 20, 100, ioc),
            ],
        );
        assert_eq!(
            fills,
            [
                fill((1, 1), (3, 1), 100, 4),
                fill((2, 1), (3, 2), 100, 10),
                fill((1, 2), (3, 2), 100, 6),
            ]
        );
        assert_eq!(book.orders_open(), 0);
        // A replace whose total the chain already executed cancels the order.
        let fills = run(
            &mut book,
            &[
                order(1, 3, Side::Sell, 5, 101, day),
                order(3, 3, Side::Buy, 5, 101, ioc),
                order(1, 4, Side::Sell, 5, 101, day),
                order(3, 4, Side::Buy, 2, 101, ioc),
                Command::Replace(Replace {
                    session: 1,
                    orig_user_ref: 4,
                    new_user_ref: 5,
                    qty: 2,
                    price: 102,
                }),
            ],
        );
        assert_eq!(fills.len(), 2);
        assert_eq!(book.orders_open(), 0);
    }

    #[test]
    fn naive_self_trade_cancels_the_incoming_remainder() {
        let mut book = book_with_accounts(2);
        let day = TimeInForce::Day;
        let fills = run(
            &mut book,
            &[
                order(0, 1, Side::Sell, 5, 100, day),
                order(1, 1, Side::Sell, 5, 101, day),
                // Session 1 buys through its own ask at 101 after taking session 0's: the rest is canceled, not
                // traded and not rested.
                order(1, 2, Side::Buy, 20, 101, day),
            ],
        );
        assert_eq!(fills, [fill((0, 1), (1, 2), 100, 5)]);
        assert_eq!(book.orders_open(), 1);
    }
}
