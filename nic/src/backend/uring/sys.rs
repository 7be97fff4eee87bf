//! The memory the `uring` backend lends to the kernel, and the unsafe calls that lend it.
//!
//! * [`BufRing`]: a provided-buffer ring (`IORING_REGISTER_PBUF_RING`). The ring of 16-byte entries lives in its
//!   own page-aligned anonymous mapping, as the kernel requires; the buffers it points to are one boxed slice.
//!   The kernel takes entries from the head; we return buffers at the tail. The first entry's `resv` field doubles
//!   as the ring's tail (the kernel's layout), published with a release store so the kernel never sees a tail
//!   that covers an entry whose address and length are not yet written.
//! * [`RecvHeader`]: the `msghdr` template multishot `RecvMsg` reads its name and control sizes from.
//! * [`Io`]: the ring and all of the above in one owner, with the submissions that lend memory as its methods.
//!
//! All of it is freed only after the ring is gone: [`Io`] declares its ring before these fields, so the ring is
//! dropped (and with it every request that could still reference them) first.

use std::io;
use std::mem::{size_of, zeroed};
use std::sync::atomic::{AtomicU16, Ordering};

use std::os::fd::RawFd;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, IoUring};

use crate::backend::socket::sys::{MmsgArrays, RX_CONTROL_BYTES};

/// `io_uring_enter` flag: run pending task work and reap completions (the ABI value, `include/uapi/linux/io_uring.h`).
const IORING_ENTER_GETEVENTS: u32 = 1;
/// Our one buffer group.
const BUFFER_GROUP: u16 = 0;

const _: () = assert!(size_of::<BufRingEntry>() == 16);

/// The ring together with all the memory its requests may reference. Owning both in one struct is what makes
/// the submissions below safe to offer as safe methods: the ring is declared first, so it is dropped (and the
/// kernel's requests with it) before the memory. The backend reaches the ring only through these methods, so it
/// cannot detach the ring from that memory.
pub(crate) struct Io {
    ring: IoUring,
    bufs: BufRing,
    recv_hdr: RecvHeader,
    tx: MmsgArrays,
    fd: RawFd,
}

impl Io {
    /// Registers `bufs`' memory with `ring` and takes ownership of all of it; `fd` is the socket requests use.
    pub(crate) fn new(ring: IoUring, entries: u16, buf_bytes: usize, tx: MmsgArrays, fd: RawFd) -> io::Result<Io> {
        let bufs = BufRing::new(entries, buf_bytes)?;
        // SAFETY: the ring's entries and the buffers they point to are owned by `Io` together with the ring, and
        // the ring is dropped first (field order), so they stay valid while the kernel can use them. `bufs_mut`
        // and `tx_mut` lend them to the backend to recycle buffers and fill slots, never to move them out.
        unsafe { ring.submitter().register_buf_ring_with_flags(bufs.ring as u64, entries, BUFFER_GROUP, 0)? };
        Ok(Io { ring, bufs, recv_hdr: RecvHeader::new(), tx, fd })
    }

    pub(crate) fn bufs(&self) -> &BufRing {
        &self.bufs
    }

    pub(crate) fn bufs_mut(&mut self) -> &mut BufRing {
        &mut self.bufs
    }

    pub(crate) fn recv_hdr(&self) -> &libc::msghdr {
        self.recv_hdr.get()
    }

    /// Transmit slots. A slot must not be rewritten while its send is in flight; the backend's free stack sees to
    /// that (the kernel would otherwise send whatever bytes are there, never touch memory beyond them).
    pub(crate) fn tx_mut(&mut self) -> &mut MmsgArrays {
        &mut self.tx
    }

    /// Queues the multishot receive; false when the SQ is full.
    pub(crate) fn push_recv(&mut self, user_data: u64) -> bool {
        let e = opcode::RecvMsgMulti::new(Fd(self.fd), self.recv_hdr.get(), BUFFER_GROUP).build().user_data(user_data);
        // SAFETY: the header and buffer ring are owned by `self` and outlive the ring (see the struct notes).
        unsafe { self.ring.submission().push(&e).is_ok() }
    }

