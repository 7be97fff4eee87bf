//! The io_uring backend: one UDP socket, received with a multishot `RecvMsg` into a registered provided-buffer
//! ring and sent with `SendMsg` submissions, the completion queue busy-polled.
//!
//! ```text
//!   socket ──multishot RecvMsg──▶ buffer ring (rx_buffers × [recvmsg_out | sockaddr_in | payload])
//!            one CQE per datagram, naming the buffer ──▶ rx_burst lends the payload, then returns the buffer
//!   tx slots (tx_slots × payload) ──SendMsg SQE per datagram, one submit per tx_flush──▶ socket
//!            one CQE per send ──▶ the slot is free again
//! ```
//!
//! **Task work.** The ring is set up, where the kernel allows, with `SINGLE_ISSUER | DEFER_TASKRUN`: the kernel
//! does not interrupt us to post completions; the receive copies and completion posting run on our thread when we
//! enter. A poll that finds the CQ empty therefore makes one non-blocking `io_uring_enter(GETEVENTS, min_complete
//! = 0)` and looks again — no blocking wait anywhere on the receive path. Gating that enter on the kernel's
//! `IORING_SQ_TASKRUN` hint (`TASKRUN_FLAG`) would save the syscall while idle, but on kernel 6.18 it stalled the
//! loopback echo test about one run in five — pending work was left with the flag down (our reading: the kernel runs
//! a bounded batch of task work per enter and can leave the rest without raising the flag again). The ring starts
//! disabled and is enabled by the first thread that polls it, which then owns it: construct the backend anywhere,
//! but poll it from one thread only. Older kernels fall back to
//! `COOP_TASKRUN` and then to plain task work (see [`UringMode`]).
//!
//! **Multishot.** One armed `RecvMsg` yields a completion per datagram for as long as it carries `IORING_CQE_F_MORE`.
//! It ends when the buffer ring runs dry (`ENOBUFS`) or on error; the next poll then returns the consumed buffers and
//! re-arms it. Datagrams arriving meanwhile wait in the socket's receive buffer.
//!
//! **Losses.** A datagram longer than `payload_max_bytes` arrives flagged `MSG_TRUNC` and is counted as oversized.
//! The socket has `SO_RXQ_OVFL` on, as in the `socket` backend, and the armed header leaves room for its control
//! message, so each buffer may carry the socket's cumulative drop count; increases go to `kernel_drops`.
//!
//! **Bounds.** Receive completions each hold a buffer, so at most `rx_buffers` (+1 for the completion that ends a
//! multishot) can be outstanding; sends are bounded by `tx_slots`. The completion queue is sized for both, so it never
//! overflows, and the backlog that holds receive completions reaped during `tx_flush` has the same bound.

#[allow(unsafe_code)]
mod sys;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use io_uring::types::{RecvMsgOut, Timespec};
use io_uring::{cqueue, IoUring};

use super::socket::sys::{self as socket_sys, MmsgArrays, RX_CONTROL_BYTES};
use super::socket::{self, DropCount, SocketError, SocketOptions};
use super::{Backend, BackendConfig, BackendStats, Datagram, TxError};
use sys::Io;

/// `user_data` of the multishot receive; send completions carry their slot index, always below this.
const RECV_TAG: u64 = 1 << 63;
/// `user_data` of the cancel submitted when the backend is dropped.
const CANCEL_TAG: u64 = RECV_TAG | 1;
/// The kernel's limit on provided-buffer ring entries.
const RX_BUFFERS_MAX: usize = 32_768;
/// Bytes before the payload in each receive buffer: `io_uring_recvmsg_out` (16), the source `sockaddr_in` (16),
/// then room for the `SO_RXQ_OVFL` control message.
const RX_HEADER_BYTES: usize = 16 + 16 + RX_CONTROL_BYTES;

