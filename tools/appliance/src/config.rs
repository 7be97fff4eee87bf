//! The appliance's configuration file (TOML) and its validation.
//!
//! Everything the appliance sizes, binds or trusts comes from here: the packet backend and its addresses, the
//! market-data channel, the firms (credentials, allowed sources, account and funding), the symbols (reference
//! prices and bands), the engine's capacities, the WAL and the core assignment. `bourse.example.toml` at the
//! repository root is a commented example. Every bad value is refused at start-up with the key that holds it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bourse_engine::{Bands, Capacity, Price};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub appliance: ApplianceSection,
    pub backend: BackendSection,
    pub market_data: MarketDataSection,
    #[serde(default)]
    pub wal: WalSection,
    #[serde(default)]
    pub cores: CoresSection,
    #[serde(default)]
    pub capacity: CapacitySection,
    #[serde(default)]
    pub symbols: Vec<SymbolSection>,
    #[serde(default)]
    pub firms: Vec<FirmSection>,
    /// Hot standby (absent: no mirror, this node serves alone).
    #[serde(default)]
    pub mirror: Option<MirrorSection>,
    /// The pair's witness (absent: the pair decides alone, as the mirror's timeouts say).
    #[serde(default)]
    pub witness: Option<WitnessSection>,
}

/// `[witness]`: etcd as the arbiter of the pair (README, "Witness"). Both nodes name the same endpoints and key,
/// each its own `node` and the other's `peer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSection {
    /// Client addresses (`host:port`) of the etcd members, tried in turn.
    pub endpoints: Vec<String>,
    /// The partition's record is the key `<prefix>/<partition>`.
    #[serde(default = "default_witness_prefix")]
    pub prefix: String,
    #[serde(default = "default_witness_partition")]
    pub partition: String,
    /// This node's name in the record.
    pub node: String,
    /// The other node of the pair.
    pub peer: String,
    /// Each request to a member gives up after this long.
    #[serde(default = "default_witness_timeout_ms")]
    pub timeout_ms: u64,
    /// The primary removes a standby silent for this long from the members and acknowledges alone (absent:
    /// `mirror.promote_after_ms`).
    pub standby_lost_after_ms: Option<u64>,
}

impl WitnessSection {
    pub fn key(&self) -> String {
        format!("{}/{}", self.prefix.trim_end_matches('/'), self.partition)
    }

    pub fn standby_lost_after(&self, mirror: &MirrorSection) -> std::time::Duration {
        std::time::Duration::from_millis(self.standby_lost_after_ms.unwrap_or(mirror.promote_after_ms))
    }
}

fn default_witness_prefix() -> String {
    "/bourse/partition".into()
}
fn default_witness_partition() -> String {
    "0".into()
}
fn default_witness_timeout_ms() -> u64 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSection {
    /// Names the shared-memory stats block (`/dev/shm/bourse-<name>`).
    #[serde(default = "default_name")]
    pub name: String,
    /// Management port for the Prometheus metrics endpoint (absent: no endpoint).
    pub metrics_bind: Option<SocketAddrV4>,
    /// Where interval histograms (.hlog) are written (absent: not written).
    pub hlog_path: Option<PathBuf>,
    #[serde(default = "default_hlog_interval_ms")]
    pub hlog_interval_ms: u64,
    /// OUCH replies kept per session for re-requests and for logins that ask for an earlier sequence (rounded up
    /// to a power of two). A firm that asks for an older one is answered from the oldest kept.
    #[serde(default = "default_replies_kept")]
    pub replies_kept: usize,
    /// A logged-in order-entry session from which nothing arrives for this long is logged out, with a notice
    /// (SoupBinTCP 3.00 section 1.3: typically 15 s; firms send a Client Heartbeat every second).
    #[serde(default = "default_session_idle_timeout_ms")]
    pub session_idle_timeout_ms: u64,
    /// Failed logins are answered with SoupBinTCP Login Rejected; `true` leaves those from addresses that are in
    /// no firm's `allowed_sources` unanswered (still counted), so a scanner off the cross-connect learns nothing.
    #[serde(default)]
    pub silent_to_unlisted_sources: bool,
    /// The market's time zone (an IANA name): OUCH and ITCH timestamps count nanoseconds from its midnight, as
    /// Nasdaq's count from midnight Eastern. The day's UTC offset is taken at the open and journaled with it.
    #[serde(default = "default_market_time_zone")]
    pub market_time_zone: String,
}

fn default_market_time_zone() -> String {
    "America/New_York".into()
}

impl ApplianceSection {
    /// The market's offset from UTC, in seconds east, at `unix_ns` (nanoseconds since the Unix epoch).
    pub fn market_utc_offset_s(&self, unix_ns: u64) -> anyhow::Result<i32> {
        let tz = jiff::tz::TimeZone::get(&self.market_time_zone).map_err(|e| {
            anyhow::anyhow!("appliance.market_time_zone = {:?} is not a time zone ({e})", self.market_time_zone)
        })?;
        let at = jiff::Timestamp::from_nanosecond(i128::from(unix_ns)).context("a time beyond the tz database")?;
        Ok(tz.to_offset(at).seconds())
    }
}

impl Default for ApplianceSection {
    fn default() -> Self {
        ApplianceSection {
            name: default_name(),
            metrics_bind: None,
            hlog_path: None,
            hlog_interval_ms: default_hlog_interval_ms(),
            replies_kept: default_replies_kept(),
            session_idle_timeout_ms: default_session_idle_timeout_ms(),
            silent_to_unlisted_sources: false,
            market_time_zone: default_market_time_zone(),
        }
    }
}

