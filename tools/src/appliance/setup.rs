//! Building the appliance from its configuration: recovery, the journal, the genesis inputs, sessions, the
//! translator, the market-data feed and the packet backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bourse_engine::{
    AddAccount, AddSymbol, BindSession, Command, Deposit, DepositShares, Engine, Event, EventSink, Input,
    MarketBreaker,
};
use bourse_nic::backend::{Backend, BackendConfig};
use bourse_nic::session::{AllowedSource, FirmConfig, SessionLimits, Sessions};
use bourse_nic::wire::alpha::{Alpha, SessionName, Symbol};
use bourse_persist::{recover_with, AckPolicy, CommitIndex, DurabilityMode, RecoveryOptions, Wal, WalConfig};

use super::mdfeed::MdFeed;
use super::mdreplay;
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

/// The admin inputs that set up a fresh journal from the configuration: symbols, accounts, funding, sessions.
pub fn genesis(config: &Config) -> anyhow::Result<Vec<Command>> {
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

/// What replies wait for: the standby's ack too when this node is a primary with `ack = "mirrored"`.
pub fn ack_policy(config: &Config) -> AckPolicy {
    match &config.mirror {
        Some(m) if m.role == MirrorRole::Primary && m.ack == MirrorAck::Mirrored => AckPolicy::Mirrored,
        _ => AckPolicy::Local,
    }
}

/// Recovers the engine from `dir` (or starts empty) and opens the journal after it.
pub fn open_journal(config: &Config, dir: &Path) -> anyhow::Result<(Engine, Wal, Started)> {
    open_journal_observing(config, dir, &mut |_: &Input, _: &Event| {})
}

/// [`open_journal`], handing every event of every input replayed from the log to `observe`.
pub fn open_journal_observing(
    config: &Config,
    dir: &Path,
    observe: &mut impl FnMut(&Input, &Event),
) -> anyhow::Result<(Engine, Wal, Started)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating WAL directory {}", dir.display()))?;
    // Before recovery, which zeroes a torn tail: with another appliance live here, that is its record in flight.
    let lock = bourse_persist::wal::DirLock::acquire(dir)?;
    let cap = config.engine_capacity();
    let recovery =
        recover_with(&RecoveryOptions::new(dir, cap), observe).with_context(|| format!("recovering {}", dir.display()))?;
    let snapshot_seq = recovery.snapshot.as_ref().map(|(_, seq)| *seq);
    let recovered_seq = recovery.last_seq();
    let torn_tail = recovery.torn.as_ref().map(|t| format!("{t:?}"));
    let engine = recovery.engine;
    if engine.capacity() != cap {
        bail!(
            "{}: the journal's engine capacity {:?} differs from the configuration's {:?}",
            dir.display(),
            engine.capacity(),
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
    Ok((engine, wal, started))
}

/// The journal-derived state a pipeline starts from: recovered from disk ([`recover_journal`]), or handed over hot
/// by a promoting standby, which kept all of it current while following (no second recovery on the failover path).
pub struct Journal {
    pub engine: Engine,
    pub wal: Wal,
    pub translator: Translator,
    pub md: MdFeed,
    pub started: Started,
    /// Highest journaled UserRefNum per session id: the session layer starts from these, so an order a firm
    /// resends after a restart or failover is a duplicate, never executed twice.
    pub user_refs: UserRefs,
}

/// Highest UserRefNum seen per engine session id.
#[derive(Clone, Debug, Default)]
pub struct UserRefs(Vec<u32>);

impl UserRefs {
    /// Notes the UserRefNum an input introduces (New Order, and Replace's new one).
    pub fn note(&mut self, input: &Input) {
        let (session, user_ref) = match input.command {
            Command::NewOrder(o) => (o.session, o.user_ref),
            Command::Replace(r) => (r.session, r.new_user_ref),
            _ => return,
        };
        let i = usize::from(session);
        if i >= self.0.len() {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = self.0[i].max(user_ref);
    }

    /// Hands every session's high-water mark to the session layer.
    pub fn apply(&self, sessions: &mut Sessions) {
        for (session, &user_ref) in self.0.iter().enumerate() {
            if user_ref > 0 {
                sessions.note_journaled(session as u16, user_ref);
            }
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal {{ through seq {}, next market-data seq {} }}", self.started.recovered_seq, self.md.next_sequence())
    }
}

pub fn new_translator(config: &Config) -> anyhow::Result<Translator> {
    Ok(Translator::new(
        &symbol_names(config)?,
        TranslateLimits { sessions_max: config.firms.len().max(1) as u16, records_max: 1 << 14 },
    ))
}

pub fn new_md_feed(config: &Config) -> anyhow::Result<MdFeed> {
    let md_session = Alpha::new(&config.market_data.session).context("market_data.session")?;
    Ok(MdFeed::new(
        md_session,
        config.market_data.group,
        config.market_data.payload_max_bytes,
        config.market_data.retransmit_messages_max,
        OUT_QUEUE_BYTES,
    ))
}

/// Recovers the journal of `config`: the engine, and the market-data feed's numbering and retransmission ring
/// rebuilt from the same events (see `mdreplay`), then opens the WAL after it.
pub fn recover_journal(config: &Config) -> anyhow::Result<Journal> {
    let dir = wal_dir(config)?;
    let mut translator = new_translator(config)?;
    let mut md = new_md_feed(config)?;
    let mut user_refs = UserRefs::default();
    let t0 = std::time::Instant::now();
    let (engine, wal, mut started) = open_journal_observing(config, &dir, &mut |input: &Input, event: &Event| {
        user_refs.note(input);
        mdreplay::replay_event(&mut translator, &mut md, input, event)
    })?;
    started.startup_ms[0] = ms(t0, std::time::Instant::now());
    Ok(Journal { engine, wal, translator, md, started, user_refs })
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
    let Journal { engine, wal, translator, md, mut started, user_refs } = journal;
    let firms = firm_configs(config)?;
    let mut sessions = Sessions::new(&firms, SessionLimits::DEFAULT);
    user_refs.apply(&mut sessions);
    let t1 = std::time::Instant::now();
    let (recorder, exporter) = stage_recorder(clock, HistConfig::default()).context("allocating stage histograms")?;
    let mut pipeline = Pipeline::new(Parts {
        sessions,
        translator,
        engine,
        wal,
        md,
        clock,
        stages: Some(recorder),
        payload_max_bytes: config.market_data.payload_max_bytes.max(1_400),
        reply_queue_bytes: OUT_QUEUE_BYTES,
        reserve_bytes: OUT_QUEUE_BYTES / 4,
    });
    started.startup_ms[1] = ms(t1, std::time::Instant::now());
    if started.recovered_seq == 0 {
        for command in genesis(config)? {
            let seq = pipeline.submit(command).map_err(|e| anyhow::anyhow!("{e}"))?;
            let _ = seq;
        }
        started.genesis_inputs = pipeline.last_seq();
        check_genesis(config, &pipeline.engine)?;
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

/// The genesis inputs must all have applied: replay them on a scratch engine to find the first refused one.
fn check_genesis(config: &Config, engine: &Engine) -> anyhow::Result<()> {
    let mut scratch = Engine::new(engine.capacity());
    for (i, command) in genesis(config)?.into_iter().enumerate() {
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
    b
}

/// Opens the configured packet backend. Call it on the thread that will poll it (io_uring and DPDK care).
pub fn open_backend(config: &Config) -> anyhow::Result<Box<dyn Backend>> {
    let bc = backend_config(config);
    let at = |what: &str| format!("opening the {what} backend on {}", config.backend.bind);
    Ok(match config.backend.kind {
        BackendKind::Socket => Box::new(
            bourse_nic::backend::socket::SocketBackend::with_options(&bc, &socket_options()).with_context(|| at("socket"))?,
        ),
        BackendKind::Uring => {
            let opts = bourse_nic::backend::uring::UringOptions { socket: socket_options(), rx_buffers: None };
            Box::new(bourse_nic::backend::uring::UringBackend::with_options(&bc, &opts).with_context(|| at("uring"))?)
        }
        BackendKind::AfXdp => Box::new(bourse_nic::backend::af_xdp::AfXdp::new(&bc).with_context(|| at("af_xdp"))?),
        BackendKind::Dpdk => open_dpdk(&bc)?,
    })
}

/// Kernel socket buffers large enough to ride out a few milliseconds of preemption at full rate: on two shared
/// cores the pinned pipeline thread can lose its core briefly, and the kernel default (~208 KiB) then drops orders.
fn socket_options() -> bourse_nic::backend::socket::SocketOptions {
    bourse_nic::backend::socket::SocketOptions {
        recv_buffer_bytes: Some(8 << 20),
        send_buffer_bytes: Some(8 << 20),
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
