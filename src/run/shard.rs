//! Shard result files and the checks a merge makes before it trusts them
//! (docs/sharding.md).
//!
//! A sharded `load`, `run` or `sim` writes one JSON file (`--result PATH`):
//! `{"chaosgate_shard": <header>, "body": <what the kind merges>}`. The header says which
//! shard of which work it is; [`check_set`] refuses a set of files that are not shards of
//! one work (another scenario, seed, count or kind, a shard given twice) and names the
//! shards that are missing, so a killed shard is never silently dropped.

use crate::time::Nanos;
use crate::traffic::shard::Shard;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file format's version; a merge refuses any other.
pub const FORMAT: u32 = 1;

/// The largest shard file a merge reads.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// What produced a shard file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `chaosgate load`.
    Load,
    /// `chaosgate run`.
    Run,
    /// `chaosgate sim`.
    Sim,
}

impl Kind {
    /// The command's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Load => "load",
            Kind::Run => "run",
            Kind::Sim => "sim",
        }
    }
}

/// Who a shard is and what work it is a part of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// The command that wrote it.
    pub kind: Kind,
    /// Which shard.
    pub shard: Shard,
    /// The shard's name (`shard-0` unless `--shard-name`).
    pub name: String,
    /// Where it ran (`--region`), for per-region breakdowns.
    pub region: Option<String>,
    /// Everything that must be equal across the shards of one work (the scenario after
    /// `--set`, the schedule's flags), hashed: two shards with different fingerprints are
    /// parts of different work.
    pub fingerprint: String,
    /// The work's seed.
    pub seed: u64,
    /// The chaosgate version that wrote it.
    pub version: String,
    /// False when the shard was interrupted (its part is partial).
    pub complete: bool,
}

/// How a sharded command runs: its shard and labels, when it starts, where its file goes.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardPlan {
    /// Which shard (`0/1` when not sharded).
    pub shard: Shard,
    /// `shard-I` unless given.
    pub name: String,
    /// `--region`.
    pub region: Option<String>,
    /// `--start-at`: the wall-clock time every shard starts its schedule at (live only).
    pub start_at: Option<SystemTime>,
    /// `--result`: the mergeable result file.
    pub result: Option<PathBuf>,
}

impl ShardPlan {
    /// The header of this plan's file.
    pub fn header(&self, kind: Kind, fingerprint: String, seed: u64, complete: bool) -> Header {
        Header {
            format: FORMAT,
            kind,
            shard: self.shard,
            name: self.name.clone(),
            region: self.region.clone(),
            fingerprint,
            seed,
            version: env!("CARGO_PKG_VERSION").to_string(),
            complete,
        }
    }
}

/// The fingerprint of some work: FNV-1a 64 (the project's one stable hash) of its
/// canonical description, in hex.
pub fn fingerprint(canonical: &str) -> String {
    fingerprint_text(crate::rng::fnv1a(canonical))
}

/// The fingerprint's text of an FNV-1a 64 hash ([`crate::rng::Fnv1a`] for a description
/// hashed as it is written).
pub fn fingerprint_text(hash: u64) -> String {
    format!("{hash:016x}")
}

/// The fingerprint of a scenario's work (`run` and `sim` shards): its resolved points (after `--set` and `--sweep`, without
/// the file's path), each point's first seed (`--seed`, else the scenario's, else 1) and
/// `--repeat`. `--assert`s are not in it (the merge compares them itself, to say so).
pub fn work_fingerprint(set: &crate::scenario::ScenarioSet, o: &crate::run::RunOptions) -> String {
    use std::fmt::Write as _;
    let mut h = crate::rng::Fnv1a::new();
    // formatting into the hasher cannot fail
    let _ = write!(h, "scenario work\nrepeat={}\naxes={:?}\n", o.repeat.max(1), set.axes);
    for p in &set.points {
        let mut s = p.scenario.clone();
        // where the file was read from is not part of the work; its seed is, as the
        // first seed the runs use (below)
        s.file.clear();
        s.dir = std::path::PathBuf::new();
        s.seed = None;
        let _ = write!(
            h,
            "point {:?} seed {}\n{s:?}\n",
            p.params,
            crate::run::base_seed(&p.scenario, o)
        );
    }
    fingerprint_text(h.finish())
}

/// A shard file: its header and its kind's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardFile<T> {
    /// Who it is.
    pub chaosgate_shard: Header,
    /// What its kind merges.
    pub body: T,
}

