//! Turns request records into numbers. Memory is bounded by time buckets, not by request
//! count: records are folded into HDR histograms as they arrive and then dropped.
//!
//! Definitions (vLLM's benchmark conventions, except that every latency is measured from
//! the **intended** send time, so a stalled server cannot hide queueing — no coordinated
//! omission):
//! - **latency** (end-to-end): end − intended start. `latency_uncorrected_ms`: end − actual
//!   send. **schedule lag**: actual send − intended start.
//! - **TTFT**: first content token − intended start (streams that produced a token).
//! - **ITL**: the gap between two consecutive content tokens of one stream (each gap is one
//!   sample).
//! - **TPOT**: (end − first token) / (output tokens − 1), per stream with ≥ 2 tokens.
//! - **per-request decode speed**: 1 / TPOT in tokens/s.
//! - **output_tps.{avg,peak,min,cv}**: over the 1-s buckets of the run that completed at
//!   least one stream, the mean per-request decode speed of the streams completed in that
//!   bucket; avg is the mean of those per-bucket values, peak the largest, min the
//!   smallest, cv = population standard deviation / mean (the article's "stability").
//! - **error rate**: failed / (ok + failed); dropped requests are not sent and not counted.
//! - **goodput**: ok requests per second that also met every SLO threshold given (TTFT,
//!   TPOT, end-to-end).

pub mod assert;
pub mod attempts;
pub mod budget;
pub mod cost;
pub mod hist;
pub mod incident;
mod load_report;
mod merge;
pub mod resilience;
pub mod results;
pub mod run;
pub mod shards;
pub mod share;

pub use load_report::{
    in_flight_warning, EmbeddingsStats, GroupReport, LoadReport, RequestCounts, Throughput, Timeline, Tps,
};

use crate::record::{Outcome, RequestRecord};
use crate::time::{Nanos, NS_PER_S};
use hist::{Counts, Hist, Placed, Placer};
use std::collections::BTreeMap;

/// SLO thresholds for goodput.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SloThresholds {
    /// TTFT at most this.
    pub ttft: Option<Nanos>,
    /// TPOT at most this.
    pub tpot: Option<Nanos>,
    /// End-to-end latency at most this.
    pub e2e: Option<Nanos>,
}

/// Statistics of one group of requests (overall, a provider, a kind, a phase).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// Counts.
    pub ok: u64,
    /// Failed (sent, not ok).
    pub failed: u64,
    /// Dropped (never sent).
    pub dropped: u64,
    /// End-to-end latency from intended start.
    pub latency: Hist,
    /// End-to-end latency from actual send.
    pub latency_uncorrected: Hist,
    /// Time to first token.
    pub ttft: Hist,
    /// Inter-token latency.
    pub itl: Hist,
    /// Time per output token.
    pub tpot: Hist,
    /// Output tokens of ok requests.
    pub output_tokens: u64,
    /// Ok requests meeting the SLO thresholds.
    pub good: u64,
    /// Failures by outcome (see [`Group::failures`]), in first-seen order, each with its
    /// key: counting a failure allocates nothing and looks nothing up by name.
    keys: Vec<(Outcome, String, u64)>,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            ok: 0,
            failed: 0,
            dropped: 0,
            latency: Hist::new(3),
            latency_uncorrected: Hist::new(3),
            ttft: Hist::new(3),
            itl: Hist::new(3),
            tpot: Hist::new(3),
            output_tokens: 0,
            good: 0,
            keys: Vec::new(),
        }
    }
}

/// A record's durations, placed once for all the groups it is counted in.
struct Placements {
    latency: Placed,
    /// Sent exactly at the intended time: the uncorrected latency is the latency.
    on_time: bool,
    uncorrected: Option<Placed>,
    ttft: Option<Placed>,
    tpot: Option<Placed>,
}

impl Placements {
    fn of(r: &RequestRecord, p: &Placer) -> Placements {
        let ft = r.first_token;
        let latency = p.place(r.end.saturating_sub(r.intended));
        Placements {
            latency,
            on_time: r.sent == Some(r.intended),
            // sent as intended (no schedule lag): the same duration, placed once
            uncorrected: r.sent.map(|s| {
                if s == r.intended {
                    latency
                } else {
                    p.place(r.end.saturating_sub(s))
                }
            }),
            ttft: ft.map(|ft| p.place(ft.saturating_sub(r.intended))),
            tpot: ft
                .filter(|_| r.outcome.is_ok() && r.output_tokens >= 2)
                .map(|ft| p.place(r.end.saturating_sub(ft) / u64::from(r.output_tokens - 1))),
        }
    }
}

