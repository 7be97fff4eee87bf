//! SoupBinTCP 3.00 over kernel TCP: the second order-entry transport, beside UDP, so a firm's standard OUCH stack
//! connects unmodified.
//!
//! It is a [`Backend`] to the pipeline: each whole SoupBinTCP packet a client sends is delivered as one datagram
//! from the connection's peer address (IPv4 and port, unique per connection), so the same session layer, journal,
//! exchange and reply streams serve both transports. Outbound, whatever the pipeline sends to a connection's peer
//! is framed for a stream:
//!
//! ```text
//!   pipeline sends                        the connection carries (SoupBinTCP 3.00)
//!   Login Accepted / Rejected, 'H', '+'   the same packet                                   (2.2.1, 2.2.2, 2.2.4, 2.1)
//!   MoldUDP64 packet: seq N, k replies    k Sequenced Data 'S' packets, one per reply       (2.2.3)
//! ```
//!
//! Sequenced Data carries no sequence number: the client counts from the one its Login Accepted named (section
//! 1.2). So each connection remembers the next sequence it will carry; a reply it already carried (a duplicate
//! order answered with its first reply, a request packet) is not sent twice, and a gap (a live reply the output
//! queue had no room for) closes the connection: the client logs in again with its next expected sequence and is
//! replayed from there, as section 2.2.3 prescribes after a connection failure.
//!
//! The connection closes after a Login Rejected (section 2.2.2), after a Logout Request (section 2.3.4), after the
//! idle-logout notice, when the peer closes, and when its output buffer is full (a client not reading). A
//! connection that goes while its session is logged in is logged out in the session layer (a Logout Request is
//! delivered on its behalf), so the firm can log in again at once from a new connection.
//!
//! Every connection's buffers are allocated when the listener is bound; accepting allocates nothing.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bourse_nic::backend::{Backend, BackendStats, Datagram, TxError};
use bourse_nic::wire::{moldudp64, soup};

/// A Logout Request (section 2.3.4), delivered for a connection that went while logged in.
const LOGOUT_REQUEST: [u8; 3] = [0, 1, soup::packet_type::LOGOUT_REQUEST];
/// End of Session (section 2.2.7): the server ends the session and closes the connection.
const END_OF_SESSION: [u8; 3] = [0, 1, soup::packet_type::END_OF_SESSION];
/// Connections accepted per receive call.
const ACCEPTS_PER_POLL_MAX: usize = 8;
/// Section 2.3.1: "The server can terminate an incoming TCP/IP socket if it does not receive a Login Request
/// Packet within a reasonable period of time (typically 30 seconds)". Here: a Login Accepted within that time.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Receive calls between two looks for connections past [`LOGIN_TIMEOUT`] (a clock read is not free).
const LOGIN_CHECK_EVERY_POLLS: u64 = 4096;
/// The largest datagram the pipeline hands over (a MoldUDP64 packet of at most the configured payload size).
const SCRATCH_BYTES: usize = 9_216;

/// Sizes, fixed at bind time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoupTcpLimits {
    pub connections_max: usize,
    /// Inbound bytes buffered per connection: the largest packet a client may send.
    pub in_bytes: usize,
    /// Outbound bytes buffered per connection before a client that does not read is disconnected.
    pub out_bytes: usize,
}

impl SoupTcpLimits {
    pub const DEFAULT: SoupTcpLimits = SoupTcpLimits { connections_max: 64, in_bytes: 4_096, out_bytes: 1 << 20 };
}

/// What happened on the TCP transport, beyond the packets counted in [`BackendStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoupTcpCounters {
    pub accepted: u64,
    /// Connections refused because every slot was taken (closed at once).
    pub refused_full: u64,
    /// Connections closed: by the peer, after a Login Rejected / Logout Request / idle notice, on an error.
    pub closed: u64,
    /// Closed because a packet announced a length of 0 or more than `in_bytes`.
    pub closed_malformed: u64,
    /// Closed because the client did not read its replies (output buffer full).
    pub closed_slow: u64,
    /// Closed because a reply was missing from the stream (the client resumes by logging in again).
    pub closed_gap: u64,
    /// Replies not sent again on a connection that already carried them.
    pub resends_suppressed: u64,
    /// Closed because no login succeeded within [`LOGIN_TIMEOUT`] of the connection.
    pub closed_login_timeout: u64,
}

