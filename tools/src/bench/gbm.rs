//! `bourse bench engine --workload gbm`: one symbol under bursty flow whose mid-price follows geometric Brownian
//! motion, timed against the published `matchcore` crate on the identical stream in the same run.
//!
//! Every scenario is generated before anything is timed, from `--seed`: passive limit orders placed around the
//! current mid with a power-law depth profile (most near the touch, a long tail out to `DEPTH_MAX_TICKS`), quantity
//! 1–100, cancels and reprices of live orders, and a few marketable IOCs. When the mid moves, orders placed at the
//! new touch cross stale ones on the other side, which is where most trades come from. Five scenarios run, from a
//! static book to a 40 % swing and a flash crash; the headline is the lowest scenario's throughput, as on the
//! third-party benchmark this copies the shape of.
//!
//! The stream is translated into matchcore commands at generation time (a submit's `OrderId` is its sequence
//! number; a reprice is an amend of the price only, which keeps the id). An untimed pass through each engine
//! records every fill as (command, maker order, price, quantity) and the two lists must be equal.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::ensure;
use bourse_engine::*;
use bourse_persist::workload::Rng;
use serde::Serialize;

use crate::alloc_count;

const SYMBOL: SymbolId = 0;
/// Few accounts keep the setup short; self-trade prevention is off (matchcore has none).
const ACCOUNTS: u32 = 64;
const LADDER_MIN: Price = 20_000;
/// The ladder the stream's prices stay within; `--levels` may give bourse a wider one (same prices, more empty
/// levels), which shows whether its best-price search depends on the ladder's width.
pub const LEVELS: u32 = 65_536;
const MID0: f64 = 50_000.0;
const RESTING_TARGET: usize = 5_000;
const DEPTH_MAX_TICKS: u64 = 2_000;

pub fn capacity(levels: u32) -> Capacity {
    Capacity {
        // As in bourse.example.toml: the order slab and reference table are sized for the appliance, not the run.
        orders_max: 1_048_576,
        symbols_max: 1,
        accounts_max: ACCOUNTS,
        sessions_max: ACCOUNTS as u16,
        levels_per_symbol: levels,
        halt_queue_max: 1_024,
        matches_per_order_max: 4_096,
    }
}

/// How the mid moves: `ln(mid / MID0) = shape(t) + noise`, with `t` in [0, 1] over the scenario and the noise a
/// Brownian walk whose standard deviation over the whole scenario is `vol`.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    vol: f64,
    shape: fn(f64) -> f64,
}

fn flat(_: f64) -> f64 {
    0.0
}

/// Up 40 % by the middle, back down by the end.
fn swing(t: f64) -> f64 {
    (1.4f64).ln() * (std::f64::consts::PI * t).sin()
}

/// A 30 % fall within 1 % of the scenario at its middle, then a recovery over the next 10 %.
fn crash(t: f64) -> f64 {
    let low = (0.7f64).ln();
    if t < 0.5 {
        0.0
    } else if t < 0.51 {
        low * (t - 0.5) / 0.01
    } else if t < 0.61 {
        low * (1.0 - (t - 0.51) / 0.10)
    } else {
        0.0
    }
}

pub const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "static",
        vol: 0.0,
        shape: flat,
    },
    Scenario {
        name: "calm",
        vol: 0.02,
        shape: flat,
    },
    Scenario {
        name: "volatile",
        vol: 0.10,
        shape: flat,
    },
    Scenario {
        name: "swing-40pct",
        vol: 0.05,
        shape: swing,
    },
    Scenario {
        name: "flash-crash",
        vol: 0.05,
        shape: crash,
    },
];

#[derive(Clone, Copy)]
struct Live {
    session: SessionId,
    user_ref: UserRef,
    side: Side,
    price: Price,
    qty: Qty,
    executed: Qty,
}

/// One scenario's stream for both engines.
pub struct Stream {
    pub scenario: Scenario,
    /// Width of bourse's ladder (`>= LEVELS`).
    pub levels: u32,
    pub setup: Vec<Input>,
    pub commands: Vec<Input>,
    /// The same stream (setup, then commands) for matchcore.
    #[cfg(feature = "matchcore")]
    pub mc: Vec<matchcore::Command>,
    /// (session, UserRefNum) → index (in setup ++ commands) of the submit that started its order/replace chain.
    chain: HashMap<(SessionId, UserRef), u32>,
}

