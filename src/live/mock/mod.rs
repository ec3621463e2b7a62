//! The mock provider server: executes fault verdicts over real HTTP.
//!
//! [`router`] builds the axum `Router` of one provider (so tests can `oneshot` it), and
//! [`spawn`] serves it with TCP_NODELAY through [`crate::live::net`]. Each request is turned
//! into [`RequestFacts`], the provider's [`Plan`] (behind a mutex; it is pure and fast)
//! decides a [`Verdict`], and [`respond`] plays the verdict out on the wire in the
//! provider's own format.
//!
//! Routes: OpenAI `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
//! `GET /v1/models/{id}`; Anthropic `POST /v1/messages`, `POST /v1/messages/count_tokens`,
//! `GET /v1/models`, `GET /v1/models/{id}`; both `GET /health` and `GET /metrics`; the
//! admin API under `/_chaosgate/` (see [`admin`]).
//!
//! Every client error is answered in the API's own envelope ([`respond::rejection_response`]):
//! unknown route 404, 405, 413 (body over [`MockConfig::max_body_bytes`]), 415 (a body
//! declared as something other than JSON), 400 (bad JSON, bad fields, limits) and 431
//! (request headers over [`MAX_HEADER_BYTES`]).

mod admin;
mod metrics;
pub mod probe;
mod respond;

use crate::fault::{forced, Decision, Endpoint, Forced, Plan, Profile, RequestFacts};
use crate::live::net::{self, ConnCtx, ServerHandle};
use crate::provider::{anthropic, openai, Api, ErrorKind, Rejection};
use crate::time::Nanos;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Largest request body accepted (bigger gets the provider's 413). Anthropic's own limit
/// is 32 MB (Messages and Token Counting); OpenAI publishes none. The mock defaults to
/// 4 MiB for both (`--max-body-bytes` raises it), as bodies are held while parsed.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest total size of a request's header names and values (bigger gets a 431 in the
/// provider's envelope): 32 KiB, the request-header budget of the proxies in front of
/// both APIs; hyper's own limits (about 400 KiB, 100 headers) stay behind it.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header lines in a request (more gets a 431 in the provider's envelope). Hyper
/// parses up to [`PARSER_MAX_HEADERS`], so the excess reaches the router and is answered
/// in JSON rather than by hyper's bare 431.
pub const MAX_HEADER_LINES: usize = 100;
/// Hyper's own header-line limit, above [`MAX_HEADER_LINES`].
const PARSER_MAX_HEADERS: usize = 4 * MAX_HEADER_LINES;
/// Bucket of the arrival series ([`MockState::arrival_series`]): 100 ms.
pub const SERIES_BUCKET: Nanos = 100_000_000;
/// Most series buckets (a day); later arrivals fold into the last one.
const SERIES_MAX_BUCKETS: usize = 864_000;
/// Arrivals kept for the admin log (older ones are dropped; counters stay exact).
pub const ARRIVAL_LOG_CAPACITY: usize = 200_000;

/// How to run one mock provider.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Provider name (reports, `x-chaosgate-provider` header, stream labels).
    pub name: String,
    /// Wire format.
    pub api: Api,
    /// Fault profile.
    pub profile: Profile,
    /// Run seed.
    pub seed: u64,
    /// Honour the `x-chaosgate-fault` header.
    pub allow_fault_header: bool,
    /// Serve the admin API to non-loopback peers too.
    pub admin_any_peer: bool,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Which requests are health probes besides `GET /health` ([`probe`]).
    pub probe: probe::ProbeMatcher,
    /// How long a request body may take to arrive after its head (408 past it).
    pub body_timeout: std::time::Duration,
}

impl MockConfig {
    /// A config with defaults: fault header on, admin loopback-only, 4 MiB bodies.
    pub fn new(name: &str, api: Api, profile: Profile, seed: u64) -> MockConfig {
        MockConfig {
            name: name.to_string(),
            api,
            profile,
            seed,
            allow_fault_header: true,
            admin_any_peer: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            probe: probe::ProbeMatcher::default(),
            body_timeout: net::BODY_READ_TIMEOUT,
        }
    }
}

