//! `[gateway] replicas = N`, live on 127.0.0.1: the builtin gateway as N proxies behind the
//! client's round robin (each opening its own breaker, as the simulator says), an external
//! gateway as N processes (each rendered with its own port and files, each receiving
//! traffic), and the run's Redis (`redis = true`) started, reachable from the templates'
//! `redis.*` and stopped.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::run::{self, RunOptions};
use chaosgate::scenario::load_str;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-replicas-{name}-{}", std::process::id()));
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

/// A hard 502 outage of the primary from 2 s to the end; constant 10 req/s (each of two
/// replicas sees a request every 200 ms, long after the mock's immediate 502 came back); a
/// consecutive breaker of k = 5 that stays open; no retries or fallback on failure; health
/// probes every second that the outage spares (`applies_to = "completions"`), so each
/// replica's own probes show in its log and never eject. Each replica needs its own k
/// failures: N · k failed requests.
const HARD_OUTAGE: &str = r#"
seed = 3
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "2s"
applies_to = "completions"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
breaker = { kind = "consecutive", failures = 5, base_ejection = "300s", max_ejection = "300s" }
health_check = { interval = "1s", timeout = "500ms" }
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
rate = 10.0
arrival = "constant"
duration = "5s"
"#;

/// The lines of an events file whose `event` is `what`.
fn events_of(path: &Path, what: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == what)
        .collect()
}

#[test]
fn two_builtin_replicas_each_open_their_own_breaker_live_as_in_the_simulator() {
    let set = load_str("outage.toml", HARD_OUTAGE, root(), &["gateway.replicas=2".to_string()]).unwrap();
    let dir = tmp("builtin");
    let o = RunOptions::new(dir.clone());
    let live = rt().block_on(run::run_live(&set, &o)).unwrap();
    let l = &live.report.points[0].report;
    let sim = run::simulate(&set, &o).unwrap();
    let s = &sim.points[0].report;
    assert_eq!(s.traffic.requests.failed, 10, "sim: 2 replicas × k = 5");
    assert_eq!(
        l.traffic.requests.failed, 10,
        "live: 2 replicas × k = 5, as the simulator"
    );
    // two proxies, each its own event log; each opened its own breaker on the primary
    // and names itself in its events
    for k in 0..2u64 {
        let f = dir.join(format!("point0-run0/gateway-events-{k}.jsonl"));
        let opened = events_of(&f, "breaker_opened");
        assert_eq!(opened.len(), 1, "replica {k}: {opened:?}");
        assert_eq!(opened[0]["target"], "primary");
        assert_eq!(opened[0]["replica"], k, "{opened:?}");
        // each replica probes both providers on its own (5 s at one probe a second each)
        let probes = events_of(&f, "probe_result");
        assert!(probes.len() >= 2 * 4, "replica {k}: {} probes", probes.len());
        assert!(
            probes.iter().all(|p| p["replica"] == k && p["ok"] == true),
            "{probes:?}"
        );
    }
    assert!(!dir.join("point0-run0/gateway-events.jsonl").exists());
    // alone (the default), the same scenario fails k and its events carry no replica
    let one = load_str("outage.toml", HARD_OUTAGE, root(), &[]).unwrap();
    let dir1 = tmp("builtin-one");
    let live1 = rt()
        .block_on(run::run_live(&one, &RunOptions::new(dir1.clone())))
        .unwrap();
    assert_eq!(live1.report.points[0].report.traffic.requests.failed, 5);
    let opened = events_of(&dir1.join("point0-run0/gateway-events.jsonl"), "breaker_opened");
    assert_eq!(opened.len(), 1);
    assert!(opened[0].get("replica").is_none(), "{opened:?}");
}

#[test]
fn two_external_replicas_get_their_own_port_and_files_and_both_receive_traffic() {
    let dir = tmp("external");
    let json = dir.join("r.json");
    // the reference gateway as an external process (the example), twice; falling back on
    // failure, so each replica logs the outage's requests it moved to the fallback
    let out = Command::new(bin())
        .args(["run", "examples/gateways/chaosgate/scenario.toml", "--quiet"])
        .args(["--set", &format!("gateway.command={}", bin())])
        .args(["--set", "time_scale=0.1", "--set", "gateway.replicas=2"])
        .args(["--set", "gateway.values.fallback_on_failure=true"])
        .arg("--run-dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ports = Vec::new();
    for k in 0..2 {
        let rd = dir.join(format!("point0-run0/replica-{k}"));
        let rendered = std::fs::read_to_string(rd.join("gateway.toml")).unwrap();
        let port = rendered
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse::<u16>().ok())
            .expect("listen line");
        ports.push(port);
        assert!(rd.join("gateway.log").exists(), "replica {k} keeps its log");
        // `{{ run_dir }}/events.jsonl` is this replica's own directory
        let moved = events_of(&rd.join("events.jsonl"), "fallback");
        assert!(
            !moved.is_empty(),
            "replica {k} received traffic and moved some to the fallback"
        );
    }
    assert_ne!(ports[0], ports[1], "each replica its own port");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let log = v["gateway"]["log"].as_str().unwrap();
    assert!(
        log.contains("replica-0/gateway.log") && log.contains("replica-1/gateway.log"),
        "{log}"
    );
    // both replicas' fallbacks kept the clients whole
    assert_eq!(v["traffic"]["requests"]["failed"], 0, "{}", v["traffic"]["requests"]);
}

