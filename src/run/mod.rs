//! Scenario runs: every point of a sweep, `--repeat` runs per point, assertions — live
//! (`chaosgate run`) or in virtual time (`chaosgate sim`), one report shape for both.
//!
//! Run k of a point (k = 0 … N−1) uses seed `seed + k` and moves every fault onset
//! `k/N × onset_spread` later (default spread: the builtin gateway's health-check
//! interval), so the runs cover the phases of the probe cycle evenly and min / mean /
//! max detection match the closed form's (docs/semantics.md §1).

// A driver: orchestration drives the live driver (clocks, files, signals) (clippy.toml denies it in the core).
#![allow(clippy::disallowed_methods)]

pub mod limits;
pub mod progress;
pub mod shard;
pub mod sim_shard;
pub mod swarm;

use crate::analysis::assert::Assertion;
use crate::analysis::results::{GatewayInfo, OneRun, PointReport, RunReport, SweepReport};
use crate::scenario::{Scenario, ScenarioSet};
use crate::time::Nanos;

/// How to run a scenario set.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Runs per point (≥ 1).
    pub repeat: usize,
    /// Seed of the first run (default: the scenario's, else 1).
    pub seed: Option<u64>,
    /// `--assert`s, checked on every point besides the file's `[[assert]]`s.
    pub asserts: Vec<Assertion>,
    /// Worker threads for the simulator (default: the machine's cores).
    pub jobs: usize,
    /// Live runs: where run directories go.
    pub run_dir: std::path::PathBuf,
    /// A progress line on a terminal, a status line every few seconds elsewhere
    /// ([`progress`]); off with `--quiet`.
    pub progress: bool,
    /// The command the progress line names (`run`, `sim`, `demo`).
    pub command: &'static str,
    /// Let points with requests in flight at the end pass (`--allow-in-flight`); by
    /// default such a point fails a built-in check.
    pub allow_in_flight: bool,
    /// Run work past the limits of [`crate::run::limits`] (`--allow-large`).
    pub allow_large: bool,
    /// Set to stop a simulation early (Ctrl-C): the runs stop at their next check and the
    /// report is partial.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Keep the incident view of the first run of each point (`--html`;
    /// `analysis/incident.rs`).
    pub incident: bool,
    /// Live runs: the `--metrics-listen` endpoint, fed as the runs go.
    pub metrics: Option<std::sync::Arc<crate::live::exporter::Exporter>>,
    /// Live runs: this process's shard (docs/sharding.md); its recordings are kept in
    /// [`LiveOutcome::recorded`].
    pub shard: Option<crate::traffic::shard::Shard>,
    /// Live runs: the first run's time zero (`--start-at`).
    pub start_at: Option<tokio::time::Instant>,
}

impl RunOptions {
    /// Defaults: one run, the scenario's seed, every core.
    pub fn new(run_dir: std::path::PathBuf) -> RunOptions {
        RunOptions {
            repeat: 1,
            seed: None,
            asserts: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            run_dir,
            progress: false,
            command: "run",
            allow_in_flight: false,
            allow_large: false,
            stop: None,
            incident: false,
            metrics: None,
            shard: None,
            start_at: None,
        }
    }
}

/// The seed of run 0 of `s`.
pub fn base_seed(s: &Scenario, o: &RunOptions) -> u64 {
    o.seed.or(s.seed).unwrap_or(1)
}

/// How far run `k` of `n` moves fault onsets.
pub fn onset_shift(s: &Scenario, k: usize, n: usize) -> Nanos {
    if n <= 1 {
        return 0;
    }
    let spread = s
        .onset_spread
        .map(|d| d.0)
        .or_else(|| {
            s.gateway
                .builtin()
                .and_then(|g| g.health_check.as_ref())
                .map(|h| h.interval.0)
        })
        .unwrap_or(0);
    (spread as u128 * k as u128 / n as u128) as Nanos
}

