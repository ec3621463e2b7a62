//! HDR histograms in microseconds, with the summary every report prints.
//!
//! Recording is the hot path of the analysis (several histograms per request), so a
//! [`Hist::new`] histogram counts into its own array laid out exactly as `hdrhistogram`
//! lays out its counts (same index for every value), which is a shift and an add per
//! sample instead of the crate's general `record` (range checks, resizing, min/max
//! upkeep). Quantiles, mean and max are read straight from those counts, computed as the
//! crate computes them from the same counts (same values, same floating-point operations
//! in the same order), so they are the crate's own, bit for bit (tested against direct
//! recording); [`Hist::inner`] (interval logs, min) rebuilds a real
//! [`hdrhistogram::Histogram`] from the counts, once per batch of records.
//! [`Hist::coarse`] histograms (per-bucket series and interval logs: many small ones, read
//! once) keep the same fine layout (3 significant digits, 1 µs floor) sparsely: only the
//! indices a sample fell in, so a bucket costs memory in proportion to its distinct values,
//! never the whole layout.

use crate::time::Nanos;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Highest trackable value: one hour in µs (larger values are clamped).
pub const MAX_US: u64 = 3_600_000_000;

/// A latency histogram (µs resolution, auto-resizing).
#[derive(Clone, Debug)]
pub struct Hist {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// Counts by index of the fine layout (`Layout::new(1, MAX_US, 3)`), only for the indices
    /// recorded; `view` as for `Counts`.
    Sparse {
        counts: BTreeMap<u32, u64>,
        total: u64,
        view: OnceLock<Histogram<u64>>,
    },
    /// Own counts in the crate's layout, and the crate's histogram built from them on
    /// demand (`view` is cleared by every record). `counts` holds the layout's first
    /// entries only, up to the largest index recorded (the rest are zero): a histogram
    /// that is never recorded into, or only holds short durations, stays small.
    Counts {
        layout: Layout,
        counts: Vec<u64>,
        total: u64,
        view: OnceLock<Histogram<u64>>,
    },
}

/// `hdrhistogram`'s index arithmetic for `(low, MAX_US, sigfig)`, computed as its
/// `Histogram::new_with_bounds` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    low: u64,
    sigfig: u8,
    unit_magnitude: u8,
    sub_bucket_half_count_magnitude: u8,
    sub_bucket_half_count: u32,
    sub_bucket_mask: u64,
    leading_zero_count_base: u8,
    len: usize,
}

impl Layout {
    fn new(low: u64, high: u64, sigfig: u8) -> Layout {
        let largest = 2 * 10_u32.pow(u32::from(sigfig));
        let unit_magnitude = (low as f64).log2().floor() as u8;
        let sub_bucket_count_magnitude = (f64::from(largest)).log2().ceil() as u8;
        let sub_bucket_count = 1_u32 << u32::from(sub_bucket_count_magnitude);
        let sub_bucket_half_count = sub_bucket_count / 2;
        // buckets_to_cover(high)
        let mut smallest_untrackable = u64::from(sub_bucket_count) << unit_magnitude;
        let mut buckets: u32 = 1;
        while smallest_untrackable <= high {
            if smallest_untrackable > u64::MAX / 2 {
                buckets += 1;
                break;
            }
            smallest_untrackable <<= 1;
            buckets += 1;
        }
        Layout {
            low,
            sigfig,
            unit_magnitude,
            sub_bucket_half_count_magnitude: sub_bucket_count_magnitude - 1,
            sub_bucket_half_count,
            sub_bucket_mask: (u64::from(sub_bucket_count) - 1) << unit_magnitude,
            leading_zero_count_base: 64 - unit_magnitude - sub_bucket_count_magnitude,
            len: ((buckets + 1) * sub_bucket_half_count) as usize,
        }
    }

    /// The counts index of `value` (`Histogram::index_for`).
    #[inline]
    fn index_for(&self, value: u64) -> usize {
        let bucket = u32::from(self.leading_zero_count_base) - (value | self.sub_bucket_mask).leading_zeros();
        let sub_bucket = (value >> (bucket + u32::from(self.unit_magnitude))) as usize;
        ((bucket as usize + 1) << self.sub_bucket_half_count_magnitude) + sub_bucket
            - self.sub_bucket_half_count as usize
    }