struct Generator {
    rng: Rng,
    shadow: Engine,
    live: Vec<Live>,
    index: HashMap<(SessionId, UserRef), usize>,
    chain: HashMap<(SessionId, UserRef), u32>,
    last_ref: Vec<UserRef>,
    events: Vec<Event>,
    inputs: Vec<Input>,
    #[cfg(feature = "matchcore")]
    mc: Vec<matchcore::Command>,
}

impl Generator {
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Ticks from the mid, ≥ 1: P(k) falls off as k^-2, capped at `DEPTH_MAX_TICKS`.
    fn depth(&mut self) -> u64 {
        let u = self.uniform();
        ((1.0 / (1.0 - u)) as u64).clamp(1, DEPTH_MAX_TICKS)
    }

    fn clamp(p: i64) -> Price {
        p.clamp(LADDER_MIN as i64 + 1, (LADDER_MIN + LEVELS - 2) as i64) as Price
    }

    fn side(&mut self) -> Side {
        if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn passive_price(&mut self, side: Side, mid: i64) -> Price {
        let d = self.depth() as i64;
        Self::clamp(match side {
            Side::Buy => mid - d,
            Side::Sell => mid + d,
        })
    }

    fn push(&mut self, command: Command) {
        let k = self.inputs.len() as u64;
        let input = Input {
            seq: k + 1,
            timestamp: (k + 1) * 1_000,
            command,
        };
        #[cfg(feature = "matchcore")]
        self.mc.push(reference::translate(&input, &self.chain));
        match command {
            Command::NewOrder(n) => {
                self.chain.insert((n.session, n.user_ref), k as u32);
            }
            Command::Replace(r) => {
                let c = self.chain[&(r.session, r.orig_user_ref)];
                self.chain.insert((r.session, r.new_user_ref), c);
            }
            _ => {}
        }
        self.track(&input);
        self.inputs.push(input);
    }

    fn track(&mut self, input: &Input) {
        self.events.clear();
        self.shadow.apply(input, &mut self.events);
        let mut touched: Vec<(SessionId, UserRef)> = Vec::new();
        match input.command {
            Command::NewOrder(n) => touched.push((n.session, n.user_ref)),
            Command::Cancel(c) => touched.push((c.session, c.user_ref)),
            Command::Replace(r) => {
                touched.push((r.session, r.orig_user_ref));
                touched.push((r.session, r.new_user_ref));
            }
            _ => {}
        }
        for e in &self.events {
            if let Event::Executed { maker, .. } = e {
                touched.push((maker.session, maker.user_ref));
            }
        }
        for key in touched {
            let view = self
                .shadow
                .order_ref_of(key.0, key.1)
                .and_then(|r| self.shadow.order(r));
            match (view, self.index.get(&key).copied()) {
                (Some(v), Some(i)) if v.resting => {
                    self.live[i].qty = v.qty;
                    self.live[i].executed = v.executed;
                    self.live[i].price = v.price;
                }
                (Some(v), None) if v.resting => {
                    self.index.insert(key, self.live.len());
                    self.live.push(Live {
                        session: key.0,
                        user_ref: key.1,
                        side: v.side,
                        price: v.price,
                        qty: v.qty,
                        executed: v.executed,
                    });
                }
                (_, Some(i)) => {
                    self.index.remove(&key);
                    let last = self.live.len() - 1;
                    self.live.swap_remove(i);
                    if i != last {
                        let moved = self.live[i];
                        self.index.insert((moved.session, moved.user_ref), i);
                    }
                }
                _ => {}
            }
        }
    }

    fn new_order(&mut self, side: Side, price: Price, tif: TimeInForce) {
        let session = self.rng.below(ACCOUNTS as u64) as SessionId;
        self.last_ref[session as usize] += 1;
        let user_ref = self.last_ref[session as usize];
        let qty = 1 + self.rng.below(100) as Qty;
        self.push(Command::NewOrder(NewOrder {
            session,
            user_ref,
            account: session as AccountId,
            symbol: SYMBOL,
            side,
            kind: OrderKind::Limit,
            tif,
            post_only: false,
            qty,
            price,
            stop_price: 0,
        }));
    }

    fn passive(&mut self, mid: i64) {
        let side = self.side();
        let price = self.passive_price(side, mid);
        self.new_order(side, price, TimeInForce::Day);
    }

    fn aggressive(&mut self) {
        let side = self.side();
        let through = self.rng.below(3) as i64;
        let touch = match side {
            Side::Buy => self.shadow.best_ask(SYMBOL),
            Side::Sell => self.shadow.best_bid(SYMBOL),
        };
        let Some((p, _)) = touch else { return };
        let price = Self::clamp(match side {
            Side::Buy => p as i64 + through,
            Side::Sell => p as i64 - through,
        });
        self.new_order(side, price, TimeInForce::Ioc);
    }

    fn cancel(&mut self) {
        let o = self.live[self.rng.below(self.live.len() as u64) as usize];
        self.push(Command::Cancel(Cancel {
            session: o.session,
            user_ref: o.user_ref,
            qty: 0,
        }));
    }

    fn reprice(&mut self, mid: i64) {
        let o = self.live[self.rng.below(self.live.len() as u64) as usize];
        let mut price = self.passive_price(o.side, mid);
        if price == o.price {
            price = Self::clamp(match o.side {
                Side::Buy => price as i64 - 1,
                Side::Sell => price as i64 + 1,
            });
        }
        self.last_ref[o.session as usize] += 1;
        let new_user_ref = self.last_ref[o.session as usize];
        self.push(Command::Replace(Replace {
            session: o.session,
            orig_user_ref: o.user_ref,
            new_user_ref,
            // The chain's total liable quantity: keeps the open quantity as it is (OUCH 5.0 section 2.2).
            qty: o.qty + o.executed,
            price,
        }));
    }
}

/// Builds one scenario: admin, an initial book of `RESTING_TARGET` passive orders (untimed), then `commands`.
pub fn generate(scenario: Scenario, seed: u64, commands: usize, levels: u32) -> Stream {
    let mut g = Generator {
        rng: Rng::new(seed),
        shadow: Engine::new(capacity(levels)),
        live: Vec::with_capacity(2 * RESTING_TARGET),
        index: HashMap::new(),
        chain: HashMap::new(),
        last_ref: vec![0; ACCOUNTS as usize],
        events: Vec::new(),
        inputs: Vec::new(),
        #[cfg(feature = "matchcore")]
        mc: Vec::new(),
    };
    // Bands wide enough that neither swing nor crash halts the symbol: matchcore has no breakers.
    let wide = Bands {
        high_bps: 10_000,
        mid_bps: 10_000,
        low_bps: 10_000,
        ..Bands::DEFAULT
    };
    let mut admin = vec![Command::AddSymbol(AddSymbol {
        symbol: SYMBOL,
        reference_price: MID0 as Price,
        ladder_min_price: LADDER_MIN,
        tick: 1,
        bands: wide,
        market_collar_bps: 100,
        index_weight: 0,
    })];
    for a in 0..ACCOUNTS {
        admin.push(Command::AddAccount(AddAccount {
            account: a,
            firm: a as FirmId,
            self_trade: SelfTrade::Allow,
            short_limit: 0,
            max_order_qty: 1_000_000,
            max_order_notional: 1_000_000_000_000,
        }));
        admin.push(Command::Deposit(Deposit {
            account: a,
            amount: 1_000_000_000_000_000,
        }));
        admin.push(Command::DepositShares(DepositShares {
            account: a,
            symbol: SYMBOL,
            qty: 1_000_000_000,
        }));
        admin.push(Command::BindSession(BindSession {
            session: a as SessionId,
            account: a,
        }));
    }
    for c in admin {
        g.push(c);
    }
    while g.live.len() < RESTING_TARGET {
        g.passive(MID0 as i64);
    }
    let setup_len = g.inputs.len();
    let step_sd = scenario.vol / (commands.max(1) as f64).sqrt();
    let mut noise = 0.0;
    for k in 0..commands {
        let t = k as f64 / commands.max(1) as f64;
        if step_sd > 0.0 {
            noise += step_sd * g.normal();
        }
        let mid = (MID0 * ((scenario.shape)(t) + noise).exp()).round() as i64;
        let long = g.live.len() > RESTING_TARGET + RESTING_TARGET / 10;
        let short = g.live.len() < RESTING_TARGET - RESTING_TARGET / 10;
        match g.rng.below(100) {
            _ if g.live.is_empty() || short => g.passive(mid),
            0..=44 if long => g.cancel(),
            0..=44 => g.passive(mid),
            45..=49 => {
                let n = g.inputs.len();
                g.aggressive();
                if g.inputs.len() == n {
                    g.passive(mid);
                }
            }
            50..=79 => g.cancel(),
            _ => g.reprice(mid),
        }
    }
    let commands = g.inputs.split_off(setup_len);
    Stream {
        scenario,
        levels,
        setup: g.inputs,
        commands,
        #[cfg(feature = "matchcore")]
        mc: g.mc,
        chain: g.chain,
    }
}

/// One fill: (index of the command in setup ++ commands, maker's chain, price, quantity).
pub type Fill = (u32, u32, u64, u64);

struct FillSink<'a> {
    k: u32,
    chain: &'a HashMap<(SessionId, UserRef), u32>,
    fills: Vec<Fill>,
    unknown_makers: u64,
}

