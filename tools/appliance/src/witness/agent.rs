//! The primary's side of the witness, driven from the aux thread next to the mirror sender.
//!
//! The aux thread observes the standby (silent for how long, how far behind) and decides; the witness calls run on
//! a thread of their own ([`Worker`]), so a slow or unreachable etcd never delays the mirror's heartbeats. The
//! decision reaches the pipeline only through the commit index's policy word:
//!
//! ```text
//!  Paired ──standby silent──▶ Dropping (hold: releases wait for standby acks that no longer come)
//!    ▲                           │ CAS members=[me] won            │ replaced (newer epoch / other primary)
//!    │                           ▼                                 ▼
//!  Adding ◀──acks caught up── Rejoining (hold) ◀──standby back── Alone (release on local durability)   Replaced
//!    CAS members=[me, peer] won → Paired                                                          (frozen for good)
//! ```
//!
//! Holding is the `Mirrored` policy: `committed = min(local, standby durable)`, which stands still while the
//! standby is silent. A primary that reaches neither its standby nor etcd therefore stops acknowledging: it stays in
//! `Dropping`, retrying, and cannot know whether the standby promoted. Alone it needs neither: the standby is no
//! member, so it can win no promotion.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_persist::{AckPolicy, CommitIndex};

use super::pair::{self, Change};
use super::{Witness, WitnessError};

/// A standby this far behind (bytes of WAL not yet acknowledged) counts as caught up for re-adding.
pub const REJOIN_LAG_BYTES: u64 = 256 << 10;

/// Where the pair stands, as the aux thread sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairState {
    /// Both members; releases under the configured policy.
    Paired,
    /// The standby fell silent: releases held while the CAS removing it is in flight (or retried).
    Dropping,
    /// This node is the only member: releases on local durability.
    Alone,
    /// The standby is back and caught up: releases wait for its acks until everything released alone is on it.
    Rejoining,
    /// The CAS re-adding the standby is in flight (releases still wait for its acks).
    Adding,
    /// The record names a newer epoch or another primary: nothing more is released, ever.
    Replaced,
}

impl PairState {
    pub fn name(self) -> &'static str {
        match self {
            PairState::Paired => "paired",
            PairState::Dropping => "dropping the standby",
            PairState::Alone => "alone (acknowledging on local durability)",
            PairState::Rejoining => "standby rejoining",
            PairState::Adding => "re-adding the standby",
            PairState::Replaced => "replaced",
        }
    }
}

/// What the aux thread knows of the standby this turn.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// How long since the standby was last heard (`None`: never, in this run).
    pub standby_silent: Option<Duration>,
    /// WAL bytes written here and not yet acknowledged by the standby.
    pub lag_bytes: u64,
}

/// Counters of the agent, exported in the stats block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub cas_won: u64,
    pub replaced: u64,
    pub unreachable: u64,
    /// The last hold's length: from the standby falling silent to releasing alone (nanoseconds).
    pub last_pause_ns: u64,
    /// The last witness call's round trip (nanoseconds).
    pub last_cas_ns: u64,
}

struct Request {
    members: Vec<String>,
}

struct Reply {
    result: Result<Change, WitnessError>,
    took: Duration,
}

/// The thread that talks to the witness, one request at a time.
pub struct Worker {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
}