impl Group {
    fn add(&mut self, r: &RequestRecord, itl: &[Nanos], good: bool, p: &Placements, placer: &Placer) {
        if r.outcome == Outcome::Dropped {
            self.dropped += 1;
            return;
        }
        if r.outcome.is_ok() {
            self.ok += 1;
            self.output_tokens += u64::from(r.output_tokens);
            if good {
                self.good += 1;
            }
        } else {
            self.failed += 1;
            count_failures(&mut self.keys, r.outcome, 1);
        }
        self.latency.record_placed(p.latency, placer);
        if let Some(u) = p.uncorrected {
            self.latency_uncorrected.record_placed(u, placer);
        }
        if let Some(t) = p.ttft {
            self.ttft.record_placed(t, placer);
        }
        if let Some(t) = p.tpot {
            self.tpot.record_placed(t, placer);
        }
        for &g in itl {
            self.itl.record(g);
        }
    }

    /// Adds a cell's requests.
    fn merge_cell(&mut self, c: &Cell, placer: &Placer, parts: Parts) {
        self.ok += c.ok;
        self.failed += c.failed;
        self.output_tokens += c.output_tokens;
        self.good += c.good;
        self.latency.add_counts(&c.latency, placer);
        self.ttft.add_counts(&c.ttft, placer);
        if parts.uncorrected {
            if c.off_schedule.is_empty() {
                self.latency_uncorrected.add_counts(&c.latency, placer);
            } else {
                let uncorrected = c.latency.swap_part(&c.off_schedule, &c.off_schedule_uncorrected);
                self.latency_uncorrected.add_counts(&uncorrected, placer);
            }
        }
        if parts.itl_tpot {
            self.tpot.add_counts(&c.tpot, placer);
            self.itl.merge(&c.itl);
        }
        for &(outcome, _, n) in &c.keys {
            count_failures(&mut self.keys, outcome, n);
        }
    }

    /// The sum of `cells`.
    fn sum<'a>(cells: impl IntoIterator<Item = &'a Cell>, placer: &Placer, parts: Parts) -> Group {
        let mut g = Group::default();
        for c in cells {
            g.merge_cell(c, placer, parts);
        }
        g
    }

    /// Failures by outcome key (`http_502`, `timeout`, …; distinct outcomes have distinct
    /// keys).
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.keys.iter().map(|(_, k, n)| (k.clone(), *n)).collect()
    }

    /// Sent requests.
    pub fn sent(&self) -> u64 {
        self.ok + self.failed
    }

    /// failed / sent (0 when nothing was sent).
    pub fn error_rate(&self) -> f64 {
        if self.sent() == 0 {
            0.0
        } else {
            self.failed as f64 / self.sent() as f64
        }
    }
}

/// Which histograms a sum of cells fills besides the latency and TTFT (the others stay
/// empty): a report reads only those two of each provider and kind, so adding up the rest
/// would be wasted.
#[derive(Clone, Copy, Debug)]
struct Parts {
    /// `latency_uncorrected`.
    uncorrected: bool,
    /// `itl` and `tpot`.
    itl_tpot: bool,
}

impl Parts {
    /// Every histogram.
    const ALL: Parts = Parts {
        uncorrected: true,
        itl_tpot: true,
    };
    /// What [`GroupReport::of`] reads.
    const REPORT: Parts = Parts {
        uncorrected: false,
        itl_tpot: false,
    };
}

/// Counts `n` failures with outcome `o` in `keys` (a group's failures by outcome),
/// formatting each outcome's key once.
fn count_failures(keys: &mut Vec<(Outcome, String, u64)>, o: Outcome, n: u64) {
    match keys.iter_mut().find(|(k, _, _)| *k == o) {
        Some((_, _, m)) => *m += n,
        None => keys.push((o, o.key(), n)),
    }
}