    /// The lowest value counted at `index` (`Histogram::value_for`).
    fn value_for(&self, index: usize) -> u64 {
        let mut bucket = (index >> self.sub_bucket_half_count_magnitude) as i64 - 1;
        let mut sub_bucket = (index as u32 & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count;
        if bucket < 0 {
            sub_bucket -= self.sub_bucket_half_count;
            bucket = 0;
        }
        u64::from(sub_bucket) << (bucket as u32 + u32::from(self.unit_magnitude))
    }

    /// `Histogram::bucket_for`: the bucket (power of two) `value` falls in.
    fn bucket_for(&self, value: u64) -> u32 {
        u32::from(self.leading_zero_count_base) - (value | self.sub_bucket_mask).leading_zeros()
    }

    /// `Histogram::lowest_equivalent`.
    fn lowest_equivalent(&self, value: u64) -> u64 {
        let bucket = self.bucket_for(value);
        let sub_bucket = value >> (bucket + u32::from(self.unit_magnitude));
        sub_bucket << (bucket + u32::from(self.unit_magnitude))
    }

    /// `Histogram::equivalent_range`: how many values share `value`'s count.
    fn equivalent_range(&self, value: u64) -> u64 {
        1_u64 << (u32::from(self.unit_magnitude) + self.bucket_for(value))
    }

    /// `Histogram::highest_equivalent`.
    fn highest_equivalent(&self, value: u64) -> u64 {
        if value == u64::MAX {
            u64::MAX
        } else {
            self.lowest_equivalent(value)
                .saturating_add(self.equivalent_range(value))
                - 1
        }
    }

    /// `Histogram::median_equivalent` of the value the crate's iterators report for
    /// `index` (the highest value counted there): the value `Histogram::mean` weighs the
    /// index's count with.
    /// That is the index's lowest value plus half its range (2^(bucket + unit magnitude)
    /// values), worked out from the index alone (tested against the crate for every index).
    fn mean_value_at(&self, index: usize) -> u64 {
        let bucket = ((index >> self.sub_bucket_half_count_magnitude) as u32).saturating_sub(1);
        self.value_for(index) + ((1_u64 << (bucket + u32::from(self.unit_magnitude))) >> 1)
    }

    /// What `Histogram::value_at_quantile(q)` answers: the value reported for index `i`
    /// once the running count reaches the target.
    fn quantile_value_at(&self, index: usize, q: f64) -> u64 {
        let v = self.value_for(index);
        if q == 0.0 {
            self.lowest_equivalent(v)
        } else {
            self.highest_equivalent(v)
        }
    }

    /// `Histogram::value_at_quantile`'s target: how many samples lie at or below the
    /// quantile's value (at least one).
    fn quantile_target(q: f64, total: u64) -> u64 {
        let q = if q > 1.0 { 1.0 } else { q };
        ((q * total as f64).ceil() as u64).max(1)
    }

    /// `value_at_quantile(q)` of the crate's histogram holding `counts` (`total` of them).
    fn value_at_quantile(&self, counts: &[u64], total: u64, q: f64) -> u64 {
        let target = Layout::quantile_target(q, total);
        let mut seen = 0_u64;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return self.quantile_value_at(i, q);
            }
        }
        0
    }

    /// `mean()` of the crate's histogram holding `counts` (`total` > 0 of them): the same
    /// sum, term by term in index order, so the same bits.
    fn mean(&self, counts: &[u64], total: u64) -> f64 {
        let t = total as f64;
        nonzero(counts).fold(0.0, |m, (i, c)| m + as_f64(self.mean_value_at(i)) * as_f64(c) / t)
    }

    /// `max()` of the crate's histogram holding `counts`: the highest value equivalent to
    /// the largest recorded one (0 when only zeros, or nothing, were recorded).
    fn max(&self, counts: &[u64]) -> u64 {
        let unit_mask = (1_u64 << self.unit_magnitude) - 1;
        match counts.iter().rposition(|&c| c > 0) {
            Some(i) if self.value_for(i) | unit_mask > 0 => self.highest_equivalent(self.value_for(i) | unit_mask),
            _ => 0,
        }
    }

    /// The summary of the crate's histogram holding `counts` (`total` > 0 of them), read in
    /// one pass over the counts instead of rebuilding that histogram and walking it once
    /// per quantile and once more for the mean. Every figure is the crate's, bit for bit
    /// (see [`Layout::value_at_quantile`], [`Layout::mean`], [`Layout::max`]; tested
    /// against the crate).
    fn summary(&self, counts: &[u64], total: u64) -> Summary {
        const QS: [f64; 4] = [0.50, 0.95, 0.99, 0.999];
        let targets = QS.map(|q| Layout::quantile_target(q, total));
        let mut values = [0_u64; 4];
        let mut next = 0;
        let mut seen = 0_u64;
        let mut mean = 0.0;
        let t = total as f64;
        for (i, c) in nonzero(counts) {
            seen += c;
            // the targets ascend with the quantiles: each is reached at or after the last
            while next < QS.len() && seen >= targets[next] {
                values[next] = self.quantile_value_at(i, QS[next]);
                next += 1;
            }
            mean += as_f64(self.mean_value_at(i)) * as_f64(c) / t;
        }
        Summary {
            count: total,
            p50: values[0] as f64 / 1000.0,
            p95: values[1] as f64 / 1000.0,
            p99: values[2] as f64 / 1000.0,
            p999: values[3] as f64 / 1000.0,
            max: self.max(counts) as f64 / 1000.0,
            mean: mean / 1000.0,
        }
    }

    fn empty(&self) -> Histogram<u64> {
        Histogram::new_with_bounds(self.low, MAX_US, self.sigfig).expect("valid bounds")
    }

    /// The crate's histogram holding `counts` (this layout's first entries).
    fn histogram(&self, counts: &[u64]) -> Histogram<u64> {
        let mut h = self.empty();
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 {
                h.record_n(self.value_for(i), c).expect("the layout holds every index");
            }
        }
        h
    }
}

