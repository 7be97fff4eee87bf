//! The stats block: the appliance's live counters in a fixed-layout shared-memory file that `bourse stats`, the
//! metrics endpoint and tests read while the appliance runs.
//!
//! The block is one `#[repr(C)]` struct of `AtomicU64`s mapped from `/dev/shm/bourse-stats-<name>`. Every field
//! has exactly one writer thread (the pipeline core for traffic counters, the aux core for latencies, commit backlog and
//! the heartbeat), so updates are a relaxed load and store — plain `mov`s, no locked instruction, no lock — and
//! readers see each counter whole because each is one aligned atomic word.
//!
//! The text fields (backend name, drop and reject reason names) span several words, so they are guarded by a
//! seqlock: the writer makes `text_seq` odd, writes the words, and makes it even again; a reader retries when it
//! saw an odd or changed sequence.
//!
//! ```text
//!  word  0 magic "BRSSTAT1"         1 layout version     2 size in bytes      3 writer pid
//!        4 heartbeat (CLOCK_MONOTONIC ns)                 5 rx  6 tx  7 orders resting
//!        8 commit backlog (inputs)    9 commit seq        10 WAL mode code
//!       11 drops[16]  27 rejects[32]  59 stage quantiles[6][3]  77 stage count[6]  83 stage sum ns[6]
//!       89 text seq   90 backend name (32 bytes)  94 drop names[16] (24 bytes each)  142 reject names[32]
//!      238 counters[32] (layout 2: one per entry of COUNTERS, the rest reserved)
//!      270 stage interval count[6]  276 stage buckets[6][25] (layout 3)
//!      426 counters[32..64] (layout 4: counter slots past the first 32)
//! ```
//!
//! **Stage latencies.** Two views of each [`Span`], both over wire inputs only. The quantiles and the interval
//! count describe the last exported interval (what `bourse stats` shows as "now"). The count, the sum and the
//! buckets are cumulative since the writer created the block and never decrease, so the metrics endpoint can
//! serve them as a Prometheus histogram that `rate()` and `histogram_quantile()` read correctly: bucket `i`
//! counts the values at most [`STAGE_BUCKETS_LE_NS`]`[i]`, judged by each value's HdrHistogram bucket (its
//! lowest equivalent value), so a value within the histogram's 0.1 % resolution above a bound may count in it.
//!
//! **Compatibility.** Layout changes only append words (or take a reserved counter slot) and bump the layout
//! version; readers refuse any version but their own, with an error naming both, so a stale `bourse stats` never
//! shows a counter under another counter's name. The counters' names and help texts are this file's
//! [`COUNTERS`] table, not block contents: slot `i` means `COUNTERS[i]` for as long as the version stays.
//!
//! The magic is stored last, with Release, when the writer creates the block, so a reader that sees it (Acquire)
//! sees an initialised block. Readers map the block read-only, where Rust promises only relaxed atomic loads
//! (core::sync::atomic, "Atomic accesses to read-only memory"), so every load here is relaxed and an acquire is
//! a relaxed load followed by an acquire fence.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::stages::{Span, SPAN_COUNT};
use super::sys::Mapping;
use super::tsc::monotonic_ns;

pub const STATS_MAGIC: u64 = u64::from_le_bytes(*b"BRSSTAT1");
pub const STATS_LAYOUT_VERSION: u64 = 4;
pub const DROP_REASONS_MAX: usize = 16;
pub const REJECT_REASONS_MAX: usize = 32;
pub const REASON_NAME_BYTES: usize = 24;
pub const BACKEND_NAME_BYTES: usize = 32;
/// The recent quantiles kept per stage span, with their percentile labels: p50, p99, p99.9.
pub const STAGE_QUANTILES: [(f64, &str); 3] = [(0.5, "50"), (0.99, "99"), (0.999, "99.9")];
const QUANTILES_COUNT: usize = STAGE_QUANTILES.len();
const REASON_NAME_WORDS: usize = REASON_NAME_BYTES / 8;
const BACKEND_NAME_WORDS: usize = BACKEND_NAME_BYTES / 8;
/// Upper bounds (`le`) of the cumulative stage-latency buckets, in nanoseconds: 1-2.5-5 steps from 100 ns to
/// 10 s, the range of the stage histograms (larger values saturate at 10 s). `+Inf` is the count.
pub const STAGE_BUCKETS_LE_NS: [u64; STAGE_BUCKETS] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
pub const STAGE_BUCKETS: usize = 25;
/// Counter slots in the block: the first [`COUNTERS_FIRST`] at word 238 (layout 2), the rest appended at the end
/// (layout 4); [`COUNTERS`] uses the first ones.
pub const COUNTERS_MAX: usize = 64;
const COUNTERS_FIRST: usize = 32;

