//! Inputs to the engine.
//!
//! Every input is sequenced before it reaches the engine: [`Input`] carries the global sequence number and the
//! sequencer's timestamp, so the engine never reads a clock and replay is deterministic. All fields are fixed-width
//! integers so that the write-ahead log can store a command as a fixed-size record body.

/// Price in integer ticks with 4 implied decimals, as in Nasdaq's specifications ($1.00 = 10_000).
pub type Price = u32;
/// Quantity in shares.
pub type Qty = u32;
/// Cash in units of 1/10_000 of a currency unit (price ticks × shares).
pub type Cash = i64;
/// Exchange order reference number, unique for the life of the engine (ITCH "Order Reference Number").
pub type OrderRef = u64;
/// Account identifier, assigned by configuration (dense: `0..accounts_max`).
pub type AccountId = u32;
/// Firm identifier: self-trade prevention compares firms.
pub type FirmId = u16;
/// Symbol identifier (ITCH "Stock Locate"), dense: `0..symbols_max`.
pub type SymbolId = u16;
/// Order-entry session identifier, dense: `0..sessions_max`.
pub type SessionId = u16;
/// OUCH 5.0 UserRefNum: strictly increasing per session, the idempotency key of an order.
pub type UserRef = u32;
/// Sequencer time in nanoseconds (since midnight of the trading day, as ITCH timestamps).
pub type Nanos = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// What triggers and prices the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// Rests at `price` for the remaining quantity (unless IOC/FOK).
    Limit,
    /// Executes against the book up to the symbol's market collar; never rests.
    Market,
    /// Becomes a market order when the last trade reaches `stop_price`.
    Stop,
    /// Becomes a limit order at `price` when the last trade reaches `stop_price`.
    StopLimit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Rests until canceled or the trading day ends (GTC in exchange-core terms).
    Day,
    /// Immediate or cancel: executes what it can, cancels the rest.
    Ioc,
    /// Fill or kill: executes in full at once or not at all.
    Fok,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NewOrder {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub account: AccountId,
    pub symbol: SymbolId,
    pub side: Side,
    pub kind: OrderKind,
    pub tif: TimeInForce,
    /// Rejected instead of executing if it would take liquidity on entry.
    pub post_only: bool,
    pub qty: Qty,
    /// Limit price (Limit, StopLimit); ignored for Market and Stop.
    pub price: Price,
    /// Trigger price (Stop, StopLimit); ignored otherwise.
    pub stop_price: Price,
}

/// Cancel (`qty == 0`) or reduce an order to `qty` remaining shares (OUCH Cancel Order's "intended quantity").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cancel {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub qty: Qty,
}

/// OUCH Modify Order (section 2.4): reduce an order to `qty` open shares keeping its time priority, and mark its
/// side anew (sell, short, short exempt). `side` must be the order's side (a change between buy and sell is
/// ignored); `side_code` is the gateway's marking, opaque here and reported back in [`crate::Event::Modified`].
/// A `qty` above the open quantity is ignored ("Increasing share amount is not allowed").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Modify {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub qty: Qty,
    pub side: Side,
    pub side_code: u8,
}

/// Cancel-replace: the order `orig_user_ref` becomes `new_user_ref` with a new price and quantity. Time priority is
/// kept only when the price is unchanged and the quantity not increased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Replace {
    pub session: SessionId,
    pub orig_user_ref: UserRef,
    pub new_user_ref: UserRef,
    pub qty: Qty,
    pub price: Price,
}

/// Percent bands around the reference price, in basis points, tiered by reference price as in the US LULD plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bands {
    /// Band (bps) for reference prices above `tier_high_price`: 5 % = 500.
    pub high_bps: u32,
    /// Band (bps) for reference prices in `[tier_low_price, tier_high_price]`: 10 % = 1000.
    pub mid_bps: u32,
    /// Band (bps) below `tier_low_price`: 20 % = 2000.
    pub low_bps: u32,
    pub tier_high_price: Price,
    pub tier_low_price: Price,
    /// How long a single-symbol halt lasts, in sequencer nanoseconds.
    pub halt_ns: Nanos,
}

impl Bands {
    pub const DEFAULT: Bands = Bands {
        high_bps: 500,
        mid_bps: 1_000,
        low_bps: 2_000,
        tier_high_price: 50 * 10_000,
        tier_low_price: 3 * 10_000,
        halt_ns: 5 * 60 * 1_000_000_000,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddSymbol {
    pub symbol: SymbolId,
    /// Opening or previous-close price: the centre of the circuit-breaker bands.
    pub reference_price: Price,
    /// Lowest price of the direct-indexed ladder; the ladder spans `Capacity::levels_per_symbol` ticks from here.
    pub ladder_min_price: Price,
    /// Price step between ladder slots (ticks per slot).
    pub tick: Price,
    pub bands: Bands,
    /// Market orders are collared this many bps through the best opposite price (a buy locks at the collar).
    pub market_collar_bps: u32,
    /// Weight of this symbol in the market-wide index (0 = not in the index).
    pub index_weight: u32,
}

/// Self-trade prevention: what happens when an incoming order would trade against a resting order of its own firm.
/// The incoming order's account decides (the appliance configures it per firm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SelfTrade {
    /// The firm's orders trade with each other like anyone else's.
    Allow,
    /// The incoming order's remainder is canceled; the resting order stays.
    #[default]
    CancelNewest,
    /// The resting order is canceled and the incoming order goes on matching behind it.
    CancelOldest,
    /// Both are canceled.
    CancelBoth,
}

impl SelfTrade {
    pub const ALL: [SelfTrade; 4] =
        [SelfTrade::Allow, SelfTrade::CancelNewest, SelfTrade::CancelOldest, SelfTrade::CancelBoth];

