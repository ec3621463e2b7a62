//! The live reference gateway: an axum proxy that runs [`Policy`] against real upstreams.
//!
//! - OpenAI (`/v1/chat/completions`, `/v1/embeddings`) and Anthropic (`/v1/messages`)
//!   routes, forwarded as they are to the target's base URL;
//! - streams passed through chunk by chunk, never buffered; failover is allowed until the
//!   first byte reaches the client (the gateway waits for the upstream's first body chunk
//!   within `ttft_timeout`), after that a cut or stalled stream ends with a clear in-band
//!   error event in the client's API format;
//! - active health probes on their own task, fixed-delay, per the policy;
//! - TCP_NODELAY on both sides, pooled upstream connections;
//! - `GET /metrics` (Prometheus), `GET /_chaosgate/events?since=N` and an optional JSON-lines
//!   event log: the harness's ground truth of ejections, restorations and breaker moves;
//! - clients' `x-chaosgate-*` request headers are stripped (a client must not force faults
//!   on providers every client shares) unless the test-only `pass_chaosgate_headers` is on;
//! - limits on what a client sends ([`MAX_REQUEST_BODY_BYTES`], [`MAX_REQUEST_HEADERS`],
//!   [`MAX_REQUEST_HEAD_BYTES`]) and on what the gateway holds of an upstream reply
//!   ([`PLAIN_PREFIX_BYTES`]); every error the gateway itself returns is JSON in the
//!   client's API envelope (OpenAI's, or Anthropic's on `/v1/messages`).

use super::{Failure, GatewayConfig, GatewayEvent, Policy, ProbeKind};
use crate::load::sse;
use crate::net::{self, ServerHandle};
use crate::provider::classify::{classify, Answer};
use crate::provider::{anthropic, openai, Api, ErrorKind};
use crate::time::Nanos;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

type Http = Client<HttpConnector, Full<Bytes>>;

/// Events kept in memory for `/_chaosgate/events`.
const EVENT_LOG_CAPACITY: usize = 100_000;

/// Largest request body a client may send (413 over it).
pub const MAX_REQUEST_BODY_BYTES: usize = crate::mock::DEFAULT_MAX_BODY_BYTES;
/// Most header lines in a client's request (431 over it).
pub const MAX_REQUEST_HEADERS: usize = 100;
/// Largest request head (target URI plus every header name and value), in bytes (431 over it).
pub const MAX_REQUEST_HEAD_BYTES: usize = 32 * 1024;
/// Hyper's own header-line limit, above [`MAX_REQUEST_HEADERS`] so that the router (which
/// answers in JSON) sees the excess first. Past this hyper answers a bare 431 by itself.
const PARSER_MAX_HEADERS: usize = 4 * MAX_REQUEST_HEADERS;
/// How much of a non-streamed upstream reply the gateway holds before it commits to it: a
/// reply that ends within this can still fail over when its body breaks; the rest of a
/// longer one is relayed as it arrives, never held whole.
pub const PLAIN_PREFIX_BYTES: usize = 256 * 1024;
/// How much of a failure status's body the gateway reads (to tell a quota error, which is
/// passed on, from a transient one, which is retried or failed over).
const ERROR_PREFIX_BYTES: usize = 64 * 1024;

/// Shared state of a running gateway.
pub struct GatewayState {
    policy: Mutex<Policy>,
    start: Instant,
    client: Http,
    bases: Vec<String>,
    events: Mutex<VecDeque<(u64, GatewayEvent)>>,
    event_seq: AtomicU64,
    event_file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    probe_wake: Notify,
    pass_chaosgate_headers: bool,
    requests: AtomicU64,
    failed: AtomicU64,
    fallbacks: AtomicU64,
    retries: AtomicU64,
    rejected_all_down: AtomicU64,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState").field("bases", &self.bases).finish()
    }
}

impl GatewayState {
    /// When the gateway started (its events' time zero).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// ns since the gateway started.
    pub fn now(&self) -> Nanos {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(Nanos::MAX)
    }

