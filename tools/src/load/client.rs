//! One firm's order-entry connection: a non-blocking kernel UDP socket, the SoupBinTCP login, OUCH encoding,
//! and the matching of replies to requests.
//!
//! Replies are MoldUDP64 packets on the firm's own stream (session `OE%08d`): the per-firm sequence is checked
//! for gaps. Each sent request occupies one slot of a preallocated ring in send order, holding the UserRefNum its
//! first reply will carry and its intended send time. The appliance answers one firm's requests in the order it
//! received them, so the reply to a request is almost always for the oldest pending slot; a reply is matched to
//! the oldest pending slot (within [`MATCH_SCAN_MAX`] of the oldest) with the same UserRefNum and a compatible
//! type:
//!
//! ```text
//!   Enter Order   ← Order Accepted | Order Rejected
//!   Replace Order ← Order Replaced | Order Rejected | Order Canceled   (UserRefNum: the new one)
//!   Cancel Order  ← Order Canceled | Cancel Reject | Order Rejected    (UserRefNum: the order's)
//! ```
//!
//! Executions and the cancels of IOC remainders answer no request; they are only counted.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_nic::wire::alpha::{Alpha, SessionName};
use bourse_nic::wire::{moldudp64, ouch, soup};

use super::mix::Op;

/// Slots of the in-flight ring per firm; a power of two. When it is full the oldest request is given up on
/// (counted in `overwritten`, and so lost).
pub const INFLIGHT_SLOTS: usize = 1 << 16;
const _: () = assert!(INFLIGHT_SLOTS.is_power_of_two());
/// Pending slots, from the oldest, searched for a reply's request.
pub const MATCH_SCAN_MAX: usize = 512;
/// Largest datagram we receive (the appliance's MoldUDP64 packets stay under the Ethernet MTU).
pub const DATAGRAM_MAX_BYTES: usize = 9_216;
/// How long a login waiting for Login Accepted naps between polls (logins are not latency measurements).
const LOGIN_POLL_INTERVAL: Duration = Duration::from_micros(100);
/// Kernel receive buffer we ask for, so a burst of replies waits in the kernel rather than being dropped.
const RCVBUF_BYTES: usize = 8 << 20;

/// What kind of request a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Enter,
    Replace,
    Cancel,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    user_ref: u32,
    kind: Kind,
    pending: bool,
    /// Which histogram the latency goes to (a rate row, or the warm-up).
    row: u16,
    intended_ns: u64,
}

/// A matched reply: the latency belongs to `row`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    pub row: u16,
    pub latency_ns: u64,
    /// The reply refused the request (Order Rejected, Cancel Reject).
    pub rejected: bool,
}

/// Requests in flight, in send order.
pub struct Inflight {
    slots: Vec<Slot>,
    /// Send index of the oldest slot that may still be pending.
    tail: u64,
    /// Send index of the next request.
    head: u64,
    pending: usize,
    pub overwritten: u64,
    /// Requests older than an answered one that were still pending: their replies cannot come any more (one
    /// firm's replies arrive in request order), so they are lost.
    pub abandoned: u64,
}