/// The point's assertions, then the built-in accounting check when requests were still
/// in flight at the end of a run (unless `--allow-in-flight`).
fn checks(
    asserts: &[Assertion],
    allow_in_flight: bool,
    r: &RunReport,
    in_flight: (u64, u64),
) -> (Vec<crate::analysis::assert::Check>, bool) {
    let v = serde_json::to_value(r).unwrap_or_default();
    let mut c: Vec<_> = asserts.iter().map(|a| a.check(&v)).collect();
    if let Some(check) = in_flight_check(in_flight, allow_in_flight) {
        c.push(check);
    }
    let ok = c.iter().all(|c| c.passed);
    (c, ok)
}

/// The built-in check of `(in flight at the end, scheduled)` over a point's runs: failed
/// when any request is unaccounted for, unless allowed.
pub fn in_flight_check((in_flight, scheduled): (u64, u64), allow: bool) -> Option<crate::analysis::assert::Check> {
    (in_flight > 0 && !allow).then(|| crate::analysis::assert::Check {
        assertion: IN_FLIGHT_CHECK.into(),
        passed: false,
        actual: serde_json::json!(in_flight),
        message: format!(
            "{in_flight} of {scheduled} scheduled requests were never accounted for (neither ok nor failed): \
             the figures of this point undercount; --allow-in-flight accepts such runs"
        ),
    })
}

/// The text of the built-in accounting check.
pub const IN_FLIGHT_CHECK: &str = "requests.in_flight_at_end == 0 (built in)";

/// What a sweep's report is built from besides its runs: per point its swept values, its
/// scenario's name and time scale, the assertions checked on it and the scenario's
/// warnings; the axes; `--repeat`; `--allow-in-flight`. A sharded `sim` carries it in its
/// result file so that `chaosgate merge` builds the report exactly as `sim` does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepFrame {
    /// The first point's scenario name.
    pub scenario: String,
    /// The swept paths.
    pub axes: Vec<String>,
    /// Runs per point.
    pub repeat: usize,
    /// `--allow-in-flight`.
    pub allow_in_flight: bool,
    /// The points, in matrix order.
    pub points: Vec<PointFrame>,
}

/// One point of a [`SweepFrame`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointFrame {
    /// The swept values (`path`, value as text), in axis order.
    pub params: Vec<(String, String)>,
    /// Its scenario's name.
    pub scenario: String,
    /// Its scenario's time scale.
    pub time_scale: f64,
    /// The file's `[[assert]]`s, then `--assert`s.
    pub asserts: Vec<Assertion>,
    /// The scenario's warnings.
    pub warnings: Vec<String>,
}

impl SweepFrame {
    /// The frame of `set` run with `o`.
    pub fn of(set: &ScenarioSet, o: &RunOptions) -> SweepFrame {
        SweepFrame {
            scenario: set.points.first().map(|p| p.scenario.name.clone()).unwrap_or_default(),
            axes: set.axes.clone(),
            repeat: o.repeat.max(1),
            allow_in_flight: o.allow_in_flight,
            points: set
                .points
                .iter()
                .map(|p| PointFrame {
                    params: p.params.clone(),
                    scenario: p.scenario.name.clone(),
                    time_scale: p.scenario.time_scale,
                    asserts: p.scenario.asserts.iter().chain(&o.asserts).cloned().collect(),
                    warnings: p.scenario.warnings.clone(),
                })
                .collect(),
        }
    }
}

fn point_report(
    set: &ScenarioSet,
    i: usize,
    o: &RunOptions,
    mode: &str,
    runs: Vec<OneRun>,
    gateway: GatewayInfo,
    warnings: Vec<String>,
) -> PointReport {
    let p = &set.points[i];
    let s = &p.scenario;
    let asserts: Vec<Assertion> = s.asserts.iter().chain(&o.asserts).cloned().collect();
    point_of(
        &s.name,
        s.time_scale,
        &p.params,
        &asserts,
        o.allow_in_flight,
        mode,
        runs,
        gateway,
        warnings,
    )
}

