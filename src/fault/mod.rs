//! The provider fault model: pure, deterministic, sans-IO.
//!
//! A [`Plan`] is built from a [`Profile`] and a seed. For each request the driver (the
//! live mock server or the simulator) calls [`Plan::decide`] with `now` and the request's
//! facts; the plan answers with a [`Verdict`] — what to send and when. The plan never
//! reads a clock or a global RNG: its randomness comes from streams labelled
//! `"{label}/requests"`, `"{label}/health"`, `"{label}/phase/{name}"` and
//! `"{label}/throughput/…"`, so the same seed and the same request order give the same
//! verdicts (`ARCHITECTURE.md`, "Determinism"), and health probes never shift the draws
//! of completions.
//!
//! How phases compose is documented on [`profile`].

pub mod forced;
pub mod latency;
pub mod profile;
pub mod ratelimit;
pub mod throughput;
pub mod timeline;

pub use forced::Forced;
pub use latency::{Latency, Sampler};
pub use profile::{ConnectionKind, Profile, Scope, Section, StreamKind};
pub use throughput::Throughput;

use crate::provider::{ErrorKind, RateLimitSnapshot};
use crate::rng::{stream, Stream};
use crate::time::{Nanos, NS_PER_S};
use rand::Rng;
use ratelimit::{Admit, Buckets};
use throughput::Curve;
use timeline::Timeline;

/// Which endpoint a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Chat completions / messages.
    Chat,
    /// Embeddings.
    Embeddings,
    /// `GET /health`.
    Health,
    /// `GET /v1/models` (never faulted).
    Models,
}

/// What the plan needs to know about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    /// Endpoint.
    pub endpoint: Endpoint,
    /// Streamed (SSE) or not.
    pub stream: bool,
    /// Prompt tokens (estimated).
    pub input_tokens: u32,
    /// The request's max_tokens, if any.
    pub max_tokens: Option<u32>,
}

impl RequestFacts {
    /// A health probe.
    pub fn health() -> RequestFacts {
        RequestFacts {
            endpoint: Endpoint::Health,
            stream: false,
            input_tokens: 0,
            max_tokens: None,
        }
    }
}

/// Output tokens when neither the profile nor the request says.
pub const DEFAULT_OUTPUT_TOKENS: u32 = 64;

/// A stream fault decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFault {
    /// What happens.
    pub kind: StreamKind,
    /// Content tokens sent first.
    pub after_tokens: u32,
    /// Error kind for in-band errors.
    pub error: ErrorKind,
    /// Gap between keep-alive pings for `ping_stall`.
    pub ping_every: Nanos,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorVerdict {
    /// Delay before sending.
    pub after: Nanos,
    /// HTTP status.
    pub status: u16,
    /// Error variant (selects the envelope's type/code).
    pub kind: ErrorKind,
    /// `retry-after`, if sent.
    pub retry_after: Option<Nanos>,
    /// Message override.
    pub message: Option<String>,
    /// Rate-limit headers, if limits are configured.
    pub rate_limit: Option<RateLimitSnapshot>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Success {
    /// Non-streamed: delay before the whole response. Streamed: time to the first content token.
    pub first: Nanos,
    /// Streamed: gap between consecutive tokens (0 = unpaced).
    pub token_interval: Nanos,
    /// Output tokens to generate.
    pub output_tokens: u32,
    /// A stream fault, if one fired.
    pub stream_fault: Option<StreamFault>,
    /// Trickle the body at this many bytes per second.
    pub slow_body_bytes_per_s: Option<u32>,
    /// Rate-limit headers, if limits are configured.
    pub rate_limit: Option<RateLimitSnapshot>,
}

impl Success {
    /// When the last byte would be sent, from the start of the request (no faults).
    pub fn service_time(&self, stream: bool) -> Nanos {
        if stream {
            self.first.saturating_add(
                self.token_interval
                    .saturating_mul(u64::from(self.output_tokens.saturating_sub(1))),
            )
        } else {
            self.first
        }
    }
}

/// What to do with one request. Provider answers such as 503 are data here, not `Err`.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Close the connection before any response bytes, after a delay.
    Reset {
        /// Delay before the reset.
        after: Nanos,
    },
    /// Never answer; the client's timeout decides.
    Hang,
    /// 200 headers after a delay, then nothing.
    HeadersThenSilence {
        /// Delay before the headers.
        after: Nanos,
    },
    /// A provider-shaped error.
    Error(ErrorVerdict),
    /// A normal answer (possibly with a stream fault).
    Ok(Success),
}

