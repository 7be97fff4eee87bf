//! The mirror over a real WAL directory: the primary reads its segments through `WalLog` while the writer appends
//! and rotates, and the standby (over the simulated link, with faults) receives every record exactly once, across
//! every segment boundary; a standby that starts from nothing is caught up from the oldest segment.

use bourse_engine::Input;
use bourse_persist::mirror::sim::{Faults, SimNet};
use bourse_persist::mirror::{MirrorConfig, Position, Primary, Standby, WalLog, WalRecords};
use bourse_persist::wal::segment::list_segments;
use bourse_persist::wal::{DurabilityMode, Wal, WalConfig};
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex};
use std::sync::Arc;

mod support;
use support::Host;

/// Small segments: ~60 records each, so a few thousand records rotate dozens of times.
const SEGMENT_BYTES: u64 = 8192;
const STEP_NS: u64 = 100_000;


fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bourse-mirror-wal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn wal(dir: &std::path::Path) -> Wal {
    let mut config = WalConfig::new(dir);
    config.mode = DurabilityMode::None;
    config.segment_bytes = SEGMENT_BYTES;
    Wal::create(config, 1, Arc::new(CommitIndex::new(AckPolicy::Local, 0))).unwrap()
}

fn mirror_config() -> MirrorConfig {
    let mut c = MirrorConfig::new(64 * 1024);
    c.write_chunk_max_bytes = 4096;
    c.inflight_max_bytes = 16 * 1024;
    c.promote_after_silence_ns = 10_000_000_000;
    c
}

/// Appends `records` workload inputs while mirroring them, then lets the mirror converge. Returns what the writer
/// appended and what the standby received.
fn mirror_while_writing(tag: &str, records: u64, faults: Faults, standby_joins_after: u64) -> (Vec<Input>, Host, WalLog) {
    let dir = temp_dir(tag);
    let mut writer = wal(&dir);
    let mut workload = Workload::new(7);
    let mut appended = Vec::new();
    let mut append = |writer: &mut Wal, appended: &mut Vec<Input>, n: u64| {
        for _ in 0..n {
            let input = workload.next(writer.next_seq());
            writer.append(&input).unwrap();
            appended.push(input);
        }
    };
    append(&mut writer, &mut appended, standby_joins_after);
    let mut log = WalLog::open(&dir).unwrap();
    let config = mirror_config();
    // The primary's epoch begins at the end of the newest segment's predecessor; older records are caught up.
    let mut primary = Primary::new(config, WalRecords, 1, log.start());
    let mut standby = Standby::new(config, WalRecords, 1, Position::default());
    let mut host = Host { applied: Position::default(), inputs: Vec::new() };
    let (net, mut p_end, mut s_end) = SimNet::new(11, faults);
    let mut region = vec![0u8; config.region_size_bytes as usize];
    let mut now_ns = 1_000_000;
    let mut step = |now_ns: &mut u64, log: &mut WalLog, primary: &mut Primary<WalRecords>, host: &mut Host| {
        *now_ns += STEP_NS;
        net.set_now(*now_ns);
        if log.poll_tail(usize::MAX).unwrap() > 0 {
            primary.on_append(log.tail());
        }
        primary.tick(*now_ns, log, &mut p_end).unwrap();
        standby.tick(*now_ns, &mut region, &mut s_end, host).unwrap();
    };
    while (appended.len() as u64) < records {
        append(&mut writer, &mut appended, 7);
        std::thread::sleep(std::time::Duration::from_micros(50)); // lets the rotation check's clock move
        step(&mut now_ns, &mut log, &mut primary, &mut host);
    }
    net.set_faults(Faults::default());
    for _ in 0..20_000 {
        std::thread::sleep(std::time::Duration::from_micros(20));
        step(&mut now_ns, &mut log, &mut primary, &mut host);
        if primary.gate().mirrored_seq() == appended.len() as u64 {
            break;
        }
    }
    assert_eq!(primary.gate().mirrored_seq(), appended.len() as u64, "the mirror converges: primary acked {:?} tail {:?} log tail {:?} start {:?}; {:?}; {:?}", primary.acked(), primary.tail(), log.tail(), log.start(), primary.stats(), standby.stats());
    drop(writer);
    let segments = list_segments(&dir).unwrap().len();
    assert!(segments > 20, "the writer rotated many times: {segments} segments");
    std::fs::remove_dir_all(&dir).unwrap();
    (appended, host, log)
}

#[test]
fn mirroring_follows_the_writer_across_segment_rotations() {
    let faults = Faults { drop_ppm: 30_000, duplicate_ppm: 30_000, truncate_ppm: 10_000, corrupt_ppm: 10_000, delay_ns_max: 500_000 };
    let (appended, host, log) = mirror_while_writing("rotate", 2_000, faults, 0);
    assert!(log.rotations > 20, "rotations followed: {}", log.rotations);
    assert_eq!(host.inputs.len(), appended.len(), "every record exactly once");
    assert!(host.inputs == appended, "the standby holds the writer's inputs, in order");
}

#[test]
fn a_standby_that_starts_from_nothing_is_caught_up_from_the_oldest_segment() {
    // 1,500 records (about 25 segments) exist before the mirror starts; the primary's epoch begins at the newest
    // segment, and the standby says Hello from the empty log.
    let (appended, host, _) = mirror_while_writing("late", 2_000, Faults::default(), 1_500);
    assert_eq!(host.inputs.len(), appended.len());
    assert!(host.inputs == appended);
}
