//! The appliance pipeline end to end without a network: a scripted backend feeds it SoupBinTCP/OUCH datagrams, and
//! the test checks what comes out (login, replies, executions, market data, rejects) and that the pipeline thread
//! allocates nothing once it is running; and that what it refused or ignored is counted by reason in the stats
//! block and the metrics.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use bourse::alloc_count::{allocations_on_this_thread, CountingAlloc};
use bourse_appliance::appliance::setup::build_pipeline;
use bourse_appliance::config::Config;
use bourse_appliance::obs::tsc::Clock;
use bourse_nic::backend::{Backend, BackendStats, Datagram, TxError};
use bourse_nic::wire::alpha::{Alpha, ClOrdId};
use bourse_nic::wire::moldudp64;
use bourse_nic::wire::ouch::{self, EnterOrder, Inbound, Options};
use bourse_nic::wire::soup;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Feeds pre-built datagrams in bursts and keeps what is sent in preallocated storage.
struct Script {
    inbox: Vec<(SocketAddrV4, Vec<u8>)>,
    next: usize,
    burst: usize,
    sent: Vec<(SocketAddrV4, [u8; 1500], usize)>,
    sent_len: usize,
    /// A peer the backend cannot address yet (a raw backend waiting for its ARP reply): transmits to it are refused.
    unresolved: Option<SocketAddrV4>,
    stats: BackendStats,
}

impl Script {
    fn new(inbox: Vec<(SocketAddrV4, Vec<u8>)>, sent_max: usize) -> Script {
        Script {
            inbox,
            next: 0,
            burst: 16,
            sent: vec![(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), [0; 1500], 0); sent_max],
            sent_len: 0,
            unresolved: None,
            stats: BackendStats::default(),
        }
    }
    fn done(&self) -> bool {
        self.next == self.inbox.len()
    }
    fn sent(&self) -> impl Iterator<Item = (SocketAddrV4, &[u8])> {
        self.sent[..self.sent_len].iter().map(|(a, b, n)| (*a, &b[..*n]))
    }
}

impl Backend for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        let end = (self.next + self.burst).min(self.inbox.len());
        let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9000);
        for (src, bytes) in &self.inbox[self.next..end] {
            f(Datagram { src: *src, dst, payload: bytes });
        }
        let n = end - self.next;
        self.next = end;
        self.stats.rx += n as u64;
        n
    }
    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        if self.unresolved == Some(dst) {
            self.stats.tx_unresolved += 1;
            return Err(TxError::Unresolved);
        }
        // Keep the first `sent.len()` datagrams, count the rest: storage stays preallocated.
        if self.sent_len < self.sent.len() {
            let slot = &mut self.sent[self.sent_len];
            slot.0 = dst;
            slot.2 = fill(&mut slot.1);
            self.sent_len += 1;
        } else {
            let mut scratch = [0u8; 1500];
            fill(&mut scratch);
        }
        self.stats.tx += 1;
        Ok(())
    }
    fn tx_flush(&mut self) -> usize {
        0
    }
    fn stats(&self) -> BackendStats {
        self.stats
    }
}

fn config(dir: &std::path::Path) -> Config {
    Config::parse(&format!(
        r#"
        [backend]
        kind = "socket"
        bind = "127.0.0.1:9000"
        [market_data]
        group = "127.0.0.1:9100"
        [wal]
        dir = "{}"
        mode = "dax"
        segment_bytes = 67108864
        [capacity]
        orders_max = 65536
        levels_per_symbol = 8192
        [[symbols]]
        name = "AAPL"
        reference_price = "150.00"
        [[firms]]
        name = "alpha"
        username = "ALPHA"
        password = "pw-a"
        allowed_sources = ["127.0.0.1:5000"]
        cash = "1000000000"
        shares = {{ AAPL = 10000000 }}
        [[firms]]
        name = "beta"
        username = "BETA"
        password = "pw-b"
        allowed_sources = ["127.0.0.1:5001"]
        cash = "1000000000"
        shares = {{ AAPL = 10000000 }}
        "#,
        dir.display()
    ))
    .unwrap()
}

fn login(user: &str, password: &str) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    let r = soup::Repr::LoginRequest(soup::LoginRequest {
        username: Alpha::new(user).unwrap(),
        password: Alpha::new(password).unwrap(),
        session: Alpha::BLANK,
        sequence: 0,
    });
    let n = r.emit(&mut b).unwrap();
    b.truncate(n);
    b
}

