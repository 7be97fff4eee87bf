//! Percentile plots in HdrHistogram's style: x is 1/(1−p) on a log scale labelled 90 %, 99 %, 99.9 % …, y is the
//! latency; one line per series (a tag, or a tag of one file when comparing runs). PNG or SVG by file extension.
//!
//! Text needs a TrueType font: plotters is built with its pure-Rust `ab_glyph` renderer (no fontconfig), and we
//! register the first font found among the usual Debian paths (`fonts-dejavu-core` provides one).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Units;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: the plot file must end in .png or .svg")]
    Format(PathBuf),
    #[error("{path}: cannot create the plot file: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("no TrueType font found (looked in {searched}); install fonts-dejavu-core")]
    NoFont { searched: String },
    #[error("nothing to plot: every histogram is empty")]
    Empty,
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// Plot size in pixels.
pub const PLOT_WIDTH_PX: u32 = 1024;
pub const PLOT_HEIGHT_PX: u32 = 640;
/// Percentile points per halving of the distance to 100 %, as HdrHistogram's plotter samples.
const TICKS_PER_HALF_DISTANCE: u32 = 10;

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plotters once per process; the bytes live for the rest of the process by design.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        for path in FONT_CANDIDATES {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::NoFont {
            searched: FONT_CANDIDATES.join(", "),
        })
    }
}

/// The percentile curve of one histogram: points (1/(1−p), value in `units`), ending with the max at the
/// percentile of the single largest value.
pub fn percentile_curve(h: &Histogram<u64>, units: Units) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    if h.is_empty() {
        return points;
    }
    let mut last_x: f64 = 1.0;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        let q = v.quantile_iterated_to();
        let x = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            (h.len() as f64).max(last_x)
        };
        last_x = x;
        points.push((x, v.value_iterated_to() as f64 / units.ratio()));
    }
    points
}

/// "90%", "99%", "99.9%" … for x = 10, 100, 1000 …
pub fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".to_string();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().round() as i64 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

/// How the latency axis is drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlotOptions {
    /// A log-scaled latency axis: a 10 s outlier and sub-µs stages on one plot, neither flattened.
    pub log_y: bool,
}

/// Line colours: the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies) without its
/// yellow, which is unreadable on white.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// A value label: at most three significant decimals, thousands grouped, no trailing zeros (`18,000`, `0.25`).
pub fn value_label(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        // Two digits past the first significant one: 0.25, 0.0001 (never rounded to a bare 0).
        ((-v.abs().log10().floor()) as usize + 2).min(12)
    };
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    let (int, frac) = digits.split_once('.').map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::from(sign);
    // `int` is ASCII digits, so byte and character positions agree.
    for (i, c) in int.bytes().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(char::from(c));
    }
    match frac {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    }
}

/// One labelled percentile curve: (1/(1−p), value) points.
type Curve = (String, Vec<(f64, f64)>);

/// The series' percentile curves in the unit that suits their range.
fn percentile_curves(series: &[(String, &Histogram<u64>)]) -> Result<(Vec<Curve>, Units), PlotError> {
    let max_ns = series.iter().map(|(_, h)| h.max()).max().unwrap_or(0) as f64;
    let units = Units::for_range(max_ns);
    let curves: Vec<Curve> =
        series.iter().map(|(label, h)| (label.clone(), percentile_curve(h, units))).collect();
    if curves.iter().all(|(_, c)| c.is_empty()) {
        return Err(PlotError::Empty);
    }
    Ok((curves, units))
}

/// The name an inline SVG is reported under in a draw error.
const INLINE_SVG: &str = "<inline svg>";

