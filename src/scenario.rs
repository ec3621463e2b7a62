//! Scenario files (the parts the mock needs so far): `[providers.<name>]` tables.
//!
//! ```toml
//! seed = 42
//! [providers.primary]
//! api = "anthropic"
//! port = 9001                       # or listen = "127.0.0.1:9001"; absent = automatic
//! profile = "../fault-profiles/anthropic-partial-outage.toml"   # relative to this file
//! [[providers.primary.phase]]       # inline phases, added after the profile's
//! start = "10s"
//! errors = [{ status = 502 }]
//! ```
//!
//! Other top-level tables (gateway, traffic, slo, …) are accepted and left for the
//! commands that use them.

use crate::diag::{line_of, ConfigErrors, Diagnostic, Path};
use crate::fault::profile::{toml_diagnostic, Section};
use crate::fault::Profile;
use crate::provider::Api;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One `[providers.<name>]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Wire format.
    pub api: Api,
    /// Port on 127.0.0.1 (absent and no `listen` = automatic).
    #[serde(default)]
    pub port: Option<u16>,
    /// Full listen address (overrides `port`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Fault profile file, relative to the scenario file.
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Inline baseline (replaces the profile's baseline when given).
    #[serde(default)]
    pub baseline: Option<Section>,
    /// Inline phases, appended to the profile's.
    #[serde(default, rename = "phase")]
    pub phases: Vec<Section>,
}

#[derive(Debug, Deserialize)]
struct ProvidersOnly {
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    providers: BTreeMap<String, ProviderSpec>,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// A provider ready to serve.
#[derive(Clone, Debug)]
pub struct ResolvedProvider {
    /// Name (the table key).
    pub name: String,
    /// Wire format.
    pub api: Api,
    /// Listen address.
    pub listen: String,
    /// The merged profile.
    pub profile: Profile,
}

/// Reads the providers of a scenario file, with every problem reported at once.
pub fn load_providers(path: &std::path::Path) -> Result<(Option<u64>, Vec<ResolvedProvider>), ConfigErrors> {
    let file = path.display().to_string();
    let src = crate::diag::read_config(path)?;
    let doc: ProvidersOnly = toml::from_str(&src).map_err(|e| ConfigErrors(vec![toml_diagnostic(&src, &file, &e)]))?;
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    if doc.providers.is_empty() {
        errors.push(Diagnostic {
            file: file.clone(),
            line: None,
            path: "providers".into(),
            message: "no [providers.<name>] table: nothing to serve".into(),
        });
    }
    for (name, spec) in doc.providers {
        let base = Path::root().key("providers").key(&name);
        let mut profile = match &spec.profile {
            Some(p) => {
                let full = dir.join(p);
                match Profile::load(&full) {
                    Ok(p) => p,
                    Err(ConfigErrors(mut es)) => {
                        errors.push(Diagnostic {
                            file: file.clone(),
                            line: line_of(&src, &base.key("profile")),
                            path: base.key("profile").to_string(),
                            message: format!("profile {} is invalid (below)", full.display()),
                        });
                        errors.append(&mut es);
                        continue;
                    }
                }
            }
            None => Profile::default(),
        };
        if let Some(b) = spec.baseline.clone() {
            profile.baseline = b;
        }
        profile.phases.extend(spec.phases.iter().cloned());
        for (p, m) in profile.problems() {
            // problems in inline parts point into the scenario; profile-file ones were caught above
            let mut sp = base.clone();
            sp.0.extend(p.0.iter().cloned());
            errors.push(Diagnostic {
                file: file.clone(),
                line: line_of(&src, &sp),
                path: sp.to_string(),
                message: m,
            });
        }
        if profile.name.is_none() {
            profile.name = Some(name.clone());
        }
        let listen = match (&spec.listen, spec.port) {
            (Some(l), _) => l.clone(),
            (None, Some(p)) => format!("127.0.0.1:{p}"),
            (None, None) => "127.0.0.1:0".to_string(),
        };
        out.push(ResolvedProvider {
            name,
            api: spec.api,
            listen,
            profile,
        });
    }
    if errors.is_empty() {
        Ok((doc.seed, out))
    } else {
        Err(ConfigErrors(errors))
    }
}
