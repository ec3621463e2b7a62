//! The HTML incident report (`--html PATH` of `run`, `sim`, `load` and `suite`): one
//! self-contained file — inline CSS, inline SVG drawn here, no script, no external
//! resource (a Content-Security-Policy in the page forbids any) — that opens offline.
//!
//! Why server-side SVG (docs/html-report.md): the charts are drawn from numbers the
//! analysis already computed ([`crate::analysis::incident`]), so the simulator's page is
//! byte-identical for the same seed, needs no JavaScript, weighs tens of kilobytes, and
//! shares the axis and tick helpers of the sweep chart ([`super::chart`]). Tooltips are
//! SVG `<title>` elements.
//!
//! Hooks for tests and scripts: `<html data-chaosgate-report="run|sim|sweep|load|suite">`,
//! one `<figure data-chart="…">` per chart, and each key figure in an element with
//! `data-value="NAME"` whose text is the number as the JSON report has it (or `never`).

use super::chart::{c, esc, nice_ticks, num, tick_label};
use crate::analysis::incident::{IncidentView, Percentiles};
use crate::analysis::results::{Dist, PointReport, RunReport, SweepReport};
use crate::analysis::LoadReport;
use std::fmt::Write as _;

/// Points of a sweep drawn with their own timeline, budget and latency charts (the rest
/// are in the table and the sweep chart).
pub const MAX_DETAILED_POINTS: usize = 8;

/// Most fault windows whose phase is written on the timeline and whose detection and
/// failback are marked; with more (a flapping provider has hundreds) every window is shaded
/// with a tooltip, and none is labelled or marked.
pub const MAX_LABELLED_FAULTS: usize = 10;

