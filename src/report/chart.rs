//! A sweep chart as SVG: failed requests and detection time against the swept value.
//!
//! Hand-written (no plotting crate: the chart is two scatter panels, and writing the SVG
//! directly keeps the output byte-for-byte deterministic and the build lean). Two panels
//! share the x axis: numeric and linear when one numeric value is swept (`x` given for
//! every point; points joined in x order), categorical otherwise (the labels, evenly
//! spaced, in the order given). With `--repeat` each point carries min–max whiskers. Axis
//! ticks are round numbers (1, 2 or 5 × 10ⁿ apart) and the y axes start at 0 and cover
//! every value and whisker. A detection that never happened is drawn as a hollow marker on
//! the panel's top edge, titled "not detected". A point whose figures cannot be trusted
//! (`unreliable`: its run had warnings, requests in flight at the end, an interruption) is
//! never drawn as a value — its numbers would look like a good setting (a point where
//! nothing completed shows 0 failed) — but as a grey cross on the top edge of both panels,
//! titled with the reason, left out of the line and the axis ranges. Empty or missing data
//! never produces NaN.

use std::fmt::Write as _;

/// One point of a sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartPoint {
    /// The swept value(s), e.g. `interval=5s`.
    pub label: String,
    /// Numeric x, when one numeric axis is swept.
    pub x: Option<f64>,
    /// Failed requests (the mean with `--repeat`).
    pub failed: f64,
    /// Smallest failed over the repeats.
    pub failed_min: Option<f64>,
    /// Largest failed over the repeats.
    pub failed_max: Option<f64>,
    /// Detection time in seconds (`None`: not detected).
    pub detection_s: Option<f64>,
    /// Smallest detection time over the repeats.
    pub detection_min: Option<f64>,
    /// Largest detection time over the repeats.
    pub detection_max: Option<f64>,
    /// Why the point's figures cannot be trusted (`None`: they can).
    pub unreliable: Option<String>,
    /// Error budget consumed (%, the mean with `--repeat`; drawn by [`sweep_svg_with_budget`]).
    pub budget_pct: Option<f64>,
    /// Smallest budget consumed over the repeats.
    pub budget_min: Option<f64>,
    /// Largest budget consumed over the repeats.
    pub budget_max: Option<f64>,
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const PANEL_H: f64 = 210.0;
const GAP: f64 = 64.0;
pub(crate) const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

/// Round tick values covering `[lo, hi]`: about `target` ticks, 1, 2 or 5 × 10ⁿ apart.
/// Returns `(ticks, step)`; the first tick is ≤ `lo` and the last ≥ `hi`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    if hi - lo < 1e-12 {
        // a single value: a unit-ish span around it
        let pad = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        if lo >= 0.0 && lo - pad < 0.0 {
            lo = 0.0;
        } else {
            lo -= pad;
        }
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let ticks = (first as i64..=last as i64).map(|k| clean(k as f64 * step)).collect();
    (ticks, step)
}

