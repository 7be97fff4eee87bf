//! The order mix: exchange-core's 9 % GTC, 3 % IOC, 6 % cancel, 82 % move, generated from a seed.
//!
//! The generator decides every message from its seed and from what it sent before, never from what came back:
//! it keeps an exact view of the book by applying each message it generates to a *shadow* engine (the same
//! deterministic `bourse_engine::Engine` the appliance runs, set up with the same symbols and sessions). So the
//! same seed always sends the same byte sequence, whatever the timing of the replies, and cancels and moves
//! target orders that really rest on the appliance's book when it runs alone against a fresh appliance.
//!
//! Prices are integer ticks around a fixed centre (the symbol's reference price, or `--mid`): buys rest in
//! `[mid − 375 ticks, mid − 1 tick]` and sells in `[mid + 1 tick, mid + 375 ticks]`, and moves keep an order on
//! its side of the centre, so the resting book is never crossed. Only IOCs (priced a few ticks through the best
//! opposite price) trade. Quantities are small (1–100, IOCs 1–50) so a firm's funding lasts.
//!
//! Everything is sized in [`Mix::new`]; generating a message does not allocate.

use bourse_engine::{
    AddAccount, AddSymbol, SelfTrade, Bands, BindSession, Cancel, Command, Deposit, DepositShares, Engine, Event, Input,
    NewOrder, OrderKind, Price, Qty, Replace, SessionId, Side, SymbolId, TimeInForce, UserRef,
};

/// Half-width of the resting price range, in ticks (exchange-core spreads ~1,000 orders over ~750 levels).
pub const HALF_RANGE_TICKS: u32 = 375;
/// Slots of the per-firm (UserRefNum → live order) table; a power of two. An order untouched while this many
/// newer UserRefNums were handed out is forgotten (it stays on the book; `evicted` counts it). With ~1,000
/// resting orders each touched with probability ~1/1,000 per message, that is practically never.
pub const REF_SLOTS: usize = 1 << 16;
const _: () = assert!(REF_SLOTS.is_power_of_two());
/// Events one shadow input can produce: one per fill on each side plus a handful of acks and book changes.
const EVENTS_PER_INPUT_MAX: usize = 4 * 4_096 + 16;

/// The project's one seeded generator (SplitMix64), shared with the engine benchmark and the crash-test driver.
pub use bourse_persist::workload::Rng;

/// One symbol as the mix sees it.
#[derive(Clone, Debug)]
pub struct MixSymbol {
    pub name: String,
    /// The symbol's id in the shadow engine (its index in the appliance's configuration).
    pub id: SymbolId,
    /// Centre of the resting range, in price units (4 implied decimals).
    pub mid: Price,
    /// Price step in price units.
    pub tick: Price,
    /// Set-up of the shadow engine's symbol: lowest ladder price, reference price and bands.
    pub ladder_min: Price,
    pub reference: Price,
    pub bands: Bands,
    pub market_collar_bps: u32,
}

/// One firm as the mix sees it: its engine session and account on the appliance.
#[derive(Clone, Copy, Debug)]
pub struct MixFirm {
    pub session: SessionId,
    pub account: u32,
}

/// Shadow engine set-up: the admin commands that recreate the appliance's state (from its configuration), or
/// generous defaults when only credentials are known.
#[derive(Clone, Debug)]
pub struct MixSetup {
    pub symbols: Vec<MixSymbol>,
    pub firms: Vec<MixFirm>,
    pub capacity: bourse_engine::Capacity,
    /// Admin inputs applied to the shadow before the first message (`AddSymbol`, `AddAccount`, funding …).
    pub genesis: Vec<Command>,
    /// Resting orders to keep, across all firms and symbols.
    pub resting: usize,
    pub first_user_ref: UserRef,
    /// Every `invalid_every`-th message is an Enter Order for a symbol the appliance does not list (0: never),
    /// to exercise the reject path under load.
    pub invalid_every: u64,
}

