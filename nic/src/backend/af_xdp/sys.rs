//! Raw kernel interfaces of the AF_XDP backend: the `bpf(2)` commands we use, the XSK socket options, the ring and
//! UMEM mappings, and [`Xsk`], the safe owner of one socket with its four rings and its UMEM.
//!
//! Everything unsafe in the backend lives here. The ABI structs are declared by hand (rather than taken from
//! `libc`) so their sizes can be pinned at compile time against `linux/if_xdp.h` and `linux/bpf.h`; the kernel
//! decides which version of a struct we speak from the length we pass, so a silent size change would be a
//! silent protocol change.
//!
//! ## The rings
//!
//! Each of the four rings is a single-producer single-consumer queue shared with the kernel through an `mmap`:
//!
//! ```text
//!   mapping ─┬─ producer: u32  (written by the producer only, free-running)
//!            ├─ consumer: u32  (written by the consumer only, free-running)
//!            ├─ flags:    u32  (XDP_RING_NEED_WAKEUP, written by the kernel)
//!            └─ descs[size]    (u64 UMEM addresses for fill/completion, XdpDesc for rx/tx)
//! ```
//!
//! We produce on the fill and tx rings and consume on the rx and completion rings. The indices run freely and
//! wrap at 2^32; a slot is `index & (size - 1)`, so sizes are powers of two.
//!
//! ## UMEM layout
//!
//! ```text
//!   0            rx_frames × frame_size                 (rx_frames + tx_frames) × frame_size
//!   ├─ rx frames ──────┤├─ tx frames ──────────────────────┤
//!     fill → kernel → rx ring → us → fill                   free list → tx ring → kernel → completion → free list
//! ```
//!
//! The two areas never exchange frames, which is what lets [`Xsk::rx_tx_pair`] hand out a received frame and a
//! transmit frame at the same time without aliasing.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

// ---------------------------------------------------------------------------------------------------------------
// ABI: linux/if_xdp.h
// ---------------------------------------------------------------------------------------------------------------

pub const AF_XDP: libc::c_int = 44;
pub const SOL_XDP: libc::c_int = 283;
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;

pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// Headroom the kernel reserves in front of received packet data in every UMEM chunk (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM_BYTES: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_umem_reg` in its current (6.8+) form. Older kernels read the first 28 bytes, and the trailing
/// `tx_metadata_len` is zero, which every version accepts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// One rx or tx descriptor: a UMEM address and a length.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// The kernel's per-socket drop counters (`XDP_STATISTICS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Dropped for reasons other than an invalid descriptor (e.g. no fill ring entry in copy mode).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Dropped because the rx ring was full.
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

const _: () = assert!(size_of::<SockaddrXdp>() == 16);
const _: () = assert!(size_of::<XdpUmemReg>() == 32);
const _: () = assert!(size_of::<XdpRingOffset>() == 32);
const _: () = assert!(size_of::<XdpMmapOffsets>() == 128);
const _: () = assert!(size_of::<XdpDesc>() == 16);
const _: () = assert!(size_of::<XdpStatistics>() == 48);

// ---------------------------------------------------------------------------------------------------------------
// ABI: linux/bpf.h (only the commands and union members we use, each padded to the member's full length)
// ---------------------------------------------------------------------------------------------------------------

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value for XDP, used both as the program's expected attach type and the link's type.
pub const BPF_XDP: u32 = 37;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// One eBPF instruction (`struct bpf_insn`): the registers share a byte, destination in the low nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

const _: () = assert!(size_of::<BpfInsn>() == 8);
const _: () = assert!(size_of::<MapCreateAttr>() == 44);
const _: () = assert!(size_of::<MapElemAttr>() == 32);
// `expected_attach_type` sits at byte 68 of `union bpf_attr`, so the load attribute is 72 bytes long.
const _: () = assert!(size_of::<ProgLoadAttr>() == 72);
const _: () = assert!(size_of::<LinkCreateAttr>() == 16);

/// Runs one `bpf(2)` command whose attribute is `attr`. The kernel zero-extends a short attribute, so passing
/// only the members we fill is the documented way to speak to older and newer kernels alike.
fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `repr(C)` value of exactly `size_of::<A>()` bytes laid out as
    // the command's member of `union bpf_attr`; every pointer inside it was set by our callers to memory that
    // outlives this call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A as *mut libc::c_void,
            size_of::<A>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf command returned a fresh file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(rc as RawFd) }
}

