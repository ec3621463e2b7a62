//! Traffic: when requests arrive and what they look like. Pure and seeded, shared by the
//! live load generator and the virtual-time simulator.
//!
//! Three sources: open-loop [`arrivals`] (constant, Poisson, gamma; stages), closed-loop
//! [`users`] (Locust's model; a state machine the driver feeds completions into) and
//! [`trace`] replay. Request shapes come from a weighted [`mix`]. Open-loop and trace
//! schedules are lazy iterators, so a one-hour run at 1,000 req/s never holds 3.6 M plans.

pub mod arrivals;
pub mod mix;
pub mod trace;
pub mod users;

pub use arrivals::{ArrivalKind, Arrivals, RateCurve, Stage};
pub use mix::{EndpointKind, KindSpec, Mix, RequestShape, Tokens};
pub use trace::Trace;
pub use users::{ClosedLoop, ThinkTime};

use crate::provider::Api;
use crate::rng::{stream, Stream};
use crate::time::{Dur, Nanos};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[traffic]` table of a scenario, and what `chaosgate load` flags build.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// Default API of kinds that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// Run length (open and closed loop; a trace runs to its last row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Open loop: requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: gap distribution (default poisson).
    #[serde(default)]
    pub arrival: ArrivalKind,
    /// Gamma shape (default 1 = Poisson-like; smaller = burstier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Open loop with stages: the rate at t = 0 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_rate: Option<f64>,
    /// Open loop with stages (`[[traffic.stages]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Closed loop: number of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// Closed loop: users spawned per second (default: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_rate: Option<f64>,
    /// Closed loop: think time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time: Option<ThinkTime>,
    /// Trace replay file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<PathBuf>,
    /// Trace replay speed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Mix file (`[[kind]]` tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<PathBuf>,
    /// Inline mix (`[[traffic.kind]]`).
    #[serde(default, rename = "kind", skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KindSpec>,
}

/// A mix file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixFile {
    /// What it models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The kinds (`[[kind]]`).
    #[serde(rename = "kind")]
    pub kinds: Vec<KindSpec>,
}

/// Which loop drives the traffic.
#[derive(Clone, Debug)]
pub enum Source {
    /// Open loop over a rate curve.
    Open(RateCurve, ArrivalKind, f64),
    /// Closed loop.
    Closed {
        /// Users.
        users: u32,
        /// Spawn rate.
        spawn_rate: f64,
        /// Think time.
        think: ThinkTime,
        /// Length.
        duration: Nanos,
    },
    /// Trace replay.
    Trace(Trace, f64),
}

impl TrafficConfig {
    /// Checks the table: exactly one source, sane numbers. `(key, message)` per problem.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let sources = [
            self.rate.is_some(),
            !self.stages.is_empty(),
            self.users.is_some(),
            self.trace.is_some(),
        ];
        match sources.iter().filter(|&&b| b).count() {
            0 => v.push((
                "rate".into(),
                "give one of rate, stages, users (closed loop) or trace".into(),
            )),
            1 => {}
            _ => v.push(("rate".into(), "give only one of rate, stages, users or trace".into())),
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                v.push(("rate".into(), format!("must be > 0 req/s, got {r}")));
            }
        }
        if (self.rate.is_some() || self.users.is_some()) && self.duration.is_none_or(|d| d.0 == 0) {
            v.push((
                "duration".into(),
                "a positive duration is required (e.g. \"30s\")".into(),
            ));
        }
        if let Some(k) = self.burstiness {
            if !(k.is_finite() && k > 0.0) {
                v.push(("burstiness".into(), format!("must be > 0, got {k}")));
            }
        }
        for (i, s) in self.stages.iter().enumerate() {
            if !(s.target.is_finite() && s.target >= 0.0) || s.duration.0 == 0 {
                v.push((format!("stages[{i}]"), "need duration > 0 and target ≥ 0".into()));
            }
        }
        if self.users == Some(0) {
            v.push(("users".into(), "must be ≥ 1".into()));
        }
        if let Some(s) = self.spawn_rate {
            if !(s.is_finite() && s > 0.0) {
                v.push(("spawn_rate".into(), format!("must be > 0, got {s}")));
            }
        }
        if let Some(s) = self.speed {
            if !(s.is_finite() && s > 0.0) {
                v.push(("speed".into(), format!("must be > 0, got {s}")));
            }
        }
        if self.mix.is_some() && !self.kinds.is_empty() {
            v.push((
                "mix".into(),
                "give a mix file or inline [[traffic.kind]] tables, not both".into(),
            ));
        }
        for (i, k) in self.kinds.iter().enumerate() {
            for (key, m) in k.problems() {
                v.push((format!("kind[{i}].{key}"), m));
            }
        }
        v
    }

    /// The kinds: from the mix file (relative to `base`), inline, or one default chat kind.
    pub fn load_kinds(&self, base: &std::path::Path) -> Result<Vec<KindSpec>, crate::diag::ConfigErrors> {
        if let Some(p) = &self.mix {
            let path = base.join(p);
            let text = crate::diag::read_config(&path)?;
            let file = path.display().to_string();
            let mf: MixFile = toml::from_str(&text).map_err(|e| {
                crate::diag::ConfigErrors(vec![crate::fault::profile::toml_diagnostic(&text, &file, &e)])
            })?;
            let problems: Vec<crate::diag::Diagnostic> = mf
                .kinds
                .iter()
                .enumerate()
                .flat_map(|(i, k)| {
                    let text = &text;
                    let file = &file;
                    k.problems()
                        .into_iter()
                        .map(move |(key, message)| crate::diag::Diagnostic {
                            file: file.clone(),
                            line: crate::diag::line_of(text, &crate::diag::Path::root().key("kind").index(i).key(&key)),
                            path: format!("kind[{i}].{key}"),
                            message,
                        })
                })
                .collect();
            if !problems.is_empty() {
                return Err(crate::diag::ConfigErrors(problems));
            }
            return Ok(mf.kinds);
        }
        if !self.kinds.is_empty() {
            return Ok(self.kinds.clone());
        }
        Ok(vec![KindSpec::chat("chat", false)])
    }

    /// The source (call after `problems()` came back empty).
    pub fn source(&self, base: &std::path::Path) -> Result<Source, crate::diag::ConfigErrors> {
        if let Some(p) = &self.trace {
            return Ok(Source::Trace(Trace::load(&base.join(p))?, self.speed.unwrap_or(1.0)));
        }
        let duration = self.duration.unwrap_or_default().0;
        if let Some(users) = self.users {
            return Ok(Source::Closed {
                users,
                spawn_rate: self.spawn_rate.unwrap_or(f64::from(users) * 1e9),
                think: self.think_time.unwrap_or_default(),
                duration,
            });
        }
        let curve = match self.rate {
            Some(r) => RateCurve::constant(r, duration as f64 / 1e9),
            None => RateCurve::stages(self.start_rate.unwrap_or(0.0), &self.stages),
        };
        Ok(Source::Open(curve, self.arrival, self.burstiness.unwrap_or(1.0)))
    }
}

