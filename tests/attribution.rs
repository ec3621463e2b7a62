//! Provider attribution end to end, live on 127.0.0.1 (`docs/semantics.md` §12): every
//! request, ok or failed, plain or streamed, OpenAI or Anthropic, is attributed to the
//! provider that answered it — through the builtin gateway (its header), and through a real
//! external gateway that drops the `x-chaosgate-provider` header (nginx with
//! `proxy_hide_header`), where only the marks in the bodies (ids, fingerprints, error
//! messages) are left to read. The run JSON's `traffic_share` follows from the same records.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-test-attr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Both providers speak `api`; the primary answers half of its requests with 502 (probes
/// spared); plain and streamed chat requests half and half, 3 s at 40 req/s.
fn providers_and_traffic(api: &str) -> String {
    format!(
        r#"
seed = 3
[providers.primary]
api = "{api}"
[[providers.primary.phase]]
name = "errors"
start = "0s"
duration = "1h"
applies_to = "completions"
errors = [{{ status = 502, probability = 0.5 }}]
[providers.fallback]
api = "{api}"
[traffic]
api = "{api}"
rate = 40.0
arrival = "constant"
duration = "3s"
[[traffic.kind]]
name = "plain"
weight = 1.0
stream = false
max_tokens = 4
[[traffic.kind]]
name = "streamed"
weight = 1.0
stream = true
max_tokens = 4
"#
    )
}

/// `chaosgate run` of `scenario` (written to `dir`); the JSON report.
fn run(dir: &Path, scenario: &str) -> Value {
    let sc = dir.join("scenario.toml");
    std::fs::write(&sc, scenario).unwrap();
    let json = dir.join("r.json");
    let out = Command::new(bin())
        .arg("run")
        .arg(&sc)
        .arg("--quiet")
        .arg("--run-dir")
        .arg(dir.join("run"))
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
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    if v.get("points").is_some() {
        v["points"][0]["report"].clone()
    } else {
        v
    }
}

