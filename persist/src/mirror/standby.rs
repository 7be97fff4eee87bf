//! The standby's side of the mirror: lands the primary's bytes, validates them, reports durable progress, and
//! promotes itself when the primary falls silent.

use super::frame::{Frame, FRAME_MAX_BYTES};
use super::record::RecordFormat;
use super::{send_frame, MirrorConfig, MirrorError, MirrorStats, MirrorTransport, Position};

/// Records that passed validation, in log order, ready for `Engine::apply` and the standby's own WAL durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated<'a> {
    /// The records' bytes, exactly as the primary's log holds them between stream offsets `from.offset` and
    /// `to.offset`: a contiguous stretch of the landing ring, or a copy of one record that wraps around its end.
    pub bytes: &'a [u8],
    /// Position before the first record (its seq is `from.seq + 1`).
    pub from: Position,
    /// Position after the last record.
    pub to: Position,
}

/// The appliance's side of the standby: applies what the mirror validated and says what is durable.
pub trait StandbyHost {
    /// Called once per batch, in order, never twice for a seq. The bytes are already in the standby's WAL region;
    /// the host applies them to its engine and starts making them durable under its WAL mode.
    fn on_validated(&mut self, batch: Validated<'_>);
    /// How far the standby's own WAL is durable now. Must never exceed what was handed to `on_validated`.
    fn durable(&mut self) -> Position;
}

/// Something the appliance must act on, returned once from [`Standby::tick`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyEvent {
    /// The primary was silent for the promotion timeout: serve as primary in `epoch` from `at` (everything up to
    /// `at` was validated and handed to the host). Build a [`super::Primary`] with this epoch and start.
    Promoted { epoch: u64, at: Position },
    /// A newer epoch began at `truncate_to`, and this node's log runs past it (it was a primary that kept writing
    /// after being failed over). Truncate the WAL to `truncate_to`, rebuild the engine from snapshot and replay, then
    /// follow again with a new `Standby` in `epoch`.
    MustResync { epoch: u64, truncate_to: Position },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Following,
    Promoted,
    Resync,
}

/// Standby state machine. Drive it from one thread with `tick`.
pub struct Standby<R: RecordFormat> {
    config: MirrorConfig,
    format: R,
    epoch: u64,
    role: Role,
    validated: Position,
    durable: Position,
    acked: Option<Position>,
    /// The last landed notice sent (validated, not yet durable).
    landed_sent: Option<Position>,
    /// Tail the primary last announced in a heartbeat.
    primary_tail_seq: u64,
    /// Whether validation has reached an announced primary tail since this standby started following.
    synced_once: bool,
    /// Whether the primary has been heard in the current epoch since the last silence; until then we send Hello.
    attached: bool,
    last_heard_ns: Option<u64>,
    last_heartbeat_ns: Option<u64>,
    last_hello_ns: Option<u64>,
    hello_now: bool,
    fence_reply_due: bool,
    event: Option<StandbyEvent>,
    frame_buf: Box<[u8]>,
    /// One record that wraps around the end of the landing ring, reassembled (records never exceed a write chunk).
    scratch: Box<[u8]>,
    stats: MirrorStats,
}

/// The seq nearest `base` whose low 32 bits are `low`. The verbs transport's immediate carries only the low 32 bits
/// of a tail seq, and a notice may name a seq behind the standby's validated one (a retransmission of bytes it
/// already holds) as well as ahead of it. The primary is never 2^31 records away from the standby's validated seq
/// (that would take a 128 GiB landing ring of 64-byte records, and the in-flight window is far smaller), so the
/// nearest candidate is the right one, across the 32-bit wrap in either direction. Below zero there is no seq: the
/// candidate in the first 2^32 is taken.
pub fn expand_seq32(base: u64, low: u32) -> u64 {
    let distance = low.wrapping_sub(base as u32) as i32;
    base.checked_add_signed(distance as i64).unwrap_or(low as u64)
}

