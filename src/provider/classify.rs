//! How a provider's error answer is classified: its status, how long it asks the client
//! to wait (`retry-after-ms`, `retry-after` as delta-seconds or an HTTP-date), and whether
//! it is the provider's final word (a quota or spend cap, `x-should-retry: false`).
//!
//! One owner for the live gateway (which parses real headers and the JSON error envelope)
//! and the simulator (which derives the same [`Answer`] from a fault verdict with
//! [`from_verdict`], through the same wire values the mock sends). Pure: a caller that
//! needs an HTTP-date's distance passes the wall-clock `now` in.
//!
//! Rules:
//! - `retry-after-ms` (OpenAI) wins when it is a valid non-negative decimal number of
//!   milliseconds (fractions allowed, as the OpenAI SDKs read it).
//! - Otherwise `retry-after`: delta-seconds exactly as RFC 9110 §10.2.3 writes it
//!   (`1*DIGIT`; no sign, no fraction, no spaces inside), or an HTTP-date (IMF-fixdate and
//!   the two obsolete forms), measured from `now`; a date in the past means "now" (0).
//! - An absent, empty or malformed value is treated as absent, never as a guess.
//! - Non-retryable: an OpenAI envelope whose `error.type` or `error.code` is
//!   `insufficient_quota`; an Anthropic 429 envelope (`rate_limit_error`) with no
//!   `retry-after` (a spend cap); any answer with `x-should-retry: false`.

use crate::provider::{anthropic, openai, Api, Envelope as Shape, ErrorKind};
use crate::time::{Nanos, NS_PER_S};
use serde::Deserialize;
use std::time::SystemTime;

/// Why an answer must not be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Final {
    /// OpenAI `insufficient_quota` (type or code in the error envelope).
    Quota,
    /// Anthropic 429 `rate_limit_error` without `retry-after`: a spend cap.
    SpendCap,
    /// `x-should-retry: false`, no more specific reason in the body.
    ShouldNotRetry,
}

/// A classified error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// How long the provider asked to wait, if it said so validly.
    pub retry_after: Option<Nanos>,
    /// Set when retrying cannot help.
    pub final_: Option<Final>,
}

impl Answer {
    /// A plain status with no wait and no refusal.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            final_: None,
        }
    }

    /// The provider did not say this is final.
    pub fn retryable(&self) -> bool {
        self.final_.is_none()
    }
}

/// A malformed `retry-after` / `retry-after-ms` value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad {header} value {value:?}: {why}")]
pub struct BadRetryAfter {
    /// Which header.
    pub header: &'static str,
    /// The value as sent (truncated to 64 bytes).
    pub value: String,
    /// What is wrong.
    pub why: &'static str,
}

fn bad(header: &'static str, v: &str, why: &'static str) -> BadRetryAfter {
    let mut end = v.len().min(64);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    BadRetryAfter {
        header,
        value: v[..end].to_string(),
        why,
    }
}

/// `retry-after`: delta-seconds (`1*DIGIT`) or an HTTP-date measured from `now`.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Result<Nanos, BadRetryAfter> {
    let v = v.trim_matches([' ', '\t']);
    if v.is_empty() {
        return Err(bad("retry-after", v, "empty"));
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // saturate: a huge wait is still "longer than any cap", never a wrapped small one
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Ok(secs.saturating_mul(NS_PER_S));
    }
    if v.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    {
        return Err(bad(
            "retry-after",
            v,
            "delta-seconds must be a whole number of seconds (RFC 9110)",
        ));
    }
    match httpdate::parse_http_date(v) {
        Ok(at) => Ok(at
            .duration_since(now)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))),
        Err(_) => Err(bad("retry-after", v, "neither delta-seconds nor an HTTP-date")),
    }
}

