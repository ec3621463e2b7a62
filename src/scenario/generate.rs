//! Seeded generator of small scenarios over the whole fault space, for the differential
//! test of the simulator against live runs (`tests/differential.rs`) and the swarm.
//!
//! [`scenario`] turns a seed into the TOML text of a scenario with 2–3 builtin-gateway
//! targets, a few seconds of traffic and one or two fault phases per provider, plus the
//! list of [`FEATURES`] it exercises. Every draw comes from
//! `crate::rng::stream(seed, "generate/…")`: the same seed gives the same text on every
//! machine, and nothing else (no clock, no global RNG) is read.
//!
//! Sizes are chosen for quick live runs: ≤ `max_traffic_s` of traffic (≤ 20 s), ≤ 30 req/s,
//! latencies and timeouts between 10 ms and 2 s, and a worst case per request (every
//! target tried, every retry taken, every attempt running into its timeout) of at most
//! about 4.5 s, so that a live run ends a few seconds after its traffic.

use crate::rng::{stream, Stream};
use rand::Rng;
use std::fmt::Write as _;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Also generate closed-loop (`users`) traffic (about a third of the scenarios).
    pub closed_loop: bool,
    /// Longest traffic of a scenario, seconds (clamped to [1, 20]).
    pub max_traffic_s: f64,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions {
            closed_loop: true,
            max_traffic_s: 6.0,
        }
    }
}

/// A generated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The scenario file's text (loads with [`crate::scenario::load_str`]).
    pub toml: String,
    /// What it covers: entries of [`FEATURES`] (or [`CLOSED_LOOP_FEATURES`]), sorted, once each.
    pub features: Vec<&'static str>,
}

/// Every feature the generator covers with open-loop traffic. Over a few hundred seeds
/// each one appears (a unit test holds this).
pub const FEATURES: &[&str] = &[
    // providers
    "api/openai",
    "api/anthropic",
    "providers/2",
    "providers/3",
    // status errors
    "error/500",
    "error/502",
    "error/503",
    "error/529",
    "error/429_retry_after_default",
    "error/429_retry_after_set",
    "error/429_retry_after_zero",
    "error/429_quota",
    "error/delayed",
    "error/partial",
    // connection faults
    "conn/reset",
    "conn/hang",
    "conn/headers_then_silence",
    "conn/slow_body",
    // stream faults
    "stream/cut",
    "stream/error",
    "stream/malformed",
    "stream/no_terminal",
    "stream/ping_stall",
    "stream/silent_stall",
    // rate-limit buckets
    "rate_limit/requests",
    "rate_limit/tokens",
    // /health grey failures and slowness
    "scope/health",
    "scope/completions",
    "health/status",
    "health/hang",
    "health/slow",
    "latency/multiplier",
    // timelines
    "timeline/window",
    "timeline/open_ended",
    "timeline/ramp",
    "timeline/flapping",
    "timeline/random",
    "baseline/errors",
    // gateway
    "gateway/health_check",
    "health_rules/consecutive",
    "health_rules/envoy",
    "health_rules/haproxy",
    "health_probe/completion",
    "breaker/none",
    "breaker/consecutive",
    "breaker/failure_rate",
    "breaker/article",
    "retries/none",
    "retries/on",
    "retries/tight_budget",
    "retries/retry_after_over_cap",
    "fallback_on_failure/true",
    "fallback_on_failure/false",
    "strategy/fallback",
    "strategy/weighted",
    "strategy/least_latency",
    "strategy/cost",
    "when_all_down/panic",
    "timeout/request",
    "timeout/ttft",
    "timeout/stall",
    // traffic
    "traffic/constant",
    "traffic/poisson",
    "traffic/stream",
    "traffic/non_stream",
];

/// Features only closed-loop generation adds.
pub const CLOSED_LOOP_FEATURES: &[&str] = &["traffic/closed_loop"];

/// Hard maximum of traffic per scenario, seconds.
pub const MAX_TRAFFIC_S: f64 = 20.0;

/// Worst case of one request (all targets, all retries, each attempt timing out), ms.
const WORST_REQUEST_MS: u64 = 4_500;