fn default_replies_kept() -> usize {
    8192
}

fn default_soup_tcp_connections_max() -> usize {
    64
}

fn default_session_idle_timeout_ms() -> u64 {
    15_000
}

fn default_name() -> String {
    "bourse".to_string()
}
fn default_hlog_interval_ms() -> u64 {
    1_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Socket,
    Uring,
    AfXdp,
    Dpdk,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Socket => "socket",
            BackendKind::Uring => "uring",
            BackendKind::AfXdp => "af_xdp",
            BackendKind::Dpdk => "dpdk",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    pub kind: BackendKind,
    /// Our order-entry address and UDP port.
    pub bind: SocketAddrV4,
    /// The port of the raw backends: for af_xdp a kernel interface (`bva`); for dpdk a DPDK port name, which for
    /// a virtual device is the name its `--vdev` gives (`eal_args = ["--vdev=net_af_xdp0,iface=bva"]` makes the
    /// port `net_af_xdp0`) and for a NIC bound to a DPDK driver its PCI address (`0000:3b:00.0`).
    pub interface: Option<String>,
    /// DPDK EAL arguments (dpdk only), usually just the `--vdev`. The backend adds what they leave out: memory
    /// flags (`--no-huge -m 512` without free huge pages, `--in-memory` with them), `--no-pci` unless a PCI
    /// device is named, `-l <cores.pipeline>`, and a per-process `--file-prefix`.
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// SoupBinTCP 3.00 over TCP (absent: UDP only): the address and port a firm's standard OUCH stack connects
    /// to. The same sessions, journal and reply streams serve both transports.
    pub soup_tcp_bind: Option<SocketAddrV4>,
    /// TCP order-entry connections open at once (each preallocates its buffers, ~1 MiB).
    #[serde(default = "default_soup_tcp_connections_max")]
    pub soup_tcp_connections_max: usize,
    #[serde(default = "default_burst")]
    pub burst_max: usize,
    #[serde(default = "default_tx_slots")]
    pub tx_slots: usize,
}

fn default_burst() -> usize {
    32
}
fn default_tx_slots() -> usize {
    1_024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDataSection {
    /// Where ITCH over MoldUDP64 goes: a multicast group, or a unicast address for loopback set-ups.
    pub group: SocketAddrV4,
    /// MoldUDP64 session name (up to 10 characters, space padded on the wire).
    #[serde(default = "default_md_session")]
    pub session: String,
    /// Largest MoldUDP64 datagram payload.
    #[serde(default = "default_mtu")]
    pub payload_max_bytes: usize,
    /// Where the retransmission server answers MoldUDP64 request packets.
    pub retransmit_bind: Option<SocketAddrV4>,
    /// Messages kept for retransmission (a ring; older ones are served from the journal only).
    #[serde(default = "default_retransmit_messages")]
    pub retransmit_messages_max: usize,
    /// Who may ask for retransmissions: `"ip"` (any port) or `"ip:port"`, like a firm's `allowed_sources`. A
    /// request from any other address is dropped unanswered and counted. Empty or absent means nobody: an answer
    /// is ~70 times its request, so the server must not be an amplifier for spoofed sources.
    #[serde(default)]
    pub retransmit_subscribers: Vec<String>,
    /// Messages in one answer at most (a request for more is answered from its first sequence up to this many);
    /// one answer is also never more than one datagram of `payload_max_bytes`.
    #[serde(default = "default_retransmit_messages_per_request_max")]
    pub retransmit_messages_per_request_max: u16,
    /// Requests answered per second per subscriber entry (a token bucket; a bare `"ip"` entry is one bucket for
    /// every port of that address). Requests beyond it are dropped and counted as rate limited.
    #[serde(default = "default_retransmit_requests_per_s")]
    pub retransmit_requests_per_s: u32,
    /// Requests a subscriber may send at once after a quiet spell (the bucket's depth).
    #[serde(default = "default_retransmit_requests_burst")]
    pub retransmit_requests_burst: u32,
    /// A stop ends the trading day: journal the feed's end of day (System Events 'M', 'E', 'C') and send
    /// MoldUDP64 End of Session packets on the feed and on every logged-in reply stream. Off by default, since
    /// a stop is usually a restart or a failover within the day, which must continue the same sessions.
    #[serde(default)]
    pub end_of_day_on_stop: bool,
    /// When `group` is a multicast group: the TTL of the feed's datagrams (1, the default, keeps it on the
    /// local segment; each router on the way to a feed handler takes one).
    #[serde(default = "default_multicast_ttl")]
    pub multicast_ttl: u8,
    /// When `group` is a multicast group, on the socket and uring backends: the address of the interface the
    /// feed leaves by (`IP_MULTICAST_IF`; absent: the kernel's route for the group). The raw backends send on
    /// `backend.interface`.
    pub multicast_interface: Option<Ipv4Addr>,
    /// When `group` is a multicast group, on the socket and uring backends: whether listeners on this host get
    /// the feed too (`IP_MULTICAST_LOOP`; absent: the kernel's default, on).
    pub multicast_loop: Option<bool>,
}

fn default_multicast_ttl() -> u8 {
    1
}

impl MarketDataSection {
    /// The parsed `retransmit_subscribers` (validated when the configuration was loaded).
    pub fn subscribers(&self) -> Vec<AllowedSource> {
        self.retransmit_subscribers.iter().filter_map(|s| parse_source(s).ok()).collect()
    }
}

fn default_md_session() -> String {
    "BOURSEMD01".to_string()
}
fn default_mtu() -> usize {
    1_400
}
fn default_retransmit_messages() -> usize {
    1 << 16
}
fn default_retransmit_messages_per_request_max() -> u16 {
    256
}
fn default_retransmit_requests_per_s() -> u32 {
    1_000
}
fn default_retransmit_requests_burst() -> u32 {
    100
}

/// Subscriber entries at most: each request's source is matched against every entry.
pub const RETRANSMIT_SUBSCRIBERS_MAX: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalMode {
    Dax,
    Msync,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalSection {
    /// Directory of segments and snapshots; absent means a fresh temporary directory (demo runs only).
    pub dir: Option<PathBuf>,
    #[serde(default = "default_wal_mode")]
    pub mode: WalMode,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Take a snapshot of the exchange state each time this many more inputs are committed (0: never). Taken by
    /// a read-only follower of this node's own log on another thread, so matching never pauses; recovery then
    /// starts from the newest valid snapshot and replays only the log after it.
    #[serde(default = "default_snapshot_every_records")]
    pub snapshot_every_records: u64,
    /// Snapshots kept (the newest; at least 1).
    #[serde(default = "default_snapshots_keep")]
    pub snapshots_keep: usize,
    /// What happens to segments wholly before the oldest kept snapshot: "archive" (moved to `<dir>/archive`),
    /// "delete", or "keep".
    #[serde(default)]
    pub retire: Retire,
}

/// The retention policy for segments the kept snapshots no longer need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retire {
    /// Moved to `<wal dir>/archive/` (the WAL directory stays bounded; the archive is the operator's).
    #[default]
    Archive,
    Delete,
    Keep,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            dir: None,
            mode: default_wal_mode(),
            segment_bytes: default_segment_bytes(),
            snapshot_every_records: default_snapshot_every_records(),
            snapshots_keep: default_snapshots_keep(),
            retire: Retire::default(),
        }
    }
}

