//! Cutting a log back to a seq: what a former primary does before it follows the node that replaced it.
//!
//! A primary that kept appending after its standby was promoted (it was partitioned, or it acknowledged locally)
//! holds records past the point where the new epoch began; the new primary never had them, so they must go before
//! this node can follow it. Nothing is destroyed: every file that held a discarded record (segments, and snapshots
//! taken past the cut) is first moved, or copied, into `aside`, then the log is cut — later segments removed from
//! the directory and the records after `keep_seq` in the cut segment zeroed and synced, exactly as recovery zeroes a
//! torn tail — so that recovery afterwards ends at `keep_seq`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::scan::{SegmentView, Visit};
use super::segment::list_segments;
use super::writer::sync_dir;
use crate::error::WalError;
use crate::snapshot::list_snapshots;

/// What [`discard_after`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Records removed from the log (they remain in the files under `aside`).
    pub records: u64,
    /// Last seq of the log before the cut.
    pub last_seq_before: u64,
    /// Files moved or copied into `aside`.
    pub files_aside: Vec<PathBuf>,
}

/// Cuts the log in `dir` back to `keep_seq`, keeping what is cut under `aside` (see the module documentation).
/// The log must hold `keep_seq` (or `keep_seq` must be 0); a log that ends at `keep_seq` is left as it is.
/// Call it only while holding the directory's [`super::DirLock`]: it zeroes and moves files a live writer may own.
pub fn discard_after(dir: &Path, keep_seq: u64, aside: &Path) -> Result<Discarded, WalError> {
    let mut out = Discarded::default();
    let segments = list_segments(dir)?;
    let mut cut: Option<(PathBuf, usize, usize)> = None;
    let mut later = Vec::new();
    for seg in &segments {
        let view = SegmentView::open(&seg.path)?;
        let mut end = None;
        let mut after = 0u64;
        let scan = view.scan(None, true, |offset, record| {
            if record.input.seq <= keep_seq {
                end = Some(offset + record.length);
            } else {
                after += 1;
            }
            Visit::Continue
        })
        .map_err(|f| f.with_path(&seg.path))?;
        if let Some(last) = scan.last_seq {
            out.last_seq_before = out.last_seq_before.max(last);
        }
        out.records += after;
        if seg.first_seq > keep_seq {
            later.push(seg.path.clone());
        } else if after > 0 {
            let dirty_end = match scan.end {
                super::scan::SegmentEnd::Clean { offset }
                | super::scan::SegmentEnd::Full { offset }
                | super::scan::SegmentEnd::Stopped { offset } => offset,
                super::scan::SegmentEnd::Torn { dirty_end, .. } => dirty_end,
            };
            let keep_end = end.unwrap_or(super::segment::SEGMENT_HEADER_BYTES);
            cut = Some((seg.path.clone(), keep_end, dirty_end));
        }
    }
    if keep_seq > out.last_seq_before {
        return Err(WalError::Config(format!(
            "{}: cannot cut the log back to seq {keep_seq}: it ends at seq {}",
            dir.display(),
            out.last_seq_before
        )));
    }
    let snapshots: Vec<PathBuf> = list_snapshots(dir)
        .map_err(|e| WalError::Config(format!("{}: listing snapshots: {e}", dir.display())))?
        .into_iter()
        .filter(|(seq, _)| *seq > keep_seq)
        .map(|(_, path)| path)
        .collect();
    if out.records == 0 && snapshots.is_empty() && later.is_empty() {
        return Ok(out);
    }
    std::fs::create_dir_all(aside).map_err(|e| WalError::io(aside, "create directory", e))?;
    let aside_path = |p: &Path| aside.join(p.file_name().unwrap_or_default());
    if let Some((path, keep_end, dirty_end)) = &cut {
        let copy = aside_path(path);
        std::fs::copy(path, &copy).map_err(|e| WalError::io(&copy, "copy the cut segment aside", e))?;
        out.files_aside.push(copy);
        let file = OpenOptions::new().write(true).open(path).map_err(|e| WalError::io(path, "open", e))?;
        let zeros = vec![0u8; dirty_end.saturating_sub(*keep_end)];
        file.write_all_at(&zeros, *keep_end as u64).map_err(|e| WalError::io(path, "zero the cut records", e))?;
        file.sync_all().map_err(|e| WalError::io(path, "fsync", e))?;
    }
    for path in later.iter().chain(snapshots.iter()) {
        let to = aside_path(path);
        std::fs::rename(path, &to).map_err(|e| WalError::io(path, "move aside", e))?;
        out.files_aside.push(to);
    }
    sync_dir(aside)?;
    sync_dir(dir)?;
    Ok(out)
}
