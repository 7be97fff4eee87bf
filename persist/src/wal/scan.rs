//! Reading the log back: one segment's bytes ([`scan_segment`]), then a directory of segments ([`scan_log`]).
//!
//! The log ends at the first slot that does not hold a valid record. What lies from there on decides what kind of
//! end it is:
//!
//! - only zero bytes: a clean end (segments are preallocated zero-filled);
//! - non-zero bytes but no valid record: a **torn tail**, the record being written when the process or the host
//!   died (the writer stores the body first and the `crc|length` word last). It is reported with file, offset and
//!   the seq it would have had, and never replayed; recovery zeroes it;
//! - a valid record further on: **damage inside the log**, an error. Skipping the bad record would silently lose
//!   an input that may have been acknowledged.
//!
//! Sequence numbers must increase by exactly one from record to record and from segment to segment; a gap is an
//! error. A live reader (`live = true`, used while a writer may be appending) stops at the first invalid slot
//! without classifying it, because the writer may be completing it at that moment.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::record::{decode, Record, RecordError, KINDS_COUNT, RECORD_ALIGN_BYTES};
use super::segment::{list_segments, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::error::WalError;
use crate::sys::MapView;

/// Whether a visitor wants more records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    Continue,
    Stop,
}

/// How one segment's records end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Zero bytes from `offset` on.
    Clean { offset: usize },
    /// No room for another record.
    Full { offset: usize },
    /// A torn record at `offset`; non-zero bytes extend to `dirty_end` (exclusive).
    Torn { offset: usize, reason: RecordError, dirty_end: usize },
    /// The visitor asked to stop at `offset`.
    Stopped { offset: usize },
}

/// A problem found in one segment's bytes, before the caller attaches the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentFault {
    Header(String),
    Gap { offset: usize, expected: u64, found: u64 },
    EpochBackwards { offset: usize, previous: u32, found: u32 },
    CorruptNotTail { offset: usize, seq: u64, reason: RecordError, next_valid: usize },
}

impl SegmentFault {
    pub fn with_path(self, path: &Path) -> WalError {
        let path = path.to_path_buf();
        match self {
            SegmentFault::Header(what) => WalError::BadHeader { path, offset: 0, what },
            SegmentFault::Gap { offset, expected, found } => {
                WalError::SeqGap { path, offset: offset as u64, expected, found }
            }
            SegmentFault::EpochBackwards { offset, previous, found } => {
                WalError::EpochBackwards { path, offset: offset as u64, previous, found }
            }
            SegmentFault::CorruptNotTail { offset, seq, reason, next_valid } => WalError::CorruptRecord {
                path,
                offset: offset as u64,
                seq,
                reason,
                next_valid: next_valid as u64,
            },
        }
    }
}

/// What a segment scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    pub header: SegmentHeader,
    /// Valid records seen (visited or not).
    pub records: u64,
    pub last_seq: Option<u64>,
    pub last_epoch: u32,
    pub end: SegmentEnd,
}

