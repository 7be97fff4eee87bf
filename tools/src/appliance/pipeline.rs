//! The pipeline core: one busy-polling loop, run to completion per burst.
//!
//! ```text
//!   rx burst ─▶ session (SoupBinTCP login, source, UserRefNum) ─▶ OUCH → Command ─▶ seq += 1
//!     ─▶ WAL append (flushed; fenced once per burst) ─▶ Engine::apply ─▶ events
//!     ─▶ OUCH replies (sequenced per session, MoldUDP64-framed) + ITCH (MoldUDP64 datagrams)
//!     ─▶ held in the commit gate until commit ≥ seq ─▶ tx burst
//! ```
//!
//! Everything the loop touches is allocated before the first poll: the session tables, the translator's records,
//! the engine, the WAL's mapped segment, the output queues and the scratch buffers. The loop never blocks and never
//! sleeps; when the output queues run low on room it stops taking input until commits drain them, so a slow disk
//! shows up as backpressure, never as lost replies.

use std::net::SocketAddrV4;
use std::sync::Arc;

use bourse_engine::{Command, Engine, Event, EventSink, Input, Nanos, SessionId, UserRef};
use bourse_nic::backend::{Backend, Datagram};
use bourse_nic::session::{Outcome, Sessions};
use bourse_persist::commit::CommitIndex;
use bourse_persist::wal::Wal;

use super::mdfeed::MdFeed;
use super::outq::OutQueue;
use crate::obs::stages::{Stage, StageRecorder, StageStamps};
use crate::obs::tsc::Clock;
use crate::translate::Translator;

/// Outcomes one datagram may carry (SoupBinTCP packets per datagram); more are dropped and counted.
const OUTCOMES_PER_DATAGRAM_MAX: usize = 64;
/// Scratch for one framed outbound datagram.
const SCRATCH_BYTES: usize = 2_048;

/// Counters owned by the pipeline core; the stats exporter copies them out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineCounters {
    pub inputs: u64,
    pub ouch_rejects: u64,
    pub duplicates_answered: u64,
    pub retransmits_answered: u64,
    pub outcome_overflows: u64,
    pub reply_overflows: u64,
    pub backpressure_polls: u64,
    pub tx_refused: u64,
    pub logins: u64,
}

/// Sequencer time: nanoseconds since midnight (ITCH timestamps), from the calibrated TSC, never decreasing.
pub struct SeqClock {
    clock: Clock,
    base_ticks: u64,
    base_ns: u64,
    last: Nanos,
}

impl SeqClock {
    pub fn new(clock: Clock) -> SeqClock {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SeqClock { clock, base_ticks: clock.now(), base_ns: since_epoch % 86_400_000_000_000, last: 0 }
    }

