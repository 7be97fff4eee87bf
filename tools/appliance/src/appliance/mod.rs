//! The appliance: `bourse run --config bourse.toml`.
//!
//! Two threads. The pipeline thread (pinned, busy-polling, never blocking) owns the backend, the sessions, the
//! engine, the journal writer and the output queues (`pipeline`). The aux thread exports what the pipeline
//! measured: interval histograms to the `.hlog`, counters and stage quantiles to the shared-memory stats block,
//! and the Prometheus endpoint; the WAL's group-commit thread (msync mode) is started by the journal itself.
//!
//! Housekeeping (the idle tick, the market-data heartbeat, session expiry and the MoldUDP64 retransmission server,
//! [`retransmit`]) also runs on the pipeline thread, because the state it reads lives there. It runs every
//! [`HOUSEKEEPING_EVERY_POLLS`] polls whether or not traffic flows, with bounded work per call: receivers lose
//! market data under load, so that is exactly when their retransmission requests must be answered.

use bourse_persist::mirror::Position;

/// A quiet market-data feed sends a MoldUDP64 heartbeat this often (the first one soon after start, so receivers
/// of a promoted node learn where its sequence stands).
const MD_HEARTBEAT_NS: u64 = 1_000_000_000;

/// Housekeeping runs once every this many pipeline polls, busy or not. A busy poll takes a few microseconds, so
/// this is every few hundred microseconds under load and far more often when idle; one call costs a clock read,
/// a pass over the sessions and one non-blocking `recvfrom` when no request waits.
pub const HOUSEKEEPING_EVERY_POLLS: u64 = 64;
const _: () = assert!(HOUSEKEEPING_EVERY_POLLS.is_power_of_two());

/// Retransmission requests one housekeeping call takes at most: the bound on the time it steals from matching.
/// At one call per ~100 µs of busy polling that is still tens of thousands of requests per second.
pub const RETRANSMIT_REQUESTS_PER_HOUSEKEEPING_MAX: usize = 4;

/// The sequencer gets a Tick input after this long without input (timers, halts' ends).
const IDLE_TICK_NS: u64 = 100_000_000;

pub mod exchange;
pub(crate) mod mdfeed;
pub mod mirror;
pub(crate) mod outq;
pub(crate) mod pipeline;
pub mod preflight;
pub mod retransmit;
pub mod setup;
pub mod snapshots;
pub mod soup_tcp;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_engine::RejectReason;
use bourse_nic::backend::Backend;
use crate::session::{AllowedSource, DropReason};

use crate::config::Config;
use crate::obs::hlog::{rotate_existing, HlogWriter};
use crate::obs::metrics::MetricsServer;
use crate::obs::stages::StageExporter;
use crate::obs::statsblock::{Counter, StatsWriter, COUNTERS, REJECT_REASONS_MAX, WITNESS_COUNTERS};
use crate::translate::{CANCEL_REJECT_ROW, REJECT_CODES, REJECT_ROWS};
use crate::obs::tsc::Clock;
use pipeline::Pipeline;
use mdfeed::HeartbeatCadence;
use retransmit::{RetransmitCounters, RetransmitLimits, RetransmitServer};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The configuration file (see bourse.example.toml).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long)]
    pub duration_s: Option<f64>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let stop = stop_flag(args.duration_s)?;
    let summary = serve(&config, stop, None)?;
    eprintln!("bourse: stopped: {summary}");
    Ok(())
}

/// A flag set by SIGINT or SIGTERM, or after `duration_s` seconds when given: how the programs know to stop.
pub fn stop_flag(duration_s: Option<f64>) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop)).context("installing SIGINT")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)).context("installing SIGTERM")?;
    if let Some(s) = duration_s {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(s));
            stop.store(true, Ordering::Relaxed);
        });
    }
    Ok(stop)
}

/// What the appliance did, printed when it stops.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub inputs: u64,
    pub last_seq: u64,
    pub committed: u64,
    pub rx: u64,
    pub tx: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub session_drops: u64,
    pub ouch_rejects: u64,
    pub kernel_drops: u64,
    pub oversized: u64,
    pub duplicates: u64,
    pub orders_open: u32,
    pub outputs_unsent: usize,
    /// The retransmission server's counters (all zero without `retransmit_bind`).
    pub retransmit: RetransmitCounters,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inputs (last seq {}, committed {}), rx {} tx {}, dropped {} malformed {} oversized {} \
             kernel-drops {} session-drops {}, OUCH rejects {}, duplicates {}, {} orders open, {} outputs unsent; \
             retransmission: {}",
            self.inputs,
            self.last_seq,
            self.committed,
            self.rx,
            self.tx,
            self.dropped,
            self.malformed,
            self.oversized,
            self.kernel_drops,
            self.session_drops,
            self.ouch_rejects,
            self.duplicates,
            self.orders_open,
            self.outputs_unsent,
            self.retransmit
        )
    }
}

