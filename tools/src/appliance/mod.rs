//! The appliance: `bourse run --config bourse.toml`.
//!
//! Two threads. The pipeline thread (pinned, busy-polling, never blocking) owns the backend, the sessions, the
//! engine, the journal writer and the output queues ([`pipeline`]). The aux thread exports what the pipeline
//! measured: interval histograms to the `.hlog`, counters and stage quantiles to the shared-memory stats block,
//! and the Prometheus endpoint; the WAL's group-commit thread (msync mode) is started by the journal itself. The
//! MoldUDP64 retransmission server for market data is polled by the pipeline thread when it is idle, because the
//! ring it answers from lives there.

use bourse_persist::mirror::Position;

/// A quiet market-data feed sends a MoldUDP64 heartbeat this often (the first one soon after start, so receivers
/// of a promoted node learn where its sequence stands).
const MD_HEARTBEAT_NS: u64 = 1_000_000_000;

pub mod mdfeed;
pub mod mdreplay;
pub mod mirror;
pub mod outq;
pub mod pipeline;
pub mod setup;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_engine::RejectReason;
use bourse_nic::backend::Backend;
use bourse_nic::session::DropReason;
use bourse_nic::wire::moldudp64::Request;

use crate::config::Config;
use crate::obs::hlog::HlogWriter;
use crate::obs::metrics::MetricsServer;
use crate::obs::stages::StageExporter;
use crate::obs::statsblock::StatsWriter;
use crate::obs::tsc::Clock;
use pipeline::Pipeline;

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
    pub orders_open: u32,
    pub outputs_unsent: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inputs (last seq {}, committed {}), rx {} tx {}, dropped {} malformed {} session-drops {}, \
             OUCH rejects {}, {} orders open, {} outputs unsent",
            self.inputs,
            self.last_seq,
            self.committed,
            self.rx,
            self.tx,
            self.dropped,
            self.malformed,
            self.session_drops,
            self.ouch_rejects,
            self.orders_open,
            self.outputs_unsent
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
    let journal = match journal {
        Some(j) => j,
        None => {
            let j = setup::recover_journal(config)?;
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
    match started.snapshot_seq {
        None => eprintln!(
            "bourse: market data: MoldUDP64 session {} continues at seq {} (rebuilt from the journal)",
            pipeline.md.session().as_str(),
            pipeline.md.next_sequence()
        ),
        Some(seq) => eprintln!("{}", mdreplay::snapshot_warning(&pipeline.md, seq)),
    }
    let stats = Arc::new(match StatsWriter::create(&config.appliance.name) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("bourse: warning: no shared stats block ({e}); `bourse stats` will not see this appliance");
            StatsWriter::in_memory()
        }
    });
    let drop_names: Vec<&str> = DropReason::ALL.iter().map(|r| drop_name(*r)).collect();
    let reject_names: Vec<&str> = REJECT_NAMES.to_vec();
    stats.set_names(config.backend.kind.as_str(), &drop_names, &reject_names);
    stats.set_wal_mode(started.wal_mode);

    let sender = match &config.mirror {
        Some(m) if m.role == crate::config::MirrorRole::Primary && m.standby_addr.is_some() => {
            // This epoch's records start where recovery (or the promotion) left the log.
            let start = Position { seq: started.recovered_seq, offset: started.recovered_offset };
            let sender = mirror::MirrorSender::start(config, &started.wal_dir, start, Arc::clone(&pipeline.commit))?;
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
    let aux = {
        let (stats, aux_stop, config) = (Arc::clone(&stats), Arc::clone(&aux_stop), config.clone());
        std::thread::Builder::new()
            .name("bourse-aux".into())
            .spawn(move || aux_loop(&config, exporter, &stats, &aux_stop, sender, metrics))
            .context("starting the aux thread")?
    };
    let result = pipeline_loop(config, &mut pipeline, &stats, &stop, ready);
    aux_stop.store(true, Ordering::Relaxed);
    let aux_result = aux.join().map_err(|_| anyhow::anyhow!("the aux thread panicked"))?;
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
) -> anyhow::Result<Summary> {
    if let Some(core) = config.cores.pipeline {
        bourse_nic::backend::pin::pin_current_thread(core).with_context(|| format!("pinning the pipeline to core {core}"))?;
    }
    if config.cores.mlock {
        bourse_nic::backend::pin::lock_memory().context("mlockall")?;
    }
    let mut backend = setup::open_backend(config).map_err(|e| bind_error("backend.bind", config.backend.bind, e))?;
    let retransmit = match config.market_data.retransmit_bind {
        Some(addr) => {
            // std binds UDP without SO_REUSEADDR: a port another process holds is refused (EADDRINUSE).
            let s = UdpSocket::bind(addr)
                .with_context(|| format!("binding the retransmission server on {addr}"))
                .map_err(|e| bind_error("market_data.retransmit_bind", addr, e))?;
            s.set_nonblocking(true)?;
            Some(s)
        }
        None => None,
    };
    // Release the genesis outputs (committed already). Recovered market data is not queued: it is served on request.
    pipeline.transmit(backend.as_mut());
    if let Some(r) = ready {
        r.store(true, Ordering::Release);
    }
    let mut exported = Exported::default();
    let mut idle: u32 = 0;
    let mut polls: u64 = 0;
    let mut request_buf = [0u8; 64];
    let mut answer_buf = vec![0u8; 9_000];
    let (mut md_seen, mut md_quiet_since) = (pipeline.md.next_sequence(), pipeline.time.now());
    while !stop.load(Ordering::Relaxed) {
        let n = pipeline.poll(backend.as_mut());
        polls += 1;
        if n == 0 {
            idle = idle.wrapping_add(1);
            if idle.is_multiple_of(1024) {
                pipeline.tick_if_idle(100_000_000);
                let now = pipeline.time.now();
                if pipeline.md.next_sequence() != md_seen {
                    (md_seen, md_quiet_since) = (pipeline.md.next_sequence(), now);
                } else if now.saturating_sub(md_quiet_since) >= MD_HEARTBEAT_NS {
                    pipeline.md.heartbeat();
                    md_quiet_since = now;
                }
                pipeline.sessions.expire(now);
                if let Some(sock) = &retransmit {
                    serve_retransmissions(sock, &pipeline.md, &mut request_buf, &mut answer_buf);
                }
            }
        } else {
            idle = 0;
        }
        if polls.is_multiple_of(4096) {
            exported.export(pipeline, backend.as_ref(), stats);
        }
        if let Some(f) = pipeline.failure() {
            anyhow::bail!("{f}; the appliance stops taking input");
        }
    }
    // Drain: give the journal a moment to commit what was taken so no reply is left unsent.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pipeline.waiting() != (0, 0) && Instant::now() < deadline {
        pipeline.transmit(backend.as_mut());
        std::hint::spin_loop();
    }
    exported.export(pipeline, backend.as_ref(), stats);
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
        orders_open: pipeline.engine.orders_open(),
        outputs_unsent: r + m,
    })
}

