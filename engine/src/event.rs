//! Outputs of the engine, delivered through an [`EventSink`] in the order they happen.

use crate::command::*;

/// Why an input was refused. Every variant is reachable and has a test that provokes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    UnknownSymbol,
    UnknownAccount,
    /// The session is not bound to an account.
    UnknownSession,
    /// UserRefNum not greater than the last one this session used.
    UserRefNotIncreasing,
    ZeroQuantity,
    QuantityTooLarge,
    NotionalTooLarge,
    /// Price outside the symbol's ladder, not a multiple of its tick, or zero for a priced order.
    InvalidPrice,
    InvalidStopPrice,
    InsufficientFunds,
    InsufficientShares,
    /// Post-only order would have taken liquidity.
    WouldTakeLiquidity,
    /// FOK could not be filled in full at once.
    FokUnfillable,
    /// Market order with no opposite liquidity to price its collar.
    NoLiquidity,
    /// The order book, stop book, halt queue or index table is at its configured capacity.
    CapacityExhausted,
    /// Admin input naming an id outside the configured capacity or already in use.
    InvalidAdmin,
    /// Replace that changes nothing, or a market/stop order that cannot be replaced.
    InvalidReplace,
    /// Order type not allowed in the current state (e.g. market order while halted).
    Halted,
    /// The session disabled its own order entry ([`crate::SetOrderEntry`]) and has not enabled it again.
    EntryDisabled,
}

/// Why resting quantity left the book without trading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The firm asked for it.
    UserRequested,
    /// IOC remainder, or market order remainder beyond its collar.
    ImmediateOrCancel,
    /// Self-trade prevention canceled the incoming (newest) order.
    SelfTrade,
    /// Replaced by a new order (the cancel half of cancel-replace that loses priority).
    Replaced,
}