/// Runs the appliance until `stop` is set. `ready` is set once the backend is open and input is being taken.
pub fn serve(config: &Config, stop: Arc<AtomicBool>, ready: Option<Arc<AtomicBool>>) -> anyhow::Result<Summary> {
    serve_with_clock(config, Clock::calibrate(Duration::from_millis(50)), stop, ready, None)
}

/// [`serve`] with a clock calibrated beforehand and, optionally, the journal at hand: a promoting standby
/// calibrates while it follows and hands over the engine, WAL and market-data state it kept current, so neither
/// the 50 ms calibration window nor a second recovery is part of its failover time.
pub fn serve_with_clock(
    config: &Config,
    clock: Clock,
    stop: Arc<AtomicBool>,
    ready: Option<Arc<AtomicBool>>,
    journal: Option<setup::Journal>,
) -> anyhow::Result<Summary> {
    // With a witness the epoch is the record's, whatever the configuration says: fencing survives any restart.
    let claimed = crate::witness::claim(config)?;
    let config = &claimed.config;
    let journal = match journal {
        Some(j) => j,
        None => {
            // Everything that could fail after recovery is checked before the journal is touched.
            preflight::check(config)?;
            let spinner = crate::progress::spinner("bourse: recovering the journal");
            let j = setup::recover_journal(config);
            spinner.finish_and_clear();
            let j = j?;
            // A journal that followed a newer primary must not be served in an older epoch: that is a second
            // primary beside the one it followed (and its records would go back in epoch).
            let newest = setup::last_record_epoch(&j.started.wal_dir, j.started.recovered_seq);
            let mine = u64::from(crate::config::MirrorSection::wal_epoch(config));
            if newest > mine {
                anyhow::bail!(
                    "{}: the journal holds records of epoch {newest} but this node is configured for epoch {mine}: \
                     it followed a newer primary; run it as that primary's standby (`bourse standby`), or set \
                     mirror.epoch = {newest} or higher if no other node serves",
                    j.started.wal_dir.display()
                );
            }
            j
        }
    };
    let (mut pipeline, exporter, started) = setup::build_pipeline_from(config, clock, journal)?;
    eprintln!(
        "bourse: {}; WAL {} in {} ({}, {}{}), recovered through seq {}{}, {} genesis inputs; start-up: recovery \
         {:.1} ms, pipeline {:.1} ms",
        setup::describe(config),
        started.wal_mode,
        started.wal_dir.display(),
        started.wal_map,
        if started.durable_on_this_host { "durable" } else { "NOT durable on this host" },
        if started.wal_mode == "dax" && !started.durable_on_this_host {
            ": MAP_SYNC refused, use mode = \"msync\" for durability"
        } else {
            ""
        },
        started.recovered_seq,
        started.torn_tail.as_deref().map(|t| format!(", torn tail truncated: {t}")).unwrap_or_default(),
        started.genesis_inputs,
        started.startup_ms[0],
        started.startup_ms[1],
    );
    let policy = setup::ack_policy(config);
    eprintln!("bourse: acknowledgement: ack = \"{}\" ({})", policy.name(), policy.failure_model());
    eprintln!(
        "bourse: market data: MoldUDP64 session {} continues at seq {}; {} firm sessions resume their reply streams \
         (recovered {})",
        pipeline.md.session().as_str(),
        pipeline.md.next_sequence(),
        config.firms.len(),
        match started.snapshot_seq {
            Some(seq) => format!("from the snapshot at seq {seq} and the log after it"),
            None => "from the log".to_string(),
        }
    );
    let stats = Arc::new(match StatsWriter::create(&config.appliance.name) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("bourse: warning: no shared stats block ({e}); `bourse stats` will not see this appliance");
            StatsWriter::in_memory()
        }
    });
    set_stats_names(&stats, config.backend.kind.as_str());
    stats.set_wal_mode(started.wal_mode);

    let sender = match &config.mirror {
        Some(m) if m.role == crate::config::MirrorRole::Primary && m.standby_addr.is_some() => {
            // This epoch's records start where recovery (or the promotion) left the log.
            let start = Position { seq: started.recovered_seq, offset: started.recovered_offset };
            let mut sender = mirror::MirrorSender::start(config, &started.wal_dir, start, Arc::clone(&pipeline.commit))?;
            if let Some(agent) = crate::witness::primary_agent(&claimed, Arc::clone(&pipeline.commit))? {
                sender.attach_witness(agent);
            }
            eprintln!(
                "bourse: mirror: primary epoch {}, shipping the WAL to {} (ack = {:?}, heartbeat {} ms)",
                m.epoch,
                m.standby_addr.map(|a| a.to_string()).unwrap_or_default(),
                m.ack,
                m.heartbeat_ms
            );
            Some(sender)
        }
        _ => None,
    };
    // Bound here, not on the aux thread: a port in use must stop the start-up, not only fail the aux thread while
    // the pipeline serves without its endpoint.
    let metrics = match config.appliance.metrics_bind {
        Some(addr) => Some(
            MetricsServer::bind(addr)
                .with_context(|| format!("binding the metrics endpoint on {addr}"))
                .map_err(|e| bind_error("appliance.metrics_bind", addr, e))?,
        ),
        None => None,
    };
    let aux_stop = Arc::new(AtomicBool::new(false));
    let snapshot_counters = Arc::new(snapshots::SnapshotCounters::default());
    let snapshotter = snapshots::spawn(
        config,
        &started.wal_dir,
        Arc::clone(&pipeline.commit),
        Arc::clone(&snapshot_counters),
        Arc::clone(&aux_stop),
    );
    let aux = {
        let (stats, aux_stop, config) = (Arc::clone(&stats), Arc::clone(&aux_stop), config.clone());
        std::thread::Builder::new()
            .name("bourse-aux".into())
            .spawn(move || aux_loop(&config, exporter, &stats, &aux_stop, sender, metrics))
            .context("starting the aux thread")?
    };
    let result = pipeline_loop(config, &mut pipeline, &stats, &stop, ready, snapshot_counters);
    aux_stop.store(true, Ordering::Relaxed);
    // The aux thread's last export asks the pipeline for the histograms it still holds: keep answering until it
    // is done, on every way out of the loop (a stop, a failed journal), so the final interval reaches the .hlog.
    while !aux.is_finished() {
        if let Some(stages) = pipeline.stages.as_mut() {
            stages.poll_swap();
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let aux_result = aux.join().map_err(|_| anyhow::anyhow!("the aux thread panicked"))?;
    if let Some(s) = snapshotter {
        s.join().map_err(|_| anyhow::anyhow!("the snapshot thread panicked"))?;
    }
    let summary = result?;
    aux_result?;
    Ok(summary)
}

fn pipeline_loop(
    config: &Config,
    pipeline: &mut Pipeline,
    stats: &StatsWriter,
    stop: &AtomicBool,
    ready: Option<Arc<AtomicBool>>,
    snapshots: Arc<snapshots::SnapshotCounters>,
) -> anyhow::Result<Summary> {
    if let Some(core) = config.cores.pipeline {
        bourse_nic::backend::pin::pin_current_thread(core).with_context(|| format!("pinning the pipeline to core {core}"))?;
    }
    if config.cores.mlock {
        bourse_nic::backend::pin::lock_memory().context("mlockall")?;
    }
    let mut backend = setup::open_backend(config).map_err(|e| bind_error("backend.bind", config.backend.bind, e))?;
    if let Some(addr) = config.backend.soup_tcp_bind {
        let limits = soup_tcp::SoupTcpLimits {
            connections_max: config.backend.soup_tcp_connections_max,
            ..soup_tcp::SoupTcpLimits::DEFAULT
        };
        let tcp = soup_tcp::SoupTcp::bind(addr, limits)
            .with_context(|| format!("binding the SoupBinTCP listener on {addr}"))
            .map_err(|e| bind_error("backend.soup_tcp_bind", addr, e))?;
        eprintln!("bourse: order entry: SoupBinTCP 3.00 over TCP on {addr} beside UDP on {}", config.backend.bind);
        backend = Box::new(soup_tcp::OrderEntry { udp: backend, tcp });
    }
    let mut housekeeping = Housekeeping::new(config, pipeline)?;
    // Release the genesis outputs (committed already). Recovered market data is not queued: it is served on request.
    pipeline.transmit(backend.as_mut());
    if let Some(r) = ready {
        r.store(true, Ordering::Release);
    }
    let mut exported = Exported { snapshots, ..Exported::default() };
    let mut polls: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        pipeline.poll(backend.as_mut());
        polls += 1;
        if polls.is_multiple_of(HOUSEKEEPING_EVERY_POLLS) {
            housekeeping.run(pipeline);
        }
        if polls.is_multiple_of(4096) {
            exported.export(pipeline, backend.as_ref(), housekeeping.retransmit_counters(), stats);
        }
        if let Some(f) = pipeline.failure() {
            anyhow::bail!("{f}; the appliance stops taking input");
        }
    }
    if config.market_data.end_of_day_on_stop {
        match pipeline.end_of_day() {
            Ok(seq) => eprintln!("bourse: end of day journaled at seq {seq}; End of Session sent on every stream"),
            Err(e) => eprintln!("bourse: warning: no end of day ({e})"),
        }
    }
    // Drain: give the journal a moment to commit what was taken so no reply is left unsent.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pipeline.waiting() != (0, 0) && Instant::now() < deadline {
        pipeline.transmit(backend.as_mut());
        std::hint::spin_loop();
    }
    exported.export(pipeline, backend.as_ref(), housekeeping.retransmit_counters(), stats);
    let b = backend.stats();
    let (r, m) = pipeline.waiting();
    Ok(Summary {
        inputs: pipeline.counters.inputs,
        last_seq: pipeline.last_seq(),
        committed: pipeline.commit.committed(),
        rx: b.rx,
        tx: b.tx,
        dropped: b.dropped,
        malformed: b.malformed,
        session_drops: pipeline.sessions.counters().drops.iter().sum(),
        ouch_rejects: pipeline.counters.ouch_rejects,
        kernel_drops: b.kernel_drops,
        oversized: b.oversized,
        duplicates: pipeline.counters.duplicates,
        orders_open: pipeline.exchange.engine().orders_open(),
        outputs_unsent: r + m,
        retransmit: housekeeping.retransmit_counters().copied().unwrap_or_default(),
    })
}