/// Drops floating-point noise such as 0.30000000000000004 and -0.
fn clean(v: f64) -> f64 {
    let r = (v * 1e9).round() / 1e9;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// A tick label: as few decimals as the step needs, thousands with separators.
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().max(0.0) as usize
    };
    let s = format!("{:.*}", decimals, v);
    if decimals == 0 && v.abs() >= 1_000.0 {
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return format!("{sign}{out}");
    }
    s
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A coordinate, rounded so output is stable and short.
pub(crate) fn c(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// What one panel plots per point: value, whisker low, whisker high.
type Series = Vec<(Option<f64>, Option<f64>, Option<f64>)>;

/// The width of a panel's plotting area.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;

/// The chart: a title, the x axis label, and the points in sweep order.
pub fn sweep_svg(title: &str, x_label: &str, points: &[ChartPoint]) -> String {
    sweep_svg_panels(title, x_label, points, false)
}

/// [`sweep_svg`] with a third panel below the two, the error budget consumed (%), and in
/// each panel of a numeric sweep a shaded min–max band joining the whiskers (the HTML
/// report's sweep chart).
pub fn sweep_svg_with_budget(title: &str, x_label: &str, points: &[ChartPoint]) -> String {
    sweep_svg_panels(title, x_label, points, true)
}

fn sweep_svg_panels(title: &str, x_label: &str, points: &[ChartPoint], budget: bool) -> String {
    let mut x = XAxis::new(points);
    x.panels = if budget { 3 } else { 2 };
    x.bands = budget;
    let mut s = String::new();
    header(&mut s, title, x.height());
    let mut panels = vec![
        Panel {
            id: "failed",
            ylabel: "failed requests",
            unit: "",
            color: "#c0392b",
            top: TOP,
        },
        Panel {
            id: "detection",
            ylabel: "detection time (s)",
            unit: " s",
            color: "#2471a3",
            top: TOP + PANEL_H + GAP,
        },
    ];
    let mut series = vec![failed_series(points), detection_series(points)];
    if budget {
        panels.push(Panel {
            id: "budget",
            ylabel: "budget consumed (%)",
            unit: " %",
            color: "#7d3c98",
            top: TOP + 2.0 * (PANEL_H + GAP),
        });
        series.push(budget_series(points));
    }
    for (panel, series) in panels.iter().zip(&series) {
        panel.draw(&mut s, points, &x, series);
    }
    x.draw_labels(&mut s, x_label);
    if points.is_empty() {
        let _ = writeln!(
            s,
            "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888888\">no points</text>",
            c(WIDTH / 2.0),
            c(TOP + PANEL_H / 2.0)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The `<svg>` element, the tooltip title, the white background and the heading.
fn header(s: &mut String, title: &str, height: f64) {
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT} font-size=\"12\">",
        w = c(WIDTH),
        h = c(height)
    );
    let _ = writeln!(s, "<title>{}</title>", esc(title));
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        c(WIDTH),
        c(height)
    );
    let _ = writeln!(
        s,
        "<text class=\"title\" x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        c(WIDTH / 2.0),
        esc(title)
    );
}

/// The failed-requests panel's values; an unreliable point has no value to draw.
fn failed_series(points: &[ChartPoint]) -> Series {
    points
        .iter()
        .map(|p| match p.unreliable {
            Some(_) => (None, None, None),
            None => (finite(Some(p.failed)), finite(p.failed_min), finite(p.failed_max)),
        })
        .collect()
}

/// The detection-time panel's values; an unreliable point has no value to draw.
fn detection_series(points: &[ChartPoint]) -> Series {
    points
        .iter()
        .map(|p| match p.unreliable {
            Some(_) => (None, None, None),
            None => (finite(p.detection_s), finite(p.detection_min), finite(p.detection_max)),
        })
        .collect()
}

/// The budget panel's values; an unreliable point has no value to draw.
fn budget_series(points: &[ChartPoint]) -> Series {
    points
        .iter()
        .map(|p| match p.unreliable {
            Some(_) => (None, None, None),
            None => (finite(p.budget_pct), finite(p.budget_min), finite(p.budget_max)),
        })
        .collect()
}

/// The shared x axis: where each point sits, the ticks, and the room the tick labels need.
#[derive(Debug)]
struct XAxis {
    /// Linear in one numeric swept value (points joined in x order); else categorical.
    numeric: bool,
    /// Each point's x position, in sweep order.
    xs: Vec<f64>,
    /// Tick positions and labels.
    ticks: Vec<(f64, String)>,
    /// Tick labels turned 35° (more than 6 categories).
    rotate: bool,
    /// Height below the lower panel for the tick labels.
    room: f64,
    /// Panels stacked above the labels.
    panels: usize,
    /// Shade the min–max band between the whiskers (numeric x only).
    bands: bool,
}

impl XAxis {
    fn new(points: &[ChartPoint]) -> Self {
        let numeric = !points.is_empty() && points.iter().all(|p| finite(p.x).is_some());
        let (xs, ticks) = if numeric {
            Self::linear(points)
        } else {
            Self::categorical(points)
        };
        let rotate = !numeric && points.len() > 6;
        // rotated labels need room for the longest one (≈ 6.5 px a character at 12 px, at 35°)
        let longest = ticks.iter().map(|(_, l)| l.chars().count()).max().unwrap_or(0) as f64;
        let room = if rotate { 30.0 + longest * 6.5 * 0.574 } else { 40.0 };
        XAxis {
            numeric,
            xs,
            ticks,
            rotate,
            room,
            panels: 2,
            bands: false,
        }
    }

    /// Round ticks spanning every x; each point at its value.
    fn linear(points: &[ChartPoint]) -> (Vec<f64>, Vec<(f64, String)>) {
        let lo = points.iter().filter_map(|p| finite(p.x)).fold(f64::INFINITY, f64::min);
        let hi = points
            .iter()
            .filter_map(|p| finite(p.x))
            .fold(f64::NEG_INFINITY, f64::max);
        let (ticks, step) = nice_ticks(lo, hi, 6);
        let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
        let map = |v: f64| LEFT + (v - t0) / (t1 - t0) * PLOT_W;
        let xs = points.iter().map(|p| map(p.x.unwrap_or(t0))).collect();
        let xt = ticks.iter().map(|&t| (map(t), tick_label(t, step))).collect();
        (xs, xt)
    }

    /// One evenly spaced slot per point, labelled with the point's label.
    fn categorical(points: &[ChartPoint]) -> (Vec<f64>, Vec<(f64, String)>) {
        let n = points.len().max(1) as f64;
        let xs: Vec<f64> = (0..points.len())
            .map(|i| LEFT + (i as f64 + 0.5) / n * PLOT_W)
            .collect();
        let xt = xs.iter().zip(points).map(|(&x, p)| (x, p.label.clone())).collect();
        (xs, xt)
    }

    /// The top of the x tick labels: the bottom of the lower panel.
    fn base(&self) -> f64 {
        TOP + self.panels as f64 * PANEL_H + (self.panels as f64 - 1.0) * GAP
    }

    /// The whole figure's height.
    fn height(&self) -> f64 {
        self.base() + self.room + 24.0
    }

    /// The tick labels under the lower panel and the axis label.
    fn draw_labels(&self, s: &mut String, x_label: &str) {
        let base = self.base();
        for (x, label) in &self.ticks {
            if self.rotate {
                let _ = writeln!(
                    s,
                    "<text class=\"xtick\" transform=\"translate({},{}) rotate(-35)\" text-anchor=\"end\">{}</text>",
                    c(*x),
                    c(base + 14.0),
                    esc(label)
                );
            } else {
                let _ = writeln!(
                    s,
                    "<text class=\"xtick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    c(*x),
                    c(base + 18.0),
                    esc(label)
                );
            }
        }
        let _ = writeln!(
            s,
            "<text class=\"xlabel\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            c(LEFT + PLOT_W / 2.0),
            c(base + self.room + 8.0),
            esc(x_label)
        );
    }
}

/// A panel's y axis: round ticks from 0 (or below, for negative values) covering every
/// value and whisker, mapped onto the panel's height.
#[derive(Debug)]
struct YScale {
    ticks: Vec<f64>,
    step: f64,
    /// The panel's bottom edge, where the first tick sits.
    bottom: f64,
}

impl YScale {
    fn new(series: &Series, top: f64) -> Self {
        let values = || series.iter().flat_map(|&(v, a, b)| [v, a, b]).flatten();
        let hi = values().fold(0.0f64, f64::max);
        let lo = values().fold(0.0f64, f64::min);
        let (ticks, step) = nice_ticks(lo, if hi > lo { hi } else { lo + 1.0 }, 5);
        YScale {
            ticks,
            step,
            bottom: top + PANEL_H,
        }
    }

    /// The y coordinate of value `v`.
    fn y(&self, v: f64) -> f64 {
        let (y0, y1) = (self.ticks[0], self.ticks[self.ticks.len() - 1]);
        self.bottom - (v - y0) / (y1 - y0) * PANEL_H
    }
}

/// One of the two panels: what it shows and where.
struct Panel {
    /// The `<g>` element's id.
    id: &'static str,
    ylabel: &'static str,
    /// Appended to values in tooltips.
    unit: &'static str,
    color: &'static str,
    /// The panel's top edge.
    top: f64,
}

impl Panel {
    fn draw(&self, s: &mut String, points: &[ChartPoint], x: &XAxis, series: &Series) {
        let y = YScale::new(series, self.top);
        let _ = writeln!(s, "<g class=\"panel\" id=\"{}\">", self.id);
        self.draw_axes(s, x, &y);
        if x.numeric && x.bands {
            self.draw_band(s, points, x, series, &y);
        }
        if x.numeric {
            self.draw_line(s, points, x, series, &y);
        }
        for ((p, &px), &vab) in points.iter().zip(&x.xs).zip(series.iter()) {
            self.draw_point(s, p, px, vab, &y);
        }
        self.draw_legend(s, points, series);
        let _ = writeln!(s, "</g>");
    }

    /// Grid lines and y ticks, x grid lines at the x ticks, the frame and the y label.
    fn draw_axes(&self, s: &mut String, x: &XAxis, y: &YScale) {
        for &t in &y.ticks {
            let ty = y.y(t);
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e5e5e5\"/>",
                c(LEFT),
                c(ty),
                c(LEFT + PLOT_W),
                c(ty)
            );
            let _ = writeln!(
                s,
                "<text class=\"ytick\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                c(LEFT - 6.0),
                c(ty),
                tick_label(t, y.step)
            );
        }
        for (tx, _) in &x.ticks {
            let _ = writeln!(
                s,
                "<line class=\"xgrid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#f0f0f0\"/>",
                c(self.top),
                c(y.bottom),
                x = c(*tx)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444444\"/>",
            c(LEFT),
            c(self.top),
            c(PLOT_W),
            c(PANEL_H)
        );
        let _ = writeln!(
            s,
            "<text class=\"ylabel\" transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            c(18.0),
            c(self.top + PANEL_H / 2.0),
            esc(self.ylabel)
        );
    }

    /// The min–max band: a shaded polygon through the whiskers' ends, in x order, over the
    /// points that have both (numeric x only; nothing with fewer than two).
    fn draw_band(&self, s: &mut String, points: &[ChartPoint], x: &XAxis, series: &Series, y: &YScale) {
        let mut pts: Vec<(f64, f64, f64, f64)> = points
            .iter()
            .zip(&x.xs)
            .zip(series.iter())
            .filter(|((p, _), _)| p.unreliable.is_none())
            .filter_map(|((p, &px), &(_, a, b))| Some((p.x.unwrap_or(0.0), px, y.y(a?.min(b?)), y.y(a?.max(b?)))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() < 2 {
            return;
        }
        let upper = pts.iter().map(|&(_, px, _, hi)| format!("{},{}", c(px), c(hi)));
        let lower = pts.iter().rev().map(|&(_, px, lo, _)| format!("{},{}", c(px), c(lo)));
        let d: Vec<String> = upper.chain(lower).collect();
        let _ = writeln!(
            s,
            "<polygon class=\"band\" points=\"{}\" fill=\"{}\" fill-opacity=\"0.15\" stroke=\"none\"><title>min–max over the runs</title></polygon>",
            d.join(" "),
            self.color
        );
    }

    /// The line joining the points that have a value, in x order (numeric x only).
    fn draw_line(&self, s: &mut String, points: &[ChartPoint], x: &XAxis, series: &Series, y: &YScale) {
        let mut pts: Vec<(f64, f64, f64)> = points
            .iter()
            .zip(&x.xs)
            .zip(series.iter())
            .filter_map(|((p, &px), &(v, _, _))| v.map(|v| (p.x.unwrap_or(0.0), px, y.y(v))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > 1 {
            let d: Vec<String> = pts.iter().map(|&(_, px, py)| format!("{},{}", c(px), c(py))).collect();
            let _ = writeln!(
                s,
                "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" stroke-opacity=\"0.6\"/>",
                d.join(" "),
                self.color
            );
        }
    }

    /// One point: its whisker, then a filled marker (a value), a hollow one on the top edge
    /// (not detected) or a grey cross on the top edge (unreliable).
    fn draw_point(
        &self,
        s: &mut String,
        p: &ChartPoint,
        x: f64,
        (v, a, b): (Option<f64>, Option<f64>, Option<f64>),
        y: &YScale,
    ) {
        let (color, unit, top) = (self.color, self.unit, self.top);
        if let (Some(a), Some(b)) = (a, b) {
            let (ya, yb) = (y.y(a.min(b)), y.y(a.max(b)));
            let _ = writeln!(
                s,
                "<path class=\"whisker\" d=\"M{x},{ya}V{yb}M{l},{ya}H{r}M{l},{yb}H{r}\" stroke=\"{color}\" stroke-width=\"1.2\" fill=\"none\"/>",
                x = c(x),
                ya = c(ya),
                yb = c(yb),
                l = c(x - 5.0),
                r = c(x + 5.0)
            );
        }
        if let Some(why) = &p.unreliable {
            let (l, r, u, d) = (c(x - 5.0), c(x + 5.0), c(top - 5.0), c(top + 5.0));
            let _ = writeln!(
                s,
                "<path class=\"marker unreliable\" d=\"M{l},{u}L{r},{d}M{l},{d}L{r},{u}\" stroke=\"#888888\" stroke-width=\"2\" fill=\"none\"><title>{}: UNRELIABLE, not drawn — {}</title></path>",
                esc(&p.label),
                esc(why)
            );
            return;
        }
        match v {
            Some(v) => {
                let range = match (a, b) {
                    (Some(a), Some(b)) => format!(" (min {}{unit}, max {}{unit})", num(a), num(b)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "<circle class=\"marker\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{color}\"><title>{}: {}{unit}{}</title></circle>",
                    c(x),
                    c(y.y(v)),
                    esc(&p.label),
                    num(v),
                    range
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<circle class=\"marker missing\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#ffffff\" stroke=\"{color}\" stroke-width=\"1.5\"><title>{}: not detected</title></circle>",
                    c(x),
                    c(top),
                    esc(&p.label)
                );
            }
        }
    }

    /// Above the panel: what a cross (left) and a hollow marker (right) mean, when drawn.
    fn draw_legend(&self, s: &mut String, points: &[ChartPoint], series: &Series) {
        if points.iter().any(|p| p.unreliable.is_some()) {
            let _ = writeln!(
                s,
                "<text class=\"legend unreliable\" x=\"{}\" y=\"{}\" text-anchor=\"start\" fill=\"#555555\">× on the top edge: unreliable (warnings), not drawn</text>",
                c(LEFT),
                c(self.top - 8.0)
            );
        }
        if points
            .iter()
            .zip(series.iter())
            .any(|(p, &(v, _, _))| v.is_none() && p.unreliable.is_none())
        {
            let _ = writeln!(
                s,
                "<text class=\"legend\" x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555555\">○ on the top edge: not detected</text>",
                c(LEFT + PLOT_W),
                c(self.top - 8.0)
            );
        }
    }
}

/// A value for a tooltip: integers plainly, others with up to 2 decimals.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        c(v)
    }
}

/// The sweep chart's points: x numeric when exactly one axis is swept and every value is
/// a number or a duration (then in seconds), labels otherwise.
pub fn chart_points(sw: &crate::analysis::results::SweepReport) -> (String, Vec<ChartPoint>) {
    let numeric = |v: &str| -> Option<f64> {
        v.parse::<f64>()
            .ok()
            .or_else(|| v.parse::<crate::time::Dur>().ok().map(|d| d.secs_f64()))
    };
    let one = sw.axes.len() == 1;
    let xs: Vec<Option<f64>> = sw
        .points
        .iter()
        .map(|p| {
            if one {
                p.params.values().next().and_then(|v| v.as_str()).and_then(numeric)
            } else {
                None
            }
        })
        .collect();
    let all_numeric = one && xs.iter().all(Option::is_some);
    let is_dur = one
        && sw.points.iter().all(|p| {
            p.params
                .values()
                .next()
                .and_then(|v| v.as_str())
                .is_some_and(|v| v.parse::<f64>().is_err())
        });
    let x_label = match (one, is_dur) {
        (true, true) => format!("{} (s)", sw.axes[0]),
        (true, false) => sw.axes[0].clone(),
        _ => sw.axes.join(", "),
    };
    let points = sw
        .points
        .iter()
        .zip(xs)
        .map(|(p, x)| {
            let r = &p.report.resilience;
            ChartPoint {
                label: p
                    .params
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", "),
                x: if all_numeric { x } else { None },
                failed: r.failed_requests.mean.unwrap_or(0.0),
                failed_min: r.failed_requests.min,
                failed_max: r.failed_requests.max,
                detection_s: r.detection_s.mean,
                detection_min: r.detection_s.min,
                detection_max: r.detection_s.max,
                unreliable: crate::analysis::results::unreliable_reason(p),
                budget_pct: p.report.budget.consumed_pct.mean,
                budget_min: p.report.budget.consumed_pct.min,
                budget_max: p.report.budget.consumed_pct.max,
            }
        })
        .collect();
    (x_label, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, x: Option<f64>, failed: f64, det: Option<f64>) -> ChartPoint {
        ChartPoint {
            label: label.into(),
            x,
            failed,
            detection_s: det,
            ..ChartPoint::default()
        }
    }

    fn article_sweep() -> Vec<ChartPoint> {
        [5.0, 10.0, 30.0, 60.0]
            .iter()
            .map(|&i| ChartPoint {
                label: format!("interval={i}s"),
                x: Some(i),
                failed: 155.0 * (30.0 + i / 2.0),
                failed_min: Some(155.0 * 30.0),
                failed_max: Some(155.0 * (30.0 + i)),
                detection_s: Some(30.0 + i / 2.0),
                detection_min: Some(30.0),
                detection_max: Some(30.0 + i),
                unreliable: None,
                budget_pct: Some(100.0 * 155.0 * (30.0 + i / 2.0) / 401_760.0),
                budget_min: Some(100.0 * 155.0 * 30.0 / 401_760.0),
                budget_max: Some(100.0 * 155.0 * (30.0 + i) / 401_760.0),
            })
            .collect()
    }

    /// The HTML report's sweep chart: the same two panels and a third, the budget consumed,
    /// with its whiskers; the `--chart` SVG keeps its two.
    #[test]
    fn the_budget_panel_is_drawn_only_when_asked() {
        let pts = article_sweep();
        let two = sweep_svg("t", "x", &pts);
        let three = sweep_svg_with_budget("t", "x", &pts);
        assert!(!two.contains("id=\"budget\""));
        assert!(!two.contains("class=\"band\""), "--chart keeps its whiskers only");
        assert_eq!(three.matches("<polygon class=\"band\"").count(), 3, "a band per panel");
        let doc = roxmltree::Document::parse(&three).unwrap();
        let budget = panel(&doc, "budget");
        let markers: Vec<_> = budget
            .descendants()
            .filter(|n| n.attribute("class") == Some("marker"))
            .collect();
        assert_eq!(markers.len(), 4);
        // 60 s interval: 155 × 60 = 9,300 failed of a 401,760-request budget = 2.31 %
        let title = markers[3].first_element_child().unwrap().text().unwrap();
        assert_eq!(title, "interval=60s: 2.31 % (min 1.16 %, max 3.47 %)");
        assert_eq!(
            budget
                .descendants()
                .filter(|n| n.attribute("class") == Some("whisker"))
                .count(),
            4
        );
        // the x labels moved below the third panel, and the figure grew by a panel and a gap
        let h = |s: &str| {
            let d = roxmltree::Document::parse(s).unwrap();
            d.root_element().attribute("height").unwrap().parse::<f64>().unwrap()
        };
        assert_eq!(h(&three) - h(&two), PANEL_H + GAP);
    }

    fn panel<'a>(doc: &'a roxmltree::Document<'a>, id: &str) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("panel {id}"))
    }

    fn classed<'a>(n: roxmltree::Node<'a, 'a>, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        n.descendants()
            .filter(|d| d.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class)))
            .collect()
    }

    fn ticks(n: roxmltree::Node<'_, '_>) -> Vec<f64> {
        classed(n, "ytick")
            .iter()
            .map(|t| t.text().unwrap().replace(',', "").parse::<f64>().unwrap())
            .collect()
    }

    /// Consecutive ticks are one step apart and the step is 1, 2 or 5 × 10ⁿ.
    fn assert_round(t: &[f64]) {
        assert!(t.len() >= 2, "{t:?}");
        let step = t[1] - t[0];
        let mag = 10f64.powf(step.log10().floor());
        let m = step / mag;
        assert!(
            [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-9),
            "step {step} of {t:?}"
        );
        for w in t.windows(2) {
            assert!(((w[1] - w[0]) - step).abs() < 1e-9 * step.max(1.0), "{t:?}");
        }
        for v in t {
            let k = v / step;
            assert!((k - k.round()).abs() < 1e-9, "{v} is not a multiple of {step}");
        }
    }

    #[test]
    fn well_formed_with_one_marker_per_point_per_panel_and_whiskers() {
        let pts = article_sweep();
        let svg = sweep_svg("hung probes: I sweep", "health-check interval (s)", &pts);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        for id in ["failed", "detection"] {
            let p = panel(&doc, id);
            assert_eq!(classed(p, "marker").len(), pts.len(), "{id}");
            assert_eq!(classed(p, "whisker").len(), pts.len(), "{id}");
            assert_eq!(classed(p, "series").len(), 1, "{id}: numeric x joins the points");
        }
    }

    #[test]
    fn ticks_are_round_and_the_y_axes_cover_the_data_and_whiskers() {
        let pts = article_sweep();
        let svg = sweep_svg("t", "x", &pts);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let f = ticks(panel(&doc, "failed"));
        let d = ticks(panel(&doc, "detection"));
        assert_round(&f);
        assert_round(&d);
        assert_eq!((f[0], d[0]), (0.0, 0.0), "y axes start at 0");
        // largest whisker: 155 · 90 = 13,950 failed; 90 s
        assert!(*f.last().unwrap() >= 13_950.0, "{f:?}");
        assert!(*d.last().unwrap() >= 90.0, "{d:?}");
        // and not absurdly beyond it (one step at most)
        assert!(*f.last().unwrap() - 13_950.0 <= f[1] - f[0], "{f:?}");
        // x ticks: the interval axis 0..60 in round steps
        let xt: Vec<f64> = classed(doc.root_element(), "xtick")
            .iter()
            .map(|t| t.text().unwrap().parse().unwrap())
            .collect();
        assert_round(&xt);
        assert!(xt[0] <= 5.0 && *xt.last().unwrap() >= 60.0, "{xt:?}");
        // markers sit inside their panel
        for m in classed(doc.root_element(), "marker") {
            let y: f64 = m.attribute("cy").unwrap().parse().unwrap();
            assert!((TOP..=TOP + 2.0 * PANEL_H + GAP).contains(&y), "{y}");
        }
    }

    #[test]
    fn nice_ticks_for_awkward_ranges() {
        for (lo, hi) in [
            (0.0, 7.3),
            (0.0, 0.013),
            (0.0, 99_999.0),
            (3.0, 3.0),
            (0.0, 0.0),
            (-2.5, 41.0),
        ] {
            let (t, step) = nice_ticks(lo, hi, 5);
            assert_round(&t);
            assert!(t[0] <= lo && *t.last().unwrap() >= hi, "{lo}..{hi}: {t:?}");
            assert!(t.len() <= 12, "{t:?} step {step}");
        }
    }

    #[test]
    fn categorical_labels_and_missing_detection() {
        let pts = vec![
            point("fast & <fail>", None, 390.0, Some(2.5)),
            point("hung", None, 9_300.0, None),
            point("breaker", None, 12.0, Some(0.4)),
        ];
        let svg = sweep_svg("strategies", "gateway", &pts);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let labels: Vec<String> = classed(doc.root_element(), "xtick")
            .iter()
            .map(|t| t.text().unwrap().to_string())
            .collect();
        assert_eq!(labels, ["fast & <fail>", "hung", "breaker"]);
        let det = panel(&doc, "detection");
        assert_eq!(classed(det, "marker").len(), 3);
        assert_eq!(classed(det, "missing").len(), 1);
        assert!(
            classed(panel(&doc, "failed"), "series").is_empty(),
            "categories are not joined"
        );
    }

    #[test]
    fn empty_and_missing_data_never_give_nan_or_inf() {
        let cases: Vec<Vec<ChartPoint>> = vec![
            vec![],
            vec![point("only", Some(5.0), 0.0, None)],
            vec![point("a", None, 0.0, None), point("b", None, 0.0, None)],
            vec![point("bad", Some(f64::NAN), f64::NAN, Some(f64::INFINITY))],
        ];
        for pts in cases {
            let svg = sweep_svg("t", "x", &pts);
            let doc = roxmltree::Document::parse(&svg).expect("well-formed");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
            // every number in a geometry attribute is finite
            for n in doc.descendants() {
                for a in n.attributes() {
                    if [
                        "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height", "points", "d",
                    ]
                    .contains(&a.name())
                    {
                        for tok in a.value().split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')) {
                            if !tok.is_empty() {
                                let v: f64 = tok.parse().unwrap_or_else(|_| panic!("{tok} in {}", a.value()));
                                assert!(v.is_finite(), "{tok}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn x_axis_maps_a_numeric_sweep_onto_round_ticks() {
        // 5..60 s in about 6 ticks: raw step 55/6 ≈ 9.17 → 10, ticks 0, 10, …, 60;
        // the plot is 760 − 78 − 24 = 658 px wide from x = 78
        let x = XAxis::new(&article_sweep());
        assert!(x.numeric && !x.rotate);
        let labels: Vec<&str> = x.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0", "10", "20", "30", "40", "50", "60"]);
        assert_eq!((x.ticks[0].0, x.ticks[6].0), (78.0, 736.0));
        let want = [78.0 + 658.0 / 12.0, 78.0 + 658.0 / 6.0, 78.0 + 329.0, 736.0];
        for (got, want) in x.xs.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{:?}", x.xs);
        }
        assert_eq!(x.height(), 48.0 + 420.0 + 64.0 + 40.0 + 24.0);
    }

    #[test]
    fn x_axis_spaces_categories_evenly_and_turns_more_than_six() {
        // 3 slots of 658/3 px, each point in the middle of its slot
        let pts = vec![
            point("a", None, 0.0, None),
            point("b", Some(1.0), 0.0, None),
            point("c", None, 0.0, None),
        ];
        let x = XAxis::new(&pts);
        assert!(!x.numeric && !x.rotate);
        let want = [78.0 + 658.0 / 6.0, 78.0 + 329.0, 78.0 + 658.0 * 5.0 / 6.0];
        for (got, want) in x.xs.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{:?}", x.xs);
        }
        let seven: Vec<ChartPoint> = (0..7).map(|i| point(&"x".repeat(i + 1), None, 0.0, None)).collect();
        let x = XAxis::new(&seven);
        assert!(x.rotate);
        // room for the longest label, 7 characters at 6.5 px, at 35° (sin ≈ 0.574)
        assert!((x.room - (30.0 + 7.0 * 6.5 * 0.574)).abs() < 1e-9, "{}", x.room);
    }

    #[test]
    fn y_scale_starts_at_zero_and_covers_the_largest_whisker() {
        // largest value 13,950 in about 5 ticks: raw step 2,790 → 5,000, ticks 0..15,000;
        // the upper panel spans y = 48 (top) to 258 (bottom)
        let series: Series = vec![(Some(4_650.0), Some(4_650.0), Some(13_950.0)), (None, None, None)];
        let y = YScale::new(&series, TOP);
        assert_eq!(y.ticks, [0.0, 5_000.0, 10_000.0, 15_000.0]);
        assert_eq!(y.step, 5_000.0);
        assert_eq!((y.y(0.0), y.y(7_500.0), y.y(15_000.0)), (258.0, 153.0, 48.0));
        // nothing to plot: 0..1
        let empty = YScale::new(&vec![(None, None, None)], TOP);
        assert_eq!((empty.ticks[0], *empty.ticks.last().unwrap()), (0.0, 1.0));
    }

    #[test]
    fn same_input_same_bytes() {
        let pts = article_sweep();
        assert_eq!(sweep_svg("t", "x", &pts), sweep_svg("t", "x", &pts));
    }
}
