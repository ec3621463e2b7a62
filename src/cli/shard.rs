//! The shard flags of `load`, `run` and `sim`, and `chaosgate merge` (docs/sharding.md).

use crate::run::shard::{self, Kind, ShardPlan};
use crate::traffic::shard::Shard;
use anyhow::{anyhow, bail};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Kubernetes' Indexed Job gives each pod its index in this variable.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The shard count when `--shard auto` has no `--shards`.
pub const COUNT_ENV: &str = "JOB_COMPLETION_COUNT";
/// The furthest ahead `--start-at` may be.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);
/// The longest shard name or region.
pub const MAX_LABEL: usize = 64;

/// How a command's work is split across machines.
#[derive(Debug, Default, clap::Args)]
pub struct ShardArgs {
    /// Run shard I of N (0-based, e.g. 0/3), or `auto`: the index from JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Job), the count from --shards or JOB_COMPLETION_COUNT.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// The shard count for `--shard auto`.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<u32>,
    /// This shard's name in the merged report (default: shard-I).
    #[arg(long, value_name = "NAME", requires = "shard")]
    pub shard_name: Option<String>,
    /// Where this shard runs (a label for per-region breakdowns).
    #[arg(long, value_name = "NAME")]
    pub region: Option<String>,
    /// The wall-clock time every shard starts its schedule at: RFC 3339
    /// (2026-12-06T12:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// Write the mergeable result file here (`chaosgate merge` reads it).
    #[arg(long, value_name = "PATH")]
    pub result: Option<PathBuf>,
}

/// The shard plan of `a`, reading the environment through `env`; `None` when the command
/// is neither sharded nor writing a result file. `live`: whether `--start-at` applies.
pub fn resolve(
    a: &ShardArgs,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
    live: bool,
) -> anyhow::Result<Option<ShardPlan>> {
    let shard = match a.shard.as_deref() {
        None => None,
        Some("auto") => {
            let index = env(INDEX_ENV).ok_or_else(|| {
                anyhow!("--shard auto: {INDEX_ENV} is not set (it is set in a Kubernetes Indexed Job's pods)")
            })?;
            let index: u32 = index
                .trim()
                .parse()
                .map_err(|_| anyhow!("--shard auto: {INDEX_ENV}={index:?} is not a whole number"))?;
            let count = match (a.shards, env(COUNT_ENV)) {
                (Some(n), _) => n,
                (None, Some(n)) => n
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("--shard auto: {COUNT_ENV}={n:?} is not a whole number"))?,
                (None, None) => bail!("--shard auto: give the shard count with --shards N or {COUNT_ENV}"),
            };
            Some(Shard::new(index, count).map_err(|e| anyhow!("--shard auto ({INDEX_ENV}={index}): {e}"))?)
        }
        Some(s) => {
            if a.shards.is_some() {
                bail!("--shards is for --shard auto; --shard {s} already says the count");
            }
            Some(s.parse::<Shard>().map_err(|e| anyhow!("--shard {e}"))?)
        }
    };
    if shard.is_some() && a.result.is_none() {
        bail!("--shard needs --result PATH: the file `chaosgate merge` combines");
    }
    let start_at = match &a.start_at {
        None => None,
        Some(_) if !live => bail!("--start-at is for live shards; the simulator runs in virtual time"),
        Some(t) => Some(parse_start_at(t, now)?),
    };
    if shard.is_none() && a.result.is_none() {
        if start_at.is_some() || a.region.is_some() {
            bail!("--start-at and --region label shards: give --shard I/N and --result PATH");
        }
        return Ok(None);
    }
    let shard = shard.unwrap_or(Shard::WHOLE);
    let name = a.shard_name.clone().unwrap_or_else(|| format!("shard-{}", shard.index));
    check_label("--shard-name", &name)?;
    if let Some(r) = &a.region {
        check_label("--region", r)?;
    }
    Ok(Some(ShardPlan {
        shard,
        name,
        region: a.region.clone(),
        start_at,
        result: a.result.clone(),
    }))
}

fn check_label(flag: &str, v: &str) -> anyhow::Result<()> {
    if v.is_empty() || v.len() > MAX_LABEL {
        bail!("{flag} {v:?}: 1 to {MAX_LABEL} characters");
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        bail!("{flag} {v:?}: {c:?} is not allowed (letters, digits, - _ . :)");
    }
    Ok(())
}

