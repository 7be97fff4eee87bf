//! The MoldUDP64 retransmission server for the market-data feed.
//!
//! A receiver that sees a gap in the feed sends a 20-byte request ("`count` messages of `session` from
//! `sequence`") to `[market_data] retransmit_bind`, and is answered with one downstream datagram holding as many
//! of those messages as fit. An answer is up to ~70 times the size of its request and UDP sources are trivially
//! spoofed, so an open server is an amplifier pointed at whoever the attacker names. This one therefore:
//!
//! ```text
//!   datagram ─▶ subscriber? ─▶ token? ─▶ 20 bytes? ─▶ our session? ─▶ asks for something? ─▶ sent yet?
//!                  │ no           │ no      │ no          │ no              │ no (count 0, seq 0)  │ no
//!           not_subscriber  rate_limited  malformed  bad_session       empty_request       beyond_feed
//!   ─▶ still kept? ─▶ send ─▶ answered (the count capped at what exists)
//!          │ no         │ error
//!       not_kept    send_failed
//! ```
//!
//! - answers only the configured subscribers (`retransmit_subscribers`; none configured means nobody),
//! - charges every subscriber request, well-formed or not, to a token bucket per subscriber entry
//!   (`retransmit_requests_per_s`, `retransmit_requests_burst`), so one entry is owed at most
//!   `requests_per_s × payload_max_bytes` bytes per second however its address is spoofed,
//! - caps every answer at `retransmit_messages_per_request_max` messages and one datagram of
//!   `payload_max_bytes`, whatever the request's count.
//!
//! Every request taken off the socket is either answered or counted by the reason it was not
//! ([`RetransmitCounters`]). The server is polled by the pipeline thread (the ring it answers from lives there):
//! it never blocks, allocates nothing after [`RetransmitServer::new`], and takes at most the requests it is
//! told to per call. Time comes in with each call, so the rate limit is tested without clocks.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};

use crate::session::AllowedSource;
use bourse_nic::wire::moldudp64::{Packet, Request, REQUEST_LEN};

use super::mdfeed::{MdFeed, Unanswered};

/// Receive buffer for one request: longer than a request, so an oversized datagram is seen (truncated) as
/// malformed rather than mistaken for a request.
const REQUEST_BUF_BYTES: usize = 64;
const _: () = assert!(REQUEST_BUF_BYTES > REQUEST_LEN);

/// One token, in the bucket's fixed-point unit (a request costs one token; `requests_per_s` tokens are added per
/// second, i.e. `requests_per_s` units per nanosecond).
const TOKEN_UNITS: u64 = 1_000_000_000;

/// The server's limits, from `[market_data]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitLimits {
    /// Messages in one answer at most.
    pub messages_per_request_max: u16,
    /// Bytes in one answer (its UDP payload) at most: the feed's `payload_max_bytes`.
    pub answer_bytes_max: usize,
    /// Requests per second each subscriber entry may have served, sustained.
    pub requests_per_s: u32,
    /// Requests each subscriber entry may have served at once after a quiet spell.
    pub requests_burst: u32,
}

impl RetransmitLimits {
    pub fn from_config(md: &crate::config::MarketDataSection) -> RetransmitLimits {
        RetransmitLimits {
            messages_per_request_max: md.retransmit_messages_per_request_max,
            answer_bytes_max: md.payload_max_bytes,
            requests_per_s: md.retransmit_requests_per_s,
            requests_burst: md.retransmit_requests_burst,
        }
    }
}

/// What the server did with the requests it took, for the stats exporter. Every request taken off the socket
/// adds one to exactly one of `answered`, `not_subscriber`, `rate_limited`, `malformed`, `bad_session`,
/// `empty_request`, `beyond_feed`, `not_kept` and `send_failed`; their sum is [`RetransmitCounters::requests`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetransmitCounters {
    /// Requests answered with a datagram of at least one message.
    pub answered: u64,
    /// Messages sent in answers.
    pub messages_sent: u64,
    /// Bytes (UDP payload) sent in answers.
    pub bytes_sent: u64,
    /// Requests from an address that is not a configured subscriber (dropped before anything else is looked at).
    pub not_subscriber: u64,
    /// Requests from a subscriber whose token bucket was empty.
    pub rate_limited: u64,
    /// Datagrams from a subscriber that are not a 20-byte MoldUDP64 request.
    pub malformed: u64,
    /// Requests naming another MoldUDP64 session.
    pub bad_session: u64,
    /// Requests for nothing: a count of 0, or sequence 0 (MoldUDP64 sequences start at 1).
    pub empty_request: u64,
    /// Requests starting after the last message transmitted (never answered: announcing a sequence that does
    /// not exist would make the receiver see a gap).
    pub beyond_feed: u64,
    /// Requests starting at a message no longer kept.
    pub not_kept: u64,
    /// Answers the socket refused (its send buffer full, or the destination unreachable).
    pub send_failed: u64,
}

