//! The primary's side of the mirror: ships WAL bytes, tracks the standby's acks, publishes the gate.
//!
//! The primary reads its own log through [`MirrorLog`], addressed by stream offset, so the log may span any number
//! of segment files: a chunk never crosses a segment end (the next chunk starts in the next segment at the same
//! stream offset), and a standby that is far behind is served from older segments by the same code.

use super::frame::{Frame, FRAME_MAX_BYTES};
use super::gate::MirrorGate;
use super::record::RecordFormat;
use super::{send_frame, MirrorConfig, MirrorError, MirrorStats, MirrorTransport, Position};

/// The primary's log as the mirror reads it, addressed by stream offset (see [`Position`]).
pub trait MirrorLog {
    /// The local bytes from stream offset `offset` to the end of the stretch stored contiguously there (for a WAL,
    /// the end of the segment file holding `offset`; the primary reads no further than its tail), or an empty slice
    /// when this node does not hold `offset`.
    fn bytes_from(&mut self, offset: u64) -> &[u8];
}

/// A log held in one buffer: stream offset = index (simulations and tests).
impl MirrorLog for [u8] {
    fn bytes_from(&mut self, offset: u64) -> &[u8] {
        usize::try_from(offset).ok().and_then(|o| self.get(o..)).unwrap_or(&[])
    }
}

impl MirrorLog for Vec<u8> {
    fn bytes_from(&mut self, offset: u64) -> &[u8] {
        self.as_mut_slice().bytes_from(offset)
    }
}

/// Primary state machine. Drive it from one thread: `on_append` when the WAL tail moves, `tick` often (it is the
/// mirror sender and ack receiver of the aux core).
pub struct Primary<R: RecordFormat> {
    config: MirrorConfig,
    format: R,
    epoch: u64,
    /// Where this epoch began: older-epoch peers are told to truncate to here.
    epoch_start: Position,
    /// End of the local WAL: everything below it is written locally (not necessarily durable yet).
    tail: Position,
    /// Next byte to send.
    sent: Position,
    /// The standby's durable position as last reported.
    acked: Position,
    gate: MirrorGate,
    fenced_by: Option<u64>,
    /// When acks last progressed (or sending resumed from the acked offset).
    progress_ns: u64,
    last_heartbeat_ns: Option<u64>,
    last_heard_ns: Option<u64>,
    fence_reply_due: bool,
    frame_buf: Box<[u8]>,
    stats: MirrorStats,
}

/// What one received frame asks of the primary, decided inside `poll`'s callback and carried out afterwards.
struct Inbox {
    now_ns: u64,
}

impl<R: RecordFormat> Primary<R> {
    /// A primary whose epoch begins at `start` (the end of its recovered WAL, or the promotion point). The standby is
    /// assumed to be at `start` until it says otherwise in `Hello`.
    pub fn new(config: MirrorConfig, format: R, epoch: u64, start: Position) -> Primary<R> {
        config.check();
        Primary {
            config,
            format,
            epoch,
            epoch_start: start,
            tail: start,
            sent: start,
            acked: start,
            gate: MirrorGate::new(start.seq),
            fenced_by: None,
            progress_ns: 0,
            last_heartbeat_ns: None,
            last_heard_ns: None,
            fence_reply_due: false,
            frame_buf: vec![0u8; FRAME_MAX_BYTES].into_boxed_slice(),
            stats: MirrorStats::default(),
        }
    }

    /// The gate to hand to the commit index (cheap clone of a shared handle).
    pub fn gate(&self) -> MirrorGate {
        self.gate.clone()
    }

