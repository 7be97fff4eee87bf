//! The DPDK backend: one Ethernet port, one receive and one transmit queue, busy-polled through our `dpdk-sys`.
//!
//! ```text
//!   rte_eal_init (once per process, args from BackendConfig::eal_args + our defaults)
//!        │
//!   mempool "bourse_p<port>" ── rx queue 0 ──▶ rx_burst: classify each frame (wire::frame)
//!        │                                        ├─ UDP for us  → Datagram to the caller, learn peer MAC
//!        │                                        ├─ ARP for us  → reply sent at once
//!        │                                        └─ anything else → counted and dropped
//!        └──────────── tx queue 0 ◀── tx: mbuf from the pool, payload filled in place, headers + checksums
//!                                      (peer MAC unknown: ARP request, Err(Unresolved), counted)
//!                                      tx_flush: one rte_eth_tx_burst for everything queued
//! ```
//!
//! DPDK owns the port outright (that is the point of a poll-mode driver), so this backend does the work the
//! kernel would: it parses Ethernet/IPv4/UDP with [`crate::wire::frame`], answers ARP for our address, learns
//! each peer's MAC from the frames it receives (a small fixed table keyed by source IP), maps multicast
//! destinations to `01:00:5e` MACs, and computes checksums on transmit. On receive it accepts a UDP checksum of
//! zero and the *partial* checksum veth leaves in frames from the kernel (`CHECKSUM_PARTIAL`: the field holds the
//! pseudo-header sum, the rest is left to a NIC that never runs on a virtual link).
//!
//! **EAL.** DPDK allows one Environment Abstraction Layer per process. [`eal_init`] runs `rte_eal_init` at most
//! once, remembers what it was asked, and answers a later call with the same request with the same outcome and a
//! call with a different one with [`DpdkError::EalArgsDiffer`]. [`eal_arguments`] is the one place that adds to the
//! configured arguments what they leave out: memory flags (`--no-huge -m 512` when no 2 MiB huge pages are free,
//! `--in-memory` when some are), `--no-pci` unless a PCI device is configured, `-l <pipeline core>`, and a
//! `--file-prefix` unique to the process. The EAL is shut down (`rte_eal_cleanup`) and its runtime directory
//! (`/var/run/dpdk/<prefix>`) removed when the last backend closes, so a run leaves nothing behind; a process
//! opens DPDK once. Drivers are found by DPDK itself: the shared build loads every PMD in its plugin directory
//! (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0` on Debian) at `rte_eal_init`.
//!
//! **Ports.** `BackendConfig::interface` names a DPDK port, not a kernel interface: for a virtual device it is
//! the name its `--vdev` gives (`--vdev=net_af_xdp0,iface=eth0` makes the port `net_af_xdp0`), for a NIC its PCI
//! address. A name that matches no port is an error listing the ports that exist; without root, the capabilities
//! the drivers need are named there too, since EAL skips a driver that fails for lack of them.
//!
//! **Allocation.** The pool, the receive burst array and the transmit queue are sized once in
//! [`DpdkBackend::new`]; receive and transmit only move mbuf pointers between them and DPDK.
//!
//! **Threads.** The backend may be built on one thread and moved to the pipeline core before use; it must then
//! stay there, since one queue is polled by one thread only. Mempool caches are per EAL lcore: a pipeline thread
//! that is not an lcore simply works without a cache.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::privilege::{self, Hint};
use super::{Backend, BackendConfig, BackendStats, Datagram, TxError};
use crate::wire::ethernet::{self, Address};
use crate::wire::frame::{self, Classified, DropCounters, DropReason, Local, UdpHeaders, UDP_PAYLOAD_OFFSET};
use crate::wire::arp;

/// Receive descriptors requested for queue 0 (drivers such as net_af_packet size their own rings and ignore it).
const RX_DESCRIPTORS: u16 = 1024;
/// Transmit descriptors requested for queue 0.
const TX_DESCRIPTORS: u16 = 1024;
/// Per-lcore mempool cache, in mbufs.
const POOL_CACHE_MBUFS: u32 = 32;
/// Bytes of packet data each mbuf can hold (DPDK's default data room, without the headroom).
const MBUF_DATA_BYTES: usize = 2048;
/// Peers whose MAC we remember; more than enough for the firms of one appliance, and small enough to scan.
const PEERS_MAX: usize = 64;
/// Memory for DPDK when it runs without huge pages, in MiB.
const NO_HUGE_MEMORY_MIB: u32 = 512;
/// Flushes [`echo`] tries, after being stopped, for replies the driver had refused.
const TX_DRAIN_ATTEMPTS_MAX: u32 = 1024;

/// Bytes of Ethernet, IPv4 and UDP header in front of every payload we send.
const HEADERS_BYTES: usize = UDP_PAYLOAD_OFFSET;

const _: () = assert!(HEADERS_BYTES == 42);
const _: () = assert!(ethernet::FRAME_MIN_BYTES <= MBUF_DATA_BYTES);

/// Why the DPDK backend could not be set up. Every variant carries enough context to act on without a debugger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    #[error("an EAL argument contains a NUL byte: {arg:?}")]
    NulInArgument { arg: String },
    #[error("DPDK's EAL can be initialised once per process: it is running with {running:?}, not {asked:?}")]
    EalArgsDiffer { running: Box<EalRequest>, asked: Box<EalRequest> },
    #[error("DPDK's EAL of this process was shut down when its last backend closed; it cannot start again")]
    EalFinished,
    #[error("rte_eal_init failed with arguments {args:?}: {reason}{hint}")]
    EalInit { args: Vec<String>, reason: String, hint: Hint },
    #[error(
        "no DPDK port named {name:?}; {} (EAL arguments {args:?}){hint}",
        describe_ports(available, args)
    )]
    NoSuchPort { name: String, available: Vec<String>, args: Vec<String>, hint: Hint },
    #[error("no DPDK ethernet port exists after EAL init (EAL arguments {args:?}); add a --vdev or a PCI device{hint}")]
    NoPort { args: Vec<String>, hint: Hint },
    #[error("creating mempool {name} of {mbufs} mbufs failed: {reason}")]
    Pool { name: String, mbufs: u32, reason: String },
    #[error("{call} on DPDK port {port} failed: {reason}{hint}")]
    Port { call: &'static str, port: u16, reason: String, hint: Hint },
    #[error("invalid backend configuration: {0}")]
    Config(String),
}

/// The ports that do exist, for [`DpdkError::NoSuchPort`]: `interface` is a DPDK port name, which for a virtual
/// device is the name its `--vdev` gives (`--vdev=net_af_xdp0,iface=eth0` makes `net_af_xdp0`), not a kernel one.
fn describe_ports(available: &[String], args: &[String]) -> String {
    if !available.is_empty() {
        format!(
            "the DPDK ports are {available:?} (backend.interface names a DPDK port, such as the name a --vdev gives, \
             not a kernel interface)"
        )
    } else if args.iter().any(|a| a.starts_with("--vdev")) {
        "DPDK has no ports: the configured device failed to start (EAL says why above; it skips a driver that \
         may not open its socket or load its program)"
            .to_owned()
    } else {
        "DPDK has no ports at all: name one with --vdev=<name>,iface=<kernel interface> or a PCI device".to_owned()
    }
}

/// The capabilities the drivers named in `args` need without root: a socket for net_af_packet; sockets, an XDP
/// program and locked memory for net_af_xdp; everything for anything else (PCI devices, other drivers).
fn capabilities_for(args: &[String]) -> &'static [privilege::Capability] {
    let vdevs = || args.iter().filter(|a| a.starts_with("--vdev"));
    if vdevs().count() > 0 && vdevs().all(|a| a.contains("net_af_packet")) {
        &[privilege::CAP_NET_RAW]
    } else {
        privilege::RAW_BACKEND
    }
}

/// What a caller asks of the EAL: the part of a [`BackendConfig`] the EAL arguments are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalRequest {
    /// The configured EAL arguments, before our defaults.
    pub eal_args: Vec<String>,
    /// The configured port when it is a PCI address (which keeps PCI probing on); other port names do not
    /// change the EAL, so backends on different virtual devices can share it.
    pub pci_port: Option<String>,
    /// The pipeline core, for `-l`.
    pub core: Option<usize>,
}

