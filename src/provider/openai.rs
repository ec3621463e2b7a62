//! OpenAI wire format (`docs/semantics.md` §5): request validation for chat completions and
//! embeddings, `chat.completion` / `list` / `model` bodies, `chat.completion.chunk` SSE
//! frames, the `{"error":{"message","type","param","code"}}` envelope and the
//! `x-ratelimit-*` headers.
//!
//! Stream order, as OpenAI sends it: [`chunk_role`] (delta `{"role":"assistant",
//! "content":""}`), [`chunk_content`] pieces, [`chunk_finish`] (empty delta plus
//! `finish_reason`), then — only when the request had `stream_options.include_usage` —
//! [`chunk_usage`] (empty `choices`, `usage`), then [`DONE`]. A mid-stream failure after
//! the 200 is [`stream_error`]: a `data:` line whose JSON has an `"error"` key, which the
//! Python SDK raises as `APIError`.
//!
//! `usage: null` choice: with `include_usage`, real OpenAI chunks before the usage chunk
//! carry `"usage": null`. These frames always *omit* the key instead (the frame
//! functions have no request context); the SDKs read an absent and a null `usage` alike.
//!
//! Error `code`s: the envelope's `code` is derived from the [`ErrorKind`] alone
//! (`invalid_api_key`, `rate_limit_exceeded`, `insufficient_quota`, …). Validation errors
//! carry `"code": null`, whereas OpenAI sometimes names them (`empty_array`,
//! `invalid_type`); [`Rejection`] has no field for that.

use super::{
    chars, estimate_tokens, go_duration, parse_json, type_phrase, ChatRequest, EmbeddingEncoding, EmbeddingsRequest,
    ErrorKind, Obj, RateLimitSnapshot, Rejection, Template, MAX_CHOICES, MAX_OUTPUT_TOKENS,
};
use super::{json_text, push_json_str, push_u64};
use crate::time::Nanos;
use bytes::Bytes;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// OpenAI's message for a body that is not JSON.
const NOT_JSON: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

/// Message roles accepted by chat completions.
const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// Content-part types accepted inside a message's `content` array.
const PART_TYPES: [&str; 5] = ["text", "image_url", "input_audio", "file", "refusal"];

/// Most inputs one embeddings request may carry.
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// Widest embedding any OpenAI model returns (text-embedding-3-large): the bound for
/// `dimensions` on a model this mock does not know.
pub const MAX_DIMENSIONS: u32 = 3072;

/// The models `GET /v1/models` lists and `GET /v1/models/{id}` finds.
pub const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

/// An embedding model's native width, which is also the most `dimensions` it accepts:
/// 3072 for `text-embedding-3-large`, 1536 for every other model (`-3-small`,
/// `ada-002`, and names this mock does not know).
pub fn native_dimensions(model: &str) -> u32 {
    if model.starts_with("text-embedding-3-large") {
        MAX_DIMENSIONS
    } else {
        1536
    }
}

fn bad(param: &str, message: impl Into<String>) -> Rejection {
    Rejection::bad(Some(param), message)
}

fn missing(param: &str) -> Rejection {
    bad(param, format!("Missing required parameter: '{param}'."))
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> Rejection {
    bad(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_phrase(got)
        ),
    )
}

/// The body as a JSON object, or OpenAI's rejection.
fn object(body: &[u8]) -> Result<Obj, Rejection> {
    match parse_json(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(v) => Err(Rejection::bad(
            None,
            format!(
                "Invalid type for request body: expected an object, but got {} instead.",
                type_phrase(&v)
            ),
        )),
        Err(_) => Err(Rejection::bad(None, NOT_JSON)),
    }
}

/// `model`: a non-empty string.
fn model(m: &Obj) -> Result<String, Rejection> {
    match m.get("model") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(bad("model", "you must provide a model parameter")),
        Some(Value::String(_)) => Err(bad("model", "you must provide a model parameter")),
        Some(v) => Err(wrong_type("model", "a string", v)),
    }
}

/// An optional boolean (`null` reads as absent).
fn opt_bool(m: &Obj, key: &str) -> Result<Option<bool>, Rejection> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

/// An optional integer ≥ 1 (`null` reads as absent), as given: the caller checks its
/// upper bound before narrowing it.
fn opt_positive(m: &Obj, key: &str) -> Result<Option<u64>, Rejection> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => match n.as_u64() {
            Some(v) if v >= 1 => Ok(Some(v)),
            _ => Err(bad(
                key,
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
            )),
        },
        Some(v) => Err(wrong_type(key, "an integer", v)),
    }
}

/// Validates one message and returns its text characters.
fn message_chars(i: usize, msg: &Value) -> Result<usize, Rejection> {
    let p = format!("messages[{i}]");
    let Value::Object(o) = msg else {
        return Err(wrong_type(&p, "an object", msg));
    };
    let rp = format!("{p}.role");
    let role = match o.get("role") {
        None | Some(Value::Null) => return Err(missing(&rp)),
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(Value::String(r)) => {
            return Err(bad(
                &rp,
                format!(
                "Invalid value: '{r}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."
            ),
            ))
        }
        Some(v) => return Err(wrong_type(&rp, "a string", v)),
    };
    let cp = format!("{p}.content");
    match o.get("content") {
        Some(Value::String(s)) => Ok(chars(s)),
        Some(Value::Array(parts)) => {
            let mut n = 0;
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{cp}[{j}]");
                let Value::Object(po) = part else {
                    return Err(wrong_type(&pp, "an object", part));
                };
                let tp = format!("{pp}.type");
                match po.get("type") {
                    None | Some(Value::Null) => return Err(missing(&tp)),
                    Some(Value::String(t)) if t == "text" => match po.get("text") {
                        Some(Value::String(s)) => n += chars(s),
                        None | Some(Value::Null) => return Err(missing(&format!("{pp}.text"))),
                        Some(v) => return Err(wrong_type(&format!("{pp}.text"), "a string", v)),
                    },
                    Some(Value::String(t)) if PART_TYPES.contains(&t.as_str()) => {}
                    Some(Value::String(t)) => {
                        return Err(bad(
                            &tp,
                            format!(
                                "Invalid value: '{t}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'."
                            ),
                        ))
                    }
                    Some(v) => return Err(wrong_type(&tp, "a string", v)),
                }
            }
            Ok(n)
        }
        None | Some(Value::Null) if role == "assistant" => Ok(0),
        None => Err(missing(&cp)),
        Some(v) => Err(wrong_type(&cp, "one of a string or array of objects", v)),
    }
}

/// Parses and validates `POST /v1/chat/completions` like OpenAI does (`docs/semantics.md` §5).
///
/// Rejections (all 400 `invalid_request_error`, `param` naming the exact field): body
/// not JSON (OpenAI's "We could not parse the JSON body…"); body not an object;
/// `model` missing, empty or not a string; `messages` missing, not an array or empty;
/// a message that is not an object, lacks `role`, or has a role other than
/// system/user/assistant/tool/developer; `content` that is not a string or an array of
/// parts (`null`/absent only for assistant), a part without `type`, a `text` part
/// without a string `text`; `stream` not a boolean; `max_tokens` /
/// `max_completion_tokens` not an integer ≥ 1 or above [`MAX_OUTPUT_TOKENS`] (OpenAI's
/// "max_tokens is too large" wording, `code` `invalid_value`); `n` not an integer in
/// 1..=[`MAX_CHOICES`] (`code` `integer_above_max_value`); `stream_options` without
/// `"stream": true`, or not an object, or with a non-boolean `include_usage`.
/// `null` optional fields read as absent, as OpenAI's nullable parameters do.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, Rejection> {
    match fast_chat::parse(body) {
        Some(r) => Ok(r),
        None => parse_chat_value(body),
    }
}

