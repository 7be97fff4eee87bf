//! Shared test helpers: a scenario builder, reference normalisation, and the reference model.

#![allow(dead_code)]

pub mod model;

use bourse_engine::*;
use std::collections::HashMap;

pub const CAP: Capacity = Capacity {
    orders_max: 256,
    symbols_max: 2,
    accounts_max: 8,
    sessions_max: 8,
    levels_per_symbol: 256,
    halt_queue_max: 16,
    matches_per_order_max: 64,
};

/// Ladder: 8000..10550 in steps of 10. Reference 9500, band ±3 % (9215..9785), collar 1 %.
pub fn symbol(id: SymbolId) -> AddSymbol {
    AddSymbol {
        symbol: id,
        reference_price: 9_500,
        ladder_min_price: 8_000,
        tick: 10,
        bands: Bands {
            high_bps: 300,
            mid_bps: 300,
            low_bps: 300,
            tier_high_price: 1,
            tier_low_price: 1,
            halt_ns: 1_000,
        },
        market_collar_bps: 100,
        index_weight: 1,
    }
}

/// Accounts 0..4, firms [0, 0, 1, 2] (accounts 0 and 1 share a firm: self-trade prevention), sessions 0..4
/// bound to the same-numbered account; session 5 stays unbound.
pub fn setup_commands(symbols: u16) -> Vec<Command> {
    setup_commands_with(symbols, SelfTrade::default())
}

/// [`setup_commands`] with firm 0's accounts preventing self-trades by `self_trade`.
pub fn setup_commands_with(symbols: u16, self_trade: SelfTrade) -> Vec<Command> {
    let mut v = Vec::new();
    for s in 0..symbols {
        v.push(Command::AddSymbol(symbol(s)));
    }
    let firms = [0u16, 0, 1, 2];
    for a in 0..4u32 {
        v.push(Command::AddAccount(AddAccount {
            account: a,
            firm: firms[a as usize],
            self_trade: if firms[a as usize] == 0 { self_trade } else { SelfTrade::default() },
            short_limit: if a == 3 { 50 } else { 0 },
            max_order_qty: 1_000,
            max_order_notional: 3_000_000,
        }));
        v.push(Command::Deposit(Deposit {
            account: a,
            amount: 2_000_000 + a as i64 * 500_000,
        }));
        for s in 0..symbols {
            v.push(Command::DepositShares(DepositShares {
                account: a,
                symbol: s,
                qty: 200 + a * 50,
            }));
        }
        v.push(Command::BindSession(BindSession {
            session: a as u16,
            account: a,
        }));
    }
    v.push(Command::SetMarketBreaker(MarketBreaker {
        level_bps: [200, 400, 600],
        halt_ns: [2_000, 5_000, 0],
    }));
    v
}

/// Feeds commands with consecutive seq numbers and advancing time.
pub struct Feed {
    pub seq: u64,
    pub now: u64,
}

impl Feed {
    pub fn new() -> Feed {
        Feed { seq: 0, now: 1 }
    }
    pub fn input(&mut self, dt: u64, command: Command) -> Input {
        self.seq += 1;
        self.now += dt;
        Input {
            seq: self.seq,
            timestamp: self.now,
            command,
        }
    }
}

/// Rewrites order references to their order of first appearance, so that the engine's slot/generation
/// references and the model's counters can be compared.
#[derive(Default)]
pub struct Normalizer(HashMap<u64, u64>);

impl Normalizer {
    fn n(&mut self, r: u64) -> u64 {
        let next = self.0.len() as u64 + 1;
        *self.0.entry(r).or_insert(next)
    }
    pub fn event(&mut self, e: &Event) -> Event {
        let mut e = *e;
        match &mut e {
            Event::Accepted { order_ref, .. }
            | Event::Canceled { order_ref, .. }
            | Event::Modified { order_ref, .. }
            | Event::BookAdd { order_ref, .. }
            | Event::BookReduce { order_ref, .. }
            | Event::BookDelete { order_ref, .. }
            | Event::StopTriggered { order_ref, .. } => *order_ref = self.n(*order_ref),
            Event::Replaced {
                old_ref, new_ref, ..
            }
            | Event::BookReplace {
                old_ref, new_ref, ..
            } => {
                *old_ref = self.n(*old_ref);
                *new_ref = self.n(*new_ref);
            }
            Event::Executed { maker, taker, .. } => {
                maker.order_ref = self.n(maker.order_ref);
                taker.order_ref = self.n(taker.order_ref);
            }
            _ => {}
        }
        e
    }
}

