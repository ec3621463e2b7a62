//! Routing: which targets a request tries, in which order.
//!
//! - `fallback`: priority order (the order of `targets`);
//! - `weighted`: the first target drawn by weight, then the rest in priority order;
//! - `least_latency`: lowest EWMA of observed latency first (unmeasured targets first);
//! - `cost`: the article's cost minimisation — targets whose `cost_per_1k` is within their
//!   `max_cost_per_1k` cap, cheapest first, then the rest in fallback order. A target with
//!   a `max_latency` is used this way only "when latency allows": once its latency EWMA
//!   exceeds `max_latency` it is passed over (tried after the others) for
//!   `latency_backoff`, then measured afresh — so the share a cheap, sometimes-slow model
//!   gets follows how often it is fast enough.
//!
//! Only available targets (healthy and admitted by their breaker) are tried. When none is,
//! `when_all_down = "fail_fast"` answers 503 at once; `"panic"` tries every target in
//! priority order (Envoy's panic mode).

use crate::rng::Stream;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// `gateway.strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Priority order.
    #[default]
    Fallback,
    /// Weighted random first choice.
    Weighted,
    /// Lowest latency EWMA first.
    #[serde(alias = "least-latency")]
    #[value(alias = "least_latency")]
    LeastLatency,
    /// Cheapest within its cost cap first.
    Cost,
}

/// What to do when every target is out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllDown {
    /// Answer 503 without trying.
    #[default]
    FailFast,
    /// Try all targets anyway (Envoy's panic mode).
    Panic,
}

/// Per-target routing data.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteTarget {
    /// Weight for `weighted`.
    pub weight: f64,
    /// Cost per 1k tokens for `cost`.
    pub cost_per_1k: Option<f64>,
    /// Cap for `cost`.
    pub max_cost_per_1k: Option<f64>,
    /// Latency EWMA in ns (None until measured).
    pub ewma: Option<f64>,
    /// `cost`: used first only while the EWMA is within this (ns).
    pub max_latency: Option<u64>,
    /// How long a target over its `max_latency` is passed over (ns).
    pub latency_backoff: u64,
    /// Passed over by `cost` until this time (ns).
    pub passed_over_until: u64,
}

/// EWMA smoothing of latency observations.
pub const EWMA_ALPHA: f64 = 0.3;

/// Records a latency observation.
pub fn observe(t: &mut RouteTarget, latency_ns: u64) {
    let x = latency_ns as f64;
    t.ewma = Some(match t.ewma {
        None => x,
        Some(e) => e + EWMA_ALPHA * (x - e),
    });
}

/// [`observe`], then: a target whose EWMA went over its `max_latency` is passed over by
/// `cost` until `now + latency_backoff`, and starts afresh (no EWMA) after that.
pub fn observe_at(t: &mut RouteTarget, now: u64, latency_ns: u64) {
    observe(t, latency_ns);
    if let (Some(max), Some(e)) = (t.max_latency, t.ewma) {
        if e > max as f64 {
            t.passed_over_until = now.saturating_add(t.latency_backoff);
            t.ewma = None;
        }
    }
}

/// The order in which to try targets. `available[i]` says whether target i may take traffic.
/// (The policy collects the available targets itself and calls [`arrange`]; this whole
/// form pins the strategies in tests.)
#[cfg(test)]
fn order(
    strategy: Strategy,
    all_down: AllDown,
    targets: &[RouteTarget],
    available: &[bool],
    rng: &mut Stream,
) -> Vec<usize> {
    let mut idx = Vec::with_capacity(targets.len());
    order_into(strategy, all_down, targets, available, rng, 0, &mut idx);
    idx
}

/// [`order`] into `idx` (cleared first).
#[cfg(test)]
fn order_into(
    strategy: Strategy,
    all_down: AllDown,
    targets: &[RouteTarget],
    available: &[bool],
    rng: &mut Stream,
    now: u64,
    idx: &mut Vec<usize>,
) {
    idx.clear();
    idx.extend((0..targets.len()).filter(|&i| available[i]));
    arrange(strategy, all_down, targets, rng, now, idx);
}

