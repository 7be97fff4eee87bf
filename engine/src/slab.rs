//! The order slab: every order the engine will ever hold lives in one `Vec<Order>` sized once at start-up.
//!
//! A handle is the `u32` index of a slot. An [`OrderRef`] is `generation << 32 | index`: the generation is bumped
//! whenever a slot is released or its order is re-entered under a new reference, so a stale reference never finds a
//! newer order and references stay unique for the life of the engine (until a slot's 32-bit generation wraps).

use crate::{OrderKind, OrderRef, Side, TimeInForce};

/// The "no handle" marker of the intrusive lists.
pub(crate) const NIL: u32 = u32::MAX;

/// Where an order currently is. Every allocated order is in exactly one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    Free = 0,
    /// Being processed by the current input; never visible between inputs.
    Transient = 1,
    Book = 2,
    Stop = 3,
    Queue = 4,
}

impl Loc {
    pub(crate) fn from_u8(v: u8) -> Option<Loc> {
        Some(match v {
            0 => Loc::Free,
            1 => Loc::Transient,
            2 => Loc::Book,
            3 => Loc::Stop,
            4 => Loc::Queue,
            _ => return None,
        })
    }
}

/// One order. `qty` is the open (leaves) quantity; `lock_price` is the cash locked per open share of a buy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub gen: u32,
    pub next: u32,
    pub prev: u32,
    pub account: u32,
    pub user_ref: u32,
    pub qty: u32,
    /// Shares of the order's order/replace chain executed so far: a replace names the chain's total liable
    /// quantity (OUCH 5.0 section 2.2), so the new open quantity is that total less this.
    pub executed: u32,
    pub price: u32,
    pub stop_price: u32,
    pub lock_price: u32,
    /// Ladder slot of the level holding the order (book: price, stop book: stop price), set by
    /// `Ladder::push_back`, so that removal needs no division.
    pub slot: u32,
    pub session: u16,
    pub symbol: u16,
    pub side: Side,
    pub kind: OrderKind,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub loc: Loc,
    /// In the (session, UserRefNum) table. An incoming order enters it only when it outlives its input (rests,
    /// waits for its stop or in a halt queue): one that fills or is canceled at once can never be named by a later
    /// cancel or replace, so it costs the table nothing.
    pub indexed: bool,
}

impl Order {
    pub(crate) const EMPTY: Order = Order {
        gen: 0,
        next: NIL,
        prev: NIL,
        account: 0,
        user_ref: 0,
        qty: 0,
        executed: 0,
        price: 0,
        stop_price: 0,
        lock_price: 0,
        slot: 0,
        session: 0,
        symbol: 0,
        side: Side::Buy,
        kind: OrderKind::Limit,
        tif: TimeInForce::Day,
        post_only: false,
        loc: Loc::Free,
        indexed: false,
    };
}

pub(crate) struct Slab {
    pub orders: Vec<Order>,
    /// Free handles as a stack; its capacity is the slab size, so pushes never reallocate.
    pub free: Vec<u32>,
    /// One past the highest handle allocated (since start or restore): every open order is below it. Fresh handles leave the stack
    /// in increasing order and freed ones are reused first, so this stays near the most orders ever open at once
    /// and a scan of the open orders need not cross the whole slab.
    pub high_water: u32,
}

impl Slab {
    pub(crate) fn new(orders_max: u32) -> Slab {
        let n = orders_max as usize;
        let orders = vec![Order::EMPTY; n];
        let mut free = Vec::with_capacity(n);
        // Reversed so that the first allocation gets handle 0: easier to read in tests.
        free.extend((0..orders_max).rev());
        Slab {
            orders,
            free,
            high_water: 0,
        }
    }

    pub(crate) fn alloc(&mut self) -> Option<u32> {
        let h = self.free.pop()?;
        self.orders[h as usize].loc = Loc::Transient;
        self.high_water = self.high_water.max(h + 1);
        Some(h)
    }

    pub(crate) fn release(&mut self, h: u32) {
        let o = &mut self.orders[h as usize];
        debug_assert!(o.loc != Loc::Free);
        o.gen = o.gen.wrapping_add(1);
        o.loc = Loc::Free;
        o.next = NIL;
        o.prev = NIL;
        debug_assert!(self.free.len() < self.free.capacity());
        self.free.push(h);
    }

    #[inline]
    pub(crate) fn order_ref(&self, h: u32) -> OrderRef {
        ((self.orders[h as usize].gen as u64) << 32) | h as u64
    }

    /// The open orders with their handles.
    pub(crate) fn open(&self) -> impl Iterator<Item = (u32, &Order)> {
        self.orders[..self.high_water as usize]
            .iter()
            .enumerate()
            .filter(|(_, o)| o.loc != Loc::Free)
            .map(|(h, o)| (h as u32, o))
    }

    /// The handle an exchange reference names, if that order is still open.
    pub(crate) fn lookup(&self, r: OrderRef) -> Option<u32> {
        let h = r as u32;
        let o = self.orders.get(h as usize)?;
        (o.gen == (r >> 32) as u32 && o.loc != Loc::Free).then_some(h)
    }
}