/// `x as f64` (the same value), in fewer instructions for the values below 2^63 (all
/// counts and microsecond values met in practice): x86-64 converts signed integers in one.
#[inline]
fn as_f64(x: u64) -> f64 {
    match i64::try_from(x) {
        Ok(i) => i as f64,
        Err(_) => x as f64,
    }
}

/// The non-zero entries of `counts` with their indices, in index order; runs of zeros (most
/// of a latency histogram's layout) are skipped eight at a time.
fn nonzero(counts: &[u64]) -> impl Iterator<Item = (usize, u64)> + '_ {
    counts
        .chunks(8)
        .enumerate()
        .filter(|(_, chunk)| chunk.iter().fold(0, |a, &c| a | c) != 0)
        .flat_map(|(k, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(move |(j, &c)| (8 * k + j, c))
        })
}

/// `counts[i] += 1` (saturating), growing `counts` to reach index `i` (always within the
/// layout: values are clamped to `MAX_US` before they are placed).
/// `full` is the layout's length: the first growth reserves it all (untouched memory
/// costs nothing), so growing never copies.
#[inline]
fn bump(counts: &mut Vec<u64>, i: usize, full: usize) {
    match counts.get_mut(i) {
        Some(c) => *c = c.saturating_add(1),
        None => grow_and_bump(counts, i, full),
    }
}

/// [`bump`] past the end of `counts` (rare: kept out of the recording path).
#[cold]
#[inline(never)]
fn grow_and_bump(counts: &mut Vec<u64>, i: usize, full: usize) {
    if counts.capacity() < full {
        counts.reserve_exact(full - counts.len());
    }
    counts.resize(i + 1, 0);
    counts[i] = 1;
}

/// A duration placed once in the layout every `Hist::new(3)` histogram shares, so a sample
/// counted in several of them (its group, its fault phase, embeddings) costs one index computation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    n: Nanos,
    index: usize,
}

/// Places durations for [`Hist::record_placed`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placer(Layout);

impl Placer {
    /// For `Hist::new(3)` histograms.
    pub(crate) fn fine() -> Placer {
        Placer(Layout::new(1, MAX_US, 3))
    }

    /// Where `n` is counted: [`Layout::index_for`] of its clamped microseconds, worked out
    /// by [`fine_index`] from constants (the only placer is [`Placer::fine`]) instead of the
    /// layout's fields (this runs three or four times per simulated request).
    #[inline]
    pub(crate) fn place(&self, n: Nanos) -> Placed {
        debug_assert_eq!(self.0, Layout::new(1, MAX_US, 3), "only fine placers exist");
        Placed {
            n,
            index: fine_index((n / 1_000).clamp(1, MAX_US)),
        }
    }
}

/// [`Layout::index_for`] of the fine layout (`Layout::new(1, MAX_US, 3)`: unit magnitude 0,
/// 2048 sub-buckets, so a half of 1024 = 2^10 and a leading-zero base of 64 − 0 − 11 = 53),
/// with those fields as constants. With unit magnitude 0 the general
/// `((bucket + 1) << 10) + (value >> bucket) − 1024` is `(bucket << 10) + (value >> bucket)`.
/// The same index for every value (tested at both ends of every index's range and at random).
#[inline]
fn fine_index(value: u64) -> usize {
    const HALF_COUNT_MAGNITUDE: u32 = 10;
    const SUB_BUCKET_MASK: u64 = (1 << (HALF_COUNT_MAGNITUDE + 1)) - 1;
    const LEADING_ZERO_COUNT_BASE: u32 = 64 - (HALF_COUNT_MAGNITUDE + 1);
    let bucket = LEADING_ZERO_COUNT_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    ((bucket as usize) << HALF_COUNT_MAGNITUDE) + (value >> bucket) as usize
}

/// Bare counts in the [`Placer::fine`] layout, for the aggregator's cells: folding a record
/// in is a bounds check and an add (no layout check, no sample total, no view to clear);
/// [`Hist::add_counts`] turns them into a histogram when a report reads them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts(Vec<u64>);

impl Counts {
    /// Counts one duration placed by `placer` (the same as [`Hist::record_placed`]).
    #[inline]
    pub(crate) fn bump(&mut self, p: Placed, placer: &Placer) {
        bump(&mut self.0, p.index, placer.0.len);
    }

    /// Nothing counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self` − `minus` + `plus`, entry by entry (`minus` must be counted in `self`).
    pub(crate) fn swap_part(&self, minus: &Counts, plus: &Counts) -> Counts {
        let len = self.0.len().max(plus.0.len());
        let at = |c: &Counts, i: usize| c.0.get(i).copied().unwrap_or(0);
        Counts(
            (0..len)
                .map(|i| at(self, i).saturating_sub(at(minus, i)).saturating_add(at(plus, i)))
                .collect(),
        )
    }
}

