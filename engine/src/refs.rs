//! (session, UserRefNum) → order handle: a preallocated open-addressing table with linear probing and
//! backward-shift deletion (no tombstones, so probe sequences never degrade over a long day).
//!
//! The slots for the engine's whole capacity (2 × `orders_max`: 32 MiB at a million orders) are allocated at
//! start-up, but only a power-of-two prefix of them is in use, sized to the live book: at most half full, and
//! never smaller than [`MIN_ACTIVE`]. A table sized for capacity while a few thousand orders rest spreads them over
//! far more memory than the cache holds, and every insert, lookup and removal misses (a profile of the GBM
//! workload put the table's misses at about a third of the engine's time). The engine grows the prefix between
//! inputs, rebuilding it from the order slab ([`RefTable::reset_for`]); it never shrinks, so a day's growth costs
//! at most log2(capacity / [`MIN_ACTIVE`]) rebuilds, each linear in the orders then open.
//!
//! Once the prefix is larger than the cache anyway, a hash that scatters every key makes every insert a miss. A
//! session's UserRefNums rise one by one (OUCH 5.0 section 2.2), so the home slot then keeps four consecutive
//! references of a session in consecutive slots (one cache line): only the first of each group misses, and groups
//! still scatter, so runs stay short. A prefix small enough to stay in cache keeps plain scattering.

use crate::{SessionId, UserRef};

const EMPTY: u64 = u64::MAX;
/// Consecutive UserRefNums of one session sharing a run of home slots: four 16-byte slots fill a cache line.
const GROUP_BITS: u32 = 2;
/// Below this many slots (1 MiB) the table stays in cache and plain scattering probes shorter: no grouping.
const GROUP_FROM_SLOTS: usize = 1 << 16;
/// The smallest prefix in use: 4,096 slots (64 KiB), so a small book never rebuilds.
pub(crate) const MIN_ACTIVE: usize = 1 << 12;

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    handle: u32,
    /// The key's home slot under the current prefix, kept in what would be padding so that a removal's backward
    /// shift does not hash every key it passes.
    home: u32,
}

pub(crate) struct RefTable {
    /// Every slot the table may ever use; only `slots[..=mask]` is in use.
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
    group_bits: u32,
}

#[inline]
fn key(session: SessionId, user_ref: UserRef) -> u64 {
    ((session as u64) << 32) | user_ref as u64
}

fn group_bits_for(active: usize) -> u32 {
    if active >= GROUP_FROM_SLOTS {
        GROUP_BITS
    } else {
        0
    }
}

impl RefTable {
    pub(crate) fn new(orders_max: u32) -> RefTable {
        let slots_count = ((orders_max as usize) * 2).next_power_of_two().max(16);
        let active = slots_count.min(MIN_ACTIVE);
        RefTable {
            slots: vec![
                Slot {
                    key: EMPTY,
                    handle: 0,
                    home: 0,
                };
                slots_count
            ],
            mask: active - 1,
            len: 0,
            group_bits: group_bits_for(active),
        }
    }

    #[inline]
    fn active(&self) -> usize {
        self.mask + 1
    }

    /// Whether one more insert would leave the prefix in use more than half full while a larger one is free.
    #[inline]
    pub(crate) fn wants_growth(&self) -> bool {
        (self.len + 1) * 2 > self.active() && self.active() < self.slots.len()
    }

    /// Empties the table and sizes the prefix in use for `entries` keys at most half full (within the capacity);
    /// the caller inserts them again.
    pub(crate) fn reset_for(&mut self, entries: usize) {
        let active = (entries.max(1) * 2)
            .next_power_of_two()
            .clamp(MIN_ACTIVE.min(self.slots.len()), self.slots.len());
        let used = self.active().max(active);
        for s in &mut self.slots[..used] {
            s.key = EMPTY;
        }
        self.mask = active - 1;
        self.len = 0;
        self.group_bits = group_bits_for(active);
    }

    #[inline]
    fn home(&self, k: u64) -> usize {
        // Fibonacci hashing of (session, UserRefNum >> group_bits) picks the group; the low bits keep its order.
        let g = self.group_bits;
        let group = (k >> g).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((group << g) as usize | (k as usize & ((1 << g) - 1))) & self.mask
    }

