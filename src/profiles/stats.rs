//! `chaosgate profile-stats`: what a client would measure against a fault profile, in
//! virtual time — no sockets, no runtime, no clock. Each test drives the profile's
//! [`Plan`] with a stated workload, turns every verdict into the [`RequestRecord`] a
//! client would have written ([`observe`]) and folds the records with the load report's
//! own [`Aggregator`], so every figure has exactly the load report's definition.
//!
//! The three tests follow the article's three measurements:
//! - **latency test**: `samples` chat requests (plain, or streamed with `--stream`),
//!   `max_tokens` each, evenly spaced over `duration` → `latency_ms`, `error_rate`;
//! - **throughput test**: streamed chat requests at `stream_rate` per second, evenly
//!   spaced over `duration` → `output_tps` (per 1-s bucket mean decode speed 1/TPOT);
//! - **embeddings test**: a closed loop of `embedding_users` users (Locust's model), each
//!   sending the next embeddings call `think` after the previous answer, for `duration`
//!   → `embeddings.requests_per_s` (ok calls / duration) and `avg_latency_ms`.
//!
//! A profile gets the chat tests unless it configures only embeddings, the throughput test
//! only if it paces tokens (`tokens_per_s`), and the embeddings test only if it sets an
//! `embedding_latency`. Every test drives its own plan, built as the simulator builds a
//! provider named like the profile (`provider/NAME`, same seed), so the throughput curve
//! is the one `chaosgate sim` would see.

use crate::analysis::hist::Summary;
use crate::analysis::{Aggregator, SloThresholds, Tps};
use crate::fault::wire::{End, Wire};
use crate::fault::{Endpoint, Plan, Profile, RequestFacts, Section, Verdict};
use crate::record::{Outcome, RequestRecord};
use crate::rng::stream;
use crate::time::{nanos_to_secs_f64, Dur, Nanos, NS_PER_S};
use crate::traffic::arrivals::{ArrivalKind, Arrivals, RateCurve};
use crate::traffic::users::{ClosedLoop, ThinkTime};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The workload the tests run (every field is printed with the results).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Length of the timeline every test spans.
    pub duration: Dur,
    /// Requests of the latency test.
    pub samples: u64,
    /// Whether the latency test streams.
    pub stream: bool,
    /// `max_tokens` of every chat request.
    pub max_tokens: u32,
    /// Prompt tokens of every request (matters only for token rate limits).
    pub input_tokens: u32,
    /// New streams per second in the throughput test.
    pub stream_rate: f64,
    /// Closed-loop users of the embeddings test.
    pub embedding_users: u32,
    /// Think time of each embeddings user between an answer and its next call.
    pub think: Dur,
    /// Client timeout (the article's httpx client: 30 s).
    pub timeout: Dur,
}

impl Default for Workload {
    /// The article's setup: 30 minutes sustained, `max_tokens` 200, a 30 s client timeout;
    /// 50 embeddings users thinking 400 ms (fitted to the embeddings table, docs/profiles.md).
    fn default() -> Workload {
        Workload {
            duration: Dur::from_secs(30 * 60),
            samples: 100_000,
            stream: false,
            max_tokens: 200,
            input_tokens: 50,
            stream_rate: 20.0,
            embedding_users: 50,
            think: Dur::from_millis(400),
            timeout: Dur::from_secs(30),
        }
    }
}

impl Workload {
    /// Problems with the numbers, one message each.
    pub fn problems(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.duration.0 < NS_PER_S {
            e.push(format!("--duration must be at least 1s, got {}", self.duration));
        }
        if self.samples == 0 {
            e.push("--samples must be at least 1".into());
        }
        if self.max_tokens == 0 {
            e.push("--max-tokens must be at least 1".into());
        }
        if !(self.stream_rate.is_finite() && self.stream_rate > 0.0) {
            e.push(format!(
                "--stream-rate must be a positive number, got {}",
                self.stream_rate
            ));
        }
        if self.timeout.0 == 0 {
            e.push("--timeout must be > 0".into());
        }
        e
    }
}

/// The embeddings figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct EmbeddingsFigures {
    /// Ok embeddings calls per second of the closed loop (ok calls / duration).
    pub requests_per_s: f64,
    /// Their mean latency.
    pub avg_latency_ms: f64,
    /// Calls that failed / calls sent.
    pub error_rate: f64,
}

/// What `profile-stats` reports; these JSON names are a contract.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileStats {
    /// Profile name.
    pub profile: String,
    /// Seed of every test.
    pub seed: u64,
    /// The workload.
    pub workload: Workload,
    /// Which test `latency_ms` and `error_rate` come from: `chat` or `embeddings`.
    pub latency_test: &'static str,
    /// Requests sent in that test.
    pub requests: u64,
    /// End-to-end latency (every sent request, ok or not), from the load report's histogram.
    pub latency_ms: Summary,
    /// failed / sent in that test.
    pub error_rate: f64,
    /// Failures by outcome key (`http_500`, `timeout`, …).
    pub failures_by_kind: std::collections::BTreeMap<String, u64>,
    /// The throughput test (absent when the profile does not pace tokens).
    pub output_tps: Option<Tps>,
    /// The embeddings test (absent when the profile sets no embedding latency).
    pub embeddings: Option<EmbeddingsFigures>,
}

