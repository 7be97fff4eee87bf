//! Big-endian field access shared by every format.
//!
//! All Nasdaq formats and the IP family are big-endian. These helpers index the buffer directly; callers
//! guarantee the range is in bounds by validating the length once (`check_len`), which is the contract that
//! makes every accessor panic-free.

#[inline(always)]
pub fn get_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_be_bytes(a)
}

#[inline(always)]
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

#[inline(always)]
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// ITCH timestamps are 6 bytes: nanoseconds since midnight.
#[inline(always)]
pub fn get_u48(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a[2..].copy_from_slice(&b[at..at + 6]);
    u64::from_be_bytes(a)
}

#[inline(always)]
pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Writes the low 48 bits; the caller keeps timestamps below 2^48 ns (about 78 hours, far beyond one day).
#[inline(always)]
pub fn put_u48(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 6].copy_from_slice(&v.to_be_bytes()[2..]);
}

#[inline(always)]
pub fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

#[inline(always)]
pub fn put_array<const N: usize>(b: &mut [u8], at: usize, v: &[u8; N]) {
    b[at..at + N].copy_from_slice(v);
}
