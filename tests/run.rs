//! `chaosgate run` end to end, live on 127.0.0.1: the builtin gateway on a compressed
//! incident (numbers within the formulas' bounds), the same scenario in the simulator
//! (within 5 %), an external gateway through the template mechanism, exit codes, JUnit,
//! and Ctrl-C leaving nothing behind.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::run::{self, RunOptions};
use chaosgate::scenario::load_str;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 150 s of scenario at 0.1: the primary fails requests with 502 from 50 s for 60 s while
/// its probes hang. Probes every 30 s (3 s here) with a 10 s (1 s) timeout, N = 1: the
/// probe at 6 s hangs until 7 s, so D = 7 − 5 = 2 s; constant 200 req/s → ≈ 400 failed.
const COMPRESSED: &str = r#"
seed = 5
time_scale = 0.1
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "50s"
duration = "60s"
applies_to = "completions"
errors = [{ status = 502 }]
[[providers.primary.phase]]
name = "probes-hang"
start = "50s"
duration = "60s"
applies_to = "health"
health = { hang = true }
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "30s", timeout = "10s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
rate = 200.0
arrival = "constant"
duration = "150s"
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn builtin_gateway_live_matches_the_formula_and_the_simulator() {
    let set = load_str("compressed.toml", COMPRESSED, root(), &[]).unwrap();
    let o = RunOptions::new(tmp("builtin"));
    let live = rt().block_on(run::run_live(&set, &o)).unwrap();
    assert!(!live.interrupted);
    let l = &live.report.points[0].report;
    let f = &l.resilience.faults[0];
    // D = U + T = 1 s + 1 s (scaled); the gateway view is exact up to scheduling jitter
    let dg = f.detection_gateway_s.expect("ejected");
    assert!((dg - 2.0).abs() < 0.1, "gateway view {dg}");
    let dt = f.detection_traffic_s.expect("drained");
    assert!((dt - 2.0).abs() <= 0.15, "traffic view {dt}");
    let failed = f.failed_during as f64;
    assert!((failed - 400.0).abs() <= 30.0, "failed {failed}");
    assert!(l.gateway.log.as_deref().is_some_and(|p| Path::new(p).exists()));
    // the simulator, same scenario and seed: failed requests within 5 %
    let sim = run::simulate(&set, &o).unwrap();
    let s = &sim.points[0].report.resilience.faults[0];
    let rel = |a: f64, b: f64| (a - b).abs() / b.max(1e-9);
    assert!(
        rel(failed, s.failed_during as f64) <= 0.05,
        "failed live {failed} vs sim {}",
        s.failed_during
    );
    // the traffic view is read from 100 ms analysis buckets: here the ejection falls exactly
    // on a bucket edge (7.000 s), which the live gateway, a few ms late, crosses (since
    // its probes run in step with the traffic's clock, as the simulator's do)
    let st = s.detection_traffic_s.unwrap();
    assert!(
        (dt - st).abs() <= 0.1 + 0.05 * st + 1e-9,
        "detection live {dt} vs sim {st}: more than one bucket + 5 % apart"
    );
}

/// `chaosgate run` of the reference gateway as an external process (the example scenario).
fn external_run(dir: &Path, json: &Path, time_scale: &str) -> Command {
    let mut c = Command::new(bin());
    c.args(["run", "examples/gateways/chaosgate/scenario.toml", "--quiet", "--set"])
        .arg(format!("gateway.command={}", bin()))
        .arg("--set")
        .arg(format!("time_scale={time_scale}"))
        .arg("--run-dir")
        .arg(dir)
        .arg("--json")
        .arg(json)
        .current_dir(root());
    c
}

#[test]
fn external_gateway_through_the_template_mechanism() {
    let dir = tmp("external");
    let json = dir.join("r.json");
    let out = external_run(&dir, &json, "0.1").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["gateway"]["kind"], "external");
    // rendered config and captured log
    let rendered = std::fs::read_to_string(dir.join("point0-run0/gateway.toml")).unwrap();
    assert!(rendered.contains("interval = \"500ms\""), "5 s × 0.1: {rendered}");
    assert!(rendered.contains("fallback_on_failure = false"), "{rendered}");
    assert!(v["gateway"]["log"].as_str().unwrap().ends_with("gateway.log"));
    // traffic view from what the mocks received: fast fail, I = 0.5 s → D < 0.5 s + hold slack
    let d = v["resilience"]["detection_s"]["max"].as_f64().unwrap();
    assert!(d <= 0.8, "{d}");
    let failed = v["resilience"]["failed_requests"]["max"].as_f64().unwrap();
    assert!((1.0..=100.0 * 0.8).contains(&failed), "{failed}");
    assert!(v["resilience"]["failback_s"]["max"].as_f64().unwrap() <= 1.0);
}

