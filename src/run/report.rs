//! Reports of scenario runs — one shape for live (`chaosgate run`) and simulated
//! (`chaosgate sim`) runs, so their numbers compare line for line.
//!
//! With `--repeat N` every metric of `resilience` and `budget` is a distribution over the
//! runs (and, within a run, over its fault windows): `{min, mean, p95, max}`, with `n`
//! samples of which `missing` had no value (a fault never detected, a provider that
//! never got its traffic back). When any sample is missing, min / mean / p95 / max are
//! `null`, so `resilience.detection_s.max <= 10` fails rather than passing on the runs
//! that did detect. p95 is the nearest-rank 95th percentile. These JSON names are a
//! contract: `resilience.detection_s.*`, `resilience.failed_requests.*`,
//! `resilience.failback_s.*`, `budget.consumed_pct.*`.

use crate::analysis::budget::BudgetReport;
use crate::analysis::resilience::FaultReport;
use crate::analysis::LoadReport;
use crate::assert::Check;
use serde::Serialize;
use std::fmt::Write as _;

/// A distribution over runs (and fault windows).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dist {
    /// Samples.
    pub n: usize,
    /// Samples without a value.
    pub missing: usize,
    /// Smallest.
    pub min: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Nearest-rank 95th percentile.
    pub p95: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Dist {
    /// Of these samples (`None` = no value).
    pub fn of(samples: &[Option<f64>]) -> Dist {
        let missing = samples.iter().filter(|s| s.is_none()).count();
        let mut v: Vec<f64> = samples.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        let n = samples.len();
        if missing > 0 || v.is_empty() {
            return Dist {
                n,
                missing,
                ..Dist::default()
            };
        }
        let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Dist {
            n,
            missing,
            min: v.first().copied(),
            mean: Some(v.iter().sum::<f64>() / v.len() as f64),
            p95: Some(v[rank - 1]),
            max: v.last().copied(),
        }
    }

    /// `mean [min–max]` for tables (`never` when missing).
    pub fn short(&self, unit: &str, decimals: usize) -> String {
        match (self.mean, self.min, self.max) {
            (Some(m), Some(lo), Some(hi)) if self.n > 1 && lo != hi => {
                format!("{m:.decimals$}{unit} [{lo:.decimals$}–{hi:.decimals$}]")
            }
            (Some(m), _, _) => format!("{m:.decimals$}{unit}"),
            _ if self.n == 0 => "–".into(),
            _ => format!("never ({}/{})", self.missing, self.n),
        }
    }
}

/// What one run (one seed) produced.
#[derive(Clone, Debug)]
pub struct OneRun {
    /// Seed.
    pub seed: u64,
    /// Fault onsets were shifted by this much (s) for `--repeat`.
    pub onset_shift_s: f64,
    /// Length of the run (s).
    pub duration_s: f64,
    /// Client-side report.
    pub traffic: LoadReport,
    /// Per fault window.
    pub faults: Vec<FaultReport>,
    /// Error budget.
    pub budget: BudgetReport,
    /// Gateway events (builtin gateway).
    pub gateway_events: usize,
    /// What the traffic cost (`[cost] prices`).
    pub cost: Option<crate::cost::CostReport>,
}

/// Resilience over all runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resilience {
    /// Detection time (s after onset), traffic view: what every gateway can be measured by.
    pub detection_s: Dist,
    /// Gateway view (its ejection / breaker event), when the gateway reports events.
    pub detection_gateway_s: Dist,
    /// Client view (failure rate back under the SLO's ε).
    pub detection_client_s: Dist,
    /// Failed requests intended during the fault.
    pub failed_requests: Dist,
    /// …before detection (traffic view).
    pub failed_before_detection: Dist,
    /// …after detection.
    pub failed_after_detection: Dist,
    /// Every failed request of the run (one sample per run).
    pub failed_total: Dist,
    /// Fault end → the provider's share back to half its pre-fault share (s).
    pub failback_s: Dist,
    /// Per fault window of the first run.
    pub faults: Vec<FaultReport>,
}

