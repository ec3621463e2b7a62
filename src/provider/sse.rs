//! An incremental Server-Sent Events parser that classifies OpenAI and Anthropic events.

use crate::provider::Api;
use std::borrow::Cow;

/// What one SSE event meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A content token (a non-empty content delta).
    Token,
    /// Usage reported: output tokens.
    Usage(u32),
    /// The terminal event (`[DONE]` / `message_stop`).
    Terminal,
    /// An in-band error event.
    Error,
    /// An event whose JSON does not parse.
    Malformed,
    /// A keep-alive: an SSE comment (`: ping`) or Anthropic's `event: ping`.
    Ping,
    /// Anything else (role chunk, block start/stop…).
    Other,
}

/// Incremental parser: feed bytes, get events.
#[derive(Debug)]
pub struct Parser {
    api: Api,
    /// Only look for terminal and error events (no JSON parsing): the gateway's mode.
    light: bool,
    buf: Vec<u8>,
    /// The terminal event was seen.
    pub terminal: bool,
}

impl Parser {
    /// A parser for `api`'s stream.
    pub fn new(api: Api) -> Parser {
        Parser {
            api,
            light: false,
            buf: Vec::new(),
            terminal: false,
        }
    }

    /// A parser that only spots terminal and error events, without parsing JSON (a proxy
    /// passing a stream through needs no more). Tokens show as `Other`.
    pub fn light(api: Api) -> Parser {
        Parser {
            api,
            light: true,
            buf: Vec::new(),
            terminal: false,
        }
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        self.push_into(data, &mut out);
        out
    }

    /// [`Parser::push`] into `out` (cleared first), so a stream's reader reuses one vector.
    pub fn push_into(&mut self, data: &[u8], out: &mut Vec<Event>) {
        out.clear();
        if self.buf.is_empty() {
            // the usual case: whole events in hand, read where they lie; keep the rest
            let at = self.events(data, out);
            self.buf.extend_from_slice(&data[at..]);
            return;
        }
        self.buf.extend_from_slice(data);
        let buf = std::mem::take(&mut self.buf);
        let at = self.events(&buf, out);
        self.buf = buf;
        self.buf.drain(..at);
    }

    /// Reads the complete events at the start of `b` into `out`; returns where they end.
    fn events(&mut self, b: &[u8], out: &mut Vec<Event>) -> usize {
        let mut at = 0;
        while let Some((end, skip)) = find_boundary(&b[at..]) {
            if let Some(e) = self.event(&b[at..at + end]) {
                out.push(e);
            }
            at += end + skip;
        }
        at
    }

    /// The event of one block (the text between two boundaries), if it is one.
    fn event(&mut self, block: &[u8]) -> Option<Event> {
        // the usual block, one `data: {…}` line, read as it lies (bytes that are not UTF-8
        // fail the JSON reader and take the general path below, as every doubt does)
        if !self.light {
            if let Some(json) = block.strip_prefix(b"data:") {
                let json = json.strip_prefix(b" ").unwrap_or(json);
                if json.first() == Some(&b'{') && memchr::memchr2(b'\n', b'\r', json).is_none() {
                    if let Some(e) = std::str::from_utf8(json)
                        .ok()
                        .and_then(|j| fast::classify(self.api, None, j))
                    {
                        return Some(e);
                    }
                }
            }
        }
        let text = match std::str::from_utf8(block) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(block),
        };
        let mut name: Option<&str> = None;
        let mut payload: Cow<'_, str> = Cow::Borrowed("");
        let mut comment = false;
        for line in text.lines() {
            comment |= line.starts_with(':');
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("data:") {
                let v = v.strip_prefix(' ').unwrap_or(v);
                if payload.is_empty() {
                    payload = Cow::Borrowed(v);
                } else {
                    let p = payload.to_mut();
                    p.push('\n');
                    p.push_str(v);
                }
            }
        }
        if payload.is_empty() && name.is_none() {
            return comment.then_some(Event::Ping); // ": ping"
        }
        if name == Some("ping") {
            return Some(Event::Ping);
        }
        Some(self.classify(name, &payload))
    }

    fn classify(&mut self, name: Option<&str>, data: &str) -> Event {
        if self.api == Api::OpenAi && data.trim() == "[DONE]" {
            self.terminal = true;
            return Event::Terminal;
        }
        if self.light {
            return match (self.api, name) {
                (Api::Anthropic, Some("message_stop")) => {
                    self.terminal = true;
                    Event::Terminal
                }
                (Api::Anthropic, Some("error")) => Event::Error,
                (Api::OpenAi, _) if data.trim_start().starts_with("{\"error\"") => Event::Error,
                _ => Event::Other,
            };
        }
        let e = fast::classify(self.api, name, data).unwrap_or_else(|| classify_value(self.api, name, data));
        if e == Event::Terminal {
            self.terminal = true;
        }
        e
    }
}

