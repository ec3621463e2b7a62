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

/// `[slo]`.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Availability target τ (default 0.999).
    #[serde(default = "d_target")]
    pub target: f64,
    /// Compliance period (default 30 days).
    #[serde(default = "d_period")]
    pub period: crate::time::Dur,
    /// Requests per second the budget is sized for (default: the run's rate).
    #[serde(default)]
    pub rate: Option<f64>,
}

fn d_target() -> f64 {
    0.999
}
fn d_period() -> crate::time::Dur {
    crate::time::Dur::from_secs(30 * 86_400)
}

impl Default for SloConfig {
    fn default() -> SloConfig {
        SloConfig {
            target: d_target(),
            period: d_period(),
            rate: None,
        }
    }
}

/// A scenario, resolved: providers with their profiles, the builtin gateway's policy
/// (targets named after providers), traffic, SLO and detection settings.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name (file stem unless given).
    pub name: String,
    /// Seed from the file.
    pub seed: Option<u64>,
    /// Providers.
    pub providers: Vec<ResolvedProvider>,
    /// The builtin gateway (target URLs are placeholders until mocks are bound).
    pub gateway: crate::gateway::GatewayConfig,
    /// Traffic.
    pub traffic: crate::traffic::TrafficConfig,
    /// SLO.
    pub slo: SloConfig,
    /// Detection settings.
    pub detection: crate::analysis::resilience::DetectionConfig,
    /// Directory of the file (paths in it are relative to it).
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    time_scale: Option<f64>,
    providers: BTreeMap<String, toml::Value>,
    gateway: toml::Table,
    traffic: crate::traffic::TrafficConfig,
    #[serde(default)]
    slo: SloConfig,
    #[serde(default)]
    detection: crate::analysis::resilience::DetectionConfig,
}

/// Reads a scenario file (builtin gateway). Every problem found is reported, with lines.
pub fn load_scenario(path: &std::path::Path) -> Result<Scenario, ConfigErrors> {
    let file = path.display().to_string();
    let src = crate::diag::read_config(path)?;
    let doc: ScenarioFile = toml::from_str(&src).map_err(|e| ConfigErrors(vec![toml_diagnostic(&src, &file, &e)]))?;
    let _ = (&doc.description, doc.time_scale);
    let (_, providers) = load_providers(path)?;
    let mut errors = Vec::new();
    let at = |p: &Path| line_of(&src, p);
    let diag = |p: Path, m: String| Diagnostic {
        file: file.clone(),
        line: at(&p),
        path: p.to_string(),
        message: m,
    };
    let mut gw = doc.gateway.clone();
    match gw
        .remove("kind")
        .and_then(|k| k.as_str().map(str::to_string))
        .as_deref()
    {
        None | Some("builtin") => {}
        Some(other) => errors.push(diag(
            Path::root().key("gateway").key("kind"),
            format!("gateway kind {other:?} is not supported by this command yet (expected \"builtin\")"),
        )),
    }
    let names: Vec<String> = match gw.remove("targets") {
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => doc.providers.keys().cloned().collect(),
    };
    for (i, n) in names.iter().enumerate() {
        if !doc.providers.contains_key(n) {
            errors.push(diag(
                Path::root().key("gateway").key("targets").index(i),
                format!(
                    "target {n:?} is not a provider (providers: {})",
                    doc.providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let targets: Vec<toml::Value> = names
        .iter()
        .map(|n| {
            let mut t = toml::Table::new();
            t.insert("name".into(), toml::Value::String(n.clone()));
            t.insert("url".into(), toml::Value::String("http://127.0.0.1:1".into()));
            toml::Value::Table(t)
        })
        .collect();
    gw.insert("targets".into(), toml::Value::Array(targets));
    let gateway: Option<crate::gateway::GatewayConfig> = match toml::Value::Table(gw).try_into() {
        Ok(g) => Some(g),
        Err(e) => {
            errors.push(diag(Path::root().key("gateway"), e.to_string().trim().to_string()));
            None
        }
    };
    if let Some(g) = &gateway {
        for (k, m) in g.problems() {
            if !k.starts_with("targets") {
                errors.push(diag(
                    Path::root().key("gateway").key(k.split('.').next().unwrap_or("")),
                    format!("{k}: {m}"),
                ));
            }
        }
    }
    for (k, m) in doc.traffic.problems() {
        errors.push(diag(
            Path::root()
                .key("traffic")
                .key(k.split(['.', '[']).next().unwrap_or("")),
            format!("{k}: {m}"),
        ));
    }
    if !(doc.slo.target > 0.0 && doc.slo.target < 1.0) {
        errors.push(diag(
            Path::root().key("slo").key("target"),
            format!("must be in (0, 1), got {}", doc.slo.target),
        ));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let name = doc.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(Scenario {
        name,
        seed: doc.seed,
        providers,
        gateway: gateway.expect("checked"),
        traffic: doc.traffic,
        slo: doc.slo,
        detection: doc.detection,
        dir: path.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
    })
}
