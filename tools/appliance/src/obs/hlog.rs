//! HdrHistogram interval logs (`.hlog`): writing them on the aux core and reading them back in `bourse hist`.
//!
//! The format is the one of HdrHistogram's `HistogramLogWriter` (format version 1.3), so its own
//! `HistogramLogProcessor` and plotter read our files:
//!
//! ```text
//! #bourse stage latencies, values in nanoseconds
//! #[Histogram log format version 1.3]
//! #[StartTime: 1700000000.000 (seconds since epoch)]
//! #[BaseTime: 1700000000.000 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=rx_tx,0.000,1.000,5242.000,HISTFAAAACl4nJNpmSzMwMDAywABzFCaEUrz…
//! ```
//!
//! Interval timestamps are seconds since BaseTime; the histogram is V2-encoded, deflated and base64'd. The
//! crate's `interval_log` module writes the interval lines and parses everything; we write the header ourselves
//! because the crate omits the version line and the legend that Java's tools print.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::stages::{HistogramSet, Span};

#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("writing interval log: {0}")]
    Write(io::Error),
    #[error("serialising histogram for tag {tag}: {message}")]
    Serialize { tag: String, message: String },
    #[error("tag {0:?} is not a valid .hlog tag (no commas, spaces or newlines)")]
    BadTag(String),
    #[error("{path}: malformed interval log at byte {offset}")]
    Parse { path: String, offset: usize },
    #[error("{path}: interval at {start_s:.3} s: undecodable histogram: {message}")]
    Decode {
        path: String,
        start_s: f64,
        message: String,
    },
    #[error("{path}: interval at {start_s:.3} s: cannot merge histograms: {message}")]
    Merge {
        path: String,
        start_s: f64,
        message: String,
    },
}

