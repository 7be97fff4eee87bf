//! The pair's rules over a [`Witness`]: each function reads the record, decides from what it holds, and writes
//! by compare-and-swap. Nothing here keeps state; the callers (the standby's follower, the primary's
//! [`super::agent`]) act on the answer.

use super::{Cas, Membership, Versioned, Witness, WitnessError};

/// How often a compare-and-swap is retried after losing to a concurrent change before the answer is taken from
/// what the record then holds. Only a promotion races a membership change, so the second read decides.
const CAS_ROUNDS: usize = 3;

/// A node starting as primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Serve in `epoch` (the record's: the WAL is written in it).
    Serve { epoch: u32, members: Vec<String> },
    /// The record names another primary, or a newer epoch: this node must not serve.
    NotPrimary(Membership),
}

/// The standby's attempt to take over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// This node is primary in `epoch` (the old one + 1), alone in the members.
    Won { epoch: u32 },
    /// It may not serve; why.
    Refused(String),
}

/// The primary's attempt to change the members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The record now holds the requested members (`revision` of the write, or of the read when unchanged).
    Done,
    /// The record names another primary or a newer epoch: this node was replaced and must stop acknowledging.
    Replaced(Option<Membership>),
}

/// At start-up: creates the record for a new pair (this node primary, `peer` a member, `wal_epoch` the epoch),
/// or confirms this node is the record's primary and returns its epoch.
pub fn claim_primary(
    w: &mut dyn Witness,
    me: &str,
    peer: Option<&str>,
    wal_epoch: u32,
) -> Result<Claim, WitnessError> {
    for _ in 0..CAS_ROUNDS {
        match w.read()? {
            None => {
                let mut members = vec![me.to_string()];
                members.extend(peer.map(str::to_string));
                let record = Membership { epoch: wal_epoch, primary: me.to_string(), members: members.clone() };
                if let Cas::Won(_) = w.swap(None, &record)? {
                    return Ok(Claim::Serve { epoch: wal_epoch, members });
                }
            }
            Some(Versioned { value, .. }) if value.primary == me => {
                return Ok(Claim::Serve { epoch: value.epoch, members: value.members })
            }
            Some(Versioned { value, .. }) => return Ok(Claim::NotPrimary(value)),
        }
    }
    Err(WitnessError::Unreachable(format!("the record kept changing under {CAS_ROUNDS} attempts to claim it")))
}

/// The standby `me`, following in `following_epoch`, found its primary silent: it becomes primary in the next
/// epoch only if it is a member, the record is still in the epoch it follows, and it wins the swap.
pub fn promote(w: &mut dyn Witness, me: &str, following_epoch: u32) -> Result<Promotion, WitnessError> {
    let Some(Versioned { value, revision }) = w.read()? else {
        return Ok(Promotion::Refused("the witness holds no record for this partition".into()));
    };
    if let Some(why) = refuse(&value, me, following_epoch) {
        return Ok(Promotion::Refused(why));
    }
    let next = Membership { epoch: value.epoch + 1, primary: me.to_string(), members: vec![me.to_string()] };
    Ok(match w.swap(Some(revision), &next)? {
        Cas::Won(_) => Promotion::Won { epoch: next.epoch },
        Cas::Lost(now) => Promotion::Refused(format!(
            "lost the swap: the record changed first to {}",
            now.map(|v| format!("{:?}", v.value)).unwrap_or_else(|| "nothing".into())
        )),
    })
}

fn refuse(record: &Membership, me: &str, following_epoch: u32) -> Option<String> {
    if record.primary == me {
        return Some(format!("the record already names this node primary in epoch {}", record.epoch));
    }
    if !record.is_member(me) {
        return Some(format!(
            "not a member (members {:?}, primary {} in epoch {}): the primary continued without this node",
            record.members, record.primary, record.epoch
        ));
    }
    if record.epoch != following_epoch {
        return Some(format!("the record is in epoch {}, this node follows epoch {following_epoch}", record.epoch));
    }
    None
}