fn default_snapshot_every_records() -> u64 {
    1_000_000
}
fn default_snapshots_keep() -> usize {
    2
}

fn default_wal_mode() -> WalMode {
    WalMode::Msync
}
fn default_segment_bytes() -> u64 {
    64 << 20
}

/// Which side of the mirror this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorRole {
    /// Serves, and ships its WAL to the standby at `standby_addr`.
    Primary,
    /// Listens on `listen`, follows the primary, and promotes itself when the primary falls silent.
    Standby,
}

/// When replies and market data are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorAck {
    /// Once durable on this host.
    Local,
    /// Once durable on this host and acknowledged durable by the standby (`"durable"`; `"mirrored"` is its older
    /// name).
    #[serde(alias = "durable")]
    Mirrored,
    /// Once in this host's WAL mapping and landed (CRC-checked) in the standby's memory; both nodes make it
    /// durable by group commit behind the release.
    Replicated,
}

/// `[mirror]`: the hot standby link (DESIGN.md §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSection {
    pub role: MirrorRole,
    /// Primary: the standby's mirror address, dialled (and re-dialled) over TCP. Standby (optional): where to
    /// mirror once promoted — the former primary's `listen` when it is restarted as the new standby, which is how
    /// it re-syncs (acks stay local until an operator says otherwise).
    pub standby_addr: Option<std::net::SocketAddr>,
    /// Standby: where to accept the primary's mirror connection.
    pub listen: Option<std::net::SocketAddr>,
    #[serde(default = "default_mirror_ack")]
    pub ack: MirrorAck,
    /// Each side sends a frame at least this often.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// The standby promotes itself after this much silence from the primary. The 5 ms default follows the design;
    /// on shared 2-vCPU hosts under load a scheduler hiccup can exceed it, so deployments there raise it.
    #[serde(default = "default_promote_after_ms")]
    pub promote_after_ms: u64,
    /// Epoch written into every record this node appends; a promoted standby serves with its promoted epoch.
    #[serde(default = "default_epoch")]
    pub epoch: u32,
}

