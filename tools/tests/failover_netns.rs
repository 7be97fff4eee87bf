//! Hot standby failover across network namespaces: the primary in `bourse-fp`, the standby in `bourse-fs`, the
//! firms (load generator, the exact-acknowledgement client GAMMA, a market-data client) in `bourse-fl`, the firm
//! network a bridge and the mirror its own veth pair (`scripts/netns-failover.sh`, see `support/netns.rs`). The
//! nodes are `bourse` child processes started with `ip netns exec`; the clients are threads of this test that
//! entered the firms' namespace. Needs root: otherwise each test prints `skipped: <reason>` and returns.
//!
//! - **Kill** (`failover_netns_kill`): kill -9 the primary during a load run (`BOURSE_FAILOVER_KILL_MS`, default
//!   400 ms; `ci/failover-test.sh` draws it at random). The standby promotes and serves, the load generator fails
//!   over to it. Every order acknowledged to GAMMA is in the promoted node's journal exactly once, no order is
//!   journaled twice there, both logs agree through the promotion seq, and the promoted node takes new orders.
//!   The market-data client checks that the MoldUDP64 sequence stayed continuous across the failover, byte for
//!   byte, after asking both nodes' retransmission servers for what it missed (the promoted node continues the
//!   primary's numbering and serves earlier messages from the journal it followed).
//! - **Partition** (`failover_netns_partition`): under `ack = "mirrored"`, take the primary's end of the mirror
//!   link down while the firms keep reaching it. The primary must stop acknowledging: no order GAMMA sent after the
//!   cut is answered, no answer arrives during the partition later than a short window after the cut, every
//!   answered order is on the standby exactly once, and the primary's commit index (its summary's `committed`)
//!   never passes the standby's promotion seq, although it journaled orders during the partition (none of which
//!   was answered). The standby promotes, the load generator fails over and is answered there. Then the link comes
//!   back and the former primary must report `FENCED` (the promoted node answers its old-epoch frames with a
//!   Fence). Answers released by the standby's last acks arriving after the link is back are reported as late
//!   acknowledgements (allowed: their orders are on the standby).
//!
//! `BOURSE_FAILOVER_VERBOSE=1` prints both nodes' stderr.
//!
//! The two tests take a lock for the namespaces, so they run one after the other (two busy-polling pairs would
//! not fit two cores anyway).

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bourse::demo::free_udp_port;
use bourse::load::{run_load, LoadReport};
use bourse_engine::{SessionId, UserRef};
use support::md::MdWatcher;
use support::netns::{
    require_failover_netns, sockets, FailoverNetns, Partition, FIRMS_IP, NS_PRIMARY, NS_STANDBY, PRIMARY_IP,
    PRIMARY_MIRROR_DEV, STANDBY_IP, STANDBY_MIRROR_IP,
};
use support::{
    check_logs_agree, duplicated_orders, exact_client, free_tcp_port, order_counts, promoted_seq, start_pair,
    two_firm_load, Log, NodeAddrs, PairSpec, StopFlag, Until, FAILOVER_BOUND, GAMMA_SESSION, PROMOTE_AFTER_MS,
};

/// Length of the kill scenario's load run (the kill point falls in it or just after it). The default kill at
/// 400 ms leaves 300 ms of sending beyond the failover interval's silence: on a busy two-core host the generator's
/// housekeeping can run that late (a CI run with 150 ms of margin once missed it).
const KILL_LOAD_MS: u64 = 1_500;
/// The partition scenario: load for this long, cutting the mirror link this far into it.
const PARTITION_LOAD_MS: u64 = 3_000;
const CUT_AT_MS: u64 = 600;
/// GAMMA goes on sending to the primary for this long after the cut (and after the promotion), so the primary
/// journals some of its orders that it cannot acknowledge.
const GAMMA_AFTER_CUT: Duration = Duration::from_millis(800);
/// An answer from the partitioned primary later than this after the cut, and before the link is back, fails the
/// test. Orders committed before the cut may still be answered just after it; the mirror retransmits after 20 ms
/// and a heartbeat goes every 1 ms, so anything much later than that is suspect. The margin covers a pipeline
/// thread that lost its core on a loaded two-vCPU host. Once the link is back, acks the standby sent just before
/// it promoted (held in its kernel's send queue during the partition) can still reach the former primary and
/// release answers: those are allowed, and reported, as long as their orders are on the standby.
const ANSWER_AFTER_CUT_MAX: Duration = Duration::from_millis(300);
/// How long the former primary gets to report FENCED after the link is back (its TCP connection to the standby
/// only notices the standby's reset on its next retransmission, which backs off to a second or more).
const FENCE_BOUND: Duration = Duration::from_secs(4);

