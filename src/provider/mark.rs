//! Which provider answered: the mark a mock puts on its responses ([`Mark`]) and the one
//! function that reads it back ([`find`], [`from_header`]), so a client can attribute a
//! request to a provider after *any* gateway (`docs/semantics.md` §12, `docs/gateways.md`).
//!
//! A mock named `NAME` marks every response in several places, since gateways keep
//! different parts of an answer:
//!
//! - the header `x-chaosgate-provider: NAME` (LiteLLM passes it on renamed
//!   `llm_provider-x-chaosgate-provider`: [`HEADERS`] holds both);
//! - OpenAI: the completion's `id` `chatcmpl-cg{seq:012x}-ENC` and its
//!   `system_fingerprint` `fp_chaosgate-ENC`, in the plain body and in every stream chunk;
//! - Anthropic: the message `id` `msg_cg{seq:012x}-ENC` (plain body; `message_start`);
//! - an error envelope (both APIs): the message text ends ` [chaosgate-provider=ENC]` —
//!   the one part of an error LiteLLM and Portkey keep when they rebuild it.
//!
//! `ENC` is the name itself when it is made of ASCII letters, digits, `_` and `-`
//! (the usual case), else `.` followed by the lowercase hex of its UTF-8 bytes; a name
//! that is empty or longer than [`MAX_NAME_BYTES`] marks no body (the header still names
//! it when it is a valid header value). Ids stay plain strings the official SDKs accept,
//! and depend only on the name and the request's sequence number (deterministic per seed).
//! An answer without a mark (a gateway that rewrote the id, an error it replaced) stays
//! unattributed: nothing is guessed.

/// The response header that names the provider.
pub const HEADER: &str = "x-chaosgate-provider";

/// Response headers read as the provider's name, in order: ours, and LiteLLM's copy of it
/// (LiteLLM passes a provider's response headers on with the prefix `llm_provider-`).
pub const HEADERS: [&str; 2] = [HEADER, "llm_provider-x-chaosgate-provider"];

/// Longest provider name (in UTF-8 bytes) marked in bodies.
pub const MAX_NAME_BYTES: usize = 64;

/// The error message mark's lead: ` [chaosgate-provider=ENC]` ends a marked message.
const TEXT_KEY: &str = "chaosgate-provider=";
const FP: &str = "fp_chaosgate";
const OPENAI_ID: &str = "chatcmpl-cg";
const ANTHROPIC_ID: &str = "msg_cg";
/// Hex digits of the sequence number in an id.
const SEQ_DIGITS: usize = 12;

/// A provider's mark: its name encoded for ids and text, built once per mock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// `ENC`, or `None` when the name marks no body.
    enc: Option<String>,
}

fn raw_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn enc_char(c: u8) -> bool {
    raw_char(c) || c == b'.'
}

impl Mark {
    /// The mark of provider `name`.
    pub fn new(name: &str) -> Mark {
        let b = name.as_bytes();
        let enc = if b.is_empty() || b.len() > MAX_NAME_BYTES {
            None
        } else if b.iter().all(|&c| raw_char(c)) {
            Some(name.to_string())
        } else {
            let mut s = String::with_capacity(1 + 2 * b.len());
            s.push('.');
            for c in b {
                s.push_str(&format!("{c:02x}"));
            }
            Some(s)
        };
        Mark { enc }
    }

    /// No mark (ids and messages as an unmarked mock sends them).
    pub fn none() -> Mark {
        Mark { enc: None }
    }

    fn suffix(&self) -> String {
        self.enc.as_ref().map_or_else(String::new, |e| format!("-{e}"))
    }

    /// The OpenAI completion id of request `seq`: `chatcmpl-cg{seq:012x}-ENC`.
    pub fn openai_id(&self, seq: u64) -> String {
        format!("{OPENAI_ID}{seq:012x}{}", self.suffix())
    }

    /// The Anthropic message id of request `seq`: `msg_cg{seq:012x}-ENC`.
    pub fn anthropic_id(&self, seq: u64) -> String {
        format!("{ANTHROPIC_ID}{seq:012x}{}", self.suffix())
    }

    /// The OpenAI `system_fingerprint`: `fp_chaosgate-ENC` (`fp_chaosgate` unmarked).
    pub fn fingerprint(&self) -> String {
        format!("{FP}{}", self.suffix())
    }

    /// An error message with the mark at its end: `MESSAGE [chaosgate-provider=ENC]`.
    pub fn message(&self, message: &str) -> String {
        match &self.enc {
            None => message.to_string(),
            Some(e) if message.is_empty() => format!("[{TEXT_KEY}{e}]"),
            Some(e) => format!("{message} [{TEXT_KEY}{e}]"),
        }
    }
}

