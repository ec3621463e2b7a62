//! The simulator end to end: scenario files in, byte-identical JSON reports out; sweeps,
//! `--repeat`, `--set` and assertions through the same path as the CLI.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

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
    let schema: serde_json::Value = serde_json::from_str(chaosgate::cli::commands::SCENARIO_SCHEMA).unwrap();
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
            // every request ends in the report
            for p in &sw.points {
                let q = p.report.traffic.requests;
                assert_eq!(
                    q.scheduled,
                    q.ok + q.failed + q.dropped + q.in_flight_at_end,
                    "{}: {q:?}",
                    f.display()
                );
                assert_eq!(q.in_flight_at_end, 0, "{}", f.display());
            }
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

/// `[slo]` latency targets decide goodput: 100 ms answers meet a 200 ms target, miss a 50 ms one.
#[test]
fn slo_latency_targets_drive_goodput() {
    let sc = "[providers.a]\napi = \"openai\"\n[providers.a.baseline]\nlatency = { kind = \"fixed\", value = \"100ms\" }\n[gateway]\n[traffic]\nrate = 10.0\narrival = \"constant\"\nduration = \"10s\"\n[slo]\ne2e = \"200ms\"\n";
    let good = |sets: &[String]| {
        let set = load_str("slo.toml", sc, root(), sets).unwrap();
        run::simulate(&set, &opts(1, 1)).unwrap().points[0]
            .report
            .traffic
            .throughput
            .goodput_per_s
    };
    assert!((good(&[]) - 10.0).abs() < 1e-9, "{}", good(&[]));
    assert_eq!(good(&["slo.e2e=50ms".into()]), 0.0);
}

