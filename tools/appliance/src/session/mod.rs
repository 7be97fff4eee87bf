//! The order-entry session layer's transport state: pure logic, no sockets and no clocks (time is passed in).
//!
//! Inbound, a firm sends UDP datagrams holding SoupBinTCP packets; [`Sessions::on_packet`] turns each packet
//! into an [`Outcome`]: a login, a heartbeat, a logout, an OUCH message for an authenticated session, a
//! MoldUDP64 re-request, or a drop with a typed reason that is also counted.
//!
//! What a firm can observe of its session beyond the login — its outbound sequence numbers, the replies kept for
//! re-requests, which UserRefNums it has used up — is derived from the journal and lives in the appliance's
//! replicated state machine, not here: this layer holds only what a restart or failover may forget (which source
//! a session is logged in from, when it was last heard).
//!
//! Rules, in the order they are applied:
//! * A Login Request is accepted only when the username is configured, the password matches, and the source
//!   address is one of that firm's allowed sources. **Failed logins and unknown sources are dropped and counted,
//!   never answered** (DESIGN §9: a Login Rejected would tell a scanner which usernames and addresses exist).
//!   A successful login binds the session to the exact source address (IPv4 and port) it came from.
//!   **A session is live from one source at a time**: a login for a session that is logged in from another
//!   source is refused and counted ([`DropReason::SessionInUse`]), so a captured login replayed from another
//!   port cannot take the session over. A firm moves its session by logging out first, or after the idle
//!   timeout has logged it out.
//! * Every other packet is looked up by source address among logged-in sessions; no match → dropped.
//! * A 20-byte datagram whose first 10 bytes are the logged-in session's MoldUDP64 session name is a MoldUDP64
//!   request packet (a SoupBinTCP packet that long cannot start with two printable bytes: its length field would
//!   exceed the datagram): [`Sessions::request`].
//!
//! Everything is allocated in [`Sessions::new`]; nothing allocates afterwards.

pub mod config;

use std::net::SocketAddrV4;

use bourse_nic::wire::moldudp64;
use bourse_nic::wire::{ouch, soup};
pub use config::{AllowedSource, FirmConfig, SessionLimits};

/// Engine session id.
pub type SessionId = u16;

/// Why a packet was dropped without reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// SoupBinTCP framing broken (truncated, bad length, unknown packet type).
    Malformed,
    /// Login with a username no firm has.
    UnknownUser,
    /// Login with a known username and the wrong password.
    BadPassword,
    /// Login with good credentials from an address the firm may not use.
    SourceNotAllowed,
    /// Anything but a login from an address with no logged-in session.
    NotLoggedIn,
    /// Unsequenced Data that is not a valid OUCH inbound message.
    BadOuch,
    /// A packet type only the server sends (Login Accepted, Sequenced Data …) or a Debug packet.
    UnexpectedPacket,
    /// MoldUDP64 request naming another session.
    BadRequest,
    /// Login for a session that is logged in from another source (a takeover attempt, or a firm that moved
    /// without logging out).
    SessionInUse,
}

impl DropReason {
    pub const COUNT: usize = 9;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::UnknownUser,
        DropReason::BadPassword,
        DropReason::SourceNotAllowed,
        DropReason::NotLoggedIn,
        DropReason::BadOuch,
        DropReason::UnexpectedPacket,
        DropReason::BadRequest,
        DropReason::SessionInUse,
    ];
}

/// What one inbound packet means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with a SoupBinTCP Login Accepted ([`Sessions::emit_login_accepted`] writes it) and send the
    /// session's replies from `requested_sequence` on (0: from the next one).
    LoginAccepted {
        session: SessionId,
        requested_sequence: u64,
    },
    Heartbeat {
        session: SessionId,
    },
    Logout {
        session: SessionId,
    },
    /// An OUCH message from a logged-in session, to check (UserRefNum), translate and sequence.
    Ouch {
        session: SessionId,
        account: u32,
        message: ouch::Inbound,
    },
    /// An Enter Order whose Side is outside the spec's set: it does not parse, but it is answered with Rejected
    /// Invalid Side (OUCH 5.0 section 2.1, Appendix C 0x0009) like any refused order.
    OuchInvalidSide {
        session: SessionId,
        user_ref: u32,
        cl_ord_id: bourse_nic::wire::alpha::ClOrdId,
    },
    /// A MoldUDP64 request packet for this session's outbound stream.
    Retransmit {
        session: SessionId,
        request: moldudp64::Request,
    },
    Drop(DropReason),
}

