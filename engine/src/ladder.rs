//! Price ladders: a direct-indexed array of price levels per symbol and side, with a three-level 64-ary occupancy
//! bitmap so that the best and next-best occupied level are found with three `trailing_zeros` /
//! `leading_zeros`, without a tree and without scanning empty levels.
//!
//! ```text
//!   root:  [w0]                      bit r set  <=>  top word r is non-zero
//!           |
//!   top:   [w0][w1] … [w63]          bit t set  <=>  leaf word 64*word + t is non-zero
//!           |
//!   leaf:  [w0][w1] … [w4095]        bit i set  <=>  level 64*word + i holds at least one order
//!           |
//!   levels: 0 1 2 … 262143           each an intrusive FIFO of order handles + aggregate quantity
//! ```
//!
//! One root word covers 262,144 levels, so the search costs the same on any ladder up to that width (with two
//! levels it scanned one top word per 4,096 levels: 64 of them on a 262,144-level ladder); wider ladders get more
//! root words, scanned linearly.

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

/// Three-level 64-ary occupancy bitmap over `bits` slots.
#[derive(Clone, Debug)]
pub(crate) struct Bitmap {
    root: Vec<u64>,
    top: Vec<u64>,
    leaf: Vec<u64>,
}

/// The bits of `w` at positions `>= from` (`from < 64`).
#[inline]
fn at_or_above(w: u64, from: usize) -> u64 {
    w & (u64::MAX << from)
}

/// The bits of `w` at positions `<= to` (`to < 64`).
#[inline]
fn at_or_below(w: u64, to: usize) -> u64 {
    w & (u64::MAX >> (63 - to))
}

impl Bitmap {
    pub fn new(bits: u32) -> Bitmap {
        let leaf_words = (bits as usize).div_ceil(64).max(1);
        let top_words = leaf_words.div_ceil(64);
        Bitmap {
            root: vec![0; top_words.div_ceil(64)],
            top: vec![0; top_words],
            leaf: vec![0; leaf_words],
        }
    }

    #[inline]
    pub fn set(&mut self, i: u32) {
        let l = (i / 64) as usize;
        let t = l / 64;
        self.leaf[l] |= 1 << (i % 64);
        self.top[t] |= 1 << (l % 64);
        self.root[t / 64] |= 1 << (t % 64);
    }