/// What decided a verdict (for logs and the admin API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// No fault fired.
    None,
    /// A baseline rule.
    Baseline,
    /// A phase's rule (index into the plan's phases).
    Phase(usize),
    /// The rate-limit buckets.
    RateLimit,
    /// The `x-chaosgate-fault` header.
    Forced,
}

/// A verdict and its cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Why.
    pub cause: Cause,
}

/// A section's latency settings, ready to sample.
#[derive(Clone, Debug)]
struct Samplers {
    ttft: Option<Sampler>,
    latency: Option<Sampler>,
    embedding_latency: Option<Sampler>,
}

impl Samplers {
    fn of(s: &Section) -> Samplers {
        Samplers {
            ttft: s.ttft.as_ref().map(Latency::sampler),
            latency: s.latency.as_ref().map(Latency::sampler),
            embedding_latency: s.embedding_latency.as_ref().map(Latency::sampler),
        }
    }
}

/// One phase as the plan runs it.
#[derive(Clone, Debug)]
struct PhaseState {
    spec: Section,
    samplers: Samplers,
    label: String,
    timeline: Timeline,
    curve: Option<Curve>,
}

/// Active phase and intensity, as reported by [`Plan::status`].
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseStatus {
    /// Index in the plan.
    pub index: usize,
    /// Name or `phase[i]`.
    pub name: String,
    /// Intensity now (0 = inactive).
    pub intensity: f64,
    /// Window start.
    pub start: Nanos,
    /// Window end (`None` = open-ended).
    pub end: Option<Nanos>,
    /// Scope.
    pub applies_to: Scope,
}

/// One interval during which a phase was on: the ground-truth `FaultEvent`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FaultWindow {
    /// Phase name or `phase[i]`.
    pub phase: String,
    /// Onset.
    pub start: Nanos,
    /// End (exclusive).
    pub end: Nanos,
    /// The phase applies to user requests (`applies_to` includes completions), not only
    /// to health probes.
    pub completions: bool,
}

/// The running fault model of one provider.
#[derive(Clone, Debug)]
pub struct Plan {
    seed: u64,
    label: String,
    baseline: Section,
    base_samplers: Samplers,
    base_curve: Option<Curve>,
    phases: Vec<PhaseState>,
    rng_requests: Stream,
    rng_health: Stream,
    buckets: Buckets,
    /// Scratch: active phases `(index, intensity)`, reused to avoid allocation.
    active: Vec<(usize, f64)>,
}

fn sample_opt(l: &Option<Latency>, rng: &mut Stream) -> Option<Nanos> {
    l.as_ref().map(|l| l.sample(rng))
}

fn sample_s(l: &Option<Sampler>, rng: &mut Stream) -> Option<Nanos> {
    l.as_ref().map(|l| l.sample(rng))
}

fn lerp(base: Nanos, over: Nanos, k: f64) -> Nanos {
    if k >= 1.0 {
        over
    } else {
        crate::time::round_to_nanos(base as f64 + k * (over as f64 - base as f64))
    }
}

fn scale(n: Nanos, m: f64) -> Nanos {
    if m == 1.0 {
        n
    } else {
        crate::time::secs_f64_to_nanos(n as f64 * m / NS_PER_S as f64)
    }
}

impl Plan {
    /// Builds the plan of one provider. `label` names its streams (e.g. `"provider/primary"`).
    pub fn new(profile: &Profile, seed: u64, label: &str) -> Plan {
        let base_curve = profile
            .baseline
            .tokens_per_s
            .clone()
            .map(|t| Curve::new(t, stream(seed, &format!("{label}/throughput/baseline"))));
        let mut plan = Plan {
            seed,
            label: label.to_string(),
            baseline: profile.baseline.clone(),
            base_samplers: Samplers::of(&profile.baseline),
            base_curve,
            phases: Vec::new(),
            rng_requests: stream(seed, &format!("{label}/requests")),
            rng_health: stream(seed, &format!("{label}/health")),
            buckets: Buckets::default(),
            active: Vec::new(),
        };
        for (i, p) in profile.phases.iter().enumerate() {
            plan.phases.push(plan.phase_state(p.clone(), i, 0));
        }
        plan
    }