/// `--start-at`: RFC 3339 or Unix seconds, at most [`MAX_START_AHEAD`] after `now`.
pub fn parse_start_at(t: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let at = if let Ok(secs) = t.trim().parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            bail!("--start-at {t:?}: Unix seconds must be a finite number ≥ 0");
        }
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs_f64(secs))
            .ok_or_else(|| anyhow!("--start-at {t:?}: out of range"))?
    } else {
        humantime::parse_rfc3339_weak(t.trim()).map_err(|e| {
            anyhow!("--start-at {t:?}: {e} (expected RFC 3339, e.g. 2026-12-06T12:00:00Z, or Unix seconds)")
        })?
    };
    if let Ok(ahead) = at.duration_since(now) {
        if ahead > MAX_START_AHEAD {
            bail!(
                "--start-at {t:?} is {:.0} h from now: at most {} h ahead",
                ahead.as_secs_f64() / 3600.0,
                MAX_START_AHEAD.as_secs() / 3600
            );
        }
    }
    Ok(at)
}

/// `chaosgate merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shards' result files (`--result` of each shard).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Merge even when shards are missing or were interrupted: the report is marked partial
    /// and the exit code is at least 1.
    #[arg(long)]
    pub allow_missing: bool,
    /// Write the JSON report here; `-` writes it to stdout (the text report then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write Locust-compatible CSV with this prefix (load shards).
    #[arg(long)]
    pub csv: Option<String>,
    /// Write an HdrHistogram interval log (load shards).
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Write the SVG sweep chart (run and sim shards).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Fail (exit 1) unless this holds, e.g. 'resilience.detection_s.max <= 10' (repeatable).
    #[arg(long = "assert", value_name = "PATH OP VALUE")]
    pub asserts: Vec<String>,
    /// Write the HTML report here (load, run and sim shards).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Only the summary.
    #[arg(long)]
    pub quiet: bool,
}

/// `chaosgate merge FILES…`: checks that the files are the shards of one work, then
/// renders the report one machine would have written.
pub fn merge(a: MergeArgs) -> anyhow::Result<u8> {
    let mut headers = Vec::with_capacity(a.files.len());
    for p in &a.files {
        headers.push((p.clone(), shard::read_header(p)?));
    }
    let set = shard::check_set(headers)?;
    if let Some(gaps) = set.gaps() {
        if !a.allow_missing {
            bail!("cannot merge: {gaps} (--allow-missing merges what is here, marked partial)");
        }
        eprintln!("chaosgate merge: {gaps}; the report is partial");
    }
    match set.kind {
        Kind::Load => merge_load(&a, &set),
        Kind::Run => merge_run(&a, &set),
        Kind::Sim => crate::cli::commands::merge_sim(&set, &a),
    }
}

