//! SoupBinTCP 3.00 packet framing (Nasdaq "SoupBinTCP Version 3.00", section 1.1 "SoupBinTCP Logical Packets" and
//! section 2 "SoupBinTCP Packet Types"), carried in UDP datagrams for order entry.
//!
//! ```text
//!  0               2      3
//! +---------------+------+-------------------------------+
//! | packet length | type | payload (length - 1 bytes)    |   … repeated: a datagram may carry several
//! | (u16, counts  |      |                               |
//! |  type+payload)|      |                               |
//! +---------------+------+-------------------------------+
//! ```
//!
//! Alpha fields are left-justified and space padded; numeric fields (the sequence numbers in Login Request and
//! Login Accepted) are ASCII digits, right-justified and padded on the left with spaces (sections 2.2.1, 2.3.1).

use super::alpha::{Alpha, SessionName};
use super::be::{get_array, get_u16, put_array, put_u16};
use super::error::{need, room, Error, Result};

const FORMAT: &str = "soup";

pub mod field {
    pub const LENGTH: usize = 0;
    pub const TYPE: usize = 2;
    pub const PAYLOAD: usize = 3;

    /// Login Request 'L' payload offsets (section 2.3.1), relative to the packet start.
    pub mod login_request {
        pub const USERNAME: usize = 3;
        pub const PASSWORD: usize = 9;
        pub const SESSION: usize = 19;
        pub const SEQUENCE: usize = 29;
        pub const END: usize = 49;
    }
    /// Login Accepted 'A' (section 2.2.1).
    pub mod login_accepted {
        pub const SESSION: usize = 3;
        pub const SEQUENCE: usize = 13;
        pub const END: usize = 33;
    }
    /// Login Rejected 'J' (section 2.2.2).
    pub mod login_rejected {
        pub const REASON: usize = 3;
        pub const END: usize = 4;
    }
}

/// Length prefix plus type byte.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Width of the ASCII sequence number fields.
pub const SEQUENCE_DIGITS: usize = 20;

pub mod packet_type {
    pub const DEBUG: u8 = b'+';
    pub const LOGIN_ACCEPTED: u8 = b'A';
    pub const LOGIN_REJECTED: u8 = b'J';
    pub const SEQUENCED_DATA: u8 = b'S';
    pub const SERVER_HEARTBEAT: u8 = b'H';
    pub const END_OF_SESSION: u8 = b'Z';
    pub const LOGIN_REQUEST: u8 = b'L';
    pub const UNSEQUENCED_DATA: u8 = b'U';
    pub const CLIENT_HEARTBEAT: u8 = b'R';
    pub const LOGOUT_REQUEST: u8 = b'O';
}

/// Login Rejected reason codes (section 2.2.2).
pub mod reject_code {
    pub const NOT_AUTHORIZED: u8 = b'A';
    pub const SESSION_NOT_AVAILABLE: u8 = b'S';
}

/// A view of one SoupBinTCP packet. After [`Packet::new_checked`], the buffer holds at least the whole packet
/// the length field announces, and the accessors never panic.
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
        let b = self.buffer.as_ref();
        need(FORMAT, b.len(), HEADER_LEN)?;
        let len = usize::from(self.length());
        if len == 0 {
            return Err(Error::BadLength {
                format: FORMAT,
                len,
                what: "zero packet length",
            });
        }
        need(FORMAT, b.len(), field::TYPE + len)
    }

    /// The length field: type byte plus payload.
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Bytes this packet occupies, prefix included.
    pub fn total_len(&self) -> usize {
        field::TYPE + usize::from(self.length())
    }

    pub fn packet_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_length(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_packet_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
}

/// Login Request 'L' — SoupBinTCP 3.00 section 2.3.1: username (6), password (10), requested session (10,
/// blank = current), requested sequence number (20 ASCII digits, 0 = most recent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginRequest {
    pub username: Alpha<6>,
    pub password: Alpha<10>,
    pub session: SessionName,
    pub sequence: u64,
}

