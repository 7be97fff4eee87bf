//! `bourse report`: one self-contained HTML page a latency engineer can publish from a run's interval logs — the
//! percentile plot, the per-interval time series, the per-stage breakdown table, the run's configuration and the
//! host's facts.
//!
//! Self-contained means nothing is fetched when the page opens: the plots are inline SVG, the style is inline, there
//! is no script. The only URL in the page is the SVG namespace, which browsers never fetch.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

use super::plot::{percentiles_svg, time_series_svg, PlotOptions, TimeSeries};
use super::report::Units;
use crate::hist::{load, FileHists};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Interval logs (.hlog) of the run: the appliance's stage log, the load generator's, or both.
    #[arg(long = "hlog", required = true, value_name = "FILE")]
    pub hlogs: Vec<PathBuf>,
    /// The page to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The appliance configuration the run used: its backend, WAL mode and durability go on the page.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The page's title.
    #[arg(long, default_value = "bourse latency report")]
    pub title: String,
    /// Only these tags (repeatable); default all.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Draw the latency axes on a log scale.
    #[arg(long)]
    pub log_y: bool,
}

/// Percentiles of the breakdown table.
const TABLE_QUANTILES: [(f64, &str); 6] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99"), (1.0, "max")];

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in &args.hlogs {
        files.push(load(path, &args.tag, None, None)?);
    }
    if files.iter().all(|f| f.by_tag.is_empty()) {
        anyhow::bail!("no histograms found in {}", list(&args.hlogs));
    }
    let config = match &args.config {
        Some(path) => Some(RunConfig::read(path)?),
        None => None,
    };
    let page = render(&args, &files, config.as_ref(), &HostFacts::read())?;
    std::fs::write(&args.out, page).with_context(|| format!("{}: cannot write the report", args.out.display()))?;
    println!("report written to {}", args.out.display());
    Ok(())
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// What the page says about the appliance's configuration.
struct RunConfig {
    path: PathBuf,
    text: String,
    facts: Vec<(&'static str, String)>,
}

impl RunConfig {
    fn read(path: &Path) -> anyhow::Result<RunConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the configuration", path.display()))?;
        let c = bourse_appliance::config::Config::parse(&text).with_context(|| format!("{}: invalid configuration", path.display()))?;
        let mut facts = vec![
            ("appliance", c.appliance.name.clone()),
            ("backend", format!("{} on {}", c.backend.kind.as_str(), c.backend.bind)),
            ("WAL mode", format!("{:?}", c.wal.mode).to_lowercase()),
            (
                "WAL directory",
                c.wal.dir.as_ref().map_or_else(|| "a temporary directory".to_string(), |d| d.display().to_string()),
            ),
        ];
        match &c.mirror {
            Some(m) => {
                facts.push(("mirror role", format!("{:?}", m.role).to_lowercase()));
                facts.push(("durability (ack)", format!("{:?}", m.ack).to_lowercase()));
            }
            None => facts.push(("durability (ack)", "local (no standby)".to_string())),
        }
        let core = |c: Option<usize>| c.map_or_else(|| "not pinned".to_string(), |c| format!("core {c}"));
        facts.push(("pipeline", core(c.cores.pipeline)));
        facts.push(("aux threads", core(c.cores.aux)));
        facts.push(("symbols", c.symbols.len().to_string()));
        facts.push(("firms", c.firms.len().to_string()));
        facts.push(("orders max", c.capacity.orders_max.to_string()));
        Ok(RunConfig { path: path.to_path_buf(), text, facts })
    }
}

