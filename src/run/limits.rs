//! Run-level limits: a run's planned work and memory, estimated and checked before any
//! traffic starts (`chaosgate load`, `run`, `sim`, `demo` all come through [`check`]).
//!
//! The estimate is deliberately simple and errs high:
//! - **requests**: the expected number of arrivals of the schedule (rate curve integral,
//!   trace rows; closed loop: users × duration ÷ the shortest cycle), times the runs
//!   (sweep points × repeats);
//! - **health-check probes**: per target of the built-in gateway, the planned length ÷ the
//!   shortest probe interval set, times the targets and the runs (the simulator plans every
//!   probe as an event, like a request);
//! - **requests in flight** at the peak: open loop live — the concurrency cap (more are
//!   dropped, not queued); closed loop — the users; simulated — the peak arrival rate × the
//!   longest a request can stay open (request timeout × attempts × targets);
//! - **memory**: in flight × the bytes one open request takes ([`LIVE_REQUEST_BYTES`],
//!   [`SIM_REQUEST_BYTES`]) plus the time buckets, times the runs held at once (simulator
//!   worker threads).
//!
//! Past a limit the run is refused with what it would need, unless the caller passes
//! `--allow-large` (then the figures are printed and the run goes ahead).

use crate::time::Nanos;
use crate::traffic::{Source, ThinkTime};

/// Most runs per sweep point (`--repeat`).
pub const MAX_REPEAT: u32 = 100_000;
/// Most requests one invocation may plan (all points × repeats).
pub const MAX_REQUESTS: f64 = 1e9;
/// Most active health-check probes one invocation may plan (all targets, points × repeats).
pub const MAX_PROBES: f64 = 1e9;
/// Highest planned arrival rate of a live run (req/s): past it a loopback client only
/// drops requests and falls behind its schedule.
pub const MAX_LIVE_RATE: f64 = 100_000.0;
/// Most memory a run's open requests and buckets may be estimated to take.
pub const MAX_MEMORY_BYTES: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Bytes one open live request takes, estimated high: 64 KiB of task, buffers and
/// connection state, plus the most of a response body the client keeps
/// ([`crate::live::load::PLAIN_BODY_KEEP_BYTES`]; an error body keeps 64 KiB, a plain body past
/// the head at most twice its 64 KiB tail, a stream only the piece at hand).
pub const LIVE_REQUEST_BYTES: f64 = 64.0 * 1024.0 + crate::live::load::PLAIN_BODY_KEEP_BYTES as f64;
/// Bytes one open simulated request takes (its slot and queued events).
pub const SIM_REQUEST_BYTES: f64 = 256.0;
/// Bytes per time bucket and provider (counts, histograms), estimated high.
pub const BUCKET_BYTES: f64 = 4.0 * 1024.0;
/// Bytes per bucket and provider of the arrival series, which are not capped.
pub const SERIES_BYTES: f64 = 16.0;
/// Buckets kept at most (as the analysis does).
const MAX_BUCKETS: f64 = 86_400.0;

/// How the traffic will be driven.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Live, with this concurrency cap (open loop).
    Live {
        /// Most requests in flight.
        concurrency: usize,
    },
    /// In virtual time: a request stays open at most `max_open` (timeouts × attempts).
    Sim {
        /// Longest a request can stay open.
        max_open: Nanos,
    },
}

/// A run's planned work, as estimated before it starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Work {
    /// Requests over every run.
    pub requests: f64,
    /// Active health-check probes over every run.
    pub probes: f64,
    /// Planned length of one run (s; the longest, over points).
    pub duration_s: f64,
    /// Highest arrival rate of one run (req/s; closed loop: 0).
    pub peak_rate: f64,
    /// Requests in flight at the peak, in one run.
    pub in_flight: f64,
    /// Memory of the runs held at once (bytes).
    pub memory_bytes: f64,
    /// Live runs.
    pub live: bool,
}