/// Writes `file` to `path` (compact JSON: the histograms make it large).
pub fn write<T: Serialize>(path: &Path, file: &ShardFile<T>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string(file)?;
    std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Reads a shard file whole (bounded by [`MAX_FILE_BYTES`]).
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<ShardFile<T>> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a chaosgate shard file: {e}", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        anyhow::bail!(
            "{}: {} bytes, more than a shard file may have ({MAX_FILE_BYTES})",
            path.display(),
            meta.len()
        );
    }
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// Only the header of a shard file.
#[derive(Deserialize)]
struct HeaderOnly {
    chaosgate_shard: Header,
}

/// Reads the header of the file at `path`.
pub fn read_header(path: &Path) -> anyhow::Result<Header> {
    let text = read_text(path)?;
    let h: HeaderOnly = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a chaosgate shard file (no \"chaosgate_shard\" header): {e}",
            path.display()
        )
    })?;
    if h.chaosgate_shard.format != FORMAT {
        anyhow::bail!(
            "{}: shard file format {}, this chaosgate reads format {FORMAT}",
            path.display(),
            h.chaosgate_shard.format
        );
    }
    Ok(h.chaosgate_shard)
}

/// A set of shard files that [`check_set`] found to be parts of one work.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardSet {
    /// What wrote them.
    pub kind: Kind,
    /// How many shards the work was split into.
    pub count: u32,
    /// The files present, by shard index.
    pub files: BTreeMap<u32, (PathBuf, Header)>,
    /// Indices with no file.
    pub missing: Vec<u32>,
    /// Shards whose own run was interrupted.
    pub incomplete: Vec<u32>,
}

impl ShardSet {
    /// Whether every shard is here and complete.
    pub fn whole(&self) -> bool {
        self.missing.is_empty() && self.incomplete.is_empty()
    }

    /// One line on what is missing or partial (`None` when whole).
    pub fn gaps(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "shard{} {} of {} missing",
                plural(self.missing.len()),
                list(&self.missing),
                self.count
            ));
        }
        if !self.incomplete.is_empty() {
            parts.push(format!(
                "shard{} {} interrupted",
                plural(self.incomplete.len()),
                list(&self.incomplete)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Checks that `files` (path, header) are shards of one work: the same kind, format,
/// fingerprint, seed and count, each index once. Names the missing and interrupted ones.
pub fn check_set(files: Vec<(PathBuf, Header)>) -> anyhow::Result<ShardSet> {
    let Some((p0, h0)) = files.first().cloned() else {
        anyhow::bail!("no shard files given");
    };
    let mut by_index: BTreeMap<u32, (PathBuf, Header)> = BTreeMap::new();
    for (p, h) in files {
        let differ = |what: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "{} and {} are not shards of the same work: {what} {a} ≠ {b}",
                p0.display(),
                p.display()
            )
        };
        if h.kind != h0.kind {
            return Err(differ("written by", &h0.kind.as_str(), &h.kind.as_str()));
        }
        if h.shard.count != h0.shard.count {
            return Err(differ("shard count", &h0.shard.count, &h.shard.count));
        }
        if h.seed != h0.seed {
            return Err(differ("seed", &h0.seed, &h.seed));
        }
        if h.fingerprint != h0.fingerprint {
            return Err(differ(
                "scenario or schedule (fingerprint)",
                &h0.fingerprint,
                &h.fingerprint,
            ));
        }
        if let Some((q, _)) = by_index.get(&h.shard.index) {
            anyhow::bail!(
                "{} and {} are both shard {}: each shard once",
                q.display(),
                p.display(),
                h.shard
            );
        }
        by_index.insert(h.shard.index, (p, h));
    }
    let count = h0.shard.count;
    let missing = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    let incomplete = by_index
        .iter()
        .filter(|(_, (_, h))| !h.complete)
        .map(|(i, _)| *i)
        .collect();
    Ok(ShardSet {
        kind: h0.kind,
        count,
        files: by_index,
        missing,
        incomplete,
    })
}

/// The body of a `chaosgate load` shard file: everything the load report, its CSV, hlog
/// and HTML outputs read, at full resolution, so that a merge renders the report one
/// machine would have.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadBody {
    /// `--target` (a label: shards in different regions may use different URLs).
    pub target: String,
    /// The schedule's time zero, wall clock, ns since the Unix epoch (`--start-at`).
    pub start_unix_ns: u64,
    /// How late this shard started its schedule after `--start-at` (ns).
    pub late: Nanos,
    /// `--users` (the CSV's user count).
    pub users: u32,
    /// `--allow-in-flight`: whether requests in flight at the end pass.
    pub allow_in_flight: bool,
    /// Requests scheduled, in flight at the end, durations, interrupted.
    pub totals: crate::live::load::LoadTotals,
    /// Warnings of this shard's own (a late start).
    pub warnings: Vec<String>,
    /// Every count and histogram.
    pub aggregator: crate::analysis::Aggregator,
    /// What the Locust CSV adds.
    pub csv: crate::report::locust::CsvLog,
}

