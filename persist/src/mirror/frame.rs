//! Mirror frames: the byte layout shared by every transport.
//!
//! Every frame starts with the same 24-byte header, then a body whose layout depends on the kind. All integers are
//! little-endian: both ends are x86_64 machines running this code, and the `Write` payload is the WAL's own bytes,
//! which are stored in native (little-endian) order anyway. The frame CRC lets a receiver detect a truncated or
//! corrupted frame and drop it; the primary then retransmits from the standby's last acknowledged offset.
//!
//! ```text
//!  0        4        8    9    10       12       16                24
//!  +--------+--------+----+----+--------+--------+-----------------+
//!  | crc32c | length |kind|ver |  zero (6 bytes) |      epoch       |   header, 24 bytes
//!  +--------+--------+----+----+-----------------+-----------------+
//!    crc32c covers bytes 4..length; length counts the whole frame, header included.
//!
//!  Hello (standby → primary), 48 bytes
//!  24                32                40                48
//!  +-----------------+-----------------+-----------------+
//!  | region_size_bytes | durable_seq   | durable_offset  |
//!  +-----------------+-----------------+-----------------+
//!
//!  Write (primary → standby), 48 + n bytes
//!  24                32                40       44       48            48+n
//!  +-----------------+-----------------+--------+--------+---- ... ----+
//!  |     offset      |    tail_seq     |   n    |  zero  |  WAL bytes  |
//!  +-----------------+-----------------+--------+--------+---- ... ----+
//!
//!  Ack (standby → primary), 40 bytes        Heartbeat (both ways), 40 bytes
//!  24                32                40   24                32                40
//!  +-----------------+-----------------+    +-----------------+-----------------+
//!  |   durable_seq   | durable_offset  |    |       seq       |     offset      |
//!  +-----------------+-----------------+    +-----------------+-----------------+
//!
//!  Landed (standby → primary), 40 bytes: validated (CRC-checked) in the standby's memory, not yet durable there
//!  24                32                40
//!  +-----------------+-----------------+
//!  |   landed_seq    |  landed_offset  |
//!  +-----------------+-----------------+
//!
//!  Fence (either way; "my epoch is higher"), 40 bytes
//!  24                32                40
//!  +-----------------+-----------------+
//!  |  epoch_start_seq | epoch_start_offset |   where the sender's epoch began
//!  +-----------------+-----------------+
//!
//!  Tail (transport → standby; the verbs transport's write-with-immediate notice), 32 bytes
//!  24                32
//!  +-----------------+
//!  |    tail_seq     |
//!  +-----------------+
//! ```

use thiserror::Error;

/// Version written in every frame; a receiver drops frames of any other version.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of the header common to all frames.
pub const HEADER_BYTES: usize = 24;
/// Bytes of a `Write` frame before its payload.
pub const WRITE_HEADER_BYTES: usize = 48;
/// Largest `Write` payload: bounds the receive buffers of every transport.
pub const WRITE_PAYLOAD_MAX_BYTES: usize = 64 * 1024;
/// Largest frame of any kind.
pub const FRAME_MAX_BYTES: usize = WRITE_HEADER_BYTES + WRITE_PAYLOAD_MAX_BYTES;

const _: () = assert!(WRITE_PAYLOAD_MAX_BYTES.is_multiple_of(64));
const _: () = assert!(FRAME_MAX_BYTES <= u32::MAX as usize);

mod field {
    use core::ops::Range;
    pub const CRC: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..8;
    pub const KIND: usize = 8;
    pub const VERSION: usize = 9;
    pub const ZERO: Range<usize> = 10..16;
    pub const EPOCH: Range<usize> = 16..24;
    pub const A: Range<usize> = 24..32;
    pub const B: Range<usize> = 32..40;
    pub const C: Range<usize> = 40..48;
    pub const WRITE_LEN: Range<usize> = 40..44;
    pub const WRITE_ZERO: Range<usize> = 44..48;
}

