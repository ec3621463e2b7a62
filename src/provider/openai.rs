//! OpenAI wire format: chat completions (plain and SSE), embeddings, models, errors
//! (`SEMANTICS.md` §5).
//!
//! Streams follow OpenAI's order: a first chunk whose delta has `role`, `content` pieces,
//! a chunk with `finish_reason`, then — only with `stream_options.include_usage` — a
//! chunk with empty `choices` and `usage`, then `data: [DONE]`. When usage is requested,
//! earlier chunks carry `"usage": null`, as OpenAI's do.

use super::{
    estimate_tokens, go_duration, opt_bool, opt_positive, parse_object, req_string, text_chars, ChatRequest,
    EmbeddingsRequest, ErrorKind, RateLimitSnapshot, Rejection,
};
use crate::time::Nanos;
use serde_json::{json, Value};

const NOT_JSON: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// Parses and validates `POST /v1/chat/completions`.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, Rejection> {
    let m = parse_object(body, NOT_JSON)?;
    let model = req_string(&m, "model")?;
    let messages = match m.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(Rejection::bad(
                Some("messages"),
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            ))
        }
        Some(v) if !v.is_null() => {
            return Err(Rejection::bad(
                Some("messages"),
                format!("Invalid type for 'messages': expected an array, but got {v}."),
            ))
        }
        _ => {
            return Err(Rejection::bad(
                Some("messages"),
                "Missing required parameter: 'messages'.",
            ))
        }
    };
    let mut chars = 0usize;
    for (i, msg) in messages.iter().enumerate() {
        let p = format!("messages[{i}]");
        let Value::Object(o) = msg else {
            return Err(Rejection::bad(
                Some(&p),
                format!("Invalid type for '{p}': expected an object."),
            ));
        };
        let role = match o.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
            Some(Value::String(r)) => {
                return Err(Rejection::bad(
                    Some(&format!("{p}.role")),
                    format!("Invalid value: '{r}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."),
                ))
            }
            _ => return Err(Rejection::bad(Some(&format!("{p}.role")), format!("Missing required parameter: '{p}.role'."))),
        };
        match o.get("content") {
            Some(Value::String(s)) => chars += s.chars().count(),
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    let ok = part.get("type").and_then(Value::as_str).is_some();
                    if !ok {
                        let q = format!("{p}.content[{j}].type");
                        return Err(Rejection::bad(Some(&q), format!("Missing required parameter: '{q}'.")));
                    }
                    chars += text_chars(part);
                }
            }
            None | Some(Value::Null) if role == "assistant" => {}
            Some(v) if !v.is_null() => {
                let q = format!("{p}.content");
                return Err(Rejection::bad(
                    Some(&q),
                    format!("Invalid type for '{q}': expected one of a string or array of objects, but got {v}."),
                ));
            }
            _ => {
                let q = format!("{p}.content");
                return Err(Rejection::bad(Some(&q), format!("Missing required parameter: '{q}'.")));
            }
        }
    }
    let stream = opt_bool(&m, "stream")?;
    let max_tokens = match opt_positive(&m, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => opt_positive(&m, "max_tokens")?,
    };
    let include_usage = match m.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            if !stream {
                return Err(Rejection::bad(
                    Some("stream_options"),
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                ));
            }
            match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(Rejection::bad(
                        Some("stream_options.include_usage"),
                        format!("Invalid type for 'stream_options.include_usage': expected a boolean, but got {v}."),
                    ))
                }
            }
        }
        Some(v) => {
            return Err(Rejection::bad(
                Some("stream_options"),
                format!("Invalid type for 'stream_options': expected an object, but got {v}."),
            ))
        }
    };
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        max_tokens,
        input_tokens: estimate_tokens(chars).max(1),
    })
}

