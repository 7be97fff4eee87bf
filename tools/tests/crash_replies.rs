//! Kill -9 the appliance under a firm's order flow, again and again; after every restart the firm logs in with
//! the next sequence it expects (SoupBinTCP Requested Sequence Number) and resends every order it never saw
//! answered. It must end up with every reply of its stream, dense from 1, each byte-identical to what replaying
//! the final journal from scratch produces, and every order answered exactly once in the journal.
//!
//! Rounds: `BOURSE_CRASH_REPLY_ROUNDS` (default 6). Runs `bourse run` as a child process on loopback.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bourse::appliance::setup;
use bourse::config::Config;
use bourse::demo::TempDir;
use bourse_nic::wire::alpha::{Alpha, ClOrdId, SessionName, Symbol};
use bourse_nic::wire::moldudp64::Packet;
use bourse_nic::wire::ouch::{self, EnterOrder, Inbound, Options, Side};
use bourse_nic::wire::soup;
use bourse_persist::workload::Rng;
use support::{order_counts, wal_records, Node, NodeAddrs};

struct Firm {
    sock: UdpSocket,
    stream: SessionName,
    /// Replies by sequence; a second copy must equal the first.
    replies: BTreeMap<u64, Vec<u8>>,
    /// UserRefNums whose first reply (Accepted, Rejected …) arrived.
    answered: BTreeMap<u32, u64>,
    login: Option<u64>,
}

impl Firm {
    fn open(target: SocketAddrV4) -> Firm {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.connect(target).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        Firm {
            sock,
            stream: SessionName::new("OE00000000").unwrap(),
            replies: BTreeMap::new(),
            answered: BTreeMap::new(),
            login: None,
        }
    }

    fn soup(&self, p: soup::Repr<'_>) {
        let mut b = vec![0; p.buffer_len()];
        p.emit(&mut b).unwrap();
        let _ = self.sock.send(&b);
    }

    fn login(&mut self, requested: u64) {
        self.login = None;
        self.soup(soup::Repr::LoginRequest(soup::LoginRequest {
            username: Alpha::new("ALPHA").unwrap(),
            password: Alpha::new("alpha-pw").unwrap(),
            session: SessionName::BLANK,
            sequence: requested,
        }));
    }

    fn order(&self, user_ref: u32) {
        // Deterministic per UserRefNum, so a resend is the same message.
        let mut rng = Rng::new(u64::from(user_ref));
        let side = if rng.below(2) == 0 { Side::Buy } else { Side::Sell };
        let symbol = if user_ref.is_multiple_of(7) { "NOPE" } else { "AAPL" };
        let m = Inbound::EnterOrder(EnterOrder {
            user_ref,
            side,
            quantity: 1 + rng.below(20) as u32,
            symbol: Symbol::new(symbol).unwrap(),
            price: 1_495_000 + rng.below(10) * 100,
            time_in_force: if rng.below(3) == 0 { b'3' } else { b'0' },
            display: b'Y',
            capacity: b'A',
            intermarket_sweep: b'N',
            cross_type: b'N',
            cl_ord_id: ClOrdId::new(&format!("K{user_ref}")).unwrap(),
            options: Options::default(),
        });
        let mut payload = vec![0; m.buffer_len()];
        m.emit(&mut payload).unwrap();
        self.soup(soup::Repr::UnsequencedData(&payload));
    }

    fn poll(&mut self) {
        let mut buf = [0u8; 9_000];
        while let Ok(n) = self.sock.recv(&mut buf) {
            let d = &buf[..n];
            if let Ok(p) = Packet::new_checked(d) {
                if p.session() == self.stream {
                    for (i, m) in p.messages().enumerate() {
                        let seq = p.sequence() + i as u64;
                        let first = self.replies.entry(seq).or_insert_with(|| m.to_vec());
                        assert_eq!(first.as_slice(), m, "reply {seq} changed between copies");
                        let user_ref = match ouch::Outbound::parse(m) {
                            Ok(ouch::Outbound::OrderAccepted(a)) => Some(a.user_ref),
                            Ok(ouch::Outbound::OrderRejected { user_ref, .. }) => Some(user_ref),
                            _ => None,
                        };
                        if let Some(r) = user_ref {
                            self.answered.entry(r).or_insert(seq);
                        }
                    }
                    continue;
                }
            }
            for p in soup::Packets::new(d) {
                if let Ok(soup::Repr::LoginAccepted(a)) = p {
                    self.login = Some(a.sequence);
                }
            }
        }
    }

