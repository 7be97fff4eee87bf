//! Translation between the wire protocols (OUCH 5.0, ITCH 5.0) and the engine's commands and events.
//!
//! The appliance calls, for each authenticated OUCH message (from `crate::session`):
//!
//! ```text
//! Translator::on_ouch(session, account, &ouch::Inbound) -> Result<Command, OuchReject>
//! ```
//!
//! and answers an `Err` with [`OuchReject::emit`] (an OUCH Order Rejected) without sequencing anything. For
//! every engine event it calls
//!
//! ```text
//! Translator::on_event(&Event, timestamp_ns, &mut ouch_out, &mut itch_out)
//!     ouch_out: FnMut(SessionId, Option<UserRef> /* first reply to */, &[u8])   one OUCH message
//!     itch_out: FnMut(&[u8])                                                   one ITCH message
//! ```
//!
//! Both closures receive bytes encoded into the translator's own fixed scratch buffer: no allocation.
//!
//! `on_ouch` changes nothing: what replies echo (ClOrdID, side code, time in force, display, capacity, cross
//! type) travels as an [`Echo`] journaled with the command, and [`Translator::remember`] records it when the
//! journaled input is applied — live and on replay alike, so a restarted or promoted node echoes the same bytes.
//!
//! ```text
//!  Echo (20 bytes):  0 ClOrdID (14)  14 side code  15 time in force  16 display  17 capacity  18 cross type
//!                    19 intermarket sweep
//! ```
//!
//! ## Enter Order mapping (OUCH 5.0 has no native market, stop or FOK orders)
//! * Side: 'B' → Buy; 'S', 'T' (short) and 'E' (short exempt) → Sell. The engine enforces the account's short
//!   limit itself, so the short markings only matter to the reports.
//! * Price: u64 with 4 decimals → engine u32 ticks; above `u32::MAX` → rejected with Invalid Price (0x001D).
//!   Price [`MARKET_PRICE`] (214748.3647, OUCH 4.x's market-order sentinel) means a market order.
//! * Stop orders: the bourse appendage tag 224 (StopPrice, u64) makes a Stop (with the market price) or a
//!   StopLimit order.
//! * Time in force: '0' Day, '5' GTX, '6' GTT and 'E' after hours → Day (ExpireTime is not enforced); '3' →
//!   IOC; '3' with MinQty equal to the quantity → FOK. Any other MinQty → rejected (Invalid Min Quantity).
//! * PostOnly option 'P' → post-only. PriceType other than 'L' (pegs) → Pegging Not Allowed (0x0011). Cross type
//!   other than 'N' → Invalid Cross Order (0x0014).
//! * Replace → `Replace`: its Quantity is the total liable quantity of the order/replace chain (section 2.2),
//!   so the engine opens it less what the chain executed, and Order Replaced reports that open quantity. A
//!   replace always loses time priority. Cancel → `Cancel` (quantity = intended remaining size); Modify →
//!   `Modify` (reduce keeping priority, new sell marking), answered with Order Modified 'M' (section 3.12); a
//!   change between buy and sell, or more shares, is ignored (section 2.4).
//! * Cancels and replaces of orders not open, and cancels that reduce nothing, are ignored without a reply
//!   (sections 2.2 and 2.3; Order Rejected answers only Enter and Replace, section 3.8) and counted in
//!   [`Translator::ignored`].
//!
//! ## A firm's controls (sections 2.5-2.8, 3.14-3.17)
//! * Mass Cancel 'C' → `MassCancel`: every open order of the session (one firm per account here, so the Firm
//!   field only echoes), all symbols when Symbol is blank; the Side option 'B' scopes to buys, 'S'/'T'/'E' to
//!   sells. Each order canceled is answered Order Canceled 'U' and leaves the feed (ITCH Order Delete); Mass
//!   Cancel Response 'X' follows the last one, echoing the request. A symbol not listed here, or a Group ID other
//!   than 0 (Enter Order's Group ID is not kept, so every order here has none), matches no order: only the
//!   response is sent.
//! * Disable 'D' / Enable 'E' Order Entry → `SetOrderEntry`, answered 'G' / 'K'. While disabled, Enter Order is
//!   rejected with 0x000C Firm Not Authorized (the spec names no code for it; the firm is, for now, not
//!   authorized to enter orders); cancels, modifies and replaces of open orders go on.
//! * These three introduce a UserRefNum, which must exceed every one the session used (section 1.2); a repeat is
//!   answered with its first reply, never applied again.
//! * Account Query 'Q' → `AccountQuery`, answered 'Q' with the session's next UserRefNum by the exchange state
//!   that keeps it (`appliance::exchange`).
//! * UserRefIdx (tag 28) is not supported: it is skipped like any unknown option, and replies carry no appendage
//!   for it.
//!
//! ```text
//!  Mass Cancel echo (20 bytes):  0 Firm (4)  4 Symbol (8)  12 Side code (0: none)  13 Group ID (u16 BE)
//!                                15 Group ID given (0/1)  16 zero (4)
//!  Order entry echo (20 bytes):  0 Firm (4)  4 zero (16)
//! ```
//!
//! ## Market data (TotalView-ITCH 5.0)
//! * Stock locates start at 1 ([`stock_locate`]); Order Reference Numbers are day-unique from 1
//!   ([`crate::order_refs`]) and OUCH Accepted/Replaced carry the same numbers.
//! * Display 'N' (non-displayed): the order never appears in Add Order, Order Cancel, Order Delete or Order
//!   Replace; an execution against it is a Trade (Non-Cross) 'P' (section 1.5.1) with reference 0 and side 'B', as
//!   Nasdaq publishes it, so nothing reveals the resting order. A replace that hides a displayed order deletes it
//!   from the feed; one that shows a hidden order adds it.
//!
//! ## Reject reasons (engine → OUCH 5.0 Appendix C). Where the spec has no exact code the closest is used:
//! UnknownSymbol → 0x0017 Invalid Symbol; UnknownAccount/UnknownSession → 0x000C Firm Not Authorized;
//! UserRefNotIncreasing, InvalidAdmin → 0x000F Other; ZeroQuantity → 0x0013 Invalid Quantity;
//! QuantityTooLarge → 0x001E Shares Exceed Threshold; NotionalTooLarge → 0x001F Exceeds Maximum Notional;
//! InvalidPrice, InvalidStopPrice → 0x001D Invalid Price; InsufficientFunds → 0x0020 Risk: Aggregate Exposure;
//! InsufficientShares → 0x002B Risk: Short Sell Not Allowed; WouldTakeLiquidity → 0x0012 Crossed Market;
//! FokUnfillable → 0x000D Invalid Min Quantity (FOK is expressed with MinQty); NoLiquidity → 0x0001 Quote
//! Unavailable; CapacityExhausted → 0x000A Processing Error; InvalidReplace → 0x0015 Replace Not Allowed;
//! Halted → 0x0007 Halted; EntryDisabled → 0x000C Firm Not Authorized.
//!
//! ## Field validation (sections 2.1, 2.2; Appendix C)
//! Enter Order: Quantity 0 or ≥ 1,000,000 → 0x0013 Invalid Quantity; Display outside Y/N/A → 0x0003 Invalid
//! Display; Intermarket Sweep 'Y' → 0x0008 ISO Not Allowed; Intermarket Sweep, Capacity (A/P/R/O), Time In
//! Force or PostOnly outside their value sets → 0x000F Other (Appendix C has no code for them); Side outside
//! B/S/T/E → 0x0009 Invalid Side (refused by the session layer, since such a message does not parse). A Replace
//! Order with any such field, or a price out of range, cancels the order it names instead (section 2.2 case 2).