    fn policy(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the policy's new events to the log (memory, file).
    fn flush_events(&self, policy: &mut Policy) {
        let ev = policy.drain_events();
        if ev.is_empty() {
            return;
        }
        for e in &ev {
            match e.kind {
                super::EventKind::Fallback { .. } => self.fallbacks.fetch_add(1, Ordering::Relaxed),
                super::EventKind::Retry { .. } => self.retries.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        if let Some(f) = &self.event_file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            for e in &ev {
                if let Ok(line) = serde_json::to_string(e) {
                    let _ = writeln!(f, "{line}");
                }
            }
            let _ = f.flush();
        }
        let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        for e in ev {
            if log.len() >= EVENT_LOG_CAPACITY {
                log.pop_front();
            }
            log.push_back((self.event_seq.fetch_add(1, Ordering::Relaxed), e));
        }
    }

    /// All events so far (for tests and reports).
    pub fn events(&self) -> Vec<GatewayEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    /// The HTTP server.
    pub server: ServerHandle,
    /// Its state.
    pub state: Arc<GatewayState>,
    probes: tokio::task::JoinHandle<()>,
}

impl GatewayHandle {
    /// Stops the probes and the server.
    pub async fn shutdown(self) {
        self.probes.abort();
        self.server.shutdown().await;
    }
}

/// Starts the gateway on `listener`. `events_path` also writes events as JSON lines.
pub async fn spawn(
    cfg: GatewayConfig,
    listener: tokio::net::TcpListener,
    seed: u64,
    events_path: Option<&std::path::Path>,
) -> anyhow::Result<GatewayHandle> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
        anyhow::bail!("invalid gateway config:\n  {}", msgs.join("\n  "));
    }
    let bases = cfg
        .targets
        .iter()
        .map(|t| crate::load::base_url(&t.url).unwrap_or_else(|_| t.url.clone()))
        .collect();
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let client: Http = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(conn);
    let event_file = match events_path {
        Some(p) => Some(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("cannot write events to {}: {e}", p.display()))?,
        ))),
        None => None,
    };
    let pass_chaosgate_headers = cfg.pass_chaosgate_headers;
    let state = Arc::new(GatewayState {
        policy: Mutex::new(Policy::new(cfg, seed)),
        start: Instant::now(),
        client,
        bases,
        events: Mutex::new(VecDeque::new()),
        event_seq: AtomicU64::new(0),
        event_file,
        probe_wake: Notify::new(),
        pass_chaosgate_headers,
        requests: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        fallbacks: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        rejected_all_down: AtomicU64::new(0),
    });
    let probes = tokio::spawn(probe_loop(state.clone()));
    let limits = net::ParserLimits {
        max_headers: Some(PARSER_MAX_HEADERS),
        max_buf_size: None,
    };
    let server = net::spawn_with(listener, router(state.clone()), limits)?;
    Ok(GatewayHandle { server, state, probes })
}

/// The router (for `oneshot` tests).
pub fn router(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(proxy))
        .route("/v1/embeddings", post(proxy))
        .route("/v1/messages", post(proxy))
        .route(
            "/health",
            get(|| async { ([("content-type", "application/json")], "{\"status\":\"ok\"}") }),
        )
        .route("/metrics", get(metrics))
        .route("/_chaosgate/events", get(events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(bound_head))
        .with_state(state)
}

/// 404 for a path the gateway does not serve, worded as the providers word it.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    client_error(
        error_api(uri.path()),
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {})", uri.path()),
    )
}

/// 405 for a known path with another method.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    client_error(
        error_api(uri.path()),
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Invalid method for URL ({method} {})", uri.path()),
    )
}

/// Refuses a request head over [`MAX_REQUEST_HEADERS`] lines or [`MAX_REQUEST_HEAD_BYTES`]
/// bytes with a 431 in the client's envelope, before anything else reads it.
async fn bound_head(req: Request, next: axum::middleware::Next) -> Response {
    let lines = req.headers().len();
    let bytes = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum::<usize>();
    let too_many = lines > MAX_REQUEST_HEADERS;
    if too_many || bytes > MAX_REQUEST_HEAD_BYTES {
        let message = if too_many {
            format!("request has {lines} header lines; the gateway accepts at most {MAX_REQUEST_HEADERS}")
        } else {
            format!("request head is {bytes} bytes; the gateway accepts at most {MAX_REQUEST_HEAD_BYTES}")
        };
        return client_error(
            error_api(req.uri().path()),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &message,
        );
    }
    next.run(req).await
}

