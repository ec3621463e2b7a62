//! The virtual-time simulator: the same fault plans, gateway policy and traffic schedule
//! as live runs, driven by a discrete-event loop in integer nanoseconds. No tokio, no
//! sockets, no clock: a 30-minute incident takes milliseconds and the same seed gives the
//! same records, byte for byte.
//!
//! Events are ordered by `(time, sequence)`: ties at equal timestamps go in the order they
//! were scheduled. What the loop models, per request: the gateway plans an order of
//! targets; each attempt asks the target's fault [`Plan`] for a verdict; an error, reset or
//! timeout before the first byte moves on (fallback, retries) as the live gateway does;
//! a stream that fails after its first byte is a client-visible failure. Health probes run
//! fixed-delay per the policy; a hung probe ends at its timeout.

pub mod report;

use crate::analysis::{Aggregator, SloThresholds};
use crate::fault::{Endpoint, Plan, Profile, RequestFacts, Verdict};
use crate::gateway::{Failure, GatewayConfig, GatewayEvent, Policy};
use crate::record::{FaultEvent, Outcome, RequestRecord};
use crate::time::Nanos;
use crate::traffic::{EndpointKind, Mix, Planned, Schedule, Source};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One simulated provider.
#[derive(Clone, Debug)]
pub struct SimProvider {
    /// Name (must match a gateway target's name).
    pub name: String,
    /// Fault profile.
    pub profile: Profile,
}

/// Everything a simulated run needs.
#[derive(Clone, Debug)]
pub struct SimInput {
    /// Providers, in any order.
    pub providers: Vec<SimProvider>,
    /// The reference gateway's policy (targets named like providers).
    pub gateway: GatewayConfig,
    /// Traffic (open loop or trace).
    pub source: Source,
    /// Request mix.
    pub mix: Mix,
    /// Run seed.
    pub seed: u64,
    /// Time bucket of the analysis.
    pub bucket: Nanos,
}

/// What a simulated run produced: the same streams as a live run.
#[derive(Debug)]
pub struct SimOutput {
    /// Folded client records.
    pub aggregator: Aggregator,
    /// Gateway events.
    pub events: Vec<GatewayEvent>,
    /// Ground-truth fault windows.
    pub faults: Vec<FaultEvent>,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Simulated length (last event).
    pub duration: Nanos,
    /// Events processed.
    pub steps: u64,
    /// Per provider, the user-traffic attempts it received in each analysis bucket (what a
    /// live mock's arrival series counts; probes excluded).
    pub arrivals: std::collections::BTreeMap<String, Vec<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The next scheduled arrival (index into `pending`).
    Arrival,
    /// Request `r` tries position `k` of its plan (attempt `a` on that target).
    Attempt { r: usize, k: usize, a: u32 },
    /// Request `r`'s attempt on target `i` ended.
    Done {
        r: usize,
        k: usize,
        a: u32,
        i: usize,
        ok: bool,
        code: u16,
        started: Nanos,
        out: u8,
    },
    /// Target `i`'s probe starts.
    ProbeStart { i: usize },
    /// Target `i`'s probe ended.
    ProbeEnd { i: usize, ok: bool },
}

struct Req {
    planned: Planned,
    order: Vec<usize>,
    first_token: Option<Nanos>,
    tokens: u32,
}

const OUT_STATUS: u8 = 0;
const OUT_TIMEOUT: u8 = 1;
const OUT_RESET: u8 = 2;
const OUT_CUT: u8 = 3;
const OUT_STREAM_ERROR: u8 = 4;
const OUT_MALFORMED: u8 = 5;

