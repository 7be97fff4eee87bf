//! A firm speaking SoupBinTCP/OUCH 5.0 over a raw UDP socket that keeps every reply's bytes by sequence, for tests
//! of reply continuity across restarts and failovers (the load generator's client checks sequences but keeps no
//! bytes).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bourse_nic::wire::alpha::{Alpha, ClOrdId, SessionName, Symbol};
use bourse_nic::wire::moldudp64::Packet;
use bourse_nic::wire::ouch::{self, EnterOrder, Inbound, Options, Side};
use bourse_nic::wire::soup;
use bourse_persist::workload::Rng;

pub struct RawFirm {
    sock: UdpSocket,
    stream: SessionName,
    username: &'static str,
    password: &'static str,
    /// Replies by sequence; a second copy must equal the first.
    pub replies: BTreeMap<u64, Vec<u8>>,
    /// UserRefNums whose first reply (Accepted, Rejected …) arrived, with its sequence.
    pub answered: BTreeMap<u32, u64>,
    /// The sequence the last Login Accepted named.
    pub login: Option<u64>,
    /// Every MoldUDP64 datagram of the firm's stream as it arrived (for decoders someone else wrote).
    pub datagrams: Vec<Vec<u8>>,
}

impl RawFirm {
    /// Firm `index` of the demo market (`ALPHA`, `BETA`, `GAMMA`: sessions 0, 1, 2), from 127.0.0.1.
    pub fn open(target: SocketAddrV4, index: usize) -> RawFirm {
        let (username, password) = [("ALPHA", "alpha-pw"), ("BETA", "beta-pw"), ("GAMMA", "gamma-pw")][index];
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.connect(target).unwrap();
        sock.set_read_timeout(Some(Duration::from_micros(200))).unwrap();
        RawFirm {
            sock,
            stream: SessionName::new(&format!("OE{index:08}")).unwrap(),
            username,
            password,
            replies: BTreeMap::new(),
            answered: BTreeMap::new(),
            login: None,
            datagrams: Vec::new(),
        }
    }

    fn soup(&self, p: soup::Repr<'_>) {
        let mut b = vec![0; p.buffer_len()];
        p.emit(&mut b).unwrap();
        let _ = self.sock.send(&b);
    }

    /// Points the socket at another node (a promoted standby).
    pub fn retarget(&mut self, target: SocketAddrV4) {
        self.sock.connect(target).unwrap();
    }

    /// Sends a Login Request asking for the replies from `requested` on.
    pub fn login(&mut self, requested: u64) {
        self.login = None;
        self.soup(soup::Repr::LoginRequest(soup::LoginRequest {
            username: Alpha::new(self.username).unwrap(),
            password: Alpha::new(self.password).unwrap(),
            session: SessionName::BLANK,
            sequence: requested,
        }));
    }

    /// Logs in (resending the request every 100 ms until answered, at most `timeout`), asking for the next reply
    /// this firm expects; returns the sequence the Login Accepted names.
    pub fn log_in_again(&mut self, timeout: Duration) -> Option<u64> {
        let requested = self.expected();
        self.login = None;
        let deadline = Instant::now() + timeout;
        while self.login.is_none() && Instant::now() < deadline {
            self.login(requested);
            let t = Instant::now() + Duration::from_millis(100);
            while Instant::now() < t && self.login.is_none() {
                self.poll();
            }
        }
        self.login
    }

    pub fn logout(&self) {
        self.soup(soup::Repr::LogoutRequest);
    }

    /// Enters the order for `user_ref`: deterministic per UserRefNum (a resend is the same message), a mix of
    /// buys and sells around 149.95–150.05, some IOC, every seventh for an unknown symbol (refused).
    pub fn order(&self, user_ref: u32) {
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

    /// Reads everything waiting.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 9_000];
        while let Ok(n) = self.sock.recv(&mut buf) {
            let d = &buf[..n];
            if let Ok(p) = Packet::new_checked(d) {
                if p.session() == self.stream {
                    self.datagrams.push(d.to_vec());
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
    pub fn expected(&self) -> u64 {
        let mut next = 1;
        while self.replies.contains_key(&next) {
            next += 1;
        }
        next
    }
}
