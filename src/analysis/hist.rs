//! HDR histograms in microseconds, with the summary every report prints.

use crate::time::Nanos;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable value: one hour in µs (larger values are clamped).
pub const MAX_US: u64 = 3_600_000_000;

/// A latency histogram (µs resolution, auto-resizing).
#[derive(Clone, Debug)]
pub struct Hist {
    h: Histogram<u64>,
}

/// p50 / p95 / p99 / p99.9 / max / mean in milliseconds, and the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Hist {
    /// `sigfig` significant digits (2 or 3).
    pub fn new(sigfig: u8) -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid bounds"),
        }
    }

    /// A compact histogram for per-bucket series: 1 ms resolution, 2 significant digits
    /// (≈ 17 KB, so an hour of 1-s buckets stays near 60 MB).
    pub fn coarse() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1000, MAX_US, 2).expect("valid bounds"),
        }
    }

    /// Records a duration.
    pub fn record(&mut self, n: Nanos) {
        let us = (n / 1_000).clamp(self.h.low(), MAX_US);
        self.h.saturating_record(us);
    }

    /// Samples.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// Quantile in ms (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.h.is_empty() {
            0.0
        } else {
            self.h.value_at_quantile(q) as f64 / 1000.0
        }
    }

    /// Mean in ms.
    pub fn mean_ms(&self) -> f64 {
        if self.h.is_empty() {
            0.0
        } else {
            self.h.mean() / 1000.0
        }
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.h.len(),
            p50: self.quantile_ms(0.50),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            max: if self.h.is_empty() {
                0.0
            } else {
                self.h.max() as f64 / 1000.0
            },
            mean: self.mean_ms(),
        }
    }

    /// The underlying histogram (for interval logs).
    pub fn inner(&self) -> &Histogram<u64> {
        &self.h
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Hist) {
        let _ = self.h.add(&o.h);
    }
}
