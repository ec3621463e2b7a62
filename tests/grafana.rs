//! The Grafana dashboard `examples/grafana/chaosgate.json`, tested the way it can be
//! without Grafana:
//!
//! - `the_dashboard_is_grafana_json_with_a_query_in_every_panel` (always): the JSON's
//!   shape — schema version, a datasource variable every panel and query uses, unique
//!   ids, grid positions inside the 24 columns that do not overlap, a PromQL query in
//!   every panel;
//! - `every_panel_query_returns_data_from_a_live_run` (ignored: needs Debian's
//!   `prometheus`, `scripts/prometheus-setup`): a real Prometheus on loopback scrapes a
//!   live `chaosgate run` (the reference gateway in front of two mocks, the primary
//!   answering 502 for a while) through its `--metrics-listen` endpoint's service
//!   discovery; every panel's query must return data, and the load client's counters
//!   must equal the run's own report. Run: `cargo test --test grafana -- --ignored`.
//!   Without `prometheus` on PATH it skips with a message, unless
//!   `CHAOSGATE_REQUIRE_PROMETHEUS=1` (as `.ci/run` sets).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn dashboard() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/chaosgate.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Every (panel title, query) of the dashboard.
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().map_or(&[][..], |a| &a[..]) {
            v.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    v
}

/// A query as Grafana would send it: its variables replaced (`$__rate_interval` by a
/// window of ten 1 s scrapes, `$provider` by "all").
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("${provider}", ".*")
        .replace("$provider", ".*")
}

#[test]
fn the_dashboard_is_grafana_json_with_a_query_in_every_panel() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    assert!(d["title"].is_string() && d["uid"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let want_ds = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "{title}: duplicate id");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel at ({cx}, {cy})");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        titles.insert(title);
        assert!(
            ["timeseries", "state-timeline", "stat", "gauge", "table", "piechart"]
                .contains(&p["type"].as_str().unwrap()),
            "{title}: type {}",
            p["type"]
        );
        assert_eq!(p["datasource"], want_ds, "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: BTreeSet<&str> = targets.iter().map(|t| t["refId"].as_str().unwrap()).collect();
        assert_eq!(refs.len(), targets.len(), "{title}: refIds not unique");
        for t in targets {
            assert_eq!(t["datasource"], want_ds, "{title}");
            assert!(t["expr"].as_str().unwrap().contains("chaosgate_"), "{title}");
        }
    }
    for want in [
        "Traffic share per provider",
        "Client failure rate",
        "End-to-end latency quantiles",
        "TTFT quantiles",
        "In flight",
        "Gateway target health",
        "Breaker state",
        "Mock request rate by fault",
    ] {
        assert!(titles.contains(want), "no panel {want:?}");
    }
    // the quantile panels read the histograms
    assert!(queries(&d)
        .iter()
        .any(|(_, q)| q.contains("histogram_quantile(0.99") && q.contains("chaosgate_load_ttft_seconds_bucket")));
}

/// A child process killed and reaped when dropped (every exit path of the test).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test's scenario: about 20 s of streamed traffic at 20 req/s through the reference
/// gateway (health checks every second, a consecutive-failure breaker, no fallback on a
/// failed request) to two mocks; the primary answers 502 from 5 s to 11 s.
const SCENARIO: &str = r#"
name = "grafana-test"
seed = 5

