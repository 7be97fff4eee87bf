//! The order-entry session layer's transport state: pure logic, no sockets and no clocks (time is passed in).
//!
//! Inbound, a firm sends UDP datagrams holding SoupBinTCP packets; [`Sessions::on_packet`] turns each packet
//! into an [`Outcome`]: a login (accepted or rejected), a heartbeat, a logout, an OUCH message for an
//! authenticated session, a MoldUDP64 re-request, or a drop with a typed reason that is also counted.
//! Outbound, [`Sessions::heartbeats_due`] names the sessions owed a Server Heartbeat and [`Sessions::expire`]
//! the ones whose client fell silent, with the time passed in, so tests drive both explicitly.
//!
//! What a firm can observe of its session beyond the login — its outbound sequence numbers, the replies kept for
//! re-requests, which UserRefNums it has used up — is derived from the journal and lives in the appliance's
//! replicated state machine, not here: this layer holds only what a restart or failover may forget (which source
//! a session is logged in from, when it was last heard).
//!
//! Rules, in the order they are applied:
//! * A Login Request is accepted only when the username is configured, the password matches (both compared
//!   without regard to case, SoupBinTCP 3.00 section 2.3.1), the source address is one of that firm's allowed
//!   sources, and the Requested Session is blank (the current one) or the firm's own session name. **A failed
//!   login is answered with Login Rejected** (section 2.2.2): reason 'A' (not authorised) for an unknown user,
//!   a wrong password or a source the firm may not use, reason 'S' (session not available) for a Requested
//!   Session that is not the firm's or a session logged in elsewhere. Every rejection is counted by reason
//!   ([`DropReason`]) and by the code sent. With [`SessionLimits::silent_to_unlisted_sources`], a login from an
//!   address that is in no firm's allowed sources is not answered at all (counted the same, and as silent), so
//!   a scanner outside the cross-connect learns nothing.
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
    /// Login whose Requested Session is neither blank nor the firm's own session name.
    NoSuchSession,
}

impl DropReason {
    pub const COUNT: usize = 10;
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
        DropReason::NoSuchSession,
    ];

    /// The SoupBinTCP Login Rejected reason code a failed login of this reason is answered with (section 2.2.2),
    /// `None` for reasons that are not login failures.
    pub fn login_reject_code(self) -> Option<u8> {
        match self {
            DropReason::UnknownUser | DropReason::BadPassword | DropReason::SourceNotAllowed => {
                Some(soup::reject_code::NOT_AUTHORIZED)
            }
            DropReason::SessionInUse | DropReason::NoSuchSession => Some(soup::reject_code::SESSION_NOT_AVAILABLE),
            _ => None,
        }
    }
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
    /// Answer with a SoupBinTCP Login Rejected carrying `code` ([`Sessions::emit_login_rejected`]); the login
    /// failed for `reason` (already counted).
    LoginRejected {
        reason: DropReason,
        code: u8,
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
    /// Login Rejected sent with reason 'A' (not authorised).
    pub login_rejected_not_authorized: u64,
    /// Login Rejected sent with reason 'S' (session not available).
    pub login_rejected_session_unavailable: u64,
    /// Failed logins from addresses in no firm's allowed sources, not answered (silent mode).
    pub login_rejects_silent: u64,
    /// Server Heartbeats owed to idle sessions (each one is sent).
    pub server_heartbeats: u64,
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
    /// When the session was last sent anything (a reply, a Login Accepted, a heartbeat).
    last_sent_ns: u64,
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

/// Compares without an early exit so response timing does not reveal how much of a password matched, and
/// without regard to case (SoupBinTCP 3.00 section 2.3.1: "Both Username and Password are case-insensitive").
fn same_secret<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x.to_ascii_uppercase() ^ y.to_ascii_uppercase()))
        == 0
}

/// What a Server Heartbeat is on the wire: SoupBinTCP 3.00 section 2.2.4, length 1, type 'H'.
pub const SERVER_HEARTBEAT: [u8; 3] = [0, 1, soup::packet_type::SERVER_HEARTBEAT];

/// The notice sent to a session logged out for client silence: a SoupBinTCP Debug Packet (section 2.1, free
/// human-readable text that client software ignores). SoupBinTCP over TCP tells a client it was logged out by
/// closing the socket (section 1.3); UDP has no socket to close, and End of Session 'Z' would be wrong: it says
/// the session is finished and cannot be logged into again (section 2.2.5), while this one can, with replay.
pub const IDLE_LOGOUT_NOTICE: &[u8] = b"\x00\x40+logged out: nothing received for the idle timeout; log in again";
const _: () = assert!(IDLE_LOGOUT_NOTICE.len() == 2 + 0x40, "the Debug Packet's length field counts type + text");