    #[inline]
    pub fn now(&mut self) -> Nanos {
        let t = self.base_ns + self.clock.delta_ns(self.base_ticks, self.clock.now());
        self.last = self.last.max(t);
        self.last
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// The WAL refused an append: the appliance must stop taking input (it cannot journal it).
#[derive(Debug, thiserror::Error)]
#[error("journal append of seq {seq} failed: {source}")]
pub struct JournalFailed {
    pub seq: u64,
    #[source]
    pub source: bourse_persist::error::WalError,
}

pub struct Pipeline {
    pub sessions: Sessions,
    pub translator: Translator,
    pub engine: Engine,
    pub wal: Wal,
    pub commit: Arc<CommitIndex>,
    pub replies: OutQueue,
    pub md: MdFeed,
    pub time: SeqClock,
    pub counters: PipelineCounters,
    pub stages: Option<StageRecorder>,
    next_seq: u64,
    payload_max_bytes: usize,
    /// Output queue room below which input is not taken (worst-case output of one burst).
    reserve_bytes: usize,
    outcomes: Vec<(SocketAddrV4, Outcome)>,
    scratch: Vec<u8>,
    failed: Option<JournalFailed>,
    last_input_ns: Nanos,
    /// Receive-burst time of the datagram being handled (TSC ticks), for the stage histograms.
    rx_ticks: u64,
    /// Stamps of inputs whose outputs have not left yet, oldest first (a fixed ring; full → not sampled).
    stamps: StampRing,
}

/// Inputs in flight between rx and tx whose stage stamps are kept.
const STAMPS_IN_FLIGHT_MAX: usize = 4_096;

struct StampRing {
    seqs: Vec<u64>,
    stamps: Vec<StageStamps>,
    head: usize,
    len: usize,
}

impl StampRing {
    fn new() -> StampRing {
        StampRing {
            seqs: vec![0; STAMPS_IN_FLIGHT_MAX],
            stamps: vec![StageStamps::default(); STAMPS_IN_FLIGHT_MAX],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, seq: u64, stamps: StageStamps) {
        if self.len == STAMPS_IN_FLIGHT_MAX {
            return;
        }
        let i = (self.head + self.len) % STAMPS_IN_FLIGHT_MAX;
        self.seqs[i] = seq;
        self.stamps[i] = stamps;
        self.len += 1;
    }

    /// Completes and records every input with `seq <= committed`.
    fn complete(&mut self, committed: u64, committed_ticks: u64, tx_ticks: u64, recorder: &mut StageRecorder) {
        while self.len > 0 && self.seqs[self.head] <= committed {
            let s = &mut self.stamps[self.head];
            s.set(Stage::Committed, committed_ticks);
            s.set(Stage::Tx, tx_ticks);
            recorder.record(s);
            self.head = (self.head + 1) % STAMPS_IN_FLIGHT_MAX;
            self.len -= 1;
        }
    }
}

/// Parts the pipeline is built from.
pub struct Parts {
    pub sessions: Sessions,
    pub translator: Translator,
    pub engine: Engine,
    pub wal: Wal,
    pub md: MdFeed,
    pub clock: Clock,
    pub stages: Option<StageRecorder>,
    pub payload_max_bytes: usize,
    pub reply_queue_bytes: usize,
    pub reserve_bytes: usize,
}

impl Pipeline {
    pub fn new(parts: Parts) -> Pipeline {
        let next_seq = parts.wal.next_seq();
        let commit = Arc::clone(parts.wal.commit_index());
        Pipeline {
            sessions: parts.sessions,
            translator: parts.translator,
            engine: parts.engine,
            wal: parts.wal,
            commit,
            replies: OutQueue::new(parts.reply_queue_bytes),
            md: parts.md,
            time: SeqClock::new(parts.clock),
            counters: PipelineCounters::default(),
            stages: parts.stages,
            next_seq,
            payload_max_bytes: parts.payload_max_bytes,
            reserve_bytes: parts.reserve_bytes,
            outcomes: Vec::with_capacity(OUTCOMES_PER_DATAGRAM_MAX),
            scratch: vec![0; SCRATCH_BYTES],
            failed: None,
            last_input_ns: 0,
            rx_ticks: 0,
            stamps: StampRing::new(),
        }
    }

    /// Seq of the last input sequenced.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Why the pipeline stopped taking input, if it did.
    pub fn failure(&self) -> Option<&JournalFailed> {
        self.failed.as_ref()
    }

    /// Outputs still waiting for their commit (replies, market-data datagrams).
    pub fn waiting(&self) -> (usize, usize) {
        (self.replies.len(), self.md.waiting())
    }

    /// One turn of the loop: receive a burst (unless backpressured or failed), journal and match it, then release
    /// committed outputs and transmit. Returns the datagrams received, for the idle strategy.
    pub fn poll(&mut self, backend: &mut dyn Backend) -> usize {
        let mut received = 0;
        let room = self.replies.free_bytes().min(self.md.queue_free_bytes());
        if self.failed.is_none() && room >= self.reserve_bytes {
            received = backend.rx_burst(&mut |dg: Datagram<'_>| self.on_datagram(dg));
        } else if self.failed.is_none() {
            self.counters.backpressure_polls += 1;
        }
        if received > 0 {
            self.wal.fence();
            self.md.close_packet();
        }
        if let Some(stages) = self.stages.as_mut() {
            stages.poll_swap();
        }
        self.transmit(backend);
        received
    }

    /// Sequences an input that did not come from the wire (admin, tick) through the same path.
    pub fn submit(&mut self, command: Command) -> Result<u64, &JournalFailed> {
        self.sequence(command);
        self.wal.fence();
        self.md.close_packet();
        match &self.failed {
            Some(f) => Err(f),
            None => Ok(self.next_seq - 1),
        }
    }

    /// Advances sequencer time through the journal when no input has arrived for `idle_ns`, so halts expire
    /// and halt queues are released without traffic. Returns whether a tick was sequenced.
    pub fn tick_if_idle(&mut self, idle_ns: Nanos) -> bool {
        let now = self.time.now();
        if self.failed.is_some() || now.saturating_sub(self.last_input_ns) < idle_ns {
            return false;
        }
        self.submit(Command::Tick).is_ok()
    }

    /// Releases every committed output to the backend and flushes it.
    pub fn transmit(&mut self, backend: &mut dyn Backend) {
        let committed = self.commit.committed();
        let refused = &mut self.counters.tx_refused;
        let mut send = |dst: SocketAddrV4, bytes: &[u8]| {
            let ok = backend
                .tx(dst, &mut |buf: &mut [u8]| {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    n
                })
                .is_ok();
            if !ok {
                *refused += 1;
            }
            ok
        };
        let committed_ticks = self.stages.as_ref().map_or(0, |s| s.clock().now());
        let mut sent = self.replies.release(committed, &mut send);
        sent += self.md.release(committed, &mut send);
        if sent > 0 {
            backend.tx_flush();
        }
        if let Some(stages) = self.stages.as_mut() {
            if self.stamps.len > 0 {
                let tx_ticks = stages.clock().now();
                self.stamps.complete(committed, committed_ticks, tx_ticks, stages);
            }
        }
    }

    fn on_datagram(&mut self, dg: Datagram<'_>) {
        if let Some(stages) = self.stages.as_ref() {
            self.rx_ticks = stages.clock().now();
        }
        let now = self.time.now();
        let mut outcomes = std::mem::take(&mut self.outcomes);
        let src = dg.src;
        let overflow = &mut self.counters.outcome_overflows;
        self.sessions.on_datagram(src, dg.payload, now, &mut |o| {
            if outcomes.len() < outcomes.capacity() {
                outcomes.push((src, o));
            } else {
                *overflow += 1;
            }
        });
        for (src, outcome) in outcomes.drain(..) {
            self.on_outcome(src, outcome);
        }
        self.outcomes = outcomes;
    }

    fn on_outcome(&mut self, src: SocketAddrV4, outcome: Outcome) {
        let gate = self.next_seq - 1;
        match outcome {
            Outcome::LoginAccepted { session, .. } => {
                self.counters.logins += 1;
                if let Ok(n) = self.sessions.emit_login_accepted(session, &mut self.scratch) {
                    self.queue_reply(gate, src, n);
                }
            }
            Outcome::Ouch { session, account, message } => {
                match self.translator.on_ouch(session, account, &message) {
                    Ok(command) => self.sequence(command),
                    Err(reject) => {
                        self.counters.ouch_rejects += 1;
                        let now = self.time.now();
                        if let Ok(n) = reject.emit(now, &mut self.scratch) {
                            self.reply_now(gate, session, Some(reject.user_ref), n);
                        }
                    }
                }
            }
            Outcome::Duplicate { session, reply_sequence: Some(seq), .. } => {
                self.counters.duplicates_answered += 1;
                let mtu = self.payload_max_bytes;
                if let Ok(n) = self.sessions.answer(session, seq, 1, &mut self.scratch, mtu) {
                    self.queue_reply(gate, src, n);
                }
            }
            Outcome::Retransmit { session, request } => {
                self.counters.retransmits_answered += 1;
                let mtu = self.payload_max_bytes;
                if let Ok(n) = self.sessions.answer_request(session, &request, &mut self.scratch, mtu) {
                    self.queue_reply(gate, src, n);
                }
            }
            // Counted by the session layer; nothing to answer.
            Outcome::Duplicate { reply_sequence: None, .. }
            | Outcome::Heartbeat { .. }
            | Outcome::Logout { .. }
            | Outcome::Drop(_) => {}
        }
    }

    /// Sequences, journals and applies one command.
    fn sequence(&mut self, command: Command) {
        if self.failed.is_some() {
            return;
        }
        let seq = self.next_seq;
        let timestamp = self.time.now();
        let input = Input { seq, timestamp, command };
        let mut stamps = StageStamps::default();
        let clock = self.stages.as_ref().map(|s| *s.clock());
        if let Some(clock) = &clock {
            stamps.set(Stage::Rx, if self.rx_ticks != 0 { self.rx_ticks } else { clock.now() });
            stamps.set(Stage::Decoded, clock.now());
        }
        if let Err(source) = self.wal.append_unfenced(&input) {
            self.failed = Some(JournalFailed { seq, source });
            return;
        }
        if let Some(clock) = &clock {
            stamps.set(Stage::Journaled, clock.now());
        }
        self.next_seq += 1;
        self.last_input_ns = timestamp;
        self.counters.inputs += 1;
        let mut sink = Sink {
            translator: &mut self.translator,
            sessions: &mut self.sessions,
            replies: &mut self.replies,
            md: &mut self.md,
            scratch: &mut self.scratch,
            seq,
            timestamp,
            payload_max_bytes: self.payload_max_bytes,
            overflows: &mut self.counters.reply_overflows,
        };
        self.engine.apply(&input, &mut sink);
        if let Some(clock) = &clock {
            stamps.set(Stage::Matched, clock.now());
            self.stamps.push(seq, stamps);
        }
    }

    /// Sequences the OUCH message in `scratch[..len]` for `session` and queues it behind `gate`.
    fn reply_now(&mut self, gate: u64, session: SessionId, first_reply_to: Option<UserRef>, len: usize) {
        let mut msg = [0u8; 128];
        let len = len.min(msg.len());
        msg[..len].copy_from_slice(&self.scratch[..len]);
        reply(
            &mut self.sessions,
            &mut self.replies,
            &mut self.scratch,
            self.payload_max_bytes,
            gate,
            session,
            first_reply_to,
            &msg[..len],
            &mut self.counters.reply_overflows,
        );
    }

    /// Queues `scratch[..len]` (an already framed datagram) to `dst` behind `gate`.
    fn queue_reply(&mut self, gate: u64, dst: SocketAddrV4, len: usize) {
        let bytes = &self.scratch[..len];
        if self
            .replies
            .push(gate, dst, len, |buf| {
                buf.copy_from_slice(bytes);
                len
            })
            .is_err()
        {
            self.counters.reply_overflows += 1;
        }
    }
}

/// Sequences one OUCH message for a session (kept for re-requests even when the session is not logged in) and,
/// when it has a peer, queues it framed in MoldUDP64 behind `gate`.
#[allow(clippy::too_many_arguments)]
fn reply(
    sessions: &mut Sessions,
    replies: &mut OutQueue,
    scratch: &mut [u8],
    payload_max_bytes: usize,
    gate: u64,
    session: SessionId,
    first_reply_to: Option<UserRef>,
    msg: &[u8],
    overflows: &mut u64,
) {
    let Ok(sequence) = sessions.sequence_reply(session, msg, first_reply_to) else {
        *overflows += 1;
        return;
    };
    let Some(peer) = sessions.peer(session) else { return };
    let Ok(n) = sessions.frame_reply(session, sequence, scratch, payload_max_bytes) else {
        *overflows += 1;
        return;
    };
    let framed = &scratch[..n];
    if replies
        .push(gate, peer, n, |buf| {
            buf.copy_from_slice(framed);
            n
        })
        .is_err()
    {
        *overflows += 1;
    }
}

/// The engine's event sink on the pipeline: encodes straight into the commit-gated output queues.
struct Sink<'a> {
    translator: &'a mut Translator,
    sessions: &'a mut Sessions,
    replies: &'a mut OutQueue,
    md: &'a mut MdFeed,
    scratch: &'a mut [u8],
    seq: u64,
    timestamp: Nanos,
    payload_max_bytes: usize,
    overflows: &'a mut u64,
}

impl EventSink for Sink<'_> {
    fn event(&mut self, event: &Event) {
        let (sessions, replies, scratch, md) = (&mut *self.sessions, &mut *self.replies, &mut *self.scratch, &mut *self.md);
        let (seq, mtu, overflows) = (self.seq, self.payload_max_bytes, &mut *self.overflows);
        self.translator.on_event(
            event,
            self.timestamp,
            &mut |session, first_reply_to, msg| {
                reply(sessions, replies, scratch, mtu, seq, session, first_reply_to, msg, overflows)
            },
            &mut |msg| md.push(seq, msg),
        );
    }
}
