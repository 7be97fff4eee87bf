//! Mirror frames over TCP: `TCP_NODELAY`, non-blocking, preallocated buffers, reconnection.
//!
//! The stream carries frames back to back; the receiver delimits them with the length field (bytes 4..8 of every
//! frame) and hands complete frames to the protocol, which checks their CRC. Partial reads and writes are normal:
//! unsent bytes wait in the send buffer, and a partial frame waits in the receive buffer for the rest. Both buffers
//! are allocated once. A length field no frame can have means the stream lost sync (it cannot happen on a healthy
//! TCP connection, so it is treated as a broken one): the connection is dropped and re-established, and the
//! protocol retransmits from the standby's acknowledged offset.
//!
//! Either side may connect. [`TcpTransport::connect`] keeps re-dialling a peer address (the standby dials the
//! primary); [`TcpTransport::listen`] accepts, and a newer incoming connection replaces the current one.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::frame::{peek_length, FRAME_MAX_BYTES, HEADER_BYTES};
use super::transport::{MirrorTransport, Sent, TransportError};

/// Bytes of frames that may wait to be sent: enough for the default in-flight window plus control frames.
pub const SEND_BUFFER_BYTES: usize = 2 << 20;
/// Receive buffer: two of the largest frames, so one partial frame plus one complete frame always fit.
pub const RECV_BUFFER_BYTES: usize = 2 * FRAME_MAX_BYTES;
const _: () = assert!(SEND_BUFFER_BYTES >= FRAME_MAX_BYTES);

enum Role {
    Dial { peer: SocketAddr, connect_timeout: Duration },
    Accept(TcpListener),
}

/// Counters of connection events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub connects: u64,
    pub disconnects: u64,
    pub desyncs: u64,
}

pub struct TcpTransport {
    role: Role,
    stream: Option<TcpStream>,
    /// Earliest time to dial again after a failure (a dead peer must not cost a connect attempt per tick).
    redial_at: Instant,
    redial_interval: Duration,
    send_buf: Box<[u8]>,
    send_start: usize,
    send_end: usize,
    recv_buf: Box<[u8]>,
    recv_len: usize,
    stats: TcpStats,
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
    move |source| TransportError::Io { op, source }
}

impl TcpTransport {
    fn with_role(role: Role) -> TcpTransport {
        TcpTransport {
            role,
            stream: None,
            redial_at: Instant::now(),
            redial_interval: Duration::from_millis(1),
            send_buf: vec![0u8; SEND_BUFFER_BYTES].into_boxed_slice(),
            send_start: 0,
            send_end: 0,
            recv_buf: vec![0u8; RECV_BUFFER_BYTES].into_boxed_slice(),
            recv_len: 0,
            stats: TcpStats::default(),
        }
    }

    /// Dials `peer` now and again whenever the connection drops (at most once per millisecond).
    pub fn connect(peer: SocketAddr) -> TcpTransport {
        let mut t = TcpTransport::with_role(Role::Dial { peer, connect_timeout: Duration::from_millis(20) });
        t.ensure_connected();
        t
    }