    /// The local WAL's tail moved to `tail` (records up to `tail.seq` are in the region below `tail.offset`).
    pub fn on_append(&mut self, tail: Position) {
        assert!(tail.offset >= self.tail.offset && tail.seq >= self.tail.seq, "WAL tail moved backwards");
        self.tail = tail;
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// `Some(epoch)` once a newer epoch was seen: this node must not serve until re-synced as a standby.
    pub fn fenced_by(&self) -> Option<u64> {
        self.fenced_by
    }
    pub fn acked(&self) -> Position {
        self.acked
    }
    pub fn tail(&self) -> Position {
        self.tail
    }
    /// Bytes the standby has yet to acknowledge.
    pub fn standby_lag_bytes(&self) -> u64 {
        self.tail.offset.saturating_sub(self.acked.offset)
    }
    /// Whether the standby was heard from within the promotion timeout (it may be promoting itself otherwise).
    pub fn standby_reachable(&self, now_ns: u64) -> bool {
        self.last_heard_ns.is_some_and(|t| now_ns.saturating_sub(t) < self.config.promote_after_silence_ns)
    }
    /// How long the standby has been silent (`None` if it was never heard).
    pub fn standby_silent_ns(&self, now_ns: u64) -> Option<u64> {
        self.last_heard_ns.map(|t| now_ns.saturating_sub(t))
    }
    pub fn stats(&self) -> MirrorStats {
        self.stats
    }

    /// Polls the transport, handles acks, hellos and fences, then sends due writes and heartbeats. Returns the number
    /// of frames handled and sent (zero means idle, for the caller's idle strategy).
    pub fn tick<L: MirrorLog + ?Sized, T: MirrorTransport + ?Sized>(
        &mut self,
        now_ns: u64,
        log: &mut L,
        transport: &mut T,
    ) -> Result<usize, MirrorError> {
        let inbox = Inbox { now_ns };
        let mut received = 0usize;
        transport.poll(&mut |bytes| {
            received += 1;
            self.on_frame(&inbox, log, bytes);
        })?;
        let mut work = received;
        if self.fence_reply_due {
            self.fence_reply_due = false;
            let f = Frame::Fence {
                epoch: self.epoch,
                epoch_start_seq: self.epoch_start.seq,
                epoch_start_offset: self.epoch_start.offset,
            };
            work += send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? as usize;
        }
        if self.fenced_by.is_some() {
            return Ok(work);
        }
        if self.sent.offset > self.acked.offset
            && now_ns.saturating_sub(self.progress_ns) >= self.config.retransmit_after_ns
        {
            // Acks stopped progressing: whatever was sent beyond the ack may be lost, so send it again. The standby
            // ignores the parts it already has.
            self.sent = self.acked;
            self.progress_ns = now_ns;
            self.stats.retransmits += 1;
        }
        work += self.send_writes(now_ns, log, transport)?;
        // Heartbeats go out on a fixed period even while writes flow: they carry the real tail, against which the
        // standby judges whether it is caught up.
        if self.last_heartbeat_ns.is_none_or(|t| now_ns.saturating_sub(t) >= self.config.heartbeat_interval_ns) {
            let f = Frame::Heartbeat { epoch: self.epoch, seq: self.tail.seq, offset: self.tail.offset };
            work += send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? as usize;
            self.last_heartbeat_ns = Some(now_ns);
        }
        Ok(work)
    }

    fn send_writes<L: MirrorLog + ?Sized, T: MirrorTransport + ?Sized>(
        &mut self,
        now_ns: u64,
        log: &mut L,
        transport: &mut T,
    ) -> Result<usize, MirrorError> {
        let mut sent_frames = 0;
        while self.sent.offset < self.tail.offset
            && self.sent.offset - self.acked.offset.min(self.sent.offset) < self.config.inflight_max_bytes
        {
            let bytes = log.bytes_from(self.sent.offset);
            let end = self.chunk_end(bytes)?;
            let frame = Frame::Write {
                epoch: self.epoch,
                offset: self.sent.offset,
                tail_seq: end.seq,
                bytes: &bytes[..(end.offset - self.sent.offset) as usize],
            };
            if !send_frame(transport, &mut self.frame_buf, &frame, &mut self.stats)? {
                break;
            }
            if self.sent.offset == self.acked.offset {
                // Nothing was outstanding, so the retransmission clock starts now rather than at the last ack.
                self.progress_ns = now_ns;
            }
            self.sent = end;
            sent_frames += 1;
        }
        Ok(sent_frames)
    }

    /// The record boundary ending the next chunk: whole records from `sent` up to the chunk size, the tail or the
    /// end of the stretch `bytes` (which starts at `sent`). Each record is CRC-checked before it leaves (the standby
    /// checks again after it lands).
    fn chunk_end(&self, bytes: &[u8]) -> Result<Position, MirrorError> {
        // Records are read up to the tail or the end of the stretch; chunks end at whole records within `limit`.
        let held = self.tail.offset.min(self.sent.offset + bytes.len() as u64);
        let limit = held.min(self.sent.offset + self.config.write_chunk_max_bytes as u64);
        let mut at = self.sent;
        if limit == at.offset {
            // The log does not hold `sent` although the tail is beyond it: local storage lost a segment.
            return Err(MirrorError::LocalRecord { offset: at.offset, source: super::RecordError::Missing });
        }
        while at.offset < limit {
            let rel = (at.offset - self.sent.offset) as usize;
            let end = (held - self.sent.offset) as usize;
            let meta = self.format.check(&bytes[rel..end]).map_err(|source| MirrorError::LocalRecord { offset: at.offset, source })?;
            if meta.seq != at.seq + 1 {
                return Err(MirrorError::LocalRecord { offset: at.offset, source: super::RecordError::Sequence { expected: at.seq + 1, found: meta.seq } });
            }
            let next = at.offset + meta.len_bytes as u64;
            if next > limit {
                if at == self.sent {
                    return Err(MirrorError::RecordTooLarge {
                        offset: at.offset,
                        len_bytes: meta.len_bytes,
                        chunk_max_bytes: self.config.write_chunk_max_bytes,
                    });
                }
                break;
            }
            at = Position { seq: meta.seq, offset: next };
        }
        Ok(at)
    }

    fn on_frame<L: MirrorLog + ?Sized>(&mut self, inbox: &Inbox, log: &mut L, bytes: &[u8]) {
        self.stats.frames_received += 1;
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(_) => {
                self.stats.frames_dropped_malformed += 1;
                return;
            }
        };
        let epoch = frame.epoch();
        if epoch > self.epoch {
            // Someone serves a newer epoch: this node was failed over and must stop acknowledging.
            if self.fenced_by.is_none() {
                self.gate.fence();
            }
            self.fenced_by = Some(self.fenced_by.unwrap_or(0).max(epoch));
            return;
        }
        if epoch < self.epoch {
            self.stats.frames_stale_epoch += 1;
            self.fence_reply_due = true;
            return;
        }
        self.last_heard_ns = Some(inbox.now_ns);
        match frame {
            Frame::Ack { durable_seq, durable_offset, .. } | Frame::Heartbeat { seq: durable_seq, offset: durable_offset, .. } => {
                self.on_ack(inbox.now_ns, Position { seq: durable_seq, offset: durable_offset });
            }
            Frame::Landed { landed_seq, landed_offset, .. } => {
                self.on_landed(Position { seq: landed_seq, offset: landed_offset });
            }
            Frame::Hello { region_size_bytes, durable_seq, durable_offset, .. } => {
                self.on_hello(inbox.now_ns, log, region_size_bytes, Position { seq: durable_seq, offset: durable_offset });
            }
            // Another node writing in our own epoch cannot happen in a correct deployment; ignore it rather than
            // trust it.
            Frame::Write { .. } | Frame::Fence { .. } | Frame::Tail { .. } => self.stats.frames_rejected += 1,
        }
    }

