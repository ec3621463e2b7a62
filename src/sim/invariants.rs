//! Invariants of a simulated run, checked over its input and output (TigerBeetle's VOPR is
//! the model: one seed drives everything, and every run is checked against rules that must
//! hold whatever the scenario). `docs/invariants.md` explains each one and the horizon.
//!
//! Each invariant is a function from `(input, output)` to the [`Violation`]s it found,
//! each naming the request, target and time involved. [`check`] runs them all (every one
//! but [`Invariant::RerunIdentical`], which needs two runs: [`rerun_identical`]). Debug
//! builds run [`check`] after every simulation made through
//! [`super::report::simulate_once_until`] (so every simulated run in `cargo test` is
//! checked) and panic on a violation; release builds do not.

use super::{SimInput, SimOutput};
use crate::gateway::{BreakerConfig, EventKind, GatewayConfig, GatewayEvent, HealthRules};
use crate::record::{Outcome, RequestRecord};
use crate::time::{nanos_to_secs_f64, Nanos, NS_PER_S};
use std::fmt;

/// Violations kept per invariant (the rest are counted in one last violation).
pub const MAX_VIOLATIONS_PER_INVARIANT: usize = 10;

/// How one request ended (kept per request with [`SimInput::trace_ends`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestEnd {
    /// Request id (ids run from 0 in arrival order).
    pub id: u64,
    /// When it arrived (its intended start).
    pub intended: Nanos,
    /// When it ended.
    pub end: Nanos,
    /// How.
    pub outcome: Outcome,
    /// Index of the gateway target whose answer ended it (`None`: no target took it).
    pub target: Option<u32>,
    /// Retries on the last target tried (0: its first try ended the request).
    pub retries_on_last: u32,
    /// Position of the last target tried in the request's plan.
    pub position: u32,
    /// Targets in the request's plan.
    pub planned_targets: u32,
}

impl RequestEnd {
    /// The end folded into `rec` (its target is set by [`merge_traces`]).
    pub(super) fn of(rec: &RequestRecord, retries_on_last: u32, position: u32, planned: usize) -> RequestEnd {
        RequestEnd {
            id: rec.id,
            intended: rec.intended,
            end: rec.end,
            outcome: rec.outcome,
            target: None,
            retries_on_last,
            position,
            planned_targets: planned as u32,
        }
    }
}

/// The per-target traces (target `i` at index `i`, then the requests no target took) as
/// one, sorted by end time then id.
pub(super) fn merge_traces(traces: impl Iterator<Item = Option<Vec<RequestEnd>>>) -> Vec<RequestEnd> {
    let traces: Vec<Vec<RequestEnd>> = traces.map(Option::unwrap_or_default).collect();
    let none = traces.len().saturating_sub(1);
    let mut all: Vec<RequestEnd> = traces
        .into_iter()
        .enumerate()
        .flat_map(|(i, v)| {
            v.into_iter().map(move |mut e| {
                e.target = (i < none).then_some(i as u32);
                e
            })
        })
        .collect();
    all.sort_by_key(|e| (e.end, e.id));
    all
}

