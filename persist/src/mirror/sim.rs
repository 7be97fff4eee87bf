//! A seeded, fault-injecting in-memory link for simulation tests (TigerBeetle's VOPR style).
//!
//! Two [`SimEndpoint`]s share one [`SimNet`]. Time is the simulation's: the test advances it with
//! [`SimNet::set_now`] and a frame becomes visible to `poll` only when its delivery time has come. Each send may be
//! dropped, duplicated, truncated, bit-flipped or delayed by a random amount (random delays reorder frames), all
//! decided by one seeded generator so a failing seed replays exactly. This module is test equipment: it allocates
//! freely and is never on a hot path.

use std::cell::RefCell;
use std::rc::Rc;

use super::transport::{MirrorTransport, Sent, TransportError};

/// The fault choices draw from the project's seeded generator.
pub type SimRng = crate::workload::Rng;

/// Fault probabilities in parts per million per frame, and the delay range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    pub truncate_ppm: u32,
    pub corrupt_ppm: u32,
    /// Each frame is delivered after a uniform delay in `0..=delay_ns_max`; different delays reorder frames.
    pub delay_ns_max: u64,
}

/// Counts of injected faults, to show a simulation exercised what it claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub truncated: u64,
    pub corrupted: u64,
    pub partitioned: u64,
    pub delivered: u64,
}

struct InFlight {
    deliver_ns: u64,
    order: u64,
    bytes: Vec<u8>,
}

struct Net {
    now_ns: u64,
    rng: SimRng,
    faults: Faults,
    partitioned: bool,
    order: u64,
    queue_frames_max: usize,
    /// `queues[i]` holds frames travelling to endpoint `i`.
    queues: [Vec<InFlight>; 2],
    counts: FaultCounts,
}

/// Handle on the simulated network, for the test driver.
#[derive(Clone)]
pub struct SimNet(Rc<RefCell<Net>>);

/// One end of the link; implements [`MirrorTransport`].
pub struct SimEndpoint {
    net: Rc<RefCell<Net>>,
    side: usize,
    ready: Vec<Vec<u8>>,
}

impl SimNet {
    /// A link with the given faults; returns the driver handle and the two endpoints (0 and 1).
    pub fn new(seed: u64, faults: Faults) -> (SimNet, SimEndpoint, SimEndpoint) {
        let net = Rc::new(RefCell::new(Net {
            now_ns: 0,
            rng: SimRng::new(seed),
            faults,
            partitioned: false,
            order: 0,
            queue_frames_max: 4096,
            queues: [Vec::new(), Vec::new()],
            counts: FaultCounts::default(),
        }));
        let end = |side| SimEndpoint { net: net.clone(), side, ready: Vec::new() };
        let (a, b) = (end(0), end(1));
        (SimNet(net), a, b)
    }
    pub fn set_now(&self, now_ns: u64) {
        self.0.borrow_mut().now_ns = now_ns;
    }
    /// While partitioned every send is lost (frames already in flight still arrive).
    pub fn set_partitioned(&self, partitioned: bool) {
        self.0.borrow_mut().partitioned = partitioned;
    }
    pub fn set_faults(&self, faults: Faults) {
        self.0.borrow_mut().faults = faults;
    }
    pub fn counts(&self) -> FaultCounts {
        self.0.borrow().counts
    }
}

impl Net {
    fn enqueue(&mut self, to: usize, bytes: Vec<u8>) {
        let delay = if self.faults.delay_ns_max == 0 { 0 } else { self.rng.below(self.faults.delay_ns_max + 1) };
        self.order += 1;
        self.queues[to].push(InFlight { deliver_ns: self.now_ns + delay, order: self.order, bytes });
    }
}

impl MirrorTransport for SimEndpoint {
    fn send(&mut self, frame: &[u8]) -> Result<Sent, TransportError> {
        let mut net = self.net.borrow_mut();
        let to = 1 - self.side;
        if net.queues[to].len() >= net.queue_frames_max {
            return Ok(Sent::Full);
        }
        net.counts.sent += 1;
        if net.partitioned {
            net.counts.partitioned += 1;
            return Ok(Sent::Queued);
        }
        let f = net.faults;
        if net.rng.chance(f.drop_ppm) {
            net.counts.dropped += 1;
            return Ok(Sent::Queued);
        }
        let mut bytes = frame.to_vec();
        if net.rng.chance(f.truncate_ppm) && !bytes.is_empty() {
            let keep = net.rng.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
            net.counts.truncated += 1;
        }
        if net.rng.chance(f.corrupt_ppm) && !bytes.is_empty() {
            let bit = net.rng.below(bytes.len() as u64 * 8) as usize;
            bytes[bit / 8] ^= 1 << (bit % 8);
            net.counts.corrupted += 1;
        }
        if net.rng.chance(f.duplicate_ppm) {
            net.counts.duplicated += 1;
            net.enqueue(to, bytes.clone());
        }
        net.enqueue(to, bytes);
        Ok(Sent::Queued)
    }

    fn poll(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, TransportError> {
        {
            let mut net = self.net.borrow_mut();
            let now = net.now_ns;
            let q = &mut net.queues[self.side];
            q.sort_by_key(|m| (m.deliver_ns, m.order));
            let due = q.iter().take_while(|m| m.deliver_ns <= now).count();
            self.ready.extend(q.drain(..due).map(|m| m.bytes));
            net.counts.delivered += due as u64;
        }
        let n = self.ready.len();
        for bytes in self.ready.drain(..) {
            on_frame(&bytes);
        }
        Ok(n)
    }
}
