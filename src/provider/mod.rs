//! Provider wire formats: OpenAI and Anthropic requests, responses, SSE frames, error
//! envelopes and rate-limit headers, as `docs/semantics.md` §5 lists them.
//!
//! Everything here is pure: bytes or values in, strings out, no clock and no I/O. The
//! mock server decides *what* to answer (the fault model); this module decides *how it
//! looks on the wire*, so that gateways and SDKs see the shapes real providers send.
//!
//! - [`openai`]: chat completions (plain and `chat.completion.chunk` SSE), embeddings,
//!   models, the `{"error":{…}}` envelope and `x-ratelimit-*` headers.
//! - [`anthropic`]: messages (plain and the `message_start` … `message_stop` SSE event
//!   sequence), models, the `{"type":"error",…}` envelope and `anthropic-ratelimit-*`
//!   headers.
//! - Shared here: [`Api`], the provider-neutral [`ErrorKind`], parsed requests
//!   ([`ChatRequest`], [`EmbeddingsRequest`]), [`Rejection`], deterministic filler text,
//!   [`RateLimitSnapshot`], and the two time formats the headers use ([`go_duration`],
//!   [`rfc3339_from_unix_ms`]).
//! - [`mark`]: which provider answered — the mark a mock puts in its headers, ids and
//!   error messages, and the one function that reads it back.

pub mod anthropic;
pub mod classify;
pub mod mark;
pub mod openai;
pub mod sse;

use crate::time::Nanos;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The provider API a mock speaks (`docs/semantics.md` §5). Serialized as `"openai"` /
/// `"anthropic"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic: `/v1/messages`, `/v1/models`.
    Anthropic,
}

impl Api {
    /// Both APIs, in declaration order (`docs/semantics.md` §5).
    pub const ALL: [Api; 2] = [Api::OpenAi, Api::Anthropic];

    /// The wire/config name: `"openai"` or `"anthropic"` (`docs/semantics.md` §5).
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

impl std::str::FromStr for Api {
    type Err = String;

    /// Parses `"openai"` or `"anthropic"` (ASCII case-insensitive, surrounding spaces
    /// ignored); the error names the accepted choices.
    fn from_str(s: &str) -> Result<Api, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("openai") {
            Ok(Api::OpenAi)
        } else if t.eq_ignore_ascii_case("anthropic") {
            Ok(Api::Anthropic)
        } else {
            Err(format!("unknown api {s:?}: expected one of `openai`, `anthropic`"))
        }
    }
}

/// What an error answer looks like on the wire besides its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// The provider's JSON envelope and headers: `retry-after` (and OpenAI's
    /// `retry-after-ms`), the rate-limit headers, `x-should-retry: false` for final answers.
    #[default]
    Provider,
    /// The provider's JSON envelope without those headers: no `retry-after`, no
    /// `x-ratelimit-*` / `anthropic-ratelimit-*`, no `x-should-retry` (Vertex AI's 429s,
    /// which agentgateway #1500 could not fail over on).
    Bare,
    /// An HTML error page (`text/html`), what nginx or a CDN in front of the provider
    /// answers when it cannot reach it (Bifrost #4005); no provider headers either.
    Html,
}

/// Provider-neutral error kinds; each API renders its own envelope (`docs/semantics.md` §5).
///
/// Statuses are [`ErrorKind::default_status`]'s; the OpenAI/Anthropic `type` and `code`
/// strings live in [`openai::error_body`] and [`anthropic::error_body`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: malformed or invalid request.
    BadRequest,
    /// 400: the prompt does not fit the model's context window (OpenAI
    /// `context_length_exceeded`, Anthropic "prompt is too long"). The request's fault:
    /// no retry, and no reason to think less of the provider.
    ContextLength,
    /// 401: bad or missing API key.
    Authentication,
    /// 402: Anthropic `billing_error` (credit balance too low).
    Billing,
    /// 403: the key may not use this resource.
    Permission,
    /// 404: unknown model or path.
    NotFound,
    /// 413: body larger than the provider accepts.
    RequestTooLarge,
    /// 429, transient: comes with `retry-after`; clients should back off and retry.
    RateLimit,
    /// 429, *not* transient: OpenAI `insufficient_quota`, Anthropic spend cap. No
    /// `retry-after`; retrying cannot help (`docs/semantics.md` §5).
    InsufficientQuota,
    /// 500: provider-internal error.
    Server,
    /// 502: bad gateway in front of the provider.
    BadGateway,
    /// 503: service unavailable.
    Unavailable,
    /// 504 (also what a 408 maps to): the provider timed out.
    Timeout,
    /// 529: Anthropic `overloaded_error`. OpenAI has no 529; there it is a 503 "The engine
    /// is currently overloaded, please try again later" (see [`ErrorKind::status_for`]).
    Overloaded,
}

