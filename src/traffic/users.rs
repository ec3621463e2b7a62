//! Closed-loop users, Locust's model: `users` virtual users spawned at `spawn_rate` per
//! second, each sending a request, waiting for the answer, thinking, and sending again.
//!
//! Think time: `constant` (a fixed wait after each answer), `uniform` (Locust's
//! `between(min, max)`), or `pacing` (Locust's `constant_pacing`: start-to-start interval,
//! so the wait is `interval − response time`, never negative).
//!
//! Drive it with [`ClosedLoop::spawn_at`] for each user's first start and
//! [`ClosedLoop::on_complete`] for every answer. Each user draws its think times from its
//! own stream, so a user's k-th wait is the same whatever order the answers of different
//! users come back in — live and simulated runs plan alike.
//!
//! Drivers (the live load client and the simulator) run [`Users`]: the [`ClosedLoop`]
//! plus what each started request is — ids in start order, shapes drawn from the run's
//! shape stream at each start — so both plan the same requests from the same seed.

use super::{shape_stream, Mix, Planned, RequestShape, Source};
use crate::rng::{stream, Stream};
use crate::time::{secs_f64_to_nanos, Dur, Nanos};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Think time between requests of one user. In a file either a table
/// (`{ kind = "uniform", min = "1s", max = "3s" }`) or, as on the command line
/// (`--think`), a string: `"500ms"` (constant) or `"1s..3s"` (uniform).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
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

/// [`ThinkTime`]'s table form, read by serde's `remote` so the two cannot drift apart.
#[derive(Deserialize)]
#[serde(remote = "ThinkTime", tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ThinkTimeTable {
    Constant { value: Dur },
    Uniform { min: Dur, max: Dur },
    Pacing { interval: Dur },
}

impl std::str::FromStr for ThinkTime {
    type Err = String;
    /// `500ms` (constant) or `1s..3s` (uniform between the two).
    fn from_str(s: &str) -> Result<ThinkTime, String> {
        let what = |e: String| format!("{e} (a think time is a duration, e.g. \"500ms\", or a range, e.g. \"1s..3s\")");
        match s.split_once("..") {
            Some((lo, hi)) => Ok(ThinkTime::Uniform {
                min: lo.parse().map_err(what)?,
                max: hi.parse().map_err(what)?,
            }),
            None => Ok(ThinkTime::Constant {
                value: s.parse().map_err(what)?,
            }),
        }
    }
}

impl<'de> Deserialize<'de> for ThinkTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ThinkTime, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ThinkTime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration (\"500ms\"), a range (\"1s..3s\") or a table with `kind`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ThinkTime, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<ThinkTime, A::Error> {
                ThinkTimeTable::deserialize(serde::de::value::MapAccessDeserializer::new(m))
            }
        }
        d.deserialize_any(V)
    }
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
    /// Seed of the per-user streams (drawn once from `rng`).
    user_seed: u64,
    /// Per user: the intended start of its request in flight, and its think-time stream
    /// (created on first use).
    state: Vec<UserState>,
    /// Shortest start-to-start interval of one user ([`ClosedLoop::with_min_cycle`]).
    min_cycle: Nanos,
}

#[derive(Clone, Debug, Default)]
struct UserState {
    started: Option<Nanos>,
    rng: Option<Box<Stream>>,
}

impl ClosedLoop {
    /// `users` users spawned at `spawn_rate`/s, requests started before `duration`.
    ///
    /// # Panics
    /// If `spawn_rate` is not positive (validated before this).
    pub fn new(users: u32, spawn_rate: f64, think: ThinkTime, duration: Nanos, rng: Stream) -> ClosedLoop {
        assert!(spawn_rate > 0.0, "spawn_rate must be > 0");
        let user_seed = rng.clone().random();
        ClosedLoop {
            users,
            spawn_rate,
            think,
            duration,
            rng,
            user_seed,
            state: Vec::new(),
            min_cycle: 0,
        }
    }

    /// No user starts two requests less than `min_cycle` apart: its next start is at least
    /// `min_cycle` after its previous one, whatever the think time and the answer took.
    /// Default 0 (live, time always moves on between a request's start and its answer).
    /// The simulator sets [`SIM_MIN_CYCLE`]: an answer there can take no time at all (a
    /// gateway with no target left answers 503 at once), and a user with no think time
    /// would then start requests forever at one instant.
    pub fn with_min_cycle(mut self, min_cycle: Nanos) -> ClosedLoop {
        self.min_cycle = min_cycle;
        self
    }

