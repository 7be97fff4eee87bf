//! The commit policy's mirror half: how far the standby has made the primary's records durable.
//!
//! The pipeline core releases replies only up to the commit index. With `ack = local` that is the local durable seq;
//! with `ack = mirrored` it is the minimum of the local durable seq and the standby's durable seq published here by
//! the primary's mirror state machine (running on the aux core). Either way a fenced primary releases nothing more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

pub use crate::commit::AckPolicy;
use crate::commit::CommitIndex;


#[derive(Debug, Default)]
struct Shared {
    mirrored_seq: CachePadded<AtomicU64>,
    landed_seq: CachePadded<AtomicU64>,
    fenced: CachePadded<AtomicBool>,
    /// The WAL's commit index, when attached: every ack is also published there (its combination point).
    commit: std::sync::OnceLock<Arc<CommitIndex>>,
}

/// Shared view of the standby's durable seq. Cloning is cheap; clones see the same values.
#[derive(Clone, Debug, Default)]
pub struct MirrorGate {
    shared: Arc<Shared>,
}

impl MirrorGate {
    pub fn new(start_seq: u64) -> MirrorGate {
        let gate = MirrorGate::default();
        gate.shared.mirrored_seq.store(start_seq, Ordering::Relaxed);
        gate.shared.landed_seq.store(start_seq, Ordering::Relaxed);
        gate
    }

    /// The highest seq the standby has acknowledged as durable. Acquire pairs with the Release in `advance` so a
    /// reader that sees seq S also sees everything the mirror thread did before publishing it.
    pub fn mirrored_seq(&self) -> u64 {
        self.shared.mirrored_seq.load(Ordering::Acquire)
    }

    /// The highest seq the standby has acknowledged as landed in its memory (CRC-checked, not yet durable).
    pub fn landed_seq(&self) -> u64 {
        self.shared.landed_seq.load(Ordering::Acquire)
    }

    pub fn is_fenced(&self) -> bool {
        self.shared.fenced.load(Ordering::Acquire)
    }

    /// The commit index for `policy` given the local durable seq; `None` when fenced (a higher epoch exists, so
    /// this node must not acknowledge anything more until re-synced).
    pub fn combine(&self, policy: AckPolicy, local_durable_seq: u64) -> Option<u64> {
        if self.is_fenced() {
            return None;
        }
        Some(match policy {
            AckPolicy::Local => local_durable_seq,
            AckPolicy::Mirrored => local_durable_seq.min(self.mirrored_seq()),
            AckPolicy::Replicated => self.landed_seq(),
        })
    }

    /// Also publish every ack into the WAL's [`CommitIndex`] (`publish_mirrored`), so `CommitIndex::committed`
    /// under `AckPolicy::Mirrored` is `min(local, standby durable)`. Fencing is not expressed there: the pipeline
    /// must also stop releasing when [`MirrorGate::is_fenced`] (or use [`MirrorGate::combine`]).
    pub fn attach_commit_index(&self, commit: Arc<CommitIndex>) {
        commit.publish_mirrored(self.mirrored_seq());
        commit.publish_landed(self.landed_seq());
        let _ = self.shared.commit.set(commit);
    }

    /// Publishes a standby ack. Only the mirror state machine calls this; the value never goes backwards.
    pub(crate) fn advance(&self, seq: u64) {
        self.shared.mirrored_seq.fetch_max(seq, Ordering::Release);
        self.shared.landed_seq.fetch_max(seq, Ordering::Release);
        if let Some(commit) = self.shared.commit.get() {
            commit.publish_mirrored(seq);
        }
    }

    /// Publishes a standby's landed notice. Only the mirror state machine calls this; never goes backwards.
    pub(crate) fn advance_landed(&self, seq: u64) {
        self.shared.landed_seq.fetch_max(seq, Ordering::Release);
        if let Some(commit) = self.shared.commit.get() {
            commit.publish_landed(seq);
        }
    }

    pub(crate) fn fence(&self) {
        self.shared.fenced.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_combine_policies_and_fence() {
        let gate = MirrorGate::new(5);
        let reader = gate.clone();
        assert_eq!(reader.combine(AckPolicy::Local, 10), Some(10));
        assert_eq!(reader.combine(AckPolicy::Mirrored, 10), Some(5));
        gate.advance(12);
        gate.advance(8);
        assert_eq!(reader.mirrored_seq(), 12, "acks never move the gate backwards");
        assert_eq!(reader.combine(AckPolicy::Mirrored, 10), Some(10));
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        gate.attach_commit_index(commit.clone());
        commit.publish_local(20);
        assert_eq!(commit.committed(), 12);
        gate.advance(15);
        assert_eq!(commit.committed(), 15, "acks reach the commit index's combination point");
        gate.advance_landed(18);
        assert_eq!(reader.combine(AckPolicy::Replicated, 10), Some(18), "replicated waits for the landing only");
        assert_eq!(reader.combine(AckPolicy::Mirrored, 20), Some(15));
        gate.fence();
        assert_eq!(reader.combine(AckPolicy::Replicated, 10), None);
        assert_eq!(reader.combine(AckPolicy::Local, 10), None);
        assert_eq!(reader.combine(AckPolicy::Mirrored, 10), None);
    }
}