/// p50 / p95 / p99 / p99.9 / max / mean in milliseconds, and the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
        let layout = Layout::new(1, MAX_US, sigfig);
        Hist {
            repr: Repr::Counts {
                layout,
                counts: Vec::new(),
                total: 0,
                view: OnceLock::new(),
            },
        }
    }

    /// A compact histogram for per-bucket series and interval logs: the precision of
    /// [`Hist::new`]`(3)` (3 significant digits, 1 µs floor), stored sparsely — about 20
    /// bytes per distinct value held (at most the layout's ≈ 23,600 indices), so a bucket of
    /// a thousand requests costs ≈ 20 KB and an empty one almost nothing.
    pub fn coarse() -> Hist {
        Hist {
            repr: Repr::Sparse {
                counts: BTreeMap::new(),
                total: 0,
                view: OnceLock::new(),
            },
        }
    }

    /// The layout every sparse histogram counts in.
    fn fine_layout() -> &'static Layout {
        static FINE: OnceLock<Layout> = OnceLock::new();
        FINE.get_or_init(|| Layout::new(1, MAX_US, 3))
    }

    /// A sparse histogram's counts as a dense prefix of the fine layout (for reads).
    fn dense(counts: &BTreeMap<u32, u64>) -> Vec<u64> {
        let len = counts.last_key_value().map_or(0, |(&i, _)| i as usize + 1);
        let mut v = vec![0; len];
        for (&i, &c) in counts {
            v[i as usize] = c;
        }
        v
    }

    /// Adds `c` samples at fine index `i` of a sparse histogram.
    fn sparse_add(counts: &mut BTreeMap<u32, u64>, total: &mut u64, i: usize, c: u64) {
        let Ok(i) = u32::try_from(i) else { return };
        let e = counts.entry(i).or_insert(0);
        *e = e.saturating_add(c);
        *total = total.saturating_add(c);
    }

    /// Each recorded index's value as the crate's iterators report it (the highest value
    /// counted there, µs) with its count, in ascending order.
    pub fn recorded_us(&self) -> Vec<(u64, u64)> {
        match &self.repr {
            Repr::Sparse { counts, .. } => {
                let l = Hist::fine_layout();
                counts
                    .iter()
                    .map(|(&i, &c)| (l.highest_equivalent(l.value_for(i as usize)), c))
                    .collect()
            }
            Repr::Counts { layout, counts, .. } => nonzero(counts)
                .map(|(i, c)| (layout.highest_equivalent(layout.value_for(i)), c))
                .collect(),
        }
    }

    /// The crate's `min()` and `max()` in µs (lowest equivalent of the smallest sample,
    /// highest equivalent of the largest); `None` when empty.
    pub fn min_max_us(&self) -> Option<(u64, u64)> {
        if self.is_empty() {
            return None;
        }
        let (l, lo, hi) = match &self.repr {
            Repr::Sparse { counts, .. } => (
                Hist::fine_layout(),
                *counts.first_key_value()?.0 as usize,
                *counts.last_key_value()?.0 as usize,
            ),
            Repr::Counts { layout, counts, .. } => (
                layout,
                counts.iter().position(|&c| c > 0)?,
                counts.iter().rposition(|&c| c > 0)?,
            ),
        };
        Some((
            l.lowest_equivalent(l.value_for(lo)),
            l.highest_equivalent(l.value_for(hi)),
        ))
    }

    /// The crate's histogram of these samples, built afresh (not kept: for writing a
    /// sparse histogram out without holding a full layout per bucket).
    pub fn to_histogram(&self) -> Histogram<u64> {
        match &self.repr {
            Repr::Sparse { counts, .. } => Hist::fine_layout().histogram(&Hist::dense(counts)),
            Repr::Counts { .. } => self.inner().clone(),
        }
    }

    /// Records a duration.
    #[inline]
    pub fn record(&mut self, n: Nanos) {
        match &mut self.repr {
            Repr::Sparse { counts, total, view } => {
                let us = (n / 1_000).clamp(1, MAX_US);
                Hist::sparse_add(counts, total, fine_index(us), 1);
                if view.get().is_some() {
                    view.take();
                }
            }
            Repr::Counts {
                layout,
                counts,
                total,
                view,
            } => {
                let us = (n / 1_000).clamp(layout.low, MAX_US);
                bump(counts, layout.index_for(us), layout.len);
                *total = total.saturating_add(1);
                if view.get().is_some() {
                    view.take();
                }
            }
        }
    }

    /// Records a duration placed by `placer` (the same as [`Hist::record`] of its value).
    #[inline]
    pub(crate) fn record_placed(&mut self, p: Placed, placer: &Placer) {
        match &mut self.repr {
            Repr::Counts {
                layout,
                counts,
                total,
                view,
            } if layout.low == placer.0.low && layout.sigfig == placer.0.sigfig => {
                bump(counts, p.index, layout.len);
                *total = total.saturating_add(1);
                if view.get().is_some() {
                    view.take();
                }
            }
            // the only placer is the fine one: its index is a sparse histogram's
            Repr::Sparse { counts, total, view } => {
                Hist::sparse_add(counts, total, p.index, 1);
                if view.get().is_some() {
                    view.take();
                }
            }
            _ => self.record(p.n),
        }
    }

    /// Records `n` durations placed by `placer` (as many [`Hist::record_placed`]).
    pub(crate) fn record_placed_n(&mut self, p: Placed, placer: &Placer, n: u64) {
        if n == 0 {
            return;
        }
        let mut c = Counts::default();
        c.bump(p, placer);
        c.0[p.index] = n;
        self.add_counts(&c, placer);
    }

    /// Adds the samples of `c` (counted in `placer`'s layout).
    pub(crate) fn add_counts(&mut self, c: &Counts, placer: &Placer) {
        if c.is_empty() {
            return;
        }
        match &mut self.repr {
            Repr::Counts {
                layout,
                counts,
                total,
                view,
            } if *layout == placer.0 => {
                view.take();
                if counts.len() < c.0.len() {
                    counts.resize(c.0.len(), 0);
                }
                for (a, &x) in counts.iter_mut().zip(&c.0) {
                    *a = a.saturating_add(x);
                }
                *total = c.0.iter().fold(*total, |t, &x| t.saturating_add(x));
            }
            // another layout: as a merge of a histogram in the placer's
            _ => {
                let mut h = Hist::new(placer.0.sigfig);
                h.add_counts(c, placer);
                self.merge(&h);
            }
        }
    }

    /// Samples.
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Counts { total, .. } | Repr::Sparse { total, .. } => *total,
        }
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Quantile in ms (0 when empty): the crate's `value_at_quantile`.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let us = match &self.repr {
            Repr::Counts {
                layout, counts, total, ..
            } => layout.value_at_quantile(counts, *total, q),
            Repr::Sparse { counts, total, .. } => {
                let target = Layout::quantile_target(q, *total);
                let mut seen = 0_u64;
                let at = counts.iter().find(|(_, &c)| {
                    seen += c;
                    seen >= target
                });
                at.map_or(0, |(&i, _)| Hist::fine_layout().quantile_value_at(i as usize, q))
            }
        };
        us as f64 / 1000.0
    }

    /// Mean in ms: the crate's `mean`.
    pub fn mean_ms(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        match &self.repr {
            Repr::Counts {
                layout, counts, total, ..
            } => layout.mean(counts, *total) / 1000.0,
            Repr::Sparse { counts, total, .. } => {
                let (l, t) = (Hist::fine_layout(), *total as f64);
                counts.iter().fold(0.0, |m, (&i, &c)| {
                    m + as_f64(l.mean_value_at(i as usize)) * as_f64(c) / t
                }) / 1000.0
            }
        }
    }

    /// The summary (the crate's quantiles, max and mean; read straight from the counts).
    pub fn summary(&self) -> Summary {
        if self.is_empty() {
            return Summary::default();
        }
        match &self.repr {
            Repr::Counts {
                layout, counts, total, ..
            } => layout.summary(counts, *total),
            Repr::Sparse { counts, total, .. } => Hist::fine_layout().summary(&Hist::dense(counts), *total),
        }
    }

    /// What [`Hist::summary`] reads from a non-empty crate histogram (tests compare).
    #[cfg(test)]
    fn summary_of(h: &Histogram<u64>) -> Summary {
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 / 1000.0,
            mean: h.mean() / 1000.0,
        }
    }

    /// The underlying histogram, built once and kept until the next record (for a sparse
    /// histogram that is a full layout: prefer [`Hist::to_histogram`] there).
    pub fn inner(&self) -> &Histogram<u64> {
        match &self.repr {
            Repr::Sparse { counts, view, .. } => {
                view.get_or_init(|| Hist::fine_layout().histogram(&Hist::dense(counts)))
            }
            Repr::Counts {
                layout, counts, view, ..
            } => view.get_or_init(|| layout.histogram(counts)),
        }
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Hist) {
        match (&mut self.repr, &o.repr) {
            (Repr::Sparse { counts, total, view }, src) => {
                view.take();
                match src {
                    Repr::Sparse { counts: oc, .. } => {
                        for (&i, &c) in oc {
                            Hist::sparse_add(counts, total, i as usize, c);
                        }
                    }
                    Repr::Counts { layout, counts: oc, .. } if layout == Hist::fine_layout() => {
                        for (i, c) in nonzero(oc) {
                            Hist::sparse_add(counts, total, i, c);
                        }
                    }
                    // another layout: each of its buckets at its lowest value, as
                    // `Histogram::add` does
                    Repr::Counts { layout, counts: oc, .. } => {
                        for (i, c) in nonzero(oc) {
                            let v = layout.value_for(i).clamp(1, MAX_US);
                            Hist::sparse_add(counts, total, fine_index(v), c);
                        }
                    }
                }
            }
            (
                Repr::Counts {
                    layout,
                    counts,
                    total,
                    view,
                },
                src,
            ) => {
                view.take();
                if let Repr::Counts {
                    layout: ol,
                    counts: oc,
                    total: ot,
                    ..
                } = src
                {
                    if ol == layout {
                        if counts.len() < oc.len() {
                            counts.resize(oc.len(), 0);
                        }
                        for (c, &x) in counts.iter_mut().zip(oc) {
                            *c = c.saturating_add(x);
                        }
                        *total = total.saturating_add(*ot);
                        return;
                    }
                }
                if let Repr::Sparse { counts: oc, .. } = src {
                    if layout == Hist::fine_layout() {
                        for (&i, &c) in oc {
                            let i = i as usize;
                            if counts.len() <= i {
                                counts.resize(i + 1, 0);
                            }
                            counts[i] = counts[i].saturating_add(c);
                            *total = total.saturating_add(c);
                        }
                        return;
                    }
                }
                // different layouts: each of the other's buckets at its lowest value, as
                // `Histogram::add` does
                let oh = o.inner();
                for v in oh.iter_recorded() {
                    let i = layout.index_for(oh.lowest_equivalent(v.value_iterated_to()));
                    if i < layout.len {
                        if counts.len() <= i {
                            counts.resize(i + 1, 0);
                        }
                        counts[i] = counts[i].saturating_add(v.count_at_value());
                        *total = total.saturating_add(v.count_at_value());
                    }
                }
            }
        }
    }
}