/// The kill test's market-data group (administratively scoped, RFC 2365).
const MD_GROUP: Ipv4Addr = Ipv4Addr::new(239, 78, 0, 1);

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// `BOURSE_FAILOVER_VERBOSE=1` prints both nodes' stderr.
fn print_logs_if_verbose(pair: &support::Pair) {
    if env_flag("BOURSE_FAILOVER_VERBOSE") {
        eprintln!("--- primary:\n{}\n--- standby:\n{}\n---", pair.primary.log(), pair.standby.log());
    }
}

/// The pair's addresses: order entry and retransmission on each node's firm-network address, market data to
/// `md_ip` (the firms' address, or a multicast group both nodes send to on the firm network), the mirror on its
/// own link.
fn netns_spec(tag: &str, md_ip: Ipv4Addr) -> PairSpec<'_> {
    let (order, md, retransmit) = (free_udp_port().unwrap(), free_udp_port().unwrap(), free_udp_port().unwrap());
    let node = |ip| NodeAddrs {
        order: SocketAddrV4::new(ip, order),
        md_group: SocketAddrV4::new(md_ip, md),
        retransmit: Some(SocketAddrV4::new(ip, retransmit)),
        firm_source: FIRMS_IP,
    };
    PairSpec {
        tag,
        primary: node(PRIMARY_IP),
        standby: node(STANDBY_IP),
        mirror: SocketAddr::from((STANDBY_MIRROR_IP, free_tcp_port())),
        namespaces: Some((NS_PRIMARY, NS_STANDBY)),
    }
}