impl ErrorKind {
    /// Every kind, in declaration order (`docs/semantics.md` §5).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::BadRequest,
        ErrorKind::ContextLength,
        ErrorKind::Authentication,
        ErrorKind::Billing,
        ErrorKind::Permission,
        ErrorKind::NotFound,
        ErrorKind::RequestTooLarge,
        ErrorKind::RateLimit,
        ErrorKind::InsufficientQuota,
        ErrorKind::Server,
        ErrorKind::BadGateway,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Overloaded,
    ];

    /// The usual kind behind an HTTP status (`docs/semantics.md` §5). 429 → [`RateLimit`]
    /// (the transient reading), 408 and 504 → [`Timeout`], 529 → [`Overloaded`]; any
    /// other status below 500 → [`BadRequest`], anything else → [`Server`].
    ///
    /// [`RateLimit`]: ErrorKind::RateLimit
    /// [`Timeout`]: ErrorKind::Timeout
    /// [`Overloaded`]: ErrorKind::Overloaded
    /// [`BadRequest`]: ErrorKind::BadRequest
    /// [`Server`]: ErrorKind::Server
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            408 | 504 => ErrorKind::Timeout,
            500 => ErrorKind::Server,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            529 => ErrorKind::Overloaded,
            s if s < 500 => ErrorKind::BadRequest,
            _ => ErrorKind::Server,
        }
    }

    /// The kind's usual status (`docs/semantics.md` §5); [`ErrorKind::Overloaded`] is 529 (the
    /// Anthropic status; see [`ErrorKind::status_for`] for OpenAI's 503).
    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::ContextLength => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Billing => 402,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit | ErrorKind::InsufficientQuota => 429,
            ErrorKind::Server => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The status `api` uses for this kind: [`ErrorKind::default_status`], except that
    /// OpenAI renders [`ErrorKind::Overloaded`] as 503 (`docs/semantics.md` §5).
    pub fn status_for(self, api: Api) -> u16 {
        match (api, self) {
            (Api::OpenAi, ErrorKind::Overloaded) => 503,
            _ => self.default_status(),
        }
    }

    /// Whether a well-behaved client should retry. False for
    /// [`InsufficientQuota`](ErrorKind::InsufficientQuota) (a quota 429 is not transient,
    /// `docs/semantics.md` §5) and for the client errors 400, 401, 402, 403, 404 and 413; true
    /// for the transient 429 and every 5xx/529.
    pub fn retryable(self) -> bool {
        !matches!(
            self,
            ErrorKind::InsufficientQuota
                | ErrorKind::BadRequest
                | ErrorKind::ContextLength
                | ErrorKind::Authentication
                | ErrorKind::Billing
                | ErrorKind::Permission
                | ErrorKind::NotFound
                | ErrorKind::RequestTooLarge
        )
    }

    /// The provider's usual wording for this kind (`docs/semantics.md` §5), taken from real
    /// responses where one is known (e.g. OpenAI 503 "The engine is currently overloaded,
    /// please try again later", Anthropic 529 "Overloaded").
    pub fn default_message(self, api: Api) -> String {
        let s = match (api, self) {
            (Api::OpenAi, ErrorKind::BadRequest) => "Invalid request.",
            (Api::OpenAi, ErrorKind::ContextLength) => {
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages."
            }
            (Api::OpenAi, ErrorKind::Authentication) => {
                "Incorrect API key provided: sk-chaos************gate. You can find your API key at https://platform.openai.com/account/api-keys."
            }
            (Api::OpenAi, ErrorKind::Billing) => "Billing hard limit has been reached",
            (Api::OpenAi, ErrorKind::Permission) => "Country, region, or territory not supported",
            (Api::OpenAi, ErrorKind::NotFound) => {
                "The model does not exist or you do not have access to it."
            }
            (Api::OpenAi, ErrorKind::RequestTooLarge) => {
                "Request too large. The input or output tokens must be reduced in order to run successfully."
            }
            (Api::OpenAi, ErrorKind::RateLimit) => {
                "Rate limit reached in organization org-chaosgate on requests per min (RPM). Please try again in 1s."
            }
            (Api::OpenAi, ErrorKind::InsufficientQuota) => {
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
            }
            (Api::OpenAi, ErrorKind::Server) => {
                "The server had an error while processing your request. Sorry about that!"
            }
            (Api::OpenAi, ErrorKind::BadGateway) => "Bad gateway.",
            (Api::OpenAi, ErrorKind::Unavailable) => "The server is overloaded or not ready yet.",
            (Api::OpenAi, ErrorKind::Timeout) => "Gateway timeout.",
            (Api::OpenAi, ErrorKind::Overloaded) => "The engine is currently overloaded, please try again later",
            (Api::Anthropic, ErrorKind::BadRequest) => "Invalid request.",
            (Api::Anthropic, ErrorKind::ContextLength) => "prompt is too long: 213000 tokens > 200000 maximum",
            (Api::Anthropic, ErrorKind::Authentication) => "invalid x-api-key",
            (Api::Anthropic, ErrorKind::Billing) => {
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."
            }
            (Api::Anthropic, ErrorKind::Permission) => {
                "Your API key does not have permission to use the specified resource."
            }
            (Api::Anthropic, ErrorKind::NotFound) => "The requested resource could not be found.",
            (Api::Anthropic, ErrorKind::RequestTooLarge) => "Request exceeds the maximum allowed number of bytes.",
            (Api::Anthropic, ErrorKind::RateLimit) => {
                "This request would exceed your account's rate limit. Please try again later."
            }
            (Api::Anthropic, ErrorKind::InsufficientQuota) => {
                "You have reached your specified API usage limits. You will regain access when the limit resets."
            }
            (Api::Anthropic, ErrorKind::Server) => "Internal server error",
            (Api::Anthropic, ErrorKind::BadGateway) => "Bad gateway",
            (Api::Anthropic, ErrorKind::Unavailable) => "Service unavailable",
            (Api::Anthropic, ErrorKind::Timeout) => "Request timed out",
            (Api::Anthropic, ErrorKind::Overloaded) => "Overloaded",
        };
        s.to_string()
    }
}