struct Conn {
    stream: Option<TcpStream>,
    accepted_at: Instant,
    peer: SocketAddrV4,
    inbuf: Vec<u8>,
    in_len: usize,
    out: Vec<u8>,
    out_start: usize,
    out_len: usize,
    /// The sequence number of the next Sequenced Data packet this connection carries (0: no Login Accepted yet).
    next_seq: u64,
    /// Closed once the output is written.
    close_when_flushed: bool,
    /// The session layer has this peer logged in.
    logged_in: bool,
    /// A Logout Request is owed to the session layer for this peer (its connection went while logged in).
    logout_owed: bool,
}

impl Conn {
    fn is_free(&self) -> bool {
        self.stream.is_none() && !self.logout_owed
    }

    fn close(&mut self, counters: &mut SoupTcpCounters) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
            counters.closed += 1;
        }
        self.logout_owed = self.logged_in;
        self.logged_in = false;
        self.close_when_flushed = false;
        (self.in_len, self.out_start, self.out_len, self.next_seq) = (0, 0, 0, 0);
    }

    /// Appends `parts` as one packet's bytes; a client too far behind is disconnected.
    fn push(&mut self, parts: &[&[u8]], counters: &mut SoupTcpCounters) -> bool {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if self.out_start + self.out_len + n > self.out.len() {
            self.out.copy_within(self.out_start..self.out_start + self.out_len, 0);
            self.out_start = 0;
        }
        if self.out_len + n > self.out.len() {
            counters.closed_slow += 1;
            self.close(counters);
            return false;
        }
        let mut at = self.out_start + self.out_len;
        for p in parts {
            self.out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.out_len += n;
        true
    }

    fn flush(&mut self, counters: &mut SoupTcpCounters) {
        let Some(stream) = self.stream.as_mut() else { return };
        while self.out_len > 0 {
            match stream.write(&self.out[self.out_start..self.out_start + self.out_len]) {
                Ok(0) => return self.close(counters),
                Ok(k) => {
                    self.out_start += k;
                    self.out_len -= k;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(counters),
            }
        }
        self.out_start = 0;
        if self.close_when_flushed {
            self.close(counters);
        }
    }
}

/// The SoupBinTCP listener and its connections.
pub struct SoupTcp {
    listener: TcpListener,
    local: SocketAddrV4,
    conns: Vec<Conn>,
    scratch: Vec<u8>,
    in_bytes: usize,
    polls: u64,
    stats: BackendStats,
    pub counters: SoupTcpCounters,
}

impl SoupTcp {
    pub fn bind(addr: SocketAddrV4, limits: SoupTcpLimits) -> io::Result<SoupTcp> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = match listener.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only")),
        };
        let conns = (0..limits.connections_max)
            .map(|_| Conn {
                stream: None,
                accepted_at: Instant::now(),
                peer: local,
                inbuf: vec![0; limits.in_bytes.max(soup::field::login_request::END)],
                in_len: 0,
                out: vec![0; limits.out_bytes.max(SCRATCH_BYTES)],
                out_start: 0,
                out_len: 0,
                next_seq: 0,
                close_when_flushed: false,
                logged_in: false,
                logout_owed: false,
            })
            .collect();
        Ok(SoupTcp {
            listener,
            local,
            conns,
            scratch: vec![0; SCRATCH_BYTES],
            in_bytes: limits.in_bytes,
            polls: 0,
            stats: BackendStats::default(),
            counters: SoupTcpCounters::default(),
        })
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Whether `dst` is the peer of an open connection (its packets go here, not to UDP).
    pub fn serves(&self, dst: SocketAddrV4) -> bool {
        self.conns.iter().any(|c| c.stream.is_some() && c.peer == dst)
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_POLL_MAX {
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(_) => return,
            };
            let (SocketAddr::V4(peer), Some(slot)) = (peer, self.conns.iter_mut().find(|c| c.is_free())) else {
                self.counters.refused_full += 1;
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            };
            if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                self.counters.refused_full += 1;
                continue;
            }
            self.counters.accepted += 1;
            slot.accepted_at = Instant::now();
            slot.stream = Some(stream);
            slot.peer = peer;
        }
    }

    /// Closes every connection that has had no Login Accepted within [`LOGIN_TIMEOUT`] by `now`; returns how
    /// many. Time is a parameter so that tests drive it.
    pub fn expire_logins(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for c in self.conns.iter_mut() {
            if c.stream.is_some() && !c.logged_in && now.saturating_duration_since(c.accepted_at) > LOGIN_TIMEOUT {
                c.close(&mut self.counters);
                self.counters.closed_login_timeout += 1;
                n += 1;
            }
        }
        n
    }

    fn flush_all(&mut self) -> usize {
        let mut pending = 0;
        for c in self.conns.iter_mut() {
            c.flush(&mut self.counters);
            pending += usize::from(c.out_len > 0);
        }
        pending
    }
}