/// The host the page was made on (a report is made on the machine that ran, as `bourse hist` is).
struct HostFacts {
    facts: Vec<(&'static str, String)>,
}

impl HostFacts {
    fn read() -> HostFacts {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".to_string());
        let memory = read("/proc/meminfo")
            .and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
                })
            })
            .map_or_else(|| "unknown".to_string(), |kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)));
        let cores = std::thread::available_parallelism().map_or_else(|_| "unknown".to_string(), |n| n.to_string());
        let trim = |s: Option<String>| s.map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        HostFacts {
            facts: vec![
                ("host", trim(read("/proc/sys/kernel/hostname"))),
                ("kernel", trim(read("/proc/sys/kernel/osrelease"))),
                ("CPU", cpu),
                ("cores available", cores),
                ("memory", memory),
                ("bourse", env!("CARGO_PKG_VERSION").to_string()),
            ],
        }
    }
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The header comment lines of an interval log (what wrote it and in which unit), without the format lines.
fn hlog_comments(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .take_while(|l| l.starts_with('#') || l.starts_with("\"StartTimestamp\""))
        .filter(|l| l.starts_with('#') && !l.starts_with("#["))
        .map(|l| l.trim_start_matches('#').trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn facts_table(id: &str, facts: &[(&str, String)]) -> String {
    let mut t = format!("<table class=\"facts\" id=\"{id}\"><tbody>\n");
    for (k, v) in facts {
        let _ = writeln!(t, "<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    t.push_str("</tbody></table>\n");
    t
}

fn render(args: &ReportArgs, files: &[FileHists], config: Option<&RunConfig>, host: &HostFacts) -> anyhow::Result<String> {
    let many_files = files.len() > 1;
    let label = |f: &FileHists, tag: &str| {
        if many_files {
            format!("{}:{tag}", f.path.file_name().map_or_else(|| f.path.display().to_string(), |n| n.to_string_lossy().into_owned()))
        } else {
            tag.to_string()
        }
    };
    let rows: Vec<(String, &Histogram<u64>)> =
        files.iter().flat_map(|f| f.by_tag.iter().map(move |(t, h)| (label(f, t), h))).collect();
    let options = PlotOptions { log_y: args.log_y };
    let percentiles = percentiles_svg("latency by percentile", &rows, options)?;
    let mut lines: Vec<TimeSeries> = Vec::new();
    for f in files {
        for (tag, points) in &f.series {
            for (k, stat) in ["p50", "p99", "max"].iter().enumerate() {
                lines.push((format!("{} {stat}", label(f, tag)), points.iter().map(|(t, v)| (*t, v[k] as f64)).collect()));
            }
        }
    }
    let series = time_series_svg("latency per interval (p50, p99, max)", &lines, options)?;

    let max_ns = rows.iter().map(|(_, h)| h.max()).max().unwrap_or(0) as f64;
    let units = Units::for_range(max_ns);
    let mut stages = String::from("<table class=\"stages\" id=\"stages\">\n<thead><tr><th scope=\"col\">stage / tag</th><th scope=\"col\">count</th>");
    let _ = write!(stages, "<th scope=\"col\">mean ({})</th>", units.symbol());
    for (_, name) in TABLE_QUANTILES {
        let _ = write!(stages, "<th scope=\"col\">{name} ({})</th>", units.symbol());
    }
    stages.push_str("</tr></thead>\n<tbody>\n");
    for (name, h) in &rows {
        let _ = write!(stages, "<tr><td class=\"tag\">{}</td><td>{}</td><td>{}</td>", esc(name), h.len(), fmt(h.mean() / units.ratio()));
        for (q, _) in TABLE_QUANTILES {
            let v = if q >= 1.0 { h.max() } else { h.value_at_quantile(q) };
            let _ = write!(stages, "<td>{}</td>", fmt(v as f64 / units.ratio()));
        }
        stages.push_str("</tr>\n");
    }
    stages.push_str("</tbody></table>\n");

    let mut run_facts: Vec<(&str, String)> = Vec::new();
    for f in files {
        let intervals: usize = f.series.values().map(Vec::len).sum();
        let span = f.series.values().flatten().map(|p| p.0).fold(0.0, f64::max);
        run_facts.push(("interval log", f.path.display().to_string()));
        for c in hlog_comments(&f.path) {
            run_facts.push(("written by", c));
        }
        run_facts.push(("intervals", format!("{intervals} over {span:.1} s, {} tags", f.by_tag.len())));
    }
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
        title = esc(&args.title)
    );
    let _ = writeln!(
        page,
        "<p class=\"note\">Latencies are HdrHistogram values recorded in nanoseconds, shown in {}; every interval of a tag is added together for the table and the percentile plot. Percentiles are HdrHistogram's (the value at or below which that fraction of samples fall, rounded to the histogram's precision).</p>",
        units.symbol()
    );
    page.push_str("<h2>Per-stage breakdown</h2>\n");
    page.push_str(&stages);
    page.push_str("<h2>Percentile distribution</h2>\n<figure id=\"percentiles\">\n");
    page.push_str(strip_xml_declaration(&percentiles));
    page.push_str("\n</figure>\n<h2>Over time</h2>\n<figure id=\"timeseries\">\n");
    page.push_str(strip_xml_declaration(&series));
    page.push_str("\n</figure>\n<h2>Run</h2>\n");
    page.push_str(&facts_table("run", &run_facts));
    page.push_str("<h2>Configuration</h2>\n");
    match config {
        Some(c) => {
            page.push_str(&facts_table("config", &c.facts));
            let _ = writeln!(
                page,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(&c.path.display().to_string()),
                esc(&c.text)
            );
        }
        None => page.push_str("<p id=\"config\">No configuration was given (<code>--config</code>).</p>\n"),
    }
    page.push_str("<h2>Host</h2>\n");
    page.push_str(&facts_table("host", &host.facts));
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// An SVG document's body for inlining in HTML (the XML declaration is not allowed there).
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

fn fmt(v: f64) -> String {
    super::plot::value_label(v)
}

const STYLE: &str = "body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #111; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.7em; border: 1px solid #ddd; text-align: right; }
table.facts th, td.tag { text-align: left; } table.facts td { text-align: left; white-space: pre-wrap; }
thead th { background: #f0f0f0; }
figure { margin: 0; } figure svg { max-width: 100%; height: auto; }
p.note { color: #444; max-width: 60em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn the_xml_declaration_is_dropped_for_inlining() {
        assert_eq!(strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
        assert_eq!(strip_xml_declaration("<svg/>"), "<svg/>");
    }
}