impl Worker {
    pub fn spawn(mut witness: Box<dyn Witness>, me: String, epoch: u32) -> Worker {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("bourse-witness".into())
            .spawn(move || {
                for Request { members } in inbox {
                    let t = Instant::now();
                    let result = pair::set_members(witness.as_mut(), &me, epoch, &members);
                    if outbox.send(Reply { result, took: t.elapsed() }).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning the witness thread");
        Worker { requests, replies }
    }
}

/// The primary's pair state machine. Call [`PrimaryAgent::poll`] from the aux thread after each mirror turn.
pub struct PrimaryAgent {
    me: String,
    peer: String,
    worker: Worker,
    commit: Arc<CommitIndex>,
    /// The policy `[mirror] ack` asks for while paired.
    paired_policy: AckPolicy,
    lost_after: Duration,
    retry_after: Duration,
    state: PairState,
    in_flight: bool,
    next_try: Instant,
    started: Instant,
    /// When the hold began (the standby last heard), for the pause report.
    held_since: Option<Instant>,
    /// Rejoining: the local durable seq when the hold began; every output released alone is at or below it.
    released_alone: u64,
    stats: AgentStats,
}

impl PrimaryAgent {
    /// `members` is what the record held when this node claimed it: alone when the standby is not among them.
    pub fn new(
        worker: Worker,
        me: String,
        peer: String,
        members: &[String],
        commit: Arc<CommitIndex>,
        lost_after: Duration,
    ) -> PrimaryAgent {
        let paired_policy = commit.policy();
        let state = if members.contains(&peer) { PairState::Paired } else { PairState::Alone };
        if state == PairState::Alone {
            commit.set_policy(AckPolicy::Local);
        }
        let now = Instant::now();
        PrimaryAgent {
            me,
            peer,
            worker,
            commit,
            paired_policy,
            lost_after,
            retry_after: lost_after.max(Duration::from_millis(20)),
            state,
            in_flight: false,
            next_try: now,
            started: now,
            held_since: None,
            released_alone: 0,
            stats: AgentStats::default(),
        }
    }

    pub fn state(&self) -> PairState {
        self.state
    }

    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    fn request(&mut self, members: Vec<String>) {
        if self.worker.requests.send(Request { members }).is_ok() {
            self.in_flight = true;
        } else {
            // The witness thread is gone: count it as unreachable and try again later (it will stay gone, so the
            // pair holds, which is the safe side).
            self.stats.unreachable += 1;
            self.next_try = Instant::now() + self.retry_after;
        }
    }

    fn enter(&mut self, state: PairState) {
        if state != self.state {
            eprintln!("bourse: witness: {} → {}", self.state.name(), state.name());
        }
        self.state = state;
    }

    /// One turn: take the witness's answer if it came, then decide from the observation.
    pub fn poll(&mut self, obs: Observation) {
        let now = Instant::now();
        if self.commit.is_frozen() && self.state != PairState::Replaced {
            // Fenced through the mirror (a newer primary answered): nothing the witness could say changes that.
            self.enter(PairState::Replaced);
        }
        if self.state == PairState::Replaced {
            return;
        }
        if self.in_flight {
            match self.worker.replies.try_recv() {
                Ok(reply) => {
                    self.in_flight = false;
                    self.stats.last_cas_ns = reply.took.as_nanos() as u64;
                    self.on_reply(reply.result, now);
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.in_flight = false;
                    self.on_reply(Err(WitnessError::Unreachable("the witness thread stopped".into())), now);
                }
            }
        }
        if self.state == PairState::Replaced {
            return;
        }
        let silent = obs.standby_silent.unwrap_or_else(|| now - self.started);
        let lost = silent >= self.lost_after;
        match self.state {
            PairState::Paired if lost => {
                self.commit.set_policy(AckPolicy::Mirrored);
                self.held_since = Some(now - silent);
                self.enter(PairState::Dropping);
                self.request(vec![self.me.clone()]);
            }
            PairState::Dropping if !self.in_flight && !lost => {
                // The CAS did not go through (etcd unreachable) and the standby is back: paired as before.
                self.commit.set_policy(self.paired_policy);
                self.held_since = None;
                self.enter(PairState::Paired);
            }
            PairState::Dropping if !self.in_flight && now >= self.next_try => self.request(vec![self.me.clone()]),
            PairState::Alone if !lost && obs.lag_bytes <= REJOIN_LAG_BYTES => {
                self.commit.set_policy(AckPolicy::Mirrored);
                self.released_alone = self.commit.local();
                self.enter(PairState::Rejoining);
            }
            PairState::Rejoining | PairState::Adding if lost && !self.in_flight => {
                // Gone again before it was re-added: still the only member, so alone is still safe.
                self.commit.set_policy(AckPolicy::Local);
                self.enter(PairState::Alone);
            }
            PairState::Rejoining if self.commit.mirrored() >= self.released_alone && now >= self.next_try => {
                self.enter(PairState::Adding);
                self.request(vec![self.me.clone(), self.peer.clone()]);
            }
            _ => {}
        }
    }

    fn on_reply(&mut self, result: Result<Change, WitnessError>, now: Instant) {
        match (self.state, result) {
            (_, Ok(Change::Replaced(record))) => {
                self.stats.replaced += 1;
                self.commit.freeze();
                eprintln!(
                    "bourse: witness: REPLACED: the record holds {record:?}; no further acknowledgements, committed \
                     stays at {}",
                    self.commit.committed()
                );
                self.enter(PairState::Replaced);
            }
            (PairState::Dropping, Ok(Change::Done)) => {
                self.stats.cas_won += 1;
                self.commit.set_policy(AckPolicy::Local);
                let pause = self.held_since.take().map(|t| now - t).unwrap_or_default();
                self.stats.last_pause_ns = pause.as_nanos() as u64;
                eprintln!(
                    "bourse: witness: standby {} removed from the members; acknowledging alone on local durability, \
                     {:.1} ms after it fell silent (CAS {:.1} ms)",
                    self.peer,
                    pause.as_secs_f64() * 1e3,
                    self.stats.last_cas_ns as f64 / 1e6
                );
                self.enter(PairState::Alone);
            }
            (PairState::Adding, Ok(Change::Done)) => {
                self.stats.cas_won += 1;
                self.commit.set_policy(self.paired_policy);
                eprintln!("bourse: witness: standby {} caught up and re-added to the members", self.peer);
                self.enter(PairState::Paired);
            }
            (state, Ok(Change::Done)) => {
                eprintln!("bourse: witness: a membership change answered in state {}", state.name());
            }
            (state, Err(e)) => {
                self.stats.unreachable += 1;
                self.next_try = now + self.retry_after;
                if self.stats.unreachable.is_power_of_two() {
                    eprintln!("bourse: witness: {e} ({} times so far; retrying)", self.stats.unreachable);
                }
                if state == PairState::Adding {
                    self.enter(PairState::Rejoining);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::witness::pair::{claim_primary, promote, Claim, Promotion};
    use crate::witness::MemoryWitness;

    const LOST: Duration = Duration::from_millis(5);

    fn agent(w: &MemoryWitness, commit: &Arc<CommitIndex>) -> PrimaryAgent {
        let Claim::Serve { epoch, members } = claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap() else {
            panic!("not primary")
        };
        let worker = Worker::spawn(Box::new(w.handle()), "a".into(), epoch);
        PrimaryAgent::new(worker, "a".into(), "b".into(), &members, Arc::clone(commit), LOST)
    }

    fn heard() -> Observation {
        Observation { standby_silent: Some(Duration::ZERO), lag_bytes: 0 }
    }

    fn silent() -> Observation {
        Observation { standby_silent: Some(LOST * 2), lag_bytes: 0 }
    }

    /// Polls until the agent reaches `state` (the witness thread answers within the bound).
    fn poll_until(a: &mut PrimaryAgent, obs: Observation, state: PairState) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.state() != state {
            assert!(Instant::now() < deadline, "stuck in {:?} waiting for {state:?}", a.state());
            a.poll(obs);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_lost_standby_is_removed_then_the_primary_releases_alone_and_re_adds_it_once_caught_up() {
        let w = MemoryWitness::new();
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        let mut a = agent(&w, &commit);
        commit.publish_local(10);
        commit.publish_mirrored(10);
        a.poll(heard());
        assert_eq!((a.state(), commit.committed()), (PairState::Paired, 10));
        commit.publish_local(20);
        a.poll(silent());
        assert_eq!(a.state(), PairState::Dropping);
        assert_eq!(commit.committed(), 10, "held while the removal is in flight");
        poll_until(&mut a, silent(), PairState::Alone);
        assert_eq!(commit.committed(), 20, "alone: released on local durability");
        assert_eq!(w.current().unwrap().value.members, vec!["a".to_string()]);
        assert!(matches!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Refused(_)));

        // Back, but far behind: still alone.
        a.poll(Observation { standby_silent: Some(Duration::ZERO), lag_bytes: REJOIN_LAG_BYTES + 1 });
        assert_eq!(a.state(), PairState::Alone);
        // Caught up: releases wait for its acks until everything released alone (through 20) is on it.
        a.poll(heard());
        assert_eq!(a.state(), PairState::Rejoining);
        commit.publish_local(25);
        assert_eq!(commit.committed(), 10);
        commit.publish_mirrored(19);
        a.poll(heard());
        assert_eq!(a.state(), PairState::Rejoining, "not re-added before it holds all that was released alone");
        commit.publish_mirrored(20);
        poll_until(&mut a, heard(), PairState::Paired);
        assert_eq!(w.current().unwrap().value.members, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(commit.committed(), 20, "paired again: min(local, mirrored)");
        assert_eq!(a.stats().cas_won, 2);
    }

    #[test]
    fn cut_from_standby_and_witness_the_primary_holds_and_learns_it_was_replaced_once_reachable() {
        let w = MemoryWitness::new();
        let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
        let primary_side = w.handle();
        let Claim::Serve { epoch, members } = claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap() else {
            panic!()
        };
        let worker = Worker::spawn(Box::new(primary_side.clone()), "a".into(), epoch);
        let mut a = PrimaryAgent::new(worker, "a".into(), "b".into(), &members, Arc::clone(&commit), LOST);
        commit.publish_mirrored(5);
        commit.publish_local(5);
        a.poll(heard());
        assert_eq!(commit.committed(), 5);
        primary_side.set_cut(true);
        commit.publish_local(9);
        for _ in 0..50 {
            a.poll(silent());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(a.state(), PairState::Dropping);
        assert_eq!(commit.committed(), 5, "ack = local, yet nothing is released without standby or witness");
        assert!(a.stats().unreachable > 0);
        // The standby promotes meanwhile; once the witness answers again, the primary finds itself replaced.
        assert_eq!(promote(&mut w.handle(), "b", 1).unwrap(), Promotion::Won { epoch: 2 });
        primary_side.set_cut(false);
        poll_until(&mut a, silent(), PairState::Replaced);
        commit.publish_local(12);
        commit.set_policy(AckPolicy::Local);
        assert_eq!(commit.committed(), 5, "a replaced primary releases nothing more");
    }

    #[test]
    fn a_standby_back_before_the_removal_went_through_keeps_the_pair() {
        let w = MemoryWitness::new();
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        let cut = w.handle();
        let Claim::Serve { epoch, members } = claim_primary(&mut w.handle(), "a", Some("b"), 1).unwrap() else {
            panic!()
        };
        let worker = Worker::spawn(Box::new(cut.clone()), "a".into(), epoch);
        let mut a = PrimaryAgent::new(worker, "a".into(), "b".into(), &members, Arc::clone(&commit), LOST);
        cut.set_cut(true);
        a.poll(silent());
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.stats().unreachable == 0 {
            assert!(Instant::now() < deadline);
            a.poll(silent());
            std::thread::sleep(Duration::from_millis(1));
        }
        a.poll(heard());
        assert_eq!(a.state(), PairState::Paired);
        assert_eq!(w.current().unwrap().value.members.len(), 2, "nothing changed in the witness");
    }

    #[test]
    fn a_primary_that_starts_without_its_standby_in_the_members_releases_alone() {
        let w = MemoryWitness::new();
        claim_primary(&mut w.handle(), "a", None, 1).unwrap();
        let commit = Arc::new(CommitIndex::new(AckPolicy::Mirrored, 0));
        let worker = Worker::spawn(Box::new(w.handle()), "a".into(), 1);
        let a = PrimaryAgent::new(worker, "a".into(), "b".into(), &["a".to_string()], Arc::clone(&commit), LOST);
        commit.publish_local(3);
        assert_eq!((a.state(), commit.committed()), (PairState::Alone, 3));
    }
}
