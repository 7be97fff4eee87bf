//! `bourse wal …` end to end: drive a log, then info / dump / verify / check / replay, and damage detection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bourse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bourse")).args(args).output().expect("run bourse")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bourse-walcli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The appliance's example configuration: `wal replay` takes its engine capacities from it.
const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bourse.example.toml");

/// Drives `records` seeded inputs into a fresh log in `dir`, then tears its last record (flips its last non-zero
/// byte). Returns the segment, the offset of the flipped byte, and the segment's bytes as they now are.
fn torn_log(dir: &Path, records: &str) -> (PathBuf, usize, Vec<u8>) {
    let o = bourse(&["wal", "drive", "--dir", s(dir), "--seed", "4", "--records", records]);
    assert!(o.status.success(), "{}", text(&o));
    let seg = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    (seg, end, bytes)
}

#[test]
fn drive_then_inspect_verify_check_and_replay() {
    let dir = tempdir("ok");
    let o = bourse(&["wal", "drive", "--dir", s(&dir), "--seed", "9", "--records", "3000", "--segment-bytes", "65536"]);
    assert!(o.status.success(), "{}", text(&o));
    let last: u64 = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().parse().unwrap();
    assert!(last >= 3000);

    let o = bourse(&["wal", "info", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("mode msync") && t.contains("torn tail: none"), "{t}");
    assert!(t.contains(&format!("seq range: 1..={last}")), "{t}");

    let o = bourse(&["wal", "dump", "--dir", s(&dir), "--from", "10", "--count", "2"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(t.lines().count(), 2, "{t}");
    assert!(t.starts_with("seq 10 "), "{t}");

    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bourse(&["wal", "check", "--dir", s(&dir), "--seed", "9", "--committed", &last.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bourse(&["wal", "check", "--dir", s(&dir), "--seed", "10", "--committed", "1"]);
    assert!(!o.status.success(), "a different seed must not match");

    // No snapshot to take engine capacities from: the appliance's configuration is required.
    let o = bourse(&["wal", "replay", "--dir", s(&dir), "--json"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("--config"), "{t}");
    let o = bourse(&["wal", "replay", "--dir", s(&dir), "--config", EXAMPLE_CONFIG, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["last_seq"].as_u64(), Some(last));
    assert_eq!(v["state_hash"].as_str().unwrap().len(), 16);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_and_replay_leave_a_torn_tail_untouched_unless_repair_is_given() {
    let dir = tempdir("bad");
    let (seg, flipped, bytes) = torn_log(&dir, "500");

    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains(seg.file_name().unwrap().to_str().unwrap()) && t.contains("offset"), "{t}");
    assert!(t.contains("--repair"), "{t}");
    // "<segment> offset <n>: torn record …": where the torn record starts.
    let at = t.find(" offset ").unwrap() + " offset ".len();
    let torn: usize = t[at..].split(':').next().unwrap().parse().unwrap();
    assert!(torn <= flipped, "{t}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "verify without --repair changed the segment");

    let o = bourse(&["wal", "replay", "--dir", s(&dir), "--config", EXAMPLE_CONFIG]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("left in place"), "{t}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "replay without --repair changed the segment");

    let o = bourse(&["wal", "verify", "--dir", s(&dir), "--repair"]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("zeroed"), "{t}");
    let repaired = std::fs::read(&seg).unwrap();
    assert!(repaired[torn..=flipped].iter().all(|&b| b == 0), "the torn record's bytes are zeroed");
    assert_eq!(repaired[..torn], bytes[..torn], "the records before it are untouched");
    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_only_tools_work_on_a_locked_log_and_say_it_may_be_live_while_repair_is_refused() {
    let dir = tempdir("live");
    let (seg, _, bytes) = torn_log(&dir, "200");
    // This test process plays the running appliance.
    let lock = bourse_persist::wal::DirLock::acquire(&dir).unwrap();
    let me = format!("process {}", std::process::id());

    let o = bourse(&["wal", "info", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("may be live") && t.contains(&me), "{t}");
    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("may be live") && t.contains("not judged"), "{t}");
    let o = bourse(&["wal", "replay", "--dir", s(&dir), "--config", EXAMPLE_CONFIG, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["live"].as_str().is_some_and(|l| l.contains(&me)), "{v}");
    assert_eq!(v["truncated"].as_bool(), Some(false), "{v}");

    for cmd in [&["wal", "verify", "--repair"][..], &["wal", "replay", "--repair", "--config", EXAMPLE_CONFIG]] {
        let o = bourse(&[cmd, &["--dir", s(&dir)]].concat());
        let t = text(&o);
        assert!(!o.status.success() && t.contains(&format!("in use by {me}; stop it first")), "{cmd:?}: {t}");
    }
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing changed the live log");
    drop(lock);
    std::fs::remove_dir_all(&dir).unwrap();
}