/// The sent requests of one (provider, kind group) as they are folded in: what a [`Group`]
/// holds, kept for cheap folding — bare histogram counts, and the uncorrected latency
/// implied by the latency for the requests sent exactly on time (every simulated one):
/// uncorrected latencies are the latencies, less those of the `off_schedule` requests,
/// plus the uncorrected latencies of those that were sent. [`Group::merge_cell`] turns it
/// into a group's statistics.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Cell {
    ok: u64,
    failed: u64,
    output_tokens: u64,
    good: u64,
    /// Failures by outcome, as in [`Group`].
    keys: Vec<(Outcome, String, u64)>,
    latency: Counts,
    /// Latencies of the requests not sent exactly at their intended time.
    off_schedule: Counts,
    /// Uncorrected latencies of those of them that were sent.
    off_schedule_uncorrected: Counts,
    ttft: Counts,
    tpot: Counts,
    itl: Hist,
}

impl Default for Cell {
    fn default() -> Cell {
        Cell {
            ok: 0,
            failed: 0,
            output_tokens: 0,
            good: 0,
            keys: Vec::new(),
            latency: Counts::default(),
            off_schedule: Counts::default(),
            off_schedule_uncorrected: Counts::default(),
            ttft: Counts::default(),
            tpot: Counts::default(),
            itl: Hist::new(3),
        }
    }
}

impl Cell {
    /// [`Group::add`] of a sent record.
    #[inline]
    fn add(&mut self, r: &RequestRecord, itl: &[Nanos], good: bool, p: &Placements, placer: &Placer) {
        if r.outcome.is_ok() {
            self.ok += 1;
            self.output_tokens += u64::from(r.output_tokens);
            self.good += u64::from(good);
        } else {
            self.failed += 1;
            count_failures(&mut self.keys, r.outcome, 1);
        }
        self.latency.bump(p.latency, placer);
        if !p.on_time {
            self.off_schedule.bump(p.latency, placer);
            if let Some(u) = p.uncorrected {
                self.off_schedule_uncorrected.bump(u, placer);
            }
        }
        if let Some(t) = p.ttft {
            self.ttft.bump(t, placer);
        }
        if let Some(t) = p.tpot {
            self.tpot.bump(t, placer);
        }
        for &g in itl {
            self.itl.record(g);
        }
    }

    /// Sent requests.
    fn sent(&self) -> u64 {
        self.ok + self.failed
    }
}

/// One time bucket.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// Requests that ended in the bucket, by outcome class.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
    /// Dropped.
    pub dropped: u64,
    /// Output tokens of requests that ended in the bucket.
    pub output_tokens: u64,
    /// Sum and count of per-request decode speeds of streams ended in the bucket.
    pub decode_sum: f64,
    /// Count for `decode_sum`.
    pub decode_n: u64,
    /// Latency of requests ended in the bucket (2 significant digits; boxed, so a bucket
    /// without one stays small).
    pub latency: Option<Box<Hist>>,
}

