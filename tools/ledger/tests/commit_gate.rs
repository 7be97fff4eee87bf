//! The ledger books the committed journal only: through the running appliance's commit seq (its stats block),
//! never a record past it, which a failover could still cut; and nothing new while the appliance is not running.

mod support;

use bourse_appliance::obs::statsblock::{stats_path, StatsWriter};
use bourse_ledger::store::{open, query_int};
use support::*;

#[test]
fn books_through_the_appliances_commit_seq_and_no_further() {
    let root = tempdir("commit-gate");
    let wal = root.join("wal");
    let j = write_journal(&wal, 11, 2_000, &["2026-12-23"]);
    let db = root.join("ledger.sqlite3");
    let (w, d) = (wal.to_str().unwrap(), db.to_str().unwrap());
    let name = format!("ledger-gate-{}", std::process::id());
    let ingest = |appliance: &str| -> Vec<String> {
        ["ingest", "--wal", w, "--db", d, "--capacity", "small", "--batch", "64", "--appliance", appliance]
            .map(String::from)
            .to_vec()
    };

    // No block for that appliance: nothing is booked, and the error says what to do.
    let out = ledger(&refs(&ingest(&name))).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&name) && err.contains("--commit whole"), "{err}");

    // This test process plays the running appliance: it has committed through seq 1,234 of the 2,000 journaled.
    let stats = StatsWriter::create(&name).unwrap();
    stats.set_commit(1_234, 0);
    let out = run_ok(&refs(&ingest(&name)));
    assert!(out.contains("position 1234 ") && out.contains("committed 1234"), "{out}");
    let mut s = open(d).unwrap();
    assert_eq!(query_int(s.as_mut(), "SELECT seq FROM journal_position", &[]).unwrap(), 1_234);
    let trades_early = query_int(s.as_mut(), "SELECT COUNT(*) FROM trades", &[]).unwrap() as u64;
    assert!(trades_early < j.trades, "trades past the commit point were booked: {trades_early} of {}", j.trades);

    // The commit point moves on: the rest is booked, once.
    stats.set_commit(j.inputs, 0);
    let out = run_ok(&refs(&ingest(&name)));
    assert!(out.contains(&format!("position {} ", j.inputs)), "{out}");
    assert_eq!(query_int(s.as_mut(), "SELECT COUNT(*) FROM trades", &[]).unwrap() as u64, j.trades);
    let out = run_ok(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]);
    assert!(out.contains("0 differences"), "{out}");
    drop(stats);
    let _ = std::fs::remove_file(stats_path(&name).unwrap());
    let _ = std::fs::remove_dir_all(&root);
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
