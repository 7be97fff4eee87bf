//! Nasdaq TotalView-ITCH 5.0 outbound market data messages (the subset the engine's events produce).
//!
//! Every message starts with the same 11-byte header (TotalView-ITCH 5.0, section 1.3 "Data Types" and
//! section 4 "Message Formats"):
//!
//! ```text
//!  0     1               3                5                          11
//! +-----+---------------+----------------+--------------------------+------------ …
//! |type | stock locate  | tracking number| timestamp (ns since      | body
//! |     | (u16)         | (u16)          | midnight, 6 bytes)       |
//! +-----+---------------+----------------+--------------------------+------------ …
//! ```
//!
//! All integers are big-endian; prices are u32 with 4 implied decimals; Stock is 8 bytes, space padded. The
//! total lengths below (type byte included) are the spec's; each is pinned by a hand-built fixture test.

use super::alpha::{Alpha, Symbol};
use super::be::{
    get_array, get_u16, get_u32, get_u48, get_u64, put_array, put_u16, put_u32, put_u48, put_u64,
};
use super::error::{need, room, Error, Result};

const FORMAT: &str = "itch";

/// Offsets of the common header and of each message's body fields.
pub mod field {
    pub const TYPE: usize = 0;
    pub const LOCATE: usize = 1;
    pub const TRACKING: usize = 3;
    pub const TIMESTAMP: usize = 5;
    pub const BODY: usize = 11;

    /// System Event 'S' (section 4.1).
    pub mod system_event {
        pub const EVENT_CODE: usize = 11;
        pub const LEN: usize = 12;
    }
    /// Stock Directory 'R' (section 4.2.1).
    pub mod stock_directory {
        pub const STOCK: usize = 11;
        pub const MARKET_CATEGORY: usize = 19;
        pub const FINANCIAL_STATUS: usize = 20;
        pub const ROUND_LOT_SIZE: usize = 21;
        pub const ROUND_LOTS_ONLY: usize = 25;
        pub const ISSUE_CLASSIFICATION: usize = 26;
        pub const ISSUE_SUBTYPE: usize = 27;
        pub const AUTHENTICITY: usize = 29;
        pub const SHORT_SALE_THRESHOLD: usize = 30;
        pub const IPO_FLAG: usize = 31;
        pub const LULD_TIER: usize = 32;
        pub const ETP_FLAG: usize = 33;
        pub const ETP_LEVERAGE: usize = 34;
        pub const INVERSE: usize = 38;
        pub const LEN: usize = 39;
    }
    /// Stock Trading Action 'H' (section 4.2.2).
    pub mod trading_action {
        pub const STOCK: usize = 11;
        pub const STATE: usize = 19;
        pub const RESERVED: usize = 20;
        pub const REASON: usize = 21;
        pub const LEN: usize = 25;
    }
    /// Add Order 'A' (section 4.3.1) and Add Order with MPID Attribution 'F' (section 4.3.2).
    pub mod add_order {
        pub const ORDER_REF: usize = 11;
        pub const SIDE: usize = 19;
        pub const SHARES: usize = 20;
        pub const STOCK: usize = 24;
        pub const PRICE: usize = 32;
        pub const LEN: usize = 36;
        pub const ATTRIBUTION: usize = 36;
        pub const LEN_MPID: usize = 40;
    }
    /// Order Executed 'E' (section 4.4.1) and Order Executed With Price 'C' (section 4.4.2).
    pub mod executed {
        pub const ORDER_REF: usize = 11;
        pub const SHARES: usize = 19;
        pub const MATCH_NUMBER: usize = 23;
        pub const LEN: usize = 31;
        pub const PRINTABLE: usize = 31;
        pub const PRICE: usize = 32;
        pub const LEN_WITH_PRICE: usize = 36;
    }
    /// Order Cancel 'X' (section 4.4.3).
    pub mod cancel {
        pub const ORDER_REF: usize = 11;
        pub const SHARES: usize = 19;
        pub const LEN: usize = 23;
    }
    /// Order Delete 'D' (section 4.4.4).
    pub mod delete {
        pub const ORDER_REF: usize = 11;
        pub const LEN: usize = 19;
    }
    /// Order Replace 'U' (section 4.4.5).
    pub mod replace {
        pub const ORIG_REF: usize = 11;
        pub const NEW_REF: usize = 19;
        pub const SHARES: usize = 27;
        pub const PRICE: usize = 31;
        pub const LEN: usize = 35;
    }
    /// Trade (non-cross) 'P' (section 4.5.1).
    pub mod trade {
        pub const ORDER_REF: usize = 11;
        pub const SIDE: usize = 19;
        pub const SHARES: usize = 20;
        pub const STOCK: usize = 24;
        pub const PRICE: usize = 32;
        pub const MATCH_NUMBER: usize = 36;
        pub const LEN: usize = 44;
    }
}

