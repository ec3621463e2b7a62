//! Anthropic wire format (`docs/semantics.md` §5): request validation for the Messages API,
//! `message` and model-list bodies, the SSE event sequence, the
//! `{"type":"error","error":{"type","message"},"request_id"}` envelope and the
//! `anthropic-ratelimit-*` headers.
//!
//! Stream events, in order: [`event_message_start`], [`event_content_block_start`],
//! [`event_ping`] (may appear anywhere), [`event_text_delta`] …,
//! [`event_content_block_stop`], [`event_message_delta`] (stop reason, cumulative output
//! usage), [`event_message_stop`]. A mid-stream error after the 200 is [`event_error`]:
//! `event: error` with `{"type":"error","error":{"type":"overloaded_error",
//! "message":"Overloaded"}}`. Every frame is `event: NAME\ndata: {json}\n\n`.
//!
//! Validation messages follow Anthropic's `field.path: problem` wording
//! (`max_tokens: Field required`); [`Rejection::param`] carries the same dotted path
//! (`messages.0.content`), although Anthropic's envelope has no `param` field.

use super::{
    chars, estimate_tokens, parse_json, rfc3339_from_unix_ms, ChatRequest, ErrorKind, Obj, RateLimitSnapshot,
    Rejection, Template, MAX_OUTPUT_TOKENS,
};
use serde_json::{json, Value};

fn bad(param: &str, message: impl Into<String>) -> Rejection {
    Rejection::bad(Some(param), message)
}

fn required(param: &str) -> Rejection {
    bad(param, format!("{param}: Field required"))
}

/// Characters of one content block (text blocks, and text nested in `tool_result`).
fn block_chars(b: &Obj) -> usize {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => b.get("text").and_then(Value::as_str).map_or(0, chars),
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => chars(s),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_object)
                .map(block_chars)
                .fold(0, usize::saturating_add),
            _ => 0,
        },
        _ => 0,
    }
}

/// Validates a list of content blocks at `path` and returns its text characters.
fn blocks_chars(path: &str, blocks: &[Value]) -> Result<usize, Rejection> {
    let mut n = 0usize;
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{path}.{j}");
        let Value::Object(o) = b else {
            return Err(bad(
                &bp,
                format!("{bp}: Input should be a valid dictionary or object to extract fields from"),
            ));
        };
        match o.get("type") {
            None => return Err(required(&format!("{bp}.type"))),
            Some(Value::String(t)) if t == "text" => match o.get("text") {
                Some(Value::String(s)) if s.is_empty() => {
                    let root = path.split('.').next().unwrap_or(path);
                    return Err(bad(
                        &format!("{bp}.text"),
                        format!("{root}: text content blocks must be non-empty"),
                    ));
                }
                Some(Value::String(_)) => {}
                None => return Err(required(&format!("{bp}.text"))),
                Some(_) => {
                    let tp = format!("{bp}.text");
                    return Err(bad(&tp, format!("{tp}: Input should be a valid string")));
                }
            },
            Some(Value::String(_)) => {}
            Some(_) => {
                let tp = format!("{bp}.type");
                return Err(bad(&tp, format!("{tp}: Input should be a valid string")));
            }
        }
        n = n.saturating_add(block_chars(o));
    }
    Ok(n)
}

/// Parses and validates `POST /v1/messages` like Anthropic does (`docs/semantics.md` §5).
///
/// Rejections (all 400 `invalid_request_error`): invalid JSON ("The request body is not
/// valid JSON: …"); a body that is not an object; `model` missing or not a non-empty
/// string; `max_tokens` missing ("max_tokens: Field required"), not an integer, < 1, or
/// above [`MAX_OUTPUT_TOKENS`] ("max_tokens: N > 128000, which is the maximum allowed
/// number of output tokens for MODEL");
/// `messages` missing, not an array, or empty; a message that is not an object, lacks
/// `role`, or has a role other than `user`/`assistant` (`system` gets Anthropic's "use
/// the top-level `system` parameter" message); `content` missing, not a string or an
/// array of blocks, or empty (allowed only for a final assistant message); a block
/// without `type`, a `text` block without a string `text` (other block types are
/// accepted unchecked); `system` not a string or an array of text blocks; `stream` not
/// a boolean. `include_usage` is always true; `max_tokens` is always `Some`.
pub fn parse_messages(body: &[u8]) -> Result<ChatRequest, Rejection> {
    parse(body, true)
}

/// Parses and validates `POST /v1/messages/count_tokens`: the same body as
/// [`parse_messages`] without `max_tokens` (accepted and checked if present). The
/// count is [`ChatRequest::input_tokens`].
pub fn parse_count_tokens(body: &[u8]) -> Result<ChatRequest, Rejection> {
    parse(body, false)
}