/// The invariants, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every scheduled request ends exactly once (or is counted in flight when stopped).
    EndsExactlyOnce,
    /// `scheduled = ok + failed + dropped + in_flight_at_end`, and the end trace agrees.
    Conservation,
    /// Each target's breaker moves only along its kind's legal transitions.
    BreakerTransitions,
    /// Each target's health changes only on a probe result and only along the rules.
    HealthTransitions,
    /// Retries stay within `retries.attempts` per request and within the retry budget.
    RetryBounds,
    /// Nothing happens after the run's horizon; no request takes longer than its work bound.
    Horizon,
    /// Gateway events come in time order.
    TimeOrder,
    /// A rerun with the same seed gives the same JSON report, byte for byte.
    RerunIdentical,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 8] = [
        Invariant::EndsExactlyOnce,
        Invariant::Conservation,
        Invariant::BreakerTransitions,
        Invariant::HealthTransitions,
        Invariant::RetryBounds,
        Invariant::Horizon,
        Invariant::TimeOrder,
        Invariant::RerunIdentical,
    ];

    /// Its name in reports (`ends_exactly_once`, …).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::EndsExactlyOnce => "ends_exactly_once",
            Invariant::Conservation => "conservation",
            Invariant::BreakerTransitions => "breaker_transitions",
            Invariant::HealthTransitions => "health_transitions",
            Invariant::RetryBounds => "retry_bounds",
            Invariant::Horizon => "horizon",
            Invariant::TimeOrder => "time_order",
            Invariant::RerunIdentical => "rerun_identical",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken rule, with what is needed to find it in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// When (ns since run start), if one moment is involved.
    pub t_ns: Option<Nanos>,
    /// The target involved, if one is.
    pub target: Option<String>,
    /// The request involved, if one is.
    pub request: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