/// Scans one segment image (header included). `expected_first` is the seq its first record must carry (the
/// previous segment's last + 1), or `None` to take the header's `first_seq`. Every valid record is passed to
/// `visit` with its offset.
pub fn scan_segment<F>(bytes: &[u8], expected_first: Option<u64>, live: bool, mut visit: F) -> Result<SegmentScan, SegmentFault>
where
    F: FnMut(usize, &Record) -> Visit,
{
    let header = SegmentHeader::parse(bytes).map_err(SegmentFault::Header)?;
    if let Some(expected) = expected_first {
        if header.first_seq != expected {
            return Err(SegmentFault::Gap { offset: 0, expected, found: header.first_seq });
        }
    }
    let mut expected = header.first_seq;
    let mut epoch = header.epoch;
    let mut records = 0u64;
    let mut last_seq = None;
    let mut pos = SEGMENT_HEADER_BYTES;
    let end = loop {
        if pos + RECORD_ALIGN_BYTES > bytes.len() {
            break SegmentEnd::Full { offset: pos };
        }
        // A live writer stores a record's body, then its `crc|length` word with release ordering: load the word with
        // acquire first, so the body read next is the one published. An unpublished slot (zero word) ends the scan
        // without reading bytes the writer may be storing at this moment.
        if live && crate::sys::load_u64_acquire_at(bytes, pos) == Some(0) {
            break SegmentEnd::Clean { offset: pos };
        }
        let record = match decode(&bytes[pos..]) {
            Ok(r) => r,
            Err(reason) => break classify_end(bytes, pos, expected, reason, live)?,
        };
        if record.input.seq != expected {
            return Err(SegmentFault::Gap { offset: pos, expected, found: record.input.seq });
        }
        if record.epoch < epoch {
            return Err(SegmentFault::EpochBackwards { offset: pos, previous: epoch, found: record.epoch });
        }
        epoch = record.epoch;
        records += 1;
        last_seq = Some(expected);
        expected = expected.wrapping_add(1);
        let offset = pos;
        pos += record.length;
        if visit(offset, &record) == Visit::Stop {
            break SegmentEnd::Stopped { offset: pos };
        }
    };
    Ok(SegmentScan { header, records, last_seq, last_epoch: epoch, end })
}

/// Decides what the invalid slot at `pos` means (see the module documentation).
fn classify_end(
    bytes: &[u8],
    pos: usize,
    seq: u64,
    reason: RecordError,
    live: bool,
) -> Result<SegmentEnd, SegmentFault> {
    if live {
        return Ok(if reason == RecordError::Empty && is_zero(&bytes[pos..pos + RECORD_ALIGN_BYTES]) {
            SegmentEnd::Clean { offset: pos }
        } else {
            SegmentEnd::Torn { offset: pos, reason, dirty_end: pos + RECORD_ALIGN_BYTES }
        });
    }
    let dirty_end = pos + nonzero_len(&bytes[pos..]);
    if dirty_end == pos {
        return Ok(SegmentEnd::Clean { offset: pos });
    }
    let mut probe = pos + RECORD_ALIGN_BYTES;
    while probe < dirty_end {
        if decode(&bytes[probe..]).is_ok() {
            return Err(SegmentFault::CorruptNotTail { offset: pos, seq, reason, next_valid: probe });
        }
        probe += RECORD_ALIGN_BYTES;
    }
    Ok(SegmentEnd::Torn { offset: pos, reason, dirty_end })
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Length of `bytes` up to and including its last non-zero byte. Scans backwards in 4 KiB steps so that a large,
/// mostly unwritten segment costs one pass of word compares.
fn nonzero_len(bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(4096);
        let chunk = &bytes[start..end];
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return start + i + 1;
        }
        end = start;
    }
    0
}

/// Options for [`scan_log`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Records with a lower seq are validated but not visited; whole segments below it are skipped unread.
    pub from_seq: u64,
    /// A writer may be appending: stop at the first invalid slot without classifying it.
    pub live: bool,
}


/// A torn tail: reported, never replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    /// The seq the torn record would have had.
    pub seq: u64,
    pub reason: RecordError,
    /// End (exclusive) of the non-zero bytes from `offset`: what recovery zeroes.
    pub dirty_end: u64,
}

/// One segment as seen by [`scan_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    pub path: PathBuf,
    pub first_seq: u64,
    pub epoch: u32,
    pub size_bytes: u64,
    /// `false` when the segment was skipped because it lies wholly below `from_seq`.
    pub scanned: bool,
    pub records: u64,
    pub last_seq: Option<u64>,
    /// Offset where its records end (the next append position for the last segment).
    pub end_offset: u64,
}

/// What [`scan_log`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    pub segments: Vec<SegmentSummary>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Valid records in the scanned segments.
    pub records: u64,
    /// Records per kind among those visited, indexed by `RecordKind as usize - 1`.
    pub per_kind: [u64; KINDS_COUNT],
    pub torn: Option<TornTail>,
    /// The visitor stopped the scan early.
    pub stopped: bool,
}

