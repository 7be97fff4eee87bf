//! `bourse bench engine`: the matching engine alone on exchange-core's command mix.
//!
//! The workload is generated before anything is timed, from `--seed`: one symbol; 9 % GTC limit orders, 3 % IOC,
//! 6 % cancels and 82 % moves (a Replace changing the price of a resting order); about 1,000 resting orders over
//! about 750 price levels; 1,000 funded accounts each with its own session and firm. The generator keeps its own
//! view of the book by applying every command it generates to a shadow engine and reading back the orders each
//! command touched, so cancels and moves target live orders.
//!
//! Measurements, each on a fresh engine built (and loaded with the initial book) before timing starts:
//! - throughput: one warm-up run, then `--runs` timed runs; `mops` is the median. The sink counts events and
//!   trades (the appliance's sink encodes them; hashing every event would time the hash, not the engine).
//! - latency: a separate pass timing each `apply` with the TSC (`rdtsc`, calibrated against CLOCK_MONOTONIC) into
//!   a preallocated HdrHistogram. The timer's own cost (median of back-to-back readings, reported as
//!   `timer_overhead_ns`) is included in the figures, not subtracted.
//! - `result_hash`: an untimed pass through a `HashSink`; equal seeds and command counts give equal hashes.
//! - `--rate R1,R2,…`: open-loop replay at each offered rate; latency is measured from each command's intended
//!   start time (coordinated-omission corrected) and printed as exchange-core's rate × percentile table.
//! - `--compare`: the same stream through the naive reference book in `naive` (standard-library collections, no
//!   risk). Both books first run it untimed and their fill sequences must be equal, so the two do the same
//!   matching work. Then throughput as above, bourse and the reference alternating run by run so that both see
//!   the same machine state, and a latency pass of each with the TSC, kept per command kind (gtc, ioc, cancel,
//!   move, and all of them). Ratios are bourse / reference: above 1 for throughput and below 1 for latency mean
//!   bourse is faster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bourse_engine::*;
use bourse_persist::workload::Rng;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::naive::{self, Fill, FillCount};
use crate::alloc_count;
use bourse_appliance::obs::hlog::write_rate_table;
use bourse_appliance::obs::tsc::Clock;

#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Timed commands per run (after the initial book is built).
    #[arg(long, default_value_t = 3_000_000)]
    pub commands: usize,
    /// Workload seed: the same seed replays the same commands and gives the same `result_hash`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timed throughput runs (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Offered rates (commands per second, comma-separated) for the open-loop rate × percentile table.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// `exchange-core` (the command mix above) or `gbm` (five GBM mid-price scenarios, timed against matchcore).
    #[arg(long, default_value = "exchange-core")]
    pub workload: String,
    /// `gbm` only: width of bourse's price ladder; the stream's prices stay within the default, so a wider ladder
    /// only adds empty levels.
    #[arg(long, default_value_t = super::gbm::LEVELS)]
    pub levels: u32,
    /// `gbm` only: also time bourse with every event handed through an SPSC ring to a publisher thread pinned to
    /// the other core.
    #[arg(long)]
    pub publish: bool,
    /// Also run the naive reference book on the same stream: fills checked equal, throughput and per-kind latency
    /// of both, and their ratios.
    #[arg(long)]
    pub compare: bool,
}

/// The figures `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub commands: usize,
    pub mops: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub trades: u64,
    pub allocs_during_run: u64,
    pub seed: u64,
    pub result_hash: String,
    pub timer_overhead_ns: u64,
    pub resting_orders_end: u32,
    pub runs_mops: Vec<f64>,
    /// With `--compare` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
}

