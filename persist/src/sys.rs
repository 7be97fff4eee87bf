//! The unsafe seam: shared file mappings, cache-line flushes, fences, preallocation and `flock`.
//!
//! Everything here is a thin, bounds-checked wrapper over a kernel or CPU interface. The rest of the crate is safe
//! code and reaches a mapping only through [`Mmap`]'s and [`MapView`]'s methods, which take offsets, never pointers.
//!
//! A mapping is written through raw pointers, never through `&mut [u8]`: the writer and the group-commit thread share
//! one mapping (the writer stores records, the other thread calls `msync` on the same range), and other threads and
//! processes read the same file pages. No Rust reference to mapped bytes is held across a write: a reader's
//! [`MapView`] lends only the slots the writer has published, which it never stores into again.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::cell::Cell;
use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};

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

/// A read-only shared mapping of a log file that a live writer (another mapping of it, in this process or another)
/// may still be appending to.
///
/// Rust lets a `&[u8]` cover only bytes that nothing stores into while it lives, so a view never lends the mapping
/// as a whole: the writer is storing into its unpublished part at any moment. It lends only bytes that the writer's
/// protocol makes immutable, and reads nothing else except through atomic loads into the caller's buffer.
///
/// **The slot protocol** (the WAL's: see `wal::record` and `Wal::write_buffered`). Before the file takes the name
/// readers open it by, its writer may store anywhere; the view's *prefix* (a segment's header) is written then and
/// never again. After it, the file is a run of *slots*, each starting where the previous one ended. The writer fills
/// a slot's bytes from its ninth on, then stores the slot's first 8-byte word last, with
/// [`Mmap::store_u64_release`]: never zero, its upper 32 bits (the little-endian `length` field after the `crc`) the
/// slot's size in bytes. It never stores into a published slot again. A slot's word is only ever stored atomically,
/// and reads as zero until then (a segment reads as zeros when it is named, and the writer's other stores skip it).
/// Published slots are zeroed again only by recovery truncating a torn tail and by a log cut, both holding the
/// directory's lock after this process's writer and its readers of the log are gone.
///
/// **The walk.** The view keeps a *published end*, starting at the prefix's end. It loads the word there with
/// acquire ordering (the partner of the writer's release store, so the slot's bytes are visible), and when the word
/// is non-zero and names a length that fits, moves the published end past the slot. The word at the published end is
/// the only byte beyond it the walk touches, and the writer stores that word only atomically: the walk never races a
/// plain store. Slices are lent only below the published end ([`MapView::slot`], [`MapView::published`]).
///
/// Bytes past the published end are read only by [`MapView::read`], which copies them with atomic loads into the
/// caller's buffer (no reference covers them): what judging a crashed log's tail needs, which a scan does only with no
/// writer appending.
#[derive(Debug)]
pub struct MapView {
    ptr: NonNull<u8>,
    len: usize,
    /// End of the bytes known to be immutable: the prefix, then every slot walked so far (see the type's notes).
    published_end: Cell<usize>,
}

// SAFETY: read-only memory owned by this value, freed only in Drop; moving the handle to another thread moves the
// walk with it. Not `Sync`: the published end is a `Cell`, advanced through `&self`.
unsafe impl Send for MapView {}

/// What [`MapView::slot`] found at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// Nothing is published there yet: the slot's word is zero, or the walk stops at an earlier slot.
    Unpublished,
    /// A published slot's bytes, as many as its word says: the writer stores no more into them.
    Published(&'a [u8]),
    /// A non-zero word that names no slot (length zero, not a multiple of 8, over the largest slot or past the end):
    /// not what a writer following the protocol publishes, so damage or a dead writer's leftovers. Nothing is lent.
    Malformed,
}

