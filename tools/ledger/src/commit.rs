//! How far the journal is committed, which is as far as the ledger books.
//!
//! A record in the primary's WAL directory is not yet a fact: the appliance acknowledges an input only once its
//! ack policy holds (durable here, and on the standby when mirrored). A record past that point can still be cut
//! when this node is failed over (the standby never had it; see `discard_after`), and a trade booked from it would
//! be a trade that never happened. So the ledger books through the appliance's commit seq, which the appliance
//! publishes in its stats block, and no further.
//!
//! A block is trusted only while its writer runs: a block outlives its process, and a stopped appliance's block
//! may belong to an earlier run on another journal. While the writer is gone the ledger books nothing new (it
//! re-opens the block on every look, so a restarted appliance, which writes a new block file, is picked up).
//! A journal that is committed as it stands (a stopped single appliance after recovery, a standby's copy, a
//! test's) is booked whole with [`CommitSource::Whole`].

use bourse_appliance::obs::statsblock::{stats_path, StatsReader};

/// Where the ledger learns how far it may book.
pub enum CommitSource {
    /// The running appliance named `name` (its `[appliance] name`): its stats block's commit seq.
    Appliance { name: String, reader: Option<StatsReader> },
    /// Every record in the directory is committed.
    Whole,
}

/// What a look at the commit source found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Records up to and including this seq are committed.
    Through(u64),
    /// Nothing can be said now; the reason names the block and what is wrong with it.
    Unknown(String),
}

impl CommitSource {
    pub fn appliance(name: &str) -> CommitSource {
        CommitSource::Appliance { name: name.to_string(), reader: None }
    }

    /// How far the journal is committed now.
    pub fn committed(&mut self) -> Committed {
        let CommitSource::Appliance { name, reader } = self else { return Committed::Through(u64::MAX) };
        if reader.as_ref().is_some_and(|r| !writer_alive(r)) {
            *reader = None;
        }
        if reader.is_none() {
            match StatsReader::open(name) {
                Ok(r) => *reader = Some(r),
                Err(e) => return Committed::Unknown(format!("appliance {name:?}: {e}")),
            }
        }
        let r = reader.as_ref().expect("opened above");
        if !writer_alive(r) {
            let pid = r.block().writer_pid();
            let path = stats_path(name).map_or_else(|_| name.clone(), |p| p.display().to_string());
            return Committed::Unknown(format!("appliance {name:?} is not running ({path}: writer pid {pid} is gone)"));
        }
        Committed::Through(r.block().commit_seq())
    }
}

/// Whether the block's writer process exists. A reused pid reads as alive: the block's heartbeat would tell, but a
/// commit seq only ever grows within one writer, so the risk is a stale block of an earlier run under that pid.
fn writer_alive(r: &StatsReader) -> bool {
    let pid = r.block().writer_pid();
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use bourse_appliance::obs::statsblock::StatsWriter;

    use super::*;

    const CHILD_ENV: &str = "BOURSE_LEDGER_COMMIT_TEST_BLOCK";

    /// Run as a child process by the test below: writes a block under the name it is given, then exits, leaving
    /// a block whose writer is gone.
    #[test]
    #[ignore = "a child process of test_books_through_a_running_writers_commit_seq_and_nothing_once_it_is_gone"]
    fn child_writes_a_block_and_exits() {
        if let Ok(name) = std::env::var(CHILD_ENV) {
            StatsWriter::create(&name).unwrap().set_commit(500, 0);
        }
    }

    #[test]
    fn test_books_through_a_running_writers_commit_seq_and_nothing_once_it_is_gone() {
        let name = format!("ledger-commit-test-{}", std::process::id());
        let mut source = CommitSource::appliance(&name);
        assert!(matches!(source.committed(), Committed::Unknown(why) if why.contains(&name)), "no block yet");

        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "commit::tests::child_writes_a_block_and_exits", "--ignored", "--quiet"])
            .env(CHILD_ENV, &name)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        match source.committed() {
            Committed::Unknown(why) => assert!(why.contains("not running"), "{why}"),
            other => panic!("a dead writer's commit seq 500 was trusted: {other:?}"),
        }

        // The appliance restarts: a new block file under the same name, seen without restarting the ledger.
        let writer = StatsWriter::create(&name).unwrap();
        writer.set_commit(41, 0);
        assert_eq!(source.committed(), Committed::Through(41));
        writer.set_commit(97, 0);
        assert_eq!(source.committed(), Committed::Through(97), "the same mapping sees the new seq");
        drop(writer);
        let _ = std::fs::remove_file(stats_path(&name).unwrap());
        assert_eq!(CommitSource::Whole.committed(), Committed::Through(u64::MAX));
    }
}