impl Backend for SoupTcp {
    fn name(&self) -> &'static str {
        "soup-tcp"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        self.accept();
        self.polls += 1;
        if self.polls.is_multiple_of(LOGIN_CHECK_EVERY_POLLS) {
            self.expire_logins(Instant::now());
        }
        let (local, in_bytes) = (self.local, self.in_bytes);
        let mut n = 0;
        for c in self.conns.iter_mut() {
            if c.logout_owed {
                c.logout_owed = false;
                f(Datagram { src: c.peer, dst: local, payload: &LOGOUT_REQUEST });
                n += 1;
                continue;
            }
            let Some(stream) = c.stream.as_mut() else { continue };
            if c.close_when_flushed {
                continue;
            }
            match stream.read(&mut c.inbuf[c.in_len..]) {
                Ok(0) => {
                    c.close(&mut self.counters);
                    continue;
                }
                Ok(k) => c.in_len += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.close(&mut self.counters);
                    continue;
                }
            }
            // Section 1.1: packets are not aligned to reads; deliver every whole one in the buffer.
            let mut at = 0;
            while c.in_len - at >= 2 {
                let total = 2 + usize::from(u16::from_be_bytes([c.inbuf[at], c.inbuf[at + 1]]));
                if total == 2 || total > in_bytes {
                    self.stats.malformed += 1;
                    self.counters.closed_malformed += 1;
                    at = c.in_len;
                    c.close(&mut self.counters);
                    break;
                }
                if c.in_len - at < total {
                    break;
                }
                let packet_type = c.inbuf[at + 2];
                f(Datagram { src: c.peer, dst: local, payload: &c.inbuf[at..at + total] });
                self.stats.rx += 1;
                n += 1;
                at += total;
                if packet_type == soup::packet_type::LOGOUT_REQUEST {
                    // Section 2.3.4: the server terminates the connection; the session layer logged it out.
                    c.logged_in = false;
                    c.close_when_flushed = true;
                    break;
                }
            }
            if c.stream.is_some() {
                c.inbuf.copy_within(at..c.in_len, 0);
                c.in_len -= at;
            }
        }
        self.flush_all();
        n
    }

    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        let len = fill(&mut self.scratch).min(self.scratch.len());
        let Some(c) = self.conns.iter_mut().find(|c| c.stream.is_some() && c.peer == dst) else {
            self.stats.dropped += 1;
            return Ok(());
        };
        let d = &self.scratch[..len];
        if d.len() >= soup::HEADER_LEN && d[0] == 0 {
            // A session packet, as the UDP transport sends it (README, "Order entry on UDP").
            match soup::Packets::new(d).next() {
                Some(Ok(soup::Repr::LoginAccepted(a))) => {
                    c.next_seq = a.sequence;
                    c.logged_in = true;
                }
                Some(Ok(soup::Repr::LoginRejected(_))) => c.close_when_flushed = true,
                // The idle-logout notice: the session layer has logged the session out already.
                Some(Ok(soup::Repr::Debug(_))) => {
                    c.logged_in = false;
                    c.close_when_flushed = true;
                }
                _ => {}
            }
            if c.push(&[d], &mut self.counters) {
                self.stats.tx += 1;
            }
            return Ok(());
        }
        let Ok(p) = moldudp64::Packet::new_checked(d) else {
            self.stats.dropped += 1;
            return Ok(());
        };
        if c.next_seq == 0 {
            self.stats.dropped += 1;
            return Ok(());
        }
        if p.is_end_of_session() {
            // The end of the day on the reply stream: SoupBinTCP's End of Session (section 2.2.7), after which
            // the server closes the connection.
            c.logged_in = false;
            c.close_when_flushed = true;
            if c.push(&[&END_OF_SESSION], &mut self.counters) {
                self.stats.tx += 1;
            }
            return Ok(());
        }
        let first = p.sequence();
        for (k, m) in p.messages().enumerate() {
            let seq = first + k as u64;
            if seq < c.next_seq {
                self.counters.resends_suppressed += 1;
                continue;
            }
            if seq > c.next_seq {
                self.counters.closed_gap += 1;
                c.close(&mut self.counters);
                return Ok(());
            }
            let Ok(header) = u16::try_from(m.len() + 1).map(|l| l.to_be_bytes()) else { continue };
            if !c.push(&[&header, &[soup::packet_type::SEQUENCED_DATA], m], &mut self.counters) {
                return Ok(());
            }
            c.next_seq += 1;
            self.stats.tx += 1;
        }
        Ok(())
    }

    fn tx_flush(&mut self) -> usize {
        self.flush_all();
        0
    }

    /// Packets in `rx`/`tx`, broken framing in `malformed`; `dropped` counts replies for no open connection and
    /// the connections refused (table full) or closed because the client fell behind or its stream had a gap.
    fn stats(&self) -> BackendStats {
        let c = &self.counters;
        BackendStats { dropped: self.stats.dropped + c.refused_full + c.closed_slow + c.closed_gap, ..self.stats }
    }
}

