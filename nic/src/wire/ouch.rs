//! Nasdaq OUCH 5.0 order entry messages ("OUCH 5.0 Order Entry Specification", rev 1.04: section 2 "Inbound
//! Messages", section 3 "Outbound Messages", Appendix A "Optional Fields", Appendix C "Order Reject Reasons").
//!
//! Each OUCH message travels as the payload of one SoupBinTCP data packet: inbound in Unsequenced Data, outbound
//! sequenced (here in MoldUDP64 framing). All integers are big-endian. UserRefNum is u32, strictly increasing
//! per session; Price is u64 with 4 implied decimals; Symbol is 8 bytes; ClOrdID is 14 bytes; Timestamp is u64
//! nanoseconds since midnight.
//!
//! Messages that may carry options end with Appendage Length (u16) followed by that many bytes of
//! tag-length-value options, each `length (u8, counting tag + value) | tag (u8) | value`:
//!
//! ```text
//! … | appendage length (u16) | len | tag | value … | len | tag | value … |
//! ```
//!
//! Unknown tags are skipped by their length; an option whose length is zero, overruns the appendage, or whose
//! value has the wrong width for a known tag makes the whole message malformed.

use super::alpha::{Alpha, ClOrdId, Symbol};
use super::be::{get_array, get_u16, get_u32, get_u64, put_array, put_u16, put_u32, put_u64};
use super::error::{need, room, Error, Result};

const FORMAT: &str = "ouch";

/// Offsets of every message's fields (type byte at 0).
pub mod field {
    /// Enter Order 'O' — section 2.1.
    pub mod enter {
        pub const USER_REF: usize = 1;
        pub const SIDE: usize = 5;
        pub const QUANTITY: usize = 6;
        pub const SYMBOL: usize = 10;
        pub const PRICE: usize = 18;
        pub const TIF: usize = 26;
        pub const DISPLAY: usize = 27;
        pub const CAPACITY: usize = 28;
        pub const ISE: usize = 29;
        pub const CROSS_TYPE: usize = 30;
        pub const CL_ORD_ID: usize = 31;
        pub const APPENDAGE_LEN: usize = 45;
        pub const LEN: usize = 47;
    }
    /// Replace Order 'U' — section 2.2.
    pub mod replace {
        pub const ORIG_USER_REF: usize = 1;
        pub const USER_REF: usize = 5;
        pub const QUANTITY: usize = 9;
        pub const PRICE: usize = 13;
        pub const TIF: usize = 21;
        pub const DISPLAY: usize = 22;
        pub const ISE: usize = 23;
        pub const CL_ORD_ID: usize = 24;
        pub const APPENDAGE_LEN: usize = 38;
        pub const LEN: usize = 40;
    }
    /// Cancel Order 'X' — section 2.3. Appendage Length and the appendage are optional: the message is 9 bytes
    /// without them.
    pub mod cancel {
        pub const USER_REF: usize = 1;
        pub const QUANTITY: usize = 5;
        pub const LEN: usize = 9;
        pub const APPENDAGE_LEN: usize = 9;
    }
    /// Modify Order 'M' — section 2.4. Appendage Length and the appendage are optional: 10 bytes without them.
    pub mod modify {
        pub const USER_REF: usize = 1;
        pub const SIDE: usize = 5;
        pub const QUANTITY: usize = 6;
        pub const LEN: usize = 10;
        pub const APPENDAGE_LEN: usize = 10;
    }
    /// Mass Cancel Request 'C' — section 2.5: Symbol blank for every symbol; Side and Group ID come as options.
    pub mod mass_cancel {
        pub const USER_REF: usize = 1;
        pub const FIRM: usize = 5;
        pub const SYMBOL: usize = 9;
        pub const APPENDAGE_LEN: usize = 17;
        pub const LEN: usize = 19;
    }
    /// Disable Order Entry Request 'D' — section 2.6, and Enable Order Entry Request 'E' — section 2.7 (the same
    /// layout).
    pub mod order_entry {
        pub const USER_REF: usize = 1;
        pub const FIRM: usize = 5;
        pub const APPENDAGE_LEN: usize = 9;
        pub const LEN: usize = 11;
    }
    /// Account Query Request 'Q' — section 2.8: the type byte alone, or with an Appendage Length and appendage
    /// ("the Appendage Length and Optional Appendage fields are optional on this message type").
    pub mod account_query {
        pub const LEN: usize = 1;
        pub const APPENDAGE_LEN: usize = 1;
    }
    /// Every outbound message: type, then Timestamp.
    pub const TIMESTAMP: usize = 1;
    /// System Event 'S' — section 3.1.
    pub mod system_event {
        pub const EVENT_CODE: usize = 9;
        pub const LEN: usize = 10;
    }
    /// Order Accepted 'A' — section 3.2.
    pub mod accepted {
        pub const USER_REF: usize = 9;
        pub const SIDE: usize = 13;
        pub const QUANTITY: usize = 14;
        pub const SYMBOL: usize = 18;
        pub const PRICE: usize = 26;
        pub const TIF: usize = 34;
        pub const DISPLAY: usize = 35;
        pub const ORDER_REF: usize = 36;
        pub const CAPACITY: usize = 44;
        pub const ISE: usize = 45;
        pub const CROSS_TYPE: usize = 46;
        pub const ORDER_STATE: usize = 47;
        pub const CL_ORD_ID: usize = 48;
        pub const APPENDAGE_LEN: usize = 62;
        pub const LEN: usize = 64;
    }
    /// Order Replaced 'U' — section 3.3.
    pub mod replaced {
        pub const ORIG_USER_REF: usize = 9;
        pub const USER_REF: usize = 13;
        pub const SIDE: usize = 17;
        pub const QUANTITY: usize = 18;
        pub const SYMBOL: usize = 22;
        pub const PRICE: usize = 30;
        pub const TIF: usize = 38;
        pub const DISPLAY: usize = 39;
        pub const ORDER_REF: usize = 40;
        pub const CAPACITY: usize = 48;
        pub const ISE: usize = 49;
        pub const CROSS_TYPE: usize = 50;
        pub const ORDER_STATE: usize = 51;
        pub const CL_ORD_ID: usize = 52;
        pub const APPENDAGE_LEN: usize = 66;
        pub const LEN: usize = 68;
    }
    /// Order Canceled 'C' — section 3.4.
    pub mod canceled {
        pub const USER_REF: usize = 9;
        pub const QUANTITY: usize = 13;
        pub const REASON: usize = 17;
        pub const LEN: usize = 18;
    }
    /// Order Executed 'E' — section 3.6.
    pub mod executed {
        pub const USER_REF: usize = 9;
        pub const QUANTITY: usize = 13;
        pub const PRICE: usize = 17;
        pub const LIQUIDITY: usize = 25;
        pub const MATCH_NUMBER: usize = 26;
        pub const APPENDAGE_LEN: usize = 34;
        pub const LEN: usize = 36;
    }
    /// Order Rejected 'J' — section 3.8.
    pub mod rejected {
        pub const USER_REF: usize = 9;
        pub const REASON: usize = 13;
        pub const CL_ORD_ID: usize = 15;
        pub const LEN: usize = 29;
    }
    /// Cancel Reject 'I' — section 3.10.
    pub mod cancel_reject {
        pub const USER_REF: usize = 9;
        pub const LEN: usize = 13;
    }
    /// Order Modified 'M' — section 3.12.
    pub mod modified {
        pub const USER_REF: usize = 9;
        pub const SIDE: usize = 13;
        pub const QUANTITY: usize = 14;
        pub const LEN: usize = 18;
    }
    /// Mass Cancel Response 'X' — section 3.14: the request's fields echoed, its Side and Group ID options too.
    pub mod mass_cancel_response {
        pub const USER_REF: usize = 9;
        pub const FIRM: usize = 13;
        pub const SYMBOL: usize = 17;
        pub const APPENDAGE_LEN: usize = 25;
        pub const LEN: usize = 27;
    }
    /// Disable Order Entry Response 'G' — section 3.15, and Enable Order Entry Response 'K' — section 3.16.
    pub mod order_entry_response {
        pub const USER_REF: usize = 9;
        pub const FIRM: usize = 13;
        pub const APPENDAGE_LEN: usize = 17;
        pub const LEN: usize = 19;
    }
    /// Account Query Response 'Q' — section 3.17. Its Appendage Length is "absent unless this message results
    /// from the incoming message specifying non zero userRefIdx", which this venue does not take: 13 bytes.
    pub mod account_query_response {
        pub const NEXT_USER_REF: usize = 9;
        pub const LEN: usize = 13;
    }
}

