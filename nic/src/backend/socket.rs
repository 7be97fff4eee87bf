//! The portable backend: a non-blocking kernel UDP socket, busy-polled with `recvmmsg(2)` and `sendmmsg(2)`.
//!
//! It needs nothing but a socket, so it is the embedded default and the baseline every bypass backend is measured
//! against. The kernel does the Ethernet/IP/UDP work; this module only batches. Every array the two calls touch
//! (message headers, iovecs, addresses, payload buffers) is allocated once in [`SocketBackend::new`]:
//!
//! * receive: `burst_max` slots of `payload_max_bytes`; a datagram longer than that arrives with `MSG_TRUNC` and is
//!   counted as oversized instead of being delivered cut short;
//! * kernel drops: the socket has `SO_RXQ_OVFL` on, so a datagram carries the socket's cumulative drop count (full
//!   receive buffer, bad checksum) in a control message once that count is not zero. The backend keeps the last
//!   value seen and adds each increase to [`BackendStats::kernel_drops`]: no system call, no allocation, the count
//!   rides on datagrams that arrive anyway. The cost of that: drops are seen when the next datagram after them is
//!   received, so a burst of drops followed by silence shows up with the next datagram;
//! * transmit: `tx_slots` slots filled in order by [`Backend::tx`] and handed over by [`Backend::tx_flush`] in one
//!   `sendmmsg` per contiguous run. What the kernel does not take (send buffer full) stays queued for the next flush,
//!   so a full socket buffer turns into [`TxError::Full`] backpressure rather than loss.
//!
//! The destination address reported for received datagrams is the socket's bound address (the kernel is not asked
//! for per-datagram `IP_PKTINFO`, which would cost a control message per datagram).

#[allow(unsafe_code)]
pub(crate) mod sys;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Backend, BackendConfig, BackendStats, Datagram, TxError};
use sys::MmsgArrays;

/// Socket options beyond the address, all optional; [`Default`] gives a plain unicast socket bound exclusively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_REUSEADDR` before binding. Off by default, and the appliance never sets it: for UDP it does not help a
    /// restart (there is no TIME_WAIT; a closed port rebinds at once) but lets a second socket that also sets it
    /// bind the same address, so a second appliance would start and take a share of the first one's orders.
    /// Without it a second bind fails with `EADDRINUSE`.
    pub reuse_addr: bool,
    /// `SO_BUSY_POLL` in microseconds: the kernel spins on the device queue inside `recvmmsg` for this long.
    /// Raising it above `net.core.busy_read` needs CAP_NET_ADMIN.
    pub busy_poll_us: Option<u32>,
    /// `IP_MULTICAST_LOOP`: whether our own multicast transmissions are delivered to local listeners.
    pub multicast_loop: Option<bool>,
    /// `IP_MULTICAST_TTL` for multicast transmissions (the kernel default is 1: the local segment).
    pub multicast_ttl: Option<u32>,
    /// `IP_MULTICAST_IF`: the address of the interface multicast goes out of.
    pub multicast_if: Option<Ipv4Addr>,
    /// `SO_RCVBUF` in bytes (the kernel doubles it for bookkeeping).
    pub recv_buffer_bytes: Option<u32>,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer_bytes: Option<u32>,
}