/// The common header of every ITCH message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub locate: u16,
    pub tracking: u16,
    /// Nanoseconds since midnight; only the low 48 bits go on the wire.
    pub timestamp: u64,
}

/// Buy/Sell Indicator: 'B' or 'S'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn code(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
        }
    }
    fn from_code(c: u8) -> Result<Side> {
        match c {
            b'B' => Ok(Side::Buy),
            b'S' => Ok(Side::Sell),
            _ => Err(Error::InvalidField {
                format: FORMAT,
                field: "side",
            }),
        }
    }
}

/// System Event codes (section 4.1): 'O' start of messages, 'S' start of system hours, 'Q' start of market hours,
/// 'M' end of market hours, 'E' end of system hours, 'C' end of messages.
pub mod event_code {
    pub const START_OF_MESSAGES: u8 = b'O';
    pub const START_OF_SYSTEM_HOURS: u8 = b'S';
    pub const START_OF_MARKET_HOURS: u8 = b'Q';
    pub const END_OF_MARKET_HOURS: u8 = b'M';
    pub const END_OF_SYSTEM_HOURS: u8 = b'E';
    pub const END_OF_MESSAGES: u8 = b'C';
}

/// Stock Trading Action trading states (section 4.2.2): 'H' halted, 'P' paused, 'Q' quotation only, 'T' trading.
pub mod trading_state {
    pub const HALTED: u8 = b'H';
    pub const PAUSED: u8 = b'P';
    pub const QUOTATION_ONLY: u8 = b'Q';
    pub const TRADING: u8 = b'T';
}

/// System Event 'S' — TotalView-ITCH 5.0 section 4.1, 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemEvent {
    pub header: Header,
    pub event_code: u8,
}

/// Stock Directory 'R' — TotalView-ITCH 5.0 section 4.2.1, 39 bytes. Single-byte codes are stored as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockDirectory {
    pub header: Header,
    pub stock: Symbol,
    pub market_category: u8,
    pub financial_status: u8,
    pub round_lot_size: u32,
    pub round_lots_only: u8,
    pub issue_classification: u8,
    pub issue_subtype: [u8; 2],
    pub authenticity: u8,
    pub short_sale_threshold: u8,
    pub ipo_flag: u8,
    pub luld_tier: u8,
    pub etp_flag: u8,
    pub etp_leverage_factor: u32,
    pub inverse_indicator: u8,
}

/// Stock Trading Action 'H' — TotalView-ITCH 5.0 section 4.2.2, 25 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradingAction {
    pub header: Header,
    pub stock: Symbol,
    pub state: u8,
    /// Trading Action Reason (4 bytes alpha, e.g. "LUDP" for a LULD pause, "MWC1" for a market-wide halt).
    pub reason: Alpha<4>,
}

/// Add Order 'A' (section 4.3.1, 36 bytes), or with `attribution` 'F' (section 4.3.2, 40 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddOrder {
    pub header: Header,
    pub order_ref: u64,
    pub side: Side,
    pub shares: u32,
    pub stock: Symbol,
    pub price: u32,
    /// MPID: present makes this message type 'F'.
    pub attribution: Option<Alpha<4>>,
}

/// Order Executed 'E' (section 4.4.1, 31 bytes), or with `price` Order Executed With Price 'C' (section 4.4.2,
/// 36 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderExecuted {
    pub header: Header,
    pub order_ref: u64,
    pub shares: u32,
    pub match_number: u64,
    /// `Some((printable, price))` makes this a 'C' message; printable is 'Y' or 'N'.
    pub with_price: Option<(u8, u32)>,
}

/// Order Cancel 'X' — section 4.4.3, 23 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCancel {
    pub header: Header,
    pub order_ref: u64,
    pub canceled_shares: u32,
}

/// Order Delete 'D' — section 4.4.4, 19 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderDelete {
    pub header: Header,
    pub order_ref: u64,
}

/// Order Replace 'U' — section 4.4.5, 35 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderReplace {
    pub header: Header,
    pub orig_ref: u64,
    pub new_ref: u64,
    pub shares: u32,
    pub price: u32,
}