/// One request as the provider saw it (the `ArrivalRecord` stream).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Arrival {
    /// Sequence number from 0.
    pub seq: u64,
    /// Arrival time, ns since the mock started.
    pub t_ns: Nanos,
    /// Route path.
    pub path: &'static str,
    /// A health probe (`/health`, a probe header or a probe prompt: [`probe`]), not user
    /// traffic.
    pub probe: bool,
    /// Streamed.
    pub stream: bool,
    /// Requested model, if any.
    pub model: Option<String>,
    /// What the plan decided: `ok`, `error:503`, `reset`, `hang`, `stream:cut`, …
    pub verdict: Cow<'static, str>,
    /// Why: `none`, `baseline`, `phase:<name>`, `rate_limit`, `forced`, `rejected`.
    pub cause: Cow<'static, str>,
    /// The client request it belongs to, from the request marker in its body
    /// (`provider::mark::find_request`); `None` for probes and unmarked requests.
    pub request: Option<u64>,
    /// A 429 carrying `Retry-After`: the wait its headers ask for (ns).
    pub retry_after_ns: Option<Nanos>,
    /// Output tokens the answer carries (`fault::answer_tokens`; 0 for errors and `/health`).
    pub tokens: u32,
    /// It came while the run's clock was held, before time zero (an external gateway's
    /// health checks while it boots): not part of the run.
    pub before_start: bool,
}

impl Arrival {
    /// Its `ArrivalRecord` (`record.rs`) at provider `provider`.
    pub fn record(&self, provider: &str) -> crate::record::ArrivalRecord {
        crate::record::ArrivalRecord {
            provider: provider.to_string(),
            at: self.t_ns,
            probe: self.probe,
            verdict: self.verdict.to_string(),
            health: self.path == "/health",
            request: self.request,
            retry_after: self.retry_after_ns,
            tokens: self.tokens,
        }
    }
}

/// Shared state of one mock provider.
#[derive(Debug)]
pub struct MockState {
    /// The config.
    pub config: MockConfig,
    /// The fault plan.
    pub plan: Mutex<Plan>,
    /// When the state was built (tokio's clock, so paused-time tests work).
    pub start: Instant,
    /// The run's time zero, ns after `start`; `u64::MAX` while the clock is held at 0
    /// (see [`MockState::new_held`]).
    epoch_ns: AtomicU64,
    /// User-traffic arrivals (probes excluded) per [`SERIES_BUCKET`] since time zero.
    series: Mutex<Vec<u64>>,
    /// Arrival log (bounded).
    pub arrivals: Mutex<VecDeque<Arrival>>,
    /// Arrivals dropped from the front of the full log.
    pub arrivals_dropped: AtomicU64,
    /// Next arrival sequence number.
    pub seq: AtomicU64,
    /// Prometheus counters.
    pub metrics: metrics::Metrics,
    /// `x-chaosgate-provider` value, built once.
    pub provider_header: Option<axum::http::HeaderValue>,
    /// The provider's mark in ids, fingerprints and error messages, built once.
    pub mark: crate::provider::mark::Mark,
}

impl MockState {
    /// Builds the state; the run clock starts now.
    pub fn new(config: MockConfig) -> Arc<MockState> {
        let s = MockState::new_held(config);
        s.start_clock();
        s
    }

    /// Builds the state with its clock held at 0 until [`MockState::start_clock`]: a
    /// scenario run starts every mock's timeline when its traffic starts, however long
    /// the gateway took to become ready.
    pub fn new_held(config: MockConfig) -> Arc<MockState> {
        let plan = Plan::for_provider(&config.profile, config.seed, &config.name);
        Arc::new(MockState {
            plan: Mutex::new(plan),
            start: Instant::now(),
            epoch_ns: AtomicU64::new(u64::MAX),
            series: Mutex::new(Vec::new()),
            arrivals: Mutex::new(VecDeque::new()),
            arrivals_dropped: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            metrics: metrics::Metrics::default(),
            provider_header: axum::http::HeaderValue::from_str(&config.name).ok(),
            mark: crate::provider::mark::Mark::new(&config.name),
            config,
        })
    }