impl EalRequest {
    pub fn of(config: &BackendConfig) -> EalRequest {
        let pci_port = config.interface.clone().filter(|i| is_pci_address(i));
        EalRequest { eal_args: config.eal_args.clone(), pci_port, core: config.core }
    }
}

/// What `rte_eal_init` was asked and what it answered, for the rest of the process's life.
struct EalState {
    asked: EalRequest,
    /// The full argument list DPDK saw, or why it refused it.
    outcome: Result<Vec<String>, (String, Hint)>,
    /// Open backends (and backends being opened) using the EAL; when the last one closes, the EAL is shut down.
    holders: usize,
    /// `rte_eal_cleanup` has run: no DPDK call may follow.
    finished: bool,
}

/// The one EAL of this process. A mutex rather than a `Once` so that a second caller can be told, with a typed
/// error, what the first one asked for.
static EAL: Mutex<Option<EalState>> = Mutex::new(None);

fn eal_state() -> std::sync::MutexGuard<'static, Option<EalState>> {
    // A panic while holding the lock cannot leave the state half-written (each field is assigned in one
    // statement), so a poisoned lock is still good to read.
    EAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Initialises DPDK's EAL once per process from `config` (its `eal_args` plus the defaults [`eal_arguments`]
/// adds) and returns the full argument list DPDK runs with. A repeated call with the same request returns the
/// first call's outcome; a call with a different one fails with [`DpdkError::EalArgsDiffer`].
///
/// An EAL started only through this function runs until the process exits; one started by [`DpdkBackend::new`]
/// is shut down, and its runtime directory removed, when the last backend closes.
pub fn eal_init(config: &BackendConfig) -> Result<Vec<String>, DpdkError> {
    eal_init_held(config, false)
}

fn eal_init_held(config: &BackendConfig, hold: bool) -> Result<Vec<String>, DpdkError> {
    let asked = EalRequest::of(config);
    let mut state = eal_state();
    if let Some(state) = state.as_mut() {
        if state.finished {
            return Err(DpdkError::EalFinished);
        }
        if state.asked != asked {
            return Err(DpdkError::EalArgsDiffer { running: Box::new(state.asked.clone()), asked: Box::new(asked) });
        }
        let args = state.outcome.clone().map_err(|(reason, hint)| DpdkError::EalInit {
            args: asked.eal_args.clone(),
            reason,
            hint,
        })?;
        state.holders += usize::from(hold);
        return Ok(args);
    }
    let host = EalHost::probe();
    let full = eal_arguments(&asked, &host);
    if let Some(arg) = full.iter().find(|a| a.contains('\0')) {
        return Err(DpdkError::NulInArgument { arg: arg.clone() });
    }
    let outcome = ffi::eal_init(&full).map(|()| full.clone()).map_err(|(errno, reason)| {
        // A failed init may have created the runtime directory already; remove it when the prefix is ours, so
        // unique to this process (a configured prefix may be another process's, which is a common cause).
        if !has_option(&asked.eal_args, &["--file-prefix"]) {
            remove_runtime_dir();
        }
        let needed = capabilities_for(&asked.eal_args);
        let hint = if privilege::is_permission_errno(errno) {
            Hint::for_errno(errno, needed)
        } else {
            Hint::for_unknown(needed)
        };
        (reason, hint)
    });
    let holders = usize::from(hold && outcome.is_ok());
    *state = Some(EalState { asked, outcome: outcome.clone(), holders, finished: false });
    outcome.map_err(|(reason, hint)| DpdkError::EalInit { args: full, reason, hint })
}

/// Gives back one hold taken by [`eal_init_held`]; the last one shuts the EAL down and removes its runtime
/// directory (`rte_eal_cleanup` leaves the directory itself behind).
fn eal_release() {
    let mut state = eal_state();
    let Some(state) = state.as_mut() else {
        unreachable!("an EAL hold was released without an EAL");
    };
    assert!(state.holders > 0, "more EAL holds released than taken");
    state.holders -= 1;
    if state.holders > 0 {
        return;
    }
    let dir = ffi::runtime_dir();
    ffi::eal_cleanup();
    state.finished = true;
    if let Some(dir) = dir {
        remove_dir_if_present(&dir);
    }
}

/// The running EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root), while one runs.
pub fn eal_runtime_dir() -> Option<PathBuf> {
    let state = eal_state();
    let running = state.as_ref().is_some_and(|s| s.outcome.is_ok() && !s.finished);
    if running {
        ffi::runtime_dir()
    } else {
        None
    }
}

fn remove_runtime_dir() {
    if let Some(dir) = ffi::runtime_dir() {
        remove_dir_if_present(&dir);
    }
}

/// Removes a runtime directory. Failure is not an error worth failing a close for: the directory is left behind,
/// as before this existed, and its path is printed so the operator can remove it.
fn remove_dir_if_present(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("bourse-nic: could not remove DPDK runtime directory {}: {e}", dir.display()),
    }
}

/// One hold on the EAL, released on drop (see [`eal_release`]).
struct EalHold;

impl EalHold {
    fn acquire(config: &BackendConfig) -> Result<(EalHold, Vec<String>), DpdkError> {
        eal_init_held(config, true).map(|args| (EalHold, args))
    }
}

impl Drop for EalHold {
    fn drop(&mut self) {
        eal_release();
    }
}

/// What the EAL argument builder needs to know about the host, probed once so that the rules in
/// [`eal_arguments`] are a pure function.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EalHost {
    /// Free 2 MiB huge pages in a mounted hugetlbfs.
    hugepages_free: u64,
    /// The CPUs the calling thread may run on (empty when unknown).
    cpus_allowed: Vec<usize>,
    pid: u32,
}

impl EalHost {
    fn probe() -> EalHost {
        let cpus_allowed = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        EalHost { hugepages_free: hugepages_free(), cpus_allowed, pid: std::process::id() }
    }
}

/// Whether `args` contains one of `names`: a long option as `--name` or `--name=value`, a short one as `-x` or
/// with its value attached (`-l1`).
fn has_option(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|a| {
        names.iter().any(|n| {
            if n.starts_with("--") {
                a == n || a.strip_prefix(n).is_some_and(|rest| rest.starts_with('='))
            } else {
                a.starts_with(n)
            }
        })
    })
}

/// Whether `s` is a PCI address, `DDDD:BB:DD.F` or `BB:DD.F` (hex digits; function 0-7).
fn is_pci_address(s: &str) -> bool {
    let hex = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((rest, function)) = s.rsplit_once('.') else {
        return false;
    };
    let function_ok = function.len() == 1 && matches!(function.as_bytes()[0], b'0'..=b'7');
    let parts: Vec<&str> = rest.split(':').collect();
    function_ok
        && match parts.as_slice() {
            [domain, bus, device] => hex(domain, 4) && hex(bus, 2) && hex(device, 2),
            [bus, device] => hex(bus, 2) && hex(device, 2),
            _ => false,
        }
}

