use super::entry::{parse, Best, CheckVerdict};
use super::merge::{gateway_document, merged_text, GatewayScenario};
use super::verdict::{figures, judge, Figures, Verdict};
use super::{select, Filter};

const GREY: &str = r#"
name = "grey-502"
title = "Grey failure"
reports = ["Failover Bench (2026): grey failure"]
tags = ["grey", "5xx"]
best = "pass"
failover = true
[[primary.phase]]
name = "fault"
start = "10s"
duration = "20s"
applies_to = "completions"
errors = [{ status = 502 }]
"#;

const BAD_REQUEST: &str = r#"
name = "bad-request"
title = "400 on every provider"
reports = ["x #1"]
tags = ["4xx"]
best = "safe"
failover = false
[[primary.phase]]
name = "fault"
start = "10s"
duration = "20s"
applies_to = "completions"
errors = [{ status = 400 }]
[[fallback.phase]]
name = "fault"
start = "10s"
duration = "20s"
applies_to = "completions"
errors = [{ status = 400 }]
"#;

fn grey() -> super::Entry {
    parse("grey-502.toml", GREY, None).unwrap()
}

/// A fault window where `failed` of `requests` failed, all with `kind`.
fn window(requests: u64, failed: u64, kind: &str) -> Figures {
    Figures {
        window_requests: requests,
        window_failed: failed,
        failed_ratio: Some(failed as f64 / requests as f64),
        failures_by_kind: if failed > 0 {
            [(kind.to_string(), failed)].into()
        } else {
            Default::default()
        },
        unclean_failures: if kind.starts_with("http_") { 0 } else { failed },
        amplification_during_fault: Some(1.0),
        ..Figures::default()
    }
}

#[test]
fn an_entry_parses_with_its_defaults() {
    let e = grey();
    assert_eq!((e.name.as_str(), e.best, e.failover), ("grey-502", Best::Pass, true));
    assert_eq!((e.duration.as_str(), e.rate, e.max_tokens), ("40s", 20.0, 32));
    assert_eq!(e.bounds.failed_ratio, 0.05);
    assert_eq!(e.fault_statuses().into_iter().collect::<Vec<_>>(), vec![502]);
    assert_eq!(e.source, "built-in");
}

#[test]
fn a_misspelt_key_names_the_file_and_line() {
    let src = GREY.replace("failover = true", "failovr = true");
    let err = parse("grey-502.toml", &src, None).unwrap_err();
    assert!(err.starts_with("grey-502.toml:7:"), "{err}");
    assert!(err.contains("failovr"), "{err}");
}

#[test]
fn entry_problems_are_reported_together() {
    let src = GREY
        .replace("reports = [\"Failover Bench (2026): grey failure\"]", "reports = []")
        .replace("best = \"pass\"", "best = \"pass\"\nrate = 0.0")
        + "[bounds]\nfailed_ratio = 2.0\n";
    let err = parse("grey-502.toml", &src, None).unwrap_err();
    for want in ["reports:", "rate 0", "bounds.failed_ratio 2"] {
        assert!(err.contains(want), "{want:?} missing from {err}");
    }
}

#[test]
fn an_entry_is_named_after_its_file() {
    let err = parse("other.toml", GREY, None).unwrap_err();
    assert!(err.contains("differs from the file's name"), "{err}");
}

#[test]
fn a_built_in_entry_may_not_point_at_a_profile_file() {
    let src = format!("{GREY}\n[fallback]\nprofile = \"../fault-profiles/healthy.toml\"\n");
    let err = parse("grey-502.toml", &src, None).unwrap_err();
    assert!(err.contains("self-contained"), "{err}");
    // a user's entry may: its path is made absolute against the entry's directory
    let e = parse("grey-502.toml", &src, Some(std::path::Path::new("/data/entries"))).unwrap();
    assert_eq!(
        e.fallback.get("profile").and_then(|v| v.as_str()),
        Some("/data/entries/../fault-profiles/healthy.toml")
    );
}

#[test]
fn an_entry_sets_only_fault_settings_of_a_provider() {
    let src = format!("{GREY}\n[fallback]\napi = \"anthropic\"\n");
    let err = parse("grey-502.toml", &src, None).unwrap_err();
    assert!(err.contains("fallback.api"), "{err}");
}

