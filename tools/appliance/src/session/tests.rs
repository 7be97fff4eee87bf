//! Session rules, one test each.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use bourse_nic::wire::alpha::{Alpha, ClOrdId, SessionName, Symbol};
use bourse_nic::wire::ouch::{CancelOrder, EnterOrder, Inbound, Options, Side};

const FIRM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn src(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(FIRM_IP, port)
}

fn sessions() -> Sessions {
    let firms = [
        FirmConfig {
            username: Alpha::new("FIRM1").unwrap(),
            password: Alpha::new("pw1").unwrap(),
            sources: vec![AllowedSource {
                ip: FIRM_IP,
                port: Some(4000),
            }],
            session: 3,
            account: 30,
            session_name: SessionName::new("FIRM1OUT").unwrap(),
        },
        FirmConfig {
            username: Alpha::new("FIRM2").unwrap(),
            password: Alpha::new("pw2").unwrap(),
            sources: vec![AllowedSource {
                ip: Ipv4Addr::new(10, 0, 0, 2),
                port: None,
            }],
            session: 4,
            account: 40,
            session_name: SessionName::new("FIRM2OUT").unwrap(),
        },
    ];
    Sessions::new(&firms, LIMITS)
}

const LIMITS: SessionLimits =
    SessionLimits { idle_timeout_ns: 1_000, heartbeat_interval_ns: 100, silent_to_unlisted_sources: false };

fn login(user: &str, pw: &str) -> Vec<u8> {
    login_to(user, pw, SessionName::BLANK)
}

fn login_to(user: &str, pw: &str, session: SessionName) -> Vec<u8> {
    let r = soup::Repr::LoginRequest(soup::LoginRequest {
        username: Alpha::new(user).unwrap(),
        password: Alpha::new(pw).unwrap(),
        session,
        sequence: 0,
    });
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

fn enter(user_ref: u32) -> Vec<u8> {
    let m = Inbound::EnterOrder(EnterOrder {
        user_ref,
        side: Side::Buy,
        quantity: 100,
        symbol: Symbol::new("AAPL").unwrap(),
        price: 10_000,
        time_in_force: b'0',
        display: b'Y',
        capacity: b'A',
        intermarket_sweep: b'N',
        cross_type: b'N',
        cl_ord_id: ClOrdId::new("X").unwrap(),
        options: Options::default(),
    });
    let mut payload = vec![0; m.buffer_len()];
    m.emit(&mut payload).unwrap();
    let p = soup::Repr::UnsequencedData(&payload);
    let mut b = vec![0; p.buffer_len()];
    p.emit(&mut b).unwrap();
    b
}

fn one(s: &mut Sessions, from: SocketAddrV4, d: &[u8], now: u64) -> Vec<Outcome> {
    let mut v = Vec::new();
    s.on_datagram(from, d, now, &mut |o| v.push(o));
    v
}

#[test]
fn login_ok_binds_source() {
    let mut s = sessions();
    assert_eq!(
        one(&mut s, src(4000), &login("FIRM1", "pw1"), 0),
        vec![Outcome::LoginAccepted {
            session: 3,
            requested_sequence: 0
        }]
    );
    assert_eq!(s.peer(3), Some(src(4000)));
    assert_eq!(s.counters().logins, 1);
    let mut buf = [0u8; 64];
    let n = s.emit_login_accepted(3, 1, &mut buf).unwrap();
    assert_eq!(
        &buf[..13],
        &[0, 31, b'A', b'F', b'I', b'R', b'M', b'1', b'O', b'U', b'T', b' ', b' ']
    );
    assert_eq!(n, 33);
    // Any-port firm.
    let any = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 55_555);
    assert!(matches!(
        one(&mut s, any, &login("FIRM2", "pw2"), 0)[0],
        Outcome::LoginAccepted { session: 4, .. }
    ));
}

