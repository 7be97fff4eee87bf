//! Engine order references → the day-unique Order Reference Numbers published in ITCH and OUCH.
//!
//! The engine names an order `generation << 32 | slot` so that a stale reference can never reach a newer order in
//! the same slot. Those values are not what a feed handler expects: TotalView-ITCH 5.0 section 1.3 calls the Order
//! Reference Number "day-unique", and handlers size their tables by it (one dropped reference 0 and every reference
//! at or above 2^36). So each order gets the next number of a counter starting at 1 when the engine first reports
//! it (Accepted, or Replaced for the new reference of a replace), and every later event finds it by slot.
//!
//! ```text
//!   slot s:  current (engine ref, number, hidden)   previous (engine ref, number, hidden)
//! ```
//!
//! A replace bumps the slot's generation and reports the new reference before the events naming the old one
//! (BookReplace, or Canceled + BookDelete), so each slot keeps the reference it held before as well. The table is
//! replicated state: it is written into the exchange snapshot and rebuilt by replay like everything else, so a
//! restarted or promoted node publishes the same numbers. Sized once; nothing allocates after
//! [`OrderRefs::with_slots`].

use bourse_engine::OrderRef;

use crate::appliance::store::{read_u64 as take_u64, take};

/// What one engine reference is published as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Day-unique Order Reference Number (from 1).
    pub number: u64,
    /// Display 'N': the order never appears in Add Order, and its executions are reported as Trade 'P'.
    pub hidden: bool,
    /// The order sells (an Add Order for it, when a replace makes it displayed, needs its side).
    pub sell: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    engine_ref: OrderRef,
    published: Published,
}

/// No engine reference is `u64::MAX` (the slot index would be `u32::MAX`, beyond any capacity).
const NONE: Entry = Entry { engine_ref: u64::MAX, published: Published { number: 0, hidden: false, sell: false } };

/// Bytes of one entry in the snapshot: engine ref, number, flags (bit 0 hidden, bit 1 sell).
const ENTRY_BYTES: usize = 17;

pub struct OrderRefs {
    current: Vec<Entry>,
    previous: Vec<Entry>,
    /// The last number given out (0 before the first order of the day).
    last_number: u64,
    /// Engine references seen with no number (none should be: counted, and given a fresh number so that what is
    /// published stays unique).
    pub unmapped: u64,
}

impl OrderRefs {
    /// A table for engine slots `0..slots` (the engine's `orders_max`).
    pub fn with_slots(slots: usize) -> OrderRefs {
        OrderRefs { current: vec![NONE; slots], previous: vec![NONE; slots], last_number: 0, unmapped: 0 }
    }

    pub fn slots(&self) -> usize {
        self.current.len()
    }

    /// The last number given out.
    pub fn last_number(&self) -> u64 {
        self.last_number
    }

    /// Gives `engine_ref` the next number (an order the engine just reported first).
    pub fn assign(&mut self, engine_ref: OrderRef, hidden: bool, sell: bool) -> Published {
        self.last_number += 1;
        let published = Published { number: self.last_number, hidden, sell };
        if let Some(i) = self.index(engine_ref) {
            self.previous[i] = self.current[i];
            self.current[i] = Entry { engine_ref, published };
        }
        published
    }

    /// What `engine_ref` is published as; a reference never assigned is counted and given a fresh number.
    pub fn get(&mut self, engine_ref: OrderRef) -> Published {
        if let Some(i) = self.index(engine_ref) {
            for e in [self.current[i], self.previous[i]] {
                if e.engine_ref == engine_ref {
                    return e.published;
                }
            }
        }
        self.unmapped += 1;
        self.assign(engine_ref, false, false)
    }

    fn index(&self, engine_ref: OrderRef) -> Option<usize> {
        let i = (engine_ref & 0xffff_ffff) as usize;
        (i < self.current.len()).then_some(i)
    }

    /// Serialises the table (for the exchange snapshot).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.current.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.last_number.to_le_bytes());
        for e in self.current.iter().chain(&self.previous) {
            out.extend_from_slice(&e.engine_ref.to_le_bytes());
            out.extend_from_slice(&e.published.number.to_le_bytes());
            out.push(u8::from(e.published.hidden) | (u8::from(e.published.sell) << 1));
        }
    }

    /// Restores what [`OrderRefs::write_to`] wrote; `None` when the bytes do not fit this table or are not a
    /// table (a number above the last one given out, an unknown flag).
    pub fn read_from(&mut self, bytes: &mut &[u8]) -> Option<()> {
        if take_u64(bytes)? != self.current.len() as u64 {
            return None;
        }
        let last = take_u64(bytes)?;
        let slots = self.current.len();
        for i in 0..2 * slots {
            let b = take(bytes, ENTRY_BYTES)?;
            let engine_ref = u64::from_le_bytes(b[..8].try_into().ok()?);
            let number = u64::from_le_bytes(b[8..16].try_into().ok()?);
            if number > last || b[16] > 3 {
                return None;
            }
            let e = Entry { engine_ref, published: Published { number, hidden: b[16] & 1 == 1, sell: b[16] & 2 == 2 } };
            if i < slots {
                self.current[i] = e;
            } else {
                self.previous[i - slots] = e;
            }
        }
        self.last_number = last;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_start_at_one_and_survive_a_replace_in_the_same_slot() {
        let mut r = OrderRefs::with_slots(4);
        let a = 3; // generation 0, slot 3
        assert_eq!(r.assign(a, false, false), Published { number: 1, hidden: false, sell: false });
        let b = (1 << 32) | 3; // the replace's new reference, same slot
        assert_eq!(r.assign(b, true, true), Published { number: 2, hidden: true, sell: true });
        assert_eq!(r.get(a).number, 1, "the old reference is still known for BookReplace");
        assert_eq!(r.get(b).number, 2);
        assert_eq!(r.unmapped, 0);
        assert_eq!(r.get(7).number, 3, "an unknown reference gets a fresh number");
        assert_eq!(r.unmapped, 1);
    }

    #[test]
    fn the_table_round_trips_and_refuses_another_size() {
        let mut r = OrderRefs::with_slots(4);
        r.assign(1, false, false);
        r.assign((5 << 32) | 2, true, true);
        let mut bytes = Vec::new();
        r.write_to(&mut bytes);
        let mut back = OrderRefs::with_slots(4);
        back.read_from(&mut &bytes[..]).unwrap();
        assert_eq!((back.last_number(), back.get((5 << 32) | 2)), (2, Published { number: 2, hidden: true, sell: true }));
        assert!(OrderRefs::with_slots(8).read_from(&mut &bytes[..]).is_none());
    }
}
