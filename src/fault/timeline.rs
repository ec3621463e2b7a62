//! When a phase is active, and how strongly.
//!
//! A phase has a window `[start, start + duration)` (open-ended without `duration`),
//! optional linear ramps at both ends, and optionally one of two on/off patterns inside
//! the window:
//! - **flapping**: on for `duty · period`, off for the rest, repeating from `start`;
//! - **random outages**: alternating up and down periods drawn from exponential
//!   distributions with means `mtbf` (up) and `mttr` (down), starting up — TigerBeetle's
//!   "probability per tick and a minimum duration" in continuous time.
//!
//! The result at time `t` is an *intensity* in [0, 1]: 0 = inactive, 1 = fully on; during
//! a ramp it grows linearly. Intensity scales a phase's fault probabilities and
//! interpolates its latency/throughput settings (see `fault::Plan`).

use crate::rng::Stream;
use crate::time::{Dur, Nanos};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// On/off flapping inside a phase's window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// Length of one on+off cycle.
    pub period: Dur,
    /// Share of each cycle spent on, in (0, 1].
    pub duty: f64,
}

/// Random outages inside a phase's window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomOutages {
    /// Mean time between failures (mean length of an up period).
    pub mtbf: Dur,
    /// Mean time to repair (mean length of an outage).
    pub mttr: Dur,
}

/// The time shape of a phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Onset, from run start.
    pub start: Nanos,
    /// Length; `None` = until the end of the run.
    pub duration: Option<Nanos>,
    /// Linear ramp from 0 to full intensity after `start`.
    pub ramp_in: Nanos,
    /// Linear ramp from full intensity to 0 before the end.
    pub ramp_out: Nanos,
    /// Flapping pattern.
    pub flapping: Option<Flapping>,
    /// Random outage pattern.
    pub random: Option<RandomOutages>,
}

impl Window {
    /// End of the window (exclusive), `Nanos::MAX` when open-ended.
    pub fn end(&self) -> Nanos {
        self.duration.map_or(Nanos::MAX, |d| self.start.saturating_add(d))
    }

    /// Checks parameters; one message per problem.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if let Some(d) = self.duration {
            if d == 0 {
                e.push("duration must be > 0 (omit it for an open-ended phase)".into());
            }
            if self.ramp_in.saturating_add(self.ramp_out) > d {
                e.push("ramp_in + ramp_out must not exceed duration".into());
            }
        }
        if self.flapping.is_some() && self.random.is_some() {
            e.push("a phase takes `flapping` or `random`, not both".into());
        }
        if let Some(f) = &self.flapping {
            let min = crate::diag::limits::MIN_PERIOD;
            if f.period.0 < min.0 {
                e.push(format!("flapping.period must be at least {min}, got {}", f.period));
            }
            if !(f.duty > 0.0 && f.duty <= 1.0) {
                e.push(format!("flapping.duty must be in (0, 1], got {}", f.duty));
            }
        }
        if let Some(r) = &self.random {
            if r.mtbf.0 == 0 || r.mttr.0 == 0 {
                e.push("random.mtbf and random.mttr must be > 0".into());
            }
        }
        let max = crate::diag::limits::MAX_DURATION;
        for (k, d) in [
            ("start", Some(self.start)),
            ("duration", self.duration),
            ("ramp_in", Some(self.ramp_in)),
            ("ramp_out", Some(self.ramp_out)),
            ("flapping.period", self.flapping.as_ref().map(|f| f.period.0)),
            ("random.mtbf", self.random.as_ref().map(|r| r.mtbf.0)),
            ("random.mttr", self.random.as_ref().map(|r| r.mttr.0)),
        ] {
            if let Some(m) = d.and_then(|d| crate::diag::limits::dur_at_most(crate::time::Dur(d), max)) {
                e.push(format!("{k} {m}"));
            }
        }
        e
    }
}

/// Most random outages generated for one phase (bounds memory for absurd settings).
const MAX_OUTAGES: usize = 1_000_000;

