//! Provider wire formats: OpenAI and Anthropic requests, responses, SSE events, error
//! envelopes and rate-limit headers (`SEMANTICS.md` §5). Pure functions, no I/O.

pub mod anthropic;
pub mod openai;

use crate::time::{Nanos, NS_PER_MS, NS_PER_S};
use std::fmt::Write;

/// The provider API a mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI chat completions / embeddings.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

impl Api {
    /// `"openai"` or `"anthropic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Api, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Api::OpenAi),
            "anthropic" => Ok(Api::Anthropic),
            _ => Err(format!("unknown api {s:?} (expected `openai` or `anthropic`)")),
        }
    }
}

/// Provider-neutral error kinds; each API renders its own envelope (`SEMANTICS.md` §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400.
    BadRequest,
    /// 401.
    Authentication,
    /// 402 (Anthropic `billing_error`).
    Billing,
    /// 403.
    Permission,
    /// 404.
    NotFound,
    /// 413.
    RequestTooLarge,
    /// 429, transient: comes with `retry-after`.
    RateLimit,
    /// 429, not transient: OpenAI `insufficient_quota`, Anthropic spend cap (no `retry-after`).
    InsufficientQuota,
    /// 500.
    Server,
    /// 502.
    BadGateway,
    /// 503.
    Unavailable,
    /// 504 (also 408).
    Timeout,
    /// 529 Anthropic `overloaded_error`; OpenAI says "The engine is currently overloaded".
    Overloaded,
}

impl ErrorKind {
    /// The usual kind of a status; unknown 4xx → `BadRequest`, unknown 5xx → `Server`.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            408 | 504 => ErrorKind::Timeout,
            529 => ErrorKind::Overloaded,
            s if s < 500 => ErrorKind::BadRequest,
            _ => ErrorKind::Server,
        }
    }

    /// The usual status of a kind.
    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
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

    /// Whether a client should retry (the SDKs' rule, minus quota-style 429s).
    pub fn retryable(self) -> bool {
        !matches!(
            self,
            ErrorKind::InsufficientQuota
                | ErrorKind::BadRequest
                | ErrorKind::Authentication
                | ErrorKind::Billing
                | ErrorKind::Permission
                | ErrorKind::NotFound
                | ErrorKind::RequestTooLarge
        )
    }

    /// The provider's usual message.
    pub fn default_message(self, api: Api) -> String {
        let s = match (api, self) {
            (Api::OpenAi, ErrorKind::BadRequest) => "Invalid request.",
            (Api::OpenAi, ErrorKind::Authentication) => {
                "Incorrect API key provided: sk-chaos***. You can find your API key at https://platform.openai.com/account/api-keys."
            }
            (Api::OpenAi, ErrorKind::Billing) => "Billing hard limit has been reached.",
            (Api::OpenAi, ErrorKind::Permission) => "You are not allowed to access this resource.",
            (Api::OpenAi, ErrorKind::NotFound) => "The model does not exist or you do not have access to it.",
            (Api::OpenAi, ErrorKind::RequestTooLarge) => "Request too large.",
            (Api::OpenAi, ErrorKind::RateLimit) => "Rate limit reached for requests. Please try again in 1s.",
            (Api::OpenAi, ErrorKind::InsufficientQuota) => {
                "You exceeded your current quota, please check your plan and billing details."
            }
            (Api::OpenAi, ErrorKind::Server) => "The server had an error while processing your request. Sorry about that!",
            (Api::OpenAi, ErrorKind::BadGateway) => "Bad gateway.",
            (Api::OpenAi, ErrorKind::Unavailable) => "The server is overloaded or not ready yet.",
            (Api::OpenAi, ErrorKind::Timeout) => "Request timed out.",
            (Api::OpenAi, ErrorKind::Overloaded) => "The engine is currently overloaded, please try again later",
            (Api::Anthropic, ErrorKind::BadRequest) => "Invalid request.",
            (Api::Anthropic, ErrorKind::Authentication) => "invalid x-api-key",
            (Api::Anthropic, ErrorKind::Billing) => "Your credit balance is too low to access the Anthropic API.",
            (Api::Anthropic, ErrorKind::Permission) => "Your API key does not have permission to use the specified resource.",
            (Api::Anthropic, ErrorKind::NotFound) => "The requested resource could not be found.",
            (Api::Anthropic, ErrorKind::RequestTooLarge) => "Request exceeds the maximum allowed number of bytes.",
            (Api::Anthropic, ErrorKind::RateLimit) => "Number of request tokens has exceeded your per-minute rate limit.",
            (Api::Anthropic, ErrorKind::InsufficientQuota) => {
                "You have reached your specified API usage limits. You will regain access when the limit resets."
            }
            (Api::Anthropic, ErrorKind::Server | ErrorKind::BadGateway | ErrorKind::Unavailable) => "Internal server error",
            (Api::Anthropic, ErrorKind::Timeout) => "Request timed out.",
            (Api::Anthropic, ErrorKind::Overloaded) => "Overloaded",
        };
        s.to_string()
    }
}

/// A parsed chat request (OpenAI chat.completions or Anthropic messages).
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// Requested model (echoed back).
    pub model: String,
    /// SSE streaming.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`; always true for Anthropic.
    pub include_usage: bool,
    /// OpenAI `max_completion_tokens` / `max_tokens`; Anthropic `max_tokens` (required).
    pub max_tokens: Option<u32>,
    /// Prompt tokens, estimated as text characters / 4, rounded up, at least 1.
    pub input_tokens: u32,
}

/// A parsed embeddings request.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsRequest {
    /// Model.
    pub model: String,
    /// Number of inputs (vectors to return).
    pub inputs: u32,
    /// Prompt tokens (estimated).
    pub input_tokens: u32,
    /// Requested width.
    pub dimensions: Option<u32>,
}