/// `chaosgate merge` of `load` shards: the files read one at a time, each merged into the
/// whole (exactly: `Aggregator::merge`), then the report one machine would have written,
/// with the per-shard and per-region breakdown.
fn merge_load(a: &MergeArgs, set: &shard::ShardSet) -> anyhow::Result<u8> {
    use crate::analysis::shards::{breakdown, ShardPart};
    let csv = a.csv.as_ref().map(|p| PathBuf::from(format!("{p}_stats.csv")));
    crate::cli::commands::check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--junit", a.junit.as_deref()),
        ("--csv", csv.as_deref()),
        ("--hlog", a.hlog.as_deref()),
        ("--html", a.html.as_deref()),
    ])?;
    if a.chart.is_some() {
        bail!("--chart draws a sweep: load shards have none (use --html or --hlog)");
    }
    let asserts = a
        .asserts
        .iter()
        .map(|s| s.parse().map_err(|m: String| anyhow!("--assert {m}")))
        .collect::<anyhow::Result<Vec<crate::analysis::assert::Assertion>>>()?;
    let mut parts = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut merged: Option<shard::LoadBody> = None;
    let mut seed = 0;
    for (path, h) in set.files.values() {
        let f: shard::ShardFile<shard::LoadBody> = shard::read(path)?;
        f.body
            .aggregator
            .check_read()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let b = &f.body;
        parts.push(ShardPart::of(
            h.shard.index,
            &h.name,
            h.region.as_deref(),
            &b.aggregator,
            b.totals.scheduled,
            b.totals.in_flight_at_end,
            b.late,
            h.complete,
        ));
        if !targets.contains(&b.target) {
            targets.push(b.target.clone());
        }
        seed = h.seed;
        merged = Some(match merged {
            None => f.body,
            Some(mut m) => {
                m.absorb(f.body).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
                m
            }
        });
    }
    let Some(merged) = merged else {
        bail!("no shard files to merge");
    };
    let b = breakdown(set.count, &parts, &set.missing);
    let mut warnings = merged.warnings.clone();
    if let Some(gaps) = set.gaps() {
        warnings.push(format!("{gaps}: this merged report is partial"));
    }
    let (start, users, allow_in_flight) = (merged.start(), merged.users, merged.allow_in_flight);
    let result = merged.into_result();
    let out = LoadOut {
        json: a.json.as_deref(),
        csv: a.csv.as_deref(),
        hlog: a.hlog.as_deref(),
        html: a.html.as_deref(),
        quiet: a.quiet,
        asserts: &asserts,
        junit: a.junit.as_deref(),
    };
    let failed = render_load(
        &result,
        &targets.join(", "),
        seed,
        start,
        users,
        &out,
        &warnings,
        Some(&b),
    )?;
    let code = load_exit("merge", false, result.in_flight_at_end, allow_in_flight);
    let code = code.max(u8::from(failed > 0)).max(u8::from(b.partial));
    Ok(code)
}

/// `chaosgate merge` of `run` shards: per point and run, the shards' recordings added up
/// (statistics exactly, every arrival, request end and gateway event), then the same
/// analysis and report `chaosgate run` makes, with the per-shard breakdown (of each
/// shard's first run of the first point).
fn merge_run(a: &MergeArgs, set: &shard::ShardSet) -> anyhow::Result<u8> {
    use crate::analysis::shards::{breakdown, ShardPart};
    if a.csv.is_some() || a.hlog.is_some() {
        bail!("--csv and --hlog are load outputs: run shards give --json, --junit, --chart, --html");
    }
    crate::cli::commands::check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--junit", a.junit.as_deref()),
        ("--chart", a.chart.as_deref()),
        ("--html", a.html.as_deref()),
    ])?;
    let mut parts = Vec::new();
    let mut merged: Option<shard::RunBody> = None;
    for (path, h) in set.files.values() {
        let f: shard::ShardFile<shard::RunBody> = shard::read(path)?;
        for p in &f.body.points {
            for r in &p.runs {
                r.aggregator
                    .check_read()
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
        }
        if let Some(r) = f.body.points.first().and_then(|p| p.runs.first()) {
            parts.push(ShardPart::of(
                h.shard.index,
                &h.name,
                h.region.as_deref(),
                &r.aggregator,
                r.totals.scheduled,
                r.totals.in_flight_at_end,
                0,
                h.complete,
            ));
        }
        merged = Some(match merged {
            None => f.body,
            Some(mut m) => {
                if m.points.len() != f.body.points.len() {
                    bail!(
                        "{}: {} points ran, the other shards ran {}",
                        path.display(),
                        f.body.points.len(),
                        m.points.len()
                    );
                }
                for (mine, other) in m.points.iter_mut().zip(f.body.points) {
                    mine.absorb(other).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
                }
                m
            }
        });
    }
    let Some(mut merged) = merged else {
        bail!("no shard files to merge");
    };
    let b = breakdown(set.count, &parts, &set.missing);
    let mut points = Vec::new();
    for p in &mut merged.points {
        p.asserts.extend(a.asserts.iter().cloned());
        if let Some(gaps) = set.gaps() {
            p.warnings.push(format!("{gaps}: this merged report is partial"));
        }
        points.push(p.report(a.html.is_some())?);
    }
    let partial = b.partial || merged.points.len() < merged.points_planned;
    let sw = crate::analysis::results::SweepReport {
        scenario: merged.scenario.clone(),
        mode: "live".into(),
        axes: merged.axes.clone(),
        passed: !partial && points.iter().all(|p| p.passed),
        partial,
        points,
    };
    let args = crate::cli::ScenarioArgs {
        scenario: None,
        set: Vec::new(),
        sweep: Vec::new(),
        repeat: u32::try_from(merged.repeat).unwrap_or(1),
        seed: None,
        asserts: a.asserts.clone(),
        json: a.json.clone(),
        junit: a.junit.clone(),
        chart: a.chart.clone(),
        html: a.html.clone(),
        quiet: a.quiet,
        allow_in_flight: false,
        allow_large: false,
    };
    let code = crate::cli::commands::finish_with(&sw, &args, "merge", Some(&b))?;
    Ok(code.max(u8::from(partial)))
}