/// What the pipeline thread does besides polling, a bounded amount per call: at most one idle tick, one
/// heartbeat check, one expiry pass and [`RETRANSMIT_REQUESTS_PER_HOUSEKEEPING_MAX`] retransmission requests.
/// Nothing in it blocks.
pub struct Housekeeping {
    retransmit: Option<RetransmitServer>,
    /// The feed's next sequence when last looked at, and since when it has not moved.
    md_cadence: HeartbeatCadence,
}

impl Housekeeping {
    /// Binds the retransmission server when `[market_data] retransmit_bind` is set.
    pub fn new(config: &Config, pipeline: &mut Pipeline) -> anyhow::Result<Housekeeping> {
        let now = pipeline.time.now();
        let md = &config.market_data;
        let retransmit = match md.retransmit_bind {
            Some(addr) => {
                let subscribers: Vec<AllowedSource> =
                    md.subscribers().iter().map(|s| AllowedSource { ip: s.ip, port: s.port }).collect();
                if subscribers.is_empty() {
                    eprintln!(
                        "bourse: warning: market_data.retransmit_subscribers is empty: the retransmission server on \
                         {addr} answers nobody"
                    );
                }
                let limits = RetransmitLimits::from_config(md);
                let server = RetransmitServer::bind(addr, subscribers, limits, now)
                    .with_context(|| format!("binding the retransmission server on {addr}"))
                    .map_err(|e| bind_error("market_data.retransmit_bind", addr, e))?;
                Some(server)
            }
            None => None,
        };
        let md_cadence = HeartbeatCadence::new(MD_HEARTBEAT_NS, now, pipeline.md.datagrams_sent());
        Ok(Housekeeping { retransmit, md_cadence })
    }

