//! A former primary is fenced, then re-synced as the new primary's standby, end to end with the `bourse` binary on
//! loopback (no privileges needed: the primary is cut off by freezing it with SIGSTOP instead of dropping a link).
//!
//! 1. Primary P (`ack = "mirrored"`) and standby S; orders flow and are answered.
//! 2. P is frozen. Firm GAMMA sends orders to it anyway; they wait in P's socket buffer. S hears nothing,
//!    promotes itself to epoch 2 and serves.
//! 3. P thaws: it journals GAMMA's orders (epoch 1, past the point where epoch 2 began), reconnects to S's mirror
//!    port, is answered with Fence, prints FENCED and acknowledges none of them.
//! 4. P stops and is restarted as a standby of S (S's configuration names P's mirror address): it learns from S's
//!    Fence that its log runs past the new epoch's start, cuts it back (keeping the cut records aside), follows S
//!    in epoch 2 and catches up. Both logs are then identical, record for record, epochs included.

mod support;

use std::net::Ipv4Addr;

use std::time::{Duration, Instant};

use bourse_appliance::config::Config;
use bourse::demo::{load_options, TempDir};
use bourse::load::client::FirmConn;
use bourse::load::mix::Op;
use bourse::load::run_load;
use bourse_engine::Side;
use bourse_nic::wire::alpha::Alpha;
use support::{free_tcp_port, node_toml, promoted_seq, signal, wal_records, Node, NodeAddrs};

const PROMOTE_AFTER_MS: u64 = 300;
const BOUND: Duration = Duration::from_secs(10);

