//! Merging aggregators: the statistics of several shards of one run added up into what one
//! aggregator folding every record would hold (docs/sharding.md).
//!
//! Every count is a sum and every histogram adds its counts index by index in the same
//! layout, so every quantile, max and mean read from the merge is bit for bit the one of a
//! single aggregator. The one exception is a bucket's sum of per-request decode speeds
//! (`output_tps`): a sum of floating-point sums in another order, equal to the last bits.

use super::{count_failures, Aggregator, Bucket, Cell, Group, MAX_BUCKETS};

impl Group {
    /// Adds `o`'s requests.
    pub fn merge(&mut self, o: &Group) {
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
            count_failures(&mut self.keys, outcome, n);
        }
    }
}

impl Cell {
    fn merge(&mut self, o: &Cell) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.output_tokens += o.output_tokens;
        self.good += o.good;
        for &(outcome, _, n) in &o.keys {
            count_failures(&mut self.keys, outcome, n);
        }
        self.latency.add(&o.latency);
        self.off_schedule.add(&o.off_schedule);
        self.off_schedule_uncorrected.add(&o.off_schedule_uncorrected);
        self.ttft.add(&o.ttft);
        self.tpot.add(&o.tpot);
        self.itl.merge(&o.itl);
    }
}

impl Bucket {
    fn merge(&mut self, o: &Bucket) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.output_tokens += o.output_tokens;
        self.decode_sum += o.decode_sum;
        self.decode_n += o.decode_n;
        if let Some(h) = &o.latency {
            match &mut self.latency {
                Some(mine) => mine.merge(h),
                None => self.latency = Some(h.clone()),
            }
        }
    }
}

fn merge_hists(mine: &mut Vec<Option<Box<super::Hist>>>, other: &[Option<Box<super::Hist>>]) {
    if mine.len() < other.len() {
        mine.resize_with(other.len(), || None);
    }
    for (m, o) in mine.iter_mut().zip(other) {
        if let Some(h) = o {
            match m {
                Some(x) => x.merge(h),
                None => *m = Some(h.clone()),
            }
        }
    }
}