/// `retry-after-ms`: a non-negative decimal number of milliseconds.
pub fn parse_retry_after_ms(v: &str) -> Result<Nanos, BadRetryAfter> {
    let v = v.trim_matches([' ', '\t']);
    let ok_chars = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let ms: f64 = match v.parse() {
        Ok(ms) if ok_chars => ms,
        _ => return Err(bad("retry-after-ms", v, "not a non-negative decimal number")),
    };
    if !ms.is_finite() {
        return Err(bad("retry-after-ms", v, "not finite"));
    }
    let ns = ms * 1e6;
    Ok(if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns.round() as u64
    })
}

/// The wait an answer asks for, from its two headers' raw values (`retry-after-ms` first).
pub fn wait_from(retry_after: Option<&str>, retry_after_ms: Option<&str>, now: SystemTime) -> Option<Nanos> {
    retry_after_ms
        .and_then(|v| parse_retry_after_ms(v).ok())
        .or_else(|| retry_after.and_then(|v| parse_retry_after(v, now).ok()))
}

/// The header values the mock writes for a wait of `ra`: `retry-after` in whole seconds
/// (rounded up) and, for OpenAI, `retry-after-ms` (rounded up).
pub fn wire_retry_after(api: Api, ra: Nanos) -> (u64, Option<u64>) {
    let secs = ra.div_ceil(NS_PER_S);
    let ms = (api == Api::OpenAi).then(|| ra.div_ceil(1_000_000));
    (secs, ms)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    ty: Option<String>,
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    ty: Option<String>,
    code: Option<serde_json::Value>,
}

/// What a body's error envelope says, as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    /// `insufficient_quota` in an OpenAI envelope.
    Quota,
    /// An Anthropic `rate_limit_error` envelope.
    AnthropicRateLimit,
    /// Anything else, or no parseable envelope.
    Other,
}

fn body_kind(ty: Option<&str>, err_ty: Option<&str>, code: Option<&str>) -> BodyKind {
    if ty == Some("error") && err_ty == Some("rate_limit_error") {
        BodyKind::AnthropicRateLimit
    } else if ty.is_none() && (err_ty == Some("insufficient_quota") || code == Some("insufficient_quota")) {
        BodyKind::Quota
    } else {
        BodyKind::Other
    }
}

fn parse_body(body: &[u8]) -> BodyKind {
    let Ok(e) = serde_json::from_slice::<Envelope>(body) else {
        return BodyKind::Other;
    };
    let Some(err) = e.error else {
        return BodyKind::Other;
    };
    let code = err.code.as_ref().and_then(|c| c.as_str());
    body_kind(e.ty.as_deref(), err.ty.as_deref(), code)
}

fn decide(status: u16, retry_after: Option<Nanos>, body: BodyKind, should_retry_false: bool) -> Answer {
    let final_ = match body {
        BodyKind::Quota => Some(Final::Quota),
        BodyKind::AnthropicRateLimit if status == 429 && retry_after.is_none() => Some(Final::SpendCap),
        _ if should_retry_false => Some(Final::ShouldNotRetry),
        _ => None,
    };
    Answer {
        status,
        retry_after,
        final_,
    }
}

/// Classifies a live error answer from its status, headers and (a prefix of) its body.
pub fn classify(status: u16, headers: &hyper::HeaderMap, body: &[u8], now: SystemTime) -> Answer {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let retry_after = wait_from(h("retry-after"), h("retry-after-ms"), now);
    let should_retry_false = h("x-should-retry").is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    decide(status, retry_after, parse_body(body), should_retry_false)
}

/// The [`Answer`] a mock of `api` gives for an error verdict (`status`, `kind`,
/// `retry_after`, `envelope`): the same wire values the mock writes ([`wire_retry_after`],
/// the envelope's type/code, `x-should-retry`; an HTML page has none of them), put through
/// the same decision as [`classify`]. No text is formatted or parsed.
pub fn from_error(api: Api, status: u16, kind: ErrorKind, retry_after: Option<Nanos>, envelope: Shape) -> Answer {
    let retry_after = retry_after.map(|ra| {
        let (secs, ms) = wire_retry_after(api, ra);
        ms.map_or(secs.saturating_mul(NS_PER_S), |ms| ms.saturating_mul(1_000_000))
    });
    let body = match (envelope, api) {
        (Shape::Html, _) => BodyKind::Other,
        (_, Api::OpenAi) => {
            let (ty, code) = openai::type_and_code(kind);
            body_kind(None, Some(ty), code)
        }
        (_, Api::Anthropic) => body_kind(Some("error"), Some(anthropic::error_type(kind)), None),
    };
    decide(status, retry_after, body, sends_should_retry_false(kind, envelope))
}

