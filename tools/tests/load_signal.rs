//! `bourse load` stopped by SIGINT or SIGTERM still reports: the partial row is printed (marked interrupted), its
//! .hlog holds every reply it counted, and the exit status is 130.
//!
//! One test function: the appliance busy-polls, and two at once on a two-core host would measure the scheduler.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bourse_appliance::obs::hlog::Hlog;
use support::{node_toml, signal, Node, NodeAddrs};

/// Runs `bourse load` against `config`, signals it with `sig` once it has been sending a while, and returns
/// (exit code, stdout, stderr).
fn interrupted_load(config: &std::path::Path, hlog: &std::path::Path, first_user_ref: u32, sig: libc::c_int) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["load", "--rates", "1000,2000", "--duration-s", "20", "--hlog"])
        .arg(hlog)
        .args(["--first-user-ref", &first_user_ref.to_string(), "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bourse load");
    // Logins take a moment; then let the first row send for a while (its length does not matter, only that it
    // is cut short: it is planned for 20 s).
    std::thread::sleep(Duration::from_millis(1_500));
    signal(child.id(), sig);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "bourse load did not stop on signal {sig}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn sigint_and_sigterm_print_the_partial_table_and_flush_the_hlog() {
    let dir = bourse::demo::TempDir::new("bourse-load-signal").unwrap();
    let config = dir.path().join("bourse.toml");
    std::fs::write(&config, node_toml("load-signal", &dir.path().join("wal"), &NodeAddrs::loopback(), "")).unwrap();
    let mut node = Node::spawn(&["run"], &config);
    node.wait_for("acknowledgement", Duration::from_secs(20));

    for (round, sig) in [libc::SIGINT, libc::SIGTERM].into_iter().enumerate() {
        let hlog = dir.path().join(format!("load-{round}.hlog"));
        let (code, out, err) = interrupted_load(&config, &hlog, 1 + round as u32 * 1_000_000, sig);
        assert_eq!(code, 130, "signal {sig}: stdout:\n{out}\nstderr:\n{err}");
        let lines: Vec<&str> = out.lines().collect();
        let header = lines.iter().position(|l| l.trim_start().starts_with("offered")).expect(&out);
        let row: Vec<&str> = lines[header + 1].split_whitespace().collect();
        assert_eq!(row[0], "1,000", "{out}");
        assert_eq!(row.last(), Some(&"(interrupted)"), "{out}");
        assert!(!out.contains("\n     2,000 "), "the second row never ran:\n{out}");
        assert!(out.contains("interrupted: the last row is partial"), "{out}");
        let number = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
        let (sent, replied) = (number(row[2]), number(row[3]));
        assert!(sent > 0 && replied > 0, "{out}");

        // The .hlog decodes and holds exactly the replies the row counted, under the row's own tag.
        let log = Hlog::read(&hlog).unwrap();
        let merged = log.merged_by_tag().unwrap();
        assert_eq!(merged.keys().collect::<Vec<_>>(), ["rate_1000"], "{err}");
        assert_eq!(merged["rate_1000"].len(), replied, "{out}");
        // One line per second of the row (the last one shorter), not one per run: several lines, each starting
        // where the one before ended. (How long each is depends on this shared machine's scheduling: not checked.)
        assert!(log.intervals.len() >= 2, "{} intervals", log.intervals.len());
        for w in log.intervals.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(b.start + Duration::from_millis(1) >= a.start + a.length, "intervals overlap: {a:?} then {b:?}");
        }
    }
    node.terminate();
}
