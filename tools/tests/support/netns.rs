//! The failover tests' namespaces, as `scripts/netns-failover.sh up` builds them:
//!
//! ```text
//!   bourse-fp (primary)          bourse-fl (firms, load, market data)          bourse-fs (standby)
//!     bfp  10.78.0.1 ──veth── bridge bfbr 10.78.0.3 ──veth── bfs  10.78.0.2
//!     bfpm 10.79.0.1 ─────────────── veth (mirror link) ────────────── bfsm 10.79.0.2
//! ```
//!
//! [`require_failover_netns`] brings them up (idempotently; it also brings every link back up, healing a
//! partition a killed run left behind) and takes a lock held for the whole test: the partition scenario takes the
//! mirror link down, so two runs sharing the namespaces (two test functions, or `ci/failover-test.sh` next to
//! `cargo test`) must not overlap. The namespaces are left in place afterwards, like `scripts/netns.sh`'s;
//! `scripts/netns-failover.sh down` removes them.
//!
//! The bourse nodes run as `ip netns exec` children; the test's own clients run on threads that [`enter`] the
//! firms' namespace first (a network namespace belongs to a thread, and threads it spawns inherit it).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;

use bourse::netns::enter;

pub const NS_PRIMARY: &str = "bourse-fp";
pub const NS_STANDBY: &str = "bourse-fs";
pub const NS_FIRMS: &str = "bourse-fl";
pub const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
pub const STANDBY_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
pub const FIRMS_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 3);
pub const PRIMARY_MIRROR_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
pub const STANDBY_MIRROR_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
/// The primary's end of the mirror link.
pub const PRIMARY_MIRROR_DEV: &str = "bfpm";

/// Serialises every test run that uses these namespaces, across processes.
const TEST_LOCK: &str = "/run/bourse-failover-netns.test.lock";

/// The namespaces are up and this run holds them.
pub struct FailoverNetns {
    firms: Arc<File>,
    _lock: File,
}

pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts")
}

/// True when running as root (namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints the reason a test is skipped, in the one format CI greps for.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
}

/// Takes the test lock, brings the namespaces up and opens the firms' one, or prints `skipped: <reason>` and
/// returns `None`.
pub fn require_failover_netns() -> Option<FailoverNetns> {
    if !is_root() {
        skip("needs root for network namespaces");
        return None;
    }
    if !Command::new("ip").args(["netns", "list"]).output().map(|o| o.status.success()).unwrap_or(false) {
        skip("`ip netns` is unavailable (install iproute2)");
        return None;
    }
    let lock = match File::create(TEST_LOCK) {
        Ok(f) => f,
        Err(e) => {
            skip(&format!("cannot create {TEST_LOCK}: {e}"));
            return None;
        }
    };
    // SAFETY: flock on a file we own; blocks until no other run holds the namespaces.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {TEST_LOCK}: {}", std::io::Error::last_os_error());
    let script = scripts_dir().join("netns-failover.sh");
    match Command::new("bash").arg(&script).arg("up").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            skip(&format!("{} up failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim()));
            return None;
        }
        Err(e) => {
            skip(&format!("cannot run {}: {e}", script.display()));
            return None;
        }
    }
    match bourse::netns::open(NS_FIRMS) {
        Ok(f) => Some(FailoverNetns { firms: Arc::new(f), _lock: lock }),
        Err(e) => {
            skip(&format!("cannot open /run/netns/{NS_FIRMS}: {e}"));
            None
        }
    }
}

impl FailoverNetns {
    /// Runs `f` on a new thread inside the firms' namespace (threads `f` spawns inherit it).
    pub fn spawn_in_firms<T, F>(&self, name: &str, f: F) -> JoinHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = Arc::clone(&self.firms);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                enter(&ns).unwrap_or_else(|e| panic!("setns into {NS_FIRMS}: {e}"));
                f()
            })
            .expect("spawn a thread in the firms' namespace")
    }
}


/// `ip -n <ns> link set <dev> up|down`.
pub fn set_link(ns: &str, dev: &str, up: bool) {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "set", dev, if up { "up" } else { "down" }])
        .output()
        .expect("running ip");
    assert!(out.status.success(), "ip -n {ns} link set {dev}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Takes a link down; brings it back up when healed or dropped (a failing test must not leave the mirror link
/// cut for the next run, although the next `up` would also restore it).
pub struct Partition {
    ns: &'static str,
    dev: &'static str,
    cut: bool,
}

impl Partition {
    pub fn cut(ns: &'static str, dev: &'static str) -> Partition {
        set_link(ns, dev, false);
        Partition { ns, dev, cut: true }
    }

    pub fn heal(&mut self) {
        if self.cut {
            set_link(self.ns, self.dev, true);
            self.cut = false;
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if self.cut {
            let _ = Command::new("ip").args(["-n", self.ns, "link", "set", self.dev, "up"]).status();
        }
    }
}

/// `ip netns exec <ns> ss <args>` output, for reports (empty when `ss` is missing).
pub fn sockets(ns: &str, args: &[&str]) -> String {
    Command::new("ip")
        .args(["netns", "exec", ns, "ss"])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