use bourse_engine::{
    Cancel, CancelReason, Command, Event, HaltReason, IgnoreReason, MarketHours, MassCancel, Modify, NewOrder,
    OrderKind, RejectReason, Replace, SessionId, SetOrderEntry, Side, SymbolId, TimeInForce, TradingState,
    UserRef,
};
use bourse_nic::wire::alpha::{Alpha, ClOrdId, Symbol};
use bourse_nic::wire::itch;
use bourse_nic::wire::ouch::{self, reject_reason as rr};
use bourse_persist::wal::record::{Echo, ECHO_BYTES};

use crate::appliance::store::{read_u64 as take_u64, take};
use crate::order_refs::OrderRefs;

/// Enter and Replace quantities must be "greater than zero and less than 1,000,000" (sections 2.1, 2.2).
pub const QUANTITY_LIMIT: u32 = 1_000_000;

/// OUCH price meaning "market order" (the all-ones 31-bit price of OUCH 4.x, 214748.3647).
pub const MARKET_PRICE: u64 = 0x7fff_ffff;
/// Largest message either closure receives: an Order Accepted echoing every option the appliance acts on
/// ([`accepted_options`]: 64 + 6 + 3 + 10 = 83 bytes), rounded up.
pub const SCRATCH_BYTES: usize = 88;

/// An OUCH message refused before reaching the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuchReject {
    pub user_ref: UserRef,
    pub reason: u16,
    pub cl_ord_id: ClOrdId,
}

impl OuchReject {
    /// A refusal of `msg` with `reason`, echoing its UserRefNum and (Enter, Replace) ClOrdID.
    pub fn of(msg: &ouch::Inbound, reason: u16) -> OuchReject {
        let (user_ref, cl_ord_id) = match msg {
            ouch::Inbound::EnterOrder(m) => (m.user_ref, m.cl_ord_id),
            ouch::Inbound::ReplaceOrder(m) => (m.user_ref, m.cl_ord_id),
            ouch::Inbound::CancelOrder(m) => (m.user_ref, EMPTY.cl_ord_id),
            ouch::Inbound::ModifyOrder(m) => (m.user_ref, EMPTY.cl_ord_id),
            other => (other.user_ref(), EMPTY.cl_ord_id),
        };
        OuchReject { user_ref, reason, cl_ord_id }
    }
    /// The refusal as a journaled input: `introduces_ref` when the refused message was an Enter or Replace Order.
    pub fn command(&self, session: SessionId, introduces_ref: bool) -> (Command, Echo) {
        let command = Command::Refuse(bourse_engine::Refuse {
            session,
            user_ref: self.user_ref,
            reason: self.reason,
            introduces_ref,
        });
        (command, echo_bytes(&self.cl_ord_id, &EMPTY))
    }

    /// Writes the OUCH Order Rejected message; returns its length.
    pub fn emit(&self, timestamp: u64, buf: &mut [u8]) -> Result<usize, bourse_nic::wire::Error> {
        ouch::Outbound::OrderRejected {
            timestamp,
            user_ref: self.user_ref,
            reason: self.reason,
            cl_ord_id: self.cl_ord_id,
        }
        .emit(buf)
    }
}

/// Engine reject reason → OUCH 5.0 Appendix C code (see the module comment for the closest-code choices).
pub fn reject_code(r: RejectReason) -> u16 {
    match r {
        RejectReason::UnknownSymbol => rr::INVALID_SYMBOL,
        RejectReason::UnknownAccount | RejectReason::UnknownSession | RejectReason::EntryDisabled => {
            rr::FIRM_NOT_AUTHORIZED
        }
        RejectReason::UserRefNotIncreasing | RejectReason::InvalidAdmin => rr::OTHER,
        RejectReason::ZeroQuantity => rr::INVALID_QUANTITY,
        RejectReason::QuantityTooLarge => rr::SHARES_EXCEED_THRESHOLD,
        RejectReason::NotionalTooLarge => rr::EXCEEDS_MAX_NOTIONAL,
        RejectReason::InvalidPrice | RejectReason::InvalidStopPrice => rr::INVALID_PRICE,
        RejectReason::InsufficientFunds => rr::RISK_AGGREGATE_EXPOSURE,
        RejectReason::InsufficientShares => rr::RISK_SHORT_SELL_NOT_ALLOWED,
        RejectReason::WouldTakeLiquidity => CROSSED_MARKET,
        RejectReason::FokUnfillable => rr::INVALID_MIN_QUANTITY,
        RejectReason::NoLiquidity => rr::QUOTE_UNAVAILABLE,
        RejectReason::CapacityExhausted => rr::PROCESSING_ERROR,
        RejectReason::InvalidReplace => rr::REPLACE_NOT_ALLOWED,
        RejectReason::Halted => rr::HALTED,
    }
}