/// `POST /v1/messages/count_tokens`'s answer, `{"input_tokens": N}`.
pub fn count_tokens_body(input_tokens: u32) -> String {
    json!({ "input_tokens": input_tokens }).to_string()
}

fn parse(body: &[u8], need_max_tokens: bool) -> Result<ChatRequest, Rejection> {
    let m = match parse_json(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(Rejection::bad(
                None,
                "Input should be a valid dictionary or object to extract fields from",
            ))
        }
        Err(e) => return Err(Rejection::bad(None, format!("The request body is not valid JSON: {e}"))),
    };
    let model = match m.get("model") {
        None | Some(Value::Null) => return Err(required("model")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(bad("model", "model: String should have at least 1 character")),
        Some(_) => return Err(bad("model", "model: Input should be a valid string")),
    };
    let max_tokens = parse_max_tokens(&m, need_max_tokens, &model)?;
    let messages = match m.get("messages") {
        None | Some(Value::Null) => return Err(required("messages")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(bad("messages", "messages: at least one message is required"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("messages", "messages: Input should be a valid list")),
    };
    let mut total = 0usize;
    let last = messages.len() - 1;
    for (i, msg) in messages.iter().enumerate() {
        total = total.saturating_add(message_chars(i, msg, i == last)?);
    }
    total = total.saturating_add(system_chars(&m)?);
    let stream = match m.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream", "stream: Input should be a valid boolean")),
    };
    Ok(ChatRequest {
        model,
        stream,
        include_usage: true,
        max_tokens: Some(max_tokens as u32), // ≤ MAX_OUTPUT_TOKENS
        input_tokens: estimate_tokens(total).max(1),
        n: 1,
    })
}

/// `max_tokens`: required by `/v1/messages` (`need`), an integer from 1 to the model's
/// most output tokens; 1 when `count_tokens` leaves it out.
fn parse_max_tokens(m: &serde_json::Map<String, Value>, need_max_tokens: bool, model: &str) -> Result<u64, Rejection> {
    let max_tokens = match m.get("max_tokens") {
        None | Some(Value::Null) if !need_max_tokens => 1,
        None | Some(Value::Null) => return Err(required("max_tokens")),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => match n.as_u64() {
            Some(v) if v >= 1 => v,
            _ => {
                return Err(bad(
                    "max_tokens",
                    "max_tokens: Input should be greater than or equal to 1",
                ))
            }
        },
        Some(_) => return Err(bad("max_tokens", "max_tokens: Input should be a valid integer")),
    };
    if max_tokens > u64::from(MAX_OUTPUT_TOKENS) {
        return Err(bad(
            "max_tokens",
            format!(
                "max_tokens: {max_tokens} > {MAX_OUTPUT_TOKENS}, which is the maximum allowed number of output tokens for {model}"
            ),
        ));
    }
    Ok(max_tokens)
}

/// Characters of message `i` (`last`: the final one, which may be an empty assistant
/// turn), after checking its role and content.
fn message_chars(i: usize, msg: &Value, last: bool) -> Result<usize, Rejection> {
    let p = format!("messages.{i}");
    let Value::Object(o) = msg else {
        return Err(bad(
            &p,
            format!("{p}: Input should be a valid dictionary or object to extract fields from"),
        ));
    };
    let role = match o.get("role") {
        None => return Err(required(&format!("{p}.role"))),
        Some(Value::String(r)) if r == "user" || r == "assistant" => r.as_str(),
        Some(Value::String(r)) if r == "system" => {
            return Err(bad(
                &format!("{p}.role"),
                "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.",
            ))
        }
        Some(Value::String(r)) => {
            return Err(bad(
                &format!("{p}.role"),
                format!("messages: Unexpected role {r:?}. Allowed roles are \"user\" or \"assistant\"."),
            ))
        }
        Some(_) => {
            let rp = format!("{p}.role");
            return Err(bad(&rp, format!("{rp}: Input should be 'user' or 'assistant'")));
        }
    };
    let cp = format!("{p}.content");
    let (n, empty) = match o.get("content") {
        None => return Err(required(&cp)),
        Some(Value::String(s)) => (chars(s), s.is_empty()),
        Some(Value::Array(a)) => (blocks_chars(&cp, a)?, a.is_empty()),
        Some(_) => return Err(bad(&cp, format!("{cp}: Input should be a valid list"))),
    };
    if empty && !(last && role == "assistant") {
        return Err(bad(
            &cp,
            format!("{p}: all messages must have non-empty content except for the optional final assistant message"),
        ));
    }
    Ok(n)
}

/// Characters of the top-level `system` prompt (a string or a list of text blocks).
fn system_chars(m: &serde_json::Map<String, Value>) -> Result<usize, Rejection> {
    match m.get("system") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => Ok(chars(s)),
        Some(Value::Array(a)) => {
            for (j, b) in a.iter().enumerate() {
                let bp = format!("system.{j}");
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(bad(&bp, format!("{bp}.type: Input should be 'text'")));
                }
            }
            blocks_chars("system", a)
        }
        Some(_) => Err(bad("system", "system: Input should be a valid list")),
    }
}

