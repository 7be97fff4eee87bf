//! WAL records: one per accepted [`Input`], a whole number of cache lines.
//!
//! ```text
//!  byte 0       4       8               16              24      26      28      32
//!       +-------+-------+---------------+---------------+-------+-------+-------+----------------------------+
//!       | crc32c| length|      seq      |   timestamp   | kind  | rsvd  | epoch | body (Pod struct per kind) |
//!       |  u32  |  u32  |      u64      |      u64      |  u16  |  u16  |  u32  | zero-padded to `length`    |
//!       +-------+-------+---------------+---------------+-------+-------+-------+----------------------------+
//!       \_ written last, as one 8-byte release store _/
//!       \_______________ crc32c covers bytes [4, length): everything after the crc field _______________/
//! ```
//!
//! `length` is the whole record in bytes, a multiple of 64: a new order, cancel, replace, deposit, bind or tick is
//! one cache line (32-byte header + at most 32 bytes of body); `AddSymbol` and `SetMarketBreaker` take two. A slot
//! whose `crc|length` word is zero has not been written (segments are preallocated zero-filled), which is how the
//! reader finds the end of the log. Bodies are `#[repr(C)]` structs with explicit padding, stored in the host's byte
//! order (little-endian: asserted at compile time), so encoding is a copy.
//!
//! Orders and replaces from firms carry the fields their replies must echo (ClOrdID, side code, time in force,
//! display, capacity …) as an opaque [`Echo`]: those kinds ([`RecordKind::OrderEchoed`],
//! [`RecordKind::ReplaceEchoed`]) take two cache lines, because what a firm sees of its orders is derived from the
//! journal and nothing else. A gateway refusal ([`RecordKind::Refuse`]) is journaled too, in one line, so that its
//! reply takes its place in the session's outbound sequence on every replay. A firm's Mass Cancel
//! ([`RecordKind::MassCancel`]) and order-entry switch ([`RecordKind::SetOrderEntry`]) keep an echo too (the
//! request's Firm, Symbol and options, which their responses repeat), each in one line; an Account Query
//! ([`RecordKind::AccountQuery`]) is one line with the session alone.
//!
//! Decoding validates everything — length, CRC, kind, every enum byte and every reserved byte — and returns a typed
//! [`RecordError`] instead of panicking on any input (fuzzed in `persist/fuzz`).

use bourse_engine::{
    AddAccount, AddSymbol, Bands, BindSession, Cancel, Command, Deposit, DepositShares, Input, MarketBreaker,
    MarketHours, MassCancel, Modify, NewOrder, OrderKind, Refuse, Replace, SelfTrade, SetHalt, SetOrderEntry, Side,
    TimeInForce,
};
use bytemuck::{Pod, Zeroable};

/// Bytes of the record header.
pub const HEADER_BYTES: usize = 32;
/// Records are whole cache lines.
pub const RECORD_ALIGN_BYTES: usize = 64;
/// The largest record (two cache lines).
pub const RECORD_BYTES_MAX: usize = 128;
/// Bytes of the opaque fields a reply echoes (the appliance lays them out; the journal only keeps them).
pub const ECHO_BYTES: usize = 20;
/// The fields a firm's replies echo, journaled with its order and opaque to the journal.
pub type Echo = [u8; ECHO_BYTES];

const _: () = assert!(cfg!(target_endian = "little"), "records are stored little-endian, as the host writes them");
const _: () = assert!(RECORD_BYTES_MAX.is_multiple_of(RECORD_ALIGN_BYTES));

/// The record header as stored.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
#[repr(C)]
pub struct RecordHeader {
    pub crc: u32,
    pub length: u32,
    pub seq: u64,
    pub timestamp: u64,
    pub kind: u16,
    pub reserved: u16,
    pub epoch: u32,
}
const _: () = assert!(core::mem::size_of::<RecordHeader>() == HEADER_BYTES);

/// Which command a record holds. The numbers are on disk: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RecordKind {
    NewOrder = 1,
    Cancel = 2,
    Replace = 3,
    AddSymbol = 4,
    AddAccount = 5,
    Deposit = 6,
    DepositShares = 7,
    BindSession = 8,
    SetHalt = 9,
    SetMarketBreaker = 10,
    Tick = 11,
    /// A new order with the fields its replies echo.
    OrderEchoed = 12,
    /// A replace with the fields its replies echo.
    ReplaceEchoed = 13,
    /// A message the gateway refused, with its echo.
    Refuse = 14,
    /// An OUCH Modify Order (15 is another kind's number).
    Modify = 16,
    /// Start or end of the trading day on the market-data feed.
    MarketHours = 17,
    /// An OUCH Mass Cancel Request, with its echo.
    MassCancel = 18,
    /// An OUCH Disable or Enable Order Entry Request, with its echo.
    SetOrderEntry = 19,
    /// An OUCH Account Query Request.
    AccountQuery = 20,
}

/// Number of record kinds (for per-kind counters indexed by [`RecordKind::index`]).
pub const KINDS_COUNT: usize = 19;

impl RecordKind {
    pub const ALL: [RecordKind; KINDS_COUNT] = [
        RecordKind::NewOrder,
        RecordKind::Cancel,
        RecordKind::Replace,
        RecordKind::AddSymbol,
        RecordKind::AddAccount,
        RecordKind::Deposit,
        RecordKind::DepositShares,
        RecordKind::BindSession,
        RecordKind::SetHalt,
        RecordKind::SetMarketBreaker,
        RecordKind::Tick,
        RecordKind::OrderEchoed,
        RecordKind::ReplaceEchoed,
        RecordKind::Refuse,
        RecordKind::Modify,
        RecordKind::MarketHours,
        RecordKind::MassCancel,
        RecordKind::SetOrderEntry,
        RecordKind::AccountQuery,
    ];

    pub fn from_u16(v: u16) -> Option<RecordKind> {
        RecordKind::ALL.iter().copied().find(|k| *k as u16 == v)
    }

