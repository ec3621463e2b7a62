//! Runs entries against a gateway — simulated for the built-in gateway, live otherwise —
//! and folds each entry's runs into its verdict.

use super::entry::{Best, Entry};
use super::merge::{self, GatewayScenario};
use super::verdict::{self, Figures, Judgement, Verdict};
use crate::analysis::results::RunReport;
use crate::run::RunOptions;
use serde::Serialize;
use std::collections::BTreeMap;

/// How to run a suite.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// The gateway under test.
    pub gateway: GatewayScenario,
    /// `--set` overrides, applied to every entry after its own.
    pub sets: Vec<String>,
    /// Run a built-in gateway live instead of simulated.
    pub live: bool,
    /// Runs per entry (seeds seed, seed + 1, …).
    pub repeat: usize,
    /// Seed of the first run (default: the gateway scenario's, else 1).
    pub seed: Option<u64>,
    /// Entries run at once.
    pub jobs: usize,
    /// Live runs: where each entry's run directory goes.
    pub run_dir: std::path::PathBuf,
    /// Run work past chaosgate's limits.
    pub allow_large: bool,
    /// A line per finished entry on stderr.
    pub progress: bool,
}

/// One entry's result.
#[derive(Clone, Debug, Serialize)]
pub struct EntryResult {
    /// Entry name.
    pub name: String,
    /// One line.
    pub title: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The reports it models.
    pub reports: Vec<String>,
    /// The best verdict a gateway can get on it.
    pub best: Best,
    /// The worst verdict over its runs.
    pub verdict: Verdict,
    /// Whether `verdict` is as good as the entry allows.
    pub meets_best: bool,
    /// How many runs got each verdict.
    pub verdicts: BTreeMap<Verdict, usize>,
    /// Per run (seed order): the verdict, why, and the figures behind it.
    pub runs: Vec<RunResult>,
    /// Why the entry could not run (verdict `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The command that reruns this entry alone.
    pub command: String,
}

/// One run of an entry.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Its seed.
    pub seed: u64,
    /// Verdict and reasons.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// The figures.
    pub figures: Figures,
    /// The run's warnings (requests in flight at the end, time scaling, …).
    pub warnings: Vec<String>,
}

/// Every entry's result.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    /// chaosgate's version.
    pub chaosgate: String,
    /// The gateway scenario.
    pub gateway: String,
    /// Its `[gateway] kind`.
    pub gateway_kind: String,
    /// `sim` or `live`.
    pub mode: String,
    /// Seed of the first run of every entry.
    pub seed: u64,
    /// Runs per entry.
    pub repeat: usize,
    /// The entries, in catalogue order.
    pub entries: Vec<EntryResult>,
    /// Entries per verdict.
    pub totals: BTreeMap<Verdict, usize>,
    /// Interrupted: the entries that ran.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl SuiteReport {
    /// Whether every entry got its best verdict.
    pub fn all_best(&self) -> bool {
        self.entries.iter().all(|e| e.meets_best)
    }
}

/// The verdict and figures of one run report.
pub fn judge_run(entry: &Entry, r: &RunReport, seed: u64) -> RunResult {
    let figures = verdict::figures(r);
    let json = serde_json::to_value(r).unwrap_or_default();
    let checks: Vec<_> = entry
        .checks
        .iter()
        .map(|(a, v)| {
            let c = a.check(&json);
            let text = if c.passed {
                c.assertion
            } else {
                format!("{} ({})", c.assertion, c.message)
            };
            (c.passed, text, *v)
        })
        .collect();
    RunResult {
        seed,
        judgement: verdict::judge(entry, &figures, &checks),
        figures,
        warnings: r.warnings.clone(),
    }
}

fn fold(entry: &Entry, runs: Vec<RunResult>, error: Option<String>, command: String) -> EntryResult {
    let mut verdicts = BTreeMap::new();
    for r in &runs {
        *verdicts.entry(r.judgement.verdict).or_insert(0) += 1;
    }
    let verdict = if error.is_some() {
        Verdict::Error
    } else {
        runs.iter().map(|r| r.judgement.verdict).max().unwrap_or(Verdict::Error)
    };
    EntryResult {
        name: entry.name.clone(),
        title: entry.title.clone(),
        tags: entry.tags.clone(),
        reports: entry.reports.clone(),
        best: entry.best,
        meets_best: verdict.meets(entry.best),
        verdict,
        verdicts,
        runs,
        error,
        command,
    }
}

/// Whether the suite runs simulated (the gateway is built in and `--live` is off).
pub fn simulated(o: &SuiteOptions) -> Result<bool, String> {
    let doc = merge::gateway_document(&o.gateway)?;
    Ok(kind_of(&doc) == "builtin" && !o.live)
}

fn kind_of(doc: &toml_edit::DocumentMut) -> String {
    doc.get("gateway")
        .and_then(|g| g.get("kind"))
        .and_then(|k| k.as_str())
        .unwrap_or("builtin")
        .to_string()
}

fn progress_line(o: &SuiteOptions, done: usize, total: usize, e: &EntryResult) {
    if o.progress {
        let why = e
            .error
            .clone()
            .or_else(|| e.runs.iter().find_map(|r| r.judgement.reasons.first().cloned()))
            .unwrap_or_default();
        eprintln!(
            "suite: [{done}/{total}] {:<28} {:<8}{}",
            e.name,
            e.verdict.as_str(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" — {why}")
            }
        );
    }
}

