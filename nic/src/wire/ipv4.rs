//! IPv4 headers (RFC 791) with header checksum verification and computation.
//!
//! ```text
//!  0       4       8               16      19                      32
//! +-------+-------+---------------+-------------------------------+
//! |version|  IHL  |   DSCP/ECN    |         total length          |
//! +-------+-------+---------------+-----+-------------------------+
//! |        identification         |flags|     fragment offset     |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   protocol    |        header checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        source address                         |
//! |                      destination address                      |
//! |                    options (IHL > 5) …                        |
//! ```
//!
//! We never reassemble: a fragment is dropped by the classifier (order entry datagrams are far below any MTU).

use std::net::Ipv4Addr;

use super::be::{get_array, get_u16, put_array, put_u16};
use super::checksum;
use super::error::{need, room, Error, Result};

const FORMAT: &str = "ipv4";

pub mod protocol {
    pub const UDP: u8 = 17;
}

pub mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Default TTL for what we send: the peers are on the same segment, but routers in between must not drop it.
pub const TTL_DEFAULT: u8 = 64;

const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet. After [`Packet::new_checked`], no accessor panics and
/// [`Packet::payload`] is exactly `total_len - header_len` bytes (Ethernet padding is cut off).
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

    /// Checks that the fixed header, the options (IHL) and the whole datagram (total length) are present.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need(FORMAT, len, HEADER_LEN)?;
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::BadLength {
                format: FORMAT,
                len: header_len,
                what: "IHL below 5 words",
            });
        }
        let total = usize::from(self.total_len());
        if total < header_len {
            return Err(Error::BadLength {
                format: FORMAT,
                len: total,
                what: "total length below header length",
            });
        }
        need(FORMAT, len, total)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn more_fragments(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MORE_FRAGMENTS != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// A header whose checksum field is correct sums (with the field included) to zero.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_ihl(&mut self, version: u8, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    pub fn set_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets Don't Fragment and clears More Fragments and the offset: we only ever send whole datagrams.
    pub fn set_dont_fragment(&mut self) {
        put_u16(self.buffer.as_mut(), field::FLAGS_FRAG, FLAG_DONT_FRAGMENT);
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        put_array(self.buffer.as_mut(), field::SRC_ADDR, &a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        put_array(self.buffer.as_mut(), field::DST_ADDR, &a.octets());
    }

    /// Computes the header checksum over the header as it stands and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
}

/// The meaning of an IPv4 header as far as we use it (no options, no fragments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
}

impl Repr {
    /// Accepts only whole (unfragmented) version-4 datagrams with a correct header checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::InvalidField {
                format: FORMAT,
                field: "version",
            });
        }
        if !p.verify_checksum() {
            return Err(Error::Checksum { format: FORMAT });
        }
        if p.more_fragments() || p.frag_offset() != 0 {
            return Err(Error::InvalidField {
                format: FORMAT,
                field: "fragment",
            });
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (no options, DF set, given identification) with its checksum.
    pub fn emit(&self, buf: &mut [u8], ident: u16) -> Result<()> {
        room(FORMAT, buf.len(), HEADER_LEN)?;
        let total = HEADER_LEN + self.payload_len;
        let total = u16::try_from(total).map_err(|_| Error::BadLength {
            format: FORMAT,
            len: total,
            what: "datagram above 65535 bytes",
        })?;
        let mut p = Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version_ihl(4, HEADER_LEN);
        p.set_dscp_ecn(0);
        p.set_total_len(total);
        p.set_ident(ident);
        p.set_dont_fragment();
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A textbook header: 192.168.0.1 → 192.168.0.199, UDP, total length 0x73, DF, TTL 64, checksum 0xb861.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet() -> [u8; 0x73] {
        let mut b = [0u8; 0x73];
        b[..20].copy_from_slice(&HEADER);
        b
    }

    #[test]
    fn test_parse() {
        let b = packet();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(r.protocol, protocol::UDP);
        assert_eq!(r.payload_len, 0x73 - 20);
        assert_eq!(r.ttl, 64);
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xa5u8; 22];
        let r = Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: protocol::UDP,
            payload_len: 0x73 - 20,
            ttl: 64,
        };
        r.emit(&mut buf, 0).unwrap();
        assert_eq!(&buf[..20], &HEADER);
        assert_eq!(&buf[20..], &[0xa5, 0xa5]);
    }

    #[test]
    fn bad_checksum_and_lengths() {
        let mut b = packet();
        b[11] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::Checksum { format: FORMAT })
        );
        let b = packet();
        assert!(
            Packet::new_checked(&b[..0x72]).is_err(),
            "total length beyond the buffer"
        );
        let mut b = packet();
        b[0] = 0x44;
        assert!(Packet::new_checked(&b[..]).is_err(), "IHL below 5");
    }

    #[test]
    fn fragments_refused() {
        let mut b = packet();
        b[6] = 0x20; // More Fragments
        b[7] = 0;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Packet::new_unchecked(&b[..]);
        assert!(matches!(
            Repr::parse(&p),
            Err(Error::InvalidField {
                field: "fragment",
                ..
            })
        ));
    }
}