/// Trade (non-cross) 'P' — section 4.5.1, 44 bytes. Used for executions against non-displayed interest; the
/// order reference is zero when the resting order was hidden, as the spec allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub header: Header,
    pub order_ref: u64,
    pub side: Side,
    pub shares: u32,
    pub stock: Symbol,
    pub price: u32,
    pub match_number: u64,
}

/// One ITCH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    SystemEvent(SystemEvent),
    StockDirectory(StockDirectory),
    TradingAction(TradingAction),
    AddOrder(AddOrder),
    OrderExecuted(OrderExecuted),
    OrderCancel(OrderCancel),
    OrderDelete(OrderDelete),
    OrderReplace(OrderReplace),
    Trade(Trade),
}

/// Total length (type byte included) of a message type we decode, `None` for types outside our subset.
pub const fn message_len(code: u8) -> Option<usize> {
    Some(match code {
        b'S' => field::system_event::LEN,
        b'R' => field::stock_directory::LEN,
        b'H' => field::trading_action::LEN,
        b'A' => field::add_order::LEN,
        b'F' => field::add_order::LEN_MPID,
        b'E' => field::executed::LEN,
        b'C' => field::executed::LEN_WITH_PRICE,
        b'X' => field::cancel::LEN,
        b'D' => field::delete::LEN,
        b'U' => field::replace::LEN,
        b'P' => field::trade::LEN,
        _ => return None,
    })
}

fn put_header(b: &mut [u8], code: u8, h: &Header) {
    b[field::TYPE] = code;
    put_u16(b, field::LOCATE, h.locate);
    put_u16(b, field::TRACKING, h.tracking);
    put_u48(b, field::TIMESTAMP, h.timestamp);
}

fn get_header(b: &[u8]) -> Header {
    Header {
        locate: get_u16(b, field::LOCATE),
        tracking: get_u16(b, field::TRACKING),
        timestamp: get_u48(b, field::TIMESTAMP),
    }
}

impl Message {
    pub fn code(&self) -> u8 {
        match self {
            Message::SystemEvent(_) => b'S',
            Message::StockDirectory(_) => b'R',
            Message::TradingAction(_) => b'H',
            Message::AddOrder(m) => {
                if m.attribution.is_some() {
                    b'F'
                } else {
                    b'A'
                }
            }
            Message::OrderExecuted(m) => {
                if m.with_price.is_some() {
                    b'C'
                } else {
                    b'E'
                }
            }
            Message::OrderCancel(_) => b'X',
            Message::OrderDelete(_) => b'D',
            Message::OrderReplace(_) => b'U',
            Message::Trade(_) => b'P',
        }
    }

    pub fn buffer_len(&self) -> usize {
        // Every code returned by `code` has a length in `message_len`.
        message_len(self.code()).unwrap_or(0)
    }