struct Out {
    toml: String,
    features: Vec<&'static str>,
    /// The longest `retry-after` an error rule asks for (ms).
    max_retry_after_ms: u64,
}

impl Out {
    fn f(&mut self, name: &'static str) {
        debug_assert!(
            FEATURES.contains(&name) || CLOSED_LOOP_FEATURES.contains(&name),
            "{name} is not in the catalogue"
        );
        self.features.push(name);
    }
    fn line(&mut self, s: &str) {
        self.toml.push_str(s);
        self.toml.push('\n');
    }
}

/// `ms` as a duration string.
fn ms(ms: u64) -> String {
    format!("\"{ms}ms\"")
}

fn pick<T: Copy>(r: &mut Stream, xs: &[T]) -> T {
    xs[r.random_range(0..xs.len())]
}

/// A latency distribution with its median in `[lo, hi]` ms.
fn latency(r: &mut Stream, lo: u64, hi: u64) -> String {
    let p50 = r.random_range(lo..=hi);
    match r.random_range(0..3) {
        0 => format!("{{ kind = \"fixed\", value = {} }}", ms(p50)),
        1 => {
            let spread = (p50 / 2).max(1);
            format!(
                "{{ kind = \"uniform\", min = {}, max = {} }}",
                ms(p50.saturating_sub(spread).max(1)),
                ms(p50 + spread)
            )
        }
        _ => format!(
            "{{ kind = \"lognormal\", p50 = {}, p99 = {}, cap = {} }}",
            ms(p50),
            ms(p50 * 2),
            ms((p50 * 3).min(2_000).max(p50))
        ),
    }
}

/// What the scenario's traffic looks like, for the fault draws that depend on it.
struct Shape {
    duration_ms: u64,
    rate: f64,
    streams: bool,
    anthropic: bool,
}

/// One fault phase's window keys (always with `name`), and the features they cover.
fn window(r: &mut Stream, sh: &Shape, o: &mut Out, name: &str) -> String {
    let d = sh.duration_ms;
    let start = r.random_range(d / 10..=d / 2);
    let mut s = format!("name = \"{name}\"\nstart = {}\n", ms(start));
    match r.random_range(0..5) {
        0 => {
            // open-ended: lasts to the end of the run
            o.f("timeline/open_ended");
        }
        1 => {
            let len = r.random_range(d / 5..=d / 2).max(200);
            let ramp_in = r.random_range(100..=len / 2);
            let ramp_out = r.random_range(100..=len / 2);
            let _ = writeln!(
                s,
                "duration = {}\nramp_in = {}\nramp_out = {}",
                ms(len),
                ms(ramp_in),
                ms(ramp_out)
            );
            o.f("timeline/ramp");
        }
        2 => {
            let len = r.random_range(d / 3..=d * 2 / 3).max(600);
            let period = r.random_range(300..=1_500);
            let duty = pick(r, &[0.3, 0.5, 0.7]);
            let _ = writeln!(
                s,
                "duration = {}\nflapping = {{ period = {}, duty = {duty} }}",
                ms(len),
                ms(period)
            );
            o.f("timeline/flapping");
        }
        3 => {
            let len = r.random_range(d / 3..=d * 2 / 3).max(600);
            let mtbf = r.random_range(300..=2_000);
            let mttr = r.random_range(100..=1_000);
            let _ = writeln!(
                s,
                "duration = {}\nrandom = {{ mtbf = {}, mttr = {} }}",
                ms(len),
                ms(mtbf),
                ms(mttr)
            );
            o.f("timeline/random");
        }
        _ => {
            let len = r.random_range(d / 5..=d / 2).max(200);
            let _ = writeln!(s, "duration = {}", ms(len));
            o.f("timeline/window");
        }
    }
    s
}

/// A probability: mostly 1, sometimes partial.
fn probability(r: &mut Stream, o: &mut Out, f: &'static str) -> String {
    if r.random_bool(0.3) {
        o.f(f);
        format!(", probability = {}", pick(r, &[0.2, 0.5, 0.8]))
    } else {
        String::new()
    }
}