/// The error `type` for a kind (`docs/semantics.md` §5).
pub(crate) fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest | ErrorKind::ContextLength => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Billing => "billing_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit | ErrorKind::InsufficientQuota => "rate_limit_error",
        ErrorKind::Server | ErrorKind::BadGateway | ErrorKind::Unavailable => "api_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Overloaded => "overloaded_error",
    }
}

/// The Anthropic error envelope `{"type":"error","error":{"type","message"},
/// "request_id"}` (`docs/semantics.md` §5). Types: `invalid_request_error` 400,
/// `authentication_error` 401, `billing_error` 402, `permission_error` 403,
/// `not_found_error` 404, `request_too_large` 413, `rate_limit_error` 429 (the spend-cap
/// [`ErrorKind::InsufficientQuota`] too — its default message is about usage limits),
/// `api_error` 500/502/503, `timeout_error` 504, `overloaded_error` 529. The same id
/// belongs in the `request-id` header.
pub fn error_body(kind: ErrorKind, message: &str, request_id: &str) -> String {
    json!({
        "type": "error",
        "error": { "type": error_type(kind), "message": message },
        "request_id": request_id,
    })
    .to_string()
}

fn usage(input_tokens: u32, output_tokens: u32) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    })
}

/// A non-streaming `message` object (`docs/semantics.md` §5): `id`, `type: "message"`,
/// `role: "assistant"`, `model`, one `text` content block, `stop_reason`
/// (`"end_turn"`, `"max_tokens"`, …), `stop_sequence: null`, and `usage` with
/// `input_tokens`, `output_tokens` and zero cache counters.
pub fn message_body(
    id: &str,
    model: &str,
    text: &str,
    input_tokens: u32,
    output_tokens: u32,
    stop_reason: &str,
) -> String {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{ "type": "text", "text": text }],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(input_tokens, output_tokens),
    })
    .to_string()
}

/// The same `message` as [`message_body`] with `output_tokens` filler tokens, as a
/// lazily generated [`Template`].
pub fn message_template(id: &str, model: &str, input_tokens: u32, output_tokens: u32, stop_reason: &str) -> Template {
    let mut t = Template::default();
    t.lit(format!(
        "{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\"text\":\"",
        Value::from(id),
        Value::from(model)
    ));
    t.filler(0, output_tokens);
    t.lit(format!(
        "\"}}],\"stop_reason\":{},\"stop_sequence\":null,\"usage\":{}}}",
        Value::from(stop_reason),
        usage(input_tokens, output_tokens)
    ));
    t
}

/// The models `GET /v1/models` lists and `GET /v1/models/{id}` finds, with their
/// display names: Anthropic ids only.
pub const MODELS: &[(&str, &str)] = &[
    ("claude-opus-4-1-20250805", "Claude Opus 4.1"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
];

fn model_value(id: &str, display_name: &str) -> Value {
    let line = ["opus", "sonnet", "haiku"].into_iter().find(|l| id.contains(l));
    json!({
        "type": "model",
        "id": id,
        "display_name": display_name,
        "created_at": "2025-08-05T00:00:00Z",
        "lifecycle": "active",
        "deprecated_at": null,
        "retires_at": null,
        "line": line,
        "max_input_tokens": 200_000,
        "max_tokens": MAX_OUTPUT_TOKENS,
        "capabilities": null,
    })
}

/// `GET /v1/models?limit=N&after_id=X&before_id=Y` (docs/mock.md, "Endpoints"):
/// `{"data":[ModelInfo…],"has_more","first_id","last_id"}`, every entry valid under the
/// SDK's strict `ModelInfo` (`type`, `id`, `display_name`, `created_at`, `lifecycle`
/// plus the optional `deprecated_at`, `retires_at`, `line`, `max_input_tokens`,
/// `max_tokens`, `capabilities`). `limit` is 1..=1000 (default 20); `after_id` /
/// `before_id` page as the API does; `first_id`/`last_id` are null for an empty page.
pub fn models_page(
    models: &[(&str, &str)],
    limit: Option<&str>,
    after_id: Option<&str>,
    before_id: Option<&str>,
) -> Result<String, Rejection> {
    let limit = match limit {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    format!("limit: Input should be between 1 and 1000, got {l:?}"),
                ))
            }
        },
    };
    let (lo, hi) = {
        let pos = |id: &str| models.iter().position(|(m, _)| *m == id);
        let lo = match after_id {
            Some(a) => pos(a)
                .map(|i| i + 1)
                .ok_or_else(|| bad("after_id", format!("after_id: unknown model id {a:?}")))?,
            None => 0,
        };
        let hi = match before_id {
            Some(b) => pos(b).ok_or_else(|| bad("before_id", format!("before_id: unknown model id {b:?}")))?,
            None => models.len(),
        };
        (lo, hi.max(lo))
    };
    let window = &models[lo..hi];
    let page = if before_id.is_some() && after_id.is_none() {
        &window[window.len().saturating_sub(limit)..]
    } else {
        &window[..window.len().min(limit)]
    };
    let data: Vec<Value> = page.iter().map(|(id, name)| model_value(id, name)).collect();
    Ok(json!({
        "data": data,
        "has_more": page.len() < window.len(),
        "first_id": page.first().map(|m| m.0),
        "last_id": page.last().map(|m| m.0),
    })
    .to_string())
}