impl<R: RecordFormat> Standby<R> {
    /// A standby in `epoch` whose own WAL recovered up to `durable`.
    pub fn new(config: MirrorConfig, format: R, epoch: u64, durable: Position) -> Standby<R> {
        config.check();
        Standby {
            config,
            format,
            epoch,
            role: Role::Following,
            validated: durable,
            durable,
            acked: None,
            landed_sent: None,
            primary_tail_seq: 0,
            synced_once: false,
            attached: false,
            last_heard_ns: None,
            last_heartbeat_ns: None,
            last_hello_ns: None,
            hello_now: true,
            fence_reply_due: false,
            event: None,
            frame_buf: vec![0u8; FRAME_MAX_BYTES].into_boxed_slice(),
            scratch: vec![0u8; config.write_chunk_max_bytes].into_boxed_slice(),
            stats: MirrorStats::default(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn validated(&self) -> Position {
        self.validated
    }
    pub fn durable(&self) -> Position {
        self.durable
    }
    pub fn is_promoted(&self) -> bool {
        self.role == Role::Promoted
    }
    /// Whether validation has reached the primary's announced tail at least once (a precondition for promotion).
    pub fn synced_once(&self) -> bool {
        self.synced_once
    }
    pub fn stats(&self) -> MirrorStats {
        self.stats
    }

    /// Polls the transport, lands and validates writes, reports durable progress, and decides promotion. `region` is
    /// the landing ring, `region_size_bytes` long (the same bytes the verbs transport registers for remote writes):
    /// stream offset `o` lands at `o % region_size_bytes`.
    pub fn tick<T: MirrorTransport + ?Sized, H: StandbyHost>(
        &mut self,
        now_ns: u64,
        region: &mut [u8],
        transport: &mut T,
        host: &mut H,
    ) -> Result<Option<StandbyEvent>, MirrorError> {
        if region.len() as u64 != self.config.region_size_bytes {
            return Err(MirrorError::RegionSize { region_bytes: region.len(), config_bytes: self.config.region_size_bytes });
        }
        let mut work = transport.poll(&mut |bytes| self.on_frame(now_ns, region, host, bytes))?;
        let durable = host.durable();
        if durable > self.validated {
            return Err(MirrorError::DurableBeyondValidated { durable, validated: self.validated });
        }
        self.durable = self.durable.max(durable);
        if self.fence_reply_due {
            self.fence_reply_due = false;
            let f = Frame::Fence { epoch: self.epoch, epoch_start_seq: self.validated.seq, epoch_start_offset: self.validated.offset };
            work += send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? as usize;
        }
        if self.role != Role::Following {
            return Ok(self.event.take());
        }
        let silent_ns = self.last_heard_ns.map(|t| now_ns.saturating_sub(t));
        if silent_ns.is_some_and(|s| s >= self.config.promote_after_silence_ns) && self.synced_once {
            self.role = Role::Promoted;
            self.epoch += 1;
            self.event = Some(StandbyEvent::Promoted { epoch: self.epoch, at: self.validated });
            return Ok(self.event.take());
        }
        if silent_ns.is_some_and(|s| s >= 2 * self.config.heartbeat_interval_ns) {
            // Quiet for two periods: the link may have been re-established, so announce our position again.
            self.attached = false;
        }
        self.send_due(now_ns, transport)?;
        let _ = work;
        Ok(self.event.take())
    }

    fn send_due<T: MirrorTransport + ?Sized>(&mut self, now_ns: u64, transport: &mut T) -> Result<(), MirrorError> {
        let period = self.config.heartbeat_interval_ns;
        if !self.attached && (self.hello_now || self.last_hello_ns.is_none_or(|t| now_ns.saturating_sub(t) >= period)) {
            let f = Frame::Hello {
                epoch: self.epoch,
                region_size_bytes: self.config.region_size_bytes,
                durable_seq: self.durable.seq,
                durable_offset: self.durable.offset,
            };
            if send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? {
                self.hello_now = false;
                self.last_hello_ns = Some(now_ns);
            }
        }
        // Landed first: under ack = "replicated" the primary releases on this notice, before either node's msync.
        if self.validated.offset > self.durable.offset && self.landed_sent.is_none_or(|l| self.validated.offset > l.offset) {
            let f = Frame::Landed { epoch: self.epoch, landed_seq: self.validated.seq, landed_offset: self.validated.offset };
            if send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? {
                self.landed_sent = Some(self.validated);
            }
        }
        if self.acked.is_none_or(|a| self.durable.offset > a.offset) {
            let f = Frame::Ack { epoch: self.epoch, durable_seq: self.durable.seq, durable_offset: self.durable.offset };
            if send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)? {
                self.acked = Some(self.durable);
                self.last_heartbeat_ns = Some(now_ns);
            }
        } else if self.last_heartbeat_ns.is_none_or(|t| now_ns.saturating_sub(t) >= period) {
            let f = Frame::Heartbeat { epoch: self.epoch, seq: self.durable.seq, offset: self.durable.offset };
            send_frame(transport, &mut self.frame_buf, &f, &mut self.stats)?;
            self.last_heartbeat_ns = Some(now_ns);
        }
        Ok(())
    }

    fn on_frame<H: StandbyHost>(&mut self, now_ns: u64, region: &mut [u8], host: &mut H, bytes: &[u8]) {
        self.stats.frames_received += 1;
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(_) => {
                self.stats.frames_dropped_malformed += 1;
                return;
            }
        };
        let epoch = frame.epoch();
        if epoch < self.epoch {
            self.stats.frames_stale_epoch += 1;
            self.fence_reply_due = true;
            return;
        }
        if epoch > self.epoch {
            self.on_newer_epoch(&frame);
            return;
        }
        if self.role != Role::Following {
            self.stats.frames_rejected += 1;
            return;
        }
        match frame {
            Frame::Write { epoch, offset, tail_seq, bytes } => {
                self.heard(now_ns);
                self.on_write(region, host, epoch, offset, tail_seq, bytes);
            }
            Frame::Tail { epoch, tail_seq } => {
                // One-sided writes have landed up to `tail_seq`, at most a ring's length beyond what is validated.
                self.heard(now_ns);
                let tail_seq = expand_seq32(self.validated.seq, tail_seq as u32);
                let limit = self.validated.offset + region.len() as u64;
                let before = self.validated;
                self.advance(region, host, epoch, limit, tail_seq);
                if tail_seq > before.seq && self.validated == before {
                    // The notice names records we cannot find at our validated offset: they landed beyond it (the
                    // primary believes we are further than we are, or a write was lost). Announce our position
                    // again so that the primary resends from there (at most one Hello a heartbeat period).
                    self.stats.writes_gap += 1;
                    self.attached = false;
                }
            }
            Frame::Heartbeat { seq, .. } => {
                self.heard(now_ns);
                self.primary_tail_seq = self.primary_tail_seq.max(seq);
                self.note_sync();
            }
            Frame::Hello { .. } | Frame::Ack { .. } | Frame::Landed { .. } | Frame::Fence { .. } => self.stats.frames_rejected += 1,
        }
    }

    fn heard(&mut self, now_ns: u64) {
        self.last_heard_ns = Some(now_ns);
        self.attached = true;
    }

    fn note_sync(&mut self) {
        if self.validated.seq >= self.primary_tail_seq {
            self.synced_once = true;
        }
    }

    /// A frame from a newer epoch. Only `Fence` says where that epoch began, which decides whether this log can
    /// simply continue; any other kind makes us send `Hello` in our old epoch, which the new primary answers with
    /// `Fence`.
    fn on_newer_epoch(&mut self, frame: &Frame<'_>) {
        let Frame::Fence { epoch, epoch_start_seq, epoch_start_offset } = *frame else {
            self.hello_now = true;
            self.attached = false;
            return;
        };
        let start = Position { seq: epoch_start_seq, offset: epoch_start_offset };
        if self.validated.seq > start.seq {
            self.role = Role::Resync;
            self.epoch = epoch;
            self.event = Some(StandbyEvent::MustResync { epoch, truncate_to: start });
            return;
        }
        // Our whole log precedes the new epoch: keep following, in the new epoch, from where we are.
        self.epoch = epoch;
        self.role = Role::Following;
        self.attached = false;
        self.hello_now = true;
        self.synced_once = false;
        self.last_heard_ns = None;
    }

    fn on_write<H: StandbyHost>(&mut self, region: &mut [u8], host: &mut H, epoch: u64, offset: u64, tail_seq: u64, bytes: &[u8]) {
        let end = offset.saturating_add(bytes.len() as u64);
        if bytes.len() > region.len() || !offset.is_multiple_of(64) {
            self.stats.frames_rejected += 1;
            return;
        }
        if offset > self.validated.offset {
            // Lost or reordered predecessors, or a primary that believes we are further than we are (it started
            // later than our log, or we restarted): announce our position again, at most once a heartbeat period.
            self.stats.writes_gap += 1;
            self.attached = false;
            return;
        }
        if end <= self.validated.offset {
            self.stats.writes_duplicate += 1;
            return;
        }
        // Validated bytes are never rewritten: land only what extends the validated prefix. It is at most a ring's
        // length, so it overwrites only bytes that were validated and handed over long ago.
        let skip = (self.validated.offset - offset) as usize;
        land(region, self.validated.offset, &bytes[skip..]);
        let before = self.validated;
        self.advance(region, host, epoch, end, tail_seq);
        if self.validated.offset != end && self.validated == before {
            self.stats.frames_rejected += 1;
        }
    }

    /// Validates records from the validated position up to `limit_offset` and `limit_seq`, then hands the new ones
    /// to the host in contiguous stretches of the ring (a record that wraps around the ring's end goes alone, from
    /// `scratch`). Stops at the first record that fails any check; it is counted and will be rewritten by a
    /// retransmission.
    fn advance<H: StandbyHost>(&mut self, region: &[u8], host: &mut H, epoch: u64, limit_offset: u64, limit_seq: u64) {
        let ring = region.len() as u64;
        let from = self.validated;
        let mut batch = from;
        let mut at = from;
        while at.offset < limit_offset && at.seq < limit_seq {
            let i = (at.offset % ring) as usize;
            if i == 0 && at != batch {
                deliver(region, host, batch, at);
                batch = at;
            }
            let arrived = (limit_offset - at.offset) as usize;
            let contiguous = arrived.min(region.len() - i);
            let mut wraps = false;
            let mut checked = self.format.check(&region[i..i + contiguous]);
            if checked.is_err() && contiguous < arrived {
                // Possibly a record wrapping around the ring's end: reassemble what arrived and look again.
                let n = arrived.min(self.scratch.len());
                gather(region, at.offset, &mut self.scratch[..n]);
                checked = self.format.check(&self.scratch[..n]);
                wraps = true;
            }
            match checked {
                Ok(meta) if meta.seq == at.seq + 1 && meta.epoch <= epoch => {
                    let next = Position { seq: meta.seq, offset: at.offset + meta.len_bytes as u64 };
                    if wraps {
                        deliver(region, host, batch, at);
                        host.on_validated(Validated { bytes: &self.scratch[..meta.len_bytes], from: at, to: next });
                        batch = next;
                    }
                    at = next;
                }
                Ok(_) | Err(_) => {
                    self.stats.records_invalid += 1;
                    break;
                }
            }
        }
        deliver(region, host, batch, at);
        if at == from {
            return;
        }
        self.validated = at;
        self.stats.records_validated += at.seq - from.seq;
        self.note_sync();
    }
}

/// Copies `bytes` into the ring `region` at stream offset `offset`, wrapping around its end.
fn land(region: &mut [u8], offset: u64, bytes: &[u8]) {
    let i = (offset % region.len() as u64) as usize;
    let first = bytes.len().min(region.len() - i);
    region[i..i + first].copy_from_slice(&bytes[..first]);
    region[..bytes.len() - first].copy_from_slice(&bytes[first..]);
}

/// Copies `out.len()` bytes of the ring `region` from stream offset `offset`, wrapping around its end.
fn gather(region: &[u8], offset: u64, out: &mut [u8]) {
    let i = (offset % region.len() as u64) as usize;
    let first = out.len().min(region.len() - i);
    out[..first].copy_from_slice(&region[i..i + first]);
    let rest = out.len() - first;
    out[first..].copy_from_slice(&region[..rest]);
}

/// Hands the validated records between `from` and `to` — contiguous in the ring — to the host.
fn deliver<H: StandbyHost>(region: &[u8], host: &mut H, from: Position, to: Position) {
    if to == from {
        return;
    }
    let i = (from.offset % region.len() as u64) as usize;
    let n = (to.offset - from.offset) as usize;
    host.on_validated(Validated { bytes: &region[i..i + n], from, to });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_expand_seq32_across_wrap() {
        assert_eq!(expand_seq32(0, 5), 5);
        assert_eq!(expand_seq32(10, 10), 10);
        assert_eq!(expand_seq32(0xffff_fff0, 0x10), 0x1_0000_0010);
        assert_eq!(expand_seq32(0x1_0000_0002, 0x3), 0x1_0000_0003);
        assert_eq!(expand_seq32(0x2_ffff_ffff, 0xffff_ffff), 0x2_ffff_ffff);
    }

    /// Hands queued frames to `poll` and records what is sent.
    #[derive(Default)]
    struct Loopback {
        inbound: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl MirrorTransport for Loopback {
        fn send(&mut self, frame: &[u8]) -> Result<crate::mirror::Sent, crate::mirror::TransportError> {
            self.sent.push(frame.to_vec());
            Ok(crate::mirror::Sent::Queued)
        }
        fn poll(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, crate::mirror::TransportError> {
            let n = self.inbound.len();
            for f in self.inbound.drain(..) {
                on_frame(&f);
            }
            Ok(n)
        }
    }

    struct Host(Position);
    impl StandbyHost for Host {
        fn on_validated(&mut self, batch: Validated<'_>) {
            self.0 = batch.to;
        }
        fn durable(&mut self) -> Position {
            self.0
        }
    }

    fn frame(f: Frame<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; FRAME_MAX_BYTES];
        let n = f.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn hellos(t: &Loopback) -> usize {
        t.sent.iter().filter(|f| matches!(Frame::parse(f), Ok(Frame::Hello { .. }))).count()
    }

    #[test]
    fn test_tail_notice_beyond_validated_records_is_a_gap_and_sends_hello() {
        // A verbs Tail notice for seq 5 while the ring holds nothing valid at our offset: the primary wrote beyond
        // our validated prefix. We must count a gap and announce our position again, not wait for ever.
        let config = MirrorConfig::new(64 * 1024);
        let mut standby = Standby::new(config, crate::mirror::Crc32cRecords, 1, Position::default());
        let mut region = vec![0u8; config.region_size_bytes as usize];
        let mut host = Host(Position::default());
        let mut t = Loopback::default();
        standby.tick(0, &mut region, &mut t, &mut host).unwrap();
        assert_eq!(hellos(&t), 1, "a new standby says Hello");
        t.inbound.push(frame(Frame::Heartbeat { epoch: 1, seq: 5, offset: 5 * 64 }));
        t.inbound.push(frame(Frame::Tail { epoch: 1, tail_seq: 5 }));
        let period = config.heartbeat_interval_ns;
        standby.tick(period / 2, &mut region, &mut t, &mut host).unwrap();
        assert_eq!(standby.stats().writes_gap, 1);
        assert_eq!(standby.validated(), Position::default());
        standby.tick(period + 1, &mut region, &mut t, &mut host).unwrap();
        assert_eq!(hellos(&t), 2, "the gap makes the standby announce its position again");
        // A notice for what we already hold (seq 0 = nothing beyond) is no gap.
        t.inbound.push(frame(Frame::Tail { epoch: 1, tail_seq: 0 }));
        standby.tick(period + 2, &mut region, &mut t, &mut host).unwrap();
        assert_eq!(standby.stats().writes_gap, 1);
    }

    #[test]
    fn test_expand_seq32_picks_nearest_behind_too() {
        // A retransmitted notice for records already validated lies behind the base: it must not be read as 2^32
        // records ahead.
        assert_eq!(expand_seq32(100, 90), 90);
        assert_eq!(expand_seq32(0x1_0000_0005, 0xffff_fff0), 0xffff_fff0);
        assert_eq!(expand_seq32(0x1_0000_0005, 0x0000_0004), 0x1_0000_0004);
        // Just under half the seq space away in either direction.
        assert_eq!(expand_seq32(0x1_0000_0000, 0x7fff_ffff), 0x1_7fff_ffff);
        assert_eq!(expand_seq32(0x1_0000_0000, 0x8000_0001), 0x8000_0001);
        // Nothing below zero: the first 2^32 holds the answer.
        assert_eq!(expand_seq32(3, 0xffff_fff0), 0xffff_fff0);
    }
}