impl Default for Inflight {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflight {
    pub fn new() -> Inflight {
        let empty = Slot { user_ref: 0, kind: Kind::Enter, pending: false, row: 0, intended_ns: 0 };
        Inflight { slots: vec![empty; INFLIGHT_SLOTS], tail: 0, head: 0, pending: 0, overwritten: 0, abandoned: 0 }
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    fn at(&mut self, index: u64) -> &mut Slot {
        &mut self.slots[index as usize & (INFLIGHT_SLOTS - 1)]
    }

    pub fn push(&mut self, user_ref: u32, kind: Kind, row: u16, intended_ns: u64) {
        if self.head - self.tail == INFLIGHT_SLOTS as u64 {
            let tail = self.tail;
            if self.at(tail).pending {
                self.at(tail).pending = false;
                self.pending -= 1;
                self.overwritten += 1;
            }
            self.tail += 1;
        }
        let head = self.head;
        *self.at(head) = Slot { user_ref, kind, pending: true, row, intended_ns };
        self.head += 1;
        self.pending += 1;
    }

    /// The oldest pending slot in `range` with `user_ref` that `accepts` allows, marked answered.
    fn find(
        &mut self,
        range: std::ops::Range<u64>,
        user_ref: u32,
        accepts: &impl Fn(Kind) -> bool,
        now_ns: u64,
    ) -> Option<(u64, Answered)> {
        for i in range {
            let s = self.at(i);
            if s.pending && s.user_ref == user_ref && accepts(s.kind) {
                s.pending = false;
                return Some((i, Answered { row: s.row, latency_ns: now_ns.saturating_sub(s.intended_ns), rejected: false }));
            }
        }
        None
    }

    /// Completes the oldest pending request with `user_ref` that `accepts` allows. Because the appliance answers
    /// a firm's requests in order, every request older than the answered one and still pending has lost its
    /// request or its reply: it is abandoned (counted lost) so the search window stays short.
    pub fn answer(&mut self, user_ref: u32, accepts: impl Fn(Kind) -> bool, now_ns: u64) -> Option<Answered> {
        let end = self.head.min(self.tail + MATCH_SCAN_MAX as u64);
        let mut found = self.find(self.tail..end, user_ref, &accepts, now_ns);
        // More than MATCH_SCAN_MAX requests in a row lost (a burst dropped by the kernel while a core was taken
        // away) would otherwise hide every later reply for good, since only a match moves the tail. Search the rest
        // of the ring then: the match abandons the lost run and the window is short again.
        if found.is_none() && end < self.head {
            found = self.find(end..self.head, user_ref, &accepts, now_ns);
        }
        let (k, answered) = found?;
        self.pending -= 1;
        for i in self.tail..k {
            let s = &mut self.slots[i as usize & (INFLIGHT_SLOTS - 1)];
            if s.pending {
                s.pending = false;
                self.pending -= 1;
                self.abandoned += 1;
            }
        }
        self.tail = k + 1;
        while self.tail < self.head && !self.slots[self.tail as usize & (INFLIGHT_SLOTS - 1)].pending {
            self.tail += 1;
        }
        Some(answered)
    }
}

/// Counters of one firm's reply stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirmCounts {
    pub sent: u64,
    pub replied: u64,
    pub rejects: u64,
    pub executions: u64,
    /// Sequence numbers skipped by the reply stream.
    pub gaps: u64,
    /// Packets whose sequence was below the expected one (resends of replies already seen).
    pub stale: u64,
    /// Datagrams that were neither our MoldUDP64 stream nor a SoupBinTCP packet we expect.
    pub unparsed: u64,
    /// Replies answering no request in flight (IOC remainders, replies to requests given up on).
    pub unmatched: u64,
    pub send_errors: u64,
}

/// One firm's connection.
pub struct FirmConn {
    pub username: String,
    password: String,
    sock: UdpSocket,
    pub target: SocketAddrV4,
    pub session: SessionName,
    expected_seq: u64,
    pub inflight: Inflight,
    pub counts: FirmCounts,
    pub last_rx_ns: u64,
    pub last_tx_ns: u64,
    out: [u8; 256],
}

/// Login failed: nothing came back in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "firm {username:?}: no Login Accepted from {target} within {waited_ms} ms; check that the appliance is running \
     and listening there, that the username and password match its config, and that this source address \
     ({source_addr}) is among the firm's allowed_sources (a failed login is answered with Login Rejected, except \
     from an address in no firm's allowed_sources when the appliance sets silent_to_unlisted_sources)"
)]
pub struct LoginTimeout {
    pub username: String,
    pub target: SocketAddrV4,
    pub source_addr: String,
    pub waited_ms: u64,
}

fn monotonic_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

impl Drop for FirmConn {
    fn drop(&mut self) {
        self.logout();
    }
}

impl FirmConn {
    /// Opens the socket bound to `bind_ip` (any port) and connected to `target`.
    pub fn open(username: &str, password: &str, bind_ip: std::net::Ipv4Addr, target: SocketAddrV4) -> anyhow::Result<FirmConn> {
        anyhow::ensure!(Alpha::<6>::new(username).is_some(), "username {username:?}: at most 6 ASCII characters");
        anyhow::ensure!(Alpha::<10>::new(password).is_some(), "password of {username:?}: at most 10 ASCII characters");
        let sock = UdpSocket::bind(SocketAddrV4::new(bind_ip, 0)).with_context(|| format!("binding a UDP socket on {bind_ip}"))?;
        set_rcvbuf(&sock, RCVBUF_BYTES);
        sock.connect(target).with_context(|| format!("connecting the UDP socket to {target}"))?;
        sock.set_nonblocking(true).context("making the UDP socket non-blocking")?;
        Ok(FirmConn {
            username: username.to_string(),
            password: password.to_string(),
            sock,
            target,
            session: SessionName::BLANK,
            expected_seq: 1,
            inflight: Inflight::new(),
            counts: FirmCounts::default(),
            last_rx_ns: 0,
            last_tx_ns: 0,
            out: [0; 256],
        })
    }

