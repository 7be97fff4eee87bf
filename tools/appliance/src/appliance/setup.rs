//! Building the appliance from its configuration: recovery of the exchange state, the journal, the genesis
//! inputs, sessions, the market-data feed and the packet backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bourse_engine::{
    AddAccount, AddSymbol, BindSession, Command, Deposit, DepositShares, Engine, Event, EventSink, Input,
    MarketBreaker,
};
use bourse_nic::backend::{Backend, BackendConfig};
use crate::session::{AllowedSource, FirmConfig, SessionLimits, Sessions};
use bourse_nic::wire::alpha::{Alpha, SessionName, Symbol};
use bourse_persist::recovery::recover_state;
use bourse_persist::snapshot::{self, SnapshotError};
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

use super::exchange::{Exchange, ExchangeLimits, RateLimit};
use super::mdfeed::MdFeed;
use super::pipeline::{Parts, Pipeline};
use crate::config::{
    parse_cash, parse_price, parse_source, BackendKind, Config, MirrorAck, MirrorRole, MirrorSection, WalMode,
};
use crate::obs::stages::{stage_recorder, HistConfig, StageExporter};
use crate::obs::tsc::Clock;
use crate::translate::{TranslateLimits, Translator};

/// Output queue bytes per queue: room for many bursts of worst-case output while a group commit is in flight.
const OUT_QUEUE_BYTES: usize = 32 << 20;

/// What recovery found, for the start-up log line.
pub struct Started {
    pub wal_dir: PathBuf,
    pub recovered_seq: u64,
    /// Stream offset just past `recovered_seq` (where this run's records begin, as the mirror names it).
    pub recovered_offset: u64,
    /// Seq of the snapshot recovery started from: the events before it were not replayed.
    pub snapshot_seq: Option<u64>,
    pub torn_tail: Option<String>,
    pub genesis_inputs: u64,
    /// Start-up time in ms: recovery and opening the journal; building the pipeline.
    pub startup_ms: [f64; 2],
    pub wal_mode: &'static str,
    pub wal_map: &'static str,
    pub durable_on_this_host: bool,
}

pub fn wal_dir(config: &Config) -> anyhow::Result<PathBuf> {
    Ok(match &config.wal.dir {
        Some(d) => d.clone(),
        None => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
            std::env::temp_dir().join(format!("bourse-wal-{}-{nanos}", std::process::id()))
        }
    })
}

pub fn durability(mode: WalMode) -> DurabilityMode {
    match mode {
        WalMode::Dax => DurabilityMode::Dax,
        WalMode::Msync => DurabilityMode::Msync,
        WalMode::None => DurabilityMode::None,
    }
}

/// Firms in config order: firm `i` is engine session `i`, account `i`, firm id `i`.
pub fn firm_configs(config: &Config) -> anyhow::Result<Vec<FirmConfig>> {
    config
        .firms
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let sources = f
                .allowed_sources
                .iter()
                .map(|s| parse_source(s).map(|a| AllowedSource { ip: a.ip, port: a.port }))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(FirmConfig {
                username: Alpha::new(&f.username).context("username")?,
                password: Alpha::new(&f.password).context("password")?,
                sources,
                session: i as u16,
                account: i as u32,
                session_name: session_name_for(i),
            })
        })
        .collect()
}

/// The MoldUDP64 session name of firm `i`'s reply stream.
pub fn session_name_for(i: usize) -> SessionName {
    Alpha::new(&format!("OE{i:08}")).expect("10 characters")
}

pub fn symbol_names(config: &Config) -> anyhow::Result<Vec<Symbol>> {
    config.symbols.iter().map(|s| Alpha::new(&s.name).context("symbol name")).collect()
}