/// Side codes (section 2.1): 'B' buy, 'S' sell, 'T' sell short, 'E' sell short exempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
    SellShort,
    SellShortExempt,
}

impl Side {
    pub fn code(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
            Side::SellShort => b'T',
            Side::SellShortExempt => b'E',
        }
    }
    pub fn from_code(c: u8) -> Result<Side> {
        match c {
            b'B' => Ok(Side::Buy),
            b'S' => Ok(Side::Sell),
            b'T' => Ok(Side::SellShort),
            b'E' => Ok(Side::SellShortExempt),
            _ => Err(Error::InvalidField {
                format: FORMAT,
                field: "side",
            }),
        }
    }
}

/// Time In Force codes (section 2.1): '0' Day (market hours), '3' IOC, '5' GTX (extended hours), '6' GTT
/// (needs ExpireTime), 'E' after hours.
pub mod tif {
    pub const DAY: u8 = b'0';
    pub const IOC: u8 = b'3';
    pub const GTX: u8 = b'5';
    pub const GTT: u8 = b'6';
    pub const AFTER_HOURS: u8 = b'E';
}

/// Order Canceled reason codes (section 3.4).
pub mod cancel_reason {
    pub const REGULATORY_RESTRICTION: u8 = b'D';
    pub const CLOSED: u8 = b'E';
    pub const POST_ONLY_NMS: u8 = b'F';
    pub const POST_ONLY: u8 = b'G';
    pub const HALTED: u8 = b'H';
    pub const IMMEDIATE_OR_CANCEL: u8 = b'I';
    pub const MARKET_COLLARS: u8 = b'K';
    pub const SELF_MATCH_PREVENTION: u8 = b'Q';
    pub const SUPERVISORY: u8 = b'S';
    pub const TIMEOUT: u8 = b'T';
    pub const USER_REQUESTED: u8 = b'U';
    pub const OPEN_PROTECTION: u8 = b'X';
    pub const SYSTEM: u8 = b'Z';
}

/// Order Rejected reason codes, u16 (Appendix C). Only the codes we send are named; the rest are valid on parse.
pub mod reject_reason {
    pub const QUOTE_UNAVAILABLE: u16 = 0x0001;
    pub const DESTINATION_CLOSED: u16 = 0x0002;
    pub const INVALID_DISPLAY: u16 = 0x0003;
    pub const FAT_FINGER: u16 = 0x0006;
    pub const HALTED: u16 = 0x0007;
    pub const INVALID_SIDE: u16 = 0x0009;
    pub const PROCESSING_ERROR: u16 = 0x000A;
    pub const FIRM_NOT_AUTHORIZED: u16 = 0x000C;
    pub const INVALID_MIN_QUANTITY: u16 = 0x000D;
    pub const OTHER: u16 = 0x000F;
    pub const CANCEL_NOT_ALLOWED: u16 = 0x0010;
    pub const INVALID_QUANTITY: u16 = 0x0013;
    pub const REPLACE_NOT_ALLOWED: u16 = 0x0015;
    pub const INVALID_SYMBOL: u16 = 0x0017;
    pub const INVALID_PRICE: u16 = 0x001D;
    pub const SHARES_EXCEED_THRESHOLD: u16 = 0x001E;
    pub const EXCEEDS_MAX_NOTIONAL: u16 = 0x001F;
    pub const RISK_AGGREGATE_EXPOSURE: u16 = 0x0020;
    pub const RISK_SHORT_SELL_RESTRICTED: u16 = 0x0023;
    pub const RISK_DUPLICATE_MESSAGE_RATE: u16 = 0x002A;
    pub const RISK_SHORT_SELL_NOT_ALLOWED: u16 = 0x002B;
    pub const RISK_MARKET_ORDER_NOT_ALLOWED: u16 = 0x002C;
    pub const RISK_SINGLE_ORDER_NOTIONAL: u16 = 0x0030;
    pub const RISK_MAX_QUANTITY: u16 = 0x0031;
}

