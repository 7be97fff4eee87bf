//! The demo's primary and hot standby: two `bourse` processes on 127.0.0.1, the WAL mirrored over TCP.
//!
//! Each node gets the embedded demo configuration (fresh ports, its own WAL directory, msync by default) and a
//! `[mirror]` section; the standby starts first and listens, the primary dials it, and the pair is ready once the
//! standby reports it caught up. Stopping takes the standby down first: stopping the primary first would make
//! the standby promote itself after `promote_after_ms` of silence.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use bourse_appliance::config::Config;
use bourse_appliance::demo::demo_toml;

use crate::node::{keep_off, Node};

/// Silence before the standby promotes itself. Far above the 5 ms default: on a two-core host running the load
/// generator, both nodes and their threads, a node can lose its core for longer than that, and a demo that
/// promoted its standby mid-run would show a failover rather than the pair.
pub const PROMOTE_AFTER_MS: u64 = 1_000;
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on loopback (bind port 0, read it, release it).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).context("finding a free TCP port")?;
    Ok(l.local_addr()?.port())
}

pub struct Pair {
    pub primary_cfg: Config,
    /// Where `primary_cfg` was written.
    pub primary_config_path: PathBuf,
    pub primary: Node,
    pub standby: Node,
    /// The primary's start-up line stating its acknowledgement rule and failure model.
    pub ack_line: String,
}

/// What each node said when it stopped.
pub struct Stopped {
    /// The primary's summary (`bourse: stopped: …`).
    pub primary: String,
    /// The standby's last word (`bourse standby: stopped while following, validated through seq N`).
    pub standby: String,
}

impl Pair {
    /// Writes both configurations into `dir`, starts the standby and then the primary (its pipeline pinned to
    /// `pipeline_core`, acknowledging by `ack`), and waits until the standby caught up.
    pub fn start(
        dir: &Path,
        wal_mode: &str,
        ack: &str,
        pipeline_core: Option<usize>,
        aux_core: Option<usize>,
    ) -> anyhow::Result<Pair> {
        let exe = std::env::current_exe().context("locating the bourse binary to start the pair")?;
        // Every thread of both nodes but the primary's pipeline runs beside the load, off the pipeline's core:
        // the primary's aux thread (its mirror sender and group commit) is pinned to `aux_core`, the standby
        // process confined to the other cores.
        let aux_core = pipeline_core.and(aux_core);
        let mirror = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_tcp_port()?);
        let pid = std::process::id();
        let primary_text = demo_toml(&format!("demo-{pid}-primary"), &dir.join("primary"), wal_mode, pipeline_core, aux_core)?
            + &format!(
                "\n[mirror]\nrole = \"primary\"\nstandby_addr = \"{mirror}\"\nack = \"{ack}\"\n\
                 promote_after_ms = {PROMOTE_AFTER_MS}\n"
            );
        let standby_text = demo_toml(&format!("demo-{pid}-standby"), &dir.join("standby"), wal_mode, None, None)?
            + &format!(
                "\n[mirror]\nrole = \"standby\"\nlisten = \"{mirror}\"\npromote_after_ms = {PROMOTE_AFTER_MS}\n"
            );
        // Parse before starting anything: a bad --ack is the user's error, named here, not a child's exit status.
        let primary_cfg = Config::parse(&primary_text).context("--ack: the demo primary's configuration")?;
        Config::parse(&standby_text).context("the demo standby's configuration")?;
        let (pp, sp) = (dir.join("primary.toml"), dir.join("standby.toml"));
        std::fs::write(&pp, &primary_text).with_context(|| format!("writing {}", pp.display()))?;
        std::fs::write(&sp, &standby_text).with_context(|| format!("writing {}", sp.display()))?;
        let mut standby_command = Command::new(&exe);
        keep_off(&mut standby_command, pipeline_core);
        let mut standby = Node::spawn("the demo standby", standby_command, &["standby"], &sp)?;
        standby.wait_for("listening for the primary", START_TIMEOUT)?;
        let mut primary = Node::spawn("the demo primary", Command::new(&exe), &["run"], &pp)?;
        let ack_line = primary.wait_for("bourse: acknowledgement:", START_TIMEOUT)?;
        primary.wait_for("mirror: primary epoch", START_TIMEOUT)?;
        standby.wait_for("caught up with the primary", START_TIMEOUT)?;
        let ack_line = ack_line.trim_start_matches("bourse: acknowledgement: ").to_string();
        Ok(Pair { primary_cfg, primary_config_path: pp, primary, standby, ack_line })
    }

    /// Stops the standby, then the primary, each by SIGTERM, and returns what they said. A node that had to be
    /// killed, or that did not say how it stopped, is an error carrying its log.
    pub fn stop(mut self) -> anyhow::Result<Stopped> {
        let grace = Duration::from_secs(10);
        let standby = stop_node(&mut self.standby, "bourse standby: stopped", grace)?;
        let primary = stop_node(&mut self.primary, "bourse: stopped: ", grace)?;
        Ok(Stopped { primary: primary.trim_start_matches("bourse: stopped: ").to_string(), standby })
    }
}

fn stop_node(node: &mut Node, last_word: &str, grace: Duration) -> anyhow::Result<String> {
    match node.terminate(grace) {
        Some(status) if status.success() => {}
        Some(status) => anyhow::bail!("a demo node exited with {status}:\n{}", node.log()),
        None => anyhow::bail!("a demo node did not stop within {grace:?} of SIGTERM:\n{}", node.log()),
    }
    node.poll_for(last_word, Duration::from_secs(1))
        .with_context(|| format!("a demo node stopped without printing {last_word:?}:\n{}", node.log()))
}