/// Counters beyond rx/tx and the reason tables: every loss or refusal that is not a drop or reject reason. Each
/// is exported as the Prometheus counter `bourse_<name>_total` and shown by `bourse stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    KernelDrops,
    NicDrops,
    Oversized,
    BackendMalformed,
    BackendDropped,
    TxRefused,
    Duplicates,
    DuplicatesAnswered,
    IdleLogouts,
    LoginWindowMisses,
    ReplyOverflows,
    BackpressurePolls,
    GatewayRefusals,
    RateLimited,
    LoginReplays,
    RetransmitAnswered,
    RetransmitNotSubscriber,
    RetransmitRateLimited,
    RetransmitRefused,
    InlineRotations,
    MarketDataOverflows,
    IgnoredUnknownOrder,
    IgnoredNotReduced,
    IgnoredSideChange,
    LoginRejectedNotAuthorized,
    LoginRejectedSessionUnavailable,
    LoginRejectsSilent,
    ServerHeartbeats,
    WitnessAlone,
    WitnessCasWon,
    WitnessReplaced,
    WitnessUnreachable,
    SnapshotsTaken,
    SnapshotsFailed,
    SnapshotsSkipped,
    SnapshotsShort,
    OrderRefsUnmapped,
    TxUnresolved,
    IgnoredNotIncreasing,
}

/// Entries of [`COUNTERS`] the primary's aux thread sets from its witness agent (the `Witness*` ones); the pipeline's
/// exporter sets all the others.
pub const WITNESS_COUNTERS: usize = 4;

