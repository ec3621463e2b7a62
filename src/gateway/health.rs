//! Active health checks with Envoy/HAProxy semantics (`SEMANTICS.md` §1–2).
//!
//! Fixed-delay scheduling: the next probe is armed only after the previous one finished
//! (success, failure or timeout), `interval` later — `edge_interval` while a state change is
//! pending (HAProxy `fastinter`, Envoy `unhealthy_edge_interval`/`healthy_edge_interval`),
//! `unhealthy_interval` while unhealthy (HAProxy `downinter`). A random `[0, jitter)` is
//! added to each wait. `unhealthy_threshold` consecutive failures eject the target (N);
//! `healthy_threshold` consecutive successes restore it; a success resets the failure
//! count and vice versa. Targets start healthy. The detection delay of a hung target is
//! then D = U + N·T + (N−1)·I_e with U the wait until the next probe (`SEMANTICS.md` §1).

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
    /// Wait between probes while healthy (I).
    #[serde(default = "d_interval")]
    pub interval: Dur,
    /// Probe timeout (T).
    #[serde(default = "d_timeout")]
    pub timeout: Dur,
    /// Consecutive failures that eject (N; HAProxy `fall`).
    #[serde(default = "d_three")]
    pub unhealthy_threshold: u32,
    /// Consecutive successes that restore (HAProxy `rise`).
    #[serde(default = "d_two")]
    pub healthy_threshold: u32,
    /// Random extra wait in `[0, jitter)`.
    #[serde(default)]
    pub jitter: Dur,
    /// Wait while a change is pending (I_e; default `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_interval: Option<Dur>,
    /// Wait while unhealthy (default `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_interval: Option<Dur>,
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
            unhealthy_interval: None,
            probe: ProbeKind::Health,
        }
    }
}

impl HealthConfig {
    /// Problems, `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if self.interval.0 == 0 {
            v.push(("interval".into(), "must be > 0".into()));
        }
        if self.timeout.0 == 0 {
            v.push(("timeout".into(), "must be > 0".into()));
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            v.push(("unhealthy_threshold".into(), "thresholds must be ≥ 1".into()));
        }
        v
    }
}

/// One target's active health checker (pure: `now` and a stream come in).
#[derive(Clone, Debug)]
pub struct HealthChecker {
    cfg: HealthConfig,
    healthy: bool,
    fails: u32,
    oks: u32,
    next: Option<Nanos>,
    in_flight: Option<Nanos>,
}

impl HealthChecker {
    /// A checker whose first probe starts at `first` (use a jittered offset to spread
    /// targets; Envoy's `initial_jitter`).
    pub fn new(cfg: HealthConfig, first: Nanos) -> HealthChecker {
        HealthChecker {
            cfg,
            healthy: true,
            fails: 0,
            oks: 0,
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

    /// Starts the due probe; returns its deadline (start + timeout).
    pub fn start_probe(&mut self, now: Nanos) -> Nanos {
        self.next = None;
        self.in_flight = Some(now);
        now.saturating_add(self.cfg.timeout.0)
    }

    fn wait(&self, rng: &mut Stream) -> Nanos {
        let pending = if self.healthy { self.fails > 0 } else { self.oks > 0 };
        let base = if pending {
            self.cfg.edge_interval.unwrap_or(self.cfg.interval)
        } else if !self.healthy {
            self.cfg.unhealthy_interval.unwrap_or(self.cfg.interval)
        } else {
            self.cfg.interval
        };
        let j = if self.cfg.jitter.0 > 0 {
            rng.random_range(0..self.cfg.jitter.0)
        } else {
            0
        };
        base.0.saturating_add(j)
    }

    /// The probe finished at `now` (a timeout is `ok = false` at start + timeout). Arms the
    /// next probe and returns the events.
    pub fn on_probe_result(&mut self, now: Nanos, ok: bool, target: &str, rng: &mut Stream) -> Vec<GatewayEvent> {
        self.in_flight = None;
        let mut ev = vec![GatewayEvent {
            t_ns: now,
            target: target.to_string(),
            kind: EventKind::ProbeResult { ok },
        }];
        if ok {
            self.fails = 0;
            self.oks += 1;
            if !self.healthy && self.oks >= self.cfg.healthy_threshold {
                self.healthy = true;
                self.oks = 0;
                ev.push(GatewayEvent {
                    t_ns: now,
                    target: target.to_string(),
                    kind: EventKind::Restored,
                });
            }
        } else {
            self.oks = 0;
            self.fails += 1;
            if self.healthy && self.fails >= self.cfg.unhealthy_threshold {
                self.healthy = false;
                self.fails = 0;
                ev.push(GatewayEvent {
                    t_ns: now,
                    target: target.to_string(),
                    kind: EventKind::Ejected,
                });
            }
        }
        if self.healthy {
            self.oks = 0;
        } else {
            self.fails = 0;
        }
        self.next = Some(now.saturating_add(self.wait(rng)));
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
}
