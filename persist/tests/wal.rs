//! The WAL layer end to end on real files: writer, rotation, commit index, reader, torn tails and damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bourse_engine::{Command, Input};
use bourse_persist::recovery::truncate_torn_tail;
use bourse_persist::sys::{FlushKind, MapKind};
use bourse_persist::wal::record::{encode, RECORD_BYTES_MAX};
use bourse_persist::wal::segment::SEGMENT_HEADER_BYTES;
use bourse_persist::wal::{scan_log, LogSummary, ScanOptions, Visit};
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig, WalError};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-wal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path, mode: DurabilityMode, segment_bytes: u64) -> WalConfig {
    let mut c = WalConfig::new(dir);
    c.mode = mode;
    c.segment_bytes = segment_bytes;
    c
}

/// Writes `n` workload inputs (seed 1) and returns them.
fn write_log(dir: &Path, mode: DurabilityMode, segment_bytes: u64, n: u64) -> Vec<Input> {
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(config(dir, mode, segment_bytes), 1, Arc::clone(&commit)).unwrap();
    let mut w = Workload::new(1);
    let inputs: Vec<Input> = (1..=n).map(|s| w.next(s)).collect();
    for i in &inputs {
        wal.append(i).unwrap();
    }
    if mode != DurabilityMode::None {
        assert!(commit.wait_for(n, Duration::from_secs(10)), "commit index stuck at {}", commit.committed());
    }
    wal.close().unwrap();
    inputs
}

fn read_all(dir: &Path) -> (Vec<Input>, Result<LogSummary, WalError>) {
    let mut seen = Vec::new();
    let r = scan_log(dir, ScanOptions::default(), |_, _, rec| {
        seen.push(rec.input);
        Visit::Continue
    });
    (seen, r)
}