    /// One round; returns the retransmission requests taken (the work done beyond the fixed checks).
    pub fn run(&mut self, pipeline: &mut Pipeline) -> usize {
        // The Tick input goes in only after IDLE_TICK_NS without input, busy or not.
        pipeline.tick_if_idle(IDLE_TICK_NS);
        let now = pipeline.time.now();
        if self.md_cadence.due(now, pipeline.md.datagrams_sent()) {
            pipeline.md.heartbeat();
        }
        pipeline.session_timers(now);
        let Some(server) = self.retransmit.as_mut() else { return 0 };
        let (md, exchange) = (&pipeline.md, &pipeline.exchange);
        server.poll(now, RETRANSMIT_REQUESTS_PER_HOUSEKEEPING_MAX, md, |seq| exchange.market(seq))
    }

    /// The retransmission server's counters, when there is a server (for the stats exporter).
    pub fn retransmit_counters(&self) -> Option<&RetransmitCounters> {
        self.retransmit.as_ref().map(|r| &r.counters)
    }
}

/// Last values copied into the stats block, so counters are added as deltas. Public so tests can export a
/// pipeline they drive themselves.
#[derive(Default)]
pub struct Exported {
    rx: u64,
    tx: u64,
    drops: [u64; DropReason::COUNT],
    rejects: [u64; REJECT_ROWS],
    /// The snapshotter's counters (its own thread counts; the pipeline thread copies them into the block).
    pub snapshots: Arc<snapshots::SnapshotCounters>,
}