/// Option tags (section 4) that we interpret; every other tag is skipped.
pub mod tag {
    pub const FIRM: u8 = 2;
    pub const MIN_QTY: u8 = 3;
    pub const PRICE_TYPE: u8 = 6;
    pub const POST_ONLY: u8 = 12;
    pub const EXPIRE_TIME: u8 = 15;
    /// Group ID, u16 (Appendix A tag 24); a Mass Cancel scope.
    pub const GROUP_ID: u8 = 24;
    /// Side, one of B/S/T/E (Appendix A tag 27); a Mass Cancel scope.
    pub const SIDE: u8 = 27;
    /// bourse extension (outside Nasdaq's tag range in use): stop/trigger price, u64 with 4 implied decimals.
    /// OUCH 5.0 has no stop orders; a client that does not know this tag never sends it.
    pub const STOP_PRICE: u8 = 224;
}

/// The options we understand, from the appendage. `None` = absent (the spec's default applies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub firm: Option<Alpha<4>>,
    pub min_qty: Option<u32>,
    /// PriceType: 'L' limit (default), 'P' market peg, 'M' midpoint peg, 'R' primary peg, 'Q', 'm'.
    pub price_type: Option<u8>,
    /// PostOnly: 'P' post only, 'N' not.
    pub post_only: Option<u8>,
    /// ExpireTime: seconds to live, below 86 400.
    pub expire_time: Option<u32>,
    /// Group ID (Mass Cancel): 0 names the orders entered without a Group ID.
    pub group_id: Option<u16>,
    /// Side (Mass Cancel), as sent; [`Side::from_code`] validates it where it is used.
    pub side: Option<u8>,
    pub stop_price: Option<u64>,
}

/// Largest appendage we emit or accept: every option we know, once each, is 6+6+3+3+6+4+3+10 = 41 bytes;
/// unknown options may make a client's appendage longer, so the parse limit is the u16 field itself.
pub const OPTIONS_MAX_BYTES: usize = 41;

impl Options {
    /// Most orders carry no appendage: that case is a constant, and the option walk stays out of line (returning
    /// its result through memory cost Enter Order's decode a store-forwarding stall).
    #[inline(always)]
    fn parse(b: &[u8]) -> Result<Options> {
        if b.is_empty() {
            Ok(Options::default())
        } else {
            Options::parse_some(b)
        }
    }

    #[inline(never)]
    fn parse_some(b: &[u8]) -> Result<Options> {
        let mut o = Options::default();
        let mut at = 0;
        // Each option consumes at least two bytes, so the loop is bounded by the appendage length.
        while at < b.len() {
            let len = usize::from(b[at]);
            if len == 0 || at + 1 + len > b.len() {
                return Err(Error::InvalidField {
                    format: FORMAT,
                    field: "appendage option length",
                });
            }
            let tag = b[at + 1];
            let v = &b[at + 2..at + 1 + len];
            let bad = |field| Error::InvalidField {
                format: FORMAT,
                field,
            };
            match tag {
                tag::FIRM => o.firm = Some(Alpha(v.try_into().map_err(|_| bad("Firm option"))?)),
                tag::MIN_QTY => {
                    o.min_qty = Some(u32::from_be_bytes(
                        v.try_into().map_err(|_| bad("MinQty option"))?,
                    ))
                }
                tag::PRICE_TYPE => o.price_type = Some(one(v).ok_or(bad("PriceType option"))?),
                tag::POST_ONLY => o.post_only = Some(one(v).ok_or(bad("PostOnly option"))?),
                tag::EXPIRE_TIME => {
                    o.expire_time = Some(u32::from_be_bytes(
                        v.try_into().map_err(|_| bad("ExpireTime option"))?,
                    ))
                }
                tag::GROUP_ID => {
                    o.group_id = Some(u16::from_be_bytes(
                        v.try_into().map_err(|_| bad("Group ID option"))?,
                    ))
                }
                tag::SIDE => o.side = Some(one(v).ok_or(bad("Side option"))?),
                tag::STOP_PRICE => {
                    o.stop_price = Some(u64::from_be_bytes(
                        v.try_into().map_err(|_| bad("StopPrice option"))?,
                    ))
                }
                _ => {}
            }
            at += 1 + len;
        }
        Ok(o)
    }

    pub fn buffer_len(&self) -> usize {
        self.firm.map_or(0, |_| 6)
            + self.min_qty.map_or(0, |_| 6)
            + self.price_type.map_or(0, |_| 3)
            + self.post_only.map_or(0, |_| 3)
            + self.expire_time.map_or(0, |_| 6)
            + self.group_id.map_or(0, |_| 4)
            + self.side.map_or(0, |_| 3)
            + self.stop_price.map_or(0, |_| 10)
    }

    /// Writes the options in tag order; `b` is exactly `buffer_len()` bytes.
    fn emit(&self, b: &mut [u8]) {
        let mut at = 0;
        let mut put = |tag: u8, v: &[u8]| {
            b[at] = (1 + v.len()) as u8;
            b[at + 1] = tag;
            b[at + 2..at + 2 + v.len()].copy_from_slice(v);
            at += 2 + v.len();
        };
        if let Some(f) = self.firm {
            put(tag::FIRM, &f.0);
        }
        if let Some(q) = self.min_qty {
            put(tag::MIN_QTY, &q.to_be_bytes());
        }
        if let Some(p) = self.price_type {
            put(tag::PRICE_TYPE, &[p]);
        }
        if let Some(p) = self.post_only {
            put(tag::POST_ONLY, &[p]);
        }
        if let Some(t) = self.expire_time {
            put(tag::EXPIRE_TIME, &t.to_be_bytes());
        }
        if let Some(g) = self.group_id {
            put(tag::GROUP_ID, &g.to_be_bytes());
        }
        if let Some(s) = self.side {
            put(tag::SIDE, &[s]);
        }
        if let Some(p) = self.stop_price {
            put(tag::STOP_PRICE, &p.to_be_bytes());
        }
    }
}

