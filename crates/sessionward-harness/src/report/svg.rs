//! A small inline-SVG chart kit: line charts over simulated minutes (one or two y axes),
//! stacked areas, and bar charts (linear or log scale). Output is a self-contained `<svg>`
//! element with no external references; every text is escaped.

use std::fmt::Write as _;

use super::format::{clock, compact, escape_html};

const WIDTH: f64 = 760.0;
const PLOT_HEIGHT: f64 = 240.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT_SINGLE: f64 = 24.0;
const MARGIN_RIGHT_DUAL: f64 = 70.0;
/// Room under the plot for tick labels and the x-axis title.
const X_AXIS_HEIGHT: f64 = 46.0;
const LEGEND_ROW: f64 = 20.0;
const FONT_CHAR_WIDTH: f64 = 7.0;

/// One named series of values, aligned with the chart's x values.
pub(crate) struct Series<'a> {
    /// Legend name (escaped on output).
    pub(crate) name: &'a str,
    /// CSS colour.
    pub(crate) color: String,
    /// One value per x.
    pub(crate) values: Vec<f64>,
}

/// One bar of a bar chart.
pub(crate) struct Bar {
    /// Category label under the bar.
    pub(crate) label: String,
    /// Height of the bar.
    pub(crate) value: f64,
    /// Text shown above the bar and in its tooltip.
    pub(crate) value_text: String,
}

/// The n-th colour of the report's palette: ten distinct colours, then golden-angle hues.
pub(crate) fn color(i: usize) -> String {
    const PALETTE: [&str; 10] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac",
    ];
    match PALETTE.get(i) {
        Some(c) => (*c).to_owned(),
        None => format!("hsl({:.0}, 60%, 50%)", (i as f64 * 137.508) % 360.0),
    }
}