/// Whether the mock sends `x-should-retry: false` for this kind in this envelope (only the
/// provider's own envelope carries provider headers).
pub fn sends_should_retry_false(kind: ErrorKind, envelope: Shape) -> bool {
    envelope == Shape::Provider && !kind.retryable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("1", now()), Ok(NS_PER_S));
        assert_eq!(parse_retry_after(" 0 ", now()), Ok(0));
        assert_eq!(parse_retry_after("120", now()), Ok(120 * NS_PER_S));
        assert_eq!(parse_retry_after("99999999999999999999999", now()), Ok(u64::MAX));
    }

    #[test]
    fn delta_seconds_rejects_fraction_sign_and_junk() {
        for v in ["1.5", "-1", "+1", "", "  ", "1s", "soon", "1 2"] {
            let e = parse_retry_after(v, now()).unwrap_err();
            assert_eq!(e.header, "retry-after", "{v:?}");
        }
    }

    #[test]
    fn http_date_forms() {
        let n = now();
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:39 GMT", n), Ok(2 * NS_PER_S));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:40 GMT", n), Ok(3 * NS_PER_S));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:41 1994", n), Ok(4 * NS_PER_S));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", n),
            Ok(0),
            "past = now"
        );
        assert!(parse_retry_after("Sun, 32 Nov 1994 08:49:39 GMT", n).is_err());
    }

    #[test]
    fn retry_after_ms() {
        assert_eq!(parse_retry_after_ms("84"), Ok(84_000_000));
        assert_eq!(parse_retry_after_ms("1.5"), Ok(1_500_000));
        for v in ["", "-5", "abc", "1e3", "NaN", "inf"] {
            assert!(parse_retry_after_ms(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn ms_wins_and_bad_values_are_absent() {
        assert_eq!(wait_from(Some("2"), Some("1500"), now()), Some(1_500_000_000));
        assert_eq!(wait_from(Some("2"), Some("junk"), now()), Some(2 * NS_PER_S));
        assert_eq!(wait_from(Some("1.5"), None, now()), None);
        assert_eq!(wait_from(None, None, now()), None);
    }

    fn headers(kv: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in kv {
            h.insert(*k, hyper::header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn openai_quota_by_type_or_code() {
        let by_type = br#"{"error":{"message":"x","type":"insufficient_quota","param":null,"code":null}}"#;
        let by_code =
            br#"{"error":{"message":"x","type":"invalid_request_error","param":null,"code":"insufficient_quota"}}"#;
        for b in [&by_type[..], &by_code[..]] {
            let a = classify(429, &headers(&[]), b, now());
            assert_eq!(a.final_, Some(Final::Quota));
            assert!(!a.retryable());
        }
    }

    #[test]
    fn quota_word_in_a_message_is_not_a_quota() {
        let b = br#"{"error":{"message":"insufficient_quota","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let a = classify(429, &headers(&[("retry-after", "1")]), b, now());
        assert_eq!(a.final_, None);
        assert_eq!(a.retry_after, Some(NS_PER_S));
        // not JSON at all, but the word is there: still not a quota
        let a = classify(429, &headers(&[]), b"insufficient_quota", now());
        assert!(a.retryable());
    }

    #[test]
    fn anthropic_spend_cap_is_a_429_without_retry_after() {
        let b = br#"{"type":"error","error":{"type":"rate_limit_error","message":"m"},"request_id":"r"}"#;
        assert_eq!(classify(429, &headers(&[]), b, now()).final_, Some(Final::SpendCap));
        let a = classify(429, &headers(&[("retry-after", "3")]), b, now());
        assert_eq!((a.final_, a.retry_after), (None, Some(3 * NS_PER_S)));
        // a malformed retry-after is absent, so this is a spend cap too
        let a = classify(429, &headers(&[("retry-after", "soon")]), b, now());
        assert_eq!(a.final_, Some(Final::SpendCap));
    }

    #[test]
    fn should_retry_false_header() {
        let a = classify(500, &headers(&[("x-should-retry", "false")]), b"", now());
        assert_eq!(a.final_, Some(Final::ShouldNotRetry));
        let a = classify(500, &headers(&[("x-should-retry", "true")]), b"", now());
        assert!(a.retryable());
    }

    /// Every kind and both APIs: the verdict's answer equals what `classify` makes of
    /// the response the mock writes for it.
    #[test]
    fn from_error_matches_the_mocks_wire() {
        for api in [Api::OpenAi, Api::Anthropic] {
            for kind in ErrorKind::ALL {
                for ra in [None, Some(1), Some(999_999), Some(NS_PER_S), Some(1_200_000_000)] {
                    let status = kind.status_for(api);
                    let body = match api {
                        Api::OpenAi => openai::error_body(kind, "m", None),
                        Api::Anthropic => anthropic::error_body(kind, "m", "req_1"),
                    };
                    let mut h = hyper::HeaderMap::new();
                    if let Some(ra) = ra {
                        let (s, ms) = wire_retry_after(api, ra);
                        h.insert("retry-after", s.into());
                        if let Some(ms) = ms {
                            h.insert("retry-after-ms", ms.into());
                        }
                    }
                    if sends_should_retry_false(kind, Shape::Provider) {
                        h.insert("x-should-retry", hyper::header::HeaderValue::from_static("false"));
                    }
                    let live = classify(status, &h, body.as_bytes(), now());
                    assert_eq!(
                        from_error(api, status, kind, ra, Shape::Provider),
                        live,
                        "{api:?} {kind:?} {ra:?}"
                    );
                }
                // `bare`: the same body, no headers (the verdict carries no retry-after)
                let status = kind.status_for(api);
                let body = match api {
                    Api::OpenAi => openai::error_body(kind, "m", None),
                    Api::Anthropic => anthropic::error_body(kind, "m", "req_1"),
                };
                let live = classify(status, &hyper::HeaderMap::new(), body.as_bytes(), now());
                assert_eq!(
                    from_error(api, status, kind, None, Shape::Bare),
                    live,
                    "{api:?} {kind:?} bare"
                );
                // `html`: a page, no headers
                let page = crate::provider::html_error_page(status, "m");
                let live = classify(status, &hyper::HeaderMap::new(), page.as_bytes(), now());
                assert_eq!(
                    from_error(api, status, kind, None, Shape::Html),
                    live,
                    "{api:?} {kind:?} html"
                );
            }
        }
    }

    /// A quota 429 stays final in a bare envelope (its body says so) but a bare 429 of
    /// the transient kind carries no wait: the gateway learns neither "final" nor "when".
    #[test]
    fn bare_and_html_envelopes_carry_no_headers() {
        let a = from_error(Api::OpenAi, 429, ErrorKind::RateLimit, None, Shape::Bare);
        assert_eq!((a.retry_after, a.final_), (None, None));
        let a = from_error(Api::OpenAi, 429, ErrorKind::InsufficientQuota, None, Shape::Bare);
        assert_eq!(a.final_, Some(Final::Quota));
        let a = from_error(Api::Anthropic, 403, ErrorKind::Permission, None, Shape::Html);
        assert_eq!(a, Answer::status(403));
        assert!(!sends_should_retry_false(ErrorKind::Permission, Shape::Bare));
        assert!(sends_should_retry_false(ErrorKind::ContextLength, Shape::Provider));
    }
}