/// Answers waiting MoldUDP64 request packets for the market-data session.
fn serve_retransmissions(sock: &UdpSocket, md: &mdfeed::MdFeed, req: &mut [u8], out: &mut [u8]) {
    for _ in 0..16 {
        let Ok((n, from)) = sock.recv_from(req) else { return };
        let Ok(request) = Request::parse(&req[..n]) else { continue };
        if request.session != md.session() {
            continue;
        }
        let len = md.answer(&request, out);
        if len > 0 {
            let _ = sock.send_to(&out[..len], from);
        }
    }
}

/// Last values copied into the stats block, so counters are added as deltas.
#[derive(Default)]
struct Exported {
    rx: u64,
    tx: u64,
    drops: [u64; DropReason::COUNT],
    ouch_rejects: u64,
}

impl Exported {
    fn export(&mut self, pipeline: &Pipeline, backend: &dyn Backend, stats: &StatsWriter) {
        let b = backend.stats();
        stats.add_rx(b.rx - self.rx);
        stats.add_tx(b.tx - self.tx);
        self.rx = b.rx;
        self.tx = b.tx;
        let drops = pipeline.sessions.counters().drops;
        for (i, d) in drops.iter().enumerate() {
            stats.add_drop(i, d - self.drops[i]);
        }
        self.drops = drops;
        stats.add_reject(REJECT_NAMES.len() - 1, pipeline.counters.ouch_rejects - self.ouch_rejects);
        self.ouch_rejects = pipeline.counters.ouch_rejects;
        stats.set_orders_resting(u64::from(pipeline.engine.orders_open()));
        let committed = pipeline.commit.committed();
        stats.set_commit(committed, pipeline.last_seq() - committed);
        stats.heartbeat();
    }
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
    }
}

/// Reject reasons in the stats block: the engine's, then OUCH messages refused before the engine.
const REJECT_NAMES: [&str; 1] = ["ouch_refused"];

/// Engine reject names, for the stats table (kept next to the list above so the two stay in step).
pub fn reject_name(r: RejectReason) -> &'static str {
    match r {
        RejectReason::UnknownSymbol => "unknown_symbol",
        RejectReason::UnknownAccount => "unknown_account",
        RejectReason::UnknownSession => "unknown_session",
        RejectReason::UnknownOrder => "unknown_order",
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
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(HlogWriter::new(std::io::BufWriter::new(file), std::time::SystemTime::now(), "bourse appliance stages")?)
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
            if !exporter.is_pending() {
                exporter.request_swap();
            }
            // The pipeline hands the set over at its next burst; give it a moment.
            let now = start.elapsed();
            let deadline = Instant::now() + Duration::from_millis(50);
            loop {
                if let Some(set) = exporter.try_collect() {
                    stats.set_stages_from(set);
                    if let Some(h) = hlog.as_mut() {
                        h.write_set(set, interval_start, now - interval_start)?;
                        h.flush()?;
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                // Keep the mirror's heartbeats flowing while waiting: a gap here longer than the standby's
                // promotion timeout would make it promote under a live primary.
                tick_mirror(&mut sender, Duration::from_micros(200));
            }
            interval_start = now;
            next += interval;
        }
        if let Some(m) = metrics.as_mut() {
            let _ = m.poll(stats.block());
        }
        if stopping {
            return Ok(());
        }
        tick_mirror(&mut sender, Duration::from_millis(1));
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
    if let Err(e) = run_mirror_for(s, period) {
        // Without the mirror the standby will promote itself; acknowledging on here would split the brain, so
        // this node stops acknowledging, as when fenced.
        s.stop_acknowledging();
        eprintln!("bourse: mirror: {e:#}; mirroring stops and so do acknowledgements");
        *sender = None;
    }
}

/// Polls the primary mirror for about `period`, idling as [`mirror::IdleBackoff`] says.
fn run_mirror_for(sender: &mut mirror::MirrorSender, period: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + period;
    let mut backoff = mirror::IdleBackoff::default();
    while Instant::now() < until {
        backoff.after(sender.poll()? > 0);
    }
    Ok(())
}
