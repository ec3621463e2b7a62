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

use crate::analysis::assert::Check;
use crate::analysis::attempts::AttemptStats;
use crate::analysis::budget::BudgetReport;
use crate::analysis::resilience::FaultReport;
use crate::analysis::LoadReport;
use serde::{Deserialize, Serialize};

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

/// What one run (one seed) produced. (De)serializable so that a sharded `sim` can carry its
/// runs, incident view included, to `chaosgate merge` (`run::sim_shard`).
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    pub cost: Option<crate::analysis::cost::CostReport>,
    /// Which provider answered the requests started in each bucket.
    pub traffic_share: crate::analysis::share::TrafficShare,
    /// Attempts per request, truncated successes, hangs, probe load, Retry-After.
    pub attempts: AttemptStats,
    /// What the HTML report draws of this run, when it was asked for (`--html`, and the
    /// first run of each point of a sim shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Box<crate::analysis::incident::IncidentView>>,
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

/// Attempt figures over all runs (`docs/semantics.md` §13): one sample per run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Attempts {
    /// Provider attempts per client request.
    pub amplification: Dist,
    /// The same inside the faults' user-facing windows (missing in a run without one).
    pub amplification_during_fault: Dist,
    /// Truncated successes (missing when requests could not be matched to attempts).
    pub truncated_successes: Dist,
    /// Requests past the client's deadline, or in flight at the end.
    pub hangs: Dist,
    /// Attempts sooner than a 429's `Retry-After` asked, over all providers.
    pub retry_after_violations: Dist,
    /// The first run's figures in detail.
    pub first: AttemptStats,
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
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
    /// Per-provider traffic share per bucket, of the first run (as `traffic`).
    pub traffic_share: crate::analysis::share::TrafficShare,
    /// Resilience.
    pub resilience: Resilience,
    /// Error budget.
    pub budget: Budget,
    /// Attempts per request, truncated successes, hangs, probe load, Retry-After.
    pub attempts: Attempts,
    /// What the first run's traffic cost per provider (`[cost] prices`), if priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::analysis::cost::CostReport>,
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
    /// The first run's incident view (`--html` only; never in the JSON).
    #[serde(skip)]
    pub incident: Option<Box<crate::analysis::incident::IncidentView>>,
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
        let per_run_opt = |f: &dyn Fn(&AttemptStats) -> Option<f64>| {
            Dist::of(&runs.iter().map(|r| f(&r.attempts)).collect::<Vec<_>>())
        };
        let attempts = Attempts {
            amplification: per_run_opt(&|a| a.amplification),
            amplification_during_fault: per_run_opt(&|a| a.amplification_during_fault),
            truncated_successes: per_run_opt(&|a| a.truncated_successes.map(|n| n as f64)),
            hangs: per_run_opt(&|a| Some(a.hangs as f64)),
            retry_after_violations: per_run_opt(&|a| {
                Some(a.retry_after.values().map(|r| r.violations).sum::<u64>() as f64)
            }),
            first: first.map(|r| r.attempts.clone()).unwrap_or_default(),
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
            traffic_share: first.map(|r| r.traffic_share.clone()).unwrap_or_default(),
            resilience,
            budget,
            attempts,
            cost: first.and_then(|r| r.cost.clone()),
            cost_usd: first
                .and_then(|r| r.cost.as_ref())
                .map(|_| per_run(&|r| r.cost.as_ref().map_or(0.0, |c| c.total_usd))),
            partial: runs.iter().any(|r| r.traffic.partial),
            warnings,
            incident: runs.first().and_then(|r| r.incident.clone()),
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
