//! The commit index: the highest sequence number that is durable under the configured policy.
//!
//! The pipeline core holds every output (OUCH acknowledgement, ITCH message) caused by input `s` until
//! [`CommitIndex::committed`] reaches `s`; that gate is what makes "no acknowledged order is ever lost" true across a
//! crash. Two inputs feed the index:
//!
//! ```text
//!   local    ── written by the WAL: append+flush+sfence (dax) or the group-commit thread after msync (msync)
//!   mirrored ── written by the mirror: the standby's acknowledged durable seq
//!   committed = local                      (AckPolicy::Local)
//!             = min(local, mirrored)       (AckPolicy::Mirrored)
//! ```
//!
//! Each input has one writer, so a plain `store(Release)` publishes it; readers `load(Acquire)`, which makes the
//! bytes that a writer made durable before publishing visible to whoever acts on the seq. Both words sit on their
//! own cache lines (`CachePadded`): the writer core stores `local` at the record rate while the pipeline core polls
//! `committed()`, and sharing a line with `mirrored` would make the mirror's receiver thread bounce it too.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Which durability an output waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckPolicy {
    /// Durable on this host.
    Local,
    /// Durable on this host and acknowledged durable by the standby.
    Mirrored,
}

/// Shared between the WAL writer, the group-commit thread, the mirror and the pipeline's output gate.
#[derive(Debug)]
pub struct CommitIndex {
    local: CachePadded<AtomicU64>,
    mirrored: CachePadded<AtomicU64>,
    policy: AtomicU8,
}

impl CommitIndex {
    /// An index where nothing is committed yet (`committed() == start`; pass the last seq already durable, e.g.
    /// the recovered one).
    pub fn new(policy: AckPolicy, start: u64) -> CommitIndex {
        CommitIndex {
            local: CachePadded::new(AtomicU64::new(start)),
            mirrored: CachePadded::new(AtomicU64::new(start)),
            policy: AtomicU8::new(policy_code(policy)),
        }
    }

    /// The highest seq whose outputs may be released.
    #[inline]
    pub fn committed(&self) -> u64 {
        let local = self.local.load(Ordering::Acquire);
        match self.policy.load(Ordering::Relaxed) {
            POLICY_MIRRORED => local.min(self.mirrored.load(Ordering::Acquire)),
            _ => local,
        }
    }

    /// The gate: may the outputs of `seq` be released?
    #[inline]
    pub fn is_committed(&self, seq: u64) -> bool {
        self.committed() >= seq
    }

    /// Highest seq durable on this host.
    #[inline]
    pub fn local(&self) -> u64 {
        self.local.load(Ordering::Acquire)
    }

    /// Highest seq the standby acknowledged as durable.
    #[inline]
    pub fn mirrored(&self) -> u64 {
        self.mirrored.load(Ordering::Acquire)
    }

    pub fn policy(&self) -> AckPolicy {
        match self.policy.load(Ordering::Relaxed) {
            POLICY_MIRRORED => AckPolicy::Mirrored,
            _ => AckPolicy::Local,
        }
    }

    /// Changes the policy (e.g. `Local` after the standby is declared lost by the operator).
    pub fn set_policy(&self, policy: AckPolicy) {
        self.policy.store(policy_code(policy), Ordering::Relaxed);
    }

    /// Publishes local durability up to `seq`. Called by exactly one thread (the WAL writer in `dax` mode, the
    /// group-commit thread in `msync` mode). The index never moves backwards: that would un-acknowledge outputs.
    #[inline]
    pub fn publish_local(&self, seq: u64) {
        let previous = self.local.load(Ordering::Relaxed);
        assert!(seq >= previous, "local commit index moved backwards: {previous} -> {seq}");
        self.local.store(seq, Ordering::Release);
    }

    /// Publishes the standby's acknowledged durable seq (the mirror's ack receiver). Acks can arrive reordered
    /// over some transports, so an older ack is ignored rather than asserted against.
    #[inline]
    pub fn publish_mirrored(&self, seq: u64) {
        self.mirrored.fetch_max(seq, Ordering::AcqRel);
    }

    /// Spins, then yields, until `seq` is committed or `timeout` passes. Not for the pipeline core (which polls
    /// [`CommitIndex::is_committed`] between bursts); for tools and tests.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        while !self.is_committed(seq) {
            if spins < 1_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                if Instant::now() >= deadline {
                    return self.is_committed(seq);
                }
                std::thread::yield_now();
            }
        }
        true
    }
}

const POLICY_LOCAL: u8 = 0;
const POLICY_MIRRORED: u8 = 1;

fn policy_code(policy: AckPolicy) -> u8 {
    match policy {
        AckPolicy::Local => POLICY_LOCAL,
        AckPolicy::Mirrored => POLICY_MIRRORED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn local_policy_follows_local_only() {
        let c = CommitIndex::new(AckPolicy::Local, 0);
        assert!(!c.is_committed(1));
        c.publish_local(5);
        assert_eq!(c.committed(), 5);
        assert!(c.is_committed(5) && !c.is_committed(6));
    }

    #[test]
    fn mirrored_policy_is_the_minimum() {
        let c = CommitIndex::new(AckPolicy::Mirrored, 0);
        c.publish_local(10);
        assert_eq!(c.committed(), 0);
        c.publish_mirrored(7);
        assert_eq!(c.committed(), 7);
        c.publish_mirrored(3); // a late, older ack changes nothing
        assert_eq!(c.committed(), 7);
        c.publish_mirrored(12);
        assert_eq!(c.committed(), 10);
        c.set_policy(AckPolicy::Local);
        assert_eq!(c.committed(), 10);
    }

    #[test]
    #[should_panic(expected = "backwards")]
    fn local_never_moves_backwards() {
        let c = CommitIndex::new(AckPolicy::Local, 4);
        c.publish_local(3);
    }

    #[test]
    fn waiter_sees_a_publish_from_another_thread() {
        let c = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
        let w = Arc::clone(&c);
        let t = std::thread::spawn(move || w.wait_for(3, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(5));
        c.publish_local(3);
        assert!(t.join().unwrap());
        assert!(!c.wait_for(4, Duration::from_millis(1)));
    }
}
