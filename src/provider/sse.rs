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
    /// The previous event, so the next can skip the bytes both begin with.
    memo: fast::Memo,
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
            memo: fast::Memo::default(),
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
            memo: fast::Memo::default(),
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
        if let Some(json) = block.strip_prefix(b"data:") {
            let json = json.strip_prefix(b" ").unwrap_or(json);
            if json.first() == Some(&b'{') && memchr::memchr2(b'\n', b'\r', json).is_none() {
                if self.light {
                    // the light rule for a block without an event name whose data starts
                    // with `{` (so is not `[DONE]`): only an OpenAI error object stands out
                    let error = self.api == Api::OpenAi && json.starts_with(b"{\"error\"");
                    return Some(if error { Event::Error } else { Event::Other });
                }
                if let Some(e) = std::str::from_utf8(json)
                    .ok()
                    .and_then(|j| fast::classify_with(self.api, None, j, Some(&mut self.memo)))
                {
                    return Some(e);
                }
            }
        }
        self.event_general(block)
    }

    /// [`Parser::event`] the general way: every line of the block read as text.
    fn event_general(&mut self, block: &[u8]) -> Option<Event> {
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
        let e = fast::classify_with(self.api, name, data, Some(&mut self.memo))
            .unwrap_or_else(|| classify_value(self.api, name, data));
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
/// every stream): one pass over the bytes that checks the JSON as `serde_json` does and
/// keeps only what the rule reads (`error`, `usage.completion_tokens` /
/// `usage.output_tokens`, `choices[0].delta.content`, `type`). Whenever the answer could
/// depend on something it does not model — a key twice, an escaped key, a `\u` escape, an
/// exponent, a number too long to be sure of its range, a negative token count, nesting
/// past 100 levels, a top level that is not an object — it answers `None` and the caller
/// asks [`classify_value`], so both always agree (tested on random and broken events).
mod fast {
    use super::Event;
    use crate::provider::Api;

    /// Nesting deeper than this is left to `serde_json` (its own limit is 128).
    const MAX_DEPTH: u32 = 100;
    /// A number longer than this may be out of `f64`'s range: left to `serde_json`.
    const MAX_NUMBER: usize = 100;

    /// A number as the rule sees it.
    enum Num {
        /// An unsigned integer that fits a `u64` (`as_u64()` gives it).
        U64(u64),
        /// Any other valid number but a negative one (`as_u64()` gives `None`).
        Other,
    }

    struct Cur<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        /// The next byte after whitespace.
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            let hit = self.peek() == Some(c);
            self.i += usize::from(hit);
            hit
        }

        /// A string: its raw bytes between the quotes, and whether it held an escape.
        fn string(&mut self) -> Option<(&'a [u8], bool)> {
            if !self.eat(b'"') {
                return None;
            }
            let start = self.i;
            let mut escaped = false;
            loop {
                self.i += plain_run(&self.b[self.i..]);
                let c = *self.b.get(self.i)?;
                self.i += 1;
                match c {
                    b'"' => return Some((&self.b[start..self.i - 1], escaped)),
                    b'\\' => {
                        escaped = true;
                        match self.b.get(self.i)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                            _ => return None, // `\u` (surrogates) and invalid escapes
                        }
                    }
                    0..=0x1f => return None,
                    _ => {}
                }
            }
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while let Some(b'0'..=b'9') = self.b.get(self.i) {
                self.i += 1;
            }
            self.i - start
        }

        /// A number; `None` for invalid ones and for the ones left to `serde_json`.
        fn number(&mut self) -> Option<(Num, bool)> {
            self.ws();
            let start = self.i;
            let negative = self.b.get(self.i) == Some(&b'-');
            self.i += usize::from(negative);
            let int = self.i;
            match self.b.get(self.i)? {
                b'0' => self.i += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            let int_end = self.i;
            let mut fraction = false;
            if self.b.get(self.i) == Some(&b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return None;
                }
                fraction = true;
            }
            if matches!(self.b.get(self.i), Some(b'e' | b'E')) || self.i - start > MAX_NUMBER {
                return None;
            }
            if fraction || negative {
                return Some((Num::Other, negative));
            }
            let mut n: u64 = 0;
            for &d in &self.b[int..int_end] {
                match n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))) {
                    Some(m) => n = m,
                    None => return Some((Num::Other, false)), // past u64: a float
                }
            }
            Some((Num::U64(n), false))
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            self.ws();
            let hit = self.b.get(self.i..self.i + word.len()) == Some(word);
            self.i += word.len();
            hit.then_some(())
        }

        /// Object keys, after `{`: the next key (its colon eaten), or `None` at `}`.
        fn key(&mut self, first: &mut bool) -> Option<Option<&'a [u8]>> {
            if std::mem::take(first) {
                if self.eat(b'}') {
                    return Some(None);
                }
            } else if !self.eat(b',') {
                return self.eat(b'}').then_some(None);
            }
            let (k, escaped) = self.string()?;
            if escaped || !self.eat(b':') {
                return None; // an escaped key could spell one the rule reads
            }
            Some(Some(k))
        }

        /// Array items, after `[`: whether another item follows (`false` at `]`).
        fn item(&mut self, first: &mut bool) -> Option<bool> {
            if std::mem::take(first) {
                return Some(!self.eat(b']'));
            }
            if self.eat(b',') {
                return Some(true);
            }
            self.eat(b']').then_some(false)
        }

        /// Any value, checked and dropped.
        fn skip(&mut self, depth: u32) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            match self.peek()? {
                b'{' => {
                    self.i += 1;
                    let mut first = true;
                    while self.key(&mut first)?.is_some() {
                        self.skip(depth + 1)?;
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut first = true;
                    while self.item(&mut first)? {
                        self.skip(depth + 1)?;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                _ => return None,
            }
            Some(())
        }

        /// A value read as `as_u64()` reads it: `Some(None)` when it is not a `u64`.
        fn as_u64(&mut self, depth: u32) -> Option<Option<u64>> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => match self.number()? {
                    (_, true) => None, // negative: left to serde_json ("-0")
                    (Num::U64(n), _) => Some(Some(n)),
                    (Num::Other, _) => Some(None),
                },
                _ => self.skip(depth).map(|()| None),
            }
        }

        /// A value read as `as_str()` reads it: a string's raw bytes, escapes undecoded. The
        /// rule only asks whether it is empty (an escape is never empty) or one of a few
        /// `[a-z_]` words (no escape decodes to one of those letters: `\u` is left out).
        fn as_str(&mut self, depth: u32) -> Option<Option<&'a [u8]>> {
            if self.peek()? != b'"' {
                return self.skip(depth).map(|()| None);
            }
            self.string().map(|(s, _)| Some(s))
        }
    }

    /// How many bytes at the start of `b` a string holds as they are: up to the first `"`,
    /// `\\` or control character. Eight bytes at a time: a byte of a word matches when
    /// `word ^ pattern` has a zero byte there, or is below 0x20; the lowest flagged byte
    /// is always a true match (a false flag can only sit above a true one).
    pub(super) fn plain_run(b: &[u8]) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut i = 0;
        while let Some(w) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
            let hit = zero(w ^ (ONES * u64::from(b'"')))
                | zero(w ^ (ONES * u64::from(b'\\')))
                | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
            if hit != 0 {
                return i + (hit.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        i + b[i..]
            .iter()
            .position(|&c| matches!(c, b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(b.len() - i)
    }

    /// Sets a key's slot once; a key twice is left to `serde_json`.
    fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(v);
        Some(())
    }

    /// What the rule reads of `choices`.
    #[derive(Clone, Copy, Debug)]
    enum Choices {
        /// Not an array.
        NotArray,
        /// An array: empty or not, and whether its first item has a non-empty
        /// `delta.content` string.
        Array { empty: bool, token: bool },
    }

    /// The four `type` words the rule tells apart; any other string is `Word::Other`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Word {
        ContentBlockDelta,
        MessageDelta,
        MessageStop,
        Error,
        Other,
    }

    fn word(s: &[u8]) -> Word {
        match s {
            b"content_block_delta" => Word::ContentBlockDelta,
            b"message_delta" => Word::MessageDelta,
            b"message_stop" => Word::MessageStop,
            b"error" => Word::Error,
            _ => Word::Other,
        }
    }

    /// What the scan has read of the top-level object so far: all the rule needs.
    #[derive(Clone, Copy, Debug, Default)]
    struct Seen {
        /// `error`: whether it is not null.
        error: Option<bool>,
        /// `usage`: its `completion_tokens` and `output_tokens` as `as_u64()` reads them.
        usage: Option<(Option<u64>, Option<u64>)>,
        choices: Option<Choices>,
        /// `type`: the word, when it is a string.
        kind: Option<Option<Word>>,
    }

    /// The previous event of a stream, so the next one can skip what both begin with:
    /// its bytes, and the scan's state after each top-level value (the position just past
    /// the value). The scan is a function of the bytes alone, so where two events agree up
    /// to such a position its state there is the same: the scan resumes from it. An
    /// OpenAI chunk repeats `id`, `object`, `created`, `model`… before `choices`: about two
    /// thirds of its bytes.
    #[derive(Debug, Default)]
    pub(in crate::provider) struct Memo {
        prev: Vec<u8>,
        marks: Vec<(usize, Seen)>,
    }

    /// Most positions remembered per event (a top-level object with more keys than this
    /// resumes from its 64th at most).
    const MAX_MARKS: usize = 64;

    /// How many bytes `a` and `b` begin with in common.
    fn common_prefix(a: &[u8], b: &[u8]) -> usize {
        let n = a.len().min(b.len());
        let mut i = 0;
        while i + 8 <= n {
            let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("eight bytes"));
            let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
            if x != y {
                return i + ((x ^ y).trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        i + a[i..n].iter().zip(&b[i..n]).take_while(|(x, y)| x == y).count()
    }

    /// Whether `data` would be read from a position the memo holds (a test's view).
    #[cfg(test)]
    pub(super) fn resumes(m: &Memo, data: &str) -> bool {
        let same = common_prefix(&m.prev, data.as_bytes());
        m.marks.iter().any(|(at, _)| *at <= same)
    }

    /// [`classify_with`] without a memo (every byte scanned).
    #[cfg(test)]
    pub(super) fn classify(api: Api, name: Option<&str>, data: &str) -> Option<Event> {
        classify_with(api, name, data, None)
    }

    pub(super) fn classify_with(api: Api, name: Option<&str>, data: &str, memo: Option<&mut Memo>) -> Option<Event> {
        let b = data.as_bytes();
        let mut c = Cur { b, i: 0 };
        let mut seen = Seen::default();
        let mut first = true;
        let mut marks = Vec::new();
        let mut memo = memo;
        if let Some(m) = memo.as_deref_mut() {
            let same = common_prefix(&m.prev, b);
            if let Some(&(at, s)) = m.marks.iter().rev().find(|(at, _)| *at <= same) {
                (c.i, seen, first) = (at, s, false);
            }
            marks = std::mem::take(&mut m.marks);
            marks.retain(|(at, _)| *at <= c.i);
        }
        if first && !c.eat(b'{') {
            return None;
        }
        while let Some(k) = c.key(&mut first)? {
            match k {
                b"error" => {
                    let null = c.peek()? == b'n';
                    c.skip(1)?;
                    once(&mut seen.error, !null)?;
                }
                b"usage" => {
                    let (mut completion, mut output) = (None, None);
                    if c.peek()? == b'{' {
                        c.i += 1;
                        let mut first = true;
                        while let Some(k) = c.key(&mut first)? {
                            match k {
                                b"completion_tokens" => once(&mut completion, c.as_u64(2)?)?,
                                b"output_tokens" => once(&mut output, c.as_u64(2)?)?,
                                _ => c.skip(2)?,
                            }
                        }
                    } else {
                        c.skip(1)?;
                    }
                    once(&mut seen.usage, (completion.flatten(), output.flatten()))?;
                }
                b"choices" => {
                    let v = if c.peek()? == b'[' {
                        c.i += 1;
                        let (mut first, mut empty, mut token) = (true, true, false);
                        while c.item(&mut first)? {
                            if std::mem::take(&mut empty) && c.peek()? == b'{' {
                                token = first_choice(&mut c)?;
                            } else {
                                c.skip(2)?;
                            }
                        }
                        Choices::Array { empty, token }
                    } else {
                        c.skip(1)?;
                        Choices::NotArray
                    };
                    once(&mut seen.choices, v)?;
                }
                b"type" => {
                    let v = c.as_str(1)?.map(word);
                    once(&mut seen.kind, v)?;
                }
                _ => c.skip(1)?,
            }
            if memo.is_some() && marks.len() < MAX_MARKS {
                marks.push((c.i, seen));
            }
        }
        c.ws();
        if c.i != c.b.len() {
            return None;
        }
        if let Some(m) = memo {
            // kept only for an event read to its end: a broken one is read whole next time
            m.prev.clear();
            m.prev.extend_from_slice(b);
            m.marks = marks;
        }
        let Seen {
            error,
            usage,
            choices,
            kind,
        } = seen;
        Some(match api {
            Api::OpenAi => {
                if error == Some(true) {
                    return Some(Event::Error);
                }
                let token = match choices {
                    Some(Choices::Array { empty: false, token }) => token,
                    _ => {
                        if let Some((Some(n), _)) = usage {
                            return Some(Event::Usage(n as u32));
                        }
                        false
                    }
                };
                if token {
                    Event::Token
                } else {
                    Event::Other
                }
            }
            Api::Anthropic => match name.map(|n| word(n.as_bytes())).or(kind.flatten()) {
                Some(Word::ContentBlockDelta) => Event::Token,
                Some(Word::MessageDelta) => match usage {
                    Some((_, Some(n))) => Event::Usage(n as u32),
                    _ => Event::Other,
                },
                Some(Word::MessageStop) => Event::Terminal,
                Some(Word::Error) => Event::Error,
                _ => Event::Other,
            },
        })
    }

    /// The first item of `choices`, an object: whether its `delta.content` is a
    /// non-empty string.
    fn first_choice(c: &mut Cur<'_>) -> Option<bool> {
        c.i += 1; // the `{` peeked
        let mut delta: Option<bool> = None;
        let mut first = true;
        while let Some(k) = c.key(&mut first)? {
            if k != b"delta" {
                c.skip(3)?;
                continue;
            }
            let mut token = false;
            if c.peek()? == b'{' {
                c.i += 1;
                let mut content: Option<bool> = None;
                let mut first = true;
                while let Some(k) = c.key(&mut first)? {
                    if k == b"content" {
                        let s = c.as_str(4)?;
                        once(&mut content, s.is_some_and(|s| !s.is_empty()))?;
                    } else {
                        c.skip(4)?;
                    }
                }
                token = content == Some(true);
            } else {
                c.skip(3)?;
            }
            once(&mut delta, token)?;
        }
        Some(delta == Some(true))
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

    /// Broken JSON (cut short, a byte changed, a byte added) is never answered otherwise
    /// than the `Value` rule answers it (`Malformed` when `serde_json` refuses it).
    #[test]
    fn the_fast_reader_agrees_with_the_value_rule_on_broken_events() {
        const BYTES: &[u8] = b"{}[]\",:\\ \t\n0123456789-+.eEtrufalsn\x01a/u";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut answered = 0;
        let mut malformed = 0;
        let frames = [
            openai::chunk_content("c", "m", 1, " a"),
            openai::chunk_usage("c", "m", 1, 3, 2),
            anthropic::event_message_delta("end_turn", 1),
        ];
        for n in 0..20_000 {
            let mut data = if n % 2 == 0 {
                random_event(&mut x, 4)
            } else {
                let f = &frames[n % frames.len()];
                let at = f.find("data: ").unwrap() + 6;
                f[at..].trim_end().to_string()
            }
            .into_bytes();
            match step(&mut x, 3) {
                0 => data.truncate(step(&mut x, data.len() as u64 + 1) as usize),
                1 if !data.is_empty() => {
                    let at = step(&mut x, data.len() as u64) as usize;
                    data[at] = BYTES[step(&mut x, BYTES.len() as u64) as usize];
                }
                _ => {
                    let at = step(&mut x, data.len() as u64 + 1) as usize;
                    data.insert(at, BYTES[step(&mut x, BYTES.len() as u64) as usize]);
                }
            }
            let Ok(data) = String::from_utf8(data) else { continue };
            for api in [Api::OpenAi, Api::Anthropic] {
                let want = classify_value(api, None, &data);
                malformed += usize::from(want == Event::Malformed);
                if let Some(e) = fast::classify(api, None, &data) {
                    answered += 1;
                    assert_eq!(e, want, "{api:?} {data}");
                }
            }
        }
        // both kinds of case were met: broken ones and ones still readable
        assert!(
            malformed > 10_000 && answered > 5_000,
            "{malformed} malformed, {answered} answered"
        );
    }

    /// Events read after one another with a memo (resuming where the previous event's
    /// bytes stop being the same) get the answer they get read whole: a stream's chunks,
    /// random events, and each of them changed at one byte (before, in and after the part
    /// a memo skips).
    #[test]
    fn resuming_from_the_previous_event_answers_as_reading_it_whole() {
        const BYTES: &[u8] = b"{}[]\",:\\ 0-.eanu1";
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut memo = fast::Memo::default();
        let mut resumed = 0;
        let words = [" a", "", " b\"c", " d"];
        let mut prev = String::new();
        for n in 0..30_000u64 {
            let mut data = match step(&mut x, 4) {
                0 => random_event(&mut x, 4),
                1 => {
                    let f = openai::chunk_content("c", "m", n % 3, words[(n % 4) as usize]);
                    f["data: ".len()..].trim_end().to_string()
                }
                2 => {
                    let f = anthropic::event_message_delta("end_turn", (n % 5) as u32);
                    let at = f.find("data: ").unwrap() + 6;
                    f[at..].trim_end().to_string()
                }
                _ => prev.clone(),
            }
            .into_bytes();
            if step(&mut x, 2) == 0 && !data.is_empty() {
                let at = step(&mut x, data.len() as u64) as usize;
                data[at] = BYTES[step(&mut x, BYTES.len() as u64) as usize];
            }
            let Ok(data) = String::from_utf8(data) else { continue };
            let api = if step(&mut x, 2) == 0 {
                Api::OpenAi
            } else {
                Api::Anthropic
            };
            resumed += usize::from(fast::resumes(&memo, &data));
            let whole = fast::classify(api, None, &data);
            let with = fast::classify_with(api, None, &data, Some(&mut memo));
            assert_eq!(with, whole, "{api:?} after {prev}\n{data}");
            if let Some(e) = with {
                assert_eq!(e, classify_value(api, None, &data), "{api:?} {data}");
            }
            prev = data;
        }
        assert!(resumed > 5_000, "resumed {resumed} times");
    }

    #[test]
    fn a_plain_run_stops_at_the_first_quote_backslash_or_control_byte() {
        // every position of every stop byte, behind bytes that are not stops (≥ 0x80 too)
        for len in 0..24 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..=len {
                    let mut b: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0xc3, 0xa9, b' ', 0x7f, b'!', b'#'][i % 7])
                        .collect();
                    if at < len {
                        b[at] = stop;
                        // stops after the first one do not move it
                        if at + 1 < len {
                            b[at + 1] = b'"';
                        }
                    }
                    assert_eq!(fast::plain_run(&b), at, "{b:?}");
                }
            }
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

    /// The light parser's shortcut for one `data: {…}` line gives what reading the block
    /// line by line gives, for both APIs, on random, broken and error payloads.
    #[test]
    fn the_light_shortcut_answers_as_the_general_path() {
        let mut x = 0x0bad_cafe_1234_5678u64;
        let payloads = [
            "{\"error\":{\"message\":\"x\"}}".to_string(),
            "{\"error\" :1}".to_string(),
            "{ \"error\":1}".to_string(),
            "{\"errors\":1}".to_string(),
            "{\"error\"\u{a0}".to_string(),
        ];
        for n in 0..5_000usize {
            let data = if n < payloads.len() {
                payloads[n].clone()
            } else {
                random_event(&mut x, 3)
            };
            for sep in ["data: ", "data:", "data:  "] {
                let mut block = format!("{sep}{data}").into_bytes();
                if n % 7 == 0 {
                    block.push(0xff); // not UTF-8
                }
                for api in [Api::OpenAi, Api::Anthropic] {
                    let mut a = Parser::light(api);
                    let mut b = Parser::light(api);
                    assert_eq!(
                        a.event(&block),
                        b.event_general(&block),
                        "{api:?} {}",
                        String::from_utf8_lossy(&block)
                    );
                    assert_eq!(a.terminal, b.terminal);
                }
            }
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
