//! The market-data feed: ITCH 5.0 messages packed into MoldUDP64 datagrams for the group, held until committed.
//!
//! Messages get consecutive MoldUDP64 sequence numbers as the engine emits them and are packed into the current
//! datagram; a datagram is closed when the next message does not fit or at the end of a burst, and queued in its own
//! [`OutQueue`] tagged with the highest input seq that contributed to it, so it goes out only once that input is
//! committed. Every message is also kept in a fixed retransmission ring that answers MoldUDP64 request packets.
//!
//! At start-up the feed is rebuilt from the journal before any live message ([`MdFeed::push_recovered`], driven by
//! [`super::mdreplay`]): the numbering continues where the node that journaled those inputs left off, and the ring
//! answers for messages published before a restart or failover.

use std::net::SocketAddrV4;

use bourse_nic::session::store::RetransmitStore;
use bourse_nic::wire::alpha::SessionName;
use bourse_nic::wire::moldudp64::{self, Header, Request, BLOCK_PREFIX_LEN, HEADER_LEN};

use super::outq::{Full, OutQueue};

/// The largest ITCH message (Stock Directory, 39 bytes) rounded up.
const ITCH_MESSAGE_BYTES_MAX: usize = 64;

pub struct MdFeed {
    session: SessionName,
    group: SocketAddrV4,
    payload_max_bytes: usize,
    /// Sequence number the next message gets.
    next_sequence: u64,
    /// The datagram being filled: header room, then length-prefixed blocks.
    packet: Vec<u8>,
    packet_first: u64,
    packet_count: u16,
    packet_input_seq: u64,
    store: RetransmitStore,
    queue: OutQueue,
    released_through: u64,
    /// Datagrams refused because the queue was full (the pipeline's backpressure should keep this at 0).
    pub overflows: u64,
}