/// What an event's JSON means, read from a `serde_json::Value`: the rule. [`fast`] reads
/// the same from borrowed slices and defers to this whenever it is unsure.
fn classify_value(api: Api, name: Option<&str>, data: &str) -> Event {
    let v: serde_json::Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(_) => return Event::Malformed,
    };
    match api {
        Api::OpenAi => {
            if v.get("error").is_some_and(|e| !e.is_null()) {
                return Event::Error;
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                if v["choices"].as_array().is_none_or(|c| c.is_empty()) {
                    return Event::Usage(n as u32);
                }
            }
            match v["choices"][0]["delta"]["content"].as_str() {
                Some(s) if !s.is_empty() => Event::Token,
                _ => Event::Other,
            }
        }
        Api::Anthropic => match name.or(v["type"].as_str()) {
            Some("content_block_delta") => Event::Token,
            Some("message_delta") => v["usage"]["output_tokens"]
                .as_u64()
                .map_or(Event::Other, |n| Event::Usage(n as u32)),
            Some("message_stop") => Event::Terminal,
            Some("error") => Event::Error,
            _ => Event::Other,
        },
    }
}

/// [`classify_value`] without building a `Value` (the load client reads every event of
/// every stream): one pass of `serde_json` into borrowed structs of only the keys the rule
/// reads ([`crate::provider::json_keys`]: every other key is read and dropped as a `Value`
/// would read it). Each struct is read from a JSON object only, a key twice is an error,
/// a value of another type is an error: on any error the caller asks [`classify_value`],
/// so both always agree (tested on random events).
mod fast {
    use super::Event;
    use crate::provider::Api;
    use crate::provider::{json_keys, Discard, JsonStr};

