//! Business days: weekends and a configured list of holidays. Settlement dates are counted in business days after
//! the trade date (T+2), so a Friday trade settles on Tuesday, and a holiday in between pushes it one day further.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Business days between trade date and settlement date.
pub const SETTLEMENT_LAG_DAYS: u32 = 2;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    pub fn new(holidays: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        Calendar { holidays: holidays.into_iter().collect() }
    }

    /// A holiday file: one `YYYY-MM-DD` a line; blank lines and text after `#` are ignored.
    pub fn load(path: &Path) -> anyhow::Result<Calendar> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut days = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            days.push(parse_date(line).with_context(|| format!("{}:{}", path.display(), i + 1))?);
        }
        Ok(Calendar::new(days))
    }

    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// The `n`th business day after `d`.
    pub fn add_business_days(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut day = d;
        let mut left = n;
        while left > 0 {
            day = day + Days::new(1);
            if self.is_business_day(day) {
                left -= 1;
            }
        }
        day
    }

    pub fn settlement_date(&self, trade_date: NaiveDate) -> NaiveDate {
        self.add_business_days(trade_date, SETTLEMENT_LAG_DAYS)
    }
}

pub fn parse_date(s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("not a date (YYYY-MM-DD): {s:?}"))
}

/// The UTC calendar date of a sequencer timestamp (nanoseconds since the Unix epoch).
pub fn trade_date(timestamp_ns: u64) -> NaiveDate {
    let days = (timestamp_ns / 86_400_000_000_000) as i64;
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn t_plus_two_skips_the_weekend() {
        let c = Calendar::default();
        assert_eq!(c.settlement_date(d("2026-12-03")), d("2026-12-07")); // Thursday -> Monday
        assert_eq!(c.settlement_date(d("2026-12-04")), d("2026-12-08")); // Friday -> Tuesday
        assert_eq!(c.settlement_date(d("2026-12-01")), d("2026-12-03")); // Tuesday -> Thursday
    }

    #[test]
    fn t_plus_two_skips_a_configured_holiday() {
        let c = Calendar::new([d("2026-12-25"), d("2026-12-28")]);
        // Thursday 24th: Friday 25th and Monday 28th are holidays, the weekend between: Tuesday 29th, Wednesday 30th.
        assert_eq!(c.settlement_date(d("2026-12-24")), d("2026-12-30"));
        assert_eq!(c.settlement_date(d("2026-12-23")), d("2026-12-29"));
    }

    #[test]
    fn trade_date_is_the_utc_day_of_the_timestamp() {
        assert_eq!(trade_date(0), d("1970-01-01"));
        // 2026-12-04T23:59:59.999999999Z and one nanosecond later.
        let friday_end = 1_796_428_799_999_999_999u64;
        assert_eq!(trade_date(friday_end), d("2026-12-04"));
        assert_eq!(trade_date(friday_end + 1), d("2026-12-05"));
    }
}
