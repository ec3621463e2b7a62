//! Passive circuit breakers (`docs/semantics.md` §3). States, named so nobody misreads them:
//! **closed = traffic flows**, **open = rejecting**, **half-open = probing** with a few
//! trial requests.
//!
//! Three kinds:
//! - `consecutive` (Envoy `consecutive_5xx`): `failures` consecutive failures eject the
//!   target for `base_ejection × ejections` (capped at `max_ejection`); it then takes
//!   traffic again (no half-open). The ejection count resets after a full `max_ejection`
//!   without an ejection.
//! - `failure_rate` (resilience4j): over the last `window_size` calls (count window) or the
//!   last `window` of time, once `minimum_calls` are recorded, trip when the failure rate ≥
//!   `failure_rate_threshold` or the slow-call rate ≥ `slow_call_rate_threshold` (slow =
//!   longer than `slow_call_duration`), evaluated after every recorded call once the
//!   minimum is reached. Open for `wait_open`; the next call moves to half-open, which
//!   admits `half_open_calls` trials and, once all are recorded, trips again (their failure
//!   rate or slow-call rate ≥ its threshold) or closes with fresh metrics. The time window
//!   is exact (calls within the last `window`), not resilience4j's one-second buckets.
//! - `article` (the seed article's Portkey config): `failure_threshold` consecutive
//!   failures open it for `recovery_timeout`; then half-open admits
//!   `half_open_max_requests`; one failure reopens, all of them succeeding closes it.
//!
//! A rejected request is not recorded, and neither is a call admitted before the breaker
//! opened that ends while it is open. Transitions out of open are lazy, as in resilience4j:
//! the first [`Breaker::allow`] at or after the end of the wait moves the breaker on, and
//! its event carries that time. (Envoy un-ejects at its outlier-detection `interval` sweeps;
//! this breaker un-ejects exactly when the ejection time ends.)

use super::events::{EventKind, GatewayEvent};
use crate::time::{Dur, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

fn d5() -> u32 {
    5
}
fn d30s() -> Dur {
    Dur::from_secs(30)
}
fn d300s() -> Dur {
    Dur::from_secs(300)
}
fn d_half() -> f64 {
    0.5
}
fn d_one() -> f64 {
    1.0
}
fn d60s() -> Dur {
    Dur::from_secs(60)
}
fn d100() -> u32 {
    100
}
fn d10() -> u32 {
    10
}
fn d3() -> u32 {
    3
}
fn d10s() -> Dur {
    Dur::from_secs(10)
}

/// `[gateway.breaker]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BreakerConfig {
    /// Envoy-style consecutive failures with growing ejection.
    Consecutive {
        /// Consecutive failures that eject (default 5).
        #[serde(default = "d5")]
        failures: u32,
        /// First ejection length (default 30s).
        #[serde(default = "d30s")]
        base_ejection: Dur,
        /// Longest ejection (default 300s).
        #[serde(default = "d300s")]
        max_ejection: Dur,
    },
    /// resilience4j-style failure and slow-call rates.
    FailureRate {
        /// Trip at this failure share (default 0.5).
        #[serde(default = "d_half")]
        failure_rate_threshold: f64,
        /// Trip at this slow-call share (default 1.0).
        #[serde(default = "d_one")]
        slow_call_rate_threshold: f64,
        /// A call slower than this is slow (default 60s).
        #[serde(default = "d60s")]
        slow_call_duration: Dur,
        /// Count window: the last N calls (default 100). Ignored when `window` is set.
        #[serde(default = "d100")]
        window_size: u32,
        /// Time window instead of a count window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<Dur>,
        /// Calls needed before the rates count (default 100; with a count window at most
        /// `window_size`, as in resilience4j).
        #[serde(default = "d100")]
        minimum_calls: u32,
        /// Time open (default 60s).
        #[serde(default = "d60s")]
        wait_open: Dur,
        /// Trial calls in half-open (default 10).
        #[serde(default = "d10")]
        half_open_calls: u32,
    },
    /// The seed article's shape.
    Article {
        /// Consecutive failures that open it (default 3).
        #[serde(default = "d3")]
        failure_threshold: u32,
        /// Time open (default 10s).
        #[serde(default = "d10s")]
        recovery_timeout: Dur,
        /// Trial requests in half-open (default 5).
        #[serde(default = "d5")]
        half_open_max_requests: u32,
    },
}