/// `(counter, name, help)` in slot order: `COUNTERS[i].0 as usize == i`.
pub const COUNTERS: [(Counter, &str, &str); 39] = [
    (
        Counter::KernelDrops,
        "kernel_drops",
        "Datagrams the kernel dropped for the appliance's socket before it read them (receive buffer or AF_XDP \
         ring full).",
    ),
    (Counter::NicDrops, "nic_drops", "Frames the NIC or its driver dropped (DPDK: imissed + rx_nombuf)."),
    (Counter::Oversized, "oversized", "Datagrams longer than the payload limit, dropped unprocessed."),
    (Counter::BackendMalformed, "backend_malformed", "Frames that failed length or checksum validation."),
    (
        Counter::BackendDropped,
        "backend_dropped",
        "Frames not for the appliance (other protocols, ports, addresses) and transmits that failed (those to an \
         unresolved destination are tx_unresolved).",
    ),
    (
        Counter::TxRefused,
        "tx_refused",
        "Transmits refused for lack of a free slot (the output stays queued and is retried).",
    ),
    (Counter::Duplicates, "duplicates", "Orders with a UserRefNum already used, never executed again."),
    (Counter::DuplicatesAnswered, "duplicates_answered", "Duplicate orders answered with their original reply."),
    (Counter::IdleLogouts, "idle_logouts", "Sessions logged out after the idle timeout."),
    (
        Counter::LoginWindowMisses,
        "login_window_misses",
        "Logins asking for replies older than those kept (resumed from the oldest kept).",
    ),
    (
        Counter::ReplyOverflows,
        "reply_overflows",
        "Replies not sent live for lack of output room (kept; the firm can re-request them).",
    ),
    (
        Counter::BackpressurePolls,
        "backpressure_polls",
        "Polls that took no input because the output queues were low on room.",
    ),
    (
        Counter::GatewayRefusals,
        "gateway_refusals",
        "OUCH messages refused before the engine (also in bourse_rejects_total by reason).",
    ),
    (
        Counter::RateLimited,
        "rate_limited",
        "OUCH messages refused by their session's rate limit (also in bourse_rejects_total as rate_limited).",
    ),
    (Counter::LoginReplays, "login_replays", "Replies resent to firms at login, from the sequence they asked for."),
    (Counter::RetransmitAnswered, "retransmit_answered", "Market-data retransmission requests answered."),
    (
        Counter::RetransmitNotSubscriber,
        "retransmit_not_subscriber",
        "Market-data retransmission requests from addresses that are not configured subscribers (ignored).",
    ),
    (
        Counter::RetransmitRateLimited,
        "retransmit_rate_limited",
        "Market-data retransmission requests beyond their subscriber's rate (ignored).",
    ),
    (
        Counter::RetransmitRefused,
        "retransmit_refused",
        "Market-data retransmission requests malformed, for another session, out of range, or not sendable.",
    ),
    (
        Counter::InlineRotations,
        "wal_inline_rotations",
        "Journal rotations that found no prepared segment and created one on the pipeline thread (file I/O there).",
    ),
    (
        Counter::MarketDataOverflows,
        "market_data_overflows",
        "Market-data datagrams not sent live for lack of queue room (kept; receivers recover them by request).",
    ),
    (
        Counter::IgnoredUnknownOrder,
        "ignored_unknown_order",
        "Cancels, replaces and modifies of orders not open, ignored without a reply (OUCH 5.0 sections 2.2-2.4).",
    ),
    (
        Counter::IgnoredNotReduced,
        "ignored_not_reduced",
        "Cancels that would not reduce their order and modifies asking for more shares, ignored without a reply \
         (OUCH 5.0 sections 2.3-2.4).",
    ),
    (
        Counter::IgnoredSideChange,
        "ignored_side_change",
        "Modifies asking to turn a buy into a sell or a sell into a buy (OUCH 5.0 section 2.4 allows only changes \
         among the sell markings), ignored without a reply.",
    ),
    (
        Counter::LoginRejectedNotAuthorized,
        "login_rejected_not_authorized",
        "Failed logins answered with SoupBinTCP Login Rejected 'A' (unknown user, wrong password, source not \
         allowed; each also in bourse_drops_total by reason).",
    ),
    (
        Counter::LoginRejectedSessionUnavailable,
        "login_rejected_session_unavailable",
        "Failed logins answered with SoupBinTCP Login Rejected 'S' (no such session, session in use; each also in \
         bourse_drops_total by reason).",
    ),
    (
        Counter::LoginRejectsSilent,
        "login_rejects_silent",
        "Failed logins from addresses in no firm's allowed_sources, not answered (appliance.silent_to_unlisted_sources).",
    ),
    (Counter::ServerHeartbeats, "server_heartbeats", "SoupBinTCP Server Heartbeats sent to idle sessions."),
    (
        Counter::WitnessAlone,
        "witness_alone",
        "1 while this primary acknowledges alone on local durability: the witness removed its lost standby from the \
         members.",
    ),
    (Counter::WitnessCasWon, "witness_cas_won", "Membership changes this primary won at the witness."),
    (
        Counter::WitnessReplaced,
        "witness_replaced",
        "1 once the witness named a newer epoch or another primary: this node acknowledges nothing more.",
    ),
    (
        Counter::WitnessUnreachable,
        "witness_unreachable",
        "Witness requests that got no answer (each retried; the pair holds releases meanwhile).",
    ),
    (Counter::SnapshotsTaken, "snapshots_taken", "Snapshots written, read back and verified to restore to their state."),
    (
        Counter::SnapshotsFailed,
        "snapshots_failed",
        "Snapshot attempts that failed, a written snapshot not restoring to its state among them (retried).",
    ),
    (
        Counter::SnapshotsSkipped,
        "snapshots_skipped",
        "Snapshot files the snapshotter's recovery could not restore and passed over for an older one.",
    ),
    (
        Counter::SnapshotsShort,
        "snapshots_short",
        "Snapshots taken at less than the committed seq asked for (the newest segment not yet under its name).",
    ),
    (
        Counter::OrderRefsUnmapped,
        "order_refs_unmapped",
        "Engine order references met with no day-unique Order Reference Number (a defect; each got a fresh one).",
    ),
    (
        Counter::TxUnresolved,
        "tx_unresolved",
        "Outputs not sent because the destination's MAC was not known yet (raw backends, which then ask by ARP; \
         replies are resent at the firm's next login).",
    ),
    (
        Counter::IgnoredNotIncreasing,
        "ignored_not_increasing",
        "Mass cancels and order-entry switches journaled with a UserRefNum their session had used, ignored without \
         a reply (the gateway answers repeats from their first reply before journaling, so this counts inputs \
         from elsewhere).",
    ),
];

const _: () = {
    assert!(COUNTERS.len() <= COUNTERS_MAX);
    let mut i = 0;
    while i < COUNTERS.len() {
        assert!(COUNTERS[i].0 as usize == i, "COUNTERS is in slot order");
        i += 1;
    }
};

/// The directory of the block files: tmpfs, so the block is memory and never written back to a disk.
pub const STATS_DIR: &str = "/dev/shm";