async fn probe_loop(state: Arc<GatewayState>) {
    loop {
        let next = state.policy().next_probe();
        let Some((due, i)) = next else {
            state.probe_wake.notified().await;
            continue;
        };
        let at = state.start + Duration::from_nanos(due);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = state.probe_wake.notified() => continue,
        }
        let now = state.now();
        let (deadline, kind) = {
            let mut p = state.policy();
            let d = p.start_probe(now, i);
            let kind = p.config().health_check.as_ref().map(|h| h.probe).unwrap_or_default();
            (d, kind)
        };
        let Some(deadline) = deadline else { continue };
        let st = state.clone();
        tokio::spawn(async move {
            let ok = tokio::time::timeout_at(st.start + Duration::from_nanos(deadline), probe(&st, i, kind)).await;
            let (t, ok) = match ok {
                Ok(ok) => (st.now().min(deadline), ok),
                Err(_) => (deadline, false),
            };
            let mut p = st.policy();
            p.on_probe(t, i, ok);
            st.flush_events(&mut p);
            drop(p);
            st.probe_wake.notify_one();
        });
    }
}

async fn probe(state: &GatewayState, i: usize, kind: ProbeKind) -> bool {
    let base = &state.bases[i];
    let req = match kind {
        ProbeKind::Health => hyper::Request::get(format!("{base}/health"))
            .header("x-chaosgate-probe", "1")
            .body(Full::new(Bytes::new())),
        ProbeKind::Completion => hyper::Request::post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("x-chaosgate-probe", "1")
            .body(Full::new(Bytes::from_static(
                br#"{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}"#,
            ))),
    };
    let Ok(req) = req else { return false };
    match state.client.request(req).await {
        Ok(r) => {
            let ok = r.status().is_success();
            // drained, not held: a probe reply may be any size (the caller's timeout bounds it)
            let mut body = r.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            ok
        }
        Err(_) => false,
    }
}

fn client_api(path: &str) -> Api {
    if path == "/v1/messages" {
        Api::Anthropic
    } else {
        Api::OpenAi
    }
}

/// The API whose error envelope a gateway-made error uses: Anthropic's on `/v1/messages`
/// and below, OpenAI's everywhere else (including `/metrics` and `/_chaosgate/…`).
fn error_api(path: &str) -> Api {
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        Api::Anthropic
    } else {
        Api::OpenAi
    }
}

/// An error the gateway itself answers, as JSON in the client's API envelope.
fn gateway_error(api: Api, status: StatusCode, message: &str) -> Response {
    let kind = ErrorKind::from_status(status.as_u16());
    let body = match api {
        Api::OpenAi => openai::error_body(kind, message, None),
        Api::Anthropic => anthropic::error_body(kind, message, "req_gateway"),
    };
    json_error(api, status, body)
}

/// A client error (4xx) the gateway itself answers: OpenAI's `invalid_request_error` with no
/// code (as OpenAI answers an unknown URL or a bad method), or Anthropic's envelope.
fn client_error(api: Api, status: StatusCode, message: &str) -> Response {
    let body = match api {
        Api::OpenAi => serde_json::json!({
            "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null }
        })
        .to_string(),
        Api::Anthropic => anthropic::error_body(ErrorKind::from_status(status.as_u16()), message, "req_gateway"),
    };
    json_error(api, status, body)
}

fn json_error(api: Api, status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if api == Api::Anthropic {
        r.headers_mut()
            .insert("request-id", HeaderValue::from_static("req_gateway"));
    }
    r
}

/// An in-band error event in the client's API, sent when a stream breaks after its first byte.
fn inband_error(api: Api, message: &str) -> Bytes {
    Bytes::from(match api {
        Api::OpenAi => openai::stream_error(ErrorKind::BadGateway, message),
        Api::Anthropic => anthropic::event_error(ErrorKind::Overloaded, message),
    })
}

