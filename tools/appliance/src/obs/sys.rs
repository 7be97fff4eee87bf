//! The only unsafe code of the observability module: the time-stamp counter instructions, `clock_gettime`, and
//! the shared-memory mapping of the stats block. Everything above this module is safe Rust.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// Reads the time-stamp counter without any ordering: the cheapest timestamp, which the CPU may execute before
/// earlier instructions have finished. Good for stage stamps taken between whole pieces of work.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads a register; every x86_64 CPU has it, and it touches no memory.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// Reads the time-stamp counter after all earlier instructions have executed (`lfence` first), so the stamp is not
/// hoisted above the work it is meant to follow.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn lfence_rdtsc() -> u64 {
    // SAFETY: `lfence` and `rdtsc` are present on every x86_64 CPU (SSE2 is part of the base ISA) and touch no
    // memory.
    unsafe {
        std::arch::x86_64::_mm_lfence();
        std::arch::x86_64::_rdtsc()
    }
}

/// Reads the time-stamp counter with `rdtscp`, which waits for earlier instructions; the caller must have checked
/// that the CPU has `rdtscp` (see [`has_rdtscp`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn rdtscp() -> u64 {
    let mut aux = 0u32;
    // SAFETY: the instruction writes the processor id into `aux`, a valid local, and touches no other memory. The
    // one caller (`bench clock`) checks `has_rdtscp()` first; on a CPU without it the instruction would fault with
    // #UD, stopping the process rather than corrupting it.
    unsafe { std::arch::x86_64::__rdtscp(&mut aux) }
}

/// Whether the CPU implements `rdtscp` (CPUID leaf 0x8000_0001, EDX bit 27).
#[cfg(target_arch = "x86_64")]
// `__cpuid` became a safe function in newer compilers; the block stays for the workspace's minimum Rust version.
#[allow(unused_unsafe)]
pub fn has_rdtscp() -> bool {
    // SAFETY: `cpuid` is available on every x86_64 CPU; leaf 0x8000_0000 reports the highest extended leaf, which
    // we check before asking for 0x8000_0001.
    unsafe {
        let max = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        max >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 27) != 0
    }
}

/// Reads a POSIX clock in nanoseconds.
#[inline]
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clocks we pass (MONOTONIC, MONOTONIC_COARSE, REALTIME)
    // exist on every Linux kernel, so the call cannot fail.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A shared file mapping, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len_bytes: usize,
}

// SAFETY: the mapping belongs to the process and this value owns it; any thread may use it or unmap it.
unsafe impl Send for Mapping {}
// SAFETY: `&self` hands out only `as_ref`, whose types are made of atomics (`AtomicPod`), so threads sharing the
// mapping access it only atomically.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len_bytes` of `file` shared, writable when `writable`, read-only otherwise.
    pub fn map(file: &File, len_bytes: usize, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) of a file we hold open; the result is checked
        // against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len_bytes,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len_bytes })
    }

    /// The mapping viewed as a `T`.
    ///
    /// `T` must be a type for which every bit pattern (including all zeroes) is valid and whose fields are all
    /// atomics, because other processes write the memory concurrently; the stats block is such a type.
    pub fn as_ref<T: AtomicPod>(&self) -> &T {
        assert!(
            std::mem::size_of::<T>() <= self.len_bytes,
            "mapping smaller than the type laid over it"
        );
        assert!(
            (self.ptr.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()),
            "mapping misaligned"
        );
        // SAFETY: the mapping is page-aligned (checked against T's alignment above), at least size_of::<T>() long
        // (checked above), lives as long as `self`, and T (by the AtomicPod contract) is valid for any bytes and
        // only ever accessed through atomics, so concurrent writers in other processes are not data races. A
        // read-only mapping is laid under the stats block only, whose public methods only load, and only with
        // relaxed ordering (see statsblock.rs), the one kind of access Rust allows on read-only memory.
        unsafe { &*self.ptr.as_ptr().cast::<T>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len_bytes` describe a mapping we created and nobody else unmaps; every reference handed out
        // by `as_ref` borrows `self`, so none outlives this call.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len_bytes);
        }
    }
}

/// Marker for `#[repr(C)]` types made only of atomics, valid for any bit pattern.
///
/// # Safety
/// Implement only for `#[repr(C)]` types whose every field is an atomic integer (or an array of them).
pub unsafe trait AtomicPod: Sync {}

// SAFETY: StatsBlock is #[repr(C)] and made only of AtomicU64 words and arrays of them; all-zero and any other bit
// pattern is a valid value.
unsafe impl AtomicPod for super::statsblock::StatsBlock {}
