//! Active health checks with Envoy/HAProxy semantics (`docs/semantics.md` §1–2).
//!
//! **Fixed-delay scheduling** (Envoy and HAProxy alike, `docs/semantics.md` §1): the next probe
//! is armed only after the previous one finished (success, failure or timeout), one wait
//! later. The driver decides timeouts: it starts a probe with [`HealthChecker::start_probe`],
//! which returns the deadline `start + timeout`, and reports [`ProbeOutcome::Timeout`] at
//! that deadline if nothing came back.
//!
//! **Waits** (`docs/semantics.md` §2, Envoy `interval()`; HAProxy `inter`/`fastinter`/`downinter`):
//! - healthy, nothing pending: `interval` (I);
//! - a change pending (some failures while healthy, or some successes while unhealthy):
//!   `edge_interval` (I_e; HAProxy `fastinter`), or the side-specific
//!   `unhealthy_edge_interval` / `healthy_edge_interval` (Envoy) when given;
//! - unhealthy, nothing pending: `unhealthy_interval` (Envoy; HAProxy `downinter`);
//! - plus a random `[0, jitter)` drawn from the stream passed in (Envoy `interval_jitter`).
//!
//! **Counting**, selected by `rules` ([`HealthRules`]):
//! - `consecutive` (default): `unhealthy_threshold` (N, HAProxy `fall`) consecutive
//!   failures eject; `healthy_threshold` (HAProxy `rise`) consecutive successes restore; a
//!   success resets the failure run and vice versa.
//! - `envoy`: as `consecutive`, and a probe answered with an HTTP status outside the
//!   expected set ejects at once (Envoy treats it as N = 1); timeouts and network errors
//!   count toward N.
//! - `haproxy`: one health counter `h` in `0..=rise+fall−1`, UP while `h ≥ rise`. A failure
//!   decrements it (dropping below `rise` sets 0: DOWN); a success increments it (reaching
//!   `rise` jumps to `rise+fall−1`: UP). Unlike `consecutive`, successes in between only
//!   undo one failure each. "Pending" means `0 < h < rise+fall−1`.
//!
//! Targets start healthy. For a hung target under `consecutive`/`envoy` rules the
//! detection delay is D = U + N·T + (N−1)·I_e, U being the wait until the next probe starts
//! (`docs/semantics.md` §1): in [N·T + (N−1)·I_e, I + N·T + (N−1)·I_e] without jitter.

use super::events::{EventKind, GatewayEvent};
use crate::rng::Stream;
use crate::time::{Dur, Nanos};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a probe sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `GET /health`.
    #[default]
    Health,
    /// A one-token completion on the target's API.
    Completion,
}

impl ProbeKind {
    /// The request a completion probe sends to a target speaking `api`: its path and body
    /// (one token, prompt "ping"). The live gateway sends it; the simulator decides the
    /// target's verdict for the same request.
    pub fn completion_request(api: crate::provider::Api) -> (&'static str, &'static [u8]) {
        match api {
            crate::provider::Api::OpenAi => (
                "/v1/chat/completions",
                br#"{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}"#,
            ),
            crate::provider::Api::Anthropic => (
                "/v1/messages",
                br#"{"model":"claude-haiku-4-5-20251001","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}"#,
            ),
        }
    }
}

/// How probe results are counted (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthRules {
    /// Consecutive runs: N failures eject, `healthy_threshold` successes restore.
    #[default]
    Consecutive,
    /// Consecutive runs, and an unexpected HTTP status ejects at once (Envoy).
    Envoy,
    /// HAProxy's single health counter (`check.c`).
    Haproxy,
}

/// How one probe ended, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// An expected status (2xx) came back in time.
    Ok,
    /// An HTTP status outside the expected set (ejects at once under `envoy` rules).
    Status {
        /// The status.
        status: u16,
    },
    /// No answer before `timeout` (report it at start + timeout).
    Timeout,
    /// Refused, reset, or another network error.
    Network,
}

impl ProbeOutcome {
    /// Whether the probe passed.
    pub fn is_ok(self) -> bool {
        self == ProbeOutcome::Ok
    }
}

impl From<bool> for ProbeOutcome {
    /// `true` → [`ProbeOutcome::Ok`], `false` → [`ProbeOutcome::Network`] (a failure that
    /// counts toward the threshold under every rule set).
    fn from(ok: bool) -> ProbeOutcome {
        if ok {
            ProbeOutcome::Ok
        } else {
            ProbeOutcome::Network
        }
    }
}

