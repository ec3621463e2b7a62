//! The admin API under `/_chaosgate/` (loopback peers only unless `--admin-any-peer`).
//!
//! - `GET  /_chaosgate/state` — provider, seed, uptime, phases with their intensity now,
//!   rate-limit state, request counts.
//! - `POST /_chaosgate/phases` — add or replace (by `name`) a phase; body is one phase in
//!   TOML or JSON (same keys as a `[[phase]]`, at most [`MAX_PHASE_BYTES`]); its `start`
//!   counts from now, so it takes effect from the next request. A phase posted without a
//!   `name` gets one (`admin-1`, `admin-2`, … skipping names in use), returned in the
//!   answer, so it can be deleted.
//! - `DELETE /_chaosgate/phases/{name}` — remove a phase.
//! - `GET  /_chaosgate/arrivals?since=SEQ&limit=N` — the arrival log with timestamps,
//!   health probes marked (`probe: true`).
//!
//! Every error is JSON, `{"error":{"type":"chaosgate_admin_error","message":…}}`: a bad
//! phase or query 400, a body over the limit 413, an unknown phase or admin route 404, a
//! wrong method 405, a non-loopback peer 403.

use super::MockState;
use crate::fault::profile::Section;
use crate::fault::Profile;
use crate::live::net::ConnCtx;
use crate::time::nanos_to_secs_f64;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// The admin routes (nested under `/_chaosgate`).
pub fn router(state: Arc<MockState>) -> Router<Arc<MockState>> {
    Router::new()
        .route("/state", get(state_handler))
        .route(
            "/phases",
            post(upsert).layer(axum::extract::DefaultBodyLimit::max(MAX_PHASE_BYTES)),
        )
        .route("/phases/{name}", delete(remove))
        .route("/arrivals", get(arrivals))
        .route_layer(axum::middleware::from_fn_with_state(state, loopback_only))
}

/// Largest phase body `POST /_chaosgate/phases` accepts.
pub const MAX_PHASE_BYTES: usize = 64 * 1024;

/// An admin error: `{"error":{"type":"chaosgate_admin_error","message":…}}`.
pub(crate) fn admin_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "type": "chaosgate_admin_error", "message": msg.into() } })),
    )
        .into_response()
}

async fn loopback_only(State(state): State<Arc<MockState>>, req: Request, next: Next) -> Response {
    let any = state.config.admin_any_peer;
    let peer_ok = req
        .extensions()
        .get::<ConnCtx>()
        .is_none_or(|c| c.peer.ip().is_loopback());
    if !any && !peer_ok {
        return admin_error(
            StatusCode::FORBIDDEN,
            "the admin API answers loopback peers only (see --admin-any-peer)",
        );
    }
    next.run(req).await
}

async fn state_handler(State(state): State<Arc<MockState>>) -> Response {
    let now = state.now();
    let (phases, rl) = {
        let mut plan = state.plan.lock().unwrap_or_else(|e| e.into_inner());
        (plan.status(now), plan.rate_limit_state(now))
    };
    let phases: Vec<_> = phases
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "intensity": p.intensity,
                "active": p.intensity > 0.0,
                "start_s": nanos_to_secs_f64(p.start),
                "end_s": p.end.map(nanos_to_secs_f64),
                "applies_to": p.applies_to,
            })
        })
        .collect();
    let rate_limit = rl.map(|s| {
        json!({
            "limit_requests": s.limit_requests, "remaining_requests": s.remaining_requests,
            "limit_tokens": s.limit_tokens, "remaining_tokens": s.remaining_tokens,
        })
    });
    Json(json!({
        "provider": state.config.name,
        "api": state.config.api,
        "seed": state.config.seed,
        "uptime_s": nanos_to_secs_f64(now),
        "requests_seen": state.seq.load(std::sync::atomic::Ordering::Relaxed),
        "phases": phases,
        "rate_limit": rate_limit,
    }))
    .into_response()
}

/// Parses one phase from TOML or JSON, validated like a profile's `[[phase]]`.
pub fn parse_phase(body: &[u8]) -> Result<Section, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    let trimmed = text.trim_start();
    let section: Section = if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid phase JSON: {e}"))?
    } else {
        toml::from_str(text).map_err(|e| format!("invalid phase TOML: {}", e.message().trim()))?
    };
    let profile = Profile {
        phases: vec![section],
        ..Profile::default()
    };
    let problems = profile.problems();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems.into_iter().map(|(p, m)| format!("{p}: {m}")).collect();
        return Err(msgs.join("; "));
    }
    Ok(profile.phases.into_iter().next().expect("one phase"))
}

async fn upsert(
    State(state): State<Arc<MockState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return admin_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("phase body is larger than {MAX_PHASE_BYTES} bytes"),
            )
        }
        Err(e) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {}", e.body_text()),
            )
        }
    };
    match parse_phase(&body) {
        Err(m) => admin_error(StatusCode::BAD_REQUEST, m),
        Ok(mut section) => {
            let now = state.now();
            let mut plan = state.plan.lock().unwrap_or_else(|e| e.into_inner());
            // no name, or one that no DELETE path can spell (empty, all blanks): a generated one
            if section.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                let taken: std::collections::HashSet<String> = plan.status(now).into_iter().map(|p| p.name).collect();
                let name = (1u64..)
                    .map(|k| format!("admin-{k}"))
                    .find(|n| !taken.contains(n))
                    .expect("a free name");
                section.name = Some(name);
            }
            let name = section.name.clone();
            let index = plan.upsert_phase(section, now);
            drop(plan);
            Json(json!({ "index": index, "name": name, "effective_from_s": nanos_to_secs_f64(now) })).into_response()
        }
    }
}

async fn remove(
    State(state): State<Arc<MockState>>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let name = match name {
        Ok(Path(n)) => n,
        Err(e) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                format!("bad phase name in the path: {}", e.body_text()),
            )
        }
    };
    if state.plan.lock().unwrap_or_else(|e| e.into_inner()).remove_phase(&name) {
        Json(json!({ "removed": name })).into_response()
    } else {
        admin_error(StatusCode::NOT_FOUND, format!("no phase named {name:?}"))
    }
}

/// Query of the arrival log.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalQuery {
    /// First sequence number wanted.
    #[serde(default)]
    pub since: u64,
    /// Most records returned (default 10,000).
    #[serde(default)]
    pub limit: Option<usize>,
}

async fn arrivals(
    State(state): State<Arc<MockState>>,
    q: Result<Query<ArrivalQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "query takes since=SEQ and limit=N (whole numbers)",
        );
    };
    let limit = q.limit.unwrap_or(10_000);
    let log = state.arrivals.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<_> = log.iter().filter(|a| a.seq >= q.since).take(limit).cloned().collect();
    let dropped_before = log.front().map_or(0, |a| a.seq);
    drop(log);
    Json(json!({ "arrivals": items, "oldest_kept_seq": dropped_before })).into_response()
}