/// The Content-Security-Policy every page carries: nothing may load from anywhere.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:14px;color:#222;margin:0 auto;max-width:1060px;padding:12px 18px}\
h1{font-size:20px;margin:8px 0}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #ccc}h3{font-size:15px;margin:14px 0 4px}\
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f4f4f4}\
td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:8px 0}figcaption{font-size:12.5px;color:#444;margin:2px 0 8px}\
svg{max-width:100%;height:auto;display:block}code,pre{font-family:'DejaVu Sans Mono',monospace;font-size:12.5px}pre{background:#f6f6f6;padding:6px;overflow-x:auto;white-space:pre-wrap}\
.note{color:#6a4b00;background:#fff8e1;padding:4px 8px;margin:4px 0}.warn{color:#8b0000;background:#fdecea;padding:4px 8px;margin:4px 0}\
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px 0}dl.meta dt{color:#555}dl.meta dd{margin:0}";

/// Provider colours, in name order.
const PALETTE: [&str; 8] = [
    "#2471a3", "#d35400", "#27ae60", "#8e44ad", "#b7950b", "#16a085", "#c0392b", "#5d6d7e",
];
const UNKNOWN: &str = "#aaaaaa";

/// Where a run came from, for the page's header.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// The command that reproduces the run.
    pub command: String,
    /// chaosgate's version.
    pub version: String,
}

impl Provenance {
    /// This build's version and `command`.
    pub fn new(command: &str) -> Provenance {
        Provenance {
            command: command.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The start of a page of kind `kind` (`run`, `sim`, `sweep`, `load`, `suite`).
pub fn page_start(kind: &str, title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\" data-chaosgate-report=\"{kind}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    )
}

/// The end of a page.
pub fn page_end() -> &'static str {
    "</body>\n</html>\n"
}

/// The header's definition list: `(term, value already escaped)`.
pub fn meta_list(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<dl class=\"meta\">\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    }
    s.push_str("</dl>\n");
    s
}

/// A number as the JSON report writes it (`never` for none).
fn exact(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "never".into(),
    }
}

/// A number for reading: integers as they are, else about 4 significant digits.
fn shown(v: Option<f64>) -> String {
    let Some(x) = v.filter(|x| x.is_finite()) else {
        return "never".into();
    };
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let mag = if x == 0.0 { 0 } else { x.abs().log10().floor() as i32 };
    let decimals = (3 - mag).clamp(1, 9) as usize;
    let t = format!("{x:.decimals$}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `<span data-value="name" data-exact="EXACT">shown</span>` and a unit: `data-exact` is
/// the number as the JSON report writes it (`never` for none), the text a rounding of it.
fn value(name: &str, v: Option<f64>, unit: &str) -> String {
    format!(
        "<span data-value=\"{}\" data-exact=\"{}\">{}</span>{}",
        esc(name),
        exact(v),
        shown(v),
        esc(unit)
    )
}

/// A row of a figures table: the figure's JSON name and its value.
fn figure_row(s: &mut String, name: &str, v: Option<f64>, unit: &str) {
    let _ = writeln!(
        s,
        "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
        esc(name),
        value(name, v, unit)
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The page of `run` / `sim` (one point, kind `run` or `sim`) or of a sweep (`sweep`).
pub fn sweep_page(sw: &SweepReport, p: &Provenance) -> String {
    let is_sweep = !sw.axes.is_empty() || sw.points.len() != 1;
    let kind = if is_sweep {
        "sweep"
    } else if sw.mode == "sim" {
        "sim"
    } else {
        "run"
    };
    let mut s = page_start(kind, &format!("chaosgate {kind}: {} ({})", sw.scenario, sw.mode));
    let first = sw.points.first().map(|pt| &pt.report);
    s.push_str(&meta_list(&[
        ("scenario", format!("<code>{}</code>", esc(&sw.scenario))),
        ("mode", esc(&sw.mode)),
        (
            "seed",
            first.map_or("–".into(), |r| format!("<span data-value=\"seed\">{}</span>", r.seed)),
        ),
        (
            "runs per point",
            first.map_or("–".into(), |r| format!("<span data-value=\"runs\">{}</span>", r.runs)),
        ),
        ("points", sw.points.len().to_string()),
        (
            "chaosgate",
            format!("<span data-value=\"version\">{}</span>", esc(&p.version)),
        ),
        (
            "reproduce",
            format!("<code data-value=\"command\">{}</code>", esc(&p.command)),
        ),
        (
            "assertions",
            if sw.passed {
                "every assertion held".into()
            } else {
                "<strong>failed</strong> (see the table)".into()
            },
        ),
    ]));
    if sw.partial {
        s.push_str("<p class=\"warn\">Interrupted: this report covers the runs that finished.</p>\n");
    }
    if is_sweep {
        sweep_section(&mut s, sw);
    }
    let shown = sw.points.len().min(MAX_DETAILED_POINTS);
    if sw.points.len() > shown {
        let _ = writeln!(
            s,
            "<p class=\"note\">{} points: the first {shown} are drawn in detail below; every point is in the table and the sweep chart.</p>",
            sw.points.len()
        );
    }
    for (i, pt) in sw.points.iter().take(shown).enumerate() {
        point_section(&mut s, pt, i, is_sweep);
    }
    s.push_str(page_end());
    s
}

/// The sweep chart (failed, detection, budget against the swept value) and the table.
fn sweep_section(s: &mut String, sw: &SweepReport) {
    let (x_label, points) = super::chart::chart_points(sw);
    let runs = sw.points.first().map_or(1, |p| p.report.runs);
    let title = if runs > 1 {
        format!("{} — {runs} runs per point: mean, min–max", sw.scenario)
    } else {
        sw.scenario.clone()
    };
    s.push_str("<h2>Sweep</h2>\n<figure data-chart=\"sweep\">\n");
    s.push_str(&super::chart::sweep_svg_with_budget(&title, &x_label, &points));
    let _ = writeln!(
        s,
        "<figcaption>Failed requests (intended during the fault windows), detection time (traffic view) and error budget consumed against {}; {}. A grey cross marks a point whose figures cannot be trusted (warnings), a hollow marker one never detected.</figcaption>\n</figure>",
        esc(&x_label),
        if runs > 1 {
            "each point the mean over its runs, whiskers from the smallest to the largest run"
        } else {
            "one run per point"
        }
    );
    s.push_str("<table data-table=\"sweep\">\n");
    for (i, row) in super::text::sweep_rows(sw).iter().enumerate() {
        let cell = if i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for x in row {
            let _ = write!(s, "<{cell}>{}</{cell}>", esc(x));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

/// A point: its key figures, then the first run's timeline, budget and latency.
fn point_section(s: &mut String, pt: &PointReport, i: usize, is_sweep: bool) {
    let r = &pt.report;
    let label: Vec<String> = pt
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let _ = writeln!(
        s,
        "<section class=\"point\" data-point=\"{i}\">\n<h2>{}</h2>",
        if is_sweep {
            esc(&format!("Point {}: {}", i + 1, label.join(", ")))
        } else {
            "Run".into()
        }
    );
    for w in &r.warnings {
        let _ = writeln!(s, "<p class=\"warn\">warning: {}</p>", esc(w));
    }
    let Some(v) = &r.incident else {
        s.push_str("<p class=\"note\">No incident view was kept for this point.</p>\n");
        figures_table(s, r);
        s.push_str("</section>\n");
        return;
    };
    let which = if r.runs > 1 {
        format!(
            "the first of {} runs (seed {}); the figures above are over all runs",
            r.runs, r.seed
        )
    } else {
        format!("seed {}", r.seed)
    };
    for n in &v.notes {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", esc(n));
    }
    let _ = writeln!(
        s,
        "<h3 id=\"timeline-{i}\">Incident timeline</h3>\n<figure data-chart=\"timeline\">"
    );
    s.push_str(&timeline_svg(v, &r.resilience.faults));
    let _ = writeln!(
        s,
        "<figcaption>Timeline of {which}, {} s per drawn bucket. By bucket of intended start: each provider's share of the attributed requests (<code>traffic_share</code>), the client failure rate (failed ÷ sent) and p50 / p99 end-to-end latency (from the intended start, log scale). Shaded: fault windows (ground truth), labelled provider: phase. Dashed lines: detection (gateway, traffic, client views) and failback, with their values. Lanes: each target's health probes (green passed, red failed; height = count) and the gateway's events (hover for details).</figcaption>\n</figure>",
        num(v.bucket_s)
    );
    if !v.burn.is_empty() {
        let _ = writeln!(
            s,
            "<h3 id=\"budget-{i}\">Error budget</h3>\n<figure data-chart=\"budget\">"
        );
        s.push_str(&budget_svg(v, &r.budget));
        let b = &r.budget;
        let _ = writeln!(
            s,
            "<figcaption>Burn rate b(w) = (bad ÷ total over the window w ending at t) ÷ ε with ε = 1 − {} (windows reaching back before the run filled with good traffic), of {which}; each drawn bucket shows the largest value in it. Dashed: the alert rules' thresholds; red lines: when each rule (long and short window both at or above its threshold) first fires. Budget consumed: {} % of {} requests over {} days.</figcaption>\n</figure>",
            num(b.target),
            value("budget.consumed_pct.mean", b.consumed_pct.mean, ""),
            num(b.budget_requests.round()),
            num(b.period_s / 86_400.0)
        );
    }
    let _ = writeln!(
        s,
        "<h3 id=\"latency-{i}\">Latency</h3>\n<figure data-chart=\"latency\">"
    );
    s.push_str(&latency_svg(&v.latency, r.mode == "sim"));
    let _ = writeln!(
        s,
        "<figcaption>Percentile distributions of {which}: value at percentile q against 1 ÷ (1 − q) on a log axis (HDR style: the tail spreads out to the right), overall (black) and per provider. e2e and TTFT from the intended start; ITL the pooled gaps between content events.</figcaption>\n</figure>"
    );
    let _ = writeln!(s, "<h3 id=\"figures-{i}\">Figures</h3>");
    figures_table(s, r);
    s.push_str("</section>\n");
}

/// A distribution's cell: the mean (exact), with min–max under `--repeat`.
fn dist_cell(name: &str, d: &Dist, unit: &str) -> String {
    let mut out = format!("<td class=\"n\">{}", value(name, d.mean, unit));
    if d.n > 1 {
        if let (Some(lo), Some(hi)) = (d.min, d.max) {
            let _ = write!(out, " [{}–{}]", num(lo), num(hi));
        }
    }
    if d.missing > 0 {
        let _ = write!(out, " ({} of {} never)", d.missing, d.n);
    }
    out.push_str("</td>");
    out
}

/// The point's key figures, named as in the JSON report.
fn figures_table(s: &mut String, r: &RunReport) {
    let res = &r.resilience;
    let b = &r.budget;
    let t = &r.traffic;
    s.push_str("<table data-table=\"figures\">\n<tr><th>figure (JSON name)</th><th>value</th></tr>\n");
    for (name, d, unit) in [
        ("resilience.detection_s.mean", &res.detection_s, " s"),
        ("resilience.detection_gateway_s.mean", &res.detection_gateway_s, " s"),
        ("resilience.detection_client_s.mean", &res.detection_client_s, " s"),
        ("resilience.failed_requests.mean", &res.failed_requests, ""),
        ("resilience.failed_total.mean", &res.failed_total, ""),
        ("resilience.failback_s.mean", &res.failback_s, " s"),
        ("budget.consumed_pct.mean", &b.consumed_pct, " %"),
        ("budget.peak_burn_5m.mean", &b.peak_burn_5m, "×"),
        ("budget.peak_burn_1h.mean", &b.peak_burn_1h, "×"),
    ] {
        let cell = if name == "resilience.detection_gateway_s.mean" && r.gateway.kind != "builtin" && d.mean.is_none() {
            // semantics.md §12: an external gateway's events cannot be seen
            format!(
                "<td class=\"n\"><span data-value=\"{name}\" data-exact=\"never\">n/a</span> ({} gateway: its events are not visible)</td>",
                esc(&r.gateway.kind)
            )
        } else {
            dist_cell(name, d, unit)
        };
        let _ = writeln!(s, "<tr><th>{}</th>{cell}</tr>", esc(name));
    }
    for (name, v) in &b.alerts {
        let key = format!("budget.alerts.{name}");
        figure_row(s, &key, *v, if v.is_some() { " s" } else { "" });
    }
    for (name, v, unit) in [
        ("traffic.requests.sent", Some(t.requests.sent as f64), ""),
        ("traffic.requests.failed", Some(t.requests.failed as f64), ""),
        ("traffic.error_rate", Some(t.error_rate), ""),
        ("traffic.latency_ms.p50", Some(t.latency_ms.p50), " ms"),
        ("traffic.latency_ms.p99", Some(t.latency_ms.p99), " ms"),
    ] {
        figure_row(s, name, v, unit);
    }
    s.push_str("</table>\n");
}

// ---------------------------------------------------------------- scales

/// A linear scale onto `[p0, p1]` (pixels), ticks from [`nice_ticks`].
struct Lin {
    lo: f64,
    hi: f64,
    p0: f64,
    p1: f64,
    ticks: Vec<f64>,
    step: f64,
}

impl Lin {
    fn new(lo: f64, hi: f64, p0: f64, p1: f64, target: usize) -> Lin {
        let (ticks, step) = nice_ticks(lo, hi, target);
        let (lo, hi) = (ticks[0], ticks[ticks.len() - 1]);
        Lin::fixed(lo, hi, p0, p1, ticks, step)
    }

    /// Exactly `[lo, hi]`, with the given ticks.
    fn fixed(lo: f64, hi: f64, p0: f64, p1: f64, ticks: Vec<f64>, step: f64) -> Lin {
        Lin {
            lo,
            hi,
            p0,
            p1,
            ticks,
            step,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let span = if self.hi > self.lo { self.hi - self.lo } else { 1.0 };
        self.p0 + (v.clamp(self.lo, self.hi) - self.lo) / span * (self.p1 - self.p0)
    }

    fn label(&self, v: f64) -> String {
        tick_label(v, self.step)
    }
}

/// A log₁₀ scale over whole decades covering `[lo, hi]` (values below `lo` sit at the floor).
struct Log {
    e0: i32,
    e1: i32,
    p0: f64,
    p1: f64,
}

impl Log {
    fn new(lo: f64, hi: f64, p0: f64, p1: f64) -> Log {
        let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
        let hi = if hi.is_finite() && hi > lo { hi } else { lo * 10.0 };
        // at most five decades: what is smaller sits on the floor
        let lo = lo.max(hi / 1e5);
        let e0 = lo.log10().floor() as i32;
        let e1 = (hi.log10().ceil() as i32).max(e0 + 1);
        Log { e0, e1, p0, p1 }
    }

    fn at(&self, v: f64) -> f64 {
        let lv = if v > 0.0 { v.log10() } else { f64::from(self.e0) };
        let f = (lv.clamp(f64::from(self.e0), f64::from(self.e1)) - f64::from(self.e0)) / f64::from(self.e1 - self.e0);
        self.p0 + f * (self.p1 - self.p0)
    }

    fn decades(&self) -> impl Iterator<Item = f64> + '_ {
        (self.e0..=self.e1).map(|e| 10f64.powi(e))
    }
}

/// `1000` → `1 s` style labels for milliseconds.
fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", shown(Some(ms / 1000.0)))
    } else {
        format!("{} ms", shown(Some(ms)))
    }
}

fn svg_open(s: &mut String, w: f64, h: f64, title: &str) {
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" {} font-size=\"11\">\n<title>{}</title>\n<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        c(w),
        c(h),
        c(w),
        c(h),
        super::chart::FONT,
        esc(title),
        c(w),
        c(h)
    );
}

fn text(s: &mut String, x: f64, y: f64, anchor: &str, extra: &str, body: &str) {
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\"{extra}>{}</text>",
        c(x),
        c(y),
        esc(body)
    );
}

fn line(s: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, style: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {style}/>",
        c(x1),
        c(y1),
        c(x2),
        c(y2)
    );
}

/// A panel's frame, horizontal grid and y tick labels.
fn frame(s: &mut String, left: f64, top: f64, w: f64, h: f64, yticks: &[(f64, String)], ylabel: &str) {
    for (y, l) in yticks {
        line(s, left, *y, left + w, *y, "stroke=\"#ececec\"");
        text(s, left - 5.0, y + 3.5, "end", "", l);
    }
    let _ = writeln!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888888\"/>",
        c(left),
        c(top),
        c(w),
        c(h)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        c(14.0),
        c(top + h / 2.0),
        esc(ylabel)
    );
}

fn colour(providers: &[&str], p: &str) -> &'static str {
    if p == crate::analysis::share::UNATTRIBUTED {
        return UNKNOWN;
    }
    providers
        .iter()
        .filter(|n| **n != crate::analysis::share::UNATTRIBUTED)
        .position(|n| *n == p)
        .map_or(UNKNOWN, |i| PALETTE[i % PALETTE.len()])
}

// ---------------------------------------------------------------- timeline

const TW: f64 = 1000.0;
const TL: f64 = 64.0;
const TR: f64 = 150.0;

/// The incident timeline of one run.
pub fn timeline_svg(v: &IncidentView, faults: &[crate::analysis::resilience::FaultReport]) -> String {
    let pw = TW - TL - TR;
    let n = v.len().max(1);
    let end_s = (n as f64 * v.bucket_s).max(v.duration_s).max(v.bucket_s);
    let x = Lin::new(0.0, end_s, TL, TL + pw, 10);
    let x = Lin::fixed(
        0.0,
        end_s,
        TL,
        TL + pw,
        x.ticks.into_iter().filter(|t| *t <= end_s).collect(),
        x.step,
    );
    let bx = |j: usize| x.at(j as f64 * v.bucket_s);
    let top = 58.0;
    let (share_h, fail_h, lat_h, gap) = (140.0, 80.0, 110.0, 16.0);
    let share_top = top;
    let fail_top = share_top + share_h + gap;
    let lat_top = fail_top + fail_h + gap;
    let lanes_top = lat_top + lat_h + gap;
    let mut targets: Vec<String> = v.probes.keys().cloned().collect();
    for e in &v.events {
        if !targets.contains(&e.target) {
            targets.push(e.target.clone());
        }
    }
    targets.sort();
    let lane_h = 24.0;
    let lanes_h = lane_h * targets.len() as f64;
    let axis_y = lanes_top + lanes_h + if targets.is_empty() { 0.0 } else { 4.0 };
    let h = axis_y + 40.0;
    let mut s = String::new();
    svg_open(&mut s, TW, h, "incident timeline");
    let providers: Vec<&str> = v.share.keys().map(String::as_str).collect();
    // fault windows behind everything
    for (k, f) in v.faults.iter().enumerate() {
        let (x0, x1) = (x.at(f.start_s), x.at(f.end_s));
        let _ = writeln!(
            s,
            "<rect class=\"fault\" data-provider=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#e74c3c\" fill-opacity=\"0.12\"><title>fault: {}: {} from {} s to {} s</title></rect>",
            esc(&f.provider),
            c(x0),
            c(top - 14.0),
            c((x1 - x0).max(1.0)),
            c(axis_y - top + 14.0),
            esc(&f.provider),
            esc(&f.phase),
            num(f.start_s),
            num(f.end_s)
        );
        if let Some(u) = f.user_end_s {
            line(
                &mut s,
                x.at(u),
                top - 14.0,
                x.at(u),
                axis_y,
                "stroke=\"#e74c3c\" stroke-dasharray=\"2,3\"",
            );
        }
        if v.faults.len() <= MAX_LABELLED_FAULTS {
            text(
                &mut s,
                x0 + 2.0,
                top - 18.0 - 11.0 * (k % 2) as f64,
                "start",
                " fill=\"#a93226\"",
                &format!("{}: {}", f.provider, f.phase),
            );
        }
    }
    if v.faults.len() > MAX_LABELLED_FAULTS {
        text(
            &mut s,
            TL + pw,
            top - 42.0,
            "end",
            " fill=\"#a93226\"",
            &format!(
                "{} fault windows, shaded (hover for each); detection and failback of each in the figures and the JSON's resilience.faults",
                v.faults.len()
            ),
        );
    }
    // share: stacked step areas
    let sy = Lin::fixed(
        0.0,
        100.0,
        share_top + share_h,
        share_top,
        vec![0.0, 25.0, 50.0, 75.0, 100.0],
        25.0,
    );
    let yt: Vec<(f64, String)> = sy.ticks.iter().map(|&t| (sy.at(t), format!("{t}%"))).collect();
    frame(&mut s, TL, share_top, pw, share_h, &yt, "traffic share");
    let mut base = vec![0.0f64; v.len()];
    for p in &providers {
        let vals = &v.share[*p];
        // this provider's band lies on the previous providers' top
        let prev = base.clone();
        let mut d = String::new();
        for (j, top) in base.iter_mut().enumerate() {
            *top += vals.get(j).copied().flatten().unwrap_or(0.0) * 100.0;
            let _ = write!(
                d,
                "{}{},{}H{}",
                if j == 0 { "M" } else { "L" },
                c(bx(j)),
                c(sy.at(*top)),
                c(bx(j + 1))
            );
        }
        let mut lower = String::new();
        for j in (0..v.len()).rev() {
            let _ = write!(lower, "L{},{}H{}", c(bx(j + 1)), c(sy.at(prev[j])), c(bx(j)));
        }
        if !v.is_empty() {
            let _ = writeln!(
                s,
                "<path class=\"share\" data-provider=\"{}\" d=\"{d}{lower}Z\" fill=\"{}\" fill-opacity=\"0.75\" stroke=\"none\"><title>{}: share of the attributed requests</title></path>",
                esc(p),
                colour(&providers, p),
                esc(p)
            );
        }
    }
    // legend
    for (i, p) in providers.iter().enumerate() {
        let ly = share_top + 12.0 + 15.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>",
            c(TL + pw + 10.0),
            c(ly - 9.0),
            colour(&providers, p)
        );
        text(&mut s, TL + pw + 24.0, ly, "start", "", p);
    }
    // failure rate
    let fy = Lin::fixed(0.0, 100.0, fail_top + fail_h, fail_top, vec![0.0, 50.0, 100.0], 50.0);
    let yt: Vec<(f64, String)> = fy.ticks.iter().map(|&t| (fy.at(t), format!("{t}%"))).collect();
    frame(&mut s, TL, fail_top, pw, fail_h, &yt, "failed");
    let mut d = String::new();
    for j in 0..v.len() {
        let r = v.failure_rate(j).unwrap_or(0.0) * 100.0;
        let _ = write!(
            d,
            "{}{},{}H{}",
            if j == 0 { "M" } else { "L" },
            c(bx(j)),
            c(fy.at(r)),
            c(bx(j + 1))
        );
    }
    if !v.is_empty() {
        let _ = writeln!(
            s,
            "<path class=\"failure-rate\" d=\"{d}L{},{}L{},{}Z\" fill=\"#c0392b\" fill-opacity=\"0.6\" stroke=\"#c0392b\" stroke-width=\"0.8\"><title>client failure rate: failed ÷ sent among the requests intended in each bucket</title></path>",
            c(bx(v.len())),
            c(fy.at(0.0)),
            c(bx(0)),
            c(fy.at(0.0))
        );
    }
    text(
        &mut s,
        TL + pw + 10.0,
        fail_top + 14.0,
        "start",
        " fill=\"#c0392b\"",
        "failure rate",
    );
    // latency p50 / p99, log scale
    let lat_vals = || v.p50_ms.iter().chain(&v.p99_ms).flatten().copied().filter(|x| *x > 0.0);
    let lo = lat_vals().fold(f64::INFINITY, f64::min);
    let hi = lat_vals().fold(0.0, f64::max);
    let ly = Log::new(lo, hi, lat_top + lat_h, lat_top);
    let yt: Vec<(f64, String)> = ly.decades().map(|d| (ly.at(d), ms_label(d))).collect();
    frame(&mut s, TL, lat_top, pw, lat_h, &yt, "latency");
    if v.p50_ms.is_empty() {
        text(
            &mut s,
            TL + pw / 2.0,
            lat_top + lat_h / 2.0,
            "middle",
            " fill=\"#888888\"",
            "no per-bucket latency kept for this run",
        );
    }
    for (name, series, colr, width) in [
        ("p50", &v.p50_ms, "#1f618d", "1.2"),
        ("p99", &v.p99_ms, "#6c3483", "1.6"),
    ] {
        let mut d = String::new();
        let mut pen = false;
        for (j, val) in series.iter().enumerate() {
            match val {
                Some(ms) => {
                    let y = ly.at(*ms);
                    let _ = write!(
                        d,
                        "{}{},{}H{}",
                        if pen { "L" } else { "M" },
                        c(bx(j)),
                        c(y),
                        c(bx(j + 1))
                    );
                    pen = true;
                }
                None => pen = false,
            }
        }
        if !d.is_empty() {
            let _ = writeln!(
                s,
                "<path class=\"latency {name}\" d=\"{d}\" fill=\"none\" stroke=\"{colr}\" stroke-width=\"{width}\"><title>{name} end-to-end latency of the requests intended in each bucket</title></path>"
            );
        }
    }
    text(
        &mut s,
        TL + pw + 10.0,
        lat_top + 14.0,
        "start",
        " fill=\"#1f618d\"",
        "p50",
    );
    text(
        &mut s,
        TL + pw + 10.0,
        lat_top + 28.0,
        "start",
        " fill=\"#6c3483\"",
        "p99",
    );
    // lanes: probes and events per target
    for (li, t) in targets.iter().enumerate() {
        let y0 = lanes_top + li as f64 * lane_h;
        line(&mut s, TL, y0 + lane_h, TL + pw, y0 + lane_h, "stroke=\"#eeeeee\"");
        text(&mut s, TL + pw + 10.0, y0 + 15.0, "start", "", t);
        if let Some(pr) = v.probes.get(t) {
            let most = pr.iter().map(|(a, b)| a + b).max().unwrap_or(1).max(1) as f64;
            for (j, &(okn, badn)) in pr.iter().enumerate() {
                for (k, colr, what) in [(okn, "#27ae60", "passed"), (badn, "#c0392b", "failed")] {
                    if k == 0 {
                        continue;
                    }
                    let hgt = 3.0 + 6.0 * k as f64 / most;
                    let yb = if what == "passed" { y0 + 11.0 } else { y0 + 12.0 + hgt };
                    let _ = writeln!(
                        s,
                        "<rect class=\"probe {what}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colr}\"><title>{}: {k} probe{} {what} in {}–{} s</title></rect>",
                        c(bx(j)),
                        c(yb - hgt),
                        c((bx(j + 1) - bx(j)).max(1.0)),
                        c(hgt),
                        esc(t),
                        plural(k as usize),
                        num(j as f64 * v.bucket_s),
                        num((j + 1) as f64 * v.bucket_s)
                    );
                }
            }
        }
        for e in v.events.iter().filter(|e| &e.target == t) {
            let ex = x.at(e.t_s);
            let cy = y0 + 12.0;
            let (shape, colr) = match e.kind {
                "ejected" => (format!("M{},{}l-5,-7h10Z", c(ex), c(cy + 4.0)), "#c0392b"),
                "restored" => (format!("M{},{}l-5,7h10Z", c(ex), c(cy - 4.0)), "#27ae60"),
                "breaker_opened" => (format!("M{},{}h8v8h-8Z", c(ex - 4.0), c(cy - 4.0)), "#e67e22"),
                "breaker_half_opened" => (format!("M{},{}l4,4l-4,4l-4,-4Z", c(ex), c(cy - 4.0)), "#f1c40f"),
                "breaker_closed" => (
                    format!("M{},{}a4,4 0 1,0 8,0a4,4 0 1,0 -8,0", c(ex - 4.0), c(cy)),
                    "#2e86c1",
                ),
                "rate_limited" => (format!("M{},{}h8v3h-8Z", c(ex - 4.0), c(cy - 1.5)), "#7d3c98"),
                "retry" => (format!("M{},{}v8", c(ex), c(cy - 10.0)), "#5d6d7e"),
                _ => (format!("M{},{}l4,-3v6Z", c(ex), c(cy + 7.0)), "#34495e"),
            };
            let stroke = if e.kind == "retry" {
                format!(" stroke=\"{colr}\" stroke-width=\"1.5\" fill=\"none\"")
            } else {
                format!(" fill=\"{colr}\"")
            };
            let to = e.to.as_ref().map_or(String::new(), |t| format!(" (first to {t})"));
            let _ = writeln!(
                s,
                "<path class=\"event {}\" data-target=\"{}\" d=\"{shape}\"{stroke}><title>{} s: {} {}{}{}</title></path>",
                e.kind,
                esc(t),
                num((e.t_s * 1000.0).round() / 1000.0),
                esc(t),
                e.kind.replace('_', " "),
                if e.count > 1 {
                    format!(" ×{} in this bucket", e.count)
                } else {
                    String::new()
                },
                esc(&to)
            );
        }
    }
    // detection and failback marks (first run's fault windows)
    let marked = if faults.len() <= MAX_LABELLED_FAULTS {
        faults
    } else {
        &[]
    };
    for (k, f) in marked.iter().enumerate() {
        let marks = [
            (
                "detection_gateway",
                "gateway",
                f.detection_gateway_s.map(|d| (f.onset_s + d, d)),
            ),
            (
                "detection_traffic",
                "traffic",
                f.detection_traffic_s.map(|d| (f.onset_s + d, d)),
            ),
            (
                "detection_client",
                "client",
                f.detection_client_s.map(|d| (f.onset_s + d, d)),
            ),
            (
                "failback",
                "failback",
                f.failback_s.map(|d| (f.user_fault_end_s.unwrap_or(f.end_s) + d, d)),
            ),
        ];
        for (mi, (key, what, at)) in marks.iter().enumerate() {
            let Some((t, d)) = at else { continue };
            let mx = x.at(*t);
            let colr = if *key == "failback" { "#1e8449" } else { "#154360" };
            let _ = writeln!(
                s,
                "<g class=\"mark\" data-mark=\"{key}\" data-fault=\"{k}\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colr}\" stroke-dasharray=\"4,3\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{colr}\">{what} {} s</text><title>{}: {what} {} {} s after {}</title></g>",
                c(mx),
                c(share_top),
                c(mx),
                c(axis_y),
                c(mx + 3.0),
                c(share_top + 10.0 + 11.0 * mi as f64),
                num((d * 100.0).round() / 100.0),
                esc(&f.provider),
                if *key == "failback" { "after" } else { "detection" },
                num(*d),
                if *key == "failback" { "the fault's end" } else { "onset" }
            );
        }
    }
    // x axis
    for &t in &x.ticks {
        let tx = x.at(t);
        line(
            &mut s,
            tx,
            share_top,
            tx,
            axis_y,
            "stroke=\"#000000\" stroke-opacity=\"0.06\"",
        );
        text(&mut s, tx, axis_y + 14.0, "middle", "", &x.label(t));
    }
    text(
        &mut s,
        TL + pw / 2.0,
        axis_y + 32.0,
        "middle",
        "",
        "time since the run's start (s)",
    );
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------- budget

const BURN_COLOURS: [&str; 4] = ["#c0392b", "#e67e22", "#2471a3", "#7d3c98"];

fn window_name(w: u64) -> String {
    if w % 86_400 == 0 {
        format!("{} d", w / 86_400)
    } else if w % 3600 == 0 {
        format!("{} h", w / 3600)
    } else {
        format!("{} min", w / 60)
    }
}

/// Burn rate over time per window, the rules' thresholds and the alerts' firing times.
pub fn budget_svg(v: &IncidentView, b: &crate::analysis::results::Budget) -> String {
    let (w, h, left, right, top, ph) = (1000.0, 300.0, 64.0, 150.0, 20.0, 230.0);
    let pw = w - left - right;
    let end_s = (v.len().max(1) as f64 * v.bucket_s).max(v.duration_s).max(v.bucket_s);
    let x = Lin::new(0.0, end_s, left, left + pw, 10);
    let x = Lin::fixed(
        0.0,
        end_s,
        left,
        left + pw,
        x.ticks.into_iter().filter(|t| *t <= end_s).collect(),
        x.step,
    );
    let peak = v.burn.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    let y = Log::new(0.1, peak.max(20.0), top + ph, top);
    let mut s = String::new();
    svg_open(&mut s, w, h, "error budget burn rate");
    let yt: Vec<(f64, String)> = y.decades().map(|d| (y.at(d), format!("{}×", num(d)))).collect();
    frame(&mut s, left, top, pw, ph, &yt, "burn rate (log)");
    for r in crate::analysis::budget::RULES.iter() {
        let ty = y.at(r.burn);
        line(
            &mut s,
            left,
            ty,
            left + pw,
            ty,
            "stroke=\"#555555\" stroke-dasharray=\"6,4\"",
        );
        text(
            &mut s,
            left + pw + 6.0,
            ty + 3.5,
            "start",
            "",
            &format!(
                "{}× ({} / {})",
                num(r.burn),
                window_name(r.long_s),
                window_name(r.short_s)
            ),
        );
    }
    for (i, series) in v.burn.iter().enumerate() {
        let colr = BURN_COLOURS[i % BURN_COLOURS.len()];
        let mut d = String::new();
        for (j, val) in series.values.iter().enumerate() {
            let _ = write!(
                d,
                "{}{},{}H{}",
                if j == 0 { "M" } else { "L" },
                c(x.at(j as f64 * v.bucket_s)),
                c(y.at(val.max(0.1))),
                c(x.at((j + 1) as f64 * v.bucket_s))
            );
        }
        let peak = series.values.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "<path class=\"burn\" data-window=\"{}\" d=\"{d}\" fill=\"none\" stroke=\"{colr}\" stroke-width=\"1.4\"><title>burn rate over {}: peak {}×</title></path>",
            series.window_s,
            window_name(series.window_s),
            num((peak * 100.0).round() / 100.0)
        );
        text(
            &mut s,
            left + 8.0 + 90.0 * i as f64,
            top + 14.0,
            "start",
            &format!(" fill=\"{colr}\""),
            &format!("— {}", window_name(series.window_s)),
        );
    }
    for (k, (name, at)) in b.alerts.iter().enumerate() {
        if let Some(t) = at {
            let ax = x.at(*t);
            let _ = writeln!(
                s,
                "<g class=\"alert\" data-alert=\"{}\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#c0392b\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\" fill=\"#c0392b\" font-size=\"10\">{} fires at {} s</text></g>",
                esc(name),
                c(ax),
                c(top),
                c(ax),
                c(top + ph),
                c(ax + 3.0),
                c(top + 30.0 + 12.0 * k as f64),
                esc(name),
                num(*t)
            );
        }
    }
    for &t in &x.ticks {
        text(&mut s, x.at(t), top + ph + 14.0, "middle", "", &x.label(t));
    }
    text(
        &mut s,
        left + pw / 2.0,
        top + ph + 32.0,
        "middle",
        "",
        "time since the run's start (s)",
    );
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------- latency

/// A percentile label for x = 1/(1−q): 1 → 0%, 10 → 90%, 1000 → 99.9%.
fn pct_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / x);
    let t = format!("{q:.4}");
    format!("{}%", t.trim_end_matches('0').trim_end_matches('.'))
}

/// HDR-style percentile plots: e2e, TTFT, ITL side by side, overall and per provider.
pub fn latency_svg(curves: &[Percentiles], sim: bool) -> String {
    let (w, h) = (1000.0, 300.0);
    let metrics = [
        ("e2e", "end-to-end latency"),
        ("ttft", "time to first token"),
        ("itl", "inter-token latency"),
    ];
    let mut groups: Vec<&str> = Vec::new();
    for p in curves {
        if !groups.contains(&p.group.as_str()) {
            groups.push(&p.group);
        }
    }
    let providers: Vec<&str> = groups.iter().copied().filter(|g| *g != "all").collect();
    let mut s = String::new();
    svg_open(&mut s, w, h, "latency percentiles");
    let pw = 260.0;
    for (mi, (m, title)) in metrics.iter().enumerate() {
        let left = 62.0 + mi as f64 * (pw + 70.0);
        let (top, ph) = (26.0, 200.0);
        text(&mut s, left + pw / 2.0, 16.0, "middle", " font-weight=\"bold\"", title);
        let mine: Vec<&Percentiles> = curves.iter().filter(|p| p.metric == *m).collect();
        let xmax = mine
            .iter()
            .flat_map(|p| p.points.last().map(|q| 1.0 / (1.0 - q.0).max(1e-12)))
            .fold(10.0, f64::max);
        let x = Log::new(1.0, xmax, left, left + pw);
        let lo = mine
            .iter()
            .flat_map(|p| p.points.iter().map(|q| q.1))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let hi = mine.iter().map(|p| p.max_ms).fold(0.0, f64::max);
        let y = Log::new(lo, hi, top + ph, top);
        let yt: Vec<(f64, String)> = y.decades().map(|d| (y.at(d), ms_label(d))).collect();
        frame(&mut s, left, top, pw, ph, &yt, "");
        for d in x.decades() {
            let px = x.at(d);
            line(
                &mut s,
                px,
                top,
                px,
                top + ph,
                "stroke=\"#000000\" stroke-opacity=\"0.06\"",
            );
            text(&mut s, px, top + ph + 14.0, "middle", "", &pct_label(d));
        }
        text(
            &mut s,
            left + pw / 2.0,
            top + ph + 30.0,
            "middle",
            "",
            "percentile (log of 1/(1−q))",
        );
        let _ = writeln!(s, "<g class=\"percentiles\" data-metric=\"{m}\">");
        if mine.is_empty() {
            let why = if *m == "itl" && sim {
                ["no samples: the simulator", "does not time single tokens"]
            } else if *m == "itl" || *m == "ttft" {
                ["no samples: no streamed", "content tokens"]
            } else {
                ["no samples", ""]
            };
            for (k, w) in why.iter().enumerate() {
                text(
                    &mut s,
                    left + pw / 2.0,
                    top + ph / 2.0 + 14.0 * k as f64,
                    "middle",
                    " fill=\"#888888\"",
                    w,
                );
            }
        }
        for p in &mine {
            let (colr, wdt) = if p.group == "all" {
                ("#111111", "2")
            } else {
                (colour(&providers, &p.group), "1.3")
            };
            let pts: Vec<String> = p
                .points
                .iter()
                .map(|&(q, ms)| format!("{},{}", c(x.at(1.0 / (1.0 - q).max(1e-12))), c(y.at(ms))))
                .collect();
            let desc: Vec<String> = p
                .points
                .iter()
                .map(|&(q, ms)| {
                    format!(
                        "p{}: {}",
                        pct_label(1.0 / (1.0 - q).max(1e-12)).trim_end_matches('%'),
                        ms_label(ms)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "<polyline class=\"curve\" data-group=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{colr}\" stroke-width=\"{wdt}\"><title>{} {m}, {} samples — {}; max {}</title></polyline>",
                esc(&p.group),
                pts.join(" "),
                esc(&p.group),
                p.count,
                esc(&desc.join(", ")),
                ms_label(p.max_ms)
            );
        }
        s.push_str("</g>\n");
    }
    // legend
    let mut lx = 62.0;
    for g in &groups {
        let colr = if *g == "all" { "#111111" } else { colour(&providers, g) };
        line(
            &mut s,
            lx,
            h - 14.0,
            lx + 18.0,
            h - 14.0,
            &format!("stroke=\"{colr}\" stroke-width=\"2\""),
        );
        text(
            &mut s,
            lx + 22.0,
            h - 10.0,
            "start",
            "",
            if *g == "all" { "overall" } else { g },
        );
        lx += 40.0 + 7.0 * g.chars().count() as f64;
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------- load

/// The page of `chaosgate load`: its figures, timeline (no fault windows or gateway
/// events: the load client sees neither) and latency percentiles.
pub fn load_page(report: &LoadReport, v: &IncidentView, target: &str, seed: u64, p: &Provenance) -> String {
    let mut s = page_start("load", &format!("chaosgate load: {target}"));
    s.push_str(&meta_list(&[
        ("target", format!("<code>{}</code>", esc(target))),
        ("seed", format!("<span data-value=\"seed\">{seed}</span>")),
        ("length", format!("{} s", num(report.duration_s))),
        (
            "chaosgate",
            format!("<span data-value=\"version\">{}</span>", esc(&p.version)),
        ),
        (
            "reproduce",
            format!("<code data-value=\"command\">{}</code>", esc(&p.command)),
        ),
    ]));
    for w in &report.warnings {
        let _ = writeln!(s, "<p class=\"warn\">warning: {}</p>", esc(w));
    }
    s.push_str("<table data-table=\"figures\">\n<tr><th>figure (JSON name)</th><th>value</th></tr>\n");
    for (name, val, unit) in [
        ("requests.sent", Some(report.requests.sent as f64), ""),
        ("requests.failed", Some(report.requests.failed as f64), ""),
        ("requests.dropped", Some(report.requests.dropped as f64), ""),
        ("error_rate", Some(report.error_rate), ""),
        ("latency_ms.p50", Some(report.latency_ms.p50), " ms"),
        ("latency_ms.p99", Some(report.latency_ms.p99), " ms"),
        ("ttft_ms.p50", Some(report.ttft_ms.p50), " ms"),
        ("throughput.requests_per_s", Some(report.throughput.requests_per_s), ""),
    ] {
        figure_row(&mut s, name, val, unit);
    }
    s.push_str("</table>\n");
    for n in &v.notes {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", esc(n));
    }
    s.push_str("<h2>Timeline</h2>\n<figure data-chart=\"timeline\">\n");
    s.push_str(&timeline_svg(v, &[]));
    let _ = writeln!(
        s,
        "<figcaption>{} s per drawn bucket, by bucket of intended start: each provider's share of the attributed requests (from the answers' provider marks), the failure rate (failed ÷ sent) and p50 / p99 end-to-end latency (log scale). A load run knows no fault windows, gateway events or error budget.</figcaption>\n</figure>",
        num(v.bucket_s)
    );
    s.push_str("<h2>Latency</h2>\n<figure data-chart=\"latency\">\n");
    s.push_str(&latency_svg(&v.latency, false));
    s.push_str("<figcaption>Percentile distributions: value at percentile q against 1 ÷ (1 − q) on a log axis, overall (black) and per provider.</figcaption>\n</figure>\n");
    s.push_str(page_end());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::incident::{EventMark, FaultWindow};

    /// A sweep of two points named with every character HTML gives a meaning to.
    fn nasty() -> SweepReport {
        let view = IncidentView {
            bucket_s: 1.0,
            merged: 10,
            duration_s: 3.0,
            requests: vec![10, 10, 10],
            failed: vec![0, 5, 0],
            p50_ms: vec![Some(10.0), Some(1.0), None],
            p99_ms: vec![Some(30.0), Some(900.0), None],
            share: [("p<1>".to_string(), vec![Some(1.0), Some(0.5), None])].into(),
            faults: vec![FaultWindow {
                provider: "p<1>".into(),
                phase: "out&age".into(),
                start_s: 1.0,
                end_s: 2.0,
                user_end_s: None,
            }],
            events: vec![EventMark {
                t_s: 1.5,
                bucket: 1,
                target: "p<1>".into(),
                kind: "fallback",
                count: 2,
                to: Some("q\"2".into()),
            }],
            probes: [("p<1>".to_string(), vec![(1, 0), (0, 1), (0, 0)])].into(),
            burn: Vec::new(),
            latency: Vec::new(),
            notes: vec!["a <note> & more".into()],
        };
        let report = RunReport {
            scenario: "x<script>&\"y".into(),
            mode: "sim".into(),
            runs: 1,
            gateway: crate::analysis::results::GatewayInfo {
                kind: "external".into(),
                ..Default::default()
            },
            incident: Some(Box::new(view)),
            warnings: vec!["w<arn>".into()],
            ..RunReport::default()
        };
        let point = |v: &str| PointReport {
            params: [("gateway.x".to_string(), serde_json::Value::String(v.into()))]
                .into_iter()
                .collect(),
            report: report.clone(),
            checks: Vec::new(),
            passed: true,
        };
        SweepReport {
            scenario: report.scenario.clone(),
            mode: "sim".into(),
            axes: vec!["gateway.x".into()],
            points: vec![point("<a>"), point("b&\"")],
            passed: true,
            partial: false,
        }
    }

    #[test]
    fn every_name_is_escaped_and_nothing_is_loaded() {
        let p = Provenance {
            command: "chaosgate sim 'a<b>.toml'".into(),
            version: "0.0.0".into(),
        };
        let page = sweep_page(&nasty(), &p);
        for raw in [
            "x<script>",
            "<a>",
            "p<1>",
            "out&age",
            "q\"2",
            "<note>",
            "w<arn>",
            "'a<b>",
        ] {
            assert!(!page.contains(raw), "{raw} unescaped");
        }
        for escaped in [
            "x&lt;script&gt;&amp;&quot;y",
            "p&lt;1&gt;: out&amp;age",
            "first to q&quot;2",
            "a &lt;note&gt; &amp; more",
            "warning: w&lt;arn&gt;",
        ] {
            assert!(page.contains(escaped), "{escaped} missing");
        }
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
        assert!(page.contains(CSP));
        // an external gateway's view is not "never" but unknowable (semantics.md §12)
        assert!(page.contains("data-exact=\"never\">n/a</span> (external gateway: its events are not visible)"));
        // the same input, the same bytes
        assert_eq!(page, sweep_page(&nasty(), &p));
        // a point without an incident view still shows its figures
        let mut sw = nasty();
        sw.points[1].report.incident = None;
        let page = sweep_page(&sw, &p);
        assert_eq!(page.matches("data-chart=\"timeline\"").count(), 1);
        assert_eq!(page.matches("data-table=\"figures\"").count(), 2);
    }

    #[test]
    fn the_timeline_draws_what_the_view_holds() {
        let sw = nasty();
        let v = sw.points[0].report.incident.as_deref().unwrap();
        let svg = timeline_svg(v, &[]);
        assert_eq!(svg.matches("<rect class=\"fault\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"probe passed\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"probe failed\"").count(), 1);
        assert!(svg.contains("fallback ×2 in this bucket (first to q&quot;2)"));
        // failure rate 50 % in the second bucket: the step sits halfway up the 80 px panel
        let fail_top = 58.0 + 140.0 + 16.0;
        assert!(
            svg.contains(&format!(
                "H{}L{},{}H",
                c(TL + (TW - TL - TR) / 3.0),
                c(TL + (TW - TL - TR) / 3.0),
                c(fail_top + 40.0)
            )),
            "{svg}"
        );
        // the p50 line breaks where a bucket had no request
        let p50 = svg.lines().find(|l| l.contains("class=\"latency p50\"")).unwrap();
        assert_eq!(p50.matches('M').count(), 1);
    }

    #[test]
    fn labels() {
        assert_eq!(pct_label(1.0), "0%");
        assert_eq!(pct_label(10.0), "90%");
        assert_eq!(pct_label(1000.0), "99.9%");
        assert_eq!(ms_label(1500.0), "1.5 s");
        assert_eq!(ms_label(20.0), "20 ms");
        assert_eq!(ms_label(0.01), "0.01 ms");
        assert_eq!(shown(Some(146.43446495159273)), "146.4");
        assert_eq!(shown(Some(0.09107236198415783)), "0.09107");
        assert_eq!(shown(Some(6789.0)), "6789");
        assert_eq!(exact(Some(5.25)), "5.25");
        assert_eq!(exact(None), "never");
        let l = Log::new(3.0, 4000.0, 100.0, 0.0);
        assert_eq!((l.e0, l.e1), (0, 4));
        assert_eq!(l.at(1.0), 100.0);
        assert_eq!(l.at(10_000.0), 0.0);
        assert_eq!(l.at(0.0), 100.0, "zero sits at the floor");
        let l = Log::new(0.0001, 5000.0, 100.0, 0.0);
        assert_eq!((l.e0, l.e1), (-2, 4), "at most five decades below the top");
    }
}