    json_keys!(OpenAi {
        error: Option<Discard> = "error",
        usage: Option<Usage<'de>> = "usage",
        choices: Option<Vec<Choice<'de>>> = "choices",
    });
    json_keys!(Usage {
        completion_tokens: Option<u64> = "completion_tokens",
        output_tokens: Option<u64> = "output_tokens",
    });
    json_keys!(Choice { delta: Option<Delta<'de>> = "delta" });
    json_keys!(Delta {
        content: Option<JsonStr<'de>> = "content",
    });
    json_keys!(Anthropic {
        kind: Option<JsonStr<'de>> = "type",
        usage: Option<Usage<'de>> = "usage",
    });

    /// (From a `&str`: its UTF-8 checked once, not string by string as `from_slice` does.)
    pub(super) fn classify(api: Api, name: Option<&str>, data: &str) -> Option<Event> {
        match api {
            Api::OpenAi => {
                let v = serde_json::from_str::<OpenAi<'_>>(data).ok()?;
                if v.error.is_some() {
                    return Some(Event::Error);
                }
                if let Some(n) = v.usage.as_ref().and_then(|u| u.completion_tokens) {
                    if v.choices.as_ref().is_none_or(|c| c.is_empty()) {
                        return Some(Event::Usage(n as u32));
                    }
                }
                let content = v
                    .choices
                    .as_ref()
                    .and_then(|c| c.first())
                    .and_then(|c| c.delta.as_ref())
                    .and_then(|d| d.content.as_ref().map(|c| c.0.as_ref()));
                Some(match content {
                    Some(s) if !s.is_empty() => Event::Token,
                    _ => Event::Other,
                })
            }
            Api::Anthropic => {
                let v = serde_json::from_str::<Anthropic<'_>>(data).ok()?;
                Some(match name.or(v.kind.as_ref().map(|k| k.0.as_ref())) {
                    Some("content_block_delta") => Event::Token,
                    Some("message_delta") => v
                        .usage
                        .and_then(|u| u.output_tokens)
                        .map_or(Event::Other, |n| Event::Usage(n as u32)),
                    Some("message_stop") => Event::Terminal,
                    Some("error") => Event::Error,
                    _ => Event::Other,
                })
            }
        }
    }
}

/// Position of the first event boundary (`\n\n` or `\r\n\r\n`) and its length.
fn find_boundary(b: &[u8]) -> Option<(usize, usize)> {
    // one pass over the line feeds: a boundary starts at the first `\n\n`, or one byte
    // before the first `\n` of a `\r\n\r\n` (no `\n\n` can start between the two)
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', &b[from..]) {
        let i = from + off;
        if b.get(i + 1) == Some(&b'\n') {
            return Some((i, 2));
        }
        if i >= 1 && b[i - 1] == b'\r' && b.get(i + 1..i + 3) == Some(b"\r\n") {
            return Some((i - 1, 4));
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{anthropic, openai, ErrorKind};

    #[test]
    fn openai_stream_split_anywhere() {
        let mut all = String::new();
        all.push_str(&openai::chunk_role("c", "m", 1));
        all.push_str(&openai::chunk_content("c", "m", 1, " a"));
        all.push_str(": ping\n\n");
        all.push_str(&openai::chunk_content("c", "m", 1, " b"));
        all.push_str(&openai::chunk_finish("c", "m", 1, "stop"));
        all.push_str(&openai::chunk_usage("c", "m", 1, 3, 2));
        all.push_str(openai::DONE);
        for split in [1, 7, 64, all.len()] {
            let mut p = Parser::new(Api::OpenAi);
            let evs: Vec<Event> = all.as_bytes().chunks(split).flat_map(|c| p.push(c)).collect();
            assert_eq!(
                evs,
                vec![
                    Event::Other,
                    Event::Token,
                    Event::Ping,
                    Event::Token,
                    Event::Other,
                    Event::Usage(2),
                    Event::Terminal
                ],
                "split {split}"
            );
            assert!(p.terminal);
        }
        let mut p = Parser::new(Api::OpenAi);
        assert_eq!(
            p.push(openai::stream_error(ErrorKind::Server, "x").as_bytes()),
            vec![Event::Error]
        );
        assert_eq!(p.push(openai::malformed_chunk().as_bytes()), vec![Event::Malformed]);
    }

    /// A random JSON text over the keys the classifier reads, with every kind of value,
    /// duplicate keys and odd whitespace: where the fast reader answers, it must answer as
    /// the `Value` rule does.
    fn step(x: &mut u64, m: u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % m
    }

    fn random_event(x: &mut u64, depth: u32) -> String {
        const KEYS: [&str; 10] = [
            "error",
            "usage",
            "choices",
            "delta",
            "content",
            "completion_tokens",
            "output_tokens",
            "type",
            "x",
            "index",
        ];
        const SCALARS: [&str; 16] = [
            "null",
            "true",
            "0",
            "7",
            "-0",
            "-3",
            "1.5",
            "1e2",
            "18446744073709551616",
            "\"\"",
            "\"a\"",
            "\"\\u00e9\\\"\"",
            "\"content_block_delta\"",
            "\"message_delta\"",
            "\"message_stop\"",
            "\"error\"",
        ];
        let pick = step(x, 10);
        if depth == 0 || pick < 4 {
            return SCALARS[step(x, SCALARS.len() as u64) as usize].to_string();
        }
        if pick < 6 {
            let n = step(x, 3);
            let items: Vec<String> = (0..n).map(|_| random_event(x, depth - 1)).collect();
            return format!("[{}]", items.join(","));
        }
        let n = step(x, 4);
        let mut fields = Vec::new();
        for _ in 0..n {
            let k = KEYS[step(x, KEYS.len() as u64) as usize];
            let ws = if step(x, 4) == 0 { " \n" } else { "" };
            fields.push(format!("{ws}\"{k}\"{ws}:{ws}{}", random_event(x, depth - 1)));
        }
        format!("{{{}}}", fields.join(","))
    }

    #[test]
    fn the_fast_reader_agrees_with_the_value_rule() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut answered = 0;
        let total = 20_000;
        for _ in 0..total {
            let data = random_event(&mut x, 4);
            for api in [Api::OpenAi, Api::Anthropic] {
                for name in [None, Some("message_delta"), Some("content_block_delta")] {
                    if let Some(e) = fast::classify(api, name, &data) {
                        answered += 1;
                        assert_eq!(e, classify_value(api, name, &data), "{api:?} {name:?} {data}");
                    }
                }
            }
        }
        assert!(
            answered > total,
            "the fast reader answered only {answered} of {}",
            total * 6
        );
        // the mock's own frames are all answered by the fast reader
        for f in [
            openai::chunk_role("c", "m", 1),
            openai::chunk_content("c", "m", 1, " a\"b"),
            openai::chunk_finish("c", "m", 1, "stop"),
            openai::chunk_usage("c", "m", 1, 3, 2),
            openai::stream_error(ErrorKind::Server, "x"),
        ] {
            let data = f.strip_prefix("data: ").unwrap().trim_end();
            assert!(fast::classify(Api::OpenAi, None, data).is_some(), "{data}");
        }
    }

    #[test]
    fn what_serde_json_values_refuse_the_fast_reader_leaves_to_them() {
        let deep = format!(
            "{{\"x\":{}1{},\"choices\":[{{\"delta\":{{\"content\":\"a\"}}}}]}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        let cases: Vec<Vec<u8>> = vec![
            br#"{"x":1e400,"choices":[{"delta":{"content":"a"}}]}"#.to_vec(),
            br#"{"x":"\ud800","choices":[{"delta":{"content":"a"}}]}"#.to_vec(),
            b"{\"x\":\"a\x01b\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}".to_vec(),
            b"{\"x\":\"\xff\xfe\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}".to_vec(),
            deep.into_bytes(),
        ];
        for data in cases {
            for api in [Api::OpenAi, Api::Anthropic] {
                // as `Parser::event` calls it: bytes that are not UTF-8 never reach it
                assert_eq!(
                    std::str::from_utf8(&data)
                        .ok()
                        .and_then(|d| fast::classify(api, None, d)),
                    None,
                    "{}",
                    String::from_utf8_lossy(&data)
                );
            }
            let text = String::from_utf8_lossy(&data);
            if std::str::from_utf8(&data).is_ok() {
                assert_eq!(classify_value(Api::OpenAi, None, &text), Event::Malformed, "{text}");
            }
            // through the parser: the same event as the Value rule gives the lossy text
            let mut p = Parser::new(Api::OpenAi);
            let mut frame = b"data: ".to_vec();
            frame.extend_from_slice(&data);
            frame.extend_from_slice(b"\n\n");
            assert_eq!(p.push(&frame), vec![classify_value(Api::OpenAi, None, &text)]);
        }
    }

    #[test]
    fn boundaries_are_found_in_one_pass_as_before() {
        for (b, want) in [
            (&b"a\n\nb"[..], Some((1, 2))),
            (b"a\r\n\r\nb", Some((1, 4))),
            (b"a\r\n\nb", Some((2, 2))),
            (b"a\n\r\n\r\n", Some((2, 4))),
            (b"\r\n\r", None),
            (b"a\nb\nc", None),
            (b"\n\n", Some((0, 2))),
            (b"", None),
        ] {
            assert_eq!(find_boundary(b), want, "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn light_mode_spots_terminal_and_errors_only() {
        let mut p = Parser::light(Api::OpenAi);
        let s = [
            openai::chunk_content("c", "m", 1, " a"),
            openai::stream_error(ErrorKind::Server, "x"),
            openai::DONE.to_string(),
        ]
        .concat();
        assert_eq!(p.push(s.as_bytes()), vec![Event::Other, Event::Error, Event::Terminal]);
        // keep-alives, which the gateway's stall timer must tell from content
        assert_eq!(p.push(b": ping\n\n"), vec![Event::Ping]);
        let mut p = Parser::light(Api::Anthropic);
        assert_eq!(p.push(anthropic::event_ping().as_bytes()), vec![Event::Ping]);
        let s = [
            anthropic::event_text_delta(" a"),
            anthropic::event_error(ErrorKind::Overloaded, "o"),
            anthropic::event_message_stop(),
        ]
        .concat();
        assert_eq!(p.push(s.as_bytes()), vec![Event::Other, Event::Error, Event::Terminal]);
    }

    #[test]
    fn anthropic_stream() {
        let mut p = Parser::new(Api::Anthropic);
        let s = [
            anthropic::event_message_start("m", "x", 3),
            anthropic::event_ping(),
            anthropic::event_text_delta(" a"),
            anthropic::event_message_delta("end_turn", 1),
            anthropic::event_message_stop(),
        ]
        .concat();
        assert_eq!(
            p.push(s.as_bytes()),
            vec![
                Event::Other,
                Event::Ping,
                Event::Token,
                Event::Usage(1),
                Event::Terminal
            ]
        );
        let mut p = Parser::new(Api::Anthropic);
        assert_eq!(
            p.push(anthropic::event_error(ErrorKind::Overloaded, "Overloaded").as_bytes()),
            vec![Event::Error]
        );
    }
}