/// Frame kinds as written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Hello = 1,
    Write = 2,
    Ack = 3,
    Heartbeat = 4,
    Fence = 5,
    Tail = 6,
    Landed = 7,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Hello,
            2 => FrameKind::Write,
            3 => FrameKind::Ack,
            4 => FrameKind::Heartbeat,
            5 => FrameKind::Fence,
            6 => FrameKind::Tail,
            7 => FrameKind::Landed,
            _ => return None,
        })
    }

    /// Exact frame length of the fixed-size kinds; `Write` is variable.
    fn fixed_len(self) -> Option<usize> {
        match self {
            FrameKind::Hello => Some(48),
            FrameKind::Ack | FrameKind::Heartbeat | FrameKind::Fence | FrameKind::Landed => Some(40),
            FrameKind::Tail => Some(32),
            FrameKind::Write => None,
        }
    }
}

/// A decoded frame. `Write` borrows its payload from the received buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Hello { epoch: u64, region_size_bytes: u64, durable_seq: u64, durable_offset: u64 },
    Write { epoch: u64, offset: u64, tail_seq: u64, bytes: &'a [u8] },
    Ack { epoch: u64, durable_seq: u64, durable_offset: u64 },
    Heartbeat { epoch: u64, seq: u64, offset: u64 },
    Fence { epoch: u64, epoch_start_seq: u64, epoch_start_offset: u64 },
    Tail { epoch: u64, tail_seq: u64 },
    Landed { epoch: u64, landed_seq: u64, landed_offset: u64 },
}

/// Why a received frame was dropped.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame truncated: {have_bytes} bytes, need {need_bytes}")]
    Truncated { have_bytes: usize, need_bytes: usize },
    #[error("frame length field {length_bytes} invalid for kind {kind} (buffer {have_bytes} bytes)")]
    BadLength { kind: u8, length_bytes: usize, have_bytes: usize },
    #[error("frame crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("frame version {0} not supported")]
    Version(u8),
    #[error("frame kind {0} unknown")]
    Kind(u8),
    #[error("frame reserved bytes are not zero")]
    Reserved,
    #[error("buffer of {have_bytes} bytes too small for a {need_bytes}-byte frame")]
    BufferTooSmall { have_bytes: usize, need_bytes: usize },
    #[error("write payload of {0} bytes exceeds the maximum")]
    PayloadTooLarge(usize),
}

fn get_u32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}

fn get_u64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_le_bytes(a)
}

/// Reads the length field of a frame header, for transports that delimit a byte stream. `None` until the first
/// eight bytes are present.
pub fn peek_length(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= field::LENGTH.end).then(|| get_u32(bytes, field::LENGTH) as usize)
}