/// Why a cancel or replace changed nothing without being refused (OUCH 5.0 sections 2.2 and 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// The session has no open order with that UserRefNum (never entered, executed, canceled or replaced).
    UnknownOrder,
    /// A cancel whose intended size is not below the open quantity, or a modify asking for more shares.
    NotReduced,
    /// A modify changing an order between buy and sell.
    SideChange,
    /// A mass cancel or an order-entry switch whose UserRefNum is not above the last one the session used: a
    /// retransmission, which changes nothing (OUCH 5.0 section 2: inbound messages "may be repeated benignly").
    NotIncreasing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TradingState {
    Trading,
    Halted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HaltReason {
    /// An execution would have printed outside the symbol's band.
    PriceBand,
    /// Market-wide index breaker at level 1, 2 or 3.
    MarketWide(u8),
    Operator,
    /// The halt timed out (with Trading) or was lifted by the operator.
    Resumed,
}

/// One side of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Party {
    pub order_ref: OrderRef,
    pub session: SessionId,
    pub user_ref: UserRef,
    pub account: AccountId,
    /// Quantity still open on this order after the execution.
    pub leaves_qty: Qty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The order entered the engine. `queued` = it arrived during a halt and waits in the halt queue.
    Accepted {
        order_ref: OrderRef,
        session: SessionId,
        user_ref: UserRef,
        account: AccountId,
        symbol: SymbolId,
        side: Side,
        kind: OrderKind,
        tif: TimeInForce,
        qty: Qty,
        price: Price,
        queued: bool,
    },
    Rejected {
        session: SessionId,
        user_ref: UserRef,
        reason: RejectReason,
    },
    /// Admin input refused (no session to answer).
    AdminRejected { seq: u64, reason: RejectReason },
    Executed {
        symbol: SymbolId,
        match_number: u64,
        price: Price,
        qty: Qty,
        /// The resting order.
        maker: Party,
        /// The incoming order.
        taker: Party,
        taker_side: Side,
    },
    Canceled {
        order_ref: OrderRef,
        session: SessionId,
        user_ref: UserRef,
        symbol: SymbolId,
        side: Side,
        /// Quantity removed by this cancel.
        canceled_qty: Qty,
        /// Quantity still open afterwards (non-zero for a reduce).
        leaves_qty: Qty,
        reason: CancelReason,
    },
    Replaced {
        old_ref: OrderRef,
        new_ref: OrderRef,
        session: SessionId,
        orig_user_ref: UserRef,
        new_user_ref: UserRef,
        symbol: SymbolId,
        side: Side,
        /// The new open quantity: the replace's total liable quantity less what the chain executed.
        qty: Qty,
        price: Price,
    },
    /// A [`crate::Modify`] took effect: the order keeps its reference and priority; `canceled_qty` may be 0 (a
    /// marking change only).
    Modified {
        order_ref: OrderRef,
        session: SessionId,
        user_ref: UserRef,
        symbol: SymbolId,
        side: Side,
        side_code: u8,
        canceled_qty: Qty,
        leaves_qty: Qty,
    },
    /// A visible order now rests on the book (ITCH 'A').
    BookAdd {
        order_ref: OrderRef,
        symbol: SymbolId,
        side: Side,
        price: Price,
        qty: Qty,
    },
    /// Resting quantity reduced without trading (ITCH 'X').
    BookReduce {
        order_ref: OrderRef,
        symbol: SymbolId,
        canceled_qty: Qty,
    },
    /// Resting order removed without trading (ITCH 'D').
    BookDelete {
        order_ref: OrderRef,
        symbol: SymbolId,
    },
    /// A resting order replaced in place or re-entered (ITCH 'U').
    BookReplace {
        old_ref: OrderRef,
        new_ref: OrderRef,
        symbol: SymbolId,
        price: Price,
        qty: Qty,
    },
    TradingAction {
        symbol: SymbolId,
        state: TradingState,
        reason: HaltReason,
    },
    StopTriggered {
        order_ref: OrderRef,
        session: SessionId,
        user_ref: UserRef,
        symbol: SymbolId,
        /// The last trade price that triggered it.
        trigger_price: Price,
    },
    /// An admin input took effect.
    AdminApplied { seq: u64 },
    /// A cancel or replace with nothing to act on; nothing changed and OUCH answers nothing (it is counted).
    Ignored { session: SessionId, user_ref: UserRef, reason: IgnoreReason },
    /// A [`crate::Refuse`] input: the gateway refused the message; nothing else changed.
    Refused { session: SessionId, user_ref: UserRef, reason: u16 },
    /// A [`crate::MassCancel`] done: `canceled` orders were canceled before it, each reported as `Canceled`
    /// (`UserRequested`) and, when on a book, `BookDelete`.
    MassCanceled { session: SessionId, user_ref: UserRef, canceled: u32 },
    /// A [`crate::SetOrderEntry`] took effect (also when the session was already in that state).
    OrderEntrySet { session: SessionId, user_ref: UserRef, enabled: bool },
}

/// Where the engine puts its events. The appliance's sink encodes straight into transmit slots, so an
/// implementation must not allocate.
pub trait EventSink {
    fn event(&mut self, event: &Event);
}

impl EventSink for Vec<Event> {
    fn event(&mut self, event: &Event) {
        self.push(*event);
    }
}

/// Discards events (benchmarks that measure matching alone).
pub struct NullSink;

impl EventSink for NullSink {
    #[inline]
    fn event(&mut self, _event: &Event) {}
}

/// Counts events and hashes them (FNV-1a over their debug-free field encoding) for determinism checks.
#[derive(Default)]
pub struct HashSink {
    pub events: u64,
    pub trades: u64,
    pub hash: u64,
}

impl EventSink for HashSink {
    #[inline]
    fn event(&mut self, event: &Event) {
        use core::hash::{Hash, Hasher};
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        if self.events == 0 {
            self.hash = 0xcbf2_9ce4_8422_2325;
        }
        let mut h = Fnv(self.hash);
        event.hash(&mut h);
        self.hash = h.finish();
        self.events += 1;
        if matches!(event, Event::Executed { .. }) {
            self.trades += 1;
        }
    }
}