/// WAL durability modes, as the codes stored in the block.
pub const WAL_MODE_NAMES: [&str; 4] = ["unknown", "dax", "msync", "none"];

/// The shared layout. Read it through [`StatsBlock::snapshot`] or the getters; write it through [`StatsWriter`].
#[repr(C)]
#[derive(Default)]
pub struct StatsBlock {
    magic: AtomicU64,
    layout_version: AtomicU64,
    size_bytes: AtomicU64,
    writer_pid: AtomicU64,
    heartbeat_ns: AtomicU64,
    rx_total: AtomicU64,
    tx_total: AtomicU64,
    orders_resting: AtomicU64,
    commit_backlog: AtomicU64,
    commit_seq: AtomicU64,
    wal_mode: AtomicU64,
    drops: [AtomicU64; DROP_REASONS_MAX],
    rejects: [AtomicU64; REJECT_REASONS_MAX],
    stage_ns: [[AtomicU64; QUANTILES_COUNT]; SPAN_COUNT],
    stage_count: [AtomicU64; SPAN_COUNT],
    stage_sum_ns: [AtomicU64; SPAN_COUNT],
    text_seq: AtomicU64,
    backend_name: [AtomicU64; BACKEND_NAME_WORDS],
    drop_names: [[AtomicU64; REASON_NAME_WORDS]; DROP_REASONS_MAX],
    reject_names: [[AtomicU64; REASON_NAME_WORDS]; REJECT_REASONS_MAX],
    counters: [AtomicU64; COUNTERS_FIRST],
    stage_interval_count: [AtomicU64; SPAN_COUNT],
    stage_buckets: [[AtomicU64; STAGE_BUCKETS]; SPAN_COUNT],
    counters_more: [AtomicU64; COUNTERS_MAX - COUNTERS_FIRST],
}

const _: () = assert!(REASON_NAME_BYTES.is_multiple_of(8) && BACKEND_NAME_BYTES.is_multiple_of(8));
const _: () = assert!(std::mem::offset_of!(StatsBlock, counters) == 238 * 8, "layout 1 is a prefix of layout 2");
const _: () = assert!(
    std::mem::offset_of!(StatsBlock, stage_interval_count) == (238 + COUNTERS_FIRST) * 8,
    "layout 2 is a prefix of layout 3"
);
const _: () = assert!(
    std::mem::offset_of!(StatsBlock, counters_more) == (238 + COUNTERS_FIRST + SPAN_COUNT * (1 + STAGE_BUCKETS)) * 8,
    "layout 3 is a prefix of layout 4"
);
const _: () = assert!(
    std::mem::size_of::<StatsBlock>() == (238 + COUNTERS_MAX + SPAN_COUNT * (1 + STAGE_BUCKETS)) * 8
);
const _: () = assert!(
    std::mem::size_of::<StatsBlock>() <= 4096,
    "the block fits one page"
);

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("stats block name {0:?}: use 1–64 characters from [A-Za-z0-9_-]")]
    BadName(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {size_bytes} bytes is smaller than a stats block ({expected_bytes} bytes)")]
    TooSmall {
        path: PathBuf,
        size_bytes: u64,
        expected_bytes: u64,
    },
    #[error("{path}: not a bourse stats block (magic {magic:#018x}); is the appliance starting?")]
    BadMagic { path: PathBuf, magic: u64 },
    #[error("{path}: stats block layout {found}, this build reads layout {expected}")]
    Version {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// The file of the block called `name`.
pub fn stats_path(name: &str) -> Result<PathBuf, StatsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(StatsError::BadName(name.to_string()));
    }
    Ok(Path::new(STATS_DIR).join(format!("bourse-stats-{name}")))
}

/// Text fields copied out under the seqlock, on the stack.
#[derive(Clone, Copy)]
pub struct TextFields {
    pub backend_name: [u8; BACKEND_NAME_BYTES],
    pub drop_names: [[u8; REASON_NAME_BYTES]; DROP_REASONS_MAX],
    pub reject_names: [[u8; REASON_NAME_BYTES]; REJECT_REASONS_MAX],
}

/// The bytes of a fixed-size, zero-padded name up to the first zero, or "" if they are not UTF-8.
pub fn name_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or("")
}

fn load_words<const N: usize>(words: &[AtomicU64], out: &mut [u8; N]) {
    for (i, w) in words.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
}