/// The fingerprint of a `run`'s work: the scenario file's text, `--set` and `--sweep`
/// (the scenario after them), the seed and `--repeat` — not the region or the shard's
/// name.
pub fn run_fingerprint(a: &crate::cli::ScenarioArgs, seed: u64, repeat: usize) -> anyhow::Result<String> {
    let text = match &a.scenario {
        Some(p) => std::fs::read_to_string(p).map_err(|e| anyhow!("cannot read {}: {e}", p.display()))?,
        None => String::new(),
    };
    let canonical = serde_json::json!({
        "kind": "run",
        "scenario": shard::fingerprint(&text),
        "set": a.set,
        "sweep": a.sweep,
        "seed": seed,
        "repeat": repeat,
    });
    Ok(shard::fingerprint(&canonical.to_string()))
}

/// What a load report is written to.
pub struct LoadOut<'a> {
    /// `--json`.
    pub json: Option<&'a std::path::Path>,
    /// `--csv` prefix.
    pub csv: Option<&'a str>,
    /// `--hlog`.
    pub hlog: Option<&'a std::path::Path>,
    /// `--html`.
    pub html: Option<&'a std::path::Path>,
    /// Only the summary lines.
    pub quiet: bool,
    /// `--assert`s (merge).
    pub asserts: &'a [crate::analysis::assert::Assertion],
    /// `--junit` (merge).
    pub junit: Option<&'a std::path::Path>,
}

