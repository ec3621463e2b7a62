//! A catalogue entry: one failure mode as a fault timeline, its traffic, and the bounds its
//! verdict reads (`docs/suite.md`, "Writing an entry"). Built-in entries are the files of
//! `catalogue/`, compiled in; users add their own files next to them with `--entries DIR`.

use crate::analysis::assert::{AssertSpec, Assertion};
use serde::{Deserialize, Serialize};

/// The best verdict a well-configured gateway can get on an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Best {
    /// Failed over, or succeeded within bounds.
    Pass,
    /// No failover can hide the fault: a clean error, fast, is the best outcome.
    Safe,
}

impl Best {
    /// Its name in tables and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Best::Pass => "pass",
            Best::Safe => "safe",
        }
    }
}

/// The traffic shape of an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMix {
    /// Non-streamed chat only.
    Plain,
    /// Streamed chat only.
    Stream,
    /// Half of each (by weight).
    #[default]
    Mixed,
}

fn d_duration() -> String {
    "40s".into()
}
fn d_rate() -> f64 {
    20.0
}
fn d_max_tokens() -> u32 {
    32
}
fn d_failed_ratio() -> f64 {
    0.05
}
fn d_budget_ratio() -> f64 {
    0.5
}
fn d_amplification() -> f64 {
    3.0
}
fn t() -> bool {
    true
}

/// The bounds a verdict reads (`docs/suite.md`, "Verdicts").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Pass: at most this share of the fault window's requests fail.
    #[serde(default = "d_failed_ratio")]
    pub failed_ratio: f64,
    /// Fail ("budget blown") when traffic should move and more than this share fails.
    #[serde(default = "d_budget_ratio")]
    pub budget_ratio: f64,
    /// Fail ("retry storm") above this many provider attempts per user request during the fault.
    #[serde(default = "d_amplification")]
    pub amplification: f64,
    /// Fail when a 429 carrying Retry-After is followed sooner by an attempt to that provider.
    #[serde(default = "t")]
    pub retry_after: bool,
    /// Fail above this many hung requests.
    #[serde(default)]
    pub hangs: u64,
    /// Fail above this many truncated successes.
    #[serde(default)]
    pub truncated: u64,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            failed_ratio: d_failed_ratio(),
            budget_ratio: d_budget_ratio(),
            amplification: d_amplification(),
            retry_after: true,
            hangs: 0,
            truncated: 0,
        }
    }
}

/// What a failed `[[check]]` costs the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// At best degraded.
    Degraded,
    /// Fail.
    Fail,
}

/// `[[check]]` as written: an `[[assert]]` plus what failing it costs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSpec {
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    op: Option<crate::analysis::assert::Op>,
    #[serde(default)]
    value: Option<crate::analysis::assert::Rhs>,
    verdict: CheckVerdict,
}

/// An entry file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    name: String,
    title: String,
    reports: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    best: Best,
    failover: bool,
    #[serde(default = "d_duration")]
    duration: String,
    #[serde(default = "d_rate")]
    rate: f64,
    #[serde(default)]
    stream: StreamMix,
    #[serde(default = "d_max_tokens")]
    max_tokens: u32,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    primary: Option<toml::Table>,
    #[serde(default)]
    fallback: Option<toml::Table>,
    #[serde(default)]
    bounds: Bounds,
    #[serde(default)]
    check: Vec<CheckSpec>,
}

/// One entry, checked.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Unique name (`[a-z0-9-]+`, the file's stem).
    pub name: String,
    /// One line.
    pub title: String,
    /// The real-world reports it models.
    pub reports: Vec<String>,
    /// Free words `--tag` filters on.
    pub tags: Vec<String>,
    /// The best verdict a gateway can get.
    pub best: Best,
    /// Whether traffic should leave the faulty provider.
    pub failover: bool,
    /// Traffic length (humantime text, checked by the scenario loader).
    pub duration: String,
    /// Open-loop rate (req/s).
    pub rate: f64,
    /// Plain, streamed or both.
    pub stream: StreamMix,
    /// Per request.
    pub max_tokens: u32,
    /// `--set` overrides applied to the merged scenario.
    pub set: Vec<String>,
    /// The primary's fault settings.
    pub primary: toml::Table,
    /// The fallback's fault settings.
    pub fallback: toml::Table,
    /// Verdict bounds.
    pub bounds: Bounds,
    /// Extra checks, with what failing each costs.
    pub checks: Vec<(Assertion, CheckVerdict)>,
    /// Where it came from (`built-in` or the file).
    pub source: String,
}

impl Entry {
    /// Whether the fallback has faults of its own (a baseline or phases): then traffic
    /// moving to it is no harm done for an entry that must not fail over (both providers
    /// down), while moving to a healthy fallback off a working primary is.
    pub fn fallback_faulted(&self) -> bool {
        self.fallback.contains_key("phase")
            || self.fallback.get("baseline").is_some_and(|b| {
                ["errors", "connection", "stream", "rate_limit"]
                    .iter()
                    .any(|k| b.get(k).is_some())
            })
    }