/// The HTML page nginx (or a CDN) answers with when the upstream behind it is down, in
/// place of the provider's JSON envelope (what Bifrost #4005 saw: `<html><head><title>502
/// Bad Gateway</title>…<center>nginx</center>`). `marked` (the provider's marked message)
/// goes in a comment (`<`, `>`, `&` escaped), so the answer can still be attributed.
pub fn html_error_page(status: u16, marked: &str) -> String {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut note = String::with_capacity(marked.len());
    for c in marked.chars() {
        match c {
            '<' => note.push_str("&lt;"),
            '>' => note.push_str("&gt;"),
            '&' => note.push_str("&amp;"),
            c => note.push(c),
        }
    }
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n<!-- {note} -->\r\n</body>\r\n</html>\r\n"
    )
}

/// A parsed chat request: OpenAI `POST /v1/chat/completions` ([`openai::parse_chat`]) or
/// Anthropic `POST /v1/messages` ([`anthropic::parse_messages`]); `docs/semantics.md` §5.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The requested model, echoed back in responses.
    pub model: String,
    /// Whether the client asked for SSE (`"stream": true`).
    pub stream: bool,
    /// OpenAI `stream_options.include_usage` (a final usage chunk before `[DONE]`);
    /// always true for Anthropic, whose `message_delta` always carries usage.
    pub include_usage: bool,
    /// OpenAI `max_completion_tokens` (preferred) or `max_tokens`, if given; Anthropic
    /// `max_tokens` (required, so always `Some`).
    pub max_tokens: Option<u32>,
    /// Prompt-token estimate: characters of all text content (system + messages) / 4,
    /// rounded up, at least 1 ([`estimate_tokens`]).
    pub input_tokens: u32,
    /// OpenAI `n`: how many choices to generate (1..=[`MAX_CHOICES`]); always 1 for
    /// Anthropic, which has no such parameter.
    pub n: u32,
}

/// How an embeddings response encodes its vectors (OpenAI `encoding_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingEncoding {
    /// A JSON array of numbers (the API's default).
    Float,
    /// A base64 string of the vector's little-endian `f32` bytes (what the official
    /// TypeScript SDK asks for by default and decodes).
    Base64,
}

/// Largest `max_tokens` / `max_completion_tokens` either API accepts here: 128,000, the
/// largest output any current OpenAI or Anthropic model allows (OpenAI answers a bigger
/// value with 400 "max_tokens is too large: N. This model supports at most M completion
/// tokens, whereas you provided N."; Anthropic with 400 "max_tokens: N > M, which is the
/// maximum allowed number of output tokens for MODEL").
pub const MAX_OUTPUT_TOKENS: u32 = 128_000;

/// Largest OpenAI `n` (the API's own bound: "Expected a value <= 128").
pub const MAX_CHOICES: u32 = 128;

