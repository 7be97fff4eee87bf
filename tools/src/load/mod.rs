//! `bourse load`: the firm-side load generator.
//!
//! One thread, one non-blocking kernel UDP socket per firm, busy-polled. Each firm logs in with SoupBinTCP, then
//! the generator sends exchange-core's order mix ([`mix`]) as OUCH 5.0 at a fixed offered rate (open loop) or one
//! message at a time (`--closed-loop`), and matches each reply to its request ([`client`]).
//!
//! **Latency with coordinated-omission correction.** Message `i` of a rate row has an intended send time
//! `start + i × period`. When the generator falls behind (the appliance or the host stalls it), it sends the late
//! messages at once, but their latency is still measured from the intended time: the time the first reply
//! answering the message arrives, minus its intended send time, in nanoseconds, into an HdrHistogram. A stall
//! therefore shows up in the tail for every message it delayed, not just for the one that was waiting.
//!
//! **Output.** A rate table ([`table`]): per offered rate, what was achieved, sent, replied, rejected and lost,
//! then the latency percentiles of the replied requests, with a SATURATED mark on rows that did not keep up —
//! or with `--json` exactly one JSON object. The `.hlog` (`--hlog`) holds one tag per rate row (`rate_<N>`), one
//! line per tag per second, so `bourse hist` shows each rate on its own. SIGINT or SIGTERM ends the run early:
//! the rows so far (the current one marked interrupted) are still reported and the `.hlog` flushed.
//! `run_load` is the library entry point (`bourse demo` and the tests call it).

pub mod client;
pub mod mix;
pub mod table;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bourse_engine::{Bands, Capacity, Price};
use bourse_nic::wire::alpha::Alpha;
use hdrhistogram::Histogram;
use serde::Serialize;

use bourse_appliance::config::{parse_price, Config};
use bourse_appliance::obs::hlog::LatencyLog;
use client::{FirmConn, MdListener, DATAGRAM_MAX_BYTES};
use mix::{Mix, MixCounts, MixFirm, MixSetup, MixSymbol, Op};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Appliance order-entry address (repeat for standbys: on silence the generator logs in to the next one).
    #[arg(long = "target")]
    pub targets: Vec<SocketAddrV4>,
    /// Firm credentials USER:PASSWORD (repeatable). Default: every firm of --config.
    #[arg(long = "firm")]
    pub firms: Vec<String>,
    /// Appliance configuration: firms, symbols, reference prices and the target address come from it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Source IPv4 address of the firm sockets (must be an allowed source of the firms).
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// Symbol to trade (repeatable). Default: the config's symbols, or AAPL.
    #[arg(long = "symbol")]
    pub symbols: Vec<String>,
    /// Centre of the resting orders, decimal (default: each symbol's reference price, or 150.00).
    #[arg(long)]
    pub mid: Option<String>,
    /// Offered rate, messages per second (all firms together), open loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Several offered rates, one table row each, e.g. 10000,50000,100000.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Seconds per rate row.
    #[arg(long, default_value_t = 3.0)]
    pub duration_s: f64,
    /// Ping-pong: send the next message only after the previous one was answered.
    #[arg(long)]
    pub closed_loop: bool,
    /// Mix seed: the same seed sends the same messages.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds at the first rate before measuring (the book fills during it).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_s: f64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the round-trip histograms to this .hlog: one tag per rate row, one interval per second (an existing
    /// file is moved aside, never overwritten).
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Also listen for ITCH over MoldUDP64 here, counting datagrams and sequence gaps.
    #[arg(long)]
    pub md: Option<SocketAddrV4>,
    /// Print a progress line per rate row on stderr.
    #[arg(long)]
    pub progress: bool,
    /// Resting orders to keep on the book.
    #[arg(long, default_value_t = 1_000)]
    pub resting: usize,
    /// Silence (with requests outstanding) after which the next --target is tried.
    #[arg(long, default_value_t = 1_000)]
    pub failover_ms: u64,
    /// How long to wait for each Login Accepted.
    #[arg(long, default_value_t = 2_000)]
    pub login_timeout_ms: u64,
    /// Pin the generator thread to this core.
    #[arg(long)]
    pub core: Option<usize>,
    /// First UserRefNum of every firm (raise it above the last run's when reusing a running appliance).
    #[arg(long, default_value_t = 1)]
    pub first_user_ref: u32,
    /// Make every N-th message an order for an unknown symbol, exercising the reject path (0: never).
    #[arg(long, default_value_t = 0)]
    pub invalid_every: u64,
}

/// One firm's credentials.
#[derive(Clone, Debug)]
pub struct FirmLogin {
    pub username: String,
    pub password: String,
}

