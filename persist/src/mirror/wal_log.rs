//! The primary's WAL as the mirror reads it: every segment file of a directory, addressed by stream offset.
//!
//! The writer appends on the pipeline core and knows nothing of the mirror. [`WalLog`] follows it from another
//! thread through read-only `MAP_SHARED` mappings (it sees the writer's stores through the page cache): it walks
//! the newest segment record by record, each one CRC-checked, so a record not yet published simply ends the walk
//! until the next poll; when the writer has rotated, it moves on to the next segment file. Older segments are
//! mapped on demand when a standby that is behind asks for them ([`MirrorLog::bytes_from`]), one at a time.
//!
//! The mappings are [`SegmentView`]s: they lend only records the writer has published (each `crc|length` word
//! loaded with acquire ordering, the partner of the writer's release store), never the bytes it may be storing, so
//! the stretch [`MirrorLog::bytes_from`] returns for the newest segment ends where the published records end.
//!
//! ```text
//!  stream offset:  0 ........................ f1 ...................... f2 ............ tail
//!  files:          wal-1.seg [hdr|records|slack] wal-s1.seg [hdr|records|slack] wal-s2.seg [hdr|records....
//!                  first_offset = 0              first_offset = f1              first_offset = f2
//! ```
//!
//! A segment's records occupy stream offsets `[first_offset, next segment's first_offset)`; the slack after them is
//! never read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::primary::MirrorLog;
use super::record::{RecordFormat, WalRecords};
use super::Position;
use crate::error::WalError;
use crate::sys::Slot;
use crate::wal::scan::SegmentView;
use crate::wal::segment::{list_segments, segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::wal::RECORD_BYTES_MAX;

/// How often, at most, the tail walk looks for the next segment's file when the current one may be full.
const ROTATION_CHECK_EVERY: Duration = Duration::from_millis(1);

struct Mapped {
    view: SegmentView,
    first_seq: u64,
    first_offset: u64,
    /// Stream offset just past the segment's last record, once a later segment exists.
    end_offset: Option<u64>,
}

impl Mapped {
    fn open(path: &Path) -> Result<Mapped, WalError> {
        let view = SegmentView::open(path)?;
        let header = SegmentHeader::parse_head(view.header(), view.len() as u64).map_err(|what| WalError::BadHeader {
            path: path.to_path_buf(),
            offset: 0,
            what,
        })?;
        Ok(Mapped { view, first_seq: header.first_seq, first_offset: header.first_offset, end_offset: None })
    }

    /// The records' bytes from stream offset `offset` to the segment's last record (the last one published while
    /// it is the newest), or `None` if `offset` is not in this segment.
    fn bytes_from(&self, offset: u64) -> Option<&[u8]> {
        if offset < self.first_offset || self.end_offset.is_some_and(|end| offset >= end) {
            return None;
        }
        let start = SEGMENT_HEADER_BYTES as u64 + (offset - self.first_offset);
        let end = match self.end_offset {
            Some(end) => SEGMENT_HEADER_BYTES as u64 + (end - self.first_offset),
            None => self.view.len() as u64,
        };
        let len = self.view.len() as u64;
        Some(self.view.published(start.min(len) as usize, end.min(len) as usize))
    }
}

/// A known segment: where its records start and end in the stream.
#[derive(Clone, Debug)]
struct Known {
    first_seq: u64,
    first_offset: u64,
    path: PathBuf,
}

/// Reads a WAL directory as one stream for the mirror (see the module documentation).
pub struct WalLog {
    dir: PathBuf,
    current: Mapped,
    /// Tail of the current segment: the last complete record seen and the stream offset after it.
    tail: Position,
    /// The older segment last read for a standby that is behind.
    older: Option<Mapped>,
    /// Segments older than `current`, oldest first (refreshed when a read misses).
    known: Vec<Known>,
    rotation_checked: Instant,
    /// Segments moved through by the tail walk (rotations followed).
    pub rotations: u64,
}

impl WalLog {
    /// Follows the newest segment of `dir` from its first record. The log's position before that record is
    /// [`WalLog::start`].
    pub fn open(dir: &Path) -> Result<WalLog, WalError> {
        let newest = list_segments(dir)?
            .pop()
            .ok_or_else(|| WalError::Config(format!("{}: no WAL segment to mirror", dir.display())))?;
        let current = Mapped::open(&newest.path)?;
        let tail = Position { seq: current.first_seq - 1, offset: current.first_offset };
        Ok(WalLog {
            dir: dir.to_path_buf(),
            current,
            tail,
            older: None,
            known: Vec::new(),
            rotation_checked: Instant::now(),
            rotations: 0,
        })
    }

    /// Where the newest segment (at open) began: the log's end when the writer started.
    pub fn start(&self) -> Position {
        Position { seq: self.current.first_seq - 1, offset: self.current.first_offset }
    }

    /// The last complete record found and the stream offset after it.
    pub fn tail(&self) -> Position {
        self.tail
    }

    /// Path of the segment the tail is in.
    pub fn current_path(&self) -> &Path {
        &self.current.view.path
    }

    /// Advances the tail over at most `max_records` records the writer has completed, following rotations;
    /// returns how many. A segment that does not begin where the previous one ended is an error (the directory
    /// holds something other than this writer's log).
    pub fn poll_tail(&mut self, max_records: usize) -> Result<usize, WalError> {
        let mut walked = 0;
        while walked < max_records {
            let at = SEGMENT_HEADER_BYTES + (self.tail.offset - self.current.first_offset) as usize;
            // The writer publishes a record by storing its crc|length word last, with release ordering; the view
            // loads it with acquire before it lends the record, so the record's bytes are complete when lent.
            let record = match self.current.view.slot(at) {
                Slot::Published(bytes) => bytes,
                Slot::Unpublished | Slot::Malformed => &[],
            };
            let room_bytes = self.current.view.len().saturating_sub(at);
            match WalRecords.check(record) {
                Ok(meta) if meta.seq == self.tail.seq + 1 => {
                    self.tail = Position { seq: meta.seq, offset: self.tail.offset + meta.len_bytes as u64 };
                    walked += 1;
                }
                _ => {
                    if !self.follow_rotation(room_bytes)? {
                        break;
                    }
                }
            }
        }
        Ok(walked)
    }

    /// The writer rotates only when the next record does not fit, so a segment with room for the largest record
    /// has not been rotated; otherwise look (at most every millisecond) for the file the writer names after the
    /// next seq. Returns whether the walk moved to it.
    #[cold]
    fn follow_rotation(&mut self, room_bytes: usize) -> Result<bool, WalError> {
        if room_bytes >= RECORD_BYTES_MAX || self.rotation_checked.elapsed() < ROTATION_CHECK_EVERY {
            return Ok(false);
        }
        self.rotation_checked = Instant::now();
        let path = self.dir.join(segment_file_name(self.tail.seq + 1));
        if !path.exists() {
            return Ok(false);
        }
        let next = Mapped::open(&path)?;
        if next.first_offset != self.tail.offset {
            return Err(WalError::BadHeader {
                path,
                offset: 0,
                what: format!(
                    "segment begins at stream offset {} but the previous one ends at {}",
                    next.first_offset, self.tail.offset
                ),
            });
        }
        let mut old = std::mem::replace(&mut self.current, next);
        old.end_offset = Some(self.tail.offset);
        self.known.push(Known { first_seq: old.first_seq, first_offset: old.first_offset, path: old.view.path.clone() });
        self.older = Some(old);
        self.rotations += 1;
        Ok(true)
    }

    /// Maps the older segment holding `offset`, if the directory has one.
    #[cold]
    fn map_older(&mut self, offset: u64) -> Option<()> {
        let mut found = self.find_known(offset);
        if found.is_none() {
            self.refresh_known().ok()?;
            found = self.find_known(offset);
        }
        let i = found?;
        let mut mapped = Mapped::open(&self.known[i].path).ok()?;
        if mapped.first_seq != self.known[i].first_seq {
            return None;
        }
        mapped.end_offset = Some(self.known.get(i + 1).map_or(self.current.first_offset, |k| k.first_offset));
        self.older = Some(mapped);
        Some(())
    }

    fn find_known(&self, offset: u64) -> Option<usize> {
        let i = self.known.partition_point(|k| k.first_offset <= offset);
        (i > 0).then(|| i - 1)
    }

    /// Re-reads the headers of every segment older than the current one.
    fn refresh_known(&mut self) -> Result<(), WalError> {
        let mut known = Vec::new();
        for file in list_segments(&self.dir)? {
            if file.first_seq >= self.current.first_seq {
                break;
            }
            let m = Mapped::open(&file.path)?;
            known.push(Known { first_seq: m.first_seq, first_offset: m.first_offset, path: file.path });
        }
        self.known = known;
        Ok(())
    }
}

impl MirrorLog for WalLog {
    fn bytes_from(&mut self, offset: u64) -> &[u8] {
        if offset >= self.current.first_offset {
            return self.current.bytes_from(offset).unwrap_or(&[]);
        }
        if self.older.as_ref().and_then(|m| m.bytes_from(offset)).is_none() && self.map_older(offset).is_none() {
            return &[];
        }
        self.older.as_ref().and_then(|m| m.bytes_from(offset)).unwrap_or(&[])
    }
}
