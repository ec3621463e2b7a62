//! The reference gateway: a policy whose every decision is known exactly.
//!
//! The policy is pure (`now`, outcomes and a seeded stream in; decisions and
//! [`GatewayEvent`]s out), so the live proxy (`server`) and the virtual-time simulator run
//! the very same code. Parts: active [`health`] checks, passive [`breaker`]s, the
//! [`router`], [`retry`] budgets, and which outcomes count as failures ([`FailureRules`]).
//!
//! A driver (the live proxy or the simulator) calls, per request:
//!
//! 1. [`Policy::plan`] → the targets to try, in order (empty: fail fast);
//! 2. per attempt, [`Policy::admit`] (the target's breaker) — a refused attempt moves on;
//! 3. when the attempt ends, [`Policy::on_outcome`] with what happened ([`Outcome`]);
//!    on a failure, [`Policy::retry`] (same target, after the returned wait) or
//!    [`Policy::on_fallback`] (next target);
//!
//! and, for active health checks, [`Policy::next_probe`] → wait → [`Policy::start_probe`]
//! (returns the deadline) → [`Policy::on_probe`] with the result, or
//! [`ProbeOutcome::Timeout`] at the deadline. [`Policy::drain_events`] hands out the
//! timestamped [`GatewayEvent`]s.

pub mod attempt;
pub mod breaker;
mod events;
mod health;
mod retry;
mod router;

pub use attempt::{Limits, Outcome, Settled, Step, Walk};
pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use events::{EventKind, GatewayEvent};
pub use health::{HealthChecker, HealthConfig, HealthRules, ProbeKind, ProbeOutcome};
pub use retry::{RetryBudget, RetryConfig};
pub use router::{AllDown, RouteTarget, Strategy};

use crate::diag::{under, Path, Problem};
use crate::provider::Api;
use crate::rng::{stream, Stream};
use crate::time::{Dur, Nanos};
use serde::{Deserialize, Serialize};

fn one() -> f64 {
    1.0
}

fn one_replica() -> u32 {
    1
}
fn is_one_replica(n: &u32) -> bool {
    *n == 1
}

/// Most replicas of a gateway a scenario may ask for (`[gateway] replicas`).
pub const MAX_REPLICAS: u32 = 16;

/// The problem with `replicas = n`, if any (1..=[`MAX_REPLICAS`]).
pub fn replicas_problem(n: u32) -> Option<String> {
    match n {
        0 => Some("must be at least 1 (one gateway instance)".into()),
        n if n > MAX_REPLICAS => Some(format!(
            "at most {MAX_REPLICAS} replicas, got {n} (each replica is a gateway instance with its own probes on this machine)"
        )),
        _ => None,
    }
}

/// The client's round robin over `replicas` gateway instances: request `id` (ids run from
/// 0 in schedule order) goes to replica `id mod replicas`. The simulator and the live load
/// client both ask this, so the same request meets the same replica in both.
#[inline]
pub fn replica_of(id: u64, replicas: u32) -> usize {
    (id % u64::from(replicas.max(1))) as usize
}

/// One upstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name (events, metrics, `x-chaosgate-provider` when the upstream does not say).
    pub name: String,
    /// Weight for `weighted`.
    #[serde(default = "one")]
    pub weight: f64,
    /// Price per 1k tokens for `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_1k: Option<f64>,
    /// Cap for `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_1k: Option<f64>,
    /// `cost`: route here first only while its latency EWMA is within this ("when latency
    /// allows"); over it, the target is passed over for `latency_backoff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<Dur>,
    /// How long a target over its `max_latency` is passed over (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_backoff: Option<Dur>,
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

/// What counts as a failure — for breakers, health of passive traffic and fallback. Every
/// kind of [`Outcome`] can be switched off; statuses are an explicit set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRules {
    /// Statuses that are failures (default 408, 429, 5xx).
    #[serde(default = "d_fail_statuses")]
    pub statuses: Vec<u16>,
    /// Timeouts (request and stall), connection errors and resets (default true).
    #[serde(default = "t")]
    pub timeout: bool,
    /// A stream passed on that ends without its terminal event (default true).
    #[serde(default = "t")]
    pub stream_cut: bool,
    /// An in-band error event (default true).
    #[serde(default = "t")]
    pub stream_error: bool,
    /// A stream's head or first chunk later than `ttft_timeout` (default true).
    #[serde(default = "t")]
    pub ttft_timeout: bool,
}