/// The expected arrivals, peak rate and planned length (s) of one run of `source`.
fn shape(source: &Source) -> (f64, f64, f64) {
    match source {
        Source::Open(curve, _, _) => {
            let d = curve.duration_s();
            // piecewise linear: sample densely (the knots' maxima are what matters for
            // an estimate; the mean bounds it from below)
            let mut peak: f64 = if d > 0.0 { curve.total() / d } else { 0.0 };
            for i in 0..=2048 {
                let t = d * f64::from(i) / 2048.0;
                peak = peak.max(curve.rate_at(t)).max(curve.rate_at((t - 1e-9).max(0.0)));
            }
            (curve.total(), peak, d)
        }
        Source::Trace(t, speed) => {
            let d = crate::time::nanos_to_secs_f64(t.duration(*speed));
            let n = t.rows.len() as f64;
            (n, if d > 0.0 { n / d } else { n }, d)
        }
        Source::Closed {
            users, think, duration, ..
        } => {
            let d = crate::time::nanos_to_secs_f64(*duration);
            // a user's cycle is at least its think time and a millisecond: in the simulator
            // exactly (`SIM_MIN_CYCLE` floors every user's start-to-start interval), so the
            // estimate bounds a simulated run; live, as long as answers take a millisecond
            let cycle = match think {
                ThinkTime::Constant { value } => value.secs_f64(),
                ThinkTime::Uniform { min, .. } => min.secs_f64(),
                ThinkTime::Pacing { interval } => interval.secs_f64(),
            }
            .max(crate::time::nanos_to_secs_f64(crate::traffic::users::SIM_MIN_CYCLE));
            (f64::from(*users) * d / cycle, 0.0, d)
        }
    }
}

impl Work {
    /// One run of `source` driven as `mode`, with `bucket`-long analysis buckets and
    /// `providers` per-provider series.
    pub fn of(source: &Source, mode: Mode, bucket: Nanos, providers: usize) -> Work {
        let (requests, peak_rate, d) = shape(source);
        let closed_users = match source {
            Source::Closed { users, .. } => Some(f64::from(*users)),
            _ => None,
        };
        let (in_flight, per_request, live) = match mode {
            Mode::Live { concurrency } => (
                closed_users.unwrap_or(concurrency.max(1) as f64),
                LIVE_REQUEST_BYTES,
                true,
            ),
            Mode::Sim { max_open } => (
                closed_users.unwrap_or(peak_rate * crate::time::nanos_to_secs_f64(max_open.max(1))),
                SIM_REQUEST_BYTES,
                false,
            ),
        };
        let all_buckets = d / crate::time::nanos_to_secs_f64(bucket.max(1));
        let series = (providers.max(1) + 1) as f64;
        // the analysis keeps at most MAX_BUCKETS buckets; the per-provider arrival counts
        // (8 bytes a bucket, 16 with the live mocks' and the simulator's copies) are not capped
        let memory_bytes = in_flight * per_request
            + all_buckets.min(MAX_BUCKETS) * BUCKET_BYTES * series
            + all_buckets * SERIES_BYTES * series;
        Work {
            requests,
            probes: 0.0,
            duration_s: d,
            peak_rate,
            in_flight,
            memory_bytes,
            live,
        }
    }

    /// This run with active health checks of `targets` targets, each probed at most every
    /// `interval` (the shortest interval the health check sets): planned length ÷ interval
    /// probes per target.
    pub fn with_probes(mut self, targets: usize, interval: Nanos) -> Work {
        self.probes = targets as f64 * self.duration_s / crate::time::nanos_to_secs_f64(interval.max(1));
        self
    }

    /// `runs` runs of this work, `parallel` of them held in memory at once.
    pub fn times(mut self, runs: usize, parallel: usize) -> Work {
        self.requests *= runs.max(1) as f64;
        self.probes *= runs.max(1) as f64;
        self.memory_bytes *= parallel.clamp(1, runs.max(1)) as f64;
        self
    }

    /// The larger of two plans' figures, requests added (points of a sweep run one after
    /// another; memory is that of the largest).
    pub fn and(self, o: Work) -> Work {
        Work {
            requests: self.requests + o.requests,
            probes: self.probes + o.probes,
            duration_s: self.duration_s.max(o.duration_s),
            peak_rate: self.peak_rate.max(o.peak_rate),
            in_flight: self.in_flight.max(o.in_flight),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            live: self.live || o.live,
        }
    }

