//! The SQLite path end to end: ingest a journal with real trades, check the books against the journal, T+2 over a
//! weekend and a holiday, settle (and settle again: nothing repeats), reconcile, catch a corrupted balance, and
//! report a failed delivery.

mod support;

use bourse_engine::{
    AddAccount, AddSymbol, Bands, BindSession, Command, Deposit, DepositShares, Input, NewOrder, OrderKind, Side,
    TimeInForce,
};
use bourse_ledger::store::{open, query_int, Val};
use support::*;

#[test]
fn ingest_settle_reconcile() {
    let root = tempdir("sqlite-books");
    let wal = root.join("wal");
    // Wednesday 23rd and Thursday 24th December 2026; Friday 25th is a configured holiday.
    let j = write_journal(&wal, 7, 3_000, &["2026-12-23", "2026-12-24"]);
    assert!(j.trades > 50, "the workload should trade: {}", j.trades);
    let holidays = root.join("holidays.txt");
    std::fs::write(&holidays, "# exchange holidays\n2026-12-25\n").unwrap();
    let db = root.join("ledger.sqlite3");
    let (w, d, h) = (wal.to_str().unwrap(), db.to_str().unwrap(), holidays.to_str().unwrap());
    let out = run_ok(&["ingest", "--commit", "whole", "--wal", w, "--db", d, "--capacity", "small", "--holidays", h, "--batch", "100"]);
    assert!(out.contains(&format!("position {}", j.inputs)), "{out}");
    // A second run finds nothing new and writes nothing.
    let out = run_ok(&["ingest", "--commit", "whole", "--wal", w, "--db", d, "--capacity", "small", "--holidays", h]);
    assert!(out.contains("records 0 trades 0"), "{out}");

    let mut s = open(d).unwrap();
    let s = s.as_mut();
    assert_eq!(query_int(s, "SELECT COUNT(*) FROM trades", &[]).unwrap() as u64, j.trades);
    assert_eq!(query_int(s, "SELECT CAST(MAX(match_number) AS BIGINT) FROM trades", &[]).unwrap() as u64, j.trades);
    assert_eq!(query_int(s, "SELECT COUNT(*) FROM obligations WHERE state = 'PENDING'", &[]).unwrap() as u64, 2 * j.trades);
    // T+2: Wednesday 23rd -> Monday 28th (24th, then the holiday and the weekend); Thursday 24th -> Tuesday 29th.
    let pairs = s.query("SELECT DISTINCT trade_date, settle_date FROM trades ORDER BY trade_date", &[]).unwrap();
    let pairs: Vec<(String, String)> =
        pairs.iter().map(|r| (r[0].text().unwrap().into(), r[1].text().unwrap().into())).collect();
    assert_eq!(
        pairs,
        [("2026-12-23".into(), "2026-12-28".into()), ("2026-12-24".into(), "2026-12-29".into())],
        "settlement dates"
    );
    let out = run_ok(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]);
    assert!(out.contains("0 differences"), "{out}");

    // Settle the first day's trades; a rerun settles nothing more.
    let first_day = query_int(s, "SELECT COUNT(*) FROM trades WHERE settle_date = '2026-12-28'", &[]).unwrap();
    let out = run_ok(&["settle", "--db", d, "--date", "2026-12-28"]);
    assert!(out.contains(&format!("settled {first_day} failed 0")), "{out}");
    let out = run_ok(&["settle", "--db", d, "--date", "2026-12-28"]);
    assert!(out.contains("settled 0 failed 0 legs resumed 0"), "{out}");
    assert_eq!(query_int(s, "SELECT COUNT(*) FROM trades WHERE state = 'SETTLED'", &[]).unwrap(), first_day);
    assert_eq!(
        query_int(s, "SELECT COUNT(*) FROM obligations WHERE state = 'COMPLETED'", &[]).unwrap(),
        2 * first_day
    );
    let out = run_ok(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]);
    assert!(out.contains("0 differences"), "{out}");

    // The drop copy: firm 1's trades on the 24th, as CSV and JSON.
    let csv = run_ok(&["trades", "--db", d, "--firm", "1", "--date", "2026-12-24", "--csv"]);
    let want = query_int(
        s,
        "SELECT COUNT(*) FROM trades WHERE trade_date = '2026-12-24' AND (buyer_firm = 1 OR seller_firm = 1)",
        &[],
    )
    .unwrap();
    assert_eq!(csv.lines().count() as i64, want + 1, "{csv}");
    assert!(csv.starts_with("match_number,seq,trade_date,settle_date"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["trades", "--db", d, "--firm", "1", "--date", "2026-12-24", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len() as i64, want);
    assert_eq!(json[0]["trade_date"], "2026-12-24");

    // A corrupted balance is found, named, and fails the run.
    s.exec("UPDATE accounts SET cash = cash + 1 WHERE account = 3", &[]).unwrap();
    let out = ledger(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("account 3: cash"), "{text}");
    assert!(text.contains("not conserved"), "{text}");
    std::fs::remove_dir_all(&root).unwrap();
}

fn input(seq: u64, command: Command) -> Input {
    Input { seq, timestamp: day_ns("2026-12-04") + seq * 1_000, command }
}

#[test]
fn a_short_seller_is_a_failed_delivery() {
    let root = tempdir("sqlite-short");
    let wal = root.join("wal");
    let order = |session: u16, account: u32, side, qty| {
        Command::NewOrder(NewOrder {
            session,
            user_ref: 1,
            account,
            symbol: 0,
            side,
            kind: OrderKind::Limit,
            tif: TimeInForce::Day,
            post_only: false,
            qty,
            price: 1_000_000,
            stop_price: 0,
        })
    };
    let account = |account, short_limit| {
        Command::AddAccount(AddAccount {
            account,
            firm: account as u16,
            self_trade: bourse_engine::SelfTrade::default(),
            short_limit,
            max_order_qty: 1_000_000,
            max_order_notional: i64::MAX / 4,
        })
    };
    let commands = [
        Command::AddSymbol(AddSymbol {
            symbol: 0,
            reference_price: 1_000_000,
            ladder_min_price: 900_000,
            tick: 100,
            bands: Bands::DEFAULT,
            market_collar_bps: 500,
            index_weight: 1,
        }),
        // Account 0 may sell 100 shares short and holds none; account 1 buys with cash it has.
        account(0, 100),
        Command::BindSession(BindSession { session: 0, account: 0 }),
        account(1, 0),
        Command::Deposit(Deposit { account: 1, amount: 1_000_000_000 }),
        Command::BindSession(BindSession { session: 1, account: 1 }),
        // Account 2 sells shares it holds: this trade settles.
        account(2, 0),
        Command::DepositShares(DepositShares { account: 2, symbol: 0, qty: 100 }),
        Command::BindSession(BindSession { session: 2, account: 2 }),
        order(0, 0, Side::Sell, 50),
        order(1, 1, Side::Buy, 80),
        order(2, 2, Side::Sell, 30),
    ];
    let inputs: Vec<Input> = commands.iter().enumerate().map(|(i, c)| input(i as u64 + 1, *c)).collect();
    write_inputs(&wal, &inputs);
    let db = root.join("ledger.sqlite3");
    let (w, d) = (wal.to_str().unwrap(), db.to_str().unwrap());
    run_ok(&["ingest", "--commit", "whole", "--wal", w, "--db", d, "--capacity", "small"]);
    // Friday 4th December 2026 settles on Tuesday 8th.
    let out = run_ok(&["settle", "--db", d, "--date", "2026-12-08"]);
    assert!(out.contains("settled 1 failed 1"), "{out}");
    assert!(out.contains("failed delivery: trade 1: seller 0 short of shares of symbol 0: settled 0, owes 50"), "{out}");
    let failed = run_ok(&["obligations", "--db", d, "--state", "failed", "--csv"]);
    assert_eq!(failed.lines().count(), 3, "{failed}");
    let mut s = open(d).unwrap();
    let state = |s: &mut dyn bourse_ledger::store::Store, m: i64| {
        s.query("SELECT state FROM trades WHERE match_number = $1", &[Val::Int(m)]).unwrap()[0][0].clone()
    };
    assert_eq!(state(s.as_mut(), 1), Val::from("FAILED"));
    assert_eq!(state(s.as_mut(), 2), Val::from("SETTLED"));
    // Settled books: the buyer paid for and received only the 30 shares that were delivered.
    assert_eq!(query_int(s.as_mut(), "SELECT settled_qty FROM positions WHERE account = 1", &[]).unwrap(), 30);
    assert_eq!(
        query_int(s.as_mut(), "SELECT settled_cash FROM accounts WHERE account = 1", &[]).unwrap(),
        1_000_000_000 - 30 * 1_000_000
    );
    let out = run_ok(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]);
    assert!(out.contains("0 differences"), "{out}");
    std::fs::remove_dir_all(&root).unwrap();
}
