//! The simulator and a live `chaosgate run` classify a provider's error answer the same
//! way (`provider::classify`): the same scenario and seed in both modes, live on 127.0.0.1
//! with the builtin gateway and a few seconds of traffic.

use chaosgate::run::{self, RunOptions};
use chaosgate::scenario::load_str;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `toml` live and in the simulator; returns (live, sim) traffic reports.
fn both(name: &str, toml: &str) -> (chaosgate::analysis::LoadReport, chaosgate::analysis::LoadReport) {
    let set = load_str(&format!("{name}.toml"), toml, root(), &[]).unwrap();
    let o = RunOptions::new(tmp(name));
    let live = rt().block_on(run::run_live(&set, &o)).unwrap();
    assert!(!live.interrupted);
    let sim = run::simulate(&set, &o).unwrap();
    (
        live.report.points[0].report.traffic.clone(),
        sim.points[0].report.traffic.clone(),
    )
}

/// Primary answers every request with 429 and `retry-after: 1s` (OpenAI also sends
/// `retry-after-ms: 1000`) for the whole run; one retry on 429 with a 5 s cap, then the
/// fallback. Each request waits the Retry-After once: latency ≈ 1 s + the fallback's.
/// Before the fix the simulator retried at once (p50 0.001 ms against live 1,002 ms).
#[test]
fn retry_after_honoured_in_sim() {
    const S: &str = r#"
seed = 7
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "rate-limited"
start = "0s"
duration = "10s"
applies_to = "completions"
errors = [{ status = 429, retry_after = "1s" }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
fallback_on_failure = true
retries = { attempts = 1, on_status = [429], retry_after_cap = "5s" }
[traffic]
rate = 10.0
arrival = "constant"
duration = "3s"
"#;
    let (live, sim) = both("retry-after", S);
    // Tolerance: live p50 carries real scheduling and loopback noise (a few ms on an idle
    // machine, tens on a loaded CI core); the simulator has none. 150 ms is 15 % of the
    // 1 s wait being checked, far from the 1,000 ms gap of the drift.
    let (l, s) = (live.latency_ms.p50, sim.latency_ms.p50);
    assert!(s >= 1000.0, "sim waits the Retry-After: p50 {s} ms");
    assert!((l - s).abs() <= 150.0, "p50 live {l} ms vs sim {s} ms");
    assert_eq!(live.requests.failed, 0, "{:?}", live.failures_by_kind);
    assert_eq!(sim.requests.failed, 0, "{:?}", sim.failures_by_kind);
    assert_eq!(live.requests.ok, sim.requests.ok);
}

/// Primary answers every request with a quota 429 (`insufficient_quota`, no
/// `retry-after`, `x-should-retry: false`); retries on 429 and fallback are configured,
/// yet a quota answer is the provider's final word: both modes pass every 429 on.
/// Before the fix the simulator retried it and then fell back (every request ok).
#[test]
fn quota_429_never_retried_in_sim() {
    const S: &str = r#"
seed = 7
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "quota"
start = "0s"
duration = "10s"
applies_to = "completions"
errors = [{ status = 429, kind = "insufficient_quota" }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
fallback_on_failure = true
retries = { attempts = 1, on_status = [429], retry_after_cap = "5s" }
[traffic]
rate = 10.0
arrival = "constant"
duration = "2s"
"#;
    let (live, sim) = both("quota", S);
    // exact: the classification is deterministic and no timing decides it
    let q = |r: &chaosgate::analysis::LoadReport| r.failures_by_kind.get("http_429").copied().unwrap_or(0);
    assert!(sim.requests.scheduled > 0);
    assert_eq!(
        q(&sim),
        sim.requests.scheduled,
        "sim passes every quota 429 on: {:?}",
        sim.requests
    );
    assert_eq!(q(&live), live.requests.scheduled, "live: {:?}", live.requests);
    assert_eq!(live.requests.ok, sim.requests.ok);
    assert_eq!(sim.requests.ok, 0);
}