    /// The run's length: no request starts at or after it.
    pub fn duration(&self) -> Nanos {
        self.duration
    }

    /// Every user's first start, in time order (users that would spawn after the end of
    /// the run are left out). Records each as that user's request in flight.
    pub fn spawns(&mut self) -> Vec<(u32, Nanos)> {
        let v: Vec<(u32, Nanos)> = (0..self.users)
            .map_while(|u| self.spawn_at(u).map(|t| (u, t)))
            .collect();
        for &(u, t) in &v {
            self.user(u).started = Some(t);
        }
        v
    }

    fn user(&mut self, u: u32) -> &mut UserState {
        let i = u as usize;
        if self.state.len() <= i {
            self.state.resize_with(i + 1, UserState::default);
        }
        &mut self.state[i]
    }

    /// User `user`'s request ended at `now`: the intended start of its next request, or
    /// `None` when that would be at or after the end of the run (the user stops). The
    /// previous start is the one this machine last handed out for the user ([`spawns`] or
    /// an earlier `on_complete`), so pacing is measured from *intended* starts.
    ///
    /// [`spawns`]: ClosedLoop::spawns
    ///
    /// # Panics
    /// If `user` has no request in flight (never spawned, or already stopped).
    pub fn on_complete(&mut self, now: Nanos, user: u32) -> Option<Nanos> {
        let seed = self.user_seed;
        let think = self.think;
        let duration = self.duration;
        let min_cycle = self.min_cycle;
        let st = self.user(user);
        let started = st
            .started
            .take()
            .expect("on_complete for a user with no request in flight");
        let next = match think {
            ThinkTime::Constant { value } => now.saturating_add(value.0),
            ThinkTime::Uniform { min, max } => {
                let rng = st
                    .rng
                    .get_or_insert_with(|| Box::new(stream(seed, &format!("user/{user}"))));
                now.saturating_add(uniform(rng, min, max))
            }
            ThinkTime::Pacing { interval } => started.saturating_add(interval.0).max(now),
        };
        let next = next.max(started.saturating_add(min_cycle));
        let next = (next < duration).then_some(next);
        st.started = next;
        next
    }

    /// Users with a request in flight or planned (spawned and not stopped).
    pub fn active(&self) -> usize {
        self.state.iter().filter(|s| s.started.is_some()).count()
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
    ///
    /// Stateless about users: uniform think times come from one shared stream, in the order
    /// answers arrive. Prefer [`ClosedLoop::on_complete`], whose draws are per user.
    pub fn next_start(&mut self, started: Nanos, ended: Nanos) -> Option<Nanos> {
        let next = match self.think {
            ThinkTime::Constant { value } => ended.saturating_add(value.0),
            ThinkTime::Uniform { min, max } => ended.saturating_add(uniform(&mut self.rng, min, max)),
            ThinkTime::Pacing { interval } => started.saturating_add(interval.0).max(ended),
        };
        (next < self.duration).then_some(next)
    }
}

/// The simulator's [`ClosedLoop::with_min_cycle`]: 1 ms, the shortest user cycle the
/// planned-work estimate assumes (`limits`), so the estimate bounds a simulated run. Live
/// over loopback a cycle takes 0.1–0.3 ms at the least; the two differ only when think
/// time and answer together take under 1 ms.
pub const SIM_MIN_CYCLE: Nanos = crate::time::NS_PER_MS;

/// Closed-loop traffic as a driver runs it: the users' [`ClosedLoop`], plus what each
/// request a user starts is. Ids count starts from 0 in start order; each start draws its
/// shape from `(seed, "traffic/shapes")` (the stream open-loop shapes come from), think
/// times from `(seed, "traffic/think")`. The live load client and the simulator both run
/// this, so one seed plans the same requests in both (live, users that start at the same
/// instant take ids and shapes in whatever order their tasks run).
#[derive(Clone, Debug)]
pub struct Users {
    schedule: ClosedLoop,
    mix: Mix,
    shapes: Stream,
    next_id: u64,
}

impl Users {
    /// The users of a closed-loop `source` (`None` for open loop and trace), seeded from
    /// `seed`.
    pub fn new(source: &Source, mix: Mix, seed: u64) -> Option<Users> {
        let Source::Closed {
            users,
            spawn_rate,
            think,
            duration,
        } = source
        else {
            return None;
        };
        Some(Users {
            schedule: ClosedLoop::new(*users, *spawn_rate, *think, *duration, stream(seed, "traffic/think")),
            mix,
            shapes: shape_stream(seed),
            next_id: 0,
        })
    }

