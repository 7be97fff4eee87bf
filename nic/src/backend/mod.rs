//! Packet I/O backends behind one burst trait.
//!
//! Every backend presents the same view to the pipeline: UDP datagrams addressed to our port, received in bursts as
//! borrowed payloads with their source and destination addresses, and UDP datagrams transmitted by filling a slot the
//! backend lends out. The raw backends (`dpdk`, `af_xdp`) parse Ethernet/IPv4/UDP themselves, answer ARP for our
//! address, and drop and count everything else; the kernel-socket backends (`socket`, `uring`) get that from the
//! kernel. Nothing here allocates after construction: receive buffers, transmit slots and the burst arrays are sized
//! once from [`BackendConfig`].
//!
//! The pipeline core busy-polls: `rx_burst` and `tx_flush` never block and never sleep.

pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod echo;
pub mod pin;
pub mod privilege;
pub mod socket;
pub mod uring;

use std::net::SocketAddrV4;

/// One received UDP datagram, borrowed from the backend until the closure returns.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
}

/// Counters every backend keeps. Plain integers owned by the pipeline core; the stats exporter copies them out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Datagrams delivered to the pipeline.
    pub rx: u64,
    /// Datagrams handed to the kernel or NIC for transmission.
    pub tx: u64,
    /// Frames not for us (other protocols, ports, addresses) or refused for lack of a transmit slot.
    pub dropped: u64,
    /// Frames that failed length or checksum validation.
    pub malformed: u64,
    /// ARP requests for our address answered (raw backends).
    pub arp_replies: u64,
    /// Transmits refused because every slot was in flight.
    pub tx_full: u64,
    /// Transmits refused because the destination's link-layer address is not known yet ([`TxError::Unresolved`]:
    /// raw backends, which have asked the network). The datagram is not sent; zero for the kernel-socket backends,
    /// whose kernel resolves neighbours itself.
    pub tx_unresolved: u64,
    /// Frames the NIC or its driver dropped before the backend saw them: for DPDK, `imissed` (no free receive
    /// descriptor) plus `rx_nombuf` (no mbuf to refill one) from `rte_eth_stats_get`. Zero where the backend
    /// cannot see such drops.
    pub nic_drops: u64,
    /// Datagrams the kernel dropped for our socket before we read them: for `socket` and `uring`, increments of
    /// the socket's drop count (`SO_RXQ_OVFL`: receive buffer full, bad checksum), seen with the next datagram
    /// received; for `af_xdp`, the socket's `XDP_STATISTICS` drops. Zero where the backend cannot see such drops.
    pub kernel_drops: u64,
    /// Datagrams longer than `payload_max_bytes`: dropped and counted, never delivered cut short.
    pub oversized: u64,
}

/// Why [`Backend::tx`] did not queue a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Transmit slots are all in flight: the caller keeps its data and retries after [`Backend::tx_flush`].
    #[error("every transmit slot is in flight")]
    Full,
    /// The destination cannot be addressed yet (a raw-frame backend does not know its MAC; it has asked the
    /// network). Nothing was queued and the backend counted it in [`BackendStats::tx_unresolved`]: retrying at once
    /// would fail the same way, so the caller counts the datagram as not sent and moves on (a firm recovers its
    /// replies by logging in again).
    #[error("the destination's link-layer address is not known yet")]
    Unresolved,
}

/// The one seam between the pipeline and the packet I/O.
pub trait Backend {
    /// A short name for logs and benchmark output (`socket`, `uring`, `af_xdp`, `dpdk`).
    fn name(&self) -> &'static str;

    /// Receives at most one burst of datagrams, calling `f` for each, and returns how many were delivered.
    /// Never blocks: returns 0 when nothing is waiting.
    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize;

    /// Queues one UDP datagram to `dst`: `fill` writes the payload into the lent buffer (at most `max_len` bytes
    /// as sized by the config's MTU) and returns its length. Sent at the latest by the next [`Backend::tx_flush`].
    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError>;

    /// Hands every queued datagram to the kernel or NIC in as few calls as possible; returns how many went out.
    fn tx_flush(&mut self) -> usize;

    fn stats(&self) -> BackendStats;
}

/// What every backend is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// Our address and UDP port (order entry).
    pub bind: SocketAddrV4,
    /// Interface for the raw backends (ignored by socket backends).
    pub interface: Option<String>,
    /// Datagrams per receive burst and per transmit flush.
    pub burst_max: usize,
    /// Transmit slots (datagrams queued before `tx_flush`).
    pub tx_slots: usize,
    /// Largest UDP payload sent or received.
    pub payload_max_bytes: usize,
    /// DPDK EAL arguments (e.g. `--vdev=net_af_xdp0,iface=veth0`, with `interface = "net_af_xdp0"`). The dpdk
    /// backend adds memory, PCI, core and file-prefix flags the caller leaves out (see `backend::dpdk`).
    pub eal_args: Vec<String>,
    /// The core the polling thread is pinned to, if any: DPDK's EAL gets `-l <core>` from it, so that its main
    /// lcore is that thread's core rather than core 0.
    pub core: Option<usize>,
    /// IPv4 TTL of datagrams to multicast groups on the raw backends (the socket backends take it as
    /// `IP_MULTICAST_TTL` in their options). 1, the kernel's default, keeps a feed on the local segment.
    pub multicast_ttl: u8,
}

impl BackendConfig {
    pub fn new(bind: SocketAddrV4) -> BackendConfig {
        BackendConfig {
            bind,
            interface: None,
            burst_max: 32,
            tx_slots: 256,
            payload_max_bytes: 1_472,
            eal_args: Vec::new(),
            core: None,
            multicast_ttl: 1,
        }
    }
}