/// Error budget over all runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Budget {
    /// SLO target τ.
    pub target: f64,
    /// Compliance period (s).
    pub period_s: f64,
    /// Budget in requests for the period (first run's rate unless `[slo] rate`).
    pub budget_requests: f64,
    /// Percent of the budget each run consumed.
    pub consumed_pct: Dist,
    /// Peak 5-minute burn rate.
    pub peak_burn_5m: Dist,
    /// Peak 1-hour burn rate.
    pub peak_burn_1h: Dist,
    /// First run: when each multi-window alert would fire (s since start; null = never).
    pub alerts: Vec<(String, Option<f64>)>,
}

/// The gateway part of a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GatewayInfo {
    /// `builtin` or `external`.
    pub kind: String,
    /// Where its output (external) or its events (builtin) went, if kept.
    pub log: Option<String>,
    /// Events the gateway reported (builtin), first run.
    pub events: usize,
    /// Seconds it took to become ready (external), first run.
    pub ready_s: Option<f64>,
}

/// The report of one scenario (one sweep point), over `runs` runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// `sim` or `live`.
    pub mode: String,
    /// Seed of the first run (run k uses seed + k).
    pub seed: u64,
    /// Runs folded in.
    pub runs: usize,
    /// The factor scenario times were multiplied by.
    pub time_scale: f64,
    /// Length of one run (s; simulated time in the simulator).
    pub duration_s: f64,
    /// The gateway.
    pub gateway: GatewayInfo,
    /// Client-side measurements of the first run (the `chaosgate load` report).
    pub traffic: LoadReport,
    /// Resilience.
    pub resilience: Resilience,
    /// Error budget.
    pub budget: Budget,
    /// What the first run's traffic cost per provider (`[cost] prices`), if priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostReport>,
    /// Cost of each run (USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Dist>,
    /// The point was interrupted: its figures cover what ran (absent when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// What could not be done exactly as asked (time scaling, rounding, …) and what makes
    /// the figures unreliable (requests in flight at the end, an interruption). A point
    /// with warnings is never ranked best or drawn as a good setting.
    pub warnings: Vec<String>,
}

