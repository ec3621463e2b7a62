//! The live reference gateway: an HTTP proxy (served by [`front`], its own HTTP/1.1 server) that runs [`Policy`] against real upstreams.
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

use crate::gateway::attempt::{self, Chunk, Limits, Outcome, Step, Walk, Watch};
use crate::gateway::{GatewayEvent, Policy, ProbeKind};
use crate::live::front;
use crate::live::net::{self, ServerHandle};
use crate::live::upstream::Body as UpBody;
use crate::live::wiring::ProxyConfig;
use crate::provider::classify::{classify, Answer};
use crate::provider::sse;
use crate::provider::{anthropic, openai, Api, ErrorKind};
use crate::time::Nanos;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
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
pub const MAX_REQUEST_BODY_BYTES: usize = crate::live::mock::DEFAULT_MAX_BODY_BYTES;
/// Most header lines in a client's request (431 over it).
pub const MAX_REQUEST_HEADERS: usize = 100;
/// Largest request head (target URI plus every header name and value), in bytes (431 over it).
pub const MAX_REQUEST_HEAD_BYTES: usize = 32 * 1024;
/// How long a client may take to send a request head, from when its connection starts
/// waiting for one (so also how long a keep-alive connection may stay idle).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write to a client may wait for it to take bytes.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// Time zero of the policy's clock (set at spawn, or by [`GatewayState::start_clock_at`]
    /// for a gateway spawned held): probes start from it.
    start: std::sync::OnceLock<Instant>,
    client: Http,
    /// The upstream client of client requests (probes go through `client`).
    upstream: Arc<crate::live::upstream::Client>,
    /// The policy's per-attempt limits (its config does not change).
    limits: Limits,
    /// Per target: its name as an `x-chaosgate-provider` value.
    provider_header: Vec<Option<HeaderValue>>,
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
    /// When the gateway's clock started (its events' time zero; now, if it is held).
    pub fn start(&self) -> Instant {
        self.start.get().copied().unwrap_or_else(Instant::now)
    }

    /// ns since the gateway's clock started (0 before).
    pub fn now(&self) -> Nanos {
        self.start.get().map_or(0, |s| {
            u64::try_from(Instant::now().saturating_duration_since(*s).as_nanos()).unwrap_or(Nanos::MAX)
        })
    }

    /// Starts a held gateway's clock at `t0` (the traffic's time zero, as the mocks' clocks
    /// start): its health probes run from then, in step with the simulator's, which probes
    /// from the traffic's t = 0. No effect on a clock already started.
    pub fn start_clock_at(&self, t0: Instant) {
        if self.start.set(t0).is_ok() {
            self.probe_wake.notify_one();
        }
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
                crate::gateway::EventKind::Fallback { .. } => self.fallbacks.fetch_add(1, Ordering::Relaxed),
                crate::gateway::EventKind::Retry { .. } => self.retries.fetch_add(1, Ordering::Relaxed),
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

/// Starts the gateway on `listener`, its clock and probes at once. `events_path` also
/// writes events as JSON lines.
pub async fn spawn(
    cfg: ProxyConfig,
    listener: tokio::net::TcpListener,
    seed: u64,
    events_path: Option<&std::path::Path>,
) -> anyhow::Result<GatewayHandle> {
    let h = spawn_held(cfg, listener, seed, events_path).await?;
    h.state.start_clock_at(Instant::now());
    Ok(h)
}

/// [`spawn`], with the clock (and the health probes) held until
/// [`GatewayState::start_clock_at`].
pub async fn spawn_held(
    cfg: ProxyConfig,
    listener: tokio::net::TcpListener,
    seed: u64,
    events_path: Option<&std::path::Path>,
) -> anyhow::Result<GatewayHandle> {
    spawn_replica_held(cfg, listener, seed, 0, events_path).await
}

/// [`spawn_held`] as replica `replica` of `cfg.policy.replicas`: its own policy
/// ([`Policy::replica`]), probes and event log; its events name it.
pub async fn spawn_replica_held(
    cfg: ProxyConfig,
    listener: tokio::net::TcpListener,
    seed: u64,
    replica: u32,
    events_path: Option<&std::path::Path>,
) -> anyhow::Result<GatewayHandle> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
        anyhow::bail!("invalid gateway config:\n  {}", msgs.join("\n  "));
    }
    let bases = cfg.bases();
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
    let workers = cfg.workers();
    let upstream = Arc::new(crate::live::upstream::Client::new(&bases, workers)?);
    let limits = Limits::of(&cfg.policy);
    let provider_header = cfg
        .policy
        .targets
        .iter()
        .map(|t| HeaderValue::from_str(&t.name).ok())
        .collect();
    let state = Arc::new(GatewayState {
        policy: Mutex::new(Policy::replica(cfg.policy, seed, replica)),
        start: std::sync::OnceLock::new(),
        client,
        upstream,
        limits,
        provider_header,
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
    let limits = front::Limits {
        max_headers: MAX_REQUEST_HEADERS,
        max_head_bytes: MAX_REQUEST_HEAD_BYTES,
        max_body_bytes: MAX_REQUEST_BODY_BYTES,
        head_timeout: HEAD_TIMEOUT,
        body_timeout: net::BODY_READ_TIMEOUT,
        write_timeout: WRITE_TIMEOUT,
    };
    let server = front::spawn(
        listener,
        Arc::new(Gateway(state.clone())),
        limits,
        workers,
        crate::live::upstream::set_worker,
    )?;
    Ok(GatewayHandle { server, state, probes })
}

/// The gateway as its HTTP server ([`front`]) sees it: the routes, and the wording of
/// what the server refuses.
struct Gateway(Arc<GatewayState>);

impl front::Service for Gateway {
    fn call(&self, req: axum::http::Request<Bytes>) -> impl std::future::Future<Output = Response> + Send + 'static {
        route(self.0.clone(), req)
    }

    fn refuse(&self, path: &str, why: &front::Refusal) -> Response {
        client_error(error_api(path), why.status(), &why.to_string())
    }
}