/// [`BreakerConfig`] read externally tagged (`{ consecutive = { failures = 5, … } }`), for
/// [`breaker_key_problems`]: serde reads the inner table of an externally tagged enum
/// straight from the TOML (an internally tagged one is buffered first, which loses where
/// each inner key is). The variants mirror [`BreakerConfig`]'s; serde's `remote` builds a
/// `BreakerConfig` from them, so a field that differs does not compile.
#[derive(Deserialize)]
#[serde(remote = "BreakerConfig", rename_all = "snake_case", deny_unknown_fields)]
enum BreakerByKind {
    Consecutive {
        #[serde(default = "d5")]
        failures: u32,
        #[serde(default = "d30s")]
        base_ejection: Dur,
        #[serde(default = "d300s")]
        max_ejection: Dur,
    },
    FailureRate {
        #[serde(default = "d_half")]
        failure_rate_threshold: f64,
        #[serde(default = "d_one")]
        slow_call_rate_threshold: f64,
        #[serde(default = "d60s")]
        slow_call_duration: Dur,
        #[serde(default = "d100")]
        window_size: u32,
        #[serde(default)]
        window: Option<Dur>,
        #[serde(default = "d100")]
        minimum_calls: u32,
        #[serde(default = "d60s")]
        wait_open: Dur,
        #[serde(default = "d10")]
        half_open_calls: u32,
    },
    Article {
        #[serde(default = "d3")]
        failure_threshold: u32,
        #[serde(default = "d10s")]
        recovery_timeout: Dur,
        #[serde(default = "d5")]
        half_open_max_requests: u32,
    },
}

/// A document holding one breaker, externally tagged (read only for its problems).
#[derive(Deserialize)]
struct BreakerByKindDoc(
    #[serde(with = "BreakerByKind")]
    #[allow(dead_code)]
    BreakerConfig,
);

/// The problems inside the breaker table of the gateway at `gateway` in `doc`, each at its
/// own key (`gateway.breaker.failures`, not `gateway.breaker`): the table's `kind` is read
/// first, then the rest is read as that kind's fields (unknown keys refused). When there
/// are any, the breaker is removed from `doc`, so that the gateway's own parse does not
/// report them again at the `breaker` key. A missing, unknown or non-string `kind` (or a
/// breaker that is not a table) is left to that parse, which reports it.
pub fn breaker_key_problems(
    doc: &mut toml_edit::DocumentMut,
    gateway: &crate::diag::Path,
) -> Vec<crate::diag::Problem> {
    use crate::diag::{Path, Seg};
    let path = gateway.key("breaker");
    let mut cur = doc.as_item();
    for seg in &path.0 {
        let next = match seg {
            Seg::Key(k) => cur.get(k.as_str()),
            Seg::Index(i) => cur.get(*i),
        };
        match next {
            Some(x) => cur = x,
            None => return Vec::new(),
        }
    }
    let Some(table) = cur.as_table_like() else {
        return Vec::new();
    };
    let Some(kind) = table.get("kind").and_then(|k| k.as_str()) else {
        return Vec::new();
    };
    if !["consecutive", "failure_rate", "article"].contains(&kind) {
        return Vec::new();
    }
    let mut fields = toml_edit::Table::new();
    for (k, v) in table.iter() {
        if k != "kind" {
            fields.insert(k, v.clone());
        }
    }
    let mut one = toml_edit::DocumentMut::new();
    one.insert(kind, toml_edit::Item::Table(fields));
    let (_, problems) = crate::diag::deserialize_all::<BreakerByKindDoc>(&one);
    if problems.is_empty() {
        return problems;
    }
    crate::diag::remove_path(doc, &path);
    problems
        .into_iter()
        .map(|(p, m)| {
            let m = match (p.0.last(), unknown_keys_message(&m)) {
                (Some(Seg::Key(k)), Some(available)) => unknown_field_message(k, &available),
                _ => m,
            };
            // `kind.key…` in the one-breaker document: `…breaker.key…` in `doc`
            let mut at: Path = path.clone();
            at.0.extend(p.0.into_iter().skip(1));
            (at, m)
        })
        .collect()
}

/// The available keys of toml's own unknown-key message for an enum's struct variant
/// (`unexpected keys in table: x, available keys: a, b`), which serde reports otherwise.
fn unknown_keys_message(m: &str) -> Option<Vec<&str>> {
    let rest = m.strip_prefix("unexpected keys in table: ")?;
    let (_, available) = rest.split_once(", available keys: ")?;
    Some(available.split(", ").collect())
}

