//! Sharded simulator sweeps (docs/sharding.md, "Simulator sweeps").
//!
//! `chaosgate sim SCENARIO --shard I/N --result PATH` runs only its share of the sweep's
//! points × repeats: work item `k = point × repeat + run` (matrix order, first axis
//! slowest, then the runs of a point) is shard `k mod N`'s ([`Shard::owns`], the one split
//! rule). Each run is computed exactly as the unsharded `sim` computes it (same seed, same
//! onset shift), so its figures do not depend on who ran it. The shard writes its runs whole
//! ([`OneRun`], floats as their shortest round-trip text) with the [`SweepFrame`] the
//! report is built around; `chaosgate merge` puts the runs back in matrix order and builds
//! the report through [`crate::run::sim_report`], the function `sim` itself uses — so the
//! merged report is byte for byte the unsharded one.

use crate::analysis::assert::Assertion;
use crate::analysis::results::{OneRun, SweepReport};
use crate::run::shard::{self, Kind, ShardFile, ShardPlan, ShardSet};
use crate::run::{base_seed, RunOptions, SweepFrame};
use crate::scenario::ScenarioSet;
use crate::traffic::shard::Shard;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The body of a `sim` shard file.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimShard {
    /// What the report is built around (the same in every shard of one sweep).
    pub frame: SweepFrame,
    /// The runs this shard ran, by item, ascending.
    pub runs: Vec<SimItem>,
}

/// One run of a shard.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimItem {
    /// Its position in matrix order: point × repeat + run.
    pub item: u64,
    /// What it produced.
    pub run: OneRun,
}

/// The items of a sweep of `points` × `repeat` that `shard` owns, as (point, run).
fn owned(points: usize, repeat: usize, shard: Shard) -> impl Iterator<Item = (u64, usize, usize)> {
    let total = points as u64 * repeat as u64;
    // the first item it owns is its index; then every count-th
    (u64::from(shard.index)..total)
        .step_by(shard.count as usize)
        .map(move |k| (k, (k / repeat as u64) as usize, (k % repeat as u64) as usize))
}

/// What a shard did.
#[derive(Debug)]
pub struct ShardOutcome {
    /// Runs it owns.
    pub owned: usize,
    /// Runs it ran (fewer when interrupted).
    pub ran: usize,
    /// Ctrl-C / SIGTERM cut it short (its file says so).
    pub interrupted: bool,
}

/// Runs `plan.shard`'s share of `set` and writes its file to `plan.result`.
pub fn run_shard(set: &ScenarioSet, o: &RunOptions, plan: &ShardPlan) -> anyhow::Result<ShardOutcome> {
    let path = plan
        .result
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("a sim shard needs --result PATH"))?;
    let n = o.repeat.max(1);
    let shard = plan.shard;
    let items: Vec<(u64, usize, usize)> = owned(set.points.len(), n, shard).collect();
    let jobs: Vec<(usize, usize)> = items.iter().map(|&(_, i, k)| (i, k)).collect();
    let runs_of = |i: usize| (0..n).filter(|k| shard.owns((i * n + k) as u64)).count();
    // the first run of each point keeps its incident view, for `merge --html`
    let mut o = o.clone();
    o.incident = true;
    // the progress line counts every run of every point; a shard says what it ran at the end
    o.progress &= shard.is_whole();
    let (results, interrupted) = crate::run::simulate_jobs(set, &o, &jobs, &runs_of)?;
    let mut runs = Vec::with_capacity(items.len());
    for (&(item, _, _), r) in items.iter().zip(results) {
        match r {
            Some(r) => runs.push(SimItem { item, run: r? }),
            None => debug_assert!(interrupted, "every job ran"),
        }
    }
    let ran = runs.len();
    let complete = !interrupted && ran == items.len();
    let seed = set.points.first().map_or(1, |p| base_seed(&p.scenario, &o));
    let file = ShardFile {
        chaosgate_shard: plan.header(Kind::Sim, shard::work_fingerprint(set, &o), seed, complete),
        body: SimShard {
            frame: SweepFrame::of(set, &o),
            runs,
        },
    };
    shard::write(path, &file)?;
    Ok(ShardOutcome {
        owned: items.len(),
        ran,
        interrupted,
    })
}