/// The gateway's routes: the provider APIs it proxies, `/health`, `/metrics` and the event
/// log (`HEAD` as `GET`); another method on them is a 405, any other path a 404.
async fn route(state: Arc<GatewayState>, req: axum::http::Request<Bytes>) -> Response {
    let (parts, body) = req.into_parts();
    let m = &parts.method;
    let get = m == axum::http::Method::GET || m == axum::http::Method::HEAD;
    match parts.uri.path() {
        "/v1/chat/completions" | "/v1/embeddings" | "/v1/messages" if m == axum::http::Method::POST => {
            proxy(state, parts, body).await
        }
        "/health" if get => ([("content-type", "application/json")], "{\"status\":\"ok\"}").into_response(),
        "/metrics" if get => metrics(&state),
        "/_chaosgate/events" if get => events(&state, &parts.uri),
        "/v1/chat/completions" | "/v1/embeddings" | "/v1/messages" | "/health" | "/metrics" | "/_chaosgate/events" => {
            method_not_allowed(m, parts.uri.path())
        }
        path => not_found(m, path),
    }
}

/// 404 for a path the gateway does not serve, worded as the providers word it.
fn not_found(method: &axum::http::Method, path: &str) -> Response {
    client_error(
        error_api(path),
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {path})"),
    )
}

/// 405 for a known path with another method.
fn method_not_allowed(method: &axum::http::Method, path: &str) -> Response {
    client_error(
        error_api(path),
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Invalid method for URL ({method} {path})"),
    )
}

