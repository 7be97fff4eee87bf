//! Helpers shared by the hot-standby tests: `standby.rs` (both nodes on loopback) and `failover_netns.rs` (each
//! node in its own network namespace, see [`netns`]).
//!
//! - [`Node`]: a `bourse` child process (optionally inside a namespace) whose stderr is collected line by line;
//!   it is killed when dropped (a failing test leaves no busy-polling appliance behind) and, through
//!   `PR_SET_PDEATHSIG`, when the test process dies.
//! - [`node_toml`] and [`start_pair`]: the primary's and the standby's configurations, and the two nodes started
//!   and caught up.
//! - [`wal_records`], [`check_logs_agree`], [`order_counts`]: what the WALs hold.
//! - [`exact_client`]: firm GAMMA entering one order per millisecond and recording exactly which were answered.
//! - [`md`]: a MoldUDP64 market-data client that asks for retransmission of what it missed.
//! - [`firm`]: a firm on a raw socket keeping every reply's bytes by sequence (reply continuity tests).
//! - [`pcap`]: datagrams into a pcap for tshark's MoldUDP64 dissector, and its decoding of them.
//!
//! Use from a test file with `mod support;` (the folder form keeps cargo from treating it as a test of its own).
#![allow(dead_code)]
#![allow(unsafe_code)]

pub mod firm;
pub mod md;
pub mod netns;
pub mod pcap;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_appliance::config::Config;
use bourse::demo::{free_udp_port, load_options, TempDir};
use bourse::load::client::FirmConn;
use bourse::load::mix::Op;
use bourse::load::LoadOptions;
use bourse_engine::{Command as EngineCommand, Input, SessionId, Side, UserRef};
use bourse_nic::wire::alpha::Alpha;
use bourse_persist::wal::scan::{scan_log, ScanOptions, Visit};
use bourse_persist::wal::RecordKind;

/// Silence before promotion in these tests: far above the 5 ms default, because on a loaded two-vCPU host a
/// process can lose its core for longer than that and a spurious promotion would fail the test for nothing.
pub const PROMOTE_AFTER_MS: u64 = 400;
/// Bound on kill → promoted node taking input (promotion timeout + recovery + start-up), generous for CI hosts.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(3);

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where one node takes orders and publishes market data, and where its firms log in from.
#[derive(Clone, Copy, Debug)]
pub struct NodeAddrs {
    /// Order entry (`[backend] bind`).
    pub order: SocketAddrV4,
    /// Market data destination (`[market_data] group`): unicast, or a multicast group the node sends to from its
    /// order-entry address's interface.
    pub md_group: SocketAddrV4,
    /// MoldUDP64 retransmission server (`[market_data] retransmit_bind`), if any.
    pub retransmit: Option<SocketAddrV4>,
    /// The firms' allowed source address.
    pub firm_source: Ipv4Addr,
}

impl NodeAddrs {
    /// Everything on 127.0.0.1, fresh ports, no retransmission server.
    pub fn loopback() -> NodeAddrs {
        NodeAddrs {
            order: SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_udp_port().unwrap()),
            md_group: SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_udp_port().unwrap()),
            retransmit: None,
            firm_source: Ipv4Addr::LOCALHOST,
        }
    }
}

/// One node's configuration: socket backend, msync WAL in `wal`, the demo market, and the `[mirror]` text.
pub fn node_toml(name: &str, wal: &Path, addrs: &NodeAddrs, mirror: &str) -> String {
    // The firms' address is the one subscriber: the feed handlers asking for gaps run there.
    let mut retransmit = addrs
        .retransmit
        .map(|a| format!("retransmit_bind = \"{a}\"\nretransmit_subscribers = [\"{}\"]\n", addrs.firm_source))
        .unwrap_or_default();
    if addrs.md_group.ip().is_multicast() {
        retransmit += &format!("multicast_interface = \"{}\"\n", addrs.order.ip());
    }
    format!(
        r#"
[appliance]
name = "{name}"
[backend]
kind = "socket"
bind = "{order}"
[market_data]
group = "{md}"
session = "BOURSESB"
{retransmit}
[wal]
dir = "{wal}"
mode = "msync"
segment_bytes = 67108864
{mirror}
"#,
        order = addrs.order,
        md = addrs.md_group,
        wal = wal.display(),
    ) + &bourse_appliance::config::demo_market_toml(3, &addrs.firm_source.to_string())
}

/// A `bourse` child process ([`bourse::node::Node`]) whose failures fail the test.
pub struct Node(pub bourse::node::Node);