/// A request the provider itself would reject, rendered with its envelope.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// Kind (selects type/code).
    pub kind: ErrorKind,
    /// Message.
    pub message: String,
    /// OpenAI `param`.
    pub param: Option<String>,
}

impl Rejection {
    /// A 400 about `param`.
    pub fn bad(param: Option<&str>, message: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            kind: ErrorKind::BadRequest,
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

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

/// Token `i` of every response: a word with a leading space (deterministic filler).
pub fn filler_token(i: u32) -> &'static str {
    WORDS[(i as usize) % WORDS.len()]
}

/// The text of `n` filler tokens.
pub fn filler_text(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 7);
    for i in 0..n {
        s.push_str(filler_token(i));
    }
    s
}

/// Estimated tokens of a text: characters / 4, rounded up.
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// Rate-limit state a response advertises (consistent with what remains).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSnapshot {
    /// Requests per minute.
    pub limit_requests: u64,
    /// Requests left now.
    pub remaining_requests: u64,
    /// Time until the request bucket is full.
    pub reset_requests: Nanos,
    /// Tokens per minute.
    pub limit_tokens: u64,
    /// Tokens left now.
    pub remaining_tokens: u64,
    /// Time until the token bucket is full.
    pub reset_tokens: Nanos,
}

/// A duration as Go prints it, which is what OpenAI's `x-ratelimit-reset-*` use:
/// `0s`, `20ms`, `1s`, `1.5s`, `1m30s`, `6m0s`.
pub fn go_duration(n: Nanos) -> String {
    if n == 0 {
        return "0s".into();
    }
    if n < NS_PER_S {
        if n >= NS_PER_MS {
            return trim_float(n as f64 / NS_PER_MS as f64, "ms");
        }
        if n >= 1_000 {
            return trim_float(n as f64 / 1_000.0, "µs");
        }
        return format!("{n}ns");
    }
    let total_s = n / NS_PER_S;
    let frac = n % NS_PER_S;
    let h = total_s / 3600;
    let m = (total_s % 3600) / 60;
    let s = total_s % 60;
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    out.push_str(&trim_float(s as f64 + frac as f64 / NS_PER_S as f64, "s"));
    out
}

fn trim_float(v: f64, unit: &str) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

/// RFC 3339 UTC from unix milliseconds (whole seconds), e.g. `2023-11-14T22:13:20Z`.
pub fn rfc3339_from_unix_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Walks a JSON value for text: strings count, arrays/objects recurse into `text`/`content`.
pub(crate) fn text_chars(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.chars().count(),
        serde_json::Value::Array(a) => a.iter().map(text_chars).sum(),
        serde_json::Value::Object(o) => {
            o.get("text").map(text_chars).unwrap_or(0) + o.get("content").map(text_chars).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Parses a JSON object body or explains why not.
pub(crate) fn parse_object(
    body: &[u8],
    not_json: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Rejection::bad(None, "The request body must be a JSON object.")),
        Err(_) => Err(Rejection::bad(None, not_json)),
    }
}

/// A positive integer field, if present.
pub(crate) fn opt_positive(
    m: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<u32>, Rejection> {
    match m.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            _ => Err(Rejection::bad(
                Some(key),
                format!("Invalid '{key}': expected an integer ≥ 1, got {v}."),
            )),
        },
    }
}

/// An optional boolean field.
pub(crate) fn opt_bool(m: &serde_json::Map<String, serde_json::Value>, key: &str) -> Result<bool, Rejection> {
    match m.get(key) {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Rejection::bad(
            Some(key),
            format!("Invalid type for '{key}': expected a boolean, but got {v}."),
        )),
    }
}

/// A required string field.
pub(crate) fn req_string(m: &serde_json::Map<String, serde_json::Value>, key: &str) -> Result<String, Rejection> {
    match m.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v) if !v.is_null() => Err(Rejection::bad(
            Some(key),
            format!("Invalid type for '{key}': expected a string, but got {v}."),
        )),
        _ => Err(Rejection::bad(
            Some(key),
            format!("Missing required parameter: '{key}'."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = NS_PER_MS;
        for (n, s) in [
            (0, "0s"),
            (20 * ms, "20ms"),
            (84 * ms, "84ms"),
            (NS_PER_S, "1s"),
            (1500 * ms, "1.5s"),
            (90 * NS_PER_S, "1m30s"),
            (360 * NS_PER_S, "6m0s"),
            (3600 * NS_PER_S, "1h0m0s"),
        ] {
            assert_eq!(go_duration(n), s, "{n}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_from_unix_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_from_unix_ms(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn filler_round_trip() {
        let t = filler_text(100);
        assert_eq!(t.split(' ').filter(|w| !w.is_empty()).count(), 100);
        assert!(t.starts_with(" lorem ipsum"));
    }

    #[test]
    fn statuses_and_kinds_round_trip() {
        for k in [
            ErrorKind::BadRequest,
            ErrorKind::Authentication,
            ErrorKind::Billing,
            ErrorKind::Permission,
            ErrorKind::NotFound,
            ErrorKind::RequestTooLarge,
            ErrorKind::RateLimit,
            ErrorKind::Server,
            ErrorKind::BadGateway,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Overloaded,
        ] {
            assert_eq!(ErrorKind::from_status(k.default_status()), k);
        }
        assert!(!ErrorKind::InsufficientQuota.retryable());
        assert!(ErrorKind::RateLimit.retryable());
        assert_eq!("OpenAI".parse::<Api>(), Ok(Api::OpenAi));
        assert!("cohere".parse::<Api>().unwrap_err().contains("expected"));
    }
}