    /// This kind's position in [`RecordKind::ALL`] (per-kind counters), which the numbers no longer equal once
    /// one is skipped.
    pub fn index(self) -> usize {
        RecordKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The kind `command` is journaled as, with its echo or without.
    pub fn of_entry(command: &Command, echoed: bool) -> RecordKind {
        match (command, echoed) {
            (Command::NewOrder(_), true) => RecordKind::OrderEchoed,
            (Command::Replace(_), true) => RecordKind::ReplaceEchoed,
            _ => RecordKind::of(command),
        }
    }

    pub fn of(command: &Command) -> RecordKind {
        match command {
            Command::NewOrder(_) => RecordKind::NewOrder,
            Command::Cancel(_) => RecordKind::Cancel,
            Command::Replace(_) => RecordKind::Replace,
            Command::AddSymbol(_) => RecordKind::AddSymbol,
            Command::AddAccount(_) => RecordKind::AddAccount,
            Command::Deposit(_) => RecordKind::Deposit,
            Command::DepositShares(_) => RecordKind::DepositShares,
            Command::BindSession(_) => RecordKind::BindSession,
            Command::SetHalt(_) => RecordKind::SetHalt,
            Command::SetMarketBreaker(_) => RecordKind::SetMarketBreaker,
            Command::Tick => RecordKind::Tick,
            Command::Refuse(_) => RecordKind::Refuse,
            Command::Modify(_) => RecordKind::Modify,
            Command::MarketHours(_) => RecordKind::MarketHours,
            Command::MassCancel(_) => RecordKind::MassCancel,
            Command::SetOrderEntry(_) => RecordKind::SetOrderEntry,
            Command::AccountQuery(_) => RecordKind::AccountQuery,
        }
    }

    /// Whether records of this kind carry an [`Echo`].
    pub const fn carries_echo(self) -> bool {
        matches!(
            self,
            RecordKind::OrderEchoed
                | RecordKind::ReplaceEchoed
                | RecordKind::Refuse
                | RecordKind::MassCancel
                | RecordKind::SetOrderEntry
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::NewOrder => "new_order",
            RecordKind::Cancel => "cancel",
            RecordKind::Replace => "replace",
            RecordKind::AddSymbol => "add_symbol",
            RecordKind::AddAccount => "add_account",
            RecordKind::Deposit => "deposit",
            RecordKind::DepositShares => "deposit_shares",
            RecordKind::BindSession => "bind_session",
            RecordKind::SetHalt => "set_halt",
            RecordKind::SetMarketBreaker => "set_market_breaker",
            RecordKind::Tick => "tick",
            RecordKind::OrderEchoed => "order",
            RecordKind::ReplaceEchoed => "replace_order",
            RecordKind::Refuse => "refuse",
            RecordKind::Modify => "modify",
            RecordKind::MarketHours => "market_hours",
            RecordKind::MassCancel => "mass_cancel",
            RecordKind::SetOrderEntry => "set_order_entry",
            RecordKind::AccountQuery => "account_query",
        }
    }

    /// Size of this kind's body struct in bytes.
    pub const fn body_bytes(self) -> usize {
        match self {
            RecordKind::NewOrder => core::mem::size_of::<NewOrderBody>(),
            RecordKind::Cancel => core::mem::size_of::<CancelBody>(),
            RecordKind::Replace => core::mem::size_of::<ReplaceBody>(),
            RecordKind::AddSymbol => core::mem::size_of::<AddSymbolBody>(),
            RecordKind::AddAccount => core::mem::size_of::<AddAccountBody>(),
            RecordKind::Deposit => core::mem::size_of::<DepositBody>(),
            RecordKind::DepositShares => core::mem::size_of::<DepositSharesBody>(),
            RecordKind::BindSession => core::mem::size_of::<BindSessionBody>(),
            RecordKind::SetHalt => core::mem::size_of::<SetHaltBody>(),
            RecordKind::SetMarketBreaker => core::mem::size_of::<MarketBreakerBody>(),
            RecordKind::Tick => 0,
            RecordKind::OrderEchoed => core::mem::size_of::<OrderEchoedBody>(),
            RecordKind::ReplaceEchoed => core::mem::size_of::<ReplaceEchoedBody>(),
            RecordKind::Refuse => core::mem::size_of::<RefuseBody>(),
            RecordKind::Modify => core::mem::size_of::<ModifyBody>(),
            RecordKind::MarketHours => core::mem::size_of::<MarketHoursBody>(),
            RecordKind::MassCancel => core::mem::size_of::<MassCancelBody>(),
            RecordKind::SetOrderEntry => core::mem::size_of::<SetOrderEntryBody>(),
            RecordKind::AccountQuery => core::mem::size_of::<AccountQueryBody>(),
        }
    }

    /// The whole record's length in bytes: header plus body, rounded up to cache lines.
    pub const fn record_bytes(self) -> usize {
        (HEADER_BYTES + self.body_bytes()).div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
    }
}

/// `NewOrder` body: 28 bytes of fields + 4 reserved; with the header, exactly one cache line.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct NewOrderBody {
    pub session: u16,
    pub symbol: u16,
    pub user_ref: u32,
    pub account: u32,
    pub qty: u32,
    pub price: u32,
    pub stop_price: u32,
    pub side: u8,
    pub kind: u8,
    pub tif: u8,
    pub post_only: u8,
    pub reserved: [u8; 4],
}

