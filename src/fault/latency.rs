//! Latency distributions, written the way people read latency off dashboards.
//!
//! Every distribution samples integer nanoseconds from a stream passed in (no global RNG).
//! `quantiles` fits p50 / p95 / p99 exactly: the quantile function is a lognormal with one
//! log-spread below p95 and another above it (continuous at p95), so the three numbers
//! from a Grafana panel can be pasted in as they are.

use crate::time::{secs_f64_to_nanos, Dur, Nanos};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// z-score of the 95th percentile of the standard normal.
pub const Z95: f64 = 1.644_853_626_951_472_2;
/// z-score of the 99th percentile of the standard normal.
pub const Z99: f64 = 2.326_347_874_040_841;

/// A latency distribution. Each kind may carry a `cap` (values above it are clamped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always `value`.
    Fixed {
        /// The latency.
        value: Dur,
        /// Optional upper clamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: Dur,
        /// Upper bound.
        max: Dur,
        /// Optional upper clamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
    /// Normal, truncated at 0.
    Normal {
        /// Mean.
        mean: Dur,
        /// Standard deviation.
        stddev: Dur,
        /// Optional upper clamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
    /// Lognormal given by its median and 99th percentile.
    Lognormal {
        /// Median.
        p50: Dur,
        /// 99th percentile.
        p99: Dur,
        /// Optional upper clamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
    /// Pareto (heavy tail): `min / U^(1/alpha)`; smaller `alpha` is a heavier tail.
    Pareto {
        /// Scale: the smallest value.
        min: Dur,
        /// Shape, > 0.
        alpha: f64,
        /// Optional upper clamp (advisable: alpha ≤ 1 has no finite mean).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
    /// Fitted exactly to dashboard quantiles p50 ≤ p95 ≤ p99.
    Quantiles {
        /// Median.
        p50: Dur,
        /// 95th percentile.
        p95: Dur,
        /// 99th percentile.
        p99: Dur,
        /// Optional upper clamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Dur>,
    },
}

/// The log-spread of a lognormal with median `p50` and 99th percentile `p99`.
fn lognormal_sigma(p50: Dur, p99: Dur) -> f64 {
    (p99.secs_f64() / p50.secs_f64()).ln() / Z99
}

/// One lognormal draw with median `p50_s` seconds and log-spread `sigma`.
#[inline]
fn lognormal<R: Rng + ?Sized>(p50_s: f64, sigma: f64, rng: &mut R) -> Nanos {
    let z: f64 = StandardNormal.sample(rng);
    secs_f64_to_nanos(p50_s * (sigma * z).exp())
}

/// A [`Latency`] ready to sample many times: the lognormal's median in seconds, its
/// log-spread and the cap are worked out once instead of per draw (the same values
/// [`Latency::sample`] computes each time, so the draws are identical).
#[derive(Clone, Debug, PartialEq)]
pub struct Sampler {
    latency: Latency,
    /// Lognormal: `p50` in seconds.
    p50_s: f64,
    /// Lognormal: the log-spread.
    sigma: f64,
    cap: Option<Nanos>,
}

impl Sampler {
    /// Draws one latency.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Nanos {
        match &self.latency {
            Latency::Lognormal { .. } => {
                let v = lognormal(self.p50_s, self.sigma, rng);
                match self.cap {
                    Some(c) => v.min(c),
                    None => v,
                }
            }
            other => other.sample(rng),
        }
    }
}

impl Latency {
    /// A fixed latency.
    pub fn fixed(n: Nanos) -> Latency {
        Latency::Fixed {
            value: Dur(n),
            cap: None,
        }
    }

    /// Every duration parameter, by name.
    fn durations(&self) -> Vec<(&'static str, Dur)> {
        let mut v = match *self {
            Latency::Fixed { value, .. } => vec![("value", value)],
            Latency::Uniform { min, max, .. } => vec![("min", min), ("max", max)],
            Latency::Normal { mean, stddev, .. } => vec![("mean", mean), ("stddev", stddev)],
            Latency::Lognormal { p50, p99, .. } => vec![("p50", p50), ("p99", p99)],
            Latency::Pareto { min, .. } => vec![("min", min)],
            Latency::Quantiles { p50, p95, p99, .. } => vec![("p50", p50), ("p95", p95), ("p99", p99)],
        };
        v.extend(self.cap().map(|c| ("cap", c)));
        v
    }

    fn cap(&self) -> Option<Dur> {
        match self {
            Latency::Fixed { cap, .. }
            | Latency::Uniform { cap, .. }
            | Latency::Normal { cap, .. }
            | Latency::Lognormal { cap, .. }
            | Latency::Pareto { cap, .. }
            | Latency::Quantiles { cap, .. } => *cap,
        }
    }

    /// Checks parameters; returns one message per problem (relative to this value's path).
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        let max = crate::diag::limits::MAX_DURATION;
        for (k, d) in self.durations() {
            if let Some(m) = crate::diag::limits::dur_at_most(d, max) {
                e.push(format!("{k} {m}"));
            }
        }
        if let Latency::Pareto { alpha, .. } = self {
            if *alpha > crate::diag::limits::MAX_SHAPE {
                e.push(format!(
                    "alpha must be at most {}, got {alpha}",
                    crate::diag::limits::MAX_SHAPE
                ));
            }
        }
        match self {
            Latency::Fixed { .. } => {}
            Latency::Uniform { min, max, .. } => {
                if min > max {
                    e.push(format!("min ({min}) must not exceed max ({max})"));
                }
            }
            Latency::Normal { .. } => {}
            Latency::Lognormal { p50, p99, .. } => {
                if p50.0 == 0 {
                    e.push("p50 must be > 0 for a lognormal".into());
                }
                if p99 < p50 {
                    e.push(format!("p99 ({p99}) must be ≥ p50 ({p50})"));
                }
            }
            Latency::Pareto { min, alpha, .. } => {
                if min.0 == 0 {
                    e.push("min must be > 0 for a Pareto tail".into());
                }
                if !(alpha.is_finite() && *alpha > 0.0) {
                    e.push(format!("alpha must be a positive number, got {alpha}"));
                }
            }
            Latency::Quantiles { p50, p95, p99, .. } => {
                if p50.0 == 0 {
                    e.push("p50 must be > 0".into());
                }
                if !(p50 <= p95 && p95 <= p99) {
                    e.push(format!(
                        "quantiles must be ordered p50 ≤ p95 ≤ p99, got {p50} / {p95} / {p99}"
                    ));
                }
            }
        }
        e
    }

    /// Draws one latency.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Nanos {
        let v = match self {
            Latency::Fixed { value, .. } => value.0,
            Latency::Uniform { min, max, .. } => {
                if min.0 >= max.0 {
                    min.0
                } else {
                    rng.random_range(min.0..=max.0)
                }
            }
            Latency::Normal { mean, stddev, .. } => {
                let z: f64 = StandardNormal.sample(rng);
                secs_f64_to_nanos(mean.secs_f64() + z * stddev.secs_f64())
            }
            Latency::Lognormal { p50, p99, .. } => lognormal(p50.secs_f64(), lognormal_sigma(*p50, *p99), rng),
            Latency::Pareto { min, alpha, .. } => {
                // 1 - U is in (0, 1], so the power is finite.
                let u: f64 = 1.0 - rng.random::<f64>();
                secs_f64_to_nanos(min.secs_f64() / u.powf(1.0 / alpha))
            }
            Latency::Quantiles { p50, p95, p99, .. } => {
                let z: f64 = StandardNormal.sample(rng);
                secs_f64_to_nanos(quantiles_at(p50.secs_f64(), p95.secs_f64(), p99.secs_f64(), z))
            }
        };
        match self.cap() {
            Some(c) => v.min(c.0),
            None => v,
        }
    }

    /// This distribution with its per-sample constants worked out once.
    pub fn sampler(&self) -> Sampler {
        let (p50_s, sigma) = match self {
            Latency::Lognormal { p50, p99, .. } => (p50.secs_f64(), lognormal_sigma(*p50, *p99)),
            _ => (0.0, 0.0),
        };
        Sampler {
            latency: self.clone(),
            p50_s,
            sigma,
            cap: self.cap().map(Dur::nanos),
        }
    }

    /// The distribution's exact quantile `q` in (0, 1), before the cap, where it has a
    /// closed form (all kinds do). Used by tests and `calibrate`.
    pub fn quantile(&self, q: f64) -> f64 {
        let z = inverse_normal_cdf(q);
        let v = match self {
            Latency::Fixed { value, .. } => value.secs_f64(),
            Latency::Uniform { min, max, .. } => min.secs_f64() + q * (max.secs_f64() - min.secs_f64()),
            Latency::Normal { mean, stddev, .. } => (mean.secs_f64() + z * stddev.secs_f64()).max(0.0),
            Latency::Lognormal { p50, p99, .. } => {
                let sigma = (p99.secs_f64() / p50.secs_f64()).ln() / Z99;
                p50.secs_f64() * (sigma * z).exp()
            }
            Latency::Pareto { min, alpha, .. } => min.secs_f64() / (1.0 - q).powf(1.0 / alpha),
            Latency::Quantiles { p50, p95, p99, .. } => quantiles_at(p50.secs_f64(), p95.secs_f64(), p99.secs_f64(), z),
        };
        match self.cap() {
            Some(c) => v.min(c.secs_f64()),
            None => v,
        }
    }
}