/// Maps a data interval onto a pixel interval.
#[derive(Clone, Copy)]
struct Linear {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Linear {
    fn at(self, v: f64) -> f64 {
        if self.d1 == self.d0 {
            return self.r0;
        }
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// Plot area of a chart.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving at most about `target` intervals.
fn nice_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / target;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Ticks from 0 up to a nice maximum covering `max`; returns `(nice_max, ticks)`.
fn zero_based_ticks(max: f64) -> (f64, Vec<f64>) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let step = nice_step(max, 5.0);
    let top = (max / step).ceil() * step;
    let count = (top / step).round() as usize;
    let ticks = (0..=count).map(|i| i as f64 * step).collect();
    (top, ticks)
}

/// Ticks over a range of simulated minutes, on round clock values.
fn minute_ticks(min: f64, max: f64) -> Vec<f64> {
    const STEPS: [f64; 15] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 240.0, 360.0, 720.0, 1440.0, 2880.0,
        10080.0,
    ];
    let range = max - min;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| range / s <= 8.0)
        .unwrap_or_else(|| nice_step(range, 8.0));
    let first = (min / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= max + 1e-9 && ticks.len() < 64 {
        ticks.push(t);
        t += step;
    }
    ticks
}

/// Ticks on a log axis from `10^lo` to `10^hi`: every decade, plus 2 and 5 times each decade
/// when the axis spans at most two decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = (lo as i32, hi as i32);
    let steps: &[f64] = if hi - lo <= 2 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    for e in lo..=hi {
        for step in steps {
            let t = step * 10f64.powi(e);
            if e < hi || *step == 1.0 {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// Where each legend item goes: `(x, row)` per item, and the number of rows.
fn legend_layout(names: &[&str], width: f64) -> (Vec<(f64, usize)>, usize) {
    let mut placed = Vec::with_capacity(names.len());
    let (mut x, mut row) = (0.0, 0);
    for name in names {
        let item = 22.0 + name.chars().count() as f64 * FONT_CHAR_WIDTH + 18.0;
        if x > 0.0 && x + item > width {
            x = 0.0;
            row += 1;
        }
        placed.push((x, row));
        x += item;
    }
    let rows = if names.is_empty() { 0 } else { row + 1 };
    (placed, rows)
}

fn open_svg(out: &mut String, id: &str, title: &str, height: f64) {
    let id = escape_html(id);
    let title = escape_html(title);
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" \
         height=\"{height}\" role=\"img\" aria-labelledby=\"{id}-title\">\n\
         <title id=\"{id}-title\">{title}</title>\n\
         <rect class=\"bg\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\"></rect>\n\
         <text class=\"chart-title\" x=\"{x}\" y=\"24\">{title}</text>\n",
        x = MARGIN_LEFT,
    );
}

fn no_data(out: &mut String, frame: &Frame) {
    let _ = writeln!(
        out,
        "<text class=\"no-data\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no data</text>",
        (frame.left + frame.right) / 2.0,
        (frame.top + frame.bottom) / 2.0
    );
}

fn plot_border(out: &mut String, frame: &Frame) {
    let _ = writeln!(
        out,
        "<rect class=\"plot\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"></rect>",
        frame.left,
        frame.top,
        frame.right - frame.left,
        frame.bottom - frame.top
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Left,
    Right,
}

/// Draws a y axis: grid lines (left side only), tick labels and a rotated title.
fn y_axis(
    out: &mut String,
    frame: &Frame,
    side: Side,
    ticks: &[f64],
    scale: Linear,
    label: &str,
    fmt: &dyn Fn(f64) -> String,
) {
    let _ = writeln!(out, "<g class=\"axis y-axis\">");
    for &t in ticks {
        let y = scale.at(t);
        if side == Side::Left {
            let _ = writeln!(
                out,
                "<line class=\"grid\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"></line>",
                frame.left, frame.right
            );
        }
        let (x, anchor) = match side {
            Side::Left => (frame.left - 6.0, "end"),
            Side::Right => (frame.right + 6.0, "start"),
        };
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            y + 4.0,
            escape_html(&fmt(t))
        );
    }
    let x = match side {
        Side::Left => 16.0,
        Side::Right => WIDTH - 10.0,
    };
    let y = (frame.top + frame.bottom) / 2.0;
    let _ = writeln!(
        out,
        "<text class=\"axis-title\" x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {x:.1} {y:.1})\">{}</text>\n</g>",
        escape_html(label)
    );
}

/// Draws an x axis: tick marks, tick labels and a title.
fn x_axis(out: &mut String, frame: &Frame, ticks: &[(f64, String)], label: &str) {
    let _ = writeln!(out, "<g class=\"axis x-axis\">");
    for (x, text) in ticks {
        let _ = writeln!(
            out,
            "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{b:.1}\" x2=\"{x:.1}\" y2=\"{b5:.1}\"></line>\n\
             <text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{}</text>",
            escape_html(text),
            b = frame.bottom,
            b5 = frame.bottom + 5.0,
            ty = frame.bottom + 18.0,
        );
    }
    let _ = writeln!(
        out,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n</g>",
        (frame.left + frame.right) / 2.0,
        frame.bottom + 38.0,
        escape_html(label)
    );
}

fn legend(out: &mut String, frame: &Frame, items: &[(&str, &str)]) {
    if items.is_empty() {
        return;
    }
    let names: Vec<&str> = items.iter().map(|(n, _)| *n).collect();
    let (placed, _) = legend_layout(&names, frame.right - frame.left);
    let _ = writeln!(out, "<g class=\"legend\">");
    for ((name, colour), (dx, row)) in items.iter().zip(placed) {
        let x = frame.left + dx;
        let y = frame.bottom + X_AXIS_HEIGHT + 6.0 + row as f64 * LEGEND_ROW;
        let _ = writeln!(
            out,
            "<rect class=\"swatch\" x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{}\"></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y,
            escape_html(colour),
            x + 20.0,
            y + 10.0,
            escape_html(name)
        );
    }
    let _ = writeln!(out, "</g>");
}

fn polyline(out: &mut String, xs: &[f64], values: &[f64], x: Linear, y: Linear, colour: &str) {
    let mut points = String::with_capacity(xs.len() * 12);
    for (&px, &v) in xs.iter().zip(values) {
        let _ = write!(points, "{:.1},{:.1} ", x.at(px), y.at(v));
    }
    let _ = writeln!(
        out,
        "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"></polyline>",
        escape_html(colour),
        points.trim_end()
    );
}

/// How a minute chart draws its series.
pub(crate) enum MinuteKind<'a> {
    /// Lines on one left axis, and optionally one series on its own right axis.
    Lines {
        /// Title of the right axis and its series, if any.
        right: Option<(&'a str, Series<'a>)>,
    },
    /// Areas stacked in order on one axis.
    Stacked,
}

/// A chart over simulated minutes.
pub(crate) struct MinuteChart<'a> {
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) y_label: &'a str,
    /// Simulated minute of each point, ascending.
    pub(crate) minutes: &'a [f64],
    pub(crate) series: Vec<Series<'a>>,
    pub(crate) kind: MinuteKind<'a>,
}