impl Default for FailureRules {
    fn default() -> FailureRules {
        FailureRules {
            statuses: d_fail_statuses(),
            timeout: true,
            stream_cut: true,
            stream_error: true,
            ttft_timeout: true,
        }
    }
}

impl FailureRules {
    /// Whether this outcome counts as a failure.
    pub fn is_failure(&self, o: Outcome) -> bool {
        self.counts(o, |s| self.statuses.contains(&s))
    }

    /// [`FailureRules::is_failure`] with the membership of a status in `statuses` answered
    /// by `status_fails` (the policy keeps them as a [`StatusSet`]).
    #[inline]
    fn counts(&self, o: Outcome, status_fails: impl Fn(u16) -> bool) -> bool {
        match o {
            Outcome::Answer(a) => status_fails(a.status),
            Outcome::Timeout | Outcome::Connect | Outcome::Stall => self.timeout,
            Outcome::StreamCut => self.stream_cut,
            Outcome::StreamError => self.stream_error,
            Outcome::TtftTimeout => self.ttft_timeout,
        }
    }
}

/// A set of HTTP statuses (100–599) as a bitmap: one lookup per attempt instead of a scan
/// of a list that holds every 5xx.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// The set of `statuses` (those outside 0–639 are left out: never an HTTP status).
    pub fn of(statuses: &[u16]) -> StatusSet {
        let mut b = [0u64; 10];
        for &s in statuses {
            if let Some(w) = b.get_mut(usize::from(s / 64)) {
                *w |= 1 << (s % 64);
            }
        }
        StatusSet(b)
    }

    /// Whether `s` is in the set.
    #[inline]
    pub fn contains(&self, s: u16) -> bool {
        self.0
            .get(usize::from(s / 64))
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    }
}

fn d_req_timeout() -> Dur {
    Dur::from_secs(60)
}

/// `[gateway]` (builtin) or a `gateway.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
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
    /// Independent instances of this gateway behind the client's round robin (default 1,
    /// at most [`MAX_REPLICAS`]): each keeps its own health state, breakers, router and
    /// retry budget, and probes on its own — no state is shared.
    #[serde(default = "one_replica", skip_serializing_if = "is_one_replica")]
    pub replicas: u32,
    /// A 429 carrying Retry-After takes its target out of rotation until the wait is over
    /// (at most [`MAX_RATE_LIMIT_COOLDOWN`]), so no request reaches a provider sooner than
    /// it asked (default false: a retry alone honours it, as most gateways do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_limit_cooldown: bool,
}

/// The longest a Retry-After takes a target out of rotation.
pub const MAX_RATE_LIMIT_COOLDOWN: Nanos = 10 * 60 * crate::time::NS_PER_S;

