//! Differential property tests: random command streams through the engine and through the simple reference model
//! must produce identical (reference-normalised) events, with every invariant and money conservation holding after
//! every command.

mod common;

use bourse_engine::*;
use common::model::Model;
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::BTreeMap;

/// An abstract operation; `materialize` turns it into a concrete command using the stream's own bookkeeping.
#[derive(Clone, Debug)]
enum Op {
    New {
        session: u8,
        sym: u8,
        side: bool,
        kind: u8,
        tif: u8,
        post: bool,
        qty: u32,
        price: u8,
        stop: u8,
        odd: u8,
    },
    Cancel {
        session: u8,
        back: u8,
        qty: u32,
    },
    Replace {
        session: u8,
        back: u8,
        qty: u32,
        price: u8,
        odd: u8,
    },
    Modify {
        session: u8,
        back: u8,
        qty: u32,
        sell: bool,
    },
    Halt {
        sym: u8,
        halted: bool,
        until: u16,
    },
    Tick,
    /// `sym` 0..2 one symbol, 2 every symbol, 3 one that does not exist; `side` 0 both, 1 buy, 2 sell.
    MassCancel {
        session: u8,
        sym: u8,
        side: u8,
        odd: u8,
    },
    OrderEntry {
        session: u8,
        enabled: bool,
        odd: u8,
    },
    AccountQuery {
        session: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u8..5, 0u8..2, any::<bool>(), 0u8..10, 0u8..10, 0u8..10, 1u32..60, 0u8..100, 0u8..100, 0u8..40)
            .prop_map(|(session, sym, side, kind, tif, post, qty, price, stop, odd)| Op::New {
                session, sym, side, kind, tif, post: post == 0, qty, price, stop, odd
            }),
        3 => (0u8..5, 0u8..8, 0u32..30).prop_map(|(session, back, qty)| Op::Cancel { session, back, qty }),
        4 => (0u8..5, 0u8..8, 1u32..60, 0u8..100, 0u8..40)
            .prop_map(|(session, back, qty, price, odd)| Op::Replace { session, back, qty, price, odd }),
        2 => (0u8..5, 0u8..8, 0u32..30, any::<bool>())
            .prop_map(|(session, back, qty, sell)| Op::Modify { session, back, qty, sell }),
        1 => (0u8..2, any::<bool>(), 0u16..3000).prop_map(|(sym, halted, until)| Op::Halt { sym, halted, until }),
        1 => Just(Op::Tick),
        1 => (0u8..5, 0u8..4, 0u8..3, 0u8..40)
            .prop_map(|(session, sym, side, odd)| Op::MassCancel { session, sym, side, odd }),
        1 => (0u8..5, 0u8..4, 0u8..40)
            .prop_map(|(session, e, odd)| Op::OrderEntry { session, enabled: e != 0, odd }),
        1 => (0u8..6).prop_map(|session| Op::AccountQuery { session }),
    ]
}

struct Refs {
    last: [u32; 8],
}

impl Refs {
    /// Mostly increasing UserRefNums; `odd == 0` reuses the last one (provokes UserRefNotIncreasing).
    fn next(&mut self, s: usize, odd: u8) -> u32 {
        if odd != 0 {
            self.last[s] += 1;
        }
        self.last[s]
    }
}

