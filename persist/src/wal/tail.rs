//! Following a live writer from another process: [`Tail`] keeps the segment it is in mapped and its place in it,
//! so each poll reads only the records appended since the last one. [`scan_log`](super::scan_log) reads every
//! segment from its first record on each call; a reader that polls it as the log grows does work quadratic in the
//! log's length.
//!
//! ```text
//!   wal-…0001.seg [hdr|r1 r2 … r4096|slack]   wal-…4097.seg [hdr|r4097 … r5210|0 0 0 …]
//!                                                                         ^ place: offset, seq 5211, epoch
//! ```
//!
//! A poll walks from its place with [`SegmentView::walk_from`] in live mode: it stops at the first unpublished slot
//! (the writer may be storing it) or a slot that does not hold a valid record, and resumes there next time. The
//! writer rotates to `wal-<next seq>.seg` once a record does not fit, so that file existing is what says the
//! segment is finished; the tail then maps it and checks that its header starts at the seq expected. It never
//! takes the directory's lock and never writes.

use std::path::{Path, PathBuf};

use super::record::Record;
use super::scan::{Place, SegmentEnd, SegmentView, Visit};
use super::segment::{list_segments, segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::error::WalError;

/// A reader of a WAL directory's records from a given seq on, as the writer appends them.
pub struct Tail {
    dir: PathBuf,
    /// The seq of the next record to hand out.
    next_seq: u64,
    /// The segment being read and the place in it; `None` until a segment holding `next_seq` exists.
    at: Option<(SegmentView, Place)>,
}

impl Tail {
    /// A tail whose first record will be `from_seq` (≥ 1). Nothing is read until [`Tail::poll`].
    pub fn new(dir: &Path, from_seq: u64) -> Tail {
        assert!(from_seq >= 1, "seqs start at 1");
        Tail { dir: dir.to_path_buf(), next_seq: from_seq, at: None }
    }

    /// The seq of the next record a poll hands out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Passes up to `records_max` further published records, in seq order, to `visit`; returns how many (0: none
    /// yet). A gap, a record from an older epoch or a segment header not starting where the last segment ended is
    /// an error; a slot that does not (yet) hold a valid record ends the poll.
    pub fn poll<F>(&mut self, records_max: usize, mut visit: F) -> Result<usize, WalError>
    where
        F: FnMut(&Record),
    {
        let mut n = 0;
        while n < records_max {
            let Some((view, place)) = self.at.as_mut() else {
                if !self.open_first()? {
                    break;
                }
                continue;
            };
            let want = self.next_seq;
            let walk = view.walk_from(*place, true, |_, r| {
                if r.input.seq < want {
                    return Visit::Continue;
                }
                visit(r);
                n += 1;
                if n < records_max {
                    Visit::Continue
                } else {
                    Visit::Stop
                }
            })
            .map_err(|f| f.with_path(&view.path))?;
            *place = walk.at;
            self.next_seq = self.next_seq.max(walk.at.seq);
            match walk.end {
                SegmentEnd::Stopped { .. } | SegmentEnd::Torn { .. } => break,
                SegmentEnd::Clean { .. } | SegmentEnd::Full { .. } => {
                    if !self.open_next()? {
                        break;
                    }
                }
            }
        }
        Ok(n)
    }

    /// Maps the segment that holds `next_seq` (the newest whose first seq is not above it), if there is one yet.
    /// A directory whose segments all start later no longer holds `next_seq` (retired): an error.
    fn open_first(&mut self) -> Result<bool, WalError> {
        let files = list_segments(&self.dir)?;
        let Some(file) = files.iter().rev().find(|f| f.first_seq <= self.next_seq) else {
            return match files.first() {
                None => Ok(false),
                Some(f) => Err(WalError::SeqGap { path: f.path.clone(), offset: 0, expected: self.next_seq, found: f.first_seq }),
            };
        };
        self.at = Some(open(&file.path, file.first_seq)?);
        Ok(true)
    }

    /// Moves on to `wal-<next seq>.seg` if the writer has rotated to it.
    fn open_next(&mut self) -> Result<bool, WalError> {
        let Some((_, place)) = &self.at else { return Ok(false) };
        let seq = place.seq;
        let path = self.dir.join(segment_file_name(seq));
        if !path.exists() {
            return Ok(false);
        }
        self.at = Some(open(&path, seq)?);
        Ok(true)
    }
}

/// Maps the segment at `path` and places a walk at its first record, which must be `first_seq`.
fn open(path: &Path, first_seq: u64) -> Result<(SegmentView, Place), WalError> {
    let view = SegmentView::open(path)?;
    let header = SegmentHeader::parse_head(view.header(), view.len() as u64)
        .map_err(|what| WalError::BadHeader { path: path.to_path_buf(), offset: 0, what })?;
    if header.first_seq != first_seq {
        return Err(WalError::SeqGap { path: path.to_path_buf(), offset: 0, expected: first_seq, found: header.first_seq });
    }
    Ok((view, Place { offset: SEGMENT_HEADER_BYTES, seq: first_seq, epoch: header.epoch }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bourse_engine::{Command, Input};

    use super::*;
    use crate::wal::{DurabilityMode, Wal, WalConfig};
    use crate::{AckPolicy, CommitIndex};

    fn tick(seq: u64) -> Input {
        Input { seq, timestamp: seq, command: Command::Tick }
    }

    fn writer(dir: &Path) -> Wal {
        let mut cfg = WalConfig::new(dir);
        cfg.mode = DurabilityMode::None;
        // Two pages: the header's, and room for 64 one-line records, so the writer rotates every 64.
        cfg.segment_bytes = 8192;
        Wal::create(cfg, 1, Arc::new(CommitIndex::new(AckPolicy::Local, 0))).unwrap()
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bourse-tail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn seqs(tail: &mut Tail, records_max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        tail.poll(records_max, |r| out.push(r.input.seq)).unwrap();
        out
    }

    #[test]
    fn test_follows_the_writer_across_rotations_reading_each_record_once() {
        let dir = tempdir("follow");
        let mut wal = writer(&dir);
        let mut tail = Tail::new(&dir, 1);
        let mut seen = Vec::new();
        for seq in 1..=300 {
            wal.append_unfenced(&tick(seq)).unwrap();
            wal.fence();
            if seq % 7 == 0 {
                seen.extend(seqs(&mut tail, 1_000));
            }
        }
        seen.extend(seqs(&mut tail, 1_000));
        assert_eq!(seen, (1..=300).collect::<Vec<_>>());
        assert!(seqs(&mut tail, 1_000).is_empty(), "nothing new: nothing handed out");
        assert!(list_segments(&dir).unwrap().len() >= 4, "the run crossed several segments");
        wal.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn test_starts_mid_log_and_hands_out_at_most_records_max() {
        let dir = tempdir("start");
        let mut wal = writer(&dir);
        for seq in 1..=200 {
            wal.append_unfenced(&tick(seq)).unwrap();
        }
        wal.fence();
        let mut tail = Tail::new(&dir, 150);
        assert_eq!(seqs(&mut tail, 10), (150..160).collect::<Vec<_>>());
        assert_eq!(tail.next_seq(), 160);
        assert_eq!(seqs(&mut tail, 1_000), (160..=200).collect::<Vec<_>>());
        let mut early = Tail::new(&dir, 1);
        assert_eq!(seqs(&mut early, 1_000).len(), 200);
        wal.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn test_a_seq_whose_segment_was_retired_is_an_error() {
        let dir = tempdir("retired");
        let mut wal = writer(&dir);
        for seq in 1..=100 {
            wal.append_unfenced(&tick(seq)).unwrap();
        }
        wal.fence();
        std::fs::remove_file(dir.join(segment_file_name(1))).unwrap();
        let err = Tail::new(&dir, 1).poll(10, |_| {}).unwrap_err();
        assert!(matches!(err, WalError::SeqGap { expected: 1, found: 65, .. }), "{err}");
        assert_eq!(seqs(&mut Tail::new(&dir, 70), 5), (70..75).collect::<Vec<_>>());
        wal.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn test_an_empty_directory_has_nothing_yet() {
        let dir = tempdir("empty");
        let mut tail = Tail::new(&dir, 1);
        assert!(seqs(&mut tail, 10).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