/// How completions reach us; chosen at construction as the best the kernel accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UringMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: completions are produced when we enter (6.1+).
    DeferTaskrun,
    /// `COOP_TASKRUN`: the work waits for the submitting thread's next system call (5.19+).
    CoopTaskrun,
    /// Plain rings: the kernel interrupts the submitting thread to post completions.
    Plain,
}

/// Why an io_uring backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("creating the io_uring ({sq_entries} SQ / {cq_entries} CQ entries): {source}")]
    Setup {
        sq_entries: u32,
        cq_entries: u32,
        #[source]
        source: io::Error,
    },
    #[error("registering the provided-buffer ring ({entries} buffers of {buf_bytes} bytes): {source}")]
    BufRing {
        entries: usize,
        buf_bytes: usize,
        #[source]
        source: io::Error,
    },
}

/// Options of the io_uring backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UringOptions {
    /// Options of the underlying UDP socket.
    pub socket: SocketOptions,
    /// Provided receive buffers (rounded up to a power of two, at most 32,768); default: four bursts, at least 64.
    pub rx_buffers: Option<usize>,
}

/// One receive completion, copied out of the CQ.
#[derive(Clone, Copy, Debug, Default)]
struct RecvCqe {
    res: i32,
    flags: u32,
}

/// A UDP socket driven through io_uring behind the [`Backend`] trait.
pub struct UringBackend {
    /// The ring with the receive buffers and transmit slots its requests reference.
    io: Io,
    fd: OwnedFd,
    mode: UringMode,
    started: bool,
    recv_armed: bool,
    local: SocketAddrV4,
    burst_max: usize,
    payload_max_bytes: usize,
    /// Free transmit slots, a stack: `free[..free_count]`.
    free: Box<[u32]>,
    free_count: usize,
    /// Filled slots not yet submitted, in order: `pending[..pending_count]`.
    pending: Box<[u32]>,
    pending_count: usize,
    /// Sends submitted and not yet completed.
    in_flight: usize,
    /// Receive completions reaped but not yet delivered, a ring: `backlog_len` items from `backlog_head`.
    backlog: Box<[RecvCqe]>,
    backlog_head: usize,
    backlog_len: usize,
    stats: BackendStats,
    drop_count: DropCount,
    rearms: u64,
    os_errors: u64,
    last_os_error: i32,
}

fn build_ring(sq_entries: u32, cq_entries: u32) -> Result<(IoUring, UringMode), UringError> {
    let deferred = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_r_disabled()
        .setup_cqsize(cq_entries)
        .build(sq_entries);
    if let Ok(r) = deferred {
        return Ok((r, UringMode::DeferTaskrun));
    }
    let coop = IoUring::builder().setup_coop_taskrun().setup_cqsize(cq_entries).build(sq_entries);
    if let Ok(r) = coop {
        return Ok((r, UringMode::CoopTaskrun));
    }
    IoUring::builder()
        .setup_cqsize(cq_entries)
        .build(sq_entries)
        .map(|r| (r, UringMode::Plain))
        .map_err(|source| UringError::Setup { sq_entries, cq_entries, source })
}

impl UringBackend {
    /// A backend with default options.
    pub fn new(cfg: &BackendConfig) -> Result<UringBackend, UringError> {
        UringBackend::with_options(cfg, &UringOptions::default())
    }