#[test]
fn a_fenced_former_primary_rejoins_as_standby_after_cutting_its_diverged_records() {
    let tmp = TempDir::new("bourse-rejoin").unwrap();
    let (p_dir, s_dir) = (tmp.path().join("p"), tmp.path().join("s"));
    let (s_mirror, p_mirror) = (free_tcp_port(), free_tcp_port());
    // P keeps its addresses when it comes back as a standby.
    let (p_addrs, s_addrs) = (NodeAddrs::loopback(), NodeAddrs::loopback());
    let pid = std::process::id();
    let p_text = node_toml(
        &format!("rjp-{pid}"),
        &p_dir,
        &p_addrs,
        &format!(
            "[mirror]\nrole = \"primary\"\nstandby_addr = \"127.0.0.1:{s_mirror}\"\nack = \"mirrored\"\n\
             promote_after_ms = {PROMOTE_AFTER_MS}\n"
        ),
    );
    // S names P's mirror address: once promoted it ships its log there, to P restarted as its standby.
    let s_text = node_toml(
        &format!("rjs-{pid}"),
        &s_dir,
        &s_addrs,
        &format!(
            "[mirror]\nrole = \"standby\"\nlisten = \"127.0.0.1:{s_mirror}\"\nstandby_addr = \"127.0.0.1:{p_mirror}\"\n\
             promote_after_ms = {PROMOTE_AFTER_MS}\n"
        ),
    );
    let p_again_text = node_toml(
        &format!("rjq-{pid}"),
        &p_dir,
        &p_addrs,
        &format!("[mirror]\nrole = \"standby\"\nlisten = \"127.0.0.1:{p_mirror}\"\npromote_after_ms = 60000\n"),
    );
    let (p_cfg_path, s_cfg_path, q_cfg_path) = (tmp.path().join("p.toml"), tmp.path().join("s.toml"), tmp.path().join("q.toml"));
    std::fs::write(&p_cfg_path, &p_text).unwrap();
    std::fs::write(&s_cfg_path, &s_text).unwrap();
    std::fs::write(&q_cfg_path, &p_again_text).unwrap();
    let (p_cfg, s_cfg) = (Config::parse(&p_text).unwrap(), Config::parse(&s_text).unwrap());

    // 1. A healthy pair.
    let mut s = Node::spawn(&["standby"], &s_cfg_path);
    s.wait_for("listening for the primary", BOUND);
    let mut p = Node::spawn(&["run"], &p_cfg_path);
    p.wait_for("mirror: primary epoch 1", BOUND);
    s.wait_for("caught up with the primary", BOUND);
    let mut opts = load_options(&p_cfg, vec![1_000.0], Duration::from_millis(400), 3).unwrap();
    opts.firms.truncate(2);
    opts.mix.firms.truncate(2);
    opts.md = None;
    let r1 = run_load(&opts).unwrap();
    assert_eq!((r1.lost, r1.replied), (0, r1.sent), "a healthy pair answers everything");

    // 2. P frozen; GAMMA's orders queue up at it; S promotes.
    let target = p_addrs.order;
    let mut gamma = FirmConn::open("GAMMA", "gamma-pw", Ipv4Addr::LOCALHOST, target).unwrap();
    gamma.login(Duration::from_secs(5)).unwrap();
    signal(p.pid(), libc::SIGSTOP);
    let symbol = Alpha::new("AAPL").unwrap();
    let clock = Instant::now();
    for i in 1..=20u16 {
        let op = Op::Enter { user_ref: u32::from(i), side: Side::Buy, qty: 1, symbol: 0, price: 1_490_000, ioc: false };
        gamma.send(&op, &symbol, i, 0, clock);
    }
    let promoted = s.wait_for("PROMOTED to epoch 2", BOUND);
    s.wait_for("SERVING on", BOUND);
    let at = promoted_seq(&promoted);

    // 3. P thaws, journals the queued orders in epoch 1, hears S's Fence, and acknowledges none of them.
    signal(p.pid(), libc::SIGCONT);
    p.wait_for("FENCED by epoch 2", BOUND);
    let mut answered = 0;
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        gamma.poll(&mut buf, 32, clock, &mut |_| answered += 1);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(answered, 0, "a fenced former primary acknowledged orders");
    p.terminate();
    let p_log = wal_records(&p_dir);
    let p_last = *p_log.keys().next_back().unwrap();
    assert!(p_last > at, "P journaled the queued orders past the promotion point ({p_last} vs {at})");

    // 4. P rejoins as S's standby: cut, re-follow in epoch 2, catch up; S keeps serving meanwhile.
    let mut q = Node::spawn(&["standby"], &q_cfg_path);
    let cut = q.wait_for("re-following in epoch 2", BOUND);
    assert!(cut.contains(&format!("began after seq {at}")), "{cut}");
    q.wait_for("caught up with the primary", BOUND);
    let mut opts = load_options(&s_cfg, vec![1_000.0], Duration::from_millis(300), 4).unwrap();
    opts.firms.truncate(2);
    opts.mix.firms.truncate(2);
    opts.md = None;
    opts.mix.first_user_ref = r1.next_user_ref;
    let r2 = run_load(&opts).unwrap();
    assert_eq!((r2.lost, r2.replied), (0, r2.sent), "the promoted node serves");
    std::thread::sleep(Duration::from_millis(300));
    s.terminate();
    q.terminate();

    let (s_log, q_log) = (wal_records(&s_dir), wal_records(&p_dir));
    assert!(s_log.len() as u64 > at, "S served new orders in epoch 2");
    assert!(q_log.len() >= s_log.len() - 5, "the rejoined node caught up: {} of {} records", q_log.len(), s_log.len());
    for (a, b) in s_log.iter().zip(q_log.iter()) {
        assert_eq!(a, b, "logs differ at seq {}", a.0);
    }
    assert!(q_log.range(at + 1..).all(|(_, r)| r.0 == 2), "after the cut, only epoch 2 records");
    // Restarted with its old primary configuration (epoch 1), the node refuses to serve a journal of epoch 2.
    let mut stale = Node::spawn(&["run"], &p_cfg_path);
    stale.wait_for("configured for epoch 1", BOUND);
    let aside: Vec<_> = std::fs::read_dir(&p_dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("diverged-")).collect();
    assert_eq!(aside.len(), 1, "the cut records are kept aside");
    eprintln!(
        "rejoin: promoted at seq {at}; P had run to seq {p_last}; after rejoining both logs agree on {} records",
        q_log.len().min(s_log.len())
    );
}