impl Sessions {
    pub fn new(firms: &[FirmConfig], limits: SessionLimits) -> Sessions {
        let states = firms
            .iter()
            .map(|f| State { firm: f.clone(), bound: None, last_heard_ns: 0, last_sent_ns: 0 })
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
            return match self.login(src, &l, now_ns) {
                Ok(o) => o,
                Err(reason) => self.reject_login(src, reason),
            };
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

    /// Counts a failed login and says whether to answer it (with the code for its reason) or stay silent.
    fn reject_login(&mut self, src: SocketAddrV4, reason: DropReason) -> Outcome {
        self.counters.drops[reason as usize] += 1;
        let listed = self.states.iter().any(|s| s.firm.sources.iter().any(|a| a.matches(src)));
        let code = match reason.login_reject_code() {
            Some(code) if listed || !self.limits.silent_to_unlisted_sources => code,
            _ => {
                self.counters.login_rejects_silent += 1;
                return Outcome::Drop(reason);
            }
        };
        if code == soup::reject_code::NOT_AUTHORIZED {
            self.counters.login_rejected_not_authorized += 1;
        } else {
            self.counters.login_rejected_session_unavailable += 1;
        }
        Outcome::LoginRejected { reason, code }
    }

    fn login(&mut self, src: SocketAddrV4, l: &soup::LoginRequest, now_ns: u64) -> Result<Outcome, DropReason> {
        let i = self
            .states
            .iter()
            .position(|s| s.firm.username.0.eq_ignore_ascii_case(&l.username.0))
            .ok_or(DropReason::UnknownUser)?;
        if !same_secret(&self.states[i].firm.password.0, &l.password.0) {
            return Err(DropReason::BadPassword);
        }
        if !self.states[i].firm.sources.iter().any(|a| a.matches(src)) {
            return Err(DropReason::SourceNotAllowed);
        }
        // Section 2.3.1: the Requested Session names the session to log into, or is blank for the current one.
        // A firm has one session, named by its outbound stream.
        if l.session != bourse_nic::wire::alpha::SessionName::BLANK && l.session != self.states[i].firm.session_name
        {
            return Err(DropReason::NoSuchSession);
        }
        if matches!(self.states[i].bound, Some(live) if live != src) {
            return Err(DropReason::SessionInUse);
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
        s.last_sent_ns = now_ns;
        self.counters.logins += 1;
        Ok(Outcome::LoginAccepted { session: s.firm.session, requested_sequence: l.sequence })
    }

    /// Logs out every session silent for longer than the idle timeout, calling `f` with each one and the address
    /// it was logged in from (the caller sends it [`IDLE_LOGOUT_NOTICE`]); returns how many.
    pub fn expire(&mut self, now_ns: u64, f: &mut impl FnMut(SessionId, SocketAddrV4)) -> usize {
        let mut n = 0;
        for s in self.states.iter_mut() {
            let Some(peer) = s.bound else { continue };
            if now_ns.saturating_sub(s.last_heard_ns) > self.limits.idle_timeout_ns {
                s.bound = None;
                n += 1;
                f(s.firm.session, peer);
            }
        }
        self.counters.idle_logouts += n as u64;
        n
    }

    /// Calls `f` with every logged-in session that has been sent nothing for the heartbeat interval, and the
    /// address it is logged in from, and counts it as sent to now: the caller sends it [`SERVER_HEARTBEAT`].
    /// Returns how many.
    pub fn heartbeats_due(&mut self, now_ns: u64, f: &mut impl FnMut(SessionId, SocketAddrV4)) -> usize {
        let mut n = 0;
        for s in self.states.iter_mut() {
            let Some(peer) = s.bound else { continue };
            if now_ns.saturating_sub(s.last_sent_ns) >= self.limits.heartbeat_interval_ns {
                s.last_sent_ns = now_ns;
                n += 1;
                f(s.firm.session, peer);
            }
        }
        self.counters.server_heartbeats += n as u64;
        n
    }

    /// Records that `session` was sent something at `now_ns` (it owes no heartbeat for another interval).
    pub fn note_sent(&mut self, session: SessionId, now_ns: u64) {
        if let Some(s) = self.states.iter_mut().find(|s| s.firm.session == session) {
            s.last_sent_ns = s.last_sent_ns.max(now_ns);
        }
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

    /// Writes the SoupBinTCP Login Rejected answering `Outcome::LoginRejected`; returns its length.
    pub fn emit_login_rejected(code: u8, buf: &mut [u8]) -> Result<usize, OutboundError> {
        Ok(soup::Repr::LoginRejected(code).emit(buf)?)
    }
}

#[cfg(test)]
mod tests;