/// Every Order Rejected reason code the engine ([`reject_code`]) and the gateway ([`Translator::on_ouch`]) produce,
/// with the name it is counted under in the stats block and the metrics. Names say what happened here, which is
/// not always the code's OUCH title (0x0020 Risk: Aggregate Exposure is how we report insufficient funds).
pub const REJECT_CODES: [(u16, &str); 21] = [
    (rr::QUOTE_UNAVAILABLE, "no_liquidity"),
    (rr::INVALID_DISPLAY, "invalid_display"),
    (ISO_NOT_ALLOWED, "iso_not_allowed"),
    (rr::HALTED, "halted"),
    (rr::INVALID_SIDE, "invalid_side"),
    (rr::PROCESSING_ERROR, "capacity_exhausted"),
    (rr::FIRM_NOT_AUTHORIZED, "firm_not_authorized"),
    (rr::INVALID_MIN_QUANTITY, "invalid_min_quantity"),
    (rr::OTHER, "other"),
    (PEGGING_NOT_ALLOWED, "pegging_not_allowed"),
    (CROSSED_MARKET, "would_take_liquidity"),
    (rr::INVALID_QUANTITY, "invalid_quantity"),
    (INVALID_CROSS_ORDER, "invalid_cross_order"),
    (rr::REPLACE_NOT_ALLOWED, "replace_not_allowed"),
    (rr::INVALID_SYMBOL, "invalid_symbol"),
    (rr::INVALID_PRICE, "invalid_price"),
    (rr::SHARES_EXCEED_THRESHOLD, "quantity_too_large"),
    (rr::EXCEEDS_MAX_NOTIONAL, "notional_too_large"),
    (rr::RISK_AGGREGATE_EXPOSURE, "insufficient_funds"),
    (rr::RISK_SHORT_SELL_NOT_ALLOWED, "insufficient_shares"),
    (rr::RISK_DUPLICATE_MESSAGE_RATE, "rate_limited"),
];

/// Rows of a reject table: one per entry of [`REJECT_CODES`], then one for any other code ([`OTHER_CODE_ROW`]),
/// then one for OUCH Cancel Reject messages ([`CANCEL_REJECT_ROW`]), which carry no reason code.
pub const REJECT_ROWS: usize = REJECT_CODES.len() + 2;
/// The row of Order Rejected codes not in [`REJECT_CODES`].
pub const OTHER_CODE_ROW: usize = REJECT_CODES.len();
/// The row of Cancel Reject messages (a cancel for an order that is not open): a refusal a firm sees like any
/// other, so the appliance's reject total matches what the firms counted.
pub const CANCEL_REJECT_ROW: usize = REJECT_CODES.len() + 1;

/// Appendix C codes we use that `ouch::reject_reason` does not name.
const ISO_NOT_ALLOWED: u16 = 0x0008;
const PEGGING_NOT_ALLOWED: u16 = 0x0011;
const CROSSED_MARKET: u16 = 0x0012;
const INVALID_CROSS_ORDER: u16 = 0x0014;

/// Codes below this are looked up in [`REJECT_INDEX`]; all of ours are.
const REJECT_INDEX_CODES: usize = 0x40;

/// `REJECT_INDEX[code]` is the row of `code` in [`REJECT_CODES`], or `REJECT_CODES.len()` for codes not listed.
const REJECT_INDEX: [u8; REJECT_INDEX_CODES] = {
    let mut index = [REJECT_CODES.len() as u8; REJECT_INDEX_CODES];
    let mut i = 0;
    while i < REJECT_CODES.len() {
        let code = REJECT_CODES[i].0 as usize;
        assert!(code < REJECT_INDEX_CODES, "reject codes fit the index");
        assert!(index[code] as usize == REJECT_CODES.len(), "each reject code is listed once");
        index[code] = i as u8;
        i += 1;
    }
    index
};

/// The reject-table row of an Order Rejected reason code: its [`REJECT_CODES`] entry, or the last row (others).
#[inline]
pub fn reject_row(code: u16) -> usize {
    REJECT_INDEX.get(code as usize).map_or(REJECT_CODES.len(), |&i| i as usize)
}

/// Engine cancel reason → OUCH Order Canceled reason; `None` for the cancel half of a replace (the Order
/// Replaced message reports it).
pub fn cancel_code(r: CancelReason) -> Option<u8> {
    match r {
        CancelReason::UserRequested => Some(ouch::cancel_reason::USER_REQUESTED),
        CancelReason::ImmediateOrCancel => Some(ouch::cancel_reason::IMMEDIATE_OR_CANCEL),
        CancelReason::SelfTrade => Some(ouch::cancel_reason::SELF_MATCH_PREVENTION),
        CancelReason::Replaced => None,
    }
}

/// What Accepted must echo about an order, kept per (session, UserRefNum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OrderRecord {
    user_ref: UserRef,
    cl_ord_id: ClOrdId,
    side: u8,
    tif: u8,
    display: u8,
    capacity: u8,
    cross_type: u8,
    sell: bool,
}

fn echo_bytes(cl_ord_id: &ClOrdId, r: &OrderRecord) -> Echo {
    let mut e = [0u8; ECHO_BYTES];
    e[..14].copy_from_slice(&cl_ord_id.0);
    e[14..20].copy_from_slice(&[r.side, r.tif, r.display, r.capacity, r.cross_type, b'N']);
    e
}

/// The record an echo describes for `user_ref` (the echo's own bytes are whatever the firm sent, validated by
/// OUCH parsing before they were journaled).
fn record_from_echo(user_ref: UserRef, e: &Echo, sell: bool) -> OrderRecord {
    let mut cl_ord_id = Alpha([b' '; 14]);
    cl_ord_id.0.copy_from_slice(&e[..14]);
    OrderRecord {
        user_ref,
        cl_ord_id,
        side: e[14],
        tif: e[15],
        display: e[16],
        capacity: e[17],
        cross_type: e[18],
        sell,
    }
}

const EMPTY: OrderRecord = OrderRecord {
    user_ref: 0,
    cl_ord_id: Alpha([b' '; 14]),
    side: b'B',
    tif: b'0',
    display: b'Y',
    capacity: b'A',
    cross_type: b'N',
    sell: false,
};

/// Preallocated sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranslateLimits {
    pub sessions_max: u16,
    /// Order records per session, a power of two; direct-mapped by UserRefNum, so the last `records_max` dense
    /// UserRefNums always echo their ClOrdID (an evicted one echoes a blank ClOrdID).
    pub records_max: usize,
}

/// OUCH/ITCH ↔ engine translation with preallocated symbol and order-record tables.
pub struct Translator {
    /// Symbol names by SymbolId, sorted copy for lookups by name.
    names: Vec<Symbol>,
    by_name: Vec<(Symbol, SymbolId)>,
    records: Vec<OrderRecord>,
    records_mask: u32,
    sessions_max: u16,
    /// The ClOrdID of the refusal being applied (its echo), for the Order Rejected it produces.
    refused_cl_ord_id: ClOrdId,
    /// The echo of the Mass Cancel or order-entry switch being applied, for the response it produces.
    control_echo: Echo,
    /// Cancels, replaces and modifies the engine ignored (OUCH answers them with nothing), by reason.
    pub ignored: IgnoredCounts,
    /// Engine references → the day-unique Order Reference Numbers OUCH and ITCH publish (replicated state).
    refs: OrderRefs,
    /// The options of the Enter Order being applied (session, UserRefNum, options), echoed in its Order Accepted.
    /// Set and used within one input, so it is no part of the snapshot.
    entering: Option<(SessionId, UserRef, ouch::Options)>,
    scratch: [u8; SCRATCH_BYTES],
}

