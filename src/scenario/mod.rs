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

pub mod external;
pub mod generate;
mod overrides;
pub use overrides::MAX_SWEEP_POINTS;
pub mod scale;

use crate::diag::{line_of, under, ConfigErrors, Diagnostic, Path, Problem};
use crate::fault::profile::Section;
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

/// The keys `mock --scenario` reads (other keys are the whole file's business).
#[derive(Debug, Deserialize)]
struct ProvidersOnly {
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    providers: BTreeMap<String, ProviderSpec>,
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
#[allow(clippy::disallowed_methods)] // the scenario loader
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
    let doc: toml_edit::DocumentMut = src.parse().map_err(|e| ConfigErrors::syntax(src, file, &e))?;
    let (seed, out, errors) = providers_from_doc(file, src, &doc, dir);
    if errors.is_empty() {
        Ok((seed, out))
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The providers of a parsed scenario, with their profiles read and checked: the seed,
/// the providers that are fine, and every problem (in this file and in profile files).
fn providers_from_doc(
    file: &str,
    src: &str,
    doc: &toml_edit::DocumentMut,
    dir: &std::path::Path,
) -> (Option<u64>, Vec<ResolvedProvider>, Vec<Diagnostic>) {
    let (parsed, problems) = crate::diag::deserialize_all::<ProvidersOnly>(doc);
    let mut errors = ConfigErrors::located(src, file, problems);
    let mut out = Vec::new();
    let Some(parsed) = parsed else {
        return (None, out, errors);
    };
    let has_providers = doc
        .get("providers")
        .and_then(|p| p.as_table_like())
        .is_some_and(|t| !t.is_empty());
    if !has_providers {
        errors.push(Diagnostic {
            file: file.to_string(),
            line: None,
            path: "providers".into(),
            message: "no [providers.<name>] table: nothing to serve".into(),
        });
    }
    let mut local = Vec::new();
    for (name, spec) in parsed.providers {
        let base = Path::root().key("providers").key(&name);
        let mut profile = match &spec.profile {
            Some(p) => {
                let full = dir.join(p);
                match Profile::load(&full) {
                    Ok(p) => p,
                    Err(ConfigErrors(mut es)) => {
                        errors.push(Diagnostic {
                            file: file.to_string(),
                            line: line_of(src, &base.key("profile")),
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
        let from_file = profile.phases.len();
        let inline_baseline = spec.baseline.is_some();
        if let Some(b) = spec.baseline.clone() {
            profile.baseline = b;
        }
        profile.phases.extend(spec.phases.iter().cloned());
        for (p, m) in profile.problems() {
            // the profile file was checked on its own: what is left is in this file's
            // inline parts, whose phases come after the file's
            let rel = match p.0.as_slice() {
                [crate::diag::Seg::Key(k), crate::diag::Seg::Index(i), rest @ ..] if k == "phase" => {
                    let mut q = Path::root().key("phase").index(i.saturating_sub(from_file));
                    q.0.extend(rest.iter().cloned());
                    q
                }
                [crate::diag::Seg::Key(k), ..] if k == "baseline" && !inline_baseline => Path::root().key("profile"),
                _ => p.clone(),
            };
            let mut sp = base.clone();
            sp.0.extend(rel.0);
            local.push((sp, m));
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
    errors.extend(ConfigErrors::located(src, file, local));
    (parsed.seed, out, errors)
}

pub use crate::analysis::budget::SloConfig;

/// `[gateway]`: the reference gateway in-process, or an external gateway process.
#[derive(Clone, Debug)]
pub enum GatewaySpec {
    /// `kind = "builtin"` (default): the reference gateway's policy; its targets are the
    /// scenario's providers, wired to the mocks' addresses by the live driver.
    Builtin(Box<crate::gateway::GatewayConfig>),
    /// `kind = "external"`: a process launched with a rendered config.
    External(Box<crate::scenario::external::ExternalSpec>),
    /// `kind = "running"`: a gateway that already runs; chaosgate starts only the mocks.
    Running(Box<crate::scenario::external::RunningSpec>),
}

impl GatewaySpec {
    /// The builtin gateway's config, if that is what this is.
    pub fn builtin(&self) -> Option<&crate::gateway::GatewayConfig> {
        match self {
            GatewaySpec::Builtin(g) => Some(g),
            GatewaySpec::External(_) | GatewaySpec::Running(_) => None,
        }
    }
    /// `builtin`, `external` or `running`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewaySpec::Builtin(_) => "builtin",
            GatewaySpec::External(_) => "external",
            GatewaySpec::Running(_) => "running",
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
    /// The traffic, resolved once when the scenario loaded (mix and trace files read).
    pub plan: std::sync::Arc<crate::traffic::TrafficPlan>,
    /// SLO.
    pub slo: SloConfig,
    /// Detection settings.
    pub detection: crate::analysis::resilience::DetectionConfig,
    /// `[[assert]]`s of the file.
    pub asserts: Vec<crate::analysis::assert::Assertion>,
    /// The factor every scenario time was multiplied by (1 = real time).
    pub time_scale: f64,
    /// `--repeat`: how far fault onsets are spread over the runs (default: the builtin
    /// gateway's health-check interval, so onsets cover every phase of its probe cycle).
    pub onset_spread: Option<crate::time::Dur>,
    /// Things worth saying in the report (what time scaling could not reach, …).
    pub warnings: Vec<String>,
    /// `[cost] prices`: the price table, if the scenario prices its traffic.
    pub prices: Option<crate::analysis::cost::PriceTable>,
    /// Directory of the file (paths in it are relative to it).
    pub dir: std::path::PathBuf,
}

impl Scenario {
    /// Changes the `[traffic]` table with `f` and rebuilds the plan's source from it (the
    /// mix and any trace already read are kept): the plan is what runs, so an edit of
    /// `traffic` alone would change nothing.
    pub fn edit_traffic(&mut self, f: impl FnOnce(&mut crate::traffic::TrafficConfig)) {
        f(&mut self.traffic);
        let trace = match &self.plan.source {
            crate::traffic::Source::Trace(t, _) => Some(t.clone()),
            _ => None,
        };
        let source = self.traffic.source_with(trace);
        self.plan = std::sync::Arc::new(crate::traffic::TrafficPlan {
            mix: self.plan.mix.clone(),
            source,
        });
    }

    /// The builtin gateway's config, or an error saying this scenario's is another kind.
    pub fn builtin_gateway(&self) -> anyhow::Result<&crate::gateway::GatewayConfig> {
        self.gateway.builtin().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the simulator runs the reference gateway's policy; this scenario's gateway is {} (use `chaosgate run`)",
                self.file,
                self.gateway.kind()
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
    asserts: Vec<crate::analysis::assert::AssertSpec>,
    #[serde(default)]
    sweep: Option<toml::Table>,
    #[serde(default)]
    cost: Option<CostConfig>,
}

/// `[cost]`: what the run's traffic cost, per provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostConfig {
    /// Price table file (relative to the scenario; see `chaosgate::analysis::cost`).
    prices: std::path::PathBuf,
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
    load_with(path, sets, &[])
}

/// [`load`] with `--sweep PATH=V1,V2,…` axes added to (or replacing those of) `[sweep]`.
#[allow(clippy::disallowed_methods)] // the scenario loader
pub fn load_with(path: &std::path::Path, sets: &[String], sweeps: &[String]) -> Result<ScenarioSet, ConfigErrors> {
    let file = path.display().to_string();
    let src = crate::diag::read_config(path)?;
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    load_str_with(&file, &src, &dir, sets, sweeps)
}

/// [`load`] from text (`file` names it in diagnostics; `dir` resolves relative paths).
pub fn load_str(file: &str, src: &str, dir: &std::path::Path, sets: &[String]) -> Result<ScenarioSet, ConfigErrors> {
    load_str_with(file, src, dir, sets, &[])
}

/// [`load_str`] with `--sweep` axes.
pub fn load_str_with(
    file: &str,
    src: &str,
    dir: &std::path::Path,
    sets: &[String],
    sweeps: &[String],
) -> Result<ScenarioSet, ConfigErrors> {
    let mut doc: toml_edit::DocumentMut = src.parse().map_err(|e: toml_edit::TomlError| {
        ConfigErrors(vec![Diagnostic {
            file: file.to_string(),
            line: e.span().map(|s| crate::diag::line_of_offset(src, s.start)),
            path: String::new(),
            message: e.message().trim().to_string(),
        }])
    })?;
    apply_overrides(&mut doc, sets, sweeps)?;
    let axes = overrides::sweep_axes(&doc).map_err(|(p, m)| {
        ConfigErrors(vec![Diagnostic {
            file: file.to_string(),
            line: line_of(src, &p).or(Some(1)),
            path: String::new(),
            message: m,
        }])
    })?;
    let matrix = overrides::matrix(&axes);
    let base_text = if sets.is_empty() {
        src.to_string()
    } else {
        doc.to_string()
    };
    let mut errors = Vec::new();
    if !axes.is_empty() {
        swept_base_problems(file, &base_text, dir, sets, &axes, &mut errors);
    }
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
                        line: line_of(src, &Path::root().key("sweep").key(&o.path)).or(Some(1)),
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

/// `--sweep` axes added to `doc`, then `--set` overrides applied; every one that fails is
/// an error naming the flag.
fn apply_overrides(doc: &mut toml_edit::DocumentMut, sets: &[String], sweeps: &[String]) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for s in sweeps {
        if let Err(m) = overrides::add_sweep_axis(doc, s) {
            errors.push(Diagnostic {
                file: "--sweep".into(),
                line: None,
                path: String::new(),
                message: m,
            });
        }
    }
    for s in sets {
        match overrides::Override::parse(s).and_then(|o| overrides::apply(doc, &o)) {
            Ok(()) => {}
            Err(m) => errors.push(Diagnostic {
                file: "--set".into(),
                line: None,
                path: String::new(),
                message: m,
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// A swept key's value in the file (or from `--set`) is replaced in every point, so no
/// point would see it: the base document is checked like any other, and its problems at
/// a swept key go to `errors`.
fn swept_base_problems(
    file: &str,
    base_text: &str,
    dir: &std::path::Path,
    sets: &[String],
    axes: &[overrides::Axis],
    errors: &mut Vec<Diagnostic>,
) {
    let swept: Vec<Path> = axes.iter().map(|(p, _)| Path::root().join(p)).collect();
    if let Err(ConfigErrors(es)) = parse_one(file, file, base_text, dir) {
        for e in es {
            let at = Path::root().join(&e.path);
            let is_set = sets
                .iter()
                .any(|s| s.split('=').next().is_some_and(|k| Path::root().join(k.trim()) == at));
            if e.file == file && swept.iter().any(|s| at.starts_with(s)) && !errors.contains(&e) {
                let mut e = e;
                if is_set {
                    e.message = format!("{} (a swept key: every value is checked, the --set one too)", e.message);
                }
                errors.push(e);
            }
        }
    }
}

/// `[gateway]` alone, for parsing it (other keys are ignored here).
#[derive(Deserialize)]
struct GatewayOnly<G> {
    gateway: G,
}

/// A target name no provider can have (stands in for a target entry that is wrong).
fn placeholder_target(i: usize) -> String {
    format!("\u{0}invalid target {i}")
}

fn parse_one(label: &str, file: &str, src: &str, dir: &std::path::Path) -> Result<Scenario, ConfigErrors> {
    let tdoc: toml_edit::DocumentMut = src.parse().map_err(|e| ConfigErrors::syntax(src, label, &e))?;
    // problems located in this file, by path
    let mut problems: Vec<Problem> = Vec::new();
    let (parsed, ps) = crate::diag::deserialize_all::<ScenarioFile>(&tdoc);
    problems.extend(ps);
    let (_, mut providers, mut errors) = providers_from_doc(label, src, &tdoc, dir);
    let provider_keys: Vec<String> = tdoc
        .get("providers")
        .and_then(|p| p.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    // as before: without `targets`, the providers in name order
    let mut provider_keys = provider_keys;
    provider_keys.sort();
    let gateway = parse_gateway(&tdoc, &provider_keys, &mut problems);
    let Some(doc) = parsed else {
        errors.extend(ConfigErrors::located(src, label, problems));
        return Err(ConfigErrors(errors));
    };
    let _ = (&doc.description, &doc.sweep, &doc.providers, &doc.gateway);
    let (mix, trace) = read_traffic(&doc.traffic, dir, &mut problems, &mut errors);
    let time_scale = settings_problems(&doc, &mut problems);
    let asserts = resolve_asserts(&doc.asserts, &mut problems);
    let prices = read_prices(doc.cost.as_ref(), dir, &mut problems, &mut errors);
    problems.extend(fixed_address_problems(gateway.as_ref(), &providers));
    if !problems.is_empty() || !errors.is_empty() {
        // this file's problems first, in file order, then those of the files it names
        let mut all = ConfigErrors::located(src, label, problems);
        all.append(&mut errors);
        all.sort_by_key(|d| (d.file != label, if d.file == label { d.line } else { None }));
        return Err(ConfigErrors(all));
    }
    let Some(mut gateway) = gateway else {
        return Err(ConfigErrors(vec![Diagnostic {
            file: label.to_string(),
            line: line_of(src, &Path::root().key("gateway")),
            path: "gateway".into(),
            message: "no usable [gateway] table".into(),
        }]));
    };
    let name = doc.name.clone().unwrap_or_else(|| {
        std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut traffic = doc.traffic;
    let mut onset_spread = doc.onset_spread;
    let mut warnings = exposed_address_warnings(&providers);
    warnings.extend(apply_time_scale(
        time_scale,
        &mut providers,
        &mut traffic,
        &mut onset_spread,
        &mut gateway,
    ));
    check_run_length(label, src, time_scale, &traffic)?;
    let plan = crate::traffic::TrafficPlan {
        mix: mix.expect("no problems means the mix was built"),
        source: traffic.source_with(trace),
    };
    Ok(Scenario {
        name,
        file: label.to_string(),
        seed: doc.seed,
        providers,
        gateway,
        plan: std::sync::Arc::new(plan),
        traffic,
        slo: doc.slo,
        detection: doc.detection,
        asserts,
        time_scale,
        onset_spread,
        warnings,
        prices,
        dir: dir.to_path_buf(),
    })
}

/// A running gateway's config names the mocks' addresses: they must not move.
fn fixed_address_problems(gateway: Option<&GatewaySpec>, providers: &[ResolvedProvider]) -> Vec<Problem> {
    let Some(GatewaySpec::Running(_)) = gateway else {
        return Vec::new();
    };
    providers
        .iter()
        .filter(|p| p.listen.ends_with(":0"))
        .map(|p| {
            (
                Path::root().key("providers").key(&p.name),
                format!(
                    "a running gateway reaches the mocks at fixed addresses: give provider {:?} a `port` (e.g. port = 9001) and put http://127.0.0.1:9001 in the gateway's config",
                    p.name
                ),
            )
        })
        .collect()
}

/// A warning for each provider that listens beyond this machine.
fn exposed_address_warnings(providers: &[ResolvedProvider]) -> Vec<String> {
    providers
        .iter()
        .filter(|p| !is_loopback(&p.listen))
        .map(|p| {
            format!(
                "provider {} listens on {}: reachable from other machines (as a gateway in a container needs); the mock has no authentication",
                p.name, p.listen
            )
        })
        .collect()
}

/// The `[traffic]` table's problems, and its mix and trace files read and checked now,
/// once, with their own lines (a broken file: a problem at its key here, its own
/// diagnostics in `errors`).
fn read_traffic(
    traffic: &crate::traffic::TrafficConfig,
    dir: &std::path::Path,
    problems: &mut Vec<Problem>,
    errors: &mut Vec<Diagnostic>,
) -> (Option<crate::traffic::Mix>, Option<crate::traffic::Trace>) {
    let key = |k: &str| Path::root().key(k);
    problems.extend(under(&key("traffic"), traffic.problems()));
    let kinds = match traffic.load_kinds(dir) {
        Ok(k) => Some(k),
        Err(ConfigErrors(mut es)) => {
            problems.push((key("traffic").key("mix"), "mix file is invalid (below)".into()));
            errors.append(&mut es);
            None
        }
    };
    let api = traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mix = kinds.and_then(|k| match crate::traffic::Mix::new(k, api) {
        Ok(m) => Some(m),
        Err(m) => {
            problems.push((key("traffic"), m));
            None
        }
    });
    let trace = match traffic.read_trace(dir) {
        Ok(t) => t,
        Err(ConfigErrors(mut es)) => {
            problems.push((key("traffic").key("trace"), "trace file is invalid (below)".into()));
            errors.append(&mut es);
            None
        }
    };
    if let (Some(t), Some(m), Some(p)) = (&trace, &mix, &traffic.trace) {
        if let Err(ConfigErrors(mut es)) = t.check_kinds(m, &dir.join(p).display().to_string()) {
            problems.push((key("traffic").key("trace"), "trace file is invalid (below)".into()));
            errors.append(&mut es);
        }
    }
    (mix, trace)
}

/// `[slo]`, `[detection]`, `onset_spread` and `time_scale` checked; the time scale (1 when
/// not given).
fn settings_problems(doc: &ScenarioFile, problems: &mut Vec<Problem>) -> f64 {
    let key = |k: &str| Path::root().key(k);
    problems.extend(under(&key("slo"), doc.slo.problems()));
    let d = &doc.detection;
    if !(d.share_threshold > 0.0 && d.share_threshold < 1.0) {
        problems.push((
            key("detection").key("share_threshold"),
            format!("must be in (0, 1), got {}", d.share_threshold),
        ));
    }
    for (k, v) in [("hold", d.hold), ("baseline", d.baseline)] {
        if v.0 == 0 {
            problems.push((key("detection").key(k), "must be longer than 0s".into()));
        } else if v.0 > crate::diag::limits::MAX_DURATION.0 {
            problems.push((
                key("detection").key(k),
                format!("must be at most {}, got {v}", crate::diag::limits::MAX_DURATION),
            ));
        }
    }
    if let Some(o) = doc.onset_spread {
        if o.0 > crate::diag::limits::MAX_DURATION.0 {
            problems.push((
                key("onset_spread"),
                format!("must be at most {}, got {o}", crate::diag::limits::MAX_DURATION),
            ));
        }
    }
    let time_scale = doc.time_scale.unwrap_or(1.0);
    if !(time_scale.is_finite()
        && (crate::diag::limits::MIN_TIME_SCALE..=crate::diag::limits::MAX_TIME_SCALE).contains(&time_scale))
    {
        problems.push((
            key("time_scale"),
            format!(
                "must be a number in [{}, {}] (0.1 = ten times faster), got {time_scale}",
                crate::diag::limits::MIN_TIME_SCALE,
                crate::diag::limits::MAX_TIME_SCALE
            ),
        ));
    }
    time_scale
}

/// The `[[assert]]`s resolved; each one that is not an assertion is a problem at its index.
fn resolve_asserts(
    specs: &[crate::analysis::assert::AssertSpec],
    problems: &mut Vec<Problem>,
) -> Vec<crate::analysis::assert::Assertion> {
    let mut asserts = Vec::new();
    for (i, a) in specs.iter().enumerate() {
        match a.resolve() {
            Ok(a) => asserts.push(a),
            Err(m) => problems.push((Path::root().key("assert").index(i), m)),
        }
    }
    asserts
}

/// `[cost] prices`: the price table read and checked, if the scenario prices its traffic.
fn read_prices(
    cost: Option<&CostConfig>,
    dir: &std::path::Path,
    problems: &mut Vec<Problem>,
    errors: &mut Vec<Diagnostic>,
) -> Option<crate::analysis::cost::PriceTable> {
    match cost {
        None => None,
        Some(c) => match crate::analysis::cost::PriceTable::load(&dir.join(&c.prices)) {
            Ok(t) => Some(t),
            Err(ConfigErrors(mut es)) => {
                problems.push((
                    Path::root().key("cost").key("prices"),
                    format!("price table {} is invalid (below)", dir.join(&c.prices).display()),
                ));
                errors.append(&mut es);
                None
            }
        },
    }
}

/// Every time of the scenario × `time_scale` (nothing when it is 1); warnings for what an
/// external gateway cannot scale.
fn apply_time_scale(
    time_scale: f64,
    providers: &mut [ResolvedProvider],
    traffic: &mut crate::traffic::TrafficConfig,
    onset_spread: &mut Option<crate::time::Dur>,
    gateway: &mut GatewaySpec,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if time_scale != 1.0 {
        for p in providers.iter_mut() {
            scale::profile(&mut p.profile, time_scale);
        }
        scale::traffic(traffic, time_scale);
        *onset_spread = onset_spread.map(|d| scale::dur(d, time_scale));
        match gateway {
            GatewaySpec::Builtin(g) => scale::gateway(g, time_scale),
            GatewaySpec::External(x) => warnings.extend(scale::external(x, time_scale)),
            GatewaySpec::Running(x) => warnings.extend(scale::running(x, time_scale)),
        }
    }
    warnings
}

/// time_scale stretches or shrinks the whole run: its scaled length is bounded too.
fn check_run_length(
    label: &str,
    src: &str,
    time_scale: f64,
    traffic: &crate::traffic::TrafficConfig,
) -> Result<(), ConfigErrors> {
    let run_ns = match (traffic.duration, traffic.stages.is_empty()) {
        (Some(d), _) => d.0,
        (None, false) => traffic.stages.iter().fold(0u64, |a, s| a.saturating_add(s.duration.0)),
        (None, true) => 0,
    };
    let max_run = crate::diag::limits::MAX_RUN;
    if run_ns > max_run.0 {
        return Err(ConfigErrors(vec![Diagnostic {
            file: label.to_string(),
            line: line_of(src, &Path::root().key("time_scale")).or(Some(1)),
            path: "time_scale".into(),
            message: format!(
                "time_scale {time_scale} makes the run {} long; at most {max_run}",
                crate::time::Dur(run_ns)
            ),
        }]));
    }
    Ok(())
}

/// Whether a listen address stays on this machine (`127.x`, `localhost`, `[::1]`).
fn is_loopback(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `[gateway]`: builtin (targets named by provider), external or running; problems go to
/// `problems`.
fn parse_gateway(
    tdoc: &toml_edit::DocumentMut,
    provider_keys: &[String],
    problems: &mut Vec<Problem>,
) -> Option<GatewaySpec> {
    let gpath = Path::root().key("gateway");
    let mut g = tdoc.clone();
    let table = g.get_mut("gateway")?.as_table_like_mut()?;
    let kind = table.remove("kind");
    let kind_str = kind.as_ref().map(|k| k.as_str());
    not_started_here(table, kind_str.flatten().unwrap_or("builtin"), &gpath, problems);
    match kind_str {
        None | Some(Some("builtin")) => {
            let bad = builtin_targets(table, provider_keys, &gpath, problems);
            parse_builtin(g, &gpath, &bad, problems)
        }
        Some(Some("external")) => {
            let (x, ps) = crate::diag::deserialize_all::<GatewayOnly<crate::scenario::external::ExternalSpec>>(&g);
            problems.extend(ps);
            let x = x?.gateway;
            problems.extend(under(&gpath, x.problems()));
            Some(GatewaySpec::External(Box::new(x)))
        }
        Some(Some("running")) => {
            let (x, ps) = crate::diag::deserialize_all::<GatewayOnly<crate::scenario::external::RunningSpec>>(&g);
            problems.extend(ps);
            let x = x?.gateway;
            problems.extend(under(&gpath, x.problems()));
            Some(GatewaySpec::Running(Box::new(x)))
        }
        Some(other) => {
            problems.push((
                gpath.key("kind"),
                format!(
                    "unknown gateway kind {}: expected \"builtin\", \"external\" or \"running\"",
                    other.map_or_else(
                        || kind
                            .as_ref()
                            .map(|k| k.to_string().trim().to_string())
                            .unwrap_or_default(),
                        |s| format!("{s:?}")
                    )
                ),
            ));
            None
        }
    }
}

/// What a gateway kind cannot have, taken out of `table` and reported: `redis` on the
/// builtin gateway (its replicas share nothing, by design), `replicas` and `redis` on a
/// running gateway (the user starts it, not chaosgate). A `false` / `1` is let through.
fn not_started_here(table: &mut dyn toml_edit::TableLike, kind: &str, gpath: &Path, problems: &mut Vec<Problem>) {
    let redis_on = |i: &toml_edit::Item| i.as_bool() != Some(false);
    match kind {
        "builtin" => {
            if table.get("redis").is_some_and(redis_on) {
                problems.push((
                    gpath.key("redis"),
                    "the builtin gateway's replicas share no state (each has its own health, breakers and router): `redis` is for external gateways (kind = \"external\") that keep shared state in Redis".into(),
                ));
            }
            table.remove("redis");
        }
        "running" => {
            if table.get("replicas").is_some_and(|i| i.as_integer() != Some(1)) {
                problems.push((
                    gpath.key("replicas"),
                    "a running gateway is started by you, not by chaosgate: run its replicas yourself behind base_url (or use kind = \"external\", which starts `replicas` instances)".into(),
                ));
            }
            if table.get("redis").is_some_and(redis_on) {
                problems.push((
                    gpath.key("redis"),
                    "a running gateway is started by you, not by chaosgate: start its Redis yourself (kind = \"external\" can start one with redis = true)".into(),
                ));
            }
            table.remove("replicas");
            table.remove("redis");
        }
        _ => {}
    }
}

/// The builtin gateway's `targets` made a list of tables `{ name = "…", … }` in place:
/// each target a provider name or such a table (absent: every provider, in name order).
/// A wrong entry is reported and stands in as a placeholder, so indices stay put; the
/// indices of those entries (`usize::MAX`: the whole list) are returned.
fn builtin_targets(
    table: &mut dyn toml_edit::TableLike,
    provider_keys: &[String],
    gpath: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<usize> {
    use toml_edit::{Item, Value};
    let mut bad: Vec<usize> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    match table.get_mut("targets") {
        None => {
            let mut a = toml_edit::Array::new();
            for n in provider_keys {
                let mut t = toml_edit::InlineTable::new();
                t.insert("name", n.as_str().into());
                a.push(t);
                names.push(n.clone());
            }
            table.insert("targets", toml_edit::value(a));
        }
        Some(Item::Value(Value::Array(a))) => {
            for i in 0..a.len() {
                let x = a.get_mut(i).expect("in range");
                match x {
                    Value::String(n) => {
                        let n = n.value().clone();
                        let mut t = toml_edit::InlineTable::new();
                        t.insert("name", n.as_str().into());
                        *x = Value::InlineTable(t);
                        names.push(n);
                    }
                    Value::InlineTable(t) => names.push(target_table(i, t, gpath, &mut bad, problems)),
                    _ => {
                        problems.push((
                            gpath.key("targets").index(i),
                            "expected a provider name or a table { name = \"…\", … }".into(),
                        ));
                        bad.push(i);
                        let mut t = toml_edit::InlineTable::new();
                        t.insert("name", placeholder_target(i).into());
                        *x = Value::InlineTable(t);
                        names.push(placeholder_target(i));
                    }
                }
            }
        }
        Some(Item::ArrayOfTables(a)) => {
            for (i, t) in a.iter_mut().enumerate() {
                names.push(target_table(i, t, gpath, &mut bad, problems));
            }
        }
        Some(other) => {
            problems.push((
                gpath.key("targets"),
                "must be a list of provider names in priority order".into(),
            ));
            *other = toml_edit::value(toml_edit::Array::new());
            bad.push(usize::MAX);
        }
    }
    for (i, n) in names.iter().enumerate() {
        if !bad.contains(&i) && !provider_keys.contains(n) {
            problems.push((
                gpath.key("targets").index(i),
                format!(
                    "target {n:?} is not a provider (providers: {})",
                    provider_keys.join(", ")
                ),
            ));
        }
    }
    bad
}

/// Target `i` given as a table: its provider name, or (no `name`, or a `url`) a problem
/// and a placeholder name.
fn target_table(
    i: usize,
    t: &mut dyn toml_edit::TableLike,
    gpath: &Path,
    bad: &mut Vec<usize>,
    problems: &mut Vec<Problem>,
) -> String {
    let name = t.get("name").and_then(|n| n.as_str()).map(str::to_string);
    match name {
        Some(n) if !t.contains_key("url") => n,
        _ => {
            problems.push((
                gpath.key("targets").index(i),
                "a target table needs `name` (a provider) and no `url` (chaosgate binds the mocks)".into(),
            ));
            bad.push(i);
            t.insert("name", toml_edit::value(placeholder_target(i)));
            t.remove("url");
            placeholder_target(i)
        }
    }
}

/// The builtin gateway's policy from `g` (its targets already tables), with every problem
/// at its own key; those under a wrong target entry (`bad`) are not reported again.
fn parse_builtin(
    mut g: toml_edit::DocumentMut,
    gpath: &Path,
    bad: &[usize],
    problems: &mut Vec<Problem>,
) -> Option<GatewaySpec> {
    problems.extend(crate::gateway::breaker::breaker_key_problems(&mut g, gpath));
    let (g, ps) = crate::diag::deserialize_all::<GatewayOnly<crate::gateway::GatewayConfig>>(&g);
    problems.extend(ps);
    let g = g?.gateway;
    for (p, m) in under(gpath, g.problems()) {
        let at_bad = bad.iter().any(|&i| p.starts_with(&gpath.key("targets").index(i)))
            || (bad.contains(&usize::MAX) && p.starts_with(&gpath.key("targets")));
        if !at_bad {
            problems.push((p, m));
        }
    }
    Some(GatewaySpec::Builtin(Box::new(g)))
}