/// An error rule's table, with the features it covers.
fn error_rule(r: &mut Stream, sh: &Shape, o: &mut Out) -> String {
    let mut kinds: Vec<u8> = vec![0, 1, 2, 3, 4, 5, 6];
    if sh.anthropic {
        kinds.push(7);
    }
    let rule = match pick(r, &kinds) {
        0 => {
            o.f("error/500");
            "status = 500".to_string()
        }
        1 => {
            o.f("error/502");
            "status = 502".to_string()
        }
        2 => {
            o.f("error/503");
            "status = 503".to_string()
        }
        3 => {
            o.f("error/429_retry_after_default");
            o.max_retry_after_ms = o.max_retry_after_ms.max(1_000);
            "status = 429".to_string()
        }
        4 => {
            o.f("error/429_retry_after_set");
            let wait = r.random_range(50..=2_000);
            o.max_retry_after_ms = o.max_retry_after_ms.max(wait);
            format!("status = 429, retry_after = {}", ms(wait))
        }
        5 => {
            o.f("error/429_retry_after_zero");
            "status = 429, retry_after = \"0s\"".to_string()
        }
        6 => {
            o.f("error/429_quota");
            "status = 429, kind = \"insufficient_quota\"".to_string()
        }
        _ => {
            o.f("error/529");
            "status = 529".to_string()
        }
    };
    let after = if r.random_bool(0.25) {
        o.f("error/delayed");
        format!(", after = {}", ms(r.random_range(10..=300)))
    } else {
        String::new()
    };
    let p = probability(r, o, "error/partial");
    format!("{{ {rule}{after}{p} }}")
}

/// The body keys of one fault phase (after its window keys).
fn fault_body(r: &mut Stream, sh: &Shape, o: &mut Out) -> String {
    // 0 errors, 1 connection, 2 stream, 3 rate limit, 4 health grey failure,
    // 5 completions-only grey failure, 6 brownout
    let mut cats: Vec<u8> = vec![0, 0, 1, 3, 4, 5, 6];
    if sh.streams {
        cats.extend([2, 2]);
    }
    match pick(r, &cats) {
        0 => {
            let n = r.random_range(1..=2);
            let rules: Vec<String> = (0..n).map(|_| error_rule(r, sh, o)).collect();
            format!("errors = [{}]\n", rules.join(", "))
        }
        1 => connection_fault(r, o),
        2 => stream_fault(r, o),
        3 => rate_limit_fault(r, sh, o),
        4 => health_fault(r, o),
        5 => {
            o.f("scope/completions");
            format!("applies_to = \"completions\"\nerrors = [{}]\n", error_rule(r, sh, o))
        }
        _ => {
            o.f("latency/multiplier");
            // slower, but mostly within the request timeout
            let m = pick(r, &[1.5, 2.0, 3.0]);
            format!("latency_multiplier = {m}\n")
        }
    }
}

/// A connection fault: reset, hang, headers then silence, or a slow body.
fn connection_fault(r: &mut Stream, o: &mut Out) -> String {
    let kind = pick(r, &["reset", "hang", "headers_then_silence", "slow_body"]);
    let extra = match kind {
        "reset" => {
            o.f("conn/reset");
            if r.random_bool(0.5) {
                format!(", after = {}", ms(r.random_range(10..=300)))
            } else {
                String::new()
            }
        }
        "hang" => {
            o.f("conn/hang");
            String::new()
        }
        "headers_then_silence" => {
            o.f("conn/headers_then_silence");
            if r.random_bool(0.5) {
                format!(", after = {}", ms(r.random_range(10..=200)))
            } else {
                String::new()
            }
        }
        _ => {
            o.f("conn/slow_body");
            format!(", bytes_per_s = {}", pick(r, &[200, 1_000, 5_000, 50_000]))
        }
    };
    let p = probability(r, o, "error/partial");
    format!("connection = [{{ kind = \"{kind}\"{extra}{p} }}]\n")
}

