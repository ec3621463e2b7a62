//! Trace replay: a file of time offsets and request attributes, played back at a speed
//! factor (2.0 = twice as fast).
//!
//! JSONL, one object per line: `{"offset_ms": 120.5, "kind": "support-chat"}` — or
//! `"offset": "1.5s"`; optional `kind` (a mix kind's name), `model`, `stream`,
//! `prompt_tokens`, `max_tokens`, `api`, `endpoint`. CSV: a header row naming the same
//! columns (`offset_ms` or `offset` required; cells may be double-quoted). Rows need not be
//! sorted. Every bad row is reported with its line number, all at once.

use super::mix::{EndpointKind, Mix, RequestShape};
use crate::diag::{ConfigErrors, Diagnostic};
use crate::provider::Api;
use crate::rng::Stream;
use crate::time::{secs_f64_to_nanos, Dur, Nanos, NS_PER_S};
use serde::Deserialize;
use std::sync::Arc;

/// One row of a trace.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRow {
    /// Offset from the start, milliseconds.
    #[serde(default)]
    pub offset_ms: Option<f64>,
    /// Offset as a duration string.
    #[serde(default)]
    pub offset: Option<String>,
    /// Mix kind name.
    #[serde(default)]
    pub kind: Option<String>,
    /// Model override.
    #[serde(default)]
    pub model: Option<String>,
    /// Streamed override.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Prompt tokens override.
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    /// max_tokens override.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// API override.
    #[serde(default)]
    pub api: Option<Api>,
    /// Endpoint override.
    #[serde(default)]
    pub endpoint: Option<EndpointKind>,
    /// Line in the file (1-based), for error messages.
    #[serde(skip)]
    pub line: usize,
}

/// A parsed trace, sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// `(offset, row)`, sorted by offset.
    pub rows: Vec<(Nanos, TraceRow)>,
}

fn row_offset(r: &TraceRow) -> Result<Nanos, String> {
    let max_tokens = crate::diag::limits::MAX_TOKENS;
    for (k, n) in [("prompt_tokens", r.prompt_tokens), ("max_tokens", r.max_tokens)] {
        if n.is_some_and(|n| f64::from(n) > max_tokens) {
            return Err(format!("{k} must be at most {max_tokens}, got {}", n.unwrap_or(0)));
        }
    }
    let o = row_offset_unbounded(r)?;
    let max = crate::diag::limits::MAX_RUN;
    if o > max.0 {
        return Err(format!("the offset must be at most {max}, got {}", Dur(o)));
    }
    Ok(o)
}

fn row_offset_unbounded(r: &TraceRow) -> Result<Nanos, String> {
    match (r.offset_ms, &r.offset) {
        (Some(ms), None) if ms.is_finite() && ms >= 0.0 => Ok(secs_f64_to_nanos(ms / 1000.0)),
        (Some(ms), None) => Err(format!("offset_ms must be ≥ 0, got {ms}")),
        (None, Some(s)) => s.parse::<Dur>().map(|d| d.0),
        (Some(_), Some(_)) => Err("give offset_ms or offset, not both".into()),
        (None, None) => Err("missing offset_ms (or offset)".into()),
    }
}

/// Splits one CSV line: commas separate cells, a cell may be double-quoted (`""` inside
/// quotes is a quote). Cells are trimmed.
fn csv_cells(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            (false, ',') => cells.push(std::mem::take(&mut cell).trim().to_string()),
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted cell".into());
    }
    cells.push(cell.trim().to_string());
    Ok(cells)
}

/// serde_json's message without its " at line 1 column N" (each JSONL row is one line;
/// the caller gives the file's line), keeping the column.
fn json_message(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &m[..i], e.column()),
        None => m,
    }
}

fn csv_row(header: &[String], line: &str) -> Result<TraceRow, String> {
    let cells = csv_cells(line)?;
    if cells.len() != header.len() {
        return Err(format!("expected {} columns, found {}", header.len(), cells.len()));
    }
    let mut r = TraceRow::default();
    for (h, c) in header.iter().zip(&cells) {
        let c = c.as_str();
        if c.is_empty() {
            continue;
        }
        let num = |c: &str| {
            c.parse::<u32>()
                .map_err(|_| format!("{h}: expected a whole number, got {c:?}"))
        };
        match h.as_str() {
            "offset_ms" => r.offset_ms = Some(c.parse().map_err(|_| format!("offset_ms: expected a number, got {c:?}"))?),
            "offset" => r.offset = Some(c.to_string()),
            "kind" => r.kind = Some(c.to_string()),
            "model" => r.model = Some(c.to_string()),
            "stream" => r.stream = Some(c.parse().map_err(|_| format!("stream: expected true or false, got {c:?}"))?),
            "prompt_tokens" => r.prompt_tokens = Some(num(c)?),
            "max_tokens" => r.max_tokens = Some(num(c)?),
            "api" => r.api = Some(c.parse()?),
            "endpoint" => {
                r.endpoint = Some(match c {
                    "chat" => EndpointKind::Chat,
                    "embeddings" => EndpointKind::Embeddings,
                    _ => return Err(format!("endpoint: expected chat or embeddings, got {c:?}")),
                })
            }
            other => {
                return Err(format!(
                    "unknown column {other:?} (expected offset_ms, offset, kind, model, stream, prompt_tokens, max_tokens, api, endpoint)"
                ))
            }
        }
    }
    Ok(r)
}