impl Violation {
    fn new(invariant: Invariant, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            t_ns: None,
            target: None,
            request: None,
            detail: detail.into(),
        }
    }
    fn at(mut self, t: Nanos) -> Violation {
        self.t_ns = Some(t);
        self
    }
    fn target(mut self, target: &str) -> Violation {
        self.target = Some(target.to_string());
        self
    }
    fn request(mut self, id: u64) -> Violation {
        self.request = Some(id);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.invariant)?;
        if let Some(t) = self.t_ns {
            write!(f, " t={:.9}s", nanos_to_secs_f64(t))?;
        }
        if let Some(target) = &self.target {
            write!(f, " target={target}")?;
        }
        if let Some(r) = self.request {
            write!(f, " request={r}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Collects one invariant's violations, keeping the first [`MAX_VIOLATIONS_PER_INVARIANT`].
struct Found {
    invariant: Invariant,
    kept: Vec<Violation>,
    more: usize,
}

impl Found {
    fn new(invariant: Invariant) -> Found {
        Found {
            invariant,
            kept: Vec::new(),
            more: 0,
        }
    }
    fn push(&mut self, v: Violation) {
        if self.kept.len() < MAX_VIOLATIONS_PER_INVARIANT {
            self.kept.push(v);
        } else {
            self.more += 1;
        }
    }
    fn v(&self, detail: impl Into<String>) -> Violation {
        Violation::new(self.invariant, detail)
    }
    fn done(mut self) -> Vec<Violation> {
        if self.more > 0 {
            let v = self.v(format!("…and {} more violations of this invariant", self.more));
            self.kept.push(v);
        }
        self.kept
    }
}

/// When a run may still do anything: the traffic's end plus what the work in flight then
/// may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// The traffic's planned end (no request arrives after it).
    pub traffic_end: Nanos,
    /// The longest a request may take from its arrival to its end: every target of its
    /// plan tried `1 + retries.attempts` times, each attempt cut at `request_timeout`
    /// (TTFT and stall limits are at most that), each retry after a wait of at most
    /// `retries.retry_after_cap`; moving on to the next target or refusing costs no time.
    pub request_work: Nanos,
    /// How long after the traffic's end health probes may still report: a probe starts
    /// up to `request_timeout` after it and ends by the health check's `timeout`.
    pub probe_tail: Nanos,
}

impl Horizon {
    /// The horizon of a run of `gateway` whose traffic ends at `traffic_end`.
    pub fn new(gateway: &GatewayConfig, traffic_end: Nanos) -> Horizon {
        let targets = gateway.targets.len() as u64;
        let r = &gateway.retries;
        let tries = u64::from(r.attempts).saturating_add(1);
        let per_target = tries
            .saturating_mul(gateway.request_timeout.0)
            .saturating_add(u64::from(r.attempts).saturating_mul(r.retry_after_cap.0));
        Horizon {
            traffic_end,
            request_work: targets.saturating_mul(per_target),
            probe_tail: gateway
                .health_check
                .as_ref()
                .map_or(0, |h| gateway.request_timeout.0.saturating_add(h.timeout.0)),
        }
    }

    /// The horizon of `input`.
    pub fn of(input: &SimInput) -> Horizon {
        Horizon::new(&input.gateway, input.source.end())
    }

    /// The last moment anything may happen.
    pub fn end(&self) -> Nanos {
        self.traffic_end.saturating_add(self.request_work.max(self.probe_tail))
    }
}

/// Every invariant over one run but [`Invariant::RerunIdentical`]; empty when all hold.
pub fn check(input: &SimInput, out: &SimOutput) -> Vec<Violation> {
    let mut v = ends_exactly_once(out);
    v.extend(conservation(out));
    v.extend(breaker_transitions(&input.gateway, &out.events));
    v.extend(health_transitions(&input.gateway, &out.events));
    v.extend(retry_bounds(&input.gateway, out));
    v.extend(horizon(&Horizon::of(input), out));
    v.extend(time_order(&out.events));
    v
}

/// Panics listing the violations, if any (what debug builds run after each simulation).
///
/// # Panics
/// When an invariant does not hold.
pub fn assert_holds(input: &SimInput, out: &SimOutput) {
    let v = check(input, out);
    if !v.is_empty() {
        let lines: Vec<String> = v.iter().map(|v| format!("  {v}")).collect();
        panic!(
            "simulation invariants violated (seed {}; see docs/invariants.md):\n{}",
            input.seed,
            lines.join("\n")
        );
    }
}

/// Every scheduled request ends exactly once: ids `0..scheduled` each end once, except the
/// `in_flight_at_end` of a stopped run; no request ends before it arrived. Needs the end
/// trace ([`SimInput::trace_ends`]).
pub fn ends_exactly_once(out: &SimOutput) -> Vec<Violation> {
    let mut f = Found::new(Invariant::EndsExactlyOnce);
    let Some(ends) = &out.ends else {
        f.push(f.v("the run kept no end trace (SimInput::trace_ends = false): cannot check"));
        return f.done();
    };
    let n = out.scheduled;
    // the time each id ended, if it did (ids are dense: bounded by `scheduled`)
    let mut ended: Vec<Option<Nanos>> = Vec::with_capacity(ends.len());
    let mut distinct = 0u64;
    for e in ends {
        if e.id >= n {
            f.push(
                f.v(format!("ended, but only {n} requests were scheduled (ids 0..{n})"))
                    .at(e.end)
                    .request(e.id),
            );
            continue;
        }
        if e.end < e.intended {
            f.push(
                f.v(format!("ended before it arrived (at {} ns)", e.intended))
                    .at(e.end)
                    .request(e.id),
            );
        }
        let i = e.id as usize;
        if i >= ended.len() {
            ended.resize(i + 1, None);
        }
        match ended[i] {
            Some(first) => f.push(
                f.v(format!(
                    "ended twice: first at {:.9} s ({:?})",
                    nanos_to_secs_f64(first),
                    e.outcome
                ))
                .at(e.end)
                .request(e.id),
            ),
            None => {
                ended[i] = Some(e.end);
                distinct += 1;
            }
        }
    }
    let missing = n.saturating_sub(distinct);
    if missing != out.in_flight_at_end {
        let first_missing: Vec<u64> = (0..n)
            .filter(|&i| ended.get(i as usize).is_none_or(|e| e.is_none()))
            .take(5)
            .collect();
        f.push(f.v(format!(
            "{missing} of {n} scheduled requests never ended but {} are counted in flight at the end{} (first never ended: {first_missing:?})",
            out.in_flight_at_end,
            if out.interrupted { "" } else { " of a run that was not stopped" },
        )));
    }
    f.done()
}

/// `scheduled = ok + failed + dropped + in_flight_at_end` in the report, `sent = ok +
/// failed + in_flight_at_end`, nothing in flight unless stopped, and (with the end trace)
/// the trace's counts of ends, ok ends and dropped ends match the report's.
pub fn conservation(out: &SimOutput) -> Vec<Violation> {
    let mut f = Found::new(Invariant::Conservation);
    let r = out
        .aggregator
        .report(out.scheduled, out.in_flight_at_end, out.duration)
        .requests;
    let sum = r.ok + r.failed + r.dropped + r.in_flight_at_end;
    if r.scheduled != sum {
        f.push(f.v(format!(
            "scheduled {} ≠ ok {} + failed {} + dropped {} + in flight {} = {sum}",
            r.scheduled, r.ok, r.failed, r.dropped, r.in_flight_at_end
        )));
    }
    if r.sent != r.ok + r.failed + r.in_flight_at_end {
        f.push(f.v(format!(
            "sent {} ≠ ok {} + failed {} + in flight {}",
            r.sent, r.ok, r.failed, r.in_flight_at_end
        )));
    }
    if !out.interrupted && out.in_flight_at_end > 0 {
        f.push(f.v(format!(
            "{} requests in flight at the end of a run that was not stopped",
            out.in_flight_at_end
        )));
    }
    if let Some(ends) = &out.ends {
        let ok = ends.iter().filter(|e| e.outcome.is_ok()).count() as u64;
        let dropped = ends.iter().filter(|e| e.outcome == Outcome::Dropped).count() as u64;
        let total = ends.len() as u64;
        if (total, ok, dropped) != (r.ok + r.failed + r.dropped, r.ok, r.dropped) {
            f.push(f.v(format!(
                "the end trace has {total} ends ({ok} ok, {dropped} dropped) but the report counts {} ({} ok, {} dropped)",
                r.ok + r.failed + r.dropped,
                r.ok,
                r.dropped
            )));
        }
    }
    f.done()
}

/// A breaker's state as its events show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Closed,
    Open { until: Nanos },
    HalfOpen,
}