    /// Writes the message at the start of `buf` and returns its length. Only the message's own bytes are touched.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        room(FORMAT, buf.len(), len)?;
        let b = &mut buf[..len];
        match self {
            Message::SystemEvent(m) => {
                put_header(b, b'S', &m.header);
                b[field::system_event::EVENT_CODE] = m.event_code;
            }
            Message::StockDirectory(m) => emit_directory(b, m),
            Message::TradingAction(m) => {
                use field::trading_action as f;
                put_header(b, b'H', &m.header);
                put_array(b, f::STOCK, &m.stock.0);
                b[f::STATE] = m.state;
                b[f::RESERVED] = b' ';
                put_array(b, f::REASON, &m.reason.0);
            }
            Message::AddOrder(m) => {
                use field::add_order as f;
                put_header(b, self.code(), &m.header);
                put_u64(b, f::ORDER_REF, m.order_ref);
                b[f::SIDE] = m.side.code();
                put_u32(b, f::SHARES, m.shares);
                put_array(b, f::STOCK, &m.stock.0);
                put_u32(b, f::PRICE, m.price);
                if let Some(a) = m.attribution {
                    put_array(b, f::ATTRIBUTION, &a.0);
                }
            }
            Message::OrderExecuted(m) => {
                use field::executed as f;
                put_header(b, self.code(), &m.header);
                put_u64(b, f::ORDER_REF, m.order_ref);
                put_u32(b, f::SHARES, m.shares);
                put_u64(b, f::MATCH_NUMBER, m.match_number);
                if let Some((printable, price)) = m.with_price {
                    b[f::PRINTABLE] = printable;
                    put_u32(b, f::PRICE, price);
                }
            }
            Message::OrderCancel(m) => {
                put_header(b, b'X', &m.header);
                put_u64(b, field::cancel::ORDER_REF, m.order_ref);
                put_u32(b, field::cancel::SHARES, m.canceled_shares);
            }
            Message::OrderDelete(m) => {
                put_header(b, b'D', &m.header);
                put_u64(b, field::delete::ORDER_REF, m.order_ref);
            }
            Message::OrderReplace(m) => {
                use field::replace as f;
                put_header(b, b'U', &m.header);
                put_u64(b, f::ORIG_REF, m.orig_ref);
                put_u64(b, f::NEW_REF, m.new_ref);
                put_u32(b, f::SHARES, m.shares);
                put_u32(b, f::PRICE, m.price);
            }
            Message::Trade(m) => {
                use field::trade as f;
                put_header(b, b'P', &m.header);
                put_u64(b, f::ORDER_REF, m.order_ref);
                b[f::SIDE] = m.side.code();
                put_u32(b, f::SHARES, m.shares);
                put_array(b, f::STOCK, &m.stock.0);
                put_u32(b, f::PRICE, m.price);
                put_u64(b, f::MATCH_NUMBER, m.match_number);
            }
        }
        Ok(len)
    }

    /// Decodes one message occupying exactly `buf` (as framed by a MoldUDP64 message block). A buffer longer
    /// than the type's length is refused: ITCH messages have fixed lengths, and the block length must agree.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Message> {
        need(FORMAT, buf.len(), 1)?;
        let code = buf[0];
        let len = message_len(code).ok_or(Error::UnknownType {
            format: FORMAT,
            code,
        })?;
        need(FORMAT, buf.len(), len)?;
        if buf.len() != len {
            return Err(Error::BadLength {
                format: FORMAT,
                len: buf.len(),
                what: "longer than the message type",
            });
        }
        let b = buf;
        let header = get_header(b);
        Ok(match code {
            b'S' => Message::SystemEvent(SystemEvent {
                header,
                event_code: b[field::system_event::EVENT_CODE],
            }),
            b'R' => Message::StockDirectory(parse_directory(b, header)),
            b'H' => {
                use field::trading_action as f;
                Message::TradingAction(TradingAction {
                    header,
                    stock: Alpha(get_array(b, f::STOCK)),
                    state: b[f::STATE],
                    reason: Alpha(get_array(b, f::REASON)),
                })
            }
            b'A' | b'F' => {
                use field::add_order as f;
                Message::AddOrder(AddOrder {
                    header,
                    order_ref: get_u64(b, f::ORDER_REF),
                    side: Side::from_code(b[f::SIDE])?,
                    shares: get_u32(b, f::SHARES),
                    stock: Alpha(get_array(b, f::STOCK)),
                    price: get_u32(b, f::PRICE),
                    attribution: (code == b'F').then(|| Alpha(get_array(b, f::ATTRIBUTION))),
                })
            }
            b'E' | b'C' => {
                use field::executed as f;
                Message::OrderExecuted(OrderExecuted {
                    header,
                    order_ref: get_u64(b, f::ORDER_REF),
                    shares: get_u32(b, f::SHARES),
                    match_number: get_u64(b, f::MATCH_NUMBER),
                    with_price: (code == b'C').then(|| (b[f::PRINTABLE], get_u32(b, f::PRICE))),
                })
            }
            b'X' => Message::OrderCancel(OrderCancel {
                header,
                order_ref: get_u64(b, field::cancel::ORDER_REF),
                canceled_shares: get_u32(b, field::cancel::SHARES),
            }),
            b'D' => Message::OrderDelete(OrderDelete {
                header,
                order_ref: get_u64(b, field::delete::ORDER_REF),
            }),
            b'U' => {
                use field::replace as f;
                Message::OrderReplace(OrderReplace {
                    header,
                    orig_ref: get_u64(b, f::ORIG_REF),
                    new_ref: get_u64(b, f::NEW_REF),
                    shares: get_u32(b, f::SHARES),
                    price: get_u32(b, f::PRICE),
                })
            }
            _ => {
                use field::trade as f;
                Message::Trade(Trade {
                    header,
                    order_ref: get_u64(b, f::ORDER_REF),
                    side: Side::from_code(b[f::SIDE])?,
                    shares: get_u32(b, f::SHARES),
                    stock: Alpha(get_array(b, f::STOCK)),
                    price: get_u32(b, f::PRICE),
                    match_number: get_u64(b, f::MATCH_NUMBER),
                })
            }
        })
    }
}