    /// Queues a send of transmit slot `slot` (its length and address as set); false when the SQ is full.
    pub(crate) fn push_send(&mut self, slot: usize, user_data: u64) -> bool {
        let e = opcode::SendMsg::new(Fd(self.fd), self.tx.msghdr(slot)).build().user_data(user_data);
        // SAFETY: the slot's header, iovec, address and data are owned by `self.tx` and outlive the ring.
        unsafe { self.ring.submission().push(&e).is_ok() }
    }

    /// Queues a cancel of the request tagged `target`; false when the SQ is full.
    pub(crate) fn push_cancel(&mut self, target: u64, user_data: u64) -> bool {
        let e = opcode::AsyncCancel::new(target).build().user_data(user_data);
        // SAFETY: a cancel references no memory.
        unsafe { self.ring.submission().push(&e).is_ok() }
    }

    /// Submits queued SQEs. Never waits.
    pub(crate) fn submit(&self) -> io::Result<usize> {
        self.ring.submit()
    }

    /// Submits queued SQEs and runs any pending task work (`GETEVENTS` with no minimum). Never waits.
    pub(crate) fn submit_getevents(&mut self) -> io::Result<usize> {
        let to_submit = self.ring.submission().len() as u32;
        // SAFETY: a plain enter on our own ring with no argument structure; the SQEs it submits were checked when
        // pushed.
        unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                to_submit,
                0,
                IORING_ENTER_GETEVENTS,
                None,
            )
        }
    }

    /// Submits and waits up to `timeout` for one completion (for teardown only).
    pub(crate) fn submit_and_wait_for(&self, timeout: &Timespec) -> io::Result<usize> {
        self.ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(timeout))
    }

    pub(crate) fn enable(&self) -> io::Result<()> {
        self.ring.submitter().register_enable_rings()
    }

    pub(crate) fn completion(&mut self) -> cqueue::CompletionQueue<'_> {
        self.ring.completion()
    }
}

/// A registered provided-buffer ring of `entries` buffers of `buf_bytes` each.
pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    mask: u16,
    /// Our copy of the tail: entries below it have been handed to the kernel.
    tail: u16,
    buf_bytes: usize,
    /// The buffers themselves, `entries * buf_bytes` bytes of a private anonymous mapping. Raw, not a `Box<[u8]>`:
    /// the kernel writes into every buffer published to it at any moment, so no Rust reference may cover the
    /// region as a whole; a reference is made only to one buffer the kernel has completed and not been given
    /// back ([`BufRing::buffer`]).
    bufs: *mut u8,
    bufs_bytes: usize,
}

