//! Seeded simulation of primary and standby over a lossy, delaying, reordering, duplicating, truncating and
//! corrupting link, plus failover scenarios. A failing seed is printed and replays exactly.

use bourse_persist::mirror::sim::{Faults, SimEndpoint, SimNet, SimRng};
use bourse_persist::mirror::{
    AckPolicy, Crc32cRecords, MirrorConfig, Position, Primary, RecordFormat, Standby, StandbyEvent, StandbyHost,
    Validated,
};

const REGION_BYTES: usize = 128 * 1024;
const STEP_NS: u64 = 100_000;

/// The appliance stand-in on the standby: checks every batch is the next in order, and makes records durable after
/// a random lag, as a group commit would.
struct Host {
    applied: Position,
    applied_count: u64,
    durable: Position,
    /// Every byte handed over, from stream offset `applied` at creation on: the standby's copy of the log.
    log: Vec<u8>,
    log_base: u64,
}

impl Host {
    fn new(at: Position) -> Host {
        Host { applied: at, applied_count: 0, durable: at, log: Vec::new(), log_base: at.offset }
    }
}

impl StandbyHost for Host {
    fn on_validated(&mut self, batch: Validated<'_>) {
        assert_eq!(batch.from, self.applied, "batches must be contiguous, in order, never repeated");
        let mut at = 0usize;
        let mut seq = batch.from.seq;
        while at < batch.bytes.len() {
            let meta = Crc32cRecords.check(&batch.bytes[at..]).expect("validated bytes hold valid records");
            assert_eq!(meta.seq, seq + 1, "records applied out of order");
            seq = meta.seq;
            at += meta.len_bytes;
        }
        assert_eq!(seq, batch.to.seq);
        assert_eq!(batch.from.offset + at as u64, batch.to.offset);
        self.applied = batch.to;
        self.applied_count += batch.to.seq - batch.from.seq;
        self.log.extend_from_slice(batch.bytes);
    }
    fn durable(&mut self) -> Position {
        self.durable
    }
}

struct Node {
    region: Vec<u8>,
    tail: Position,
    epoch: u32,
}

impl Node {
    fn new() -> Node {
        Node { region: vec![0u8; REGION_BYTES], tail: Position::default(), epoch: 1 }
    }
    /// Appends one record with a random body; returns false when the region is full.
    fn append(&mut self, rng: &mut SimRng, now_ns: u64) -> bool {
        let body_len = rng.below(100) as usize;
        let mut body = [0u8; 100];
        for b in body[..body_len].iter_mut() {
            *b = rng.next_u64() as u8;
        }
        let off = self.tail.offset as usize;
        if off + 192 > self.region.len() {
            return false;
        }
        let seq = self.tail.seq + 1;
        let n = Crc32cRecords::encode(&mut self.region[off..], 1, self.epoch, seq, now_ns, &body[..body_len]);
        self.tail = Position { seq, offset: (off + n) as u64 };
        true
    }
}

struct Cluster {
    net: SimNet,
    rng: SimRng,
    now_ns: u64,
    p_node: Node,
    s_region: Vec<u8>,
    primary: Primary<Crc32cRecords>,
    standby: Standby<Crc32cRecords>,
    host: Host,
    p_end: SimEndpoint,
    s_end: SimEndpoint,
    gate_last: u64,
    durable_last: Position,
    events: Vec<(u64, StandbyEvent)>,
}

impl Cluster {
    fn new(seed: u64, faults: Faults, config: MirrorConfig) -> Cluster {
        let (net, p_end, s_end) = SimNet::new(seed, faults);
        Cluster {
            net,
            rng: SimRng::new(seed ^ 0x5eed),
            now_ns: 1_000_000,
            p_node: Node::new(),
            s_region: vec![0u8; config.region_size_bytes as usize],
            primary: Primary::new(config, Crc32cRecords, 1, Position::default()),
            standby: Standby::new(config, Crc32cRecords, 1, Position::default()),
            host: Host::new(Position::default()),
            p_end,
            s_end,
            gate_last: 0,
            durable_last: Position::default(),
            events: Vec::new(),
        }
    }

    fn append(&mut self, n: usize) {
        for _ in 0..n {
            if !self.p_node.append(&mut self.rng, self.now_ns) {
                break;
            }
        }
        self.primary.on_append(self.p_node.tail);
    }