/// The `system_fingerprint` that goes with completion id `id` (the mark of a
/// [`Mark::openai_id`], else the plain `fp_chaosgate`), so the body and chunk builders
/// take the mark from the id they are given.
pub fn fingerprint_of_id(id: &str) -> String {
    match id.strip_prefix(OPENAI_ID).and_then(|r| id_enc(r)) {
        Some(e) => format!("{FP}-{e}"),
        None => FP.to_string(),
    }
}

/// `ENC` after an id's `cg` prefix: 12 hex digits, `-`, then the encoding.
fn id_enc(rest: &str) -> Option<&str> {
    let b = rest.as_bytes();
    if b.len() < SEQ_DIGITS + 2 || !b[..SEQ_DIGITS].iter().all(u8::is_ascii_hexdigit) || b[SEQ_DIGITS] != b'-' {
        return None;
    }
    let e = &rest[SEQ_DIGITS + 1..];
    (!e.is_empty() && e.bytes().all(enc_char)).then_some(e)
}

/// The name an `ENC` stands for.
fn decode(e: &[u8]) -> Option<String> {
    match e.split_first() {
        None => None,
        Some((b'.', hex)) => {
            if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 2 * MAX_NAME_BYTES {
                return None;
            }
            let bytes: Option<Vec<u8>> = hex
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        }
        Some(_) => (e.len() <= MAX_NAME_BYTES && e.iter().all(|&c| raw_char(c)))
            .then(|| String::from_utf8_lossy(e).into_owned()),
    }
}

/// The `ENC` that starts `b`: `.` and the hex digits after it, or the name characters.
fn take_enc(b: &[u8]) -> &[u8] {
    let (skip, ok): (usize, fn(&u8) -> bool) = match b.first() {
        Some(b'.') => (1, u8::is_ascii_hexdigit),
        _ => (0, |c: &u8| raw_char(*c)),
    };
    let n = skip + b[skip..].iter().position(|c| !ok(c)).unwrap_or(b.len() - skip);
    &b[..n]
}

/// Where header `name` stands in [`HEADERS`] (case-insensitive): the lower, the more it
/// is believed; `None` for any other header.
pub fn header_rank(name: &str) -> Option<usize> {
    HEADERS.iter().position(|h| h.eq_ignore_ascii_case(name))
}

/// The provider a response header value names (trimmed; `None` when empty or not text).
pub fn from_header(value: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(value).ok()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The provider marked anywhere in `text` — a plain body, the first chunks of a stream,
/// an error body however a gateway rewrote around the mark (escaped inside a JSON string,
/// in a Python repr): the first of a marked OpenAI or Anthropic id, a marked
/// `system_fingerprint` or an error message's mark. `None` when there is none.
pub fn find(text: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let skip = if let Some(r) = rest.strip_prefix(OPENAI_ID.as_bytes()) {
            from_id_rest(r)
        } else if let Some(r) = rest.strip_prefix(ANTHROPIC_ID.as_bytes()) {
            from_id_rest(r)
        } else if let Some(r) = rest.strip_prefix(FP.as_bytes()) {
            r.strip_prefix(b"-").and_then(|r| decode(take_enc(r)))
        } else if let Some(r) = rest.strip_prefix(TEXT_KEY.as_bytes()) {
            decode(take_enc(r))
        } else {
            None
        };
        if skip.is_some() {
            return skip;
        }
        // the next place any of the leads could start
        i += 1 + rest[1..]
            .iter()
            .position(|&c| c == b'c' || c == b'm' || c == b'f')
            .unwrap_or(rest.len() - 1);
    }
    None
}

/// The name in what follows an id's `cg` prefix.
fn from_id_rest(r: &[u8]) -> Option<String> {
    if r.len() < SEQ_DIGITS + 2 || !r[..SEQ_DIGITS].iter().all(u8::is_ascii_hexdigit) || r[SEQ_DIGITS] != b'-' {
        return None;
    }
    decode(take_enc(&r[SEQ_DIGITS + 1..]))
}

/// The request marker's lead: the load client starts the first message's content (the
/// first embeddings input) with `[cg-req=ID]`, `ID` the request's id in decimal, so a mock
/// behind any gateway that forwards the body can tell which client request an attempt
/// belongs to (`docs/semantics.md` §13). Only ASCII letters, digits and `[-=]`: no JSON
/// encoder escapes them.
pub const REQUEST_KEY: &str = "[cg-req=";

/// The request marker of request `id`.
pub fn request_marker(id: u64) -> String {
    format!("{REQUEST_KEY}{id}]")
}

