//! Plays a [`Verdict`] out on the wire, in the provider's own format.
//!
//! Timing is measured from the request's arrival `t0`: a stream's first content token is
//! sent at `t0 + first`, token `i` at `t0 + first + i · token_interval` (absolute
//! deadlines, so pacing does not drift with scheduler jitter). Headers and the stream's
//! preamble (OpenAI role chunk; Anthropic `message_start`, `content_block_start`, `ping`)
//! go out at once, as real providers do, so *time to first byte* and *time to first
//! token* differ.

use super::MockState;
use crate::fault::wire::{End as WireEnd, Wire as WireTimeline};
use crate::fault::{Decision, Endpoint, Envelope, RequestFacts, Success, Verdict};
use crate::live::net::ConnCtx;
use crate::provider::{
    anthropic, filler_token, openai, Api, ChatRequest, EmbeddingsRequest, ErrorKind, RateLimitSnapshot, Rejection,
};
use crate::time::Nanos;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A body generated piece by piece (never held whole: its size comes from the request).
pub type Chunks = Box<dyn Iterator<Item = Bytes> + Send>;

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
            Parsed::Chat(c) => RequestFacts::chat(c),
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

pub use crate::fault::verdict_label;

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

static PROVIDER_HEADER: header::HeaderName = header::HeaderName::from_static(crate::provider::mark::HEADER);
static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("request-id");

fn request_id(seq: u64) -> String {
    format!("req_cg{seq:012x}")
}