/// Reads the `sim` shards of `set` (checked by [`shard::check_set`]) and builds the report
/// the unsharded `sim` would have written, with `asserts` checked on every point besides
/// the shards' own. With shards missing or interrupted (`--allow-missing`) the report is
/// partial: each point whose runs are not all there says which are missing, is marked
/// partial, and the sweep does not pass.
pub fn merge(set: &ShardSet, asserts: &[Assertion]) -> anyhow::Result<SweepReport> {
    let bytes: u64 = set
        .files
        .values()
        .map(|(p, _)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    if bytes > shard::MAX_FILE_BYTES {
        anyhow::bail!(
            "the sim shard files hold {bytes} bytes, more than one merge reads ({}): merge fewer points or repeats at a time",
            shard::MAX_FILE_BYTES
        );
    }
    let mut frame: Option<(std::path::PathBuf, SweepFrame)> = None;
    let mut runs: BTreeMap<u64, OneRun> = BTreeMap::new();
    for (path, header) in set.files.values() {
        let file: ShardFile<SimShard> = shard::read(path)?;
        let body = file.body;
        match &frame {
            None => {
                check_frame(path, &body.frame)?;
                frame = Some((path.clone(), body.frame));
            }
            Some((p0, f0)) if *f0 != body.frame => anyhow::bail!(
                "{} and {} are shards of the same sweep run with different checks (--assert or --allow-in-flight): \
                 give every shard the same ones, or give --assert to chaosgate merge",
                p0.display(),
                path.display()
            ),
            Some(_) => {}
        }
        let Some((_, f)) = &frame else {
            unreachable!("set above")
        };
        let total = f.points.len() as u64 * f.repeat as u64;
        let mut last: Option<u64> = None;
        let mut held = 0u64;
        for SimItem { item, run } in body.runs {
            if item >= total {
                anyhow::bail!(
                    "{}: run {item} is past the sweep's {total} runs ({} points × {} repeats)",
                    path.display(),
                    f.points.len(),
                    f.repeat
                );
            }
            if !header.shard.owns(item) {
                anyhow::bail!(
                    "{}: run {item} is not shard {}'s (it is shard {}'s)",
                    path.display(),
                    header.shard,
                    item % u64::from(header.shard.count)
                );
            }
            if last.is_some_and(|l| l >= item) {
                anyhow::bail!("{}: runs out of order or repeated at run {item}", path.display());
            }
            last = Some(item);
            held += 1;
            runs.insert(item, run);
        }
        if header.complete {
            let owned = header.shard.share_of(total);
            if held != owned {
                anyhow::bail!(
                    "{}: marked complete but holds {held} of shard {}'s {owned} runs",
                    path.display(),
                    header.shard
                );
            }
        }
    }
    let Some((_, mut frame)) = frame else {
        anyhow::bail!("no sim shard files to merge");
    };
    for p in &mut frame.points {
        p.asserts.extend(asserts.iter().cloned());
    }
    let n = frame.repeat;
    let count = set.count;
    let mut points = Vec::with_capacity(frame.points.len());
    for i in 0..frame.points.len() {
        let first = i as u64 * n as u64;
        let mut have = Vec::new();
        let mut missing = Vec::new();
        for k in 0..n {
            match runs.remove(&(first + k as u64)) {
                Some(r) => have.push(r),
                None => missing.push(k),
            }
        }
        let gap = (!missing.is_empty()).then(|| gap_note(&missing, n, first, count));
        points.push((have, gap));
    }
    let mut sw = crate::run::sim_report_with_gaps(&frame, points);
    if !set.whole() {
        // an interrupted shard's last run may be cut short though none is missing
        sw.partial = true;
        sw.passed = false;
    }
    Ok(sw)
}

/// Which runs of a point are missing and whose they were.
fn gap_note(missing: &[usize], n: usize, first: u64, count: u32) -> String {
    let mut shards: Vec<u64> = missing.iter().map(|k| (first + *k as u64) % u64::from(count)).collect();
    shards.sort_unstable();
    shards.dedup();
    let list = |v: Vec<String>| v.join(", ");
    format!(
        "partial merge: {} of {n} run{} of this point missing (run{} {}, of shard{} {} of {count})",
        missing.len(),
        if n == 1 { "" } else { "s" },
        if missing.len() == 1 { "" } else { "s" },
        list(missing.iter().map(usize::to_string).collect()),
        if shards.len() == 1 { "" } else { "s" },
        list(shards.iter().map(u64::to_string).collect()),
    )
}

/// A frame read from a file: within the limits a `sim` would have kept.
fn check_frame(path: &std::path::Path, f: &SweepFrame) -> anyhow::Result<()> {
    let max_points = crate::scenario::MAX_SWEEP_POINTS;
    if f.points.is_empty() || f.points.len() as u64 > max_points {
        anyhow::bail!(
            "{}: {} sweep points (a sweep has 1 to {max_points})",
            path.display(),
            f.points.len()
        );
    }
    let max_repeat = crate::run::limits::MAX_REPEAT as usize;
    if f.repeat == 0 || f.repeat > max_repeat {
        anyhow::bail!("{}: --repeat {} (1 to {max_repeat})", path.display(), f.repeat);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owned_items_are_the_split_rule_s() {
        for count in [1u32, 2, 3, 7, 40] {
            for index in 0..count {
                let s = Shard::new(index, count).unwrap();
                let got: Vec<u64> = owned(5, 3, s).map(|(k, _, _)| k).collect();
                let want: Vec<u64> = (0..15).filter(|k| s.owns(*k)).collect();
                assert_eq!(got, want, "{s}");
                for (k, i, r) in owned(5, 3, s) {
                    assert_eq!(k, i as u64 * 3 + r as u64);
                }
            }
        }
    }

    /// Every run of every example the simulator runs survives the shard file's round trip:
    /// the report rebuilt from the runs as a merge reads them is the unsharded one, byte for
    /// byte (costs, Retry-After figures, hangs, the floats' last bits included), and so are
    /// the incident views the HTML report draws.
    #[test]
    #[allow(clippy::disallowed_methods)] // the test reads the example files
    fn every_example_s_runs_round_trip_exactly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for dir in ["examples/incidents", "examples/scenarios"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                // (a providers-only file is not a scenario)
                let Ok(set) = crate::scenario::load(&f, &[]) else {
                    continue;
                };
                if set.points[0].scenario.gateway.builtin().is_none() {
                    continue;
                }
                let mut o = RunOptions::new(std::env::temp_dir());
                o.repeat = 2;
                o.incident = true;
                let n = o.repeat;
                let jobs: Vec<(usize, usize)> = (0..set.points.len())
                    .flat_map(|i| (0..n).map(move |k| (i, k)))
                    .collect();
                let (results, interrupted) = crate::run::simulate_jobs(&set, &o, &jobs, &|_| n).unwrap();
                assert!(!interrupted);
                let runs: Vec<OneRun> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
                let file = SimShard {
                    frame: SweepFrame::of(&set, &o),
                    runs: runs
                        .iter()
                        .enumerate()
                        .map(|(k, r)| SimItem {
                            item: k as u64,
                            run: r.clone(),
                        })
                        .collect(),
                };
                let text = serde_json::to_string(&file).unwrap();
                let back: SimShard = serde_json::from_str(&text).unwrap();
                assert_eq!(serde_json::to_string(&back).unwrap(), text, "{}", f.display());
                assert_eq!(back.frame, file.frame);
                let by_point = |runs: Vec<OneRun>| -> Vec<Vec<OneRun>> { runs.chunks(n).map(<[_]>::to_vec).collect() };
                let want = crate::run::sim_report(&file.frame, by_point(runs), false);
                let got = crate::run::sim_report(
                    &back.frame,
                    by_point(back.runs.into_iter().map(|i| i.run).collect()),
                    false,
                );
                let pretty = |s: &SweepReport| serde_json::to_string_pretty(&s.to_json()).unwrap();
                assert_eq!(pretty(&got), pretty(&want), "{}", f.display());
                // the HTML report's views too (not in the JSON)
                for (g, w) in got.points.iter().zip(&want.points) {
                    assert!(w.report.incident.is_some());
                    assert_eq!(g.report.incident, w.report.incident, "{}", f.display());
                }
                checked += 1;
            }
        }
        assert!(checked >= 9, "{checked} examples");
    }

    const SRC: &str = r#"
name = "t"
seed = 3
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "5s"
duration = "5s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "5s", timeout = "1s", unhealthy_threshold = 1, healthy_threshold = 1 }
[traffic]
rate = 20.0
duration = "20s"
[sweep]
"gateway.health_check.interval" = ["2s", "5s"]
"#;

    #[test]
    fn the_fingerprint_is_the_work_not_how_it_was_given() {
        let load = |file: &str, dir: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            crate::scenario::load_str(file, SRC, std::path::Path::new(dir), &sets).unwrap()
        };
        let o = |seed: Option<u64>, repeat: usize, assert: bool| {
            let mut o = RunOptions::new(std::env::temp_dir());
            (o.seed, o.repeat) = (seed, repeat);
            if assert {
                o.asserts = vec!["resilience.detection_s.max <= 10".parse().unwrap()];
            }
            o
        };
        let base = shard::work_fingerprint(&load("s.toml", ".", &[]), &o(None, 2, false));
        // read from elsewhere, the seed given as --seed rather than by the file, --assert
        // added: the same work
        let same = shard::work_fingerprint(&load("/work/cfg/s.toml", "/work/cfg", &[]), &o(Some(3), 2, true));
        assert_eq!(same, base);
        // another seed, repeat count, --set or sweep: other work
        for (set, seed, repeat) in [
            (vec![], Some(4), 2),
            (vec![], None, 3),
            (vec!["traffic.rate=21"], None, 2),
            (vec!["sweep.gateway.health_check.interval=[\"2s\", \"6s\"]"], None, 2),
        ] {
            let other = shard::work_fingerprint(&load("s.toml", ".", &set), &o(seed, repeat, false));
            assert_ne!(other, base, "{set:?} {seed:?} {repeat}");
        }
    }

    #[test]
    fn a_gap_names_the_runs_and_their_shards() {
        // point 1 of a sweep with 3 runs a point: items 3, 4, 5; shards of 2: 1, 0, 1
        assert_eq!(
            gap_note(&[0, 2], 3, 3, 2),
            "partial merge: 2 of 3 runs of this point missing (runs 0, 2, of shard 1 of 2)"
        );
        assert_eq!(
            gap_note(&[0], 1, 4, 3),
            "partial merge: 1 of 1 run of this point missing (run 0, of shard 1 of 3)"
        );
    }
}
