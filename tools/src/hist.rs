//! `bourse hist`: reads HdrHistogram interval logs (`.hlog`), prints each tag's percentile distribution in
//! HdrHistogram's standard text form and a compact summary, compares two runs, and draws percentile plots.
//!
//! All intervals of a tag in a file are added together: the distribution is that of the whole run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

use bourse_appliance::obs::hlog::Hlog;
use crate::obs::plot::{plot_percentiles, plot_time_series, PlotOptions, TimeSeries};
use crate::obs::report::{self, Units, PERCENTILE_TICKS_PER_HALF_DISTANCE};

#[derive(clap::Args, Debug)]
pub struct HistArgs {
    /// Interval logs to read.
    #[arg(required_unless_present = "compare")]
    pub files: Vec<PathBuf>,
    /// Only these tags (repeatable); default all.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Draw a percentile plot to this file (.png or .svg): one line per tag, or per file and tag.
    #[arg(long, value_name = "OUT")]
    pub plot: Option<PathBuf>,
    /// Print the ratio b/a per percentile and tag of two logs.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Units values are printed in (the logs hold nanoseconds).
    #[arg(long, value_enum, default_value = "us")]
    pub units: Units,
    /// Percentile ticks per half distance to 100 % in the distribution table.
    #[arg(long, default_value_t = PERCENTILE_TICKS_PER_HALF_DISTANCE)]
    pub ticks: u32,
    /// Print only the summary table, not the full distributions.
    #[arg(long)]
    pub summary_only: bool,
    /// Draw each tag's p50, p99 and max per interval over time to this file (.png or .svg).
    #[arg(long, value_name = "OUT")]
    pub timeseries: Option<PathBuf>,
    /// Only intervals starting at or after this many seconds from the log's start.
    #[arg(long)]
    pub start: Option<f64>,
    /// Only intervals starting before this many seconds from the log's start.
    #[arg(long)]
    pub end: Option<f64>,
    /// Draw the plot's latency axis on a log scale.
    #[arg(long)]
    pub log_y: bool,
    /// Print the summary as CSV (values in --units) instead of text.
    #[arg(long, conflicts_with_all = ["json", "compare"])]
    pub csv: bool,
    /// Print the summary as one JSON object (values in nanoseconds) instead of text.
    #[arg(long, conflicts_with = "compare")]
    pub json: bool,
}

/// Summary percentiles of the CSV and JSON outputs.
const SUMMARY_QUANTILES: [(f64, &str); 6] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99_9"), (0.9999, "p99_99"), (1.0, "max")];

/// One file's merged histograms per tag, after the tag filter.
pub(crate) struct FileHists {
    pub(crate) path: PathBuf,
    pub(crate) by_tag: BTreeMap<String, Histogram<u64>>,
    /// Per tag, (interval end in s, p50, p99, max in ns) for the time series.
    pub(crate) series: BTreeMap<String, Vec<(f64, [u64; 3])>>,
}