/// Everything `run_load` needs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub targets: Vec<SocketAddrV4>,
    pub firms: Vec<FirmLogin>,
    pub bind_ip: Ipv4Addr,
    /// Offered rates (messages per second); in closed loop only the count of rows matters.
    pub rates: Vec<f64>,
    pub closed_loop: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub seed: u64,
    /// Shadow set-up, symbols, resting target, first UserRefNum, invalid-order cadence.
    pub mix: MixSetup,
    pub failover: Duration,
    pub login_timeout: Duration,
    /// How long to wait for outstanding replies after the last row before counting them lost.
    pub drain: Duration,
    pub hlog: Option<PathBuf>,
    pub md: Option<SocketAddrV4>,
    pub progress: bool,
    pub core: Option<usize>,
    /// Set (by SIGINT or SIGTERM, say) to end the run early; what was measured is still reported.
    pub stop: Option<Arc<AtomicBool>>,
}

/// One row of the rate table.
#[derive(Clone, Debug, Serialize)]
pub struct RateRow {
    /// Offered rate, messages per second (in closed loop: the achieved rate).
    pub rate: f64,
    /// Messages sent per second of the row's wall time.
    pub achieved_per_s: f64,
    pub sent: u64,
    /// Requests answered (accepted, rejected, canceled…); the percentiles are over these.
    pub replied: u64,
    /// Of those, refused (Order Rejected, Cancel Reject).
    pub rejected: u64,
    /// Sent but never answered (within the drain time after the last row).
    pub lost: u64,
    /// Achieved below [`table::SATURATED_BELOW`] of offered, or anything lost.
    pub saturated: bool,
    /// The row was cut short by a stop (SIGINT/SIGTERM).
    pub interrupted: bool,
    /// The row's wall time, seconds.
    pub duration_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    pub msgs_per_s: f64,
}

/// Market-data counts (`--md`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MdCounts {
    pub datagrams: u64,
    pub messages: u64,
    pub gaps: u64,
    pub malformed: u64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub rates: Vec<RateRow>,
    /// `(offered rate, latency histogram in ns)` per row, for the table and the .hlog.
    pub histograms: Vec<(f64, Histogram<u64>)>,
    /// The run was stopped early (SIGINT/SIGTERM): the last row is partial, later rows were not run.
    pub interrupted: bool,
    pub logins: usize,
    pub sent: u64,
    pub replied: u64,
    /// Requests with no reply within the drain time after the last row.
    pub lost: u64,
    pub rejects: u64,
    /// OUCH Order Executed messages received (both sides of a trade between two of our firms count).
    pub executions: u64,
    /// Sequence numbers missing from the firms' reply streams.
    pub gaps: u64,
    pub stale: u64,
    pub unmatched: u64,
    pub send_errors: u64,
    pub failovers: u64,
    /// Replies received after the last failover: answers from the node failed over to.
    pub replied_after_failover: u64,
    pub seed: u64,
    pub mix: MixCounts,
    pub md: Option<MdCounts>,
    /// Next UserRefNum per firm: pass the largest as `first_user_ref` to run again against the same appliance.
    pub next_user_ref: u32,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    rates: &'a [RateRow],
    interrupted: bool,
    lost: u64,
    rejects: u64,
    executions: u64,
    seed: u64,
    gaps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    md: Option<MdCounts>,
}

impl LoadReport {
    /// Exactly one JSON object.
    pub fn to_json(&self) -> String {
        let j = JsonReport {
            rates: &self.rates,
            interrupted: self.interrupted,
            lost: self.lost,
            rejects: self.rejects,
            executions: self.executions,
            seed: self.seed,
            gaps: self.gaps,
            md: self.md,
        };
        serde_json::to_string(&j).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The rate table and the counts, as `bourse load` and `bourse demo` print them.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        table::write_rate_table(out, &self.rates)?;
        if self.interrupted {
            writeln!(out, "interrupted: the last row is partial; rows after it were not run")?;
        }
        writeln!(
            out,
            "sent {}, replied {}, rejected {}, executions {}, lost {}, gaps {} (seed {}; mix: {} GTC, {} IOC, {} cancel, {} move, {} invalid)",
            self.sent,
            self.replied,
            self.rejects,
            self.executions,
            self.lost,
            self.gaps,
            self.seed,
            self.mix.gtc,
            self.mix.ioc,
            self.mix.cancel,
            self.mix.moves,
            self.mix.invalid
        )?;
        if self.failovers > 0 || self.stale > 0 || self.send_errors > 0 {
            writeln!(out, "failovers {}, stale replies {}, send errors {}", self.failovers, self.stale, self.send_errors)?;
        }
        if let Some(md) = self.md {
            writeln!(
                out,
                "market data: {} datagrams, {} messages, {} gaps, {} malformed",
                md.datagrams, md.messages, md.gaps, md.malformed
            )?;
        }
        Ok(())
    }
}