/// SoupBinTCP 3.00 section 2.2.2: an invalid Login Request is answered with Login Rejected, reason 'A' (invalid
/// username and password combination) or 'S' (Requested Session invalid or not available).
#[test]
fn failed_logins_are_answered_and_counted_by_reason() {
    let mut s = sessions();
    let rejected = |reason, code| vec![Outcome::LoginRejected { reason, code }];
    assert_eq!(one(&mut s, src(4000), &login("FIRM1", "nope"), 0), rejected(DropReason::BadPassword, b'A'));
    assert_eq!(one(&mut s, src(4000), &login("NOBODY", "pw1"), 0), rejected(DropReason::UnknownUser, b'A'));
    // FIRM1 may send from port 4000 only; 4001 is on its address, so the source is listed (answered).
    assert_eq!(one(&mut s, src(4001), &login("FIRM1", "pw1"), 0), rejected(DropReason::SourceNotAllowed, b'A'));
    let c = s.counters();
    assert_eq!(c.drops_for(DropReason::BadPassword), 1);
    assert_eq!(c.drops_for(DropReason::UnknownUser), 1);
    assert_eq!(c.drops_for(DropReason::SourceNotAllowed), 1);
    assert_eq!((c.login_rejected_not_authorized, c.login_rejected_session_unavailable), (3, 0));
    assert_eq!(s.peer(3), None);
    // Hand-checked bytes of section 2.2.2's table: length 2 (type + reason), 'J', reason code.
    let mut buf = [0xa5u8; 8];
    assert_eq!(Sessions::emit_login_rejected(b'A', &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], &[0x00, 0x02, b'J', b'A']);
    assert_eq!(Sessions::emit_login_rejected(b'S', &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], &[0x00, 0x02, b'J', b'S']);
}

#[test]
fn sources_in_no_firms_list_are_silent_when_so_configured() {
    let firms_silent = |silent| {
        let mut s = sessions();
        s.limits.silent_to_unlisted_sources = silent;
        s
    };
    let stranger = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 4000);
    // Default: everyone is answered, strangers too.
    let mut s = firms_silent(false);
    assert_eq!(
        one(&mut s, stranger, &login("FIRM1", "pw1"), 0),
        vec![Outcome::LoginRejected { reason: DropReason::SourceNotAllowed, code: b'A' }]
    );
    // Silent: a stranger learns nothing, whatever it tried; a listed address is still answered.
    let mut s = firms_silent(true);
    assert_eq!(one(&mut s, stranger, &login("FIRM1", "pw1"), 0), vec![Outcome::Drop(DropReason::SourceNotAllowed)]);
    assert_eq!(one(&mut s, stranger, &login("NOBODY", "x"), 0), vec![Outcome::Drop(DropReason::UnknownUser)]);
    assert_eq!(
        one(&mut s, src(4000), &login("FIRM1", "nope"), 0),
        vec![Outcome::LoginRejected { reason: DropReason::BadPassword, code: b'A' }]
    );
    let c = s.counters();
    assert_eq!((c.login_rejects_silent, c.login_rejected_not_authorized), (2, 1));
    assert_eq!(c.drops_for(DropReason::SourceNotAllowed) + c.drops_for(DropReason::UnknownUser), 2);
}

/// Section 2.3.1: Requested Session names the session to log into, or is blank for the currently active one;
/// section 2.2.2: one that is invalid or not available is rejected 'S'. Username and password are
/// case-insensitive.
#[test]
fn the_requested_session_must_be_blank_or_the_firms_own() {
    let mut s = sessions();
    assert_eq!(
        one(&mut s, src(4000), &login_to("FIRM1", "pw1", SessionName::new("NOSUCHSESS").unwrap()), 0),
        vec![Outcome::LoginRejected { reason: DropReason::NoSuchSession, code: b'S' }]
    );
    // Another firm's session name is no better.
    assert_eq!(
        one(&mut s, src(4000), &login_to("FIRM1", "pw1", SessionName::new("FIRM2OUT").unwrap()), 0),
        vec![Outcome::LoginRejected { reason: DropReason::NoSuchSession, code: b'S' }]
    );
    assert_eq!(s.peer(3), None);
    assert!(matches!(
        one(&mut s, src(4000), &login_to("firm1", "PW1", SessionName::new("FIRM1OUT").unwrap()), 0)[0],
        Outcome::LoginAccepted { session: 3, .. }
    ));
    // The session is live from 4000 now: the same firm from FIRM2's address would take it over ('S').
    s.states[0].firm.sources.push(AllowedSource { ip: FIRM_IP, port: Some(4001) });
    assert_eq!(
        one(&mut s, src(4001), &login("FIRM1", "pw1"), 0),
        vec![Outcome::LoginRejected { reason: DropReason::SessionInUse, code: b'S' }]
    );
    let c = s.counters();
    assert_eq!(c.drops_for(DropReason::NoSuchSession), 2);
    assert_eq!(c.login_rejected_session_unavailable, 3);
}

