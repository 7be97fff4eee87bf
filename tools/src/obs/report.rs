//! Text reports of histograms: HdrHistogram's standard percentile distribution, a compact summary per tag, and
//! the ratio of two runs per percentile.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// The unit values are printed in; histograms always hold nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Units {
    Ns,
    Us,
    Ms,
    S,
}

impl Units {
    /// Nanoseconds per printed unit (HdrHistogram's `outputValueUnitScalingRatio`).
    pub fn ratio(self) -> f64 {
        match self {
            Units::Ns => 1.0,
            Units::Us => 1e3,
            Units::Ms => 1e6,
            Units::S => 1e9,
        }
    }

    /// The ASCII suffix of text tables (`us`, as HdrHistogram's tools and column headers spell it).
    pub fn suffix(self) -> &'static str {
        match self {
            Units::Ns => "ns",
            Units::Us => "us",
            Units::Ms => "ms",
            Units::S => "s",
        }
    }

    /// The symbol for plots and prose: `µs`.
    pub fn symbol(self) -> &'static str {
        match self {
            Units::Us => "µs",
            other => other.suffix(),
        }
    }

    /// The largest unit in which `max_ns` is at least 1: a range's labels then read 1–999 rather than
    /// 18000000.0.
    pub fn for_range(max_ns: f64) -> Units {
        [Units::S, Units::Ms, Units::Us].into_iter().find(|u| max_ns >= u.ratio()).unwrap_or(Units::Ns)
    }
}

/// HdrHistogram's default percentile ticks per half distance to 100 %.
pub const PERCENTILE_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Prints the distribution exactly as HdrHistogram's `outputPercentileDistribution` does (the table
/// `Value Percentile TotalCount 1/(1-Percentile)`, then the `#[Mean …]`, `#[Max …]` and `#[Buckets …]` footer),
/// values divided by `units.ratio()`.
pub fn write_percentile_distribution(
    out: &mut dyn Write,
    h: &Histogram<u64>,
    ticks_per_half_distance: u32,
    units: Units,
) -> io::Result<()> {
    let ratio = units.ratio();
    let digits = h.sigfig() as usize;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(ticks_per_half_distance.max(1)) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean() / ratio, h.stdev() / ratio)
    };
    writeln!(
        out,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / ratio,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )?;
    Ok(())
}

/// HdrHistogram's sub-bucket count for a precision: the power of two covering 2 × 10^digits.
pub fn sub_bucket_count(significant_digits: u8) -> u64 {
    (2 * 10u64.pow(significant_digits as u32)).next_power_of_two()
}

/// The summary columns: (quantile, header).
pub const SUMMARY_QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

/// Prints one row per `(label, histogram)`: count, p50 … p99.99, max.
pub fn write_summary(
    out: &mut dyn Write,
    rows: &[(String, &Histogram<u64>)],
    units: Units,
) -> io::Result<()> {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(3).max(3);
    write!(out, "{:<width$} {:>12}", "tag", "count")?;
    for (_, name) in SUMMARY_QUANTILES {
        write!(out, " {:>10}", format!("{name}({})", units.suffix()))?;
    }
    writeln!(out, " {:>10}", format!("max({})", units.suffix()))?;
    for (label, h) in rows {
        write!(out, "{label:<width$} {:>12}", h.len())?;
        for (q, _) in SUMMARY_QUANTILES {
            write!(
                out,
                " {:>10.3}",
                h.value_at_quantile(q) as f64 / units.ratio()
            )?;
        }
        writeln!(out, " {:>10.3}", h.max() as f64 / units.ratio())?;
    }
    Ok(())
}

/// Prints, for one tag, each summary percentile and the max of `a` and `b` and the ratio b/a.
pub fn write_compare(
    out: &mut dyn Write,
    tag: &str,
    a: &Histogram<u64>,
    b: &Histogram<u64>,
    units: Units,
) -> io::Result<()> {
    writeln!(out, "# tag {tag}: {} vs {} values", a.len(), b.len())?;
    writeln!(
        out,
        "{:>10} {:>14} {:>14} {:>8}",
        "percentile",
        format!("a({})", units.suffix()),
        format!("b({})", units.suffix()),
        "b/a"
    )?;
    let rows = SUMMARY_QUANTILES
        .iter()
        .map(|&(q, name)| (name, a.value_at_quantile(q), b.value_at_quantile(q)));
    for (name, va, vb) in rows.chain(std::iter::once(("max", a.max(), b.max()))) {
        let ratio = if va == 0 {
            f64::NAN
        } else {
            vb as f64 / va as f64
        };
        writeln!(
            out,
            "{name:>10} {:>14.3} {:>14.3} {ratio:>8.3}",
            va as f64 / units.ratio(),
            vb as f64 / units.ratio()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_buckets_match_hdrhistogram() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(1), 32);
    }
}
