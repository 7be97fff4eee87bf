//! The order-entry session layer: pure logic, no sockets and no clocks (time is passed in).
//!
//! Inbound, a firm sends UDP datagrams holding SoupBinTCP packets; [`Sessions::on_datagram`] turns each packet
//! into an [`Outcome`]: a login, a heartbeat, a logout, an OUCH message for an authenticated session, a
//! retransmitted order ([`Outcome::Duplicate`]), a MoldUDP64 re-request, or a drop with a typed reason that is
//! also counted.
//!
//! Rules, in the order they are applied:
//! * A Login Request is accepted only when the username is configured, the password matches, and the source
//!   address is one of that firm's allowed sources. **Failed logins and unknown sources are dropped and counted,
//!   never answered** (DESIGN §9: a Login Rejected would tell a scanner which usernames and addresses exist).
//!   A successful login binds the session to the exact source address (IPv4 and port) it came from.
//! * Every other packet is looked up by source address among logged-in sessions; no match → dropped.
//! * OUCH Enter Order and Replace Order carry a new UserRefNum that must be strictly greater than the last one
//!   this session used. A repeated or lower one is a retransmission of something already seen and is never passed
//!   on: the outcome is `Duplicate { user_ref, reply_sequence }` where `reply_sequence` is the sequence number of
//!   the original reply if it is still in the per-session [`store::OutcomeRing`] (bound:
//!   `SessionLimits::outcomes_max` most recent UserRefNums), so the appliance can resend it. Cancel and Modify
//!   name an existing order by its UserRefNum and are passed on (repeating them is harmless: the engine answers
//!   an unknown or already-canceled order with a reject).
//! * A 20-byte datagram whose first 10 bytes are the logged-in session's MoldUDP64 session name is a MoldUDP64
//!   request packet (a SoupBinTCP packet that long cannot start with two printable bytes: its length field would
//!   exceed the datagram). [`Sessions::answer_request`] fills a downstream packet from the retransmission store.
//!
//! Outbound, [`Sessions::sequence_reply`] numbers each OUCH reply of a session (MoldUDP64 sequence, starting at 1)
//! and keeps a copy in the session's fixed [`store::RetransmitStore`]. Everything is allocated in
//! [`Sessions::new`]; nothing allocates afterwards.

pub mod config;
pub mod store;

use std::net::SocketAddrV4;

use crate::wire::moldudp64::{self, PackError, Packer};
use crate::wire::{ouch, soup};
pub use config::{AllowedSource, FirmConfig, SessionLimits};
use store::{MessageTooLarge, OutcomeRing, RetransmitStore};

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
}

impl DropReason {
    pub const COUNT: usize = 8;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::UnknownUser,
        DropReason::BadPassword,
        DropReason::SourceNotAllowed,
        DropReason::NotLoggedIn,
        DropReason::BadOuch,
        DropReason::UnexpectedPacket,
        DropReason::BadRequest,
    ];
}

