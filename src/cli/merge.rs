//! `chaosgate merge FILES…`: checks that the files are the shards of one work
//! (`run::shard::check_set`), then renders the report one machine would have written,
//! through the same functions `load`, `run` and `sim` render with (docs/sharding.md).

use crate::cli::commands;
use crate::cli::shard as cli_shard;
use crate::run::shard::{self, Kind};
use anyhow::{anyhow, bail};
use std::path::PathBuf;

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
        Kind::Sim => merge_sim(&set, &a),
    }
}

/// `chaosgate merge` of `load` shards: the files read one at a time, each merged into the
/// whole (exactly: `Aggregator::merge`), then the report one machine would have written,
/// with the per-shard and per-region breakdown.
fn merge_load(a: &MergeArgs, set: &shard::ShardSet) -> anyhow::Result<u8> {
    use crate::analysis::shards::{breakdown, ShardPart};
    let csv = a.csv.as_ref().map(|p| PathBuf::from(format!("{p}_stats.csv")));
    commands::check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--junit", a.junit.as_deref()),
        ("--csv", csv.as_deref()),
        ("--hlog", a.hlog.as_deref()),
        ("--html", a.html.as_deref()),
    ])?;
    if a.chart.is_some() {
        bail!("--chart draws a sweep: load shards have none (use --html or --hlog)");
    }
    let asserts = commands::parse_asserts(&a.asserts)?;
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
    let out = commands::LoadOut {
        json: a.json.as_deref(),
        csv: a.csv.as_deref(),
        hlog: a.hlog.as_deref(),
        html: a.html.as_deref(),
        quiet: a.quiet,
        asserts: &asserts,
        junit: a.junit.as_deref(),
    };
    let failed = commands::render_load(
        &result,
        &targets.join(", "),
        seed,
        start,
        users,
        &out,
        &warnings,
        Some(&b),
    )?;
    let code = cli_shard::load_exit("merge", false, result.totals.in_flight_at_end, allow_in_flight);
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
    commands::check_output_paths(&[
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
    let code = commands::finish_with(&sw, &args, "merge", Some(&b))?;
    Ok(code.max(u8::from(partial)))
}

/// `chaosgate merge` of `sim` shards: the report the unsharded `sim` writes, rendered by
/// the same function.
fn merge_sim(set: &shard::ShardSet, a: &MergeArgs) -> anyhow::Result<u8> {
    if a.csv.is_some() || a.hlog.is_some() {
        anyhow::bail!(
            "--csv and --hlog are for load shards; a sim sweep merges to --json, --junit, --chart and --html"
        );
    }
    // the page names the merge: it is what rebuilds this report from the files
    let command = commands::reproduce(None);
    let outputs = commands::Outputs {
        json: a.json.as_deref(),
        junit: a.junit.as_deref(),
        chart: a.chart.as_deref(),
        html: a.html.as_deref(),
        quiet: a.quiet,
        command: Some(&command),
        shards: None,
    };
    commands::check_output_paths(&[
        ("--json", outputs.json),
        ("--junit", outputs.junit),
        ("--chart", outputs.chart),
        ("--html", outputs.html),
    ])?;
    let asserts = commands::parse_asserts(&a.asserts)?;
    let sw = crate::run::sim_shard::merge(set, &asserts)?;
    commands::render(&sw, &outputs, "sim")
}
