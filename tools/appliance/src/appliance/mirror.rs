//! The primary's side of the hot standby, run on the aux thread.
//!
//! The pipeline core appends records to the WAL and knows nothing of the mirror. This module follows the same
//! files through [`WalLog`] (read-only `MAP_SHARED` mappings of every segment, addressed by stream offset: it walks
//! the newest segment's records as the writer completes them, each one CRC-checked, follows the writer into each
//! new segment, and maps older segments when a standby that is behind needs them) and feeds the tail and the bytes
//! to the mirror's [`Primary`] state machine over TCP.
//!
//! ```text
//!  pipeline core ── append ──▶ wal-<first>.seg … (MAP_SHARED) ◀── read-only maps ── aux: MirrorSender::poll
//!                                                                                   ├ WalLog::poll_tail, on_append
//!  CommitIndex ◀── publish_mirrored (MirrorGate) ◀── standby acks ◀── TCP ─────────┴ Primary::tick
//! ```
//!
//! With `ack = "mirrored"` the commit index is `min(local, standby durable)`, so replies and market data wait for
//! the standby. When the primary is fenced (the standby promoted itself and said so), the commit index is frozen
//! by switching it to the mirrored policy: the mirrored seq no longer advances, so nothing more is released, even
//! under `ack = "local"`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_persist::mirror::tcp::TcpTransport;
use bourse_persist::mirror::{MirrorConfig, Position, Primary, WalLog, WalRecords};
use bourse_persist::CommitIndex;

use crate::config::{Config, MirrorSection};
use crate::witness::agent::{Observation, PrimaryAgent};

/// Records walked per poll at most, so one poll stays short even when the writer is far ahead.
const TAIL_WALK_RECORDS_MAX: usize = 4_096;

/// Floor of the retransmission timeout (see [`mirror_config`]).
const RETRANSMIT_AFTER_NS_MIN: u64 = 20_000_000;

/// The standby's landing ring: 4 MiB holds the default 1 MiB in flight several times over (see `MirrorConfig`).
pub const LANDING_RING_BYTES: u64 = 4 << 20;

/// The mirror's timing from the `[mirror]` section, identical on both nodes.
pub fn mirror_config(section: &MirrorSection) -> MirrorConfig {
    let mut c = MirrorConfig::new(LANDING_RING_BYTES);
    c.heartbeat_interval_ns = section.heartbeat_ms * 1_000_000;
    c.promote_after_silence_ns = section.promote_after_ms * 1_000_000;
    // Retransmit only after acks have stalled well beyond a durability round: off DAX the standby's ack waits for
    // its msync (milliseconds on ext4), and rewinding sooner would resend the whole window on every sync. TCP
    // loses no frames on a live connection; retransmission matters after a reconnect.
    c.retransmit_after_ns = (4 * c.heartbeat_interval_ns).max(RETRANSMIT_AFTER_NS_MIN);
    c
}

/// How both sides of the mirror idle on their shared cores: yield between polls for as long as traffic flowed
/// within the last [`IdleBackoff::HOT`], and nap 20 µs between polls after that.
///
/// Under `ack = "replicated"` every acknowledgement waits for a record to cross both mirror loops (the primary's
/// sender, the standby's receiver, and the `Landed` notice back), so a loop that naps between records adds its
/// wake-up (the nap plus the timer slack, 70 µs and more) twice to the round trip. A nap after a fixed number of
/// idle polls did that at every order rate below ~50,000/s; yielding keeps the core shared with the load and the
/// group commit while orders arrive. An idle link still naps at least half of the time: its heartbeats (every
/// `heartbeat_ms`, 1 ms by default) count as work, and the loop naps from 500 µs after each.
#[derive(Debug)]
pub struct IdleBackoff {
    last_work: Instant,
}

impl Default for IdleBackoff {
    fn default() -> IdleBackoff {
        IdleBackoff { last_work: Instant::now() }
    }
}

impl IdleBackoff {
    /// How long after the last piece of work a loop keeps yielding instead of napping.
    pub const HOT: Duration = Duration::from_micros(500);
    const NAP: Duration = Duration::from_micros(20);

    /// Call after each poll with whether it did any work.
    pub fn after(&mut self, worked: bool) {
        if worked {
            self.last_work = Instant::now();
        } else if self.last_work.elapsed() < Self::HOT {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Self::NAP);
        }
    }
}

/// What the sender has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStatus {
    pub tail: Position,
    pub acked: Position,
    pub fenced_by: Option<u64>,
    /// Segment rotations the sender followed.
    pub rotations: u64,
}

/// The primary mirror: owns the state machine, the TCP transport and the WAL reader.
pub struct MirrorSender {
    primary: Primary<WalRecords>,
    transport: TcpTransport,
    log: WalLog,
    commit: Arc<CommitIndex>,
    status: SenderStatus,
    clock: Instant,
    /// Kept across [`MirrorSender::run_for`] calls: the aux thread's other work must not make the loop forget
    /// that traffic is flowing.
    backoff: IdleBackoff,
    /// With a `[witness]`: the pair's membership, kept by compare-and-swap from what this loop sees of the standby.
    agent: Option<PrimaryAgent>,
}