/// A parsed OpenAI `POST /v1/embeddings` request ([`openai::parse_embeddings`];
/// `docs/semantics.md` §5).
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsRequest {
    /// The requested model.
    pub model: String,
    /// Number of inputs, i.e. of vectors to return: 1 for a string or one token array,
    /// the array length for an array of strings or of token arrays.
    pub inputs: u32,
    /// Prompt-token estimate: characters / 4 rounded up per string, one per token id;
    /// at least 1.
    pub input_tokens: u32,
    /// The vector width: the requested `dimensions`, else the model's native width
    /// ([`openai::native_dimensions`]).
    pub dimensions: u32,
    /// `encoding_format`: floats (default) or base64.
    pub encoding: EmbeddingEncoding,
}

/// A request the provider itself would reject, to be rendered with that provider's
/// envelope ([`openai::error_body`] / [`anthropic::error_body`]); `docs/semantics.md` §5.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// HTTP status (400 for every validation failure produced here).
    pub status: u16,
    /// Kind, which selects the envelope's `type`/`code`.
    pub kind: ErrorKind,
    /// Human-readable message in the provider's wording.
    pub message: String,
    /// The offending parameter, in the provider's path syntax (OpenAI
    /// `messages[1].content`, Anthropic `messages.1.content`). OpenAI puts it in the
    /// envelope's `param`; Anthropic's envelope has no such field.
    pub param: Option<String>,
    /// OpenAI's machine-readable `code` (`invalid_value`, `integer_above_max_value`, …),
    /// if the provider names one for this case; `None` renders as `"code": null`.
    pub code: Option<&'static str>,
}

impl Rejection {
    /// A 400 [`ErrorKind::BadRequest`] about `param` (`docs/semantics.md` §5).
    pub fn bad(param: Option<&str>, message: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            kind: ErrorKind::BadRequest,
            message: message.into(),
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// The same rejection with OpenAI's `code`.
    pub fn with_code(mut self, code: &'static str) -> Rejection {
        self.code = Some(code);
        self
    }
}

/// The filler vocabulary: 64 words, each with a leading space.
const WORDS: [&str; 64] = [
    " lorem",
    " ipsum",
    " dolor",
    " sit",
    " amet",
    " consectetur",
    " adipiscing",
    " elit",
    " sed",
    " do",
    " eiusmod",
    " tempor",
    " incididunt",
    " ut",
    " labore",
    " et",
    " dolore",
    " magna",
    " aliqua",
    " enim",
    " ad",
    " minim",
    " veniam",
    " quis",
    " nostrud",
    " exercitation",
    " ullamco",
    " laboris",
    " nisi",
    " aliquip",
    " ex",
    " ea",
    " commodo",
    " consequat",
    " duis",
    " aute",
    " irure",
    " in",
    " reprehenderit",
    " voluptate",
    " velit",
    " esse",
    " cillum",
    " fugiat",
    " nulla",
    " pariatur",
    " excepteur",
    " sint",
    " occaecat",
    " cupidatat",
    " non",
    " proident",
    " sunt",
    " culpa",
    " qui",
    " officia",
    " deserunt",
    " mollit",
    " anim",
    " id",
    " est",
    " laborum",
    " chaos",
    " gate",
];

/// Token `i` of every mock response: a word with a leading space (`" lorem"`, `" ipsum"`,
/// …), cycling through a fixed list of 64 words. Deterministic, so a stream cut after `k`
/// chunks can be checked against [`filler_text`] (`docs/semantics.md` §5, §6).
pub fn filler_token(i: u32) -> &'static str {
    WORDS[(i as usize) % WORDS.len()]
}

/// The text of `n` tokens: `filler_token(0) + … + filler_token(n - 1)` (`docs/semantics.md` §5).
///
/// Builds the whole string: for bodies whose size comes from a request, use a
/// [`Template`], which generates the text piece by piece.
pub fn filler_text(n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(filler_token(i));
    }
    s
}

/// Appends `s` as a JSON string — quotes and escapes exactly as `serde_json` writes them —
/// to `out`: the hand-written bodies ([`openai::ChunkFrames`], the templates) stay
/// byte-identical to a `serde_json::Value` of the same shape, without building one.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // writing into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the decimal digits of `n` to `out`, as `serde_json` writes an integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON fragment built with [`push_json_str`] / [`push_u64`] as a `String`.
pub(crate) fn json_text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("JSON written from &str and digits is UTF-8")
}

/// Largest piece a [`Template`] yields for its filler text.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// One part of a [`Template`].
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Literal JSON, sent as it is.
    Lit(String),
    /// Filler tokens `first .. first + n` ([`filler_token`]), inside a JSON string.
    Filler {
        /// Index of the first token.
        first: u32,
        /// How many tokens.
        n: u32,
    },
}