/// Headers forwarded upstream: not the hop-by-hop ones, and not the client's
/// `x-chaosgate-*` (forced faults, probe marks) unless `pass_chaosgate` (test only).
fn forward_headers(h: &HeaderMap, pass_chaosgate: bool) -> Vec<(hyper::header::HeaderName, HeaderValue)> {
    h.iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade"
            ) && (pass_chaosgate || !k.as_str().starts_with("x-chaosgate-"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// How an upstream attempt went before anything reached the client.
enum Attempt {
    /// Got a response the client should see (success, or a failure with nowhere else to go).
    Respond(Response),
    /// Failed; try the next target (or retry).
    Failed(Failure),
}

async fn proxy(State(state): State<Arc<GatewayState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let api = client_api(&path);
    let too_large = |what: String| {
        client_error(
            api,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{what} exceeds the gateway's limit of {MAX_REQUEST_BODY_BYTES} bytes"),
        )
    };
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_REQUEST_BODY_BYTES as u64) {
        return too_large(format!("request body of {n} bytes"));
    }
    let body = match net::read_body(body, MAX_REQUEST_BODY_BYTES, net::BODY_READ_TIMEOUT).await {
        Ok(b) => b,
        Err(net::BodyError::TooLarge(_)) => return too_large("request body".into()),
        Err(net::BodyError::TimedOut(t)) => {
            return client_error(
                api,
                StatusCode::REQUEST_TIMEOUT,
                &format!("the request body did not arrive within {} s", t.as_secs_f64()),
            )
        }
        Err(net::BodyError::Unreadable(e)) => {
            return client_error(
                api,
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {e}"),
            )
        }
    };
    let stream = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["stream"].as_bool())
        .unwrap_or(false);
    let fwd = forward_headers(&parts.headers, state.pass_chaosgate_headers);
    state.requests.fetch_add(1, Ordering::Relaxed);
    let now = state.now();
    let order = {
        let mut p = state.policy();
        let o = p.plan(now);
        state.flush_events(&mut p);
        o
    };
    if order.is_empty() {
        state.rejected_all_down.fetch_add(1, Ordering::Relaxed);
        state.failed.fetch_add(1, Ordering::Relaxed);
        return gateway_error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "chaosgate gateway: every target is unavailable",
        );
    }
    let fallback = state.policy().config().fallback_on_failure;
    let mut last: Option<Response> = None;
    let mut tried: Option<usize> = None;
    for (k, &i) in order.iter().enumerate() {
        if !state.policy().admit(state.now(), i) {
            continue;
        }
        if let Some(prev) = tried {
            let mut p = state.policy();
            p.on_fallback(state.now(), prev, i);
            state.flush_events(&mut p);
        }
        tried = Some(i);
        let mut attempt = 0u32;
        loop {
            match attempt_once(&state, i, &path, &fwd, body.clone(), stream, api).await {
                Attempt::Respond(r) => return r,
                Attempt::Failed(f) => {
                    attempt += 1;
                    let wait = {
                        let mut p = state.policy();
                        let w = p.retry(state.now(), i, attempt, f);
                        state.flush_events(&mut p);
                        w
                    };
                    match wait {
                        Some(w) => {
                            tokio::time::sleep(Duration::from_nanos(w)).await;
                            if !state.policy().admit(state.now(), i) {
                                break;
                            }
                        }
                        None => {
                            last = Some(match f {
                                Failure::Status(Answer { status, .. }) => gateway_error(
                                    api,
                                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                                    &format!("upstream {} answered {status}", state.policy().target_name(i)),
                                ),
                                Failure::Connect => gateway_error(
                                    api,
                                    StatusCode::BAD_GATEWAY,
                                    &format!("upstream {} did not answer in time", state.policy().target_name(i)),
                                ),
                            });
                            break;
                        }
                    }
                }
            }
        }
        if !fallback || k + 1 == order.len() {
            break;
        }
    }
    state.failed.fetch_add(1, Ordering::Relaxed);
    last.unwrap_or_else(|| {
        gateway_error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "chaosgate gateway: every target is unavailable",
        )
    })
}

