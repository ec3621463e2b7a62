//! Streaming throughput (output tokens per second) that swings over time.
//!
//! The rate is a step function of *time* (not of request order): bucket `k` covers
//! `[k·step, (k+1)·step)` and its value is drawn from the provider's own stream in bucket
//! order, so every request in the same second sees the same rate and a seed reproduces the
//! whole curve whatever the traffic. The stationary distribution of the bucket values has
//! the configured `mean` and coefficient of variation `cv` (the article's Together AI row:
//! `mean = 131.7, cv = 0.312`).

use crate::rng::Stream;
use crate::time::{Dur, Nanos, NS_PER_S};
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
        }
    }

    /// Checks parameters; one message per problem.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if !(self.mean.is_finite() && self.mean > 0.0) {
            e.push(format!("mean must be a positive number of tokens/s, got {}", self.mean));
        }
        if !(self.cv.is_finite() && self.cv >= 0.0) {
            e.push(format!("cv must be ≥ 0, got {}", self.cv));
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
        e
    }
}

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
}

impl Curve {
    /// A curve drawn from `rng` (use a stream labelled for this provider's throughput).
    pub fn new(spec: Throughput, rng: Stream) -> Curve {
        Curve {
            spec,
            rng,
            values: Vec::new(),
            x: 0.0,
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

    /// Tokens per second at `now`.
    pub fn rate_at(&mut self, now: Nanos) -> f64 {
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
        (NS_PER_S as f64 / r).round() as Nanos
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

    #[test]
    fn validation() {
        let mut t = Throughput::constant(0.0);
        assert!(t.validate()[0].contains("mean"));
        t.mean = 10.0;
        t.process = Process::Periodic;
        t.cv = 0.9;
        assert!(t.validate().iter().any(|m| m.contains("periodic cv")));
    }
}