/// bourse against the naive reference book on the same stream.
#[derive(Debug, Clone, Serialize)]
pub struct Compare {
    /// bourse's throughput in this comparison's runs (alternating with the reference's).
    pub bourse_mops: f64,
    pub bourse_runs_mops: Vec<f64>,
    pub reference_mops: f64,
    pub reference_runs_mops: Vec<f64>,
    /// `bourse_mops / reference_mops`.
    pub ratio: f64,
    pub reference_allocs_during_run: u64,
    /// Fills in setup and commands, equal in number and content for both books.
    pub fills: usize,
    pub reference_resting_orders_end: usize,
    /// gtc, ioc, cancel, move, then `all`.
    pub kinds: Vec<KindLatency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindLatency {
    pub kind: &'static str,
    pub commands: usize,
    pub bourse_p50_ns: u64,
    pub bourse_p99_ns: u64,
    pub reference_p50_ns: u64,
    pub reference_p99_ns: u64,
    /// `bourse_p50_ns / reference_p50_ns`.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
}

const SYMBOL: SymbolId = 0;
const ACCOUNTS: u32 = 1_000;
const LADDER_MIN: Price = 100_000;
const LEVELS: u32 = 4_096;
const MID: Price = LADDER_MIN + LEVELS / 2;
/// Resting orders the generator aims for, and the half-width (ticks) of the price range they rest in.
const RESTING_TARGET: usize = 1_000;
const HALF_RANGE_TICKS: u32 = 375;

pub fn capacity() -> Capacity {
    Capacity {
        orders_max: 4_096,
        symbols_max: 1,
        accounts_max: ACCOUNTS,
        sessions_max: ACCOUNTS as u16,
        levels_per_symbol: LEVELS,
        halt_queue_max: 1_024,
        matches_per_order_max: 1_024,
    }
}

/// Pre-generated inputs: `setup` (admin and the initial book, untimed) then `commands` (timed).
pub struct Workload {
    pub setup: Vec<Input>,
    pub commands: Vec<Input>,
}

#[derive(Clone, Copy)]
struct Live {
    session: SessionId,
    user_ref: UserRef,
    side: Side,
    price: Price,
    qty: Qty,
}

/// The generator's view of the resting book, kept exact by a shadow engine.
struct Generator {
    rng: Rng,
    shadow: Engine,
    live: Vec<Live>,
    index: HashMap<(SessionId, UserRef), usize>,
    last_ref: Vec<UserRef>,
    seq: u64,
    events: Vec<Event>,
}

impl Generator {
    fn input(&mut self, command: Command) -> Input {
        self.seq += 1;
        // One microsecond of sequencer time per input: there are no timed halts in this workload.
        Input {
            seq: self.seq,
            timestamp: self.seq * 1_000,
            command,
        }
    }

    fn next_ref(&mut self, session: SessionId) -> UserRef {
        self.last_ref[session as usize] += 1;
        self.last_ref[session as usize]
    }

    /// Applies `input` to the shadow engine and refreshes the view of every order it touched.
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

    fn mid(&self) -> Price {
        match (self.shadow.best_bid(SYMBOL), self.shadow.best_ask(SYMBOL)) {
            (Some((b, _)), Some((a, _))) => (b + a) / 2,
            (Some((b, _)), None) => b + 1,
            (None, Some((a, _))) => a - 1,
            (None, None) => MID,
        }
    }

    fn clamp(p: i64) -> Price {
        p.clamp(LADDER_MIN as i64, (LADDER_MIN + LEVELS - 1) as i64) as Price
    }

    fn gtc(&mut self) -> Command {
        let session = self.rng.below(ACCOUNTS as u64) as SessionId;
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let mid = self.mid() as i64;
        // Mostly passive, spread over the range; one in four is marketable by a few ticks (it trades, and its
        // remainder rests).
        let offset = if self.rng.below(4) == 0 {
            -(self.rng.below(4) as i64)
        } else {
            1 + self.rng.below(HALF_RANGE_TICKS as u64) as i64
        };
        let price = Self::clamp(match side {
            Side::Buy => mid - offset,
            Side::Sell => mid + offset,
        });
        let user_ref = self.next_ref(session);
        Command::NewOrder(NewOrder {
            session,
            user_ref,
            account: session as AccountId,
            symbol: SYMBOL,
            side,
            kind: OrderKind::Limit,
            tif: TimeInForce::Day,
            post_only: false,
            qty: 1 + self.rng.below(100) as Qty,
            price,
            stop_price: 0,
        })
    }

