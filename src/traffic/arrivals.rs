//! Open-loop arrivals: constant, Poisson or gamma gaps, at a rate that may change in stages.
//!
//! The rate λ(t) is piecewise linear (stages ramp from the previous rate to their target).
//! Arrivals are generated in *operational time*: a unit-rate renewal process in
//! Λ-space, where Λ(t) = ∫₀ᵗ λ, mapped back through Λ⁻¹. With unit gaps that is a
//! constant-rate schedule, with Exp(1) gaps a (non-homogeneous) Poisson process, and with
//! Gamma(k, 1/k) gaps a gamma process of burstiness k — vLLM's `--burstiness`: k = 1 is
//! Poisson, smaller is burstier (CV of gaps = 1/√k), larger is more regular.

use crate::rng::Stream;
use crate::time::{secs_f64_to_nanos, Dur, Nanos, NS_PER_S};
use rand::Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

/// Gap distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps.
    #[default]
    Poisson,
    /// Gamma gaps with shape `burstiness`.
    Gamma,
}

/// One stage: ramp linearly from the previous rate to `target` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Length.
    pub duration: Dur,
    /// Rate at the end of the stage (req/s).
    pub target: f64,
}

/// A piecewise-linear rate curve.
#[derive(Clone, Debug, PartialEq)]
pub struct RateCurve {
    /// Knots `(t, rate)`, t increasing, starting at 0; the rate is linear between knots
    /// and zero after the last.
    knots: Vec<(f64, f64)>,
}

impl RateCurve {
    /// A constant rate for `duration` seconds.
    pub fn constant(rate: f64, duration_s: f64) -> RateCurve {
        RateCurve {
            knots: vec![(0.0, rate), (duration_s, rate)],
        }
    }

    /// From stages, starting at `start_rate` (k6's `startRate`).
    pub fn stages(start_rate: f64, stages: &[Stage]) -> RateCurve {
        let mut knots = vec![(0.0, start_rate)];
        let mut t = 0.0;
        for s in stages {
            t += s.duration.secs_f64();
            knots.push((t, s.target));
        }
        RateCurve { knots }
    }

    /// End of the curve, seconds.
    pub fn duration_s(&self) -> f64 {
        self.knots.last().map_or(0.0, |k| k.0)
    }

    /// λ(t).
    pub fn rate_at(&self, t: f64) -> f64 {
        for w in self.knots.windows(2) {
            let ((t0, r0), (t1, r1)) = (w[0], w[1]);
            if t >= t0 && t < t1 {
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0);
            }
        }
        0.0
    }

    /// Λ(duration): the expected number of arrivals.
    pub fn total(&self) -> f64 {
        self.knots
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }

    /// Λ⁻¹(s): the time at which the cumulative rate reaches `s`, or `None` past the end.
    pub fn inverse(&self, mut s: f64) -> Option<f64> {
        for w in self.knots.windows(2) {
            let ((t0, r0), (t1, r1)) = (w[0], w[1]);
            let dt = t1 - t0;
            let area = dt * (r0 + r1) / 2.0;
            if s <= area && area > 0.0 {
                // solve r0·x + (r1 − r0)/(2·dt)·x² = s for x in [0, dt]
                let a = (r1 - r0) / (2.0 * dt);
                let x = if a.abs() < 1e-12 {
                    s / r0
                } else {
                    let disc = (r0 * r0 + 4.0 * a * s).max(0.0);
                    (-r0 + disc.sqrt()) / (2.0 * a)
                };
                return Some(t0 + x.clamp(0.0, dt));
            }
            s -= area;
        }
        None
    }
}

/// Draws open-loop arrival times lazily, in order.
#[derive(Clone, Debug)]
pub struct Arrivals {
    curve: RateCurve,
    kind: ArrivalKind,
    gamma: Option<Gamma<f64>>,
    rng: Stream,
    /// Position in operational time.
    s: f64,
    first: bool,
}

impl Arrivals {
    /// Arrivals over `curve`. `burstiness` is the gamma shape (ignored otherwise).
    ///
    /// # Panics
    /// If `kind` is gamma and `burstiness` is not positive (validated before this).
    pub fn new(curve: RateCurve, kind: ArrivalKind, burstiness: f64, rng: Stream) -> Arrivals {
        let gamma =
            (kind == ArrivalKind::Gamma).then(|| Gamma::new(burstiness, 1.0 / burstiness).expect("burstiness > 0"));
        Arrivals {
            curve,
            kind,
            gamma,
            rng,
            s: 0.0,
            first: true,
        }
    }