async fn probe_loop(state: Arc<GatewayState>) {
    // no probe before the clock starts
    while state.start.get().is_none() {
        state.probe_wake.notified().await;
    }
    loop {
        let next = state.policy().next_probe();
        let Some((due, i)) = next else {
            state.probe_wake.notified().await;
            continue;
        };
        let at = state.start() + Duration::from_nanos(due);
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
            let ok = tokio::time::timeout_at(st.start() + Duration::from_nanos(deadline), probe(&st, i, kind)).await;
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
        ProbeKind::Completion => {
            // on the target's own API (OpenAI when the config does not say)
            let api = state.policy().config().targets[i].api.unwrap_or(Api::OpenAi);
            let (path, body) = ProbeKind::completion_request(api);
            hyper::Request::post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .header("anthropic-version", "2023-06-01")
                .header("x-chaosgate-probe", "1")
                .body(Full::new(Bytes::from_static(body)))
        }
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

/// Whether a client's header is forwarded upstream: not the hop-by-hop ones, and not the
/// client's `x-chaosgate-*` (forced faults, probe marks) unless `pass_chaosgate` (test only).
fn forwarded(k: &hyper::header::HeaderName, pass_chaosgate: bool) -> bool {
    !matches!(
        k.as_str(),
        "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade"
    ) && (pass_chaosgate || !k.as_str().starts_with("x-chaosgate-"))
}

crate::provider::json_keys!(StreamFlag {
    stream: Option<bool> = "stream",
});

/// Whether a request body asks to stream: a JSON object whose top-level `"stream"` is
/// `true` (the last one, if repeated). Anything else — not JSON, not an object, no such
/// key, another type — is `false`: the answer of parsing the body into a
/// `serde_json::Value` and reading `["stream"]`. The plain body is read in one pass without
/// building the tree (`json_keys!`: every other key still parsed as a `Value` would); a key
/// twice or a value of another type takes the `Value` way.
fn wants_stream(body: &[u8]) -> bool {
    // UTF-8 checked once for the whole body, not string by string (`from_slice`)
    let flag = std::str::from_utf8(body)
        .ok()
        .and_then(|b| serde_json::from_str::<StreamFlag<'_>>(b).ok());
    match flag {
        Some(f) => f.stream == Some(true),
        None => {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("stream")?.as_bool())
                == Some(true)
        }
    }
}

/// How an upstream attempt went.
enum Attempt {
    /// Passed on to the client as it arrives (a stream, or a plain body longer than the
    /// gateway holds): it reports its own outcome to the policy when it ends.
    Passed(Response),
    /// Ended before anything was passed on: the outcome, and the answer to pass on should
    /// the walk stop here (a held body).
    Ended(Outcome, Option<Response>),
}

/// A proxied request (its body read whole by the server, within the gateway's limits).
async fn proxy(state: Arc<GatewayState>, parts: axum::http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path();
    let api = client_api(path);
    let stream = wants_stream(&body);
    state.requests.fetch_add(1, Ordering::Relaxed);
    let mut walk = Walk::new();
    // the plan and the walk's first step under one lock
    let (order, mut step) = {
        let mut p = state.policy();
        let now = state.now();
        let o = p.plan(now);
        let s = if o.is_empty() {
            Step::GiveUp
        } else {
            walk.next(&mut p, now, &o)
        };
        state.flush_events(&mut p);
        (o, s)
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
    // the walk through the targets, shared with the simulator (gateway/attempt.rs)
    let mut last: Option<Outcome> = None;
    let mut first = true;
    loop {
        if !std::mem::replace(&mut first, false) {
            step = {
                let mut p = state.policy();
                let s = walk.next(&mut p, state.now(), &order);
                state.flush_events(&mut p);
                s
            };
        }
        let Step::Try(i) = step else { break };
        let started = state.now();
        let (outcome, held) = match attempt_once(&state, i, started, path, &parts.headers, &body, stream, api).await {
            Attempt::Passed(r) => return r,
            Attempt::Ended(o, held) => (o, held),
        };
        last = Some(outcome);
        let step = {
            let mut p = state.policy();
            let now = state.now();
            let s = walk.after(&mut p, now, i, outcome, false, now.saturating_sub(started));
            state.flush_events(&mut p);
            s
        };
        match step {
            Step::Done => {
                if !outcome.is_ok() {
                    state.failed.fetch_add(1, Ordering::Relaxed);
                }
                return held.unwrap_or_else(|| attempt_error(&state, api, i, &outcome));
            }
            Step::Wait(w) => tokio::time::sleep(Duration::from_nanos(w)).await,
            Step::GiveUp => {
                state.failed.fetch_add(1, Ordering::Relaxed);
                return attempt_error(&state, api, i, &outcome);
            }
            Step::Next | Step::Try(_) => {}
        }
    }
    state.failed.fetch_add(1, Ordering::Relaxed);
    match (last, walk.tried()) {
        (Some(o), Some(i)) => attempt_error(&state, api, i, &o),
        _ => gateway_error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "chaosgate gateway: every target is unavailable",
        ),
    }
}

/// The gateway's own answer for a request whose last attempt, on target `i`, ended with
/// `o` and left nothing to pass on: its status from [`attempt::reply_status`].
fn attempt_error(state: &GatewayState, api: Api, i: usize, o: &Outcome) -> Response {
    let status = attempt::reply_status(Some(o));
    let name = state.policy().target_name(i).to_string();
    let message = match o {
        Outcome::Answer(_) => format!("upstream {name} answered {status}"),
        Outcome::Timeout | Outcome::TtftTimeout => format!("upstream {name} did not answer in time"),
        _ => format!("upstream {name} closed the connection"),
    };
    let mut r = gateway_error(
        api,
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        &message,
    );
    // the target whose failure this is (the client's report attributes it)
    if let Ok(v) = HeaderValue::from_str(&name) {
        r.headers_mut().insert("x-chaosgate-provider", v);
    }
    r
}

/// One attempt on target `i`, begun at `started` (the policy's clock), watched against the
/// gateway's limits by [`Watch`] (the same rules the simulator settles its timelines by).
/// Only a stream passed on reports its outcome to the policy itself (when it ends); every
/// other outcome goes back to the walk.
#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    state: &Arc<GatewayState>,
    i: usize,
    started: Nanos,
    path: &str,
    client_headers: &HeaderMap,
    body: &Bytes,
    stream: bool,
    api: Api,
) -> Attempt {
    let lim = state.limits;
    let up = Upstream {
        state,
        i,
        started,
        api,
        t0: Instant::now(),
    };
    let mut watch = Watch::new(lim, stream);
    let resp = match up.send(path, client_headers, body, &watch).await {
        Ok(r) => r,
        Err(o) => return Attempt::Ended(o, None),
    };
    let crate::live::upstream::Response {
        status,
        mut headers,
        body: upstream,
    } = resp;
    if !headers.contains_key("x-chaosgate-provider") {
        if let Some(v) = &state.provider_header[i] {
            headers.insert("x-chaosgate-provider", v.clone());
        }
    }
    // A stream is what the upstream sends as one, whatever the request asked for: an
    // endpoint that ignores `stream: true` (embeddings) answers plain JSON, relayed as such.
    let ok_stream = status.is_success() && is_event_stream(&headers);
    watch.head(up.off(Instant::now()), status.as_u16(), ok_stream);
    if ok_stream {
        up.pass_stream(status, headers, upstream, watch).await
    } else {
        up.hold(status, headers, upstream, watch).await
    }
}

/// Whether a response's `content-type` is `text/event-stream`.
fn is_event_stream(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// The nanoseconds from `t0` to `t` (0 before it).
fn since(t0: Instant, t: Instant) -> Nanos {
    u64::try_from(t.saturating_duration_since(t0).as_nanos()).unwrap_or(Nanos::MAX)
}

/// An attempt under way on one target: where its outcome goes, and its clock (the
/// [`Watch`]'s times are offsets from `t0`, when the attempt began).
struct Upstream<'a> {
    state: &'a Arc<GatewayState>,
    i: usize,
    started: Nanos,
    api: Api,
    t0: Instant,
}

impl Upstream<'_> {
    fn off(&self, t: Instant) -> Nanos {
        since(self.t0, t)
    }

    /// When the watch's current deadline passes.
    fn due(&self, watch: &Watch) -> Instant {
        self.t0 + Duration::from_nanos(watch.deadline())
    }

    /// Sends the request upstream and waits for the response head within the watch's
    /// deadline; else how the attempt ended.
    async fn send(
        &self,
        path: &str,
        client_headers: &HeaderMap,
        body: &Bytes,
        watch: &Watch,
    ) -> Result<crate::live::upstream::Response, Outcome> {
        let pass = self.state.pass_chaosgate_headers;
        let req = self
            .state
            .upstream
            .post(self.i, path, client_headers, |k| forwarded(k, pass), body);
        match tokio::time::timeout_at(self.due(watch), req).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(watch.end(false, Answer::status(0))),
            Err(_) => Err(watch.expired()),
        }
    }

    /// A held body (plain, or an error answer): reads a bounded prefix within the deadline,
    /// classifies the answer, then holds it whole, or passes on a long 2xx body as it comes
    /// (reporting its outcome when it ends), or holds a long error answer's relay should the
    /// walk stop here.
    async fn hold(
        &self,
        status: hyper::StatusCode,
        headers: hyper::HeaderMap,
        mut upstream: UpBody,
        watch: Watch,
    ) -> Attempt {
        let limit = if status.is_success() {
            PLAIN_PREFIX_BYTES
        } else {
            ERROR_PREFIX_BYTES
        };
        let deadline = self.due(&watch);
        let (bytes, whole) = match read_prefix(&mut upstream, limit, deadline).await {
            Ok(b) => b,
            Err(Broke::TimedOut) => return Attempt::Ended(watch.expired(), None),
            Err(Broke::Broken) => return Attempt::Ended(watch.end(false, Answer::status(status.as_u16())), None),
        };
        // the one classification of a provider's answer (shared with the simulator); the
        // wall clock is read here, at the edge, for an HTTP-date Retry-After
        let answer = if status.is_success() {
            Answer::status(status.as_u16())
        } else {
            classify(status.as_u16(), &headers, &bytes, std::time::SystemTime::now())
        };
        if whole {
            let r = build(status, headers, Body::from(bytes));
            return Attempt::Ended(watch.end(true, answer), Some(r));
        }
        if status.is_success() {
            // longer than the gateway holds: passed on now, the rest relayed as it comes;
            // the attempt's outcome is reported when the body ends
            let rec = Record {
                state: self.state.clone(),
                target: self.i,
                started: self.started,
                done: false,
            };
            return Attempt::Passed(build(status, headers, relay_rest(bytes, upstream, deadline, Some(rec))));
        }
        // an error answer longer than its classified prefix: passed on whole if it stands
        let r = build(status, headers, relay_rest(bytes, upstream, deadline, None));
        Attempt::Ended(Outcome::Answer(answer), Some(r))
    }

    /// A 2xx event stream: waits for its first chunk (failover stays possible until then),
    /// then passes it on through a [`Relay`].
    async fn pass_stream(
        &self,
        status: hyper::StatusCode,
        headers: hyper::HeaderMap,
        mut upstream: UpBody,
        mut watch: Watch,
    ) -> Attempt {
        let first = match self
            .first_chunk(&mut upstream, &watch, Answer::status(status.as_u16()))
            .await
        {
            Ok(d) => d,
            Err(o) => return Attempt::Ended(o, None),
        };
        let mut parser = sse::Parser::light(self.api);
        let kind = chunk_kind(&parser.push(&first));
        let ended = watch.chunk(self.off(Instant::now()), kind);
        let relay = Relay {
            st: self.state.clone(),
            i: self.i,
            started: self.started,
            api: self.api,
            t0: self.t0,
            ok: Answer::status(status.as_u16()),
            up: Some(upstream),
            parser,
            watch,
            pending: Some(first),
            ended,
            reported: false,
            done: false,
        };
        let body_stream = futures_util::stream::unfold(relay, |mut r| async move {
            let b = r.next().await?;
            Some((Ok::<Bytes, std::io::Error>(b), r))
        });
        Attempt::Passed(build(status, headers, Body::from_stream(body_stream)))
    }

    /// The stream's first non-empty chunk within the watch's deadline; else how the attempt
    /// ended (`ok`: the answer of a stream that ends cleanly before any chunk).
    async fn first_chunk(&self, upstream: &mut UpBody, watch: &Watch, ok: Answer) -> Result<Bytes, Outcome> {
        loop {
            match tokio::time::timeout_at(self.due(watch), upstream.next()).await {
                Ok(Some(Ok(d))) if d.is_empty() => continue,
                Ok(Some(Ok(d))) => return Ok(d),
                Ok(None) => return Err(watch.end(true, ok)),
                Ok(Some(Err(_))) => return Err(watch.end(false, ok)),
                Err(_) => return Err(watch.expired()),
            }
        }
    }
}