/// Parses and validates `POST /v1/embeddings`.
pub fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, Rejection> {
    let m = parse_object(body, NOT_JSON)?;
    let model = req_string(&m, "model")?;
    let bad_input = || {
        Rejection::bad(
            Some("input"),
            "'input' must be a string, an array of strings, an array of integers, or an array of arrays of integers.",
        )
    };
    let (inputs, tokens) = match m.get("input") {
        None | Some(Value::Null) => return Err(Rejection::bad(Some("input"), "Missing required parameter: 'input'.")),
        Some(Value::String(s)) => (1u32, estimate_tokens(s.chars().count())),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(Rejection::bad(Some("input"), "'input' must be a non-empty array."))
        }
        Some(Value::Array(a)) => {
            if a.iter().all(Value::is_string) {
                (a.len() as u32, a.iter().map(|s| estimate_tokens(text_chars(s))).sum())
            } else if a.iter().all(|v| v.as_u64().is_some()) {
                (1, a.len() as u32)
            } else if a.iter().all(|v| {
                v.as_array()
                    .is_some_and(|x| !x.is_empty() && x.iter().all(|t| t.as_u64().is_some()))
            }) {
                (
                    a.len() as u32,
                    a.iter().map(|v| v.as_array().map_or(0, |x| x.len() as u32)).sum(),
                )
            } else {
                return Err(bad_input());
            }
        }
        Some(_) => return Err(bad_input()),
    };
    if inputs > 2048 {
        return Err(Rejection::bad(
            Some("input"),
            "'input' must have at most 2048 elements.",
        ));
    }
    let dimensions = opt_positive(&m, "dimensions")?;
    if dimensions.is_some_and(|d| d > 8192) {
        return Err(Rejection::bad(Some("dimensions"), "'dimensions' must be at most 8192."));
    }
    Ok(EmbeddingsRequest {
        model,
        inputs,
        input_tokens: tokens.max(1),
        dimensions,
    })
}

fn type_and_code(kind: ErrorKind) -> (&'static str, Value) {
    match kind {
        ErrorKind::BadRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            ("invalid_request_error", Value::Null)
        }
        ErrorKind::Authentication => ("invalid_request_error", json!("invalid_api_key")),
        ErrorKind::Permission => ("invalid_request_error", json!("unsupported_country_region_territory")),
        ErrorKind::Billing => ("billing_error", json!("billing_hard_limit_reached")),
        ErrorKind::RateLimit => ("requests", json!("rate_limit_exceeded")),
        ErrorKind::InsufficientQuota => ("insufficient_quota", json!("insufficient_quota")),
        ErrorKind::Server
        | ErrorKind::BadGateway
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::Overloaded => ("server_error", Value::Null),
    }
}

fn error_value(kind: ErrorKind, message: &str, param: Option<&str>) -> Value {
    let (ty, code) = type_and_code(kind);
    json!({ "error": { "message": message, "type": ty, "param": param, "code": code } })
}

/// `{"error":{"message","type","param","code"}}`.
pub fn error_body(kind: ErrorKind, message: &str, param: Option<&str>) -> String {
    error_value(kind, message, param).to_string()
}

/// A 429 rate-limit body whose message ends "Please try again in 84ms.".
pub fn rate_limit_error_body(retry_after: Nanos) -> String {
    let msg = format!(
        "Rate limit reached for requests in organization org-chaosgate on requests per min (RPM): Limit reached. Please try again in {}.",
        go_duration(retry_after)
    );
    error_body(ErrorKind::RateLimit, &msg, None)
}

/// A `chat.completion` object.
pub fn completion_body(
    id: &str,
    model: &str,
    created: u64,
    text: &str,
    prompt_tokens: u32,
    completion_tokens: u32,
    finish_reason: &str,
) -> String {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_chaosgate",
    })
    .to_string()
}

/// An embeddings `list` with deterministic unit vectors.
pub fn embeddings_body(model: &str, inputs: u32, dimensions: u32, prompt_tokens: u32, seed: u64) -> String {
    let mut data = Vec::with_capacity(inputs as usize);
    let mut x = seed | 1;
    for i in 0..inputs {
        let mut v: Vec<f64> = (0..dimensions)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        for a in &mut v {
            *a = (*a / norm * 1e6).round() / 1e6;
        }
        data.push(json!({ "object": "embedding", "index": i, "embedding": v }));
    }
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    })
    .to_string()
}

/// `GET /v1/models`.
pub fn models_body(models: &[&str], created: u64) -> String {
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": created, "owned_by": "chaosgate" }))
        .collect();
    json!({ "object": "list", "data": data }).to_string()
}

fn frame(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn chunk(id: &str, model: &str, created: u64, delta: Value, finish: Option<&str>) -> String {
    frame(&json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_chaosgate",
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
    }))
}