/// Folds records into statistics. It serializes whole (every count, every histogram at
/// full resolution: a shard's result file, `run::shard`) and [`Aggregator::merge`]s
/// exactly.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Aggregator {
    bucket: Nanos,
    slo: SloThresholds,
    /// Providers met so far (from the response's provider header; `unknown` otherwise),
    /// in first-seen order: the `provider_*` tables are indexed alike, so folding a record
    /// costs one name comparison (against the last provider) instead of a map lookup per
    /// table. [`Aggregator::providers`] and [`Aggregator::usage`] read them by name.
    provider_names: Vec<String>,
    /// The groups records are folded into: `cells[provider][kind group]` (a row grows as
    /// its kinds are met). A record is counted once, in its cell; the overall, per-provider
    /// and per-kind statistics are sums of cells, added up when read — a third of the
    /// histogram updates of counting every record in all three.
    cells: Vec<Vec<Cell>>,
    /// Dropped records (they name no provider) per kind group.
    dropped: Vec<u64>,
    /// Billed usage of ok requests by provider, then by request kind index: (requests,
    /// input tokens, output tokens) — what the cost report prices.
    provider_usage: Vec<Vec<(u64, u64, u64)>>,
    /// Per provider, per bucket: (ok, failed) of requests *started* (intended) in it.
    provider_starts: Vec<Vec<(u64, u64)>>,
    /// The provider index of the last record.
    #[serde(skip)]
    last_provider: usize,
    /// Names of the kind groups (the mix's kind names, each once, then `other` when met).
    kind_names: Vec<String>,
    /// The kind group of each kind index of the mix.
    kind_group: Vec<usize>,
    /// By fault phase, for the windows given.
    pub per_phase: BTreeMap<String, Group>,
    phases: Vec<(String, Nanos, Nanos)>,
    /// Time buckets by request end.
    pub buckets: Vec<Bucket>,
    /// Schedule lag (actual − intended send) of the requests sent late
    /// ([`Aggregator::schedule_lag`] adds those sent on time).
    lag: Hist,
    /// Requests sent on time or early (a schedule lag of zero): counted, not placed.
    lag_zero: u64,
    /// Embeddings: count and latency sum.
    pub embeddings: (u64, Hist),
    /// Requests seen.
    pub records: u64,
    /// Last end time seen.
    pub last_end: Nanos,
    /// Keep a latency histogram per bucket (timeline p99, interval logs).
    bucket_latency: bool,
    /// Per bucket, by intended start: the end-to-end latency of the sent requests started
    /// in it ([`Aggregator::with_start_latency`]; `None`: not kept). Read by the HTML
    /// report's incident view only, never by a JSON report.
    start_latency: Option<Vec<Option<Box<Hist>>>>,
    /// Places durations in the groups' shared histogram layout.
    #[serde(skip, default = "Placer::fine")]
    placer: Placer,
    /// `placer.place(0)`: the schedule lag of a request sent on time.
    #[serde(skip, default = "placed_zero")]
    placed_zero: Placed,
    /// The last bucket looked up by end and by intended start: `(index, start, end)`.
    #[serde(skip, default = "no_bucket")]
    last_bucket: [(usize, Nanos, Nanos); 2],
}

fn placed_zero() -> Placed {
    Placer::fine().place(0)
}

fn no_bucket() -> [(usize, Nanos, Nanos); 2] {
    [(0, 1, 0); 2]
}

/// A provider's place in an [`Aggregator`]'s tables ([`Aggregator::provider_slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderSlot(usize);

/// Most buckets kept (a day at 1 s); later records fold into the last bucket.
const MAX_BUCKETS: usize = 86_400;

/// The per-phase groups of a scenario run (`traffic.phases`, by intended start): every
/// fault window of each `(provider, profile)` up to `end` (the end of the traffic), named
/// `provider/phase`. Both drivers call this, from fresh plans of the run's seed.
pub fn phase_groups<'a>(
    providers: impl Iterator<Item = (&'a str, &'a crate::fault::Profile)>,
    seed: u64,
    end: Nanos,
) -> Vec<(String, Nanos, Nanos)> {
    let mut out = Vec::new();
    for (name, profile) in providers {
        for w in crate::fault::Plan::for_provider(profile, seed, name).fault_windows(end) {
            out.push((format!("{name}/{}", w.phase), w.start, w.end));
        }
    }
    out
}

impl Aggregator {
    /// What the error budget counts, per bucket: requests that ended (ok or failed;
    /// dropped ones were never sent) and the failed ones.
    pub fn budget_counts(&self) -> (Vec<u64>, Vec<u64>) {
        let totals = self.buckets.iter().map(|b| b.ok + b.failed).collect();
        let bad = self.buckets.iter().map(|b| b.failed).collect();
        (totals, bad)
    }
    /// An aggregator with `bucket`-long time buckets; `kinds` names the mix's kinds.
    pub fn new(bucket: Nanos, kinds: Vec<String>, slo: SloThresholds) -> Aggregator {
        let mut kind_names: Vec<String> = Vec::new();
        let kind_group = kinds
            .iter()
            .map(|k| match kind_names.iter().position(|n| n == k) {
                Some(i) => i,
                None => {
                    kind_names.push(k.clone());
                    kind_names.len() - 1
                }
            })
            .collect();
        Aggregator {
            bucket: bucket.max(1),
            slo,
            provider_names: Vec::new(),
            cells: Vec::new(),
            dropped: Vec::new(),
            provider_usage: Vec::new(),
            provider_starts: Vec::new(),
            last_provider: 0,
            kind_names,
            kind_group,
            per_phase: BTreeMap::new(),
            phases: Vec::new(),
            buckets: Vec::new(),
            lag: Hist::new(3),
            lag_zero: 0,
            embeddings: (0, Hist::new(3)),
            records: 0,
            last_end: 0,
            bucket_latency: true,
            start_latency: None,
            placer: Placer::fine(),
            placed_zero: placed_zero(),
            last_bucket: no_bucket(),
        }
    }

