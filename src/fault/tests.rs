use super::*;
use crate::time::{NS_PER_MS, NS_PER_S};

fn chat(stream: bool, max: u32) -> RequestFacts {
    RequestFacts {
        endpoint: Endpoint::Chat,
        stream,
        input_tokens: 10,
        max_tokens: Some(max),
    }
}

fn profile(src: &str) -> Profile {
    Profile::from_toml(src, "test.toml").unwrap()
}

#[test]
fn empty_profile_is_a_pass_through() {
    let mut p = Plan::new(&Profile::default(), 1, "p");
    let d = p.decide(0, &chat(true, 7), None);
    assert_eq!(d.cause, Cause::None);
    match d.verdict {
        Verdict::Ok(s) => {
            assert_eq!((s.first, s.token_interval, s.output_tokens), (0, 0, 7));
            assert!(s.stream_fault.is_none());
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn phase_window_decides_errors_and_health_scope() {
    let mut p = Plan::new(
        &profile(
            r#"
[[phase]]
name = "outage"
start = "10s"
duration = "5s"
applies_to = "completions"
errors = [{ status = 502 }]
"#,
        ),
        1,
        "p",
    );
    assert!(matches!(
        p.decide(9 * NS_PER_S, &chat(false, 5), None).verdict,
        Verdict::Ok(_)
    ));
    let d = p.decide(10 * NS_PER_S, &chat(false, 5), None);
    assert_eq!(d.cause, Cause::Phase(0));
    assert!(matches!(
        d.verdict,
        Verdict::Error(ErrorVerdict {
            status: 502,
            kind: ErrorKind::BadGateway,
            ..
        })
    ));
    // grey failure: health stays fine during the outage
    assert!(matches!(
        p.decide(12 * NS_PER_S, &RequestFacts::health(), None).verdict,
        Verdict::Ok(_)
    ));
    assert!(matches!(
        p.decide(15 * NS_PER_S, &chat(false, 5), None).verdict,
        Verdict::Ok(_)
    ));
    let w = p.fault_windows(100 * NS_PER_S);
    assert_eq!(
        w,
        vec![FaultWindow {
            phase: "outage".into(),
            start: 10 * NS_PER_S,
            end: 15 * NS_PER_S,
            completions: true,
        }]
    );
}

#[test]
fn hard_down_hits_health_too_and_hang_hangs_probes() {
    let mut p = Plan::new(&profile("[[phase]]\nerrors = [{ status = 503 }]\n"), 1, "p");
    assert!(matches!(
        p.decide(0, &RequestFacts::health(), None).verdict,
        Verdict::Error(ErrorVerdict { status: 503, .. })
    ));
    let mut p = Plan::new(&profile("[[phase]]\nconnection = [{ kind = \"hang\" }]\n"), 1, "p");
    assert_eq!(p.decide(0, &RequestFacts::health(), None).verdict, Verdict::Hang);
    assert_eq!(p.decide(0, &chat(true, 5), None).verdict, Verdict::Hang);
}

#[test]
fn probability_is_respected_and_scaled_by_ramp() {
    let mut p = Plan::new(
        &profile(
            r#"
[baseline]
errors = [{ status = 500, probability = 0.2 }]
[[phase]]
start = "100s"
duration = "100s"
ramp_in = "100s"
errors = [{ status = 503, probability = 1.0 }]
"#,
        ),
        7,
        "p",
    );
    let n = 20_000;
    let count = |p: &mut Plan, t: Nanos, status: u16| {
        (0..n)
            .filter(|_| matches!(p.decide(t, &chat(false, 1), None).verdict, Verdict::Error(ErrorVerdict { status: s, .. }) if s == status))
            .count() as f64
            / n as f64
    };
    let base = count(&mut p, 0, 500);
    assert!((base - 0.2).abs() < 0.015, "{base}");
    // halfway up the ramp: 503 with probability 0.5 among the 80 % not already 500
    let half = count(&mut p, 150 * NS_PER_S, 503);
    assert!((half - 0.8 * 0.5).abs() < 0.015, "{half}");
}

#[test]
fn same_seed_same_verdicts_other_seed_differs() {
    let prof = profile(
        r#"
[baseline]
ttft = { kind = "lognormal", p50 = "300ms", p99 = "2s" }
tokens_per_s = { mean = 80, cv = 0.3, process = "random_walk" }
errors = [{ status = 500, probability = 0.1 }]
stream = [{ kind = "cut", probability = 0.1, after_tokens = 3 }]
"#,
    );
    let run = |seed| {
        let mut p = Plan::new(&prof, seed, "p");
        (0..500)
            .map(|i| p.decide(i * 10 * NS_PER_MS, &chat(i % 2 == 0, 20), None))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn health_probes_do_not_shift_completion_draws() {
    let prof = profile("[baseline]\nerrors = [{ status = 500, probability = 0.5 }]\n");
    let mut a = Plan::new(&prof, 3, "p");
    let mut b = Plan::new(&prof, 3, "p");
    let va: Vec<_> = (0..200).map(|i| a.decide(i, &chat(false, 1), None)).collect();
    let vb: Vec<_> = (0..200)
        .map(|i| {
            b.decide(i, &RequestFacts::health(), None);
            b.decide(i, &chat(false, 1), None)
        })
        .collect();
    assert_eq!(va, vb);
}

#[test]
fn settings_replace_and_interpolate() {
    let mut p = Plan::new(
        &profile(
            r#"
[baseline]
ttft = { kind = "fixed", value = "100ms" }
tokens_per_s = { mean = 100 }
[[phase]]
start = "10s"
duration = "20s"
ramp_in = "10s"
ttft = { kind = "fixed", value = "1100ms" }
latency_multiplier = 2.0
"#,
        ),
        1,
        "p",
    );
    let s = |p: &mut Plan, t| match p.decide(t, &chat(true, 10), None).verdict {
        Verdict::Ok(s) => s,
        v => panic!("{v:?}"),
    };
    let a = s(&mut p, 0);
    assert_eq!((a.first, a.token_interval), (100 * NS_PER_MS, 10 * NS_PER_MS));
    // k = 0.5: ttft 600 ms, multiplier 1.5 → 900 ms; interval 15 ms
    let b = s(&mut p, 15 * NS_PER_S);
    assert_eq!((b.first, b.token_interval), (900 * NS_PER_MS, 15 * NS_PER_MS));
    // non-streamed default latency = ttft + n · interval
    match p.decide(0, &chat(false, 10), None).verdict {
        Verdict::Ok(s) => assert_eq!(s.first, 200 * NS_PER_MS),
        v => panic!("{v:?}"),
    }
}

#[test]
fn rate_limit_storm_429s_with_consistent_headers() {
    let mut p = Plan::new(
        &profile(
            r#"
[baseline]
rate_limit = { requests_per_min = 600 }
[[phase]]
start = "60s"
rate_limit = { requests_per_min = 2 }
"#,
        ),
        1,
        "p",
    );
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match p.decide(0, &chat(false, 1), None).verdict {
            Verdict::Ok(s) => remaining.push(s.rate_limit.unwrap().remaining_requests),
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(remaining, vec![599, 598, 597]);
    let t = 60 * NS_PER_S;
    assert!(matches!(p.decide(t, &chat(false, 1), None).verdict, Verdict::Ok(_)));
    assert!(matches!(p.decide(t, &chat(false, 1), None).verdict, Verdict::Ok(_)));
    match p.decide(t, &chat(false, 1), None) {
        Decision {
            verdict: Verdict::Error(e),
            cause: Cause::RateLimit,
        } => {
            assert_eq!(e.status, 429);
            assert_eq!(e.retry_after, Some(30 * NS_PER_S));
            assert_eq!(e.rate_limit.unwrap().remaining_requests, 0);
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn forced_header_overrides_the_plan() {
    let mut p = Plan::new(&profile("[[phase]]\nerrors = [{ status = 503 }]\n"), 1, "p");
    let f: Forced = "cut_after=5".parse().unwrap();
    match p.decide(0, &chat(true, 10), Some(&f)).verdict {
        Verdict::Ok(s) => assert_eq!(
            s.stream_fault.map(|x| (x.kind, x.after_tokens)),
            Some((StreamKind::Cut, 5))
        ),
        v => panic!("{v:?}"),
    }
    let f: Forced = "status=429,kind=insufficient_quota".parse().unwrap();
    match p.decide(0, &chat(false, 10), Some(&f)).verdict {
        Verdict::Error(e) => assert_eq!(
            (e.status, e.kind, e.retry_after),
            (429, ErrorKind::InsufficientQuota, None)
        ),
        v => panic!("{v:?}"),
    }
}

#[test]
fn runtime_phase_upsert_counts_from_now() {
    let mut p = Plan::new(&Profile::default(), 1, "p");
    let spec = profile("[[phase]]\nname = \"x\"\nduration = \"1s\"\nerrors = [{ status = 500 }]\n").phases[0].clone();
    p.upsert_phase(spec.clone(), 50 * NS_PER_S);
    assert!(matches!(
        p.decide(49 * NS_PER_S, &chat(false, 1), None).verdict,
        Verdict::Ok(_)
    ));
    assert!(matches!(
        p.decide(50 * NS_PER_S, &chat(false, 1), None).verdict,
        Verdict::Error(_)
    ));
    p.upsert_phase(spec, 100 * NS_PER_S);
    assert_eq!(p.status(0).len(), 1);
    assert!(matches!(
        p.decide(50 * NS_PER_S, &chat(false, 1), None).verdict,
        Verdict::Ok(_)
    ));
    assert!(p.remove_phase("x"));
    assert!(!p.remove_phase("x"));
}

#[test]
fn fault_windows_say_whether_a_phase_touches_user_requests() {
    let src = "[[phase]]\nname = \"outage\"\nstart = \"20s\"\nduration = \"30s\"\nerrors = [{ status = 502 }]\n\
               [[phase]]\nname = \"health-broken\"\nstart = \"20s\"\napplies_to = \"health\"\nerrors = [{ status = 503 }]\n\
               [[phase]]\nname = \"grey\"\nstart = \"60s\"\nduration = \"5s\"\napplies_to = \"completions\"\nerrors = [{ status = 502 }]\n";
    let mut p = Plan::new(&profile(src), 1, "p");
    let w: Vec<(String, bool)> = p
        .fault_windows(100 * NS_PER_S)
        .into_iter()
        .map(|w| (w.phase, w.completions))
        .collect();
    assert_eq!(
        w,
        [
            ("outage".to_string(), true),
            ("health-broken".to_string(), false),
            ("grey".to_string(), true)
        ]
    );
}

/// A profile where every cached thing moves: ramps (intensity changes every nanosecond),
/// flapping and random outages (edges inside the run), latency multipliers, phase TTFTs,
/// latencies and curves of every process, rate limits, output lengths and a health-only
/// phase.
const MOVING_PARTS: &str = r#"
[baseline]
ttft = { kind = "lognormal", p50 = "400ms", p99 = "1500ms" }
tokens_per_s = { mean = 70, cv = 0.08, process = "random_walk" }
output_tokens = { min = 50, max = 400 }
embedding_latency = { kind = "lognormal", p50 = "50ms", p99 = "200ms" }
errors = [{ status = 500, probability = 0.02 }]
stream = [{ kind = "cut", probability = 0.05, after_tokens = 3 }]

[[phase]]
name = "brownout"
start = "20s"
duration = "60s"
ramp_in = "15s"
ramp_out = "10s"
latency_multiplier = 3.0
ttft = { kind = "quantiles", p50 = "1s", p95 = "3s", p99 = "5s" }
tokens_per_s = { mean = 20, cv = 0.3, process = "regime", hold = "4s" }

[[phase]]
name = "flap"
start = "50s"
duration = "90s"
flapping = { period = "7s", duty = 0.35 }
errors = [{ status = 503, probability = 0.4 }]
connection = [{ kind = "slow_body", probability = 0.2, bytes_per_s = 50 }]
output_tokens = { min = 1, max = 20 }
latency = { kind = "uniform", min = "100ms", max = "900ms" }

[[phase]]
name = "storm"
start = "100s"
random = { mtbf = "6s", mttr = "3s" }
rate_limit = { requests_per_min = 300 }
embedding_latency = { kind = "fixed", value = "2s" }
tokens_per_s = { mean = 40, cv = 0.2, process = "periodic", period = "30s", step = "500ms" }
stream = [{ kind = "ping_stall", probability = 0.3, after_tokens = 2 }]
latency_multiplier = 0.5

[[phase]]
name = "probes"
start = "30s"
duration = "30s"
applies_to = "health"
health = { status = 503 }
"#;

/// The cached active set and token interval give exactly the decisions of a plan that
/// works both out afresh for every request (what `decide` did before the caches): same
/// verdicts, causes and draws, across every kind of phase edge, with requests at
/// irregular times, repeated instants, now and then a step back in time, health probes in
/// between and a phase added at runtime.
#[test]
fn cached_decisions_equal_fresh_ones_across_phase_edges() {
    let prof = profile(MOVING_PARTS);
    let mut cached = Plan::new(&prof, 11, "p");
    let mut fresh = Plan::new(&prof, 11, "p");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d; // xorshift: the request mix and the gaps
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut now: Nanos = 0;
    let (mut reused, mut n) = (0, 0);
    while now < 200 * NS_PER_S {
        let r = next();
        now = match r % 50 {
            0 => now.saturating_sub(r % (2 * NS_PER_S)), // a step back
            1..=5 => now,                                // the same instant
            _ => now + r % (150 * NS_PER_MS),
        };
        let facts = match (r >> 8) % 10 {
            0 => RequestFacts::health(),
            1 => RequestFacts {
                endpoint: Endpoint::Embeddings,
                stream: false,
                input_tokens: 5,
                max_tokens: None,
            },
            k => chat(k % 2 == 0, 10 + (r >> 16) as u32 % 500),
        };
        if n == 2_000 {
            let extra = profile(
                r#"
[[phase]]
name = "late"
start = "3s"
duration = "20s"
ramp_in = "2s"
latency_multiplier = 1.5
"#,
            );
            let spec = extra.phases[0].clone();
            assert_eq!(cached.upsert_phase(spec.clone(), now), fresh.upsert_phase(spec, now));
        }
        reused += usize::from(cached.set.covers(now));
        fresh.invalidate();
        // now and then a request with a forced fault header (the mock's path), including
        // a forced delay, which goes through the same timing
        let forced: Option<Forced> = match (r >> 24) % 13 {
            0 => Some("delay=300ms".parse().unwrap()),
            1 => Some("status=503".parse().unwrap()),
            2 => Some("cut_after=3".parse().unwrap()),
            _ => None,
        };
        let (a, b) = (
            cached.decide(now, &facts, forced.as_ref()),
            fresh.decide(now, &facts, forced.as_ref()),
        );
        assert_eq!(a, b, "request {n} at {now}");
        n += 1;
    }
    assert!(n > 2_500, "{n} requests");
    // the caches were in use for most requests (else this shows nothing)
    assert!(reused * 10 > n * 8, "{reused} of {n} reused the active set");
}

/// A completion probe used to draw from the same stream as user traffic, so which probe
/// drew a fast answer hung on how probes and user requests interleaved at the mock — a
/// matter of live scheduling (seed 1077 of the differential test: completion probes with a
/// 113 ms timeout against 85–253 ms latencies, and closed-loop users; live and the
/// simulator ejected and restored the target at different probes). Probes now draw from
/// their own stream: a probe's verdict, and every user request's, is the same whatever
/// came in between.
#[test]
fn completion_probe_draws_do_not_depend_on_user_traffic() {
    let src = "[baseline]\nlatency = { kind = \"uniform\", min = \"85ms\", max = \"253ms\" }\n\
               errors = [{ status = 503, probability = 0.3 }]\n";
    let probe = chat(false, 1);
    let user = chat(true, 20);
    // probes alone, users alone
    let mut a = Plan::new(&profile(src), 7, "p");
    let probes_alone: Vec<Decision> = (0..20).map(|k| a.decide_probe(k * NS_PER_MS, &probe, None)).collect();
    let mut b = Plan::new(&profile(src), 7, "p");
    let users_alone: Vec<Decision> = (0..40).map(|k| b.decide(k * NS_PER_MS, &user, None)).collect();
    // interleaved: a user request before each probe, and two after every third
    let mut c = Plan::new(&profile(src), 7, "p");
    let (mut probes, mut users) = (Vec::new(), Vec::new());
    for k in 0..20u64 {
        users.push(c.decide(k * NS_PER_MS, &user, None));
        probes.push(c.decide_probe(k * NS_PER_MS, &probe, None));
        if k % 3 == 0 {
            users.push(c.decide(k * NS_PER_MS, &user, None));
        }
    }
    assert_eq!(probes, probes_alone);
    assert_eq!(users[..], users_alone[..users.len()]);
    // the probes did draw: not every probe got the same answer
    assert!(probes.iter().any(|d| d != &probes[0]));
}

/// `envelope = "bare"` drops the headers a provider's 429 carries (the 1 s default
/// `retry-after` and the bucket's rate-limit state); `html` likewise; the default keeps both.
#[test]
fn bare_and_html_envelopes_send_no_retry_after_or_rate_limit_state() {
    let src = |envelope: &str| {
        format!(
            r#"
[baseline]
rate_limit = {{ requests_per_min = 6000 }}
errors = [{{ status = 429 {envelope} }}]
"#
        )
    };
    let verdict = |src: String| match Plan::new(&profile(&src), 1, "p")
        .decide(0, &chat(false, 5), None)
        .verdict
    {
        Verdict::Error(e) => e,
        v => panic!("{v:?}"),
    };
    let e = verdict(src(""));
    assert_eq!((e.retry_after, e.envelope), (Some(NS_PER_S), Envelope::Provider));
    assert!(e.rate_limit.is_some());
    for (key, want) in [("bare", Envelope::Bare), ("html", Envelope::Html)] {
        let e = verdict(src(&format!(", envelope = \"{key}\"")));
        assert_eq!((e.status, e.kind, e.envelope), (429, ErrorKind::RateLimit, want));
        assert_eq!((e.retry_after, e.rate_limit), (None, None), "{key}");
    }
}

#[test]
fn an_envelope_without_headers_refuses_a_retry_after() {
    let e = Profile::from_toml(
        "[baseline]\nerrors = [{ status = 429, retry_after = \"2s\", envelope = \"bare\" }]\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("t.toml:2:") && e.to_string().contains("retry_after"),
        "{e}"
    );
    let e = Profile::from_toml(
        "[baseline]\nerrors = [{ status = 502, envelope = \"xml\" }]\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("html"), "{e}");
}

/// A context-length 400 is its own kind: final (no retry) and rendered as each API does.
#[test]
fn context_length_is_a_final_400() {
    let mut p = Plan::new(
        &profile("[baseline]\nerrors = [{ status = 400, kind = \"context_length\" }]\n"),
        1,
        "p",
    );
    match p.decide(0, &chat(true, 5), None).verdict {
        Verdict::Error(e) => {
            assert_eq!((e.status, e.kind, e.retry_after), (400, ErrorKind::ContextLength, None));
            assert!(!e.kind.retryable());
        }
        v => panic!("{v:?}"),
    }
    let body = crate::provider::openai::error_body(ErrorKind::ContextLength, "m", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "messages");
    let body = crate::provider::anthropic::error_body(ErrorKind::ContextLength, "m", "req_1");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(ErrorKind::ContextLength
        .default_message(crate::provider::Api::Anthropic)
        .starts_with("prompt is too long"));
}

/// The page keeps the provider's mark (so a client can still attribute the answer) and
/// escapes what would end the markup.
#[test]
fn html_error_page_is_nginx_shaped_and_marked() {
    let page = crate::provider::html_error_page(502, "Bad <gateway> & co [chaosgate-provider=primary]");
    assert!(page.contains("<title>502 Bad Gateway</title>"), "{page}");
    assert!(page.contains("<center>nginx</center>"), "{page}");
    assert!(page.contains("&lt;gateway&gt; &amp; co"), "{page}");
    assert_eq!(crate::provider::mark::find(page.as_bytes()).as_deref(), Some("primary"));
    assert!(serde_json::from_str::<serde_json::Value>(&page).is_err());
}
/// One function decides whether an answer was whole (truncated successes,
/// docs/semantics.md §13): only a 200 without a stream fault is, however slowly it
/// trickles; the tokens an answer carries stop at a stream fault.
#[test]
fn complete_answers_and_their_tokens() {
    let ok = |stream_fault: Option<StreamKind>, slow: bool| {
        Verdict::Ok(Success {
            first: 0,
            token_interval: 0,
            output_tokens: 10,
            stream_fault: stream_fault.map(|kind| StreamFault {
                kind,
                after_tokens: 3,
                error: crate::provider::ErrorKind::Overloaded,
                ping_every: NS_PER_S,
            }),
            slow_body_bytes_per_s: slow.then_some(100),
            rate_limit: None,
        })
    };
    let error = Verdict::Error(ErrorVerdict {
        after: 0,
        status: 429,
        kind: crate::provider::ErrorKind::RateLimit,
        retry_after: Some(NS_PER_S),
        message: None,
        rate_limit: None,
        envelope: Envelope::Provider,
    });
    let cases = [
        (ok(None, false), "ok", true, 10),
        (ok(None, true), "ok:slow_body", true, 10),
        (ok(Some(StreamKind::Cut), false), "stream:cut", false, 3),
        (ok(Some(StreamKind::Error), false), "stream:error", false, 3),
        (ok(Some(StreamKind::Malformed), false), "stream:malformed", false, 3),
        (ok(Some(StreamKind::NoTerminal), false), "stream:no_terminal", false, 10),
        (ok(Some(StreamKind::PingStall), false), "stream:ping_stall", false, 3),
        (
            ok(Some(StreamKind::SilentStall), false),
            "stream:silent_stall",
            false,
            3,
        ),
        (error, "error:429", false, 0),
        (Verdict::Reset { after: 0 }, "reset", false, 0),
        (Verdict::Hang, "hang", false, 0),
        (
            Verdict::HeadersThenSilence { after: 0 },
            "headers_then_silence",
            false,
            0,
        ),
    ];
    for (v, label, complete, tokens) in cases {
        assert_eq!(verdict_label(&v), label);
        assert_eq!(is_complete_answer(label), complete, "{label}");
        assert_eq!(answer_tokens(&v), tokens, "{label}");
    }
}