/// First chunk: `delta: {"role":"assistant","content":""}`.
pub fn chunk_role(id: &str, model: &str, created: u64) -> String {
    chunk(
        id,
        model,
        created,
        json!({ "role": "assistant", "content": "", "refusal": null }),
        None,
    )
}

/// A content piece.
pub fn chunk_content(id: &str, model: &str, created: u64, text: &str) -> String {
    chunk(id, model, created, json!({ "content": text }), None)
}

/// The chunk with `finish_reason` and an empty delta.
pub fn chunk_finish(id: &str, model: &str, created: u64, finish_reason: &str) -> String {
    chunk(id, model, created, json!({}), Some(finish_reason))
}

/// The usage chunk (empty `choices`), sent only with `include_usage`.
pub fn chunk_usage(id: &str, model: &str, created: u64, prompt_tokens: u32, completion_tokens: u32) -> String {
    frame(&json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_chaosgate",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
}

/// The stream terminator.
pub const DONE: &str = "data: [DONE]\n\n";

/// An in-band error after a 200: `data: {"error":{...}}` (the Python SDK raises APIError).
pub fn stream_error(kind: ErrorKind, message: &str) -> String {
    frame(&error_value(kind, message, None))
}

/// A `data:` line whose JSON is cut short.
pub fn malformed_chunk() -> String {
    "data: {\"id\":\"chatcmpl-broken\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"\n\n"
        .into()
}

/// `x-ratelimit-*` headers; resets as Go durations.
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

    #[test]
    fn parses_a_realistic_request() {
        let r = parse_chat(br#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Hello!"}]}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":50}"#).unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(50));
        assert_eq!(r.input_tokens, estimate_tokens("You are terse.".len() + "Hello!".len()));
    }

    #[test]
    fn rejects_with_param() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (b"{nope", None),
            (b"[1]", None),
            (br#"{"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
            (br#"{"model":"m","messages":[]}"#, Some("messages")),
            (
                br#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                Some("max_tokens"),
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
                Some("stream_options"),
            ),
        ];
        for (body, param) in cases {
            let e = parse_chat(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), param, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn embeddings_inputs() {
        assert_eq!(parse_embeddings(br#"{"model":"e","input":"abcd"}"#).unwrap().inputs, 1);
        assert_eq!(
            parse_embeddings(br#"{"model":"e","input":["a","b","c"]}"#)
                .unwrap()
                .inputs,
            3
        );
        assert_eq!(
            parse_embeddings(br#"{"model":"e","input":[[1,2],[3]]}"#)
                .unwrap()
                .inputs,
            2
        );
        assert_eq!(
            parse_embeddings(br#"{"model":"e","input":[]}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("input")
        );
        let b: Value = serde_json::from_str(&embeddings_body("e", 2, 4, 3, 9)).unwrap();
        assert_eq!(b["data"][1]["embedding"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn envelopes_and_chunks_have_the_real_shape() {
        let e: Value = serde_json::from_str(&rate_limit_error_body(84_000_000)).unwrap();
        assert_eq!(e["error"]["type"], "requests");
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
        assert!(e["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("Please try again in 84ms."));
        assert!(e["error"]["param"].is_null());
        let q: Value = serde_json::from_str(&error_body(ErrorKind::InsufficientQuota, "q", None)).unwrap();
        assert_eq!(
            (q["error"]["type"].as_str(), q["error"]["code"].as_str()),
            (Some("insufficient_quota"), Some("insufficient_quota"))
        );
        let c = chunk_content("id", "m", 1, " hi");
        assert!(c.starts_with("data: ") && c.ends_with("\n\n"));
        let v: Value = serde_json::from_str(c.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["choices"][0]["delta"]["content"], " hi");
        let u: Value =
            serde_json::from_str(chunk_usage("id", "m", 1, 3, 4).trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(u["choices"].as_array().unwrap().len(), 0);
        assert_eq!(u["usage"]["total_tokens"], 7);
        let se: Value =
            serde_json::from_str(stream_error(ErrorKind::Server, "x").trim_start_matches("data: ").trim()).unwrap();
        assert!(se["error"].is_object());
        assert!(serde_json::from_str::<Value>(malformed_chunk().trim_start_matches("data: ").trim()).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..3000 {
            let len = n % 64;
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"{}[]\":,0123abc truefalsenull"[(x % 28) as usize]
                })
                .collect();
            let _ = parse_chat(&body);
            let _ = parse_embeddings(&body);
        }
    }
}