impl RetransmitCounters {
    /// Requests taken off the socket.
    pub fn requests(&self) -> u64 {
        self.answered
            + self.not_subscriber
            + self.rate_limited
            + self.malformed
            + self.bad_session
            + self.empty_request
            + self.beyond_feed
            + self.not_kept
            + self.send_failed
    }
}

impl std::fmt::Display for RetransmitCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered ({} messages), refused: {} not subscriber, {} rate limited, {} malformed, {} bad session, \
             {} empty, {} beyond the feed, {} no longer kept, {} send failed",
            self.answered,
            self.messages_sent,
            self.not_subscriber,
            self.rate_limited,
            self.malformed,
            self.bad_session,
            self.empty_request,
            self.beyond_feed,
            self.not_kept,
            self.send_failed
        )
    }
}

/// A token bucket in fixed point: `units` is tokens × [`TOKEN_UNITS`].
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    units: u64,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket.
    fn full(limits: &RetransmitLimits, now_ns: u64) -> TokenBucket {
        TokenBucket { units: Self::capacity(limits), last_ns: now_ns }
    }

    fn capacity(limits: &RetransmitLimits) -> u64 {
        // u32::MAX × 10⁹ < u64::MAX: no overflow.
        u64::from(limits.requests_burst) * TOKEN_UNITS
    }

    /// Refills for the time since the last call, then takes one token if there is one.
    fn take(&mut self, limits: &RetransmitLimits, now_ns: u64) -> bool {
        let elapsed_ns = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let refill = elapsed_ns.saturating_mul(u64::from(limits.requests_per_s));
        self.units = self.units.saturating_add(refill).min(Self::capacity(limits));
        if self.units < TOKEN_UNITS {
            return false;
        }
        self.units -= TOKEN_UNITS;
        true
    }
}

/// The retransmission server: its socket, who it answers, its limits and what it did.
pub struct RetransmitServer {
    socket: UdpSocket,
    subscribers: Vec<AllowedSource>,
    /// One per subscriber entry, same index.
    buckets: Vec<TokenBucket>,
    limits: RetransmitLimits,
    request: [u8; REQUEST_BUF_BYTES],
    answer: Vec<u8>,
    /// Public so the stats exporter can read them; only the server writes them.
    pub counters: RetransmitCounters,
}

impl RetransmitServer {
    /// Binds the server on `addr` (non-blocking).
    pub fn bind(
        addr: SocketAddrV4,
        subscribers: Vec<AllowedSource>,
        limits: RetransmitLimits,
        now_ns: u64,
    ) -> io::Result<RetransmitServer> {
        RetransmitServer::new(UdpSocket::bind(addr)?, subscribers, limits, now_ns)
    }