/// The primary `me`, serving in `my_epoch`, sets the members to `members` (itself alone, or itself and its
/// standby): only while the record still names it primary in that epoch.
pub fn set_members(
    w: &mut dyn Witness,
    me: &str,
    my_epoch: u32,
    members: &[String],
) -> Result<Change, WitnessError> {
    let mut record = w.read()?;
    for _ in 0..CAS_ROUNDS {
        let Some(Versioned { value, revision }) = record else {
            return Ok(Change::Replaced(None));
        };
        if value.primary != me || value.epoch != my_epoch {
            return Ok(Change::Replaced(Some(value)));
        }
        if value.members == members {
            return Ok(Change::Done);
        }
        let next = Membership { members: members.to_vec(), ..value };
        match w.swap(Some(revision), &next)? {
            Cas::Won(_) => return Ok(Change::Done),
            Cas::Lost(now) => record = now,
        }
    }
    Err(WitnessError::Unreachable(format!("the record kept changing under {CAS_ROUNDS} attempts to change it")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::witness::MemoryWitness;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn record(w: &MemoryWitness) -> Membership {
        w.current().expect("a record").value
    }

    #[test]
    fn a_new_pair_creates_the_record_and_a_restarted_primary_takes_the_epoch_from_it() {
        let w = MemoryWitness::new();
        let claim = claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap();
        assert_eq!(claim, Claim::Serve { epoch: 1, members: names(&["a", "b"]) });
        assert_eq!(record(&w), Membership { epoch: 1, primary: "a".into(), members: names(&["a", "b"]) });
        // b promoted in between: the record's epoch, not the WAL's or the configuration's, is served.
        assert_eq!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Won { epoch: 2 });
        assert_eq!(claim_primary(&mut w.handle(), "b", Some("a"), 1).unwrap(), Claim::Serve {
            epoch: 2,
            members: names(&["b"])
        });
        // The old primary restarting with its old configuration is told who serves.
        match claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap() {
            Claim::NotPrimary(m) => assert_eq!((m.primary.as_str(), m.epoch), ("b", 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_one_of_a_cut_pair_serves_whichever_swaps_first() {
        // The standby swaps first: the primary's removal of it finds itself replaced.
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 3).unwrap();
        assert_eq!(promote(&mut w.handle(), "b", 3).unwrap(), Promotion::Won { epoch: 4 });
        match set_members(&mut w.handle(), "a", 3, &names(&["a"])).unwrap() {
            Change::Replaced(Some(m)) => assert_eq!((m.primary.as_str(), m.epoch), ("b", 4)),
            other => panic!("{other:?}"),
        }
        // The primary swaps first: the standby is no longer a member and is refused.
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 3).unwrap();
        assert_eq!(set_members(&mut w.handle(), "a", 3, &names(&["a"])).unwrap(), Change::Done);
        match promote(&mut w.handle(), "b", 3).unwrap() {
            Promotion::Refused(why) => assert!(why.contains("not a member"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(record(&w), Membership { epoch: 3, primary: "a".into(), members: names(&["a"]) });
    }

    #[test]
    fn a_swap_against_a_stale_revision_loses_and_returns_the_winner() {
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap();
        let seen = w.current().unwrap();
        assert_eq!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Won { epoch: 2 });
        let late = Membership { epoch: 2, primary: "c".into(), members: names(&["c"]) };
        match w.handle().swap(Some(seen.revision), &late).unwrap() {
            Cas::Lost(Some(now)) => assert_eq!(now.value.primary, "b"),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.handle().swap(None, &late).unwrap(), Cas::Lost(w.current()), "create only where absent");
    }

    #[test]
    fn a_removed_standby_is_re_added_before_it_may_promote_again() {
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap();
        set_members(&mut w.handle(), "a", 1, &names(&["a"])).unwrap();
        assert!(matches!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Refused(_)));
        assert_eq!(set_members(&mut w.handle(), "a", 1, &names(&["a", "b"])).unwrap(), Change::Done);
        assert_eq!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Won { epoch: 2 });
        // A standby following an older epoch than the record's never promotes.
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 5).unwrap();
        match promote(&mut w.handle(), "b", 4).unwrap() {
            Promotion::Refused(why) => assert!(why.contains("epoch 5"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_node_cut_from_the_witness_learns_nothing_and_changes_nothing() {
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap();
        let cut = w.handle();
        cut.set_cut(true);
        assert!(matches!(set_members(&mut cut.clone(), "a", 1, &names(&["a"])), Err(WitnessError::Unreachable(_))));
        assert!(matches!(promote(&mut cut.clone(), "b", 1), Err(WitnessError::Unreachable(_))));
        assert_eq!(record(&w).members, names(&["a", "b"]));
    }
}