/// A point's report from its runs' figures: the runs folded, the assertions and the
/// built-in accounting check checked (a run, a simulation, and a merge of shards).
#[allow(clippy::too_many_arguments)]
pub fn point_of(
    name: &str,
    time_scale: f64,
    params: &[(String, String)],
    asserts: &[Assertion],
    allow_in_flight: bool,
    mode: &str,
    runs: Vec<OneRun>,
    gateway: GatewayInfo,
    warnings: Vec<String>,
) -> PointReport {
    let in_flight = runs.iter().fold((0, 0), |(f, n), r| {
        (
            f + r.traffic.requests.in_flight_at_end,
            n + r.traffic.requests.scheduled,
        )
    });
    let report = RunReport::fold(name, mode, time_scale, gateway, runs, warnings);
    let (checks, passed) = checks(asserts, allow_in_flight, &report, in_flight);
    PointReport {
        params: params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        report,
        checks,
        passed,
    }
}

fn sweep(frame: &SweepFrame, mode: &str, points: Vec<PointReport>) -> SweepReport {
    let passed = points.iter().all(|p| p.passed);
    SweepReport {
        // a report without points (interrupted before any ran) names no scenario
        scenario: if points.is_empty() {
            String::new()
        } else {
            frame.scenario.clone()
        },
        mode: mode.into(),
        axes: frame.axes.clone(),
        points,
        passed,
        partial: false,
    }
}

/// The report of an interrupted set: the points that ran, marked partial; it never passes.
fn partial_sweep(frame: &SweepFrame, mode: &str, mut points: Vec<PointReport>) -> SweepReport {
    if let Some(last) = points.last_mut() {
        last.report.partial = true;
    }
    let mut sw = sweep(frame, mode, points);
    sw.partial = true;
    sw.passed = false;
    sw
}

/// The planned work of every point × repeat of `set`, checked against
/// [`crate::run::limits`] before anything runs: an error past a limit (unless
/// `o.allow_large`), else a note to print when over a limit but allowed.
pub fn check_limits(set: &ScenarioSet, o: &RunOptions, live: bool) -> anyhow::Result<Option<String>> {
    let n = o.repeat.max(1);
    check_limits_of(set, o, live, &|_| n)
}

/// [`check_limits`] of `runs_of(i)` runs of point `i` (a shard's share of a sweep; points
/// it runs nothing of are not counted).
pub fn check_limits_of(
    set: &ScenarioSet,
    o: &RunOptions,
    live: bool,
    runs_of: &dyn Fn(usize) -> usize,
) -> anyhow::Result<Option<String>> {
    use crate::run::limits::{Mode, Work};
    let mut total: Option<Work> = None;
    for (i, p) in set.points.iter().enumerate() {
        let n = runs_of(i);
        if n == 0 {
            continue;
        }
        let s = &p.scenario;
        let source = &s.plan.source;
        let mode = if live {
            Mode::Live {
                concurrency: crate::live::load::LoadOptions::new("", crate::provider::Api::OpenAi, 0).concurrency,
            }
        } else {
            let g = s.builtin_gateway()?;
            let attempts = u64::from(g.retries.attempts).saturating_add(1);
            Mode::Sim {
                max_open: g
                    .request_timeout
                    .0
                    .saturating_mul(attempts)
                    .saturating_mul(g.targets.len().max(1) as u64),
            }
        };
        let parallel = if live { 1 } else { o.jobs };
        let mut w = Work::of(source, mode, crate::analysis::run::BUCKET, s.providers.len());
        // the built-in gateway's active health checks: every target probed at the shortest
        // interval it sets (an external gateway's probes are not ours to plan)
        if let Some(g) = s.gateway.builtin() {
            if let Some(h) = &g.health_check {
                let interval = h.shortest_interval();
                let targets = if g.targets.is_empty() {
                    s.providers.len()
                } else {
                    g.targets.len()
                };
                w = w.with_probes(targets, interval);
            }
        }
        let w = w.times(n, parallel);
        total = Some(match total {
            Some(t) => t.and(w),
            None => w,
        });
    }
    let what = if live { "this live run" } else { "this simulation" };
    crate::run::limits::check(what, &total.unwrap_or_default(), o.allow_large)
}

/// Simulates every point × repeat, in parallel over `o.jobs` threads; results in matrix
/// order, byte-identical whatever the number of threads.
pub fn simulate(set: &ScenarioSet, o: &RunOptions) -> anyhow::Result<SweepReport> {
    simulate_interruptible(set, o).map(|out| out.report)
}