async fn attempt_once(
    state: &Arc<GatewayState>,
    i: usize,
    path: &str,
    fwd: &[(hyper::header::HeaderName, HeaderValue)],
    body: Bytes,
    stream: bool,
    api: Api,
) -> Attempt {
    let (timeout, ttft, stall, name) = {
        let p = state.policy();
        let c = p.config();
        (
            c.request_timeout.0,
            c.ttft_timeout.map(|d| d.0),
            c.stall_timeout.map(|d| d.0),
            p.target_name(i).to_string(),
        )
    };
    let started = state.now();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_nanos(timeout);
    let mut rb = hyper::Request::post(format!("{}{}", state.bases[i], path));
    for (k, v) in fwd {
        rb = rb.header(k, v);
    }
    let Ok(req) = rb.body(Full::new(body)) else {
        return Attempt::Failed(Failure::Connect);
    };
    let head_deadline = match (stream, ttft) {
        (true, Some(t)) => deadline.min(t0 + Duration::from_nanos(t)),
        _ => deadline,
    };
    let fail = |f: Failure| {
        let mut p = state.policy();
        // timeouts and connection errors count toward the breaker only if configured so
        let counts = p.config().failure.timeout;
        p.on_result(state.now(), i, counts, state.now().saturating_sub(started));
        state.flush_events(&mut p);
        Attempt::Failed(f)
    };
    let resp = match tokio::time::timeout_at(head_deadline, state.client.request(req)).await {
        Ok(Ok(r)) => r,
        _ => return fail(Failure::Connect),
    };
    let status = resp.status();
    let mut headers = resp.headers().clone();
    let mut upstream = resp.into_body();
    if !headers.contains_key("x-chaosgate-provider") {
        if let Ok(v) = HeaderValue::from_str(&name) {
            headers.insert("x-chaosgate-provider", v);
        }
    }
    let failure_status = state.policy().is_failure_status(status.as_u16());
    // A stream is what the upstream sends as one, whatever the request asked for: an
    // endpoint that ignores `stream: true` (embeddings) answers plain JSON, relayed as such.
    let event_stream = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    if failure_status || !status.is_success() || !event_stream {
        // not a stream: read a bounded prefix (within the deadline), then decide
        let limit = if failure_status {
            ERROR_PREFIX_BYTES
        } else {
            PLAIN_PREFIX_BYTES
        };
        let Ok((bytes, whole)) = read_prefix(&mut upstream, limit, deadline).await else {
            return fail(Failure::Connect);
        };
        if failure_status {
            // the one classification of a provider's answer (shared with the simulator);
            // the wall clock is read here, at the edge, for an HTTP-date Retry-After
            let answer = classify(status.as_u16(), &headers, &bytes, std::time::SystemTime::now());
            let retryable = answer.retryable();
            let f = Failure::Status(answer);
            let mut p = state.policy();
            p.on_result(state.now(), i, true, state.now().saturating_sub(started));
            state.flush_events(&mut p);
            drop(p);
            if !retryable {
                // a quota error is the provider's final word: pass it on as it is
                let body = if whole {
                    Body::from(bytes)
                } else {
                    relay_rest(bytes, upstream, deadline, None)
                };
                return Attempt::Respond(build(status, &headers, body));
            }
            return Attempt::Failed(f);
        }
        if !whole {
            // longer than the gateway holds: committed now, the rest relayed as it comes;
            // the attempt's result is recorded when the body ends
            let rec = Record {
                state: state.clone(),
                target: i,
                started,
                done: false,
            };
            let body = relay_rest(bytes, upstream, deadline, Some(rec));
            return Attempt::Respond(build(status, &headers, body));
        }
        let mut p = state.policy();
        p.on_result(state.now(), i, false, state.now().saturating_sub(started));
        state.flush_events(&mut p);
        return Attempt::Respond(build(status, &headers, Body::from(bytes)));
    }
    // a stream: wait for the first chunk before committing (failover stays possible)
    let first_deadline = match ttft {
        Some(t) => deadline.min(t0 + Duration::from_nanos(t)),
        None => deadline,
    };
    let first = loop {
        match tokio::time::timeout_at(first_deadline, upstream.frame()).await {
            Ok(Some(Ok(f))) => match f.into_data() {
                Ok(d) if !d.is_empty() => break d,
                _ => continue,
            },
            _ => return fail(Failure::Connect),
        }
    };
    let mut parser = sse::Parser::light(api);
    let _ = parser.push(&first);
    let st = state.clone();
    let body_stream = futures_util::stream::unfold(
        (Some(first), upstream, parser, false),
        move |(pending, mut up, mut parser, done)| {
            let st = st.clone();
            async move {
                if done {
                    return None;
                }
                if let Some(b) = pending {
                    return Some((Ok::<Bytes, std::io::Error>(b), (None, up, parser, false)));
                }
                let wait = stall.map_or(deadline, |s| deadline.min(Instant::now() + Duration::from_nanos(s)));
                let outcome = loop {
                    match tokio::time::timeout_at(wait, up.frame()).await {
                        Ok(Some(Ok(f))) => match f.into_data() {
                            Ok(d) => {
                                // pass on, with whatever else has already arrived (no waiting)
                                let d = coalesce_ready(&mut up, d);
                                let ev = parser.push(&d);
                                if ev.contains(&sse::Event::Error) {
                                    break Err((d, "upstream sent an error event"));
                                }
                                return Some((Ok(d), (None, up, parser, false)));
                            }
                            Err(_) => continue,
                        },
                        Ok(None) if parser.terminal => break Ok(()),
                        Ok(None) | Ok(Some(Err(_))) => {
                            break Err((Bytes::new(), "upstream stream ended without its terminal event"))
                        }
                        Err(_) => break Err((Bytes::new(), "upstream stream stalled")),
                    }
                };
                let now = st.now();
                let mut p = st.policy();
                let rules = &p.config().failure;
                let counts = match &outcome {
                    Ok(()) => false,
                    Err((_, why)) if why.contains("error event") => rules.stream_error,
                    Err((_, why)) if why.contains("stalled") => rules.timeout,
                    Err(_) => rules.stream_cut,
                };
                p.on_result(now, i, counts, now.saturating_sub(started));
                st.flush_events(&mut p);
                drop(p);
                match outcome {
                    Ok(()) => None,
                    Err((last, why)) => {
                        st.failed.fetch_add(1, Ordering::Relaxed);
                        let mut b = last.to_vec();
                        if !b.is_empty() {
                            // the upstream's own error event is passed on as it is
                            return Some((Ok(Bytes::from(b)), (None, up, parser, true)));
                        }
                        b.extend_from_slice(&inband_error(api, &format!("chaosgate gateway: {why}")));
                        Some((Ok(Bytes::from(b)), (None, up, parser, true)))
                    }
                }
            }
        },
    );
    Attempt::Respond(build(status, &headers, Body::from_stream(body_stream)))
}