fn materialize(op: &Op, refs: &mut Refs, now: u64) -> Command {
    let price_of = |p: u8| 9_200 + 10 * (p as u32 % 60);
    match *op {
        Op::New {
            session,
            sym,
            side,
            kind,
            tif,
            post,
            qty,
            price,
            stop,
            odd,
        } => {
            let s = session as usize;
            let user_ref = refs.next(s, odd);
            let kind = match kind {
                0..=5 => OrderKind::Limit,
                6 => OrderKind::Market,
                7 => OrderKind::Stop,
                _ => OrderKind::StopLimit,
            };
            let tif = match tif {
                0..=6 => TimeInForce::Day,
                7 | 8 => TimeInForce::Ioc,
                _ => TimeInForce::Fok,
            };
            let qty = match odd {
                1 => 0,
                2 => 5_000,
                _ => qty,
            };
            let price = match odd {
                3 => price_of(price) + 5,
                _ => price_of(price),
            };
            Command::NewOrder(NewOrder {
                session: session as u16,
                user_ref,
                account: if odd == 4 {
                    3 - (s as u32 % 4)
                } else {
                    s as u32
                },
                symbol: if odd == 5 { 7 } else { sym as u16 },
                side: if side { Side::Buy } else { Side::Sell },
                kind,
                tif,
                post_only: post,
                qty,
                price,
                stop_price: price_of(stop),
            })
        }
        Op::Cancel { session, back, qty } => {
            let s = session as usize;
            Command::Cancel(Cancel {
                session: session as u16,
                user_ref: refs.last[s].saturating_sub(back as u32),
                qty,
            })
        }
        Op::Replace {
            session,
            back,
            qty,
            price,
            odd,
        } => {
            let s = session as usize;
            let orig = refs.last[s].saturating_sub(back as u32);
            Command::Replace(Replace {
                session: session as u16,
                orig_user_ref: orig,
                new_user_ref: refs.next(s, odd),
                qty: if odd == 1 { 0 } else { qty },
                price: if odd == 3 {
                    price_of(price) + 3
                } else {
                    price_of(price)
                },
            })
        }
        Op::Modify { session, back, qty, sell } => Command::Modify(Modify {
            session: session as u16,
            user_ref: refs.last[session as usize].saturating_sub(back as u32),
            qty,
            side: if sell { Side::Sell } else { Side::Buy },
            side_code: if sell { b'T' } else { b'B' },
        }),
        Op::Halt { sym, halted, until } => Command::SetHalt(SetHalt {
            symbol: sym as u16,
            halted,
            until: if until < 500 { 0 } else { now + until as u64 },
        }),
        Op::Tick => Command::Tick,
        Op::MassCancel { session, sym, side, odd } => Command::MassCancel(MassCancel {
            session: session as u16,
            user_ref: refs.next(session as usize, odd),
            symbol: match sym {
                0 | 1 => Some(sym as u16),
                2 => None,
                _ => Some(7),
            },
            side: match side {
                0 => None,
                1 => Some(Side::Buy),
                _ => Some(Side::Sell),
            },
        }),
        Op::OrderEntry { session, enabled, odd } => Command::SetOrderEntry(SetOrderEntry {
            session: session as u16,
            user_ref: refs.next(session as usize, odd),
            enabled,
        }),
        Op::AccountQuery { session } => Command::AccountQuery(session as u16),
    }
}

fn conservation(e: &Engine, cash0: i64, shares0: &[i64]) -> Result<(), String> {
    let cash: i64 = (0..4).map(|a| e.account(a).unwrap().cash_total).sum();
    if cash != cash0 {
        return Err(format!("cash {cash} != {cash0}"));
    }
    for (s, &want) in shares0.iter().enumerate() {
        let got: i64 = (0..4).map(|a| e.position(a, s as u16).unwrap().total).sum();
        if got != want {
            return Err(format!("symbol {s}: shares {got} != {want}"));
        }
    }
    Ok(())
}

