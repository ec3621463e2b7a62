//! HTTP fuzz/mutation suite: every endpoint of the mock (OpenAI and Anthropic) and of the
//! reference gateway, attacked with mutated requests, each server a child process of the
//! built binary under a 2 GiB address-space limit.
//!
//! Short run (in `cargo test`):  `cargo test --test fuzz_http`
//! Long run (≥ 100,000 cases):   `cargo test --release --test fuzz_http -- --ignored long --nocapture`
//! Replay one case:              `FUZZ_HTTP_SEED=S FUZZ_HTTP_CASE=N cargo test --test fuzz_http -- --ignored replay --nocapture`
//!
//! Environment: `FUZZ_HTTP_SEED` (default 14 short, random long; always printed),
//! `FUZZ_HTTP_CASES` (default 1,000 short, 100,000 long), `FUZZ_HTTP_TIMEOUT_MS`
//! (per-request hard limit, default 10,000), `FUZZ_HTTP_OUT` (where the exact bytes of each
//! finding class's first request are written, default `target/fuzz_http`).
//!
//! The oracle (docs/fuzzing.md has the long version): no server exits, panics, stops
//! answering or passes the memory bound; every request is answered within its limit; every
//! status ≥ 400 carries a provider-shaped JSON body (the OpenAI envelope on OpenAI routes,
//! the Anthropic one on Anthropic routes, the admin envelope or the provider's on
//! `/_chaosgate/`); no 5xx for a client's mistake; an unmutated valid request succeeds; a
//! 413 only for a body over the limit. Findings of a class in [`KNOWN_DEFECTS`] are counted
//! and shown but do not fail the run.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Limits of the harness
// ---------------------------------------------------------------------------------------

/// Address-space limit of every server process (RLIMIT_AS).
const SERVER_ADDRESS_SPACE_BYTES: u64 = 2 << 30;
/// Peak resident memory above which a server counts as blown up.
const SERVER_RSS_MAX_BYTES: u64 = 512 << 20;
/// Header lines hyper parses in the mock (its `PARSER_MAX_HEADERS`, 4× the 100 lines it
/// accepts): more is refused by hyper itself (bare 431). The gateway's own server answers
/// every request it refuses in JSON (src/live/front.rs).
const PARSER_MAX_HEADERS: usize = 400;
/// Hyper's default read buffer for a request head (8 KiB + 100 × 4 KiB); a longer head is
/// refused by hyper itself (bare 431).
const HYPER_MAX_BUF_BYTES: usize = 8192 + 4096 * 100;
/// Hyper's fixed limit on a request target (bare 414 over it).
const HYPER_MAX_URI_BYTES: usize = 65_534;
/// Largest response body read; more is a finding (`oversized`).
const RESPONSE_BODY_MAX_BYTES: usize = 64 << 20;
/// Body limit of the mock and the gateway (their default, 4 MiB).
const BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// Body limit of the mock's `POST /_chaosgate/phases` (its `MAX_PHASE_BYTES`, 64 KiB).
const ADMIN_PHASE_LIMIT_BYTES: usize = 64 * 1024;
/// Liveness check (GET /health) every this many cases, and after every suspicious one.
const HEALTH_EVERY_CASES: u64 = 25;
/// Limit of a liveness request.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// Known defects: findings whose fix is still in progress elsewhere. Each entry names the
// defect, the code responsible, and matches the findings it explains. Empty since every
// finding of issue 14 was fixed; a new entry needs a named fix in progress, never a
// shrug (hyper's bare answers below HTTP are a rule of the oracle, `Case::below_http`).
// ---------------------------------------------------------------------------------------

/// A known defect class.
struct KnownDefect {
    /// Short name, shown in the summary.
    name: &'static str,
    /// Whether a finding is this defect.
    matches: fn(&Finding) -> bool,
}

const KNOWN_DEFECTS: &[KnownDefect] = &[];

// ---------------------------------------------------------------------------------------
// Targets, routes and expected envelopes
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Api {
    OpenAi,
    Anthropic,
}

/// Where a case is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    MockOpenAi,
    MockAnthropic,
    GatewayOpenAi,
    GatewayAnthropic,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::MockOpenAi,
        Target::MockAnthropic,
        Target::GatewayOpenAi,
        Target::GatewayAnthropic,
    ];
    fn is_gateway(self) -> bool {
        matches!(self, Target::GatewayOpenAi | Target::GatewayAnthropic)
    }
    fn api(self) -> Api {
        match self {
            Target::MockOpenAi | Target::GatewayOpenAi => Api::OpenAi,
            Target::MockAnthropic | Target::GatewayAnthropic => Api::Anthropic,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Target::MockOpenAi => "mock(openai)",
            Target::MockAnthropic => "mock(anthropic)",
            Target::GatewayOpenAi => "gateway(->openai mock)",
            Target::GatewayAnthropic => "gateway(->anthropic mock)",
        }
    }
}

/// The endpoint a case's template was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Chat,
    ChatNoV1,
    Embeddings,
    EmbeddingsNoV1,
    Messages,
    Models,
    ModelsNoV1,
    Health,
    Metrics,
    AdminState,
    AdminPhasePost,
    AdminPhaseDelete,
    AdminArrivals,
    GatewayEvents,
    Unknown,
}

fn routes_of(t: Target) -> &'static [(Route, u32)] {
    use Route::*;
    match t {
        Target::MockOpenAi => &[
            (Chat, 30),
            (ChatNoV1, 3),
            (Embeddings, 12),
            (EmbeddingsNoV1, 2),
            (Models, 3),
            (ModelsNoV1, 1),
            (Health, 3),
            (Metrics, 3),
            (AdminState, 2),
            (AdminPhasePost, 10),
            (AdminPhaseDelete, 3),
            (AdminArrivals, 3),
            (Messages, 2),
            (Unknown, 3),
        ],
        Target::MockAnthropic => &[
            (Messages, 40),
            (Models, 4),
            (Health, 3),
            (Metrics, 3),
            (AdminState, 2),
            (AdminPhasePost, 10),
            (AdminPhaseDelete, 3),
            (AdminArrivals, 3),
            (Chat, 2),
            (Unknown, 3),
        ],
        Target::GatewayOpenAi => &[
            (Chat, 40),
            (Embeddings, 15),
            (Models, 2),
            (Health, 5),
            (Metrics, 5),
            (GatewayEvents, 5),
            (Unknown, 4),
        ],
        Target::GatewayAnthropic => &[
            (Messages, 50),
            (Health, 5),
            (Metrics, 5),
            (GatewayEvents, 5),
            (Unknown, 4),
        ],
    }
}

/// What an error body must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// This provider's envelope.
    Api(Api),
    /// Either provider's envelope (the gateway's non-proxy routes).
    AnyApi,
    /// The admin envelope `{"error":{"type","message"}}` or the given provider's.
    AdminOr(Option<Api>),
}

/// The path of a request target (origin- or absolute-form), without the query.
fn path_of(uri: &[u8]) -> Vec<u8> {
    let mut u = uri;
    if let Some(p) = find(u, b"://") {
        let rest = &u[p + 3..];
        u = match rest.iter().position(|&b| b == b'/') {
            Some(i) => &rest[i..],
            None => b"/",
        };
    }
    let end = u.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(u.len());
    u[..end].to_vec()
}

fn expected_shape(t: Target, path: &[u8]) -> Shape {
    let admin = path.starts_with(b"/_chaosgate");
    if !t.is_gateway() {
        return if admin {
            Shape::AdminOr(Some(t.api()))
        } else {
            Shape::Api(t.api())
        };
    }
    if admin {
        return Shape::AdminOr(None);
    }
    // a proxy route answers in its API's envelope; a request of the other API than the
    // gateway's upstream speaks gets the upstream's answer passed on, so either will do
    let route_api = match path {
        b"/v1/messages" => Some(Api::Anthropic),
        b"/v1/chat/completions" | b"/v1/embeddings" => Some(Api::OpenAi),
        _ => None,
    };
    match route_api {
        Some(a) if a == t.api() => Shape::Api(a),
        _ => Shape::AnyApi,
    }
}

fn is_openai_envelope(v: &Value) -> bool {
    let e = &v["error"];
    e.is_object()
        && e["message"].is_string()
        && e["type"].is_string()
        && e.get("param").is_some_and(|p| p.is_null() || p.is_string())
        && e.get("code").is_some_and(|c| c.is_null() || c.is_string())
}

fn is_anthropic_envelope(v: &Value) -> bool {
    v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string()
}

fn is_admin_envelope(v: &Value) -> bool {
    v["error"]["type"].is_string() && v["error"]["message"].is_string()
}