/// Runs the simulation to the end of the traffic (plus in-flight work).
///
/// # Panics
/// If a gateway target has no provider of the same name (validated by the scenario).
pub fn run(input: SimInput) -> SimOutput {
    let SimInput {
        providers,
        gateway,
        source,
        mix,
        seed,
        bucket,
    } = input;
    let timeout = gateway.request_timeout.0;
    let fallback = gateway.fallback_on_failure;
    let targets: Vec<usize> = gateway
        .targets
        .iter()
        .map(|t| {
            providers
                .iter()
                .position(|p| p.name == t.name)
                .expect("every target has a provider")
        })
        .collect();
    let mut plans: Vec<Plan> = targets
        .iter()
        .map(|&p| Plan::new(&providers[p].profile, seed, &format!("provider/{}", providers[p].name)))
        .collect();
    let names: Vec<String> = gateway.targets.iter().map(|t| t.name.clone()).collect();
    let mut policy = Policy::new(gateway, seed);
    let kinds: Vec<String> = mix.kinds().iter().map(|k| k.name.clone()).collect();
    let mut agg = Aggregator::new(bucket, kinds, SloThresholds::default()).without_bucket_latency();
    let mut schedule = Schedule::new(&source, mix, seed).expect("open loop or trace");
    let mut heap: BinaryHeap<Reverse<(Nanos, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Reverse<(Nanos, u64, Ev)>>, t: Nanos, e: Ev| {
        heap.push(Reverse((t, seq, e)));
        seq += 1;
    };
    let mut reqs: Vec<Req> = Vec::new();
    let mut next = schedule.next();
    if let Some(p) = &next {
        push(&mut heap, p.at, Ev::Arrival);
    }
    let mut probe_armed = vec![false; names.len()];
    let mut arrivals: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
    let mut events = Vec::new();
    let mut scheduled = 0u64;
    let mut steps = 0u64;
    let mut last = 0;
    let traffic_end = match &source {
        Source::Open(c, _, _) => crate::time::secs_f64_to_nanos(c.duration_s()),
        Source::Trace(t, s) => t.duration(*s),
        Source::Closed { duration, .. } => *duration,
    };
    // arm the first probes
    for (i, armed) in probe_armed.iter_mut().enumerate() {
        if let Some(t) = policy.probe_at(i) {
            push(&mut heap, t, Ev::ProbeStart { i });
            *armed = true;
        }
    }
    while let Some(Reverse((t, _, ev))) = heap.pop() {
        // probes keep the queue alive forever: stop once traffic is over and nothing else is
        if t > traffic_end.saturating_add(timeout) && matches!(ev, Ev::ProbeStart { .. }) {
            continue;
        }
        steps += 1;
        last = last.max(t);
        match ev {
            Ev::Arrival => {
                let Some(p) = next.take() else { continue };
                next = schedule.next();
                if let Some(n) = &next {
                    push(&mut heap, n.at, Ev::Arrival);
                }
                scheduled += 1;
                let order = policy.plan(t);
                let r = reqs.len();
                reqs.push(Req {
                    planned: p,
                    order,
                    first_token: None,
                    tokens: 0,
                });
                if reqs[r].order.is_empty() {
                    finish(&mut agg, &reqs[r], t, Outcome::Http(503), None);
                } else {
                    push(&mut heap, t, Ev::Attempt { r, k: 0, a: 0 });
                }
            }
            Ev::Attempt { r, k, a } => {
                let i = reqs[r].order[k];
                if !policy.admit(t, i) {
                    if k + 1 < reqs[r].order.len() {
                        push(&mut heap, t, Ev::Attempt { r, k: k + 1, a: 0 });
                    } else {
                        finish(&mut agg, &reqs[r], t, Outcome::Http(503), None);
                    }
                    continue;
                }
                if k > 0 && a == 0 {
                    let prev = reqs[r].order[k - 1];
                    policy.on_fallback(t, prev, i);
                }
                let slot = (t / bucket.max(1)) as usize;
                let series = &mut arrivals[i];
                if series.len() <= slot {
                    series.resize(slot + 1, 0);
                }
                series[slot] += 1;
                let shape = &reqs[r].planned.shape;
                let facts = RequestFacts {
                    endpoint: if shape.endpoint == EndpointKind::Embeddings {
                        Endpoint::Embeddings
                    } else {
                        Endpoint::Chat
                    },
                    stream: shape.stream,
                    input_tokens: shape.prompt_tokens,
                    max_tokens: Some(shape.max_tokens),
                };
                let d = plans[i].decide(t, &facts, None);
                let (dt, ok, code, out) = match d.verdict {
                    Verdict::Ok(s) => match s.stream_fault {
                        None => {
                            if facts.stream {
                                reqs[r].first_token = Some(t + s.first);
                            }
                            reqs[r].tokens = s.output_tokens;
                            (
                                s.service_time(facts.stream).min(timeout),
                                s.service_time(facts.stream) <= timeout,
                                200,
                                OUT_STATUS,
                            )
                        }
                        Some(f) => {
                            let at = s.first + s.token_interval * u64::from(f.after_tokens.saturating_sub(1));
                            reqs[r].first_token = (f.after_tokens > 0).then_some(t + s.first);
                            reqs[r].tokens = f.after_tokens;
                            let out = match f.kind {
                                crate::fault::StreamKind::Error => OUT_STREAM_ERROR,
                                crate::fault::StreamKind::Malformed => OUT_MALFORMED,
                                crate::fault::StreamKind::NoTerminal | crate::fault::StreamKind::Cut => OUT_CUT,
                                _ => OUT_TIMEOUT,
                            };
                            let dt = if out == OUT_TIMEOUT { timeout } else { at.min(timeout) };
                            (dt, false, 200, out)
                        }
                    },
                    Verdict::Error(e) => (
                        e.after.min(timeout),
                        false,
                        e.status,
                        if e.after > timeout { OUT_TIMEOUT } else { OUT_STATUS },
                    ),
                    Verdict::Reset { after } => (
                        after.min(timeout),
                        false,
                        0,
                        if after > timeout { OUT_TIMEOUT } else { OUT_RESET },
                    ),
                    Verdict::Hang | Verdict::HeadersThenSilence { .. } => (timeout, false, 0, OUT_TIMEOUT),
                };
                push(
                    &mut heap,
                    t + dt,
                    Ev::Done {
                        r,
                        k,
                        a,
                        i,
                        ok,
                        code,
                        started: t,
                        out,
                    },
                );
            }
            Ev::Done {
                r,
                k,
                a,
                i,
                ok,
                code,
                started,
                out,
            } => {
                let duration = t - started;
                let counts = match out {
                    OUT_TIMEOUT | OUT_RESET => policy.config().failure.timeout,
                    OUT_CUT => policy.config().failure.stream_cut,
                    OUT_STREAM_ERROR | OUT_MALFORMED => policy.config().failure.stream_error,
                    _ => !ok && policy.is_failure_status(code),
                };
                policy.on_result(t, i, counts, duration);
                let provider = Some(names[i].clone());
                if ok {
                    finish(&mut agg, &reqs[r], t, Outcome::Ok, provider);
                    continue;
                }
                let stream_failure = matches!(out, OUT_CUT | OUT_STREAM_ERROR | OUT_MALFORMED);
                if stream_failure {
                    // the first byte already reached the client: no failover
                    let o = match out {
                        OUT_CUT => Outcome::StreamCut,
                        OUT_STREAM_ERROR => Outcome::StreamError,
                        _ => Outcome::MalformedStream,
                    };
                    finish(&mut agg, &reqs[r], t, o, provider);
                    continue;
                }
                let failure = if out == OUT_STATUS {
                    Failure::Status {
                        status: code,
                        retryable: true,
                        retry_after: None,
                    }
                } else {
                    Failure::Connect
                };
                let is_failure = out != OUT_STATUS || policy.is_failure_status(code);
                if is_failure {
                    if let Some(w) = policy.retry(t, i, a + 1, failure) {
                        push(&mut heap, t + w, Ev::Attempt { r, k, a: a + 1 });
                        continue;
                    }
                    if fallback && k + 1 < reqs[r].order.len() {
                        push(&mut heap, t, Ev::Attempt { r, k: k + 1, a: 0 });
                        continue;
                    }
                }
                let o = match out {
                    OUT_TIMEOUT => Outcome::Timeout,
                    OUT_RESET => Outcome::Reset,
                    _ => Outcome::Http(code),
                };
                finish(&mut agg, &reqs[r], t, o, provider);
            }
            Ev::ProbeStart { i } => {
                probe_armed[i] = false;
                let Some(deadline) = policy.start_probe(t, i) else {
                    continue;
                };
                let d = plans[i].decide(t, &RequestFacts::health(), None);
                let (end, ok) = match d.verdict {
                    Verdict::Ok(s) => (t + s.first, true),
                    Verdict::Error(e) => (t + e.after, false),
                    Verdict::Reset { after } => (t + after, false),
                    Verdict::Hang | Verdict::HeadersThenSilence { .. } => (deadline, false),
                };
                let (end, ok) = if end > deadline { (deadline, false) } else { (end, ok) };
                push(&mut heap, end, Ev::ProbeEnd { i, ok });
            }
            Ev::ProbeEnd { i, ok } => {
                policy.on_probe(t, i, ok);
                if !probe_armed[i] {
                    if let Some(n) = policy.probe_at(i) {
                        push(&mut heap, n, Ev::ProbeStart { i });
                        probe_armed[i] = true;
                    }
                }
            }
        }
        events.extend(policy.drain_events());
    }
    events.extend(policy.drain_events());
    let horizon = last.max(traffic_end);
    let faults: Vec<FaultEvent> = plans
        .iter_mut()
        .zip(&names)
        .flat_map(|(p, n)| {
            p.fault_windows(horizon)
                .into_iter()
                .map(|w| FaultEvent {
                    provider: n.clone(),
                    phase: w.phase,
                    start: w.start,
                    end: w.end,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let faults = crate::record::merge_fault_windows(faults);
    SimOutput {
        aggregator: agg,
        events,
        faults,
        scheduled,
        duration: traffic_end,
        steps,
        arrivals: names.into_iter().zip(arrivals).collect(),
    }
}

fn finish(agg: &mut Aggregator, r: &Req, end: Nanos, outcome: Outcome, provider: Option<String>) {
    let p = &r.planned;
    let rec = RequestRecord {
        id: p.id,
        kind: p.shape.kind,
        intended: p.at,
        sent: Some(p.at),
        first_byte: Some(end.min(r.first_token.unwrap_or(end))),
        first_token: if outcome.is_ok() || matches!(outcome, Outcome::StreamCut | Outcome::StreamError) {
            r.first_token
        } else {
            None
        },
        end,
        outcome,
        output_tokens: if outcome.is_ok() { r.tokens } else { 0 },
        provider,
        stream: p.shape.stream,
    };
    agg.add(&rec, &[], p.shape.endpoint == EndpointKind::Embeddings);
}

#[cfg(test)]
mod tests;