impl EventSink for FillSink<'_> {
    fn event(&mut self, e: &Event) {
        if let Event::Executed {
            maker, price, qty, ..
        } = e
        {
            match self.chain.get(&(maker.session, maker.user_ref)) {
                Some(&c) => self.fills.push((self.k, c, *price as u64, *qty as u64)),
                None => self.unknown_makers += 1,
            }
        }
    }
}

/// Every fill bourse makes on the stream, untimed.
pub fn bourse_fills(s: &Stream) -> anyhow::Result<Vec<Fill>> {
    let mut e = Engine::new(capacity(s.levels));
    let mut sink = FillSink {
        k: 0,
        chain: &s.chain,
        fills: Vec::new(),
        unknown_makers: 0,
    };
    for (k, i) in s.setup.iter().chain(&s.commands).enumerate() {
        sink.k = k as u32;
        e.apply(i, &mut sink);
    }
    ensure!(
        sink.unknown_makers == 0,
        "{} fills named a maker the generator never issued",
        sink.unknown_makers
    );
    Ok(sink.fills)
}

#[derive(Default)]
struct TradeCount {
    trades: u64,
    rejects: u64,
}

impl EventSink for TradeCount {
    #[inline]
    fn event(&mut self, e: &Event) {
        self.trades += matches!(e, Event::Executed { .. }) as u64;
        self.rejects += matches!(e, Event::Rejected { .. }) as u64;
    }
}

