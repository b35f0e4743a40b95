//! The report's charts, drawn with plotters into SVG strings: lines over epochs, stacked bars,
//! values with their spread over seeds, and scatter plots with a Pareto front.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::full_palette;

/// Chart size in pixels.
const SIZE: (u32, u32) = (640, 380);

/// The series colours, in order (colour-blind-safe first; an f32 reference is drawn black).
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// One line of a chart.
pub struct Line {
    /// Legend text.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Drawn black and dashed-looking (the f32 reference).
    pub reference: bool,
}

/// Axis texts of a chart.
pub struct Axes<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis, with its unit.
    pub x: &'a str,
    /// The y axis, with its unit.
    pub y: &'a str,
}

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing a chart: {e:?}")
}

/// Pads a range so that a flat series still gets an axis.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * 0.06;
    (lo - d, hi + d)
}

fn bounds<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let (mut x, mut y) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
    for &(a, b) in points {
        x = (x.0.min(a), x.1.max(a));
        y = (y.0.min(b), y.1.max(b));
    }
    (padded(x.0, x.1), padded(y.0, y.1))
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// The coordinates every plot draws in.
type Coords = Cartesian2d<RangedCoordf64, RangedCoordf64>;

/// A titled chart with room for axis labels over `x` and `y`.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    axes: &Axes<'_>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<ChartContext<'a, DB, Coords>> {
    ChartBuilder::on(root)
        .caption(axes.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// The legend, at `at`.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Coords>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(full_palette::GREY_400)
        .position(at)
        .draw()
        .map_err(err)
}