fn one(v: &[u8]) -> Option<u8> {
    match v {
        [c] => Some(*c),
        _ => None,
    }
}

/// Enter Order 'O' — OUCH 5.0 section 2.1: 47 bytes plus appendage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnterOrder {
    pub user_ref: u32,
    pub side: Side,
    pub quantity: u32,
    pub symbol: Symbol,
    pub price: u64,
    pub time_in_force: u8,
    pub display: u8,
    pub capacity: u8,
    pub intermarket_sweep: u8,
    pub cross_type: u8,
    pub cl_ord_id: ClOrdId,
    pub options: Options,
}

/// Replace Order 'U' — section 2.2: 40 bytes plus appendage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaceOrder {
    pub orig_user_ref: u32,
    pub user_ref: u32,
    pub quantity: u32,
    pub price: u64,
    pub time_in_force: u8,
    pub display: u8,
    pub intermarket_sweep: u8,
    pub cl_ord_id: ClOrdId,
    pub options: Options,
}

/// Cancel Order 'X' — section 2.3: 9 bytes. `quantity` is the intended remaining size (0 = cancel all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub user_ref: u32,
    pub quantity: u32,
}

/// Modify Order 'M' — section 2.4: 10 bytes. Changes the side (e.g. sell ↔ sell short) and/or reduces the
/// quantity to `quantity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModifyOrder {
    pub user_ref: u32,
    pub side: Side,
    pub quantity: u32,
}

/// Mass Cancel Request 'C' — section 2.5: 19 bytes plus appendage. Cancels the firm's open orders on the
/// account, all of them or those of `symbol` (blank: every symbol), of `side` and of `group_id` when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancelRequest {
    pub user_ref: u32,
    pub firm: Alpha<4>,
    pub symbol: Symbol,
    pub side: Option<Side>,
    pub group_id: Option<u16>,
}

impl MassCancelRequest {
    fn options(&self) -> Options {
        Options { side: self.side.map(Side::code), group_id: self.group_id, ..Options::default() }
    }
}

/// Disable Order Entry Request 'D' (section 2.6) and Enable Order Entry Request 'E' (section 2.7): 11 bytes plus
/// appendage. Blocks or unblocks the firm's new orders on the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderEntryRequest {
    pub user_ref: u32,
    pub firm: Alpha<4>,
}

/// One inbound (client → exchange) OUCH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    EnterOrder(EnterOrder),
    ReplaceOrder(ReplaceOrder),
    CancelOrder(CancelOrder),
    ModifyOrder(ModifyOrder),
    MassCancel(MassCancelRequest),
    DisableOrderEntry(OrderEntryRequest),
    EnableOrderEntry(OrderEntryRequest),
    /// Account Query Request 'Q' (section 2.8): asks for the next UserRefNum the account may use.
    AccountQuery,
}

#[inline]
fn appendage(b: &[u8], len_at: usize) -> Result<&[u8]> {
    let fixed = len_at + 2;
    need(FORMAT, b.len(), fixed)?;
    let n = usize::from(get_u16(b, len_at));
    need(FORMAT, b.len(), fixed + n)?;
    if b.len() != fixed + n {
        return Err(Error::BadLength {
            format: FORMAT,
            len: b.len(),
            what: "bytes after the appendage",
        });
    }
    Ok(&b[fixed..])
}

#[inline]
fn exact(b: &[u8], len: usize) -> Result<()> {
    need(FORMAT, b.len(), len)?;
    if b.len() != len {
        return Err(Error::BadLength {
            format: FORMAT,
            len: b.len(),
            what: "longer than the message type",
        });
    }
    Ok(())
}

/// Messages whose Appendage Length is optional (sections 2.3, 2.4): exactly `len_at` bytes, or an appendage
/// that is well formed. Its options (UserRefIdx, SharesLocated, LocateBroker) are not used here.
#[inline]
fn optional_appendage(b: &[u8], len_at: usize) -> Result<()> {
    if b.len() == len_at {
        return Ok(());
    }
    Options::parse(appendage(b, len_at)?).map(|_| ())
}

fn emit_appendage(b: &mut [u8], len_at: usize, o: &Options) {
    let n = o.buffer_len();
    put_u16(b, len_at, n as u16);
    o.emit(&mut b[len_at + 2..len_at + 2 + n]);
}

impl Inbound {
    /// The UserRefNum the message carries (0 for an Account Query, which has none).
    pub fn user_ref(&self) -> u32 {
        match self {
            Inbound::EnterOrder(m) => m.user_ref,
            Inbound::ReplaceOrder(m) => m.user_ref,
            Inbound::CancelOrder(m) => m.user_ref,
            Inbound::ModifyOrder(m) => m.user_ref,
            Inbound::MassCancel(m) => m.user_ref,
            Inbound::DisableOrderEntry(m) | Inbound::EnableOrderEntry(m) => m.user_ref,
            Inbound::AccountQuery => 0,
        }
    }

    /// The UserRefNum the message introduces, which must be above every one the session used before (section
    /// 1.2): Enter and Replace Order, Mass Cancel, Disable and Enable Order Entry. Cancel and Modify name an
    /// order's; an Account Query carries none.
    pub fn new_user_ref(&self) -> Option<u32> {
        match self {
            Inbound::EnterOrder(m) => Some(m.user_ref),
            Inbound::ReplaceOrder(m) => Some(m.user_ref),
            Inbound::MassCancel(m) => Some(m.user_ref),
            Inbound::DisableOrderEntry(m) | Inbound::EnableOrderEntry(m) => Some(m.user_ref),
            Inbound::CancelOrder(_) | Inbound::ModifyOrder(_) | Inbound::AccountQuery => None,
        }
    }

