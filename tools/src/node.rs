//! A `bourse` child process whose output is collected line by line: how `bourse demo` runs its primary and
//! standby, how the hot-standby tests run theirs, and how `bench ledger --lag` runs the ledger. The nodes speak
//! on stderr; stdout (where `bourse ledger ingest` prints its summary) is collected into the same lines.
//!
//! The child is killed when the [`Node`] is dropped (an error or a failing test leaves no busy-polling appliance
//! behind) and, through `PR_SET_PDEATHSIG`, when the thread that spawned it dies.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Node {
    pub child: Child,
    /// What the node is called in errors ("the standby").
    role: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// `program <args> --config <config>` (`program` is the `bourse` binary, or `ip netns exec … bourse`).
    pub fn spawn(role: &str, mut command: Command, args: &[&str], config: &Path) -> anyhow::Result<Node> {
        command.args(args).arg("--config").arg(config).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of ours; it asks the kernel to SIGKILL the
        // child when the spawning thread dies. The setting survives the exec of `ip` and of bourse (neither is
        // set-uid).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("spawning {role} ({command:?})"))?;
        let stderr = child.stderr.take().context("the child's stderr pipe")?;
        let stdout = child.stdout.take().context("the child's stdout pipe")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(stderr, &lines);
        collect(stdout, &lines);
        Ok(Node { child, role: role.to_string(), lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line of output containing `needle`, if one arrived yet.
    pub fn find(&self, needle: &str) -> Option<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.contains(needle)).cloned()
    }

    /// Waits for a line of output containing `needle` and returns it; an error (with the node's log) if the process
    /// exits first or `timeout` passes.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.find(needle) {
                return Ok(l);
            }
            if let Some(status) = self.child.try_wait()? {
                // The reader may still be draining the pipe: one last look before giving up.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self.find(needle) {
                    return Ok(l);
                }
                bail!("{} exited ({status}) before printing {needle:?}:\n{}", self.role, self.log());
            }
            if Instant::now() >= deadline {
                bail!("{} printed no {needle:?} within {timeout:?}:\n{}", self.role, self.log());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits at most `timeout` for a line containing `needle`, without failing.
    pub fn poll_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.find(needle) {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (the node closes its WAL cleanly and prints its summary), SIGKILL after `grace`. The exit status,
    /// or None when it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
        None
    }
}

/// Appends each line `from` gives to `lines`, on a thread of its own, until the pipe closes.
fn collect(from: impl std::io::Read + Send + 'static, lines: &Arc<Mutex<Vec<String>>>) {
    let sink = Arc::clone(lines);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes the child run on `cores` only (its threads may still pin themselves elsewhere): how the demo keeps its
/// nodes' unpinned threads off the core its primary's pipeline busy-polls, where they would wait for the
/// scheduler to preempt the spinning pipeline (milliseconds) instead of running at once beside the load.
pub fn confine(command: &mut Command, cores: &[usize]) {
    // SAFETY: cpu_set_t is a plain bit array; zeroed is its empty value, and CPU_SET only sets bits within it.
    #[allow(unsafe_code)]
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        set
    };
    // SAFETY: sched_setaffinity is a plain system call (async-signal-safe) on the child's own pid (0), reading
    // `set`, which the closure owns; a failure fails the spawn with its errno.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Confines the child to every core but `core` (the pipeline's busy-polled one), when there is one to avoid.
pub fn keep_off(command: &mut Command, core: Option<usize>) {
    let Some(core) = core else { return };
    let others: Vec<usize> = bourse_nic::backend::pin::available_cores().into_iter().filter(|&c| c != core).collect();
    if !others.is_empty() {
        confine(command, &others);
    }
}

/// Sends `sig` to process `pid` (for a thread that holds only the pid, e.g. a killer thread).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; a pid that already exited makes it fail with ESRCH, which is fine.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}
