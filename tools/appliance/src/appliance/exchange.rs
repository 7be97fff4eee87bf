//! The exchange: one deterministic state machine for everything a firm or a feed handler can observe.
//!
//! ```text
//!   journaled input (seq, timestamp, command, echo)
//!        │  seq must be exactly last_seq + 1 (else ApplyError::OutOfSequence)
//!        ▼
//!   Translator::remember(echo) ─▶ Engine::apply ─▶ events ─▶ Translator::on_event
//!                                                              ├─▶ OUCH reply ─▶ ReplyBook[session]: next
//!                                                              │     sequence, kept for re-requests and logins,
//!                                                              │     first reply per UserRefNum ─▶ Outputs::reply
//!                                                              └─▶ ITCH message ─▶ MdBook: next MoldUDP64
//!                                                                    sequence, kept for retransmission
//!                                                                    ─▶ Outputs::market
//! ```
//!
//! The engine, each session's outbound stream (sequence numbers, the replies kept, the UserRefNum → first reply
//! index and the highest UserRefNum used), the fields replies echo, and the market-data numbering are all here and
//! nowhere else, so the live pipeline, recovery, the hot standby's follower and snapshots see one state through one
//! `apply`. A restart or a failover then changes nothing a firm can see but the need to log in again: it asks for
//! the next sequence it expects and receives every reply from there, byte for byte as it would have had nothing
//! failed. What is not here is transport state (which source a session is logged in from, heartbeats, packing
//! into datagrams, the commit gate), held by the pipeline.
//!
//! No clocks, threads or I/O: time arrives with each input (nanoseconds since the Unix epoch; OUCH and ITCH carry
//! nanoseconds since midnight, derived when encoding). Nothing allocates after [`Exchange::new`].

use bourse_engine::{Capacity, Command, Engine, Event, EventSink, Input, MarketHours, SessionId, UserRef};
use bourse_persist::recovery::{check_next, ApplyError, Replicated};
use bourse_persist::wal::record::{Echo, Record, ECHO_BYTES, UTC_OFFSET_S_MAX};

use bourse_nic::wire::ouch::{self, Outbound};

use super::store::{read_u64 as take_u64, take, OutcomeRing, RetransmitStore};
use crate::translate::Translator;

/// Nanoseconds in a day: OUCH and ITCH timestamps count from midnight.
pub const DAY_NS: u64 = 86_400_000_000_000;
/// The largest outbound OUCH message kept: Order Accepted echoing every option the appliance acts on (64 bytes,
/// MinQty 6, PostOnly 3, StopPrice 10: 83), rounded up.
pub const REPLY_BYTES_MAX: usize = crate::translate::SCRATCH_BYTES;
/// The largest ITCH message kept (Stock Directory, 39 bytes, rounded up).
pub const ITCH_BYTES_MAX: usize = 64;

/// The echo of inputs that carry none (operator and genesis inputs).
pub const NO_ECHO: Echo = [0; ECHO_BYTES];

/// Preallocated sizes of the replicated state beyond the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeLimits {
    /// Order-entry sessions (ids `0..sessions`).
    pub sessions: u16,
    /// Replies kept per session for re-requests and for logins asking for an earlier sequence; a power of two.
    pub replies_kept: usize,
    /// UserRefNums per session whose first reply can be found again (a resent order is answered with it).
    pub outcomes_kept: usize,
    /// ITCH messages kept for the market-data retransmission server; a power of two.
    pub market_kept: usize,
}

impl ExchangeLimits {
    pub const DEFAULT: ExchangeLimits =
        ExchangeLimits { sessions: 1, replies_kept: 8192, outcomes_kept: 4096, market_kept: 1 << 16 };
}

/// A session's message rate limit: a token bucket refilled in sequencer time (so replay reproduces it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// Messages per second (0: unlimited).
    pub per_s: u32,
    /// Messages that may arrive at once after a quiet spell (at least 1 when limited).
    pub burst: u32,
}

/// OUCH reject code for a message refused by the rate limit (OUCH 5.0 Appendix C has no plain message-rate code;
/// "Risk: Duplicate Message Rate" is the closest).
pub const RATE_LIMITED: u16 = bourse_nic::wire::ouch::reject_reason::RISK_DUPLICATE_MESSAGE_RATE;

/// One message, in the bucket's units (a billionth of a message per nanosecond times messages/s).
const TOKEN: u128 = 1_000_000_000;