    fn phase_state(&self, spec: Section, index: usize, offset: Nanos) -> PhaseState {
        let label = spec.label(index);
        let mut w = spec.window();
        w.start = w.start.saturating_add(offset);
        let timeline = Timeline::new(w, stream(self.seed, &format!("{}/phase/{label}", self.label)));
        let curve = spec.tokens_per_s.clone().map(|t| {
            Curve::new(
                t,
                stream(self.seed, &format!("{}/throughput/phase/{label}", self.label)),
            )
        });
        PhaseState {
            samplers: Samplers::of(&spec),
            spec,
            label,
            timeline,
            curve,
        }
    }

    /// Adds a phase at runtime, its `start` counted from `now` (effective from the next
    /// request). A phase with the same name is replaced. Returns the phase's index.
    pub fn upsert_phase(&mut self, spec: Section, now: Nanos) -> usize {
        let existing = spec
            .name
            .as_ref()
            .and_then(|n| self.phases.iter().position(|p| p.spec.name.as_ref() == Some(n)));
        let index = existing.unwrap_or(self.phases.len());
        let st = self.phase_state(spec, index, now);
        match existing {
            Some(i) => self.phases[i] = st,
            None => self.phases.push(st),
        }
        index
    }

    /// Removes the named phase; returns whether it existed.
    pub fn remove_phase(&mut self, name: &str) -> bool {
        let before = self.phases.len();
        self.phases.retain(|p| p.spec.name.as_deref() != Some(name));
        before != self.phases.len()
    }

    /// The name (or `phase[i]`) of phase `i`.
    pub fn phase_name(&self, i: usize) -> Option<String> {
        self.phases.get(i).map(|p| p.label.clone())
    }

    /// The phases with their intensity at `now`.
    pub fn status(&mut self, now: Nanos) -> Vec<PhaseStatus> {
        self.phases
            .iter_mut()
            .enumerate()
            .map(|(index, p)| {
                let w = p.timeline.window().clone();
                PhaseStatus {
                    index,
                    name: p.label.clone(),
                    intensity: p.timeline.intensity(now),
                    start: w.start,
                    end: w.duration.map(|_| w.end()),
                    applies_to: p.spec.scope(),
                }
            })
            .collect()
    }

    /// Rate-limit state at `now`, if limits are configured.
    pub fn rate_limit_state(&mut self, now: Nanos) -> Option<RateLimitSnapshot> {
        self.buckets.peek(now)
    }

    /// Ground truth: every interval a phase is on, up to `horizon`, sorted by start.
    pub fn fault_windows(&mut self, horizon: Nanos) -> Vec<FaultWindow> {
        let mut v: Vec<FaultWindow> = self
            .phases
            .iter_mut()
            .flat_map(|p| {
                let name = p.label.clone();
                let completions = p.spec.scope().completions();
                p.timeline
                    .on_intervals(horizon)
                    .into_iter()
                    .map(move |(start, end)| FaultWindow {
                        phase: name.clone(),
                        start,
                        end,
                        completions,
                    })
            })
            .collect();
        v.sort_by(|a, b| (a.start, a.end, &a.phase).cmp(&(b.start, b.end, &b.phase)));
        v
    }

    fn collect_active(&mut self, now: Nanos, health: bool) {
        self.active.clear();
        for (i, p) in self.phases.iter_mut().enumerate() {
            let scope = p.spec.scope();
            if (health && !scope.health()) || (!health && !scope.completions()) {
                continue;
            }
            let k = p.timeline.intensity(now);
            if k > 0.0 {
                self.active.push((i, k));
            }
        }
    }