/// [`parse_chat`] for the plain valid request, from borrowed structs of only the keys the
/// rules read (no `serde_json::Value` tree): `None` — and [`parse_chat_value`] decides,
/// with its exact rejection — for anything else: a key twice, a value of another type, a
/// content array, a bound crossed. Tested to agree with [`parse_chat_value`].
mod fast_chat {
    use super::{ChatRequest, MAX_CHOICES, MAX_OUTPUT_TOKENS, ROLES};
    use crate::provider::{chars, estimate_tokens, json_keys, JsonStr};

    json_keys!(Chat {
        model: Option<JsonStr<'de>> = "model",
        messages: Option<Vec<Message<'de>>> = "messages",
        stream: Option<bool> = "stream",
        max_completion_tokens: Option<u64> = "max_completion_tokens",
        max_tokens: Option<u64> = "max_tokens",
        n: Option<u64> = "n",
        stream_options: Option<StreamOptions<'de>> = "stream_options",
    });
    json_keys!(Message {
        role: Option<JsonStr<'de>> = "role",
        content: Option<JsonStr<'de>> = "content",
    });
    json_keys!(StreamOptions {
        include_usage: Option<bool> = "include_usage",
    });

    /// A bound the `Value` rule enforces: `1..=max` (`None` stays `None`).
    fn within(v: Option<u64>, max: u64) -> Option<Option<u64>> {
        match v {
            None => Some(None),
            Some(v) if (1..=max).contains(&v) => Some(Some(v)),
            Some(_) => None,
        }
    }

    pub(super) fn parse(body: &[u8]) -> Option<ChatRequest> {
        // UTF-8 checked once for the whole body, not string by string (`from_slice`);
        // a body that is not UTF-8 is the `Value` reader's to refuse
        let c = serde_json::from_str::<Chat<'_>>(std::str::from_utf8(body).ok()?).ok()?;
        let model = c.model.filter(|m| !m.0.is_empty())?;
        let messages = c.messages.filter(|m| !m.is_empty())?;
        let mut total = 0usize;
        for m in &messages {
            let role = m.role.as_ref().map(|r| r.0.as_ref()).filter(|r| ROLES.contains(r))?;
            total = total.saturating_add(match &m.content {
                Some(s) => chars(&s.0),
                None if role == "assistant" => 0,
                None => return None,
            });
        }
        let stream = c.stream.unwrap_or(false);
        let max_completion = within(c.max_completion_tokens, u64::from(MAX_OUTPUT_TOKENS))?;
        let max_legacy = within(c.max_tokens, u64::from(MAX_OUTPUT_TOKENS))?;
        let n = within(c.n, u64::from(MAX_CHOICES))?.unwrap_or(1);
        let include_usage = match c.stream_options {
            None => false,
            Some(_) if !stream => return None,
            Some(o) => o.include_usage.unwrap_or(false),
        };
        Some(ChatRequest {
            model: model.0.into_owned(),
            stream,
            include_usage,
            max_tokens: max_completion.or(max_legacy).map(|v| v as u32),
            input_tokens: estimate_tokens(total).max(1),
            n: n as u32,
        })
    }
}

/// [`parse_chat`] by the rules, over a `serde_json::Value`: every rejection is written here.
fn parse_chat_value(body: &[u8]) -> Result<ChatRequest, Rejection> {
    let m = object(body)?;
    let model = model(&m)?;
    let messages = match m.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(a)) if a.is_empty() => return Err(bad(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    let mut total = 0usize;
    for (i, msg) in messages.iter().enumerate() {
        total = total.saturating_add(message_chars(i, msg)?);
    }
    let stream = opt_bool(&m, "stream")?.unwrap_or(false);
    let max_completion = opt_positive(&m, "max_completion_tokens")?;
    let max_legacy = opt_positive(&m, "max_tokens")?;
    for (key, v) in [("max_completion_tokens", max_completion), ("max_tokens", max_legacy)] {
        if let Some(v) = v.filter(|&v| v > u64::from(MAX_OUTPUT_TOKENS)) {
            return Err(bad(
                key,
                format!(
                    "{key} is too large: {v}. This model supports at most {MAX_OUTPUT_TOKENS} completion tokens, whereas you provided {v}."
                ),
            )
            .with_code("invalid_value"));
        }
    }
    let n = opt_positive(&m, "n")?.unwrap_or(1);
    if n > u64::from(MAX_CHOICES) {
        return Err(bad(
            "n",
            format!(
                "Invalid 'n': integer above maximum value. Expected a value <= {MAX_CHOICES}, but got {n} instead."
            ),
        )
        .with_code("integer_above_max_value"));
    }
    let include_usage = match m.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(bad(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ))
        }
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(wrong_type("stream_options.include_usage", "a boolean", v)),
        },
        Some(v) => return Err(wrong_type("stream_options", "an object", v)),
    };
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        // both bounded above: the narrowing is exact
        max_tokens: max_completion.or(max_legacy).map(|v| v as u32),
        input_tokens: estimate_tokens(total).max(1),
        n: n as u32,
    })
}

/// Parses and validates `POST /v1/embeddings` (`docs/semantics.md` §5).
///
/// `input` must be a non-empty string, a non-empty array of non-empty strings, a
/// non-empty array of token ids (integers ≥ 0), or a non-empty array of non-empty token
/// id arrays; at most 2048 entries. `model` is required; `dimensions`, if given, is an
/// integer in 1..=[`native_dimensions`] of the model; `encoding_format`, if given, is
/// `"float"` or `"base64"`. Rejections are 400s with `param` `"model"`, `"input"`,
/// `"dimensions"` or `"encoding_format"`.
pub fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, Rejection> {
    let m = object(body)?;
    let model = model(&m)?;
    let invalid = || {
        bad(
            "input",
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        )
    };
    let is_token = |v: &Value| v.as_u64().is_some();
    let (inputs, tokens): (usize, usize) = match m.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(s)) if s.is_empty() => return Err(invalid()),
        Some(Value::String(s)) => (1, estimate_tokens(chars(s)) as usize),
        Some(Value::Array(a)) if a.is_empty() => return Err(invalid()),
        Some(Value::Array(a)) => {
            if a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                let t = a
                    .iter()
                    .map(|v| estimate_tokens(v.as_str().map_or(0, chars)) as usize)
                    .fold(0usize, usize::saturating_add);
                (a.len(), t)
            } else if a.iter().all(is_token) {
                (1, a.len())
            } else if a
                .iter()
                .all(|v| v.as_array().is_some_and(|x| !x.is_empty() && x.iter().all(is_token)))
            {
                let t = a
                    .iter()
                    .map(|v| v.as_array().map_or(0, Vec::len))
                    .fold(0usize, usize::saturating_add);
                (a.len(), t)
            } else {
                return Err(invalid());
            }
        }
        Some(_) => return Err(invalid()),
    };
    if inputs > MAX_EMBEDDING_INPUTS {
        return Err(bad(
            "input",
            format!(
                "Invalid 'input': array too long. Expected an array with maximum length {MAX_EMBEDDING_INPUTS}, but got an array with length {inputs} instead."
            ),
        ));
    }
    let native = native_dimensions(&model);
    let dimensions = opt_positive(&m, "dimensions")?.unwrap_or(u64::from(native));
    if dimensions > u64::from(native) {
        return Err(bad(
            "dimensions",
            format!("Invalid 'dimensions': integer above maximum value. Expected a value <= {native}, but got {dimensions} instead."),
        )
        .with_code("integer_above_max_value"));
    }
    let encoding = match m.get("encoding_format") {
        None | Some(Value::Null) => EmbeddingEncoding::Float,
        Some(Value::String(s)) if s == "float" => EmbeddingEncoding::Float,
        Some(Value::String(s)) if s == "base64" => EmbeddingEncoding::Base64,
        Some(Value::String(s)) => {
            return Err(bad(
                "encoding_format",
                format!("Invalid value: '{s}'. Supported values are: 'float' and 'base64'."),
            )
            .with_code("invalid_value"))
        }
        Some(v) => return Err(wrong_type("encoding_format", "a string", v)),
    };
    Ok(EmbeddingsRequest {
        model,
        inputs: inputs as u32,
        input_tokens: u32::try_from(tokens).unwrap_or(u32::MAX).max(1),
        dimensions: dimensions as u32, // ≤ native
        encoding,
    })
}