/// The argument vector for `rte_eal_init`: program name, the caller's arguments, then our defaults for whatever
/// the caller left out. This is the one place that decides DPDK's memory, PCI, core and file-prefix flags:
///
/// * **Memory.** Unless the caller chose a memory mode (`--no-huge`, `--in-memory`, `--legacy-mem`): without
///   free huge pages `--no-huge` and, unless sized with `-m`/`--socket-mem`, `-m 512` (ordinary pages, which
///   the virtual devices we use accept); with free huge pages `--in-memory`, so no huge page files and no shared
///   configuration are left behind. Never both: `--no-huge` implies legacy memory, which `--in-memory` refuses.
/// * **PCI.** `--no-pci` unless the configuration names a PCI device: an `-a`/`--allow`/`-b`/`--block`
///   argument, or a PCI address as the port, which is then allowed with `-a` (so EAL takes only that NIC).
/// * **Cores.** Unless `-l`/`-c`/`--lcores` is given: `-l <core>` for a configured pipeline core, otherwise
///   lcore 0 on the CPUs the calling thread may already use (`--lcores=0@(…)`), because `rte_eal_init` pins the
///   calling thread to its main lcore and a plain `-l 0` would move it to core 0.
/// * **File prefix.** `--file-prefix=bourse-<pid>` unless given: two DPDK processes must not share runtime
///   files, and a unique prefix lets this process remove its runtime directory when it closes.
fn eal_arguments(asked: &EalRequest, host: &EalHost) -> Vec<String> {
    let args = &asked.eal_args;
    let has = |names: &[&str]| has_option(args, names);
    let mut full = Vec::with_capacity(args.len() + 8);
    full.push("bourse".to_owned());
    full.extend(args.iter().cloned());
    if !has(&["--file-prefix"]) {
        full.push(format!("--file-prefix=bourse-{}", host.pid));
    }
    if !has(&["--no-huge", "--in-memory", "--legacy-mem"]) {
        if host.hugepages_free == 0 {
            full.push("--no-huge".to_owned());
            if !has(&["-m", "--socket-mem"]) {
                full.push("-m".to_owned());
                full.push(NO_HUGE_MEMORY_MIB.to_string());
            }
        } else {
            full.push("--in-memory".to_owned());
        }
    }
    if !has(&["--no-pci", "-a", "--allow", "-b", "--block"]) {
        match &asked.pci_port {
            Some(address) => full.push(format!("--allow={address}")),
            None => full.push("--no-pci".to_owned()),
        }
    }
    if !has(&["-l", "-c", "--lcores"]) {
        match (asked.core, host.cpus_allowed.as_slice()) {
            (Some(core), _) => full.extend(["-l".to_owned(), core.to_string()]),
            (None, []) => full.extend(["-l".to_owned(), "0".to_owned()]),
            (None, cpus) => {
                let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
                full.push(format!("--lcores=0@({})", list.join(",")));
            }
        }
    }
    full
}

