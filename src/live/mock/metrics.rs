//! `GET /metrics` in Prometheus text format, written with [`crate::live::promtext`].

use super::{Arrival, MockState};
use crate::live::promtext::{self, Exposition, Kind};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Outcome buckets counted per request.
pub const OUTCOMES: [&str; 8] = [
    "ok",
    "error",
    "reset",
    "hang",
    "headers_then_silence",
    "stream_fault",
    "slow_body",
    "rejected",
];

/// Counters of one mock.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Completions + embeddings by outcome (index into [`OUTCOMES`]).
    pub requests: [AtomicU64; 8],
    /// Health probes by outcome.
    pub probes: [AtomicU64; 8],
    /// Requests refused as malformed.
    pub rejected: AtomicU64,
    /// `GET /v1/models` and `GET /v1/models/{id}`.
    pub models: AtomicU64,
    /// Anthropic `POST /v1/messages/count_tokens`.
    pub count_tokens: AtomicU64,
}

fn outcome_index(verdict: &str) -> usize {
    let key = if verdict.starts_with("error:") {
        "error"
    } else if verdict.starts_with("stream:") {
        "stream_fault"
    } else if verdict == "ok:slow_body" {
        "slow_body"
    } else {
        verdict
    };
    OUTCOMES.iter().position(|o| *o == key).unwrap_or(0)
}

impl Metrics {
    /// Counts one decided request.
    pub fn count(&self, a: &Arrival) {
        let i = outcome_index(&a.verdict);
        let arr = if a.probe { &self.probes } else { &self.requests };
        arr[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// The handler.
pub async fn handler(State(state): State<Arc<MockState>>) -> Response {
    let mut r = Response::new(axum::body::Body::from(render(&state)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(promtext::CONTENT_TYPE));
    r
}

/// The exposition of one mock: every family with `# HELP` and `# TYPE`, label values
/// escaped ([`promtext`]).
pub fn render(state: &MockState) -> String {
    let m = &state.metrics;
    let name = state.config.name.as_str();
    let mut e = Exposition::new();
    let f = "chaosgate_mock_requests_total";
    e.family(
        f,
        Kind::Counter,
        "Completion and embedding requests by decided outcome (rejected = refused as invalid, including metadata endpoints).",
    );
    for (i, o) in OUTCOMES.iter().enumerate() {
        let v = m.requests[i].load(Ordering::Relaxed)
            + if *o == "rejected" {
                m.rejected.load(Ordering::Relaxed)
            } else {
                0
            };
        e.sample(f, &[("provider", name), ("outcome", o)], v);
    }
    let f = "chaosgate_mock_probes_total";
    e.family(f, Kind::Counter, "Health probes by decided outcome.");
    for (i, o) in OUTCOMES.iter().enumerate() {
        e.sample(
            f,
            &[("provider", name), ("outcome", o)],
            m.probes[i].load(Ordering::Relaxed),
        );
    }
    let f = "chaosgate_mock_metadata_requests_total";
    e.family(
        f,
        Kind::Counter,
        "Requests to endpoints outside the fault plan, by endpoint.",
    );
    e.sample(
        f,
        &[("provider", name), ("endpoint", "models")],
        m.models.load(Ordering::Relaxed),
    );
    e.sample(
        f,
        &[("provider", name), ("endpoint", "count_tokens")],
        m.count_tokens.load(Ordering::Relaxed),
    );
    let now = state.now();
    let phases = state.plan.lock().unwrap_or_else(|e| e.into_inner()).status(now);
    let f = "chaosgate_mock_phase_intensity";
    e.family(f, Kind::Gauge, "Intensity of each fault phase now (0 = inactive).");
    for p in phases {
        e.sample(f, &[("provider", name), ("phase", &p.name)], p.intensity);
    }
    let f = "chaosgate_mock_uptime_seconds";
    e.family(f, Kind::Gauge, "Seconds since the mock's run clock started.");
    e.sample(f, &[("provider", name)], crate::time::nanos_to_secs_f64(now));
    e.finish()
}