/// The envelope's `type` and `code` for a kind.
pub(crate) fn type_and_code(kind: ErrorKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ErrorKind::BadRequest | ErrorKind::RequestTooLarge => ("invalid_request_error", None),
        ErrorKind::ContextLength => ("invalid_request_error", Some("context_length_exceeded")),
        ErrorKind::NotFound => ("invalid_request_error", Some("model_not_found")),
        ErrorKind::Authentication => ("invalid_request_error", Some("invalid_api_key")),
        ErrorKind::Billing => ("invalid_request_error", Some("billing_hard_limit_reached")),
        ErrorKind::Permission => ("request_forbidden", Some("unsupported_country_region_territory")),
        ErrorKind::RateLimit => ("requests", Some("rate_limit_exceeded")),
        ErrorKind::InsufficientQuota => ("insufficient_quota", Some("insufficient_quota")),
        ErrorKind::Server
        | ErrorKind::BadGateway
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::Overloaded => ("server_error", None),
    }
}

fn error_value(kind: ErrorKind, message: &str, param: Option<&str>) -> Value {
    let (ty, code) = type_and_code(kind);
    // OpenAI names the offending parameter of a prompt that does not fit
    let param = param.or((kind == ErrorKind::ContextLength).then_some("messages"));
    json!({ "error": { "message": message, "type": ty, "param": param, "code": code } })
}

/// The envelope of a [`Rejection`]: `type` from its kind, `param` and `code` its own
/// (an unknown URL is `invalid_request_error` with `code: null`, not `model_not_found`).
pub fn rejection_body(r: &Rejection) -> String {
    let (ty, _) = type_and_code(r.kind);
    json!({ "error": { "message": r.message, "type": ty, "param": r.param, "code": r.code } }).to_string()
}

/// The OpenAI error envelope `{"error":{"message","type","param","code"}}`
/// (`docs/semantics.md` §5). `type`/`code` by kind:
///
/// | kind | type | code |
/// | --- | --- | --- |
/// | BadRequest, RequestTooLarge | `invalid_request_error` | null |
/// | ContextLength | `invalid_request_error` (`param`: `messages`) | `context_length_exceeded` |
/// | NotFound | `invalid_request_error` | `model_not_found` |
/// | Authentication | `invalid_request_error` | `invalid_api_key` |
/// | Billing | `invalid_request_error` | `billing_hard_limit_reached` |
/// | Permission | `request_forbidden` | `unsupported_country_region_territory` |
/// | RateLimit | `requests` | `rate_limit_exceeded` |
/// | InsufficientQuota | `insufficient_quota` | `insufficient_quota` |
/// | Server, BadGateway, Unavailable, Timeout, Overloaded | `server_error` | null |
///
/// For a 429 whose message should say when to retry, use [`rate_limit_error_body`].
pub fn error_body(kind: ErrorKind, message: &str, param: Option<&str>) -> String {
    error_value(kind, message, param).to_string()
}

/// A 429 `requests` / `rate_limit_exceeded` body whose message ends "Please try again
/// in {d}." with `d` = [`go_duration`]`(retry_after)`, e.g. "84ms", "1.2s"
/// (`docs/semantics.md` §5).
pub fn rate_limit_error_body(retry_after: Nanos) -> String {
    error_body(ErrorKind::RateLimit, &rate_limit_message(retry_after), None)
}

/// The message of [`rate_limit_error_body`].
pub fn rate_limit_message(retry_after: Nanos) -> String {
    format!(
        "Rate limit reached in organization org-chaosgate on requests per min (RPM). Please try again in {}.",
        go_duration(retry_after)
    )
}

/// The `usage` object (`docs/semantics.md` §5): `prompt_tokens`, `completion_tokens`,
/// `total_tokens` (their sum, which cannot overflow) and zeroed details, appended to `out`.
fn push_usage(out: &mut Vec<u8>, prompt_tokens: u32, completion_tokens: u32) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, prompt_tokens.into());
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, completion_tokens.into());
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, u64::from(prompt_tokens) + u64::from(completion_tokens));
    out.extend_from_slice(
        b",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}",
    );
}

/// A non-streaming `chat.completion` object (`docs/semantics.md` §5): one choice with an
/// assistant `message` (`content`, `refusal: null`, `annotations: []`), `logprobs: null`,
/// the `finish_reason`; `usage` with `prompt_tokens`, `completion_tokens`, `total_tokens`
/// and zeroed details; `service_tier: "default"`; `system_fingerprint: "fp_chaosgate"`
/// with the id's provider mark ([`super::mark`]).
pub fn completion_body(
    id: &str,
    model: &str,
    created: u64,
    text: &str,
    prompt_tokens: u32,
    completion_tokens: u32,
    finish_reason: &str,
) -> String {
    let mut quoted = Vec::with_capacity(text.len() + 2);
    push_json_str(&mut quoted, text);
    let inner = json_text(quoted[1..quoted.len() - 1].to_vec());
    completion_with(
        id,
        model,
        created,
        1,
        prompt_tokens,
        completion_tokens,
        finish_reason,
        &|t, _| t.lit(inner.clone()),
    )
    .render()
}

/// The same `chat.completion` as [`completion_body`] with `n` choices of
/// `completion_tokens` filler tokens each, as a lazily generated [`Template`]. Choice
/// `k` starts at filler token `k`, so choices differ; `usage.completion_tokens` counts
/// all choices, as OpenAI's does.
#[allow(clippy::too_many_arguments)]
pub fn completion_template(
    id: &str,
    model: &str,
    created: u64,
    n: u32,
    prompt_tokens: u32,
    completion_tokens: u32,
    finish_reason: &str,
) -> Template {
    let total = u32::try_from(u64::from(completion_tokens) * u64::from(n.max(1))).unwrap_or(u32::MAX);
    completion_with(id, model, created, n, prompt_tokens, total, finish_reason, &|t, k| {
        t.filler(k, completion_tokens)
    })
}

/// `{"id":…,"object":…,"created":…,"model":…` after `lead`: how a completion and every
/// stream frame begin.
fn object_head(lead: &[u8], id: &str, object: &str, created: u64, model: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(192 + id.len() + model.len());
    b.extend_from_slice(lead);
    b.extend_from_slice(b"\"id\":");
    push_json_str(&mut b, id);
    b.extend_from_slice(b",\"object\":\"");
    b.extend_from_slice(object.as_bytes());
    b.extend_from_slice(b"\",\"created\":");
    push_u64(&mut b, created);
    b.extend_from_slice(b",\"model\":");
    push_json_str(&mut b, model);
    b
}

/// The one shape of a `chat.completion` ([`completion_body`], [`completion_template`]),
/// written straight into JSON text: `content(t, k)` adds the (escaped) content of choice
/// `k` between its quotes; `usage.completion_tokens` is `total`.
#[allow(clippy::too_many_arguments)]
fn completion_with(
    id: &str,
    model: &str,
    created: u64,
    n: u32,
    prompt_tokens: u32,
    total: u32,
    finish_reason: &str,
    content: &dyn Fn(&mut Template, u32),
) -> Template {
    let mut t = Template::default();
    let mut b = object_head(b"{", id, "chat.completion", created, model);
    b.extend_from_slice(b",\"choices\":[");
    for k in 0..n.max(1) {
        if k > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"index\":");
        push_u64(&mut b, k.into());
        b.extend_from_slice(b",\"message\":{\"role\":\"assistant\",\"content\":\"");
        t.lit(json_text(std::mem::take(&mut b)));
        content(&mut t, k);
        b.extend_from_slice(b"\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":");
        push_json_str(&mut b, finish_reason);
        b.push(b'}');
    }
    b.extend_from_slice(b"],\"usage\":");
    push_usage(&mut b, prompt_tokens, total);
    b.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":");
    push_json_str(&mut b, &super::mark::fingerprint_of_id(id));
    b.push(b'}');
    t.lit(json_text(b));
    t
}

