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

    /// Λ(t) = ∫₀ᵗ λ: the expected number of arrivals by `t` seconds.
    pub fn cumulative(&self, t: f64) -> f64 {
        let mut acc = 0.0;
        for w in self.knots.windows(2) {
            let ((t0, r0), (t1, r1)) = (w[0], w[1]);
            if t <= t0 {
                break;
            }
            let x = t.min(t1) - t0;
            let dt = t1 - t0;
            let r_end = if dt > 0.0 { r0 + (r1 - r0) * x / dt } else { r0 };
            acc += x * (r0 + r_end) / 2.0;
        }
        acc
    }

    /// Λ(duration): the expected number of arrivals.
    pub fn total(&self) -> f64 {
        self.knots
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }

    /// Λ⁻¹(s): the time at which the cumulative rate reaches `s`, or `None` past the end.
    pub fn inverse(&self, s: f64) -> Option<f64> {
        let mut cursor = Cursor::default();
        self.inverse_from(&mut cursor, s)
    }

    /// Λ⁻¹(s), searching forward from `cursor` (which it moves): O(1) amortised for the
    /// non-decreasing `s` of a schedule, however many stages.
    #[inline]
    fn inverse_from(&self, cursor: &mut Cursor, s: f64) -> Option<f64> {
        while cursor.seg + 1 < self.knots.len() {
            let ((t0, r0), (t1, r1)) = (self.knots[cursor.seg], self.knots[cursor.seg + 1]);
            let dt = t1 - t0;
            let area = dt * (r0 + r1) / 2.0;
            let into = s - cursor.before;
            if area > 0.0 && into <= area {
                if r1 == r0 && r0 < 1e150 {
                    // a constant rate (r0 > 0, as area > 0): the general formula below
                    // reduces exactly to into / r0 (√(r0²) = r0 and (2a)/(2b) = a/b in
                    // binary floating point), without its square root
                    return Some(t0 + (into / r0).clamp(0.0, dt));
                }
                // Solve r0·x + (r1 − r0)/(2·dt)·x² = into for x in [0, dt]. Written as
                // 2·into / (r0 + √(r0² + 2·slope·into)), which has no cancellation when the
                // slope is tiny and needs no special case when r0 = 0.
                let slope = (r1 - r0) / dt;
                let root = (r0 * r0 + 2.0 * slope * into).max(0.0).sqrt();
                let x = if r0 + root > 0.0 { 2.0 * into / (r0 + root) } else { 0.0 };
                return Some(t0 + x.clamp(0.0, dt));
            }
            cursor.before += area;
            cursor.seg += 1;
        }
        None
    }
}