fn default_mirror_ack() -> MirrorAck {
    MirrorAck::Local
}
fn default_heartbeat_ms() -> u64 {
    1
}
fn default_promote_after_ms() -> u64 {
    5
}
fn default_epoch() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresSection {
    /// Core the pipeline thread is pinned to (absent: not pinned).
    pub pipeline: Option<usize>,
    /// Core of the aux thread (group commit, stats, retransmission).
    pub aux: Option<usize>,
    /// Lock all memory (`mlockall`) at start-up.
    #[serde(default)]
    pub mlock: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySection {
    #[serde(default = "d_orders")]
    pub orders_max: u32,
    #[serde(default = "d_levels")]
    pub levels_per_symbol: u32,
    #[serde(default = "d_halt_queue")]
    pub halt_queue_max: u32,
    #[serde(default = "d_matches")]
    pub matches_per_order_max: u32,
}

impl Default for CapacitySection {
    fn default() -> Self {
        CapacitySection {
            orders_max: d_orders(),
            levels_per_symbol: d_levels(),
            halt_queue_max: d_halt_queue(),
            matches_per_order_max: d_matches(),
        }
    }
}

fn d_orders() -> u32 {
    1 << 20
}
fn d_levels() -> u32 {
    1 << 16
}
fn d_halt_queue() -> u32 {
    1 << 14
}
fn d_matches() -> u32 {
    1 << 12
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolSection {
    /// Ticker, up to 8 characters (ITCH/OUCH stock field).
    pub name: String,
    /// Reference price as a decimal string, e.g. "150.25" (4 decimals at most).
    pub reference_price: String,
    /// Lowest price the book can hold (default: a quarter of the reference).
    pub ladder_min_price: Option<String>,
    /// Price step, decimal (default "0.01").
    #[serde(default = "default_tick")]
    pub tick: String,
    /// Circuit-breaker bands in percent for high/mid/low tiers (default 5/10/20).
    pub bands_pct: Option<[f64; 3]>,
    #[serde(default = "default_halt_s")]
    pub halt_seconds: u64,
    #[serde(default = "default_collar_bps")]
    pub market_collar_bps: u32,
    #[serde(default)]
    pub index_weight: u32,
}

fn default_tick() -> String {
    "0.01".to_string()
}
fn default_halt_s() -> u64 {
    300
}
fn default_collar_bps() -> u32 {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmSection {
    pub name: String,
    /// SoupBinTCP login username (up to 6 characters).
    pub username: String,
    /// SoupBinTCP login password (up to 10 characters).
    pub password: String,
    /// Source addresses allowed to log in as this firm: "10.0.0.5" (any port) or "10.0.0.5:4000".
    pub allowed_sources: Vec<String>,
    /// Cash deposited at start-up, decimal currency units.
    #[serde(default)]
    pub cash: String,
    /// Shares deposited at start-up, by symbol name.
    #[serde(default)]
    pub shares: std::collections::BTreeMap<String, u32>,
    #[serde(default)]
    pub short_limit: u32,
    #[serde(default = "default_max_qty")]
    pub max_order_qty: u32,
    /// Maximum notional of one order, decimal currency units.
    #[serde(default = "default_max_notional")]
    pub max_order_notional: String,
    /// Messages per second this firm's session may send (a token bucket in sequencer time; 0: unlimited).
    /// Messages beyond it are refused with an OUCH Order Rejected (reason 0x002A), journaled like any refusal.
    /// Part of the replicated state's definition: both nodes of a pair must configure it alike.
    #[serde(default)]
    pub rate_limit_per_s: u32,
    /// Messages the bucket holds after a quiet spell (default: one second's worth, at least 1).
    #[serde(default)]
    pub rate_limit_burst: u32,
    /// Self-trade prevention, when an order would trade against a resting order of this firm: "cancel_newest"
    /// (the incoming order's remainder is canceled; the default), "cancel_oldest" (the resting order is canceled
    /// and matching goes on), "cancel_both", or "off" (the firm's orders trade with each other). Canceled orders
    /// are answered with OUCH Canceled reason 'Q' (self-match prevention). Journaled with the firm's account.
    #[serde(default)]
    pub self_trade_prevention: SelfTradePrevention,
}

/// `[[firms]] self_trade_prevention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    Off,
    #[default]
    CancelNewest,
    CancelOldest,
    CancelBoth,
}

impl SelfTradePrevention {
    pub fn engine(self) -> bourse_engine::SelfTrade {
        use bourse_engine::SelfTrade;
        match self {
            SelfTradePrevention::Off => SelfTrade::Allow,
            SelfTradePrevention::CancelNewest => SelfTrade::CancelNewest,
            SelfTradePrevention::CancelOldest => SelfTrade::CancelOldest,
            SelfTradePrevention::CancelBoth => SelfTrade::CancelBoth,
        }
    }
}

fn default_max_qty() -> u32 {
    1_000_000
}
fn default_max_notional() -> String {
    "10000000".to_string()
}

/// An allowed source: an address, with or without a fixed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedSource {
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.appliance.market_utc_offset_s(0)?;
        if self.backend.burst_max == 0 || self.backend.burst_max > 1024 {
            bail!("backend.burst_max = {} must be in 1..=1024", self.backend.burst_max);
        }
        if self.appliance.session_idle_timeout_ms < 2_000 {
            // Clients heartbeat once a second (SoupBinTCP 3.00 section 1.3): less than two of their intervals
            // would log out healthy sessions.
            bail!("appliance.session_idle_timeout_ms = {} must be at least 2000", self.appliance.session_idle_timeout_ms);
        }
        if self.backend.tx_slots < self.backend.burst_max {
            bail!("backend.tx_slots = {} must be at least burst_max", self.backend.tx_slots);
        }
        if matches!(self.backend.kind, BackendKind::AfXdp | BackendKind::Dpdk) && self.backend.interface.is_none()
        {
            bail!("backend.interface is required for backend.kind = {:?}", self.backend.kind.as_str());
        }
        let md = &self.market_data;
        if md.session.is_empty() || md.session.len() > 10 || !md.session.is_ascii() {
            bail!("market_data.session = {:?} must be 1 to 10 ASCII characters", md.session);
        }
        let multicast = md.group.ip().is_multicast();
        let set = [
            ("multicast_ttl", md.multicast_ttl != default_multicast_ttl()),
            ("multicast_interface", md.multicast_interface.is_some()),
            ("multicast_loop", md.multicast_loop.is_some()),
        ];
        if let (false, Some((key, _))) = (multicast, set.iter().find(|(_, on)| *on)) {
            bail!("market_data.{key} is set but market_data.group = {} is not a multicast group", md.group);
        }
        if md.multicast_ttl == 0 {
            bail!("market_data.multicast_ttl = 0 would never leave this host: at least 1");
        }
        let raw = matches!(self.backend.kind, BackendKind::AfXdp | BackendKind::Dpdk);
        if raw && (md.multicast_interface.is_some() || md.multicast_loop.is_some()) {
            bail!(
                "market_data.multicast_interface and multicast_loop apply to the socket and uring backends; \
                 backend.kind = {:?} sends on backend.interface and never loops back",
                self.backend.kind.as_str()
            );
        }
        if !(64..=9_000).contains(&md.payload_max_bytes) {
            bail!("market_data.payload_max_bytes = {} must be in 64..=9000", md.payload_max_bytes);
        }
        if md.retransmit_subscribers.len() > RETRANSMIT_SUBSCRIBERS_MAX {
            bail!("market_data.retransmit_subscribers: {} entries, at most {RETRANSMIT_SUBSCRIBERS_MAX}",
                md.retransmit_subscribers.len());
        }
        for s in &md.retransmit_subscribers {
            parse_source(s).context("market_data.retransmit_subscribers")?;
        }
        // 0xFFFF is End of Session in a downstream packet's count.
        if !(1..u16::MAX).contains(&md.retransmit_messages_per_request_max) {
            bail!("market_data.retransmit_messages_per_request_max = {} must be in 1..=65534",
                md.retransmit_messages_per_request_max);
        }
        if md.retransmit_requests_per_s == 0 || md.retransmit_requests_burst == 0 {
            bail!("market_data.retransmit_requests_per_s and retransmit_requests_burst must be at least 1");
        }
        // Small segments work (tests use them to exercise rotation); each rotation costs the append path a file
        // creation, so production sizes are tens of MiB.
        if self.wal.segment_bytes < 16 << 10 || !self.wal.segment_bytes.is_multiple_of(4096) {
            bail!("wal.segment_bytes = {} must be a multiple of 4096 and at least 16 KiB", self.wal.segment_bytes);
        }
        if self.symbols.is_empty() {
            bail!("no [[symbols]]: the appliance needs at least one");
        }
        if self.symbols.len() > u16::MAX as usize {
            bail!("{} symbols: at most {}", self.symbols.len(), u16::MAX);
        }
        if self.firms.len() > u16::MAX as usize {
            bail!("{} firms: at most {}", self.firms.len(), u16::MAX);
        }
        for (i, s) in self.symbols.iter().enumerate() {
            let at = |k: &str| format!("symbols[{i}] ({}).{k}", s.name);
            if s.name.is_empty() || s.name.len() > 8 || !s.name.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("{} = {:?} must be 1 to 8 printable ASCII characters", at("name"), s.name);
            }
            if self.symbols[..i].iter().any(|o| o.name == s.name) {
                bail!("{}: symbol {:?} is listed twice", at("name"), s.name);
            }
            let bands = self.bands(s).with_context(|| at("bands_pct"))?;
            let _ = bands;
            let reference = parse_price(&s.reference_price).with_context(|| at("reference_price"))?;
            let tick = parse_price(&s.tick).with_context(|| at("tick"))?;
            if tick == 0 {
                bail!("{} must be positive", at("tick"));
            }
            if reference == 0 || !reference.is_multiple_of(tick) {
                bail!("{} = {} must be positive and a multiple of tick {}", at("reference_price"), s.reference_price, s.tick);
            }
            let min = self.ladder_min(s)?;
            let top = min as u64 + tick as u64 * self.capacity.levels_per_symbol as u64;
            if (reference as u64) < min as u64 || reference as u64 >= top {
                bail!(
                    "{}: reference price {} is outside the ladder [{}, {}) (raise capacity.levels_per_symbol or set ladder_min_price)",
                    at("reference_price"), s.reference_price, fmt_price(min), fmt_price(top.min(u32::MAX as u64) as u32)
                );
            }
        }
        if let Some(w) = &self.witness {
            if self.mirror.is_none() {
                bail!("[witness] needs a [mirror] section: it arbitrates a pair");
            }
            if w.endpoints.is_empty() {
                bail!("witness.endpoints is empty");
            }
            if w.node.is_empty() || w.node == w.peer {
                bail!("witness.node ({:?}) must be non-empty and differ from witness.peer ({:?})", w.node, w.peer);
            }
        }
        if let Some(m) = &self.mirror {
            m.validate()?;
        }
        for (i, f) in self.firms.iter().enumerate() {
            let at = |k: &str| format!("firms[{i}] ({}).{k}", f.name);
            if f.username.is_empty() || f.username.len() > 6 || !f.username.is_ascii() {
                bail!("{} = {:?} must be 1 to 6 ASCII characters (SoupBinTCP)", at("username"), f.username);
            }
            if f.password.len() > 10 || !f.password.is_ascii() {
                bail!("{} must be at most 10 ASCII characters (SoupBinTCP)", at("password"));
            }
            if self.firms[..i].iter().any(|o| o.username == f.username) {
                bail!("{}: username {:?} is used twice", at("username"), f.username);
            }
            if f.allowed_sources.is_empty() {
                bail!("{} is empty: nobody could log in as this firm", at("allowed_sources"));
            }
            for src in &f.allowed_sources {
                parse_source(src).with_context(|| at("allowed_sources"))?;
            }
            if !f.cash.is_empty() {
                parse_cash(&f.cash).with_context(|| at("cash"))?;
            }
            parse_cash(&f.max_order_notional).with_context(|| at("max_order_notional"))?;
            for name in f.shares.keys() {
                if !self.symbols.iter().any(|s| &s.name == name) {
                    bail!("{}: unknown symbol {:?}", at("shares"), name);
                }
            }
        }
        Ok(())
    }

    pub fn bands(&self, s: &SymbolSection) -> anyhow::Result<Bands> {
        let mut bands = Bands::DEFAULT;
        if let Some(pct) = s.bands_pct {
            for p in pct {
                if !(0.1..=100.0).contains(&p) {
                    bail!("band {p} % must be in 0.1..=100");
                }
            }
            bands.high_bps = (pct[0] * 100.0).round() as u32;
            bands.mid_bps = (pct[1] * 100.0).round() as u32;
            bands.low_bps = (pct[2] * 100.0).round() as u32;
        }
        bands.halt_ns = s.halt_seconds.saturating_mul(1_000_000_000);
        Ok(bands)
    }

    pub fn ladder_min(&self, s: &SymbolSection) -> anyhow::Result<Price> {
        let tick = parse_price(&s.tick)?;
        let reference = parse_price(&s.reference_price)?;
        let min = match &s.ladder_min_price {
            Some(p) => parse_price(p).context("ladder_min_price")?,
            None => {
                // Half the ladder below the reference, so the bands always fit either side.
                let below = tick as u64 * (self.capacity.levels_per_symbol as u64 / 2);
                (reference as u64).saturating_sub(below) as Price
            }
        };
        Ok(min - min % tick)
    }

    pub fn engine_capacity(&self) -> Capacity {
        Capacity {
            orders_max: self.capacity.orders_max,
            symbols_max: self.symbols.len() as u16,
            accounts_max: self.firms.len().max(1) as u32,
            sessions_max: self.firms.len().max(1) as u16,
            levels_per_symbol: self.capacity.levels_per_symbol,
            halt_queue_max: self.capacity.halt_queue_max,
            matches_per_order_max: self.capacity.matches_per_order_max,
        }
    }
}