/// Shadow capacity cap: the shadow only holds the generator's own resting orders.
const SHADOW_ORDERS_MAX: u32 = 1 << 18;
/// Ladder of the shadow book when no configuration is given, in ticks.
const DEFAULT_LEVELS: u32 = 4_096;
/// Datagrams read per socket per loop turn.
const RX_BURST: usize = 64;
/// Messages sent per loop turn at most when catching up, so replies are read in between.
const TX_BURST: usize = 64;
/// A firm that sent nothing for this long sends a Client Heartbeat (the appliance logs out idle sessions).
const HEARTBEAT_NS: u64 = 1_000_000_000;
/// In closed loop, a request unanswered for this long is left pending (and later counted lost) and the next
/// one is sent.
const CLOSED_LOOP_GIVE_UP_NS: u64 = 100_000_000;
/// The table row index given to the warm-up phase (its latencies are not reported).
const WARMUP_ROW: u16 = u16::MAX;

/// Builds the mix set-up from an appliance configuration: the shadow engine gets the appliance's own genesis,
/// so it holds exactly the book the appliance holds (against a fresh appliance).
pub fn mix_from_config(
    config: &Config,
    usernames: &[String],
    symbols: &[String],
    mid: Option<Price>,
) -> anyhow::Result<MixSetup> {
    let mut firms = Vec::new();
    for u in usernames {
        let i = config
            .firms
            .iter()
            .position(|f| &f.username == u)
            .with_context(|| format!("firm {u:?} is not in the configuration"))?;
        firms.push(MixFirm { session: i as u16, account: i as u32 });
    }
    let mut mix_symbols = Vec::new();
    for (i, s) in config.symbols.iter().enumerate() {
        if !symbols.is_empty() && !symbols.iter().any(|n| n == &s.name) {
            continue;
        }
        let tick = parse_price(&s.tick)?;
        let reference = parse_price(&s.reference_price)?;
        let centre = mid.unwrap_or(reference);
        mix_symbols.push(MixSymbol {
            name: s.name.clone(),
            id: i as u16,
            mid: centre - centre % tick,
            tick,
            ladder_min: config.ladder_min(s)?,
            reference,
            bands: config.bands(s)?,
            market_collar_bps: s.market_collar_bps,
        });
    }
    for n in symbols {
        if !config.symbols.iter().any(|s| &s.name == n) {
            bail!("symbol {n:?} is not in the configuration");
        }
    }
    let mut capacity = config.engine_capacity();
    capacity.orders_max = capacity.orders_max.min(SHADOW_ORDERS_MAX);
    Ok(MixSetup {
        symbols: mix_symbols,
        firms,
        capacity,
        // The shadow book prices and fills; the day's UTC offset is no concern of it.
        genesis: bourse_appliance::appliance::setup::genesis(config, 0)?,
        resting: 1_000,
        first_user_ref: 1,
        invalid_every: 0,
    })
}

/// Builds the mix set-up from names only: tick 0.01, a ladder of 4,096 ticks centred on `mid`, and a shadow
/// engine with one generously funded account per firm.
pub fn mix_default(firms: usize, symbols: &[String], mid: Price) -> anyhow::Result<MixSetup> {
    let tick: Price = 100;
    let mid = mid - mid % tick;
    let half = tick * DEFAULT_LEVELS / 2;
    anyhow::ensure!(mid > half, "--mid {} is too low for a {}-tick ladder", bourse_appliance::config::fmt_price(mid), DEFAULT_LEVELS);
    let mix_symbols: Vec<MixSymbol> = symbols
        .iter()
        .enumerate()
        .map(|(i, n)| MixSymbol {
            name: n.clone(),
            id: i as u16,
            mid,
            tick,
            ladder_min: mid - half,
            reference: mid,
            bands: Bands::DEFAULT,
            market_collar_bps: 500,
        })
        .collect();
    let mix_firms: Vec<MixFirm> = (0..firms).map(|i| MixFirm { session: i as u16, account: i as u32 }).collect();
    let capacity = Capacity {
        orders_max: SHADOW_ORDERS_MAX,
        symbols_max: symbols.len().max(1) as u16,
        accounts_max: firms.max(1) as u32,
        sessions_max: firms.max(1) as u16,
        levels_per_symbol: DEFAULT_LEVELS,
        halt_queue_max: 1_024,
        matches_per_order_max: 4_096,
    };
    let genesis = MixSetup::default_genesis(&mix_symbols, &mix_firms);
    Ok(MixSetup { symbols: mix_symbols, firms: mix_firms, capacity, genesis, resting: 1_000, first_user_ref: 1, invalid_every: 0 })
}