    pub(crate) fn get(&self, session: SessionId, user_ref: UserRef) -> Option<u32> {
        let k = key(session, user_ref);
        let mut i = self.home(k);
        // Bounded: the prefix is never full, so an empty slot ends every probe.
        for _ in 0..self.active() {
            let s = self.slots[i];
            if s.key == k {
                return Some(s.handle);
            }
            if s.key == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Inserts a key known to be absent. Returns false only if the prefix in use is full (cannot happen while
    /// the engine grows it before it passes half full).
    pub(crate) fn insert(&mut self, session: SessionId, user_ref: UserRef, handle: u32) -> bool {
        if self.len + 1 >= self.active() {
            return false;
        }
        let k = key(session, user_ref);
        let home = self.home(k);
        let mut i = home;
        loop {
            if self.slots[i].key == EMPTY {
                self.slots[i] = Slot {
                    key: k,
                    handle,
                    home: home as u32,
                };
                self.len += 1;
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    pub(crate) fn remove(&mut self, session: SessionId, user_ref: UserRef) -> bool {
        let k = key(session, user_ref);
        let mut i = self.home(k);
        loop {
            let s = self.slots[i];
            if s.key == EMPTY {
                return false;
            }
            if s.key == k {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift: pull later members of the cluster into the hole when their home allows it.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let s = self.slots[j];
            if s.key == EMPTY {
                break;
            }
            let home = s.home as usize;
            // `s` may move to `hole` iff its home is not cyclically within (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole].key = EMPTY;
        self.len -= 1;
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::{RefTable, MIN_ACTIVE};
    use std::collections::HashMap;

    #[test]
    fn prefix_in_use_doubles_at_half_full_up_to_the_capacity() {
        let mut t = RefTable::new(16_384);
        assert_eq!((t.active(), t.slots.len()), (MIN_ACTIVE, 32_768));
        let mut grown = Vec::new();
        for r in 0..16_384u32 {
            if t.wants_growth() {
                let keys: Vec<u32> = (0..r).collect();
                t.reset_for(keys.len() + 1);
                for &k in &keys {
                    assert!(t.insert(1, k, k));
                }
                grown.push(t.active());
            }
            assert!(t.len() * 2 < t.active(), "more than half full at {r}");
            assert!(t.insert(1, r, r));
        }
        assert_eq!(grown, [8_192, 16_384, 32_768]);
        assert!(!t.wants_growth(), "no growth past the capacity");
        assert!((0..16_384).all(|r| t.get(1, r) == Some(r)));
        // A table whose capacity is below the smallest prefix uses all of it from the start.
        let small = RefTable::new(100);
        assert_eq!(small.active(), small.slots.len());
        assert!(!small.wants_growth());
    }

    #[test]
    fn agrees_with_a_hashmap_under_churn() {
        let mut t = RefTable::new(64);
        let mut m = HashMap::new();
        let mut x = 99u64;
        for step in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = (x % 4) as u16;
            let r = ((x >> 8) % 200) as u32;
            if let std::collections::hash_map::Entry::Vacant(e) = m.entry((s, r)) {
                if t.len() < 64 {
                    assert!(t.insert(s, r, step));
                    e.insert(step);
                }
            } else {
                assert!(t.remove(s, r));
                m.remove(&(s, r));
            }
            assert_eq!(t.len(), m.len());
            let (qs, qr) = (((x >> 20) % 4) as u16, ((x >> 30) % 200) as u32);
            assert_eq!(t.get(qs, qr), m.get(&(qs, qr)).copied());
        }
    }

    #[test]
    fn agrees_with_a_hashmap_when_references_rise_per_session() {
        // The grouped home slots put consecutive UserRefNums side by side: removal must still close every hole.
        let mut t = RefTable::new(1 << 15);
        let mut m = std::collections::BTreeMap::new();
        let mut next = [0u32; 8];
        let mut x = 7u64;
        for step in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = (x % 8) as u16;
            if m.len() < 256 && !(x >> 10).is_multiple_of(3) {
                next[s as usize] += 1;
                assert!(t.insert(s, next[s as usize], step));
                m.insert((s, next[s as usize]), step);
            } else if let Some(&(rs, rr)) = m.keys().nth(((x >> 20) as usize) % m.len().max(1)) {
                assert!(t.remove(rs, rr));
                m.remove(&(rs, rr));
            }
            assert_eq!(t.len(), m.len());
            let (qs, qr) = (((x >> 30) % 8) as u16, next[((x >> 30) % 8) as usize].saturating_sub(((x >> 40) % 300) as u32));
            assert_eq!(t.get(qs, qr), m.get(&(qs, qr)).copied());
        }
    }
}