    /// One simulation step: advance time, tick both sides, let durability catch up at random, check invariants.
    fn step(&mut self, tick_primary: bool, tick_standby: bool) {
        self.now_ns += STEP_NS;
        self.net.set_now(self.now_ns);
        if tick_primary {
            self.primary.tick(self.now_ns, &mut self.p_node.region, &mut self.p_end).unwrap();
        }
        if tick_standby {
            if self.rng.chance(400_000) {
                self.host.durable = self.host.applied;
            }
            let ev = self.standby.tick(self.now_ns, &mut self.s_region, &mut self.s_end, &mut self.host).unwrap();
            if let Some(ev) = ev {
                self.events.push((self.now_ns, ev));
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let gate = self.primary.gate().mirrored_seq();
        assert!(gate >= self.gate_last, "gate went backwards");
        assert!(gate <= self.host.durable.seq, "gate {gate} covers a seq the standby has not made durable");
        let landed = self.primary.gate().landed_seq();
        assert!(landed >= gate, "the landed gate {landed} trails the durable gate {gate}");
        assert!(landed <= self.standby.validated().seq, "landed gate {landed} covers a seq the standby has not validated");
        assert!(self.standby.durable() <= self.standby.validated(), "durable beyond validated");
        assert!(self.standby.durable() >= self.durable_last, "standby durable went backwards");
        assert!(self.host.applied == self.standby.validated());
        self.gate_last = gate;
        self.durable_last = self.standby.durable();
    }

    fn assert_regions_match_up_to_gate(&self) {
        let acked = self.primary.acked();
        assert_eq!(acked.seq, self.primary.gate().mirrored_seq());
        let (base, n) = (self.host.log_base as usize, acked.offset as usize);
        assert!(self.host.log.len() >= n - base);
        assert!(self.p_node.region[base..n] == self.host.log[..n - base], "the standby's records differ below the acked offset");
    }
}

fn sim_config() -> MirrorConfig {
    let mut c = MirrorConfig::new(REGION_BYTES as u64);
    c.write_chunk_max_bytes = 4096;
    c.inflight_max_bytes = 32 * 1024;
    // Long enough that random fault streaks never trigger failover in the stream test; failover has its own tests.
    c.promote_after_silence_ns = 1_000_000_000;
    c
}

fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let faults = Faults {
        drop_ppm: rng.below(100_000) as u32,
        duplicate_ppm: rng.below(100_000) as u32,
        truncate_ppm: rng.below(50_000) as u32,
        corrupt_ppm: rng.below(50_000) as u32,
        delay_ns_max: rng.below(2_000_000),
    };
    let mut t = Cluster::new(seed, faults, sim_config());
    let mut steps = 0;
    while t.p_node.tail.offset as usize + 192 <= REGION_BYTES && steps < 3_000 {
        let burst = t.rng.below(8) as usize;
        t.append(burst);
        t.step(true, true);
        steps += 1;
    }
    // Heal the link and let the mirror converge; it must, within a bounded time.
    t.net.set_faults(Faults::default());
    for _ in 0..2_000 {
        t.step(true, true);
        if t.primary.gate().mirrored_seq() == t.p_node.tail.seq && t.primary.acked() == t.p_node.tail {
            break;
        }
    }
    assert_eq!(t.primary.gate().mirrored_seq(), t.p_node.tail.seq, "seed {seed}: mirror did not converge, {faults:?}");
    assert_eq!(t.host.applied_count, t.p_node.tail.seq, "seed {seed}: every record applied exactly once");
    t.assert_regions_match_up_to_gate();
    let c = t.net.counts();
    assert!(c.sent > 0 && t.standby.stats().records_validated == t.p_node.tail.seq);
}

#[test]
fn vopr_many_seeds() {
    let seeds: u64 = std::env::var("MIRROR_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let base: u64 = std::env::var("MIRROR_SEED_BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(0xb0u64 << 32);
    let mut faulted = 0;
    for seed in base..base + seeds {
        let r = std::panic::catch_unwind(|| run_seed(seed));
        if r.is_err() {
            panic!("failing seed: MIRROR_SEEDS=1 MIRROR_SEED_BASE={seed}");
        }
        faulted += 1;
    }
    assert_eq!(faulted, seeds);
}

#[test]
fn faults_are_actually_injected_and_survived() {
    let faults = Faults {
        drop_ppm: 100_000,
        duplicate_ppm: 100_000,
        truncate_ppm: 50_000,
        corrupt_ppm: 50_000,
        delay_ns_max: 1_500_000,
    };
    let mut t = Cluster::new(7, faults, sim_config());
    for _ in 0..600 {
        t.append(3);
        t.step(true, true);
    }
    t.net.set_faults(Faults::default());
    for _ in 0..2_000 {
        t.step(true, true);
    }
    let c = t.net.counts();
    assert!(c.dropped > 0 && c.duplicated > 0 && c.truncated > 0 && c.corrupted > 0, "{c:?}");
    let s = t.standby.stats();
    let p = t.primary.stats();
    assert!(s.frames_dropped_malformed > 0, "truncated/corrupted frames must be detected: {s:?}");
    assert!(s.writes_gap > 0 && s.writes_duplicate > 0, "{s:?}");
    assert!(p.retransmits > 0, "{p:?}");
    assert_eq!(t.primary.gate().mirrored_seq(), t.p_node.tail.seq);
    t.assert_regions_match_up_to_gate();
}

#[test]
fn standby_promotes_after_heartbeat_silence() {
    let config = MirrorConfig::new(REGION_BYTES as u64);
    let mut t = Cluster::new(1, Faults::default(), config);
    for _ in 0..50 {
        t.append(2);
        t.step(true, true);
    }
    assert!(t.standby.synced_once());
    // The primary dies: nothing more is sent.
    let died_ns = t.now_ns;
    let heard_ns = died_ns; // the last step delivered a heartbeat or write at this time at the latest
    while t.events.is_empty() && t.now_ns < died_ns + 20_000_000 {
        t.step(false, true);
    }
    let (at_ns, ev) = t.events[0];
    let StandbyEvent::Promoted { epoch, at } = ev else { panic!("expected promotion, got {ev:?}") };
    assert_eq!(epoch, 2);
    assert_eq!(at, t.standby.validated());
    assert_eq!(at.seq, t.p_node.tail.seq, "a synced standby promotes with everything the primary had");
    assert!(at_ns >= heard_ns + config.promote_after_silence_ns - config.heartbeat_interval_ns);
    assert!(at_ns <= died_ns + config.promote_after_silence_ns + STEP_NS, "promoted late: {}", at_ns - died_ns);
    assert!(t.standby.is_promoted());
}

#[test]
fn standby_that_never_synced_does_not_promote() {
    let config = MirrorConfig::new(REGION_BYTES as u64);
    let mut t = Cluster::new(2, Faults::default(), config);
    t.append(20);
    t.net.set_partitioned(true);
    for _ in 0..200 {
        t.step(true, true);
    }
    assert!(t.events.is_empty());
    assert!(!t.standby.is_promoted());
}

#[test]
fn mirrored_gate_stalls_on_partition_and_resumes() {
    let mut t = Cluster::new(3, Faults::default(), sim_config());
    for _ in 0..30 {
        t.append(2);
        t.step(true, true);
    }
    t.host.durable = t.host.applied;
    for _ in 0..20 {
        t.step(true, true);
    }
    let gate = t.primary.gate();
    assert_eq!(gate.mirrored_seq(), t.p_node.tail.seq);
    let before = gate.mirrored_seq();
    t.net.set_partitioned(true);
    for _ in 0..200 {
        t.append(2);
        t.step(true, true);
    }
    let local = t.p_node.tail.seq;
    assert!(local > before);
    assert_eq!(gate.combine(AckPolicy::Mirrored, local), Some(before), "no mirrored acks while partitioned");
    assert_eq!(gate.combine(AckPolicy::Local, local), Some(local));
    assert!(t.primary.standby_silent_ns(t.now_ns).unwrap() >= 190 * STEP_NS);
    t.net.set_partitioned(false);
    for _ in 0..500 {
        t.step(true, true);
    }
    assert_eq!(gate.combine(AckPolicy::Mirrored, local), Some(local), "gate resumes after the partition heals");
    t.assert_regions_match_up_to_gate();
}

#[test]
fn replicated_gate_follows_the_landing_not_the_standbys_msync() {
    let mut t = Cluster::new(5, Faults::default(), sim_config());
    for _ in 0..40 {
        t.append(3);
        t.now_ns += STEP_NS;
        t.net.set_now(t.now_ns);
        t.primary.tick(t.now_ns, &mut t.p_node.region, &mut t.p_end).unwrap();
        // The standby's group commit never completes in this run: nothing is durable there.
        t.standby.tick(t.now_ns, &mut t.s_region, &mut t.s_end, &mut t.host).unwrap();
        t.check();
    }
    for _ in 0..20 {
        t.step(true, false);
        t.standby.tick(t.now_ns, &mut t.s_region, &mut t.s_end, &mut t.host).unwrap();
    }
    let gate = t.primary.gate();
    let tail = t.p_node.tail.seq;
    assert!(tail > 0);
    assert_eq!(gate.mirrored_seq(), 0, "nothing is durable on the standby");
    assert_eq!(gate.landed_seq(), tail, "every record landed and was validated there");
    assert_eq!(gate.combine(AckPolicy::Replicated, 0), Some(tail), "replicated waits for neither node's msync");
    assert_eq!(gate.combine(AckPolicy::Mirrored, tail), Some(0));
    t.net.set_partitioned(true);
    for _ in 0..50 {
        t.append(2);
        t.step(true, true);
    }
    assert_eq!(gate.combine(AckPolicy::Replicated, 0), Some(tail), "nothing more is released while partitioned");
}

#[test]
fn late_standby_catches_up_from_hello() {
    let mut t = Cluster::new(4, Faults::default(), sim_config());
    // The primary runs alone for a while; its frames go nowhere.
    t.net.set_partitioned(true);
    for _ in 0..100 {
        t.append(5);
        t.step(true, false);
    }
    assert_eq!(t.primary.gate().mirrored_seq(), 0);
    t.net.set_partitioned(false);
    for _ in 0..1_000 {
        t.step(true, true);
    }
    assert_eq!(t.primary.gate().mirrored_seq(), t.p_node.tail.seq);
    assert_eq!(t.host.applied_count, t.p_node.tail.seq);
    t.assert_regions_match_up_to_gate();
}

#[test]
fn restarted_standby_resumes_from_its_durable_position() {
    let config = sim_config();
    let mut t = Cluster::new(5, Faults::default(), config);
    for _ in 0..100 {
        t.append(3);
        t.step(true, true);
    }
    t.host.durable = t.host.applied;
    for _ in 0..10 {
        t.step(true, true);
    }
    // The standby restarts: its WAL recovered `durable`; anything after it in its region is garbage.
    let durable = t.standby.durable();
    t.s_region[durable.offset as usize..].fill(0xee);
    t.standby = Standby::new(config, Crc32cRecords, 1, durable);
    t.host = Host::new(durable);
    t.durable_last = durable;
    for _ in 0..100 {
        t.append(3);
        t.step(true, true);
    }
    for _ in 0..200 {
        t.step(true, true);
    }
    assert_eq!(t.primary.gate().mirrored_seq(), t.p_node.tail.seq);
    assert_eq!(t.host.applied.seq, t.p_node.tail.seq);
    t.assert_regions_match_up_to_gate();
}

#[test]
fn former_primary_is_fenced_then_resyncs_as_standby() {
    let config = MirrorConfig::new(REGION_BYTES as u64);
    let mut t = Cluster::new(6, Faults::default(), config);
    for _ in 0..40 {
        t.append(2);
        t.step(true, true);
    }
    // Partition: the standby promotes while the old primary keeps appending (under ack = local it would even
    // release them: those are the records a resync discards).
    t.net.set_partitioned(true);
    let old_gate = t.primary.gate();
    for _ in 0..100 {
        t.append(1);
        t.step(true, true);
    }
    let Some(&(_, StandbyEvent::Promoted { epoch, at })) = t.events.first() else { panic!("{:?}", t.events) };
    assert_eq!(epoch, 2);
    assert!(t.p_node.tail.seq > at.seq, "the old primary ran ahead during the partition");

    // The promoted standby becomes primary 2 on the same link; its region is the standby region.
    let mut new_primary = Primary::new(config, Crc32cRecords, epoch, at);
    let mut new_node = Node { region: std::mem::take(&mut t.s_region), tail: at, epoch: 2 };
    t.net.set_partitioned(false);
    for _ in 0..20 {
        t.now_ns += STEP_NS;
        t.net.set_now(t.now_ns);
        new_node.append(&mut t.rng, t.now_ns);
        new_primary.on_append(new_node.tail);
        t.primary.tick(t.now_ns, &mut t.p_node.region, &mut t.p_end).unwrap();
        new_primary.tick(t.now_ns, &mut new_node.region, &mut t.s_end).unwrap();
    }
    assert_eq!(t.primary.fenced_by(), Some(2), "the old primary saw the newer epoch");
    assert!(old_gate.is_fenced());
    assert_eq!(old_gate.combine(AckPolicy::Local, t.p_node.tail.seq), None, "a fenced primary acknowledges nothing");

    // The old primary rejoins as a standby with its own (longer) log and learns it must truncate.
    let mut rejoin = Standby::new(config, Crc32cRecords, 1, t.p_node.tail);
    let mut rejoin_host = Host::new(t.p_node.tail);
    let mut event = None;
    for _ in 0..50 {
        t.now_ns += STEP_NS;
        t.net.set_now(t.now_ns);
        new_primary.tick(t.now_ns, &mut new_node.region, &mut t.s_end).unwrap();
        if let Some(ev) = rejoin.tick(t.now_ns, &mut t.p_node.region, &mut t.p_end, &mut rejoin_host).unwrap() {
            event = Some(ev);
            break;
        }
    }
    assert_eq!(event, Some(StandbyEvent::MustResync { epoch: 2, truncate_to: at }));

    // Resync: truncate to the epoch start, follow the new primary in epoch 2 and converge.
    t.p_node.region[at.offset as usize..].fill(0);
    let mut follower = Standby::new(config, Crc32cRecords, 2, at);
    let mut follower_host = Host::new(at);
    for _ in 0..300 {
        t.now_ns += STEP_NS;
        t.net.set_now(t.now_ns);
        new_primary.tick(t.now_ns, &mut new_node.region, &mut t.s_end).unwrap();
        follower_host.durable = follower_host.applied;
        follower.tick(t.now_ns, &mut t.p_node.region, &mut t.p_end, &mut follower_host).unwrap();
    }
    assert_eq!(new_primary.gate().mirrored_seq(), new_node.tail.seq);
    let n = new_node.tail.offset as usize;
    assert!(new_node.region[..n] == t.p_node.region[..n]);
}

/// A landing ring far smaller than the log: the stream wraps it dozens of times, records straddle its end, and
/// every fault still converges to the same bytes.
#[test]
fn small_landing_ring_wraps_under_faults() {
    const LOG_BYTES: usize = 512 * 1024;
    let mut config = MirrorConfig::new(16 * 1024);
    config.write_chunk_max_bytes = 2048;
    config.inflight_max_bytes = 8 * 1024;
    config.promote_after_silence_ns = 1_000_000_000;
    for seed in 0..12u64 {
        let faults = Faults { drop_ppm: 50_000, duplicate_ppm: 50_000, truncate_ppm: 20_000, corrupt_ppm: 20_000, delay_ns_max: 1_000_000 };
        let mut t = Cluster::new(0x7107 + seed, faults, config);
        t.p_node.region = vec![0u8; LOG_BYTES];
        while t.p_node.tail.offset as usize + 192 <= LOG_BYTES - 192 {
            let burst = t.rng.below(6) as usize;
            t.append(burst);
            t.step(true, true);
        }
        t.net.set_faults(Faults::default());
        for _ in 0..5_000 {
            t.step(true, true);
            if t.primary.gate().mirrored_seq() == t.p_node.tail.seq && t.primary.acked() == t.p_node.tail {
                break;
            }
        }
        assert_eq!(t.primary.gate().mirrored_seq(), t.p_node.tail.seq, "seed {seed}: did not converge");
        assert_eq!(t.host.applied_count, t.p_node.tail.seq, "seed {seed}");
        assert!(t.p_node.tail.offset > 20 * config.region_size_bytes, "the ring wrapped many times");
        t.assert_regions_match_up_to_gate();
    }
}

#[test]
fn host_claiming_unvalidated_durability_is_refused() {
    let config = sim_config();
    let (_net, _p, mut s_end) = SimNet::new(9, Faults::default());
    let mut standby = Standby::new(config, Crc32cRecords, 1, Position::default());
    let mut host = Host::new(Position::default());
    host.durable = Position { seq: 3, offset: 192 };
    let mut region = vec![0u8; REGION_BYTES];
    let err = standby.tick(1, &mut region, &mut s_end, &mut host).unwrap_err();
    assert!(err.to_string().contains("beyond the validated position"), "{err}");
}