/// A stream passed on to the client: its upstream, watched against the limits (the same
/// [`Watch`] the simulator settles timelines with), relayed chunk by chunk. Its outcome
/// reaches the policy once, when the upstream's stream ends, breaks or stalls — also when
/// the client leaves first (a client may stop at a malformed chunk): the rest of the
/// upstream's stream is then read in the background, within the same deadlines, so the
/// breaker learns how the attempt really ended and no admitted attempt goes unreported.
struct Relay {
    st: Arc<GatewayState>,
    i: usize,
    started: Nanos,
    api: Api,
    t0: Instant,
    ok: Answer,
    up: Option<UpBody>,
    parser: sse::Parser,
    watch: Watch,
    /// A chunk read but not yet passed on.
    pending: Option<Bytes>,
    /// How the attempt ended, once it has.
    ended: Option<Outcome>,
    /// The outcome went to the policy.
    reported: bool,
    /// Nothing more for the client.
    done: bool,
}

impl Relay {
    fn off(&self, t: Instant) -> Nanos {
        since(self.t0, t)
    }

    /// Reads the upstream's next frame within the watch's deadline: the bytes to pass on,
    /// and `ended` set when the attempt ended.
    async fn pull(&mut self) -> Option<Bytes> {
        let Some(up) = self.up.as_mut() else {
            self.ended.get_or_insert(Outcome::StreamCut);
            return None;
        };
        let due = self.t0 + Duration::from_nanos(self.watch.deadline());
        // whatever has already arrived, in one piece (no waiting for more)
        match tokio::time::timeout_at(due, up.next()).await {
            Ok(Some(Ok(d))) => {
                let kind = chunk_kind(&self.parser.push(&d));
                let at = self.off(Instant::now());
                self.ended = self.watch.chunk(at, kind);
                Some(d)
            }
            Ok(None) => {
                self.ended = Some(self.watch.end(true, self.ok));
                None
            }
            Ok(Some(Err(_))) => {
                self.ended = Some(self.watch.end(false, self.ok));
                None
            }
            Err(_) => {
                self.ended = Some(self.watch.expired());
                None
            }
        }
    }

