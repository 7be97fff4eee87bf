//! The primary's side of the hot standby, run on the aux thread.
//!
//! The pipeline core appends records to the current WAL segment and knows nothing of the mirror. This module reads
//! the same segment through its own read-only mapping ([`SegmentView`]: `MAP_SHARED`, so it sees the writer's
//! stores through the page cache), finds the tail by walking records forward (each one CRC-checked, so a record
//! caught half-written simply ends the walk until the next poll), and feeds that tail and the segment bytes to the
//! mirror's [`Primary`] state machine over TCP. The mirror region is the segment: record offsets are the same on
//! both nodes because the standby appends the same records to a segment that starts at the same seq.
//!
//! ```text
//!  pipeline core ── append ──▶ wal-<first>.seg (MAP_SHARED) ◀── read-only map ── aux: MirrorSender::poll
//!                                                                                 ├ walk tail, Primary::on_append
//!  CommitIndex ◀── publish_mirrored (MirrorGate) ◀── standby acks ◀── TCP ───────┴ Primary::tick
//! ```
//!
//! With `ack = "mirrored"` the commit index is `min(local, standby durable)`, so replies and market data wait for
//! the standby. When the primary is fenced (the standby promoted itself and said so), the commit index is frozen
//! by switching it to the mirrored policy: the mirrored seq no longer advances, so nothing more is released, even
//! under `ack = "local"`.
//!
//! Limit: one segment. When the writer rotates to a new segment the sender stops shipping records (it keeps its
//! heartbeats going, so the standby does not promote under a live primary) and says so once on stderr; under
//! `ack = "mirrored"` that stops acknowledgements. Size `wal.segment_bytes` for a session's records.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_persist::mirror::tcp::TcpTransport;
use bourse_persist::mirror::{MirrorConfig, Position, Primary, RecordFormat, WalRecords};
use bourse_persist::wal::scan::SegmentView;
use bourse_persist::wal::segment::{segment_file_name, SEGMENT_HEADER_BYTES};
use bourse_persist::wal::RECORD_BYTES_MAX;
use bourse_persist::{AckPolicy, CommitIndex};

use crate::config::{Config, MirrorSection};

/// Records walked per poll at most, so one poll stays short even when the writer is far ahead.
const TAIL_WALK_RECORDS_MAX: usize = 4_096;

/// Floor of the retransmission timeout (see [`mirror_config`]).
const RETRANSMIT_AFTER_NS_MIN: u64 = 20_000_000;

/// The mirror's timing from the `[mirror]` section, for a region of `region_size_bytes`.
pub fn mirror_config(section: &MirrorSection, region_size_bytes: u64) -> MirrorConfig {
    let mut c = MirrorConfig::new(region_size_bytes);
    c.heartbeat_interval_ns = section.heartbeat_ms * 1_000_000;
    c.promote_after_silence_ns = section.promote_after_ms * 1_000_000;
    // Retransmit only after acks have stalled well beyond a durability round: off DAX the standby's ack waits for
    // its msync (milliseconds on ext4), and rewinding sooner would resend the whole window on every sync. TCP
    // loses no frames on a live connection; retransmission matters after a reconnect.
    c.retransmit_after_ns = (4 * c.heartbeat_interval_ns).max(RETRANSMIT_AFTER_NS_MIN);
    c
}

/// What the sender has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStatus {
    pub tail: Position,
    pub acked: Position,
    pub fenced_by: Option<u64>,
    /// The writer moved to a new segment, which this sender does not follow.
    pub rotated: bool,
}

/// The primary mirror: owns the state machine, the TCP transport and the segment view.
pub struct MirrorSender {
    primary: Primary<WalRecords>,
    transport: TcpTransport,
    view: SegmentView,
    wal_dir: PathBuf,
    tail: Position,
    commit: Arc<CommitIndex>,
    status: SenderStatus,
    clock: Instant,
    /// When the tail walk last checked for a rotated segment (the check touches the filesystem).
    rotation_checked: Instant,
}

impl MirrorSender {
    /// Starts mirroring the segment that begins at `first_seq` in `wal_dir` (the one the WAL writer created after
    /// recovery) to `section.standby_addr`, publishing acks into `commit`.
    pub fn start(config: &Config, wal_dir: &Path, first_seq: u64, commit: Arc<CommitIndex>) -> anyhow::Result<MirrorSender> {
        let section = config.mirror.as_ref().context("no [mirror] section")?;
        let addr = section.standby_addr.context("mirror.standby_addr is not set")?;
        let path = wal_dir.join(segment_file_name(first_seq));
        let view = SegmentView::open(&path).with_context(|| format!("mapping {} for the mirror", path.display()))?;
        let start = Position { seq: first_seq - 1, offset: SEGMENT_HEADER_BYTES as u64 };
        let primary = Primary::new(
            mirror_config(section, view.bytes().len() as u64),
            WalRecords,
            u64::from(section.epoch),
            start,
        );
        primary.gate().attach_commit_index(Arc::clone(&commit));
        let transport = TcpTransport::connect(addr);
        let sender = MirrorSender {
            primary,
            transport,
            view,
            wal_dir: wal_dir.to_path_buf(),
            tail: start,
            commit,
            status: SenderStatus { tail: start, acked: start, ..SenderStatus::default() },
            clock: Instant::now(),
            rotation_checked: Instant::now(),
        };
        Ok(sender)
    }

    /// Freezes the commit index where it is: the mirrored seq stops advancing, so nothing more is released.
    pub fn stop_acknowledging(&self) {
        self.commit.set_policy(AckPolicy::Mirrored);
    }

