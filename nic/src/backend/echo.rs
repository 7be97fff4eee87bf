//! Loops generic over [`Backend`]: the bare echo used by `bourse bench wire` as the floor every appliance
//! measurement is compared against.
//!
//! The echo receives a burst, then sends each payload back to its source unchanged — no decoding. A received payload
//! is borrowed from the backend only inside `rx_burst`, and the backend cannot transmit while it is lending a receive
//! buffer, so each burst is first copied into a scratch arena allocated once when the loop starts; the loop itself
//! never allocates.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Backend;

/// Datagrams the echo can hold from one receive burst; larger bursts are cut off and the excess counted as dropped.
pub const ECHO_BURST_MAX: usize = 1_024;
/// Bytes of payload the echo can hold from one receive burst (one UDP datagram of the largest size fits).
pub const ECHO_ARENA_BYTES: usize = 128 * 1_024;

const _: () = assert!(ECHO_ARENA_BYTES >= 65_507);

/// Counters of one echo run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Datagrams sent back.
    pub echoed: u64,
    /// Datagrams received but not sent back: no room in the scratch arena, or the backend's transmit slots stayed
    /// full after a flush.
    pub dropped: u64,
}

/// One received datagram waiting in the arena.
#[derive(Clone, Copy)]
struct Held {
    src: SocketAddrV4,
    offset: usize,
    len: usize,
}

/// The scratch space an echo loop copies bursts into.
pub struct Echo {
    held: Box<[Held]>,
    held_count: usize,
    arena: Box<[u8]>,
    arena_used: usize,
    stats: EchoStats,
}

impl Default for Echo {
    fn default() -> Echo {
        Echo::new()
    }
}

impl Echo {
    pub fn new() -> Echo {
        let none = Held { src: SocketAddrV4::new([0, 0, 0, 0].into(), 0), offset: 0, len: 0 };
        Echo {
            held: vec![none; ECHO_BURST_MAX].into_boxed_slice(),
            held_count: 0,
            arena: vec![0u8; ECHO_ARENA_BYTES].into_boxed_slice(),
            arena_used: 0,
            stats: EchoStats::default(),
        }
    }

    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// One receive burst echoed back and flushed; returns how many datagrams were echoed. The work count lets a
    /// caller's idle strategy tell busy from idle.
    pub fn poll<B: Backend + ?Sized>(&mut self, b: &mut B) -> usize {
        self.held_count = 0;
        self.arena_used = 0;
        b.rx_burst(&mut |d| {
            let end = self.arena_used + d.payload.len();
            if self.held_count == self.held.len() || end > self.arena.len() {
                self.stats.dropped += 1;
                return;
            }
            self.arena[self.arena_used..end].copy_from_slice(d.payload);
            self.held[self.held_count] = Held { src: d.src, offset: self.arena_used, len: d.payload.len() };
            self.held_count += 1;
            self.arena_used = end;
        });
        let mut echoed = 0;
        for h in &self.held[..self.held_count] {
            let payload = &self.arena[h.offset..h.offset + h.len];
            let mut fill = |buf: &mut [u8]| {
                let n = payload.len().min(buf.len());
                buf[..n].copy_from_slice(&payload[..n]);
                n
            };
            // A full transmit queue is flushed once and the send retried; if it is still full the kernel or NIC is
            // not keeping up and the datagram is dropped rather than stalling the loop.
            let ok = b.tx(h.src, &mut fill).is_ok() || {
                b.tx_flush();
                b.tx(h.src, &mut fill).is_ok()
            };
            if ok {
                echoed += 1;
            } else {
                self.stats.dropped += 1;
            }
        }
        // Flushing every pass also pushes out anything an earlier flush left queued.
        b.tx_flush();
        self.stats.echoed += echoed as u64;
        echoed
    }
}

/// Busy-polls `b`, sending every received payload back to its source, until `stop` is set; returns how many
/// datagrams were echoed. Never sleeps.
pub fn echo<B: Backend + ?Sized>(b: &mut B, stop: &AtomicBool) -> u64 {
    let mut e = Echo::new();
    // Relaxed suffices: the flag carries no data, and the loop only needs to see it eventually.
    while !stop.load(Ordering::Relaxed) {
        e.poll(b);
    }
    e.stats().echoed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendStats, Datagram, TxError};

    /// An in-memory backend: delivers scripted datagrams and records what is sent.
    struct Script {
        inbox: Vec<(SocketAddrV4, Vec<u8>)>,
        queued: Vec<(SocketAddrV4, Vec<u8>)>,
        sent: Vec<(SocketAddrV4, Vec<u8>)>,
        slots: usize,
    }

    impl Backend for Script {
        fn name(&self) -> &'static str {
            "script"
        }
        fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
            let dst = SocketAddrV4::new([127, 0, 0, 1].into(), 9);
            let n = self.inbox.len();
            for (src, p) in self.inbox.drain(..) {
                f(Datagram { src, dst, payload: &p });
            }
            n
        }
        fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
            if self.queued.len() == self.slots {
                return Err(TxError::Full);
            }
            let mut buf = vec![0u8; 65_507];
            let n = fill(&mut buf);
            buf.truncate(n);
            self.queued.push((dst, buf));
            Ok(())
        }
        fn tx_flush(&mut self) -> usize {
            let n = self.queued.len();
            self.sent.append(&mut self.queued);
            n
        }
        fn stats(&self) -> BackendStats {
            BackendStats::default()
        }
    }

    #[test]
    fn echo_returns_each_payload_to_its_source_even_past_a_full_queue() {
        let a = SocketAddrV4::new([10, 0, 0, 1].into(), 1000);
        let b = SocketAddrV4::new([10, 0, 0, 2].into(), 2000);
        let inbox: Vec<_> = (0..10u8).map(|i| (if i % 2 == 0 { a } else { b }, vec![i; 1 + i as usize])).collect();
        let mut s = Script { inbox: inbox.clone(), queued: Vec::new(), sent: Vec::new(), slots: 3 };
        let mut e = Echo::new();
        assert_eq!(e.poll(&mut s), 10);
        assert_eq!(s.sent, inbox);
        assert_eq!(e.stats(), EchoStats { echoed: 10, dropped: 0 });
    }

    #[test]
    fn echo_counts_what_does_not_fit_the_arena() {
        let a = SocketAddrV4::new([10, 0, 0, 1].into(), 1000);
        let big = vec![0xa5u8; 60_000];
        let inbox = vec![(a, big.clone()), (a, big.clone()), (a, big.clone())];
        let mut s = Script { inbox, queued: Vec::new(), sent: Vec::new(), slots: 8 };
        let mut e = Echo::new();
        assert_eq!(e.poll(&mut s), 2);
        assert_eq!(e.stats(), EchoStats { echoed: 2, dropped: 1 });
        assert_eq!(s.sent.len(), 2);
        assert!(s.sent.iter().all(|(d, p)| *d == a && *p == big));
    }
}