/// SplitMix64: a well-mixed 64-bit step for the embedding values.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Vector `i` of an embeddings response: `dimensions` uniform draws from `(seed, i)`,
/// normalized to unit length, as `f32`.
fn embedding_vector(seed: u64, i: u32, dimensions: u32) -> Vec<f32> {
    let mut x = seed ^ u64::from(i).wrapping_mul(0xd6e8_feb8_6659_fd93);
    let v: Vec<f64> = (0..dimensions)
        .map(|_| (splitmix64(&mut x) >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    v.iter().map(|a| (a / norm) as f32).collect()
}

/// An embeddings `list` (docs/mock.md, "Endpoints"), generated one vector at a time:
/// `inputs` objects `{"object":"embedding","index":i,"embedding":…}` plus `model` and
/// `usage` (`prompt_tokens` = `total_tokens`). Vector `i` is a deterministic function
/// of `(seed, i)`: uniform draws normalized to unit length, as `f32` like OpenAI's
/// float32 values. With [`EmbeddingEncoding::Float`] the embedding is a JSON array of
/// numbers; with [`EmbeddingEncoding::Base64`] a string, the standard base64 of the
/// vector's little-endian `f32` bytes (what OpenAI sends and the SDKs decode).
pub fn embeddings_chunks(
    model: &str,
    inputs: u32,
    dimensions: u32,
    prompt_tokens: u32,
    seed: u64,
    encoding: EmbeddingEncoding,
) -> impl Iterator<Item = bytes::Bytes> + Send + 'static {
    use base64::Engine as _;
    let tail = format!(
        "],\"model\":{},\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"total_tokens\":{prompt_tokens}}}}}",
        Value::from(model)
    );
    let vectors = (0..inputs).map(move |i| {
        let v = embedding_vector(seed, i, dimensions);
        let mut out = String::with_capacity(48 + v.len() * 12);
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"object\":\"embedding\",\"index\":{i},\"embedding\":");
        match encoding {
            EmbeddingEncoding::Float => {
                out.push('[');
                for (j, a) in v.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{a}");
                }
                out.push(']');
            }
            EmbeddingEncoding::Base64 => {
                let bytes: Vec<u8> = v.iter().flat_map(|a| a.to_le_bytes()).collect();
                out.push('"');
                out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
                out.push('"');
            }
        }
        out.push('}');
        bytes::Bytes::from(out)
    });
    std::iter::once(bytes::Bytes::from_static(b"{\"object\":\"list\",\"data\":["))
        .chain(vectors)
        .chain(std::iter::once(bytes::Bytes::from(tail)))
}

/// [`embeddings_chunks`] as one string (tests and small bodies).
pub fn embeddings_body(
    model: &str,
    inputs: u32,
    dimensions: u32,
    prompt_tokens: u32,
    seed: u64,
    encoding: EmbeddingEncoding,
) -> String {
    let mut out = String::new();
    for c in embeddings_chunks(model, inputs, dimensions, prompt_tokens, seed, encoding) {
        out.push_str(std::str::from_utf8(&c).expect("UTF-8"));
    }
    out
}

fn model_value(id: &str, created: u64) -> Value {
    json!({ "id": id, "object": "model", "created": created, "owned_by": "system" })
}

/// `GET /v1/models`: `{"object":"list","data":[{"id","object":"model","created",
/// "owned_by":"system"}]}` (`docs/semantics.md` §5).
pub fn models_body(models: &[&str], created: u64) -> String {
    let data: Vec<Value> = models.iter().map(|m| model_value(m, created)).collect();
    json!({ "object": "list", "data": data }).to_string()
}

/// `GET /v1/models/{id}`: one `model` object, or OpenAI's 404 (`invalid_request_error`,
/// `code` `model_not_found`, "The model 'X' does not exist or you do not have access to
/// it.") for an id not in `models`.
pub fn model_body(models: &[&str], id: &str, created: u64) -> Result<String, Rejection> {
    if models.contains(&id) {
        return Ok(model_value(id, created).to_string());
    }
    Err(Rejection {
        status: 404,
        kind: ErrorKind::NotFound,
        message: format!("The model '{id}' does not exist or you do not have access to it."),
        param: Some("model".into()),
        code: Some("model_not_found"),
    })
}

fn frame(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// The frames of one stream (`docs/semantics.md` §5). What every frame of a stream shares —
/// `id`, `object`, `created`, `model`, `service_tier`, `system_fingerprint` — is written
/// once; each frame is then one buffer: that head, its choice and the frame's end.
#[derive(Clone, Debug)]
pub struct ChunkFrames {
    /// `data: {"id":…,"system_fingerprint":…,"choices":[`
    head: Vec<u8>,
}

impl ChunkFrames {
    /// The frames of completion `id` (which carries the provider's mark) of `model`.
    pub fn new(id: &str, model: &str, created: u64) -> ChunkFrames {
        let mut h = object_head(b"data: {", id, "chat.completion.chunk", created, model);
        h.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":");
        push_json_str(&mut h, &super::mark::fingerprint_of_id(id));
        h.extend_from_slice(b",\"choices\":[");
        ChunkFrames { head: h }
    }

    fn choice(&self, index: u32, delta: impl FnOnce(&mut Vec<u8>), finish: Option<&str>) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 112);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"{\"index\":");
        push_u64(&mut out, index.into());
        out.extend_from_slice(b",\"delta\":");
        delta(&mut out);
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => push_json_str(&mut out, f),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
        Bytes::from(out)
    }

    /// First frame of choice `index`: delta `{"role":"assistant","content":"","refusal":null}`,
    /// `finish_reason: null`. `usage` is omitted (see the module doc).
    pub fn role(&self, index: u32) -> Bytes {
        self.choice(
            index,
            |o| o.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"),
            None,
        )
    }

    /// A content frame of choice `index`: delta `{"content": text}`, `finish_reason: null`.
    pub fn content(&self, index: u32, text: &str) -> Bytes {
        self.choice(
            index,
            |o| {
                o.extend_from_slice(b"{\"content\":");
                push_json_str(o, text);
                o.push(b'}');
            },
            None,
        )
    }

    /// The finishing frame of choice `index`: empty delta `{}` and `finish_reason`.
    pub fn finish(&self, index: u32, finish_reason: &str) -> Bytes {
        self.choice(index, |o| o.extend_from_slice(b"{}"), Some(finish_reason))
    }

    /// The usage frame: `"choices": []` and a full `usage` object.
    pub fn usage(&self, prompt_tokens: u32, completion_tokens: u32) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 320);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"],\"usage\":");
        push_usage(&mut out, prompt_tokens, completion_tokens);
        out.extend_from_slice(b"}\n\n");
        Bytes::from(out)
    }
}

fn text(b: Bytes) -> String {
    json_text(b.into())
}

/// First SSE frame of a stream: delta `{"role":"assistant","content":"","refusal":null}`,
/// `finish_reason: null` (`docs/semantics.md` §5). `usage` is omitted (see the module doc).
pub fn chunk_role(id: &str, model: &str, created: u64) -> String {
    chunk_role_at(id, model, created, 0)
}

