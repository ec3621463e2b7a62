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

pub mod budget;
pub mod hist;
pub mod resilience;

use crate::record::{Outcome, RequestRecord};
use crate::time::{nanos_to_secs_f64, Nanos, NS_PER_S};
use hist::{Hist, Placed, Placer};
use serde::Serialize;
use std::collections::BTreeMap;

/// SLO thresholds for goodput.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SloThresholds {
    /// TTFT at most this.
    pub ttft: Option<Nanos>,
    /// TPOT at most this.
    pub tpot: Option<Nanos>,
    /// End-to-end latency at most this.
    pub e2e: Option<Nanos>,
}

/// Statistics of one group of requests (overall, a provider, a kind, a phase).
#[derive(Clone, Debug)]
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
            self.count_failures(r.outcome, 1);
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

    /// Adds another group's requests (counts, histograms, failures by outcome).
    fn merge(&mut self, o: &Group) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.output_tokens += o.output_tokens;
        self.good += o.good;
        self.latency.merge(&o.latency);
        self.latency_uncorrected.merge(&o.latency_uncorrected);
        self.ttft.merge(&o.ttft);
        self.itl.merge(&o.itl);
        self.tpot.merge(&o.tpot);
        for &(outcome, _, n) in &o.keys {
            self.count_failures(outcome, n);
        }
    }

    /// The sum of `groups`.
    fn sum<'a>(groups: impl IntoIterator<Item = &'a Group>) -> Group {
        let mut g = Group::default();
        for x in groups {
            g.merge(x);
        }
        g
    }

    /// Counts `n` failures with outcome `o`, formatting each outcome's key once.
    fn count_failures(&mut self, o: Outcome, n: u64) {
        match self.keys.iter_mut().find(|(k, _, _)| *k == o) {
            Some((_, _, m)) => *m += n,
            None => self.keys.push((o, o.key(), n)),
        }
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

/// One time bucket.
#[derive(Clone, Debug, Default)]
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

/// Folds records into statistics.
#[derive(Debug)]
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
    cells: Vec<Vec<Group>>,
    /// Dropped records (they name no provider) per kind group.
    dropped: Vec<u64>,
    /// Billed usage of ok requests by provider, then by request kind index: (requests,
    /// input tokens, output tokens) — what the cost report prices.
    provider_usage: Vec<Vec<(u64, u64, u64)>>,
    /// Per provider, per bucket: (ok, failed) of requests *started* (intended) in it.
    provider_starts: Vec<Vec<(u64, u64)>>,
    /// The provider index of the last record.
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
    /// Schedule lag (actual − intended send).
    pub lag: Hist,
    /// Embeddings: count and latency sum.
    pub embeddings: (u64, Hist),
    /// Requests seen.
    pub records: u64,
    /// Last end time seen.
    pub last_end: Nanos,
    /// Keep a latency histogram per bucket (timeline p99, interval logs).
    bucket_latency: bool,
    /// Places durations in the groups' shared histogram layout.
    placer: Placer,
    /// `placer.place(0)`: the schedule lag of a request sent on time.
    placed_zero: Placed,
    /// The last bucket looked up by end and by intended start: `(index, start, end)`.
    last_bucket: [(usize, Nanos, Nanos); 2],
}

/// A provider's place in an [`Aggregator`]'s tables ([`Aggregator::provider_slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderSlot(usize);

/// Most buckets kept (a day at 1 s); later records fold into the last bucket.
const MAX_BUCKETS: usize = 86_400;