impl MdFeed {
    pub fn new(
        session: SessionName,
        group: SocketAddrV4,
        payload_max_bytes: usize,
        retransmit_messages: usize,
        queue_bytes: usize,
    ) -> MdFeed {
        assert!(payload_max_bytes >= HEADER_LEN + BLOCK_PREFIX_LEN + ITCH_MESSAGE_BYTES_MAX);
        MdFeed {
            session,
            group,
            payload_max_bytes,
            next_sequence: 1,
            packet: Vec::with_capacity(payload_max_bytes),
            packet_first: 1,
            packet_count: 0,
            packet_input_seq: 0,
            store: RetransmitStore::new(retransmit_messages.next_power_of_two(), ITCH_MESSAGE_BYTES_MAX),
            queue: OutQueue::new(queue_bytes),
            released_through: 0,
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

    /// Appends one ITCH message caused by input `input_seq`.
    pub fn push(&mut self, input_seq: u64, msg: &[u8]) {
        debug_assert!(msg.len() <= ITCH_MESSAGE_BYTES_MAX);
        if self.packet_count > 0 && HEADER_LEN + self.packet.len() + BLOCK_PREFIX_LEN + msg.len() > self.payload_max_bytes
        {
            self.close_packet();
        }
        if self.packet_count == 0 {
            self.packet.clear();
            self.packet_first = self.next_sequence;
        }
        self.packet.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.packet.extend_from_slice(msg);
        self.packet_count += 1;
        self.packet_input_seq = self.packet_input_seq.max(input_seq);
        // Cannot fail: every ITCH message fits a slot.
        let _ = self.store.put(self.next_sequence, msg);
        self.next_sequence += 1;
    }

    /// Numbers and stores one ITCH message rebuilt from the journal at start-up, without queueing it: it was
    /// published before the restart, or its input was journaled but not yet released, and recovery has now made it
    /// part of the committed state. Receivers that missed it ask the retransmission server, which serves it at once.
    pub fn push_recovered(&mut self, msg: &[u8]) {
        assert!(self.packet_count == 0 && self.queue.is_empty(), "the journal is replayed before live traffic");
        debug_assert!(msg.len() <= ITCH_MESSAGE_BYTES_MAX);
        // Cannot fail: every ITCH message fits a slot.
        let _ = self.store.put(self.next_sequence, msg);
        self.released_through = self.next_sequence;
        self.next_sequence += 1;
    }

    /// The retained message `sequence`, whether or not it has been transmitted yet.
    pub fn stored(&self, sequence: u64) -> Option<&[u8]> {
        self.store.get(sequence)
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
            // Messages stay in the retransmission store; receivers recover the gap by request.
            self.overflows += 1;
        }
        self.packet_count = 0;
        self.packet.clear();
    }

    /// Queues a MoldUDP64 heartbeat: a packet with no messages carrying the next sequence number, so a receiver
    /// that lost the last packet before a quiet spell (or before a failover) sees the gap and asks for it. It
    /// follows everything already queued and is released with it.
    pub fn heartbeat(&mut self) {
        self.close_packet();
        let header = Header { session: self.session, sequence: self.next_sequence, count: 0 };
        let pushed = self.queue.push(self.packet_input_seq, self.group, HEADER_LEN, |buf| {
            let _ = header.emit(buf);
            HEADER_LEN
        });
        if let Err(Full) = pushed {
            self.overflows += 1;
        }
    }

    /// Transmits every queued datagram whose inputs are committed.
    pub fn release(&mut self, committed: u64, mut send: impl FnMut(SocketAddrV4, &[u8]) -> bool) -> usize {
        let released = &mut self.released_through;
        self.queue.release(committed, |dst, datagram| {
            if !send(dst, datagram) {
                return false;
            }
            if let Ok(p) = moldudp64::Packet::new_checked(datagram) {
                if p.count() > 0 {
                    *released = p.sequence() + u64::from(p.count()) - 1;
                }
            }
            true
        })
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Answers a MoldUDP64 request packet from the retransmission ring into `buf`; returns the datagram length.
    /// Messages not yet transmitted are never served: their inputs may not be committed.
    pub fn answer(&self, request: &Request, buf: &mut [u8]) -> usize {
        let committed_md_sequence = self.released_through;
        let Ok(mut pk) = moldudp64::Packer::new(buf, self.session, self.payload_max_bytes) else {
            return 0;
        };
        pk.begin(request.sequence);
        let end = request.sequence.saturating_add(u64::from(request.count)).min(committed_md_sequence + 1);
        for seq in request.sequence..end {
            let Some(m) = self.store.get(seq) else { break };
            if pk.push(m).is_err() {
                break;
            }
        }
        pk.finish().len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_heartbeat_names_the_next_sequence_after_what_is_queued() {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, 1), 9000);
        let mut feed = MdFeed::new(SessionName::new("MD").unwrap(), group, 200, 1024, 1 << 16);
        feed.push(3, &[7u8; 36]);
        feed.push(4, &[7u8; 36]);
        feed.heartbeat();
        let mut got = Vec::new();
        assert_eq!(feed.release(3, |_, d| { got.push(d.to_vec()); true }), 0, "waits for its inputs' commit");
        feed.release(4, |_, d| {
            got.push(d.to_vec());
            true
        });
        assert_eq!(got.len(), 2);
        let hb = moldudp64::Packet::new_checked(&got[1][..]).unwrap();
        assert_eq!((hb.sequence(), hb.count()), (3, 0), "two messages sent, the next is 3");
        assert_eq!(feed.released_through(), 2);
    }

    #[test]
    fn packs_until_the_mtu_and_releases_on_commit() {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, 1), 9000);
        let mut feed = MdFeed::new(SessionName::new("MD").unwrap(), group, 200, 1024, 1 << 16);
        let msg = [7u8; 36];
        for input in 1..=10u64 {
            feed.push(input, &msg);
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
        let n = feed.answer(&Request { session: feed.session(), sequence: 3, count: 3 }, &mut buf);
        let p = moldudp64::Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((p.sequence(), p.count()), (3, 3));
    }
}
