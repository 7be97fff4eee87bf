//! Which Linux capabilities the raw backends need, so that a permission failure says what to grant.
//!
//! The raw backends (AF_XDP, DPDK) run fine as root. Run as another user they fail with `EPERM` or `EACCES`
//! from some system call deep in their set-up, and that errno alone does not tell the operator which capability is
//! missing. [`Hint`] turns such a failure into a sentence naming the capabilities the failed step needs, which of
//! them this process lacks (from `CapEff` in `/proc/self/status`), and the alternative of running as root.

use std::fmt;
use std::io;

/// One Linux capability: its name and its bit in the capability sets (`include/uapi/linux/capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub bit: u32,
}

pub const CAP_NET_ADMIN: Capability = Capability { name: "CAP_NET_ADMIN", bit: 12 };
pub const CAP_NET_RAW: Capability = Capability { name: "CAP_NET_RAW", bit: 13 };
pub const CAP_IPC_LOCK: Capability = Capability { name: "CAP_IPC_LOCK", bit: 14 };
pub const CAP_SYS_ADMIN: Capability = Capability { name: "CAP_SYS_ADMIN", bit: 21 };
pub const CAP_BPF: Capability = Capability { name: "CAP_BPF", bit: 39 };

/// Everything a raw backend may need, for failures that cannot be pinned to one step.
pub const RAW_BACKEND: &[Capability] = &[CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN, CAP_IPC_LOCK];

/// Whether `errno` means "not allowed": `EPERM` (a capability check failed) or `EACCES` (a file mode did).
pub fn is_permission_errno(errno: i32) -> bool {
    errno == libc::EPERM || errno == libc::EACCES
}

/// Whether `error` is a permission failure (see [`is_permission_errno`]).
pub fn is_permission_error(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(is_permission_errno)
}

/// This process's effective capability set, or `None` when `/proc/self/status` cannot be read.
pub fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The capabilities in `needed` that `effective` lacks (all of them when the set is unknown).
pub fn missing(needed: &[Capability], effective: Option<u64>) -> Vec<&'static str> {
    needed.iter().filter(|c| effective.is_none_or(|set| set & (1 << c.bit) == 0)).map(|c| c.name).collect()
}

/// Why a [`Hint`] has something to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The failure was not about permissions, as far as we can tell: the hint displays as nothing.
    Unrelated,
    /// The step failed with `EPERM` or `EACCES`.
    Denied,
    /// The step failed without saying why (DPDK reports a driver that could not open its socket only as a
    /// missing port), and this process lacks capabilities the step may need.
    Unprivileged,
}

/// The advice for a failure of a step needing `needed`, displayed as `"; permission denied: …"` or `"; this
/// process lacks …"` (or nothing at all when the failure was not about permissions). Meant to be appended to an
/// error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub cause: Cause,
    pub needed: &'static [Capability],
    /// This process's effective capabilities at the time, when known.
    pub effective: Option<u64>,
}

impl Hint {
    /// A hint for an `io::Error` from a step needing `needed`.
    pub fn for_io(error: &io::Error, needed: &'static [Capability]) -> Hint {
        Hint::for_errno(error.raw_os_error().unwrap_or(0), needed)
    }

    /// A hint for a failure with `errno` from a step needing `needed`.
    pub fn for_errno(errno: i32, needed: &'static [Capability]) -> Hint {
        if is_permission_errno(errno) {
            Hint { cause: Cause::Denied, needed, effective: effective() }
        } else {
            Hint { cause: Cause::Unrelated, needed, effective: None }
        }
    }

    /// A hint for a failure that carries no errno: [`Cause::Unprivileged`] when this process lacks any of
    /// `needed` (or its capabilities cannot be read), otherwise nothing.
    pub fn for_unknown(needed: &'static [Capability]) -> Hint {
        let effective = effective();
        let cause = if missing(needed, effective).is_empty() { Cause::Unrelated } else { Cause::Unprivileged };
        Hint { cause, needed, effective }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.needed.iter().map(|c| c.name).collect();
        let lacking = missing(self.needed, self.effective);
        match self.cause {
            Cause::Unrelated => return Ok(()),
            Cause::Denied => {
                write!(f, "; permission denied: this needs {}", names.join(", "))?;
                if self.effective.is_some() && !lacking.is_empty() {
                    write!(f, " (this process lacks {})", lacking.join(", "))?;
                }
            }
            Cause::Unprivileged => {
                write!(f, "; this process lacks {}", lacking.join(", "))?;
                if lacking.len() < names.len() {
                    write!(f, " (of {})", names.join(", "))?;
                }
                write!(f, ", which may be why: grant them")?;
            }
        }
        write!(f, ", or run as root")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn hint_names_needed_and_missing_capabilities_only_when_relevant() {
        let raw_only = 1u64 << CAP_NET_RAW.bit;
        let needed = &[CAP_NET_RAW, CAP_BPF];
        let hint = Hint { cause: Cause::Denied, needed, effective: Some(raw_only) };
        assert_eq!(
            hint.to_string(),
            "; permission denied: this needs CAP_NET_RAW, CAP_BPF (this process lacks CAP_BPF), or run as root"
        );
        let unknown = Hint { effective: None, ..hint };
        assert_eq!(unknown.to_string(), "; permission denied: this needs CAP_NET_RAW, CAP_BPF, or run as root");
        let unprivileged = Hint { cause: Cause::Unprivileged, ..hint };
        assert_eq!(
            unprivileged.to_string(),
            "; this process lacks CAP_BPF (of CAP_NET_RAW, CAP_BPF), which may be why: grant them, or run as root"
        );
        assert_eq!(Hint { cause: Cause::Unrelated, ..hint }.to_string(), "");
        assert_eq!(Hint::for_errno(libc::EACCES, RAW_BACKEND).cause, Cause::Denied);
        assert_eq!(Hint::for_io(&io::Error::from_raw_os_error(libc::ENODEV), RAW_BACKEND).cause, Cause::Unrelated);
        assert_eq!(missing(&[CAP_NET_ADMIN], None), ["CAP_NET_ADMIN"]);
    }
}