/// Where a forward search of Λ⁻¹ stands: the segment, and Λ at its start.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    seg: usize,
    before: f64,
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
    cursor: Cursor,
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
            cursor: Cursor::default(),
            first: true,
        }
    }

    #[inline]
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
    #[inline]
    fn next(&mut self) -> Option<Nanos> {
        // A constant schedule's first arrival is at t = 0 when the rate there is positive
        // (k6's constant-arrival-rate), otherwise where Λ reaches 1; random schedules start
        // with a random gap, so the process is stationary.
        if self.first {
            self.first = false;
            if self.kind == ArrivalKind::Constant && self.curve.rate_at(0.0) > 0.0 {
                return Some(0);
            }
        }
        self.s += self.gap();
        let t = self.curve.inverse_from(&mut self.cursor, self.s)?;
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
    use proptest::prop_oneof;

    proptest::proptest! {
        /// A constant segment's shortcut gives exactly what the general formula gives.
        #[test]
        fn constant_rate_inverse_is_the_general_formula(
            r0 in prop_oneof![1e-6f64..1e-3, 1e-3f64..10.0, 10.0f64..1e6],
            dt in 1e-3f64..1e5,
            frac in 0.0f64..=1.0,
        ) {
            let curve = RateCurve::constant(r0, dt);
            let s = frac * dt * r0;
            // the general branch of `inverse_from`, written out
            let (t0, r1, into) = (0.0, r0, s);
            let slope = (r1 - r0) / dt;
            let root = (r0 * r0 + 2.0 * slope * into).max(0.0).sqrt();
            let x = if r0 + root > 0.0 { 2.0 * into / (r0 + root) } else { 0.0 };
            let want = t0 + x.clamp(0.0, dt);
            if s <= dt * (r0 + r1) / 2.0 {
                proptest::prop_assert_eq!(curve.inverse(s).map(f64::to_bits), Some(want.to_bits()));
            }
        }
    }

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

    fn stage(secs: u64, target: f64) -> Stage {
        Stage {
            duration: Dur::from_secs(secs),
            target,
        }
    }

    #[test]
    fn article_ramp_then_hold_poisson() {
        // The article's Locust profile as an open loop: 0 → 200 req/s over 5 min, hold 30 min.
        let curve = RateCurve::stages(0.0, &[stage(300, 200.0), stage(1800, 200.0)]);
        assert!((curve.total() - 390_000.0).abs() < 1e-6);
        let a: Vec<Nanos> = Arrivals::new(curve.clone(), ArrivalKind::Poisson, 1.0, stream(5, "ramp")).collect();
        // ±4 standard deviations of a Poisson count
        let within = |n: usize, expected: f64| (n as f64 - expected).abs() < 4.0 * expected.sqrt();
        assert!(within(a.len(), 390_000.0), "{}", a.len());
        // the ramp is linear: ∫ (2/3)·t dt over [60 s, 120 s) = 3,600; over the first 5 min 30,000
        let between = |lo: u64, hi: u64| a.iter().filter(|&&t| t >= lo * NS_PER_S && t < hi * NS_PER_S).count();
        assert!(within(between(60, 120), 3_600.0), "{}", between(60, 120));
        assert!(within(between(0, 300), 30_000.0), "{}", between(0, 300));
        assert!(within(between(1_000, 1_060), 12_000.0), "{}", between(1_000, 1_060));
        assert!((curve.cumulative(120.0) - curve.cumulative(60.0) - 3_600.0).abs() < 1e-6);
        // a gamma process over the same curve keeps the mean count
        let g = Arrivals::new(curve, ArrivalKind::Gamma, 0.25, stream(5, "ramp")).count();
        assert!((g as f64 - 390_000.0).abs() < 390_000.0 * 0.02, "{g}");
    }

    #[test]
    fn an_hour_at_a_thousand_per_second_is_lazy_and_exact() {
        let a = Arrivals::new(
            RateCurve::constant(1_000.0, 3_600.0),
            ArrivalKind::Constant,
            1.0,
            stream(1, "c"),
        );
        assert!(std::mem::size_of_val(&a) < 1_024);
        let (n, last) = a.fold((0u64, 0), |(n, _), t| (n + 1, t));
        assert_eq!(n, 3_600_000);
        assert_eq!(last, 3_600 * NS_PER_S - NS_PER_S / 1_000);
    }

    #[test]
    fn zero_rate_stretches_are_skipped() {
        // 10 req/s for 1 s, nothing for 10 s, 10 req/s for 1 s (zero-length stages are steps)
        let curve = RateCurve::stages(
            10.0,
            &[
                stage(1, 10.0),
                stage(0, 0.0),
                stage(10, 0.0),
                stage(0, 10.0),
                stage(1, 10.0),
            ],
        );
        let a: Vec<Nanos> = Arrivals::new(curve, ArrivalKind::Constant, 1.0, stream(1, "z")).collect();
        assert_eq!(a.len(), 20, "{a:?}");
        assert!(a.iter().all(|&t| t <= NS_PER_S || t >= 11 * NS_PER_S), "{a:?}");
    }

    #[test]
    fn ramp_from_zero_does_not_fire_at_zero() {
        let curve = RateCurve::stages(0.0, &[stage(10, 10.0)]);
        let a: Vec<Nanos> = Arrivals::new(curve, ArrivalKind::Constant, 1.0, stream(1, "z")).collect();
        assert_eq!(a.len(), 49, "Λ = 50, arrivals where Λ = 1, 2, …, 49: {a:?}");
        assert_eq!(a[0], secs_f64_to_nanos(f64::sqrt(2.0 / 1.0))); // Λ(t) = t²/2
    }

    #[test]
    fn nearly_flat_ramps_stay_accurate() {
        // slope 1e-9 req/s²: the textbook quadratic formula loses every digit here
        let curve = RateCurve::stages(100.0, &[stage(1_000, 100.000_001)]);
        for s in [1.0, 1_000.0, 99_999.0] {
            let t = curve.inverse(s).unwrap();
            assert!((curve.cumulative(t) - s).abs() < 1e-6, "s={s} t={t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn schedules_are_ordered_and_inside_the_curve(
            start in 0.0f64..50.0,
            stages in proptest::collection::vec((0u64..20, 0.0f64..50.0), 1..5),
            kind in proptest::sample::select(vec![ArrivalKind::Constant, ArrivalKind::Poisson, ArrivalKind::Gamma]),
            k in 0.1f64..4.0,
            seed in 0u64..1_000,
        ) {
            let stages: Vec<Stage> = stages.into_iter().map(|(d, r)| stage(d, r)).collect();
            let curve = RateCurve::stages(start, &stages);
            let end = secs_f64_to_nanos(curve.duration_s());
            let a: Vec<Nanos> = Arrivals::new(curve.clone(), kind, k, stream(seed, "p")).collect();
            proptest::prop_assert!(a.windows(2).all(|w| w[0] <= w[1]));
            proptest::prop_assert!(a.iter().all(|&t| t < end.max(1)));
            if kind == ArrivalKind::Constant {
                // one arrival per unit of Λ
                proptest::prop_assert!((a.len() as f64 - curve.total()).abs() <= 1.0 + 1e-6 * curve.total());
            }
            for t in [0.0, curve.duration_s() / 3.0, curve.duration_s() / 2.0] {
                let s = curve.cumulative(t);
                if s > 0.0 {
                    let back = curve.inverse(s).unwrap();
                    proptest::prop_assert!((curve.cumulative(back) - s).abs() < 1e-6 * s.max(1.0));
                }
            }
        }
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