    pub fn with_options(cfg: &BackendConfig, opts: &UringOptions) -> Result<UringBackend, UringError> {
        socket::check_config(cfg)?;
        if cfg.tx_slots >= RECV_TAG as usize {
            return Err(SocketError::Config("tx_slots too large").into());
        }
        let fd = socket::open_udp(cfg.bind, &opts.socket)?;
        let local = socket::sys::local_addr(&fd)
            .map_err(|source| SocketError::Option { option: "getsockname", source })?;
        // By default four bursts of buffers, so the kernel keeps receiving while we work through one burst.
        let rx_buffers = opts.rx_buffers.unwrap_or((cfg.burst_max * 4).max(64));
        if rx_buffers == 0 || rx_buffers > RX_BUFFERS_MAX {
            return Err(SocketError::Config("rx_buffers must be within 1..=32768").into());
        }
        let rx_buffers = rx_buffers.next_power_of_two();
        let buf_bytes = RX_HEADER_BYTES + cfg.payload_max_bytes;
        // SQ: one entry per transmit slot, plus the receive arm and the final cancel.
        let sq_entries = (cfg.tx_slots + 2).next_power_of_two() as u32;
        // CQ: every buffer's receive, the completion ending a multishot, every send and the cancel (see the
        // module notes on bounds), doubled for slack.
        let cq_entries = (2 * (rx_buffers + cfg.tx_slots + 2)).next_power_of_two() as u32;
        let (ring, mode) = build_ring(sq_entries, cq_entries)?;
        let tx = MmsgArrays::new(cfg.tx_slots, cfg.payload_max_bytes);
        let io = Io::new(ring, rx_buffers as u16, buf_bytes, tx, fd.as_raw_fd())
            .map_err(|source| UringError::BufRing { entries: rx_buffers, buf_bytes, source })?;
        let free: Box<[u32]> = (0..cfg.tx_slots as u32).rev().collect();
        Ok(UringBackend {
            io,
            fd,
            mode,
            started: false,
            recv_armed: false,
            local,
            burst_max: cfg.burst_max,
            payload_max_bytes: cfg.payload_max_bytes,
            free_count: free.len(),
            free,
            pending: vec![0u32; cfg.tx_slots].into_boxed_slice(),
            pending_count: 0,
            in_flight: 0,
            backlog: vec![RecvCqe::default(); rx_buffers + 2].into_boxed_slice(),
            backlog_head: 0,
            backlog_len: 0,
            stats: BackendStats::default(),
            drop_count: DropCount::default(),
            rearms: 0,
            os_errors: 0,
            last_os_error: 0,
        })
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Which task-work mode the kernel accepted.
    pub fn mode(&self) -> UringMode {
        self.mode
    }

    /// How many times the multishot receive ended and was armed again.
    pub fn rearms(&self) -> u64 {
        self.rearms
    }

    /// Unexpected failures seen on the hot path (failed sends, refused submits, receive errors).
    pub fn os_errors(&self) -> u64 {
        self.os_errors
    }

    /// The errno of the most recent such failure, 0 if none.
    pub fn last_os_error(&self) -> i32 {
        self.last_os_error
    }

    /// Sends queued or in flight.
    pub fn tx_pending(&self) -> usize {
        self.pending_count + self.in_flight
    }

    /// Subscribes to a multicast group on the interface with address `iface` (`0.0.0.0`: the kernel picks).
    pub fn join_multicast(&self, group: Ipv4Addr, iface: Ipv4Addr) -> Result<(), SocketError> {
        socket::sys::join_multicast(&self.fd, group, iface)
            .map_err(|source| SocketError::Join { group, iface, source })
    }

    fn os_error(&mut self, errno: i32) {
        self.os_errors += 1;
        self.last_os_error = errno;
    }

    /// Enables the ring on this thread and arms the receive; false (and retried on the next poll) on failure.
    fn start(&mut self) -> bool {
        if self.mode == UringMode::DeferTaskrun {
            if let Err(e) = self.io.enable() {
                self.os_error(e.raw_os_error().unwrap_or(0));
                return false;
            }
        }
        self.started = true;
        self.arm();
        self.submit();
        true
    }

    fn arm(&mut self) {
        if self.io.push_recv(RECV_TAG) {
            self.recv_armed = true;
        }
    }

    /// Submits queued SQEs and, when the kernel has flagged pending task work, runs it. Never waits.
    fn submit(&mut self) {
        if let Err(e) = self.io.submit() {
            match e.raw_os_error() {
                // Transient: the kernel is short of memory or completions; the SQEs stay queued for next time.
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => {}
                other => self.os_error(other.unwrap_or(0)),
            }
        }
    }

    fn submit_getevents(&mut self) {
        if let Err(e) = self.io.submit_getevents() {
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => {}
                other => self.os_error(other.unwrap_or(0)),
            }
        }
    }