    /// Decodes one message occupying exactly `b` (one SoupBinTCP Unsequenced Data payload).
    #[inline]
    pub fn parse(b: &[u8]) -> Result<Inbound> {
        need(FORMAT, b.len(), 1)?;
        Ok(match b[0] {
            b'O' => {
                use field::enter as f;
                let app = appendage(b, f::APPENDAGE_LEN)?;
                // The fixed part as an array: every field offset below is checked at compile time, not per read.
                let b: &[u8; f::LEN] = b.first_chunk().ok_or(Error::Truncated { format: FORMAT, need: f::LEN, have: b.len() })?;
                Inbound::EnterOrder(EnterOrder {
                    user_ref: get_u32(b, f::USER_REF),
                    side: Side::from_code(b[f::SIDE])?,
                    quantity: get_u32(b, f::QUANTITY),
                    symbol: Alpha(get_array(b, f::SYMBOL)),
                    price: get_u64(b, f::PRICE),
                    time_in_force: b[f::TIF],
                    display: b[f::DISPLAY],
                    capacity: b[f::CAPACITY],
                    intermarket_sweep: b[f::ISE],
                    cross_type: b[f::CROSS_TYPE],
                    cl_ord_id: Alpha(get_array(b, f::CL_ORD_ID)),
                    options: Options::parse(app)?,
                })
            }
            b'U' => {
                use field::replace as f;
                let app = appendage(b, f::APPENDAGE_LEN)?;
                Inbound::ReplaceOrder(ReplaceOrder {
                    orig_user_ref: get_u32(b, f::ORIG_USER_REF),
                    user_ref: get_u32(b, f::USER_REF),
                    quantity: get_u32(b, f::QUANTITY),
                    price: get_u64(b, f::PRICE),
                    time_in_force: b[f::TIF],
                    display: b[f::DISPLAY],
                    intermarket_sweep: b[f::ISE],
                    cl_ord_id: Alpha(get_array(b, f::CL_ORD_ID)),
                    options: Options::parse(app)?,
                })
            }
            b'X' => {
                optional_appendage(b, field::cancel::APPENDAGE_LEN)?;
                Inbound::CancelOrder(CancelOrder {
                    user_ref: get_u32(b, field::cancel::USER_REF),
                    quantity: get_u32(b, field::cancel::QUANTITY),
                })
            }
            b'M' => {
                use field::modify as f;
                optional_appendage(b, f::APPENDAGE_LEN)?;
                Inbound::ModifyOrder(ModifyOrder {
                    user_ref: get_u32(b, f::USER_REF),
                    side: Side::from_code(b[f::SIDE])?,
                    quantity: get_u32(b, f::QUANTITY),
                })
            }
            b'C' => {
                use field::mass_cancel as f;
                let o = Options::parse(appendage(b, f::APPENDAGE_LEN)?)?;
                Inbound::MassCancel(MassCancelRequest {
                    user_ref: get_u32(b, f::USER_REF),
                    firm: Alpha(get_array(b, f::FIRM)),
                    symbol: Alpha(get_array(b, f::SYMBOL)),
                    side: o.side.map(Side::from_code).transpose()?,
                    group_id: o.group_id,
                })
            }
            code @ (b'D' | b'E') => {
                use field::order_entry as f;
                Options::parse(appendage(b, f::APPENDAGE_LEN)?)?;
                let m = OrderEntryRequest { user_ref: get_u32(b, f::USER_REF), firm: Alpha(get_array(b, f::FIRM)) };
                if code == b'D' {
                    Inbound::DisableOrderEntry(m)
                } else {
                    Inbound::EnableOrderEntry(m)
                }
            }
            b'Q' => {
                optional_appendage(b, field::account_query::APPENDAGE_LEN)?;
                Inbound::AccountQuery
            }
            code => {
                return Err(Error::UnknownType {
                    format: FORMAT,
                    code,
                })
            }
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Inbound::EnterOrder(m) => field::enter::LEN + m.options.buffer_len(),
            Inbound::ReplaceOrder(m) => field::replace::LEN + m.options.buffer_len(),
            Inbound::CancelOrder(_) => field::cancel::LEN,
            Inbound::ModifyOrder(_) => field::modify::LEN,
            Inbound::MassCancel(m) => field::mass_cancel::LEN + m.options().buffer_len(),
            Inbound::DisableOrderEntry(_) | Inbound::EnableOrderEntry(_) => field::order_entry::LEN,
            Inbound::AccountQuery => field::account_query::LEN,
        }
    }

    /// Writes the message at the start of `buf` (clients and the load generator use this); returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        room(FORMAT, buf.len(), len)?;
        let b = &mut buf[..len];
        match self {
            Inbound::EnterOrder(m) => {
                use field::enter as f;
                b[0] = b'O';
                put_u32(b, f::USER_REF, m.user_ref);
                b[f::SIDE] = m.side.code();
                put_u32(b, f::QUANTITY, m.quantity);
                put_array(b, f::SYMBOL, &m.symbol.0);
                put_u64(b, f::PRICE, m.price);
                b[f::TIF] = m.time_in_force;
                b[f::DISPLAY] = m.display;
                b[f::CAPACITY] = m.capacity;
                b[f::ISE] = m.intermarket_sweep;
                b[f::CROSS_TYPE] = m.cross_type;
                put_array(b, f::CL_ORD_ID, &m.cl_ord_id.0);
                emit_appendage(b, f::APPENDAGE_LEN, &m.options);
            }
            Inbound::ReplaceOrder(m) => {
                use field::replace as f;
                b[0] = b'U';
                put_u32(b, f::ORIG_USER_REF, m.orig_user_ref);
                put_u32(b, f::USER_REF, m.user_ref);
                put_u32(b, f::QUANTITY, m.quantity);
                put_u64(b, f::PRICE, m.price);
                b[f::TIF] = m.time_in_force;
                b[f::DISPLAY] = m.display;
                b[f::ISE] = m.intermarket_sweep;
                put_array(b, f::CL_ORD_ID, &m.cl_ord_id.0);
                emit_appendage(b, f::APPENDAGE_LEN, &m.options);
            }
            Inbound::CancelOrder(m) => {
                b[0] = b'X';
                put_u32(b, field::cancel::USER_REF, m.user_ref);
                put_u32(b, field::cancel::QUANTITY, m.quantity);
            }
            Inbound::ModifyOrder(m) => {
                b[0] = b'M';
                put_u32(b, field::modify::USER_REF, m.user_ref);
                b[field::modify::SIDE] = m.side.code();
                put_u32(b, field::modify::QUANTITY, m.quantity);
            }
            Inbound::MassCancel(m) => {
                use field::mass_cancel as f;
                b[0] = b'C';
                put_u32(b, f::USER_REF, m.user_ref);
                put_array(b, f::FIRM, &m.firm.0);
                put_array(b, f::SYMBOL, &m.symbol.0);
                emit_appendage(b, f::APPENDAGE_LEN, &m.options());
            }
            Inbound::DisableOrderEntry(m) | Inbound::EnableOrderEntry(m) => {
                use field::order_entry as f;
                b[0] = if matches!(self, Inbound::DisableOrderEntry(_)) { b'D' } else { b'E' };
                put_u32(b, f::USER_REF, m.user_ref);
                put_array(b, f::FIRM, &m.firm.0);
                put_u16(b, f::APPENDAGE_LEN, 0);
            }
            Inbound::AccountQuery => b[0] = b'Q',
        }
        Ok(len)
    }
}

