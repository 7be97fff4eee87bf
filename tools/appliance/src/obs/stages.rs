//! Per-stage latency histograms of one pipeline core, double-buffered between the pipeline and the aux core.
//!
//! The pipeline stamps each input at six points ([`Stage`]) and, once the input has left, records the five
//! consecutive differences plus the wire-to-wire total ([`Span`]) into preallocated HdrHistograms. Recording never
//! allocates: the histograms are sized once, with fixed bounds, and out-of-range values saturate.
//!
//! # The swap
//!
//! Two [`HistogramSet`]s exist per core. The pipeline owns the *active* one outright (a `Box` inside its
//! [`StageRecorder`]); the aux core owns the other (its [`StageExporter`]'s spare). Ownership crosses between the
//! cores through two single-slot mailboxes, `AtomicCell<Option<Box<HistogramSet>>>`, which are one pointer wide and
//! therefore plain lock-free atomics (asserted at start-up):
//!
//! ```text
//!   aux core                                   pipeline core (once per burst)
//!   ────────                                   ──────────────────────────────
//!   spare.reset()
//!   fresh.store(Some(spare))      ─────────▶   if requested.load(Relaxed) {
//!   requested.store(true, Release)                 requested.store(false, Relaxed)
//!                                                  let f = fresh.take()          // swap, AcqRel
//!                                                  full = replace(active, f)
//!   full.take() → export, becomes  ◀─────────      full_mailbox.swap(Some(full))  // swap, AcqRel
//!   the next spare                             }
//! ```
//!
//! The orderings: the boxes' contents are published by the mailboxes themselves. `AtomicCell` stores with Release
//! and takes with an acquiring swap, so every write the aux core made to the reset set happens-before the
//! pipeline's first record into it, and every record the pipeline made happens-before the aux core's export. The
//! `requested` flag only spares the pipeline a locked swap on every burst: its load is Relaxed (a plain `mov` on
//! x86) because a stale `false` merely delays the swap to the next burst, and a `true` seen early is harmless since
//! the take that follows is itself acquiring; the aux core stores it with Release after filling the mailbox so the
//! flag is never seen before the set it announces. The pipeline clears the flag Relaxed; the aux core does not
//! request again until it has collected the full set, so the two never race on it.
//!
//! The aux core keeps at most one request outstanding, so the pipeline always finds the `full` mailbox empty; a
//! full one would be a protocol error and asserts (dropping it would free memory on the pipeline core).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_utils::atomic::AtomicCell;
use hdrhistogram::Histogram;

use super::tsc::Clock;

/// The points of the pipeline where an input is stamped, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// The rx burst that carried the input returned.
    Rx = 0,
    /// Eth/IPv4/UDP/session/OUCH decoding is done.
    Decoded = 1,
    /// The input's WAL record is appended and its cache line flushed.
    Journaled = 2,
    /// The engine has applied it.
    Matched = 3,
    /// The commit index passed its sequence number (its replies may leave).
    Committed = 4,
    /// The tx burst carrying its replies returned.
    Tx = 5,
}

pub const STAGE_COUNT: usize = 6;

/// A latency measured between two stages; each is one histogram and one `.hlog` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Span {
    RxDecoded = 0,
    DecodedJournaled = 1,
    JournaledMatched = 2,
    MatchedCommitted = 3,
    CommittedTx = 4,
    /// Wire to wire: rx to tx.
    RxTx = 5,
}

pub const SPAN_COUNT: usize = 6;

impl Span {
    pub const ALL: [Span; SPAN_COUNT] = [
        Span::RxDecoded,
        Span::DecodedJournaled,
        Span::JournaledMatched,
        Span::MatchedCommitted,
        Span::CommittedTx,
        Span::RxTx,
    ];

