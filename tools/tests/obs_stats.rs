//! The stats block: one thread writes it through /dev/shm while another maps it read-only and reads it
//! consistently; `bourse stats --once` and `--json` show it.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bourse_appliance::obs::stages::Span;
use bourse_appliance::obs::statsblock::{stats_path, Counter, StatsReader, StatsWriter};

fn unique_name(what: &str) -> String {
    format!("test-{what}-{}", std::process::id())
}

struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn written_by_one_thread_read_consistently_by_another() {
    let name = unique_name("threads");
    let _cleanup = Cleanup(stats_path(&name).unwrap());
    let writer = StatsWriter::create(&name).unwrap();
    let reader = StatsReader::open(&name).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    const ROUNDS: u64 = 200_000;

    let writer_thread = {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..ROUNDS {
                writer.add_rx(1);
                writer.add_tx(1);
                // Two complete name sets, alternated: a reader must never see a mix of the two.
                if i % 2 == 0 {
                    writer.set_names("alpha-backend", &["aaaa", "aaab"], &["ra"]);
                } else {
                    writer.set_names(
                        "beta",
                        &["bbbbbbbbbbbbbbbbbbbbbbbb", "b"],
                        &["rb_longer_name"],
                    );
                }
                writer.set_stage(Span::RxTx, i, i * 10, i, [i, i + 1, i + 2]);
            }
            done.store(true, Ordering::Release);
            writer
        })
    };

    let mut last_rx = 0;
    let mut reads = 0u64;
    loop {
        let finished = done.load(Ordering::Acquire);
        let snap = reader.block().snapshot();
        assert!(snap.rx_total >= last_rx, "rx went backwards");
        last_rx = snap.rx_total;
        let names: Vec<&str> = snap.drops.iter().map(|d| d.reason.as_str()).collect();
        match snap.backend.as_str() {
            "alpha-backend" => {
                assert_eq!(names, ["aaaa", "aaab"]);
                assert_eq!(snap.rejects[0].reason, "ra");
            }
            "beta" => {
                assert_eq!(names, ["bbbbbbbbbbbbbbbbbbbbbbbb", "b"]);
                assert_eq!(snap.rejects[0].reason, "rb_longer_name");
            }
            "" => assert!(names.is_empty()),
            other => panic!("torn backend name {other:?}"),
        }
        reads += 1;
        if finished {
            break;
        }
    }
    let writer = writer_thread.join().unwrap();
    let snap = reader.block().snapshot();
    assert_eq!(snap.rx_total, ROUNDS);
    assert_eq!(snap.tx_total, ROUNDS);
    assert_eq!(snap.writer_pid, std::process::id() as u64);
    let rx_tx = snap.stages.iter().find(|s| s.stage == "rx_tx").unwrap();
    assert_eq!(
        (rx_tx.p50_ns, rx_tx.p99_ns, rx_tx.p999_ns),
        (ROUNDS - 1, ROUNDS, ROUNDS + 1)
    );
    assert!(reads > 1);
    drop(writer);
}

#[test]
fn reader_rejects_what_is_not_a_stats_block() {
    assert!(StatsReader::open("no/slashes").is_err());
    assert!(StatsReader::open(&unique_name("missing")).is_err());
    let name = unique_name("garbage");
    let path = stats_path(&name).unwrap();
    let _cleanup = Cleanup(path.clone());
    std::fs::write(&path, vec![0xa5u8; 8192]).unwrap();
    let err = StatsReader::open(&name).err().unwrap().to_string();
    assert!(err.contains("not a bourse stats block"), "{err}");
    std::fs::write(&path, b"short").unwrap();
    assert!(StatsReader::open(&name).is_err());
}

