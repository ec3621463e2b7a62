//! Configuration diagnostics: every problem at once, each with file and line.
//!
//! Only a TOML *syntax* error stops reading. Type errors, unknown keys and unparsable
//! values are collected by [`deserialize_all`]: serde stops at the first one, so the
//! offending key is located (by the error's span), recorded, taken out of a copy of the
//! document, and the parse retried until it succeeds. Semantic validation then runs on
//! what is left, so every problem is reported at once, ripgrep-style, each located back in
//! the source by its dotted path (`phase[2].errors[0].probability` → line 41).

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
    /// This path followed by every segment of `rel`: `gateway` then `health_check.interval`
    /// is `gateway.health_check.interval`.
    pub fn then(&self, rel: &Path) -> Path {
        let mut p = self.clone();
        p.0.extend(rel.0.iter().cloned());
        p
    }
    /// This path followed by `rel`, a dotted path as a user writes one (`--set` and
    /// `[sweep]` keys such as `gateway.health_check.interval` or `targets[1].weight`).
    pub fn join(&self, rel: &str) -> Path {
        let mut p = self.clone();
        for part in rel.split('.').filter(|s| !s.is_empty()) {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                p.0.push(Seg::Key(name.to_string()));
            }
            while let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else { break };
                match r[..end].parse() {
                    Ok(i) => p.0.push(Seg::Index(i)),
                    Err(_) => p.0.push(Seg::Key(r[..end].to_string())),
                }
                rest = &r[end + 1..];
            }
        }
        p
    }
    /// Whether `self` is `other` or inside it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.len() >= other.0.len() && self.0[..other.0.len()] == other.0[..]
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

/// One configuration problem: the exact key it is about and what is wrong with it. Every
/// `problems()` method returns these, paths relative to the table it checked; the caller
/// nests them under that table's own path with [`under`].
pub type Problem = (Path, String);

/// `problems`, each moved under `prefix` (a table's problems placed in the document).
pub fn under(prefix: &Path, problems: Vec<Problem>) -> impl Iterator<Item = Problem> + '_ {
    problems.into_iter().map(move |(p, m)| (prefix.then(&p), m))
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
    pub fn check(src: &str, file: &str, problems: Vec<Problem>) -> Result<(), ConfigErrors> {
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|(path, message)| Diagnostic {
                    file: file.to_string(),
                    line: line_of(src, &path).or(Some(1)),
                    path: path.to_string(),
                    message,
                })
                .collect(),
        ))
    }
}

impl ConfigErrors {
    /// One diagnostic per `(path, message)` of `problems`, located in `src`.
    pub fn located(src: &str, file: &str, problems: Vec<Problem>) -> Vec<Diagnostic> {
        problems
            .into_iter()
            .map(|(path, message)| Diagnostic {
                file: file.to_string(),
                line: line_of(src, &path).or(Some(1)),
                path: path.to_string(),
                message,
            })
            .collect()
    }

    /// A TOML syntax error of `src` (which stops reading: nothing after it can be trusted).
    pub fn syntax(src: &str, file: &str, e: &toml_edit::TomlError) -> ConfigErrors {
        ConfigErrors(vec![Diagnostic {
            file: file.to_string(),
            line: e.span().map(|s| line_of_offset(src, s.start)),
            path: String::new(),
            message: e.message().trim().to_string(),
        }])
    }
}

/// Most type errors one document can report before [`deserialize_all`] stops trying.
const MAX_TYPE_ERRORS: usize = 100;

