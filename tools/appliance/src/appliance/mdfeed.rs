//! The market-data feed's transport: ITCH 5.0 messages, already numbered by the exchange state machine, packed
//! into MoldUDP64 datagrams for the group and held until committed.
//!
//! Messages arrive in sequence order from [`super::exchange::Outputs::market`] and are packed into the current
//! datagram; a datagram is closed when the next message does not fit or at the end of a burst, and queued in its own
//! [`OutQueue`] tagged with the highest input seq that contributed to it, so it goes out only once that input is
//! committed. The numbering and the messages kept for retransmission are replicated state and live in the
//! exchange; the feed answers MoldUDP64 requests from there ([`MdFeed::answer`]), but only up to what it has
//! transmitted (everything before a restart counts as transmitted: recovery made it committed).

use std::net::SocketAddrV4;

use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{self, Header, Request, BLOCK_PREFIX_LEN, HEADER_LEN};

use super::exchange::ITCH_BYTES_MAX;
use super::outq::{Full, OutQueue};

/// Why a retransmission request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// A count of 0, or sequence 0: nothing was asked for.
    Empty,
    /// The first sequence asked for is after the last message transmitted.
    BeyondFeed,
    /// The first sequence asked for is no longer kept.
    NotKept,
}

pub struct MdFeed {
    session: SessionName,
    group: SocketAddrV4,
    payload_max_bytes: usize,
    /// Sequence number the next message packed must have.
    next_sequence: u64,
    /// The datagram being filled: length-prefixed blocks.
    packet: Vec<u8>,
    packet_first: u64,
    packet_count: u16,
    packet_input_seq: u64,
    queue: OutQueue,
    released_through: u64,
    /// A heartbeat is owed: sent at the next release unless a datagram goes out then anyway.
    beat_due: bool,
    /// End of Session is queued: the session carries nothing more, heartbeats included.
    ended: bool,
    /// Datagrams transmitted on the feed, heartbeats included: what the heartbeat cadence watches.
    sent: u64,
    /// Datagrams refused because the queue was full (the pipeline's backpressure should keep this at 0).
    pub overflows: u64,
}

impl MdFeed {
    /// A feed whose next message is `next_sequence` (everything before it was published before this start).
    pub fn new(
        session: SessionName,
        group: SocketAddrV4,
        payload_max_bytes: usize,
        queue_bytes: usize,
        next_sequence: u64,
    ) -> MdFeed {
        assert!(payload_max_bytes >= HEADER_LEN + BLOCK_PREFIX_LEN + ITCH_BYTES_MAX);
        MdFeed {
            session,
            group,
            payload_max_bytes,
            next_sequence,
            packet: Vec::with_capacity(payload_max_bytes),
            packet_first: next_sequence,
            packet_count: 0,
            packet_input_seq: 0,
            queue: OutQueue::new(queue_bytes),
            released_through: next_sequence - 1,
            beat_due: false,
            ended: false,
            sent: 0,
            overflows: 0,
        }
    }

    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Room left in the queue, in bytes: the pipeline stops taking input when it runs low.
    pub fn queue_free_bytes(&self) -> usize {
        self.queue.free_bytes()
    }

    /// Appends ITCH message `sequence` (the next one) caused by input `input_seq`.
    pub fn push(&mut self, input_seq: u64, sequence: u64, msg: &[u8]) {
        assert_eq!(sequence, self.next_sequence, "market data arrives in sequence");
        debug_assert!(msg.len() <= ITCH_BYTES_MAX);
        if self.packet_count > 0 && HEADER_LEN + self.packet.len() + BLOCK_PREFIX_LEN + msg.len() > self.payload_max_bytes
        {
            self.close_packet();
        }
        if self.packet_count == 0 {
            self.packet.clear();
            self.packet_first = sequence;
        }
        self.packet.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.packet.extend_from_slice(msg);
        self.packet_count += 1;
        self.packet_input_seq = self.packet_input_seq.max(input_seq);
        self.next_sequence += 1;
    }