/// Login Accepted 'A' — section 2.2.1: session (10) and the sequence number of the next message (20 digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginAccepted {
    pub session: SessionName,
    pub sequence: u64,
}

/// One decoded SoupBinTCP packet; data payloads borrow the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    LoginRequest(LoginRequest),
    LoginAccepted(LoginAccepted),
    /// Login Rejected 'J' with its reason code ('A' not authorised, 'S' session not available).
    LoginRejected(u8),
    UnsequencedData(&'a [u8]),
    SequencedData(&'a [u8]),
    ClientHeartbeat,
    ServerHeartbeat,
    LogoutRequest,
    EndOfSession,
    Debug(&'a [u8]),
}

fn parse_sequence(digits: &[u8; SEQUENCE_DIGITS]) -> Result<u64> {
    let mut v: u64 = 0;
    let mut seen_digit = false;
    for &c in digits.iter() {
        match c {
            b' ' if !seen_digit => {}
            b'0'..=b'9' => {
                seen_digit = true;
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .ok_or(Error::InvalidField {
                        format: FORMAT,
                        field: "sequence number",
                    })?;
            }
            _ => {
                return Err(Error::InvalidField {
                    format: FORMAT,
                    field: "sequence number",
                })
            }
        }
    }
    Ok(v)
}

fn put_sequence(b: &mut [u8], at: usize, mut v: u64) {
    let f = &mut b[at..at + SEQUENCE_DIGITS];
    f.fill(b' ');
    let mut i = SEQUENCE_DIGITS;
    loop {
        i -= 1;
        f[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
}

fn exact(p: &Packet<&[u8]>, end: usize) -> Result<()> {
    if p.total_len() != end {
        return Err(Error::BadLength {
            format: FORMAT,
            len: p.total_len(),
            what: "wrong length for packet type",
        });
    }
    Ok(())
}

impl<'a> Repr<'a> {
    /// Decodes one checked packet. Fixed-size packet types must have exactly their length.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Repr<'a>> {
        p.check_len()?;
        let b: &'a [u8] = p.buffer;
        let payload = &b[field::PAYLOAD..p.total_len()];
        Ok(match p.packet_type() {
            packet_type::LOGIN_REQUEST => {
                use field::login_request as f;
                exact(p, f::END)?;
                Repr::LoginRequest(LoginRequest {
                    username: Alpha(get_array(b, f::USERNAME)),
                    password: Alpha(get_array(b, f::PASSWORD)),
                    session: Alpha(get_array(b, f::SESSION)),
                    sequence: parse_sequence(&get_array(b, f::SEQUENCE))?,
                })
            }
            packet_type::LOGIN_ACCEPTED => {
                use field::login_accepted as f;
                exact(p, f::END)?;
                Repr::LoginAccepted(LoginAccepted {
                    session: Alpha(get_array(b, f::SESSION)),
                    sequence: parse_sequence(&get_array(b, f::SEQUENCE))?,
                })
            }
            packet_type::LOGIN_REJECTED => {
                exact(p, field::login_rejected::END)?;
                Repr::LoginRejected(b[field::login_rejected::REASON])
            }
            packet_type::UNSEQUENCED_DATA => Repr::UnsequencedData(payload),
            packet_type::SEQUENCED_DATA => Repr::SequencedData(payload),
            packet_type::DEBUG => Repr::Debug(payload),
            t @ (packet_type::CLIENT_HEARTBEAT
            | packet_type::SERVER_HEARTBEAT
            | packet_type::LOGOUT_REQUEST
            | packet_type::END_OF_SESSION) => {
                exact(p, HEADER_LEN)?;
                match t {
                    packet_type::CLIENT_HEARTBEAT => Repr::ClientHeartbeat,
                    packet_type::SERVER_HEARTBEAT => Repr::ServerHeartbeat,
                    packet_type::LOGOUT_REQUEST => Repr::LogoutRequest,
                    _ => Repr::EndOfSession,
                }
            }
            code => {
                return Err(Error::UnknownType {
                    format: FORMAT,
                    code,
                })
            }
        })
    }

    pub fn packet_type(&self) -> u8 {
        match self {
            Repr::LoginRequest(_) => packet_type::LOGIN_REQUEST,
            Repr::LoginAccepted(_) => packet_type::LOGIN_ACCEPTED,
            Repr::LoginRejected(_) => packet_type::LOGIN_REJECTED,
            Repr::UnsequencedData(_) => packet_type::UNSEQUENCED_DATA,
            Repr::SequencedData(_) => packet_type::SEQUENCED_DATA,
            Repr::ClientHeartbeat => packet_type::CLIENT_HEARTBEAT,
            Repr::ServerHeartbeat => packet_type::SERVER_HEARTBEAT,
            Repr::LogoutRequest => packet_type::LOGOUT_REQUEST,
            Repr::EndOfSession => packet_type::END_OF_SESSION,
            Repr::Debug(_) => packet_type::DEBUG,
        }
    }

    /// Bytes the packet occupies, length prefix included.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::LoginRequest(_) => field::login_request::END,
            Repr::LoginAccepted(_) => field::login_accepted::END,
            Repr::LoginRejected(_) => field::login_rejected::END,
            Repr::UnsequencedData(d) | Repr::SequencedData(d) | Repr::Debug(d) => {
                HEADER_LEN + d.len()
            }
            _ => HEADER_LEN,
        }
    }

    /// Writes the packet at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        room(FORMAT, buf.len(), len)?;
        let wire_len = u16::try_from(len - field::TYPE).map_err(|_| Error::BadLength {
            format: FORMAT,
            len,
            what: "payload above 65534 bytes",
        })?;
        let b = &mut buf[..len];
        put_u16(b, field::LENGTH, wire_len);
        b[field::TYPE] = self.packet_type();
        match self {
            Repr::LoginRequest(l) => {
                use field::login_request as f;
                put_array(b, f::USERNAME, &l.username.0);
                put_array(b, f::PASSWORD, &l.password.0);
                put_array(b, f::SESSION, &l.session.0);
                put_sequence(b, f::SEQUENCE, l.sequence);
            }
            Repr::LoginAccepted(a) => {
                put_array(b, field::login_accepted::SESSION, &a.session.0);
                put_sequence(b, field::login_accepted::SEQUENCE, a.sequence);
            }
            Repr::LoginRejected(code) => b[field::login_rejected::REASON] = *code,
            Repr::UnsequencedData(d) | Repr::SequencedData(d) | Repr::Debug(d) => {
                b[HEADER_LEN..].copy_from_slice(d)
            }
            _ => {}
        }
        Ok(len)
    }
}

