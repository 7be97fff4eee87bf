//! Preallocated rings of the replicated state: the outbound retransmission stores (per session and for market
//! data) and the UserRefNum → first reply index. Both serialise for the exchange's snapshot; reading back checks
//! every field and never panics on damaged bytes.

/// The last `slots` outbound messages of one session, by sequence number, in one flat preallocated buffer.
/// Slot `seq % slots` holds message `seq`; a request for a sequence that has been overwritten is answered from
/// what remains (the firm must then recover from the start of the retained window).
pub struct RetransmitStore {
    bytes: Vec<u8>,
    lens: Vec<u16>,
    seqs: Vec<u64>,
    slot_bytes: usize,
    mask: u64,
}

/// Why a message could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("outbound message of {len} bytes exceeds the retransmission slot of {slot_bytes} bytes")]
pub struct MessageTooLarge {
    pub len: usize,
    pub slot_bytes: usize,
}

impl RetransmitStore {
    pub fn new(slots: usize, slot_bytes: usize) -> RetransmitStore {
        assert!(
            slots.is_power_of_two(),
            "retransmit_slots must be a power of two"
        );
        assert!(slot_bytes <= usize::from(u16::MAX));
        RetransmitStore {
            bytes: vec![0; slots * slot_bytes],
            lens: vec![0; slots],
            seqs: vec![0; slots],
            slot_bytes,
            mask: slots as u64 - 1,
        }
    }

    pub fn put(&mut self, seq: u64, msg: &[u8]) -> Result<(), MessageTooLarge> {
        if msg.len() > self.slot_bytes {
            return Err(MessageTooLarge {
                len: msg.len(),
                slot_bytes: self.slot_bytes,
            });
        }
        let i = (seq & self.mask) as usize;
        let at = i * self.slot_bytes;
        self.bytes[at..at + msg.len()].copy_from_slice(msg);
        self.lens[i] = msg.len() as u16;
        self.seqs[i] = seq;
        Ok(())
    }

    /// Appends the ring's contents (occupied slots only) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let used = self.seqs.iter().filter(|&&s| s != 0).count() as u64;
        out.extend_from_slice(&used.to_le_bytes());
        for (i, &seq) in self.seqs.iter().enumerate() {
            if seq == 0 {
                continue;
            }
            let len = usize::from(self.lens[i]);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&(len as u16).to_le_bytes());
            let at = i * self.slot_bytes;
            out.extend_from_slice(&self.bytes[at..at + len]);
        }
    }

    /// Reads what [`RetransmitStore::write_to`] wrote into this (empty, same-shaped) ring.
    pub fn read_from(&mut self, bytes: &mut &[u8]) -> Option<()> {
        let used = read_u64(bytes)?;
        if used > self.seqs.len() as u64 {
            return None;
        }
        for _ in 0..used {
            let seq = read_u64(bytes)?;
            let len = usize::from(u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?));
            let msg = take(bytes, len)?;
            let i = (seq & self.mask) as usize;
            if seq == 0 || self.seqs[i] != 0 || self.put(seq, msg).is_err() {
                return None;
            }
        }
        Some(())
    }

    /// The stored message `seq`, if it has not been overwritten (sequence numbers start at 1).
    pub fn get(&self, seq: u64) -> Option<&[u8]> {
        let i = (seq & self.mask) as usize;
        if seq == 0 || self.seqs[i] != seq {
            return None;
        }
        let at = i * self.slot_bytes;
        Some(&self.bytes[at..at + usize::from(self.lens[i])])
    }
}

/// UserRefNum → sequence number of the first reply sent for it, in a direct-mapped ring of `n` entries
/// (index `user_ref % n`). A lookup succeeds for any of the last `n` UserRefNums when a firm numbers densely, and
/// for fewer when it skips numbers; a miss is reported as "duplicate, original reply unknown".
pub struct OutcomeRing {
    refs: Vec<u32>,
    seqs: Vec<u64>,
    mask: u32,
}

impl OutcomeRing {
    pub fn new(n: usize) -> OutcomeRing {
        assert!(
            n.is_power_of_two() && n <= 1 << 31,
            "outcomes_max must be a power of two"
        );
        OutcomeRing {
            refs: vec![0; n],
            seqs: vec![0; n],
            mask: n as u32 - 1,
        }
    }