/// A stream fault: cut, in-band error, malformed, no terminal event, or a stall.
fn stream_fault(r: &mut Stream, o: &mut Out) -> String {
    let kind = pick(
        r,
        &["cut", "error", "malformed", "no_terminal", "ping_stall", "silent_stall"],
    );
    o.f(match kind {
        "cut" => "stream/cut",
        "error" => "stream/error",
        "malformed" => "stream/malformed",
        "no_terminal" => "stream/no_terminal",
        "ping_stall" => "stream/ping_stall",
        _ => "stream/silent_stall",
    });
    let mut extra = String::new();
    if kind != "no_terminal" {
        let _ = write!(extra, ", after_tokens = {}", r.random_range(0..=6));
    }
    if kind == "error" && r.random_bool(0.5) {
        let _ = write!(
            extra,
            ", error = \"{}\"",
            pick(r, &["server", "overloaded", "rate_limit"])
        );
    }
    if kind == "ping_stall" {
        let _ = write!(extra, ", ping_every = {}", ms(r.random_range(50..=500)));
    }
    let p = probability(r, o, "error/partial");
    format!("stream = [{{ kind = \"{kind}\"{extra}{p} }}]\n")
}

/// A rate limit (requests or tokens per minute) well below the offered load.
fn rate_limit_fault(r: &mut Stream, sh: &Shape, o: &mut Out) -> String {
    // buckets well below the offered load
    let per_min = (sh.rate * 60.0 * pick(r, &[0.2, 0.4, 0.6])).round().max(1.0) as u64;
    if r.random_bool(0.6) {
        o.f("rate_limit/requests");
        format!("rate_limit = {{ requests_per_min = {per_min} }}\n")
    } else {
        o.f("rate_limit/tokens");
        // a request takes about 50 prompt + max_tokens of the bucket
        let tokens = per_min * 80;
        format!("rate_limit = {{ tokens_per_min = {tokens} }}\n")
    }
}

/// A grey failure of the health endpoint only: a status, a hang or a slow answer.
fn health_fault(r: &mut Stream, o: &mut Out) -> String {
    o.f("scope/health");
    let h = match r.random_range(0..3) {
        0 => {
            o.f("health/status");
            format!("{{ status = {} }}", pick(r, &[500, 503]))
        }
        1 => {
            o.f("health/hang");
            "{ hang = true }".to_string()
        }
        _ => {
            o.f("health/slow");
            format!("{{ latency = {} }}", latency(r, 100, 1_500))
        }
    };
    format!("applies_to = \"health\"\nhealth = {h}\n")
}

