//! Configuration diagnostics: every problem at once, each with file and line.
//!
//! Parsing stops at the first *syntax* or *type* error (serde cannot go on), but semantic
//! validation collects every problem, ripgrep-style, and each is located back in the
//! source by its dotted path (`phase[2].errors[0].probability` → line 41).

use std::fmt;
use std::ops::Range;

/// One segment of a path into a TOML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path into a TOML document, e.g. `phase[2].errors[0].probability`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The root.
    pub fn root() -> Path {
        Path(Vec::new())
    }
    /// This path plus a key.
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    /// This path plus an index.
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            match s {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or `<inline>`, `<admin>` …).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Where in the document (empty for whole-document problems).
    pub path: String,
    /// What is wrong, lowercase, with a hint when one helps.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.file, l)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} configuration error{}:", if n == 1 { "" } else { "s" })?;
        for d in &self.0 {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// `Ok(())` when `problems` is empty, else one diagnostic per `(path, message)`, each
    /// placed on the line of `src` that sets that path.
    pub fn check(src: &str, file: &str, problems: Vec<(Path, String)>) -> Result<(), ConfigErrors> {
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|(path, message)| Diagnostic {
                    file: file.to_string(),
                    line: line_of(src, &path),
                    path: path.to_string(),
                    message,
                })
                .collect(),
        ))
    }
}

/// Reads a configuration file, or a one-diagnostic error naming it.
pub fn read_config(path: &std::path::Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic {
            file: path.display().to_string(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })
}

/// 1-based line of byte offset `at` in `src`.
pub fn line_of_offset(src: &str, at: usize) -> usize {
    src.as_bytes()[..at.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where a walk through a parsed document stands.
#[derive(Clone, Copy)]
enum Cursor<'a> {
    Table(&'a dyn toml_edit::TableLike),
    Tables(&'a toml_edit::ArrayOfTables),
    Value(&'a toml_edit::Value),
}

impl<'a> Cursor<'a> {
    fn of_item(it: &'a toml_edit::Item) -> Option<Cursor<'a>> {
        match it {
            toml_edit::Item::Value(v) => Some(Cursor::Value(v)),
            toml_edit::Item::Table(t) => Some(Cursor::Table(t)),
            toml_edit::Item::ArrayOfTables(a) => Some(Cursor::Tables(a)),
            toml_edit::Item::None => None,
        }
    }

    /// One step down, with the span of what was reached.
    fn step(self, seg: &Seg) -> Option<(Cursor<'a>, Option<Range<usize>>)> {
        match (self, seg) {
            (Cursor::Table(t), Seg::Key(k)) => {
                let (key, it) = t.get_key_value(k)?;
                let c = Cursor::of_item(it)?;
                Some((c, key.span().or_else(|| it.span())))
            }
            (Cursor::Tables(a), Seg::Index(i)) => {
                let t = a.get(*i)?;
                Some((Cursor::Table(t), t.span()))
            }
            (Cursor::Value(toml_edit::Value::Array(a)), Seg::Index(i)) => {
                let v = a.get(*i)?;
                Some((Cursor::Value(v), v.span()))
            }
            (Cursor::Value(toml_edit::Value::InlineTable(t)), Seg::Key(k)) => {
                let (key, it) = t.get_key_value(k)?;
                Some((Cursor::of_item(it)?, key.span().or_else(|| it.span())))
            }
            _ => None,
        }
    }
}

/// Byte span of `path` in the TOML `src`, or of its nearest existing ancestor.
pub fn span_of(src: &str, path: &Path) -> Option<Range<usize>> {
    let doc = toml_edit::ImDocument::parse(src).ok()?;
    let mut best: Option<Range<usize>> = None;
    let mut cur = Cursor::Table(doc.as_table());
    for seg in &path.0 {
        match cur.step(seg) {
            Some((next, span)) => {
                if span.is_some() {
                    best = span;
                }
                cur = next;
            }
            None => break,
        }
    }
    best
}

/// Line of `path` in `src` (nearest existing ancestor), if found.
pub fn line_of(src: &str, path: &Path) -> Option<usize> {
    span_of(src, path).map(|r| line_of_offset(src, r.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_paths_in_tables_arrays_and_inline_tables() {
        let src = "name = \"x\"\n\n[baseline]\nerrors = [\n  { status = 500, probability = 0.1 },\n  { status = 502, probability = 2.0 },\n]\n\n[[phase]]\nstart = \"1s\"\n\n[[phase]]\nstart = \"2s\"\nlatency = { kind = \"fixed\", value = \"1s\" }\n";
        let p = Path::root().key("baseline").key("errors").index(1).key("probability");
        assert_eq!(line_of(src, &p), Some(6));
        let p = Path::root().key("phase").index(1).key("start");
        assert_eq!(line_of(src, &p), Some(13));
        let p = Path::root().key("phase").index(1).key("latency").key("value");
        assert_eq!(line_of(src, &p), Some(14));
        // a missing key falls back to the nearest ancestor
        let p = Path::root().key("phase").index(0).key("nope");
        assert_eq!(line_of(src, &p), Some(9));
        assert_eq!(p.to_string(), "phase[0].nope");
    }
}
