//! The incident view of one run: what the HTML report (`chaosgate … --html`) draws, as
//! plain numbers — per drawn time bucket the requests, failures, p50 / p99 latency and each
//! provider's traffic share; the fault windows; the gateway's events and health probes as
//! markers; the burn-rate series of the error budget's windows; and percentile curves of
//! latency, TTFT and ITL. Pure: computed from what a run already has (its aggregator, its
//! traffic share, its fault windows and gateway events), no I/O.
//!
//! Every number reuses the report's own definition (`docs/semantics.md`): requests and
//! failures per bucket of **intended start** as the client view of detection counts them
//! (§12, "Resilience"), each provider's share as [`TrafficShare::share_over`] weighs it, the
//! burn rate b(w) of [`budget::Burn`] (§4), quantiles of [`Hist::quantile_ms`].
//!
//! Bounded: at most [`MAX_BUCKETS`] drawn buckets (a long run's 100 ms analysis buckets are
//! merged, k at a time, k ∈ {1, 2, 5} × 10ⁿ) and at most [`MAX_MARKERS`] event markers
//! (events of one kind for one target in one drawn bucket are one marker with a count);
//! what was merged or left out is said in [`IncidentView::notes`].

use super::budget::{self, Burn};
use super::hist::Hist;
use super::share::TrafficShare;
use super::Aggregator;
use crate::gateway::{EventKind, GatewayEvent};
use crate::record::FaultEvent;
use crate::time::{nanos_to_secs_f64, Nanos};
use std::collections::BTreeMap;

/// Most time buckets drawn.
pub const MAX_BUCKETS: usize = 600;
/// Most event markers drawn.
pub const MAX_MARKERS: usize = 2_000;

/// A fault window (ground truth), in seconds since the run's start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultWindow {
    /// Provider.
    pub provider: String,
    /// Phase names (overlapping phases joined with `+`).
    pub phase: String,
    /// Onset.
    pub start_s: f64,
    /// End.
    pub end_s: f64,
    /// End of the part that fails user requests, when it differs from `end_s`.
    pub user_end_s: Option<f64>,
}

/// Gateway events of one kind for one target in one drawn bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventMark {
    /// The first such event (s since the run's start).
    pub t_s: f64,
    /// Drawn bucket.
    pub bucket: usize,
    /// Target.
    pub target: String,
    /// `ejected`, `restored`, `breaker_opened`, `breaker_half_opened`, `breaker_closed`,
    /// `rate_limited`, `retry` or `fallback` (the events' JSON names).
    pub kind: &'static str,
    /// Events folded into the mark.
    pub count: u64,
    /// Where the first fallback went (`fallback` only).
    pub to: Option<String>,
}

impl EventMark {
    /// A state change of the target (not a per-request retry or fallback).
    pub fn is_state_change(&self) -> bool {
        !matches!(self.kind, "retry" | "fallback")
    }
}

/// The burn rate over one window, per drawn bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BurnSeries {
    /// Window length (s).
    pub window_s: u64,
    /// Per drawn bucket: the largest b(w) at the end of any of its analysis buckets (so the
    /// series' peak is the report's peak).
    pub values: Vec<f64>,
}

/// A percentile curve: quantile → value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// `e2e`, `ttft` or `itl`.
    pub metric: &'static str,
    /// `all` or a provider.
    pub group: String,
    /// Samples.
    pub count: u64,
    /// (q, ms) at q = 1 − 1/x for x = 1, 2, 5, 10, 20, … up to the sample count.
    pub points: Vec<(f64, f64)>,
    /// The largest sample (ms).
    pub max_ms: f64,
}

/// The error budget's parameters for the burn series.
#[derive(Clone, Copy, Debug)]
pub struct BudgetInput {
    /// SLO target τ.
    pub target: f64,
    /// `[slo] rate`, if set.
    pub rate: Option<f64>,
}