/// Generates the scenario of `seed`.
pub fn scenario(seed: u64, opts: &GenOptions) -> Generated {
    let mut r = stream(seed, "generate/shape");
    let mut o = Out {
        toml: String::new(),
        features: Vec::new(),
        max_retry_after_ms: 0,
    };
    let max_s = if opts.max_traffic_s.is_finite() {
        opts.max_traffic_s.clamp(1.0, MAX_TRAFFIC_S)
    } else {
        6.0
    };
    let max_ms = (max_s * 1000.0) as u64;
    let duration_ms = r.random_range((max_ms / 2).max(1_000)..=max_ms);
    let anthropic = r.random_bool(0.4);
    o.f(if anthropic { "api/anthropic" } else { "api/openai" });
    let n_providers = if r.random_bool(0.35) { 3 } else { 2 };
    o.f(if n_providers == 3 { "providers/3" } else { "providers/2" });
    let mix = r.random_range(0..3); // 0 plain, 1 streams, 2 both
    let streams = mix >= 1;
    let plain = mix != 1;
    if streams {
        o.f("traffic/stream");
    }
    if plain {
        o.f("traffic/non_stream");
    }
    let rate = f64::from(r.random_range(3u32..=30));

    // gateway shape first: the timeouts bound the latencies drawn below
    let mut g = stream(seed, "generate/gateway");
    let gw = GatewayShape::draw(&mut g, n_providers);
    let sh = Shape {
        duration_ms,
        rate,
        streams,
        anthropic,
    };

    let _ = writeln!(o.toml, "# generated: chaosgate::scenario::generate::scenario({seed})");
    o.line(&format!("name = \"gen-{seed}\""));
    o.line(&format!("seed = {seed}"));
    o.line("");
    let names: Vec<String> = (0..n_providers).map(|i| format!("p{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        provider(seed, i, name, n_providers, &gw, &sh, &mut o);
        o.line("");
    }
    gateway(&mut g, &gw, &names, streams, &mut o);
    o.line("");
    traffic(seed, opts, &sh, plain, &mut o);

    let mut features = o.features;
    features.sort_unstable();
    features.dedup();
    Generated { toml: o.toml, features }
}

/// The gateway's shape, drawn before anything else: its timeouts bound the latencies.
struct GatewayShape {
    strategy: &'static str,
    attempts: u32,
    cap_ms: u64,
    request_timeout_ms: u64,
}

impl GatewayShape {
    fn draw(g: &mut Stream, n_providers: usize) -> GatewayShape {
        let strategy = pick(g, &["fallback", "fallback", "weighted", "least_latency", "cost"]);
        let attempts: u32 = if g.random_bool(0.5) { g.random_range(1..=2) } else { 0 };
        let cap_ms: u64 = g.random_range(100..=1_000);
        let per_request_attempts = n_providers as u64 * u64::from(attempts + 1);
        let waits = n_providers as u64 * u64::from(attempts) * cap_ms;
        let request_timeout_ms = ((WORST_REQUEST_MS.saturating_sub(waits)) / per_request_attempts).clamp(150, 2_000);
        GatewayShape {
            strategy,
            attempts,
            cap_ms,
            request_timeout_ms,
        }
    }
}

/// `[providers.NAME]` (provider `i` of `n_providers`): its baseline and fault phases,
/// from its own stream.
fn provider(seed: u64, i: usize, name: &str, n_providers: usize, gw: &GatewayShape, sh: &Shape, o: &mut Out) {
    let api = if sh.anthropic { "anthropic" } else { "openai" };
    let strategy = gw.strategy;
    let request_timeout_ms = gw.request_timeout_ms;
    let mut p = stream(seed, &format!("generate/provider/{i}"));
    o.line(&format!("[providers.{name}]"));
    o.line(&format!("api = \"{api}\""));
    o.line(&format!("[providers.{name}.baseline]"));
    // latencies mostly well inside the request timeout
    let hi = (request_timeout_ms * 2 / 3).clamp(20, 1_000);
    let lo = 10.min(hi);
    if strategy == "least_latency" {
        // latencies 3× apart from one provider to the next: which one is fastest must
        // not hang on a few milliseconds of live noise
        let k = 3u64.pow(i as u32);
        let top = 3u64.pow(n_providers as u32 - 1);
        let bl = (hi / 2 / top).max(4);
        let bt = (hi / 3 / top).max(4);
        o.line(&format!("latency = {}", latency(&mut p, bl * k, bl * k * 6 / 5)));
        o.line(&format!("ttft = {}", latency(&mut p, bt * k, bt * k * 6 / 5)));
        o.line(&format!("tokens_per_s = {{ mean = {} }}", p.random_range(300u32..=500)));
    } else {
        o.line(&format!("latency = {}", latency(&mut p, lo, hi / 2)));
        o.line(&format!("ttft = {}", latency(&mut p, lo, hi / 3)));
        o.line(&format!("tokens_per_s = {{ mean = {} }}", p.random_range(100u32..=500)));
    }
    let min_tok = p.random_range(3u32..=10);
    o.line(&format!(
        "output_tokens = {{ min = {min_tok}, max = {} }}",
        min_tok + p.random_range(0u32..=20)
    ));
    if p.random_bool(0.15) {
        o.f("baseline/errors");
        o.line(&format!(
            "errors = [{{ status = 500, probability = {} }}]",
            pick(&mut p, &[0.02, 0.05])
        ));
    }
    // the first provider always has a fault; the others sometimes
    let phases = match i {
        0 => p.random_range(1..=2),
        _ => usize::from(p.random_bool(0.35)),
    };
    for k in 0..phases {
        o.line(&format!("[[providers.{name}.phase]]"));
        let w = window(&mut p, sh, o, &format!("fault{k}"));
        o.toml.push_str(&w);
        let b = fault_body(&mut p, sh, o);
        o.toml.push_str(&b);
    }
}

/// `[gateway]`: strategy and targets, health check, breaker, retries, fallback and timeouts.
fn gateway(g: &mut Stream, gw: &GatewayShape, names: &[String], streams: bool, o: &mut Out) {
    let strategy = gw.strategy;
    o.line("[gateway]");
    o.line("kind = \"builtin\"");
    o.f(match strategy {
        "fallback" => "strategy/fallback",
        "weighted" => "strategy/weighted",
        "least_latency" => "strategy/least_latency",
        _ => "strategy/cost",
    });
    o.line(&format!("strategy = \"{strategy}\""));
    let targets: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| match strategy {
            "weighted" => format!("{{ name = \"{n}\", weight = {} }}", g.random_range(1u32..=5)),
            "cost" => format!(
                "{{ name = \"{n}\", cost_per_1k = {} }}",
                pick(g, &[0.001, 0.004, 0.015]) + i as f64 * 0.0001
            ),
            _ => format!("\"{n}\""),
        })
        .collect();
    o.line(&format!("targets = [{}]", targets.join(", ")));
    health_check(g, o);
    breaker(g, o);
    retries(g, gw, o);
    let request_timeout_ms = gw.request_timeout_ms;
    let fallback = g.random_bool(0.5);
    o.f(if fallback {
        "fallback_on_failure/true"
    } else {
        "fallback_on_failure/false"
    });
    o.line(&format!("fallback_on_failure = {fallback}"));
    if g.random_bool(0.15) {
        o.f("when_all_down/panic");
        o.line("when_all_down = \"panic\"");
    }
    o.f("timeout/request");
    o.line(&format!("request_timeout = {}", ms(request_timeout_ms)));
    if streams && g.random_bool(0.5) {
        o.f("timeout/ttft");
        o.line(&format!(
            "ttft_timeout = {}",
            ms(g.random_range(50..=request_timeout_ms.max(60)))
        ));
    }
    if streams && g.random_bool(0.5) {
        o.f("timeout/stall");
        o.line(&format!(
            "stall_timeout = {}",
            ms(g.random_range(50..=request_timeout_ms.clamp(60, 600)))
        ));
    }
}