impl Exported {
    /// Copies the pipeline's, the sessions' and the backend's counters into the block (pipeline thread).
    pub fn export(
        &mut self,
        pipeline: &Pipeline,
        backend: &dyn Backend,
        retransmit: Option<&RetransmitCounters>,
        stats: &StatsWriter,
    ) {
        let b = backend.stats();
        stats.add_rx(b.rx - self.rx);
        stats.add_tx(b.tx - self.tx);
        self.rx = b.rx;
        self.tx = b.tx;
        let sessions = pipeline.sessions.counters();
        for (i, d) in sessions.drops.iter().enumerate() {
            stats.add_drop(i, d - self.drops[i]);
        }
        self.drops = sessions.drops;
        let p = &pipeline.counters;
        let rx = retransmit.copied().unwrap_or_default();
        let ignored = pipeline.exchange.translator().ignored;
        let snap = &self.snapshots;
        for (i, r) in p.rejects.iter().enumerate() {
            stats.add_reject(i, r - self.rejects[i]);
        }
        self.rejects = p.rejects;
        // One entry per counter but the witness's (the aux thread sets those): the array's type holds the two
        // lists to the same length.
        let totals: [(Counter, u64); COUNTERS.len() - WITNESS_COUNTERS] = [
            (Counter::KernelDrops, b.kernel_drops),
            (Counter::NicDrops, b.nic_drops),
            (Counter::Oversized, b.oversized),
            (Counter::BackendMalformed, b.malformed),
            (Counter::BackendDropped, b.dropped),
            (Counter::TxRefused, p.tx_refused),
            (Counter::TxUnresolved, p.tx_unresolved),
            (Counter::Duplicates, p.duplicates),
            (Counter::DuplicatesAnswered, p.duplicates_answered),
            (Counter::IdleLogouts, sessions.idle_logouts),
            (Counter::LoginRejectedNotAuthorized, sessions.login_rejected_not_authorized),
            (Counter::LoginRejectedSessionUnavailable, sessions.login_rejected_session_unavailable),
            (Counter::LoginRejectsSilent, sessions.login_rejects_silent),
            (Counter::ServerHeartbeats, sessions.server_heartbeats),
            (Counter::LoginWindowMisses, p.login_window_misses),
            (Counter::ReplyOverflows, p.reply_overflows),
            (Counter::BackpressurePolls, p.backpressure_polls),
            (Counter::GatewayRefusals, p.ouch_rejects),
            (Counter::RateLimited, p.rate_limited),
            (Counter::LoginReplays, p.login_replays),
            (Counter::RetransmitAnswered, rx.answered),
            (Counter::RetransmitNotSubscriber, rx.not_subscriber),
            (Counter::RetransmitRateLimited, rx.rate_limited),
            (Counter::RetransmitRefused, rx.malformed + rx.bad_session + rx.empty_request + rx.beyond_feed + rx.not_kept + rx.send_failed),
            (Counter::InlineRotations, pipeline.wal.inline_rotations()),
            (Counter::MarketDataOverflows, pipeline.md.overflows),
            (Counter::IgnoredUnknownOrder, ignored.unknown_order),
            (Counter::IgnoredNotReduced, ignored.not_reduced),
            (Counter::IgnoredSideChange, ignored.side_change),
            (Counter::IgnoredNotIncreasing, ignored.not_increasing),
            (Counter::SnapshotsTaken, snap.taken.load(Ordering::Relaxed)),
            (Counter::SnapshotsFailed, snap.failed.load(Ordering::Relaxed)),
            (Counter::SnapshotsSkipped, snap.skipped.load(Ordering::Relaxed)),
            (Counter::SnapshotsShort, snap.short.load(Ordering::Relaxed)),
            (Counter::OrderRefsUnmapped, pipeline.exchange.translator().order_refs().unmapped),
        ];
        for (c, total) in totals {
            stats.set_counter(c, total);
        }
        stats.set_orders_resting(u64::from(pipeline.exchange.engine().orders_open()));
        let committed = pipeline.commit.committed();
        stats.set_commit(committed, pipeline.last_seq() - committed);
        stats.heartbeat();
    }
}

