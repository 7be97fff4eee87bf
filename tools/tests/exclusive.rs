//! Two appliances never share a journal or an address: with one serving, a second one on the same `wal.dir` is
//! refused naming the holder (before recovery could zero the live writer's record in flight), and one on another
//! directory but the same `backend.bind` (or `market_data.retransmit_bind`) is refused naming that key. The first
//! keeps answering orders throughout.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bourse_appliance::config::Config;
use bourse::demo::{demo_config, InProcess, TempDir};
use bourse::load::client::FirmConn;
use bourse::load::mix::Op;
use bourse_engine::Side;
use bourse_nic::wire::alpha::Alpha;

const START: Duration = Duration::from_secs(20);

/// A second appliance's configuration: fresh ports (from `demo_config`), its own name, the WAL in `dir`.
fn second(dir: &std::path::Path, name: &str) -> Config {
    let mut c = demo_config(dir, "msync", None).unwrap();
    c.appliance.name = name.into();
    c
}

fn refusal(config: &Config) -> String {
    match InProcess::start(config, START) {
        Ok(mut app) => {
            let _ = app.stop_and_join();
            panic!("a second appliance started ({})", config.appliance.name);
        }
        Err(e) => format!("{e:#}"),
    }
}

/// Logs in as ALPHA, enters one order with `user_ref` and waits for its answer.
fn answered(config: &Config, user_ref: u32) -> bool {
    let clock = Instant::now();
    let mut conn = FirmConn::open("ALPHA", "alpha-pw", Ipv4Addr::LOCALHOST, config.backend.bind).unwrap();
    conn.login(Duration::from_secs(5)).unwrap();
    let op = Op::Enter { user_ref, side: Side::Buy, qty: 1, symbol: 0, price: 1_490_000, ioc: false };
    conn.send(&op, &Alpha::new("AAPL").unwrap(), 7, 0, clock);
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(5);
    let mut rows = Vec::new();
    while rows.is_empty() && Instant::now() < until {
        conn.poll(&mut buf, 32, clock, &mut |a| rows.push(a.row));
        std::thread::sleep(Duration::from_millis(1));
    }
    rows == [7]
}

#[test]
fn a_second_appliance_on_the_same_journal_or_address_is_refused_and_the_first_keeps_serving() {
    let first_dir = TempDir::new("bourse-excl-first").unwrap();
    let first = demo_config(first_dir.path(), "msync", None).unwrap();
    let mut app = InProcess::start(&first, START).unwrap();
    assert!(answered(&first, 1), "the first appliance answers");

    // Same journal, other ports: refused by the directory's lock, naming this process as the holder.
    let same_dir = second(first_dir.path(), "excl-same-dir");
    let t = refusal(&same_dir);
    let holder = format!("is in use by process {}; stop it first", std::process::id());
    assert!(t.contains(&holder) && t.contains(&first_dir.path().display().to_string()), "{t}");

    // Another journal, same order-entry address: refused naming backend.bind.
    let other_dir = TempDir::new("bourse-excl-other").unwrap();
    let mut same_bind = second(other_dir.path(), "excl-same-bind");
    same_bind.backend.bind = first.backend.bind;
    let t = refusal(&same_bind);
    let key = format!("backend.bind {}: address in use (another appliance?)", first.backend.bind);
    assert!(t.contains(&key), "{t}");

    // Another journal and order port, same retransmission server: refused naming market_data.retransmit_bind.
    let third_dir = TempDir::new("bourse-excl-third").unwrap();
    let mut same_retx = second(third_dir.path(), "excl-same-retx");
    same_retx.market_data.retransmit_bind = first.market_data.retransmit_bind;
    let t = refusal(&same_retx);
    let addr = first.market_data.retransmit_bind.unwrap();
    assert!(t.contains(&format!("market_data.retransmit_bind {addr}: address in use (another appliance?)")), "{t}");

    assert!(answered(&first, 2), "the first appliance still answers after the refusals");
    let summary = app.stop_and_join().unwrap();
    assert!(summary.last_seq >= 2, "{summary}");

    // Stopped, the journal is free: the refusal was the lock, not the directory.
    let mut again = InProcess::start(&same_dir, START).expect("the journal is free once the first stopped");
    again.stop_and_join().unwrap();
}
