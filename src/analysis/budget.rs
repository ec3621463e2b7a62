//! Error budgets and burn-rate alerts (Google SRE Workbook, "Alerting on SLOs";
//! `docs/semantics.md` §4).
//!
//! SLO target τ, budget fraction ε = 1 − τ, compliance period P. Budget in requests
//! B = ε × (requests in P), at the run's request rate unless given. F failed requests
//! consume F / B of it. Burn rate over a window w: b(w) = e(w) / ε, e(w) = bad / total in the
//! last w. Windows reaching back before the run are filled with good traffic at the run's
//! mean request rate — the steady state a real service was in before the test — so a full
//! outage fires the 14.4× 1 h / 5 min alert after b*·ε·w_long / e = 51.8 s at 99.9 %, as
//! the formula says.

use crate::time::{Nanos, NS_PER_S};
use serde::{Deserialize, Serialize};

/// One multi-window alert rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AlertRule {
    /// Name (`page_14.4x_1h_5m`, …): the key in `budget.alerts` and the Prometheus alert
    /// name of `chaosgate rules`.
    pub name: &'static str,
    /// Who is told: `page` (someone now) or `ticket` (someone this week).
    pub severity: &'static str,
    /// Burn-rate threshold b*.
    pub burn: f64,
    /// Long window.
    pub long_s: u64,
    /// Short window (long / 12).
    pub short_s: u64,
}

/// The SRE Workbook's three rules: 14.4× 1 h/5 min, 6× 6 h/30 min, 1× 3 d/6 h.
pub const RULES: [AlertRule; 3] = [
    AlertRule {
        name: "page_14.4x_1h_5m",
        severity: "page",
        burn: 14.4,
        long_s: 3600,
        short_s: 300,
    },
    AlertRule {
        name: "page_6x_6h_30m",
        severity: "page",
        burn: 6.0,
        long_s: 21_600,
        short_s: 1800,
    },
    AlertRule {
        name: "ticket_1x_3d_6h",
        severity: "ticket",
        burn: 1.0,
        long_s: 259_200,
        short_s: 21_600,
    },
];

impl AlertRule {
    /// The error ratio this rule's burn rate b* stands for at SLO target τ: b*·(1 − τ)
    /// (14.4 × 0.001 = 0.0144 at 99.9 %). An alert fires when both windows are above it.
    pub fn error_ratio(&self, target: f64) -> f64 {
        self.burn * (1.0 - target)
    }

    /// The share of a compliance period's budget spent by burning at exactly b* for the
    /// long window: b*·w_long / P (14.4 × 1 h / 30 d = 0.02).
    pub fn budget_share(&self, period_s: f64) -> f64 {
        self.burn * self.long_s as f64 / period_s
    }
}

/// Every window the rules of [`RULES`] use, in seconds, shortest first, each once (the
/// HTML report's burn-rate lines and the Prometheus recording rules).
pub fn rule_windows() -> Vec<u64> {
    let mut w: Vec<u64> = RULES.iter().flat_map(|r| [r.short_s, r.long_s]).collect();
    w.sort_unstable();
    w.dedup();
    w
}

/// Budget report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BudgetReport {
    /// SLO target (e.g. 0.999).
    pub target: f64,
    /// Compliance period, seconds.
    pub period_s: f64,
    /// Budget in requests for the period.
    pub budget_requests: f64,
    /// Failed requests in the run.
    pub failed: u64,
    /// Percent of the budget consumed by the run.
    pub consumed_pct: f64,
    /// Largest burn rate over any 5-minute window.
    pub peak_burn_5m: f64,
    /// Largest burn rate over any 1-hour window.
    pub peak_burn_1h: f64,
    /// When each alert would fire (s since run start), `None` if never.
    pub alerts: Vec<(String, Option<f64>)>,
}

/// Budget in requests: ε × rate × period.
pub fn budget_requests(target: f64, rate_per_s: f64, period_s: f64) -> f64 {
    (1.0 - target) * rate_per_s * period_s
}

/// Burn rates over windows ending at the end of each bucket of a run (§4): prefix sums
/// of the run's per-bucket totals and failures, with windows that reach back before the
/// run filled with good traffic at `rate`. The one implementation of b(w) that the
/// budget report, the alert times and the HTML report's burn-rate series all read.
#[derive(Clone, Debug)]
pub struct Burn {
    eps: f64,
    bucket_s: f64,
    rate: f64,
    /// Prefix sums of the totals and the failures.
    pt: Vec<u64>,
    pb: Vec<u64>,
}

