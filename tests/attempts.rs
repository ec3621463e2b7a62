//! The attempt figures (`analysis/attempts.rs`, docs/semantics.md §13) end to end, in both
//! drivers: a scenario whose retry amplification is known by construction, simulated and
//! run live through the reference gateway with mock providers on 127.0.0.1.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets

mod common;

use chaosgate::analysis::attempts::AttemptStats;
use chaosgate::run::{self, RunOptions};
use chaosgate::scenario::load_str;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-test-attempts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Primary answers 502 during [1 s, 3 s) of a 4 s run at 10 req/s (constant: intended at
/// 0.0, 0.1, …, 3.9 s); the gateway retries a 502 twice on the same target, then falls
/// back; no health checks, no breaker, a retry budget that never binds, no latency. So a
/// request intended inside the fault makes 4 attempts (3 at primary, 1 at fallback), one
/// outside it makes 1:
/// - 40 requests, 20 of them intended in [1 s, 3 s);
/// - 20 × 4 + 20 × 1 = 100 attempts: amplification 2.5;
/// - during the fault 80 attempts for 20 requests: 4.0 (a request's attempts follow it
///   within milliseconds, far inside the 100 ms between requests).
const RETRY_STORM: &str = r#"
seed = 3
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "bad-gateway"
start = "1s"
duration = "2s"
applies_to = "completions"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
fallback_on_failure = true
retries = { attempts = 2, on_status = [502], budget_ratio = 10.0, min_per_s = 1000.0 }
[traffic]
rate = 10.0
arrival = "constant"
duration = "4s"
"#;

fn check_retry_storm(a: &AttemptStats, mode: &str) {
    assert_eq!(a.user_requests, 40, "{mode}: {a:?}");
    assert_eq!(a.provider_attempts, 100, "{mode}: {a:?}");
    assert_eq!(a.amplification, Some(2.5), "{mode}");
    assert_eq!(
        (a.fault_user_requests, a.fault_provider_attempts),
        (20, 80),
        "{mode}: {a:?}"
    );
    assert_eq!(a.amplification_during_fault, Some(4.0), "{mode}");
    assert_eq!(
        a.matched_requests, a.user_requests,
        "{mode}: every attempt carried its request's marker"
    );
    assert_eq!(a.max_attempts_per_request, Some(4), "{mode}");
    assert_eq!(a.truncated_successes, Some(0), "{mode}");
    assert_eq!(a.hangs, 0, "{mode}");
    assert!(a.retry_after.is_empty(), "{mode}: no 429 in this scenario");
    assert_eq!(
        a.probes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["fallback", "primary"],
        "{mode}: every provider is listed"
    );
    assert!(
        a.probes.values().all(|p| p.probes == 0),
        "{mode}: no health checks configured"
    );
}

#[test]
fn sim_retry_amplification_against_a_502_phase_is_known_by_construction() {
    let set = load_str("retry-storm.toml", RETRY_STORM, root(), &[]).unwrap();
    let sw = run::simulate(&set, &RunOptions::new(tmp("sim"))).unwrap();
    let r = &sw.points[0].report;
    check_retry_storm(&r.attempts.first, "sim");
    assert_eq!(
        r.traffic.requests.failed, 0,
        "every request failed over: {:?}",
        r.traffic.failures_by_kind
    );
    assert_eq!(r.attempts.amplification.mean, Some(2.5));
    assert_eq!(r.attempts.hangs.max, Some(0.0));
}

#[test]
fn live_retry_amplification_through_the_builtin_gateway_equals_the_sims() {
    let set = load_str("retry-storm.toml", RETRY_STORM, root(), &[]).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = rt.block_on(run::run_live(&set, &RunOptions::new(tmp("live")))).unwrap();
    assert!(!live.interrupted);
    let r = &live.report.points[0].report;
    assert_eq!(r.traffic.requests.failed, 0, "{:?}", r.traffic.failures_by_kind);
    check_retry_storm(&r.attempts.first, "live");
}

/// A 429 with `Retry-After: 1s` on every request for the whole run, one retry on 429 that
/// waits it out, then the fallback. One request every 2 s: each request's retry comes 1 s
/// after its 429 and the next request 1 s after the retry's 429, so every gap is exactly
/// the 1 s asked (margin 0: honoured); at 10 req/s new requests reach the rate-limited
/// provider 100 ms after a 429: not honoured (Retry-After is the provider's, not one
/// request's).
#[test]
fn sim_retry_after_compliance_honoured_and_violated() {
    let scenario = |rate: f64| {
        format!(
            r#"
seed = 5
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "limited"
start = "0s"
applies_to = "completions"
errors = [{{ status = 429, retry_after = "1s" }}]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
fallback_on_failure = true
retries = {{ attempts = 1, on_status = [429], retry_after_cap = "5s" }}
[traffic]
rate = {rate}
arrival = "constant"
duration = "5s"
"#
        )
    };
    let run = |rate: f64| {
        let set = load_str("ra.toml", &scenario(rate), root(), &[]).unwrap();
        let sw = run::simulate(&set, &RunOptions::new(tmp("ra"))).unwrap();
        sw.points[0].report.attempts.first.retry_after["primary"].clone()
    };
    // requests at 0, 2 and 4 s: 429, the retry 1 s later (429 again), the fallback
    let slow = run(0.5);
    assert_eq!(slow.with_header, 6, "two 429s per request: {slow:?}");
    assert_eq!(slow.followed, 5, "the last 429 is followed by nothing: {slow:?}");
    assert_eq!((slow.violations, slow.min_margin_s), (0, Some(0.0)), "{slow:?}");
    let fast = run(10.0);
    assert!(fast.violations > 0, "{fast:?}");
    // a retry and a new request at the same instant as a 429 were already on their way
    // (analysis::attempts::IN_FLIGHT_GRACE): the next request, 100 ms on, is the one judged
    assert_eq!(fast.min_gap_s, Some(0.1), "{fast:?}");
}

/// What a mock records for the attempt figures: the request marker's id (none for a
/// probe), a 429's Retry-After as its headers ask for it, the tokens of the answer, and
/// whether it came while the run's clock was held (an external gateway's boot-time
/// checks, which are not part of the run).
#[test]
fn mock_arrivals_carry_the_marker_retry_after_tokens_and_the_held_clock() {
    use chaosgate::fault::Profile;
    use chaosgate::live::mock::{self, MockConfig};
    use chaosgate::provider::Api;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let profile = Profile::from_toml(
            "[[phase]]\nname = \"limited\"\nstart = \"0s\"\napplies_to = \"completions\"\n\
             errors = [{ status = 429, retry_after = \"1500ms\", probability = 0.5 }]\n",
            "p.toml",
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (h, st) = mock::spawn_held(MockConfig::new("p", Api::OpenAi, profile, 1), listener)
            .await
            .unwrap();
        // held: a boot-time health check
        common::request(h.addr, "GET", "/health", &[], "").await;
        st.start_clock();
        let marked = |id: u64| {
            let mut v: serde_json::Value = serde_json::from_str(&common::openai_chat(false, 7)).unwrap();
            v["messages"][0]["content"] = format!("[cg-req={id}] and the rest of the prompt").into();
            v.to_string()
        };
        for id in 0..20 {
            common::request(h.addr, "POST", "/v1/chat/completions", &[], &marked(id)).await;
        }
        common::request(h.addr, "GET", "/health", &[], "").await;
        let log: Vec<_> = st.arrivals.lock().unwrap().iter().cloned().collect();
        assert_eq!(log.len(), 22);
        assert!(
            log[0].before_start && log[0].probe && log[0].request.is_none(),
            "{:?}",
            log[0]
        );
        assert!(!log[21].before_start && log[21].probe && log[21].request.is_none());
        let users = &log[1..21];
        assert_eq!(
            users.iter().map(|a| a.request).collect::<Vec<_>>(),
            (0..20).map(Some).collect::<Vec<_>>()
        );
        let (limited, ok): (Vec<_>, Vec<_>) = users.iter().partition(|a| a.verdict == "error:429");
        assert!(
            !limited.is_empty() && !ok.is_empty(),
            "a coin per request: both answers"
        );
        for a in &limited {
            assert_eq!(
                (a.retry_after_ns, a.tokens),
                (Some(1_500_000_000), 0),
                "retry-after-ms 1500: {a:?}"
            );
        }
        for a in &ok {
            assert_eq!(
                (a.verdict.as_ref(), a.retry_after_ns, a.tokens),
                ("ok", None, 7),
                "{a:?}"
            );
        }
        let rec = users[0].record("p");
        assert_eq!((rec.provider.as_str(), rec.request, rec.health), ("p", Some(0), false));
        assert!(log[21].record("p").health);
        h.shutdown().await;
    });
}