fn d_interval() -> Dur {
    Dur::from_secs(5)
}
fn d_timeout() -> Dur {
    Dur::from_secs(2)
}
fn d_three() -> u32 {
    3
}
fn d_two() -> u32 {
    2
}

/// `[gateway.health_check]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Wait between probes while healthy (I; Envoy `interval`, HAProxy `inter`).
    #[serde(default = "d_interval")]
    pub interval: Dur,
    /// Probe timeout (T); the driver reports a timeout at start + timeout.
    #[serde(default = "d_timeout")]
    pub timeout: Dur,
    /// Failures that eject (N; Envoy `unhealthy_threshold`, HAProxy `fall`).
    #[serde(default = "d_three")]
    pub unhealthy_threshold: u32,
    /// Successes that restore (Envoy `healthy_threshold`, HAProxy `rise`).
    #[serde(default = "d_two")]
    pub healthy_threshold: u32,
    /// Random extra wait in `[0, jitter)` (Envoy `interval_jitter`).
    #[serde(default)]
    pub jitter: Dur,
    /// Wait while a change is pending (I_e; HAProxy `fastinter`; default `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_interval: Option<Dur>,
    /// Wait while healthy with failures pending (Envoy `unhealthy_edge_interval`;
    /// default `edge_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_edge_interval: Option<Dur>,
    /// Wait while unhealthy with successes pending (Envoy `healthy_edge_interval`;
    /// default `edge_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_edge_interval: Option<Dur>,
    /// Wait while unhealthy (Envoy `unhealthy_interval`, HAProxy `downinter`; default
    /// `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_interval: Option<Dur>,
    /// How results are counted (default `consecutive`).
    #[serde(default)]
    pub rules: HealthRules,
    /// What a probe sends.
    #[serde(default)]
    pub probe: ProbeKind,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            interval: d_interval(),
            timeout: d_timeout(),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            jitter: Dur(0),
            edge_interval: None,
            unhealthy_edge_interval: None,
            healthy_edge_interval: None,
            unhealthy_interval: None,
            rules: HealthRules::Consecutive,
            probe: ProbeKind::Health,
        }
    }
}

impl HealthConfig {
    /// The shortest wait between two probes of one target that these settings allow
    /// (the fixed interval or any of the edge / unhealthy intervals), in ns.
    pub fn shortest_interval(&self) -> Nanos {
        [
            Some(self.interval),
            self.edge_interval,
            self.unhealthy_edge_interval,
            self.healthy_edge_interval,
            self.unhealthy_interval,
        ]
        .into_iter()
        .flatten()
        .map(|d| d.0)
        .min()
        .unwrap_or(self.interval.0)
    }

    /// The probe periods, by key: `interval` and the optional edge and unhealthy ones.
    pub(crate) fn periods(&self) -> [(&'static str, Option<Dur>); 5] {
        [
            ("interval", Some(self.interval)),
            ("edge_interval", self.edge_interval),
            ("unhealthy_edge_interval", self.unhealthy_edge_interval),
            ("healthy_edge_interval", self.healthy_edge_interval),
            ("unhealthy_interval", self.unhealthy_interval),
        ]
    }

    /// Every duration it holds, by key (the periods, the probe timeout and the jitter).
    pub(crate) fn durations(&self) -> [(&'static str, Option<Dur>); 7] {
        let [interval, edge, unhealthy_edge, healthy_edge, unhealthy] = self.periods();
        [
            interval,
            ("timeout", Some(self.timeout)),
            ("jitter", Some(self.jitter)),
            edge,
            unhealthy_edge,
            healthy_edge,
            unhealthy,
        ]
    }

    /// Problems, each at its key in `[health_check]`.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        let positive = [
            ("interval", Some(self.interval)),
            ("timeout", Some(self.timeout)),
            ("edge_interval", self.edge_interval),
            ("unhealthy_edge_interval", self.unhealthy_edge_interval),
            ("healthy_edge_interval", self.healthy_edge_interval),
            ("unhealthy_interval", self.unhealthy_interval),
        ];
        for (k, d) in positive {
            if d.is_some_and(|d| d.0 == 0) {
                v.push((key(k), "must be > 0".into()));
            }
        }
        if self.unhealthy_threshold == 0 {
            v.push((key("unhealthy_threshold"), "must be ≥ 1".into()));
        }
        if self.healthy_threshold == 0 {
            v.push((key("healthy_threshold"), "must be ≥ 1".into()));
        }
        v
    }

