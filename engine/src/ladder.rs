//! Price ladders: a direct-indexed array of price levels per symbol and side, with a two-level 64-ary occupancy
//! bitmap so that the best and next-best occupied level are found with a couple of `trailing_zeros` /
//! `leading_zeros`, without a tree and without scanning empty levels.
//!
//! ```text
//!   top:   [w0]                      bit t set  <=>  leaf word t is non-zero
//!           |
//!   leaf:  [w0][w1] … [w63]          bit i set  <=>  level 64*word + i holds at least one order
//!           |
//!   levels: 0 1 2 … 4095             each an intrusive FIFO of order handles + aggregate quantity
//! ```
//!
//! One top word covers 4,096 levels; wider ladders get more top words, scanned linearly (still bounded).

use crate::slab::{Order, NIL};

/// An intrusive doubly-linked FIFO of order handles threaded through `Order::next` / `Order::prev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct List {
    pub head: u32,
    pub tail: u32,
    pub count: u32,
}

impl List {
    pub(crate) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        count: 0,
    };

    pub(crate) fn push_back(&mut self, orders: &mut [Order], h: u32) {
        orders[h as usize].next = NIL;
        orders[h as usize].prev = self.tail;
        if self.tail == NIL {
            self.head = h;
        } else {
            orders[self.tail as usize].next = h;
        }
        self.tail = h;
        self.count += 1;
    }

    pub(crate) fn push_front(&mut self, orders: &mut [Order], h: u32) {
        orders[h as usize].prev = NIL;
        orders[h as usize].next = self.head;
        if self.head == NIL {
            self.tail = h;
        } else {
            orders[self.head as usize].prev = h;
        }
        self.head = h;
        self.count += 1;
    }

    pub(crate) fn remove(&mut self, orders: &mut [Order], h: u32) {
        let (prev, next) = (orders[h as usize].prev, orders[h as usize].next);
        if prev == NIL {
            self.head = next;
        } else {
            orders[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            orders[next as usize].prev = prev;
        }
        orders[h as usize].next = NIL;
        orders[h as usize].prev = NIL;
        self.count -= 1;
    }
}

/// One price level: the FIFO of its orders and the sum of their open quantities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub list: List,
    pub qty: u64,
}

impl Level {
    pub(crate) const EMPTY: Level = Level {
        list: List::EMPTY,
        qty: 0,
    };
}

/// Two-level 64-ary occupancy bitmap over `bits` slots.
#[derive(Clone, Debug)]
pub(crate) struct Bitmap {
    top: Vec<u64>,
    leaf: Vec<u64>,
}

impl Bitmap {
    pub fn new(bits: u32) -> Bitmap {
        let leaf_words = (bits as usize).div_ceil(64).max(1);
        let top_words = leaf_words.div_ceil(64);
        Bitmap {
            top: vec![0; top_words],
            leaf: vec![0; leaf_words],
        }
    }

    #[inline]
    pub fn set(&mut self, i: u32) {
        let l = (i / 64) as usize;
        self.leaf[l] |= 1 << (i % 64);
        self.top[l / 64] |= 1 << (l % 64);
    }

