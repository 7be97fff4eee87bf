//! UDP headers (RFC 768) with the IPv4 pseudo-header checksum.
//!
//! ```text
//!  0               16              32
//! +---------------+---------------+
//! |  source port  |   dest port   |
//! +---------------+---------------+
//! |    length     |   checksum    |
//! +---------------+---------------+
//! ```
//!
//! On receive a zero checksum means "not computed" and is accepted (RFC 768); on transmit we always compute it,
//! sending 0xffff where the sum is zero, because some peers' NICs leave it partial on veth (PLATFORM.md).

use std::net::Ipv4Addr;

use super::be::{get_u16, put_u16};
use super::checksum;
use super::error::{need, room, Error, Result};
use super::ipv4;

const FORMAT: &str = "udp";

pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of a UDP datagram. After [`Packet::new_checked`], no accessor panics and
/// [`Packet::payload`] is exactly the length field minus the header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need(FORMAT, len, HEADER_LEN)?;
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::BadLength {
                format: FORMAT,
                len: field_len,
                what: "length below header",
            });
        }
        need(FORMAT, len, field_len)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True when the checksum is absent (zero) or sums to zero over the pseudo-header and datagram.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let sum = checksum::pseudo_header(src, dst, ipv4::protocol::UDP, len);
        checksum::finish(checksum::accumulate(
            sum,
            &self.buffer.as_ref()[..usize::from(len)],
        )) == 0
    }

    /// Whether the checksum field holds only the folded pseudo-header sum: what a sender using checksum offload
    /// leaves for the NIC to finish, and what veth passes on as `CHECKSUM_PARTIAL` when no NIC ever does. Frames
    /// like that are accepted on receive; the Ethernet FCS and the IPv4 header checksum still cover the path.
    pub fn has_partial_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let sum = checksum::pseudo_header(src, dst, ipv4::protocol::UDP, self.len());
        self.checksum() == !checksum::finish(sum)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Computes the checksum over pseudo-header, header and payload; a zero result is sent as 0xffff because
    /// zero means "no checksum".
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::pseudo_header(src, dst, ipv4::protocol::UDP, len);
        let c = checksum::finish(checksum::accumulate(
            sum,
            &self.buffer.as_ref()[..usize::from(len)],
        ));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// The meaning of a UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Repr {
    /// Validates lengths and (when present) the checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum { format: FORMAT });
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header in front of the `payload_len` bytes already in `buf[HEADER_LEN..]` and fills the
    /// checksum over them.
    pub fn emit(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        let total = HEADER_LEN + payload_len;
        room(FORMAT, buf.len(), total)?;
        let len = u16::try_from(total).map_err(|_| Error::BadLength {
            format: FORMAT,
            len: total,
            what: "datagram above 65535 bytes",
        })?;
        let mut p = Packet::new_unchecked(&mut buf[..total]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    // 10.0.0.1:1234 → 10.0.0.2:5678, payload "hi!". Checksum by hand: pseudo-header words
    // 0a00+0001+0a00+0002+0011+000b = 0x141f; header 04d2+162e+000b = 0x1b0b; payload 6869+2100 = 0x8969;
    // total 0x141f+0x1b0b+0x8969 = 0xb893, complement = 0x476c.
    const BYTES: [u8; 11] = [
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0b, 0x47, 0x6c, b'h', b'i', b'!',
    ];

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        let r = Repr::parse(&p, SRC, DST).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 1234,
                dst_port: 5678
            }
        );
        assert_eq!(p.payload(), b"hi!");
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xa5u8; 13];
        buf[8..11].copy_from_slice(b"hi!");
        Repr {
            src_port: 1234,
            dst_port: 5678,
        }
        .emit(&mut buf, 3, SRC, DST)
        .unwrap();
        assert_eq!(&buf[..11], &BYTES);
        assert_eq!(&buf[11..], &[0xa5, 0xa5]);
    }

    #[test]
    fn zero_checksum_accepted_bad_refused() {
        let mut b = BYTES;
        b[6] = 0;
        b[7] = 0;
        assert!(Repr::parse(&Packet::new_unchecked(&b[..]), SRC, DST).is_ok());
        let mut b = BYTES;
        b[10] ^= 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..]), SRC, DST),
            Err(Error::Checksum { format: FORMAT })
        );
    }

    #[test]
    fn bad_lengths() {
        let mut b = BYTES;
        b[5] = 7;
        assert!(Packet::new_checked(&b[..]).is_err());
        let mut b = BYTES;
        b[5] = 12;
        assert!(Packet::new_checked(&b[..]).is_err());
    }
}
