//! The raw socket calls behind the `socket` and `uring` backends: creating and configuring the UDP socket, and the
//! preallocated `mmsghdr`/`iovec`/`sockaddr_in` arrays that `recvmmsg(2)` and `sendmmsg(2)` read and write.
//!
//! Everything unsafe in the socket backend lives here. The arrays hold raw pointers into buffers owned by the same
//! struct; the buffers are heap allocations that never move or resize after construction, so the pointers stay
//! valid for the struct's whole life, wherever the struct itself is moved.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `sockaddr_in` from a Rust address (network byte order inside).
pub(crate) fn sockaddr_from(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// The Rust address in a `sockaddr_in` the kernel filled.
pub(crate) fn sockaddr_to(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)), u16::from_be(sa.sin_port))
}

/// A non-blocking, close-on-exec IPv4 UDP socket, not yet bound.
pub(crate) fn udp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with a plain-old-data value.
pub(crate) fn set_option<T: Copy>(fd: &OwnedFd, level: i32, name: i32, value: T) -> io::Result<()> {
    // SAFETY: `value` lives on the stack for the duration of the call and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `IP_MULTICAST_IF` takes an `in_addr` naming the outgoing interface's address.
pub(crate) fn set_multicast_if(fd: &OwnedFd, iface: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr { s_addr: u32::from(iface).to_be() };
    set_option(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, addr)
}

pub(crate) fn bind(fd: &OwnedFd, addr: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr_from(addr);
    // SAFETY: `sa` is a fully initialised sockaddr_in and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddrV4> {
    // SAFETY: sockaddr_in is plain data for which all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` and `len` are valid for writes and `len` holds the buffer's size.
    let rc = unsafe {
        libc::getsockname(fd.as_raw_fd(), (&mut sa as *mut libc::sockaddr_in).cast(), &mut len)
    };
    if rc == 0 {
        Ok(sockaddr_to(&sa))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SO_RXQ_OVFL` (asm-generic value, used by x86-64 and arm64; libc exports it only for some targets): with it
/// on, a received datagram carries a control message with the socket's cumulative drop count when that is not 0.
pub(crate) const SO_RXQ_OVFL: i32 = 40;

/// Rounds up to the alignment of control messages (`CMSG_ALIGN`: the size of `long`).
const fn cmsg_align(len: usize) -> usize {
    len.div_ceil(size_of::<usize>()) * size_of::<usize>()
}

/// Room for the one control message we ask for: the `SO_RXQ_OVFL` drop count, a `u32` (`CMSG_SPACE(4)`).
pub(crate) const RX_CONTROL_BYTES: usize = cmsg_align(size_of::<libc::cmsghdr>()) + cmsg_align(size_of::<u32>());

/// The socket's cumulative drop count from the `SO_RXQ_OVFL` control message in `control` (control-message bytes
/// as the kernel wrote them), `None` when there is none. Reads bytes only: any alignment, any contents.
pub(crate) fn rxq_ovfl_count(control: &[u8]) -> Option<u32> {
    const HDR: usize = size_of::<libc::cmsghdr>();
    const LEN: usize = size_of::<usize>();
    let mut at = 0;
    // Each step advances by at least one aligned header, so this ends within control.len() / HDR steps.
    while control.len() >= at + HDR {
        let c = &control[at..];
        let len = usize::from_ne_bytes(c[..LEN].try_into().ok()?);
        let level = i32::from_ne_bytes(c[LEN..LEN + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(c[LEN + 4..LEN + 8].try_into().ok()?);
        if len < HDR || len > c.len() {
            return None;
        }
        let data = &c[cmsg_align(HDR)..len];
        if level == libc::SOL_SOCKET && kind == SO_RXQ_OVFL && data.len() >= 4 {
            return Some(u32::from_ne_bytes(data[..4].try_into().ok()?));
        }
        at += cmsg_align(len);
    }
    None
}

/// The socket's `SO_MEMINFO` drop counter (`SK_MEMINFO_DROPS`): every datagram the kernel discarded for it since it
/// was created. A system call; for tests and occasional checks, not the hot path.
pub(crate) fn meminfo_drops(fd: &OwnedFd) -> io::Result<u32> {
    const SO_MEMINFO: i32 = 55;
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes and `len` holds the buffer's size; the kernel writes at most
    // that many bytes.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[libc::SK_MEMINFO_DROPS as usize])
}

/// Fixed arrays for one `recvmmsg` or `sendmmsg` batch: `slots` message headers, each with one iovec over its own
/// `slot_bytes` region of one buffer, its own address and (receive only) its own control-message room.
///
/// ```text
///   headers[i].msg_hdr ─┬─ msg_name    ──▶ addrs[i]   (sockaddr_in)
///                       ├─ msg_iov     ──▶ iovecs[i] ──▶ data[i * slot_bytes ..][.. slot_bytes]
///                       └─ msg_control ──▶ control[i * control_bytes ..][.. control_bytes]   (0 bytes: none)
/// ```
pub(crate) struct MmsgArrays {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_in]>,
    data: Box<[u8]>,
    slot_bytes: usize,
    control: Box<[u8]>,
    control_bytes: usize,
}

// SAFETY: the raw pointers inside `headers` and `iovecs` point only into this struct's own boxed slices, which are
// never reallocated; moving the struct to another thread moves the ownership of everything they point to with it.
unsafe impl Send for MmsgArrays {}

impl MmsgArrays {
    /// Arrays without control-message room (transmit).
    pub(crate) fn new(slots: usize, slot_bytes: usize) -> MmsgArrays {
        MmsgArrays::with_control(slots, slot_bytes, 0)
    }

    /// Arrays for receiving with [`RX_CONTROL_BYTES`] of control-message room per slot.
    pub(crate) fn new_rx(slots: usize, slot_bytes: usize) -> MmsgArrays {
        MmsgArrays::with_control(slots, slot_bytes, RX_CONTROL_BYTES)
    }

    fn with_control(slots: usize, slot_bytes: usize, control_bytes: usize) -> MmsgArrays {
        // SAFETY: these are plain C structs for which all-zero bytes (null pointers, zero lengths) are valid.
        let zero_hdr: libc::mmsghdr = unsafe { zeroed() };
        // SAFETY: as above.
        let zero_iov: libc::iovec = unsafe { zeroed() };
        // SAFETY: as above.
        let zero_sa: libc::sockaddr_in = unsafe { zeroed() };
        let mut a = MmsgArrays {
            headers: vec![zero_hdr; slots].into_boxed_slice(),
            iovecs: vec![zero_iov; slots].into_boxed_slice(),
            addrs: vec![zero_sa; slots].into_boxed_slice(),
            data: vec![0u8; slots * slot_bytes].into_boxed_slice(),
            slot_bytes,
            control: vec![0u8; slots * control_bytes].into_boxed_slice(),
            control_bytes,
        };
        let data = a.data.as_mut_ptr();
        let control = a.control.as_mut_ptr();
        for i in 0..slots {
            a.iovecs[i].iov_base = data.wrapping_add(i * slot_bytes).cast();
            a.iovecs[i].iov_len = slot_bytes;
            let h = &mut a.headers[i].msg_hdr;
            h.msg_name = (&mut a.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut a.iovecs[i];
            h.msg_iovlen = 1;
            if control_bytes > 0 {
                h.msg_control = control.wrapping_add(i * control_bytes).cast();
                h.msg_controllen = control_bytes;
            }
        }
        a
    }

    pub(crate) fn slots(&self) -> usize {
        self.headers.len()
    }

    /// Bytes the kernel reported for message `i` in the last batch.
    pub(crate) fn len(&self, i: usize) -> usize {
        self.headers[i].msg_len as usize
    }

    /// Flags the kernel reported for message `i` (`MSG_TRUNC` when the datagram did not fit).
    pub(crate) fn flags(&self, i: usize) -> i32 {
        self.headers[i].msg_hdr.msg_flags
    }

    /// The control messages the kernel wrote for message `i` in the last batch (empty when none).
    pub(crate) fn control(&self, i: usize) -> &[u8] {
        let len = self.headers[i].msg_hdr.msg_controllen.min(self.control_bytes);
        &self.control[i * self.control_bytes..][..len]
    }

    pub(crate) fn addr(&self, i: usize) -> SocketAddrV4 {
        sockaddr_to(&self.addrs[i])
    }

    pub(crate) fn set_addr(&mut self, i: usize, addr: SocketAddrV4) {
        self.addrs[i] = sockaddr_from(addr);
    }

    /// The whole data region of slot `i`.
    pub(crate) fn slot(&self, i: usize) -> &[u8] {
        &self.data[i * self.slot_bytes..(i + 1) * self.slot_bytes]
    }

    pub(crate) fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.data[i * self.slot_bytes..(i + 1) * self.slot_bytes]
    }

    /// The message header of slot `i`, for submitting it as an io_uring `SendMsg`.
    pub(crate) fn msghdr(&self, i: usize) -> *const libc::msghdr {
        &self.headers[i].msg_hdr
    }

    /// Sets how many bytes of slot `i` the next `sendmmsg` transmits.
    pub(crate) fn set_len(&mut self, i: usize, len: usize) {
        assert!(len <= self.slot_bytes);
        self.iovecs[i].iov_len = len;
    }

    /// Receives up to `count` datagrams into slots `0..count` without blocking. `Ok(0)` when nothing is waiting.
    pub(crate) fn recvmmsg(&mut self, fd: &OwnedFd, count: usize) -> io::Result<usize> {
        let count = count.min(self.slots());
        for h in &mut self.headers[..count] {
            // The kernel overwrites these on every call, so they are reset to the buffer sizes each time.
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_controllen = self.control_bytes;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at this struct's own iovec/address/data memory (see `new`), sized as
        // declared in the headers; `count` is at most the number of headers.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(e),
            }
        } else {
            Ok(n as usize)
        }
    }

    /// Sends slots `from..to` (lengths set with `set_len`, addresses with `set_addr`) without blocking and returns
    /// how many the kernel took, in order. `Ok(0)` when the socket's send buffer is full.
    pub(crate) fn sendmmsg(&mut self, fd: &OwnedFd, from: usize, to: usize) -> io::Result<usize> {
        assert!(from <= to && to <= self.slots());
        if from == to {
            return Ok(0);
        }
        // SAFETY: as in `recvmmsg`; the slice from..to lies within the header array.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.headers.as_mut_ptr().add(from),
                (to - from) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENOBUFS) => Ok(0),
                _ => Err(e),
            }
        } else {
            Ok(n as usize)
        }
    }
}