/// A token bucket's state: tokens (in [`TOKEN`] units) as of `at_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    tokens: u128,
    at_ns: u64,
}

impl Bucket {
    fn full(limit: RateLimit) -> Bucket {
        Bucket { tokens: u128::from(limit.burst.max(1)) * TOKEN, at_ns: 0 }
    }

    fn refilled(&self, limit: RateLimit, now_ns: u64) -> u128 {
        let cap = u128::from(limit.burst.max(1)) * TOKEN;
        let elapsed = u128::from(now_ns.saturating_sub(self.at_ns));
        (self.tokens + elapsed * u128::from(limit.per_s)).min(cap)
    }
}

/// Where applying an input puts what it produced, already sequenced.
pub trait Outputs {
    /// OUCH reply `sequence` of `session`'s outbound stream.
    fn reply(&mut self, session: SessionId, sequence: u64, msg: &[u8]);
    /// ITCH message with MoldUDP64 sequence `sequence`.
    fn market(&mut self, sequence: u64, msg: &[u8]);
}

/// Outputs nobody will send (recovery, a following standby): the state keeps them for later requests.
pub struct Discard;

impl Outputs for Discard {
    fn reply(&mut self, _: SessionId, _: u64, _: &[u8]) {}
    fn market(&mut self, _: u64, _: &[u8]) {}
}

/// One session's outbound stream.
struct ReplyBook {
    next_sequence: u64,
    last_user_ref: UserRef,
    limit: RateLimit,
    bucket: Bucket,
    store: RetransmitStore,
    outcomes: OutcomeRing,
}

impl ReplyBook {
    /// Gives `msg` the session's next sequence, keeps it for re-requests (and, when it is the first reply to
    /// `first_reply_to`, for that UserRefNum's repeats) and hands it on.
    fn sequence(&mut self, session: SessionId, first_reply_to: Option<UserRef>, msg: &[u8], out: &mut impl Outputs) {
        let sequence = self.next_sequence;
        // Cannot fail: every OUCH reply fits a slot (REPLY_BYTES_MAX ≥ the largest we send).
        let _ = self.store.put(sequence, msg);
        if let Some(r) = first_reply_to {
            self.outcomes.record(r, sequence);
        }
        self.next_sequence += 1;
        out.reply(session, sequence, msg);
    }
}

/// The market-data numbering.
struct MdBook {
    next_sequence: u64,
    store: RetransmitStore,
}

impl MdBook {
    /// Gives `msg` the next MoldUDP64 sequence, keeps it for retransmission and hands it on.
    fn publish(&mut self, msg: &[u8], out: &mut impl Outputs) {
        let sequence = self.next_sequence;
        // Cannot fail: every ITCH message fits a slot.
        let _ = self.store.put(sequence, msg);
        self.next_sequence += 1;
        out.market(sequence, msg);
    }
}

pub struct Exchange {
    engine: Engine,
    translator: Translator,
    books: Vec<ReplyBook>,
    md: MdBook,
    /// Timestamp of the last input applied: the sequencer's clock never goes below it.
    last_timestamp: u64,
    /// The market's offset from UTC for the day, from the day's journaled open: OUCH and ITCH timestamps count
    /// from the market's local midnight (Nasdaq counts from midnight Eastern).
    utc_offset_ns: i64,
    limits: ExchangeLimits,
}

impl Exchange {
    /// `rates[session]` limits that session's messages (missing entries: unlimited).
    pub fn new(capacity: Capacity, translator: Translator, limits: ExchangeLimits, rates: &[RateLimit]) -> Exchange {
        Exchange::with_engine(Engine::new(capacity), translator, limits, rates)
    }

    fn with_engine(engine: Engine, mut translator: Translator, limits: ExchangeLimits, rates: &[RateLimit]) -> Exchange {
        translator.size_order_refs(engine.capacity().orders_max as usize);
        let outcomes = limits.outcomes_kept.next_power_of_two();
        let books = (0..limits.sessions)
            .map(|i| {
                let limit = rates.get(usize::from(i)).copied().unwrap_or_default();
                (limit, Bucket::full(limit))
            })
            .map(|(limit, bucket)| ReplyBook {
                next_sequence: 1,
                last_user_ref: 0,
                limit,
                bucket,
                store: RetransmitStore::new(limits.replies_kept, REPLY_BYTES_MAX),
                outcomes: OutcomeRing::new(outcomes),
            })
            .collect();
        let md = MdBook { next_sequence: 1, store: RetransmitStore::new(limits.market_kept, ITCH_BYTES_MAX) };
        Exchange { engine, translator, books, md, last_timestamp: 0, utc_offset_ns: 0, limits }
    }

