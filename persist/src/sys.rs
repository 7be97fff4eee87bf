//! The unsafe seam: shared file mappings, cache-line flushes, fences, preallocation and `flock`.
//!
//! Everything here is a thin, bounds-checked wrapper over a kernel or CPU interface. The rest of the crate is safe
//! code and reaches the mapping only through [`Mmap`]'s methods, which take offsets, never pointers.
//!
//! A mapping is written through raw pointers, never through `&mut [u8]`: the writer and the group-commit thread share
//! one mapping (the writer stores records, the other thread calls `msync` on the same range), and other processes
//! may read the same file pages. No Rust reference to mapped bytes is held across a write.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Cache-line size in bytes on every x86_64 part we run on, and the unit of a WAL record.
pub const LINE_BYTES: usize = 64;

/// Linux `MAP_SHARED_VALIDATE`: like `MAP_SHARED`, but unknown flags are refused instead of ignored, which is what
/// makes a refused `MAP_SYNC` visible.
const MAP_SHARED_VALIDATE: libc::c_int = 0x03;
/// Linux `MAP_SYNC`: page faults make file metadata durable first, so CPU cache flushes alone persist data (DAX).
const MAP_SYNC: libc::c_int = 0x80000;

/// How a mapping was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// `MAP_SHARED_VALIDATE | MAP_SYNC` was accepted: the file lives on DAX and flushed lines are durable.
    Sync,
    /// Plain `MAP_SHARED` (page cache): durability needs `msync`/`fdatasync`.
    Shared,
}

/// A writable file mapping, unmapped on drop. It hands out no reference to its bytes: it is written through raw
/// pointers while other threads (msync) and processes (readers) share the pages, so a `&[u8]` of it would be a
/// slice whose contents change under it. Readers map the file separately as a [`MapView`].
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    kind: MapKind,
}

