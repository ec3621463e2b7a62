//! The reference gateway end to end over mocks on loopback.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

mod common;

use chaosgate::gateway::EventKind;
use chaosgate::live::load::{run, LoadOptions};
use chaosgate::live::proxy as server;
use chaosgate::live::wiring::ProxyConfig;
use chaosgate::provider::Api;
use chaosgate::time::{Dur, NS_PER_MS, NS_PER_S};
use chaosgate::traffic::{ArrivalKind, KindSpec, Mix, TrafficConfig};
use std::path::Path;
use std::time::Duration;

async fn named(
    name: &str,
    profile: &str,
    seed: u64,
) -> (
    chaosgate::live::net::ServerHandle,
    std::sync::Arc<chaosgate::live::mock::MockState>,
) {
    let profile = chaosgate::fault::Profile::from_toml(profile, "test.toml").unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    chaosgate::live::mock::spawn(
        chaosgate::live::mock::MockConfig::new(name, Api::OpenAi, profile, seed),
        l,
    )
    .await
    .unwrap()
}

async fn gateway(toml_src: &str, p: &str, f: &str) -> server::GatewayHandle {
    let src = toml_src.replace("PRIMARY", p).replace("FALLBACK", f);
    let cfg = ProxyConfig::from_toml_str(&src).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::spawn(cfg, l, 1, None).await.unwrap()
}

fn open_loop(rate: f64, secs: u64) -> chaosgate::traffic::Source {
    let c = TrafficConfig {
        rate: Some(rate),
        duration: Some(Dur::from_secs(secs)),
        arrival: ArrivalKind::Constant,
        ..TrafficConfig::default()
    };
    c.source(Path::new(".")).unwrap()
}