fn sim_cmd(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("sim")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn exit_codes_and_junit() {
    let dir = tmp("codes");
    let junit = dir.join("j.xml");
    let sc = dir.join("s.toml");
    std::fs::write(
        &sc,
        format!("{COMPRESSED}\n[sweep]\n\"gateway.health_check.interval\" = [\"30s\", \"5s\"]\n"),
    )
    .unwrap();
    let sc = sc.to_str().unwrap();
    let chart = dir.join("c.svg");
    let ok = sim_cmd(&[
        sc,
        "--quiet",
        "--assert",
        "resilience.detection_gateway_s.max <= 5",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    // the chart: well-formed SVG with the swept axis on x (durations in seconds)
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(svg.contains("gateway.health_check.interval (s)"), "{svg}");
    let j = junit.to_str().unwrap();
    let fail = sim_cmd(&[
        sc,
        "--quiet",
        "--assert",
        "resilience.detection_gateway_s.max <= 1.5",
        "--assert",
        "budget.consumed_pct.max < 100",
        "--junit",
        j,
    ]);
    assert_eq!(fail.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&fail.stdout);
    assert!(
        stdout
            .contains("FAILED [gateway.health_check.interval=30s]: resilience.detection_gateway_s.max <= 1.5 — got 2"),
        "{stdout}"
    );
    // JUnit: well-formed, one case per assertion per point, the failure where it belongs
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 4, "2 points × 2 assertions");
    let failures: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].attribute("classname").unwrap().contains("interval=30s"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    // usage and configuration errors: 2
    assert_eq!(
        sim_cmd(&[sc, "--assert", "resilience.detection_s.max <== 3"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(sim_cmd(&[sc, "--set", "traffic.rate=-1"]).status.code(), Some(2));
    assert_eq!(sim_cmd(&["nope.toml"]).status.code(), Some(2));
    assert_eq!(sim_cmd(&[sc, "--repeat", "0"]).status.code(), Some(2));
    let bad = sim_cmd(&[sc, "--set", "gateway.health_check.intervl=5s"]);
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        bad.status.code() == Some(2) && e.contains("unknown field `intervl`"),
        "{e}"
    );
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                v.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

#[test]
fn ctrl_c_stops_everything_and_writes_a_partial_report() {
    let dir = tmp("ctrlc");
    let json = dir.join("r.json");
    let mut child = external_run(&dir, &json, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the external gateway is up (its events file appears), then a bit of traffic
    let events = dir.join("point0-run0/events.jsonl");
    let t = Instant::now();
    while !events.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "the gateway never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let needle = dir.to_string_lossy().to_string();
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "the gateway runs with the run dir in its args"
    );
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("chaosgate run did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "left behind: {left:?}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("partial report")).unwrap();
    assert!(v["warnings"].to_string().contains("partial"), "{}", v["warnings"]);
    // the reported defect: partial runs said `duration_s` = the planned length
    assert_eq!(v["partial"], true);
    let d = v["duration_s"].as_f64().unwrap();
    assert!(d < 60.0, "the measured duration, not the planned 180 s: {d}");
    let q = &v["traffic"]["requests"];
    let n = |k: &str| q[k].as_u64().unwrap();
    assert_eq!(
        n("scheduled"),
        n("ok") + n("failed") + n("dropped") + n("in_flight_at_end"),
        "{q}"
    );
    let sent = v["traffic"]["requests"]["sent"].as_u64().unwrap();
    assert!(
        sent > 50 && sent < 100 * 60,
        "about 1.5 s of 100 req/s, not the full run: {sent}"
    );
}

/// Ctrl-C stops `chaosgate demo` too: exit 130 and a partial report with the measured
/// duration.
#[test]
fn ctrl_c_stops_the_demo_with_a_partial_report() {
    use std::io::BufRead;
    let dir = tmp("demo-ctrlc");
    let json = dir.join("demo.json");
    let mut child = Command::new(bin())
        .arg("demo")
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("the demo started");
    assert!(first.starts_with("chaosgate demo:"), "{first}");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("chaosgate demo did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("partial report")).unwrap();
    // a sweep of two intervals: the partial sweep never passes
    assert_eq!(
        (&v["partial"], &v["passed"]),
        (&serde_json::json!(true), &serde_json::json!(false)),
        "{v}"
    );
    let v = &v["points"][0]["report"];
    assert_eq!(v["partial"], true, "{v}");
    assert!(v["duration_s"].as_f64().unwrap() < 20.0, "{}", v["duration_s"]);
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kind = "running"`: a gateway started outside chaosgate (here `chaosgate gateway` as a
/// process of the test's own, as docker-compose would start one), its upstreams set to
/// the providers' fixed ports; `chaosgate run` starts only the mocks, prints their URLs,
/// waits for readiness and measures the outage through it.
#[test]
fn a_gateway_that_already_runs() {
    let dir = tmp("running");
    let (p1, p2, g) = (free_port(), free_port(), free_port());
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{g}\"\nfallback_on_failure = false\nretries = {{ attempts = 0 }}\nhealth_check = {{ interval = \"500ms\", timeout = \"200ms\", unhealthy_threshold = 1, healthy_threshold = 1 }}\ntargets = [{{ name = \"primary\", url = \"http://127.0.0.1:{p1}\" }}, {{ name = \"fallback\", url = \"http://127.0.0.1:{p2}\" }}]\n"
        ),
    )
    .unwrap();
    let mut gw = Command::new(bin())
        .args(["gateway", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sc = dir.join("s.toml");
    std::fs::write(
        &sc,
        format!(
            r#"
seed = 3
[providers.primary]
api = "openai"
port = {p1}
[[providers.primary.phase]]
name = "outage"
start = "2s"
duration = "2s"
errors = [{{ status = 502 }}]
health = {{ status = 503 }}
[providers.fallback]
api = "openai"
port = {p2}
[gateway]
kind = "running"
base_url = "http://127.0.0.1:{g}"
ready_timeout = "10s"
[traffic]
rate = 50.0
arrival = "constant"
duration = "6s"
"#
        ),
    )
    .unwrap();
    let json = dir.join("r.json");
    let out = Command::new(bin())
        .arg("run")
        .arg(&sc)
        .args(["--quiet", "--run-dir"])
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let _ = gw.kill();
    let _ = gw.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("primary          http://127.0.0.1:{p1} (openai)")),
        "the provider URLs are printed for the gateway's config: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["gateway"]["kind"], "running");
    assert!(v["gateway"]["ready_s"].as_f64().is_some());
    // the gateway probes every 0.5 s with N = 1: it ejects the primary within ≈ 0.7 s, so
    // some requests fail (502 passed through) and then traffic moves to the fallback
    let failed = v["resilience"]["failed_requests"]["max"].as_f64().unwrap();
    assert!((1.0..=60.0).contains(&failed), "failed {failed}");
    let d = v["resilience"]["detection_s"]["max"].as_f64().unwrap();
    assert!(d <= 1.5, "detection {d}");
}

/// A running gateway needs the mocks at fixed addresses, and a clear word when it is not
/// up.
#[test]
fn a_running_gateway_needs_fixed_provider_ports_and_says_when_it_is_not_up() {
    let dir = tmp("running-bad");
    let sc = dir.join("s.toml");
    let body = |port: &str, base: &str| {
        format!(
            "[providers.a]\napi = \"openai\"\n{port}\n[gateway]\nkind = \"running\"\nbase_url = \"{base}\"\nready_timeout = \"1s\"\n[traffic]\nrate = 1.0\nduration = \"1s\"\n"
        )
    };
    // the scenario written, run: (exit code, stderr)
    let run = |text: String| {
        std::fs::write(&sc, text).unwrap();
        let out = Command::new(bin())
            .arg("run")
            .arg(&sc)
            .arg("--run-dir")
            .arg(&dir)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, e) = run(body("", "http://127.0.0.1:1"));
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("providers.a: a running gateway reaches the mocks at fixed addresses"),
        "{e}"
    );
    let (_, e) = run(body("listen = \"127.0.0.1:0\"", "ftp://x"));
    assert!(e.contains("gateway.base_url: expected an http:// URL"), "{e}");
    let port = free_port();
    let (code, e) = run(body(
        &format!("port = {}", free_port()),
        &format!("http://127.0.0.1:{port}"),
    ));
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("not ready at") && e.contains("start your gateway first"),
        "{e}"
    );
}

/// `chaosgate init chaosgate DIR` writes a directory that `chaosgate run` runs at once.
#[test]
fn init_then_run_works_at_once() {
    let dir = tmp("init").join("mine");
    let out = Command::new(bin())
        .args(["init", "chaosgate"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("run it:   chaosgate run "), "{text}");
    let out = Command::new(bin())
        .arg("run")
        .arg(dir.join("scenario.toml"))
        .args(["--set", "time_scale=0.05", "--set"])
        .arg(format!("gateway.command={}", bin()))
        .arg("--run-dir")
        .arg(dir.join("runs"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `never` only for what could be measured: an external gateway's events are not visible
    assert!(
        text.contains("detection gateway n/a (external gateway: its events are not visible)"),
        "{text}"
    );
    // into a directory that holds something: refused, nothing overwritten
    let again = Command::new(bin())
        .args(["init", "chaosgate"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists and is not empty"));
}