/// Writes an Unsequenced/Sequenced Data header for a `payload_len`-byte message the caller writes in place at
/// `buf[HEADER_LEN..]` (avoids a copy on the hot path). Returns the packet length.
pub fn emit_data_header(buf: &mut [u8], packet_type: u8, payload_len: usize) -> Result<usize> {
    let len = HEADER_LEN + payload_len;
    room(FORMAT, buf.len(), len)?;
    let wire_len = u16::try_from(1 + payload_len).map_err(|_| Error::BadLength {
        format: FORMAT,
        len,
        what: "payload above 65534 bytes",
    })?;
    put_u16(buf, field::LENGTH, wire_len);
    buf[field::TYPE] = packet_type;
    Ok(len)
}

/// Iterates over the SoupBinTCP packets of one datagram. Yields an error (once, then stops) when the rest of the
/// datagram is not a whole packet.
pub struct Packets<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Packets<'a> {
    pub fn new(datagram: &'a [u8]) -> Packets<'a> {
        Packets {
            buf: datagram,
            failed: false,
        }
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Repr<'a>>;
    fn next(&mut self) -> Option<Result<Repr<'a>>> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let p = match Packet::new_checked(self.buf) {
            Ok(p) => p,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let total = p.total_len();
        let (this, rest) = self.buf.split_at(total);
        self.buf = rest;
        let r = Repr::parse(&Packet::new_unchecked(this));
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_bytes() -> Vec<u8> {
        let mut v = vec![0, 47, b'L'];
        v.extend_from_slice(b"FIRM01"); // @3 username (6)
        v.extend_from_slice(b"secret    "); // @9 password (10)
        v.extend_from_slice(b"          "); // @19 session (10), blank = current
        v.extend_from_slice(b"                   1"); // @29 sequence (20), right-justified
        v
    }

    #[test]
    fn login_request_fixture() {
        let bytes = login_bytes();
        assert_eq!(bytes.len(), 49);
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        let expected = LoginRequest {
            username: Alpha(*b"FIRM01"),
            password: Alpha::new("secret").unwrap(),
            session: SessionName::BLANK,
            sequence: 1,
        };
        assert_eq!(r, Repr::LoginRequest(expected));
        let mut out = [0xa5u8; 51];
        assert_eq!(r.emit(&mut out).unwrap(), 49);
        assert_eq!(&out[..49], &bytes[..]);
        assert_eq!(&out[49..], &[0xa5, 0xa5]);
    }

    #[test]
    fn login_accepted_and_rejected_fixtures() {
        let mut acc = vec![0, 31, b'A'];
        acc.extend_from_slice(b"SESSION001");
        acc.extend_from_slice(b"                1234");
        let r = Repr::LoginAccepted(LoginAccepted {
            session: SessionName::new("SESSION001").unwrap(),
            sequence: 1234,
        });
        let mut out = [0xa5u8; 40];
        assert_eq!(r.emit(&mut out).unwrap(), 33);
        assert_eq!(&out[..33], &acc[..]);
        assert!(out[33..].iter().all(|b| *b == 0xa5));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&acc[..]).unwrap()).unwrap(),
            r
        );
        let rej = [0, 2, b'J', b'A'];
        let r = Repr::LoginRejected(reject_code::NOT_AUTHORIZED);
        assert_eq!(r.emit(&mut out).unwrap(), 4);
        assert_eq!(&out[..4], &rej);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&rej[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn several_packets_in_one_datagram() {
        let dgram = [
            0, 1, b'R', 0, 4, b'U', 1, 2, 3, 0, 3, b'S', 9, 9, 0, 1, b'O', 0, 1, b'H', 0, 1, b'Z',
        ];
        let all: Vec<Repr> = Packets::new(&dgram).map(|r| r.unwrap()).collect();
        assert_eq!(
            all,
            vec![
                Repr::ClientHeartbeat,
                Repr::UnsequencedData(&[1, 2, 3]),
                Repr::SequencedData(&[9, 9]),
                Repr::LogoutRequest,
                Repr::ServerHeartbeat,
                Repr::EndOfSession
            ]
        );
        let mut out = [0xa5u8; 8];
        assert_eq!(Repr::UnsequencedData(&[1, 2, 3]).emit(&mut out).unwrap(), 6);
        assert_eq!(&out[..6], &dgram[3..9]);
        assert_eq!(emit_data_header(&mut out, b'S', 2).unwrap(), 5);
        assert_eq!(&out[..3], &[0, 3, b'S']);
    }

    #[test]
    fn refuses_bad_framing() {
        assert!(matches!(
            Packets::new(&[0]).next(),
            Some(Err(Error::Truncated { .. }))
        ));
        assert!(matches!(
            Packets::new(&[0, 5, b'U', 1]).next(),
            Some(Err(Error::Truncated { .. }))
        ));
        assert!(matches!(
            Packets::new(&[0, 0, b'U']).next(),
            Some(Err(Error::BadLength { .. }))
        ));
        assert!(matches!(
            Packets::new(&[0, 1, b'q']).next(),
            Some(Err(Error::UnknownType { code: b'q', .. }))
        ));
        assert!(matches!(
            Packets::new(&[0, 2, b'R', 0]).next(),
            Some(Err(Error::BadLength { .. }))
        ));
        let mut bad_seq = login_bytes();
        bad_seq[40] = b'x';
        assert!(Packets::new(&bad_seq).next().unwrap().is_err());
        let mut it = Packets::new(&[0, 1, b'R', 0xff]);
        assert_eq!(it.next(), Some(Ok(Repr::ClientHeartbeat)));
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