/// One planned request of an open-loop or trace schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Sequence number from 0.
    pub id: u64,
    /// Intended send time.
    pub at: Nanos,
    /// What to send.
    pub shape: RequestShape,
}

/// A lazy open-loop or trace schedule: planned requests in time order.
#[derive(Debug)]
pub struct Schedule {
    inner: ScheduleInner,
    mix: Mix,
    shapes: Stream,
    next_id: u64,
}

#[derive(Debug)]
enum ScheduleInner {
    Open(Box<Arrivals>),
    Trace(Trace, f64, usize),
}

impl Schedule {
    /// The schedule of `source` (not closed loop: that one is driven by completions),
    /// seeded from `(seed, "traffic/…")`.
    pub fn new(source: &Source, mix: Mix, seed: u64) -> Option<Schedule> {
        let inner = match source {
            Source::Open(curve, kind, k) => {
                let a = Arrivals::new(curve.clone(), *kind, *k, stream(seed, "traffic/arrivals"));
                ScheduleInner::Open(Box::new(a))
            }
            Source::Trace(t, speed) => ScheduleInner::Trace(t.clone(), *speed, 0),
            Source::Closed { .. } => return None,
        };
        Some(Schedule {
            inner,
            mix,
            shapes: stream(seed, "traffic/shapes"),
            next_id: 0,
        })
    }

    /// The mix.
    pub fn mix(&self) -> &Mix {
        &self.mix
    }
}

impl Iterator for Schedule {
    type Item = Planned;
    fn next(&mut self) -> Option<Planned> {
        let (at, shape) = match &mut self.inner {
            ScheduleInner::Open(a) => {
                let at = a.next()?;
                (at, self.mix.draw(&mut self.shapes))
            }
            ScheduleInner::Trace(t, speed, i) => {
                if *i >= t.rows.len() {
                    return None;
                }
                let x = t.planned(*i, *speed, &self.mix, &mut self.shapes);
                *i += 1;
                x
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        Some(Planned { id, at, shape })
    }
}

/// The stream closed-loop shapes are drawn from (so open and closed runs label alike).
pub fn shape_stream(seed: u64) -> Stream {
    stream(seed, "traffic/shapes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_exactly_one_source() {
        let c: TrafficConfig = toml::from_str("rate = 10.0\nusers = 3\nduration = \"10s\"\n").unwrap();
        assert!(c.problems().iter().any(|(_, m)| m.contains("only one")));
        let c: TrafficConfig = toml::from_str("rate = 10.0\n").unwrap();
        assert!(c.problems().iter().any(|(k, _)| k == "duration"));
        let e = toml::from_str::<TrafficConfig>("rat = 10.0\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `rat`"), "{e}");
    }

    #[test]
    fn schedule_is_lazy_deterministic_and_ordered() {
        let c: TrafficConfig = toml::from_str("rate = 100.0\nduration = \"3600s\"\n").unwrap();
        let src = c.source(std::path::Path::new(".")).unwrap();
        let mix = Mix::new(c.load_kinds(std::path::Path::new(".")).unwrap(), Api::OpenAi).unwrap();
        let a: Vec<Planned> = Schedule::new(&src, mix.clone(), 9).unwrap().take(1000).collect();
        let b: Vec<Planned> = Schedule::new(&src, mix, 9).unwrap().take(1000).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at && w[1].id == w[0].id + 1));
    }
}