impl<'a> Frame<'a> {
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello { .. } => FrameKind::Hello,
            Frame::Write { .. } => FrameKind::Write,
            Frame::Ack { .. } => FrameKind::Ack,
            Frame::Heartbeat { .. } => FrameKind::Heartbeat,
            Frame::Fence { .. } => FrameKind::Fence,
            Frame::Tail { .. } => FrameKind::Tail,
            Frame::Landed { .. } => FrameKind::Landed,
        }
    }

    pub fn epoch(&self) -> u64 {
        match *self {
            Frame::Hello { epoch, .. }
            | Frame::Write { epoch, .. }
            | Frame::Ack { epoch, .. }
            | Frame::Heartbeat { epoch, .. }
            | Frame::Fence { epoch, .. }
            | Frame::Tail { epoch, .. }
            | Frame::Landed { epoch, .. } => epoch,
        }
    }

    /// Encoded length in bytes.
    pub fn len_bytes(&self) -> usize {
        match self {
            Frame::Write { bytes, .. } => WRITE_HEADER_BYTES + bytes.len(),
            other => other.kind().fixed_len().unwrap_or(HEADER_BYTES),
        }
    }

    /// Encodes into the front of `buf` and returns the frame's length. Never allocates.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        if let Frame::Write { bytes, .. } = self {
            if bytes.len() > WRITE_PAYLOAD_MAX_BYTES {
                return Err(FrameError::PayloadTooLarge(bytes.len()));
            }
        }
        let len = self.len_bytes();
        if buf.len() < len {
            return Err(FrameError::BufferTooSmall { have_bytes: buf.len(), need_bytes: len });
        }
        let b = &mut buf[..len];
        b[field::LENGTH].copy_from_slice(&(len as u32).to_le_bytes());
        b[field::KIND] = self.kind() as u8;
        b[field::VERSION] = FRAME_VERSION;
        b[field::ZERO].fill(0);
        b[field::EPOCH].copy_from_slice(&self.epoch().to_le_bytes());
        let (a, bb, c) = match *self {
            Frame::Hello { region_size_bytes, durable_seq, durable_offset, .. } => {
                (region_size_bytes, Some(durable_seq), Some(durable_offset))
            }
            Frame::Write { offset, tail_seq, .. } => (offset, Some(tail_seq), None),
            Frame::Ack { durable_seq, durable_offset, .. } => (durable_seq, Some(durable_offset), None),
            Frame::Heartbeat { seq, offset, .. } => (seq, Some(offset), None),
            Frame::Fence { epoch_start_seq, epoch_start_offset, .. } => {
                (epoch_start_seq, Some(epoch_start_offset), None)
            }
            Frame::Tail { tail_seq, .. } => (tail_seq, None, None),
            Frame::Landed { landed_seq, landed_offset, .. } => (landed_seq, Some(landed_offset), None),
        };
        b[field::A].copy_from_slice(&a.to_le_bytes());
        if let Some(v) = bb {
            b[field::B].copy_from_slice(&v.to_le_bytes());
        }
        if let Some(v) = c {
            b[field::C].copy_from_slice(&v.to_le_bytes());
        }
        if let Frame::Write { bytes, .. } = self {
            b[field::WRITE_LEN].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            b[field::WRITE_ZERO].fill(0);
            b[WRITE_HEADER_BYTES..].copy_from_slice(bytes);
        }
        let crc = crc32c::crc32c(&b[field::LENGTH.start..]);
        b[field::CRC].copy_from_slice(&crc.to_le_bytes());
        Ok(len)
    }

    /// Decodes one frame that must fill `bytes` exactly. After the length and CRC checks pass every accessor is in
    /// bounds, so nothing here can panic on hostile input.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if bytes.len() < HEADER_BYTES {
            return Err(FrameError::Truncated { have_bytes: bytes.len(), need_bytes: HEADER_BYTES });
        }
        let length = get_u32(bytes, field::LENGTH) as usize;
        let kind_byte = bytes[field::KIND];
        if length != bytes.len() || length > FRAME_MAX_BYTES {
            return Err(FrameError::BadLength { kind: kind_byte, length_bytes: length, have_bytes: bytes.len() });
        }
        let stored = get_u32(bytes, field::CRC);
        let computed = crc32c::crc32c(&bytes[field::LENGTH.start..]);
        if stored != computed {
            return Err(FrameError::Crc { stored, computed });
        }
        if bytes[field::VERSION] != FRAME_VERSION {
            return Err(FrameError::Version(bytes[field::VERSION]));
        }
        let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::Kind(kind_byte))?;
        if bytes[field::ZERO].iter().any(|&z| z != 0) {
            return Err(FrameError::Reserved);
        }
        let bad_len = FrameError::BadLength { kind: kind_byte, length_bytes: length, have_bytes: bytes.len() };
        match kind.fixed_len() {
            Some(n) if n != length => return Err(bad_len),
            None if length < WRITE_HEADER_BYTES => return Err(bad_len),
            _ => {}
        }
        let epoch = get_u64(bytes, field::EPOCH);
        let a = get_u64(bytes, field::A);
        Ok(match kind {
            FrameKind::Hello => Frame::Hello {
                epoch,
                region_size_bytes: a,
                durable_seq: get_u64(bytes, field::B),
                durable_offset: get_u64(bytes, field::C),
            },
            FrameKind::Write => {
                let n = get_u32(bytes, field::WRITE_LEN) as usize;
                if n != length - WRITE_HEADER_BYTES {
                    return Err(bad_len);
                }
                if get_u32(bytes, field::WRITE_ZERO) != 0 {
                    return Err(FrameError::Reserved);
                }
                Frame::Write {
                    epoch,
                    offset: a,
                    tail_seq: get_u64(bytes, field::B),
                    bytes: &bytes[WRITE_HEADER_BYTES..],
                }
            }
            FrameKind::Ack => Frame::Ack { epoch, durable_seq: a, durable_offset: get_u64(bytes, field::B) },
            FrameKind::Heartbeat => Frame::Heartbeat { epoch, seq: a, offset: get_u64(bytes, field::B) },
            FrameKind::Fence => {
                Frame::Fence { epoch, epoch_start_seq: a, epoch_start_offset: get_u64(bytes, field::B) }
            }
            FrameKind::Tail => Frame::Tail { epoch, tail_seq: a },
            FrameKind::Landed => Frame::Landed { epoch, landed_seq: a, landed_offset: get_u64(bytes, field::B) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames(payload: &[u8]) -> [Frame<'_>; 7] {
        [
            Frame::Hello { epoch: 3, region_size_bytes: 1 << 20, durable_seq: 9, durable_offset: 576 },
            Frame::Write { epoch: 3, offset: 640, tail_seq: 11, bytes: payload },
            Frame::Ack { epoch: 3, durable_seq: 11, durable_offset: 768 },
            Frame::Heartbeat { epoch: 3, seq: 11, offset: 768 },
            Frame::Fence { epoch: 4, epoch_start_seq: 11, epoch_start_offset: 768 },
            Frame::Tail { epoch: 3, tail_seq: 12 },
            Frame::Landed { epoch: 3, landed_seq: 12, landed_offset: 832 },
        ]
    }

    #[test]
    fn test_emit_parse_round_trip() {
        let payload = [0x5au8; 128];
        let mut buf = [0xa5u8; 512];
        for f in all_frames(&payload) {
            let n = f.emit(&mut buf).unwrap();
            assert_eq!(n, f.len_bytes());
            assert_eq!(peek_length(&buf[..n]), Some(n));
            assert_eq!(Frame::parse(&buf[..n]).unwrap(), f);
        }
    }

    #[test]
    fn test_emit_bytes_match_layout() {
        let mut buf = [0xa5u8; 64];
        let n = Frame::Ack { epoch: 0x0102, durable_seq: 7, durable_offset: 0x1c0 }.emit(&mut buf).unwrap();
        assert_eq!(n, 40);
        let expect_tail: [u8; 36] = [
            40, 0, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0, // length, kind, version, zero
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // epoch
            7, 0, 0, 0, 0, 0, 0, 0, // durable_seq
            0xc0, 0x01, 0, 0, 0, 0, 0, 0, // durable_offset
        ];
        assert_eq!(&buf[4..40], &expect_tail);
        assert_eq!(u32::from_le_bytes(buf[0..4].try_into().unwrap()), crc32c::crc32c(&expect_tail));
        assert_eq!(buf[40], 0xa5, "emit must not write past the frame");
    }

    #[test]
    fn a_landed_notice_is_kind_7_with_the_ack_layout() {
        let mut buf = [0u8; 40];
        Frame::Landed { epoch: 2, landed_seq: 9, landed_offset: 0x240 }.emit(&mut buf).unwrap();
        assert_eq!(&buf[4..12], &[40, 0, 0, 0, 7, 1, 0, 0]);
        assert_eq!(&buf[24..40], &[9, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x02, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn test_every_truncation_and_bit_flip_is_detected() {
        let payload: Vec<u8> = (0..64u8).collect();
        let mut buf = [0u8; 256];
        for f in all_frames(&payload) {
            let n = f.emit(&mut buf).unwrap();
            for cut in 0..n {
                assert!(Frame::parse(&buf[..cut]).is_err(), "{f:?} cut at {cut}");
            }
            for bit in 0..n * 8 {
                let mut c = buf;
                c[bit / 8] ^= 1 << (bit % 8);
                assert!(Frame::parse(&c[..n]).is_err(), "{f:?} bit {bit}");
            }
        }
    }

    #[test]
    fn test_oversized_payload_rejected() {
        let big = vec![0u8; WRITE_PAYLOAD_MAX_BYTES + 64];
        let mut buf = vec![0u8; big.len() + 64];
        let f = Frame::Write { epoch: 1, offset: 0, tail_seq: 1, bytes: &big };
        assert_eq!(f.emit(&mut buf), Err(FrameError::PayloadTooLarge(big.len())));
        let mut small = [0u8; 16];
        assert!(matches!(
            Frame::Tail { epoch: 1, tail_seq: 1 }.emit(&mut small),
            Err(FrameError::BufferTooSmall { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn prop_parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Frame::parse(&bytes);
        }
    }
}
