//! Our FFI to the system DPDK (Debian's 22.11, found with pkg-config as `libdpdk`).
//!
//! Two kinds of declarations live here:
//!
//! * **Exported DPDK functions** (`rte_eal_init`, `rte_eth_dev_configure`, `rte_pktmbuf_pool_create`, …), declared
//!   by hand with the exact C signatures from the 22.11 headers. Only what the `dpdk` backend of bourse-nic uses
//!   is declared; this is not a general binding.
//! * **Shim functions** (`dpdk_sys_*`), compiled from `shim/shim.c` by `build.rs`. DPDK's per-packet operations
//!   (`rte_eth_rx_burst`, `rte_eth_tx_burst`, `rte_pktmbuf_alloc`, `rte_pktmbuf_mtod`, …) are static inline
//!   functions in its headers and have no symbol to link against; each shim function wraps exactly one of them.
//!
//! Structures we only pass pointers to (`rte_mbuf`, `rte_mempool`, `rte_eth_rxconf`, `rte_eth_txconf`) are opaque
//! here, so Rust never reads their fields: the shim does. The few structures Rust owns by value are declared with
//! their exact size and alignment, and `shim.c` pins those sizes with `_Static_assert`, so a DPDK whose layout
//! differs fails the build rather than corrupting memory:
//!
//! ```text
//!   struct           size (bytes)  align   Rust type
//!   rte_eth_conf     2272          8       RteEthConf  (opaque bytes; all-zero means "driver defaults")
//!   rte_ether_addr   6             1       RteEtherAddr
//!   rte_eth_stats    704           8       RteEthStats (fields read by Rust)
//! ```
//!
//! Everything here is `unsafe` to call; the safe, owning layer is `bourse_nic::backend::dpdk`. Declaring foreign
//! functions is not itself unsafe code, so the crate denies it: only the tests below call into DPDK.
#![deny(unsafe_code)]
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_uint, c_void};
use core::marker::{PhantomData, PhantomPinned};

/// Declares a type that exists only behind pointers (the `nomicon` pattern for opaque C structs): zero-sized,
/// neither `Send`, `Sync` nor `Unpin`, so Rust cannot construct, move or share one by value.
macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// A packet buffer (`struct rte_mbuf`); fields are reached through the `dpdk_sys_pktmbuf_*` shims.
    rte_mbuf;
    /// A memory pool (`struct rte_mempool`), here always a packet-mbuf pool.
    rte_mempool;
    /// Receive queue configuration; we always pass null for the driver's defaults.
    rte_eth_rxconf;
    /// Transmit queue configuration; we always pass null for the driver's defaults.
    rte_eth_txconf;
}

/// Size of `struct rte_eth_conf` in DPDK 22.11 (pinned by `_Static_assert` in `shim.c`).
pub const RTE_ETH_CONF_BYTES: usize = 2272;
/// Size of `struct rte_eth_stats` in DPDK 22.11 (pinned by `_Static_assert` in `shim.c`).
pub const RTE_ETH_STATS_BYTES: usize = 704;
/// `RTE_ETHDEV_QUEUE_STAT_CNTRS`: per-queue counter slots in `rte_eth_stats`.
pub const RTE_ETHDEV_QUEUE_STAT_CNTRS: usize = 16;
/// `RTE_MAX_ETHPORTS` as Debian builds DPDK: port ids are below this.
pub const RTE_MAX_ETHPORTS: u16 = 32;
/// `RTE_ETH_NAME_MAX_LEN` (`RTE_DEV_NAME_MAX_LEN`): bytes of a port name buffer, NUL included.
pub const RTE_ETH_NAME_MAX_LEN: usize = 64;
/// `SOCKET_ID_ANY`: let DPDK choose the NUMA node.
pub const SOCKET_ID_ANY: c_int = -1;
/// `RTE_PKTMBUF_HEADROOM` as Debian builds it: bytes reserved in front of the packet data.
pub const RTE_PKTMBUF_HEADROOM: u16 = 128;
/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data room plus the headroom.
pub const RTE_MBUF_DEFAULT_BUF_SIZE: u16 = 2048 + RTE_PKTMBUF_HEADROOM;

/// `struct rte_eth_conf`, kept opaque: we only ever pass an all-zero one, which asks for no offloads, no RSS and
/// the driver's default link settings.
#[repr(C, align(8))]
pub struct RteEthConf {
    pub bytes: [u8; RTE_ETH_CONF_BYTES],
}

