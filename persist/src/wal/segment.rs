//! Segment files: `wal-<first_seq:020>.seg`, preallocated, with a 4 KiB header.
//!
//! ```text
//!  0        8         12       16          24               32             40          44         48      4096
//!  +--------+---------+--------+-----------+----------------+--------------+-----------+----------+- zero -+
//!  | magic  | version | epoch  | first_seq | segment_bytes  | first_offset | hdr crc32c| reserved |        |
//!  | 8 B    | u32     | u32    | u64       | u64            | u64          | u32       | u32      |        |
//!  +--------+---------+--------+-----------+----------------+--------------+-----------+----------+--------+
//!  then records, 64-byte aligned, from offset 4096 to `segment_bytes`.
//! ```
//!
//! `first_offset` is the *stream offset* of the segment's first record: the bytes of all records before it, over
//! every earlier segment (headers and unused segment tails excluded). It names a record boundary the same way on
//! every node holding the same records, whatever their segment sizes, which is what the mirror addresses
//! (`crate::mirror::Position`). The header CRC covers bytes `[0, 40)`. The header takes a whole page so that records start page-aligned and a
//! header write never shares a page (or a `msync`) with records. A segment is created as `….seg.tmp`, fully
//! preallocated, given its header, synced, and only then renamed to its final name: a file with a final name always
//! has a complete header.

use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};

use crate::error::WalError;

pub const SEGMENT_MAGIC: [u8; 8] = *b"BOURSWAL";
/// Version 2 added `first_offset`.
pub const SEGMENT_VERSION: u32 = 2;
/// Bytes reserved for the header; records start here.
pub const SEGMENT_HEADER_BYTES: usize = 4096;
/// Smallest useful segment: the header and one largest record.
pub const SEGMENT_BYTES_MIN: u64 = (SEGMENT_HEADER_BYTES + super::record::RECORD_BYTES_MAX) as u64;

#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
#[repr(C)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub epoch: u32,
    pub first_seq: u64,
    pub segment_bytes: u64,
    pub first_offset: u64,
    pub header_crc: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<SegmentHeader>() == 48);
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(64));

impl SegmentHeader {
    pub fn new(epoch: u32, first_seq: u64, segment_bytes: u64, first_offset: u64) -> SegmentHeader {
        let mut h = SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: SEGMENT_VERSION,
            epoch,
            first_seq,
            segment_bytes,
            first_offset,
            header_crc: 0,
            reserved: 0,
        };
        h.header_crc = h.crc();
        h
    }

    fn crc(&self) -> u32 {
        crc32c::crc32c(&bytemuck::bytes_of(self)[..40])
    }

    /// Parses and validates the header at the start of a segment's bytes. `Err` says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<SegmentHeader, String> {
        SegmentHeader::parse_head(bytes, bytes.len() as u64)
    }

    /// [`SegmentHeader::parse`] from the header's bytes alone, for a file of `file_bytes` bytes.
    pub fn parse_head(bytes: &[u8], file_bytes: u64) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!("file is {} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte header", bytes.len()));
        }
        let h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..core::mem::size_of::<SegmentHeader>()]);
        if h.magic != SEGMENT_MAGIC {
            return Err(format!("wrong magic {:02x?} (expected {:02x?})", h.magic, SEGMENT_MAGIC));
        }
        if h.version != SEGMENT_VERSION {
            return Err(format!("unsupported version {} (this build reads {SEGMENT_VERSION})", h.version));
        }
        let crc = h.crc();
        if crc != h.header_crc {
            return Err(format!("header crc mismatch: stored {:#010x}, computed {crc:#010x}", h.header_crc));
        }
        if h.segment_bytes != file_bytes {
            return Err(format!(
                "header says {} bytes but the file has {file_bytes} (truncated or extended segment)",
                h.segment_bytes,
            ));
        }
        Ok(h)
    }
}

/// The stored bytes of a header (for tools and fuzzers that build segment images).
pub fn header_bytes(h: &SegmentHeader) -> &[u8] {
    bytemuck::bytes_of(h)
}

/// `wal-<first_seq:020>.seg`
pub fn segment_file_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.seg")
}

/// The first seq encoded in a segment file name, if `name` is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment file found in a WAL directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    pub first_seq: u64,
}

/// The segment files of `dir`, in seq order. Other files (snapshots, temporaries) are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, WalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io(dir, "read directory", e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, "read directory", e))?;
        let name = entry.file_name();
        if let Some(first_seq) = name.to_str().and_then(parse_segment_name) {
            out.push(SegmentFile { path: entry.path(), first_seq });
        }
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42), "wal-00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-42.seg"), None);
        assert_eq!(parse_segment_name("snap-00000000000000000042.snap"), None);
    }

    #[test]
    fn header_validation_names_the_problem() {
        let h = SegmentHeader::new(3, 17, 8192, 640);
        let mut bytes = vec![0u8; 8192];
        bytes[..48].copy_from_slice(bytemuck::bytes_of(&h));
        assert_eq!(SegmentHeader::parse(&bytes), Ok(h));
        assert!(SegmentHeader::parse(&bytes[..4096 + 64]).unwrap_err().contains("truncated"));
        bytes[9] ^= 1;
        assert!(SegmentHeader::parse(&bytes).unwrap_err().contains("version"));
        bytes[9] ^= 1;
        bytes[20] ^= 1;
        assert!(SegmentHeader::parse(&bytes).unwrap_err().contains("crc"));
        bytes[20] ^= 1;
        bytes[33] ^= 1; // first_offset is covered too
        assert!(SegmentHeader::parse(&bytes).unwrap_err().contains("crc"));
        bytes[0] = b'X';
        assert!(SegmentHeader::parse(&bytes).unwrap_err().contains("magic"));
    }
}
