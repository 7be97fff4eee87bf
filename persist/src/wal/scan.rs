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
//!
//! A segment is read either as an image in memory (`&[u8]`: a copy, a fuzzer's bytes) or through a
//! [`SegmentView`], a mapping a writer may still be appending to. A view lends the scan only the records the writer
//! has published (it loads each record's `crc|length` word with acquire ordering first; see [`MapView`]); the bytes
//! past them, which only a scan that is not live judges, are copied out with atomic loads, never borrowed.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::record::{decode, Record, RecordError, KINDS_COUNT, RECORD_ALIGN_BYTES, RECORD_BYTES_MAX};
use super::segment::{list_segments, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::error::WalError;
use crate::sys::{slot_bytes, MapView, Slot};

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

/// A segment's bytes as the scan reads them: an image in memory, which nothing changes, or a [`SegmentView`] of a
/// file a writer may be appending to, which lends only published records.
trait Image {
    fn len(&self) -> usize;
    /// The header's bytes (at most [`SEGMENT_HEADER_BYTES`]).
    fn header(&self) -> &[u8];
    /// The record slot at `pos`, published or not (see [`Slot`]).
    fn slot(&self, pos: usize) -> Slot<'_>;
    /// Copies the bytes at `pos` into `out`, published or not.
    fn copy(&self, pos: usize, out: &mut [u8]);
    /// The end (exclusive) of the last non-zero byte from `pos` on, or `pos`.
    fn nonzero_end(&self, pos: usize) -> usize;
}

impl Image for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn header(&self) -> &[u8] {
        &self[..self.len().min(SEGMENT_HEADER_BYTES)]
    }

    /// The same rule as a view's (a non-zero word naming a length that fits), read from bytes nothing changes.
    fn slot(&self, pos: usize) -> Slot<'_> {
        let Some(word) = self.get(pos..pos + 8) else { return Slot::Unpublished };
        let word = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
        if word == 0 {
            return Slot::Unpublished;
        }
        match slot_bytes(word, RECORD_BYTES_MAX, self.len() - pos) {
            Some(n) => Slot::Published(&self[pos..pos + n]),
            None => Slot::Malformed,
        }
    }

    fn copy(&self, pos: usize, out: &mut [u8]) {
        out.copy_from_slice(&self[pos..pos + out.len()]);
    }

    /// Scans backwards in 4 KiB steps so that a large, mostly unwritten segment costs one pass of word compares.
    fn nonzero_end(&self, pos: usize) -> usize {
        let mut end = self.len();
        while end > pos {
            let start = end.saturating_sub(4096).max(pos);
            if let Some(i) = self[start..end].iter().rposition(|&b| b != 0) {
                return start + i + 1;
            }
            end = start;
        }
        pos
    }
}

impl Image for MapView {
    fn len(&self) -> usize {
        MapView::len(self)
    }

    fn header(&self) -> &[u8] {
        self.published(0, SEGMENT_HEADER_BYTES.min(MapView::len(self)), RECORD_BYTES_MAX)
    }

    fn slot(&self, pos: usize) -> Slot<'_> {
        MapView::slot(self, pos, RECORD_BYTES_MAX)
    }

    fn copy(&self, pos: usize, out: &mut [u8]) {
        self.read(pos, out);
    }

    fn nonzero_end(&self, pos: usize) -> usize {
        MapView::nonzero_end(self, pos)
    }
}

/// Scans one segment image (header included). `expected_first` is the seq its first record must carry (the
/// previous segment's last + 1), or `None` to take the header's `first_seq`. Every valid record is passed to
/// `visit` with its offset.
pub fn scan_segment<F>(bytes: &[u8], expected_first: Option<u64>, live: bool, visit: F) -> Result<SegmentScan, SegmentFault>
where
    F: FnMut(usize, &Record) -> Visit,
{
    scan_image(bytes, expected_first, live, visit)
}