impl Node {
    /// `bourse <args> --config <config>` on the host.
    pub fn spawn(args: &[&str], config: &Path) -> Node {
        Node::start(Command::new(env!("CARGO_BIN_EXE_bourse")), args, config)
    }

    /// `ip netns exec <ns> bourse <args> --config <config>`: `ip` execs the program in place, so the child's pid is
    /// bourse's own and signals reach it directly.
    pub fn spawn_in(ns: &str, args: &[&str], config: &Path) -> Node {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(env!("CARGO_BIN_EXE_bourse"));
        Node::start(c, args, config)
    }

    fn start(command: Command, args: &[&str], config: &Path) -> Node {
        Node(bourse::node::Node::spawn(&format!("bourse {}", args.join(" ")), command, args, config).expect("spawning bourse"))
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.0.child
    }

    /// The first stderr line containing `needle`, if one arrived yet.
    pub fn find(&self, needle: &str) -> Option<String> {
        self.0.find(needle)
    }

    /// Waits for a stderr line containing `needle`; returns it. Fails the test if the process exits first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.0.wait_for(needle, timeout).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits at most `timeout` for a line containing `needle`, without failing.
    pub fn poll_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.0.poll_for(needle, timeout)
    }

    pub fn log(&self) -> String {
        self.0.log()
    }

    pub fn kill9(&mut self) {
        self.0.kill9();
    }

    /// SIGTERM (the node closes its WAL cleanly and prints its summary), SIGKILL after 5 s.
    pub fn terminate(&mut self) {
        self.0.terminate(Duration::from_secs(5));
    }
}

#[allow(unused_imports)] // not every test file sends signals
pub use bourse::node::signal;

/// A WAL's records by seq: (epoch, kind, input).
pub type Log = BTreeMap<u64, (u32, RecordKind, Input)>;

/// Every record of a WAL directory.
pub fn wal_records(dir: &Path) -> Log {
    let mut out = BTreeMap::new();
    scan_log(dir, ScanOptions { from_seq: 0, live: true }, |_, _, r| {
        out.insert(r.input.seq, (r.epoch, r.kind, r.input));
        Visit::Continue
    })
    .unwrap_or_else(|e| panic!("scanning {}: {e}", dir.display()));
    out
}

pub fn is_order(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::NewOrder
            | RecordKind::Cancel
            | RecordKind::Replace
            | RecordKind::OrderEchoed
            | RecordKind::ReplaceEchoed
    )
}

/// How often each order — (session, UserRefNum) of a New Order, or the new UserRefNum of a Replace — appears in
/// `records`. Every count above one is an order entered twice.
pub fn order_counts<'a>(
    records: impl IntoIterator<Item = (&'a u64, &'a (u32, RecordKind, Input))>,
) -> BTreeMap<(SessionId, UserRef), u32> {
    let mut counts = BTreeMap::new();
    for (_, (_, _, input)) in records {
        let key = match input.command {
            EngineCommand::NewOrder(o) => (o.session, o.user_ref),
            EngineCommand::Replace(r) => (r.session, r.new_user_ref),
            _ => continue,
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Orders journaled more than once, with their counts.
pub fn duplicated_orders(log: &Log) -> Vec<((SessionId, UserRef), u32)> {
    order_counts(log).into_iter().filter(|(_, n)| *n > 1).collect()
}

/// The primary and the standby running, the standby caught up.
pub struct Pair {
    _tmp: TempDir,
    pub primary_dir: PathBuf,
    pub standby_dir: PathBuf,
    pub primary_cfg: Config,
    pub standby_cfg: Config,
    pub primary: Node,
    pub standby: Node,
}

/// Where the pair runs.
pub struct PairSpec<'a> {
    pub tag: &'a str,
    pub primary: NodeAddrs,
    pub standby: NodeAddrs,
    /// The standby's mirror listening address (the primary dials it).
    pub mirror: SocketAddr,
    /// (primary's namespace, standby's namespace), or both on the host.
    pub namespaces: Option<(&'a str, &'a str)>,
}

impl PairSpec<'_> {
    /// Both nodes on loopback.
    pub fn loopback(tag: &str) -> PairSpec<'_> {
        PairSpec {
            tag,
            primary: NodeAddrs::loopback(),
            standby: NodeAddrs::loopback(),
            mirror: SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port())),
            namespaces: None,
        }
    }
}