/// One timed pass of bourse: (seconds, trades, rejects, allocations).
pub fn time_bourse(s: &Stream) -> (f64, u64, u64, u64) {
    let mut e = Engine::new(capacity(s.levels));
    for i in &s.setup {
        e.apply(i, &mut NullSink);
    }
    let mut sink = TradeCount::default();
    let a0 = alloc_count::allocations();
    let t0 = Instant::now();
    for i in &s.commands {
        e.apply(i, &mut sink);
    }
    let dt = t0.elapsed().as_secs_f64();
    let allocs = alloc_count::allocations() - a0;
    (dt, sink.trades, sink.rejects, allocs)
}

/// Events the ring between the matcher and the publisher holds: about 600 KiB, so both cores' working sets stay
/// in their L2.
const RING_EVENTS: usize = 8_192;
/// Room asked for before each input: more than an order meeting a few dozen makers produces. An input that
/// produces more (a sweep, a stop cascade) waits inside `push`, and is counted.
const RESERVE_EVENTS: usize = 128;

/// Events handed over as the matcher emits them; the publisher on the other core takes them.
struct RingSink {
    tx: bourse_nic::ring::Sender<Event>,
    lost: u64,
}

impl EventSink for RingSink {
    #[inline]
    fn event(&mut self, e: &Event) {
        self.lost += self.tx.push(*e).is_err() as u64;
    }
}