    #[inline]
    pub fn clear(&mut self, i: u32) {
        let l = (i / 64) as usize;
        self.leaf[l] &= !(1 << (i % 64));
        if self.leaf[l] == 0 {
            let t = l / 64;
            self.top[t] &= !(1 << (l % 64));
            if self.top[t] == 0 {
                self.root[t / 64] &= !(1 << (t % 64));
            }
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> bool {
        self.leaf
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Lowest set bit under the non-empty top word `t`.
    #[inline]
    fn first_under(&self, t: usize) -> u32 {
        let l = t * 64 + self.top[t].trailing_zeros() as usize;
        (l * 64) as u32 + self.leaf[l].trailing_zeros()
    }

    /// Highest set bit under the non-empty top word `t`.
    #[inline]
    fn last_under(&self, t: usize) -> u32 {
        let l = t * 64 + 63 - self.top[t].leading_zeros() as usize;
        (l * 64) as u32 + 63 - self.leaf[l].leading_zeros()
    }

    /// Lowest set bit. One root word covers 262,144 slots, so a ladder that wide is three `trailing_zeros`.
    #[inline]
    pub fn first(&self) -> Option<u32> {
        let (r, &w) = self.root.iter().enumerate().find(|(_, &w)| w != 0)?;
        Some(self.first_under(r * 64 + w.trailing_zeros() as usize))
    }

    /// Highest set bit.
    #[inline]
    pub fn last(&self) -> Option<u32> {
        let (r, &w) = self.root.iter().enumerate().rev().find(|(_, &w)| w != 0)?;
        Some(self.last_under(r * 64 + 63 - w.leading_zeros() as usize))
    }

    /// Lowest set bit `>= i`.
    pub fn next_from(&self, i: u32) -> Option<u32> {
        let l = (i / 64) as usize;
        if l >= self.leaf.len() {
            return None;
        }
        let w = at_or_above(self.leaf[l], (i % 64) as usize);
        if w != 0 {
            return Some((l * 64) as u32 + w.trailing_zeros());
        }
        // A later leaf word under the same top word.
        let t = l / 64;
        if l % 64 < 63 {
            let w = at_or_above(self.top[t], l % 64 + 1);
            if w != 0 {
                let l = t * 64 + w.trailing_zeros() as usize;
                return Some((l * 64) as u32 + self.leaf[l].trailing_zeros());
            }
        }
        // A later top word, through the root.
        let t = t + 1;
        let mut r = t / 64;
        let mut w = self.root.get(r).map_or(0, |&w| at_or_above(w, t % 64));
        loop {
            if w != 0 {
                return Some(self.first_under(r * 64 + w.trailing_zeros() as usize));
            }
            r += 1;
            w = *self.root.get(r)?;
        }
    }

    /// Highest set bit `<= i`.
    pub fn prev_from(&self, i: u32) -> Option<u32> {
        let l = (i / 64) as usize;
        if l >= self.leaf.len() {
            return self.last();
        }
        let w = at_or_below(self.leaf[l], (i % 64) as usize);
        if w != 0 {
            return Some((l * 64) as u32 + 63 - w.leading_zeros());
        }
        // An earlier leaf word under the same top word.
        let t = l / 64;
        if !l.is_multiple_of(64) {
            let w = at_or_below(self.top[t], l % 64 - 1);
            if w != 0 {
                let l = t * 64 + 63 - w.leading_zeros() as usize;
                return Some((l * 64) as u32 + 63 - self.leaf[l].leading_zeros());
            }
        }
        // An earlier top word, through the root.
        let t = t.checked_sub(1)?;
        let mut r = t / 64;
        let mut w = at_or_below(self.root[r], t % 64);
        loop {
            if w != 0 {
                return Some(self.last_under(r * 64 + 63 - w.leading_zeros() as usize));
            }
            r = r.checked_sub(1)?;
            w = self.root[r];
        }
    }

    /// Whether each level agrees with the one below it (an invariant).
    pub(crate) fn consistent(&self) -> bool {
        let tops = self.leaf.iter().enumerate().all(|(l, &w)| {
            let top_bit = self.top[l / 64] & (1 << (l % 64)) != 0;
            top_bit == (w != 0)
        });
        let roots = self.top.iter().enumerate().all(|(t, &w)| {
            let root_bit = self.root[t / 64] & (1 << (t % 64)) != 0;
            root_bit == (w != 0)
        });
        tops && roots
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

    #[test]
    fn wide_bitmaps_match_an_ordered_set_across_root_words() {
        // 600,000 slots: three root words. Sparse marks, so most searches cross top words and root words.
        let n = 600_000u32;
        let mut b = Bitmap::new(n);
        let mut naive = std::collections::BTreeSet::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..40_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Clustered near the word boundaries half of the time: 262,143 / 262,144 and 4,095 / 4,096 matter most.
            let i = if step % 2 == 0 {
                let base = [0u32, 4_095, 4_096, 262_143, 262_144, 524_287, 524_288, n - 1][(x % 8) as usize];
                base.saturating_add(((x >> 8) % 3) as u32).min(n - 1)
            } else {
                (x % n as u64) as u32
            };
            if !naive.remove(&i) {
                naive.insert(i);
                b.set(i);
            } else {
                b.clear(i);
            }
            let q = ((x >> 32) % (n as u64 + 10)) as u32;
            assert_eq!(b.next_from(q), naive.range(q..).next().copied(), "next_from({q})");
            assert_eq!(b.prev_from(q), naive.range(..=q).next_back().copied(), "prev_from({q})");
            assert_eq!(b.first(), naive.first().copied());
            assert_eq!(b.last(), naive.last().copied());
            assert_eq!(b.get(q), naive.contains(&q));
        }
        assert!(b.consistent());
        for i in std::mem::take(&mut naive) {
            b.clear(i);
        }
        assert!(b.first().is_none() && b.last().is_none() && b.consistent());
    }
}
