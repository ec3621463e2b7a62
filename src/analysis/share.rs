//! Traffic share: which provider answered the requests started in each time bucket
//! (`docs/semantics.md` §12). One definition, [`share`], serves the report's series and the
//! traffic view of detection and failback ([`super::resilience`]).
//!
//! The series reads what the *client* saw: a request counts for the provider its answer
//! named (the `x-chaosgate-provider` header or the provider's mark in the body,
//! [`crate::provider::mark`]), in the bucket it was intended to start in, ok or failed.
//! So it is the same for the builtin gateway and any external one whose answers keep a
//! mark. Requests no answer named (a timeout, a reset, a gateway's own error, a body a
//! gateway rewrote) are counted per bucket as `unattributed` and left out of the shares.

use super::Aggregator;
use crate::time::Nanos;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The per-bucket counts the resilience metrics read: client requests by intended start,
/// and what each provider received (user traffic, probes excluded).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Bucket length.
    pub bucket: Nanos,
    /// Client requests intended in each bucket: (sent, failed).
    pub requests: Vec<(u64, u64)>,
    /// Per provider, user-traffic requests it received in each bucket.
    pub arrivals: BTreeMap<String, Vec<u64>>,
    /// The end of the run — the end of the traffic or of the last answer, whichever is
    /// later — where fault windows still open are cut ([`Nanos::MAX`]: not known). A
    /// window whose user-facing part ends here lasted to the end: it has no failback.
    pub horizon: Nanos,
}

impl Series {
    /// From an aggregator alone: a provider's traffic is the requests it served (the
    /// response named it). Prefer [`Series::with_arrivals`] when the providers' own counts
    /// are known: a gateway that tries a failing provider first and then falls back still
    /// sends it traffic.
    pub fn from_aggregator(agg: &Aggregator) -> Series {
        let n = agg.buckets.len();
        let mut arrivals: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut requests = vec![(0, 0); n];
        for (p, starts) in agg.provider_starts() {
            let mut v = vec![0; n];
            for (i, &(o, f)) in starts.iter().enumerate() {
                v[i] = o + f;
                requests[i].0 += o + f;
                requests[i].1 += f;
            }
            arrivals.insert(p.to_string(), v);
        }
        Series {
            bucket: agg.bucket_len(),
            requests,
            arrivals,
            horizon: Nanos::MAX,
        }
    }

    /// Sets [`Series::horizon`].
    pub fn with_horizon(mut self, horizon: Nanos) -> Series {
        self.horizon = horizon;
        self
    }

    /// Replaces the per-provider traffic with what the providers received. `bucket` must
    /// be this series' bucket.
    pub fn with_arrivals(mut self, arrivals: BTreeMap<String, Vec<u64>>) -> Series {
        self.arrivals = arrivals;
        self
    }
}

/// A provider's share of the traffic: `mine` of `all` requests; `None` when there were
/// none (a bucket without traffic has no share, rather than a share of 0).
pub fn share(mine: u64, all: u64) -> Option<f64> {
    (all > 0).then(|| mine as f64 / all as f64)
}

/// The name under which requests no answer attributed are counted.
pub const UNATTRIBUTED: &str = "unknown";