[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "5s"
duration = "6s"
errors = [{ status = 502 }]

[providers.fallback]
api = "openai"

[gateway]
kind = "builtin"
strategy = "fallback"
targets = ["primary", "fallback"]
health_check = { interval = "1s", timeout = "500ms", unhealthy_threshold = 2, healthy_threshold = 2 }
breaker = { kind = "consecutive", failures = 3, base_ejection = "3s", max_ejection = "10s" }
fallback_on_failure = false
retries = { attempts = 0 }

[traffic]
api = "openai"
rate = 20.0
duration = "20s"
[[traffic.kind]]
name = "chat"
stream = true
max_tokens = { min = 5, max = 20 }
"#;

/// A minimal HTTP/1.1 GET on loopback: status and body (chunked or not).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query at `t` (Unix seconds): the result vector.
fn query(prom: SocketAddr, expr: &str, t: f64) -> Vec<Value> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}&time={t:.3}", urlencode(expr)))
        .unwrap_or_else(|e| panic!("query {expr}: {e}"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
    assert!(status == 200 && v["status"] == "success", "{expr}: {status} {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The one value of an instant query at `t`.
fn scalar(prom: SocketAddr, expr: &str, t: f64) -> f64 {
    let r = query(prom, expr, t);
    assert_eq!(r.len(), 1, "{expr} at {t}: {r:?}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// The last time in [start, end] (1 s steps) at which `expr` had value `want`.
fn last_time_with(prom: SocketAddr, expr: &str, want: f64, start: f64, end: f64) -> Option<f64> {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
        urlencode(expr)
    );
    let (_, body) = http_get(prom, &path).ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let points = v["data"]["result"].get(0)?["values"].as_array()?.clone();
    points
        .iter()
        .rev()
        .filter(|p| p[1].as_str().and_then(|s| s.parse::<f64>().ok()) == Some(want))
        .find_map(|p| p[0].as_f64())
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs prometheus: scripts/prometheus-setup"]
fn every_panel_query_returns_data_from_a_live_run() {
    if !on_path("prometheus") {
        assert!(
            std::env::var("CHAOSGATE_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "prometheus not on PATH (CHAOSGATE_REQUIRE_PROMETHEUS=1): run scripts/prometheus-setup"
        );
        eprintln!("skipped: prometheus not on PATH (scripts/prometheus-setup installs it)");
        return;
    }
    let dir = Scratch(std::env::temp_dir().join(format!("chaosgate-grafana-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let scenario = dir.0.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let report = dir.0.join("report.json");
    let started = now_s();

    // the run, its metrics endpoint on a free port, up 4 s after the traffic
    let mut run = Killed(
        Command::new(env!("CARGO_BIN_EXE_chaosgate"))
            .arg("run")
            .arg(&scenario)
            .args(["--quiet", "--allow-in-flight", "--json"])
            .arg(&report)
            .arg("--run-dir")
            .arg(dir.0.join("run"))
            .args(["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "4s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chaosgate run"),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = run.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics: SocketAddr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("chaosgate run printed no metrics address within 60 s");
        if let Some(rest) = line.strip_prefix("chaosgate: metrics on http://") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };

    // Prometheus: every target through the run's service discovery, scraped each second
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: chaosgate\n    http_sd_configs:\n      - url: http://{metrics}/sd\n        refresh_interval: 1s\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(prom_addr, "/-/ready"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 30 s: {}",
            std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // the run ends (traffic ≈ 20 s, then the 4 s linger)
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "chaosgate run still going after 120 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let run_stderr = reader.join().unwrap();
    assert!(
        status.code().is_some_and(|c| c <= 1),
        "chaosgate run: {status}\n{run_stderr}"
    );
    let end = now_s();

    // the last moment the mocks and the gateway were all up, and the load endpoint's last
    let all_up = last_time_with(
        prom_addr,
        r#"count(up{component=~"mock|gateway"} == 1)"#,
        3.0,
        started,
        end,
    )
    .unwrap_or_else(|| panic!("the mocks and the gateway were never scraped together\n{run_stderr}"));
    let load_up = last_time_with(prom_addr, r#"count(up{component="load"} == 1)"#, 1.0, started, end)
        .expect("the load endpoint was never scraped");
    // a moment inside the run, before the traffic's end: every rate window holds traffic
    let t = all_up - 3.0;

    let d = dashboard();
    let qs = queries(&d);
    assert!(qs.len() >= 10, "{qs:?}");
    for (title, q) in &qs {
        let r = query(prom_addr, &expand(q), t);
        assert!(!r.is_empty(), "panel {title:?}: no data for {}", expand(q));
        // numbers, not 0/0: the rate windows at `t` are full of traffic
        for sample in &r {
            let v: f64 = sample["value"][1].as_str().unwrap().parse().unwrap();
            assert!(v.is_finite(), "panel {title:?}: {v} for {} ({sample})", expand(q));
        }
    }

    // the load's final counters are the run's report
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let tr = &rep["traffic"];
    let n = |v: &Value| v.as_f64().unwrap();
    let total = scalar(prom_addr, "sum(chaosgate_load_requests_total)", load_up);
    let req = &tr["requests"];
    assert_eq!(total, n(&req["ok"]) + n(&req["failed"]) + n(&req["dropped"]), "{req}");
    assert_eq!(
        scalar(prom_addr, "sum(chaosgate_load_scheduled_total)", load_up),
        n(&req["scheduled"])
    );
    assert_eq!(
        scalar(
            prom_addr,
            r#"sum(chaosgate_load_requests_total{outcome="ok"})"#,
            load_up
        ),
        n(&req["ok"])
    );
    assert_eq!(
        scalar(prom_addr, "sum(chaosgate_load_request_duration_seconds_count)", load_up),
        n(&tr["latency_ms"]["count"])
    );
    assert_eq!(
        scalar(prom_addr, "sum(chaosgate_load_ttft_seconds_count)", load_up),
        n(&tr["ttft_ms"]["count"])
    );
    for (name, p) in tr["providers"].as_object().unwrap() {
        let q = format!("sum(chaosgate_load_requests_total{{provider=\"{name}\"}})");
        assert_eq!(scalar(prom_addr, &q, load_up), n(&p["requests"]), "provider {name}");
    }
    assert_eq!(scalar(prom_addr, "sum(chaosgate_load_in_flight)", load_up), 0.0);
    // the outage showed: the client saw 502s from the primary
    assert!(n(&req["failed"]) > 0.0, "{req}");
    assert_eq!(
        scalar(
            prom_addr,
            r#"sum(chaosgate_load_requests_total{outcome="http_502"})"#,
            load_up
        ),
        n(&tr["failures_by_kind"]["http_502"]),
        "{tr}"
    );
    let primary_502 = r#"sum(chaosgate_load_requests_total{provider="primary", outcome="http_502"})"#;
    assert!(scalar(prom_addr, primary_502, load_up) > 0.0);
    // what the gateway and mock panels show: the primary ejected, the mock's 502s
    let window = format!("{}s", (all_up - started).ceil() as u64);
    let q = format!(r#"min(min_over_time(chaosgate_gateway_target_healthy{{target="primary"}}[{window}]))"#);
    assert_eq!(
        scalar(prom_addr, &q, all_up),
        0.0,
        "the primary was never marked unhealthy"
    );
    let q = format!(r#"max(max_over_time(chaosgate_gateway_target_healthy{{target="fallback"}}[{window}]))"#);
    assert_eq!(scalar(prom_addr, &q, all_up), 1.0);
    let q = r#"sum(chaosgate_mock_requests_total{provider="primary", outcome="error"})"#;
    assert!(
        scalar(prom_addr, q, all_up) > 0.0,
        "the primary's mock counted no error"
    );
    let q =
        format!(r#"max(max_over_time(chaosgate_gateway_breaker_state{{target="primary", state="open"}}[{window}]))"#);
    let breaker_opened = scalar(prom_addr, &q, all_up);
    assert_eq!(breaker_opened, 1.0, "the primary's breaker never opened");
    eprintln!(
        "{} panel queries returned data; the load's final counters match the report ({total} requests, {} failed); the primary's breaker opened: {breaker_opened}",
        qs.len(),
        req["failed"]
    );
}
