//! The session layer on arbitrary datagrams from two sources, one of which may log in.
#![no_main]
use std::net::{Ipv4Addr, SocketAddrV4};

use bourse_appliance::session::{AllowedSource, FirmConfig, SessionLimits, Sessions};
use bourse_nic::wire::alpha::{Alpha, SessionName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let firm = FirmConfig {
        username: Alpha(*b"FIRM1 "),
        password: Alpha(*b"pw1       "),
        sources: vec![AllowedSource {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: None,
        }],
        session: 0,
        account: 0,
        session_name: SessionName::new("FIRM1OUT").unwrap(),
    };
    let limits = SessionLimits { idle_timeout_ns: 10, heartbeat_interval_ns: 5, ..SessionLimits::DEFAULT };
    let mut s = Sessions::new(&[firm], limits);
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000);
    // Split the input into datagrams at a length byte, so one run can log in and then send more.
    let mut rest = data;
    let mut now = 0;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (d, r) = tail.split_at(n);
        s.on_datagram(src, d, now, &mut |o| {
            let _ = o;
        });
        now += 1;
        s.expire(now, &mut |_, _| {});
        s.heartbeats_due(now, &mut |_, _| {});
        rest = r;
    }
    let mut buf = [0u8; 1500];
    let _ = s.emit_login_accepted(0, 1, &mut buf);
});
