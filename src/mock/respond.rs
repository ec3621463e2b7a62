//! Plays a [`Verdict`] out on the wire, in the provider's own format.
//!
//! Timing is measured from the request's arrival `t0`: a stream's first content token is
//! sent at `t0 + first`, token `i` at `t0 + first + i · token_interval` (absolute
//! deadlines, so pacing does not drift with scheduler jitter). Headers and the stream's
//! preamble (OpenAI role chunk; Anthropic `message_start`, `content_block_start`, `ping`)
//! go out at once, as real providers do, so *time to first byte* and *time to first
//! token* differ.

use super::MockState;
use crate::fault::{Decision, Endpoint, RequestFacts, StreamFault, StreamKind, Success, Verdict};
use crate::net::ConnCtx;
use crate::provider::{
    anthropic, filler_token, openai, Api, ChatRequest, EmbeddingsRequest, ErrorKind, RateLimitSnapshot,
};
use crate::time::{Nanos, NS_PER_S};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Models listed by `GET /v1/models`.
pub const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
];

/// Default embedding width (text-embedding-3-small).
pub const DEFAULT_EMBEDDING_DIMENSIONS: u32 = 1536;

/// A request after parsing.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// Chat completion / message.
    Chat(ChatRequest),
    /// Embeddings.
    Embeddings(EmbeddingsRequest),
    /// Health probe.
    Health,
}

impl Parsed {
    /// The facts the fault plan needs.
    pub fn facts(&self) -> RequestFacts {
        match self {
            Parsed::Chat(c) => RequestFacts {
                endpoint: Endpoint::Chat,
                stream: c.stream,
                input_tokens: c.input_tokens,
                max_tokens: c.max_tokens,
            },
            Parsed::Embeddings(e) => RequestFacts {
                endpoint: Endpoint::Embeddings,
                stream: false,
                input_tokens: e.input_tokens,
                max_tokens: None,
            },
            Parsed::Health => RequestFacts::health(),
        }
    }

    /// The requested model ("" for probes).
    pub fn model(&self) -> &str {
        match self {
            Parsed::Chat(c) => &c.model,
            Parsed::Embeddings(e) => &e.model,
            Parsed::Health => "",
        }
    }
}

/// A short label of a verdict for logs and metrics.
pub fn verdict_label(v: &Verdict) -> Cow<'static, str> {
    Cow::Borrowed(match v {
        Verdict::Reset { .. } => "reset",
        Verdict::Hang => "hang",
        Verdict::HeadersThenSilence { .. } => "headers_then_silence",
        Verdict::Error(e) => return Cow::Owned(format!("error:{}", e.status)),
        Verdict::Ok(s) => match s.stream_fault {
            None if s.slow_body_bytes_per_s.is_some() => "ok:slow_body",
            None => "ok",
            Some(f) => match f.kind {
                StreamKind::Cut => "stream:cut",
                StreamKind::Error => "stream:error",
                StreamKind::Malformed => "stream:malformed",
                StreamKind::NoTerminal => "stream:no_terminal",
                StreamKind::PingStall => "stream:ping_stall",
                StreamKind::SilentStall => "stream:silent_stall",
            },
        },
    })
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

static PROVIDER_HEADER: header::HeaderName = header::HeaderName::from_static("x-chaosgate-provider");
static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("request-id");

fn request_id(seq: u64) -> String {
    format!("req_cg{seq:012x}")
}

fn add_headers(state: &MockState, r: &mut Response, rl: Option<&RateLimitSnapshot>, seq: Option<u64>) {
    let h = r.headers_mut();
    if let Some(v) = &state.provider_header {
        h.insert(PROVIDER_HEADER.clone(), v.clone());
    }
    if let Some(seq) = seq {
        let id = HeaderValue::from_maybe_shared(Bytes::from(request_id(seq))).expect("ascii id");
        match state.config.api {
            Api::OpenAi => h.insert(X_REQUEST_ID.clone(), id),
            Api::Anthropic => h.insert(REQUEST_ID.clone(), id),
        };
    }
    if let Some(s) = rl {
        let pairs = match state.config.api {
            Api::OpenAi => openai::ratelimit_headers(s),
            Api::Anthropic => anthropic::ratelimit_headers(s, unix_ms()),
        };
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
    }
}