/// The primary's acknowledgement rule in pair tests: `BOURSE_PAIR_ACK` (`replicated` or `durable`; ci/failover-test.sh
/// alternates them between rounds), `replicated` by default. Both promise that no acknowledged order is lost when
/// the primary is killed.
pub fn pair_ack() -> String {
    match std::env::var("BOURSE_PAIR_ACK") {
        Ok(a) if a == "replicated" || a == "durable" => a,
        Ok(a) => panic!("BOURSE_PAIR_ACK={a:?}: expected replicated or durable"),
        Err(_) => "replicated".to_string(),
    }
}

/// Starts the standby, then the primary (`ack` from [`pair_ack`]), and waits until the standby caught up.
pub fn start_pair(spec: &PairSpec<'_>) -> Pair {
    let tmp = TempDir::new(&format!("bourse-standby-{}", spec.tag)).unwrap();
    let (primary_dir, standby_dir) = (tmp.path().join("primary"), tmp.path().join("standby"));
    let (pid, tag, mirror) = (std::process::id(), spec.tag, spec.mirror);
    let ack = pair_ack();
    eprintln!("pair {tag}: ack = \"{ack}\"");
    let primary_text = node_toml(
        &format!("sbp-{tag}-{pid}"),
        &primary_dir,
        &spec.primary,
        &format!(
            "[mirror]\nrole = \"primary\"\nstandby_addr = \"{mirror}\"\nack = \"{ack}\"\n\
             promote_after_ms = {PROMOTE_AFTER_MS}\n"
        ),
    );
    let standby_text = node_toml(
        &format!("sbs-{tag}-{pid}"),
        &standby_dir,
        &spec.standby,
        &format!("[mirror]\nrole = \"standby\"\nlisten = \"{mirror}\"\npromote_after_ms = {PROMOTE_AFTER_MS}\n"),
    );
    let (pp, sp) = (tmp.path().join("primary.toml"), tmp.path().join("standby.toml"));
    std::fs::write(&pp, &primary_text).unwrap();
    std::fs::write(&sp, &standby_text).unwrap();
    let spawn = |ns: Option<&str>, args: &[&str], config: &Path| match ns {
        Some(ns) => Node::spawn_in(ns, args, config),
        None => Node::spawn(args, config),
    };
    let (ns_p, ns_s) = spec.namespaces.map_or((None, None), |(p, s)| (Some(p), Some(s)));
    let mut standby = spawn(ns_s, &["standby"], &sp);
    standby.wait_for("listening for the primary", Duration::from_secs(10));
    let mut primary = spawn(ns_p, &["run"], &pp);
    primary.wait_for("mirror: primary epoch 1", Duration::from_secs(10));
    standby.wait_for("caught up with the primary", Duration::from_secs(10));
    Pair {
        primary_cfg: Config::parse(&primary_text).unwrap(),
        standby_cfg: Config::parse(&standby_text).unwrap(),
        _tmp: tmp,
        primary_dir,
        standby_dir,
        primary,
        standby,
    }
}

/// The seq the standby promoted at, from its log line.
pub fn promoted_seq(line: &str) -> u64 {
    let after = line.split("at seq ").nth(1).expect("promotion line names the seq");
    after.split_whitespace().next().unwrap().parse().expect("a seq")
}

/// The standby's log holds the primary's records unchanged through the promotion point, and its own epoch after.
pub fn check_logs_agree(pair: &Pair, promoted_at: u64) -> (Log, Log) {
    let primary = wal_records(&pair.primary_dir);
    let standby = wal_records(&pair.standby_dir);
    for (seq, (epoch, kind, input)) in &standby {
        if *seq <= promoted_at {
            let p = primary
                .get(seq)
                .unwrap_or_else(|| panic!("standby seq {seq} ({kind:?}) is not in the primary's log"));
            assert_eq!((p.1, p.2), (*kind, *input), "seq {seq} differs between primary and standby");
            assert_eq!(*epoch, 1);
        } else {
            assert_eq!(*epoch, 2, "seq {seq} was appended after promotion and must carry the new epoch");
        }
    }
    assert_eq!(standby.range(..=promoted_at).count() as u64, promoted_at, "the standby's log has no holes");
    (primary, standby)
}

/// The load generator drives the first two firms; the third is the exact-check client's. The firms' sockets bind
/// the configuration's allowed source address.
pub fn two_firm_load(config: &Config, rate: f64, duration: Duration, seed: u64) -> LoadOptions {
    let mut opts = load_options(config, vec![rate], duration, seed).unwrap();
    opts.firms.truncate(2);
    opts.mix.firms.truncate(2);
    opts.md = None;
    opts.bind_ip = config.firms[0].allowed_sources[0].parse().expect("an IPv4 allowed source");
    opts
}