    pub fn local_addr(&self) -> String {
        self.sock.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into())
    }

    /// Points the connection at another appliance (failover); the caller logs in again.
    pub fn retarget(&mut self, target: SocketAddrV4) -> anyhow::Result<()> {
        self.sock.connect(target).with_context(|| format!("connecting the UDP socket to {target}"))?;
        self.target = target;
        Ok(())
    }

    /// Sends a Login Request and waits (busy-polling, resending every 200 ms) for Login Accepted, at most
    /// `timeout`. Returns the next reply sequence the appliance announced.
    pub fn login(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let request = soup::Repr::LoginRequest(soup::LoginRequest {
            username: Alpha::new(&self.username).unwrap_or(Alpha::BLANK),
            password: Alpha::new(&self.password).unwrap_or(Alpha::BLANK),
            session: SessionName::BLANK,
            sequence: 0,
        });
        let n = request.emit(&mut self.out)?;
        let started = Instant::now();
        let mut next_send = started;
        let mut buf = [0u8; 512];
        loop {
            let now = Instant::now();
            if now >= next_send {
                // A refused send (no listener: ICMP port unreachable) is retried like a lost datagram.
                let _ = self.sock.send(&self.out[..n]);
                next_send = now + Duration::from_millis(200);
            }
            match self.sock.recv(&mut buf) {
                Ok(len) => {
                    for p in soup::Packets::new(&buf[..len]) {
                        match p {
                            Ok(soup::Repr::LoginAccepted(a)) => {
                                self.session = a.session;
                                self.expected_seq = a.sequence;
                                return Ok(a.sequence);
                            }
                            Ok(soup::Repr::LoginRejected(code)) => anyhow::bail!(
                                "firm {:?}: {} rejected the login with Login Rejected {:?} ({})",
                                self.username,
                                self.target,
                                code as char,
                                match code {
                                    soup::reject_code::NOT_AUTHORIZED => format!(
                                        "not authorized: check that the username and password match the \
                                         appliance's config and that this source address ({}) is among the \
                                         firm's allowed_sources",
                                        self.local_addr()
                                    ),
                                    soup::reject_code::SESSION_NOT_AVAILABLE => "session not available: the \
                                        session is logged in from another address (log out there, or wait for \
                                        the idle timeout)"
                                        .to_string(),
                                    _ => "an unknown reason code".to_string(),
                                }
                            ),
                            _ => {}
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e).with_context(|| format!("receiving from {}", self.target)),
            }
            if now.duration_since(started) >= timeout {
                return Err(LoginTimeout {
                    username: self.username.clone(),
                    target: self.target,
                    source_addr: self.local_addr(),
                    waited_ms: timeout.as_millis() as u64,
                }
                .into());
            }
            // Nap rather than spin: a login waits on a node that is starting up (after a failover, a promoting
            // standby), and on a two-core host a spinning generator would take the core that node needs.
            std::thread::sleep(LOGIN_POLL_INTERVAL);
        }
    }

    /// Encodes `op` as OUCH in a SoupBinTCP Unsequenced Data packet and sends it.
    pub fn send(&mut self, op: &Op, symbol_name: &Alpha<8>, row: u16, intended_ns: u64, clock: Instant) {
        let msg = encode(op, symbol_name);
        let header = soup::HEADER_LEN;
        let len = match msg.emit(&mut self.out[header..]) {
            Ok(n) => n,
            Err(_) => {
                self.counts.send_errors += 1;
                return;
            }
        };
        let total = match soup::emit_data_header(&mut self.out, soup::packet_type::UNSEQUENCED_DATA, len) {
            Ok(t) => t,
            Err(_) => {
                self.counts.send_errors += 1;
                return;
            }
        };
        let kind = match op {
            Op::Enter { .. } | Op::EnterUnknownSymbol { .. } => Kind::Enter,
            Op::Replace { .. } => Kind::Replace,
            Op::Cancel { .. } => Kind::Cancel,
        };
        // The kernel socket buffer rarely fills; when it does, retry briefly rather than drop the order.
        for _ in 0..1_000 {
            match self.sock.send(&self.out[..total]) {
                Ok(_) => {
                    self.counts.sent += 1;
                    self.last_tx_ns = monotonic_ns(clock);
                    self.inflight.push(op.reply_ref(), kind, row, intended_ns);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(_) => break,
            }
        }
        self.counts.send_errors += 1;
    }

    /// Sends a SoupBinTCP Logout Request, so the session may log in again from another source at once (a session
    /// is live from one source at a time).
    pub fn logout(&mut self) {
        if let Ok(n) = soup::Repr::LogoutRequest.emit(&mut self.out) {
            let _ = self.sock.send(&self.out[..n]);
        }
    }

    /// Sends a SoupBinTCP Client Heartbeat (keeps the session from idling out while nothing else is sent).
    pub fn heartbeat(&mut self, clock: Instant) {
        if let Ok(n) = soup::Repr::ClientHeartbeat.emit(&mut self.out) {
            if self.sock.send(&self.out[..n]).is_ok() {
                self.last_tx_ns = monotonic_ns(clock);
            }
        }
    }

    /// Receives and handles up to `burst` datagrams; `record` gets each matched reply. Returns datagrams read.
    pub fn poll(&mut self, buf: &mut [u8], burst: usize, clock: Instant, record: &mut impl FnMut(Answered)) -> usize {
        let mut n = 0;
        while n < burst {
            let len = match self.sock.recv(buf) {
                Ok(len) => len,
                Err(_) => break,
            };
            n += 1;
            let now = monotonic_ns(clock);
            self.last_rx_ns = now;
            self.on_datagram(&buf[..len], now, record);
        }
        n
    }

    fn on_datagram(&mut self, d: &[u8], now: u64, record: &mut impl FnMut(Answered)) {
        if d.len() >= moldudp64::HEADER_LEN && d[..10] == self.session.0 {
            let Ok(p) = moldudp64::Packet::new_checked(d) else {
                self.counts.unparsed += 1;
                return;
            };
            if p.is_end_of_session() {
                return;
            }
            let seq = p.sequence();
            if seq < self.expected_seq {
                // A resend of replies already seen (e.g. the answer to a retransmitted order): not new.
                self.counts.stale += 1;
                return;
            }
            if seq > self.expected_seq {
                self.counts.gaps += seq - self.expected_seq;
            }
            self.expected_seq = seq + u64::from(p.count());
            for m in p.messages() {
                self.on_reply(m, now, record);
            }
            return;
        }
        // Anything else from the appliance is a SoupBinTCP packet (a late Login Accepted, a heartbeat).
        for p in soup::Packets::new(d) {
            if p.is_err() {
                self.counts.unparsed += 1;
                return;
            }
        }
    }

    fn on_reply(&mut self, m: &[u8], now: u64, record: &mut impl FnMut(Answered)) {
        let Ok(reply) = ouch::Outbound::parse(m) else {
            self.counts.unparsed += 1;
            return;
        };
        let mut rejected = false;
        let answered = match reply {
            ouch::Outbound::OrderAccepted(a) => self.inflight.answer(a.user_ref, |k| k == Kind::Enter, now),
            ouch::Outbound::OrderReplaced { order, .. } => self.inflight.answer(order.user_ref, |k| k == Kind::Replace, now),
            ouch::Outbound::OrderRejected { user_ref, .. } => {
                self.counts.rejects += 1;
                rejected = true;
                self.inflight.answer(user_ref, |_| true, now)
            }
            ouch::Outbound::OrderCanceled { user_ref, .. } => {
                self.inflight.answer(user_ref, |k| k == Kind::Cancel || k == Kind::Replace, now)
            }
            ouch::Outbound::CancelReject { user_ref, .. } => {
                self.counts.rejects += 1;
                rejected = true;
                self.inflight.answer(user_ref, |k| k == Kind::Cancel, now)
            }
            ouch::Outbound::OrderExecuted { .. } => {
                self.counts.executions += 1;
                return;
            }
            // The load generator sends none of the requests these answer.
            ouch::Outbound::SystemEvent { .. }
            | ouch::Outbound::OrderModified { .. }
            | ouch::Outbound::MassCancelResponse { .. }
            | ouch::Outbound::DisableOrderEntryResponse { .. }
            | ouch::Outbound::EnableOrderEntryResponse { .. }
            | ouch::Outbound::AccountQueryResponse { .. } => return,
        };
        match answered {
            Some(a) => {
                self.counts.replied += 1;
                record(Answered { rejected, ..a });
            }
            None => self.counts.unmatched += 1,
        }
    }
}

/// The OUCH message for one generated operation.
pub fn encode(op: &Op, symbol_name: &Alpha<8>) -> ouch::Inbound {
    let enter = |user_ref, side, quantity, symbol, price: u64, tif| {
        ouch::Inbound::EnterOrder(ouch::EnterOrder {
            user_ref,
            side,
            quantity,
            symbol,
            price,
            time_in_force: tif,
            display: b'Y',
            capacity: b'A',
            intermarket_sweep: b'N',
            cross_type: b'N',
            cl_ord_id: Alpha::BLANK,
            options: ouch::Options::default(),
        })
    };
    match *op {
        Op::Enter { user_ref, side, qty, price, ioc, .. } => {
            let side = if side == bourse_engine::Side::Buy { ouch::Side::Buy } else { ouch::Side::Sell };
            enter(user_ref, side, qty, *symbol_name, u64::from(price), if ioc { ouch::tif::IOC } else { ouch::tif::DAY })
        }
        Op::EnterUnknownSymbol { user_ref } => {
            // Lower-case names are never configured symbols (config names are printable; Nasdaq's are upper case).
            let unknown = Alpha::new("zz-none").unwrap_or(Alpha::BLANK);
            enter(user_ref, ouch::Side::Buy, 1, unknown, 10_000, ouch::tif::DAY)
        }
        Op::Replace { orig_user_ref, user_ref, qty, price } => ouch::Inbound::ReplaceOrder(ouch::ReplaceOrder {
            orig_user_ref,
            user_ref,
            quantity: qty,
            price: u64::from(price),
            time_in_force: ouch::tif::DAY,
            display: b'Y',
            intermarket_sweep: b'N',
            cl_ord_id: Alpha::BLANK,
            options: ouch::Options::default(),
        }),
        Op::Cancel { user_ref } => ouch::Inbound::CancelOrder(ouch::CancelOrder { user_ref, quantity: 0 }),
    }
}

/// Asks for a larger kernel receive buffer; root may exceed `net.core.rmem_max` with SO_RCVBUFFORCE. Failure only
/// means bursts may be dropped by the kernel, which the gap counter then shows.
pub fn set_rcvbuf(sock: &UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        if sys::setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, opt, v) {
            return;
        }
    }
}