/// The options an Order Accepted echoes (OUCH 5.0 section 3.2): those the order was accepted with and the engine
/// acts on, from the journaled order, so a replay echoes the same: MinQty (equal to the quantity: fill or kill),
/// PostOnly 'P', and the stop price (bourse's extension tag). PriceType 'L' and PostOnly 'N' are the defaults and
/// are not echoed; Firm and ExpireTime are decoded but not acted on, so they are not echoed either.
pub fn accepted_options(o: &NewOrder) -> ouch::Options {
    ouch::Options {
        min_qty: (o.tif == TimeInForce::Fok).then_some(o.qty),
        post_only: o.post_only.then_some(b'P'),
        stop_price: matches!(o.kind, OrderKind::Stop | OrderKind::StopLimit).then_some(u64::from(o.stop_price)),
        ..ouch::Options::default()
    }
}

/// Inputs that changed nothing and got no reply (OUCH 5.0 sections 2.2-2.4), counted so that none is silent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredCounts {
    /// Cancel, replace or modify of an order that is not open (never entered, or already done).
    pub unknown_order: u64,
    /// Cancel to a size not below the open quantity, or modify asking for more shares.
    pub not_reduced: u64,
    /// Modify asking to turn a buy into a sell or back.
    pub side_change: u64,
    /// Mass cancel or order-entry switch whose UserRefNum the session had used (the gateway answers repeats
    /// before they are journaled, so only inputs from elsewhere count here).
    pub not_increasing: u64,
}