    /// Applies the next journaled input: refuses any seq but `last_seq() + 1`, so a gap or a repeat can never be
    /// folded silently into the state.
    pub fn apply(&mut self, input: &Input, echo: &Echo, out: &mut impl Outputs) -> Result<(), ApplyError> {
        check_next(self.engine.last_seq(), input.seq)?;
        self.last_timestamp = self.last_timestamp.max(input.timestamp);
        self.translator.remember(&input.command, echo);
        let used = match input.command {
            Command::NewOrder(o) => Some((o.session, o.user_ref)),
            Command::Replace(r) => Some((r.session, r.new_user_ref)),
            Command::Refuse(r) if r.introduces_ref => Some((r.session, r.user_ref)),
            Command::MassCancel(m) => Some((m.session, m.user_ref)),
            Command::SetOrderEntry(c) => Some((c.session, c.user_ref)),
            _ => None,
        };
        if let Some((session, user_ref)) = used {
            if let Some(b) = self.books.get_mut(usize::from(session)) {
                b.last_user_ref = b.last_user_ref.max(user_ref);
            }
        }
        // Every message a session sent that was taken (anything but a rate-limit refusal) spends a token.
        let sender = match input.command {
            Command::NewOrder(o) => Some(o.session),
            Command::Cancel(c) => Some(c.session),
            Command::Replace(r) => Some(r.session),
            Command::Refuse(r) if r.reason != RATE_LIMITED => Some(r.session),
            Command::MassCancel(m) => Some(m.session),
            Command::SetOrderEntry(c) => Some(c.session),
            Command::AccountQuery(session) => Some(session),
            _ => None,
        };
        if let Some(b) = sender.and_then(|s| self.books.get_mut(usize::from(s))) {
            if b.limit.per_s > 0 {
                let t = b.bucket.refilled(b.limit, input.timestamp);
                b.bucket = Bucket { tokens: t.saturating_sub(TOKEN), at_ns: input.timestamp.max(b.bucket.at_ns) };
            }
        }
        if let Command::MarketHours(MarketHours::Open { utc_offset_s }) = input.command {
            self.utc_offset_ns = i64::from(utc_offset_s) * 1_000_000_000;
        }
        let time_of_day = time_of_day(input.timestamp, self.utc_offset_ns);
        let mut sink = Sink { translator: &mut self.translator, books: &mut self.books, md: &mut self.md, out, time_of_day };
        self.engine.apply(input, &mut sink);
        if let Command::MarketHours(hours) = input.command {
            // The day's bounds are journaled inputs like any other, so the spin is sequenced once: a restart
            // or a failover replays it into the retransmission store and never sends it again.
            let md = &mut self.md;
            self.translator.on_market_hours(hours, time_of_day, &mut |msg| md.publish(msg, out));
        }
        if let Command::AccountQuery(session) = input.command {
            self.answer_account_query(session, time_of_day, out);
        }
        Ok(())
    }