/// `text` with its start overwritten by the marker of request `id`: the same number of
/// characters (the mock's token count, `chars / 4` rounded up, does not change). `None`
/// when `text` is shorter than the marker or the marker would split a character.
pub fn mark_prompt(text: &str, id: u64) -> Option<String> {
    let m = request_marker(id);
    let rest = text.get(m.len()..)?;
    let replaced = text.get(..m.len())?.chars().count();
    (replaced == m.len()).then(|| format!("{m}{rest}"))
}

/// The request a body's marker names: the first `[cg-req=ID]` anywhere in it (however a
/// gateway re-encoded the JSON around it). `None` when there is none or its id is not a
/// decimal number that fits in 64 bits.
pub fn find_request(body: &[u8]) -> Option<u64> {
    let i = memchr::memmem::find(body, REQUEST_KEY.as_bytes())?;
    let rest = &body[i + REQUEST_KEY.len()..];
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 20 || rest.get(n) != Some(&b']') {
        return None;
    }
    std::str::from_utf8(&rest[..n]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{anthropic, chat_reply, openai, Api, ErrorKind};

    const NAMES: [&str; 6] = ["primary", "azure-east_2", "a", "my provider", "été/β", "x.y"];

    #[test]
    fn request_marker_round_trips_and_keeps_the_prompt_length() {
        let text = "lorem ipsum dolor sit amet consectetur";
        let m = mark_prompt(text, 1234).unwrap();
        assert_eq!(m.chars().count(), text.chars().count());
        assert!(m.starts_with("[cg-req=1234]"));
        let body = serde_json::json!({"messages": [{"role": "user", "content": m}]}).to_string();
        assert_eq!(find_request(body.as_bytes()), Some(1234));
        assert_eq!(
            find_request(br#"{"text":"x [cg-req=7] y [cg-req=8]"}"#),
            Some(7),
            "the first"
        );
        assert_eq!(
            mark_prompt("short", 1234),
            None,
            "a prompt shorter than its marker stays unmarked"
        );
        assert_eq!(mark_prompt("[cg-req=99]", 99).as_deref(), Some("[cg-req=99]"));
        assert_eq!(
            mark_prompt("ab\u{e9}cdefghijklmn", 1),
            None,
            "replacing a multi-byte character would change the character count"
        );
        for bad in [
            &b"[cg-req=]"[..],
            b"[cg-req=12",
            b"[cg-req=1x]",
            b"[cg-req=999999999999999999999]",
            b"nothing",
        ] {
            assert_eq!(find_request(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            find_request(format!("[cg-req={}]", u64::MAX).as_bytes()),
            Some(u64::MAX)
        );
    }

    #[test]
    fn names_round_trip_through_every_mark() {
        for name in NAMES {
            let m = Mark::new(name);
            for s in [
                m.openai_id(42),
                m.anthropic_id(u64::MAX >> 16),
                m.fingerprint(),
                m.message("The server had an error."),
                m.message(""),
            ] {
                assert_eq!(find(s.as_bytes()).as_deref(), Some(name), "{s}");
            }
            assert_eq!(fingerprint_of_id(&m.openai_id(7)), m.fingerprint());
        }
        // readable when it can be
        assert_eq!(Mark::new("primary").openai_id(0x2a), "chatcmpl-cg00000000002a-primary");
        assert_eq!(Mark::new("primary").anthropic_id(1), "msg_cg000000000001-primary");
        assert_eq!(Mark::new("primary").fingerprint(), "fp_chaosgate-primary");
        assert_eq!(Mark::new("a b").fingerprint(), "fp_chaosgate-.612062");
    }

    #[test]
    fn unmarked_and_unmarkable_answers_stay_unknown() {
        for m in [Mark::none(), Mark::new(""), Mark::new(&"n".repeat(MAX_NAME_BYTES + 1))] {
            assert_eq!(m.openai_id(3), "chatcmpl-cg000000000003");
            assert_eq!(m.anthropic_id(3), "msg_cg000000000003");
            assert_eq!(m.fingerprint(), "fp_chaosgate");
            assert_eq!(m.message("boom"), "boom");
            for s in [m.openai_id(3), m.anthropic_id(3), m.fingerprint(), m.message("boom")] {
                assert_eq!(find(s.as_bytes()), None, "{s}");
            }
        }
        // a gateway's own ids, real providers' ids, near misses
        for s in [
            "chatcmpl-5deed40e-5805-416e-9c71-8e1b94ddeeea",
            "anthropic-1796539777796",
            "msg_01XFDUDYJgAACzvnptvVoYEL",
            "fp_44709d6fcb",
            "chatcmpl-cg00000000002a",
            "chatcmpl-cg00000000002a-",
            "chatcmpl-cg00000000zz2a-primary",
            "fp_chaosgate-.6",
            "[chaosgate-provider=]",
            "",
        ] {
            assert_eq!(find(s.as_bytes()), None, "{s}");
        }
        assert_eq!(fingerprint_of_id("chatcmpl-1"), "fp_chaosgate");
    }

    #[test]
    fn the_mark_survives_what_gateways_do_to_a_body() {
        let m = Mark::new("prov-err");
        let msg = m.message("The server had an error");
        // LiteLLM (OpenAI upstream): the message text, prefixed and suffixed
        let litellm = serde_json::json!({"error": {"message": format!("litellm.BadGatewayError: BadGatewayError: OpenAIException - {msg}\n\nLiteLLM: model group 'bad' failed"), "type": "internal_server_error", "param": null, "code": "502"}}).to_string();
        // LiteLLM (Anthropic upstream): the whole upstream body, escaped inside the message
        let upstream = anthropic::error_body(ErrorKind::BadGateway, &msg, "req_1");
        let nested =
            serde_json::json!({"error": {"message": format!("AnthropicException - b'{upstream}'")}}).to_string();
        // Python's repr of the body
        let repr = format!("Error code: 502 - {{'error': {{'message': '{msg}', 'type': 'server_error'}}}}");
        for body in [litellm, nested, repr, openai::error_body(ErrorKind::Server, &msg, None)] {
            assert_eq!(find(body.as_bytes()).as_deref(), Some("prov-err"), "{body}");
        }
        // prose around it: a full stop after an id is not part of the name
        let prose = format!("answered by {}. Next", Mark::new("primary").openai_id(1));
        assert_eq!(find(prose.as_bytes()).as_deref(), Some("primary"));
        // the first mark wins
        let two = format!("{} {}", Mark::new("a").openai_id(1), Mark::new("b").fingerprint());
        assert_eq!(find(two.as_bytes()).as_deref(), Some("a"));
    }

    #[test]
    fn plain_and_streamed_bodies_of_both_apis_carry_the_mark() {
        for name in NAMES {
            let m = Mark::new(name);
            for api in [Api::OpenAi, Api::Anthropic] {
                let plain = chat_reply(api, &m, 9, "gpt-4o", 1_700_000_000, 2, 5, 3, false).render();
                let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
                let id = v["id"].as_str().unwrap();
                assert_eq!(find(id.as_bytes()).as_deref(), Some(name), "{api:?} {plain}");
                assert_eq!(find(plain.as_bytes()).as_deref(), Some(name));
                if api == Api::OpenAi {
                    let fp = v["system_fingerprint"].as_str().unwrap();
                    assert_eq!(
                        find(fp.as_bytes()).as_deref(),
                        Some(name),
                        "a gateway that rewrote the id"
                    );
                }
            }
            // the first chunk of each stream, whole and cut anywhere after the mark
            let first = [
                openai::chunk_role(&m.openai_id(9), "gpt-4o", 5),
                anthropic::event_message_start(&m.anthropic_id(9), "claude", 3),
            ];
            for f in first {
                assert_eq!(find(f.as_bytes()).as_deref(), Some(name), "{f}");
            }
            // every OpenAI chunk has the mark in its fingerprint too
            let c = openai::chunk_content("chatcmpl-other", "gpt-4o", 5, "x");
            assert_eq!(find(c.as_bytes()), None);
            let c = openai::chunk_content(&m.openai_id(9), "gpt-4o", 5, "x");
            let v: serde_json::Value = serde_json::from_str(c.trim_start_matches("data: ").trim()).unwrap();
            assert_eq!(
                find(v["system_fingerprint"].as_str().unwrap().as_bytes()).as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(header_rank("X-Chaosgate-Provider"), Some(0));
        assert_eq!(header_rank("llm_provider-x-chaosgate-provider"), Some(1));
        assert_eq!(header_rank("x-request-id"), None);
        assert_eq!(from_header(b" primary ").as_deref(), Some("primary"));
        assert_eq!(from_header(b""), None);
        assert_eq!(from_header(b"\xff"), None);
    }

    #[test]
    fn find_never_panics_on_any_bytes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let leads: [&[u8]; 5] = [
            b"chatcmpl-cg",
            b"msg_cg",
            b"fp_chaosgate-",
            b"chaosgate-provider=",
            b".ff",
        ];
        for _ in 0..2000 {
            let mut b = Vec::new();
            for _ in 0..(crate::provider::testing::xorshift(&mut x) % 12) {
                let r = crate::provider::testing::xorshift(&mut x);
                match r % 4 {
                    0 => b.extend_from_slice(leads[(r >> 8) as usize % leads.len()]),
                    1 => b.extend_from_slice(b"00000000002a-"),
                    _ => b.push((r >> 16) as u8),
                }
            }
            let _ = find(&b);
        }
    }
}