/// A provider-shaped error response.
#[allow(clippy::too_many_arguments)]
pub fn error_response(
    state: &MockState,
    status: u16,
    kind: ErrorKind,
    message: &str,
    param: Option<&str>,
    retry_after: Option<Nanos>,
    rl: Option<&RateLimitSnapshot>,
    seq: u64,
) -> Response {
    let body = match state.config.api {
        Api::OpenAi => match (kind, retry_after) {
            (ErrorKind::RateLimit, Some(ra)) if message.is_empty() => openai::rate_limit_error_body(ra),
            _ => openai::error_body(kind, message, param),
        },
        Api::Anthropic => anthropic::error_body(kind, message, &request_id(seq)),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, body);
    add_headers(state, &mut r, rl, Some(seq));
    let h = r.headers_mut();
    if let Some(ra) = retry_after {
        let secs = ra.div_ceil(NS_PER_S);
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        if state.config.api == Api::OpenAi {
            h.insert("retry-after-ms", HeaderValue::from(ra.div_ceil(1_000_000)));
        }
    }
    if !kind.retryable() {
        h.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    r
}

async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        tokio::time::sleep_until(t).await;
    }
}

fn at(t0: Instant, n: Nanos) -> Instant {
    t0 + Duration::from_nanos(n)
}

/// Pause between the last bytes before a cut and the cut itself, so they are flushed.
pub const CUT_FLUSH: Duration = Duration::from_millis(5);

/// How a scripted body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Normal end of the HTTP body.
    Clean,
    /// Abort: the connection closes without the chunked terminator.
    Cut,
    /// Keep-alive pings forever at this interval.
    Pings(Nanos),
    /// Silence with the connection open.
    Silent,
}

/// A body as timed chunks.
struct Script {
    items: Vec<(Nanos, Bytes)>,
    end: End,
    ping: Bytes,
}