/// Per-provider traffic share per time bucket (the run JSON's `traffic_share`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficShare {
    /// Bucket length (s); bucket `i` starts at `i × bucket_s`.
    pub bucket_s: f64,
    /// Per bucket: the attributed requests started in it (ok or failed; the shares'
    /// denominator).
    pub requests: Vec<u64>,
    /// Per bucket: requests started in it that no answer attributed to a provider.
    pub unattributed: Vec<u64>,
    /// Per provider, per bucket: its share of the attributed requests started in the
    /// bucket (4 decimals); `null` where none started.
    pub providers: BTreeMap<String, Vec<Option<f64>>>,
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The share series of a client-view [`Series`] ([`Series::from_aggregator`]: each
/// provider's requests as the answers named them, `unknown` for the rest).
pub fn traffic_share(series: &Series) -> TrafficShare {
    let n = series.arrivals.values().map(Vec::len).max().unwrap_or(0);
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let empty = Vec::new();
    let unknown = series.arrivals.get(UNATTRIBUTED).unwrap_or(&empty);
    let named: Vec<(&String, &Vec<u64>)> = series.arrivals.iter().filter(|(p, _)| *p != UNATTRIBUTED).collect();
    let requests: Vec<u64> = (0..n).map(|i| named.iter().map(|(_, v)| at(v, i)).sum()).collect();
    let providers = named
        .iter()
        .map(|(p, v)| {
            let s = (0..n).map(|i| share(at(v, i), requests[i]).map(round4)).collect();
            ((*p).clone(), s)
        })
        .collect();
    TrafficShare {
        bucket_s: crate::time::nanos_to_secs_f64(series.bucket),
        unattributed: (0..n).map(|i| at(unknown, i)).collect(),
        requests,
        providers,
    }
}

impl TrafficShare {
    /// Provider `p`'s share over buckets `[from, to)` (each bucket's share weighted by its
    /// requests); `None` when no attributed request started in them.
    pub fn share_over(&self, p: &str, from: usize, to: usize) -> Option<f64> {
        let s = self.providers.get(p)?;
        let to = to.min(self.requests.len());
        let (mut mine, mut all) = (0.0, 0u64);
        for i in from.min(to)..to {
            if let Some(x) = s.get(i).copied().flatten() {
                mine += x * self.requests[i] as f64;
            }
            all += self.requests[i];
        }
        (all > 0).then(|| mine / all as f64)
    }

    /// All attributed and unattributed requests.
    pub fn totals(&self) -> (u64, u64) {
        (self.requests.iter().sum(), self.unattributed.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Aggregator, SloThresholds};
    use crate::record::{Outcome, RequestRecord};
    use crate::time::{NS_PER_MS, NS_PER_S};

    fn rec(id: u64, intended: u64, provider: Option<&str>, outcome: Outcome) -> RequestRecord {
        RequestRecord {
            id,
            kind: 0,
            intended,
            sent: Some(intended),
            first_byte: None,
            first_token: None,
            end: intended + 10 * NS_PER_MS,
            outcome,
            output_tokens: 0,
            input_tokens: 0,
            provider: provider.map(str::to_string),
            stream: false,
        }
    }

    /// By hand: 1 s buckets. Bucket 0: a, a, b ok → a 2/3, b 1/3. Bucket 1: a failed (its
    /// error named it), b ok, one timeout no answer named → a 1/2, b 1/2, 1 unattributed.
    /// Bucket 2: only a timeout → no shares (null), 1 unattributed. Bucket 3: b → b 1, a 0.
    /// A dropped request (never sent) counts nowhere.
    #[test]
    fn share_series_by_hand() {
        let mut agg = Aggregator::new(NS_PER_S, vec!["chat".into()], SloThresholds::default());
        let s = NS_PER_S;
        let rs = [
            rec(0, 0, Some("a"), Outcome::Ok),
            rec(1, 100 * NS_PER_MS, Some("a"), Outcome::Ok),
            rec(2, 900 * NS_PER_MS, Some("b"), Outcome::Ok),
            rec(3, s, Some("a"), Outcome::Http(502)),
            rec(4, s + 1, Some("b"), Outcome::Ok),
            rec(5, s + 2, None, Outcome::Timeout),
            rec(6, 2 * s, None, Outcome::Reset),
            rec(7, 3 * s, Some("b"), Outcome::Ok),
            rec(8, 3 * s, None, Outcome::Dropped),
        ];
        for r in &rs {
            agg.add(r, &[], false);
        }
        let t = traffic_share(&Series::from_aggregator(&agg));
        assert_eq!(t.bucket_s, 1.0);
        assert_eq!(t.requests, vec![3, 2, 0, 1]);
        assert_eq!(t.unattributed, vec![0, 1, 1, 0]);
        assert_eq!(t.providers.len(), 2, "unknown is no provider");
        assert_eq!(t.providers["a"], vec![Some(0.6667), Some(0.5), None, Some(0.0)]);
        assert_eq!(t.providers["b"], vec![Some(0.3333), Some(0.5), None, Some(1.0)]);
        assert_eq!(t.totals(), (6, 2));
        // a's share over the whole run: 3 of 6 (weights undo the rounding to 1e-4)
        assert!((t.share_over("a", 0, 4).unwrap() - 0.5).abs() < 1e-4);
        assert_eq!(t.share_over("a", 2, 3), None);
        assert_eq!(t.share_over("zzz", 0, 4), None);
        // the same definition the detection's traffic view uses
        assert_eq!(share(2, 3), Some(2.0 / 3.0));
        assert_eq!(share(0, 0), None);
    }

    #[test]
    fn no_records_no_series() {
        let agg = Aggregator::new(NS_PER_S, vec![], SloThresholds::default());
        let t = traffic_share(&Series::from_aggregator(&agg));
        assert!(t.requests.is_empty() && t.providers.is_empty() && t.unattributed.is_empty());
        assert_eq!(t.totals(), (0, 0));
    }
}
