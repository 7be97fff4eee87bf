//! OUCH → engine command and engine event → OUCH/ITCH translation.

use bourse_appliance::translate::{
    reject_code, reject_row, OuchReject, TranslateLimits, Translator, MARKET_PRICE, REJECT_CODES,
    REJECT_ROWS,
};
use bourse_engine::{
    Cancel, CancelReason, Command, Event, Modify, OrderKind, Party, RejectReason, Replace, Side,
    TimeInForce,
};
use bourse_nic::wire::alpha::{ClOrdId, Symbol};
use bourse_nic::wire::{itch, ouch};

fn translator() -> Translator {
    let syms = [Symbol::new("AAPL").unwrap(), Symbol::new("MSFT").unwrap()];
    let mut t = Translator::new(
        &syms,
        TranslateLimits {
            sessions_max: 4,
            records_max: 16,
        },
    );
    t.size_order_refs(1024);
    t
}

/// The engine reports order `engine_ref` of (`session`, `user_ref`) accepted: the translator numbers it.
fn accept(t: &mut Translator, session: u16, user_ref: u32, engine_ref: u64, symbol: u16, side: Side) -> Outs {
    let ev = Event::Accepted {
        order_ref: engine_ref,
        session,
        user_ref,
        account: 20,
        symbol,
        side,
        kind: OrderKind::Limit,
        tif: TimeInForce::Day,
        qty: 100,
        price: 3_000_000,
        queued: false,
    };
    run(t, ev)
}

fn enter(user_ref: u32) -> ouch::EnterOrder {
    ouch::EnterOrder {
        user_ref,
        side: ouch::Side::Buy,
        quantity: 100,
        symbol: Symbol::new("MSFT").unwrap(),
        price: 3_000_000,
        time_in_force: ouch::tif::DAY,
        display: b'Y',
        capacity: b'P',
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: ClOrdId::new("ORD-1").unwrap(),
        options: ouch::Options::default(),
    }
}

fn new_order(
    t: &mut Translator,
    m: ouch::EnterOrder,
) -> Result<bourse_engine::NewOrder, OuchReject> {
    // Translation changes nothing; applying the journaled input records what replies echo.
    let (command, echo) = t.on_ouch(2, 20, &ouch::Inbound::EnterOrder(m))?;
    t.remember(&command, &echo.expect("an order carries its echo"));
    match command {
        Command::NewOrder(n) => Ok(n),
        other => panic!("{other:?}"),
    }
}

#[test]
fn enter_order_limit_day() {
    let mut t = translator();
    let n = new_order(&mut t, enter(1)).unwrap();
    assert_eq!((n.session, n.user_ref, n.account, n.symbol), (2, 1, 20, 1));
    assert_eq!(
        (n.side, n.kind, n.tif, n.post_only),
        (Side::Buy, OrderKind::Limit, TimeInForce::Day, false)
    );
    assert_eq!((n.qty, n.price), (100, 3_000_000));
}

#[test]
fn enter_order_kinds_and_tif() {
    let mut t = translator();
    let ioc = new_order(
        &mut t,
        ouch::EnterOrder {
            time_in_force: ouch::tif::IOC,
            ..enter(1)
        },
    )
    .unwrap();
    assert_eq!(ioc.tif, TimeInForce::Ioc);
    let fok = ouch::EnterOrder {
        time_in_force: ouch::tif::IOC,
        options: ouch::Options {
            min_qty: Some(100),
            ..Default::default()
        },
        ..enter(2)
    };
    assert_eq!(new_order(&mut t, fok).unwrap().tif, TimeInForce::Fok);
    let mkt = new_order(
        &mut t,
        ouch::EnterOrder {
            price: MARKET_PRICE,
            side: ouch::Side::SellShort,
            ..enter(3)
        },
    )
    .unwrap();
    assert_eq!((mkt.kind, mkt.side), (OrderKind::Market, Side::Sell));
    let stop = ouch::EnterOrder {
        options: ouch::Options {
            stop_price: Some(2_900_000),
            ..Default::default()
        },
        ..enter(4)
    };
    let s = new_order(&mut t, stop).unwrap();
    assert_eq!(
        (s.kind, s.stop_price, s.price),
        (OrderKind::StopLimit, 2_900_000, 3_000_000)
    );
    let stop_mkt = ouch::EnterOrder {
        price: MARKET_PRICE,
        options: ouch::Options {
            stop_price: Some(2_900_000),
            ..Default::default()
        },
        ..enter(5)
    };
    assert_eq!(new_order(&mut t, stop_mkt).unwrap().kind, OrderKind::Stop);
    let po = ouch::EnterOrder {
        options: ouch::Options {
            post_only: Some(b'P'),
            ..Default::default()
        },
        ..enter(6)
    };
    assert!(new_order(&mut t, po).unwrap().post_only);
}