    /// The server on an already bound socket, made non-blocking; every bucket starts full at `now_ns`.
    pub fn new(
        socket: UdpSocket,
        subscribers: Vec<AllowedSource>,
        limits: RetransmitLimits,
        now_ns: u64,
    ) -> io::Result<RetransmitServer> {
        assert!(limits.messages_per_request_max >= 1 && limits.requests_per_s >= 1 && limits.requests_burst >= 1);
        socket.set_nonblocking(true)?;
        let buckets = vec![TokenBucket::full(&limits, now_ns); subscribers.len()];
        Ok(RetransmitServer {
            socket,
            subscribers,
            buckets,
            limits,
            request: [0; REQUEST_BUF_BYTES],
            answer: vec![0; limits.answer_bytes_max],
            counters: RetransmitCounters::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn limits(&self) -> &RetransmitLimits {
        &self.limits
    }

    /// Takes at most `requests_max` waiting requests off the socket and answers those that pass, from `md`'s
    /// transmitted messages as `stored` returns them. Returns how many requests were taken (the work done).
    pub fn poll<'a>(
        &mut self,
        now_ns: u64,
        requests_max: usize,
        md: &MdFeed,
        stored: impl Fn(u64) -> Option<&'a [u8]>,
    ) -> usize {
        for taken in 0..requests_max {
            let (n, from) = match self.socket.recv_from(&mut self.request) {
                Ok(got) => got,
                // WouldBlock: nothing waiting. Any other error (a pending ICMP error reported on this socket,
                // an interrupted call) is retried on the next call rather than spun on here.
                Err(_) => return taken,
            };
            self.serve(now_ns, n, from, md, &stored);
        }
        requests_max
    }

    /// Serves (or counts) the `n`-byte datagram in `self.request` from `from`.
    fn serve<'a>(
        &mut self,
        now_ns: u64,
        n: usize,
        from: SocketAddr,
        md: &MdFeed,
        stored: &impl Fn(u64) -> Option<&'a [u8]>,
    ) {
        let c = &mut self.counters;
        let SocketAddr::V4(source) = from else {
            c.not_subscriber += 1;
            return;
        };
        let Some(entry) = self.subscribers.iter().position(|s| s.matches(source)) else {
            c.not_subscriber += 1;
            return;
        };
        if !self.buckets[entry].take(&self.limits, now_ns) {
            c.rate_limited += 1;
            return;
        }
        let Ok(request) = Request::parse(&self.request[..n]) else {
            c.malformed += 1;
            return;
        };
        if request.session != md.session() {
            c.bad_session += 1;
            return;
        }
        let capped = Request { count: request.count.min(self.limits.messages_per_request_max), ..request };
        let len = match md.answer(&capped, stored, &mut self.answer, self.limits.answer_bytes_max) {
            Ok(len) => len,
            Err(Unanswered::Empty) => return c.empty_request += 1,
            Err(Unanswered::BeyondFeed) => return c.beyond_feed += 1,
            Err(Unanswered::NotKept) => return c.not_kept += 1,
        };
        // The promise this module makes: one request, one datagram, never more than the configured size.
        assert!(len <= self.limits.answer_bytes_max);
        let count = Packet::new_checked(&self.answer[..len]).map_or(0, |p| p.count());
        assert!(count >= 1, "an answer always holds a message");
        assert!(count <= self.limits.messages_per_request_max);
        match self.socket.send_to(&self.answer[..len], source) {
            Ok(_) => {
                c.answered += 1;
                c.messages_sent += u64::from(count);
                c.bytes_sent += len as u64;
            }
            Err(_) => c.send_failed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use bourse_nic::wire::alpha::SessionName;

    const MSG: [u8; 36] = [0x5a; 36];
    const PUBLISHED: u64 = 1_000;

    fn limits() -> RetransmitLimits {
        RetransmitLimits { messages_per_request_max: 8, answer_bytes_max: 1_400, requests_per_s: 10, requests_burst: 3 }
    }

    /// A feed that has transmitted messages 1..=PUBLISHED.
    fn feed() -> MdFeed {
        let group = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9);
        let mut feed = MdFeed::new(SessionName::new("RETX").unwrap(), group, 1_400, 1 << 20, 1);
        for seq in 1..=PUBLISHED {
            feed.push(seq, seq, &MSG);
        }
        feed.close_packet();
        feed.release(PUBLISHED, |_, _| true);
        assert_eq!(feed.released_through(), PUBLISHED);
        feed
    }

    fn stored(seq: u64) -> Option<&'static [u8]> {
        (1..=PUBLISHED).contains(&seq).then_some(&MSG[..])
    }

    fn client(ip: Ipv4Addr) -> UdpSocket {
        let s = UdpSocket::bind(SocketAddrV4::new(ip, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn server(subscribers: &[Ipv4Addr]) -> RetransmitServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let subs = subscribers.iter().map(|&ip| AllowedSource { ip, port: None }).collect();
        RetransmitServer::new(socket, subs, limits(), 0).unwrap()
    }

    fn send(from: &UdpSocket, to: &RetransmitServer, session: &str, sequence: u64, count: u16) {
        let mut buf = [0u8; REQUEST_LEN];
        let request = Request { session: SessionName::new(session).unwrap(), sequence, count };
        request.emit(&mut buf).unwrap();
        from.send_to(&buf, to.local_addr().unwrap()).unwrap();
    }

    /// Polls until `want` requests were taken (loopback delivery is quick but not synchronous).
    fn take(server: &mut RetransmitServer, now_ns: u64, want: u64, md: &MdFeed) {
        for _ in 0..5_000 {
            if server.counters.requests() >= want {
                return;
            }
            server.poll(now_ns, 16, md, stored);
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("{} of {want} requests arrived: {:?}", server.counters.requests(), server.counters);
    }

    #[test]
    fn nobody_is_answered_without_subscribers() {
        let md = feed();
        let mut s = server(&[]);
        let c = client(Ipv4Addr::LOCALHOST);
        send(&c, &s, "RETX", 1, 4);
        take(&mut s, 0, 1, &md);
        assert_eq!(s.counters, RetransmitCounters { not_subscriber: 1, ..Default::default() });
    }

    #[test]
    fn a_stranger_is_ignored_and_a_subscriber_gets_at_most_the_cap() {
        let md = feed();
        let mut s = server(&[Ipv4Addr::LOCALHOST]);
        let stranger = client(Ipv4Addr::new(127, 0, 0, 2));
        let subscriber = client(Ipv4Addr::LOCALHOST);
        send(&stranger, &s, "RETX", 1, 4);
        send(&subscriber, &s, "RETX", 10, 500);
        take(&mut s, 0, 2, &md);
        let mut buf = [0u8; 9_000];
        let n = subscriber.recv(&mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!((p.sequence(), p.count()), (10, 8), "capped at messages_per_request_max");
        assert!(n <= limits().answer_bytes_max);
        // The stranger's request was taken before the subscriber's (one socket, FIFO) and answered with nothing.
        stranger.set_nonblocking(true).unwrap();
        assert_eq!(stranger.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(s.counters.not_subscriber, 1);
        assert_eq!((s.counters.answered, s.counters.messages_sent), (1, 8));
    }

    #[test]
    fn an_answer_is_never_more_than_one_datagram() {
        let md = feed();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tight = RetransmitLimits { messages_per_request_max: 1_000, answer_bytes_max: 200, ..limits() };
        let subs = vec![AllowedSource { ip: Ipv4Addr::LOCALHOST, port: None }];
        let mut s = RetransmitServer::new(socket, subs, tight, 0).unwrap();
        let c = client(Ipv4Addr::LOCALHOST);
        send(&c, &s, "RETX", 1, 1_000);
        take(&mut s, 0, 1, &md);
        let mut buf = [0u8; 9_000];
        let n = c.recv(&mut buf).unwrap();
        assert!(n <= 200, "{n} bytes");
        // (200 - 20) / 38 = 4 messages fit.
        assert_eq!(Packet::new_checked(&buf[..n]).unwrap().count(), 4);
    }

    #[test]
    fn a_flood_beyond_the_rate_is_counted_as_rate_limited() {
        let md = feed();
        let mut s = server(&[Ipv4Addr::LOCALHOST]);
        let c = client(Ipv4Addr::LOCALHOST);
        // All at the same instant: the burst (3) is answered, the rest refused.
        for _ in 0..20 {
            send(&c, &s, "RETX", 1, 1);
        }
        take(&mut s, 0, 20, &md);
        assert_eq!((s.counters.answered, s.counters.rate_limited), (3, 17));
        // 10 per second: 250 ms later two more tokens are there (2.5, rounded down).
        for _ in 0..5 {
            send(&c, &s, "RETX", 1, 1);
        }
        take(&mut s, 250_000_000, 25, &md);
        assert_eq!((s.counters.answered, s.counters.rate_limited), (5, 20));
        // After a long quiet spell the bucket is full again, but never more than the burst.
        for _ in 0..5 {
            send(&c, &s, "RETX", 1, 1);
        }
        take(&mut s, 3_600_000_000_000, 30, &md);
        assert_eq!((s.counters.answered, s.counters.rate_limited), (8, 22));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let md = feed();
        let mut s = server(&[Ipv4Addr::LOCALHOST]);
        let c = client(Ipv4Addr::LOCALHOST);
        c.send_to(&[0u8; 7], s.local_addr().unwrap()).unwrap();
        c.send_to(&[0u8; 200], s.local_addr().unwrap()).unwrap();
        send(&c, &s, "OTHER", 1, 1);
        send(&c, &s, "RETX", PUBLISHED + 1, 5);
        take(&mut s, 0, 4, &md);
        let want = RetransmitCounters { malformed: 2, bad_session: 1, ..Default::default() };
        assert_eq!(s.counters, RetransmitCounters { rate_limited: 1, ..want }, "the burst is 3");
        send(&c, &s, "RETX", PUBLISHED + 1, 5);
        send(&c, &s, "RETX", 1, 0);
        take(&mut s, 1_000_000_000, 6, &md);
        assert_eq!(s.counters, RetransmitCounters { rate_limited: 1, beyond_feed: 1, empty_request: 1, ..want });
        assert_eq!(s.counters.requests(), 6);
    }

    /// MoldUDP64 1.00, "Request Packets" and "Downstream Packets": an answer carries the requested messages
    /// from the requested sequence; one with none would be a heartbeat announcing that sequence as the next. So
    /// a request for messages 999.. of 1000 sent is answered with exactly 999 and 1000, and requests for count 0,
    /// for sequence 0, or beyond the feed get no packet at all, each counted by its reason.
    #[test]
    fn only_what_exists_is_answered_and_nothing_is_announced() {
        let md = feed();
        let mut s = server(&[Ipv4Addr::LOCALHOST]);
        let c = client(Ipv4Addr::LOCALHOST);
        send(&c, &s, "RETX", PUBLISHED - 1, 5);
        take(&mut s, 0, 1, &md);
        let mut buf = [0u8; 9_000];
        let n = c.recv(&mut buf).unwrap();
        // Header: "RETX" space-padded to 10, sequence 999, count 2; then two blocks of length 36.
        let mut want = b"RETX      ".to_vec();
        want.extend_from_slice(&(PUBLISHED - 1).to_be_bytes());
        want.extend_from_slice(&[0, 2, 0, 36]);
        want.extend_from_slice(&MSG);
        want.extend_from_slice(&[0, 36]);
        want.extend_from_slice(&MSG);
        assert_eq!(&buf[..n], &want[..]);
        // Two at a time, a second apart, so the token bucket (burst 3) refuses none of them.
        for (i, pair) in [[(0, 5), (1, 0)], [(PUBLISHED + 1, 1), (1_000_000_000, 1)]].into_iter().enumerate() {
            for (sequence, count) in pair {
                send(&c, &s, "RETX", sequence, count);
            }
            take(&mut s, (i as u64 + 1) * 1_000_000_000, 3 + 2 * i as u64, &md);
        }
        c.set_nonblocking(true).unwrap();
        assert_eq!(c.recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock, "no packet for those");
        let want = RetransmitCounters {
            answered: 1,
            messages_sent: 2,
            bytes_sent: n as u64,
            empty_request: 2,
            beyond_feed: 2,
            ..Default::default()
        };
        assert_eq!(s.counters, want);
        // A start no longer kept is not answered either.
        let kept_from_500 = |seq: u64| (500..=PUBLISHED).contains(&seq).then_some(&MSG[..]);
        let request = Request { session: md.session(), sequence: 10, count: 4 };
        assert_eq!(md.answer(&request, kept_from_500, &mut buf, 1_400), Err(Unanswered::NotKept));
    }

    #[test]
    fn a_poll_takes_at_most_what_it_is_allowed() {
        let md = feed();
        let mut s = server(&[Ipv4Addr::LOCALHOST]);
        let c = client(Ipv4Addr::LOCALHOST);
        for _ in 0..3 {
            send(&c, &s, "RETX", 1, 1);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(s.poll(0, 2, &md, stored), 2);
        assert_eq!(s.counters.requests(), 2);
        take(&mut s, 0, 3, &md);
        assert_eq!(s.poll(0, 2, &md, stored), 0, "nothing waiting");
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_caps_at_the_burst() {
        let l = limits();
        let mut b = TokenBucket::full(&l, 0);
        assert!((0..3).all(|_| b.take(&l, 0)));
        assert!(!b.take(&l, 0));
        assert!(!b.take(&l, 99_999_999), "0.99 tokens after 99.99 ms");
        assert!(b.take(&l, 100_000_000));
        assert!(!b.take(&l, 50_000_000), "time going back adds nothing");
        assert!((0..3).all(|_| b.take(&l, u64::MAX)));
        assert!(!b.take(&l, u64::MAX));
    }
}
