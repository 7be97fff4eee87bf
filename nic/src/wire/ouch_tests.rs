//! Hand-built OUCH 5.0 fixtures: every expected byte is written out here from the spec tables, not produced by
//! the emitter under test.

use super::*;

fn sym() -> Symbol {
    Symbol::new("AAPL").unwrap()
}
fn clid() -> ClOrdId {
    ClOrdId::new("CL1").unwrap()
}

fn roundtrip_in(m: Inbound, expected: &[u8]) {
    let mut buf = [0xa5u8; 128];
    let n = m.emit(&mut buf).unwrap();
    assert_eq!(n, expected.len());
    assert_eq!(&buf[..n], expected);
    assert!(
        buf[n..].iter().all(|b| *b == 0xa5),
        "emit wrote past its message"
    );
    assert_eq!(Inbound::parse(expected).unwrap(), m);
    assert!(Inbound::parse(&expected[..n - 1]).is_err());
    assert!(m.emit(&mut buf[..n - 1]).is_err());
}

fn roundtrip_out(m: Outbound, expected: &[u8]) {
    let mut buf = [0xa5u8; 128];
    let n = m.emit(&mut buf).unwrap();
    assert_eq!(n, expected.len());
    assert_eq!(&buf[..n], expected);
    assert!(
        buf[n..].iter().all(|b| *b == 0xa5),
        "emit wrote past its message"
    );
    assert_eq!(Outbound::parse(expected).unwrap(), m);
    assert!(Outbound::parse(&expected[..n - 1]).is_err());
}

fn enter_fixture() -> Vec<u8> {
    let mut v = vec![b'O'];
    v.extend_from_slice(&[0, 0, 0, 7]); // @1 UserRefNum 7
    v.push(b'E'); // @5 side: sell short exempt
    v.extend_from_slice(&[0, 0, 0x03, 0xe8]); // @6 quantity 1000
    v.extend_from_slice(b"AAPL    "); // @10 symbol (8)
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0x1b, 0x78, 0x6c]); // @18 price 180.0300
    v.extend_from_slice(b"0YAN"); // @26 TIF day, @27 display, @28 capacity agency, @29 ISE no
    v.push(b'N'); // @30 cross type continuous
    v.extend_from_slice(b"CL1           "); // @31 ClOrdID (14)
    v.extend_from_slice(&[0, 0]); // @45 appendage length 0
    v
}

fn enter() -> EnterOrder {
    EnterOrder {
        user_ref: 7,
        side: Side::SellShortExempt,
        quantity: 1000,
        symbol: sym(),
        price: 1_800_300,
        time_in_force: tif::DAY,
        display: b'Y',
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: clid(),
        options: Options::default(),
    }
}

#[test]
fn enter_order_fixture() {
    let v = enter_fixture();
    assert_eq!(v.len(), 47);
    roundtrip_in(Inbound::EnterOrder(enter()), &v);
}

#[test]
fn enter_order_with_appendage() {
    let mut v = enter_fixture();
    v[45] = 0;
    v[46] = 12;
    v.extend_from_slice(&[2, 12, b'P']); // PostOnly
    v.extend_from_slice(&[5, 3, 0, 0, 0x03, 0xe8]); // MinQty 1000
    v.extend_from_slice(&[2, 6, b'L']); // PriceType limit
                                        // The emitter writes options in tag order, so build the canonical order for the emit check.
    let mut canonical = enter_fixture();
    canonical[46] = 12;
    canonical.extend_from_slice(&[5, 3, 0, 0, 0x03, 0xe8]);
    canonical.extend_from_slice(&[2, 6, b'L']);
    canonical.extend_from_slice(&[2, 12, b'P']);
    let m = Inbound::EnterOrder(EnterOrder {
        options: Options {
            min_qty: Some(1000),
            price_type: Some(b'L'),
            post_only: Some(b'P'),
            ..Options::default()
        },
        ..enter()
    });
    assert_eq!(
        Inbound::parse(&v).unwrap(),
        m,
        "option order on the wire does not matter"
    );
    roundtrip_in(m, &canonical);
}