impl GatewayConfig {
    /// Problems, each at its key under `[gateway]`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut v = Vec::new();
        if self.targets.is_empty() {
            v.push((key("targets"), "at least one target is required".into()));
        }
        if self.targets.len() > attempt::MAX_TARGETS {
            v.push((
                key("targets"),
                format!("at most {} targets, got {}", attempt::MAX_TARGETS, self.targets.len()),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if !names.insert(&t.name) {
                v.push((target(i, "name"), format!("duplicate target name {:?}", t.name)));
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !(t.weight.is_finite() && t.weight >= 0.0) {
                v.push((target(i, "weight"), format!("must be ≥ 0, got {}", t.weight)));
            }
            for (k, x) in [("cost_per_1k", t.cost_per_1k), ("max_cost_per_1k", t.max_cost_per_1k)] {
                if x.is_some_and(|x| !(x.is_finite() && x >= 0.0)) {
                    v.push((target(i, k), "must be a number ≥ 0".into()));
                }
            }
            if self.strategy == Strategy::Cost && t.cost_per_1k.is_none() {
                v.push((
                    target(i, "cost_per_1k"),
                    "strategy \"cost\" needs a cost for every target (targets without one go last)".into(),
                ));
            }
        }
        if self.strategy == Strategy::Weighted
            && !self.targets.is_empty()
            && self.targets.iter().all(|t| t.weight <= 0.0)
        {
            v.push((
                key("targets"),
                "strategy \"weighted\" needs a target with weight > 0".into(),
            ));
        }
        for (k, d) in [
            ("request_timeout", Some(self.request_timeout)),
            ("ttft_timeout", self.ttft_timeout),
            ("stall_timeout", self.stall_timeout),
        ] {
            if d.is_some_and(|d| d.0 == 0) {
                v.push((key(k), "must be > 0".into()));
            }
        }
        if let Some(m) = replicas_problem(self.replicas) {
            v.push((key("replicas"), m));
        }
        v.extend(under(&key("retries"), self.retries.problems()));
        if let Some(h) = &self.health_check {
            v.extend(under(&key("health_check"), h.problems()));
        }
        if let Some(b) = &self.breaker {
            v.extend(under(&key("breaker"), b.problems()));
        }
        v.extend(self.limit_problems());
        v
    }

    /// Every number under its sane maximum (see `diag::limits`), so no value can make the
    /// policy allocate, loop or overflow in proportion to it. In this order: probe periods
    /// too short, durations, counts, retries, statuses and weights too large.
    fn limit_problems(&self) -> Vec<Problem> {
        let mut v = self.probe_period_problems();
        v.extend(self.duration_limit_problems());
        v.extend(self.count_limit_problems());
        v.extend(self.retry_limit_problems());
        v.extend(self.status_and_weight_limit_problems());
        v
    }

    /// Health-check periods shorter than `MIN_PERIOD` (0 is the health config's own check).
    fn probe_period_problems(&self) -> Vec<Problem> {
        let min = crate::diag::limits::MIN_PERIOD;
        let mut v = Vec::new();
        if let Some(h) = &self.health_check {
            for (k, d) in h.periods() {
                if d.is_some_and(|d| d.0 > 0 && d.0 < min.0) {
                    let got = d.unwrap_or_default();
                    v.push((key2("health_check", k), format!("must be at least {min}, got {got}")));
                }
            }
        }
        v
    }

    /// Durations longer than `MAX_DURATION`.
    fn duration_limit_problems(&self) -> Vec<Problem> {
        use crate::diag::limits::{dur_at_most, MAX_DURATION};
        let mut durations = vec![
            (key("request_timeout"), Some(self.request_timeout)),
            (key("ttft_timeout"), self.ttft_timeout),
            (key("stall_timeout"), self.stall_timeout),
            (key2("retries", "retry_after_cap"), Some(self.retries.retry_after_cap)),
        ];
        if let Some(h) = &self.health_check {
            durations.extend(h.durations().into_iter().map(|(k, d)| (key2("health_check", k), d)));
        }
        if let Some(b) = &self.breaker {
            durations.extend(b.durations().into_iter().map(|(k, d)| (key2("breaker", k), d)));
        }
        durations
            .into_iter()
            .filter_map(|(k, d)| Some((k, d.and_then(|d| dur_at_most(d, MAX_DURATION))?)))
            .collect()
    }

    /// Thresholds and window sizes over `MAX_COUNT` (zero is each sub-config's own check).
    fn count_limit_problems(&self) -> Vec<Problem> {
        use crate::diag::limits::{count, MAX_COUNT};
        let mut counts: Vec<(Path, u32)> = Vec::new();
        if let Some(h) = &self.health_check {
            counts.push((key2("health_check", "unhealthy_threshold"), h.unhealthy_threshold));
            counts.push((key2("health_check", "healthy_threshold"), h.healthy_threshold));
        }
        if let Some(b) = &self.breaker {
            counts.extend(b.counts().into_iter().map(|(k, n)| (key2("breaker", k), n)));
        }
        counts
            .into_iter()
            .filter(|&(_, n)| n > MAX_COUNT)
            .filter_map(|(k, n)| Some((k, count(n.into(), MAX_COUNT.into())?)))
            .collect()
    }

    /// Retries over 100 attempts, budgets over their maximum (below 0 and non-finite are the
    /// retry config's own check), retry statuses that are not HTTP statuses.
    fn retry_limit_problems(&self) -> Vec<Problem> {
        use crate::diag::limits::{number, MAX_RATE};
        let r = &self.retries;
        let mut v = Vec::new();
        if r.attempts > 100 {
            v.push((
                key2("retries", "attempts"),
                format!("must be at most 100, got {}", r.attempts),
            ));
        }
        for (k, x, max) in [
            ("budget_ratio", r.budget_ratio, 1_000.0),
            ("min_per_s", r.min_per_s, MAX_RATE),
        ] {
            if x.is_finite() && x > max {
                if let Some(m) = number(x, true, max) {
                    v.push((key2("retries", k), m));
                }
            }
        }
        v.extend(status_problems(&key2("retries", "on_status"), &r.on_status));
        v
    }

    /// Failure statuses that are not HTTP statuses, target weights over `MAX_WEIGHT`.
    fn status_and_weight_limit_problems(&self) -> Vec<Problem> {
        use crate::diag::limits::MAX_WEIGHT;
        let mut v = status_problems(&key2("failure", "statuses"), &self.failure.statuses);
        for (i, t) in self.targets.iter().enumerate() {
            if t.weight.is_finite() && t.weight > MAX_WEIGHT {
                v.push((
                    target(i, "weight"),
                    format!("must be at most {MAX_WEIGHT}, got {}", t.weight),
                ));
            }
        }
        v
    }
}

/// Each entry of the list at `at` that is not an HTTP status (100–599).
fn status_problems(at: &Path, statuses: &[u16]) -> Vec<Problem> {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| !(100..=599).contains(*s))
        .map(|(i, s)| (at.index(i), format!("must be an HTTP status (100–599), got {s}")))
        .collect()
}

/// `k` in `[gateway]`.
fn key(k: &str) -> Path {
    Path::root().key(k)
}

/// `k` in `[gateway.table]`.
fn key2(table: &str, k: &str) -> Path {
    Path::root().key(table).key(k)
}

/// `k` of target `i`.
fn target(i: usize, k: &str) -> Path {
    Path::root().key("targets").index(i).key(k)
}

/// Healthy (or unchecked) and admitted by its breaker (or none) at `now`.
fn available(health: &Option<HealthChecker>, breaker: &Option<Breaker>, cooling: Nanos, now: Nanos) -> bool {
    now >= cooling
        && health.as_ref().is_none_or(|h| h.is_healthy())
        && breaker.as_ref().is_none_or(|b| b.would_allow(now))
}

/// The policy of the reference gateway over all its targets.
#[derive(Debug)]
pub struct Policy {
    cfg: GatewayConfig,
    /// `cfg.failure.statuses` as a set.
    fail_statuses: StatusSet,
    health: Vec<Option<HealthChecker>>,
    breakers: Vec<Option<Breaker>>,
    route: Vec<RouteTarget>,
    budget: RetryBudget,
    rng_route: Stream,
    rng_health: Stream,
    events: Vec<GatewayEvent>,
    /// Which replica this is, when the gateway has more than one (its events say so).
    replica: Option<u32>,
    /// Per target: out of rotation until then (a 429's Retry-After).
    cooling: Vec<Nanos>,
}

impl Policy {
    /// The policy; streams from `(seed, "gateway/…")`. Health checks of target i start
    /// at a spread offset `i · interval / n` so probes do not bunch. Replica 0 of
    /// `cfg.replicas` (the only one, by default).
    pub fn new(cfg: GatewayConfig, seed: u64) -> Policy {
        Policy::replica(cfg, seed, 0)
    }