/// An Enter Order that is well framed but whose Side is outside B/S/T/E (section 2.1): its UserRefNum and
/// ClOrdID, so that the gateway can answer it with Rejected 0x0009 Invalid Side instead of dropping it. `None`
/// for anything else. Only called on bytes [`Inbound::parse`] refused, so it costs the hot path nothing.
pub fn enter_with_invalid_side(b: &[u8]) -> Option<(u32, ClOrdId)> {
    use field::enter as f;
    if b.first() != Some(&b'O') || Side::from_code(*b.get(f::SIDE)?).is_ok() {
        return None;
    }
    Options::parse(appendage(b, f::APPENDAGE_LEN).ok()?).ok()?;
    Some((get_u32(b, f::USER_REF), Alpha(get_array(b, f::CL_ORD_ID))))
}

/// Order state in Accepted/Replaced: 'L' live, 'D' dead (accepted and at once canceled, e.g. an IOC).
pub mod order_state {
    pub const LIVE: u8 = b'L';
    pub const DEAD: u8 = b'D';
}

/// Order Accepted 'A' (section 3.2) — also the body of Order Replaced 'U' (section 3.3) with `orig_user_ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderAccepted {
    pub timestamp: u64,
    pub user_ref: u32,
    pub side: Side,
    pub quantity: u32,
    pub symbol: Symbol,
    pub price: u64,
    pub time_in_force: u8,
    pub display: u8,
    pub order_ref: u64,
    pub capacity: u8,
    pub intermarket_sweep: u8,
    pub cross_type: u8,
    pub order_state: u8,
    pub cl_ord_id: ClOrdId,
    /// The options the order was accepted with, echoed in the appendage (section 3.2).
    pub options: Options,
}

/// One outbound (exchange → client) OUCH message. Order Accepted and Order Replaced echo the order's options in
/// their appendage; the others carry none (appendage length 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// System Event 'S' (section 3.1): 'S' start of day, 'E' end of day.
    SystemEvent {
        timestamp: u64,
        event_code: u8,
    },
    OrderAccepted(OrderAccepted),
    /// Order Replaced 'U' (section 3.3): the new order's fields plus the replaced order's UserRefNum.
    OrderReplaced {
        orig_user_ref: u32,
        order: OrderAccepted,
    },
    /// Order Canceled 'C' (section 3.4): `quantity` is the decrement, not what is left.
    OrderCanceled {
        timestamp: u64,
        user_ref: u32,
        quantity: u32,
        reason: u8,
    },
    /// Order Executed 'E' (section 3.6). Liquidity flag 'A' added, 'R' removed.
    OrderExecuted {
        timestamp: u64,
        user_ref: u32,
        quantity: u32,
        price: u64,
        liquidity: u8,
        match_number: u64,
    },
    /// Order Rejected 'J' (section 3.8) with an Appendix C reason code.
    OrderRejected {
        timestamp: u64,
        user_ref: u32,
        reason: u16,
        cl_ord_id: ClOrdId,
    },
    /// Cancel Reject 'I' (section 3.10): a cancel for an order that cannot be canceled.
    CancelReject {
        timestamp: u64,
        user_ref: u32,
    },
    /// Order Modified 'M' (section 3.12): the order's side and its new remaining quantity.
    OrderModified {
        timestamp: u64,
        user_ref: u32,
        side: Side,
        quantity: u32,
    },
    /// Mass Cancel Response 'X' (section 3.14): the request's fields echoed.
    MassCancelResponse {
        timestamp: u64,
        request: MassCancelRequest,
    },
    /// Disable Order Entry Response 'G' (section 3.15).
    DisableOrderEntryResponse {
        timestamp: u64,
        request: OrderEntryRequest,
    },
    /// Enable Order Entry Response 'K' (section 3.16).
    EnableOrderEntryResponse {
        timestamp: u64,
        request: OrderEntryRequest,
    },
    /// Account Query Response 'Q' (section 3.17): the next UserRefNum the account may use.
    AccountQueryResponse {
        timestamp: u64,
        next_user_ref: u32,
    },
}

