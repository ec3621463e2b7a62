//! Streaming throughput (output tokens per second) that swings over time.
//!
//! The rate is a step function of *time* (not of request order): bucket `k` covers
//! `[k·step, (k+1)·step)` and its value is drawn from the provider's own stream in bucket
//! order, so every request in the same second sees the same rate and a seed reproduces the
//! whole curve whatever the traffic. The stationary distribution of the bucket values has
//! the configured `mean` and coefficient of variation `cv` (the article's Together AI row:
//! `mean = 131.7, cv = 0.312`).
//!
//! Dashboards also show a throughput's **peak** and **min** over a run, and those are far
//! out in the tails (the article's OpenAI Direct row: 184.2 tokens/s average, 312.5 peak,
//! 98.7 min, CV 12.3 % — the peak is 5.7 standard deviations up). A light-tailed walk
//! cannot produce both; `min` / `max` bound the curve (values beyond are clamped) and
//! `dips` / `bursts` schedule excursions to those bounds: exactly one per `every`, lasting
//! `hold`, at an offset drawn uniformly from the curve's own streams. So over a run of a
//! few `every`s the range is reached whatever the seed, and the mean and CV still come
//! from the walk in between (`chaosgate calibrate` fits them).

use crate::rng::Stream;
use crate::time::{Dur, Nanos, NS_PER_S};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How the rate varies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Process {
    /// Always `mean`.
    #[default]
    Constant,
    /// AR(1) random walk in log space with lag-one correlation `correlation`; lognormal marginal.
    RandomWalk,
    /// Regime switching: a fresh lognormal level every `hold`.
    Regime,
    /// A sine wave of period `period`: `mean · (1 + cv·√2·sin(2πt/period))`.
    Periodic,
}

/// Output token rate of a provider's streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Mean tokens per second (> 0).
    pub mean: f64,
    /// Coefficient of variation of the per-step rate (0 = steady).
    #[serde(default)]
    pub cv: f64,
    /// How the rate moves.
    #[serde(default)]
    pub process: Process,
    /// Length of one step of the curve (default 1 s).
    #[serde(default = "default_step")]
    pub step: Dur,
    /// `random_walk`: lag-one correlation in [0, 1) (default 0.8).
    #[serde(default = "default_correlation")]
    pub correlation: f64,
    /// `regime`: how long a level holds (default 10 s).
    #[serde(default = "default_hold")]
    pub hold: Dur,
    /// `periodic`: the period (default 60 s).
    #[serde(default = "default_period")]
    pub period: Dur,
    /// Floor: the curve never goes below it; `dips` go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Ceiling: the curve never goes above it; `bursts` go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Scheduled drops to `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dips: Option<Excursions>,
    /// Scheduled surges to `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bursts: Option<Excursions>,
}

/// Excursions of the rate to one of its bounds: in every period `[k·every, (k+1)·every)`
/// exactly one, `hold` long, starting at a uniformly drawn offset in `[0, every − hold]`
/// (a burst's offset is redrawn until it does not overlap a dip).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excursions {
    /// Period: one excursion in each.
    pub every: Dur,
    /// How long each lasts.
    pub hold: Dur,
}

fn default_step() -> Dur {
    Dur::from_secs(1)
}
fn default_correlation() -> f64 {
    0.8
}
fn default_hold() -> Dur {
    Dur::from_secs(10)
}
fn default_period() -> Dur {
    Dur::from_secs(60)
}

impl Throughput {
    /// A steady rate.
    pub fn constant(mean: f64) -> Throughput {
        Throughput {
            mean,
            cv: 0.0,
            process: Process::Constant,
            step: default_step(),
            correlation: default_correlation(),
            hold: default_hold(),
            period: default_period(),
            min: None,
            max: None,
            dips: None,
            bursts: None,
        }
    }