    /// Replica `k` of `cfg.replicas`: an independent instance of the policy. Replica 0 is
    /// [`Policy::new`]; replica k > 0 draws from streams of the child seed
    /// `(seed, "gateway/replica/k")`, and its probes start a further `k · interval / (n ·
    /// replicas)` later, so the replicas' probes spread over the interval as independent
    /// processes' do. With more than one replica its events carry `replica = k`.
    pub fn replica(cfg: GatewayConfig, seed: u64, k: u32) -> Policy {
        let n = cfg.targets.len().max(1) as u64;
        let replicas = u64::from(cfg.replicas.max(1));
        let seed = if k == 0 {
            seed
        } else {
            crate::rng::child_seed(seed, &format!("gateway/replica/{k}"))
        };
        let health = cfg
            .targets
            .iter()
            .enumerate()
            .map(|(i, _)| {
                cfg.health_check.clone().map(|h| {
                    let first = h.interval.0 / n * i as u64 + h.interval.0 / (n * replicas) * u64::from(k);
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
                max_latency: t.max_latency.map(|d| d.0),
                latency_backoff: t.latency_backoff.map_or(10 * crate::time::NS_PER_S, |d| d.0),
                passed_over_until: 0,
            })
            .collect();
        Policy {
            budget: RetryBudget::new(cfg.retries.clone()),
            fail_statuses: StatusSet::of(&cfg.failure.statuses),
            cfg,
            health,
            breakers,
            route,
            rng_route: stream(seed, "gateway/route"),
            rng_health: stream(seed, "gateway/health"),
            events: Vec::new(),
            replica: (replicas > 1).then_some(k),
            cooling: vec![0; n as usize],
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
        available(&self.health[i], &self.breakers[i], self.cooling[i], now)
    }

    /// A request arrived: the targets to try, in order (empty: fail fast).
    pub fn plan(&mut self, now: Nanos) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.route.len());
        self.plan_into(now, &mut order);
        order
    }

    /// [`Policy::plan`] into `order` (cleared first), so a driver can reuse one buffer.
    #[inline]
    pub fn plan_into(&mut self, now: Nanos, order: &mut Vec<usize>) {
        self.budget.on_request(now);
        let Policy {
            cfg,
            health,
            breakers,
            route,
            rng_route,
            cooling,
            ..
        } = self;
        // the available targets straight into `order` (what router::order_into filters)
        order.clear();
        for (i, (h, b)) in health.iter().zip(breakers.iter()).enumerate() {
            if available(h, b, cooling[i], now) {
                order.push(i);
            }
        }
        router::arrange(cfg.strategy, cfg.when_all_down, route, rng_route, now, order);
    }

    /// Asks target i's breaker to admit an attempt now.
    #[inline]
    pub fn admit(&mut self, now: Nanos, i: usize) -> bool {
        match &mut self.breakers[i] {
            Some(b) => b.allow(now, &self.cfg.targets[i].name, &mut self.events),
            None => true,
        }
    }

    /// An attempt on target i ended at `now` after `duration` with `outcome`; the
    /// failure rules decide whether it counts as a failure (returned). Successes feed the
    /// latency EWMA; the breaker records both. The only way a driver reports an attempt.
    #[inline]
    pub fn on_outcome(&mut self, now: Nanos, i: usize, outcome: Outcome, duration: Nanos) -> bool {
        let set = &self.fail_statuses;
        let failed = self.cfg.failure.counts(outcome, |s| set.contains(s));
        self.on_result(now, i, failed, duration);
        if let Outcome::Answer(a) = outcome {
            match a.retry_after {
                Some(ra) if a.status == 429 && self.cfg.rate_limit_cooldown => {
                    let until = now.saturating_add(ra.min(MAX_RATE_LIMIT_COOLDOWN));
                    if until > self.cooling[i] {
                        self.cooling[i] = until;
                        self.events.push(GatewayEvent {
                            t_ns: now,
                            target: self.cfg.targets[i].name.clone(),
                            kind: EventKind::RateLimited { until_ns: until },
                            replica: None,
                        });
                    }
                }
                _ => {}
            }
        }
        failed
    }

    #[inline]
    fn on_result(&mut self, now: Nanos, i: usize, failed: bool, duration: Nanos) {
        if !failed {
            router::observe_at(&mut self.route[i], now, duration);
        }
        if let Some(b) = &mut self.breakers[i] {
            b.on_result(now, failed, duration, &self.cfg.targets[i].name, &mut self.events);
        }
    }

    /// Whether a status counts as a failure (see also [`FailureRules::is_failure`]).
    #[inline]
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.fail_statuses.contains(status)
    }

