//! Traffic: when requests arrive and what they look like. Pure and seeded, shared by the
//! live load generator and the virtual-time simulator.
//!
//! Three sources: open-loop [`arrivals`] (constant, Poisson, gamma; stages), closed-loop
//! [`users`] (Locust's model; a state machine the driver feeds completions into) and
//! [`trace`] replay. Request shapes come from a weighted [`mix`]. Open-loop and trace
//! schedules are lazy iterators, so a one-hour run at 1,000 req/s never holds 3.6 M plans.
//!
//! Drivers: open loop and trace, iterate a [`Schedule`] ([`Planned`]: id, intended time,
//! [`RequestShape`]); closed loop, take [`ClosedLoop::spawns`] and feed every answer to
//! [`ClosedLoop::on_complete`] — through [`Users`], which also numbers and shapes each
//! request a user starts. Arrival times come from `(seed, "traffic/arrivals")` and
//! shapes from `(seed, "traffic/shapes")`, so changing the mix never moves an arrival.

pub mod arrivals;
mod mix;
pub mod shard;
mod trace;
pub mod users;

pub use arrivals::{ArrivalKind, Arrivals, RateCurve, Stage};
pub use mix::{EndpointKind, KindSpec, Mix, RequestShape, Tokens};
pub use trace::Trace;
pub use users::{ClosedLoop, ThinkTime, Users};

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
    /// Model of the chat kinds that name none (default: the API's; a gateway that routes
    /// by its own model names, e.g. TensorZero's `tensorzero::function_name::chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Run length (open and closed loop; a trace runs to its last row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Open loop: requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: gap distribution (default poisson).
    #[serde(default)]
    pub arrival: ArrivalKind,
    /// Gamma shape k (default 1 = Poisson; smaller = burstier, CV of gaps = 1/√k). Given
    /// with the default `arrival`, it makes the gaps gamma, as vLLM's `--burstiness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Open loop with stages: the rate at t = 0 (default 0). A stage of duration 0 is a
    /// step to its target.
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
    /// `chaosgate load`'s client settings `timeout`, `grace` and `concurrency`, read only
    /// to be refused with the reason ([`CLIENT_KEYS`]): in a scenario they follow the
    /// gateway, the same way live and in the simulator.
    #[serde(default, rename = "timeout", skip_serializing)]
    pub refused_timeout: Option<toml::Value>,
    /// See `refused_timeout`.
    #[serde(default, rename = "grace", skip_serializing)]
    pub refused_grace: Option<toml::Value>,
    /// See `refused_timeout`.
    #[serde(default, rename = "concurrency", skip_serializing)]
    pub refused_concurrency: Option<toml::Value>,
}

/// Why `[traffic]` does not take `chaosgate load`'s client settings.
pub const CLIENT_KEYS: [(&str, &str); 3] = [
    (
        "timeout",
        "not a [traffic] key: in a scenario the client's whole-request timeout is the gateway's \
         `request_timeout` plus 5 s (so the client never gives up before the gateway does), the same \
         live and simulated; set gateway.request_timeout (--timeout is `chaosgate load`'s)",
    ),
    (
        "grace",
        "not a [traffic] key: in a scenario the wait for in-flight requests after the schedule is the \
         client's timeout (gateway.request_timeout plus 5 s); --grace is `chaosgate load`'s",
    ),
    (
        "concurrency",
        "not a [traffic] key: a scenario's client keeps up to 1000 requests in flight, and the simulator \
         has no cap, so a cap here would make live and simulated runs differ; --concurrency is \
         `chaosgate load`'s",
    ),
];

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

/// Problems of a list of kinds at `base` (`kind` in a mix file, `traffic.kind` inline):
/// each kind's own, and a mix whose weights are all 0.
pub fn mix_problems(kinds: &[KindSpec], base: &crate::diag::Path) -> Vec<crate::diag::Problem> {
    let mut v = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        v.extend(crate::diag::under(&base.index(i), k.problems()));
    }
    if !kinds.is_empty() && kinds.iter().all(|k| k.weight.is_finite() && k.weight <= 0.0) {
        v.push((base.clone(), "every weight is 0: the mix can draw nothing".into()));
    }
    v
}