/// Names the stats block's backend and its drop and reject rows as [`Exported::export`] fills them.
pub fn set_stats_names(stats: &StatsWriter, backend: &str) {
    let drop_names = DropReason::ALL.map(drop_name);
    stats.set_names(backend, &drop_names, &REJECT_NAMES);
}

fn drop_name(r: DropReason) -> &'static str {
    match r {
        DropReason::Malformed => "malformed",
        DropReason::UnknownUser => "unknown_user",
        DropReason::BadPassword => "bad_password",
        DropReason::SourceNotAllowed => "source_not_allowed",
        DropReason::NotLoggedIn => "not_logged_in",
        DropReason::BadOuch => "bad_ouch",
        DropReason::UnexpectedPacket => "unexpected_packet",
        DropReason::BadRequest => "bad_request",
        DropReason::SessionInUse => "session_in_use",
        DropReason::NoSuchSession => "no_such_session",
    }
}

/// Reject reasons in the stats block, one row per Order Rejected reason code the engine and the gateway use
/// (`translate::REJECT_CODES`), then `other_code` for any code not listed, then `cancel_reject` for OUCH Cancel
/// Reject messages (no reason code). Gateway refusals are counted under
/// their codes like engine rejects; their total is also the `gateway_refusals` counter.
pub const REJECT_NAMES: [&str; REJECT_ROWS] = {
    let mut names = ["other_code"; REJECT_ROWS];
    names[CANCEL_REJECT_ROW] = "cancel_reject";
    let mut i = 0;
    while i < REJECT_CODES.len() {
        names[i] = REJECT_CODES[i].1;
        i += 1;
    }
    names
};
const _: () = assert!(REJECT_ROWS <= REJECT_REASONS_MAX, "every reject row fits the stats block");

/// Engine reject names, for the stats table (kept next to the list above so the two stay in step).
pub fn reject_name(r: RejectReason) -> &'static str {
    match r {
        RejectReason::UnknownSymbol => "unknown_symbol",
        RejectReason::UnknownAccount => "unknown_account",
        RejectReason::UnknownSession => "unknown_session",
        RejectReason::UserRefNotIncreasing => "user_ref_not_increasing",
        RejectReason::ZeroQuantity => "zero_quantity",
        RejectReason::QuantityTooLarge => "quantity_too_large",
        RejectReason::NotionalTooLarge => "notional_too_large",
        RejectReason::InvalidPrice => "invalid_price",
        RejectReason::InvalidStopPrice => "invalid_stop_price",
        RejectReason::InsufficientFunds => "insufficient_funds",
        RejectReason::InsufficientShares => "insufficient_shares",
        RejectReason::WouldTakeLiquidity => "would_take_liquidity",
        RejectReason::FokUnfillable => "fok_unfillable",
        RejectReason::NoLiquidity => "no_liquidity",
        RejectReason::CapacityExhausted => "capacity_exhausted",
        RejectReason::InvalidAdmin => "invalid_admin",
        RejectReason::InvalidReplace => "invalid_replace",
        RejectReason::Halted => "halted",
        RejectReason::EntryDisabled => "entry_disabled",
    }
}

