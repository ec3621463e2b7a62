//! The load client's live Prometheus metrics: what `--metrics-listen` serves while
//! `chaosgate load` or `chaosgate run` sends traffic (docs/metrics.md).
//!
//! One [`LoadMetrics`] lives as long as the command (a `run`'s repeats and sweep points
//! add to the same counters, so they only ever go up). The hot path is atomics only:
//! each request finds its provider's and its target's slot by a scan of at most
//! [`MAX_PROVIDERS`] / [`MAX_TARGETS`] set-once cells, and a lock is taken only the first
//! time a new name is seen. Names past the caps are counted under [`OTHER`], with one
//! warning on stderr.
//!
//! Outcome labels are [`Outcome::key`] (the report's own keys: `ok`, `http_502`,
//! `timeout`, …); a response no header, id or body mark attributed to a provider (and a
//! request dropped at the concurrency cap, never sent) counts under [`UNKNOWN`].

use crate::live::promtext::{Exposition, Kind};
use crate::record::{Outcome, RequestRecord};
use crate::time::Nanos;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

/// Most distinct provider names with their own series; more go under [`OTHER`].
pub const MAX_PROVIDERS: usize = 32;
/// Most distinct targets (gateway base URLs) with their own series; more go under [`OTHER`].
pub const MAX_TARGETS: usize = 32;
/// The provider label of a request no response attributed to a provider.
pub const UNKNOWN: &str = "(unknown)";
/// The label of names past [`MAX_PROVIDERS`] / [`MAX_TARGETS`].
pub const OTHER: &str = "(other)";

/// The upper bounds, in seconds, of the latency and TTFT histograms' buckets (fixed, so
/// series from different runs add up).
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
];

/// The outcomes other than `Http(status)`, in the order their counters are kept.
const FIXED: [Outcome; 8] = [
    Outcome::Ok,
    Outcome::Timeout,
    Outcome::ConnectError,
    Outcome::Reset,
    Outcome::StreamCut,
    Outcome::StreamError,
    Outcome::MalformedStream,
    Outcome::Dropped,
];

/// Statuses with a counter of their own: 100 ..= 999 (what an HTTP/1.1 status line holds).
const HTTP_LOW: u16 = 100;
const HTTP_STATUSES: usize = 900;

/// Requests by outcome.
#[derive(Debug)]
struct Outcomes {
    fixed: [AtomicU64; FIXED.len()],
    http: Box<[AtomicU64]>,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes {
            fixed: Default::default(),
            http: (0..HTTP_STATUSES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Outcomes {
    fn add(&self, o: Outcome) {
        let cell = match o {
            Outcome::Http(s) => match self.http.get(usize::from(s.saturating_sub(HTTP_LOW))) {
                Some(c) if s >= HTTP_LOW => c,
                // no status line holds one; counted as a broken answer
                _ => &self.fixed[3],
            },
            Outcome::Ok => &self.fixed[0],
            Outcome::Timeout => &self.fixed[1],
            Outcome::ConnectError => &self.fixed[2],
            Outcome::Reset => &self.fixed[3],
            Outcome::StreamCut => &self.fixed[4],
            Outcome::StreamError => &self.fixed[5],
            Outcome::MalformedStream => &self.fixed[6],
            Outcome::Dropped => &self.fixed[7],
        };
        cell.fetch_add(1, Relaxed);
    }

    /// Every outcome seen at least once (the fixed ones always), with its count.
    fn seen(&self) -> Vec<(Outcome, u64)> {
        let mut v: Vec<(Outcome, u64)> = FIXED
            .iter()
            .zip(&self.fixed)
            .map(|(o, c)| (*o, c.load(Relaxed)))
            .collect();
        for (i, c) in self.http.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                v.push((Outcome::Http(HTTP_LOW + i as u16), n));
            }
        }
        v
    }
}

/// A histogram with [`LATENCY_BUCKETS_S`].
#[derive(Debug, Default)]
struct Hist {
    /// Per bucket, the last one above every bound.
    counts: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_ns: AtomicU64,
}

impl Hist {
    fn observe(&self, ns: Nanos) {
        let s = crate::time::nanos_to_secs_f64(ns);
        let i = LATENCY_BUCKETS_S.partition_point(|b| *b < s);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    fn write(&self, e: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let sum = crate::time::nanos_to_secs_f64(self.sum_ns.load(Relaxed));
        e.histogram(name, labels, &LATENCY_BUCKETS_S, &counts, sum);
    }
}

/// One provider's series.
#[derive(Debug, Default)]
struct ProviderSeries {
    outcomes: Outcomes,
    latency: Hist,
    ttft: Hist,
}

/// Set-once named slots, found without a lock; a new name takes the lock once.
#[derive(Debug)]
struct Slots<T> {
    cells: Vec<OnceLock<(String, T)>>,
    other: T,
    adding: Mutex<()>,
    warned: AtomicBool,
    what: &'static str,
}

impl<T: Default> Slots<T> {
    fn new(cap: usize, what: &'static str) -> Slots<T> {
        Slots {
            cells: (0..cap).map(|_| OnceLock::new()).collect(),
            other: T::default(),
            adding: Mutex::new(()),
            warned: AtomicBool::new(false),
            what,
        }
    }