/// Free 2 MiB huge pages in a mounted hugetlbfs (0 when none are reserved or no hugetlbfs is mounted).
pub fn hugepages_free() -> u64 {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")))
        .unwrap_or(false);
    if !mounted {
        return 0;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Peer MACs learned from received frames, keyed by IPv4 source address. Fixed size; when full, the oldest
/// entry is replaced (round robin), which at worst costs one ARP exchange.
struct Peers {
    entries: [(Ipv4Addr, Address); PEERS_MAX],
    len: usize,
    next_victim: usize,
}

impl Peers {
    fn new() -> Peers {
        Peers { entries: [(Ipv4Addr::UNSPECIFIED, Address::default()); PEERS_MAX], len: 0, next_victim: 0 }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: Address) {
        if mac.is_multicast() || ip.is_unspecified() {
            return;
        }
        if let Some(entry) = self.entries[..self.len].iter_mut().find(|(i, _)| *i == ip) {
            entry.1 = mac;
        } else if self.len < PEERS_MAX {
            self.entries[self.len] = (ip, mac);
            self.len += 1;
        } else {
            self.entries[self.next_victim] = (ip, mac);
            self.next_victim = (self.next_victim + 1) % PEERS_MAX;
        }
    }

    /// The MAC to send to `ip`: learned, or derived for multicast and broadcast destinations.
    fn resolve(&self, ip: Ipv4Addr) -> Option<Address> {
        if ip.is_multicast() {
            // RFC 1112 section 6.4: 01:00:5e followed by the low 23 bits of the group address.
            let o = ip.octets();
            return Some(Address([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]));
        }
        if ip.is_broadcast() {
            return Some(Address::BROADCAST);
        }
        self.entries[..self.len].iter().find(|(i, _)| *i == ip).map(|(_, mac)| *mac)
    }
}

/// A DPDK port driven by this thread: one rx and one tx queue, one mempool.
pub struct DpdkBackend {
    // Field order is drop order: mbufs go back to the pool and the port stops before the pool is freed.
    rx: ffi::RxBurst,
    txq: ffi::TxQueue,
    port: ffi::Port,
    pool: ffi::Pool,
    local: Local,
    peers: Peers,
    payload_max_bytes: usize,
    ident: u16,
    /// TTL of datagrams to multicast groups.
    multicast_ttl: u8,
    stats: BackendStats,
    drops: DropCounters,
    /// Last, so the EAL is shut down (when this is its last user) after the port and the pool are gone.
    _eal: EalHold,
}

impl DpdkBackend {
    /// Initialises the EAL (once per process, see [`eal_init`]), then sets up the port named by
    /// `config.interface` (a DPDK device name such as `net_af_packet0`) or, when it is `None`, the first port.
    pub fn new(config: &BackendConfig) -> Result<DpdkBackend, DpdkError> {
        check_config(config)?;
        // From here every early return drops the hold, which shuts the EAL down again if nothing else uses it.
        let (eal, eal_args) = EalHold::acquire(config)?;
        let port_id = match &config.interface {
            Some(name) => ffi::port_by_name(name).map_err(|_| DpdkError::NoSuchPort {
                name: name.clone(),
                available: ffi::port_names(),
                args: eal_args.clone(),
                // A driver that could not open its socket or load its program for lack of a capability is
                // skipped by EAL (22.11 logs "Bus (vdev) probe failed" and carries on): its port is just missing.
                hint: Hint::for_unknown(capabilities_for(&eal_args)),
            })?,
            None => ffi::first_port()
                .ok_or_else(|| DpdkError::NoPort { hint: Hint::for_unknown(capabilities_for(&eal_args)), args: eal_args })?,
        };
        // Pool size, added up from its consumers:
        let mut mbufs = 0u32;
        mbufs += u32::from(RX_DESCRIPTORS); // every receive descriptor holds one
        mbufs += u32::from(TX_DESCRIPTORS); // every transmit descriptor may hold one until the driver frees it
        mbufs += config.burst_max as u32; // one received burst, held while the caller's closure runs
        mbufs += config.tx_slots as u32; // every queued transmit slot
        mbufs += 2 * POOL_CACHE_MBUFS; // what one lcore cache may hold (DPDK lets it grow to 1.5 times its size)
        mbufs += 1; // the ARP reply in flight
        let pool_name = format!("bourse_p{port_id}");
        let pool = ffi::Pool::create(&pool_name, mbufs, POOL_CACHE_MBUFS, port_id)
            .map_err(|reason| DpdkError::Pool { name: pool_name, mbufs, reason })?;
        let port = ffi::Port::start(port_id, &pool, RX_DESCRIPTORS, TX_DESCRIPTORS)?;
        let local = Local { mac: Address(port.mac()), ip: *config.bind.ip(), port: Some(config.bind.port()) };
        Ok(DpdkBackend {
            rx: ffi::RxBurst::new(config.burst_max),
            txq: ffi::TxQueue::new(config.tx_slots),
            port,
            pool,
            local,
            peers: Peers::new(),
            payload_max_bytes: config.payload_max_bytes,
            ident: 0,
            multicast_ttl: config.multicast_ttl,
            stats: BackendStats::default(),
            drops: DropCounters::default(),
            _eal: eal,
        })
    }

    /// Our MAC address (the port's).
    pub fn mac(&self) -> Address {
        self.local.mac
    }

    /// The DPDK port id in use.
    pub fn port_id(&self) -> u16 {
        self.port.id()
    }

    /// Drops by reason, finer than [`BackendStats`].
    pub fn drop_counters(&self) -> DropCounters {
        self.drops
    }

    /// The driver's own counters (`rte_eth_stats_get`): packets and bytes per direction, misses, errors.
    pub fn port_stats(&self) -> Result<dpdk_sys::RteEthStats, DpdkError> {
        self.port.stats()
    }

    /// Mbufs free in the pool right now: with nothing queued it tells whether any leaked.
    pub fn pool_free_mbufs(&self) -> u32 {
        self.pool.available()
    }

    /// Teaches the peer table a MAC for `ip`, for peers we send to before hearing from them.
    pub fn add_peer(&mut self, ip: Ipv4Addr, mac: Address) {
        self.peers.learn(ip, mac);
    }

    /// Counts a dropped frame under its reason.
    fn count_drop(&mut self, reason: DropReason) {
        self.drops.count(reason);
        if reason.is_malformed() {
            self.stats.malformed += 1;
        } else {
            self.stats.dropped += 1;
        }
    }

    /// Sends an ARP reply telling `requester` our MAC, straight away: ARP is rare and a peer waits on it.
    fn answer_arp(&mut self, requester_mac: Address, requester_ip: Ipv4Addr) {
        self.peers.learn(requester_ip, requester_mac);
        let local = self.local;
        let sent = self.port.send_one(&self.pool, ethernet::FRAME_MIN_BYTES, |buf| {
            frame::emit_arp_reply(buf, &local, requester_mac, requester_ip).ok()
        });
        if sent {
            self.stats.arp_replies += 1;
        } else {
            self.stats.tx_full += 1;
        }
    }

    /// Broadcasts "who has `ip`?" so that a later transmit to it finds the peer's MAC.
    fn ask_arp(&mut self, ip: Ipv4Addr) {
        let local = self.local;
        // A lost request costs only a retry on the next transmit to that peer, so the outcome is not counted.
        self.port.send_one(&self.pool, ethernet::FRAME_MIN_BYTES, |buf| emit_arp_request(buf, &local, ip).ok());
    }

    /// Receives one burst and echoes every datagram for us back to its source, reusing the received mbuf (no
    /// copy, no decoding of the payload). Returns the number echoed. This is the floor `bourse bench wire`
    /// compares the appliance against.
    pub fn echo_burst(&mut self) -> usize {
        let n = self.rx.receive(&self.port);
        let mut echoed = 0;
        for i in 0..n {
            let action = match self.rx.frame_mut(i) {
                None => Action::Drop(DropReason::Truncated),
                Some(frame) => match frame::classify(frame, &self.local) {
                    Classified::Udp { src, dst, payload } => {
                        let src_mac = ethernet::Frame::new_unchecked(&*frame).src_addr();
                        self.peers.learn(*src.ip(), src_mac);
                        self.stats.rx += 1;
                        let len = payload.len();
                        frame.copy_within(payload, HEADERS_BYTES);
                        let h = UdpHeaders {
                            src_mac: self.local.mac,
                            dst_mac: src_mac,
                            src: dst,
                            dst: src,
                            ident: self.ident,
                            ttl: crate::wire::ipv4::TTL_DEFAULT,
                        };
                        self.ident = self.ident.wrapping_add(1);
                        // The reply is never longer than the request it answers, so the headers always fit.
                        match frame::emit_udp_headers(frame, &h, len) {
                            Ok(frame_len) => Action::Keep(frame_len),
                            Err(_) => Action::Drop(DropReason::Truncated),
                        }
                    }
                    Classified::ArpRequestForUs { sender_mac, sender_ip } => Action::Arp(sender_mac, sender_ip),
                    Classified::Drop(reason) => Action::Drop(reason),
                },
            };
            match action {
                Action::Keep(_) if self.txq.is_full() => self.stats.tx_full += 1,
                Action::Keep(frame_len) => {
                    self.txq.push(self.rx.take(i, frame_len));
                    echoed += 1;
                }
                Action::Arp(mac, ip) => self.answer_arp(mac, ip),
                Action::Drop(reason) => self.count_drop(reason),
                Action::Delivered => {}
            }
        }
        self.rx.free_all();
        self.tx_flush();
        echoed
    }
}

/// What to do with one received frame once the borrow of its bytes has ended.
enum Action {
    /// Handed to the caller.
    Delivered,
    /// Rewritten in place into a reply of this many bytes: transmit the same mbuf.
    Keep(usize),
    /// An ARP request for us from this peer.
    Arp(Address, Ipv4Addr),
    Drop(DropReason),
}

/// Busy-polls `backend`, echoing every datagram to its sender without copying it (see
/// [`DpdkBackend::echo_burst`]), until `stop` is set; returns how many datagrams were echoed. Never sleeps. The
/// same contract as the generic [`super::echo::echo`], which costs one copy per datagram more.
pub fn echo(backend: &mut DpdkBackend, stop: &AtomicBool) -> u64 {
    let mut echoed = 0u64;
    // Relaxed suffices: the flag carries no data, and the loop only needs to see it eventually.
    while !stop.load(Ordering::Relaxed) {
        echoed += backend.echo_burst() as u64;
    }
    // Replies the driver refused stay queued; give them a bounded last chance to leave.
    for _ in 0..TX_DRAIN_ATTEMPTS_MAX {
        if backend.txq.is_empty() {
            break;
        }
        backend.tx_flush();
    }
    echoed
}

impl Backend for DpdkBackend {
    fn name(&self) -> &'static str {
        "dpdk"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        let n = self.rx.receive(&self.port);
        let mut delivered = 0;
        for i in 0..n {
            let action = match self.rx.frame(i) {
                // A chained (multi-segment) mbuf: our payloads always fit one segment, so this is not ours.
                None => Action::Drop(DropReason::Truncated),
                Some(frame) => match frame::classify(frame, &self.local) {
                    Classified::Udp { src, dst, payload } => {
                        self.peers.learn(*src.ip(), ethernet::Frame::new_unchecked(frame).src_addr());
                        f(Datagram { src, dst, payload: &frame[payload] });
                        Action::Delivered
                    }
                    Classified::ArpRequestForUs { sender_mac, sender_ip } => Action::Arp(sender_mac, sender_ip),
                    Classified::Drop(reason) => Action::Drop(reason),
                },
            };
            match action {
                Action::Delivered => delivered += 1,
                Action::Arp(mac, ip) => self.answer_arp(mac, ip),
                Action::Drop(reason) => self.count_drop(reason),
                Action::Keep(_) => unreachable!("rx_burst never rewrites frames"),
            }
        }
        // Every payload lent to `f` is dead by now: the mbufs go back to the pool together.
        self.rx.free_all();
        self.stats.rx += delivered as u64;
        delivered
    }

    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        if self.txq.is_full() {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        }
        let Some(dst_mac) = self.peers.resolve(*dst.ip()) else {
            // Nobody has told us where this peer is: ask, and refuse this datagram, counted, so that the caller
            // does not believe it sent.
            self.ask_arp(*dst.ip());
            self.stats.tx_unresolved += 1;
            return Err(TxError::Unresolved);
        };
        let Some(mut mbuf) = self.pool.alloc(HEADERS_BYTES + self.payload_max_bytes) else {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        };
        let buf = mbuf.data_mut();
        let len = fill(&mut buf[HEADERS_BYTES..]);
        assert!(
            len <= self.payload_max_bytes,
            "tx fill returned {len} bytes, more than the {} lent",
            self.payload_max_bytes
        );
        let h = UdpHeaders {
            src_mac: self.local.mac,
            dst_mac,
            src: SocketAddrV4::new(self.local.ip, self.local.port.unwrap_or(0)),
            dst,
            ident: self.ident,
            ttl: frame::ttl_for(*dst.ip(), self.multicast_ttl),
        };
        self.ident = self.ident.wrapping_add(1);
        let frame_len =
            frame::emit_udp_headers(buf, &h, len).expect("the mbuf was sized for the headers plus payload_max_bytes");
        mbuf.truncate(frame_len);
        self.txq.push(mbuf);
        Ok(())
    }

    fn tx_flush(&mut self) -> usize {
        let sent = self.txq.flush(&self.port);
        self.stats.tx += sent as u64;
        sent
    }

    /// Our counters, with the driver's drops (`imissed` + `rx_nombuf`) as `nic_drops`. Reading the driver's
    /// counters is a call into the driver (a register read on a physical NIC), cheap enough for the exporter's
    /// cadence but not meant for every poll.
    fn stats(&self) -> BackendStats {
        let mut stats = self.stats;
        // On failure (a driver without counters) the field stays 0, as for backends that cannot see such drops.
        if let Ok(port) = self.port.stats() {
            stats.nic_drops = port.imissed + port.rx_nombuf;
        }
        stats
    }
}

