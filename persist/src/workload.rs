//! A seeded input generator: the same seed always yields the same inputs, so a crash test can regenerate exactly
//! what a killed process appended and compare, and benchmarks replay a realistic mix.
//!
//! It first configures a small market (symbols, accounts with cash and shares, sessions bound to accounts), then
//! emits mostly limit orders around each symbol's reference price, with cancels and replaces of the session's own
//! recent orders and an occasional `Tick`. User references increase strictly per session, as OUCH requires.

use bourse_engine::{
    AddAccount, AddSymbol, SelfTrade, Bands, BindSession, Cancel, Command, Deposit, DepositShares, Input, NewOrder, OrderKind,
    Replace, Side, TimeInForce,
};

/// Symbols the generated workload trades (locates 0..SYMBOLS).
pub const SYMBOLS: u16 = 4;
/// Accounts and sessions of the generated workload (ids 0..ACCOUNTS).
pub const ACCOUNTS: u32 = 16;
/// Recent orders remembered per session for cancels and replaces.
const RECENT_MAX: usize = 8;
/// Every symbol's reference price: the centre of its bands and of the prices the workload quotes.
pub const REFERENCE_PRICE: u32 = 1_000_000;
const TICK: u32 = 100;

/// SplitMix64: tiny, fast and good enough to drive a workload. The project's one seeded generator: the crash-test
/// driver, the mirror simulation, the load generator and the engine benchmark all draw from it, so a reported seed
/// means the same stream everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for workloads and fault choices.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `ppm` parts per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        self.below(1_000_000) < u64::from(ppm)
    }
}

/// The generator. `next(seq)` must be called with seq 1, 2, 3, … in order.
#[derive(Clone, Debug)]
pub struct Workload {
    rng: Rng,
    setup_step: u32,
    next_user_ref: [u32; ACCOUNTS as usize],
    recent: [[u32; RECENT_MAX]; ACCOUNTS as usize],
    recent_len: [usize; ACCOUNTS as usize],
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload {
            rng: Rng::new(seed),
            setup_step: 0,
            next_user_ref: [1; ACCOUNTS as usize],
            recent: [[0; RECENT_MAX]; ACCOUNTS as usize],
            recent_len: [0; ACCOUNTS as usize],
        }
    }

    /// Inputs needed before trading: symbols, then per account: add, deposit cash, deposit shares per symbol, bind.
    pub const SETUP_INPUTS: u64 = SYMBOLS as u64 + ACCOUNTS as u64 * (3 + SYMBOLS as u64);

    /// The input with sequence number `seq` (timestamps are `seq` µs).
    pub fn next(&mut self, seq: u64) -> Input {
        let command = if u64::from(self.setup_step) < Self::SETUP_INPUTS {
            let c = self.setup(self.setup_step);
            self.setup_step += 1;
            c
        } else {
            self.trade()
        };
        Input { seq, timestamp: seq * 1_000, command }
    }

    fn setup(&self, step: u32) -> Command {
        if step < u32::from(SYMBOLS) {
            return Command::AddSymbol(AddSymbol {
                symbol: step as u16,
                reference_price: REFERENCE_PRICE,
                ladder_min_price: REFERENCE_PRICE - 1_000 * TICK,
                tick: TICK,
                bands: Bands::DEFAULT,
                market_collar_bps: 500,
                index_weight: 1,
            });
        }
        let per_account = 3 + u32::from(SYMBOLS);
        let i = step - u32::from(SYMBOLS);
        let account = i / per_account;
        match i % per_account {
            0 => Command::AddAccount(AddAccount {
                account,
                firm: (account % 4) as u16,
                self_trade: SelfTrade::default(),
                short_limit: 0,
                max_order_qty: 1_000_000,
                max_order_notional: i64::MAX / 4,
            }),
            1 => Command::Deposit(Deposit { account, amount: 1_000_000_000_000 }),
            2 => Command::BindSession(BindSession { session: account as u16, account }),
            k => Command::DepositShares(DepositShares { account, symbol: (k - 3) as u16, qty: 1_000_000 }),
        }
    }

    fn trade(&mut self) -> Command {
        let session = self.rng.below(u64::from(ACCOUNTS)) as usize;
        let roll = self.rng.below(100);
        let n = self.recent_len[session];
        if roll < 10 && n > 0 {
            let k = self.rng.below(n as u64) as usize;
            let user_ref = self.recent[session][k];
            self.forget(session, k);
            return Command::Cancel(Cancel { session: session as u16, user_ref, qty: 0 });
        }
        if roll < 15 && n > 0 {
            let k = self.rng.below(n as u64) as usize;
            let orig_user_ref = self.recent[session][k];
            let new_user_ref = self.take_ref(session);
            self.recent[session][k] = new_user_ref;
            return Command::Replace(Replace {
                session: session as u16,
                orig_user_ref,
                new_user_ref,
                qty: 1 + self.rng.below(100) as u32,
                price: self.price(),
            });
        }
        if roll < 17 {
            return Command::Tick;
        }
        let user_ref = self.take_ref(session);
        self.remember(session, user_ref);
        Command::NewOrder(NewOrder {
            session: session as u16,
            user_ref,
            account: session as u32,
            symbol: self.rng.below(u64::from(SYMBOLS)) as u16,
            side: if self.rng.below(2) == 0 { Side::Buy } else { Side::Sell },
            kind: OrderKind::Limit,
            tif: if self.rng.below(10) == 0 { TimeInForce::Ioc } else { TimeInForce::Day },
            post_only: false,
            qty: 1 + self.rng.below(100) as u32,
            price: self.price(),
            stop_price: 0,
        })
    }

    fn price(&mut self) -> u32 {
        REFERENCE_PRICE - 20 * TICK + self.rng.below(41) as u32 * TICK
    }

    fn take_ref(&mut self, session: usize) -> u32 {
        let r = self.next_user_ref[session];
        self.next_user_ref[session] += 1;
        r
    }

    fn remember(&mut self, session: usize, user_ref: u32) {
        let n = self.recent_len[session];
        if n < RECENT_MAX {
            self.recent[session][n] = user_ref;
            self.recent_len[session] = n + 1;
        } else {
            self.recent[session].copy_within(1.., 0);
            self.recent[session][RECENT_MAX - 1] = user_ref;
        }
    }

    fn forget(&mut self, session: usize, k: usize) {
        let n = self.recent_len[session];
        self.recent[session].copy_within(k + 1..n, k);
        self.recent_len[session] = n - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs() {
        let (mut a, mut b) = (Workload::new(7), Workload::new(7));
        for seq in 1..5_000 {
            assert_eq!(a.next(seq), b.next(seq));
        }
        let mut c = Workload::new(8);
        let differs = (1..5_000).any(|seq| a.next(seq + 5_000) != c.next(seq));
        assert!(differs);
    }
}