    pub fn status(&self) -> SenderStatus {
        self.status
    }

    /// One turn: find the new tail, then let the state machine send writes and heartbeats and take acks. Returns
    /// the work done (zero when idle). An error is a local fault (a damaged local record, a broken socket set-up).
    pub fn poll(&mut self) -> anyhow::Result<usize> {
        let walked = if self.status.rotated { 0 } else { self.walk_tail() };
        if walked > 0 {
            self.primary.on_append(self.tail);
        }
        let now_ns = self.clock.elapsed().as_nanos() as u64;
        let work = self.primary.tick(now_ns, self.view.bytes(), &mut self.transport).context("mirror primary")?;
        self.status.tail = self.tail;
        self.status.acked = self.primary.acked();
        if let (Some(epoch), None) = (self.primary.fenced_by(), self.status.fenced_by) {
            // A standby serves a newer epoch: freeze the commit index so nothing more is acknowledged here.
            self.stop_acknowledging();
            self.status.fenced_by = Some(epoch);
            eprintln!(
                "bourse: mirror: FENCED by epoch {epoch} (this node is epoch {}); no further acknowledgements, \
                 committed stays at {}",
                self.primary.epoch(),
                self.commit.committed()
            );
        }
        Ok(work + walked)
    }

    /// Advances `tail` over the records the writer has completed; returns how many.
    fn walk_tail(&mut self) -> usize {
        let bytes = self.view.bytes();
        let mut walked = 0;
        while walked < TAIL_WALK_RECORDS_MAX {
            let at = self.tail.offset as usize;
            match WalRecords.check(&bytes[at.min(bytes.len())..]) {
                Ok(meta) if meta.seq == self.tail.seq + 1 => {
                    self.tail = Position { seq: meta.seq, offset: (at + meta.len_bytes) as u64 };
                    walked += 1;
                }
                _ => {
                    self.check_rotation(bytes.len() - at.min(bytes.len()));
                    break;
                }
            }
        }
        walked
    }

    /// The writer rotates only when the next record does not fit, so a segment with room for the largest record
    /// left has not been rotated; otherwise look (at most every millisecond) for the next segment's file.
    #[cold]
    fn check_rotation(&mut self, room_bytes: usize) {
        if room_bytes >= RECORD_BYTES_MAX || self.rotation_checked.elapsed() < Duration::from_millis(1) {
            return;
        }
        self.rotation_checked = Instant::now();
        // The writer names the next segment after the first seq it will hold.
        let next = self.wal_dir.join(segment_file_name(self.tail.seq + 1));
        if next.exists() {
            self.status.rotated = true;
            eprintln!(
                "bourse: mirror: the WAL rotated to {} after seq {}; mirroring across segments is not supported, \
                 the standby stays at seq {} (under ack = \"mirrored\" acknowledgements stop; raise wal.segment_bytes)",
                next.display(),
                self.tail.seq,
                self.tail.seq
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::{Command, Deposit, Input};
    use bourse_persist::{DurabilityMode, Wal, WalConfig};

    const SEGMENT_BYTES: u64 = 8_192;

    fn primary_config() -> Config {
        // Nothing listens on port 1: the sender keeps re-dialling, which is all this test needs of the link.
        Config::parse(
            r#"
            [backend]
            kind = "socket"
            bind = "127.0.0.1:9000"
            [market_data]
            group = "127.0.0.1:9100"
            [[symbols]]
            name = "AAPL"
            reference_price = "150.00"
            [mirror]
            role = "primary"
            standby_addr = "127.0.0.1:1"
            ack = "mirrored"
            "#,
        )
        .unwrap()
    }

    fn deposit(seq: u64) -> Input {
        Input { seq, timestamp: seq, command: Command::Deposit(Deposit { account: 0, amount: 1 }) }
    }

    #[test]
    fn the_sender_walks_the_tail_and_stops_shipping_at_a_rotation() {
        let dir = std::env::temp_dir().join(format!("bourse-mirror-sender-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut wal_config = WalConfig::new(&dir);
        wal_config.mode = DurabilityMode::None;
        wal_config.segment_bytes = SEGMENT_BYTES;
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        let mut wal = Wal::create(wal_config, 1, Arc::clone(&commit)).unwrap();
        let mut sender = MirrorSender::start(&primary_config(), &dir, 1, Arc::clone(&commit)).unwrap();

        for seq in 1..=10 {
            wal.append(&deposit(seq)).unwrap();
        }
        sender.poll().unwrap();
        let st = sender.status();
        assert_eq!(st.tail, Position { seq: 10, offset: SEGMENT_HEADER_BYTES as u64 + 10 * 64 });
        assert!(!st.rotated);
        assert_eq!(commit.committed(), 0, "nothing is committed before the standby acknowledges it");

        // Fill the segment (64 one-line records fit after the header) and spill into the next one.
        let per_segment = (SEGMENT_BYTES - SEGMENT_HEADER_BYTES as u64) / 64;
        for seq in 11..=per_segment + 1 {
            wal.append(&deposit(seq)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !sender.status().rotated && Instant::now() < deadline {
            sender.poll().unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        let st = sender.status();
        assert!(st.rotated, "the rotation to a second segment is noticed");
        assert_eq!(st.tail.seq, per_segment, "the tail stops at the end of the mirrored segment");
        assert_eq!(st.tail.offset, SEGMENT_BYTES);
        sender.stop_acknowledging();
        assert_eq!(commit.policy(), AckPolicy::Mirrored);
        drop(wal);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