impl Source {
    /// When the traffic ends: the last planned arrival may come no later (an open loop's
    /// curve length, a trace's last row at its speed, a closed loop's duration).
    pub fn end(&self) -> Nanos {
        match self {
            Source::Open(c, _, _) => crate::time::secs_f64_to_nanos(c.duration_s()),
            Source::Trace(t, s) => t.duration(*s),
            Source::Closed { duration, .. } => *duration,
        }
    }
}

/// A scenario's traffic, resolved once when it loads: the request kinds and their mix,
/// and where arrivals come from. Every run of the scenario (each `--repeat`, sim or live)
/// draws from this one plan; no mix or trace file is read again.
#[derive(Clone, Debug)]
pub struct TrafficPlan {
    /// The kinds, ready to draw from.
    pub mix: Mix,
    /// Open loop, closed loop or trace.
    pub source: Source,
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

/// `k` in `[traffic]`.
fn key(k: &str) -> crate::diag::Path {
    crate::diag::Path::root().key(k)
}

impl TrafficConfig {
    /// Checks the table: exactly one source, sane numbers. Each problem at its key in `[traffic]`.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let mut v = Vec::new();
        self.refused_problems(&mut v);
        self.source_problems(&mut v);
        self.length_problems(&mut v);
        self.shape_problems(&mut v);
        self.loop_problems(&mut v);
        self.kind_problems(&mut v);
        v
    }