/// Draws the series (label, histogram of ns) to `path` (.png or .svg), in the unit that suits their range.
pub fn plot_percentiles(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
    options: PlotOptions,
) -> Result<(), PlotError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(extension.as_deref(), Some("png" | "svg")) {
        return Err(PlotError::Format(path.to_path_buf()));
    }
    // Fail on the path with its own error before plotters reports it in its own terms.
    std::fs::File::create(path).map_err(|source| PlotError::Create { path: path.to_path_buf(), source })?;
    ensure_font()?;
    let (curves, units) = percentile_curves(series)?;
    let size = (PLOT_WIDTH_PX, PLOT_HEIGHT_PX);
    let draw_error = |e: String| PlotError::Draw {
        path: path.to_path_buf(),
        message: e,
    };
    match extension.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, title, &curves, units, options).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, title, &curves, units, options).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))
        }
        _ => Err(PlotError::Format(path.to_path_buf())),
    }
}

/// The percentile plot of [`plot_percentiles`] as an SVG document in a string, for a page that inlines it.
pub fn percentiles_svg(title: &str, series: &[(String, &Histogram<u64>)], options: PlotOptions) -> Result<String, PlotError> {
    ensure_font()?;
    let (curves, units) = percentile_curves(series)?;
    let draw_error = |e: String| PlotError::Draw { path: PathBuf::from(INLINE_SVG), message: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH_PX, PLOT_HEIGHT_PX)).into_drawing_area();
        draw(&root, title, &curves, units, options).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &[(String, Vec<(f64, f64)>)],
    units: Units,
    options: PlotOptions,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let x_max_data = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(10.0, f64::max);
    // Whole decades, so the axis ends on a labelled percentile.
    let decades = x_max_data.log10().ceil().max(2.0);
    let x_max = 10f64.powf(decades);
    let y_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        * 1.1;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let mut builder = ChartBuilder::on(root);
    // The right margin leaves room for the last percentile label, centred on the axis' end.
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(48)
        .y_label_area_size(80);
    let x_fmt = |x: &f64| percentile_label(*x);
    let y_fmt = |y: &f64| value_label(*y);
    let y_desc = format!("latency ({})", units.symbol());
    if options.log_y {
        // The smallest recordable value (1 ns) bounds the axis below; log scales cannot start at 0.
        let y_min = curves
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.1))
            .filter(|&v| v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(y_max / 10.0)
            .max(1.0 / units.ratio());
        let mut chart = builder
            .build_cartesian_2d((1f64..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(decades as usize + 1)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("percentile")
            .y_desc(y_desc)
            .draw()
            .map_err(e)?;
        let floor = y_min;
        for (i, (label, curve)) in curves.iter().enumerate() {
            let color = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(curve.iter().map(|&(x, y)| (x, y.max(floor))), color.stroke_width(2)))
                .map_err(e)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        return Ok(());
    }
    let mut chart = builder.build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max).map_err(e)?;
    chart
        .configure_mesh()
        .x_labels(decades as usize + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("percentile")
        .y_desc(y_desc)
        .draw()
        .map_err(e)?;
    for (i, (label, curve)) in curves.iter().enumerate() {
        let color = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                curve.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

/// One line of a time-series plot: (seconds since the log's base time, value in ns) per interval.
pub type TimeSeries = (String, Vec<(f64, f64)>);

/// The series scaled to the unit of their range.
fn scaled_time_series(series: &[TimeSeries]) -> Result<(Vec<TimeSeries>, Units), PlotError> {
    let points = || series.iter().flat_map(|(_, p)| p.iter().copied());
    if points().next().is_none() {
        return Err(PlotError::Empty);
    }
    let units = Units::for_range(points().map(|p| p.1).fold(0.0, f64::max));
    let scaled = series
        .iter()
        .map(|(l, p)| (l.clone(), p.iter().map(|&(t, v)| (t, v / units.ratio())).collect()))
        .collect();
    Ok((scaled, units))
}

/// Draws per-interval values over time (p50, p99, max of each tag, say) to `path` (.png or .svg), the latency
/// axis in the unit of its range, log-scaled with `options.log_y`.
pub fn plot_time_series(path: &Path, title: &str, series: &[TimeSeries], options: PlotOptions) -> Result<(), PlotError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(extension.as_deref(), Some("png" | "svg")) {
        return Err(PlotError::Format(path.to_path_buf()));
    }
    std::fs::File::create(path).map_err(|source| PlotError::Create { path: path.to_path_buf(), source })?;
    ensure_font()?;
    let (scaled, units) = scaled_time_series(series)?;
    let size = (PLOT_WIDTH_PX, PLOT_HEIGHT_PX);
    let draw_error = |e: String| PlotError::Draw { path: path.to_path_buf(), message: e };
    if extension.as_deref() == Some("png") {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_time(&root, title, &scaled, units, options).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))
    } else {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_time(&root, title, &scaled, units, options).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))
    }
}

