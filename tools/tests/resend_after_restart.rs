//! An order a firm sends again after the appliance restarted (or after a failover to a standby holding the same
//! journal) is not executed twice: the session layer starts from the UserRefNums the journal holds. The firm's
//! resend of UserRefNum 3 gets no new Accepted and leaves no second order in the journal; its next UserRefNum is
//! accepted as usual.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use bourse::demo::{demo_config, InProcess, TempDir};
use bourse::load::client::FirmConn;
use bourse::load::mix::Op;
use bourse_engine::{Command, Side};
use bourse_nic::wire::alpha::Alpha;
use bourse_persist::wal::scan::{scan_log, ScanOptions, Visit};

fn enter(conn: &mut FirmConn, user_ref: u32, clock: Instant) {
    let op = Op::Enter { user_ref, side: Side::Buy, qty: 1, symbol: 0, price: 1_490_000, ioc: false };
    conn.send(&op, &Alpha::new("AAPL").unwrap(), user_ref as u16, 0, clock);
}

/// Answers to the rows (UserRefNums) sent, collected for `wait`.
fn answers(conn: &mut FirmConn, wait: Duration, clock: Instant) -> Vec<u16> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let until = Instant::now() + wait;
    while Instant::now() < until {
        conn.poll(&mut buf, 32, clock, &mut |a| out.push(a.row));
        std::thread::sleep(Duration::from_millis(1));
    }
    out
}

/// (session, UserRefNum) of every journaled New Order.
fn journaled_orders(dir: &std::path::Path) -> Vec<(u16, u32)> {
    let mut out = Vec::new();
    scan_log(dir, ScanOptions { from_seq: 0, live: true }, |_, _, r| {
        if let Command::NewOrder(o) = r.input.command {
            out.push((o.session, o.user_ref));
        }
        Visit::Continue
    })
    .unwrap();
    out
}

#[test]
fn an_order_resent_after_a_restart_is_not_executed_twice() {
    let tmp = TempDir::new("bourse-resend").unwrap();
    let config = demo_config(tmp.path(), "msync", None).unwrap();
    let target = config.backend.bind;
    let target = SocketAddrV4::new(*target.ip(), target.port());
    let clock = Instant::now();

    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut conn = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, target).unwrap();
    conn.login(Duration::from_secs(5)).unwrap();
    for user_ref in 1..=3 {
        enter(&mut conn, user_ref, clock);
    }
    let first = answers(&mut conn, Duration::from_millis(300), clock);
    assert_eq!(first, vec![1, 2, 3], "the first run answers all three");
    app.stop_and_join().unwrap();

    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut conn = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, target).unwrap();
    conn.login(Duration::from_secs(5)).unwrap();
    enter(&mut conn, 3, clock); // the firm never saw the answer, say, and sends it again
    assert!(answers(&mut conn, Duration::from_millis(300), clock).is_empty(), "the resend is not accepted again");
    enter(&mut conn, 4, clock);
    assert_eq!(answers(&mut conn, Duration::from_millis(300), clock), vec![4]);
    app.stop_and_join().unwrap();

    let orders = journaled_orders(tmp.path());
    let alpha: Vec<u32> = orders.iter().filter(|(s, _)| *s == 0).map(|(_, u)| *u).collect();
    assert_eq!(alpha, vec![1, 2, 3, 4], "each UserRefNum journaled once: {orders:?}");
}