/// serde's message for an unknown field (`serde::de::Error::unknown_field`), as the
/// internally tagged [`BreakerConfig`] reports it.
fn unknown_field_message(field: &str, expected: &[&str]) -> String {
    let q: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match q.as_slice() {
        [] => format!("unknown field `{field}`, there are no fields"),
        [a] => format!("unknown field `{field}`, expected {a}"),
        [a, b] => format!("unknown field `{field}`, expected {a} or {b}"),
        all => format!("unknown field `{field}`, expected one of {}", all.join(", ")),
    }
}

impl BreakerConfig {
    /// Every duration it holds, by key.
    pub(crate) fn durations(&self) -> Vec<(&'static str, Option<Dur>)> {
        match self {
            BreakerConfig::Consecutive {
                base_ejection,
                max_ejection,
                ..
            } => vec![
                ("base_ejection", Some(*base_ejection)),
                ("max_ejection", Some(*max_ejection)),
            ],
            BreakerConfig::FailureRate {
                slow_call_duration,
                window,
                wait_open,
                ..
            } => vec![
                ("slow_call_duration", Some(*slow_call_duration)),
                ("window", *window),
                ("wait_open", Some(*wait_open)),
            ],
            BreakerConfig::Article { recovery_timeout, .. } => vec![("recovery_timeout", Some(*recovery_timeout))],
        }
    }

    /// Every count it holds (thresholds, window and trial sizes), by key.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u32)> {
        match self {
            BreakerConfig::Consecutive { failures, .. } => vec![("failures", *failures)],
            BreakerConfig::FailureRate {
                window_size,
                minimum_calls,
                half_open_calls,
                ..
            } => vec![
                ("window_size", *window_size),
                ("minimum_calls", *minimum_calls),
                ("half_open_calls", *half_open_calls),
            ],
            BreakerConfig::Article {
                failure_threshold,
                half_open_max_requests,
                ..
            } => vec![
                ("failure_threshold", *failure_threshold),
                ("half_open_max_requests", *half_open_max_requests),
            ],
        }
    }

    /// Problems, each at its key in `[breaker]`.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        match self {
            BreakerConfig::Consecutive {
                failures,
                base_ejection,
                max_ejection,
            } => {
                if *failures == 0 {
                    v.push((key("failures"), "must be ≥ 1".into()));
                }
                if base_ejection.0 == 0 || max_ejection < base_ejection {
                    v.push((key("base_ejection"), "need 0 < base_ejection ≤ max_ejection".into()));
                }
            }
            BreakerConfig::FailureRate {
                failure_rate_threshold,
                slow_call_rate_threshold,
                window_size,
                minimum_calls,
                half_open_calls,
                ..
            } => {
                for (k, x) in [
                    ("failure_rate_threshold", failure_rate_threshold),
                    ("slow_call_rate_threshold", slow_call_rate_threshold),
                ] {
                    if !(*x > 0.0 && *x <= 1.0) {
                        v.push((key(k), format!("must be in (0, 1], got {x}")));
                    }
                }
                if *window_size == 0 || *minimum_calls == 0 || *half_open_calls == 0 {
                    v.push((
                        key("window_size"),
                        "window_size, minimum_calls and half_open_calls must be ≥ 1".into(),
                    ));
                }
            }
            BreakerConfig::Article {
                failure_threshold,
                half_open_max_requests,
                ..
            } => {
                if *failure_threshold == 0 || *half_open_max_requests == 0 {
                    v.push((
                        key("failure_threshold"),
                        "failure_threshold and half_open_max_requests must be ≥ 1".into(),
                    ));
                }
            }
        }
        v
    }
}

/// Where the breaker stands: **closed = traffic flows, open = rejecting, half-open =
/// probing** (a few trial requests decide whether it closes or opens again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Rejecting until the given time.
    Open {
        /// End of the open period.
        until: Nanos,
    },
    /// Probing: `admitted` trials let through so far, `ok`/`failed` of them recorded.
    HalfOpen {
        /// Trials let through.
        admitted: u32,
        /// Trials that succeeded.
        ok: u32,
        /// Trials that failed.
        failed: u32,
    },
}

impl BreakerState {
    /// Every state's name, as [`BreakerState::name`] spells it.
    pub const NAMES: [&'static str; 3] = ["closed", "open", "half_open"];

    /// The state's name: `closed`, `open` or `half_open` (its JSON tag).
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed => Self::NAMES[0],
            BreakerState::Open { .. } => Self::NAMES[1],
            BreakerState::HalfOpen { .. } => Self::NAMES[2],
        }
    }
}