    /// The next sequence the firm expects: one past the dense prefix it holds.
    fn expected(&self) -> u64 {
        let mut next = 1;
        while self.replies.contains_key(&next) {
            next += 1;
        }
        next
    }
}

fn config_file(dir: &std::path::Path, addrs: &NodeAddrs) -> (std::path::PathBuf, Config) {
    let wal = dir.join("wal");
    let text = support::node_toml("crash-replies", &wal, addrs, "");
    let path = dir.join("bourse.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap();
    (path, config)
}

#[test]
fn kill_9_loses_no_reply_and_answers_every_resend() {
    let rounds: u32 = std::env::var("BOURSE_CRASH_REPLY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let tmp = TempDir::new("bourse-crash-replies").unwrap();
    let addrs = NodeAddrs::loopback();
    let (path, config) = config_file(tmp.path(), &addrs);
    let mut rng = Rng::new(0xC0FFEE);
    let mut next_ref = 1u32;
    let mut firm = Firm::open(addrs.order);
    for round in 0..=rounds {
        let mut node = Node::spawn(&["run"], &path);
        node.wait_for("market data:", Duration::from_secs(30));
        // Log in (the login may be lost while the socket binds: retry), asking for the next reply expected.
        let requested = firm.expected();
        firm.login = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while firm.login.is_none() {
            assert!(Instant::now() < deadline, "no Login Accepted in round {round}:\n{}", node.log());
            firm.login(requested);
            let t = Instant::now() + Duration::from_millis(100);
            while Instant::now() < t && firm.login.is_none() {
                firm.poll();
            }
        }
        assert_eq!(
            firm.login,
            Some(requested),
            "round {round}: Login Accepted names the requested sequence:\n{}",
            node.log()
        );
        // Resend everything never answered, in order, then new orders; the last round stops cleanly.
        let unanswered: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
        for r in &unanswered {
            firm.order(*r);
        }
        let burst = 200 + rng.below(400) as u32;
        let kill_after = Duration::from_millis(20 + rng.below(150));
        let started = Instant::now();
        for _ in 0..burst {
            firm.order(next_ref);
            next_ref += 1;
            firm.poll();
            if round < rounds && started.elapsed() >= kill_after {
                break;
            }
        }
        if round < rounds {
            while started.elapsed() < kill_after {
                firm.poll();
            }
            node.kill9();
            firm.poll();
        } else {
            let deadline = Instant::now() + Duration::from_secs(10);
            while (1..next_ref).any(|r| !firm.answered.contains_key(&r)) && Instant::now() < deadline {
                firm.poll();
            }
            node.terminate();
        }
    }
    let missing: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
    assert!(missing.is_empty(), "orders never answered: {missing:?}");

    // The reference: replaying the final journal from scratch gives exactly the stream the firm received.
    let journal = setup::open_journal(&config, &tmp.path().join("wal")).unwrap();
    let x = &journal.exchange;
    let next = x.next_reply_sequence(0);
    assert!(next > 1);
    assert_eq!(firm.expected(), next, "the firm holds its whole stream, dense from 1");
    assert_eq!(firm.replies.len() as u64, next - 1);
    for (seq, bytes) in &firm.replies {
        assert_eq!(x.reply(0, *seq), Some(bytes.as_slice()), "reply {seq} differs from the journal's replay");
    }
    drop(journal);
    let log = wal_records(&tmp.path().join("wal"));
    let counts = order_counts(&log);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "orders journaled twice: {twice:?}");
    eprintln!("{rounds} kills, {} orders, {} replies, all answered once", next_ref - 1, next - 1);
}