/// What one published pass measured.
pub struct Published {
    /// From the first input to the publisher having taken the last event.
    pub seconds: f64,
    pub trades: u64,
    /// Inputs that found less than `RESERVE_EVENTS` free slots and waited before being applied.
    pub inputs_waited: u64,
    /// Events that found the ring full within an input.
    pub pushes_waited: u64,
    pub allocs: u64,
}

/// One timed pass of bourse with every event handed through `bourse_nic::ring` to a publisher thread, the two
/// threads pinned to different cores when there are two. The publisher counts trades and folds every event into
/// a hash (the stand-in for encoding it).
pub fn time_bourse_published(s: &Stream) -> anyhow::Result<Published> {
    use bourse_nic::backend::pin;
    let mut e = Engine::new(capacity(s.levels));
    for i in &s.setup {
        e.apply(i, &mut NullSink);
    }
    let cores = pin::available_cores();
    let (matcher_core, publisher_core) = (cores.first().copied(), cores.get(1).copied());
    let (tx, mut rx) = bourse_nic::ring::channel::<Event>(RING_EVENTS);
    ensure!(!s.commands.is_empty(), "no commands to replay");
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            if let Some(c) = publisher_core {
                let _ = pin::pin_current_thread(c);
            }
            let (mut trades, mut hash) = (0u64, 0u64);
            start.wait();
            let mut take = |e: &Event| {
                trades += matches!(e, Event::Executed { .. }) as u64;
                hash = hash.rotate_left(5) ^ event_word(e);
            };
            loop {
                // Abandonment is read before the drain, so the drain that follows it takes the last events.
                let gone = rx.is_abandoned();
                if rx.drain(&mut take) == 0 && gone {
                    break;
                }
            }
            std::hint::black_box(hash);
            (Instant::now(), trades)
        });
        // The matcher gets its own thread too, so that pinning it leaves the caller's affinity alone.
        let matcher = scope.spawn(|| {
            if let Some(c) = matcher_core {
                let _ = pin::pin_current_thread(c);
            }
            let mut sink = RingSink { tx, lost: 0 };
            let mut inputs_waited = 0;
            start.wait();
            let a0 = alloc_count::allocations();
            let t0 = Instant::now();
            for i in &s.commands {
                if sink.tx.try_reserve(RESERVE_EVENTS).is_err() {
                    inputs_waited += 1;
                    while sink.tx.try_reserve(RESERVE_EVENTS).is_err() {
                        std::hint::spin_loop();
                    }
                }
                e.apply(i, &mut sink);
            }
            let allocs = alloc_count::allocations() - a0;
            (t0, allocs, inputs_waited, sink.tx.waits(), sink.lost)
        });
        let (t0, allocs, inputs_waited, pushes_waited, lost) = matcher.join().expect("matcher thread");
        let (t1, trades) = publisher.join().expect("publisher thread");
        ensure!(lost == 0, "{lost} events lost: the publisher left early");
        Ok(Published {
            seconds: (t1 - t0).as_secs_f64(),
            trades,
            inputs_waited,
            pushes_waited,
            allocs,
        })
    })
}

/// A word that differs between most events: what the publisher's stand-in encoding folds.
#[inline]
fn event_word(e: &Event) -> u64 {
    match e {
        Event::Executed { match_number, price, qty, .. } => match_number ^ ((*price as u64) << 20) ^ *qty as u64,
        Event::Accepted { order_ref, .. } | Event::BookAdd { order_ref, .. } | Event::BookDelete { order_ref, .. } => {
            *order_ref
        }
        Event::Canceled { order_ref, canceled_qty, .. } => order_ref ^ *canceled_qty as u64,
        _ => 1,
    }
}

#[cfg(feature = "matchcore")]
pub mod reference {
    //! The stream in matchcore's terms, and matchcore's fills.
    use super::*;
    use matchcore as mc;

    fn side(s: Side) -> mc::Side {
        match s {
            Side::Buy => mc::Side::Buy,
            Side::Sell => mc::Side::Sell,
        }
    }