// SAFETY: the mapping belongs to the process, not to the thread that made it, and this value owns it: any thread
// may write through it or unmap it.
unsafe impl Send for Mmap {}
// SAFETY: `&self` methods reach the pages only through bounds-checked raw-pointer copies, atomic stores and system
// calls, and hand out no reference to them, so no `&[u8]` of these bytes exists for a write to invalidate. Two
// threads calling `write` on the same bytes at once would still race; the WAL has one writer, and the threads it
// shares segments with (group commit, preparation) only `msync` them or use them before the writer gets them.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `file` read-write and shared. With `want_sync`, tries `MAP_SHARED_VALIDATE | MAP_SYNC`
    /// first and falls back to `MAP_SHARED` when the filesystem refuses (EOPNOTSUPP on ext4/tmpfs); the returned
    /// [`MapKind`] says which one is in force, and the errno of the refusal is returned alongside.
    pub fn map_shared(file: &File, len: usize, want_sync: bool) -> io::Result<(Mmap, Option<io::Error>)> {
        assert!(len > 0, "a mapping needs a length");
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let mut refusal = None;
        if want_sync {
            // SAFETY: a fresh mapping chosen by the kernel (null hint); the fd is valid for the call.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    MAP_SHARED_VALIDATE | MAP_SYNC,
                    file.as_raw_fd(),
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return Ok((Mmap { ptr: nonnull(p), len, kind: MapKind::Sync }, None));
            }
            refusal = Some(io::Error::last_os_error());
        }
        // SAFETY: as above.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok((Mmap { ptr: nonnull(p), len, kind: MapKind::Shared }, refusal))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn kind(&self) -> MapKind {
        self.kind
    }

    /// Copies `src` to `offset`. Panics (programmer error) when out of bounds.
    #[inline]
    pub fn write(&self, offset: usize, src: &[u8]) {
        assert!(offset <= self.len && src.len() <= self.len - offset, "write beyond the mapping");
        // SAFETY: `[offset, offset + src.len())` lies inside the mapping (checked above), which is writable. `src`
        // cannot overlap it: `Mmap` hands out no reference into its pages, so a `&[u8]` lies elsewhere in the
        // address space (a `MapView` of the same file is a separate mapping at other addresses).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len()) }
    }

    /// Stores an 8-byte native-endian word (pass `u64::from_ne_bytes` of the bytes wanted) at an 8-aligned `offset` with release ordering: every earlier store to
    /// the mapping is visible to a reader that sees this word. The WAL uses it for a record's `crc|length` word,
    /// which is written last so that a half-written record is always detectable.
    #[inline]
    pub fn store_u64_release(&self, offset: usize, value: u64) {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "misaligned or out-of-bounds word");
        // SAFETY: in bounds, 8-aligned (the mapping is page-aligned) and writable; an AtomicU64 has the layout of a
        // u64. Readers load this word atomically, and the writer stores record words only through this method.
        let word = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast::<u64>()) };
        word.store(value, Ordering::Release);
    }

    /// Writes back every cache line that overlaps `[offset, offset + len)` with the chosen instruction. No fence:
    /// the caller issues [`sfence`] once per burst.
    #[inline]
    pub fn flush_range(&self, offset: usize, len: usize, flush: FlushKind) {
        assert!(offset <= self.len && len <= self.len - offset, "flush beyond the mapping");
        let start = offset & !(LINE_BYTES - 1);
        let end = offset + len;
        let mut line = start;
        while line < end {
            // SAFETY: `line` lies inside the mapping (checked range, rounded down to its line, and the mapping is
            // page-aligned). `flush` is the caller's: the WAL passes only what `WalConfig::flush_kind` accepted
            // after asking CPUID; any other kind would fault with #UD, stopping the process, not corrupting it.
            unsafe { flush_line(flush, self.ptr.as_ptr().add(line)) };
            line += LINE_BYTES;
        }
    }

    /// `msync(MS_SYNC)` over `[offset, offset + len)`, rounded out to pages: returns when the page cache has
    /// written those pages to the device.
    pub fn msync(&self, offset: usize, len: usize) -> io::Result<()> {
        assert!(offset <= self.len && len <= self.len - offset, "msync beyond the mapping");
        let page = page_bytes();
        let start = offset & !(page - 1);
        let end = (offset + len).min(self.len);
        // SAFETY: the range is inside our mapping (checked above, `end` clamped to it) and page-aligned at its
        // start, as msync requires; msync only writes pages back and changes no memory.
        let rc = unsafe { libc::msync(self.ptr.as_ptr().add(start).cast(), end - start, libc::MS_SYNC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Touches every page with a write of the byte already there, so that later appends do not take the first-write
    /// page fault (ext4 `page_mkwrite`) on the hot path. Contents are unchanged.
    pub fn prefault(&self) {
        let page = page_bytes();
        let mut off = 0;
        while off < self.len {
            // SAFETY: in bounds and writable. The volatile read then write of the same byte keeps the contents
            // because nothing else writes this segment yet: both callers prefault a file they have just created,
            // before it is renamed into the log.
            unsafe {
                let p = self.ptr.as_ptr().add(off);
                std::ptr::write_volatile(p, std::ptr::read_volatile(p));
            }
            off += page;
        }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned, and this is the only unmap. `Mmap` lends no
        // references into the pages, so none outlives it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A read-only shared mapping of a file that a live writer (another mapping, often another process) may still be
/// appending to. Readers take the slice for bytes the writer has published, and find out what is published through
/// [`MapView::load_u64_acquire`], the partner of the writer's [`Mmap::store_u64_release`].
#[derive(Debug)]
pub struct MapView {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to the process and this value owns it; any thread may read it or unmap it.
unsafe impl Send for MapView {}
// SAFETY: nothing is written through a `MapView`; its `&self` methods only read.
unsafe impl Sync for MapView {}

impl MapView {
    /// Maps `len` bytes of `file` read-only and shared: the view sees what a live writer stores.
    pub fn map(file: &File, len: usize) -> io::Result<MapView> {
        assert!(len > 0, "a mapping needs a length");
        // SAFETY: a fresh read-only mapping chosen by the kernel; the fd is valid for the call.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MapView { ptr: nonnull(p), len })
    }

    /// The mapped bytes. A live writer may change bytes beyond the ones it has published; readers learn what is
    /// published with [`MapView::load_u64_acquire`] and validate every record by CRC, so a torn view is detected,
    /// not trusted.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is readable for `len` bytes until `self` drops, and the slice borrows `self`. These
        // bytes are not frozen as a `&[u8]` normally promises: a live writer (through its own mapping, often in
        // another process) may still store beyond what it has published. That is the accepted cost of reading a
        // log while it is written: readers trust only bytes below a word they loaded with acquire ordering (the
        // writer only appends, so it does not store there again) and check each record's CRC.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Loads the 8-byte native-endian word at an 8-aligned `offset` with acquire ordering: when it holds what the
    /// writer stored with release ordering, every byte the writer stored before it is visible. `None` when the
    /// offset is misaligned or out of bounds.
    #[inline]
    pub fn load_u64_acquire(&self, offset: usize) -> Option<u64> {
        if !offset.is_multiple_of(8) || offset.checked_add(8).is_none_or(|end| end > self.len) {
            return None;
        }
        // SAFETY: in bounds, 8-aligned (the mapping is page-aligned) and readable while `self` lives; an AtomicU64
        // has the layout of a u64, and callers load record words, which the writer stores only atomically. The
        // pages are mapped read-only, where Rust promises only relaxed atomic loads of at most 8 bytes
        // (core::sync::atomic, "Atomic accesses to read-only memory"), so the load is relaxed and the fence after
        // it gives the acquire.
        let word = unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() };
        let value = word.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        Some(value)
    }
}

/// Loads the 8-byte native-endian word at `offset` of `bytes` with acquire ordering: the reader's half of
/// [`Mmap::store_u64_release`] for a slice of a mapping a live writer publishes into (a segment scanned through a
/// [`MapView`]). `None` when the word is out of bounds or its address is not 8-aligned.
#[inline]
pub fn load_u64_acquire_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    if end > bytes.len() {
        return None;
    }
    let p = bytes[offset..].as_ptr();
    if !(p as usize).is_multiple_of(8) {
        return None;
    }
    // SAFETY: 8 readable bytes at an 8-aligned address (checked above), borrowed for the call; an AtomicU64 has the
    // layout of a u64. `bytes` is shared and may be read-only mapped memory, where Rust promises only relaxed atomic
    // loads of at most 8 bytes, so the load is relaxed and the fence after it gives the acquire.
    let word = unsafe { &*p.cast::<AtomicU64>() };
    let value = word.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    Some(value)
}

impl Drop for MapView {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned, and this is the only unmap; the slices `bytes`
        // hands out borrow `self` and so end before this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn nonnull(p: *mut libc::c_void) -> NonNull<u8> {
    NonNull::new(p.cast::<u8>()).expect("mmap returned null without MAP_FIXED")
}

/// The system page size in bytes.
pub fn page_bytes() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Reserves `len` bytes of disk for `file` (posix_fallocate), so that writes through the mapping can never hit a
/// full disk (which would be a SIGBUS, not an error). ENOSPC is returned as an error here, at creation.
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: posix_fallocate takes integers only, and the fd is borrowed from a live `File`.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Which lock [`flock_nonblocking`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlockKind {
    /// `LOCK_EX`: one holder; what a writer of a WAL directory takes.
    Exclusive,
    /// `LOCK_SH`: any number of holders, none exclusive; how a reader probes for a writer without waiting.
    Shared,
}

/// `flock(fd, kind | LOCK_NB)`: `Ok(true)` when the lock is taken, `Ok(false)` when another open file description
/// (in this process or another) holds a conflicting lock. The lock belongs to the open file description, so it lasts
/// until `file` (and every duplicate of its descriptor) is closed.
pub fn flock_nonblocking(file: &File, kind: FlockKind) -> io::Result<bool> {
    let op = match kind {
        FlockKind::Exclusive => libc::LOCK_EX,
        FlockKind::Shared => libc::LOCK_SH,
    } | libc::LOCK_NB;
    loop {
        // SAFETY: plain syscall on a valid fd; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            // The fd is open (borrowed from a live File) and the operation is one of the two valid ones.
            Some(libc::EBADF) | Some(libc::EINVAL) => unreachable!("flock({op}) on a live file: {e}"),
            // ENOLCK (the kernel is out of lock memory) and anything else are operating errors of this host.
            _ => return Err(e),
        }
    }
}

/// The instruction that writes a dirty cache line back towards memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushKind {
    /// Write back, keep the line cached (cheapest; Skylake-SP and Zen 2 onwards).
    Clwb,
    /// Write back and invalidate, weakly ordered.
    Clflushopt,
    /// Write back and invalidate, strongly ordered (every x86_64; valgrind decodes it).
    Clflush,
    /// No cache-flush instruction on this architecture: durability comes from `msync` only.
    None,
}

impl FlushKind {
    pub fn name(self) -> &'static str {
        match self {
            FlushKind::Clwb => "clwb",
            FlushKind::Clflushopt => "clflushopt",
            FlushKind::Clflush => "clflush",
            FlushKind::None => "none",
        }
    }

    /// The best instruction this CPU supports (CPUID).
    pub fn detect() -> FlushKind {
        #[cfg(target_arch = "x86_64")]
        {
            let (clwb, clflushopt) = cpuid_flush_features();
            if clwb {
                return FlushKind::Clwb;
            }
            if clflushopt {
                return FlushKind::Clflushopt;
            }
            FlushKind::Clflush
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            FlushKind::None
        }
    }

    /// Whether this CPU can execute the instruction.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let (clwb, clflushopt) = cpuid_flush_features();
            match self {
                FlushKind::Clwb => clwb,
                FlushKind::Clflushopt => clflushopt,
                FlushKind::Clflush | FlushKind::None => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == FlushKind::None
        }
    }
}