/// What the HTML report draws of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentView {
    /// Drawn bucket length (s).
    pub bucket_s: f64,
    /// Analysis buckets per drawn bucket.
    pub merged: usize,
    /// The run's length (s).
    pub duration_s: f64,
    /// Per drawn bucket: sent requests intended in it (ok + failed).
    pub requests: Vec<u64>,
    /// Per drawn bucket: of those, failed.
    pub failed: Vec<u64>,
    /// Per drawn bucket: p50 and p99 end-to-end latency (ms) of the sent requests intended
    /// in it (`None`: none sent); empty when the run kept no per-bucket latency.
    pub p50_ms: Vec<Option<f64>>,
    /// See `p50_ms`.
    pub p99_ms: Vec<Option<f64>>,
    /// Per provider, per drawn bucket: its share of the attributed requests started in it.
    pub share: BTreeMap<String, Vec<Option<f64>>>,
    /// Fault windows.
    pub faults: Vec<FaultWindow>,
    /// Gateway events (not probes), folded per drawn bucket.
    pub events: Vec<EventMark>,
    /// Per target, per drawn bucket: health probes (passed, failed).
    pub probes: BTreeMap<String, Vec<(u64, u64)>>,
    /// Burn rate per window (the distinct windows of the alert rules up to 6 h); empty
    /// without an SLO.
    pub burn: Vec<BurnSeries>,
    /// Percentile curves: overall, then per provider; e2e, TTFT, ITL.
    pub latency: Vec<Percentiles>,
    /// What was merged, capped or left out.
    pub notes: Vec<String>,
}

/// The drawn bucket's size in analysis buckets: the smallest of 1, 2, 5 × 10ⁿ that keeps
/// `n` analysis buckets within [`MAX_BUCKETS`].
pub fn merge_factor(n: usize) -> usize {
    let need = n.div_ceil(MAX_BUCKETS).max(1);
    let mut mag = 1usize;
    loop {
        for m in [1, 2, 5] {
            if m * mag >= need {
                return m * mag;
            }
        }
        mag = mag.saturating_mul(10);
    }
}

/// The x values of a percentile curve: 1, 2, 5, 10, 20, 50, … up to `n` (at least 1).
pub fn percentile_xs(n: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut mag = 1.0f64;
    'outer: loop {
        for m in [1.0, 2.0, 5.0] {
            let x = m * mag;
            if x > (n.max(1)) as f64 || out.len() >= 40 {
                break 'outer;
            }
            out.push(x);
        }
        mag *= 10.0;
    }
    out
}

/// The curve of `h` (`None` when it has no sample).
pub fn percentiles(metric: &'static str, group: &str, h: &Hist) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let points = percentile_xs(h.len())
        .into_iter()
        .map(|x| {
            let q = 1.0 - 1.0 / x;
            (q, h.quantile_ms(q))
        })
        .collect();
    Some(Percentiles {
        metric,
        group: group.to_string(),
        count: h.len(),
        points,
        max_ms: h.min_max_us().map_or(0.0, |(_, hi)| hi as f64 / 1000.0),
    })
}

/// The burn windows drawn: the alert rules' distinct windows up to 6 h, shortest first.
pub fn burn_windows() -> Vec<u64> {
    budget::rule_windows().into_iter().filter(|&w| w <= 6 * 3600).collect()
}

/// The events the timeline marks: every kind but probe results (drawn in their own lane).
fn event_name(k: &EventKind) -> Option<&'static str> {
    (!matches!(k, EventKind::ProbeResult { .. })).then(|| k.name())
}

