//! An incremental Server-Sent Events parser that classifies OpenAI and Anthropic events.

use crate::provider::Api;

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
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(pos) = find_boundary(&self.buf) {
            let (end, skip) = pos;
            let block: Vec<u8> = self.buf.drain(..end + skip).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut name = None;
            let mut payload = String::new();
            let mut comment = false;
            for line in text.lines() {
                comment |= line.starts_with(':');
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !payload.is_empty() {
                        payload.push('\n');
                    }
                    payload.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if payload.is_empty() && name.is_none() {
                if comment {
                    out.push(Event::Ping); // ": ping"
                }
                continue;
            }
            if name.as_deref() == Some("ping") {
                out.push(Event::Ping);
                continue;
            }
            out.push(self.classify(name.as_deref(), &payload));
        }
        out
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
        let v: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => return Event::Malformed,
        };
        match self.api {
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
                Some("message_stop") => {
                    self.terminal = true;
                    Event::Terminal
                }
                Some("error") => Event::Error,
                _ => Event::Other,
            },
        }
    }
}

/// Position of the first event boundary (`\n\n` or `\r\n\r\n`) and its length.
fn find_boundary(b: &[u8]) -> Option<(usize, usize)> {
    let a = b.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let c = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
    match (a, c) {
        (Some(x), Some(y)) => Some(if x.0 <= y.0 { x } else { y }),
        (x, y) => x.or(y),
    }
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
