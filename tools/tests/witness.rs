//! The pair with etcd as its witness (README, "Witness"): a real single-member etcd started here on free ports in a
//! temporary directory, the primary and the standby on loopback, firm GAMMA entering one order per millisecond on
//! the primary (`ack = "durable"`), and faults injected by killing nodes or by cutting test-controlled TCP proxies
//! that stand between the primary and its standby (the mirror link) and between the primary and etcd.
//!
//! Every case checks that no acknowledged order is lost (each one GAMMA saw acknowledged is journaled exactly once
//! on the node that serves at the end) and that never two nodes serve.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse::demo::TempDir;
use bourse::etcd::{EtcdCluster, EtcdMember};
use support::{exact_client, free_tcp_port, node_toml, order_counts, wal_records, Exact, Node, NodeAddrs, StopFlag};
use support::{GAMMA_SESSION, PROMOTE_AFTER_MS};

const STEP: Duration = Duration::from_secs(10);

/// The cases run one at a time: three pairs and three etcds at once on two cores would starve the mirror loops
/// into promotions nobody asked for.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// This test's etcd, or `None` (and a `skipped:` line) when the etcd binary is not installed.
fn etcd(tag: &str) -> Option<EtcdMember> {
    if !bourse::etcd::available() {
        eprintln!("skipped: the etcd binary is absent (ci/setup.sh installs etcd-server)");
        return None;
    }
    Some(EtcdMember::start(tag).expect("starting etcd"))
}

/// A TCP forwarder whose link can be cut (every connection closed, new ones closed at once) and healed.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (c, s) = (Arc::clone(&cut), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((down, _)) if !c.load(Ordering::Relaxed) => {
                        let Ok(up) = TcpStream::connect(upstream) else { continue };
                        for (from, to) in [(&down, &up), (&up, &down)] {
                            let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                            let (c, s) = (Arc::clone(&c), Arc::clone(&s));
                            std::thread::spawn(move || pump(from, to, &c, &s));
                        }
                    }
                    Ok(_) => {} // cut: dropped, so the dialler sees the connection close
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Proxy { addr, cut, stop }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(5)));
    let _ = to.set_nodelay(true);
    let mut buf = vec![0u8; 64 << 10];
    while !cut.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if cut.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The two nodes' configurations: node "a" primary, node "b" standby, each naming the witness (through `a_etcd`
/// for the primary, which may be a proxy) and the primary dialling the standby through `a_mirror`.
struct PairFiles {
    tmp: TempDir,
    primary: PathBuf,
    standby: PathBuf,
    a: NodeAddrs,

}

impl PairFiles {
    fn new(tag: &str, etcd: &[SocketAddr], a_etcd: &[SocketAddr], listen: SocketAddr, a_mirror: SocketAddr) -> PairFiles {
        let tmp = TempDir::new(&format!("bourse-witness-{tag}")).unwrap();
        let (a, b) = (NodeAddrs::loopback(), NodeAddrs::loopback());
        let pid = std::process::id();
        let witness = |node: &str, peer: &str, at: &[SocketAddr]| {
            let at: Vec<String> = at.iter().map(|a| format!("\"{a}\"")).collect();
            format!(
                "[witness]\nendpoints = [{}]\nprefix = \"/bourse-test/{tag}-{pid}\"\nnode = \"{node}\"\n\
                 peer = \"{peer}\"\ntimeout_ms = 500\n",
                at.join(", ")
            )
        };
        let primary = node_toml(
            &format!("wa-{tag}-{pid}"),
            &tmp.path().join("a"),
            &a,
            &format!(
                "[mirror]\nrole = \"primary\"\nstandby_addr = \"{a_mirror}\"\nack = \"durable\"\n\
                 promote_after_ms = {PROMOTE_AFTER_MS}\n{}",
                witness("a", "b", a_etcd)
            ),
        );
        // The standby, once promoted, mirrors to the old primary's listening port if that one rejoins; unused here.
        let standby = node_toml(
            &format!("wb-{tag}-{pid}"),
            &tmp.path().join("b"),
            &b,
            &format!(
                "[mirror]\nrole = \"standby\"\nlisten = \"{listen}\"\npromote_after_ms = {PROMOTE_AFTER_MS}\n{}",
                witness("b", "a", etcd)
            ),
        );
        let (pp, sp) = (tmp.path().join("a.toml"), tmp.path().join("b.toml"));
        std::fs::write(&pp, primary).unwrap();
        std::fs::write(&sp, standby).unwrap();
        PairFiles { tmp, primary: pp, standby: sp, a }
    }