pub(crate) fn load(path: &Path, tags: &[String], start: Option<f64>, end: Option<f64>) -> anyhow::Result<FileHists> {
    let mut log = Hlog::read(path)?;
    log.intervals.retain(|i| {
        let t = i.start.as_secs_f64();
        start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e)
    });
    let mut series: BTreeMap<String, Vec<(f64, [u64; 3])>> = BTreeMap::new();
    for i in &log.intervals {
        let tag = i.tag.clone().unwrap_or_else(|| bourse_appliance::obs::hlog::UNTAGGED.to_string());
        if i.hist.is_empty() || !(tags.is_empty() || tags.contains(&tag)) {
            continue;
        }
        let h = &i.hist;
        let t = (i.start + i.length).as_secs_f64();
        series.entry(tag).or_default().push((t, [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()]));
    }
    let mut by_tag = log
        .merged_by_tag()
        .with_context(|| format!("merging intervals of {}", path.display()))?;
    if !tags.is_empty() {
        by_tag.retain(|t, _| tags.iter().any(|want| want == t));
    }
    Ok(FileHists {
        path: path.to_path_buf(),
        by_tag,
        series,
    })
}

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub fn run(args: HistArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut files = Vec::new();
    for path in args.files.iter().chain(args.compare.iter().flatten()) {
        if files.iter().any(|f: &FileHists| &f.path == path) {
            continue;
        }
        files.push(load(path, &args.tag, args.start, args.end)?);
    }
    if files.iter().all(|f| f.by_tag.is_empty()) {
        anyhow::bail!(
            "no histograms found{}",
            if args.tag.is_empty() {
                ""
            } else {
                " for the requested tags"
            }
        );
    }
    let many_files = files.len() > 1;
    let label = |f: &FileHists, tag: &str| {
        if many_files {
            format!("{}:{tag}", file_label(&f.path))
        } else {
            tag.to_string()
        }
    };

    if args.csv || args.json {
        let rows: Vec<(String, String, &Histogram<u64>)> = files
            .iter()
            .flat_map(|f| f.by_tag.iter().map(move |(t, h)| (f.path.display().to_string(), t.clone(), h)))
            .collect();
        let at = |h: &Histogram<u64>, q: f64| if q >= 1.0 { h.max() } else { h.value_at_quantile(q) };
        if args.csv {
            write!(out, "file,tag,count,mean_{}", args.units.suffix())?;
            for (_, name) in SUMMARY_QUANTILES {
                write!(out, ",{name}_{}", args.units.suffix())?;
            }
            writeln!(out)?;
            for (file, tag, h) in &rows {
                write!(out, "{file},{tag},{},{}", h.len(), h.mean() / args.units.ratio())?;
                for (q, _) in SUMMARY_QUANTILES {
                    write!(out, ",{}", at(h, q) as f64 / args.units.ratio())?;
                }
                writeln!(out)?;
            }
        } else {
            let tags: Vec<serde_json::Value> = rows
                .iter()
                .map(|(file, tag, h)| {
                    let mut v = serde_json::json!({ "file": file, "tag": tag, "count": h.len(), "mean_ns": h.mean() });
                    for (q, name) in SUMMARY_QUANTILES {
                        v[format!("{name}_ns")] = at(h, q).into();
                    }
                    v
                })
                .collect();
            writeln!(out, "{}", serde_json::json!({ "values": "ns", "tags": tags }))?;
        }
    } else if args.compare.is_none() || !args.files.is_empty() {
        if !args.summary_only {
            for f in &files {
                for (tag, h) in &f.by_tag {
                    writeln!(
                        out,
                        "# file {} tag {tag} (values in {})",
                        f.path.display(),
                        args.units.suffix()
                    )?;
                    report::write_percentile_distribution(&mut out, h, args.ticks, args.units)?;
                    writeln!(out)?;
                }
            }
        }
        let rows: Vec<(String, &Histogram<u64>)> = files
            .iter()
            .flat_map(|f| f.by_tag.iter().map(move |(t, h)| (label(f, t), h)))
            .collect();
        writeln!(out, "# summary")?;
        report::write_summary(&mut out, &rows, args.units)?;
    }

    if let Some(pair) = &args.compare {
        let find = |p: &PathBuf| {
            files
                .iter()
                .find(|f| &f.path == p)
                .expect("every compared file was loaded above")
        };
        let (a, b) = (find(&pair[0]), find(&pair[1]));
        writeln!(
            out,
            "# compare a={} b={}",
            a.path.display(),
            b.path.display()
        )?;
        for (tag, ha) in &a.by_tag {
            match b.by_tag.get(tag) {
                Some(hb) => report::write_compare(&mut out, tag, ha, hb, args.units)?,
                None => writeln!(out, "# tag {tag}: only in a")?,
            }
        }
        for tag in b.by_tag.keys().filter(|t| !a.by_tag.contains_key(*t)) {
            writeln!(out, "# tag {tag}: only in b")?;
        }
    }

    if let Some(plot) = &args.timeseries {
        let mut lines: Vec<TimeSeries> = Vec::new();
        for f in &files {
            for (tag, points) in &f.series {
                for (k, stat) in ["p50", "p99", "max"].iter().enumerate() {
                    let line = points.iter().map(|(t, v)| (*t, v[k] as f64)).collect();
                    lines.push((format!("{} {stat}", label(f, tag)), line));
                }
            }
        }
        let title = files.iter().map(|f| file_label(&f.path)).collect::<Vec<_>>().join(" vs ");
        plot_time_series(plot, &format!("latency per interval: {title}"), &lines, PlotOptions { log_y: args.log_y })?;
        if args.csv || args.json {
            eprintln!("bourse hist: time series written to {}", plot.display());
        } else {
            writeln!(out, "# time series written to {}", plot.display())?;
        }
    }

    if let Some(plot) = &args.plot {
        let series: Vec<(String, &Histogram<u64>)> = files
            .iter()
            .flat_map(|f| f.by_tag.iter().map(move |(t, h)| (label(f, t), h)))
            .collect();
        let title = files
            .iter()
            .map(|f| file_label(&f.path))
            .collect::<Vec<_>>()
            .join(" vs ");
        plot_percentiles(
            plot,
            &format!("latency by percentile: {title}"),
            &series,
            PlotOptions { log_y: args.log_y },
        )?;
        if args.csv || args.json {
            eprintln!("bourse hist: plot written to {}", plot.display());
        } else {
            writeln!(out, "# plot written to {}", plot.display())?;
        }
    }
    Ok(())
}