    /// See [`ClosedLoop::with_min_cycle`].
    pub fn with_min_cycle(mut self, min_cycle: Nanos) -> Users {
        self.schedule = self.schedule.with_min_cycle(min_cycle);
        self
    }

    /// Every user's first start, in time order ([`ClosedLoop::spawns`]).
    pub fn spawns(&mut self) -> Vec<(u32, Nanos)> {
        self.schedule.spawns()
    }

    /// A user starts a request at `at`: the request, written into `out` (a driver's reused
    /// slot; every field is overwritten). The next id, and a shape drawn from the mix.
    #[inline]
    pub fn start_into(&mut self, at: Nanos, out: &mut Planned) {
        out.id = self.next_id;
        self.next_id += 1;
        out.at = at;
        self.mix.draw_into(&mut self.shapes, &mut out.shape);
    }

    /// [`Users::start_into`] into a new [`Planned`].
    pub fn start(&mut self, at: Nanos) -> Planned {
        let id = self.next_id;
        self.next_id += 1;
        let shape: RequestShape = self.mix.draw(&mut self.shapes);
        Planned { id, at, shape }
    }

    /// User `user`'s request ended at `ended`: its next start ([`ClosedLoop::on_complete`]).
    ///
    /// # Panics
    /// If `user` has no request in flight.
    #[inline]
    pub fn on_complete(&mut self, ended: Nanos, user: u32) -> Option<Nanos> {
        self.schedule.on_complete(ended, user)
    }

    /// Requests started so far.
    pub fn started(&self) -> u64 {
        self.next_id
    }

    /// The users' schedule.
    pub fn schedule(&self) -> &ClosedLoop {
        &self.schedule
    }

