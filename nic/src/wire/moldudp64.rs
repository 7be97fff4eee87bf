//! MoldUDP64 1.0 (Nasdaq "MoldUDP64 Protocol Specification", version 1.00).
//!
//! Downstream packet (section 2, "Downstream Packets"):
//!
//! ```text
//!  0                    10                          18            20
//! +--------------------+---------------------------+-------------+----------------------------- …
//! | session (10 alpha) | sequence number (u64) of  | message     | message blocks:
//! |                    | the first message         | count (u16) |   length (u16) | message …
//! +--------------------+---------------------------+-------------+----------------------------- …
//! ```
//!
//! A count of 0 is a heartbeat (the sequence number is the next one expected); 0xFFFF marks the end of the
//! session. Request packet (section 3, "Request Packets"), sent by a listener to the re-request server: session
//! (10), sequence number (u64), requested message count (u16) — 20 bytes.

use super::alpha::{Alpha, SessionName};
use super::be::{get_array, get_u16, get_u64, put_array, put_u16, put_u64};
use super::error::{need, room, Error, Result};

const FORMAT: &str = "moldudp64";

pub mod field {
    pub const SESSION: usize = 0;
    pub const SEQUENCE: usize = 10;
    pub const COUNT: usize = 18;
    pub const BLOCKS: usize = 20;
}

pub const HEADER_LEN: usize = field::BLOCKS;
/// Length of a request packet.
pub const REQUEST_LEN: usize = 20;
/// Message count of an End of Session packet.
pub const COUNT_END_OF_SESSION: u16 = 0xffff;
/// Each message block is prefixed by its length.
pub const BLOCK_PREFIX_LEN: usize = 2;

/// A read/write view of a downstream packet. [`Packet::new_checked`] validates that the header and every
/// counted message block lie inside the buffer, so [`Packet::messages`] never fails afterwards.
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

    /// Checks the header and walks the blocks; trailing bytes after the counted blocks are refused because a
    /// sender that miscounts would otherwise lose messages silently.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        need(FORMAT, b.len(), HEADER_LEN)?;
        let count = self.count();
        let blocks = if count == COUNT_END_OF_SESSION {
            0
        } else {
            usize::from(count)
        };
        let mut at = HEADER_LEN;
        for _ in 0..blocks {
            need(FORMAT, b.len(), at + BLOCK_PREFIX_LEN)?;
            let len = usize::from(get_u16(b, at));
            at += BLOCK_PREFIX_LEN;
            need(FORMAT, b.len(), at + len)?;
            at += len;
        }
        if at != b.len() {
            return Err(Error::BadLength {
                format: FORMAT,
                len: b.len(),
                what: "bytes after the counted blocks",
            });
        }
        Ok(())
    }

    pub fn session(&self) -> SessionName {
        Alpha(get_array(self.buffer.as_ref(), field::SESSION))
    }

    pub fn sequence(&self) -> u64 {
        get_u64(self.buffer.as_ref(), field::SEQUENCE)
    }

    pub fn count(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::COUNT)
    }

    pub fn is_heartbeat(&self) -> bool {
        self.count() == 0
    }

    pub fn is_end_of_session(&self) -> bool {
        self.count() == COUNT_END_OF_SESSION
    }

    /// The message blocks in order. Call only on a checked packet; on an unchecked one it stops at the first
    /// block that does not fit.
    pub fn messages(&self) -> Messages<'_> {
        let remaining = if self.is_end_of_session() {
            0
        } else {
            self.count()
        };
        Messages {
            buf: self.buffer.as_ref(),
            at: HEADER_LEN,
            remaining,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_session(&mut self, s: &SessionName) {
        put_array(self.buffer.as_mut(), field::SESSION, &s.0);
    }
    pub fn set_sequence(&mut self, v: u64) {
        put_u64(self.buffer.as_mut(), field::SEQUENCE, v);
    }
    pub fn set_count(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::COUNT, v);
    }
}

/// Iterator over the message blocks of a packet.
pub struct Messages<'a> {
    buf: &'a [u8],
    at: usize,
    remaining: u16,
}

impl<'a> Iterator for Messages<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 || self.at + BLOCK_PREFIX_LEN > self.buf.len() {
            return None;
        }
        let len = usize::from(get_u16(self.buf, self.at));
        let start = self.at + BLOCK_PREFIX_LEN;
        let msg = self.buf.get(start..start + len)?;
        self.at = start + len;
        self.remaining -= 1;
        Some(msg)
    }
}

/// The meaning of a downstream packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub session: SessionName,
    pub sequence: u64,
    pub count: u16,
}