fn script_body(t0: Instant, s: Script) -> Body {
    let Script { items, end, ping } = s;
    let stream = futures_util::stream::unfold((items.into_iter(), Some(end), 0u64), move |(mut it, end, k)| {
        let ping = ping.clone();
        async move {
            if let Some((off, b)) = it.next() {
                sleep_until(at(t0, off)).await;
                return Some((Ok::<Bytes, std::io::Error>(b), (it, end, k)));
            }
            match end? {
                End::Clean => None,
                End::Cut => {
                    // Let the tokens before the cut reach the wire first: the connection
                    // then closes (FIN) without the chunked terminator.
                    tokio::time::sleep(CUT_FLUSH).await;
                    Some((Err(std::io::Error::other("chaosgate: stream cut")), (it, None, k)))
                }
                End::Silent => {
                    std::future::pending::<()>().await;
                    None
                }
                End::Pings(every) => {
                    tokio::time::sleep(Duration::from_nanos(every.max(1))).await;
                    Some((Ok(ping), (it, Some(End::Pings(every)), k + 1)))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// Executes a decision.
pub async fn play(
    state: Arc<MockState>,
    parsed: Parsed,
    decision: Decision,
    t0: Instant,
    ctx: Option<ConnCtx>,
    seq: u64,
) -> Response {
    match decision.verdict {
        Verdict::Reset { after } => {
            sleep_until(at(t0, after)).await;
            if let Some(c) = ctx {
                c.reset();
            }
            std::future::pending().await
        }
        Verdict::Hang => std::future::pending().await,
        Verdict::HeadersThenSilence { after } => {
            sleep_until(at(t0, after)).await;
            let is_stream = parsed.facts().stream;
            let body = script_body(
                t0,
                Script {
                    items: Vec::new(),
                    end: End::Silent,
                    ping: Bytes::new(),
                },
            );
            let mut r = Response::new(body);
            let ct = if is_stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            add_headers(&state, &mut r, None, Some(seq));
            r
        }
        Verdict::Error(e) => {
            sleep_until(at(t0, e.after)).await;
            let msg = e.message.clone().unwrap_or_else(|| {
                if e.kind == ErrorKind::RateLimit && state.config.api == Api::OpenAi && e.retry_after.is_some() {
                    String::new() // the rate-limit body writes its own "try again in" message
                } else {
                    e.kind.default_message(state.config.api)
                }
            });
            error_response(
                &state,
                e.status,
                e.kind,
                &msg,
                None,
                e.retry_after,
                e.rate_limit.as_ref(),
                seq,
            )
        }
        Verdict::Ok(s) => match parsed {
            Parsed::Health => {
                sleep_until(at(t0, s.first)).await;
                let mut r = json(StatusCode::OK, r#"{"status":"ok"}"#.to_string());
                add_headers(&state, &mut r, None, None);
                r
            }
            Parsed::Embeddings(e) => {
                sleep_until(at(t0, s.first)).await;
                let dims = e.dimensions.unwrap_or(DEFAULT_EMBEDDING_DIMENSIONS);
                let body = openai::embeddings_body(&e.model, e.inputs, dims, e.input_tokens, state.config.seed ^ seq);
                finish_plain(&state, body, &s, t0, seq)
            }
            Parsed::Chat(c) if !c.stream => {
                sleep_until(at(t0, s.first)).await;
                let text = crate::provider::filler_text(s.output_tokens);
                let stop = stop_reason(state.config.api, &c, &s);
                let body = match state.config.api {
                    Api::OpenAi => openai::completion_body(
                        &format!("chatcmpl-cg{seq:012x}"),
                        &c.model,
                        unix_ms() / 1000,
                        &text,
                        c.input_tokens,
                        s.output_tokens,
                        stop,
                    ),
                    Api::Anthropic => anthropic::message_body(
                        &format!("msg_cg{seq:012x}"),
                        &c.model,
                        &text,
                        c.input_tokens,
                        s.output_tokens,
                        stop,
                    ),
                };
                finish_plain(&state, body, &s, t0, seq)
            }
            Parsed::Chat(c) => {
                let script = match state.config.api {
                    Api::OpenAi => openai_script(&c, &s, seq),
                    Api::Anthropic => anthropic_script(&c, &s, seq),
                };
                let mut r = Response::new(script_body(t0, script));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream; charset=utf-8"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                add_headers(&state, &mut r, s.rate_limit.as_ref(), Some(seq));
                r
            }
        },
    }
}

fn stop_reason(api: Api, c: &ChatRequest, s: &Success) -> &'static str {
    let hit_max = c.max_tokens == Some(s.output_tokens);
    match (api, hit_max) {
        (Api::OpenAi, true) => "length",
        (Api::OpenAi, false) => "stop",
        (Api::Anthropic, true) => "max_tokens",
        (Api::Anthropic, false) => "end_turn",
    }
}

/// A non-streamed body, trickled when `slow_body` fired.
fn finish_plain(state: &MockState, body: String, s: &Success, t0: Instant, seq: u64) -> Response {
    let mut r = match s.slow_body_bytes_per_s {
        None => json(StatusCode::OK, body),
        Some(bps) => {
            let bytes = Bytes::from(body);
            let piece = (bps as usize / 10).max(1);
            let gap = NS_PER_S * piece as u64 / u64::from(bps);
            let items = bytes
                .chunks(piece)
                .enumerate()
                .map(|(i, c)| (s.first + gap * i as u64, Bytes::copy_from_slice(c)))
                .collect();
            let mut r = Response::new(script_body(
                t0,
                Script {
                    items,
                    end: End::Clean,
                    ping: Bytes::new(),
                },
            ));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    };
    add_headers(state, &mut r, s.rate_limit.as_ref(), Some(seq));
    r
}

/// Content tokens to send and the fault that follows them.
fn plan_tokens(s: &Success) -> (u32, Option<StreamFault>) {
    match s.stream_fault {
        None => (s.output_tokens, None),
        Some(f) if f.kind == StreamKind::NoTerminal => (s.output_tokens, Some(f)),
        Some(f) => (f.after_tokens.min(s.output_tokens), Some(f)),
    }
}

fn token_time(s: &Success, i: u32) -> Nanos {
    s.first.saturating_add(s.token_interval.saturating_mul(u64::from(i)))
}

/// One API's stream vocabulary, so both APIs share one script builder.
struct Wire<'a> {
    /// Sent at once with the headers.
    preamble: Vec<Bytes>,
    /// Content token `i`.
    token: &'a dyn Fn(u32) -> Bytes,
    /// Sent after the last token on a normal end, before the terminator.
    finish: &'a dyn Fn(u32) -> Vec<Bytes>,
    /// `[DONE]` / `message_stop`.
    terminator: Bytes,
    /// In-band error event.
    error: &'a dyn Fn(ErrorKind) -> Bytes,
    /// A chunk whose JSON is cut short.
    malformed: Bytes,
    /// Keep-alive ping.
    ping: Bytes,
}

fn build_script(w: Wire<'_>, s: &Success) -> Script {
    let (n, fault) = plan_tokens(s);
    let mut items: Vec<(Nanos, Bytes)> = Vec::with_capacity(n as usize + w.preamble.len() + 4);
    items.extend(w.preamble.into_iter().map(|b| (0, b)));
    for i in 0..n {
        items.push((token_time(s, i), (w.token)(i)));
    }
    let last = if n == 0 { s.first } else { token_time(s, n - 1) };
    let end = match fault {
        None => {
            items.extend((w.finish)(n).into_iter().map(|b| (last, b)));
            items.push((last, w.terminator));
            End::Clean
        }
        Some(f) => match f.kind {
            StreamKind::NoTerminal => {
                items.extend((w.finish)(n).into_iter().map(|b| (last, b)));
                End::Clean
            }
            StreamKind::Cut => End::Cut,
            StreamKind::Error => {
                items.push((last, (w.error)(f.error)));
                End::Clean
            }
            StreamKind::Malformed => {
                items.push((last, w.malformed));
                End::Clean
            }
            StreamKind::PingStall => End::Pings(f.ping_every),
            StreamKind::SilentStall => End::Silent,
        },
    };
    Script {
        items,
        end,
        ping: w.ping,
    }
}

fn openai_script(c: &ChatRequest, s: &Success, seq: u64) -> Script {
    let id = format!("chatcmpl-cg{seq:012x}");
    let created = unix_ms() / 1000;
    let m = c.model.as_str();
    let token = |i: u32| Bytes::from(openai::chunk_content(&id, m, created, filler_token(i)));
    let finish = |n: u32| {
        let mut v = vec![Bytes::from(openai::chunk_finish(
            &id,
            m,
            created,
            stop_reason(Api::OpenAi, c, s),
        ))];
        if c.include_usage {
            v.push(Bytes::from(openai::chunk_usage(&id, m, created, c.input_tokens, n)));
        }
        v
    };
    let error = |k: ErrorKind| Bytes::from(openai::stream_error(k, &k.default_message(Api::OpenAi)));
    let wire = Wire {
        preamble: vec![Bytes::from(openai::chunk_role(&id, m, created))],
        token: &token,
        finish: &finish,
        terminator: Bytes::from_static(openai::DONE.as_bytes()),
        error: &error,
        malformed: Bytes::from(openai::malformed_chunk()),
        ping: Bytes::from_static(b": ping\n\n"),
    };
    build_script(wire, s)
}

fn anthropic_script(c: &ChatRequest, s: &Success, seq: u64) -> Script {
    let id = format!("msg_cg{seq:012x}");
    let token = |i: u32| Bytes::from(anthropic::event_text_delta(filler_token(i)));
    let finish = |n: u32| {
        vec![
            Bytes::from(anthropic::event_content_block_stop()),
            Bytes::from(anthropic::event_message_delta(stop_reason(Api::Anthropic, c, s), n)),
        ]
    };
    let error = |k: ErrorKind| Bytes::from(anthropic::event_error(k, &k.default_message(Api::Anthropic)));
    let ping = Bytes::from(anthropic::event_ping());
    let wire = Wire {
        preamble: vec![
            Bytes::from(anthropic::event_message_start(&id, &c.model, c.input_tokens)),
            Bytes::from(anthropic::event_content_block_start()),
            ping.clone(),
        ],
        token: &token,
        finish: &finish,
        terminator: Bytes::from(anthropic::event_message_stop()),
        error: &error,
        malformed: Bytes::from(anthropic::malformed_event()),
        ping,
    };
    build_script(wire, s)
}
