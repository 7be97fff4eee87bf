//! A market-data client for the failover tests: it listens where the nodes publish ITCH over MoldUDP64, keeps every
//! message by sequence number, and asks the retransmission servers for whatever is missing, the way a real feed
//! handler recovers a gap. Afterwards [`MdReport`] says whether the sequence the firms saw across a failover is
//! continuous: no number missing once retransmission requests were answered, and no number carrying two different
//! messages (which is what a promoted node restarting the sequence would produce).
//!
//! Live packets and retransmissions are told apart by their source: answers come from a retransmission server's
//! address, live data from a node's order-entry socket. The client can also pretend to lose one live packet, so
//! every run exercises the recovery path it relies on.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{Packet, Request};

use super::netns::FailoverNetns;

/// How often the missing ranges are requested again.
const REQUEST_INTERVAL: Duration = Duration::from_millis(20);
/// Missing ranges requested per round.
const REQUEST_RANGES_MAX: usize = 8;
/// Messages asked for per request (an answer holds what fits one datagram; the rest is asked for next round).
const REQUEST_COUNT_MAX: u16 = 256;
/// After the stop flag, how long to keep asking for what is still missing.
const FINAL_RECOVERY: Duration = Duration::from_millis(800);

/// A live packet whose sequence was below the stream's next expected one.
#[derive(Clone, Copy, Debug)]
pub struct Regression {
    pub from: SocketAddr,
    pub sequence: u64,
    pub expected: u64,
}

/// What the client saw.
#[derive(Debug, Default)]
pub struct MdReport {
    pub sessions: Vec<SessionName>,
    /// Live packets per source: (first sequence, one past the last message, packets).
    pub live_by_source: BTreeMap<SocketAddr, (u64, u64, u64)>,
    /// Sequence numbers skipped by the live stream (before any retransmission).
    pub live_gap_messages: u64,
    /// Live packets that went back in sequence (first few).
    pub regressions: Vec<Regression>,
    pub regression_count: u64,
    /// Sequence numbers that arrived twice with different bytes.
    pub conflicts: u64,
    pub first_conflict: Option<u64>,
    /// Highest sequence number seen.
    pub max_sequence: u64,
    /// Ranges still missing from 1..=max_sequence after the final recovery.
    pub missing: Vec<(u64, u64)>,
    pub requests_sent: u64,
    pub answers: u64,
    pub answered_messages: u64,
    /// The live packet ignored on purpose: (first sequence, count).
    pub dropped_live: Option<(u64, u64)>,
}

impl MdReport {
    pub fn missing_count(&self) -> u64 {
        self.missing.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Continuous: every number from 1 to the highest once, each with one content, in one session.
    pub fn is_continuous(&self) -> bool {
        self.missing.is_empty() && self.conflicts == 0 && self.sessions.len() <= 1
    }

    pub fn summary(&self) -> String {
        let sources: Vec<String> =
            self.live_by_source.iter().map(|(s, (a, b, n))| format!("{s}: seq {a}..{b} in {n} packets")).collect();
        format!(
            "max seq {}, live gaps {} messages, {} regressions {:?}, {} conflicting seqs (first {:?}), missing after \
             retransmission {} in {:?}, {} requests / {} answers ({} messages, after dropping live packet {:?} on \
             purpose); live by source: [{}]; sessions {:?}",
            self.max_sequence,
            self.live_gap_messages,
            self.regression_count,
            self.regressions,
            self.conflicts,
            self.first_conflict,
            self.missing_count(),
            &self.missing[..self.missing.len().min(4)],
            self.requests_sent,
            self.answers,
            self.answered_messages,
            self.dropped_live,
            sources.join(", "),
            self.sessions.iter().map(|s| String::from_utf8_lossy(&s.0).into_owned()).collect::<Vec<_>>(),
        )
    }
}

/// The client running on its own thread in the firms' namespace.
pub struct MdWatcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<MdReport>>,
}