fn join<T>(h: std::thread::JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The load generator in the firms' namespace; it may fail over from the primary to the standby.
fn spawn_load(
    ns: &FailoverNetns,
    pair: &support::Pair,
    duration_ms: u64,
    seed: u64,
) -> std::thread::JoinHandle<anyhow::Result<LoadReport>> {
    let mut opts = two_firm_load(&pair.primary_cfg, 2_000.0, Duration::from_millis(duration_ms), seed);
    opts.mix.resting = 200;
    opts.targets = vec![pair.primary_cfg.backend.bind, pair.standby_cfg.backend.bind];
    opts.failover = Duration::from_millis(PROMOTE_AFTER_MS + 100);
    opts.login_timeout = FAILOVER_BOUND;
    opts.drain = Duration::from_millis(500);
    ns.spawn_in_firms("load", move || run_load(&opts))
}

/// The promoted node takes new orders from the same firms (UserRefNums continuing after `next_user_ref`).
fn promoted_node_serves(ns: &FailoverNetns, pair: &support::Pair, next_user_ref: u32, seed: u64) -> LoadReport {
    let mut again = two_firm_load(&pair.standby_cfg, 1_000.0, Duration::from_millis(300), seed);
    again.mix.resting = 100;
    again.mix.first_user_ref = next_user_ref;
    let r = join(ns.spawn_in_firms("load-again", move || run_load(&again))).unwrap();
    assert_eq!(r.lost, 0, "{} of {} orders unanswered by the promoted standby", r.lost, r.sent);
    assert_eq!(r.replied, r.sent);
    r
}

/// Every order acknowledged to GAMMA is journaled exactly once in `log`, at or before `promoted_at`.
fn acknowledged_exactly_once(log: &Log, promoted_at: u64, acknowledged: &[UserRef]) {
    let all = order_counts(log);
    let before: BTreeMap<(SessionId, UserRef), u32> = order_counts(log.range(..=promoted_at));
    for r in acknowledged {
        let key = (GAMMA_SESSION, *r);
        assert_eq!(
            before.get(&key),
            Some(&1),
            "GAMMA's order {r} was acknowledged but is not on the standby at or before the promotion seq {promoted_at}"
        );
        assert_eq!(all.get(&key), Some(&1), "GAMMA's order {r} is journaled more than once on the promoted node");
    }
}

fn no_order_twice(log: &Log, whose: &str) {
    let dup = duplicated_orders(log);
    assert!(dup.is_empty(), "orders journaled twice in the {whose}'s log ((session, UserRefNum), count): {dup:?}");
}

#[test]
fn failover_netns_kill() {
    let Some(ns) = require_failover_netns() else { return };
    let kill_ms = std::env::var("BOURSE_FAILOVER_KILL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    // Market data to a multicast group, as feed handlers subscribe: the promoted node must publish to it too.
    let spec = netns_spec("nk", MD_GROUP);
    // The market-data client listens before the primary publishes its genesis messages, and ignores the second
    // live packet (the first of the load run), so that recovery by retransmission is exercised in every run.
    let retransmit = vec![spec.primary.retransmit.unwrap(), spec.standby.retransmit.unwrap()];
    let md = MdWatcher::start(&ns, spec.primary.md_group, retransmit, Some(2));
    let mut pair = start_pair(&spec);

    let load = spawn_load(&ns, &pair, KILL_LOAD_MS, 31);
    let gamma = {
        let target = pair.primary_cfg.backend.bind;
        let until = Until::Silence(Duration::from_millis(300));
        let run_for = Duration::from_millis(KILL_LOAD_MS);
        ns.spawn_in_firms("gamma", move || exact_client(FIRMS_IP, target, run_for, until))
    };
    std::thread::sleep(Duration::from_millis(kill_ms));
    pair.primary.kill9();
    let killed = Instant::now();
    let line = pair.standby.wait_for("PROMOTED to epoch 2", FAILOVER_BOUND);
    let serving = pair.standby.wait_for("SERVING on", FAILOVER_BOUND);
    let failover = killed.elapsed();
    let at = promoted_seq(&line);
    let r = join(load).unwrap();
    let acknowledged = join(gamma).acknowledged();

    let (_, standby) = check_logs_agree(&pair, at);
    acknowledged_exactly_once(&standby, at, &acknowledged);
    if kill_ms >= 300 {
        assert!(!acknowledged.is_empty(), "GAMMA got no answer in {kill_ms} ms before the kill");
    }
    // The generator checks for silence only while sending: if the kill left it time to notice, it failed over.
    let failover_ms = PROMOTE_AFTER_MS + 100;
    if kill_ms + failover_ms + 300 < KILL_LOAD_MS {
        assert!(r.failovers >= 1, "the load generator should have failed over: {} sent, {} lost", r.sent, r.lost);
    }

    let r2 = promoted_node_serves(&ns, &pair, r.next_user_ref, 32);
    let report = md.finish();
    pair.standby.terminate();
    let (_, standby) = check_logs_agree(&pair, at);
    no_order_twice(&standby, "promoted standby");
    let new_orders = standby.range(at + 1..).filter(|(_, v)| support::is_order(v.1)).count() as u64;
    assert!(new_orders >= r2.sent / 2, "orders after failover are journaled in epoch 2: {new_orders}");

    eprintln!(
        "netns kill at {kill_ms} ms: {} sent / {} answered ({} failovers, {} answered after failing over), {} GAMMA \
         orders acknowledged, each once on the standby, promoted at seq {at}; {serving}; {failover:?} since the kill",
        r.sent,
        r.replied,
        r.failovers,
        r.replied_after_failover,
        acknowledged.len()
    );
    print_logs_if_verbose(&pair);
    let standby_source = SocketAddr::V4(pair.standby_cfg.backend.bind);
    let promoted_published = report.live_by_source.contains_key(&standby_source);
    eprintln!(
        "market data across the failover: {} (promoted node published: {promoted_published}): {}",
        if report.is_continuous() && promoted_published { "CONTINUOUS" } else { "NOT continuous" },
        report.summary()
    );
    assert!(promoted_published, "the promoted node published no market data: {}", report.summary());
    assert!(report.is_continuous(), "MoldUDP64 sequence not continuous across the failover: {}", report.summary());
}

/// The `committed` count of a node's `stopped:` summary line.
fn committed_of(summary: &str) -> u64 {
    let after = summary.split("committed ").nth(1).expect("the summary names the committed seq");
    after.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().expect("a seq")
}

#[test]
fn failover_netns_partition() {
    let Some(ns) = require_failover_netns() else { return };
    let spec = netns_spec("np", FIRMS_IP);
    let mut pair = start_pair(&spec);

    let (witness_quiet, witness_stop) = (StopFlag::new(), StopFlag::new());
    let gamma = {
        let target = pair.primary_cfg.backend.bind;
        let (sending, until) = (witness_quiet.sending(), witness_stop.until());
        ns.spawn_in_firms("gamma", move || exact_client(FIRMS_IP, target, sending, until))
    };
    let load = spawn_load(&ns, &pair, PARTITION_LOAD_MS, 41);
    std::thread::sleep(Duration::from_millis(CUT_AT_MS));
    let cutting = Instant::now();
    let mut partition = Partition::cut(NS_PRIMARY, PRIMARY_MIRROR_DEV);
    let cut = Instant::now();
    let line = pair.standby.wait_for("PROMOTED to epoch 2", FAILOVER_BOUND);
    let promoted_after = cut.elapsed();
    let serving = pair.standby.wait_for("SERVING on", FAILOVER_BOUND);
    let serving_after = cut.elapsed();
    let at = promoted_seq(&line);
    std::thread::sleep(GAMMA_AFTER_CUT.saturating_sub(cut.elapsed()));
    witness_quiet.set();
    let r = join(load).unwrap();

    // Heal, and give the former primary its chance to learn that it was superseded.
    let healing = Instant::now();
    partition.heal();
    let healed = Instant::now();
    let fenced = pair.primary.poll_for("FENCED", FENCE_BOUND).map(|l| (l, healed.elapsed()));
    // Where the former primary's mirror connection stands, for the report when it was not fenced.
    let mirror_sockets = match fenced {
        Some(_) => String::new(),
        None => format!(
            "{NS_PRIMARY} `ss -tan dst {STANDBY_MIRROR_IP}`: {:?}; \
             {NS_STANDBY} `ss -tln src {STANDBY_MIRROR_IP}`: {:?}",
            sockets(NS_PRIMARY, &["-tan", "dst", &STANDBY_MIRROR_IP.to_string()]),
            sockets(NS_STANDBY, &["-tln", "src", &STANDBY_MIRROR_IP.to_string()]),
        ),
    };
    witness_stop.set();
    let exact = join(gamma);
    let primary_mirror_lines: Vec<String> =
        pair.primary.log().lines().filter(|l| l.contains("mirror")).map(str::to_string).collect();
    pair.primary.terminate();
    let summary = pair.primary.poll_for("stopped:", Duration::from_secs(2)).unwrap_or_else(|| {
        panic!("the former primary printed no summary:\n{}", pair.primary.log());
    });
    let committed = committed_of(&summary);
    pair.standby.terminate();
    let (primary, standby) = check_logs_agree(&pair, at);

    // The primary stopped acknowledging at the cut: no order sent after it was answered, no answer came during
    // the partition later than a short window after the cut, and each answered order is on the standby exactly
    // once (checked below, which covers the answers that arrived after the link came back too).
    let mut last_answer_after_cut = None;
    let mut after_heal = Vec::new();
    for &(r, t) in &exact.answers {
        assert!(
            exact.sent_at(r) < cut,
            "GAMMA's order {r}, sent after the mirror link was cut, was answered by the primary"
        );
        let late = t.saturating_duration_since(cut);
        if t >= healing {
            after_heal.push((r, late));
            continue;
        }
        assert!(late <= ANSWER_AFTER_CUT_MAX, "GAMMA's order {r} was answered {late:?} after the cut, before the heal");
        if t > cut {
            last_answer_after_cut = Some(late);
        }
    }
    let acknowledged = exact.acknowledged();
    assert!(!acknowledged.is_empty(), "GAMMA got no answer in the {CUT_AT_MS} ms before the cut");
    acknowledged_exactly_once(&standby, at, &acknowledged);
    // Commit evidence: the primary never committed past what the standby holds.
    assert!(committed <= at, "the primary committed through seq {committed}, past the standby's promotion seq {at}");
    // It journaled orders during the partition that it never acknowledged.
    let unmirrored = order_counts(primary.range(at + 1..));
    let gamma_unmirrored: Vec<UserRef> =
        unmirrored.keys().filter(|(s, _)| *s == GAMMA_SESSION).map(|(_, r)| *r).collect();
    assert!(!gamma_unmirrored.is_empty(), "the primary journaled none of GAMMA's orders after the cut");
    for r in &gamma_unmirrored {
        assert!(!acknowledged.contains(r), "GAMMA's order {r} was journaled only by the primary, yet acknowledged");
    }
    // The standby promoted, the load generator failed over and was answered there.
    assert!(r.failovers >= 1, "the load generator did not fail over: {} sent, {} answered", r.sent, r.replied);
    assert!(r.replied_after_failover > 0, "the promoted standby answered none of the load generator's orders");
    let served = standby.range(at + 1..).filter(|(_, (_, _, i))| order_session(i).is_some_and(|s| s < 2)).count();
    assert!(served > 0, "the promoted node journaled none of the load generator's orders");
    no_order_twice(&standby, "promoted standby");

    eprintln!(
        "netns partition: cut at {CUT_AT_MS} ms (`ip link set down` took {:?}); standby promoted at seq {at} {promoted_after:?} after the cut, serving \
         {serving_after:?} after it ({serving}); GAMMA: {} sent, {} acknowledged (last answer {:?} after the cut), \
         {} of its orders journaled by the primary only; primary committed {committed}, last seq {}, {} orders \
         journaled during the partition and never acknowledged; load: {} sent, {} answered, {} failovers, {} answered \
         by the promoted node",
        cut - cutting,
        exact.sent.len(),
        acknowledged.len(),
        last_answer_after_cut,
        gamma_unmirrored.len(),
        primary.keys().next_back().copied().unwrap_or(0),
        unmirrored.len(),
        r.sent,
        r.replied,
        r.failovers,
        r.replied_after_failover,
    );
    if !after_heal.is_empty() {
        let seqs = gamma_seqs(&standby);
        let late: Vec<String> = after_heal
            .iter()
            .map(|(r, late)| format!("order {r} (standby seq {:?}) {late:?} after the cut", seqs.get(r)))
            .collect();
        eprintln!(
            "late acknowledgements: the former primary answered {} GAMMA orders after the link came back (healed \
             {:?} after the cut; promoted at seq {at}): {}",
            after_heal.len(),
            healing.saturating_duration_since(cut),
            late.join(", ")
        );
    }
    print_logs_if_verbose(&pair);
    match &fenced {
        Some((l, after)) => {
            eprintln!("fence: the former primary reported FENCED {after:?} after the link came back: {l}")
        }
        None => eprintln!(
            "fence: the former primary did NOT report FENCED within {FENCE_BOUND:?} of the link coming back; its mirror \
             lines:\n  {}\n  {mirror_sockets}",
            primary_mirror_lines.join("\n  ")
        ),
    }
    assert!(fenced.is_some(), "the former primary was not fenced within {FENCE_BOUND:?}:\n{}", pair.primary.log());
}

/// The seq of each of GAMMA's New Orders in `log`.
fn gamma_seqs(log: &Log) -> BTreeMap<UserRef, u64> {
    log.iter()
        .filter_map(|(seq, (_, _, i))| match i.command {
            bourse_engine::Command::NewOrder(o) if o.session == GAMMA_SESSION => Some((o.user_ref, *seq)),
            _ => None,
        })
        .collect()
}

fn order_session(input: &bourse_engine::Input) -> Option<SessionId> {
    match input.command {
        bourse_engine::Command::NewOrder(o) => Some(o.session),
        bourse_engine::Command::Replace(r) => Some(r.session),
        bourse_engine::Command::Cancel(c) => Some(c.session),
        _ => None,
    }
}