/// `Modify` body: `side` 0 buy / 1 sell, `side_code` the OUCH marking it echoes.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct ModifyBody {
    pub session: u16,
    pub side: u8,
    pub side_code: u8,
    pub user_ref: u32,
    pub qty: u32,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct CancelBody {
    pub session: u16,
    pub reserved: u16,
    pub user_ref: u32,
    pub qty: u32,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct ReplaceBody {
    pub session: u16,
    pub reserved: u16,
    pub orig_user_ref: u32,
    pub new_user_ref: u32,
    pub qty: u32,
    pub price: u32,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct AddSymbolBody {
    pub halt_ns: u64,
    pub reference_price: u32,
    pub ladder_min_price: u32,
    pub tick: u32,
    pub high_bps: u32,
    pub mid_bps: u32,
    pub low_bps: u32,
    pub tier_high_price: u32,
    pub tier_low_price: u32,
    pub market_collar_bps: u32,
    pub index_weight: u32,
    pub symbol: u16,
    pub reserved: [u8; 6],
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct AddAccountBody {
    pub max_order_notional: i64,
    pub account: u32,
    pub short_limit: u32,
    pub max_order_qty: u32,
    pub firm: u16,
    /// [`SelfTrade::code`]: 0, the default, is what records written before the choice existed hold here.
    pub self_trade: u8,
    pub reserved: u8,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct DepositBody {
    pub amount: i64,
    pub account: u32,
    pub reserved: u32,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct DepositSharesBody {
    pub account: u32,
    pub qty: u32,
    pub symbol: u16,
    pub reserved: [u8; 6],
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BindSessionBody {
    pub account: u32,
    pub session: u16,
    pub reserved: u16,
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct SetHaltBody {
    pub until: u64,
    pub symbol: u16,
    pub halted: u8,
    pub reserved: [u8; 5],
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct MarketBreakerBody {
    pub halt_ns: [u64; 3],
    pub level_bps: [u32; 3],
    pub reserved: u32,
}

/// `OrderEchoed` body: the order, then its echo.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct OrderEchoedBody {
    pub order: NewOrderBody,
    pub echo: Echo,
    pub reserved: [u8; 4],
}

/// `ReplaceEchoed` body: the replace, then its echo.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct ReplaceEchoedBody {
    pub replace: ReplaceBody,
    pub echo: Echo,
    pub reserved: [u8; 4],
}

/// `MarketHours` body: 1 open, 2 close; the open carries the market's UTC offset in seconds (little-endian i32;
/// 0 on a close). A record written before the offset existed reads as an open in UTC.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct MarketHoursBody {
    pub phase: u8,
    pub reserved: [u8; 3],
    pub utc_offset_s: i32,
}

/// The widest UTC offset a market day may have (the tz database's span is -12 h..=+14 h).
pub const UTC_OFFSET_S_MAX: i32 = 18 * 3_600;

const MARKET_OPEN: u8 = 1;
const MARKET_CLOSE: u8 = 2;

/// `Refuse` body: 12 bytes of fields and the echo; with the header, one cache line.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct RefuseBody {
    pub session: u16,
    pub reason: u16,
    pub user_ref: u32,
    pub introduces_ref: u8,
    pub reserved: [u8; 3],
    pub echo: Echo,
}

/// `MassCancel` body: `has_symbol` 0 every symbol (then `symbol` is 0) or 1 only `symbol`; `side` 0 both, 1 buy,
/// 2 sell; then the echo.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct MassCancelBody {
    pub session: u16,
    pub symbol: u16,
    pub user_ref: u32,
    pub has_symbol: u8,
    pub side: u8,
    pub reserved: [u8; 2],
    pub echo: Echo,
}

/// `SetOrderEntry` body: `enabled` 0 (Disable Order Entry) or 1 (Enable), then the echo.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct SetOrderEntryBody {
    pub session: u16,
    pub enabled: u8,
    pub reserved: u8,
    pub user_ref: u32,
    pub echo: Echo,
}

/// `AccountQuery` body: the asking session.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct AccountQueryBody {
    pub session: u16,
    pub reserved: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<MassCancelBody>() == 32);
const _: () = assert!(RecordKind::MassCancel.record_bytes() == 64, "a mass cancel is one cache line");
const _: () = assert!(core::mem::size_of::<SetOrderEntryBody>() == 28);
const _: () = assert!(RecordKind::SetOrderEntry.record_bytes() == 64);
const _: () = assert!(RecordKind::AccountQuery.record_bytes() == 64);
const _: () = assert!(core::mem::size_of::<NewOrderBody>() == 32);
const _: () = assert!(core::mem::size_of::<OrderEchoedBody>() == 56);
const _: () = assert!(RecordKind::OrderEchoed.record_bytes() == 128);
const _: () = assert!(core::mem::size_of::<ReplaceEchoedBody>() == 44);
const _: () = assert!(RecordKind::ReplaceEchoed.record_bytes() == 128);
const _: () = assert!(core::mem::size_of::<RefuseBody>() == 32);
const _: () = assert!(RecordKind::Refuse.record_bytes() == 64, "a refusal is one cache line");
const _: () = assert!(RecordKind::NewOrder.record_bytes() == 64, "an order must be one cache line");
const _: () = assert!(RecordKind::Cancel.record_bytes() == 64);
const _: () = assert!(RecordKind::Replace.record_bytes() == 64);
const _: () = assert!(RecordKind::Deposit.record_bytes() == 64);
const _: () = assert!(RecordKind::Tick.record_bytes() == 64);
const _: () = assert!(RecordKind::MarketHours.record_bytes() == 64);
const _: () = assert!(core::mem::size_of::<AddSymbolBody>() == 56);
const _: () = assert!(RecordKind::AddSymbol.record_bytes() == 128);
const _: () = assert!(core::mem::size_of::<MarketBreakerBody>() == 40);
const _: () = assert!(RecordKind::SetMarketBreaker.record_bytes() == 128);
const _: () = assert!(core::mem::size_of::<AddAccountBody>() == 24);
const _: () = assert!(core::mem::size_of::<DepositSharesBody>() == 16);
const _: () = assert!(core::mem::size_of::<SetHaltBody>() == 16);
const _: () = assert!(core::mem::size_of::<BindSessionBody>() == 8);

/// Why bytes are not a valid record. Offsets are relative to the record start; callers add file context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("empty slot (crc and length are zero)")]
    Empty,
    #[error("truncated: {available} bytes available, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("bad length {length} (must be 64 or 128)")]
    BadLength { length: u32 },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u16 },
    #[error("length {length} does not match kind {kind} ({expected} bytes)")]
    KindLength { kind: u16, length: u32, expected: u32 },
    #[error("field {field} holds invalid value {value}")]
    BadField { field: &'static str, value: u64 },
    #[error("reserved bytes are not zero")]
    ReservedNotZero,
}

/// A decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub input: Input,
    /// The fields replies echo; all zero for kinds that carry none.
    pub echo: Echo,
    pub epoch: u32,
    pub kind: RecordKind,
    /// Bytes the record occupies (64 or 128).
    pub length: usize,
}

/// Computes the CRC of a record image whose header `length` is already set.
fn record_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(&bytes[4..])
}

/// Encodes `input` into `out` and returns the record length. Only `out[..length]` is written, and it is written
/// completely (zero padding included), so `out` may be reused without clearing.
pub fn encode(input: &Input, epoch: u32, out: &mut [u8; RECORD_BYTES_MAX]) -> usize {
    encode_entry(input, None, epoch, out)
}