impl MirrorSender {
    /// Starts mirroring the WAL in `wal_dir` to `section.standby_addr`, publishing acks into `commit`. `start` is
    /// where this node's epoch begins (the end of the recovered log, or the promotion point): a former primary
    /// whose log runs past it is told to cut back to it. A standby that is behind is caught up from older segments.
    pub fn start(config: &Config, wal_dir: &Path, start: Position, commit: Arc<CommitIndex>) -> anyhow::Result<MirrorSender> {
        let section = config.mirror.as_ref().context("no [mirror] section")?;
        let addr = section.standby_addr.context("mirror.standby_addr is not set")?;
        let log = WalLog::open(wal_dir).with_context(|| format!("opening {} for the mirror", wal_dir.display()))?;
        if start < log.start() {
            anyhow::bail!("mirror start {start:?} precedes the newest segment, which begins at {:?}", log.start());
        }
        let primary = Primary::new(mirror_config(section), WalRecords, u64::from(section.epoch), start);
        primary.gate().attach_commit_index(Arc::clone(&commit));
        let transport = TcpTransport::connect(addr);
        Ok(MirrorSender {
            primary,
            transport,
            log,
            commit,
            status: SenderStatus { tail: start, acked: start, ..SenderStatus::default() },
            clock: Instant::now(),
            backoff: IdleBackoff::default(),
            agent: None,
        })
    }

    /// Lets the witness decide, from this loop's view of the standby, when the primary acknowledges alone.
    pub fn attach_witness(&mut self, agent: PrimaryAgent) {
        self.agent = Some(agent);
    }

    pub fn witness(&self) -> Option<&PrimaryAgent> {
        self.agent.as_ref()
    }

    /// Freezes the commit index where it is: the mirrored seq stops advancing, so nothing more is released.
    pub fn stop_acknowledging(&self) {
        self.commit.freeze();
    }

    pub fn status(&self) -> SenderStatus {
        self.status
    }

    /// Polls for about `period`, idling between polls as [`IdleBackoff`] says.
    pub fn run_for(&mut self, period: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + period;
        while Instant::now() < until {
            let worked = self.poll()? > 0;
            self.backoff.after(worked);
        }
        Ok(())
    }

    /// One turn: find the new tail, then let the state machine send writes and heartbeats and take acks. Returns
    /// the work done (zero when idle). An error is a local fault (a damaged local record, a broken socket set-up).
    pub fn poll(&mut self) -> anyhow::Result<usize> {
        let walked = self.log.poll_tail(TAIL_WALK_RECORDS_MAX).context("following the WAL")?;
        // The walk starts at the newest segment's beginning, which may precede this epoch's start.
        if walked > 0 && self.log.tail().seq > self.primary.tail().seq {
            self.primary.on_append(self.log.tail());
        }
        let now_ns = self.clock.elapsed().as_nanos() as u64;
        let work = self.primary.tick(now_ns, &mut self.log, &mut self.transport).context("mirror primary")?;
        self.status.tail = self.log.tail();
        self.status.acked = self.primary.acked();
        self.status.rotations = self.log.rotations;
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
        if let Some(agent) = self.agent.as_mut() {
            agent.poll(Observation {
                standby_silent: self.primary.standby_silent_ns(now_ns).map(Duration::from_nanos),
                lag_bytes: self.primary.standby_lag_bytes(),
            });
        }
        Ok(work + walked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::{Command, Deposit, Input};
    use bourse_persist::wal::segment::SEGMENT_HEADER_BYTES;
    use bourse_persist::{AckPolicy, DurabilityMode, Wal, WalConfig};

    const SEGMENT_BYTES: u64 = 8_192;

    fn primary_config() -> Config {
        // Nothing listens on port 1: the sender keeps re-dialling, which is all this test needs of the link.
        Config::parse(concat!(
            crate::config::minimal_toml!(),
            "[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:1\"\nack = \"mirrored\"\n"
        ))
        .unwrap()
    }

    fn deposit(seq: u64) -> Input {
        Input { seq, timestamp: seq, command: Command::Deposit(Deposit { account: 0, amount: 1 }) }
    }

    #[test]
    fn the_sender_follows_the_writer_across_segments_and_holds_commits_for_the_standby() {
        let dir = std::env::temp_dir().join(format!("bourse-mirror-sender-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut wal_config = WalConfig::new(&dir);
        wal_config.mode = DurabilityMode::None;
        wal_config.segment_bytes = SEGMENT_BYTES;
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        let mut wal = Wal::create(wal_config, 1, Arc::clone(&commit)).unwrap();
        let mut sender = MirrorSender::start(&primary_config(), &dir, Position::default(), Arc::clone(&commit)).unwrap();

        for seq in 1..=10 {
            wal.append(&deposit(seq)).unwrap();
        }
        sender.poll().unwrap();
        assert_eq!(sender.status().tail, Position { seq: 10, offset: 10 * 64 });
        assert_eq!(commit.committed(), 0, "nothing is committed before the standby acknowledges it");

        // Three segments' worth: the sender's tail follows every rotation.
        let per_segment = (SEGMENT_BYTES - SEGMENT_HEADER_BYTES as u64) / 64;
        let last = 3 * per_segment + 5;
        for seq in 11..=last {
            wal.append(&deposit(seq)).unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while sender.status().tail.seq < last && Instant::now() < deadline {
            sender.poll().unwrap();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let st = sender.status();
        assert_eq!(st.tail, Position { seq: last, offset: last * 64 }, "stream offsets run on across segments");
        assert_eq!(st.rotations, 3);
        assert_eq!(commit.committed(), 0, "still nothing acknowledged without a standby");
        sender.stop_acknowledging();
        assert!(commit.is_frozen());
        commit.publish_mirrored(last);
        commit.publish_landed(last);
        assert_eq!(commit.committed(), 0, "a sender that stopped acknowledging releases nothing more");
        drop(wal);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