/// [`simulate`], stopped early when `o.stop` is raised: the runs in progress stop at their
/// next check, no new run starts, and the report holds what ran (partial).
pub fn simulate_interruptible(set: &ScenarioSet, o: &RunOptions) -> anyhow::Result<LiveOutcome> {
    let n = o.repeat.max(1);
    let jobs: Vec<(usize, usize)> = (0..set.points.len())
        .flat_map(|i| (0..n).map(move |k| (i, k)))
        .collect();
    let (results, interrupted) = simulate_jobs(set, o, &jobs, &|_| n)?;
    // without a stop every job ran; after one, the jobs not started are left out
    let mut flat = results.into_iter();
    let mut runs_by_point = Vec::new();
    for _ in 0..set.points.len() {
        let runs = (0..n)
            .filter_map(|_| flat.next().flatten())
            .collect::<anyhow::Result<Vec<_>>>()?;
        debug_assert!(interrupted || runs.len() == n, "every job ran");
        if runs.is_empty() {
            break;
        }
        runs_by_point.push(runs);
    }
    Ok(LiveOutcome {
        report: sim_report(&SweepFrame::of(set, o), runs_by_point, interrupted),
        interrupted,
        recorded: Vec::new(),
    })
}

/// Simulates the `jobs` (point, run) of `set`, in parallel over `o.jobs` threads; `runs_of`:
/// how many runs of each point are among them (for the limits and the progress line).
/// Returns each job's result in `jobs`' order (`None`: not started before a stop) and
/// whether a stop was raised.
#[allow(clippy::type_complexity)]
pub(crate) fn simulate_jobs(
    set: &ScenarioSet,
    o: &RunOptions,
    jobs: &[(usize, usize)],
    runs_of: &dyn Fn(usize) -> usize,
) -> anyhow::Result<(Vec<Option<anyhow::Result<OneRun>>>, bool)> {
    for p in &set.points {
        p.scenario.builtin_gateway()?;
    }
    if let Some(note) = check_limits_of(set, o, false, runs_of)? {
        eprintln!("chaosgate: {note}");
    }
    let stopped = || {
        o.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    };
    let n = o.repeat.max(1);
    let results: Vec<std::sync::Mutex<Option<anyhow::Result<OneRun>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let progress = reporter(set, o, n, true);
    std::thread::scope(|sc| {
        for _ in 0..o.jobs.clamp(1, jobs.len().max(1)) {
            sc.spawn(|| loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(i, k)) = jobs.get(j) else { break };
                if stopped() {
                    break;
                }
                let s = &set.points[i].scenario;
                let seed = base_seed(s, o).wrapping_add(k as u64);
                let view = o.incident && k == 0;
                let r = crate::sim::once::simulate_once_viewed(s, seed, onset_shift(s, k, n), o.stop.clone(), view)
                    .map(|(one, _)| one);
                if let Ok(one) = &r {
                    let q = &one.traffic.requests;
                    progress.finished(
                        i,
                        progress::Figures {
                            requests: q.ok + q.failed + q.dropped,
                            failed: q.failed,
                            dropped: q.dropped,
                            ..Default::default()
                        },
                    );
                }
                *results[j].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    progress.finish();
    let interrupted = stopped();
    Ok((
        results
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect(),
        interrupted,
    ))
}

/// The simulator's report of the runs of each point (`runs_by_point[i]`: point `i`'s runs
/// in run order; the points that ran, from the first): what `sim` prints and what
/// `chaosgate merge` rebuilds from the shards of a sweep.
pub fn sim_report(frame: &SweepFrame, runs_by_point: Vec<Vec<OneRun>>, interrupted: bool) -> SweepReport {
    let n = frame.repeat.max(1);
    let mut points = Vec::new();
    for (p, runs) in frame.points.iter().zip(runs_by_point) {
        let note = interrupted.then(|| {
            format!(
                "interrupted (Ctrl-C / SIGTERM): this report is partial ({} of {n} runs of this point ran)",
                runs.len()
            )
        });
        points.push(sim_point(frame, p, runs, note));
    }
    if interrupted {
        partial_sweep(frame, "sim", points)
    } else {
        sweep(frame, "sim", points)
    }
}

/// [`sim_report`] of every point of `frame`, some of whose runs may be missing (a merge of
/// shards with some missing): `(runs, gap)` per point, `gap` saying which runs are
/// missing. A point with a gap is partial and fails; so does the sweep. With no gap it is
/// `sim_report(frame, runs, false)`.
pub fn sim_report_with_gaps(frame: &SweepFrame, points: Vec<(Vec<OneRun>, Option<String>)>) -> SweepReport {
    let mut partial = false;
    let mut reports = Vec::with_capacity(points.len());
    for (p, (runs, gap)) in frame.points.iter().zip(points) {
        let gapped = gap.is_some();
        let mut r = sim_point(frame, p, runs, gap);
        if gapped {
            partial = true;
            r.report.partial = true;
            r.passed = false;
        }
        reports.push(r);
    }
    let mut sw = sweep(frame, "sim", reports);
    if partial {
        sw.partial = true;
        sw.passed = false;
    }
    sw
}

/// One point of the simulator's report, `note` added to its warnings.
fn sim_point(frame: &SweepFrame, p: &PointFrame, runs: Vec<OneRun>, note: Option<String>) -> PointReport {
    let info = GatewayInfo {
        kind: "builtin".into(),
        ..GatewayInfo::default()
    };
    let mut warnings = p.warnings.clone();
    warnings.extend(note);
    point_of(
        &p.scenario,
        p.time_scale,
        &p.params,
        &p.asserts,
        frame.allow_in_flight,
        "sim",
        runs,
        info,
        warnings,
    )
}

/// The progress reporter of `set`'s points × `n` runs, each weighing its traffic length.
fn reporter(set: &ScenarioSet, o: &RunOptions, n: usize, parallel: bool) -> progress::Reporter {
    let points = set
        .points
        .iter()
        .map(|p| (progress::label(&p.params), p.scenario.plan.source.end()))
        .collect();
    progress::Reporter::start(o.command, o.progress, points, n, parallel)
}

/// The outcome of runs that can be interrupted (live, or simulated with a stop flag).
#[derive(Debug)]
pub struct LiveOutcome {
    /// The report (partial when interrupted).
    pub report: SweepReport,
    /// Ctrl-C / SIGTERM cut it short.
    pub interrupted: bool,
    /// With [`RunOptions::shard`]: what each point's runs recorded (a shard's result file).
    pub recorded: Vec<shard::RunPointBody>,
}

/// Runs every point × repeat live, one after another. Ctrl-C / SIGTERM stop the traffic;
/// everything started is stopped and the report of what ran is still returned.
pub async fn run_live(set: &ScenarioSet, o: &RunOptions) -> anyhow::Result<LiveOutcome> {
    if let Some(note) = check_limits(set, o, true)? {
        eprintln!("chaosgate: {note}");
    }
    let (rx, signals) = crate::live::signal::stop_on_signal();
    let n = o.repeat.max(1);
    let progress = reporter(set, o, n, false);
    let frame = SweepFrame::of(set, o);
    let mut points = Vec::new();
    let mut all_recorded = Vec::new();
    let mut interrupted = false;
    'points: for (i, p) in set.points.iter().enumerate() {
        let s = &p.scenario;
        let mut runs = Vec::new();
        let mut info = GatewayInfo::default();
        let mut warnings = Vec::new();
        let mut recorded = Vec::new();
        for k in 0..n {
            if *rx.borrow() {
                interrupted = true;
                break;
            }
            let seed = base_seed(s, o).wrapping_add(k as u64);
            let dir = o.run_dir.join(format!("point{i}-run{k}"));
            let counters = progress.begin_run(i, k);
            let view = o.incident && k == 0;
            let r = crate::live::once::run_once(
                s,
                seed,
                onset_shift(s, k, n),
                &dir,
                rx.clone(),
                counters,
                o.metrics.clone(),
                view,
                crate::live::once::ShardCtx {
                    shard: o.shard.unwrap_or(crate::traffic::shard::Shard::WHOLE),
                    t0: o.start_at.filter(|_| i == 0 && k == 0),
                    keep: o.shard.is_some(),
                },
            )
            .await;
            progress.end_run();
            let r = match r {
                Ok(r) => r,
                Err(e) if *rx.borrow() => {
                    eprintln!("chaosgate: interrupted: {e:#}");
                    interrupted = true;
                    break;
                }
                Err(e) => {
                    progress.finish();
                    signals.abort();
                    return Err(e);
                }
            };
            if k == 0 {
                info = r.gateway.clone();
                warnings = r.warnings.clone();
            }
            runs.push(r.run);
            recorded.extend(r.recorded);
            if r.interrupted {
                interrupted = true;
                break;
            }
        }
        if !runs.is_empty() {
            if interrupted {
                warnings.push(format!(
                    "interrupted (Ctrl-C / SIGTERM): this report is partial ({} of {n} runs of this point ran)",
                    runs.len()
                ));
            }
            if o.shard.is_some() {
                all_recorded.push(shard::RunPointBody::of(
                    set,
                    i,
                    o,
                    info.clone(),
                    warnings.clone(),
                    recorded,
                ));
            }
            points.push(point_report(set, i, o, "live", runs, info, warnings));
        }
        if interrupted {
            break 'points;
        }
    }
    progress.finish();
    signals.abort();
    // a partial report still carries the matrix it was cut from
    Ok(LiveOutcome {
        report: if interrupted {
            partial_sweep(&frame, "live", points)
        } else {
            sweep(&frame, "live", points)
        },
        interrupted,
        recorded: all_recorded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Aggregator;
    use crate::record::{Outcome, RequestRecord};
    use crate::time::NS_PER_S;

    const SWEEP: &str = r#"
seed = 3
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "20s"
duration = "20s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "5s", timeout = "1s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
[traffic]
rate = 20.0
arrival = "constant"
duration = "60s"
[sweep]
"gateway.health_check.interval" = ["5s", "60s"]
"#;

    /// What a stalled host left of a run: 236 of 1,155 requests answered, 919 never.
    fn stalled(mut run: OneRun) -> OneRun {
        let mut agg = Aggregator::new(crate::analysis::run::BUCKET, vec!["chat".into()], Default::default());
        for i in 0..236u64 {
            let t = i * NS_PER_S / 20;
            agg.add(
                &RequestRecord {
                    id: i,
                    kind: 0,
                    intended: t,
                    sent: Some(t),
                    first_byte: Some(t + 1),
                    first_token: None,
                    end: t + 2,
                    outcome: Outcome::Ok,
                    output_tokens: 8,
                    input_tokens: 8,
                    provider: Some("primary".into()),
                    stream: false,
                },
                &[],
                false,
            );
        }
        run.traffic = agg.report(1155, 919, 60 * NS_PER_S);
        for f in &mut run.faults {
            (f.failed_during, f.failed_before_detection, f.failed_after_detection) = (0, 0, 0);
            f.detection_traffic_s = None;
        }
        run
    }

    /// The reported defect: a live sweep point where 919 of 1,155 requests never completed
    /// was reported as `failed 0, pass` with `warnings: []`, passed
    /// `resilience.failed_requests.max <= 300`, and was drawn as the best setting.
    #[test]
    fn sweep_point_with_919_of_1155_never_completed_cannot_pass_or_rank_best() {
        let set = crate::scenario::load_str("s.toml", SWEEP, std::path::Path::new("."), &[]).unwrap();
        let mut o = RunOptions::new(std::env::temp_dir());
        o.asserts = vec!["resilience.failed_requests.max <= 300".parse().unwrap()];
        let sweep_of = |o: &RunOptions| {
            let runs: Vec<OneRun> = set
                .points
                .iter()
                .map(|p| crate::sim::once::simulate_once(&p.scenario, 3, 0).unwrap().0)
                .collect();
            let mut runs = runs.into_iter();
            let good = runs.next().unwrap();
            let bad = stalled(runs.next().unwrap());
            let points = vec![
                point_report(&set, 0, o, "live", vec![good], GatewayInfo::default(), Vec::new()),
                point_report(&set, 1, o, "live", vec![bad], GatewayInfo::default(), Vec::new()),
            ];
            sweep(&SweepFrame::of(&set, o), "live", points)
        };
        let sw = sweep_of(&o);
        let (good, bad) = (&sw.points[0], &sw.points[1]);
        assert!(good.passed, "{:?}", good.checks);
        // the user's assertion alone still holds on the stalled point (0 failed) …
        assert!(bad.checks[0].passed);
        // … but the point fails, says why, and cannot be ranked
        assert!(!bad.passed && !sw.passed);
        let builtin = bad
            .checks
            .iter()
            .find(|c| c.assertion == IN_FLIGHT_CHECK)
            .expect("built-in check");
        assert!(builtin.message.contains("919 of 1155"), "{}", builtin.message);
        assert!(
            bad.report
                .warnings
                .iter()
                .any(|w| w.contains("919 of 1155 scheduled requests were still in flight")),
            "{:?}",
            bad.report.warnings
        );
        let json = sw.to_json().to_string();
        assert!(json.contains("919 of 1155 scheduled requests were still in flight"));
        let table = crate::report::text::sweep_table(&sw);
        assert!(table.contains("UNRELIABLE (1 warning)"), "{table}");
        assert!(
            table.contains("reliable points: gateway.health_check.interval=5s"),
            "{table}"
        );
        assert_eq!(crate::analysis::results::best_point(&sw), Some(0));
        // the chart: the stalled point is a cross, not a zero
        let (label, pts) = crate::report::chart::chart_points(&sw);
        assert!(pts[1].unreliable.is_some() && pts[0].unreliable.is_none());
        let svg = crate::report::chart::sweep_svg("t", &label, &pts);
        assert_eq!(svg.matches("class=\"marker unreliable\"").count(), 2, "one per panel");
        assert_eq!(
            svg.matches("<circle class=\"marker\"").count(),
            2,
            "only the good point has values"
        );
        // JUnit: the failure and the warning
        let xml = crate::report::junit::junit(&sw, "run");
        assert!(xml.contains(&format!("name=\"{IN_FLIGHT_CHECK}\">")), "{xml}");
        assert!(xml.contains("<property name=\"warning\" value=\"919 of 1155"), "{xml}");
        // --allow-in-flight lets it pass its checks, but it is still not a good setting
        o.allow_in_flight = true;
        let sw = sweep_of(&o);
        assert!(sw.points[1].passed);
        assert_eq!(crate::analysis::results::best_point(&sw), Some(0));
        assert!(crate::report::text::sweep_table(&sw).contains("UNRELIABLE"));
    }

    #[test]
    fn every_request_of_a_simulated_run_is_accounted_for() {
        let set = crate::scenario::load_str("s.toml", SWEEP, std::path::Path::new("."), &[]).unwrap();
        let sw = simulate(&set, &RunOptions::new(std::env::temp_dir())).unwrap();
        for p in &sw.points {
            let q = p.report.traffic.requests;
            assert_eq!(q.scheduled, 1200);
            assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end, "{q:?}");
            assert_eq!(q.in_flight_at_end, 0);
            assert!(p.report.warnings.is_empty() && !p.report.partial);
        }
    }

    #[test]
    fn a_stopped_simulation_is_partial_with_its_simulated_duration() {
        let set = crate::scenario::load_str("s.toml", SWEEP, std::path::Path::new("."), &[]).unwrap();
        let mut o = RunOptions::new(std::env::temp_dir());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        o.stop = Some(stop);
        let out = simulate_interruptible(&set, &o).unwrap();
        assert!(out.interrupted);
        // raised before anything ran: nothing ran, nothing is reported as if it had
        assert!(out.report.points.is_empty());
        // raised during a run: it stops at its next look, partial, with the time reached
        let s = &set.points[0].scenario;
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (one, out) = crate::sim::once::simulate_once_until(s, 3, 0, Some(flag)).unwrap();
        assert!(out.interrupted && one.traffic.partial);
        assert!(one.duration_s < 60.0, "{}", one.duration_s);
        let q = one.traffic.requests;
        assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end, "{q:?}");
        assert!(
            one.traffic.warnings.iter().any(|w| w.contains("partial")),
            "{:?}",
            one.traffic.warnings
        );
    }
}