impl Outbound {
    pub fn code(&self) -> u8 {
        match self {
            Outbound::SystemEvent { .. } => b'S',
            Outbound::OrderAccepted(_) => b'A',
            Outbound::OrderReplaced { .. } => b'U',
            Outbound::OrderCanceled { .. } => b'C',
            Outbound::OrderExecuted { .. } => b'E',
            Outbound::OrderRejected { .. } => b'J',
            Outbound::CancelReject { .. } => b'I',
            Outbound::OrderModified { .. } => b'M',
            Outbound::MassCancelResponse { .. } => b'X',
            Outbound::DisableOrderEntryResponse { .. } => b'G',
            Outbound::EnableOrderEntryResponse { .. } => b'K',
            Outbound::AccountQueryResponse { .. } => b'Q',
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Outbound::SystemEvent { .. } => field::system_event::LEN,
            Outbound::OrderAccepted(o) => field::accepted::LEN + o.options.buffer_len(),
            Outbound::OrderReplaced { order, .. } => field::replaced::LEN + order.options.buffer_len(),
            Outbound::OrderCanceled { .. } => field::canceled::LEN,
            Outbound::OrderExecuted { .. } => field::executed::LEN,
            Outbound::OrderRejected { .. } => field::rejected::LEN,
            Outbound::CancelReject { .. } => field::cancel_reject::LEN,
            Outbound::OrderModified { .. } => field::modified::LEN,
            Outbound::MassCancelResponse { request, .. } => {
                field::mass_cancel_response::LEN + request.options().buffer_len()
            }
            Outbound::DisableOrderEntryResponse { .. } | Outbound::EnableOrderEntryResponse { .. } => {
                field::order_entry_response::LEN
            }
            Outbound::AccountQueryResponse { .. } => field::account_query_response::LEN,
        }
    }

    fn timestamp(&self) -> u64 {
        match self {
            Outbound::SystemEvent { timestamp, .. }
            | Outbound::OrderCanceled { timestamp, .. }
            | Outbound::OrderExecuted { timestamp, .. }
            | Outbound::OrderRejected { timestamp, .. }
            | Outbound::CancelReject { timestamp, .. }
            | Outbound::OrderModified { timestamp, .. }
            | Outbound::MassCancelResponse { timestamp, .. }
            | Outbound::DisableOrderEntryResponse { timestamp, .. }
            | Outbound::EnableOrderEntryResponse { timestamp, .. }
            | Outbound::AccountQueryResponse { timestamp, .. } => *timestamp,
            Outbound::OrderAccepted(o) | Outbound::OrderReplaced { order: o, .. } => o.timestamp,
        }
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        room(FORMAT, buf.len(), len)?;
        let b = &mut buf[..len];
        b[0] = self.code();
        put_u64(b, field::TIMESTAMP, self.timestamp());
        match self {
            Outbound::SystemEvent { event_code, .. } => {
                b[field::system_event::EVENT_CODE] = *event_code
            }
            Outbound::OrderAccepted(o) => emit_accepted(b, o, 0),
            Outbound::OrderReplaced {
                orig_user_ref,
                order,
            } => {
                put_u32(b, field::replaced::ORIG_USER_REF, *orig_user_ref);
                emit_accepted(b, order, 4);
            }
            Outbound::OrderCanceled {
                user_ref,
                quantity,
                reason,
                ..
            } => {
                use field::canceled as f;
                put_u32(b, f::USER_REF, *user_ref);
                put_u32(b, f::QUANTITY, *quantity);
                b[f::REASON] = *reason;
            }
            Outbound::OrderExecuted {
                user_ref,
                quantity,
                price,
                liquidity,
                match_number,
                ..
            } => {
                use field::executed as f;
                put_u32(b, f::USER_REF, *user_ref);
                put_u32(b, f::QUANTITY, *quantity);
                put_u64(b, f::PRICE, *price);
                b[f::LIQUIDITY] = *liquidity;
                put_u64(b, f::MATCH_NUMBER, *match_number);
                put_u16(b, f::APPENDAGE_LEN, 0);
            }
            Outbound::OrderRejected {
                user_ref,
                reason,
                cl_ord_id,
                ..
            } => {
                use field::rejected as f;
                put_u32(b, f::USER_REF, *user_ref);
                put_u16(b, f::REASON, *reason);
                put_array(b, f::CL_ORD_ID, &cl_ord_id.0);
            }
            Outbound::CancelReject { user_ref, .. } => {
                put_u32(b, field::cancel_reject::USER_REF, *user_ref)
            }
            Outbound::OrderModified {
                user_ref,
                side,
                quantity,
                ..
            } => {
                use field::modified as f;
                put_u32(b, f::USER_REF, *user_ref);
                b[f::SIDE] = side.code();
                put_u32(b, f::QUANTITY, *quantity);
            }
            Outbound::MassCancelResponse { request, .. } => {
                use field::mass_cancel_response as f;
                put_u32(b, f::USER_REF, request.user_ref);
                put_array(b, f::FIRM, &request.firm.0);
                put_array(b, f::SYMBOL, &request.symbol.0);
                emit_appendage(b, f::APPENDAGE_LEN, &request.options());
            }
            Outbound::DisableOrderEntryResponse { request, .. }
            | Outbound::EnableOrderEntryResponse { request, .. } => {
                use field::order_entry_response as f;
                put_u32(b, f::USER_REF, request.user_ref);
                put_array(b, f::FIRM, &request.firm.0);
                put_u16(b, f::APPENDAGE_LEN, 0);
            }
            Outbound::AccountQueryResponse { next_user_ref, .. } => {
                put_u32(b, field::account_query_response::NEXT_USER_REF, *next_user_ref)
            }
        }
        Ok(len)
    }

