//! `chaosgate suite`: a catalogue of real gateway failure modes run as a scorecard against
//! any gateway (`docs/suite.md`). An edge, like `run`: it merges each entry into the
//! gateway's scenario ([`merge`]), runs it through the drivers ([`runner`]) and turns the
//! run's report into a verdict ([`verdict`], the one owner of that rule), rendered by
//! [`scorecard`].

pub mod entry;
pub mod merge;
pub mod runner;
pub mod scorecard;
pub mod verdict;

pub use entry::{Best, Entry};
pub use runner::{EntryResult, SuiteOptions, SuiteReport};
pub use verdict::Verdict;

/// The built-in catalogue: `catalogue/*.toml`, compiled in (file stem, text). A test checks
/// that every file of `catalogue/` is listed here.
pub const BUILTIN: &[(&str, &str)] = &[
    ("auth-401", include_str!("../../catalogue/auth-401.toml")),
    ("bare-429", include_str!("../../catalogue/bare-429.toml")),
    ("both-down", include_str!("../../catalogue/both-down.toml")),
    ("brownout", include_str!("../../catalogue/brownout.toml")),
    (
        "connection-reset",
        include_str!("../../catalogue/connection-reset.toml"),
    ),
    (
        "context-length-400",
        include_str!("../../catalogue/context-length-400.toml"),
    ),
    ("failback", include_str!("../../catalogue/failback.toml")),
    ("flapping", include_str!("../../catalogue/flapping.toml")),
    ("forbidden-403", include_str!("../../catalogue/forbidden-403.toml")),
    ("grey-502", include_str!("../../catalogue/grey-502.toml")),
    ("headers-never", include_str!("../../catalogue/headers-never.toml")),
    (
        "headers-then-silence",
        include_str!("../../catalogue/headers-then-silence.toml"),
    ),
    ("html-502", include_str!("../../catalogue/html-502.toml")),
    ("hung-probes", include_str!("../../catalogue/hung-probes.toml")),
    ("malformed-chunk", include_str!("../../catalogue/malformed-chunk.toml")),
    (
        "missing-terminal",
        include_str!("../../catalogue/missing-terminal.toml"),
    ),
    ("overloaded-529", include_str!("../../catalogue/overloaded-529.toml")),
    ("persistent-500", include_str!("../../catalogue/persistent-500.toml")),
    ("ping-stall", include_str!("../../catalogue/ping-stall.toml")),
    ("quota-429", include_str!("../../catalogue/quota-429.toml")),
    ("random-outages", include_str!("../../catalogue/random-outages.toml")),
    (
        "ratelimit-headers",
        include_str!("../../catalogue/ratelimit-headers.toml"),
    ),
    ("replica-drift", include_str!("../../catalogue/replica-drift.toml")),
    ("retry-after-429", include_str!("../../catalogue/retry-after-429.toml")),
    ("retry-storm", include_str!("../../catalogue/retry-storm.toml")),
    ("silent-stall", include_str!("../../catalogue/silent-stall.toml")),
    ("slow-failure", include_str!("../../catalogue/slow-failure.toml")),
    (
        "slow-first-token",
        include_str!("../../catalogue/slow-first-token.toml"),
    ),
    (
        "stall-after-first-token",
        include_str!("../../catalogue/stall-after-first-token.toml"),
    ),
    ("stream-cut", include_str!("../../catalogue/stream-cut.toml")),
    ("stuck-health", include_str!("../../catalogue/stuck-health.toml")),
    ("truncated-200", include_str!("../../catalogue/truncated-200.toml")),
];

/// The gateway the suite runs against by default: the reference gateway, simulated.
pub const DEFAULT_GATEWAY: &str = include_str!("../../examples/gateways/builtin/scenario.toml");

/// The built-in entries, parsed (an entry that does not parse is a bug: the test suite
/// parses every one).
pub fn builtin() -> Result<Vec<Entry>, String> {
    BUILTIN
        .iter()
        .map(|(stem, src)| entry::parse(&format!("catalogue/{stem}.toml"), src, None))
        .collect()
}

/// The entries of the `.toml` files in `dir` (sorted by file name).
#[allow(clippy::disallowed_methods)] // reads the user's entry files
pub fn from_dir(dir: &std::path::Path) -> Result<Vec<Entry>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("--entries {}: {e}", dir.display()))?;
    let mut files: Vec<std::path::PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("--entries {}: no .toml entry files there", dir.display()));
    }
    if files.len() > entry::MAX_ENTRIES {
        return Err(format!(
            "--entries {}: {} files, more than the {} a catalogue may hold",
            dir.display(),
            files.len(),
            entry::MAX_ENTRIES
        ));
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let src = match crate::diag::read_config(&f) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{e}").trim().to_string());
                continue;
            }
        };
        match entry::parse(&name, &src, f.parent()) {
            Ok(e) => out.push(e),
            Err(m) => errors.push(m),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// What to run: `--only`, `--skip` (names) and `--tag` (any of).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Run only these names.
    pub only: Vec<String>,
    /// Leave these names out.
    pub skip: Vec<String>,
    /// Run only entries with one of these tags.
    pub tags: Vec<String>,
}

/// The catalogue with user entries added (a user entry may not reuse a name), filtered.
/// Unknown names in `--only` / `--skip` and tags no entry has are errors, not silence.
pub fn select(mut all: Vec<Entry>, extra: Vec<Entry>, f: &Filter) -> Result<Vec<Entry>, String> {
    for e in extra {
        if let Some(b) = all.iter().find(|b| b.name == e.name) {
            return Err(format!(
                "{}: entry {:?} is already in the catalogue ({}): give it another name",
                e.source, e.name, b.source
            ));
        }
        all.push(e);
    }
    let known = |n: &String| all.iter().any(|e| &e.name == n);
    let unknown: Vec<&String> = f.only.iter().chain(&f.skip).filter(|n| !known(n)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "no entry named {}; `chaosgate suite --list` lists them",
            unknown.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let no_tag: Vec<&String> = f
        .tags
        .iter()
        .filter(|t| !all.iter().any(|e| e.tags.contains(t)))
        .collect();
    if !no_tag.is_empty() {
        return Err(format!(
            "no entry has the tag {}; `chaosgate suite --list` shows the tags",
            no_tag.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let picked: Vec<Entry> = all
        .into_iter()
        .filter(|e| f.only.is_empty() || f.only.contains(&e.name))
        .filter(|e| !f.skip.contains(&e.name))
        .filter(|e| f.tags.is_empty() || e.tags.iter().any(|t| f.tags.contains(t)))
        .collect();
    if picked.is_empty() {
        return Err("the filters leave no entry to run".into());
    }
    Ok(picked)
}

#[cfg(test)]
mod tests;