    fn find(&self, name: &str) -> Option<&T> {
        for c in &self.cells {
            match c.get() {
                Some((n, t)) if n == name => return Some(t),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// `name`'s slot, made on first sight; past the cap the shared [`OTHER`] slot.
    fn get(&self, name: &str) -> &T {
        if let Some(t) = self.find(name) {
            return t;
        }
        let _g = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        for c in &self.cells {
            if c.get().is_none() {
                let (_, t) = c.get_or_init(|| (name.to_string(), T::default()));
                return t;
            }
            if let Some((n, t)) = c.get() {
                if n == name {
                    return t;
                }
            }
        }
        if !self.warned.swap(true, Relaxed) {
            eprintln!(
                "chaosgate: metrics: more than {} distinct {}s; the rest are counted under {}=\"{OTHER}\"",
                self.cells.len(),
                self.what,
                self.what
            );
        }
        &self.other
    }

    /// Every named slot in the order first seen, then [`OTHER`] when it was used.
    fn each(&self) -> Vec<(&str, &T)> {
        let mut v: Vec<(&str, &T)> = self
            .cells
            .iter()
            .filter_map(|c| c.get().map(|(n, t)| (n.as_str(), t)))
            .collect();
        if self.warned.load(Relaxed) {
            v.push((OTHER, &self.other));
        }
        v
    }
}

/// The live metric state of the load client.
#[derive(Debug)]
pub struct LoadMetrics {
    scheduled: AtomicU64,
    in_flight: AtomicI64,
    providers: Slots<ProviderSeries>,
    targets: Slots<Outcomes>,
    runs: AtomicU64,
}

impl Default for LoadMetrics {
    fn default() -> LoadMetrics {
        LoadMetrics::new()
    }
}

impl LoadMetrics {
    /// Nothing counted yet.
    pub fn new() -> LoadMetrics {
        LoadMetrics {
            scheduled: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            providers: Slots::new(MAX_PROVIDERS, "provider"),
            targets: Slots::new(MAX_TARGETS, "target"),
            runs: AtomicU64::new(0),
        }
    }

    /// A run of the load client began.
    pub fn run_started(&self) {
        self.runs.fetch_add(1, Relaxed);
    }

    /// The schedule started a request (sent or dropped).
    pub fn scheduled(&self) {
        self.scheduled.fetch_add(1, Relaxed);
    }

    /// A request was sent; the returned guard counts it in flight until dropped.
    pub fn sent(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    /// A request ended (or was dropped), sent to `target`: its outcome, its provider (or
    /// [`UNKNOWN`]), its latency and time to first token from its intended send time.
    pub fn ended(&self, rec: &RequestRecord, target: &str) {
        let p = self.providers.get(rec.provider.as_deref().unwrap_or(UNKNOWN));
        p.outcomes.add(rec.outcome);
        self.targets.get(target).add(rec.outcome);
        if rec.sent.is_some() {
            p.latency.observe(rec.end.saturating_sub(rec.intended));
            if let Some(ft) = rec.first_token {
                p.ttft.observe(ft.saturating_sub(rec.intended));
            }
        }
    }

    /// The exposition: every family with `# HELP` and `# TYPE`, label values escaped.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        let f = "chaosgate_load_runs_total";
        e.family(
            f,
            Kind::Counter,
            "Load runs started by this command (a run's repeats and sweep points each count).",
        );
        e.sample(f, &[], self.runs.load(Relaxed));
        let f = "chaosgate_load_scheduled_total";
        e.family(
            f,
            Kind::Counter,
            "Requests the schedule started: sent, or dropped at the concurrency cap.",
        );
        e.sample(f, &[], self.scheduled.load(Relaxed));
        let f = "chaosgate_load_in_flight";
        e.family(f, Kind::Gauge, "Requests sent and not yet ended.");
        e.sample(f, &[], self.in_flight.load(Relaxed).max(0) as u64);
        let providers = self.providers.each();
        let f = "chaosgate_load_requests_total";
        e.family(
            f,
            Kind::Counter,
            "Requests that ended, by the provider the response named and the outcome class (the report's keys: ok, http_502, timeout, stream_cut, dropped, ...).",
        );
        for (name, p) in &providers {
            for (o, n) in p.outcomes.seen() {
                e.sample(f, &[("provider", name), ("outcome", &o.key())], n);
            }
        }
        let f = "chaosgate_load_target_requests_total";
        e.family(
            f,
            Kind::Counter,
            "Requests that ended, by the gateway base URL (replica) they went to and the outcome class.",
        );
        for (name, t) in self.targets.each() {
            for (o, n) in t.seen() {
                e.sample(f, &[("target", name), ("outcome", &o.key())], n);
            }
        }
        let f = "chaosgate_load_request_duration_seconds";
        e.family(
            f,
            Kind::Histogram,
            "End-to-end latency of sent requests, from the intended send time to the end, by provider.",
        );
        for (name, p) in &providers {
            p.latency.write(&mut e, f, &[("provider", name)]);
        }
        let f = "chaosgate_load_ttft_seconds";
        e.family(
            f,
            Kind::Histogram,
            "Time to the first content token of streamed requests, from the intended send time, by provider.",
        );
        for (name, p) in &providers {
            p.ttft.write(&mut e, f, &[("provider", name)]);
        }
        e.finish()
    }
}

/// A request in flight: counted until dropped (ended, or its task cancelled).
#[derive(Debug)]
pub struct InFlight<'a>(&'a LoadMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(provider: Option<&str>, outcome: Outcome, intended: Nanos, ft: Option<Nanos>, end: Nanos) -> RequestRecord {
        RequestRecord {
            id: 0,
            kind: 0,
            intended,
            sent: (outcome != Outcome::Dropped).then_some(intended),
            first_byte: None,
            first_token: ft,
            end,
            outcome,
            output_tokens: 0,
            input_tokens: 0,
            provider: provider.map(str::to_string),
            stream: ft.is_some(),
        }
    }

    #[test]
    fn counts_outcomes_latency_and_ttft_per_provider() {
        let m = LoadMetrics::new();
        let ms = crate::time::NS_PER_MS;
        m.ended(&rec(Some("a"), Outcome::Ok, 0, Some(30 * ms), 200 * ms), "t");
        m.ended(&rec(Some("a"), Outcome::Http(502), 1_000 * ms, None, 1_004 * ms), "t");
        m.ended(&rec(None, Outcome::Dropped, 5, None, 5), "t");
        m.ended(&rec(None, Outcome::Timeout, 0, None, 400_000 * ms), "t");
        let g = m.sent();
        let text = m.render();
        drop(g);
        for line in [
            "chaosgate_load_in_flight 1",
            "chaosgate_load_requests_total{provider=\"a\",outcome=\"ok\"} 1",
            "chaosgate_load_requests_total{provider=\"a\",outcome=\"http_502\"} 1",
            "chaosgate_load_requests_total{provider=\"a\",outcome=\"timeout\"} 0",
            "chaosgate_load_requests_total{provider=\"(unknown)\",outcome=\"dropped\"} 1",
            "chaosgate_load_requests_total{provider=\"(unknown)\",outcome=\"timeout\"} 1",
            "chaosgate_load_target_requests_total{target=\"t\",outcome=\"ok\"} 1",
            "chaosgate_load_target_requests_total{target=\"t\",outcome=\"http_502\"} 1",
            // 4 ms is in the first bucket (≤ 5 ms), 200 ms in ≤ 0.25
            "chaosgate_load_request_duration_seconds_bucket{provider=\"a\",le=\"0.005\"} 1",
            "chaosgate_load_request_duration_seconds_bucket{provider=\"a\",le=\"0.1\"} 1",
            "chaosgate_load_request_duration_seconds_bucket{provider=\"a\",le=\"0.25\"} 2",
            "chaosgate_load_request_duration_seconds_sum{provider=\"a\"} 0.204",
            "chaosgate_load_request_duration_seconds_count{provider=\"a\"} 2",
            // the dropped request has no latency; 400 s is above every bound
            "chaosgate_load_request_duration_seconds_bucket{provider=\"(unknown)\",le=\"300\"} 0",
            "chaosgate_load_request_duration_seconds_bucket{provider=\"(unknown)\",le=\"+Inf\"} 1",
            "chaosgate_load_ttft_seconds_bucket{provider=\"a\",le=\"0.025\"} 0",
            "chaosgate_load_ttft_seconds_bucket{provider=\"a\",le=\"0.05\"} 1",
            "chaosgate_load_ttft_seconds_count{provider=\"a\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(m.render().contains("chaosgate_load_in_flight 0\n"));
    }

    #[test]
    fn providers_past_the_cap_are_counted_under_other() {
        let m = LoadMetrics::new();
        for i in 0..MAX_PROVIDERS + 5 {
            m.ended(&rec(Some(&format!("p{i}")), Outcome::Ok, 0, None, 1), "t");
        }
        m.ended(&rec(Some("p0"), Outcome::Ok, 0, None, 1), "t");
        let text = m.render();
        assert!(text.contains("chaosgate_load_requests_total{provider=\"p0\",outcome=\"ok\"} 2\n"));
        assert!(text.contains(&format!(
            "chaosgate_load_requests_total{{provider=\"p{}\",outcome=\"ok\"}} 1\n",
            MAX_PROVIDERS - 1
        )));
        assert!(!text.contains(&format!("provider=\"p{}\"", MAX_PROVIDERS)));
        assert!(text.contains("chaosgate_load_requests_total{provider=\"(other)\",outcome=\"ok\"} 5\n"));
    }
}