    /// The wait before the next probe, without jitter.
    fn base_wait(&self, healthy: bool, pending: bool) -> Nanos {
        let edge = self.edge_interval.unwrap_or(self.interval);
        let d = match (healthy, pending) {
            (true, false) => self.interval,
            (true, true) => self.unhealthy_edge_interval.unwrap_or(edge),
            (false, true) => self.healthy_edge_interval.unwrap_or(edge),
            (false, false) => self.unhealthy_interval.unwrap_or(self.interval),
        };
        d.0
    }
}

/// One target's active health checker: a state machine, pure (`now` and a stream in,
/// events out). Drive it as
///
/// ```text
/// loop {
///     let at = checker.next_probe_at()?;          // wait until `at`
///     let deadline = checker.start_probe(at);     // send the probe
///     // result or timeout at `deadline`:
///     let events = checker.on_probe_result(t, outcome, name, &mut rng);
/// }
/// ```
#[derive(Clone, Debug)]
pub struct HealthChecker {
    cfg: HealthConfig,
    healthy: bool,
    /// Current run of failures (`consecutive`/`envoy`).
    fails: u32,
    /// Current run of successes (`consecutive`/`envoy`).
    oks: u32,
    /// HAProxy health counter, `0..=rise+fall−1`.
    counter: u32,
    next: Option<Nanos>,
    in_flight: Option<Nanos>,
}

impl HealthChecker {
    /// A healthy checker whose first probe starts at `first` (use an offset to spread
    /// targets; Envoy's `initial_jitter`).
    pub fn new(cfg: HealthConfig, first: Nanos) -> HealthChecker {
        let counter = cfg.healthy_threshold + cfg.unhealthy_threshold.max(1) - 1;
        HealthChecker {
            cfg,
            healthy: true,
            fails: 0,
            oks: 0,
            counter,
            next: Some(first),
            in_flight: None,
        }
    }

    /// The config.
    pub fn config(&self) -> &HealthConfig {
        &self.cfg
    }

    /// Whether traffic may go to the target.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// When the next probe should start (`None` while one is in flight).
    pub fn next_probe_at(&self) -> Option<Nanos> {
        self.next
    }

    /// When the probe in flight started, if one is.
    pub fn in_flight_since(&self) -> Option<Nanos> {
        self.in_flight
    }

    /// Whether a state change is pending (the edge interval applies).
    pub fn pending(&self) -> bool {
        match self.cfg.rules {
            HealthRules::Haproxy => self.counter > 0 && self.counter < self.top(),
            _ => {
                if self.healthy {
                    self.fails > 0
                } else {
                    self.oks > 0
                }
            }
        }
    }

    /// HAProxy's health counter (`rise+fall−1` = fully up, 0 = down); meaningful under
    /// `haproxy` rules.
    pub fn haproxy_counter(&self) -> u32 {
        self.counter
    }

    fn top(&self) -> u32 {
        self.cfg.healthy_threshold + self.cfg.unhealthy_threshold.max(1) - 1
    }

    /// Starts the due probe at `now`; returns its deadline (start + timeout), at which the
    /// driver reports [`ProbeOutcome::Timeout`] unless an answer came first.
    pub fn start_probe(&mut self, now: Nanos) -> Nanos {
        self.next = None;
        self.in_flight = Some(now);
        now.saturating_add(self.cfg.timeout.0)
    }

    /// Counts one result; returns `Some(new_healthy)` on a state change.
    fn count(&mut self, outcome: ProbeOutcome) -> Option<bool> {
        let ok = outcome.is_ok();
        let (rise, fall) = (self.cfg.healthy_threshold, self.cfg.unhealthy_threshold);
        match self.cfg.rules {
            HealthRules::Haproxy => {
                let was = self.healthy;
                if ok {
                    self.counter = (self.counter + 1).min(self.top());
                    if self.counter >= rise && !was {
                        self.counter = self.top();
                    }
                } else {
                    self.counter = self.counter.saturating_sub(1);
                    if self.counter < rise {
                        self.counter = 0;
                    }
                }
                self.healthy = self.counter >= rise;
                (self.healthy != was).then_some(self.healthy)
            }
            HealthRules::Consecutive | HealthRules::Envoy => {
                let mut change = None;
                if ok {
                    self.fails = 0;
                    self.oks += 1;
                    if !self.healthy && self.oks >= rise {
                        self.healthy = true;
                        change = Some(true);
                    }
                } else {
                    self.oks = 0;
                    self.fails += 1;
                    let at_once =
                        self.cfg.rules == HealthRules::Envoy && matches!(outcome, ProbeOutcome::Status { .. });
                    if self.healthy && (self.fails >= fall || at_once) {
                        self.healthy = false;
                        change = Some(false);
                    }
                }
                // Runs only matter toward the other state.
                if self.healthy {
                    self.oks = 0;
                } else {
                    self.fails = 0;
                }
                change
            }
        }
    }

