//! Kill -9 the appliance under a firm's order flow, again and again; after every restart the firm logs in with
//! the next sequence it expects (SoupBinTCP Requested Sequence Number) and resends every order it never saw
//! answered. It must end up with every reply of its stream, dense from 1, each byte-identical to what replaying
//! the final journal from scratch produces, and every order answered exactly once in the journal.
//!
//! Rounds: `BOURSE_CRASH_REPLY_ROUNDS` (default 6). Runs `bourse run` as a child process on loopback.

mod support;

use std::time::Duration;

use bourse_appliance::appliance::setup;
use bourse_appliance::config::Config;
use bourse::demo::TempDir;
use bourse_persist::workload::Rng;
use support::firm::RawFirm;
use support::{order_counts, wal_records, Node, NodeAddrs};

fn config_file(dir: &std::path::Path, addrs: &NodeAddrs) -> (std::path::PathBuf, Config) {
    let wal = dir.join("wal");
    let text = support::node_toml("crash-replies", &wal, addrs, "");
    let path = dir.join("bourse.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap();
    (path, config)
}

#[test]
fn kill_9_loses_no_reply_and_answers_every_resend() {
    let rounds: u32 = std::env::var("BOURSE_CRASH_REPLY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let tmp = TempDir::new("bourse-crash-replies").unwrap();
    let addrs = NodeAddrs::loopback();
    let (path, config) = config_file(tmp.path(), &addrs);
    let mut rng = Rng::new(0xC0FFEE);
    let mut next_ref = 1u32;
    let mut firm = RawFirm::open(addrs.order, 0);
    for round in 0..=rounds {
        let mut node = Node::spawn(&["run"], &path);
        node.wait_for("market data:", Duration::from_secs(30));
        // Log in (the login may be lost while the socket binds: retry), asking for the next reply expected.
        let requested = firm.expected();
        firm.log_in_again(Duration::from_secs(10));
        assert_eq!(
            firm.login,
            Some(requested),
            "round {round}: Login Accepted names the requested sequence:\n{}",
            node.log()
        );
        // Resend everything never answered, in order, then new orders; the last round stops cleanly.
        let unanswered: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
        for r in &unanswered {
            firm.order(*r);
        }
        let burst = 200 + rng.below(400) as u32;
        let kill_after = Duration::from_millis(20 + rng.below(150));
        let started = std::time::Instant::now();
        for _ in 0..burst {
            firm.order(next_ref);
            next_ref += 1;
            firm.poll();
            if round < rounds && started.elapsed() >= kill_after {
                break;
            }
        }
        if round < rounds {
            while started.elapsed() < kill_after {
                firm.poll();
            }
            node.kill9();
            firm.poll();
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while (1..next_ref).any(|r| !firm.answered.contains_key(&r)) && std::time::Instant::now() < deadline {
                firm.poll();
            }
            node.terminate();
        }
    }
    let missing: Vec<u32> = (1..next_ref).filter(|r| !firm.answered.contains_key(r)).collect();
    assert!(missing.is_empty(), "orders never answered: {missing:?}");

    // The reference: replaying the final journal from scratch gives exactly the stream the firm received.
    let journal = setup::open_journal(&config, &tmp.path().join("wal")).unwrap();
    let x = &journal.exchange;
    let next = x.next_reply_sequence(0);
    assert!(next > 1);
    assert_eq!(firm.expected(), next, "the firm holds its whole stream, dense from 1");
    assert_eq!(firm.replies.len() as u64, next - 1);
    for (seq, bytes) in &firm.replies {
        assert_eq!(x.reply(0, *seq), Some(bytes.as_slice()), "reply {seq} differs from the journal's replay");
    }
    drop(journal);
    let log = wal_records(&tmp.path().join("wal"));
    let counts = order_counts(&log);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "orders journaled twice: {twice:?}");
    eprintln!("{rounds} kills, {} orders, {} replies, all answered once", next_ref - 1, next - 1);
}
