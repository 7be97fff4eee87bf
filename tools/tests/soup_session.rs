//! A SoupBinTCP 3.00 client written from the specification, run against both order-entry transports of one
//! in-process appliance: SoupBinTCP over TCP (`[backend] soup_tcp_bind`) and the UDP framing (README, "Order entry
//! on UDP"). Over TCP the client does what the spec says and nothing more: it frames packets by their 2-byte length
//! (section 1.1) and counts Sequenced Data packets from the sequence its Login Accepted named (sections 1.2, 2.2.3).
//! Over UDP the same checks read the MoldUDP64 reply packets, whose sequence numbers are explicit.
//!
//! Checked on each: Login Rejected 'A' and 'S' (2.2.2, and over TCP the connection closes), login with Requested
//! Session blank or the firm's own and a Requested Sequence Number (2.3.1), replay from that sequence byte for byte
//! (1.2), Server Heartbeats on an idle session (1.3, 2.2.4), Logout Request (2.3.4, the TCP connection closes), and
//! over TCP a broken connection: the firm logs in again at once from a new one and resumes where it left off.
//! Waits are bounded (the appliance's 1 s heartbeat is awaited for at most 5 s); nothing measures time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use bourse::demo::{demo_config, InProcess, TempDir};
use bourse_nic::wire::alpha::{Alpha, ClOrdId, SessionName, Symbol};
use bourse_nic::wire::moldudp64;
use bourse_nic::wire::ouch::{self, EnterOrder, Inbound, Options, Side};
use bourse_nic::wire::soup;

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the server sent, transport aside.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    Accepted { session: [u8; 10], sequence: u64 },
    Rejected(u8),
    /// A sequenced message and its sequence number.
    Message(u64, Vec<u8>),
    Heartbeat,
    Debug,
    /// The server closed the connection (TCP only).
    Closed,
}

enum Wire {
    Tcp { stream: TcpStream, buf: Vec<u8>, next_seq: u64 },
    Udp { sock: UdpSocket, pending: Vec<Got> },
}

impl Wire {
    fn tcp(addr: SocketAddrV4) -> Wire {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire::Tcp { stream, buf: Vec::new(), next_seq: 0 }
    }

    fn udp(addr: SocketAddrV4) -> Wire {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Wire::Udp { sock, pending: Vec::new() }
    }

    fn send(&mut self, p: soup::Repr<'_>) {
        let mut b = vec![0; p.buffer_len()];
        p.emit(&mut b).unwrap();
        match self {
            Wire::Tcp { stream, .. } => stream.write_all(&b).unwrap(),
            Wire::Udp { sock, .. } => {
                sock.send(&b).unwrap();
            }
        }
    }

    fn login(&mut self, password: &str, session: &[u8; 10], sequence: u64) {
        self.send(soup::Repr::LoginRequest(soup::LoginRequest {
            username: Alpha::new("ALPHA").unwrap(),
            password: Alpha::new(password).unwrap(),
            session: Alpha(*session),
            sequence,
        }));
    }

    fn order(&mut self, user_ref: u32) {
        let m = Inbound::EnterOrder(EnterOrder {
            user_ref,
            side: Side::Buy,
            quantity: 10,
            symbol: Symbol::new("AAPL").unwrap(),
            price: 1_400_000 + u64::from(user_ref) * 100,
            time_in_force: b'0',
            display: b'Y',
            capacity: b'P',
            intermarket_sweep: b'N',
            cross_type: b'N',
            cl_ord_id: ClOrdId::new(&format!("SOUP-{user_ref}")).unwrap(),
            options: Options::default(),
        });
        let mut payload = vec![0; m.buffer_len()];
        m.emit(&mut payload).unwrap();
        self.send(soup::Repr::UnsequencedData(&payload));
    }

    /// The next thing the server sent, within `wait`.
    fn next(&mut self, wait: Duration) -> Option<Got> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self {
                Wire::Tcp { stream, buf, next_seq } => {
                    // Section 1.1: a logical packet is a 2-byte big-endian length, then that many bytes.
                    if buf.len() >= 2 {
                        let total = 2 + usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                        if buf.len() >= total {
                            let p: Vec<u8> = buf.drain(..total).collect();
                            return Some(match p[2] {
                                b'A' => {
                                    let Ok(soup::Repr::LoginAccepted(a)) =
                                        soup::Repr::parse(&soup::Packet::new_checked(&p[..]).unwrap())
                                    else {
                                        panic!("bad Login Accepted {p:?}")
                                    };
                                    *next_seq = a.sequence;
                                    Got::Accepted { session: a.session.0, sequence: a.sequence }
                                }
                                b'J' => Got::Rejected(p[3]),
                                b'S' => {
                                    *next_seq += 1;
                                    Got::Message(*next_seq - 1, p[3..].to_vec())
                                }
                                b'H' => Got::Heartbeat,
                                b'+' => Got::Debug,
                                t => panic!("packet type {t:?} from the server"),
                            });
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk) {
                        Ok(0) => return Some(Got::Closed),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(Got::Closed),
                        Err(e) => panic!("reading: {e}"),
                    }
                }
                Wire::Udp { sock, pending } => {
                    if !pending.is_empty() {
                        return Some(pending.remove(0));
                    }
                    let mut d = [0u8; 9_000];
                    let Ok(n) = sock.recv(&mut d) else { continue };
                    let d = &d[..n];
                    if d[0] != 0 {
                        let p = moldudp64::Packet::new_checked(d).unwrap();
                        for (i, m) in p.messages().enumerate() {
                            pending.push(Got::Message(p.sequence() + i as u64, m.to_vec()));
                        }
                        continue;
                    }
                    for p in soup::Packets::new(d) {
                        pending.push(match p.unwrap() {
                            soup::Repr::LoginAccepted(a) => Got::Accepted { session: a.session.0, sequence: a.sequence },
                            soup::Repr::LoginRejected(c) => Got::Rejected(c),
                            soup::Repr::ServerHeartbeat => Got::Heartbeat,
                            soup::Repr::Debug(_) => Got::Debug,
                            other => panic!("{other:?} from the server"),
                        });
                    }
                }
            }
        }
        None
    }

    /// The next packet that is not a Server Heartbeat.
    fn next_data(&mut self) -> Option<Got> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.next(Duration::from_millis(200)) {
                Some(Got::Heartbeat) | None => {}
                got => return got,
            }
        }
        None
    }

    fn is_tcp(&self) -> bool {
        matches!(self, Wire::Tcp { .. })
    }
}