#[test]
fn appendage_unknown_skipped_malformed_rejected() {
    let mut v = enter_fixture();
    v[46] = 5;
    v.extend_from_slice(&[4, 99, 1, 2, 3]); // unknown tag 99 with 3 value bytes
    assert_eq!(Inbound::parse(&v).unwrap(), Inbound::EnterOrder(enter()));
    let mut bad = enter_fixture();
    bad[46] = 2;
    bad.extend_from_slice(&[0, 99]); // zero option length
    assert!(Inbound::parse(&bad).is_err());
    let mut bad = enter_fixture();
    bad[46] = 3;
    bad.extend_from_slice(&[5, 3, 0]); // option overruns appendage
    assert!(Inbound::parse(&bad).is_err());
    let mut bad = enter_fixture();
    bad[46] = 4;
    bad.extend_from_slice(&[3, 3, 0, 1]); // MinQty with 2-byte value
    assert!(Inbound::parse(&bad).is_err());
    let mut bad = enter_fixture();
    bad[46] = 9; // appendage length beyond the message
    assert!(matches!(Inbound::parse(&bad), Err(Error::Truncated { .. })));
    let mut bad = enter_fixture();
    bad.push(0); // trailing byte
    assert!(Inbound::parse(&bad).is_err());
    let mut bad = enter_fixture();
    bad[5] = b'X';
    assert!(matches!(
        Inbound::parse(&bad),
        Err(Error::InvalidField { field: "side", .. })
    ));
}

#[test]
fn replace_order_fixture() {
    let mut v = vec![b'U'];
    v.extend_from_slice(&[0, 0, 0, 7]); // @1 orig
    v.extend_from_slice(&[0, 0, 0, 8]); // @5 new
    v.extend_from_slice(&[0, 0, 0, 50]); // @9 quantity
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x27, 0x10]); // @13 price 1.0000
    v.extend_from_slice(b"3YN"); // @21 TIF IOC, @22 display, @23 ISE
    v.extend_from_slice(b"CL1           "); // @24 ClOrdID
    v.extend_from_slice(&[0, 0]); // @38 appendage length
    assert_eq!(v.len(), 40);
    roundtrip_in(
        Inbound::ReplaceOrder(ReplaceOrder {
            orig_user_ref: 7,
            user_ref: 8,
            quantity: 50,
            price: 10_000,
            time_in_force: tif::IOC,
            display: b'Y',
            intermarket_sweep: b'N',
            cl_ord_id: clid(),
            options: Options::default(),
        }),
        &v,
    );
}

#[test]
fn cancel_and_modify_fixtures() {
    roundtrip_in(
        Inbound::CancelOrder(CancelOrder {
            user_ref: 7,
            quantity: 0,
        }),
        &[b'X', 0, 0, 0, 7, 0, 0, 0, 0],
    );
    roundtrip_in(
        Inbound::ModifyOrder(ModifyOrder {
            user_ref: 7,
            side: Side::SellShort,
            quantity: 5,
        }),
        &[b'M', 0, 0, 0, 7, b'T', 0, 0, 0, 5],
    );
    assert!(
        Inbound::parse(&[b'X', 0, 0, 0, 7, 0, 0, 0, 0, 0]).is_err(),
        "too long"
    );
    assert!(matches!(
        Inbound::parse(b"Z"),
        Err(Error::UnknownType { code: b'Z', .. })
    ));
    assert!(Inbound::parse(&[]).is_err());
}

const TS: [u8; 8] = [0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];
const TSV: u64 = 0x1234_5678_9abc;

fn out(code: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![code];
    v.extend_from_slice(&TS);
    v.extend_from_slice(body);
    v
}

fn accepted() -> OrderAccepted {
    OrderAccepted {
        timestamp: TSV,
        user_ref: 7,
        side: Side::Buy,
        quantity: 1000,
        symbol: sym(),
        price: 10_000,
        time_in_force: tif::DAY,
        display: b'Y',
        order_ref: 99,
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        order_state: order_state::LIVE,
        cl_ord_id: clid(),
        options: Options::default(),
    }
}

