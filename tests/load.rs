//! The live load generator against mocks and test servers on loopback.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

mod common;

use axum::routing::post;
use axum::Router;
use chaosgate::analysis::LoadReport;
use chaosgate::live::load::{run, LoadOptions};
use chaosgate::provider::Api;
use chaosgate::time::{Dur, NS_PER_MS, NS_PER_S};
use chaosgate::traffic::{KindSpec, Mix, Source, TrafficConfig};
use std::path::Path;
use std::time::Duration;

fn open_loop(rate: f64, secs: u64, kind: chaosgate::traffic::ArrivalKind) -> Source {
    let cfg = TrafficConfig {
        rate: Some(rate),
        duration: Some(Dur::from_secs(secs)),
        arrival: kind,
        ..TrafficConfig::default()
    };
    assert!(cfg.problems().is_empty());
    cfg.source(Path::new(".")).unwrap()
}

fn mix(stream: bool, max_tokens: u32) -> Mix {
    let mut k = KindSpec::chat("chat", stream);
    k.max_tokens = chaosgate::traffic::Tokens::Fixed(max_tokens);
    Mix::new(vec![k], Api::OpenAi).unwrap()
}

async fn report(source: Source, mix: Mix, opts: LoadOptions) -> (LoadReport, chaosgate::live::load::LoadResult) {
    let r = run(source, mix, opts).await.unwrap();
    (
        r.aggregator
            .report(r.totals.scheduled, r.totals.in_flight_at_end, r.totals.duration),
        r,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_itl_match_the_mock_pacing() {
    // TTFT 120 ms, 50 tokens/s → ITL 20 ms, TPOT 20 ms
    let profile = "[baseline]\nttft = { kind = \"fixed\", value = \"120ms\" }\ntokens_per_s = { mean = 50 }\n";
    let (h, _) = common::start(Api::OpenAi, profile, 1).await;
    let opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 1);
    let (r, _) = report(
        open_loop(10.0, 2, chaosgate::traffic::ArrivalKind::Constant),
        mix(true, 10),
        opts,
    )
    .await;
    assert_eq!(r.requests.ok, 20, "{r:?}");
    assert!((r.ttft_ms.p50 - 120.0).abs() < 15.0, "ttft {:?}", r.ttft_ms);
    assert!((r.itl_ms.p50 - 20.0).abs() < 3.0, "itl {:?}", r.itl_ms);
    assert_eq!(r.itl_ms.count, 20 * 9);
    assert!((r.tpot_ms.p50 - 20.0).abs() < 3.0, "tpot {:?}", r.tpot_ms);
    // end-to-end ≈ 120 + 9·20 = 300 ms
    assert!((r.latency_ms.p50 - 300.0).abs() < 30.0, "{:?}", r.latency_ms);
    assert!((r.output_tps.avg - 50.0).abs() < 6.0, "{:?}", r.output_tps);
    assert_eq!(r.providers.keys().collect::<Vec<_>>(), vec!["test"]);
    h.shutdown().await;
}

/// A server that stops answering for one second (t = 1 s … 2 s after it starts).
fn stalling_server(start: tokio::time::Instant) -> Router {
    Router::new().route(
        "/v1/chat/completions",
        post(move || async move {
            let stall_from = start + Duration::from_secs(1);
            let stall_to = start + Duration::from_secs(2);
            let now = tokio::time::Instant::now();
            if now >= stall_from && now < stall_to {
                tokio::time::sleep_until(stall_to).await;
            }
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(chaosgate::provider::openai::completion_body(
                    "c", "m", 0, " x", 1, 1, "stop",
                )))
                .unwrap()
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_coordinated_omission_a_one_second_stall_hits_a_hundred_requests() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // the load starts 20 ms after run() is called; align the stall with the schedule
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let h = chaosgate::live::net::spawn(listener, stalling_server(start)).unwrap();
    let mut opts = LoadOptions::new(&format!("http://{addr}"), Api::OpenAi, 1);
    opts.phases = vec![("stall".into(), NS_PER_S, 2 * NS_PER_S)];
    let (r, res) = report(
        open_loop(100.0, 3, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 1),
        opts,
    )
    .await;
    assert_eq!(r.requests.ok, 300);
    // The 100 requests intended during the stall wait until it ends: latency = 2 s − t,
    // uniform on (0, 1 s]. So they spread over ≈ 1 s with a mean ≈ 500 ms above the
    // fastest — where a closed-loop, coordinated-omission-prone tool would see one slow
    // request. (Measured relative to the fastest of them: the burst of 100 answers at the
    // end of the stall adds a common offset of some ms on a loaded 2-core test machine.)
    let stall = &res.aggregator.per_phase["stall"];
    assert!((99..=101).contains(&stall.ok), "{}", stall.ok);
    let lat = &stall.latency;
    let spread = lat.quantile_ms(0.99) - lat.quantile_ms(0.01);
    assert!(
        (850.0..=1010.0).contains(&spread),
        "spread {spread} ms: {:?}",
        lat.summary()
    );
    let above_fastest = lat.mean_ms() - lat.quantile_ms(0.0);
    assert!(
        (above_fastest - 500.0).abs() < 70.0,
        "mean above fastest {above_fastest}: {:?}",
        lat.summary()
    );
    let slow = lat
        .inner()
        .count_between(((lat.quantile_ms(0.0) + 500.0) * 1000.0) as u64, 3_600_000_000);
    assert!((40..=60).contains(&slow), "{slow} requests ≥ 500 ms above the fastest");
    assert!(r.latency_ms.max > 950.0, "{:?}", r.latency_ms);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduled_request_is_counted_exactly_once() {
    // 30 % of requests hang; a cap of 5 drops some; a short grace leaves some in flight
    let profile = "[baseline]\nlatency = { kind = \"fixed\", value = \"30ms\" }\nconnection = [{ kind = \"hang\", probability = 0.3 }]\nerrors = [{ status = 503, probability = 0.1 }]\n";
    let (h, _) = common::start(Api::OpenAi, profile, 1).await;
    let mut opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 5);
    opts.concurrency = 5;
    opts.timeout = 300 * NS_PER_MS;
    opts.grace = 100 * NS_PER_MS;
    let (r, _) = report(
        open_loop(200.0, 1, chaosgate::traffic::ArrivalKind::Poisson),
        mix(false, 3),
        opts,
    )
    .await;
    let q = r.requests;
    assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end, "{q:?}");
    assert!(q.dropped > 0 && q.failed > 0 && q.ok > 0, "{q:?}");
    assert!(r.failures_by_kind.contains_key("timeout"), "{:?}", r.failures_by_kind);
    assert_eq!(q.sent, q.ok + q.failed + q.in_flight_at_end);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_failures_are_classified() {
    let (h, _) = common::start(
        Api::Anthropic,
        "[baseline]\nstream = [{ kind = \"cut\", probability = 0.5, after_tokens = 2 }]\n",
        3,
    )
    .await;
    let mut k = KindSpec::chat("chat", true);
    k.max_tokens = chaosgate::traffic::Tokens::Fixed(5);
    let m = Mix::new(vec![k], Api::Anthropic).unwrap();
    let opts = LoadOptions::new(&format!("http://{}/v1", h.addr), Api::Anthropic, 3);
    let (r, _) = report(open_loop(50.0, 1, chaosgate::traffic::ArrivalKind::Constant), m, opts).await;
    let cut = r.failures_by_kind.get("stream_cut").copied().unwrap_or(0);
    assert!(cut > 10 && cut < 40, "{:?}", r.failures_by_kind);
    assert_eq!(r.requests.ok + cut, 50);
    // the same through closed-loop users (their own raw keep-alive connections): a cut
    // connection is replaced and every request is still classified
    let cfg = TrafficConfig {
        users: Some(3),
        duration: Some(Dur::from_secs(1)),
        ..TrafficConfig::default()
    };
    let src = cfg.source(Path::new(".")).unwrap();
    let mut k = KindSpec::chat("chat", true);
    k.max_tokens = chaosgate::traffic::Tokens::Fixed(5);
    let m = Mix::new(vec![k], Api::Anthropic).unwrap();
    let (r, _) = report(
        src,
        m,
        LoadOptions::new(&format!("http://{}", h.addr), Api::Anthropic, 3),
    )
    .await;
    let cut = r.failures_by_kind.get("stream_cut").copied().unwrap_or(0);
    assert!(
        r.requests.ok > 20 && cut > 20,
        "{:?} {:?}",
        r.requests,
        r.failures_by_kind
    );
    assert_eq!(r.requests.ok + r.requests.failed, r.requests.scheduled);
    assert_eq!(r.failures_by_kind.len(), 1, "{:?}", r.failures_by_kind);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_users_with_pacing() {
    let (h, _) = common::start(
        Api::OpenAi,
        "[baseline]\nlatency = { kind = \"fixed\", value = \"50ms\" }\n",
        1,
    )
    .await;
    let cfg = TrafficConfig {
        users: Some(4),
        spawn_rate: Some(100.0),
        duration: Some(Dur::from_secs(2)),
        think_time: Some(chaosgate::traffic::ThinkTime::Pacing {
            interval: Dur::from_millis(200),
        }),
        ..TrafficConfig::default()
    };
    let src = cfg.source(Path::new(".")).unwrap();
    let opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 1);
    let (r, _) = report(src, mix(false, 2), opts).await;
    // 4 users × one request every 200 ms for ≈ 2 s ≈ 40 requests
    assert!((36..=44).contains(&r.requests.ok), "{:?}", r.requests);
    h.shutdown().await;
}

/// Regression (issue 21): closed-loop users sent on their own connections posted to
/// `/v1/chat/completions` at the host's root, dropping `--target`'s path (`/openai`), so a
/// gateway mounted under a path answered every request 404; the open loop kept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keeps_the_target_path() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/openai/v1/chat/completions",
        post(|| async {
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(chaosgate::provider::openai::completion_body(
                    "c", "m", 0, " x", 1, 1, "stop",
                )))
                .unwrap()
        }),
    );
    let h = chaosgate::live::net::spawn(listener, app).unwrap();
    let users = TrafficConfig {
        users: Some(2),
        duration: Some(Dur::from_millis(500)),
        think_time: Some(chaosgate::traffic::ThinkTime::Pacing {
            interval: Dur::from_millis(50),
        }),
        ..TrafficConfig::default()
    };
    for (what, src) in [
        ("users", users.source(Path::new(".")).unwrap()),
        ("rate", open_loop(40.0, 1, chaosgate::traffic::ArrivalKind::Constant)),
    ] {
        let opts = LoadOptions::new(&format!("http://{addr}/openai/"), Api::OpenAi, 1);
        let (r, _) = report(src, mix(false, 1), opts).await;
        assert!(r.requests.ok >= 10, "{what}: {:?}", r.requests);
        assert_eq!(r.requests.failed, 0, "{what}: {:?}", r.requests);
    }
    h.shutdown().await;
}