impl Aggregator {
    /// Adds the records `o` folded: afterwards `self` holds what one aggregator folding both
    /// sets of records would (providers and kinds matched by name). Refuses aggregators of
    /// different settings (bucket length, SLO thresholds, fault windows, request mix).
    pub fn merge(&mut self, o: &Aggregator) -> Result<(), String> {
        if self.bucket != o.bucket {
            return Err(format!("bucket lengths differ ({} ns ≠ {} ns)", self.bucket, o.bucket));
        }
        if self.slo != o.slo {
            return Err("the SLO thresholds differ".into());
        }
        if self.phases != o.phases {
            return Err("the fault windows (phases) differ".into());
        }
        if self.kind_group != o.kind_group || !o.kind_names.starts_with(&self.kind_names[..self.kind_group_names()]) {
            return Err("the request mixes differ (kind names)".into());
        }
        if self.bucket_latency != o.bucket_latency || self.start_latency.is_some() != o.start_latency.is_some() {
            return Err("one kept per-bucket latency histograms, the other did not".into());
        }
        // kind groups by name (`other` may have been met in another order)
        let kinds: Vec<usize> = o.kind_names.iter().map(|n| self.kind_by_name(n)).collect();
        for (opi, name) in o.provider_names.iter().enumerate() {
            let pi = self.provider_index(name);
            for (okg, cell) in o.cells[opi].iter().enumerate() {
                let kg = kinds[okg];
                let row = &mut self.cells[pi];
                if row.len() <= kg {
                    row.resize_with(kg + 1, Cell::default);
                }
                row[kg].merge(cell);
            }
            let usage = &mut self.provider_usage[pi];
            let ou = &o.provider_usage[opi];
            if usage.len() < ou.len() {
                usage.resize(ou.len(), (0, 0, 0));
            }
            for (u, x) in usage.iter_mut().zip(ou) {
                u.0 += x.0;
                u.1 += x.1;
                u.2 += x.2;
            }
            let starts = &mut self.provider_starts[pi];
            let os = &o.provider_starts[opi];
            if starts.len() < os.len() {
                starts.resize(os.len(), (0, 0));
            }
            for (s, x) in starts.iter_mut().zip(os) {
                s.0 += x.0;
                s.1 += x.1;
            }
        }
        for (okg, &n) in o.dropped.iter().enumerate() {
            let kg = kinds[okg];
            if self.dropped.len() <= kg {
                self.dropped.resize(kg + 1, 0);
            }
            self.dropped[kg] += n;
        }
        for (name, g) in &o.per_phase {
            self.per_phase.entry(name.clone()).or_default().merge(g);
        }
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize_with(o.buckets.len(), Bucket::default);
        }
        for (b, x) in self.buckets.iter_mut().zip(&o.buckets) {
            b.merge(x);
        }
        self.lag.merge(&o.lag);
        self.lag_zero += o.lag_zero;
        self.embeddings.0 += o.embeddings.0;
        self.embeddings.1.merge(&o.embeddings.1);
        self.records += o.records;
        self.last_end = self.last_end.max(o.last_end);
        if let (Some(mine), Some(other)) = (&mut self.start_latency, &o.start_latency) {
            merge_hists(mine, other);
        }
        Ok(())
    }

    /// How many kind groups the mix names (those before any `other`).
    fn kind_group_names(&self) -> usize {
        self.kind_group
            .iter()
            .max()
            .map_or(0, |m| m + 1)
            .min(self.kind_names.len())
    }

    /// The kind group named `name`, added when new (only `other` can be).
    fn kind_by_name(&mut self, name: &str) -> usize {
        match self.kind_names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.kind_names.push(name.to_string());
                self.kind_names.len() - 1
            }
        }
    }

    /// Checks an aggregator read from a file: its tables agree in shape and stay within
    /// the limits folding would keep.
    pub fn check_read(&self) -> Result<(), String> {
        let n = self.provider_names.len();
        if self.cells.len() != n || self.provider_usage.len() != n || self.provider_starts.len() != n {
            return Err("the provider tables differ in length".into());
        }
        if self.buckets.len() > MAX_BUCKETS
            || self.provider_starts.iter().any(|s| s.len() > MAX_BUCKETS)
            || self.start_latency.as_ref().is_some_and(|v| v.len() > MAX_BUCKETS)
        {
            return Err(format!("more than {MAX_BUCKETS} time buckets"));
        }
        if self.bucket == 0 {
            return Err("a bucket length of 0".into());
        }
        let groups = self.kind_names.len();
        if self.kind_group.iter().any(|&g| g >= groups)
            || self.cells.iter().any(|row| row.len() > groups)
            || self.dropped.len() > groups
        {
            return Err("a kind group out of range".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SloThresholds;
    use crate::record::{Outcome, RequestRecord};
    use crate::time::{Nanos, NS_PER_MS, NS_PER_S};
    use rand::{Rng, SeedableRng};

    /// Requests as a load run records them: kinds, providers, outcomes, streams, lag,
    /// latencies spread over five decades.
    fn records(n: u64, seed: u64) -> Vec<(RequestRecord, Vec<Nanos>, bool)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|id| {
                let intended = id * 7 * NS_PER_MS;
                let outcome = match rng.random_range(0..20) {
                    0 => Outcome::Http(502),
                    1 => Outcome::Timeout,
                    2 => Outcome::Dropped,
                    3 => Outcome::Http(429),
                    _ => Outcome::Ok,
                };
                let lag = if rng.random_bool(0.3) {
                    rng.random_range(1..5_000_000)
                } else {
                    0
                };
                let latency = 10f64.powf(rng.random_range(5.0..10.0)) as Nanos;
                let stream = rng.random_bool(0.6);
                let tokens = if outcome.is_ok() { rng.random_range(0..60) } else { 0 };
                let first_token = (stream && outcome != Outcome::Dropped).then(|| intended + latency / 3);
                let itl: Vec<Nanos> = (1..tokens.min(8))
                    .map(|_| rng.random_range(1_000..50_000_000))
                    .collect();
                let rec = RequestRecord {
                    id,
                    kind: rng.random_range(0..3),
                    intended,
                    sent: (outcome != Outcome::Dropped).then_some(intended + lag),
                    first_byte: first_token,
                    first_token,
                    end: intended + if outcome == Outcome::Dropped { 0 } else { latency },
                    outcome,
                    output_tokens: tokens,
                    input_tokens: 100,
                    provider: (outcome != Outcome::Dropped)
                        .then(|| ["primary", "fallback", "third"][rng.random_range(0..3)].to_string()),
                    stream,
                };
                (rec, itl, rng.random_bool(0.1))
            })
            .collect()
    }

    fn aggregator() -> Aggregator {
        Aggregator::new(
            NS_PER_S,
            vec!["chat".into(), "long".into(), "chat".into()],
            SloThresholds {
                e2e: Some(800 * NS_PER_MS),
                ..SloThresholds::default()
            },
        )
        .with_phases(vec![("outage".into(), 2 * NS_PER_S, 9 * NS_PER_S)])
        .with_start_latency()
    }

    /// The report with the one figure a merge adds in another order (a bucket's sum of
    /// decode speeds) taken out.
    fn report_json(a: &Aggregator) -> serde_json::Value {
        let mut v = serde_json::to_value(a.report(3_000, 0, 25 * NS_PER_S)).unwrap();
        v.as_object_mut().unwrap().remove("output_tps");
        v
    }

    #[test]
    fn merged_shards_equal_one_aggregator_bit_for_bit() {
        let recs = records(3_000, 11);
        let mut whole = aggregator();
        let mut shards: Vec<Aggregator> = (0..3).map(|_| aggregator()).collect();
        for (r, itl, emb) in &recs {
            whole.add(r, itl, *emb);
            shards[(r.id % 3) as usize].add(r, itl, *emb);
        }
        // through the result file's JSON, as `chaosgate merge` reads them; in another order
        let mut read: Vec<Aggregator> = shards
            .iter()
            .map(|a| {
                let back: Aggregator = serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap();
                back.check_read().unwrap();
                back
            })
            .collect();
        let mut merged = read.remove(2);
        for a in &read {
            merged.merge(a).unwrap();
        }
        assert_eq!(merged.records, 3_000);
        assert_eq!(report_json(&merged), report_json(&whole));
        let (m, w) = (merged.overall(), whole.overall());
        for (a, b) in [
            (&m.latency, &w.latency),
            (&m.latency_uncorrected, &w.latency_uncorrected),
            (&m.ttft, &w.ttft),
            (&m.itl, &w.itl),
            (&m.tpot, &w.tpot),
        ] {
            assert_eq!(a.len(), b.len());
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(a.quantile_ms(q).to_bits(), b.quantile_ms(q).to_bits(), "q {q}");
            }
            assert_eq!(a.mean_ms().to_bits(), b.mean_ms().to_bits());
        }
        assert_eq!(merged.schedule_lag().summary(), whole.schedule_lag().summary());
        for (x, y) in merged.buckets.iter().zip(&whole.buckets) {
            assert_eq!(
                (x.ok, x.failed, x.dropped, x.decode_n),
                (y.ok, y.failed, y.dropped, y.decode_n)
            );
            assert_eq!(
                x.latency.as_ref().map(|h| h.recorded_us()),
                y.latency.as_ref().map(|h| h.recorded_us())
            );
            assert!((x.decode_sum - y.decode_sum).abs() <= 1e-9 * y.decode_sum.abs().max(1.0));
        }
        let starts = |a: &Aggregator| -> Vec<Vec<(u64, u64)>> {
            a.start_latency()
                .unwrap()
                .iter()
                .map(|h| h.as_ref().map(|h| h.recorded_us()).unwrap_or_default())
                .collect()
        };
        assert_eq!(starts(&merged), starts(&whole));
        type Usage = Vec<(String, Vec<(u64, u64, u64)>)>;
        let usage = |a: &Aggregator| -> Usage {
            a.usage()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect()
        };
        assert_eq!(usage(&merged), usage(&whole));
    }

    #[test]
    fn histograms_survive_the_wire_exactly() {
        use crate::analysis::hist::Hist;
        let mut dense = Hist::new(3);
        let mut two = Hist::new(2);
        let mut sparse = Hist::coarse();
        for (i, v) in [1u64, 999, 1_000, 1_001, 123_456_789, 3_600_000_000_000, 5]
            .iter()
            .enumerate()
        {
            for _ in 0..=i {
                dense.record(*v * 1_000);
                two.record(*v * 1_000);
                sparse.record(*v * 1_000);
            }
        }
        for h in [&dense, &two, &sparse, &Hist::new(3), &Hist::coarse()] {
            let back = Hist::from_wire(&h.to_wire()).unwrap();
            assert_eq!(back.recorded_us(), h.recorded_us());
            assert_eq!(back.summary(), h.summary());
            assert_eq!(back.to_wire(), h.to_wire());
        }
        assert!(Hist::from_wire("sparse:").is_err());
        assert!(Hist::from_wire("not base64 ***").unwrap_err().contains("base64"));
    }

    #[test]
    fn different_settings_refuse_to_merge() {
        let mut a = aggregator();
        let b = Aggregator::new(
            NS_PER_S / 10,
            vec!["chat".into(), "long".into(), "chat".into()],
            SloThresholds::default(),
        );
        assert!(a.merge(&b).unwrap_err().contains("bucket"));
        let c = Aggregator::new(NS_PER_S, vec!["x".into()], SloThresholds::default());
        assert!(a.merge(&c).is_err());
    }
}