fn accepted_body_after_user_ref() -> Vec<u8> {
    let mut v = vec![b'B']; // side
    v.extend_from_slice(&[0, 0, 0x03, 0xe8]); // quantity
    v.extend_from_slice(b"AAPL    "); // symbol
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x27, 0x10]); // price
    v.extend_from_slice(b"0Y"); // TIF, display
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 99]); // order reference number
    v.extend_from_slice(b"ANNL"); // capacity, ISE, cross type, order state
    v.extend_from_slice(b"CL1           "); // ClOrdID
    v.extend_from_slice(&[0, 0]); // appendage length
    v
}

#[test]
fn outbound_system_event_accepted_replaced() {
    roundtrip_out(
        Outbound::SystemEvent {
            timestamp: TSV,
            event_code: b'S',
        },
        &out(b'S', b"S"),
    );
    let mut body = vec![0, 0, 0, 7];
    body.extend_from_slice(&accepted_body_after_user_ref());
    let a = out(b'A', &body);
    assert_eq!(a.len(), 64);
    assert_eq!(
        a[36..44],
        [0, 0, 0, 0, 0, 0, 0, 99],
        "order reference number @36"
    );
    roundtrip_out(Outbound::OrderAccepted(accepted()), &a);
    let mut body = vec![0, 0, 0, 6, 0, 0, 0, 7];
    body.extend_from_slice(&accepted_body_after_user_ref());
    let u = out(b'U', &body);
    assert_eq!(u.len(), 68);
    roundtrip_out(
        Outbound::OrderReplaced {
            orig_user_ref: 6,
            order: accepted(),
        },
        &u,
    );
}

/// Section 3.2: Order Accepted echoes the order's options in its appendage, each option length (tag + value),
/// tag, value (Appendix B): MinQty (tag 3) 100 and PostOnly (tag 12) 'P' make 9 bytes, so 73 in all.
#[test]
fn accepted_echoes_options_in_its_appendage() {
    let with = OrderAccepted { options: Options { min_qty: Some(100), post_only: Some(b'P'), ..Options::default() }, ..accepted() };
    let mut body = vec![0, 0, 0, 7];
    body.extend_from_slice(&accepted_body_after_user_ref());
    let n = body.len();
    body[n - 2..].copy_from_slice(&[0, 9]);
    body.extend_from_slice(&[5, 3, 0, 0, 0, 100, 2, 12, b'P']);
    let a = out(b'A', &body);
    assert_eq!(a.len(), 73);
    roundtrip_out(Outbound::OrderAccepted(with), &a);
}