    fn on_ack(&mut self, now_ns: u64, pos: Position) {
        // An ack can only name bytes this primary sent: anything else is refused, so the gate never covers a seq the
        // standby could not have validated.
        if !self.was_sent(pos) || pos.offset < self.acked.offset {
            if pos.offset < self.acked.offset {
                self.stats.writes_duplicate += 1;
            } else {
                self.stats.frames_rejected += 1;
            }
            return;
        }
        if pos.offset > self.acked.offset {
            self.progress_ns = now_ns;
        }
        self.acked = pos;
        if self.sent.offset < pos.offset {
            self.sent = pos;
        }
        self.gate.advance(pos.seq);
    }

    /// A landed notice moves only the replicated half of the gate: flow control and retransmission stay on the
    /// durable acks. Like an ack, it can only name bytes this primary sent.
    fn on_landed(&mut self, pos: Position) {
        if !self.was_sent(pos) {
            self.stats.frames_rejected += 1;
            return;
        }
        self.gate.advance_landed(pos.seq);
    }

    /// Whether a standby's claim names only bytes this primary has sent (at most its tail).
    fn was_sent(&self, pos: Position) -> bool {
        pos.offset <= self.tail.offset && pos.seq <= self.tail.seq
    }

    fn on_hello<L: MirrorLog + ?Sized>(&mut self, now_ns: u64, log: &mut L, region_size_bytes: u64, pos: Position) {
        if region_size_bytes != self.config.region_size_bytes || !self.is_boundary(log, pos) {
            self.stats.frames_rejected += 1;
            return;
        }
        // Catch-up: resend everything after the standby's durable position, which is itself a durable claim like an
        // ack. The gate keeps its maximum, so a standby that lost data does not un-acknowledge what was released.
        if pos.offset < self.sent.offset {
            self.stats.retransmits += 1;
        }
        self.acked = pos;
        self.sent = pos;
        self.progress_ns = now_ns;
        self.gate.advance(pos.seq);
    }

    /// Whether `pos` is a record boundary of this primary's log: the record stored at `pos.offset` carries
    /// `pos.seq + 1`. Any boundary the log still holds qualifies, however old: that is how a standby that starts
    /// behind is caught up from older segments.
    fn is_boundary<L: MirrorLog + ?Sized>(&self, log: &mut L, pos: Position) -> bool {
        if pos.offset > self.tail.offset || !pos.offset.is_multiple_of(64) || pos.seq > self.tail.seq {
            return false;
        }
        if pos == self.tail {
            return true;
        }
        if pos.offset >= self.tail.offset {
            return false;
        }
        let bytes = log.bytes_from(pos.offset);
        let end = bytes.len().min((self.tail.offset - pos.offset) as usize);
        match self.format.check(&bytes[..end]) {
            Ok(meta) => meta.seq == pos.seq + 1,
            Err(_) => false,
        }
    }
}