/// Both order-entry transports behind one [`Backend`]: UDP (any backend) and SoupBinTCP over TCP. A reply goes to
/// the TCP connection whose peer it is addressed to, else to UDP.
pub struct OrderEntry {
    pub udp: Box<dyn Backend>,
    pub tcp: SoupTcp,
}

impl Backend for OrderEntry {
    fn name(&self) -> &'static str {
        self.udp.name()
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        self.udp.rx_burst(f) + self.tcp.rx_burst(f)
    }

    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        if self.tcp.serves(dst) {
            self.tcp.tx(dst, fill)
        } else {
            self.udp.tx(dst, fill)
        }
    }

    fn tx_flush(&mut self) -> usize {
        self.udp.tx_flush() + self.tcp.tx_flush()
    }

    fn stats(&self) -> BackendStats {
        let (mut s, t) = (self.udp.stats(), self.tcp.stats());
        s.rx += t.rx;
        s.tx += t.tx;
        s.dropped += t.dropped;
        s.malformed += t.malformed;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_nic::wire::alpha::SessionName;
    use bourse_nic::wire::moldudp64::Packer;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    /// Polls until `f` returns something, at most 5 s.
    fn poll_until<T>(tcp: &mut SoupTcp, mut f: impl FnMut(&mut SoupTcp) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(v) = f(tcp) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("nothing within 5 s");
    }

    fn received(tcp: &mut SoupTcp) -> Vec<(SocketAddrV4, Vec<u8>)> {
        let mut got = Vec::new();
        tcp.rx_burst(&mut |d: Datagram<'_>| got.push((d.src, d.payload.to_vec())));
        got
    }

    /// A listener on loopback and one client connected to it (5 s read timeout), with the client's address.
    fn listener_and_client() -> (SoupTcp, TcpStream, SocketAddrV4) {
        let tcp = SoupTcp::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), SoupTcpLimits::DEFAULT).unwrap();
        let client = TcpStream::connect(tcp.local_addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let SocketAddr::V4(me) = client.local_addr().unwrap() else { panic!("IPv4") };
        (tcp, client, me)
    }

    fn send(tcp: &mut SoupTcp, dst: SocketAddrV4, bytes: &[u8]) {
        tcp.tx(dst, &mut |buf: &mut [u8]| {
            buf[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        })
        .unwrap();
        tcp.tx_flush();
    }

    fn mold(seq: u64, messages: &[&[u8]]) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let mut pk = Packer::new(&mut buf, SessionName::new("OE00000000").unwrap(), 1500).unwrap();
        pk.begin(seq);
        for m in messages {
            pk.push(m).unwrap();
        }
        pk.finish().to_vec()
    }

    /// SoupBinTCP 3.00 sections 1.1, 1.2 and 2.2.3 on one connection, bytes checked by hand: packets split
    /// across reads are delivered whole, a MoldUDP64 reply packet becomes Sequenced Data packets counted from the
    /// Login Accepted, a reply the stream already carried is not sent again, a gap closes the connection, and
    /// the session layer is then told the peer logged out.
    #[test]
    fn replies_become_sequenced_data_in_order_and_a_gap_closes_the_connection() {
        let (mut tcp, mut client, me) = listener_and_client();
        // A Client Heartbeat and the first byte of another, then the rest: two packets, each delivered whole.
        client.write_all(&[0x00, 0x01, b'R', 0x00]).unwrap();
        let first = poll_until(&mut tcp, |t| Some(received(t)).filter(|g| !g.is_empty()));
        assert_eq!(first, vec![(me, vec![0x00, 0x01, b'R'])]);
        client.write_all(&[0x01, b'R']).unwrap();
        let second = poll_until(&mut tcp, |t| Some(received(t)).filter(|g| !g.is_empty()));
        assert_eq!(second, vec![(me, vec![0x00, 0x01, b'R'])]);
        assert!(tcp.serves(me));

        // Login Accepted naming 5: `00 1f 'A'`, session (10), "5" right-justified in 20 digits (section 2.2.1).
        let mut accepted = vec![0x00, 0x1f, b'A'];
        accepted.extend_from_slice(b"OE00000000");
        accepted.extend_from_slice(b"                   5");
        send(&mut tcp, me, &accepted);
        // Replies 4, 5, 6: 4 came before this connection's start and is not sent; 5 and 6 go as 'S' packets.
        send(&mut tcp, me, &mold(4, &[b"old", b"hi", b"yo!"]));
        // Reply 5 again (a duplicate order's first reply): already carried.
        send(&mut tcp, me, &mold(5, &[b"hi"]));
        let mut expect = accepted.clone();
        expect.extend_from_slice(&[0x00, 0x03, b'S', b'h', b'i']);
        expect.extend_from_slice(&[0x00, 0x04, b'S', b'y', b'o', b'!']);
        let mut got = vec![0u8; expect.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, expect);
        assert_eq!(tcp.counters.resends_suppressed, 2);

        // Reply 8 while 7 is next: the stream cannot skip, the connection is closed.
        send(&mut tcp, me, &mold(8, &[b"late"]));
        assert_eq!(tcp.counters.closed_gap, 1);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "closed with nothing more: {rest:?}");
        assert!(!tcp.serves(me));
        // The session layer hears a Logout Request for the peer (section 2.3.4), once.
        assert_eq!(received(&mut tcp), vec![(me, vec![0x00, 0x01, b'O'])]);
        assert_eq!(received(&mut tcp), vec![]);
    }

    /// Section 2.2.7: the MoldUDP64 End of Session the pipeline sends at the end of the day (count 0xFFFF) goes
    /// to a TCP client as End of Session `00 01 'Z'`, after which the server closes the connection.
    #[test]
    fn end_of_session_becomes_soup_end_of_session_and_closes() {
        let (mut tcp, mut client, me) = listener_and_client();
        client.write_all(&[0x00, 0x01, b'R']).unwrap();
        poll_until(&mut tcp, |t| Some(received(t)).filter(|g| !g.is_empty()));
        let mut accepted = vec![0x00, 0x1f, b'A'];
        accepted.extend_from_slice(b"OE00000000                   1");
        send(&mut tcp, me, &accepted);
        send(&mut tcp, me, &mold(1, &[b"hi"]));
        // MoldUDP64 End of Session: session (10), next sequence 2, count ff ff.
        let mut end = b"OE00000000".to_vec();
        end.extend_from_slice(&2u64.to_be_bytes());
        end.extend_from_slice(&[0xff, 0xff]);
        send(&mut tcp, me, &end);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let mut want = accepted;
        want.extend_from_slice(&[0x00, 0x03, b'S', b'h', b'i', 0x00, 0x01, b'Z']);
        assert_eq!(got, want);
        assert!(!tcp.serves(me));
    }

    /// Section 2.2.2: after a Login Rejected the server closes the connection; a packet longer than the inbound
    /// buffer closes it too, counted.
    #[test]
    fn a_login_rejected_and_an_oversized_packet_close_the_connection() {
        let (mut tcp, mut client, me) = listener_and_client();
        client.write_all(&[0x00, 0x01, b'R']).unwrap();
        poll_until(&mut tcp, |t| Some(received(t)).filter(|g| !g.is_empty()));
        send(&mut tcp, me, &[0x00, 0x02, b'J', b'A']);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, [0x00, 0x02, b'J', b'A']);
        assert_eq!(received(&mut tcp), vec![], "never logged in: no logout to deliver");

        let mut client = TcpStream::connect(tcp.local_addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        client.write_all(&[0xff, 0xff, b'U']).unwrap();
        poll_until(&mut tcp, |t| {
            received(t);
            Some(()).filter(|_| t.counters.closed_malformed == 1)
        });
        let mut got = Vec::new();
        assert_eq!(client.read_to_end(&mut got).unwrap_or(0), 0);
        assert_eq!(tcp.stats().malformed, 1);
    }

    /// Section 2.3.1: a connection that does not log in within 30 s is closed; a logged-in one is not. Time is
    /// passed in.
    #[test]
    fn a_connection_without_a_login_is_closed_after_the_login_timeout() {
        let mut tcp = SoupTcp::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), SoupTcpLimits::DEFAULT).unwrap();
        let mut idle = TcpStream::connect(tcp.local_addr()).unwrap();
        let mut firm = TcpStream::connect(tcp.local_addr()).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let SocketAddr::V4(f) = firm.local_addr().unwrap() else { panic!("IPv4") };
        firm.write_all(&[0x00, 0x01, b'R']).unwrap();
        poll_until(&mut tcp, |t| Some(received(t)).filter(|g| !g.is_empty()));
        poll_until(&mut tcp, |t| Some(()).filter(|_| t.counters.accepted == 2));
        let mut accepted = vec![0x00, 0x1f, b'A'];
        accepted.extend_from_slice(b"OE00000000                   1");
        send(&mut tcp, f, &accepted);
        let now = Instant::now();
        assert_eq!(tcp.expire_logins(now + Duration::from_secs(29)), 0);
        assert_eq!(tcp.expire_logins(now + Duration::from_secs(31)), 1);
        assert_eq!(tcp.counters.closed_login_timeout, 1);
        let mut got = Vec::new();
        assert_eq!(idle.read_to_end(&mut got).unwrap_or(0), 0, "closed without a word");
        assert!(tcp.serves(f), "the logged-in connection stays");
    }
}
