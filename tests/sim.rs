//! The simulator end to end: scenario files in, byte-identical JSON reports out; sweeps,
//! `--repeat`, `--set` and assertions through the same path as the CLI.

use chaosgate::run::{self, RunOptions};
use chaosgate::scenario::{load, load_str};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn opts(repeat: usize, jobs: usize) -> RunOptions {
    let mut o = RunOptions::new(std::env::temp_dir());
    o.repeat = repeat;
    o.jobs = jobs;
    o
}

fn report_json(file: &str, sets: &[String], o: &RunOptions) -> String {
    let set = load(&root().join(file), sets).unwrap_or_else(|e| panic!("{e}"));
    let sw = run::simulate(&set, o).unwrap();
    serde_json::to_string_pretty(&sw.to_json()).unwrap() + "\n"
}

/// Same scenario + seed ⇒ the same bytes, checked against a committed golden file.
/// After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test sim`.
#[test]
fn golden_3am_fast_fail() {
    let got = report_json("examples/incidents/3am-fast-fail.toml", &[], &opts(1, 1));
    assert_eq!(
        got,
        report_json("examples/incidents/3am-fast-fail.toml", &[], &opts(1, 2)),
        "two runs differ"
    );
    let path = root().join("tests/golden/3am-fast-fail.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 cargo test --test sim)");
    if got != want {
        let (n, (g, w)) = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .unwrap_or((0, ("", "")));
        panic!(
            "sim report differs from {} at line {}:\n  golden: {w}\n  now:    {g}\n(regenerate with UPDATE_GOLDEN=1 cargo test --test sim if the change is intended)",
            path.display(),
            n + 1
        );
    }
}

#[test]
fn the_incident_numbers_follow_the_formulas() {
    let v: serde_json::Value =
        serde_json::from_str(&report_json("examples/incidents/3am-hang.toml", &[], &opts(1, 1))).unwrap();
    let f = &v["resilience"]["faults"][0];
    // one fault: the 502s and the hanging probes are the same incident
    assert_eq!(f["phase"], "outage+probes-hang", "{f}");
    // onset 137 s, probes every 60 s from 0 → next probe at 180 s, hangs 30 s: D = 73 s
    assert!((f["detection_gateway_s"].as_f64().unwrap() - 73.0).abs() < 1e-6, "{f}");
    assert_eq!(v["resilience"]["detection_s"]["max"], f["detection_traffic_s"]);
    // ≈ 155 req/s × 73 s of failures (Poisson: within 3 %)
    let failed = f["failed_during"].as_f64().unwrap();
    assert!((failed - 155.0 * 73.0).abs() / (155.0 * 73.0) < 0.03, "{failed}");
    // budget: 99.9 % over 30 days at ≈ 155 req/s ≈ 401,760 requests
    let b = v["budget"]["budget_requests"].as_f64().unwrap();
    assert!((b - 401_760.0).abs() / 401_760.0 < 0.01, "{b}");
    let pct = v["budget"]["consumed_pct"]["max"].as_f64().unwrap();
    let failed_all = v["traffic"]["requests"]["failed"].as_f64().unwrap();
    assert!((pct - 100.0 * failed_all / b).abs() < 1e-9, "{pct}");
    assert_eq!(v["runs"], 1);
}

const SHORT: &str = r#"
seed = 3
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "137s"
duration = "60s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "60s", timeout = "30s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
rate = 20.0
arrival = "constant"
duration = "5m"
"#;

/// `--repeat 4` moves the onset 0, 15, 30, 45 s later (k/N × the 60 s interval); probes
/// of a fast-failing target go at 0, 60, 120, 180, 240 s, so the gateway notices at the
/// next multiple of 60 s: 180 − 137 = 43, 180 − 152 = 28, 180 − 167 = 13, 240 − 182 = 58.
#[test]
fn repeat_spreads_onsets_over_the_probe_cycle() {
    let set = load_str("short.toml", SHORT, root(), &[]).unwrap();
    let sw = run::simulate(&set, &opts(4, 2)).unwrap();
    let r = &sw.points[0].report;
    assert_eq!(r.runs, 4);
    let d = &r.resilience.detection_gateway_s;
    assert_eq!((d.n, d.missing), (4, 0));
    assert!((d.min.unwrap() - 13.0).abs() < 1e-6, "{d:?}");
    assert!((d.max.unwrap() - 58.0).abs() < 1e-6, "{d:?}");
    assert!(
        (d.mean.unwrap() - (43.0 + 28.0 + 13.0 + 58.0) / 4.0).abs() < 1e-6,
        "{d:?}"
    );
    // 20 req/s, constant: failures = requests intended in [onset, detection) (± one at each edge)
    let f = &r.resilience.failed_requests;
    assert!((f.max.unwrap() - 20.0 * 58.0).abs() <= 2.0, "{f:?}");
    assert!((f.min.unwrap() - 20.0 * 13.0).abs() <= 2.0, "{f:?}");
    // threads do not change a byte
    let one = run::simulate(&set, &opts(4, 1)).unwrap();
    assert_eq!(
        serde_json::to_string(&one.to_json()).unwrap(),
        serde_json::to_string(&sw.to_json()).unwrap()
    );
}