fn mix(stream: bool) -> Mix {
    let mut k = KindSpec::chat("chat", stream);
    k.max_tokens = chaosgate::traffic::Tokens::Fixed(5);
    Mix::new(vec![k], Api::OpenAi).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_down_primary_is_ejected_within_the_formula_and_failures_match() {
    // primary fails fast (503, /health too) from t = 1.5 s; probes every 500 ms, N = 1,
    // no breaker, no retries, no per-request fallback — the article's setup, compressed.
    let (p, pst) = named(
        "primary",
        "[[phase]]\nstart = \"1500ms\"\nerrors = [{ status = 503 }]\n",
        1,
    )
    .await;
    let (f, _) = named("fallback", "", 2).await;
    let cfg = r#"
targets = [{ name = "primary", url = "http://PRIMARY" }, { name = "fallback", url = "http://FALLBACK" }]
health_check = { interval = "500ms", timeout = "200ms", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
"#;
    let g = gateway(cfg, &p.addr.to_string(), &f.addr.to_string()).await;
    let rate = 100.0;
    let opts = LoadOptions::new(&format!("http://{}", g.server.addr), Api::OpenAi, 1);
    let r = run(open_loop(rate, 4), mix(false), opts).await.unwrap();
    let rep = r
        .aggregator
        .report(r.totals.scheduled, r.totals.in_flight_at_end, r.totals.duration);
    // onset in gateway time
    let onset = (pst.start + Duration::from_millis(1500))
        .saturating_duration_since(g.state.start())
        .as_nanos() as u64;
    let ev = g.state.events();
    let ejected = ev
        .iter()
        .find(|e| e.kind == EventKind::Ejected && e.target == "primary")
        .expect("primary ejected");
    let d = ejected.t_ns.saturating_sub(onset);
    // fast fail: D = U + r with U uniform on [0, I): within [0, I + slack]
    assert!(d <= 500 * NS_PER_MS + 100 * NS_PER_MS, "detection {d} ns");
    // failed requests ≈ λ·D (each request in the window hit the primary)
    let failed = rep.requests.failed as f64;
    let expect = rate * d as f64 / NS_PER_S as f64;
    assert!((failed - expect).abs() <= 8.0, "failed {failed}, λ·D = {expect:.1}");
    assert!(
        rep.providers.get("fallback").is_some_and(|g| g.ok > 150),
        "{:?}",
        rep.providers.keys()
    );
    assert_eq!(rep.requests.ok + rep.requests.failed, 400);
    g.shutdown().await;
    p.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_and_per_request_fallback_hides_the_failures() {
    // primary answers 502 to completions while /health is fine (grey failure): only the
    // passive breaker can see it; per-request fallback serves every request meanwhile.
    let (p, _) = common::start(
        Api::OpenAi,
        "[[phase]]\napplies_to = \"completions\"\nerrors = [{ status = 502 }]\n",
        1,
    )
    .await;
    let (f, _) = common::start(Api::OpenAi, "", 2).await;
    let cfg = r#"
targets = [{ name = "primary", url = "http://PRIMARY" }, { name = "fallback", url = "http://FALLBACK" }]
health_check = { interval = "200ms", timeout = "100ms", unhealthy_threshold = 1, healthy_threshold = 1 }
breaker = { kind = "article", failure_threshold = 3, recovery_timeout = "10s", half_open_max_requests = 5 }
"#;
    let g = gateway(cfg, &p.addr.to_string(), &f.addr.to_string()).await;
    let opts = LoadOptions::new(&format!("http://{}", g.server.addr), Api::OpenAi, 1);
    let r = run(open_loop(50.0, 1), mix(false), opts).await.unwrap();
    let rep = r
        .aggregator
        .report(r.totals.scheduled, r.totals.in_flight_at_end, r.totals.duration);
    assert_eq!(rep.requests.ok, 50, "{:?}", rep.failures_by_kind);
    let ev = g.state.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e.kind, EventKind::BreakerOpened { .. }) && e.target == "primary"));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Fallback { .. }))
            .count(),
        3,
        "only the first three paid for the failing attempt"
    );
    assert!(
        !ev.iter().any(|e| e.kind == EventKind::Ejected),
        "health checks cannot see a grey failure"
    );
    g.shutdown().await;
    p.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_fail_over_before_the_first_byte_and_error_in_band_after() {
    // primary: first token after 2 s (beyond the gateway's 300 ms TTFT timeout) → failover
    let (p, _) = common::start(
        Api::OpenAi,
        "[baseline]\nttft = { kind = \"fixed\", value = \"2s\" }\n",
        1,
    )
    .await;
    let (f, _) = common::start(
        Api::OpenAi,
        "[baseline]\nstream = [{ kind = \"cut\", probability = 1.0, after_tokens = 2 }]\n",
        2,
    )
    .await;
    let cfg = r#"
targets = [{ name = "primary", url = "http://PRIMARY" }, { name = "fallback", url = "http://FALLBACK" }]
ttft_timeout = "300ms"
"#;
    let g = gateway(cfg, &p.addr.to_string(), &f.addr.to_string()).await;
    // the mock's role chunk comes at once, so the first *byte* arrives in time: the primary
    // is kept, and its slow stream passes through
    let body = common::openai_chat(true, 3);
    let r = common::request(g.server.addr, "POST", "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-chaosgate-provider"), Some("test"));
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    // a primary that hangs before any byte → the fallback answers; its cut stream ends with
    // the gateway's in-band error, never a clean 200 without [DONE]
    let add = common::request(
        p.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        "name = \"hang\"\nconnection = [{ kind = \"hang\" }]\n",
    )
    .await;
    assert_eq!(add.status, 200);
    let r = common::request(g.server.addr, "POST", "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without its terminal event"),
        "{data:?}"
    );
    let ev = g.state.events();
    assert!(ev
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Fallback { to } if to == "fallback")));
    let m = common::request(g.server.addr, "GET", "/metrics", &[], "").await.text();
    assert!(m.contains("chaosgate_gateway_fallbacks_total 1"), "{m}");
    g.shutdown().await;
    p.shutdown().await;
    f.shutdown().await;
}