    /// The matchcore command for the bourse input; admin inputs become a cancel of an order that does not exist
    /// (rejected, untimed: they are all in the setup) so that sequence numbers stay aligned with the stream.
    pub(super) fn translate(i: &Input, chain: &HashMap<(SessionId, UserRef), u32>) -> mc::Command {
        let meta = mc::CommandMeta {
            sequence_number: mc::SequenceNumber(i.seq - 1),
            timestamp: mc::Timestamp(i.timestamp),
        };
        let kind = match i.command {
            Command::NewOrder(n) => mc::CommandKind::Submit(mc::SubmitCmd {
                order: mc::NewOrder::Limit(mc::LimitOrder::new(
                    mc::Price(n.price as u64),
                    mc::QuantityPolicy::Standard {
                        quantity: mc::Quantity(n.qty as u64),
                    },
                    mc::OrderFlags::new(
                        side(n.side),
                        false,
                        match n.tif {
                            TimeInForce::Ioc => mc::TimeInForce::Ioc,
                            _ => mc::TimeInForce::Gtc,
                        },
                    ),
                )),
            }),
            Command::Cancel(c) => mc::CommandKind::Cancel(mc::CancelCmd {
                order_id: mc::OrderId(chain[&(c.session, c.user_ref)] as u64),
                order_kind: mc::OrderKind::Limit,
            }),
            Command::Replace(r) => mc::CommandKind::Amend(mc::AmendCmd {
                order_id: mc::OrderId(chain[&(r.session, r.orig_user_ref)] as u64),
                patch: mc::AmendPatch::Limit(
                    mc::LimitOrderPatch::new().with_price(mc::Price(r.price as u64)),
                ),
            }),
            _ => mc::CommandKind::Cancel(mc::CancelCmd {
                order_id: mc::OrderId(u64::MAX),
                order_kind: mc::OrderKind::Limit,
            }),
        };
        mc::Command { meta, kind }
    }

    fn trades(o: &mc::CommandOutcome) -> &[mc::Trade] {
        match o {
            mc::CommandOutcome::Applied(
                mc::CommandReport::Submit(e) | mc::CommandReport::Amend(e),
            ) => e.target_order().match_result().map_or(&[], |m| m.trades()),
            _ => &[],
        }
    }

    /// matchcore's fills, and how many of them printed through the incoming order's own limit price (a buy
    /// filled above its limit or a sell below it), which no correct price-time book does.
    pub fn fills(s: &Stream) -> (Vec<Fill>, u64) {
        let mut book: mc::OrderBook = mc::OrderBook::new("GBM");
        let mut out = Vec::new();
        let mut through = 0;
        for (k, (c, i)) in s.mc.iter().zip(s.setup.iter().chain(&s.commands)).enumerate() {
            let o = book.execute(c);
            let limit = match i.command {
                Command::NewOrder(n) => Some((n.side, n.price as u64)),
                _ => None,
            };
            for t in trades(&o) {
                let p = t.price().0;
                through += matches!(limit, Some((Side::Buy, l)) if p > l) as u64;
                through += matches!(limit, Some((Side::Sell, l)) if p < l) as u64;
                out.push((k as u32, t.maker_order_id().0 as u32, p, t.quantity().0));
            }
        }
        (out, through)
    }

