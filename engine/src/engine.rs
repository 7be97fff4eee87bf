//! The engine: state and `apply`. (Signatures fixed; bodies are being written.)

use crate::{Capacity, Cash, EventSink, Input, Price, Qty, SymbolId, AccountId};

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    Truncated { offset: usize },
    BadMagic,
    BadVersion(u32),
    /// A field holds a value no engine could have written (e.g. a handle outside capacity).
    Corrupt { offset: usize, what: &'static str },
}

/// Read-only view of an account's risk state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub cash_total: Cash,
    pub cash_locked: Cash,
}

/// Read-only view of one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionView {
    pub total: i64,
    pub locked: Qty,
}

pub struct Engine {
    _cap: Capacity,
}

impl Engine {
    /// Allocates everything the engine will ever use.
    pub fn new(cap: Capacity) -> Engine {
        todo!("{cap:?}")
    }
    pub fn capacity(&self) -> Capacity {
        todo!()
    }
    /// Applies one sequenced input. Inputs with `seq <= last_seq()` are ignored (replay idempotency).
    pub fn apply<S: EventSink>(&mut self, input: &Input, out: &mut S) {
        todo!("{input:?} {}", core::any::type_name_of_val(out))
    }
    /// Sequence number of the last input applied (0 before any).
    pub fn last_seq(&self) -> u64 {
        todo!()
    }
    /// Serialises the whole state (off the hot path: allocation allowed).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        todo!("{}", out.len())
    }
    /// Rebuilds an engine from [`Engine::snapshot`] output.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        todo!("{}", bytes.len())
    }
    /// A hash of the full logical state: equal engines hash equal.
    pub fn state_hash(&self) -> u64 {
        todo!()
    }
    pub fn account(&self, account: AccountId) -> Option<AccountView> {
        todo!("{account}")
    }
    pub fn position(&self, account: AccountId, symbol: SymbolId) -> Option<PositionView> {
        todo!("{account} {symbol}")
    }
    pub fn best_bid(&self, symbol: SymbolId) -> Option<(Price, Qty)> {
        todo!("{symbol}")
    }
    pub fn best_ask(&self, symbol: SymbolId) -> Option<(Price, Qty)> {
        todo!("{symbol}")
    }
    /// Orders resting on books, in stop books and in halt queues.
    pub fn orders_open(&self) -> u32 {
        todo!()
    }
    /// Checks every structural and money invariant; `Err` names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        todo!()
    }
}
