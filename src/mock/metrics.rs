//! `GET /metrics` in Prometheus text format.

use super::{Arrival, MockState};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use std::fmt::Write;
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
    /// `GET /v1/models`.
    pub models: AtomicU64,
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
    let m = &state.metrics;
    let name = &state.config.name;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP chaosgate_mock_requests_total Completion and embedding requests by decided outcome."
    );
    let _ = writeln!(out, "# TYPE chaosgate_mock_requests_total counter");
    for (i, o) in OUTCOMES.iter().enumerate() {
        let v = m.requests[i].load(Ordering::Relaxed)
            + if *o == "rejected" {
                m.rejected.load(Ordering::Relaxed)
            } else {
                0
            };
        let _ = writeln!(
            out,
            "chaosgate_mock_requests_total{{provider=\"{name}\",outcome=\"{o}\"}} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP chaosgate_mock_probes_total Health probes by decided outcome."
    );
    let _ = writeln!(out, "# TYPE chaosgate_mock_probes_total counter");
    for (i, o) in OUTCOMES.iter().enumerate() {
        let v = m.probes[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "chaosgate_mock_probes_total{{provider=\"{name}\",outcome=\"{o}\"}} {v}"
        );
    }
    let now = state.now();
    let phases = state.plan.lock().unwrap_or_else(|e| e.into_inner()).status(now);
    let _ = writeln!(
        out,
        "# HELP chaosgate_mock_phase_intensity Intensity of each fault phase now (0 = inactive)."
    );
    let _ = writeln!(out, "# TYPE chaosgate_mock_phase_intensity gauge");
    for p in phases {
        let _ = writeln!(
            out,
            "chaosgate_mock_phase_intensity{{provider=\"{name}\",phase=\"{}\"}} {}",
            p.name.replace('"', "'"),
            p.intensity
        );
    }
    let _ = writeln!(
        out,
        "# HELP chaosgate_mock_uptime_seconds Seconds since the mock started."
    );
    let _ = writeln!(out, "# TYPE chaosgate_mock_uptime_seconds gauge");
    let _ = writeln!(
        out,
        "chaosgate_mock_uptime_seconds{{provider=\"{name}\"}} {}",
        crate::time::nanos_to_secs_f64(now)
    );
    let mut r = Response::new(axum::body::Body::from(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