impl MirrorSection {
    fn validate(&self) -> anyhow::Result<()> {
        match self.role {
            MirrorRole::Primary if self.standby_addr.is_none() => {
                bail!("mirror.standby_addr is required for mirror.role = \"primary\"")
            }
            MirrorRole::Standby if self.listen.is_none() => {
                bail!("mirror.listen is required for mirror.role = \"standby\"")
            }
            _ => {}
        }
        if self.heartbeat_ms == 0 {
            bail!("mirror.heartbeat_ms must be at least 1");
        }
        if self.promote_after_ms <= self.heartbeat_ms {
            bail!(
                "mirror.promote_after_ms = {} must exceed mirror.heartbeat_ms = {}",
                self.promote_after_ms,
                self.heartbeat_ms
            );
        }
        if self.epoch == 0 {
            bail!("mirror.epoch must be at least 1");
        }
        Ok(())
    }

    /// The epoch this node's WAL records carry.
    pub fn wal_epoch(config: &Config) -> u32 {
        config.mirror.as_ref().map_or(1, |m| m.epoch)
    }
}

/// Firms of the demo market, in order: (name, SoupBinTCP username, password).
pub const DEMO_FIRMS: [(&str, &str, &str); 3] =
    [("alpha", "ALPHA", "alpha-pw"), ("beta", "BETA", "beta-pw"), ("gamma", "GAMMA", "gamma-pw")];