/// Every request went to a provider that named itself: none is `unknown`, every failure
/// (a 502 only the primary sends) is the primary's, both providers served traffic, and the
/// share series agrees with the per-provider counts.
fn assert_attributed(v: &Value, what: &str) {
    let t = &v["traffic"];
    let providers = t["providers"].as_object().unwrap();
    let names: Vec<&str> = providers.keys().map(String::as_str).collect();
    assert_eq!(names, ["fallback", "primary"], "{what}: {names:?}");
    let sent = |p: &str| providers[p]["requests"].as_u64().unwrap();
    let failed = |p: &str| providers[p]["failed"].as_u64().unwrap();
    assert_eq!(
        sent("fallback") + sent("primary"),
        t["requests"]["sent"].as_u64().unwrap()
    );
    assert_eq!(failed("fallback"), 0, "{what}: the fallback never fails");
    let http_502 = t["failures_by_kind"]["http_502"].as_u64().unwrap_or(0);
    assert!(http_502 > 0, "{what}: the primary's 502s reached the client");
    assert_eq!(failed("primary"), http_502, "{what}: every 502 is the primary's");
    assert_eq!(
        t["requests"]["failed"].as_u64().unwrap(),
        http_502,
        "{what}: no other failure"
    );
    // both kinds (plain and streamed) went through
    for k in ["plain", "streamed"] {
        assert!(t["kinds"][k]["requests"].as_u64().unwrap() > 10, "{what}: kind {k}");
    }
    let share = &v["traffic_share"];
    let unattributed: u64 = share["unattributed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(unattributed, 0, "{what}");
    let requests: Vec<u64> = share["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(requests.iter().sum::<u64>(), t["requests"]["sent"].as_u64().unwrap());
    // per bucket, the shares of a bucket with requests add up to 1 (within the rounding)
    let p = share["providers"].as_object().unwrap();
    assert_eq!(p.len(), 2, "{what}");
    for (i, &n) in requests.iter().enumerate() {
        let sum: Option<f64> = p.values().map(|s| s[i].as_f64()).sum();
        match n {
            0 => assert!(p.values().all(|s| s[i].is_null()), "{what}: bucket {i}"),
            _ => assert!((sum.unwrap() - 1.0).abs() < 1e-3, "{what}: bucket {i}: {sum:?}"),
        }
    }
    // and each provider's share over the run is its part of the requests
    for (name, s) in p {
        let mine: f64 = s
            .as_array()
            .unwrap()
            .iter()
            .zip(&requests)
            .map(|(x, &n)| x.as_f64().unwrap_or(0.0) * n as f64)
            .sum();
        assert!(
            (mine - sent(name) as f64).abs() < 0.01 * requests.len() as f64 + 0.5,
            "{what}: {name} {mine} vs {}",
            sent(name)
        );
    }
}

/// The builtin gateway, weighted half and half, no retry or fallback: each failure passes
/// through to the client, attributed by the header the gateway sets.
#[test]
fn builtin_gateway_attributes_every_answer_including_failures() {
    for api in ["openai", "anthropic"] {
        let dir = tmp(&format!("builtin-{api}"));
        let scenario = format!(
            "{}\n[gateway]\nstrategy = \"weighted\"\ntargets = [{{ name = \"primary\", weight = 1.0 }}, {{ name = \"fallback\", weight = 1.0 }}]\nretries = {{ attempts = 0 }}\nfallback_on_failure = false\n",
            providers_and_traffic(api)
        );
        let v = run(&dir, &scenario);
        assert_attributed(&v, &format!("builtin {api}"));
    }
}

/// nginx, round robin over both providers, with `proxy_hide_header x-chaosgate-provider`:
/// the header never reaches the client, so ok answers are attributed by their ids
/// (plain bodies, the streams' first chunks) and the 502s by their error messages.
#[test]
fn nginx_without_the_header_attributes_by_the_body_marks() {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("nginx is not installed (bash scripts/interop-setup nginx): skipped");
        return;
    }
    for api in ["openai", "anthropic"] {
        let dir = tmp(&format!("nginx-{api}"));
        std::fs::write(dir.join("nginx.conf.j2"), NGINX).unwrap();
        let scenario = format!("{}{NGINX_GATEWAY}", providers_and_traffic(api));
        let v = run(&dir, &scenario);
        assert_attributed(&v, &format!("nginx {api}"));
        // the header really was hidden: the gateway's log has no say in it, so check the
        // rendered config
        let conf = std::fs::read_to_string(dir.join("run/point0-run0/nginx.conf")).unwrap();
        assert!(conf.contains("proxy_hide_header x-chaosgate-provider;"), "{conf}");
    }
}

/// A plain Anthropic answer past the 256 KiB the client keeps whole (100,000 tokens of at least 4 bytes each):
/// only its end is kept, and its one mark, the message id, is at its start — read before
/// the head is dropped.
#[test]
fn nginx_without_the_header_attributes_a_large_plain_body_by_its_head() {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("nginx is not installed (bash scripts/interop-setup nginx): skipped");
        return;
    }
    let dir = tmp("nginx-large");
    std::fs::write(dir.join("nginx.conf.j2"), NGINX).unwrap();
    let scenario = format!(
        r#"
seed = 4
[providers.primary]
api = "anthropic"
[providers.fallback]
api = "anthropic"
[traffic]
api = "anthropic"
rate = 4.0
arrival = "constant"
duration = "2s"
[[traffic.kind]]
name = "large"
stream = false
max_tokens = 100000
{NGINX_GATEWAY}"#
    );
    let v = run(&dir, &scenario);
    let t = &v["traffic"];
    let providers = t["providers"].as_object().unwrap();
    let names: Vec<&str> = providers.keys().map(String::as_str).collect();
    assert_eq!(names, ["fallback", "primary"], "{t}");
    assert_eq!(t["requests"]["ok"], t["requests"]["sent"]);
    // the usage read from each body's end
    let tokens = t["throughput"]["output_tokens_per_s"].as_f64().unwrap() * t["duration_s"].as_f64().unwrap();
    let n = t["requests"]["ok"].as_f64().unwrap();
    assert!((tokens / n - 100_000.0).abs() < 1.0, "{tokens} tokens in {n} answers");
}

const NGINX_GATEWAY: &str = r#"
[gateway]
kind = "external"
command = "nginx"
args = ["-c", "{{ config_path }}", "-p", "{{ run_dir }}", "-e", "stderr"]
config_template = "nginx.conf.j2"
ready_url = "http://127.0.0.1:{{ gateway.port }}/nginx-health"
ready_timeout = "20s"
stop_signal = "SIGTERM"
stop_grace = "5s"
"#;

const NGINX: &str = r#"
daemon off;
master_process on;
worker_processes 1;
pid {{ run_dir }}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path {{ run_dir }}/nginx-client-body;
    proxy_temp_path {{ run_dir }}/nginx-proxy;
    fastcgi_temp_path {{ run_dir }}/nginx-fastcgi;
    uwsgi_temp_path {{ run_dir }}/nginx-uwsgi;
    scgi_temp_path {{ run_dir }}/nginx-scgi;
    upstream providers {
        server {{ providers.primary.host }}:{{ providers.primary.port }} max_fails=0;
        server {{ providers.fallback.host }}:{{ providers.fallback.port }} max_fails=0;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:{{ gateway.port }};
        location = /nginx-health { return 200 "ok\n"; }
        location / {
            proxy_pass http://providers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_next_upstream off;
            proxy_hide_header x-chaosgate-provider;
        }
    }
}
"#;