    /// Nanoseconds since the run's time zero (0 while the clock is held).
    pub fn now(&self) -> Nanos {
        let e = self.epoch_ns.load(Ordering::Relaxed);
        if e == u64::MAX {
            return 0;
        }
        u64::try_from(self.start.elapsed().as_nanos())
            .unwrap_or(Nanos::MAX)
            .saturating_sub(e)
    }

    /// Whether the run's clock has reached time zero (false while it is held).
    pub fn started(&self) -> bool {
        let e = self.epoch_ns.load(Ordering::Relaxed);
        e != u64::MAX && u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(Nanos::MAX) >= e
    }

    /// Starts (or restarts) the run clock: time zero is now. Call once, before traffic.
    pub fn start_clock(&self) {
        self.start_clock_at(Instant::now());
    }

    /// Starts the run clock with time zero at `t0` (now or later; until then it reads 0).
    pub fn start_clock_at(&self, t0: Instant) {
        let e = u64::try_from(t0.saturating_duration_since(self.start).as_nanos()).unwrap_or(0);
        self.epoch_ns.store(e, Ordering::Relaxed);
    }

    /// User-traffic arrivals per [`SERIES_BUCKET`] since time zero (probes excluded).
    pub fn arrival_series(&self) -> Vec<u64> {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        // A panic while holding the lock cannot leave the plan half-updated in a way that
        // matters more than stopping the server would; keep serving.
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, a: Arrival) {
        if !a.probe {
            let i = ((a.t_ns / SERIES_BUCKET) as usize).min(SERIES_MAX_BUCKETS - 1);
            let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() <= i {
                s.resize(i + 1, 0);
            }
            s[i] += 1;
        }
        let mut log = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= ARRIVAL_LOG_CAPACITY {
            log.pop_front();
            self.arrivals_dropped.fetch_add(1, Ordering::Relaxed);
        }
        log.push_back(a);
    }
}

/// The router of one mock provider.
pub fn router(state: Arc<MockState>) -> Router {
    let api_routes = match state.config.api {
        Api::OpenAi => Router::new()
            .route("/v1/chat/completions", post(completion))
            .route("/chat/completions", post(completion))
            .route("/v1/embeddings", post(completion))
            .route("/embeddings", post(completion)),
        Api::Anthropic => Router::new()
            .route("/v1/messages", post(completion))
            .route("/v1/messages/count_tokens", post(count_tokens)),
    };
    api_routes
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/models/{id}", get(model))
        .route("/health", get(health))
        .route("/metrics", get(metrics::handler))
        .nest("/_chaosgate", admin::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), header_limit))
        .with_state(state)
}

/// Refuses requests whose headers exceed [`MAX_HEADER_BYTES`] with a 431 in the
/// provider's envelope (before any handler reads them).
async fn header_limit(State(state): State<Arc<MockState>>, req: Request, next: axum::middleware::Next) -> Response {
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let lines = req.headers().len();
    if lines > MAX_HEADER_LINES {
        let seq = state.seq.fetch_add(1, Ordering::Relaxed);
        return reject(
            &state,
            Rejection {
                status: 431,
                kind: ErrorKind::BadRequest,
                message: format!(
                    "Request header fields too large: {lines} header lines, the limit is {MAX_HEADER_LINES} lines."
                ),
                param: None,
                code: None,
            },
            seq,
        );
    }
    if size > MAX_HEADER_BYTES {
        let seq = state.seq.fetch_add(1, Ordering::Relaxed);
        return reject(
            &state,
            Rejection {
                status: 431,
                kind: ErrorKind::BadRequest,
                message: format!(
                    "Request header fields too large: {size} bytes of headers, the limit is {MAX_HEADER_BYTES} bytes."
                ),
                param: None,
                code: None,
            },
            seq,
        );
    }
    next.run(req).await
}