fn shaped(shape: Shape, v: &Value) -> bool {
    match shape {
        Shape::Api(Api::OpenAi) => is_openai_envelope(v),
        Shape::Api(Api::Anthropic) => is_anthropic_envelope(v),
        Shape::AnyApi => is_openai_envelope(v) || is_anthropic_envelope(v),
        Shape::AdminOr(api) => {
            is_admin_envelope(v)
                || match api {
                    Some(a) => shaped(Shape::Api(a), v),
                    None => shaped(Shape::AnyApi, v),
                }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

/// How the body is framed on the wire.
#[derive(Clone, Debug, PartialEq)]
enum Framing {
    /// `content-length: <len>`.
    Length,
    /// `transfer-encoding: chunked`, pieces of this size.
    Chunked(usize),
    /// Neither header (a body then reads as the next request).
    None,
    /// `content-length` larger than the body, then the write half is closed.
    LongerThanSent(usize),
    /// Chunked with a bad chunk-size line, then the write half is closed.
    BadChunk,
}

/// A `x-chaosgate-fault` header the case sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forced {
    None,
    /// A valid fault: errors, resets and cut streams are what was asked for.
    Valid,
    /// An invalid header value: must get a provider-shaped 400.
    Invalid,
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    index: u64,
    target: Target,
    route: Route,
    method: Vec<u8>,
    uri: Vec<u8>,
    version: Vec<u8>,
    /// Send a `host` header.
    host: bool,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
    forced: Forced,
    /// What was done to the template.
    mutations: Vec<String>,
}

impl Case {
    /// The exact bytes sent.
    fn wire(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.body.len() + 512);
        w.extend_from_slice(&self.method);
        w.push(b' ');
        w.extend_from_slice(&self.uri);
        w.push(b' ');
        w.extend_from_slice(&self.version);
        w.extend_from_slice(b"\r\n");
        if self.host {
            w.extend_from_slice(b"host: 127.0.0.1\r\n");
        }
        match &self.framing {
            Framing::Length => w.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes()),
            Framing::LongerThanSent(extra) => {
                w.extend_from_slice(format!("content-length: {}\r\n", self.body.len() + extra).as_bytes())
            }
            Framing::Chunked(_) | Framing::BadChunk => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Framing::None => {}
        }
        for (k, v) in &self.headers {
            w.extend_from_slice(k);
            w.extend_from_slice(b": ");
            w.extend_from_slice(v);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
        match &self.framing {
            Framing::Chunked(n) => {
                for c in self.body.chunks((*n).max(1)) {
                    w.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    w.extend_from_slice(c);
                    w.extend_from_slice(b"\r\n");
                }
                w.extend_from_slice(b"0\r\n\r\n");
            }
            Framing::BadChunk => {
                w.extend_from_slice(b"zz\r\n");
                w.extend_from_slice(&self.body);
            }
            _ => w.extend_from_slice(&self.body),
        }
        w
    }

    /// The write half is closed after sending (the request is cut short on purpose).
    fn half_close(&self) -> bool {
        matches!(self.framing, Framing::LongerThanSent(_) | Framing::BadChunk)
    }

    /// A mutation added a `transfer-encoding` or `content-length` of its own: the server
    /// may rightly wait for body bytes that never come.
    fn framing_ambiguous(&self) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(b"transfer-encoding") || k.eq_ignore_ascii_case(b"content-length"))
    }

    /// Why hyper answers this request by itself, below HTTP semantics, before any route
    /// exists (`None`: the request reaches the router). The oracle parses the head as
    /// hyper does: with `httparse`, the parser hyper uses, under the servers' parser limits
    /// ([`PARSER_MAX_HEADERS`] lines, a [`HYPER_MAX_BUF_BYTES`] buffer), then hyper's own
    /// checks of the request target ([`HYPER_MAX_URI_BYTES`]) and of the framing headers
    /// (RFC 9112 §6: a bad `content-length`, a `transfer-encoding` that does not end in
    /// `chunked` or comes with HTTP/1.0). Hyper's answer to those is a bare status with no
    /// hook for a body, so they are the one class of errors allowed to be unshaped.
    fn below_http(&self) -> Option<&'static str> {
        let wire = self.wire();
        let mut headers = vec![httparse::EMPTY_HEADER; PARSER_MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&wire) {
            Err(httparse::Error::TooManyHeaders) => return Some("more header lines than the parser takes"),
            Err(_) => return Some("not HTTP/1.x syntax"),
            Ok(httparse::Status::Partial) => {
                return (wire.len() > HYPER_MAX_BUF_BYTES).then_some("request head over the parser's buffer")
            }
            Ok(httparse::Status::Complete(n)) => n,
        };
        if head_len > HYPER_MAX_BUF_BYTES {
            return Some("request head over the parser's buffer");
        }
        let path = req.path.unwrap_or("");
        if path.len() > HYPER_MAX_URI_BYTES {
            return Some("request target over hyper's URI limit");
        }
        if path.parse::<axum::http::Uri>().is_err() {
            return Some("request target is not a URI");
        }
        if axum::http::Method::from_bytes(req.method.unwrap_or("").as_bytes()).is_err() {
            return Some("method is not a token");
        }
        let http10 = req.version == Some(0);
        let (mut te, mut te_chunked, mut length) = (false, false, None::<u64>);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if http10 {
                    return Some("transfer-encoding in HTTP/1.0");
                }
                te = true;
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                te_chunked = String::from_utf8_lossy(last).trim().eq_ignore_ascii_case("chunked");
            } else if h.name.eq_ignore_ascii_case("content-length") && !te {
                let v = h.value;
                let n = (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .flatten();
                match (n, length) {
                    (None, _) => return Some("content-length is not a number"),
                    (Some(n), Some(prev)) if n != prev => return Some("two different content-lengths"),
                    (Some(n), _) => length = Some(n),
                }
            }
        }
        if te && !te_chunked {
            return Some("transfer-encoding does not end in chunked");
        }
        None
    }

    fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case(b"HEAD")
    }

    fn describe(&self) -> String {
        format!(
            "case {} of seed {} → {} route {:?}; mutations: [{}]",
            self.index,
            self.seed,
            self.target.label(),
            self.route,
            self.mutations.join("; ")
        )
    }
}

/// Escapes bytes for printing (ASCII as is, the rest as \xNN), cut to `max` bytes.
fn escape(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > max {
        s.push_str(&format!("…[{} more bytes]", b.len() - max));
    }
    s
}

// ---- templates ----

fn chat_template(rng: &mut ChaCha8Rng) -> Value {
    let stream = rng.random_bool(0.4);
    let mut v = json!({
        "model": (["gpt-4o", "gpt-4o-mini", "o3-mini"][rng.random_range(0..3)]),
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello in three words."}
        ],
        "max_tokens": rng.random_range(1..=40),
        "stream": stream,
    });
    if stream && rng.random_bool(0.5) {
        v["stream_options"] = json!({"include_usage": true});
    }
    if rng.random_bool(0.3) {
        v["temperature"] = json!(0.7);
        v["top_p"] = json!(1);
        v["user"] = json!("fuzz");
    }
    if rng.random_bool(0.2) {
        v["messages"][1]["content"] = json!([{"type": "text", "text": "hello"}]);
    }
    if rng.random_bool(0.15) {
        v["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]);
    }
    if rng.random_bool(0.15) {
        let m = v["max_tokens"].take();
        v.as_object_mut().unwrap().remove("max_tokens");
        v["max_completion_tokens"] = m;
    }
    if rng.random_bool(0.1) {
        v["n"] = json!(1);
        v["stop"] = json!(["\n\n"]);
    }
    v
}

fn embeddings_template(rng: &mut ChaCha8Rng) -> Value {
    let input = match rng.random_range(0..4) {
        0 => json!("the quick brown fox"),
        1 => json!(["one", "two", "three"]),
        2 => json!([1, 2, 3, 4]),
        _ => json!([[1, 2], [3]]),
    };
    let mut v = json!({"model": "text-embedding-3-small", "input": input});
    if rng.random_bool(0.3) {
        v["dimensions"] = json!(rng.random_range(1..=64));
    }
    if rng.random_bool(0.3) {
        v["encoding_format"] = json!(["float", "base64"][rng.random_range(0..2)]);
    }
    v
}

fn messages_template(rng: &mut ChaCha8Rng) -> Value {
    let mut v = json!({
        "model": (["claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022"][rng.random_range(0..2)]),
        "max_tokens": rng.random_range(1..=40),
        "messages": [{"role": "user", "content": "Say hello in three words."}],
        "stream": rng.random_bool(0.4),
    });
    if rng.random_bool(0.3) {
        v["system"] = json!("You are terse.");
        v["temperature"] = json!(0.5);
    }
    if rng.random_bool(0.2) {
        v["messages"] = json!([
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"}
        ]);
    }
    if rng.random_bool(0.15) {
        v["tools"] = json!([{"name": "f", "description": "d", "input_schema": {"type": "object"}}]);
        v["metadata"] = json!({"user_id": "fuzz"});
        v["stop_sequences"] = json!(["END"]);
    }
    v
}

fn phase_template(rng: &mut ChaCha8Rng, name: &str) -> Value {
    let mut v = json!({"name": name, "start": "0s", "duration": "1s"});
    let o = v.as_object_mut().unwrap();
    let pool: [(&str, Value); 14] = [
        ("errors", json!([{"status": 503, "probability": 0.5}])),
        (
            "connection",
            json!([{"kind": "reset", "probability": 0.1, "after": "10ms"}]),
        ),
        (
            "stream",
            json!([{"kind": "cut", "probability": 0.5, "after_tokens": 3}]),
        ),
        ("ttft", json!({"kind": "lognormal", "p50": "200ms", "p99": "2s"})),
        (
            "latency",
            json!({"kind": "quantiles", "p50": "1s", "p95": "2s", "p99": "3s", "cap": "10s"}),
        ),
        (
            "tokens_per_s",
            json!({"mean": 60, "cv": 0.2, "process": "random_walk", "step": "1s", "correlation": 0.8}),
        ),
        ("rate_limit", json!({"requests_per_min": 60, "tokens_per_min": 10000})),
        ("flapping", json!({"period": "10s", "duty": 0.5})),
        ("random", json!({"mtbf": "2s", "mttr": "1s"})),
        ("health", json!({"status": 503, "probability": 0.7})),
        ("output_tokens", json!({"min": 1, "max": 20})),
        ("latency_multiplier", json!(3.0)),
        ("ramp_in", json!("1s")),
        ("applies_to", json!("completions")),
    ];
    let k = rng.random_range(1..=3);
    for _ in 0..k {
        let (key, val) = &pool[rng.random_range(0..pool.len())];
        // a phase takes `flapping` or `random`, not both
        if (*key == "flapping" && o.contains_key("random")) || (*key == "random" && o.contains_key("flapping")) {
            continue;
        }
        o.insert((*key).to_string(), val.clone());
    }
    v
}

/// A phase as TOML text (the admin API takes both).
fn toml_of(v: &Value) -> String {
    let mut s = String::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            s.push_str(&format!("{k} = {}\n", toml_value(x)));
        }
    }
    s
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, x)| format!("{k} = {}", toml_value(x))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Null => "\"\"".into(),
        other => other.to_string(),
    }
}

// ---- value pools ----

/// Numbers as raw JSON text (some beyond what a parser holds).
const RAW_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "1.5",
    "0.0000001",
    "1E2",
    "1e3",
    "1.0",
    "-0.0",
    "100000",
    "1000000",
    "16384",
    "128000",
    "123456789012345678901234567890",
];

/// Raw texts that are not valid JSON values where they are put.
const RAW_INVALID: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "01",
    "+1",
    ".5",
    "1.",
    "0x10",
    "True",
    "None",
    "undefined",
    "'single'",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u00\"",
    "\"\\x41\"",
    "\"tab\there\"",
    "\"\\u0000\"",
    "[1,]",
    "{\"a\":1,}",
    "{\"a\"}",
    "\"unterminated",
];

const DURATIONS: &[&str] = &[
    "0s",
    "-1s",
    "1ns",
    "0ns",
    "18446744073709551615ns",
    "18446744073709551616ns",
    "99999999999h",
    "584942y",
    "1e3s",
    "",
    "1.5s",
    "1s 2ms",
    "NaNs",
    "inf",
    "10",
    "1 fortnight",
    "0.000000001ns",
];