impl MinuteChart<'_> {
    /// Renders the chart as one `<svg>` element.
    pub(crate) fn render(&self) -> String {
        let dual = matches!(self.kind, MinuteKind::Lines { right: Some(_) });
        let margin_right = if dual {
            MARGIN_RIGHT_DUAL
        } else {
            MARGIN_RIGHT_SINGLE
        };
        let frame = Frame {
            left: MARGIN_LEFT,
            right: WIDTH - margin_right,
            top: MARGIN_TOP,
            bottom: MARGIN_TOP + PLOT_HEIGHT,
        };
        let mut legend_items: Vec<(&str, &str)> = self
            .series
            .iter()
            .map(|s| (s.name, s.color.as_str()))
            .collect();
        if let MinuteKind::Lines {
            right: Some((_, s)),
        } = &self.kind
        {
            legend_items.push((s.name, s.color.as_str()));
        }
        let names: Vec<&str> = legend_items.iter().map(|(n, _)| *n).collect();
        let (_, rows) = legend_layout(&names, frame.right - frame.left);
        let height = frame.bottom + X_AXIS_HEIGHT + rows as f64 * LEGEND_ROW + 12.0;

        let mut out = String::new();
        open_svg(&mut out, self.id, self.title, height);
        plot_border(&mut out, &frame);

        let (Some(&first), Some(&last)) = (self.minutes.first(), self.minutes.last()) else {
            no_data(&mut out, &frame);
            legend(&mut out, &frame, &legend_items);
            out.push_str("</svg>\n");
            return out;
        };
        let (x_min, x_max) = if last > first {
            (first, last)
        } else {
            (first, first + 1.0)
        };
        let x = Linear {
            d0: x_min,
            d1: x_max,
            r0: frame.left,
            r1: frame.right,
        };

        // Stacked layers: cumulative sums, bottom layer first.
        let stacked: Vec<Vec<f64>> = match self.kind {
            MinuteKind::Stacked => {
                let mut acc = vec![0.0; self.minutes.len()];
                self.series
                    .iter()
                    .map(|s| {
                        for (a, v) in acc.iter_mut().zip(&s.values) {
                            *a += v;
                        }
                        acc.clone()
                    })
                    .collect()
            }
            MinuteKind::Lines { .. } => Vec::new(),
        };
        let left_max = match self.kind {
            MinuteKind::Stacked => stacked.last().map_or(0.0, |top| max_of(top)),
            MinuteKind::Lines { .. } => self
                .series
                .iter()
                .map(|s| max_of(&s.values))
                .fold(0.0, f64::max),
        };
        let (top, ticks) = zero_based_ticks(left_max);
        let y = Linear {
            d0: 0.0,
            d1: top,
            r0: frame.bottom,
            r1: frame.top,
        };
        y_axis(
            &mut out,
            &frame,
            Side::Left,
            &ticks,
            y,
            self.y_label,
            &compact,
        );

        let x_ticks: Vec<(f64, String)> = minute_ticks(x_min, x_max)
            .into_iter()
            .map(|t| (x.at(t), clock(t)))
            .collect();
        x_axis(&mut out, &frame, &x_ticks, "simulated time (h:mm)");

        match &self.kind {
            MinuteKind::Stacked => {
                let _ = writeln!(out, "<g class=\"areas\">");
                for (i, (series, upper)) in self.series.iter().zip(&stacked).enumerate() {
                    let lower = if i == 0 { None } else { stacked.get(i - 1) };
                    let mut d = String::with_capacity(self.minutes.len() * 24);
                    for (j, (&m, &v)) in self.minutes.iter().zip(upper).enumerate() {
                        let cmd = if j == 0 { 'M' } else { 'L' };
                        let _ = write!(d, "{cmd}{:.1},{:.1} ", x.at(m), y.at(v));
                    }
                    for (j, &m) in self.minutes.iter().enumerate().rev() {
                        let v = lower.and_then(|l| l.get(j)).copied().unwrap_or(0.0);
                        let _ = write!(d, "L{:.1},{:.1} ", x.at(m), y.at(v));
                    }
                    d.push('Z');
                    let _ = writeln!(
                        out,
                        "<path class=\"area\" fill=\"{}\" fill-opacity=\"0.85\" d=\"{d}\"><title>{}</title></path>",
                        escape_html(&series.color),
                        escape_html(series.name)
                    );
                }
                let _ = writeln!(out, "</g>");
            }
            MinuteKind::Lines { right } => {
                for s in &self.series {
                    polyline(&mut out, self.minutes, &s.values, x, y, &s.color);
                }
                if let Some((label, s)) = right {
                    let (top, ticks) = zero_based_ticks(max_of(&s.values));
                    let y2 = Linear {
                        d0: 0.0,
                        d1: top,
                        r0: frame.bottom,
                        r1: frame.top,
                    };
                    y_axis(&mut out, &frame, Side::Right, &ticks, y2, label, &compact);
                    polyline(&mut out, self.minutes, &s.values, x, y2, &s.color);
                }
            }
        }
        legend(&mut out, &frame, &legend_items);
        out.push_str("</svg>\n");
        out
    }
}

