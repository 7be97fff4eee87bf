//! Wire formats, one module each, in the smoltcp manner.
//!
//! Each format is a view plus a meaning. The view (`Packet<T: AsRef<[u8]>>` or a per-message view) wraps a byte
//! slice; its `new_checked` validates lengths once, and after that every getter and setter is panic-free because
//! field offsets come from the module's `field` table and lie inside the checked length. The meaning is a plain
//! `Copy` struct (`Repr` or one per message) with `parse` (view → struct, validating values), `emit` (struct →
//! bytes in a caller buffer) and `buffer_len`. No function in `wire` allocates.
//!
//! * [`ethernet`], [`ipv4`], [`udp`], [`arp`] — what the raw backends need; [`frame`] classifies a received
//!   frame in one pass and builds transmit headers and ARP replies.
//! * [`soup`] — SoupBinTCP 4.x packet framing, carried in UDP datagrams for inbound order entry.
//! * [`ouch`] — OUCH 5.0 inbound and outbound messages.
//! * [`itch`] — TotalView-ITCH 5.0 market data messages.
//! * [`moldudp64`] — MoldUDP64 1.0 downstream packets, request packets and a no-allocation packer.

pub mod alpha;
pub mod arp;
pub mod be;
pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod itch;
pub mod moldudp64;
pub mod ouch;
pub mod soup;
pub mod udp;

pub use error::{Error, Result};