/// Creates an XSKMAP with `entries_max` slots (one per rx queue index).
pub fn xskmap_create(entries_max: u32) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"bourse_xsks");
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries_max,
        map_name: name,
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(owned_fd)
}

/// Stores the XSK socket `xsk` at index `key` of the XSKMAP `map`.
pub fn xskmap_insert(map: &OwnedFd, key: u32, xsk: &OwnedFd) -> io::Result<()> {
    let value: u32 = xsk.as_raw_fd() as u32;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// Loads an XDP program. On refusal the verifier's explanation is left in `log` (NUL-terminated).
pub fn xdp_prog_load(insns: &[BpfInsn], log: &mut [u8]) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"bourse_xdp");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
}

/// Attaches `prog` to the interface as an XDP link; the program detaches when the returned fd is closed.
pub fn xdp_link_create(prog: &OwnedFd, ifindex: u32, mode_flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: mode_flags,
    };
    bpf(BPF_LINK_CREATE, &mut attr).map(owned_fd)
}

// ---------------------------------------------------------------------------------------------------------------
// Interfaces
// ---------------------------------------------------------------------------------------------------------------

/// The index and MAC address of `name` in the calling thread's network namespace.
pub fn interface(name: &str) -> io::Result<(u32, [u8; 6])> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if cname.as_bytes().len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SIOCGIFHWADDR needs some socket in the right namespace; a datagram socket is the cheapest.
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(cname.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid `ifreq` with a NUL-terminated name (checked shorter than IFNAMSIZ above).
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok((ifindex, mac))
}

// ---------------------------------------------------------------------------------------------------------------
// Mappings
// ---------------------------------------------------------------------------------------------------------------

/// An owned memory mapping, unmapped on drop.
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    fn anonymous(len: usize) -> io::Result<Mmap> {
        // MAP_POPULATE faults every page in now, so the first packets do not pay for page faults.
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        Self::map(len, flags, -1, 0)
    }

    fn ring(fd: &OwnedFd, len: usize, pgoff: libc::off_t) -> io::Result<Mmap> {
        Self::map(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    }

    fn map(len: usize, flags: libc::c_int, fd: RawFd, offset: libc::off_t) -> io::Result<Mmap> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh mapping at an address of the kernel's choosing aliases no Rust object.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p as *mut u8).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mmap { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `Mmap::map` with this length and is unmapped exactly once; views into
        // it are owned by the same `Xsk` and are dropped with it.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------------------------------------

/// Pointers into one ring mapping. Kept together with the mapping so they cannot outlive it.
struct RingMap<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    _map: Mmap,
}

