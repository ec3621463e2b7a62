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
pub const BUILTIN: &[(&str, &str)] = &[];

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
