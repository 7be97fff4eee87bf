//! Exactly once under SIGKILL: the ledger is killed at a random moment during ingest and again during a
//! settlement run, then run to completion; the database must then equal a reference built without interruption
//! (same trades, obligations, transfers, entries, balances and settlement intents, no more and no fewer), hold
//! one trade per execution of a fresh engine fed the journal, and reconcile with no difference. Rounds run on
//! SQLite and on a throwaway PostgreSQL cluster (skipped with a reason when PostgreSQL cannot be started).
//!
//! The kill moments are drawn uniformly over the duration of an uninterrupted run, from a fixed seed.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bourse_ledger::store::{open, query_int};
use bourse_ledger::pgtmp::PgCluster;
use support::*;

const SETTLE_DATE: &str = "2026-12-31";
const SQLITE_ROUNDS: u64 = 30;
const POSTGRES_ROUNDS: u64 = 20;

fn ingest_args<'a>(w: &'a str, d: &'a str) -> Vec<&'a str> {
    vec!["ingest", "--commit", "whole", "--wal", w, "--db", d, "--capacity", "small", "--batch", "16"]
}

fn settle_args(d: &str) -> Vec<&str> {
    vec!["settle", "--db", d, "--date", SETTLE_DATE]
}

struct Reference {
    dump: Vec<(String, Vec<Vec<bourse_ledger::store::Val>>)>,
    ingest: Duration,
    settle: Duration,
}

fn reference(w: &str, d: &str) -> Reference {
    let t = Instant::now();
    run_ok(&ingest_args(w, d));
    let ingest = t.elapsed();
    let t = Instant::now();
    run_ok(&settle_args(d));
    let settle = t.elapsed();
    let mut s = open(d).unwrap();
    Reference { dump: dump(s.as_mut()), ingest, settle }
}

/// One round on the fresh database `d`: returns the kills that landed before the process finished.
fn round(w: &str, d: &str, r: &Reference, rng: &mut bourse_persist::workload::Rng) -> u64 {
    let mut kills = 0;
    let delay = |rng: &mut bourse_persist::workload::Rng, of: Duration| {
        Duration::from_micros(rng.below(of.as_micros().max(1) as u64))
    };
    kills += kill_after(&ingest_args(w, d), delay(rng, r.ingest)) as u64;
    run_ok(&ingest_args(w, d));
    kills += kill_after(&settle_args(d), delay(rng, r.settle)) as u64;
    let out = run_ok(&settle_args(d));
    assert!(out.contains("failed 0"), "{out}");
    kills
}

fn check(d: &str, w: &str, j: &Journal, r: &Reference, label: &str) {
    let mut s = open(d).unwrap();
    assert_eq!(query_int(s.as_mut(), "SELECT COUNT(*) FROM trades", &[]).unwrap() as u64, j.trades, "{label}");
    let got = dump(s.as_mut());
    for ((table, want), (_, have)) in r.dump.iter().zip(&got) {
        assert_eq!(want.len(), have.len(), "{label}: table {table} has {} rows, the reference {}", have.len(), want.len());
        assert!(want == have, "{label}: table {table} differs from the reference");
    }
    let out = run_ok(&["reconcile", "--wal", w, "--db", d, "--capacity", "small"]);
    assert!(out.contains(" 0 differences"), "{label}: {out}");
}

fn journal(root: &Path) -> Journal {
    let j = write_journal(&root.join("wal"), 11, 500, &["2026-12-23", "2026-12-24"]);
    assert!(j.trades > 20, "the workload should trade: {}", j.trades);
    j
}

#[test]
fn sqlite_kill_during_ingest_and_settlement() {
    let root = tempdir("crash-sqlite");
    let j = journal(&root);
    let w = j.dir.to_str().unwrap().to_string();
    let refdb = root.join("reference.sqlite3");
    let r = reference(&w, refdb.to_str().unwrap());
    let mut rng = rng(0x5eed_0001);
    let mut kills = 0;
    for i in 0..SQLITE_ROUNDS {
        let db = root.join(format!("round{i}.sqlite3"));
        let d = db.to_str().unwrap();
        kills += round(&w, d, &r, &mut rng);
        check(d, &w, &j, &r, &format!("sqlite round {i}"));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{d}{ext}"));
        }
    }
    println!("sqlite: {SQLITE_ROUNDS} rounds, {kills} kills landed mid-run, {} trades each", j.trades);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn postgres_kill_during_ingest_and_settlement() {
    let pg = match PgCluster::start("crash") {
        Ok(pg) => pg,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let root = tempdir("crash-postgres");
    let j = journal(&root);
    let w = j.dir.to_str().unwrap().to_string();
    // The reference is SQLite's: one schema, so the two backends must agree row for row.
    let refdb = root.join("reference.sqlite3");
    let mut r = reference(&w, refdb.to_str().unwrap());
    let pgref = pg.database("reference");
    let pr = reference(&w, &pgref);
    assert!(pr.dump == r.dump, "PostgreSQL's books differ from SQLite's");
    (r.ingest, r.settle) = (pr.ingest, pr.settle);
    let mut rng = rng(0x5eed_0002);
    let mut kills = 0;
    for i in 0..POSTGRES_ROUNDS {
        let d = pg.database(&format!("round{i}"));
        kills += round(&w, &d, &r, &mut rng);
        check(&d, &w, &j, &r, &format!("postgres round {i}"));
    }
    println!("postgres: {POSTGRES_ROUNDS} rounds, {kills} kills landed mid-run, {} trades each", j.trades);
    std::fs::remove_dir_all(&root).unwrap();
}