    /// Schedule lag (actual − intended send) of every sent request.
    pub fn schedule_lag(&self) -> Hist {
        let mut h = self.lag.clone();
        h.record_placed_n(self.placed_zero, &self.placer, self.lag_zero);
        h
    }

    /// Everything (the sum of the cells).
    pub fn overall(&self) -> Group {
        self.overall_parts(Parts::ALL)
    }

    /// [`Aggregator::overall`] with the histograms `parts` names.
    fn overall_parts(&self, parts: Parts) -> Group {
        let mut g = Group::sum(self.cells.iter().flatten(), &self.placer, parts);
        g.dropped += self.dropped.iter().sum::<u64>();
        g
    }

    /// Quantile `q` of the end-to-end latency of everything, in ms (what a live progress
    /// line shows; adds up the latency histograms only).
    pub fn latency_quantile_ms(&self, q: f64) -> f64 {
        let mut h = Hist::new(3);
        for g in self.cells.iter().flatten() {
            h.add_counts(&g.latency, &self.placer);
        }
        h.quantile_ms(q)
    }

    /// By provider (from the response's provider header; `unknown` otherwise), by name
    /// (providers with at least one sent request).
    pub fn providers(&self) -> BTreeMap<&str, Group> {
        self.providers_parts(Parts::ALL)
    }

    /// [`Aggregator::providers`] with the histograms `parts` names.
    fn providers_parts(&self, parts: Parts) -> BTreeMap<&str, Group> {
        self.provider_names
            .iter()
            .map(String::as_str)
            .zip(&self.cells)
            .filter(|(_, row)| row.iter().any(|g| g.sent() > 0))
            .map(|(p, row)| (p, Group::sum(row, &self.placer, parts)))
            .collect()
    }

    /// Billed usage of ok requests by provider (those with at least one), then by request
    /// kind index: (requests, input tokens, output tokens) — what the cost report prices.
    pub fn usage(&self) -> BTreeMap<&str, &[(u64, u64, u64)]> {
        self.provider_names
            .iter()
            .map(String::as_str)
            .zip(&self.provider_usage)
            .filter(|(_, u)| !u.is_empty())
            .map(|(p, u)| (p, u.as_slice()))
            .collect()
    }

    /// By request kind name (kinds with at least one record; `other` for records of a kind
    /// the mix does not name).
    pub fn per_kind(&self) -> BTreeMap<&str, Group> {
        self.per_kind_parts(Parts::ALL)
    }

