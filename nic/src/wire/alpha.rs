//! Fixed-width alphanumeric fields as the Nasdaq specifications define them: ASCII, left-justified and padded
//! on the right with spaces (OUCH Symbol and ClOrdID, ITCH Stock, MoldUDP64 Session, SoupBinTCP Username …).

/// An `N`-byte space-padded ASCII field, stored exactly as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Alpha<const N: usize>(pub [u8; N]);

impl<const N: usize> Alpha<N> {
    /// All spaces: the spec's "blank" value.
    pub const BLANK: Alpha<N> = Alpha([b' '; N]);

    /// Pads `s` with spaces; `None` when it is longer than `N` or not printable ASCII.
    pub fn new(s: &str) -> Option<Alpha<N>> {
        let b = s.as_bytes();
        if b.len() > N || !b.iter().all(|c| (0x20..0x7f).contains(c)) {
            return None;
        }
        let mut a = [b' '; N];
        a[..b.len()].copy_from_slice(b);
        Some(Alpha(a))
    }

    /// The value without its padding (empty when blank).
    pub fn trimmed(&self) -> &[u8] {
        let end = self.0.iter().rposition(|c| *c != b' ').map_or(0, |i| i + 1);
        &self.0[..end]
    }

    /// The value as text without padding; non-UTF-8 bytes (possible only from the wire) give "?".
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.trimmed()).unwrap_or("?")
    }

    pub fn is_blank(&self) -> bool {
        self.trimmed().is_empty()
    }
}

impl<const N: usize> Default for Alpha<N> {
    fn default() -> Self {
        Self::BLANK
    }
}

impl<const N: usize> core::fmt::Debug for Alpha<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Stock symbol: 8 bytes in OUCH 5.0 and ITCH 5.0.
pub type Symbol = Alpha<8>;
/// OUCH 5.0 ClOrdID: 14 bytes.
pub type ClOrdId = Alpha<14>;
/// MoldUDP64 and SoupBinTCP session name: 10 bytes.
pub type SessionName = Alpha<10>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_trims() {
        let s = Symbol::new("AAPL").unwrap();
        assert_eq!(&s.0, b"AAPL    ");
        assert_eq!(s.as_str(), "AAPL");
        assert!(Symbol::new("TOOLONGSYM").is_none());
        assert!(Symbol::new("A\u{1}").is_none());
        assert!(Symbol::BLANK.is_blank());
    }
}