/// The provider-shaped answer to a request body that could not be read: 413 over the
/// length limit, 408 when it did not arrive in time, 400 when its framing is broken.
fn body_rejection(config: &MockConfig, e: net::BodyError) -> Rejection {
    let (status, kind, message) = match e {
        net::BodyError::TooLarge(limit) => (
            413,
            ErrorKind::RequestTooLarge,
            format!("Request exceeds the maximum size: this mock accepts request bodies up to {limit} bytes (--max-body-bytes)."),
        ),
        net::BodyError::TimedOut(t) => (
            408,
            ErrorKind::BadRequest,
            format!("The request body did not arrive within {} s.", t.as_secs_f64()),
        ),
        net::BodyError::Unreadable(why) => (
            400,
            ErrorKind::BadRequest,
            format!("Could not read the request body ({why}); the mock accepts bodies up to {} bytes.", config.max_body_bytes),
        ),
    };
    Rejection {
        status,
        kind,
        message,
        param: None,
        code: None,
    }
}

/// A body declared (by `content-type`) as something other than JSON; an absent
/// content-type is read as JSON, as the APIs do.
fn not_json(headers: &HeaderMap) -> Option<String> {
    headers.get_all(axum::http::header::CONTENT_TYPE).iter().find_map(|ct| {
        let s = ct.to_str().unwrap_or("(not ASCII)");
        let mime = s.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let json = mime == "application/json" || mime.ends_with("+json") || mime.is_empty();
        (!json).then(|| s.to_string())
    })
}

/// Binds and serves one mock provider.
pub async fn spawn(config: MockConfig, listener: TcpListener) -> anyhow::Result<(ServerHandle, Arc<MockState>)> {
    let (h, state) = spawn_held(config, listener).await?;
    state.start_clock();
    Ok((h, state))
}

/// Serves one mock provider with its clock held at 0 until [`MockState::start_clock`].
pub async fn spawn_held(config: MockConfig, listener: TcpListener) -> anyhow::Result<(ServerHandle, Arc<MockState>)> {
    let state = MockState::new_held(config);
    let limits = net::ParserLimits {
        max_headers: Some(PARSER_MAX_HEADERS),
        max_buf_size: None,
    };
    let handle = net::spawn_with(listener, router(state.clone()), limits)?;
    Ok((handle, state))
}

fn forced_fault(state: &MockState, headers: &HeaderMap) -> Result<Option<Forced>, String> {
    if !state.config.allow_fault_header {
        return Ok(None);
    }
    match headers.get(forced::HEADER) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| format!("{} must be ASCII", forced::HEADER))?;
            s.parse::<Forced>().map(Some)
        }
    }
}

/// Renders a rejection (bad input) with the provider's envelope.
fn reject(state: &MockState, r: Rejection, seq: u64) -> Response {
    state.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    respond::rejection_response(state, &r, seq)
}

