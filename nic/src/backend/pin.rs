//! Putting the pipeline thread where it can busy-poll undisturbed: core pinning (over `core_affinity`), locking
//! memory so a page fault never lands on the hot path, and the real-time FIFO scheduling class.
//!
//! These are start-up calls. Each returns a typed error instead of panicking, and the caller decides whether a
//! refusal is fatal (a benchmark wants all three; a laptop run can live without them).

use std::io;

/// Why a pinning or scheduling request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("core {core} is not among the cores this process may run on ({available:?})")]
    NoSuchCore { core: usize, available: Vec<usize> },
    #[error("the kernel refused to pin the thread to core {core}")]
    PinRefused { core: usize },
    #[error("mlockall: {0} (needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK)")]
    Lock(#[source] io::Error),
    #[error("munlockall: {0}")]
    Unlock(#[source] io::Error),
    #[error("SCHED_FIFO priority {priority} is outside {min}..={max}")]
    Priority { priority: i32, min: i32, max: i32 },
    #[error(
        "refusing SCHED_FIFO: the real-time throttle is off (kernel.sched_rt_runtime_us = -1), and a FIFO spinner \
         could then starve every other thread on its core"
    )]
    RtThrottleOff,
    #[error("sched_setscheduler: {0} (needs CAP_SYS_NICE)")]
    Scheduler(#[source] io::Error),
}

/// The cores this process may run on, ascending.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> Result<(), PinError> {
    let available = available_cores();
    if !available.contains(&core) {
        return Err(PinError::NoSuchCore { core, available });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(PinError::PinRefused { core })
    }
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`: every page the process has or will map stays resident.
pub fn lock_memory() -> Result<(), PinError> {
    sys::mlockall().map_err(PinError::Lock)
}

/// Undoes [`lock_memory`].
pub fn unlock_memory() -> Result<(), PinError> {
    sys::munlockall().map_err(PinError::Unlock)
}

/// The kernel's real-time throttle budget in microseconds per period, `None` when unlimited (-1) or unreadable.
pub fn rt_runtime_us() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/sys/kernel/sched_rt_runtime_us").ok()?;
    let v: i64 = text.trim().parse().ok()?;
    (v >= 0).then_some(v)
}

/// Moves the calling thread into `SCHED_FIFO` at `priority`. Refused while the real-time throttle is off: on two
/// cores a FIFO thread that never sleeps would otherwise lock out everything else on its core for good.
pub fn set_fifo_current_thread(priority: i32) -> Result<(), PinError> {
    let (min, max) = sys::fifo_priority_range();
    if priority < min || priority > max {
        return Err(PinError::Priority { priority, min, max });
    }
    if rt_runtime_us().is_none() {
        return Err(PinError::RtThrottleOff);
    }
    sys::set_scheduler(libc::SCHED_FIFO, priority).map_err(PinError::Scheduler)
}

/// Returns the calling thread to the normal time-sharing class.
pub fn set_normal_current_thread() -> Result<(), PinError> {
    sys::set_scheduler(libc::SCHED_OTHER, 0).map_err(PinError::Scheduler)
}

#[allow(unsafe_code)]
mod sys {
    use std::io;

    pub(super) fn mlockall() -> io::Result<()> {
        // SAFETY: mlockall takes only flags and touches no memory of ours.
        check(unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) })
    }

    pub(super) fn munlockall() -> io::Result<()> {
        // SAFETY: takes no arguments.
        check(unsafe { libc::munlockall() })
    }

    pub(super) fn fifo_priority_range() -> (i32, i32) {
        // SAFETY: these only read constants of the scheduling class.
        unsafe { (libc::sched_get_priority_min(libc::SCHED_FIFO), libc::sched_get_priority_max(libc::SCHED_FIFO)) }
    }

    pub(super) fn set_scheduler(policy: i32, priority: i32) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: priority };
        // SAFETY: pid 0 is the calling thread; `param` is valid for the call.
        check(unsafe { libc::sched_setscheduler(0, policy, &param) })
    }

    fn check(rc: i32) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field of /proc/thread-self/status, e.g. "Cpus_allowed_list".
    fn status_field(name: &str) -> String {
        let s = std::fs::read_to_string("/proc/thread-self/status").expect("read /proc/thread-self/status");
        let line = s.lines().find(|l| l.starts_with(name)).expect("field present");
        line.split_once(':').expect("colon").1.trim().to_string()
    }

    /// The scheduling policy of the calling thread, field 41 of /proc/thread-self/stat.
    fn policy() -> u32 {
        let s = std::fs::read_to_string("/proc/thread-self/stat").expect("read stat");
        // The command name (field 2) may hold spaces, so count from the closing parenthesis.
        let rest = &s[s.rfind(')').expect("comm") + 2..];
        rest.split(' ').nth(41 - 3).expect("policy field").parse().expect("number")
    }

    #[test]
    fn pins_a_thread_to_each_available_core() {
        let cores = available_cores();
        assert!(!cores.is_empty());
        for core in cores {
            std::thread::spawn(move || {
                pin_current_thread(core).expect("pin");
                assert_eq!(status_field("Cpus_allowed_list"), core.to_string());
            })
            .join()
            .expect("pinning thread");
        }
    }

    #[test]
    fn refuses_a_core_that_does_not_exist() {
        match pin_current_thread(100_000) {
            Err(PinError::NoSuchCore { core: 100_000, .. }) => {}
            other => panic!("expected NoSuchCore, got {other:?}"),
        }
    }

    #[test]
    fn fifo_priority_is_range_checked_and_applied() {
        assert!(matches!(set_fifo_current_thread(0), Err(PinError::Priority { priority: 0, .. })));
        assert!(matches!(set_fifo_current_thread(1_000), Err(PinError::Priority { .. })));
        let outcome = std::thread::spawn(|| {
            let r = set_fifo_current_thread(1);
            let p = policy();
            set_normal_current_thread().expect("back to SCHED_OTHER");
            (r, p, policy())
        })
        .join()
        .expect("fifo thread");
        match outcome {
            (Ok(()), fifo, other) => {
                assert_eq!(fifo, libc::SCHED_FIFO as u32);
                assert_eq!(other, libc::SCHED_OTHER as u32);
            }
            (Err(e @ (PinError::Scheduler(_) | PinError::RtThrottleOff)), _, _) => {
                eprintln!("skipped: SCHED_FIFO not available here: {e}");
            }
            (Err(e), _, _) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn locks_and_unlocks_memory() {
        match lock_memory() {
            Ok(()) => {
                assert_ne!(status_field("VmLck"), "0 kB");
                unlock_memory().expect("munlockall");
            }
            Err(e) => eprintln!("skipped: mlockall refused here: {e}"),
        }
    }
}