/// The legal transitions of each breaker kind (`gateway/breaker.rs`), per target, from
/// closed at the start:
///
/// | kind | closed → open | open → half-open | open → closed | half-open → open | half-open → closed |
/// |---|---|---|---|---|---|
/// | `consecutive` | yes | never | at or after `until` | — | — |
/// | `failure_rate` | yes | at or after `until` | never | yes | yes |
/// | `article` | yes | at or after `until` | never | yes | yes |
///
/// Every other move (open → open, closed → half-open, a close while closed, …) is illegal,
/// and so is any breaker event without a breaker. An `opened` event's `until` is its time
/// plus the kind's wait: `recovery_timeout`, `wait_open`, or for `consecutive`
/// `base_ejection × k` capped at `max_ejection`.
pub fn breaker_transitions(gateway: &GatewayConfig, events: &[GatewayEvent]) -> Vec<Violation> {
    let mut f = Found::new(Invariant::BreakerTransitions);
    // per replica and target: each replica has its own breakers
    let mut state: std::collections::HashMap<(Option<u32>, &str), Seen> = std::collections::HashMap::new();
    let half_open = matches!(
        gateway.breaker,
        Some(BreakerConfig::FailureRate { .. } | BreakerConfig::Article { .. })
    );
    for e in events {
        let what = match e.kind {
            EventKind::BreakerOpened { .. } => "opened",
            EventKind::BreakerHalfOpened => "half_opened",
            EventKind::BreakerClosed => "closed",
            _ => continue,
        };
        let t = e.t_ns;
        let bad = |detail: String| {
            Violation::new(Invariant::BreakerTransitions, detail)
                .at(t)
                .target(&e.target)
        };
        let Some(cfg) = &gateway.breaker else {
            f.push(bad(format!("breaker {what} but the gateway has no breaker")));
            continue;
        };
        let s = state.entry((e.replica, e.target.as_str())).or_insert(Seen::Closed);
        match (e.kind.clone(), *s) {
            (EventKind::BreakerOpened { until_ns }, Seen::Closed) => {
                if let Some(p) = open_wait_problem(cfg, t, until_ns) {
                    f.push(bad(p));
                }
                *s = Seen::Open { until: until_ns };
            }
            (EventKind::BreakerOpened { until_ns }, Seen::HalfOpen) if half_open => {
                if let Some(p) = open_wait_problem(cfg, t, until_ns) {
                    f.push(bad(p));
                }
                *s = Seen::Open { until: until_ns };
            }
            (EventKind::BreakerHalfOpened, Seen::Open { until }) if half_open => {
                if t < until {
                    f.push(bad(format!("half-opened before the open period ended at {until} ns")));
                }
                *s = Seen::HalfOpen;
            }
            (EventKind::BreakerClosed, Seen::Open { until }) if !half_open => {
                if t < until {
                    f.push(bad(format!("closed before the ejection ended at {until} ns")));
                }
                *s = Seen::Closed;
            }
            (EventKind::BreakerClosed, Seen::HalfOpen) if half_open => *s = Seen::Closed,
            (kind, from) => {
                let to = match kind {
                    EventKind::BreakerOpened { until_ns } => Seen::Open { until: until_ns },
                    EventKind::BreakerHalfOpened => Seen::HalfOpen,
                    _ => Seen::Closed,
                };
                f.push(bad(format!(
                    "illegal breaker transition for kind `{}`: {} → {what}",
                    kind_name(cfg),
                    seen_name(from)
                )));
                *s = to;
            }
        }
    }
    f.done()
}