async fn completion(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let now = state.now();
    let t0 = Instant::now();
    let (parts, body) = req.into_parts();
    let path: &'static str = match parts.uri.path() {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/chat/completions" => "/chat/completions",
        "/v1/embeddings" => "/v1/embeddings",
        "/embeddings" => "/embeddings",
        _ => "/v1/messages",
    };
    let endpoint = if path.ends_with("/embeddings") {
        Endpoint::Embeddings
    } else {
        Endpoint::Chat
    };
    let probe = state.config.probe.by_headers(&parts.headers);
    let ctx = parts.extensions.get::<ConnCtx>().cloned();
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let mut arrival = Arrival {
        seq,
        t_ns: now,
        path,
        probe,
        stream: false,
        model: None,
        verdict: Cow::Borrowed(""),
        cause: Cow::Borrowed("rejected"),
        request: None,
        retry_after_ns: None,
        tokens: 0,
        before_start: !state.started(),
    };
    let bytes = match net::read_body(body, state.config.max_body_bytes, state.config.body_timeout).await {
        Ok(b) => b,
        Err(e) => {
            let rejection = body_rejection(&state.config, e);
            arrival.verdict = Cow::Owned(format!("error:{}", rejection.status));
            state.record(arrival);
            return reject(&state, rejection, seq);
        }
    };
    if let Some(ct) = not_json(&parts.headers) {
        arrival.verdict = Cow::Borrowed("error:415");
        state.record(arrival);
        return reject(&state, unsupported_media(ct), seq);
    }
    arrival.probe = arrival.probe || state.config.probe.by_body(&bytes);
    if !arrival.probe {
        arrival.request = crate::provider::mark::find_request(&bytes);
    }
    let parsed = match (state.config.api, endpoint) {
        (Api::OpenAi, Endpoint::Embeddings) => openai::parse_embeddings(&bytes).map(respond::Parsed::Embeddings),
        (Api::OpenAi, _) => openai::parse_chat(&bytes).map(respond::Parsed::Chat),
        (Api::Anthropic, _) => anthropic::parse_messages(&bytes).map(respond::Parsed::Chat),
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(r) => {
            arrival.verdict = Cow::Owned(format!("error:{}", r.status));
            state.record(arrival);
            return reject(&state, r, seq);
        }
    };
    let forced = match forced_fault(&state, &parts.headers) {
        Ok(f) => f,
        Err(msg) => {
            arrival.verdict = Cow::Borrowed("error:400");
            state.record(arrival);
            return reject(&state, Rejection::bad(None, msg), seq);
        }
    };
    let facts = parsed.facts();
    // A stream fault cannot happen to a plain request: refuse it rather than serve a
    // complete answer labelled as a stream fault.
    if let Some((kind, _)) = forced.as_ref().and_then(|f| f.stream) {
        if !facts.stream {
            arrival.verdict = Cow::Borrowed("error:400");
            state.record(arrival);
            let msg = format!(
                "{}: `{}` is a stream fault, but this request is not streamed (no \"stream\": true); force a stream fault on a streamed request, or use status=, delay=, hang, reset, headers_then_silence or slow_body= on a plain one",
                forced::HEADER,
                forced::stream_item_name(kind)
            );
            return reject(&state, Rejection::bad(None, msg), seq);
        }
    }
    arrival.stream = facts.stream;
    arrival.model = Some(parsed.model().to_string());
    let decision = if arrival.probe {
        state.plan().decide_probe(now, &facts, forced.as_ref())
    } else {
        state.plan().decide(now, &facts, forced.as_ref())
    };
    finish(&state, arrival, &decision);
    respond::play(state, parsed, decision, t0, ctx, seq).await
}

fn finish(state: &MockState, mut arrival: Arrival, d: &Decision) {
    arrival.verdict = respond::verdict_label(&d.verdict);
    if arrival.path != "/health" {
        arrival.tokens = crate::fault::answer_tokens(&d.verdict);
    }
    // the wait the headers the mock writes ask for (what the simulator reads)
    arrival.retry_after_ns = match &d.verdict {
        crate::fault::Verdict::Error(e) if e.status == 429 => {
            crate::provider::classify::from_error(state.config.api, e.status, e.kind, e.retry_after, e.envelope)
                .retry_after
        }
        _ => None,
    };
    arrival.cause = cause_label(state, d.cause);
    state.metrics.count(&arrival);
    state.record(arrival);
}

fn cause_label(state: &MockState, c: crate::fault::Cause) -> Cow<'static, str> {
    use crate::fault::Cause;
    match c {
        Cause::None => Cow::Borrowed("none"),
        Cause::Baseline => Cow::Borrowed("baseline"),
        Cause::RateLimit => Cow::Borrowed("rate_limit"),
        Cause::Forced => Cow::Borrowed("forced"),
        Cause::Phase(i) => {
            let name = state.plan().phase_name(i).unwrap_or_else(|| format!("phase[{i}]"));
            Cow::Owned(format!("phase:{name}"))
        }
    }
}

