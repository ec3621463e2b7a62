//! Every shipped fault profile parses, validates, says what it models and how to serve
//! it, and behaves as its comment claims (checked in virtual time with `Plan::decide`, no
//! sockets). Together the profiles use every feature of the format at least once.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::fault::latency::Latency;
use chaosgate::fault::throughput::Process;
use chaosgate::fault::{
    ConnectionKind, Endpoint, ErrorVerdict, Plan, Profile, RequestFacts, Section, StreamKind, Success, Verdict,
};
use chaosgate::provider::ErrorKind;
use chaosgate::time::{Nanos, NS_PER_MS, NS_PER_S};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn profile_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            profile_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    profile_files(&root().join("fault-profiles"), &mut files);
    files.sort();
    files
}

fn load(name: &str) -> Profile {
    Profile::load(&root().join("fault-profiles").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(name: &str, seed: u64) -> Plan {
    Plan::new(&load(name), seed, "p")
}

fn chat(stream: bool) -> RequestFacts {
    RequestFacts {
        endpoint: Endpoint::Chat,
        stream,
        input_tokens: 20,
        max_tokens: Some(40),
    }
}

fn health() -> RequestFacts {
    RequestFacts::health()
}

fn secs(s: f64) -> Nanos {
    (s * NS_PER_S as f64) as Nanos
}

/// HTTP status of a verdict; `None` for connection-level faults.
fn status(v: &Verdict) -> Option<u16> {
    match v {
        Verdict::Error(ErrorVerdict { status, .. }) => Some(*status),
        Verdict::Ok(_) => Some(200),
        _ => None,
    }
}

fn ok(v: Verdict) -> Success {
    match v {
        Verdict::Ok(s) => s,
        v => panic!("expected a success, got {v:?}"),
    }
}

fn at(p: &mut Plan, t: Nanos, f: &RequestFacts) -> Verdict {
    p.decide(t, f, None).verdict
}

/// Share of `n` requests at `t` whose verdict satisfies `pred`.
fn share(p: &mut Plan, t: Nanos, f: &RequestFacts, n: usize, pred: impl Fn(&Verdict) -> bool) -> f64 {
    (0..n).filter(|_| pred(&at(p, t, f))).count() as f64 / n as f64
}

fn median(mut v: Vec<Nanos>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64
}

fn quantile(v: &mut [Nanos], q: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64) * q) as usize] as f64 / NS_PER_S as f64
}

// ---------------------------------------------------------------------------------------
// 1. every file loads, validates and opens with what it models and how to serve it

#[test]
fn every_profile_parses_validates_and_says_how_to_serve_it() {
    let files = all_files();
    assert!(files.len() >= 12, "only {} profiles", files.len());
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        assert!(src.starts_with('#'), "{} must open with a comment", f.display());
        let head: String = src
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            head.contains("chaosgate mock") && head.contains("--profile fault-profiles/"),
            "{}: the opening comment must give the serve command",
            f.display()
        );
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        assert!(
            head.contains(&rel),
            "{}: the serve command must name the file itself ({rel})",
            f.display()
        );
        let p = Profile::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.description.is_some(), "{}: give a description", f.display());
    }
}

/// Guards the promise that the shipped set demonstrates the whole format.
#[test]
fn the_profiles_use_every_feature_at_least_once() {
    let mut used = BTreeSet::new();
    let mut note = |s: &str| {
        used.insert(s.to_string());
    };
    for f in all_files() {
        let p = Profile::load(&f).unwrap();
        if p.name.is_some() {
            note("name");
        }
        let sections = std::iter::once((&p.baseline, true)).chain(p.phases.iter().map(|s| (s, false)));
        for (s, is_base) in sections {
            feature_names(s, is_base, &mut note);
        }
    }
    let want = [
        "name",
        "baseline.health",
        "start",
        "duration",
        "open-ended",
        "ramp_in",
        "ramp_out",
        "flapping",
        "random",
        "applies_to=completions",
        "applies_to=health",
        "applies_to=all",
        "latency",
        "ttft",
        "phase.ttft",
        "tokens_per_s",
        "phase.tokens_per_s",
        "embedding_latency",
        "latency_multiplier",
        "output_tokens",
        "rate_limit",
        "phase.rate_limit",
        "latency:fixed",
        "latency:uniform",
        "latency:normal",
        "latency:lognormal",
        "latency:pareto",
        "latency:quantiles",
        "latency:cap",
        "process:constant",
        "process:random_walk",
        "process:regime",
        "process:periodic",
        "error.kind",
        "error.kind=insufficient_quota",
        "error.retry_after",
        "error.after",
        "error.message",
        "connection:reset",
        "connection:hang",
        "connection:headers_then_silence",
        "connection:slow_body",
        "connection.after",
        "stream:cut",
        "stream:error",
        "stream:malformed",
        "stream:no_terminal",
        "stream:ping_stall",
        "stream:silent_stall",
        "stream.ping_every",
        "health.status",
        "health.latency",
        "health.hang",
        "health.probability",
    ];
    let missing: Vec<_> = want.iter().filter(|w| !used.contains(**w)).collect();
    assert!(missing.is_empty(), "no shipped profile uses {missing:?}");
}

