//! Scenario files: `[providers.<name>]`, `[gateway]` (builtin or external), `[traffic]`,
//! `[slo]`, `[detection]`, `[[assert]]`, `[sweep]`, `seed`, `time_scale`.
//!
//! ```toml
//! seed = 42
//! time_scale = 0.1                  # every scenario time × 0.1 (10× faster)
//! [providers.primary]
//! api = "anthropic"
//! port = 9001                       # or listen = "127.0.0.1:9001"; absent = automatic
//! profile = "../fault-profiles/anthropic-partial-outage.toml"   # relative to this file
//! [[providers.primary.phase]]       # inline phases, added after the profile's
//! start = "10s"
//! errors = [{ status = 502 }]
//! [gateway]
//! kind = "builtin"
//! targets = ["primary", "fallback"]
//! health_check = { interval = "60s", timeout = "30s", unhealthy_threshold = 1, healthy_threshold = 1 }
//! [traffic]
//! rate = 155.0
//! duration = "8m"
//! [[assert]]
//! expr = "resilience.detection_s.max <= 90"
//! [sweep]
//! "gateway.health_check.interval" = ["5s", "60s"]
//! ```
//!
//! Loading goes: the document, then `--set` overrides and (per point) the sweep's values
//! applied to it ([`overrides`]), then parsing and validation — every problem at once,
//! each with file and line — then time scaling ([`scale`]).

pub mod overrides;
pub mod scale;

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
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    providers_from_str(&file, &src, &dir)
}

fn providers_from_str(
    file: &str,
    src: &str,
    dir: &std::path::Path,
) -> Result<(Option<u64>, Vec<ResolvedProvider>), ConfigErrors> {
    let file = file.to_string();
    let src = src.to_string();
    let doc: ProvidersOnly = toml::from_str(&src).map_err(|e| ConfigErrors(vec![toml_diagnostic(&src, &file, &e)]))?;
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

/// `[gateway]`: the reference gateway in-process, or an external gateway process.
#[derive(Clone, Debug)]
pub enum GatewaySpec {
    /// `kind = "builtin"` (default): the reference gateway's policy; target URLs are
    /// placeholders until the mocks are bound.
    Builtin(Box<crate::gateway::GatewayConfig>),
    /// `kind = "external"`: a process launched with a rendered config.
    External(Box<crate::external::ExternalSpec>),
}

impl GatewaySpec {
    /// The builtin gateway's config, if that is what this is.
    pub fn builtin(&self) -> Option<&crate::gateway::GatewayConfig> {
        match self {
            GatewaySpec::Builtin(g) => Some(g),
            GatewaySpec::External(_) => None,
        }
    }
    /// `builtin` or `external`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewaySpec::Builtin(_) => "builtin",
            GatewaySpec::External(_) => "external",
        }
    }
}

/// A scenario, resolved: providers with their profiles, the gateway, traffic, SLO,
/// detection settings and assertions, with every time already scaled by `time_scale`.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name (file stem unless given).
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Seed from the file.
    pub seed: Option<u64>,
    /// Providers.
    pub providers: Vec<ResolvedProvider>,
    /// The gateway under test.
    pub gateway: GatewaySpec,
    /// Traffic.
    pub traffic: crate::traffic::TrafficConfig,
    /// SLO.
    pub slo: SloConfig,
    /// Detection settings.
    pub detection: crate::analysis::resilience::DetectionConfig,
    /// `[[assert]]`s of the file.
    pub asserts: Vec<crate::assert::Assertion>,
    /// The factor every scenario time was multiplied by (1 = real time).
    pub time_scale: f64,
    /// `--repeat`: how far fault onsets are spread over the runs (default: the builtin
    /// gateway's health-check interval, so onsets cover every phase of its probe cycle).
    pub onset_spread: Option<crate::time::Dur>,
    /// Things worth saying in the report (what time scaling could not reach, …).
    pub warnings: Vec<String>,
    /// Directory of the file (paths in it are relative to it).
    pub dir: std::path::PathBuf,
}

impl Scenario {
    /// The builtin gateway's config, or an error saying this scenario's is external.
    pub fn builtin_gateway(&self) -> anyhow::Result<&crate::gateway::GatewayConfig> {
        self.gateway.builtin().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the simulator runs the reference gateway's policy; this scenario's gateway is external (use `chaosgate run`)",
                self.file
            )
        })
    }
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
    #[serde(default)]
    onset_spread: Option<crate::time::Dur>,
    providers: BTreeMap<String, toml::Value>,
    gateway: toml::Table,
    traffic: crate::traffic::TrafficConfig,
    #[serde(default)]
    slo: SloConfig,
    #[serde(default)]
    detection: crate::analysis::resilience::DetectionConfig,
    #[serde(default, rename = "assert")]
    asserts: Vec<crate::assert::AssertSpec>,
    #[serde(default)]
    sweep: Option<toml::Table>,
    #[serde(default)]
    cost: Option<toml::Table>,
}