/// A response body as literal JSON around filler text, generated lazily: a body of
/// `max_tokens = 128000` tokens and 128 choices costs [`CHUNK_BYTES`] of memory at a
/// time, not its full size (≈ 7 bytes per token) up front.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// Appends literal JSON.
    pub fn lit(&mut self, s: impl Into<String>) {
        self.0.push(Piece::Lit(s.into()));
    }

    /// Appends filler tokens `first .. first + n`.
    pub fn filler(&mut self, first: u32, n: u32) {
        self.0.push(Piece::Filler { first, n });
    }

    /// The exact length in bytes of the body [`Template::into_chunks`] generates, computed
    /// without building it (literal lengths plus the filler tokens' lengths).
    pub fn len_bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.len() as u64,
                Piece::Filler { first, n } => filler_len(*first, *n),
            })
            .sum()
    }

    /// The body in pieces of at most [`CHUNK_BYTES`] of filler (literals whole), each
    /// generated when the iterator reaches it.
    pub fn into_chunks(self) -> impl Iterator<Item = bytes::Bytes> + Send + 'static {
        self.0
            .into_iter()
            .flat_map(|p| -> Box<dyn Iterator<Item = bytes::Bytes> + Send> {
                match p {
                    Piece::Lit(s) => Box::new(std::iter::once(bytes::Bytes::from(s))),
                    Piece::Filler { first, n } => Box::new(filler_chunks(first, n, CHUNK_BYTES)),
                }
            })
    }

    /// The whole body as one string (tests and small bodies).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in self.clone().into_chunks() {
            out.push_str(std::str::from_utf8(&c).expect("templates are UTF-8"));
        }
        out
    }

    /// The whole body in one buffer of exactly [`Template::len_bytes`], written in one
    /// pass: what a small answer is sent as (one write, no per-piece stream).
    pub fn to_bytes(&self) -> bytes::Bytes {
        let mut out = Vec::with_capacity(usize::try_from(self.len_bytes()).unwrap_or(0));
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Filler { first, n } => {
                    for i in u64::from(*first)..u64::from(*first) + u64::from(*n) {
                        out.extend_from_slice(word(i).as_bytes());
                    }
                }
            }
        }
        bytes::Bytes::from(out)
    }
}

/// Bytes of filler tokens `first .. first + n` (as [`filler_chunks`] generates them),
/// in time proportional to the word list, not to `n`.
pub fn filler_len(first: u32, n: u32) -> u64 {
    let words = WORDS.len() as u64;
    let cycle: u64 = WORDS.iter().map(|w| w.len() as u64).sum();
    // bytes of tokens 0 .. x
    let upto = |x: u64| {
        (x / words) * cycle
            + WORDS[..(x % words) as usize]
                .iter()
                .map(|w| w.len() as u64)
                .sum::<u64>()
    };
    let start = u64::from(first);
    upto(start + u64::from(n)) - upto(start)
}

/// Filler token `i` of a body that may run past `u32` tokens (choices start further on).
fn word(i: u64) -> &'static str {
    WORDS[(i % WORDS.len() as u64) as usize]
}

/// Filler tokens `first .. first + n` in pieces of at most `max_bytes` (at least one
/// token each), generated one piece at a time.
pub fn filler_chunks(first: u32, n: u32, max_bytes: usize) -> impl Iterator<Item = bytes::Bytes> + Send + 'static {
    let end = u64::from(first) + u64::from(n);
    let mut i = u64::from(first);
    std::iter::from_fn(move || {
        if i >= end {
            return None;
        }
        let mut s = String::with_capacity(max_bytes.min(((end - i) as usize).saturating_mul(16)));
        while i < end {
            let w = word(i);
            if !s.is_empty() && s.len() + w.len() > max_bytes {
                break;
            }
            s.push_str(w);
            i += 1;
        }
        Some(bytes::Bytes::from(s))
    })
}

/// Token estimate for `chars` characters of text: `chars / 4`, rounded up (0 for 0); the
/// usage the mock reports is built on it (`docs/semantics.md` §5).
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// The rate-limit state a response advertises, consistent with what remains
/// (`docs/semantics.md` §5): OpenAI renders it with [`openai::ratelimit_headers`], Anthropic
/// with [`anthropic::ratelimit_headers`]. A limit of 0 means "not limited": its headers
/// are left out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSnapshot {
    /// Requests allowed per window (per minute).
    pub limit_requests: u64,
    /// Requests left now.
    pub remaining_requests: u64,
    /// Time until the request bucket is full again.
    pub reset_requests: Nanos,
    /// Tokens allowed per window (per minute).
    pub limit_tokens: u64,
    /// Tokens left now.
    pub remaining_tokens: u64,
    /// Time until the token bucket is full again.
    pub reset_tokens: Nanos,
}