/// [`encode`] with the fields replies echo: a New Order or Replace with `Some(echo)` is journaled as
/// `OrderEchoed`/`ReplaceEchoed`; a `Refuse`, `MassCancel` or `SetOrderEntry` keeps its echo (zeros when `None`);
/// other commands ignore it.
pub fn encode_entry(input: &Input, echo: Option<&Echo>, epoch: u32, out: &mut [u8; RECORD_BYTES_MAX]) -> usize {
    let kind = RecordKind::of_entry(&input.command, echo.is_some());
    let length = kind.record_bytes();
    let echo = echo.copied().unwrap_or([0; ECHO_BYTES]);
    out[..length].fill(0);
    let body = &mut out[HEADER_BYTES..];
    match input.command {
        Command::NewOrder(o) if kind == RecordKind::OrderEchoed => {
            put(body, &OrderEchoedBody { order: new_order_body(&o), echo, reserved: [0; 4] })
        }
        Command::Replace(r) if kind == RecordKind::ReplaceEchoed => {
            put(body, &ReplaceEchoedBody { replace: replace_body(&r), echo, reserved: [0; 4] })
        }
        Command::Refuse(r) => put(
            body,
            &RefuseBody {
                session: r.session,
                reason: r.reason,
                user_ref: r.user_ref,
                introduces_ref: u8::from(r.introduces_ref),
                reserved: [0; 3],
                echo,
            },
        ),
        Command::NewOrder(o) => put(body, &new_order_body(&o)),
        Command::Cancel(c) => put(
            body,
            &CancelBody { session: c.session, reserved: 0, user_ref: c.user_ref, qty: c.qty },
        ),
        Command::Replace(r) => put(body, &replace_body(&r)),
        Command::Modify(m) => put(
            body,
            &ModifyBody {
                session: m.session,
                side: u8::from(m.side == Side::Sell),
                side_code: m.side_code,
                user_ref: m.user_ref,
                qty: m.qty,
            },
        ),
        Command::AddSymbol(s) => put(body, &add_symbol_body(&s)),
        Command::AddAccount(a) => put(
            body,
            &AddAccountBody {
                max_order_notional: a.max_order_notional,
                account: a.account,
                short_limit: a.short_limit,
                max_order_qty: a.max_order_qty,
                firm: a.firm,
                self_trade: a.self_trade.code(),
                reserved: 0,
            },
        ),
        Command::Deposit(d) => put(body, &DepositBody { amount: d.amount, account: d.account, reserved: 0 }),
        Command::DepositShares(d) => put(
            body,
            &DepositSharesBody { account: d.account, qty: d.qty, symbol: d.symbol, reserved: [0; 6] },
        ),
        Command::BindSession(b) => {
            put(body, &BindSessionBody { account: b.account, session: b.session, reserved: 0 })
        }
        Command::SetHalt(h) => put(
            body,
            &SetHaltBody { until: h.until, symbol: h.symbol, halted: u8::from(h.halted), reserved: [0; 5] },
        ),
        Command::SetMarketBreaker(m) => {
            put(body, &MarketBreakerBody { halt_ns: m.halt_ns, level_bps: m.level_bps, reserved: 0 })
        }
        Command::Tick => {}
        Command::MassCancel(m) => put(
            body,
            &MassCancelBody {
                session: m.session,
                symbol: m.symbol.unwrap_or(0),
                user_ref: m.user_ref,
                has_symbol: u8::from(m.symbol.is_some()),
                side: match m.side {
                    None => 0,
                    Some(Side::Buy) => 1,
                    Some(Side::Sell) => 2,
                },
                reserved: [0; 2],
                echo,
            },
        ),
        Command::SetOrderEntry(c) => put(
            body,
            &SetOrderEntryBody {
                session: c.session,
                enabled: u8::from(c.enabled),
                reserved: 0,
                user_ref: c.user_ref,
                echo,
            },
        ),
        Command::AccountQuery(session) => put(body, &AccountQueryBody { session, reserved: [0; 6] }),
        Command::MarketHours(h) => {
            let (phase, utc_offset_s) = match h {
                MarketHours::Open { utc_offset_s } => (MARKET_OPEN, utc_offset_s),
                MarketHours::Close => (MARKET_CLOSE, 0),
            };
            put(body, &MarketHoursBody { phase, reserved: [0; 3], utc_offset_s })
        }
    }
    let header = RecordHeader {
        crc: 0,
        length: length as u32,
        seq: input.seq,
        timestamp: input.timestamp,
        kind: kind as u16,
        reserved: 0,
        epoch,
    };
    out[..HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(&header));
    let crc = record_crc(&out[..length]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    length
}

fn put<T: Pod>(dst: &mut [u8], body: &T) {
    let src = bytemuck::bytes_of(body);
    dst[..src.len()].copy_from_slice(src);
}

fn replace_body(r: &Replace) -> ReplaceBody {
    ReplaceBody {
        session: r.session,
        reserved: 0,
        orig_user_ref: r.orig_user_ref,
        new_user_ref: r.new_user_ref,
        qty: r.qty,
        price: r.price,
    }
}

fn new_order_body(o: &NewOrder) -> NewOrderBody {
    NewOrderBody {
        session: o.session,
        symbol: o.symbol,
        user_ref: o.user_ref,
        account: o.account,
        qty: o.qty,
        price: o.price,
        stop_price: o.stop_price,
        side: match o.side {
            Side::Buy => 0,
            Side::Sell => 1,
        },
        kind: match o.kind {
            OrderKind::Limit => 0,
            OrderKind::Market => 1,
            OrderKind::Stop => 2,
            OrderKind::StopLimit => 3,
        },
        tif: match o.tif {
            TimeInForce::Day => 0,
            TimeInForce::Ioc => 1,
            TimeInForce::Fok => 2,
        },
        post_only: u8::from(o.post_only),
        reserved: [0; 4],
    }
}

fn add_symbol_body(s: &AddSymbol) -> AddSymbolBody {
    AddSymbolBody {
        halt_ns: s.bands.halt_ns,
        reference_price: s.reference_price,
        ladder_min_price: s.ladder_min_price,
        tick: s.tick,
        high_bps: s.bands.high_bps,
        mid_bps: s.bands.mid_bps,
        low_bps: s.bands.low_bps,
        tier_high_price: s.bands.tier_high_price,
        tier_low_price: s.bands.tier_low_price,
        market_collar_bps: s.market_collar_bps,
        index_weight: s.index_weight,
        symbol: s.symbol,
        reserved: [0; 6],
    }
}

/// Reads only the `length` field of the record starting at `bytes[0]` (0 when fewer than 8 bytes).
pub fn peek_length(bytes: &[u8]) -> u32 {
    match bytes.get(4..8) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Decodes the record at the start of `bytes`, validating length, CRC and every field.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    if bytes.len() < HEADER_BYTES {
        return Err(RecordError::Truncated { available: bytes.len(), needed: HEADER_BYTES });
    }
    let header: RecordHeader = bytemuck::pod_read_unaligned(&bytes[..HEADER_BYTES]);
    if header.crc == 0 && header.length == 0 {
        return Err(RecordError::Empty);
    }
    let length = header.length as usize;
    if !(RECORD_ALIGN_BYTES..=RECORD_BYTES_MAX).contains(&length) || !length.is_multiple_of(RECORD_ALIGN_BYTES) {
        return Err(RecordError::BadLength { length: header.length });
    }
    if bytes.len() < length {
        return Err(RecordError::Truncated { available: bytes.len(), needed: length });
    }
    let image = &bytes[..length];
    let computed = record_crc(image);
    if computed != header.crc {
        return Err(RecordError::BadCrc { stored: header.crc, computed });
    }
    let kind = RecordKind::from_u16(header.kind).ok_or(RecordError::UnknownKind { kind: header.kind })?;
    if kind.record_bytes() != length {
        return Err(RecordError::KindLength {
            kind: header.kind,
            length: header.length,
            expected: kind.record_bytes() as u32,
        });
    }
    if header.reserved != 0 {
        return Err(RecordError::ReservedNotZero);
    }
    let body_end = HEADER_BYTES + kind.body_bytes();
    if image[body_end..].iter().any(|&b| b != 0) {
        return Err(RecordError::ReservedNotZero);
    }
    let (command, echo) = decode_body(kind, &image[HEADER_BYTES..body_end])?;
    Ok(Record {
        input: Input { seq: header.seq, timestamp: header.timestamp, command },
        echo,
        epoch: header.epoch,
        kind,
        length,
    })
}

fn bad(field: &'static str, value: u8) -> RecordError {
    RecordError::BadField { field, value: u64::from(value) }
}

fn flag(field: &'static str, value: u8) -> Result<bool, RecordError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(bad(field, v)),
    }
}