    /// Should the attempt that failed be retried on the same target? `Some(wait)` if so.
    pub fn retry(&mut self, now: Nanos, i: usize, attempt: u32, f: &Outcome) -> Option<Nanos> {
        let r = self.budget.retry(now, attempt, f);
        if r.is_some() {
            self.events.push(GatewayEvent {
                t_ns: now,
                target: self.cfg.targets[i].name.clone(),
                kind: EventKind::Retry { attempt },
                replica: None,
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
            replica: None,
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

    /// When target i's next probe is due (`None` without checks or while one is in flight).
    pub fn probe_at(&self, i: usize) -> Option<Nanos> {
        self.health[i].as_ref().and_then(|h| h.next_probe_at())
    }

    /// Starts target i's probe; returns its deadline.
    pub fn start_probe(&mut self, now: Nanos, i: usize) -> Option<Nanos> {
        self.health[i].as_mut().map(|h| h.start_probe(now))
    }

    /// Target i's probe finished: a [`ProbeOutcome`] (or a bool: `false` counts like a
    /// network error). A timeout is reported at the deadline [`Policy::start_probe`]
    /// returned.
    pub fn on_probe(&mut self, now: Nanos, i: usize, outcome: impl Into<ProbeOutcome>) {
        if let Some(h) = &mut self.health[i] {
            let ev = h.on_probe_result(now, outcome, &self.cfg.targets[i].name, &mut self.rng_health);
            self.events.extend(ev);
        }
    }

    /// Takes the events emitted since the last call.
    pub fn drain_events(&mut self) -> Vec<GatewayEvent> {
        self.tag_events();
        std::mem::take(&mut self.events)
    }

    /// Moves the events emitted since the last call to the end of `out` (no allocation
    /// when there are none).
    pub fn drain_events_into(&mut self, out: &mut Vec<GatewayEvent>) {
        self.tag_events();
        out.append(&mut self.events);
    }

    /// Names this replica in its pending events (one of several replicas only).
    fn tag_events(&mut self) {
        if let Some(k) = self.replica {
            for e in &mut self.events {
                e.replica = Some(k);
            }
        }
    }

    /// Which replica this is (`None`: the gateway's only instance).
    pub fn replica_index(&self) -> Option<u32> {
        self.replica
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
    use crate::provider::classify::Answer;
    use crate::time::NS_PER_S;

    fn cfg() -> GatewayConfig {
        toml::from_str(
            r#"
strategy = "fallback"
targets = [{ name = "primary" }, { name = "fallback" }]
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
            p.on_outcome(k, 0, Outcome::Timeout, 1000);
        }
        assert_eq!(p.plan(10), vec![1]);
        assert!(matches!(p.breaker_state(0), Some(BreakerState::Open { .. })));
        assert_eq!(p.plan(11 * NS_PER_S), vec![0, 1], "half-open admits trials again");
    }

    /// A 429 asking to wait 3 s takes its target out of rotation for 3 s: other requests
    /// went on reaching the provider before (the catalogue's `retry-after-429`).
    #[test]
    fn retry_after_429_was_not_honoured_across_requests() {
        let mut c = cfg();
        c.rate_limit_cooldown = true;
        let mut p = Policy::new(c, 1);
        let limited = Answer {
            status: 429,
            retry_after: Some(3 * NS_PER_S),
            final_: None,
        };
        p.on_outcome(NS_PER_S, 0, Outcome::Answer(limited), 1000);
        assert_eq!(p.plan(NS_PER_S + 1), vec![1]);
        assert_eq!(p.plan(4 * NS_PER_S - 1), vec![1]);
        assert_eq!(p.plan(4 * NS_PER_S), vec![0, 1]);
        let ev = p.drain_events();
        assert!(ev
            .iter()
            .any(|e| e.kind == EventKind::RateLimited { until_ns: 4 * NS_PER_S } && e.target == "primary"));
        // a 429 without Retry-After, or with the cooldown off, leaves the target in
        p.on_outcome(5 * NS_PER_S, 0, Outcome::Answer(Answer::status(429)), 1000);
        assert_eq!(p.plan(5 * NS_PER_S + 1), vec![0, 1]);
        let mut p = Policy::new(cfg(), 1);
        p.cfg.rate_limit_cooldown = false;
        p.on_outcome(NS_PER_S, 0, Outcome::Answer(limited), 1000);
        assert_eq!(p.plan(NS_PER_S + 1), vec![0, 1]);
    }

    #[test]
    fn config_problems_are_reported() {
        let mut c = cfg();
        c.targets[1].name = "primary".into();
        let pr = c.problems();
        assert!(pr.iter().any(|(k, _)| k.to_string() == "targets[1].name"), "{pr:?}");
        let e = toml::from_str::<GatewayConfig>("targets = []\nbreaker = { kind = \"consecutive\", failurs = 3 }\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `failurs`"), "{e}");
    }

    impl Policy {
        fn problems_free(&self) -> bool {
            self.cfg.problems().is_empty()
        }
    }

    #[test]
    fn failure_rules_classify_outcomes_and_feed_the_breaker() {
        let mut c = cfg();
        c.failure.ttft_timeout = false;
        c.failure.statuses = vec![503];
        let mut p = Policy::new(c, 1);
        assert!(
            !p.on_outcome(0, 0, Outcome::TtftTimeout, 10),
            "ttft timeouts switched off"
        );
        assert!(
            !p.on_outcome(1, 0, Outcome::Answer(Answer::status(500)), 10),
            "500 not in the set"
        );
        for k in 2..5 {
            assert!(p.on_outcome(k, 0, Outcome::Answer(Answer::status(503)), 10));
        }
        assert!(matches!(p.breaker_state(0), Some(BreakerState::Open { .. })));
        let r = FailureRules::default();
        assert!(r.is_failure(Outcome::StreamCut) && r.is_failure(Outcome::StreamError));
        assert!(r.is_failure(Outcome::Connect) && !r.is_failure(Outcome::Answer(Answer::status(200))));
        assert!(r.is_failure(Outcome::Stall) && r.is_failure(Outcome::TtftTimeout));
    }

    #[test]
    fn probe_outcomes_reach_the_checker_and_timeouts_come_at_the_deadline() {
        let mut c = cfg();
        c.health_check = Some(HealthConfig {
            unhealthy_threshold: 2,
            rules: HealthRules::Envoy,
            ..HealthConfig::default()
        });
        let mut p = Policy::new(c, 1);
        let dl = p.start_probe(0, 0).unwrap();
        p.on_probe(dl, 0, ProbeOutcome::Timeout);
        assert!(p.healthy(0), "one timeout of two");
        // target 1's first probe is due at I/2 (spread); target 0's next one a wait after its timeout
        assert_eq!(p.next_probe(), Some((5 * NS_PER_S / 2, 1)));
        let t = dl + 5 * NS_PER_S;
        p.start_probe(t, 0);
        p.on_probe(t + 5, 0, ProbeOutcome::Status { status: 500 });
        assert!(!p.healthy(0));
        let ev = p.drain_events();
        let json = serde_json::to_string(&ev.last().unwrap()).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"t_ns":{},"target":"primary","event":"ejected"}}"#, t + 5)
        );
    }

    #[test]
    fn status_sets_hold_exactly_their_statuses() {
        let list: Vec<u16> = vec![100, 408, 429, 500, 511, 599];
        let set = StatusSet::of(&list);
        for s in 0..700u16 {
            assert_eq!(set.contains(s), list.contains(&s), "{s}");
        }
        assert!(!StatusSet::of(&[65535]).contains(65535));
    }

    #[test]
    fn config_problems_cover_weights_costs_and_retries() {
        let mut c = cfg();
        c.strategy = Strategy::Cost;
        c.targets[0].weight = -1.0;
        c.targets[1].cost_per_1k = Some(1.0);
        c.retries.budget_ratio = f64::NAN;
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            vec!["targets[0].weight", "targets[0].cost_per_1k", "retries.budget_ratio"],
            "all problems at once"
        );
    }
}