impl MixSetup {
    /// Genesis for a shadow engine when the appliance's configuration is unknown: one well-funded account per
    /// firm, symbols with a ladder of `levels` ticks centred on each mid.
    pub fn default_genesis(symbols: &[MixSymbol], firms: &[MixFirm]) -> Vec<Command> {
        let mut out = Vec::new();
        for s in symbols {
            out.push(Command::AddSymbol(AddSymbol {
                symbol: s.id,
                reference_price: s.reference,
                ladder_min_price: s.ladder_min,
                tick: s.tick,
                bands: s.bands,
                market_collar_bps: s.market_collar_bps,
                index_weight: 0,
            }));
        }
        for f in firms {
            out.push(Command::AddAccount(AddAccount {
                account: f.account,
                firm: f.session,
                self_trade: SelfTrade::default(),
                short_limit: 0,
                max_order_qty: 1_000_000,
                max_order_notional: 1 << 50,
            }));
            out.push(Command::Deposit(Deposit { account: f.account, amount: 1 << 52 }));
            for s in symbols {
                out.push(Command::DepositShares(DepositShares { account: f.account, symbol: s.id, qty: 1 << 30 }));
            }
            out.push(Command::BindSession(BindSession { session: f.session, account: f.account }));
        }
        out
    }
}

/// What a generated message asks for; `firm` indexes [`MixSetup::firms`], `symbol` [`MixSetup::symbols`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Enter { user_ref: UserRef, side: Side, qty: Qty, symbol: u16, price: Price, ioc: bool },
    /// An Enter Order naming a symbol nobody lists: the appliance answers Rejected (Invalid Symbol).
    EnterUnknownSymbol { user_ref: UserRef },
    Replace { orig_user_ref: UserRef, user_ref: UserRef, qty: Qty, price: Price },
    Cancel { user_ref: UserRef },
}

impl Op {
    /// The UserRefNum the first reply to this message carries.
    pub fn reply_ref(&self) -> UserRef {
        match *self {
            Op::Enter { user_ref, .. } | Op::EnterUnknownSymbol { user_ref } => user_ref,
            Op::Replace { user_ref, .. } | Op::Cancel { user_ref } => user_ref,
        }
    }
}

/// One generated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub firm: usize,
    pub op: Op,
}

#[derive(Clone, Copy, Debug)]
struct Live {
    firm: u32,
    user_ref: UserRef,
    /// Index into `Mix::symbols`.
    symbol: u16,
    side: Side,
    price: Price,
    qty: Qty,
    /// Shares the order's chain executed: a move names the total liable quantity (OUCH 5.0 section 2.2), so it
    /// keeps `qty` open by sending `qty + executed`.
    executed: Qty,
}

/// Counts of what the mix generated, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixCounts {
    pub gtc: u64,
    pub ioc: u64,
    pub cancel: u64,
    pub moves: u64,
    pub invalid: u64,
    pub evicted: u64,
}

/// The seeded generator with its shadow book.
pub struct Mix {
    rng: Rng,
    shadow: Engine,
    symbols: Vec<MixSymbol>,
    firms: Vec<MixFirm>,
    live: Vec<Live>,
    /// Per firm, `REF_SLOTS` entries: index into `live` + 1 (0 = empty), direct-mapped by UserRefNum.
    index: Vec<u32>,
    next_ref: Vec<UserRef>,
    last_side: Vec<Side>,
    next_firm: usize,
    resting: usize,
    invalid_every: u64,
    generated: u64,
    seq: u64,
    events: Vec<Event>,
    pub counts: MixCounts,
}

impl Mix {
    pub fn new(setup: &MixSetup, seed: u64) -> anyhow::Result<Mix> {
        anyhow::ensure!(!setup.firms.is_empty(), "the load generator needs at least one firm");
        anyhow::ensure!(!setup.symbols.is_empty(), "the load generator needs at least one symbol");
        for s in &setup.symbols {
            anyhow::ensure!(s.tick > 0, "symbol {}: tick must be positive", s.name);
            let lo = u64::from(s.tick) * u64::from(HALF_RANGE_TICKS + 8);
            anyhow::ensure!(
                u64::from(s.mid) > lo && u64::from(s.mid) % u64::from(s.tick) == 0,
                "symbol {}: mid {} must be a multiple of the tick {} and above {} ticks",
                s.name,
                s.mid,
                s.tick,
                HALF_RANGE_TICKS + 8
            );
        }
        let mut shadow = Engine::new(setup.capacity);
        let mut events = Vec::with_capacity(EVENTS_PER_INPUT_MAX);
        let mut seq = 0;
        for command in &setup.genesis {
            seq += 1;
            events.clear();
            shadow.apply(&Input { seq, timestamp: seq * 1_000, command: *command }, &mut events);
            if let Some(Event::AdminRejected { reason, .. }) = events.iter().find(|e| matches!(e, Event::AdminRejected { .. })) {
                anyhow::bail!("shadow engine refused set-up input {command:?}: {reason:?}");
            }
        }
        let resting = setup.resting.max(1);
        Ok(Mix {
            rng: Rng::new(seed),
            shadow,
            symbols: setup.symbols.clone(),
            firms: setup.firms.clone(),
            live: Vec::with_capacity(resting * 2 + REF_SLOTS),
            index: vec![0; REF_SLOTS * setup.firms.len()],
            next_ref: vec![setup.first_user_ref.max(1); setup.firms.len()],
            last_side: vec![Side::Sell; setup.firms.len()],
            next_firm: 0,
            resting,
            invalid_every: setup.invalid_every,
            generated: 0,
            seq,
            events,
            counts: MixCounts::default(),
        })
    }