    /// The mix.
    pub fn mix(&self) -> &Mix {
        &self.mix
    }
}

fn uniform(rng: &mut Stream, min: Dur, max: Dur) -> Nanos {
    if max.0 > min.0 {
        rng.random_range(min.0..=max.0)
    } else {
        min.0
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

    /// A ten-line discrete-event driver: every request takes `service`.
    fn drive(c: &mut ClosedLoop, service: Nanos) -> Vec<(u32, Nanos)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut q: BinaryHeap<Reverse<(Nanos, u32)>> = c.spawns().into_iter().map(|(u, t)| Reverse((t, u))).collect();
        let mut starts = Vec::new();
        while let Some(Reverse((t, u))) = q.pop() {
            starts.push((u, t));
            if let Some(next) = c.on_complete(t + service, u) {
                q.push(Reverse((next, u)));
            }
        }
        starts
    }

    #[test]
    fn closed_loop_counts_and_ramp() {
        // 20 users at 4/s, 100 ms service + 400 ms think for 60 s: each user does one request
        // per 500 ms from its spawn time on.
        let think = ThinkTime::Constant {
            value: Dur::from_millis(400),
        };
        let mut c = ClosedLoop::new(20, 4.0, think, 60 * NS_PER_S, stream(1, "u"));
        let starts = drive(&mut c, 100 * NS_PER_MS);
        let expected: usize = (0..20u64).map(|u| (60_000 - u * 250).div_ceil(500) as usize).sum();
        assert_eq!(starts.len(), expected);
        // during the spawn ramp the number of users with a request started grows by 4/s
        let active_in = |lo: Nanos| {
            let mut us: Vec<u32> = starts
                .iter()
                .filter(|(_, t)| (lo..lo + NS_PER_S).contains(t))
                .map(|x| x.0)
                .collect();
            us.sort_unstable();
            us.dedup();
            us.len()
        };
        assert_eq!(
            (active_in(0), active_in(2 * NS_PER_S), active_in(30 * NS_PER_S)),
            (4, 12, 20)
        );
        assert_eq!(c.active(), 0);
    }

    #[test]
    fn pacing_counts_from_intended_starts() {
        let pacing = ThinkTime::Pacing {
            interval: Dur::from_secs(1),
        };
        // fast answers: one request per second per user
        let mut c = ClosedLoop::new(5, 1e9, pacing, 10 * NS_PER_S, stream(1, "u"));
        let starts = drive(&mut c, 300 * NS_PER_MS);
        assert_eq!(starts.len(), 50);
        assert!(starts.iter().all(|&(u, t)| t % NS_PER_S == u64::from(u)), "{starts:?}"); // spawned 1 ns apart
                                                                                          // answers slower than the interval: back to back
        let mut c = ClosedLoop::new(5, 1e9, pacing, 10 * NS_PER_S, stream(1, "u"));
        assert_eq!(drive(&mut c, 2_500 * NS_PER_MS).len(), 5 * 4);
    }

    #[test]
    fn per_user_think_times_do_not_depend_on_answer_order() {
        let think = ThinkTime::Uniform {
            min: Dur::from_millis(100),
            max: Dur::from_secs(2),
        };
        let plan = |order: &[u32]| {
            let mut c = ClosedLoop::new(3, 1e9, think, Nanos::MAX, stream(9, "traffic/think"));
            c.spawns();
            let mut by_user = vec![Vec::new(); 3];
            for _ in 0..4 {
                for &u in order {
                    by_user[u as usize].push(c.on_complete(NS_PER_S, u).unwrap());
                }
            }
            by_user
        };
        assert_eq!(plan(&[0, 1, 2]), plan(&[2, 0, 1]));
        assert_ne!(plan(&[0, 1, 2])[0], plan(&[0, 1, 2])[1]);
    }

    /// A user's next start is at least `min_cycle` after its previous one: answers that
    /// take no time and no think time would otherwise restart it at the same instant.
    #[test]
    fn min_cycle_floors_start_to_start() {
        let none = ThinkTime::Constant { value: Dur(0) };
        let mut c = ClosedLoop::new(1, 1.0, none, 10 * NS_PER_MS, stream(1, "u")).with_min_cycle(NS_PER_MS);
        c.spawns();
        let mut starts = vec![0];
        while let Some(n) = c.on_complete(*starts.last().unwrap(), 0) {
            starts.push(n);
        }
        assert_eq!(starts, (0..10).map(|k| k * NS_PER_MS).collect::<Vec<_>>());
        // a think time past the floor is untouched
        let think = ThinkTime::Constant {
            value: Dur::from_millis(2),
        };
        let mut c = ClosedLoop::new(1, 1.0, think, NS_PER_S, stream(1, "u")).with_min_cycle(NS_PER_MS);
        c.spawns();
        assert_eq!(c.on_complete(0, 0), Some(2 * NS_PER_MS));
    }

    /// `Users` numbers requests in start order and draws each one's shape from the run's
    /// shape stream at its start, as the live client and the simulator both rely on.
    #[test]
    fn users_number_and_shape_requests_in_start_order() {
        use crate::provider::Api;
        use crate::traffic::KindSpec;
        let mix = Mix::new(vec![KindSpec::chat("a", true), KindSpec::chat("b", false)], Api::OpenAi).unwrap();
        let src = Source::Closed {
            users: 3,
            spawn_rate: 1.0,
            think: ThinkTime::default(),
            duration: NS_PER_S,
        };
        let mut u = Users::new(&src, mix.clone(), 7).unwrap();
        let mut shapes = shape_stream(7);
        let mut slot = u.start(5);
        assert_eq!((slot.id, slot.at, &slot.shape), (0, 5, &mix.draw(&mut shapes)));
        for id in 1..50 {
            u.start_into(id * 10, &mut slot);
            assert_eq!((slot.id, slot.at, &slot.shape), (id, id * 10, &mix.draw(&mut shapes)));
        }
        assert_eq!(u.started(), 50);
        let rate = Source::Open(crate::traffic::RateCurve::constant(1.0, 1.0), Default::default(), 1.0);
        assert!(Users::new(&rate, mix, 7).is_none());
    }

    proptest::proptest! {
        #[test]
        fn next_start_respects_think_and_pacing(
            started in 0u64..1_000_000_000,
            took in 0u64..3_000_000_000,
            ms in 0u64..2_000,
            seed in 0u64..100,
        ) {
            let ended = started + took;
            let d = Dur::from_millis(ms);
            for think in [ThinkTime::Constant { value: d }, ThinkTime::Uniform { min: Dur(0), max: d }, ThinkTime::Pacing { interval: d }] {
                let mut c = ClosedLoop::new(1, 1.0, think, Nanos::MAX, stream(seed, "u"));
                c.spawns();
                let mut c2 = c.clone();
                let next = c.next_start(0, ended).unwrap();
                let next2 = c2.on_complete(ended, 0).unwrap();
                for n in [next, next2] {
                    proptest::prop_assert!(n >= ended && n <= ended + d.0);
                    if let ThinkTime::Pacing { .. } = think {
                        proptest::prop_assert_eq!(n, d.0.max(ended));
                    }
                }
            }
        }
    }
}