/// Deserializes `doc` as `T`, collecting *every* type error, unknown key and unparsable
/// value instead of the first: each error's span is traced to the key that holds it, the
/// error recorded under that key's path, the key removed from a working copy of the
/// document and the parse retried. Returns the value parsed from what is left (`None`
/// when a required key is missing or the document cannot be repaired) and the problems
/// as `(path, message)`, paths in `doc`'s own coordinates (array indices as written).
///
/// A missing required key that is missing only because a bad value was removed is not
/// reported twice.
pub fn deserialize_all<T: serde::de::DeserializeOwned>(doc: &toml_edit::DocumentMut) -> (Option<T>, Vec<Problem>) {
    let mut work = doc.clone();
    let mut problems: Vec<Problem> = Vec::new();
    let mut removed: Vec<Path> = Vec::new();
    for _ in 0..=MAX_TYPE_ERRORS {
        let text = work.to_string();
        let e = match toml::from_str::<T>(&text) {
            Ok(v) => return (Some(v), problems),
            Err(e) => e,
        };
        let message = e.message().trim().to_string();
        let here = e.span().and_then(|s| path_at(&text, s.start)).unwrap_or_default();
        let orig = original_path(&here, &removed);
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(|f| orig.key(f));
        let echo = missing.as_ref().is_some_and(|m| removed.iter().any(|r| r == m));
        if !echo && problems.len() < MAX_TYPE_ERRORS {
            problems.push((missing.clone().unwrap_or_else(|| orig.clone()), message));
        }
        if here.0.is_empty() || !remove_path(&mut work, &here) {
            return (None, problems);
        }
        removed.push(orig);
    }
    (None, problems)
}

/// `current`, a path in the working copy after the removals in `removed` (original
/// coordinates, in order), back in the original document's coordinates: array indices
/// shift back over the elements removed before them.
fn original_path(current: &Path, removed: &[Path]) -> Path {
    let mut out = Path::root();
    for seg in &current.0 {
        match seg {
            Seg::Key(k) => out.0.push(Seg::Key(k.clone())),
            Seg::Index(i) => {
                // removed siblings in this array, original indices
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|r| r.0.len() == out.0.len() + 1 && r.starts_with(&out))
                    .filter_map(|r| match r.0.last() {
                        Some(Seg::Index(j)) => Some(*j),
                        _ => None,
                    })
                    .collect();
                gone.sort_unstable();
                let mut idx = *i;
                for g in gone {
                    if g <= idx {
                        idx += 1;
                    }
                }
                out.0.push(Seg::Index(idx));
            }
        }
    }
    out
}

/// The deepest key or array element of `src` whose key or value covers byte `at`.
pub fn path_at(src: &str, at: usize) -> Option<Path> {
    let doc = toml_edit::ImDocument::parse(src).ok()?;
    let mut best = None;
    find_in_table(doc.as_table(), &Path::root(), at, &mut best);
    best
}

fn covers(span: Option<Range<usize>>, at: usize) -> bool {
    span.is_some_and(|s| s.start <= at && (at < s.end || s.start == s.end))
}

fn find_in_table(t: &dyn toml_edit::TableLike, base: &Path, at: usize, best: &mut Option<Path>) {
    for (k, it) in t.iter() {
        let p = base.key(k);
        let key_span = t.get_key_value(k).and_then(|(key, _)| key.span());
        if covers(key_span, at) {
            *best = Some(p.clone());
        }
        find_in_item(it, &p, at, best);
    }
}

fn find_in_item(it: &toml_edit::Item, p: &Path, at: usize, best: &mut Option<Path>) {
    match it {
        toml_edit::Item::Value(v) => find_in_value(v, p, at, best),
        toml_edit::Item::Table(t) => {
            if covers(t.span(), at) {
                *best = Some(p.clone());
            }
            find_in_table(t, p, at, best);
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let q = p.index(i);
                if covers(t.span(), at) {
                    *best = Some(q.clone());
                }
                find_in_table(t, &q, at, best);
            }
        }
        toml_edit::Item::None => {}
    }
}

fn find_in_value(v: &toml_edit::Value, p: &Path, at: usize, best: &mut Option<Path>) {
    if !covers(v.span(), at) {
        return;
    }
    *best = Some(p.clone());
    match v {
        toml_edit::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                find_in_value(x, &p.index(i), at, best);
            }
        }
        toml_edit::Value::InlineTable(t) => find_in_table(t, p, at, best),
        _ => {}
    }
}