/// A segment opened read-only for scanning.
pub struct SegmentView {
    pub path: PathBuf,
    map: Option<MapView>,
}

impl SegmentView {
    pub fn open(path: &Path) -> Result<SegmentView, WalError> {
        let file = File::open(path).map_err(|e| WalError::io(path, "open segment", e))?;
        let len = file.metadata().map_err(|e| WalError::io(path, "stat segment", e))?.len();
        let len = usize::try_from(len).map_err(|_| WalError::Config(format!("{}: too large", path.display())))?;
        let map = if len == 0 {
            None
        } else {
            Some(MapView::map(&file, len).map_err(|e| WalError::Map {
                path: path.to_path_buf(),
                bytes: len as u64,
                source: e,
            })?)
        };
        Ok(SegmentView { path: path.to_path_buf(), map })
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.bytes(),
            None => &[],
        }
    }

    /// The `crc|length` word of the record slot at `offset`, loaded with acquire ordering (see
    /// [`MapView::load_u64_acquire`]): a reader following a live writer checks it before reading the record.
    pub fn published_word(&self, offset: usize) -> Option<u64> {
        self.map.as_ref().and_then(|m| m.load_u64_acquire(offset))
    }
}

/// Scans every segment of `dir` in seq order, checking continuity, and passes each record with seq ≥
/// `opts.from_seq` to `visit` along with its file and offset.
pub fn scan_log<F>(dir: &Path, opts: ScanOptions, mut visit: F) -> Result<LogSummary, WalError>
where
    F: FnMut(&Path, usize, &Record) -> Visit,
{
    let files = list_segments(dir)?;
    let mut summary = LogSummary::default();
    let mut expected: Option<u64> = None;
    for (i, file) in files.iter().enumerate() {
        let view = SegmentView::open(&file.path)?;
        let bytes = view.bytes();
        if let Some(torn) = &summary.torn {
            // Anything after a torn record must hold no records, or the damage is not at the tail.
            let later = scan_segment(bytes, None, true, |_, _| Visit::Stop);
            if matches!(later, Ok(s) if s.records > 0) {
                return Err(WalError::TornNotLast {
                    path: torn.path.clone(),
                    offset: torn.offset,
                    seq: torn.seq,
                    next: file.path.clone(),
                });
            }
            continue;
        }
        let header = SegmentHeader::parse(bytes).map_err(|what| SegmentFault::Header(what).with_path(&file.path))?;
        if header.first_seq != file.first_seq {
            return Err(WalError::BadHeader {
                path: file.path.clone(),
                offset: 0,
                what: format!("header first seq {} differs from the file name's {}", header.first_seq, file.first_seq),
            });
        }
        let next_first = files.get(i + 1).map(|f| f.first_seq);
        if matches!(next_first, Some(n) if n <= opts.from_seq) && !opts.live {
            // Wholly below the range asked for: trust the next segment's name for continuity and skip the read.
            summary.first_seq.get_or_insert(header.first_seq);
            summary.segments.push(SegmentSummary {
                path: file.path.clone(),
                first_seq: header.first_seq,
                epoch: header.epoch,
                size_bytes: header.segment_bytes,
                scanned: false,
                records: 0,
                last_seq: next_first.map(|n| n - 1),
                end_offset: 0,
            });
            expected = next_first;
            continue;
        }
        let scan = scan_segment(bytes, expected, opts.live, |offset, record| {
            if record.input.seq < opts.from_seq {
                return Visit::Continue;
            }
            summary.per_kind[record.kind.index()] += 1;
            visit(&file.path, offset, record)
        })
        .map_err(|f| f.with_path(&file.path))?;
        summary.records += scan.records;
        summary.first_seq.get_or_insert(header.first_seq);
        if scan.last_seq.is_some() {
            summary.last_seq = scan.last_seq;
        }
        let end_offset = match scan.end {
            SegmentEnd::Clean { offset } | SegmentEnd::Full { offset } | SegmentEnd::Stopped { offset } => offset,
            SegmentEnd::Torn { offset, reason, dirty_end } => {
                summary.torn = Some(TornTail {
                    path: file.path.clone(),
                    offset: offset as u64,
                    seq: scan.last_seq.map_or(header.first_seq, |s| s + 1),
                    reason,
                    dirty_end: dirty_end as u64,
                });
                offset
            }
        };
        summary.segments.push(SegmentSummary {
            path: file.path.clone(),
            first_seq: header.first_seq,
            epoch: header.epoch,
            size_bytes: header.segment_bytes,
            scanned: true,
            records: scan.records,
            last_seq: scan.last_seq,
            end_offset: end_offset as u64,
        });
        if let SegmentEnd::Stopped { .. } = scan.end {
            summary.stopped = true;
            break;
        }
        if opts.live && matches!(scan.end, SegmentEnd::Torn { .. }) {
            break;
        }
        expected = Some(scan.last_seq.map_or(header.first_seq, |s| s + 1));
        if scan.records == 0 && i + 1 < files.len() && summary.torn.is_none() {
            // A writer only rotates after filling a segment, so an empty segment followed by another is a gap.
            return Err(WalError::SeqGap {
                path: files[i + 1].path.clone(),
                offset: 0,
                expected: header.first_seq,
                found: files[i + 1].first_seq,
            });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use bourse_engine::{Command, Input};

    use super::*;
    use crate::wal::record::{encode, RECORD_BYTES_MAX};

    /// An 8-aligned segment image with records 1..=n, the last one's body stored but its
    /// `crc|length` word not yet (a live writer between its two stores).
    fn image_with_record_in_flight(n: u64) -> (Vec<u64>, usize) {
        let bytes = SEGMENT_HEADER_BYTES + 4096;
        let mut words = vec![0u64; bytes / 8];
        let image: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let header = SegmentHeader::new(1, 1, bytes as u64, 0);
        image[..core::mem::size_of::<SegmentHeader>()].copy_from_slice(bytemuck::bytes_of(&header));
        let mut pos = SEGMENT_HEADER_BYTES;
        for seq in 1..=n {
            let mut rec = [0u8; RECORD_BYTES_MAX];
            let len = encode(&Input { seq, timestamp: seq, command: Command::Tick }, 1, &mut rec);
            image[pos..pos + len].copy_from_slice(&rec[..len]);
            if seq == n {
                image[pos..pos + 8].fill(0);
            }
            pos += len;
        }
        (words, pos - RECORD_ALIGN_BYTES)
    }

    #[test]
    fn a_live_scan_ends_cleanly_at_a_slot_whose_word_is_not_published_and_never_reads_it_as_torn() {
        let (words, in_flight) = image_with_record_in_flight(3);
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let live = scan_segment(bytes, Some(1), true, |_, _| Visit::Continue).unwrap();
        assert_eq!((live.records, live.last_seq), (2, Some(2)));
        assert_eq!(live.end, SegmentEnd::Clean { offset: in_flight });
        // The same bytes after a crash (not live): a body without its word is a torn tail.
        let after = scan_segment(bytes, Some(1), false, |_, _| Visit::Continue).unwrap();
        assert!(matches!(after.end, SegmentEnd::Torn { offset, .. } if offset == in_flight), "{:?}", after.end);
    }

    #[test]
    fn the_acquire_load_refuses_misaligned_and_out_of_bounds_words() {
        let words = [0x1122_3344_5566_7788u64, 0];
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        assert_eq!(crate::sys::load_u64_acquire_at(bytes, 0), Some(0x1122_3344_5566_7788));
        assert_eq!(crate::sys::load_u64_acquire_at(bytes, 4), None);
        assert_eq!(crate::sys::load_u64_acquire_at(bytes, 9), None);
        assert_eq!(crate::sys::load_u64_acquire_at(bytes, 16), None);
        assert_eq!(crate::sys::load_u64_acquire_at(bytes, usize::MAX - 3), None);
    }
}