#[test]
fn msync_log_round_trips_across_rotations() {
    let dir = tempdir("msync");
    let inputs = write_log(&dir, DurabilityMode::Msync, 16 * 1024, 2_000);
    let (seen, summary) = read_all(&dir);
    let summary = summary.unwrap();
    assert_eq!(seen, inputs);
    assert!(summary.segments.len() > 10, "expected rotations, got {} segments", summary.segments.len());
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(2_000)));
    assert_eq!(summary.torn, None);
    assert_eq!(summary.per_kind.iter().sum::<u64>(), 2_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dax_mode_without_map_sync_reports_not_durable_and_commits_on_fence() {
    let dir = tempdir("dax");
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut cfg = config(&dir, DurabilityMode::Dax, 64 * 1024);
    cfg.flush = Some(FlushKind::Clflush);
    let mut wal = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
    let status = wal.status().clone();
    assert_eq!(status.flush, FlushKind::Clflush);
    if status.map == MapKind::Sync {
        eprintln!("note: this filesystem accepted MAP_SYNC (DAX)");
        assert!(status.durable_on_this_host);
    } else {
        assert!(!status.durable_on_this_host);
        assert!(status.map_sync_refusal.is_some());
    }
    let mut w = Workload::new(3);
    for s in 1..=3 {
        wal.append_unfenced(&w.next(s)).unwrap();
    }
    assert_eq!(commit.committed(), 0, "nothing of a burst is committed before its fence");
    wal.fence();
    assert_eq!(commit.committed(), 3);
    let err = wal.append(&w.next(9)).unwrap_err();
    assert!(matches!(err, WalError::OutOfOrder { expected: 4, found: 9 }), "{err}");
    drop(wal);
    let (seen, summary) = read_all(&dir);
    assert_eq!(seen.len(), 3);
    assert!(summary.unwrap().torn.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_segment_size_and_flush_are_config_errors() {
    let dir = tempdir("cfg");
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let err = Wal::create(config(&dir, DurabilityMode::None, 1000), 1, Arc::clone(&commit)).err().unwrap();
    assert!(matches!(err, WalError::Config(_)), "{err}");
    assert_eq!(bourse_persist::wal::parse_flush("clwb"), Some(FlushKind::Clwb));
    assert_eq!(bourse_persist::wal::parse_flush("sfence"), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The byte range of the record with `seq` in a log written by `write_log`.
fn locate(dir: &Path, seq: u64) -> (PathBuf, usize, usize) {
    let mut found = None;
    scan_log(dir, ScanOptions::default(), |path, offset, rec| {
        if rec.input.seq == seq {
            found = Some((path.to_path_buf(), offset, rec.length));
            return Visit::Stop;
        }
        Visit::Continue
    })
    .unwrap();
    found.unwrap()
}

fn patch(path: &Path, f: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

/// A log whose last record is two cache lines (AddSymbol is the first input of the workload, so write 1..=k and
/// end with a setup record), copied fresh for every damage case.
fn pristine(name: &str, n: u64) -> (PathBuf, Vec<Input>) {
    let dir = tempdir(name);
    let inputs = write_log(&dir, DurabilityMode::None, 8 * 1024, n);
    (dir, inputs)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_stops_exactly_there() {
    // n = 3: the last record is an AddSymbol (two lines); n = 60 ends in a one-line record in a later segment.
    for n in [3u64, 60] {
        let (dir, inputs) = pristine(&format!("torn{n}"), n);
        let (path, offset, length) = locate(&dir, n);
        let work = dir.with_extension("work");
        for cut in 0..length {
            let seg = work.join(path.file_name().unwrap());
            // A write torn at `cut`: the writer stores the body first and the crc|length word last, so model both
            // orders of partial persistence: a prefix survived, or everything but the header word survived.
            for variant in 0..2 {
                if variant == 1 && cut == 0 {
                    continue; // zeroing nothing is not a damage case
                }
                copy_dir(&dir, &work);
                let mut changed = false;
                patch(&seg, |b| {
                    let range = if variant == 0 { offset + cut..offset + length } else { offset..offset + cut.min(8) };
                    changed = b[range.clone()].iter().any(|&x| x != 0);
                    b[range].fill(0);
                });
                let (seen, summary) = read_all(&work);
                let summary = summary.unwrap();
                if !changed && cut > 0 {
                    // The lost bytes were zero padding anyway: the record is intact.
                    assert_eq!(seen, inputs, "n {n} cut {cut} variant {variant}");
                    continue;
                }
                assert_eq!(seen, inputs[..n as usize - 1], "n {n} cut {cut} variant {variant}");
                if variant == 0 && cut == 0 {
                    assert!(summary.torn.is_none(), "nothing of the record reached the file: a clean end");
                    continue;
                }
                let torn = summary.torn.clone().unwrap();
                assert_eq!((torn.offset as usize, torn.seq), (offset, n), "n {n} cut {cut}");
                assert_eq!(torn.path, seg);
                truncate_torn_tail(&torn).unwrap();
                let (again, summary) = read_all(&work);
                assert_eq!(again, inputs[..n as usize - 1]);
                assert!(summary.unwrap().torn.is_none(), "truncation leaves a clean end");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&work).unwrap();
    }
}

#[test]
fn bit_flips_in_the_last_record_are_a_torn_tail_and_earlier_ones_are_errors() {
    let n = 40u64;
    let (dir, inputs) = pristine("flip", n);
    let work = dir.with_extension("work");
    let (last_path, last_off, last_len) = locate(&dir, n);
    let (prev_path, prev_off, prev_len) = locate(&dir, n - 1);
    assert_eq!(last_path, prev_path, "both records in one segment for this test");
    let seg = work.join(last_path.file_name().unwrap());
    for bit in 0..last_len * 8 {
        copy_dir(&dir, &work);
        patch(&seg, |b| b[last_off + bit / 8] ^= 1 << (bit % 8));
        let (seen, summary) = read_all(&work);
        let torn = summary.unwrap().torn.unwrap();
        assert_eq!(seen, inputs[..n as usize - 1], "bit {bit}");
        assert_eq!((torn.offset as usize, torn.seq), (last_off, n));
    }
    for bit in 0..prev_len * 8 {
        copy_dir(&dir, &work);
        patch(&seg, |b| b[prev_off + bit / 8] ^= 1 << (bit % 8));
        let (seen, summary) = read_all(&work);
        match summary {
            Err(WalError::CorruptRecord { offset, seq, next_valid, .. }) => {
                assert_eq!((offset as usize, seq, next_valid as usize), (prev_off, n - 1, last_off), "bit {bit}");
            }
            other => panic!("bit {bit}: expected a corrupt-record error, got {other:?}"),
        }
        assert_eq!(seen, inputs[..n as usize - 2]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn gaps_and_bad_headers_are_errors_that_name_the_file() {
    let (dir, _) = pristine("gap", 300);
    let segs: Vec<PathBuf> = {
        // Segments only: the directory also holds the writer's LOCK file.
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension() == Some("seg".as_ref())).collect();
        v.sort();
        v
    };
    assert!(segs.len() >= 3);
    let work = dir.with_extension("work");

    copy_dir(&dir, &work);
    std::fs::remove_file(work.join(segs[1].file_name().unwrap())).unwrap();
    let err = read_all(&work).1.unwrap_err();
    assert!(matches!(err, WalError::SeqGap { .. }), "{err}");
    assert!(err.to_string().contains(segs[2].file_name().unwrap().to_str().unwrap()), "{err}");

    copy_dir(&dir, &work);
    let victim = work.join(segs[1].file_name().unwrap());
    patch(&victim, |b| b[0] = b'X');
    let err = read_all(&work).1.unwrap_err();
    assert!(matches!(err, WalError::BadHeader { .. }) && err.to_string().contains("magic"), "{err}");

    // A record carrying the wrong seq (re-encoded with a valid CRC) is a gap, not a torn tail.
    copy_dir(&dir, &work);
    let (path, offset, _) = locate(&work, 150);
    patch(&path, |b| {
        let mut buf = [0u8; RECORD_BYTES_MAX];
        let input = Input { seq: 151, timestamp: 1, command: Command::Tick };
        let len = encode(&input, 1, &mut buf);
        b[offset..offset + len].copy_from_slice(&buf[..len]);
    });
    let err = read_all(&work).1.unwrap_err();
    assert!(matches!(err, WalError::SeqGap { expected: 150, found: 151, .. }), "{err}");

    // Truncated segment file.
    copy_dir(&dir, &work);
    let victim = work.join(segs[2].file_name().unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&victim).unwrap();
    f.set_len(SEGMENT_HEADER_BYTES as u64 + 64).unwrap();
    let err = read_all(&work).1.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn full_disk_is_a_clear_error_naming_the_file() {
    // SAFETY-free skip: mounting a tiny tmpfs needs root and the mount tool.
    let dir = tempdir("enospc");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: cannot mount a small tmpfs (needs root and mount(8))");
        return;
    }
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let err = Wal::create(config(&dir, DurabilityMode::Msync, 4 << 20), 1, commit).err().unwrap();
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let text = err.to_string();
    assert!(matches!(err, WalError::DiskFull { .. }), "{text}");
    assert!(text.contains("wal-00000000000000000001.seg") && text.contains("disk full"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn live_reader_follows_a_writer() {
    let dir = tempdir("live");
    let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
    let mut wal = Wal::create(config(&dir, DurabilityMode::Msync, 64 * 1024), 1, Arc::clone(&commit)).unwrap();
    let mut w = Workload::new(5);
    for s in 1..=500 {
        wal.append(&w.next(s)).unwrap();
    }
    let live = ScanOptions { from_seq: 0, live: true };
    let summary = scan_log(&dir, live, |_, _, _| Visit::Continue).unwrap();
    assert_eq!(summary.last_seq, Some(500));
    wal.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_headers_carry_stream_offsets_that_continue_across_rotation_and_restart() {
    let dir = tempdir("stream");
    let inputs = write_log(&dir, DurabilityMode::None, 8192, 700);
    // A restarted writer continues the stream where the last record ended.
    let mut next = Wal::create(config(&dir, DurabilityMode::None, 8192), 701, Arc::new(CommitIndex::new(AckPolicy::Local, 700))).unwrap();
    let mut total = 0u64;
    let mut buf = [0u8; RECORD_BYTES_MAX];
    let mut ends = std::collections::BTreeMap::new();
    for i in &inputs {
        ends.insert(i.seq, total);
        total += encode(i, 1, &mut buf) as u64;
    }
    assert_eq!(next.stream_offset(), total, "a restarted writer starts at the stream offset after seq 700");
    next.append(&Workload::new(9).next(701)).unwrap();
    drop(next);
    let segments = bourse_persist::wal::segment::list_segments(&dir).unwrap();
    assert!(segments.len() > 10, "{} segments", segments.len());
    for s in &segments {
        let bytes = std::fs::read(&s.path).unwrap();
        let h = bourse_persist::wal::segment::SegmentHeader::parse(&bytes).unwrap();
        let expected = ends.get(&s.first_seq).copied().unwrap_or(total);
        assert_eq!(h.first_offset, expected, "{}: first_offset", s.path.display());
    }
    // Continuing anywhere but right after the log's last record is refused, not papered over.
    let err = Wal::create(config(&dir, DurabilityMode::None, 8192), 900, Arc::new(CommitIndex::new(AckPolicy::Local, 0)))
        .err()
        .expect("a gap before the new segment is refused");
    assert!(err.to_string().contains("ends at seq 701"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discard_after_cuts_the_log_back_keeping_what_it_cut_aside() {
    let dir = tempdir("discard");
    let inputs = write_log(&dir, DurabilityMode::Msync, 8192, 700);
    let aside = dir.join("diverged");
    let report = bourse_persist::wal::truncate::discard_after(&dir, 400, &aside).unwrap();
    assert_eq!(report.records, 300);
    assert_eq!(report.last_seq_before, 700);
    assert!(report.files_aside.len() >= 2, "{:?}", report.files_aside);
    let (read, summary) = read_all(&dir);
    assert_eq!(summary.unwrap().last_seq, Some(400));
    assert!(read[..] == inputs[..400], "the log keeps exactly seqs 1..=400");
    // Everything cut is still on disk, aside.
    let (kept_aside, _) = read_all(&aside);
    assert!(kept_aside.last() == inputs.last(), "the cut records are kept under {}", aside.display());
    // The writer continues right after the cut, in the stream as well.
    let mut total = 0u64;
    let mut buf = [0u8; RECORD_BYTES_MAX];
    for i in &inputs[..400] {
        total += encode(i, 1, &mut buf) as u64;
    }
    let wal = Wal::create(config(&dir, DurabilityMode::None, 8192), 401, Arc::new(CommitIndex::new(AckPolicy::Local, 400))).unwrap();
    assert_eq!(wal.stream_offset(), total);
    drop(wal);
    // Cutting to where the log already ends changes nothing; beyond it is refused.
    assert_eq!(bourse_persist::wal::truncate::discard_after(&dir, 400, &aside).unwrap().records, 0);
    assert!(bourse_persist::wal::truncate::discard_after(&dir, 500, &aside).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