/// Removes the key or array element at `path` from `doc`; whether something was removed.
pub fn remove_path(doc: &mut toml_edit::DocumentMut, path: &Path) -> bool {
    let Some((last, parent)) = path.0.split_last() else {
        return false;
    };
    let mut cur: &mut toml_edit::Item = doc.as_item_mut();
    for seg in parent {
        cur = match seg {
            Seg::Key(k) => match cur.get_mut(k.as_str()) {
                Some(x) => x,
                None => return false,
            },
            Seg::Index(i) => match cur.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    match last {
        Seg::Key(k) => match cur.as_table_like_mut() {
            Some(t) => t.remove(k).is_some(),
            None => false,
        },
        Seg::Index(i) => match cur {
            toml_edit::Item::ArrayOfTables(a) if *i < a.len() => {
                a.remove(*i);
                true
            }
            toml_edit::Item::Value(toml_edit::Value::Array(a)) if *i < a.len() => {
                a.remove(*i);
                true
            }
            _ => false,
        },
    }
}

/// `deserialize_with` for a struct that must be written as a table: serde's derive also
/// reads a struct from an array of its fields in order, so `tokens_per_s = [1, 2]` would
/// quietly mean `{ mean = 1, cv = 2 }`. Spans inside the table are kept.
pub fn table_only<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(V(std::marker::PhantomData))
}

/// [`table_only`] for an optional key (use with `#[serde(default)]`).
pub fn table_only_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    table_only(d).map(Some)
}

/// Reads a configuration file, or a one-diagnostic error naming it. The one function of the
/// core that reads a file: clippy.toml denies it too, so each loader that calls it says so
/// with an `allow` (a scenario and the files it names are read once, when it loads).
#[allow(clippy::disallowed_methods)]
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

    #[test]
    fn under_nests_a_tables_problems_at_their_exact_keys() {
        let inner = vec![
            (Path::root().key("interval"), "must be > 0".to_string()),
            (Path::root().key("on_status").index(1), "got 700".to_string()),
        ];
        let got: Vec<Problem> = under(&Path::root().key("gateway").key("health_check"), inner).collect();
        assert_eq!(got[0].0.to_string(), "gateway.health_check.interval");
        assert_eq!(got[0].0, Path::root().join("gateway.health_check.interval"));
        assert_eq!(got[1].0.to_string(), "gateway.health_check.on_status[1]");
        let src = "[gateway]\nx = 1\n\n[gateway.health_check]\ntimeout = \"1s\"\ninterval = \"0s\"\n";
        assert_eq!(line_of(src, &got[0].0), Some(6));
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        interval: Option<crate::time::Dur>,
        #[serde(default)]
        n: u32,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        a: u32,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<u32>,
        #[serde(default)]
        tables: Vec<Inner>,
    }

    fn run(src: &str) -> (bool, Vec<(Option<usize>, String, String)>) {
        let doc: toml_edit::DocumentMut = src.parse().unwrap();
        let (v, ps) = deserialize_all::<Outer>(&doc);
        (
            v.is_some(),
            ps.into_iter()
                .map(|(p, m)| (line_of(src, &p), p.to_string(), m))
                .collect(),
        )
    }

    #[test]
    fn unknown_key_wrong_type_and_bad_duration_all_reported_with_lines() {
        let src = "a = 1\ntypo = 3\n[inner]\ninterval = \"5 parsecs\"\nn = \"three\"\n";
        let (ok, ps) = run(src);
        assert!(ok, "{ps:?}");
        let got: Vec<_> = ps.iter().map(|(l, p, _)| (*l, p.as_str())).collect();
        assert_eq!(
            got,
            vec![(Some(2), "typo"), (Some(4), "inner.interval"), (Some(5), "inner.n")],
            "{ps:?}"
        );
    }

    #[test]
    fn removed_elements_keep_later_indices_and_lines() {
        let src = "a = 1\nlist = [1, \"x\", 3, -4]\n[[tables]]\nn = 1\n[[tables]]\nn = -1\n[[tables]]\nbad = 1\n";
        let (ok, ps) = run(src);
        assert!(ok, "{ps:?}");
        let got: Vec<_> = ps.iter().map(|(l, p, _)| (*l, p.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(2), "list[1]"),
                (Some(2), "list[3]"),
                (Some(6), "tables[1].n"),
                (Some(8), "tables[2].bad")
            ],
            "{ps:?}"
        );
    }

    #[test]
    fn a_required_key_with_a_bad_value_is_reported_once() {
        let (ok, ps) = run("a = \"one\"\ntypo = 1\n");
        assert!(!ok);
        let got: Vec<_> = ps.iter().map(|(l, p, _)| (*l, p.as_str())).collect();
        assert_eq!(got, vec![(Some(1), "a"), (Some(2), "typo")], "{ps:?}");
        let (_, ps) = run("typo = 1\n");
        assert!(
            ps.iter().any(|(_, p, m)| p == "a" && m.contains("missing field")),
            "{ps:?}"
        );
    }

    #[test]
    fn join_parses_dotted_problem_keys() {
        let p = Path::root().key("gateway").join("targets[1].weight");
        assert_eq!(p.to_string(), "gateway.targets[1].weight");
        assert_eq!(Path::root().join("health_check.interval").0.len(), 2);
    }
}