/// Reads `body` until it ends or at least `limit` bytes are held (one frame more at most),
/// within `deadline`: the bytes, and whether they are the whole body. `Err` when the body
/// breaks or the deadline passes first.
async fn read_prefix(body: &mut hyper::body::Incoming, limit: usize, deadline: Instant) -> Result<(Bytes, bool), ()> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Ok(None) => return Ok((Bytes::from(buf), true)),
            Ok(Some(Err(_))) | Err(_) => return Err(()),
        }
    }
    Ok((Bytes::from(buf), hyper::body::Body::is_end_stream(body)))
}

/// Where a relayed plain body records its attempt's result when it ends. Recorded once:
/// by [`Record::finish`], or on drop (the client went away before the end: not the
/// upstream's failure) so that no admitted attempt is left unreported to the breaker.
struct Record {
    state: Arc<GatewayState>,
    target: usize,
    started: Nanos,
    done: bool,
}

impl Record {
    fn finish(&mut self, ok: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let st = &self.state;
        let now = st.now();
        let mut p = st.policy();
        let counts = !ok && p.config().failure.timeout;
        p.on_result(now, self.target, counts, now.saturating_sub(self.started));
        st.flush_events(&mut p);
        drop(p);
        if !ok {
            st.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish(true);
    }
}

/// `prefix`, then the rest of `up` as it arrives (until `deadline`). If the upstream breaks
/// or the deadline passes, the client's body ends with an error (hyper aborts the
/// response, so the client sees a truncated body, never a clean short one).
fn relay_rest(prefix: Bytes, up: hyper::body::Incoming, deadline: Instant, record: Option<Record>) -> Body {
    let s = futures_util::stream::unfold(
        (Some(prefix), Some(up), record),
        move |(pending, up, mut record)| async move {
            if let Some(b) = pending {
                return Some((Ok(b), (None, up, record)));
            }
            let mut up = up?;
            loop {
                match tokio::time::timeout_at(deadline, up.frame()).await {
                    Ok(Some(Ok(f))) => {
                        if let Ok(d) = f.into_data() {
                            return Some((Ok(d), (None, Some(up), record)));
                        }
                    }
                    Ok(None) => {
                        if let Some(mut r) = record.take() {
                            r.finish(true);
                        }
                        return None;
                    }
                    Ok(Some(Err(_))) | Err(_) => {
                        if let Some(mut r) = record.take() {
                            r.finish(false);
                        }
                        let e = std::io::Error::other("chaosgate gateway: upstream body broke or timed out");
                        return Some((Err(e), (None, None, None)));
                    }
                }
            }
        },
    );
    Body::from_stream(s)
}

/// Appends the frames that are already available, without waiting for more: fewer writes
/// to the client, no added latency.
fn coalesce_ready(up: &mut hyper::body::Incoming, first: Bytes) -> Bytes {
    use futures_util::FutureExt;
    let mut buf: Option<Vec<u8>> = None;
    while buf.as_ref().map_or(first.len(), Vec::len) < 64 * 1024 {
        match up.frame().now_or_never() {
            Some(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    buf.get_or_insert_with(|| first.to_vec()).extend_from_slice(&d);
                }
            }
            _ => break,
        }
    }
    buf.map_or(first, Bytes::from)
}