/// The market the demo, the benchmarks and the end-to-end tests trade: capacities, AAPL and MSFT, and the first
/// `firms` of [`DEMO_FIRMS`], each well funded and allowed to log in from `source`. TOML to append after the
/// sections that differ between them (appliance, backend, market data, WAL, cores, mirror).
pub fn demo_market_toml(firms: usize, source: &str) -> String {
    assert!(firms <= DEMO_FIRMS.len(), "at most {} demo firms", DEMO_FIRMS.len());
    let mut t = String::from(
        "\n[capacity]\norders_max = 262144\nlevels_per_symbol = 4096\nhalt_queue_max = 1024\nmatches_per_order_max = 1024\n\n\
         [[symbols]]\nname = \"AAPL\"\nreference_price = \"150.00\"\ntick = \"0.01\"\n\n\
         [[symbols]]\nname = \"MSFT\"\nreference_price = \"400.00\"\ntick = \"0.01\"\n",
    );
    for (name, username, password) in &DEMO_FIRMS[..firms] {
        t.push_str(&format!(
            "\n[[firms]]\nname = \"{name}\"\nusername = \"{username}\"\npassword = \"{password}\"\n\
             allowed_sources = [\"{source}\"]\ncash = \"1000000000\"\nshares = {{ AAPL = 10000000, MSFT = 10000000 }}\n"
        ));
    }
    t
}

/// Parses a decimal price ("150", "150.25", "0.0001") into ticks with 4 implied decimals.
pub fn parse_price(text: &str) -> anyhow::Result<Price> {
    let v = parse_fixed4(text)?;
    u32::try_from(v).map_err(|_| anyhow::anyhow!("price {text:?} is above the largest ITCH price 429496.7295"))
}

/// Parses a decimal cash amount into units of 1/10_000.
pub fn parse_cash(text: &str) -> anyhow::Result<i64> {
    i64::try_from(parse_fixed4(text)?).map_err(|_| anyhow::anyhow!("amount {text:?} is too large"))
}