/// What a client records for one request decided at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Last byte, error or timeout.
    pub end: Nanos,
    /// First content token (streams that produced one and ended well or were cut).
    pub first_token: Option<Nanos>,
    /// Outcome class.
    pub outcome: Outcome,
    /// Output tokens of an ok answer.
    pub output_tokens: u32,
}

/// A verdict as a client talking to the provider directly sees it, with a whole-request
/// `timeout`: the verdict's wire timeline (`fault/wire.rs`, what the mock plays) settled
/// against that timeout (`gateway/attempt.rs`, with no TTFT or stall limit), as the load
/// generator classifies it.
pub fn observe(v: &Verdict, at: Nanos, stream: bool, timeout: Nanos) -> Observed {
    use crate::gateway::attempt::{direct_outcome, settle, Limits};
    // a plain body's length only matters under `slow_body`, which `profile-stats` does not
    // model (it reports latency, not transfer)
    let w = Wire::of(v, stream, 0);
    let answer = match v {
        Verdict::Error(e) => crate::provider::classify::Answer::status(e.status),
        _ => crate::provider::classify::Answer::status(200),
    };
    let lim = Limits {
        request: timeout,
        ttft: None,
        stall: None,
    };
    let s = settle(&w, &lim, stream, answer);
    let outcome = direct_outcome(&s, matches!(w.end, End::Malformed { .. }));
    Observed {
        end: at.saturating_add(s.at),
        first_token: s.first_token.map(|f| at + f),
        outcome,
        output_tokens: match v {
            Verdict::Ok(ok) if outcome.is_ok() => ok.output_tokens,
            _ => 0,
        },
    }
}

fn record(id: u64, at: Nanos, o: &Observed, stream: bool) -> RequestRecord {
    RequestRecord {
        id,
        kind: 0,
        intended: at,
        sent: Some(at),
        first_byte: Some(o.first_token.unwrap_or(o.end).min(o.end)),
        first_token: o.first_token,
        end: o.end,
        outcome: o.outcome,
        output_tokens: o.output_tokens,
        input_tokens: 0,
        provider: None,
        stream,
    }
}

fn sections(p: &Profile) -> impl Iterator<Item = &Section> {
    std::iter::once(&p.baseline).chain(p.phases.iter())
}

/// Whether the profile configures chat behaviour (or nothing endpoint-specific at all).
pub fn has_chat(p: &Profile) -> bool {
    let chat = sections(p)
        .any(|s| s.latency.is_some() || s.ttft.is_some() || s.tokens_per_s.is_some() || s.output_tokens.is_some());
    chat || !has_embeddings(p)
}

/// Whether the profile sets an embeddings latency anywhere.
pub fn has_embeddings(p: &Profile) -> bool {
    sections(p).any(|s| s.embedding_latency.is_some())
}

/// Whether the profile paces tokens anywhere.
pub fn has_pacing(p: &Profile) -> bool {
    sections(p).any(|s| s.tokens_per_s.is_some())
}

fn plan(p: &Profile, seed: u64) -> Plan {
    let name = p.name.as_deref().unwrap_or("profile");
    Plan::for_provider(p, seed, name)
}

fn aggregator() -> Aggregator {
    Aggregator::new(NS_PER_S, vec!["request".into()], SloThresholds::default()).without_bucket_latency()
}

/// Open-loop chat requests at `rate` per second, evenly spaced over the workload's
/// duration, folded into an aggregator.
fn open_loop(p: &Profile, seed: u64, w: &Workload, rate: f64, stream: bool) -> Aggregator {
    let mut plan = plan(p, seed);
    let mut agg = aggregator();
    let facts = RequestFacts {
        endpoint: Endpoint::Chat,
        stream,
        input_tokens: w.input_tokens,
        max_tokens: Some(w.max_tokens),
    };
    let curve = RateCurve::constant(rate, w.duration.secs_f64());
    let arrivals = Arrivals::new(curve, ArrivalKind::Constant, 1.0, stream_of(seed));
    for (id, at) in arrivals.enumerate() {
        let d = plan.decide(at, &facts, None);
        let o = observe(&d.verdict, at, stream, w.timeout.0);
        agg.add(&record(id as u64, at, &o, stream), &[], false);
    }
    agg
}

fn stream_of(seed: u64) -> crate::rng::Stream {
    stream(seed, "profile-stats/arrivals")
}

/// The latency test: `samples` requests evenly over `duration`.
pub fn latency_test(p: &Profile, seed: u64, w: &Workload) -> Aggregator {
    let rate = w.samples as f64 / w.duration.secs_f64();
    open_loop(p, seed, w, rate, w.stream)
}

/// The throughput test's `output_tps`, `None` when no stream produced two tokens.
pub fn throughput_test(p: &Profile, seed: u64, w: &Workload) -> Option<Tps> {
    let agg = open_loop(p, seed, w, w.stream_rate, true);
    agg.buckets.iter().any(|b| b.decode_n > 0).then(|| agg.output_tps())
}