impl LoadBody {
    /// A finished run's body.
    pub fn of(
        r: crate::live::load::LoadResult,
        start: SystemTime,
        late: Nanos,
        users: u32,
        allow_in_flight: bool,
        warnings: Vec<String>,
    ) -> LoadBody {
        LoadBody {
            target: String::new(),
            start_unix_ns: unix_ns(start),
            late,
            users,
            allow_in_flight,
            totals: r.totals,
            warnings,
            aggregator: r.aggregator,
            csv: r.csv,
        }
    }

    /// The schedule's wall-clock time zero.
    pub fn start(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(self.start_unix_ns)
    }
}

/// `t` in ns since the Unix epoch (0 before it).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl LoadBody {
    /// Adds another shard's body: counts summed, statistics merged exactly
    /// ([`crate::analysis::Aggregator::merge`]), the longest durations, the earliest start,
    /// interrupted when either was.
    pub fn absorb(&mut self, o: LoadBody) -> anyhow::Result<()> {
        self.aggregator
            .merge(&o.aggregator)
            .map_err(|e| anyhow::anyhow!("cannot merge the shards' statistics: {e}"))?;
        self.csv
            .merge(&o.csv)
            .map_err(|e| anyhow::anyhow!("cannot merge the shards' CSV logs: {e}"))?;
        self.totals.add(&o.totals);
        self.start_unix_ns = self.start_unix_ns.min(o.start_unix_ns);
        self.late = self.late.max(o.late);
        self.users = self.users.max(o.users);
        self.allow_in_flight &= o.allow_in_flight;
        self.warnings.extend(o.warnings);
        Ok(())
    }

    /// The (merged) body as the load client's result.
    pub fn into_result(self) -> crate::live::load::LoadResult {
        crate::live::load::LoadResult {
            aggregator: self.aggregator,
            totals: self.totals,
            csv: self.csv,
            ends: Vec::new(),
        }
    }
}

/// The body of a `chaosgate run` shard file: per sweep point, what the merge needs to
/// analyse it as one run — the point's settings (from the scenario after `--set` and
/// `--sweep`) and each run's recording ([`crate::live::once::RecordedRun`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct RunBody {
    /// The scenario's name.
    pub scenario: String,
    /// The swept paths.
    pub axes: Vec<String>,
    /// The matrix's size (points); a shard interrupted early holds fewer.
    pub points_planned: usize,
    /// Runs per point.
    pub repeat: usize,
    /// The points that ran, in matrix order.
    pub points: Vec<RunPointBody>,
}

/// One sweep point of a run shard.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunPointBody {
    /// The swept values.
    pub params: Vec<(String, String)>,
    /// The scenario's name.
    pub name: String,
    /// `time_scale`.
    pub time_scale: f64,
    /// `[slo]`.
    pub slo: crate::analysis::budget::SloConfig,
    /// `[detection]`.
    pub detection: crate::analysis::resilience::DetectionConfig,
    /// `[prices]`.
    pub prices: Option<crate::analysis::cost::PriceTable>,
    /// The mix's models (the cost report's rows).
    pub models: Vec<String>,
    /// The scenario's `[[assert]]`s and the `--assert`s, as text.
    pub asserts: Vec<String>,
    /// `--allow-in-flight`.
    pub allow_in_flight: bool,
    /// The gateway part of the report (this shard's).
    pub gateway: crate::analysis::results::GatewayInfo,
    /// The point's notes (this shard's).
    pub warnings: Vec<String>,
    /// Each run's recording, run 0 first.
    pub runs: Vec<crate::live::once::RecordedRun>,
}