/// A gateway event's name in the JSON event stream.
pub fn event_name(k: &EventKind) -> &'static str {
    k.name()
}

fn kind_name(cfg: &BreakerConfig) -> &'static str {
    match cfg {
        BreakerConfig::Consecutive { .. } => "consecutive",
        BreakerConfig::FailureRate { .. } => "failure_rate",
        BreakerConfig::Article { .. } => "article",
    }
}

fn seen_name(s: Seen) -> &'static str {
    match s {
        Seen::Closed => "closed",
        Seen::Open { .. } => "open",
        Seen::HalfOpen => "half_open",
    }
}

/// What is wrong with an `opened` event's `until`, if anything.
fn open_wait_problem(cfg: &BreakerConfig, t: Nanos, until: Nanos) -> Option<String> {
    if until == Nanos::MAX {
        return None; // saturated: any wait fits
    }
    let Some(wait) = until.checked_sub(t) else {
        return Some(format!("opened until {until} ns, before the event itself"));
    };
    let ok = match cfg {
        BreakerConfig::Article { recovery_timeout, .. } => wait == recovery_timeout.0,
        BreakerConfig::FailureRate { wait_open, .. } => wait == wait_open.0,
        BreakerConfig::Consecutive {
            base_ejection,
            max_ejection,
            ..
        } => {
            let (b, m) = (base_ejection.0, max_ejection.0);
            wait == m || (wait >= b && wait < m && b > 0 && wait % b == 0)
        }
    };
    (!ok).then(|| {
        format!(
            "opened for {wait} ns, which the `{}` breaker's config does not give",
            kind_name(cfg)
        )
    })
}