pub fn new_order(session: u16, user_ref: u32, side: Side, qty: u32, price: u32) -> Command {
    Command::NewOrder(NewOrder {
        session,
        user_ref,
        account: session as u32,
        symbol: 0,
        side,
        kind: OrderKind::Limit,
        tif: TimeInForce::Day,
        post_only: false,
        qty,
        price,
        stop_price: 0,
    })
}

/// Engine plus feed for scenario tests: `run` applies one command and returns its events.
pub struct Harness {
    pub engine: Engine,
    pub feed: Feed,
}

impl Harness {
    pub fn new() -> Harness {
        let mut h = Harness {
            engine: Engine::new(CAP),
            feed: Feed::new(),
        };
        for c in setup_commands(2) {
            let ev = h.run(c);
            assert!(matches!(ev[..], [Event::AdminApplied { .. }]), "{ev:?}");
        }
        h
    }
    pub fn run(&mut self, c: Command) -> Vec<Event> {
        self.run_at(1, c)
    }
    pub fn run_at(&mut self, dt: u64, c: Command) -> Vec<Event> {
        let input = self.feed.input(dt, c);
        let mut out = Vec::new();
        self.engine.apply(&input, &mut out);
        if let Err(e) = self.engine.check_invariants() {
            panic!("invariant broken after {c:?}: {e}\nevents: {out:?}");
        }
        out
    }
}

/// A seeded xorshift generator of mixed order-entry commands for sessions 0..4 on symbols 0..2: limits, market,
/// IOC, FOK, post-only, stops, cancels, reduces, replaces, halts and ticks. Returns (dt, command) pairs.
pub struct Stream {
    x: u64,
    last_ref: [u32; 4],
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream {
            x: seed | 1,
            last_ref: [0; 4],
        }
    }
    fn r(&mut self, n: u64) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        (self.x >> 11) % n
    }
    pub fn next(&mut self) -> (u64, Command) {
        let dt = self.r(50);
        let s = self.r(4) as usize;
        let price = 9_250 + 10 * self.r(50) as u32;
        let c = match self.r(100) {
            0..=49 => {
                self.last_ref[s] += 1;
                let kind = match self.r(10) {
                    0 => OrderKind::Market,
                    1 => OrderKind::Stop,
                    2 => OrderKind::StopLimit,
                    _ => OrderKind::Limit,
                };
                let tif = match self.r(10) {
                    0 => TimeInForce::Ioc,
                    1 => TimeInForce::Fok,
                    _ => TimeInForce::Day,
                };
                Command::NewOrder(NewOrder {
                    session: s as u16,
                    user_ref: self.last_ref[s],
                    account: s as u32,
                    symbol: self.r(2) as u16,
                    side: if self.r(2) == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                    kind,
                    tif,
                    post_only: self.r(10) == 0,
                    qty: 1 + self.r(20) as u32,
                    price,
                    stop_price: 9_250 + 10 * self.r(50) as u32,
                })
            }
            50..=64 => Command::Cancel(Cancel {
                session: s as u16,
                user_ref: self.last_ref[s].saturating_sub(self.r(6) as u32),
                qty: if self.r(3) == 0 { self.r(10) as u32 } else { 0 },
            }),
            65..=96 => {
                let orig = self.last_ref[s].saturating_sub(self.r(6) as u32);
                self.last_ref[s] += 1;
                Command::Replace(Replace {
                    session: s as u16,
                    orig_user_ref: orig,
                    new_user_ref: self.last_ref[s],
                    qty: 1 + self.r(20) as u32,
                    price,
                })
            }
            97 => Command::SetHalt(SetHalt {
                symbol: self.r(2) as u16,
                halted: self.r(2) == 0,
                until: 0,
            }),
            _ => Command::Tick,
        };
        (dt, c)
    }
}
