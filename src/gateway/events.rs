//! Gateway events: every state change of the policy, timestamped (ns since run start).
//! The live gateway writes them as JSON lines; the harness reads them as ground truth.

use crate::time::Nanos;
use serde::Serialize;

/// What changed.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A health probe finished (`ok = false` includes timeouts).
    ProbeResult {
        /// Passed.
        ok: bool,
    },
    /// Active health checks marked the target unhealthy: traffic stops.
    Ejected,
    /// Active health checks marked the target healthy again.
    Restored,
    /// The breaker opened (open = rejecting).
    BreakerOpened {
        /// Until when (ns since start).
        until_ns: Nanos,
    },
    /// The breaker let trial requests through (half-open = probing).
    BreakerHalfOpened,
    /// The breaker closed (closed = traffic flows).
    BreakerClosed,
    /// A 429 carrying Retry-After took the target out of rotation until then
    /// (`[gateway] rate_limit_cooldown`).
    RateLimited {
        /// Until when (ns since start).
        until_ns: Nanos,
    },
    /// A request is retried on the same target.
    Retry {
        /// Attempt number, from 1 for the first retry.
        attempt: u32,
    },
    /// A request moves on to another target.
    Fallback {
        /// The target it moves to.
        to: String,
    },
}

impl EventKind {
    /// Every name [`EventKind::name`] gives, in declaration order (to read a name back as
    /// the `'static` text, e.g. an incident view from a shard file).
    pub const NAMES: [&'static str; 9] = [
        "probe_result",
        "ejected",
        "restored",
        "breaker_opened",
        "breaker_half_opened",
        "breaker_closed",
        "rate_limited",
        "retry",
        "fallback",
    ];

    /// The event's name: its `event` tag in the JSON event stream.
    pub fn name(&self) -> &'static str {
        Self::NAMES[match self {
            EventKind::ProbeResult { .. } => 0,
            EventKind::Ejected => 1,
            EventKind::Restored => 2,
            EventKind::BreakerOpened { .. } => 3,
            EventKind::BreakerHalfOpened => 4,
            EventKind::BreakerClosed => 5,
            EventKind::RateLimited { .. } => 6,
            EventKind::Retry { .. } => 7,
            EventKind::Fallback { .. } => 8,
        }]
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct GatewayEvent {
    /// When (ns since run start).
    pub t_ns: Nanos,
    /// Target name.
    pub target: String,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Which replica of the gateway emitted it (`[gateway] replicas`; `None` and left out
    /// of the JSON when the gateway runs alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_the_json_tag() {
        let mut names = Vec::new();
        for k in [
            EventKind::ProbeResult { ok: true },
            EventKind::Ejected,
            EventKind::Restored,
            EventKind::BreakerOpened { until_ns: 1 },
            EventKind::BreakerHalfOpened,
            EventKind::BreakerClosed,
            EventKind::RateLimited { until_ns: 1 },
            EventKind::Retry { attempt: 1 },
            EventKind::Fallback { to: "b".into() },
        ] {
            let v = serde_json::to_value(&k).unwrap();
            assert_eq!(v["event"], k.name(), "{k:?}");
            names.push(k.name());
        }
        assert_eq!(names, EventKind::NAMES);
    }
}