    /// Moves every completion out of the CQ: sends are settled here, receives wait in the backlog.
    fn reap(&mut self) {
        let mut cq = self.io.completion();
        while self.backlog_len < self.backlog.len() {
            let Some(cqe) = cq.next() else { break };
            match cqe.user_data() {
                RECV_TAG => {
                    let at = (self.backlog_head + self.backlog_len) % self.backlog.len();
                    self.backlog[at] = RecvCqe { res: cqe.result(), flags: cqe.flags() };
                    self.backlog_len += 1;
                }
                CANCEL_TAG => {}
                slot => {
                    self.free[self.free_count] = slot as u32;
                    self.free_count += 1;
                    self.in_flight -= 1;
                    if cqe.result() >= 0 {
                        self.stats.tx += 1;
                    } else {
                        self.stats.dropped += 1;
                        self.os_errors += 1;
                        self.last_os_error = -cqe.result();
                    }
                }
            }
        }
    }

    /// Delivers up to `burst_max` backlog receive completions to `f`; returns how many datagrams were delivered.
    fn deliver(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        let mut delivered = 0;
        let mut returned = false;
        for _ in 0..self.backlog_len.min(self.burst_max) {
            let c = self.backlog[self.backlog_head];
            self.backlog_head = (self.backlog_head + 1) % self.backlog.len();
            self.backlog_len -= 1;
            if !cqueue::more(c.flags) {
                self.recv_armed = false;
            }
            let Some(bid) = cqueue::buffer_select(c.flags) else {
                // No buffer: the multishot ended. ENOBUFS is the expected way (the ring ran dry); anything else
                // is recorded.
                if c.res < 0 && -c.res != libc::ENOBUFS {
                    self.os_error(-c.res);
                }
                continue;
            };
            if c.res >= 0 {
                match self.io.bufs().buffer(bid, c.res as usize).map(|b| parse(b, self.io.recv_hdr())) {
                    Some(Ok(r)) => {
                        if let Some(count) = r.drop_count {
                            self.stats.kernel_drops += self.drop_count.advance(count);
                        }
                        match r.payload {
                            Some(payload) if payload.len() <= self.payload_max_bytes => {
                                f(Datagram { src: r.src, dst: self.local, payload });
                                delivered += 1;
                            }
                            _ => self.stats.oversized += 1,
                        }
                    }
                    _ => self.stats.malformed += 1,
                }
            }
            // A buffer the kernel named is returned even if its contents were refused.
            if (bid as usize) < self.io.bufs().entries() {
                self.io.bufs_mut().push(bid);
                returned = true;
            }
        }
        if returned {
            self.io.bufs_mut().publish();
        }
        self.stats.rx += delivered as u64;
        delivered
    }
}

/// What a multishot receive buffer holds.
struct Received<'a> {
    src: SocketAddrV4,
    /// `None` when the datagram did not fit the buffer (`MSG_TRUNC`): oversized.
    payload: Option<&'a [u8]>,
    /// The socket's cumulative drop count, when the kernel attached it (`SO_RXQ_OVFL`).
    drop_count: Option<u32>,
}

