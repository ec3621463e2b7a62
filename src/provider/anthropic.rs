//! Anthropic wire format: messages (plain and SSE), models, errors (`SEMANTICS.md` §5).
//!
//! Stream events, in order: `message_start`, `content_block_start`, `ping`,
//! `content_block_delta` (`text_delta`) …, `content_block_stop`, `message_delta`
//! (stop_reason, cumulative usage), `message_stop`. A mid-stream error is
//! `event: error` with `{"type":"error","error":{"type":"overloaded_error",…}}`.

use super::{
    estimate_tokens, opt_bool, parse_object, text_chars, ChatRequest, ErrorKind, RateLimitSnapshot, Rejection,
};
use serde_json::{json, Value};

fn bad(message: impl Into<String>) -> Rejection {
    Rejection::bad(None, message)
}

/// Parses and validates `POST /v1/messages`.
pub fn parse_messages(body: &[u8]) -> Result<ChatRequest, Rejection> {
    let m = parse_object(
        body,
        "There was an error parsing the body of your request: invalid JSON.",
    )?;
    let model = match m.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) if !v.is_null() => return Err(bad(format!("model: Input should be a valid string, got {v}"))),
        _ => return Err(bad("model: Field required")),
    };
    let max_tokens = match m.get("max_tokens") {
        None | Some(Value::Null) => return Err(bad("max_tokens: Field required")),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => return Err(bad(format!("max_tokens: Input should be a positive integer, got {v}"))),
        },
    };
    let messages = match m.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(bad("messages: at least one message is required")),
        Some(v) if !v.is_null() => return Err(bad(format!("messages: Input should be a valid list, got {v}"))),
        _ => return Err(bad("messages: Field required")),
    };
    let mut chars = 0usize;
    for (i, msg) in messages.iter().enumerate() {
        let Value::Object(o) = msg else {
            return Err(bad(format!("messages.{i}: Input should be a valid dictionary")));
        };
        match o.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            Some(r) => {
                return Err(bad(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant', got '{r}'"
                )))
            }
            None => return Err(bad(format!("messages.{i}.role: Field required"))),
        }
        match o.get("content") {
            Some(Value::String(s)) => chars += s.chars().count(),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    if b.get("type").and_then(Value::as_str).is_none() {
                        return Err(bad(format!("messages.{i}.content.{j}.type: Field required")));
                    }
                    chars += text_chars(b);
                }
            }
            Some(v) if !v.is_null() => {
                return Err(bad(format!(
                    "messages.{i}.content: Input should be a valid string or list, got {v}"
                )))
            }
            _ => return Err(bad(format!("messages.{i}.content: Field required"))),
        }
    }
    match m.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => chars += s.chars().count(),
        Some(Value::Array(a)) if a.iter().all(|b| b.get("type").is_some()) => {
            chars += text_chars(&Value::Array(a.clone()))
        }
        Some(v) => {
            return Err(bad(format!(
                "system: Input should be a valid string or list of text blocks, got {v}"
            )))
        }
    }
    let stream = opt_bool(&m, "stream").map_err(|_| bad("stream: Input should be a valid boolean"))?;
    Ok(ChatRequest {
        model,
        stream,
        include_usage: true,
        max_tokens: Some(max_tokens),
        input_tokens: estimate_tokens(chars).max(1),
    })
}

fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "invalid_request_error",
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

/// `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn error_body(kind: ErrorKind, message: &str, request_id: &str) -> String {
    json!({ "type": "error", "error": { "type": error_type(kind), "message": message }, "request_id": request_id })
        .to_string()
}

/// A `message` object.
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
        "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
    })
    .to_string()
}

/// `GET /v1/models`.
pub fn models_body(models: &[&str]) -> String {
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({ "type": "model", "id": m, "display_name": m, "created_at": "2024-10-22T00:00:00Z" }))
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
    })
    .to_string()
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// `message_start` with an empty content list and the prompt usage.
pub fn event_message_start(id: &str, model: &str, input_tokens: u32) -> String {
    event(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": 1 },
            },
        }),
    )
}

/// `content_block_start` of text block 0.
pub fn event_content_block_start() -> String {
    event(
        "content_block_start",
        &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
    )
}

/// `ping`.
pub fn event_ping() -> String {
    event("ping", &json!({ "type": "ping" }))
}

/// A `text_delta`.
pub fn event_text_delta(text: &str) -> String {
    event(
        "content_block_delta",
        &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": text } }),
    )
}

/// `content_block_stop`.
pub fn event_content_block_stop() -> String {
    event(
        "content_block_stop",
        &json!({ "type": "content_block_stop", "index": 0 }),
    )
}

/// `message_delta` with the stop reason and cumulative output usage.
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

/// `message_stop`.
pub fn event_message_stop() -> String {
    event("message_stop", &json!({ "type": "message_stop" }))
}

/// An in-band `event: error`.
pub fn event_error(kind: ErrorKind, message: &str) -> String {
    event(
        "error",
        &json!({ "type": "error", "error": { "type": error_type(kind), "message": message } }),
    )
}

/// A `content_block_delta` whose JSON is cut short.
pub fn malformed_event() -> String {
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n".into()
}

/// `anthropic-ratelimit-*` headers; resets as RFC 3339 instants.
pub fn ratelimit_headers(s: &RateLimitSnapshot, now_unix_ms: u64) -> Vec<(&'static str, String)> {
    let at = |n: u64| super::rfc3339_from_unix_ms(now_unix_ms + n.div_ceil(1_000_000));
    let mut v = Vec::with_capacity(6);
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
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let r = parse_messages(br#"{"model":"claude-3-5-sonnet-20241022","max_tokens":1024,"system":"Be brief.","messages":[{"role":"user","content":"Hello, world"}]}"#).unwrap();
        assert_eq!(r.max_tokens, Some(1024));
        assert!(!r.stream && r.include_usage);
        for (body, want) in [
            (
                &br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#[..],
                "max_tokens",
            ),
            (
                br#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
                "model",
            ),
            (
                br#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
                "role",
            ),
            (br#"{"model":"m","max_tokens":5}"#, "messages"),
            (b"not json", "JSON"),
        ] {
            let e = parse_messages(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(want), "{} / {}", e.message, want);
        }
    }

    #[test]
    fn envelopes_and_events() {
        let e: Value = serde_json::from_str(&error_body(ErrorKind::Overloaded, "Overloaded", "req_1")).unwrap();
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], "overloaded_error");
        assert_eq!(e["request_id"], "req_1");
        let ev = event_error(ErrorKind::Overloaded, "Overloaded");
        assert!(ev.starts_with("event: error\ndata: "));
        let d = event_text_delta(" hi");
        let v: Value = serde_json::from_str(d.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
        assert_eq!(v["delta"]["type"], "text_delta");
        let md: Value = serde_json::from_str(
            event_message_delta("end_turn", 9)
                .lines()
                .nth(1)
                .unwrap()
                .trim_start_matches("data: "),
        )
        .unwrap();
        assert_eq!(md["usage"]["output_tokens"], 9);
        let h = ratelimit_headers(
            &RateLimitSnapshot {
                limit_requests: 50,
                remaining_requests: 49,
                reset_requests: 1_200_000_000,
                limit_tokens: 0,
                remaining_tokens: 0,
                reset_tokens: 0,
            },
            1_700_000_000_000,
        );
        assert_eq!(
            h[2],
            ("anthropic-ratelimit-requests-reset", "2023-11-14T22:13:21Z".to_string())
        );
        assert_eq!(h.len(), 3);
    }
}