/// Counters, plain integers owned by the pipeline core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    pub drops: [u64; DropReason::COUNT],
    pub logins: u64,
    pub logouts: u64,
    pub messages: u64,
    pub idle_logouts: u64,
}

impl SessionCounters {
    pub fn drops_for(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
}

struct State {
    firm: FirmConfig,
    bound: Option<SocketAddrV4>,
    last_heard_ns: u64,
}

/// All order-entry sessions. Sessions are found by linear scan: a venue has tens of firms per appliance, and a
/// scan of a few cache lines beats hashing at that size.
pub struct Sessions {
    states: Vec<State>,
    limits: SessionLimits,
    counters: SessionCounters,
}

/// Errors from the outbound side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("no session {0}")]
    UnknownSession(SessionId),
    #[error(transparent)]
    Wire(#[from] bourse_nic::wire::Error),
}

/// Compares without an early exit so response timing does not reveal how much of a password matched.
fn same_secret<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Sessions {
    pub fn new(firms: &[FirmConfig], limits: SessionLimits) -> Sessions {
        let states = firms
            .iter()
            .map(|f| State { firm: f.clone(), bound: None, last_heard_ns: 0 })
            .collect();
        Sessions {
            states,
            limits,
            counters: SessionCounters::default(),
        }
    }

    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    fn drop(&mut self, r: DropReason) -> Outcome {
        self.counters.drops[r as usize] += 1;
        Outcome::Drop(r)
    }

    /// Handles one datagram from `src`, calling `f` once per SoupBinTCP packet (or once for a request packet).
    /// Every packet of the datagram is handled, however many it holds.
    pub fn on_datagram(
        &mut self,
        src: SocketAddrV4,
        datagram: &[u8],
        now_ns: u64,
        f: &mut impl FnMut(Outcome),
    ) {
        if let Some(o) = self.request(src, datagram, now_ns) {
            f(o);
            return;
        }
        for p in soup::Packets::new(datagram) {
            let o = self.on_packet(src, p, now_ns);
            f(o);
        }
    }

    /// The outcome of a datagram that is a MoldUDP64 request packet for the session logged in from `src`, or
    /// `None` when it is not one (then it holds SoupBinTCP packets: [`Sessions::on_packet`] each of
    /// `soup::Packets::new(datagram)`).
    pub fn request(&mut self, src: SocketAddrV4, datagram: &[u8], now_ns: u64) -> Option<Outcome> {
        if datagram.len() != moldudp64::REQUEST_LEN {
            return None;
        }
        let i = self.bound_index(src)?;
        if datagram[..10] != self.states[i].firm.session_name.0 {
            return None;
        }
        Some(match moldudp64::Request::parse(datagram) {
            Ok(request) => {
                self.states[i].last_heard_ns = now_ns;
                Outcome::Retransmit { session: self.states[i].firm.session, request }
            }
            Err(_) => self.drop(DropReason::BadRequest),
        })
    }

    fn bound_index(&self, src: SocketAddrV4) -> Option<usize> {
        self.states.iter().position(|s| s.bound == Some(src))
    }

    /// The outcome of one SoupBinTCP packet (or framing error) from `src`.
    pub fn on_packet(
        &mut self,
        src: SocketAddrV4,
        p: Result<soup::Repr<'_>, bourse_nic::wire::Error>,
        now_ns: u64,
    ) -> Outcome {
        let Ok(p) = p else {
            return self.drop(DropReason::Malformed);
        };
        if let soup::Repr::LoginRequest(l) = p {
            return self.login(src, &l, now_ns);
        }
        let Some(i) = self.bound_index(src) else {
            return self.drop(DropReason::NotLoggedIn);
        };
        self.states[i].last_heard_ns = now_ns;
        let session = self.states[i].firm.session;
        match p {
            soup::Repr::ClientHeartbeat => Outcome::Heartbeat { session },
            soup::Repr::LogoutRequest => {
                self.states[i].bound = None;
                self.counters.logouts += 1;
                Outcome::Logout { session }
            }
            soup::Repr::UnsequencedData(bytes) => match ouch::Inbound::parse(bytes) {
                Ok(message) => {
                    self.counters.messages += 1;
                    Outcome::Ouch { session, account: self.states[i].firm.account, message }
                }
                Err(_) => match ouch::enter_with_invalid_side(bytes) {
                    Some((user_ref, cl_ord_id)) => {
                        self.counters.messages += 1;
                        Outcome::OuchInvalidSide { session, user_ref, cl_ord_id }
                    }
                    None => self.drop(DropReason::BadOuch),
                },
            },
            _ => self.drop(DropReason::UnexpectedPacket),
        }
    }

    fn login(&mut self, src: SocketAddrV4, l: &soup::LoginRequest, now_ns: u64) -> Outcome {
        let Some(i) = self
            .states
            .iter()
            .position(|s| s.firm.username == l.username)
        else {
            return self.drop(DropReason::UnknownUser);
        };
        if !same_secret(&self.states[i].firm.password.0, &l.password.0) {
            return self.drop(DropReason::BadPassword);
        }
        if !self.states[i].firm.sources.iter().any(|a| a.matches(src)) {
            return self.drop(DropReason::SourceNotAllowed);
        }
        if matches!(self.states[i].bound, Some(live) if live != src) {
            return self.drop(DropReason::SessionInUse);
        }
        // A source address belongs to one session at a time: a firm logging in again from an address another
        // of its sessions holds takes the address over.
        for s in self.states.iter_mut() {
            if s.bound == Some(src) {
                s.bound = None;
            }
        }
        let s = &mut self.states[i];
        s.bound = Some(src);
        s.last_heard_ns = now_ns;
        self.counters.logins += 1;
        Outcome::LoginAccepted { session: s.firm.session, requested_sequence: l.sequence }
    }

    /// Logs out every session silent for longer than the idle timeout; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let mut n = 0;
        for s in self.states.iter_mut() {
            if s.bound.is_some()
                && now_ns.saturating_sub(s.last_heard_ns) > self.limits.idle_timeout_ns
            {
                s.bound = None;
                n += 1;
            }
        }
        self.counters.idle_logouts += n as u64;
        n
    }

    /// The address a session is logged in from (where its replies go).
    pub fn peer(&self, session: SessionId) -> Option<SocketAddrV4> {
        self.states
            .iter()
            .find(|s| s.firm.session == session)
            .and_then(|s| s.bound)
    }

    /// The MoldUDP64 session name of `session`'s outbound stream.
    pub fn session_name(&self, session: SessionId) -> Option<bourse_nic::wire::alpha::SessionName> {
        self.states.iter().find(|s| s.firm.session == session).map(|s| s.firm.session_name)
    }

    /// Writes the SoupBinTCP Login Accepted answering `Outcome::LoginAccepted`, naming `sequence` as the next
    /// message the firm will receive; returns its length.
    pub fn emit_login_accepted(
        &self,
        session: SessionId,
        sequence: u64,
        buf: &mut [u8],
    ) -> Result<usize, OutboundError> {
        let name = self.session_name(session).ok_or(OutboundError::UnknownSession(session))?;
        let r = soup::Repr::LoginAccepted(soup::LoginAccepted { session: name, sequence });
        Ok(r.emit(buf)?)
    }
}

#[cfg(test)]
mod tests;
