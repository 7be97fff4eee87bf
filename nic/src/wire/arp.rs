//! ARP (RFC 826) for Ethernet and IPv4 only: the raw backends own the port, so they must answer "who has our
//! address" themselves or nobody will reach us.
//!
//! ```text
//!  0       2       4   5   6       8              14      18             24      28
//! +-------+-------+---+---+-------+--------------+-------+--------------+-------+
//! | htype | ptype |hln|pln|  oper | sender MAC   |sndr IP| target MAC   |tgt IP |
//! +-------+-------+---+---+-------+--------------+-------+--------------+-------+
//! ```

use std::net::Ipv4Addr;

use super::be::{get_array, get_u16, put_array, put_u16};
use super::error::{need, room, Error, Result};
use super::ethernet::{self, Address};

const FORMAT: &str = "arp";

pub mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::END;
const HTYPE_ETHERNET: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
}

impl Operation {
    fn code(self) -> u16 {
        match self {
            Operation::Request => 1,
            Operation::Reply => 2,
        }
    }
}

/// A read/write view of an ARP packet. After [`Packet::new_checked`], no accessor panics.
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

    /// Ethernet/IPv4 ARP has a fixed length, so this checks the full 28 bytes.
    pub fn check_len(&self) -> Result<()> {
        need(FORMAT, self.buffer.as_ref().len(), PACKET_LEN)
    }

    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    pub fn sender_hardware_addr(&self) -> Address {
        Address(get_array(self.buffer.as_ref(), field::SHA))
    }
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::SPA))
    }
    pub fn target_hardware_addr(&self) -> Address {
        Address(get_array(self.buffer.as_ref(), field::THA))
    }
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::HTYPE, v);
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::PTYPE, v);
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    pub fn set_operation(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::OPER, v);
    }
    pub fn set_sender_hardware_addr(&mut self, a: Address) {
        put_array(self.buffer.as_mut(), field::SHA, &a.0);
    }
    pub fn set_sender_protocol_addr(&mut self, a: Ipv4Addr) {
        put_array(self.buffer.as_mut(), field::SPA, &a.octets());
    }
    pub fn set_target_hardware_addr(&mut self, a: Address) {
        put_array(self.buffer.as_mut(), field::THA, &a.0);
    }
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        put_array(self.buffer.as_mut(), field::TPA, &a.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: Address,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: Address,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Accepts only Ethernet (1) / IPv4 (0x0800) with 6- and 4-byte addresses and operation 1 or 2.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.hardware_type() != HTYPE_ETHERNET || p.hardware_len() != 6 {
            return Err(Error::InvalidField {
                format: FORMAT,
                field: "hardware type",
            });
        }
        if p.protocol_type() != ethernet::ethertype::IPV4 || p.protocol_len() != 4 {
            return Err(Error::InvalidField {
                format: FORMAT,
                field: "protocol type",
            });
        }
        let operation = match p.operation() {
            1 => Operation::Request,
            2 => Operation::Reply,
            _ => {
                return Err(Error::InvalidField {
                    format: FORMAT,
                    field: "operation",
                })
            }
        };
        Ok(Repr {
            operation,
            source_hardware_addr: p.sender_hardware_addr(),
            source_protocol_addr: p.sender_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        room(FORMAT, buf.len(), PACKET_LEN)?;
        let mut p = Packet::new_unchecked(buf);
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(ethernet::ethertype::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation.code());
        p.set_sender_hardware_addr(self.source_hardware_addr);
        p.set_sender_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth, ipv4, 6, 4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // target
    ];

    #[test]
    fn test_parse() {
        let r = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.source_hardware_addr, Address([2, 0, 0, 0, 0, 1]));
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_hardware_addr, Address([0; 6]));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xa5u8; 30];
        let r = Repr::parse(&Packet::new_unchecked(&REQUEST[..])).unwrap();
        r.emit(&mut buf).unwrap();
        assert_eq!(&buf[..28], &REQUEST);
        assert_eq!(&buf[28..], &[0xa5, 0xa5]);
    }

    #[test]
    fn refuses_other_protocols() {
        let mut b = REQUEST;
        b[3] = 0xdd; // ptype 0x08dd
        assert!(Repr::parse(&Packet::new_unchecked(&b[..])).is_err());
        let mut b = REQUEST;
        b[7] = 3;
        assert!(Repr::parse(&Packet::new_unchecked(&b[..])).is_err());
        assert!(Packet::new_checked(&REQUEST[..27]).is_err());
    }
}