impl RunReport {
    /// Folds runs (in seed order) into one report.
    pub fn fold(
        scenario: &str,
        mode: &str,
        time_scale: f64,
        gateway: GatewayInfo,
        runs: Vec<OneRun>,
        warnings: Vec<String>,
    ) -> RunReport {
        let per_fault = |f: &dyn Fn(&FaultReport) -> Option<f64>| -> Dist {
            Dist::of(&runs.iter().flat_map(|r| r.faults.iter().map(f)).collect::<Vec<_>>())
        };
        let per_run = |f: &dyn Fn(&OneRun) -> f64| Dist::of(&runs.iter().map(|r| Some(f(r))).collect::<Vec<_>>());
        let first = runs.first();
        let resilience = Resilience {
            detection_s: per_fault(&|f| f.detection_traffic_s),
            detection_gateway_s: per_fault(&|f| f.detection_gateway_s),
            detection_client_s: per_fault(&|f| f.detection_client_s),
            failed_requests: per_fault(&|f| Some(f.failed_during as f64)),
            failed_before_detection: per_fault(&|f| Some(f.failed_before_detection as f64)),
            failed_after_detection: per_fault(&|f| Some(f.failed_after_detection as f64)),
            failed_total: per_run(&|r| r.traffic.requests.failed as f64),
            failback_s: per_fault(&|f| f.failback_s),
            faults: first.map(|r| r.faults.clone()).unwrap_or_default(),
        };
        let budget = Budget {
            target: first.map_or(0.0, |r| r.budget.target),
            period_s: first.map_or(0.0, |r| r.budget.period_s),
            budget_requests: first.map_or(0.0, |r| r.budget.budget_requests),
            consumed_pct: per_run(&|r| r.budget.consumed_pct),
            peak_burn_5m: per_run(&|r| r.budget.peak_burn_5m),
            peak_burn_1h: per_run(&|r| r.budget.peak_burn_1h),
            alerts: first.map(|r| r.budget.alerts.clone()).unwrap_or_default(),
        };
        let mut gateway = gateway;
        gateway.events = first.map_or(0, |r| r.gateway_events);
        // the runs' own accounting warnings, each once, naming the run when there are several
        let mut warnings = warnings;
        for r in &runs {
            for w in &r.traffic.warnings {
                let w = if runs.len() > 1 {
                    format!("run with seed {}: {w}", r.seed)
                } else {
                    w.clone()
                };
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        RunReport {
            scenario: scenario.to_string(),
            mode: mode.to_string(),
            seed: first.map_or(0, |r| r.seed),
            runs: runs.len(),
            time_scale,
            duration_s: first.map_or(0.0, |r| r.duration_s),
            gateway,
            traffic: first.map(|r| r.traffic.clone()).unwrap_or_default(),
            resilience,
            budget,
            cost: first.and_then(|r| r.cost.clone()),
            cost_usd: first
                .and_then(|r| r.cost.as_ref())
                .map(|_| per_run(&|r| r.cost.as_ref().map_or(0.0, |c| c.total_usd))),
            partial: runs.iter().any(|r| r.traffic.partial),
            warnings,
        }
    }
}

/// One point of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct PointReport {
    /// The swept values (`path` → value as text), in axis order.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Its report.
    pub report: RunReport,
    /// Its assertions.
    pub checks: Vec<Check>,
    /// Whether every assertion held.
    pub passed: bool,
}

/// Every point of a sweep (a single run is a sweep of one point).
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// Scenario name.
    pub scenario: String,
    /// `sim` or `live`.
    pub mode: String,
    /// The swept paths.
    pub axes: Vec<String>,
    /// The points, in matrix order (first axis slowest).
    pub points: Vec<PointReport>,
    /// Whether every assertion of every point held (never for a partial report).
    pub passed: bool,
    /// Interrupted: the points and runs that ran (absent when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl SweepReport {
    /// The JSON written by `--json`: a single point is its report (plus its checks); a
    /// sweep is `{scenario, mode, axes, points: [{params, report, checks, passed}], passed}`.
    pub fn to_json(&self) -> serde_json::Value {
        if self.axes.is_empty() && self.points.len() == 1 {
            let p = &self.points[0];
            let mut v = serde_json::to_value(&p.report).unwrap_or_default();
            v["checks"] = serde_json::to_value(&p.checks).unwrap_or_default();
            v["passed"] = serde_json::Value::Bool(self.passed);
            v
        } else {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

/// The terminal summary of one report.
pub fn text(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {}  ({}, gateway {}, seed {}{}{})",
        r.scenario,
        r.mode,
        r.gateway.kind,
        r.seed,
        if r.runs > 1 {
            format!(", {} runs", r.runs)
        } else {
            String::new()
        },
        if r.time_scale != 1.0 {
            format!(", time_scale {}", r.time_scale)
        } else {
            String::new()
        },
    );
    s.push_str(&crate::report::text(&r.traffic));
    let o = |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{v:.2} s"));
    for f in &r.resilience.faults {
        let _ = writeln!(
            s,
            "\nfault {}/{} [{:.1} s, {:.1} s): detection gateway {} / traffic {} / client {}; failed {} ({} before detection, {} after); failback {}",
            f.provider,
            f.phase,
            f.onset_s,
            f.end_s,
            o(f.detection_gateway_s),
            o(f.detection_traffic_s),
            o(f.detection_client_s),
            f.failed_during,
            f.failed_before_detection,
            f.failed_after_detection,
            o(f.failback_s)
        );
    }
    if r.runs > 1 {
        let row = |name: &str, d: &Dist, unit: &str| {
            let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.2}"));
            format!(
                "  {name:<22} min {:>9}  mean {:>9}  p95 {:>9}  max {:>9}{unit}{}\n",
                f(d.min),
                f(d.mean),
                f(d.p95),
                f(d.max),
                if d.missing > 0 {
                    format!("  ({} of {} never)", d.missing, d.n)
                } else {
                    String::new()
                }
            )
        };
        let _ = writeln!(s, "\nover {} runs:", r.runs);
        s.push_str(&row("detection_s", &r.resilience.detection_s, " s"));
        s.push_str(&row("failed_requests", &r.resilience.failed_requests, ""));
        s.push_str(&row("failback_s", &r.resilience.failback_s, " s"));
        s.push_str(&row("budget.consumed_pct", &r.budget.consumed_pct, " %"));
    }
    let b = &r.budget;
    let _ = writeln!(
        s,
        "\nerror budget ({:.3} % over {:.0} days): {:.0} requests; this run used {} ; peak burn 5 min {}, 1 h {}",
        100.0 * b.target,
        b.period_s / 86_400.0,
        b.budget_requests,
        b.consumed_pct.short(" %", 2),
        b.peak_burn_5m.short("×", 1),
        b.peak_burn_1h.short("×", 1),
    );
    for (name, t) in &b.alerts {
        let _ = writeln!(
            s,
            "  alert {name:<18} {}",
            t.map_or("would not fire".into(), |t| format!("fires at {t:.1} s"))
        );
    }
    if let Some(c) = &r.cost {
        let reference = match (c.reference_usd, c.saving_pct) {
            (Some(r), Some(p)) => {
                format!(" — the same tokens at the reference price: {r:.4} USD, a saving of {p:.1} %")
            }
            _ => String::new(),
        };
        let _ = writeln!(s, "\ncost: {:.4} USD{reference}", c.total_usd);
        for (name, p) in &c.per_provider {
            let markup = p
                .total
                .markup_pct
                .map_or(String::new(), |m| format!(", {m:+.1} % vs its base price"));
            let _ = writeln!(
                s,
                "  {name:<18} {:>10.4} USD  {} requests, {} in / {} out tokens{markup}",
                p.total.usd, p.total.requests, p.total.input_tokens, p.total.output_tokens
            );
        }
        for u in &c.unpriced {
            let _ = writeln!(s, "  unpriced: {} / {} ({} requests)", u.provider, u.model, u.requests);
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// The point of a sweep with the fewest failed requests (mean over its runs) among the
/// points that can be ranked: no warnings, every run accounted for, every assertion held,
/// and a measured failure count. `None` when no point qualifies.
pub fn best_point(sw: &SweepReport) -> Option<usize> {
    sw.points
        .iter()
        .enumerate()
        .filter(|(_, p)| rankable(p))
        .filter_map(|(i, p)| p.report.resilience.failed_requests.mean.map(|f| (i, f)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Whether a point may be ranked or drawn as a setting: no warnings, nothing in flight at
/// the end, not partial, and its assertions held.
pub fn rankable(p: &PointReport) -> bool {
    unreliable_reason(p).is_none() && p.passed
}

/// Why a point's figures cannot be trusted (its warnings, requests in flight at the end, an
/// interruption), or `None`.
pub fn unreliable_reason(p: &PointReport) -> Option<String> {
    let r = &p.report;
    let q = &r.traffic.requests;
    if let Some(w) = r.warnings.first() {
        Some(format!(
            "{w}{}",
            if r.warnings.len() > 1 {
                format!(" (+{} more)", r.warnings.len() - 1)
            } else {
                String::new()
            }
        ))
    } else if q.in_flight_at_end > 0 {
        Some(crate::analysis::in_flight_warning(q.in_flight_at_end, q.scheduled))
    } else if r.partial {
        Some("partial (interrupted)".into())
    } else {
        None
    }
}

/// The comparison table of a sweep: one row per point.
pub fn sweep_table(sw: &SweepReport) -> String {
    let mut head: Vec<String> = sw
        .axes
        .iter()
        .map(|a| a.rsplit('.').next().unwrap_or(a).to_string())
        .collect();
    head.extend(
        ["detection s", "failed", "failback s", "budget %", "asserts"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut rows = vec![head];
    for p in &sw.points {
        let mut row: Vec<String> = sw
            .axes
            .iter()
            .map(|a| p.params.get(a).and_then(|v| v.as_str()).unwrap_or("").to_string())
            .collect();
        let r = &p.report;
        row.push(r.resilience.detection_s.short("", 2));
        row.push(r.resilience.failed_requests.short("", 0));
        row.push(r.resilience.failback_s.short("", 2));
        row.push(r.budget.consumed_pct.short("", 3));
        let mut verdict = if p.checks.is_empty() {
            "–".to_string()
        } else if p.passed {
            "pass".into()
        } else {
            format!(
                "FAIL {}/{}",
                p.checks.iter().filter(|c| !c.passed).count(),
                p.checks.len()
            )
        };
        if !r.warnings.is_empty() {
            // a point whose figures cannot be trusted says so in its row
            verdict.push_str(&format!(
                "  UNRELIABLE ({} warning{})",
                r.warnings.len(),
                if r.warnings.len() == 1 { "" } else { "s" }
            ));
        }
        row.push(verdict);
        rows.push(row);
    }
    let cols = rows[0].len();
    let w: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, x)| format!("{x:<width$}", width = w[c]))
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(s, "{}", w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>().join("  "));
        }
    }
    let unreliable = sw.points.iter().filter(|p| !p.report.warnings.is_empty()).count();
    if sw.points.len() > 1 && unreliable > 0 {
        let _ = writeln!(
            s,
            "{unreliable} point{} UNRELIABLE (warnings: see each point's report): never ranked, drawn hollow in --chart",
            if unreliable == 1 { "" } else { "s" }
        );
        let best = best_point(sw).map_or("none (no point can be ranked)".to_string(), |i| {
            sw.points[i]
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let _ = writeln!(s, "fewest failed requests among the reliable points: {best}");
    }
    s
}

/// Failed assertions, readable.
pub fn failures_text(sw: &SweepReport) -> String {
    let mut s = String::new();
    for p in &sw.points {
        for c in p.checks.iter().filter(|c| !c.passed) {
            let at = if p.params.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}]",
                    p.params
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(s, "  FAILED{at}: {} — {}", c.assertion, c.message);
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: one `<testsuite>` per sweep point, one `<testcase>` per assertion.
pub fn junit(sw: &SweepReport, command: &str) -> String {
    let total: usize = sw.points.iter().map(|p| p.checks.len()).sum();
    let failed: usize = sw
        .points
        .iter()
        .map(|p| p.checks.iter().filter(|c| !c.passed).count())
        .sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failed}\">",
        xml_escape(&format!("chaosgate {command} {}", sw.scenario))
    );
    for p in &sw.points {
        let params = p
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        let suite = if params.is_empty() {
            sw.scenario.clone()
        } else {
            format!("{} [{params}]", sw.scenario)
        };
        let nf = p.checks.iter().filter(|c| !c.passed).count();
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{nf}\" time=\"{:.3}\">",
            xml_escape(&suite),
            p.checks.len(),
            p.report.duration_s * p.report.runs as f64
        );
        // the point's warnings (requests in flight at the end, an interruption, …)
        if !p.report.warnings.is_empty() {
            s.push_str("    <properties>\n");
            for w in &p.report.warnings {
                let _ = writeln!(s, "      <property name=\"warning\" value=\"{}\"/>", xml_escape(w));
            }
            s.push_str("    </properties>\n");
        }
        for c in &p.checks {
            let _ = write!(
                s,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&suite),
                xml_escape(&c.assertion)
            );
            if c.passed {
                s.push_str("/>\n");
            } else {
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}: {}</failure>\n    </testcase>",
                    xml_escape(&c.message),
                    xml_escape(&c.assertion),
                    xml_escape(&c.message)
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// The sweep chart's points: x numeric when exactly one axis is swept and every value is
/// a number or a duration (then in seconds), labels otherwise.
pub fn chart_points(sw: &SweepReport) -> (String, Vec<crate::report::chart::ChartPoint>) {
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
            crate::report::chart::ChartPoint {
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
                unreliable: unreliable_reason(p),
            }
        })
        .collect();
    (x_label, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_by_hand() {
        let d = Dist::of(&(1..=20).map(|i| Some(i as f64)).collect::<Vec<_>>());
        assert_eq!((d.min, d.max, d.n, d.missing), (Some(1.0), Some(20.0), 20, 0));
        assert_eq!(d.mean, Some(10.5));
        assert_eq!(d.p95, Some(19.0), "nearest rank: ceil(0.95 × 20) = 19th");
        let one = Dist::of(&[Some(3.0)]);
        assert_eq!(
            (one.min, one.mean, one.p95, one.max),
            (Some(3.0), Some(3.0), Some(3.0), Some(3.0))
        );
        let gap = Dist::of(&[Some(1.0), None]);
        assert_eq!(
            (gap.max, gap.missing, gap.n),
            (None, 1, 2),
            "a never-detected run nulls the summary"
        );
        assert_eq!(Dist::of(&[]).max, None);
        assert_eq!(gap.short("s", 1), "never (1/2)");
    }
}
