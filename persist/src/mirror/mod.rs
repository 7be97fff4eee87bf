//! # The standby mirror
//!
//! The primary ships its WAL bytes into the standby's WAL region at the same offsets, followed by a notice of the
//! new tail seq; the standby validates each record's CRC and sequence, hands the validated records to the appliance
//! (which applies them to the standby's own engine and makes them durable under its own WAL mode), and acknowledges
//! its durable position. The primary publishes that position through a [`MirrorGate`], which the commit index
//! combines with local durability under `ack = mirrored`.
//!
//! The protocol lives in two pure state machines, [`Primary`] and [`Standby`]. They own no clock, thread or socket:
//! each `tick(now_ns, region, transport, …)` polls received frames, reacts, and sends what is due, so the same code
//! runs over TCP, over RDMA verbs, and inside the seeded fault-injecting simulation in [`sim`]. Frames
//! ([`frame`]) carry a length, a CRC32C and the sender's epoch; a damaged frame is dropped and the bytes it carried
//! are recovered because the primary rewinds its send cursor to the standby's last acknowledged offset whenever acks
//! stop progressing for `retransmit_after_ns`.
//!
//! ## Positions, catch-up and retransmission
//!
//! A [`Position`] names a record boundary: the seq of the last record and the stream offset just past it (record
//! bytes since the log began, across segment files). The primary reads its log through [`MirrorLog`], so writes
//! follow the WAL across segment rotations. The standby lands bytes in a ring region at stream offset modulo its
//! size, accepts only bytes that extend its validated prefix (a write starting beyond it is a gap and is dropped),
//! never rewrites validated bytes, and checks every record: CRC, `seq == previous + 1`, epoch no newer than the
//! frame's. A standby that starts late or restarts sends `Hello` with its durable position; the primary checks that
//! the position is a boundary of its own log — any segment it still holds — and resends from there. Mirrored acks
//! come only from the standby's durable position, so a standby that is behind simply holds the gate back until it
//! has caught up.
//!
//! ## Epochs and failover
//!
//! Every frame and every record carries an epoch. A receiver answers an older-epoch frame with `Fence` (its epoch
//! and where that epoch began). A primary that sees a newer epoch fences itself: the gate reports fenced and
//! nothing more is acknowledged. A standby that hears nothing for `promote_after_silence_ns` (and had caught up with
//! the primary at least once) promotes itself with epoch + 1 and reports the position to serve from. A former
//! primary rejoining as standby learns from the new primary's `Fence` whether its log runs past the point where the
//! new epoch began; if so it must truncate to that point and rebuild its engine before following
//! ([`StandbyEvent::MustResync`]).
//!
//! ## Transports
//!
//! [`MirrorTransport`] is non-blocking send and poll. [`tcp`] frames the protocol over a `TCP_NODELAY` stream with
//! preallocated buffers and reconnection; `verbs` (feature `rdma`) writes the bytes one-sided with
//! `RDMA_WRITE_WITH_IMM` into the standby's registered WAL region; [`sim`] is the lossy in-memory link for tests.
//!
//! ## Integration with the WAL
//!
//! Record validation goes through [`RecordFormat`]: [`WalRecords`] wraps `wal::record::decode` for the appliance;
//! [`Crc32cRecords`] reads the same header but any body, for simulations (see [`record`]). Acks reach the WAL's
//! `CommitIndex` through [`MirrorGate::attach_commit_index`].
//!
//! Clippy holds the protocol to that: persist/clippy.toml bans clocks, sleeps, threads, files, sockets and printing,
//! and this module denies them everywhere but its I/O seams, the transports ([`tcp`], `verbs`) and [`wal_log`]
//! (which reads the WAL and paces its segment checks by the clock).
#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::disallowed_macros)]

pub mod frame;
pub mod gate;
pub mod primary;
pub mod record;
pub mod sim;
pub mod standby;
#[allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::disallowed_macros)]
pub mod tcp;
pub mod transport;
#[allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::disallowed_macros)]
pub mod wal_log;
#[cfg(feature = "rdma")]
#[allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::disallowed_macros)]
pub mod verbs;

pub use frame::{Frame, FrameError, FrameKind};
pub use gate::{AckPolicy, MirrorGate};
pub use primary::{MirrorLog, Primary};
pub use record::{Crc32cRecords, RecordError, RecordFormat, RecordMeta, WalRecords};
pub use standby::{StandbyEvent, StandbyHost, Standby, Validated};
pub use transport::{MirrorTransport, Sent, TransportError};
pub use wal_log::WalLog;

use thiserror::Error;