/// Why a socket backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("invalid backend config: {0}")]
    Config(&'static str),
    #[error("creating the UDP socket: {0}")]
    Create(#[source] io::Error),
    #[error("setting {option} on the UDP socket: {source}")]
    Option {
        option: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("binding the UDP socket to {addr}: {source}")]
    Bind {
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("joining multicast group {group} on {iface}: {source}")]
    Join {
        group: Ipv4Addr,
        iface: Ipv4Addr,
        #[source]
        source: io::Error,
    },
}

/// Checks the parts of the config the socket backends depend on.
pub(crate) fn check_config(cfg: &BackendConfig) -> Result<(), SocketError> {
    if cfg.burst_max == 0 {
        return Err(SocketError::Config("burst_max must be at least 1"));
    }
    if cfg.tx_slots == 0 {
        return Err(SocketError::Config("tx_slots must be at least 1"));
    }
    // 65,507 is the largest UDP payload IPv4 can carry (65,535 - 20 IP header - 8 UDP header).
    if cfg.payload_max_bytes == 0 || cfg.payload_max_bytes > 65_507 {
        return Err(SocketError::Config("payload_max_bytes must be within 1..=65507"));
    }
    Ok(())
}

/// Creates, configures and binds the UDP socket both kernel-socket backends use.
pub(crate) fn open_udp(bind: SocketAddrV4, opts: &SocketOptions) -> Result<OwnedFd, SocketError> {
    let fd = sys::udp_socket().map_err(SocketError::Create)?;
    let opt = |option: &'static str| move |source| SocketError::Option { option, source };
    if opts.reuse_addr {
        sys::set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1i32).map_err(opt("SO_REUSEADDR"))?;
    }
    if let Some(us) = opts.busy_poll_us {
        let us = i32::try_from(us).map_err(|_| SocketError::Config("busy_poll_us exceeds i32"))?;
        sys::set_option(&fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL, us).map_err(opt("SO_BUSY_POLL"))?;
    }
    if let Some(on) = opts.multicast_loop {
        sys::set_option(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, i32::from(on))
            .map_err(opt("IP_MULTICAST_LOOP"))?;
    }
    if let Some(ttl) = opts.multicast_ttl {
        let ttl = i32::try_from(ttl).map_err(|_| SocketError::Config("multicast_ttl exceeds i32"))?;
        sys::set_option(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl).map_err(opt("IP_MULTICAST_TTL"))?;
    }
    if let Some(iface) = opts.multicast_if {
        sys::set_multicast_if(&fd, iface).map_err(opt("IP_MULTICAST_IF"))?;
    }
    // Always on: the drop count arrives in a control message only once drops happened (see the module notes).
    sys::set_option(&fd, libc::SOL_SOCKET, sys::SO_RXQ_OVFL, 1i32).map_err(opt("SO_RXQ_OVFL"))?;
    if let Some(bytes) = opts.recv_buffer_bytes {
        let bytes = i32::try_from(bytes).map_err(|_| SocketError::Config("recv_buffer_bytes exceeds i32"))?;
        sys::set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes).map_err(opt("SO_RCVBUF"))?;
    }
    if let Some(bytes) = opts.send_buffer_bytes {
        let bytes = i32::try_from(bytes).map_err(|_| SocketError::Config("send_buffer_bytes exceeds i32"))?;
        sys::set_option(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes).map_err(opt("SO_SNDBUF"))?;
    }
    sys::bind(&fd, bind).map_err(|source| SocketError::Bind { addr: bind, source })?;
    Ok(fd)
}

/// The last cumulative drop count the kernel reported for a socket (`SO_RXQ_OVFL`), to turn it into increments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DropCount {
    last: u32,
}

impl DropCount {
    /// Takes a newly reported count and returns the drops since the previous one. The kernel's counter is a u32
    /// that wraps; datagrams carry it in arrival order, so it never goes back, and a value that seems to (more
    /// than half the range ahead) is ignored rather than read as four billion drops.
    pub(crate) fn advance(&mut self, count: u32) -> u64 {
        let delta = count.wrapping_sub(self.last);
        if delta > u32::MAX / 2 {
            return 0;
        }
        self.last = count;
        u64::from(delta)
    }
}

/// A busy-polled UDP socket behind the [`Backend`] trait.
pub struct SocketBackend {
    fd: OwnedFd,
    local: SocketAddrV4,
    burst_max: usize,
    payload_max_bytes: usize,
    rx: MmsgArrays,
    tx: MmsgArrays,
    /// Queued transmit slots are `tx_head..tx_tail`; both return to 0 when the queue drains.
    tx_head: usize,
    tx_tail: usize,
    stats: BackendStats,
    drop_count: DropCount,
    os_errors: u64,
    last_os_error: i32,
}

impl SocketBackend {
    /// A backend with default socket options.
    pub fn new(cfg: &BackendConfig) -> Result<SocketBackend, SocketError> {
        SocketBackend::with_options(cfg, &SocketOptions::default())
    }

    pub fn with_options(cfg: &BackendConfig, opts: &SocketOptions) -> Result<SocketBackend, SocketError> {
        check_config(cfg)?;
        let fd = open_udp(cfg.bind, opts)?;
        let local = sys::local_addr(&fd).map_err(|source| SocketError::Option { option: "getsockname", source })?;
        Ok(SocketBackend {
            fd,
            local,
            burst_max: cfg.burst_max,
            payload_max_bytes: cfg.payload_max_bytes,
            rx: MmsgArrays::new_rx(cfg.burst_max, cfg.payload_max_bytes),
            tx: MmsgArrays::new(cfg.tx_slots, cfg.payload_max_bytes),
            tx_head: 0,
            tx_tail: 0,
            stats: BackendStats::default(),
            drop_count: DropCount::default(),
            os_errors: 0,
            last_os_error: 0,
        })
    }