    /// The limits this work exceeds, each naming the limit, the value and what it would need.
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        let finite = |x: f64| if x.is_finite() { x } else { f64::MAX };
        if finite(self.requests) > MAX_REQUESTS {
            v.push(format!(
                "planned requests {} exceed the limit of {} per invocation (rate × duration × sweep points × repeats)",
                human(self.requests),
                human(MAX_REQUESTS)
            ));
        }
        if finite(self.probes) > MAX_PROBES {
            v.push(format!(
                "planned health-check probes {} exceed the limit of {} per invocation (duration ÷ health_check.interval × targets × sweep points × repeats)",
                human(self.probes),
                human(MAX_PROBES)
            ));
        }
        if self.live && finite(self.peak_rate) > MAX_LIVE_RATE {
            v.push(format!(
                "planned peak rate {} req/s exceeds the live limit of {} req/s",
                human(self.peak_rate),
                human(MAX_LIVE_RATE)
            ));
        }
        if finite(self.memory_bytes) > MAX_MEMORY_BYTES {
            v.push(format!(
                "estimated memory {} ({} requests in flight at the peak) exceeds the limit of {}",
                bytes(self.memory_bytes),
                human(self.in_flight),
                bytes(MAX_MEMORY_BYTES)
            ));
        }
        v
    }
}

/// Checks `work` against the limits: `Ok(None)` within them; past them an error naming
/// each limit, its value and what the run would need — or, with `allow_large`, `Ok(Some)`
/// with that text as a note to print.
pub fn check(what: &str, work: &Work, allow_large: bool) -> anyhow::Result<Option<String>> {
    let p = work.problems();
    if p.is_empty() {
        return Ok(None);
    }
    let text = format!("{what} is too large: {}", p.join("; "));
    if allow_large {
        Ok(Some(format!("{text} (going ahead: --allow-large)")))
    } else {
        let probes = if finite_over(work.probes, MAX_PROBES) {
            " or the health-check probes (a longer gateway.health_check interval)"
        } else {
            ""
        };
        anyhow::bail!(
            "{text}. Lower the rate, duration, users, sweep points or repeats{probes}, or pass --allow-large to run it anyway"
        )
    }
}

/// Whether `x` (NaN and infinities counting as past any limit) exceeds `limit`.
fn finite_over(x: f64, limit: f64) -> bool {
    !x.is_finite() || x > limit
}

/// `1.2e9`-style counts: plain up to a million, then with an SI suffix.
fn human(x: f64) -> String {
    if !x.is_finite() {
        return "∞".into();
    }
    match x {
        x if x >= 1e12 => format!("{:.1} T", x / 1e12),
        x if x >= 1e9 => format!("{:.1} G", x / 1e9),
        x if x >= 1e6 => format!("{:.1} M", x / 1e6),
        x => format!("{x:.0}"),
    }
}

