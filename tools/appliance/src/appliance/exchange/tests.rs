//! The exchange state machine: determinism, the input contract, snapshots, and what replies echo.

use bourse_engine::{Command, Input};
use bourse_nic::wire::alpha::{Alpha, ClOrdId, Symbol};
use bourse_nic::wire::ouch::{self, EnterOrder, Inbound, Options, ReplaceOrder, Side};
use bourse_persist::recovery::ApplyError;
use bourse_persist::wal::record::Echo;

use super::{Exchange, Outputs, NO_ECHO};
use crate::appliance::setup;
use crate::config::Config;

/// Everything applying produced, in order, tagged with its stream.
#[derive(Default, Debug, PartialEq, Eq, Clone)]
struct Collect(Vec<(char, u16, u64, Vec<u8>)>);

impl Outputs for Collect {
    fn reply(&mut self, session: u16, sequence: u64, msg: &[u8]) {
        self.0.push(('o', session, sequence, msg.to_vec()));
    }
    fn market(&mut self, sequence: u64, msg: &[u8]) {
        self.0.push(('i', 0, sequence, msg.to_vec()));
    }
}

fn config() -> Config {
    let dir = std::env::temp_dir().join("bourse-exchange-tests-unused");
    let mut c = crate::demo::demo_config(&dir, "none", None).unwrap();
    c.appliance.replies_kept = 64;
    c
}

fn enter(user_ref: u32, side: Side, qty: u32, price: u64, symbol: &str, capacity: u8) -> Inbound {
    Inbound::EnterOrder(EnterOrder {
        user_ref,
        side,
        quantity: qty,
        symbol: Symbol::new(symbol).unwrap(),
        price,
        time_in_force: b'0',
        display: b'Y',
        capacity,
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: ClOrdId::new(&format!("C{user_ref}")).unwrap(),
        options: Options::default(),
    })
}

/// A seeded stream of firm messages for two sessions: resting orders, crossing orders, replaces, cancels, an
/// unknown symbol (refused), mass cancels, order-entry switches, account queries and ticks, as journaled inputs
/// with their echoes.
fn stream(x: &Exchange, n: u32, seed: u64) -> Vec<(Command, Echo)> {
    let mut rng = bourse_persist::workload::Rng::new(seed);
    let mut out = Vec::new();
    let mut refs = [0u32; 2];
    for i in 0..n {
        let session = (rng.next_u64() % 2) as u16;
        let next = refs[usize::from(session)] + 1;
        let r = rng.next_u64() % 10;
        let firm = Alpha(*b"FIRM");
        let msg = match (r, rng.next_u64() % 8) {
            (3, 0) => Inbound::MassCancel(ouch::MassCancelRequest {
                user_ref: next,
                firm,
                symbol: if rng.next_u64().is_multiple_of(2) { Symbol::BLANK } else { Symbol::new("AAPL").unwrap() },
                side: [None, Some(Side::Buy), Some(Side::SellShort)][(rng.next_u64() % 3) as usize],
                group_id: None,
            }),
            (3, 1) => Inbound::DisableOrderEntry(ouch::OrderEntryRequest { user_ref: next, firm }),
            (3, 2..=4) => Inbound::EnableOrderEntry(ouch::OrderEntryRequest { user_ref: next, firm }),
            (3, 5) => Inbound::AccountQuery,
            (r, _) => match r {
            0 if next > 1 => Inbound::ReplaceOrder(ReplaceOrder {
                orig_user_ref: next - 1,
                user_ref: next,
                quantity: 5 + (rng.next_u64() % 20) as u32,
                price: 1_490_000 + (rng.next_u64() % 20) * 100,
                time_in_force: b'0',
                display: b'Y',
                intermarket_sweep: b'N',
                cl_ord_id: ClOrdId::new(&format!("R{i}")).unwrap(),
                options: Options::default(),
            }),
            1 if next > 1 => Inbound::CancelOrder(ouch::CancelOrder { user_ref: next - 1, quantity: 0 }),
            2 => enter(next, Side::Buy, 10, 1_500_000, "NOPE", b'A'),
            3 => {
                out.push((Command::Tick, NO_ECHO));
                continue;
            }
            _ => {
                let side = if rng.next_u64().is_multiple_of(2) { Side::Buy } else { Side::Sell };
                let price = 1_495_000 + (rng.next_u64() % 10) * 100;
                enter(next, side, 1 + (rng.next_u64() % 30) as u32, price, "AAPL", if i % 3 == 0 { b'P' } else { b'A' })
            }
            },
        };
        let introduces = msg.new_user_ref().is_some();
        if introduces {
            refs[usize::from(session)] = next;
        }
        match x.translator().on_ouch(session, u32::from(session), &msg) {
            Ok((command, echo)) => out.push((command, echo.unwrap_or(NO_ECHO))),
            Err(reject) => out.push(reject.command(session, introduces)),
        }
    }
    out
}