/// [`chunk_role`] of choice `index` (a request with `n` > 1 gets one per choice).
pub fn chunk_role_at(id: &str, model: &str, created: u64, index: u32) -> String {
    text(ChunkFrames::new(id, model, created).role(index))
}

/// A content frame: delta `{"content": text}`, `finish_reason: null` (`docs/semantics.md` §5).
pub fn chunk_content(id: &str, model: &str, created: u64, text: &str) -> String {
    chunk_content_at(id, model, created, 0, text)
}

/// [`chunk_content`] of choice `index`.
pub fn chunk_content_at(id: &str, model: &str, created: u64, index: u32, content: &str) -> String {
    text(ChunkFrames::new(id, model, created).content(index, content))
}

/// The finishing frame: empty delta `{}` and `finish_reason` (`"stop"`, `"length"`, …)
/// (`docs/semantics.md` §5).
pub fn chunk_finish(id: &str, model: &str, created: u64, finish_reason: &str) -> String {
    chunk_finish_at(id, model, created, 0, finish_reason)
}

/// [`chunk_finish`] of choice `index`.
pub fn chunk_finish_at(id: &str, model: &str, created: u64, index: u32, finish_reason: &str) -> String {
    text(ChunkFrames::new(id, model, created).finish(index, finish_reason))
}

/// The usage frame, sent after [`chunk_finish`] only with
/// `stream_options.include_usage`: `"choices": []` and a full `usage` object
/// (`docs/semantics.md` §5).
pub fn chunk_usage(id: &str, model: &str, created: u64, prompt_tokens: u32, completion_tokens: u32) -> String {
    text(ChunkFrames::new(id, model, created).usage(prompt_tokens, completion_tokens))
}

/// The stream terminator frame, `data: [DONE]` (`docs/semantics.md` §5).
pub const DONE: &str = "data: [DONE]\n\n";

/// An in-band error after a 200: `data: {"error":{"message","type","param":null,
/// "code"}}` — the same envelope as [`error_body`]; the Python SDK raises `APIError` for
/// any stream event with an `"error"` key (`docs/semantics.md` §5).
pub fn stream_error(kind: ErrorKind, message: &str) -> String {
    frame(&error_value(kind, message, None))
}