    /// The `.hlog` tag and metrics label (no commas or spaces, as the log format requires).
    pub fn tag(self) -> &'static str {
        match self {
            Span::RxDecoded => "rx_decoded",
            Span::DecodedJournaled => "decoded_journaled",
            Span::JournaledMatched => "journaled_matched",
            Span::MatchedCommitted => "matched_committed",
            Span::CommittedTx => "committed_tx",
            Span::RxTx => "rx_tx",
        }
    }

    /// The stages the span runs from and to.
    pub fn bounds(self) -> (Stage, Stage) {
        match self {
            Span::RxDecoded => (Stage::Rx, Stage::Decoded),
            Span::DecodedJournaled => (Stage::Decoded, Stage::Journaled),
            Span::JournaledMatched => (Stage::Journaled, Stage::Matched),
            Span::MatchedCommitted => (Stage::Matched, Stage::Committed),
            Span::CommittedTx => (Stage::Committed, Stage::Tx),
            Span::RxTx => (Stage::Rx, Stage::Tx),
        }
    }
}

/// Raw clock readings of one input at each stage (see [`Clock::now`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageStamps {
    pub ticks: [u64; STAGE_COUNT],
}

impl StageStamps {
    #[inline(always)]
    pub fn set(&mut self, stage: Stage, ticks: u64) {
        self.ticks[stage as usize] = ticks;
    }
}

/// Sizing of the histograms.
#[derive(Clone, Copy, Debug)]
pub struct HistConfig {
    /// Largest latency kept exactly; larger ones are recorded as this value.
    pub latency_ns_max: u64,
    /// HdrHistogram precision (1–5 significant decimal digits).
    pub significant_digits: u8,
}

impl Default for HistConfig {
    fn default() -> Self {
        // Ten seconds covers any stall worth seeing; three digits is HdrHistogram's usual precision.
        HistConfig {
            latency_ns_max: 10_000_000_000,
            significant_digits: 3,
        }
    }
}

/// One histogram per span, with the exact sum of what each recorded (the histogram's own mean is quantised).
pub struct HistogramSet {
    hists: [Histogram<u64>; SPAN_COUNT],
    sums_ns: [u64; SPAN_COUNT],
}

impl HistogramSet {
    pub fn new(config: HistConfig) -> Result<HistogramSet, hdrhistogram::CreationError> {
        let make = || -> Result<Histogram<u64>, hdrhistogram::CreationError> {
            let mut h =
                Histogram::new_with_bounds(1, config.latency_ns_max, config.significant_digits)?;
            // Resizing would allocate on the pipeline core; saturating records make it unnecessary.
            h.auto(false);
            Ok(h)
        };
        Ok(HistogramSet {
            hists: [make()?, make()?, make()?, make()?, make()?, make()?],
            sums_ns: [0; SPAN_COUNT],
        })
    }

    #[inline(always)]
    pub fn record(&mut self, span: Span, ns: u64) {
        self.hists[span as usize].saturating_record(ns);
        self.sums_ns[span as usize] = self.sums_ns[span as usize].wrapping_add(ns);
    }

    pub fn get(&self, span: Span) -> &Histogram<u64> {
        &self.hists[span as usize]
    }

    /// The exact sum of the values recorded into `span` (before any saturation), in nanoseconds.
    pub fn sum_ns(&self, span: Span) -> u64 {
        self.sums_ns[span as usize]
    }

    /// Clears every count, keeping the allocations.
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
        self.sums_ns = [0; SPAN_COUNT];
    }

    pub fn total_count(&self) -> u64 {
        self.hists[Span::RxTx as usize].len()
    }
}

struct SwapLink {
    requested: AtomicBool,
    fresh: AtomicCell<Option<Box<HistogramSet>>>,
    full: AtomicCell<Option<Box<HistogramSet>>>,
}

/// The pipeline's half: records into the active set, and hands it over when the aux core asks.
pub struct StageRecorder {
    active: Box<HistogramSet>,
    clock: Clock,
    link: Arc<SwapLink>,
}