fn accepted_ref(m: &[u8]) -> u32 {
    match ouch::Outbound::parse(m) {
        Ok(ouch::Outbound::OrderAccepted(a)) => a.user_ref,
        other => panic!("not an Order Accepted: {other:?}"),
    }
}

/// One firm's day over `open()`'s transport, its orders numbered from `first_ref`.
fn session_day(open: &dyn Fn() -> Wire, own: [u8; 10], first_ref: u32) {
    // Section 2.2.2: the only packet an invalid login gets; over TCP the server then closes the connection.
    let mut w = open();
    w.login("wrong", &[b' '; 10], 1);
    assert_eq!(w.next_data(), Some(Got::Rejected(b'A')), "Not Authorized");
    if w.is_tcp() {
        assert_eq!(w.next_data(), Some(Got::Closed));
        w = open();
    }
    w.login("alpha-pw", b"NOSUCHSESS", 1);
    assert_eq!(w.next_data(), Some(Got::Rejected(b'S')), "Session not available");
    if w.is_tcp() {
        assert_eq!(w.next_data(), Some(Got::Closed));
        w = open();
    }

    // Blank Requested Session = the current one; Requested Sequence Number 0 = from the next message.
    w.login("alpha-pw", &[b' '; 10], 0);
    let Some(Got::Accepted { session, sequence: start }) = w.next_data() else { panic!("no Login Accepted") };
    assert_eq!(session, own);
    w.order(first_ref);
    w.order(first_ref + 1);
    let a = w.next_data();
    let b = w.next_data();
    let (Some(Got::Message(s1, m1)), Some(Got::Message(s2, m2))) = (a, b) else { panic!("no replies") };
    assert_eq!((s1, s2), (start, start + 1));
    assert_eq!((accepted_ref(&m1), accepted_ref(&m2)), (first_ref, first_ref + 1));

    // Section 2.2.4: an idle session hears a Server Heartbeat (sent after a second without data).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut heard = false;
    while !heard && Instant::now() < deadline {
        heard = w.next(Duration::from_millis(200)) == Some(Got::Heartbeat);
    }
    assert!(heard, "a Server Heartbeat on an idle session");

    // Section 2.3.4: Logout Request; the TCP server closes the connection.
    w.send(soup::Repr::LogoutRequest);
    if w.is_tcp() {
        assert_eq!(w.next_data(), Some(Got::Closed));
    }

    // Section 1.2: log in again naming the session and the next sequence wanted: the second reply again,
    // byte for byte, then the stream goes on.
    let mut w = open();
    w.login("alpha-pw", &own, start + 1);
    assert_eq!(w.next_data(), Some(Got::Accepted { session: own, sequence: start + 1 }));
    assert_eq!(w.next_data(), Some(Got::Message(start + 1, m2.clone())), "replayed byte for byte");
    w.order(first_ref + 2);
    let Some(Got::Message(s3, m3)) = w.next_data() else { panic!("no reply to the third order") };
    assert_eq!((s3, accepted_ref(&m3)), (start + 2, first_ref + 2));

    if w.is_tcp() {
        // The connection breaks without a logout: the firm logs in again at once from a new connection (the
        // old one's session was logged out when it went) and resumes after what it has.
        drop(w);
        let mut w = open();
        let mut accepted = None;
        for _ in 0..20 {
            w.login("alpha-pw", &own, start + 3);
            match w.next_data() {
                Some(Got::Accepted { sequence, .. }) => {
                    accepted = Some(sequence);
                    break;
                }
                // The appliance may not have seen the old connection go yet: 'S', and it closes this one.
                Some(Got::Rejected(b'S')) => {
                    assert_eq!(w.next_data(), Some(Got::Closed));
                    std::thread::sleep(Duration::from_millis(50));
                    w = open();
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted, Some(start + 3), "logged in again after the connection broke");
        w.send(soup::Repr::LogoutRequest);
    } else {
        w.send(soup::Repr::LogoutRequest);
    }
}

#[test]
fn a_spec_written_soupbintcp_client_works_over_tcp_and_over_udp() {
    let tmp = TempDir::new("bourse-soup-session").unwrap();
    let mut config = demo_config(tmp.path(), "msync", None).unwrap();
    let tcp = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_tcp_port());
    config.backend.soup_tcp_bind = Some(tcp);
    let udp = config.backend.bind;
    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let own = SessionName::new("OE00000000").unwrap().0;

    session_day(&|| Wire::tcp(tcp), own, 1);
    // The same session over the other transport: one stream, continued (its sequence numbers go on).
    session_day(&|| Wire::udp(udp), own, 10);

    let summary = app.stop_and_join().unwrap();
    assert_eq!(summary.outputs_unsent, 0);
}