/// GAMMA's engine session (the third demo firm).
pub const GAMMA_SESSION: SessionId = 2;

/// When the exact client stops.
pub enum Until {
    /// Once requests are outstanding and nothing was answered for this long (the primary is gone), or once
    /// sending ended and everything was answered.
    Silence(Duration),
    /// When the flag is set (it keeps listening after sending ended, so a late answer is seen).
    Flag(Arc<AtomicBool>),
}

/// How long the exact client sends.
pub enum Sending {
    For(Duration),
    /// Until the flag is set (e.g. a fixed time after an event whose own timing a loaded host may delay).
    UntilFlag(Arc<AtomicBool>),
}

impl From<Duration> for Sending {
    fn from(d: Duration) -> Sending {
        Sending::For(d)
    }
}

/// A stop flag that is set when dropped, so a failing test does not leave a [`Until::Flag`] client running.
pub struct StopFlag(pub Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag(Arc::new(AtomicBool::new(false)))
    }

    pub fn until(&self) -> Until {
        Until::Flag(Arc::clone(&self.0))
    }

    pub fn sending(&self) -> Sending {
        Sending::UntilFlag(Arc::clone(&self.0))
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.set();
    }
}

/// What the exact client saw: order `i + 1` was sent at `sent[i]`; each answer is (UserRefNum, arrival time).
#[derive(Debug, Default)]
pub struct Exact {
    pub sent: Vec<Instant>,
    pub answers: Vec<(UserRef, Instant)>,
}

impl Exact {
    /// The UserRefNums answered: exactly the orders acknowledged to GAMMA.
    pub fn acknowledged(&self) -> Vec<UserRef> {
        self.answers.iter().map(|(r, _)| *r).collect()
    }

    pub fn sent_at(&self, user_ref: UserRef) -> Instant {
        self.sent[user_ref as usize - 1]
    }
}

/// Firm GAMMA (engine session 2), its socket bound to `bind_ip`, enters one resting 1-share buy per millisecond at
/// `target` while `sending` says so, and records every answer with its arrival time.
pub fn exact_client(bind_ip: Ipv4Addr, target: SocketAddrV4, sending: impl Into<Sending>, until: Until) -> Exact {
    let sending_rule = sending.into();
    let mut conn = FirmConn::open("GAMMA", "gamma-pw", bind_ip, target).unwrap();
    match conn.login(Duration::from_secs(5)) {
        Ok(_) => {}
        // A kill drawn early enough lands before the login: then nothing was sent, so nothing was acknowledged.
        Err(e) if e.is::<bourse::load::client::LoginTimeout>() => {
            eprintln!("GAMMA: {e:#}; nothing sent, nothing acknowledged");
            return Exact::default();
        }
        Err(e) => panic!("GAMMA's login: {e:#}"),
    }
    let symbol = Alpha::new("AAPL").unwrap();
    let clock = Instant::now();
    let mut out = Exact::default();
    let mut buf = [0u8; 2048];
    let mut last_answer = clock;
    let mut next_send = clock;
    let mut sent: u16 = 0;
    loop {
        let now = Instant::now();
        let sending = match &sending_rule {
            Sending::For(run_for) => now.duration_since(clock) < *run_for,
            Sending::UntilFlag(stop) => !stop.load(Ordering::Relaxed),
        };
        if sending && now >= next_send && sent < u16::MAX {
            sent += 1;
            let op = Op::Enter { user_ref: u32::from(sent), side: Side::Buy, qty: 1, symbol: 0, price: 1_490_000, ioc: false };
            // The row is the UserRefNum, so each answer names the order it answers.
            conn.send(&op, &symbol, sent, 0, clock);
            out.sent.push(now);
            next_send = now + Duration::from_millis(1);
        }
        let before = out.answers.len();
        conn.poll(&mut buf, 32, clock, &mut |a| out.answers.push((u32::from(a.row), Instant::now())));
        if out.answers.len() > before {
            last_answer = now;
        }
        let outstanding = out.answers.len() < usize::from(sent);
        match &until {
            Until::Silence(silence) => {
                if outstanding && now.duration_since(last_answer) > *silence {
                    break; // the primary is gone: what was answered by now is all that was acknowledged
                }
                if !sending && !outstanding {
                    break;
                }
            }
            Until::Flag(flag) => {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    out
}