impl<T> RingMap<T> {
    fn new(
        fd: &OwnedFd,
        off: &XdpRingOffset,
        size: u32,
        pgoff: libc::off_t,
    ) -> io::Result<RingMap<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mmap::ring(fd, len, pgoff)?;
        let at = |o: u64| -> NonNull<u8> {
            // SAFETY: the kernel's offsets lie inside the mapping it sized for them (`len` covers `desc` plus
            // the descriptor array, and the indices and flags precede `desc`).
            unsafe { NonNull::new_unchecked(map.ptr.as_ptr().add(o as usize)) }
        };
        Ok(RingMap {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the index is a 4-byte aligned u32 inside our live mapping; the kernel accesses it atomically too.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`. Relaxed is what libxdp uses (a plain READ_ONCE): the flag is a hint, and a
        // stale read costs at most one extra or one late wakeup, which the next busy-poll round repeats.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring we produce on (fill, tx).
///
/// Ordering: we write descriptors with plain stores, then publish them with a `Release` store of the producer
/// index, so the kernel, which reads the producer with acquire semantics (`smp_load_acquire` in `xsk_queue.h`),
/// sees the descriptors complete. The consumer index is read with `Acquire` so that the kernel's reads of the
/// slots it has consumed happen before we overwrite them.
struct ProdRing<T> {
    map: RingMap<T>,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
    /// Written but not yet published.
    pending: u32,
}

impl<T: Copy> ProdRing<T> {
    fn new(map: RingMap<T>, size: u32) -> Self {
        let cached_prod = map.producer().load(Ordering::Relaxed);
        let cached_cons = map.consumer().load(Ordering::Acquire);
        ProdRing {
            map,
            size,
            cached_prod,
            cached_cons,
            pending: 0,
        }
    }

    fn free(&mut self) -> u32 {
        let used = self
            .cached_prod
            .wrapping_add(self.pending)
            .wrapping_sub(self.cached_cons);
        if used < self.size {
            return self.size - used;
        }
        self.cached_cons = self.map.consumer().load(Ordering::Acquire);
        self.size
            - self
                .cached_prod
                .wrapping_add(self.pending)
                .wrapping_sub(self.cached_cons)
    }

    /// Writes one entry after the pending ones; false when the ring is full.
    fn push(&mut self, v: T) -> bool {
        if self.free() == 0 {
            return false;
        }
        let slot = self.cached_prod.wrapping_add(self.pending) & self.map.mask;
        // SAFETY: `slot <= mask` indexes the descriptor array, and the slot is ours: it lies between the published
        // producer and the consumer plus the ring size, which `free` checked.
        unsafe { self.map.descs.as_ptr().add(slot as usize).write(v) };
        self.pending += 1;
        true
    }

    /// Publishes the pending entries to the kernel; returns how many.
    fn submit(&mut self) -> u32 {
        let n = self.pending;
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n);
            self.pending = 0;
            self.map
                .producer()
                .store(self.cached_prod, Ordering::Release);
        }
        n
    }
}

/// A ring we consume from (rx, completion).
///
/// Ordering: the producer index is read with `Acquire`, pairing with the kernel's release store
/// (`smp_store_release` in `xsk_queue.h`), so the descriptors it covers are fully written when we read them. The
/// consumer index is published with `Release`, so our reads of the slots happen before the kernel reuses them.
struct ConsRing<T> {
    map: RingMap<T>,
    cached_prod: u32,
    cached_cons: u32,
    /// Entries handed out by the last `peek`.
    peeked: u32,
}

impl<T: Copy> ConsRing<T> {
    fn new(map: RingMap<T>) -> Self {
        let cached_cons = map.consumer().load(Ordering::Relaxed);
        let cached_prod = map.producer().load(Ordering::Acquire);
        ConsRing {
            map,
            cached_prod,
            cached_cons,
            peeked: 0,
        }
    }

    /// Makes up to `max` entries readable with `get`; returns how many.
    fn peek(&mut self, max: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < max {
            self.cached_prod = self.map.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        self.peeked = avail.min(max);
        self.peeked
    }

    fn get(&self, i: u32) -> T {
        assert!(
            i < self.peeked,
            "ring entry {i} read beyond the {} peeked",
            self.peeked
        );
        let slot = self.cached_cons.wrapping_add(i) & self.map.mask;
        // SAFETY: `slot <= mask` indexes the descriptor array; the entry was published by the kernel (it lies below
        // the producer index we acquired) and is not reused until we release it.
        unsafe { self.map.descs.as_ptr().add(slot as usize).read() }
    }

    fn release(&mut self, n: u32) {
        assert!(
            n <= self.peeked,
            "released {n} ring entries of {} peeked",
            self.peeked
        );
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.peeked = 0;
        self.map
            .consumer()
            .store(self.cached_cons, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------------------------

/// Sizes of one XSK, all counts powers of two.
#[derive(Clone, Copy, Debug)]
pub struct XskGeometry {
    pub frame_size_bytes: u32,
    /// UMEM frames for receiving; also the rx ring size, and half the fill ring size (see `Xsk::new`).
    pub rx_frames: u32,
    /// UMEM frames for transmitting; also the completion ring size, and half the tx ring size (see `Xsk::new`).
    pub tx_frames: u32,
}

/// How the socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

/// One bound AF_XDP socket with its UMEM and four rings.
///
/// Field order is drop order: the socket closes first (the kernel unbinds and stops touching the rings and the
/// UMEM), then the ring mappings and the UMEM go.
pub struct Xsk {
    fd: OwnedFd,
    rx: ConsRing<XdpDesc>,
    tx: ProdRing<XdpDesc>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    umem: Mmap,
    geometry: XskGeometry,
    /// Transmit frames not in the kernel's hands; capacity `tx_frames`, filled once at start.
    tx_free: Vec<u64>,
    mode: BindMode,
}

// SAFETY: `Xsk` exclusively owns its mappings and socket; the raw pointers are into those mappings, which move
// with it. Nothing is shared with another thread of ours, only with the kernel.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: &OwnedFd, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live `repr(C)` value whose size we pass; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            v as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn getsockopt<T: Default>(fd: &OwnedFd, name: libc::c_int) -> io::Result<T> {
    let mut v = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live, exclusively borrowed value of `len` bytes that the kernel fills, and no more than
    // `len`. Both callers ask for one of the ABI structs above (`XdpMmapOffsets`, `XdpStatistics`), which are
    // made of integers only, so any bytes the kernel writes are a valid value.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            &mut v as *mut T as *mut libc::c_void,
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// Which step of socket set-up failed.
#[derive(Debug)]
pub struct SetupError {
    pub what: &'static str,
    pub source: io::Error,
}

fn step<T>(what: &'static str, r: io::Result<T>) -> Result<T, SetupError> {
    r.map_err(|source| SetupError { what, source })
}

impl Xsk {
    /// Creates the socket, registers a fresh UMEM, sizes and maps the rings, binds to `ifindex`/`queue_id`
    /// (zero-copy first unless `force_copy`, then copy mode) and fills the fill ring.
    pub fn new(
        ifindex: u32,
        queue_id: u32,
        g: XskGeometry,
        force_copy: bool,
    ) -> Result<Xsk, SetupError> {
        assert!(g.rx_frames.is_power_of_two() && g.tx_frames.is_power_of_two());
        assert!(g.frame_size_bytes == 2048 || g.frame_size_bytes == 4096);
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(SetupError {
                what: "socket(AF_XDP)",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // The rings we produce on are twice the frames they carry. The kernel publishes its consumer index on
        // those rings lazily (only when it refills its cached view of our entries), so a frame can come back to us
        // (through the rx or completion ring) while the slot it was handed over in still counts as occupied; with a
        // ring exactly as large as the frames, giving the frame back could then find the ring full. Each frame sits
        // at most once in the kernel's unpublished window and at most once after it, so twice the frames always fit.
        let fill_ring = 2 * g.rx_frames;
        let tx_ring = 2 * g.tx_frames;
        let frames = u64::from(g.rx_frames + g.tx_frames);
        let umem_len = (frames * u64::from(g.frame_size_bytes)) as usize;
        let umem = step("mmap UMEM", Mmap::anonymous(umem_len))?;
        let reg = XdpUmemReg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: g.frame_size_bytes,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        step("XDP_UMEM_REG", setsockopt(&fd, XDP_UMEM_REG, &reg))?;
        step(
            "XDP_UMEM_FILL_RING",
            setsockopt(&fd, XDP_UMEM_FILL_RING, &fill_ring),
        )?;
        step(
            "XDP_UMEM_COMPLETION_RING",
            setsockopt(&fd, XDP_UMEM_COMPLETION_RING, &g.tx_frames),
        )?;
        step("XDP_RX_RING", setsockopt(&fd, XDP_RX_RING, &g.rx_frames))?;
        step("XDP_TX_RING", setsockopt(&fd, XDP_TX_RING, &tx_ring))?;
        let off: XdpMmapOffsets = step("XDP_MMAP_OFFSETS", getsockopt(&fd, XDP_MMAP_OFFSETS))?;

        let rx = step(
            "mmap rx ring",
            RingMap::new(&fd, &off.rx, g.rx_frames, XDP_PGOFF_RX_RING),
        )?;
        let tx = step(
            "mmap tx ring",
            RingMap::new(&fd, &off.tx, tx_ring, XDP_PGOFF_TX_RING),
        )?;
        let fill = step(
            "mmap fill ring",
            RingMap::new(&fd, &off.fr, fill_ring, XDP_UMEM_PGOFF_FILL_RING),
        )?;
        let comp = step(
            "mmap completion ring",
            RingMap::new(&fd, &off.cr, g.tx_frames, XDP_UMEM_PGOFF_COMPLETION_RING),
        )?;

        let mode = Self::bind(&fd, ifindex, queue_id, force_copy)?;

        let mut tx_free = Vec::with_capacity(g.tx_frames as usize);
        let fs = u64::from(g.frame_size_bytes);
        tx_free.extend((0..u64::from(g.tx_frames)).map(|i| (u64::from(g.rx_frames) + i) * fs));
        let mut xsk = Xsk {
            fd,
            rx: ConsRing::new(rx),
            tx: ProdRing::new(tx, tx_ring),
            fill: ProdRing::new(fill, fill_ring),
            comp: ConsRing::new(comp),
            umem,
            geometry: g,
            tx_free,
            mode,
        };
        for i in 0..u64::from(g.rx_frames) {
            let pushed = xsk.fill.push(i * fs);
            assert!(pushed, "fill ring sized for every rx frame");
        }
        xsk.fill.submit();
        Ok(xsk)
    }

    fn bind(
        fd: &OwnedFd,
        ifindex: u32,
        queue_id: u32,
        force_copy: bool,
    ) -> Result<BindMode, SetupError> {
        let bind_with = |flags: u16| -> io::Result<()> {
            let sa = SockaddrXdp {
                family: AF_XDP as u16,
                flags,
                ifindex,
                queue_id,
                shared_umem_fd: 0,
            };
            // SAFETY: `sa` is a live `sockaddr_xdp` of the size we pass.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const SockaddrXdp as *const libc::sockaddr,
                    size_of::<SockaddrXdp>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        if !force_copy && bind_with(XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY).is_ok() {
            return Ok(BindMode::ZeroCopy);
        }
        // Drivers without zero-copy support (veth among them) refuse with EOPNOTSUPP; copy mode works everywhere
        // XDP does.
        step(
            "bind(AF_XDP, XDP_COPY)",
            bind_with(XDP_USE_NEED_WAKEUP | XDP_COPY),
        )?;
        Ok(BindMode::Copy)
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub fn mode(&self) -> BindMode {
        self.mode
    }

    pub fn geometry(&self) -> XskGeometry {
        self.geometry
    }

    fn rx_area_bytes(&self) -> u64 {
        u64::from(self.geometry.rx_frames) * u64::from(self.geometry.frame_size_bytes)
    }

    /// Makes up to `max` received frames available to [`Xsk::rx_frame`]; returns how many.
    pub fn rx_peek(&mut self, max: u32) -> u32 {
        self.rx.peek(max)
    }

    /// The `i`-th peeked received frame, or `None` if the kernel's descriptor does not lie inside one rx frame
    /// (which a correct kernel never produces; the caller counts it).
    pub fn rx_frame(&self, i: u32) -> Option<&[u8]> {
        let d = self.rx.get(i);
        let fs = u64::from(self.geometry.frame_size_bytes);
        let end = d.addr.checked_add(u64::from(d.len))?;
        if end > self.rx_area_bytes() || (d.addr & (fs - 1)) + u64::from(d.len) > fs {
            return None;
        }
        // SAFETY: the range lies inside the rx area of the live UMEM (checked above), and the frame is ours: the
        // kernel handed it over through the rx ring and gets it back only through the fill ring in `rx_release`,
        // which needs `&mut self` and so ends this borrow first.
        Some(unsafe {
            std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(d.addr as usize), d.len as usize)
        })
    }

    /// Returns the `n` peeked frames to the kernel: their chunks go back on the fill ring, then the rx slots are
    /// released.
    pub fn rx_release(&mut self, n: u32) {
        let mask = !(u64::from(self.geometry.frame_size_bytes) - 1);
        for i in 0..n {
            let chunk = self.rx.get(i).addr & mask;
            // A chunk outside the rx area would come from a broken kernel; it is not ours to recycle.
            if chunk < self.rx_area_bytes() {
                let pushed = self.fill.push(chunk);
                assert!(pushed, "fill ring sized for every rx frame");
            }
        }
        // Fill first: the Release store on the fill producer orders our reads of the frames before the kernel may
        // write into them again.
        self.fill.submit();
        self.rx.release(n);
    }

    /// Moves completed transmit frames back to the free list.
    pub fn tx_reclaim(&mut self) -> u32 {
        let n = self.comp.peek(self.geometry.tx_frames);
        for i in 0..n {
            let addr = self.comp.get(i);
            // The free list has room for every tx frame, so this never grows the vector.
            if self.tx_free.len() < self.tx_free.capacity() {
                self.tx_free.push(addr);
            }
        }
        self.comp.release(n);
        n
    }

    /// A free transmit frame's UMEM address, reclaiming completions first when none is free.
    pub fn tx_alloc(&mut self) -> Option<u64> {
        if self.tx_free.is_empty() {
            self.tx_reclaim();
        }
        self.tx_free.pop()
    }

    /// Gives back a frame from [`Xsk::tx_alloc`] that was not sent.
    pub fn tx_unalloc(&mut self, addr: u64) {
        assert!(self.tx_free.len() < self.tx_free.capacity());
        self.tx_free.push(addr);
    }

    fn tx_range(&self, addr: u64) -> std::ops::Range<usize> {
        let fs = u64::from(self.geometry.frame_size_bytes);
        let total = self.rx_area_bytes() + u64::from(self.geometry.tx_frames) * fs;
        assert!(
            addr >= self.rx_area_bytes() && addr < total && addr & (fs - 1) == 0,
            "not a tx frame: {addr:#x}"
        );
        addr as usize..(addr + fs) as usize
    }

    /// The whole chunk of a transmit frame from [`Xsk::tx_alloc`].
    pub fn tx_frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let r = self.tx_range(addr);
        // SAFETY: the range is one tx chunk of the live UMEM (asserted in `tx_range`), and `&mut self` makes this
        // the only Rust view of it. The caller passes a frame from `tx_alloc`, which the kernel does not hold;
        // were it one still queued, the kernel would send bytes being rewritten, a garbled frame and not a memory
        // error, since the kernel's reads of the UMEM are not Rust accesses.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(r.start), r.len()) }
    }

    /// The `i`-th peeked received frame (as [`Xsk::rx_frame`]) together with the transmit frame `tx_addr`, for
    /// copying one into the other.
    pub fn rx_tx_pair(&mut self, i: u32, tx_addr: u64) -> (Option<&[u8]>, &mut [u8]) {
        let r = self.tx_range(tx_addr);
        // SAFETY: as in `tx_frame_mut`; the tx area and the rx area are disjoint parts of the UMEM, so this
        // mutable view cannot overlap the shared view of the received frame.
        let tx =
            unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(r.start), r.len()) };
        (self.rx_frame(i), tx)
    }

    /// Queues a filled transmit frame; published by [`Xsk::tx_submit`]. Never fails: the tx ring has a slot for
    /// every tx frame.
    pub fn tx_push(&mut self, addr: u64, len: u32) {
        let pushed = self.tx.push(XdpDesc {
            addr,
            len,
            options: 0,
        });
        assert!(pushed, "tx ring sized for every tx frame");
    }

    /// Publishes queued transmit descriptors; returns how many.
    pub fn tx_submit(&mut self) -> u32 {
        self.tx.submit()
    }

    /// Frames the kernel holds for transmission (queued and not yet completed).
    pub fn tx_in_flight(&self) -> u32 {
        self.geometry.tx_frames - self.tx_free.len() as u32
    }

    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.map.needs_wakeup()
    }

    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.map.needs_wakeup()
    }

    /// Asks the kernel to process the tx ring (`sendto` with `MSG_DONTWAIT`). Transient refusals (`EAGAIN`,
    /// `EBUSY`, `ENOBUFS`, `ENETDOWN`) are `Ok`: the frames stay queued and the next flush kicks again.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length send with null buffers is the documented XSK wakeup; nothing is read.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => Ok(()),
            _ => Err(e),
        }
    }

    /// Wakes the kernel's receive side after it ran out of fill entries (`recvfrom` with `MSG_DONTWAIT`).
    pub fn kick_rx(&self) -> io::Result<()> {
        // SAFETY: a zero-length receive with null buffers is the documented XSK wakeup; nothing is written.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => Ok(()),
            _ => Err(e),
        }
    }

    /// The kernel's drop counters for this socket.
    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        getsockopt(&self.fd, XDP_STATISTICS)
    }
}
