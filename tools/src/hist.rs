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
use crate::obs::plot::plot_percentiles;
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
}

/// One file's merged histograms per tag, after the tag filter.
struct FileHists {
    path: PathBuf,
    by_tag: BTreeMap<String, Histogram<u64>>,
}

fn load(path: &Path, tags: &[String]) -> anyhow::Result<FileHists> {
    let log = Hlog::read(path)?;
    let mut by_tag = log
        .merged_by_tag()
        .with_context(|| format!("merging intervals of {}", path.display()))?;
    if !tags.is_empty() {
        by_tag.retain(|t, _| tags.iter().any(|want| want == t));
    }
    Ok(FileHists {
        path: path.to_path_buf(),
        by_tag,
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
        files.push(load(path, &args.tag)?);
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

    if args.compare.is_none() || !args.files.is_empty() {
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
            args.units,
        )?;
        writeln!(out, "# plot written to {}", plot.display())?;
    }
    Ok(())
}