/// The time-series plot of [`plot_time_series`] as an SVG document in a string, for a page that inlines it.
pub fn time_series_svg(title: &str, series: &[TimeSeries], options: PlotOptions) -> Result<String, PlotError> {
    ensure_font()?;
    let (scaled, units) = scaled_time_series(series)?;
    let draw_error = |e: String| PlotError::Draw { path: PathBuf::from(INLINE_SVG), message: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH_PX, PLOT_HEIGHT_PX)).into_drawing_area();
        draw_time(&root, title, &scaled, units, options).map_err(draw_error)?;
        root.present().map_err(|e| draw_error(e.to_string()))?;
    }
    Ok(svg)
}

fn draw_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[TimeSeries],
    units: Units,
    options: PlotOptions,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let t_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let t_max = all().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max).max(t_min + 1.0);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_min = all().map(|p| p.1).filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min).min(y_max / 10.0);
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, ("sans-serif", 22)).margin(16).margin_right(40).x_label_area_size(48).y_label_area_size(80);
    let x_fmt = |x: &f64| value_label(*x);
    let y_fmt = |y: &f64| value_label(*y);
    let y_desc = format!("latency ({})", units.symbol());
    macro_rules! finish {
        ($chart:expr, $floor:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .x_desc("time (s since the log's start)")
                .y_desc(y_desc.clone())
                .draw()
                .map_err(e)?;
            for (i, (label, points)) in series.iter().enumerate() {
                let color = COLOURS[i % COLOURS.len()];
                let floor: f64 = $floor;
                chart
                    .draw_series(LineSeries::new(points.iter().map(|&(t, v)| (t, v.max(floor))), color.stroke_width(2)))
                    .map_err(e)?
                    .label(label.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(e)?;
        }};
    }
    if options.log_y {
        let floor = y_min.max(1.0 / units.ratio());
        finish!(builder.build_cartesian_2d(t_min..t_max, (floor..y_max).log_scale()).map_err(e)?, floor);
    } else {
        finish!(builder.build_cartesian_2d(t_min..t_max, 0f64..y_max).map_err(e)?, 0.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100000.0), "99.999%");
    }

    #[test]
    fn values_and_units_read_plainly() {
        assert_eq!(value_label(18_000_000.0), "18,000,000");
        assert_eq!(value_label(0.25), "0.25");
        assert_eq!(value_label(0.0001), "0.0001");
        assert_eq!(value_label(0.00125), "0.00125");
        assert_eq!(value_label(12.5), "12.5");
        assert_eq!(value_label(100.0), "100");
        assert_eq!(value_label(1_234.4), "1,234");
        assert_eq!(value_label(-1_500.0), "-1,500");
        assert_eq!(Units::for_range(17e9), Units::S);
        assert_eq!(Units::for_range(5_000_000.0), Units::Ms);
        assert_eq!(Units::for_range(2_500.0), Units::Us);
        assert_eq!(Units::for_range(900.0), Units::Ns);
        assert_eq!(Units::Us.symbol(), "µs");
    }

    #[test]
    fn curve_ends_at_the_max() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let c = percentile_curve(&h, Units::Us);
        let last = *c.last().unwrap();
        assert_eq!(last.1, h.max() as f64 / 1000.0);
        assert!(
            c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
            "curve must be monotonic"
        );
    }
}