/// The admin inputs that set up a fresh journal from the configuration: symbols, accounts, funding, sessions,
/// and the open of a day that starts at `unix_ns` (the market's UTC offset then is journaled with it).
pub fn genesis(config: &Config, unix_ns: u64) -> anyhow::Result<Vec<Command>> {
    let mut out = vec![Command::SetMarketBreaker(MarketBreaker::DEFAULT)];
    for (i, s) in config.symbols.iter().enumerate() {
        out.push(Command::AddSymbol(AddSymbol {
            symbol: i as u16,
            reference_price: parse_price(&s.reference_price)?,
            ladder_min_price: config.ladder_min(s)?,
            tick: parse_price(&s.tick)?,
            bands: config.bands(s)?,
            market_collar_bps: s.market_collar_bps,
            index_weight: s.index_weight,
        }));
    }
    for (i, f) in config.firms.iter().enumerate() {
        let account = i as u32;
        out.push(Command::AddAccount(AddAccount {
            account,
            firm: i as u16,
            self_trade: f.self_trade_prevention.engine(),
            short_limit: f.short_limit,
            max_order_qty: f.max_order_qty,
            max_order_notional: parse_cash(&f.max_order_notional)?,
        }));
        if !f.cash.is_empty() {
            out.push(Command::Deposit(Deposit { account, amount: parse_cash(&f.cash)? }));
        }
        for (name, qty) in &f.shares {
            let symbol = config.symbols.iter().position(|s| &s.name == name).context("share symbol")? as u16;
            out.push(Command::DepositShares(DepositShares { account, symbol, qty: *qty }));
        }
        out.push(Command::BindSession(BindSession { session: i as u16, account }));
    }
    // Last: the feed's start of day (System Event 'O', the directory, the Trading Action spin, 'S', 'Q'), once
    // the symbols exist; journaled like the rest, so it is never sent twice.
    let utc_offset_s = config.appliance.market_utc_offset_s(unix_ns)?;
    out.push(Command::MarketHours(bourse_engine::MarketHours::Open { utc_offset_s }));
    Ok(out)
}

struct AdminCheck(Option<bourse_engine::RejectReason>);

impl EventSink for AdminCheck {
    fn event(&mut self, e: &Event) {
        if let Event::AdminRejected { reason, .. } = e {
            self.0 = Some(*reason);
        }
    }
}

/// What replies wait for: the standby's landing (`ack = "replicated"`) or durable ack (`"durable"`) too when this
/// node is a primary.
pub fn ack_policy(config: &Config) -> AckPolicy {
    match &config.mirror {
        Some(m) if m.role == MirrorRole::Primary => match m.ack {
            MirrorAck::Local => AckPolicy::Local,
            MirrorAck::Mirrored => AckPolicy::Mirrored,
            MirrorAck::Replicated => AckPolicy::Replicated,
        },
        _ => AckPolicy::Local,
    }
}

/// The replicated state's sizes beyond the engine, from the configuration.
pub fn exchange_limits(config: &Config) -> ExchangeLimits {
    ExchangeLimits {
        sessions: config.firms.len().max(1) as u16,
        replies_kept: config.appliance.replies_kept.next_power_of_two(),
        outcomes_kept: ExchangeLimits::DEFAULT.outcomes_kept,
        market_kept: config.market_data.retransmit_messages_max.next_power_of_two(),
    }
}

/// Each session's rate limit, from its firm's `rate_limit_per_s` and `rate_limit_burst`.
pub fn rate_limits(config: &Config) -> Vec<RateLimit> {
    config
        .firms
        .iter()
        .map(|f| {
            let burst = if f.rate_limit_burst == 0 { f.rate_limit_per_s } else { f.rate_limit_burst };
            RateLimit { per_s: f.rate_limit_per_s, burst }
        })
        .collect()
}

/// An empty exchange state for `config`.
pub fn new_exchange(config: &Config) -> anyhow::Result<Exchange> {
    Ok(Exchange::new(config.engine_capacity(), new_translator(config)?, exchange_limits(config), &rate_limits(config)))
}