    /// Tells the policy how the attempt ended (once).
    fn report(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        self.up = None;
        let now = self.st.now();
        let mut p = self.st.policy();
        p.on_outcome(now, self.i, outcome, now.saturating_sub(self.started));
        self.st.flush_events(&mut p);
        drop(p);
        if !outcome.is_ok() {
            self.st.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The next bytes for the client (`None`: the body is over).
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(d) = self.pending.take() {
            return Some(d);
        }
        while self.ended.is_none() {
            if let Some(d) = self.pull().await {
                if !d.is_empty() {
                    return Some(d);
                }
            }
        }
        let outcome = self.ended.unwrap_or(Outcome::StreamCut);
        self.report(outcome);
        self.done = true;
        match outcome {
            // a clean end; or the upstream's own error event, already passed on
            o if o.is_ok() || o == Outcome::StreamError => None,
            o => {
                let why = match o {
                    Outcome::Stall | Outcome::Timeout => "upstream stream stalled",
                    _ => "upstream stream ended without its terminal event",
                };
                Some(inband_error(self.api, &format!("chaosgate gateway: {why}")))
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        if let Some(o) = self.ended {
            self.report(o);
            return;
        }
        // the client left before the upstream's stream ended: settle it in the background
        // (bounded by the watch's deadlines, so by `request_timeout`)
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.report(Outcome::StreamCut);
            return;
        };
        let mut rest = Relay {
            st: self.st.clone(),
            i: self.i,
            started: self.started,
            api: self.api,
            t0: self.t0,
            ok: self.ok,
            up: self.up.take(),
            parser: std::mem::replace(&mut self.parser, sse::Parser::light(self.api)),
            watch: self.watch,
            pending: None,
            ended: None,
            reported: false,
            done: false,
        };
        self.reported = true;
        rt.spawn(async move {
            while rest.ended.is_none() {
                rest.pull().await;
            }
            let o = rest.ended.unwrap_or(Outcome::StreamCut);
            rest.report(o);
        });
    }
}

/// What the gateway makes of a chunk's events: an error event ends the stream, the
/// terminal event marks a clean end, keep-alive pings alone renew nothing; anything else
/// (tokens, preamble, part of an event) is data.
fn chunk_kind(events: &[sse::Event]) -> Chunk {
    if events.contains(&sse::Event::Error) {
        Chunk::Error
    } else if events.contains(&sse::Event::Terminal) {
        Chunk::Terminal
    } else if !events.is_empty() && events.iter().all(|e| *e == sse::Event::Ping) {
        Chunk::KeepAlive
    } else {
        Chunk::Data
    }
}

/// Why a body read stopped short.
enum Broke {
    /// The deadline passed.
    TimedOut,
    /// The body broke.
    Broken,
}

/// Reads `body` until it ends or at least `limit` bytes are held (one frame more at most),
/// within `deadline`: the bytes, and whether they are the whole body. `Err` when the body
/// breaks or the deadline passes first.
async fn read_prefix(body: &mut UpBody, limit: usize, deadline: Instant) -> Result<(Bytes, bool), Broke> {
    let mut got = crate::live::http1::Gather::default();
    while got.len() < limit {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(d))) => got.push(d),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Broke::Broken),
            Err(_) => return Err(Broke::TimedOut),
        }
    }
    let bytes = got.finish();
    Ok((bytes, body.is_end_stream()))
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
    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let st = &self.state;
        let now = st.now();
        let mut p = st.policy();
        p.on_outcome(now, self.target, outcome, now.saturating_sub(self.started));
        st.flush_events(&mut p);
        drop(p);
        if !outcome.is_ok() {
            st.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish(Outcome::Answer(Answer::status(200)));
    }
}