/// [`models_page`] with the defaults: every model up to 20.
pub fn models_body(models: &[(&str, &str)]) -> String {
    models_page(models, None, None, None).unwrap_or_default()
}

/// `GET /v1/models/{id}`: one `ModelInfo`, or Anthropic's 404 `not_found_error`
/// ("model: X") for an id not in `models`.
pub fn model_body(models: &[(&str, &str)], id: &str) -> Result<String, Rejection> {
    match models.iter().find(|(m, _)| *m == id) {
        Some((m, name)) => Ok(model_value(m, name).to_string()),
        None => Err(Rejection {
            status: 404,
            kind: ErrorKind::NotFound,
            message: format!("model: {id}"),
            param: Some("model".into()),
            code: None,
        }),
    }
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// `message_start`: the message shell with empty `content`, null `stop_reason`, and
/// usage `{input_tokens, output_tokens: 1}` as Anthropic sends it (`docs/semantics.md` §5).
pub fn event_message_start(id: &str, model: &str, input_tokens: u32) -> String {
    event(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(input_tokens, 1),
            },
        }),
    )
}

/// `content_block_start` of text block 0: `{"type":"text","text":""}`
/// (`docs/semantics.md` §5).
pub fn event_content_block_start() -> String {
    event(
        "content_block_start",
        &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
    )
}

/// `ping`, `{"type":"ping"}`: a keep-alive that may appear anywhere in the stream, with
/// no content (`docs/semantics.md` §5, §6).
pub fn event_ping() -> String {
    event("ping", &json!({ "type": "ping" }))
}

/// `content_block_delta` with a `text_delta` on block 0 (`docs/semantics.md` §5).
pub fn event_text_delta(text: &str) -> String {
    event(
        "content_block_delta",
        &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": text } }),
    )
}

/// `content_block_stop` of block 0 (`docs/semantics.md` §5).
pub fn event_content_block_stop() -> String {
    event(
        "content_block_stop",
        &json!({ "type": "content_block_stop", "index": 0 }),
    )
}

/// `message_delta`: `delta {stop_reason, stop_sequence: null}` and cumulative usage
/// `{"output_tokens": n}` (`docs/semantics.md` §5).
pub fn event_message_delta(stop_reason: &str, output_tokens: u32) -> String {
    event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": { "output_tokens": output_tokens },
        }),
    )
}

/// `message_stop`, the last event of a complete stream (`docs/semantics.md` §5).
pub fn event_message_stop() -> String {
    event("message_stop", &json!({ "type": "message_stop" }))
}

/// An in-band error after the 200 (`docs/semantics.md` §5): `event: error` with
/// `{"type":"error","error":{"type":…,"message":…}}` (no `request_id`, as in real
/// streams), e.g. `overloaded_error` / `"Overloaded"`.
pub fn event_error(kind: ErrorKind, message: &str) -> String {
    event(
        "error",
        &json!({ "type": "error", "error": { "type": error_type(kind), "message": message } }),
    )
}

/// A `content_block_delta` event whose JSON is cut off inside the text string
/// (`docs/semantics.md` §6: corrupt data a gateway must not pass on as success).
pub fn malformed_event() -> String {
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n".into()
}

/// What the rate-limit headers advertise when the profile sets no `rate_limit`: the
/// real API sends them on every response, so the mock does too, with a nominal budget
/// that never runs down (4,000 requests and 2,000,000 tokens per minute, full).
pub const NOMINAL_RATE_LIMIT: RateLimitSnapshot = RateLimitSnapshot {
    limit_requests: 4_000,
    remaining_requests: 4_000,
    reset_requests: 0,
    limit_tokens: 2_000_000,
    remaining_tokens: 2_000_000,
    reset_tokens: 0,
};