/// The aux core's half: asks for the active set every interval and gets the finished one back.
pub struct StageExporter {
    spare: Option<Box<HistogramSet>>,
    collected: Option<Box<HistogramSet>>,
    pending: bool,
    link: Arc<SwapLink>,
}

/// Creates the two halves for one pipeline core, allocating both histogram sets now.
pub fn stage_recorder(
    clock: Clock,
    config: HistConfig,
) -> Result<(StageRecorder, StageExporter), hdrhistogram::CreationError> {
    assert!(
        AtomicCell::<Option<Box<HistogramSet>>>::is_lock_free(),
        "the swap mailboxes must be lock-free atomics"
    );
    let link = Arc::new(SwapLink {
        requested: AtomicBool::new(false),
        fresh: AtomicCell::new(None),
        full: AtomicCell::new(None),
    });
    let recorder = StageRecorder {
        active: Box::new(HistogramSet::new(config)?),
        clock,
        link: link.clone(),
    };
    let exporter = StageExporter {
        spare: Some(Box::new(HistogramSet::new(config)?)),
        collected: None,
        pending: false,
        link,
    };
    Ok((recorder, exporter))
}

impl StageRecorder {
    /// Records all six spans of one input from its stamps. Never allocates.
    #[inline]
    pub fn record(&mut self, stamps: &StageStamps) {
        for span in Span::ALL {
            let (from, to) = span.bounds();
            let ns = self
                .clock
                .delta_ns(stamps.ticks[from as usize], stamps.ticks[to as usize]);
            self.active.record(span, ns);
        }
    }

    /// Records one span measured elsewhere, in nanoseconds. Never allocates.
    #[inline(always)]
    pub fn record_span(&mut self, span: Span, ns: u64) {
        self.active.record(span, ns);
    }

    /// Call once per burst (empty bursts included): hands the active set to the aux core if it asked for it and
    /// continues in the fresh one. Returns whether a swap happened. Never allocates, never blocks.
    #[inline]
    pub fn poll_swap(&mut self) -> bool {
        // Relaxed: see the module documentation; the take below carries the synchronisation.
        if !self.link.requested.load(Ordering::Relaxed) {
            return false;
        }
        self.link.requested.store(false, Ordering::Relaxed);
        let Some(fresh) = self.link.fresh.take() else {
            return false;
        };
        let full = std::mem::replace(&mut self.active, fresh);
        let previous = self.link.full.swap(Some(full));
        assert!(
            previous.is_none(),
            "stage exporter protocol: the full mailbox was not collected"
        );
        true
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

impl StageExporter {
    /// Asks the pipeline for its active set, handing it a cleared one. Returns false (and does nothing) while an
    /// earlier request is still outstanding.
    pub fn request_swap(&mut self) -> bool {
        if self.pending {
            return false;
        }
        let mut spare = match (self.spare.take(), self.collected.take()) {
            (Some(s), _) => s,
            (None, Some(c)) => c,
            (None, None) => {
                unreachable!("stage exporter holds one set whenever no request is pending")
            }
        };
        spare.reset();
        self.link.fresh.store(Some(spare));
        // Release: the flag must not be seen before the set it announces is in the mailbox.
        self.link.requested.store(true, Ordering::Release);
        self.pending = true;
        true
    }

    /// Collects the set the pipeline handed over, if it has; the set stays readable until the next request.
    pub fn try_collect(&mut self) -> Option<&HistogramSet> {
        if !self.pending {
            return None;
        }
        let full = self.link.full.take()?;
        self.pending = false;
        self.collected = Some(full);
        self.collected.as_deref()
    }

    /// The set collected last, until the next request.
    pub fn collected(&self) -> Option<&HistogramSet> {
        self.collected.as_deref()
    }

    /// Whether a request is waiting for the pipeline's next burst.
    pub fn is_pending(&self) -> bool {
        self.pending
    }
}