impl Burn {
    /// Of per-bucket (`bucket` long, by request end) totals and failures; `rate`: λ, the
    /// rate the pre-run fill assumes.
    pub fn new(target: f64, bucket: Nanos, totals: &[u64], bad: &[u64], rate: f64) -> Burn {
        let n = totals.len().min(bad.len());
        let mut pt = vec![0u64; n + 1];
        let mut pb = vec![0u64; n + 1];
        for i in 0..n {
            pt[i + 1] = pt[i] + totals[i];
            pb[i + 1] = pb[i] + bad[i];
        }
        Burn {
            eps: (1.0 - target).max(1e-12),
            bucket_s: bucket as f64 / NS_PER_S as f64,
            rate,
            pt,
            pb,
        }
    }

    /// Buckets.
    pub fn len(&self) -> usize {
        self.pt.len() - 1
    }

    /// No buckets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bucket length (s).
    pub fn bucket_s(&self) -> f64 {
        self.bucket_s
    }

    /// b(w): the burn rate over the window of `w` seconds ending at the end of bucket `i`.
    pub fn at(&self, i: usize, w: f64) -> f64 {
        let k = (w / self.bucket_s).round().max(1.0) as usize;
        let end = (i + 1).min(self.len());
        let start = end.saturating_sub(k);
        let inside = (end - start) as f64 * self.bucket_s;
        let before = (w - inside).max(0.0);
        let total = (self.pt[end] - self.pt[start]) as f64 + self.rate * before;
        if total <= 0.0 {
            return 0.0;
        }
        (self.pb[end] - self.pb[start]) as f64 / total / self.eps
    }

    /// The largest b(w) over the run.
    pub fn peak(&self, w: f64) -> f64 {
        (0..self.len()).map(|i| self.at(i, w)).fold(0.0, f64::max)
    }

    /// When `rule` first fires: the end of the first bucket where both its windows burn at
    /// ≥ b* (s since the run's start), `None` if never.
    pub fn fires_at(&self, rule: &AlertRule) -> Option<f64> {
        (0..self.len())
            .find(|&i| self.at(i, rule.long_s as f64) >= rule.burn && self.at(i, rule.short_s as f64) >= rule.burn)
            .map(|i| (i + 1) as f64 * self.bucket_s)
    }

    /// b(w) at the end of every bucket, in order (the burn-rate series of window `w`).
    pub fn series(&self, w: f64) -> Vec<f64> {
        (0..self.len()).map(|i| self.at(i, w)).collect()
    }
}

/// λ, the rate a run's budget and burn fill assume: `rate_override`, else the run's
/// requests (ok + failed) over its bucketed length.
pub fn run_rate(bucket: Nanos, totals: &[u64], rate_override: Option<f64>) -> f64 {
    let bucket_s = bucket as f64 / NS_PER_S as f64;
    let run_s = (totals.len() as f64 * bucket_s).max(bucket_s);
    rate_override.unwrap_or(totals.iter().sum::<u64>() as f64 / run_s)
}

/// Burn rates from per-second (`bucket`) totals and failures.
pub fn analyze(
    target: f64,
    period_s: f64,
    bucket: Nanos,
    totals: &[u64],
    bad: &[u64],
    rate_override: Option<f64>,
) -> BudgetReport {
    let failed: u64 = bad.iter().sum();
    let rate = run_rate(bucket, totals, rate_override);
    let budget = budget_requests(target, rate, period_s);
    let burn = Burn::new(target, bucket, totals, bad, rate);
    let alerts = RULES.iter().map(|r| (r.name.to_string(), burn.fires_at(r))).collect();
    BudgetReport {
        target,
        period_s,
        budget_requests: budget,
        failed,
        consumed_pct: if budget > 0.0 {
            100.0 * failed as f64 / budget
        } else {
            0.0
        },
        peak_burn_5m: burn.peak(300.0),
        peak_burn_1h: burn.peak(3600.0),
        alerts,
    }
}

/// Closed form: time for a multi-window alert to fire after a step to error ratio `e`
/// (`None` if it never does): t = b*·ε·w_long / e.
pub fn time_to_fire(target: f64, e: f64, rule: &AlertRule) -> Option<f64> {
    let eps = 1.0 - target;
    (e >= rule.burn * eps).then(|| rule.burn * eps * rule.long_s as f64 / e)
}

/// `[slo]`.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Availability target τ (default 0.999).
    #[serde(default = "d_target")]
    pub target: f64,
    /// Compliance period (default 30 days).
    #[serde(default = "d_period")]
    pub period: crate::time::Dur,
    /// Requests per second the budget is sized for (default: the run's rate).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Latency target: time to first token (goodput counts requests meeting every target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<crate::time::Dur>,
    /// Latency target: time per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot: Option<crate::time::Dur>,
    /// Latency target: end to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<crate::time::Dur>,
}