    /// Checks parameters; one message per problem.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        use crate::diag::limits::{MAX_DURATION, MAX_TOKENS};
        /// Highest coefficient of variation: 10 already swings the rate over five orders of
        /// magnitude.
        const MAX_CV: f64 = 10.0;
        if !(self.mean.is_finite() && self.mean > 0.0 && self.mean <= MAX_TOKENS) {
            e.push(format!(
                "mean must be a number of tokens/s in (0, {MAX_TOKENS}], got {}",
                self.mean
            ));
        }
        if !(self.cv.is_finite() && (0.0..=MAX_CV).contains(&self.cv)) {
            e.push(format!("cv must be in [0, {MAX_CV}], got {}", self.cv));
        }
        let min = crate::diag::limits::MIN_PERIOD;
        if self.step.0 > 0 && self.step.0 < min.0 {
            e.push(format!("step must be at least {min}, got {}", self.step));
        }
        if self.mean.is_finite() && self.mean > 0.0 && self.mean < MIN_TOKENS_PER_S {
            e.push(format!(
                "mean must be at least {MIN_TOKENS_PER_S} tokens/s, got {}",
                self.mean
            ));
        }
        for (k, d) in [("step", self.step), ("hold", self.hold), ("period", self.period)] {
            if let Some(m) = crate::diag::limits::dur_at_most(d, MAX_DURATION) {
                e.push(format!("{k} {m}"));
            }
        }
        for (k, x) in [("dips", self.dips), ("bursts", self.bursts)] {
            if let Some(x) = x {
                if x.every.0 > MAX_DURATION.0 {
                    e.push(format!("{k}.every must be at most {MAX_DURATION}, got {}", x.every));
                }
            }
        }
        if self.step.0 == 0 {
            e.push("step must be > 0".into());
        }
        if !(0.0..1.0).contains(&self.correlation) {
            e.push(format!("correlation must be in [0, 1), got {}", self.correlation));
        }
        if self.process == Process::Regime && self.hold.0 == 0 {
            e.push("hold must be > 0".into());
        }
        if self.process == Process::Periodic {
            if self.period.0 == 0 {
                e.push("period must be > 0".into());
            }
            if self.cv * std::f64::consts::SQRT_2 >= 1.0 {
                e.push(format!(
                    "periodic cv must be < {:.3} (else the sine goes negative), got {}",
                    1.0 / std::f64::consts::SQRT_2,
                    self.cv
                ));
            }
        }
        for (k, b) in [("min", self.min), ("max", self.max)] {
            if let Some(v) = b {
                if !(v.is_finite() && v > 0.0 && v <= MAX_TOKENS) {
                    e.push(format!(
                        "{k} must be a number of tokens/s in (0, {MAX_TOKENS}], got {v}"
                    ));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            if lo > hi {
                e.push(format!("min ({lo}) must not exceed max ({hi})"));
            }
        }
        for (k, x, bound) in [("dips", self.dips, self.min), ("bursts", self.bursts, self.max)] {
            let Some(x) = x else { continue };
            if bound.is_none() {
                let b = if k == "dips" { "min" } else { "max" };
                e.push(format!("{k} go to `{b}`: set {b} too"));
            }
            if x.hold.0 == 0 || x.hold.0 > x.every.0 {
                e.push(format!(
                    "{k}: need 0 < hold ≤ every, got hold {} every {}",
                    x.hold, x.every
                ));
            }
        }
        e
    }
}

/// Slowest token rate: one token per 100 s (slower would turn one stream into years).
pub const MIN_TOKENS_PER_S: f64 = 0.01;

/// Most buckets a curve keeps (≈ 115 days at 1 s steps); later times reuse the last value.
const MAX_BUCKETS: u64 = 10_000_000;

/// The realised curve of one provider: lazily extended, deterministic in its stream.
#[derive(Clone, Debug)]
pub struct Curve {
    spec: Throughput,
    rng: Stream,
    values: Vec<f64>,
    /// AR(1) state in log space (random walk).
    x: f64,
    /// Scheduled dips and bursts, each with its own stream.
    dips: Option<Schedule>,
    bursts: Option<Schedule>,
}

/// Lazily drawn excursion offsets, one per period.
#[derive(Clone, Debug)]
struct Schedule {
    spec: Excursions,
    rng: Stream,
    offsets: Vec<Nanos>,
}

impl Schedule {
    fn new(spec: Excursions, base: &Stream, stream_id: u64) -> Schedule {
        // Another ChaCha stream of the same key: the walk's own draws are untouched, so
        // adding excursions never moves the curve between them.
        let mut rng = base.clone();
        rng.set_stream(stream_id);
        rng.set_word_pos(0);
        Schedule {
            spec,
            rng,
            offsets: Vec::new(),
        }
    }

    fn every(&self) -> Nanos {
        self.spec.every.0.max(1)
    }

    fn hold(&self) -> Nanos {
        self.spec.hold.0.min(self.every())
    }