async fn health(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let now = state.now();
    let t0 = Instant::now();
    let ctx = req.extensions().get::<ConnCtx>().cloned();
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    // `/health` is a plain GET: a stream fault in the header does not apply to it.
    let forced = forced_fault(&state, req.headers()).ok().flatten().map(|mut f| {
        f.stream = None;
        f
    });
    let arrival = Arrival {
        seq,
        t_ns: now,
        path: "/health",
        probe: true,
        stream: false,
        model: None,
        verdict: Cow::Borrowed(""),
        cause: Cow::Borrowed(""),
        request: None,
        retry_after_ns: None,
        tokens: 0,
        before_start: !state.started(),
    };
    let decision = state.plan().decide(now, &RequestFacts::health(), forced.as_ref());
    finish(&state, arrival, &decision);
    respond::play(state, respond::Parsed::Health, decision, t0, ctx, seq).await
}

fn unsupported_media(ct: String) -> Rejection {
    Rejection {
        status: 415,
        kind: ErrorKind::BadRequest,
        message: format!(
            "Unsupported content type {ct:?}: the request body must be JSON (content-type: application/json)."
        ),
        param: None,
        code: None,
    }
}

/// Query of Anthropic's model list (OpenAI's takes none and ignores any).
#[derive(Debug, Default, serde::Deserialize)]
struct ModelsQuery {
    limit: Option<String>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// Answers a metadata endpoint (models, count_tokens): no fault plan, the API's headers.
fn metadata(state: &MockState, body: Result<String, Rejection>) -> Response {
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    match body {
        Ok(b) => {
            let mut r = respond::json(StatusCode::OK, b);
            respond::add_headers(state, &mut r, None, Some(seq));
            r
        }
        Err(e) => reject(state, e, seq),
    }
}

async fn models(
    State(state): State<Arc<MockState>>,
    q: Result<axum::extract::Query<ModelsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    state.metrics.models.fetch_add(1, Ordering::Relaxed);
    let q = q.map(|q| q.0).unwrap_or_default();
    let body = match state.config.api {
        Api::OpenAi => Ok(openai::models_body(openai::MODELS, 1_700_000_000)),
        Api::Anthropic => anthropic::models_page(
            anthropic::MODELS,
            q.limit.as_deref(),
            q.after_id.as_deref(),
            q.before_id.as_deref(),
        ),
    };
    metadata(&state, body)
}

async fn model(
    State(state): State<Arc<MockState>>,
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    state.metrics.models.fetch_add(1, Ordering::Relaxed);
    let id = id.map(|p| p.0).unwrap_or_default();
    let body = match state.config.api {
        Api::OpenAi => openai::model_body(openai::MODELS, &id, 1_700_000_000),
        Api::Anthropic => anthropic::model_body(anthropic::MODELS, &id),
    };
    metadata(&state, body)
}

async fn count_tokens(State(state): State<Arc<MockState>>, req: Request) -> Response {
    state.metrics.count_tokens.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = match net::read_body(body, state.config.max_body_bytes, state.config.body_timeout).await {
        Err(e) => Err(body_rejection(&state.config, e)),
        Ok(_) if not_json(&parts.headers).is_some() => {
            Err(unsupported_media(not_json(&parts.headers).unwrap_or_default()))
        }
        Ok(b) => anthropic::parse_count_tokens(&b).map(|c| anthropic::count_tokens_body(c.input_tokens)),
    };
    metadata(&state, body)
}

async fn not_found(State(state): State<Arc<MockState>>, method: Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/_chaosgate/") {
        return admin::admin_error(StatusCode::NOT_FOUND, format!("no admin route {method} {}", uri.path()));
    }
    let msg = match state.config.api {
        Api::OpenAi => format!("Invalid URL ({method} {})", uri.path()),
        Api::Anthropic => format!("Not found: {method} {}", uri.path()),
    };
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    reject(
        &state,
        Rejection {
            status: 404,
            kind: ErrorKind::NotFound,
            message: msg,
            param: None,
            code: None,
        },
        seq,
    )
}

async fn method_not_allowed(State(state): State<Arc<MockState>>, method: Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/_chaosgate/") {
        return admin::admin_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed on {}", uri.path()),
        );
    }
    let msg = format!("method {method} is not allowed on {}", uri.path());
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let mut r = reject(
        &state,
        Rejection {
            status: 405,
            kind: ErrorKind::BadRequest,
            message: msg,
            param: None,
            code: None,
        },
        seq,
    );
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