/// CPUID leaf 7 (sub-leaf 0), EBX: bit 24 = CLWB, bit 23 = CLFLUSHOPT. std's feature-detection macro does not
/// know these two, so we read the bits ourselves.
#[cfg(target_arch = "x86_64")]
fn cpuid_flush_features() -> (bool, bool) {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 CPU, and leaf 0 is always valid: it reports the highest leaf, checked
    // before asking for leaf 7. (Newer Rust makes `__cpuid` safe, hence the allow.)
    #[allow(unused_unsafe)]
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return (false, false);
    }
    // SAFETY: leaf 7 is supported (checked above).
    #[allow(unused_unsafe)]
    let ebx = unsafe { __cpuid_count(7, 0) }.ebx;
    (ebx & (1 << 24) != 0, ebx & (1 << 23) != 0)
}

/// Writes back the cache line holding `p`.
///
/// # Safety
/// `p` must point into mapped memory of this process, and `kind` must be supported by the CPU.
#[inline(always)]
unsafe fn flush_line(kind: FlushKind, p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        match kind {
            // SAFETY: the caller guarantees `p` is mapped and the CPU has CLWB (checked by CPUID at selection).
            FlushKind::Clwb => unsafe {
                std::arch::asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags))
            },
            // SAFETY: as above, for CLFLUSHOPT.
            FlushKind::Clflushopt => unsafe {
                std::arch::asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
            },
            // SAFETY: CLFLUSH exists on every x86_64 CPU (SSE2); `p` is mapped.
            FlushKind::Clflush => unsafe { std::arch::x86_64::_mm_clflush(p) },
            FlushKind::None => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kind, p);
    }
}