    /// Draws offsets up to period `k`; a draw whose window would overlap one of `avoid`'s
    /// is redrawn (up to 64 times), so bursts never hide behind a dip when there is room.
    fn extend(&mut self, k: usize, mut avoid: Option<&mut Schedule>) {
        let (every, hold) = (self.every(), self.hold());
        while self.offsets.len() <= k {
            let j = self.offsets.len() as Nanos;
            let room = every - hold;
            let mut o = 0;
            for _ in 0..64 {
                o = if room == 0 { 0 } else { self.rng.random_range(0..=room) };
                let start = j * every + o;
                let clash = avoid.as_deref_mut().is_some_and(|a| a.overlaps(start, start + hold));
                if !clash {
                    break;
                }
            }
            self.offsets.push(o);
        }
    }

    /// Whether an excursion of this schedule is on at some time in `[start, end)`.
    fn overlaps(&mut self, start: Nanos, end: Nanos) -> bool {
        let (every, hold) = (self.every(), self.hold());
        let first = (start / every).saturating_sub(1);
        let last = (end.saturating_sub(1) / every).min(MAX_BUCKETS);
        self.extend(last as usize, None);
        (first..=last).any(|j| {
            let s = j * every + self.offsets[j as usize];
            s < end && start < s + hold
        })
    }