    /// The probe finished at `now` (a timeout is reported at start + timeout). Counts it,
    /// arms the next probe one wait later (fixed delay) and returns the events: the probe
    /// result, then `ejected` or `restored` on a change.
    pub fn on_probe_result(
        &mut self,
        now: Nanos,
        outcome: impl Into<ProbeOutcome>,
        target: &str,
        rng: &mut Stream,
    ) -> Vec<GatewayEvent> {
        let outcome = outcome.into();
        self.in_flight = None;
        let mut ev = vec![GatewayEvent {
            t_ns: now,
            target: target.to_string(),
            kind: EventKind::ProbeResult { ok: outcome.is_ok() },
            replica: None,
        }];
        match self.count(outcome) {
            Some(true) => ev.push(GatewayEvent {
                t_ns: now,
                target: target.to_string(),
                kind: EventKind::Restored,
                replica: None,
            }),
            Some(false) => ev.push(GatewayEvent {
                t_ns: now,
                target: target.to_string(),
                kind: EventKind::Ejected,
                replica: None,
            }),
            None => {}
        }
        let base = self.cfg.base_wait(self.healthy, self.pending());
        let j = if self.cfg.jitter.0 > 0 {
            rng.random_range(0..self.cfg.jitter.0)
        } else {
            0
        };
        self.next = Some(now.saturating_add(base).saturating_add(j));
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::time::NS_PER_S;
    use proptest::prelude::*;

    /// Runs a hung target from `onset`: every probe times out. Returns the ejection time.
    fn detect_hung(cfg: &HealthConfig, onset: Nanos) -> Nanos {
        let mut h = HealthChecker::new(cfg.clone(), 0);
        let mut rng = stream(1, "h");
        loop {
            let start = h.next_probe_at().unwrap();
            let deadline = h.start_probe(start);
            let (t, ok) = if start >= onset {
                (deadline, false)
            } else {
                (start, true)
            };
            let ev = h.on_probe_result(t, ok, "x", &mut rng);
            if ev.iter().any(|e| e.kind == EventKind::Ejected) {
                return t - onset;
            }
        }
    }

    #[test]
    fn detection_of_a_hung_target_follows_the_formula() {
        let cfg = HealthConfig {
            interval: Dur::from_secs(60),
            timeout: Dur::from_secs(30),
            unhealthy_threshold: 1,
            healthy_threshold: 1,
            ..HealthConfig::default()
        };
        // fixed-delay: probes at 0, 60, 120 … (each ok instantly). Onset just after a probe → U ≈ 60.
        assert_eq!(detect_hung(&cfg, 1), 60 * NS_PER_S - 1 + 30 * NS_PER_S);
        assert_eq!(detect_hung(&cfg, 60 * NS_PER_S), 30 * NS_PER_S);
        let n3 = HealthConfig {
            unhealthy_threshold: 3,
            edge_interval: Some(Dur::from_secs(5)),
            ..cfg.clone()
        };
        // N·T + (N−1)·I_e = 90 + 10
        assert_eq!(detect_hung(&n3, 60 * NS_PER_S), 100 * NS_PER_S);
    }

    proptest! {
        #[test]
        fn detection_delay_lies_in_the_formula_bounds(
            i in 1u64..120, t in 1u64..40, n in 1u32..5, ie in 1u64..20, onset_ms in 0u64..600_000
        ) {
            let cfg = HealthConfig {
                interval: Dur::from_secs(i),
                timeout: Dur::from_secs(t),
                unhealthy_threshold: n,
                edge_interval: Some(Dur::from_secs(ie)),
                ..HealthConfig::default()
            };
            let d = detect_hung(&cfg, onset_ms * 1_000_000);
            let lo = u64::from(n) * t * NS_PER_S + u64::from(n - 1) * ie * NS_PER_S;
            prop_assert!(d >= lo && d <= lo + i * NS_PER_S, "d={d} lo={lo}");
        }

        #[test]
        fn restores_only_after_healthy_threshold_successes(
            rise in 1u32..5, fall in 1u32..5, results in proptest::collection::vec(any::<bool>(), 1..80)
        ) {
            let cfg = HealthConfig { unhealthy_threshold: fall, healthy_threshold: rise, ..HealthConfig::default() };
            let mut h = HealthChecker::new(cfg, 0);
            let mut rng = stream(2, "h");
            // reference model: consecutive runs
            let (mut healthy, mut run_ok, mut run_fail) = (true, 0u32, 0u32);
            for (k, ok) in results.iter().enumerate() {
                let t = k as u64;
                h.start_probe(t);
                let ev = h.on_probe_result(t, *ok, "x", &mut rng);
                if *ok { run_ok += 1; run_fail = 0; } else { run_fail += 1; run_ok = 0; }
                let restored = ev.iter().any(|e| e.kind == EventKind::Restored);
                let ejected = ev.iter().any(|e| e.kind == EventKind::Ejected);
                if restored { prop_assert!(!healthy && run_ok >= rise); healthy = true; run_ok = 0; }
                if ejected { prop_assert!(healthy && run_fail >= fall); healthy = false; run_fail = 0; }
                if healthy { run_ok = 0 } else { run_fail = 0 }
                prop_assert_eq!(h.is_healthy(), healthy);
            }
        }
    }
    fn checker(cfg: HealthConfig) -> (HealthChecker, Stream) {
        (HealthChecker::new(cfg, 0), stream(3, "h"))
    }

    #[test]
    fn envoy_rules_eject_at_once_on_an_unexpected_status_but_count_timeouts() {
        let cfg = HealthConfig {
            unhealthy_threshold: 3,
            rules: HealthRules::Envoy,
            ..HealthConfig::default()
        };
        let (mut h, mut rng) = checker(cfg.clone());
        h.start_probe(0);
        h.on_probe_result(0, ProbeOutcome::Timeout, "x", &mut rng);
        assert!(h.is_healthy(), "one timeout of three");
        h.start_probe(1);
        let ev = h.on_probe_result(1, ProbeOutcome::Status { status: 503 }, "x", &mut rng);
        assert!(!h.is_healthy());
        assert_eq!(ev[1].kind, EventKind::Ejected);
        // the default rules count the same status toward N
        let (mut c, mut rng) = checker(HealthConfig {
            rules: HealthRules::Consecutive,
            ..cfg
        });
        c.start_probe(0);
        c.on_probe_result(0, ProbeOutcome::Status { status: 503 }, "x", &mut rng);
        assert!(c.is_healthy());
    }

    #[test]
    fn waits_follow_the_state_interval_edge_and_unhealthy() {
        let s = Dur::from_secs;
        let cfg = HealthConfig {
            interval: s(10),
            edge_interval: Some(s(2)),
            healthy_edge_interval: Some(s(1)),
            unhealthy_interval: s(30).into(),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
            ..HealthConfig::default()
        };
        let (mut h, mut rng) = checker(cfg);
        let mut now = 0;
        let mut waits = Vec::new();
        for ok in [true, false, false, true, true] {
            h.start_probe(now);
            h.on_probe_result(now, ok, "x", &mut rng);
            let next = h.next_probe_at().unwrap();
            waits.push((next - now) / NS_PER_S);
            now = next;
        }
        // healthy → I; one failure pending → edge; ejected → unhealthy_interval;
        // one success pending → healthy edge; restored → I
        assert_eq!(waits, vec![10, 2, 30, 1, 10]);
    }

    #[test]
    fn a_probe_in_flight_arms_nothing() {
        let (mut h, mut rng) = checker(HealthConfig::default());
        assert_eq!(h.next_probe_at(), Some(0));
        assert_eq!(h.start_probe(0), 2 * NS_PER_S, "deadline = start + timeout");
        assert_eq!(h.next_probe_at(), None);
        assert_eq!(h.in_flight_since(), Some(0));
        h.on_probe_result(2 * NS_PER_S, ProbeOutcome::Timeout, "x", &mut rng);
        assert_eq!(h.next_probe_at(), Some(7 * NS_PER_S), "fixed delay after the timeout");
    }

    /// HAProxy `check.c` as a ten-line model: the health counter.
    fn haproxy_model(h: &mut u32, rise: u32, fall: u32, ok: bool) -> bool {
        let top = rise + fall - 1;
        if ok {
            if *h < top {
                *h += 1;
                if *h == rise {
                    *h = top;
                }
            }
        } else if *h > rise {
            *h -= 1;
        } else {
            *h = 0;
        }
        *h >= rise
    }

    #[test]
    fn haproxy_counter_differs_from_consecutive_runs() {
        // fall 3, rise 2: F F S F F ejects under HAProxy (a success undoes one failure)
        // but not under consecutive runs.
        let seq = [false, false, true, false, false];
        let run = |rules| {
            let (mut h, mut rng) = checker(HealthConfig {
                unhealthy_threshold: 3,
                healthy_threshold: 2,
                rules,
                ..HealthConfig::default()
            });
            for (k, ok) in seq.iter().enumerate() {
                h.start_probe(k as u64);
                h.on_probe_result(k as u64, *ok, "x", &mut rng);
            }
            h.is_healthy()
        };
        assert!(!run(HealthRules::Haproxy));
        assert!(run(HealthRules::Consecutive));
    }

    proptest! {
        #[test]
        fn haproxy_rules_match_the_counter_model(
            rise in 1u32..5, fall in 1u32..5, results in proptest::collection::vec(any::<bool>(), 1..80)
        ) {
            let (mut h, mut rng) = checker(HealthConfig {
                unhealthy_threshold: fall,
                healthy_threshold: rise,
                rules: HealthRules::Haproxy,
                ..HealthConfig::default()
            });
            let mut counter = rise + fall - 1;
            let mut was = true;
            for (k, ok) in results.iter().enumerate() {
                h.start_probe(k as u64);
                let ev = h.on_probe_result(k as u64, *ok, "x", &mut rng);
                let up = haproxy_model(&mut counter, rise, fall, *ok);
                prop_assert_eq!(h.is_healthy(), up);
                prop_assert_eq!(h.haproxy_counter(), counter);
                let changed = ev.iter().any(|e| matches!(e.kind, EventKind::Ejected | EventKind::Restored));
                prop_assert_eq!(changed, up != was);
                was = up;
            }
        }

        /// Fixed delay: every next probe is armed one wait after the result, the wait being
        /// the state's interval plus a jitter in [0, jitter).
        #[test]
        fn next_probe_is_armed_after_the_result_with_bounded_jitter(
            jitter_ms in 0u64..2_000, results in proptest::collection::vec(any::<bool>(), 1..60),
            rules in prop_oneof![Just(HealthRules::Consecutive), Just(HealthRules::Envoy), Just(HealthRules::Haproxy)],
        ) {
            let cfg = HealthConfig {
                interval: Dur::from_secs(10),
                edge_interval: Some(Dur::from_secs(3)),
                unhealthy_interval: Some(Dur::from_secs(20)),
                jitter: Dur::from_millis(jitter_ms),
                rules,
                ..HealthConfig::default()
            };
            let (mut h, mut rng) = checker(cfg.clone());
            let mut now = 0;
            for ok in results {
                let start = h.next_probe_at().unwrap();
                prop_assert!(start >= now);
                let deadline = h.start_probe(start);
                now = if ok { start + 1 } else { deadline };
                h.on_probe_result(now, ok, "x", &mut rng);
                let base = cfg.base_wait(h.is_healthy(), h.pending());
                let wait = h.next_probe_at().unwrap() - now;
                prop_assert!(wait >= base && wait < base + jitter_ms * 1_000_000 + u64::from(jitter_ms == 0));
            }
        }

        /// A provider that fails fast (r ≈ 0): D in [(N−1)·I_e, I + (N−1)·I_e].
        #[test]
        fn fast_fail_detection_lies_in_the_formula_bounds(
            i in 1u64..120, n in 1u32..5, ie in 1u64..20, onset_ms in 0u64..600_000
        ) {
            let cfg = HealthConfig {
                interval: Dur::from_secs(i),
                timeout: Dur::from_secs(30),
                unhealthy_threshold: n,
                edge_interval: Some(Dur::from_secs(ie)),
                ..HealthConfig::default()
            };
            let onset = onset_ms * 1_000_000;
            let mut h = HealthChecker::new(cfg, 0);
            let mut rng = stream(1, "h");
            let d = loop {
                let start = h.next_probe_at().unwrap();
                h.start_probe(start);
                let ev = h.on_probe_result(start, start < onset, "x", &mut rng);
                if ev.iter().any(|e| e.kind == EventKind::Ejected) {
                    break start - onset;
                }
            };
            let lo = u64::from(n - 1) * ie * NS_PER_S;
            prop_assert!(d >= lo && d <= lo + i * NS_PER_S, "d={d} lo={lo}");
        }
    }
}