/// 2^53: integers up to here are exact in `f64`.
const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// A window plus the lazily drawn random outages, if any.
#[derive(Clone, Debug)]
pub struct Timeline {
    window: Window,
    rng: Stream,
    /// Drawn outages `(start, end)`, sorted, non-overlapping.
    outages: Vec<(Nanos, Nanos)>,
    /// Time up to which outages have been drawn.
    drawn_until: Nanos,
    /// Random-walk cursor: end of the last up+down cycle drawn.
    cursor: Nanos,
}

fn exp_sample(rng: &mut Stream, mean: Nanos) -> Nanos {
    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let v = -(u.ln()) * mean as f64;
    (v.round() as Nanos).max(1)
}

impl Timeline {
    /// A timeline over `window`, with `rng` for random outages (a stream labelled for this
    /// phase, so other phases' draws are unaffected).
    pub fn new(window: Window, rng: Stream) -> Timeline {
        let start = window.start;
        Timeline {
            window,
            rng,
            outages: Vec::new(),
            drawn_until: start,
            cursor: start,
        }
    }

    /// The window.
    pub fn window(&self) -> &Window {
        &self.window
    }

    fn draw_until(&mut self, t: Nanos) {
        let Some(r) = self.window.random.clone() else { return };
        let end = self.window.end();
        while self.drawn_until <= t && self.cursor < end && self.outages.len() < MAX_OUTAGES {
            let up = exp_sample(&mut self.rng, r.mtbf.0);
            let down = exp_sample(&mut self.rng, r.mttr.0);
            let s = self.cursor.saturating_add(up);
            let e = s.saturating_add(down);
            if s < end {
                self.outages.push((s, e.min(end)));
            }
            self.cursor = e;
            self.drawn_until = e;
        }
        if self.cursor >= end || self.outages.len() >= MAX_OUTAGES {
            self.drawn_until = Nanos::MAX;
        }
    }

    /// Whether the on/off pattern is on at `t` (ignoring the ramps).
    fn pattern_on(&mut self, t: Nanos) -> bool {
        let w = &self.window;
        if let Some(f) = &w.flapping {
            let local = (t - w.start) % f.period.0;
            return (local as f64) < f.duty * f.period.0 as f64;
        }
        if w.random.is_some() {
            self.draw_until(t);
            let i = self.outages.partition_point(|&(s, _)| s <= t);
            return i > 0 && t < self.outages[i - 1].1;
        }
        true
    }

    /// Intensity at `t` in [0, 1].
    #[inline]
    pub fn intensity(&mut self, t: Nanos) -> f64 {
        let w = &self.window;
        if t < w.start || t >= w.end() {
            return 0.0;
        }
        let mut k = 1.0f64;
        if w.ramp_in > 0 {
            k = k.min((t - w.start) as f64 / w.ramp_in as f64);
        }
        if w.ramp_out > 0 && w.duration.is_some() {
            k = k.min((w.end() - t) as f64 / w.ramp_out as f64);
        }
        if k <= 0.0 || !self.pattern_on(t) {
            return 0.0;
        }
        k.min(1.0)
    }

    /// Intensity at `t`, and a time up to which (exclusive) it is certain to stay exactly
    /// that: the next window, ramp, flapping or outage edge after `t`. Inside a ramp the
    /// intensity moves with every nanosecond, so the answer there is `t + 1`.
    ///
    /// Lets the plan work out the active phases once per stretch of constant intensity
    /// instead of once per request. The bound may be early (never late): outages not yet
    /// drawn are assumed to start right after the ones drawn so far.
    pub fn intensity_span(&mut self, t: Nanos) -> (f64, Nanos) {
        let k = self.intensity(t);
        (k, self.steady_until(t))
    }