    /// The bound address (with the kernel's port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Subscribes to a multicast group on the interface with address `iface` (`0.0.0.0`: the kernel picks).
    pub fn join_multicast(&self, group: Ipv4Addr, iface: Ipv4Addr) -> Result<(), SocketError> {
        sys::join_multicast(&self.fd, group, iface).map_err(|source| SocketError::Join { group, iface, source })
    }

    /// Unexpected system-call failures seen on the hot path (each also dropped what it was carrying).
    pub fn os_errors(&self) -> u64 {
        self.os_errors
    }

    /// The errno of the most recent such failure, 0 if none.
    pub fn last_os_error(&self) -> i32 {
        self.last_os_error
    }

    /// The kernel's own cumulative drop count for the socket (`SO_MEMINFO`), a system call: for tests and checks.
    /// [`BackendStats::kernel_drops`] reaches it once a datagram after the last drop has been received.
    pub fn kernel_drop_count(&self) -> io::Result<u32> {
        sys::meminfo_drops(&self.fd)
    }

    /// Datagrams queued and not yet taken by the kernel.
    pub fn tx_pending(&self) -> usize {
        self.tx_tail - self.tx_head
    }

    fn os_error(&mut self, e: &io::Error) {
        self.os_errors += 1;
        self.last_os_error = e.raw_os_error().unwrap_or(0);
    }
}

impl AsFd for SocketBackend {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Backend for SocketBackend {
    fn name(&self) -> &'static str {
        "socket"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        let n = match self.rx.recvmmsg(&self.fd, self.burst_max) {
            Ok(n) => n,
            Err(e) => {
                self.os_error(&e);
                return 0;
            }
        };
        let mut delivered = 0;
        for i in 0..n {
            if let Some(count) = sys::rxq_ovfl_count(self.rx.control(i)) {
                self.stats.kernel_drops += self.drop_count.advance(count);
            }
            if self.rx.flags(i) & libc::MSG_TRUNC != 0 {
                self.stats.oversized += 1;
                continue;
            }
            let len = self.rx.len(i).min(self.payload_max_bytes);
            f(Datagram { src: self.rx.addr(i), dst: self.local, payload: &self.rx.slot(i)[..len] });
            delivered += 1;
        }
        self.stats.rx += delivered as u64;
        delivered
    }

    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        if self.tx_tail == self.tx.slots() {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        }
        let i = self.tx_tail;
        let len = fill(&mut self.tx.slot_mut(i)[..self.payload_max_bytes]);
        assert!(len <= self.payload_max_bytes, "tx fill returned {len} bytes, more than the slot holds");
        self.tx.set_len(i, len);
        self.tx.set_addr(i, dst);
        self.tx_tail += 1;
        Ok(())
    }

    fn tx_flush(&mut self) -> usize {
        let mut sent = 0;
        // Each pass either advances `tx_head` or stops, so this runs at most `tx_slots` times.
        while self.tx_head < self.tx_tail {
            match self.tx.sendmmsg(&self.fd, self.tx_head, self.tx_tail) {
                Ok(0) => break,
                Ok(n) => {
                    self.tx_head += n;
                    sent += n;
                }
                Err(e) => {
                    // sendmmsg reports an error only for the first message of the batch: that one is dropped
                    // (unreachable destination, oversized) and the rest are tried again.
                    self.os_error(&e);
                    self.stats.dropped += 1;
                    self.tx_head += 1;
                }
            }
        }
        if self.tx_head == self.tx_tail {
            self.tx_head = 0;
            self.tx_tail = 0;
        }
        self.stats.tx += sent as u64;
        sent
    }

    fn stats(&self) -> BackendStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::DropCount;

    #[test]
    fn drop_count_turns_cumulative_values_into_increments() {
        let mut d = DropCount::default();
        assert_eq!(d.advance(5), 5);
        assert_eq!(d.advance(5), 0);
        assert_eq!(d.advance(12), 7);
        // A stale value is ignored, and the next real one still counts from the highest seen.
        assert_eq!(d.advance(3), 0);
        assert_eq!(d.advance(13), 1);
        // The kernel's u32 wraps.
        let mut d = DropCount { last: u32::MAX - 1 };
        assert_eq!(d.advance(2), 4);
    }
}