/// `prefix`, then the rest of `up` as it arrives (until `deadline`). If the upstream breaks
/// or the deadline passes, the client's body ends with an error (hyper aborts the
/// response, so the client sees a truncated body, never a clean short one).
fn relay_rest(prefix: Bytes, up: UpBody, deadline: Instant, record: Option<Record>) -> Body {
    let s = futures_util::stream::unfold(
        (Some(prefix), Some(up), record),
        move |(pending, up, mut record)| async move {
            if let Some(b) = pending {
                return Some((Ok(b), (None, up, record)));
            }
            let mut up = up?;
            match tokio::time::timeout_at(deadline, up.next()).await {
                Ok(Some(Ok(d))) => Some((Ok(d), (None, Some(up), record))),
                Ok(None) => {
                    if let Some(mut r) = record.take() {
                        r.finish(Outcome::Answer(Answer::status(200)));
                    }
                    None
                }
                Ok(Some(Err(_))) | Err(_) => {
                    if let Some(mut r) = record.take() {
                        // a body relayed past the gateway's hold: broken or late, it
                        // counts like a timeout
                        r.finish(Outcome::Timeout);
                    }
                    let e = std::io::Error::other("chaosgate gateway: upstream body broke or timed out");
                    Some((Err(e), (None, None, None)))
                }
            }
        },
    );
    Body::from_stream(s)
}