#[test]
fn sweeps_set_and_assertions() {
    let sweep = format!("{SHORT}\n[sweep]\n\"gateway.health_check.interval\" = [\"60s\", \"10s\"]\n\n[[assert]]\nexpr = \"resilience.detection_gateway_s.max <= 20\"\n");
    let set = load_str("sweep.toml", &sweep, root(), &["traffic.rate=10".into()]).unwrap();
    assert_eq!(set.axes, ["gateway.health_check.interval"]);
    assert_eq!(set.points.len(), 2);
    let sw = run::simulate(&set, &opts(1, 2)).unwrap();
    let p: Vec<&str> = sw
        .points
        .iter()
        .map(|p| p.params["gateway.health_check.interval"].as_str().unwrap())
        .collect();
    assert_eq!(p, ["60s", "10s"], "matrix order");
    // 60 s: next probe at 180 s → 43 s (fails the assertion); 10 s: probes at 140 s → 3 s
    let d: Vec<f64> = sw
        .points
        .iter()
        .map(|p| p.report.resilience.detection_gateway_s.max.unwrap())
        .collect();
    assert!((d[0] - 43.0).abs() < 1e-6 && (d[1] - 3.0).abs() < 1e-6, "{d:?}");
    assert!(!sw.points[0].passed && sw.points[1].passed && !sw.passed);
    // --set reached the traffic: 10 req/s × 300 s
    assert_eq!(sw.points[1].report.traffic.requests.scheduled, 3000);
    let j = sw.to_json();
    assert_eq!(j["points"][0]["params"]["gateway.health_check.interval"], "60s");
    assert_eq!(j["points"][0]["checks"][0]["passed"], false);
}

#[test]
fn time_scale_shrinks_the_incident_and_the_gateway_together() {
    let scaled = format!("time_scale = 0.1\n{SHORT}");
    let set = load_str("scaled.toml", &scaled, root(), &[]).unwrap();
    let sw = run::simulate(&set, &opts(1, 1)).unwrap();
    let r = &sw.points[0].report;
    assert!((r.duration_s - 30.0).abs() < 1e-9);
    // onset 13.7 s, probes every 6 s → next at 18 s: 4.3 s, a tenth of the unscaled 43 s
    let d = r.resilience.detection_gateway_s.max.unwrap();
    assert!((d - 4.3).abs() < 1e-6, "{d}");
}

#[test]
fn scenario_errors_are_reported_with_lines() {
    let dir = std::env::temp_dir().join(format!("chaosgate-scn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[providers.a]\napi = \"openai\"\n\n[gateway]\ntargets = [\"a\", \"nope\"]\n\n[traffic]\nrate = 10.0\n\n[slo]\ntarget = 2.0\n\n[[assert]]\nexpr = \"x <\"\n",
    )
    .unwrap();
    let e = load(&p, &[]).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml:5:") && e.contains("\"nope\" is not a provider"),
        "{e}"
    );
    assert!(e.contains("duration"), "{e}");
    assert!(e.contains("bad.toml:11:") && e.contains("must be in (0, 1)"), "{e}");
    assert!(e.contains("bad.toml:13:") && e.contains("is not a number"), "{e}");
    let e = load(&p, &["gateway..x=1".into()]).unwrap_err().to_string();
    assert!(e.contains("--set") && e.contains("not a dotted path"), "{e}");
    let e = load_str(
        "s.toml",
        &format!("{SHORT}\n[sweep]\n\"gateway.health_check.interval\" = [\"5s\", \"fast\"]\n"),
        root(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("gateway.health_check.interval=fast") && e.contains("invalid duration"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for d in ["examples/incidents", "examples/scenarios"] {
        for e in std::fs::read_dir(root().join(d)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                v.push(e.path());
            }
        }
    }
    for e in std::fs::read_dir(root().join("examples/gateways")).unwrap().flatten() {
        let p = e.path().join("scenario.toml");
        if p.exists() {
            v.push(p);
        }
    }
    v.sort();
    v
}

/// Every shipped scenario loads, validates against `chaosgate schema`, and (builtin
/// gateway) simulates; the schema rejects what the loader rejects.
#[test]
fn shipped_scenarios_load_validate_and_simulate() {
    let schema: serde_json::Value = serde_json::from_str(chaosgate::commands::SCENARIO_SCHEMA).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let files = scenario_files();
    assert!(files.len() >= 8, "{files:?}");
    let mut simulated = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if !text.contains("[gateway]") {
            continue; // providers-only files for `chaosgate mock --scenario`
        }
        let doc: serde_json::Value = serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        let set = load(f, &[]).unwrap_or_else(|e| panic!("{e}"));
        if set.points[0].scenario.gateway.builtin().is_some() {
            let sw = run::simulate(&set, &opts(1, 2)).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(
                sw.points.iter().all(|p| p.report.traffic.requests.sent > 0),
                "{}",
                f.display()
            );
            simulated += 1;
        }
    }
    assert!(simulated >= 7, "{simulated}");
    // the schema catches a misspelt key as the loader does
    let bad = serde_json::json!({"providers": {"a": {"api": "openai"}}, "gateway": {"health_check": {"intervl": "5s"}}, "traffic": {"rate": 1.0}});
    assert!(!v.is_valid(&bad));
    let bad = serde_json::json!({"providers": {"a": {"api": "openai"}}, "gateway": {"kind": "external", "command": "x"}, "traffic": {"rate": 1.0}});
    assert!(!v.is_valid(&bad), "external without ready_url");
}
