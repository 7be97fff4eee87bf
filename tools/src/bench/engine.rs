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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bourse_engine::*;
use bourse_persist::workload::Rng;
use hdrhistogram::Histogram;
use serde::Serialize;

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
    })
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
            let r = super::gbm::measure(args.seed, args.commands, args.runs, args.levels)?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                super::gbm::print_table(&r);
            }
            return Ok(());
        }
        other => anyhow::bail!("unknown workload {other:?} (exchange-core or gbm)"),
    }
    let gen0 = Instant::now();
    let w = generate(args.seed, args.commands);
    let gen_s = gen0.elapsed().as_secs_f64();
    if !args.rate.is_empty() {
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
    let r = measure(&w, args.seed, args.runs)?;
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
    Ok(())
}