    /// Listens on `addr` (port 0 picks one; see [`TcpTransport::local_addr`]) and serves the latest connection.
    pub fn listen(addr: SocketAddr) -> Result<TcpTransport, TransportError> {
        let listener = TcpListener::bind(addr).map_err(io("bind"))?;
        listener.set_nonblocking(true).map_err(io("set_nonblocking"))?;
        Ok(TcpTransport::with_role(Role::Accept(listener)))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.role {
            Role::Accept(l) => l.local_addr().ok(),
            Role::Dial { .. } => self.stream.as_ref().and_then(|s| s.local_addr().ok()),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    fn adopt(&mut self, stream: TcpStream) -> bool {
        // A socket we cannot configure is useless for low latency; drop it and try again later.
        if stream.set_nodelay(true).is_err() || stream.set_nonblocking(true).is_err() {
            return false;
        }
        self.stream = Some(stream);
        self.send_start = 0;
        self.send_end = 0;
        self.recv_len = 0;
        self.stats.connects += 1;
        true
    }

    fn drop_connection(&mut self) {
        if self.stream.take().is_some() {
            self.stats.disconnects += 1;
        }
        // Bytes queued for the old connection belong to it; the protocol resends whatever matters.
        self.send_start = 0;
        self.send_end = 0;
        self.recv_len = 0;
        self.redial_at = Instant::now() + self.redial_interval;
    }

    fn ensure_connected(&mut self) {
        match &self.role {
            Role::Accept(listener) => {
                // Take the newest pending connection: a peer that reconnects replaces its dead predecessor.
                let mut newest = None;
                while let Ok((s, _)) = listener.accept() {
                    newest = Some(s);
                }
                if let Some(s) = newest {
                    self.drop_connection();
                    self.adopt(s);
                }
            }
            Role::Dial { peer, connect_timeout } => {
                if self.stream.is_some() || Instant::now() < self.redial_at {
                    return;
                }
                let (peer, timeout) = (*peer, *connect_timeout);
                match TcpStream::connect_timeout(&peer, timeout) {
                    Ok(s) => {
                        if !self.adopt(s) {
                            self.redial_at = Instant::now() + self.redial_interval;
                        }
                    }
                    Err(_) => self.redial_at = Instant::now() + self.redial_interval,
                }
            }
        }
    }

    /// Writes queued bytes until the socket would block.
    fn flush(&mut self) {
        while self.send_start < self.send_end {
            let Some(stream) = self.stream.as_mut() else { return };
            match stream.write(&self.send_buf[self.send_start..self.send_end]) {
                Ok(0) => return self.drop_connection(),
                Ok(n) => self.send_start += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.drop_connection(),
            }
        }
        if self.send_start == self.send_end {
            self.send_start = 0;
            self.send_end = 0;
        }
    }
}

impl MirrorTransport for TcpTransport {
    fn send(&mut self, frame: &[u8]) -> Result<Sent, TransportError> {
        if frame.len() > FRAME_MAX_BYTES {
            return Err(TransportError::FrameTooLarge { len_bytes: frame.len(), max_bytes: FRAME_MAX_BYTES });
        }
        self.ensure_connected();
        if self.stream.is_none() {
            return Err(TransportError::Disconnected);
        }
        if SEND_BUFFER_BYTES - self.send_end < frame.len() {
            self.flush();
            if self.send_start > 0 {
                self.send_buf.copy_within(self.send_start..self.send_end, 0);
                self.send_end -= self.send_start;
                self.send_start = 0;
            }
            if SEND_BUFFER_BYTES - self.send_end < frame.len() {
                return Ok(Sent::Full);
            }
        }
        self.send_buf[self.send_end..self.send_end + frame.len()].copy_from_slice(frame);
        self.send_end += frame.len();
        self.flush();
        if self.stream.is_none() {
            return Err(TransportError::Disconnected);
        }
        Ok(Sent::Queued)
    }

    fn poll(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, TransportError> {
        self.ensure_connected();
        self.flush();
        let mut delivered = 0;
        loop {
            let Some(stream) = self.stream.as_mut() else { return Ok(delivered) };
            let read = match stream.read(&mut self.recv_buf[self.recv_len..]) {
                Ok(0) => {
                    self.drop_connection();
                    return Ok(delivered);
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.drop_connection();
                    return Ok(delivered);
                }
            };
            self.recv_len += read;
            let mut at = 0;
            while let Some(len) = peek_length(&self.recv_buf[at..self.recv_len]) {
                if !(HEADER_BYTES..=FRAME_MAX_BYTES).contains(&len) {
                    self.stats.desyncs += 1;
                    self.drop_connection();
                    return Ok(delivered);
                }
                if self.recv_len - at < len {
                    break;
                }
                on_frame(&self.recv_buf[at..at + len]);
                delivered += 1;
                at += len;
            }
            self.recv_buf.copy_within(at..self.recv_len, 0);
            self.recv_len -= at;
            if read == 0 {
                return Ok(delivered);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::frame::Frame;

    fn pump(a: &mut TcpTransport, b: &mut TcpTransport, want: usize, got: &mut Vec<Vec<u8>>) {
        for _ in 0..20_000 {
            a.poll(&mut |_| {}).unwrap();
            b.poll(&mut |f| got.push(f.to_vec())).unwrap();
            if got.len() >= want {
                return;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn test_frames_cross_partial_writes_and_reconnect() {
        let mut server = TcpTransport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let mut client = TcpTransport::connect(addr);
        assert!(client.is_connected());
        let payload: Vec<u8> = (0..WRITE_PAYLOAD_BYTES).map(|i| i as u8).collect();
        let mut buf = vec![0u8; FRAME_MAX_BYTES];
        let mut sent = 0;
        let mut got = Vec::new();
        // Large frames overrun the socket buffers, so writes and reads split frames at arbitrary points.
        for i in 0..200u64 {
            let n = Frame::Write { epoch: 1, offset: i * 64, tail_seq: i, bytes: &payload }.emit(&mut buf).unwrap();
            while client.send(&buf[..n]).unwrap() == Sent::Full {
                server.poll(&mut |f| got.push(f.to_vec())).unwrap();
            }
            sent += 1;
            server.poll(&mut |f| got.push(f.to_vec())).unwrap();
        }
        pump(&mut client, &mut server, sent, &mut got);
        assert_eq!(got.len(), sent);
        for (i, f) in got.iter().enumerate() {
            let Frame::Write { offset, bytes, .. } = Frame::parse(f).unwrap() else { panic!() };
            assert_eq!(offset, i as u64 * 64);
            assert_eq!(bytes, &payload[..]);
        }
        // The server side drops; the client notices and redials; the listener adopts the new connection.
        server.drop_connection();
        let mut reconnected = false;
        let n = Frame::Tail { epoch: 1, tail_seq: 9 }.emit(&mut buf).unwrap();
        let mut tails = Vec::new();
        for _ in 0..2_000 {
            let _ = client.send(&buf[..n]);
            client.poll(&mut |_| {}).unwrap();
            server.poll(&mut |f| tails.push(f.to_vec())).unwrap();
            if !tails.is_empty() {
                reconnected = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(reconnected, "client {:?} server {:?}", client.stats(), server.stats());
        assert!(client.stats().connects >= 2 || server.stats().connects >= 2);
        assert_eq!(Frame::parse(&tails[0]).unwrap(), Frame::Tail { epoch: 1, tail_seq: 9 });
    }

    const WRITE_PAYLOAD_BYTES: usize = 48 * 1024;

    #[test]
    fn test_garbage_length_resets_connection() {
        let mut server = TcpTransport::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut raw = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        raw.write_all(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1, 1]).unwrap();
        for _ in 0..2_000 {
            server.poll(&mut |_| panic!("no frame may be delivered")).unwrap();
            if server.stats().desyncs == 1 {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert_eq!(server.stats().desyncs, 1);
        assert!(!server.is_connected());
    }

    #[test]
    fn test_dial_without_listener_is_disconnected() {
        // Bind then drop a listener to get a port nobody listens on.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut client = TcpTransport::connect(addr);
        assert!(matches!(client.send(&[0u8; 32]), Err(TransportError::Disconnected)));
        assert_eq!(client.poll(&mut |_| {}).unwrap(), 0);
    }
}