/// Orders `idx` — the available targets, in index order — by `strategy`; when none is
/// available, `all_down` says whether to try all of them (panic) or none. For a driver that collects the available targets itself.
#[inline]
pub fn arrange(
    strategy: Strategy,
    all_down: AllDown,
    targets: &[RouteTarget],
    rng: &mut Stream,
    now: u64,
    idx: &mut Vec<usize>,
) {
    if idx.is_empty() {
        if all_down == AllDown::Panic {
            idx.extend(0..targets.len());
        }
        return;
    }
    if strategy != Strategy::Fallback {
        reorder(strategy, targets, rng, now, idx);
    }
}

/// The strategies that move targets around (not `fallback`, which keeps index order).
fn reorder(strategy: Strategy, targets: &[RouteTarget], rng: &mut Stream, now: u64, idx: &mut Vec<usize>) {
    match strategy {
        Strategy::Fallback => {}
        Strategy::Weighted => {
            let total: f64 = idx.iter().map(|&i| targets[i].weight.max(0.0)).sum();
            if total > 0.0 {
                let mut u = rng.random::<f64>() * total;
                let mut pick = 0;
                for (k, &i) in idx.iter().enumerate() {
                    u -= targets[i].weight.max(0.0);
                    if u < 0.0 {
                        pick = k;
                        break;
                    }
                }
                let first = idx.remove(pick);
                idx.insert(0, first);
            }
        }
        Strategy::LeastLatency => {
            idx.sort_by(|&a, &b| {
                targets[a]
                    .ewma
                    .unwrap_or(0.0)
                    .total_cmp(&targets[b].ewma.unwrap_or(0.0))
                    .then(a.cmp(&b))
            });
        }
        Strategy::Cost => {
            let within = |i: usize| {
                let fast_enough = now >= targets[i].passed_over_until;
                fast_enough
                    && match (targets[i].cost_per_1k, targets[i].max_cost_per_1k) {
                        (Some(c), Some(m)) => c <= m,
                        (Some(_), None) => true,
                        _ => false,
                    }
            };
            let mut cheap: Vec<usize> = idx.iter().copied().filter(|&i| within(i)).collect();
            cheap.sort_by(|&a, &b| {
                targets[a]
                    .cost_per_1k
                    .unwrap_or(f64::MAX)
                    .total_cmp(&targets[b].cost_per_1k.unwrap_or(f64::MAX))
                    .then(a.cmp(&b))
            });
            let rest: Vec<usize> = idx.iter().copied().filter(|&i| !within(i)).collect();
            idx.clear();
            idx.extend(cheap.into_iter().chain(rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    fn t(weight: f64, cost: Option<f64>, cap: Option<f64>) -> RouteTarget {
        RouteTarget {
            weight,
            cost_per_1k: cost,
            max_cost_per_1k: cap,
            ewma: None,
            max_latency: None,
            latency_backoff: 10,
            passed_over_until: 0,
        }
    }

    /// "When latency allows": the cheap target goes first until its EWMA passes its
    /// max_latency, is then tried last for the backoff, and first again afresh after it.
    #[test]
    fn cost_passes_over_a_target_while_it_is_too_slow() {
        let mut r = stream(1, "r");
        let mut ts = vec![t(1.0, Some(15.0), Some(15.0)), t(1.0, Some(4.0), Some(4.0))];
        ts[1].max_latency = Some(1000);
        let first = |ts: &[RouteTarget], now: u64, r: &mut Stream| {
            let mut o = Vec::new();
            order_into(Strategy::Cost, AllDown::FailFast, ts, &[true; 2], r, now, &mut o);
            o
        };
        assert_eq!(first(&ts, 0, &mut r), vec![1, 0]);
        observe_at(&mut ts[1], 100, 900); // within
        assert_eq!(first(&ts, 101, &mut r), vec![1, 0]);
        observe_at(&mut ts[1], 200, 2000); // 900 + 0.3·1100 = 1230 > 1000
        assert_eq!(ts[1].passed_over_until, 210);
        assert_eq!(first(&ts, 205, &mut r), vec![0, 1], "passed over, still a fallback");
        assert_eq!(first(&ts, 210, &mut r), vec![1, 0], "back after the backoff");
        assert_eq!(ts[1].ewma, None, "measured afresh");
    }

    #[test]
    fn strategies() {
        let mut r = stream(1, "r");
        let ts = vec![
            t(1.0, Some(15.0), Some(15.0)),
            t(3.0, Some(12.0), Some(10.0)),
            t(0.0, Some(4.0), Some(4.0)),
        ];
        assert_eq!(
            order(Strategy::Fallback, AllDown::FailFast, &ts, &[true, true, true], &mut r),
            vec![0, 1, 2]
        );
        assert_eq!(
            order(Strategy::Fallback, AllDown::FailFast, &ts, &[false, true, true], &mut r),
            vec![1, 2]
        );
        // cost: target 1 is over its cap → after the cheap ones
        assert_eq!(
            order(Strategy::Cost, AllDown::FailFast, &ts, &[true, true, true], &mut r),
            vec![2, 0, 1]
        );
        assert!(order(Strategy::Fallback, AllDown::FailFast, &ts, &[false; 3], &mut r).is_empty());
        assert_eq!(
            order(Strategy::Fallback, AllDown::Panic, &ts, &[false; 3], &mut r),
            vec![0, 1, 2]
        );
        let firsts: Vec<usize> = (0..4000)
            .map(|_| order(Strategy::Weighted, AllDown::FailFast, &ts, &[true; 3], &mut r)[0])
            .collect();
        let share1 = firsts.iter().filter(|&&i| i == 1).count() as f64 / 4000.0;
        assert!((share1 - 0.75).abs() < 0.03, "{share1}");
        assert!(!firsts.contains(&2), "weight 0 is never first");
        let mut ll = ts.clone();
        observe(&mut ll[0], 500);
        observe(&mut ll[1], 100);
        observe(&mut ll[2], 300);
        assert_eq!(
            order(Strategy::LeastLatency, AllDown::FailFast, &ll, &[true; 3], &mut r),
            vec![1, 2, 0]
        );
        observe(&mut ll[1], 1000); // 100 + 0.3·900 = 370
        assert_eq!(
            order(Strategy::LeastLatency, AllDown::FailFast, &ll, &[true; 3], &mut r),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn cost_without_cap_counts_as_within_and_uncosted_go_last() {
        let mut r = stream(1, "r");
        let ts = vec![
            t(1.0, None, None),
            t(1.0, Some(9.0), None),
            t(1.0, Some(2.0), Some(1.0)),
        ];
        assert_eq!(
            order(Strategy::Cost, AllDown::FailFast, &ts, &[true; 3], &mut r),
            vec![1, 0, 2],
            "cheap-within-cap first, then the rest in fallback order"
        );
    }

    #[test]
    fn unavailable_targets_are_skipped_by_every_strategy_and_panic_tries_all() {
        let mut r = stream(2, "r");
        let ts = vec![t(5.0, Some(1.0), None), t(1.0, Some(2.0), None)];
        for s in [
            Strategy::Fallback,
            Strategy::Weighted,
            Strategy::LeastLatency,
            Strategy::Cost,
        ] {
            assert_eq!(order(s, AllDown::FailFast, &ts, &[false, true], &mut r), vec![1]);
            assert_eq!(order(s, AllDown::Panic, &ts, &[false, false], &mut r), vec![0, 1]);
        }
    }

    #[test]
    fn weighted_draws_are_reproducible_from_the_seed() {
        let ts = vec![t(1.0, None, None), t(1.0, None, None), t(2.0, None, None)];
        let draw = |seed| {
            let mut r = stream(seed, "gateway/route");
            (0..50)
                .map(|_| order(Strategy::Weighted, AllDown::FailFast, &ts, &[true; 3], &mut r)[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