    fn ioc(&mut self) -> Command {
        let session = self.rng.below(ACCOUNTS as u64) as SessionId;
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let through = self.rng.below(3) as i64;
        let price = Self::clamp(match side {
            Side::Buy => self.shadow.best_ask(SYMBOL).map_or(MID, |(p, _)| p) as i64 + through,
            Side::Sell => self.shadow.best_bid(SYMBOL).map_or(MID, |(p, _)| p) as i64 - through,
        });
        let user_ref = self.next_ref(session);
        Command::NewOrder(NewOrder {
            session,
            user_ref,
            account: session as AccountId,
            symbol: SYMBOL,
            side,
            kind: OrderKind::Limit,
            tif: TimeInForce::Ioc,
            post_only: false,
            qty: 1 + self.rng.below(50) as Qty,
            price,
            stop_price: 0,
        })
    }

    fn cancel(&mut self) -> Command {
        let o = self.live[self.rng.below(self.live.len() as u64) as usize];
        Command::Cancel(Cancel {
            session: o.session,
            user_ref: o.user_ref,
            qty: 0,
        })
    }

    fn moved(&mut self) -> Command {
        let o = self.live[self.rng.below(self.live.len() as u64) as usize];
        // A small random walk, biased towards the spread so that the book stays around ~750 levels and about one
        // move in fifteen crosses.
        let step = 1 + self.rng.below(6) as i64;
        let toward = self.rng.below(2) == 0;
        let dir = match (o.side, toward) {
            (Side::Buy, true) | (Side::Sell, false) => 1,
            _ => -1,
        };
        let mid = self.mid() as i64;
        let mut price = o.price as i64 + dir * step;
        // Keep the order within the resting range around the mid.
        if (price - mid).abs() > HALF_RANGE_TICKS as i64 {
            price = o.price as i64 - dir * step;
        }
        let new_user_ref = self.next_ref(o.session);
        Command::Replace(Replace {
            session: o.session,
            orig_user_ref: o.user_ref,
            new_user_ref,
            qty: o.qty,
            price: Self::clamp(price),
        })
    }
}

/// Builds the seeded workload: admin set-up and an initial book of ~1,000 orders, then `commands` timed commands.
pub fn generate(seed: u64, commands: usize) -> Workload {
    let mut g = Generator {
        rng: Rng::new(seed),
        shadow: Engine::new(capacity()),
        live: Vec::with_capacity(4 * RESTING_TARGET),
        index: HashMap::new(),
        last_ref: vec![0; ACCOUNTS as usize],
        seq: 0,
        events: Vec::new(),
    };
    let mut setup = Vec::new();
    let mut admin = vec![Command::AddSymbol(AddSymbol {
        symbol: SYMBOL,
        reference_price: MID,
        ladder_min_price: LADDER_MIN,
        tick: 1,
        bands: Bands::DEFAULT,
        market_collar_bps: 100,
        index_weight: 0,
    })];
    for a in 0..ACCOUNTS {
        admin.push(Command::AddAccount(AddAccount {
            account: a,
            firm: a as FirmId,
            self_trade: SelfTrade::default(),
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
        let i = g.input(c);
        g.track(&i);
        setup.push(i);
    }
    while g.live.len() < RESTING_TARGET {
        let c = g.gtc();
        let i = g.input(c);
        g.track(&i);
        setup.push(i);
    }
    let mut out = Vec::with_capacity(commands);
    for _ in 0..commands {
        let roll = g.rng.below(100);
        // Hold the book near its target size: swap a GTC for a cancel when long, and vice versa when short.
        let long = g.live.len() > RESTING_TARGET + RESTING_TARGET / 10;
        let short = g.live.len() < RESTING_TARGET - RESTING_TARGET / 10;
        let c = match roll {
            _ if g.live.is_empty() => g.gtc(),
            0..=8 if long => g.cancel(),
            0..=8 => g.gtc(),
            9..=11 => g.ioc(),
            12..=17 if short => g.gtc(),
            12..=17 => g.cancel(),
            _ => g.moved(),
        };
        let i = g.input(c);
        g.track(&i);
        out.push(i);
    }
    Workload {
        setup,
        commands: out,
    }
}

/// Counts events and trades: the cheapest sink that still receives every event.
#[derive(Default)]
struct CountSink {
    events: u64,
    trades: u64,
}

impl EventSink for CountSink {
    #[inline]
    fn event(&mut self, e: &Event) {
        self.events += 1;
        self.trades += matches!(e, Event::Executed { .. }) as u64;
    }
}

fn fresh_engine(w: &Workload) -> Engine {
    let mut e = Engine::new(capacity());
    for i in &w.setup {
        e.apply(i, &mut NullSink);
    }
    e
}

fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).context("histogram bounds")
}

/// Median cost of two back-to-back TSC readings, in ns.
fn timer_overhead_ns(clock: &Clock) -> u64 {
    let mut v: Vec<u64> = (0..10_001)
        .map(|_| {
            let a = clock.now();
            let b = clock.now();
            clock.delta_ns(a, b)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs the whole measurement on a pre-generated workload.
pub fn measure(w: &Workload, seed: u64, runs: usize) -> anyhow::Result<Report> {
    ensure!(!w.commands.is_empty(), "no commands to replay");
    let n = w.commands.len();
    // Throughput: one warm-up run plus `runs` timed runs.
    let mut runs_mops = Vec::with_capacity(runs);
    let mut allocs = 0;
    let mut trades = 0;
    for run in 0..=runs.max(1) {
        let mut engine = fresh_engine(w);
        let mut sink = CountSink::default();
        let a0 = alloc_count::allocations();
        let t0 = Instant::now();
        for i in &w.commands {
            engine.apply(i, &mut sink);
        }
        let dt = t0.elapsed();
        let a1 = alloc_count::allocations();
        if run > 0 {
            runs_mops.push(n as f64 / dt.as_secs_f64() / 1e6);
            allocs += a1 - a0;
        }
        trades = sink.trades;
    }
    let mut sorted = runs_mops.clone();
    sorted.sort_by(f64::total_cmp);
    let mops = sorted[sorted.len() / 2];

    // Latency: a separate pass, one TSC pair around each apply.
    let clock = Clock::calibrate(Duration::from_millis(100));
    let overhead = timer_overhead_ns(&clock);
    let mut hist = latency_histogram()?;
    let mut engine = fresh_engine(w);
    let mut sink = CountSink::default();
    let a0 = alloc_count::allocations();
    for i in &w.commands {
        let t0 = clock.now();
        engine.apply(i, &mut sink);
        let t1 = clock.now();
        hist.saturating_record(clock.delta_ns(t0, t1).max(1));
    }
    allocs += alloc_count::allocations() - a0;

    // Result hash: untimed, through the hashing sink.
    let mut engine = fresh_engine(w);
    let mut hs = HashSink::default();
    for i in &w.commands {
        engine.apply(i, &mut hs);
    }
    ensure!(
        hs.trades == trades,
        "trade count differs between runs: {} vs {trades}",
        hs.trades
    );
    Ok(Report {
        commands: n,
        mops,
        p50_ns: hist.value_at_quantile(0.50),
        p90_ns: hist.value_at_quantile(0.90),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        p9999_ns: hist.value_at_quantile(0.9999),
        max_ns: hist.max(),
        trades,
        allocs_during_run: allocs,
        seed,
        result_hash: format!("{:016x}", hs.hash),
        timer_overhead_ns: overhead,
        resting_orders_end: engine.orders_open(),
        runs_mops,
        compare: None,
    })
}

/// The command kinds of the exchange-core mix, in report order.
const KINDS: [&str; 4] = ["gtc", "ioc", "cancel", "move"];

/// Index of the command's kind in `KINDS`.
fn kind_of(c: &Command) -> Option<usize> {
    match c {
        Command::NewOrder(n) if n.tif == TimeInForce::Day => Some(0),
        Command::NewOrder(n) if n.tif == TimeInForce::Ioc => Some(1),
        Command::Cancel(_) => Some(2),
        Command::Replace(_) => Some(3),
        _ => None,
    }
}

/// Collects bourse's executions in the reference's terms.
struct BourseFills(Vec<Fill>);

impl EventSink for BourseFills {
    fn event(&mut self, e: &Event) {
        if let Event::Executed {
            maker, taker, price, qty, ..
        } = e
        {
            self.0.push(Fill {
                maker: (maker.session, maker.user_ref),
                taker: (taker.session, taker.user_ref),
                price: *price,
                qty: *qty,
            });
        }
    }
}

/// Every fill bourse makes on setup and commands, untimed.
pub fn bourse_fills(w: &Workload) -> Vec<Fill> {
    let mut e = Engine::new(capacity());
    let mut sink = BourseFills(Vec::new());
    for i in w.setup.iter().chain(&w.commands) {
        e.apply(i, &mut sink);
    }
    sink.0
}

/// Every fill the reference book makes on setup and commands, untimed.
pub fn reference_fills(w: &Workload) -> Vec<Fill> {
    let mut book = naive::Book::new();
    let mut fills = Vec::new();
    for i in w.setup.iter().chain(&w.commands) {
        book.apply(i, &mut fills);
    }
    fills
}

fn fresh_reference(w: &Workload) -> naive::Book {
    let mut book = naive::Book::new();
    for i in &w.setup {
        book.apply(i, &mut FillCount::default());
    }
    book
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Latency of each `apply` of the workload's commands, into the histogram of the command's kind, then all kinds
/// merged.
fn kind_latency(
    clock: &Clock,
    w: &Workload,
    kinds: &[usize],
    mut apply: impl FnMut(&Input),
) -> anyhow::Result<Vec<Histogram<u64>>> {
    let mut hists = (0..KINDS.len())
        .map(|_| latency_histogram())
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, &kind) in w.commands.iter().zip(kinds) {
        let t0 = clock.now();
        apply(i);
        let t1 = clock.now();
        hists[kind].saturating_record(clock.delta_ns(t0, t1).max(1));
    }
    let mut all = latency_histogram()?;
    for h in &hists {
        all.add(h).context("merging kind histograms")?;
    }
    hists.push(all);
    Ok(hists)
}

/// Both books' fills on the whole stream, which must be equal; returns how many there are.
fn check_fills(w: &Workload) -> anyhow::Result<usize> {
    let ours = bourse_fills(w);
    let theirs = reference_fills(w);
    if let Some(k) = (0..ours.len().max(theirs.len())).find(|&k| ours.get(k) != theirs.get(k)) {
        anyhow::bail!(
            "the reference book's fills differ from bourse's at fill {k} of {} / {}: {:?} vs {:?}",
            ours.len(),
            theirs.len(),
            ours.get(k),
            theirs.get(k)
        );
    }
    Ok(ours.len())
}

/// Timed runs of bourse and the reference, alternating, after one warm-up run of each: (bourse M ops/s per run,
/// reference M ops/s per run, the reference's allocations in its timed runs).
fn alternating_runs(w: &Workload, runs: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>, u64)> {
    let n = w.commands.len() as f64;
    let (mut b_runs, mut r_runs) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut r_allocs = 0;
    for run in 0..=runs.max(1) {
        let mut engine = fresh_engine(w);
        let mut sink = CountSink::default();
        let t0 = Instant::now();
        for i in &w.commands {
            engine.apply(i, &mut sink);
        }
        let b_dt = t0.elapsed();
        let mut book = fresh_reference(w);
        let mut fills = FillCount::default();
        let a0 = alloc_count::allocations();
        let t0 = Instant::now();
        for i in &w.commands {
            book.apply(i, &mut fills);
        }
        let r_dt = t0.elapsed();
        let a1 = alloc_count::allocations();
        ensure!(
            fills.0 == sink.trades,
            "trade counts differ: reference {} vs bourse {}",
            fills.0,
            sink.trades
        );
        if run > 0 {
            b_runs.push(n / b_dt.as_secs_f64() / 1e6);
            r_runs.push(n / r_dt.as_secs_f64() / 1e6);
            r_allocs += a1 - a0;
        }
    }
    Ok((b_runs, r_runs, r_allocs))
}

/// Runs bourse and the naive reference on the same workload: fills checked equal, then throughput and per-kind
/// latency of both.
pub fn compare(w: &Workload, runs: usize) -> anyhow::Result<Compare> {
    ensure!(!w.commands.is_empty(), "no commands to replay");
    let kinds = w
        .commands
        .iter()
        .map(|i| kind_of(&i.command))
        .collect::<Option<Vec<_>>>()
        .context("a timed command outside the exchange-core mix")?;
    let fills_n = check_fills(w)?;
    let (b_runs, r_runs, r_allocs) = alternating_runs(w, runs)?;

    let clock = Clock::calibrate(Duration::from_millis(100));
    let mut engine = fresh_engine(w);
    let mut sink = CountSink::default();
    let b_hists = kind_latency(&clock, w, &kinds, |i| engine.apply(i, &mut sink))?;
    let mut book = fresh_reference(w);
    let mut fills = FillCount::default();
    let r_hists = kind_latency(&clock, w, &kinds, |i| book.apply(i, &mut fills))?;
    let names = KINDS.iter().copied().chain(["all"]);
    let rows = names
        .zip(b_hists.iter().zip(&r_hists))
        .map(|(kind, (b, r))| {
            let (b50, b99) = (b.value_at_quantile(0.50), b.value_at_quantile(0.99));
            let (r50, r99) = (r.value_at_quantile(0.50), r.value_at_quantile(0.99));
            KindLatency {
                kind,
                commands: b.len() as usize,
                bourse_p50_ns: b50,
                bourse_p99_ns: b99,
                reference_p50_ns: r50,
                reference_p99_ns: r99,
                p50_ratio: b50 as f64 / r50.max(1) as f64,
                p99_ratio: b99 as f64 / r99.max(1) as f64,
            }
        })
        .collect();
    let (bourse_mops, reference_mops) = (median(&b_runs), median(&r_runs));
    Ok(Compare {
        bourse_mops,
        bourse_runs_mops: b_runs,
        reference_mops,
        reference_runs_mops: r_runs,
        ratio: bourse_mops / reference_mops,
        reference_allocs_during_run: r_allocs,
        fills: fills_n,
        reference_resting_orders_end: book.orders_open(),
        kinds: rows,
    })
}

fn print_compare(c: &Compare) {
    println!(
        "  compared with the naive reference book (BTreeMap levels, HashMap index; {} fills, all equal to bourse's)",
        c.fills
    );
    println!(
        "  throughput     bourse {:.2} M ops/s, reference {:.2} M ops/s (medians of {:?} / {:?}), ratio {:.2}",
        c.bourse_mops, c.reference_mops, c.bourse_runs_mops, c.reference_runs_mops, c.ratio
    );
    println!(
        "  reference      {} allocations during timed runs, {} orders resting at the end",
        c.reference_allocs_during_run, c.reference_resting_orders_end
    );
    println!(
        "  {:<8} {:>9} {:>11} {:>11} {:>9} {:>11} {:>11} {:>9}",
        "kind", "commands", "bourse p50", "ref p50", "ratio", "bourse p99", "ref p99", "ratio"
    );
    for k in &c.kinds {
        println!(
            "  {:<8} {:>9} {:>11} {:>11} {:>9.2} {:>11} {:>11} {:>9.2}",
            k.kind,
            k.commands,
            k.bourse_p50_ns,
            k.reference_p50_ns,
            k.p50_ratio,
            k.bourse_p99_ns,
            k.reference_p99_ns,
            k.p99_ratio
        );
    }
    println!("  (latency in ns, timer included; ratios are bourse / reference: below 1 is bourse faster)");
}

/// Open-loop replay at `rate` commands/s: latency from each command's intended start (coordinated omission).
pub fn measure_rate(w: &Workload, rate: f64) -> anyhow::Result<Histogram<u64>> {
    ensure!(rate > 0.0, "rate must be positive");
    let clock = Clock::calibrate(Duration::from_millis(50));
    let mut hist = latency_histogram()?;
    let mut engine = fresh_engine(w);
    let mut sink = CountSink::default();
    let interval_ns = 1e9 / rate;
    let start = clock.now();
    for (k, i) in w.commands.iter().enumerate() {
        let intended_ns = (k as f64 * interval_ns) as u64;
        // Spin until the command's intended start; a late command is not waited for (open loop).
        while clock.delta_ns(start, clock.now()) < intended_ns {
            std::hint::spin_loop();
        }
        engine.apply(i, &mut sink);
        let done_ns = clock.delta_ns(start, clock.now());
        hist.saturating_record(done_ns.saturating_sub(intended_ns).max(1));
    }
    Ok(hist)
}

pub fn run(args: EngineArgs) -> anyhow::Result<()> {
    match args.workload.as_str() {
        "exchange-core" => {}
        "gbm" => {
            ensure!(!args.compare, "--compare is for the exchange-core workload (gbm compares with matchcore)");
            let r = super::gbm::measure(args.seed, args.commands, args.runs, args.levels, args.publish)?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                super::gbm::print_table(&r);
            }
            return Ok(());
        }
        other => anyhow::bail!("unknown workload {other:?} (exchange-core or gbm)"),
    }
    ensure!(!args.publish, "--publish is for the gbm workload");
    let gen0 = Instant::now();
    let w = generate(args.seed, args.commands);
    let gen_s = gen0.elapsed().as_secs_f64();
    if !args.rate.is_empty() {
        ensure!(!args.compare, "--compare times closed-loop runs, not the open-loop --rate table");
        let mut rows = Vec::new();
        for &r in &args.rate {
            rows.push((r, measure_rate(&w, r)?));
        }
        let mut out = std::io::stdout().lock();
        println!(
            "engine, open loop, {} commands per rate, seed {} (latency in µs)",
            w.commands.len(),
            args.seed
        );
        write_rate_table(&mut out, &rows)?;
        return Ok(());
    }
    let mut r = measure(&w, args.seed, args.runs)?;
    if args.compare {
        r.compare = Some(compare(&w, args.runs)?);
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "engine bench: exchange-core mix, seed {}, {} commands (generated in {gen_s:.1} s)",
        r.seed, r.commands
    );
    println!(
        "  throughput     {:>10.2} M ops/s (median of {:?})",
        r.mops, r.runs_mops
    );
    println!(
        "  trades         {:>10} ({:.1} % of commands)",
        r.trades,
        100.0 * r.trades as f64 / r.commands as f64
    );
    println!(
        "  latency ns     p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        r.p50_ns, r.p90_ns, r.p99_ns, r.p999_ns, r.p9999_ns, r.max_ns
    );
    println!(
        "  timer overhead {:>10} ns per reading pair (included above)",
        r.timer_overhead_ns
    );
    println!(
        "  allocations    {:>10} during timed runs",
        r.allocs_during_run
    );
    println!("  result hash    {:>10}", r.result_hash);
    if let Some(c) = &r.compare {
        print_compare(c);
    }
    Ok(())
}