/// `health_check = { … }`, half the time.
fn health_check(g: &mut Stream, o: &mut Out) {
    if g.random_bool(0.5) {
        o.f("gateway/health_check");
        let interval = g.random_range(200..=1_500);
        let timeout = g.random_range(50..=interval.min(800));
        let rules = pick(g, &["consecutive", "envoy", "haproxy"]);
        o.f(match rules {
            "consecutive" => "health_rules/consecutive",
            "envoy" => "health_rules/envoy",
            _ => "health_rules/haproxy",
        });
        let probe = if g.random_bool(0.2) {
            o.f("health_probe/completion");
            ", probe = \"completion\""
        } else {
            ""
        };
        o.line(&format!(
            "health_check = {{ interval = {}, timeout = {}, unhealthy_threshold = {}, healthy_threshold = {}, rules = \"{rules}\"{probe} }}",
            ms(interval),
            ms(timeout),
            g.random_range(1..=3),
            g.random_range(1..=2),
        ));
    }
}

/// `breaker = { … }` of one of the three kinds, or none.
fn breaker(g: &mut Stream, o: &mut Out) {
    match g.random_range(0..4) {
        0 => o.f("breaker/none"),
        1 => {
            o.f("breaker/consecutive");
            let base = g.random_range(300..=2_000);
            o.line(&format!(
                "breaker = {{ kind = \"consecutive\", failures = {}, base_ejection = {}, max_ejection = {} }}",
                g.random_range(1..=5),
                ms(base),
                ms(base * 4)
            ));
        }
        2 => {
            o.f("breaker/failure_rate");
            let window = g.random_range(5..=20);
            o.line(&format!(
                "breaker = {{ kind = \"failure_rate\", failure_rate_threshold = {}, window_size = {window}, minimum_calls = {}, wait_open = {}, half_open_calls = {} }}",
                pick(g, &[0.3, 0.5, 0.7]),
                g.random_range(3..=window),
                ms(g.random_range(300..=2_000)),
                g.random_range(1..=5)
            ));
        }
        _ => {
            o.f("breaker/article");
            o.line(&format!(
                "breaker = {{ kind = \"article\", failure_threshold = {}, recovery_timeout = {}, half_open_max_requests = {} }}",
                g.random_range(1..=5),
                ms(g.random_range(300..=2_000)),
                g.random_range(1..=5)
            ));
        }
    }
}