/// Prints and writes the report of a load run, whole or merged from shards (one function
/// for both, so a merge renders exactly what one machine would have): the text, the
/// warnings, the shards' breakdown, JSON, Locust CSV, hlog, HTML, assertions and JUnit.
/// Returns how many assertions failed.
#[allow(clippy::too_many_arguments)]
pub fn render_load(
    result: &crate::live::load::LoadResult,
    target: &str,
    seed: u64,
    start: SystemTime,
    users: u32,
    out: &LoadOut<'_>,
    warnings: &[String],
    shards: Option<&crate::analysis::shards::Breakdown>,
) -> anyhow::Result<usize> {
    use crate::cli::commands::{write_html, write_json_out, Out};
    let mut report = result.report();
    report.warnings.extend(warnings.iter().cloned());
    if shards.is_some_and(|b| b.partial) {
        report.partial = true;
    }
    let o = Out::for_json(out.json);
    if out.quiet {
        let q = &report.requests;
        o.print(&format!(
            "requests   scheduled {}   sent {}   ok {}   failed {}   dropped {}   p99 {:.1} ms\n",
            q.scheduled, q.sent, q.ok, q.failed, q.dropped, report.latency_ms.p99
        ));
    } else {
        o.print(&crate::report::text::load(&report));
    }
    for w in &report.warnings {
        o.print(&format!("warning: {w}\n"));
    }
    if let Some(b) = shards {
        o.print(&crate::report::text::shards(b));
    }
    let mut v = serde_json::to_value(&report)?;
    v["seed"] = serde_json::json!(seed);
    v["target"] = serde_json::json!(target);
    if let Some(b) = shards {
        v["shards"] = serde_json::to_value(b)?;
    }
    let checks: Vec<crate::analysis::assert::Check> = out.asserts.iter().map(|a| a.check(&v)).collect();
    let failed = checks.iter().filter(|c| !c.passed).count();
    if !checks.is_empty() {
        o.print(&format!(
            "\nassertions: {} passed, {failed} failed\n",
            checks.len() - failed
        ));
        for c in checks.iter().filter(|c| !c.passed) {
            o.print(&format!("  FAILED {}: {}\n", c.assertion, c.message));
        }
        v["checks"] = serde_json::to_value(&checks)?;
    }
    if let Some(p) = out.json {
        write_json_out(p, &v)?;
    }
    if let Some(p) = out.junit {
        let xml = crate::report::junit::junit_checks(
            &format!("chaosgate merge load {target}"),
            target,
            report.duration_s,
            &report.warnings,
            &checks,
        );
        std::fs::write(p, xml).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(prefix) = out.csv {
        crate::report::locust::write_locust_csv(
            prefix,
            &result.aggregator,
            &result.csv,
            report.duration_s,
            start,
            users,
        )?;
        eprintln!(
            "wrote {prefix}_stats.csv, {prefix}_stats_history.csv, {prefix}_failures.csv, {prefix}_exceptions.csv"
        );
    }
    if let Some(p) = out.hlog {
        crate::report::hlog::write_hlog(p, &result.aggregator, start)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = out.html {
        let agg = &result.aggregator;
        let share = crate::analysis::share::traffic_share(&crate::analysis::resilience::Series::from_aggregator(agg));
        let duration = (report.duration_s * 1e9) as crate::time::Nanos;
        let view = crate::analysis::incident::IncidentView::build(agg, &share, &[], &[], None, duration);
        let page = crate::report::html::load_page(
            &report,
            &view,
            target,
            seed,
            // a merge is reproduced by the merge command itself (no --seed to add)
            &crate::report::html::Provenance::new(&crate::cli::commands::reproduce(
                Some(seed).filter(|_| shards.is_none()),
            )),
        );
        write_html(p, &page)?;
    }
    Ok(failed)
}

/// The exit code of a load run or merge: 130 when interrupted, 1 with requests in flight
/// at the end (unless allowed), else 0; says why on stderr.
pub fn load_exit(command: &str, interrupted: bool, in_flight: u64, allow_in_flight: bool) -> u8 {
    if interrupted {
        eprintln!("chaosgate {command}: interrupted; the report above is partial");
        return 130;
    }
    if in_flight > 0 && !allow_in_flight {
        eprintln!(
            "chaosgate {command}: {in_flight} request(s) in flight at the end were never accounted for (--allow-in-flight accepts this)"
        );
        return 1;
    }
    0
}

/// Writes a shard's result file.
pub fn write_result<T: serde::Serialize>(
    plan: &ShardPlan,
    kind: Kind,
    fingerprint: String,
    seed: u64,
    complete: bool,
    body: T,
) -> anyhow::Result<()> {
    let Some(path) = &plan.result else {
        return Ok(());
    };
    let file = shard::ShardFile {
        chaosgate_shard: plan.header(kind, fingerprint, seed, complete),
        body,
    };
    shard::write(path, &file)?;
    eprintln!(
        "wrote {} (shard {} \"{}\"{})",
        path.display(),
        plan.shard,
        plan.name,
        if complete { "" } else { ", interrupted: partial" }
    );
    Ok(())
}

/// The instant a shard's schedule starts at (`--start-at`), and how late this process is
/// for it (ns; 0 when early). Refuses a start after the whole schedule's end.
pub fn start_instant(
    at: SystemTime,
    schedule_len: crate::time::Nanos,
    who: &str,
) -> anyhow::Result<(tokio::time::Instant, crate::time::Nanos)> {
    let (now, inow) = (SystemTime::now(), tokio::time::Instant::now());
    match at.duration_since(now) {
        Ok(ahead) => {
            if ahead > Duration::from_millis(100) {
                eprintln!(
                    "{who}: waiting {:.1} s for --start-at (Ctrl-C cancels)",
                    ahead.as_secs_f64()
                );
            }
            Ok((inow + ahead, 0))
        }
        Err(e) => {
            let late = e.duration();
            let late_ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
            if late_ns >= schedule_len {
                bail!(
                    "--start-at was {:.1} s ago, after the whole {:.1} s schedule: nothing of it is left to send (give a later --start-at)",
                    late.as_secs_f64(),
                    crate::time::nanos_to_secs_f64(schedule_len)
                );
            }
            Ok((inow.checked_sub(late).unwrap_or(inow), late_ns))
        }
    }
}

/// The warning of a shard that started after `--start-at`.
pub fn late_warning(name: &str, late: crate::time::Nanos) -> String {
    format!(
        "{name} started {:.3} s after --start-at: the requests already due were sent at once (their schedule lag and their latency from the intended time include the lateness)",
        crate::time::nanos_to_secs_f64(late)
    )
}

/// The fingerprint of a `load` run's work: the schedule and the analysis settings (the
/// traffic flags, the mix and trace files' contents, the API, the cap and timeouts, the
/// buckets, SLO thresholds and phases) and the seed — not the target, the region or the
/// shard's name.
pub fn load_fingerprint(
    a: &crate::cli::LoadArgs,
    cfg: &crate::traffic::TrafficConfig,
    opts: &crate::live::load::LoadOptions,
) -> anyhow::Result<String> {
    let contents = |p: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| shard::fingerprint(&String::from_utf8_lossy(&b)))
                    .map_err(|e| anyhow!("cannot read {}: {e}", p.display()))
            })
            .transpose()
    };
    let mut traffic = cfg.clone();
    traffic.mix = None;
    traffic.trace = None;
    let canonical = serde_json::json!({
        "kind": "load",
        "traffic": traffic,
        "mix": contents(&a.mix)?,
        "trace": contents(&a.trace)?,
        "api": a.api.as_str(),
        "concurrency": opts.concurrency,
        "timeout": opts.timeout,
        "ttft_timeout": opts.ttft_timeout,
        "stall_timeout": opts.stall_timeout,
        "grace": opts.grace,
        "bucket": opts.bucket,
        "slo": opts.slo,
        "phases": opts.phases,
        "seed": opts.seed,
    });
    Ok(shard::fingerprint(&canonical.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shard: Option<&str>, result: Option<&str>) -> ShardArgs {
        ShardArgs {
            shard: shard.map(String::from),
            result: result.map(PathBuf::from),
            ..ShardArgs::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const NOW: Duration = Duration::from_secs(1_796_558_400); // 2026-12-06T12:00:00Z

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn an_unsharded_command_has_no_plan() {
        assert_eq!(resolve(&ShardArgs::default(), &no_env, now(), true).unwrap(), None);
    }

    #[test]
    fn shard_flags_resolve() {
        let p = resolve(&args(Some("1/3"), Some("s1.json")), &no_env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::new(1, 3).unwrap());
        assert_eq!(p.name, "shard-1");
        // --result alone: one shard of one, mergeable
        let p = resolve(&args(None, Some("r.json")), &no_env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::WHOLE);
        let e = resolve(&args(Some("1/3"), None), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--result"), "{e}");
        let e = resolve(&args(Some("3/3"), Some("x")), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0-based"), "{e}");
    }

    #[test]
    fn shard_auto_reads_the_indexed_job() {
        let env = |k: &str| match k {
            INDEX_ENV => Some("2".to_string()),
            COUNT_ENV => Some("4".to_string()),
            _ => None,
        };
        let p = resolve(&args(Some("auto"), Some("r.json")), &env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::new(2, 4).unwrap());
        let mut a = args(Some("auto"), Some("r.json"));
        a.shards = Some(3);
        let p = resolve(&a, &env, now(), true).unwrap().unwrap();
        assert_eq!(p.shard, Shard::new(2, 3).unwrap());
        let e = resolve(&args(Some("auto"), Some("r.json")), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX is not set"), "{e}");
        let only_index = |k: &str| (k == INDEX_ENV).then(|| "0".to_string());
        let e = resolve(&args(Some("auto"), Some("r.json")), &only_index, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--shards N"), "{e}");
    }

    #[test]
    fn start_at_and_labels_are_checked() {
        let at = parse_start_at("2026-12-06T12:00:30Z", now()).unwrap();
        assert_eq!(at.duration_since(now()).unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_start_at("1796558460", now()).unwrap(),
            now() + Duration::from_secs(60)
        );
        assert!(parse_start_at("tomorrow", now())
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
        assert!(parse_start_at("2026-12-09T12:00:00Z", now())
            .unwrap_err()
            .to_string()
            .contains("at most 24 h"));
        let mut a = args(Some("0/2"), Some("r.json"));
        a.start_at = Some("1796558460".into());
        let e = resolve(&a, &no_env, now(), false).unwrap_err().to_string();
        assert!(e.contains("virtual time"), "{e}");
        a.region = Some("eu west".into());
        let e = resolve(&a, &no_env, now(), true).unwrap_err().to_string();
        assert!(e.contains("' ' is not allowed"), "{e}");
    }
}