#[test]
fn quick_flags_build_the_config() {
    use clap::Parser;
    let cli = chaosgate::cli::Cli::parse_from([
        "chaosgate",
        "gateway",
        "--target",
        "a=http://127.0.0.1:9001",
        "--target",
        "b=http://127.0.0.1:9002",
        "--strategy",
        "fallback",
        "--health-interval",
        "5s",
        "--health-timeout",
        "2s",
        "--breaker",
        "consecutive:3,10s",
    ]);
    let chaosgate::cli::Command::Gateway(a) = cli.command else {
        panic!()
    };
    let c = chaosgate::cli::commands::gateway_config(&a).unwrap();
    assert_eq!(c.policy.targets.len(), 2);
    assert_eq!(c.policy.health_check.unwrap().interval, Dur::from_secs(5));
    assert!(matches!(
        c.policy.breaker,
        Some(chaosgate::gateway::BreakerConfig::Consecutive { failures: 3, .. })
    ));
    assert!(chaosgate::cli::commands::parse_breaker("article:3,10s")
        .unwrap_err()
        .to_string()
        .contains("wrong number"));
    assert!(chaosgate::cli::commands::parse_breaker("magic:1")
        .unwrap_err()
        .to_string()
        .contains("unknown kind"));
    assert!(chaosgate::cli::commands::parse_breaker("none").unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn live_probes_run_fixed_delay_in_paused_time() {
    // /health answers after 300 ms (virtual); probes every 1 s, fixed delay: a probe starts
    // 1 s after the previous one *ended*, so arrivals are 1.3 s apart.
    let (m, st) = named(
        "p",
        "[baseline]\nhealth = { latency = { kind = \"fixed\", value = \"300ms\" } }\n",
        1,
    )
    .await;
    let cfg = r#"
targets = [{ name = "p", url = "http://PRIMARY" }]
health_check = { interval = "1s", timeout = "500ms", unhealthy_threshold = 2, healthy_threshold = 1 }
"#;
    let g = gateway(cfg, &m.addr.to_string(), "unused").await;
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let log = st.arrivals.lock().unwrap().clone();
    let probes: Vec<u64> = log.iter().filter(|a| a.probe).map(|a| a.t_ns).collect();
    assert!(probes.len() >= 4, "{probes:?}");
    for w in probes.windows(2) {
        let gap = (w[1] - w[0]) as f64 / 1e9;
        assert!((gap - 1.3).abs() < 0.05, "gap {gap} s in {probes:?}");
    }
    assert!(g
        .state
        .events()
        .iter()
        .all(|e| e.kind == EventKind::ProbeResult { ok: true }));
    g.shutdown().await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_counts_as_a_failure_is_configurable() {
    for (cut_counts, want_open) in [(true, true), (false, false)] {
        let (p, _) = named(
            "primary",
            "[baseline]\nstream = [{ kind = \"cut\", after_tokens = 1 }]\n",
            1,
        )
        .await;
        let (f, _) = named("fallback", "", 2).await;
        let cfg = format!(
            "targets = [{{ name = \"primary\", url = \"http://PRIMARY\" }}, {{ name = \"fallback\", url = \"http://FALLBACK\" }}]\nbreaker = {{ kind = \"article\", failure_threshold = 3 }}\nfailure = {{ stream_cut = {cut_counts} }}\n"
        );
        let g = gateway(&cfg, &p.addr.to_string(), &f.addr.to_string()).await;
        for _ in 0..4 {
            let r = common::request(
                g.server.addr,
                "POST",
                "/v1/chat/completions",
                &[],
                &common::openai_chat(true, 5),
            )
            .await;
            assert_eq!(r.status, 200);
        }
        let opened = g
            .state
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::BreakerOpened { .. }));
        assert_eq!(opened, want_open, "stream_cut = {cut_counts}");
        g.shutdown().await;
        p.shutdown().await;
        f.shutdown().await;
    }
}

/// A gateway in front of one plain mock, with or without the test-only pass-through.
async fn one_target(
    pass: bool,
) -> (
    server::GatewayHandle,
    chaosgate::live::net::ServerHandle,
    std::sync::Arc<chaosgate::live::mock::MockState>,
) {
    let (m, st) = named("p", "", 1).await;
    let cfg = format!(
        "targets = [{{ name = \"p\", url = \"http://PRIMARY\" }}]\nbreaker = {{ kind = \"consecutive\", failures = 2, base_ejection = \"30s\" }}\npass_chaosgate_headers = {pass}\n"
    );
    let g = gateway(&cfg, &m.addr.to_string(), "unused").await;
    (g, m, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_x_chaosgate_fault_header_cannot_force_faults_through_the_gateway() {
    // the defect: any client could send x-chaosgate-fault: status=503 through the gateway,
    // open the breaker and take the target away from every other client
    let (g, m, st) = one_target(false).await;
    let body = common::openai_chat(false, 3);
    let forced = [("x-chaosgate-fault", "status=503"), ("x-chaosgate-probe", "1")];
    for _ in 0..5 {
        let r = common::request(g.server.addr, "POST", "/v1/chat/completions", &forced, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        !g.state
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::BreakerOpened { .. })),
        "a client opened the breaker"
    );
    // nor may a client mark its requests as the gateway's health probes
    assert!(st.arrivals.lock().unwrap().iter().all(|a| !a.probe));
    g.shutdown().await;
    m.shutdown().await;

    // the explicit test-only option passes them: the forced 503s reach the mock and trip it
    let (g, m, _) = one_target(true).await;
    let r = common::request(g.server.addr, "POST", "/v1/chat/completions", &forced, &body).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let _ = common::request(g.server.addr, "POST", "/v1/chat/completions", &forced, &body).await;
    assert!(g
        .state
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::BreakerOpened { .. })));
    g.shutdown().await;
    m.shutdown().await;
}