fn special_string(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..12) {
        0 => String::new(),
        1 => "NaN".into(),
        2 => "Infinity".into(),
        3 => "-1".into(),
        4 => "4294967296".into(),
        5 => "a".repeat([100, 10_000, 1_000_000][rng.random_range(0..3)]),
        6 => "héllo 世界 🦀 \u{202e}rtl\u{0} \u{feff}\u{10ffff}".into(),
        7 => "null".into(),
        8 => DURATIONS[rng.random_range(0..DURATIONS.len())].into(),
        9 => "\u{0}".repeat(64),
        10 => "\"quoted\\\" \\back\\slash\nnew\"line".into(),
        _ => "true".into(),
    }
}

/// A replacement value; raw texts go through `raws` (see [`render_json`]).
fn special_value(rng: &mut ChaCha8Rng, raws: &mut Vec<String>) -> (Value, String) {
    let raw = |s: String, raws: &mut Vec<String>| {
        let m = format!("\u{1}R{}\u{1}", raws.len());
        raws.push(s);
        Value::String(m)
    };
    match rng.random_range(0..16) {
        0..=3 => {
            let n = RAW_NUMBERS[rng.random_range(0..RAW_NUMBERS.len())];
            (raw(n.to_string(), raws), format!("number {n}"))
        }
        4 => {
            let digits = "9".repeat(rng.random_range(30..600));
            (raw(digits, raws), "a long number".into())
        }
        5 => {
            let t = RAW_INVALID[rng.random_range(0..RAW_INVALID.len())];
            (raw(t.to_string(), raws), format!("raw {t}"))
        }
        6 | 7 => {
            let s = special_string(rng);
            let d = format!("string {:?}", s.chars().take(24).collect::<String>());
            (Value::String(s), d)
        }
        8 => (Value::Null, "null".into()),
        9 => (Value::Bool(rng.random()), "bool".into()),
        10 => (json!({}), "{}".into()),
        11 => (json!([]), "[]".into()),
        12 => {
            let depth = [64, 127, 129, 1_000, 100_000][rng.random_range(0..5)];
            let open = rng.random_bool(0.1);
            let (o, c) = if rng.random_bool(0.5) {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            let close = if open { String::new() } else { c.repeat(depth) };
            (
                raw(format!("{}1{}", o.repeat(depth), close), raws),
                format!("nesting {depth}{}", if open { " unclosed" } else { "" }),
            )
        }
        13 => {
            let n = [1_000, 100_000][rng.random_range(0..2)];
            (Value::Array(vec![json!("x"); n]), format!("array of {n}"))
        }
        14 => {
            let n = [100, 10_000][rng.random_range(0..2)];
            let m: serde_json::Map<String, Value> = (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
            (Value::Object(m), format!("object of {n} keys"))
        }
        _ => (json!(rng.random::<f64>() * 1e6), "a float".into()),
    }
}

/// JSON text with raw markers replaced by their texts.
fn render_json(v: &Value, raws: &[String]) -> Vec<u8> {
    let mut s = v.to_string();
    for (i, r) in raws.iter().enumerate() {
        s = s.replace(&format!("\"\\u0001R{i}\\u0001\""), r);
    }
    s.into_bytes()
}

/// Every node's path (object keys and array indices).
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    if out.len() > 400 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                prefix.push(Value::String(k.clone()));
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(20) {
                prefix.push(json!(i));
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Value::String(k) => cur.get_mut(k.as_str())?,
            Value::Number(i) => cur.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn path_str(p: &[Value]) -> String {
    p.iter()
        .map(|s| match s {
            Value::String(k) => k.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// One structural mutation of a JSON body; returns its description. Duplicate keys are
/// textual and returned as a prefix to splice after the opening brace.
fn mutate_json(rng: &mut ChaCha8Rng, v: &mut Value, raws: &mut Vec<String>, dup: &mut Vec<String>) -> String {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    if all.is_empty() {
        let (x, d) = special_value(rng, raws);
        *v = x;
        return format!("body := {d}");
    }
    let p = all[rng.random_range(0..all.len())].clone();
    let ps = path_str(&p);
    match rng.random_range(0..10) {
        0..=4 => {
            let (x, d) = special_value(rng, raws);
            if let Some(slot) = at_mut(v, &p) {
                *slot = x;
            }
            format!("{ps} := {d}")
        }
        5 => {
            let (last, parent) = p.split_last().unwrap();
            if let Some(par) = at_mut(v, parent) {
                match (par, last) {
                    (Value::Object(m), Value::String(k)) => {
                        m.remove(k);
                    }
                    (Value::Array(a), Value::Number(i)) => {
                        let i = i.as_u64().unwrap() as usize;
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            format!("remove {ps}")
        }
        6 => {
            if let Some(slot) = at_mut(v, &p) {
                let old = slot.take();
                *slot = if rng.random_bool(0.5) {
                    json!([old])
                } else {
                    json!({ "value": old })
                };
            }
            format!("wrap {ps}")
        }
        7 => {
            let key = ["model", "max_tokens", "stream", "messages", "input", "name", "start"][rng.random_range(0..7)];
            let (x, d) = special_value(rng, raws);
            let text = String::from_utf8_lossy(&render_json(&x, raws)).into_owned();
            dup.push(format!("\"{key}\":{text},"));
            format!("duplicate key {key} = {d}")
        }
        8 => {
            if let Some(Value::Object(m)) = at_mut(v, &p[..p.len() - 1]) {
                m.insert("unknown_fuzz_key".into(), json!({"nested": [1, "two"]}));
            }
            format!("unknown key beside {ps}")
        }
        _ => {
            // a number field becomes each interesting number in turn (by draw)
            let n = RAW_NUMBERS[rng.random_range(0..RAW_NUMBERS.len())];
            let key = [
                "max_tokens",
                "max_completion_tokens",
                "n",
                "temperature",
                "dimensions",
                "duration",
                "probability",
            ][rng.random_range(0..7)];
            if let Value::Object(m) = v {
                let m_ = format!("\u{1}R{}\u{1}", raws.len());
                raws.push(n.to_string());
                m.insert(key.into(), Value::String(m_));
            }
            format!("{key} := {n}")
        }
    }
}

/// Byte-level mutations of a body.
fn mutate_bytes(rng: &mut ChaCha8Rng, body: &mut Vec<u8>) -> String {
    match rng.random_range(0..12) {
        0 if !body.is_empty() => {
            let at = rng.random_range(0..body.len());
            body.truncate(at);
            format!("truncate body at {at}")
        }
        1 if !body.is_empty() => {
            let at = rng.random_range(0..body.len());
            let b: u8 = rng.random();
            body[at] = b;
            format!("byte {at} := {b:#04x}")
        }
        2 => {
            let seqs: [&[u8]; 6] = [
                b"\xff",
                b"\xc3\x28",
                b"\xc0\xaf",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\x00",
            ];
            let s = seqs[rng.random_range(0..seqs.len())];
            let at = if body.is_empty() {
                0
            } else {
                rng.random_range(0..body.len())
            };
            body.splice(at..at, s.iter().copied());
            format!("insert invalid UTF-8 {} at {at}", escape(s, 8))
        }
        3 => {
            body.splice(0..0, b"\xef\xbb\xbf".iter().copied());
            "prepend a BOM".into()
        }
        4 => {
            let tails: [&[u8]; 4] = [b"}", b"\n{}", b"garbage", b"\x00"];
            let t = tails[rng.random_range(0..tails.len())];
            body.extend_from_slice(t);
            format!("append {}", escape(t, 8))
        }
        5 => {
            let n = [1_000, 100_000, 1_000_000][rng.random_range(0..3)];
            body.splice(0..0, std::iter::repeat_n(b' ', n));
            format!("{n} spaces before the body")
        }
        6 if rng.random_bool(0.15) => {
            let n = BODY_LIMIT_BYTES + rng.random_range(1..=1024);
            body.resize(n, b' ');
            format!("pad the body to {n} bytes (over the 4 MiB limit)")
        }
        7 => {
            let whole: [&[u8]; 9] = [
                b"",
                b"null",
                b"[]",
                b"\"str\"",
                b"123",
                b"model=gpt-4o&max_tokens=5",
                b"<xml/>",
                b"{",
                b"{}",
            ];
            let w = whole[rng.random_range(0..whole.len())];
            *body = w.to_vec();
            format!("body := {}", escape(w, 40))
        }
        8 => {
            let n = rng.random_range(0..256);
            *body = (0..n).map(|_| rng.random()).collect();
            format!("body := {n} random bytes")
        }
        _ => {
            // a random ASCII punctuation byte somewhere
            let p = b"{}[]\":,\\";
            let c = p[rng.random_range(0..p.len())];
            let at = if body.is_empty() {
                0
            } else {
                rng.random_range(0..body.len())
            };
            body.insert(at, c);
            format!("insert {:?} at {at}", c as char)
        }
    }
}

/// Valid `x-chaosgate-fault` values that end in bounded time.
const FAULTS_VALID: &[&str] = &[
    "status=503",
    "status=500",
    "status=429,retry_after=1s",
    "status=429,kind=insufficient_quota",
    "status=529",
    "status=599",
    "status=400",
    "status=404,kind=not_found",
    "delay=10ms",
    "delay=50ms,status=502",
    "reset",
    "cut_after=2",
    "cut_after=0",
    "error_after=1",
    "malformed_after=1",
    "no_terminal",
    "slow_body=100000000",
    "status=503,retry_after=99999999h",
    "status=429,retry_after=0s",
];
/// Invalid ones: each must get a 400.
const FAULTS_INVALID: &[&str] = &[
    "status=200",
    "status=99999",
    "status=-1",
    "status=",
    "kind=server",
    "explode",
    "delay=-1s",
    "delay=abc",
    "slow_body=0",
    "cut_after=-1",
    "cut_after=4294967296",
    "status=503,kind=nope",
    "status=4e2",
    "delay",
];

fn mutate_headers(rng: &mut ChaCha8Rng, c: &mut Case) -> String {
    let h = &mut c.headers;
    match rng.random_range(0..20) {
        0 => {
            h.retain(|(k, _)| !k.eq_ignore_ascii_case(b"content-type"));
            "no content-type".into()
        }
        1 | 2 => {
            let v: &[u8] = [
                &b"text/plain"[..],
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b"application/json; charset=latin1",
                b"application/jsonx",
                b"*/*",
                b"",
                b"\xff\xfe",
                b"application/json, application/json",
            ][rng.random_range(0..9)];
            h.retain(|(k, _)| !k.eq_ignore_ascii_case(b"content-type"));
            h.push((b"content-type".to_vec(), v.to_vec()));
            format!("content-type: {}", escape(v, 40))
        }
        3 => {
            let n = [8 << 10, 64 << 10, 1 << 20][rng.random_range(0..3)];
            h.push((b"x-fuzz-big".to_vec(), vec![b'a'; n]));
            format!("a {n}-byte header")
        }
        4 => {
            let n = [50, 99, 101, 500, 5_000][rng.random_range(0..5)];
            for i in 0..n {
                h.push((format!("x-fuzz-{i}").into_bytes(), b"1".to_vec()));
            }
            format!("{n} extra headers")
        }
        5 => {
            let names: [&[u8]; 5] = [b"x y", b"\x01bad", b"\xffname", b"(paren)", b""];
            let n = names[rng.random_range(0..names.len())];
            h.push((n.to_vec(), b"v".to_vec()));
            format!("header name {}", escape(n, 20))
        }
        6 => {
            let vals: [&[u8]; 4] = [b"a\x00b", b"\x7f", b"\xff\xfe\xfd", b"caf\xc3\xa9"];
            let v = vals[rng.random_range(0..vals.len())];
            h.push((b"x-fuzz".to_vec(), v.to_vec()));
            format!("header value {}", escape(v, 20))
        }
        7 => {
            let v: &[u8] = [&b"-1"[..], b"abc", b"99999999999999999999", b"5, 6", b""][rng.random_range(0..5)];
            h.push((b"content-length".to_vec(), v.to_vec()));
            format!("extra content-length: {}", escape(v, 30))
        }
        8 => {
            let v: &[u8] = [&b"gzip"[..], b"chunked, chunked", b"identity", b"gzip, chunked"][rng.random_range(0..4)];
            h.push((b"transfer-encoding".to_vec(), v.to_vec()));
            format!("extra transfer-encoding: {}", escape(v, 30))
        }
        9 => {
            let v: &[u8] = [&b"gzip"[..], b"br", b"deflate", b"zstd"][rng.random_range(0..4)];
            h.push((b"content-encoding".to_vec(), v.to_vec()));
            format!("content-encoding: {}", escape(v, 30))
        }
        10 => {
            h.push((b"expect".to_vec(), b"100-continue".to_vec()));
            "expect: 100-continue".into()
        }
        11 => {
            let (k, v): (&[u8], &[u8]) = [
                (&b"connection"[..], &b"close"[..]),
                (b"connection", b"upgrade"),
                (b"upgrade", b"websocket"),
                (b"connection", b"keep-alive, upgrade, te"),
            ][rng.random_range(0..4)];
            h.push((k.to_vec(), v.to_vec()));
            if rng.random_bool(0.5) {
                h.push((b"upgrade".to_vec(), b"h2c".to_vec()));
            }
            format!("{}: {}", escape(k, 20), escape(v, 30))
        }
        12 => {
            let (k, v) = [
                ("authorization", "Bearer sk-".to_string() + &"x".repeat(4000)),
                ("x-api-key", String::new()),
                ("anthropic-version", "1999-99-99".into()),
                ("anthropic-beta", "x,".repeat(500)),
                ("openai-organization", "\u{1f980}".into()),
                ("accept", "text/event-stream".into()),
                ("accept-encoding", "gzip, br, zstd".into()),
                ("x-request-id", "r".repeat(10_000)),
            ][rng.random_range(0..8)]
            .clone();
            let d = format!("{k}: {}", escape(v.as_bytes(), 30));
            h.push((k.as_bytes().to_vec(), v.into_bytes()));
            d
        }
        13 => {
            c.host = false;
            if rng.random_bool(0.5) {
                h.push((b"host".to_vec(), b"a".to_vec()));
                h.push((b"host".to_vec(), b"b:99999".to_vec()));
                "two host headers".into()
            } else {
                "no host header".into()
            }
        }
        14 => {
            h.push((b"x-fuzz".to_vec(), b"a\r\n folded".to_vec()));
            "obs-fold header".into()
        }
        15 => {
            h.push((b"no-colon-line".to_vec(), Vec::new()));
            // rendered as "no-colon-line: " — make it truly colon-less
            let last = h.len() - 1;
            h[last].0 = b"no colon line\r\nx-a".to_vec();
            "a header line without a colon".into()
        }
        16 => {
            let v = if rng.random_bool(0.7) { "1" } else { "yes\u{0}" };
            h.push((b"x-chaosgate-probe".to_vec(), v.as_bytes().to_vec()));
            format!("x-chaosgate-probe: {}", escape(v.as_bytes(), 10))
        }
        _ => {
            let (v, kind) = if rng.random_bool(0.6) {
                (
                    FAULTS_VALID[rng.random_range(0..FAULTS_VALID.len())]
                        .as_bytes()
                        .to_vec(),
                    Forced::Valid,
                )
            } else if rng.random_bool(0.85) {
                (
                    FAULTS_INVALID[rng.random_range(0..FAULTS_INVALID.len())]
                        .as_bytes()
                        .to_vec(),
                    Forced::Invalid,
                )
            } else {
                (b"status=\xff503".to_vec(), Forced::Invalid)
            };
            let d = format!("x-chaosgate-fault: {}", escape(&v, 60));
            h.retain(|(k, _)| !k.eq_ignore_ascii_case(b"x-chaosgate-fault"));
            h.push((b"x-chaosgate-fault".to_vec(), v));
            c.forced = kind;
            d
        }
    }
}

const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"PATCH",
    b"HEAD",
    b"OPTIONS",
    b"TRACE",
    b"CONNECT",
    b"post",
    b"FOO",
    b"M-SEARCH",
    b"PO ST",
    b"",
    b"P\xc3\x96ST",
    b"\x00",
];

fn mutate_method(rng: &mut ChaCha8Rng, c: &mut Case) -> String {
    c.method = if rng.random_bool(0.05) {
        vec![b'A'; [1_000, 100_000][rng.random_range(0..2)]]
    } else {
        METHODS[rng.random_range(0..METHODS.len())].to_vec()
    };
    format!("method {}", escape(&c.method, 20))
}

const QUERIES: &[&str] = &[
    "?",
    "?a=b",
    "?stream=true",
    "?since=-1",
    "?since=18446744073709551616",
    "?limit=0",
    "?limit=99999999999999999999999",
    "?since=1&since=2",
    "?since=%FF",
    "?a=%",
    "?since=0x10",
    "?limit=1e3",
    "?since=1&limit=1&extra=1",
    "?since=&limit=",
    "?%00=%00",
    "?since=99999999999",
];

fn mutate_uri(rng: &mut ChaCha8Rng, c: &mut Case) -> String {
    let u = &mut c.uri;
    match rng.random_range(0..15) {
        0 => {
            u.push(b'/');
            "trailing slash".into()
        }
        1 => {
            u.insert(0, b'/');
            "leading double slash".into()
        }
        2 => {
            u.make_ascii_uppercase();
            "uppercase path".into()
        }
        3 => {
            let q = QUERIES[rng.random_range(0..QUERIES.len())];
            u.extend_from_slice(q.as_bytes());
            format!("query {q}")
        }
        4 => {
            let q = format!("?q={}", "a".repeat([1_000, 70_000][rng.random_range(0..2)]));
            u.extend_from_slice(q.as_bytes());
            format!("a {}-byte query", q.len())
        }
        5 => {
            let n = [8_000, 100_000][rng.random_range(0..2)];
            u.extend_from_slice(format!("/{}", "x".repeat(n)).as_bytes());
            format!("a {n}-byte path segment")
        }
        6 => {
            let ins: [&[u8]; 7] = [b"%00", b"%FF", b"%", b"%2F", b"/../", b"/./", b"%E2%98%83"];
            let s = ins[rng.random_range(0..ins.len())];
            let at = rng.random_range(0..=u.len());
            u.splice(at..at, s.iter().copied());
            format!("insert {} into the path", escape(s, 10))
        }
        7 => {
            let mut a = b"http://127.0.0.1:1".to_vec();
            a.extend_from_slice(u);
            *u = a;
            "absolute-form target".into()
        }
        8 => {
            *u = [
                &b"*"[..],
                b"",
                b"v1/chat/completions",
                b"//",
                b"/\xc3\xa9",
                b"/a b",
                b"/#frag",
            ][rng.random_range(0..7)]
            .to_vec();
            format!("target {}", escape(u, 30))
        }
        9 => {
            u.extend_from_slice(b"#fragment");
            "fragment".into()
        }
        10 => {
            let other = [
                "/v1/chat/completions",
                "/v1/messages",
                "/v1/embeddings",
                "/v1/models/gpt-4o",
                "/v1/messages/count_tokens",
                "/v1/completions",
                "/v2/chat/completions",
                "/_chaosgate",
                "/_chaosgate/",
                "/_chaosgate/phases",
                "/_chaosgate/events",
                "/_chaosgate/nope",
                "/metrics/",
                "/health?x=1",
                "/",
            ][rng.random_range(0..15)];
            *u = other.as_bytes().to_vec();
            format!("path {other}")
        }
        _ => {
            let q = QUERIES[rng.random_range(0..QUERIES.len())];
            u.extend_from_slice(q.as_bytes());
            format!("query {q}")
        }
    }
}

fn mutate_framing(rng: &mut ChaCha8Rng, c: &mut Case) -> String {
    c.framing = match rng.random_range(0..5) {
        0 | 1 => Framing::Chunked([1, 7, 1024][rng.random_range(0..3)]),
        2 => Framing::None,
        3 => Framing::LongerThanSent([1, 100][rng.random_range(0..2)]),
        _ => Framing::BadChunk,
    };
    format!("framing {:?}", c.framing)
}

fn mutate_version(rng: &mut ChaCha8Rng, c: &mut Case) -> String {
    let v: &[u8] = [
        &b"HTTP/1.0"[..],
        b"HTTP/2.0",
        b"HTTP/0.9",
        b"HTTP/1.2",
        b"HTTP/9.9",
        b"http/1.1",
        b"HTTP/1.1 x",
        b"",
    ][rng.random_range(0..8)];
    c.version = v.to_vec();
    format!("version {}", escape(v, 20))
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (t, w) in items {
        if x < *w {
            return *t;
        }
        x -= w;
    }
    items[0].0
}

/// The RNG of one case: the run seed and the case index, nothing else.
fn case_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(index);
    r
}

/// Builds case `index` of the run `seed`.
fn generate(seed: u64, index: u64) -> Case {
    let mut rng = case_rng(seed, index);
    let target = pick(
        &mut rng,
        &[
            (Target::MockOpenAi, 35),
            (Target::MockAnthropic, 25),
            (Target::GatewayOpenAi, 20),
            (Target::GatewayAnthropic, 20),
        ],
    );
    let route = pick(&mut rng, routes_of(target));
    let phase_name = format!("fz{index}");
    let (method, path, body): (&str, String, Option<Value>) = match route {
        Route::Chat => ("POST", "/v1/chat/completions".into(), Some(chat_template(&mut rng))),
        Route::ChatNoV1 => ("POST", "/chat/completions".into(), Some(chat_template(&mut rng))),
        Route::Embeddings => ("POST", "/v1/embeddings".into(), Some(embeddings_template(&mut rng))),
        Route::EmbeddingsNoV1 => ("POST", "/embeddings".into(), Some(embeddings_template(&mut rng))),
        Route::Messages => ("POST", "/v1/messages".into(), Some(messages_template(&mut rng))),
        Route::Models => ("GET", "/v1/models".into(), None),
        Route::ModelsNoV1 => ("GET", "/models".into(), None),
        Route::Health => ("GET", "/health".into(), None),
        Route::Metrics => ("GET", "/metrics".into(), None),
        Route::AdminState => ("GET", "/_chaosgate/state".into(), None),
        Route::AdminPhasePost => (
            "POST",
            "/_chaosgate/phases".into(),
            Some(phase_template(&mut rng, &phase_name)),
        ),
        Route::AdminPhaseDelete => ("DELETE", format!("/_chaosgate/phases/{phase_name}"), None),
        Route::AdminArrivals => ("GET", "/_chaosgate/arrivals?since=0&limit=5".into(), None),
        Route::GatewayEvents => ("GET", "/_chaosgate/events?since=0".into(), None),
        Route::Unknown => ("GET", "/v1/unknown".into(), None),
    };
    let toml_phase = route == Route::AdminPhasePost && rng.random_bool(0.3);
    let mut c = Case {
        seed,
        index,
        target,
        route,
        method: method.as_bytes().to_vec(),
        uri: path.into_bytes(),
        version: b"HTTP/1.1".to_vec(),
        host: true,
        headers: Vec::new(),
        body: Vec::new(),
        framing: Framing::Length,
        forced: Forced::None,
        mutations: Vec::new(),
    };
    if body.is_some() && !toml_phase {
        c.headers.push((b"content-type".to_vec(), b"application/json".to_vec()));
    }
    if matches!(route, Route::Messages) {
        c.headers.push((b"anthropic-version".to_vec(), b"2023-06-01".to_vec()));
        c.headers.push((b"x-api-key".to_vec(), b"sk-ant-fuzz".to_vec()));
    } else if body.is_some() && route != Route::AdminPhasePost {
        c.headers.push((b"authorization".to_vec(), b"Bearer sk-fuzz".to_vec()));
    }
    // one case in twelve is the valid template itself: it must succeed
    let n_mut = if rng.random_bool(1.0 / 12.0) {
        0
    } else {
        pick(&mut rng, &[(1usize, 55), (2, 30), (3, 15)])
    };
    let mut value = body;
    let mut raws = Vec::new();
    let mut dup = Vec::new();
    let mut byte_ops = Vec::new();
    for _ in 0..n_mut {
        let has_body = value.is_some();
        let kind = pick(
            &mut rng,
            &[
                (0u8, if has_body { 40 } else { 0 }),
                (1, if has_body { 10 } else { 3 }),
                (2, 20),
                (3, 6),
                (4, 12),
                (5, 5),
                (6, 2),
            ],
        );
        let d = match kind {
            0 => mutate_json(&mut rng, value.as_mut().unwrap(), &mut raws, &mut dup),
            1 => {
                // applied after rendering
                byte_ops.push(rng.random::<u64>());
                "byte mutation (below)".into()
            }
            2 => mutate_headers(&mut rng, &mut c),
            3 => mutate_method(&mut rng, &mut c),
            4 => mutate_uri(&mut rng, &mut c),
            5 => mutate_framing(&mut rng, &mut c),
            _ => mutate_version(&mut rng, &mut c),
        };
        c.mutations.push(d);
    }
    c.body = match &value {
        None => Vec::new(),
        Some(v) if toml_phase => toml_of(v).into_bytes(),
        Some(v) => {
            let mut b = render_json(v, &raws);
            if !dup.is_empty() && b.first() == Some(&b'{') {
                let ins: String = dup.concat();
                b.splice(1..1, ins.into_bytes());
            }
            b
        }
    };
    for s in byte_ops {
        let mut r = ChaCha8Rng::seed_from_u64(s);
        let d = mutate_bytes(&mut r, &mut c.body);
        c.mutations.push(d);
    }
    if toml_phase {
        c.mutations.push("phase as TOML".into());
    }
    c
}

// ---------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------

/// One server: a child process of the built binary.
struct Server {
    label: String,
    args: Vec<String>,
    child: Child,
    addr: SocketAddr,
    /// `panicked` lines seen on stderr.
    panics: Arc<Mutex<Vec<String>>>,
    /// The last stderr lines.
    tail: Arc<Mutex<Vec<String>>>,
    restarts: u32,
}

fn start_process(label: &str, args: &[String]) -> Server {
    let bin = env!("CARGO_BIN_EXE_chaosgate");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TOKIO_WORKER_THREADS", "2")
        .env("MALLOC_ARENA_MAX", "2")
        .env("RUST_BACKTRACE", "0");
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: SERVER_ADDRESS_SPACE_BYTES as libc::rlim_t,
                rlim_max: SERVER_ADDRESS_SPACE_BYTES as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let panics = Arc::new(Mutex::new(Vec::new()));
    let tail = Arc::new(Mutex::new(Vec::new()));
    {
        let err = child.stderr.take().unwrap();
        let (panics, tail) = (panics.clone(), tail.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
                let l = String::from_utf8_lossy(&line).into_owned();
                if l.contains("panicked") {
                    panics.lock().unwrap().push(l.clone());
                }
                let mut t = tail.lock().unwrap();
                if t.len() >= 20 {
                    t.remove(0);
                }
                t.push(l);
            }
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(i) = line.find("listening on http://") {
                        let rest = &line[i + "listening on http://".len()..];
                        let a = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(a);
                        sent = true;
                    }
                }
            }
        });
    }
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a.parse().unwrap_or_else(|e| panic!("{label}: bad address {a:?}: {e}")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{label} did not start: {:?}", tail.lock().unwrap());
        }
    };
    Server {
        label: label.to_string(),
        args: args.to_vec(),
        child,
        addr,
        panics,
        tail,
        restarts: 0,
    }
}

impl Server {
    /// Kills and starts it again on the same port (so a gateway's target stays valid).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut args = self.args.clone();
        if let Some(i) = args.iter().position(|a| a == "--listen") {
            args[i + 1] = self.addr.to_string();
        }
        let mut last = None;
        for _ in 0..50 {
            // the old socket may linger a moment
            match std::panic::catch_unwind(|| start_process(&self.label, &args)) {
                Ok(s) => {
                    let restarts = self.restarts + 1;
                    *self = s;
                    self.args = args;
                    self.restarts = restarts;
                    return;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::panic::resume_unwind(last.unwrap());
    }

    /// Exited? (status text)
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!("{st}")),
            _ => None,
        }
    }

    /// Peak resident memory (VmHWM) in bytes.
    fn peak_rss(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    fn panic_count(&self) -> usize {
        self.panics.lock().unwrap().len()
    }

    fn alive(&self) -> bool {
        let r = exchange(
            self.addr,
            b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
            false,
            false,
            HEALTH_TIMEOUT,
        );
        r.status == Some(200) && r.complete
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every server the suite talks to: two mocks attacked directly, two mocks behind two
/// gateways (one per API; a gateway's proxy routes forward the path as it is).
struct Fleet {
    mock_openai: Server,
    mock_anthropic: Server,
    up_openai: Server,
    up_anthropic: Server,
    gw_openai: Server,
    gw_anthropic: Server,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mock_args(api: &str, name: &str) -> Vec<String> {
    [
        "mock",
        "--api",
        api,
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "1",
        "--name",
        name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A gateway config file with one target and a bounded upstream timeout, so an upstream
/// that stalls shows as a gateway 5xx (the harness's own limit is longer).
fn gateway_args(dir: &std::path::Path, name: &str, upstream: SocketAddr) -> Vec<String> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("request_timeout = \"5s\"\n\n[[targets]]\nname = \"up\"\nurl = \"http://{upstream}\"\n"),
    )
    .unwrap();
    vec![
        "gateway".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--seed".into(),
        "1".into(),
    ]
}

impl Fleet {
    fn start() -> Fleet {
        let dir = std::env::temp_dir().join(format!("chaosgate-fuzz-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mock_openai = start_process("mock(openai)", &mock_args("openai", "fuzz-openai"));
        let mock_anthropic = start_process("mock(anthropic)", &mock_args("anthropic", "fuzz-anthropic"));
        let up_openai = start_process("upstream mock(openai)", &mock_args("openai", "up-openai"));
        let up_anthropic = start_process("upstream mock(anthropic)", &mock_args("anthropic", "up-anthropic"));
        let gw_openai = start_process("gateway(openai)", &gateway_args(&dir, "gateway-openai", up_openai.addr));
        let gw_anthropic = start_process(
            "gateway(anthropic)",
            &gateway_args(&dir, "gateway-anthropic", up_anthropic.addr),
        );
        Fleet {
            mock_openai,
            mock_anthropic,
            up_openai,
            up_anthropic,
            gw_openai,
            gw_anthropic,
            _dir: TempDir(dir),
        }
    }

    /// The server a case is sent to, and its upstream (gateways).
    fn servers(&mut self, t: Target) -> (&mut Server, Option<&mut Server>) {
        match t {
            Target::MockOpenAi => (&mut self.mock_openai, None),
            Target::MockAnthropic => (&mut self.mock_anthropic, None),
            Target::GatewayOpenAi => (&mut self.gw_openai, Some(&mut self.up_openai)),
            Target::GatewayAnthropic => (&mut self.gw_anthropic, Some(&mut self.up_anthropic)),
        }
    }

    fn restarts(&self) -> u32 {
        [
            &self.mock_openai,
            &self.mock_anthropic,
            &self.up_openai,
            &self.up_anthropic,
            &self.gw_openai,
            &self.gw_anthropic,
        ]
        .iter()
        .map(|s| s.restarts)
        .sum()
    }
}

// ---------------------------------------------------------------------------------------
// The client: one raw HTTP/1.1 exchange on a fresh connection
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Reply {
    status: Option<u16>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The body ended where its framing said.
    complete: bool,
    timed_out: bool,
    /// The body was longer than [`RESPONSE_BODY_MAX_BYTES`].
    oversized: bool,
    /// The bytes back were not an HTTP response.
    malformed: bool,
    error: Option<String>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

/// Sends `raw` on a new connection and reads one response, all within `limit`.
fn exchange(addr: SocketAddr, raw: &[u8], half_close: bool, head: bool, limit: Duration) -> Reply {
    let deadline = Instant::now() + limit;
    let mut r = Reply::default();
    let mut s = match TcpStream::connect_timeout(&addr, limit.min(Duration::from_secs(3))) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = s.set_nodelay(true);
    // close with RST: no TIME_WAIT pile-up over 100,000 connections
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    let _ = s.set_write_timeout(Some(limit));
    if let Err(e) = s.write_all(raw) {
        // the server may answer early (413, 431) and close: read what it said
        r.error = Some(format!("write: {e}"));
    }
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let mut eof = false;
    // read more; false on EOF, error or timeout
    let mut fill = |s: &mut TcpStream, buf: &mut Vec<u8>, r: &mut Reply, eof: &mut bool| -> bool {
        if *eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            r.timed_out = true;
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut tmp) {
            Ok(0) => {
                *eof = true;
                false
            }
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                r.timed_out = true;
                false
            }
            Err(e) => {
                r.error = Some(format!("read: {e}"));
                *eof = true;
                false
            }
        }
    };
    // head (skipping 1xx interim responses)
    let (status, head_len, headers) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 256];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let code = resp.code.unwrap_or(0);
                let headers: Vec<(String, Vec<u8>)> = resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect();
                if (100..200).contains(&code) && code != 101 {
                    buf.drain(..n);
                    continue;
                }
                break (code, n, headers);
            }
            Ok(httparse::Status::Partial) => {
                if !fill(&mut s, &mut buf, &mut r, &mut eof) {
                    return r;
                }
            }
            Err(_) => {
                r.malformed = true;
                r.body = buf;
                return r;
            }
        }
    };
    buf.drain(..head_len);
    r.status = Some(status);
    r.headers = headers;
    let te_chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| String::from_utf8_lossy(v).to_ascii_lowercase().contains("chunked"));
    let len: Option<usize> = r
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
    if head || status == 204 || status == 304 || status == 101 {
        r.complete = true;
        return r;
    }
    if te_chunked {
        let mut pos = 0usize;
        loop {
            if r.body.len() > RESPONSE_BODY_MAX_BYTES {
                r.oversized = true;
                return r;
            }
            let Some(le) = find(&buf[pos..], b"\r\n") else {
                if !fill(&mut s, &mut buf, &mut r, &mut eof) {
                    return r;
                }
                continue;
            };
            let line = String::from_utf8_lossy(&buf[pos..pos + le]).into_owned();
            let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16) else {
                r.malformed = true;
                return r;
            };
            if size == 0 {
                r.complete = true;
                return r;
            }
            while buf.len() < pos + le + 2 + size + 2 {
                if !fill(&mut s, &mut buf, &mut r, &mut eof) {
                    return r;
                }
            }
            r.body.extend_from_slice(&buf[pos + le + 2..pos + le + 2 + size]);
            pos += le + 2 + size + 2;
            if pos > 1 << 20 {
                buf.drain(..pos);
                pos = 0;
            }
        }
    }
    match len {
        Some(n) if n > RESPONSE_BODY_MAX_BYTES => {
            r.oversized = true;
            r
        }
        Some(n) => {
            while buf.len() < n {
                if !fill(&mut s, &mut buf, &mut r, &mut eof) {
                    r.body = buf;
                    return r;
                }
            }
            buf.truncate(n);
            r.body = buf;
            r.complete = true;
            r
        }
        None => {
            // until EOF
            while fill(&mut s, &mut buf, &mut r, &mut eof) {
                if buf.len() > RESPONSE_BODY_MAX_BYTES {
                    r.oversized = true;
                    return r;
                }
            }
            r.complete = eof && r.error.is_none();
            r.body = buf;
            r
        }
    }
}