impl Trace {
    /// Parses JSONL (`.jsonl`/`.ndjson`) or CSV (`.csv`) text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Trace, ConfigErrors> {
        let csv = file.ends_with(".csv");
        let mut errors = Vec::new();
        let mut rows = Vec::new();
        let mut header: Option<Vec<String>> = None;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let parsed = if csv {
                match &header {
                    None => {
                        let h = match csv_cells(t.trim_start_matches('\u{feff}')) {
                            Ok(h) => h,
                            Err(m) => {
                                errors.push(Diagnostic {
                                    file: file.into(),
                                    line: Some(line_no),
                                    path: String::new(),
                                    message: format!("the CSV header: {m}"),
                                });
                                break;
                            }
                        };
                        if !h.iter().any(|c| c == "offset_ms" || c == "offset") {
                            errors.push(Diagnostic {
                                file: file.into(),
                                line: Some(line_no),
                                path: String::new(),
                                message: "the CSV header needs an offset_ms or offset column".into(),
                            });
                            break;
                        }
                        header = Some(h);
                        continue;
                    }
                    Some(h) => csv_row(h, t),
                }
            } else {
                serde_json::from_str::<TraceRow>(t).map_err(|e| json_message(&e))
            };
            match parsed.and_then(|mut r| {
                r.line = line_no;
                row_offset(&r).map(|o| (o, r))
            }) {
                Ok(x) => rows.push(x),
                Err(m) => errors.push(Diagnostic {
                    file: file.into(),
                    line: Some(line_no),
                    path: String::new(),
                    message: m,
                }),
            }
        }
        if rows.is_empty() && errors.is_empty() {
            errors.push(Diagnostic {
                file: file.into(),
                line: Some(1),
                path: String::new(),
                message: "the trace has no rows".into(),
            });
        }
        if !errors.is_empty() {
            errors.truncate(50);
            return Err(ConfigErrors(errors));
        }
        rows.sort_by_key(|(o, _)| *o);
        Ok(Trace { rows })
    }

    /// Reads a trace file.
    #[allow(clippy::disallowed_methods)] // a loader: the trace a scenario or `load --trace` names, read once when it loads
    pub fn load(path: &std::path::Path) -> Result<Trace, ConfigErrors> {
        let text = crate::diag::read_config(path)?;
        Trace::parse(&text, &path.display().to_string())
    }

    /// Checks kind names against the mix: one error per row naming an unknown kind (the
    /// first 50), each with its line.
    pub fn check_kinds(&self, mix: &Mix, file: &str) -> Result<(), ConfigErrors> {
        let known = || {
            mix.kinds()
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut bad: Vec<&TraceRow> = self
            .rows
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.kind.as_deref().is_some_and(|k| mix.index_of(k).is_none()))
            .collect();
        bad.sort_by_key(|r| r.line);
        bad.truncate(50);
        if bad.is_empty() {
            return Ok(());
        }
        Err(ConfigErrors(
            bad.into_iter()
                .map(|r| Diagnostic {
                    file: file.into(),
                    line: (r.line > 0).then_some(r.line),
                    path: String::new(),
                    message: format!(
                        "kind {:?} is not in the mix (kinds: {})",
                        r.kind.as_deref().unwrap_or_default(),
                        known()
                    ),
                })
                .collect(),
        ))
    }

    /// Offset of the last row at `speed`: the length of the replay.
    pub fn duration(&self, speed: f64) -> Nanos {
        self.rows.last().map_or(0, |(o, _)| scale(*o, speed))
    }

    /// The request for row `i`, at `offset / speed`.
    pub fn planned(&self, i: usize, speed: f64, mix: &Mix, rng: &mut Stream) -> (Nanos, RequestShape) {
        let (offset, row) = &self.rows[i];
        let at = scale(*offset, speed);
        let mut shape = match row.kind.as_deref().and_then(|k| mix.index_of(k)) {
            Some(k) => mix.shape(k, rng),
            None => mix.draw(rng),
        };
        if let Some(m) = &row.model {
            shape.model = Some(Arc::from(m.as_str()));
        }
        if let Some(s) = row.stream {
            shape.stream = s;
        }
        if let Some(p) = row.prompt_tokens {
            shape.prompt_tokens = p.max(1);
        }
        if let Some(m) = row.max_tokens {
            shape.max_tokens = m.max(1);
        }
        if let Some(a) = row.api {
            shape.api = a;
        }
        if let Some(e) = row.endpoint {
            shape.endpoint = e;
            if e == EndpointKind::Embeddings {
                shape.stream = false;
            }
        }
        (at, shape)
    }
}