#[test]
fn enter_order_rejects() {
    let mut t = translator();
    let r = new_order(
        &mut t,
        ouch::EnterOrder {
            price: u64::from(u32::MAX) + 1,
            ..enter(1)
        },
    )
    .unwrap_err();
    assert_eq!(
        r,
        OuchReject {
            user_ref: 1,
            reason: ouch::reject_reason::INVALID_PRICE,
            cl_ord_id: ClOrdId::new("ORD-1").unwrap()
        }
    );
    let r = new_order(
        &mut t,
        ouch::EnterOrder {
            symbol: Symbol::new("ZZZZ").unwrap(),
            ..enter(2)
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, ouch::reject_reason::INVALID_SYMBOL);
    let r = new_order(
        &mut t,
        ouch::EnterOrder {
            options: ouch::Options {
                min_qty: Some(5),
                ..Default::default()
            },
            ..enter(3)
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, ouch::reject_reason::INVALID_MIN_QUANTITY);
    let r = new_order(
        &mut t,
        ouch::EnterOrder {
            time_in_force: b'9',
            ..enter(4)
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, ouch::reject_reason::OTHER);
    let mut buf = [0xa5u8; 40];
    assert_eq!(r.emit(7, &mut buf).unwrap(), 29);
    assert_eq!(buf[0], b'J');
    assert_eq!(&buf[13..15], &[0x00, 0x0f]);
    assert_eq!(&buf[15..29], b"ORD-1         ");
}

#[test]
fn cancel_replace_modify() {
    let mut t = translator();
    new_order(
        &mut t,
        ouch::EnterOrder {
            side: ouch::Side::Sell,
            ..enter(1)
        },
    )
    .unwrap();
    let c = t
        .on_ouch(
            2,
            20,
            &ouch::Inbound::CancelOrder(ouch::CancelOrder {
                user_ref: 1,
                quantity: 0,
            }),
        )
        .unwrap()
        .0;
    assert_eq!(
        c,
        Command::Cancel(Cancel {
            session: 2,
            user_ref: 1,
            qty: 0
        })
    );
    let m = t
        .on_ouch(
            2,
            20,
            &ouch::Inbound::ModifyOrder(ouch::ModifyOrder {
                user_ref: 1,
                side: ouch::Side::SellShort,
                quantity: 40,
            }),
        )
        .unwrap()
        .0;
    assert_eq!(
        m,
        Command::Modify(Modify { session: 2, user_ref: 1, qty: 40, side: Side::Sell, side_code: b'T' })
    );
    let rep = ouch::ReplaceOrder {
        orig_user_ref: 1,
        user_ref: 2,
        quantity: 50,
        price: 3_100_000,
        time_in_force: ouch::tif::DAY,
        display: b'Y',
        intermarket_sweep: b'N',
        cl_ord_id: ClOrdId::new("ORD-2").unwrap(),
        options: ouch::Options::default(),
    };
    let r = t.on_ouch(2, 20, &ouch::Inbound::ReplaceOrder(rep)).unwrap().0;
    assert_eq!(
        r,
        Command::Replace(Replace {
            session: 2,
            orig_user_ref: 1,
            new_user_ref: 2,
            qty: 50,
            price: 3_100_000
        })
    );
    let too_high = ouch::ReplaceOrder {
        price: 1 << 40,
        user_ref: 3,
        ..rep
    };
    // Section 2.2 case 2: invalid replace details take the existing order out of the book.
    let cancel = Command::Cancel(Cancel { session: 2, user_ref: 1, qty: 0 });
    assert_eq!(t.on_ouch(2, 20, &ouch::Inbound::ReplaceOrder(too_high)).unwrap(), (cancel, None));
    for bad in [
        ouch::ReplaceOrder { quantity: 1_000_000, ..rep },
        ouch::ReplaceOrder { quantity: 0, ..rep },
        ouch::ReplaceOrder { time_in_force: b'E', ..rep },
        ouch::ReplaceOrder { display: b'Q', ..rep },
        ouch::ReplaceOrder { intermarket_sweep: b'Z', ..rep },
    ] {
        assert_eq!(t.on_ouch(2, 20, &ouch::Inbound::ReplaceOrder(bad)).unwrap(), (cancel, None), "{bad:?}");
    }
    let ok = ouch::ReplaceOrder { quantity: 999_999, ..rep };
    assert!(matches!(t.on_ouch(2, 20, &ouch::Inbound::ReplaceOrder(ok)).unwrap().0, Command::Replace(_)));
}

type Outs = (Vec<(u16, Option<u32>, Vec<u8>)>, Vec<Vec<u8>>);

fn run(t: &mut Translator, ev: Event) -> Outs {
    let mut o = Vec::new();
    let mut i = Vec::new();
    t.on_event(
        &ev,
        1_000,
        &mut |s, first, b| o.push((s, first, b.to_vec())),
        &mut |b| i.push(b.to_vec()),
    );
    (o, i)
}

#[test]
fn accepted_echoes_cl_ord_id() {
    let mut t = translator();
    new_order(&mut t, enter(1)).unwrap();
    let ev = Event::Accepted {
        order_ref: 77,
        session: 2,
        user_ref: 1,
        account: 20,
        symbol: 1,
        side: Side::Buy,
        kind: OrderKind::Limit,
        tif: TimeInForce::Day,
        qty: 100,
        price: 3_000_000,
        queued: false,
    };
    let (o, i) = run(&mut t, ev);
    assert!(i.is_empty());
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].0, o[0].1), (2, Some(1)));
    match ouch::Outbound::parse(&o[0].2).unwrap() {
        ouch::Outbound::OrderAccepted(a) => {
            assert_eq!(a.cl_ord_id, ClOrdId::new("ORD-1").unwrap());
            assert_eq!(
                (a.order_ref, a.quantity, a.price, a.capacity),
                (1, 100, 3_000_000, b'P')
            );
            assert_eq!(a.symbol, Symbol::new("MSFT").unwrap());
            assert_eq!(a.timestamp, 1_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejected_and_canceled() {
    let mut t = translator();
    let (o, _) = run(
        &mut t,
        Event::Rejected {
            session: 2,
            user_ref: 9,
            reason: RejectReason::InsufficientFunds,
        },
    );
    assert_eq!(
        ouch::Outbound::parse(&o[0].2).unwrap(),
        ouch::Outbound::OrderRejected {
            timestamp: 1_000,
            user_ref: 9,
            reason: 0x0020,
            cl_ord_id: ClOrdId::BLANK
        }
    );
    assert_eq!(
        reject_code(RejectReason::Halted),
        ouch::reject_reason::HALTED
    );
    let cancel = |reason| Event::Canceled {
        order_ref: 5,
        session: 2,
        user_ref: 9,
        symbol: 0,
        side: Side::Buy,
        canceled_qty: 10,
        leaves_qty: 0,
        reason,
    };
    let (o, _) = run(&mut t, cancel(CancelReason::ImmediateOrCancel));
    assert_eq!(
        ouch::Outbound::parse(&o[0].2).unwrap(),
        ouch::Outbound::OrderCanceled {
            timestamp: 1_000,
            user_ref: 9,
            quantity: 10,
            reason: b'I'
        }
    );
    assert!(
        run(&mut t, cancel(CancelReason::Replaced)).0.is_empty(),
        "Order Replaced reports it"
    );
}

#[test]
fn executed_to_both_sides_and_itch() {
    let mut t = translator();
    let party = |session, user_ref, order_ref| Party {
        order_ref,
        session,
        user_ref,
        account: 0,
        leaves_qty: 0,
    };
    let ev = Event::Executed {
        symbol: 0,
        match_number: 42,
        price: 1_500_000,
        qty: 30,
        maker: party(1, 5, 100),
        taker: party(2, 9, 101),
        taker_side: Side::Buy,
    };
    accept(&mut t, 1, 5, 100, 0, Side::Sell);
    let (o, i) = run(&mut t, ev);
    assert_eq!(o.len(), 2);
    assert!(matches!(
        ouch::Outbound::parse(&o[0].2).unwrap(),
        ouch::Outbound::OrderExecuted {
            user_ref: 5,
            liquidity: b'A',
            quantity: 30,
            match_number: 42,
            ..
        }
    ));
    assert_eq!(o[1].0, 2);
    assert!(matches!(
        ouch::Outbound::parse(&o[1].2).unwrap(),
        ouch::Outbound::OrderExecuted {
            user_ref: 9,
            liquidity: b'R',
            ..
        }
    ));
    assert_eq!(
        itch::Message::parse(&i[0]).unwrap(),
        itch::Message::OrderExecuted(itch::OrderExecuted {
            header: itch::Header {
                locate: 1,
                tracking: 0,
                timestamp: 1_000
            },
            order_ref: 1,
            shares: 30,
            match_number: 42,
            with_price: None
        })
    );
}

#[test]
fn book_events_to_itch() {
    let mut t = translator();
    accept(&mut t, 1, 1, 7, 0, Side::Sell);
    accept(&mut t, 1, 2, 8, 0, Side::Sell);
    let (_, i) = run(
        &mut t,
        Event::BookAdd {
            order_ref: 7,
            symbol: 0,
            side: Side::Sell,
            price: 10_000,
            qty: 5,
        },
    );
    assert_eq!(i[0].len(), 36);
    assert_eq!(i[0][0], b'A');
    assert_eq!(&i[0][24..32], b"AAPL    ");
    let (_, i) = run(
        &mut t,
        Event::BookReduce {
            order_ref: 7,
            symbol: 0,
            canceled_qty: 2,
        },
    );
    assert_eq!((i[0][0], i[0].len()), (b'X', 23));
    let (_, i) = run(
        &mut t,
        Event::BookDelete {
            order_ref: 7,
            symbol: 0,
        },
    );
    assert_eq!((i[0][0], i[0].len()), (b'D', 19));
    let (_, i) = run(
        &mut t,
        Event::BookReplace {
            old_ref: 7,
            new_ref: 8,
            symbol: 0,
            price: 1,
            qty: 1,
        },
    );
    assert_eq!((i[0][0], i[0].len()), (b'U', 35));
    let (_, i) = run(
        &mut t,
        Event::TradingAction {
            symbol: 1,
            state: bourse_engine::TradingState::Halted,
            reason: bourse_engine::HaltReason::PriceBand,
        },
    );
    assert_eq!(&i[0][11..25], b"MSFT    H LUDP");
}

/// Every code the engine rejects with has its own row in the reject table, names are distinct and fit the stats
/// block's name field, and unknown codes land in the last row.
#[test]
fn every_reject_code_has_a_named_row() {
    use RejectReason::*;
    let all = [
        UnknownSymbol, UnknownAccount, UnknownSession, UserRefNotIncreasing, ZeroQuantity,
        QuantityTooLarge, NotionalTooLarge, InvalidPrice, InvalidStopPrice, InsufficientFunds, InsufficientShares,
        WouldTakeLiquidity, FokUnfillable, NoLiquidity, CapacityExhausted, InvalidAdmin, InvalidReplace, Halted,
    ];
    for r in all {
        let row = reject_row(reject_code(r));
        assert!(row < REJECT_CODES.len(), "{r:?} (code {:#06x}) has no row", reject_code(r));
        assert_eq!(REJECT_CODES[row].0, reject_code(r));
    }
    for (i, (code, name)) in REJECT_CODES.iter().enumerate() {
        assert_eq!(reject_row(*code), i);
        assert!(name.len() <= bourse_appliance::obs::statsblock::REASON_NAME_BYTES, "{name}");
        assert!(REJECT_CODES[..i].iter().all(|(_, n)| n != name), "{name} listed twice");
    }
    assert_eq!(reject_row(0x0018), REJECT_ROWS - 2, "a code we never send counts as other");
    assert_eq!(reject_row(0xffff), REJECT_ROWS - 2);
    let funds = REJECT_CODES.iter().position(|c| c.1 == "insufficient_funds").unwrap();
    assert_eq!(reject_row(reject_code(InsufficientFunds)), funds);
}

/// OUCH 5.0 section 2.1 value sets, each refused with its Appendix C code (hand-checked: 0x0013 Invalid Quantity,
/// 0x0003 Invalid Display, 0x0008 ISO Not Allowed, 0x000F Other), and the edges that are accepted.
#[test]
fn enter_order_fields_outside_their_value_sets_are_rejected() {
    let mut t = translator();
    let cases: [(ouch::EnterOrder, u16); 8] = [
        (ouch::EnterOrder { quantity: 1_000_000, ..enter(1) }, 0x0013),
        (ouch::EnterOrder { quantity: 0, ..enter(2) }, 0x0013),
        (ouch::EnterOrder { display: b'Q', ..enter(3) }, 0x0003),
        (ouch::EnterOrder { capacity: b'Z', ..enter(4) }, 0x000F),
        (ouch::EnterOrder { intermarket_sweep: b'Z', ..enter(5) }, 0x000F),
        (ouch::EnterOrder { intermarket_sweep: b'Y', ..enter(6) }, 0x0008),
        (ouch::EnterOrder { time_in_force: b'9', ..enter(7) }, 0x000F),
        (
            ouch::EnterOrder {
                options: ouch::Options { post_only: Some(b'X'), ..Default::default() },
                ..enter(8)
            },
            0x000F,
        ),
    ];
    for (m, code) in cases {
        let r = new_order(&mut t, m).unwrap_err();
        assert_eq!((r.user_ref, r.reason), (m.user_ref, code), "{m:?}");
        assert!(reject_row(code) < REJECT_CODES.len(), "{code:#06x} is counted under its own name");
    }
    for (i, m) in [
        ouch::EnterOrder { quantity: 999_999, ..enter(10) },
        ouch::EnterOrder { display: b'N', capacity: b'R', ..enter(11) },
        ouch::EnterOrder { display: b'A', capacity: b'O', ..enter(12) },
    ]
    .into_iter()
    .enumerate()
    {
        assert!(new_order(&mut t, m).is_ok(), "case {i}: {m:?}");
    }
}

/// OUCH 5.0 section 3.12, Order Modified: 'M' | Timestamp | UserRefNum | Side as the modify marked it | Quantity
/// outstanding (18 bytes, appendage absent). A sell marked short exempt by a modify echoes 'E' from then on.
#[test]
fn modified_answers_with_order_modified() {
    let mut t = translator();
    new_order(&mut t, ouch::EnterOrder { side: ouch::Side::Sell, ..enter(1) }).unwrap();
    let ev = Event::Modified {
        order_ref: 5,
        session: 2,
        user_ref: 1,
        symbol: 1,
        side: Side::Sell,
        side_code: b'E',
        canceled_qty: 60,
        leaves_qty: 40,
    };
    let (o, i) = run(&mut t, ev);
    assert!(i.is_empty(), "the book change is the engine's BookReduce");
    let mut want = vec![b'M', 0, 0, 0, 0, 0, 0, 0x03, 0xe8]; // timestamp 1000
    want.extend_from_slice(&[0, 0, 0, 1, b'E', 0, 0, 0, 40]);
    assert_eq!(o, vec![(2, None, want)]);
    // A later Order Replaced echoes the new marking.
    let rep = Event::Replaced {
        old_ref: 5,
        new_ref: 6,
        session: 2,
        orig_user_ref: 1,
        new_user_ref: 2,
        symbol: 1,
        side: Side::Sell,
        qty: 40,
        price: 3_000_000,
    };
    t.remember(
        &Command::Replace(Replace { session: 2, orig_user_ref: 1, new_user_ref: 2, qty: 40, price: 3_000_000 }),
        &[0; 20],
    );
    let (o, _) = run(&mut t, rep);
    assert_eq!(o[0].2[0], b'U');
    assert_eq!(o[0].2[ouch::field::replaced::SIDE], b'E');
}

/// Requests OUCH 5.0 sections 2.3-2.4 say to ignore get no reply and no market data, and each is counted under its
/// own reason: an order not open, a cancel or modify that would not reduce, a modify turning a buy into a sell.
#[test]
fn ignored_requests_are_silent_on_the_wire_and_counted_by_reason() {
    use bourse_engine::IgnoreReason;
    let mut t = translator();
    for (user_ref, reason) in [
        (1, IgnoreReason::UnknownOrder),
        (2, IgnoreReason::NotReduced),
        (3, IgnoreReason::NotReduced),
        (4, IgnoreReason::SideChange),
        (5, IgnoreReason::NotIncreasing),
    ] {
        let (o, i) = run(&mut t, Event::Ignored { session: 2, user_ref, reason });
        assert!(o.is_empty() && i.is_empty(), "{reason:?} is answered with nothing");
    }
    let c = t.ignored;
    assert_eq!((c.unknown_order, c.not_reduced, c.side_change, c.not_increasing), (1, 2, 1, 1));
}

/// OUCH 5.0 section 2.5: Symbol space filled cancels every symbol, a listed one only its own; the Side option
/// 'B' scopes to buys and any sell marking to sells. A symbol not listed, or a Group ID other than 0, scopes to
/// a symbol no order is in. Section 3.14: the response echoes Firm, Symbol and the options as the firm sent them,
/// from the journaled echo: 'X' | Timestamp | UserRefNum | Firm | Symbol | Appendage Length 7 | Group ID 0 (3,
/// 24, 0, 0) | Side 'T' (2, 27, 'T').
#[test]
fn mass_cancel_scopes_and_its_response_echo_the_request() {
    use bourse_appliance::translate::NO_SYMBOL;
    use bourse_engine::MassCancel;
    let t = translator();
    let firm = bourse_nic::wire::alpha::Alpha(*b"FRM1");
    let request = |symbol: &str, side, group_id| ouch::MassCancelRequest {
        user_ref: 9,
        firm,
        symbol: if symbol.is_empty() { Symbol::BLANK } else { Symbol::new(symbol).unwrap() },
        side,
        group_id,
    };
    let scope = |m: ouch::MassCancelRequest| match t.on_ouch(2, 20, &ouch::Inbound::MassCancel(m)).unwrap() {
        (Command::MassCancel(c), Some(_)) => (c.symbol, c.side),
        other => panic!("{other:?}"),
    };
    assert_eq!(scope(request("", None, None)), (None, None));
    assert_eq!(scope(request("MSFT", Some(ouch::Side::Buy), Some(0))), (Some(1), Some(Side::Buy)));
    assert_eq!(scope(request("AAPL", Some(ouch::Side::SellShortExempt), None)), (Some(0), Some(Side::Sell)));
    assert_eq!(scope(request("NOPE", None, None)), (Some(NO_SYMBOL), None));
    assert_eq!(scope(request("", None, Some(3))), (Some(NO_SYMBOL), None));

    let mut t = translator();
    let m = request("", Some(ouch::Side::SellShort), Some(0));
    let (command, echo) = t.on_ouch(2, 20, &ouch::Inbound::MassCancel(m)).unwrap();
    let want = MassCancel { session: 2, user_ref: 9, symbol: None, side: Some(Side::Sell) };
    assert_eq!(command, Command::MassCancel(want));
    t.remember(&command, &echo.unwrap());
    let (o, i) = run(&mut t, Event::MassCanceled { session: 2, user_ref: 9, canceled: 0 });
    let mut want = vec![b'X', 0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 9];
    want.extend_from_slice(b"FRM1        ");
    want.extend_from_slice(&[0, 7, 3, 24, 0, 0, 2, 27, b'T']);
    assert_eq!(o, vec![(2, Some(9), want)]);
    assert!(i.is_empty());
}

/// TotalView-ITCH 5.0, "Architecture": locate codes are "dynamically assigned each day, starting with a value of
/// 1"; 0 is for messages that are not stock dependent. The first symbol (SymbolId 0, AAPL) is locate 1.
#[test]
fn stock_locates_start_at_one() {
    let mut t = translator();
    let (_, i) = run(
        &mut t,
        Event::TradingAction {
            symbol: 0,
            state: bourse_engine::TradingState::Halted,
            reason: bourse_engine::HaltReason::Operator,
        },
    );
    // Stock Trading Action (section 1.2.2): 'H', locate 1, tracking 0, timestamp 1000 ns, "AAPL    ", 'H',
    // reserved, reason "H10 ".
    let want: [u8; 25] = [
        b'H', 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, b'A', b'A', b'P', b'L', b' ', b' ',
        b' ', b' ', b'H', b' ', b'H', b'1', b'0', b' ',
    ];
    assert_eq!(i[0], want);
    assert_eq!(bourse_appliance::translate::stock_locate(1), 2, "MSFT is locate 2");
}

/// TotalView-ITCH 5.0 section 1.3: the Order Reference Number is "day-unique"; OUCH 5.0 section 3.2 (Order
/// Accepted) carries the same number. The engine's `generation << 32 | slot` never reaches the wire: the first
/// order of the day is reference 1 whatever its engine reference (here 0x12_0000_01ea, as seen in the field).
#[test]
fn order_reference_numbers_are_day_unique_from_one() {
    let mut t = translator();
    let engine_ref = 0x12_0000_01ea;
    let (o, _) = accept(&mut t, 2, 1, engine_ref, 0, Side::Buy);
    let ouch::Outbound::OrderAccepted(a) = ouch::Outbound::parse(&o[0].2).unwrap() else { panic!() };
    assert_eq!(a.order_ref, 1);
    let (_, i) = run(&mut t, Event::BookAdd { order_ref: engine_ref, symbol: 0, side: Side::Buy, price: 1_500_000, qty: 100 });
    // Add Order (section 1.3.1): 'A', locate 1, tracking 0, timestamp 1000, reference 1, 'B', 100 shares,
    // "AAPL    ", price 150.0000.
    let want: [u8; 36] = [
        b'A', 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, 1, b'B', 0, 0, 0,
        100, b'A', b'A', b'P', b'L', b' ', b' ', b' ', b' ', 0x00, 0x16, 0xe3, 0x60,
    ];
    assert_eq!(i[0], want);
    // The next order, in another slot, is 2; a replace's new reference (same slot, next generation) is 3, and
    // Order Replace 'U' (section 1.4.5) names 1 → 3.
    let (o, _) = accept(&mut t, 2, 2, 5, 1, Side::Sell);
    let ouch::Outbound::OrderAccepted(a) = ouch::Outbound::parse(&o[0].2).unwrap() else { panic!() };
    assert_eq!(a.order_ref, 2);
    let new_ref = engine_ref + (1 << 32);
    let replaced = Event::Replaced {
        old_ref: engine_ref,
        new_ref,
        session: 2,
        orig_user_ref: 1,
        new_user_ref: 3,
        symbol: 0,
        side: Side::Buy,
        qty: 50,
        price: 1_500_000,
    };
    let (o, _) = run(&mut t, replaced);
    let ouch::Outbound::OrderReplaced { order, .. } = ouch::Outbound::parse(&o[0].2).unwrap() else { panic!() };
    assert_eq!(order.order_ref, 3);
    let (_, i) = run(
        &mut t,
        Event::BookReplace { old_ref: engine_ref, new_ref, symbol: 0, price: 1_500_000, qty: 50 },
    );
    assert_eq!(&i[0][11..27], &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
    assert_eq!(t.order_refs().unmapped, 0);
}

/// TotalView-ITCH 5.0 section 1.5.1: "no Add Order Message is generated when a non-displayed order is initially
/// received", and its executions are Trade (Non-Cross) 'P' messages, reference zero, Buy/Sell Indicator "always
/// 'B' regardless of the resting side". An order entered with Display 'N' (OUCH 5.0 section 2.1) is such an order.
#[test]
fn hidden_orders_never_reach_the_book_feed_and_trade_as_p() {
    let mut t = translator();
    let n = new_order(&mut t, ouch::EnterOrder { display: b'N', side: ouch::Side::Sell, ..enter(1) }).unwrap();
    let engine_ref = 3;
    let (o, i) = accept(&mut t, n.session, n.user_ref, engine_ref, 1, Side::Sell);
    assert!(i.is_empty());
    let ouch::Outbound::OrderAccepted(a) = ouch::Outbound::parse(&o[0].2).unwrap() else { panic!() };
    assert_eq!((a.display, a.order_ref), (b'N', 1), "the owner learns its reference; the feed does not");
    let rest = Event::BookAdd { order_ref: engine_ref, symbol: 1, side: Side::Sell, price: 3_000_000, qty: 100 };
    assert!(run(&mut t, rest).1.is_empty(), "no Add Order");
    let party = |order_ref, session, user_ref| Party { order_ref, session, user_ref, account: 0, leaves_qty: 0 };
    let ev = Event::Executed {
        symbol: 1,
        match_number: 0x0102,
        price: 3_000_000,
        qty: 40,
        maker: party(engine_ref, 2, 1),
        taker: party(9, 1, 7),
        taker_side: Side::Buy,
    };
    let (o, i) = run(&mut t, ev);
    assert_eq!(o.len(), 2, "both firms still get OUCH Executed");
    // 'P', locate 2 (MSFT), tracking 0, timestamp 1000, reference 0, 'B', 40 shares, "MSFT    ", 300.0000,
    // match 0x0102.
    let want: [u8; 44] = [
        b'P', 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0, b'B', 0, 0, 0,
        40, b'M', b'S', b'F', b'T', b' ', b' ', b' ', b' ', 0x00, 0x2d, 0xc6, 0xc0, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
    ];
    assert_eq!(i, vec![want.to_vec()]);
    let reduce = Event::BookReduce { order_ref: engine_ref, symbol: 1, canceled_qty: 10 };
    assert!(run(&mut t, reduce).1.is_empty(), "no Order Cancel");
    assert!(run(&mut t, Event::BookDelete { order_ref: engine_ref, symbol: 1 }).1.is_empty(), "no Order Delete");
    // A displayed order is unchanged: Add Order and Order Executed 'E' on its reference.
    new_order(&mut t, enter(2)).unwrap();
    accept(&mut t, 2, 2, 4, 1, Side::Buy);
    let shown = Event::BookAdd { order_ref: 4, symbol: 1, side: Side::Buy, price: 3_000_000, qty: 100 };
    assert_eq!(run(&mut t, shown).1[0][0], b'A');
    let ev = Event::Executed {
        symbol: 1,
        match_number: 0x0103,
        price: 3_000_000,
        qty: 40,
        maker: party(4, 2, 2),
        taker: party(9, 1, 8),
        taker_side: Side::Sell,
    };
    let (_, i) = run(&mut t, ev);
    assert_eq!((i[0][0], &i[0][11..19]), (b'E', &[0, 0, 0, 0, 0, 0, 0, 2][..]));
}

/// A replace can change Display (OUCH 5.0 section 2.2): hiding a displayed order deletes it from the feed
/// (Order Delete 'D', section 1.4.4), showing a hidden one adds it (Add Order 'A', section 1.3.1).
#[test]
fn a_replace_changing_display_deletes_or_adds() {
    let mut t = translator();
    let (command, echo) = t.on_ouch(2, 20, &ouch::Inbound::EnterOrder(enter(1))).unwrap();
    t.remember(&command, &echo.unwrap());
    accept(&mut t, 2, 1, 6, 1, Side::Buy);
    let replace = |orig_user_ref, user_ref, display| ouch::ReplaceOrder {
        orig_user_ref,
        user_ref,
        quantity: 100,
        price: 3_000_000,
        time_in_force: ouch::tif::DAY,
        display,
        intermarket_sweep: b'N',
        cl_ord_id: ClOrdId::new("R").unwrap(),
        options: ouch::Options::default(),
    };
    let step = |t: &mut Translator, orig, new, display, old_ref: u64, new_ref: u64| {
        let (command, echo) = t.on_ouch(2, 20, &ouch::Inbound::ReplaceOrder(replace(orig, new, display))).unwrap();
        t.remember(&command, &echo.unwrap());
        let ev = Event::Replaced {
            old_ref,
            new_ref,
            session: 2,
            orig_user_ref: orig,
            new_user_ref: new,
            symbol: 1,
            side: Side::Buy,
            qty: 100,
            price: 3_000_000,
        };
        run(t, ev);
        run(t, Event::BookReplace { old_ref, new_ref, symbol: 1, price: 3_000_000, qty: 100 }).1
    };
    let hide = step(&mut t, 1, 2, b'N', 6, (1 << 32) | 6);
    assert_eq!(hide, vec![vec![b'D', 0, 2, 0, 0, 0, 0, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0, 0, 0, 1]]);
    let show = step(&mut t, 2, 3, b'Y', (1 << 32) | 6, (2 << 32) | 6);
    assert_eq!((show.len(), show[0][0], &show[0][11..20]), (1, b'A', &[0, 0, 0, 0, 0, 0, 0, 3, b'B'][..]));
}