fn scan_image<I, F>(image: &I, expected_first: Option<u64>, live: bool, visit: F) -> Result<SegmentScan, SegmentFault>
where
    I: Image + ?Sized,
    F: FnMut(usize, &Record) -> Visit,
{
    let header = SegmentHeader::parse_head(image.header(), image.len() as u64).map_err(SegmentFault::Header)?;
    if let Some(expected) = expected_first {
        if header.first_seq != expected {
            return Err(SegmentFault::Gap { offset: 0, expected, found: header.first_seq });
        }
    }
    let from = Place { offset: SEGMENT_HEADER_BYTES, seq: header.first_seq, epoch: header.epoch };
    let walk = walk_image(image, from, live, visit)?;
    Ok(SegmentScan { header, records: walk.records, last_seq: walk.last_seq, last_epoch: walk.at.epoch, end: walk.end })
}

/// Where a walk through a segment's records stands: the offset of the next slot, the seq the record there must
/// carry, and the epoch it must not fall below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub offset: usize,
    pub seq: u64,
    pub epoch: u32,
}

/// What a walk from a [`Place`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Where a later walk resumes: after the last valid record seen.
    pub at: Place,
    /// Valid records seen (visited or not).
    pub records: u64,
    pub last_seq: Option<u64>,
    pub end: SegmentEnd,
}

