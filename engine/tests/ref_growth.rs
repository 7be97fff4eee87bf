//! The (session, UserRefNum) table is sized to the live book and grows with it between inputs: thousands of open
//! orders, entered across every growth of the table, are all found again by their UserRefNum, a snapshot taken
//! after the growth restores into an engine that continues identically, and an order the engine never held is
//! still unknown.

mod common;

use bourse_engine::*;
use common::*;

/// Large enough that the table's prefix in use must double twice (from 4,096 slots, at 2,048 and 4,096 orders).
const BIG: Capacity = Capacity {
    orders_max: 16_384,
    ..CAP
};
const RESTING: u32 = 6_000;
const SESSIONS: u32 = 4;

fn buy(session: u16, user_ref: u32, price: u32) -> Command {
    new_order(session, user_ref, Side::Buy, 1, price)
}

fn cancel(session: u16, user_ref: u32) -> Command {
    Command::Cancel(Cancel {
        session,
        user_ref,
        qty: 0,
    })
}

/// An engine holding `RESTING` one-share bids spread over the low half of symbol 0's ladder, never crossing.
fn loaded() -> (Engine, Feed) {
    let mut e = Engine::new(BIG);
    let mut feed = Feed::new();
    let mut setup = setup_commands(2);
    for a in 0..SESSIONS {
        setup.push(Command::Deposit(Deposit {
            account: a,
            amount: 1_000_000_000_000,
        }));
    }
    for c in setup {
        let mut out = Vec::new();
        e.apply(&feed.input(1, c), &mut out);
        assert!(matches!(out[..], [Event::AdminApplied { .. }]), "{c:?}: {out:?}");
    }
    for i in 0..RESTING {
        let (session, user_ref) = ((i % SESSIONS) as u16, i / SESSIONS + 1);
        let mut out = Vec::new();
        e.apply(&feed.input(1, buy(session, user_ref, 9_000 + (i % 40) * 10)), &mut out);
        assert!(matches!(out[..], [Event::Accepted { .. }, ..]), "order {i}: {out:?}");
        if i % 1_000 == 999 {
            e.check_invariants().unwrap();
        }
    }
    (e, feed)
}

#[test]
fn every_order_is_found_after_the_table_grew() {
    let (mut e, mut feed) = loaded();
    e.check_invariants().unwrap();
    for i in (0..RESTING).rev() {
        let (session, user_ref) = ((i % SESSIONS) as u16, i / SESSIONS + 1);
        assert!(e.order_ref_of(session, user_ref).is_some(), "order {i} lost");
    }
    assert!(e.order_ref_of(0, RESTING).is_none());
    assert!(e.order_ref_of(5, 1).is_none());
    // Cancel every other order by its UserRefNum: each cancel finds exactly its order.
    for i in (0..RESTING).step_by(2) {
        let (session, user_ref) = ((i % SESSIONS) as u16, i / SESSIONS + 1);
        let mut out = Vec::new();
        e.apply(&feed.input(1, cancel(session, user_ref)), &mut out);
        assert!(
            matches!(out[..], [Event::Canceled { session: s, user_ref: r, canceled_qty: 1, .. }, Event::BookDelete { .. }]
                if s == session && r == user_ref),
            "cancel {i}: {out:?}"
        );
    }
    e.check_invariants().unwrap();
    let mut out = Vec::new();
    e.apply(&feed.input(1, cancel(0, 1)), &mut out);
    assert!(!matches!(out[..], [Event::Canceled { .. }, ..]), "a canceled order was found again: {out:?}");
}

#[test]
fn a_snapshot_after_growth_continues_identically() {
    let (mut e, mut feed) = loaded();
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    let mut r = Engine::restore(&bytes).expect("restore");
    assert_eq!(r.state_hash(), e.state_hash());
    // Cancels of every third order, then more orders, some of which cross the remaining bids.
    let mut tail = Vec::new();
    for i in (0..RESTING).step_by(3) {
        tail.push(feed.input(1, cancel((i % SESSIONS) as u16, i / SESSIONS + 1)));
    }
    for k in 0..3_000u32 {
        let session = (k % SESSIONS) as u16;
        let user_ref = RESTING / SESSIONS + 1 + k / SESSIONS;
        let (side, price) = if k % 5 == 0 { (Side::Sell, 9_200) } else { (Side::Buy, 8_500 + (k % 30) * 10) };
        tail.push(feed.input(1, new_order(session, user_ref, side, 1, price)));
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in &tail {
        e.apply(i, &mut a);
        r.apply(i, &mut b);
    }
    assert_eq!(a, b);
    assert!(a.iter().any(|ev| matches!(ev, Event::Executed { .. })), "the tail should trade");
    assert_eq!(e.state_hash(), r.state_hash());
    e.check_invariants().unwrap();
    r.check_invariants().unwrap();
}