/// The embeddings test: a closed loop of users with a constant think time.
pub fn embeddings_test(p: &Profile, seed: u64, w: &Workload) -> Aggregator {
    let mut plan = plan(p, seed);
    let mut agg = aggregator();
    let facts = RequestFacts {
        endpoint: Endpoint::Embeddings,
        stream: false,
        input_tokens: w.input_tokens,
        max_tokens: None,
    };
    // all users at once (1,000 per second): the measurement is the steady state
    let mut users = ClosedLoop::new(
        w.embedding_users,
        1000.0,
        ThinkTime::Constant { value: w.think },
        w.duration.0,
        stream(seed, "profile-stats/users"),
    );
    let mut starts: BinaryHeap<Reverse<(Nanos, u32)>> =
        users.spawns().into_iter().map(|(u, t)| Reverse((t, u))).collect();
    let mut id = 0u64;
    while let Some(Reverse((at, user))) = starts.pop() {
        let d = plan.decide(at, &facts, None);
        let o = observe(&d.verdict, at, false, w.timeout.0);
        agg.add(&record(id, at, &o, false), &[], true);
        id += 1;
        if let Some(next) = users.on_complete(o.end, user) {
            starts.push(Reverse((next, user)));
        }
    }
    agg
}

/// Runs the tests the profile calls for.
pub fn profile_stats(p: &Profile, seed: u64, w: &Workload) -> ProfileStats {
    let name = p.name.clone().unwrap_or_else(|| "profile".into());
    let duration = w.duration.0;
    let embeddings = has_embeddings(p).then(|| embeddings_test(p, seed, w));
    let figures = embeddings.as_ref().map(|a| {
        let r = a.report(0, 0, duration);
        EmbeddingsFigures {
            requests_per_s: r.embeddings.requests_per_s,
            avg_latency_ms: r.embeddings.avg_latency_ms,
            error_rate: r.error_rate,
        }
    });
    let chat = has_chat(p);
    let output_tps = (chat && has_pacing(p)).then(|| throughput_test(p, seed, w)).flatten();
    let (latency_test_name, main) = if chat {
        ("chat", latency_test(p, seed, w))
    } else {
        ("embeddings", embeddings.expect("a profile without chat has embeddings"))
    };
    let g = &main.overall();
    ProfileStats {
        profile: name,
        seed,
        workload: *w,
        latency_test: latency_test_name,
        requests: g.sent(),
        latency_ms: g.latency.summary(),
        error_rate: g.error_rate(),
        failures_by_kind: g.failures(),
        output_tps,
        embeddings: figures,
    }
}

/// The terminal summary.
pub fn text(s: &ProfileStats) -> String {
    use std::fmt::Write;
    let w = &s.workload;
    let d = nanos_to_secs_f64(w.duration.0);
    let mut o = String::new();
    let _ = writeln!(o, "profile {} — seed {}, virtual time", s.profile, s.seed);
    if s.latency_test == "chat" {
        let _ = writeln!(
            o,
            "latency test: {} {} chat requests, max_tokens {}, evenly over {} ({:.1} req/s), client timeout {}",
            w.samples,
            if w.stream { "streamed" } else { "plain" },
            w.max_tokens,
            w.duration,
            w.samples as f64 / d,
            w.timeout
        );
    }
    let l = &s.latency_ms;
    let _ = writeln!(
        o,
        "  latency_ms   p50 {:.1}  p95 {:.1}  p99 {:.1}  (mean {:.1}, max {:.1}; {} requests{})",
        l.p50,
        l.p95,
        l.p99,
        l.mean,
        l.max,
        s.requests,
        if s.latency_test == "embeddings" {
            ", embeddings test"
        } else {
            ""
        }
    );
    let failed: u64 = s.failures_by_kind.values().sum();
    let kinds: Vec<String> = s.failures_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        o,
        "  error_rate   {:.4} %  ({failed} failed{}{})",
        s.error_rate * 100.0,
        if kinds.is_empty() { "" } else { ": " },
        kinds.join(", ")
    );
    if let Some(t) = &s.output_tps {
        let _ = writeln!(
            o,
            "throughput test: streamed chat, max_tokens {}, {} new streams/s evenly over {}; per 1-s bucket mean of 1/TPOT",
            w.max_tokens, w.stream_rate, w.duration
        );
        let _ = writeln!(
            o,
            "  output_tps   avg {:.1}  peak {:.1}  min {:.1}  cv {:.1} %",
            t.avg,
            t.peak,
            t.min,
            t.cv * 100.0
        );
    }
    if let Some(e) = &s.embeddings {
        let _ = writeln!(
            o,
            "embeddings test: {} closed-loop users, {} think time, for {}",
            w.embedding_users, w.think, w.duration
        );
        let _ = writeln!(
            o,
            "  embeddings   requests_per_s {:.1}  avg_latency_ms {:.1}  (error rate {:.4} %)",
            e.requests_per_s,
            e.avg_latency_ms,
            e.error_rate * 100.0
        );
    }
    o
}