/// Market-data listener: counts MoldUDP64 datagrams and messages and checks each session's sequence.
pub struct MdListener {
    sock: UdpSocket,
    session: Option<SessionName>,
    expected_seq: u64,
    pub datagrams: u64,
    pub messages: u64,
    pub gaps: u64,
    pub malformed: u64,
}

impl MdListener {
    pub fn bind(addr: SocketAddrV4) -> anyhow::Result<MdListener> {
        let sock = if addr.ip().is_multicast() {
            let s = UdpSocket::bind(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, addr.port()))
                .with_context(|| format!("binding the market-data port {}", addr.port()))?;
            s.join_multicast_v4(addr.ip(), &std::net::Ipv4Addr::UNSPECIFIED)
                .with_context(|| format!("joining market-data group {}", addr.ip()))?;
            s
        } else {
            UdpSocket::bind(SocketAddr::V4(addr)).with_context(|| format!("binding market data on {addr}"))?
        };
        set_rcvbuf(&sock, RCVBUF_BYTES);
        sock.set_nonblocking(true)?;
        Ok(MdListener { sock, session: None, expected_seq: 0, datagrams: 0, messages: 0, gaps: 0, malformed: 0 })
    }

    pub fn poll(&mut self, buf: &mut [u8], burst: usize) -> usize {
        let mut n = 0;
        while n < burst {
            let Ok(len) = self.sock.recv(buf) else { break };
            n += 1;
            self.datagrams += 1;
            let Ok(p) = moldudp64::Packet::new_checked(&buf[..len]) else {
                self.malformed += 1;
                continue;
            };
            if p.is_end_of_session() {
                continue;
            }
            let (session, seq) = (p.session(), p.sequence());
            if self.session != Some(session) {
                // First packet (or a new session): start counting from here.
                self.session = Some(session);
                self.expected_seq = seq;
            }
            if seq > self.expected_seq {
                self.gaps += seq - self.expected_seq;
            }
            if seq + u64::from(p.count()) > self.expected_seq {
                self.expected_seq = seq + u64::from(p.count());
            }
            self.messages += u64::from(p.count());
        }
        n
    }
}