/// The record walk of a segment scan, from `from` (a place an earlier walk of the same segment ended at, or its
/// first record's): what lets a reader that follows a live writer read only what was appended since it last
/// looked. The header is not read again; the records are checked exactly as a whole-segment scan checks them.
fn walk_image<I, F>(image: &I, from: Place, live: bool, mut visit: F) -> Result<Walk, SegmentFault>
where
    I: Image + ?Sized,
    F: FnMut(usize, &Record) -> Visit,
{
    let Place { offset: mut pos, seq: mut expected, mut epoch } = from;
    let mut records = 0u64;
    let mut last_seq = None;
    let mut copied = [0u8; RECORD_BYTES_MAX];
    let end = loop {
        if pos + RECORD_ALIGN_BYTES > image.len() {
            break SegmentEnd::Full { offset: pos };
        }
        // A live writer stores a record's body, then its `crc|length` word with release ordering; a view loads the
        // word with acquire before it lends the record, so the body read is the one published. An unpublished slot
        // ends a live scan without reading bytes the writer may be storing at this moment.
        let decoded = match image.slot(pos) {
            Slot::Published(bytes) => decode(bytes),
            Slot::Unpublished if live => break SegmentEnd::Clean { offset: pos },
            // Not a record the writer published: judged from a copy (a scan that is not live has no writer
            // appending; a malformed word is nobody's record in flight).
            Slot::Unpublished | Slot::Malformed => {
                let n = RECORD_BYTES_MAX.min(image.len() - pos);
                image.copy(pos, &mut copied[..n]);
                decode(&copied[..n])
            }
        };
        let record = match decoded {
            Ok(r) => r,
            Err(reason) => break classify_end(image, pos, expected, reason, live)?,
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
    Ok(Walk { at: Place { offset: pos, seq: expected, epoch }, records, last_seq, end })
}

/// Decides what the invalid slot at `pos` means (see the module documentation). A live scan gets here only for a
/// slot whose word is there (an unpublished one ended it cleanly), so the slot is torn or damaged, and nothing
/// past it is read.
fn classify_end<I: Image + ?Sized>(
    image: &I,
    pos: usize,
    seq: u64,
    reason: RecordError,
    live: bool,
) -> Result<SegmentEnd, SegmentFault> {
    if live {
        return Ok(SegmentEnd::Torn { offset: pos, reason, dirty_end: pos + RECORD_ALIGN_BYTES });
    }
    let dirty_end = image.nonzero_end(pos);
    if dirty_end == pos {
        return Ok(SegmentEnd::Clean { offset: pos });
    }
    let mut copied = [0u8; RECORD_BYTES_MAX];
    let mut probe = pos + RECORD_ALIGN_BYTES;
    while probe < dirty_end {
        let n = RECORD_BYTES_MAX.min(image.len() - probe);
        image.copy(probe, &mut copied[..n]);
        if decode(&copied[..n]).is_ok() {
            return Err(SegmentFault::CorruptNotTail { offset: pos, seq, reason, next_valid: probe });
        }
        probe += RECORD_ALIGN_BYTES;
    }
    Ok(SegmentEnd::Torn { offset: pos, reason, dirty_end })
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

/// A segment opened read-only for scanning, while its writer may still be appending: it lends only the bytes the
/// writer has published (see [`MapView`]).
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
            // A segment's header is written before the file takes its final name, which is how readers open it.
            Some(MapView::map(&file, len, SEGMENT_HEADER_BYTES.min(len)).map_err(|e| WalError::Map {
                path: path.to_path_buf(),
                bytes: len as u64,
                source: e,
            })?)
        };
        Ok(SegmentView { path: path.to_path_buf(), map })
    }

    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, MapView::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The header's bytes (fewer when the file is shorter than a header).
    pub fn header(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], Image::header)
    }

    /// The record slot at `offset`: its bytes once the writer has published it (see [`Slot`]).
    pub fn slot(&self, offset: usize) -> Slot<'_> {
        self.map.as_ref().map_or(Slot::Unpublished, |m| m.slot(offset, RECORD_BYTES_MAX))
    }

    /// The bytes `[from, to)`, or the part of them the writer has published: ends where the records published from
    /// the header on end.
    pub fn published(&self, from: usize, to: usize) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| m.published(from, to, RECORD_BYTES_MAX))
    }

    /// [`scan_segment`] over this segment.
    pub fn scan<F>(&self, expected_first: Option<u64>, live: bool, visit: F) -> Result<SegmentScan, SegmentFault>
    where
        F: FnMut(usize, &Record) -> Visit,
    {
        match &self.map {
            Some(m) => scan_image(m, expected_first, live, visit),
            None => scan_image(&[][..], expected_first, live, visit),
        }
    }

    /// The walk of [`SegmentView::scan`] from `from`, a place an earlier walk of this segment ended at (or its
    /// first record's): only the records from there on are read.
    pub fn walk_from<F>(&self, from: Place, live: bool, visit: F) -> Result<Walk, SegmentFault>
    where
        F: FnMut(usize, &Record) -> Visit,
    {
        match &self.map {
            Some(m) => walk_image(m, from, live, visit),
            None => walk_image(&[][..], from, live, visit),
        }
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
        if let Some(torn) = &summary.torn {
            // Anything after a torn record must hold no records, or the damage is not at the tail.
            let later = view.scan(None, true, |_, _| Visit::Stop);
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
        let header = SegmentHeader::parse_head(view.header(), view.len() as u64)
            .map_err(|what| SegmentFault::Header(what).with_path(&file.path))?;
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
        let scan = view.scan(expected, opts.live, |offset, record| {
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

    /// A segment file written the way the writer writes one: header, then records 1..=n stored body first and
    /// word last through a shared mapping, the last one's word held back when `in_flight`.
    fn segment_file(tag: &str, n: u64, in_flight: bool) -> (PathBuf, crate::sys::Mmap, usize) {
        let path = std::env::temp_dir().join(format!("bourse-scan-{tag}-{}.seg", std::process::id()));
        let len = SEGMENT_HEADER_BYTES + 4096;
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(len as u64).unwrap();
        let (map, _) = crate::sys::Mmap::map_shared(&file, len, false).unwrap();
        map.write(0, bytemuck::bytes_of(&SegmentHeader::new(1, 1, len as u64, 0)));
        let mut pos = SEGMENT_HEADER_BYTES;
        for seq in 1..=n {
            let mut rec = [0u8; RECORD_BYTES_MAX];
            let len = encode(&Input { seq, timestamp: seq, command: Command::Tick }, 1, &mut rec);
            map.write(pos + 8, &rec[8..len]);
            if !(in_flight && seq == n) {
                map.store_u64_release(pos, u64::from_ne_bytes(rec[..8].try_into().unwrap()));
            }
            pos += len;
        }
        (path, map, pos - RECORD_ALIGN_BYTES)
    }

    /// The defect this guards against: a reader of a live segment held a slice of the whole mapping, bytes the
    /// writer was storing into included. A view lends only what is published, and the scan judges the rest from
    /// copies.
    #[test]
    fn a_view_lends_only_the_records_the_writer_has_published() {
        let (path, writer, in_flight) = segment_file("view", 3, true);
        let view = SegmentView::open(&path).unwrap();
        assert_eq!(view.header().len(), SEGMENT_HEADER_BYTES);
        assert_eq!(view.published(SEGMENT_HEADER_BYTES, view.len()).len(), 2 * RECORD_ALIGN_BYTES);
        assert_eq!(view.slot(in_flight), Slot::Unpublished, "a body without its word is not lent");
        assert_eq!(view.slot(in_flight + RECORD_ALIGN_BYTES), Slot::Unpublished, "nor anything past it");
        let live = view.scan(Some(1), true, |_, _| Visit::Continue).unwrap();
        assert_eq!((live.records, live.end), (2, SegmentEnd::Clean { offset: in_flight }));
        // Not live (after a crash): the same bytes, read by copy, are a torn tail, as in an image.
        let after = view.scan(Some(1), false, |_, _| Visit::Continue).unwrap();
        assert!(matches!(after.end, SegmentEnd::Torn { offset, .. } if offset == in_flight), "{:?}", after.end);
        // The writer stores the word: the record is published to the same view.
        let mut rec = [0u8; RECORD_BYTES_MAX];
        encode(&Input { seq: 3, timestamp: 3, command: Command::Tick }, 1, &mut rec);
        writer.store_u64_release(in_flight, u64::from_ne_bytes(rec[..8].try_into().unwrap()));
        match view.slot(in_flight) {
            Slot::Published(bytes) => assert_eq!(bytes, &rec[..RECORD_ALIGN_BYTES]),
            other => panic!("{other:?}"),
        }
        let live = view.scan(Some(1), true, |_, _| Visit::Continue).unwrap();
        assert_eq!((live.records, live.last_seq), (3, Some(3)));
        assert_eq!(view.published(SEGMENT_HEADER_BYTES, view.len()).len(), 3 * RECORD_ALIGN_BYTES);
        std::fs::remove_file(path).unwrap();
    }

    /// A word that names no record (length zero or past the largest record) is malformed, never lent; a live scan
    /// calls it torn, and one after a crash judges it, like the image, from a copy.
    #[test]
    fn a_malformed_word_is_not_lent_and_is_judged_like_the_image() {
        let (path, writer, last) = segment_file("malformed", 2, false);
        let bad = last + RECORD_ALIGN_BYTES;
        writer.store_u64_release(bad, (4096u64 << 32) | 0xdead_beef);
        let view = SegmentView::open(&path).unwrap();
        assert_eq!(view.slot(bad), Slot::Malformed);
        assert_eq!(view.published(SEGMENT_HEADER_BYTES, view.len()).len(), 2 * RECORD_ALIGN_BYTES);
        let live = view.scan(Some(1), true, |_, _| Visit::Continue).unwrap();
        assert!(matches!(live.end, SegmentEnd::Torn { offset, .. } if offset == bad), "{:?}", live.end);
        let image = std::fs::read(&path).unwrap();
        let from_image = scan_segment(&image, Some(1), false, |_, _| Visit::Continue).unwrap();
        let from_view = view.scan(Some(1), false, |_, _| Visit::Continue).unwrap();
        assert_eq!(from_view, from_image);
        assert!(matches!(from_view.end, SegmentEnd::Torn { offset, .. } if offset == bad), "{:?}", from_view.end);
        std::fs::remove_file(path).unwrap();
    }

    proptest::proptest! {
        /// The view judges a segment exactly as the image scan does, live or not, whatever follows the records: a
        /// view only reads the part past the published records by copy, and must reach the same end.
        #[test]
        fn a_view_scans_a_segment_file_exactly_as_the_image(
            n in 0u64..20,
            damage in proptest::collection::vec((0usize..2048, proptest::prelude::any::<u8>()), 0..8),
        ) {
            let len = SEGMENT_HEADER_BYTES + 2048;
            let mut image = vec![0u8; len];
            image[..core::mem::size_of::<SegmentHeader>()]
                .copy_from_slice(bytemuck::bytes_of(&SegmentHeader::new(1, 1, len as u64, 0)));
            let mut pos = SEGMENT_HEADER_BYTES;
            for seq in 1..=n {
                let mut rec = [0u8; RECORD_BYTES_MAX];
                let rec_len = encode(&Input { seq, timestamp: seq, command: Command::Tick }, 1, &mut rec);
                image[pos..pos + rec_len].copy_from_slice(&rec[..rec_len]);
                pos += rec_len;
            }
            for (at, byte) in damage {
                image[SEGMENT_HEADER_BYTES + at] = byte;
            }
            let path = std::env::temp_dir().join(format!("bourse-scan-diff-{}-{n}.seg", std::process::id()));
            std::fs::write(&path, &image).unwrap();
            let view = SegmentView::open(&path).unwrap();
            for live in [false, true] {
                let mut from_image = Vec::new();
                let a = scan_segment(&image, None, live, |o, r| { from_image.push((o, r.input.seq)); Visit::Continue });
                let mut from_view = Vec::new();
                let b = view.scan(None, live, |o, r| { from_view.push((o, r.input.seq)); Visit::Continue });
                proptest::prop_assert_eq!(&a, &b, "live {}", live);
                proptest::prop_assert_eq!(&from_image, &from_view, "live {}", live);
            }
            std::fs::remove_file(&path).unwrap();
        }
    }

    /// A live reader follows the writer while it appends: every scan of the one view ends cleanly at a record
    /// boundary (the acquire load of each word pairs with the writer's release store), never on a torn record.
    /// The writer waits for the reader to catch up every `BURST` records, so the scans overlap its appends.
    #[test]
    fn a_live_view_follows_a_writer_appending_on_another_thread() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        use crate::wal::{DurabilityMode, Wal, WalConfig};
        use crate::{AckPolicy, CommitIndex};
        const RECORDS: u64 = 20_000;
        const BURST: u64 = 1_000;
        let dir = std::env::temp_dir().join(format!("bourse-scan-follow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = WalConfig::new(&dir);
        cfg.mode = DurabilityMode::None;
        cfg.segment_bytes = 4 << 20;
        cfg.spare = false;
        let mut wal = Wal::create(cfg, 1, Arc::new(CommitIndex::new(AckPolicy::Local, 0))).unwrap();
        let path = dir.join(super::super::segment::segment_file_name(1));
        let seen = Arc::new(AtomicU64::new(0));
        let reader = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let view = SegmentView::open(&path).unwrap();
                let mut counts = std::collections::BTreeSet::new();
                while seen.load(Ordering::Relaxed) < RECORDS {
                    let scan = view.scan(Some(1), true, |_, _| Visit::Continue).unwrap();
                    assert!(matches!(scan.end, SegmentEnd::Clean { .. }), "after {}: {:?}", scan.records, scan.end);
                    assert!(scan.records >= seen.load(Ordering::Relaxed), "the log went backwards");
                    counts.insert(scan.records);
                    seen.store(scan.records, Ordering::Release);
                }
                counts.len()
            })
        };
        let mut w = crate::workload::Workload::new(3);
        for seq in 1..=RECORDS {
            wal.append(&w.next(seq)).unwrap();
            if seq % BURST == 0 {
                let t = Instant::now();
                while seen.load(Ordering::Acquire) < seq {
                    assert!(t.elapsed() < Duration::from_secs(30), "the reader is stuck at {seen:?}");
                    std::thread::yield_now();
                }
            }
        }
        let states = reader.join().unwrap();
        assert!(states as u64 >= RECORDS / BURST, "the reader saw {states} states of the log");
        wal.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