/// Health changes only along the checker's rules (`gateway/health.rs`), per target, from
/// healthy at the start: `ejected` only while healthy and `restored` only while ejected,
/// each right after that target's probe result at the same time (failed before `ejected`,
/// passed before `restored`); `restored` after at least `healthy_threshold` passes in a
/// row; under `consecutive` rules `ejected` after at least `unhealthy_threshold` failures
/// in a row (`envoy` and `haproxy` may eject on one). One probe in flight per target: its
/// results are at least the shortest configured wait apart. No health event without
/// health checks.
pub fn health_transitions(gateway: &GatewayConfig, events: &[GatewayEvent]) -> Vec<Violation> {
    let mut f = Found::new(Invariant::HealthTransitions);
    #[derive(Clone, Copy)]
    struct T {
        healthy: bool,
        oks: u32,
        fails: u32,
        last_probe: Option<Nanos>,
    }
    // per replica and target: each replica probes on its own; `prev` is the replica's
    // previous event
    let mut by: std::collections::HashMap<(Option<u32>, &str), T> = std::collections::HashMap::new();
    let min_wait = gateway.health_check.as_ref().map(|h| h.shortest_interval());
    let mut prevs: std::collections::HashMap<Option<u32>, &GatewayEvent> = std::collections::HashMap::new();
    for e in events {
        let t = e.t_ns;
        let prev = prevs.insert(e.replica, e);
        let health_event = matches!(
            e.kind,
            EventKind::ProbeResult { .. } | EventKind::Ejected | EventKind::Restored
        );
        if !health_event {
            continue;
        }
        let bad = |detail: String| {
            Violation::new(Invariant::HealthTransitions, detail)
                .at(t)
                .target(&e.target)
        };
        let Some(cfg) = &gateway.health_check else {
            f.push(bad(format!("{:?} but the gateway has no health checks", e.kind)));
            continue;
        };
        let s = by.entry((e.replica, e.target.as_str())).or_insert(T {
            healthy: true,
            oks: 0,
            fails: 0,
            last_probe: None,
        });
        let after_probe = |ok: bool| {
            prev.is_some_and(|p| p.target == e.target && p.t_ns == t && p.kind == EventKind::ProbeResult { ok })
        };
        match e.kind {
            EventKind::ProbeResult { ok } => {
                if let (Some(last), Some(w)) = (s.last_probe, min_wait) {
                    if t < last.saturating_add(w) {
                        f.push(bad(format!(
                            "a probe result {} ns after the previous one: less than the shortest wait between probes ({w} ns)",
                            t - last.min(t)
                        )));
                    }
                }
                s.last_probe = Some(t);
                if ok {
                    s.oks += 1;
                    s.fails = 0;
                } else {
                    s.fails += 1;
                    s.oks = 0;
                }
            }
            EventKind::Ejected => {
                if !s.healthy {
                    f.push(bad("ejected while already ejected".into()));
                }
                if !after_probe(false) {
                    f.push(bad("ejected, but not right after a failed probe of this target".into()));
                }
                if cfg.rules == HealthRules::Consecutive && s.fails < cfg.unhealthy_threshold {
                    f.push(bad(format!(
                        "ejected after {} failed probes in a row; unhealthy_threshold is {}",
                        s.fails, cfg.unhealthy_threshold
                    )));
                }
                s.healthy = false;
            }
            EventKind::Restored => {
                if s.healthy {
                    f.push(bad("restored without a prior ejection".into()));
                }
                if !after_probe(true) {
                    f.push(bad("restored, but not right after a passed probe of this target".into()));
                }
                if s.oks < cfg.healthy_threshold {
                    f.push(bad(format!(
                        "restored after {} passed probes in a row; healthy_threshold is {}",
                        s.oks, cfg.healthy_threshold
                    )));
                }
                s.healthy = true;
            }
            _ => {}
        }
    }
    f.done()
}