impl MapView {
    /// Maps `len` bytes of `file` read-only and shared: the view sees what a live writer stores. `prefix_bytes` are
    /// the bytes the writer stored before the file took its name (a segment's header), readable from the start.
    pub fn map(file: &File, len: usize, prefix_bytes: usize) -> io::Result<MapView> {
        assert!(len > 0, "a mapping needs a length");
        assert!(prefix_bytes <= len, "a prefix of {prefix_bytes} bytes in a mapping of {len}");
        // SAFETY: a fresh read-only mapping chosen by the kernel; the fd is valid for the call.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MapView { ptr: nonnull(p), len, published_end: Cell::new(prefix_bytes) })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes `[from, to)`, or as many of them as are published (walking the published end towards `to` first):
    /// ends early where the writer has not published yet, empty when `from` is not below that point.
    pub fn published(&self, from: usize, to: usize, slot_bytes_max: usize) -> &[u8] {
        let end = self.walk(to, slot_bytes_max).min(to);
        if from >= end {
            return &[];
        }
        // SAFETY: `from < end <= published end <= len`: inside the mapping, and immutable for the life of `self` by
        // the slot protocol (see the type's notes).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(from), end - from) }
    }

    /// The slot that starts at `offset`, walking the published end up to it first. An `offset` inside a published
    /// slot (not a slot start) reads that slot's bytes as a word; they are published, so what it lends is immutable
    /// all the same, and the caller's validation (a CRC) refuses it.
    pub fn slot(&self, offset: usize, slot_bytes_max: usize) -> Slot<'_> {
        let end = self.walk(offset.saturating_add(1), slot_bytes_max);
        if offset >= end || end - offset < 8 {
            if offset != end || !offset.is_multiple_of(8) || offset.checked_add(8).is_none_or(|e| e > self.len) {
                return Slot::Unpublished;
            }
            // The walk stopped right here: on a zero word, or on one that names no slot.
            return if self.load_word_acquire(offset) == 0 { Slot::Unpublished } else { Slot::Malformed };
        }
        let published = self.published(offset, end, slot_bytes_max);
        let word = u64::from_ne_bytes(published[..8].try_into().expect("8 bytes"));
        match slot_bytes(word, slot_bytes_max, end - offset) {
            Some(n) => Slot::Published(&published[..n]),
            None => Slot::Malformed,
        }
    }

    /// Copies `out.len()` bytes from `offset` into `out` with relaxed atomic loads (8-byte words where aligned), so
    /// no reference covers them: the one way to read bytes past the published end. Panics (programmer error) when
    /// out of bounds. With a writer storing into them, what it reads may be half old and half new; the scan that
    /// reads past the published end does so only with no writer appending.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset <= self.len && out.len() <= self.len - offset, "read beyond the mapping");
        let mut i = 0;
        while i < out.len() {
            let at = offset + i;
            if at.is_multiple_of(8) && out.len() - i >= 8 {
                out[i..i + 8].copy_from_slice(&self.load_word_relaxed(at).to_ne_bytes());
                i += 8;
            } else {
                out[i] = self.load_byte_relaxed(at);
                i += 1;
            }
        }
    }

    /// The end (exclusive) of the last non-zero byte in `[from, len)`, or `from` when they are all zero, read from
    /// the end backwards with relaxed atomic loads like [`MapView::read`]: a mostly unwritten segment costs one pass
    /// of word compares.
    pub fn nonzero_end(&self, from: usize) -> usize {
        assert!(from <= self.len, "a scan from beyond the mapping");
        let mut end = self.len;
        while end > from {
            if end.is_multiple_of(8) && end - from >= 8 {
                let word = self.load_word_relaxed(end - 8);
                if word != 0 {
                    let last = word.to_ne_bytes().iter().rposition(|&b| b != 0).unwrap_or(7);
                    return end - 8 + last + 1;
                }
                end -= 8;
            } else {
                if self.load_byte_relaxed(end - 1) != 0 {
                    return end;
                }
                end -= 1;
            }
        }
        from
    }

    /// Moves the published end over every slot published from it on, stopping at the first that is not, or once it
    /// is at least `to`; returns it. Bounded: each step moves it forward by at least 8 bytes within the mapping.
    fn walk(&self, to: usize, slot_bytes_max: usize) -> usize {
        let mut end = self.published_end.get();
        while end < to && end.is_multiple_of(8) && end + 8 <= self.len {
            match slot_bytes(self.load_word_acquire(end), slot_bytes_max, self.len - end) {
                Some(n) => end += n,
                None => break,
            }
        }
        self.published_end.set(end);
        end
    }

    /// The word at the 8-aligned, in-bounds `offset`, loaded with acquire ordering: when it holds what the writer
    /// stored with release ordering, every byte the writer stored before it is visible.
    fn load_word_acquire(&self, offset: usize) -> u64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "misaligned or out-of-bounds word");
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page-aligned); an AtomicU64 has the layout of a
        // u64, and an atomic load from read-only memory does not write. The writer stores a slot's word only
        // atomically (the slot protocol), so this load never races a plain store. The pages are mapped read-only,
        // where Rust promises only relaxed atomic loads of at most 8 bytes (core::sync::atomic, "Atomic accesses to
        // read-only memory"), so the load is relaxed and the fence after it gives the acquire.
        let word = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast::<u64>()) };
        let value = word.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        value
    }

    /// The word at the 8-aligned, in-bounds `offset`, loaded atomically with no ordering (see [`MapView::read`]).
    fn load_word_relaxed(&self, offset: usize) -> u64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len, "misaligned or out-of-bounds word");
        // SAFETY: as in `load_word_acquire`; an atomic load forms no reference to the bytes.
        let word = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast::<u64>()) };
        word.load(Ordering::Relaxed)
    }

    /// The byte at the in-bounds `offset`, loaded atomically with no ordering (see [`MapView::read`]).
    fn load_byte_relaxed(&self, offset: usize) -> u8 {
        assert!(offset < self.len, "out-of-bounds byte");
        // SAFETY: in bounds (checked); an AtomicU8 has the layout of a u8, and a load does not write.
        let byte = unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset)) };
        byte.load(Ordering::Relaxed)
    }
}

