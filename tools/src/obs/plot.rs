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

/// Draws the series (label, histogram of ns) to `path` (.png or .svg).
pub fn plot_percentiles(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
    units: Units,
) -> Result<(), PlotError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    ensure_font()?;
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(label, h)| (label.clone(), percentile_curve(h, units)))
        .collect();
    if curves.iter().all(|(_, c)| c.is_empty()) {
        return Err(PlotError::Empty);
    }
    let size = (PLOT_WIDTH_PX, PLOT_HEIGHT_PX);
    let draw_error = |e: String| PlotError::Draw {
        path: path.to_path_buf(),
        message: e,
    };
    match extension.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, title, &curves, units).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, title, &curves, units).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))
        }
        _ => Err(PlotError::Format(path.to_path_buf())),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &[(String, Vec<(f64, f64)>)],
    units: Units,
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

    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
        .map_err(e)?;
    let x_fmt = |x: &f64| percentile_label(*x);
    chart
        .configure_mesh()
        .x_labels(decades as usize + 1)
        .x_label_formatter(&x_fmt)
        .x_desc("percentile")
        .y_desc(format!("latency ({})", units.suffix()))
        .draw()
        .map_err(e)?;
    for (i, (label, curve)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
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
