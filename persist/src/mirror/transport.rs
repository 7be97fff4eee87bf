//! The one trait every mirror transport implements, and the errors they share.

use thiserror::Error;

/// Whether a frame was taken by [`MirrorTransport::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The transport owns a copy of the frame now; the caller may reuse its buffer.
    Queued,
    /// No room right now (backpressure); nothing was taken and the caller retries on a later tick.
    Full,
}

#[derive(Debug, Error)]
pub enum TransportError {
    /// No peer right now. Connection-oriented transports reconnect by themselves; the protocol treats frames sent
    /// meanwhile as lost and recovers them by retransmission.
    #[error("mirror peer not connected")]
    Disconnected,
    #[error("mirror transport {op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A frame larger than the transport's preallocated buffers: a programming error in the caller.
    #[error("frame of {len_bytes} bytes exceeds the transport's {max_bytes}-byte buffers")]
    FrameTooLarge { len_bytes: usize, max_bytes: usize },
    /// The stream delivered a length field no valid frame has: the connection is reset and re-established.
    #[error("stream desynchronised: frame length field {length_bytes}")]
    Desync { length_bytes: usize },
    /// The verbs transport found no RDMA device (none here: see PLATFORM.md).
    #[error("no RDMA device: {0}")]
    NoDevice(String),
    /// A verbs completion failed, so the queue pair is in the error state for good (the peer is gone and retries
    /// ran out, or an access fault): the transport reports this on every later call; reconnect with a new one.
    #[error("rdma queue pair failed: completion status {status_name} ({status}), vendor error {vendor_err:#x}")]
    QueuePair { status: u32, status_name: &'static str, vendor_err: u32 },
    #[error("rdma verb {verb} failed: {detail}")]
    Verbs { verb: &'static str, detail: String },
}

/// Non-blocking frame transport between a primary and its standby.
///
/// `send` never blocks: it queues a copy of the frame or reports [`Sent::Full`]. `poll` hands each received frame to
/// `on_frame` exactly as it arrived (delimited by its length field but not yet CRC-checked: the protocol checks) and
/// returns how many it delivered. Neither allocates after construction.
pub trait MirrorTransport {
    fn send(&mut self, frame: &[u8]) -> Result<Sent, TransportError>;
    fn poll(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, TransportError>;
}