    /// Orders the shadow book holds for the generator's firms.
    pub fn resting(&self) -> usize {
        self.live.len()
    }

    /// The next UserRefNum each firm would use (for a later run against the same appliance).
    pub fn next_user_ref(&self, firm: usize) -> UserRef {
        self.next_ref[firm]
    }

    pub fn symbol(&self, i: u16) -> &MixSymbol {
        &self.symbols[usize::from(i)]
    }

    fn take_ref(&mut self, firm: usize) -> UserRef {
        let r = self.next_ref[firm];
        self.next_ref[firm] = r.wrapping_add(1).max(1);
        r
    }

    /// Generates the next message and applies it to the shadow book. Firms take turns.
    pub fn next_message(&mut self) -> Message {
        let firm = self.next_firm;
        self.next_firm = (self.next_firm + 1) % self.firms.len();
        self.generated += 1;
        if self.invalid_every > 0 && self.generated.is_multiple_of(self.invalid_every) {
            self.counts.invalid += 1;
            let user_ref = self.take_ref(firm);
            return Message { firm, op: Op::EnterUnknownSymbol { user_ref } };
        }
        let roll = self.rng.below(100);
        let op = if self.live.len() < self.resting / 2 {
            // Building the book (at start, or after IOCs ate it): only GTCs until half the target rests.
            self.gtc(firm)
        } else if roll < 9 {
            if self.live.len() > self.resting + self.resting / 8 {
                self.cancel_any(firm)
            } else {
                self.gtc(firm)
            }
        } else if roll < 12 {
            self.ioc(firm)
        } else if roll < 18 {
            self.cancel_any(firm)
        } else {
            self.move_any(firm)
        };
        Message { firm, op }
    }

    fn gtc(&mut self, firm: usize) -> Op {
        self.counts.gtc += 1;
        let symbol = self.rng.below(self.symbols.len() as u64) as u16;
        // Sides alternate per firm, so each firm's buying and selling (and its funding) stay balanced.
        let side = if self.last_side[firm] == Side::Buy { Side::Sell } else { Side::Buy };
        self.last_side[firm] = side;
        let s = &self.symbols[usize::from(symbol)];
        let offset = (1 + self.rng.below(u64::from(HALF_RANGE_TICKS)) as u32) * s.tick;
        let price = match side {
            Side::Buy => s.mid - offset,
            Side::Sell => s.mid + offset,
        };
        let qty = 1 + self.rng.below(100) as Qty;
        let user_ref = self.take_ref(firm);
        let op = Op::Enter { user_ref, side, qty, symbol, price, ioc: false };
        self.apply(firm, &op);
        op
    }

    fn ioc(&mut self, firm: usize) -> Op {
        self.counts.ioc += 1;
        let symbol = self.rng.below(self.symbols.len() as u64) as u16;
        let side = if self.rng.below(2) == 0 { Side::Buy } else { Side::Sell };
        let (mid, tick) = (self.symbols[usize::from(symbol)].mid, self.symbols[usize::from(symbol)].tick);
        let through = self.rng.below(3) as Price * tick;
        let id = self.symbols[usize::from(symbol)].id;
        let price = match side {
            Side::Buy => self.shadow.best_ask(id).map_or(mid + tick, |(p, _)| p) + through,
            Side::Sell => self.shadow.best_bid(id).map_or(mid - tick, |(p, _)| p).saturating_sub(through).max(tick),
        };
        let qty = 1 + self.rng.below(50) as Qty;
        let user_ref = self.take_ref(firm);
        let op = Op::Enter { user_ref, side, qty, symbol, price, ioc: true };
        self.apply(firm, &op);
        op
    }

