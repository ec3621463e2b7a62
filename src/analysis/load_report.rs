//! The report of a run: [`LoadReport`] and the types it is made of (request counts,
//! throughput, decode-speed stability, per-group reports, the per-bucket timeline), and
//! the code that builds them from an [`Aggregator`]'s fold. The fold itself — the
//! aggregator, its cells, groups and buckets, the hot path of every record — is in
//! `analysis/mod.rs`; this file only reads it, once, when a run ends.

use super::hist;
use super::{Aggregator, Bucket, Group, Parts};
use crate::time::{nanos_to_secs_f64, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl Aggregator {
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
        // every request sent on time (every simulated one): the uncorrected latencies are
        // the latencies, and so is their summary
        let on_time = self.cells.iter().flatten().all(|c| c.off_schedule.is_empty());
        let g = &self.overall_parts(Parts {
            uncorrected: !on_time,
            itl_tpot: true,
        });
        let latency_ms = g.latency.summary();
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
            latency_ms,
            latency_uncorrected_ms: if on_time {
                latency_ms
            } else {
                g.latency_uncorrected.summary()
            },
            schedule_lag_ms: self.schedule_lag().summary(),
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
                .providers_parts(Parts::REPORT)
                .into_iter()
                .map(|(k, v)| (k.to_string(), GroupReport::of(&v, d)))
                .collect(),
            kinds: self
                .per_kind_parts(Parts::REPORT)
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
            partial: false,
            warnings: if in_flight_at_end > 0 {
                vec![in_flight_warning(in_flight_at_end, scheduled)]
            } else {
                Vec::new()
            },
        }
    }

    /// Per-bucket series.
    pub fn timeline(&self) -> Timeline {
        let bucket_s = nanos_to_secs_f64(self.bucket);
        let series = |f: fn(&Bucket) -> u64| self.buckets.iter().map(f).collect();
        Timeline {
            bucket_s,
            t_s: (0..self.buckets.len()).map(|i| i as f64 * bucket_s).collect(),
            ok: series(|b| b.ok),
            failed: series(|b| b.failed),
            dropped: series(|b| b.dropped),
            output_tokens: series(|b| b.output_tokens),
            p99_ms: if self.bucket_latency {
                self.buckets
                    .iter()
                    .map(|b| b.latency.as_ref().map_or(0.0, |h| h.quantile_ms(0.99)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// The warning of a report with requests still unaccounted for at its end.
pub fn in_flight_warning(in_flight_at_end: u64, scheduled: u64) -> String {
    format!(
        "{in_flight_at_end} of {scheduled} scheduled requests were still in flight when the run ended \
         (in_flight_at_end): they are neither ok nor failed, so every figure here undercounts"
    )
}

/// Throughput stability (the article's tokens/s columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsStats {
    /// Ok embeddings requests per second.
    pub requests_per_s: f64,
    /// Their mean latency.
    pub avg_latency_ms: f64,
}

/// A group's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The report of one group over a run of `d` seconds.
    pub(super) fn of(g: &Group, d: f64) -> GroupReport {
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Length of the run: the scheduled length, or for a partial (interrupted) run the
    /// measured time until the stop.
    pub duration_s: f64,
    /// The run was interrupted: the figures cover `duration_s` only (absent when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// What makes these figures unreliable (requests in flight at the end, requests closed
    /// by the grace period, an interruption); absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