fn feature_names(s: &Section, is_base: bool, note: &mut impl FnMut(&str)) {
    let lat = |l: &Latency, note: &mut dyn FnMut(&str)| {
        let (kind, cap) = match l {
            Latency::Fixed { cap, .. } => ("fixed", cap),
            Latency::Uniform { cap, .. } => ("uniform", cap),
            Latency::Normal { cap, .. } => ("normal", cap),
            Latency::Lognormal { cap, .. } => ("lognormal", cap),
            Latency::Pareto { cap, .. } => ("pareto", cap),
            Latency::Quantiles { cap, .. } => ("quantiles", cap),
        };
        note(&format!("latency:{kind}"));
        if cap.is_some() {
            note("latency:cap");
        }
    };
    if is_base && s.health.is_some() {
        note("baseline.health");
    }
    if !is_base {
        if s.start.is_some() {
            note("start");
        }
        match s.duration {
            Some(_) => note("duration"),
            None => note("open-ended"),
        }
        for (k, set) in [
            ("ramp_in", s.ramp_in.is_some()),
            ("ramp_out", s.ramp_out.is_some()),
            ("flapping", s.flapping.is_some()),
            ("random", s.random.is_some()),
            ("phase.ttft", s.ttft.is_some()),
            ("phase.tokens_per_s", s.tokens_per_s.is_some()),
            ("phase.rate_limit", s.rate_limit.is_some()),
        ] {
            if set {
                note(k);
            }
        }
        note(&format!("applies_to={}", format!("{:?}", s.scope()).to_lowercase()));
    }
    for (k, l) in [
        ("latency", &s.latency),
        ("ttft", &s.ttft),
        ("embedding_latency", &s.embedding_latency),
    ] {
        if let Some(l) = l {
            note(k);
            lat(l, note);
        }
    }
    if let Some(t) = &s.tokens_per_s {
        note("tokens_per_s");
        note(match t.process {
            Process::Constant => "process:constant",
            Process::RandomWalk => "process:random_walk",
            Process::Regime => "process:regime",
            Process::Periodic => "process:periodic",
        });
    }
    for (k, set) in [
        ("latency_multiplier", s.latency_multiplier.is_some()),
        ("output_tokens", s.output_tokens.is_some()),
        ("rate_limit", s.rate_limit.is_some()),
    ] {
        if set {
            note(k);
        }
    }
    for e in &s.errors {
        for (k, set) in [
            ("error.kind", e.kind.is_some()),
            (
                "error.kind=insufficient_quota",
                e.kind == Some(ErrorKind::InsufficientQuota),
            ),
            ("error.retry_after", e.retry_after.is_some()),
            ("error.after", e.after.is_some()),
            ("error.message", e.message.is_some()),
        ] {
            if set {
                note(k);
            }
        }
    }
    for c in &s.connection {
        note(match c.kind {
            ConnectionKind::Reset => "connection:reset",
            ConnectionKind::Hang => "connection:hang",
            ConnectionKind::HeadersThenSilence => "connection:headers_then_silence",
            ConnectionKind::SlowBody => "connection:slow_body",
        });
        if c.after.is_some() {
            note("connection.after");
        }
    }
    for r in &s.stream {
        note(match r.kind {
            StreamKind::Cut => "stream:cut",
            StreamKind::Error => "stream:error",
            StreamKind::Malformed => "stream:malformed",
            StreamKind::NoTerminal => "stream:no_terminal",
            StreamKind::PingStall => "stream:ping_stall",
            StreamKind::SilentStall => "stream:silent_stall",
        });
        if r.ping_every.is_some() {
            note("stream.ping_every");
        }
    }
    if let Some(h) = &s.health {
        if h.status != 200 {
            note("health.status");
        }
        if h.latency.is_some() {
            note("health.latency");
        }
        if h.hang {
            note("health.hang");
        }
        if h.probability < 1.0 {
            note("health.probability");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. a misspelt key names the file, the line and serde's list of expected keys

#[test]
fn misspelt_key_reports_file_line_and_expected_names() {
    let src = std::fs::read_to_string(root().join("fault-profiles/overloaded-529.toml")).unwrap();
    let bad = src.replacen("probability = 0.6", "probabilty = 0.6", 1);
    assert_ne!(bad, src);
    let dir = std::env::temp_dir().join(format!("chaosgate-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.toml");
    std::fs::write(&path, &bad).unwrap();
    let err = Profile::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).ok();
    let line = bad.lines().position(|l| l.contains("probabilty")).unwrap() + 1;
    assert!(err.contains(&format!("{}:{line}:", path.display())), "{err}");
    assert!(err.contains("unknown field `probabilty`, expected one of"), "{err}");
    assert!(err.contains("`probability`"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 2. behaviour, in virtual time

#[test]
fn healthy_is_fast_steady_and_almost_never_fails() {
    let mut p = plan("healthy.toml", 1);
    let n = 20_000;
    let mut ttft = Vec::new();
    let mut errors = 0;
    for i in 0..n as u64 {
        let f = RequestFacts {
            max_tokens: Some(1000),
            ..chat(true)
        };
        match at(&mut p, i * 50 * NS_PER_MS, &f) {
            Verdict::Ok(s) => {
                assert!((50..=400).contains(&s.output_tokens), "{}", s.output_tokens);
                let rate = NS_PER_S as f64 / s.token_interval as f64;
                assert!((40.0..110.0).contains(&rate), "{rate} tok/s");
                assert!(s.stream_fault.is_none());
                ttft.push(s.first);
            }
            Verdict::Error(e) => {
                assert_eq!(e.status, 500);
                errors += 1;
            }
            v => panic!("{v:?}"),
        }
    }
    assert!(errors <= 15, "{errors} errors in {n}");
    assert!((quantile(&mut ttft, 0.5) - 0.4).abs() < 0.03);
    assert!((quantile(&mut ttft, 0.99) - 1.5).abs() < 0.2);
    // output length never exceeds the request's max_tokens
    assert_eq!(ok(at(&mut p, 0, &chat(true))).output_tokens, 40);
    let e = (0..200)
        .map(|_| {
            let f = RequestFacts {
                endpoint: Endpoint::Embeddings,
                ..chat(false)
            };
            ok(at(&mut p, 0, &f)).first
        })
        .collect();
    assert!((median(e) / 1e6 - 50.0).abs() < 8.0);
}

#[test]
fn hard_down_and_hang_from_t0() {
    let mut p = plan("hard-down.toml", 1);
    assert_eq!(status(&at(&mut p, 0, &chat(false))), Some(503));
    assert_eq!(status(&at(&mut p, 0, &chat(true))), Some(503));
    assert_eq!(status(&at(&mut p, 0, &health())), Some(503));
    assert_eq!(status(&at(&mut p, secs(3600.0), &health())), Some(503));
    let mut p = plan("hang.toml", 1);
    assert_eq!(at(&mut p, 0, &chat(true)), Verdict::Hang);
    assert_eq!(at(&mut p, 0, &chat(false)), Verdict::Hang);
    assert_eq!(at(&mut p, 0, &health()), Verdict::Hang);
}

#[test]
fn partial_outage_502s_completions_for_four_minutes_while_health_is_ok() {
    let mut p = plan("anthropic-partial-outage.toml", 1);
    let ok_share = |p: &mut Plan, t: f64| share(p, secs(t), &chat(false), 200, |v| status(v) == Some(200));
    assert!(ok_share(&mut p, 30.0) > 0.99);
    assert!(ok_share(&mut p, 59.9) > 0.99);
    for i in 0..1000u64 {
        let t = secs(60.0) + i * 240 * NS_PER_MS;
        match at(&mut p, t, &chat(i % 2 == 0)) {
            Verdict::Error(e) => {
                assert_eq!((e.status, e.kind), (502, ErrorKind::BadGateway));
                assert_eq!(e.after, 30 * NS_PER_MS);
            }
            v => panic!("at {t}: {v:?}"),
        }
        assert_eq!(status(&at(&mut p, t, &health())), Some(200));
    }
    assert!(ok_share(&mut p, 300.0) > 0.99);
    let w = p.fault_windows(secs(3600.0));
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].start, w[0].end), (secs(60.0), secs(300.0)));
    // the article's Anthropic Direct row: non-streamed latency p50 1.89 s, p99 6.5 s
    let mut lat: Vec<Nanos> = (0..20_000)
        .filter_map(|_| match at(&mut p, secs(10.0), &chat(false)) {
            Verdict::Ok(s) => Some(s.first),
            _ => None,
        })
        .collect();
    assert!((quantile(&mut lat, 0.5) - 1.89).abs() < 0.06);
    assert!((quantile(&mut lat, 0.99) - 6.5).abs() < 0.4);
}

#[test]
fn latency_tail_hits_the_dashboard_quantiles() {
    let mut p = plan("latency-tail.toml", 2);
    let mut lat = Vec::new();
    let mut ttft = Vec::new();
    for _ in 0..20_000 {
        if let Verdict::Ok(s) = at(&mut p, 0, &chat(false)) {
            lat.push(s.first);
        }
        if let Verdict::Ok(s) = at(&mut p, 0, &chat(true)) {
            ttft.push(s.first);
        }
    }
    for (q, want) in [(0.5, 1.52), (0.95, 3.89), (0.99, 6.1)] {
        let got = quantile(&mut lat, q);
        assert!((got - want).abs() / want < 0.06, "p{q}: {got} vs {want}");
    }
    // Pareto(min 250 ms, alpha 1.6): p99 = 0.25 / 0.01^(1/1.6) ≈ 4.45 s
    assert!(quantile(&mut ttft, 0.0) >= 0.25);
    assert!((quantile(&mut ttft, 0.99) - 4.45).abs() < 0.6);
    assert!(quantile(&mut ttft, 1.0 - 1e-9) <= 30.0);
}

#[test]
fn throughput_swings_reproduce_the_together_ai_row() {
    let mut p = plan("throughput-swings.toml", 7);
    let rates: Vec<f64> = (0..7200u64)
        .map(|s| NS_PER_S as f64 / ok(at(&mut p, s * NS_PER_S, &chat(true))).token_interval as f64)
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64).sqrt();
    assert!((mean - 131.7).abs() / 131.7 < 0.05, "mean {mean}");
    assert!((sd / mean - 0.312).abs() < 0.05, "cv {}", sd / mean);
    // a walk, not white noise: neighbouring seconds are correlated
    let lag1 = rates.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>() / (rates.len() - 1) as f64;
    assert!(lag1 / (sd * sd) > 0.6, "lag-1 correlation {}", lag1 / (sd * sd));
}

#[test]
fn rate_limit_storm_429s_with_consistent_headers_only_during_the_storm() {
    let mut p = plan("rate-limit-storm.toml", 1);
    // 10 requests per second: ample before the storm
    for i in 0..300u64 {
        let s = ok(at(&mut p, i * 100 * NS_PER_MS, &chat(false)));
        assert_eq!(s.rate_limit.unwrap().limit_requests, 3000);
    }
    // the storm: the 30-request bucket drains, then 429s with retry-after
    let mut remaining = Vec::new();
    let mut first_429 = None;
    for i in 0..100u64 {
        let t = secs(30.0) + i * 100 * NS_PER_MS;
        match at(&mut p, t, &chat(false)) {
            Verdict::Ok(s) => remaining.push(s.rate_limit.unwrap().remaining_requests),
            Verdict::Error(e) => {
                first_429 = Some(e);
                break;
            }
            v => panic!("{v:?}"),
        }
    }
    let e = first_429.expect("the storm must produce 429s");
    assert_eq!((e.status, e.kind), (429, ErrorKind::RateLimit));
    let rl = e.rate_limit.unwrap();
    assert_eq!((rl.limit_requests, rl.limit_tokens), (30, 20_000));
    assert_eq!(rl.remaining_requests, 0);
    // retry-after = time until one request's worth refills (30/min → ≤ 2 s)
    let ra = e.retry_after.unwrap();
    assert!(ra > 0 && ra <= 2 * NS_PER_S, "{ra}");
    // remaining-requests fell by one per request from the clamped 30
    assert!(remaining.len() >= 29, "{remaining:?}");
    assert!(
        remaining.windows(2).all(|w| w[1] + 1 == w[0] || w[1] == w[0]),
        "{remaining:?}"
    );
    // in the middle of the storm most requests at 10/s are refused
    let limited = (0..200u64)
        .filter(|i| status(&at(&mut p, secs(90.0) + i * 100 * NS_PER_MS, &chat(false))) == Some(429))
        .count();
    assert!(limited > 150, "{limited}/200");
    // after the storm (ends at 150 s) the ample limits are back
    for i in 0..100u64 {
        assert_eq!(
            status(&at(&mut p, secs(151.0) + i * 100 * NS_PER_MS, &chat(false))),
            Some(200)
        );
    }
}

#[test]
fn midstream_faults_at_their_configured_rates() {
    let mut p = plan("midstream-cut.toml", 3);
    let n = 20_000;
    let mut count = std::collections::BTreeMap::new();
    for i in 0..n as u64 {
        if let Some(f) = ok(at(&mut p, i * NS_PER_MS, &chat(true))).stream_fault {
            *count.entry(format!("{:?}", f.kind)).or_insert(0usize) += 1;
            match f.kind {
                StreamKind::Cut => assert_eq!(f.after_tokens, 8),
                StreamKind::Error => assert_eq!((f.after_tokens, f.error), (3, ErrorKind::Server)),
                _ => {}
            }
        }
    }
    let rate = |k: StreamKind| *count.get(&format!("{k:?}")).unwrap_or(&0) as f64 / n as f64;
    // first rule that fires wins: each later rule only sees the streams not yet faulted
    let cut = 0.05;
    let err = 0.95 * 0.02;
    let no_term = 0.95 * 0.98 * 0.01;
    let malformed = 0.95 * 0.98 * 0.99 * 0.005;
    assert!((rate(StreamKind::Cut) - cut).abs() < 0.006, "{count:?}");
    assert!((rate(StreamKind::Error) - err).abs() < 0.004, "{count:?}");
    assert!((rate(StreamKind::NoTerminal) - no_term).abs() < 0.003, "{count:?}");
    assert!((rate(StreamKind::Malformed) - malformed).abs() < 0.002, "{count:?}");
    // non-streamed requests never get stream faults
    assert!((0..1000).all(|_| ok(at(&mut p, 0, &chat(false))).stream_fault.is_none()));
}

#[test]
fn overloaded_bursts_are_529s_on_completions_only() {
    let mut p = plan("overloaded-529.toml", 5);
    let w = p.fault_windows(secs(3600.0));
    // ~1 burst per 2m20s: ~26 an hour; mean length ~20 s
    assert!((12..45).contains(&w.len()), "{} bursts in an hour", w.len());
    let mean_len = w.iter().map(|w| w.end - w.start).sum::<u64>() as f64 / w.len() as f64 / 1e9;
    assert!((8.0..40.0).contains(&mean_len), "{mean_len}");
    let mid = (w[0].start + w[0].end) / 2;
    let n529 = share(&mut p, mid, &chat(false), 1000, |v| status(v) == Some(529));
    assert!((0.54..0.66).contains(&n529), "{n529}");
    match at(&mut p, mid, &chat(false)) {
        Verdict::Error(e) => {
            assert_eq!(e.kind, ErrorKind::Overloaded);
            assert_eq!(e.retry_after, Some(2 * NS_PER_S));
        }
        Verdict::Ok(_) => {}
        v => panic!("{v:?}"),
    }
    let in_band = share(
        &mut p,
        mid,
        &chat(true),
        2000,
        |v| matches!(v, Verdict::Ok(s) if s.stream_fault.is_some_and(|f| f.error == ErrorKind::Overloaded)),
    );
    assert!((0.02..0.07).contains(&in_band), "{in_band}"); // 10 % of the 40 % that start
    assert_eq!(status(&at(&mut p, mid, &health())), Some(200));
    // between bursts: clean
    let quiet = w[0].end + (w[1].start - w[0].end) / 2;
    assert_eq!(share(&mut p, quiet, &chat(false), 200, |v| status(v) == Some(200)), 1.0);
}

#[test]
fn flapping_alternates_between_down_and_up() {
    let mut p = plan("flapping.toml", 1);
    let down = |p: &mut Plan, t: f64, f: &RequestFacts| share(p, secs(t), f, 200, |v| status(v) != Some(200));
    assert_eq!(down(&mut p, 10.0, &chat(false)), 0.0);
    for cycle in 0..10 {
        let t0 = 30.0 + 60.0 * cycle as f64;
        assert_eq!(down(&mut p, t0 + 5.0, &chat(false)), 1.0, "cycle {cycle} on");
        assert_eq!(down(&mut p, t0 + 5.0, &health()), 1.0, "cycle {cycle} health");
        assert_eq!(down(&mut p, t0 + 30.0, &chat(false)), 0.0, "cycle {cycle} off");
        assert_eq!(down(&mut p, t0 + 30.0, &health()), 0.0);
    }
    assert_eq!(
        down(&mut p, 30.0 + 600.0 + 5.0, &chat(false)),
        0.0,
        "over after 10 minutes"
    );
    let resets = share(
        &mut p,
        secs(35.0),
        &chat(false),
        2000,
        |v| matches!(v, Verdict::Reset { after } if *after == 1500 * NS_PER_MS),
    );
    assert!((0.26..0.34).contains(&resets), "{resets}");
    assert_eq!(p.fault_windows(secs(3600.0)).len(), 10);
}

#[test]
fn brownout_is_slow_but_never_fails() {
    let mut p = plan("brownout.toml", 1);
    let sample = |p: &mut Plan, t: f64| -> (f64, f64) {
        let v: Vec<Success> = (0..400).map(|_| ok(at(p, secs(t), &chat(true)))).collect();
        let ttft = median(v.iter().map(|s| s.first).collect());
        let rate = NS_PER_S as f64 / v[0].token_interval as f64;
        (ttft, rate)
    };
    let (ttft0, rate0) = sample(&mut p, 10.0);
    let (ttft1, rate1) = sample(&mut p, 120.0);
    assert!((ttft1 / ttft0 - 2.0).abs() < 0.3, "{ttft0} → {ttft1}");
    assert!((rate0 / rate1 - 2.0).abs() < 0.01, "{rate0} → {rate1}");
    // the queueing stage: TTFT p50 1.2 s × 2, ~30 tok/s ÷ 2
    let (ttft2, _) = sample(&mut p, 180.0);
    assert!((ttft2 / 1e9 - 2.4).abs() < 0.3, "{ttft2}");
    let rates: Vec<f64> = (150..240)
        .map(|s| NS_PER_S as f64 / ok(at(&mut p, secs(s as f64), &chat(true))).token_interval as f64)
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    assert!((10.0..20.0).contains(&mean), "{mean}");
    // embeddings slow down too: 60 ms × 2
    let emb = RequestFacts {
        endpoint: Endpoint::Embeddings,
        ..chat(false)
    };
    assert_eq!(ok(at(&mut p, secs(120.0), &emb)).first, 120 * NS_PER_MS);
    // and nothing ever fails, ramps included
    for s in 0..480u64 {
        assert!(matches!(at(&mut p, s * NS_PER_S, &chat(s % 2 == 0)), Verdict::Ok(x) if x.stream_fault.is_none()));
        assert_eq!(status(&at(&mut p, s * NS_PER_S, &health())), Some(200));
    }
}

#[test]
fn grey_failure_health_and_completions_disagree() {
    let mut p = plan("grey-failure.toml", 1);
    // 1) completions bad, /health fine
    let t = secs(60.0);
    assert_eq!(share(&mut p, t, &health(), 100, |v| status(v) == Some(200)), 1.0);
    let mut kinds = BTreeSet::new();
    let bad = share(&mut p, t, &chat(true), 1000, |v| match v {
        Verdict::Ok(s) => s.stream_fault.is_some() || s.slow_body_bytes_per_s == Some(200),
        _ => true,
    });
    // clean only if no connection rule fires (0.8 · 0.9 · 0.8) and no stream rule (0.5 · 0.7)
    let clean = 0.8 * 0.9 * 0.8 * 0.5 * 0.7;
    assert!((bad - (1.0 - clean)).abs() < 0.04, "{bad}");
    for _ in 0..500 {
        kinds.insert(match at(&mut p, t, &chat(true)) {
            Verdict::Ok(s) => match s.stream_fault {
                Some(f) => format!("{:?}", f.kind),
                None if s.slow_body_bytes_per_s.is_some() => "SlowBody".into(),
                None => "clean".into(),
            },
            Verdict::HeadersThenSilence { after } => {
                assert_eq!(after, 300 * NS_PER_MS);
                "HeadersThenSilence".into()
            }
            v => format!("{v:?}"),
        });
    }
    for k in ["PingStall", "SilentStall", "SlowBody", "HeadersThenSilence", "Hang"] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
    // 2) /health failing (70 %, slowly) while completions are fine
    let t = secs(330.0);
    let failing: Vec<Verdict> = (0..1000).map(|_| at(&mut p, t, &health())).collect();
    let n503 = failing.iter().filter(|v| status(v) == Some(503)).count();
    assert!((630..770).contains(&n503), "{n503}");
    for v in &failing {
        if let Verdict::Error(e) = v {
            assert!((NS_PER_S..=3 * NS_PER_S).contains(&e.after), "{}", e.after);
        }
    }
    assert_eq!(share(&mut p, t, &chat(false), 200, |v| status(v) == Some(200)), 1.0);
    // 3) half the probes hang, completions fine
    let t = secs(450.0);
    let hung = share(&mut p, t, &health(), 1000, |v| *v == Verdict::Hang);
    assert!((0.44..0.56).contains(&hung), "{hung}");
    assert_eq!(share(&mut p, t, &chat(true), 200, |v| status(v) == Some(200)), 1.0);
    // after all phases: all clear
    assert_eq!(
        share(&mut p, secs(500.0), &health(), 100, |v| status(v) == Some(200)),
        1.0
    );
}

#[test]
fn quota_exhausted_is_a_non_retryable_429_on_completions_only() {
    let mut p = plan("quota-exhausted.toml", 1);
    assert_eq!(load("quota-exhausted.toml").name.as_deref(), Some("quota-exhausted"));
    assert_eq!(
        share(&mut p, secs(60.0), &chat(false), 200, |v| status(v) == Some(200)),
        1.0
    );
    let leak = share(&mut p, secs(100.0), &chat(false), 2000, |v| status(v) == Some(429));
    assert!((0.03..0.07).contains(&leak), "{leak}");
    for t in [120.0, 600.0, 7200.0] {
        match at(&mut p, secs(t), &chat(true)) {
            Verdict::Error(e) => {
                assert_eq!(
                    (e.status, e.kind, e.retry_after),
                    (429, ErrorKind::InsufficientQuota, None)
                );
                assert!(e.message.unwrap().contains("exceeded your current quota"));
            }
            v => panic!("{v:?}"),
        }
        let emb = RequestFacts {
            endpoint: Endpoint::Embeddings,
            ..chat(false)
        };
        assert_eq!(status(&at(&mut p, secs(t), &emb)), Some(429));
        assert_eq!(status(&at(&mut p, secs(t), &health())), Some(200));
    }
}

#[test]
fn peak_hours_follow_the_compressed_daily_cycle() {
    let mut p = plan("peak-hours.toml", 1);
    let rate = |p: &mut Plan, t: f64| NS_PER_S as f64 / ok(at(p, secs(t), &chat(true))).token_interval as f64;
    let amp = 0.25 * std::f64::consts::SQRT_2;
    // fastest at a quarter of the cycle, no peak phase
    assert!((rate(&mut p, 450.0) - 90.0 * (1.0 + amp)).abs() < 1.0);
    // slowest at three quarters, inside the peak phase: 1.6× slower again
    let trough = 90.0 * (1.0 - amp) / 1.6;
    assert!((rate(&mut p, 1350.0) - trough).abs() < 1.0, "{}", rate(&mut p, 1350.0));
    // the peak phase recurs every cycle, 7m30s long, centred on the trough
    let w = p.fault_windows(secs(2.0 * 3600.0));
    assert_eq!(w.len(), 4);
    for (i, w) in w.iter().enumerate() {
        let centre = (w.start + w.end) / 2;
        assert_eq!(centre, secs(1350.0 + 1800.0 * i as f64));
        assert_eq!(w.end - w.start, secs(450.0));
    }
    let err = share(&mut p, secs(1350.0), &chat(false), 20_000, |v| status(v) == Some(503));
    assert!((0.003..0.008).contains(&err), "{err}");
    assert_eq!(
        share(&mut p, secs(450.0), &chat(false), 2000, |v| status(v) == Some(503)),
        0.0
    );
}
