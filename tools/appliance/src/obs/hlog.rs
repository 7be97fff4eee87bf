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
//! Interval timestamps are seconds since BaseTime; the histogram is V2-encoded, deflated and base64'd. Values
//! are nanoseconds. `Interval_Max` is written in milliseconds — the max divided by [`MAX_VALUE_UNIT_RATIO`], what
//! Java's `HistogramLogWriter` does by default and what its `HistogramLogProcessor` assumes — while the encoded
//! histogram keeps the exact nanoseconds. We write the lines ourselves (the crate's `interval_log` writer omits
//! the version line and the legend, and with a divisor repeats a `MaxValueDivisor` comment on every line) and use
//! the crate's parser to read them.
//!
//! A log is never overwritten: [`rotate_existing`] moves the last run's aside before a new one is created.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
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

/// `Interval_Max` is the interval's max (ns) divided by this: milliseconds, Java's default
/// `maxValueUnitRatio` for nanosecond histograms.
pub const MAX_VALUE_UNIT_RATIO: f64 = 1e6;

/// Writes an interval log; one line per histogram.
pub struct HlogWriter<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    base_time: SystemTime,
    encoded: Vec<u8>,
    line: String,
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
            encoded: Vec::new(),
            line: String::new(),
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
        if Tag::new(tag).is_none() {
            return Err(HlogError::BadTag(tag.to_string()));
        }
        self.encoded.clear();
        self.serializer
            .serialize(h, &mut self.encoded)
            .map_err(|e| HlogError::Serialize { tag: tag.to_string(), message: format!("{e:?}") })?;
        self.line.clear();
        // Timestamps and max with three decimals, as Java's writer prints them.
        self.line.push_str(&format!(
            "Tag={tag},{:.3},{:.3},{:.3},",
            start.as_secs_f64(),
            length.as_secs_f64(),
            h.max() as f64 / MAX_VALUE_UNIT_RATIO
        ));
        base64::engine::general_purpose::STANDARD.encode_string(&self.encoded, &mut self.line);
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes()).map_err(HlogError::Write)
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
    /// The max column as written: milliseconds in our logs (see [`MAX_VALUE_UNIT_RATIO`]); informational, the
    /// histogram's own max is exact.
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

/// Moves an existing, non-empty file at `path` aside, to `<stem>.<mtime as epoch seconds>[-n].<ext>` in the
/// same directory, and returns the new name; an absent or empty file is left alone.
pub fn rotate_existing(path: &Path) -> io::Result<Option<PathBuf>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.len() == 0 {
        return Ok(None);
    }
    let stamp = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    for n in 0..1000u32 {
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        let aside = path.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"));
        if !aside.exists() {
            std::fs::rename(path, &aside)?;
            return Ok(Some(aside));
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "a thousand rotated logs of the same second"))
}

/// The load generator's own latency log: one line per reporting interval, each under its row's tag.
pub struct LatencyLog {
    writer: HlogWriter<BufWriter<File>>,
    path: PathBuf,
    /// Where the previous log at `path` was moved, if there was one.
    pub rotated: Option<PathBuf>,
}

impl LatencyLog {
    /// Creates `path` (moving an existing log aside, see [`rotate_existing`]) and writes the header.
    pub fn create(path: &Path, comment: &str) -> Result<LatencyLog, HlogError> {
        let io_err = |source| HlogError::Io { path: path.to_path_buf(), source };
        let rotated = rotate_existing(path).map_err(io_err)?;
        let file = File::create(path).map_err(io_err)?;
        let writer = HlogWriter::new(BufWriter::new(file), SystemTime::now(), comment)?;
        Ok(LatencyLog { writer, path: path.to_path_buf(), rotated })
    }

    /// The log's BaseTime: interval starts are offsets from it.
    pub fn base_time(&self) -> SystemTime {
        self.writer.base_time()
    }

    /// Appends one interval (offset from the log's start) and flushes it so a crash keeps what was measured.
    pub fn write_interval(
        &mut self,
        tag: &str,
        start: Duration,
        length: Duration,
        h: &Histogram<u64>,
    ) -> Result<(), HlogError> {
        self.writer.write(tag, start, length, h)?;
        self.writer.flush()
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

/// `n` with thousands separated by commas (the rate tables of the .hlog tools and `bourse load`).
pub fn group_thousands(n: u64) -> String {
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