/// The name of category `v` (an integer position) on a categorical axis; nothing between.
fn category(names: &[String], v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v >= 0.0 {
        names.get(v.round() as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Lines over a numeric x axis (`x_labels` names integer positions when given).
pub fn lines(axes: &Axes<'_>, lines: &[Line], x_labels: Option<&[String]>) -> Result<String> {
    svg(|root| {
        let ((x0, x1), (y0, y1)) = bounds(lines.iter().flat_map(|l| l.points.iter()));
        let mut chart = frame(root, axes, x0..x1, y0..y1)?;
        let label = |v: &f64| match x_labels {
            Some(names) => category(names, *v),
            None => format_number(*v),
        };
        // Integer x (epochs, planes): one tick per integer when there are few, no fractions.
        let integers = lines.iter().flat_map(|l| &l.points).all(|(x, _)| x.fract() == 0.0);
        let label = |v: &f64| if integers && v.fract().abs() > 1e-9 { String::new() } else { label(v) };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(axes.x).y_desc(axes.y).x_label_formatter(&label).y_label_formatter(&|v| format_number(*v));
        if integers && x1 - x0 <= 20.0 {
            mesh.x_labels((x1 - x0).round() as usize + 2);
        }
        mesh.light_line_style(full_palette::GREY_100).draw().map_err(err)?;
        let mut n = 0;
        for l in lines {
            let c = if l.reference { BLACK } else { color(n) };
            if !l.reference {
                n += 1;
            }
            let width = if l.reference { 1 } else { 2 };
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(width)))
                .map_err(err)?
                .label(l.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Stacked bars: one bar per category, one stack segment per part (legend).
pub fn stacked(axes: &Axes<'_>, categories: &[String], parts: &[(String, Vec<f64>)]) -> Result<String> {
    svg(|root| {
        let top = (0..categories.len())
            .map(|i| parts.iter().map(|(_, v)| v.get(i).copied().unwrap_or(0.0).max(0.0)).sum::<f64>())
            .fold(0.0f64, f64::max);
        let n = categories.len().max(1) as f64;
        let mut chart = frame(root, axes, -0.5f64..n - 0.5, 0.0..(top * 1.25).max(1e-12))?;
        let label = |v: &f64| category(categories, *v);
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_labels(categories.len().max(1))
            .x_label_formatter(&label)
            .y_label_formatter(&|v| format_number(*v))
            .disable_x_mesh()
            .light_line_style(full_palette::GREY_100)
            .draw()
            .map_err(err)?;
        let mut base = vec![0.0f64; categories.len()];
        for (k, (name, values)) in parts.iter().enumerate() {
            let c = color(k);
            let bars: Vec<Rectangle<(f64, f64)>> = (0..categories.len())
                .filter(|&i| values.get(i).copied().unwrap_or(0.0) > 0.0)
                .map(|i| {
                    let v = values[i];
                    let r = Rectangle::new([(i as f64 - 0.32, base[i]), (i as f64 + 0.32, base[i] + v)], c.filled());
                    base[i] += v;
                    r
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// A series of values with their spread: mean, min, max at each x.
pub struct Spread {
    /// Legend text.
    pub name: String,
    /// `(x, mean, min, max)`.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Means joined by lines, with error bars from min to max (the spread over seeds).
pub fn spread(axes: &Axes<'_>, series: &[Spread], x_labels: Option<&[String]>) -> Result<String> {
    svg(|root| {
        let all: Vec<(f64, f64)> =
            series.iter().flat_map(|s| s.points.iter().flat_map(|&(x, _, lo, hi)| [(x, lo), (x, hi)])).collect();
        let ((x0, x1), (y0, y1)) = bounds(all.iter());
        let mut chart = frame(root, axes, x0..x1, y0..y1)?;
        let label = |v: &f64| match x_labels {
            Some(names) => category(names, *v),
            None => format_number(*v),
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(axes.x).y_desc(axes.y).x_label_formatter(&label).y_label_formatter(&|v| format_number(*v));
        if let Some(names) = x_labels {
            mesh.x_labels(names.len().max(2));
        }
        mesh.light_line_style(full_palette::GREY_100).draw().map_err(err)?;
        for (k, s) in series.iter().enumerate() {
            let c = color(k);
            chart
                .draw_series(LineSeries::new(s.points.iter().map(|&(x, m, _, _)| (x, m)), c.stroke_width(2)))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart
                .draw_series(s.points.iter().map(|&(x, m, lo, hi)| ErrorBar::new_vertical(x, lo, m, hi, c.filled(), 8)))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Points by group, and a line through the Pareto front (lowest x, highest y).
pub fn pareto(axes: &Axes<'_>, groups: &[(String, Vec<(f64, f64)>)]) -> Result<String> {
    svg(|root| {
        let ((x0, x1), (y0, y1)) = bounds(groups.iter().flat_map(|(_, p)| p.iter()));
        let mut chart = frame(root, axes, x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_label_formatter(&|v| format_number(*v))
            .y_label_formatter(&|v| format_number(*v))
            .light_line_style(full_palette::GREY_100)
            .draw()
            .map_err(err)?;
        for (k, (name, points)) in groups.iter().enumerate() {
            let c = color(k);
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
        }
        let front = front(groups.iter().flat_map(|(_, p)| p.iter().copied()));
        chart
            .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))
            .map_err(err)?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(1)));
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// The non-dominated points (no other point has lower or equal x and higher y), by x.
pub fn front(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points.filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for q in p {
        if out.last().is_none_or(|l| q.1 > l.1) {
            out.push(q);
        }
    }
    out
}

/// A short number for an axis: `0.25`, `1.2e-9`.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_only_points_nothing_beats() {
        let f = front([(1.0, 0.5), (2.0, 0.9), (1.5, 0.4), (3.0, 0.8), (0.5, 0.1)].into_iter());
        assert_eq!(f, vec![(0.5, 0.1), (1.0, 0.5), (2.0, 0.9)]);
    }

    #[test]
    fn charts_are_svg_with_their_texts() {
        let axes = Axes { title: "Test accuracy", x: "epoch", y: "test accuracy (%)" };
        let l = vec![Line { name: "full".into(), points: vec![(1.0, 80.0), (2.0, 90.0)], reference: false }];
        let s = lines(&axes, &l, None).expect("draws");
        assert!(s.starts_with("<svg") && s.contains("Test accuracy") && s.contains("epoch") && s.contains("full"));
        let b = stacked(&axes, &["fc1".into(), "fc2".into()], &[("forward".into(), vec![1.0, 2.0])]).expect("draws");
        assert!(b.contains("<rect") && b.contains("fc2") && b.contains("forward"));
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(1.5e-9), "1.5e-9");
    }
}