/// Parses a multishot receive buffer; `Err` when it is not a whole record with an IPv4 source.
fn parse<'a>(buf: &'a [u8], hdr: &libc::msghdr) -> Result<Received<'a>, ()> {
    let out = RecvMsgOut::parse(buf, hdr)?;
    if out.is_name_data_truncated() {
        return Err(());
    }
    // sockaddr_in: family (2, native order), port (2, network order), address (4).
    let n = out.name_data();
    if n.len() < 8 || u16::from_ne_bytes([n[0], n[1]]) != libc::AF_INET as u16 {
        return Err(());
    }
    let src = SocketAddrV4::new(Ipv4Addr::new(n[4], n[5], n[6], n[7]), u16::from_be_bytes([n[2], n[3]]));
    let drop_count = socket_sys::rxq_ovfl_count(out.control_data());
    if out.is_payload_truncated() {
        return Ok(Received { src, payload: None, drop_count });
    }
    // The payload follows the header, the name field and the control field, whose sizes the armed header fixed.
    let len = out.payload_data().len();
    let payload = buf.get(RX_HEADER_BYTES..RX_HEADER_BYTES + len).ok_or(())?;
    Ok(Received { src, payload: Some(payload), drop_count })
}

impl AsFd for UringBackend {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Backend for UringBackend {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(Datagram<'_>)) -> usize {
        if !self.started && !self.start() {
            return 0;
        }
        if self.backlog_len == 0 {
            self.reap();
            if self.backlog_len == 0 {
                // Nothing posted yet: run whatever task work the kernel holds for us (see the module notes on why
                // this is not gated on IORING_SQ_TASKRUN), then look again.
                self.submit_getevents();
                self.reap();
            }
        }
        let delivered = self.deliver(f);
        if !self.recv_armed {
            self.rearms += 1;
            self.arm();
            self.submit();
        }
        delivered
    }

    fn tx(&mut self, dst: SocketAddrV4, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxError> {
        if self.free_count == 0 {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        }
        self.free_count -= 1;
        let slot = self.free[self.free_count] as usize;
        let tx = self.io.tx_mut();
        let len = fill(&mut tx.slot_mut(slot)[..self.payload_max_bytes]);
        assert!(len <= self.payload_max_bytes, "tx fill returned {len} bytes, more than the slot holds");
        tx.set_len(slot, len);
        tx.set_addr(slot, dst);
        self.pending[self.pending_count] = slot as u32;
        self.pending_count += 1;
        Ok(())
    }

    fn tx_flush(&mut self) -> usize {
        if !self.started && !self.start() {
            return 0;
        }
        let mut pushed = 0;
        while pushed < self.pending_count {
            let slot = self.pending[pushed] as usize;
            // The slot is not handed out again until this send's completion returns it to the free stack.
            if !self.io.push_send(slot, slot as u64) {
                break;
            }
            pushed += 1;
        }
        self.pending.copy_within(pushed..self.pending_count, 0);
        self.pending_count -= pushed;
        self.in_flight += pushed;
        // Entering also runs the task work that posts send completions, so a caller that only transmits still gets
        // its slots back.
        if pushed > 0 || self.in_flight > 0 {
            self.submit_getevents();
        }
        self.reap();
        pushed
    }

    fn stats(&self) -> BackendStats {
        self.stats
    }
}

impl Drop for UringBackend {
    /// Cancels the receive and waits, boundedly, for it and every send to complete, so no request still refers to
    /// our buffers when they are freed. A ring owned by another thread refuses the cancel; closing the ring then
    /// cancels the requests in the kernel.
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        if self.recv_armed && !self.io.push_cancel(RECV_TAG, CANCEL_TAG) {
            return;
        }
        let ts = Timespec::new().nsec(10_000_000);
        // At most 20 waits of 10 ms: a stuck request must not hang the process on exit.
        for _ in 0..20 {
            for i in 0..self.backlog_len {
                let c = self.backlog[(self.backlog_head + i) % self.backlog.len()];
                if !cqueue::more(c.flags) {
                    self.recv_armed = false;
                }
            }
            self.backlog_len = 0;
            if !self.recv_armed && self.in_flight == 0 {
                return;
            }
            match self.io.submit_and_wait_for(&ts) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) || e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => return,
            }
            self.reap();
        }
    }
}