/// Writes an interval log; one line per histogram.
pub struct HlogWriter<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    base_time: SystemTime,
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl<W: Write> HlogWriter<W> {
    /// Writes the header: `comment` (may be several lines), the format version, StartTime and BaseTime (both
    /// `base_time`), and the legend. Interval start timestamps are then offsets from `base_time`.
    pub fn new(mut out: W, base_time: SystemTime, comment: &str) -> Result<Self, HlogError> {
        let secs = epoch_seconds(base_time);
        let mut header = String::new();
        for line in comment.lines() {
            header.push('#');
            header.push_str(line);
            header.push('\n');
        }
        header.push_str("#[Histogram log format version 1.3]\n");
        header.push_str(&format!("#[StartTime: {secs:.3} (seconds since epoch)]\n"));
        header.push_str(&format!("#[BaseTime: {secs:.3} (seconds since epoch)]\n"));
        header.push_str("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
        out.write_all(header.as_bytes()).map_err(HlogError::Write)?;
        Ok(HlogWriter {
            out,
            serializer: V2DeflateSerializer::new(),
            base_time,
        })
    }

    pub fn base_time(&self) -> SystemTime {
        self.base_time
    }

    /// Writes one interval histogram, `start` being its offset from the base time.
    pub fn write(
        &mut self,
        tag: &str,
        start: Duration,
        length: Duration,
        h: &Histogram<u64>,
    ) -> Result<(), HlogError> {
        let tag_value = Tag::new(tag).ok_or_else(|| HlogError::BadTag(tag.to_string()))?;
        // The builder with no headers writes nothing; it only wraps our writer and serializer for this line.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map_err(HlogError::Write)?;
        writer.write_histogram(h, start, length, Some(tag_value)).map_err(|e| match e {
            hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(io) => HlogError::Write(io),
            hdrhistogram::serialization::interval_log::IntervalLogWriterError::SerializeError(s) => {
                HlogError::Serialize { tag: tag.to_string(), message: format!("{s:?}") }
            }
        })
    }

    /// Writes one line per span of a stage histogram set, all with the same interval.
    pub fn write_set(
        &mut self,
        set: &HistogramSet,
        start: Duration,
        length: Duration,
    ) -> Result<(), HlogError> {
        for span in Span::ALL {
            self.write(span.tag(), start, length, set.get(span))?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), HlogError> {
        self.out.flush().map_err(HlogError::Write)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One interval read back from a log.
#[derive(Clone, Debug)]
pub struct Interval {
    /// The tag, or `None` for untagged lines.
    pub tag: Option<String>,
    /// Offset from the log's BaseTime (or seconds since the epoch when the log has none).
    pub start: Duration,
    pub length: Duration,
    /// The max column as written (informational; the histogram's own max is exact).
    pub max: f64,
    pub hist: Histogram<u64>,
}

/// A whole interval log.
#[derive(Clone, Debug, Default)]
pub struct Hlog {
    pub start_time: Option<Duration>,
    pub base_time: Option<Duration>,
    pub intervals: Vec<Interval>,
}

/// The name untagged intervals are listed under.
pub const UNTAGGED: &str = "(untagged)";

impl Hlog {
    /// Parses a log; `name` is used in error messages.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Hlog, HlogError> {
        let mut log = Hlog::default();
        let mut deserializer = Deserializer::new();
        for entry in IntervalLogIterator::new(bytes) {
            let entry = entry.map_err(|e| match e {
                hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                    offset,
                } => HlogError::Parse {
                    path: name.to_string(),
                    offset,
                },
            })?;
            match entry {
                LogEntry::StartTime(t) => log.start_time = Some(t),
                LogEntry::BaseTime(t) => log.base_time = Some(t),
                LogEntry::Interval(i) => {
                    let start_s = i.start_timestamp().as_secs_f64();
                    let decode_error = |message: String| HlogError::Decode {
                        path: name.to_string(),
                        start_s,
                        message,
                    };
                    let compressed = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram().trim_end())
                        .map_err(|e| decode_error(e.to_string()))?;
                    let hist: Histogram<u64> = deserializer
                        .deserialize(&mut io::Cursor::new(compressed))
                        .map_err(|e| decode_error(format!("{e:?}")))?;
                    log.intervals.push(Interval {
                        tag: i.tag().map(|t| t.as_str().to_string()),
                        start: i.start_timestamp(),
                        length: i.duration(),
                        max: i.max(),
                        hist,
                    });
                }
            }
        }
        Ok(log)
    }

    pub fn read(path: &Path) -> Result<Hlog, HlogError> {
        let bytes = std::fs::read(path).map_err(|source| HlogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Hlog::parse(&bytes, &path.display().to_string())
    }

    /// All intervals of each tag added together, tags in sorted order; untagged lines under [`UNTAGGED`].
    pub fn merged_by_tag(&self) -> Result<BTreeMap<String, Histogram<u64>>, HlogError> {
        let mut merged: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        for i in &self.intervals {
            let tag = i.tag.clone().unwrap_or_else(|| UNTAGGED.to_string());
            match merged.get_mut(&tag) {
                Some(h) => h.add(&i.hist).map_err(|e| HlogError::Merge {
                    path: tag.clone(),
                    start_s: i.start.as_secs_f64(),
                    message: format!("{e:?}"),
                })?,
                None => {
                    let mut h = i.hist.clone();
                    // Intervals of one tag may have different ranges; growing is fine off the hot path.
                    h.auto(true);
                    merged.insert(tag, h);
                }
            }
        }
        Ok(merged)
    }
}

/// The load generator's own latency log: one tag, one line per reporting interval.
pub struct LatencyLog {
    writer: HlogWriter<BufWriter<File>>,
    tag: String,
    path: PathBuf,
}

impl LatencyLog {
    /// Creates (truncating) `path` and writes the header.
    pub fn create(path: &Path, tag: &str) -> Result<LatencyLog, HlogError> {
        if Tag::new(tag).is_none() {
            return Err(HlogError::BadTag(tag.to_string()));
        }
        let file = File::create(path).map_err(|source| HlogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = HlogWriter::new(
            BufWriter::new(file),
            SystemTime::now(),
            "bourse load: round-trip latency, values in nanoseconds",
        )?;
        Ok(LatencyLog {
            writer,
            tag: tag.to_string(),
            path: path.to_path_buf(),
        })
    }

    /// Appends one interval (offset from the log's start) and flushes it so a crash keeps what was measured.
    pub fn write_interval(
        &mut self,
        start: Duration,
        length: Duration,
        h: &Histogram<u64>,
    ) -> Result<(), HlogError> {
        self.writer.write(&self.tag, start, length, h)?;
        self.writer.flush()
    }

    /// Appends one interval ending now, `h` having been collected since `since`.
    pub fn write_since(&mut self, since: SystemTime, h: &Histogram<u64>) -> Result<(), HlogError> {
        let base = self.writer.base_time();
        let now = SystemTime::now();
        let start = since.duration_since(base).unwrap_or_default();
        let length = now.duration_since(since).unwrap_or_default();
        self.write_interval(start, length, h)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Percentile columns of the rate table, as exchange-core prints them.
pub const RATE_TABLE_QUANTILES: [(f64, &str); 5] = [
    (0.50, "50%"),
    (0.90, "90%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
];

/// Prints the offered-rate × percentile table (values in µs), one row per `(rate_per_s, histogram of ns)`:
///
/// ```text
///        rate      50%      90%      99%    99.9%   99.99%      max
///     100,000     1.23     2.34 …
/// ```
pub fn write_rate_table(out: &mut dyn Write, rows: &[(f64, Histogram<u64>)]) -> io::Result<()> {
    write!(out, "{:>12}", "rate")?;
    for (_, name) in RATE_TABLE_QUANTILES {
        write!(out, " {name:>9}")?;
    }
    writeln!(out, " {:>9}", "max")?;
    for (rate, h) in rows {
        write!(out, "{:>12}", group_thousands(rate.round() as u64))?;
        for (q, _) in RATE_TABLE_QUANTILES {
            write!(out, " {:>9.2}", h.value_at_quantile(q) as f64 / 1000.0)?;
        }
        writeln!(out, " {:>9.2}", h.max() as f64 / 1000.0)?;
    }
    Ok(())
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(12_345_678), "12,345,678");
    }
}
