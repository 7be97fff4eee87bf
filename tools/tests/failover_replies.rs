//! Reply continuity across a failover (SoupBinTCP 3.00 §1: the client receives each message the server generated,
//! in sequence, across connection failures). A primary (`ack = "mirrored"`) and its hot standby on loopback; firm
//! GAMMA trades on the primary, which is killed -9 mid-flow. The firm logs into the promoted standby with the next
//! sequence it expects and resends what it never saw answered. It must end with every reply of its stream, dense
//! from 1, each byte-identical to what the promoted node's journal replays to, and every order journaled once.

mod support;

use std::time::{Duration, Instant};

use bourse_appliance::appliance::setup;
use support::firm::RawFirm;
use support::{check_logs_agree, order_counts, promoted_seq, start_pair, PairSpec, FAILOVER_BOUND};

#[test]
fn a_firm_misses_no_reply_across_a_failover() {
    let spec = PairSpec::loopback("replies");
    let (primary_at, standby_at) = (spec.primary.order, spec.standby.order);
    let mut pair = start_pair(&spec);
    let mut firm = RawFirm::open(primary_at, 2);
    assert_eq!(firm.log_in_again(Duration::from_secs(10)), Some(1));
    let mut next_ref = 1u32;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        firm.order(next_ref);
        next_ref += 1;
        std::thread::sleep(Duration::from_micros(500));
        firm.poll();
    }
    // A last burst the primary is still busy with when it dies: some of it journaled and mirrored, some not.
    for _ in 0..100 {
        firm.order(next_ref);
        next_ref += 1;
    }
    std::thread::sleep(Duration::from_millis(2));
    pair.primary.kill9();
    let line = pair.standby.wait_for("PROMOTED to epoch 2", FAILOVER_BOUND);
    pair.standby.wait_for("SERVING on", FAILOVER_BOUND);
    let at = promoted_seq(&line);
    firm.poll();
    let had = firm.expected();
    assert!(had > 1, "the primary answered something before the kill");

    firm.retarget(standby_at);
    assert_eq!(firm.log_in_again(Duration::from_secs(10)), Some(had), "the promoted node resumes the stream");
    let unanswered: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
    for r in &unanswered {
        firm.order(*r);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (1..next_ref).any(|r| !firm.answered.contains_key(&r)) && Instant::now() < deadline {
        firm.poll();
    }
    let missing: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
    assert!(missing.is_empty(), "orders never answered: {missing:?}");
    firm.logout();
    pair.standby.terminate();

    let (_, standby) = check_logs_agree(&pair, at);
    let twice: Vec<_> = order_counts(&standby).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "orders journaled twice: {twice:?}");
    let journal = setup::open_journal(&pair.standby_cfg, &pair.standby_dir).unwrap();
    let next = journal.exchange.next_reply_sequence(2);
    assert_eq!(firm.expected(), next, "the firm holds its whole stream, dense from 1");
    for (seq, bytes) in &firm.replies {
        assert_eq!(journal.exchange.reply(2, *seq), Some(bytes.as_slice()), "reply {seq} differs from the replay");
    }
    eprintln!(
        "failover: {} orders ({} resent after the kill), {} replies ({} before the kill), promoted at seq {at}",
        next_ref - 1,
        unanswered.len(),
        next - 1,
        had - 1
    );
}