/// A record boundary in the log: `seq` of the last record before it and the *stream offset* just past it (the
/// bytes of every record up to it, over all segments; see `wal::segment`). Both nodes hold the same records, so a
/// position names the same boundary on both whatever their segment files look like. `Position::default()` is the
/// empty log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// Protocol timing and sizing shared by both roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Size of the standby's landing region, a ring indexed by stream offset modulo its size; identical in both
    /// nodes' configurations (checked in `Hello`: the verbs transport writes into it one-sided). At least
    /// `inflight_max_bytes + write_chunk_max_bytes`, so that bytes in flight never overwrite unvalidated ones.
    pub region_size_bytes: u64,
    /// Each side sends a frame at least this often.
    pub heartbeat_interval_ns: u64,
    /// The standby promotes itself after hearing nothing from the primary for this long.
    pub promote_after_silence_ns: u64,
    /// The primary rewinds to the standby's acknowledged offset when acks have not progressed for this long.
    pub retransmit_after_ns: u64,
    /// Largest payload of one `Write` frame (a multiple of 64, at most `frame::WRITE_PAYLOAD_MAX_BYTES`).
    pub write_chunk_max_bytes: usize,
    /// The primary never has more than this many bytes sent beyond the standby's ack.
    pub inflight_max_bytes: u64,
}

impl MirrorConfig {
    /// Defaults for a landing ring of `region_size_bytes` (at least 32 KiB): 16 KiB writes, and as many bytes in
    /// flight as the ring allows, up to 1 MiB.
    pub fn new(region_size_bytes: u64) -> MirrorConfig {
        let write_chunk_max_bytes = 16 * 1024;
        MirrorConfig {
            region_size_bytes,
            heartbeat_interval_ns: 1_000_000,
            promote_after_silence_ns: 5_000_000,
            retransmit_after_ns: 2_000_000,
            write_chunk_max_bytes,
            inflight_max_bytes: (1 << 20).min(region_size_bytes.saturating_sub(write_chunk_max_bytes as u64)),
        }
    }

    fn check(&self) {
        assert!(self.write_chunk_max_bytes > 0 && self.write_chunk_max_bytes.is_multiple_of(64));
        assert!(self.write_chunk_max_bytes <= frame::WRITE_PAYLOAD_MAX_BYTES);
        assert!(self.inflight_max_bytes >= self.write_chunk_max_bytes as u64);
        assert!(self.region_size_bytes.is_multiple_of(64));
        assert!(self.region_size_bytes >= self.inflight_max_bytes + self.write_chunk_max_bytes as u64);
        assert!(self.heartbeat_interval_ns > 0 && self.promote_after_silence_ns > self.heartbeat_interval_ns);
    }
}

/// Health counters of one side of the mirror (plain fields: read them from the thread that ticks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames that failed length, CRC, version or kind checks.
    pub frames_dropped_malformed: u64,
    /// Frames from an older epoch (answered with `Fence`).
    pub frames_stale_epoch: u64,
    /// Writes starting beyond the validated prefix (lost or reordered predecessors).
    pub writes_gap: u64,
    /// Writes entirely below the validated prefix (duplicates, retransmissions).
    pub writes_duplicate: u64,
    /// Writes or acks naming offsets or seqs that cannot be right (outside the region, past the tail, not a boundary).
    pub frames_rejected: u64,
    /// Records that failed CRC, sequence or epoch checks inside bytes that had fully arrived.
    pub records_invalid: u64,
    pub records_validated: u64,
    /// Rewinds of the send cursor: acks stalled, or a `Hello` asked for bytes already sent.
    pub retransmits: u64,
    /// Sends refused by a full or disconnected transport.
    pub sends_refused: u64,
}

/// Errors a `tick` returns: local faults, never the peer's input (bad frames are counted and dropped instead).
#[derive(Debug, Error)]
pub enum MirrorError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The primary's own region holds an invalid record below its tail: its WAL is damaged.
    #[error("local WAL record at offset {offset} invalid: {source}")]
    LocalRecord {
        offset: u64,
        #[source]
        source: RecordError,
    },
    #[error("record at offset {offset} is {len_bytes} bytes, larger than the {chunk_max_bytes}-byte write chunk")]
    RecordTooLarge { offset: u64, len_bytes: usize, chunk_max_bytes: usize },
    /// The host reported a durable position the mirror has not validated: an appliance bug, caught here so that a
    /// seq is never acknowledged unvalidated.
    #[error("host durable position {durable:?} is beyond the validated position {validated:?}")]
    DurableBeyondValidated { durable: Position, validated: Position },
    #[error("region is {region_bytes} bytes but the configuration says {config_bytes}")]
    RegionSize { region_bytes: usize, config_bytes: u64 },
}

/// Sends one frame through `transport` using `buf` for the encoding; a refused send is counted, not an error,
/// because the protocol recovers every lost frame.
fn send_frame<T: MirrorTransport + ?Sized>(
    transport: &mut T,
    buf: &mut [u8],
    frame: &Frame<'_>,
    stats: &mut MirrorStats,
) -> Result<bool, MirrorError> {
    let n = frame.emit(buf).expect("frame buffers are sized for the largest frame");
    match transport.send(&buf[..n]) {
        Ok(Sent::Queued) => {
            stats.frames_sent += 1;
            Ok(true)
        }
        Ok(Sent::Full) | Err(TransportError::Disconnected) => {
            stats.sends_refused += 1;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
