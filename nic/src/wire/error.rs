//! The one error type of every decoder and encoder in `wire`.

/// Why a buffer could not be read or written as a given format. `format` names the format ("ipv4", "ouch",
/// …) so counters and logs say where a datagram failed without carrying the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the format (or its own length field) requires.
    #[error("{format}: truncated, need {need} bytes, have {have}")]
    Truncated {
        format: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field disagrees with the buffer or the message type.
    #[error("{format}: bad length {len} ({what})")]
    BadLength {
        format: &'static str,
        len: usize,
        what: &'static str,
    },
    /// The message type code is not one this format defines (or not one we accept in this direction).
    #[error("{format}: unknown message type {code:#04x}")]
    UnknownType { format: &'static str, code: u8 },
    /// A field holds a value the specification does not allow.
    #[error("{format}: invalid field {field}")]
    InvalidField {
        format: &'static str,
        field: &'static str,
    },
    /// A checksum did not verify.
    #[error("{format}: bad checksum")]
    Checksum { format: &'static str },
    /// The output buffer is too small for what was to be written.
    #[error("{format}: output buffer too small, need {need} bytes, have {have}")]
    BufferTooSmall {
        format: &'static str,
        need: usize,
        have: usize,
    },
}

pub type Result<T> = core::result::Result<T, Error>;

#[inline]
pub(crate) fn need(format: &'static str, have: usize, need: usize) -> Result<()> {
    if have < need {
        Err(Error::Truncated { format, need, have })
    } else {
        Ok(())
    }
}

#[inline]
pub(crate) fn room(format: &'static str, have: usize, need: usize) -> Result<()> {
    if have < need {
        Err(Error::BufferTooSmall { format, need, have })
    } else {
        Ok(())
    }
}
