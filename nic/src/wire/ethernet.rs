//! Ethernet II frames (IEEE 802.3 with an EtherType), without the FCS, which NICs strip and append.
//!
//! ```text
//!  0                   6                   12      14
//! +-------------------+-------------------+-------+--------------
//! | destination MAC   | source MAC        | type  | payload …
//! +-------------------+-------------------+-------+--------------
//! ```

use super::be::{get_array, get_u16, put_array, put_u16};
use super::error::{need, room, Result};

const FORMAT: &str = "ethernet";

/// A 48-bit MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    pub const BROADCAST: Address = Address([0xff; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

/// EtherType values we act on; anything else is dropped by the classifier.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
}

pub mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Header length in bytes.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Smallest frame on the wire without FCS; shorter frames are padded by whoever transmits.
pub const FRAME_MIN_BYTES: usize = 60;

/// A read/write view of an Ethernet II frame. After [`Frame::new_checked`], no accessor panics.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<()> {
        need(FORMAT, self.buffer.as_ref().len(), HEADER_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> Address {
        Address(get_array(self.buffer.as_ref(), field::DESTINATION.start))
    }

    pub fn src_addr(&self) -> Address {
        Address(get_array(self.buffer.as_ref(), field::SOURCE.start))
    }

    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, a: Address) {
        put_array(self.buffer.as_mut(), field::DESTINATION.start, &a.0);
    }

    pub fn set_src_addr(&mut self, a: Address) {
        put_array(self.buffer.as_mut(), field::SOURCE.start, &a.0);
    }

    pub fn set_ethertype(&mut self, t: u16) {
        put_u16(self.buffer.as_mut(), field::ETHERTYPE.start, t);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The meaning of an Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        room(FORMAT, buf.len(), HEADER_LEN)?;
        let mut f = Frame::new_unchecked(buf);
        f.set_dst_addr(self.dst_addr);
        f.set_src_addr(self.src_addr);
        f.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 16] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb,
    ];

    #[test]
    fn test_parse() {
        let f = Frame::new_checked(&BYTES[..]).unwrap();
        let r = Repr::parse(&f).unwrap();
        assert_eq!(r.dst_addr, Address([1, 2, 3, 4, 5, 6]));
        assert_eq!(r.src_addr, Address([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        assert_eq!(r.ethertype, ethertype::IPV4);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xa5u8; 16];
        let r = Repr {
            dst_addr: Address([1, 2, 3, 4, 5, 6]),
            src_addr: Address([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]),
            ethertype: ethertype::IPV4,
        };
        r.emit(&mut buf).unwrap();
        assert_eq!(&buf[..14], &BYTES[..14]);
        assert_eq!(&buf[14..], &[0xa5, 0xa5], "emit wrote past the header");
    }

    #[test]
    fn truncated() {
        assert!(Frame::new_checked(&BYTES[..13]).is_err());
        assert!(Repr {
            src_addr: Address::default(),
            dst_addr: Address::default(),
            ethertype: 0
        }
        .emit(&mut [0u8; 13])
        .is_err());
    }
}
