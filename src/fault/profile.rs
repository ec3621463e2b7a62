//! The fault profile file: a baseline plus phases.
//!
//! ```toml
//! # fault-profiles/example.toml
//! [baseline]
//! ttft = { kind = "lognormal", p50 = "300ms", p99 = "1.2s" }
//! tokens_per_s = { mean = 80, cv = 0.1, process = "random_walk" }
//! errors = [{ status = 500, probability = 0.001 }]
//!
//! [[phase]]
//! name = "outage"
//! start = "60s"
//! duration = "4m"
//! applies_to = "completions"   # grey failure: /health stays 200
//! errors = [{ status = 502, probability = 1.0 }]
//! ```
//!
//! How phases compose (docs/fault-profiles.md too):
//! 1. A phase is *active* at `t` when its window (and flapping / random pattern) says so;
//!    its intensity `k` ∈ (0, 1] comes from the ramps.
//! 2. Failure rules are consulted in order — connection faults, then the rate-limit
//!    buckets, then error rules, then (for streams) stream faults; within each kind the
//!    baseline's rules come first, then each active phase's in file order. Each rule fires
//!    with probability `probability · k`; the **first rule that fires decides** (turmoil's
//!    "first non-pass verdict wins").
//! 3. Settings (`latency`, `ttft`, `tokens_per_s`, `rate_limit`): the **last** active
//!    phase that sets one replaces the baseline's, interpolated by `k` during ramps.
//!    `latency_multiplier`s of all active phases multiply.
//! 4. `/health`: baseline rules never touch it (it answers `baseline.health`); an active
//!    phase whose `applies_to` includes health answers with its `health` when given, else
//!    its connection and error rules apply to `/health` as well.

use super::latency::Latency;
use super::ratelimit::RateLimit;
use super::throughput::Throughput;
use super::timeline::{Flapping, RandomOutages, Window};
use crate::diag::{ConfigErrors, Diagnostic, Path};
pub use crate::provider::Envelope;
use crate::provider::ErrorKind;
use crate::time::Dur;
use serde::{Deserialize, Serialize};

/// A whole profile file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (defaults to the file stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What real event this models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always-on behaviour.
    #[serde(default)]
    pub baseline: Section,
    /// Timed phases (`[[phase]]`).
    #[serde(default, rename = "phase", skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Section>,
}

/// Which requests a phase affects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Completions, embeddings and `/health`.
    #[default]
    All,
    /// Completions and embeddings only: `/health` keeps answering (grey failure).
    Completions,
    /// `/health` only: probes fail while traffic is fine (the reverse grey failure).
    Health,
}

impl Scope {
    /// Whether this scope covers health probes.
    pub fn health(self) -> bool {
        matches!(self, Scope::All | Scope::Health)
    }
    /// Whether this scope covers completions and embeddings.
    pub fn completions(self) -> bool {
        matches!(self, Scope::All | Scope::Completions)
    }
}

/// The baseline or one phase. Window keys (`start`, `duration`, …) are for phases only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Phase name (shown in reports and the admin API; used to replace a phase at runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Onset from run start (phases; default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Dur>,
    /// Length (phases; absent = until the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Linear ramp-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_in: Option<Dur>,
    /// Linear ramp-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_out: Option<Dur>,
    /// On/off flapping inside the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<Flapping>,
    /// Random outages (MTBF/MTTR) inside the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomOutages>,
    /// Which requests the phase affects (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<Scope>,

    /// Total latency of a non-streamed completion (default: ttft + tokens / tokens_per_s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Time to first token of a stream (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<Latency>,
    /// Token pacing of streams (default unpaced). A table only: serde would read
    /// `[1, 2]` as `{ mean = 1, cv = 2 }`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::diag::table_only_opt"
    )]
    pub tokens_per_s: Option<Throughput>,
    /// Latency of an embeddings call (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_latency: Option<Latency>,
    /// Multiplies every latency while the phase is active (brownouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_multiplier: Option<f64>,
    /// Output length (default: the request's max_tokens, else 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<TokenRange>,
    /// HTTP error rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
    /// Connection-level faults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection: Vec<ConnectionRule>,
    /// Stream faults (streamed chat only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream: Vec<StreamRule>,
    /// Rate-limit buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How `/health` answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthRule>,
}

