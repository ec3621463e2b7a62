//! Telling a gateway's health probes from user traffic at the mock.
//!
//! Traffic-share detection counts what each provider received from users only, so every
//! probe must arrive marked (`probe: true` in the arrival log, `chaosgate_mock_probes_total`
//! in the metrics). A request is a probe when any of these holds:
//!
//! - its path is `/health` (HAProxy `option httpchk GET /health`, Caddy `health_uri`, the
//!   reference gateway) — always, not configurable;
//! - it carries one of the probe headers, `x-chaosgate-probe: 1` by default (the reference
//!   gateway's completion probes; any gateway that can add a header to its checks);
//! - its JSON body holds one of the probe prompts as a complete JSON string. The defaults are
//!   the texts LiteLLM's health checks send, which are real `POST /chat/completions` (and, for
//!   embedding deployments, `/embeddings`) calls: a user message of "Hey how's it going?" or
//!   "What's 1 + 1?" (`litellm/proxy/health_check.py`, `_get_random_llm_message`), and the
//!   input "test from litellm" (its `DEFAULT_HEALTH_CHECK_PROMPT`).
//!
//! A prompt matches where its JSON encoding, quotes included, occurs in the body: that is
//! a string value (or key) equal to the prompt, not a longer text that contains it. The
//! encoding is serde_json's (ASCII stays as it is, `"` and `\` are escaped), which is what
//! every JSON encoder writes for ASCII text without `/`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use memchr::memmem::Finder;

/// What LiteLLM's background health checks send (see the module docs).
pub const LITELLM_HEALTH_PROMPTS: [&str; 3] = ["Hey how's it going?", "What's 1 + 1?", "test from litellm"];

/// The header the reference gateway puts on its completion probes.
pub const PROBE_HEADER: &str = "x-chaosgate-probe";

/// Which requests are health probes (see the module docs).
#[derive(Clone, Debug)]
pub struct ProbeMatcher {
    headers: Vec<(HeaderName, HeaderValue)>,
    prompts: Vec<String>,
    finders: Vec<Finder<'static>>,
}

impl Default for ProbeMatcher {
    /// `x-chaosgate-probe: 1` and LiteLLM's health-check prompts.
    fn default() -> ProbeMatcher {
        let mut m = ProbeMatcher::none();
        m.add_header(PROBE_HEADER, "1").expect("valid header");
        for p in LITELLM_HEALTH_PROMPTS {
            m.add_prompt(p);
        }
        m
    }
}

impl ProbeMatcher {
    /// Only `/health` is a probe.
    pub fn none() -> ProbeMatcher {
        ProbeMatcher {
            headers: Vec::new(),
            prompts: Vec::new(),
            finders: Vec::new(),
        }
    }

    /// Marks requests carrying `name: value` (name case-insensitive, value exact).
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        let n = HeaderName::try_from(name).map_err(|_| format!("{name:?} is not a valid header name"))?;
        let v = HeaderValue::try_from(value).map_err(|_| format!("{value:?} is not a valid header value"))?;
        self.headers.push((n, v));
        Ok(())
    }

    /// Marks requests whose body holds `prompt` as a complete JSON string.
    pub fn add_prompt(&mut self, prompt: &str) {
        let needle = serde_json::to_string(prompt).expect("a string always serialises");
        self.finders.push(Finder::new(needle.as_bytes()).into_owned());
        self.prompts.push(prompt.to_string());
    }

    /// Parses a `NAME=VALUE` (or `NAME: VALUE`) header rule, as `--probe-header` takes it.
    pub fn add_header_rule(&mut self, rule: &str) -> Result<(), String> {
        let (n, v) = rule
            .split_once('=')
            .or_else(|| rule.split_once(':'))
            .ok_or_else(|| format!("probe header {rule:?}: expected NAME=VALUE"))?;
        self.add_header(n.trim(), v.trim())
            .map_err(|e| format!("probe header {rule:?}: {e}"))
    }

    /// The prompt texts.
    pub fn prompts(&self) -> &[String] {
        &self.prompts
    }

    /// The request's headers mark it as a probe.
    pub fn by_headers(&self, headers: &HeaderMap) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| headers.get_all(n).iter().any(|got| got == v))
    }

    /// The request's body holds a probe prompt.
    pub fn by_body(&self, body: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(body).is_some())
    }

    /// Headers or body mark the request as a probe.
    pub fn matches(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        self.by_headers(headers) || self.by_body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::try_from(*n).unwrap(), HeaderValue::try_from(*v).unwrap());
        }
        h
    }

    #[test]
    fn litellm_probe_bodies_match_and_user_bodies_do_not() {
        let m = ProbeMatcher::default();
        let empty = HeaderMap::new();
        // As the openai Python SDK (json.dumps) writes LiteLLM's probe.
        let probe =
            br#"{"messages": [{"role": "user", "content": "What's 1 + 1?"}], "model": "gpt-4o", "max_tokens": 16}"#;
        assert!(m.matches(&empty, probe));
        let compact = br#"{"model":"m","messages":[{"role":"user","content":"Hey how's it going?"}]}"#;
        assert!(m.matches(&empty, compact));
        let embed = br#"{"input": ["test from litellm"], "model": "text-embedding-3-small"}"#;
        assert!(m.matches(&empty, embed));
        // A longer text that contains a probe prompt is user traffic.
        let user = br#"{"messages":[{"role":"user","content":"What's 1 + 1? Explain."}]}"#;
        assert!(!m.matches(&empty, user));
        let other = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        assert!(!m.matches(&empty, other));
    }

    #[test]
    fn headers_match_by_exact_value() {
        let m = ProbeMatcher::default();
        assert!(m.by_headers(&headers(&[("X-Chaosgate-Probe", "1")])));
        assert!(!m.by_headers(&headers(&[("x-chaosgate-probe", "0")])));
        assert!(!m.by_headers(&HeaderMap::new()));
        let mut c = ProbeMatcher::none();
        c.add_header_rule("user-agent=probe/1.0").unwrap();
        assert!(c.by_headers(&headers(&[("user-agent", "probe/1.0")])));
        assert!(!c.by_headers(&headers(&[("user-agent", "probe/1.0 extra")])));
        assert!(
            !c.by_headers(&headers(&[(PROBE_HEADER, "1")])),
            "none() has no default header"
        );
    }

    #[test]
    fn prompts_with_json_escapes_are_matched_in_their_encoded_form() {
        let mut m = ProbeMatcher::none();
        m.add_prompt("say \"ok\"");
        assert!(m.by_body(br#"{"content":"say \"ok\""}"#));
        assert!(!m.by_body(br#"{"content":"say ok"}"#));
        assert_eq!(m.prompts(), ["say \"ok\""]);
    }

    #[test]
    fn bad_header_rules_say_what_is_wrong() {
        let mut m = ProbeMatcher::none();
        assert!(m.add_header_rule("no-separator").unwrap_err().contains("NAME=VALUE"));
        assert!(m
            .add_header_rule("bad name=1")
            .unwrap_err()
            .contains("not a valid header name"));
        m.add_header_rule("x-probe: yes").unwrap();
        assert!(m.by_headers(&headers(&[("x-probe", "yes")])));
    }
}