#[test]
fn locust_csv_headers_are_exactly_locusts() {
    assert_eq!(
        chaosgate::report::locust::LOCUST_STATS_HEADER,
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    assert_eq!(
        chaosgate::report::locust::LOCUST_HISTORY_HEADER,
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size"
    );
    // Locust's stats.py (StatsCSV.failures_columns, exceptions_columns)
    assert_eq!(
        chaosgate::report::locust::LOCUST_FAILURES_HEADER,
        "Method,Name,Error,Occurrences,First Seen,Last Seen"
    );
    assert_eq!(
        chaosgate::report::locust::LOCUST_EXCEPTIONS_HEADER,
        "Count,Message,Traceback,Nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_json_valid_against_the_schema_csv_and_hlog() {
    let (h, _) = common::start(
        Api::OpenAi,
        "[baseline]\nerrors = [{ status = 500, probability = 0.2 }]\ntokens_per_s = { mean = 500 }\n",
        1,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("chaosgate-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let prefix = dir.join("r").display().to_string();
    let hlog = dir.join("r.hlog");
    let args = [
        "chaosgate",
        "load",
        "--target",
        &format!("http://{}", h.addr),
        "--rate",
        "40",
        "--duration",
        "1s",
        "--mix",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workloads/seed-three-tasks.toml"),
        "--seed",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        &prefix,
        "--hlog",
        hlog.to_str().unwrap(),
        "--quiet",
    ];
    use clap::Parser;
    let cli = chaosgate::cli::Cli::parse_from(args);
    let chaosgate::cli::Command::Load(a) = cli.command else {
        panic!()
    };
    assert_eq!(chaosgate::cli::commands::load(*a).await.unwrap(), 0);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/load-report.schema.json")).unwrap(),
    )
    .unwrap();
    let out: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&out)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(out["requests"]["failed"].as_u64().unwrap() > 0);
    assert!(out["kinds"]["embeddings"].is_object());
    // the schema really constrains: a wrong type is caught
    let mut bad = out.clone();
    bad["requests"]["ok"] = serde_json::json!("many");
    assert!(!v.is_valid(&bad));
    let stats = std::fs::read_to_string(format!("{prefix}_stats.csv")).unwrap();
    assert!(stats.lines().last().unwrap().starts_with(",Aggregated,"));
    let hist = std::fs::read_to_string(format!("{prefix}_stats_history.csv")).unwrap();
    assert!(hist.lines().count() >= 2);
    let failures = std::fs::read_to_string(format!("{prefix}_failures.csv")).unwrap();
    assert!(failures.contains(",http_500,"), "{failures}");
    let exceptions = std::fs::read_to_string(format!("{prefix}_exceptions.csv")).unwrap();
    assert_eq!(exceptions, "Count,Message,Traceback,Nodes\r\n");
    // the interval log reads back with hdrhistogram's own reader
    let log = std::fs::read(&hlog).unwrap();
    assert!(log.starts_with(b"#[Histogram log format version 1.3]\n"));
    let mut total = 0;
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(ih)) = item {
            let mut d = hdrhistogram::serialization::Deserializer::new();
            let bytes = base64_decode(ih.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = d.deserialize(&mut &bytes[..]).unwrap();
            total += h.len();
        }
    }
    assert_eq!(total, out["requests"]["sent"].as_u64().unwrap());
    std::fs::remove_dir_all(&dir).ok();
    h.shutdown().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn seed_three_tasks_workload_loads() {
    let cfg = TrafficConfig {
        mix: Some("examples/workloads/seed-three-tasks.toml".into()),
        ..TrafficConfig::default()
    };
    let kinds = cfg.load_kinds(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(
        kinds.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["support-chat", "summaries", "embeddings"]
    );
}

#[test]
fn cli_flags_become_a_traffic_plan_or_a_clear_error() {
    use clap::Parser;
    let parse = |args: &[&str]| {
        let mut v = vec!["chaosgate", "load", "--target", "http://127.0.0.1:1"];
        v.extend_from_slice(args);
        match chaosgate::cli::Cli::try_parse_from(v).map(|c| c.command) {
            Ok(chaosgate::cli::Command::Load(a)) => {
                chaosgate::cli::commands::traffic_from_args(&a).map_err(|e| e.to_string())
            }
            Ok(_) => unreachable!(),
            Err(e) => Err(e.to_string()),
        }
    };
    let c = parse(&["--stage", "5m:200", "--stage", "30m:200"]).unwrap();
    assert_eq!(c.stages.len(), 2);
    let src = c.source(Path::new(".")).unwrap();
    let chaosgate::traffic::Source::Open(curve, _, _) = src else {
        panic!()
    };
    assert!((curve.total() - (150.0 * 200.0 + 1800.0 * 200.0)).abs() < 1e-6);
    assert!(parse(&["--stage", "5m"]).unwrap_err().contains("DURATION:TARGET"));
    assert!(parse(&["--rate", "10"]).unwrap_err().contains("duration"));
    assert!(parse(&["--rate", "0", "--duration", "1s"])
        .unwrap_err()
        .contains("'--rate <RATE>': must be a number in (0, 1000000], got 0"));
    assert!(parse(&["--users", "2", "--duration", "1s", "--think", "1s..x"]).is_err());
    assert!(parse(&["--duration", "1s"]).is_err(), "a loop is required");
    let p = chaosgate::cli::commands::parse_phases(&["outage=60s..300s".into()]).unwrap();
    assert_eq!(p, vec![("outage".to_string(), 60 * NS_PER_S, 300 * NS_PER_S)]);
    assert!(chaosgate::cli::commands::parse_phases(&["x=5s..1s".into()]).is_err());
}

/// An upstream whose every chat answer is exactly `size` bytes of JSON (with usage), after
/// 5–44 ms (so latencies spread); every `fail_every`-th answer is a 500 (0: none).
async fn sized_upstream(size: usize, fail_every: u64) -> chaosgate::live::net::ServerHandle {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let n = n.clone();
            async move {
                let k = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5 + k % 40)).await;
                let head = r#"{"usage":{"completion_tokens":1,"prompt_tokens":1},"pad":""#;
                let body = format!("{head}{}\"}}", "x".repeat(size - head.len() - 2));
                assert_eq!(body.len(), size);
                let status = if fail_every > 0 && k % fail_every == fail_every - 1 {
                    500
                } else {
                    200
                };
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    chaosgate::live::net::spawn(l, app).unwrap()
}

/// A 10 MB plain body, now read past the kept head: its usage (at the end) and its whole
/// length still come out right. That the body is not held whole is checked where it can be
/// seen, by the unit test `plain_2xx_body_of_any_size_is_kept_to_its_head_or_tail` in
/// src/live/load/mod.rs; this test alone would also have passed before the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_2xx_body_of_10_mb_keeps_its_usage_and_content_size() {
    // the defect: the load client collected a plain 2xx body whole (unbounded) to read usage
    const SIZE: usize = 10_000_000;
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let head = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":""#;
            let tail = r#""},"finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":4321,"total_tokens":4330}}"#;
            let body = format!("{head}{}{tail}", "y".repeat(SIZE - head.len() - tail.len()));
            assert_eq!(body.len(), SIZE);
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = chaosgate::live::net::spawn(l, app).unwrap();
    let mut opts = LoadOptions::new(&format!("http://{}", up.addr), Api::OpenAi, 1);
    opts.timeout = 60 * NS_PER_S;
    let start = std::time::SystemTime::now();
    let r = run(
        open_loop(3.0, 1, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 3),
        opts,
    )
    .await
    .unwrap();
    let all = r.aggregator.overall();
    assert_eq!((all.ok, all.failed), (3, 0));
    assert_eq!(all.output_tokens, 3 * 4321, "usage read from the kept end of each body");
    let dir = std::env::temp_dir().join(format!("chaosgate-bigbody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("x").display().to_string();
    chaosgate::report::locust::write_locust_csv(&prefix, &r.aggregator, &r.csv, 1.0, start, 0).unwrap();
    let stats = std::fs::read_to_string(format!("{prefix}_stats.csv")).unwrap();
    let head: Vec<&str> = cells(stats.lines().next().unwrap());
    let col = head.iter().position(|h| *h == "Average Content Size").unwrap();
    for line in stats.lines().skip(1) {
        assert_eq!(
            cells(line)[col].parse::<f64>().unwrap(),
            SIZE as f64,
            "whole length: {line}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    up.shutdown().await;
}

/// The cells of a CSV line (no quoted commas in these files).
fn cells(line: &str) -> Vec<&str> {
    line.trim_end_matches("\r").split(',').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locust_average_content_size_is_never_0_and_100pct_is_locusts_rounding_of_max() {
    // the defects: Average Content Size was always 0; Min/Max were truncated to whole ms
    // so a row's 100% could exceed its Max; no First/Last Seen, no _exceptions.csv
    let up = sized_upstream(1234, 4).await;
    let opts = LoadOptions::new(&format!("http://{}", up.addr), Api::OpenAi, 1);
    let start = std::time::SystemTime::now();
    let r = run(
        open_loop(40.0, 1, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 3),
        opts,
    )
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("chaosgate-locust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("x").display().to_string();
    chaosgate::report::locust::write_locust_csv(&prefix, &r.aggregator, &r.csv, 1.0, start, 0).unwrap();
    let read = |s: &str| std::fs::read_to_string(format!("{prefix}_{s}.csv")).unwrap();
    let stats = read("stats");
    let crlf = |t: &str| t.ends_with("\r\n") && t.split('\n').filter(|l| !l.is_empty()).all(|l| l.ends_with('\r'));
    assert!(crlf(&stats), "CRLF rows as Locust's csv.writer: {stats:?}");
    let head: Vec<&str> = cells(stats.lines().next().unwrap());
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    for line in stats.lines().skip(1) {
        let c = cells(line);
        let num = |name: &str| c[col(name)].parse::<f64>().unwrap();
        assert_eq!(num("Request Count"), 40.0, "{line}");
        assert_eq!(num("Failure Count"), 10.0, "{line}");
        // every response (failures too, as Locust counts them) was exactly 1234 bytes
        assert_eq!(num("Average Content Size"), 1234.0, "{line}");
        let (min, max) = (num("Min Response Time"), num("Max Response Time"));
        let median = num("Median Response Time");
        assert!(min >= 5.0 && min <= median && median <= max, "{line}");
        assert_eq!(
            num("100%"),
            chaosgate::report::locust::locust_bucket_ms(max) as f64,
            "{line}"
        );
        let p: Vec<f64> = [
            "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
        ]
        .iter()
        .map(|n| num(n))
        .collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{line}");
    }
    let history = read("stats_history");
    let last = cells(history.lines().last().unwrap());
    assert_eq!(last[17], "40", "Total Request Count: {history}");
    assert_eq!(last[23].parse::<f64>().unwrap(), 1234.0, "Total Average Content Size");
    let failures = read("failures");
    assert!(crlf(&history) && crlf(&failures));
    let rows: Vec<&str> = failures.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failures}");
    let c = cells(rows[0]);
    assert_eq!(&c[..4], &["POST", "chat", "http_500", "10"]);
    let utc = |s: &str| s.len() == 20 && s.ends_with('Z') && &s[10..11] == "T" && humantime::parse_rfc3339(s).is_ok();
    assert!(utc(c[4]) && utc(c[5]) && c[4] <= c[5], "{failures}");
    assert_eq!(read("exceptions"), "Count,Message,Traceback,Nodes\r\n");
    if std::env::var_os("CHAOSGATE_KEEP_CSV").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    up.shutdown().await;
}

#[test]
fn locust_percentiles_and_median_follow_locusts_own_rounding() {
    // bucket_response_time: 147 → 150, 3432 → 3400, 58760 → 59000; ties to even as Python
    for (ms, want) in [
        (0.4, 0),
        (99.5, 100),
        (147.0, 150),
        (145.0, 140),
        (3432.0, 3400),
        (58760.0, 59000),
        (1250.0, 1200),
    ] {
        assert_eq!(chaosgate::report::locust::locust_bucket_ms(ms), want, "{ms}");
    }
}

#[test]
fn hlog_keeps_100_distinct_latencies_at_3_significant_digits() {
    // the defect: the interval log had 2 digits and a 1 ms floor — 93 of 100 values of a
    // test run fell in one 8 ms bucket. 100 latencies 70 µs apart within 8 ms must each
    // keep their own value to 3 significant digits.
    use chaosgate::analysis::{Aggregator, SloThresholds};
    use chaosgate::record::{Outcome, RequestRecord};
    let mut agg = Aggregator::new(NS_PER_S, vec!["chat".into()], SloThresholds::default());
    let values_us: Vec<u64> = (0..100).map(|k| 60_000 + 70 * k + 3).collect();
    for (i, &us) in values_us.iter().enumerate() {
        let intended = 100 * NS_PER_MS + i as u64 * NS_PER_MS;
        let rec = RequestRecord {
            id: i as u64,
            kind: 0,
            intended,
            sent: Some(intended),
            first_byte: None,
            first_token: None,
            end: intended + us * 1000,
            outcome: Outcome::Ok,
            output_tokens: 1,
            input_tokens: 1,
            provider: None,
            stream: false,
        };
        agg.add(&rec, &[], false);
    }
    let path = std::env::temp_dir().join(format!("chaosgate-hlog-{}.hlog", std::process::id()));
    chaosgate::report::hlog::write_hlog(&path, &agg, std::time::SystemTime::now()).unwrap();
    let log = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(ih)) = item {
            let bytes = base64_decode(ih.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut &bytes[..])
                .unwrap();
            assert_eq!(h.sigfig(), 3, "3 significant digits");
            assert_eq!(h.low(), 1, "1 µs floor");
            all.add(&h).unwrap();
        }
    }
    assert_eq!(all.len(), 100);
    let distinct: Vec<u64> = all.iter_recorded().map(|v| v.value_iterated_to()).collect();
    assert_eq!(distinct.len(), 100, "every value keeps its own bucket");
    for (&us, &got) in values_us.iter().zip(&distinct) {
        assert!(all.equivalent(us, got), "{us} µs read back as {got}");
        assert!(
            got.abs_diff(us) * 1000 <= us,
            "{us} µs read back as {got}: more than 0.1 % off"
        );
    }
}

/// The reported defect: requests that never completed (the host stalled) were left out of
/// `failed` (`failed 0` with 919 of 1,155 unanswered). Requests still open when the grace
/// period after the schedule runs out now count as timeouts, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_complete_count_as_failed_timeouts_not_zero() {
    let (h, _) = common::start(Api::OpenAi, "[baseline]\nconnection = [{ kind = \"hang\" }]\n", 1).await;
    let mut opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 1);
    opts.timeout = 60 * NS_PER_S; // far longer than the wait: only the grace ends them
    opts.grace = 300 * NS_PER_MS;
    let r = run(
        open_loop(20.0, 1, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 3),
        opts,
    )
    .await
    .unwrap();
    assert_eq!(r.totals.closed_by_grace, 20);
    let rep = r.report();
    let q = rep.requests;
    assert_eq!(
        (q.scheduled, q.failed, q.ok, q.in_flight_at_end),
        (20, 20, 0, 0),
        "{q:?}"
    );
    assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end);
    assert_eq!(
        rep.failures_by_kind.get("timeout"),
        Some(&20),
        "{:?}",
        rep.failures_by_kind
    );
    assert!(
        rep.warnings
            .iter()
            .any(|w| w.contains("20 request(s) were still open 0.300 s after the schedule ended")),
        "{:?}",
        rep.warnings
    );
    assert!(!rep.partial);
    h.shutdown().await;
}

/// The reported defect: interrupted runs reported `duration_s` as the planned length (36 s
/// for runs stopped at 10–18 s). A stopped run states the measured duration, is marked
/// partial, and reports the requests it could not wait for as in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_reports_its_measured_duration_not_the_planned_36s() {
    let (h, _) = common::start(Api::OpenAi, "[baseline]\nconnection = [{ kind = \"hang\" }]\n", 1).await;
    let mut opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 1);
    let (tx, rx) = tokio::sync::watch::channel(false);
    opts.stop = Some(rx);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = tx.send(true);
    });
    let r = run(
        open_loop(20.0, 36, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 3),
        opts,
    )
    .await
    .unwrap();
    assert!(r.totals.interrupted);
    let rep = r.report();
    assert!(rep.partial);
    assert!(
        rep.duration_s < 30.0,
        "measured, not the planned 36 s: {}",
        rep.duration_s
    );
    let q = rep.requests;
    assert!(q.scheduled > 0 && q.in_flight_at_end == q.scheduled, "{q:?}");
    assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end);
    let w = rep.warnings.join("\n");
    assert!(w.contains("still in flight when the run ended"), "{w}");
    assert!(w.contains("of a planned 36.0 s: this report is partial"), "{w}");
    h.shutdown().await;
}

