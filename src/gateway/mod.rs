//! The reference gateway: a policy whose every decision is known exactly.
//!
//! The policy is pure (`now`, outcomes and a seeded stream in; decisions and
//! [`GatewayEvent`]s out), so the live proxy (`server`) and the virtual-time simulator run
//! the very same code. Parts: active [`health`] checks, passive [`breaker`]s, the
//! [`router`], [`retry`] budgets, and which outcomes count as failures.

pub mod breaker;
pub mod events;
pub mod health;
pub mod retry;
pub mod router;
pub mod server;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use events::{EventKind, GatewayEvent};
pub use health::{HealthChecker, HealthConfig, ProbeKind};
pub use retry::{Failure, RetryBudget, RetryConfig};
pub use router::{AllDown, RouteTarget, Strategy};

use crate::provider::Api;
use crate::rng::{stream, Stream};
use crate::time::{Dur, Nanos};
use serde::{Deserialize, Serialize};

fn one() -> f64 {
    1.0
}

/// One upstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name (events, metrics, `x-chaosgate-provider` when the upstream does not say).
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9001`.
    pub url: String,
    /// Weight for `weighted`.
    #[serde(default = "one")]
    pub weight: f64,
    /// Price per 1k tokens for `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_1k: Option<f64>,
    /// Cap for `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_1k: Option<f64>,
    /// The upstream's API (default: whatever the client sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
}

fn d_fail_statuses() -> Vec<u16> {
    let mut v = vec![408, 429];
    v.extend(500..=599);
    v
}
fn t() -> bool {
    true
}

/// What counts as a failure (for breakers and fallback).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRules {
    /// Statuses that are failures (default 408, 429, 5xx).
    #[serde(default = "d_fail_statuses")]
    pub statuses: Vec<u16>,
    /// Timeouts and connection errors (default true).
    #[serde(default = "t")]
    pub timeout: bool,
    /// A stream that ends without its terminal event (default true).
    #[serde(default = "t")]
    pub stream_cut: bool,
    /// An in-band error event (default true).
    #[serde(default = "t")]
    pub stream_error: bool,
}

impl Default for FailureRules {
    fn default() -> FailureRules {
        FailureRules {
            statuses: d_fail_statuses(),
            timeout: true,
            stream_cut: true,
            stream_error: true,
        }
    }
}

fn d_listen() -> String {
    "127.0.0.1:4000".into()
}
fn d_req_timeout() -> Dur {
    Dur::from_secs(60)
}

/// `[gateway]` (builtin) or a `gateway.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listen address.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Routing strategy.
    #[serde(default)]
    pub strategy: Strategy,
    /// Upstreams, in priority order.
    pub targets: Vec<TargetConfig>,
    /// Active health checks (absent = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthConfig>,
    /// Passive breaker (absent = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// Retries.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Move on to the next target after a failure before the first byte (default true).
    #[serde(default = "t")]
    pub fallback_on_failure: bool,
    /// When every target is out.
    #[serde(default)]
    pub when_all_down: AllDown,
    /// What counts as a failure.
    #[serde(default)]
    pub failure: FailureRules,
    /// Upstream timeout per attempt.
    #[serde(default = "d_req_timeout")]
    pub request_timeout: Dur,
    /// Upstream time-to-first-byte timeout for streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_timeout: Option<Dur>,
    /// Longest silence inside an upstream stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout: Option<Dur>,
}

impl GatewayConfig {
    /// Problems, `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if self.targets.is_empty() {
            v.push(("targets".into(), "at least one target is required".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if !names.insert(&t.name) {
                v.push((
                    format!("targets[{i}].name"),
                    format!("duplicate target name {:?}", t.name),
                ));
            }
            if let Err(e) = crate::load::base_url(&t.url) {
                v.push((format!("targets[{i}].url"), e.replace("--target", "url")));
            }
        }
        if let Some(h) = &self.health_check {
            v.extend(h.problems().into_iter().map(|(k, m)| (format!("health_check.{k}"), m)));
        }
        if let Some(b) = &self.breaker {
            v.extend(b.problems().into_iter().map(|(k, m)| (format!("breaker.{k}"), m)));
        }
        v
    }
}