    /// The journal's and the snapshot's code: 0 is the default, so records written before the choice existed
    /// (a zero reserved byte) keep their meaning.
    pub fn code(self) -> u8 {
        match self {
            SelfTrade::CancelNewest => 0,
            SelfTrade::Allow => 1,
            SelfTrade::CancelOldest => 2,
            SelfTrade::CancelBoth => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<SelfTrade> {
        SelfTrade::ALL.into_iter().find(|m| m.code() == code)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddAccount {
    pub account: AccountId,
    pub firm: FirmId,
    pub self_trade: SelfTrade,
    /// Shares per symbol this account may sell beyond what it holds (0 = no short selling).
    pub short_limit: Qty,
    pub max_order_qty: Qty,
    /// Maximum notional of one order in cash units (price × qty).
    pub max_order_notional: Cash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deposit {
    pub account: AccountId,
    /// May be negative (withdrawal); a withdrawal beyond free cash is rejected.
    pub amount: Cash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DepositShares {
    pub account: AccountId,
    pub symbol: SymbolId,
    pub qty: Qty,
}

/// Bind an order-entry session to the firm and account it trades for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindSession {
    pub session: SessionId,
    pub account: AccountId,
}

/// Operator halt or resume of one symbol; `until == 0` means until resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetHalt {
    pub symbol: SymbolId,
    pub halted: bool,
    pub until: Nanos,
}

/// Market-wide circuit breaker: index reference value (Σ weight × reference price) and halt durations per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarketBreaker {
    /// Percent falls (bps) that trigger level 1, 2, 3: 10 %, 15 %, 20 % = 1000, 1500, 2000.
    pub level_bps: [u32; 3],
    /// Halt durations for each level in ns; `0` means the rest of the day.
    pub halt_ns: [Nanos; 3],
}

impl MarketBreaker {
    pub const DEFAULT: MarketBreaker = MarketBreaker {
        level_bps: [1_000, 1_500, 2_000],
        halt_ns: [45 * 60 * 1_000_000_000, 105 * 60 * 1_000_000_000, 0],
    };
}

/// The trading day's bounds, as the market-data feed announces them (TotalView-ITCH 5.0 section 1.1 System Event
/// codes). The engine changes nothing but time; what is published for them is the translator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarketHours {
    /// Start of day: start of messages, the symbol directory, start of system and market hours. The market's
    /// offset from UTC that day (seconds east, -18 h..=18 h) is journaled with it, so every node numbers the day's
    /// OUCH and ITCH timestamps from the same local midnight whatever its own time-zone data says.
    Open { utc_offset_s: i32 },
    /// End of day: end of market hours, end of system hours, end of messages.
    Close,
}

/// A message the order-entry gateway refused before it reached matching (an unknown symbol, an order type the
/// venue does not take …), journaled like any other input so that the refusal's reply is sequenced in the
/// session's outbound stream deterministically: replaying the journal reproduces it byte for byte. The engine
/// changes nothing but time and reports it back as [`crate::Event::Refused`]. `reason` is the gateway's code,
/// opaque here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refuse {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub reason: u16,
    /// The refused message introduced `user_ref` (an Enter or Replace Order): the session has used it up.
    pub introduces_ref: bool,
}

/// OUCH Mass Cancel Request (section 2.5): cancel every open order of the session — on a book, in a stop book or
/// in a halt queue — or only those of `symbol` and/or `side`. `user_ref` is the request's own UserRefNum, which
/// must exceed every one the session used (as a new order's). Orders are canceled symbol by symbol: the buy book
/// best price first, the sell book best price first, the buy then the sell stop book from the lowest stop price,
/// then the halt queue, FIFO within a price; [`crate::Event::MassCanceled`] follows the last cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MassCancel {
    pub session: SessionId,
    pub user_ref: UserRef,
    /// Only this symbol's orders (a symbol that does not exist has none).
    pub symbol: Option<SymbolId>,
    pub side: Option<Side>,
}

/// OUCH Disable / Enable Order Entry Request (sections 2.6, 2.7): while disabled, the session's new orders are
/// rejected with [`crate::RejectReason::EntryDisabled`]; cancels, modifies and replaces of its open orders go on.
/// `user_ref` is the request's own UserRefNum, as for [`MassCancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetOrderEntry {
    pub session: SessionId,
    pub user_ref: UserRef,
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    NewOrder(NewOrder),
    Cancel(Cancel),
    Replace(Replace),
    Modify(Modify),
    AddSymbol(AddSymbol),
    AddAccount(AddAccount),
    Deposit(Deposit),
    DepositShares(DepositShares),
    BindSession(BindSession),
    SetHalt(SetHalt),
    SetMarketBreaker(MarketBreaker),
    /// Advances sequencer time only: expires halts and releases queued orders.
    Tick,
    Refuse(Refuse),
    /// Start or end of the trading day on the feed.
    MarketHours(MarketHours),
    MassCancel(MassCancel),
    SetOrderEntry(SetOrderEntry),
    /// OUCH Account Query (section 2.8) from `session`: changes nothing; journaled so that its answer, which the
    /// gateway's replicated session state gives, takes its place in the session's outbound stream on every node.
    AccountQuery(SessionId),
}

/// One sequenced input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Input {
    /// Global sequence number, strictly increasing by one per accepted input.
    pub seq: u64,
    /// Sequencer time; never decreases.
    pub timestamp: Nanos,
    pub command: Command,
}
