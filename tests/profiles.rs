//! Every shipped fault profile parses, validates, says what it models and how to serve
//! it, and behaves as its comment claims (checked in virtual time, no sockets).

use chaosgate::fault::{Endpoint, ErrorVerdict, Plan, Profile, RequestFacts, StreamKind, Verdict};
use chaosgate::time::{Nanos, NS_PER_MS, NS_PER_S};
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

fn load(name: &str) -> Profile {
    Profile::load(&root().join("fault-profiles").join(name)).unwrap()
}

fn chat(stream: bool) -> RequestFacts {
    RequestFacts {
        endpoint: Endpoint::Chat,
        stream,
        input_tokens: 20,
        max_tokens: Some(40),
    }
}

fn status(v: &Verdict) -> Option<u16> {
    match v {
        Verdict::Error(ErrorVerdict { status, .. }) => Some(*status),
        Verdict::Ok(_) => Some(200),
        _ => None,
    }
}

#[test]
fn every_profile_parses_validates_and_says_how_to_serve_it() {
    let mut files = Vec::new();
    profile_files(&root().join("fault-profiles"), &mut files);
    files.sort();
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
            head.contains("chaosgate mock"),
            "{}: the opening comment must give the serve command",
            f.display()
        );
        Profile::load(f).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn misspelt_key_reports_file_line_and_expected_names() {
    let src = std::fs::read_to_string(root().join("fault-profiles/hard-down.toml")).unwrap();
    let bad = src.replace(
        "errors = [{ status = 503 }]",
        "errors = [{ status = 503, probabilty = 1.0 }]",
    );
    let dir = std::env::temp_dir().join(format!("chaosgate-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.toml");
    std::fs::write(&path, &bad).unwrap();
    let err = Profile::load(&path).unwrap_err().to_string();
    let line = bad.lines().position(|l| l.contains("probabilty")).unwrap() + 1;
    assert!(err.contains(&format!("typo.toml:{line}:")), "{err}");
    assert!(err.contains("unknown field `probabilty`, expected one of"), "{err}");
    assert!(err.contains("`probability`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hard_down_and_hang() {
    let mut p = Plan::new(&load("hard-down.toml"), 1, "p");
    assert_eq!(status(&p.decide(0, &chat(false), None).verdict), Some(503));
    assert_eq!(status(&p.decide(0, &RequestFacts::health(), None).verdict), Some(503));
    let mut p = Plan::new(&load("hang.toml"), 1, "p");
    assert_eq!(p.decide(0, &chat(true), None).verdict, Verdict::Hang);
    assert_eq!(p.decide(0, &RequestFacts::health(), None).verdict, Verdict::Hang);
}

#[test]
fn partial_outage_fails_completions_for_four_minutes_while_health_is_ok() {
    let mut p = Plan::new(&load("anthropic-partial-outage.toml"), 1, "p");
    let at = |s: u64| s * NS_PER_S;
    assert_eq!(status(&p.decide(at(59), &chat(false), None).verdict), Some(200));
    let mut failed = 0;
    for i in 0..1000u64 {
        let t = at(60) + i * 240 * NS_PER_MS;
        let v = p.decide(t, &chat(false), None).verdict;
        if status(&v) != Some(200) {
            failed += 1;
        }
        assert_eq!(status(&p.decide(t, &RequestFacts::health(), None).verdict), Some(200));
    }
    assert_eq!(failed, 1000);
    assert_eq!(status(&p.decide(at(300), &chat(false), None).verdict), Some(200));
    let w = p.fault_windows(at(3600));
    assert_eq!((w[0].start, w[0].end), (at(60), at(300)));
}

#[test]
fn throughput_swings_reproduce_the_together_ai_row() {
    let mut p = Plan::new(&load("throughput-swings.toml"), 7, "p");
    let rates: Vec<f64> = (0..7200u64)
        .map(|s| match p.decide(s * NS_PER_S, &chat(true), None).verdict {
            Verdict::Ok(x) => NS_PER_S as f64 / x.token_interval as f64,
            v => panic!("{v:?}"),
        })
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64).sqrt();
    assert!((mean - 131.7).abs() / 131.7 < 0.05, "mean {mean}");
    assert!((sd / mean - 0.312).abs() < 0.05, "cv {}", sd / mean);
}

#[test]
fn rate_limit_storm_429s_only_during_the_storm() {
    let mut p = Plan::new(&load("rate-limit-storm.toml"), 1, "p");
    let mut before = 0;
    for i in 0..100u64 {
        if status(&p.decide(i * 100 * NS_PER_MS, &chat(false), None).verdict) == Some(429) {
            before += 1;
        }
    }
    assert_eq!(before, 0);
    let mut limited = None;
    for i in 0..200u64 {
        let v = p
            .decide(31 * NS_PER_S + i * 100 * NS_PER_MS, &chat(false), None)
            .verdict;
        if let Verdict::Error(e) = v {
            if e.status == 429 && e.retry_after.is_some() {
                limited = Some(e);
                break;
            }
        }
    }
    let e = limited.expect("the storm must produce retryable 429s");
    assert_eq!(e.rate_limit.unwrap().limit_requests, 30);
}

#[test]
fn midstream_cut_rates() {
    let mut p = Plan::new(&load("midstream-cut.toml"), 3, "p");
    let n = 20_000;
    let mut cut = 0;
    let mut err = 0;
    for i in 0..n as u64 {
        if let Verdict::Ok(s) = p.decide(i * NS_PER_MS, &chat(true), None).verdict {
            match s.stream_fault.map(|f| f.kind) {
                Some(StreamKind::Cut) => cut += 1,
                Some(StreamKind::Error) => err += 1,
                _ => {}
            }
        }
    }
    let (cut, err) = (cut as f64 / n as f64, err as f64 / n as f64);
    assert!((cut - 0.05).abs() < 0.006, "cut {cut}");
    // first rule that fires wins: error fires on 2 % of the 95 % not cut
    assert!((err - 0.95 * 0.02).abs() < 0.004, "err {err}");
    // non-streamed requests never get stream faults
    assert!(matches!(p.decide(0, &chat(false), None).verdict, Verdict::Ok(s) if s.stream_fault.is_none()));
}

#[test]
fn flapping_alternates() {
    let mut p = Plan::new(&load("flapping.toml"), 1, "p");
    let st = |p: &mut Plan, s: Nanos| status(&p.decide(s * NS_PER_S, &chat(false), None).verdict);
    assert_eq!(st(&mut p, 10), Some(200));
    assert_eq!(st(&mut p, 35), Some(503));
    assert_eq!(st(&mut p, 60), Some(200));
    assert_eq!(st(&mut p, 95), Some(503));
    assert_eq!(st(&mut p, 700), Some(200));
}

#[test]
fn brownout_is_slow_but_never_fails() {
    let mut p = Plan::new(&load("brownout.toml"), 1, "p");
    let ttft_at = |p: &mut Plan, s: u64| {
        let mut v: Vec<Nanos> = (0..400)
            .map(|_| match p.decide(s * NS_PER_S, &chat(true), None).verdict {
                Verdict::Ok(x) => x.first,
                v => panic!("brownout must not fail: {v:?}"),
            })
            .collect();
        v.sort_unstable();
        v[200] as f64
    };
    let before = ttft_at(&mut p, 10);
    let during = ttft_at(&mut p, 150);
    assert!((during / before - 3.0).abs() < 0.5, "{before} → {during}");
}

#[test]
fn grey_failure_health_and_completions_disagree() {
    let mut p = Plan::new(&load("grey-failure.toml"), 1, "p");
    let t = 60 * NS_PER_S;
    assert_eq!(status(&p.decide(t, &RequestFacts::health(), None).verdict), Some(200));
    let bad = (0..200)
        .filter(|_| match p.decide(t, &chat(true), None).verdict {
            Verdict::Ok(s) => s.stream_fault.is_some() || s.slow_body_bytes_per_s.is_some(),
            _ => true,
        })
        .count();
    assert!(bad > 150, "{bad}");
    let t = 330 * NS_PER_S;
    assert_eq!(status(&p.decide(t, &RequestFacts::health(), None).verdict), Some(503));
    assert_eq!(status(&p.decide(t, &chat(false), None).verdict), Some(200));
}

#[test]
fn overloaded_bursts_are_529s_on_completions_only() {
    let mut p = Plan::new(&load("overloaded-529.toml"), 5, "p");
    let w = p.fault_windows(3600 * NS_PER_S);
    assert!(w.len() > 10, "{} bursts in an hour", w.len());
    let mid = (w[0].start + w[0].end) / 2;
    let n529 = (0..1000)
        .filter(|_| status(&p.decide(mid, &chat(false), None).verdict) == Some(529))
        .count();
    assert!((500..700).contains(&n529), "{n529}");
    assert_eq!(status(&p.decide(mid, &RequestFacts::health(), None).verdict), Some(200));
}