/// The policy of the reference gateway over all its targets.
#[derive(Debug)]
pub struct Policy {
    cfg: GatewayConfig,
    health: Vec<Option<HealthChecker>>,
    breakers: Vec<Option<Breaker>>,
    route: Vec<RouteTarget>,
    budget: RetryBudget,
    rng_route: Stream,
    rng_health: Stream,
    events: Vec<GatewayEvent>,
}

impl Policy {
    /// The policy; streams from `(seed, "gateway/…")`. Health checks of target i start
    /// at a spread offset `i · interval / n` so probes do not bunch.
    pub fn new(cfg: GatewayConfig, seed: u64) -> Policy {
        let n = cfg.targets.len().max(1) as u64;
        let health = cfg
            .targets
            .iter()
            .enumerate()
            .map(|(i, _)| {
                cfg.health_check.clone().map(|h| {
                    let first = h.interval.0 / n * i as u64;
                    HealthChecker::new(h, first)
                })
            })
            .collect();
        let breakers = cfg
            .targets
            .iter()
            .map(|_| cfg.breaker.clone().map(Breaker::new))
            .collect();
        let route = cfg
            .targets
            .iter()
            .map(|t| RouteTarget {
                weight: t.weight,
                cost_per_1k: t.cost_per_1k,
                max_cost_per_1k: t.max_cost_per_1k,
                ewma: None,
            })
            .collect();
        Policy {
            budget: RetryBudget::new(cfg.retries.clone()),
            cfg,
            health,
            breakers,
            route,
            rng_route: stream(seed, "gateway/route"),
            rng_health: stream(seed, "gateway/health"),
            events: Vec::new(),
        }
    }

    /// The config.
    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// Target names.
    pub fn target_name(&self, i: usize) -> &str {
        &self.cfg.targets[i].name
    }

    /// Whether target i may take traffic at `now` (healthy and its breaker would admit).
    pub fn available(&self, now: Nanos, i: usize) -> bool {
        self.health[i].as_ref().is_none_or(|h| h.is_healthy())
            && self.breakers[i].as_ref().is_none_or(|b| b.would_allow(now))
    }

    /// A request arrived: the targets to try, in order (empty: fail fast).
    pub fn plan(&mut self, now: Nanos) -> Vec<usize> {
        self.budget.on_request(now);
        let avail: Vec<bool> = (0..self.route.len()).map(|i| self.available(now, i)).collect();
        router::order(
            self.cfg.strategy,
            self.cfg.when_all_down,
            &self.route,
            &avail,
            &mut self.rng_route,
        )
    }

    /// Asks target i's breaker to admit an attempt now.
    pub fn admit(&mut self, now: Nanos, i: usize) -> bool {
        let name = self.cfg.targets[i].name.clone();
        match &mut self.breakers[i] {
            Some(b) => b.allow(now, &name, &mut self.events),
            None => true,
        }
    }

    /// An attempt on target i ended at `now` after `duration`.
    pub fn on_result(&mut self, now: Nanos, i: usize, failed: bool, duration: Nanos) {
        if !failed {
            router::observe(&mut self.route[i], duration);
        }
        let name = self.cfg.targets[i].name.clone();
        if let Some(b) = &mut self.breakers[i] {
            b.on_result(now, failed, duration, &name, &mut self.events);
        }
    }