fn parse_firm(text: &str) -> anyhow::Result<FirmLogin> {
    let (u, p) = text.split_once(':').with_context(|| format!("--firm {text:?}: expected USER:PASSWORD"))?;
    Ok(FirmLogin { username: u.to_string(), password: p.to_string() })
}

impl LoadOptions {
    /// Options from the command line (and the configuration it names).
    pub fn from_args(args: &LoadArgs) -> anyhow::Result<LoadOptions> {
        let config = match &args.config {
            Some(p) => Some(Config::load(p)?),
            None => None,
        };
        let mid = args.mid.as_deref().map(parse_price).transpose().context("--mid")?;
        let firms: Vec<FirmLogin> = if !args.firms.is_empty() {
            args.firms.iter().map(|f| parse_firm(f)).collect::<anyhow::Result<_>>()?
        } else if let Some(c) = &config {
            c.firms.iter().map(|f| FirmLogin { username: f.username.clone(), password: f.password.clone() }).collect()
        } else {
            bail!("no firms: give --firm USER:PASSWORD or --config FILE");
        };
        let targets = if !args.targets.is_empty() {
            args.targets.clone()
        } else if let Some(c) = &config {
            vec![c.backend.bind]
        } else {
            bail!("no target: give --target ADDR or --config FILE");
        };
        let usernames: Vec<String> = firms.iter().map(|f| f.username.clone()).collect();
        let mut mix = match &config {
            Some(c) => mix_from_config(c, &usernames, &args.symbols, mid)?,
            None => {
                let symbols = if args.symbols.is_empty() { vec!["AAPL".to_string()] } else { args.symbols.clone() };
                mix_default(firms.len(), &symbols, mid.unwrap_or(1_500_000))?
            }
        };
        mix.resting = args.resting;
        mix.first_user_ref = args.first_user_ref.max(1);
        mix.invalid_every = args.invalid_every;
        let mut rates = args.rates.clone();
        if let Some(r) = args.rate {
            rates.insert(0, r);
        }
        if rates.is_empty() {
            if !args.closed_loop {
                bail!("give --rate N, --rates A,B,… or --closed-loop");
            }
            rates.push(0.0);
        }
        let bind_ip = args.bind.unwrap_or(if targets[0].ip().is_loopback() { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED });
        Ok(LoadOptions {
            targets,
            firms,
            bind_ip,
            rates,
            closed_loop: args.closed_loop,
            duration: secs(args.duration_s, "--duration-s")?,
            warmup: secs(args.warmup_s, "--warmup-s")?,
            seed: args.seed,
            mix,
            failover: Duration::from_millis(args.failover_ms.max(1)),
            login_timeout: Duration::from_millis(args.login_timeout_ms.max(1)),
            drain: Duration::from_secs(1),
            hlog: args.hlog.clone(),
            md: args.md,
            progress: args.progress,
            core: args.core,
            stop: None,
        })
    }
}

fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    if !(0.0..=86_400.0).contains(&v) {
        bail!("{what} = {v}: must be between 0 and 86400 seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let mut opts = LoadOptions::from_args(&args)?;
    opts.stop = Some(bourse_appliance::appliance::stop_flag(None)?);
    if !args.json {
        eprintln!(
            "bourse load: {} firm(s) → {}, {} symbol(s), seed {}, {}",
            opts.firms.len(),
            opts.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            opts.mix.symbols.len(),
            opts.seed,
            if opts.closed_loop { "closed loop".to_string() } else { format!("open loop, {:?} s per rate", opts.duration.as_secs_f64()) }
        );
    }
    let report = run_load(&opts)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        report.write_text(&mut out)?;
    }
    if report.interrupted {
        out.flush()?;
        // The shell's convention for a run ended by a signal, after everything measured was reported.
        std::process::exit(130);
    }
    Ok(())
}

/// The header comment of the load generator's .hlog.
const HLOG_COMMENT: &str = "bourse load: round-trip latency per offered rate (one tag per rate), values in \
                            nanoseconds, coordinated-omission corrected (from each message's intended send time)";

/// Length of the load .hlog's intervals.
const HLOG_INTERVAL_NS: u64 = 1_000_000_000;