impl IncidentView {
    /// The view of a run: its aggregator (by-start latency kept when the driver asked
    /// [`Aggregator::with_start_latency`]), its traffic share (100 ms buckets), fault windows,
    /// gateway events, error budget (`None`: no SLO, as for `chaosgate load`) and length.
    pub fn build(
        agg: &Aggregator,
        share: &TrafficShare,
        faults: &[FaultEvent],
        events: &[GatewayEvent],
        budget: Option<BudgetInput>,
        duration: Nanos,
    ) -> IncidentView {
        let bucket = agg.bucket_len();
        let series = super::resilience::Series::from_aggregator(agg);
        let n = series
            .requests
            .len()
            .max(agg.buckets.len())
            .max(share.requests.len())
            .max(duration.div_ceil(bucket) as usize)
            .max(1);
        let k = merge_factor(n);
        let drawn = n.div_ceil(k);
        let bucket_s = nanos_to_secs_f64(bucket) * k as f64;
        let mut notes = Vec::new();
        if k > 1 {
            notes.push(format!(
                "{n} analysis buckets of {} ms are drawn {k} at a time: one drawn bucket is {} s",
                bucket / crate::time::NS_PER_MS,
                fmt_s(bucket_s)
            ));
        }
        if n >= super::MAX_BUCKETS {
            notes.push(format!(
                "the analysis keeps {} buckets; requests later than that are counted in the last one",
                super::MAX_BUCKETS
            ));
        }
        let range = |j: usize| (j * k, ((j + 1) * k).min(n));
        let mut requests = vec![0u64; drawn];
        let mut failed = vec![0u64; drawn];
        for (i, &(s, f)) in series.requests.iter().enumerate() {
            requests[(i / k).min(drawn - 1)] += s;
            failed[(i / k).min(drawn - 1)] += f;
        }
        let (p50_ms, p99_ms) = match agg.start_latency() {
            Some(hs) => (0..drawn)
                .map(|j| {
                    let (a, b) = range(j);
                    let mut h = Hist::coarse();
                    for x in hs.iter().take(b).skip(a).flatten() {
                        h.merge(x);
                    }
                    if h.is_empty() {
                        (None, None)
                    } else {
                        (Some(h.quantile_ms(0.5)), Some(h.quantile_ms(0.99)))
                    }
                })
                .unzip(),
            None => (Vec::new(), Vec::new()),
        };
        let share_series = share
            .providers
            .keys()
            .map(|p| {
                let v = (0..drawn)
                    .map(|j| {
                        let (a, b) = range(j);
                        share.share_over(p, a, b)
                    })
                    .collect();
                (p.clone(), v)
            })
            .collect();
        let faults = faults
            .iter()
            .map(|f| FaultWindow {
                provider: f.provider.clone(),
                phase: f.phase.clone(),
                start_s: nanos_to_secs_f64(f.start),
                end_s: nanos_to_secs_f64(f.end),
                user_end_s: f.user_end.filter(|&u| u != f.end).map(nanos_to_secs_f64),
            })
            .collect();
        let at = |t: Nanos| ((t / bucket) as usize / k).min(drawn.saturating_sub(1));
        let mut probes: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let mut marks: BTreeMap<(usize, String, &'static str), EventMark> = BTreeMap::new();
        for e in events {
            let j = at(e.t_ns);
            if let EventKind::ProbeResult { ok } = e.kind {
                let v = probes.entry(e.target.clone()).or_insert_with(|| vec![(0, 0); drawn]);
                if ok {
                    v[j].0 += 1;
                } else {
                    v[j].1 += 1;
                }
                continue;
            }
            let Some(kind) = event_name(&e.kind) else { continue };
            let m = marks.entry((j, e.target.clone(), kind)).or_insert_with(|| EventMark {
                t_s: nanos_to_secs_f64(e.t_ns),
                bucket: j,
                target: e.target.clone(),
                kind,
                count: 0,
                to: match &e.kind {
                    EventKind::Fallback { to } => Some(to.clone()),
                    _ => None,
                },
            });
            m.count += 1;
            m.t_s = m.t_s.min(nanos_to_secs_f64(e.t_ns));
        }
        // state changes first, then retries and fallbacks, each in time order, up to the cap
        let (mut events, per_request): (Vec<EventMark>, Vec<EventMark>) =
            marks.into_values().partition(EventMark::is_state_change);
        let total = events.len() + per_request.len();
        events.extend(per_request);
        if events.len() > MAX_MARKERS {
            events.truncate(MAX_MARKERS);
            notes.push(format!(
                "{total} event markers: the first {MAX_MARKERS} are drawn (state changes first, then retries and fallbacks)"
            ));
        }
        events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then_with(|| a.target.cmp(&b.target)));
        let burn = match budget {
            Some(b) => {
                let (totals, bad) = agg.budget_counts();
                let rate = budget::run_rate(bucket, &totals, b.rate);
                let burn = Burn::new(b.target, bucket, &totals, &bad, rate);
                burn_windows()
                    .into_iter()
                    .map(|w| {
                        let s = burn.series(w as f64);
                        let values = (0..drawn)
                            .map(|j| {
                                let (a, b) = range(j);
                                s.get(a..b.min(s.len()))
                                    .unwrap_or(&[])
                                    .iter()
                                    .copied()
                                    .fold(0.0, f64::max)
                            })
                            .collect();
                        BurnSeries { window_s: w, values }
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let mut latency = Vec::new();
        let overall = agg.overall();
        let providers = agg.providers();
        for (group, g) in std::iter::once(("all", &overall)).chain(providers.iter().map(|(p, g)| (*p, g))) {
            for (metric, h) in [("e2e", &g.latency), ("ttft", &g.ttft), ("itl", &g.itl)] {
                latency.extend(percentiles(metric, group, h));
            }
        }
        IncidentView {
            bucket_s,
            merged: k,
            duration_s: nanos_to_secs_f64(duration),
            requests,
            failed,
            p50_ms,
            p99_ms,
            share: share_series,
            faults,
            events,
            probes,
            burn,
            latency,
            notes,
        }
    }

    /// Drawn buckets.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// No bucket.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The client failure rate of drawn bucket `j`: failed ÷ sent among the requests
    /// intended in it (`None` without one).
    pub fn failure_rate(&self, j: usize) -> Option<f64> {
        let n = *self.requests.get(j)?;
        (n > 0).then(|| self.failed[j] as f64 / n as f64)
    }
}

/// Seconds without trailing zeros (`0.5`, `2`, `120`).
fn fmt_s(s: f64) -> String {
    let t = format!("{s:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::budget::analyze;
    use crate::analysis::share::traffic_share;
    use crate::analysis::SloThresholds;
    use crate::record::{Outcome, RequestRecord};
    use crate::time::{NS_PER_MS, NS_PER_S};

    fn rec(id: u64, intended: Nanos, latency_ms: u64, provider: Option<&str>, outcome: Outcome) -> RequestRecord {
        RequestRecord {
            id,
            kind: 0,
            intended,
            sent: Some(intended),
            first_byte: None,
            first_token: None,
            end: intended + latency_ms * NS_PER_MS,
            outcome,
            output_tokens: 1,
            input_tokens: 1,
            provider: provider.map(str::to_string),
            stream: false,
        }
    }

    /// By hand, 1 s buckets over 3 s: bucket 0 a ok 10 ms, a ok 30 ms, b ok 20 ms; bucket 1
    /// a 502 after 5 ms, b ok 40 ms, an unattributed timeout after 900 ms; bucket 2 nothing.
    #[test]
    fn share_failure_rate_and_latency_per_bucket_by_hand() {
        let s = NS_PER_S;
        let mut agg = Aggregator::new(s, vec!["chat".into()], SloThresholds::default()).with_start_latency();
        for r in [
            rec(0, 0, 10, Some("a"), Outcome::Ok),
            rec(1, 100 * NS_PER_MS, 30, Some("a"), Outcome::Ok),
            rec(2, 200 * NS_PER_MS, 20, Some("b"), Outcome::Ok),
            rec(3, s, 5, Some("a"), Outcome::Http(502)),
            rec(4, s + 1, 40, Some("b"), Outcome::Ok),
            rec(5, s + 2, 900, None, Outcome::Timeout),
        ] {
            agg.add(&r, &[], false);
        }
        let share = traffic_share(&crate::analysis::resilience::Series::from_aggregator(&agg));
        let v = IncidentView::build(&agg, &share, &[], &[], None, 3 * s);
        assert_eq!((v.len(), v.merged, v.bucket_s), (3, 1, 1.0));
        assert_eq!(v.requests, vec![3, 3, 0]);
        assert_eq!(v.failed, vec![0, 2, 0]);
        assert_eq!(v.failure_rate(0), Some(0.0));
        assert_eq!(v.failure_rate(1), Some(2.0 / 3.0));
        assert_eq!(v.failure_rate(2), None, "no traffic, no rate");
        // shares of the attributed requests: 2/3 a, 1/3 b; then 1/2, 1/2; then none
        let a = &v.share["a"];
        assert!((a[0].unwrap() - 2.0 / 3.0).abs() < 1e-4 && (a[1].unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(a[2], None);
        // p50 of {10, 20, 30} ms is 20 ms, p99 30 ms (3 significant digits)
        assert!((v.p50_ms[0].unwrap() - 20.0).abs() < 0.02, "{:?}", v.p50_ms);
        assert!((v.p99_ms[0].unwrap() - 30.0).abs() < 0.03, "{:?}", v.p99_ms);
        // bucket 1: {5, 40, 900} → p50 40, p99 900
        assert!((v.p50_ms[1].unwrap() - 40.0).abs() < 0.04);
        assert!((v.p99_ms[1].unwrap() - 900.0).abs() < 0.9);
        assert_eq!(v.p50_ms[2], None);
        // no budget asked: no burn series; no events: no markers
        assert!(v.burn.is_empty() && v.events.is_empty() && v.probes.is_empty());
        // the overall e2e curve: x = 1, 2, 5 (6 samples), q = 0, 0.5, 0.8
        let all = v
            .latency
            .iter()
            .find(|p| p.metric == "e2e" && p.group == "all")
            .unwrap();
        assert_eq!(all.count, 6);
        assert_eq!(all.points.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0.0, 0.5, 0.8]);
        assert!((all.points[1].1 - agg.overall().latency.quantile_ms(0.5)).abs() < 1e-12);
        assert!((all.max_ms - 900.0).abs() < 1.0, "{}", all.max_ms);
        // no TTFT or ITL samples: no curves for them
        assert!(v.latency.iter().all(|p| p.metric == "e2e"));
        assert_eq!(v.latency.len(), 1 + 3, "all, a, b, unknown");
    }

    #[test]
    fn merge_factor_keeps_the_drawn_buckets_bounded() {
        assert_eq!(merge_factor(0), 1);
        assert_eq!(merge_factor(600), 1);
        assert_eq!(merge_factor(601), 2);
        assert_eq!(merge_factor(1_201), 5);
        assert_eq!(merge_factor(6_001), 20);
        // 4 h at 100 ms
        let n = 144_000;
        let k = merge_factor(n);
        assert!(n.div_ceil(k) <= MAX_BUCKETS && k == 500, "{k}");
        assert_eq!(percentile_xs(0), vec![1.0]);
        assert_eq!(
            percentile_xs(1000),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
    }

    /// The burn series is `Burn::at` of budget.rs, the formula the alerts use: at a given
    /// instant it equals e(w)/ε with the pre-run fill, and its peak is the report's peak.
    #[test]
    fn burn_series_is_the_budget_formula() {
        // 10 req/s in 1 s buckets for 600 s; everything fails in [100 s, 160 s)
        let s = NS_PER_S;
        let mut agg = Aggregator::new(s, vec!["chat".into()], SloThresholds::default());
        let mut id = 0;
        for sec in 0..600u64 {
            for k in 0..10u64 {
                let out = if (100..160).contains(&sec) {
                    Outcome::Http(502)
                } else {
                    Outcome::Ok
                };
                agg.add(&rec(id, sec * s + k * 100 * NS_PER_MS, 1, Some("a"), out), &[], false);
                id += 1;
            }
        }
        let share = traffic_share(&crate::analysis::resilience::Series::from_aggregator(&agg));
        let b = BudgetInput {
            target: 0.999,
            rate: None,
        };
        let v = IncidentView::build(&agg, &share, &[], &[], Some(b), 600 * s);
        assert_eq!(
            v.burn.iter().map(|b| b.window_s).collect::<Vec<_>>(),
            vec![300, 1800, 3600, 21_600]
        );
        let five = &v.burn[0].values;
        // at the end of second 159 (bucket 159): 600 bad of 300 s × 10 req/s = 3000 → 0.2/ε = 200
        assert!((five[159] - 200.0).abs() < 1e-9, "{}", five[159]);
        // at the end of second 9: nothing bad yet
        assert_eq!(five[9], 0.0);
        // the 1 h window at the end of second 159: 600 bad over 3600 s at λ = 10 → 600/36000/ε
        assert!((v.burn[2].values[159] - 600.0 / 36_000.0 / 0.001).abs() < 1e-9);
        let (totals, bad) = agg.budget_counts();
        let r = analyze(0.999, 30.0 * 86_400.0, s, &totals, &bad, None);
        let peak = five.iter().copied().fold(0.0, f64::max);
        assert!((peak - r.peak_burn_5m).abs() < 1e-12, "{peak} vs {}", r.peak_burn_5m);
        assert!((v.burn[2].values.iter().copied().fold(0.0, f64::max) - r.peak_burn_1h).abs() < 1e-12);
    }

    #[test]
    fn events_fold_per_bucket_and_probes_count() {
        let s = NS_PER_S;
        let agg = Aggregator::new(s, vec!["chat".into()], SloThresholds::default());
        let share = TrafficShare::default();
        let ev = |t: Nanos, target: &str, kind: EventKind| GatewayEvent {
            t_ns: t,
            target: target.into(),
            kind,
            replica: None,
        };
        let events = vec![
            ev(500 * NS_PER_MS, "p", EventKind::ProbeResult { ok: true }),
            ev(2 * s, "p", EventKind::ProbeResult { ok: false }),
            ev(2 * s + 1, "p", EventKind::Ejected),
            ev(2 * s + 5, "p", EventKind::Fallback { to: "q".into() }),
            ev(2 * s + 7, "p", EventKind::Fallback { to: "q".into() }),
            ev(4 * s, "p", EventKind::Restored),
        ];
        let v = IncidentView::build(&agg, &share, &[], &events, None, 5 * s);
        assert_eq!(v.probes["p"], vec![(1, 0), (0, 0), (0, 1), (0, 0), (0, 0)]);
        let kinds: Vec<(&str, u64)> = v.events.iter().map(|e| (e.kind, e.count)).collect();
        assert_eq!(kinds, vec![("ejected", 1), ("fallback", 2), ("restored", 1)]);
        assert_eq!(v.events[1].to.as_deref(), Some("q"));
        assert_eq!(v.events[1].t_s, 2.000000005);
        // nothing ran at all, yet an event: one empty bucket, no panic
        let v = IncidentView::build(&agg, &share, &[], &events[2..3], None, 0);
        assert_eq!((v.len(), v.events.len(), v.failure_rate(0)), (1, 1, None));
    }
}
