//! Circuit breakers: the per-symbol price band and the market-wide index breaker.

use crate::{Bands, MarketBreaker, Nanos, Price};

/// The inclusive price band `[reference − band, reference + band]` an execution must print within.
pub(crate) fn band(reference: Price, bands: &Bands) -> (Price, Price) {
    let bps = if reference > bands.tier_high_price {
        bands.high_bps
    } else if reference >= bands.tier_low_price {
        bands.mid_bps
    } else {
        bands.low_bps
    };
    let width = (reference as u64 * bps as u64 / 10_000).min(u32::MAX as u64) as u32;
    (
        reference.saturating_sub(width),
        reference.saturating_add(width),
    )
}

/// Market-wide breaker state. The index is Σ weight × last trade price, kept incrementally on every trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarketWide {
    pub config: Option<MarketBreaker>,
    /// Each level fires at most once per day.
    pub fired: [bool; 3],
    pub index_reference: u128,
    pub index_now: u128,
}

impl MarketWide {
    pub(crate) const EMPTY: MarketWide = MarketWide {
        config: None,
        fired: [false; 3],
        index_reference: 0,
        index_now: 0,
    };

    /// The highest level (0-based) newly reached by the current index, with its halt duration.
    pub(crate) fn level_reached(&mut self) -> Option<(u8, Nanos)> {
        let cfg = self.config?;
        if self.index_reference == 0 {
            return None;
        }
        for level in (0..3).rev() {
            let bps = cfg.level_bps[level].min(10_000) as u128;
            let floor = self.index_reference * (10_000 - bps);
            if self.index_now * 10_000 <= floor {
                if self.fired[level] {
                    return None;
                }
                for f in self.fired.iter_mut().take(level + 1) {
                    *f = true;
                }
                return Some((level as u8, cfg.halt_ns[level]));
            }
        }
        None
    }
}
