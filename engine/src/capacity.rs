//! Every limit the engine allocates for, fixed at start-up.

/// Sizes of the engine's preallocated arrays. Nothing grows after [`crate::Engine::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capacity {
    /// Resting plus stopped plus halt-queued orders, all symbols together.
    pub orders_max: u32,
    pub symbols_max: u16,
    pub accounts_max: u32,
    pub sessions_max: u16,
    /// Width of each side's direct-indexed price ladder, in ticks.
    pub levels_per_symbol: u32,
    /// Orders waiting in one symbol's halt queue.
    pub halt_queue_max: u32,
    /// Executions one incoming order may cause before its remainder is canceled (bounds every loop).
    pub matches_per_order_max: u32,
}

impl Capacity {
    /// Small limits for tests.
    pub const SMALL: Capacity = Capacity {
        orders_max: 4_096,
        symbols_max: 8,
        accounts_max: 64,
        sessions_max: 64,
        levels_per_symbol: 2_048,
        halt_queue_max: 256,
        matches_per_order_max: 1_024,
    };
}