#[test]
fn stats_command_prints_once_and_json() {
    let name = unique_name("cli");
    let _cleanup = Cleanup(stats_path(&name).unwrap());
    let writer = StatsWriter::create(&name).unwrap();
    writer.set_names("socket", &["bad_checksum"], &["price_band"]);
    writer.set_wal_mode("msync");
    writer.add_rx(77);
    writer.add_drop(0, 3);
    writer.set_counter(Counter::Oversized, 4);
    writer.set_stage(Span::JournaledMatched, 25, 2500, 10, [90, 150, 400]);

    let bin = env!("CARGO_BIN_EXE_bourse");
    let out = std::process::Command::new(bin)
        .args(["stats", "--name", &name, "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("backend socket"), "{text}");
    assert!(text.contains("wal msync"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rx", "77"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["drop", "bad_checksum", "3"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["oversized", "4"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["journaled_matched", "25", "10", "0.090", "0.150", "0.400"]),
        "{text}"
    );

    let out = std::process::Command::new(bin)
        .args(["stats", "--name", &name, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rx_total"], 77);
    assert_eq!(v["backend"], "socket");
    assert_eq!(v["drops"][0]["reason"], "bad_checksum");
    assert_eq!(v["drops"][0]["count"], 3);
    assert!(v["heartbeat_age_ns"].as_u64().is_some());
    let oversized = v["counters"].as_array().unwrap().iter().find(|c| c["name"] == "oversized").unwrap();
    assert_eq!(oversized["count"], 4);

    let out = std::process::Command::new(bin)
        .args(["stats", "--name", &unique_name("absent"), "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

fn bourse(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bourse")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `--config` finds the block of that configuration's `[appliance] name`; a block whose writer died says so, is
/// listed as such, and `--clean` removes it (and refuses while the writer runs).
#[test]
fn stats_finds_the_configs_block_and_cleans_up_after_a_dead_writer() {
    let name = unique_name("dead");
    let path = stats_path(&name).unwrap();
    let _cleanup = Cleanup(path.clone());
    let writer = StatsWriter::create(&name).unwrap();
    writer.add_rx(5);
    let dir = bourse::demo::TempDir::new("bourse-stats-config").unwrap();
    let config = dir.path().join("bourse.toml");
    let toml = support::node_toml(&name, &dir.path().join("wal"), &support::NodeAddrs::loopback(), "");
    std::fs::write(&config, toml).unwrap();

    let (ok, text, err) = bourse(&["stats", "--config", config.to_str().unwrap(), "--once"]);
    assert!(ok, "{err}");
    assert!(text.starts_with(&format!("bourse stats {name} ")), "{text}");
    assert!(!text.contains("NOT RUNNING"), "this process writes it: {text}");
    let (ok, _, err) = bourse(&["stats", "--name", &name, "--clean"]);
    assert!(!ok && err.contains("is running; not removed"), "{err}");
    assert!(path.exists());

    // The writer "dies": its pid becomes one that has exited (word 3 of the layout holds the writer's pid).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::Start(3 * 8)).unwrap();
        f.write_all(&u64::from(gone_pid).to_le_bytes()).unwrap();
    }
    let (ok, text, err) = bourse(&["stats", "--name", &name, "--once"]);
    assert!(ok, "{err}");
    assert!(text.contains(&format!("pid {gone_pid} ")) && text.contains("WRITER NOT RUNNING"), "{text}");
    let (ok, json, _) = bourse(&["stats", "--name", &name, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["writer_alive"], false);
    assert_eq!(v["rx_total"], 5, "the dead writer's last values are still shown");
    let (ok, list, _) = bourse(&["stats", "--list"]);
    assert!(ok);
    let line = list.lines().find(|l| l.split_whitespace().next() == Some(name.as_str())).expect(&list);
    assert!(line.contains(&gone_pid.to_string()) && line.contains("not running"), "{line}");

    let (ok, text, err) = bourse(&["stats", "--name", &name, "--clean"]);
    assert!(ok, "{err}");
    assert!(text.contains("removed"), "{text}");
    assert!(!path.exists());
    drop(writer);
}

#[test]
fn the_default_name_is_the_appliances_default() {
    let config = bourse_appliance::config::Config::parse(
        &support::node_toml("x", std::path::Path::new("/tmp/w"), &support::NodeAddrs::loopback(), "")
            .replace("name = \"x\"\n", ""),
    )
    .unwrap();
    assert_eq!(config.appliance.name, bourse::stats::DEFAULT_NAME);
}

/// Every counter of the table lands in its own word and reads back under its own name, including the slots past
/// the first 32 that layout 4 appended.
#[test]
fn every_counter_reads_back_under_its_own_name() {
    use bourse_appliance::obs::statsblock::COUNTERS;
    let name = unique_name("counters");
    let _cleanup = Cleanup(stats_path(&name).unwrap());
    let writer = StatsWriter::create(&name).unwrap();
    for (i, &(c, _, _)) in COUNTERS.iter().enumerate() {
        writer.set_counter(c, 1_000 + i as u64);
    }
    let reader = StatsReader::open(&name).unwrap();
    let snapshot = reader.block().snapshot();
    assert_eq!(snapshot.counters.len(), COUNTERS.len());
    for (i, (named, &(c, name, _))) in snapshot.counters.iter().zip(COUNTERS.iter()).enumerate() {
        assert_eq!((named.name, named.count), (name, 1_000 + i as u64));
        assert_eq!(reader.block().counter(c), 1_000 + i as u64);
    }
}