/// Retries stay within the configuration and the budget (`gateway/retry.rs`):
/// - every `retry` event's attempt is in `1..=retries.attempts` (none when it is 0);
/// - (end trace) no request ended after more than `retries.attempts` retries on its last
///   target, nor with more `retry` events in all than `attempts × targets planned`;
/// - the budget: it starts with `min_per_s` tokens, refills `min_per_s` per second, each
///   arrival deposits `budget_ratio`, and a retry needs a whole token. So by time `t` at
///   most `min_per_s × (1 + t/1 s) + budget_ratio × arrivals(≤ t)` retries can have been
///   made (the bucket's cap only lowers this). Checked at every `retry` event, arrivals
///   counted from the end trace (without it, or for requests still in flight, every
///   scheduled request counts as arrived).
pub fn retry_bounds(gateway: &GatewayConfig, out: &SimOutput) -> Vec<Violation> {
    let mut f = Found::new(Invariant::RetryBounds);
    let cfg = &gateway.retries;
    let retries: Vec<&GatewayEvent> = out
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Retry { .. }))
        .collect();
    for e in &retries {
        if let EventKind::Retry { attempt } = e.kind {
            if attempt == 0 || attempt > cfg.attempts {
                f.push(
                    f.v(format!("retry attempt {attempt}; retries.attempts is {}", cfg.attempts))
                        .at(e.t_ns)
                        .target(&e.target),
                );
            }
        }
    }
    // arrival times, sorted (requests in flight at the end count as arrived at 0)
    let mut arrivals: Vec<Nanos> = Vec::new();
    let mut unknown = out.scheduled;
    if let Some(ends) = &out.ends {
        let mut planned = 0u64;
        for e in ends {
            planned += u64::from(e.planned_targets);
            if e.retries_on_last > cfg.attempts {
                f.push(
                    f.v(format!(
                        "{} retries on its last target; retries.attempts is {}",
                        e.retries_on_last, cfg.attempts
                    ))
                    .at(e.end)
                    .request(e.id),
                );
            }
        }
        let most = planned.saturating_mul(u64::from(cfg.attempts));
        if !out.interrupted && retries.len() as u64 > most {
            f.push(f.v(format!(
                "{} retries, more than retries.attempts ({}) × the targets the requests planned ({planned})",
                retries.len(),
                cfg.attempts
            )));
        }
        arrivals = ends.iter().map(|e| e.intended).collect();
        arrivals.sort_unstable();
        unknown = out.in_flight_at_end;
    }
    if gateway.replicas > 1 {
        // each replica has its own budget, fed by the arrivals the round robin sent it
        for k in 0..gateway.replicas {
            let mine: Vec<&GatewayEvent> = retries.iter().copied().filter(|e| e.replica == Some(k)).collect();
            let arrivals: Vec<Nanos> = match &out.ends {
                Some(ends) => {
                    let mut a: Vec<Nanos> = ends
                        .iter()
                        .filter(|e| crate::gateway::replica_of(e.id, gateway.replicas) == k as usize)
                        .map(|e| e.intended)
                        .collect();
                    a.sort_unstable();
                    a
                }
                None => Vec::new(),
            };
            budget_bound(&mut f, cfg, &mine, &arrivals, unknown);
        }
        return f.done();
    }
    budget_bound(&mut f, cfg, &retries, &arrivals, unknown);
    f.done()
}

/// The retry budget's bound (see [`retry_bounds`]) over `retries` in time order, with the
/// sorted `arrivals` that fed the budget and `unknown` more counted as arrived at 0.
fn budget_bound(
    f: &mut Found,
    cfg: &crate::gateway::RetryConfig,
    retries: &[&GatewayEvent],
    arrivals: &[Nanos],
    unknown: u64,
) {
    let mut arrived = 0usize;
    for (k, e) in retries.iter().enumerate() {
        while arrived < arrivals.len() && arrivals[arrived] <= e.t_ns {
            arrived += 1;
        }
        let a = arrived as u64 + unknown;
        let secs = e.t_ns as f64 / NS_PER_S as f64;
        let bound = cfg.min_per_s * (1.0 + secs) + cfg.budget_ratio * a as f64;
        let made = (k + 1) as f64;
        // tolerance for the budget's own float rounding
        if made > bound + 1e-6 * bound.max(1.0) {
            f.push(
                f.v(format!(
                    "retry #{} by {secs:.9} s, but the budget allows at most {bound:.3} by then (min_per_s {}, budget_ratio {}, {a} arrivals)",
                    k + 1,
                    cfg.min_per_s,
                    cfg.budget_ratio
                ))
                .at(e.t_ns)
                .target(&e.target),
            );
            break; // later retries exceed it too: one report is enough
        }
    }
}