    /// See [`Timeline::intensity_span`]. Each ramp test is the one `intensity` makes: past
    /// the ramp-in, `(t − start) / ramp_in` is ≥ 1 for every later `t` too, since
    /// converting to `f64` and dividing are monotone; likewise before the ramp-out.
    fn steady_until(&mut self, t: Nanos) -> Nanos {
        let w = &self.window;
        let end = w.end();
        if t < w.start {
            return w.start;
        }
        if t >= end {
            return Nanos::MAX;
        }
        let moving = t + 1; // t < end ≤ Nanos::MAX
        if w.ramp_in > 0 && t - w.start < w.ramp_in {
            return moving;
        }
        let mut until = end;
        if w.ramp_out > 0 && w.duration.is_some() {
            // full intensity while end − t ≥ ramp_out, i.e. up to and including `last_full`
            match end.checked_sub(w.ramp_out) {
                Some(last_full) if t <= last_full => until = last_full + 1,
                _ => return moving,
            }
        }
        if let Some(f) = &w.flapping {
            let period = f.period.0;
            let local = (t - w.start) % period;
            let cycle_start = t - local;
            let threshold = f.duty * period as f64;
            let edge = if (local as f64) < threshold {
                // on while `x as f64 < threshold`: for integers below 2^53 (exact in
                // f64) that is x < ceil(threshold); `threshold` is no NaN, being above
                // `local`
                if threshold > TWO_POW_53 {
                    return moving;
                }
                (threshold.ceil() as Nanos).min(period)
            } else {
                period
            };
            until = until.min(cycle_start.saturating_add(edge));
        } else if w.random.is_some() {
            self.draw_until(t);
            let i = self.outages.partition_point(|&(s, _)| s <= t);
            let edge = match i.checked_sub(1).map(|j| self.outages[j]) {
                Some((_, e)) if t < e => e,
                // off: the next outage drawn, else one not drawn yet, which starts after
                // `drawn_until` (never, once that is `Nanos::MAX`)
                _ => self.outages.get(i).map_or(self.drawn_until, |&(s, _)| s),
            };
            until = until.min(edge);
        }
        until
    }