    fn dir(&self, node: &str) -> PathBuf {
        self.tmp.path().join(node)
    }
}

fn start_standby(files: &PairFiles) -> Node {
    let mut standby = Node::spawn(&["standby"], &files.standby);
    standby.wait_for("listening for the primary", STEP);
    standby
}

/// GAMMA's client on its own thread until `stop`.
fn client(target: std::net::SocketAddrV4, stop: &StopFlag) -> std::thread::JoinHandle<Exact> {
    let (sending, until) = (stop.sending(), stop.until());
    std::thread::spawn(move || exact_client(Ipv4Addr::LOCALHOST, target, sending, until))
}

/// Every order GAMMA saw acknowledged is journaled exactly once in `dir`, and nothing is journaled twice.
fn check_no_acknowledged_loss(exact: &Exact, dir: &Path) {
    let counts = order_counts(&wal_records(dir));
    let acked = exact.acknowledged();
    assert!(!acked.is_empty(), "GAMMA was acknowledged nothing");
    let lost: Vec<_> = acked.iter().filter(|r| counts.get(&(GAMMA_SESSION, **r)).copied().unwrap_or(0) != 1).collect();
    assert!(lost.is_empty(), "acknowledged orders not journaled exactly once on the serving node: {lost:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "orders journaled twice: {twice:?}");
}

fn serving(node: &Node) -> bool {
    node.find("SERVING on").is_some()
}

fn millis_in(line: &str, before: &str) -> f64 {
    let head = line.split(before).next().unwrap_or("");
    head.rsplit(' ').find_map(|w| w.parse().ok()).unwrap_or(f64::NAN)
}

#[test]
fn the_standby_dies_the_primary_continues_alone_then_the_standby_rejoins_and_takes_over_losing_nothing() {
    let _one = serial();
    let Some(etcd) = etcd("standby-dies") else { return };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let files = PairFiles::new("sd", &[etcd.client], &[etcd.client], listen, listen);
    let mut standby = start_standby(&files);
    let mut primary = Node::spawn(&["run"], &files.primary);
    primary.wait_for("witness: a is primary", STEP);
    standby.wait_for("caught up with the primary", STEP);
    let stop = StopFlag::new();
    let gamma = client(files.a.order, &stop);
    std::thread::sleep(Duration::from_millis(300));

    standby.kill9();
    let killed = Instant::now();
    let alone = primary.wait_for("acknowledging alone", STEP);
    let pause = millis_in(&alone, " ms after it fell silent");
    std::thread::sleep(Duration::from_millis(300));

    // Back from its own journal: caught up by the primary, then re-added before it may promote.
    let mut standby = start_standby(&files);
    standby.wait_for("caught up with the primary", STEP);
    primary.wait_for("re-added to the members", STEP);
    std::thread::sleep(Duration::from_millis(300));

    primary.kill9();
    let won = standby.wait_for("won the promotion to epoch 2", STEP);
    standby.wait_for("SERVING on", STEP);
    stop.set();
    let exact = gamma.join().unwrap();
    standby.terminate();
    check_no_acknowledged_loss(&exact, &files.dir("b"));
    let after_kill = exact.answers.iter().filter(|(_, t)| *t > killed).count();
    eprintln!(
        "witness: standby killed → primary alone after {pause:.1} ms; {} orders acknowledged ({after_kill} after the \
         standby's kill); {won}",
        exact.answers.len()
    );
}

#[test]
fn a_cut_mirror_link_with_the_witness_reachable_leaves_exactly_one_node_serving() {
    let _one = serial();
    let Some(etcd) = etcd("cut-link") else { return };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let link = Proxy::start(listen);
    let files = PairFiles::new("cl", &[etcd.client], &[etcd.client], listen, link.addr);
    let mut standby = start_standby(&files);
    let mut primary = Node::spawn(&["run"], &files.primary);
    primary.wait_for("witness: a is primary", STEP);
    standby.wait_for("caught up with the primary", STEP);
    let stop = StopFlag::new();
    let gamma = client(files.a.order, &stop);
    std::thread::sleep(Duration::from_millis(300));

    link.set_cut(true);
    // Both ends see the silence; one compare-and-swap wins.
    let deadline = Instant::now() + STEP;
    let (mut primary_won, mut standby_won) = (false, false);
    while Instant::now() < deadline && !(primary_won || standby_won) {
        primary_won = primary.find("acknowledging alone").is_some();
        standby_won = standby.find("won the promotion").is_some();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(primary_won || standby_won, "nobody won:\n{}\n---\n{}", primary.log(), standby.log());
    // Time for the loser to learn it lost, and for any mistaken second server to show itself.
    std::thread::sleep(Duration::from_millis(3 * PROMOTE_AFTER_MS));
    stop.set();
    let exact = gamma.join().unwrap();
    if primary_won {
        assert!(standby.find("NOT promoting").is_some(), "the standby must have been refused:\n{}", standby.log());
        assert!(!serving(&standby), "the standby serves beside the primary:\n{}", standby.log());
        // Healed, the refused standby follows again from its journal, catches up and is re-added.
        link.set_cut(false);
        primary.wait_for("re-added to the members", STEP);
        assert!(!serving(&standby), "the standby serves beside the primary:\n{}", standby.log());
        primary.terminate();
        check_no_acknowledged_loss(&exact, &files.dir("a"));
    } else {
        standby.wait_for("SERVING on", STEP);
        primary.wait_for("REPLACED", STEP);
        assert!(primary.find("acknowledging alone").is_none(), "the primary went on alone:\n{}", primary.log());
        standby.terminate();
        check_no_acknowledged_loss(&exact, &files.dir("b"));
    }
    eprintln!("witness: cut link → {} serves", if primary_won { "the primary" } else { "the promoted standby" });
}

#[test]
fn a_primary_cut_from_standby_and_witness_stops_acknowledging_and_the_standby_promotes() {
    let _one = serial();
    let Some(etcd) = etcd("isolated") else { return };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let link = Proxy::start(listen);
    let to_etcd = Proxy::start(etcd.client);
    let files = PairFiles::new("is", &[etcd.client], &[to_etcd.addr], listen, link.addr);
    let mut standby = start_standby(&files);
    let mut primary = Node::spawn(&["run"], &files.primary);
    primary.wait_for("witness: a is primary", STEP);
    standby.wait_for("caught up with the primary", STEP);
    let stop = StopFlag::new();
    let gamma = client(files.a.order, &stop);
    std::thread::sleep(Duration::from_millis(300));

    to_etcd.set_cut(true);
    link.set_cut(true);
    let cut_at = Instant::now();
    standby.wait_for("won the promotion to epoch 2", STEP);
    standby.wait_for("SERVING on", STEP);
    std::thread::sleep(Duration::from_millis(PROMOTE_AFTER_MS));
    stop.set();
    let exact = gamma.join().unwrap();
    assert!(primary.find("acknowledging alone").is_none(), "the isolated primary went on alone:\n{}", primary.log());
    // Whatever it acknowledged after the cut is on the promoted standby too: it held everything the standby lacked.
    check_no_acknowledged_loss(&exact, &files.dir("b"));
    let late = exact.answers.iter().filter(|(_, t)| *t > cut_at + Duration::from_millis(PROMOTE_AFTER_MS)).count();

    // Once it reaches the witness again it learns it was replaced.
    to_etcd.set_cut(false);
    primary.wait_for("REPLACED", STEP);
    primary.terminate();
    standby.terminate();
    eprintln!("witness: isolated primary → standby promoted; {late} acknowledgements arrived past the silence bound");
}

#[test]
fn the_etcd_leader_dies_with_the_primary_and_the_promotion_waits_for_the_new_leader_never_splitting() {
    let _one = serial();
    if !bourse::etcd::available() {
        eprintln!("skipped: the etcd binary is absent (ci/setup.sh installs etcd-server)");
        return;
    }
    let mut cluster = EtcdCluster::start("leader", 3).expect("starting three etcd members");
    let endpoints = cluster.endpoints();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let files = PairFiles::new("ld", &endpoints, &endpoints, listen, listen);
    let mut standby = start_standby(&files);
    let mut primary = Node::spawn(&["run"], &files.primary);
    primary.wait_for("witness: a is primary", STEP);
    standby.wait_for("caught up with the primary", STEP);
    let stop = StopFlag::new();
    let gamma = client(files.a.order, &stop);
    std::thread::sleep(Duration::from_millis(300));

    let leader = cluster.leader().expect("a leader among the three members");
    cluster.kill(leader);
    primary.kill9();
    let won = standby.wait_for("won the promotion to epoch 2", Duration::from_secs(20));
    standby.wait_for("SERVING on", STEP);
    stop.set();
    let exact = gamma.join().unwrap();
    standby.terminate();
    check_no_acknowledged_loss(&exact, &files.dir("b"));
    eprintln!("witness: etcd leader (member {leader}) and primary killed together → {won}");
}