/// Runs `entries` in the simulator, `o.jobs` at a time; results in catalogue order.
pub fn run_simulated(
    entries: &[Entry],
    o: &SuiteOptions,
    command: &(dyn Fn(&Entry) -> String + Sync),
) -> Result<SuiteReport, String> {
    let doc = merge::gateway_document(&o.gateway)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<EntryResult>>> =
        entries.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..o.jobs.clamp(1, entries.len().max(1)) {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(e) = entries.get(i) else { break };
                let r = simulate_entry(e, o, &doc, command(e));
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress_line(o, d, entries.len(), &r);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    let entries = results
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    Ok(report(o, &doc, "sim", entries, false))
}

fn run_options(o: &SuiteOptions, dir: std::path::PathBuf, seed: u64) -> RunOptions {
    let mut r = RunOptions::new(dir);
    r.seed = Some(seed);
    r.jobs = 1;
    r.progress = false;
    r.command = "suite";
    r.allow_in_flight = true; // in-flight requests are hangs: the verdict reads them
    r.allow_large = o.allow_large;
    r
}

fn base_seed(o: &SuiteOptions, set: &crate::scenario::ScenarioSet) -> u64 {
    o.seed.or(set.points[0].scenario.seed).unwrap_or(1)
}

fn simulate_entry(e: &Entry, o: &SuiteOptions, doc: &toml_edit::DocumentMut, command: String) -> EntryResult {
    let set = match merge::scenario(e, &o.gateway, doc, &o.sets) {
        Ok(s) => s,
        Err(m) => return fold(e, Vec::new(), Some(m), command),
    };
    let seed0 = base_seed(o, &set);
    let mut runs = Vec::new();
    for k in 0..o.repeat.max(1) {
        let seed = seed0.wrapping_add(k as u64);
        match crate::run::simulate(&set, &run_options(o, o.run_dir.clone(), seed)) {
            Ok(sw) => match sw.points.into_iter().next() {
                Some(p) => runs.push(judge_run(e, &p.report, seed)),
                None => return fold(e, runs, Some("the simulation produced no report".into()), command),
            },
            Err(err) => return fold(e, runs, Some(format!("{err:#}")), command),
        }
    }
    fold(e, runs, None, command)
}

/// Runs `entries` live, `o.jobs` at a time (a gateway that is already running: one at a
/// time); results in catalogue order. Ctrl-C stops the entries running; the report holds
/// what finished (partial).
pub async fn run_live(
    entries: &[Entry],
    o: &SuiteOptions,
    command: &(dyn Fn(&Entry) -> String + Sync),
) -> Result<SuiteReport, String> {
    let doc = merge::gateway_document(&o.gateway)?;
    let jobs = if kind_of(&doc) == "running" { 1 } else { o.jobs.max(1) };
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    let total = entries.len();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (i, e) in entries.iter().enumerate() {
        let set = merge::scenario(e, &o.gateway, &doc, &o.sets);
        let (e, o2, sem, done, stop, cmd) = (
            e.clone(),
            o.clone(),
            sem.clone(),
            done.clone(),
            stop.clone(),
            command(e),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return (i, None);
            }
            let r = match set {
                Err(m) => fold(&e, Vec::new(), Some(m), cmd),
                Ok(set) => live_entry(&e, &o2, set, cmd, &stop).await,
            };
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress_line(&o2, d, total, &r);
            (i, Some(r))
        });
    }
    let mut results: Vec<Option<EntryResult>> = vec![None; total];
    while let Some(j) = tasks.join_next().await {
        match j {
            Ok((i, r)) => results[i] = r,
            Err(err) => return Err(format!("an entry's task failed: {err}")),
        }
    }
    let partial = stop.load(std::sync::atomic::Ordering::Relaxed);
    let entries = results.into_iter().flatten().collect();
    Ok(report(o, &doc, "live", entries, partial))
}

async fn live_entry(
    e: &Entry,
    o: &SuiteOptions,
    set: crate::scenario::ScenarioSet,
    command: String,
    stop: &std::sync::atomic::AtomicBool,
) -> EntryResult {
    let seed0 = base_seed(o, &set);
    let mut runs = Vec::new();
    for k in 0..o.repeat.max(1) {
        let seed = seed0.wrapping_add(k as u64);
        let dir = o.run_dir.join(format!("{}-{k}", e.name));
        match crate::run::run_live(&set, &run_options(o, dir, seed)).await {
            Ok(out) => {
                if out.interrupted {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                match out.report.points.into_iter().next() {
                    Some(p) if !out.interrupted => runs.push(judge_run(e, &p.report, seed)),
                    _ => return fold(e, runs, Some("interrupted".into()), command),
                }
            }
            Err(err) => return fold(e, runs, Some(format!("{err:#}")), command),
        }
    }
    fold(e, runs, None, command)
}

fn report(
    o: &SuiteOptions,
    doc: &toml_edit::DocumentMut,
    mode: &str,
    entries: Vec<EntryResult>,
    partial: bool,
) -> SuiteReport {
    let mut totals = BTreeMap::new();
    for e in &entries {
        *totals.entry(e.verdict).or_insert(0) += 1;
    }
    SuiteReport {
        chaosgate: env!("CARGO_PKG_VERSION").to_string(),
        gateway: o.gateway.file.clone(),
        gateway_kind: kind_of(doc),
        mode: mode.into(),
        seed: o
            .seed
            .unwrap_or_else(|| doc.get("seed").and_then(|s| s.as_integer()).map_or(1, |s| s as u64)),
        repeat: o.repeat.max(1),
        entries,
        totals,
        partial,
    }
}