impl Header {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Header> {
        p.check_len()?;
        Ok(Header {
            session: p.session(),
            sequence: p.sequence(),
            count: p.count(),
        })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        room(FORMAT, buf.len(), HEADER_LEN)?;
        let mut p = Packet::new_unchecked(buf);
        p.set_session(&self.session);
        p.set_sequence(self.sequence);
        p.set_count(self.count);
        Ok(())
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
}

/// A request packet (section 3): "send me `count` messages from `sequence` of `session`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub session: SessionName,
    pub sequence: u64,
    pub count: u16,
}

impl Request {
    /// A request packet is exactly 20 bytes.
    pub fn parse(buf: &[u8]) -> Result<Request> {
        need("moldudp64 request", buf.len(), REQUEST_LEN)?;
        if buf.len() != REQUEST_LEN {
            return Err(Error::BadLength {
                format: "moldudp64 request",
                len: buf.len(),
                what: "not 20 bytes",
            });
        }
        Ok(Request {
            session: Alpha(get_array(buf, 0)),
            sequence: get_u64(buf, 10),
            count: get_u16(buf, 18),
        })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        room("moldudp64 request", buf.len(), REQUEST_LEN)?;
        put_array(buf, 0, &self.session.0);
        put_u64(buf, 10, self.sequence);
        put_u16(buf, 18, self.count);
        Ok(REQUEST_LEN)
    }

    pub const fn buffer_len(&self) -> usize {
        REQUEST_LEN
    }
}

/// Why a message was not added to the packet being packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The message does not fit in what is left of the datagram: flush and retry in a new packet.
    #[error("message does not fit in the remaining {remaining_bytes} bytes of the datagram")]
    Full { remaining_bytes: usize },
    /// The message can never fit, even alone in an empty datagram of the configured MTU.
    #[error("message of {len} bytes exceeds the largest message a datagram can carry")]
    TooLarge { len: usize },
}

/// Fills one MoldUDP64 downstream packet in a caller-provided buffer, up to `mtu_bytes` (the UDP payload limit),
/// without allocating. Typical use: `begin(seq)`, `push`/`push_with` until `Full`, `finish()` → send, repeat.
pub struct Packer<'b> {
    buf: &'b mut [u8],
    session: SessionName,
    limit: usize,
    len: usize,
    count: u16,
    first_sequence: u64,
}