/// The .hlog tags of the rate rows: `rate_<messages per second>` (`closed_loop` in closed loop), with `_<row>`
/// appended when an earlier row has the same one, so no two rows share a tag.
pub fn row_tags(rates: &[f64], closed_loop: bool) -> Vec<String> {
    let mut tags: Vec<String> = Vec::with_capacity(rates.len());
    for (i, r) in rates.iter().enumerate() {
        let base = if closed_loop { "closed_loop".to_string() } else { format!("rate_{}", r.round() as u64) };
        let tag = if tags.contains(&base) { format!("{base}_{}", i + 1) } else { base };
        tags.push(tag);
    }
    tags
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 ns to 1 hour at 3 significant digits: every latency a run can see.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).context("allocating a latency histogram")
}

/// The load .hlog being written: per row, the replies since its last interval line.
struct HlogIntervals {
    log: LatencyLog,
    /// When the log's BaseTime was taken (interval starts are offsets from it).
    created: Instant,
    tags: Vec<String>,
    hists: Vec<Histogram<u64>>,
    /// Start of the current interval, on the run's clock.
    interval_start_ns: u64,
}

impl HlogIntervals {
    /// One line per row that received replies since the last flush, all for the interval ending at `now_ns`.
    fn flush(&mut self, now_ns: u64, clock: Instant) -> anyhow::Result<()> {
        let start = (clock + Duration::from_nanos(self.interval_start_ns)).saturating_duration_since(self.created);
        let length = Duration::from_nanos(now_ns.saturating_sub(self.interval_start_ns));
        for (tag, h) in self.tags.iter().zip(self.hists.iter_mut()) {
            if !h.is_empty() {
                self.log.write_interval(tag, start, length, h).context("writing the .hlog")?;
                h.reset();
            }
        }
        self.interval_start_ns = now_ns;
        Ok(())
    }
}