/// Sections 1.3 and 2.2.4: the server sends a Server Heartbeat whenever more than a second has passed since it
/// last sent anything; anything sent (replies, Login Accepted) counts. Time is driven explicitly: the test
/// limits make the interval 100 ns.
#[test]
fn idle_sessions_get_a_heartbeat_each_interval_and_busy_ones_none() {
    let mut s = sessions();
    let due = |s: &mut Sessions, now| {
        let mut v = Vec::new();
        s.heartbeats_due(now, &mut |session, peer| v.push((session, peer)));
        v
    };
    assert_eq!(due(&mut s, 500), vec![], "nobody is logged in");
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 1_000);
    assert_eq!(due(&mut s, 1_099), vec![], "the Login Accepted was sent at 1000");
    assert_eq!(due(&mut s, 1_100), vec![(3, src(4000))]);
    assert_eq!(due(&mut s, 1_150), vec![], "a heartbeat counts as sent");
    assert_eq!(due(&mut s, 1_200), vec![(3, src(4000))]);
    // A reply at 1250 puts the next heartbeat at 1350.
    s.note_sent(3, 1_250);
    assert_eq!(due(&mut s, 1_349), vec![]);
    assert_eq!(due(&mut s, 1_350), vec![(3, src(4000))]);
    assert_eq!(s.counters().server_heartbeats, 3);
    // Logged out: no more heartbeats.
    one(&mut s, src(4000), &[0, 1, b'O'], 1_360);
    assert_eq!(due(&mut s, 5_000), vec![]);
    // Hand-checked bytes of section 2.2.4's table: length 1, type 'H'.
    assert_eq!(SERVER_HEARTBEAT, [0x00, 0x01, b'H']);
}

#[test]
fn unknown_source_and_garbage_dropped() {
    let mut s = sessions();
    assert_eq!(
        one(&mut s, src(4000), &enter(1), 0),
        vec![Outcome::Drop(DropReason::NotLoggedIn)]
    );
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    assert_eq!(
        one(&mut s, src(4002), &enter(1), 0),
        vec![Outcome::Drop(DropReason::NotLoggedIn)]
    );
    assert_eq!(
        one(&mut s, src(4000), &[0, 9, b'U', 1], 0),
        vec![Outcome::Drop(DropReason::Malformed)]
    );
    assert_eq!(
        one(&mut s, src(4000), &[0, 2, b'U', b'?'], 0),
        vec![Outcome::Drop(DropReason::BadOuch)]
    );
    assert_eq!(
        one(&mut s, src(4000), &[0, 1, b'H'], 0),
        vec![Outcome::Drop(DropReason::UnexpectedPacket)]
    );
    assert_eq!(s.counters().drops_for(DropReason::NotLoggedIn), 2);
    assert_eq!(s.counters().drops_for(DropReason::Malformed), 1);
}

#[test]
fn orders_heartbeat_logout() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    let mut d = enter(1);
    d.extend_from_slice(&[0, 1, b'R']);
    let out = one(&mut s, src(4000), &d, 5);
    assert!(matches!(
        out[0],
        Outcome::Ouch {
            session: 3,
            account: 30,
            message: Inbound::EnterOrder(EnterOrder { user_ref: 1, .. })
        }
    ));
    assert_eq!(out[1], Outcome::Heartbeat { session: 3 });
    assert_eq!(
        one(&mut s, src(4000), &[0, 1, b'O'], 6),
        vec![Outcome::Logout { session: 3 }]
    );
    assert_eq!(
        one(&mut s, src(4000), &enter(2), 7),
        vec![Outcome::Drop(DropReason::NotLoggedIn)]
    );
}

#[test]
fn every_order_is_passed_on_the_appliance_judges_user_refs() {
    // UserRefNum order is replicated state (the journal knows which refs a session used): the session layer
    // passes every well-formed message on, repeats included, and the appliance decides.
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    for r in [5, 5, 4] {
        assert!(matches!(
            one(&mut s, src(4000), &enter(r), 0)[0],
            Outcome::Ouch { message: Inbound::EnterOrder(EnterOrder { user_ref, .. }), .. } if user_ref == r
        ));
    }
    assert_eq!(s.counters().messages, 3);
    let c = Inbound::CancelOrder(CancelOrder {
        user_ref: 5,
        quantity: 0,
    });
    let mut p = [0u8; 9];
    c.emit(&mut p).unwrap();
    let mut d = vec![0, 10, b'U'];
    d.extend_from_slice(&p);
    assert!(matches!(
        one(&mut s, src(4000), &d, 0)[0],
        Outcome::Ouch {
            message: Inbound::CancelOrder(_),
            ..
        }
    ));
}

#[test]
fn a_datagram_of_200_packets_yields_200_outcomes() {
    // Nothing is cut off after some number of packets: each one is handled and reaches the caller.
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    let mut d = Vec::new();
    for r in 1..=200u32 {
        d.extend_from_slice(&enter(r));
    }
    let out = one(&mut s, src(4000), &d, 0);
    assert_eq!(out.len(), 200);
    assert!(out.iter().all(|o| matches!(o, Outcome::Ouch { .. })));
}

