//! # bourse-nic
//!
//! Wire codecs and packet backends. The order-entry session layer built on them (logins, sequencing,
//! heartbeats) is `bourse_appliance::session`.
//!
//! * [`wire`] — zero-copy views over byte slices, one module per format, in the smoltcp manner: a view type
//!   `Packet<T: AsRef<[u8]>>` whose `new_checked` validates lengths once, after which getters never panic; plain
//!   `Copy` structs with `parse`/`emit` for the meaning. Nothing in `wire` allocates.
//! * [`backend`] — packet I/O: DPDK, AF_XDP, io_uring and plain sockets behind one burst trait.
//! * [`ring`] — handing fixed-size values from one pinned thread to another, back-pressure as a value.
#![deny(unsafe_code)]

pub mod backend;
pub mod ring;
pub mod wire;