fn parse_fixed4(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        bail!("{text:?} is not a decimal number");
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{text:?} is not a non-negative decimal number");
    }
    if frac.len() > 4 {
        bail!("{text:?} has more than 4 decimals");
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| anyhow::anyhow!("{text:?} is too large"))? };
    let mut f: u64 = if frac.is_empty() { 0 } else { frac.parse()? };
    for _ in frac.len()..4 {
        f *= 10;
    }
    int.checked_mul(10_000)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is too large"))
}

pub fn fmt_price(p: Price) -> String {
    format!("{}.{:04}", p / 10_000, p % 10_000)
}

pub fn parse_source(text: &str) -> anyhow::Result<AllowedSource> {
    if let Ok(sa) = text.parse::<SocketAddrV4>() {
        return Ok(AllowedSource { ip: *sa.ip(), port: Some(sa.port()) });
    }
    match text.parse::<Ipv4Addr>() {
        Ok(ip) => Ok(AllowedSource { ip, port: None }),
        Err(_) => bail!("{text:?} is neither an IPv4 address nor IPv4:port"),
    }
}

/// The smallest configuration that parses (one symbol, no firms), as a literal for `concat!` in tests across the
/// crate.
#[cfg(test)]
macro_rules! minimal_toml {
    () => {
        r#"
        [backend]
        kind = "socket"
        bind = "127.0.0.1:9000"
        [market_data]
        group = "127.0.0.1:9100"
        [[symbols]]
        name = "AAPL"
        reference_price = "150.00"
        "#
    };
}
#[cfg(test)]
pub(crate) use minimal_toml;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = concat!(
        minimal_toml!(),
        r#"
        [[firms]]
        name = "alpha"
        username = "ALPHA"
        password = "secret"
        allowed_sources = ["127.0.0.1"]
        cash = "1000000"
        shares = { AAPL = 1000 }
    "#
    );

    #[test]
    fn self_trade_prevention_is_chosen_per_firm_and_journaled_with_its_account() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.firms[0].self_trade_prevention, SelfTradePrevention::CancelNewest);
        let text = GOOD.replace("cash = \"1000000\"", "cash = \"1000000\"\n        self_trade_prevention = \"cancel_oldest\"");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.firms[0].self_trade_prevention, SelfTradePrevention::CancelOldest);
        let genesis = crate::appliance::setup::genesis(&c, 0).unwrap();
        assert!(
            genesis.iter().any(|g| matches!(
                g,
                bourse_engine::Command::AddAccount(a) if a.self_trade == bourse_engine::SelfTrade::CancelOldest
            )),
            "{genesis:?}"
        );
        let bad = GOOD.replace("cash = \"1000000\"", "cash = \"1000000\"\n        self_trade_prevention = \"sometimes\"");
        let err = format!("{:#}", Config::parse(&bad).unwrap_err());
        assert!(err.contains("self_trade_prevention") || err.contains("sometimes"), "{err}");
        assert!(err.contains("cancel_oldest"), "the error lists the choices: {err}");
    }

    #[test]
    fn parses_a_minimal_config_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.backend.kind, BackendKind::Socket);
        assert_eq!(c.wal.mode, WalMode::Msync);
        assert_eq!(parse_price(&c.symbols[0].reference_price).unwrap(), 1_500_000);
        let min = c.ladder_min(&c.symbols[0]).unwrap();
        assert!(min < 1_500_000 && min.is_multiple_of(100));
    }

    #[test]
    fn mirror_section_defaults() {
        let c = Config::parse(&format!("{GOOD}\n[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:9300\"\n")).unwrap();
        let m = c.mirror.as_ref().unwrap();
        assert_eq!((m.role, m.ack, m.heartbeat_ms, m.promote_after_ms, m.epoch), (MirrorRole::Primary, MirrorAck::Local, 1, 5, 1));
        assert!(Config::parse(GOOD).unwrap().mirror.is_none());
    }

    #[test]
    fn witness_section_defaults_and_checks() {
        let mirror = "[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:9300\"\npromote_after_ms = 40\n";
        let witness = "[witness]\nendpoints = [\"127.0.0.1:2379\"]\nnode = \"a\"\npeer = \"b\"\n";
        let c = Config::parse(&format!("{GOOD}\n{mirror}{witness}")).unwrap();
        let w = c.witness.as_ref().unwrap();
        assert_eq!((w.key().as_str(), w.timeout_ms), ("/bourse/partition/0", 200));
        assert_eq!(w.standby_lost_after(c.mirror.as_ref().unwrap()), std::time::Duration::from_millis(40));
        assert!(Config::parse(GOOD).unwrap().witness.is_none(), "no witness unless configured: the pair decides alone");
        let err = Config::parse(&format!("{GOOD}\n{witness}")).unwrap_err().to_string();
        assert!(err.contains("needs a [mirror]"), "{err}");
        let same = witness.replace("peer = \"b\"", "peer = \"a\"");
        let err = Config::parse(&format!("{GOOD}\n{mirror}{same}")).unwrap_err().to_string();
        assert!(err.contains("must be non-empty and differ"), "{err}");
    }

    #[test]
    fn retransmission_answers_nobody_by_default() {
        let c = Config::parse(GOOD).unwrap();
        let md = &c.market_data;
        assert!(md.retransmit_subscribers.is_empty() && md.subscribers().is_empty());
        assert_eq!((md.retransmit_messages_per_request_max, md.retransmit_requests_per_s), (256, 1_000));
        let c = Config::parse(&with_md(r#"retransmit_subscribers = ["10.0.0.7", "10.0.0.8:9101"]"#)).unwrap();
        let subs = c.market_data.subscribers();
        let want = [
            AllowedSource { ip: Ipv4Addr::new(10, 0, 0, 7), port: None },
            AllowedSource { ip: Ipv4Addr::new(10, 0, 0, 8), port: Some(9101) },
        ];
        assert_eq!(subs, want);
    }

    /// GOOD with `line` added to `[market_data]`.
    fn with_md(line: &str) -> String {
        GOOD.replace("group = \"127.0.0.1:9100\"", &format!("group = \"127.0.0.1:9100\"\n{line}"))
    }

    /// A multicast feed takes its TTL, interface and loop options, and the socket backends get them as
    /// `IP_MULTICAST_TTL`, `IP_MULTICAST_IF` and `IP_MULTICAST_LOOP`; the raw backends get the TTL.
    #[test]
    fn a_multicast_group_takes_its_socket_options() {
        let text = GOOD.replace(
            "group = \"127.0.0.1:9100\"",
            "group = \"239.1.2.3:9100\"\nmulticast_ttl = 4\nmulticast_interface = \"10.0.0.1\"\nmulticast_loop = false",
        );
        let c = Config::parse(&text).unwrap();
        let o = crate::appliance::setup::socket_options(&c);
        assert_eq!((o.multicast_ttl, o.multicast_if, o.multicast_loop), (Some(4), Some(Ipv4Addr::new(10, 0, 0, 1)), Some(false)));
        assert_eq!(crate::appliance::setup::backend_config(&c).multicast_ttl, 4);
        let unicast = crate::appliance::setup::socket_options(&Config::parse(GOOD).unwrap());
        assert_eq!((unicast.multicast_ttl, unicast.multicast_if, unicast.multicast_loop), (None, None, None));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_price("150.25").unwrap(), 1_502_500);
        assert_eq!(parse_price("0.0001").unwrap(), 1);
        assert_eq!(parse_price("7").unwrap(), 70_000);
        assert!(parse_price("1.00001").is_err());
        assert!(parse_price("-1").is_err());
        assert!(parse_price("429497").is_err());
        assert!(parse_price("").is_err());
        assert_eq!(parse_cash("1000000").unwrap(), 10_000_000_000);
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            (GOOD.replace("\"socket\"", "\"carrier-pigeon\""), "kind"),
            (format!("[appliance]\nmarket_time_zone = \"Mars/Olympus_Mons\"\n{GOOD}"), "market_time_zone"),
            (with_md("multicast_ttl = 4"), "multicast_ttl"),
            (with_md("multicast_interface = \"10.0.0.1\""), "multicast_interface"),
            (GOOD.replace("150.00", "150.001"), "reference_price"),
            (GOOD.replace("\"ALPHA\"", "\"TOOLONGNAME\""), "username"),
            (GOOD.replace("[\"127.0.0.1\"]", "[\"localhost\"]"), "allowed_sources"),
            (GOOD.replace("AAPL = 1000", "MSFT = 1000"), "shares"),
            (GOOD.replace("kind = \"socket\"", "kind = \"af_xdp\""), "interface"),
            (with_md(r#"retransmit_subscribers = ["example.com"]"#), "retransmit_subscribers"),
            (with_md("retransmit_messages_per_request_max = 0"), "retransmit_messages_per_request_max"),
            (with_md("retransmit_requests_per_s = 0"), "retransmit_requests_per_s"),
            (GOOD.replace("name = \"AAPL\"", "name = \"AAPL\"\nsurprise = 1"), "surprise"),
            (format!("{GOOD}\n[mirror]\nrole = \"primary\"\n"), "standby_addr"),
            (format!("{GOOD}\n[mirror]\nrole = \"standby\"\n"), "listen"),
            (format!("{GOOD}\n[mirror]\nrole = \"standby\"\nlisten = \"127.0.0.1:1\"\npromote_after_ms = 1\n"), "promote_after_ms"),
            (format!("{GOOD}\n[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:1\"\nack = \"maybe\"\n"), "ack"),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(err.contains(key), "error for {key}: {err}");
        }
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bourse.example.toml");
        super::Config::load(&path).unwrap();
    }

    /// The commented dpdk example, uncommented in place of the socket backend, parses and names the port its
    /// `--vdev` creates (a kernel interface name there fails at start with the list of DPDK ports).
    #[test]
    fn the_example_dpdk_settings_are_consistent() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bourse.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // Swap the socket backend for the commented dpdk lines (the ones after `# kind = "dpdk"`).
        let dpdk_at = text.lines().position(|l| l.starts_with("# kind = \"dpdk\"")).expect("a commented dpdk example");
        let lines: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.starts_with("kind = \"socket\""))
            .map(|(i, l)| if (dpdk_at..dpdk_at + 3).contains(&i) { l.trim_start_matches("# ") } else { l })
            .collect();
        let c = super::Config::parse(&lines.join("\n")).unwrap();
        assert_eq!(c.backend.kind, super::BackendKind::Dpdk);
        let port = c.backend.interface.as_deref().unwrap();
        assert!(c.backend.eal_args.iter().any(|a| a.starts_with(&format!("--vdev={port},"))), "{c:?}");
    }
}
