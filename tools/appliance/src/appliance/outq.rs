//! The commit gate for outputs: replies and market data wait here until the input that caused them is durable.
//!
//! The pipeline encodes every output as soon as the engine emits it, tagged with the sequence number of the input
//! that caused it, and pushes it here. Once the commit index (local durability, and the standby's when mirrored)
//! reaches that sequence number, [`OutQueue::release`] hands the bytes to the transmitter in the order they were
//! pushed. Nothing is acknowledged that a crash could take back.
//!
//! ```text
//!   one entry, 16-byte aligned (so a skip marker always fits), in a preallocated byte ring:
//!   +----------+----------+--------+--------+----------------+---------+
//!   | seq u64  | ip u32   | port   | len    | bytes (len)    | padding |
//!   +----------+----------+--------+--------+----------------+---------+
//!     0          8          12       14       16
//! ```
//!
//! An entry never wraps: when it does not fit before the end of the buffer, a skip marker (len = `SKIP`) fills the
//! rest and the entry starts at offset 0. Full is a value, never a block: the caller stops taking input until
//! commits drain the queue.

use std::net::{Ipv4Addr, SocketAddrV4};

const HEADER_BYTES: usize = 16;
const SKIP: u16 = u16::MAX;

/// No room for the entry until earlier outputs are committed and released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub struct OutQueue {
    buf: Vec<u8>,
    /// Monotonic byte positions; `head - tail` bytes are in use.
    head: usize,
    tail: usize,
    entries: usize,
}

impl OutQueue {
    /// `capacity_bytes` is rounded up to a multiple of 16.
    pub fn new(capacity_bytes: usize) -> OutQueue {
        let cap = capacity_bytes.div_ceil(16) * 16;
        assert!(cap >= 2 * (HEADER_BYTES + 1500), "an output queue must hold at least two datagrams");
        OutQueue { buf: vec![0; cap], head: 0, tail: 0, entries: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes that can still be queued (an entry takes its length plus 16, rounded up to 16, plus wrap waste).
    pub fn free_bytes(&self) -> usize {
        self.buf.len() - (self.head - self.tail)
    }

    /// Sequence number of the oldest waiting output.
    pub fn oldest_seq(&self) -> Option<u64> {
        if self.entries == 0 {
            return None;
        }
        let mut at = self.tail % self.buf.len();
        if self.len_at(at) == SKIP {
            at = 0;
        }
        Some(u64::from_le_bytes(self.buf[at..at + 8].try_into().expect("8 bytes")))
    }

    fn len_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.buf[at + 14], self.buf[at + 15]])
    }

    /// Queues one datagram for `dst`; `fill` writes at most `max_len` bytes and returns the length.
    pub fn push(
        &mut self,
        seq: u64,
        dst: SocketAddrV4,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), Full> {
        assert!(max_len < SKIP as usize);
        let need = (HEADER_BYTES + max_len).div_ceil(16) * 16;
        let cap = self.buf.len();
        let at = self.head % cap;
        // Room to the end of the buffer, and whether we must skip to 0.
        let to_end = cap - at;
        let skip = if to_end < need { to_end } else { 0 };
        if self.head - self.tail + skip + need > cap {
            return Err(Full);
        }
        if skip > 0 {
            self.buf[at + 14..at + 16].copy_from_slice(&SKIP.to_le_bytes());
            self.head += skip;
        }
        let at = self.head % cap;
        let len = fill(&mut self.buf[at + HEADER_BYTES..at + HEADER_BYTES + max_len]);
        assert!(len <= max_len, "fill wrote {len} bytes into a {max_len}-byte slot");
        self.buf[at..at + 8].copy_from_slice(&seq.to_le_bytes());
        self.buf[at + 8..at + 12].copy_from_slice(&u32::from(*dst.ip()).to_be_bytes());
        self.buf[at + 12..at + 14].copy_from_slice(&dst.port().to_le_bytes());
        self.buf[at + 14..at + 16].copy_from_slice(&(len as u16).to_le_bytes());
        self.head += (HEADER_BYTES + len).div_ceil(16) * 16;
        self.entries += 1;
        Ok(())
    }

    /// Hands every output whose seq is at most `committed` to `send`, oldest first, and frees its room. `send`
    /// returns false to stop (the transmitter is full); that output stays queued. Returns how many were released.
    pub fn release(&mut self, committed: u64, mut send: impl FnMut(SocketAddrV4, &[u8]) -> bool) -> usize {
        let cap = self.buf.len();
        let mut released = 0;
        while self.entries > 0 {
            let mut at = self.tail % cap;
            if self.len_at(at) == SKIP {
                self.tail += cap - at;
                at = 0;
            }
            let seq = u64::from_le_bytes(self.buf[at..at + 8].try_into().expect("8 bytes"));
            if seq > committed {
                break;
            }
            let ip = Ipv4Addr::from(u32::from_be_bytes(self.buf[at + 8..at + 12].try_into().expect("4 bytes")));
            let port = u16::from_le_bytes([self.buf[at + 12], self.buf[at + 13]]);
            let len = self.len_at(at) as usize;
            if !send(SocketAddrV4::new(ip, port), &self.buf[at + HEADER_BYTES..at + HEADER_BYTES + len]) {
                break;
            }
            self.tail += (HEADER_BYTES + len).div_ceil(16) * 16;
            self.entries -= 1;
            released += 1;
        }
        if self.entries == 0 {
            // Restart at offset 0 so the next burst is contiguous.
            self.head = 0;
            self.tail = 0;
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), p)
    }

    #[test]
    fn releases_only_committed_outputs_in_push_order() {
        let mut q = OutQueue::new(8192);
        for seq in 1..=5u64 {
            q.push(seq, addr(seq as u16), 100, |b| {
                b[..3].copy_from_slice(&[seq as u8; 3]);
                3
            })
            .unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(q.release(3, |d, b| {
            got.push((d.port(), b.to_vec()));
            true
        }), 3);
        assert_eq!(got, vec![(1, vec![1; 3]), (2, vec![2; 3]), (3, vec![3; 3])]);
        assert_eq!(q.oldest_seq(), Some(4));
        assert_eq!(q.release(10, |_, _| true), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn full_is_a_value_and_wrapping_keeps_order() {
        let mut q = OutQueue::new(4096);
        let mut pushed = 0u64;
        let mut released = Vec::new();
        // Push and release in waves so entries wrap around the end of the buffer many times.
        for wave in 0..50u64 {
            loop {
                let seq = pushed + 1;
                let len = (seq * 37 % 700) as usize;
                match q.push(seq, addr(1), 1_400, |b| {
                    b[..len].fill(seq as u8);
                    len
                }) {
                    Ok(()) => pushed = seq,
                    Err(Full) => break,
                }
            }
            let upto = pushed - wave % 3;
            q.release(upto, |_, b| {
                released.push(b.to_vec());
                true
            });
        }
        q.release(u64::MAX, |_, b| {
            released.push(b.to_vec());
            true
        });
        assert_eq!(released.len() as u64, pushed);
        for (i, b) in released.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(b.len(), (seq * 37 % 700) as usize);
            assert!(b.iter().all(|&x| x == seq as u8));
        }
    }

    #[test]
    fn a_refusing_transmitter_keeps_the_output_queued() {
        let mut q = OutQueue::new(8192);
        q.push(1, addr(1), 10, |_| 1).unwrap();
        q.push(2, addr(2), 10, |_| 1).unwrap();
        let mut n = 0;
        assert_eq!(q.release(9, |_, _| {
            n += 1;
            n < 2
        }), 1);
        assert_eq!(q.oldest_seq(), Some(2));
    }
}