/// Nothing after the horizon ([`Horizon::end`]): no gateway event, no request end, no fault
/// window end; no request ends later than its arrival plus [`Horizon::request_work`]; the
/// reported duration is the traffic's (or, when stopped, at most that).
pub fn horizon(h: &Horizon, out: &SimOutput) -> Vec<Violation> {
    let mut f = Found::new(Invariant::Horizon);
    let end = h.end();
    for e in &out.events {
        if e.t_ns > end {
            f.push(
                f.v(format!("gateway event {:?} after the horizon ({end} ns)", e.kind))
                    .at(e.t_ns)
                    .target(&e.target),
            );
        }
    }
    if let Some(ends) = &out.ends {
        for e in ends {
            if e.end > end {
                f.push(
                    f.v(format!("request ended after the horizon ({end} ns)"))
                        .at(e.end)
                        .request(e.id),
                );
            } else if e.end.saturating_sub(e.intended) > h.request_work {
                f.push(
                    f.v(format!(
                        "request took {} ns, more than the gateway's work bound ({} ns)",
                        e.end - e.intended,
                        h.request_work
                    ))
                    .at(e.end)
                    .request(e.id),
                );
            }
            if e.intended > h.traffic_end {
                f.push(
                    f.v(format!(
                        "request arrived after the traffic's end ({} ns)",
                        h.traffic_end
                    ))
                    .at(e.intended)
                    .request(e.id),
                );
            }
        }
    }
    for w in &out.faults {
        if w.start > end || w.end > end {
            f.push(
                f.v(format!(
                    "fault window `{}` [{}, {}) ns reaches past the horizon ({end} ns)",
                    w.phase, w.start, w.end
                ))
                .at(w.start)
                .target(&w.provider),
            );
        }
    }
    if out.duration > h.traffic_end {
        f.push(f.v(format!(
            "reported duration {} ns is longer than the traffic ({} ns)",
            out.duration, h.traffic_end
        )));
    }
    f.done()
}

/// Gateway events come in time order (the simulator processes events in time order, and
/// every event carries the time it was made at).
pub fn time_order(events: &[GatewayEvent]) -> Vec<Violation> {
    let mut f = Found::new(Invariant::TimeOrder);
    for w in events.windows(2) {
        if w[1].t_ns < w[0].t_ns {
            f.push(
                f.v(format!(
                    "{:?} comes after {:?} of {} at {} ns",
                    w[1].kind, w[0].kind, w[0].target, w[0].t_ns
                ))
                .at(w[1].t_ns)
                .target(&w[1].target),
            );
        }
    }
    f.done()
}

/// Two runs' JSON reports are byte-identical; otherwise where they first differ.
pub fn rerun_identical(first: &str, rerun: &str) -> Vec<Violation> {
    if first == rerun {
        return Vec::new();
    }
    let at = first
        .bytes()
        .zip(rerun.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(first.len().min(rerun.len()));
    let around = |s: &str| {
        let (mut lo, mut hi) = (at.saturating_sub(60), (at + 60).min(s.len()));
        while !s.is_char_boundary(lo) {
            lo -= 1;
        }
        while !s.is_char_boundary(hi) {
            hi += 1;
        }
        s[lo..hi].to_string()
    };
    vec![Violation::new(
        Invariant::RerunIdentical,
        format!(
            "the rerun's JSON report differs at byte {at} (lengths {} and {}): …{}… vs …{}…",
            first.len(),
            rerun.len(),
            around(first),
            around(rerun)
        ),
    )]
}