    /// Account Query Response (OUCH 5.0 section 3.17): "the next available UserRefNum", one above the highest the
    /// session used, which this state keeps (every Enter, Replace, Mass Cancel and order-entry switch, refused or
    /// not). Sequenced like any reply, so a re-request or a replay returns the same bytes.
    fn answer_account_query(&mut self, session: SessionId, time_of_day: u64, out: &mut impl Outputs) {
        let Some(b) = self.books.get_mut(usize::from(session)) else { return };
        let next_user_ref = b.last_user_ref.saturating_add(1);
        let m = Outbound::AccountQueryResponse { timestamp: time_of_day, next_user_ref };
        let mut msg = [0u8; ouch::field::account_query_response::LEN];
        if let Ok(n) = m.emit(&mut msg) {
            b.sequence(session, None, &msg[..n], out);
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn translator(&self) -> &Translator {
        &self.translator
    }

    pub fn limits(&self) -> ExchangeLimits {
        self.limits
    }

    /// Seq of the last input applied.
    pub fn last_seq(&self) -> u64 {
        self.engine.last_seq()
    }

    /// The latest timestamp applied (sequencer time must continue from here).
    pub fn last_timestamp(&self) -> u64 {
        self.last_timestamp
    }

    /// Whether an Enter or Replace Order with `user_ref` would be a repeat: UserRefNums must strictly increase per
    /// session, and one at or below the highest used is a retransmission, never executed again.
    pub fn is_repeat(&self, session: SessionId, user_ref: UserRef) -> bool {
        self.books.get(usize::from(session)).is_some_and(|b| user_ref <= b.last_user_ref)
    }

    /// Whether `session` may send one more message at sequencer time `now_ns` (its rate limit has a token).
    pub fn rate_allows(&self, session: SessionId, now_ns: u64) -> bool {
        self.books
            .get(usize::from(session))
            .is_none_or(|b| b.limit.per_s == 0 || b.bucket.refilled(b.limit, now_ns) >= TOKEN)
    }

    /// The sequence of the first reply to `user_ref` in `session`'s stream, if still known.
    pub fn first_reply(&self, session: SessionId, user_ref: UserRef) -> Option<u64> {
        self.books.get(usize::from(session))?.outcomes.lookup(user_ref)
    }

    /// The sequence `session`'s next reply will have.
    pub fn next_reply_sequence(&self, session: SessionId) -> u64 {
        self.books.get(usize::from(session)).map_or(1, |b| b.next_sequence)
    }

    /// The oldest reply of `session` still kept (what a login or a re-request can start from).
    pub fn oldest_reply_sequence(&self, session: SessionId) -> u64 {
        let next = self.next_reply_sequence(session);
        next.saturating_sub(self.limits.replies_kept as u64).max(1)
    }

    /// Reply `sequence` of `session`, if kept.
    pub fn reply(&self, session: SessionId, sequence: u64) -> Option<&[u8]> {
        self.books.get(usize::from(session))?.store.get(sequence)
    }

    /// The MoldUDP64 sequence the next ITCH message will have.
    pub fn next_market_sequence(&self) -> u64 {
        self.md.next_sequence
    }

    /// ITCH message `sequence`, if kept.
    pub fn market(&self, sequence: u64) -> Option<&[u8]> {
        self.md.store.get(sequence)
    }

    /// The whole state as a snapshot payload: the engine's snapshot (so operator tools that know only the engine
    /// can read it), then the exchange's own state. See [`bourse_persist::snapshot::composite`].
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut engine = Vec::new();
        self.engine.snapshot(&mut engine);
        let mut rest = Vec::new();
        rest.extend_from_slice(SNAPSHOT_MAGIC);
        for v in [self.limits.sessions as u64, self.limits.replies_kept as u64, self.limits.market_kept as u64] {
            rest.extend_from_slice(&v.to_le_bytes());
        }
        for b in &self.books {
            rest.extend_from_slice(&b.next_sequence.to_le_bytes());
            rest.extend_from_slice(&u64::from(b.last_user_ref).to_le_bytes());
            rest.extend_from_slice(&b.bucket.tokens.to_le_bytes());
            rest.extend_from_slice(&b.bucket.at_ns.to_le_bytes());
            b.store.write_to(&mut rest);
            b.outcomes.write_to(&mut rest);
        }
        rest.extend_from_slice(&self.md.next_sequence.to_le_bytes());
        rest.extend_from_slice(&self.last_timestamp.to_le_bytes());
        rest.extend_from_slice(&self.utc_offset_ns.to_le_bytes());
        self.md.store.write_to(&mut rest);
        self.translator.write_records(&mut rest);
        self.translator.write_order_refs(&mut rest);
        bourse_persist::snapshot::composite::write(&engine, &rest, out);
    }

    /// Restores a snapshot written by [`Exchange::snapshot`] with the same limits; every field is checked.
    pub fn restore(
        payload: &[u8],
        translator: Translator,
        limits: ExchangeLimits,
        rates: &[RateLimit],
    ) -> Result<Exchange, String> {
        let (engine_bytes, rest) = bourse_persist::snapshot::composite::split(payload)
            .ok_or("not an exchange snapshot (it holds the engine alone)")?;
        let engine = Engine::restore(engine_bytes).map_err(|e| e.to_string())?;
        let mut x = Exchange::with_engine(engine, translator, limits, rates);
        let mut r = rest;
        let corrupt = |what: &str| format!("exchange snapshot: {what}");
        match take(&mut r, SNAPSHOT_MAGIC.len()) {
            Some(m) if m == &SNAPSHOT_MAGIC[..] => {}
            Some(m) if m.starts_with(b"BXCHST") => {
                return Err(corrupt(&format!(
                    "format {} is not the {} this build reads (written by another build: move the snapshot \
                     aside and recover from the WAL)",
                    String::from_utf8_lossy(m),
                    String::from_utf8_lossy(SNAPSHOT_MAGIC)
                )))
            }
            _ => return Err(corrupt("bad magic")),
        }
        let shape = [limits.sessions as u64, limits.replies_kept as u64, limits.market_kept as u64];
        for want in shape {
            if take_u64(&mut r) != Some(want) {
                return Err(corrupt("taken with other limits (sessions, replies or market messages kept)"));
            }
        }
        for b in x.books.iter_mut() {
            b.next_sequence = take_u64(&mut r).filter(|&s| s >= 1).ok_or_else(|| corrupt("reply sequence"))?;
            b.last_user_ref = take_u64(&mut r)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| corrupt("last UserRefNum"))?;
            let tokens = take(&mut r, 16).and_then(|b| b.try_into().ok()).map(u128::from_le_bytes);
            let at_ns = take_u64(&mut r);
            b.bucket = match (tokens, at_ns) {
                (Some(tokens), Some(at_ns)) => Bucket { tokens: tokens.min(Bucket::full(b.limit).tokens), at_ns },
                _ => return Err(corrupt("rate-limit bucket")),
            };
            b.store.read_from(&mut r).ok_or_else(|| corrupt("reply store"))?;
            b.outcomes.read_from(&mut r).ok_or_else(|| corrupt("UserRefNum index"))?;
        }
        x.md.next_sequence = take_u64(&mut r).filter(|&s| s >= 1).ok_or_else(|| corrupt("market sequence"))?;
        x.last_timestamp = take_u64(&mut r).ok_or_else(|| corrupt("last timestamp"))?;
        x.utc_offset_ns = take_u64(&mut r)
            .map(|v| v as i64)
            .filter(|v| v.unsigned_abs() <= UTC_OFFSET_S_MAX.unsigned_abs() as u64 * 1_000_000_000)
            .ok_or_else(|| corrupt("market UTC offset"))?;
        x.md.store.read_from(&mut r).ok_or_else(|| corrupt("market store"))?;
        x.translator.read_records(&mut r).ok_or_else(|| corrupt("order records"))?;
        x.translator.read_order_refs(&mut r).ok_or_else(|| corrupt("order reference numbers"))?;
        if !r.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(x)
    }
}

