//! Session configuration: firms, their credentials and allowed source addresses, and the preallocated bounds.

use std::net::{Ipv4Addr, SocketAddrV4};

use bourse_nic::wire::alpha::{Alpha, SessionName};

/// Where a firm may send from: one IPv4 address, and either one UDP port or any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedSource {
    pub ip: Ipv4Addr,
    /// `None` = any source port.
    pub port: Option<u16>,
}

impl AllowedSource {
    pub fn matches(&self, src: SocketAddrV4) -> bool {
        if *src.ip() != self.ip {
            return false;
        }
        match self.port {
            Some(p) => p == src.port(),
            None => true,
        }
    }
}

/// One firm's order-entry session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmConfig {
    /// SoupBinTCP username (6 bytes, space padded).
    pub username: Alpha<6>,
    /// SoupBinTCP password (10 bytes, space padded).
    pub password: Alpha<10>,
    pub sources: Vec<AllowedSource>,
    /// The engine's session id (dense, `0..sessions_max`).
    pub session: u16,
    /// The engine account this session trades for.
    pub account: u32,
    /// MoldUDP64 session name of this session's outbound stream.
    pub session_name: SessionName,
}

/// Limits and policies identical for every session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A logged-in session that sends nothing for this long is logged out by `expire` (SoupBinTCP 3.00 section
    /// 1.3: "typically 15 seconds").
    pub idle_timeout_ns: u64,
    /// A logged-in session that has been sent nothing for this long is sent a Server Heartbeat (SoupBinTCP 3.00
    /// sections 1.3 and 2.2.4: "anytime more than 1 second has past since the server last sent any data").
    pub heartbeat_interval_ns: u64,
    /// A failed login from a source address that is in no firm's `allowed_sources` gets no Login Rejected (it is
    /// still counted by reason). Every other failed login is answered (SoupBinTCP 3.00 section 2.2.2).
    pub silent_to_unlisted_sources: bool,
}

impl SessionLimits {
    pub const DEFAULT: SessionLimits = SessionLimits {
        idle_timeout_ns: 15_000_000_000,
        heartbeat_interval_ns: 1_000_000_000,
        silent_to_unlisted_sources: false,
    };
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