/// One point of a sweep: its parameters (`path`, value as text) and its scenario.
#[derive(Clone, Debug)]
pub struct Point {
    /// The swept values of this point, in axis order.
    pub params: Vec<(String, String)>,
    /// The scenario with those values applied.
    pub scenario: Scenario,
}

/// A scenario file with its overrides, expanded into sweep points.
#[derive(Clone, Debug)]
pub struct ScenarioSet {
    /// The swept paths, in file order (empty without `[sweep]`).
    pub axes: Vec<String>,
    /// One entry per point of the matrix (one without a sweep), first axis slowest.
    pub points: Vec<Point>,
}

/// Reads a scenario file (no overrides; the first sweep point if it has a sweep).
pub fn load_scenario(path: &std::path::Path) -> Result<Scenario, ConfigErrors> {
    let mut set = load(path, &[])?;
    Ok(set.points.remove(0).scenario)
}

/// Reads a scenario file, applies `--set` overrides, expands `[sweep]` and validates every
/// point before anything runs. Errors of all points are reported at once.
pub fn load(path: &std::path::Path, sets: &[String]) -> Result<ScenarioSet, ConfigErrors> {
    let file = path.display().to_string();
    let src = crate::diag::read_config(path)?;
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    load_str(&file, &src, &dir, sets)
}