impl RteEthConf {
    pub const fn zeroed() -> RteEthConf {
        RteEthConf { bytes: [0; RTE_ETH_CONF_BYTES] }
    }
}

/// `struct rte_ether_addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RteEtherAddr {
    pub addr_bytes: [u8; 6],
}

/// `struct rte_eth_stats`: the port's basic counters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RteEthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Received packets dropped by the hardware because no receive descriptor was free.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Receive mbuf allocation failures.
    pub rx_nombuf: u64,
    pub q_ipackets: [u64; RTE_ETHDEV_QUEUE_STAT_CNTRS],
    pub q_opackets: [u64; RTE_ETHDEV_QUEUE_STAT_CNTRS],
    pub q_ibytes: [u64; RTE_ETHDEV_QUEUE_STAT_CNTRS],
    pub q_obytes: [u64; RTE_ETHDEV_QUEUE_STAT_CNTRS],
    pub q_errors: [u64; RTE_ETHDEV_QUEUE_STAT_CNTRS],
}

impl Default for RteEthStats {
    fn default() -> RteEthStats {
        let q = [0; RTE_ETHDEV_QUEUE_STAT_CNTRS];
        RteEthStats {
            ipackets: 0,
            opackets: 0,
            ibytes: 0,
            obytes: 0,
            imissed: 0,
            ierrors: 0,
            oerrors: 0,
            rx_nombuf: 0,
            q_ipackets: q,
            q_opackets: q,
            q_ibytes: q,
            q_obytes: q,
            q_errors: q,
        }
    }
}

const _: () = assert!(core::mem::size_of::<RteEthConf>() == RTE_ETH_CONF_BYTES);
const _: () = assert!(core::mem::align_of::<RteEthConf>() == 8);
const _: () = assert!(core::mem::size_of::<RteEtherAddr>() == 6);
const _: () = assert!(core::mem::size_of::<RteEthStats>() == RTE_ETH_STATS_BYTES);

// Exported DPDK functions (librte_eal, librte_ethdev, librte_mbuf, librte_mempool). Linking is set up by build.rs.
extern "C" {
    /// Initialises the Environment Abstraction Layer from `argv` (argv[0] is the program name). Returns the number
    /// of arguments it consumed, or -1 with `rte_errno` set. May be called once per process.
    pub fn rte_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    /// Releases EAL resources; no DPDK call may follow it.
    pub fn rte_eal_cleanup() -> c_int;
    pub fn rte_strerror(errnum: c_int) -> *const c_char;
    /// The directory holding this process's runtime files (`/var/run/dpdk/<file-prefix>` for root), as a static
    /// NUL-terminated string; set early in `rte_eal_init`.
    pub fn rte_eal_get_runtime_dir() -> *const c_char;
    pub fn rte_socket_id() -> c_uint;

    pub fn rte_pktmbuf_pool_create(
        name: *const c_char,
        n: c_uint,
        cache_size: c_uint,
        priv_size: u16,
        data_room_size: u16,
        socket_id: c_int,
    ) -> *mut rte_mempool;
    pub fn rte_mempool_free(mp: *mut rte_mempool);
    pub fn rte_mempool_avail_count(mp: *const rte_mempool) -> c_uint;
    pub fn rte_pktmbuf_free_bulk(mbufs: *mut *mut rte_mbuf, count: c_uint);

    pub fn rte_eth_dev_count_avail() -> u16;
    /// The first valid port id at or after `port_id`, or `RTE_MAX_ETHPORTS` when there is none.
    pub fn rte_eth_find_next(port_id: u16) -> u16;
    pub fn rte_eth_dev_get_port_by_name(name: *const c_char, port_id: *mut u16) -> c_int;
    /// Writes the port's name into `name`, which must hold `RTE_ETH_NAME_MAX_LEN` bytes.
    pub fn rte_eth_dev_get_name_by_port(port_id: u16, name: *mut c_char) -> c_int;
    pub fn rte_eth_dev_socket_id(port_id: u16) -> c_int;
    pub fn rte_eth_dev_configure(
        port_id: u16,
        nb_rx_queue: u16,
        nb_tx_queue: u16,
        eth_conf: *const RteEthConf,
    ) -> c_int;
    pub fn rte_eth_rx_queue_setup(
        port_id: u16,
        rx_queue_id: u16,
        nb_rx_desc: u16,
        socket_id: c_uint,
        rx_conf: *const rte_eth_rxconf,
        mb_pool: *mut rte_mempool,
    ) -> c_int;
    pub fn rte_eth_tx_queue_setup(
        port_id: u16,
        tx_queue_id: u16,
        nb_tx_desc: u16,
        socket_id: c_uint,
        tx_conf: *const rte_eth_txconf,
    ) -> c_int;
    pub fn rte_eth_dev_start(port_id: u16) -> c_int;
    pub fn rte_eth_dev_stop(port_id: u16) -> c_int;
    pub fn rte_eth_dev_close(port_id: u16) -> c_int;
    pub fn rte_eth_macaddr_get(port_id: u16, mac_addr: *mut RteEtherAddr) -> c_int;
    pub fn rte_eth_promiscuous_enable(port_id: u16) -> c_int;
    pub fn rte_eth_stats_get(port_id: u16, stats: *mut RteEthStats) -> c_int;
}