// ---------------------------------------------------------------------------------------
// Oracle
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Symptom {
    /// The process exited.
    Crash,
    /// "panicked" on stderr.
    Panic,
    /// No complete answer within the limit.
    Hang,
    /// GET /health unanswered after the case.
    Unresponsive,
    /// Peak RSS over the bound.
    Memory,
    /// A response body over the harness's read limit.
    Oversized,
    /// The connection closed without a response.
    NoResponse,
    /// The bytes back were not HTTP.
    MalformedResponse,
    /// A status ≥ 400 without the expected JSON envelope.
    NotShaped,
    /// A 5xx for a client's mistake.
    ServerError,
    /// An unmutated valid request was refused.
    ValidRefused,
    /// A 413 for a body under the limit.
    Spurious413,
    /// A 2xx JSON response whose body is not JSON.
    BadSuccessBody,
    /// Admin state could not be restored after the case (a phase could not be deleted).
    AdminCleanup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BodyKind {
    Empty,
    Json,
    Text,
    None,
}

#[derive(Clone, Debug)]
struct Finding {
    case: Arc<Case>,
    /// Which process misbehaved ("gateway(openai)", "upstream mock(openai)", …).
    server: String,
    symptom: Symptom,
    status: Option<u16>,
    body_kind: BodyKind,
    sent_path: Vec<u8>,
    detail: String,
}

impl Finding {
    /// The class: which program, what symptom, where. Findings of one cause share a
    /// class: both mocks (and the mocks behind the gateways) run the same code, and
    /// hyper's own answers to unparseable requests are one class whatever the path.
    fn class(&self) -> String {
        let server = if self.server.starts_with("gateway") {
            "gateway"
        } else if self.server.starts_with("upstream") {
            "mock (behind the gateway)"
        } else {
            "mock"
        };
        let status = self.status.map_or("-".to_string(), |s| s.to_string());
        let route = if self.hyper_level() {
            "(any: HTTP parse error)".to_string()
        } else {
            route_family(&self.sent_path)
        };
        format!(
            "{server} | {:?} | status {status} | body {:?} | {route}",
            self.symptom, self.body_kind
        )
    }

    /// An empty-bodied 400/414/431/505: hyper's own answer to a request it cannot parse.
    fn hyper_level(&self) -> bool {
        self.body_kind == BodyKind::Empty && matches!(self.status, Some(400 | 414 | 431 | 505))
    }

    fn known(&self) -> Option<&'static str> {
        KNOWN_DEFECTS.iter().find(|k| (k.matches)(self)).map(|k| k.name)
    }
}

