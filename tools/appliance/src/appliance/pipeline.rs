//! The pipeline core: one busy-polling loop, run to completion per burst.
//!
//! ```text
//!   rx burst ─▶ session (SoupBinTCP login, source) ─▶ UserRefNum check ─▶ OUCH → Command + echo (or a refusal)
//!     ─▶ seq += 1 ─▶ WAL append (flushed; fenced once per burst) ─▶ Exchange::apply ─▶ sequenced outputs
//!     ─▶ OUCH replies (MoldUDP64-framed to the session's peer) + ITCH (packed into MoldUDP64 datagrams)
//!     ─▶ held in the commit gate until commit ≥ seq ─▶ tx burst
//! ```
//!
//! Everything a firm can observe is produced by [`Exchange::apply`] from the journaled input alone; the pipeline
//! adds transport: who is logged in from where, framing, the commit gate. Every SoupBinTCP packet of a datagram is
//! handled, however many it holds. Everything the loop touches is allocated before the first poll. The loop never
//! blocks and never sleeps; when the output queues run low on room it stops taking input until commits drain
//! them, so a slow disk shows up as backpressure, never as lost replies.

use std::net::SocketAddrV4;
use std::sync::Arc;

use bourse_engine::{Command, Input, Nanos, SessionId};
use bourse_nic::backend::{Backend, Datagram, TxError};
use crate::session::{Outcome, Sessions, IDLE_LOGOUT_NOTICE, SERVER_HEARTBEAT};
use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{PackError, Packer};
use bourse_nic::wire::{ouch, soup};
use bourse_persist::commit::CommitIndex;
use bourse_persist::wal::record::Echo;
use bourse_persist::wal::Wal;

use super::exchange::{Exchange, Outputs, NO_ECHO, RATE_LIMITED};
use crate::translate::OuchReject;
use super::mdfeed::{self, MdFeed};
use super::outq::OutQueue;
use crate::obs::stages::{Stage, StageRecorder, StageStamps};
use crate::obs::tsc::Clock;
use crate::translate::{reject_row, CANCEL_REJECT_ROW, REJECT_ROWS};

/// Journal room a burst is assumed to need: 512 two-line records.
const WAL_BURST_RESERVE_BYTES: usize = 64 << 10;
/// Scratch for one framed outbound datagram.
const SCRATCH_BYTES: usize = 2_048;

/// Counters owned by the pipeline core; the stats exporter copies them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineCounters {
    pub inputs: u64,
    /// OUCH messages the gateway refused (journaled as refusals, answered with Order Rejected; each is also in
    /// `rejects` under its reason).
    pub ouch_rejects: u64,
    /// Enter/Replace Orders with a UserRefNum already used: never executed again.
    pub duplicates: u64,
    /// Of those, answered with the original first reply.
    pub duplicates_answered: u64,
    pub retransmits_answered: u64,
    /// Messages refused by their session's rate limit (journaled as refusals, answered with Order Rejected).
    pub rate_limited: u64,
    /// Logins and re-requests asking for replies older than the kept window (answered from the oldest kept).
    pub login_window_misses: u64,
    /// Replies replayed to firms at login.
    pub login_replays: u64,
    pub reply_overflows: u64,
    pub backpressure_polls: u64,
    /// Transmits the backend refused for lack of a free slot (the output stays queued and is retried).
    pub tx_refused: u64,
    /// Outputs not sent because the backend could not address their destination yet ([`TxError::Unresolved`]:
    /// a raw backend without the peer's MAC, which it has asked for). Not retried: a reply stays in its session's
    /// store for the next login, a market-data datagram in the feed's store for a retransmission request.
    pub tx_unresolved: u64,
    pub logins: u64,
    /// OUCH Order Rejected messages the exchange emitted, by reason: row [`reject_row`] of the reason code
    /// ([`crate::translate::REJECT_CODES`], then one row for any other code), and Cancel Reject messages in row
    /// [`CANCEL_REJECT_ROW`]. Gateway refusals are among them, under their codes.
    pub rejects: [u64; REJECT_ROWS],
}

impl Default for PipelineCounters {
    fn default() -> PipelineCounters {
        PipelineCounters {
            inputs: 0,
            ouch_rejects: 0,
            duplicates: 0,
            duplicates_answered: 0,
            retransmits_answered: 0,
            rate_limited: 0,
            login_window_misses: 0,
            login_replays: 0,
            reply_overflows: 0,
            backpressure_polls: 0,
            tx_refused: 0,
            tx_unresolved: 0,
            logins: 0,
            rejects: [0; REJECT_ROWS],
        }
    }
}