fn run_stream(
    ops: &[(Op, u16)],
    self_trade: SelfTrade,
    tally: &mut BTreeMap<String, u64>,
) -> Result<(), TestCaseError> {
    let mut engine = Engine::new(CAP);
    let mut model = Model::new(CAP);
    let mut feed = Feed::new();
    let (mut ne, mut nm) = (Normalizer::default(), Normalizer::default());
    for c in setup_commands_with(2, self_trade) {
        let input = feed.input(1, c);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        engine.apply(&input, &mut a);
        model.apply(&input, &mut b);
        prop_assert_eq!(a, b);
    }
    let cash0: i64 = (0..4).map(|a| engine.account(a).unwrap().cash_total).sum();
    let shares0: Vec<i64> = (0..2)
        .map(|s| (0..4).map(|a| engine.position(a, s).unwrap().total).sum())
        .collect();
    let mut refs = Refs { last: [0; 8] };
    for (i, (op, dt)) in ops.iter().enumerate() {
        let command = materialize(op, &mut refs, feed.now);
        let input = feed.input(*dt as u64, command);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        engine.apply(&input, &mut a);
        model.apply(&input, &mut b);
        let a: Vec<Event> = a.iter().map(|e| ne.event(e)).collect();
        let b: Vec<Event> = b.iter().map(|e| nm.event(e)).collect();
        prop_assert_eq!(&a, &b, "step {} input {:?}", i, input);
        for e in &a {
            *tally.entry(feature(e)).or_default() += 1;
            // Which self-trade rule acted: the resting order canceled, or the incoming one, or a firm trading
            // with itself.
            match e {
                Event::Canceled { reason: CancelReason::SelfTrade, leaves_qty: 0, .. }
                    if a.iter().any(|b| matches!(b, Event::BookDelete { order_ref, .. } if Some(*order_ref) == canceled_ref(e))) =>
                {
                    *tally.entry(format!("SelfTrade::{self_trade:?}::resting")).or_default() += 1;
                }
                Event::Executed { maker, taker, .. } if self_trade == SelfTrade::Allow && maker.account / 2 == 0 && taker.account / 2 == 0 => {
                    *tally.entry("SelfTrade::Allow::traded".into()).or_default() += 1;
                }
                _ => {}
            }
        }
        if let Err(e) = engine.check_invariants() {
            return Err(TestCaseError::fail(format!("step {i}: {e}")));
        }
        if let Err(e) = conservation(&engine, cash0, &shares0) {
            return Err(TestCaseError::fail(format!("step {i}: {e}")));
        }
        prop_assert_eq!(engine.orders_open() as usize, model.open_orders());
        for acc in 0..4 {
            let v = engine.account(acc).unwrap();
            prop_assert_eq!(Some((v.cash_total, v.cash_locked)), model.cash(acc));
            for s in 0..2 {
                let p = engine.position(acc, s).unwrap();
                prop_assert_eq!((p.total, p.locked as i64), model.position(acc, s));
            }
        }
        for s in 0..2 {
            prop_assert_eq!(engine.best_bid(s), model.best(s, Side::Buy));
            prop_assert_eq!(engine.best_ask(s), model.best(s, Side::Sell));
            for side in [Side::Buy, Side::Sell] {
                // Top-N depth (N smaller than the book's usual depth, so truncation is exercised) and the
                // quantity at each level's price and one tick outside it.
                let want = model.levels(s, side);
                let mut top = [(0, 0); 3];
                let n = engine.levels(s, side, &mut top);
                prop_assert_eq!(&top[..n], &want[..want.len().min(3)]);
                for &(p, q) in &want {
                    prop_assert_eq!(engine.qty_at(s, side, p), q);
                    prop_assert_eq!(engine.qty_at(s, side, p + 1), model.qty_at(s, side, p + 1));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference_model(
        ops in prop::collection::vec((op(), 0u16..400), 1..250),
        self_trade in prop::sample::select(SelfTrade::ALL.to_vec()),
    ) {
        run_stream(&ops, self_trade, &mut BTreeMap::new())?;
    }
}

fn canceled_ref(e: &Event) -> Option<OrderRef> {
    match e {
        Event::Canceled { order_ref, .. } => Some(*order_ref),
        _ => None,
    }
}

/// A coarse name for what an event shows: its variant, plus the reason or flag that matters.
fn feature(e: &Event) -> String {
    match e {
        Event::Rejected { reason, .. } => format!("Rejected::{reason:?}"),
        Event::Canceled { reason, .. } => format!("Canceled::{reason:?}"),
        Event::TradingAction { state, reason, .. } => {
            format!("TradingAction::{state:?}::{reason:?}")
        }
        Event::Accepted { queued: true, .. } => "Accepted::queued".into(),
        Event::Ignored { reason, .. } => format!("Ignored::{reason:?}"),
        Event::MassCanceled { canceled: 0, .. } => "MassCanceled::none".into(),
        Event::MassCanceled { canceled: 1, .. } => "MassCanceled::one".into(),
        Event::MassCanceled { .. } => "MassCanceled::several".into(),
        other => format!("{other:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

/// The generator must actually reach the interesting paths, or the differential test proves little.
#[test]
fn random_streams_cover_the_rules() {
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec((op(), 0u16..400), 200..250);
    let mut tally = BTreeMap::new();
    for i in 0..60 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        run_stream(&ops, SelfTrade::ALL[i % SelfTrade::ALL.len()], &mut tally).unwrap();
    }
    eprintln!("{tally:#?}");
    for want in [
        "Executed",
        "StopTriggered",
        "BookAdd",
        "BookReduce",
        "BookDelete",
        "BookReplace",
        "Accepted::queued",
        "Replaced",
        "Canceled::SelfTrade",
        "SelfTrade::CancelOldest::resting",
        "SelfTrade::CancelBoth::resting",
        "SelfTrade::Allow::traded",
        "Canceled::ImmediateOrCancel",
        "Canceled::UserRequested",
        "Canceled::Replaced",
        "TradingAction::Halted::PriceBand",
        "TradingAction::Halted::Operator",
        "TradingAction::Trading::Resumed",
        "Rejected::FokUnfillable",
        "Rejected::WouldTakeLiquidity",
        "Rejected::InsufficientShares",
        "Rejected::UserRefNotIncreasing",
        "Ignored::UnknownOrder",
        "Ignored::NotReduced",
        "Ignored::SideChange",
        "Ignored::NotIncreasing",
        "Modified",
        "MassCanceled::none",
        "MassCanceled::one",
        "MassCanceled::several",
        "OrderEntrySet",
        "Rejected::EntryDisabled",
    ] {
        assert!(
            tally.get(want).copied().unwrap_or(0) > 0,
            "random streams never produced {want}: {tally:#?}"
        );
    }
}

/// Runs `commands` (after the standard set-up) through the engine and the model, requiring identical events;
/// returns the engine's normalised events per command.
fn both(commands: &[Command]) -> Vec<Vec<Event>> {
    both_with(SelfTrade::default(), commands)
}

/// [`both`] with firm 0 (accounts and sessions 0 and 1) preventing self-trades by `self_trade`.
fn both_with(self_trade: SelfTrade, commands: &[Command]) -> Vec<Vec<Event>> {
    let mut engine = Engine::new(CAP);
    let mut model = Model::new(CAP);
    let mut feed = Feed::new();
    let (mut ne, mut nm) = (Normalizer::default(), Normalizer::default());
    let setup = setup_commands_with(2, self_trade);
    let mut all = Vec::new();
    for (i, c) in setup.iter().chain(commands).enumerate() {
        let input = feed.input(1, *c);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        engine.apply(&input, &mut a);
        model.apply(&input, &mut b);
        let a: Vec<Event> = a.iter().map(|e| ne.event(e)).collect();
        let b: Vec<Event> = b.iter().map(|e| nm.event(e)).collect();
        assert_eq!(a, b, "command {i}: {c:?}");
        engine.check_invariants().unwrap();
        if i >= setup.len() {
            all.push(a);
        }
    }
    all
}

fn replace(orig_user_ref: u32, new_user_ref: u32, qty: u32, price: u32) -> Command {
    Command::Replace(Replace {
        session: 0,
        orig_user_ref,
        new_user_ref,
        qty,
        price,
    })
}

/// OUCH 5.0 section 2.2: "The Shares on the replace denote the total number of shares liable for the whole
/// chain". Enter 100, 40 executed, Replace 100 → 60 open (not 100: the firm would be exposed for 140), and a
/// replace always takes a new time priority (a new reference at the back of its level), even with the same
/// price and the same open quantity.
#[test]
fn replace_quantity_is_the_chains_total_liable_quantity() {
    let ev = both(&[
        new_order(0, 1, Side::Buy, 100, 9_500),
        new_order(2, 1, Side::Sell, 40, 9_500),
        replace(1, 2, 100, 9_500),
        // Same price, same open quantity (60 + 40 executed): still a new priority.
        replace(2, 3, 100, 9_500),
        // Total 150 at a new price: 110 open.
        replace(3, 4, 150, 9_490),
    ]);
    assert!(
        matches!(ev[1][..], [Event::Accepted { .. }, Event::Executed { qty: 40, .. }]),
        "{:?}",
        ev[1]
    );
    for (i, open) in [(2, 60), (3, 60), (4, 110)] {
        match ev[i][..] {
            [Event::Replaced { qty, old_ref, new_ref, .. }, Event::BookReplace { qty: book, .. }] => {
                assert_eq!((qty, book), (open, open), "{:?}", ev[i]);
                assert_ne!(old_ref, new_ref, "a replace loses priority: {:?}", ev[i]);
            }
            _ => panic!("replace {i}: {:?}", ev[i]),
        }
    }
}

/// A replace naming a total the chain has already executed leaves nothing to expose: the order is canceled
/// (section 2.2 case 2, the replace's details are invalid for a live order); a replace or cancel of an order no
/// longer live is ignored (case 1; section 2.3, superfluous cancels), and the ignored replace's UserRefNum stays
/// unused.
#[test]
fn replace_below_the_executed_total_cancels_and_dead_orders_are_ignored() {
    let ev = both(&[
        new_order(0, 1, Side::Buy, 100, 9_500),
        new_order(2, 1, Side::Sell, 40, 9_500),
        replace(1, 2, 40, 9_500),
        replace(1, 3, 100, 9_500),
        Command::Cancel(Cancel { session: 0, user_ref: 1, qty: 0 }),
        new_order(0, 3, Side::Buy, 10, 9_400),
        Command::Cancel(Cancel { session: 0, user_ref: 3, qty: 10 }),
    ]);
    assert!(
        matches!(
            ev[2][..],
            [
                Event::Canceled { canceled_qty: 60, leaves_qty: 0, reason: CancelReason::UserRequested, .. },
                Event::BookDelete { .. }
            ]
        ),
        "{:?}",
        ev[2]
    );
    assert!(
        matches!(ev[3][..], [Event::Ignored { user_ref: 3, reason: IgnoreReason::UnknownOrder, .. }]),
        "{:?}",
        ev[3]
    );
    assert!(
        matches!(ev[4][..], [Event::Ignored { user_ref: 1, reason: IgnoreReason::UnknownOrder, .. }]),
        "{:?}",
        ev[4]
    );
    assert!(matches!(ev[5][..], [Event::Accepted { user_ref: 3, .. }, ..]), "{:?}", ev[5]);
    assert!(
        matches!(ev[6][..], [Event::Ignored { user_ref: 3, reason: IgnoreReason::NotReduced, .. }]),
        "{:?}",
        ev[6]
    );
}

/// OUCH 5.0 section 2.4: a Modify reduces an order keeping its priority and reference, or only re-marks its side
/// (sell → sell short exempt); more shares or a change between buy and sell are ignored.
#[test]
fn modify_reduces_in_place_and_ignores_increases_and_side_flips() {
    let modify = |user_ref, qty, side, side_code| {
        Command::Modify(Modify { session: 0, user_ref, qty, side, side_code })
    };
    let ev = both(&[
        new_order(0, 1, Side::Sell, 100, 9_600),
        new_order(2, 1, Side::Sell, 100, 9_600),
        modify(1, 60, Side::Sell, b'E'),
        modify(1, 60, Side::Sell, b'T'),
        modify(1, 61, Side::Sell, b'S'),
        modify(1, 10, Side::Buy, b'B'),
        // Account 0 is still first at 9600.
        new_order(3, 1, Side::Buy, 1, 9_600),
        modify(1, 0, Side::Sell, b'S'),
    ]);
    assert!(
        matches!(
            ev[2][..],
            [
                Event::Modified { side_code: b'E', canceled_qty: 40, leaves_qty: 60, .. },
                Event::BookReduce { canceled_qty: 40, .. }
            ]
        ),
        "{:?}",
        ev[2]
    );
    assert!(
        matches!(ev[3][..], [Event::Modified { side_code: b'T', canceled_qty: 0, leaves_qty: 60, .. }]),
        "{:?}",
        ev[3]
    );
    assert!(matches!(ev[4][..], [Event::Ignored { reason: IgnoreReason::NotReduced, .. }]), "{:?}", ev[4]);
    assert!(matches!(ev[5][..], [Event::Ignored { reason: IgnoreReason::SideChange, .. }]), "{:?}", ev[5]);
    assert!(
        matches!(ev[6][1], Event::Executed { maker: Party { account: 0, user_ref: 1, .. }, .. }),
        "{:?}",
        ev[6]
    );
    assert!(
        matches!(ev[7][..], [Event::Modified { leaves_qty: 0, .. }, Event::BookDelete { .. }]),
        "{:?}",
        ev[7]
    );
}

/// Self-trade prevention per firm. Firm 0 rests a sell of 30 at 9500 (account 1) in front of firm 1's sell of 30 at
/// 9500 (account 2); firm 0's account 0 then buys 50 at 9500. Each rule in turn: cancel newest (the default) cancels
/// the incoming buy; cancel oldest cancels firm 0's resting sell and fills 30 from firm 1, resting the last 20;
/// cancel both cancels the two; allow trades firm 0 with itself first.
#[test]
fn self_trade_prevention_is_chosen_per_firm() {
    let stream = [
        new_order(1, 1, Side::Sell, 30, 9_500),
        new_order(2, 1, Side::Sell, 30, 9_500),
        new_order(0, 1, Side::Buy, 50, 9_500),
    ];
    let take = |self_trade| both_with(self_trade, &stream).remove(2);
    let newest = take(SelfTrade::CancelNewest);
    assert!(
        matches!(
            newest[..],
            [Event::Accepted { .. }, Event::Canceled { session: 0, canceled_qty: 50, reason: CancelReason::SelfTrade, .. }]
        ),
        "{newest:?}"
    );
    let oldest = take(SelfTrade::CancelOldest);
    // Firm 1's fully filled sell leaves the book with the execution (ITCH 'E' to zero), no BookDelete.
    assert!(
        matches!(
            oldest[..],
            [
                Event::Accepted { .. },
                Event::Canceled { session: 1, canceled_qty: 30, leaves_qty: 0, reason: CancelReason::SelfTrade, .. },
                Event::BookDelete { .. },
                Event::Executed { qty: 30, maker: Party { account: 2, .. }, .. },
                Event::BookAdd { qty: 20, .. },
            ]
        ),
        "{oldest:?}"
    );
    let both_canceled = take(SelfTrade::CancelBoth);
    assert!(
        matches!(
            both_canceled[..],
            [
                Event::Accepted { .. },
                Event::Canceled { session: 1, canceled_qty: 30, reason: CancelReason::SelfTrade, .. },
                Event::BookDelete { .. },
                Event::Canceled { session: 0, canceled_qty: 50, reason: CancelReason::SelfTrade, .. },
            ]
        ),
        "{both_canceled:?}"
    );
    let allowed = take(SelfTrade::Allow);
    let fills: Vec<(u32, u32)> = allowed
        .iter()
        .filter_map(|e| match e {
            Event::Executed { qty, maker, .. } => Some((maker.account, *qty)),
            _ => None,
        })
        .collect();
    assert_eq!(fills, [(1, 30), (2, 20)], "{allowed:?}");
}

/// A fill-or-kill walks the book as matching would: an own-firm order in front kills it under cancel newest and
/// cancel both, is passed over under cancel oldest (it would be canceled, not traded), and fills it under allow.
#[test]
fn fill_or_kill_sees_self_trade_prevention() {
    let fok = Command::NewOrder(NewOrder {
        tif: TimeInForce::Fok,
        ..match new_order(0, 1, Side::Buy, 40, 9_500) {
            Command::NewOrder(n) => n,
            _ => unreachable!(),
        }
    });
    let stream = [new_order(1, 1, Side::Sell, 30, 9_500), new_order(2, 1, Side::Sell, 40, 9_500), fok];
    for (self_trade, fills) in [
        (SelfTrade::CancelNewest, false),
        (SelfTrade::CancelBoth, false),
        (SelfTrade::CancelOldest, true),
        (SelfTrade::Allow, true),
    ] {
        let ev = both_with(self_trade, &stream).remove(2);
        let filled: u32 = ev
            .iter()
            .filter_map(|e| match e {
                Event::Executed { qty, .. } => Some(*qty),
                _ => None,
            })
            .sum();
        assert_eq!(filled, if fills { 40 } else { 0 }, "{self_trade:?}: {ev:?}");
        if !fills {
            assert!(matches!(ev[..], [Event::Rejected { reason: RejectReason::FokUnfillable, .. }]), "{self_trade:?}: {ev:?}");
        }
    }
}

fn order_on(symbol: u16, user_ref: u32, side: Side, kind: OrderKind, price: u32, stop_price: u32) -> Command {
    Command::NewOrder(NewOrder {
        session: 0,
        user_ref,
        account: 0,
        symbol,
        side,
        kind,
        tif: TimeInForce::Day,
        post_only: false,
        qty: 10,
        price,
        stop_price,
    })
}

fn canceled_refs(ev: &[Event]) -> Vec<u32> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Canceled { user_ref, reason: CancelReason::UserRequested, leaves_qty: 0, .. } => Some(*user_ref),
            _ => None,
        })
        .collect()
}

/// OUCH 5.0 section 2.5: a Mass Cancel with no criteria cancels every order of the firm on the account — on the
/// books, in the stop books and in a halt queue — and no other session's. The engine's order (symbol by symbol:
/// buy book best first, sell book, buy stops, sell stops by stop price, the halt queue) is the model's; each
/// resting order leaves the feed (BookDelete), and the Mass Canceled report comes last. A repeat of the request's
/// UserRefNum changes nothing; Symbol and Side narrow the scope.
#[test]
fn mass_cancel_cancels_the_sessions_orders_in_book_order() {
    use OrderKind::{Limit, Stop};
    let orders = [
        order_on(0, 1, Side::Buy, Limit, 9_400, 0),
        order_on(0, 2, Side::Buy, Limit, 9_450, 0),
        order_on(0, 3, Side::Buy, Limit, 9_400, 0),
        order_on(0, 4, Side::Sell, Limit, 9_600, 0),
        order_on(0, 5, Side::Buy, Stop, 0, 9_700),
        order_on(0, 6, Side::Sell, Stop, 0, 9_300),
        Command::NewOrder(NewOrder { session: 1, account: 1, ..match new_order(1, 1, Side::Buy, 5, 9_450) {
            Command::NewOrder(n) => n,
            _ => unreachable!(),
        } }),
        order_on(1, 7, Side::Sell, Limit, 9_600, 0),
        Command::SetHalt(SetHalt { symbol: 0, halted: true, until: 0 }),
        order_on(0, 8, Side::Buy, Limit, 9_400, 0),
        order_on(0, 9, Side::Sell, Limit, 9_650, 0),
    ];
    let mass = |user_ref, symbol, side| Command::MassCancel(MassCancel { session: 0, user_ref, symbol, side });
    let mut commands = orders.to_vec();
    commands.push(mass(10, Some(0), Some(Side::Sell)));
    commands.push(mass(11, None, None));
    commands.push(mass(11, None, None));
    commands.push(mass(12, None, None));
    let ev = both(&commands);
    let n = orders.len();
    assert!(matches!(ev[n - 2][..], [Event::Accepted { queued: true, .. }]), "order 8 waits in the halt queue");
    // Symbol 0, sells only: the sell book, the sell stops, the queue's sells.
    assert_eq!(canceled_refs(&ev[n]), [4, 6, 9]);
    assert_eq!(ev[n].last(), Some(&Event::MassCanceled { session: 0, user_ref: 10, canceled: 3 }));
    // Everything left: symbol 0's buy book best first (FIFO at 9400), its buy stop and queued buy; then symbol 1.
    assert_eq!(canceled_refs(&ev[n + 1]), [2, 1, 3, 5, 8, 7]);
    let deletes = ev[n + 1].iter().filter(|e| matches!(e, Event::BookDelete { .. })).count();
    assert_eq!(deletes, 4, "the resting orders 2, 1, 3 and 7 leave the feed; stops and queued orders were never on it");
    assert_eq!(ev[n + 1].last(), Some(&Event::MassCanceled { session: 0, user_ref: 11, canceled: 6 }));
    assert_eq!(
        ev[n + 2],
        [Event::Ignored { session: 0, user_ref: 11, reason: IgnoreReason::NotIncreasing }],
        "a repeat is benign"
    );
    assert_eq!(ev[n + 3], [Event::MassCanceled { session: 0, user_ref: 12, canceled: 0 }]);
}

/// OUCH 5.0 sections 2.6-2.7: while a firm's order entry is disabled its new orders are rejected (and use up
/// their UserRefNum), while its cancels still act; enabling lets orders in again. Both switches use up their own
/// UserRefNum, and an unbound session's is refused like any of its inputs.
#[test]
fn disabled_order_entry_rejects_new_orders_until_enabled() {
    let entry = |session, user_ref, enabled| Command::SetOrderEntry(SetOrderEntry { session, user_ref, enabled });
    let ev = both(&[
        new_order(0, 1, Side::Buy, 10, 9_400),
        entry(0, 2, false),
        new_order(0, 3, Side::Buy, 10, 9_400),
        new_order(1, 1, Side::Buy, 10, 9_400),
        Command::Cancel(Cancel { session: 0, user_ref: 1, qty: 0 }),
        entry(0, 3, true),
        entry(0, 4, true),
        new_order(0, 5, Side::Buy, 10, 9_400),
        entry(5, 1, false),
    ]);
    assert_eq!(ev[1], [Event::OrderEntrySet { session: 0, user_ref: 2, enabled: false }]);
    assert_eq!(ev[2], [Event::Rejected { session: 0, user_ref: 3, reason: RejectReason::EntryDisabled }]);
    assert!(matches!(ev[3][0], Event::Accepted { session: 1, .. }), "another session is not affected");
    assert!(matches!(ev[4][0], Event::Canceled { user_ref: 1, .. }), "cancels go on");
    assert_eq!(ev[5], [Event::Ignored { session: 0, user_ref: 3, reason: IgnoreReason::NotIncreasing }]);
    assert_eq!(ev[6], [Event::OrderEntrySet { session: 0, user_ref: 4, enabled: true }]);
    assert!(matches!(ev[7][0], Event::Accepted { session: 0, user_ref: 5, .. }));
    assert_eq!(ev[8], [Event::Rejected { session: 5, user_ref: 1, reason: RejectReason::UnknownSession }]);
}