    /// A resting order of `firm`, chosen uniformly; `None` when the firm has none.
    fn pick(&mut self, firm: usize) -> Option<Live> {
        // Sample a few random live orders for one of this firm's; with two firms about half qualify.
        for _ in 0..64 {
            if self.live.is_empty() {
                return None;
            }
            let o = self.live[self.rng.below(self.live.len() as u64) as usize];
            if o.firm as usize == firm {
                return Some(o);
            }
        }
        self.live.iter().copied().find(|o| o.firm as usize == firm)
    }

    fn cancel_any(&mut self, firm: usize) -> Op {
        let Some(o) = self.pick(firm) else { return self.gtc(firm) };
        self.counts.cancel += 1;
        let op = Op::Cancel { user_ref: o.user_ref };
        self.apply(firm, &op);
        op
    }

    fn move_any(&mut self, firm: usize) -> Op {
        let Some(o) = self.pick(firm) else { return self.gtc(firm) };
        self.counts.moves += 1;
        let s = &self.symbols[usize::from(o.symbol)];
        let (mid, tick) = (i64::from(s.mid), i64::from(s.tick));
        // A small random walk that stays on the order's side of the centre and within the resting range.
        let step = (1 + self.rng.below(6) as i64) * tick;
        let up = self.rng.below(2) == 0;
        let mut price = i64::from(o.price) + if up { step } else { -step };
        let (lo, hi) = match o.side {
            Side::Buy => (mid - i64::from(HALF_RANGE_TICKS) * tick, mid - tick),
            Side::Sell => (mid + tick, mid + i64::from(HALF_RANGE_TICKS) * tick),
        };
        if price < lo || price > hi {
            price = i64::from(o.price) + if up { -step } else { step };
        }
        let mut price = price.clamp(lo, hi) as Price;
        if price == o.price {
            // A move always moves the price; step the other way.
            price = if i64::from(price) + tick <= hi { price + s.tick } else { price - s.tick };
        }
        let user_ref = self.take_ref(firm);
        let op = Op::Replace { orig_user_ref: o.user_ref, user_ref, qty: o.qty + o.executed, price };
        self.apply(firm, &op);
        op
    }

    fn apply(&mut self, firm: usize, op: &Op) {
        let f = self.firms[firm];
        let command = match *op {
            Op::Enter { user_ref, side, qty, symbol, price, ioc } => Command::NewOrder(NewOrder {
                session: f.session,
                user_ref,
                account: f.account,
                symbol: self.symbols[usize::from(symbol)].id,
                side,
                kind: OrderKind::Limit,
                tif: if ioc { TimeInForce::Ioc } else { TimeInForce::Day },
                post_only: false,
                qty,
                price,
                stop_price: 0,
            }),
            Op::Replace { orig_user_ref, user_ref, qty, price } => Command::Replace(Replace {
                session: f.session,
                orig_user_ref,
                new_user_ref: user_ref,
                qty,
                price,
            }),
            Op::Cancel { user_ref } => Command::Cancel(Cancel { session: f.session, user_ref, qty: 0 }),
            Op::EnterUnknownSymbol { .. } => return,
        };
        self.seq += 1;
        // One microsecond of sequencer time per input: the mix never leaves the bands, so no timed halts.
        let input = Input { seq: self.seq, timestamp: self.seq * 1_000, command };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.shadow.apply(&input, &mut events);
        match *op {
            Op::Enter { user_ref, .. } => self.refresh(firm, user_ref),
            Op::Replace { orig_user_ref, user_ref, .. } => {
                self.refresh(firm, orig_user_ref);
                self.refresh(firm, user_ref);
            }
            Op::Cancel { user_ref } => self.refresh(firm, user_ref),
            Op::EnterUnknownSymbol { .. } => {}
        }
        for e in &events {
            if let Event::Executed { maker, .. } = e {
                if let Some(k) = self.firms.iter().position(|f| f.session == maker.session) {
                    self.refresh(k, maker.user_ref);
                }
            }
        }
        self.events = events;
    }

    fn slot(firm: usize, user_ref: UserRef) -> usize {
        firm * REF_SLOTS + (user_ref as usize & (REF_SLOTS - 1))
    }