    /// One timed pass of matchcore: (seconds, trades, rejects among the timed commands).
    pub fn time(s: &Stream) -> (f64, u64, u64) {
        let mut book: mc::OrderBook = mc::OrderBook::new("GBM");
        let (setup, timed) = s.mc.split_at(s.setup.len());
        for c in setup {
            std::hint::black_box(book.execute(c));
        }
        let (mut trades_n, mut rejects) = (0u64, 0u64);
        let t0 = Instant::now();
        for c in timed {
            let o = book.execute(c);
            trades_n += trades(&o).len() as u64;
            rejects += matches!(o, mc::CommandOutcome::Rejected(_)) as u64;
        }
        (t0.elapsed().as_secs_f64(), trades_n, rejects)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    pub commands: usize,
    pub trades: u64,
    pub rejects: u64,
    pub bourse_mops: f64,
    pub bourse_runs_mops: Vec<f64>,
    pub allocs_during_run: u64,
    /// `None` when built without the `matchcore` feature.
    pub matchcore_mops: Option<f64>,
    pub matchcore_runs_mops: Vec<f64>,
    pub matchcore_rejects: Option<u64>,
    /// Both engines' fill lists (command, maker order, price, quantity) are identical.
    pub fills_identical: Option<bool>,
    /// Index of the first fill where the two lists differ.
    pub first_difference: Option<u64>,
    /// matchcore fills priced through the incoming order's limit (see `reference::fills`).
    pub matchcore_trade_throughs: Option<u64>,
    pub fills: usize,
    pub mid_low: Price,
    pub mid_high: Price,
    /// `--publish`: bourse with every event handed to a publisher thread on the other core (median M/s, from
    /// the first input to the publisher taking the last event), and how often either side waited.
    pub published_mops: Option<f64>,
    pub published_runs_mops: Vec<f64>,
    pub published_inputs_waited: Option<u64>,
    pub published_pushes_waited: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GbmReport {
    pub seed: u64,
    /// Width of bourse's price ladder.
    pub levels: u32,
    pub scenarios: Vec<ScenarioReport>,
    /// The lowest scenario's throughput, the benchmark's headline.
    pub bourse_worst_mops: f64,
    pub matchcore_worst_mops: Option<f64>,
    pub worst_ratio: Option<f64>,
    /// `--publish`: the lowest scenario's throughput with every event handed to the publisher thread, and its
    /// ratio to matchcore's worst (which publishes nothing).
    pub published_worst_mops: Option<f64>,
    pub published_worst_ratio: Option<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn measure_scenario(s: &Stream, runs: usize, publish: bool) -> anyhow::Result<ScenarioReport> {
    let n = s.commands.len();
    ensure!(n > 0, "no commands to replay");
    let fills = bourse_fills(s)?;
    let (mut b_runs, mut m_runs, mut p_runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut inputs_waited, mut pushes_waited) = (0, 0);
    let (mut trades, mut rejects, mut allocs) = (0, 0, 0);
    #[cfg(feature = "matchcore")]
    let mut mc_rejects = 0;
    // One warm-up pass of each, then alternate so that both see the same machine state.
    for run in 0..=runs.max(1) {
        let (dt, t, r, a) = time_bourse(s);
        #[cfg(feature = "matchcore")]
        let (mdt, _, mr) = reference::time(s);
        let published = if publish { Some(time_bourse_published(s)?) } else { None };
        if let Some(p) = &published {
            ensure!(p.trades == t, "the publisher saw {} trades, the matcher made {t}", p.trades);
        }
        if run > 0 {
            b_runs.push(n as f64 / dt / 1e6);
            allocs += a;
            if let Some(p) = published {
                p_runs.push(n as f64 / p.seconds / 1e6);
                allocs += p.allocs;
                inputs_waited += p.inputs_waited;
                pushes_waited += p.pushes_waited;
            }
            #[cfg(feature = "matchcore")]
            {
                m_runs.push(n as f64 / mdt / 1e6);
                mc_rejects = mr;
            }
        }
        trades = t;
        rejects = r;
    }
    #[cfg(feature = "matchcore")]
    let (identical, mc_rej, through, first_diff) = {
        let (theirs, through) = reference::fills(s);
        let first = (0..fills.len().max(theirs.len())).find(|&k| fills.get(k) != theirs.get(k));
        (Some(theirs == fills), Some(mc_rejects), Some(through), first.map(|k| k as u64))
    };
    #[cfg(not(feature = "matchcore"))]
    let (identical, mc_rej, through, first_diff) = (None, None, None, None);
    let (mut lo, mut hi) = (Price::MAX, 0);
    let mut e = Engine::new(capacity(s.levels));
    for i in s.setup.iter().chain(&s.commands) {
        e.apply(i, &mut NullSink);
        if let (Some((b, _)), Some((a, _))) = (e.best_bid(SYMBOL), e.best_ask(SYMBOL)) {
            lo = lo.min((a + b) / 2);
            hi = hi.max((a + b) / 2);
        }
    }
    Ok(ScenarioReport {
        scenario: s.scenario.name,
        commands: n,
        trades,
        rejects,
        bourse_mops: median(&b_runs),
        bourse_runs_mops: b_runs,
        allocs_during_run: allocs,
        matchcore_mops: (!m_runs.is_empty()).then(|| median(&m_runs)),
        matchcore_runs_mops: m_runs,
        matchcore_rejects: mc_rej,
        fills_identical: identical,
        first_difference: first_diff,
        matchcore_trade_throughs: through,
        fills: fills.len(),
        mid_low: lo,
        mid_high: hi,
        published_mops: (!p_runs.is_empty()).then(|| median(&p_runs)),
        published_runs_mops: p_runs,
        published_inputs_waited: publish.then_some(inputs_waited),
        published_pushes_waited: publish.then_some(pushes_waited),
    })
}

pub fn measure(seed: u64, commands: usize, runs: usize, levels: u32, publish: bool) -> anyhow::Result<GbmReport> {
    ensure!(levels >= LEVELS, "--levels {levels}: the GBM stream needs a ladder of at least {LEVELS} levels");
    let mut scenarios = Vec::new();
    for (k, sc) in SCENARIOS.iter().enumerate() {
        let s = generate(*sc, seed.wrapping_add(k as u64), commands, levels);
        scenarios.push(measure_scenario(&s, runs, publish)?);
    }
    let bourse_worst = scenarios
        .iter()
        .map(|r| r.bourse_mops)
        .fold(f64::INFINITY, f64::min);
    let mc_worst = scenarios
        .iter()
        .map(|r| r.matchcore_mops)
        .try_fold(f64::INFINITY, |m, x| x.map(|x| m.min(x)));
    let pub_worst = scenarios
        .iter()
        .map(|r| r.published_mops)
        .try_fold(f64::INFINITY, |m, x| x.map(|x| m.min(x)));
    Ok(GbmReport {
        seed,
        levels,
        scenarios,
        bourse_worst_mops: bourse_worst,
        matchcore_worst_mops: mc_worst,
        worst_ratio: mc_worst.map(|m| bourse_worst / m),
        published_worst_mops: pub_worst,
        published_worst_ratio: pub_worst.zip(mc_worst).map(|(p, m)| p / m),
    })
}

pub fn print_table(r: &GbmReport) {
    println!(
        "engine bench: GBM workload, seed {}, {} commands per scenario, bourse ladder {} levels",
        r.seed,
        r.scenarios.first().map_or(0, |s| s.commands),
        r.levels
    );
    println!(
        "  {:<12} {:>9} {:>9} {:>7} {:>13} {:>13} {:>7} {:>6} {:>7} {:>13}",
        "scenario", "trades", "rejects", "allocs", "bourse M/s", "matchcore M/s", "ratio", "fills", "mc thru", "mid range"
    );
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
    for s in &r.scenarios {
        println!(
            "  {:<12} {:>9} {:>9} {:>7} {:>13.2} {:>13} {:>7} {:>6} {:>7} {:>6}-{:<6}",
            s.scenario,
            s.trades,
            s.rejects,
            s.allocs_during_run,
            s.bourse_mops,
            opt(s.matchcore_mops),
            opt(s.matchcore_mops.map(|m| s.bourse_mops / m)),
            match s.fills_identical {
                Some(true) => "same",
                Some(false) => "DIFFER",
                None => "-",
            },
            s.matchcore_trade_throughs.map_or("-".to_string(), |t| t.to_string()),
            s.mid_low,
            s.mid_high
        );
    }
    println!(
        "  worst case   bourse {:.2} M/s, matchcore {} M/s, ratio {}",
        r.bourse_worst_mops,
        opt(r.matchcore_worst_mops),
        opt(r.worst_ratio)
    );
    if r.published_worst_mops.is_some() {
        println!("  with every event handed through an SPSC ring to a publisher thread on the other core:");
        println!("  {:<12} {:>13} {:>14} {:>14}", "scenario", "bourse M/s", "inputs waited", "pushes waited");
        for s in &r.scenarios {
            println!(
                "  {:<12} {:>13} {:>14} {:>14}",
                s.scenario,
                opt(s.published_mops),
                s.published_inputs_waited.map_or("-".to_string(), |v| v.to_string()),
                s.published_pushes_waited.map_or("-".to_string(), |v| v.to_string())
            );
        }
        println!(
            "  worst case   bourse {} M/s published, ratio to matchcore {}",
            opt(r.published_worst_mops),
            opt(r.published_worst_ratio)
        );
    }
}