/// A path as a route family (unknown paths grouped).
fn route_family(p: &[u8]) -> String {
    const KNOWN: &[&str] = &[
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/embeddings",
        "/embeddings",
        "/v1/messages",
        "/v1/models",
        "/models",
        "/health",
        "/metrics",
        "/_chaosgate/state",
        "/_chaosgate/phases",
        "/_chaosgate/arrivals",
        "/_chaosgate/events",
    ];
    let s = String::from_utf8_lossy(p);
    if let Some(k) = KNOWN.iter().find(|k| **k == s) {
        return k.to_string();
    }
    if s.starts_with("/_chaosgate/phases/") {
        return "/_chaosgate/phases/{name}".into();
    }
    if s.starts_with("/_chaosgate") {
        return "/_chaosgate/<other>".into();
    }
    "<other path>".into()
}

fn body_kind(r: &Reply) -> BodyKind {
    if r.status.is_none() {
        BodyKind::None
    } else if r.body.is_empty() {
        BodyKind::Empty
    } else if serde_json::from_slice::<Value>(&r.body).is_ok() {
        BodyKind::Json
    } else {
        BodyKind::Text
    }
}

/// Whether the request is well-formed HTTP/1.1 as sent (the server must then answer).
fn request_is_cut(c: &Case) -> bool {
    c.half_close()
}

