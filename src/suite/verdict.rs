//! The one owner of how a catalogue entry's run becomes a verdict (`docs/suite.md`,
//! "Verdicts"): the figures read from the run's report, and the rules, worst first.

use super::entry::{Best, CheckVerdict, Entry};
use crate::analysis::results::RunReport;
use serde::Serialize;
use std::collections::BTreeMap;

/// An entry's verdict, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Failed over, or succeeded within bounds.
    Pass,
    /// Clean errors to the client, no failover, no hang.
    Safe,
    /// Neither: failures leaked uncleanly or too many, or a degraded check.
    Degraded,
    /// Hang, truncated success, retry storm, Retry-After ignored, budget blown, or a fail check.
    Fail,
    /// The run itself could not be made (the gateway did not start, a config error).
    Error,
}

impl Verdict {
    /// Its name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Safe => "safe",
            Verdict::Degraded => "degraded",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
    /// The verdict named `s` (`pass`, `safe`, `degraded`, `fail`, `error`).
    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::Pass,
            Verdict::Safe,
            Verdict::Degraded,
            Verdict::Fail,
            Verdict::Error,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
    /// Whether it is as good as the entry allows.
    pub fn meets(self, best: Best) -> bool {
        match best {
            Best::Pass => self == Verdict::Pass,
            Best::Safe => self <= Verdict::Safe,
        }
    }
}

/// The figures a verdict reads, from one run's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Client requests intended inside the fault windows (windows of the same phase name on
    /// several providers counted once).
    pub window_requests: u64,
    /// …of which failed.
    pub window_failed: u64,
    /// `window_failed / window_requests`.
    pub failed_ratio: Option<f64>,
    /// The window's failures by outcome.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Failures in the window that were not a clean error (an HTTP status or an in-band
    /// stream error event): timeouts, resets, streams cut without a word, malformed streams.
    pub unclean_failures: u64,
    /// Detection, traffic view (s after onset), of the first fault window.
    pub detection_s: Option<f64>,
    /// Failback (s after the fault's user-facing end), of the first fault window.
    pub failback_s: Option<f64>,
    /// Provider attempts per user request during the fault.
    pub amplification_during_fault: Option<f64>,
    /// …over the whole run.
    pub amplification: Option<f64>,
    /// 200s without their full answer (None: attempts could not be matched to requests).
    pub truncated_successes: Option<u64>,
    /// Requests past the client's deadline.
    pub hangs: u64,
    /// Attempts sooner than a 429's Retry-After asked.
    pub retry_after_violations: u64,
    /// Health probes per second, all providers.
    pub probes_per_s: f64,
    /// Percent of the 30-day error budget the run consumed.
    pub budget_pct: f64,
    /// Every failed request of the run.
    pub failed_total: u64,
    /// Every request the run sent.
    pub sent_total: u64,
}

/// Whether a failure kind (`LoadReport` key) is a clean error: an HTTP error status, or an
/// error event inside a stream — either way the client is told, and can act on it. A
/// timeout, a reset, a stream that just stops or one that is not valid SSE is not.
fn clean(kind: &str) -> bool {
    kind.starts_with("http_") || kind == "stream_error"
}

/// The figures of one run.
pub fn figures(r: &RunReport) -> Figures {
    let (mut window_requests, mut window_failed) = (0, 0);
    let mut failures_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let phases = &r.traffic.phases;
    if phases.is_empty() {
        // no fault window: the whole run is the window
        window_requests = r.traffic.requests.sent;
        window_failed = r.traffic.requests.failed;
        failures_by_kind = r.traffic.failures_by_kind.clone();
    }
    // one group per phase name: a window both providers go through (`primary/fault`,
    // `fallback/fault`) covers the same requests once
    let mut seen = std::collections::BTreeSet::new();
    for (key, g) in phases {
        let phase = key.rsplit_once('/').map_or(key.as_str(), |(_, p)| p);
        if !seen.insert(phase) {
            continue;
        }
        window_requests += g.requests;
        window_failed += g.failed;
        for (k, n) in &g.failures_by_kind {
            *failures_by_kind.entry(k.clone()).or_default() += n;
        }
    }
    let unclean_failures = failures_by_kind.iter().filter(|(k, _)| !clean(k)).map(|(_, n)| n).sum();
    let first = r.resilience.faults.first();
    let a = &r.attempts.first;
    Figures {
        window_requests,
        window_failed,
        failed_ratio: (window_requests > 0).then(|| window_failed as f64 / window_requests as f64),
        failures_by_kind,
        unclean_failures,
        detection_s: first.and_then(|f| f.detection_traffic_s),
        failback_s: first.and_then(|f| f.failback_s),
        amplification_during_fault: a.amplification_during_fault,
        amplification: a.amplification,
        truncated_successes: a.truncated_successes,
        hangs: a.hangs,
        retry_after_violations: a.retry_after.values().map(|s| s.violations).sum(),
        probes_per_s: a.probes.values().map(|p| p.per_s).sum(),
        budget_pct: r.budget.consumed_pct.mean.unwrap_or(0.0),
        failed_total: r.traffic.requests.failed,
        sent_total: r.traffic.requests.sent,
    }
}