    /// Whether a status counts as a failure.
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.cfg.failure.statuses.contains(&status)
    }

    /// Should the attempt that failed be retried on the same target? `Some(wait)` if so.
    pub fn retry(&mut self, now: Nanos, i: usize, attempt: u32, f: Failure) -> Option<Nanos> {
        let r = self.budget.retry(now, attempt, f);
        if r.is_some() {
            self.events.push(GatewayEvent {
                t_ns: now,
                target: self.cfg.targets[i].name.clone(),
                kind: EventKind::Retry { attempt },
            });
        }
        r
    }

    /// Records a move from target `from` to `to`.
    pub fn on_fallback(&mut self, now: Nanos, from: usize, to: usize) {
        let to = self.cfg.targets[to].name.clone();
        self.events.push(GatewayEvent {
            t_ns: now,
            target: self.cfg.targets[from].name.clone(),
            kind: EventKind::Fallback { to },
        });
    }

    /// The earliest due health probe: `(when, target)`.
    pub fn next_probe(&self) -> Option<(Nanos, usize)> {
        self.health
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().and_then(|h| h.next_probe_at()).map(|t| (t, i)))
            .min()
    }

    /// Starts target i's probe; returns its deadline.
    pub fn start_probe(&mut self, now: Nanos, i: usize) -> Option<Nanos> {
        self.health[i].as_mut().map(|h| h.start_probe(now))
    }

    /// Target i's probe finished (a timeout is `ok = false` at its deadline).
    pub fn on_probe(&mut self, now: Nanos, i: usize, ok: bool) {
        let name = self.cfg.targets[i].name.clone();
        if let Some(h) = &mut self.health[i] {
            let ev = h.on_probe_result(now, ok, &name, &mut self.rng_health);
            self.events.extend(ev);
        }
    }

    /// Takes the events emitted since the last call.
    pub fn drain_events(&mut self) -> Vec<GatewayEvent> {
        std::mem::take(&mut self.events)
    }

    /// Target i's health (true without checks).
    pub fn healthy(&self, i: usize) -> bool {
        self.health[i].as_ref().is_none_or(|h| h.is_healthy())
    }

    /// Target i's breaker state.
    pub fn breaker_state(&self, i: usize) -> Option<BreakerState> {
        self.breakers[i].as_ref().map(|b| b.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_S;

    fn cfg() -> GatewayConfig {
        toml::from_str(
            r#"
strategy = "fallback"
targets = [{ name = "primary", url = "http://127.0.0.1:9001" }, { name = "fallback", url = "http://127.0.0.1:9002" }]
health_check = { interval = "5s", timeout = "2s", unhealthy_threshold = 1, healthy_threshold = 1 }
breaker = { kind = "article", failure_threshold = 3, recovery_timeout = "10s", half_open_max_requests = 5 }
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_failed_probe_moves_traffic_and_a_good_one_brings_it_back() {
        let mut p = Policy::new(cfg(), 1);
        assert!(p.problems_free());
        assert_eq!(p.plan(0), vec![0, 1]);
        let (t, i) = p.next_probe().unwrap();
        assert_eq!((t, i), (0, 0));
        let dl = p.start_probe(t, i).unwrap();
        p.on_probe(dl, 0, false);
        assert_eq!(p.plan(dl), vec![1]);
        let ev = p.drain_events();
        assert!(ev.iter().any(|e| e.kind == EventKind::Ejected && e.target == "primary"));
        // next probe of primary at dl + 5s (fixed delay)
        let next = p.next_probe().unwrap();
        assert!(next.0 <= dl + 5 * NS_PER_S);
        p.start_probe(dl + 5 * NS_PER_S, 0);
        p.on_probe(dl + 5 * NS_PER_S, 0, true);
        assert_eq!(p.plan(dl + 5 * NS_PER_S), vec![0, 1]);
    }

    #[test]
    fn breaker_opens_on_passive_failures() {
        let mut p = Policy::new(cfg(), 1);
        for k in 0..3 {
            assert!(p.admit(k, 0));
            p.on_result(k, 0, true, 1000);
        }
        assert_eq!(p.plan(10), vec![1]);
        assert!(matches!(p.breaker_state(0), Some(BreakerState::Open { .. })));
        assert_eq!(p.plan(11 * NS_PER_S), vec![0, 1], "half-open admits trials again");
    }

    #[test]
    fn config_problems_are_reported() {
        let mut c = cfg();
        c.targets[1].name = "primary".into();
        c.targets[0].url = "https://x".into();
        let pr = c.problems();
        assert!(pr.iter().any(|(k, _)| k == "targets[1].name"), "{pr:?}");
        assert!(pr.iter().any(|(k, _)| k == "targets[0].url"), "{pr:?}");
        let e = toml::from_str::<GatewayConfig>("targets = []\nbreaker = { kind = \"consecutive\", failurs = 3 }\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `failurs`"), "{e}");
    }

    impl Policy {
        fn problems_free(&self) -> bool {
            self.cfg.problems().is_empty()
        }
    }
}