#[test]
fn pass_chaosgate_headers_flag_sets_the_config_key() {
    use clap::Parser;
    let parse = |extra: &[&str]| {
        let mut v = vec!["chaosgate", "gateway", "--target", "a=http://127.0.0.1:9001"];
        v.extend_from_slice(extra);
        let chaosgate::cli::Command::Gateway(a) = chaosgate::cli::Cli::parse_from(v).command else {
            panic!()
        };
        chaosgate::cli::commands::gateway_config(&a).unwrap()
    };
    assert!(!parse(&[]).pass_chaosgate_headers, "stripping is the default");
    assert!(parse(&["--pass-chaosgate-headers"]).pass_chaosgate_headers);
}

/// The OpenAI envelope with a message (type and code as OpenAI's own client errors).
fn assert_openai_error(r: &common::Reply, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    assert!(
        v["error"].get("param").is_some() && v["error"].get("code").is_some(),
        "{v}"
    );
}

fn assert_anthropic_error(r: &common::Reply, status: u16, ty: &str, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], ty, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    assert!(v["request_id"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_404_405_413_431_and_400_have_provider_shaped_json_bodies() {
    // the defect: the gateway's own 404/405/431 (and the admin 400) had empty or plain bodies
    let (g, m, st) = one_target(false).await;
    let a = g.server.addr;
    let r = common::request(a, "POST", "/v1/nothing", &[], "{}").await;
    assert_openai_error(&r, 404, "Invalid URL (POST /v1/nothing)");
    let r = common::request(a, "GET", "/v1/chat/completions", &[], "").await;
    assert_openai_error(&r, 405, "Invalid method for URL (GET /v1/chat/completions)");
    let r = common::request(a, "GET", "/v1/messages", &[], "").await;
    assert_anthropic_error(&r, 405, "invalid_request_error", "Invalid method");
    assert_eq!(r.header("request-id"), Some("req_gateway"));
    let r = common::request(a, "POST", "/v1/messages/nothing", &[], "{}").await;
    assert_anthropic_error(&r, 404, "not_found_error", "Invalid URL");
    let r = common::request(a, "GET", "/_chaosgate/events?since=x", &[], "").await;
    assert_openai_error(&r, 400, "since=SEQ");
    let r = common::request(a, "DELETE", "/metrics", &[], "").await;
    assert_openai_error(&r, 405, "DELETE /metrics");

    // too many header lines, a too large head: 431 in the route's envelope
    let names: Vec<String> = (0..150).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let body = common::openai_chat(false, 3);
    let r = common::request(a, "POST", "/v1/chat/completions", &many, &body).await;
    assert_openai_error(&r, 431, "at most 100");
    let big = "v".repeat(40 * 1024);
    let r = common::request(
        a,
        "POST",
        "/v1/messages",
        &[("x-big", &big)],
        &common::anthropic_msg(false, 3),
    )
    .await;
    assert_anthropic_error(&r, 431, "invalid_request_error", "at most 32768");

    // a declared body over the limit is refused before it is read
    let mut c = common::Conn::open(a).await;
    let n = (chaosgate::live::proxy::MAX_REQUEST_BODY_BYTES + 1).to_string();
    let head = format!("POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {n}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut c.s, head.as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let k = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut c.s, &mut buf),
    )
    .await
    .expect("an answer without the body")
    .unwrap();
    let text = String::from_utf8_lossy(&buf[..k]).into_owned();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let limit = format!("limit of {} bytes", chaosgate::live::proxy::MAX_REQUEST_BODY_BYTES);
    assert!(
        text.contains("\"request_too_large\"") && text.contains(&limit),
        "{text}"
    );
    // none of these reached the provider
    assert!(st.arrivals.lock().unwrap().iter().all(|a| a.probe));
    g.shutdown().await;
    m.shutdown().await;
}

/// An upstream that answers every POST with `chunks` × 64 KiB of JSON-ish bytes, and then
/// either ends (`broken = false`) or breaks the body.
async fn big_upstream(chunks: usize, broken: bool) -> chaosgate::live::net::ServerHandle {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || async move {
            let s = futures_util::stream::iter((0..=chunks).map(move |k| {
                if k < chunks {
                    Ok(bytes::Bytes::from(vec![b'x'; 64 * 1024]))
                } else if broken {
                    Err(std::io::Error::other("upstream breaks"))
                } else {
                    Ok(bytes::Bytes::new())
                }
            }));
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from_stream(s))
                .unwrap()
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    chaosgate::live::net::spawn(l, app).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_reply_larger_than_the_gateway_holds_is_relayed_whole_or_visibly_broken() {
    // the defect: the gateway held every non-streamed upstream reply whole in memory; now it
    // holds at most PLAIN_PREFIX_BYTES and relays the rest as it arrives
    let chunks = 3 * 1024 * 1024 / (64 * 1024); // 3 MiB, 12× the held prefix
    for broken in [false, true] {
        let up = big_upstream(chunks, broken).await;
        let cfg = "targets = [{ name = \"p\", url = \"http://PRIMARY\" }]\n";
        let g = gateway(cfg, &up.addr.to_string(), "unused").await;
        let r = common::request(
            g.server.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            &common::openai_chat(false, 3),
        )
        .await;
        assert_eq!(r.status, 200);
        if broken {
            assert!(
                !r.complete,
                "a broken upstream body must not reach the client as a complete reply"
            );
            assert!(r.body.len() < chunks * 64 * 1024);
            let m = common::request(g.server.addr, "GET", "/metrics", &[], "").await.text();
            assert!(m.contains("chaosgate_gateway_failed_total 1"), "{m}");
        } else {
            assert!(r.complete);
            assert_eq!(r.body.len(), chunks * 64 * 1024);
            assert!(r.chunks.len() > 1, "relayed in pieces, not one held body");
        }
        g.shutdown().await;
        up.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_reply_to_a_stream_true_request_is_relayed_as_json_not_cut_as_a_stream() {
    // The defect: the gateway took "stream": true in the request for a stream; embeddings
    // ignore it and answer plain JSON, which the gateway then "cut" (an SSE error event
    // appended to the JSON, a stream cut counted for the breaker). Streaming is now decided
    // by the upstream's content-type.
    let (g, m, _) = one_target(false).await;
    let body = r#"{"stream":true,"model":"text-embedding-3-small","input":"hi"}"#;
    for _ in 0..4 {
        let r = common::request(g.server.addr, "POST", "/v1/embeddings", &[], body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.complete);
        assert!(!r.text().contains("data:"), "{}", r.text());
        let j: serde_json::Value = serde_json::from_slice(&r.body).expect("the reply is one JSON document");
        assert_eq!(j["object"], "list");
    }
    // four "cuts" would have opened the breaker (2 consecutive failures)
    assert!(!g
        .state
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::BreakerOpened { .. })));
    g.shutdown().await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_body_with_content_length_and_chunked_chunked_is_400_not_413_at_the_gateway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (g, m, _) = one_target(false).await;
    let body = common::openai_chat(false, 2);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\ntransfer-encoding: chunked, chunked\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(g.server.addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got).trim_end().ends_with('}') {
                    break;
                }
            }
        }
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    let j: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap_or("")).expect(&got);
    assert_eq!(j["error"]["type"], "invalid_request_error", "{got}");
    assert!(j["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not read the request body"));
    g.shutdown().await;
    m.shutdown().await;
}