/// The generator's state during a run.
struct Run<'a> {
    opts: &'a LoadOptions,
    mix: Mix,
    names: Vec<Alpha<8>>,
    conns: Vec<FirmConn>,
    md: Option<MdListener>,
    clock: Instant,
    hists: Vec<Histogram<u64>>,
    warmup_hist: Histogram<u64>,
    replied: Vec<u64>,
    rejected: Vec<u64>,
    /// Messages sent of the whole run (drawn only on a terminal).
    progress: bourse_appliance::progress::ProgressBar,
    /// The .hlog and, per row, what arrived since its last interval line.
    hlog: Option<HlogIntervals>,
    buf: Vec<u8>,
    target: usize,
    failovers: u64,
    /// Replies counted by all firms when the last failover happened.
    replied_at_failover: u64,
    last_rx_any: u64,
    last_failover: u64,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn stopped(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Sent by all firms so far.
    fn sent_total(&self) -> u64 {
        self.conns.iter().map(|c| c.counts.sent).sum()
    }

    /// Writes an interval line per row that received replies, once per [`HLOG_INTERVAL_NS`] (or now, `force`),
    /// and moves the progress bar.
    fn flush_hlog(&mut self, force: bool) -> anyhow::Result<()> {
        self.progress.set_position(self.sent_total());
        let now = self.now();
        if let Some(h) = self.hlog.as_mut() {
            if force || now >= h.interval_start_ns + HLOG_INTERVAL_NS {
                h.flush(now, self.clock)?;
            }
        }
        Ok(())
    }

    fn send_next(&mut self, row: u16, intended: u64) {
        let msg = self.mix.next_message();
        let name = match msg.op {
            Op::Enter { symbol, .. } => self.names[usize::from(symbol)],
            _ => Alpha::BLANK,
        };
        self.conns[msg.firm].send(&msg.op, &name, row, intended, self.clock);
    }

    /// Reads what arrived on every socket; returns datagrams read.
    fn receive(&mut self) -> usize {
        let mut n = 0;
        let (hists, warm, replied) = (&mut self.hists, &mut self.warmup_hist, &mut self.replied);
        let (rejected, mut hlog) = (&mut self.rejected, self.hlog.as_mut());
        for c in self.conns.iter_mut() {
            n += c.poll(&mut self.buf, RX_BURST, self.clock, &mut |a| {
                let row = usize::from(a.row);
                if a.row == WARMUP_ROW {
                    warm.saturating_record(a.latency_ns);
                } else if let Some(h) = hists.get_mut(row) {
                    h.saturating_record(a.latency_ns);
                    replied[row] += 1;
                    rejected[row] += u64::from(a.rejected);
                    if let Some(log) = hlog.as_mut() {
                        log.hists[row].saturating_record(a.latency_ns);
                    }
                }
            });
        }
        if let Some(md) = self.md.as_mut() {
            n += md.poll(&mut self.buf, RX_BURST);
        }
        if n > 0 {
            self.last_rx_any = self.now();
        }
        n
    }

    fn pending(&self) -> usize {
        self.conns.iter().map(|c| c.inflight.pending()).sum()
    }

    /// Heartbeats for quiet firms, and failover when the appliance went silent with requests outstanding.
    fn housekeeping(&mut self, now: u64) -> anyhow::Result<()> {
        for c in self.conns.iter_mut() {
            if now.saturating_sub(c.last_tx_ns) > HEARTBEAT_NS {
                c.heartbeat(self.clock);
            }
        }
        let silence = self.opts.failover.as_nanos() as u64;
        if self.opts.targets.len() > 1
            && self.pending() > 0
            && now.saturating_sub(self.last_rx_any) > silence
            && now.saturating_sub(self.last_failover) > silence
        {
            self.target = (self.target + 1) % self.opts.targets.len();
            let to = self.opts.targets[self.target];
            eprintln!("bourse load: no reply for {} ms; failing over to {to}", silence / 1_000_000);
            for c in self.conns.iter_mut() {
                c.retarget(to)?;
                c.login(self.opts.login_timeout).with_context(|| format!("failover login to {to}"))?;
            }
            self.failovers += 1;
            self.replied_at_failover = self.conns.iter().map(|c| c.counts.replied).sum();
            self.last_failover = self.now();
            self.last_rx_any = self.last_failover;
        }
        Ok(())
    }

    /// Open loop: `count` messages at `rate`, each with intended time `start + i × period`. Returns (sent,
    /// seconds from the phase start to the last send).
    fn open_phase(&mut self, row: u16, rate: f64, duration: Duration) -> anyhow::Result<(u64, f64)> {
        let period_ns = 1e9 / rate;
        let count = (rate * duration.as_secs_f64()).round() as u64;
        let start = self.now();
        let mut i: u64 = 0;
        let mut last_send = start;
        let mut turns: u64 = 0;
        while i < count {
            let now = self.now();
            if self.stopped() {
                break;
            }
            let mut burst = 0;
            while i < count && burst < TX_BURST {
                let intended = start + (i as f64 * period_ns) as u64;
                if intended > now {
                    break;
                }
                self.send_next(row, intended);
                i += 1;
                burst += 1;
            }
            if burst > 0 {
                last_send = self.now();
            }
            let got = self.receive();
            turns += 1;
            if turns.is_multiple_of(1024) {
                self.housekeeping(now)?;
                self.flush_hlog(false)?;
            }
            if burst == 0 && got == 0 {
                let next = start + (i as f64 * period_ns) as u64;
                // Far from the next send and nothing to read: let the other threads of this core run (the WAL's
                // group commit may share it), instead of spinning through their time slice.
                if next > now + 50_000 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        Ok((i, (last_send - start) as f64 / 1e9))
    }

    /// Closed loop: one request outstanding at a time, for `duration`.
    fn closed_phase(&mut self, row: u16, duration: Duration) -> anyhow::Result<(u64, f64)> {
        let start = self.now();
        let end = start + duration.as_nanos() as u64;
        let mut sent = 0;
        let mut last_send = 0;
        let mut turns: u64 = 0;
        loop {
            let now = self.now();
            if now >= end || self.stopped() {
                break;
            }
            if self.pending() == 0 || now.saturating_sub(last_send) > CLOSED_LOOP_GIVE_UP_NS {
                self.send_next(row, now);
                sent += 1;
                last_send = now;
            }
            self.receive();
            turns += 1;
            if turns.is_multiple_of(1024) {
                self.housekeeping(now)?;
                self.flush_hlog(false)?;
            }
        }
        Ok((sent, (self.now() - start) as f64 / 1e9))
    }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    (h.value_at_quantile(q) as f64 / 1_000.0 * 100.0).round() / 100.0
}

/// Logs every firm in on the first target that accepts them all. With more than one target, a node that stays
/// silent for the failover interval (killed while the firms were logging in, or still promoting) is passed over for
/// the next, round and round until `login_timeout`; a Login Rejected is final. Returns the target's index and how
/// many times the firms moved.
fn login_all(conns: &mut [FirmConn], opts: &LoadOptions) -> anyhow::Result<(usize, u64)> {
    if opts.targets.len() < 2 {
        for c in conns.iter_mut() {
            c.login(opts.login_timeout)?;
        }
        return Ok((0, 0));
    }
    let started = Instant::now();
    let (mut target, mut moves) = (0, 0u64);
    'targets: loop {
        for i in 0..conns.len() {
            let left = opts.login_timeout.saturating_sub(started.elapsed());
            match conns[i].login(opts.failover.min(left).max(Duration::from_millis(1))) {
                Ok(_) => {}
                Err(e) if e.is::<client::LoginTimeout>() && started.elapsed() < opts.login_timeout => {
                    let from = opts.targets[target];
                    target = (target + 1) % opts.targets.len();
                    let to = opts.targets[target];
                    eprintln!("bourse load: no Login Accepted from {from}; trying {to}");
                    for c in conns.iter_mut() {
                        c.retarget(to)?;
                    }
                    moves += 1;
                    continue 'targets;
                }
                Err(e) => return Err(e),
            }
        }
        return Ok((target, moves));
    }
}

/// Runs the generator: logs every firm in, then runs each rate row (after the warm-up), waits up to
/// `opts.drain` for outstanding replies, and reports.
pub fn run_load(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    if opts.targets.is_empty() {
        bail!("no target address");
    }
    if opts.firms.is_empty() {
        bail!("no firms");
    }
    if opts.rates.is_empty() {
        bail!("no rates");
    }
    if opts.rates.len() >= usize::from(WARMUP_ROW) {
        bail!("{} rates: at most {}", opts.rates.len(), WARMUP_ROW - 1);
    }
    if !opts.closed_loop {
        for r in &opts.rates {
            if !(r.is_finite() && *r >= 1.0 && *r <= 1e8) {
                bail!("rate {r}: must be between 1 and 100,000,000 messages per second");
            }
        }
    }
    if opts.mix.firms.len() != opts.firms.len() {
        bail!("{} firms but {} firms in the mix set-up", opts.firms.len(), opts.mix.firms.len());
    }
    if let Some(core) = opts.core {
        bourse_nic::backend::pin::pin_current_thread(core).with_context(|| format!("pinning the load generator to core {core}"))?;
    }
    let hlog = match &opts.hlog {
        Some(p) => {
            let log = LatencyLog::create(p, HLOG_COMMENT).with_context(|| format!("creating {}", p.display()))?;
            if let Some(old) = &log.rotated {
                eprintln!("bourse load: the previous {} is kept as {}", p.display(), old.display());
            }
            let mut hists = Vec::with_capacity(opts.rates.len());
            for _ in &opts.rates {
                hists.push(new_histogram()?);
            }
            let tags = row_tags(&opts.rates, opts.closed_loop);
            Some(HlogIntervals { log, created: Instant::now(), tags, hists, interval_start_ns: 0 })
        }
        None => None,
    };
    let mix = Mix::new(&opts.mix, opts.seed)?;
    let names = opts
        .mix
        .symbols
        .iter()
        .map(|s| Alpha::new(&s.name).with_context(|| format!("symbol {:?}: at most 8 ASCII characters", s.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut conns = Vec::with_capacity(opts.firms.len());
    for f in &opts.firms {
        conns.push(FirmConn::open(&f.username, &f.password, opts.bind_ip, opts.targets[0])?);
    }
    let (target, login_failovers) = login_all(&mut conns, opts)?;
    let md = opts.md.map(MdListener::bind).transpose()?;
    let mut hists = Vec::with_capacity(opts.rates.len());
    for _ in &opts.rates {
        hists.push(new_histogram()?);
    }
    let clock = Instant::now();
    let mut run = Run {
        opts,
        mix,
        names,
        conns,
        md,
        clock,
        hists,
        warmup_hist: new_histogram()?,
        replied: vec![0; opts.rates.len()],
        rejected: vec![0; opts.rates.len()],
        progress: if opts.closed_loop {
            bourse_appliance::progress::spinner("bourse load: closed loop")
        } else {
            let warmup = (opts.rates[0] * opts.warmup.as_secs_f64()).round() as u64;
            let rows: u64 = opts.rates.iter().map(|r| (r * opts.duration.as_secs_f64()).round() as u64).sum();
            bourse_appliance::progress::bar(warmup + rows, "bourse load", "msgs")
        },
        hlog,
        buf: vec![0; DATAGRAM_MAX_BYTES],
        target,
        failovers: login_failovers,
        replied_at_failover: 0,
        last_rx_any: 0,
        last_failover: 0,
    };
    let logins = run.conns.len();

    if !opts.warmup.is_zero() {
        if opts.closed_loop {
            run.closed_phase(WARMUP_ROW, opts.warmup)?;
        } else {
            run.open_phase(WARMUP_ROW, opts.rates[0], opts.warmup)?;
        }
    }
    // Warm-up replies are not in the .hlog: its first interval starts with the first row.
    run.flush_hlog(true)?;
    if let Some(h) = run.hlog.as_mut() {
        h.hists.iter_mut().for_each(|h| h.reset());
    }
    struct Done {
        offered: f64,
        sent: u64,
        secs: f64,
        interrupted: bool,
    }
    let mut rows: Vec<Done> = Vec::with_capacity(opts.rates.len());
    for (i, &rate) in opts.rates.iter().enumerate() {
        if run.stopped() {
            break;
        }
        let sent_before = run.sent_total();
        let row_start = run.now();
        run.progress.set_message(format!("bourse load: row {}/{}, {rate:.0}/s", i + 1, opts.rates.len()));
        let (_, send_secs) =
            if opts.closed_loop { run.closed_phase(i as u16, opts.duration)? } else { run.open_phase(i as u16, rate, opts.duration)? };
        let sent = run.sent_total() - sent_before;
        // The row's wall time: its planned duration, or longer when sending fell behind (then achieved < offered).
        let secs = ((run.now() - row_start) as f64 / 1e9).max(send_secs);
        let interrupted = run.stopped();
        let achieved = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
        rows.push(Done { offered: if opts.closed_loop { achieved } else { rate }, sent, secs, interrupted });
        if opts.progress {
            eprintln!(
                "bourse load: row {}/{}: offered {:.0}/s, sent {sent} in {secs:.2} s ({achieved:.0}/s), {} pending{}",
                i + 1,
                opts.rates.len(),
                rate,
                run.pending(),
                if interrupted { ", interrupted" } else { "" }
            );
        }
    }
    // Drain: wait for the replies still in flight, at most `drain`.
    let drain_end = run.now() + opts.drain.as_nanos() as u64;
    while run.pending() > 0 && run.now() < drain_end {
        if run.receive() == 0 {
            std::hint::spin_loop();
        }
        run.flush_hlog(false)?;
    }
    // Late market data still counts; give it a moment only when listening.
    if run.md.is_some() {
        let end = run.now() + 50_000_000;
        while run.now() < end {
            run.receive();
        }
    }
    // The last interval, however short: nothing measured stays out of the .hlog.
    run.flush_hlog(true)?;
    run.progress.finish_and_clear();

    let mut report = LoadReport {
        rates: Vec::with_capacity(rows.len()),
        histograms: Vec::with_capacity(rows.len()),
        logins,
        sent: 0,
        replied: 0,
        lost: 0,
        rejects: 0,
        executions: 0,
        gaps: 0,
        stale: 0,
        unmatched: 0,
        send_errors: 0,
        failovers: run.failovers,
        replied_after_failover: 0,
        seed: opts.seed,
        interrupted: rows.iter().any(|r| r.interrupted),
        mix: run.mix.counts,
        md: run.md.as_ref().map(|m| MdCounts { datagrams: m.datagrams, messages: m.messages, gaps: m.gaps, malformed: m.malformed }),
        next_user_ref: (0..opts.firms.len()).map(|f| run.mix.next_user_ref(f)).max().unwrap_or(1),
    };
    for c in &run.conns {
        report.sent += c.counts.sent;
        report.replied += c.counts.replied;
        report.lost += c.inflight.pending() as u64 + c.inflight.overwritten + c.inflight.abandoned;
        report.rejects += c.counts.rejects;
        report.executions += c.counts.executions;
        report.gaps += c.counts.gaps;
        report.stale += c.counts.stale;
        report.unmatched += c.counts.unmatched;
        report.send_errors += c.counts.send_errors;
    }
    if run.failovers > 0 {
        report.replied_after_failover = report.replied - run.replied_at_failover;
    }
    let hists = std::mem::take(&mut run.hists);
    for (i, (row, h)) in rows.into_iter().zip(hists).enumerate() {
        let replied = run.replied[i];
        let lost = row.sent.saturating_sub(replied);
        let achieved = if row.secs > 0.0 { row.sent as f64 / row.secs } else { 0.0 };
        report.rates.push(RateRow {
            rate: row.offered,
            achieved_per_s: achieved.round(),
            sent: row.sent,
            replied,
            rejected: run.rejected[i],
            lost,
            saturated: table::is_saturated(row.offered, achieved, lost, row.interrupted),
            interrupted: row.interrupted,
            duration_s: (row.secs * 1e3).round() / 1e3,
            p50_us: us(&h, 0.50),
            p90_us: us(&h, 0.90),
            p99_us: us(&h, 0.99),
            p999_us: us(&h, 0.999),
            p9999_us: us(&h, 0.9999),
            max_us: if h.is_empty() { 0.0 } else { (h.max() as f64 / 10.0).round() / 100.0 },
            msgs_per_s: achieved.round(),
        });
        report.histograms.push((row.offered, h));
    }
    Ok(report)
}