/// The mock's own headers: `x-chaosgate-provider`, the request id (when `seq` is given)
/// and the rate-limit headers.
pub fn add_headers(state: &MockState, r: &mut Response, rl: Option<&RateLimitSnapshot>, seq: Option<u64>) {
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
    // Anthropic sends its rate-limit headers on every response; OpenAI's come with
    // the profile's `rate_limit` only.
    let rl = match state.config.api {
        Api::Anthropic => Some(rl.unwrap_or(&anthropic::NOMINAL_RATE_LIMIT)),
        Api::OpenAi => rl,
    };
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

/// Only the provider's name (`x-chaosgate-provider`, how a client attributes an answer):
/// what an answer without the provider's own headers still carries.
fn add_headers_bare(state: &MockState, r: &mut Response) {
    if let Some(v) = &state.provider_header {
        r.headers_mut().insert(PROVIDER_HEADER.clone(), v.clone());
    }
}

/// An HTML error page (`envelope = "html"`): what nginx or a CDN answers in front of a
/// provider it cannot reach; the provider's marked message in a comment.
pub fn html_error_response(state: &MockState, status: u16, message: &str) -> Response {
    let page = crate::provider::html_error_page(status, &state.mark.message(message));
    let mut r = Response::new(Body::from(page));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    add_headers_bare(state, &mut r);
    r
}

/// A [`Rejection`] (bad input) in the provider's envelope, with its own `param` and
/// `code`, its message marked with the provider.
pub fn rejection_response(state: &MockState, r: &Rejection, seq: u64) -> Response {
    let message = state.mark.message(&r.message);
    let body = match state.config.api {
        Api::OpenAi => openai::rejection_body(&Rejection { message, ..r.clone() }),
        Api::Anthropic => anthropic::error_body(r.kind, &message, &request_id(seq)),
    };
    let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json(code, body);
    add_headers(state, &mut resp, None, Some(seq));
    resp.headers_mut()
        .insert("x-should-retry", HeaderValue::from_static("false"));
    resp
}

/// A provider-shaped error response, its message marked with the provider.
#[allow(clippy::too_many_arguments)]
pub fn error_response(
    state: &MockState,
    status: u16,
    kind: ErrorKind,
    message: &str,
    param: Option<&str>,
    retry_after: Option<Nanos>,
    rl: Option<&RateLimitSnapshot>,
    envelope: Envelope,
    seq: u64,
) -> Response {
    let body = match state.config.api {
        Api::OpenAi => match (kind, retry_after) {
            (ErrorKind::RateLimit, Some(ra)) if message.is_empty() => {
                openai::error_body(kind, &state.mark.message(&openai::rate_limit_message(ra)), None)
            }
            _ => openai::error_body(kind, &state.mark.message(message), param),
        },
        Api::Anthropic => anthropic::error_body(kind, &state.mark.message(message), &request_id(seq)),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, body);
    // a bare envelope: the body alone, none of the provider's headers
    let bare = envelope != Envelope::Provider;
    if bare {
        add_headers_bare(state, &mut r);
    } else {
        add_headers(state, &mut r, rl, Some(seq));
    }
    let h = r.headers_mut();
    if let Some(ra) = retry_after.filter(|_| !bare) {
        let (secs, ms) = crate::provider::classify::wire_retry_after(state.config.api, ra);
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        if let Some(ms) = ms {
            h.insert("retry-after-ms", HeaderValue::from(ms));
        }
    }
    if crate::provider::classify::sends_should_retry_false(kind, envelope) {
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

/// How a scripted body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Normal end of the HTTP body.
    Clean,
    /// Abort at this offset: the connection closes without the chunked terminator.
    Cut(Nanos),
    /// Keep-alive pings forever at this interval.
    Pings(Nanos),
    /// Silence with the connection open.
    Silent,
}

/// A body as timed chunks, generated as it is sent.
struct Script {
    items: Box<dyn Iterator<Item = (Nanos, Bytes)> + Send>,
    end: End,
    ping: Bytes,
}

fn script_body(t0: Instant, s: Script) -> Body {
    let Script { items, end, ping } = s;
    let stream = futures_util::stream::unfold((items, Some(end), 0u64), move |(mut it, end, k)| {
        let ping = ping.clone();
        async move {
            if let Some((off, b)) = it.next() {
                sleep_until(at(t0, off)).await;
                return Some((Ok::<Bytes, std::io::Error>(b), (it, end, k)));
            }
            match end? {
                End::Clean => None,
                End::Cut(when) => {
                    // the timeline leaves `wire::CUT_FLUSH` after the last tokens so that
                    // they reach the wire first: the connection then closes (FIN) without
                    // the chunked terminator
                    let due = at(t0, when);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                    } else {
                        // behind schedule (a loaded host): still give the bytes their time
                        tokio::time::sleep(Duration::from_nanos(crate::fault::wire::CUT_FLUSH)).await;
                    }
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
                    items: Box::new(std::iter::empty()),
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
            if e.envelope == Envelope::Html {
                return html_error_response(&state, e.status, &msg);
            }
            error_response(
                &state,
                e.status,
                e.kind,
                &msg,
                None,
                e.retry_after,
                e.rate_limit.as_ref(),
                e.envelope,
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
                let body = openai::embeddings_chunks(
                    &e.model,
                    e.inputs,
                    e.dimensions,
                    e.input_tokens,
                    state.config.seed ^ seq,
                    e.encoding,
                );
                finish_plain(&state, Box::new(body), None, &s, t0, seq)
            }
            Parsed::Chat(c) if !c.stream => {
                sleep_until(at(t0, s.first)).await;
                let body = crate::provider::chat_reply(
                    state.config.api,
                    &state.mark,
                    seq,
                    &c.model,
                    unix_ms() / 1000,
                    c.n,
                    c.input_tokens,
                    s.output_tokens,
                    hit_max(&c, &s),
                );
                let len = body.len_bytes();
                if s.slow_body_bytes_per_s.is_none() && len <= ONE_WRITE_BYTES {
                    // due now and small: one buffer, written at once
                    let mut r = Response::new(Body::from(body.to_bytes()));
                    plain_headers(&state, &mut r, Some(len), &s, seq);
                    return r;
                }
                finish_plain(&state, Box::new(body.into_chunks()), Some(len), &s, t0, seq)
            }
            Parsed::Chat(c) => {
                let script = match state.config.api {
                    Api::OpenAi => openai_script(&c, &s, state.mark.openai_id(seq)),
                    Api::Anthropic => anthropic_script(&c, &s, state.mark.anthropic_id(seq)),
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

/// The answer stops at the request's `max_tokens`.
fn hit_max(c: &ChatRequest, s: &Success) -> bool {
    c.max_tokens == Some(s.output_tokens)
}

fn stop_reason(api: Api, c: &ChatRequest, s: &Success) -> &'static str {
    crate::provider::stop_reason(api, hit_max(c, s))
}

/// Largest plain answer built in one buffer and written at once; bigger ones are generated
/// piece by piece as they are sent ([`crate::provider::Template::into_chunks`]).
const ONE_WRITE_BYTES: u64 = 64 * 1024;

/// Re-cuts `chunks` into pieces of exactly `piece` bytes (the last may be shorter),
/// holding at most one piece and one source chunk at a time.
fn repiece(mut chunks: Chunks, piece: usize) -> impl Iterator<Item = Bytes> + Send {
    let mut pending = Bytes::new();
    std::iter::from_fn(move || {
        let mut out: Vec<u8> = Vec::new();
        loop {
            if pending.is_empty() {
                match chunks.next() {
                    Some(c) => pending = c,
                    None => return (!out.is_empty()).then(|| Bytes::from(out)),
                }
            }
            let take = (piece - out.len()).min(pending.len());
            out.extend_from_slice(&pending.split_to(take));
            if out.len() == piece {
                return Some(Bytes::from(out));
            }
        }
    })
}

/// A non-streamed body, sent as it is generated; trickled at the fault's rate when
/// `slow_body` fired. With its exact length `len` known up front (a `Template`'s) it
/// goes out with `content-length`, as the providers send plain JSON; without, chunked.
fn finish_plain(state: &MockState, body: Chunks, len: Option<u64>, s: &Success, t0: Instant, seq: u64) -> Response {
    let items: Box<dyn Iterator<Item = (Nanos, Bytes)> + Send> = match s.slow_body_bytes_per_s {
        None => {
            let first = s.first;
            Box::new(body.map(move |b| (first, b)))
        }
        Some(bps) => {
            let (piece, gap) = crate::fault::wire::slow_pieces(bps);
            let first = s.first;
            Box::new(
                repiece(body, piece)
                    .enumerate()
                    .map(move |(i, c)| (first.saturating_add(gap.saturating_mul(i as u64)), c)),
            )
        }
    };
    let mut r = Response::new(script_body(
        t0,
        Script {
            items,
            end: End::Clean,
            ping: Bytes::new(),
        },
    ));
    plain_headers(state, &mut r, len, s, seq);
    r
}

/// A plain answer's headers: JSON, its length when known, the mock's own.
fn plain_headers(state: &MockState, r: &mut Response, len: Option<u64>, s: &Success, seq: u64) {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(n) = len {
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    add_headers(state, r, s.rate_limit.as_ref(), Some(seq));
}

/// A stream frame builder: content token `i` of choice `k`.
type TokenFn = Box<dyn Fn(u32, u32) -> Bytes + Send>;

/// One API's stream vocabulary, so both APIs share one script builder.
struct Vocab<'a> {
    /// Sent at once with the headers.
    preamble: Vec<Bytes>,
    /// Choices (OpenAI `n`; 1 for Anthropic): each token time sends one frame per choice.
    choices: u32,
    /// Content token `i` of choice `k`; called lazily, as the stream is sent.
    token: TokenFn,
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

/// The stream as a lazy sequence of timed frames, played from the verdict's wire timeline
/// ([`WireTimeline`]: how many tokens, when, and how it ends): memory stays at a few frames
/// however many tokens the request allows (the tail after the tokens is at most one frame
/// per choice plus three).
fn build_script(w: Vocab<'_>, s: &Success) -> Script {
    let tl = WireTimeline::stream(s);
    let n = tl.tokens;
    let last = tl.last_token_at();
    let mut tail: Vec<(Nanos, Bytes)> = Vec::new();
    let end = match tl.end {
        WireEnd::Complete { .. } => {
            tail.extend((w.finish)(n).into_iter().map(|b| (last, b)));
            tail.push((last, w.terminator));
            End::Clean
        }
        WireEnd::NoTerminal { .. } => {
            tail.extend((w.finish)(n).into_iter().map(|b| (last, b)));
            End::Clean
        }
        WireEnd::Abort { at } => End::Cut(at),
        WireEnd::InBandError { kind, .. } => {
            tail.push((last, (w.error)(kind)));
            End::Clean
        }
        WireEnd::Malformed { .. } => {
            tail.push((last, w.malformed));
            End::Clean
        }
        WireEnd::Silence { pings: Some(every) } => End::Pings(every),
        WireEnd::Silence { pings: None } => End::Silent,
    };
    let (choices, token) = (w.choices.max(1), w.token);
    let tokens = (0..n).flat_map(move |i| {
        let t = tl.token_at(i);
        (0..choices).map(move |k| (t, i, k))
    });
    let items = w
        .preamble
        .into_iter()
        .map(|b| (0, b))
        .chain(tokens.map(move |(t, i, k)| (t, token(i, k))))
        .chain(tail);
    Script {
        items: Box::new(items),
        end,
        ping: w.ping,
    }
}

/// The stream of completion `id` (which carries the provider's mark).
fn openai_script(c: &ChatRequest, s: &Success, id: String) -> Script {
    let frames = openai::ChunkFrames::new(&id, &c.model, unix_ms() / 1000);
    let choices = c.n.max(1);
    let tf = frames.clone();
    // Choice k's token i is filler token k + i, as in the plain body.
    let token: TokenFn = Box::new(move |i: u32, k: u32| tf.content(k, filler_token(k.wrapping_add(i))));
    let finish = |n: u32| {
        let stop = stop_reason(Api::OpenAi, c, s);
        let mut v: Vec<Bytes> = (0..choices).map(|k| frames.finish(k, stop)).collect();
        if c.include_usage {
            let total = u32::try_from(u64::from(n) * u64::from(choices)).unwrap_or(u32::MAX);
            v.push(frames.usage(c.input_tokens, total));
        }
        v
    };
    let error = |k: ErrorKind| Bytes::from(openai::stream_error(k, &k.default_message(Api::OpenAi)));
    let wire = Vocab {
        preamble: (0..choices).map(|k| frames.role(k)).collect(),
        choices,
        token,
        finish: &finish,
        terminator: Bytes::from_static(openai::DONE.as_bytes()),
        error: &error,
        malformed: Bytes::from(openai::malformed_chunk()),
        ping: Bytes::from_static(b": ping\n\n"),
    };
    build_script(wire, s)
}

/// The stream of message `id` (which carries the provider's mark).
fn anthropic_script(c: &ChatRequest, s: &Success, id: String) -> Script {
    let token: TokenFn = Box::new(|i: u32, _k: u32| Bytes::from(anthropic::event_text_delta(filler_token(i))));
    let finish = |n: u32| {
        vec![
            Bytes::from(anthropic::event_content_block_stop()),
            Bytes::from(anthropic::event_message_delta(stop_reason(Api::Anthropic, c, s), n)),
        ]
    };
    let error = |k: ErrorKind| Bytes::from(anthropic::event_error(k, &k.default_message(Api::Anthropic)));
    let ping = Bytes::from(anthropic::event_ping());
    let wire = Vocab {
        preamble: vec![
            Bytes::from(anthropic::event_message_start(&id, &c.model, c.input_tokens)),
            Bytes::from(anthropic::event_content_block_start()),
            ping.clone(),
        ],
        choices: 1,
        token,
        finish: &finish,
        terminator: Bytes::from(anthropic::event_message_stop()),
        error: &error,
        malformed: Bytes::from(anthropic::malformed_event()),
        ping,
    };
    build_script(wire, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repiece_cuts_exact_pieces_across_chunk_boundaries() {
        let src: Vec<Bytes> = ["abc", "", "defgh", "i", "jklmnopq"]
            .into_iter()
            .map(|s: &'static str| Bytes::from_static(s.as_bytes()))
            .collect();
        for piece in 1..=20 {
            let out: Vec<Bytes> = repiece(Box::new(src.clone().into_iter()), piece).collect();
            let joined: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
            assert_eq!(joined, b"abcdefghijklmnopq", "piece {piece}");
            let (last, full) = out.split_last().unwrap();
            assert!(full.iter().all(|b| b.len() == piece), "piece {piece}");
            assert!(!last.is_empty() && last.len() <= piece);
        }
        assert_eq!(repiece(Box::new(std::iter::empty()), 4).count(), 0);
    }
}