/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
/// headers (docs/mock.md, "Endpoints"). The mock has one token bucket (prompt + `max_tokens`),
/// so the `input-tokens` and `output-tokens` headers repeat the `tokens` values. A
/// reset is the RFC 3339 instant `now_unix_ms + reset`, rounded *up* to the whole
/// second, so a client that waits until then is never early. A dimension whose limit
/// is 0 (not limited) is left out.
pub fn ratelimit_headers(s: &RateLimitSnapshot, now_unix_ms: u64) -> Vec<(&'static str, String)> {
    let at = |reset: u64| {
        let ms = now_unix_ms.saturating_add(reset.div_ceil(1_000_000));
        rfc3339_from_unix_ms(ms.div_ceil(1000).saturating_mul(1000))
    };
    let mut v = Vec::with_capacity(12);
    if s.limit_requests > 0 {
        v.push(("anthropic-ratelimit-requests-limit", s.limit_requests.to_string()));
        v.push((
            "anthropic-ratelimit-requests-remaining",
            s.remaining_requests.to_string(),
        ));
        v.push(("anthropic-ratelimit-requests-reset", at(s.reset_requests)));
    }
    if s.limit_tokens > 0 {
        v.push(("anthropic-ratelimit-tokens-limit", s.limit_tokens.to_string()));
        v.push(("anthropic-ratelimit-tokens-remaining", s.remaining_tokens.to_string()));
        v.push(("anthropic-ratelimit-tokens-reset", at(s.reset_tokens)));
        v.push(("anthropic-ratelimit-input-tokens-limit", s.limit_tokens.to_string()));
        v.push((
            "anthropic-ratelimit-input-tokens-remaining",
            s.remaining_tokens.to_string(),
        ));
        v.push(("anthropic-ratelimit-input-tokens-reset", at(s.reset_tokens)));
        v.push(("anthropic-ratelimit-output-tokens-limit", s.limit_tokens.to_string()));
        v.push((
            "anthropic-ratelimit-output-tokens-remaining",
            s.remaining_tokens.to_string(),
        ));
        v.push(("anthropic-ratelimit-output-tokens-reset", at(s.reset_tokens)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::Api;
    use super::*;
    use crate::provider::testing::xorshift;

    /// Splits one SSE frame into (event name, JSON data).
    fn frame(f: &str) -> (String, Value) {
        assert!(f.ends_with("\n\n"), "{f:?}");
        let mut lines = f.trim_end_matches('\n').split('\n');
        let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        assert!(lines.next().is_none(), "{f:?}");
        (name, serde_json::from_str(data).unwrap())
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn accepts_documented_requests() {
        // The Messages API reference example.
        let r = parse_messages(
            br#"{"model": "claude-sonnet-4-20250514", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            ChatRequest {
                model: "claude-sonnet-4-20250514".into(),
                stream: false,
                include_usage: true,
                max_tokens: Some(1024),
                input_tokens: 3,
                n: 1,
            }
        );
        // System blocks, multi-turn, image + tool blocks, prefilled final assistant turn.
        let r = parse_messages(
            br#"{"model":"claude-3-5-haiku-latest","max_tokens":256,"stream":true,
                "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
                "messages":[
                  {"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
                                            {"type":"text","text":"What is this?"}]},
                  {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
                  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"42"}]},
                  {"role":"assistant","content":""}]}"#,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(256));
        assert_eq!(r.input_tokens, estimate_tokens(9 + 13 + 2));
        let r = parse_messages(
            br#"{"model":"m","max_tokens":1,"system":"abcdefgh","messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(r.input_tokens, 3);
    }

    #[test]
    fn rejects_each_bad_case() {
        let u = r#"[{"role":"user","content":"x"}]"#;
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            ("not json".into(), None, "The request body is not valid JSON"),
            ("".into(), None, "not valid JSON"),
            ("[]".into(), None, "valid dictionary"),
            (format!(r#"{{"max_tokens":5,"messages":{u}}}"#), Some("model"), "model: Field required"),
            (format!(r#"{{"model":7,"max_tokens":5,"messages":{u}}}"#), Some("model"), "model: Input should be a valid string"),
            (format!(r#"{{"model":"","max_tokens":5,"messages":{u}}}"#), Some("model"), "model:"),
            (format!(r#"{{"model":"m","messages":{u}}}"#), Some("max_tokens"), "max_tokens: Field required"),
            (format!(r#"{{"model":"m","max_tokens":null,"messages":{u}}}"#), Some("max_tokens"), "max_tokens: Field required"),
            (format!(r#"{{"model":"m","max_tokens":0,"messages":{u}}}"#), Some("max_tokens"), "greater than or equal to 1"),
            (format!(r#"{{"model":"m","max_tokens":-1,"messages":{u}}}"#), Some("max_tokens"), "greater than or equal to 1"),
            (format!(r#"{{"model":"m","max_tokens":"5","messages":{u}}}"#), Some("max_tokens"), "valid integer"),
            (format!(r#"{{"model":"m","max_tokens":2.5,"messages":{u}}}"#), Some("max_tokens"), "valid integer"),
            (r#"{"model":"m","max_tokens":5}"#.into(), Some("messages"), "messages: Field required"),
            (r#"{"model":"m","max_tokens":5,"messages":{}}"#.into(), Some("messages"), "valid list"),
            (r#"{"model":"m","max_tokens":5,"messages":[]}"#.into(), Some("messages"), "at least one message"),
            (r#"{"model":"m","max_tokens":5,"messages":[1]}"#.into(), Some("messages.0"), "valid dictionary"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"content":"x"}]}"#.into(), Some("messages.0.role"), "messages.0.role: Field required"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#.into(), Some("messages.0.role"), "top-level `system` parameter"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"tool","content":"x"}]}"#.into(), Some("messages.0.role"), "Allowed roles are \"user\" or \"assistant\""),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":2,"content":"x"}]}"#.into(), Some("messages.0.role"), "'user' or 'assistant'"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user"}]}"#.into(), Some("messages.0.content"), "messages.0.content: Field required"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}"#.into(), Some("messages.0.content"), "valid list"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":""}]}"#.into(), Some("messages.0.content"), "non-empty content"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[]},{"role":"user","content":"x"}]}"#.into(), Some("messages.0.content"), "non-empty content"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":["x"]}]}"#.into(), Some("messages.0.content.0"), "valid dictionary"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]}"#.into(), Some("messages.0.content.0.type"), "messages.0.content.0.type: Field required"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]}"#.into(), Some("messages.0.content.0.text"), "Field required"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":1}]}]}"#.into(), Some("messages.0.content.0.text"), "valid string"),
            (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}"#.into(), Some("messages.0.content.0.text"), "messages: text content blocks must be non-empty"),
            (format!(r#"{{"model":"m","max_tokens":5,"messages":{u},"system":5}}"#), Some("system"), "system:"),
            (format!(r#"{{"model":"m","max_tokens":5,"messages":{u},"system":[{{"type":"image"}}]}}"#), Some("system.0"), "Input should be 'text'"),
            (format!(r#"{{"model":"m","max_tokens":5,"messages":{u},"system":[{{"type":"text"}}]}}"#), Some("system.0.text"), "Field required"),
            (format!(r#"{{"model":"m","max_tokens":5,"messages":{u},"stream":"true"}}"#), Some("stream"), "stream: Input should be a valid boolean"),
        ];
        for (body, param, needle) in cases {
            let e = parse_messages(body.as_bytes()).expect_err(&body);
            assert_eq!((e.status, e.kind), (400, ErrorKind::BadRequest), "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}");
            assert!(e.message.contains(needle), "{body}: {:?} lacks {needle:?}", e.message);
        }
    }

    #[test]
    fn error_envelopes() {
        let want = [
            (ErrorKind::BadRequest, "invalid_request_error"),
            (ErrorKind::ContextLength, "invalid_request_error"),
            (ErrorKind::Authentication, "authentication_error"),
            (ErrorKind::Billing, "billing_error"),
            (ErrorKind::Permission, "permission_error"),
            (ErrorKind::NotFound, "not_found_error"),
            (ErrorKind::RequestTooLarge, "request_too_large"),
            (ErrorKind::RateLimit, "rate_limit_error"),
            (ErrorKind::InsufficientQuota, "rate_limit_error"),
            (ErrorKind::Server, "api_error"),
            (ErrorKind::BadGateway, "api_error"),
            (ErrorKind::Unavailable, "api_error"),
            (ErrorKind::Timeout, "timeout_error"),
            (ErrorKind::Overloaded, "overloaded_error"),
        ];
        assert_eq!(want.len(), ErrorKind::ALL.len());
        for (k, ty) in want {
            let v: Value = serde_json::from_str(&error_body(k, "boom", "req_011CSHoEeqs5C35K2UUqR7Fy")).unwrap();
            assert_eq!(keys(&v), ["error", "request_id", "type"]);
            assert_eq!(v["type"], "error");
            assert_eq!(keys(&v["error"]), ["message", "type"]);
            assert_eq!(v["error"]["type"], ty, "{k:?}");
            assert_eq!(v["error"]["message"], "boom");
            assert_eq!(v["request_id"], "req_011CSHoEeqs5C35K2UUqR7Fy");
        }
        assert!(ErrorKind::InsufficientQuota
            .default_message(Api::Anthropic)
            .contains("usage limits"));
        let (name, v) = frame(&event_error(ErrorKind::Overloaded, "Overloaded"));
        assert_eq!(name, "error");
        assert_eq!(
            v,
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
        );
    }

    #[test]
    fn message_and_models_bodies() {
        let v: Value = serde_json::from_str(&message_body(
            "msg_01",
            "claude-sonnet-4-20250514",
            " hi",
            25,
            15,
            "end_turn",
        ))
        .unwrap();
        assert_eq!(
            keys(&v),
            [
                "content",
                "id",
                "model",
                "role",
                "stop_reason",
                "stop_sequence",
                "type",
                "usage"
            ]
        );
        assert_eq!(
            (v["type"].as_str(), v["role"].as_str()),
            (Some("message"), Some("assistant"))
        );
        assert_eq!(v["content"], json!([{ "type": "text", "text": " hi" }]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["stop_sequence"].is_null());
        assert_eq!(
            (
                v["usage"]["input_tokens"].as_u64(),
                v["usage"]["output_tokens"].as_u64()
            ),
            (Some(25), Some(15))
        );

        let m: Value = serde_json::from_str(&models_body(&[
            ("claude-sonnet-4-20250514", "Claude Sonnet 4"),
            ("claude-3-5-haiku-20241022", "Claude Haiku 3.5"),
        ]))
        .unwrap();
        assert_eq!(keys(&m), ["data", "first_id", "has_more", "last_id"]);
        assert_eq!(
            keys(&m["data"][0]),
            [
                "capabilities",
                "created_at",
                "deprecated_at",
                "display_name",
                "id",
                "lifecycle",
                "line",
                "max_input_tokens",
                "max_tokens",
                "retires_at",
                "type"
            ]
        );
        assert_eq!(m["data"][0]["lifecycle"], "active");
        assert_eq!(m["data"][0]["line"], "sonnet");
        assert_eq!(m["data"][0]["type"], "model");
        assert_eq!(m["first_id"], "claude-sonnet-4-20250514");
        assert_eq!(m["last_id"], "claude-3-5-haiku-20241022");
        assert_eq!(m["has_more"], false);
        let empty: Value = serde_json::from_str(&models_body(&[])).unwrap();
        assert!(empty["first_id"].is_null() && empty["data"].as_array().unwrap().is_empty());
    }

    #[test]
    fn message_template_matches_message_body_and_models_page() {
        let t: Value = serde_json::from_str(&message_template("msg_1", "c\"l", 4, 6, "max_tokens").render()).unwrap();
        let b: Value = serde_json::from_str(&message_body(
            "msg_1",
            "c\"l",
            &crate::provider::filler_text(6),
            4,
            6,
            "max_tokens",
        ))
        .unwrap();
        assert_eq!(t, b);
        let page = |l: Option<&str>, a: Option<&str>, b: Option<&str>| -> Value {
            serde_json::from_str(&models_page(MODELS, l, a, b).unwrap()).unwrap()
        };
        let all = page(None, None, None);
        assert_eq!(all["data"].as_array().unwrap().len(), MODELS.len());
        let p1 = page(Some("1"), None, None);
        assert_eq!(
            (p1["has_more"].clone(), p1["first_id"].clone()),
            (json!(true), json!(MODELS[0].0))
        );
        let p2 = page(Some("1"), Some(MODELS[0].0), None);
        assert_eq!(p2["first_id"], MODELS[1].0);
        let before = page(Some("1"), None, Some(MODELS[2].0));
        assert_eq!(before["first_id"], MODELS[1].0);
        for bad in ["0", "1001", "x"] {
            assert_eq!(
                models_page(MODELS, Some(bad), None, None).unwrap_err().param.as_deref(),
                Some("limit")
            );
        }
        assert!(models_page(MODELS, None, Some("nope"), None).is_err());
        assert_eq!(model_body(MODELS, "gpt-4o").unwrap_err().status, 404);
        assert_eq!(
            parse_count_tokens(br#"{"model":"m","messages":[{"role":"user","content":"abcdefgh"}]}"#)
                .unwrap()
                .input_tokens,
            2
        );
    }

    #[test]
    fn stream_events_have_the_real_shape() {
        let seq = [
            event_message_start("msg_01", "claude-sonnet-4-20250514", 25),
            event_content_block_start(),
            event_ping(),
            event_text_delta("Hello"),
            event_text_delta(" \"world\"\n"),
            event_content_block_stop(),
            event_message_delta("end_turn", 15),
            event_message_stop(),
        ];
        let parsed: Vec<(String, Value)> = seq.iter().map(|f| frame(f)).collect();
        for (name, v) in &parsed {
            assert_eq!(v["type"], name.as_str(), "event name matches data.type");
        }
        let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &parsed[0].1["message"];
        assert_eq!(
            keys(start),
            [
                "content",
                "id",
                "model",
                "role",
                "stop_reason",
                "stop_sequence",
                "type",
                "usage"
            ]
        );
        assert_eq!(start["content"], json!([]));
        assert!(start["stop_reason"].is_null());
        assert_eq!(start["usage"]["input_tokens"], 25);
        assert_eq!(
            parsed[1].1,
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })
        );
        assert_eq!(parsed[2].1, json!({ "type": "ping" }));
        assert_eq!(
            parsed[4].1["delta"],
            json!({ "type": "text_delta", "text": " \"world\"\n" })
        );
        assert_eq!(parsed[5].1, json!({ "type": "content_block_stop", "index": 0 }));
        assert_eq!(
            parsed[6].1,
            json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 15 } })
        );
        assert_eq!(parsed[7].1, json!({ "type": "message_stop" }));

        let bad = malformed_event();
        assert!(bad.starts_with("event: content_block_delta\ndata: {") && bad.ends_with("\n\n"));
        let data = bad.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        assert!(serde_json::from_str::<Value>(data).is_err());
    }

    #[test]
    fn ratelimit_header_values() {
        let s = RateLimitSnapshot {
            limit_requests: 50,
            remaining_requests: 49,
            reset_requests: 1_200_000_000,
            limit_tokens: 40_000,
            remaining_tokens: 39_000,
            reset_tokens: 0,
        };
        let h = ratelimit_headers(&s, 1_700_000_000_000);
        assert_eq!(
            h,
            vec![
                ("anthropic-ratelimit-requests-limit", "50".to_string()),
                ("anthropic-ratelimit-requests-remaining", "49".to_string()),
                ("anthropic-ratelimit-requests-reset", "2023-11-14T22:13:22Z".to_string()),
                ("anthropic-ratelimit-tokens-limit", "40000".to_string()),
                ("anthropic-ratelimit-tokens-remaining", "39000".to_string()),
                ("anthropic-ratelimit-tokens-reset", "2023-11-14T22:13:20Z".to_string()),
                ("anthropic-ratelimit-input-tokens-limit", "40000".to_string()),
                ("anthropic-ratelimit-input-tokens-remaining", "39000".to_string()),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2023-11-14T22:13:20Z".to_string()
                ),
                ("anthropic-ratelimit-output-tokens-limit", "40000".to_string()),
                ("anthropic-ratelimit-output-tokens-remaining", "39000".to_string()),
                (
                    "anthropic-ratelimit-output-tokens-reset",
                    "2023-11-14T22:13:20Z".to_string()
                ),
            ]
        );
        // now itself mid-second: reset 0 still rounds up to the next whole second
        let h = ratelimit_headers(&RateLimitSnapshot { limit_requests: 0, ..s }, 1_700_000_000_001);
        assert_eq!(h.len(), 9);
        assert_eq!(h[2].1, "2023-11-14T22:13:21Z");
        let _ = ratelimit_headers(
            &RateLimitSnapshot {
                reset_tokens: u64::MAX,
                ..s
            },
            u64::MAX,
        );
    }

    fn random_json(x: &mut u64, depth: u32) -> Value {
        const STRS: &[&str] = &[
            "model",
            "messages",
            "role",
            "content",
            "user",
            "assistant",
            "text",
            "type",
            "system",
            "",
            "é",
            "tool_result",
        ];
        crate::provider::testing::random_json(x, depth, STRS)
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        const ALPHABET: &[u8] = b"{}[]\":,0123-.eE abctruefalsenull\\\xff\xc3";
        for n in 0..4000 {
            let len = n % 96;
            let body: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(xorshift(&mut x) % ALPHABET.len() as u64) as usize])
                .collect();
            let _ = parse_messages(&body);
        }
        let mut accepted = 0;
        for _ in 0..4000 {
            let mut v = random_json(&mut x, 4);
            if let (Value::Object(o), true) = (&mut v, xorshift(&mut x) & 1 == 0) {
                o.insert("model".into(), json!("m"));
                o.insert("max_tokens".into(), json!(8));
                let c = random_json(&mut x, 3);
                o.insert("messages".into(), json!([{ "role": "user", "content": c }]));
            }
            if let Ok(r) = parse_messages(v.to_string().as_bytes()) {
                assert!(r.input_tokens >= 1 && r.include_usage && r.max_tokens.is_some());
                accepted += 1;
            }
        }
        assert!(accepted > 0, "the generator should reach the success path");
    }
}
