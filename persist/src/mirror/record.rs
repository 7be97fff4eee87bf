//! How the mirror validates WAL records: the integration point with `wal/`.
//!
//! The standby must never acknowledge a record it has not checked, so it walks the bytes the primary wrote into its
//! region record by record. The record layout belongs to the WAL; the mirror only needs three facts per record — its
//! length, its sequence number and its epoch — and whether its CRC holds. [`RecordFormat`] is that seam. Once
//! `wal::record` exposes its decoder, implement `RecordFormat` for it (a few lines: call its CRC check and copy the
//! three header fields). [`WalRecords`] is that adapter over `wal::record::decode`, the format the appliance uses.
//! [`Crc32cRecords`] has the same 32-byte header but accepts any body and any whole number of cache lines: the
//! simulations use it to generate random streams without building engine commands.
//!
//! ```text
//!  Header (little-endian, as wal::record), then a body; total length a multiple of 64 bytes.
//!  0        4        8                 16                24     26     28       32
//!  +--------+--------+-----------------+-----------------+------+------+--------+---- ... ----+
//!  | crc32c | length |       seq       |    timestamp    | kind | zero | epoch  |    body     |
//!  +--------+--------+-----------------+-----------------+------+------+--------+---- ... ----+
//!    crc32c covers bytes 4..length.
//! ```

use thiserror::Error;

/// Records start on, and are sized in, whole cache lines.
pub const RECORD_ALIGN_BYTES: usize = 64;

/// What the mirror needs to know about one valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub len_bytes: usize,
    pub seq: u64,
    pub epoch: u64,
}

/// Outcome of looking at the bytes where the next record should start.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes are available than the header or the length it states; more may arrive later.
    #[error("record incomplete: {have_bytes} bytes available, {need_bytes} needed")]
    Incomplete { have_bytes: usize, need_bytes: usize },
    #[error("record length {0} is zero, unaligned or larger than the region")]
    BadLength(usize),
    #[error("record crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    /// The local log does not hold this stream offset (a segment is missing): only the primary reports it.
    #[error("no local bytes at this stream offset")]
    Missing,
    /// A valid record with the wrong seq where the log's next record should be.
    #[error("record seq {found} where seq {expected} should be")]
    Sequence { expected: u64, found: u64 },
    /// Any other failure reported by the WAL's decoder (empty slot, bad kind, bad field, reserved bytes).
    #[error("record invalid: {0}")]
    Wal(crate::wal::record::RecordError),
}

/// Validates one record at the start of `bytes`, which extends to the end of the bytes known to have arrived.
pub trait RecordFormat {
    fn check(&self, bytes: &[u8]) -> Result<RecordMeta, RecordError>;
}

/// The DESIGN.md §6 record header, validated with CRC32C.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32cRecords;

/// Bytes of the [`Crc32cRecords`] header.
pub const RECORD_HEADER_BYTES: usize = 32;

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl RecordFormat for Crc32cRecords {
    fn check(&self, bytes: &[u8]) -> Result<RecordMeta, RecordError> {
        if bytes.len() < RECORD_HEADER_BYTES {
            return Err(RecordError::Incomplete { have_bytes: bytes.len(), need_bytes: RECORD_HEADER_BYTES });
        }
        let len = le_u32(bytes, 4) as usize;
        if len < RECORD_HEADER_BYTES || !len.is_multiple_of(RECORD_ALIGN_BYTES) {
            return Err(RecordError::BadLength(len));
        }
        if bytes.len() < len {
            return Err(RecordError::Incomplete { have_bytes: bytes.len(), need_bytes: len });
        }
        let stored = le_u32(bytes, 0);
        let computed = crc32c::crc32c(&bytes[4..len]);
        if stored != computed {
            return Err(RecordError::Crc { stored, computed });
        }
        Ok(RecordMeta { len_bytes: len, seq: le_u64(bytes, 8), epoch: le_u32(bytes, 28) as u64 })
    }
}