impl Aggregator {
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
            embeddings: (0, Hist::new(3)),
            records: 0,
            last_end: 0,
            bucket_latency: true,
            placer: Placer::fine(),
            placed_zero: Placer::fine().place(0),
            last_bucket: [(0, 1, 0); 2],
        }
    }

    /// Everything (the sum of the cells).
    pub fn overall(&self) -> Group {
        let mut g = Group::sum(self.cells.iter().flatten());
        g.dropped += self.dropped.iter().sum::<u64>();
        g
    }

    /// Quantile `q` of the end-to-end latency of everything, in ms (what a live progress
    /// line shows; adds up the latency histograms only).
    pub fn latency_quantile_ms(&self, q: f64) -> f64 {
        let mut h = Hist::new(3);
        for g in self.cells.iter().flatten() {
            h.merge(&g.latency);
        }
        h.quantile_ms(q)
    }

    /// By provider (from the response's provider header; `unknown` otherwise), by name
    /// (providers with at least one sent request).
    pub fn providers(&self) -> BTreeMap<&str, Group> {
        self.provider_names
            .iter()
            .map(String::as_str)
            .zip(&self.cells)
            .filter(|(_, row)| row.iter().any(|g| g.sent() > 0))
            .map(|(p, row)| (p, Group::sum(row)))
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
        self.kind_names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let mut g = Group::sum(self.cells.iter().filter_map(|row| row.get(k)));
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

    /// Adds fault windows `(phase, start, end)` for per-phase statistics (by intended start).
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
        let good = r.outcome.is_ok() && self.meets_slo(r);
        let placer = self.placer;
        let pl = Placements::of(r, &placer);
        let kg = self.kind_index(r.kind as usize);
        if let Some(pi) = pi {
            let row = &mut self.cells[pi];
            if row.len() <= kg {
                row.resize_with(kg + 1, Group::default);
            }
            row[kg].add(r, itl, good, &pl, &placer);
            if r.outcome.is_ok() {
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
            let lag = if s <= r.intended {
                self.placed_zero
            } else {
                placer.place(s - r.intended)
            };
            self.lag.record_placed(lag, &placer);
        }
        if embeddings && r.outcome.is_ok() {
            self.embeddings.0 += 1;
            self.embeddings.1.record_placed(pl.latency, &placer);
        }
        let decode = match (r.first_token, r.outcome.is_ok() && r.stream && r.output_tokens >= 2) {
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
            let starts = &mut self.provider_starts[pi];
            if starts.len() <= si {
                starts.resize(si + 1, (0, 0));
            }
            let e = &mut starts[si];
            if r.outcome.is_ok() {
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

    /// The article's throughput columns: per-bucket mean decode speed → avg/peak/min/cv.
    pub fn output_tps(&self) -> Tps {
        let v: Vec<f64> = self
            .buckets
            .iter()
            .filter(|b| b.decode_n > 0)
            .map(|b| b.decode_sum / b.decode_n as f64)
            .collect();
        Tps::of(&v)
    }

    /// Builds the report (`duration` = the run's scheduled length).
    pub fn report(&self, scheduled: u64, in_flight_at_end: u64, duration: Nanos) -> LoadReport {
        let d = nanos_to_secs_f64(duration.max(1));
        let g = &self.overall();
        LoadReport {
            requests: RequestCounts {
                scheduled,
                sent: g.sent() + in_flight_at_end,
                ok: g.ok,
                failed: g.failed,
                dropped: g.dropped,
                in_flight_at_end,
            },
            error_rate: g.error_rate(),
            failures_by_kind: g.failures(),
            latency_ms: g.latency.summary(),
            latency_uncorrected_ms: g.latency_uncorrected.summary(),
            schedule_lag_ms: self.lag.summary(),
            ttft_ms: g.ttft.summary(),
            itl_ms: g.itl.summary(),
            tpot_ms: g.tpot.summary(),
            output_tps: self.output_tps(),
            throughput: Throughput {
                requests_per_s: g.sent() as f64 / d,
                ok_per_s: g.ok as f64 / d,
                output_tokens_per_s: g.output_tokens as f64 / d,
                goodput_per_s: g.good as f64 / d,
            },
            embeddings: EmbeddingsStats {
                requests_per_s: self.embeddings.0 as f64 / d,
                avg_latency_ms: self.embeddings.1.mean_ms(),
            },
            providers: self
                .providers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), GroupReport::of(&v, d)))
                .collect(),
            kinds: self
                .per_kind()
                .into_iter()
                .map(|(k, v)| (k.to_string(), GroupReport::of(&v, d)))
                .collect(),
            phases: self
                .per_phase
                .iter()
                .map(|(k, v)| (k.clone(), GroupReport::of(v, d)))
                .collect(),
            timeline: self.timeline(),
            duration_s: d,
        }
    }

    /// Per-bucket series.
    pub fn timeline(&self) -> Timeline {
        let mut t = Timeline {
            bucket_s: nanos_to_secs_f64(self.bucket),
            ..Timeline::default()
        };
        for (i, b) in self.buckets.iter().enumerate() {
            t.t_s.push(i as f64 * nanos_to_secs_f64(self.bucket));
            t.ok.push(b.ok);
            t.failed.push(b.failed);
            t.dropped.push(b.dropped);
            t.output_tokens.push(b.output_tokens);
            if self.bucket_latency {
                t.p99_ms.push(b.latency.as_ref().map_or(0.0, |h| h.quantile_ms(0.99)));
            }
        }
        t
    }
}