/// `retries = { … }`: none, or up to two with a budget and a Retry-After cap.
fn retries(g: &mut Stream, gw: &GatewayShape, o: &mut Out) {
    let (attempts, cap_ms) = (gw.attempts, gw.cap_ms);
    if attempts == 0 {
        o.f("retries/none");
        o.line("retries = { attempts = 0 }");
    } else {
        o.f("retries/on");
        let tight = g.random_bool(0.3);
        let (ratio, min_per_s) = if tight {
            o.f("retries/tight_budget");
            (0.05, 0.5)
        } else {
            (0.2, 10.0)
        };
        let on_status = pick(
            g,
            &[
                "[429, 500, 502, 503, 504, 529]",
                "[429]",
                "[500, 502, 503]",
                "[429, 503, 529]",
            ],
        );
        if on_status.contains("429") && cap_ms < o.max_retry_after_ms {
            // a 429 asks for a longer wait than the gateway honours
            o.f("retries/retry_after_over_cap");
        }
        o.line(&format!(
            "retries = {{ attempts = {attempts}, on_status = {on_status}, on_connect_error = {}, budget_ratio = {ratio}, min_per_s = {min_per_s}, retry_after_cap = {} }}",
            g.random_bool(0.7),
            ms(cap_ms)
        ));
    }
}