fn check_config(config: &BackendConfig) -> Result<(), DpdkError> {
    let bad = |what: String| Err(DpdkError::Config(what));
    if config.burst_max == 0 || config.burst_max > usize::from(u16::MAX) {
        return bad(format!("burst_max {} must be in 1..=65535", config.burst_max));
    }
    if config.tx_slots == 0 || config.tx_slots > usize::from(u16::MAX) {
        return bad(format!("tx_slots {} must be in 1..=65535", config.tx_slots));
    }
    if HEADERS_BYTES + config.payload_max_bytes > MBUF_DATA_BYTES {
        return bad(format!(
            "payload_max_bytes {} plus {HEADERS_BYTES} header bytes exceeds the {MBUF_DATA_BYTES}-byte mbuf",
            config.payload_max_bytes
        ));
    }
    if config.bind.ip().is_unspecified() || config.bind.ip().is_multicast() {
        return bad(format!("bind address {} must be one unicast address: the port answers ARP for it", config.bind));
    }
    Ok(())
}

/// Builds a broadcast ARP request for `target`, padded to the Ethernet minimum. Returns the frame length.
fn emit_arp_request(buf: &mut [u8], local: &Local, target: Ipv4Addr) -> crate::wire::Result<usize> {
    if buf.len() < ethernet::FRAME_MIN_BYTES {
        let (need, have) = (ethernet::FRAME_MIN_BYTES, buf.len());
        return Err(crate::wire::Error::BufferTooSmall { format: "frame", need, have });
    }
    let end = ethernet::HEADER_LEN + arp::PACKET_LEN;
    ethernet::Repr { src_addr: local.mac, dst_addr: Address::BROADCAST, ethertype: ethernet::ethertype::ARP }
        .emit(buf)?;
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: local.mac,
        source_protocol_addr: local.ip,
        target_hardware_addr: Address::default(),
        target_protocol_addr: target,
    }
    .emit(&mut buf[ethernet::HEADER_LEN..end])?;
    buf[end..ethernet::FRAME_MIN_BYTES].fill(0);
    Ok(ethernet::FRAME_MIN_BYTES)
}