fn aux_loop(
    config: &Config,
    mut exporter: StageExporter,
    stats: &StatsWriter,
    stop: &AtomicBool,
    mut sender: Option<mirror::MirrorSender>,
    mut metrics: Option<MetricsServer>,
) -> anyhow::Result<()> {
    if let Some(core) = config.cores.aux {
        if let Err(e) = bourse_nic::backend::pin::pin_current_thread(core) {
            eprintln!("bourse: warning: aux thread not pinned to core {core}: {e}");
        }
    }
    let mut hlog = match &config.appliance.hlog_path {
        Some(path) => {
            // A restart never overwrites what the last run measured: its log is moved aside first.
            if let Some(old) = rotate_existing(path).with_context(|| format!("moving aside {}", path.display()))? {
                eprintln!("bourse: the previous interval log {} is kept as {}", path.display(), old.display());
            }
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(HlogWriter::new(
                std::io::BufWriter::new(file),
                std::time::SystemTime::now(),
                "bourse appliance stage latencies of wire inputs, values in nanoseconds",
            )?)
        }
        None => None,
    };
    let interval = Duration::from_millis(config.appliance.hlog_interval_ms.max(10));
    let start = Instant::now();
    let mut interval_start = Duration::ZERO;
    let mut next = start + interval;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if Instant::now() >= next || stopping {
            // A request still outstanding from an earlier interval holds only what was recorded before it was
            // answered; on the way out one more request collects the rest.
            let rounds = if stopping && exporter.is_pending() { 2 } else { 1 };
            for _ in 0..rounds {
                let now = start.elapsed();
                if let Some(set) = collect_interval(&mut exporter, &mut sender) {
                    stats.add_stage_interval(set);
                    if let Some(h) = hlog.as_mut() {
                        h.write_set(set, interval_start, now - interval_start)?;
                        h.flush()?;
                    }
                    interval_start = now;
                }
            }
            next += interval;
        }
        if let Some(m) = metrics.as_mut() {
            let _ = m.poll(stats.block());
        }
        if stopping {
            return Ok(());
        }
        tick_mirror(&mut sender, Duration::from_millis(1));
        if let Some(agent) = sender.as_ref().and_then(|s| s.witness()) {
            let (st, state) = (agent.stats(), agent.state());
            stats.set_counter(Counter::WitnessAlone, u64::from(state == crate::witness::agent::PairState::Alone));
            stats.set_counter(Counter::WitnessCasWon, st.cas_won);
            stats.set_counter(Counter::WitnessReplaced, st.replaced.min(1));
            stats.set_counter(Counter::WitnessUnreachable, st.unreachable);
        }
    }
}

/// Asks the pipeline for its histograms (unless a request is outstanding) and waits a moment for them: the
/// pipeline hands them over at its next burst. `None` when it did not within 50 ms (the next call collects them).
fn collect_interval<'a>(
    exporter: &'a mut StageExporter,
    sender: &mut Option<mirror::MirrorSender>,
) -> Option<&'a crate::obs::stages::HistogramSet> {
    if !exporter.is_pending() {
        exporter.request_swap();
    }
    let deadline = Instant::now() + Duration::from_millis(50);
    loop {
        // The borrow checker cannot see that a `None` ends the borrow; ask again once it is known to be there.
        if exporter.try_collect().is_some() {
            return exporter.collected();
        }
        if Instant::now() >= deadline {
            return None;
        }
        // Keep the mirror's heartbeats flowing while waiting: a gap here longer than the standby's promotion
        // timeout would make it promote under a live primary.
        tick_mirror(sender, Duration::from_micros(200));
    }
}

/// `e`, a failure to open what the configuration key `key` binds at `addr`, named by that key; an address in use
/// most likely means a second appliance on the same configuration (every bind is exclusive), and says so.
pub fn bind_error(key: &str, addr: impl std::fmt::Display, e: anyhow::Error) -> anyhow::Error {
    let in_use = e
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse));
    if in_use {
        e.context(format!("{key} {addr}: address in use (another appliance?)"))
    } else {
        e.context(format!("{key} {addr}"))
    }
}

/// Runs the primary mirror for about `period`, or sleeps that long when there is none. A mirror failure ends
/// mirroring and, with it, acknowledgements.
fn tick_mirror(sender: &mut Option<mirror::MirrorSender>, period: Duration) {
    let Some(s) = sender.as_mut() else {
        std::thread::sleep(period);
        return;
    };
    if let Err(e) = s.run_for(period) {
        // Without the mirror the standby will promote itself; acknowledging on here would split the brain, so
        // this node stops acknowledging, as when fenced.
        s.stop_acknowledging();
        eprintln!("bourse: mirror: {e:#}; mirroring stops and so do acknowledgements");
        *sender = None;
    }
}