    /// The intervals `[start, end)` during which the phase is on, up to `horizon` — the
    /// ground truth `FaultEvent`s are made of. Ramps count as on.
    pub fn on_intervals(&mut self, horizon: Nanos) -> Vec<(Nanos, Nanos)> {
        let w = self.window.clone();
        let end = w.end().min(horizon);
        if w.start >= end {
            return Vec::new();
        }
        if let Some(f) = &w.flapping {
            let mut v = Vec::new();
            let on = ((f.duty * f.period.0 as f64).round() as Nanos).max(1);
            let mut s = w.start;
            while s < end && v.len() < MAX_OUTAGES {
                v.push((s, (s + on).min(end)));
                s = s.saturating_add(f.period.0);
            }
            return v;
        }
        if w.random.is_some() {
            self.draw_until(end);
            return self
                .outages
                .iter()
                .filter(|&&(s, _)| s < end)
                .map(|&(s, e)| (s, e.min(end)))
                .collect();
        }
        vec![(w.start, end)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::time::NS_PER_S;

    fn tl(w: Window) -> Timeline {
        Timeline::new(w, stream(1, "tl"))
    }

    #[test]
    fn window_and_ramps() {
        let mut t = tl(Window {
            start: 10 * NS_PER_S,
            duration: Some(20 * NS_PER_S),
            ramp_in: 4 * NS_PER_S,
            ramp_out: 2 * NS_PER_S,
            ..Window::default()
        });
        assert_eq!(t.intensity(9 * NS_PER_S), 0.0);
        assert_eq!(t.intensity(10 * NS_PER_S), 0.0);
        assert!((t.intensity(12 * NS_PER_S) - 0.5).abs() < 1e-9);
        assert_eq!(t.intensity(20 * NS_PER_S), 1.0);
        assert!((t.intensity(29 * NS_PER_S) - 0.5).abs() < 1e-9);
        assert_eq!(t.intensity(30 * NS_PER_S), 0.0);
        assert_eq!(t.on_intervals(100 * NS_PER_S), vec![(10 * NS_PER_S, 30 * NS_PER_S)]);
    }

    #[test]
    fn flapping_duty_cycle() {
        let mut t = tl(Window {
            start: 0,
            duration: None,
            flapping: Some(Flapping {
                period: Dur::from_secs(10),
                duty: 0.3,
            }),
            ..Window::default()
        });
        assert_eq!(t.intensity(0), 1.0);
        assert_eq!(t.intensity(2 * NS_PER_S), 1.0);
        assert_eq!(t.intensity(3 * NS_PER_S), 0.0);
        assert_eq!(t.intensity(12 * NS_PER_S), 1.0);
        let on = t.on_intervals(30 * NS_PER_S);
        assert_eq!(on.len(), 3);
        assert_eq!(on[1], (10 * NS_PER_S, 13 * NS_PER_S));
    }

    #[test]
    fn random_outages_match_mtbf_mttr() {
        let mut t = tl(Window {
            start: 0,
            duration: Some(1_000_000 * NS_PER_S),
            random: Some(RandomOutages {
                mtbf: Dur::from_secs(90),
                mttr: Dur::from_secs(10),
            }),
            ..Window::default()
        });
        let on = t.on_intervals(Nanos::MAX);
        let down: u64 = on.iter().map(|(s, e)| e - s).sum();
        let share = down as f64 / (1_000_000 * NS_PER_S) as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        let mean_down = down as f64 / on.len() as f64 / NS_PER_S as f64;
        assert!((mean_down - 10.0).abs() < 0.5, "{mean_down}");
        // intensity agrees with the intervals
        let (s, e) = on[5];
        assert_eq!(t.intensity(s), 1.0);
        assert_eq!(t.intensity(e), 0.0);
        assert_eq!(t.intensity(s - 1), 0.0);
    }

    /// Every `t` in `[now, until)` of `intensity_span(now)` has the same intensity,
    /// checked exhaustively on small windows (in nanoseconds) with ramps, odd flapping
    /// duties and dense random outages; and `until` is reached at real edges often enough
    /// that the span is useful.
    #[test]
    fn intensity_span_is_constant_up_to_its_bound() {
        let flap = |period: u64, duty: f64| Flapping {
            period: Dur(period),
            duty,
        };
        let windows = [
            Window {
                start: 10,
                duration: Some(1000),
                ramp_in: 7,
                ramp_out: 5,
                ..Window::default()
            },
            Window {
                start: 3,
                duration: Some(900),
                ramp_in: 4,
                ramp_out: 9,
                flapping: Some(flap(37, 0.3)),
                ..Window::default()
            },
            Window {
                start: 0,
                duration: None,
                flapping: Some(flap(10, 0.35)),
                ..Window::default()
            },
            Window {
                start: 5,
                duration: Some(700),
                flapping: Some(flap(7, 1.0)),
                ..Window::default()
            },
            Window {
                start: 20,
                duration: Some(1000),
                ramp_out: 30,
                random: Some(RandomOutages {
                    mtbf: Dur(40),
                    mttr: Dur(15),
                }),
                ..Window::default()
            },
            Window {
                start: 0,
                duration: None,
                random: Some(RandomOutages {
                    mtbf: Dur(25),
                    mttr: Dur(25),
                }),
                ..Window::default()
            },
        ];
        for w in windows {
            let mut spans = tl(w.clone());
            let mut truth = tl(w.clone());
            let horizon = 1200;
            let mut now = 0;
            let mut queries = 0;
            while now < horizon {
                let (k, until) = spans.intensity_span(now);
                assert!(until > now, "{w:?} at {now}");
                for t in now..until.min(horizon + 50) {
                    assert_eq!(truth.intensity(t).to_bits(), k.to_bits(), "{w:?}: span of {now} at {t}");
                }
                queries += 1;
                now = until;
            }
            // the bound is not trivially `now + 1` outside the ramps
            assert!(queries < horizon / 3, "{w:?}: {queries} spans");
            // and spans queried at every instant agree too
            for t in 0..horizon {
                let (k, until) = spans.intensity_span(t);
                assert_eq!(truth.intensity(t).to_bits(), k.to_bits());
                assert_eq!(truth.intensity(until - 1).to_bits(), k.to_bits());
            }
        }
    }

    #[test]
    fn random_outages_same_whatever_the_query_order() {
        let w = Window {
            start: 0,
            duration: None,
            random: Some(RandomOutages {
                mtbf: Dur::from_secs(5),
                mttr: Dur::from_secs(1),
            }),
            ..Window::default()
        };
        let mut a = tl(w.clone());
        let mut b = tl(w);
        let late: Vec<f64> = (0..100).rev().map(|s| a.intensity(s * NS_PER_S / 3)).collect();
        let mut early: Vec<f64> = (0..100).map(|s| b.intensity(s * NS_PER_S / 3)).collect();
        early.reverse();
        assert_eq!(late, early);
        assert_eq!(a.on_intervals(50 * NS_PER_S), b.on_intervals(50 * NS_PER_S));
    }
}