/// Store fence: orders the preceding flushes before any later store (the durability point on DAX).
#[inline(always)]
pub fn sfence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SFENCE exists on every x86_64 CPU and touches no memory operands.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(len: u64) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("bourse-sys-{}-{len}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(len).unwrap();
        (path, file)
    }

    #[test]
    fn a_view_sees_what_the_writer_published_through_the_word_it_stored_last() {
        let (path, file) = scratch(4096);
        let (writer, _) = Mmap::map_shared(&file, 4096, false).unwrap();
        let view = MapView::map(&file, 4096).unwrap();
        assert_eq!(view.load_u64_acquire(64), Some(0), "nothing published yet");
        writer.write(72, &[7u8; 56]);
        writer.store_u64_release(64, 0x0000_0040_dead_beef);
        assert_eq!(view.load_u64_acquire(64), Some(0x0000_0040_dead_beef));
        assert_eq!(&view.bytes()[72..128], &[7u8; 56][..]);
        assert_eq!(view.load_u64_acquire(65), None, "misaligned");
        assert_eq!(view.load_u64_acquire(4096 - 4), None, "past the end");
        assert_eq!(view.load_u64_acquire(usize::MAX - 7), None, "overflowing offset");
        std::fs::remove_file(path).unwrap();
    }
}