/// One target's passive circuit breaker: a state machine, pure (`now` in, events out).
/// **Closed = traffic flows, open = rejecting, half-open = probing** (`docs/semantics.md` §3).
///
/// Per attempt: [`Breaker::allow`] (admission; may move open → half-open/closed), then,
/// if admitted, [`Breaker::on_result`] when the attempt ends.
#[derive(Clone, Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    ejections: u32,
    last_ejection: Nanos,
    /// (time, failed, slow) of recent calls.
    window: VecDeque<(Nanos, bool, bool)>,
    /// Slow trial calls recorded in the current half-open period.
    half_open_slow: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            consecutive: 0,
            ejections: 0,
            last_ejection: 0,
            window: VecDeque::new(),
            half_open_slow: 0,
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    fn ev(now: Nanos, target: &str, kind: EventKind) -> GatewayEvent {
        GatewayEvent {
            t_ns: now,
            target: target.to_string(),
            kind,
            replica: None,
        }
    }

    fn half_open_limit(&self) -> Option<u32> {
        match self.cfg {
            BreakerConfig::Consecutive { .. } => None,
            BreakerConfig::FailureRate { half_open_calls, .. } => Some(half_open_calls),
            BreakerConfig::Article {
                half_open_max_requests, ..
            } => Some(half_open_max_requests),
        }
    }

    /// Whether a request may go to the target now; moves open → half-open (or closed, for
    /// `consecutive`) when the wait is over. Events go to `out`.
    pub fn allow(&mut self, now: Nanos, target: &str, out: &mut Vec<GatewayEvent>) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } if now < until => false,
            BreakerState::Open { .. } => match self.half_open_limit() {
                None => {
                    self.state = BreakerState::Closed;
                    self.consecutive = 0;
                    out.push(Self::ev(now, target, EventKind::BreakerClosed));
                    true
                }
                Some(_) => {
                    self.half_open_slow = 0;
                    self.state = BreakerState::HalfOpen {
                        admitted: 1,
                        ok: 0,
                        failed: 0,
                    };
                    out.push(Self::ev(now, target, EventKind::BreakerHalfOpened));
                    true
                }
            },
            BreakerState::HalfOpen { admitted, ok, failed } => {
                if admitted < self.half_open_limit().unwrap_or(1) {
                    self.state = BreakerState::HalfOpen {
                        admitted: admitted + 1,
                        ok,
                        failed,
                    };
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Whether a request would be admitted now, without changing anything.
    pub fn would_allow(&self, now: Nanos) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen { admitted, .. } => admitted < self.half_open_limit().unwrap_or(1),
        }
    }

    fn open(&mut self, now: Nanos, wait: Nanos, target: &str, out: &mut Vec<GatewayEvent>) {
        let until = now.saturating_add(wait);
        self.state = BreakerState::Open { until };
        self.window.clear();
        self.consecutive = 0;
        out.push(Self::ev(now, target, EventKind::BreakerOpened { until_ns: until }));
    }

    /// Records an admitted call that ended at `now` after `duration`.
    pub fn on_result(&mut self, now: Nanos, failed: bool, duration: Nanos, target: &str, out: &mut Vec<GatewayEvent>) {
        match (self.state, self.cfg.clone()) {
            (
                BreakerState::HalfOpen {
                    admitted,
                    ok,
                    failed: f,
                },
                cfg,
            ) => {
                let (ok, f) = if failed { (ok, f + 1) } else { (ok + 1, f) };
                self.on_trial_result(now, cfg, duration, (admitted, ok, f), target, out);
            }
            // a call admitted before the breaker opened: not recorded
            (BreakerState::Open { .. }, _) => {}
            (
                BreakerState::Closed,
                BreakerConfig::Consecutive {
                    failures,
                    base_ejection,
                    max_ejection,
                },
            ) => self.on_consecutive_result(now, failed, (failures, base_ejection, max_ejection), target, out),
            (
                BreakerState::Closed,
                BreakerConfig::Article {
                    failure_threshold,
                    recovery_timeout,
                    ..
                },
            ) => {
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                if self.consecutive >= failure_threshold {
                    self.open(now, recovery_timeout.0, target, out);
                }
            }
            (BreakerState::Closed, cfg @ BreakerConfig::FailureRate { .. }) => {
                self.on_failure_rate_result(now, failed, duration, &cfg, target, out)
            }
        }
    }

    /// A half-open breaker's trial call ended: `(admitted, ok, failed)` counts it already.
    /// `article` opens again on any failure and closes after `half_open_max_requests`
    /// successes; `failure_rate` decides on the rates once `half_open_calls` are in.
    fn on_trial_result(
        &mut self,
        now: Nanos,
        cfg: BreakerConfig,
        duration: Nanos,
        (admitted, ok, f): (u32, u32, u32),
        target: &str,
        out: &mut Vec<GatewayEvent>,
    ) {
        let slow_trial =
            matches!(cfg, BreakerConfig::FailureRate { slow_call_duration, .. } if duration > slow_call_duration.0);
        self.half_open_slow += u32::from(slow_trial);
        self.state = BreakerState::HalfOpen {
            admitted,
            ok,
            failed: f,
        };
        match cfg {
            BreakerConfig::Article {
                recovery_timeout,
                half_open_max_requests,
                ..
            } => {
                if f > 0 {
                    self.open(now, recovery_timeout.0, target, out);
                } else if ok >= half_open_max_requests {
                    self.state = BreakerState::Closed;
                    out.push(Self::ev(now, target, EventKind::BreakerClosed));
                }
            }
            BreakerConfig::FailureRate {
                failure_rate_threshold,
                slow_call_rate_threshold,
                wait_open,
                half_open_calls,
                ..
            } => {
                if ok + f >= half_open_calls {
                    let n = f64::from(ok + f);
                    if f64::from(f) / n >= failure_rate_threshold
                        || f64::from(self.half_open_slow) / n >= slow_call_rate_threshold
                    {
                        self.open(now, wait_open.0, target, out);
                    } else {
                        self.state = BreakerState::Closed;
                        self.window.clear();
                        out.push(Self::ev(now, target, EventKind::BreakerClosed));
                    }
                }
            }
            BreakerConfig::Consecutive { .. } => {}
        }
    }

    /// A closed `consecutive` breaker's call ended: `failures` in a row eject the target
    /// for `base_ejection` × the ejections so far, at most `max_ejection`; the count of
    /// ejections starts over after `max_ejection` without one.
    fn on_consecutive_result(
        &mut self,
        now: Nanos,
        failed: bool,
        (failures, base_ejection, max_ejection): (u32, Dur, Dur),
        target: &str,
        out: &mut Vec<GatewayEvent>,
    ) {
        if self.ejections > 0 && now.saturating_sub(self.last_ejection) > max_ejection.0 {
            self.ejections = 0;
        }
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        if self.consecutive >= failures {
            self.ejections += 1;
            self.last_ejection = now;
            let wait = base_ejection
                .0
                .saturating_mul(u64::from(self.ejections))
                .min(max_ejection.0);
            self.open(now, wait, target, out);
        }
    }

    /// A closed `failure_rate` breaker's call ended: it joins the sliding window (by count
    /// or by time), and once the window holds the minimum number of calls, a failure or
    /// slow-call rate at or over its threshold opens the breaker.
    fn on_failure_rate_result(
        &mut self,
        now: Nanos,
        failed: bool,
        duration: Nanos,
        cfg: &BreakerConfig,
        target: &str,
        out: &mut Vec<GatewayEvent>,
    ) {
        let &BreakerConfig::FailureRate {
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration,
            window_size,
            window,
            minimum_calls,
            wait_open,
            ..
        } = cfg
        else {
            return;
        };
        self.window.push_back((now, failed, duration > slow_call_duration.0));
        match window {
            Some(w) => {
                while self
                    .window
                    .front()
                    .is_some_and(|&(t, _, _)| now.saturating_sub(t) > w.0)
                {
                    self.window.pop_front();
                }
            }
            None => {
                while self.window.len() > window_size as usize {
                    self.window.pop_front();
                }
            }
        }
        let n = self.window.len() as u32;
        // resilience4j: with a count window, the minimum is at most the window size.
        let minimum = if window.is_some() {
            minimum_calls
        } else {
            minimum_calls.min(window_size)
        };
        if n >= minimum {
            let fails = self.window.iter().filter(|c| c.1).count() as f64;
            let slow = self.window.iter().filter(|c| c.2).count() as f64;
            if fails / f64::from(n) >= failure_rate_threshold || slow / f64::from(n) >= slow_call_rate_threshold {
                self.open(now, wait_open.0, target, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn state_names_are_the_json_tags() {
        for st in [
            BreakerState::Closed,
            BreakerState::Open { until: 5 },
            BreakerState::HalfOpen {
                admitted: 1,
                ok: 0,
                failed: 0,
            },
        ] {
            let v = serde_json::to_value(st).unwrap();
            let tag = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.as_object().unwrap().keys().next().unwrap().clone());
            assert_eq!(st.name(), tag);
        }
    }

    use super::*;
    use crate::time::NS_PER_S;
    use proptest::prelude::*;

    #[test]
    fn breaker_inner_key_errors_keep_serdes_messages_at_their_own_keys() {
        // what the internally tagged enum says (at the `breaker` key) is what the two-step
        // read says at the inner key
        #[derive(Debug, Deserialize)]
        struct G {
            #[allow(dead_code)]
            breaker: BreakerConfig,
        }
        for (kind, line, key) in [
            ("consecutive", "failures = -3", "failures"),
            ("consecutive", "bogus = 1", "bogus"),
            ("consecutive", "max_ejection = \"soon\"", "max_ejection"),
            ("failure_rate", "window_size = 1.5", "window_size"),
            ("failure_rate", "window = 3", "window"),
            ("failure_rate", "x = 3", "x"),
            ("article", "half_open_max_requests = \"five\"", "half_open_max_requests"),
            ("article", "failures = 3", "failures"),
        ] {
            let text = format!("[breaker]\nkind = \"{kind}\"\n{line}\n");
            let old = toml::from_str::<G>(&text).unwrap_err().message().trim().to_string();
            let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
            let p = breaker_key_problems(&mut doc, &crate::diag::Path::root());
            assert_eq!(p.len(), 1, "{text}: {p:?}");
            assert_eq!(p[0].0, crate::diag::Path::root().key("breaker").key(key), "{text}");
            assert_eq!(p[0].1, old, "{text}");
            assert!(doc.get("breaker").is_none(), "removed, not reported twice");
        }
        // a good breaker: no problems, left in place
        let mut doc: toml_edit::DocumentMut = "[breaker]\nkind = \"article\"\n".parse().unwrap();
        assert!(breaker_key_problems(&mut doc, &crate::diag::Path::root()).is_empty());
        assert!(doc.get("breaker").is_some());
    }

    fn article() -> BreakerConfig {
        BreakerConfig::Article {
            failure_threshold: 3,
            recovery_timeout: Dur::from_secs(10),
            half_open_max_requests: 5,
        }
    }

    #[test]
    fn article_shape_opens_half_opens_and_closes() {
        let mut b = Breaker::new(article());
        let mut ev = Vec::new();
        for t in 0..3 {
            assert!(b.allow(t, "a", &mut ev));
            b.on_result(t, true, 0, "a", &mut ev);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: 2 + 10 * NS_PER_S
            }
        );
        assert!(!b.allow(5 * NS_PER_S, "a", &mut ev));
        // half-open: five trials admitted, the sixth waits
        for _ in 0..5 {
            assert!(b.allow(11 * NS_PER_S, "a", &mut ev));
        }
        assert!(!b.allow(11 * NS_PER_S, "a", &mut ev));
        for _ in 0..5 {
            b.on_result(11 * NS_PER_S, false, 0, "a", &mut ev);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let kinds: Vec<_> = ev.iter().map(|e| e.kind.clone()).collect();
        assert!(matches!(kinds[0], EventKind::BreakerOpened { .. }));
        assert_eq!(kinds[1], EventKind::BreakerHalfOpened);
        assert_eq!(kinds[2], EventKind::BreakerClosed);
    }

    #[test]
    fn consecutive_ejection_grows_and_caps() {
        let cfg = BreakerConfig::Consecutive {
            failures: 2,
            base_ejection: Dur::from_secs(30),
            max_ejection: Dur::from_secs(70),
        };
        let mut b = Breaker::new(cfg);
        let mut ev = Vec::new();
        let mut t = 0;
        let mut waits = Vec::new();
        for _ in 0..3 {
            assert!(b.allow(t, "a", &mut ev));
            b.on_result(t, true, 0, "a", &mut ev);
            b.on_result(t, true, 0, "a", &mut ev);
            let BreakerState::Open { until } = b.state() else {
                panic!()
            };
            waits.push((until - t) / NS_PER_S);
            t = until;
        }
        assert_eq!(waits, vec![30, 60, 70]);
    }

    #[test]
    fn failure_rate_minimum_calls_and_slow_calls() {
        let cfg = BreakerConfig::FailureRate {
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 0.8,
            slow_call_duration: Dur::from_secs(1),
            window_size: 10,
            window: None,
            minimum_calls: 4,
            wait_open: Dur::from_secs(60),
            half_open_calls: 2,
        };
        let mut b = Breaker::new(cfg.clone());
        let mut ev = Vec::new();
        for _ in 0..3 {
            b.on_result(0, true, 0, "a", &mut ev);
        }
        assert_eq!(b.state(), BreakerState::Closed, "below minimum_calls");
        b.on_result(0, false, 0, "a", &mut ev);
        assert!(matches!(b.state(), BreakerState::Open { .. }), "3 of 4 failed");
        let mut s = Breaker::new(cfg);
        for _ in 0..4 {
            s.on_result(0, false, 2 * NS_PER_S, "a", &mut ev);
        }
        assert!(matches!(s.state(), BreakerState::Open { .. }), "all slow");
    }

    proptest! {
        /// Never admits while open before the wait ends; a reference model of the article
        /// breaker agrees on every decision.
        #[test]
        fn article_breaker_matches_a_reference_model(ops in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..200)) {
            let mut b = Breaker::new(article());
            let mut ev = Vec::new();
            let mut now = 0u64;
            // reference: (state, consecutive, open_until, trials_admitted, trials_ok)
            let (mut open_until, mut consec, mut half, mut admitted, mut oks): (Option<u64>, u32, bool, u32, u32) = (None, 0, false, 0, 0);
            for (dt_ms, fail) in ops {
                now += dt_ms * 1_000_000 * 10;
                let want = match open_until {
                    Some(u) if now < u => false,
                    Some(_) => { open_until = None; half = true; admitted = 1; oks = 0; true }
                    None if half => { if admitted < 5 { admitted += 1; true } else { false } }
                    None => true,
                };
                let got = b.allow(now, "a", &mut ev);
                prop_assert_eq!(got, want);
                if let BreakerState::Open { until } = b.state() { prop_assert!(now < until); }
                if got {
                    b.on_result(now, fail, 0, "a", &mut ev);
                    if half {
                        if fail { half = false; open_until = Some(now + 10 * NS_PER_S); }
                        else { oks += 1; if oks >= 5 { half = false; consec = 0; } }
                    } else {
                        consec = if fail { consec + 1 } else { 0 };
                        if consec >= 3 { open_until = Some(now + 10 * NS_PER_S); consec = 0; }
                    }
                }
            }
        }
    }

    #[test]
    fn failure_rate_half_open_trips_on_slow_trials() {
        let cfg = BreakerConfig::FailureRate {
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 0.5,
            slow_call_duration: Dur::from_secs(1),
            window_size: 4,
            window: None,
            minimum_calls: 2,
            wait_open: Dur::from_secs(10),
            half_open_calls: 2,
        };
        let mut b = Breaker::new(cfg);
        let mut ev = Vec::new();
        b.on_result(0, true, 0, "a", &mut ev);
        b.on_result(0, true, 0, "a", &mut ev);
        assert!(!b.allow(NS_PER_S, "a", &mut ev), "open rejects");
        let t = 10 * NS_PER_S;
        assert!(b.allow(t, "a", &mut ev) && b.allow(t, "a", &mut ev));
        assert!(!b.allow(t, "a", &mut ev), "half-open admits only the permitted calls");
        b.on_result(t, false, 2 * NS_PER_S, "a", &mut ev);
        b.on_result(t, false, 0, "a", &mut ev);
        assert!(
            matches!(b.state(), BreakerState::Open { .. }),
            "1 of 2 trials slow ≥ 50 %"
        );
    }

    #[test]
    fn time_window_forgets_old_calls() {
        let cfg = BreakerConfig::FailureRate {
            failure_rate_threshold: 0.5,
            slow_call_rate_threshold: 1.0,
            slow_call_duration: Dur::from_secs(60),
            window_size: 100,
            window: Some(Dur::from_secs(10)),
            minimum_calls: 3,
            wait_open: Dur::from_secs(10),
            half_open_calls: 1,
        };
        let mut b = Breaker::new(cfg);
        let mut ev = Vec::new();
        b.on_result(0, true, 0, "a", &mut ev);
        b.on_result(NS_PER_S, true, 0, "a", &mut ev);
        // 20 s later the two failures are out of the window: 1 of 3 fails → stays closed
        for k in 0..3 {
            b.on_result(20 * NS_PER_S + k, k == 0, 0, "a", &mut ev);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// One attempt in a generated run: after `dt_ms`, ask for admission; if admitted, the
    /// call fails or not and takes `dur_ms`.
    fn ops() -> impl Strategy<Value = Vec<(u64, bool, u64)>> {
        proptest::collection::vec((0u64..4_000, any::<bool>(), 0u64..3_000), 1..250)
    }

    proptest! {
        /// Envoy `consecutive_5xx`: never admits while ejected; ejection k lasts
        /// min(base × k, max); the count resets after `max` without an ejection.
        #[test]
        fn consecutive_breaker_matches_a_reference_model(
            f in 1u32..5, base_s in 1u64..20, max_mult in 1u64..6, ops in ops()
        ) {
            let (base, max) = (base_s * NS_PER_S, base_s * max_mult * NS_PER_S);
            let mut b = Breaker::new(BreakerConfig::Consecutive {
                failures: f, base_ejection: Dur(base), max_ejection: Dur(max),
            });
            let mut ev = Vec::new();
            let (mut now, mut until, mut run, mut ejections, mut last) = (0u64, None::<u64>, 0u32, 0u64, 0u64);
            for (dt_ms, fail, _) in ops {
                now += dt_ms * 10_000_000;
                let want = match until {
                    Some(u) if now < u => false,
                    Some(_) => { until = None; run = 0; true }
                    None => true,
                };
                prop_assert_eq!(b.allow(now, "a", &mut ev), want);
                if !want { continue; }
                b.on_result(now, fail, 0, "a", &mut ev);
                if ejections > 0 && now - last > max { ejections = 0; }
                run = if fail { run + 1 } else { 0 };
                if run >= f {
                    ejections += 1;
                    last = now;
                    until = Some(now + (base * ejections).min(max));
                    run = 0;
                    prop_assert_eq!(b.state(), BreakerState::Open { until: until.unwrap() });
                }
            }
        }

        /// resilience4j, count window: a small model of window, minimum calls, slow calls,
        /// open wait and permitted half-open calls agrees on every admission and state.
        #[test]
        fn failure_rate_breaker_matches_a_reference_model(
            rate_pct in 10u32..100, slow_pct in 10u32..101, size in 1u32..12, min in 1u32..12,
            half in 1u32..4, ops in ops()
        ) {
            let (fr, sr) = (f64::from(rate_pct) / 100.0, f64::from(slow_pct) / 100.0);
            let (slow_ns, wait) = (NS_PER_S, 30 * NS_PER_S);
            let mut b = Breaker::new(BreakerConfig::FailureRate {
                failure_rate_threshold: fr, slow_call_rate_threshold: sr,
                slow_call_duration: Dur(slow_ns), window_size: size, window: None,
                minimum_calls: min, wait_open: Dur(wait), half_open_calls: half,
            });
            let mut ev = Vec::new();
            // model: Closed(window) | Open(until) | Half(admitted, trials)
            let mut window: Vec<(bool, bool)> = Vec::new();
            let (mut until, mut half_state, mut trials): (Option<u64>, Option<u32>, Vec<(bool, bool)>) = (None, None, Vec::new());
            let mut now = 0u64;
            let trips = |w: &[(bool, bool)]| {
                let n = w.len() as f64;
                w.iter().filter(|c| c.0).count() as f64 / n >= fr || w.iter().filter(|c| c.1).count() as f64 / n >= sr
            };
            for (dt_ms, fail, dur_ms) in ops {
                now += dt_ms * 10_000_000;
                let want = match (until, half_state) {
                    (Some(u), _) if now < u => false,
                    (Some(_), _) => { until = None; half_state = Some(1); trials.clear(); true }
                    (None, Some(a)) if a < half => { half_state = Some(a + 1); true }
                    (None, Some(_)) => false,
                    (None, None) => true,
                };
                prop_assert_eq!(b.allow(now, "a", &mut ev), want, "admission at {}", now);
                if !want { continue; }
                let call = (fail, dur_ms * 1_000_000 > slow_ns);
                b.on_result(now, call.0, dur_ms * 1_000_000, "a", &mut ev);
                if half_state.is_some() {
                    trials.push(call);
                    if trials.len() as u32 >= half {
                        half_state = None;
                        window.clear();
                        if trips(&trials) { until = Some(now + wait); }
                    }
                } else {
                    window.push(call);
                    if window.len() > size as usize { window.remove(0); }
                    if window.len() as u32 >= min.min(size) && trips(&window) {
                        until = Some(now + wait);
                        window.clear();
                    }
                }
                match b.state() {
                    BreakerState::Open { until: u } => prop_assert_eq!(Some(u), until),
                    BreakerState::HalfOpen { .. } => prop_assert!(half_state.is_some()),
                    BreakerState::Closed => prop_assert!(until.is_none() && half_state.is_none()),
                }
            }
        }
    }
}