#[allow(unsafe_code)]
mod sys {
    /// `setsockopt` with an `int` value; returns whether the kernel took it.
    pub fn setsockopt_int(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
        // SAFETY: `value` lives on the stack for the duration of the call and its size is passed alongside; the
        // kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_match_the_oldest_compatible_request() {
        let mut f = Inflight::new();
        f.push(1, Kind::Enter, 0, 100);
        f.push(1, Kind::Cancel, 0, 200);
        f.push(2, Kind::Replace, 1, 300);
        f.push(3, Kind::Enter, 1, 400);
        f.push(4, Kind::Enter, 1, 500);
        // Rejected for ref 1 answers the Enter (older) first, then the Cancel.
        assert_eq!(f.answer(1, |_| true, 1_000), Some(Answered { row: 0, latency_ns: 900, rejected: false }));
        assert_eq!(f.answer(1, |k| k == Kind::Enter, 1_000), None);
        assert_eq!(f.answer(1, |k| k == Kind::Cancel, 1_500), Some(Answered { row: 0, latency_ns: 1_300, rejected: false }));
        assert_eq!(f.pending(), 3);
        assert_eq!(f.answer(2, |k| k == Kind::Replace, 2_000), Some(Answered { row: 1, latency_ns: 1_700, rejected: false }));
        // The reply to ref 3 never comes; answering ref 4 gives it up.
        assert_eq!(f.answer(4, |k| k == Kind::Enter, 2_500), Some(Answered { row: 1, latency_ns: 2_000, rejected: false }));
        assert_eq!((f.pending(), f.abandoned), (0, 1));
        assert_eq!(f.tail, f.head);
    }