    pub fn record(&mut self, user_ref: u32, seq: u64) {
        let i = (user_ref & self.mask) as usize;
        self.refs[i] = user_ref;
        self.seqs[i] = seq;
    }

    pub fn lookup(&self, user_ref: u32) -> Option<u64> {
        let i = (user_ref & self.mask) as usize;
        // UserRefNum 0 is never valid (they start at 1), so an empty slot never matches.
        (user_ref != 0 && self.refs[i] == user_ref).then_some(self.seqs[i])
    }

    /// Appends the occupied entries to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let used = self.refs.iter().filter(|&&r| r != 0).count() as u64;
        out.extend_from_slice(&used.to_le_bytes());
        for (i, &r) in self.refs.iter().enumerate() {
            if r != 0 {
                out.extend_from_slice(&r.to_le_bytes());
                out.extend_from_slice(&self.seqs[i].to_le_bytes());
            }
        }
    }

    /// Reads what [`OutcomeRing::write_to`] wrote into this (empty, same-sized) ring.
    pub fn read_from(&mut self, bytes: &mut &[u8]) -> Option<()> {
        let used = read_u64(bytes)?;
        if used > self.refs.len() as u64 {
            return None;
        }
        for _ in 0..used {
            let r = u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?);
            let seq = read_u64(bytes)?;
            let i = (r & self.mask) as usize;
            if r == 0 || self.refs[i] != 0 {
                return None;
            }
            self.record(r, seq);
        }
        Some(())
    }
}

/// The next `n` bytes of a snapshot being read, advancing past them (`None` when fewer remain).
pub(crate) fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

/// The next little-endian u64 of a snapshot being read.
pub(crate) fn read_u64(bytes: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_wraps_and_forgets() {
        let mut s = RetransmitStore::new(4, 8);
        for seq in 1..=6u64 {
            s.put(seq, &[seq as u8; 3]).unwrap();
        }
        assert_eq!(s.get(1), None, "overwritten by 5");
        assert_eq!(s.get(2), None, "overwritten by 6");
        assert_eq!(s.get(3), Some(&[3u8, 3, 3][..]));
        assert_eq!(s.get(6), Some(&[6u8, 6, 6][..]));
        assert_eq!(s.get(7), None);
        assert_eq!(s.get(0), None);
        assert_eq!(
            s.put(7, &[0; 9]),
            Err(MessageTooLarge {
                len: 9,
                slot_bytes: 8
            })
        );
    }

    #[test]
    fn rings_round_trip_and_refuse_damage() {
        let mut s = RetransmitStore::new(4, 8);
        let mut o = OutcomeRing::new(4);
        for seq in 1..=6u64 {
            s.put(seq, &[seq as u8; 3]).unwrap();
            o.record(seq as u32 + 10, seq);
        }
        let mut bytes = Vec::new();
        s.write_to(&mut bytes);
        o.write_to(&mut bytes);
        let (mut s2, mut o2) = (RetransmitStore::new(4, 8), OutcomeRing::new(4));
        let mut r = &bytes[..];
        s2.read_from(&mut r).unwrap();
        o2.read_from(&mut r).unwrap();
        assert!(r.is_empty());
        for seq in 0..=7u64 {
            assert_eq!(s2.get(seq), s.get(seq));
            assert_eq!(o2.lookup(seq as u32 + 10), o.lookup(seq as u32 + 10));
        }
        // Every truncation is refused, never a panic.
        for n in 0..bytes.len() {
            let (mut s3, mut o3) = (RetransmitStore::new(4, 8), OutcomeRing::new(4));
            let mut r = &bytes[..n];
            let ok = s3.read_from(&mut r).is_some() && o3.read_from(&mut r).is_some();
            assert!(!ok, "truncated at {n} yet accepted");
        }
    }

    #[test]
    fn outcome_ring_direct_mapped() {
        let mut r = OutcomeRing::new(4);
        r.record(1, 10);
        r.record(2, 11);
        assert_eq!(r.lookup(1), Some(10));
        r.record(5, 12);
        assert_eq!(r.lookup(1), None, "evicted by 5");
        assert_eq!(r.lookup(5), Some(12));
        assert_eq!(r.lookup(0), None);
    }
}