#[test]
fn outbound_canceled_executed_rejected_modified() {
    roundtrip_out(
        Outbound::OrderCanceled {
            timestamp: TSV,
            user_ref: 7,
            quantity: 10,
            reason: cancel_reason::USER_REQUESTED,
        },
        &out(b'C', &[0, 0, 0, 7, 0, 0, 0, 10, b'U']),
    );
    roundtrip_out(
        Outbound::OrderExecuted {
            timestamp: TSV,
            user_ref: 7,
            quantity: 10,
            price: 10_000,
            liquidity: b'A',
            match_number: 3,
        },
        &out(
            b'E',
            &[
                0, 0, 0, 7, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0x27, 0x10, b'A', 0, 0, 0, 0, 0, 0, 0,
                3, 0, 0,
            ],
        ),
    );
    let mut rej = vec![0, 0, 0, 7, 0x00, 0x1d];
    rej.extend_from_slice(b"CL1           ");
    roundtrip_out(
        Outbound::OrderRejected {
            timestamp: TSV,
            user_ref: 7,
            reason: reject_reason::INVALID_PRICE,
            cl_ord_id: clid(),
        },
        &out(b'J', &rej),
    );
    roundtrip_out(
        Outbound::CancelReject {
            timestamp: TSV,
            user_ref: 7,
        },
        &out(b'I', &[0, 0, 0, 7]),
    );
    roundtrip_out(
        Outbound::OrderModified {
            timestamp: TSV,
            user_ref: 7,
            side: Side::Sell,
            quantity: 4,
        },
        &out(b'M', &[0, 0, 0, 7, b'S', 0, 0, 0, 4]),
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![
            Just(Side::Buy),
            Just(Side::Sell),
            Just(Side::SellShort),
            Just(Side::SellShortExempt)
        ]
    }

    fn options() -> impl Strategy<Value = Options> {
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(|(min_qty, post_only, stop_price, expire_time)| Options {
                min_qty,
                post_only,
                stop_price,
                expire_time,
                ..Options::default()
            })
    }

    proptest! {
        #[test]
        fn enter_roundtrip(user_ref: u32, s in side(), quantity: u32, price: u64, tif: u8, o in options()) {
            let m = Inbound::EnterOrder(EnterOrder { user_ref, side: s, quantity, price, time_in_force: tif, options: o, ..enter() });
            let mut buf = [0u8; 128];
            let n = m.emit(&mut buf).unwrap();
            prop_assert_eq!(Inbound::parse(&buf[..n]).unwrap(), m);
        }

        #[test]
        fn outbound_roundtrip(ts in 0u64..(1 << 48), user_ref: u32, q: u32, price: u64, m: u64, reason: u16, o in options()) {
            for msg in [
                Outbound::OrderExecuted { timestamp: ts, user_ref, quantity: q, price, liquidity: b'R', match_number: m },
                Outbound::OrderRejected { timestamp: ts, user_ref, reason, cl_ord_id: clid() },
                Outbound::OrderAccepted(OrderAccepted { timestamp: ts, user_ref, quantity: q, price, order_ref: m, options: o, ..accepted() }),
                Outbound::OrderReplaced { orig_user_ref: user_ref ^ 1, order: OrderAccepted { options: o, ..accepted() } },
            ] {
                let mut buf = [0u8; 128];
                let n = msg.emit(&mut buf).unwrap();
                prop_assert_eq!(Outbound::parse(&buf[..n]).unwrap(), msg);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Inbound::parse(&bytes);
            let _ = Outbound::parse(&bytes);
        }
    }
}

/// Sections 2.3 and 2.4 (rev 1.04): "the Appendage Length and Optional Appendage fields are optional on this
/// message type", so Cancel is 9 bytes or 11 + appendage, Modify 10 or 12 + appendage.
#[test]
fn cancel_and_modify_take_the_optional_appendage() {
    let cancel = Inbound::CancelOrder(CancelOrder { user_ref: 7, quantity: 0 });
    // 'X' | UserRefNum 7 | Quantity 0 | Appendage Length 0
    let v = [b'X', 0, 0, 0, 7, 0, 0, 0, 0, 0, 0];
    assert_eq!(Inbound::parse(&v).unwrap(), cancel);
    // … with UserRefIdx (tag 28, 1 byte): length 2, tag 28, value 3.
    let v = [b'X', 0, 0, 0, 7, 0, 0, 0, 0, 0, 3, 2, 28, 3];
    assert_eq!(Inbound::parse(&v).unwrap(), cancel);
    // 'M' | UserRefNum 9 | Side 'E' | Quantity 40 | Appendage Length 0
    let modify = Inbound::ModifyOrder(ModifyOrder { user_ref: 9, side: Side::SellShortExempt, quantity: 40 });
    let v = [b'M', 0, 0, 0, 9, b'E', 0, 0, 0, 40, 0, 0];
    assert_eq!(Inbound::parse(&v).unwrap(), modify);
    // … with SharesLocated 'Y' (tag 25).
    let v = [b'M', 0, 0, 0, 9, b'E', 0, 0, 0, 40, 0, 3, 2, 25, b'Y'];
    assert_eq!(Inbound::parse(&v).unwrap(), modify);
    // A lone byte where the Appendage Length would be, an appendage longer than announced, or one that
    // overruns: malformed.
    assert!(Inbound::parse(&[b'X', 0, 0, 0, 7, 0, 0, 0, 0, 0]).is_err());
    assert!(Inbound::parse(&[b'X', 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 1]).is_err());
    assert!(Inbound::parse(&[b'M', 0, 0, 0, 9, b'E', 0, 0, 0, 40, 0, 3, 5, 25, b'Y']).is_err());
}

/// Side 'Q' is outside section 2.1's set: the message does not parse, but it is recognised as an Enter Order to
/// answer (Invalid Side) rather than drop; anything else that fails to parse is not.
#[test]
fn enter_with_an_invalid_side_is_recognised() {
    let mut v = enter_fixture();
    v[5] = b'Q';
    assert!(Inbound::parse(&v).is_err());
    assert_eq!(enter_with_invalid_side(&v), Some((7, clid())));
    assert_eq!(enter_with_invalid_side(&enter_fixture()), None, "a valid side");
    assert_eq!(enter_with_invalid_side(&v[..40]), None, "truncated");
    let mut long = v.clone();
    long.push(0);
    assert_eq!(enter_with_invalid_side(&long), None, "bytes after the appendage");
}

fn firm() -> Alpha<4> {
    Alpha(*b"BRSE")
}

/// Section 2.5, Mass Cancel Request: Type 'C' @0, UserRefNum @1 (4), Firm @5 (4), Symbol @9 (8, space filled
/// for every symbol), Appendage Length @17 (2), appendage @19 with the Side (Appendix A tag 27) and Group ID
/// (tag 24) options.
#[test]
fn mass_cancel_request_fixture() {
    let mut v = vec![b'C', 0, 0, 0, 12]; // UserRefNum 12
    v.extend_from_slice(b"BRSE"); // @5 Firm
    v.extend_from_slice(b"AAPL    "); // @9 Symbol
    v.extend_from_slice(&[0, 0]); // @17 Appendage Length 0
    assert_eq!(v.len(), 19);
    let m = MassCancelRequest { user_ref: 12, firm: firm(), symbol: sym(), side: None, group_id: None };
    roundtrip_in(Inbound::MassCancel(m), &v);
    // Every symbol: Symbol space filled.
    let mut all = v.clone();
    all[9..17].copy_from_slice(b"        ");
    assert_eq!(Inbound::parse(&all).unwrap(), Inbound::MassCancel(MassCancelRequest { symbol: Symbol::BLANK, ..m }));
    // Group ID 0 (length 3, tag 24, 0x0000) then Side 'S' (length 2, tag 27): the emitter writes tags in order.
    let mut with = v.clone();
    with[18] = 7;
    with.extend_from_slice(&[3, 24, 0, 0, 2, 27, b'S']);
    let scoped = MassCancelRequest { side: Some(Side::Sell), group_id: Some(0), ..m };
    roundtrip_in(Inbound::MassCancel(scoped), &with);
    // The other order on the wire, and UserRefIdx (tag 28), which is skipped.
    let mut other = v.clone();
    other[18] = 10;
    other.extend_from_slice(&[2, 27, b'S', 2, 28, 1, 3, 24, 0, 0]);
    assert_eq!(Inbound::parse(&other).unwrap(), Inbound::MassCancel(scoped));
    // A Side outside B/S/T/E, a Group ID of one byte, and the message without its Appendage Length: malformed.
    let mut bad = v.clone();
    bad[18] = 3;
    bad.extend_from_slice(&[2, 27, b'Q']);
    assert!(matches!(Inbound::parse(&bad), Err(Error::InvalidField { field: "side", .. })));
    let mut bad = v.clone();
    bad[18] = 3;
    bad.extend_from_slice(&[2, 24, 0]);
    assert!(matches!(Inbound::parse(&bad), Err(Error::InvalidField { field: "Group ID option", .. })));
    assert!(Inbound::parse(&v[..17]).is_err());
}

/// Sections 2.6 and 2.7: Type 'D' / 'E' @0, UserRefNum @1 (4), Firm @5 (4), Appendage Length @9 (2): 11 bytes.
#[test]
fn disable_and_enable_order_entry_request_fixtures() {
    let m = OrderEntryRequest { user_ref: 0x0102_0304, firm: firm() };
    let v = [b'D', 1, 2, 3, 4, b'B', b'R', b'S', b'E', 0, 0];
    roundtrip_in(Inbound::DisableOrderEntry(m), &v);
    let v = [b'E', 1, 2, 3, 4, b'B', b'R', b'S', b'E', 0, 0];
    roundtrip_in(Inbound::EnableOrderEntry(m), &v);
    // With UserRefIdx 2 (tag 28), skipped.
    let v = [b'E', 1, 2, 3, 4, b'B', b'R', b'S', b'E', 0, 3, 2, 28, 2];
    assert_eq!(Inbound::parse(&v).unwrap(), Inbound::EnableOrderEntry(m));
    assert!(Inbound::parse(&v[..9]).is_err(), "the Appendage Length is not optional here");
}

/// Section 2.8: Type 'Q', then an Appendage Length and appendage that are optional on this message type.
#[test]
fn account_query_request_fixture() {
    roundtrip_in(Inbound::AccountQuery, b"Q");
    assert_eq!(Inbound::parse(&[b'Q', 0, 0]).unwrap(), Inbound::AccountQuery);
    assert_eq!(Inbound::parse(&[b'Q', 0, 3, 2, 28, 1]).unwrap(), Inbound::AccountQuery);
    assert!(Inbound::parse(&[b'Q', 0]).is_err(), "half an Appendage Length");
    assert!(Inbound::parse(&[b'Q', 0, 2, 2]).is_err(), "an appendage shorter than announced");
    assert_eq!(Inbound::AccountQuery.new_user_ref(), None);
}

/// Section 3.14, Mass Cancel Response: Type 'X' @0, Timestamp @1 (8), UserRefNum @9 (4), Firm @13 (4), Symbol
/// @17 (8), Appendage Length @25 (2), and the request's Side and Group ID options echoed @27.
#[test]
fn mass_cancel_response_fixture() {
    let request = MassCancelRequest { user_ref: 12, firm: firm(), symbol: Symbol::BLANK, side: None, group_id: None };
    let mut body = vec![0, 0, 0, 12];
    body.extend_from_slice(b"BRSE");
    body.extend_from_slice(b"        ");
    body.extend_from_slice(&[0, 0]);
    let v = out(b'X', &body);
    assert_eq!(v.len(), 27);
    roundtrip_out(Outbound::MassCancelResponse { timestamp: TSV, request }, &v);
    let mut with = v.clone();
    with[26] = 3;
    with.extend_from_slice(&[2, 27, b'B']);
    let request = MassCancelRequest { side: Some(Side::Buy), ..request };
    roundtrip_out(Outbound::MassCancelResponse { timestamp: TSV, request }, &with);
}

/// Sections 3.15 and 3.16: Type 'G' / 'K' @0, Timestamp @1 (8), UserRefNum @9 (4), Firm @13 (4), Appendage
/// Length @17 (2): 19 bytes. Section 3.17: Type 'Q', Timestamp, NextUserRefNum @9 (4), its Appendage Length
/// absent (no UserRefIdx here): 13 bytes.
#[test]
fn order_entry_and_account_query_response_fixtures() {
    let request = OrderEntryRequest { user_ref: 5, firm: firm() };
    let body = [0, 0, 0, 5, b'B', b'R', b'S', b'E', 0, 0];
    let g = out(b'G', &body);
    assert_eq!(g.len(), 19);
    roundtrip_out(Outbound::DisableOrderEntryResponse { timestamp: TSV, request }, &g);
    roundtrip_out(Outbound::EnableOrderEntryResponse { timestamp: TSV, request }, &out(b'K', &body));
    let q = out(b'Q', &[0, 0, 0x01, 0x00]);
    assert_eq!(q.len(), 13);
    roundtrip_out(Outbound::AccountQueryResponse { timestamp: TSV, next_user_ref: 256 }, &q);
    // A response carrying an appendage (another venue's UserRefIdx) parses; a torn one does not.
    let mut with = q.clone();
    with.extend_from_slice(&[0, 3, 2, 28, 1]);
    assert_eq!(
        Outbound::parse(&with).unwrap(),
        Outbound::AccountQueryResponse { timestamp: TSV, next_user_ref: 256 }
    );
    assert!(Outbound::parse(&with[..14]).is_err());
}