impl Translator {
    /// `symbols[i]` is the name of SymbolId `i`.
    pub fn new(symbols: &[Symbol], limits: TranslateLimits) -> Translator {
        assert!(
            limits.records_max.is_power_of_two(),
            "records_max must be a power of two"
        );
        assert!(symbols.len() <= usize::from(u16::MAX));
        let mut by_name: Vec<(Symbol, SymbolId)> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as SymbolId))
            .collect();
        by_name.sort();
        Translator {
            names: symbols.to_vec(),
            by_name,
            records: vec![EMPTY; usize::from(limits.sessions_max) * limits.records_max],
            records_mask: limits.records_max as u32 - 1,
            sessions_max: limits.sessions_max,
            refused_cl_ord_id: Alpha([b' '; 14]),
            control_echo: [0; ECHO_BYTES],
            ignored: IgnoredCounts::default(),
            refs: OrderRefs::with_slots(0),
            entering: None,
            scratch: [0; SCRATCH_BYTES],
        }
    }

    /// Sizes the Order Reference Number table for an engine of `orders_max` orders (the exchange does it for its
    /// engine; a translator used alone must do it before the first event). Allocates: call at start-up.
    pub fn size_order_refs(&mut self, orders_max: usize) {
        self.refs = OrderRefs::with_slots(orders_max);
    }

    /// The Order Reference Number table (its counter of unmapped references is exported).
    pub fn order_refs(&self) -> &OrderRefs {
        &self.refs
    }

    /// Serialises the Order Reference Number table (for the exchange state's snapshot).
    pub fn write_order_refs(&self, out: &mut Vec<u8>) {
        self.refs.write_to(out);
    }

    /// Restores what [`Translator::write_order_refs`] wrote; `None` when it does not fit this translator.
    pub fn read_order_refs(&mut self, bytes: &mut &[u8]) -> Option<()> {
        self.refs.read_from(bytes)
    }

    pub fn symbol_id(&self, name: &Symbol) -> Option<SymbolId> {
        self.by_name
            .binary_search_by(|(n, _)| n.cmp(name))
            .ok()
            .map(|i| self.by_name[i].1)
    }

    pub fn symbol_name(&self, id: SymbolId) -> Symbol {
        self.names
            .get(usize::from(id))
            .copied()
            .unwrap_or(Symbol::BLANK)
    }

    fn slot(&self, session: SessionId, user_ref: UserRef) -> Option<usize> {
        (session < self.sessions_max).then(|| {
            usize::from(session) * (self.records_mask as usize + 1)
                + (user_ref & self.records_mask) as usize
        })
    }

    fn record(&self, session: SessionId, user_ref: UserRef) -> OrderRecord {
        match self.slot(session, user_ref) {
            Some(i) if self.records[i].user_ref == user_ref => self.records[i],
            _ => OrderRecord { user_ref, ..EMPTY },
        }
    }

    /// The record, with the engine's side filled in when the record was evicted (its side code then disagrees).
    fn record_for(&self, session: SessionId, user_ref: UserRef, side: Side) -> OrderRecord {
        let rec = self.record(session, user_ref);
        let sell = side == Side::Sell;
        if rec.sell == sell {
            rec
        } else {
            OrderRecord {
                side: if sell { b'S' } else { b'B' },
                sell,
                ..rec
            }
        }
    }

    fn put_record(&mut self, session: SessionId, rec: OrderRecord) {
        if let Some(i) = self.slot(session, rec.user_ref) {
            self.records[i] = rec;
        }
    }

    /// Records what a journaled input's replies will echo, as it is applied: a New Order's echo as it came, a
    /// Replace's new ClOrdID, time in force and display over what the replaced order echoed, a refusal's ClOrdID.
    /// Inputs without an echo (operator orders) echo the defaults.
    pub fn remember(&mut self, command: &Command, echo: &Echo) {
        let echoed = echo.iter().any(|&b| b != 0);
        self.entering = None;
        match command {
            Command::NewOrder(o) => {
                self.entering = Some((o.session, o.user_ref, accepted_options(o)));
                let sell = o.side == Side::Sell;
                let rec = if echoed {
                    record_from_echo(o.user_ref, echo, sell)
                } else {
                    OrderRecord { user_ref: o.user_ref, side: if sell { b'S' } else { b'B' }, sell, ..EMPTY }
                };
                self.put_record(o.session, rec);
            }
            Command::Replace(r) => {
                let old = self.record(r.session, r.orig_user_ref);
                let new = record_from_echo(r.new_user_ref, echo, old.sell);
                let rec = if echoed {
                    OrderRecord { user_ref: r.new_user_ref, cl_ord_id: new.cl_ord_id, tif: new.tif, display: new.display, ..old }
                } else {
                    OrderRecord { user_ref: r.new_user_ref, ..old }
                };
                self.put_record(r.session, rec);
            }
            Command::Refuse(_) => self.refused_cl_ord_id.0.copy_from_slice(&echo[..14]),
            Command::MassCancel(_) | Command::SetOrderEntry(_) => self.control_echo = *echo,
            _ => {}
        }
    }

    /// Serialises the order records (for the exchange state's snapshot).
    pub fn write_records(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for r in &self.records {
            out.extend_from_slice(&r.user_ref.to_le_bytes());
            out.extend_from_slice(&r.cl_ord_id.0);
            out.extend_from_slice(&[r.side, r.tif, r.display, r.capacity, r.cross_type, u8::from(r.sell)]);
        }
    }

    /// Restores what [`Translator::write_records`] wrote; `None` when the bytes do not fit this translator.
    pub fn read_records(&mut self, bytes: &mut &[u8]) -> Option<()> {
        let n = take_u64(bytes)?;
        if n != self.records.len() as u64 {
            return None;
        }
        for r in self.records.iter_mut() {
            let b = take(bytes, 24)?;
            r.user_ref = u32::from_le_bytes(b[..4].try_into().ok()?);
            r.cl_ord_id.0.copy_from_slice(&b[4..18]);
            let [side, tif, display, capacity, cross_type, sell] = b[18..24].try_into().ok()?;
            if sell > 1 {
                return None;
            }
            *r = OrderRecord { side, tif, display, capacity, cross_type, sell: sell == 1, ..*r };
        }
        Some(())
    }

    /// OUCH inbound → engine command with the fields its replies echo, or a refusal. Changes nothing: the
    /// command is journaled, and applying it records the echo ([`Translator::remember`]).
    pub fn on_ouch(
        &self,
        session: SessionId,
        account: u32,
        msg: &ouch::Inbound,
    ) -> Result<(Command, Option<Echo>), OuchReject> {
        match msg {
            ouch::Inbound::EnterOrder(m) => self.enter(session, account, m),
            ouch::Inbound::ReplaceOrder(m) => {
                // Section 2.2, case 2: "If the order for the existing Order UserRefNum is live but the details of
                // the replace are invalid (e.g.: new Shares >= 1,000,000), a Cancel Order Message will take the
                // existing order out of the book", and the new UserRefNum is not consumed. A cancel does exactly
                // that, and is ignored when the order is no longer live (case 1).
                let Some(price) = ticks(m.price).filter(|_| replace_is_valid(m)) else {
                    let cancel = Cancel { session, user_ref: m.orig_user_ref, qty: 0 };
                    return Ok((Command::Cancel(cancel), None));
                };
                let echo = echo_bytes(&m.cl_ord_id, &OrderRecord { tif: m.time_in_force, display: m.display, ..EMPTY });
                Ok((
                    Command::Replace(Replace {
                        session,
                        orig_user_ref: m.orig_user_ref,
                        new_user_ref: m.user_ref,
                        qty: m.quantity,
                        price,
                    }),
                    Some(echo),
                ))
            }
            ouch::Inbound::CancelOrder(m) => Ok((
                Command::Cancel(Cancel {
                    session,
                    user_ref: m.user_ref,
                    qty: m.quantity,
                }),
                None,
            )),
            ouch::Inbound::ModifyOrder(m) => {
                // Section 2.4 allows the sell markings to change among themselves (S, T, E); a change between
                // buy and sell, or more shares, is ignored by the engine, which knows the order.
                let side = if m.side == ouch::Side::Buy { Side::Buy } else { Side::Sell };
                let modify = Modify { session, user_ref: m.user_ref, qty: m.quantity, side, side_code: m.side.code() };
                Ok((Command::Modify(modify), None))
            }
            ouch::Inbound::MassCancel(m) => Ok((Command::MassCancel(self.mass_cancel(session, m)), Some(mass_echo(m)))),
            ouch::Inbound::DisableOrderEntry(m) | ouch::Inbound::EnableOrderEntry(m) => {
                let enabled = matches!(msg, ouch::Inbound::EnableOrderEntry(_));
                let mut echo = [0; ECHO_BYTES];
                echo[..4].copy_from_slice(&m.firm.0);
                Ok((Command::SetOrderEntry(SetOrderEntry { session, user_ref: m.user_ref, enabled }), Some(echo)))
            }
            ouch::Inbound::AccountQuery => Ok((Command::AccountQuery(session), None)),
        }
    }

    /// A Mass Cancel's scope (section 2.5): a symbol this venue does not list, or a Group ID no order here can
    /// have, scopes to [`NO_SYMBOL`], which holds no order.
    fn mass_cancel(&self, session: SessionId, m: &ouch::MassCancelRequest) -> MassCancel {
        let symbol = if m.group_id.is_some_and(|g| g != 0) {
            Some(NO_SYMBOL)
        } else if m.symbol.is_blank() {
            None
        } else {
            Some(self.symbol_id(&m.symbol).unwrap_or(NO_SYMBOL))
        };
        let side = m.side.map(|s| if s == ouch::Side::Buy { Side::Buy } else { Side::Sell });
        MassCancel { session, user_ref: m.user_ref, symbol, side }
    }

    fn enter(
        &self,
        session: SessionId,
        account: u32,
        m: &ouch::EnterOrder,
    ) -> Result<(Command, Option<Echo>), OuchReject> {
        let rej = |reason| OuchReject {
            user_ref: m.user_ref,
            reason,
            cl_ord_id: m.cl_ord_id,
        };
        let symbol = self.symbol_id(&m.symbol).ok_or(rej(rr::INVALID_SYMBOL))?;
        if let Some(reason) = enter_field_error(m) {
            return Err(rej(reason));
        }
        if m.cross_type != b'N' {
            return Err(rej(INVALID_CROSS_ORDER));
        }
        if m.options.price_type.is_some_and(|p| p != b'L') {
            return Err(rej(PEGGING_NOT_ALLOWED));
        }
        let market = m.price == MARKET_PRICE;
        let price = if market {
            0
        } else {
            ticks(m.price).ok_or(rej(rr::INVALID_PRICE))?
        };
        let stop_price = match m.options.stop_price {
            Some(p) => Some(ticks(p).ok_or(rej(rr::INVALID_PRICE))?),
            None => None,
        };
        let kind = match (market, stop_price) {
            (true, None) => OrderKind::Market,
            (false, None) => OrderKind::Limit,
            (true, Some(_)) => OrderKind::Stop,
            (false, Some(_)) => OrderKind::StopLimit,
        };
        let tif = match (m.time_in_force, m.options.min_qty) {
            (ouch::tif::IOC, Some(q)) if q == m.quantity => TimeInForce::Fok,
            (_, Some(q)) if q != 0 => return Err(rej(rr::INVALID_MIN_QUANTITY)),
            (ouch::tif::IOC, _) => TimeInForce::Ioc,
            (ouch::tif::DAY | ouch::tif::GTX | ouch::tif::GTT | ouch::tif::AFTER_HOURS, _) => {
                TimeInForce::Day
            }
            _ => return Err(rej(rr::OTHER)),
        };
        let sell = m.side != ouch::Side::Buy;
        let echo = echo_bytes(
            &m.cl_ord_id,
            &OrderRecord {
                user_ref: m.user_ref,
                cl_ord_id: m.cl_ord_id,
                side: m.side.code(),
                tif: m.time_in_force,
                display: m.display,
                capacity: m.capacity,
                cross_type: m.cross_type,
                sell,
            },
        );
        let command = Command::NewOrder(NewOrder {
            session,
            user_ref: m.user_ref,
            account,
            symbol,
            side: if sell { Side::Sell } else { Side::Buy },
            kind,
            tif,
            post_only: m.options.post_only == Some(b'P'),
            qty: m.quantity,
            price,
            stop_price: stop_price.unwrap_or(0),
        });
        Ok((command, Some(echo)))
    }

    fn ouch(
        &mut self,
        session: SessionId,
        first: Option<UserRef>,
        m: ouch::Outbound,
        out: &mut impl FnMut(SessionId, Option<UserRef>, &[u8]),
    ) {
        // SCRATCH_BYTES holds the largest outbound message, so emit cannot fail.
        if let Ok(n) = m.emit(&mut self.scratch) {
            out(session, first, &self.scratch[..n]);
        }
    }

    /// The feed's start or end of day (TotalView-ITCH 5.0 section 1.1 System Event codes):
    ///
    /// ```text
    ///  Open:  'O' start of messages, 'R' Stock Directory per symbol (section 1.2.1), 'H' Stock Trading Action
    ///         state 'T' per symbol (section 1.2.2: the Trading Action spin "prior to the start of system
    ///         hours"), 'S' start of system hours, 'Q' start of market hours
    ///  Close: 'M' end of market hours, 'E' end of system hours, 'C' end of messages
    /// ```
    pub fn on_market_hours(&mut self, hours: MarketHours, timestamp: u64, itch_out: &mut impl FnMut(&[u8])) {
        use itch::event_code as code;
        let system = |event_code| {
            // System Event: "Stock Locate: Always 0".
            itch::Message::SystemEvent(itch::SystemEvent {
                header: itch::Header { locate: 0, tracking: 0, timestamp },
                event_code,
            })
        };
        match hours {
            MarketHours::Open { .. } => {
                self.itch(system(code::START_OF_MESSAGES), itch_out);
                for symbol in 0..self.names.len() as SymbolId {
                    let m = self.stock_directory(symbol, timestamp);
                    self.itch(itch::Message::StockDirectory(m), itch_out);
                }
                for symbol in 0..self.names.len() as SymbolId {
                    let m = itch::TradingAction {
                        header: itch::Header { locate: stock_locate(symbol), tracking: 0, timestamp },
                        stock: self.symbol_name(symbol),
                        state: itch::trading_state::TRADING,
                        reason: Alpha(*b"    "),
                    };
                    self.itch(itch::Message::TradingAction(m), itch_out);
                }
                self.itch(system(code::START_OF_SYSTEM_HOURS), itch_out);
                self.itch(system(code::START_OF_MARKET_HOURS), itch_out);
            }
            MarketHours::Close => {
                for c in [code::END_OF_MARKET_HOURS, code::END_OF_SYSTEM_HOURS, code::END_OF_MESSAGES] {
                    self.itch(system(c), itch_out);
                }
            }
        }
    }

    /// The Stock Directory of `symbol`. This venue lists nothing of Nasdaq's, so the listing fields say "not
    /// available" (space) where the spec has that value; round lots of 100 without a round-lot-only restriction
    /// (the engine takes any quantity), common stock ('C', sub-type "Z " not applicable), live ('P').
    fn stock_directory(&self, symbol: SymbolId, timestamp: u64) -> itch::StockDirectory {
        itch::StockDirectory {
            header: itch::Header { locate: stock_locate(symbol), tracking: 0, timestamp },
            stock: self.symbol_name(symbol),
            market_category: b' ',
            financial_status: b' ',
            round_lot_size: 100,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_subtype: *b"Z ",
            authenticity: b'P',
            short_sale_threshold: b' ',
            ipo_flag: b' ',
            luld_tier: b' ',
            etp_flag: b' ',
            etp_leverage_factor: 0,
            inverse_indicator: b'N',
        }
    }

    /// Add Order 'A' (section 1.3.1) for a displayed order.
    #[allow(clippy::too_many_arguments)]
    fn add_order(
        &mut self,
        header: itch::Header,
        order_ref: u64,
        sell: bool,
        symbol: SymbolId,
        price: u32,
        shares: u32,
        out: &mut impl FnMut(&[u8]),
    ) {
        let side = if sell { itch::Side::Sell } else { itch::Side::Buy };
        let stock = self.symbol_name(symbol);
        let m = itch::AddOrder { header, order_ref, side, shares, stock, price, attribution: None };
        self.itch(itch::Message::AddOrder(m), out);
    }

    fn itch(&mut self, m: itch::Message, out: &mut impl FnMut(&[u8])) {
        if let Ok(n) = m.emit(&mut self.scratch) {
            out(&self.scratch[..n]);
        }
    }

    /// Engine event → OUCH replies (per owning session) and ITCH market data, encoded without allocation.
    pub fn on_event(
        &mut self,
        ev: &Event,
        timestamp: u64,
        ouch_out: &mut impl FnMut(SessionId, Option<UserRef>, &[u8]),
        itch_out: &mut impl FnMut(&[u8]),
    ) {
        let h = |symbol: SymbolId| itch::Header {
            locate: stock_locate(symbol),
            tracking: 0,
            timestamp,
        };
        match *ev {
            Event::Accepted {
                order_ref,
                session,
                user_ref,
                symbol,
                side,
                qty,
                price,
                kind,
                ..
            } => {
                let rec = self.record_for(session, user_ref, side);
                let order_ref = self.refs.assign(order_ref, rec.display == b'N', side == Side::Sell).number;
                let price = if matches!(kind, OrderKind::Market | OrderKind::Stop) {
                    MARKET_PRICE
                } else {
                    u64::from(price)
                };
                let m = ouch::Outbound::OrderAccepted(ouch::OrderAccepted {
                    timestamp,
                    user_ref,
                    side: ouch::Side::from_code(rec.side).unwrap_or(ouch::Side::Buy),
                    quantity: qty,
                    symbol: self.symbol_name(symbol),
                    price,
                    time_in_force: rec.tif,
                    display: rec.display,
                    order_ref,
                    capacity: rec.capacity,
                    intermarket_sweep: b'N',
                    cross_type: rec.cross_type,
                    order_state: ouch::order_state::LIVE,
                    cl_ord_id: rec.cl_ord_id,
                    options: match self.entering {
                        Some((s, u, options)) if (s, u) == (session, user_ref) => options,
                        _ => ouch::Options::default(),
                    },
                });
                self.ouch(session, Some(user_ref), m, ouch_out);
            }
            Event::Rejected {
                session,
                user_ref,
                reason,
            } => {
                let rec = self.record(session, user_ref);
                let m = ouch::Outbound::OrderRejected {
                    timestamp,
                    user_ref,
                    reason: reject_code(reason),
                    cl_ord_id: rec.cl_ord_id,
                };
                self.ouch(session, Some(user_ref), m, ouch_out);
            }
            Event::Executed {
                symbol,
                match_number,
                price,
                qty,
                maker,
                taker,
                ..
            } => {
                for (p, liquidity) in [(maker, b'A'), (taker, b'R')] {
                    let m = ouch::Outbound::OrderExecuted {
                        timestamp,
                        user_ref: p.user_ref,
                        quantity: qty,
                        price: u64::from(price),
                        liquidity,
                        match_number,
                    };
                    self.ouch(p.session, None, m, ouch_out);
                }
                let resting = self.refs.get(maker.order_ref);
                let m = if resting.hidden {
                    // Trade (Non-Cross) 'P', section 1.5.1: reports a match of a non-displayed order without
                    // naming it. Nasdaq fills its Order Reference Number with zero and its Buy/Sell Indicator
                    // with 'B' "regardless of the resting side"; we do the same, revealing nothing of the order.
                    itch::Message::Trade(itch::Trade {
                        header: h(symbol),
                        order_ref: 0,
                        side: itch::Side::Buy,
                        shares: qty,
                        stock: self.symbol_name(symbol),
                        price,
                        match_number,
                    })
                } else {
                    itch::Message::OrderExecuted(itch::OrderExecuted {
                        header: h(symbol),
                        order_ref: resting.number,
                        shares: qty,
                        match_number,
                        with_price: None,
                    })
                };
                self.itch(m, itch_out);
            }
            Event::Canceled {
                session,
                user_ref,
                canceled_qty,
                reason,
                ..
            } => {
                if let Some(reason) = cancel_code(reason) {
                    let m = ouch::Outbound::OrderCanceled {
                        timestamp,
                        user_ref,
                        quantity: canceled_qty,
                        reason,
                    };
                    self.ouch(session, None, m, ouch_out);
                }
            }
            Event::Modified { session, user_ref, side, side_code, leaves_qty, .. } => {
                // Order Modified (section 3.12) reports the side as the modify marked it and the open quantity;
                // later replies echo the new marking.
                let rec = self.record_for(session, user_ref, side);
                self.put_record(session, OrderRecord { side: side_code, ..rec });
                let m = ouch::Outbound::OrderModified {
                    timestamp,
                    user_ref,
                    side: ouch::Side::from_code(side_code).unwrap_or(ouch::Side::Sell),
                    quantity: leaves_qty,
                };
                self.ouch(session, None, m, ouch_out);
            }
            Event::Replaced {
                new_ref,
                session,
                orig_user_ref,
                new_user_ref,
                symbol,
                side,
                qty,
                price,
                ..
            } => {
                let rec = self.record_for(session, new_user_ref, side);
                let new_ref = self.refs.assign(new_ref, rec.display == b'N', side == Side::Sell).number;
                let order = ouch::OrderAccepted {
                    timestamp,
                    user_ref: new_user_ref,
                    side: ouch::Side::from_code(rec.side).unwrap_or(ouch::Side::Buy),
                    quantity: qty,
                    symbol: self.symbol_name(symbol),
                    price: u64::from(price),
                    time_in_force: rec.tif,
                    display: rec.display,
                    order_ref: new_ref,
                    capacity: rec.capacity,
                    intermarket_sweep: b'N',
                    cross_type: rec.cross_type,
                    order_state: ouch::order_state::LIVE,
                    cl_ord_id: rec.cl_ord_id,
                    // The replacement keeps the original's behaviour; its own appendage is not echoed.
                    options: ouch::Options::default(),
                };
                self.ouch(
                    session,
                    Some(new_user_ref),
                    ouch::Outbound::OrderReplaced {
                        orig_user_ref,
                        order,
                    },
                    ouch_out,
                );
            }
            Event::BookAdd {
                order_ref,
                symbol,
                side,
                price,
                qty,
            } => {
                let order = self.refs.get(order_ref);
                if !order.hidden {
                    self.add_order(h(symbol), order.number, side == Side::Sell, symbol, price, qty, itch_out);
                }
            }
            Event::BookReduce {
                order_ref,
                symbol,
                canceled_qty,
            } => {
                let order = self.refs.get(order_ref);
                if !order.hidden {
                    let m = itch::OrderCancel { header: h(symbol), order_ref: order.number, canceled_shares: canceled_qty };
                    self.itch(itch::Message::OrderCancel(m), itch_out);
                }
            }
            Event::BookDelete { order_ref, symbol } => {
                let order = self.refs.get(order_ref);
                if !order.hidden {
                    let m = itch::OrderDelete { header: h(symbol), order_ref: order.number };
                    self.itch(itch::Message::OrderDelete(m), itch_out);
                }
            }
            Event::BookReplace {
                old_ref,
                new_ref,
                symbol,
                price,
                qty,
            } => {
                // A replace may change Display (OUCH 5.0 section 2.2): the feed shows only displayed orders, so
                // an order becoming hidden leaves the book ('D') and one becoming displayed enters it ('A').
                let (old, new) = (self.refs.get(old_ref), self.refs.get(new_ref));
                match (old.hidden, new.hidden) {
                    (false, false) => {
                        let m = itch::OrderReplace {
                            header: h(symbol),
                            orig_ref: old.number,
                            new_ref: new.number,
                            shares: qty,
                            price,
                        };
                        self.itch(itch::Message::OrderReplace(m), itch_out);
                    }
                    (false, true) => {
                        let m = itch::OrderDelete { header: h(symbol), order_ref: old.number };
                        self.itch(itch::Message::OrderDelete(m), itch_out);
                    }
                    (true, false) => self.add_order(h(symbol), new.number, new.sell, symbol, price, qty, itch_out),
                    (true, true) => {}
                }
            }
            Event::TradingAction {
                symbol,
                state,
                reason,
            } => {
                let reason = match reason {
                    HaltReason::PriceBand => *b"LUDP",
                    HaltReason::MarketWide(1) => *b"MWC1",
                    HaltReason::MarketWide(2) => *b"MWC2",
                    HaltReason::MarketWide(_) => *b"MWC3",
                    HaltReason::Operator => *b"H10 ",
                    HaltReason::Resumed => *b"    ",
                };
                let state = match state {
                    TradingState::Trading => itch::trading_state::TRADING,
                    TradingState::Halted => itch::trading_state::HALTED,
                };
                let m = itch::TradingAction {
                    header: h(symbol),
                    stock: self.symbol_name(symbol),
                    state,
                    reason: Alpha(reason),
                };
                self.itch(itch::Message::TradingAction(m), itch_out);
            }
            Event::Refused { session, user_ref, reason } => {
                let m = ouch::Outbound::OrderRejected {
                    timestamp,
                    user_ref,
                    reason,
                    cl_ord_id: self.refused_cl_ord_id,
                };
                self.ouch(session, Some(user_ref), m, ouch_out);
            }
            Event::Ignored { reason, .. } => match reason {
                IgnoreReason::UnknownOrder => self.ignored.unknown_order += 1,
                IgnoreReason::NotReduced => self.ignored.not_reduced += 1,
                IgnoreReason::SideChange => self.ignored.side_change += 1,
                IgnoreReason::NotIncreasing => self.ignored.not_increasing += 1,
            },
            Event::MassCanceled { session, user_ref, .. } => {
                let request = mass_request(user_ref, &self.control_echo);
                let m = ouch::Outbound::MassCancelResponse { timestamp, request };
                self.ouch(session, Some(user_ref), m, ouch_out);
            }
            Event::OrderEntrySet { session, user_ref, enabled } => {
                let request = ouch::OrderEntryRequest { user_ref, firm: Alpha(array(&self.control_echo, 0)) };
                let m = if enabled {
                    ouch::Outbound::EnableOrderEntryResponse { timestamp, request }
                } else {
                    ouch::Outbound::DisableOrderEntryResponse { timestamp, request }
                };
                self.ouch(session, Some(user_ref), m, ouch_out);
            }
            // No OUCH or ITCH message exists for these: a triggered stop is reported by what it then does.
            Event::StopTriggered { .. }
            | Event::AdminRejected { .. }
            | Event::AdminApplied { .. } => {}
        }
    }
}

