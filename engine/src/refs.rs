//! (session, UserRefNum) → order handle: a preallocated open-addressing table with linear probing and
//! backward-shift deletion (no tombstones, so probe sequences never degrade over a long day).
//!
//! The table has at least twice as many slots as the engine has orders, so its load factor stays ≤ 0.5 and an
//! insert always finds a free slot.
//!
//! Sized for the appliance (2 × `orders_max` slots: 32 MiB at a million orders), the table is far larger than the
//! cache, and a hash that scatters every key makes every insert a miss. A session's UserRefNums rise one by one
//! (OUCH 5.0 section 2.2), so the home slot keeps four consecutive references of a session in consecutive slots
//! (one cache line): only the first of each group misses, and groups still scatter, so runs stay short. A table
//! small enough to stay in cache keeps plain scattering.

use crate::{SessionId, UserRef};

const EMPTY: u64 = u64::MAX;
/// Consecutive UserRefNums of one session sharing a run of home slots: four 16-byte slots fill a cache line.
const GROUP_BITS: u32 = 2;
/// Below this many slots (1 MiB) the table stays in cache and plain scattering probes shorter: no grouping.
const GROUP_FROM_SLOTS: usize = 1 << 16;

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    handle: u32,
}

pub(crate) struct RefTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
    group_bits: u32,
}

#[inline]
fn key(session: SessionId, user_ref: UserRef) -> u64 {
    ((session as u64) << 32) | user_ref as u64
}

impl RefTable {
    pub(crate) fn new(orders_max: u32) -> RefTable {
        let slots_count = ((orders_max as usize) * 2).next_power_of_two().max(16);
        RefTable {
            slots: vec![
                Slot {
                    key: EMPTY,
                    handle: 0
                };
                slots_count
            ],
            mask: slots_count - 1,
            len: 0,
            group_bits: if slots_count >= GROUP_FROM_SLOTS {
                GROUP_BITS
            } else {
                0
            },
        }
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
        // Bounded: the table is never full, so an empty slot ends every probe.
        for _ in 0..self.slots.len() {
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

    /// Inserts a key known to be absent. Returns false only if the table is full (cannot happen while the
    /// table holds at most `orders_max` entries).
    pub(crate) fn insert(&mut self, session: SessionId, user_ref: UserRef, handle: u32) -> bool {
        if self.len + 1 >= self.slots.len() {
            return false;
        }
        let k = key(session, user_ref);
        let mut i = self.home(k);
        loop {
            if self.slots[i].key == EMPTY {
                self.slots[i] = Slot { key: k, handle };
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
            let home = self.home(s.key);
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
    use super::RefTable;
    use std::collections::HashMap;

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