/// `offset / speed`, exact at speed 1.
fn scale(offset: Nanos, speed: f64) -> Nanos {
    if speed == 1.0 {
        offset
    } else {
        secs_f64_to_nanos(offset as f64 / NS_PER_S as f64 / speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::time::NS_PER_MS;
    use crate::traffic::mix::KindSpec;

    #[test]
    fn jsonl_and_csv_with_speed() {
        let t = Trace::parse(
            "{\"offset_ms\": 1000, \"kind\": \"b\"}\n{\"offset\": \"500ms\", \"max_tokens\": 7}\n",
            "t.jsonl",
        )
        .unwrap();
        assert_eq!(t.rows[0].0, 500 * NS_PER_MS);
        let mix = Mix::new(vec![KindSpec::chat("a", false), KindSpec::chat("b", true)], Api::OpenAi).unwrap();
        let mut r = stream(1, "t");
        let (at, s) = t.planned(0, 2.0, &mix, &mut r);
        assert_eq!((at, s.max_tokens), (250 * NS_PER_MS, 7));
        let (at, s) = t.planned(1, 1.0, &mix, &mut r);
        assert_eq!((at, s.kind, s.stream), (1000 * NS_PER_MS, 1, true));
        let c = Trace::parse("offset_ms,kind,stream\n10,a,true\n5,b,\n", "t.csv").unwrap();
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.rows[1].1.stream, Some(true));
    }

    #[test]
    fn every_bad_row_reported_with_its_line() {
        let e = Trace::parse(
            "{\"offset_ms\": 1}\n{\"ofset_ms\": 2}\n\n{\"offset_ms\": -1}\nnot json\n",
            "bad.jsonl",
        )
        .unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![Some(2), Some(4), Some(5)], "{e}");
        assert!(e.to_string().contains("unknown field `ofset_ms`"), "{e}");
        let e = Trace::parse("offset_ms,colour\n1,red\n", "bad.csv").unwrap_err();
        assert!(
            e.to_string().contains("bad.csv:2:") && e.to_string().contains("unknown column"),
            "{e}"
        );
        let mix = Mix::new(vec![KindSpec::chat("a", false)], Api::OpenAi).unwrap();
        let t = Trace::parse("{\"offset_ms\": 1, \"kind\": \"zzz\"}\n", "k.jsonl").unwrap();
        assert!(t
            .check_kinds(&mix, "k.jsonl")
            .unwrap_err()
            .to_string()
            .contains("not in the mix"));
    }

    #[test]
    fn json_errors_name_the_file_line_not_serde_line_one() {
        let e = Trace::parse("{\"offset_ms\": 1}\n{\"offset_ms\": \"soon\"}\n", "x.jsonl").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("x.jsonl:2:") && !s.contains("at line 1"), "{s}");
        assert!(s.contains("column"), "{s}");
    }

    #[test]
    fn csv_quotes_bom_and_bad_cells() {
        let c = Trace::parse(
            "\u{feff}offset_ms,model,kind\n0,\"gpt-4o, the big one\",a\n2,\"say \"\"hi\"\"\",b\n",
            "q.csv",
        )
        .unwrap();
        assert_eq!(c.rows[0].1.model.as_deref(), Some("gpt-4o, the big one"));
        assert_eq!(c.rows[1].1.model.as_deref(), Some("say \"hi\""));
        let e = Trace::parse(
            "offset_ms,stream,max_tokens\n1,yes,5\n2,true,many\n3,true\n4,\"true,5\n",
            "b.csv",
        )
        .unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![Some(2), Some(3), Some(4), Some(5)], "{e}");
        let s = e.to_string();
        assert!(s.contains("stream: expected true or false"), "{s}");
        assert!(s.contains("max_tokens: expected a whole number"), "{s}");
        assert!(s.contains("expected 3 columns, found 2"), "{s}");
        assert!(s.contains("unterminated"), "{s}");
        let e = Trace::parse("time,kind\n1,a\n", "h.csv").unwrap_err();
        assert!(
            e.to_string().contains("h.csv:1:") && e.to_string().contains("offset_ms"),
            "{e}"
        );
    }

    #[test]
    fn unknown_kinds_are_reported_with_their_lines() {
        let mix = Mix::new(vec![KindSpec::chat("a", false)], Api::OpenAi).unwrap();
        // unsorted on purpose: errors still come in line order
        let t = Trace::parse(
            "{\"offset_ms\": 9, \"kind\": \"zzz\"}\n{\"offset_ms\": 1, \"kind\": \"a\"}\n{\"offset_ms\": 0, \"kind\": \"b\"}\n",
            "k.jsonl",
        )
        .unwrap();
        let e = t.check_kinds(&mix, "k.jsonl").unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![Some(1), Some(3)], "{e}");
        assert!(e.to_string().contains("\"zzz\" is not in the mix (kinds: a)"), "{e}");
        assert_eq!(t.duration(2.0), 4_500_000);
    }
}