/// Throughput stability (the article's tokens/s columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tps {
    /// Mean of the per-second values.
    pub avg: f64,
    /// Largest.
    pub peak: f64,
    /// Smallest.
    pub min: f64,
    /// Coefficient of variation (population sd / mean).
    pub cv: f64,
}

impl Tps {
    /// Of a series.
    pub fn of(v: &[f64]) -> Tps {
        if v.is_empty() {
            return Tps::default();
        }
        let n = v.len() as f64;
        let avg = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - avg).powi(2)).sum::<f64>() / n).sqrt();
        Tps {
            avg,
            peak: v.iter().cloned().fold(f64::MIN, f64::max),
            min: v.iter().cloned().fold(f64::MAX, f64::min),
            cv: if avg > 0.0 { sd / avg } else { 0.0 },
        }
    }
}

/// `requests.*`: every scheduled request is exactly one of ok, failed, dropped, in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RequestCounts {
    /// Planned by the schedule.
    pub scheduled: u64,
    /// Sent (ok + failed + in flight at the end).
    pub sent: u64,
    /// Succeeded.
    pub ok: u64,
    /// Sent and failed.
    pub failed: u64,
    /// Not sent: the concurrency cap was full.
    pub dropped: u64,
    /// Sent, unanswered when the run ended.
    pub in_flight_at_end: u64,
}

/// Rates over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Throughput {
    /// Sent per second.
    pub requests_per_s: f64,
    /// Ok per second.
    pub ok_per_s: f64,
    /// Output tokens per second (all ok requests).
    pub output_tokens_per_s: f64,
    /// Ok requests meeting the SLO thresholds per second.
    pub goodput_per_s: f64,
}

/// The article's embeddings columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct EmbeddingsStats {
    /// Ok embeddings requests per second.
    pub requests_per_s: f64,
    /// Their mean latency.
    pub avg_latency_ms: f64,
}

/// A group's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupReport {
    /// Sent.
    pub requests: u64,
    /// Ok.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
    /// Dropped.
    pub dropped: u64,
    /// failed / sent.
    pub error_rate: f64,
    /// Failures by outcome.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Latency.
    pub latency_ms: hist::Summary,
    /// TTFT.
    pub ttft_ms: hist::Summary,
    /// Sent per second.
    pub requests_per_s: f64,
}

impl GroupReport {
    fn of(g: &Group, d: f64) -> GroupReport {
        GroupReport {
            requests: g.sent(),
            ok: g.ok,
            failed: g.failed,
            dropped: g.dropped,
            error_rate: g.error_rate(),
            failures_by_kind: g.failures(),
            latency_ms: g.latency.summary(),
            ttft_ms: g.ttft.summary(),
            requests_per_s: g.sent() as f64 / d,
        }
    }
}

/// Per-bucket series (by request end).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// Bucket length.
    pub bucket_s: f64,
    /// Bucket starts.
    pub t_s: Vec<f64>,
    /// Ok per bucket.
    pub ok: Vec<u64>,
    /// Failed per bucket.
    pub failed: Vec<u64>,
    /// Dropped per bucket.
    pub dropped: Vec<u64>,
    /// Output tokens per bucket.
    pub output_tokens: Vec<u64>,
    /// p99 latency per bucket.
    pub p99_ms: Vec<f64>,
}

/// The report of a load run; its JSON names are a contract (`schema/load-report.schema.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Accounting.
    pub requests: RequestCounts,
    /// failed / sent.
    pub error_rate: f64,
    /// Failures by outcome key (`http_502`, `timeout`, `stream_cut`, …).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// End-to-end latency from intended start.
    pub latency_ms: hist::Summary,
    /// End-to-end latency from actual send (what a coordinated-omission-prone tool reports).
    pub latency_uncorrected_ms: hist::Summary,
    /// Actual − intended send.
    pub schedule_lag_ms: hist::Summary,
    /// Time to first token.
    pub ttft_ms: hist::Summary,
    /// Inter-token latency.
    pub itl_ms: hist::Summary,
    /// Time per output token.
    pub tpot_ms: hist::Summary,
    /// Per-second decode speed statistics.
    pub output_tps: Tps,
    /// Rates.
    pub throughput: Throughput,
    /// Embeddings.
    pub embeddings: EmbeddingsStats,
    /// By provider.
    pub providers: BTreeMap<String, GroupReport>,
    /// By request kind.
    pub kinds: BTreeMap<String, GroupReport>,
    /// By fault phase.
    pub phases: BTreeMap<String, GroupReport>,
    /// Per-bucket series.
    pub timeline: Timeline,
    /// Scheduled length of the run.
    pub duration_s: f64,
}

#[cfg(test)]
mod tests;