/// `[traffic]`: open loop (constant or Poisson) or closed loop, and the request kinds.
fn traffic(seed: u64, opts: &GenOptions, sh: &Shape, plain: bool, o: &mut Out) {
    let api = if sh.anthropic { "anthropic" } else { "openai" };
    let (duration_ms, rate, streams) = (sh.duration_ms, sh.rate, sh.streams);
    let mut t = stream(seed, "generate/traffic");
    o.line("[traffic]");
    o.line(&format!("api = \"{api}\""));
    o.line(&format!("duration = {}", ms(duration_ms)));
    if opts.closed_loop && t.random_bool(0.35) {
        o.f("traffic/closed_loop");
        let users = t.random_range(2u32..=12);
        o.line(&format!("users = {users}"));
        o.line(&format!("spawn_rate = {}", t.random_range(2u32..=20)));
        let think = match t.random_range(0..3) {
            0 => format!("{{ kind = \"constant\", value = {} }}", ms(t.random_range(50..=500))),
            1 => {
                let lo = t.random_range(20..=300);
                format!(
                    "{{ kind = \"uniform\", min = {}, max = {} }}",
                    ms(lo),
                    ms(lo + t.random_range(0..=500))
                )
            }
            _ => format!(
                "{{ kind = \"pacing\", interval = {} }}",
                ms(t.random_range(200..=1_000))
            ),
        };
        o.line(&format!("think_time = {think}"));
    } else {
        o.line(&format!("rate = {rate:.1}"));
        if t.random_bool(0.5) {
            o.f("traffic/constant");
            o.line("arrival = \"constant\"");
        } else {
            o.f("traffic/poisson");
            o.line("arrival = \"poisson\"");
        }
    }
    let max_tokens = t.random_range(5u32..=30);
    if plain {
        o.line("[[traffic.kind]]");
        o.line("name = \"chat\"");
        o.line("stream = false");
        o.line(&format!("max_tokens = {max_tokens}"));
    }
    if streams {
        o.line("[[traffic.kind]]");
        o.line("name = \"stream\"");
        o.line("stream = true");
        o.line(&format!("max_tokens = {max_tokens}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(seed: u64, opts: &GenOptions) -> Result<(), String> {
        let g = scenario(seed, opts);
        crate::scenario::load_str(&format!("gen-{seed}.toml"), &g.toml, std::path::Path::new("."), &[])
            .map(|_| ())
            .map_err(|e| format!("seed {seed}: {e}\n{}", g.toml))
    }

    #[test]
    fn every_generated_scenario_loads() {
        for closed_loop in [false, true] {
            let opts = GenOptions {
                closed_loop,
                ..GenOptions::default()
            };
            let errors: Vec<String> = (0..500).filter_map(|s| load(s, &opts).err()).collect();
            assert!(
                errors.is_empty(),
                "{} of 500 fail:\n{}",
                errors.len(),
                errors.join("\n")
            );
        }
    }

    #[test]
    fn scenarios_stay_small() {
        for max in [6.0, 20.0, 1e9] {
            let opts = GenOptions {
                closed_loop: true,
                max_traffic_s: max,
            };
            for seed in 0..200 {
                let g = scenario(seed, &opts);
                let set = crate::scenario::load_str("g.toml", &g.toml, std::path::Path::new("."), &[]).unwrap();
                let s = &set.points[0].scenario;
                let d = s.traffic.duration.unwrap().secs_f64();
                assert!(d <= max.min(MAX_TRAFFIC_S), "seed {seed}: {d} s of traffic");
                assert!(s.traffic.rate.is_none_or(|r| r <= 30.0), "seed {seed}");
                assert!((2..=3).contains(&s.providers.len()), "seed {seed}");
                let gw = s.builtin_gateway().unwrap();
                for t in [Some(gw.request_timeout), gw.ttft_timeout, gw.stall_timeout]
                    .into_iter()
                    .flatten()
                {
                    assert!((0.01..=2.0).contains(&t.secs_f64()), "seed {seed}: timeout {t}");
                }
            }
        }
    }

    #[test]
    fn longest_traffic_option_loads() {
        let opts = GenOptions {
            closed_loop: false,
            max_traffic_s: 1e9,
        };
        for s in 0..50 {
            load(s, &opts).unwrap();
        }
    }

    #[test]
    fn same_seed_same_text_other_seed_other_text() {
        let o = GenOptions::default();
        for s in 0..50 {
            assert_eq!(scenario(s, &o), scenario(s, &o));
            assert_ne!(scenario(s, &o).toml, scenario(s + 1, &o).toml);
        }
    }

    fn missing(opts: &GenOptions, catalogue: &[&'static str]) -> Vec<&'static str> {
        let mut seen = std::collections::BTreeSet::new();
        for s in 0..200 {
            seen.extend(scenario(s, opts).features);
        }
        catalogue.iter().copied().filter(|f| !seen.contains(f)).collect()
    }

    #[test]
    fn seeds_0_to_200_cover_the_catalogue() {
        let m = missing(&GenOptions::default(), FEATURES);
        assert!(m.is_empty(), "features never generated over seeds 0..200: {m:?}");
        let closed = GenOptions {
            closed_loop: true,
            ..GenOptions::default()
        };
        let all: Vec<&'static str> = FEATURES.iter().chain(CLOSED_LOOP_FEATURES).copied().collect();
        let m = missing(&closed, &all);
        assert!(
            m.is_empty(),
            "features never generated over seeds 0..200 (closed loop on): {m:?}"
        );
    }

    #[test]
    fn open_loop_generation_has_no_users() {
        let open = GenOptions {
            closed_loop: false,
            ..GenOptions::default()
        };
        for s in 0..200 {
            let g = scenario(s, &open);
            assert!(!g.toml.contains("users"), "seed {s}");
            assert!(!g.features.contains(&"traffic/closed_loop"));
        }
    }

    #[test]
    fn features_are_in_the_catalogue() {
        let opts = GenOptions {
            closed_loop: true,
            ..GenOptions::default()
        };
        for s in 0..200 {
            for f in scenario(s, &opts).features {
                assert!(FEATURES.contains(&f) || CLOSED_LOOP_FEATURES.contains(&f), "{f}");
            }
        }
    }
}