/// Whether the unmutated template of this route must succeed.
fn should_succeed(t: Target, r: Route) -> bool {
    use Route::*;
    match r {
        Unknown | AdminPhaseDelete => false,
        Messages => t.api() == Api::Anthropic,
        Chat | ChatNoV1 | Embeddings | EmbeddingsNoV1 => t.api() == Api::OpenAi,
        Models | ModelsNoV1 => !t.is_gateway(),
        _ => true,
    }
}

/// Checks one reply; returns (symptom, detail) pairs.
fn judge(c: &Case, r: &Reply) -> Vec<(Symptom, String)> {
    let mut out = Vec::new();
    // a forced fault is asked of a mock; a gateway must not let its clients force one
    let forced_valid = c.forced == Forced::Valid && !c.target.is_gateway();
    if r.oversized {
        out.push((Symptom::Oversized, format!("body over {RESPONSE_BODY_MAX_BYTES} bytes")));
        return out;
    }
    if r.malformed {
        out.push((Symptom::MalformedResponse, escape(&r.body, 200)));
        return out;
    }
    let Some(status) = r.status else {
        if r.timed_out && c.framing_ambiguous() {
            // waiting for the rest of a body whose framing the mutation broke is fair
        } else if r.timed_out {
            out.push((Symptom::Hang, "no status line within the limit".into()));
        } else if !(forced_valid || request_is_cut(c)) {
            out.push((Symptom::NoResponse, r.error.clone().unwrap_or_else(|| "closed".into())));
        }
        return out;
    };
    if r.timed_out && !r.complete {
        out.push((
            Symptom::Hang,
            format!("status {status}, body not finished within the limit"),
        ));
        return out;
    }
    if !r.complete && !forced_valid {
        out.push((Symptom::NoResponse, format!("status {status}, body cut: {:?}", r.error)));
    }
    let path = path_of(&c.uri);
    if status >= 400 {
        let shape = expected_shape(c.target, &path);
        let ct = r
            .header("content-type")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
        let v = serde_json::from_slice::<Value>(&r.body).ok();
        let ok = ct.as_deref().is_some_and(|t| t.starts_with("application/json"))
            && v.as_ref().is_some_and(|v| shaped(shape, v));
        // hyper's bare status to a request below HTTP is the one allowed unshaped error
        // (the gateway's own server words every refusal: a bare status from it is a finding)
        let bare_below_http = r.body.is_empty()
            && matches!(status, 400 | 414 | 431 | 505)
            && c.below_http().is_some()
            && !c.target.is_gateway();
        if !ok && !c.is_head() && !bare_below_http {
            out.push((
                Symptom::NotShaped,
                format!("expected {shape:?}; content-type {ct:?}; body {}", escape(&r.body, 300)),
            ));
        }
        if status >= 500 && !forced_valid {
            out.push((Symptom::ServerError, escape(&r.body, 300)));
        }
        // the mock's admin phases take at most 64 KiB (src/live/mock/admin.rs MAX_PHASE_BYTES)
        let limit = if path.starts_with(b"/_chaosgate/phases") && !c.target.is_gateway() {
            ADMIN_PHASE_LIMIT_BYTES
        } else {
            BODY_LIMIT_BYTES
        };
        if status == 413 && c.body.len() <= limit && !c.half_close() && c.framing != Framing::None {
            out.push((Symptom::Spurious413, format!("body of {} bytes", c.body.len())));
        }
    } else if (200..300).contains(&status) && !c.is_head() {
        let ct = r
            .header("content-type")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
        if ct.as_deref().is_some_and(|t| t.starts_with("application/json"))
            && serde_json::from_slice::<Value>(&r.body).is_err()
        {
            // the tail shows what broke the JSON
            let tail = &r.body[r.body.len().saturating_sub(300)..];
            out.push((Symptom::BadSuccessBody, format!("…{}", escape(tail, 300))));
        }
    }
    if c.mutations.is_empty() && should_succeed(c.target, c.route) && !(200..300).contains(&status) {
        out.push((
            Symptom::ValidRefused,
            format!("status {status}: {}", escape(&r.body, 300)),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// The findings of one class: how many, and the first (kept whole, to reproduce).
struct Class {
    count: u64,
    first: Finding,
    known: Option<&'static str>,
}

/// Findings grouped as they come (only each class's first is kept: a long run has tens
/// of thousands, some with megabyte requests).
#[derive(Default)]
struct Findings {
    total: u64,
    unknown: u64,
    by_known: BTreeMap<&'static str, u64>,
    classes: BTreeMap<String, Class>,
}

impl Findings {
    fn add(&mut self, f: Finding) {
        let known = f.known();
        self.total += 1;
        if known.is_none() {
            self.unknown += 1;
        }
        *self
            .by_known
            .entry(known.unwrap_or("NEW (not a known defect)"))
            .or_default() += 1;
        let key = format!("{} :: {}", known.unwrap_or("NEW"), f.class());
        self.classes
            .entry(key)
            .or_insert(Class {
                count: 0,
                first: f,
                known,
            })
            .count += 1;
    }
}

struct Outcome {
    cases: u64,
    findings: Findings,
    wall: Duration,
    restarts: u32,
    statuses: BTreeMap<String, u64>,
    /// Answers that were hyper's bare status to a request below HTTP (allowed), by reason.
    below_http: BTreeMap<&'static str, u64>,
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Deletes every phase the case may have added (the mocks run without a profile, so any
/// phase is the fuzzer's). Err: a phase stayed.
fn clean_phases(s: &Server, limit: Duration) -> Result<(), String> {
    let st = exchange(
        s.addr,
        b"GET /_chaosgate/state HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        false,
        false,
        limit,
    );
    let v: Value =
        serde_json::from_slice(&st.body).map_err(|e| format!("GET /_chaosgate/state: {e} ({:?})", st.status))?;
    let phases = v["phases"].as_array().cloned().unwrap_or_default();
    for p in &phases {
        let name = p["name"].as_str().unwrap_or("");
        let req = format!(
            "DELETE /_chaosgate/phases/{} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n",
            percent_encode(name)
        );
        let r = exchange(s.addr, req.as_bytes(), false, false, limit);
        if r.status != Some(200) {
            return Err(format!(
                "phase {name:?} could not be deleted: {:?} {}",
                r.status,
                escape(&r.body, 200)
            ));
        }
    }
    Ok(())
}

fn run(seed: u64, cases: impl Iterator<Item = u64>, limit: Duration, progress: bool) -> Outcome {
    let t0 = Instant::now();
    let mut fleet = Fleet::start();
    let mut findings = Findings::default();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut below_http: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut n = 0u64;
    for index in cases {
        n += 1;
        let case = Arc::new(generate(seed, index));
        let wire = case.wire();
        let (srv, up) = fleet.servers(case.target);
        let panics_before = srv.panic_count();
        let up_panics_before = up.as_ref().map_or(0, |u| u.panic_count());
        // a server cannot answer before it has read the request: 1 s more per MiB sent
        let case_limit = limit + Duration::from_secs((wire.len() >> 20) as u64);
        let reply = exchange(srv.addr, &wire, case.half_close(), case.is_head(), case_limit);
        *statuses
            .entry(format!(
                "{} {}",
                case.target.label(),
                reply.status.map_or("none".into(), |s| s.to_string())
            ))
            .or_default() += 1;
        if reply.body.is_empty() && matches!(reply.status, Some(400 | 414 | 431 | 505)) {
            if let Some(why) = case.below_http() {
                *below_http.entry(why).or_default() += 1;
            }
        }
        let sent_path = path_of(&case.uri);
        let bk = body_kind(&reply);
        let mut found: Vec<(String, Symptom, String)> = Vec::new();
        // the processes first: an upstream incident explains what the gateway answered
        let mut incident = false;
        let check = |s: &mut Server, before: usize, found: &mut Vec<(String, Symptom, String)>| -> bool {
            let mut bad = false;
            if let Some(st) = s.exited() {
                std::thread::sleep(Duration::from_millis(50));
                found.push((
                    s.label.clone(),
                    Symptom::Crash,
                    format!("{st}; stderr: {:?}", s.tail.lock().unwrap()),
                ));
                bad = true;
            }
            if !bad && s.panic_count() == before && (reply.status.is_none() || reply.status.is_some_and(|x| x >= 500)) {
                // a panic in a handler shows as a dropped connection: give stderr a moment
                std::thread::sleep(Duration::from_millis(30));
            }
            if s.panic_count() > before {
                let p = s.panics.lock().unwrap()[before..].join(" / ");
                found.push((s.label.clone(), Symptom::Panic, p));
                bad = true;
            }
            if let Some(rss) = s.peak_rss().filter(|&r| r > SERVER_RSS_MAX_BYTES) {
                found.push((s.label.clone(), Symptom::Memory, format!("peak RSS {} MiB", rss >> 20)));
                bad = true;
            }
            bad
        };
        if let Some(u) = up {
            if check(u, up_panics_before, &mut found) {
                incident = true;
                u.restart();
            }
        }
        let (srv, _) = fleet.servers(case.target);
        if check(srv, panics_before, &mut found) {
            incident = true;
            srv.restart();
        }
        if !incident {
            for (sym, d) in judge(&case, &reply) {
                found.push((srv.label.clone(), sym, d));
            }
        }
        // admin state back to empty
        if !case.target.is_gateway() && case.route == Route::AdminPhasePost && srv.exited().is_none() {
            if let Err(e) = clean_phases(srv, limit) {
                found.push((srv.label.clone(), Symptom::AdminCleanup, e));
                srv.restart();
            }
        }
        let suspicious = !found.is_empty() || reply.status.is_none_or(|s| s >= 500);
        if suspicious || index % HEALTH_EVERY_CASES == 0 {
            let (srv, up) = fleet.servers(case.target);
            let mut dead: Vec<&mut Server> = Vec::new();
            if !srv.alive() {
                found.push((
                    srv.label.clone(),
                    Symptom::Unresponsive,
                    "GET /health unanswered".into(),
                ));
                dead.push(srv);
            }
            if let Some(u) = up {
                if !u.alive() {
                    found.push((u.label.clone(), Symptom::Unresponsive, "GET /health unanswered".into()));
                    dead.push(u);
                }
            }
            for d in dead {
                d.restart();
            }
        }
        for (server, symptom, detail) in found {
            let status = match symptom {
                Symptom::NotShaped
                | Symptom::ServerError
                | Symptom::ValidRefused
                | Symptom::Spurious413
                | Symptom::NoResponse => reply.status,
                _ => None,
            };
            let body_kind = match symptom {
                Symptom::NotShaped => bk,
                _ => BodyKind::None,
            };
            findings.add(Finding {
                case: case.clone(),
                server,
                symptom,
                status,
                body_kind,
                sent_path: sent_path.clone(),
                detail,
            });
        }
        if progress && n % 10_000 == 0 {
            eprintln!(
                "fuzz_http: {n} cases, {} findings, {:.0} s",
                findings.total,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let restarts = fleet.restarts();
    drop(fleet);
    Outcome {
        cases: n,
        findings,
        wall: t0.elapsed(),
        restarts,
        statuses,
        below_http,
    }
}

fn out_dir() -> std::path::PathBuf {
    std::env::var_os("FUZZ_HTTP_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz_http"))
}

/// Prints the summary: every class with its count and first request. Returns the number
/// of findings outside [`KNOWN_DEFECTS`].
fn report(seed: u64, o: &Outcome, timeout: Duration) -> u64 {
    let f = &o.findings;
    eprintln!(
        "\nfuzz_http: seed {seed}, {} cases in {:.1} s (limit {} ms per request), {} findings in {} classes ({} outside KNOWN_DEFECTS), {} server restarts",
        o.cases,
        o.wall.as_secs_f64(),
        timeout.as_millis(),
        f.total,
        f.classes.len(),
        f.unknown,
        o.restarts
    );
    for (k, n) in &f.by_known {
        eprintln!("  {n:>7}  {k}");
    }
    let bare: u64 = o.below_http.values().sum();
    eprintln!("{bare} answers were hyper's bare status to a request below HTTP (allowed by the oracle):");
    for (why, n) in &o.below_http {
        eprintln!("  {n:>7}  {why}");
    }
    let dir = out_dir();
    let _ = std::fs::create_dir_all(&dir);
    eprintln!(
        "reproduce a case: FUZZ_HTTP_SEED={seed} FUZZ_HTTP_CASE=<case> cargo test --test fuzz_http -- --ignored replay --nocapture"
    );
    for (i, (class, Class { count, first: f, known })) in o.findings.classes.iter().enumerate() {
        let file = dir.join(format!("seed{seed}-class{i:03}.http"));
        let _ = std::fs::write(&file, f.case.wire());
        eprintln!(
            "\n[{}] {class}  ×{count}\n    first: {}\n    detail: {}\n    request: {}\n    exact bytes: {}",
            known.map_or("NEW".to_string(), |k| format!("known: {k}")),
            f.case.describe(),
            f.detail.chars().take(300).collect::<String>(),
            escape(&f.case.wire(), 600),
            file.display(),
        );
    }
    if std::env::var_os("FUZZ_HTTP_STATUSES").is_some() {
        for (k, v) in &o.statuses {
            eprintln!("  {v:>7}  {k}");
        }
    }
    o.findings.unknown
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn timeout() -> Duration {
    Duration::from_millis(env_u64("FUZZ_HTTP_TIMEOUT_MS").unwrap_or(10_000))
}

/// ≈ 1,000 cases, fixed seed: every finding outside KNOWN_DEFECTS fails.
#[test]
fn fuzz_http_short() {
    let seed = env_u64("FUZZ_HTTP_SEED").unwrap_or(14);
    let cases = env_u64("FUZZ_HTTP_CASES").unwrap_or(1_000);
    let t = timeout();
    let o = run(seed, 0..cases, t, false);
    let unknown = report(seed, &o, t);
    assert_eq!(o.cases, cases);
    assert_eq!(
        unknown, 0,
        "fuzz_http: {unknown} findings outside KNOWN_DEFECTS (seed {seed}); see above"
    );
}

/// ≥ 100,000 cases, random seed unless given.
#[test]
#[ignore = "long: ≥ 100,000 HTTP cases; run with --ignored long --nocapture"]
fn fuzz_http_long() {
    let seed = env_u64("FUZZ_HTTP_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let cases = env_u64("FUZZ_HTTP_CASES").unwrap_or(100_000);
    eprintln!("fuzz_http_long: seed {seed}, {cases} cases");
    let t = timeout();
    let o = run(seed, 0..cases, t, true);
    let unknown = report(seed, &o, t);
    assert_eq!(
        unknown, 0,
        "fuzz_http: {unknown} findings outside KNOWN_DEFECTS (seed {seed}); see above"
    );
}

/// Replays one case (FUZZ_HTTP_SEED, FUZZ_HTTP_CASE) against fresh servers, printing the
/// request and the reply.
#[test]
#[ignore = "replay: set FUZZ_HTTP_SEED and FUZZ_HTTP_CASE"]
fn replay() {
    let (Some(seed), Some(index)) = (env_u64("FUZZ_HTTP_SEED"), env_u64("FUZZ_HTTP_CASE")) else {
        eprintln!("set FUZZ_HTTP_SEED and FUZZ_HTTP_CASE");
        return;
    };
    let c = generate(seed, index);
    eprintln!("{}\nrequest:\n{}", c.describe(), escape(&c.wire(), 1 << 16));
    let t = timeout();
    let o = run(seed, index..index + 1, t, false);
    report(seed, &o, t);
}

// ---------------------------------------------------------------------------------------
// Checks of the harness itself
// ---------------------------------------------------------------------------------------

#[test]
fn same_seed_same_cases() {
    for i in 0..300 {
        assert_eq!(generate(7, i).wire(), generate(7, i).wire());
    }
    assert!((0..50).any(|i| generate(7, i).wire() != generate(8, i).wire()));
}

#[test]
fn every_target_and_route_is_generated() {
    let cases: Vec<Case> = (0..3_000).map(|i| generate(14, i)).collect();
    for t in Target::ALL {
        for (r, _) in routes_of(t) {
            assert!(
                cases.iter().any(|c| c.target == t && c.route == *r),
                "{t:?} {r:?} never generated"
            );
        }
    }
    assert!(cases.iter().any(|c| c.mutations.is_empty()), "no valid control cases");
}

#[test]
fn oracle_accepts_the_envelopes_and_refuses_the_rest() {
    let oa = json!({"error": {"message": "m", "type": "invalid_request_error", "param": null, "code": null}});
    let an = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "m"}});
    let ad = json!({"error": {"type": "chaosgate_admin_error", "message": "m"}});
    assert!(shaped(Shape::Api(Api::OpenAi), &oa) && !shaped(Shape::Api(Api::OpenAi), &an));
    assert!(shaped(Shape::Api(Api::Anthropic), &an) && !shaped(Shape::Api(Api::Anthropic), &oa));
    assert!(shaped(Shape::AdminOr(Some(Api::Anthropic)), &ad) && !shaped(Shape::Api(Api::OpenAi), &ad));
    assert!(!shaped(Shape::AnyApi, &json!({"error": "text"})));
    assert_eq!(path_of(b"http://h:1/v1/messages?x=1"), b"/v1/messages");
    assert_eq!(
        expected_shape(Target::GatewayAnthropic, b"/v1/messages"),
        Shape::Api(Api::Anthropic)
    );
    assert_eq!(expected_shape(Target::GatewayOpenAi, b"/v1/messages"), Shape::AnyApi);
    assert_eq!(expected_shape(Target::MockOpenAi, b"/nope"), Shape::Api(Api::OpenAi));
}

/// The oracle flags what it must: a hang, a closed connection, an empty 404, a 5xx for a
/// client's mistake, a refused valid request; and lets a forced fault on a mock through.
#[test]
fn hypers_bare_status_is_allowed_only_below_http() {
    // The oracle's one exception to "every error is provider-shaped": hyper's bare answer
    // to a request it cannot parse. A bare status to a request that *is* HTTP (101 header
    // lines, a 70,000-byte query, a folded line inside hyper's limits is not) is a finding.
    let c = (0..10_000)
        .map(|i| generate(3, i))
        .find(|c| c.target == Target::MockOpenAi && c.route == Route::Chat && c.mutations.is_empty())
        .expect("a valid chat case");
    assert_eq!(c.below_http(), None);
    let bare = |status| Reply {
        status: Some(status),
        complete: true,
        ..Reply::default()
    };
    let not_shaped = |c: &Case, status| judge(c, &bare(status)).iter().any(|(s, _)| *s == Symptom::NotShaped);
    let with = |f: &dyn Fn(&mut Case)| {
        let mut m = c.clone();
        m.mutations.push("test".into());
        f(&mut m);
        m
    };
    // HTTP, inside the parser's limits: the router must answer, in JSON
    let many = with(&|m| {
        m.headers
            .extend((0..101).map(|i| (format!("x-h{i}").into_bytes(), b"1".to_vec())))
    });
    assert_eq!(many.below_http(), None);
    assert!(not_shaped(&many, 431));
    let query = with(&|m| m.uri.extend(format!("?q={}", "a".repeat(64_000)).into_bytes()));
    assert_eq!(query.below_http(), None);
    assert!(not_shaped(&query, 414));
    // below HTTP: hyper answers before any route exists
    let cases: [(Case, &str); 6] = [
        (with(&|m| m.version = b"HTTP/0.9".to_vec()), "not HTTP/1.x syntax"),
        (
            with(&|m| m.headers.push((b"x-fuzz".to_vec(), b"a\r\n folded".to_vec()))),
            "not HTTP/1.x syntax",
        ),
        (
            with(&|m| m.uri.extend(format!("?q={}", "a".repeat(70_000)).into_bytes())),
            "request target over hyper's URI limit",
        ),
        (
            with(&|m| {
                m.headers
                    .extend((0..401).map(|i| (format!("x-h{i}").into_bytes(), b"1".to_vec())))
            }),
            "more header lines than the parser takes",
        ),
        (
            with(&|m| m.headers.push((b"x-big".to_vec(), vec![b'a'; 500_000]))),
            "request head over the parser's buffer",
        ),
        (
            with(&|m| m.headers.push((b"content-length".to_vec(), b"-1".to_vec()))),
            "content-length is not a number",
        ),
    ];
    for (m, why) in &cases {
        assert_eq!(m.below_http(), Some(*why), "{:?}", m.mutations);
        assert!(!not_shaped(m, 400) && !not_shaped(m, 431) && !not_shaped(m, 414));
    }
    // a body is still expected of a bare answer's *status* class only: a 404 is never hyper's
    assert!(not_shaped(&cases[0].0, 404));
    // the gateway's own server words every refusal: below HTTP too, a bare status from it
    // is a finding
    for (m, _) in &cases {
        let mut g = m.clone();
        g.target = Target::GatewayOpenAi;
        assert!(not_shaped(&g, 400) && not_shaped(&g, 431), "{:?}", g.mutations);
    }
}

#[test]
fn judge_flags_each_symptom() {
    let valid = |t: Target| {
        (0..10_000)
            .map(|i| generate(3, i))
            .find(|c| c.target == t && c.route == Route::Chat && c.mutations.is_empty())
            .expect("a valid chat case")
    };
    let c = valid(Target::MockOpenAi);
    let symptoms = |c: &Case, r: Reply| judge(c, &r).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    let json_ct = || vec![("content-type".to_string(), b"application/json".to_vec())];
    let oa = br#"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#.to_vec();
    assert_eq!(
        symptoms(
            &c,
            Reply {
                timed_out: true,
                ..Reply::default()
            }
        ),
        [Symptom::Hang]
    );
    assert_eq!(symptoms(&c, Reply::default()), [Symptom::NoResponse]);
    assert_eq!(
        symptoms(
            &c,
            Reply {
                status: Some(503),
                headers: json_ct(),
                body: oa.clone(),
                complete: true,
                ..Reply::default()
            }
        ),
        [Symptom::ServerError, Symptom::ValidRefused]
    );
    assert_eq!(
        symptoms(
            &c,
            Reply {
                status: Some(200),
                headers: json_ct(),
                body: b"{}".to_vec(),
                complete: true,
                ..Reply::default()
            }
        ),
        []
    );
    let mut bad = c.clone();
    bad.mutations.push("x".into());
    assert_eq!(
        symptoms(
            &bad,
            Reply {
                status: Some(404),
                complete: true,
                ..Reply::default()
            }
        ),
        [Symptom::NotShaped]
    );
    assert_eq!(
        symptoms(
            &bad,
            Reply {
                status: Some(413),
                headers: json_ct(),
                body: oa.clone(),
                complete: true,
                ..Reply::default()
            }
        ),
        [Symptom::Spurious413]
    );
    // a valid x-chaosgate-fault: the mock may fail as asked, the gateway may not
    let mut forced = bad.clone();
    forced.forced = Forced::Valid;
    let r503 = || Reply {
        status: Some(503),
        headers: json_ct(),
        body: oa.clone(),
        complete: true,
        ..Reply::default()
    };
    assert_eq!(symptoms(&forced, r503()), []);
    forced.target = Target::GatewayOpenAi;
    assert_eq!(symptoms(&forced, r503()), [Symptom::ServerError]);
}