    /// [`Aggregator::per_kind`] with the histograms `parts` names.
    fn per_kind_parts(&self, parts: Parts) -> BTreeMap<&str, Group> {
        self.kind_names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let mut g = Group::sum(self.cells.iter().filter_map(|row| row.get(k)), &self.placer, parts);
                g.dropped += self.dropped.get(k).copied().unwrap_or(0);
                (name.as_str(), g)
            })
            .filter(|(_, g)| g.ok + g.failed + g.dropped > 0)
            .collect()
    }

    /// Per provider, per bucket: (ok, failed) of the requests *started* (intended) in the
    /// bucket, by provider name. A provider's series may be shorter than `buckets`.
    pub fn provider_starts(&self) -> impl Iterator<Item = (&str, &[(u64, u64)])> {
        self.provider_names
            .iter()
            .map(String::as_str)
            .zip(&self.cells)
            .zip(&self.provider_starts)
            .filter(|((_, row), _)| row.iter().any(|g| g.sent() > 0))
            .map(|((p, _), s)| (p, s.as_slice()))
    }

    /// The slot of `provider` (`None`: `unknown`) for [`Aggregator::add_at`], so a driver
    /// that knows which provider each record names folds it without comparing names.
    /// Reserving a slot counts nothing: a provider appears in the reports once a record
    /// names it.
    pub fn provider_slot(&mut self, provider: Option<&str>) -> ProviderSlot {
        ProviderSlot(self.provider_index(provider.unwrap_or("unknown")))
    }

    /// The index of `provider` in the `provider_*` tables, adding it when new.
    fn provider_index(&mut self, provider: &str) -> usize {
        if self
            .provider_names
            .get(self.last_provider)
            .is_some_and(|n| n == provider)
        {
            return self.last_provider;
        }
        let i = match self.provider_names.iter().position(|n| n == provider) {
            Some(i) => i,
            None => {
                self.provider_names.push(provider.to_string());
                self.cells.push(Vec::new());
                self.provider_usage.push(Vec::new());
                self.provider_starts.push(Vec::new());
                self.provider_names.len() - 1
            }
        };
        self.last_provider = i;
        i
    }

    /// The kind group of kind index `k` (`other` when the mix does not name it).
    fn kind_index(&mut self, k: usize) -> usize {
        if let Some(&g) = self.kind_group.get(k) {
            return g;
        }
        match self.kind_names.iter().position(|n| n == "other") {
            Some(i) => i,
            None => {
                self.kind_names.push("other".to_string());
                self.kind_names.len() - 1
            }
        }
    }

    /// No per-bucket latency histograms (the simulator's fine detection buckets do not
    /// need them); `timeline.p99_ms` is then empty.
    pub fn without_bucket_latency(mut self) -> Aggregator {
        self.bucket_latency = false;
        self
    }

    /// Also keeps, per bucket of intended start, the latency of the requests started in it
    /// (the incident view's p50 / p99 series, `analysis/incident.rs`). The reports are the
    /// same with or without it; it costs a sparse histogram per bucket with traffic.
    pub fn with_start_latency(mut self) -> Aggregator {
        self.start_latency = Some(Vec::new());
        self
    }

    /// The histograms of [`Aggregator::with_start_latency`], by bucket of intended start
    /// (`None` when not kept; a bucket without a sent request has none).
    pub fn start_latency(&self) -> Option<&[Option<Box<Hist>>]> {
        self.start_latency.as_deref()
    }

    /// Adds fault windows `(phase, start, end)` for per-phase statistics (by intended start).
    /// Scenario runs take them from [`phase_groups`].
    pub fn with_phases(mut self, phases: Vec<(String, Nanos, Nanos)>) -> Aggregator {
        self.phases = phases;
        self
    }

    /// Bucket length.
    pub fn bucket_len(&self) -> Nanos {
        self.bucket
    }

    /// The bucket of `t`; `which` names a one-entry cache (records arrive nearly in order,
    /// so the division is mostly skipped).
    fn bucket_mut(&mut self, t: Nanos, which: usize) -> &mut Bucket {
        let i = self.bucket_index(t, which);
        &mut self.buckets[i]
    }

    /// The index of [`Aggregator::bucket_mut`]'s bucket (created if missing).
    fn bucket_index(&mut self, t: Nanos, which: usize) -> usize {
        let (ci, start, end) = self.last_bucket[which];
        let i = if t >= start && t < end {
            ci
        } else {
            let k = t / self.bucket;
            let i = (k as usize).min(MAX_BUCKETS - 1);
            if i == k as usize && i < MAX_BUCKETS - 1 {
                let start = k * self.bucket;
                self.last_bucket[which] = (i, start, start.saturating_add(self.bucket));
            }
            i
        };
        if self.buckets.len() <= i {
            self.buckets.resize_with(i + 1, Bucket::default);
        }
        i
    }

    /// Folds one record (and its inter-token gaps) in.
    pub fn add(&mut self, r: &RequestRecord, itl: &[Nanos], embeddings: bool) {
        // a dropped record names none of the provider tables
        let pi =
            (r.outcome != Outcome::Dropped).then(|| self.provider_index(r.provider.as_deref().unwrap_or("unknown")));
        self.fold(r, itl, embeddings, pi);
    }

    /// [`Aggregator::add`] of a record whose provider has the slot `slot` (from
    /// [`Aggregator::provider_slot`] of `r.provider`).
    pub fn add_at(&mut self, r: &RequestRecord, itl: &[Nanos], embeddings: bool, slot: ProviderSlot) {
        debug_assert_eq!(
            self.provider_names.get(slot.0).map(String::as_str),
            Some(r.provider.as_deref().unwrap_or("unknown")),
            "the record's provider has this slot"
        );
        let pi = (r.outcome != Outcome::Dropped).then_some(slot.0);
        self.fold(r, itl, embeddings, pi);
    }

    /// Folds one record in; `pi`: its provider's index (`None` for a dropped record).
    fn fold(&mut self, r: &RequestRecord, itl: &[Nanos], embeddings: bool, pi: Option<usize>) {
        self.records += 1;
        self.last_end = self.last_end.max(r.end);
        let ok = r.outcome.is_ok();
        let good = ok && self.meets_slo(r);
        let placer = self.placer;
        let pl = Placements::of(r, &placer);
        let kg = self.kind_index(r.kind as usize);
        if let Some(pi) = pi {
            let row = &mut self.cells[pi];
            if row.len() <= kg {
                row.resize_with(kg + 1, Cell::default);
            }
            row[kg].add(r, itl, good, &pl, &placer);
            if ok {
                let per_kind = &mut self.provider_usage[pi];
                let k = r.kind as usize;
                if per_kind.len() <= k {
                    per_kind.resize(k + 1, (0, 0, 0));
                }
                let u = &mut per_kind[k];
                u.0 += 1;
                u.1 += u64::from(r.input_tokens);
                u.2 += u64::from(r.output_tokens);
            }
        } else {
            debug_assert_eq!(r.outcome, Outcome::Dropped, "only dropped records name no provider");
            if self.dropped.len() <= kg {
                self.dropped.resize(kg + 1, 0);
            }
            self.dropped[kg] += 1;
        }
        for (name, s, e) in &self.phases {
            if r.intended >= *s && r.intended < *e {
                self.per_phase
                    .entry(name.clone())
                    .or_default()
                    .add(r, itl, good, &pl, &placer);
            }
        }
        if let Some(s) = r.sent {
            if s <= r.intended {
                self.lag_zero += 1;
            } else {
                self.lag.record_placed(placer.place(s - r.intended), &placer);
            }
        }
        if embeddings && ok {
            self.embeddings.0 += 1;
            self.embeddings.1.record_placed(pl.latency, &placer);
        }
        let decode = match (r.first_token, ok && r.stream && r.output_tokens >= 2) {
            (Some(ft), true) if r.end > ft => {
                Some(f64::from(r.output_tokens - 1) * NS_PER_S as f64 / (r.end - ft) as f64)
            }
            _ => None,
        };
        let keep_latency = self.bucket_latency;
        let b = self.bucket_mut(r.end, 0);
        match r.outcome {
            Outcome::Ok => {
                b.ok += 1;
                b.output_tokens += u64::from(r.output_tokens);
            }
            Outcome::Dropped => b.dropped += 1,
            _ => b.failed += 1,
        }
        if let Some(d) = decode {
            b.decode_sum += d;
            b.decode_n += 1;
        }
        if let Some(pi) = pi {
            if keep_latency {
                b.latency
                    .get_or_insert_with(|| Box::new(Hist::coarse()))
                    .record(r.end.saturating_sub(r.intended));
            }
            let si = self.bucket_index(r.intended, 1);
            if let Some(v) = &mut self.start_latency {
                if v.len() <= si {
                    v.resize_with(si + 1, || None);
                }
                v[si]
                    .get_or_insert_with(|| Box::new(Hist::coarse()))
                    .record(r.end.saturating_sub(r.intended));
            }
            let starts = &mut self.provider_starts[pi];
            if starts.len() <= si {
                starts.resize(si + 1, (0, 0));
            }
            let e = &mut starts[si];
            if ok {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }

    fn meets_slo(&self, r: &RequestRecord) -> bool {
        let s = &self.slo;
        let e2e = r.end.saturating_sub(r.intended);
        if s.e2e.is_some_and(|m| e2e > m) {
            return false;
        }
        if let (Some(m), Some(ft)) = (s.ttft, r.first_token) {
            if ft.saturating_sub(r.intended) > m {
                return false;
            }
        }
        if let (Some(m), Some(ft)) = (s.tpot, r.first_token) {
            if r.output_tokens >= 2 && r.end.saturating_sub(ft) / u64::from(r.output_tokens - 1) > m {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
