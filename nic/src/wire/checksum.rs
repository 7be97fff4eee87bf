//! The Internet checksum (RFC 1071) used by IPv4 and UDP.
//!
//! Sums are kept in a `u32` accumulator of 16-bit big-endian words and folded at the end, so a checksum can be
//! built from pieces (pseudo-header, header, payload) without copying them together.

use std::net::Ipv4Addr;

/// Adds `data` to a running one's-complement sum. Odd lengths are padded with a zero byte, as RFC 768 says.
#[inline]
pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        // Fold early so that even a 64 KiB datagram cannot overflow the accumulator.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

/// Folds a running sum into the final 16-bit one's-complement checksum.
#[inline]
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of one contiguous buffer.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// Running sum of the IPv4 pseudo-header that UDP's checksum covers (RFC 768).
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum = sum.wrapping_add(u32::from(protocol));
    sum.wrapping_add(u32::from(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example in RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is !0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(accumulate(0, &bytes)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), !0x1200);
    }
}