    /// Closes the datagram being filled and queues it behind its inputs' commit.
    pub fn close_packet(&mut self) {
        if self.packet_count == 0 {
            return;
        }
        let header = Header { session: self.session, sequence: self.packet_first, count: self.packet_count };
        let body = &self.packet;
        let pushed = self.queue.push(self.packet_input_seq, self.group, HEADER_LEN + body.len(), |buf| {
            // The slot is exactly header + body long.
            let _ = header.emit(buf);
            buf[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
            HEADER_LEN + body.len()
        });
        if let Err(Full) = pushed {
            // Messages stay in the exchange's store; receivers recover the gap by request.
            self.overflows += 1;
        }
        self.packet_count = 0;
        self.packet.clear();
    }

    /// Owes a MoldUDP64 heartbeat: a packet with no messages carrying the sequence after the last message
    /// transmitted, so a receiver that lost the last packet before a quiet spell (or before a failover) sees the
    /// gap and asks for it. It is sent at the next [`MdFeed::release`], not queued behind datagrams waiting for
    /// their inputs' commit: a slow commit must not silence the feed past its cadence, and a heartbeat announces
    /// only what was sent, so it needs no commit of its own.
    pub fn heartbeat(&mut self) {
        self.beat_due = !self.ended;
    }

    /// Datagrams transmitted on the feed so far, heartbeats included.
    pub fn datagrams_sent(&self) -> u64 {
        self.sent
    }

    /// Queues a MoldUDP64 End of Session packet (message count 0xFFFF, sequence the next one): after it the
    /// session carries nothing more. It follows everything already queued and is released with it.
    pub fn end_of_session(&mut self) {
        self.close_packet();
        let end = end_of_session(self.session, self.next_sequence);
        if let Err(Full) = queue_header(&mut self.queue, self.packet_input_seq, self.group, &end) {
            self.overflows += 1;
        }
        (self.ended, self.beat_due) = (true, false);
    }

    /// Transmits every queued datagram whose inputs are committed, then the heartbeat owed if nothing went out.
    pub fn release(&mut self, committed: u64, mut send: impl FnMut(SocketAddrV4, &[u8]) -> bool) -> usize {
        let released = &mut self.released_through;
        let mut n = self.queue.release(committed, |dst, datagram| {
            if !send(dst, datagram) {
                return false;
            }
            if let Ok(p) = moldudp64::Packet::new_checked(datagram) {
                if p.count() > 0 && !p.is_end_of_session() {
                    *released = p.sequence() + u64::from(p.count()) - 1;
                }
            }
            true
        });
        if self.beat_due && n == 0 {
            let mut beat = [0u8; HEADER_LEN];
            let header = Header { session: self.session, sequence: self.released_through + 1, count: 0 };
            let _ = header.emit(&mut beat[..]);
            if send(self.group, &beat) {
                n = 1;
                self.beat_due = false;
            }
        } else if n > 0 {
            self.beat_due = false;
        }
        self.sent += n as u64;
        n
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Answers a MoldUDP64 request packet with the messages `stored` returns, into `buf`, at most `max_bytes`
    /// long; returns the datagram length, which always holds at least one message. Only what exists is served:
    /// the count is capped at the last message transmitted (those after it may not be committed), and a request
    /// for nothing, for sequence 0 (sequences start at 1), beyond the feed or for messages no longer kept is
    /// not answered at all. A packet with no messages would read as a heartbeat announcing its sequence as the
    /// next one, which a receiver takes as a gap (MoldUDP64 1.00, "Downstream Packets").
    pub fn answer<'a>(
        &self,
        request: &Request,
        stored: impl Fn(u64) -> Option<&'a [u8]>,
        buf: &mut [u8],
        max_bytes: usize,
    ) -> Result<usize, Unanswered> {
        if request.count == 0 || request.sequence == 0 {
            return Err(Unanswered::Empty);
        }
        if request.sequence > self.released_through {
            return Err(Unanswered::BeyondFeed);
        }
        let first = stored(request.sequence).ok_or(Unanswered::NotKept)?;
        let mut pk = moldudp64::Packer::new(buf, self.session, max_bytes.min(self.payload_max_bytes))
            .map_err(|_| Unanswered::NotKept)?;
        pk.begin(request.sequence);
        pk.push(first).map_err(|_| Unanswered::NotKept)?;
        let end = request.sequence.saturating_add(u64::from(request.count)).min(self.released_through + 1);
        for seq in request.sequence + 1..end {
            let Some(m) = stored(seq) else { break };
            if pk.push(m).is_err() {
                break;
            }
        }
        Ok(pk.finish().len())
    }

    /// The MoldUDP64 session this feed publishes.
    pub fn session(&self) -> SessionName {
        self.session
    }

    /// Highest message sequence already transmitted: requests are answered only up to here.
    pub fn released_through(&self) -> u64 {
        self.released_through
    }
}

/// The MoldUDP64 End of Session header of `session` (count 0xFFFF; `next` is the sequence after the last message).
pub fn end_of_session(session: SessionName, next: u64) -> Header {
    Header { session, sequence: next, count: moldudp64::COUNT_END_OF_SESSION }
}

/// Queues a bare MoldUDP64 header (a packet without message blocks) behind input `input_seq`.
pub fn queue_header(queue: &mut OutQueue, input_seq: u64, dst: SocketAddrV4, header: &Header) -> Result<(), Full> {
    queue.push(input_seq, dst, HEADER_LEN, |buf| {
        let _ = header.emit(buf);
        HEADER_LEN
    })
}

/// When the feed owes a heartbeat: after `interval_ns` in which it transmitted nothing. It watches datagrams
/// transmitted, not messages produced, so the cadence holds on the wire when datagrams wait for a slow commit.
pub struct HeartbeatCadence {
    interval_ns: u64,
    seen: u64,
    quiet_since: u64,
}

impl HeartbeatCadence {
    pub fn new(interval_ns: u64, now: u64, sent: u64) -> HeartbeatCadence {
        HeartbeatCadence { interval_ns, seen: sent, quiet_since: now }
    }