/// The most bytes one serialized histogram may take in a result file (base64 text): a full
/// fine layout compresses far below this.
pub const MAX_WIRE_BYTES: usize = 4 << 20;

/// Prefix of a sparse ([`Hist::coarse`]) histogram's wire form.
const SPARSE_PREFIX: &str = "sparse:";

impl Hist {
    /// The histogram as text for a result file: `hdrhistogram`'s V2 + DEFLATE serialization
    /// in base64 (as an interval log line carries it), prefixed `sparse:` for a
    /// [`Hist::coarse`] one; an empty `Hist::new(3)` is the empty string. [`Hist::from_wire`]
    /// reads it back into the same representation, every count at its index: merging the
    /// read-back histograms is merging the originals.
    pub fn to_wire(&self) -> String {
        use base64::Engine;
        use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
        let sparse = matches!(self.repr, Repr::Sparse { .. });
        if self.is_empty() && !sparse && self.sigfig() == 3 {
            return String::new();
        }
        let mut bytes = Vec::new();
        // writing to memory fails only for counts past i64::MAX
        if V2DeflateSerializer::new()
            .serialize(&self.to_histogram(), &mut bytes)
            .is_err()
        {
            bytes.clear();
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        if sparse {
            format!("{SPARSE_PREFIX}{b64}")
        } else {
            b64
        }
    }

    /// Reads [`Hist::to_wire`]'s text; an error names what is wrong.
    pub fn from_wire(text: &str) -> Result<Hist, String> {
        use base64::Engine;
        if text.is_empty() {
            return Ok(Hist::new(3));
        }
        if text.len() > MAX_WIRE_BYTES {
            return Err(format!(
                "a histogram of {} bytes (at most {MAX_WIRE_BYTES})",
                text.len()
            ));
        }
        let (sparse, b64) = match text.strip_prefix(SPARSE_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("a histogram is not base64: {e}"))?;
        let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("a histogram does not decode (V2 + DEFLATE): {e:?}"))?;
        let sigfig = h.sigfig();
        if h.low() != 1 || !(1..=3).contains(&sigfig) || (sparse && sigfig != 3) {
            return Err(format!(
                "a histogram with bounds {}..{} and {sigfig} significant digits: chaosgate writes 1 µs floors and 2 or 3 digits",
                h.low(),
                h.high()
            ));
        }
        let layout = Layout::new(1, MAX_US, sigfig);
        let mut out = if sparse { Hist::coarse() } else { Hist::new(sigfig) };
        for v in h.iter_recorded() {
            let value = v.value_iterated_to().min(MAX_US);
            let i = layout.index_for(value);
            let c = v.count_at_value();
            match &mut out.repr {
                Repr::Sparse { counts, total, .. } => Hist::sparse_add(counts, total, i, c),
                Repr::Counts { counts, total, .. } => {
                    if counts.len() <= i {
                        counts.resize(i + 1, 0);
                    }
                    counts[i] = counts[i].saturating_add(c);
                    *total = total.saturating_add(c);
                }
            }
        }
        Ok(out)
    }