    /// `load`'s client keys that `[traffic]` refuses, with the reason.
    fn refused_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        let refused = [&self.refused_timeout, &self.refused_grace, &self.refused_concurrency];
        for ((k, why), given) in CLIENT_KEYS.iter().zip(refused.map(Option::is_some)) {
            if given {
                v.push((key(k), (*why).to_string()));
            }
        }
    }

    /// Not exactly one of rate, stages, users and trace.
    fn source_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        let sources = [
            self.rate.is_some(),
            !self.stages.is_empty(),
            self.users.is_some(),
            self.trace.is_some(),
        ];
        match sources.iter().filter(|&&b| b).count() {
            0 => v.push((
                key("rate"),
                "give one of rate, stages, users (closed loop) or trace".into(),
            )),
            1 => {}
            _ => v.push((key("rate"), "give only one of rate, stages, users or trace".into())),
        }
    }

    /// Rates, lengths and user counts past their limits; an open or closed loop without a
    /// positive duration.
    fn length_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        use crate::diag::limits::{self, MAX_DURATION, MAX_RATE, MAX_RUN, MAX_USERS};
        if let Some(r) = self.rate {
            if let Some(m) = limits::number(r, false, MAX_RATE) {
                v.push((key("rate"), format!("{m} req/s")));
            }
        }
        if let Some(m) = self.duration.and_then(|d| limits::dur_at_most(d, MAX_RUN)) {
            v.push((key("duration"), m));
        }
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(m) = limits::dur_at_most(s.duration, MAX_RUN) {
                v.push((key("stages").index(i).key("duration"), m));
            }
        }
        if let Some(u) = self.users {
            if u > MAX_USERS {
                v.push((key("users"), format!("must be in [1, {MAX_USERS}], got {u}")));
            }
        }
        match self.think_time {
            Some(ThinkTime::Constant { value: d }) | Some(ThinkTime::Pacing { interval: d }) => {
                if let Some(m) = limits::dur_at_most(d, MAX_DURATION) {
                    v.push((key("think_time"), m));
                }
            }
            Some(ThinkTime::Uniform { min, max }) => {
                for d in [min, max] {
                    if let Some(m) = limits::dur_at_most(d, MAX_DURATION) {
                        v.push((key("think_time"), m));
                    }
                }
            }
            None => {}
        }
        if (self.rate.is_some() || self.users.is_some()) && self.duration.is_none_or(|d| d.0 == 0) {
            v.push((key("duration"), "a positive duration is required (e.g. \"30s\")".into()));
        }
    }

    /// The rate curve's shape: burstiness, stage targets, stages that send nothing, and
    /// `start_rate`.
    fn shape_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        use crate::diag::limits::{self, MAX_RATE, MAX_SHAPE};
        if let Some(k) = self.burstiness {
            if let Some(m) = limits::number(k, false, MAX_SHAPE) {
                v.push((key("burstiness"), m));
            }
            if self.arrival == ArrivalKind::Constant {
                v.push((
                    key("burstiness"),
                    "a constant schedule has no burstiness; use arrival = \"gamma\"".into(),
                ));
            }
        }
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(m) = limits::number(s.target, true, MAX_RATE) {
                v.push((key("stages").index(i).key("target"), format!("{m} req/s")));
            }
        }
        if !self.stages.is_empty() {
            let curve = RateCurve::stages(self.start_rate.unwrap_or(0.0), &self.stages);
            if curve.duration_s() <= 0.0 {
                v.push((key("stages"), "the stages add up to no time".into()));
            } else if curve.total() <= 0.0 {
                v.push((
                    key("stages"),
                    "the stages never send a request (every rate is 0)".into(),
                ));
            }
            if self.duration.is_some() {
                v.push((key("duration"), "the stages set the length; remove duration".into()));
            }
        }
        if let Some(r) = self.start_rate {
            if let Some(m) = limits::number(r, true, MAX_RATE) {
                v.push((key("start_rate"), format!("{m} req/s")));
            }
            if self.stages.is_empty() {
                v.push((key("start_rate"), "applies to stages only".into()));
            }
        }
    }

    /// Settings of another loop (closed-loop and trace-replay ones where they do not
    /// apply) and the closed loop's and replay's own numbers.
    fn loop_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        use crate::diag::limits::{self, MAX_RATE};
        let closed_only = [
            ("spawn_rate", self.spawn_rate.is_some()),
            ("think_time", self.think_time.is_some()),
        ];
        for (k, set) in closed_only {
            if set && self.users.is_none() {
                v.push((key(k), "applies to the closed loop only (set users)".into()));
            }
        }
        if let Some(ThinkTime::Uniform { min, max }) = self.think_time {
            if min.0 > max.0 {
                v.push((key("think_time"), format!("min ({min}) is more than max ({max})")));
            }
        }
        if self.speed.is_some() && self.trace.is_none() {
            v.push((key("speed"), "applies to trace replay only (set trace)".into()));
        }
        if self.users == Some(0) {
            v.push((key("users"), "must be ≥ 1".into()));
        }
        if let Some(s) = self.spawn_rate {
            if let Some(m) = limits::number(s, false, MAX_RATE) {
                v.push((key("spawn_rate"), format!("{m} users/s")));
            }
        }
        if let Some(s) = self.speed {
            if let Some(m) = limits::number(s, false, crate::diag::limits::MAX_SHAPE) {
                v.push((key("speed"), m));
            }
        }
    }

    /// A mix file and inline kinds both given; each inline kind's own problems; an empty
    /// default model.
    fn kind_problems(&self, v: &mut Vec<crate::diag::Problem>) {
        if self.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            v.push((
                key("model"),
                "must not be empty (leave it out for the API's default)".into(),
            ));
        }
        if self.mix.is_some() && !self.kinds.is_empty() {
            v.push((
                key("mix"),
                "give a mix file or inline [[traffic.kind]] tables, not both".into(),
            ));
        }
        v.extend(mix_problems(&self.kinds, &key("kind")));
    }

    /// The kinds: from the mix file (relative to `base`), inline, or one default chat kind;
    /// chat kinds that name no model get `model` when it is set.
    pub fn load_kinds(&self, base: &std::path::Path) -> Result<Vec<KindSpec>, crate::diag::ConfigErrors> {
        let mut kinds = self.kinds_as_given(base)?;
        if let Some(m) = &self.model {
            for k in kinds
                .iter_mut()
                .filter(|k| k.model.is_none() && k.endpoint == EndpointKind::Chat)
            {
                k.model = Some(m.clone());
            }
        }
        Ok(kinds)
    }

    /// The kinds as the mix file or `[[traffic.kind]]` give them (or one default chat kind).
    #[allow(clippy::disallowed_methods)] // a loader: the mix file, read once when a scenario or `load --mix` loads
    fn kinds_as_given(&self, base: &std::path::Path) -> Result<Vec<KindSpec>, crate::diag::ConfigErrors> {
        if let Some(p) = &self.mix {
            let path = base.join(p);
            let text = crate::diag::read_config(&path)?;
            let file = path.display().to_string();
            let doc: toml_edit::DocumentMut = text
                .parse()
                .map_err(|e| crate::diag::ConfigErrors::syntax(&text, &file, &e))?;
            let (mf, mut problems) = crate::diag::deserialize_all::<MixFile>(&doc);
            if let Some(mf) = &mf {
                if mf.kinds.is_empty() {
                    problems.push((
                        crate::diag::Path::root().key("kind"),
                        "a mix needs at least one [[kind]]".into(),
                    ));
                }
                problems.extend(mix_problems(&mf.kinds, &crate::diag::Path::root().key("kind")));
            }
            crate::diag::ConfigErrors::check(&text, &file, problems)?;
            return Ok(mf.expect("no problems means it parsed").kinds);
        }
        if !self.kinds.is_empty() {
            return Ok(self.kinds.clone());
        }
        Ok(vec![KindSpec::chat("chat", false)])
    }

    /// The whole plan (call after `problems()` came back empty): the mix file and the
    /// trace read once, the trace's kinds checked against the mix. A scenario resolves the
    /// same steps one by one, to report each at its key.
    pub fn plan(&self, base: &std::path::Path, api: Api) -> anyhow::Result<TrafficPlan> {
        let mix = Mix::new(self.load_kinds(base)?, api).map_err(anyhow::Error::msg)?;
        let trace = self.read_trace(base)?;
        if let (Some(t), Some(p)) = (&trace, &self.trace) {
            t.check_kinds(&mix, &base.join(p).display().to_string())?;
        }
        Ok(TrafficPlan {
            mix,
            source: self.source_with(trace),
        })
    }

    /// The trace file (relative to `base`), read and parsed, if there is one.
    pub fn read_trace(&self, base: &std::path::Path) -> Result<Option<Trace>, crate::diag::ConfigErrors> {
        self.trace.as_ref().map(|p| Trace::load(&base.join(p))).transpose()
    }

    /// The source (call after `problems()` came back empty), reading the trace file.
    pub fn source(&self, base: &std::path::Path) -> Result<Source, crate::diag::ConfigErrors> {
        Ok(self.source_with(self.read_trace(base)?))
    }

    /// The source, with the trace already read ([`Self::read_trace`]).
    pub fn source_with(&self, trace: Option<Trace>) -> Source {
        if let Some(t) = trace {
            return Source::Trace(t, self.speed.unwrap_or(1.0));
        }
        let duration = self.duration.unwrap_or_default().0;
        if let Some(users) = self.users {
            return Source::Closed {
                users,
                spawn_rate: self.spawn_rate.unwrap_or(f64::from(users) * 1e9),
                think: self.think_time.unwrap_or_default(),
                duration,
            };
        }
        let curve = match self.rate {
            Some(r) => RateCurve::constant(r, duration as f64 / 1e9),
            None => RateCurve::stages(self.start_rate.unwrap_or(0.0), &self.stages),
        };
        // As vLLM's --burstiness: giving a burstiness makes the gaps gamma (k = 1 is Poisson).
        let arrival = match (self.arrival, self.burstiness) {
            (ArrivalKind::Poisson, Some(_)) => ArrivalKind::Gamma,
            (a, _) => a,
        };
        Source::Open(curve, arrival, self.burstiness.unwrap_or(1.0))
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

impl Schedule {
    /// The next planned request written into `out` (a driver's reused slot), without
    /// moving a whole [`Planned`] through a return value; `false` (and `out` untouched)
    /// when the schedule is over. The same requests as [`Iterator::next`].
    #[inline]
    pub fn next_into(&mut self, out: &mut Planned) -> bool {
        match &mut self.inner {
            ScheduleInner::Open(a) => {
                let Some(at) = a.next() else {
                    return false;
                };
                out.at = at;
                self.mix.draw_into(&mut self.shapes, &mut out.shape);
            }
            ScheduleInner::Trace(..) => {
                let Some((at, shape)) = self.next_parts() else {
                    return false;
                };
                out.at = at;
                out.shape = shape;
            }
        }
        out.id = self.next_id;
        self.next_id += 1;
        true
    }

    #[inline]
    fn next_parts(&mut self) -> Option<(Nanos, RequestShape)> {
        Some(match &mut self.inner {
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
        })
    }
}

impl Iterator for Schedule {
    type Item = Planned;
    #[inline]
    fn next(&mut self) -> Option<Planned> {
        let (at, shape) = self.next_parts()?;
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
        assert!(c.problems().iter().any(|(k, _)| k.to_string() == "duration"));
        let e = toml::from_str::<TrafficConfig>("rat = 10.0\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `rat`"), "{e}");
    }

    /// `traffic.model` names the model of every chat kind that names none (inline, from a
    /// mix file, or the default kind); embeddings kinds and kinds with their own keep theirs.
    #[test]
    fn traffic_model_is_the_default_of_chat_kinds_without_one() {
        let dot = std::path::Path::new(".");
        let c: TrafficConfig = toml::from_str("rate = 1.0\nduration = \"1s\"\nmodel = \"tz::chat\"\n").unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let k = c.load_kinds(dot).unwrap();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].model.as_deref(), Some("tz::chat"));
        let c: TrafficConfig = toml::from_str(
            "rate = 1.0\nduration = \"1s\"\nmodel = \"tz::chat\"\n\
             [[kind]]\nname = \"plain\"\n\
             [[kind]]\nname = \"own\"\nmodel = \"gpt-x\"\n\
             [[kind]]\nname = \"emb\"\nendpoint = \"embeddings\"\n",
        )
        .unwrap();
        let models: Vec<Option<String>> = c.load_kinds(dot).unwrap().into_iter().map(|k| k.model).collect();
        assert_eq!(models, [Some("tz::chat".into()), Some("gpt-x".into()), None]);
        let mix = Mix::new(c.load_kinds(dot).unwrap(), Api::OpenAi).unwrap();
        assert_eq!(mix.kinds()[0].model.as_deref(), Some("tz::chat"));
        // without it nothing changes
        let c: TrafficConfig = toml::from_str("rate = 1.0\nduration = \"1s\"\n").unwrap();
        assert_eq!(c.load_kinds(dot).unwrap()[0].model, None);
        // an empty one is refused at its key
        let c: TrafficConfig = toml::from_str("rate = 1.0\nduration = \"1s\"\nmodel = \" \"\n").unwrap();
        assert!(
            c.problems()
                .iter()
                .any(|(k, m)| k.to_string() == "model" && m.contains("empty")),
            "{:?}",
            c.problems()
        );
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

    /// `next_into` (the simulator's, into a reused slot) plans exactly what `next` does:
    /// open loop with a weighted mix of kinds, and a trace whose rows override fields.
    #[test]
    fn next_into_plans_what_next_plans() {
        let c: TrafficConfig = toml::from_str(
            "rate = 50.0\nduration = \"60s\"\n\
             [[kind]]\nname = \"chat\"\nweight = 3.0\nstream = true\nmax_tokens = { min = 10, max = 90 }\n\
             [[kind]]\nname = \"emb\"\nendpoint = \"embeddings\"\nprompt_tokens = { mean = 40.0, sd = 9.0 }\n",
        )
        .unwrap();
        let mix = Mix::new(c.load_kinds(std::path::Path::new(".")).unwrap(), Api::OpenAi).unwrap();
        let trace = Trace::parse(
            "{\"offset_ms\": 5, \"kind\": \"emb\"}\n{\"offset_ms\": 9, \"model\": \"m\", \"max_tokens\": 7}\n{\"offset_ms\": 12}\n",
            "t.jsonl",
        )
        .unwrap();
        let open = c.source(std::path::Path::new(".")).unwrap();
        for src in [open, Source::Trace(trace, 2.0)] {
            let want: Vec<Planned> = Schedule::new(&src, mix.clone(), 5).unwrap().collect();
            let mut s = Schedule::new(&src, mix.clone(), 5).unwrap();
            // a slot left by some other request: every field must be overwritten
            let mut slot = Planned {
                id: 999,
                at: 7,
                shape: RequestShape {
                    kind: 99,
                    api: Api::Anthropic,
                    endpoint: EndpointKind::Embeddings,
                    stream: true,
                    model: Some("left over".into()),
                    prompt_tokens: 0,
                    max_tokens: 0,
                    inputs: 0,
                },
            };
            let mut got = Vec::new();
            while s.next_into(&mut slot) {
                got.push(slot.clone());
            }
            assert!(want.len() >= 3, "{}", want.len());
            assert!(want.iter().any(|p| p.shape.kind == 1) && want.iter().any(|p| p.shape.kind == 0));
            assert_eq!(got, want);
        }
    }

    fn problems_of(toml_text: &str) -> Vec<(String, String)> {
        let p = toml::from_str::<TrafficConfig>(toml_text).unwrap().problems();
        p.into_iter().map(|(k, m)| (k.to_string(), m)).collect()
    }

    #[test]
    fn settings_of_another_loop_are_flagged_not_ignored() {
        let p = problems_of("rate = 5.0\nduration = \"1s\"\nspawn_rate = 2.0\nspeed = 2.0\nstart_rate = 1.0\n");
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["start_rate", "spawn_rate", "speed"], "{p:?}");
        let p = problems_of("rate = 5.0\nduration = \"1s\"\narrival = \"constant\"\nburstiness = 0.5\n");
        assert!(p.iter().any(|(k, m)| k == "burstiness" && m.contains("gamma")), "{p:?}");
        let p = problems_of(
            "users = 2\nduration = \"1s\"\nthink_time = { kind = \"uniform\", min = \"2s\", max = \"1s\" }\n",
        );
        assert!(p.iter().any(|(k, _)| k == "think_time"), "{p:?}");
        let p = problems_of("duration = \"1s\"\n[[stages]]\nduration = \"10s\"\ntarget = 0.0\n");
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["stages", "duration"], "{p:?}");
    }

    #[test]
    fn article_stages_from_toml() {
        let c: TrafficConfig = toml::from_str(
            "[[stages]]\nduration = \"5m\"\ntarget = 200.0\n[[stages]]\nduration = \"30m\"\ntarget = 200.0\n",
        )
        .unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let Source::Open(curve, kind, _) = c.source(std::path::Path::new(".")).unwrap() else {
            panic!("open loop expected")
        };
        assert_eq!(
            (curve.duration_s(), curve.total(), kind),
            (2_100.0, 390_000.0, ArrivalKind::Poisson)
        );
    }

    #[test]
    fn burstiness_alone_means_gamma_like_vllm() {
        let c: TrafficConfig = toml::from_str("rate = 50.0\nduration = \"60s\"\nburstiness = 0.25\n").unwrap();
        assert!(c.problems().is_empty());
        let src = c.source(std::path::Path::new(".")).unwrap();
        assert!(matches!(src, Source::Open(_, ArrivalKind::Gamma, k) if k == 0.25));
        let mix = Mix::new(vec![KindSpec::chat("c", false)], Api::OpenAi).unwrap();
        let at: Vec<f64> = Schedule::new(&src, mix, 1)
            .unwrap()
            .map(|p| p.at as f64 / 1e9)
            .collect();
        let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let m = arrivals::mean(&gaps);
        let cv = (gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt() / m;
        assert!((cv - 2.0).abs() < 0.25, "cv {cv}"); // 1/√0.25
    }

    #[test]
    fn arrivals_and_shapes_have_separate_streams() {
        // changing the mix must not move a single arrival time
        let c: TrafficConfig = toml::from_str("rate = 20.0\nduration = \"30s\"\n").unwrap();
        let src = c.source(std::path::Path::new(".")).unwrap();
        let one = Mix::new(vec![KindSpec::chat("c", false)], Api::OpenAi).unwrap();
        let two = Mix::new(vec![KindSpec::chat("a", true), KindSpec::chat("b", false)], Api::OpenAi).unwrap();
        let times = |m: Mix| Schedule::new(&src, m, 5).unwrap().map(|p| p.at).collect::<Vec<_>>();
        assert_eq!(times(one), times(two));
    }
}