    fn active(&mut self, now: Nanos, avoid: Option<&mut Schedule>) -> bool {
        let (every, hold) = (self.every(), self.hold());
        let k = (now / every).min(MAX_BUCKETS) as usize;
        self.extend(k, avoid);
        let into = now - (k as Nanos) * every;
        into >= self.offsets[k] && into < self.offsets[k] + hold
    }
}

impl Curve {
    /// A curve drawn from `rng` (use a stream labelled for this provider's throughput).
    pub fn new(spec: Throughput, rng: Stream) -> Curve {
        let dips = spec.dips.map(|d| Schedule::new(d, &rng, 1));
        let bursts = spec.bursts.map(|b| Schedule::new(b, &rng, 2));
        Curve {
            spec,
            rng,
            values: Vec::new(),
            x: 0.0,
            dips,
            bursts,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &Throughput {
        &self.spec
    }

    fn step_len(&self) -> Nanos {
        match self.spec.process {
            Process::Regime => self.spec.hold.0.max(1),
            _ => self.spec.step.0.max(1),
        }
    }

    /// Tokens per second at `now`: the walk, clamped to `[min, max]`; during a dip `min`,
    /// during a burst `max`. Bursts are placed clear of the dips (redrawn when they would
    /// overlap one); should one not fit, the dip wins.
    #[inline]
    pub fn rate_at(&mut self, now: Nanos) -> f64 {
        let core = self.walk_at(now);
        let s = &self.spec;
        let (lo, hi) = (s.min, s.max);
        if let (Some(d), Some(lo)) = (self.dips.as_mut(), lo) {
            if d.active(now, None) {
                return lo;
            }
        }
        if let (Some(b), Some(hi)) = (self.bursts.as_mut(), hi) {
            if b.active(now, self.dips.as_mut()) {
                return hi;
            }
        }
        match (lo, hi) {
            (Some(lo), _) if core < lo => lo,
            (_, Some(hi)) if core > hi => hi,
            _ => core,
        }
    }

    /// [`Curve::rate_at`], and a time up to which (exclusive) the rate is certain not to
    /// change: the end of the current step (the values are a step function of time), or
    /// never for a steady curve or past the last bucket. With dips or bursts scheduled an
    /// excursion may start inside a step, so the answer is then just `now + 1`.
    ///
    /// Lets the plan reuse a token interval for every request of the same step.
    pub fn rate_span(&mut self, now: Nanos) -> (f64, Nanos) {
        let rate = self.rate_at(now);
        let s = &self.spec;
        let until = if self.dips.is_some() || self.bursts.is_some() {
            now.saturating_add(1)
        } else if s.cv == 0.0 || s.process == Process::Constant {
            Nanos::MAX
        } else {
            let step = self.step_len();
            let k = now / step;
            if s.process != Process::Periodic && k >= MAX_BUCKETS {
                Nanos::MAX // `walk_at` reuses the last bucket from here on
            } else {
                (k + 1).saturating_mul(step)
            }
        };
        (rate, until)
    }

    /// The unbounded walk at `now`.
    #[inline]
    fn walk_at(&mut self, now: Nanos) -> f64 {
        let s = &self.spec;
        if s.cv == 0.0 || s.process == Process::Constant {
            return s.mean;
        }
        if s.process == Process::Periodic {
            let step = self.step_len();
            let t = (now / step * step) as f64 / NS_PER_S as f64;
            let p = s.period.secs_f64();
            let amp = s.cv * std::f64::consts::SQRT_2;
            return s.mean * (1.0 + amp * (2.0 * std::f64::consts::PI * t / p).sin());
        }
        let k = (now / self.step_len()).min(MAX_BUCKETS) as usize;
        if let Some(&v) = self.values.get(k) {
            return v;
        }
        // lognormal with mean m and CV c: sigma² = ln(1 + c²), mu = ln m − sigma²/2
        let sigma2 = (1.0 + s.cv * s.cv).ln();
        let sigma = sigma2.sqrt();
        let mu = s.mean.ln() - sigma2 / 2.0;
        while self.values.len() <= k {
            let z: f64 = StandardNormal.sample(&mut self.rng);
            let x = match s.process {
                Process::RandomWalk => {
                    if self.values.is_empty() {
                        z
                    } else {
                        let r = s.correlation;
                        r * self.x + (1.0 - r * r).sqrt() * z
                    }
                }
                _ => z,
            };
            self.x = x;
            self.values.push((mu + sigma * x).exp());
        }
        self.values[k]
    }

    /// Gap between tokens at `now` (0 when the rate is unbounded).
    pub fn token_interval(&mut self, now: Nanos) -> Nanos {
        let r = self.rate_at(now);
        if r <= 0.0 || !r.is_finite() {
            return 0;
        }
        crate::time::round_to_nanos(NS_PER_S as f64 / r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    fn stats(v: &[f64]) -> (f64, f64) {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        (m, var.sqrt() / m)
    }

    #[test]
    fn together_ai_row_mean_and_cv() {
        for process in [Process::RandomWalk, Process::Regime] {
            let spec = Throughput {
                mean: 131.7,
                cv: 0.312,
                process,
                ..Throughput::constant(1.0)
            };
            let mut c = Curve::new(spec, stream(9, "tp"));
            let step = c.step_len();
            let v: Vec<f64> = (0..40_000u64).map(|k| c.rate_at(k * step)).collect();
            let (m, cv) = stats(&v);
            assert!((m - 131.7).abs() / 131.7 < 0.03, "{process:?} mean {m}");
            assert!((cv - 0.312).abs() < 0.03, "{process:?} cv {cv}");
        }
    }

    #[test]
    fn periodic_mean_and_cv() {
        let spec = Throughput {
            mean: 100.0,
            cv: 0.2,
            process: Process::Periodic,
            step: Dur::from_millis(100),
            period: Dur::from_secs(10),
            ..Throughput::constant(1.0)
        };
        let mut c = Curve::new(spec, stream(1, "x"));
        let v: Vec<f64> = (0..1000u64).map(|k| c.rate_at(k * 100_000_000)).collect();
        let (m, cv) = stats(&v);
        assert!((m - 100.0).abs() < 0.5 && (cv - 0.2).abs() < 0.01, "{m} {cv}");
    }

    #[test]
    fn curve_depends_on_time_not_on_query_order() {
        let spec = Throughput {
            mean: 50.0,
            cv: 0.5,
            process: Process::RandomWalk,
            ..Throughput::constant(1.0)
        };
        let mut a = Curve::new(spec.clone(), stream(5, "t"));
        let mut b = Curve::new(spec, stream(5, "t"));
        let late = a.rate_at(30 * NS_PER_S);
        for s in 0..30 {
            b.rate_at(s * NS_PER_S);
        }
        assert_eq!(late, b.rate_at(30 * NS_PER_S));
        assert_eq!(a.rate_at(3 * NS_PER_S), b.rate_at(3 * NS_PER_S + 5));
    }

    /// Every `t` in `[now, until)` of `rate_span(now)` has the same rate, for each process,
    /// with and without excursions, checked against a second curve queried in time order.
    #[test]
    fn rate_span_is_constant_up_to_its_bound() {
        let ms = Dur::from_millis;
        let specs = [
            Throughput::constant(42.0),
            Throughput {
                mean: 70.0,
                cv: 0.08,
                process: Process::RandomWalk,
                step: ms(30),
                ..Throughput::constant(1.0)
            },
            Throughput {
                mean: 70.0,
                cv: 0.3,
                process: Process::Regime,
                hold: ms(70),
                ..Throughput::constant(1.0)
            },
            Throughput {
                mean: 100.0,
                cv: 0.2,
                process: Process::Periodic,
                step: ms(20),
                period: ms(500),
                ..Throughput::constant(1.0)
            },
            Throughput {
                step: ms(30),
                dips: Some(Excursions {
                    every: ms(200),
                    hold: ms(20),
                }),
                bursts: Some(Excursions {
                    every: ms(300),
                    hold: ms(15),
                }),
                ..bounded(false)
            },
        ];
        for spec in specs {
            let mut spans = Curve::new(spec.clone(), stream(4, "span"));
            let mut truth = Curve::new(spec.clone(), stream(4, "span"));
            let tick = 1_000_000 / 4; // a quarter millisecond
            for j in 0..8_000u64 {
                let now = j * tick + j % 7;
                let (r, until) = spans.rate_span(now);
                assert!(until > now);
                assert_eq!(r.to_bits(), truth.rate_at(now).to_bits(), "{spec:?} at {now}");
                if until != Nanos::MAX {
                    for t in [now + (until - now) / 2, until - 1] {
                        assert_eq!(
                            r.to_bits(),
                            truth.rate_at(t).to_bits(),
                            "{spec:?}: span of {now} at {t}"
                        );
                    }
                }
            }
        }
    }

    fn bounded(excursions: bool) -> Throughput {
        let x = Excursions {
            every: Dur::from_secs(600),
            hold: Dur::from_secs(6),
        };
        Throughput {
            mean: 180.0,
            cv: 0.08,
            process: Process::RandomWalk,
            correlation: 0.5,
            min: Some(100.0),
            max: Some(300.0),
            dips: excursions.then_some(x),
            bursts: excursions.then_some(x),
            ..Throughput::constant(1.0)
        }
    }

    #[test]
    fn dips_and_bursts_reach_the_bounds_once_per_period_and_leave_the_walk_alone() {
        for seed in 0..20 {
            let mut with = Curve::new(bounded(true), stream(seed, "tp"));
            let mut without = Curve::new(bounded(false), stream(seed, "tp"));
            let v: Vec<f64> = (0..3600u64).map(|k| with.rate_at(k * NS_PER_S)).collect();
            let w: Vec<f64> = (0..3600u64).map(|k| without.rate_at(k * NS_PER_S)).collect();
            // a light walk (cv 8 %) never reaches 100 or 300 by itself
            assert!(w.iter().all(|&r| r > 100.0 && r < 300.0));
            for period in 0..6 {
                let slice = |x: &[f64]| x[period * 600..(period + 1) * 600].to_vec();
                let (a, b) = (slice(&v), slice(&w));
                let at = |x: f64| a.iter().filter(|&&r| r == x).count();
                // bursts are placed clear of the dips, so both are whole
                assert_eq!((at(100.0), at(300.0)), (6, 6), "seed {seed} period {period}");
                for x in [100.0, 300.0] {
                    let first = a.iter().position(|&r| r == x).unwrap();
                    assert!(a[first..first + 6].iter().all(|&r| r == x), "consecutive");
                }
                // everywhere else the walk is the unbounded curve, unchanged
                let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
                assert_eq!(same, 600 - 12, "seed {seed} period {period}");
            }
        }
    }

    #[test]
    fn min_and_max_clamp_a_wide_walk() {
        let spec = Throughput {
            cv: 0.6,
            dips: None,
            bursts: None,
            ..bounded(false)
        };
        let mut c = Curve::new(spec, stream(2, "tp"));
        let v: Vec<f64> = (0..5000u64).map(|k| c.rate_at(k * NS_PER_S)).collect();
        assert!(v.iter().all(|&r| (100.0..=300.0).contains(&r)));
        assert!(v.iter().filter(|&&r| r == 100.0).count() > 100);
        assert!(v.iter().filter(|&&r| r == 300.0).count() > 100);
    }

    #[test]
    fn validation() {
        let mut t = bounded(true);
        assert!(t.validate().is_empty(), "{:?}", t.validate());
        t.min = None;
        t.max = Some(50.0);
        t.bursts = Some(Excursions {
            every: Dur::from_secs(1),
            hold: Dur::from_secs(2),
        });
        let m = t.validate();
        assert!(m.iter().any(|m| m.contains("dips go to `min`")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("hold ≤ every")), "{m:?}");
        t.min = Some(60.0);
        assert!(t.validate().iter().any(|m| m.contains("must not exceed")));
        let mut t = Throughput::constant(0.0);
        assert!(t.validate()[0].contains("mean"));
        t.mean = 10.0;
        t.process = Process::Periodic;
        t.cv = 0.9;
        assert!(t.validate().iter().any(|m| m.contains("periodic cv")));
    }
}