impl RunPointBody {
    /// Point `i` of `set` as run with `o`, and its runs' recordings.
    pub fn of(
        set: &crate::scenario::ScenarioSet,
        i: usize,
        o: &super::RunOptions,
        gateway: crate::analysis::results::GatewayInfo,
        warnings: Vec<String>,
        runs: Vec<crate::live::once::RecordedRun>,
    ) -> RunPointBody {
        let p = &set.points[i];
        let s = &p.scenario;
        RunPointBody {
            params: p.params.clone(),
            name: s.name.clone(),
            time_scale: s.time_scale,
            slo: s.slo.clone(),
            detection: s.detection.clone(),
            prices: s.prices.clone(),
            models: s.plan.mix.models(),
            asserts: s.asserts.iter().chain(&o.asserts).map(ToString::to_string).collect(),
            allow_in_flight: o.allow_in_flight,
            gateway,
            warnings,
            runs,
        }
    }

    /// Adds another shard's recordings of the same point.
    pub fn absorb(&mut self, o: RunPointBody) -> anyhow::Result<()> {
        if self.params != o.params || self.runs.len() != o.runs.len() {
            anyhow::bail!(
                "point {:?}: the shards ran different points or numbers of runs",
                self.params
            );
        }
        for (k, (mine, other)) in self.runs.iter_mut().zip(o.runs).enumerate() {
            mine.absorb(other).map_err(|e| anyhow::anyhow!("run {k}: {e}"))?;
        }
        self.gateway.events += o.gateway.events;
        Ok(())
    }

    /// The point's report from its (merged) recordings: the same analysis a run makes
    /// (`live::once::analyse_recorded`, `run::point_of`).
    pub fn report(&self, view: bool) -> anyhow::Result<crate::analysis::results::PointReport> {
        let asserts = self
            .asserts
            .iter()
            .map(|a| a.parse().map_err(|m: String| anyhow::anyhow!("assertion {a:?}: {m}")))
            .collect::<anyhow::Result<Vec<crate::analysis::assert::Assertion>>>()?;
        let runs = self
            .runs
            .iter()
            .enumerate()
            .map(|(k, r)| {
                crate::live::once::analyse_recorded(
                    &self.slo,
                    &self.detection,
                    self.prices.as_ref(),
                    &self.models,
                    r,
                    view && k == 0,
                )
            })
            .collect();
        Ok(super::point_of(
            &self.name,
            self.time_scale,
            &self.params,
            &asserts,
            self.allow_in_flight,
            "live",
            runs,
            self.gateway.clone(),
            self.warnings.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(index: u32, count: u32) -> Header {
        ShardPlan {
            shard: Shard::new(index, count).unwrap(),
            name: format!("shard-{index}"),
            region: None,
            start_at: None,
            result: None,
        }
        .header(Kind::Load, fingerprint("rate=10"), 7, true)
    }

    fn files(hs: Vec<Header>) -> Vec<(PathBuf, Header)> {
        hs.into_iter()
            .map(|h| (PathBuf::from(format!("s{}.json", h.shard.index)), h))
            .collect()
    }

    #[test]
    fn a_whole_set_checks() {
        let s = check_set(files(vec![h(1, 3), h(0, 3), h(2, 3)])).unwrap();
        assert!(s.whole());
        assert_eq!(s.files.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(s.gaps(), None);
    }

    #[test]
    fn a_killed_shard_is_named_missing() {
        let mut late = h(2, 4);
        late.complete = false;
        let s = check_set(files(vec![h(0, 4), late, h(3, 4)])).unwrap();
        assert_eq!(s.missing, [1]);
        assert_eq!(s.incomplete, [2]);
        assert_eq!(s.gaps().unwrap(), "shard 1 of 4 missing; shard 2 interrupted");
    }

    #[test]
    fn shards_of_different_work_refuse_to_merge() {
        let mut other_seed = h(1, 2);
        other_seed.seed = 8;
        let e = check_set(files(vec![h(0, 2), other_seed])).unwrap_err().to_string();
        assert!(e.contains("seed 7 ≠ 8"), "{e}");
        let mut other = h(1, 2);
        other.fingerprint = fingerprint("rate=20");
        let e = check_set(files(vec![h(0, 2), other])).unwrap_err().to_string();
        assert!(e.contains("fingerprint"), "{e}");
        let e = check_set(files(vec![h(0, 2), h(1, 3)])).unwrap_err().to_string();
        assert!(e.contains("shard count 2 ≠ 3"), "{e}");
        let mut sim = h(1, 2);
        sim.kind = Kind::Sim;
        let e = check_set(files(vec![h(0, 2), sim])).unwrap_err().to_string();
        assert!(e.contains("written by load ≠ sim"), "{e}");
        let e = check_set(files(vec![h(0, 2), h(0, 2)])).unwrap_err().to_string();
        assert!(e.contains("both shard 0/2"), "{e}");
        assert!(check_set(Vec::new()).is_err());
    }
}
