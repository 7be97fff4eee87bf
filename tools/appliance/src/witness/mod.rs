//! The pair's witness: who is primary, in which epoch, and who may take over — decided by compare-and-swap on one
//! record per partition in an external coordination service (etcd), never by a node alone.
//!
//! ```text
//!   key  <prefix>/<partition>  =  {"epoch": e, "primary": "a", "members": ["a", "b"]}
//!
//!   standby b, primary silent      CAS  e → e+1, primary = b, members = [b]     won: serve in e+1; lost: never serve
//!   primary a, standby silent      CAS  members = [a]                           won: acknowledge alone (local)
//!   primary a, standby caught up   CAS  members = [a, b]                        won: b may promote again
//!   any CAS that finds epoch > mine or primary ≠ me                             replaced: stop acknowledging
//! ```
//!
//! Every change compares the record's revision as it was read, so two nodes racing each other (a cut link seen
//! from both ends) cannot both win: exactly one of them serves afterwards. A standby that is not a member cannot
//! win a promotion, which is what lets a primary that removed it acknowledge alone. The epoch the primary writes
//! into its WAL is the record's, so fencing survives restarts of either node.
//!
//! [`Witness`] is the service: [`MemoryWitness`] for deterministic tests of the rules in [`pair`], and
//! [`etcd::EtcdWitness`] for the real one. Calls block on the network: they run on the standby's follower thread or
//! the primary's witness thread ([`agent`]), never on the pipeline thread.

pub mod agent;
pub mod etcd;
pub mod pair;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The partition's record: the epoch in force, the node serving it, and the nodes that may take over or are
/// required for acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub epoch: u32,
    pub primary: String,
    pub members: Vec<String>,
}

impl Membership {
    pub fn is_member(&self, node: &str) -> bool {
        self.members.iter().any(|m| m == node)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a membership record always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Membership, WitnessError> {
        serde_json::from_slice(bytes).map_err(|e| WitnessError::Malformed(e.to_string()))
    }
}

/// A record as read, with the revision a compare-and-swap must find unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Membership,
    pub revision: u64,
}

/// How a compare-and-swap ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cas {
    /// Written; the record's new revision.
    Won(u64),
    /// Someone changed the record first: what it holds now (`None`: it was deleted).
    Lost(Option<Versioned>),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WitnessError {
    /// The service could not be reached or did not answer in time: nothing is known about the record.
    #[error("witness unreachable: {0}")]
    Unreachable(String),
    /// The service answered something this node cannot read.
    #[error("witness answered malformed data: {0}")]
    Malformed(String),
}

/// The coordination service holding one partition's record.
pub trait Witness: Send {
    /// The record and its revision; `None` when it does not exist yet.
    fn read(&mut self) -> Result<Option<Versioned>, WitnessError>;
    /// Writes `next` if the record's revision is still `expected` (`None`: only if it does not exist).
    fn swap(&mut self, expected: Option<u64>, next: &Membership) -> Result<Cas, WitnessError>;
}

/// An in-process witness shared by clones, for tests: a record, a revision counter, and a switch that makes it
/// unreachable to one clone (a node cut from the service).
#[derive(Clone, Debug, Default)]
pub struct MemoryWitness {
    shared: Arc<Mutex<Option<Versioned>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryWitness {
    pub fn new() -> MemoryWitness {
        MemoryWitness::default()
    }

    /// Another handle on the same record, reachable or cut independently of this one.
    pub fn handle(&self) -> MemoryWitness {
        MemoryWitness { shared: Arc::clone(&self.shared), cut: Arc::default() }
    }

    /// Cuts (or restores) this handle's access to the record.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn current(&self) -> Option<Versioned> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reachable(&self) -> Result<(), WitnessError> {
        if self.cut.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(WitnessError::Unreachable("cut from the in-memory witness".into()));
        }
        Ok(())
    }
}

impl Witness for MemoryWitness {
    fn read(&mut self) -> Result<Option<Versioned>, WitnessError> {
        self.reachable()?;
        Ok(self.current())
    }

    fn swap(&mut self, expected: Option<u64>, next: &Membership) -> Result<Cas, WitnessError> {
        self.reachable()?;
        let mut record = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let now = record.as_ref().map(|r| r.revision);
        if now != expected {
            return Ok(Cas::Lost(record.clone()));
        }
        let revision = now.unwrap_or(0) + 1;
        *record = Some(Versioned { value: next.clone(), revision });
        Ok(Cas::Won(revision))
    }
}

/// A witness from the configuration's `[witness]` section.
pub fn from_config(section: &crate::config::WitnessSection) -> Result<Box<dyn Witness>, WitnessError> {
    Ok(Box::new(etcd::EtcdWitness::new(
        &section.endpoints,
        &section.key(),
        std::time::Duration::from_millis(section.timeout_ms),
    )?))
}

/// The configuration a primary serves with, after the witness confirmed it (or as given, without a witness).
pub struct Claimed {
    pub config: crate::config::Config,
    /// The record's members when this node claimed it (empty without a witness).
    pub members: Vec<String>,
}

/// At a primary's start-up: with a `[witness]`, the record must name this node primary (a new pair's record is
/// created naming it); it serves in the record's epoch. Anything else — another primary, no answer — stops the
/// start: a primary that cannot tell whether it was replaced must not serve.
pub fn claim(config: &crate::config::Config) -> anyhow::Result<Claimed> {
    use anyhow::Context;
    let (Some(section), Some(mirror)) = (&config.witness, &config.mirror) else {
        return Ok(Claimed { config: config.clone(), members: Vec::new() });
    };
    if mirror.role != crate::config::MirrorRole::Primary {
        return Ok(Claimed { config: config.clone(), members: Vec::new() });
    }
    let mut witness = from_config(section)?;
    let peer = mirror.standby_addr.map(|_| section.peer.as_str());
    let claim = pair::claim_primary(witness.as_mut(), &section.node, peer, mirror.epoch)
        .with_context(|| format!("asking the witness for {} whether {} is primary", section.key(), section.node))?;
    match claim {
        pair::Claim::Serve { epoch, members } => {
            eprintln!(
                "bourse: witness: {} is primary of {} in epoch {epoch} (members {members:?})",
                section.node,
                section.key()
            );
            let mut config = config.clone();
            if let Some(m) = config.mirror.as_mut() {
                m.epoch = epoch;
            }
            Ok(Claimed { config, members })
        }
        pair::Claim::NotPrimary(record) => anyhow::bail!(
            "the witness names {} primary of {} in epoch {} (members {:?}), not {}: run this node as its standby",
            record.primary,
            section.key(),
            record.epoch,
            record.members,
            section.node
        ),
    }
}

/// The primary's membership agent for a claimed configuration with a witness and a standby.
pub fn primary_agent(
    claimed: &Claimed,
    commit: Arc<bourse_persist::CommitIndex>,
) -> anyhow::Result<Option<agent::PrimaryAgent>> {
    let (Some(section), Some(mirror)) = (&claimed.config.witness, &claimed.config.mirror) else {
        return Ok(None);
    };
    let worker = agent::Worker::spawn(from_config(section)?, section.node.clone(), mirror.epoch);
    Ok(Some(agent::PrimaryAgent::new(
        worker,
        section.node.clone(),
        section.peer.clone(),
        &claimed.members,
        commit,
        section.standby_lost_after(mirror),
    )))
}