fn store_words(words: &[AtomicU64], text: &str) {
    let bytes = text.as_bytes();
    for (i, w) in words.iter().enumerate() {
        let mut chunk = [0u8; 8];
        for (j, c) in chunk.iter_mut().enumerate() {
            // Truncation at the field width is deliberate: names are labels, not data.
            *c = bytes.get(i * 8 + j).copied().unwrap_or(0);
        }
        w.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
    }
}

/// One reason counter with its name, as read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// One of [`COUNTERS`], as read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NamedCount {
    pub name: &'static str,
    pub count: u64,
}

/// Latency of one stage span, as read: totals since start, quantiles of the last interval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StageLatency {
    pub stage: &'static str,
    /// Samples since the writer started.
    pub count: u64,
    /// Their exact sum.
    pub sum_ns: u64,
    /// Samples in the last exported interval, which the quantiles below describe.
    pub interval_count: u64,
    /// Cumulative counts at or below each of [`STAGE_BUCKETS_LE_NS`], since the writer started.
    pub buckets: Vec<u64>,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

/// Everything in the block, copied out (allocates; for tools, not for the appliance).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub writer_pid: u64,
    pub heartbeat_ns: u64,
    pub rx_total: u64,
    pub tx_total: u64,
    pub orders_resting: u64,
    pub commit_backlog: u64,
    pub commit_seq: u64,
    pub wal_mode: String,
    pub backend: String,
    pub drops: Vec<ReasonCount>,
    pub rejects: Vec<ReasonCount>,
    pub counters: Vec<NamedCount>,
    pub stages: Vec<StageLatency>,
}

