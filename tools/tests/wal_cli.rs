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

    let o = bourse(&["wal", "replay", "--dir", s(&dir), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["last_seq"].as_u64(), Some(last));
    assert_eq!(v["state_hash"].as_str().unwrap().len(), 16);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_names_file_and_offset_of_damage_and_replay_truncates_a_torn_tail() {
    let dir = tempdir("bad");
    let o = bourse(&["wal", "drive", "--dir", s(&dir), "--seed", "4", "--records", "500"]);
    assert!(o.status.success(), "{}", text(&o));
    let seg = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| {
        p.extension().is_some_and(|e| e == "seg")
    });
    let seg = seg.unwrap();
    // Find the end of the records and tear the last one (flip a body byte).
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();

    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains(seg.file_name().unwrap().to_str().unwrap()) && t.contains("offset"), "{t}");

    let o = bourse(&["wal", "replay", "--dir", s(&dir)]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("truncated"), "{t}");
    let o = bourse(&["wal", "verify", "--dir", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