#[test]
fn a_login_replayed_from_another_port_cannot_take_the_session_over() {
    let mut s = sessions();
    let firm2 = |port| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port);
    assert!(matches!(one(&mut s, firm2(5000), &login("FIRM2", "pw2"), 0)[0], Outcome::LoginAccepted { .. }));
    // The same (captured) login from another port of the allowed address is refused ('S': session not
    // available, SoupBinTCP 3.00 section 2.2.2) and counted.
    assert_eq!(
        one(&mut s, firm2(6000), &login("FIRM2", "pw2"), 1),
        vec![Outcome::LoginRejected { reason: DropReason::SessionInUse, code: b'S' }]
    );
    assert_eq!(s.counters().drops_for(DropReason::SessionInUse), 1);
    assert_eq!(s.peer(4), Some(firm2(5000)), "the real firm keeps its session");
    // Logging in again from the bound source is fine (a firm that lost its Login Accepted).
    assert!(matches!(one(&mut s, firm2(5000), &login("FIRM2", "pw2"), 2)[0], Outcome::LoginAccepted { .. }));
    // After a logout the session may move.
    one(&mut s, firm2(5000), &[0, 1, b'O'], 3);
    assert!(matches!(one(&mut s, firm2(6000), &login("FIRM2", "pw2"), 4)[0], Outcome::LoginAccepted { .. }));
    // And after the idle timeout logged it out.
    s.expire(2_000, &mut |_, _| {});
    assert!(matches!(one(&mut s, firm2(7000), &login("FIRM2", "pw2"), 2_001)[0], Outcome::LoginAccepted { .. }));
}

#[test]
fn request_packets_for_the_own_session_are_recognised() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    let mut req = [0u8; 20];
    moldudp64::Request {
        session: SessionName::new("FIRM1OUT").unwrap(),
        sequence: 2,
        count: 5,
    }
    .emit(&mut req)
    .unwrap();
    let out = one(&mut s, src(4000), &req, 0);
    let Outcome::Retransmit {
        session: 3,
        request,
    } = out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!((request.sequence, request.count), (2, 5));
    // A request naming another session from this address is soup garbage, not a request.
    let mut other = req;
    other[..10].copy_from_slice(b"FIRM2OUT  ");
    assert_eq!(
        one(&mut s, src(4000), &other, 0),
        vec![Outcome::Drop(DropReason::Malformed)]
    );
}

/// Section 1.3: a server that hears nothing from the client for an extended period (typically 15 s) ends the
/// connection. The session layer names each expired session and where it was, so the pipeline sends it the
/// notice (a Debug Packet, section 2.1) before forgetting the address.
#[test]
fn idle_sessions_expire_with_a_notice() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 100);
    let mut gone = Vec::new();
    // Client heartbeats (section 2.3.3) keep it alive.
    one(&mut s, src(4000), &[0, 1, b'R'], 900);
    assert_eq!(s.expire(1_900, &mut |id, peer| gone.push((id, peer))), 0);
    assert_eq!(s.expire(1_901, &mut |id, peer| gone.push((id, peer))), 1);
    assert_eq!(gone, vec![(3, src(4000))]);
    assert_eq!(s.peer(3), None);
    assert_eq!(s.counters().idle_logouts, 1);
    assert_eq!(s.expire(9_000, &mut |id, peer| gone.push((id, peer))), 0, "logged out once");
    // The notice is a well-formed Debug Packet: length = 1 + text, type '+'.
    let p = soup::Packet::new_checked(IDLE_LOGOUT_NOTICE).unwrap();
    assert_eq!(p.total_len(), IDLE_LOGOUT_NOTICE.len());
    assert!(matches!(soup::Repr::parse(&p), Ok(soup::Repr::Debug(t)) if t.starts_with(b"logged out")));
}

/// OUCH 5.0 section 2.1: Side is B, S, T or E. An Enter Order with Side 'Q' is answered (Rejected 0x0009 Invalid
/// Side, built by the pipeline), not dropped as unparseable.
#[test]
fn enter_with_an_invalid_side_is_refused_not_dropped() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    let mut d = enter(5);
    // SoupBinTCP length (2) | 'U' | OUCH: type at 3, UserRefNum 4..8, Side at 8.
    assert_eq!(d[8], b'B');
    d[8] = b'Q';
    assert_eq!(
        one(&mut s, src(4000), &d, 0),
        vec![Outcome::OuchInvalidSide { session: 3, user_ref: 5, cl_ord_id: ClOrdId::new("X").unwrap() }]
    );
}
