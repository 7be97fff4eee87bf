//! The commit index: the highest sequence number that is durable under the configured policy.
//!
//! The pipeline core holds every output (OUCH acknowledgement, ITCH message) caused by input `s` until
//! [`CommitIndex::committed`] reaches `s`; that gate is what makes "no acknowledged order is ever lost" true across a
//! crash. Two inputs feed the index:
//!
//! ```text
//!   local    ── written by the WAL: append+flush+sfence (dax) or the group-commit thread after msync (msync)
//!   mirrored ── written by the mirror: the standby's acknowledged durable seq
//!   landed   ── written by the mirror: the standby's acknowledged landed seq (in its memory, CRC-checked)
//!   committed = local                      (AckPolicy::Local)
//!             = min(local, mirrored)       (AckPolicy::Mirrored)
//!             = landed                     (AckPolicy::Replicated)
//! ```
//!
//! Under `Replicated` the local WAL is not waited for: a record the standby has landed was read from this node's
//! own WAL mapping, so it is already in both nodes' memory, and both make it durable by group commit behind the
//! release. It survives the loss of either node; only a power loss of both within one group-commit window loses the
//! not-yet-synced tail.
//!
//! Each input has one writer, so a plain `store(Release)` publishes it; readers `load(Acquire)`, which makes the
//! bytes that a writer made durable before publishing visible to whoever acts on the seq. Both words sit on their
//! own cache lines (`CachePadded`): the writer core stores `local` at the record rate while the pipeline core polls
//! `committed()`, and sharing a line with `mirrored` would make the mirror's receiver thread bounce it too.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Which durability an output waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckPolicy {
    /// Durable on this host.
    Local,
    /// Durable on this host and acknowledged durable by the standby.
    Mirrored,
    /// In this host's WAL mapping and landed (CRC-checked) in the standby's memory; durable on both by group
    /// commit behind the release.
    Replicated,
}

impl AckPolicy {
    /// The configuration's name for the policy, as the start-up line and the benchmarks report it.
    pub fn name(self) -> &'static str {
        match self {
            AckPolicy::Local => "local",
            AckPolicy::Mirrored => "durable",
            AckPolicy::Replicated => "replicated",
        }
    }

    /// What a release under this policy survives, in one line.
    pub fn failure_model(self) -> &'static str {
        match self {
            AckPolicy::Local => "survives a crash of this node; a failover can lose acknowledged orders",
            AckPolicy::Mirrored => "survives the loss of either node and of both nodes' power",
            AckPolicy::Replicated => {
                "survives the loss of either node; loses the unsynced tail only if both lose power within one group commit"
            }
        }
    }
}

/// Shared between the WAL writer, the group-commit thread, the mirror and the pipeline's output gate.
#[derive(Debug)]
pub struct CommitIndex {
    local: CachePadded<AtomicU64>,
    mirrored: CachePadded<AtomicU64>,
    landed: CachePadded<AtomicU64>,
    policy: AtomicU8,
    frozen: AtomicBool,
}

impl CommitIndex {
    /// An index where nothing is committed yet (`committed() == start`; pass the last seq already durable, e.g.
    /// the recovered one).
    pub fn new(policy: AckPolicy, start: u64) -> CommitIndex {
        CommitIndex {
            local: CachePadded::new(AtomicU64::new(start)),
            mirrored: CachePadded::new(AtomicU64::new(start)),
            landed: CachePadded::new(AtomicU64::new(start)),
            policy: AtomicU8::new(policy_code(policy)),
            frozen: AtomicBool::new(false),
        }
    }

    /// The highest seq whose outputs may be released.
    #[inline]
    pub fn committed(&self) -> u64 {
        match self.policy.load(Ordering::Relaxed) {
            POLICY_MIRRORED => self.local.load(Ordering::Acquire).min(self.mirrored.load(Ordering::Acquire)),
            POLICY_REPLICATED => self.landed.load(Ordering::Acquire),
            _ => self.local.load(Ordering::Acquire),
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

    /// Highest seq the standby acknowledged as landed in its memory.
    #[inline]
    pub fn landed(&self) -> u64 {
        self.landed.load(Ordering::Acquire)
    }

    pub fn policy(&self) -> AckPolicy {
        match self.policy.load(Ordering::Relaxed) {
            POLICY_MIRRORED => AckPolicy::Mirrored,
            POLICY_REPLICATED => AckPolicy::Replicated,
            _ => AckPolicy::Local,
        }
    }

    /// Changes the policy (e.g. `Local` after the witness removed the lost standby from the members). A frozen
    /// index keeps its policy: switching it would release what the freeze holds back.
    pub fn set_policy(&self, policy: AckPolicy) {
        if self.frozen.load(Ordering::Acquire) {
            return;
        }
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
        // Durable on the standby implies landed there; a lost or late landed notice must not hold releases back.
        self.raise(&[&self.mirrored, &self.landed], seq);
    }

    /// Publishes the standby's acknowledged landed seq (the mirror's ack receiver); older notices are ignored.
    #[inline]
    pub fn publish_landed(&self, seq: u64) {
        self.raise(&[&self.landed], seq);
    }

    /// Raises the standby's words to `seq` unless the index is frozen.
    #[inline]
    fn raise(&self, words: &[&AtomicU64], seq: u64) {
        if self.frozen.load(Ordering::Acquire) {
            return;
        }
        for word in words {
            word.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// Stops every release beyond what is committed now, whatever the policy: the fenced primary's freeze. The
    /// policy becomes `Mirrored` with the standby's words pinned where the commit index stood.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Release);
        let now = self.committed();
        self.mirrored.store(now, Ordering::Release);
        self.landed.store(now, Ordering::Release);
        self.policy.store(POLICY_MIRRORED, Ordering::Relaxed);
    }

    /// Whether [`CommitIndex::freeze`] was called.
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
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
const POLICY_REPLICATED: u8 = 2;

fn policy_code(policy: AckPolicy) -> u8 {
    match policy {
        AckPolicy::Local => POLICY_LOCAL,
        AckPolicy::Mirrored => POLICY_MIRRORED,
        AckPolicy::Replicated => POLICY_REPLICATED,
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
    fn replicated_policy_follows_what_the_standby_landed() {
        let c = CommitIndex::new(AckPolicy::Replicated, 0);
        c.publish_landed(6);
        assert_eq!(c.committed(), 6, "the local msync is not waited for");
        c.publish_local(2);
        c.publish_landed(4); // a late, older notice changes nothing
        assert_eq!(c.committed(), 6);
        c.publish_mirrored(9);
        assert_eq!((c.landed(), c.committed()), (9, 9), "durable on the standby implies landed there");
    }

    #[test]
    fn a_frozen_index_releases_nothing_more_under_any_policy() {
        for policy in [AckPolicy::Local, AckPolicy::Mirrored, AckPolicy::Replicated] {
            let c = CommitIndex::new(policy, 0);
            c.publish_local(5);
            c.publish_mirrored(5);
            c.freeze();
            assert_eq!(c.committed(), 5, "{policy:?}");
            c.publish_local(9);
            c.publish_mirrored(9);
            c.publish_landed(9);
            assert_eq!(c.committed(), 5, "{policy:?}: frozen");
            assert!(c.is_frozen());
        }
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