    /// Brings the view of one order in line with the shadow engine.
    fn refresh(&mut self, firm: usize, user_ref: UserRef) {
        let session = self.firms[firm].session;
        let view = self.shadow.order_ref_of(session, user_ref).and_then(|r| self.shadow.order(r)).filter(|v| v.resting);
        let slot = Self::slot(firm, user_ref);
        let at = self.index[slot];
        let known = at != 0 && self.live[at as usize - 1].user_ref == user_ref && self.live[at as usize - 1].firm as usize == firm;
        match (view, known) {
            (Some(v), true) => {
                let o = &mut self.live[at as usize - 1];
                o.qty = v.qty;
                o.executed = v.executed;
                o.price = v.price;
            }
            (Some(v), false) => {
                let Some(symbol) = self.symbols.iter().position(|s| s.id == v.symbol) else { return };
                if at != 0 {
                    // The slot belongs to a much older order: forget that one (it keeps resting).
                    self.counts.evicted += 1;
                    self.remove(at as usize - 1);
                }
                self.live.push(Live { firm: firm as u32, user_ref, symbol: symbol as u16, side: v.side, price: v.price, qty: v.qty, executed: v.executed });
                self.index[slot] = self.live.len() as u32;
            }
            (None, true) => self.remove(at as usize - 1),
            (None, false) => {}
        }
    }

    fn remove(&mut self, i: usize) {
        let gone = self.live[i];
        self.index[Self::slot(gone.firm as usize, gone.user_ref)] = 0;
        self.live.swap_remove(i);
        if i < self.live.len() {
            let moved = self.live[i];
            self.index[Self::slot(moved.firm as usize, moved.user_ref)] = i as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(resting: usize) -> MixSetup {
        let symbols = vec![MixSymbol {
            name: "AAPL".into(),
            id: 0,
            mid: 1_500_000,
            tick: 100,
            ladder_min: 1_500_000 - 100 * 2_048,
            reference: 1_500_000,
            bands: Bands::DEFAULT,
            market_collar_bps: 500,
        }];
        let firms = vec![MixFirm { session: 0, account: 0 }, MixFirm { session: 1, account: 1 }];
        let capacity = bourse_engine::Capacity {
            orders_max: 1 << 14,
            symbols_max: 1,
            accounts_max: 2,
            sessions_max: 2,
            levels_per_symbol: 4_096,
            halt_queue_max: 64,
            matches_per_order_max: 1_024,
        };
        let genesis = MixSetup::default_genesis(&symbols, &firms);
        MixSetup { symbols, firms, capacity, genesis, resting, first_user_ref: 1, invalid_every: 0 }
    }

    fn run(seed: u64, n: usize) -> (Vec<Message>, MixCounts, usize) {
        let mut m = Mix::new(&setup(200), seed).unwrap();
        let out: Vec<Message> = (0..n).map(|_| m.next_message()).collect();
        (out, m.counts, m.resting())
    }

    #[test]
    fn same_seed_same_messages_other_seed_other_messages() {
        let (a, _, _) = run(7, 5_000);
        let (b, _, _) = run(7, 5_000);
        let (c, _, _) = run(8, 5_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_mix_has_exchange_cores_shape_and_keeps_the_book_uncrossed() {
        let mut m = Mix::new(&setup(200), 3).unwrap();
        for _ in 0..20_000 {
            m.next_message();
        }
        let c = m.counts;
        let total = (c.gtc + c.ioc + c.cancel + c.moves) as f64;
        let moves = c.moves as f64 / total;
        let ioc = c.ioc as f64 / total;
        assert!((0.70..0.90).contains(&moves), "moves {moves}");
        assert!((0.02..0.05).contains(&ioc), "ioc {ioc}");
        assert!((100..=260).contains(&m.resting()), "resting {}", m.resting());
        let (bid, ask) = (m.shadow.best_bid(0).unwrap().0, m.shadow.best_ask(0).unwrap().0);
        assert!(bid < 1_500_000 && ask > 1_500_000, "bid {bid} ask {ask}");
        assert_eq!(c.evicted, 0);
    }

    #[test]
    fn user_refs_strictly_increase_per_firm_and_targets_are_live() {
        let (msgs, _, _) = run(11, 10_000);
        let mut last = [0u32; 2];
        for m in &msgs {
            match m.op {
                Op::Enter { user_ref, .. } | Op::Replace { user_ref, .. } => {
                    assert!(user_ref > last[m.firm]);
                    last[m.firm] = user_ref;
                }
                Op::Cancel { user_ref } => assert!(user_ref <= last[m.firm]),
                Op::EnterUnknownSymbol { .. } => unreachable!("invalid_every is 0"),
            }
        }
    }
}