    /// Significant digits (3 for a sparse histogram).
    fn sigfig(&self) -> u8 {
        match &self.repr {
            Repr::Sparse { .. } => 3,
            Repr::Counts { layout, .. } => layout.sigfig,
        }
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> serde::Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let text = String::deserialize(d)?;
        Hist::from_wire(&text).map_err(serde::de::Error::custom)
    }
}

impl Counts {
    /// Adds `o`'s counts.
    pub(crate) fn add(&mut self, o: &Counts) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        for (a, &x) in self.0.iter_mut().zip(&o.0) {
            *a = a.saturating_add(x);
        }
    }
}

impl Serialize for Counts {
    /// As the `Hist::new(3)` histogram holding them.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut h = Hist::new(3);
        h.add_counts(self, &Placer::fine());
        s.serialize_str(&h.to_wire())
    }
}

impl<'de> serde::Deserialize<'de> for Counts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        let text = String::deserialize(d)?;
        let h = Hist::from_wire(&text).map_err(serde::de::Error::custom)?;
        match h.repr {
            Repr::Counts { layout, counts, .. } if layout == Placer::fine().0 => Ok(Counts(counts)),
            _ => Err(serde::de::Error::custom(
                "a cell's histogram must have 3 significant digits (dense)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn direct(sigfig: u8, values_ns: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_US, sigfig).unwrap();
        for &n in values_ns {
            h.saturating_record((n / 1_000).clamp(1, MAX_US));
        }
        h
    }

    #[test]
    fn layout_matches_the_crates_length() {
        for (low, sigfig) in [(1, 2), (1, 3), (1000, 2), (1, 1), (7, 3)] {
            let want = Histogram::<u64>::new_with_bounds(low, MAX_US, sigfig)
                .unwrap()
                .distinct_values();
            assert_eq!(Layout::new(low, MAX_US, sigfig).len, want, "low {low} sigfig {sigfig}");
        }
    }

    #[test]
    fn every_index_maps_back_to_itself() {
        let l = Layout::new(1, MAX_US, 3);
        for i in 0..l.len {
            assert_eq!(l.index_for(l.value_for(i)), i, "index {i}");
        }
    }

    /// Both index functions never decrease with the value, so agreeing at the lowest and
    /// the highest value of every index means agreeing on every value in between.
    #[test]
    fn fine_index_is_the_layouts_at_every_index_boundary() {
        let l = Layout::new(1, MAX_US, 3);
        assert_eq!(Placer::fine().0, l);
        assert_eq!(
            (
                l.unit_magnitude,
                l.sub_bucket_half_count_magnitude,
                l.leading_zero_count_base
            ),
            (0, 10, 53)
        );
        for i in 0..l.len {
            let low = l.value_for(i);
            let high = l.highest_equivalent(low);
            for v in [low, high, low + (high - low) / 2] {
                assert_eq!(fine_index(v), l.index_for(v), "value {v}");
            }
        }
        assert_eq!(fine_index(0), l.index_for(0));
        for n in [0, 999, 1_000, 1_234_567, MAX_US * 1_000, u64::MAX] {
            let want = l.index_for((n / 1_000).clamp(l.low, MAX_US));
            assert_eq!(Placer::fine().place(n).index, want, "{n} ns");
        }
    }

    #[test]
    fn as_f64_is_as() {
        for x in [
            0,
            1,
            12345,
            (1 << 53) + 1,
            i64::MAX as u64,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(as_f64(x).to_bits(), (x as f64).to_bits(), "{x}");
        }
    }

    #[test]
    fn per_index_values_are_the_crates() {
        for sigfig in [1, 2, 3, 4] {
            let l = Layout::new(1, MAX_US, sigfig);
            let h = l.empty();
            for i in 0..l.len {
                let v = l.value_for(i);
                assert_eq!(l.lowest_equivalent(v), h.lowest_equivalent(v), "index {i}");
                assert_eq!(l.highest_equivalent(v), h.highest_equivalent(v), "index {i}");
                assert_eq!(l.equivalent_range(v), h.equivalent_range(v), "index {i}");
                assert_eq!(
                    l.mean_value_at(i),
                    h.median_equivalent(h.highest_equivalent(v)),
                    "index {i}"
                );
            }
        }
    }

    proptest! {
        /// [`fine_index`] is the fine layout's `index_for`, also beyond the clamped range.
        #[test]
        fn fine_index_is_the_layouts(v in prop_oneof![0u64..5_000, 0u64..=MAX_US, 0u64..(1 << 62)]) {
            prop_assert_eq!(fine_index(v), Layout::new(1, MAX_US, 3).index_for(v));
        }

        /// Quantiles (any q, also outside [0, 1]), mean and max read from the counts are
        /// the crate's, bit for bit, also with large counts per value.
        #[test]
        fn reads_from_counts_are_the_crates(
            v in proptest::collection::vec(
                (prop_oneof![0u64..5_000, 0u64..5_000_000, 0u64..MAX_US + 10], 1u64..1_000_000),
                1..200,
            ),
            qs in proptest::collection::vec(prop_oneof![0.0..=1.0f64, -0.5..1.5f64, Just(0.0), Just(1.0)], 1..20),
            sigfig in 2u8..=3,
        ) {
            let l = Layout::new(1, MAX_US, sigfig);
            let mut counts = vec![0u64; l.len];
            let mut d = l.empty();
            let mut total = 0;
            for &(us, n) in &v {
                let us = us.clamp(1, MAX_US);
                counts[l.index_for(us)] += n;
                total += n;
                d.record_n(us, n).unwrap();
            }
            // trailing zeros trimmed, as a Hist keeps them
            let end = counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
            let counts = &counts[..end];
            prop_assert_eq!(total, d.len());
            for &q in &qs {
                prop_assert_eq!(l.value_at_quantile(counts, total, q), d.value_at_quantile(q), "q {}", q);
            }
            prop_assert_eq!(l.mean(counts, total).to_bits(), d.mean().to_bits());
            prop_assert_eq!(l.max(counts), d.max());
            let s = l.summary(counts, total);
            prop_assert_eq!(s, Hist::summary_of(&d));
            prop_assert_eq!(s.mean.to_bits(), (d.mean() / 1000.0).to_bits());
        }

        /// The counted histogram reads exactly like one recorded directly by the crate.
        #[test]
        fn counts_read_like_the_crates_own_recording(
            v in proptest::collection::vec(
                prop_oneof![0u64..5_000_000, 0u64..200_000_000_000, 0u64..u64::MAX],
                0..300,
            ),
            sigfig in 2u8..=3,
        ) {
            let mut h = Hist::new(sigfig);
            for &n in &v {
                h.record(n);
            }
            let d = direct(sigfig, &v);
            prop_assert_eq!(h.inner(), &d);
            prop_assert_eq!(h.len(), d.len());
            prop_assert_eq!(h.inner().max(), d.max());
            prop_assert_eq!(h.inner().min(), d.min());
            prop_assert_eq!(h.inner().mean(), d.mean());
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                prop_assert_eq!(h.inner().value_at_quantile(q), d.value_at_quantile(q));
                if !v.is_empty() {
                    prop_assert_eq!(h.quantile_ms(q), d.value_at_quantile(q) as f64 / 1000.0);
                }
            }
            if !v.is_empty() {
                prop_assert_eq!(h.mean_ms().to_bits(), (d.mean() / 1000.0).to_bits());
            }
        }

        /// The summary (read from the counts, before and after any other read) is the one
        /// of the crate's own histogram.
        #[test]
        fn summary_is_the_crates(
            v in proptest::collection::vec(
                prop_oneof![0u64..5_000_000, 0u64..200_000_000_000, 0u64..u64::MAX],
                1..300,
            ),
            sigfig in 2u8..=3,
        ) {
            let mut h = Hist::new(sigfig);
            for &n in &v {
                h.record(n);
            }
            let d = direct(sigfig, &v);
            let want = Summary {
                count: d.len(),
                p50: d.value_at_quantile(0.5) as f64 / 1000.0,
                p95: d.value_at_quantile(0.95) as f64 / 1000.0,
                p99: d.value_at_quantile(0.99) as f64 / 1000.0,
                p999: d.value_at_quantile(0.999) as f64 / 1000.0,
                max: d.max() as f64 / 1000.0,
                mean: d.mean() / 1000.0,
            };
            prop_assert_eq!(h.summary(), want);
            // and after a read, from the kept view
            let _ = h.inner();
            prop_assert_eq!(h.summary(), want);
        }

        /// Reads between records see every sample so far; merging adds samples.
        #[test]
        fn reads_between_records_and_merges_stay_exact(
            a in proptest::collection::vec(1_000u64..10_000_000_000, 1..100),
            b in proptest::collection::vec(1_000u64..10_000_000_000, 1..100),
        ) {
            let mut h = Hist::new(3);
            for (k, &n) in a.iter().enumerate() {
                h.record(n);
                prop_assert_eq!(h.quantile_ms(0.5), {
                    let d = direct(3, &a[..=k]);
                    d.value_at_quantile(0.5) as f64 / 1000.0
                });
            }
            let mut other = Hist::new(3);
            for &n in &b {
                other.record(n);
            }
            h.merge(&other);
            let all: Vec<u64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(h.inner(), &direct(3, &all));
            // a coarse (sparse) histogram holds the same samples at the same precision, and
            // reads the same figures
            let mut c = Hist::coarse();
            c.merge(&h);
            prop_assert_eq!(c.inner(), &direct(3, &all));
            prop_assert_eq!(&c.to_histogram(), &direct(3, &all));
            prop_assert_eq!(c.summary(), h.summary());
            prop_assert_eq!(c.mean_ms(), h.mean_ms());
            let mut sparse = Hist::coarse();
            for &n in &all {
                sparse.record(n);
            }
            prop_assert_eq!(sparse.to_histogram(), direct(3, &all));
            for q in [0.0, 0.5, 0.66, 0.99, 0.9999, 1.0] {
                prop_assert_eq!(sparse.quantile_ms(q), h.quantile_ms(q));
            }
            prop_assert_eq!(sparse.min_max_us(), h.min_max_us());
            let d = direct(3, &all);
            prop_assert_eq!(sparse.min_max_us(), Some((d.min(), d.max())));
            let mut back = Hist::new(3);
            back.merge(&sparse);
            prop_assert_eq!(back.inner(), &d);
        }
    }

    #[test]
    fn placed_records_equal_plain_records() {
        let placer = Placer::fine();
        let values = [0, 999, 1_000, 1_234_567, 60_000_000_000, u64::MAX];
        for sigfig in [2, 3] {
            let (mut a, mut b) = (Hist::new(sigfig), Hist::new(sigfig));
            for &n in &values {
                a.record(n);
                b.record_placed(placer.place(n), &placer);
            }
            assert_eq!(a.inner(), b.inner(), "sigfig {sigfig}");
        }
        let (mut a, mut b) = (Hist::coarse(), Hist::coarse());
        for &n in &values {
            a.record(n);
            b.record_placed(placer.place(n), &placer);
        }
        assert_eq!(a.inner(), b.inner());
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Hist::new(3).summary(), Summary::default());
        assert_eq!(Hist::coarse().summary(), Summary::default());
    }
}
