//! `time_scale`: every scenario time multiplied by one factor, so a 10-minute incident
//! can run live in one minute (`time_scale = 0.1`).
//!
//! Scaled: fault phase windows (`start`, `duration`, `ramp_in`, `ramp_out`, flapping
//! periods, random outages' MTBF/MTTR), traffic durations and stages, trace speed, the
//! builtin gateway's health-check intervals and timeouts, its breaker's windows and
//! waits, `onset_spread`, and an external gateway's duration-valued `[gateway.values]`.
//! Not scaled: request rates (a run at 0.1 sends a tenth of the requests), provider
//! latencies and token pacing (they are what requests really cost), request timeouts of
//! the gateway and the client (they bound those latencies), the SLO period.

use crate::fault::profile::Section;
use crate::fault::Profile;
use crate::gateway::{BreakerConfig, GatewayConfig};
use crate::time::Dur;
use crate::traffic::TrafficConfig;

/// `d × k`, rounded to the nanosecond.
pub fn dur(d: Dur, k: f64) -> Dur {
    Dur((d.0 as f64 * k).round() as u64)
}

fn opt(d: &mut Option<Dur>, k: f64) {
    if let Some(x) = d {
        *x = dur(*x, k);
    }
}

fn section(s: &mut Section, k: f64) {
    opt(&mut s.start, k);
    opt(&mut s.duration, k);
    opt(&mut s.ramp_in, k);
    opt(&mut s.ramp_out, k);
    if let Some(f) = &mut s.flapping {
        f.period = dur(f.period, k);
    }
    if let Some(r) = &mut s.random {
        r.mtbf = dur(r.mtbf, k);
        r.mttr = dur(r.mttr, k);
    }
}

/// Scales a fault profile's timeline (not its latencies).
pub fn profile(p: &mut Profile, k: f64) {
    for s in &mut p.phases {
        section(s, k);
    }
}

/// Scales traffic durations (not rates).
pub fn traffic(t: &mut TrafficConfig, k: f64) {
    opt(&mut t.duration, k);
    for s in &mut t.stages {
        s.duration = dur(s.duration, k);
    }
    if t.trace.is_some() {
        t.speed = Some(t.speed.unwrap_or(1.0) / k);
    }
}

/// Scales the builtin gateway's health checks and breaker.
pub fn gateway(g: &mut GatewayConfig, k: f64) {
    if let Some(h) = &mut g.health_check {
        h.interval = dur(h.interval, k);
        h.timeout = dur(h.timeout, k);
        h.jitter = dur(h.jitter, k);
        opt(&mut h.edge_interval, k);
        opt(&mut h.unhealthy_edge_interval, k);
        opt(&mut h.healthy_edge_interval, k);
        opt(&mut h.unhealthy_interval, k);
    }
    match &mut g.breaker {
        None => {}
        Some(BreakerConfig::Consecutive {
            base_ejection,
            max_ejection,
            ..
        }) => {
            *base_ejection = dur(*base_ejection, k);
            *max_ejection = dur(*max_ejection, k);
        }
        Some(BreakerConfig::FailureRate { window, wait_open, .. }) => {
            opt(window, k);
            *wait_open = dur(*wait_open, k);
        }
        Some(BreakerConfig::Article { recovery_timeout, .. }) => {
            *recovery_timeout = dur(*recovery_timeout, k);
        }
    }
}

/// Scales an external gateway's duration-valued `values`; returns warnings for what
/// cannot be scaled (its `not_scaled` notes).
pub fn external(x: &mut crate::scenario::external::ExternalSpec, k: f64) -> Vec<String> {
    for (_, v) in x.values.iter_mut() {
        if let toml::Value::String(s) = v {
            if let Ok(d) = s.parse::<Dur>() {
                *s = dur(d, k).to_string();
            }
        }
    }
    x.not_scaled
        .iter()
        .map(|n| format!("time_scale {k}: not scaled in the external gateway: {n}"))
        .collect()
}

/// A running gateway's intervals are its own: warnings saying so, and its `not_scaled` notes.
pub fn running(x: &crate::scenario::external::RunningSpec, k: f64) -> Vec<String> {
    std::iter::once(format!(
        "time_scale {k}: the running gateway's own health-check, breaker and timeout settings are not scaled (chaosgate does not configure it)"
    ))
    .chain(x.not_scaled.iter().map(|n| format!("time_scale {k}: not scaled in the running gateway: {n}")))
    .collect()
}

/// Moves every phase of `p` `by` later (`--repeat` spreads fault onsets this way).
pub fn shift(p: &mut Profile, by: crate::time::Nanos) {
    if by == 0 {
        return;
    }
    for s in &mut p.phases {
        s.start = Some(Dur(s.start.map_or(0, |d| d.0).saturating_add(by)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_windows_not_latencies() {
        let mut p = Profile::from_toml(
            "[baseline]\nttft = { kind = \"fixed\", value = \"400ms\" }\n[[phase]]\nstart = \"60s\"\nduration = \"4m\"\nflapping = { period = \"10s\", duty = 0.5 }\n",
            "x.toml",
        )
        .unwrap();
        profile(&mut p, 0.1);
        assert_eq!(p.phases[0].start, Some(Dur::from_secs(6)));
        assert_eq!(p.phases[0].duration, Some(Dur::from_secs(24)));
        assert_eq!(p.phases[0].flapping.as_ref().unwrap().period, Dur::from_secs(1));
        assert_eq!(
            p.baseline,
            Profile::from_toml("[baseline]\nttft = { kind = \"fixed\", value = \"400ms\" }\n", "y")
                .unwrap()
                .baseline
        );
        let mut g: GatewayConfig = toml::from_str(
            "targets = [{ name = \"a\" }]\nhealth_check = { interval = \"60s\", timeout = \"30s\" }\nbreaker = { kind = \"article\", recovery_timeout = \"10s\" }\n",
        )
        .unwrap();
        gateway(&mut g, 0.05);
        let h = g.health_check.as_ref().unwrap();
        assert_eq!((h.interval, h.timeout), (Dur::from_secs(3), Dur::from_millis(1500)));
        assert!(
            matches!(g.breaker, Some(BreakerConfig::Article { recovery_timeout, .. }) if recovery_timeout == Dur::from_millis(500))
        );
        assert_eq!(
            g.request_timeout,
            Dur::from_secs(60),
            "request timeouts bound real latencies: not scaled"
        );
    }
}