impl StatsBlock {
    pub fn magic(&self) -> u64 {
        let magic = self.magic.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        magic
    }
    pub fn writer_pid(&self) -> u64 {
        self.writer_pid.load(Ordering::Relaxed)
    }
    /// The writer's last heartbeat, CLOCK_MONOTONIC nanoseconds (comparable across processes of one host).
    pub fn heartbeat_ns(&self) -> u64 {
        self.heartbeat_ns.load(Ordering::Relaxed)
    }
    pub fn rx_total(&self) -> u64 {
        self.rx_total.load(Ordering::Relaxed)
    }
    pub fn tx_total(&self) -> u64 {
        self.tx_total.load(Ordering::Relaxed)
    }
    pub fn orders_resting(&self) -> u64 {
        self.orders_resting.load(Ordering::Relaxed)
    }
    pub fn commit_backlog(&self) -> u64 {
        self.commit_backlog.load(Ordering::Relaxed)
    }
    pub fn commit_seq(&self) -> u64 {
        self.commit_seq.load(Ordering::Relaxed)
    }
    pub fn wal_mode_code(&self) -> u64 {
        self.wal_mode.load(Ordering::Relaxed)
    }
    pub fn wal_mode_name(&self) -> &'static str {
        WAL_MODE_NAMES
            .get(self.wal_mode_code() as usize)
            .copied()
            .unwrap_or("unknown")
    }
    pub fn drops(&self, reason: usize) -> u64 {
        self.drops
            .get(reason)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    pub fn rejects(&self, reason: usize) -> u64 {
        self.rejects
            .get(reason)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    pub fn counter(&self, c: Counter) -> u64 {
        self.counter_slot(c).load(Ordering::Relaxed)
    }
    /// The word of counter `c`: its slot in the first array, or past it in the appended one.
    #[inline(always)]
    fn counter_slot(&self, c: Counter) -> &AtomicU64 {
        let i = c as usize;
        if i < COUNTERS_FIRST {
            &self.counters[i]
        } else {
            &self.counters_more[i - COUNTERS_FIRST]
        }
    }
    /// Samples of `span` in the last exported interval (which the quantiles describe).
    pub fn stage_interval_count(&self, span: Span) -> u64 {
        self.stage_interval_count[span as usize].load(Ordering::Relaxed)
    }
    /// Cumulative counts of `span` at or below each of [`STAGE_BUCKETS_LE_NS`], since the writer started.
    pub fn stage_buckets(&self, span: Span) -> [u64; STAGE_BUCKETS] {
        let b = &self.stage_buckets[span as usize];
        std::array::from_fn(|i| b[i].load(Ordering::Relaxed))
    }
    /// `[p50, p99, p99.9]` of the last exported interval of `span`, in nanoseconds.
    pub fn stage_quantiles_ns(&self, span: Span) -> [u64; QUANTILES_COUNT] {
        let q = &self.stage_ns[span as usize];
        [
            q[0].load(Ordering::Relaxed),
            q[1].load(Ordering::Relaxed),
            q[2].load(Ordering::Relaxed),
        ]
    }
    /// Count and sum (ns) of `span` since the writer started: they never decrease.
    pub fn stage_count_sum(&self, span: Span) -> (u64, u64) {
        (
            self.stage_count[span as usize].load(Ordering::Relaxed),
            self.stage_sum_ns[span as usize].load(Ordering::Relaxed),
        )
    }

    /// Copies the text fields out consistently (retrying while the writer is changing them). Never allocates.
    pub fn text_fields(&self) -> TextFields {
        let mut t = TextFields {
            backend_name: [0; BACKEND_NAME_BYTES],
            drop_names: [[0; REASON_NAME_BYTES]; DROP_REASONS_MAX],
            reject_names: [[0; REASON_NAME_BYTES]; REJECT_REASONS_MAX],
        };
        loop {
            // Acquire (the fence): the words read below are at least as new as the writer's last completed update.
            let before = self.text_seq.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            load_words(&self.backend_name, &mut t.backend_name);
            for (words, out) in self.drop_names.iter().zip(t.drop_names.iter_mut()) {
                load_words(words, out);
            }
            for (words, out) in self.reject_names.iter().zip(t.reject_names.iter_mut()) {
                load_words(words, out);
            }
            // Acquire fence: the relaxed word loads above cannot move below the re-check of the sequence.
            fence(Ordering::Acquire);
            if self.text_seq.load(Ordering::Relaxed) == before {
                return t;
            }
        }
    }

    /// Copies everything out. Reasons are listed when named or non-zero; unnamed ones as `reason_<index>`.
    pub fn snapshot(&self) -> StatsSnapshot {
        let text = self.text_fields();
        let reasons =
            |counters: &[AtomicU64], names: &[[u8; REASON_NAME_BYTES]]| -> Vec<ReasonCount> {
                counters
                    .iter()
                    .zip(names)
                    .enumerate()
                    .filter_map(|(i, (c, n))| {
                        let count = c.load(Ordering::Relaxed);
                        let name = name_str(n);
                        if name.is_empty() && count == 0 {
                            return None;
                        }
                        let reason = if name.is_empty() {
                            format!("reason_{i}")
                        } else {
                            name.to_string()
                        };
                        Some(ReasonCount { reason, count })
                    })
                    .collect()
            };
        let stages = Span::ALL
            .iter()
            .map(|&span| {
                let [p50_ns, p99_ns, p999_ns] = self.stage_quantiles_ns(span);
                let (count, sum_ns) = self.stage_count_sum(span);
                StageLatency {
                    stage: span.tag(),
                    count,
                    sum_ns,
                    interval_count: self.stage_interval_count(span),
                    buckets: self.stage_buckets(span).to_vec(),
                    p50_ns,
                    p99_ns,
                    p999_ns,
                }
            })
            .collect();
        StatsSnapshot {
            writer_pid: self.writer_pid(),
            heartbeat_ns: self.heartbeat_ns(),
            rx_total: self.rx_total(),
            tx_total: self.tx_total(),
            orders_resting: self.orders_resting(),
            commit_backlog: self.commit_backlog(),
            commit_seq: self.commit_seq(),
            wal_mode: self.wal_mode_name().to_string(),
            backend: name_str(&text.backend_name).to_string(),
            drops: reasons(&self.drops, &text.drop_names),
            rejects: reasons(&self.rejects, &text.reject_names),
            counters: COUNTERS
                .iter()
                .map(|&(c, name, _)| NamedCount { name, count: self.counter(c) })
                .collect(),
            stages,
        }
    }
}

enum Backing {
    Shared { map: Mapping, path: PathBuf },
    Heap(Box<StatsBlock>),
}

/// The appliance's handle: creates the block and updates it. Share it by reference (or `Arc`) between the
/// pipeline and aux threads; each field must have one writing thread (see the module documentation).
pub struct StatsWriter {
    backing: Backing,
}

/// Adds to a counter that only this thread writes: no locked instruction is needed.
#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl StatsWriter {
    /// Creates (or re-creates, zeroed) the block file for `name` under /dev/shm and maps it.
    pub fn create(name: &str) -> Result<StatsWriter, StatsError> {
        let path = stats_path(name)?;
        StatsWriter::create_at(&path)
    }

    /// As [`StatsWriter::create`], at an explicit path.
    ///
    /// The block is built in a new file and renamed over any old one, never truncated in place: a reader still
    /// mapping a previous run's block (the ledger, `bourse stats`) would take SIGBUS on a page past a truncated
    /// end, and would see a commit seq that does not belong to its block. It keeps the old file, whose writer is
    /// gone, and opens the new one by name.
    pub fn create_at(path: &Path) -> Result<StatsWriter, StatsError> {
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(format!(".new-{}", std::process::id()));
        let fresh = PathBuf::from(fresh);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StatsError::Io { path, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh)
            .map_err(io_err(&fresh))?;
        let size_bytes = std::mem::size_of::<StatsBlock>();
        // Extending an empty file zero-fills the block, which is its initial state.
        file.set_len(size_bytes as u64).map_err(io_err(&fresh))?;
        let map = Mapping::map(&file, size_bytes, true).map_err(io_err(&fresh))?;
        let writer = StatsWriter {
            backing: Backing::Shared {
                map,
                path: path.to_path_buf(),
            },
        };
        writer.init();
        if let Err(e) = std::fs::rename(&fresh, path) {
            let _ = std::fs::remove_file(&fresh);
            return Err(io_err(path)(e));
        }
        Ok(writer)
    }

    /// A block in this process's heap, for tests and for running without /dev/shm.
    pub fn in_memory() -> StatsWriter {
        let writer = StatsWriter {
            backing: Backing::Heap(Box::default()),
        };
        writer.init();
        writer
    }

    fn init(&self) {
        let b = self.block();
        b.layout_version
            .store(STATS_LAYOUT_VERSION, Ordering::Relaxed);
        b.size_bytes
            .store(std::mem::size_of::<StatsBlock>() as u64, Ordering::Relaxed);
        b.writer_pid
            .store(std::process::id() as u64, Ordering::Relaxed);
        b.heartbeat_ns.store(monotonic_ns(), Ordering::Relaxed);
        // Release, last: a reader that sees the magic sees the fields above.
        b.magic.store(STATS_MAGIC, Ordering::Release);
    }

    /// The block, for reading.
    pub fn block(&self) -> &StatsBlock {
        match &self.backing {
            Backing::Shared { map, .. } => map.as_ref::<StatsBlock>(),
            Backing::Heap(b) => b,
        }
    }

    /// The file backing the block, if it is shared.
    pub fn path(&self) -> Option<&Path> {
        match &self.backing {
            Backing::Shared { path, .. } => Some(path),
            Backing::Heap(_) => None,
        }
    }

    #[inline(always)]
    pub fn add_rx(&self, n: u64) {
        bump(&self.block().rx_total, n);
    }
    #[inline(always)]
    pub fn add_tx(&self, n: u64) {
        bump(&self.block().tx_total, n);
    }
    /// Counts `n` drops of reason `reason` (an index below [`DROP_REASONS_MAX`]; larger ones count in the last).
    #[inline(always)]
    pub fn add_drop(&self, reason: usize, n: u64) {
        bump(&self.block().drops[reason.min(DROP_REASONS_MAX - 1)], n);
    }
    /// Counts `n` rejects of reason `reason` (an index below [`REJECT_REASONS_MAX`]; larger ones count in the last).
    #[inline(always)]
    pub fn add_reject(&self, reason: usize, n: u64) {
        bump(&self.block().rejects[reason.min(REJECT_REASONS_MAX - 1)], n);
    }
    /// Sets a counter to its current total (each has one writing thread, which owns the running count).
    #[inline(always)]
    pub fn set_counter(&self, c: Counter, total: u64) {
        self.block().counter_slot(c).store(total, Ordering::Relaxed);
    }
    #[inline(always)]
    pub fn set_orders_resting(&self, n: u64) {
        self.block().orders_resting.store(n, Ordering::Relaxed);
    }
    /// The commit seq, and how many inputs are sequenced past it (journaled, not yet committed).
    pub fn set_commit(&self, commit_seq: u64, commit_backlog: u64) {
        let b = self.block();
        b.commit_seq.store(commit_seq, Ordering::Relaxed);
        b.commit_backlog.store(commit_backlog, Ordering::Relaxed);
    }
    /// Sets the WAL mode by name (one of [`WAL_MODE_NAMES`]; others store "unknown").
    pub fn set_wal_mode(&self, mode: &str) {
        let code = WAL_MODE_NAMES.iter().position(|&m| m == mode).unwrap_or(0);
        self.block().wal_mode.store(code as u64, Ordering::Relaxed);
    }
    /// Sets one span's figures directly: the totals since start (count, sum in ns), and the last interval's
    /// sample count and `[p50, p99, p99.9]` in nanoseconds. The buckets are left alone.
    pub fn set_stage(
        &self,
        span: Span,
        count: u64,
        sum_ns: u64,
        interval_count: u64,
        quantiles_ns: [u64; QUANTILES_COUNT],
    ) {
        let b = self.block();
        for (slot, v) in b.stage_ns[span as usize].iter().zip(quantiles_ns) {
            slot.store(v, Ordering::Relaxed);
        }
        b.stage_count[span as usize].store(count, Ordering::Relaxed);
        b.stage_sum_ns[span as usize].store(sum_ns, Ordering::Relaxed);
        b.stage_interval_count[span as usize].store(interval_count, Ordering::Relaxed);
    }
    /// Publishes one exported interval (aux core, after each export): its quantiles and count replace the last
    /// interval's, and its values are added to the totals and buckets. Never allocates.
    pub fn add_stage_interval(&self, set: &super::stages::HistogramSet) {
        let b = self.block();
        for span in Span::ALL {
            let h = set.get(span);
            let mut bins = [0u64; STAGE_BUCKETS];
            for v in h.iter_recorded() {
                let low = h.lowest_equivalent(v.value_iterated_to());
                // Values above the last bound are counted only in +Inf, which is the total count.
                if let Some(i) = STAGE_BUCKETS_LE_NS.iter().position(|&le| low <= le) {
                    bins[i] += v.count_at_value();
                }
            }
            let mut below = 0;
            for (slot, n) in b.stage_buckets[span as usize].iter().zip(bins) {
                below += n;
                bump(slot, below);
            }
            let q = STAGE_QUANTILES.map(|(q, _)| h.value_at_quantile(q));
            let count = b.stage_count[span as usize].load(Ordering::Relaxed) + h.len();
            let sum_ns = b.stage_sum_ns[span as usize].load(Ordering::Relaxed).wrapping_add(set.sum_ns(span));
            self.set_stage(span, count, sum_ns, h.len(), q);
        }
    }
    /// Stores CLOCK_MONOTONIC now as the heartbeat.
    pub fn heartbeat(&self) {
        self.block()
            .heartbeat_ns
            .store(monotonic_ns(), Ordering::Relaxed);
    }

    /// Sets the text fields in one seqlock update: backend name and the reason names (truncated to their widths;
    /// reasons beyond the arrays are ignored).
    pub fn set_names(&self, backend: &str, drop_names: &[&str], reject_names: &[&str]) {
        let b = self.block();
        let seq = b.text_seq.load(Ordering::Relaxed);
        b.text_seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Release fence: a reader that sees any word written below also sees the odd sequence above.
        fence(Ordering::Release);
        store_words(&b.backend_name, backend);
        for (i, words) in b.drop_names.iter().enumerate() {
            store_words(words, drop_names.get(i).copied().unwrap_or(""));
        }
        for (i, words) in b.reject_names.iter().enumerate() {
            store_words(words, reject_names.get(i).copied().unwrap_or(""));
        }
        // Release: the words above are visible to a reader that sees the even sequence.
        b.text_seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

/// A read-only mapping of a block another process writes.
pub struct StatsReader {
    map: Mapping,
    path: PathBuf,
}

impl StatsReader {
    pub fn open(name: &str) -> Result<StatsReader, StatsError> {
        StatsReader::open_at(&stats_path(name)?)
    }

    pub fn open_at(path: &Path) -> Result<StatsReader, StatsError> {
        let io_err = |source| StatsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let size_bytes = file.metadata().map_err(io_err)?.len();
        let expected_bytes = std::mem::size_of::<StatsBlock>() as u64;
        if size_bytes < expected_bytes {
            return Err(StatsError::TooSmall {
                path: path.to_path_buf(),
                size_bytes,
                expected_bytes,
            });
        }
        let map = Mapping::map(&file, expected_bytes as usize, false).map_err(io_err)?;
        let reader = StatsReader {
            map,
            path: path.to_path_buf(),
        };
        let block = reader.block();
        let magic = block.magic();
        if magic != STATS_MAGIC {
            return Err(StatsError::BadMagic {
                path: path.to_path_buf(),
                magic,
            });
        }
        let found = block.layout_version.load(Ordering::Relaxed);
        if found != STATS_LAYOUT_VERSION {
            return Err(StatsError::Version {
                path: path.to_path_buf(),
                found,
                expected: STATS_LAYOUT_VERSION,
            });
        }
        Ok(reader)
    }

    /// The block; only its reading methods exist, so nothing can write through the read-only mapping.
    pub fn block(&self) -> &StatsBlock {
        self.map.as_ref::<StatsBlock>()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
