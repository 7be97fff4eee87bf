//! PostgreSQL restarted under a running ledger: the journal keeps growing while the server is down; the ledger
//! reconnects, resumes from the position the database holds, and ends with exactly the books of an
//! uninterrupted run (row for row against a SQLite reference).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bourse_ledger::store::open;
use bourse_persist::workload::Workload;
use bourse_persist::{AckPolicy, CommitIndex, DurabilityMode, Wal, WalConfig};
use bourse_ledger::pgtmp::PgCluster;
use support::*;

const INPUTS: u64 = 3_000;
const DAYS: &[&str] = &["2026-12-23", "2026-12-24"];

#[test]
fn postgres_restart_under_the_running_ledger() {
    let mut pg = match PgCluster::start("restart") {
        Ok(pg) => pg,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let root = tempdir("restart-books");
    let wal = root.join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (wal, written) = (wal.clone(), Arc::clone(&written));
        std::thread::spawn(move || {
            let mut cfg = WalConfig::new(&wal);
            cfg.mode = DurabilityMode::Msync;
            cfg.segment_bytes = 1 << 18;
            let commit = Arc::new(CommitIndex::new(AckPolicy::Local, 0));
            let mut log = Wal::create(cfg, 1, Arc::clone(&commit)).unwrap();
            let mut w = Workload::new(23);
            for seq in 1..=INPUTS {
                log.append_unfenced(&journal_input(&mut w, seq, INPUTS, DAYS)).unwrap();
                if seq % 32 == 0 || seq == INPUTS {
                    log.fence();
                    assert!(commit.wait_for(seq, Duration::from_secs(30)));
                    written.store(seq, Ordering::Release);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            log.close().unwrap();
        })
    };
    while written.load(Ordering::Acquire) < 256 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let db = pg.database("books");
    let w = wal.to_str().unwrap();
    let ledger = ledger(&[
        "ingest", "--commit", "whole", "--wal", w, "--db", &db, "--capacity", "small", "--batch", "32", "--follow", "--idle-exit-ms", "3000",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    while written.load(Ordering::Acquire) < INPUTS / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    pg.stop_server();
    std::thread::sleep(Duration::from_millis(700));
    pg.start_server().unwrap();
    writer.join().unwrap();
    let out = ledger.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("position {INPUTS}")), "{stdout}");
    assert!(!stdout.contains("reconnects 0"), "the ledger never saw the restart: {stdout}\n{stderr}");

    // The same journal, booked without interruption into SQLite.
    let j = write_journal(&root.join("wal-ref"), 23, INPUTS, DAYS);
    let refdb = root.join("reference.sqlite3");
    let r = refdb.to_str().unwrap();
    run_ok(&["ingest", "--commit", "whole", "--wal", j.dir.to_str().unwrap(), "--db", r, "--capacity", "small"]);
    let want = dump(open(r).unwrap().as_mut());
    let have = dump(open(&db).unwrap().as_mut());
    for ((table, a), (_, b)) in want.iter().zip(&have) {
        assert_eq!(a.len(), b.len(), "table {table}: {} rows after the restart, {} in the reference", b.len(), a.len());
        assert!(a == b, "table {table} differs from the reference");
    }
    let out = run_ok(&["reconcile", "--wal", w, "--db", &db, "--capacity", "small"]);
    assert!(out.contains(" 0 differences"), "{out}");
    println!("postgres restart: {} trades, {}", j.trades, stdout.trim());
    std::fs::remove_dir_all(&root).unwrap();
}