fn genesis(config: &Config) -> (Exchange, Vec<(Command, Echo)>) {
    let x = setup::new_exchange(config).unwrap();
    let inputs = setup::genesis(config, T0).unwrap().into_iter().map(|c| (c, NO_ECHO)).collect();
    (x, inputs)
}

/// 1_700_000_000 s since the epoch: 2023-11-14 22:13:20 UTC, 17:13:20 in New York (EST, UTC-5).
const T0: u64 = 1_700_000_000_000_000_000;

fn run(x: &mut Exchange, inputs: &[(Command, Echo)], out: &mut Collect) {
    for (command, echo) in inputs {
        let seq = x.last_seq() + 1;
        let input = Input { seq, timestamp: T0 + seq * 1_000, command: *command };
        x.apply(&input, echo, out).unwrap();
    }
}

fn all_inputs(seed: u64) -> (Exchange, Vec<(Command, Echo)>) {
    let c = config();
    let (x, mut inputs) = genesis(&c);
    // The stream is translated against a state that has the symbols: build it on a scratch copy.
    let mut scratch = setup::new_exchange(&c).unwrap();
    run(&mut scratch, &inputs, &mut Collect::default());
    inputs.extend(stream(&scratch, 2_000, seed));
    (x, inputs)
}

#[test]
fn same_inputs_same_outputs_byte_for_byte() {
    let (mut a, inputs) = all_inputs(7);
    let (mut b, _) = all_inputs(7);
    let (mut oa, mut ob) = (Collect::default(), Collect::default());
    run(&mut a, &inputs, &mut oa);
    run(&mut b, &inputs, &mut ob);
    assert_eq!(oa, ob);
    assert!(oa.0.iter().any(|o| o.0 == 'o' && o.3[0] == b'E'), "some orders executed");
    assert!(oa.0.iter().any(|o| o.0 == 'o' && o.3[0] == b'J'), "some refusals answered");
    for (code, what) in [(b'X', "mass cancels"), (b'G', "disables"), (b'K', "enables"), (b'Q', "account queries")] {
        assert!(oa.0.iter().any(|o| o.0 == 'o' && o.3[0] == code), "some {what} answered");
    }
    let rejected_while_disabled = oa.0.iter().any(|o| o.0 == 'o' && o.3[0] == b'J' && o.3[13..15] == [0, 0x0c]);
    assert!(rejected_while_disabled, "some orders entered while disabled");
    // Each stream is numbered densely from 1.
    for session in 0..2u16 {
        let seqs: Vec<u64> = oa.0.iter().filter(|o| o.0 == 'o' && o.1 == session).map(|o| o.2).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    let md: Vec<u64> = oa.0.iter().filter(|o| o.0 == 'i').map(|o| o.2).collect();
    assert_eq!(md, (1..=md.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_gap_or_a_repeat_is_refused_not_ignored() {
    let (mut x, inputs) = all_inputs(1);
    run(&mut x, &inputs[..10], &mut Collect::default());
    let at = |seq| Input { seq, timestamp: 1, command: Command::Tick };
    assert_eq!(
        x.apply(&at(12), &NO_ECHO, &mut Collect::default()),
        Err(ApplyError::OutOfSequence { expected: 11, found: 12 })
    );
    assert_eq!(
        x.apply(&at(10), &NO_ECHO, &mut Collect::default()),
        Err(ApplyError::OutOfSequence { expected: 11, found: 10 })
    );
    assert_eq!(x.last_seq(), 10);
    x.apply(&at(11), &NO_ECHO, &mut Collect::default()).unwrap();
}

#[test]
fn snapshot_then_tail_equals_the_uninterrupted_run() {
    let c = config();
    let (mut whole, inputs) = all_inputs(3);
    let mut expected = Collect::default();
    run(&mut whole, &inputs, &mut expected);
    for cut in [inputs.len() / 3, inputs.len() / 2, inputs.len() - 1] {
        let (mut first, _) = all_inputs(3);
        let mut got = Collect::default();
        run(&mut first, &inputs[..cut], &mut got);
        let mut payload = Vec::new();
        first.snapshot(&mut payload);
        let translator = setup::new_translator(&c).unwrap();
        let mut restored = Exchange::restore(&payload, translator, setup::exchange_limits(&c), &[]).unwrap();
        assert_eq!(restored.last_seq(), cut as u64);
        run(&mut restored, &inputs[cut..], &mut got);
        assert_eq!(got, expected, "cut at {cut}");
        // Everything kept is the same too: what a firm re-requests or logs in for after the restart.
        for session in 0..2u16 {
            assert_eq!(restored.next_reply_sequence(session), whole.next_reply_sequence(session));
            for seq in restored.oldest_reply_sequence(session)..restored.next_reply_sequence(session) {
                assert_eq!(restored.reply(session, seq), whole.reply(session, seq));
            }
        }
        assert_eq!(restored.next_market_sequence(), whole.next_market_sequence());
        assert_eq!(restored.last_timestamp(), whole.last_timestamp());
    }
}

#[test]
fn damaged_snapshots_are_refused_never_a_panic() {
    let c = config();
    let (mut x, inputs) = all_inputs(5);
    run(&mut x, &inputs[..300], &mut Collect::default());
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let limits = setup::exchange_limits(&c);
    let restore = |p: &[u8]| Exchange::restore(p, setup::new_translator(&c).unwrap(), limits, &[]);
    let step = (payload.len() / 300).max(1);
    for n in (0..payload.len()).step_by(step) {
        assert!(restore(&payload[..n]).is_err(), "truncated at {n}");
    }
    let mut longer = payload.clone();
    longer.push(0);
    assert!(restore(&longer).is_err());
    let mut other = limits;
    other.replies_kept *= 2;
    assert!(Exchange::restore(&payload, setup::new_translator(&c).unwrap(), other, &[]).is_err());
}

#[test]
fn a_replace_after_a_restart_echoes_what_the_firm_entered() {
    let c = config();
    let (mut x, inputs) = genesis(&c);
    run(&mut x, &inputs, &mut Collect::default());
    // Capacity 'P' (principal) and ClOrdID "C1" on entry.
    let (command, echo) = x.translator().on_ouch(0, 0, &enter(1, Side::Buy, 10, 1_490_000, "AAPL", b'P')).unwrap();
    run(&mut x, &[(command, echo.unwrap())], &mut Collect::default());
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let mut x = Exchange::restore(&payload, setup::new_translator(&c).unwrap(), setup::exchange_limits(&c), &[]).unwrap();
    let replace = Inbound::ReplaceOrder(ReplaceOrder {
        orig_user_ref: 1,
        user_ref: 2,
        quantity: 8,
        price: 1_490_000,
        time_in_force: b'0',
        display: b'Y',
        intermarket_sweep: b'N',
        cl_ord_id: ClOrdId::new("NEW").unwrap(),
        options: Options::default(),
    });
    let (command, echo) = x.translator().on_ouch(0, 0, &replace).unwrap();
    let mut out = Collect::default();
    run(&mut x, &[(command, echo.unwrap())], &mut out);
    let replaced = out.0.iter().find(|o| o.0 == 'o' && o.3[0] == b'U').expect("Order Replaced");
    let Ok(ouch::Outbound::OrderReplaced { order, .. }) = ouch::Outbound::parse(&replaced.3) else {
        panic!("{:?}", replaced.3)
    };
    assert_eq!(order.capacity, b'P', "capacity echoed from the entry before the restart");
    assert_eq!(order.cross_type, b'N');
    assert_eq!(order.cl_ord_id, Alpha::new("NEW").unwrap());
    assert!(x.is_repeat(0, 2) && x.is_repeat(0, 1) && !x.is_repeat(0, 3));
    assert_eq!(x.first_reply(0, 2), Some(x.next_reply_sequence(0) - 1));
}

#[test]
fn the_rate_limit_is_a_token_bucket_in_sequencer_time_and_replays_the_same() {
    use super::{RateLimit, RATE_LIMITED};
    let c = config();
    let rates = [RateLimit { per_s: 1_000, burst: 3 }];
    let mut x = Exchange::new(c.engine_capacity(), setup::new_translator(&c).unwrap(), setup::exchange_limits(&c), &rates);
    let genesis: Vec<_> = setup::genesis(&c, T0).unwrap().into_iter().map(|g| (g, NO_ECHO)).collect();
    run(&mut x, &genesis, &mut Collect::default());
    let t0 = 1_800_000_000_000_000_000u64;
    let mut seq = x.last_seq();
    let mut send = |x: &mut Exchange, at: u64, user_ref: u32| -> bool {
        let allowed = x.rate_allows(0, at);
        let msg = enter(user_ref, Side::Buy, 1, 1_400_000, "AAPL", b'A');
        let (command, echo) = if allowed {
            let (c, e) = x.translator().on_ouch(0, 0, &msg).unwrap();
            (c, e.unwrap())
        } else {
            let refuse = bourse_engine::Refuse { session: 0, user_ref, reason: RATE_LIMITED, introduces_ref: true };
            (bourse_engine::Command::Refuse(refuse), NO_ECHO)
        };
        seq += 1;
        x.apply(&Input { seq, timestamp: at, command }, &echo, &mut Collect::default()).unwrap();
        allowed
    };
    // A burst of 3 passes, the 4th at the same instant is refused; 1 ms later one more token has come.
    let got: Vec<bool> = (1..=5).map(|r| send(&mut x, t0, r)).collect();
    assert_eq!(got, [true, true, true, false, false]);
    assert!(send(&mut x, t0 + 1_000_000, 6));
    assert!(!send(&mut x, t0 + 1_000_000, 7));
    // Another session is not limited.
    assert!(x.rate_allows(1, t0));
    // The bucket is state: a snapshot carries it.
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let y = Exchange::restore(&payload, setup::new_translator(&c).unwrap(), setup::exchange_limits(&c), &rates).unwrap();
    assert_eq!(y.rate_allows(0, t0 + 1_000_000), x.rate_allows(0, t0 + 1_000_000));
    assert!(y.rate_allows(0, t0 + 3_000_000));
}

/// TotalView-ITCH 5.0 section 1.3: the Order Reference Number is day-unique. Numbers start at 1 and every new
/// one (Add Order 'A', the new reference of Order Replace 'U', OUCH Accepted's Order Reference Number) is above
/// all before it, so feed handlers can index by it; a snapshot carries the counter and the table.
#[test]
fn order_reference_numbers_start_at_one_and_increase() {
    let (mut x, inputs) = all_inputs(7);
    let mut out = Collect::default();
    run(&mut x, &inputs, &mut out);
    let mut last = 0u64;
    let mut first_accepted = None;
    for (stream, _, _, m) in &out.0 {
        let new_ref = match (stream, m[0]) {
            ('i', b'A') => u64::from_be_bytes(m[11..19].try_into().unwrap()),
            ('i', b'U') => u64::from_be_bytes(m[19..27].try_into().unwrap()),
            ('o', b'A') => {
                let Ok(ouch::Outbound::OrderAccepted(a)) = ouch::Outbound::parse(m) else { panic!() };
                first_accepted.get_or_insert(a.order_ref);
                continue;
            }
            _ => continue,
        };
        assert!(new_ref > last, "reference {new_ref} after {last}");
        last = new_ref;
    }
    assert_eq!(first_accepted, Some(1));
    assert!(last > 100 && last <= x.translator().order_refs().last_number(), "{last}");
    assert_eq!(x.translator().order_refs().unmapped, 0);
}

/// A snapshot of the previous format (BXCHST02, without the market's UTC offset) is refused by name.
#[test]
fn a_snapshot_of_the_previous_format_is_refused_clearly() {
    let c = config();
    let (mut x, inputs) = all_inputs(9);
    run(&mut x, &inputs[..50], &mut Collect::default());
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let at = payload.windows(8).position(|w| w == b"BXCHST03").expect("the magic");
    payload[at..at + 8].copy_from_slice(b"BXCHST02");
    let Err(e) = Exchange::restore(&payload, setup::new_translator(&c).unwrap(), setup::exchange_limits(&c), &[])
    else {
        panic!("an old snapshot was taken")
    };
    assert!(e.contains("BXCHST02") && e.contains("BXCHST03"), "{e}");
}

/// TotalView-ITCH 5.0 section 1.1 ("the start of day message is the first message sent in any trading day";
/// "End of Messages … is always the last message"), section 1.2.1 (a Stock Directory per symbol at the start of
/// the day) and section 1.2.2 (the Trading Action spin, state 'T', "prior to the start of system hours"). The
/// spin is a journaled input of genesis, so it has its MoldUDP64 sequences once and a replay only re-stores it.
#[test]
fn the_feed_opens_and_closes_the_day() {
    let c = config();
    let (mut x, inputs) = genesis(&c);
    let mut out = Collect::default();
    run(&mut x, &inputs, &mut out);
    let itch: Vec<&Vec<u8>> = out.0.iter().filter(|o| o.0 == 'i').map(|o| &o.3).collect();
    let n = c.symbols.len();
    assert!(n >= 1);
    let types: Vec<u8> = itch.iter().map(|m| m[0]).collect();
    let mut want = vec![b'S'];
    want.extend(std::iter::repeat_n(b'R', n));
    want.extend(std::iter::repeat_n(b'H', n));
    want.extend([b'S', b'S']);
    assert_eq!(types, want);
    // Genesis input k has timestamp T0 + k µs (see `run`): T0 is 22:13:20 UTC, 17:13:20 in New York (the
    // default market time zone, EST that day), so the time of day is 62_000 s plus the input's microseconds.
    let seq = inputs.len() as u64;
    let ts = (62_000_000_000_000u64 + seq * 1_000).to_be_bytes();
    // System Event (section 1.1): 'S', locate 0 ("Always 0"), tracking 0, timestamp (6 bytes), event code 'O'.
    let mut o = vec![b'S', 0, 0, 0, 0];
    o.extend_from_slice(&ts[2..]);
    o.push(b'O');
    assert_eq!(itch[0], &o);
    assert_eq!((itch[n + n + 1][11], itch[n + n + 2][11]), (b'S', b'Q'));
    // Stock Directory (section 1.2.1), 39 bytes: locate 1, the first symbol's name, then the listing fields.
    let r = itch[1];
    assert_eq!(r.len(), 39);
    assert_eq!(&r[1..3], &[0, 1]);
    let name = format!("{:<8}", c.symbols[0].name);
    assert_eq!(&r[11..19], name.as_bytes());
    assert_eq!(&r[19..39], &[b' ', b' ', 0, 0, 0, 100, b'N', b'C', b'Z', b' ', b'P', b' ', b' ', b' ', b' ', 0, 0, 0, 0, b'N']);
    // Stock Trading Action (section 1.2.2): the same locate, state 'T', reserved, reason blank.
    let h = itch[1 + n];
    assert_eq!((&h[1..3], &h[11..19], &h[19..25]), (&[0u8, 1][..], name.as_bytes(), &b"T     "[..]));
    // The day ends with 'M', 'E', 'C', numbered after everything before.
    let next = x.next_market_sequence();
    let mut end = Collect::default();
    run(&mut x, &[(Command::MarketHours(bourse_engine::MarketHours::Close), NO_ECHO)], &mut end);
    let codes: Vec<(u64, u8, u8)> = end.0.iter().map(|o| (o.2, o.3[0], o.3[11])).collect();
    assert_eq!(codes, vec![(next, b'S', b'M'), (next + 1, b'S', b'E'), (next + 2, b'S', b'C')]);
}

/// Nasdaq's timestamps count "nanoseconds since midnight" Eastern (TotalView-ITCH 5.0 section 1, "Timestamp";
/// OUCH 5.0 section 3, "Timestamp"), so the day opens with the market's UTC offset journaled: 13:30 UTC on
/// 1 July is 09:30 EDT (UTC-4), 14:30 UTC on 3 December is 09:30 EST (UTC-5), 02:00 UTC on 4 December is still
/// 21:00 on the 3rd in New York, and a market in UTC counts from UTC midnight. The ITCH System Event 'O' and the
/// OUCH Order Accepted carry the same time of day.
#[test]
fn timestamps_count_from_the_market_time_zones_midnight() {
    const H: u64 = 3_600;
    for (zone, unix_s, local_s) in [
        ("America/New_York", 1_782_912_600u64, 9 * H + 1_800),
        ("America/New_York", 1_796_308_200, 9 * H + 1_800),
        ("America/New_York", 1_796_349_600, 21 * H),
        ("UTC", 1_796_308_200, 14 * H + 1_800),
    ] {
        let mut c = config();
        c.appliance.market_time_zone = zone.into();
        let unix_ns = unix_s * 1_000_000_000;
        let mut x = setup::new_exchange(&c).unwrap();
        let mut inputs: Vec<(Command, Echo)> =
            setup::genesis(&c, unix_ns).unwrap().into_iter().map(|g| (g, NO_ECHO)).collect();
        let mut out = Collect::default();
        let apply = |x: &mut Exchange, inputs: &[(Command, Echo)], out: &mut Collect| {
            for (command, echo) in inputs {
                let input = Input { seq: x.last_seq() + 1, timestamp: unix_ns, command: *command };
                x.apply(&input, echo, out).unwrap();
            }
        };
        apply(&mut x, &inputs, &mut out);
        let msg = enter(1, Side::Buy, 10, 1_490_000, "AAPL", b'A');
        let (command, echo) = x.translator().on_ouch(0, 0, &msg).unwrap();
        inputs = vec![(command, echo.unwrap_or(NO_ECHO))];
        apply(&mut x, &inputs, &mut out);
        let want = local_s * 1_000_000_000;
        let start = out.0.iter().find(|o| o.0 == 'i' && o.3[0] == b'S').unwrap();
        assert_eq!(start.3[5..11], want.to_be_bytes()[2..], "{zone} at {unix_s}: ITCH System Event");
        let accepted = out.0.iter().find(|o| o.0 == 'o' && o.3[0] == b'A').unwrap();
        assert_eq!(accepted.3[1..9], want.to_be_bytes(), "{zone} at {unix_s}: OUCH Order Accepted");
    }
}

/// The day's offset is replicated state: it survives a snapshot, so a node restored from one numbers the rest
/// of the day from the same midnight.
#[test]
fn the_markets_utc_offset_is_in_the_snapshot() {
    let c = config();
    let mut x = setup::new_exchange(&c).unwrap();
    let genesis: Vec<_> = setup::genesis(&c, T0).unwrap().into_iter().map(|g| (g, NO_ECHO)).collect();
    run(&mut x, &genesis, &mut Collect::default());
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let y = Exchange::restore(&payload, setup::new_translator(&c).unwrap(), setup::exchange_limits(&c), &[]).unwrap();
    assert_eq!(y.utc_offset_ns, -5 * 3_600 * 1_000_000_000);
}

/// OUCH 5.0 section 3.2: Order Accepted echoes the options the order was accepted with. A fill-or-kill (IOC with
/// MinQty equal to the quantity, section 2.1), a post-only order (PostOnly 'P') and a stop order (bourse's
/// StopPrice tag) each get theirs in the appendage, byte for byte (option length, tag, value: Appendix B); a
/// plain order gets an empty appendage. Replayed from the journal, the echo is the same.
#[test]
fn order_accepted_echoes_the_options_the_order_was_accepted_with() {
    let c = config();
    let (mut x, genesis) = genesis(&c);
    run(&mut x, &genesis, &mut Collect::default());
    let with = |user_ref, tif, options| match enter(user_ref, Side::Buy, 10, 1_490_000, "AAPL", b'A') {
        Inbound::EnterOrder(e) => Inbound::EnterOrder(EnterOrder { time_in_force: tif, options, ..e }),
        _ => unreachable!(),
    };
    let cases: [(Inbound, &[u8]); 4] = [
        (with(1, b'3', Options { min_qty: Some(10), ..Options::default() }), &[0, 6, 5, 3, 0, 0, 0, 10]),
        (with(2, b'0', Options { post_only: Some(b'P'), ..Options::default() }), &[0, 3, 2, 12, b'P']),
        (
            with(3, b'0', Options { stop_price: Some(1_510_000), ..Options::default() }),
            &[0, 10, 9, 224, 0, 0, 0, 0, 0, 0x17, 0x0a, 0x70],
        ),
        (with(4, b'0', Options::default()), &[0, 0]),
    ];
    // Liquidity for the fill-or-kill, from the other session (one that cannot fill in full is rejected).
    let sell = enter(1, Side::Sell, 10, 1_490_000, "AAPL", b'A');
    let (command, echo) = x.translator().on_ouch(1, 1, &sell).unwrap();
    let mut journal = vec![(command, echo.unwrap_or(NO_ECHO))];
    run(&mut x, &journal, &mut Collect::default());
    for (msg, appendage) in &cases {
        let (command, echo) = x.translator().on_ouch(0, 0, msg).unwrap();
        journal.push((command, echo.unwrap_or(NO_ECHO)));
        let mut out = Collect::default();
        run(&mut x, &journal[journal.len() - 1..], &mut out);
        let accepted = out.0.iter().find(|o| o.0 == 'o' && o.3[0] == b'A').unwrap_or_else(|| panic!("no Order Accepted for {}: {:?}", msg.user_ref(), out.0));
        assert_eq!(&accepted.3[62..], *appendage, "UserRefNum {}", msg.user_ref());
        let parsed = ouch::Outbound::parse(&accepted.3).unwrap();
        let ouch::Outbound::OrderAccepted(a) = parsed else { panic!("{parsed:?}") };
        if let Inbound::EnterOrder(e) = msg {
            assert_eq!(a.options, e.options);
        }
    }
    // The same inputs replayed on a fresh exchange echo the same bytes.
    let (mut y, genesis) = self::genesis(&c);
    run(&mut y, &genesis, &mut Collect::default());
    let (mut first, mut again) = (Collect::default(), Collect::default());
    let (mut z, genesis) = self::genesis(&c);
    run(&mut z, &genesis, &mut Collect::default());
    run(&mut y, &journal, &mut first);
    run(&mut z, &journal, &mut again);
    assert_eq!(first.0, again.0);
}

/// Applies each firm message of `session` as the gateway journals it; returns everything applying produced.
fn firm_says(x: &mut Exchange, session: u16, msgs: &[Inbound]) -> Collect {
    let mut out = Collect::default();
    for msg in msgs {
        let (command, echo) = x.translator().on_ouch(session, u32::from(session), msg).unwrap();
        run(x, &[(command, echo.unwrap_or(NO_ECHO))], &mut out);
    }
    out
}

fn replies(out: &Collect) -> Vec<&[u8]> {
    out.0.iter().filter(|o| o.0 == 'o').map(|o| &o.3[..]).collect()
}

/// OUCH 5.0 sections 2.5 and 3.14: a Mass Cancel of one symbol cancels the firm's orders there and nowhere else,
/// each answered Order Canceled (section 3.4) reason 'U' and deleted from the feed (ITCH Order Delete 'D'), then
/// the Mass Cancel Response echoes the request. Every byte is written out from the spec tables.
#[test]
fn mass_cancel_answers_each_order_then_the_response() {
    let c = config();
    let (mut x, inputs) = genesis(&c);
    run(&mut x, &inputs, &mut Collect::default());
    let other = c.symbols[1].name.clone();
    let reference = crate::config::parse_price(&c.symbols[1].reference_price).unwrap();
    let entered = firm_says(&mut x, 0, &[
        enter(1, Side::Buy, 10, 1_490_000, "AAPL", b'A'),
        enter(2, Side::SellShort, 7, 1_510_000, "AAPL", b'A'),
        enter(3, Side::Buy, 5, u64::from(reference), &other, b'A'),
    ]);
    let adds: Vec<&[u8]> = entered.0.iter().filter(|o| o.0 == 'i' && o.3[0] == b'A').map(|o| &o.3[..]).collect();
    assert_eq!(adds.len(), 3, "{entered:?}");
    let firm = Alpha(*b"BRSE");
    let symbol = Symbol::new("AAPL").unwrap();
    let request = ouch::MassCancelRequest { user_ref: 4, firm, symbol, side: None, group_id: None };
    let out = firm_says(&mut x, 0, &[Inbound::MassCancel(request)]);
    let ts = out.0[0].3[1..9].to_vec();
    let canceled = |user_ref: u8, qty: u8| {
        // 'C' | Timestamp (8) | UserRefNum (4) | Quantity (4) | Reason 'U'
        let mut v = vec![b'C'];
        v.extend_from_slice(&ts);
        v.extend_from_slice(&[0, 0, 0, user_ref, 0, 0, 0, qty, b'U']);
        v
    };
    // 'X' | Timestamp | UserRefNum 4 | Firm "BRSE" | Symbol "AAPL    " | Appendage Length 0: 27 bytes.
    let mut response = vec![b'X'];
    response.extend_from_slice(&ts);
    response.extend_from_slice(&[0, 0, 0, 4]);
    response.extend_from_slice(b"BRSEAAPL    \0\0");
    assert_eq!(replies(&out), [&canceled(1, 10)[..], &canceled(2, 7)[..], &response[..]]);
    // ITCH Order Delete (section 1.4.3): 'D', the locate and the Add Order's reference number at @11.
    let deletes: Vec<&[u8]> = out.0.iter().filter(|o| o.0 == 'i').map(|o| &o.3[..]).collect();
    assert_eq!(deletes.len(), 2);
    for (d, a) in deletes.iter().zip(&adds) {
        assert_eq!((d[0], d.len(), &d[1..3], &d[11..19]), (b'D', 19, &a[1..3], &a[11..19]));
    }
    assert_eq!(x.engine().orders_open(), 1, "the other symbol's order stays");
    assert!(x.is_repeat(0, 4), "the request used its UserRefNum up");
    assert_eq!(x.first_reply(0, 4), Some(x.next_reply_sequence(0) - 1), "a repeat is answered with the response");
}

/// Sections 2.6-2.8 and 3.15-3.17: Disable Order Entry is answered 'G', an Enter Order while disabled Rejected
/// 0x000C, and the state survives a snapshot; Enable is answered 'K' and orders are accepted again; an Account
/// Query is answered with the next UserRefNum, one above every UserRefNum used, the refused ones too.
#[test]
fn order_entry_switch_survives_a_restart_and_the_account_query_counts_every_user_ref() {
    let c = config();
    let (mut x, inputs) = genesis(&c);
    run(&mut x, &inputs, &mut Collect::default());
    let firm = Alpha(*b"BRSE");
    let out = firm_says(&mut x, 1, &[Inbound::DisableOrderEntry(ouch::OrderEntryRequest { user_ref: 7, firm })]);
    let ts = out.0[0].3[1..9].to_vec();
    // 'G' | Timestamp | UserRefNum 7 | Firm | Appendage Length 0: 19 bytes.
    let mut g = vec![b'G'];
    g.extend_from_slice(&ts);
    g.extend_from_slice(&[0, 0, 0, 7, b'B', b'R', b'S', b'E', 0, 0]);
    assert_eq!(replies(&out), [&g[..]]);
    let mut payload = Vec::new();
    x.snapshot(&mut payload);
    let translator = setup::new_translator(&c).unwrap();
    let mut x = Exchange::restore(&payload, translator, setup::exchange_limits(&c), &[]).unwrap();
    assert!(!x.engine().order_entry_enabled(1));
    let out = firm_says(&mut x, 1, &[enter(8, Side::Buy, 10, 1_490_000, "AAPL", b'A')]);
    let r = replies(&out);
    assert_eq!((r.len(), r[0][0], &r[0][9..13], &r[0][13..15]), (1, b'J', &[0u8, 0, 0, 8][..], &[0u8, 0x0c][..]));
    assert_eq!(&r[0][15..29], b"C8            ", "the rejection echoes the ClOrdID");
    let out = firm_says(&mut x, 1, &[
        Inbound::EnableOrderEntry(ouch::OrderEntryRequest { user_ref: 9, firm }),
        enter(10, Side::Buy, 10, 1_490_000, "AAPL", b'A'),
        Inbound::AccountQuery,
    ]);
    let r = replies(&out);
    assert_eq!((r[0][0], r[0].len(), &r[0][9..13]), (b'K', 19, &[0u8, 0, 0, 9][..]));
    assert_eq!(r[1][0], b'A', "accepted again");
    // 'Q' | Timestamp | NextUserRefNum 11: 13 bytes, no appendage (section 3.17).
    let q = r[2];
    assert_eq!((q[0], q.len(), &q[9..13]), (b'Q', 13, &[0u8, 0, 0, 11][..]));
    // A refused Enter Order uses its UserRefNum up too: the next is 13.
    let refused = ouch::reject_reason::INVALID_SYMBOL;
    let reject = crate::translate::OuchReject { user_ref: 12, reason: refused, cl_ord_id: ClOrdId::BLANK };
    let mut out = Collect::default();
    run(&mut x, &[reject.command(1, true)], &mut out);
    let out2 = firm_says(&mut x, 1, &[Inbound::AccountQuery]);
    assert_eq!(&replies(&out2)[0][9..13], &[0, 0, 0, 13]);
    assert_eq!(x.first_reply(1, 9).map(|s| x.reply(1, s).unwrap()[0]), Some(b'K'));
}