/// Bytes in binary units.
fn bytes(x: f64) -> String {
    if !x.is_finite() {
        return "∞ B".into();
    }
    const K: f64 = 1024.0;
    match x {
        x if x >= K * K * K * K => format!("{:.1} TiB", x / (K * K * K * K)),
        x if x >= K * K * K => format!("{:.1} GiB", x / (K * K * K)),
        x if x >= K * K => format!("{:.1} MiB", x / (K * K)),
        x => format!("{:.0} KiB", x / K),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_S;
    use crate::traffic::{ArrivalKind, RateCurve};

    fn open(rate: f64, secs: f64) -> Source {
        Source::Open(RateCurve::constant(rate, secs), ArrivalKind::Poisson, 1.0)
    }

    #[test]
    fn load_rate_1e12_for_1s_is_refused_before_it_starts() {
        let w = Work::of(&open(1e12, 1.0), Mode::Live { concurrency: 1000 }, NS_PER_S, 1);
        let e = check("chaosgate load", &w, false).unwrap_err().to_string();
        assert!(e.contains("planned requests 1.0 T exceed the limit of 1.0 G"), "{e}");
        assert!(
            e.contains("peak rate 1.0 T req/s exceeds the live limit of 100000 req/s"),
            "{e}"
        );
        assert!(e.contains("--allow-large"), "{e}");
        assert!(check("x", &w, true).unwrap().unwrap().contains("going ahead"));
    }

    #[test]
    fn sim_traffic_rate_1e9_is_refused_for_its_memory() {
        let w = Work::of(
            &open(1e9, 1800.0),
            Mode::Sim {
                max_open: 30 * NS_PER_S,
            },
            NS_PER_S / 10,
            2,
        );
        let p = w.problems();
        assert!(p.iter().any(|m| m.starts_with("planned requests 1.8 T")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("estimated memory 7.0 TiB (30.0 G requests in flight")),
            "{p:?}"
        );
    }

    #[test]
    fn the_article_scenario_with_200_repeats_is_within_the_limits() {
        // 155 req/s for 30 min, 200 runs on 2 threads
        let w = Work::of(
            &open(155.0, 1800.0),
            Mode::Sim {
                max_open: 30 * NS_PER_S,
            },
            NS_PER_S / 10,
            2,
        )
        .times(200, 2);
        assert!(w.problems().is_empty(), "{:?}", w.problems());
        assert!((w.requests - 155.0 * 1800.0 * 200.0).abs() < 1.0);
    }

    #[test]
    fn a_very_long_simulation_is_refused_for_its_series() {
        // 1 req/s for ten years: few requests, but 3.2 G buckets of 100 ms per provider
        let w = Work::of(&open(1.0, 3.2e8), Mode::Sim { max_open: NS_PER_S }, NS_PER_S / 10, 2);
        assert!(w.requests <= MAX_REQUESTS);
        assert!(
            w.problems().iter().any(|m| m.starts_with("estimated memory 144.0 GiB")),
            "{:?}",
            w.problems()
        );
    }

    #[test]
    fn health_check_probes_every_1ms_for_days_are_refused_naming_probes() {
        // the defect: probes were not planned work; 1 ms × 2 targets × 7 days is 1.2 G
        // probe events in the simulator
        let w = Work::of(
            &open(1.0, 7.0 * 86_400.0),
            Mode::Sim { max_open: NS_PER_S },
            NS_PER_S,
            2,
        )
        .with_probes(2, 1_000_000);
        assert!(w.requests < MAX_REQUESTS);
        assert!((w.probes - 2.0 * 7.0 * 86_400.0 * 1000.0).abs() < 1.0);
        let e = check("this simulation", &w, false).unwrap_err().to_string();
        assert!(
            e.contains("planned health-check probes 1.2 G exceed the limit of 1.0 G per invocation"),
            "{e}"
        );
        assert!(
            e.contains("health_check interval") && e.contains("--allow-large"),
            "{e}"
        );
        assert!(check("x", &w, true).unwrap().unwrap().contains("going ahead"));
        // the runs multiply them; the default 5 s interval over the same week is far within
        let five_s = Work::of(
            &open(1.0, 7.0 * 86_400.0),
            Mode::Sim { max_open: NS_PER_S },
            NS_PER_S,
            2,
        )
        .with_probes(2, 5 * NS_PER_S)
        .times(10, 1);
        assert!((five_s.probes - 2.0 * 7.0 * 86_400.0 / 5.0 * 10.0).abs() < 1.0);
        assert!(five_s.problems().is_empty(), "{:?}", five_s.problems());
    }

    #[test]
    fn nan_and_infinite_estimates_are_refused() {
        let w = Work {
            requests: f64::NAN,
            memory_bytes: f64::INFINITY,
            ..Work::default()
        };
        assert_eq!(w.problems().len(), 2);
    }

    #[test]
    fn closed_loop_users_bound_memory() {
        let s = Source::Closed {
            users: 1_000_000,
            spawn_rate: 0.0,
            think: ThinkTime::Constant {
                value: crate::time::Dur::from_secs(1),
            },
            duration: 60 * NS_PER_S,
        };
        let w = Work::of(&s, Mode::Live { concurrency: 10 }, NS_PER_S, 1);
        assert_eq!(w.in_flight, 1e6);
        assert!(
            w.problems().iter().any(|m| m.contains("estimated memory 305.2 GiB")),
            "{:?}",
            w.problems()
        );
    }
}