/// `IP_ADD_MEMBERSHIP` for `group` on the interface whose address is `iface` (`0.0.0.0`: the kernel picks).
pub(crate) fn join_multicast(fd: &OwnedFd, group: Ipv4Addr, iface: Ipv4Addr) -> io::Result<()> {
    let mreq = libc::ip_mreq {
        imr_multiaddr: libc::in_addr { s_addr: u32::from(group).to_be() },
        imr_interface: libc::in_addr { s_addr: u32::from(iface).to_be() },
    };
    set_option(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, mreq)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One control message as the kernel lays it out: `cmsghdr` (len, level, type), data, padding.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let hdr = cmsg_align(size_of::<libc::cmsghdr>());
        let mut b = vec![0xa5u8; hdr + cmsg_align(data.len())];
        b[..size_of::<usize>()].copy_from_slice(&(hdr + data.len()).to_ne_bytes());
        b[size_of::<usize>()..][..4].copy_from_slice(&level.to_ne_bytes());
        b[size_of::<usize>() + 4..][..4].copy_from_slice(&kind.to_ne_bytes());
        b[hdr..hdr + data.len()].copy_from_slice(data);
        b
    }

    #[test]
    fn test_rxq_ovfl_count() {
        assert_eq!(RX_CONTROL_BYTES, cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &7u32.to_ne_bytes()).len());
        assert_eq!(rxq_ovfl_count(&cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &7u32.to_ne_bytes())), Some(7));
        // Another message first is skipped.
        let mut two = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes());
        two.extend(cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &9u32.to_ne_bytes()));
        assert_eq!(rxq_ovfl_count(&two), Some(9));
        assert_eq!(rxq_ovfl_count(&[]), None);
        assert_eq!(rxq_ovfl_count(&cmsg(libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes())), None);
        // Truncated or nonsensical lengths end the walk instead of reading past the buffer.
        let whole = cmsg(libc::SOL_SOCKET, SO_RXQ_OVFL, &7u32.to_ne_bytes());
        assert_eq!(rxq_ovfl_count(&whole[..whole.len() - 8]), None);
        let mut bad = whole.clone();
        bad[..size_of::<usize>()].copy_from_slice(&1usize.to_ne_bytes());
        assert_eq!(rxq_ovfl_count(&bad), None);
        assert_eq!(rxq_ovfl_count(&[0xa5; 64]), None);
    }
}
