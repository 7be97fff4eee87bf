//! Pre-trade risk state: cash per account and positions per (account, symbol).
//!
//! A buy locks `qty × lock_price` of cash, a sell locks `qty` shares. Locks are released when quantity leaves the
//! book without trading; a fill moves cash from buyer to seller and shares from seller to buyer, and releases the
//! buyer's lock at its lock price while charging the (never higher) maker price, which refunds price improvement.

use crate::{Cash, FirmId, Qty, SelfTrade};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub exists: bool,
    pub firm: FirmId,
    pub self_trade: SelfTrade,
    pub short_limit: Qty,
    pub max_order_qty: Qty,
    pub max_order_notional: Cash,
    pub cash_total: Cash,
    pub cash_locked: Cash,
}

impl Account {
    pub(crate) const EMPTY: Account = Account {
        exists: false,
        firm: 0,
        self_trade: SelfTrade::CancelNewest,
        short_limit: 0,
        max_order_qty: 0,
        max_order_notional: 0,
        cash_total: 0,
        cash_locked: 0,
    };

    #[inline]
    pub(crate) fn cash_free(&self) -> Cash {
        self.cash_total - self.cash_locked
    }
}

/// Shares held (negative when short, down to `-short_limit`) and shares locked by open sell orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub total: i64,
    pub locked: i64,
}

impl Position {
    pub(crate) const EMPTY: Position = Position {
        total: 0,
        locked: 0,
    };

    /// Whether `qty` more shares may be locked for selling.
    #[inline]
    pub(crate) fn can_lock(&self, qty: u64, short_limit: Qty) -> bool {
        self.locked + qty as i64 <= self.total + short_limit as i64
    }
}