fn decode_body(kind: RecordKind, body: &[u8]) -> Result<(Command, Echo), RecordError> {
    const NONE: Echo = [0; ECHO_BYTES];
    Ok(match kind {
        RecordKind::OrderEchoed => {
            let b: OrderEchoedBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 4] {
                return Err(RecordError::ReservedNotZero);
            }
            (new_order(&b.order)?, b.echo)
        }
        RecordKind::ReplaceEchoed => {
            let b: ReplaceEchoedBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 4] {
                return Err(RecordError::ReservedNotZero);
            }
            (replace(&b.replace)?, b.echo)
        }
        RecordKind::Refuse => {
            let b: RefuseBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 3] {
                return Err(RecordError::ReservedNotZero);
            }
            let r = Refuse {
                session: b.session,
                user_ref: b.user_ref,
                reason: b.reason,
                introduces_ref: flag("introduces_ref", b.introduces_ref)?,
            };
            (Command::Refuse(r), b.echo)
        }
        RecordKind::MassCancel => {
            let b: MassCancelBody = bytemuck::pod_read_unaligned(body);
            // Every symbol is written with symbol 0, so each mass cancel has one encoding.
            if b.reserved != [0; 2] || (b.has_symbol == 0 && b.symbol != 0) {
                return Err(RecordError::ReservedNotZero);
            }
            let m = MassCancel {
                session: b.session,
                user_ref: b.user_ref,
                symbol: flag("has_symbol", b.has_symbol)?.then_some(b.symbol),
                side: match b.side {
                    0 => None,
                    1 => Some(Side::Buy),
                    2 => Some(Side::Sell),
                    v => return Err(bad("mass cancel side", v)),
                },
            };
            (Command::MassCancel(m), b.echo)
        }
        RecordKind::SetOrderEntry => {
            let b: SetOrderEntryBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            let c = SetOrderEntry { session: b.session, user_ref: b.user_ref, enabled: flag("enabled", b.enabled)? };
            (Command::SetOrderEntry(c), b.echo)
        }
        RecordKind::NewOrder => (new_order(&bytemuck::pod_read_unaligned(body))?, NONE),
        RecordKind::Replace => (replace(&bytemuck::pod_read_unaligned(body))?, NONE),
        other => (decode_admin(other, body)?, NONE),
    })
}

fn new_order(b: &NewOrderBody) -> Result<Command, RecordError> {
    if b.reserved != [0; 4] {
        return Err(RecordError::ReservedNotZero);
    }
    Ok(Command::NewOrder(NewOrder {
        session: b.session,
        user_ref: b.user_ref,
        account: b.account,
        symbol: b.symbol,
        side: match b.side {
            0 => Side::Buy,
            1 => Side::Sell,
            v => return Err(bad("side", v)),
        },
        kind: match b.kind {
            0 => OrderKind::Limit,
            1 => OrderKind::Market,
            2 => OrderKind::Stop,
            3 => OrderKind::StopLimit,
            v => return Err(bad("order_kind", v)),
        },
        tif: match b.tif {
            0 => TimeInForce::Day,
            1 => TimeInForce::Ioc,
            2 => TimeInForce::Fok,
            v => return Err(bad("time_in_force", v)),
        },
        post_only: flag("post_only", b.post_only)?,
        qty: b.qty,
        price: b.price,
        stop_price: b.stop_price,
    }))
}

fn replace(b: &ReplaceBody) -> Result<Command, RecordError> {
    if b.reserved != 0 {
        return Err(RecordError::ReservedNotZero);
    }
    Ok(Command::Replace(Replace {
        session: b.session,
        orig_user_ref: b.orig_user_ref,
        new_user_ref: b.new_user_ref,
        qty: b.qty,
        price: b.price,
    }))
}