impl<'b> Packer<'b> {
    /// `mtu_bytes` is the largest datagram payload to produce; the buffer must hold at least the header.
    pub fn new(buf: &'b mut [u8], session: SessionName, mtu_bytes: usize) -> Result<Packer<'b>> {
        let limit = mtu_bytes.min(buf.len());
        room(FORMAT, limit, HEADER_LEN)?;
        Ok(Packer {
            buf,
            session,
            limit,
            len: HEADER_LEN,
            count: 0,
            first_sequence: 0,
        })
    }

    /// Starts a new packet whose first message will carry `sequence`.
    pub fn begin(&mut self, sequence: u64) {
        self.len = HEADER_LEN;
        self.count = 0;
        self.first_sequence = sequence;
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sequence number the next pushed message will have.
    pub fn next_sequence(&self) -> u64 {
        self.first_sequence + u64::from(self.count)
    }

    pub fn remaining_bytes(&self) -> usize {
        self.limit - self.len
    }

    /// Appends one message, copying it.
    pub fn push(&mut self, msg: &[u8]) -> core::result::Result<(), PackError> {
        self.push_with(msg.len(), |b| b.copy_from_slice(msg))
    }

    /// Appends one message of `len` bytes written in place by `fill` (no intermediate copy).
    pub fn push_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> core::result::Result<(), PackError> {
        if len > usize::from(u16::MAX) || HEADER_LEN + BLOCK_PREFIX_LEN + len > self.limit {
            return Err(PackError::TooLarge { len });
        }
        // 0xFFFF is reserved for End of Session, so a packet carries at most 0xFFFE messages.
        if BLOCK_PREFIX_LEN + len > self.remaining_bytes() || self.count == COUNT_END_OF_SESSION - 1
        {
            return Err(PackError::Full {
                remaining_bytes: self.remaining_bytes(),
            });
        }
        put_u16(self.buf, self.len, len as u16);
        let start = self.len + BLOCK_PREFIX_LEN;
        fill(&mut self.buf[start..start + len]);
        self.len = start + len;
        self.count += 1;
        Ok(())
    }

    /// Writes the header and returns the finished packet; a packet with no messages is a heartbeat.
    pub fn finish(&mut self) -> &[u8] {
        let h = Header {
            session: self.session,
            sequence: self.first_sequence,
            count: self.count,
        };
        // The constructor checked that the buffer holds a header.
        let _ = h.emit(self.buf);
        &self.buf[..self.len]
    }

    /// Writes an End of Session packet (count 0xFFFF) with `next_sequence` and returns it.
    pub fn end_of_session(&mut self, next_sequence: u64) -> &[u8] {
        let h = Header {
            session: self.session,
            sequence: next_sequence,
            count: COUNT_END_OF_SESSION,
        };
        let _ = h.emit(self.buf);
        self.len = HEADER_LEN;
        self.count = 0;
        &self.buf[..HEADER_LEN]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionName {
        SessionName::new("BOURSE01").unwrap()
    }

    /// Two messages "ab" and "xyz" starting at sequence 5, written by hand.
    const PACKET: [u8; 29] = [
        b'B', b'O', b'U', b'R', b'S', b'E', b'0', b'1', b' ', b' ', // @0 session
        0, 0, 0, 0, 0, 0, 0, 5, // @10 sequence
        0, 2, // @18 count
        0, 2, b'a', b'b', // block 1
        0, 3, b'x', b'y', b'z', // block 2
    ];

    #[test]
    fn test_parse() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        let h = Header::parse(&p).unwrap();
        assert_eq!(
            h,
            Header {
                session: session(),
                sequence: 5,
                count: 2
            }
        );
        let msgs: Vec<&[u8]> = p.messages().collect();
        assert_eq!(msgs, vec![&b"ab"[..], &b"xyz"[..]]);
    }

    #[test]
    fn packer_matches_fixture_and_respects_mtu() {
        let mut buf = [0xa5u8; 64];
        let mut pk = Packer::new(&mut buf, session(), 29).unwrap();
        pk.begin(5);
        pk.push(b"ab").unwrap();
        pk.push_with(3, |b| b.copy_from_slice(b"xyz")).unwrap();
        assert_eq!(pk.push(b""), Err(PackError::Full { remaining_bytes: 0 }));
        assert_eq!(pk.next_sequence(), 7);
        assert_eq!(pk.finish(), &PACKET[..]);
        assert!(buf[29..].iter().all(|b| *b == 0xa5));
        let mut buf = [0u8; 64];
        let mut pk = Packer::new(&mut buf, session(), 30).unwrap();
        assert_eq!(pk.push(&[0u8; 9]), Err(PackError::TooLarge { len: 9 }));
        assert!(Packer::new(&mut [0u8; 19], session(), 1500).is_err());
    }

    #[test]
    fn heartbeat_and_end_of_session() {
        let mut buf = [0u8; 64];
        let mut pk = Packer::new(&mut buf, session(), 1500).unwrap();
        pk.begin(42);
        let hb = pk.finish().to_vec();
        let mut expected = PACKET[..20].to_vec();
        expected[17] = 42;
        expected[19] = 0;
        assert_eq!(hb, expected);
        assert!(Packet::new_checked(&hb[..]).unwrap().is_heartbeat());
        let eos = pk.end_of_session(42).to_vec();
        expected[18] = 0xff;
        expected[19] = 0xff;
        assert_eq!(eos, expected);
        let p = Packet::new_checked(&eos[..]).unwrap();
        assert!(p.is_end_of_session());
        assert_eq!(p.messages().count(), 0);
    }

    #[test]
    fn refuses_bad_blocks() {
        assert!(
            Packet::new_checked(&PACKET[..28]).is_err(),
            "truncated block"
        );
        assert!(
            Packet::new_checked(&PACKET[..19]).is_err(),
            "truncated header"
        );
        let mut long = PACKET.to_vec();
        long.push(0);
        assert!(Packet::new_checked(&long[..]).is_err(), "trailing byte");
        let mut b = PACKET;
        b[19] = 3;
        assert!(Packet::new_checked(&b[..]).is_err(), "count beyond blocks");
    }

    #[test]
    fn request_packet() {
        let bytes: [u8; 20] = [
            b'B', b'O', b'U', b'R', b'S', b'E', b'0', b'1', b' ', b' ', 0, 0, 0, 0, 0, 0, 0x01,
            0x00, 0, 10,
        ];
        let r = Request::parse(&bytes).unwrap();
        assert_eq!(
            r,
            Request {
                session: session(),
                sequence: 256,
                count: 10
            }
        );
        let mut out = [0xa5u8; 22];
        assert_eq!(r.emit(&mut out).unwrap(), 20);
        assert_eq!(&out[..20], &bytes);
        assert_eq!(&out[20..], &[0xa5, 0xa5]);
        assert!(Request::parse(&bytes[..19]).is_err());
        assert!(Request::parse(&[0u8; 21]).is_err());
    }
}