/// 02: the Order Reference Number table follows the order records (01 had none). 03: the market's UTC offset
/// follows the last timestamp.
const SNAPSHOT_MAGIC: &[u8; 8] = b"BXCHST03";

/// Nanoseconds since the market's local midnight at `timestamp` (nanoseconds since the Unix epoch). Runs for every
/// input: 64-bit arithmetic (one division, as the UTC `%` it replaced), not 128-bit. Epoch nanoseconds fit an i64
/// until 2262 and the offset is at most 18 h, so neither the conversion nor the sum can overflow before then.
#[inline]
pub fn time_of_day(timestamp: u64, utc_offset_ns: i64) -> u64 {
    let local = i64::try_from(timestamp).unwrap_or(i64::MAX).saturating_add(utc_offset_ns);
    local.rem_euclid(DAY_NS as i64) as u64
}


impl Replicated for Exchange {
    fn last_seq(&self) -> u64 {
        self.engine.last_seq()
    }

    fn apply_record(&mut self, record: &Record) -> Result<(), ApplyError> {
        self.apply(&record.input, &record.echo, &mut Discard)
    }
}

/// The engine's sink: translates each event and sequences what it produces.
struct Sink<'a, O> {
    translator: &'a mut Translator,
    books: &'a mut [ReplyBook],
    md: &'a mut MdBook,
    out: &'a mut O,
    time_of_day: u64,
}

impl<O: Outputs> EventSink for Sink<'_, O> {
    fn event(&mut self, event: &Event) {
        let (books, md) = (&mut *self.books, &mut *self.md);
        // Both closures hand their message on; they never run at the same time.
        let out = core::cell::RefCell::new(&mut *self.out);
        self.translator.on_event(
            event,
            self.time_of_day,
            &mut |session, first_reply_to, msg| {
                if let Some(b) = books.get_mut(usize::from(session)) {
                    b.sequence(session, first_reply_to, msg, &mut **out.borrow_mut());
                }
            },
            &mut |msg| md.publish(msg, &mut **out.borrow_mut()),
        );
    }
}

#[cfg(test)]
mod tests;