/// The size of the slot whose word is `word`, if it names one (the slot protocol of [`MapView`]): non-zero, a
/// multiple of 8 (so the next word is aligned), at most `slot_bytes_max` and at most the `room` left.
pub fn slot_bytes(word: u64, slot_bytes_max: usize, room: usize) -> Option<usize> {
    let n = (word >> 32) as usize;
    (word != 0 && n >= 8 && n.is_multiple_of(8) && n <= slot_bytes_max && n <= room).then_some(n)
}

impl Drop for MapView {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; the slices `published` and `slot` hand out borrow `self` and so end before this.
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

    fn scratch(tag: &str, len: u64) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("bourse-sys-{tag}-{}-{len}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(len).unwrap();
        (path, file)
    }

    /// A slot of `len` bytes whose word (stored last) is non-zero and carries the length in its upper half.
    fn store_slot(writer: &Mmap, offset: usize, len: usize, fill: u8) {
        writer.write(offset + 8, &vec![fill; len - 8]);
        writer.store_u64_release(offset, ((len as u64) << 32) | 0xdead_beef);
    }

    #[test]
    fn a_view_lends_a_slot_once_the_writer_stored_its_word_and_nothing_beyond() {
        let (path, file) = scratch("lends", 4096);
        let (writer, _) = Mmap::map_shared(&file, 4096, false).unwrap();
        writer.write(0, &[9u8; 64]);
        let view = MapView::map(&file, 4096, 64).unwrap();
        assert_eq!(view.published(0, 4096, 128), &[9u8; 64][..], "the prefix is readable from the start");
        assert_eq!(view.slot(64, 128), Slot::Unpublished, "nothing published yet");
        writer.write(72, &[7u8; 56]);
        assert_eq!(view.slot(64, 128), Slot::Unpublished, "a body without its word is not lent");
        writer.store_u64_release(64, (64u64 << 32) | 0xdead_beef);
        match view.slot(64, 128) {
            Slot::Published(bytes) => assert_eq!((bytes.len(), &bytes[8..]), (64, &[7u8; 56][..])),
            other => panic!("{other:?}"),
        }
        store_slot(&writer, 128, 128, 5);
        writer.write(256 + 8, &[3u8; 56]);
        assert_eq!(view.published(64, 4096, 128).len(), 192, "up to the slot without its word");
        assert_eq!(view.published(64, 100, 128).len(), 36, "no further than asked");
        assert_eq!(view.slot(256, 128), Slot::Unpublished);
        assert_eq!(view.slot(320, 128), Slot::Unpublished, "beyond where the walk stops");
        // Past the published end, bytes are only copied out.
        let mut out = [0u8; 59];
        view.read(257, &mut out);
        assert_eq!(out[..7], [0u8; 7][..]);
        assert_eq!(out[7..], [3u8; 52][..]);
        assert_eq!(view.nonzero_end(256), 320);
        assert_eq!(view.nonzero_end(320), 320, "all zero from there");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_word_that_names_no_slot_stops_the_walk_and_is_not_lent() {
        let (path, file) = scratch("malformed", 4096);
        let (writer, _) = Mmap::map_shared(&file, 4096, false).unwrap();
        store_slot(&writer, 0, 64, 1);
        let words = [
            (0xdead_beef, "length zero"),
            ((256u64 << 32) | 1, "over the largest slot"),
            ((68u64 << 32) | 1, "not a multiple of 8"),
        ];
        for (word, why) in words {
            writer.store_u64_release(64, word);
            let view = MapView::map(&file, 4096, 0).unwrap();
            assert_eq!(view.slot(64, 128), Slot::Malformed, "{why}");
            assert_eq!(view.published(0, 4096, 128).len(), 64, "{why}");
        }
        // The last slot may end at the mapping's end, no further.
        writer.store_u64_release(64, 0);
        store_slot(&writer, 4096 - 64, 64, 2);
        let view = MapView::map(&file, 4096, 4096 - 64).unwrap();
        assert!(matches!(view.slot(4096 - 64, 128), Slot::Published(b) if b.len() == 64));
        assert_eq!(view.slot(4096, 128), Slot::Unpublished, "past the end");
        writer.store_u64_release(4096 - 64, (128u64 << 32) | 1);
        let view = MapView::map(&file, 4096, 4096 - 64).unwrap();
        assert_eq!(view.slot(4096 - 64, 128), Slot::Malformed, "a slot past the end");
        std::fs::remove_file(path).unwrap();
    }
}