/// The only code in this crate that calls DPDK. Each type owns what DPDK lent it and gives it back on drop.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{CStr, CString};
    use std::ptr::{self, NonNull};

    use dpdk_sys as sys;

    use super::privilege::{self, Hint};
    use super::{DpdkError, MBUF_DATA_BYTES};

    /// DPDK's text for the calling thread's `rte_errno`, or for a negative return code.
    fn error_text(code: i32) -> String {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string for any value.
        let text = unsafe { CStr::from_ptr(sys::rte_strerror(code.abs())) };
        format!("{} (errno {})", text.to_string_lossy(), code.abs())
    }

    fn last_error() -> String {
        // SAFETY: reads this thread's rte_errno; no preconditions.
        error_text(unsafe { sys::dpdk_sys_errno() })
    }

    /// Runs `rte_eal_init` on `args` (program name first). The caller guarantees it runs at most once. On failure
    /// returns `rte_errno` and its text.
    pub(super) fn eal_init(args: &[String]) -> Result<(), (i32, String)> {
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| (0, format!("argument {a:?} contains NUL"))))
            .collect::<Result<_, _>>()?;
        // DPDK may permute argv and keeps pointers into it (for example the program name), so both the strings
        // and the array are leaked: one small allocation for the life of the process.
        let mut argv: Vec<*mut std::ffi::c_char> = owned.into_iter().map(CString::into_raw).collect();
        argv.push(ptr::null_mut());
        let argv = argv.leak();
        let argc = i32::try_from(argv.len() - 1).map_err(|_| (0, "too many EAL arguments".to_owned()))?;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a null pointer, all leaked so they
        // outlive the EAL; the caller (eal_init under the EAL mutex) ensures this is the only call.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            // SAFETY: reads this thread's rte_errno; no preconditions.
            let errno = unsafe { sys::dpdk_sys_errno() };
            Err((errno, error_text(errno)))
        } else {
            Ok(())
        }
    }

    /// Shuts the EAL down. The caller (the last EAL hold, under the EAL mutex) guarantees that no DPDK object is
    /// left and that no DPDK call follows.
    pub(super) fn eal_cleanup() {
        // SAFETY: as the caller guarantees above; the EAL was initialised successfully.
        let rc = unsafe { sys::rte_eal_cleanup() };
        if rc < 0 {
            // Nothing to recover: the process is done with DPDK either way.
            eprintln!("bourse-nic: rte_eal_cleanup failed: {}", error_text(rc));
        }
    }

    /// The EAL's runtime directory, or `None` before `rte_eal_init` has set it.
    pub(super) fn runtime_dir() -> Option<std::path::PathBuf> {
        // SAFETY: returns a pointer to a static NUL-terminated buffer (empty until rte_eal_init sets it); it
        // needs no initialised EAL.
        let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
        let dir = dir.to_str().ok()?;
        (!dir.is_empty()).then(|| std::path::PathBuf::from(dir))
    }

    /// The names of every port, in port id order.
    pub(super) fn port_names() -> Vec<String> {
        let mut names = Vec::new();
        // SAFETY: only reads the ethdev table, which EAL init has set up.
        let mut id = unsafe { sys::rte_eth_find_next(0) };
        while id < sys::RTE_MAX_ETHPORTS {
            let mut name = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN];
            // SAFETY: id is a valid port and name has the RTE_ETH_NAME_MAX_LEN bytes the call may write.
            if unsafe { sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) } == 0 {
                // SAFETY: on success DPDK wrote a NUL-terminated name into the buffer.
                names.push(unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned());
            }
            // SAFETY: as above.
            id = unsafe { sys::rte_eth_find_next(id + 1) };
        }
        names
    }

    pub(super) fn port_by_name(name: &str) -> Result<u16, String> {
        let c = CString::new(name).map_err(|_| "the name contains a NUL byte".to_owned())?;
        let mut id = 0u16;
        // SAFETY: c is a valid C string and id a valid out-pointer for the duration of the call.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc == 0 {
            Ok(id)
        } else {
            Err(error_text(rc))
        }
    }

    pub(super) fn first_port() -> Option<u16> {
        // SAFETY: only reads the ethdev table, which EAL init has set up.
        let id = unsafe { sys::rte_eth_find_next(0) };
        (id < sys::RTE_MAX_ETHPORTS).then_some(id)
    }

    /// A packet-mbuf mempool.
    pub(super) struct Pool(NonNull<sys::rte_mempool>);

    // SAFETY: a DPDK mempool is a thread-safe object (multi-producer/multi-consumer ring) meant to be shared
    // between threads; moving the handle between threads is how DPDK applications use it.
    unsafe impl Send for Pool {}

    impl Pool {
        pub(super) fn create(name: &str, mbufs: u32, cache: u32, port: u16) -> Result<Pool, String> {
            let c = CString::new(name).map_err(|_| "the name contains a NUL byte".to_owned())?;
            // SAFETY: EAL is initialised (callers come through eal_init); port is a valid port id.
            let socket = unsafe { sys::rte_eth_dev_socket_id(port) };
            let data_room = u16::try_from(MBUF_DATA_BYTES).expect("mbuf size fits u16") + sys::RTE_PKTMBUF_HEADROOM;
            // SAFETY: c is a valid C string for the call (DPDK copies the name); sizes are in DPDK's ranges.
            let pool = unsafe { sys::rte_pktmbuf_pool_create(c.as_ptr(), mbufs, cache, 0, data_room, socket) };
            NonNull::new(pool).map(Pool).ok_or_else(last_error)
        }

        /// An mbuf holding `len` bytes of (uninitialised-by-us) data, or `None` when the pool is empty.
        pub(super) fn alloc(&self, len: usize) -> Option<Mbuf> {
            // SAFETY: the pool pointer is valid while self lives.
            let m = NonNull::new(unsafe { sys::dpdk_sys_pktmbuf_alloc(self.0.as_ptr()) })?;
            let mbuf = Mbuf(m);
            // SAFETY: m is a freshly allocated mbuf we own; append only moves its length within its data room.
            let appended = unsafe { sys::dpdk_sys_pktmbuf_append(m.as_ptr(), len as u16) };
            // A null here means len exceeds the data room, which check_config rules out: treat it as exhaustion
            // rather than panic, and the Mbuf's drop returns it to the pool.
            (!appended.is_null()).then_some(mbuf)
        }

        pub(super) fn available(&self) -> u32 {
            // SAFETY: the pool pointer is valid while self lives.
            unsafe { sys::rte_mempool_avail_count(self.0.as_ptr()) }
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            // SAFETY: the port that used this pool was stopped and closed first (field order in DpdkBackend),
            // and every mbuf we held was returned, so nothing refers to the pool any more.
            unsafe { sys::rte_mempool_free(self.0.as_ptr()) }
        }
    }

    /// One owned single-segment mbuf.
    pub(super) struct Mbuf(NonNull<sys::rte_mbuf>);

    impl Mbuf {
        /// The packet data.
        pub(super) fn data_mut(&mut self) -> &mut [u8] {
            // SAFETY: we own the mbuf; mtod points at data_len initialised-or-reserved bytes in its data room, and
            // the &mut self borrow makes this slice the only access. Bytes appended but not yet written hold
            // whatever the previous user left, which is fine for u8.
            unsafe {
                let m = self.0.as_ptr();
                let len = usize::from(sys::dpdk_sys_pktmbuf_data_len(m));
                std::slice::from_raw_parts_mut(sys::dpdk_sys_pktmbuf_mtod(m).cast::<u8>(), len)
            }
        }

        /// Shortens the packet to `len` bytes (no-op when it is already that short).
        pub(super) fn truncate(&mut self, len: usize) {
            // SAFETY: we own the mbuf; trimming only lowers its lengths.
            unsafe {
                let m = self.0.as_ptr();
                let have = usize::from(sys::dpdk_sys_pktmbuf_data_len(m));
                if have > len {
                    sys::dpdk_sys_pktmbuf_trim(m, (have - len) as u16);
                }
            }
        }

        fn into_raw(self) -> *mut sys::rte_mbuf {
            let p = self.0.as_ptr();
            std::mem::forget(self);
            p
        }
    }

    impl Drop for Mbuf {
        fn drop(&mut self) {
            // SAFETY: we own the mbuf and nobody else refers to it.
            unsafe { sys::dpdk_sys_pktmbuf_free(self.0.as_ptr()) }
        }
    }

    /// A configured and started port with one rx and one tx queue.
    pub(super) struct Port {
        id: u16,
    }

    impl Port {
        pub(super) fn start(id: u16, pool: &Pool, rx_desc: u16, tx_desc: u16) -> Result<Port, DpdkError> {
            let check = |call: &'static str, rc: i32| {
                if rc < 0 {
                    let hint = Hint::for_errno(-rc, privilege::RAW_BACKEND);
                    Err(DpdkError::Port { call, port: id, reason: error_text(rc), hint })
                } else {
                    Ok(())
                }
            };
            let conf = sys::RteEthConf::zeroed();
            // SAFETY: id is a valid port; conf is a correctly sized (asserted in shim.c) all-zero rte_eth_conf.
            check("rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, 1, 1, &conf) })?;
            // From here the port is configured: Port's drop closes it on any error below.
            let port = Port { id };
            // SAFETY: valid port id.
            let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
            // SOCKET_ID_ANY (-1) becomes u32::MAX, exactly as the C API expects for "any node".
            let socket = socket as u32;
            // SAFETY: null rxconf means driver defaults; the pool outlives the port (DpdkBackend field order).
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(id, 0, rx_desc, socket, ptr::null(), pool.0.as_ptr())
            })?;
            // SAFETY: null txconf means driver defaults.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id, 0, tx_desc, socket, ptr::null())
            })?;
            // SAFETY: the port is configured with both queues set up.
            check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
            // Promiscuous mode lets multicast and frames for our MAC through on drivers that filter; drivers that
            // cannot (some virtual devices answer -ENOTSUP) still deliver our unicast frames, so failure is fine.
            // SAFETY: started port.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };
            Ok(port)
        }

        pub(super) fn id(&self) -> u16 {
            self.id
        }

        pub(super) fn mac(&self) -> [u8; 6] {
            let mut mac = sys::RteEtherAddr::default();
            // SAFETY: valid port and a valid out-pointer. On failure mac stays zero, which classify treats as
            // "not our MAC" for unicast: the port then only hears broadcast, a visible but harmless outcome.
            unsafe { sys::rte_eth_macaddr_get(self.id, &mut mac) };
            mac.addr_bytes
        }

        pub(super) fn stats(&self) -> Result<sys::RteEthStats, DpdkError> {
            let mut stats = sys::RteEthStats::default();
            // SAFETY: valid port and a correctly sized (asserted) out-struct.
            let rc = unsafe { sys::rte_eth_stats_get(self.id, &mut stats) };
            if rc < 0 {
                let (call, port, reason) = ("rte_eth_stats_get", self.id, error_text(rc));
                return Err(DpdkError::Port { call, port, reason, hint: Hint::for_errno(-rc, &[]) });
            }
            Ok(stats)
        }

        /// Builds one frame of at most `len` bytes with `build` (which returns the frame length, or `None` to
        /// abandon it) and transmits it immediately. Returns whether the driver took it.
        pub(super) fn send_one(&self, pool: &Pool, len: usize, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
            let Some(mut mbuf) = pool.alloc(len) else {
                return false;
            };
            let Some(frame_len) = build(mbuf.data_mut()) else {
                return false;
            };
            mbuf.truncate(frame_len);
            let mut one = [mbuf.into_raw()];
            // SAFETY: one holds one owned mbuf; tx_burst takes ownership of those it reports sent.
            let sent = unsafe { sys::dpdk_sys_eth_tx_burst(self.id, 0, one.as_mut_ptr(), 1) };
            if sent == 0 {
                // SAFETY: not sent, so still ours to free.
                unsafe { sys::dpdk_sys_pktmbuf_free(one[0]) };
            }
            sent == 1
        }
    }

    impl Drop for Port {
        fn drop(&mut self) {
            // SAFETY: the port was configured by us; stop and close are valid in any state after configure, and
            // the rx/tx arrays (dropped before the port) hold no mbufs of its queues.
            unsafe {
                sys::rte_eth_dev_stop(self.id);
                sys::rte_eth_dev_close(self.id);
            }
        }
    }

    /// The mbufs of one receive burst, owned by us until `free_all`.
    pub(super) struct RxBurst {
        mbufs: Box<[*mut sys::rte_mbuf]>,
        len: usize,
    }

    // SAFETY: the array only holds mbufs we own (or nulls); mbufs are not tied to a thread.
    unsafe impl Send for RxBurst {}

    impl RxBurst {
        pub(super) fn new(burst_max: usize) -> RxBurst {
            RxBurst { mbufs: vec![ptr::null_mut(); burst_max].into_boxed_slice(), len: 0 }
        }

        /// Polls queue 0 once. Returns how many mbufs arrived.
        pub(super) fn receive(&mut self, port: &Port) -> usize {
            debug_assert_eq!(self.len, 0, "the previous burst was not freed");
            let max = self.mbufs.len().min(usize::from(u16::MAX)) as u16;
            // SAFETY: the array has room for `max` pointers; rx_burst writes at most that many owned mbufs.
            let n = unsafe { sys::dpdk_sys_eth_rx_burst(port.id, 0, self.mbufs.as_mut_ptr(), max) };
            self.len = usize::from(n);
            self.len
        }

        fn slice(&self, i: usize) -> Option<(*mut u8, usize)> {
            let m = *self.mbufs[..self.len].get(i)?;
            if m.is_null() {
                return None;
            }
            // SAFETY: m is an mbuf of this burst that we own; the shims only read its header fields.
            unsafe {
                if sys::dpdk_sys_pktmbuf_nb_segs(m) != 1 {
                    return None;
                }
                Some((sys::dpdk_sys_pktmbuf_mtod(m).cast::<u8>(), usize::from(sys::dpdk_sys_pktmbuf_data_len(m))))
            }
        }

        /// The frame in mbuf `i`, or `None` for a multi-segment mbuf.
        pub(super) fn frame(&self, i: usize) -> Option<&[u8]> {
            let (data, len) = self.slice(i)?;
            // SAFETY: the mbuf's first segment holds `len` bytes at `data`; we own the mbuf until free_all,
            // which needs &mut self, so the slice cannot outlive it.
            Some(unsafe { std::slice::from_raw_parts(data, len) })
        }

        /// The frame in mbuf `i`, writable, or `None` for a multi-segment mbuf.
        pub(super) fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
            let (data, len) = self.slice(i)?;
            // SAFETY: as in `frame`, and the &mut self borrow makes this the only access to the mbuf's bytes.
            Some(unsafe { std::slice::from_raw_parts_mut(data, len) })
        }

        /// Takes mbuf `i` out of the burst, trimmed to `len` bytes.
        pub(super) fn take(&mut self, i: usize, len: usize) -> Mbuf {
            let m = std::mem::replace(&mut self.mbufs[i], ptr::null_mut());
            let mut mbuf = Mbuf(NonNull::new(m).expect("mbuf taken twice from one burst"));
            mbuf.truncate(len);
            mbuf
        }

        /// Returns every mbuf still in the burst to its pool.
        pub(super) fn free_all(&mut self) {
            if self.len > 0 {
                // SAFETY: the first len entries are mbufs we own or nulls (taken ones), which free_bulk skips.
                unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), self.len as u32) };
                self.len = 0;
            }
        }
    }

    impl Drop for RxBurst {
        fn drop(&mut self) {
            self.free_all();
        }
    }

    /// Frames waiting for `tx_burst`, in order.
    pub(super) struct TxQueue {
        mbufs: Box<[*mut sys::rte_mbuf]>,
        len: usize,
    }

    // SAFETY: the array only holds mbufs we own; mbufs are not tied to a thread.
    unsafe impl Send for TxQueue {}

    impl TxQueue {
        pub(super) fn new(slots: usize) -> TxQueue {
            TxQueue { mbufs: vec![ptr::null_mut(); slots].into_boxed_slice(), len: 0 }
        }

        pub(super) fn is_full(&self) -> bool {
            self.len == self.mbufs.len()
        }

        pub(super) fn is_empty(&self) -> bool {
            self.len == 0
        }

        pub(super) fn push(&mut self, mbuf: Mbuf) {
            assert!(!self.is_full(), "TxQueue::push on a full queue: callers check is_full first");
            self.mbufs[self.len] = mbuf.into_raw();
            self.len += 1;
        }

        /// One `tx_burst` for everything queued; what the driver refused stays queued, in order.
        pub(super) fn flush(&mut self, port: &Port) -> usize {
            if self.len == 0 {
                return 0;
            }
            // SAFETY: the first len entries are owned mbufs; tx_burst takes ownership of the first `sent`.
            let sent = usize::from(unsafe {
                sys::dpdk_sys_eth_tx_burst(port.id, 0, self.mbufs.as_mut_ptr(), self.len as u16)
            });
            self.mbufs.copy_within(sent..self.len, 0);
            self.len -= sent;
            sent
        }
    }

    impl Drop for TxQueue {
        fn drop(&mut self) {
            if self.len > 0 {
                // SAFETY: the first len entries are mbufs we still own.
                unsafe { sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), self.len as u32) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn request(args: &[&str]) -> EalRequest {
        EalRequest { eal_args: strings(args), pci_port: None, core: None }
    }

    /// A host with `hugepages_free` free pages, CPUs 0 and 1, and pid 4242.
    fn host(hugepages_free: u64) -> EalHost {
        EalHost { hugepages_free, cpus_allowed: vec![0, 1], pid: 4242 }
    }

    fn count(full: &[String], arg: &str) -> usize {
        full.iter().filter(|a| *a == arg).count()
    }

    #[test]
    fn eal_arguments_keep_the_callers_first() {
        let full = eal_arguments(&request(&["--vdev=net_null0", "--log-level=error"]), &host(0));
        assert_eq!(&full[..3], &["bourse", "--vdev=net_null0", "--log-level=error"]);
    }

    #[test]
    fn eal_arguments_without_hugepages_use_no_huge_and_never_in_memory() {
        let full = eal_arguments(&request(&["--vdev=net_null0"]), &host(0));
        assert_eq!(count(&full, "--no-huge"), 1, "{full:?}");
        assert!(full.windows(2).any(|w| w == ["-m", "512"]), "{full:?}");
        assert_eq!(count(&full, "--in-memory"), 0, "{full:?}");
        // A size of the caller's own is kept.
        let sized = eal_arguments(&request(&["-m", "128"]), &host(0));
        assert_eq!(count(&sized, "--no-huge"), 1);
        assert_eq!(count(&sized, "-m"), 1, "{sized:?}");
    }

    #[test]
    fn eal_arguments_with_hugepages_use_in_memory() {
        let full = eal_arguments(&request(&["--vdev=net_null0"]), &host(128));
        assert_eq!(count(&full, "--in-memory"), 1, "{full:?}");
        assert_eq!(count(&full, "--no-huge"), 0, "{full:?}");
        assert_eq!(count(&full, "-m"), 0, "{full:?}");
    }

    #[test]
    fn eal_arguments_leave_a_callers_memory_mode_alone() {
        for mode in ["--no-huge", "--in-memory", "--legacy-mem"] {
            for hugepages in [0, 128] {
                let full = eal_arguments(&request(&[mode]), &host(hugepages));
                let added = ["--no-huge", "--in-memory", "--legacy-mem", "-m"].iter().filter(|f| count(&full, f) > 0);
                assert_eq!(added.count(), 1, "{mode} with {hugepages} huge pages: {full:?}");
            }
        }
    }

    #[test]
    fn eal_arguments_add_no_pci_unless_a_pci_device_is_configured() {
        let full = eal_arguments(&request(&["--vdev=net_af_xdp0,iface=vA"]), &host(0));
        assert_eq!(count(&full, "--no-pci"), 1, "{full:?}");
        for pci in [&["-a", "0000:01:00.0"][..], &["--allow=0000:01:00.0"], &["-a0000:01:00.0"], &["-b", "01:00.1"]] {
            let full = eal_arguments(&request(pci), &host(0));
            assert_eq!(count(&full, "--no-pci"), 0, "{pci:?}: {full:?}");
            assert!(!full.iter().any(|a| a.starts_with("--allow=") && !pci.contains(&a.as_str())), "{full:?}");
        }
        // A PCI address as the port: that device alone is probed.
        for port in ["0000:3b:00.1", "3b:00.1"] {
            let mut config = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9000));
            config.interface = Some(port.into());
            let asked = EalRequest::of(&config);
            let full = eal_arguments(&asked, &host(0));
            assert_eq!(count(&full, "--no-pci"), 0, "{full:?}");
            assert_eq!(count(&full, &format!("--allow={port}")), 1, "{full:?}");
        }
        // The caller's own --no-pci is not repeated.
        assert_eq!(count(&eal_arguments(&request(&["--no-pci"]), &host(0)), "--no-pci"), 1);
    }

    #[test]
    fn pci_addresses_are_recognised() {
        for yes in ["0000:01:00.0", "01:00.7", "abcd:ef:1f.3"] {
            assert!(is_pci_address(yes), "{yes}");
        }
        for no in ["net_af_xdp0", "bva", "0000:01:00.8", "01:00", "0000:01:00.0.0", "000:01:00.0", "01:0g.0"] {
            assert!(!is_pci_address(no), "{no}");
        }
    }

    #[test]
    fn eal_arguments_take_the_lcore_from_the_pipeline_core() {
        let asked = EalRequest { core: Some(1), ..request(&[]) };
        let full = eal_arguments(&asked, &host(0));
        assert!(full.windows(2).any(|w| w == ["-l", "1"]), "{full:?}");
        // Without a core, lcore 0 stays on the CPUs the thread already has, rather than moving it to core 0.
        let full = eal_arguments(&request(&[]), &host(0));
        assert_eq!(count(&full, "--lcores=0@(0,1)"), 1, "{full:?}");
        assert_eq!(count(&full, "-l"), 0, "{full:?}");
        let unknown = EalHost { cpus_allowed: Vec::new(), ..host(0) };
        assert!(eal_arguments(&request(&[]), &unknown).windows(2).any(|w| w == ["-l", "0"]));
        // The caller's own core list wins over the configured core.
        for given in [&["-l", "0-1"][..], &["-l1"], &["-c", "0x3"], &["--lcores=0@1"]] {
            let asked = EalRequest { core: Some(1), ..request(given) };
            let full = eal_arguments(&asked, &host(0));
            assert_eq!(full.len(), 1 + given.len() + 5, "only prefix, memory and PCI flags added: {full:?}");
        }
    }

    #[test]
    fn eal_arguments_give_each_process_its_own_file_prefix() {
        let full = eal_arguments(&request(&[]), &host(0));
        assert_eq!(count(&full, "--file-prefix=bourse-4242"), 1, "{full:?}");
        let other = eal_arguments(&request(&[]), &EalHost { pid: 4243, ..host(0) });
        assert_eq!(count(&other, "--file-prefix=bourse-4243"), 1, "{other:?}");
        let given = eal_arguments(&request(&["--file-prefix=mine"]), &host(0));
        assert!(!given.iter().any(|a| a.starts_with("--file-prefix=bourse")), "{given:?}");
    }

    #[test]
    fn eal_arguments_add_nothing_the_caller_gave() {
        let explicit = strings(&["--file-prefix=x", "--no-huge", "-m", "64", "--lcores=1", "--no-pci"]);
        let asked = EalRequest { eal_args: explicit.clone(), pci_port: None, core: Some(1) };
        assert_eq!(eal_arguments(&asked, &host(0))[1..], explicit[..]);
    }

    #[test]
    fn a_missing_port_lists_the_ports_that_exist() {
        let hint = Hint::for_errno(0, privilege::RAW_BACKEND);
        let e = DpdkError::NoSuchPort {
            name: "vA".into(),
            available: strings(&["net_af_xdp0"]),
            args: Vec::new(),
            hint,
        };
        let text = e.to_string();
        assert!(text.contains("no DPDK port named \"vA\""), "{text}");
        assert!(text.contains("[\"net_af_xdp0\"]"), "{text}");
        let none = DpdkError::NoSuchPort { name: "vA".into(), available: Vec::new(), args: Vec::new(), hint };
        assert!(none.to_string().contains("--vdev="), "{none}");
        let args = strings(&["--vdev=net_af_packet0,iface=lo"]);
        let failed = DpdkError::NoSuchPort { name: "vA".into(), available: Vec::new(), args, hint };
        assert!(failed.to_string().contains("failed to start"), "{failed}");
        assert_eq!(capabilities_for(&strings(&["--vdev=net_af_packet0,iface=lo"])), &[privilege::CAP_NET_RAW]);
        assert_eq!(capabilities_for(&strings(&["--vdev=net_af_xdp0,iface=lo"])), privilege::RAW_BACKEND);
    }

    #[test]
    fn peers_learn_resolve_and_map_multicast() {
        let mut peers = Peers::new();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(peers.resolve(a), None);
        peers.learn(a, Address([2, 0, 0, 0, 0, 1]));
        peers.learn(a, Address([2, 0, 0, 0, 0, 9]));
        assert_eq!(peers.resolve(a), Some(Address([2, 0, 0, 0, 0, 9])));
        assert_eq!(peers.len, 1, "relearning an address must not take a second slot");
        // 239.129.2.3: the high bit of the second octet is not part of the MAC (RFC 1112).
        assert_eq!(peers.resolve(Ipv4Addr::new(239, 129, 2, 3)), Some(Address([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03])));
        assert_eq!(peers.resolve(Ipv4Addr::BROADCAST), Some(Address::BROADCAST));
        // A multicast source MAC is never learned.
        peers.learn(Ipv4Addr::new(10, 0, 0, 2), Address([1, 0, 0, 0, 0, 1]));
        assert_eq!(peers.resolve(Ipv4Addr::new(10, 0, 0, 2)), None);
        // Past capacity the oldest entries are replaced, and the table stays bounded.
        for i in 0..(PEERS_MAX as u32 + 3) {
            peers.learn(Ipv4Addr::from(0x0a01_0000 + i), Address([2, 1, 0, 0, 0, i as u8]));
        }
        assert_eq!(peers.len, PEERS_MAX);
        assert_eq!(
            peers.resolve(Ipv4Addr::from(0x0a01_0000 + PEERS_MAX as u32 + 2)),
            Some(Address([2, 1, 0, 0, 0, 66]))
        );
    }

    /// A frame as the kernel leaves it with CHECKSUM_PARTIAL: the UDP checksum field holds the folded
    /// pseudo-header sum. 10.0.0.1:1234 → 10.0.0.2:5678 "hi!".
    fn partial_checksum_frame() -> [u8; 45] {
        let mut buf = [0u8; 45];
        buf[HEADERS_BYTES..].copy_from_slice(b"hi!");
        let h = UdpHeaders {
            src_mac: Address([2, 0, 0, 0, 0, 1]),
            dst_mac: Address([2, 0, 0, 0, 0, 2]),
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5678),
            ident: 7,
            ttl: crate::wire::ipv4::TTL_DEFAULT,
        };
        frame::emit_udp_headers(&mut buf, &h, 3).unwrap();
        // Pseudo-header words: 0a00 + 0001 + 0a00 + 0002 + 0011 (UDP) + 000b (length 11) = 0x141f, which the
        // kernel stores as is (not complemented) for the NIC to finish.
        buf[40] = 0x14;
        buf[41] = 0x1f;
        buf
    }

    #[test]
    fn accepts_partial_udp_checksum_and_rejects_others() {
        let local = Local { mac: Address([2, 0, 0, 0, 0, 2]), ip: Ipv4Addr::new(10, 0, 0, 2), port: Some(5678) };
        let f = partial_checksum_frame();
        match frame::classify(&f, &local) {
            Classified::Udp { src, dst, payload } => {
                assert_eq!(src, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1234));
                assert_eq!(dst, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5678));
                assert_eq!(&f[payload], b"hi!");
            }
            other => panic!("partial checksum refused: {other:?}"),
        }
        let mut damaged = f;
        damaged[41] ^= 0x01;
        assert_eq!(frame::classify(&damaged, &local), Classified::Drop(DropReason::BadUdpChecksum));
    }

    #[test]
    fn arp_request_is_well_formed() {
        let local = Local { mac: Address([2, 0, 0, 0, 0, 2]), ip: Ipv4Addr::new(10, 0, 0, 2), port: Some(1) };
        let mut buf = [0xa5u8; 64];
        assert_eq!(emit_arp_request(&mut buf, &local, Ipv4Addr::new(10, 0, 0, 1)).unwrap(), 60);
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06, // broadcast, from us, ARP
            0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4 request
            2, 0, 0, 0, 0, 2, 10, 0, 0, 2, // sender = us
            0, 0, 0, 0, 0, 0, 10, 0, 0, 1, // target = who has 10.0.0.1
        ];
        assert_eq!(&buf[..42], &expected);
        assert!(buf[42..60].iter().all(|b| *b == 0));
        assert_eq!(&buf[60..], &[0xa5; 4]);
        // A request for someone else, seen by another host with that address, is a request for them.
        let them = Local { mac: Address([2, 0, 0, 0, 0, 1]), ip: Ipv4Addr::new(10, 0, 0, 1), port: Some(1) };
        assert_eq!(
            frame::classify(&buf[..60], &them),
            Classified::ArpRequestForUs { sender_mac: local.mac, sender_ip: local.ip }
        );
    }

    #[test]
    fn config_is_checked() {
        let mut c = BackendConfig::new(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9000));
        assert_eq!(check_config(&c), Ok(()));
        c.payload_max_bytes = 2048;
        assert!(matches!(check_config(&c), Err(DpdkError::Config(_))));
        c.payload_max_bytes = 1472;
        c.burst_max = 0;
        assert!(matches!(check_config(&c), Err(DpdkError::Config(_))));
        c.burst_max = 32;
        c.bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9000);
        assert!(matches!(check_config(&c), Err(DpdkError::Config(_))));
    }
}