    /// Every HTTP status the entry's faults answer with (`errors[].status` of the baselines
    /// and phases of both providers).
    pub fn fault_statuses(&self) -> std::collections::BTreeSet<u16> {
        let mut out = std::collections::BTreeSet::new();
        let mut sections: Vec<&toml::Value> = Vec::new();
        for t in [&self.primary, &self.fallback] {
            sections.extend(t.get("baseline"));
            if let Some(toml::Value::Array(phases)) = t.get("phase") {
                sections.extend(phases.iter());
            }
        }
        for s in sections {
            if let Some(toml::Value::Array(errors)) = s.get("errors") {
                for e in errors {
                    if let Some(st) = e.get("status").and_then(toml::Value::as_integer) {
                        out.extend(u16::try_from(st).ok());
                    }
                }
            }
        }
        out
    }
}

/// The keys of a provider's fault settings an entry may give.
const FAULT_KEYS: [&str; 3] = ["profile", "baseline", "phase"];
/// Longest entry file read (bytes).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Most entries a catalogue may hold.
pub const MAX_ENTRIES: usize = 1000;
/// Highest rate an entry may ask for (req/s); the run limits apply on top.
pub const MAX_RATE: f64 = 10_000.0;

/// Parses and checks one entry. `file` names it in errors; `dir` resolves a relative
/// `profile` (None for built-in entries, which must be self-contained).
pub fn parse(file: &str, src: &str, dir: Option<&std::path::Path>) -> Result<Entry, String> {
    if src.len() > MAX_ENTRY_BYTES {
        return Err(format!(
            "{file}: {} bytes, more than the {MAX_ENTRY_BYTES} an entry may have",
            src.len()
        ));
    }
    let spec: EntrySpec = toml::from_str(src).map_err(|e| {
        let line = e.span().map(|s| crate::diag::line_of_offset(src, s.start));
        match line {
            Some(l) => format!("{file}:{l}: {}", e.message().trim()),
            None => format!("{file}: {}", e.message().trim()),
        }
    })?;
    let mut problems = Vec::new();
    let stem = std::path::Path::new(file).file_stem().and_then(|s| s.to_str());
    if spec.name.is_empty()
        || !spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        problems.push(format!("name {:?}: use lowercase letters, digits and '-'", spec.name));
    } else if file.ends_with(".toml") && stem != Some(spec.name.as_str()) {
        problems.push(format!(
            "name {:?} differs from the file's name: name an entry after its file",
            spec.name
        ));
    }
    if spec.title.trim().is_empty() {
        problems.push("title is empty".into());
    }
    if spec.reports.iter().all(|r| r.trim().is_empty()) {
        problems.push("reports: name at least one real-world report the entry models".into());
    }
    if !(spec.rate > 0.0 && spec.rate <= MAX_RATE) {
        problems.push(format!("rate {}: must be in (0, {MAX_RATE}] req/s", spec.rate));
    }
    if spec.max_tokens == 0 || spec.max_tokens > 100_000 {
        problems.push(format!("max_tokens {}: must be in 1..=100000", spec.max_tokens));
    }
    let b = &spec.bounds;
    for (k, v) in [("failed_ratio", b.failed_ratio), ("budget_ratio", b.budget_ratio)] {
        if !(0.0..=1.0).contains(&v) {
            problems.push(format!("bounds.{k} {v}: a share, in [0, 1]"));
        }
    }
    if !(b.amplification >= 1.0 && b.amplification.is_finite()) {
        problems.push(format!(
            "bounds.amplification {}: at least 1 (one attempt per request)",
            b.amplification
        ));
    }
    let mut tables = Vec::new();
    for (who, t) in [("primary", spec.primary.clone()), ("fallback", spec.fallback.clone())] {
        let mut t = t.unwrap_or_default();
        for k in t.keys() {
            if !FAULT_KEYS.contains(&k.as_str()) {
                problems.push(format!(
                    "{who}.{k}: an entry sets only a provider's fault settings ({})",
                    FAULT_KEYS.join(", ")
                ));
            }
        }
        if let Some(toml::Value::String(p)) = t.get("profile") {
            match dir {
                None => problems.push(format!(
                    "{who}.profile: a built-in entry must be self-contained (inline baseline / phase)"
                )),
                Some(d) => {
                    let abs = std::path::absolute(d.join(p)).unwrap_or_else(|_| d.join(p));
                    t.insert("profile".into(), toml::Value::String(abs.display().to_string()));
                }
            }
        }
        tables.push(t);
    }
    let mut checks = Vec::new();
    for (i, c) in spec.check.iter().enumerate() {
        let a = AssertSpec {
            expr: c.expr.clone(),
            path: c.path.clone(),
            op: c.op,
            value: c.value.clone(),
        };
        match a.resolve() {
            Ok(a) => checks.push((a, c.verdict)),
            Err(e) => problems.push(format!("check[{i}]: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(format!("{file}: {}", problems.join("; ")));
    }
    let fallback = tables.pop().unwrap_or_default();
    let primary = tables.pop().unwrap_or_default();
    Ok(Entry {
        name: spec.name,
        title: spec.title,
        reports: spec.reports,
        tags: spec.tags,
        best: spec.best,
        failover: spec.failover,
        duration: spec.duration,
        rate: spec.rate,
        stream: spec.stream,
        max_tokens: spec.max_tokens,
        set: spec.set,
        primary,
        fallback,
        bounds: spec.bounds,
        checks,
        source: if dir.is_some() {
            file.to_string()
        } else {
            "built-in".into()
        },
    })
}