/// A duration the way OpenAI prints it in `x-ratelimit-reset-*` and "Please try again
/// in …" (`docs/semantics.md` §5): Go's `time.Duration` format at millisecond precision.
///
/// `0` → `"0s"`, 20 ms → `"20ms"`, 1 s → `"1s"`, 1.5 s → `"1.5s"`, 90 s → `"1m30s"`,
/// 360 s → `"6m0s"`, 1 h → `"1h0m0s"`. Sub-millisecond remainders round *up* to the
/// next millisecond, so a client that waits the advertised time is never early.
pub fn go_duration(n: Nanos) -> String {
    let ms = n.div_ceil(1_000_000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let frac = ms % 1000;
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h{m}m");
    } else if m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        let f = format!("{frac:03}");
        let _ = write!(out, ".{}", f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// RFC 3339 UTC timestamp (`"2023-11-14T22:13:20Z"`) for unix milliseconds, whole
/// seconds (the milliseconds are dropped), as Anthropic's `anthropic-ratelimit-*-reset`
/// headers print it (`docs/semantics.md` §5). Uses Howard Hinnant's civil-from-days
/// algorithm, no date crate.
pub fn rfc3339_from_unix_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------
// Shared helpers for the two parsers (crate-private).

/// A JSON object, as the parsers walk it.
pub(crate) type Obj = Map<String, Value>;

/// Any JSON value, read and dropped the way `serde_json::Value` reads it — every number
/// parsed (in range), every string checked (UTF-8, no raw control characters), nesting
/// within serde_json's 128 levels — without building anything. `IgnoredAny` checks none
/// of that, so the typed readers ([`json_keys!`]) skip unknown keys with this instead.
pub(crate) struct Discard;

impl<'de> serde::Deserialize<'de> for Discard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Discard)
    }
}