/// Reads, checks and restores the exchange-state snapshot at `path` (taken at `seq`).
pub fn load_exchange(config: &Config, path: &Path, seq: u64) -> Result<Exchange, SnapshotError> {
    let state = |why: String| SnapshotError::State { path: path.to_path_buf(), why };
    let (header_seq, payload) = snapshot::read_snapshot(path)?;
    let translator = new_translator(config).map_err(|e| state(format!("{e:#}")))?;
    let x = Exchange::restore(&payload, translator, exchange_limits(config), &rate_limits(config)).map_err(state)?;
    if x.last_seq() != header_seq || header_seq != seq {
        return Err(SnapshotError::SeqMismatch { path: path.to_path_buf(), header: header_seq, engine: x.last_seq() });
    }
    if x.engine().capacity() != config.engine_capacity() {
        return Err(state(format!(
            "engine capacity {:?} differs from the configuration's {:?}",
            x.engine().capacity(),
            config.engine_capacity()
        )));
    }
    Ok(x)
}

/// The journal-derived state a pipeline starts from: recovered from disk ([`recover_journal`]), or handed over hot
/// by a promoting standby, which kept all of it current while following (no second recovery on the failover path).
pub struct Journal {
    pub exchange: Exchange,
    pub wal: Wal,
    pub started: Started,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Journal {{ through seq {}, next market-data seq {} }}",
            self.started.recovered_seq,
            self.exchange.next_market_sequence()
        )
    }
}

/// Recovers the exchange state from `dir` — the newest snapshot it can use, then the log after it, through
/// [`Exchange::apply`] — and opens the journal after it.
pub fn open_journal(config: &Config, dir: &Path) -> anyhow::Result<Journal> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating WAL directory {}", dir.display()))?;
    // Before recovery, which zeroes a torn tail: with another appliance live here, that is its record in flight.
    let lock = bourse_persist::wal::DirLock::acquire(dir)?;
    let cap = config.engine_capacity();
    let fresh = new_exchange(config)?;
    let recovery = recover_state(&RecoveryOptions::new(dir, cap), || fresh, |path, seq| load_exchange(config, path, seq))
        .with_context(|| format!("recovering {}", dir.display()))?;
    for s in &recovery.skipped_snapshots {
        eprintln!("bourse: warning: snapshot {} not used: {}", s.path.display(), s.error);
    }
    let snapshot_seq = recovery.snapshot.as_ref().map(|(_, seq)| *seq);
    let recovered_seq = recovery.last_seq();
    let torn_tail = recovery.torn.as_ref().map(|t| format!("{t:?}"));
    let exchange = recovery.state;
    if exchange.engine().capacity() != cap {
        bail!(
            "{}: the journal's engine capacity {:?} differs from the configuration's {:?}",
            dir.display(),
            exchange.engine().capacity(),
            cap
        );
    }
    let commit = Arc::new(CommitIndex::new(ack_policy(config), recovered_seq));
    let mut wal_config = WalConfig::new(dir);
    wal_config.mode = durability(config.wal.mode);
    wal_config.epoch = MirrorSection::wal_epoch(config);
    wal_config.segment_bytes = config.wal.segment_bytes;
    wal_config.lock = Some(lock);
    let wal = Wal::create(wal_config, recovered_seq + 1, commit).with_context(|| format!("opening the WAL in {}", dir.display()))?;
    let status = wal.status().clone();
    let started = Started {
        wal_dir: dir.to_path_buf(),
        recovered_seq,
        recovered_offset: wal.stream_offset(),
        snapshot_seq,
        torn_tail,
        genesis_inputs: 0,
        startup_ms: [0.0; 2],
        wal_mode: status.mode.name(),
        wal_map: status.map_name(),
        durable_on_this_host: status.durable_on_this_host,
    };
    Ok(Journal { exchange, wal, started })
}

pub fn new_translator(config: &Config) -> anyhow::Result<Translator> {
    Ok(Translator::new(
        &symbol_names(config)?,
        TranslateLimits { sessions_max: config.firms.len().max(1) as u16, records_max: 1 << 14 },
    ))
}

