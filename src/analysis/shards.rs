//! Per-shard and per-region breakdowns of a merged run (`chaosgate merge`,
//! docs/sharding.md): what each worker and each region sent and saw, beside the merged
//! report of the whole.

use super::hist::{Hist, Summary};
use super::Aggregator;
use serde::Serialize;
use std::collections::BTreeMap;

/// One shard's part, as the merge read it (its file is dropped once read: the merge holds
/// one file at a time).
#[derive(Clone, Debug)]
pub struct ShardPart {
    /// Shard index.
    pub index: u32,
    /// `--shard-name`.
    pub name: String,
    /// `--region`.
    pub region: Option<String>,
    /// Ok, failed, dropped.
    pub counts: (u64, u64, u64),
    /// End-to-end latency of its sent requests.
    pub latency: Hist,
    /// Requests its schedule started.
    pub scheduled: u64,
    /// Requests of it unaccounted for at its end.
    pub in_flight_at_end: u64,
    /// How late it started after `--start-at` (ns; 0 when on time or not given).
    pub late: crate::time::Nanos,
    /// Whether its own run completed.
    pub complete: bool,
}

impl ShardPart {
    /// The figures of `agg`, shard `index` named `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        index: u32,
        name: &str,
        region: Option<&str>,
        agg: &Aggregator,
        scheduled: u64,
        in_flight_at_end: u64,
        late: crate::time::Nanos,
        complete: bool,
    ) -> ShardPart {
        let g = agg.overall();
        ShardPart {
            index,
            name: name.to_string(),
            region: region.map(String::from),
            counts: (g.ok, g.failed, g.dropped),
            latency: g.latency,
            scheduled,
            in_flight_at_end,
            late,
            complete,
        }
    }
}

/// One row of a breakdown: a shard's or a region's figures.
#[derive(Clone, Debug, Serialize)]
pub struct BreakdownRow {
    /// The shard's name, or the region (`-` for shards with none).
    pub name: String,
    /// The shard's index (none for a region row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The shard's region (shard rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How many shards (region rows: those in the region).
    pub shards: u32,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Ok.
    pub ok: u64,
    /// Failed (sent, not ok).
    pub failed: u64,
    /// Dropped at the concurrency cap.
    pub dropped: u64,
    /// In flight at the end.
    pub in_flight_at_end: u64,
    /// failed / (ok + failed).
    pub error_rate: f64,
    /// End-to-end latency from intended send (the region's: of all its requests at once).
    pub latency_ms: Summary,
    /// Largest start lateness after `--start-at`, seconds.
    pub late_s: f64,
    /// False when a shard's run (or one of the region's) was interrupted.
    pub complete: bool,
}

/// The breakdown: each shard present, each region, and what is missing.
#[derive(Clone, Debug, Serialize)]
pub struct Breakdown {
    /// Shards the work was split into.
    pub count: u32,
    /// Indices with no result file.
    pub missing: Vec<u32>,
    /// Indices whose run was interrupted.
    pub incomplete: Vec<u32>,
    /// Whether the merged report covers less than the whole work.
    pub partial: bool,
    /// Per shard, by index.
    pub by_shard: Vec<BreakdownRow>,
    /// Per region (`-`: shards without `--region`), by name.
    pub by_region: Vec<BreakdownRow>,
}

#[derive(Default)]
struct Acc {
    shards: u32,
    scheduled: u64,
    in_flight: u64,
    ok: u64,
    failed: u64,
    dropped: u64,
    latency: Option<Hist>,
    late: crate::time::Nanos,
    complete: bool,
}

impl Acc {
    fn add(&mut self, p: &ShardPart) {
        if self.shards == 0 {
            self.complete = true;
        }
        self.shards += 1;
        self.scheduled += p.scheduled;
        self.in_flight += p.in_flight_at_end;
        self.ok += p.counts.0;
        self.failed += p.counts.1;
        self.dropped += p.counts.2;
        match &mut self.latency {
            Some(h) => h.merge(&p.latency),
            None => self.latency = Some(p.latency.clone()),
        }
        self.late = self.late.max(p.late);
        self.complete &= p.complete;
    }

    fn row(self, name: String, index: Option<u32>, region: Option<String>) -> BreakdownRow {
        let sent = self.ok + self.failed;
        BreakdownRow {
            name,
            index,
            region,
            shards: self.shards,
            scheduled: self.scheduled,
            ok: self.ok,
            failed: self.failed,
            dropped: self.dropped,
            in_flight_at_end: self.in_flight,
            error_rate: if sent == 0 {
                0.0
            } else {
                self.failed as f64 / sent as f64
            },
            latency_ms: self.latency.map_or_else(Summary::default, |h| h.summary()),
            late_s: crate::time::nanos_to_secs_f64(self.late),
            complete: self.complete,
        }
    }
}

/// The breakdown of `parts` (the shards present) of a work split `count` ways.
pub fn breakdown(count: u32, parts: &[ShardPart], missing: &[u32]) -> Breakdown {
    let mut by_shard = Vec::new();
    let mut regions: BTreeMap<String, Acc> = BTreeMap::new();
    for p in parts {
        let mut a = Acc::default();
        a.add(p);
        by_shard.push(a.row(p.name.clone(), Some(p.index), p.region.clone()));
        regions
            .entry(p.region.clone().unwrap_or_else(|| "-".into()))
            .or_default()
            .add(p);
    }
    by_shard.sort_by_key(|r| r.index);
    let incomplete: Vec<u32> = parts.iter().filter(|p| !p.complete).map(|p| p.index).collect();
    Breakdown {
        count,
        partial: !missing.is_empty() || !incomplete.is_empty(),
        missing: missing.to_vec(),
        incomplete,
        by_shard,
        by_region: regions.into_iter().map(|(r, a)| a.row(r, None, None)).collect(),
    }
}