impl SloConfig {
    /// Problems, each at its key in `[slo]`: a zero period would make any failure count as 0 % of
    /// an infinite budget.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        use crate::diag::limits::*;
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        if !(self.target > 0.0 && self.target < 1.0) {
            v.push((key("target"), format!("must be in (0, 1), got {}", self.target)));
        }
        if let Some(m) = positive_dur(self.period, MAX_SLO_PERIOD) {
            v.push((key("period"), format!("{m} (the error budget is sized over it)")));
        }
        if let Some(r) = self.rate {
            if let Some(m) = number(r, false, MAX_RATE) {
                v.push((key("rate"), format!("{m} req/s")));
            }
        }
        for (k, d) in [("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e)] {
            if let Some(m) = d.and_then(|d| positive_dur(d, MAX_DURATION)) {
                v.push((key(k), m));
            }
        }
        v
    }

    /// The latency targets as goodput thresholds.
    pub fn thresholds(&self) -> super::SloThresholds {
        super::SloThresholds {
            ttft: self.ttft.map(|d| d.0),
            tpot: self.tpot.map(|d| d.0),
            e2e: self.e2e.map(|d| d.0),
        }
    }
}

fn d_target() -> f64 {
    0.999
}
fn d_period() -> crate::time::Dur {
    crate::time::Dur::from_secs(30 * 86_400)
}

impl Default for SloConfig {
    fn default() -> SloConfig {
        SloConfig {
            target: d_target(),
            period: d_period(),
            rate: None,
            ttft: None,
            tpot: None,
            e2e: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_articles_budget() {
        // 99.9 %, 155 req/s, 30 days → 401,760 requests; 13,950 failures = 3.47 %
        let b = budget_requests(0.999, 155.0, 30.0 * 86_400.0);
        assert!((b - 401_760.0).abs() < 1e-6);
        assert!((100.0 * 13_950.0 / b - 3.472).abs() < 0.001);
    }

    #[test]
    fn full_outage_fires_the_page_after_51_8_seconds() {
        assert!((time_to_fire(0.999, 1.0, &RULES[0]).unwrap() - 51.84).abs() < 1e-9);
        assert_eq!(
            time_to_fire(0.999, 0.01, &RULES[0]),
            None,
            "1 % errors never reach 14.4× at 99.9 %"
        );
        // simulate: 100 req/s, everything fails from t = 0 for 120 s
        let totals = vec![100u64; 120];
        let bad = vec![100u64; 120];
        let r = analyze(0.999, 30.0 * 86_400.0, NS_PER_S, &totals, &bad, None);
        let page = r.alerts[0].1.unwrap();
        assert!((page - 52.0).abs() < 1e-9, "{page}"); // the first whole second past 51.84
        assert!((r.consumed_pct - 100.0 * 12_000.0 / (0.001 * 100.0 * 2_592_000.0)).abs() < 1e-9);
        // 120 s of full outage in a 5-min window filled with good traffic: b = (120/300)/ε = 400
        assert!((r.peak_burn_5m - 400.0).abs() < 1e-6, "{}", r.peak_burn_5m);
    }

    #[test]
    fn each_rules_threshold_and_budget_share() {
        // docs/semantics.md §4's table: b*·ε at 99.9 %, and b*·w_long / 30 d
        let th: Vec<f64> = RULES.iter().map(|r| r.error_ratio(0.999)).collect();
        for (got, want) in th.iter().zip([0.0144, 0.006, 0.001]) {
            assert!((got - want).abs() < 1e-15, "{th:?}");
        }
        let share: Vec<f64> = RULES.iter().map(|r| r.budget_share(30.0 * 86_400.0)).collect();
        for (got, want) in share.iter().zip([0.02, 0.05, 0.10]) {
            assert!((got - want).abs() < 1e-15, "{share:?}");
        }
        let sev: Vec<&str> = RULES.iter().map(|r| r.severity).collect();
        assert_eq!(sev, ["page", "page", "ticket"]);
    }

    #[test]
    fn partial_errors_burn_slower() {
        // 10 % errors: the 6× 6 h rule fires after 6·0.001·21600/0.1 = 1296 s
        assert!((time_to_fire(0.999, 0.1, &RULES[1]).unwrap() - 1296.0).abs() < 1e-9);
        let totals = vec![10u64; 1500];
        let bad = vec![1u64; 1500];
        let r = analyze(0.999, 2_592_000.0, NS_PER_S, &totals, &bad, None);
        assert!((r.alerts[1].1.unwrap() - 1296.0).abs() <= 1.0, "{:?}", r.alerts);
        assert!((r.alerts[0].1.unwrap() - 518.4).abs() <= 1.0, "{:?}", r.alerts);
        assert_eq!(r.alerts[2].1, None, "3 d window: 1× needs 25,920 s of 10 % errors");
    }
}