fn decode_admin(kind: RecordKind, body: &[u8]) -> Result<Command, RecordError> {
    Ok(match kind {
        RecordKind::Cancel => {
            let b: CancelBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            Command::Cancel(Cancel { session: b.session, user_ref: b.user_ref, qty: b.qty })
        }
        RecordKind::Modify => {
            let b: ModifyBody = bytemuck::pod_read_unaligned(body);
            let side = match b.side {
                0 => Side::Buy,
                1 => Side::Sell,
                v => return Err(bad("side", v)),
            };
            Command::Modify(Modify { session: b.session, user_ref: b.user_ref, qty: b.qty, side, side_code: b.side_code })
        }
        RecordKind::AddSymbol => {
            let b: AddSymbolBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 6] {
                return Err(RecordError::ReservedNotZero);
            }
            Command::AddSymbol(AddSymbol {
                symbol: b.symbol,
                reference_price: b.reference_price,
                ladder_min_price: b.ladder_min_price,
                tick: b.tick,
                bands: Bands {
                    high_bps: b.high_bps,
                    mid_bps: b.mid_bps,
                    low_bps: b.low_bps,
                    tier_high_price: b.tier_high_price,
                    tier_low_price: b.tier_low_price,
                    halt_ns: b.halt_ns,
                },
                market_collar_bps: b.market_collar_bps,
                index_weight: b.index_weight,
            })
        }
        RecordKind::AddAccount => {
            let b: AddAccountBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            let self_trade = SelfTrade::from_code(b.self_trade)
                .ok_or(RecordError::BadField { field: "self_trade", value: b.self_trade as u64 })?;
            Command::AddAccount(AddAccount {
                account: b.account,
                firm: b.firm,
                self_trade,
                short_limit: b.short_limit,
                max_order_qty: b.max_order_qty,
                max_order_notional: b.max_order_notional,
            })
        }
        RecordKind::Deposit => {
            let b: DepositBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            Command::Deposit(Deposit { account: b.account, amount: b.amount })
        }
        RecordKind::DepositShares => {
            let b: DepositSharesBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 6] {
                return Err(RecordError::ReservedNotZero);
            }
            Command::DepositShares(DepositShares { account: b.account, symbol: b.symbol, qty: b.qty })
        }
        RecordKind::BindSession => {
            let b: BindSessionBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            Command::BindSession(BindSession { session: b.session, account: b.account })
        }
        RecordKind::SetHalt => {
            let b: SetHaltBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 5] {
                return Err(RecordError::ReservedNotZero);
            }
            Command::SetHalt(SetHalt { symbol: b.symbol, halted: flag("halted", b.halted)?, until: b.until })
        }
        RecordKind::SetMarketBreaker => {
            let b: MarketBreakerBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != 0 {
                return Err(RecordError::ReservedNotZero);
            }
            Command::SetMarketBreaker(MarketBreaker { level_bps: b.level_bps, halt_ns: b.halt_ns })
        }
        RecordKind::Tick => Command::Tick,
        RecordKind::AccountQuery => {
            let b: AccountQueryBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 6] {
                return Err(RecordError::ReservedNotZero);
            }
            Command::AccountQuery(b.session)
        }
        RecordKind::MarketHours => {
            let b: MarketHoursBody = bytemuck::pod_read_unaligned(body);
            if b.reserved != [0; 3] || (b.phase == MARKET_CLOSE && b.utc_offset_s != 0) {
                return Err(RecordError::ReservedNotZero);
            }
            if !(-UTC_OFFSET_S_MAX..=UTC_OFFSET_S_MAX).contains(&b.utc_offset_s) {
                return Err(RecordError::BadField {
                    field: "market utc offset",
                    value: u64::from(b.utc_offset_s.unsigned_abs()),
                });
            }
            Command::MarketHours(match b.phase {
                MARKET_OPEN => MarketHours::Open { utc_offset_s: b.utc_offset_s },
                MARKET_CLOSE => MarketHours::Close,
                v => return Err(RecordError::BadField { field: "market hours phase", value: u64::from(v) }),
            })
        }
        RecordKind::NewOrder
        | RecordKind::Replace
        | RecordKind::OrderEchoed
        | RecordKind::ReplaceEchoed
        | RecordKind::Refuse
        | RecordKind::MassCancel
        | RecordKind::SetOrderEntry => unreachable!("decoded by decode_body"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Buy), Just(Side::Sell)]
    }
    fn order_kind() -> impl Strategy<Value = OrderKind> {
        prop_oneof![
            Just(OrderKind::Limit),
            Just(OrderKind::Market),
            Just(OrderKind::Stop),
            Just(OrderKind::StopLimit)
        ]
    }
    fn tif() -> impl Strategy<Value = TimeInForce> {
        prop_oneof![Just(TimeInForce::Day), Just(TimeInForce::Ioc), Just(TimeInForce::Fok)]
    }

    pub(crate) fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (any::<(u16, u32, u32, u16)>(), side(), order_kind(), tif(), any::<(bool, u32, u32, u32)>()).prop_map(
                |((session, user_ref, account, symbol), side, kind, tif, (post_only, qty, price, stop_price))| {
                    Command::NewOrder(NewOrder {
                        session,
                        user_ref,
                        account,
                        symbol,
                        side,
                        kind,
                        tif,
                        post_only,
                        qty,
                        price,
                        stop_price,
                    })
                }
            ),
            any::<(u16, u32, u32)>()
                .prop_map(|(session, user_ref, qty)| Command::Cancel(Cancel { session, user_ref, qty })),
            any::<(u16, u32, u32, bool, u8)>().prop_map(|(session, user_ref, qty, sell, side_code)| {
                let side = if sell { Side::Sell } else { Side::Buy };
                Command::Modify(Modify { session, user_ref, qty, side, side_code })
            }),
            any::<(u16, u32, u32, u32, u32)>().prop_map(|(session, orig_user_ref, new_user_ref, qty, price)| {
                Command::Replace(Replace { session, orig_user_ref, new_user_ref, qty, price })
            }),
            (any::<(u16, u32, u32, u32, u32, u32)>(), any::<(u32, u32, u32, u32, u32, u64)>()).prop_map(
                |((symbol, reference_price, ladder_min_price, tick, market_collar_bps, index_weight), b)| {
                    Command::AddSymbol(AddSymbol {
                        symbol,
                        reference_price,
                        ladder_min_price,
                        tick,
                        bands: Bands {
                            high_bps: b.0,
                            mid_bps: b.1,
                            low_bps: b.2,
                            tier_high_price: b.3,
                            tier_low_price: b.4,
                            halt_ns: b.5,
                        },
                        market_collar_bps,
                        index_weight,
                    })
                }
            ),
            (any::<(u32, u16, u32, u32, i64)>(), prop::sample::select(SelfTrade::ALL.to_vec())).prop_map(
                |((account, firm, short_limit, max_order_qty, n), self_trade)| {
                Command::AddAccount(AddAccount {
                    account,
                    firm,
                    self_trade,
                    short_limit,
                    max_order_qty,
                    max_order_notional: n,
                })
            }),
            any::<(u32, i64)>().prop_map(|(account, amount)| Command::Deposit(Deposit { account, amount })),
            any::<(u32, u16, u32)>().prop_map(|(account, symbol, qty)| {
                Command::DepositShares(DepositShares { account, symbol, qty })
            }),
            any::<(u16, u32)>()
                .prop_map(|(session, account)| Command::BindSession(BindSession { session, account })),
            any::<(u16, bool, u64)>()
                .prop_map(|(symbol, halted, until)| Command::SetHalt(SetHalt { symbol, halted, until })),
            any::<([u32; 3], [u64; 3])>().prop_map(|(level_bps, halt_ns)| {
                Command::SetMarketBreaker(MarketBreaker { level_bps, halt_ns })
            }),
            Just(Command::Tick),
            (-UTC_OFFSET_S_MAX..=UTC_OFFSET_S_MAX)
                .prop_map(|utc_offset_s| Command::MarketHours(MarketHours::Open { utc_offset_s })),
            Just(Command::MarketHours(MarketHours::Close)),
            any::<(u16, u32, u16, bool)>().prop_map(|(session, user_ref, reason, introduces_ref)| {
                Command::Refuse(Refuse { session, user_ref, reason, introduces_ref })
            }),
            (any::<(u16, u32)>(), proptest::option::of(any::<u16>()), proptest::option::of(side())).prop_map(
                |((session, user_ref), symbol, side)| {
                    Command::MassCancel(MassCancel { session, user_ref, symbol, side })
                }
            ),
            any::<(u16, u32, bool)>().prop_map(|(session, user_ref, enabled)| {
                Command::SetOrderEntry(SetOrderEntry { session, user_ref, enabled })
            }),
            any::<u16>().prop_map(Command::AccountQuery),
        ]
    }

    proptest! {
        #[test]
        fn every_command_round_trips(command in command(), seq: u64, timestamp: u64, epoch: u32) {
            let input = Input { seq, timestamp, command };
            let mut buf = [0xa5u8; RECORD_BYTES_MAX];
            let n = encode(&input, epoch, &mut buf);
            prop_assert_eq!(n % RECORD_ALIGN_BYTES, 0);
            prop_assert_eq!(n, RecordKind::of(&command).record_bytes());
            let r = decode(&buf[..n]).unwrap();
            prop_assert_eq!(r.input, input);
            prop_assert_eq!(r.epoch, epoch);
            prop_assert_eq!(r.length, n);
        }

        #[test]
        fn every_command_round_trips_with_its_echo(command in command(), seq: u64, echo: Echo, epoch: u32) {
            let input = Input { seq, timestamp: 3, command };
            let mut buf = [0xa5u8; RECORD_BYTES_MAX];
            let n = encode_entry(&input, Some(&echo), epoch, &mut buf);
            let r = decode(&buf[..n]).unwrap();
            prop_assert_eq!(r.input, input);
            prop_assert_eq!(r.length, n);
            let kind = RecordKind::of_entry(&command, true);
            prop_assert_eq!(r.kind, kind);
            prop_assert_eq!(r.echo, if kind.carries_echo() { echo } else { [0; ECHO_BYTES] });
        }

        #[test]
        fn any_single_bit_flip_is_detected(command in command(), seq: u64, bit in 0usize..(RECORD_BYTES_MAX * 8)) {
            let input = Input { seq, timestamp: 7, command };
            let mut buf = [0u8; RECORD_BYTES_MAX];
            let n = encode(&input, 1, &mut buf);
            let bit = bit % (n * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&buf[..n]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn order_is_one_line_and_header_is_at_the_front() {
        let input = Input {
            seq: 0x0102_0304_0506_0708,
            timestamp: 9,
            command: Command::Cancel(Cancel { session: 3, user_ref: 4, qty: 0 }),
        };
        let mut buf = [0u8; RECORD_BYTES_MAX];
        assert_eq!(encode(&input, 2, &mut buf), 64);
        assert_eq!(&buf[4..8], &64u32.to_le_bytes());
        assert_eq!(&buf[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&buf[24..26], &(RecordKind::Cancel as u16).to_le_bytes());
        assert_eq!(&buf[28..32], &2u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(buf[0..4].try_into().unwrap()), crc32c::crc32c(&buf[4..64]));
    }

    /// Kind 16 (15 belongs to another kind): number on disk, one cache line, side byte validated.
    #[test]
    fn modify_is_kind_16() {
        let input = Input {
            seq: 1,
            timestamp: 1,
            command: Command::Modify(Modify { session: 2, user_ref: 9, qty: 40, side: Side::Sell, side_code: b'E' }),
        };
        let mut buf = [0u8; RECORD_BYTES_MAX];
        let n = encode(&input, 0, &mut buf);
        assert_eq!(n, 64);
        assert_eq!(&buf[24..26], &16u16.to_le_bytes());
        assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 4], &[2, 0, 1, b'E']);
        assert_eq!(decode(&buf[..n]).unwrap().input, input);
        assert_eq!(RecordKind::from_u16(16), Some(RecordKind::Modify));
        assert_eq!(RecordKind::from_u16(15), None);
        assert_eq!(RecordKind::Modify.index(), 14);
        buf[HEADER_BYTES + 2] = 2;
        let crc = crc32c::crc32c(&buf[4..n]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&buf[..n]), Err(RecordError::BadField { field: "side", value: 2 }));
    }

    /// The day's bounds are kind 17, one cache line: phase 1 open with the UTC offset (-4 h: `c0 c7 ff ff`,
    /// little-endian -14,400), 2 close; any other phase, an offset on a close or one beyond 18 h is a typed error.
    #[test]
    fn market_hours_is_kind_17() {
        let open = MarketHours::Open { utc_offset_s: -14_400 };
        for (hours, body) in [(open, [1u8, 0, 0, 0, 0xc0, 0xc7, 0xff, 0xff]), (MarketHours::Close, [2, 0, 0, 0, 0, 0, 0, 0])] {
            let input = Input { seq: 7, timestamp: 1, command: Command::MarketHours(hours) };
            let mut buf = [0u8; RECORD_BYTES_MAX];
            let n = encode(&input, 0, &mut buf);
            assert_eq!(n, 64);
            assert_eq!(&buf[24..26], &17u16.to_le_bytes());
            assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 8], &body);
            assert_eq!(decode(&buf[..n]).unwrap().input, input);
            buf[HEADER_BYTES] = 3;
            let crc = crc32c::crc32c(&buf[4..n]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&buf[..n]), Err(RecordError::BadField { field: "market hours phase", value: 3 }));
        }
        let corrupt = |phase: u8, offset: i32| {
            let input = Input { seq: 7, timestamp: 1, command: Command::MarketHours(MarketHours::Close) };
            let mut buf = [0u8; RECORD_BYTES_MAX];
            let n = encode(&input, 0, &mut buf);
            buf[HEADER_BYTES] = phase;
            buf[HEADER_BYTES + 4..HEADER_BYTES + 8].copy_from_slice(&offset.to_le_bytes());
            let crc = crc32c::crc32c(&buf[4..n]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
            decode(&buf[..n]).map(|r| r.input.command)
        };
        assert_eq!(corrupt(2, 3_600), Err(RecordError::ReservedNotZero), "a close carries no offset");
        assert_eq!(
            corrupt(1, 19 * 3_600),
            Err(RecordError::BadField { field: "market utc offset", value: 19 * 3_600 })
        );
        // Written before the offset existed: an open in UTC.
        assert_eq!(corrupt(1, 0), Ok(Command::MarketHours(MarketHours::Open { utc_offset_s: 0 })));
        assert_eq!(RecordKind::MarketHours.index(), 15);
        assert_eq!(RecordKind::MarketHours.name(), "market_hours");
    }

    #[test]
    fn zero_slot_is_empty_and_bad_enum_is_typed() {
        assert_eq!(decode(&[0u8; 64]), Err(RecordError::Empty));
        let input = Input {
            seq: 1,
            timestamp: 1,
            command: Command::SetHalt(SetHalt { symbol: 1, halted: true, until: 0 }),
        };
        let mut buf = [0u8; RECORD_BYTES_MAX];
        let n = encode(&input, 0, &mut buf);
        buf[HEADER_BYTES + 10] = 7; // the `halted` byte
        let crc = crc32c::crc32c(&buf[4..n]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&buf[..n]), Err(RecordError::BadField { field: "halted", value: 7 }));
    }

    /// The account's self-trade prevention rides in what was AddAccount's reserved u16 (offset 22 of the body):
    /// code 0 is the default, so journals written before the choice existed decode as they always did; a code no
    /// rule has is a typed error.
    #[test]
    fn add_account_carries_self_trade_prevention_where_the_reserved_bytes_were() {
        for self_trade in SelfTrade::ALL {
            let input = Input {
                seq: 1,
                timestamp: 1,
                command: Command::AddAccount(AddAccount {
                    account: 3,
                    firm: 2,
                    self_trade,
                    short_limit: 0,
                    max_order_qty: 100,
                    max_order_notional: 1_000_000,
                }),
            };
            let mut buf = [0u8; RECORD_BYTES_MAX];
            let n = encode(&input, 0, &mut buf);
            assert_eq!(buf[HEADER_BYTES + 22], self_trade.code());
            assert_eq!(buf[HEADER_BYTES + 23], 0);
            assert_eq!(decode(&buf[..n]).unwrap().input, input);
            if self_trade == SelfTrade::CancelNewest {
                assert_eq!(self_trade.code(), 0, "the default is what a zero reserved byte always meant");
            }
            buf[HEADER_BYTES + 22] = 9;
            let crc = crc32c::crc32c(&buf[4..n]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&buf[..n]), Err(RecordError::BadField { field: "self_trade", value: 9 }));
        }
    }

    /// A firm's controls (OUCH 5.0 sections 2.5-2.8) are kinds 18, 19 and 20, one cache line each, laid out as
    /// their bodies' doc comments draw them: every byte checked here by hand.
    #[test]
    fn firm_controls_are_kinds_18_to_20() {
        let echo: Echo = *b"BRSEAAPL    S\x00\x05\x01\x00\x00\x00\x00";
        let mass = MassCancel { session: 3, user_ref: 0x0102_0304, symbol: Some(7), side: Some(Side::Sell) };
        let input = Input { seq: 9, timestamp: 1, command: Command::MassCancel(mass) };
        let mut buf = [0u8; RECORD_BYTES_MAX];
        let n = encode_entry(&input, Some(&echo), 0, &mut buf);
        assert_eq!(n, 64);
        assert_eq!(&buf[24..26], &18u16.to_le_bytes());
        assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 12], &[3, 0, 7, 0, 4, 3, 2, 1, 1, 2, 0, 0]);
        assert_eq!(&buf[HEADER_BYTES + 12..HEADER_BYTES + 32], &echo);
        let r = decode(&buf[..n]).unwrap();
        assert_eq!((r.input, r.echo, r.kind), (input, echo, RecordKind::MassCancel));
        let reseal = |buf: &mut [u8; RECORD_BYTES_MAX]| {
            let crc = crc32c::crc32c(&buf[4..64]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
        };
        let mut bad = buf;
        bad[HEADER_BYTES + 9] = 3;
        reseal(&mut bad);
        assert_eq!(decode(&bad[..n]), Err(RecordError::BadField { field: "mass cancel side", value: 3 }));
        let mut bad = buf;
        bad[HEADER_BYTES + 8] = 0;
        reseal(&mut bad);
        assert_eq!(decode(&bad[..n]), Err(RecordError::ReservedNotZero), "every symbol is written with symbol 0");

        let every = MassCancel { symbol: None, side: None, ..mass };
        let n = encode(&Input { command: Command::MassCancel(every), ..input }, 0, &mut buf);
        assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 12], &[3, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
        assert_eq!(decode(&buf[..n]).unwrap().input.command, Command::MassCancel(every));

        let switch = SetOrderEntry { session: 3, user_ref: 5, enabled: false };
        let input = Input { seq: 10, timestamp: 1, command: Command::SetOrderEntry(switch) };
        let n = encode_entry(&input, Some(&echo), 0, &mut buf);
        assert_eq!((n, &buf[24..26]), (64, &19u16.to_le_bytes()[..]));
        assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 8], &[3, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(decode(&buf[..n]).unwrap().echo, echo);
        buf[HEADER_BYTES + 2] = 2;
        reseal(&mut buf);
        assert_eq!(decode(&buf[..n]), Err(RecordError::BadField { field: "enabled", value: 2 }));

        let input = Input { seq: 11, timestamp: 1, command: Command::AccountQuery(3) };
        let n = encode_entry(&input, Some(&echo), 0, &mut buf);
        assert_eq!((n, &buf[24..26]), (64, &20u16.to_le_bytes()[..]));
        assert_eq!(&buf[HEADER_BYTES..HEADER_BYTES + 8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        let r = decode(&buf[..n]).unwrap();
        assert_eq!((r.input, r.echo), (input, [0; ECHO_BYTES]), "a query keeps no echo");
        assert_eq!(
            [RecordKind::MassCancel, RecordKind::SetOrderEntry, RecordKind::AccountQuery].map(RecordKind::index),
            [16, 17, 18]
        );
    }
}