fn build(status: hyper::StatusCode, headers: &hyper::HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "keep-alive"
        ) {
            r.headers_mut().insert(k.clone(), v.clone());
        }
    }
    r
}

/// Query of the event log.
#[derive(Debug, serde::Deserialize)]
struct EventQuery {
    #[serde(default)]
    since: u64,
}

async fn events(
    State(state): State<Arc<GatewayState>>,
    q: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return client_error(
            Api::OpenAi,
            StatusCode::BAD_REQUEST,
            "query takes since=SEQ (a whole number)",
        );
    };
    let log = state.events.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<serde_json::Value> = log
        .iter()
        .filter(|(s, _)| *s >= q.since)
        .map(|(s, e)| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["seq"] = serde_json::json!(s);
            v
        })
        .collect();
    axum::Json(serde_json::json!({ "events": items })).into_response()
}

async fn metrics(State(state): State<Arc<GatewayState>>) -> Response {
    use crate::promtext::{Exposition, Kind, CONTENT_TYPE};
    let mut e = Exposition::new();
    for (name, counter, help) in [
        (
            "chaosgate_gateway_requests_total",
            &state.requests,
            "Client requests received by the gateway.",
        ),
        (
            "chaosgate_gateway_failed_total",
            &state.failed,
            "Client requests that ended in an error the gateway returned or passed on.",
        ),
        (
            "chaosgate_gateway_fallbacks_total",
            &state.fallbacks,
            "Moves from one target to the next within a request.",
        ),
        (
            "chaosgate_gateway_retries_total",
            &state.retries,
            "Retries of the same target within a request.",
        ),
        (
            "chaosgate_gateway_all_down_total",
            &state.rejected_all_down,
            "Client requests refused because no target was available.",
        ),
    ] {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], counter.load(Ordering::Relaxed));
    }
    let p = state.policy();
    let names: Vec<String> = (0..state.bases.len()).map(|i| p.target_name(i).to_string()).collect();
    e.family(
        "chaosgate_gateway_target_healthy",
        Kind::Gauge,
        "1 while the gateway counts the target healthy, else 0.",
    );
    for (i, name) in names.iter().enumerate() {
        e.sample(
            "chaosgate_gateway_target_healthy",
            &[("target", name)],
            u8::from(p.healthy(i)),
        );
    }
    e.family(
        "chaosgate_gateway_breaker_open",
        Kind::Gauge,
        "1 while the target's circuit breaker is open (rejecting), else 0.",
    );
    for (i, name) in names.iter().enumerate() {
        let open = matches!(p.breaker_state(i), Some(super::BreakerState::Open { .. }));
        e.sample("chaosgate_gateway_breaker_open", &[("target", name)], u8::from(open));
    }
    drop(p);
    ([("content-type", CONTENT_TYPE)], e.finish()).into_response()
}