/// The market-data feed's transport, continuing at `next_sequence`.
pub fn new_md_feed(config: &Config, next_sequence: u64) -> anyhow::Result<MdFeed> {
    let md_session = Alpha::new(&config.market_data.session).context("market_data.session")?;
    Ok(MdFeed::new(
        md_session,
        config.market_data.group,
        config.market_data.payload_max_bytes,
        OUT_QUEUE_BYTES,
        next_sequence,
    ))
}

/// Recovers the journal of `config` (see [`open_journal`]).
pub fn recover_journal(config: &Config) -> anyhow::Result<Journal> {
    let dir = wal_dir(config)?;
    let t0 = std::time::Instant::now();
    let mut journal = open_journal(config, &dir)?;
    journal.started.startup_ms[0] = ms(t0, std::time::Instant::now());
    Ok(journal)
}

/// Everything but the backend, ready to poll.
pub fn build_pipeline(config: &Config, clock: Clock) -> anyhow::Result<(Pipeline, StageExporter, Started)> {
    build_pipeline_from(config, clock, recover_journal(config)?)
}

/// [`build_pipeline`] from a journal already at hand.
pub fn build_pipeline_from(
    config: &Config,
    clock: Clock,
    journal: Journal,
) -> anyhow::Result<(Pipeline, StageExporter, Started)> {
    let Journal { exchange, wal, mut started } = journal;
    let firms = firm_configs(config)?;
    let a = &config.appliance;
    let limits = SessionLimits {
        idle_timeout_ns: a.session_idle_timeout_ms.saturating_mul(1_000_000),
        silent_to_unlisted_sources: a.silent_to_unlisted_sources,
        ..SessionLimits::DEFAULT
    };
    let sessions = Sessions::new(&firms, limits);
    let md = new_md_feed(config, exchange.next_market_sequence())?;
    let time_floor_ns = exchange.last_timestamp();
    let t1 = std::time::Instant::now();
    let (recorder, exporter) = stage_recorder(clock, HistConfig::default()).context("allocating stage histograms")?;
    let mut pipeline = Pipeline::new(Parts {
        sessions,
        exchange,
        wal,
        md,
        clock,
        time_floor_ns,
        stages: Some(recorder),
        payload_max_bytes: config.market_data.payload_max_bytes.max(1_400),
        reply_queue_bytes: OUT_QUEUE_BYTES,
        reserve_bytes: OUT_QUEUE_BYTES / 4,
    });
    started.startup_ms[1] = ms(t1, std::time::Instant::now());
    if started.recovered_seq == 0 {
        let opened_at = pipeline.time.now();
        for command in genesis(config, opened_at)? {
            let seq = pipeline.submit(command).map_err(|e| anyhow::anyhow!("{e}"))?;
            let _ = seq;
        }
        started.genesis_inputs = pipeline.last_seq();
        check_genesis(config, pipeline.exchange.engine())?;
    }
    Ok((pipeline, exporter, started))
}

/// The epoch of the record at `seq` (0 for an empty log).
pub fn last_record_epoch(dir: &Path, seq: u64) -> u64 {
    let mut epoch = 0;
    let _ = bourse_persist::wal::scan_log(dir, bourse_persist::wal::ScanOptions { from_seq: seq, live: true }, |_, _, r| {
        if r.input.seq == seq {
            epoch = u64::from(r.epoch);
        }
        bourse_persist::wal::Visit::Continue
    });
    epoch
}

fn ms(from: std::time::Instant, to: std::time::Instant) -> f64 {
    (to - from).as_secs_f64() * 1e3
}

/// The market of `config` as the engine would take it: firm and symbol settings parse, and every genesis input
/// applies to a fresh engine (checked before any journal is touched).
pub fn check_market(config: &Config) -> anyhow::Result<()> {
    firm_configs(config)?;
    new_translator(config)?;
    check_genesis(config, &Engine::new(config.engine_capacity()))
}

