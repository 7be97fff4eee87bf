//! The rate table of `bourse load` and `bourse demo`: what each offered rate achieved and what its replies took.
//!
//! ```text
//! round trip, firm → appliance → firm, µs from each message's intended send time (coordinated-omission corrected)
//!      offered    achieved      sent   replied  rejected      lost       50%       90% …       max
//!       10,000      10,000    20,000    20,000       400         0     12.31     15.02 …     80.12
//!      100,000      60,189   120,378    90,102     1,802    30,276    812.40  2,301.00 …  9,001.00  SATURATED
//! ```
//!
//! Offered and achieved are messages per second; achieved is what was sent divided by the row's wall time (a
//! generator that cannot keep up takes longer than planned). Latencies are over the replied requests only: a lost
//! request has no latency, which is why any loss marks the row SATURATED — its percentiles flatter it.

use std::io::{self, Write};

use super::RateRow;

/// A row achieving less than this fraction of its offered rate did not keep up.
pub const SATURATED_BELOW: f64 = 0.95;

/// Percentile columns, as exchange-core prints them.
pub const PERCENTILES: [&str; 5] = ["50%", "90%", "99%", "99.9%", "99.99%"];

/// Whether a row shows saturation: achieved below [`SATURATED_BELOW`] of offered, or anything lost. An
/// interrupted row is judged on what it sent and lost only (its wall time was cut short, not stretched).
pub fn is_saturated(offered: f64, achieved: f64, lost: u64, interrupted: bool) -> bool {
    lost > 0 || (!interrupted && offered > 0.0 && achieved < SATURATED_BELOW * offered)
}

/// Prints the legend, the header and one line per row.
pub fn write_rate_table(out: &mut dyn Write, rows: &[RateRow]) -> io::Result<()> {
    writeln!(
        out,
        "round trip, firm → appliance → firm, µs from each message's intended send time (coordinated-omission \
         corrected)"
    )?;
    let counts = ["offered", "achieved", "sent", "replied", "rejected", "lost"];
    for name in counts {
        write!(out, "{name:>10}")?;
    }
    for name in PERCENTILES.iter().chain(&["max"]) {
        write!(out, " {name:>11}")?;
    }
    writeln!(out)?;
    for r in rows {
        let figures = [r.rate.round() as u64, r.achieved_per_s.round() as u64, r.sent, r.replied, r.rejected, r.lost];
        for n in figures {
            write!(out, "{:>10}", group_thousands(n))?;
        }
        for v in [r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.p9999_us, r.max_us] {
            write!(out, " {:>11}", fixed2(v))?;
        }
        if r.saturated {
            write!(out, "  SATURATED")?;
        }
        if r.interrupted {
            write!(out, "  (interrupted)")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "offered, achieved: messages/s (achieved = sent ÷ the row's wall time); replied: answered (accepted, \
         rejected or canceled), the requests the percentiles cover;\nrejected: refused by the appliance; lost: \
         sent and never answered (not in the percentiles); SATURATED: achieved < {:.0} % of offered, or anything \
         lost",
        SATURATED_BELOW * 100.0
    )
}

pub use bourse_appliance::obs::hlog::group_thousands;

/// Two decimals, thousands grouped in the integer part.
fn fixed2(v: f64) -> String {
    let cents = (v * 100.0).round().max(0.0) as u64;
    format!("{}.{:02}", group_thousands(cents / 100), cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rate: f64, achieved: f64, sent: u64, replied: u64) -> RateRow {
        RateRow {
            rate,
            achieved_per_s: achieved,
            sent,
            replied,
            rejected: 3,
            lost: sent - replied,
            saturated: is_saturated(rate, achieved, sent - replied, false),
            interrupted: false,
            duration_s: 1.0,
            p50_us: 12.345,
            p90_us: 15.0,
            p99_us: 20.0,
            p999_us: 1_234.5,
            p9999_us: 2_000.0,
            max_us: 9_999.99,
            msgs_per_s: achieved,
        }
    }

    #[test]
    fn saturation_is_marked_when_behind_or_lossy() {
        assert!(!is_saturated(10_000.0, 9_990.0, 0, false));
        assert!(is_saturated(100_000.0, 60_189.0, 0, false), "achieved 60 % of offered");
        assert!(is_saturated(10_000.0, 10_000.0, 1, false), "one lost request is enough");
        assert!(!is_saturated(10_000.0, 5_000.0, 0, true), "an interrupted row ran short, it did not fall behind");
        assert!(!is_saturated(10_000.0, 9_500.0, 0, false), "95 % is the bound, inclusive");
    }

    #[test]
    fn table_has_counts_percentiles_units_and_marks() {
        let mut out = Vec::new();
        let rows = [row(10_000.0, 10_000.0, 20_000, 20_000), row(100_000.0, 60_189.0, 120_378, 90_102)];
        write_rate_table(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("µs") && lines[0].contains("coordinated-omission corrected"), "{text}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["offered", "achieved", "sent", "replied", "rejected", "lost", "50%", "90%", "99%", "99.9%", "99.99%", "max"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["10,000", "10,000", "20,000", "20,000", "3", "0", "12.35", "15.00", "20.00", "1,234.50", "2,000.00", "9,999.99"]
        );
        let saturated: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(saturated[..6], ["100,000", "60,189", "120,378", "90,102", "3", "30,276"]);
        assert_eq!(saturated.last(), Some(&"SATURATED"), "{text}");
        assert!(!lines[2].contains("SATURATED"));
        assert!(lines[4].contains("messages/s") && lines[5].contains("lost"), "{text}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(12_345_678), "12,345,678");
        assert_eq!(fixed2(0.004), "0.00");
        assert_eq!(fixed2(1_234.567), "1,234.57");
    }
}
