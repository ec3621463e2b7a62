//! The provider fault model: pure, deterministic, sans-IO.
//!
//! A [`Plan`] is built from a [`Profile`] and a seed. For each request the driver (the
//! live mock server or the simulator) calls [`Plan::decide`] with `now` and the request's
//! facts; the plan answers with a [`Verdict`] — what to send and when. The plan never
//! reads a clock or a global RNG: its randomness comes from streams labelled
//! `"{label}/requests"`, `"{label}/health"`, `"{label}/phase/{name}"` and
//! `"{label}/throughput/…"`, so the same seed and the same request order give the same
//! verdicts (`docs/architecture.md`, "Determinism"), and health probes never shift the draws
//! of completions.
//!
//! How phases compose is documented on [`profile`].

pub mod forced;
pub mod latency;
pub mod profile;
mod ratelimit;
pub mod throughput;
mod timeline;
pub mod wire;

pub use forced::Forced;
pub use latency::{Latency, Sampler};
pub use profile::{ConnectionKind, Envelope, Profile, Scope, Section, StreamKind};
pub use throughput::Throughput;

use crate::provider::{ErrorKind, RateLimitSnapshot};
use crate::rng::{stream, Stream};
use crate::time::{Nanos, NS_PER_S};
use profile::TokenRange;
use rand::Rng;
use ratelimit::{Admit, Buckets, RateLimit};
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
    /// A chat completion / message as parsed.
    pub fn chat(c: &crate::provider::ChatRequest) -> RequestFacts {
        RequestFacts {
            endpoint: Endpoint::Chat,
            stream: c.stream,
            input_tokens: c.input_tokens,
            max_tokens: c.max_tokens,
        }
    }

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
    /// What the answer looks like besides its status (with `bare` and `html`,
    /// `retry_after` and `rate_limit` are `None`: no such headers are sent).
    pub envelope: Envelope,
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

/// A short label of a verdict for logs, metrics and the `ArrivalRecord` stream: `ok`,
/// `ok:slow_body`, `error:<status>`, `reset`, `hang`, `headers_then_silence`,
/// `stream:cut`, `stream:error`, `stream:malformed`, `stream:no_terminal`,
/// `stream:ping_stall`, `stream:silent_stall`. Whether a label is a complete answer:
/// [`is_complete_answer`].
pub fn verdict_label(v: &Verdict) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    Cow::Borrowed(match v {
        Verdict::Reset { .. } => "reset",
        Verdict::Hang => "hang",
        Verdict::HeadersThenSilence { .. } => "headers_then_silence",
        Verdict::Error(e) => return Cow::Owned(format!("error:{}", e.status)),
        Verdict::Ok(s) => match s.stream_fault {
            None if s.slow_body_bytes_per_s.is_some() => "ok:slow_body",
            None => "ok",
            Some(f) => match f.kind {
                StreamKind::Cut => "stream:cut",
                StreamKind::Error => "stream:error",
                StreamKind::Malformed => "stream:malformed",
                StreamKind::NoTerminal => "stream:no_terminal",
                StreamKind::PingStall => "stream:ping_stall",
                StreamKind::SilentStall => "stream:silent_stall",
            },
        },
    })
}

/// Whether a verdict label ([`verdict_label`]) is a complete answer: the provider sent
/// the whole answer, a stream with its terminal event (`ok`, and `ok:slow_body`, which
/// is whole however slowly it trickles). Errors, resets, hangs, headers without a body
/// and every stream fault (cut, in-band error, malformed chunk, missing terminal event,
/// stalls) are not. The one place this is decided (truncated successes,
/// `analysis/attempts.rs`).
pub fn is_complete_answer(verdict: &str) -> bool {
    matches!(verdict, "ok" | "ok:slow_body")
}

/// Output tokens an answer carries: all of an ok answer's, the tokens sent before a
/// stream fault, none for an error, reset, hang or headers-only answer.
pub fn answer_tokens(v: &Verdict) -> u32 {
    match v {
        Verdict::Ok(s) => match s.stream_fault {
            None => s.output_tokens,
            Some(f) if f.kind == StreamKind::NoTerminal => s.output_tokens,
            Some(f) => f.after_tokens.min(s.output_tokens),
        },
        _ => 0,
    }
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
    /// Draws of completion probes ([`Plan::decide_probe`]), apart from user traffic's.
    rng_probes: Stream,
    buckets: Buckets,
    /// The phases active for completions and what they select, over a stretch of time.
    set: ActiveSet,
    /// The token interval last worked out, over a stretch of time.
    pacing: Pacing,
    /// Scratch: the phases active for health probes `(index, intensity)`.
    health_active: Vec<(usize, f64)>,
}