/// The Appendix C code refusing an Enter Order field outside its section 2.1 value set, or one we do not take.
/// Appendix C has codes for the quantity and the display; time in force (checked with MinQty by the caller),
/// capacity and a PostOnly value outside 'P'/'N' have none and get Other. Intermarket Sweep 'Y' is valid but
/// refused as ISO Not Allowed: an ISO promises the firm swept the other venues' protected quotes, which this
/// venue neither checks nor routes for.
fn enter_field_error(m: &ouch::EnterOrder) -> Option<u16> {
    if m.quantity == 0 || m.quantity >= QUANTITY_LIMIT {
        return Some(rr::INVALID_QUANTITY);
    }
    if !matches!(m.display, b'Y' | b'N' | b'A') {
        return Some(rr::INVALID_DISPLAY);
    }
    match m.intermarket_sweep {
        b'N' => {}
        b'Y' => return Some(ISO_NOT_ALLOWED),
        _ => return Some(rr::OTHER),
    }
    if !matches!(m.capacity, b'A' | b'P' | b'R' | b'O') {
        return Some(rr::OTHER);
    }
    if m.options.post_only.is_some_and(|p| p != b'P' && p != b'N') {
        return Some(rr::OTHER);
    }
    None
}

/// Whether a Replace Order's own fields are in their section 2.2 value sets (Time In Force there has no 'E';
/// Intermarket Sweep 'Y' is not taken, as on Enter).
fn replace_is_valid(m: &ouch::ReplaceOrder) -> bool {
    use ouch::tif;
    (1..QUANTITY_LIMIT).contains(&m.quantity)
        && matches!(m.time_in_force, tif::DAY | tif::IOC | tif::GTX | tif::GTT)
        && matches!(m.display, b'Y' | b'N' | b'A')
        && m.intermarket_sweep == b'N'
        && m.options.post_only.is_none_or(|p| p == b'P' || p == b'N')
}