/// The sane maximum of each kind of number in configuration files, and checks against
/// them. `docs/configuration.md` lists every key with its domain and maximum.
pub mod limits {
    use crate::time::{Dur, NS_PER_S};

    /// Longest duration any key accepts unless it says otherwise (timeouts, intervals,
    /// phase lengths, latencies): 30 days.
    pub const MAX_DURATION: Dur = Dur(30 * 86_400 * NS_PER_S);
    /// Shortest period of anything that repeats through a run (health-check intervals,
    /// throughput steps, flapping periods): 1 ms. Shorter would make the simulator step
    /// through billions of probes or levels per simulated minute.
    pub const MIN_PERIOD: Dur = Dur(1_000_000);
    /// Longest run (`traffic.duration`, a load run's `--duration`): 7 days.
    pub const MAX_RUN: Dur = Dur(7 * 86_400 * NS_PER_S);
    /// Longest SLO compliance period: 400 days.
    pub const MAX_SLO_PERIOD: Dur = Dur(400 * 86_400 * NS_PER_S);
    /// Highest request rate of any one key (req/s).
    pub const MAX_RATE: f64 = 1_000_000.0;
    /// Most closed-loop users.
    pub const MAX_USERS: u32 = 100_000;
    /// Most tokens of one request (prompt or max_tokens), and highest token rate (tokens/s).
    pub const MAX_TOKENS: f64 = 1_000_000.0;
    /// Most inputs of one embeddings call (OpenAI's limit).
    pub const MAX_INPUTS: u32 = 2_048;
    /// Highest relative weight.
    pub const MAX_WEIGHT: f64 = 1e9;
    /// Highest count threshold (health-check thresholds, breaker counts, retries …).
    pub const MAX_COUNT: u32 = 10_000;
    /// Smallest and largest `time_scale`.
    pub const MIN_TIME_SCALE: f64 = 1e-6;
    /// See [`MIN_TIME_SCALE`].
    pub const MAX_TIME_SCALE: f64 = 1e6;
    /// Highest coefficient of variation, shape or burstiness parameter.
    pub const MAX_SHAPE: f64 = 1_000.0;

    /// `Some(message)` unless `0 < d ≤ max`.
    pub fn positive_dur(d: Dur, max: Dur) -> Option<String> {
        if d.0 == 0 {
            Some("must be longer than 0s".into())
        } else if d.0 > max.0 {
            Some(format!("must be at most {max}, got {d}"))
        } else {
            None
        }
    }

    /// `Some(message)` unless `d ≤ max` (0 allowed).
    pub fn dur_at_most(d: Dur, max: Dur) -> Option<String> {
        (d.0 > max.0).then(|| format!("must be at most {max}, got {d}"))
    }

    /// `Some(message)` unless `x` is finite and in `(0, max]` (or `[0, max]` with `zero_ok`).
    pub fn number(x: f64, zero_ok: bool, max: f64) -> Option<String> {
        let low_ok = if zero_ok { x >= 0.0 } else { x > 0.0 };
        if !x.is_finite() || !low_ok || x > max {
            let lo = if zero_ok { "[0, " } else { "(0, " };
            Some(format!("must be a number in {lo}{max}], got {x}"))
        } else {
            None
        }
    }

    /// `Some(message)` unless `1 ≤ n ≤ max`.
    pub fn count(n: u64, max: u64) -> Option<String> {
        if n == 0 || n > max {
            Some(format!("must be in [1, {max}], got {n}"))
        } else {
            None
        }
    }
}
