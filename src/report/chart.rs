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
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const PANEL_H: f64 = 210.0;
const GAP: f64 = 64.0;
const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

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
fn tick_label(v: f64, step: f64) -> String {
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A coordinate, rounded so output is stable and short.
fn c(v: f64) -> String {
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

/// The chart: a title, the x axis label, and the points in sweep order.
pub fn sweep_svg(title: &str, x_label: &str, points: &[ChartPoint]) -> String {
    let numeric = !points.is_empty() && points.iter().all(|p| finite(p.x).is_some());
    let plot_w = WIDTH - LEFT - RIGHT;
    // x positions
    let (xs, xticks): (Vec<f64>, Vec<(f64, String)>) = if numeric {
        let lo = points.iter().filter_map(|p| finite(p.x)).fold(f64::INFINITY, f64::min);
        let hi = points
            .iter()
            .filter_map(|p| finite(p.x))
            .fold(f64::NEG_INFINITY, f64::max);
        let (ticks, step) = nice_ticks(lo, hi, 6);
        let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
        let map = |v: f64| LEFT + (v - t0) / (t1 - t0) * plot_w;
        let xs = points.iter().map(|p| map(p.x.unwrap_or(t0))).collect();
        let xt = ticks.iter().map(|&t| (map(t), tick_label(t, step))).collect();
        (xs, xt)
    } else {
        let n = points.len().max(1) as f64;
        let xs: Vec<f64> = (0..points.len())
            .map(|i| LEFT + (i as f64 + 0.5) / n * plot_w)
            .collect();
        let xt = xs.iter().zip(points).map(|(&x, p)| (x, p.label.clone())).collect();
        (xs, xt)
    };
    let rotate = !numeric && points.len() > 6;
    // rotated labels need room for the longest one (≈ 6.5 px a character at 12 px, at 35°)
    let longest = xticks.iter().map(|(_, l)| l.chars().count()).max().unwrap_or(0) as f64;
    let x_axis_room = if rotate { 30.0 + longest * 6.5 * 0.574 } else { 40.0 };
    let height = TOP + 2.0 * PANEL_H + GAP + x_axis_room + 24.0;

    let mut s = String::new();
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
    // an unreliable point has no value to draw
    let failed: Series = points
        .iter()
        .map(|p| match p.unreliable {
            Some(_) => (None, None, None),
            None => (finite(Some(p.failed)), finite(p.failed_min), finite(p.failed_max)),
        })
        .collect();
    let detection: Series = points
        .iter()
        .map(|p| match p.unreliable {
            Some(_) => (None, None, None),
            None => (finite(p.detection_s), finite(p.detection_min), finite(p.detection_max)),
        })
        .collect();
    let panels = [
        ("failed", "failed requests", &failed, "#c0392b"),
        ("detection", "detection time (s)", &detection, "#2471a3"),
    ];
    for (k, (id, ylabel, series, color)) in panels.into_iter().enumerate() {
        let top = TOP + k as f64 * (PANEL_H + GAP);
        let bottom = top + PANEL_H;
        let hi = series
            .iter()
            .flat_map(|&(v, a, b)| [v, a, b])
            .flatten()
            .fold(0.0f64, f64::max);
        let lo = series
            .iter()
            .flat_map(|&(v, a, b)| [v, a, b])
            .flatten()
            .fold(0.0f64, f64::min);
        let (yt, ystep) = nice_ticks(lo, if hi > lo { hi } else { lo + 1.0 }, 5);
        let (y0, y1) = (yt[0], yt[yt.len() - 1]);
        let ymap = |v: f64| bottom - (v - y0) / (y1 - y0) * PANEL_H;
        let _ = writeln!(s, "<g class=\"panel\" id=\"{id}\">");
        // grid and y ticks
        for &t in &yt {
            let y = ymap(t);
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e5e5e5\"/>",
                c(LEFT),
                c(y),
                c(LEFT + plot_w),
                c(y)
            );
            let _ = writeln!(
                s,
                "<text class=\"ytick\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                c(LEFT - 6.0),
                c(y),
                tick_label(t, ystep)
            );
        }
        // x grid lines at the ticks
        for (x, _) in &xticks {
            let _ = writeln!(
                s,
                "<line class=\"xgrid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#f0f0f0\"/>",
                c(top),
                c(bottom),
                x = c(*x)
            );
        }
        // frame
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444444\"/>",
            c(LEFT),
            c(top),
            c(plot_w),
            c(PANEL_H)
        );
        let _ = writeln!(
            s,
            "<text class=\"ylabel\" transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            c(18.0),
            c(top + PANEL_H / 2.0),
            esc(ylabel)
        );
        // connecting line (numeric x, in x order, over the points that have a value)
        if numeric {
            let mut pts: Vec<(f64, f64, f64)> = points
                .iter()
                .zip(&xs)
                .zip(series.iter())
                .filter_map(|((p, &x), &(v, _, _))| v.map(|v| (p.x.unwrap_or(0.0), x, ymap(v))))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if pts.len() > 1 {
                let d: Vec<String> = pts.iter().map(|&(_, x, y)| format!("{},{}", c(x), c(y))).collect();
                let _ = writeln!(
                    s,
                    "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" stroke-opacity=\"0.6\"/>",
                    d.join(" ")
                );
            }
        }
        // whiskers and markers
        for ((p, &x), &(v, a, b)) in points.iter().zip(&xs).zip(series.iter()) {
            if let (Some(a), Some(b)) = (a, b) {
                let (ya, yb) = (ymap(a.min(b)), ymap(a.max(b)));
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
            let unit = if id == "failed" { "" } else { " s" };
            if let Some(why) = &p.unreliable {
                let (l, r, u, d) = (c(x - 5.0), c(x + 5.0), c(top - 5.0), c(top + 5.0));
                let _ = writeln!(
                    s,
                    "<path class=\"marker unreliable\" d=\"M{l},{u}L{r},{d}M{l},{d}L{r},{u}\" stroke=\"#888888\" stroke-width=\"2\" fill=\"none\"><title>{}: UNRELIABLE, not drawn — {}</title></path>",
                    esc(&p.label),
                    esc(why)
                );
                continue;
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
                        c(ymap(v)),
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
        if points.iter().any(|p| p.unreliable.is_some()) {
            let _ = writeln!(
                s,
                "<text class=\"legend unreliable\" x=\"{}\" y=\"{}\" text-anchor=\"start\" fill=\"#555555\">× on the top edge: unreliable (warnings), not drawn</text>",
                c(LEFT),
                c(top - 8.0)
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
                c(LEFT + plot_w),
                c(top - 8.0)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    // x tick labels under the lower panel
    let base = TOP + 2.0 * PANEL_H + GAP;
    for (x, label) in &xticks {
        if rotate {
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
        c(LEFT + plot_w / 2.0),
        c(base + x_axis_room + 8.0),
        esc(x_label)
    );
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

/// A value for a tooltip: integers plainly, others with up to 2 decimals.
fn num(v: f64) -> String {
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
            })
            .collect()
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
    fn same_input_same_bytes() {
        let pts = article_sweep();
        assert_eq!(sweep_svg("t", "x", &pts), sweep_svg("t", "x", &pts));
    }
}