/// The appliance's record format: `wal::record::decode`, which checks length, CRC, kind and every field.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalRecords;

impl RecordFormat for WalRecords {
    fn check(&self, bytes: &[u8]) -> Result<RecordMeta, RecordError> {
        use crate::wal::record::{self as wal, RecordError as WalError};
        match wal::decode(bytes) {
            Ok(r) => Ok(RecordMeta { len_bytes: r.length, seq: r.input.seq, epoch: r.epoch as u64 }),
            Err(WalError::Truncated { available, needed }) => {
                Err(RecordError::Incomplete { have_bytes: available, need_bytes: needed })
            }
            Err(WalError::BadCrc { stored, computed }) => Err(RecordError::Crc { stored, computed }),
            Err(e) => Err(RecordError::Wal(e)),
        }
    }
}

impl Crc32cRecords {
    /// Writes one record (header + `body`, zero-padded to whole cache lines) at the front of `out` and returns its
    /// length. Used by tests and simulations to produce the primary's WAL stream.
    pub fn encode(out: &mut [u8], kind: u16, epoch: u32, seq: u64, timestamp_ns: u64, body: &[u8]) -> usize {
        let len = (RECORD_HEADER_BYTES + body.len()).div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
        assert!(out.len() >= len, "record of {len} bytes does not fit in {} bytes", out.len());
        let r = &mut out[..len];
        r[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        r[8..16].copy_from_slice(&seq.to_le_bytes());
        r[16..24].copy_from_slice(&timestamp_ns.to_le_bytes());
        r[24..26].copy_from_slice(&kind.to_le_bytes());
        r[26..28].fill(0);
        r[28..32].copy_from_slice(&epoch.to_le_bytes());
        r[32..32 + body.len()].copy_from_slice(body);
        r[32 + body.len()..].fill(0);
        let crc = crc32c::crc32c(&r[4..]);
        r[0..4].copy_from_slice(&crc.to_le_bytes());
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_encode_check_round_trip_and_corruption() {
        let mut buf = [0xa5u8; 192];
        let n = Crc32cRecords::encode(&mut buf, 7, 2, 42, 1_000, &[1u8; 40]);
        assert_eq!(n, 128);
        let meta = Crc32cRecords.check(&buf).unwrap();
        assert_eq!(meta, RecordMeta { len_bytes: 128, seq: 42, epoch: 2 });
        assert!(matches!(Crc32cRecords.check(&buf[..100]), Err(RecordError::Incomplete { .. })));
        buf[50] ^= 1;
        assert!(matches!(Crc32cRecords.check(&buf), Err(RecordError::Crc { .. })));
        assert!(matches!(Crc32cRecords.check(&[0u8; 64]), Err(RecordError::BadLength(0))));
    }

    #[test]
    fn test_wal_records_adapter_reads_wal_encoding() {
        use bourse_engine::{Cancel, Command, Input};
        let input = Input { seq: 77, timestamp: 5, command: Command::Cancel(Cancel { session: 1, user_ref: 9, qty: 0 }) };
        let mut out = [0u8; crate::wal::record::RECORD_BYTES_MAX];
        let n = crate::wal::record::encode(&input, 3, &mut out);
        let meta = WalRecords.check(&out[..n]).unwrap();
        assert_eq!(meta, RecordMeta { len_bytes: n, seq: 77, epoch: 3 });
        // The stand-in reads the same header fields from the same bytes.
        assert_eq!(Crc32cRecords.check(&out[..n]).unwrap(), meta);
        assert!(matches!(WalRecords.check(&out[..n - 1]), Err(RecordError::Incomplete { .. })));
        out[40] ^= 0x10;
        assert!(matches!(WalRecords.check(&out[..n]), Err(RecordError::Crc { .. })));
        assert!(matches!(WalRecords.check(&[0u8; 64]), Err(RecordError::Wal(_))));
    }
}