fn emit_directory(b: &mut [u8], m: &StockDirectory) {
    use field::stock_directory as f;
    put_header(b, b'R', &m.header);
    put_array(b, f::STOCK, &m.stock.0);
    b[f::MARKET_CATEGORY] = m.market_category;
    b[f::FINANCIAL_STATUS] = m.financial_status;
    put_u32(b, f::ROUND_LOT_SIZE, m.round_lot_size);
    b[f::ROUND_LOTS_ONLY] = m.round_lots_only;
    b[f::ISSUE_CLASSIFICATION] = m.issue_classification;
    put_array(b, f::ISSUE_SUBTYPE, &m.issue_subtype);
    b[f::AUTHENTICITY] = m.authenticity;
    b[f::SHORT_SALE_THRESHOLD] = m.short_sale_threshold;
    b[f::IPO_FLAG] = m.ipo_flag;
    b[f::LULD_TIER] = m.luld_tier;
    b[f::ETP_FLAG] = m.etp_flag;
    put_u32(b, f::ETP_LEVERAGE, m.etp_leverage_factor);
    b[f::INVERSE] = m.inverse_indicator;
}

fn parse_directory(b: &[u8], header: Header) -> StockDirectory {
    use field::stock_directory as f;
    StockDirectory {
        header,
        stock: Alpha(get_array(b, f::STOCK)),
        market_category: b[f::MARKET_CATEGORY],
        financial_status: b[f::FINANCIAL_STATUS],
        round_lot_size: get_u32(b, f::ROUND_LOT_SIZE),
        round_lots_only: b[f::ROUND_LOTS_ONLY],
        issue_classification: b[f::ISSUE_CLASSIFICATION],
        issue_subtype: get_array(b, f::ISSUE_SUBTYPE),
        authenticity: b[f::AUTHENTICITY],
        short_sale_threshold: b[f::SHORT_SALE_THRESHOLD],
        ipo_flag: b[f::IPO_FLAG],
        luld_tier: b[f::LULD_TIER],
        etp_flag: b[f::ETP_FLAG],
        etp_leverage_factor: get_u32(b, f::ETP_LEVERAGE),
        inverse_indicator: b[f::INVERSE],
    }
}