#[test]
fn merging_replaces_the_faults_and_the_traffic_and_keeps_the_gateway() {
    let g = GatewayScenario {
        file: "gw.toml".into(),
        text: r#"
name = "gw"
seed = 7
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
errors = [{ status = 503 }]
[providers.fallback]
api = "openai"
profile = "healthy.toml"
[gateway]
kind = "builtin"
targets = ["primary", "fallback"]
[traffic]
api = "openai"
model = "gpt-x"
rate = 100.0
duration = "5m"
[[assert]]
expr = "resilience.failed_requests.max <= 0"
[sweep]
"gateway.request_timeout" = ["1s", "2s"]
"#
        .into(),
        dir: ".".into(),
    };
    let doc = gateway_document(&g).unwrap();
    let text = merged_text(&grey(), &doc).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(t["name"].as_str(), Some("grey-502"));
    assert_eq!(t["seed"].as_integer(), Some(7));
    assert!(t.get("assert").is_none() && t.get("sweep").is_none(), "{text}");
    let primary = &t["providers"]["primary"];
    assert_eq!(primary["api"].as_str(), Some("openai"));
    assert_eq!(primary["phase"][0]["name"].as_str(), Some("fault"));
    assert_eq!(primary["phase"].as_array().map(Vec::len), Some(1));
    // the fallback's profile is the gateway scenario's fault setting: replaced (healthy)
    assert!(t["providers"]["fallback"].get("profile").is_none(), "{text}");
    let tr = &t["traffic"];
    assert_eq!(
        (tr["api"].as_str(), tr["model"].as_str()),
        (Some("openai"), Some("gpt-x"))
    );
    assert_eq!(
        (tr["rate"].as_float(), tr["duration"].as_str()),
        (Some(20.0), Some("40s"))
    );
    assert_eq!(
        tr["kind"].as_array().map(Vec::len),
        Some(2),
        "mixed: plain and streamed"
    );
    assert_eq!(t["gateway"]["kind"].as_str(), Some("builtin"));
}

#[test]
fn a_gateway_scenario_without_primary_and_fallback_is_refused() {
    let g = GatewayScenario {
        file: "gw.toml".into(),
        text:
            "[providers.a]\napi = \"openai\"\n[providers.fallback]\napi = \"openai\"\n[gateway]\nkind = \"builtin\"\n"
                .into(),
        dir: ".".into(),
    };
    let err = gateway_document(&g).unwrap_err();
    assert!(err.contains("[providers.primary]"), "{err}");
}

#[test]
fn filters_name_what_they_do_not_know() {
    let all = vec![grey(), parse("bad-request.toml", BAD_REQUEST, None).unwrap()];
    let only = |only: &[&str], tags: &[&str]| {
        select(
            all.clone(),
            Vec::new(),
            &Filter {
                only: only.iter().map(|s| s.to_string()).collect(),
                skip: Vec::new(),
                tags: tags.iter().map(|s| s.to_string()).collect(),
            },
        )
    };
    assert_eq!(only(&[], &["4xx"]).unwrap()[0].name, "bad-request");
    assert_eq!(only(&["grey-502"], &[]).unwrap().len(), 1);
    assert!(only(&["nope"], &[]).unwrap_err().contains("\"nope\""));
    assert!(only(&[], &["nope"]).unwrap_err().contains("tag \"nope\""));
    assert!(only(&["grey-502"], &["4xx"]).unwrap_err().contains("no entry to run"));
    // a user entry may not take a catalogue name
    let mut dup = grey();
    dup.source = "mine/grey-502.toml".into();
    let err = select(all.clone(), vec![dup], &Filter::default()).unwrap_err();
    assert!(err.contains("already in the catalogue"), "{err}");
}

#[test]
fn a_window_within_its_bound_passes() {
    let j = judge(&grey(), &window(400, 20, "http_502"), &[]);
    assert_eq!(j.verdict, Verdict::Pass, "{j:?}");
}

#[test]
fn clean_errors_without_failover_are_safe() {
    // 30 % failed, all 502s passed on, traffic never moved: safe (not pass, not blown)
    let j = judge(&grey(), &window(400, 120, "http_502"), &[]);
    assert_eq!(j.verdict, Verdict::Safe, "{j:?}");
}

#[test]
fn unclean_failures_are_degraded() {
    let j = judge(&grey(), &window(400, 120, "timeout"), &[]);
    assert_eq!(j.verdict, Verdict::Degraded, "{j:?}");
    assert!(j.reasons.iter().any(|r| r.contains("timeout 120")), "{j:?}");
}

#[test]
fn failing_over_too_late_is_degraded() {
    let mut f = window(400, 120, "http_502");
    f.detection_s = Some(6.0);
    let j = judge(&grey(), &f, &[]);
    assert_eq!(j.verdict, Verdict::Degraded, "{j:?}");
}

#[test]
fn each_fail_rule_fails_on_its_own() {
    let e = grey();
    let base = window(400, 0, "http_502");
    let cases: Vec<(&str, Figures)> = vec![
        (
            "hung",
            Figures {
                hangs: 1,
                ..base.clone()
            },
        ),
        (
            "truncated",
            Figures {
                truncated_successes: Some(2),
                ..base.clone()
            },
        ),
        (
            "retry storm",
            Figures {
                amplification_during_fault: Some(3.5),
                ..base.clone()
            },
        ),
        (
            "Retry-After",
            Figures {
                retry_after_violations: 4,
                ..base.clone()
            },
        ),
        ("budget blown", window(400, 201, "http_502")),
    ];
    for (want, f) in cases {
        let j = judge(&e, &f, &[]);
        assert_eq!(j.verdict, Verdict::Fail, "{want}: {j:?}");
        assert!(j.reasons.iter().any(|r| r.contains(want)), "{want}: {j:?}");
    }
    // at the bounds themselves: still a pass
    let at = Figures {
        amplification_during_fault: Some(3.0),
        ..window(400, 20, "http_502")
    };
    assert_eq!(judge(&e, &at, &[]).verdict, Verdict::Pass);
}