    /// Decodes one outbound message occupying exactly `b` (clients, tests and the fuzzer use this). The options
    /// of Order Accepted and Order Replaced are decoded; other appendages are accepted and skipped.
    pub fn parse(b: &[u8]) -> Result<Outbound> {
        need(FORMAT, b.len(), 1)?;
        let ts = |b: &[u8]| get_u64(b, field::TIMESTAMP);
        Ok(match b[0] {
            b'S' => {
                exact(b, field::system_event::LEN)?;
                Outbound::SystemEvent {
                    timestamp: ts(b),
                    event_code: b[field::system_event::EVENT_CODE],
                }
            }
            b'A' => {
                let app = appendage(b, field::accepted::APPENDAGE_LEN)?;
                Outbound::OrderAccepted(parse_accepted(b, 0, app)?)
            }
            b'U' => {
                let app = appendage(b, field::replaced::APPENDAGE_LEN)?;
                Outbound::OrderReplaced {
                    orig_user_ref: get_u32(b, field::replaced::ORIG_USER_REF),
                    order: parse_accepted(b, 4, app)?,
                }
            }
            b'C' => {
                use field::canceled as f;
                exact(b, f::LEN)?;
                Outbound::OrderCanceled {
                    timestamp: ts(b),
                    user_ref: get_u32(b, f::USER_REF),
                    quantity: get_u32(b, f::QUANTITY),
                    reason: b[f::REASON],
                }
            }
            b'E' => {
                use field::executed as f;
                appendage(b, f::APPENDAGE_LEN)?;
                Outbound::OrderExecuted {
                    timestamp: ts(b),
                    user_ref: get_u32(b, f::USER_REF),
                    quantity: get_u32(b, f::QUANTITY),
                    price: get_u64(b, f::PRICE),
                    liquidity: b[f::LIQUIDITY],
                    match_number: get_u64(b, f::MATCH_NUMBER),
                }
            }
            b'J' => {
                use field::rejected as f;
                exact(b, f::LEN)?;
                Outbound::OrderRejected {
                    timestamp: ts(b),
                    user_ref: get_u32(b, f::USER_REF),
                    reason: get_u16(b, f::REASON),
                    cl_ord_id: Alpha(get_array(b, f::CL_ORD_ID)),
                }
            }
            b'I' => {
                exact(b, field::cancel_reject::LEN)?;
                Outbound::CancelReject {
                    timestamp: ts(b),
                    user_ref: get_u32(b, field::cancel_reject::USER_REF),
                }
            }
            b'M' => {
                use field::modified as f;
                exact(b, f::LEN)?;
                Outbound::OrderModified {
                    timestamp: ts(b),
                    user_ref: get_u32(b, f::USER_REF),
                    side: Side::from_code(b[f::SIDE])?,
                    quantity: get_u32(b, f::QUANTITY),
                }
            }
            b'X' => {
                use field::mass_cancel_response as f;
                let o = Options::parse(appendage(b, f::APPENDAGE_LEN)?)?;
                let request = MassCancelRequest {
                    user_ref: get_u32(b, f::USER_REF),
                    firm: Alpha(get_array(b, f::FIRM)),
                    symbol: Alpha(get_array(b, f::SYMBOL)),
                    side: o.side.map(Side::from_code).transpose()?,
                    group_id: o.group_id,
                };
                Outbound::MassCancelResponse { timestamp: ts(b), request }
            }
            code @ (b'G' | b'K') => {
                use field::order_entry_response as f;
                appendage(b, f::APPENDAGE_LEN)?;
                let request =
                    OrderEntryRequest { user_ref: get_u32(b, f::USER_REF), firm: Alpha(get_array(b, f::FIRM)) };
                if code == b'G' {
                    Outbound::DisableOrderEntryResponse { timestamp: ts(b), request }
                } else {
                    Outbound::EnableOrderEntryResponse { timestamp: ts(b), request }
                }
            }
            b'Q' => {
                use field::account_query_response as f;
                // Section 3.17: the Appendage Length is optional; when present, the appendage must be whole.
                if b.len() != f::LEN {
                    appendage(b, f::LEN)?;
                }
                Outbound::AccountQueryResponse { timestamp: ts(b), next_user_ref: get_u32(b, f::NEXT_USER_REF) }
            }
            code => {
                return Err(Error::UnknownType {
                    format: FORMAT,
                    code,
                })
            }
        })
    }
}

/// Accepted and Replaced share a layout after Replaced's extra OrigUserRefNum; `shift` is 4 for Replaced.
fn emit_accepted(b: &mut [u8], o: &OrderAccepted, shift: usize) {
    use field::accepted as f;
    put_u32(b, f::USER_REF + shift, o.user_ref);
    b[f::SIDE + shift] = o.side.code();
    put_u32(b, f::QUANTITY + shift, o.quantity);
    put_array(b, f::SYMBOL + shift, &o.symbol.0);
    put_u64(b, f::PRICE + shift, o.price);
    b[f::TIF + shift] = o.time_in_force;
    b[f::DISPLAY + shift] = o.display;
    put_u64(b, f::ORDER_REF + shift, o.order_ref);
    b[f::CAPACITY + shift] = o.capacity;
    b[f::ISE + shift] = o.intermarket_sweep;
    b[f::CROSS_TYPE + shift] = o.cross_type;
    b[f::ORDER_STATE + shift] = o.order_state;
    put_array(b, f::CL_ORD_ID + shift, &o.cl_ord_id.0);
    emit_appendage(b, f::APPENDAGE_LEN + shift, &o.options);
}

fn parse_accepted(b: &[u8], shift: usize, appendage: &[u8]) -> Result<OrderAccepted> {
    use field::accepted as f;
    Ok(OrderAccepted {
        timestamp: get_u64(b, field::TIMESTAMP),
        user_ref: get_u32(b, f::USER_REF + shift),
        side: Side::from_code(b[f::SIDE + shift])?,
        quantity: get_u32(b, f::QUANTITY + shift),
        symbol: Alpha(get_array(b, f::SYMBOL + shift)),
        price: get_u64(b, f::PRICE + shift),
        time_in_force: b[f::TIF + shift],
        display: b[f::DISPLAY + shift],
        order_ref: get_u64(b, f::ORDER_REF + shift),
        capacity: b[f::CAPACITY + shift],
        intermarket_sweep: b[f::ISE + shift],
        cross_type: b[f::CROSS_TYPE + shift],
        order_state: b[f::ORDER_STATE + shift],
        cl_ord_id: Alpha(get_array(b, f::CL_ORD_ID + shift)),
        options: Options::parse(appendage)?,
    })
}

#[cfg(test)]
#[path = "ouch_tests.rs"]
mod tests;