/// [`load`] from text (`file` names it in diagnostics; `dir` resolves relative paths).
pub fn load_str(file: &str, src: &str, dir: &std::path::Path, sets: &[String]) -> Result<ScenarioSet, ConfigErrors> {
    let top = |m: String| {
        ConfigErrors(vec![Diagnostic {
            file: file.to_string(),
            line: None,
            path: String::new(),
            message: m,
        }])
    };
    let mut doc: toml_edit::DocumentMut = src.parse().map_err(|e: toml_edit::TomlError| {
        ConfigErrors(vec![Diagnostic {
            file: file.to_string(),
            line: e.span().map(|s| crate::diag::line_of_offset(src, s.start)),
            path: String::new(),
            message: e.message().trim().to_string(),
        }])
    })?;
    let mut errors = Vec::new();
    for s in sets {
        match overrides::Override::parse(s).and_then(|o| overrides::apply(&mut doc, &o)) {
            Ok(()) => {}
            Err(m) => errors.push(Diagnostic {
                file: "--set".into(),
                line: None,
                path: String::new(),
                message: m,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let axes = overrides::sweep_axes(&doc).map_err(top)?;
    let matrix = overrides::matrix(&axes);
    let base_text = if sets.is_empty() {
        src.to_string()
    } else {
        doc.to_string()
    };
    let mut points = Vec::with_capacity(matrix.len());
    for point in &matrix {
        let (text, label) = if point.is_empty() {
            (base_text.clone(), file.to_string())
        } else {
            let mut d = doc.clone();
            for o in point {
                if let Err(m) = overrides::apply(&mut d, o) {
                    errors.push(Diagnostic {
                        file: file.to_string(),
                        line: None,
                        path: "sweep".into(),
                        message: m,
                    });
                }
            }
            let params: Vec<String> = point.iter().map(|o| format!("{}={}", o.path, o.value_text())).collect();
            (d.to_string(), format!("{file} [{}]", params.join(", ")))
        };
        match parse_one(&label, file, &text, dir) {
            Ok(s) => points.push(Point {
                params: point.iter().map(|o| (o.path.clone(), o.value_text())).collect(),
                scenario: s,
            }),
            Err(ConfigErrors(mut es)) => {
                // the same problem in every point is said once
                es.retain(|e| !errors.contains(e));
                errors.append(&mut es);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(ScenarioSet {
        axes: axes.into_iter().map(|(p, _)| p).collect(),
        points,
    })
}

fn parse_one(label: &str, file: &str, src: &str, dir: &std::path::Path) -> Result<Scenario, ConfigErrors> {
    let doc: ScenarioFile = toml::from_str(src).map_err(|e| ConfigErrors(vec![toml_diagnostic(src, label, &e)]))?;
    let _ = (&doc.description, &doc.sweep, &doc.cost);
    let (_, mut providers) = providers_from_str(label, src, dir)?;
    let mut errors = Vec::new();
    let at = |p: &Path| line_of(src, p);
    let diag = |p: Path, m: String| Diagnostic {
        file: label.to_string(),
        line: at(&p),
        path: p.to_string(),
        message: m,
    };
    let provider_names = || doc.providers.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut gw = doc.gateway.clone();
    let kind = gw.remove("kind");
    let gateway = match kind.as_ref().map(|k| k.as_str()) {
        None | Some(Some("builtin")) => {
            let names: Vec<String> = match gw.remove("targets") {
                Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                Some(_) => {
                    errors.push(diag(
                        Path::root().key("gateway").key("targets"),
                        "must be a list of provider names in priority order".into(),
                    ));
                    Vec::new()
                }
                None => doc.providers.keys().cloned().collect(),
            };
            for (i, n) in names.iter().enumerate() {
                if !doc.providers.contains_key(n) {
                    errors.push(diag(
                        Path::root().key("gateway").key("targets").index(i),
                        format!("target {n:?} is not a provider (providers: {})", provider_names()),
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
            match toml::Value::Table(gw).try_into::<crate::gateway::GatewayConfig>() {
                Ok(g) => {
                    for (k, m) in g.problems() {
                        if !k.starts_with("targets") {
                            errors.push(diag(
                                Path::root().key("gateway").key(k.split('.').next().unwrap_or("")),
                                format!("{k}: {m}"),
                            ));
                        }
                    }
                    Some(GatewaySpec::Builtin(Box::new(g)))
                }
                Err(e) => {
                    errors.push(diag(Path::root().key("gateway"), e.to_string().trim().to_string()));
                    None
                }
            }
        }
        Some(Some("external")) => match toml::Value::Table(gw).try_into::<crate::external::ExternalSpec>() {
            Ok(x) => {
                for (k, m) in x.problems() {
                    errors.push(diag(Path::root().key("gateway").key(&k), m));
                }
                Some(GatewaySpec::External(Box::new(x)))
            }
            Err(e) => {
                errors.push(diag(Path::root().key("gateway"), e.to_string().trim().to_string()));
                None
            }
        },
        Some(other) => {
            errors.push(diag(
                Path::root().key("gateway").key("kind"),
                format!(
                    "unknown gateway kind {}: expected \"builtin\" or \"external\"",
                    other.map_or_else(
                        || kind.as_ref().map(|k| k.to_string()).unwrap_or_default(),
                        |s| format!("{s:?}")
                    )
                ),
            ));
            None
        }
    };
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
    if let Some(r) = doc.slo.rate {
        if !(r.is_finite() && r > 0.0) {
            errors.push(diag(
                Path::root().key("slo").key("rate"),
                format!("must be > 0 req/s, got {r}"),
            ));
        }
    }
    let d = &doc.detection;
    if !(d.share_threshold > 0.0 && d.share_threshold < 1.0) {
        errors.push(diag(
            Path::root().key("detection").key("share_threshold"),
            format!("must be in (0, 1), got {}", d.share_threshold),
        ));
    }
    if d.hold.0 == 0 || d.baseline.0 == 0 {
        errors.push(diag(
            Path::root().key("detection"),
            "hold and baseline must be longer than 0s".into(),
        ));
    }
    let time_scale = doc.time_scale.unwrap_or(1.0);
    if !(time_scale.is_finite() && time_scale > 0.0) {
        errors.push(diag(
            Path::root().key("time_scale"),
            format!("must be a number > 0 (0.1 = ten times faster), got {time_scale}"),
        ));
    }
    let mut asserts = Vec::new();
    for (i, a) in doc.asserts.iter().enumerate() {
        match a.resolve() {
            Ok(a) => asserts.push(a),
            Err(m) => errors.push(diag(Path::root().key("assert").index(i), m)),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut gateway = gateway.expect("checked");
    let name = doc.name.clone().unwrap_or_else(|| {
        std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut traffic = doc.traffic;
    let mut warnings = Vec::new();
    let mut onset_spread = doc.onset_spread;
    if time_scale != 1.0 {
        for p in &mut providers {
            scale::profile(&mut p.profile, time_scale);
        }
        scale::traffic(&mut traffic, time_scale);
        onset_spread = onset_spread.map(|d| scale::dur(d, time_scale));
        match &mut gateway {
            GatewaySpec::Builtin(g) => scale::gateway(g, time_scale),
            GatewaySpec::External(x) => warnings.extend(scale::external(x, time_scale)),
        }
    }
    Ok(Scenario {
        name,
        file: label.to_string(),
        seed: doc.seed,
        providers,
        gateway,
        traffic,
        slo: doc.slo,
        detection: doc.detection,
        asserts,
        time_scale,
        onset_spread,
        warnings,
        dir: dir.to_path_buf(),
    })
}