fn ouch_datagram(msg: &Inbound) -> Vec<u8> {
    let mut body = [0u8; 128];
    let n = msg.emit(&mut body).unwrap();
    let mut b = vec![0u8; n + 3];
    let len = soup::emit_data_header(&mut b, b'U', n).unwrap();
    b[soup::HEADER_LEN..soup::HEADER_LEN + n].copy_from_slice(&body[..n]);
    b.truncate(len);
    b
}

fn enter(user_ref: u32, side: ouch::Side, qty: u32, price_ticks: u64, tif: u8) -> Inbound {
    Inbound::EnterOrder(EnterOrder {
        user_ref,
        side,
        quantity: qty,
        symbol: Alpha::new("AAPL").unwrap(),
        price: price_ticks,
        time_in_force: tif,
        display: b'Y',
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: ClOrdId::new(&format!("C{user_ref}")).unwrap(),
        options: Options::default(),
    })
}

/// OUCH messages in every datagram sent to `dst` (MoldUDP64-framed replies).
fn ouch_replies<'a>(sent: impl Iterator<Item = (SocketAddrV4, &'a [u8])>, dst: SocketAddrV4) -> Vec<ouch::Outbound> {
    let mut out = Vec::new();
    for (to, d) in sent {
        if to != dst {
            continue;
        }
        let Ok(p) = moldudp64::Packet::new_checked(d) else { continue };
        for m in p.messages() {
            if let Ok(m) = ouch::Outbound::parse(m) {
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn orders_flow_through_the_pipeline_and_it_allocates_nothing_after_start_up() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&dir);
    let (mut pipeline, _exporter, started) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    assert!(started.genesis_inputs > 0);

    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let stranger = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 5000);
    let mut inbox = vec![(a, login("ALPHA", "pw-a")), (b, login("BETA", "pw-b"))];
    // Bad input first: garbage, a wrong password, an unknown source, an order before login.
    inbox.push((a, vec![0xff; 7]));
    inbox.push((stranger, login("ALPHA", "pw-a")));
    inbox.push((b, login("BETA", "wrong")));
    inbox.push((stranger, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_500_000, b'0'))));
    // Then a long stream: alpha rests bids, beta sells into them; cancels and replaces in between.
    let orders = 30_000u32;
    let (mut ra, mut rb) = (0u32, 0u32);
    for i in 0..orders {
        let price = 1_490_000 + u64::from(i % 50) * 100;
        ra += 1;
        inbox.push((a, ouch_datagram(&enter(ra, ouch::Side::Buy, 10, price, b'0'))));
        match i % 4 {
            0 => {
                rb += 1;
                inbox.push((b, ouch_datagram(&enter(rb, ouch::Side::Sell, 10, 1_480_000, b'3'))));
            }
            1 => inbox.push((a, ouch_datagram(&Inbound::CancelOrder(ouch::CancelOrder { user_ref: ra, quantity: 0 })))),
            2 => {
                ra += 1;
                inbox.push((
                    a,
                    ouch_datagram(&Inbound::ReplaceOrder(ouch::ReplaceOrder {
                        orig_user_ref: ra - 1,
                        user_ref: ra,
                        quantity: 5,
                        price: price - 100,
                        time_in_force: b'0',
                        display: b'Y',
                        intermarket_sweep: b'N',
                        cl_ord_id: ClOrdId::new("R").unwrap(),
                        options: Options::default(),
                    })),
                ));
            }
            _ => {}
        }
    }
    // A retransmitted order (same UserRefNum) must not execute twice.
    inbox.push((a, ouch_datagram(&enter(ra, ouch::Side::Buy, 10, 1_490_000, b'0'))));
    let total = inbox.len();
    let mut backend = Script::new(inbox, 64);

    // Warm up: logins and the first bursts touch every lazily-initialised path once.
    for _ in 0..64 {
        pipeline.poll(&mut backend);
    }
    let before = allocations_on_this_thread();
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..1000 {
        pipeline.poll(&mut backend);
    }
    let allocated = allocations_on_this_thread() - before;
    assert_eq!(allocated, 0, "the pipeline thread allocated {allocated} times after start-up");
    assert_eq!(backend.stats.rx as usize, total);
    assert!(pipeline.failure().is_none());
    assert_eq!(pipeline.waiting(), (0, 0), "everything committed was released");

    // Sessions: two logins; the stranger, the wrong password and the early order were dropped and counted.
    assert_eq!(pipeline.counters.logins, 2);
    let drops: u64 = pipeline.sessions.counters().drops.iter().sum();
    assert!(drops >= 4, "bad input is dropped and counted, got {drops}");
    assert!(pipeline.counters.duplicates >= 1);
    assert_eq!(pipeline.counters.duplicates, pipeline.counters.duplicates_answered, "a resent order gets its first reply");

    // Replies: each firm got its login, and OUCH replies went only to logged-in firms.
    let replies_a = ouch_replies(backend.sent(), a);
    assert!(replies_a.iter().any(|m| matches!(m, ouch::Outbound::OrderAccepted(_))), "alpha got Accepted");
    let inputs = pipeline.counters.inputs;
    assert!(inputs > u64::from(orders), "every order was sequenced ({inputs})");
    assert!(pipeline.exchange.engine().check_invariants().is_ok());
    assert!(backend.stats.tx > u64::from(orders), "replies and market data were sent ({})", backend.stats.tx);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_packet_of_a_200_packet_datagram_is_processed_and_a_flood_beyond_the_rate_limit_is_refused() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config(&dir);
    cfg.firms[1].rate_limit_per_s = 100;
    cfg.firms[1].rate_limit_burst = 10;
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let packets = |first: u32, n: u32, side| {
        let mut d = Vec::new();
        for r in first..first + n {
            d.extend_from_slice(&ouch_datagram(&enter(r, side, 1, 1_400_000, b'0')));
        }
        d
    };
    // Alpha (unlimited): one datagram of 200 SoupBinTCP packets. Beta (100/s, burst 10): 300 in one datagram.
    let inbox = vec![
        (a, login("ALPHA", "pw-a")),
        (b, login("BETA", "pw-b")),
        (a, packets(1, 200, ouch::Side::Buy)),
        (b, packets(1, 300, ouch::Side::Buy)),
    ];
    let mut backend = Script::new(inbox, 4096);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..1000 {
        pipeline.poll(&mut backend);
    }
    assert_eq!(pipeline.waiting(), (0, 0));
    let replies_a = ouch_replies(backend.sent(), a);
    let accepted_a = replies_a.iter().filter(|m| matches!(m, ouch::Outbound::OrderAccepted(_))).count();
    assert_eq!(accepted_a, 200, "every packet of the datagram was journaled and answered");

    let replies_b = ouch_replies(backend.sent(), b);
    let accepted_b = replies_b.iter().filter(|m| matches!(m, ouch::Outbound::OrderAccepted(_))).count();
    let limited = replies_b
        .iter()
        .filter(|m| matches!(m, ouch::Outbound::OrderRejected { reason, .. } if *reason == ouch::reject_reason::RISK_DUPLICATE_MESSAGE_RATE))
        .count();
    assert_eq!(accepted_b + limited, 300, "each message answered: accepted or refused by the rate limit");
    assert!(accepted_b >= 10, "the burst passes ({accepted_b})");
    assert!(limited > 0, "the flood beyond the rate is refused");
    assert_eq!(pipeline.counters.rate_limited, limited as u64, "and counted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replies_produced_while_logged_out_arrive_at_the_next_login() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-away-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let mut relogin = login("ALPHA", "pw-a");
    // Requested Sequence Number 2 (SoupBinTCP Login Request @29, 20 ASCII digits, right-justified).
    let n = relogin.len();
    relogin[n - 20..].copy_from_slice(b"                   2");
    // Alpha rests a bid (Accepted = 1) and logs out; Beta sells into it while Alpha is away.
    let inbox = vec![
        (a, login("ALPHA", "pw-a")),
        (a, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_500_000, b'0'))),
        (a, vec![0, 1, b'O']),
        (b, login("BETA", "pw-b")),
        (b, ouch_datagram(&enter(1, ouch::Side::Sell, 10, 1_500_000, b'3'))),
    ];
    let mut backend = Script::new(inbox, 256);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..200 {
        pipeline.poll(&mut backend);
    }
    let while_in = ouch_replies(backend.sent(), a).len();
    assert_eq!(while_in, 1, "only the Accepted reached Alpha before it logged out");
    backend.inbox.push((a, relogin));
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..200 {
        pipeline.poll(&mut backend);
    }
    let all = ouch_replies(backend.sent(), a);
    assert!(
        matches!(all[1..], [ouch::Outbound::OrderExecuted { user_ref: 1, quantity: 10, .. }]),
        "the execution that happened while Alpha was away arrives at its next login: {all:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pipeline's two firms, except that alpha may log in from two sources and beta has almost no cash.
fn counting_config(dir: &std::path::Path) -> Config {
    let mut c = config(dir);
    c.firms[0].allowed_sources.push("127.0.0.1:5010".into());
    c.firms[1].cash = "100".into();
    c.firms[1].shares.clear();
    c
}

#[test]
fn rejects_duplicates_and_refusals_are_counted_by_reason_in_the_metrics() {
    use bourse_appliance::appliance::{set_stats_names, Exported};
    use bourse_appliance::obs::metrics::render;
    use bourse_appliance::obs::statsblock::StatsWriter;
    use prometheus_parse::Value;

    let dir = std::env::temp_dir().join(format!("bourse-pipeline-counts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = counting_config(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();

    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let a2 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5010);
    let g = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let mut unknown_symbol = enter(1, ouch::Side::Buy, 10, 1_500_000, b'0');
    if let Inbound::EnterOrder(m) = &mut unknown_symbol {
        m.symbol = Alpha::new("ZZZZ").unwrap();
    }
    let inbox = vec![
        (a, login("ALPHA", "pw-a")),
        (g, login("BETA", "pw-b")),
        // Refused by the gateway: no such symbol.
        (a, ouch_datagram(&unknown_symbol)),
        // Rejected by the engine: 10 × 150.00 is more than beta's 100.00.
        (g, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_500_000, b'0'))),
        // Accepted, then sent again: a duplicate, answered with the first reply.
        (a, ouch_datagram(&enter(2, ouch::Side::Buy, 10, 1_490_000, b'0'))),
        (a, ouch_datagram(&enter(2, ouch::Side::Buy, 10, 1_490_000, b'0'))),
        // Alpha's session is live from `a`: a login from its other source is refused.
        (a2, login("ALPHA", "pw-a")),
    ];
    let mut backend = Script::new(inbox, 64);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..1000 {
        pipeline.poll(&mut backend);
    }
    assert!(pipeline.failure().is_none());
    assert_eq!(pipeline.waiting(), (0, 0));
    // The rejects really went out, with their codes.
    let rejected = |to| {
        ouch_replies(backend.sent(), to)
            .into_iter()
            .filter_map(|m| match m {
                ouch::Outbound::OrderRejected { reason, .. } => Some(reason),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rejected(a), [ouch::reject_reason::INVALID_SYMBOL]);
    assert_eq!(rejected(g), [ouch::reject_reason::RISK_AGGREGATE_EXPOSURE]);

    let stats = StatsWriter::in_memory();
    set_stats_names(&stats, "script");
    let mut exported = Exported::default();
    exported.export(&pipeline, &backend, None, &stats);
    // A second export adds nothing: counters go in as deltas or totals, never twice.
    exported.export(&pipeline, &backend, None, &stats);

    let mut body = String::new();
    render(stats.block(), &mut body);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, reason: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && reason.is_none_or(|r| s.labels.get("reason") == Some(r)))
            .unwrap_or_else(|| panic!("no sample {name} {reason:?} in\n{body}"))
            .value
            .clone()
    };
    assert_eq!(value("bourse_rejects_total", Some("invalid_symbol")), Value::Counter(1.0));
    assert_eq!(value("bourse_rejects_total", Some("insufficient_funds")), Value::Counter(1.0));
    assert_eq!(value("bourse_rejects_total", Some("halted")), Value::Counter(0.0));
    assert_eq!(value("bourse_rejects_total", Some("other_code")), Value::Counter(0.0));
    let rejects_total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "bourse_rejects_total")
        .map(|s| match s.value {
            Value::Counter(v) => v,
            _ => panic!("rejects are counters"),
        })
        .sum();
    assert_eq!(rejects_total, 2.0, "each Order Rejected is counted once");
    assert_eq!(value("bourse_gateway_refusals_total", None), Value::Counter(1.0));
    assert_eq!(value("bourse_duplicates_total", None), Value::Counter(1.0));
    assert_eq!(value("bourse_duplicates_answered_total", None), Value::Counter(1.0));
    assert_eq!(value("bourse_drops_total", Some("session_in_use")), Value::Counter(1.0));
    // …and was answered with Login Rejected 'S' (SoupBinTCP 3.00 section 2.2.2).
    assert_eq!(value("bourse_login_rejected_session_unavailable_total", None), Value::Counter(1.0));
    assert_eq!(value("bourse_login_rejected_not_authorized_total", None), Value::Counter(0.0));
    assert_eq!(value("bourse_login_rejects_silent_total", None), Value::Counter(0.0));
    assert_eq!(value("bourse_kernel_drops_total", None), Value::Counter(0.0));
    assert_eq!(value("bourse_rx_total", None), Value::Counter(7.0));
    assert_eq!(
        scrape.docs["bourse_duplicates_total"],
        "Orders with a UserRefNum already used, never executed again."
    );

    // `bourse stats` shows the same.
    let snap = stats.block().snapshot();
    let mut table = Vec::new();
    bourse::stats::write_table(&mut table, "test", &snap, 0).unwrap();
    let table = String::from_utf8(table).unwrap();
    for row in [["duplicates", "1"], ["gateway_refusals", "1"]] {
        assert!(table.lines().any(|l| l.split_whitespace().eq(row)), "no {row:?} in\n{table}");
    }
    for row in [["reject", "invalid_symbol", "1"], ["reject", "insufficient_funds", "1"]] {
        assert!(table.lines().any(|l| l.split_whitespace().eq(row)), "no {row:?} in\n{table}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw backend that cannot address a peer yet (no ARP reply) refuses its outputs with `TxError::Unresolved`:
/// the pipeline counts every one it could not send, exports the count as `bourse_tx_unresolved_total`, and goes on
/// serving the other firm.
#[test]
fn outputs_to_an_unresolved_destination_are_counted_never_silently_lost() {
    use bourse_appliance::appliance::{set_stats_names, Exported};
    use bourse_appliance::obs::metrics::render;
    use bourse_appliance::obs::statsblock::StatsWriter;
    use prometheus_parse::Value;

    let dir = std::env::temp_dir().join(format!("bourse-pipeline-unresolved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&config(&dir), Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let inbox = vec![
        (a, login("ALPHA", "pw-a")),
        (b, login("BETA", "pw-b")),
        (a, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_500_000, b'0'))),
        (b, ouch_datagram(&enter(1, ouch::Side::Sell, 10, 1_500_000, b'0'))),
    ];
    let mut backend = Script::new(inbox, 64);
    backend.unresolved = Some(b);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..1000 {
        pipeline.poll(&mut backend);
    }
    assert!(pipeline.failure().is_none());
    let refused = backend.stats.tx_unresolved;
    // Beta's Login Accepted, Order Accepted and execution at least.
    assert!(refused >= 3, "{refused} outputs to the unresolved peer");
    assert_eq!(pipeline.counters.tx_unresolved, refused, "the pipeline counts what the backend refused");
    assert_eq!(pipeline.counters.tx_refused, 0, "not mistaken for a full transmit queue");
    assert!(backend.sent().all(|(to, _)| to != b));
    assert!(backend.sent().filter(|(to, _)| *to == a).count() >= 3, "alpha is served all the same");

    let stats = StatsWriter::in_memory();
    set_stats_names(&stats, "script");
    Exported::default().export(&pipeline, &backend, None, &stats);
    let mut body = String::new();
    render(stats.block(), &mut body);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample = scrape.samples.iter().find(|s| s.metric == "bourse_tx_unresolved_total");
    assert_eq!(sample.map(|s| s.value.clone()), Some(Value::Counter(refused as f64)), "in\n{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SoupBinTCP 3.00 on the order-entry port, bytes as sent: a failed login is answered with Login Rejected
/// (section 2.2.2, 'A' for bad credentials, 'S' for a Requested Session that is not the firm's), a login naming
/// the firm's own session is accepted (section 2.3.1), an idle session gets a Server Heartbeat once a second
/// (sections 1.3, 2.2.4) and, after the idle timeout without a word from the client, a Debug Packet notice
/// (section 2.1) and is logged out. Time for the timers is passed explicitly, never waited for.
#[test]
fn logins_are_answered_and_idle_sessions_get_heartbeats_then_a_logout_notice() {
    use bourse_appliance::appliance::setup::session_name_for;
    use bourse_appliance::session::IDLE_LOGOUT_NOTICE;

    let dir = std::env::temp_dir().join(format!("bourse-pipeline-soup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let with_session = |name: &[u8; 10]| {
        let mut l = login("ALPHA", "pw-a");
        // Requested Session at offset 19, 10 bytes (section 2.3.1).
        l[19..29].copy_from_slice(name);
        l
    };
    let own = session_name_for(0);
    let inbox = vec![
        (a, login("ALPHA", "wrong")),
        (a, with_session(b"NOSUCHSESS")),
        (a, with_session(&own.0)),
    ];
    let mut backend = Script::new(inbox, 64);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..100 {
        pipeline.poll(&mut backend);
    }
    let sent: Vec<Vec<u8>> = backend.sent().filter(|(to, _)| *to == a).map(|(_, d)| d.to_vec()).collect();
    assert_eq!(sent[0], [0x00, 0x02, b'J', b'A'], "Login Rejected, Not Authorized");
    assert_eq!(sent[1], [0x00, 0x02, b'J', b'S'], "Login Rejected, Session not available");
    // Login Accepted: length 31, 'A', the session (10), next sequence 1 right-justified in 20 ASCII digits.
    let mut accepted = vec![0x00, 0x1f, b'A'];
    accepted.extend_from_slice(&own.0);
    accepted.extend_from_slice(b"                   1");
    assert_eq!(sent[2], accepted);
    assert_eq!(sent.len(), 3);

    // The login was sent just now: half a second later nothing is owed; past a second, one heartbeat.
    let t0 = pipeline.time.now();
    assert_eq!(pipeline.session_timers(t0 + 500_000_000), 0);
    assert_eq!(pipeline.session_timers(t0 + 1_000_000_000), 1);
    assert_eq!(pipeline.session_timers(t0 + 1_500_000_000), 0, "the heartbeat was data");
    assert_eq!(pipeline.session_timers(t0 + 2_000_000_000), 1);
    // Nothing from the client for the idle timeout (15 s by default): the notice, then no more heartbeats.
    assert_eq!(pipeline.session_timers(t0 + 16_000_000_000), 1);
    assert_eq!(pipeline.session_timers(t0 + 17_000_000_000), 0);
    assert_eq!(pipeline.sessions.peer(0), None);
    for _ in 0..100 {
        pipeline.poll(&mut backend);
    }
    let sent: Vec<Vec<u8>> = backend.sent().filter(|(to, _)| *to == a).map(|(_, d)| d.to_vec()).collect();
    assert_eq!(sent[3..], [vec![0x00, 0x01, b'H'], vec![0x00, 0x01, b'H'], IDLE_LOGOUT_NOTICE.to_vec()]);
    let c = pipeline.sessions.counters();
    assert_eq!((c.login_rejected_not_authorized, c.login_rejected_session_unavailable), (1, 1));
    assert_eq!((c.server_heartbeats, c.idle_logouts), (2, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// MoldUDP64 1.00, "Downstream Packets": a message count of 0xFFFF ends the session. A stop that ends the day
/// journals the feed's end of day (TotalView-ITCH 5.0 section 1.1: 'M', 'E', then 'C', "always the last message
/// sent in any trading day") and then sends End of Session, carrying the next sequence, on the feed and on each
/// logged-in reply stream, after everything else.
#[test]
fn end_of_day_closes_the_feed_and_every_logged_in_stream() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-eod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let inbox = vec![(a, login("ALPHA", "pw-a")), (a, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_490_000, b'0')))];
    let mut backend = Script::new(inbox, 256);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    pipeline.end_of_day().unwrap();
    for _ in 0..100 {
        pipeline.poll(&mut backend);
    }
    assert_eq!(pipeline.waiting(), (0, 0));
    let group = cfg.market_data.group;
    let feed: Vec<&[u8]> = backend.sent().filter(|(to, _)| *to == group).map(|(_, d)| d).collect();
    let last = feed[feed.len() - 1];
    let mut session = [b' '; 10];
    session[..10].copy_from_slice(format!("{:<10}", cfg.market_data.session).as_bytes());
    let next = pipeline.exchange.next_market_sequence().to_be_bytes();
    let mut want = session.to_vec();
    want.extend_from_slice(&next);
    want.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(last, &want[..], "End of Session names the next sequence");
    let before = moldudp64::Packet::new_checked(feed[feed.len() - 2]).unwrap();
    let codes: Vec<(u8, u8)> = before.messages().map(|m| (m[0], m[11])).collect();
    assert_eq!(&codes[codes.len() - 3..], &[(b'S', b'M'), (b'S', b'E'), (b'S', b'C')]);
    let replies: Vec<&[u8]> = backend.sent().filter(|(to, _)| *to == a).map(|(_, d)| d).collect();
    let end = moldudp64::Packet::new_checked(*replies.last().unwrap()).unwrap();
    assert!(end.is_end_of_session());
    assert_eq!(end.sequence(), pipeline.exchange.next_reply_sequence(0));
    assert_eq!(end.count(), 0xffff);
    let _ = std::fs::remove_dir_all(&dir);
}

/// OUCH 5.0 sections 2.5-2.8 through the whole appliance: Disable Order Entry ('G'), an Enter Order refused while
/// disabled (Rejected 0x000C), Enable ('K'), a Mass Cancel of every symbol (an Order Canceled 'U' per open order,
/// an ITCH Order Delete for each, then the Mass Cancel Response 'X'), a resent Mass Cancel answered with that same
/// response and not applied again, and an Account Query answered with the next UserRefNum.
#[test]
fn a_firm_disables_enables_mass_cancels_and_queries_its_account() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-controls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&dir);
    let (mut pipeline, _exporter, _) = build_pipeline(&cfg, Clock::calibrate(Duration::from_millis(20))).unwrap();
    let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000);
    let b = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5001);
    let firm = Alpha::new("ALFA").unwrap();
    let switch = |user_ref| ouch::OrderEntryRequest { user_ref, firm };
    let mass = Inbound::MassCancel(ouch::MassCancelRequest {
        user_ref: 7,
        firm,
        symbol: Alpha::BLANK,
        side: None,
        group_id: None,
    });
    let mut inbox = vec![(a, login("ALPHA", "pw-a")), (b, login("BETA", "pw-b"))];
    for r in 1..=3 {
        inbox.push((a, ouch_datagram(&enter(r, ouch::Side::Buy, 10, 1_490_000 - u64::from(r) * 100, b'0'))));
    }
    inbox.push((b, ouch_datagram(&enter(1, ouch::Side::Buy, 10, 1_490_000, b'0'))));
    for m in [
        Inbound::DisableOrderEntry(switch(4)),
        enter(5, ouch::Side::Buy, 10, 1_490_000, b'0'),
        Inbound::EnableOrderEntry(switch(6)),
        mass,
        mass,
        Inbound::AccountQuery,
    ] {
        inbox.push((a, ouch_datagram(&m)));
    }
    let mut backend = Script::new(inbox, 256);
    while !backend.done() {
        pipeline.poll(&mut backend);
    }
    for _ in 0..200 {
        pipeline.poll(&mut backend);
    }
    assert!(pipeline.failure().is_none());
    assert_eq!(pipeline.waiting(), (0, 0));
    let replies = ouch_replies(backend.sent(), a);
    let codes: Vec<u8> = replies.iter().map(|m| m.code()).collect();
    assert_eq!(codes, b"AAAGJKCCCXXQ", "{replies:?}");
    let response = ouch::MassCancelRequest { user_ref: 7, firm, symbol: Alpha::BLANK, side: None, group_id: None };
    assert!(matches!(replies[9], ouch::Outbound::MassCancelResponse { request, .. } if request == response));
    assert_eq!(replies[9], replies[10], "the resent request gets the same response, byte for byte");
    assert!(matches!(replies[4], ouch::Outbound::OrderRejected { user_ref: 5, reason: 0x000c, .. }));
    let canceled: Vec<(u32, u32, u8)> = replies[6..9]
        .iter()
        .map(|m| match *m {
            ouch::Outbound::OrderCanceled { user_ref, quantity, reason, .. } => (user_ref, quantity, reason),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(canceled, [(1, 10, b'U'), (2, 10, b'U'), (3, 10, b'U')], "best bid first");
    assert!(matches!(replies[11], ouch::Outbound::AccountQueryResponse { next_user_ref: 8, .. }));
    assert_eq!(pipeline.counters.duplicates_answered, 1);
    assert_eq!(pipeline.exchange.engine().orders_open(), 1, "beta's order stays");
    let group = cfg.market_data.group;
    let deletes = backend
        .sent()
        .filter(|(to, _)| *to == group)
        .filter_map(|(_, d)| moldudp64::Packet::new_checked(d).ok())
        .map(|p| p.messages().filter(|m| m[0] == b'D').count())
        .sum::<usize>();
    assert_eq!(deletes, 3, "each canceled order leaves the feed");
    let _ = std::fs::remove_dir_all(&dir);
}
