//! Checks run before the journal is touched: everything a start-up can fail on after recovery (a port in use, a
//! core that does not exist, an unwritable directory, a market the engine refuses) is found first, each failure
//! naming its configuration key and saying what to do. `bourse run` and `bourse standby` run them before
//! recovering; `bourse config check --config F` runs them alone and reports every failure at once.
//!
//! Port checks bind the address exclusively for a moment and let it go, so they are a check, not a reservation: a
//! process that takes the port in between still makes the real bind fail, with the same key in its message.

use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use crate::config::{BackendKind, Config, MirrorRole};

/// One failed check: the configuration key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A bind problem starts with its address: "key addr: why"; others read "key: why".
        let sep = if self.what.as_bytes().first().is_some_and(u8::is_ascii_digit) { " " } else { ": " };
        write!(f, "{}{sep}{}", self.key, self.what)
    }
}

/// Every problem found in `config` for a node about to serve (or follow, for a standby).
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut p = |key: &str, what: String| out.push(Problem { key: key.to_string(), what });
    match &config.wal.dir {
        Some(dir) => {
            if let Err(e) = writable(dir) {
                p("wal.dir", format!("{}: {e}; create it or point wal.dir at a writable directory", dir.display()));
            } else if let Ok(bourse_persist::wal::LockState::Held { pid }) = bourse_persist::wal::DirLock::probe(dir) {
                let who = pid.map_or_else(|| "another process".to_string(), |p| format!("process {p}"));
                p("wal.dir", format!("{}: the WAL directory is in use by {who}; stop it first", dir.display()));
            }
        }
        None => p(
            "wal.dir",
            "not set: the journal would go to a new temporary directory on every start, and a restart would start \
             from nothing; set wal.dir to a directory that survives restarts"
                .into(),
        ),
    }
    let is_standby = config.mirror.as_ref().is_some_and(|m| m.role == MirrorRole::Standby);
    if !is_standby {
        check_order_entry(config, &mut p);
    }
    if let Some(addr) = config.market_data.retransmit_bind {
        if let Err(e) = UdpSocket::bind(addr) {
            p("market_data.retransmit_bind", bind_hint(addr, &e));
        }
    }
    if let Some(addr) = config.backend.soup_tcp_bind {
        if let Err(e) = TcpListener::bind(addr) {
            p("backend.soup_tcp_bind", bind_hint(addr, &e));
        }
    }
    if let Some(addr) = config.appliance.metrics_bind {
        if let Err(e) = TcpListener::bind(addr) {
            p("appliance.metrics_bind", bind_hint(addr, &e));
        }
    }
    if let Some(m) = &config.mirror {
        if let (MirrorRole::Standby, Some(listen)) = (m.role, m.listen) {
            if let Err(e) = TcpListener::bind(listen) {
                p("mirror.listen", format!("{listen}: {e} (is another standby listening there?)"));
            }
        }
    }
    let cpus = allowed_cpus();
    for (key, core) in [("cores.pipeline", config.cores.pipeline), ("cores.aux", config.cores.aux)] {
        if let Some(c) = core {
            if !cpus.contains(&c) {
                p(key, format!("core {c} is not one this process may run on (allowed: {cpus:?})"));
            }
        }
    }
    if let Some(path) = &config.appliance.hlog_path {
        let parent = path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if !parent.is_dir() {
            p("appliance.hlog_path", format!("{}: the directory {} does not exist", path.display(), parent.display()));
        }
    }
    if let Err(e) = super::setup::check_market(config) {
        p("symbols/firms", format!("{e:#}"));
    }
    out
}

fn check_order_entry(config: &Config, p: &mut impl FnMut(&str, String)) {
    let bind = config.backend.bind;
    match config.backend.kind {
        BackendKind::Socket | BackendKind::Uring => {
            if let Err(e) = UdpSocket::bind(bind) {
                p("backend.bind", bind_hint(bind, &e));
            }
        }
        BackendKind::AfXdp | BackendKind::Dpdk => {
            if !is_root() {
                p(
                    "backend.kind",
                    format!(
                        "{} needs CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK (or root); this process is \
                         not root",
                        config.backend.kind.as_str()
                    ),
                );
            }
            if config.backend.kind == BackendKind::AfXdp {
                match &config.backend.interface {
                    Some(i) if Path::new("/sys/class/net").join(i).exists() => {}
                    Some(i) => p("backend.interface", format!("{i:?} is not a network interface of this host")),
                    None => p("backend.interface", "af_xdp needs the interface to attach to".into()),
                }
            }
        }
    }
}

/// What a failed bind of `addr` means; the key's problem then reads "backend.bind 127.0.0.1:9000: address in use
/// (another appliance?)", as the bind itself reports it.
fn bind_hint(addr: SocketAddrV4, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("{addr}: address in use (another appliance?)"),
        std::io::ErrorKind::AddrNotAvailable => format!("{addr}: not an address of this host"),
        std::io::ErrorKind::PermissionDenied => {
            format!("{addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
        }
        _ => format!("{addr}: {e}"),
    }
}

fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".bourse-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// The problems as one error, or `Ok` when there are none.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let found = problems(config);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found.iter().map(|p| format!("  {p}")).collect();
    anyhow::bail!("the configuration cannot be served ({} problem(s)):\n{}", found.len(), lines.join("\n"))
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The configuration file to check.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// `bourse config check`: parses and checks a configuration without touching its journal.
pub fn run_check(args: CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    check(&config)?;
    println!(
        "{}: OK ({}, WAL {} in {})",
        args.config.display(),
        super::setup::describe(&config),
        format!("{:?}", config.wal.mode).to_lowercase(),
        config.wal.dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_config, TempDir};

    #[test]
    fn every_problem_names_its_key() {
        let wal = TempDir::new("bourse-preflight").unwrap();
        let mut config = demo_config(wal.path(), "msync", None).unwrap();
        assert_eq!(problems(&config), vec![], "the demo configuration can be served");
        let held = UdpSocket::bind(config.backend.bind).unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").unwrap();
        config.appliance.metrics_bind = match metrics.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => Some(a),
            _ => unreachable!(),
        };
        config.cores.pipeline = Some(4096);
        config.wal.dir = Some(PathBuf::from("/proc/bourse-cannot-write-here"));
        let found = problems(&config);
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["wal.dir", "backend.bind", "appliance.metrics_bind", "cores.pipeline"], "{found:?}");
        let bind = config.backend.bind;
        assert_eq!(found[1].to_string(), format!("backend.bind {bind}: address in use (another appliance?)"));
        let err = check(&config).unwrap_err().to_string();
        assert!(err.contains("4 problem(s)") && err.contains("cores.pipeline: core 4096"), "{err}");
        drop((held, metrics));
    }
}