/// A verdict and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Each rule that lowered it, in words (empty for a pass).
    pub reasons: Vec<String>,
}

/// How far above one attempt per request an entry that must not fail over may go before
/// it counts as retried: probes or a stray reconnect are not a retry policy.
const NOT_RETRIED_SLACK: f64 = 0.1;

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The verdict of one run of `entry` with these figures; `checks` are the entry's
/// `[[check]]`s evaluated on the run's JSON report (held, text).
pub fn judge(entry: &Entry, f: &Figures, checks: &[(bool, String, CheckVerdict)]) -> Judgement {
    let b = &entry.bounds;
    let mut fail = Vec::new();
    if f.hangs > b.hangs {
        fail.push(format!("{} request(s) hung past the client's deadline", f.hangs));
    }
    if let Some(t) = f.truncated_successes.filter(|&t| t > b.truncated) {
        fail.push(format!(
            "{t} truncated success(es): 200 to the client, no complete answer from any provider"
        ));
    }
    if let Some(a) = f.amplification_during_fault.filter(|&a| a > b.amplification) {
        fail.push(format!(
            "retry storm: {a:.2} provider attempts per request during the fault (bound {})",
            b.amplification
        ));
    }
    if b.retry_after && f.retry_after_violations > 0 {
        fail.push(format!(
            "Retry-After ignored: {} attempt(s) sooner than a 429 asked",
            f.retry_after_violations
        ));
    }
    if entry.failover {
        if let Some(r) = f.failed_ratio.filter(|&r| r > b.budget_ratio) {
            fail.push(format!(
                "budget blown: {} of the fault window failed (bound {}): traffic did not move",
                pct(r),
                pct(b.budget_ratio)
            ));
        }
    }
    let mut degraded = Vec::new();
    for (held, text, v) in checks {
        if !held {
            match v {
                CheckVerdict::Fail => fail.push(format!("check failed: {text}")),
                CheckVerdict::Degraded => degraded.push(format!("check failed: {text}")),
            }
        }
    }
    let moved = f.detection_s.is_some();
    if !entry.failover && moved && !entry.fallback_faulted() {
        degraded.push(format!(
            "traffic moved off the primary after {:.1} s though it should have stayed (its completions worked or no other provider could help)",
            f.detection_s.unwrap_or(0.0)
        ));
    }
    if !entry.failover {
        let sent = entry.fault_statuses();
        let foreign: Vec<String> = f
            .failures_by_kind
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("http_")
                    .is_some_and(|s| !s.parse().is_ok_and(|s: u16| sent.contains(&s)))
            })
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !foreign.is_empty() {
            degraded.push(format!(
                "the client got statuses no provider sent ({}): the gateway turned errors it should pass on into its own",
                foreign.join(", ")
            ));
        }
        if let Some(a) = f.amplification_during_fault.filter(|&a| a > 1.0 + NOT_RETRIED_SLACK) {
            degraded.push(format!(
                "{a:.2} attempts per request during the fault: a request no other attempt can help was retried or failed over"
            ));
        }
    }
    if !fail.is_empty() {
        return Judgement {
            verdict: Verdict::Fail,
            reasons: fail,
        };
    }
    let ratio = f.failed_ratio.unwrap_or(0.0);
    if degraded.is_empty() && ratio <= b.failed_ratio {
        return Judgement {
            verdict: Verdict::Pass,
            reasons: Vec::new(),
        };
    }
    let mut why = degraded;
    if ratio > b.failed_ratio {
        why.push(format!(
            "{} of the fault window failed (pass: ≤ {})",
            pct(ratio),
            pct(b.failed_ratio)
        ));
    }
    if why.len() == 1 && ratio > b.failed_ratio && f.unclean_failures == 0 && (!moved || !entry.failover) {
        why.push("every failure was a clean error and traffic stayed".into());
        return Judgement {
            verdict: Verdict::Safe,
            reasons: why,
        };
    }
    if f.unclean_failures > 0 {
        why.push(format!(
            "{} failure(s) were not clean errors ({})",
            f.unclean_failures,
            f.failures_by_kind
                .iter()
                .filter(|(k, _)| !clean(k))
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if moved && entry.failover && ratio > b.failed_ratio {
        why.push(format!(
            "traffic moved after {:.1} s, too late to keep the window under its bound",
            f.detection_s.unwrap_or(0.0)
        ));
    }
    Judgement {
        verdict: Verdict::Degraded,
        reasons: why,
    }
}