/// Output length drawn uniformly in `[min, max]`, never above the request's max_tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRange {
    /// Fewest tokens (≥ 1).
    pub min: u32,
    /// Most tokens.
    pub max: u32,
}

fn one() -> f64 {
    1.0
}

/// An HTTP error answered with the provider's own envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// HTTP status (400–599).
    pub status: u16,
    /// Chance per request (default 1).
    #[serde(default = "one")]
    pub probability: f64,
    /// Error variant; default from the status. `insufficient_quota` makes a
    /// non-retryable 429 (OpenAI quota, Anthropic spend cap: no retry-after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// `retry-after` header (default 1s for rate limits, none otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Dur>,
    /// Delay before the error is sent (default 0: fails fast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Dur>,
    /// Message text (default: the provider's usual text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the answer looks like besides its status (default `provider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
}

/// Connection-level fault kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// Close the connection (RST) before any response bytes.
    Reset,
    /// Never answer.
    Hang,
    /// Send 200 headers, then nothing.
    HeadersThenSilence,
    /// Answer, but trickle the body at `bytes_per_s`.
    SlowBody,
}

/// A connection-level fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRule {
    /// What happens.
    pub kind: ConnectionKind,
    /// Chance per request (default 1).
    #[serde(default = "one")]
    pub probability: f64,
    /// `slow_body`: bytes per second (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<u32>,
    /// `reset` / `headers_then_silence`: delay first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Dur>,
}

/// Stream fault kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Close after `after_tokens` tokens, no terminal event.
    Cut,
    /// In-band error event after `after_tokens` tokens (HTTP status stays 200).
    Error,
    /// A truncated JSON chunk after `after_tokens` tokens, then close.
    Malformed,
    /// All tokens, but no `[DONE]` / `message_stop`.
    NoTerminal,
    /// After `after_tokens` tokens, keep-alive pings (Anthropic `ping`, OpenAI SSE comments)
    /// and no content, until the client gives up.
    PingStall,
    /// After `after_tokens` tokens, silence with the connection open.
    SilentStall,
}

/// A stream fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRule {
    /// What happens.
    pub kind: StreamKind,
    /// Chance per streamed request (default 1).
    #[serde(default = "one")]
    pub probability: f64,
    /// Content tokens sent before the fault (default 0).
    #[serde(default)]
    pub after_tokens: u32,
    /// `error`: the error kind (default `overloaded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// `ping_stall`: gap between pings (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_every: Option<Dur>,
}

/// How `/health` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRule {
    /// Status (default 200).
    #[serde(default = "status_200")]
    pub status: u16,
    /// Delay before answering (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Never answer.
    #[serde(default)]
    pub hang: bool,
    /// Chance per probe that this rule applies (default 1).
    #[serde(default = "one")]
    pub probability: f64,
}

fn status_200() -> u16 {
    200
}

impl Default for HealthRule {
    fn default() -> HealthRule {
        HealthRule {
            status: 200,
            latency: None,
            hang: false,
            probability: 1.0,
        }
    }
}

fn check_prob(p: f64, path: &Path, out: &mut Vec<(Path, String)>) {
    if !(0.0..=1.0).contains(&p) {
        out.push((path.key("probability"), format!("must be between 0 and 1, got {p}")));
    }
}

impl Section {
    /// The phase's time window.
    pub fn window(&self) -> Window {
        Window {
            start: self.start.unwrap_or_default().0,
            duration: self.duration.map(|d| d.0),
            ramp_in: self.ramp_in.unwrap_or_default().0,
            ramp_out: self.ramp_out.unwrap_or_default().0,
            flapping: self.flapping.clone(),
            random: self.random.clone(),
        }
    }

    /// Scope (default all).
    pub fn scope(&self) -> Scope {
        self.applies_to.unwrap_or_default()
    }