/// What one inbound packet means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with a SoupBinTCP Login Accepted carrying `session_name` and `next_sequence`
    /// ([`Sessions::emit_login_accepted`] writes it).
    LoginAccepted {
        session: SessionId,
        next_sequence: u64,
    },
    Heartbeat {
        session: SessionId,
    },
    Logout {
        session: SessionId,
    },
    /// A new OUCH message to translate and sequence.
    Ouch {
        session: SessionId,
        account: u32,
        message: ouch::Inbound,
    },
    /// Retransmission of an order already seen: never execute it again. Resend `reply_sequence` if known.
    Duplicate {
        session: SessionId,
        user_ref: u32,
        reply_sequence: Option<u64>,
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
    pub duplicates: u64,
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
    last_user_ref: u32,
    last_heard_ns: u64,
    next_sequence: u64,
    outcomes: OutcomeRing,
    store: RetransmitStore,
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
    TooLarge(#[from] MessageTooLarge),
    #[error(transparent)]
    Wire(#[from] crate::wire::Error),
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
            .map(|f| State {
                firm: f.clone(),
                bound: None,
                last_user_ref: 0,
                last_heard_ns: 0,
                next_sequence: 1,
                outcomes: OutcomeRing::new(limits.outcomes_max),
                store: RetransmitStore::new(limits.retransmit_slots, limits.retransmit_slot_bytes),
            })
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

    fn by_session(&mut self, session: SessionId) -> Option<&mut State> {
        self.states.iter_mut().find(|s| s.firm.session == session)
    }

    fn drop(&mut self, r: DropReason) -> Outcome {
        self.counters.drops[r as usize] += 1;
        Outcome::Drop(r)
    }

    /// Handles one datagram from `src`, calling `f` once per SoupBinTCP packet (or once for a request packet).
    pub fn on_datagram(
        &mut self,
        src: SocketAddrV4,
        datagram: &[u8],
        now_ns: u64,
        f: &mut impl FnMut(Outcome),
    ) {
        if datagram.len() == moldudp64::REQUEST_LEN {
            if let Some(i) = self.bound_index(src) {
                if datagram[..10] == self.states[i].firm.session_name.0 {
                    let o = match moldudp64::Request::parse(datagram) {
                        Ok(request) => {
                            self.states[i].last_heard_ns = now_ns;
                            Outcome::Retransmit {
                                session: self.states[i].firm.session,
                                request,
                            }
                        }
                        Err(_) => self.drop(DropReason::BadRequest),
                    };
                    f(o);
                    return;
                }
            }
        }
        for p in soup::Packets::new(datagram) {
            let o = match p {
                Ok(p) => self.on_packet(src, p, now_ns),
                Err(_) => self.drop(DropReason::Malformed),
            };
            f(o);
        }
    }

    fn bound_index(&self, src: SocketAddrV4) -> Option<usize> {
        self.states.iter().position(|s| s.bound == Some(src))
    }

    fn on_packet(&mut self, src: SocketAddrV4, p: soup::Repr<'_>, now_ns: u64) -> Outcome {
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
                Ok(message) => self.on_ouch(i, message),
                Err(_) => self.drop(DropReason::BadOuch),
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
        Outcome::LoginAccepted {
            session: s.firm.session,
            next_sequence: s.next_sequence,
        }
    }

    fn on_ouch(&mut self, i: usize, message: ouch::Inbound) -> Outcome {
        let s = &mut self.states[i];
        let session = s.firm.session;
        let new_ref = match message {
            ouch::Inbound::EnterOrder(m) => Some(m.user_ref),
            ouch::Inbound::ReplaceOrder(m) => Some(m.user_ref),
            ouch::Inbound::CancelOrder(_) | ouch::Inbound::ModifyOrder(_) => None,
        };
        if let Some(user_ref) = new_ref {
            if user_ref <= s.last_user_ref {
                let reply_sequence = s.outcomes.lookup(user_ref);
                self.counters.duplicates += 1;
                return Outcome::Duplicate {
                    session,
                    user_ref,
                    reply_sequence,
                };
            }
            s.last_user_ref = user_ref;
        }
        self.counters.messages += 1;
        Outcome::Ouch {
            session,
            account: s.firm.account,
            message,
        }
    }

    /// Raises `session`'s last UserRefNum to `user_ref` if it is higher: an order the journal already holds (from
    /// before a restart, or from the primary this node took over from) is a duplicate if a firm sends it again,
    /// and is never executed twice. Unknown sessions are ignored.
    pub fn note_journaled(&mut self, session: SessionId, user_ref: u32) {
        if let Some(s) = self.states.iter_mut().find(|s| s.firm.session == session) {
            s.last_user_ref = s.last_user_ref.max(user_ref);
        }
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

    /// Writes the SoupBinTCP Login Accepted answering `Outcome::LoginAccepted`; returns its length.
    pub fn emit_login_accepted(
        &self,
        session: SessionId,
        buf: &mut [u8],
    ) -> Result<usize, OutboundError> {
        let s = self
            .states
            .iter()
            .find(|s| s.firm.session == session)
            .ok_or(OutboundError::UnknownSession(session))?;
        let r = soup::Repr::LoginAccepted(soup::LoginAccepted {
            session: s.firm.session_name,
            sequence: s.next_sequence,
        });
        Ok(r.emit(buf)?)
    }

    /// Assigns the next outbound sequence number to `msg` (one OUCH message) for `session`, keeps a copy for
    /// re-requests and returns the number. `first_reply_to` records the UserRefNum this message first answers,
    /// so a retransmitted order can be answered with it.
    pub fn sequence_reply(
        &mut self,
        session: SessionId,
        msg: &[u8],
        first_reply_to: Option<u32>,
    ) -> Result<u64, OutboundError> {
        let s = self
            .by_session(session)
            .ok_or(OutboundError::UnknownSession(session))?;
        let seq = s.next_sequence;
        s.store.put(seq, msg)?;
        if let Some(r) = first_reply_to {
            s.outcomes.record(r, seq);
        }
        s.next_sequence += 1;
        Ok(seq)
    }

    /// Fills `buf` (up to `mtu_bytes`) with one MoldUDP64 packet holding stored messages from `from_sequence`, at
    /// most `count`, stopping at the MTU or at the first message no longer retained. Returns the packet length;
    /// a packet with count 0 (a heartbeat carrying `from_sequence`) means nothing is retained from there.
    pub fn answer(
        &self,
        session: SessionId,
        from_sequence: u64,
        count: u16,
        buf: &mut [u8],
        mtu_bytes: usize,
    ) -> Result<usize, OutboundError> {
        let s = self
            .states
            .iter()
            .find(|s| s.firm.session == session)
            .ok_or(OutboundError::UnknownSession(session))?;
        let mut pk = Packer::new(buf, s.firm.session_name, mtu_bytes)?;
        pk.begin(from_sequence);
        for seq in from_sequence..from_sequence.saturating_add(u64::from(count)) {
            let Some(m) = s.store.get(seq) else { break };
            match pk.push(m) {
                Ok(()) => {}
                Err(PackError::Full { .. } | PackError::TooLarge { .. }) => break,
            }
        }
        Ok(pk.finish().len())
    }

    /// Answers a MoldUDP64 request packet (`Outcome::Retransmit`).
    pub fn answer_request(
        &self,
        session: SessionId,
        request: &moldudp64::Request,
        buf: &mut [u8],
        mtu_bytes: usize,
    ) -> Result<usize, OutboundError> {
        self.answer(session, request.sequence, request.count, buf, mtu_bytes)
    }

    /// Packs one freshly sequenced message into a MoldUDP64 packet for transmission.
    pub fn frame_reply(
        &self,
        session: SessionId,
        sequence: u64,
        buf: &mut [u8],
        mtu_bytes: usize,
    ) -> Result<usize, OutboundError> {
        self.answer(session, sequence, 1, buf, mtu_bytes)
    }
}

#[cfg(test)]
mod tests;