impl MdWatcher {
    /// Binds `listen` (in the firms' namespace) and starts; requests go to every address in `retransmit`. The
    /// `drop_live`-th live packet (1-based) is ignored as if the network had lost it.
    pub fn start(
        ns: &FailoverNetns,
        listen: SocketAddrV4,
        retransmit: Vec<SocketAddrV4>,
        drop_live: Option<u64>,
    ) -> MdWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let handle = ns.spawn_in_firms("md-watcher", move || {
            // A multicast feed is joined on the firms' address, as a feed handler subscribes (IGMP on the bridge).
            let bind = if listen.ip().is_multicast() { SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, listen.port()) } else { listen };
            let sock = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("binding market data on {bind}: {e}"));
            if listen.ip().is_multicast() {
                sock.join_multicast_v4(listen.ip(), &super::netns::FIRMS_IP)
                    .unwrap_or_else(|e| panic!("joining {} on {}: {e}", listen.ip(), super::netns::FIRMS_IP));
            }
            sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
            tx.send(()).unwrap();
            let mut w = Watch {
                sock,
                retransmit,
                msgs: BTreeMap::new(),
                report: MdReport::default(),
                next_live: 0,
                live_packets: 0,
                drop_live,
            };
            w.run(&flag);
            w.report
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("market-data client did not bind");
        MdWatcher { stop, handle: Some(handle) }
    }

    /// Stops listening, asks once more for what is missing, and reports.
    pub fn finish(mut self) -> MdReport {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().expect("finished once").join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for MdWatcher {
    /// A failing test drops the client unfinished: stop its thread rather than leave it polling.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Watch {
    sock: UdpSocket,
    retransmit: Vec<SocketAddrV4>,
    msgs: BTreeMap<u64, Vec<u8>>,
    report: MdReport,
    next_live: u64,
    live_packets: u64,
    drop_live: Option<u64>,
}

impl Watch {
    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 9_216];
        let mut next_request = Instant::now();
        let mut final_until: Option<Instant> = None;
        loop {
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                self.on_datagram(&buf[..n], from);
            }
            let now = Instant::now();
            if final_until.is_none() && stop.load(Ordering::Relaxed) {
                final_until = Some(now + FINAL_RECOVERY);
            }
            if let Some(until) = final_until {
                if now >= until || (self.missing().is_empty() && self.report.max_sequence > 0) {
                    break;
                }
            }
            if now >= next_request {
                self.request_missing();
                next_request = now + REQUEST_INTERVAL;
            }
        }
        self.report.missing = self.missing();
    }

    fn is_retransmission(&self, from: SocketAddr) -> bool {
        self.retransmit.iter().any(|r| SocketAddr::V4(*r) == from)
    }

    fn on_datagram(&mut self, d: &[u8], from: SocketAddr) {
        let Ok(p) = Packet::new_checked(d) else { return };
        let session = p.session();
        if !self.report.sessions.contains(&session) {
            self.report.sessions.push(session);
        }
        if p.is_end_of_session() {
            return;
        }
        let (seq, count) = (p.sequence(), u64::from(p.count()));
        if count == 0 {
            // A heartbeat names the next sequence number: everything before it exists.
            self.report.max_sequence = self.report.max_sequence.max(seq.saturating_sub(1));
            return;
        }
        if self.is_retransmission(from) {
            self.report.answers += 1;
            self.report.answered_messages += count;
        } else {
            self.live_packets += 1;
            if self.drop_live == Some(self.live_packets) {
                self.report.dropped_live = Some((seq, count));
                return;
            }
            let e = self.report.live_by_source.entry(from).or_insert((seq, seq + count, 0));
            e.1 = e.1.max(seq + count);
            e.2 += 1;
            if self.next_live == 0 {
                self.next_live = seq;
            }
            if seq > self.next_live {
                self.report.live_gap_messages += seq - self.next_live;
            } else if seq < self.next_live {
                self.report.regression_count += 1;
                if self.report.regressions.len() < 4 {
                    self.report.regressions.push(Regression { from, sequence: seq, expected: self.next_live });
                }
            }
            self.next_live = self.next_live.max(seq + count);
        }
        for (i, m) in p.messages().enumerate() {
            let s = seq + i as u64;
            match self.msgs.get(&s) {
                Some(old) if old.as_slice() != m => {
                    self.report.conflicts += 1;
                    self.report.first_conflict.get_or_insert(s);
                }
                Some(_) => {}
                None => {
                    self.msgs.insert(s, m.to_vec());
                }
            }
        }
        self.report.max_sequence = self.report.max_sequence.max(seq + count - 1);
    }

    /// Missing ranges (inclusive) in 1..=max_sequence.
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut expect = 1;
        for &s in self.msgs.keys() {
            if s > expect {
                out.push((expect, s - 1));
            }
            expect = s + 1;
        }
        if self.report.max_sequence >= expect {
            out.push((expect, self.report.max_sequence));
        }
        out
    }

    fn request_missing(&mut self) {
        let Some(&session) = self.report.sessions.last() else { return };
        let mut req = [0u8; 32];
        for (first, last) in self.missing().into_iter().take(REQUEST_RANGES_MAX) {
            let count = (last - first + 1).min(u64::from(REQUEST_COUNT_MAX)) as u16;
            let Ok(n) = (Request { session, sequence: first, count }).emit(&mut req) else { continue };
            for to in &self.retransmit {
                // A dead node's server does not answer; the send itself may fail with no route, equally fine.
                let _ = self.sock.send_to(&req[..n], to);
                self.report.requests_sent += 1;
            }
        }
    }
}