/// Sequencer time: nanoseconds since the Unix epoch, from the calibrated TSC, never decreasing and never below the
/// last journaled timestamp (a restart onto a clock that lags, or past midnight, keeps time moving forward).
pub struct SeqClock {
    clock: Clock,
    base_ticks: u64,
    base_ns: u64,
    last: Nanos,
}

impl SeqClock {
    /// A clock reading the wall clock now, never below `floor_ns` (the journal's last timestamp).
    pub fn new(clock: Clock, floor_ns: Nanos) -> SeqClock {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SeqClock { clock, base_ticks: clock.now(), base_ns: since_epoch, last: floor_ns }
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
pub enum JournalFailed {
    #[error("journal append of seq {seq} failed: {source}")]
    Append {
        seq: u64,
        #[source]
        source: bourse_persist::error::WalError,
    },
    #[error("the exchange state refused input seq {seq}: {source}")]
    Apply {
        seq: u64,
        #[source]
        source: bourse_persist::recovery::ApplyError,
    },
}

pub struct Pipeline {
    pub sessions: Sessions,
    pub exchange: Exchange,
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
    scratch: Vec<u8>,
    failed: Option<JournalFailed>,
    last_input_ns: Nanos,
    /// Receive time (TSC ticks) of the datagram being handled, for the stage histograms; `None` outside
    /// [`Pipeline::on_datagram`], so inputs that did not come off the wire (idle ticks, admin, genesis) are never
    /// stamped: their "receive" time would be the last datagram's, seconds ago on an idle appliance.
    rx_ticks: Option<u64>,
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
    pub exchange: Exchange,
    pub wal: Wal,
    pub md: MdFeed,
    pub clock: Clock,
    /// The last journaled timestamp: sequencer time never goes below it.
    pub time_floor_ns: Nanos,
    pub stages: Option<StageRecorder>,
    pub payload_max_bytes: usize,
    pub reply_queue_bytes: usize,
    pub reserve_bytes: usize,
}

impl Pipeline {
    pub fn new(parts: Parts) -> Pipeline {
        let next_seq = parts.wal.next_seq();
        assert_eq!(next_seq, parts.exchange.last_seq() + 1, "the journal continues the exchange state");
        let commit = Arc::clone(parts.wal.commit_index());
        Pipeline {
            sessions: parts.sessions,
            exchange: parts.exchange,
            wal: parts.wal,
            commit,
            replies: OutQueue::new(parts.reply_queue_bytes),
            md: parts.md,
            time: SeqClock::new(parts.clock, parts.time_floor_ns),
            counters: PipelineCounters::default(),
            stages: parts.stages,
            next_seq,
            payload_max_bytes: parts.payload_max_bytes,
            reserve_bytes: parts.reserve_bytes,
            scratch: vec![0; SCRATCH_BYTES],
            failed: None,
            last_input_ns: 0,
            rx_ticks: None,
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
        // A burst whose records could not fit the current segment waits for the next one to be prepared, so that
        // rotation never does file I/O here (a burst larger still rotates inline, counted by the WAL).
        let journal_ready = self.wal.ready_for(WAL_BURST_RESERVE_BYTES);
        if self.failed.is_none() && room >= self.reserve_bytes && journal_ready {
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
        self.sequence(command, None);
        self.wal.fence();
        self.md.close_packet();
        match &self.failed {
            Some(f) => Err(f),
            None => Ok(self.next_seq - 1),
        }
    }

    /// Ends the trading day: journals the close (System Events 'M', 'E', 'C'); applying it ends every stream
    /// ([`Pipeline::end_streams`]). Returns the close's seq.
    pub fn end_of_day(&mut self) -> Result<u64, &JournalFailed> {
        self.submit(Command::MarketHours(bourse_engine::MarketHours::Close))
    }

    /// The day is closed (input `seq` applied it): queues MoldUDP64 End of Session (count 0xFFFF, the next
    /// sequence) on the feed and on the reply stream of every session logged in, behind everything else, so they
    /// go out last once `seq` is committed. Whatever journals the close, the streams end the same way.
    fn end_streams(&mut self, seq: u64) {
        self.md.end_of_session();
        for session in 0..self.exchange.limits().sessions {
            let (Some(peer), Some(name)) = (self.sessions.peer(session), self.sessions.session_name(session)) else {
                continue;
            };
            let end = mdfeed::end_of_session(name, self.exchange.next_reply_sequence(session));
            if mdfeed::queue_header(&mut self.replies, seq, peer, &end).is_err() {
                self.counters.reply_overflows += 1;
            }
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
        let (refused, unresolved) = (&mut self.counters.tx_refused, &mut self.counters.tx_unresolved);
        let mut send = |dst: SocketAddrV4, bytes: &[u8]| {
            let sent = backend.tx(dst, &mut |buf: &mut [u8]| {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                n
            });
            match sent {
                Ok(()) => true,
                // Not sent, and counted as such; retrying would fail alike and hold every firm's replies behind
                // it. The reply stays in its session's store, replayed at the next login.
                Err(TxError::Unresolved) => {
                    *unresolved += 1;
                    true
                }
                Err(TxError::Full) => {
                    *refused += 1;
                    false
                }
            }
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
        self.rx_ticks = self.stages.as_ref().map(|s| s.clock().now());
        let now = self.time.now();
        let src = dg.src;
        if let Some(o) = self.sessions.request(src, dg.payload, now) {
            self.on_outcome(src, o);
        } else {
            for p in soup::Packets::new(dg.payload) {
                let o = self.sessions.on_packet(src, p, now);
                self.on_outcome(src, o);
            }
        }
        self.rx_ticks = None;
    }

    fn on_outcome(&mut self, src: SocketAddrV4, outcome: Outcome) {
        // Anything answered outside the exchange waits for everything sequenced so far: what it shows a firm
        // (sequence numbers, replies) must be committed before the firm sees it.
        let gate = self.next_seq - 1;
        match outcome {
            Outcome::LoginAccepted { session, requested_sequence } => self.login(gate, src, session, requested_sequence),
            // SoupBinTCP 3.00 section 2.2.2: the only packet a failed login gets (counted by the session layer).
            Outcome::LoginRejected { code, .. } => {
                if let Ok(n) = Sessions::emit_login_rejected(code, &mut self.scratch) {
                    self.queue_reply(gate, src, n);
                }
            }
            Outcome::Ouch { session, account, message } => {
                // Enter, Replace, Mass Cancel and the order-entry switches introduce a UserRefNum: one at or below
                // the highest used is a retransmission, answered with its first reply (OUCH 5.0 section 2).
                let new_ref = message.new_user_ref();
                if let Some(user_ref) = new_ref {
                    if self.exchange.is_repeat(session, user_ref) {
                        self.counters.duplicates += 1;
                        if let Some(seq) = self.exchange.first_reply(session, user_ref) {
                            self.counters.duplicates_answered += 1;
                            self.resend(gate, src, session, seq, 1);
                        }
                        return;
                    }
                }
                if !self.exchange.rate_allows(session, self.time.now()) {
                    self.counters.rate_limited += 1;
                    let reject = OuchReject::of(&message, RATE_LIMITED);
                    let (command, echo) = reject.command(session, new_ref.is_some());
                    self.sequence(command, Some(echo));
                    return;
                }
                match self.exchange.translator().on_ouch(session, account, &message) {
                    Ok((command, echo)) => self.sequence(command, echo),
                    Err(reject) => {
                        self.counters.ouch_rejects += 1;
                        let (command, echo) = reject.command(session, new_ref.is_some());
                        self.sequence(command, Some(echo));
                    }
                }
            }
            Outcome::OuchInvalidSide { session, user_ref, cl_ord_id } => {
                if self.exchange.is_repeat(session, user_ref) {
                    self.counters.duplicates += 1;
                    if let Some(seq) = self.exchange.first_reply(session, user_ref) {
                        self.counters.duplicates_answered += 1;
                        self.resend(gate, src, session, seq, 1);
                    }
                    return;
                }
                self.counters.ouch_rejects += 1;
                let reject = OuchReject { user_ref, reason: ouch::reject_reason::INVALID_SIDE, cl_ord_id };
                let (command, echo) = reject.command(session, true);
                self.sequence(command, Some(echo));
            }
            Outcome::Retransmit { session, request } => {
                self.counters.retransmits_answered += 1;
                // Replies older than the kept window are gone: the answer starts at the oldest kept, so its
                // sequence number tells the firm where what it can still have begins.
                let oldest = self.exchange.oldest_reply_sequence(session);
                if request.sequence < oldest {
                    self.counters.login_window_misses += 1;
                }
                let from = request.sequence.max(oldest);
                let count = request.count.saturating_sub(u16::try_from(from - request.sequence).unwrap_or(u16::MAX));
                self.resend(gate, src, session, from, count.max(1));
            }
            // Counted by the session layer; nothing to answer.
            Outcome::Heartbeat { .. } | Outcome::Logout { .. } | Outcome::Drop(_) => {}
        }
    }

    /// Sends the session layer's timed packets at `now` (sequencer time): a Server Heartbeat to every logged-in
    /// session sent nothing for a second (SoupBinTCP 3.00 sections 1.3, 2.2.4), and the idle-logout notice to
    /// every session whose client has been silent for the idle timeout, which is logged out. Returns how many
    /// packets were queued. Time is a parameter so that tests drive it.
    pub fn session_timers(&mut self, now: Nanos) -> usize {
        let gate = self.next_seq - 1;
        let (sessions, replies, overflows) = (&mut self.sessions, &mut self.replies, &mut self.counters.reply_overflows);
        let mut queue = |dst: SocketAddrV4, bytes: &[u8]| {
            let n = bytes.len();
            if replies.push(gate, dst, n, |buf| { buf.copy_from_slice(bytes); n }).is_err() {
                *overflows += 1;
            }
        };
        let mut sent = sessions.expire(now, &mut |_, peer| queue(peer, IDLE_LOGOUT_NOTICE));
        sent += sessions.heartbeats_due(now, &mut |_, peer| queue(peer, &SERVER_HEARTBEAT));
        sent
    }

    /// Answers a login: Login Accepted naming where the firm's stream resumes, then every reply kept from there.
    /// SoupBinTCP: requested sequence 0 (or one beyond the stream) starts at the next reply; one older than the
    /// replies kept starts at the oldest kept, so the Login Accepted itself tells the firm what it cannot have.
    fn login(&mut self, gate: u64, src: SocketAddrV4, session: SessionId, requested: u64) {
        self.counters.logins += 1;
        let next = self.exchange.next_reply_sequence(session);
        let oldest = self.exchange.oldest_reply_sequence(session);
        let start = if requested == 0 || requested > next {
            next
        } else if requested < oldest {
            self.counters.login_window_misses += 1;
            oldest
        } else {
            requested
        };
        if let Ok(n) = self.sessions.emit_login_accepted(session, start, &mut self.scratch) {
            self.queue_reply(gate, src, n);
        }
        self.sessions.note_sent(session, self.time.now());
        let mut from = start;
        while from < next {
            let count = (next - from).min(u64::from(u16::MAX)) as u16;
            let Some(sent) = self.resend(gate, src, session, from, count) else { break };
            self.counters.login_replays += sent;
            from += sent;
        }
    }

    /// Queues up to `count` kept replies of `session` from `from` in one MoldUDP64 datagram to `dst`; returns how
    /// many it held (`None` when none could be: nothing kept there, or the session is unknown).
    fn resend(&mut self, gate: u64, dst: SocketAddrV4, session: SessionId, from: u64, count: u16) -> Option<u64> {
        let name = self.sessions.session_name(session)?;
        let (n, held) = pack_replies(&self.exchange, name, session, from, count, &mut self.scratch, self.payload_max_bytes);
        self.queue_reply(gate, dst, n);
        self.sessions.note_sent(session, self.time.now());
        (held > 0).then_some(held)
    }

    /// Sequences, journals and applies one command.
    fn sequence(&mut self, command: Command, echo: Option<Echo>) {
        if self.failed.is_some() {
            return;
        }
        let seq = self.next_seq;
        let timestamp = self.time.now();
        let input = Input { seq, timestamp, command };
        let mut stamps = StageStamps::default();
        // Only wire inputs are measured (see `rx_ticks`); the others take the same path unstamped.
        let clock = match (self.stages.as_ref(), self.rx_ticks) {
            (Some(s), Some(rx)) => {
                let clock = *s.clock();
                stamps.set(Stage::Rx, rx);
                stamps.set(Stage::Decoded, clock.now());
                Some(clock)
            }
            _ => None,
        };
        if let Err(source) = self.wal.append_entry_unfenced(&input, echo.as_ref()) {
            self.failed = Some(JournalFailed::Append { seq, source });
            return;
        }
        if let Some(clock) = &clock {
            stamps.set(Stage::Journaled, clock.now());
        }
        self.next_seq += 1;
        self.last_input_ns = timestamp;
        self.counters.inputs += 1;
        let mut out = Emit {
            sessions: &mut self.sessions,
            now: timestamp,
            replies: &mut self.replies,
            md: &mut self.md,
            scratch: &mut self.scratch,
            seq,
            payload_max_bytes: self.payload_max_bytes,
            overflows: &mut self.counters.reply_overflows,
            rejects: &mut self.counters.rejects,
        };
        if let Err(source) = self.exchange.apply(&input, echo.as_ref().unwrap_or(&NO_ECHO), &mut out) {
            self.failed = Some(JournalFailed::Apply { seq, source });
            return;
        }
        if let Command::MarketHours(bourse_engine::MarketHours::Close) = input.command {
            self.end_streams(seq);
        }
        if let Some(clock) = &clock {
            stamps.set(Stage::Matched, clock.now());
            self.stamps.push(seq, stamps);
        }
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

/// Packs kept replies `from..from + count` of `session` into one MoldUDP64 datagram in `buf` (at most `mtu`
/// bytes), stopping at the MTU or the first reply not kept; returns its length and how many replies it holds (a
/// datagram holding none is a heartbeat naming `from`).
pub fn pack_replies(
    exchange: &Exchange,
    name: SessionName,
    session: SessionId,
    from: u64,
    count: u16,
    buf: &mut [u8],
    mtu: usize,
) -> (usize, u64) {
    let Ok(mut pk) = Packer::new(buf, name, mtu) else { return (0, 0) };
    pk.begin(from);
    let mut held = 0;
    for seq in from..from.saturating_add(u64::from(count)) {
        let Some(m) = exchange.reply(session, seq) else { break };
        match pk.push(m) {
            Ok(()) => held += 1,
            Err(PackError::Full { .. } | PackError::TooLarge { .. }) => break,
        }
    }
    (pk.finish().len(), held)
}

/// Where the exchange's outputs go on the pipeline: replies framed to the session's peer (if logged in; kept
/// either way), market data into the feed's datagrams, all behind the input's commit.
struct Emit<'a> {
    sessions: &'a mut Sessions,
    /// The input's sequencer time: a reply sent counts as data for the heartbeat rule.
    now: Nanos,
    replies: &'a mut OutQueue,
    md: &'a mut MdFeed,
    scratch: &'a mut [u8],
    seq: u64,
    payload_max_bytes: usize,
    overflows: &'a mut u64,
    rejects: &'a mut [u64; REJECT_ROWS],
}

impl Outputs for Emit<'_> {
    fn reply(&mut self, session: SessionId, sequence: u64, msg: &[u8]) {
        // Every Order Rejected is counted by reason, and every Cancel Reject under its own row, whether or not
        // the firm is logged in to receive it now.
        if msg.first() == Some(&b'J') && msg.len() >= ouch::field::rejected::LEN {
            let at = ouch::field::rejected::REASON;
            let code = u16::from_be_bytes([msg[at], msg[at + 1]]);
            self.rejects[reject_row(code)] += 1;
        } else if msg.first() == Some(&b'I') {
            self.rejects[CANCEL_REJECT_ROW] += 1;
        }
        let (Some(peer), Some(name)) = (self.sessions.peer(session), self.sessions.session_name(session)) else {
            return;
        };
        self.sessions.note_sent(session, self.now);
        let Ok(mut pk) = Packer::new(&mut *self.scratch, name, self.payload_max_bytes) else {
            *self.overflows += 1;
            return;
        };
        pk.begin(sequence);
        if pk.push(msg).is_err() {
            *self.overflows += 1;
            return;
        }
        let framed = pk.finish();
        let n = framed.len();
        if self
            .replies
            .push(self.seq, peer, n, |buf| {
                buf.copy_from_slice(framed);
                n
            })
            .is_err()
        {
            *self.overflows += 1;
        }
    }

    fn market(&mut self, sequence: u64, msg: &[u8]) {
        self.md.push(self.seq, sequence, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::SeqClock;
    use crate::obs::tsc::Clock;

    #[test]
    fn sequencer_time_never_goes_below_the_journal() {
        let clock = Clock::calibrate(std::time::Duration::from_millis(5));
        // A restart onto a host whose clock is an hour behind the last journaled timestamp.
        let wall = SeqClock::new(clock, 0).now();
        let floor = wall + 3_600_000_000_000;
        let mut t = SeqClock::new(clock, floor);
        let mut last = t.now();
        assert!(last >= floor);
        for _ in 0..1000 {
            let now = t.now();
            assert!(now >= last, "time went backwards");
            last = now;
        }
    }
}
