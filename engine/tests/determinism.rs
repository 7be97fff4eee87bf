//! Determinism and snapshots: the same stream gives the same events; a snapshot taken mid-stream restores into an
//! engine that is equal and continues identically; restore never panics on garbage.

mod common;

use bourse_engine::*;
use common::*;
use proptest::prelude::*;

fn setup() -> (Engine, Feed) {
    let mut e = Engine::new(CAP);
    let mut feed = Feed::new();
    for c in setup_commands(2) {
        e.apply(&feed.input(1, c), &mut NullSink);
    }
    (e, feed)
}

fn inputs(seed: u64, n: usize, feed: &mut Feed) -> Vec<Input> {
    let mut s = Stream::new(seed);
    (0..n)
        .map(|_| {
            let (dt, c) = s.next();
            feed.input(dt, c)
        })
        .collect()
}

#[test]
fn same_stream_same_hash() {
    let run = || {
        let (mut e, mut feed) = setup();
        let mut sink = HashSink::default();
        for i in inputs(7, 20_000, &mut feed) {
            e.apply(&i, &mut sink);
        }
        (sink.hash, sink.events, sink.trades, e.state_hash())
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.2 > 100, "stream should trade: {a:?}");
}

#[test]
fn snapshot_restore_continues_identically() {
    for seed in [1u64, 2, 3, 99] {
        let (mut e, mut feed) = setup();
        let all = inputs(seed, 6_000, &mut feed);
        let (head, tail) = all.split_at(3_000);
        for i in head {
            e.apply(i, &mut NullSink);
        }
        let mut bytes = Vec::new();
        e.snapshot(&mut bytes);
        let mut r = Engine::restore(&bytes).expect("restore");
        assert_eq!(r.state_hash(), e.state_hash());
        let mut again = Vec::new();
        r.snapshot(&mut again);
        assert_eq!(
            again, bytes,
            "snapshot of a restored engine must be byte-identical"
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in tail {
            e.apply(i, &mut a);
            r.apply(i, &mut b);
        }
        assert_eq!(a, b);
        assert_eq!(e.state_hash(), r.state_hash());
        r.check_invariants().unwrap();
    }
}

#[test]
fn restore_rejects_simple_damage() {
    let (e, _) = setup();
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    assert_eq!(
        Engine::restore(&bytes[..4]).err(),
        Some(SnapshotError::Truncated { offset: 0 })
    );
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert_eq!(Engine::restore(&bad).err(), Some(SnapshotError::BadMagic));
    let mut bad = bytes.clone();
    bad[8] = 9;
    assert_eq!(
        Engine::restore(&bad).err(),
        Some(SnapshotError::BadVersion(9))
    );
    assert!(matches!(
        Engine::restore(&bytes[..bytes.len() - 1]),
        Err(SnapshotError::Truncated { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        Engine::restore(&long),
        Err(SnapshotError::Corrupt { .. })
    ));
}

fn busy_snapshot() -> Vec<u8> {
    let (mut e, mut feed) = setup();
    for i in inputs(5, 2_000, &mut feed) {
        e.apply(&i, &mut NullSink);
    }
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn restore_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Engine::restore(&bytes);
        let mut framed = b"BRSENGN1\x01\x00\x00\x00".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = Engine::restore(&framed);
    }

    #[test]
    fn restore_never_panics_on_damaged_snapshots(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = busy_snapshot();
        let mut bad = good.clone();
        for (at, x) in &flips {
            let i = at.index(bad.len());
            bad[i] ^= x | 1;
        }
        if let Ok(e) = Engine::restore(&bad) {
            // Whatever passes validation is a consistent engine that keeps running without panicking.
            e.check_invariants().unwrap();
            let mut e = e;
            let mut feed = Feed { seq: e.last_seq(), now: 1 };
            for i in inputs(11, 300, &mut feed) {
                e.apply(&i, &mut NullSink);
            }
            e.check_invariants().unwrap();
        }
        let _ = Engine::restore(&good[..cut.index(good.len())]);
    }
}

/// Every single-bit flip of a busy snapshot: whatever `restore` accepts keeps its invariants while it goes on
/// trading. A regression test for flips (a stop-limit's or a queued order's limit price, a queued order's kind)
/// that restore accepted and matching then placed at the wrong level.
#[test]
fn restore_of_every_single_bit_flip_stays_consistent_while_trading() {
    let good = busy_snapshot();
    for (i, bit) in (0..good.len()).flat_map(|i| (0..8).map(move |b| (i, b))) {
        let mut bad = good.clone();
        bad[i] ^= 1 << bit;
        let Ok(mut e) = Engine::restore(&bad) else { continue };
        let mut feed = Feed { seq: e.last_seq(), now: 1 };
        for input in inputs(11, 300, &mut feed) {
            e.apply(&input, &mut NullSink);
        }
        if let Err(why) = e.check_invariants() {
            panic!("flip of bit {bit} at byte {i} of {}: {why}", good.len());
        }
    }
}

/// Each account's self-trade prevention is part of the state a snapshot carries: an engine whose firm 0 cancels
/// the resting order restores into one that still does.
#[test]
fn snapshots_keep_each_accounts_self_trade_prevention() {
    for self_trade in SelfTrade::ALL {
        let mut e = Engine::new(CAP);
        let mut feed = Feed::new();
        for c in setup_commands_with(2, self_trade) {
            e.apply(&feed.input(1, c), &mut NullSink);
        }
        e.apply(&feed.input(1, new_order(1, 1, Side::Sell, 30, 9_500)), &mut NullSink);
        let mut bytes = Vec::new();
        e.snapshot(&mut bytes);
        let mut r = Engine::restore(&bytes).unwrap();
        let mut again = Vec::new();
        r.snapshot(&mut again);
        assert_eq!(bytes, again);
        let buy = feed.input(1, new_order(0, 1, Side::Buy, 50, 9_500));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        e.apply(&buy, &mut a);
        r.apply(&buy, &mut b);
        assert_eq!(a, b, "{self_trade:?}");
        let resting_canceled = a.iter().any(|ev| matches!(ev, Event::Canceled { session: 1, reason: CancelReason::SelfTrade, .. }));
        assert_eq!(resting_canceled, matches!(self_trade, SelfTrade::CancelOldest | SelfTrade::CancelBoth), "{self_trade:?}: {a:?}");
    }
}

/// A disabled order entry (OUCH 5.0 section 2.6) is session state: it survives snapshot and restore, and a mass
/// cancel (section 2.5) after the restore cancels the same orders in the same order on both engines.
#[test]
fn order_entry_switch_survives_restore_and_mass_cancel_replays_identically() {
    let (mut e, mut feed) = setup();
    let mut all = inputs(5, 4_000, &mut feed);
    let control = |feed: &mut Feed, c| feed.input(1, c);
    // UserRefNums far above the stream's, so the controls act.
    let disable = SetOrderEntry { session: 2, user_ref: 1 << 30, enabled: false };
    all.push(control(&mut feed, Command::SetOrderEntry(disable)));
    for i in &all {
        e.apply(i, &mut NullSink);
    }
    assert!(!e.order_entry_enabled(2) && e.order_entry_enabled(1));
    let mut bytes = Vec::new();
    e.snapshot(&mut bytes);
    let mut r = Engine::restore(&bytes).expect("restore");
    assert!(!r.order_entry_enabled(2), "the switch is part of the snapshot");
    let mut again = Vec::new();
    r.snapshot(&mut again);
    assert_eq!(again, bytes);
    let open = e.orders_open();
    let tail = [
        control(&mut feed, new_order(2, (1 << 30) + 1, Side::Buy, 1, 9_500)),
        control(&mut feed, Command::MassCancel(MassCancel { session: 0, user_ref: 1 << 30, symbol: None, side: None })),
        control(&mut feed, Command::SetOrderEntry(SetOrderEntry { user_ref: (1 << 30) + 2, enabled: true, ..disable })),
        control(&mut feed, new_order(2, (1 << 30) + 3, Side::Buy, 1, 9_500)),
    ];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in &tail {
        e.apply(i, &mut a);
        r.apply(i, &mut b);
    }
    assert_eq!(a, b);
    assert_eq!(e.state_hash(), r.state_hash());
    r.check_invariants().unwrap();
    assert!(matches!(a[0], Event::Rejected { session: 2, reason: RejectReason::EntryDisabled, .. }), "{:?}", a[0]);
    let canceled = a.iter().filter(|ev| matches!(ev, Event::Canceled { session: 0, .. })).count() as u32;
    assert!(a.contains(&Event::MassCanceled { session: 0, user_ref: 1 << 30, canceled }));
    assert!(canceled > 0, "the stream leaves session 0 with open orders");
    assert!(e.orders_open() <= open - canceled + 1);
    assert!(a.iter().any(|ev| matches!(ev, Event::Accepted { session: 2, .. })), "entry enabled again");
}