    #[inline]
    pub fn clear(&mut self, i: u32) {
        let l = (i / 64) as usize;
        self.leaf[l] &= !(1 << (i % 64));
        if self.leaf[l] == 0 {
            self.top[l / 64] &= !(1 << (l % 64));
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> bool {
        self.leaf
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Lowest set bit.
    #[inline]
    pub fn first(&self) -> Option<u32> {
        for (t, &w) in self.top.iter().enumerate() {
            if w != 0 {
                let l = t * 64 + w.trailing_zeros() as usize;
                return Some((l * 64) as u32 + self.leaf[l].trailing_zeros());
            }
        }
        None
    }

    /// Highest set bit.
    #[inline]
    pub fn last(&self) -> Option<u32> {
        for (t, &w) in self.top.iter().enumerate().rev() {
            if w != 0 {
                let l = t * 64 + 63 - w.leading_zeros() as usize;
                return Some((l * 64) as u32 + 63 - self.leaf[l].leading_zeros());
            }
        }
        None
    }

    /// Lowest set bit `>= i`.
    pub fn next_from(&self, i: u32) -> Option<u32> {
        let l = (i / 64) as usize;
        if l >= self.leaf.len() {
            return None;
        }
        let w = self.leaf[l] & (u64::MAX << (i % 64));
        if w != 0 {
            return Some((l * 64) as u32 + w.trailing_zeros());
        }
        // Next non-empty leaf word strictly after `l`, through the top level.
        let start = l + 1;
        let mut t = start / 64;
        let mut mask = if start.is_multiple_of(64) {
            u64::MAX
        } else {
            u64::MAX << (start % 64)
        };
        while t < self.top.len() {
            let w = self.top[t] & mask;
            if w != 0 {
                let l = t * 64 + w.trailing_zeros() as usize;
                return Some((l * 64) as u32 + self.leaf[l].trailing_zeros());
            }
            t += 1;
            mask = u64::MAX;
        }
        None
    }

    /// Highest set bit `<= i`.
    pub fn prev_from(&self, i: u32) -> Option<u32> {
        let mut l = (i / 64) as usize;
        let mut w = 0;
        if l >= self.leaf.len() {
            l = self.leaf.len();
        } else {
            let keep = i % 64;
            let mask = if keep == 63 {
                u64::MAX
            } else {
                (1u64 << (keep + 1)) - 1
            };
            w = self.leaf[l] & mask;
        }
        if w != 0 {
            return Some((l * 64) as u32 + 63 - w.leading_zeros());
        }
        if l == 0 {
            return None;
        }
        // Previous non-empty leaf word strictly before `l`.
        let end = l - 1;
        let mut t = end / 64;
        let keep = end % 64;
        let mut mask = if keep == 63 {
            u64::MAX
        } else {
            (1u64 << (keep + 1)) - 1
        };
        loop {
            let w = self.top[t] & mask;
            if w != 0 {
                let l = t * 64 + 63 - w.leading_zeros() as usize;
                return Some((l * 64) as u32 + 63 - self.leaf[l].leading_zeros());
            }
            if t == 0 {
                return None;
            }
            t -= 1;
            mask = u64::MAX;
        }
    }

    /// Whether the top level agrees with the leaf level (an invariant).
    pub(crate) fn consistent(&self) -> bool {
        self.leaf.iter().enumerate().all(|(l, &w)| {
            let top_bit = self.top[l / 64] & (1 << (l % 64)) != 0;
            top_bit == (w != 0)
        })
    }
}

/// The levels of one side of one symbol (resting book or stop book).
pub(crate) struct Ladder {
    pub levels: Vec<Level>,
    pub bits: Bitmap,
    /// Orders on the ladder: lets the stop ladders be skipped with one compare when they are empty, instead of a
    /// bitmap scan after every order.
    pub orders: u32,
}

impl Ladder {
    pub(crate) fn new(levels: u32) -> Ladder {
        Ladder {
            levels: vec![Level::EMPTY; levels as usize],
            bits: Bitmap::new(levels),
            orders: 0,
        }
    }

    #[inline]
    pub(crate) fn push_back(&mut self, orders: &mut [Order], idx: u32, h: u32) {
        let qty = orders[h as usize].qty as u64;
        orders[h as usize].slot = idx;
        let level = &mut self.levels[idx as usize];
        level.list.push_back(orders, h);
        level.qty += qty;
        self.bits.set(idx);
        self.orders += 1;
    }

    /// Unlinks `h`; the caller has already subtracted whatever of its quantity it accounted for elsewhere, so
    /// this removes the order's current `qty` from the aggregate.
    #[inline]
    pub(crate) fn remove(&mut self, orders: &mut [Order], idx: u32, h: u32) {
        let qty = orders[h as usize].qty as u64;
        let level = &mut self.levels[idx as usize];
        level.list.remove(orders, h);
        level.qty -= qty;
        self.orders -= 1;
        if level.list.count == 0 {
            self.bits.clear(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bitmap;

    #[test]
    fn first_last_follow_removals_at_word_boundaries() {
        let mut b = Bitmap::new(8192);
        let marks = [0u32, 63, 64, 4095, 4096, 8191];
        for &m in &marks {
            b.set(m);
        }
        assert_eq!(b.first(), Some(0));
        assert_eq!(b.last(), Some(8191));
        for (k, &m) in marks.iter().enumerate() {
            assert_eq!(b.first(), Some(m));
            b.clear(m);
            assert_eq!(b.first(), marks.get(k + 1).copied());
            assert!(b.consistent());
        }
        for &m in &marks {
            b.set(m);
        }
        for (k, &m) in marks.iter().enumerate().rev() {
            assert_eq!(b.last(), Some(m));
            b.clear(m);
            assert_eq!(b.last(), if k == 0 { None } else { Some(marks[k - 1]) });
        }
        assert!(b.first().is_none());
    }

    #[test]
    fn next_and_prev_cross_word_boundaries() {
        let mut b = Bitmap::new(8192);
        for m in [0u32, 63, 64, 4095, 4096, 8191] {
            b.set(m);
        }
        assert_eq!(b.next_from(0), Some(0));
        assert_eq!(b.next_from(1), Some(63));
        assert_eq!(b.next_from(64), Some(64));
        assert_eq!(b.next_from(65), Some(4095));
        assert_eq!(b.next_from(4096), Some(4096));
        assert_eq!(b.next_from(4097), Some(8191));
        assert_eq!(b.next_from(8192), None);
        assert_eq!(b.prev_from(8191), Some(8191));
        assert_eq!(b.prev_from(8190), Some(4096));
        assert_eq!(b.prev_from(4096), Some(4096));
        assert_eq!(b.prev_from(4095), Some(4095));
        assert_eq!(b.prev_from(4094), Some(64));
        assert_eq!(b.prev_from(63), Some(63));
        assert_eq!(b.prev_from(62), Some(0));
        assert_eq!(b.prev_from(100_000), Some(8191));
        b.clear(0);
        assert_eq!(b.prev_from(62), None);
    }

    #[test]
    fn matches_a_naive_set() {
        // A deterministic pseudo-random walk compared against a plain bool array.
        let n = 5000u32;
        let mut b = Bitmap::new(n);
        let mut naive = vec![false; n as usize];
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % n as u64) as u32;
            if naive[i as usize] {
                b.clear(i);
            } else {
                b.set(i);
            }
            naive[i as usize] = !naive[i as usize];
            let q = ((x >> 32) % n as u64) as u32;
            let next = (q..n).find(|&j| naive[j as usize]);
            let prev = (0..=q).rev().find(|&j| naive[j as usize]);
            assert_eq!(b.next_from(q), next);
            assert_eq!(b.prev_from(q), prev);
            assert_eq!(b.first(), naive.iter().position(|&v| v).map(|p| p as u32));
            assert_eq!(b.last(), naive.iter().rposition(|&v| v).map(|p| p as u32));
        }
        assert!(b.consistent());
    }
}
