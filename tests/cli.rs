//! The command line as a user meets it: progress off a terminal (nothing, or status lines on
//! stderr when `CHAOSGATE_STATUS_EVERY` asks for them),
//! `--quiet`, `--json -` on stdout, and the spellings the CLI and scenario files share.
//! Every run here is small (time_scale, a second or two of traffic) and on 127.0.0.1.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 20 s of scenario at 0.05 (1 s live), 20 req/s, the primary failing from 10 s.
const TINY: &str = r#"
name = "tiny"
seed = 5
time_scale = 0.05
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "10s"
duration = "5s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "2s", timeout = "1s", unhealthy_threshold = 1, healthy_threshold = 1 }
retries = { attempts = 0 }
fallback_on_failure = false
[traffic]
rate = 20.0
arrival = "constant"
duration = "20s"
"#;

fn scenario(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("scenario.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs chaosgate off a terminal (stdout and stderr are pipes), status lines every 200 ms.
fn chaosgate(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .env("CHAOSGATE_STATUS_EVERY", "200ms")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn status_lines<'a>(stderr: &'a str, command: &str) -> Vec<&'a str> {
    let prefix = format!("chaosgate {command}: ");
    stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(" elapsed · "))
        .collect()
}

#[test]
fn run_off_a_terminal_prints_labelled_status_lines_and_json_dash_is_stdout() {
    let dir = tmp("run");
    let file = scenario(&dir, TINY);
    let run_dir = dir.join("runs");
    let out = chaosgate(&[
        "run",
        file.to_str().unwrap(),
        "--sweep",
        "traffic.rate=10,20",
        "--json",
        "-",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // stdout is the JSON report and nothing else
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["points"].as_array().map(Vec::len), Some(2), "{stdout}");
    assert!(!dir.join("-").exists() && !root().join("-").exists(), "no file named -");
    // the text report went to stderr, with a status line as each run starts
    assert!(stderr.contains("traffic.rate=20"), "{stderr}");
    let lines = status_lines(&stderr, "run");
    for point in ["point 1/2 traffic.rate=10 · ", "point 2/2 traffic.rate=20 · "] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("chaosgate run: {point}"))),
            "no line for {point}: {lines:#?}"
        );
    }
    // the first line of the run comes before anything is known: no ETA yet
    assert!(
        lines[0].starts_with("chaosgate run: point 1/2 traffic.rate=10 · 0:00 elapsed · 0 % · ETA ? · starting"),
        "{lines:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sim_off_a_terminal_prints_status_lines_and_quiet_prints_none() {
    let dir = tmp("sim");
    let file = scenario(&dir, TINY);
    let f = file.to_str().unwrap();
    let out = chaosgate(&["sim", f, "--repeat", "3"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = status_lines(&stderr, "sim");
    assert_eq!(
        lines.first().copied(),
        Some("chaosgate sim: 0/3 runs done · 0:00 elapsed · 0 % · ETA ?"),
        "{stderr}"
    );
    // --quiet: no progress at all, only the summary on stdout
    let out = chaosgate(&["sim", f, "--repeat", "3", "--quiet"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(status_lines(&stderr, "sim").is_empty(), "{stderr}");
    // --json -: stdout parses as JSON, byte for byte what --json FILE writes
    let out = chaosgate(&["sim", f, "--repeat", "3", "--json", "-", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    // (one point: the report itself, not a sweep)
    assert_eq!(v["runs"], 3, "{v}");
    let json = dir.join("r.json");
    let file_out = chaosgate(&["sim", f, "--repeat", "3", "--json", json.to_str().unwrap(), "--quiet"]);
    assert_eq!(file_out.status.code(), Some(0));
    assert_eq!(std::fs::read(&json).unwrap(), out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn off_a_terminal_without_status_every_no_progress_is_shown() {
    let dir = tmp("sim-silent");
    let file = scenario(&dir, TINY);
    let out = Command::new(bin())
        .args(["sim", file.to_str().unwrap(), "--repeat", "3"])
        .current_dir(root())
        .env_remove("CHAOSGATE_STATUS_EVERY")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(status_lines(&stderr, "sim").is_empty(), "{stderr}");
    // the report itself still comes
    assert!(text(&out.stdout).contains("runs"), "{}", text(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_json_dash_writes_the_report_to_stdout() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (h, _) = rt.block_on(common::start(chaosgate::provider::Api::OpenAi, "", 1));
    let target = format!("http://{}", h.addr);
    let out = chaosgate(&[
        "load",
        "--target",
        &target,
        "--rate",
        "20",
        "--arrival",
        "constant",
        "--duration",
        "1s",
        "--json",
        "-",
        "--seed",
        "3",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(v["seed"], 3);
    assert_eq!(v["requests"]["ok"], 20, "{v}");
    // the text report and a status line (at the start) on stderr
    assert!(
        status_lines(&stderr, "load")
            .first()
            .is_some_and(|l| l.starts_with("chaosgate load: 0:00 elapsed · 0 % · ETA ?")),
        "{stderr}"
    );
    rt.block_on(h.shutdown());
}

/// The demo takes `--seed`, `--set`, `--quiet` and `--json -` like `run`; shortened here
/// with `--set time_scale` to a few seconds.
#[test]
fn demo_takes_seed_set_and_json_dash() {
    let out = chaosgate(&["demo", "--set", "time_scale=0.004", "--seed", "3", "--json", "-"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let points = v["points"].as_array().expect("points");
    assert_eq!(points.len(), 2);
    for p in points {
        assert_eq!(p["report"]["seed"], 3);
        assert_eq!(p["report"]["time_scale"], 0.004);
    }
    // the demo says what it does at once, then a labelled line per run
    assert!(
        stderr.starts_with("chaosgate demo: the article's 3 AM incident"),
        "{stderr}"
    );
    let lines = status_lines(&stderr, "demo");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("chaosgate demo: point 2/2 gateway.health_check.interval=5s · ")),
        "{lines:#?}"
    );
}

#[test]
fn scenarios_take_the_clis_spellings() {
    let dir = tmp("spellings");
    let text_of = TINY.replace(
        "targets = [\"primary\", \"fallback\"]",
        "targets = [\"primary\", \"fallback\"]\nstrategy = \"least-latency\"",
    );
    // (at time_scale 1: think times are not scaled)
    let closed = text_of.replace("time_scale = 0.05", "time_scale = 1.0").replace(
        "rate = 20.0\narrival = \"constant\"",
        "users = 2\nthink_time = \"500ms\"",
    );
    let file = scenario(&dir, &closed);
    let out = chaosgate(&["sim", file.to_str().unwrap(), "--json", "-", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 2 users, a request every 500 ms each for 20 s (the mocks answer at once): 2 × 40
    let sent = v["traffic"]["requests"]["sent"].as_u64().expect("a one-point report");
    assert!((76..=80).contains(&sent), "{sent}");
    // --set takes the same spellings
    let out = chaosgate(&[
        "sim",
        file.to_str().unwrap(),
        "--set",
        "gateway.strategy=least_latency",
        "--set",
        "traffic.think_time=1s..2s",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[traffic]` was said to take "the keys of `chaosgate load`" but rejected `timeout`,
/// `grace` and `concurrency` with serde's bare "unknown field". They stay refused — in a
/// scenario the client follows the gateway, live and simulated alike — but the error says
/// so and where the value comes from.
#[test]
fn traffic_timeout_grace_concurrency_are_refused_with_the_reason() {
    let dir = tmp("client-keys");
    let with = TINY.replace(
        "duration = \"20s\"\n",
        "duration = \"20s\"\ntimeout = \"30s\"\ngrace = \"5s\"\nconcurrency = 50\n",
    );
    let file = scenario(&dir, &with);
    let out = chaosgate(&["sim", file.to_str().unwrap()]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    for (key, why) in [
        ("traffic.timeout", "gateway.request_timeout"),
        ("traffic.grace", "client's timeout"),
        ("traffic.concurrency", "the simulator has no cap"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.contains(key) && l.contains("not a [traffic] key") && l.contains(why)),
            "{key}: {e}"
        );
    }
    assert!(!e.contains("unknown field"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `calibrate` and `profile-stats` take `--json PATH|-` like the rest; `calibrate -o`
/// stays the profile's (TOML) flag, `-o -` being stdout.
#[test]
fn calibrate_and_profile_stats_json_dash_is_stdout() {
    let fit = ["calibrate", "--p50", "1240ms", "--p95", "2890ms", "--p99", "4120ms"];
    let out = chaosgate(&[&fit[..], &["--json", "-"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let toml_text = v["profile_toml"].as_str().expect("the profile");
    assert!(
        toml_text.starts_with("# Fitted by: chaosgate calibrate --p50 1240ms"),
        "{toml_text}"
    );
    assert!(v["measured"]["latency_ms"]["p50"].as_f64().is_some(), "{v}");
    // the profile itself then went to stderr, and `-o -` prints it on stdout
    assert!(text(&out.stderr).contains(toml_text), "{}", text(&out.stderr));
    let out = chaosgate(&[&fit[..], &["-o", "-"]].concat());
    assert_eq!(text(&out.stdout), toml_text);
    let out = chaosgate(&[
        "profile-stats",
        "fault-profiles/healthy.toml",
        "--samples",
        "1000",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["latency_ms"]["p50"].as_f64().is_some(), "{v}");
}