    #[test]
    fn a_reply_past_a_long_run_of_lost_requests_is_still_matched() {
        let mut f = Inflight::new();
        let lost = MATCH_SCAN_MAX as u32 * 3;
        for i in 0..lost + 2 {
            f.push(i + 1, Kind::Enter, 0, u64::from(i));
        }
        // Requests 1..=lost never reached the appliance; the reply to the next one must still count.
        assert_eq!(f.answer(lost + 1, |_| true, 10_000), Some(Answered { row: 0, latency_ns: 10_000 - u64::from(lost), rejected: false }));
        assert_eq!((f.pending(), f.abandoned), (1, u64::from(lost)));
        assert_eq!(f.answer(lost + 2, |_| true, 10_001), Some(Answered { row: 0, latency_ns: 10_001 - u64::from(lost) - 1, rejected: false }));
        assert_eq!(f.tail, f.head);
    }

    #[test]
    fn a_full_ring_gives_up_on_the_oldest() {
        let mut f = Inflight::new();
        for i in 0..INFLIGHT_SLOTS as u32 + 3 {
            f.push(i + 1, Kind::Enter, 0, 0);
        }
        assert_eq!(f.overwritten, 3);
        assert_eq!(f.pending(), INFLIGHT_SLOTS);
        assert_eq!(f.answer(1, |_| true, 5), None);
        assert!(f.answer(4, |_| true, 5).is_some());
    }

    #[test]
    fn ouch_encoding_round_trips() {
        let sym = Alpha::new("AAPL").unwrap();
        let op = Op::Replace { orig_user_ref: 3, user_ref: 9, qty: 10, price: 1_499_900 };
        let mut buf = [0u8; 128];
        let n = encode(&op, &sym).emit(&mut buf).unwrap();
        match ouch::Inbound::parse(&buf[..n]).unwrap() {
            ouch::Inbound::ReplaceOrder(r) => {
                assert_eq!((r.orig_user_ref, r.user_ref, r.quantity, r.price), (3, 9, 10, 1_499_900));
            }
            other => panic!("decoded {other:?}"),
        }
    }
}