/// `[cost] prices`: 100 ok requests of 1,000 prompt and 100 completion tokens at
/// $2.50 / $10.00 per 1M = 100 × (0.0025 + 0.001) = $0.35; an unpriced provider is listed,
/// not counted as free.
#[test]
fn cost_per_provider_by_hand() {
    let dir = std::env::temp_dir().join(format!("chaosgate-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prices.toml"),
        "[providers.a.models]\ngpt-4o = { input_usd_per_1m = 2.50, output_usd_per_1m = 10.00 }\n",
    )
    .unwrap();
    let sc = "[providers.a]\napi = \"openai\"\n[providers.b]\napi = \"openai\"\n[gateway]\nstrategy = \"weighted\"\ntargets = [\"a\"]\n[traffic]\nrate = 10.0\narrival = \"constant\"\nduration = \"10s\"\n[[traffic.kind]]\nname = \"chat\"\nmodel = \"gpt-4o\"\nprompt_tokens = 1000\nmax_tokens = 100\n[cost]\nprices = \"prices.toml\"\n";
    let set = load_str("cost.toml", sc, &dir, &[]).unwrap();
    let sw = run::simulate(&set, &opts(1, 1)).unwrap();
    let c = sw.points[0].report.cost.as_ref().expect("priced");
    assert!((c.total_usd - 0.35).abs() < 1e-9, "{c:?}");
    assert_eq!(c.per_provider["a"].total.requests, 100);
    let j = sw.to_json();
    assert!((j["cost_usd"]["max"].as_f64().unwrap() - 0.35).abs() < 1e-9);
    // a target the table does not price
    let set = load_str("cost.toml", sc, &dir, &["gateway.targets=[\"b\"]".into()]).unwrap();
    let sw = run::simulate(&set, &opts(1, 1)).unwrap();
    let c = sw.points[0].report.cost.as_ref().unwrap();
    assert_eq!((c.total_usd, c.unpriced.len()), (0.0, 1), "{c:?}");
    // a bad price table is a scenario error with its line
    std::fs::write(
        dir.join("prices.toml"),
        "[providers.a.models]\ngpt-4o = { input_usd_per_1m = -1.0, output_usd_per_1m = 10.00 }\n",
    )
    .unwrap();
    let e = load_str("cost.toml", sc, &dir, &[]).unwrap_err().to_string();
    assert!(e.contains("prices.toml:2"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The article's cost story (examples/scenarios/cost-routing.toml): the cheap model takes
/// ≈ 30 % of the traffic "when latency allows", and with 500 in / 200 out tokens per
/// request the saving against GPT-4o direct follows from that share by hand:
/// per request $3,575e-6 (GPT-4o via Portkey), $1,320e-6 (Haiku via Portkey), $3,250e-6 direct.
#[test]
fn cost_routing_reproduces_the_articles_story() {
    let set = load(&root().join("examples/scenarios/cost-routing.toml"), &[]).unwrap();
    let sw = run::simulate(&set, &opts(1, 1)).unwrap();
    let r = &sw.points[0].report;
    let c = r.cost.as_ref().unwrap();
    let n = |p: &str| c.per_provider[p].total.requests as f64;
    let (h, g) = (n("haiku"), n("gpt-4o"));
    let share = h / (h + g);
    assert!((0.25..=0.35).contains(&share), "haiku share {share}");
    let by_hand = 1.0 - (h * 1320e-6 + g * 3575e-6) / ((h + g) * 3250e-6);
    assert!((c.saving_pct.unwrap() / 100.0 - by_hand).abs() < 1e-9, "{c:?}");
    assert!((c.per_provider["gpt-4o"].total.markup_pct.unwrap() - 10.0).abs() < 1e-9);
    assert!(sw.passed);
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

/// The reported defect: `sim --set traffic.rate=1e9` grew by ≈ 170 MB/s. Its planned work
/// and memory are now checked before it starts.
#[test]
fn sim_traffic_rate_1e9_is_refused_before_it_starts() {
    let out = std::process::Command::new(bin())
        .args([
            "sim",
            "examples/incidents/3am-fast-fail.toml",
            "--set",
            "traffic.rate=1e9",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    // past the key's own domain: a configuration error at the key's line
    assert!(e.contains("traffic.rate: must be a number in (0, 1000000]"), "{e}");
    // within the key's domain but past the planned-work limit: refused before it starts
    let out = std::process::Command::new(bin())
        .args([
            "sim",
            "examples/incidents/3am-fast-fail.toml",
            "--set",
            "traffic.rate=1e6",
            "--set",
            "traffic.duration=2000s",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("this simulation is too large: planned requests 2.0 G exceed the limit of 1.0 G"),
        "{e}"
    );
    assert!(e.contains("estimated memory"), "{e}");
    assert!(e.contains("--allow-large"), "{e}");
}

#[test]
fn health_check_every_1ms_for_a_week_is_refused_naming_probes() {
    // the defect: the planned-work check counted requests only, so 1 ms probes of 2
    // targets over a week (1.2 G probe events) went ahead at 1 req/s
    let out = std::process::Command::new(bin())
        .args([
            "sim",
            "examples/incidents/3am-fast-fail.toml",
            "--set",
            "gateway.health_check.interval=1ms",
            "--set",
            "traffic.duration=7days",
            "--set",
            "traffic.rate=1",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains(
            "this simulation is too large: planned health-check probes 1.2 G exceed the limit of 1.0 G per invocation"
        ),
        "{e}"
    );
    assert!(
        !e.contains("planned requests") && !e.contains("estimated memory"),
        "{e}"
    );
    assert!(e.contains("--allow-large"), "{e}");
}

/// Ctrl-C stops a simulation that would run for hours (allowed past the limits), and the
/// partial report is printed and written (exit 130).
#[test]
fn ctrl_c_stops_a_sim_and_writes_the_partial_report() {
    use std::io::BufRead;
    let json = std::env::temp_dir().join(format!("chaosgate-sim-ctrlc-{}.json", std::process::id()));
    let mut child = std::process::Command::new(bin())
        .args([
            "sim",
            "examples/incidents/3am-fast-fail.toml",
            "--set",
            "traffic.rate=20000",
            "--set",
            "traffic.duration=160h",
            "--repeat",
            "3",
            "--jobs",
            "1",
            "--allow-large",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the over-the-limits note comes after the signal handlers are installed
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let note = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("sim started");
    assert!(note.contains("going ahead: --allow-large"), "{note}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > std::time::Duration::from_secs(15) {
            let _ = child.kill();
            panic!("chaosgate sim did not stop after SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("partial report")).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(v["partial"], true, "{}", v["warnings"]);
    assert!(v["duration_s"].as_f64().unwrap() < 3_600_000.0, "{}", v["duration_s"]);
    assert!(
        v["warnings"].to_string().contains("this report is partial"),
        "{}",
        v["warnings"]
    );
    let q = &v["traffic"]["requests"];
    let n = |k: &str| q[k].as_u64().unwrap();
    assert_eq!(
        n("scheduled"),
        n("ok") + n("failed") + n("dropped") + n("in_flight_at_end"),
        "{q}"
    );
}

/// `sim --swarm N --seed S`: N generated scenarios under every invariant, a one-line
/// summary and exit 0; N out of range and a scenario file with --swarm are clear errors.
#[test]
fn sim_swarm_checks_generated_scenarios_and_limits_n() {
    let out = std::process::Command::new(bin())
        .args(["sim", "--swarm", "5", "--seed", "77", "--jobs", "1"])
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert!(
        o.starts_with("swarm: 5 scenarios passed every invariant (seeds 77..=81); "),
        "{o}"
    );
    assert!(e.contains("swarm: 5/5 scenarios checked"), "{e}");
    for (args, expect) in [
        (&["sim", "--swarm", "0"][..], "0 is not in 1..=100000"),
        (&["sim", "--swarm", "100001"][..], "100001 is not in 1..=100000"),
        (
            &["sim", "--swarm", "3", "examples/incidents/demo.toml"][..],
            "the argument '--swarm <N>' cannot be used with '[SCENARIO]'",
        ),
        (&["sim"][..], "the following required arguments were not provided"),
    ] {
        let out = std::process::Command::new(bin())
            .args(args)
            .current_dir(root())
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(expect), "{args:?}: {e}");
    }
}

/// The article's closed-loop workload — 200 users spawned at 20/s, 1 s of think time,
/// 500 ms answers — and a primary that hangs from 61 s for 2 min (user requests and
/// `/health`). Request timeout 30 s, no failover on failure, probes every 60 s with a 30 s
/// timeout: the probe at 120 s hangs, the gateway ejects the primary at 150 s (detection
/// 89 s).
const ARTICLE_USERS: &str = r#"
seed = 1
[providers.primary]
api = "openai"
baseline = { latency = { kind = "fixed", value = "500ms" } }
[[providers.primary.phase]]
name = "outage"
start = "61s"
duration = "2m"
connection = [{ kind = "hang" }]
[providers.fallback]
api = "openai"
baseline = { latency = { kind = "fixed", value = "500ms" } }
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "60s", timeout = "30s", unhealthy_threshold = 1, healthy_threshold = 1 }
request_timeout = "30s"
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
users = 200
spawn_rate = 20.0
think_time = { kind = "constant", value = "1s" }
duration = "5m"
"#;

fn sim_report(toml: &str, sets: &[String]) -> chaosgate::analysis::results::RunReport {
    let set = load_str("users.toml", toml, root(), sets).unwrap_or_else(|e| panic!("{e}"));
    run::simulate(&set, &opts(1, 1)).unwrap().points[0].report.clone()
}

/// The closed-loop effect: a user stuck on a hung request sends nothing else. Each user's
/// cycle is 1.5 s; its first request after 61 s hangs 30 s, then 1 s of think, and so on
/// (31 s cycles): starts at ≈ 61–62.5 s, 92–93.5 s and 123–124.5 s hang, the next one
/// (≈ 154 s) comes after the ejection at 150 s and goes to the fallback. So exactly 3 ×
/// 200 = 600 failed requests — where an open loop at the same 133.3 req/s (200 / 1.5 s)
/// keeps sending into the hang: ≈ 133.3 × 89 s ≈ 11,900 failed. The users also send
/// ≈ 200 × 3 × (31 − 1.5) / 1.5 ≈ 11,800 fewer requests than without the outage.
#[test]
fn closed_loop_users_stuck_on_a_hang_send_fewer_requests() {
    let closed = sim_report(ARTICLE_USERS, &[]);
    let d = &closed.resilience.detection_gateway_s;
    assert!((d.max.unwrap() - 89.0).abs() < 1e-6, "{d:?}");
    let q = closed.traffic.requests;
    assert_eq!(q.failed, 600, "{q:?}");
    // the gateway answers each attempt that timed out with a 504 (gateway/attempt.rs)
    assert_eq!(closed.traffic.failures_by_kind.get("http_504"), Some(&600));
    assert_eq!(q.scheduled, q.ok + q.failed);
    // the same users without the outage
    let calm = sim_report(&ARTICLE_USERS.replace("start = \"61s\"", "start = \"10m\""), &[]);
    let fewer = calm.traffic.requests.scheduled as f64 - q.scheduled as f64;
    assert_eq!(calm.traffic.requests.failed, 0);
    assert!((fewer - 11_800.0).abs() / 11_800.0 < 0.02, "{fewer}");
    // the same rate open loop
    let open = ARTICLE_USERS.replace(
        "users = 200\nspawn_rate = 20.0\nthink_time = { kind = \"constant\", value = \"1s\" }",
        "rate = 133.3333\narrival = \"constant\"",
    );
    let open = sim_report(&open, &[]);
    assert!((open.resilience.detection_gateway_s.max.unwrap() - 89.0).abs() < 1e-6);
    let f = open.traffic.requests.failed as f64;
    assert!((f - 133.3333 * 89.0).abs() / (133.3333 * 89.0) < 0.01, "{f}");
}

/// Same closed-loop scenario and seed ⇒ the same JSON report, byte for byte, whatever the
/// number of worker threads (uniform think times, random errors and a repeat).
#[test]
fn closed_loop_same_seed_same_bytes() {
    let sc = ARTICLE_USERS
        .replace(
            "think_time = { kind = \"constant\", value = \"1s\" }",
            "think_time = { kind = \"uniform\", min = \"500ms\", max = \"2s\" }",
        )
        .replace(
            "connection = [{ kind = \"hang\" }]",
            "errors = [{ status = 502, probability = 0.3 }]",
        );
    let json = |jobs: usize| {
        let set = load_str("users.toml", &sc, root(), &[]).unwrap();
        let sw = run::simulate(&set, &opts(2, jobs)).unwrap();
        serde_json::to_string_pretty(&sw.to_json()).unwrap()
    };
    let a = json(1);
    assert_eq!(a, json(2));
    assert!(a.contains("\"http_502\""), "the errors reach the report");
}

/// Sim against live (`chaosgate run`: mocks, the builtin gateway and the load client's
/// closed loop on 127.0.0.1) on the same small closed loop: 10 users spawned at 10/s, 200 ms
/// of think time, 300 ms answers, 5 s. By hand, user u starts at u/10 + k/2 s while that is
/// before 5 s: 10 requests for users 0–4, 9 for 5–9, 95 in all, every one 300 ms.
///
/// Live, each cycle also carries loopback, proxy and scheduling time δ ≥ 0 (the mock
/// answers 300 ms after the request reaches it, which is after its intended start), so a
/// user's k-th start comes k·δ later than simulated: live can only send fewer, and with
/// δ < 50 ms (a tenth of a cycle; a loopback round trip on an idle machine is well under
/// 1 ms) each user loses at most its last start — at most 10 requests. Latency p50: live
/// is 300 ms + δ; 60 ms of slack covers a loaded CI core.
#[test]
fn closed_loop_sim_matches_live() {
    const S: &str = r#"
seed = 3
[providers.primary]
api = "openai"
baseline = { latency = { kind = "fixed", value = "300ms" } }
[providers.fallback]
api = "openai"
baseline = { latency = { kind = "fixed", value = "300ms" } }
[gateway]
targets = ["primary", "fallback"]
fallback_on_failure = true
[traffic]
users = 10
spawn_rate = 10.0
think_time = { kind = "constant", value = "200ms" }
duration = "5s"
"#;
    let set = load_str("users-live.toml", S, root(), &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("chaosgate-test-users-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = RunOptions::new(dir.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = rt.block_on(run::run_live(&set, &o)).unwrap();
    assert!(!live.interrupted);
    let live = live.report.points[0].report.traffic.clone();
    let sim = run::simulate(&set, &o).unwrap().points[0].report.traffic.clone();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        (sim.requests.scheduled, sim.requests.ok),
        (95, 95),
        "{:?}",
        sim.requests
    );
    assert!((sim.latency_ms.p50 - 300.0).abs() < 1.0, "{}", sim.latency_ms.p50);
    let (l, s) = (live.requests, sim.requests);
    assert!(
        l.scheduled <= s.scheduled && l.scheduled + 10 >= s.scheduled,
        "live {l:?} vs sim {s:?}"
    );
    assert_eq!((l.ok, l.failed, l.in_flight_at_end), (l.scheduled, 0, 0), "{live:?}");
    let p50 = live.latency_ms.p50;
    eprintln!(
        "closed loop live: {} requests, p50 {p50} ms (sim: 95, 300 ms)",
        l.scheduled
    );
    assert!((300.0..=360.0).contains(&p50), "live p50 {p50} ms vs sim 300 ms");
}
