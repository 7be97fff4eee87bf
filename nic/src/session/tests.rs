//! Session rules, one test each.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::wire::alpha::{Alpha, ClOrdId, SessionName, Symbol};
use crate::wire::ouch::{CancelOrder, EnterOrder, Inbound, Options, Side};

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
    let limits = SessionLimits {
        outcomes_max: 8,
        retransmit_slots: 8,
        retransmit_slot_bytes: 72,
        idle_timeout_ns: 1_000,
    };
    Sessions::new(&firms, limits)
}

fn login(user: &str, pw: &str) -> Vec<u8> {
    let r = soup::Repr::LoginRequest(soup::LoginRequest {
        username: Alpha::new(user).unwrap(),
        password: Alpha::new(pw).unwrap(),
        session: SessionName::BLANK,
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
            next_sequence: 1
        }]
    );
    assert_eq!(s.peer(3), Some(src(4000)));
    assert_eq!(s.counters().logins, 1);
    let mut buf = [0u8; 64];
    let n = s.emit_login_accepted(3, &mut buf).unwrap();
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

#[test]
fn failed_logins_dropped_and_counted() {
    let mut s = sessions();
    assert_eq!(
        one(&mut s, src(4000), &login("FIRM1", "nope"), 0),
        vec![Outcome::Drop(DropReason::BadPassword)]
    );
    assert_eq!(
        one(&mut s, src(4000), &login("NOBODY", "pw1"), 0),
        vec![Outcome::Drop(DropReason::UnknownUser)]
    );
    assert_eq!(
        one(&mut s, src(4001), &login("FIRM1", "pw1"), 0),
        vec![Outcome::Drop(DropReason::SourceNotAllowed)]
    );
    let c = s.counters();
    assert_eq!(c.drops_for(DropReason::BadPassword), 1);
    assert_eq!(c.drops_for(DropReason::UnknownUser), 1);
    assert_eq!(c.drops_for(DropReason::SourceNotAllowed), 1);
    assert_eq!(s.peer(3), None);
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
fn duplicate_and_lower_user_ref_never_passed_on() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    assert!(matches!(
        one(&mut s, src(4000), &enter(5), 0)[0],
        Outcome::Ouch { .. }
    ));
    // The appliance answered UserRefNum 5 with outbound sequence 1.
    assert_eq!(s.sequence_reply(3, b"A-reply", Some(5)).unwrap(), 1);
    assert_eq!(
        one(&mut s, src(4000), &enter(5), 0),
        vec![Outcome::Duplicate {
            session: 3,
            user_ref: 5,
            reply_sequence: Some(1)
        }]
    );
    assert_eq!(
        one(&mut s, src(4000), &enter(4), 0),
        vec![Outcome::Duplicate {
            session: 3,
            user_ref: 4,
            reply_sequence: None
        }]
    );
    assert_eq!(s.counters().duplicates, 2);
    assert_eq!(s.counters().messages, 1);
    // Cancel names an existing order: not subject to the increase rule.
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
    assert!(matches!(
        one(&mut s, src(4000), &enter(6), 0)[0],
        Outcome::Ouch { .. }
    ));
}

#[test]
fn gap_request_answered_from_store() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    for i in 1..=3u8 {
        s.sequence_reply(3, &[i; 4], None).unwrap();
    }
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
    let mut buf = [0u8; 1500];
    let n = s.answer_request(3, &request, &mut buf, 1500).unwrap();
    let p = moldudp64::Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(p.sequence(), 2);
    assert_eq!(p.count(), 2);
    let msgs: Vec<&[u8]> = p.messages().collect();
    assert_eq!(msgs, vec![&[2u8; 4][..], &[3u8; 4][..]]);
    // Beyond the retained window (8 slots): answered with what is retained from there, here nothing.
    for i in 0..10u8 {
        s.sequence_reply(3, &[i; 4], None).unwrap();
    }
    let n = s.answer(3, 1, 5, &mut buf, 1500).unwrap();
    assert_eq!(
        moldudp64::Packet::new_checked(&buf[..n]).unwrap().count(),
        0
    );
    // MTU bounds the answer: 20 header + 3 × 6 fits in 38 bytes.
    let n = s.answer(3, 6, 8, &mut buf, 38).unwrap();
    assert_eq!(
        moldudp64::Packet::new_checked(&buf[..n]).unwrap().count(),
        3
    );
    // A request naming another session from this address is soup garbage, not a request.
    let mut other = req;
    other[..10].copy_from_slice(b"FIRM2OUT  ");
    assert_eq!(
        one(&mut s, src(4000), &other, 0),
        vec![Outcome::Drop(DropReason::Malformed)]
    );
}

#[test]
fn idle_sessions_expire() {
    let mut s = sessions();
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 100);
    assert_eq!(s.expire(1_000), 0);
    assert_eq!(s.expire(1_101), 1);
    assert_eq!(s.peer(3), None);
    assert_eq!(s.counters().idle_logouts, 1);
}

#[test]
fn user_refs_already_in_the_journal_are_duplicates_after_a_restart() {
    let mut s = sessions();
    // Recovery (or a promoted standby) saw session 3's orders up to UserRefNum 9 in the journal.
    s.note_journaled(3, 9);
    s.note_journaled(3, 4); // never lowers it
    s.note_journaled(77, 1); // unknown session: ignored
    one(&mut s, src(4000), &login("FIRM1", "pw1"), 0);
    assert_eq!(
        one(&mut s, src(4000), &enter(9), 0),
        vec![Outcome::Duplicate { session: 3, user_ref: 9, reply_sequence: None }],
        "a firm resending its last order to the new node does not execute it again"
    );
    assert!(matches!(one(&mut s, src(4000), &enter(10), 0)[0], Outcome::Ouch { .. }));
}