    /// A label for messages and reports.
    pub fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("phase[{index}]"))
    }

    fn validate(&self, path: &Path, is_baseline: bool, out: &mut Vec<(Path, String)>) {
        if is_baseline {
            for (k, set) in [
                ("name", self.name.is_some()),
                ("start", self.start.is_some()),
                ("duration", self.duration.is_some()),
                ("ramp_in", self.ramp_in.is_some()),
                ("ramp_out", self.ramp_out.is_some()),
                ("flapping", self.flapping.is_some()),
                ("random", self.random.is_some()),
                ("applies_to", self.applies_to.is_some()),
            ] {
                if set {
                    out.push((path.key(k), format!("`{k}` belongs in a [[phase]], not in [baseline]")));
                }
            }
        } else {
            for m in self.window().validate() {
                out.push((path.clone(), m));
            }
        }
        for (k, l) in [
            ("latency", &self.latency),
            ("ttft", &self.ttft),
            ("embedding_latency", &self.embedding_latency),
        ] {
            if let Some(l) = l {
                for m in l.validate() {
                    out.push((path.key(k), m));
                }
            }
        }
        if let Some(t) = &self.tokens_per_s {
            for m in t.validate() {
                out.push((path.key("tokens_per_s"), m));
            }
        }
        use crate::diag::limits::{dur_at_most, MAX_DURATION, MAX_SHAPE, MAX_TOKENS};
        if let Some(m) = self.latency_multiplier {
            if !(m.is_finite() && m > 0.0 && m <= MAX_SHAPE) {
                out.push((
                    path.key("latency_multiplier"),
                    format!("must be a number in (0, {MAX_SHAPE}], got {m}"),
                ));
            }
        }
        if let Some(r) = &self.output_tokens {
            if r.min == 0 || r.min > r.max || f64::from(r.max) > MAX_TOKENS {
                out.push((
                    path.key("output_tokens"),
                    format!("need 1 ≤ min ≤ max ≤ {MAX_TOKENS}, got {}..{}", r.min, r.max),
                ));
            }
        }
        for (i, e) in self.errors.iter().enumerate() {
            for (k, d) in [("retry_after", e.retry_after), ("after", e.after)] {
                if let Some(m) = d.and_then(|d| dur_at_most(d, MAX_DURATION)) {
                    out.push((path.key("errors").index(i).key(k), m));
                }
            }
        }
        for (i, s) in self.stream.iter().enumerate() {
            if let Some(m) = s.ping_every.and_then(|d| dur_at_most(d, MAX_DURATION)) {
                out.push((path.key("stream").index(i).key("ping_every"), m));
            }
        }
        for (i, e) in self.errors.iter().enumerate() {
            let p = path.key("errors").index(i);
            check_prob(e.probability, &p, out);
            if !(400..=599).contains(&e.status) {
                out.push((
                    p.key("status"),
                    format!("must be an HTTP error status 400–599, got {}", e.status),
                ));
            }
            if e.kind == Some(ErrorKind::InsufficientQuota) && e.status != 429 {
                out.push((p.key("kind"), "`insufficient_quota` is a 429".into()));
            }
            if e.retry_after.is_some() && e.envelope.is_some_and(|v| v != Envelope::Provider) {
                out.push((
                    p.key("retry_after"),
                    "a `bare` or `html` envelope sends no retry-after: drop one of the two".into(),
                ));
            }
        }
        for (i, c) in self.connection.iter().enumerate() {
            let p = path.key("connection").index(i);
            check_prob(c.probability, &p, out);
            if c.bytes_per_s == Some(0) {
                out.push((p.key("bytes_per_s"), "must be > 0".into()));
            }
            if c.bytes_per_s.is_some() && c.kind != ConnectionKind::SlowBody {
                out.push((p.key("bytes_per_s"), "only `slow_body` takes bytes_per_s".into()));
            }
        }
        for (i, s) in self.stream.iter().enumerate() {
            let p = path.key("stream").index(i);
            check_prob(s.probability, &p, out);
            if s.error.is_some() && s.kind != StreamKind::Error {
                out.push((p.key("error"), "only kind = \"error\" takes `error`".into()));
            }
            if s.ping_every == Some(Dur(0)) {
                out.push((p.key("ping_every"), "must be > 0".into()));
            }
        }
        if let Some(r) = &self.rate_limit {
            for m in r.validate() {
                out.push((path.key("rate_limit"), m));
            }
        }
        if let Some(h) = &self.health {
            let p = path.key("health");
            check_prob(h.probability, &p, out);
            if !(100..=599).contains(&h.status) {
                out.push((p.key("status"), format!("must be an HTTP status, got {}", h.status)));
            }
            if let Some(l) = &h.latency {
                for m in l.validate() {
                    out.push((p.key("latency"), m));
                }
            }
        }
    }
}