    /// Decides what happens to one request arriving at `now`.
    pub fn decide(&mut self, now: Nanos, facts: &RequestFacts, forced: Option<&Forced>) -> Decision {
        match facts.endpoint {
            Endpoint::Models => {
                return Decision {
                    verdict: Verdict::Ok(self.plain_success(0, 0)),
                    cause: Cause::None,
                };
            }
            Endpoint::Health if forced.is_none() => return self.decide_health(now),
            _ => {}
        }
        self.collect_active(now, false);
        if let Some(f) = forced {
            return self.decide_forced(now, facts, f);
        }
        let mut slow_body = None;
        // 1. connection faults
        let mut conn: Option<(ConnectionKind, Option<u32>, Nanos, Cause)> = None;
        'conn: for (src, k) in std::iter::once((None, 1.0)).chain(self.active.iter().map(|&(i, k)| (Some(i), k))) {
            let rules = match src {
                None => &self.baseline.connection,
                Some(i) => &self.phases[i].spec.connection,
            };
            for r in rules {
                if self.rng_requests.random::<f64>() < r.probability * k {
                    let cause = src.map_or(Cause::Baseline, Cause::Phase);
                    conn = Some((r.kind, r.bytes_per_s, r.after.unwrap_or_default().0, cause));
                    break 'conn;
                }
            }
        }
        let mut cause = Cause::None;
        if let Some((kind, bps, after, c)) = conn {
            match kind {
                ConnectionKind::Reset => {
                    return Decision {
                        verdict: Verdict::Reset { after },
                        cause: c,
                    }
                }
                ConnectionKind::Hang => {
                    return Decision {
                        verdict: Verdict::Hang,
                        cause: c,
                    }
                }
                ConnectionKind::HeadersThenSilence => {
                    return Decision {
                        verdict: Verdict::HeadersThenSilence { after },
                        cause: c,
                    }
                }
                ConnectionKind::SlowBody => {
                    slow_body = Some(bps.unwrap_or(100));
                    cause = c;
                }
            }
        }
        // 2. rate limits (last active phase that sets them, else the baseline)
        let limits = self
            .active
            .iter()
            .rev()
            .find_map(|&(i, _)| self.phases[i].spec.rate_limit)
            .or(self.baseline.rate_limit);
        self.buckets.configure(limits, now);
        let out_guess = facts.max_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS);
        let mut snapshot = None;
        match self
            .buckets
            .take(now, u64::from(facts.input_tokens) + u64::from(out_guess))
        {
            Some(Admit::Limited(s, wait)) => {
                return Decision {
                    verdict: Verdict::Error(ErrorVerdict {
                        after: 0,
                        status: 429,
                        kind: ErrorKind::RateLimit,
                        retry_after: Some(wait),
                        message: None,
                        rate_limit: Some(s),
                    }),
                    cause: Cause::RateLimit,
                }
            }
            Some(Admit::Allowed(s)) => snapshot = Some(s),
            None => {}
        }
        // 3. error rules
        for (src, k) in std::iter::once((None, 1.0)).chain(self.active.iter().map(|&(i, k)| (Some(i), k))) {
            let rules = match src {
                None => &self.baseline.errors,
                Some(i) => &self.phases[i].spec.errors,
            };
            for r in rules {
                if self.rng_requests.random::<f64>() < r.probability * k {
                    let kind = r.kind.unwrap_or_else(|| ErrorKind::from_status(r.status));
                    let retry_after = r.retry_after.map(|d| d.0).or(if kind == ErrorKind::RateLimit {
                        Some(NS_PER_S)
                    } else {
                        None
                    });
                    return Decision {
                        verdict: Verdict::Error(ErrorVerdict {
                            after: r.after.unwrap_or_default().0,
                            status: r.status,
                            kind,
                            retry_after,
                            message: r.message.clone(),
                            rate_limit: snapshot,
                        }),
                        cause: src.map_or(Cause::Baseline, Cause::Phase),
                    };
                }
            }
        }
        // 4. success, maybe with a stream fault
        let mut s = self.timing(now, facts);
        s.rate_limit = snapshot;
        s.slow_body_bytes_per_s = slow_body;
        if facts.stream && facts.endpoint == Endpoint::Chat {
            'stream: for (src, k) in std::iter::once((None, 1.0)).chain(self.active.iter().map(|&(i, k)| (Some(i), k)))
            {
                let rules = match src {
                    None => &self.baseline.stream,
                    Some(i) => &self.phases[i].spec.stream,
                };
                for r in rules {
                    if self.rng_requests.random::<f64>() < r.probability * k {
                        s.stream_fault = Some(StreamFault {
                            kind: r.kind,
                            after_tokens: r.after_tokens,
                            error: r.error.unwrap_or(ErrorKind::Overloaded),
                            ping_every: r.ping_every.map_or(NS_PER_S, |d| d.0),
                        });
                        cause = src.map_or(Cause::Baseline, Cause::Phase);
                        break 'stream;
                    }
                }
            }
        }
        Decision {
            verdict: Verdict::Ok(s),
            cause,
        }
    }

    fn plain_success(&self, first: Nanos, output_tokens: u32) -> Success {
        Success {
            first,
            token_interval: 0,
            output_tokens,
            stream_fault: None,
            slow_body_bytes_per_s: None,
            rate_limit: None,
        }
    }

    /// Latency, TTFT, pacing and length of a success, from the baseline and active phases.
    fn timing(&mut self, now: Nanos, facts: &RequestFacts) -> Success {
        let rng = &mut self.rng_requests;
        let mut mult = 1.0;
        for &(i, k) in &self.active {
            if let Some(m) = self.phases[i].spec.latency_multiplier {
                mult *= 1.0 + k * (m - 1.0);
            }
        }
        if facts.endpoint == Endpoint::Embeddings {
            let mut first = sample_s(&self.base_samplers.embedding_latency, rng).unwrap_or(0);
            if let Some((i, k)) = self
                .active
                .iter()
                .rev()
                .find(|&&(i, _)| self.phases[i].spec.embedding_latency.is_some())
            {
                let over = sample_s(&self.phases[*i].samplers.embedding_latency, rng).unwrap_or(0);
                first = lerp(first, over, *k);
            }
            return self.plain_success(scale(first, mult), 0);
        }
        // output length
        let range = self
            .active
            .iter()
            .rev()
            .find_map(|&(i, _)| self.phases[i].spec.output_tokens)
            .or(self.baseline.output_tokens);
        let cap = facts.max_tokens.unwrap_or(u32::MAX);
        let n = match range {
            Some(r) => rng.random_range(r.min..=r.max).min(cap),
            None => facts.max_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS),
        }
        .max(1);
        // a setting: the last active phase that sets it, interpolated by its intensity
        macro_rules! setting {
            ($field:ident) => {{
                let base = sample_s(&self.base_samplers.$field, rng);
                match self
                    .active
                    .iter()
                    .rev()
                    .find(|&&(i, _)| self.phases[i].spec.$field.is_some())
                {
                    Some(&(i, k)) => {
                        let over = sample_s(&self.phases[i].samplers.$field, rng).unwrap_or(0);
                        Some(lerp(base.unwrap_or(0), over, k))
                    }
                    None => base,
                }
            }};
        }
        let ttft = setting!(ttft).unwrap_or(0);
        let latency = setting!(latency);
        // pacing
        let base_rate = self.base_curve.as_mut().map(|c| c.rate_at(now));
        let phase_rate = match self.active.iter().rev().find(|&&(i, _)| self.phases[i].curve.is_some()) {
            Some(&(i, k)) => {
                let r = self.phases[i].curve.as_mut().map(|c| c.rate_at(now)).unwrap_or(0.0);
                Some(match base_rate {
                    Some(b) if k < 1.0 => b + k * (r - b),
                    _ => r,
                })
            }
            None => base_rate,
        };
        let interval = match phase_rate {
            Some(r) if r > 0.0 && r.is_finite() => crate::time::round_to_nanos(NS_PER_S as f64 / r),
            _ => 0,
        };
        let interval = scale(interval, mult);
        let ttft = scale(ttft, mult);
        let first = if facts.stream {
            ttft
        } else {
            match latency {
                Some(l) => scale(l, mult),
                None => ttft.saturating_add(interval.saturating_mul(u64::from(n))),
            }
        };
        Success {
            first,
            token_interval: interval,
            output_tokens: n,
            stream_fault: None,
            slow_body_bytes_per_s: None,
            rate_limit: None,
        }
    }

    fn decide_health(&mut self, now: Nanos) -> Decision {
        self.collect_active(now, true);
        let rng = &mut self.rng_health;
        let mut rule = self.baseline.health.clone().unwrap_or_default();
        let mut cause = Cause::None;
        for &(i, k) in &self.active {
            let spec = &self.phases[i].spec;
            if let Some(h) = &spec.health {
                if rng.random::<f64>() < h.probability * k {
                    rule = h.clone();
                    cause = Cause::Phase(i);
                }
                continue;
            }
            for r in &spec.connection {
                if rng.random::<f64>() < r.probability * k {
                    let after = r.after.unwrap_or_default().0;
                    let verdict = match r.kind {
                        ConnectionKind::Reset => Verdict::Reset { after },
                        ConnectionKind::Hang => Verdict::Hang,
                        ConnectionKind::HeadersThenSilence => Verdict::HeadersThenSilence { after },
                        ConnectionKind::SlowBody => continue,
                    };
                    return Decision {
                        verdict,
                        cause: Cause::Phase(i),
                    };
                }
            }
            for r in &spec.errors {
                if rng.random::<f64>() < r.probability * k {
                    return Decision {
                        verdict: Verdict::Error(ErrorVerdict {
                            after: r.after.unwrap_or_default().0,
                            status: r.status,
                            kind: r.kind.unwrap_or_else(|| ErrorKind::from_status(r.status)),
                            retry_after: r.retry_after.map(|d| d.0),
                            message: r.message.clone(),
                            rate_limit: None,
                        }),
                        cause: Cause::Phase(i),
                    };
                }
            }
        }
        if rule.hang {
            return Decision {
                verdict: Verdict::Hang,
                cause,
            };
        }
        let after = sample_opt(&rule.latency, rng).unwrap_or(0);
        let verdict = if rule.status >= 400 {
            Verdict::Error(ErrorVerdict {
                after,
                status: rule.status,
                kind: ErrorKind::from_status(rule.status),
                retry_after: None,
                message: None,
                rate_limit: None,
            })
        } else {
            Verdict::Ok(self.plain_success(after, 0))
        };
        Decision { verdict, cause }
    }

    fn decide_forced(&mut self, now: Nanos, facts: &RequestFacts, f: &Forced) -> Decision {
        let cause = Cause::Forced;
        let after = f.delay;
        if let Some(c) = f.connection {
            let verdict = match c {
                ConnectionKind::Reset => Some(Verdict::Reset { after }),
                ConnectionKind::Hang => Some(Verdict::Hang),
                ConnectionKind::HeadersThenSilence => Some(Verdict::HeadersThenSilence { after }),
                ConnectionKind::SlowBody => None,
            };
            if let Some(verdict) = verdict {
                return Decision { verdict, cause };
            }
        }
        if let Some(status) = f.status {
            let kind = f.kind.unwrap_or_else(|| ErrorKind::from_status(status));
            let retry_after = f.retry_after.or(if kind == ErrorKind::RateLimit {
                Some(NS_PER_S)
            } else {
                None
            });
            return Decision {
                verdict: Verdict::Error(ErrorVerdict {
                    after,
                    status,
                    kind,
                    retry_after,
                    message: None,
                    rate_limit: None,
                }),
                cause,
            };
        }
        let mut s = if facts.endpoint == Endpoint::Health {
            self.plain_success(0, 0)
        } else {
            self.timing(now, facts)
        };
        s.first = s.first.saturating_add(after);
        s.slow_body_bytes_per_s = f.bytes_per_s;
        if let Some((kind, n)) = f.stream {
            s.stream_fault = Some(StreamFault {
                kind,
                after_tokens: n,
                error: ErrorKind::Overloaded,
                ping_every: NS_PER_S,
            });
        }
        Decision {
            verdict: Verdict::Ok(s),
            cause,
        }
    }
}

#[cfg(test)]
mod tests;