fn max_of(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// The y mapping of a bar chart.
#[derive(Clone, Copy)]
enum YScale {
    Linear(Linear),
    /// Maps log10 of the value; values at or below the lowest decade sit on the axis.
    Log(Linear),
}

impl YScale {
    fn at(self, v: f64) -> f64 {
        match self {
            Self::Linear(scale) => scale.at(v),
            Self::Log(scale) if v > 0.0 => scale.at(v.log10().clamp(scale.d0, scale.d1)),
            Self::Log(scale) => scale.r0,
        }
    }
}

/// A bar chart with one bar per category.
pub(crate) struct BarChart<'a> {
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) x_label: &'a str,
    pub(crate) y_label: &'a str,
    pub(crate) bars: Vec<Bar>,
    /// Log10 y axis (for values spanning orders of magnitude).
    pub(crate) log: bool,
    /// Formats a y tick value.
    pub(crate) tick_format: &'a dyn Fn(f64) -> String,
    pub(crate) color: &'a str,
}

impl BarChart<'_> {
    /// Renders the chart as one `<svg>` element.
    pub(crate) fn render(&self) -> String {
        let frame = Frame {
            left: MARGIN_LEFT,
            right: WIDTH - MARGIN_RIGHT_SINGLE,
            top: MARGIN_TOP,
            bottom: MARGIN_TOP + PLOT_HEIGHT,
        };
        let height = frame.bottom + X_AXIS_HEIGHT + 12.0;
        let mut out = String::new();
        open_svg(&mut out, self.id, self.title, height);
        plot_border(&mut out, &frame);

        let max = max_of(&self.bars.iter().map(|b| b.value).collect::<Vec<_>>());
        if self.bars.is_empty() || max <= 0.0 {
            no_data(&mut out, &frame);
            x_axis(&mut out, &frame, &[], self.x_label);
            out.push_str("</svg>\n");
            return out;
        }

        let (y, ticks) = if self.log {
            let min_positive = self
                .bars
                .iter()
                .map(|b| b.value)
                .filter(|v| *v > 0.0 && v.is_finite())
                .fold(f64::INFINITY, f64::min);
            let lo = min_positive.log10().floor().max(0.0);
            let hi = max.log10().ceil().max(lo + 1.0);
            let scale = Linear {
                d0: lo,
                d1: hi,
                r0: frame.bottom,
                r1: frame.top,
            };
            (YScale::Log(scale), log_ticks(lo, hi))
        } else {
            let (top, ticks) = zero_based_ticks(max);
            let scale = Linear {
                d0: 0.0,
                d1: top,
                r0: frame.bottom,
                r1: frame.top,
            };
            (YScale::Linear(scale), ticks)
        };
        let y = |v: f64| y.at(v);

        // Grid lines and tick labels, computed through the (possibly log) mapping.
        let _ = writeln!(out, "<g class=\"axis y-axis\">");
        for &t in &ticks {
            let py = y(t);
            let _ = writeln!(
                out,
                "<line class=\"grid\" x1=\"{:.1}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"></line>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                frame.left,
                frame.right,
                frame.left - 6.0,
                py + 4.0,
                escape_html(&(self.tick_format)(t))
            );
        }
        let (ax, ay) = (16.0, (frame.top + frame.bottom) / 2.0);
        let _ = writeln!(
            out,
            "<text class=\"axis-title\" x=\"{ax:.1}\" y=\"{ay:.1}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 {ax:.1} {ay:.1})\">{}</text>\n</g>",
            escape_html(self.y_label)
        );

        let band = (frame.right - frame.left) / self.bars.len() as f64;
        let bar_width = (band * 0.6).min(90.0);
        let mut x_ticks = Vec::with_capacity(self.bars.len());
        let _ = writeln!(out, "<g class=\"bars\">");
        for (i, bar) in self.bars.iter().enumerate() {
            let centre = frame.left + band * (i as f64 + 0.5);
            let top = y(bar.value).min(frame.bottom);
            let h = (frame.bottom - top).max(0.0);
            let text = escape_html(&bar.value_text);
            let _ = writeln!(
                out,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{bar_width:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{}: {text}</title></rect>\n\
                 <text class=\"bar-value\" x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{text}</text>",
                centre - bar_width / 2.0,
                escape_html(self.color),
                escape_html(&bar.label),
                (top - 5.0).max(frame.top + 10.0),
            );
            x_ticks.push((centre, bar.label.clone()));
        }
        let _ = writeln!(out, "</g>");
        x_axis(&mut out, &frame, &x_ticks, self.x_label);
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_maximum() {
        let (top, ticks) = zero_based_ticks(937.0);
        assert_eq!(top, 1000.0);
        assert_eq!(ticks, vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        let (top, _) = zero_based_ticks(0.0);
        assert_eq!(top, 1.0);
    }

    #[test]
    fn minute_ticks_use_round_clock_values() {
        assert_eq!(
            minute_ticks(0.0, 1439.0),
            vec![0.0, 180.0, 360.0, 540.0, 720.0, 900.0, 1080.0, 1260.0]
        );
        assert_eq!(
            minute_ticks(3.0, 9.0),
            vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        );
    }

    #[test]
    fn log_ticks_subdivide_short_axes() {
        assert_eq!(log_ticks(2.0, 3.0), vec![100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(log_ticks(1.0, 5.0), vec![1e1, 1e2, 1e3, 1e4, 1e5]);
    }

    #[test]
    fn legend_wraps_rows() {
        let (placed, rows) = legend_layout(&["a"; 3], 100.0);
        assert_eq!(rows, 2);
        assert_eq!(placed[0], (0.0, 0));
        assert_eq!(placed[2].1, 1);
        assert_eq!(legend_layout(&[], 100.0).1, 0);
    }

    #[test]
    fn palette_is_distinct_beyond_ten() {
        let colours: Vec<String> = (0..20).map(color).collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), colours.len());
    }
}