impl StockDirectory {
    /// A directory entry for an ordinary common stock on our venue: market category 'Q', normal financial
    /// status 'N', round lot 100, issue classification 'C' (common), subtype "Z " (not applicable), production
    /// 'P', threshold/IPO/LULD/ETP fields "not applicable".
    pub fn common_stock(header: Header, stock: Symbol) -> StockDirectory {
        StockDirectory {
            header,
            stock,
            market_category: b'Q',
            financial_status: b'N',
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
            inverse_indicator: b' ',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Header = Header {
        locate: 0x0102,
        tracking: 0x0304,
        timestamp: 0x0000_1122_3344_5566,
    };
    /// The common header bytes for `H`, written by hand.
    const HB: [u8; 10] = [0x01, 0x02, 0x03, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66];

    fn sym() -> Symbol {
        Symbol::new("AAPL").unwrap()
    }

    fn expect(code: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![code];
        v.extend_from_slice(&HB);
        v.extend_from_slice(body);
        v
    }

    /// Emits into a poisoned buffer, checks exact bytes and untouched tail, then parses back.
    fn check(m: Message, expected: &[u8], len: usize) {
        assert_eq!(
            expected.len(),
            len,
            "fixture length differs from the spec length"
        );
        let mut buf = [0xa5u8; 64];
        assert_eq!(m.emit(&mut buf).unwrap(), len);
        assert_eq!(&buf[..len], expected);
        assert!(buf[len..].iter().all(|b| *b == 0xa5));
        assert_eq!(Message::parse(expected).unwrap(), m);
        assert!(Message::parse(&expected[..len - 1]).is_err());
        assert!(m.emit(&mut buf[..len - 1]).is_err());
    }

    #[test]
    fn system_event() {
        check(
            Message::SystemEvent(SystemEvent {
                header: H,
                event_code: b'Q',
            }),
            &expect(b'S', b"Q"),
            12,
        );
    }

    #[test]
    fn stock_directory() {
        let mut body = Vec::new();
        body.extend_from_slice(b"AAPL    "); // @11 stock
        body.extend_from_slice(b"QN"); // @19 market category, @20 financial status
        body.extend_from_slice(&[0, 0, 0, 100]); // @21 round lot size
        body.extend_from_slice(b"NCZ P    "); // @25 lots only, @26 class, @27 subtype, @29 auth, @30..=@33 flags
        body.extend_from_slice(&[0, 0, 0, 0]); // @34 ETP leverage factor
        body.push(b' '); // @38 inverse
        check(
            Message::StockDirectory(StockDirectory::common_stock(H, sym())),
            &expect(b'R', &body),
            39,
        );
    }

    #[test]
    fn trading_action() {
        let m = TradingAction {
            header: H,
            stock: sym(),
            state: b'H',
            reason: Alpha(*b"LUDP"),
        };
        check(
            Message::TradingAction(m),
            &expect(b'H', b"AAPL    H LUDP"),
            25,
        );
    }

    #[test]
    fn add_order_a_and_f() {
        let body: [u8; 25] = [
            0, 0, 0, 0, 0, 0, 0x30, 0x39, // @11 order ref 12345
            b'B', // @19
            0, 0, 0x01, 0xf4, // @20 shares 500
            b'A', b'A', b'P', b'L', b' ', b' ', b' ', b' ', // @24 stock
            0x00, 0x1b, 0x78, 0x6c, // @32 price 180.0300 = 1_800_300
        ];
        let m = AddOrder {
            header: H,
            order_ref: 12345,
            side: Side::Buy,
            shares: 500,
            stock: sym(),
            price: 1_800_300,
            attribution: None,
        };
        check(Message::AddOrder(m), &expect(b'A', &body), 36);
        let mut body_f = body.to_vec();
        body_f.extend_from_slice(b"BRSE");
        let f = AddOrder {
            attribution: Some(Alpha(*b"BRSE")),
            ..m
        };
        check(Message::AddOrder(f), &expect(b'F', &body_f), 40);
    }

    #[test]
    fn executed_e_and_c() {
        let body: [u8; 20] = [
            0, 0, 0, 0, 0, 0, 0x30, 0x39, // @11 ref
            0, 0, 0, 100, // @19 shares
            0, 0, 0, 0, 0, 0, 0, 7, // @23 match number
        ];
        let e = OrderExecuted {
            header: H,
            order_ref: 12345,
            shares: 100,
            match_number: 7,
            with_price: None,
        };
        check(Message::OrderExecuted(e), &expect(b'E', &body), 31);
        let mut body_c = body.to_vec();
        body_c.extend_from_slice(&[b'Y', 0, 0x01, 0x86, 0xa0]); // @31 printable, @32 price 10.0000
        let c = OrderExecuted {
            with_price: Some((b'Y', 100_000)),
            ..e
        };
        check(Message::OrderExecuted(c), &expect(b'C', &body_c), 36);
    }

    #[test]
    fn cancel_delete_replace() {
        check(
            Message::OrderCancel(OrderCancel {
                header: H,
                order_ref: 9,
                canceled_shares: 3,
            }),
            &expect(b'X', &[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3]),
            23,
        );
        check(
            Message::OrderDelete(OrderDelete {
                header: H,
                order_ref: 9,
            }),
            &expect(b'D', &[0, 0, 0, 0, 0, 0, 0, 9]),
            19,
        );
        check(
            Message::OrderReplace(OrderReplace {
                header: H,
                orig_ref: 9,
                new_ref: 10,
                shares: 50,
                price: 20_000,
            }),
            &expect(
                b'U',
                &[
                    0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 50, 0, 0, 0x4e, 0x20,
                ],
            ),
            35,
        );
    }

    #[test]
    fn trade() {
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0, b'S', 0, 0, 0, 10];
        body.extend_from_slice(b"AAPL    ");
        body.extend_from_slice(&[0, 0, 0x27, 0x10]); // @32 price 1.0000
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0]); // @36 match 256
        let t = Trade {
            header: H,
            order_ref: 0,
            side: Side::Sell,
            shares: 10,
            stock: sym(),
            price: 10_000,
            match_number: 256,
        };
        check(Message::Trade(t), &expect(b'P', &body), 44);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(Message::parse(&[]), Err(Error::Truncated { .. })));
        assert!(matches!(
            Message::parse(&[b'Z'; 30]),
            Err(Error::UnknownType { code: b'Z', .. })
        ));
        let mut a = [0u8; 36];
        a[0] = b'A';
        a[19] = b'x';
        assert!(matches!(
            Message::parse(&a),
            Err(Error::InvalidField { field: "side", .. })
        ));
        assert!(Message::parse(&[b'D'; 20]).is_err(), "longer than the type");
    }
}