/// The fitted quantile function at standard-normal score `z`, in seconds.
fn quantiles_at(p50: f64, p95: f64, p99: f64, z: f64) -> f64 {
    let l50 = p50.ln();
    let l95 = p95.ln();
    let l99 = p99.ln();
    let s_body = (l95 - l50) / Z95;
    let s_tail = (l99 - l95) / (Z99 - Z95);
    if z <= Z95 {
        (l50 + s_body * z).exp()
    } else {
        (l95 + s_tail * (z - Z95)).exp()
    }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9
/// after one Halley refinement step is unnecessary at our tolerances).
pub fn inverse_normal_cdf(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let plow = 0.02425;
    if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::time::NS_PER_MS;

    #[test]
    fn a_sampler_draws_what_the_latency_draws() {
        let ms = |v: u64| Dur(v * NS_PER_MS);
        let kinds = [
            Latency::fixed(5 * NS_PER_MS),
            Latency::Uniform {
                min: ms(1),
                max: ms(9),
                cap: None,
            },
            Latency::Normal {
                mean: ms(50),
                stddev: ms(10),
                cap: Some(ms(60)),
            },
            Latency::Lognormal {
                p50: ms(400),
                p99: ms(1500),
                cap: None,
            },
            Latency::Lognormal {
                p50: ms(400),
                p99: ms(1500),
                cap: Some(ms(900)),
            },
            Latency::Pareto {
                min: ms(10),
                alpha: 1.5,
                cap: Some(ms(500)),
            },
            Latency::Quantiles {
                p50: ms(100),
                p95: ms(300),
                p99: ms(900),
                cap: None,
            },
        ];
        for l in kinds {
            let (mut a, mut b) = (stream(3, "s"), stream(3, "s"));
            let s = l.sampler();
            for _ in 0..2_000 {
                assert_eq!(l.sample(&mut a), s.sample(&mut b), "{l:?}");
            }
        }
    }

    fn empirical(l: &Latency, n: usize, q: &[f64]) -> Vec<f64> {
        let mut r = stream(1, "latency-test");
        let mut v: Vec<Nanos> = (0..n).map(|_| l.sample(&mut r)).collect();
        v.sort_unstable();
        q.iter().map(|q| v[((n as f64) * q) as usize] as f64 / 1e9).collect()
    }

    fn ms(x: u64) -> Dur {
        Dur(x * NS_PER_MS)
    }

    #[test]
    fn quantiles_fit_hits_the_three_targets() {
        let l = Latency::Quantiles {
            p50: ms(1240),
            p95: ms(2890),
            p99: ms(4120),
            cap: None,
        };
        assert!((l.quantile(0.5) - 1.240).abs() < 1e-6);
        assert!((l.quantile(0.95) - 2.890).abs() < 1e-5);
        assert!((l.quantile(0.99) - 4.120).abs() < 1e-5);
        let e = empirical(&l, 200_000, &[0.5, 0.95, 0.99]);
        for (got, want) in e.iter().zip([1.240, 2.890, 4.120]) {
            assert!((got - want).abs() / want < 0.02, "got {got}, want {want}");
        }
    }

    #[test]
    fn lognormal_from_p50_p99() {
        let l = Latency::Lognormal {
            p50: ms(800),
            p99: ms(3000),
            cap: None,
        };
        let e = empirical(&l, 200_000, &[0.5, 0.99]);
        assert!((e[0] - 0.8).abs() / 0.8 < 0.02, "{e:?}");
        assert!((e[1] - 3.0).abs() / 3.0 < 0.03, "{e:?}");
    }

    #[test]
    fn pareto_and_cap() {
        let l = Latency::Pareto {
            min: ms(100),
            alpha: 1.5,
            cap: Some(ms(2000)),
        };
        let mut r = stream(3, "p");
        for _ in 0..10_000 {
            let v = l.sample(&mut r);
            assert!((100 * NS_PER_MS..=2000 * NS_PER_MS).contains(&v));
        }
        // median of Pareto = min * 2^(1/alpha)
        let e = empirical(
            &Latency::Pareto {
                min: ms(100),
                alpha: 1.5,
                cap: None,
            },
            100_000,
            &[0.5],
        );
        let want = 0.1 * 2f64.powf(1.0 / 1.5);
        assert!((e[0] - want).abs() / want < 0.02);
    }

    #[test]
    fn uniform_normal_fixed() {
        let u = Latency::Uniform {
            min: ms(10),
            max: ms(30),
            cap: None,
        };
        let e = empirical(&u, 50_000, &[0.5]);
        assert!((e[0] - 0.020).abs() < 0.001);
        let n = Latency::Normal {
            mean: ms(50),
            stddev: ms(100),
            cap: None,
        };
        let mut r = stream(4, "n");
        assert!((0..10_000).all(|_| n.sample(&mut r) < 10 * NS_PER_MS * 100)); // truncated at 0, no wrap
        assert_eq!(Latency::fixed(7).sample(&mut r), 7);
    }

    #[test]
    fn validation_messages() {
        let bad = Latency::Quantiles {
            p50: ms(10),
            p95: ms(5),
            p99: ms(20),
            cap: None,
        };
        assert!(bad.validate()[0].contains("ordered"));
        assert!(Latency::Pareto {
            min: ms(1),
            alpha: 0.0,
            cap: None
        }
        .validate()[0]
            .contains("alpha"));
    }

    #[test]
    fn inverse_normal_is_accurate() {
        assert!((inverse_normal_cdf(0.95) - Z95).abs() < 1e-8);
        assert!((inverse_normal_cdf(0.99) - Z99).abs() < 1e-8);
        assert!(inverse_normal_cdf(0.5).abs() < 1e-12);
    }
}
