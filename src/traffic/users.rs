//! Closed-loop users, Locust's model: `users` virtual users spawned at `spawn_rate` per
//! second, each sending a request, waiting for the answer, thinking, and sending again.
//!
//! Think time: `constant` (a fixed wait after each answer), `uniform` (Locust's
//! `between(min, max)`), or `pacing` (Locust's `constant_pacing`: start-to-start interval,
//! so the wait is `interval − response time`, never negative).

use crate::rng::Stream;
use crate::time::{secs_f64_to_nanos, Dur, Nanos};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Think time between requests of one user.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThinkTime {
    /// Wait `value` after each answer.
    Constant {
        /// The wait.
        value: Dur,
    },
    /// Wait uniformly in `[min, max]` after each answer.
    Uniform {
        /// Shortest wait.
        min: Dur,
        /// Longest wait.
        max: Dur,
    },
    /// Start a request every `interval` (or at once when the last took longer).
    Pacing {
        /// Start-to-start interval.
        interval: Dur,
    },
}

impl Default for ThinkTime {
    fn default() -> ThinkTime {
        ThinkTime::Constant { value: Dur(0) }
    }
}

/// The closed-loop schedule as a state machine: the driver reports completions and gets
/// the user's next start time.
#[derive(Clone, Debug)]
pub struct ClosedLoop {
    users: u32,
    spawn_rate: f64,
    think: ThinkTime,
    duration: Nanos,
    rng: Stream,
}

impl ClosedLoop {
    /// `users` users spawned at `spawn_rate`/s, requests started before `duration`.
    ///
    /// # Panics
    /// If `spawn_rate` is not positive (validated before this).
    pub fn new(users: u32, spawn_rate: f64, think: ThinkTime, duration: Nanos, rng: Stream) -> ClosedLoop {
        assert!(spawn_rate > 0.0, "spawn_rate must be > 0");
        ClosedLoop {
            users,
            spawn_rate,
            think,
            duration,
            rng,
        }
    }

    /// Number of users.
    pub fn users(&self) -> u32 {
        self.users
    }

    /// When user `u` (0-based) starts its first request: `u / spawn_rate`.
    pub fn spawn_at(&self, u: u32) -> Option<Nanos> {
        let t = secs_f64_to_nanos(f64::from(u) / self.spawn_rate);
        (t < self.duration).then_some(t)
    }

    /// Users alive at `t` (spawned by then).
    pub fn users_at(&self, t: Nanos) -> u32 {
        let spawned = (t as f64 / 1e9 * self.spawn_rate).floor() as u64 + 1;
        spawned.min(u64::from(self.users)) as u32
    }

    /// A user's request that started at `started` ended at `ended`: when does it start the
    /// next one? `None` once that would be at or after the end of the run.
    pub fn next_start(&mut self, started: Nanos, ended: Nanos) -> Option<Nanos> {
        let next = match self.think {
            ThinkTime::Constant { value } => ended.saturating_add(value.0),
            ThinkTime::Uniform { min, max } => {
                let w = if max.0 > min.0 {
                    self.rng.random_range(min.0..=max.0)
                } else {
                    min.0
                };
                ended.saturating_add(w)
            }
            ThinkTime::Pacing { interval } => started.saturating_add(interval.0).max(ended),
        };
        (next < self.duration).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use crate::time::{NS_PER_MS, NS_PER_S};

    #[test]
    fn spawn_and_think() {
        let mut c = ClosedLoop::new(
            10,
            2.0,
            ThinkTime::Constant {
                value: Dur::from_millis(100),
            },
            60 * NS_PER_S,
            stream(1, "u"),
        );
        assert_eq!(c.spawn_at(0), Some(0));
        assert_eq!(c.spawn_at(3), Some(1_500 * NS_PER_MS));
        assert_eq!(c.users_at(2 * NS_PER_S), 5);
        assert_eq!(c.users_at(100 * NS_PER_S), 10);
        assert_eq!(c.next_start(0, 300 * NS_PER_MS), Some(400 * NS_PER_MS));
        assert_eq!(c.next_start(0, 60 * NS_PER_S), None);
    }

    #[test]
    fn pacing_is_start_to_start() {
        let mut c = ClosedLoop::new(
            1,
            1.0,
            ThinkTime::Pacing {
                interval: Dur::from_secs(1),
            },
            60 * NS_PER_S,
            stream(1, "u"),
        );
        assert_eq!(
            c.next_start(5 * NS_PER_S, 5 * NS_PER_S + 300 * NS_PER_MS),
            Some(6 * NS_PER_S)
        );
        // a slow answer: start again at once
        assert_eq!(c.next_start(5 * NS_PER_S, 7 * NS_PER_S), Some(7 * NS_PER_S));
    }

    #[test]
    fn uniform_think_mean() {
        let mut c = ClosedLoop::new(
            1,
            1.0,
            ThinkTime::Uniform {
                min: Dur::from_secs(1),
                max: Dur::from_secs(3),
            },
            Nanos::MAX,
            stream(1, "u"),
        );
        let m = (0..10_000).map(|_| c.next_start(0, 0).unwrap() as f64).sum::<f64>() / 10_000.0 / 1e9;
        assert!((m - 2.0).abs() < 0.03, "{m}");
    }
}