    /// Whether a heartbeat is due at `now`, given the feed's [`MdFeed::datagrams_sent`].
    pub fn due(&mut self, now: u64, sent: u64) -> bool {
        if sent != self.seen {
            (self.seen, self.quiet_since) = (sent, now);
            false
        } else if now.saturating_sub(self.quiet_since) >= self.interval_ns {
            self.quiet_since = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Session "MD" to 239.1.1.1:9000, 200-byte datagrams, starting at sequence 1.
    fn small_feed() -> MdFeed {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, 1), 9000);
        MdFeed::new(SessionName::new("MD").unwrap(), group, 200, 1 << 16, 1)
    }

    /// MoldUDP64 1.00, "Downstream Packets": a heartbeat has message count 0 and the sequence of the next
    /// message. It announces what was transmitted, and goes out while datagrams wait for their commit.
    #[test]
    fn a_heartbeat_names_the_next_sequence_after_what_was_sent_and_does_not_wait_for_commit() {
        let mut feed = small_feed();
        feed.push(3, 1, &[7u8; 36]);
        feed.push(4, 2, &[7u8; 36]);
        feed.close_packet();
        feed.heartbeat();
        let mut got = Vec::new();
        let mut sink = |_: SocketAddrV4, d: &[u8]| {
            got.push(d.to_vec());
            true
        };
        assert_eq!(feed.release(3, &mut sink), 1, "the packet waits for input 4's commit, the heartbeat does not");
        assert_eq!(feed.release(4, &mut sink), 1);
        feed.heartbeat();
        assert_eq!(feed.release(4, &mut sink), 1);
        assert_eq!(feed.datagrams_sent(), 3);
        let hb = |d: &[u8]| {
            let p = moldudp64::Packet::new_checked(d).unwrap();
            (p.sequence(), p.count())
        };
        // Header: "MD" space-padded to 10, sequence 1, count 0.
        assert_eq!(got[0], [b'M', b'D', b' ', b' ', b' ', b' ', b' ', b' ', b' ', b' ', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(hb(&got[1]), (1, 2));
        assert_eq!(hb(&got[2]), (3, 0), "two messages sent, the next is 3");
        assert_eq!(feed.released_through(), 2);
    }

    /// A heartbeat owed when data goes out anyway is not sent: the data keeps the cadence.
    #[test]
    fn data_going_out_pays_the_heartbeat() {
        let mut feed = small_feed();
        feed.push(1, 1, &[7u8; 36]);
        feed.close_packet();
        feed.heartbeat();
        assert_eq!(feed.release(1, |_, _| true), 1);
        assert_eq!(feed.release(1, |_, _| true), 0);
    }

    /// The cadence counts from the last datagram sent: traffic every half second owes nothing; once the feed
    /// goes quiet, one heartbeat a second, whatever else is produced but not yet sent.
    #[test]
    fn the_cadence_counts_from_the_last_datagram_sent() {
        const S: u64 = 1_000_000_000;
        let mut c = HeartbeatCadence::new(S, 0, 0);
        let due: Vec<bool> = (1..=6u64).map(|k| c.due(k * S / 2, k)).collect();
        assert_eq!(due, [false; 6]);
        // Quiet from 3 s: due at 4 s, then each second; the heartbeats count as sent.
        assert!(!c.due(3 * S + S / 2, 6));
        assert!(c.due(4 * S, 6));
        assert!(!c.due(4 * S + 1_000, 7));
        assert!(!c.due(5 * S, 7));
        assert!(c.due(5 * S + 1_000, 7));
    }

    /// MoldUDP64 1.00, "Downstream Packets": a message count of 0xFFFF is End of Session; its sequence is the
    /// next one. Bytes: session "MD" space-padded to 10, sequence 2 (u64 big-endian), count ff ff.
    #[test]
    fn end_of_session_follows_everything_queued() {
        let mut feed = small_feed();
        feed.push(3, 1, &[7u8; 36]);
        feed.end_of_session();
        let mut got = Vec::new();
        feed.release(3, |_, d| {
            got.push(d.to_vec());
            true
        });
        assert_eq!(got.len(), 2);
        let want: [u8; 20] = [b'M', b'D', b' ', b' ', b' ', b' ', b' ', b' ', b' ', b' ', 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff];
        assert_eq!(got[1], want);
        assert!(moldudp64::Packet::new_checked(&got[1][..]).unwrap().is_end_of_session());
        assert_eq!(feed.released_through(), 1, "End of Session carries no messages");
        feed.heartbeat();
        assert_eq!(feed.release(3, |_, _| true), 0, "nothing after End of Session, not even a heartbeat");
    }

    #[test]
    fn packs_until_the_mtu_and_releases_on_commit() {
        let mut feed = small_feed();
        let msg = [7u8; 36];
        for input in 1..=10u64 {
            feed.push(input, input, &msg);
        }
        feed.close_packet();
        // 200-byte datagrams hold (200 - 20) / 38 = 4 messages.
        let mut got = Vec::new();
        feed.release(5, |_, d| {
            got.push(d.to_vec());
            true
        });
        // The first datagram holds inputs 1..=4, the second 5..=8 (needs 8): only one released at commit 5.
        assert_eq!(got.len(), 1);
        let p = moldudp64::Packet::new_checked(&got[0][..]).unwrap();
        assert_eq!((p.sequence(), p.count()), (1, 4));
        feed.release(10, |_, d| {
            got.push(d.to_vec());
            true
        });
        assert_eq!(got.len(), 3);
        let p = moldudp64::Packet::new_checked(&got[2][..]).unwrap();
        assert_eq!((p.sequence(), p.count()), (9, 2));
        let mut buf = [0u8; 256];
        let request = Request { session: feed.session(), sequence: 3, count: 3 };
        let n = feed.answer(&request, |_| Some(&msg[..]), &mut buf, 256).unwrap();
        let p = moldudp64::Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((p.sequence(), p.count()), (3, 3));
    }
}