/// A `data:` frame whose JSON is cut off inside a string (`docs/semantics.md` §6: a corrupt
/// chunk a gateway must not pass on as success):
/// `data: {"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"delta":{"content":"`.
pub fn malformed_chunk() -> String {
    "data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"\n\n"
        .into()
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers (`docs/semantics.md` §5),
/// resets as [`go_duration`] strings (`"1s"`, `"6m0s"`, `"20ms"`). A dimension whose
/// limit is 0 (not limited) is left out.
pub fn ratelimit_headers(s: &RateLimitSnapshot) -> Vec<(&'static str, String)> {
    let mut v = Vec::with_capacity(6);
    if s.limit_requests > 0 {
        v.push(("x-ratelimit-limit-requests", s.limit_requests.to_string()));
        v.push(("x-ratelimit-remaining-requests", s.remaining_requests.to_string()));
        v.push(("x-ratelimit-reset-requests", go_duration(s.reset_requests)));
    }
    if s.limit_tokens > 0 {
        v.push(("x-ratelimit-limit-tokens", s.limit_tokens.to_string()));
        v.push(("x-ratelimit-remaining-tokens", s.remaining_tokens.to_string()));
        v.push(("x-ratelimit-reset-tokens", go_duration(s.reset_tokens)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::testing::xorshift;

    fn data(frame: &str) -> Value {
        assert!(frame.starts_with("data: ") && frame.ends_with("\n\n"), "{frame:?}");
        assert_eq!(frame.matches('\n').count(), 2, "one line per frame: {frame:?}");
        serde_json::from_str(&frame["data: ".len()..frame.len() - 2]).unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    fn reject(body: &str) -> Rejection {
        parse_chat(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn accepts_documented_requests() {
        // The API reference's "Default" example.
        let r = parse_chat(
            br#"{"model": "gpt-4o", "messages": [{"role": "developer", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]}"#,
        )
        .unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert!(!r.stream && !r.include_usage);
        assert_eq!(r.max_tokens, None);
        assert_eq!(r.input_tokens, estimate_tokens(28 + 6));
        // The "Streaming" example plus usage, parts and a tool round-trip.
        let r = parse_chat(
            br#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},
                "max_completion_tokens":50,"max_tokens":9,"temperature":0.2,
                "messages":[{"role":"system","content":"You are terse."},
                  {"role":"user","content":[{"type":"text","text":"What's in this image?"},
                    {"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]},
                  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                    "function":{"name":"f","arguments":"{}"}}]},
                  {"role":"tool","tool_call_id":"call_1","content":"42"}]}"#,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(50), "max_completion_tokens wins");
        assert_eq!(r.input_tokens, estimate_tokens(14 + 21 + 2));
        let r = parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":7,"stream":null,"stream_options":null}"#).unwrap();
        assert_eq!((r.max_tokens, r.stream, r.input_tokens), (Some(7), false, 1));
        let r = parse_chat(br#"{"model":"m","stream":true,"messages":[{"role":"assistant"}]}"#).unwrap();
        assert_eq!((r.input_tokens, r.include_usage), (1, false));
        // non-ASCII counts characters, not bytes
        let r = parse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"ééééé\"}]}".as_bytes())
            .unwrap();
        assert_eq!(r.input_tokens, 2);
    }

    #[test]
    fn rejects_each_bad_case_with_its_param() {
        let u = r#"[{"role":"user","content":"x"}]"#;
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            ("{nope".into(), None, "We could not parse the JSON body"),
            ("".into(), None, "We could not parse the JSON body"),
            ("[1]".into(), None, "expected an object, but got an array"),
            (
                format!(r#"{{"messages":{u}}}"#),
                Some("model"),
                "you must provide a model parameter",
            ),
            (
                format!(r#"{{"model":"","messages":{u}}}"#),
                Some("model"),
                "model parameter",
            ),
            (
                format!(r#"{{"model":5,"messages":{u}}}"#),
                Some("model"),
                "expected a string, but got an integer",
            ),
            (
                r#"{"model":"m"}"#.into(),
                Some("messages"),
                "Missing required parameter: 'messages'.",
            ),
            (
                r#"{"model":"m","messages":"hi"}"#.into(),
                Some("messages"),
                "expected an array, but got a string",
            ),
            (r#"{"model":"m","messages":[]}"#.into(), Some("messages"), "empty array"),
            (
                r#"{"model":"m","messages":["hi"]}"#.into(),
                Some("messages[0]"),
                "expected an object",
            ),
            (
                r#"{"model":"m","messages":[{"content":"x"}]}"#.into(),
                Some("messages[0].role"),
                "Missing required parameter: 'messages[0].role'.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#.into(),
                Some("messages[0].role"),
                "Invalid value: 'wizard'",
            ),
            (
                r#"{"model":"m","messages":[{"role":1,"content":"x"}]}"#.into(),
                Some("messages[0].role"),
                "expected a string",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":7}]}"#.into(),
                Some("messages[1].content"),
                "expected one of a string or array of objects, but got an integer instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":{"type":"text"}}]}"#.into(),
                Some("messages[0].content"),
                "but got an object instead",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}]}"#.into(),
                Some("messages[0].content"),
                "Missing required parameter",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":null}]}"#.into(),
                Some("messages[0].content"),
                "but got null instead",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#.into(),
                Some("messages[0].content[0].type"),
                "Missing required parameter",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#.into(),
                Some("messages[0].content[0].text"),
                "Missing required parameter",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":3}]}]}"#.into(),
                Some("messages[0].content[0].text"),
                "expected a string",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}"#.into(),
                Some("messages[0].content[0].type"),
                "Invalid value: 'video'",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":["x"]}]}"#.into(),
                Some("messages[0].content[0]"),
                "expected an object",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"stream":"yes"}}"#),
                Some("stream"),
                "expected a boolean, but got a string",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"max_tokens":0}}"#),
                Some("max_tokens"),
                "integer below minimum value",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"max_tokens":-3}}"#),
                Some("max_tokens"),
                "Expected a value >= 1, but got -3",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"max_tokens":1.5}}"#),
                Some("max_tokens"),
                "expected an integer, but got a decimal",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"max_completion_tokens":"9"}}"#),
                Some("max_completion_tokens"),
                "expected an integer",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"stream_options":{{"include_usage":true}}}}"#),
                Some("stream_options"),
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"stream":false,"stream_options":{{}}}}"#),
                Some("stream_options"),
                "only allowed when 'stream' is enabled",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"stream":true,"stream_options":true}}"#),
                Some("stream_options"),
                "expected an object",
            ),
            (
                format!(r#"{{"model":"m","messages":{u},"stream":true,"stream_options":{{"include_usage":1}}}}"#),
                Some("stream_options.include_usage"),
                "expected a boolean",
            ),
        ];
        for (body, param, needle) in cases {
            let e = reject(&body);
            assert_eq!((e.status, e.kind), (400, ErrorKind::BadRequest), "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}");
            assert!(e.message.contains(needle), "{body}: {:?} lacks {needle:?}", e.message);
        }
    }

    #[test]
    fn embeddings_inputs() {
        let ok = |b: &str| parse_embeddings(b.as_bytes()).unwrap();
        // The API reference example.
        let r = ok(
            r#"{"input": "The food was delicious and the waiter...", "model": "text-embedding-ada-002", "encoding_format": "float"}"#,
        );
        assert_eq!(
            (r.model.as_str(), r.inputs, r.input_tokens, r.dimensions),
            ("text-embedding-ada-002", 1, 10, 1536)
        );
        assert_eq!(r.encoding, EmbeddingEncoding::Float);
        let r = ok(r#"{"model":"text-embedding-3-large","input":"a","encoding_format":"base64"}"#);
        assert_eq!((r.dimensions, r.encoding), (3072, EmbeddingEncoding::Base64));
        assert_eq!(
            ok(r#"{"model":"text-embedding-3-large","input":"a","dimensions":3072}"#).dimensions,
            3072
        );
        assert_eq!(ok(r#"{"model":"e","input":["a","bb","ccccc"]}"#).inputs, 3);
        assert_eq!(ok(r#"{"model":"e","input":["a","bb","ccccc"]}"#).input_tokens, 4);
        let r = ok(r#"{"model":"e","input":[1,2,3,4,5]}"#);
        assert_eq!((r.inputs, r.input_tokens), (1, 5));
        let r = ok(r#"{"model":"e","input":[[1,2],[3]],"dimensions":256}"#);
        assert_eq!((r.inputs, r.input_tokens, r.dimensions), (2, 3, 256));
        for (body, param) in [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"e"}"#, "input"),
            (r#"{"model":"e","input":""}"#, "input"),
            (r#"{"model":"e","input":[]}"#, "input"),
            (r#"{"model":"e","input":[""]}"#, "input"),
            (r#"{"model":"e","input":[[]]}"#, "input"),
            (r#"{"model":"e","input":["a",1]}"#, "input"),
            (r#"{"model":"e","input":[-1]}"#, "input"),
            (r#"{"model":"e","input":[1.5]}"#, "input"),
            (r#"{"model":"e","input":{"text":"a"}}"#, "input"),
            (r#"{"model":"e","input":7}"#, "input"),
            (r#"{"model":"e","input":"a","dimensions":0}"#, "dimensions"),
            (r#"{"model":"e","input":"a","dimensions":100000}"#, "dimensions"),
            (
                r#"{"model":"text-embedding-3-small","input":"a","dimensions":1537}"#,
                "dimensions",
            ),
            (
                r#"{"model":"text-embedding-3-large","input":"a","dimensions":3073}"#,
                "dimensions",
            ),
            (
                r#"{"model":"e","input":"a","encoding_format":"int8"}"#,
                "encoding_format",
            ),
            (r#"{"model":"e","input":"a","encoding_format":1}"#, "encoding_format"),
        ] {
            let e = parse_embeddings(body.as_bytes()).expect_err(body);
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}");
        }
        let many = format!(r#"{{"model":"e","input":[{}"x"]}}"#, "\"x\",".repeat(2048));
        assert_eq!(
            parse_embeddings(many.as_bytes()).unwrap_err().param.as_deref(),
            Some("input")
        );
        assert!(parse_embeddings(b"nope")
            .unwrap_err()
            .message
            .contains("could not parse"));
    }

    #[test]
    fn error_envelopes() {
        for k in ErrorKind::ALL {
            let v: Value = serde_json::from_str(&error_body(k, "msg", Some("messages"))).unwrap();
            assert_eq!(keys(&v), ["error"]);
            assert_eq!(keys(&v["error"]), ["code", "message", "param", "type"], "{k:?}");
            assert_eq!(v["error"]["message"], "msg");
            assert_eq!(v["error"]["param"], "messages");
            assert!(v["error"]["type"].is_string());
        }
        let t = |k| {
            let v: Value = serde_json::from_str(&error_body(k, "m", None)).unwrap();
            (
                v["error"]["type"].clone(),
                v["error"]["code"].clone(),
                v["error"]["param"].clone(),
            )
        };
        assert_eq!(
            t(ErrorKind::BadRequest),
            (json!("invalid_request_error"), Value::Null, Value::Null)
        );
        assert_eq!(
            t(ErrorKind::Authentication),
            (json!("invalid_request_error"), json!("invalid_api_key"), Value::Null)
        );
        assert_eq!(
            t(ErrorKind::RateLimit),
            (json!("requests"), json!("rate_limit_exceeded"), Value::Null)
        );
        assert_eq!(
            t(ErrorKind::InsufficientQuota),
            (json!("insufficient_quota"), json!("insufficient_quota"), Value::Null)
        );
        for k in [
            ErrorKind::Server,
            ErrorKind::BadGateway,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Overloaded,
        ] {
            assert_eq!(t(k).0, json!("server_error"));
        }
        for (ns, tail) in [
            (84_000_000, "Please try again in 84ms."),
            (1_200_000_000, "Please try again in 1.2s."),
            (90_000_000_000, "Please try again in 1m30s."),
        ] {
            let v: Value = serde_json::from_str(&rate_limit_error_body(ns)).unwrap();
            assert!(v["error"]["message"].as_str().unwrap().ends_with(tail), "{v}");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        }
        let s = data(&stream_error(ErrorKind::Server, "The server had an error"));
        assert_eq!(keys(&s), ["error"]);
        assert_eq!(s["error"]["type"], "server_error");
        assert!(s["error"]["param"].is_null());
        // messages with quotes and newlines stay valid JSON on one line
        let s = data(&stream_error(ErrorKind::Overloaded, "a \"b\"\nc"));
        assert_eq!(s["error"]["message"], "a \"b\"\nc");
    }

    #[test]
    fn completion_and_chunks_have_the_real_shape() {
        let c: Value = serde_json::from_str(&completion_body(
            "chatcmpl-1",
            "gpt-4o",
            1_700_000_000,
            " hi",
            9,
            12,
            "stop",
        ))
        .unwrap();
        assert_eq!(
            keys(&c),
            [
                "choices",
                "created",
                "id",
                "model",
                "object",
                "service_tier",
                "system_fingerprint",
                "usage"
            ]
        );
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["created"], 1_700_000_000u64);
        assert_eq!(
            keys(&c["choices"][0]),
            ["finish_reason", "index", "logprobs", "message"]
        );
        assert_eq!(c["choices"][0]["message"]["role"], "assistant");
        assert_eq!(c["choices"][0]["message"]["content"], " hi");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            (
                c["usage"]["prompt_tokens"].clone(),
                c["usage"]["completion_tokens"].clone(),
                c["usage"]["total_tokens"].clone()
            ),
            (json!(9), json!(12), json!(21))
        );
        let big: Value = serde_json::from_str(&completion_body("i", "m", 0, "", u32::MAX, u32::MAX, "length")).unwrap();
        assert_eq!(big["usage"]["total_tokens"], 2 * u64::from(u32::MAX));

        let common = [
            "choices",
            "created",
            "id",
            "model",
            "object",
            "service_tier",
            "system_fingerprint",
        ];
        let r = data(&chunk_role("chatcmpl-1", "gpt-4o", 5));
        assert_eq!(keys(&r), common);
        assert_eq!(r["object"], "chat.completion.chunk");
        assert_eq!(keys(&r["choices"][0]), ["delta", "finish_reason", "index", "logprobs"]);
        assert_eq!(r["choices"][0]["index"], 0);
        assert_eq!(r["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(r["choices"][0]["delta"]["content"], "");
        assert!(r["choices"][0]["finish_reason"].is_null() && r["choices"][0]["logprobs"].is_null());
        let c = data(&chunk_content("chatcmpl-1", "gpt-4o", 5, " lorem"));
        assert_eq!(keys(&c), common);
        assert_eq!(c["choices"][0]["delta"], json!({ "content": " lorem" }));
        assert!(c["choices"][0]["finish_reason"].is_null());
        let f = data(&chunk_finish("chatcmpl-1", "gpt-4o", 5, "length"));
        assert_eq!(f["choices"][0]["delta"], json!({}));
        assert_eq!(f["choices"][0]["finish_reason"], "length");
        let u = data(&chunk_usage("chatcmpl-1", "gpt-4o", 5, 3, 4));
        assert_eq!(
            keys(&u),
            [
                "choices",
                "created",
                "id",
                "model",
                "object",
                "service_tier",
                "system_fingerprint",
                "usage"
            ]
        );
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["total_tokens"], 7);
        assert_eq!(DONE, "data: [DONE]\n\n");
        let m = malformed_chunk();
        assert!(m.starts_with("data: {\"id\":\"chatcmpl-x\"") && m.ends_with("\n\n"));
        assert!(serde_json::from_str::<Value>(m["data: ".len()..].trim_end()).is_err());
    }

    /// The shapes as `serde_json::Value`s (how they were built before the hand-written
    /// writers): the oracle the writers must match byte for byte.
    fn usage_value(p: u32, c: u32) -> Value {
        json!({
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": u64::from(p) + u64::from(c),
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    }

    fn chunk_value(id: &str, model: &str, created: u64, index: u32, delta: Value, finish: Option<&str>) -> String {
        format!(
            "data: {}\n\n",
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": crate::provider::mark::fingerprint_of_id(id),
                "choices": [{ "index": index, "delta": delta, "logprobs": null, "finish_reason": finish }],
            })
        )
    }

    #[test]
    fn hand_written_frames_and_bodies_are_byte_identical_to_serde_json() {
        let mark = crate::provider::mark::Mark::new("open\"ai é");
        let ids = [mark.openai_id(7), "chatcmpl-\"\\\u{1}x".to_string(), String::new()];
        let texts = [" lorem", "", "a\"b\\c\n\t\r\u{8}\u{c}\u{1f}\u{7f}é😀</script>"];
        for id in &ids {
            for model in ["gpt-4o", "m\"o\\d\u{0}el", "ünï"] {
                for created in [0, 1_700_000_000, u64::MAX] {
                    let f = ChunkFrames::new(id, model, created);
                    for index in [0, 1, u32::MAX] {
                        let role = json!({ "role": "assistant", "content": "", "refusal": null });
                        assert_eq!(
                            &f.role(index)[..],
                            chunk_value(id, model, created, index, role, None).as_bytes()
                        );
                        for t in texts {
                            let want = chunk_value(id, model, created, index, json!({ "content": t }), None);
                            assert_eq!(&f.content(index, t)[..], want.as_bytes());
                        }
                        for r in ["stop", "length", "a\"b"] {
                            let want = chunk_value(id, model, created, index, json!({}), Some(r));
                            assert_eq!(&f.finish(index, r)[..], want.as_bytes());
                        }
                    }
                    for (p, c) in [(0, 0), (5, 16), (u32::MAX, u32::MAX)] {
                        let want = format!(
                            "data: {}\n\n",
                            json!({
                                "id": id,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": model,
                                "service_tier": "default",
                                "system_fingerprint": crate::provider::mark::fingerprint_of_id(id),
                                "choices": [],
                                "usage": usage_value(p, c),
                            })
                        );
                        assert_eq!(&f.usage(p, c)[..], want.as_bytes());
                    }
                    for t in texts {
                        for (p, c) in [(0, 0), (9, 12), (u32::MAX, u32::MAX)] {
                            let want = json!({
                                "id": id,
                                "object": "chat.completion",
                                "created": created,
                                "model": model,
                                "choices": [{
                                    "index": 0,
                                    "message": { "role": "assistant", "content": t, "refusal": null, "annotations": [] },
                                    "logprobs": null,
                                    "finish_reason": "stop",
                                }],
                                "usage": usage_value(p, c),
                                "service_tier": "default",
                                "system_fingerprint": crate::provider::mark::fingerprint_of_id(id),
                            })
                            .to_string();
                            assert_eq!(completion_body(id, model, created, t, p, c, "stop"), want);
                        }
                    }
                    // n choices of filler, as one buffer and as lazy chunks
                    for n in [1, 3] {
                        let t = completion_template(id, model, created, n, 4, 6, "length");
                        let choices: Vec<Value> = (0..n)
                            .map(|k| {
                                let text: String = (k..k + 6).map(crate::provider::filler_token).collect();
                                json!({
                                    "index": k,
                                    "message": { "role": "assistant", "content": text, "refusal": null, "annotations": [] },
                                    "logprobs": null,
                                    "finish_reason": "length",
                                })
                            })
                            .collect();
                        let want = json!({
                            "id": id,
                            "object": "chat.completion",
                            "created": created,
                            "model": model,
                            "choices": choices,
                            "usage": usage_value(4, 6 * n),
                            "service_tier": "default",
                            "system_fingerprint": crate::provider::mark::fingerprint_of_id(id),
                        })
                        .to_string();
                        assert_eq!(t.render(), want);
                        assert_eq!(&t.to_bytes()[..], want.as_bytes());
                        assert_eq!(t.len_bytes(), want.len() as u64);
                    }
                }
            }
        }
    }

    #[test]
    fn completion_template_matches_completion_body() {
        let t = completion_template("chatcmpl-1", "g\"pt", 7, 1, 3, 5, "length");
        let a: Value = serde_json::from_str(&t.render()).unwrap();
        let b: Value = serde_json::from_str(&completion_body(
            "chatcmpl-1",
            "g\"pt",
            7,
            &crate::provider::filler_text(5),
            3,
            5,
            "length",
        ))
        .unwrap();
        assert_eq!(a, b);
        let t: Value = serde_json::from_str(&completion_template("c", "m", 7, 3, 1, 2, "stop").render()).unwrap();
        assert_eq!(t["choices"].as_array().unwrap().len(), 3);
        assert_eq!(t["choices"][2]["index"], 2);
        assert_eq!(t["usage"]["completion_tokens"], 6);
    }

    #[test]
    fn base64_embeddings_are_the_float_vectors_little_endian() {
        use base64::Engine as _;
        let f: Value = serde_json::from_str(&embeddings_body("e", 2, 8, 1, 9, EmbeddingEncoding::Float)).unwrap();
        let b: Value = serde_json::from_str(&embeddings_body("e", 2, 8, 1, 9, EmbeddingEncoding::Base64)).unwrap();
        for i in 0..2 {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b["data"][i]["embedding"].as_str().unwrap())
                .unwrap();
            let decoded: Vec<f64> = raw
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let floats: Vec<f64> = f["data"][i]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(decoded.len(), 8);
            for (x, y) in decoded.iter().zip(&floats) {
                assert!((x - y).abs() < 1e-7, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn embeddings_and_models_bodies() {
        let b = embeddings_body("text-embedding-3-small", 3, 16, 8, 42, EmbeddingEncoding::Float);
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(keys(&v), ["data", "model", "object", "usage"]);
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], "text-embedding-3-small");
        assert_eq!(v["usage"], json!({ "prompt_tokens": 8, "total_tokens": 8 }));
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        for (i, d) in data.iter().enumerate() {
            assert_eq!(keys(d), ["embedding", "index", "object"]);
            assert_eq!(
                (d["object"].as_str(), d["index"].as_u64()),
                (Some("embedding"), Some(i as u64))
            );
            let e: Vec<f64> = d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(e.len(), 16);
            let norm = e.iter().map(|a| a * a).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);
        assert_eq!(
            b,
            embeddings_body("text-embedding-3-small", 3, 16, 8, 42, EmbeddingEncoding::Float),
            "deterministic"
        );
        assert_ne!(
            b,
            embeddings_body("text-embedding-3-small", 3, 16, 8, 43, EmbeddingEncoding::Float),
            "seeded"
        );
        let odd: Value = serde_json::from_str(&embeddings_body("a\"b", 0, 0, 0, 0, EmbeddingEncoding::Float)).unwrap();
        assert_eq!(
            (odd["model"].as_str(), odd["data"].as_array().map(Vec::len)),
            (Some("a\"b"), Some(0))
        );
        let one: Value = serde_json::from_str(&embeddings_body("e", 1, 1, 1, 7, EmbeddingEncoding::Float)).unwrap();
        assert_eq!(one["data"][0]["embedding"][0].as_f64().map(f64::abs), Some(1.0));

        let m: Value = serde_json::from_str(&models_body(&["gpt-4o", "gpt-4o-mini"], 1_686_935_002)).unwrap();
        assert_eq!(keys(&m), ["data", "object"]);
        assert_eq!(m["object"], "list");
        assert_eq!(keys(&m["data"][1]), ["created", "id", "object", "owned_by"]);
        assert_eq!(
            (m["data"][1]["id"].as_str(), m["data"][1]["object"].as_str()),
            (Some("gpt-4o-mini"), Some("model"))
        );
    }

    #[test]
    fn ratelimit_header_values() {
        let s = RateLimitSnapshot {
            limit_requests: 60,
            remaining_requests: 59,
            reset_requests: 1_000_000_000,
            limit_tokens: 150_000,
            remaining_tokens: 149_984,
            reset_tokens: 6_400_000,
        };
        assert_eq!(
            ratelimit_headers(&s),
            vec![
                ("x-ratelimit-limit-requests", "60".to_string()),
                ("x-ratelimit-remaining-requests", "59".to_string()),
                ("x-ratelimit-reset-requests", "1s".to_string()),
                ("x-ratelimit-limit-tokens", "150000".to_string()),
                ("x-ratelimit-remaining-tokens", "149984".to_string()),
                ("x-ratelimit-reset-tokens", "7ms".to_string()),
            ]
        );
        let only_requests = RateLimitSnapshot { limit_tokens: 0, ..s };
        assert_eq!(ratelimit_headers(&only_requests).len(), 3);
    }

    fn random_json(x: &mut u64, depth: u32) -> Value {
        const STRS: &[&str] = &[
            "model", "messages", "role", "content", "user", "text", "type", "", "é", "stream",
        ];
        crate::provider::testing::random_json(x, depth, STRS)
    }

    #[test]
    fn the_fast_chat_reader_agrees_with_the_value_rule() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut fast = 0;
        let mut bodies: Vec<Vec<u8>> = vec![
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"assistant"},{"role":"user","content":"\u00e9t\u00e9"}],"stream":true,"stream_options":{"include_usage":true},"n":3,"max_completion_tokens":7}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":1e400}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":"\ud800"}"#.to_vec(),
            b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\":\"\xff\"}".to_vec(),
            br#"{"model":"m","model":"n","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":null}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{}}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":null}]}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"assistant","content":null}]}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5.0}"#.to_vec(),
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":129}"#.to_vec(),
            br#"["model","messages"]"#.to_vec(),
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"x":{}0{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes(),
        ];
        for _ in 0..6000 {
            // mostly objects of the right keys (so the fast reader is reached), some noise
            let mut v = if xorshift(&mut x) % 4 == 0 {
                random_json(&mut x, 4)
            } else {
                json!({})
            };
            if let Value::Object(o) = &mut v {
                if xorshift(&mut x) % 4 != 0 {
                    o.insert("model".into(), json!("m"));
                }
                let content = if xorshift(&mut x) % 2 == 0 {
                    json!("hello")
                } else {
                    random_json(&mut x, 2)
                };
                let role = ["user", "assistant", "system", "bot"][(xorshift(&mut x) % 4) as usize];
                if xorshift(&mut x) % 8 != 0 {
                    o.insert("messages".into(), json!([{ "role": role, "content": content }]));
                }
                for (k, vals) in [
                    ("stream", [json!(true), json!(false), json!(null), json!(1)]),
                    ("max_tokens", [json!(5), json!(0), json!(200_000), json!(-1)]),
                    ("n", [json!(2), json!(129), json!(null), json!("2")]),
                    (
                        "stream_options",
                        [json!({"include_usage": true}), json!(null), json!({}), json!(3)],
                    ),
                ] {
                    if xorshift(&mut x) % 2 == 0 {
                        o.insert(k.into(), vals[(xorshift(&mut x) % 4) as usize].clone());
                    }
                }
            }
            bodies.push(v.to_string().into_bytes());
        }
        for b in &bodies {
            if let Some(r) = fast_chat::parse(b) {
                fast += 1;
                assert_eq!(Ok(r), parse_chat_value(b), "{}", String::from_utf8_lossy(b));
            }
            assert_eq!(parse_chat(b), parse_chat_value(b), "{}", String::from_utf8_lossy(b));
        }
        assert!(fast > 200, "the fast reader took only {fast} bodies");
        assert!(fast_chat::parse(&bodies[0]).is_some() && fast_chat::parse(&bodies[1]).is_some());
        for b in &bodies[2..6] {
            assert!(fast_chat::parse(b).is_none(), "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        const ALPHABET: &[u8] = b"{}[]\":,0123-.eE abctruefalsenull\\\xff\xc3";
        for n in 0..4000 {
            let len = n % 96;
            let body: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(xorshift(&mut x) % ALPHABET.len() as u64) as usize])
                .collect();
            let _ = parse_chat(&body);
            let _ = parse_embeddings(&body);
        }
        let mut accepted = 0;
        for _ in 0..4000 {
            let mut v = random_json(&mut x, 4);
            // Often make it nearly valid so the deeper checks run too.
            if let (Value::Object(o), true) = (&mut v, xorshift(&mut x) & 1 == 0) {
                o.insert("model".into(), json!("m"));
                let msgs = random_json(&mut x, 3);
                o.insert("messages".into(), json!([{ "role": "user", "content": msgs }]));
                o.insert("input".into(), random_json(&mut x, 2));
            }
            let b = v.to_string();
            if let Ok(r) = parse_chat(b.as_bytes()) {
                assert!(r.input_tokens >= 1);
                accepted += 1;
            }
            if let Ok(r) = parse_embeddings(b.as_bytes()) {
                assert!(r.inputs >= 1 && r.input_tokens >= 1);
            }
        }
        assert!(accepted > 0, "the generator should reach the success path");
    }
}