#[test]
fn a_failed_check_costs_what_it_says() {
    let e = grey();
    let f = window(400, 0, "http_502");
    let degraded = [(false, "x <= 1".to_string(), CheckVerdict::Degraded)];
    assert_eq!(judge(&e, &f, &degraded).verdict, Verdict::Degraded);
    let fail = [(false, "x <= 1".to_string(), CheckVerdict::Fail)];
    assert_eq!(judge(&e, &f, &fail).verdict, Verdict::Fail);
    let held = [(true, "x <= 1".to_string(), CheckVerdict::Fail)];
    assert_eq!(judge(&e, &f, &held).verdict, Verdict::Pass);
}

#[test]
fn an_error_the_gateway_should_pass_on_is_safe_only_as_sent() {
    let e = parse("bad-request.toml", BAD_REQUEST, None).unwrap();
    // every request a 400, passed on: safe, the best this entry allows
    let j = judge(&e, &window(375, 375, "http_400"), &[]);
    assert_eq!(j.verdict, Verdict::Safe, "{j:?}");
    assert!(j.verdict.meets(e.best));
    // the gateway ejected both providers over 400s and answered 503 itself
    let mut f = window(375, 375, "http_400");
    f.failures_by_kind = [("http_400".to_string(), 57), ("http_503".to_string(), 318)].into();
    let j = judge(&e, &f, &[]);
    assert_eq!(j.verdict, Verdict::Degraded, "{j:?}");
    assert!(j.reasons[0].contains("http_503 318"), "{j:?}");
    // or retried them elsewhere
    let f = Figures {
        amplification_during_fault: Some(2.0),
        ..window(375, 375, "http_400")
    };
    assert_eq!(judge(&e, &f, &[]).verdict, Verdict::Degraded);
}

#[test]
fn verdicts_meet_the_best_an_entry_allows() {
    assert!(Verdict::Pass.meets(Best::Pass) && !Verdict::Safe.meets(Best::Pass));
    assert!(Verdict::Pass.meets(Best::Safe) && Verdict::Safe.meets(Best::Safe));
    assert!(!Verdict::Degraded.meets(Best::Safe) && !Verdict::Error.meets(Best::Safe));
    for v in [
        Verdict::Pass,
        Verdict::Safe,
        Verdict::Degraded,
        Verdict::Fail,
        Verdict::Error,
    ] {
        assert_eq!(Verdict::parse(v.as_str()), Some(v));
    }
    assert_eq!(Verdict::parse("Pass"), None);
}

#[test]
fn a_window_both_providers_go_through_counts_its_requests_once() {
    use crate::analysis::GroupReport;
    let mut r = crate::analysis::results::RunReport::default();
    let g = |requests, failed| GroupReport {
        requests,
        failed,
        failures_by_kind: [("http_400".to_string(), failed)].into(),
        ..GroupReport::default()
    };
    r.traffic.phases.insert("fallback/fault".into(), g(375, 375));
    r.traffic.phases.insert("primary/fault".into(), g(375, 375));
    r.traffic.phases.insert("primary/later".into(), g(100, 10));
    let f = figures(&r);
    assert_eq!((f.window_requests, f.window_failed), (475, 385));
    assert_eq!(f.failures_by_kind["http_400"], 385);
}

#[test]
fn every_catalogue_file_is_built_in_and_parses() {
    #[allow(clippy::disallowed_methods)] // reads the source tree
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/catalogue"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    let mut files = files;
    files.sort();
    let listed: Vec<String> = super::BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(listed, files, "catalogue/ and suite::BUILTIN differ");
    let entries = super::builtin().unwrap();
    assert!(entries.len() >= 28, "{} entries", entries.len());
}

#[test]
fn traffic_that_should_stay_may_move_only_between_faulty_providers() {
    // a stuck /health in front of a working primary: the gateway moved everything away
    let stuck = parse(
        "stuck.toml",
        &GREY
            .replace("name = \"grey-502\"", "name = \"stuck\"")
            .replace("failover = true", "failover = false")
            .replace(
                "applies_to = \"completions\"\nerrors = [{ status = 502 }]",
                "applies_to = \"health\"\nerrors = [{ status = 503 }]",
            ),
        None,
    )
    .unwrap();
    assert!(!stuck.fallback_faulted());
    let mut f = window(400, 0, "http_502");
    f.detection_s = Some(4.0);
    let j = judge(&stuck, &f, &[]);
    assert_eq!(j.verdict, Verdict::Degraded, "{j:?}");
    assert!(j.reasons[0].contains("should have stayed"), "{j:?}");
    f.detection_s = None;
    assert_eq!(judge(&stuck, &f, &[]).verdict, Verdict::Pass);
    // both providers down: moving between them changes nothing; clean, fast errors are safe
    let both = parse("bad-request.toml", BAD_REQUEST, None).unwrap();
    assert!(both.fallback_faulted());
    let mut f = window(375, 375, "http_400");
    f.detection_s = Some(1.0);
    assert_eq!(judge(&both, &f, &[]).verdict, Verdict::Safe);
}