/// The symbol a Mass Cancel names when it can match no order: the translator's ids are below `u16::MAX`.
pub const NO_SYMBOL: SymbolId = SymbolId::MAX;

/// The journaled echo of a Mass Cancel Request (layout in the module comment).
fn mass_echo(m: &ouch::MassCancelRequest) -> Echo {
    let mut e = [0; ECHO_BYTES];
    e[..4].copy_from_slice(&m.firm.0);
    e[4..12].copy_from_slice(&m.symbol.0);
    e[12] = m.side.map_or(0, ouch::Side::code);
    if let Some(g) = m.group_id {
        e[13..15].copy_from_slice(&g.to_be_bytes());
        e[15] = 1;
    }
    e
}

/// The request a Mass Cancel Response echoes, from the journaled echo (an invalid side code, which only a
/// journal not written by this gateway can hold, is left out).
fn mass_request(user_ref: UserRef, e: &Echo) -> ouch::MassCancelRequest {
    ouch::MassCancelRequest {
        user_ref,
        firm: Alpha(array(e, 0)),
        symbol: Alpha(array(e, 4)),
        side: ouch::Side::from_code(e[12]).ok(),
        group_id: (e[15] == 1).then(|| u16::from_be_bytes([e[13], e[14]])),
    }
}

fn array<const N: usize>(e: &Echo, at: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&e[at..at + N]);
    a
}

/// The Stock Locate of `symbol`: TotalView-ITCH 5.0 "Architecture" assigns locate codes "starting with a value
/// of 1" and keeps 0 for messages that are not stock dependent, so SymbolId 0 is locate 1.
pub fn stock_locate(symbol: SymbolId) -> u16 {
    symbol.wrapping_add(1)
}

/// OUCH u64 price (4 decimals) → engine ticks (4 decimals), `None` when out of the engine's range.
pub fn ticks(p: u64) -> Option<u32> {
    u32::try_from(p).ok()
}