/// The phases active for completions over a stretch of time `[from, until)`, and what they
/// select. Phase timelines are piecewise constant (ramps aside), so between two edges
/// every request sees the same phases at the same intensities and the "last active phase
/// that sets X" lookups have the same answers: they are worked out once per stretch
/// ([`Plan::resolve`]) instead of once per request.
#[derive(Clone, Debug, Default)]
struct ActiveSet {
    /// First instant the set was worked out for.
    from: Nanos,
    /// The set may change from here on (0 = not worked out).
    until: Nanos,
    /// Active phases `(index, intensity)`, in phase order.
    active: Vec<(usize, f64)>,
    /// Product of the active phases' latency multipliers, taken in phase order.
    mult: f64,
    /// Rate limits: the last active phase's that sets them, else the baseline's.
    rate_limit: Option<RateLimit>,
    /// Output length: the last active phase's that sets it, else the baseline's.
    output_tokens: Option<TokenRange>,
    /// The last active phase `(index, intensity)` with a TTFT of its own.
    ttft: Option<(usize, f64)>,
    /// … with a latency of its own.
    latency: Option<(usize, f64)>,
    /// … with an embeddings latency of its own.
    embedding_latency: Option<(usize, f64)>,
    /// … with a throughput curve of its own.
    curve: Option<(usize, f64)>,
}

impl ActiveSet {
    fn covers(&self, now: Nanos) -> bool {
        self.from <= now && now < self.until
    }
}

/// A token interval (already scaled by the latency multiplier) and the stretch of time
/// `[from, until)` it holds for: inside one step of every curve in play and inside the
/// active set's stretch.
#[derive(Clone, Copy, Debug)]
struct Pacing {
    from: Nanos,
    until: Nanos,
    interval: Nanos,
}

impl Pacing {
    /// Holds nowhere.
    const NONE: Pacing = Pacing {
        from: 0,
        until: 0,
        interval: 0,
    };
}

/// What [`Plan::timing`] decides: the timing fields of a [`Success`].
#[derive(Clone, Copy, Debug)]
struct Timing {
    first: Nanos,
    token_interval: Nanos,
    output_tokens: u32,
}

/// The first rule that fires: the baseline's rules, then each active phase's (its
/// probability scaled by the phase's intensity), one draw per rule tried until one fires
/// — which draws are made, and in what order, is part of the determinism contract.
#[inline]
fn first_firing<'a, R>(
    rng: &mut Stream,
    baseline: &'a Section,
    phases: &'a [PhaseState],
    active: &[(usize, f64)],
    rules: fn(&Section) -> &[R],
    probability: fn(&R) -> f64,
) -> Option<(&'a R, Cause)> {
    let mut fires = |section: &'a Section, k: f64| {
        rules(section)
            .iter()
            .find(|&r| rng.random::<f64>() < probability(r) * k)
    };
    if let Some(r) = fires(baseline, 1.0) {
        return Some((r, Cause::Baseline));
    }
    for &(i, k) in active {
        if let Some(r) = fires(&phases[i].spec, k) {
            return Some((r, Cause::Phase(i)));
        }
    }
    None
}

fn sample_opt(l: &Option<Latency>, rng: &mut Stream) -> Option<Nanos> {
    l.as_ref().map(|l| l.sample(rng))
}