/// The client's response: the upstream's status and end-to-end headers (one value per
/// name, as [`crate::live::upstream::Response::headers`] keeps them), with `body`.
fn build(status: hyper::StatusCode, headers: hyper::HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Query of the event log.
#[derive(Debug, serde::Deserialize)]
struct EventQuery {
    #[serde(default)]
    since: u64,
}

fn events(state: &GatewayState, uri: &axum::http::Uri) -> Response {
    let Ok(Query(q)) = Query::<EventQuery>::try_from_uri(uri) else {
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

fn metrics(state: &GatewayState) -> Response {
    use crate::live::promtext::{Exposition, Kind, CONTENT_TYPE};
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
        let open = matches!(p.breaker_state(i), Some(crate::gateway::BreakerState::Open { .. }));
        e.sample("chaosgate_gateway_breaker_open", &[("target", name)], u8::from(open));
    }
    e.family(
        "chaosgate_gateway_breaker_state",
        Kind::Gauge,
        "1 for the state the target's circuit breaker is in (closed, open, half_open), 0 for the others; targets without a breaker have none.",
    );
    for (i, name) in names.iter().enumerate() {
        if let Some(st) = p.breaker_state(i) {
            for s in crate::gateway::BreakerState::NAMES {
                e.sample(
                    "chaosgate_gateway_breaker_state",
                    &[("target", name), ("state", s)],
                    u8::from(st.name() == s),
                );
            }
        }
    }
    drop(p);
    ([("content-type", CONTENT_TYPE)], e.finish()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_what_the_content_type_says_whatever_its_case_and_parameters() {
        let with = |v: &str| {
            let mut h = hyper::HeaderMap::new();
            h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_event_stream(&h)
        };
        assert!(with("text/event-stream"));
        assert!(with(" Text/Event-Stream; charset=utf-8"));
        assert!(!with("application/json"));
        assert!(!is_event_stream(&hyper::HeaderMap::new()));
    }

    #[test]
    fn the_stream_flag_is_read_as_a_parsed_json_value_would_give_it() {
        let by_value = |b: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v["stream"].as_bool())
                .unwrap_or(false)
        };
        let cases: &[&[u8]] = &[
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            br#"{"stream":false}"#,
            br#"{"stream":true,"stream":false}"#,
            br#"{"stream":false,"stream":true}"#,
            br#"{"stream":"true"}"#,
            br#"{"stream":1}"#,
            br#"{"stream":null}"#,
            br#"{"str\u0065am":true}"#,
            br#"{"x":{"stream":true}}"#,
            br#"[{"stream":true}]"#,
            br#"{"stream":true,"n":1e400}"#,
            br#"{"stream":true,"n":-12.5e-3,"m":[1,-2,true,null,"\ud83d\ude00"]}"#,
            br#"{"stream":true,"s":"\ud800"}"#,
            b"{\"stream\":true,\"s\":\"\xff\"}",
            br#"{"stream":true} trailing"#,
            br#"{"stream":true"#,
            br#"  {"stream" : true }  "#,
            b"true",
            b"",
            br#"{"stream":true,}"#,
        ];
        for c in cases {
            assert_eq!(wants_stream(c), by_value(c), "{}", String::from_utf8_lossy(c));
        }
        assert!(wants_stream(cases[0]));
        assert!(!wants_stream(cases[2]) && wants_stream(cases[3]), "the last one counts");
    }
}