    fn gap(&mut self) -> f64 {
        match self.kind {
            ArrivalKind::Constant => 1.0,
            ArrivalKind::Poisson => -(1.0 - self.rng.random::<f64>()).ln(),
            ArrivalKind::Gamma => self.gamma.as_ref().map_or(1.0, |g| g.sample(&mut self.rng)),
        }
    }
}

impl Iterator for Arrivals {
    type Item = Nanos;
    fn next(&mut self) -> Option<Nanos> {
        // The first arrival of a constant schedule is at t = 0 (k6's constant-arrival-rate);
        // random schedules start with a random gap, so the process is stationary.
        if self.first && self.kind == ArrivalKind::Constant {
            self.first = false;
            return self
                .curve
                .inverse(0.0)
                .filter(|_| self.curve.total() > 0.0)
                .map(secs_f64_to_nanos);
        }
        self.first = false;
        self.s += self.gap();
        let t = self.curve.inverse(self.s)?;
        if t >= self.curve.duration_s() {
            return None;
        }
        Some(secs_f64_to_nanos(t))
    }
}

/// Mean of a slice (helper for tests and stats).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Nanoseconds as seconds (helper).
pub fn secs(n: Nanos) -> f64 {
    n as f64 / NS_PER_S as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    fn gaps(kind: ArrivalKind, k: f64, rate: f64, dur: f64) -> (usize, f64, f64) {
        let a: Vec<Nanos> = Arrivals::new(RateCurve::constant(rate, dur), kind, k, stream(11, "arrivals")).collect();
        let g: Vec<f64> = a.windows(2).map(|w| secs(w[1] - w[0])).collect();
        let m = mean(&g);
        let sd = (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        (a.len(), m, sd / m)
    }

    #[test]
    fn poisson_rate_and_cv() {
        let (n, m, cv) = gaps(ArrivalKind::Poisson, 1.0, 100.0, 600.0);
        assert!((n as f64 - 60_000.0).abs() < 60_000.0 * 0.02, "{n}");
        assert!((m - 0.01).abs() < 0.0003, "{m}");
        assert!((cv - 1.0).abs() < 0.03, "{cv}");
    }

    #[test]
    fn gamma_cv_is_one_over_sqrt_k() {
        for k in [0.25, 0.5, 4.0] {
            let (n, _, cv) = gaps(ArrivalKind::Gamma, k, 200.0, 300.0);
            assert!((n as f64 - 60_000.0).abs() < 60_000.0 * 0.05, "k={k} n={n}");
            assert!((cv - 1.0 / f64::sqrt(k)).abs() < 0.06 / k.sqrt(), "k={k} cv={cv}");
        }
    }

    #[test]
    fn constant_is_evenly_spaced_from_zero() {
        let a: Vec<Nanos> = Arrivals::new(
            RateCurve::constant(4.0, 2.0),
            ArrivalKind::Constant,
            1.0,
            stream(1, "c"),
        )
        .collect();
        assert_eq!(
            a,
            vec![
                0,
                250_000_000,
                500_000_000,
                750_000_000,
                1_000_000_000,
                1_250_000_000,
                1_500_000_000,
                1_750_000_000
            ]
        );
    }

    #[test]
    fn ramp_integrates_to_the_right_count() {
        // 0 → 200 req/s over 60 s, then hold 60 s: 6,000 + 12,000 arrivals expected
        let curve = RateCurve::stages(
            0.0,
            &[
                Stage {
                    duration: Dur::from_secs(60),
                    target: 200.0,
                },
                Stage {
                    duration: Dur::from_secs(60),
                    target: 200.0,
                },
            ],
        );
        assert!((curve.total() - 18_000.0).abs() < 1e-6);
        let a: Vec<Nanos> = Arrivals::new(curve.clone(), ArrivalKind::Constant, 1.0, stream(1, "r")).collect();
        assert!((a.len() as f64 - 18_000.0).abs() <= 1.0, "{}", a.len());
        let first_half = a.iter().filter(|&&t| t < 30 * NS_PER_S).count();
        assert!((first_half as f64 - 1_500.0).abs() <= 2.0, "{first_half}"); // ∫0^30 (200/60)t dt
        let p: Vec<Nanos> = Arrivals::new(curve, ArrivalKind::Poisson, 1.0, stream(2, "r")).collect();
        assert!((p.len() as f64 - 18_000.0).abs() < 18_000.0 * 0.03);
    }

    #[test]
    fn same_seed_same_schedule() {
        let mk = |seed| {
            Arrivals::new(
                RateCurve::constant(50.0, 10.0),
                ArrivalKind::Gamma,
                0.5,
                stream(seed, "a"),
            )
            .collect::<Vec<_>>()
        };
        assert_eq!(mk(3), mk(3));
        assert_ne!(mk(3), mk(4));
    }
}