#[inline]
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
    /// The plan of the provider `name`: its streams are labelled `provider/<name>`, so the
    /// mock, the simulator, the live run's ground truth and `profile-stats` draw the same
    /// schedule from the same seed. The one place that label is made.
    pub fn for_provider(profile: &Profile, seed: u64, name: &str) -> Plan {
        Plan::new(profile, seed, &format!("provider/{name}"))
    }

    /// Builds a plan whose streams are labelled `label` (tests; providers use
    /// [`Plan::for_provider`]).
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
            rng_probes: stream(seed, &format!("{label}/probes")),
            buckets: Buckets::default(),
            set: ActiveSet::default(),
            pacing: Pacing::NONE,
            health_active: Vec::new(),
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
        self.invalidate();
        index
    }

    /// Removes the named phase; returns whether it existed.
    pub fn remove_phase(&mut self, name: &str) -> bool {
        let before = self.phases.len();
        self.phases.retain(|p| p.spec.name.as_deref() != Some(name));
        self.invalidate();
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

    /// Makes `self.set` describe `now`. The set is worked out again only when `now` falls
    /// outside the stretch it was worked out for; between phase edges every request sees
    /// the same phases at the same intensities, so most requests skip this.
    #[inline]
    fn resolve(&mut self, now: Nanos) {
        if !self.set.covers(now) {
            self.rebuild_set(now);
        }
    }

    /// Works out the active set at `now` from scratch (what every request used to do).
    fn rebuild_set(&mut self, now: Nanos) {
        let set = &mut self.set;
        set.active.clear();
        let mut until = Nanos::MAX;
        for (i, p) in self.phases.iter_mut().enumerate() {
            if !p.spec.scope().completions() {
                continue;
            }
            let (k, steady_until) = p.timeline.intensity_span(now);
            until = until.min(steady_until);
            if k > 0.0 {
                set.active.push((i, k));
            }
        }
        set.from = now;
        set.until = until;
        let phases = &self.phases;
        let active = &set.active;
        // in phase order, as the product was always taken
        set.mult = 1.0;
        for &(i, k) in active {
            if let Some(m) = phases[i].spec.latency_multiplier {
                set.mult *= 1.0 + k * (m - 1.0);
            }
        }
        // the last active phase that sets a thing wins
        let last = |sets: fn(&PhaseState) -> bool| active.iter().rev().copied().find(|&(i, _)| sets(&phases[i]));
        set.ttft = last(|p| p.spec.ttft.is_some());
        set.latency = last(|p| p.spec.latency.is_some());
        set.embedding_latency = last(|p| p.spec.embedding_latency.is_some());
        set.curve = last(|p| p.curve.is_some());
        set.rate_limit = active
            .iter()
            .rev()
            .find_map(|&(i, _)| phases[i].spec.rate_limit)
            .or(self.baseline.rate_limit);
        set.output_tokens = active
            .iter()
            .rev()
            .find_map(|&(i, _)| phases[i].spec.output_tokens)
            .or(self.baseline.output_tokens);
        // the interval depends on the set (intensity, multiplier, which curve)
        self.pacing = Pacing::NONE;
    }

    /// Forgets the active set and the token interval, so the next request works them out
    /// afresh. Needed when the phases change; harmless otherwise.
    fn invalidate(&mut self) {
        self.set.until = 0;
        self.pacing = Pacing::NONE;
    }

    /// [`Plan::decide`] for a health probe: `GET /health`, or a completion marked as a
    /// probe. A completion probe is decided as user traffic is (same phases, latencies and
    /// faults) but from its own random stream, so which probe draws what does not hang on
    /// how probes and user requests interleave — live, that order is scheduling noise.
    pub fn decide_probe(&mut self, now: Nanos, facts: &RequestFacts, forced: Option<&Forced>) -> Decision {
        std::mem::swap(&mut self.rng_requests, &mut self.rng_probes);
        let d = self.decide(now, facts, forced);
        std::mem::swap(&mut self.rng_requests, &mut self.rng_probes);
        d
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
        self.resolve(now);
        if let Some(f) = forced {
            return self.decide_forced(now, facts, f);
        }
        // 1. connection faults
        let (slow_body, mut cause) = match self.connection_fault() {
            Ok(x) => x,
            Err(d) => return d,
        };
        // 2. rate limits (last active phase that sets them, else the baseline)
        let snapshot = match self.rate_limit(now, facts) {
            Ok(s) => s,
            Err(d) => return d,
        };
        // 3. error rules
        if let Some(d) = self.error_rule(snapshot) {
            return d;
        }
        // 4. success, maybe with a stream fault
        let t = self.timing(now, facts);
        let mut stream_fault = None;
        if facts.stream && facts.endpoint == Endpoint::Chat {
            if let Some((f, c)) = self.stream_fault() {
                stream_fault = Some(f);
                cause = c;
            }
        }
        // built in place: `Success` and `Decision` are large enough for copies to show
        Decision {
            verdict: Verdict::Ok(Success {
                first: t.first,
                token_interval: t.token_interval,
                output_tokens: t.output_tokens,
                stream_fault,
                slow_body_bytes_per_s: slow_body,
                rate_limit: snapshot,
            }),
            cause,
        }
    }

    /// Step 1 of [`Plan::decide`]: the first connection fault that fires ends the request
    /// (`Err`), except a slow body, which only slows the answer (its bytes per second).
    #[inline]
    #[allow(clippy::result_large_err)] // the decision is returned once per request: boxing it would allocate
    fn connection_fault(&mut self) -> Result<(Option<u32>, Cause), Decision> {
        let Some((r, c)) = first_firing(
            &mut self.rng_requests,
            &self.baseline,
            &self.phases,
            &self.set.active,
            |s| &s.connection,
            |r| r.probability,
        ) else {
            return Ok((None, Cause::None));
        };
        let after = r.after.unwrap_or_default().0;
        let verdict = match r.kind {
            ConnectionKind::Reset => Verdict::Reset { after },
            ConnectionKind::Hang => Verdict::Hang,
            ConnectionKind::HeadersThenSilence => Verdict::HeadersThenSilence { after },
            ConnectionKind::SlowBody => return Ok((Some(r.bytes_per_s.unwrap_or(100)), c)),
        };
        Err(Decision { verdict, cause: c })
    }

    /// Step 2: the rate-limit buckets of the last active phase that sets them (else the
    /// baseline's) take the request's tokens: a 429 with the wait as Retry-After when they
    /// cannot (`Err`), else their state after it.
    #[inline]
    #[allow(clippy::result_large_err)] // the decision is returned once per request: boxing it would allocate
    fn rate_limit(&mut self, now: Nanos, facts: &RequestFacts) -> Result<Option<RateLimitSnapshot>, Decision> {
        self.buckets.configure(self.set.rate_limit, now);
        let out_guess = facts.max_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS);
        match self
            .buckets
            .take(now, u64::from(facts.input_tokens) + u64::from(out_guess))
        {
            Some(Admit::Limited(s, wait)) => Err(Decision {
                verdict: Verdict::Error(ErrorVerdict {
                    after: 0,
                    status: 429,
                    kind: ErrorKind::RateLimit,
                    retry_after: Some(wait),
                    message: None,
                    rate_limit: Some(s),
                    envelope: Envelope::Provider,
                }),
                cause: Cause::RateLimit,
            }),
            Some(Admit::Allowed(s)) => Ok(Some(s)),
            None => Ok(None),
        }
    }

    /// Step 3: the first error rule that fires, as an error answer.
    #[inline]
    fn error_rule(&mut self, snapshot: Option<RateLimitSnapshot>) -> Option<Decision> {
        let (r, c) = first_firing(
            &mut self.rng_requests,
            &self.baseline,
            &self.phases,
            &self.set.active,
            |s| &s.errors,
            |r| r.probability,
        )?;
        let kind = r.kind.unwrap_or_else(|| ErrorKind::from_status(r.status));
        let envelope = r.envelope.unwrap_or_default();
        let provider = envelope == Envelope::Provider;
        let retry_after = r.retry_after.map(|d| d.0).or(if kind == ErrorKind::RateLimit {
            Some(NS_PER_S)
        } else {
            None
        });
        Some(Decision {
            verdict: Verdict::Error(ErrorVerdict {
                after: r.after.unwrap_or_default().0,
                status: r.status,
                kind,
                retry_after: retry_after.filter(|_| provider),
                message: r.message.clone(),
                rate_limit: snapshot.filter(|_| provider),
                envelope,
            }),
            cause: c,
        })
    }

    /// Step 4 (streamed chat only): the first stream fault that fires.
    #[inline]
    fn stream_fault(&mut self) -> Option<(StreamFault, Cause)> {
        let (r, c) = first_firing(
            &mut self.rng_requests,
            &self.baseline,
            &self.phases,
            &self.set.active,
            |s| &s.stream,
            |r| r.probability,
        )?;
        Some((
            StreamFault {
                kind: r.kind,
                after_tokens: r.after_tokens,
                error: r.error.unwrap_or(ErrorKind::Overloaded),
                ping_every: r.ping_every.map_or(NS_PER_S, |d| d.0),
            },
            c,
        ))
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

    /// Latency, TTFT, pacing and length of a success, from the baseline and the active
    /// phases (`self.set`, resolved for `now`).
    #[inline(always)]
    fn timing(&mut self, now: Nanos, facts: &RequestFacts) -> Timing {
        let mult = self.set.mult;
        let rng = &mut self.rng_requests;
        if facts.endpoint == Endpoint::Embeddings {
            let mut first = sample_s(&self.base_samplers.embedding_latency, rng).unwrap_or(0);
            if let Some((i, k)) = self.set.embedding_latency {
                let over = sample_s(&self.phases[i].samplers.embedding_latency, rng).unwrap_or(0);
                first = lerp(first, over, k);
            }
            return Timing {
                first: scale(first, mult),
                token_interval: 0,
                output_tokens: 0,
            };
        }
        // output length
        let cap = facts.max_tokens.unwrap_or(u32::MAX);
        let n = match self.set.output_tokens {
            Some(r) => rng.random_range(r.min..=r.max).min(cap),
            None => facts.max_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS),
        }
        .max(1);
        // a setting: the last active phase that sets it, interpolated by its intensity
        macro_rules! setting {
            ($field:ident) => {{
                let base = sample_s(&self.base_samplers.$field, rng);
                match self.set.$field {
                    Some((i, k)) => {
                        let over = sample_s(&self.phases[i].samplers.$field, rng).unwrap_or(0);
                        Some(lerp(base.unwrap_or(0), over, k))
                    }
                    None => base,
                }
            }};
        }
        let ttft = setting!(ttft).unwrap_or(0);
        let latency = setting!(latency);
        let interval = self.token_interval(now);
        let ttft = scale(ttft, mult);
        let first = if facts.stream {
            ttft
        } else {
            match latency {
                Some(l) => scale(l, mult),
                None => ttft.saturating_add(interval.saturating_mul(u64::from(n))),
            }
        };
        Timing {
            first,
            token_interval: interval,
            output_tokens: n,
        }
    }

    /// The gap between streamed tokens at `now`, scaled by the latency multiplier. The
    /// curves are step functions of time, so the last interval holds until a curve in play
    /// leaves its step or the active set changes; only then is it worked out again.
    #[inline]
    fn token_interval(&mut self, now: Nanos) -> Nanos {
        let p = self.pacing;
        if p.from <= now && now < p.until {
            return p.interval;
        }
        self.repace(now)
    }

    /// Works out the token interval at `now` (the rates blended by the phase's intensity,
    /// as every request used to) and how long it holds.
    fn repace(&mut self, now: Nanos) -> Nanos {
        let mut until = self.set.until;
        let mut rate = |c: &mut Curve| {
            let (r, steady_until) = c.rate_span(now);
            until = until.min(steady_until);
            r
        };
        let base_rate = self.base_curve.as_mut().map(&mut rate);
        let phase_rate = match self.set.curve {
            Some((i, k)) => {
                let r = self.phases[i].curve.as_mut().map(&mut rate).unwrap_or(0.0);
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
        let interval = scale(interval, self.set.mult);
        self.pacing = Pacing {
            from: now,
            until,
            interval,
        };
        interval
    }

    fn decide_health(&mut self, now: Nanos) -> Decision {
        // probes are rare: their active phases are not cached
        self.health_active.clear();
        for (i, p) in self.phases.iter_mut().enumerate() {
            if p.spec.scope().health() {
                let k = p.timeline.intensity(now);
                if k > 0.0 {
                    self.health_active.push((i, k));
                }
            }
        }
        let rng = &mut self.rng_health;
        let mut rule = self.baseline.health.clone().unwrap_or_default();
        let mut cause = Cause::None;
        for &(i, k) in &self.health_active {
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
                            envelope: r.envelope.unwrap_or_default(),
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
                envelope: Envelope::Provider,
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
                    envelope: Envelope::Provider,
                }),
                cause,
            };
        }
        let mut s = if facts.endpoint == Endpoint::Health {
            self.plain_success(0, 0)
        } else {
            let t = self.timing(now, facts);
            Success {
                token_interval: t.token_interval,
                ..self.plain_success(t.first, t.output_tokens)
            }
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
