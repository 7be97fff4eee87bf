//! Moving a thread into a network namespace, for benchmarks and tests that put both ends of a link in their own
//! namespaces inside one process. A network namespace belongs to a thread, and threads it spawns inherit it.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Opens the namespace `name` as `ip netns add` created it.
pub fn open(name: &str) -> std::io::Result<File> {
    File::open(format!("/var/run/netns/{name}"))
}

/// Moves the calling thread into the network namespace open as `ns`.
pub fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: the fd is a valid open namespace file for the duration of the call; setns only changes this
    // thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Moves the calling thread into the namespace named `name`.
pub fn enter_named(name: &str) -> std::io::Result<()> {
    enter(&open(name)?)
}