// SAFETY: both raw pointers are to private anonymous mappings owned by this struct alone; moving the struct moves
// that ownership. The kernel side only reads entries we published and writes buffers we handed it.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Maps the ring and fills it with every buffer; [`Io::new`] registers it.
    fn new(entries: u16, buf_bytes: usize) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two() && entries <= 32_768);
        let page = 4_096;
        let ring_bytes = (entries as usize * size_of::<BufRingEntry>()).div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let bufs_bytes = entries as usize * buf_bytes;
        assert!(bufs_bytes > 0, "provided buffers need a size");
        // SAFETY: a fresh private anonymous mapping; the result is checked for MAP_FAILED.
        let bufs = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bufs_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if bufs == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping exactly the ring mapped above, which nothing references yet.
            unsafe { libc::munmap(ptr, ring_bytes) };
            return Err(e);
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            mask: entries - 1,
            tail: 0,
            buf_bytes,
            bufs: bufs.cast(),
            bufs_bytes,
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    pub(crate) fn entries(&self) -> usize {
        self.mask as usize + 1
    }

    /// Buffer `bid`'s first `len` bytes, `None` if the kernel named a buffer or length we do not have.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid as usize >= self.entries() || len > self.buf_bytes {
            return None;
        }
        let start = bid as usize * self.buf_bytes;
        // SAFETY: `bid < entries` and `len <= buf_bytes`, so the range lies inside the buffer mapping. The caller
        // asks only for a buffer the kernel has completed (named in a CQE) and that is not pushed back yet, so
        // the kernel does not write it while this borrow of `self` lives (`push` takes `&mut self`).
        Some(unsafe { std::slice::from_raw_parts(self.bufs.add(start), len) })
    }

    /// Writes buffer `bid` into the next free entry; the kernel sees it after [`BufRing::publish`].
    pub(crate) fn push(&mut self, bid: u16) {
        assert!((bid as usize) < self.entries());
        let idx = (self.tail & self.mask) as usize;
        let addr = self.bufs.wrapping_add(bid as usize * self.buf_bytes);
        // SAFETY: `idx` is masked to the ring's entry count, within the mapping; entries beyond the published tail
        // are ours to write. Entry 0's `resv` doubles as the tail, which the kernel may load at any time, but the
        // setters below store only the address, length and buffer id, never `resv`.
        let entry = unsafe { &mut *self.ring.add(idx) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_bytes as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed entry visible to the kernel.
    pub(crate) fn publish(&mut self) {
        // SAFETY: the ring base is the first entry of a valid, initialised ring (see `new`); the tail field is a
        // naturally aligned u16 inside the mapping, and the kernel reads it atomically.
        let tail = unsafe { &*(BufRingEntry::tail(self.ring).cast::<AtomicU16>()) };
        // Release orders the entry writes above before the new tail, so the kernel (which loads the tail with
        // acquire) never picks up a half-written entry.
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mappings made in `new`; by now the ring that used them is closed (`Io`
        // declares the ring first, so it is dropped first).
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.bufs.cast(), self.bufs_bytes);
        }
    }
}

/// The `msghdr` a multishot `RecvMsg` is armed with: room for an IPv4 source address and the `SO_RXQ_OVFL` drop
/// count control message. Multishot reads only the two lengths; the kernel writes name and control data into each
/// provided buffer, after its `io_uring_recvmsg_out` header.
struct RecvHeader(Box<libc::msghdr>);

// SAFETY: every pointer in the header is null; only the lengths are read by the kernel.
unsafe impl Send for RecvHeader {}

impl RecvHeader {
    fn new() -> RecvHeader {
        // SAFETY: msghdr is plain data for which all-zero (null pointers, zero lengths) is valid.
        let mut h: Box<libc::msghdr> = Box::new(unsafe { zeroed() });
        h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_controllen = RX_CONTROL_BYTES;
        RecvHeader(h)
    }

    fn get(&self) -> &libc::msghdr {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The provided buffers are one raw mapping: every published entry names its own buffer inside it, and the
    /// only references handed out are bounds-checked views of one buffer (no registration needed, so no root).
    #[test]
    fn provided_buffers_are_distinct_slots_of_one_mapping_and_views_are_bounds_checked() {
        let (entries, buf_bytes) = (8u16, 2048usize);
        let br = BufRing::new(entries, buf_bytes).unwrap();
        assert_eq!(br.entries(), 8);
        let base = br.bufs as u64;
        for idx in 0..entries as usize {
            // SAFETY: `idx` < entries, inside the ring mapping; the ring is not registered, so nothing else writes it.
            let e = unsafe { &*br.ring.add(idx) };
            assert_eq!(e.bid() as usize, idx);
            assert_eq!(e.len() as usize, buf_bytes);
            assert_eq!(e.addr(), base + (idx * buf_bytes) as u64);
        }
        assert_eq!(br.buffer(7, buf_bytes).map(<[u8]>::len), Some(buf_bytes));
        assert!(br.buffer(7, buf_bytes).unwrap().iter().all(|&b| b == 0), "anonymous memory starts zeroed");
        assert!(br.buffer(8, 1).is_none(), "a buffer id we do not have");
        assert!(br.buffer(0, buf_bytes + 1).is_none(), "a length beyond the buffer");
    }
}