/// A client that leaves a stream early (an SDK stops at a malformed chunk; a user closes
/// the tab) must not hide the upstream's failure from the breaker: the gateway reads the
/// rest of the upstream's stream in the background and reports how it ended. Before the
/// fix, a dropped relay reported nothing — the breaker never opened (and a half-open
/// breaker's trial was never returned); the simulator, which sees every attempt to its
/// end, opened it (differential seed 1159).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_abandoned_by_its_client_still_reaches_the_breaker() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (p, _) = named(
        "primary",
        "[baseline]\nttft = { kind = \"fixed\", value = \"100ms\" }\nstream = [{ kind = \"malformed\", after_tokens = 0 }]\n",
        1,
    )
    .await;
    let (f, _) = named("fallback", "", 2).await;
    let cfg = r#"
targets = [{ name = "primary", url = "http://PRIMARY" }, { name = "fallback", url = "http://FALLBACK" }]
breaker = { kind = "consecutive", failures = 2, base_ejection = "30s", max_ejection = "30s" }
"#;
    let g = gateway(cfg, &p.addr.to_string(), &f.addr.to_string()).await;
    let body = common::openai_chat(true, 5);
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(g.server.addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).await.unwrap();
        // the head and the preamble, then the client goes away before the malformed chunk
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0 && buf.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        drop(c);
    }
    // the upstream's streams end 100 ms after they began: both failures reach the breaker
    let mut opened = false;
    for _ in 0..50 {
        opened = g
            .state
            .events()
            .iter()
            .any(|e| e.target == "primary" && matches!(e.kind, EventKind::BreakerOpened { .. }));
        if opened {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(opened, "events: {:?}", g.state.events());
    g.shutdown().await;
}