// The shim (shim/shim.c): DPDK's static-inline fast paths as real symbols.
extern "C" {
    pub fn dpdk_sys_eth_rx_burst(port_id: u16, queue_id: u16, rx_pkts: *mut *mut rte_mbuf, nb_pkts: u16) -> u16;
    pub fn dpdk_sys_eth_tx_burst(port_id: u16, queue_id: u16, tx_pkts: *mut *mut rte_mbuf, nb_pkts: u16) -> u16;
    pub fn dpdk_sys_pktmbuf_alloc(mp: *mut rte_mempool) -> *mut rte_mbuf;
    /// Allocates `count` mbufs at once; returns 0 on success, or a negative value with nothing allocated.
    pub fn dpdk_sys_pktmbuf_alloc_bulk(pool: *mut rte_mempool, mbufs: *mut *mut rte_mbuf, count: c_uint) -> c_int;
    pub fn dpdk_sys_pktmbuf_free(m: *mut rte_mbuf);
    /// `rte_pktmbuf_mtod(m, void *)`: start of the data in the first segment.
    pub fn dpdk_sys_pktmbuf_mtod(m: *mut rte_mbuf) -> *mut c_void;
    pub fn dpdk_sys_pktmbuf_data_len(m: *const rte_mbuf) -> u16;
    pub fn dpdk_sys_pktmbuf_pkt_len(m: *const rte_mbuf) -> u32;
    pub fn dpdk_sys_pktmbuf_nb_segs(m: *const rte_mbuf) -> u16;
    pub fn dpdk_sys_pktmbuf_tailroom(m: *const rte_mbuf) -> u16;
    /// Grows the packet by `len` bytes at the end; returns the start of the new bytes, or null without room.
    pub fn dpdk_sys_pktmbuf_append(m: *mut rte_mbuf, len: u16) -> *mut c_char;
    /// Shrinks the packet by `len` bytes at the end; returns 0, or -1 when the last segment is too short.
    pub fn dpdk_sys_pktmbuf_trim(m: *mut rte_mbuf, len: u16) -> c_int;
    pub fn dpdk_sys_socket_id() -> c_uint;
    /// The calling thread's `rte_errno`.
    pub fn dpdk_sys_errno() -> c_int;
    pub fn dpdk_sys_sizeof_eth_conf() -> usize;
    pub fn dpdk_sys_sizeof_eth_stats() -> usize;
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// The sizes Rust declares agree with the ones the C compiler saw in the installed headers.
    #[test]
    fn layouts_match_the_installed_headers() {
        // SAFETY: both shims only return a `sizeof` constant; they touch no DPDK state and need no EAL.
        let (conf, stats) = unsafe { (dpdk_sys_sizeof_eth_conf(), dpdk_sys_sizeof_eth_stats()) };
        assert_eq!(conf, core::mem::size_of::<RteEthConf>());
        assert_eq!(stats, core::mem::size_of::<RteEthStats>());
    }

    /// Without an EAL, DPDK's error strings still resolve: proves the shared libraries link and load.
    #[test]
    fn links_against_the_system_dpdk() {
        // SAFETY: rte_strerror only formats a message for an errno value into a per-thread buffer; no EAL needed.
        let text = unsafe { core::ffi::CStr::from_ptr(rte_strerror(ENOENT)) };
        assert_eq!(text.to_str(), Ok("No such file or directory"));
    }

    /// `ENOENT` on Linux; the test avoids a libc dependency for one constant.
    const ENOENT: c_int = 2;
}