#[test]
fn the_harness_starts_redis_for_the_templates_and_stops_it() {
    if !chaosgate::live::redis::installed() {
        // CI sets this after its installs (.ci/run): there a missing Redis is a failure
        assert!(
            std::env::var_os("CHAOSGATE_REQUIRE_REDIS").is_none(),
            "CHAOSGATE_REQUIRE_REDIS is set but redis-server is not installed (bash scripts/interop-setup redis)"
        );
        eprintln!("skipped: redis-server is not installed (bash scripts/interop-setup redis)");
        return;
    }
    // in process: started on a free port, answers PING, gone after stop
    let run_dir = tmp("redis-direct");
    rt().block_on(async {
        let mut r = chaosgate::live::redis::start(&run_dir).await.unwrap();
        let addr = format!("{}:{}", r.vars.host, r.vars.port);
        assert_eq!(r.vars.url, format!("redis://{addr}"));
        assert!(chaosgate::live::redis::ping(&addr).await.unwrap());
        r.running.stop().await;
        assert!(
            chaosgate::live::redis::ping(&addr).await.is_err(),
            "stopped: nothing listens on {addr}"
        );
    });
    // through a run: a trivial external "gateway" (bash) pings the Redis at the rendered
    // `redis.host` / `redis.port`, writes what it heard, then execs the reference gateway
    let dir = tmp("redis-run");
    std::fs::write(
        dir.join("gateway.toml.j2"),
        "listen = \"127.0.0.1:{{ gateway.port }}\"\ntargets = [{ name = \"a\", url = \"{{ providers.a.url }}\" }]\n",
    )
    .unwrap();
    let script = r#"exec 3<>/dev/tcp/{{ redis.host }}/{{ redis.port }}; printf 'PING\r\n' >&3; read -r l <&3; printf '%s %s %s' '{{ redis.url }}' '{{ gateway.redis }}' "$l" > '{{ run_dir }}/ping.txt'; exec "$0" gateway --config '{{ config_path }}'"#;
    let scenario = format!(
        r#"
[providers.a]
api = "openai"
[gateway]
kind = "external"
command = "bash"
args = ["-c", {script:?}, "{bin}"]
config_template = "gateway.toml.j2"
ready_url = "http://127.0.0.1:{{{{ gateway.port }}}}/health"
ready_timeout = "20s"
redis = true
[traffic]
rate = 5.0
duration = "1s"
"#,
        bin = bin()
    );
    let f = dir.join("s.toml");
    std::fs::write(&f, scenario).unwrap();
    let out = Command::new(bin())
        .args(["run", f.to_str().unwrap(), "--quiet", "--run-dir"])
        .arg(dir.join("runs"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let heard = std::fs::read_to_string(dir.join("runs/point0-run0/ping.txt")).unwrap();
    let parts: Vec<&str> = heard.split(' ').collect();
    assert_eq!(parts.len(), 3, "{heard:?}");
    assert!(parts[0].starts_with("redis://127.0.0.1:"), "{heard:?}");
    assert_eq!(parts[1], "true");
    assert_eq!(parts[2].trim_end(), "+PONG", "{heard:?}");
    assert!(dir.join("runs/point0-run0/redis.log").exists());
    let addr = parts[0].trim_start_matches("redis://").to_string();
    rt().block_on(async {
        assert!(
            chaosgate::live::redis::ping(&addr).await.is_err(),
            "the run stopped its Redis: nothing listens on {addr}"
        );
    });
}

#[test]
fn redis_true_without_redis_server_names_the_setup_command() {
    if chaosgate::live::redis::installed() {
        eprintln!("skipped: redis-server is installed (this checks the message without it)");
        return;
    }
    let dir = tmp("redis-missing");
    let f = dir.join("s.toml");
    std::fs::write(
        &f,
        "[providers.a]\napi = \"openai\"\n[gateway]\nkind = \"external\"\ncommand = \"true\"\nready_url = \"http://127.0.0.1:{{ gateway.port }}/\"\nredis = true\n[traffic]\nrate = 5.0\nduration = \"1s\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", f.to_str().unwrap(), "--quiet", "--run-dir"])
        .arg(dir.join("runs"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("bash scripts/interop-setup redis"), "{err}");
}