impl Profile {
    /// Semantic checks; `(path, message)` per problem.
    pub fn problems(&self) -> Vec<(Path, String)> {
        let mut out = Vec::new();
        self.baseline.validate(&Path::root().key("baseline"), true, &mut out);
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.phases.iter().enumerate() {
            let path = Path::root().key("phase").index(i);
            p.validate(&path, false, &mut out);
            if let Some(n) = &p.name {
                if !names.insert(n.clone()) {
                    out.push((path.key("name"), format!("duplicate phase name {n:?}")));
                }
            }
        }
        out
    }

    /// Parses and validates TOML text; `file` names it in messages.
    pub fn from_toml(src: &str, file: &str) -> Result<Profile, ConfigErrors> {
        let doc: toml_edit::DocumentMut = src.parse().map_err(|e| ConfigErrors::syntax(src, file, &e))?;
        let (profile, mut problems) = crate::diag::deserialize_all::<Profile>(&doc);
        if let Some(p) = &profile {
            problems.extend(p.problems());
        }
        ConfigErrors::check(src, file, problems)?;
        Ok(profile.expect("no problems means it parsed"))
    }

    /// Reads, parses and validates a profile file. A missing `name` becomes the file stem.
    #[allow(clippy::disallowed_methods)] // a loader: a fault-profile file, read when a scenario or `mock --profile` loads
    pub fn load(path: &std::path::Path) -> Result<Profile, ConfigErrors> {
        let file = path.display().to_string();
        let src = crate::diag::read_config(path)?;
        let mut p = Profile::from_toml(&src, &file)?;
        let empty = src
            .parse::<toml_edit::DocumentMut>()
            .is_ok_and(|d| d.iter().next().is_none());
        if empty {
            // a profile file names a behaviour; an empty one is a mistake (a wrong file,
            // a lost edit), not a way to say "healthy": fault-profiles/healthy.toml is
            return Err(ConfigErrors(vec![Diagnostic {
                file,
                line: Some(1),
                path: String::new(),
                message: "the profile is empty: give a [baseline] or a [[phase]] (a provider without faults needs no profile)".into(),
            }]));
        }
        if p.name.is_none() {
            p.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(p)
    }
}

/// Turns a toml/serde error into a diagnostic with the line, keeping serde's
/// "unknown field `probabilty`, expected one of …" text.
pub fn toml_diagnostic(src: &str, file: &str, e: &toml::de::Error) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: e.span().map(|s| crate::diag::line_of_offset(src, s.start)),
        path: String::new(),
        message: e.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_key_names_file_line_and_expected_keys() {
        let src = "[baseline]\nerrors = [{ status = 500, probabilty = 0.1 }]\n";
        let e = Profile::from_toml(src, "x.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("x.toml:2:"), "{s}");
        assert!(s.contains("unknown field `probabilty`"), "{s}");
        assert!(s.contains("probability"), "{s}");
    }

    #[test]
    fn every_semantic_error_at_once_with_lines() {
        let src = r#"
[baseline]
start = "1s"
errors = [{ status = 200, probability = 1.5 }]

[[phase]]
name = "a"
duration = "0s"

[[phase]]
name = "a"
latency = { kind = "quantiles", p50 = "2s", p95 = "1s", p99 = "3s" }
"#;
        let e = Profile::from_toml(src, "p.toml").unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|d| (d.line, d.path.clone())).collect();
        assert!(e.0.len() >= 5, "{e}");
        assert!(lines.contains(&(Some(3), "baseline.start".into())), "{lines:?}");
        assert!(
            lines.contains(&(Some(4), "baseline.errors[0].probability".into())),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(Some(4), "baseline.errors[0].status".into())),
            "{lines:?}"
        );
        assert!(lines.contains(&(Some(11), "phase[1].name".into())), "{lines:?}");
        assert!(lines.contains(&(Some(12), "phase[1].latency".into())), "{lines:?}");
    }

    #[test]
    fn wrong_type_and_bad_enum_are_reported() {
        let e = Profile::from_toml("[[phase]]\napplies_to = \"everything\"\n", "f.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("f.toml:2:") && s.contains("completions"), "{s}");
        let e = Profile::from_toml("[baseline]\nttft = { kind = \"fixed\", value = 5 }\n", "f.toml").unwrap_err();
        assert!(e.to_string().contains("ambiguous"), "{e}");
    }
}