/// Memory must not grow with an unchecked rate: far past what the target can take, every
/// request beyond the concurrency cap is dropped through a bounded queue, and each is
/// still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_far_past_the_cap_drops_and_counts_every_request() {
    let (h, _) = common::start(Api::OpenAi, "[baseline]\nconnection = [{ kind = \"hang\" }]\n", 1).await;
    let mut opts = LoadOptions::new(&format!("http://{}", h.addr), Api::OpenAi, 1);
    opts.concurrency = 4;
    opts.timeout = 200 * NS_PER_MS;
    opts.grace = 200 * NS_PER_MS;
    let r = run(
        open_loop(50_000.0, 1, chaosgate::traffic::ArrivalKind::Constant),
        mix(false, 3),
        opts,
    )
    .await
    .unwrap();
    let q = r.report().requests;
    assert_eq!(q.scheduled, 50_000);
    assert_eq!(q.scheduled, q.ok + q.failed + q.dropped + q.in_flight_at_end, "{q:?}");
    assert_eq!(q.in_flight_at_end, 0, "{q:?}");
    assert!(q.dropped > 40_000, "{q:?}");
    h.shutdown().await;
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

/// The reported defect: `load --rate 1e12 --duration 1s` grew to 2.5 GB in 10 s. Its
/// planned work is now checked before it starts.
#[test]
fn load_rate_1e12_is_refused_before_it_starts() {
    let out = std::process::Command::new(bin())
        .args([
            "load",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "1e12",
            "--duration",
            "1s",
            "--quiet",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    // past the flag's own domain: refused by the flag parser, naming the flag
    assert!(e.contains("'--rate <RATE>'") && e.contains("(0, 1000000]"), "{e}");
    // within the flag's domain but past the planned-work limit: refused before it starts,
    // saying what it would need and how to override
    let out = std::process::Command::new(bin())
        .args([
            "load",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "1000000",
            "--duration",
            "2000s",
            "--quiet",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("planned requests 2.0 G exceed the limit of 1.0 G"), "{e}");
    assert!(e.contains("--allow-large"), "{e}");
}

/// The reported defect: `load` ignored Ctrl-C and needed SIGKILL. SIGINT to the built
/// binary stops it and prints the partial report (exit 130).
#[test]
fn ctrl_c_stops_load_and_prints_the_partial_report() {
    use std::io::BufRead;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (h, _) = rt.block_on(common::start(
        Api::OpenAi,
        "[baseline]\nconnection = [{ kind = \"hang\" }]\n",
        1,
    ));
    let mut child = std::process::Command::new(bin())
        .args([
            "load",
            "--target",
            &format!("http://{}", h.addr),
            "--rate",
            "50",
            "--duration",
            "60s",
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the first stderr line comes once the run is set up (signal handlers installed next)
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("load started");
    assert!(first.contains("seed="), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("chaosgate load did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("this report is partial"), "{stdout}");
    assert!(stdout.contains("still in flight when the run ended"), "{stdout}");
    rt.block_on(h.shutdown());
}
