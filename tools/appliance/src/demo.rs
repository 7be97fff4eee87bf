//! The embedded demo configuration and the appliance on a thread: what `bourse demo`, the integration tests and
//! the benchmarks start an appliance with.
//!
//! [`demo_config`] renders a complete configuration (socket backend on 127.0.0.1 with free ports, the WAL in a
//! given directory, two firms, two symbols); [`InProcess`] runs [`crate::appliance::serve`] on its own thread and
//! waits until it takes input; [`TempDir`] holds a WAL directory for as long as it lives.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::appliance::{self, Summary};
use crate::config::Config;

/// The embedded configuration; `@…@` fields are filled in at run time.
const DEMO_TOML: &str = r#"
[appliance]
name = "@NAME@"

[backend]
kind = "socket"
bind = "127.0.0.1:@ORDER_PORT@"

[market_data]
group = "127.0.0.1:@MD_PORT@"
session = "BOURSEDEMO"
retransmit_bind = "127.0.0.1:@RETX_PORT@"
# The load generator and the tests ask from loopback; nobody else is answered.
retransmit_subscribers = ["127.0.0.1"]

[wal]
dir = "@WAL_DIR@"
mode = "@WAL_MODE@"
segment_bytes = 67108864

[cores]
@CORES@

"#;

/// A UDP port nobody holds right now (bind port 0, read it, release it).
pub fn free_udp_port() -> anyhow::Result<u16> {
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).context("finding a free UDP port")?;
    Ok(s.local_addr()?.port())
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("bourse: warning: could not remove {}: {e}", self.0.display());
        }
    }
}

/// The demo configuration with fresh ports, `wal_dir`, and the pipeline pinned to `pipeline_core`.
pub fn demo_config(wal_dir: &Path, wal_mode: &str, pipeline_core: Option<usize>) -> anyhow::Result<Config> {
    let text = demo_toml(&format!("demo-{}", std::process::id()), wal_dir, wal_mode, pipeline_core, None)?;
    Config::parse(&text).context("the embedded demo configuration")
}

/// The text of [`demo_config`] for an appliance named `name` (its stats block's name): what `bourse demo` writes
/// for each node of its pair, followed by the node's `[mirror]` section.
/// `aux_core` pins the aux thread (group commit, mirror sender).
pub fn demo_toml(
    name: &str,
    wal_dir: &Path,
    wal_mode: &str,
    pipeline_core: Option<usize>,
    aux_core: Option<usize>,
) -> anyhow::Result<String> {
    let cores = [("pipeline", pipeline_core), ("aux", aux_core)]
        .iter()
        .filter_map(|(k, c)| c.map(|c| format!("{k} = {c}\n")))
        .collect::<String>();
    if !matches!(wal_mode, "msync" | "none" | "dax") {
        bail!("--wal-mode {wal_mode:?}: expected msync, none or dax");
    }
    let dir = wal_dir.to_str().context("the temporary directory's path is not UTF-8")?;
    Ok(DEMO_TOML
        .replace("@NAME@", name)
        .replace("@ORDER_PORT@", &free_udp_port()?.to_string())
        .replace("@MD_PORT@", &free_udp_port()?.to_string())
        .replace("@RETX_PORT@", &free_udp_port()?.to_string())
        .replace("@WAL_DIR@", &dir.replace('\\', "\\\\").replace('"', "\\\""))
        .replace("@WAL_MODE@", wal_mode)
        .replace("@CORES@", &cores)
        + &crate::config::demo_market_toml(2, "127.0.0.1"))
}

/// The appliance running on its own thread.
pub struct InProcess {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<Summary>>>,
}

impl InProcess {
    /// Starts `serve` on a thread and waits (at most `timeout`) until it takes input.
    pub fn start(config: &Config, timeout: Duration) -> anyhow::Result<InProcess> {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let handle = {
            let (config, stop, ready) = (config.clone(), Arc::clone(&stop), Arc::clone(&ready));
            std::thread::Builder::new()
                .name("bourse-pipeline".into())
                .spawn(move || appliance::serve(&config, stop, Some(ready)))
                .context("starting the appliance thread")?
        };
        let mut me = InProcess { stop, handle: Some(handle) };
        let deadline = Instant::now() + timeout;
        while !ready.load(Ordering::Acquire) {
            if me.handle.as_ref().is_some_and(|h| h.is_finished()) {
                let err = match me.stop_and_join() {
                    Ok(s) => anyhow::anyhow!("the appliance stopped before it was ready ({s})"),
                    Err(e) => e,
                };
                return Err(err.context("starting the in-process appliance"));
            }
            if Instant::now() >= deadline {
                let _ = me.stop_and_join();
                bail!("the in-process appliance was not ready within {} ms", timeout.as_millis());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(me)
    }

    /// Stops the appliance and returns its summary.
    pub fn stop_and_join(&mut self) -> anyhow::Result<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("the appliance thread panicked"))?,
            None => bail!("the appliance was already stopped"),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.stop_and_join();
        }
    }
}