impl<'de> serde::de::Visitor<'de> for Discard {
    type Value = Discard;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_str<E>(self, _: &str) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_unit<E>(self) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Discard, A::Error> {
        while a.next_element::<Discard>()?.is_some() {}
        Ok(Discard)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Discard, A::Error> {
        while a.next_key::<Discard>()?.is_some() {
            a.next_value::<Discard>()?;
        }
        Ok(Discard)
    }
}

/// A JSON string (an object key or a value), borrowed from the input when it has no
/// escapes; any other value is an error.
pub(crate) struct JsonStr<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, k: &'de str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(std::borrow::Cow::Borrowed(k)))
            }
            fn visit_str<E>(self, k: &str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(std::borrow::Cow::Owned(k.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A struct of a few keys of a JSON object, read in one pass for the typed fast readers
/// ([`sse`], [`openai::parse_chat`]) that defer to the `serde_json::Value` rule whenever
/// unsure: only from an object (a derived struct would also take an array, by position,
/// which a lookup by key would not); each listed key into its field (an `Option`: absent
/// or `null` is `None`), a key twice or a value of another type an error; every other key
/// read and dropped as a `Value` would read it ([`Discard`]), so a body the `Value` rule
/// refuses is refused here too.
macro_rules! json_keys {
    ($name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        #[derive(Default)]
        pub(crate) struct $name<'de> {
            $(pub(crate) $field: $ty,)*
            _borrow: std::marker::PhantomData<&'de str>,
        }

        impl<'de> serde::Deserialize<'de> for $name<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    #[allow(unused_mut)]
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<$name<'de>, A::Error> {
                        let mut out = $name::default();
                        // the keys met so far (a struct lists at most a few)
                        let mut seen: [&'static str; 16] = [""; 16];
                        let mut met = 0;
                        while let Some(k) = a.next_key::<$crate::provider::JsonStr<'de>>()? {
                            match k.0.as_ref() {
                                $($key => {
                                    if seen[..met].contains(&$key) || met == seen.len() {
                                        return Err(<A::Error as serde::de::Error>::custom("a key twice"));
                                    }
                                    seen[met] = $key;
                                    met += 1;
                                    out.$field = a.next_value()?;
                                })*
                                _ => {
                                    a.next_value::<$crate::provider::Discard>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}
pub(crate) use json_keys;

/// Parses a body into a JSON value; `Err` carries serde's description.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
}

/// OpenAI's wording for a JSON value's type: "a string", "an integer", "null", …
pub(crate) fn type_phrase(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Characters of a string, saturating into the token estimate's input.
pub(crate) fn chars(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_length_is_computed_without_building_the_body() {
        for (first, n) in [(0, 0), (0, 1), (3, 70), (63, 2), (u32::MAX - 5, 5), (1_000, 12_345)] {
            let built: usize = filler_chunks(first, n, CHUNK_BYTES).map(|c| c.len()).sum();
            assert_eq!(filler_len(first, n), built as u64, "first={first} n={n}");
        }
        let mut t = Template::default();
        t.lit("{\"a\":\"");
        t.filler(7, 300);
        t.lit("\"}");
        let built: usize = t.clone().into_chunks().map(|c| c.len()).sum();
        assert_eq!(t.len_bytes(), built as u64);
    }

    const MS: Nanos = 1_000_000;
    const S: Nanos = 1_000_000_000;

    #[test]
    fn go_durations() {
        for (n, want) in [
            (0, "0s"),
            (1, "1ms"),
            (20 * MS, "20ms"),
            (84 * MS, "84ms"),
            (999 * MS, "999ms"),
            (S, "1s"),
            (1500 * MS, "1.5s"),
            (1200 * MS, "1.2s"),
            (2574 * MS, "2.574s"),
            (20 * S, "20s"),
            (60 * S, "1m0s"),
            (90 * S, "1m30s"),
            (90 * S + 500 * MS, "1m30.5s"),
            (360 * S, "6m0s"),
            (3600 * S, "1h0m0s"),
            (3723 * S, "1h2m3s"),
        ] {
            assert_eq!(go_duration(n), want, "{n} ns");
        }
        // never panics at the extremes
        assert!(go_duration(u64::MAX).ends_with('s'));
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_from_unix_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix_ms(999), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_from_unix_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix_ms(946_684_799_000), "1999-12-31T23:59:59Z");
        assert_eq!(rfc3339_from_unix_ms(1_795_388_460_000), "2026-11-22T23:01:00Z");
        assert_eq!(rfc3339_from_unix_ms(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert!(rfc3339_from_unix_ms(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn filler_splits_back_into_exactly_n_tokens() {
        for n in [0u32, 1, 2, 63, 64, 65, 200, 1000] {
            let text = filler_text(n);
            let mut rest = text.as_str();
            let mut count = 0u32;
            while !rest.is_empty() {
                rest = rest
                    .strip_prefix(filler_token(count))
                    .unwrap_or_else(|| panic!("token {count} of {n} does not match"));
                count += 1;
            }
            assert_eq!(count, n);
        }
        assert!(filler_text(2).starts_with(" lorem ipsum"));
        assert!(WORDS
            .iter()
            .all(|w| w.starts_with(' ') && w.len() > 1 && !w[1..].contains(' ')));
        assert_eq!(filler_token(64), filler_token(0));
    }

    #[test]
    fn kinds_and_statuses() {
        for k in ErrorKind::ALL {
            // the two that share a status with a more usual kind: 429 and 400
            if k != ErrorKind::InsufficientQuota && k != ErrorKind::ContextLength {
                assert_eq!(ErrorKind::from_status(k.default_status()), k, "{k:?}");
            }
            assert_eq!(k.status_for(Api::Anthropic), k.default_status());
            assert!(!k.default_message(Api::OpenAi).is_empty());
            assert!(!k.default_message(Api::Anthropic).is_empty());
        }
        assert_eq!(ErrorKind::Overloaded.status_for(Api::OpenAi), 503);
        assert_eq!(ErrorKind::from_status(408), ErrorKind::Timeout);
        assert_eq!(ErrorKind::from_status(418), ErrorKind::BadRequest);
        assert_eq!(ErrorKind::from_status(409), ErrorKind::BadRequest);
        assert_eq!(ErrorKind::from_status(501), ErrorKind::Server);
        assert_eq!(ErrorKind::from_status(599), ErrorKind::Server);
        let retryable: Vec<_> = ErrorKind::ALL.into_iter().filter(|k| k.retryable()).collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::RateLimit,
                ErrorKind::Server,
                ErrorKind::BadGateway,
                ErrorKind::Unavailable,
                ErrorKind::Timeout,
                ErrorKind::Overloaded
            ]
        );
        assert!(ErrorKind::Overloaded
            .default_message(Api::OpenAi)
            .starts_with("The engine is currently overloaded"));
        assert_eq!(ErrorKind::Overloaded.default_message(Api::Anthropic), "Overloaded");
    }

    #[test]
    fn api_names_and_serde() {
        for a in Api::ALL {
            assert_eq!(a.as_str().parse::<Api>(), Ok(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{}\"", a.as_str()));
        }
        assert_eq!(" OpenAI ".parse::<Api>(), Ok(Api::OpenAi));
        let e = "cohere".parse::<Api>().unwrap_err();
        assert!(e.contains("openai") && e.contains("anthropic"), "{e}");
        assert_eq!(
            serde_json::to_string(&ErrorKind::InsufficientQuota).unwrap(),
            "\"insufficient_quota\""
        );
        assert_eq!(
            serde_json::from_str::<ErrorKind>("\"rate_limit\"").unwrap(),
            ErrorKind::RateLimit
        );
    }

    #[test]
    fn templates_generate_bounded_chunks_that_join_to_the_text() {
        for (first, n) in [(0u32, 0u32), (0, 1), (3, 64), (0, 10_000), (u32::MAX - 2, 5)] {
            let chunks: Vec<bytes::Bytes> = filler_chunks(first, n, 1000).collect();
            assert!(chunks.iter().all(|c| c.len() <= 1000 && !c.is_empty()));
            let joined: String = chunks.iter().map(|c| std::str::from_utf8(c).unwrap()).collect();
            let want: String = (0..n).map(|j| filler_token(first.wrapping_add(j))).collect();
            assert_eq!(joined, want, "{first} {n}");
        }
        assert_eq!(filler_chunks(0, 7, 1).count(), 7, "at least one token per chunk");
        let mut t = Template::default();
        t.lit("[\"");
        t.filler(0, 3);
        t.lit("\"]");
        assert_eq!(t.render(), format!("[\"{}\"]", filler_text(3)));
        // the largest allowed body is never built whole
        let mut big = Template::default();
        big.filler(0, MAX_OUTPUT_TOKENS);
        assert!(big.into_chunks().all(|c| c.len() <= CHUNK_BYTES));
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
    }
}

/// Random inputs for the parsers' never-panic tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{json, Value};

    /// xorshift64: a tiny deterministic generator.
    pub fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// A random JSON value up to `depth` deep, keys and strings drawn from `strs`.
    pub fn random_json(x: &mut u64, depth: u32, strs: &[&str]) -> Value {
        match xorshift(x) % if depth == 0 { 6 } else { 8 } {
            0 => Value::Null,
            1 => Value::Bool(*x & 1 == 0),
            2 => json!((*x % 7) as i64 - 2),
            3 => json!(1.5),
            4 | 5 => json!(strs[(*x >> 8) as usize % strs.len()]),
            6 => Value::Array((0..xorshift(x) % 4).map(|_| random_json(x, depth - 1, strs)).collect()),
            _ => {
                let n = xorshift(x) % 5;
                Value::Object(
                    (0..n)
                        .map(|_| {
                            (
                                strs[(xorshift(x) >> 5) as usize % strs.len()].to_string(),
                                random_json(x, depth - 1, strs),
                            )
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Why a completion stopped, as `api` words it: it hit the request's `max_tokens`
/// (`hit_max`) or ended by itself.
pub fn stop_reason(api: Api, hit_max: bool) -> &'static str {
    match (api, hit_max) {
        (Api::OpenAi, true) => "length",
        (Api::OpenAi, false) => "stop",
        (Api::Anthropic, true) => "max_tokens",
        (Api::Anthropic, false) => "end_turn",
    }
}

/// A non-streamed chat answer's body: request `seq`'s id (with the provider's `mark`),
/// `created` (unix seconds), `n` choices of `output_tokens` tokens each. The mock sends
/// it; the simulator takes its length (a `slow_body` trickle's length decides when it
/// ends).
#[allow(clippy::too_many_arguments)]
pub fn chat_reply(
    api: Api,
    mark: &mark::Mark,
    seq: u64,
    model: &str,
    created: u64,
    n: u32,
    input_tokens: u32,
    output_tokens: u32,
    hit_max: bool,
) -> Template {
    let stop = stop_reason(api, hit_max);
    match api {
        Api::OpenAi => openai::completion_template(
            &mark.openai_id(seq),
            model,
            created,
            n,
            input_tokens,
            output_tokens,
            stop,
        ),
        Api::Anthropic => {
            anthropic::message_template(&mark.anthropic_id(seq), model, input_tokens, output_tokens, stop)
        }
    }
}

/// The byte length of [`chat_reply`] for one choice from the provider marked `mark`, as
/// the simulator needs it (ids and unix times have a fixed width until 2286).
pub fn chat_reply_len(
    api: Api,
    mark: &mark::Mark,
    model: &str,
    input_tokens: u32,
    output_tokens: u32,
    hit_max: bool,
) -> u64 {
    chat_reply(
        api,
        mark,
        0,
        model,
        1_700_000_000,
        1,
        input_tokens,
        output_tokens,
        hit_max,
    )
    .len_bytes()
}

/// The byte length of an embeddings answer of `inputs` vectors at `model`'s native width,
/// as the simulator needs it under `slow_body`. The vectors' digits vary with the mock's
/// seed, so this is the length for seed 0: within a few percent of any other.
pub fn embeddings_reply_len(model: &str, inputs: u32, input_tokens: u32) -> u64 {
    openai::embeddings_chunks(
        model,
        inputs,
        openai::native_dimensions(model),
        input_tokens,
        0,
        EmbeddingEncoding::Float,
    )
    .map(|b| b.len() as u64)
    .sum()
}