/// The genesis inputs must all have applied: replay them on a scratch engine to find the first refused one.
fn check_genesis(config: &Config, engine: &Engine) -> anyhow::Result<()> {
    let mut scratch = Engine::new(engine.capacity());
    for (i, command) in genesis(config, 0)?.into_iter().enumerate() {
        let mut check = AdminCheck(None);
        scratch.apply(&Input { seq: i as u64 + 1, timestamp: 0, command }, &mut check);
        if let Some(reason) = check.0 {
            bail!("configuration input #{} ({command:?}) was refused by the engine: {reason:?}", i + 1);
        }
    }
    Ok(())
}

pub fn backend_config(config: &Config) -> BackendConfig {
    let mut b = BackendConfig::new(config.backend.bind);
    b.interface = config.backend.interface.clone();
    b.burst_max = config.backend.burst_max;
    b.tx_slots = config.backend.tx_slots;
    b.payload_max_bytes = config.market_data.payload_max_bytes.max(1_472);
    b.eal_args = config.backend.eal_args.clone();
    // The pipeline thread opens and polls the backend: DPDK's EAL takes its main lcore from this.
    b.core = config.cores.pipeline;
    b.multicast_ttl = config.market_data.multicast_ttl;
    b
}

/// Opens the configured packet backend. Call it on the thread that will poll it (io_uring and DPDK care).
pub fn open_backend(config: &Config) -> anyhow::Result<Box<dyn Backend>> {
    let bc = backend_config(config);
    let at = |what: &str| format!("opening the {what} backend on {}", config.backend.bind);
    Ok(match config.backend.kind {
        BackendKind::Socket => Box::new(
            bourse_nic::backend::socket::SocketBackend::with_options(&bc, &socket_options(config)).with_context(|| at("socket"))?,
        ),
        BackendKind::Uring => {
            let opts = bourse_nic::backend::uring::UringOptions { socket: socket_options(config), rx_buffers: None };
            Box::new(bourse_nic::backend::uring::UringBackend::with_options(&bc, &opts).with_context(|| at("uring"))?)
        }
        BackendKind::AfXdp => Box::new(bourse_nic::backend::af_xdp::AfXdp::new(&bc).with_context(|| at("af_xdp"))?),
        BackendKind::Dpdk => open_dpdk(&bc)?,
    })
}

/// Kernel socket buffers large enough to ride out a few milliseconds of preemption at full rate: on two shared
/// cores the pinned pipeline thread can lose its core briefly, and the kernel default (~208 KiB) then drops orders.
/// The feed's multicast options when its group is one.
pub fn socket_options(config: &Config) -> bourse_nic::backend::socket::SocketOptions {
    let md = &config.market_data;
    let multicast = md.group.ip().is_multicast();
    bourse_nic::backend::socket::SocketOptions {
        recv_buffer_bytes: Some(8 << 20),
        send_buffer_bytes: Some(8 << 20),
        multicast_ttl: multicast.then_some(u32::from(md.multicast_ttl)),
        multicast_if: md.multicast_interface.filter(|_| multicast),
        multicast_loop: md.multicast_loop.filter(|_| multicast),
        ..Default::default()
    }
}

#[cfg(feature = "dpdk")]
fn open_dpdk(bc: &BackendConfig) -> anyhow::Result<Box<dyn Backend>> {
    Ok(Box::new(bourse_nic::backend::dpdk::DpdkBackend::new(bc).context("opening the dpdk backend")?))
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(_bc: &BackendConfig) -> anyhow::Result<Box<dyn Backend>> {
    bail!("backend.kind = \"dpdk\" needs a build with `--features dpdk` (links the system DPDK)")
}

/// The market-data destination, for logs.
pub fn describe(config: &Config) -> String {
    format!(
        "backend {} on {}, market data to {} (session {}), {} symbols, {} firms",
        config.backend.kind.as_str(),
        config.backend.bind,
        config.market_data.group,
        config.market_data.session,
        config.symbols.len(),
        config.firms.len()
    )
}
