//! Each fault kind observed over real HTTP on loopback: status, body shape, headers, cut
//! position, timing within tolerance — on fresh and reused keep-alive connections.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

mod common;

use chaosgate::provider::Api;
use common::*;
use std::time::Duration;

const OPENAI: &str = "/v1/chat/completions";
const ANTHROPIC: &str = "/v1/messages";

#[tokio::test]
async fn healthy_openai_plain_and_stream_agree() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let plain = request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 12)).await;
    assert_eq!(plain.status, 200);
    let j = plain.json();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["model"], "gpt-4o");
    assert_eq!(j["usage"]["completion_tokens"], 12);
    let text = j["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert_eq!(text, chaosgate::provider::filler_text(12));
    assert_eq!(plain.header("x-chaosgate-provider"), Some("test"));

    let s = request(h.addr, "POST", OPENAI, &[], &openai_chat(true, 12)).await;
    assert_eq!(s.status, 200);
    assert!(s.complete);
    assert!(s.header("content-type").unwrap().starts_with("text/event-stream"));
    let data = s.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let mut streamed = String::new();
    let mut usage = None;
    for d in &data[..data.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(d).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(c);
        }
        if v["usage"].is_object() {
            usage = Some(v["usage"]["completion_tokens"].as_u64().unwrap());
        }
    }
    assert_eq!(streamed, text);
    assert_eq!(usage, Some(12));
    h.shutdown().await;
}

#[tokio::test]
async fn healthy_anthropic_stream_has_the_event_order() {
    let (h, _) = start(Api::Anthropic, "", 1).await;
    let s = request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(true, 4)).await;
    assert_eq!(s.status, 200);
    let ev = s.sse_events();
    let want = [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ];
    assert_eq!(ev, want);
    assert!(s.header("request-id").is_some());
    let plain = request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(false, 4)).await;
    let j = plain.json();
    assert_eq!(j["type"], "message");
    assert_eq!(j["content"][0]["text"], chaosgate::provider::filler_text(4));
    assert_eq!(j["usage"]["output_tokens"], 4);
    h.shutdown().await;
}

#[tokio::test]
async fn forced_statuses_have_provider_envelopes_and_headers() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "status=429")],
        &openai_chat(false, 5),
    )
    .await;
    assert_eq!(r.status, 429);
    let j = r.json();
    assert_eq!(j["error"]["code"], "rate_limit_exceeded");
    assert!(j["error"]["message"].as_str().unwrap().contains("Please try again in"));
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "status=429,kind=insufficient_quota")],
        &openai_chat(false, 5),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "insufficient_quota");
    assert_eq!(r.json()["error"]["code"], "insufficient_quota");
    assert!(r.header("retry-after").is_none());
    assert_eq!(r.header("x-should-retry"), Some("false"));
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "status=500")],
        &openai_chat(false, 5),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (500, Some("server_error"))
    );
    h.shutdown().await;

    let (h, _) = start(Api::Anthropic, "", 1).await;
    for (status, ty) in [
        (529, "overloaded_error"),
        (401, "authentication_error"),
        (500, "api_error"),
        (429, "rate_limit_error"),
    ] {
        let f = format!("status={status}");
        let r = request(
            h.addr,
            "POST",
            ANTHROPIC,
            &[("x-chaosgate-fault", &f)],
            &anthropic_msg(false, 5),
        )
        .await;
        assert_eq!(r.status, status);
        let j = r.json();
        assert_eq!(j["type"], "error");
        assert_eq!(j["error"]["type"], ty, "{j}");
        assert!(j["request_id"].is_string());
    }
    // spend cap: a 429 without retry-after
    let r = request(
        h.addr,
        "POST",
        ANTHROPIC,
        &[("x-chaosgate-fault", "status=429,kind=insufficient_quota")],
        &anthropic_msg(false, 5),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn stream_cut_and_inband_error_and_malformed() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    // cut after 5 tokens: 5 content chunks, no [DONE], body not properly terminated
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "cut_after=5")],
        &openai_chat(true, 20),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a cut stream must not end cleanly");
    let data = r.sse_data();
    let contents = data.iter().filter(|d| d.contains("\"content\":\" ")).count();
    assert_eq!(contents, 5, "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    // in-band error after 3 tokens
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "error_after=3")],
        &openai_chat(true, 20),
    )
    .await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"].is_object(), "{data:?}");
    assert_eq!(data.iter().filter(|d| d.contains("\"content\":\" ")).count(), 3);
    // malformed after 2
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "malformed_after=2")],
        &openai_chat(true, 20),
    )
    .await;
    let data = r.sse_data();
    assert!(serde_json::from_str::<serde_json::Value>(data.last().unwrap()).is_err());
    h.shutdown().await;

    let (h, _) = start(Api::Anthropic, "", 1).await;
    let r = request(
        h.addr,
        "POST",
        ANTHROPIC,
        &[("x-chaosgate-fault", "error_after=3")],
        &anthropic_msg(true, 20),
    )
    .await;
    let ev = r.sse_events();
    assert_eq!(ev.last().map(String::as_str), Some("error"), "{ev:?}");
    assert_eq!(ev.iter().filter(|e| *e == "content_block_delta").count(), 3);
    assert!(r.text().contains("overloaded_error"));
    let r = request(
        h.addr,
        "POST",
        ANTHROPIC,
        &[("x-chaosgate-fault", "no_terminal")],
        &anthropic_msg(true, 4),
    )
    .await;
    assert!(r.complete);
    assert!(!r.sse_events().contains(&"message_stop".to_string()));
    assert!(r.sse_events().contains(&"message_delta".to_string()));
    h.shutdown().await;
}

#[tokio::test]
async fn pacing_ttft_and_token_interval_within_tolerance() {
    let profile = "[baseline]\nttft = { kind = \"fixed\", value = \"150ms\" }\ntokens_per_s = { mean = 50 }\n";
    let (h, _) = start(Api::OpenAi, profile, 1).await;
    let r = request(h.addr, "POST", OPENAI, &[], &openai_chat(true, 11)).await;
    assert!(
        r.ttfb < Duration::from_millis(100),
        "headers should come at once: {:?}",
        r.ttfb
    );
    let content: Vec<Duration> = r
        .chunks
        .iter()
        .filter(|(_, b)| String::from_utf8_lossy(b).contains("\"content\":\" "))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(content.len(), 11);
    let ttft = content[0].as_secs_f64();
    assert!((0.140..0.250).contains(&ttft), "ttft {ttft}");
    let span = (content[10] - content[0]).as_secs_f64(); // 10 gaps of 20 ms
    assert!((0.190..0.300).contains(&span), "span {span}");
    h.shutdown().await;
}

#[tokio::test]
async fn connection_faults_hit_reused_keepalive_connections() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let mut c = Conn::open(h.addr).await;
    let ok = c
        .send(
            "POST",
            OPENAI,
            &[],
            openai_chat(false, 3).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(ok.status, 200);
    // same connection, now a reset before headers
    let r = c
        .send(
            "POST",
            OPENAI,
            &[("x-chaosgate-fault", "reset")],
            openai_chat(false, 3).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.status, 0);
    assert!(r.reset, "expected a TCP reset: {r:?}");
    // hang: nothing within the limit
    let mut c = Conn::open(h.addr).await;
    let ok = c
        .send(
            "POST",
            OPENAI,
            &[],
            openai_chat(false, 3).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(ok.status, 200);
    let r = c
        .send(
            "POST",
            OPENAI,
            &[("x-chaosgate-fault", "hang")],
            openai_chat(false, 3).as_bytes(),
            Duration::from_millis(400),
        )
        .await;
    assert!(r.timed_out && r.status == 0);
    // headers then silence
    let r = Conn::open(h.addr)
        .await
        .send(
            "POST",
            OPENAI,
            &[("x-chaosgate-fault", "headers_then_silence")],
            openai_chat(false, 3).as_bytes(),
            Duration::from_millis(400),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.timed_out && r.body.is_empty());
    // slow body: ~450 bytes at 1000 B/s in 100-byte pieces ≈ 0.4 s
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "slow_body=1000")],
        &openai_chat(false, 3),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.chunks.len() >= 3, "{} chunks", r.chunks.len());
    assert!(
        r.chunks.last().unwrap().0 > Duration::from_millis(250),
        "{:?}",
        r.chunks.last().unwrap().0
    );
    assert!(r.json()["choices"].is_array());
    // delay
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "delay=200ms")],
        &openai_chat(false, 3),
    )
    .await;
    assert!(r.ttfb >= Duration::from_millis(190), "{:?}", r.ttfb);
    h.shutdown().await;
}

#[tokio::test]
async fn ping_stall_sends_pings_and_no_content() {
    let (h, _) = start(
        Api::Anthropic,
        "[baseline]\nstream = [{ kind = \"ping_stall\", after_tokens = 1, ping_every = \"50ms\" }]\n",
        1,
    )
    .await;
    let r = Conn::open(h.addr)
        .await
        .send(
            "POST",
            ANTHROPIC,
            &[],
            anthropic_msg(true, 10).as_bytes(),
            Duration::from_millis(400),
        )
        .await;
    assert!(r.timed_out);
    let ev = r.sse_events();
    assert_eq!(ev.iter().filter(|e| *e == "content_block_delta").count(), 1);
    assert!(ev.iter().filter(|e| *e == "ping").count() >= 4, "{ev:?}");
    // silent stall: two tokens, then nothing at all while the connection stays open
    let r = Conn::open(h.addr)
        .await
        .send(
            "POST",
            ANTHROPIC,
            &[("x-chaosgate-fault", "stall_after=2")],
            anthropic_msg(true, 10).as_bytes(),
            Duration::from_millis(300),
        )
        .await;
    assert!(r.timed_out && !r.reset);
    let ev = r.sse_events();
    assert_eq!(ev.iter().filter(|e| *e == "content_block_delta").count(), 2);
    assert_eq!(ev.last().map(String::as_str), Some("content_block_delta"), "{ev:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn grey_failure_health_ok_while_completions_fail() {
    let p = "[[phase]]\napplies_to = \"completions\"\nerrors = [{ status = 502 }]\n";
    let (h, st) = start(Api::Anthropic, p, 1).await;
    assert_eq!(request(h.addr, "GET", "/health", &[], "").await.status, 200);
    let r = request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(false, 3)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "error");
    // the arrival log marks the probe
    let log = request(h.addr, "GET", "/_chaosgate/arrivals", &[], "").await.json();
    let a = log["arrivals"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["probe"], true);
    assert_eq!(a[1]["probe"], false);
    assert_eq!(a[1]["verdict"], "error:502");
    assert_eq!(a[1]["cause"], "phase:phase[0]");
    assert!(st.now() > 0);
    h.shutdown().await;
}

#[tokio::test]
async fn rate_limit_headers_count_down_then_429() {
    let (h, _) = start(
        Api::OpenAi,
        "[baseline]\nrate_limit = { requests_per_min = 3, tokens_per_min = 100000 }\n",
        1,
    )
    .await;
    let mut c = Conn::open(h.addr).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = c
            .send(
                "POST",
                OPENAI,
                &[],
                openai_chat(false, 2).as_bytes(),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        remaining.push(r.header("x-ratelimit-remaining-requests").unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = c
        .send(
            "POST",
            OPENAI,
            &[],
            openai_chat(false, 2).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(r.header("retry-after"), Some("20"));
    h.shutdown().await;
}

#[tokio::test]
async fn admin_api_adds_a_phase_effective_next_request() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    assert_eq!(
        request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2))
            .await
            .status,
        200
    );
    let add = request(
        h.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        "name = \"down\"\nerrors = [{ status = 503 }]\n",
    )
    .await;
    assert_eq!(add.status, 200, "{}", add.text());
    assert_eq!(
        request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2))
            .await
            .status,
        503
    );
    let st = request(h.addr, "GET", "/_chaosgate/state", &[], "").await.json();
    assert_eq!(st["phases"][0]["name"], "down");
    assert_eq!(st["phases"][0]["active"], true);
    let bad = request(
        h.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        "{\"errors\": [{\"status\": 503, \"probabilty\": 1}]}",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("probabilty"));
    assert_eq!(
        request(h.addr, "DELETE", "/_chaosgate/phases/down", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2))
            .await
            .status,
        200
    );
    let m = request(h.addr, "GET", "/metrics", &[], "").await;
    assert!(
        m.text()
            .contains("chaosgate_mock_requests_total{provider=\"test\",outcome=\"error\"} 1"),
        "{}",
        m.text()
    );
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_provider_envelopes() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let r = request(h.addr, "POST", OPENAI, &[], "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = request(h.addr, "POST", OPENAI, &[], "{\"model\": \"gpt-4o\"}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "messages");
    let r = request(h.addr, "GET", "/v1/nope", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_object());
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "explode")],
        &openai_chat(false, 2),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("unknown fault"));
    h.shutdown().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = chaosgate::live::mock::MockConfig::new("small", Api::Anthropic, Default::default(), 1);
    cfg.max_body_bytes = 100;
    let (h, _) = chaosgate::live::mock::spawn(cfg, listener).await.unwrap();
    let r = request(h.addr, "POST", ANTHROPIC, &[], &"x".repeat(500)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    let r = request(
        h.addr,
        "POST",
        ANTHROPIC,
        &[],
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    h.shutdown().await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let r = request(
        h.addr,
        "POST",
        "/v1/embeddings",
        &[],
        "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],\"dimensions\":8}",
    )
    .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["data"].as_array().unwrap().len(), 2);
    assert_eq!(j["data"][1]["embedding"].as_array().unwrap().len(), 8);
    let m = request(h.addr, "GET", "/v1/models", &[], "").await;
    assert_eq!(m.status, 200);
    assert!(m.json()["data"].as_array().unwrap().len() >= 2);
    h.shutdown().await;
}

/// LiteLLM 1.108's background health check as captured at a listening socket (the openai
/// Python SDK's body, byte for byte): a real chat completion, no header sets it apart.
const LITELLM_PROBE: &str =
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hey how's it going?"}],"max_tokens":16}"#;

async fn arrivals(addr: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let log = request(addr, "GET", "/_chaosgate/arrivals", &[], "").await.json();
    log["arrivals"].as_array().unwrap().clone()
}

#[tokio::test]
async fn gateway_probes_are_marked_and_still_see_the_fault() {
    // completions fail: a probe must see the outage exactly as user traffic does
    let (h, _) = start(
        Api::OpenAi,
        "[[phase]]\nname = \"down\"\nerrors = [{ status = 502 }]\n",
        1,
    )
    .await;
    let other_prompt = LITELLM_PROBE.replace("Hey how's it going?", "What's 1 + 1?");
    let user_with_probe_text = LITELLM_PROBE.replace("Hey how's it going?", "Hey how's it going? Tell me more.");
    type Sent<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let sent: [Sent; 6] = [
        (OPENAI, &[], LITELLM_PROBE),
        (OPENAI, &[], &other_prompt),
        (OPENAI, &[], &user_with_probe_text),
        (
            "/v1/embeddings",
            &[],
            r#"{"model": "text-embedding-3-small", "input": ["test from litellm"]}"#,
        ),
        (OPENAI, &[("x-chaosgate-probe", "1")], &openai_chat(false, 2)),
        (OPENAI, &[], &openai_chat(true, 2)),
    ];
    for (path, hdrs, body) in sent {
        assert_eq!(
            request(h.addr, "POST", path, hdrs, body).await.status,
            502,
            "{path} {body}"
        );
    }
    let a = arrivals(h.addr).await;
    let probe: Vec<bool> = a.iter().map(|x| x["probe"].as_bool().unwrap()).collect();
    assert_eq!(probe, [true, true, false, true, true, false]);
    assert!(a.iter().all(|x| x["verdict"] == "error:502"), "{a:?}");
    let m = request(h.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        m.contains("chaosgate_mock_probes_total{provider=\"test\",outcome=\"error\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("chaosgate_mock_requests_total{provider=\"test\",outcome=\"error\"} 2"),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn probe_rules_are_configurable() {
    let profile = chaosgate::fault::Profile::from_toml("", "t.toml").unwrap();
    let mut cfg = chaosgate::live::mock::MockConfig::new("p", Api::OpenAi, profile, 1);
    cfg.probe = chaosgate::live::mock::probe::ProbeMatcher::none();
    cfg.probe.add_header_rule("user-agent=my-checker/1").unwrap();
    cfg.probe.add_prompt("ping");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (h, _) = chaosgate::live::mock::spawn(cfg, listener).await.unwrap();
    let ping = r#"{"model":"m","messages":[{"role":"user","content":"ping"}],"max_tokens":1}"#;
    assert_eq!(request(h.addr, "POST", OPENAI, &[], ping).await.status, 200);
    assert_eq!(
        request(
            h.addr,
            "POST",
            OPENAI,
            &[("user-agent", "my-checker/1")],
            &openai_chat(false, 1)
        )
        .await
        .status,
        200
    );
    // with the defaults dropped, LiteLLM's prompt and the chaosgate header are user traffic
    assert_eq!(request(h.addr, "POST", OPENAI, &[], LITELLM_PROBE).await.status, 200);
    assert_eq!(
        request(
            h.addr,
            "POST",
            OPENAI,
            &[("x-chaosgate-probe", "1")],
            &openai_chat(false, 1)
        )
        .await
        .status,
        200
    );
    assert_eq!(request(h.addr, "GET", "/health", &[], "").await.status, 200);
    let probe: Vec<bool> = arrivals(h.addr)
        .await
        .iter()
        .map(|x| x["probe"].as_bool().unwrap())
        .collect();
    assert_eq!(probe, [true, true, false, false, true]);
    h.shutdown().await;
}

/// Resident memory of this test process, in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends a request and reads at most `want` body bytes (headers included), then drops
/// the connection. Returns the status line and what was read.
async fn read_prefix(addr: std::net::SocketAddr, path: &str, body: &str, want: usize) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < want {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let status = String::from_utf8_lossy(&got[..got.len().min(15)]).into_owned();
    (status, got)
}

#[tokio::test]
async fn max_tokens_4294967296_is_refused_without_reserving_memory() {
    // The report's request: one of these took a mock to gigabytes. Now a provider 400.
    let (h, st) = start(Api::OpenAi, "", 1).await;
    for key in ["max_tokens", "max_completion_tokens"] {
        for stream in [false, true] {
            let body = format!(
                r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"{key}":4294967296,"stream":{stream}}}"#
            );
            let r = request(h.addr, "POST", OPENAI, &[], &body).await;
            assert_eq!(r.status, 400, "{key} stream={stream}: {}", r.text());
            let e = &r.json()["error"];
            assert_eq!(e["type"], "invalid_request_error");
            assert_eq!(e["param"], key);
            assert_eq!(e["code"], "invalid_value");
            let m = e["message"].as_str().unwrap();
            assert!(m.contains("4294967296") && m.contains("128000"), "{m}");
        }
    }
    // n is bounded too (OpenAI: at most 128)
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":129}"#;
    let r = request(h.addr, "POST", OPENAI, &[], body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "n");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("<= 128, but got 129"));
    // The largest allowed request: 128 choices × 128,000 tokens ≈ 115 MB of body. It is
    // generated as it is sent, so reading its first 2 MiB costs the mock no more than a
    // few buffers, not the whole body up front.
    let before = rss_kib();
    for stream in [false, true] {
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"max_tokens":128000,"n":128,"stream":{stream}}}"#
        );
        let (status, got) = read_prefix(h.addr, OPENAI, &body, 2 << 20).await;
        assert!(status.contains(" 200"), "{status}");
        assert!(got.len() >= 2 << 20, "stream={stream}: only {} bytes", got.len());
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "the mock grew by {grown_mib} MiB serving two 2 MiB prefixes"
    );
    h.shutdown().await;
    // the arrivals were decided (and counted) as ok, the refusals as errors
    assert!(st.metrics.rejected.load(std::sync::atomic::Ordering::Relaxed) >= 5);

    let (h, _) = start(Api::Anthropic, "", 1).await;
    for stream in [false, true] {
        let body = format!(
            r#"{{"model":"claude-haiku-4-5","max_tokens":4294967296,"messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#
        );
        let r = request(h.addr, "POST", ANTHROPIC, &[], &body).await;
        assert_eq!(r.status, 400);
        let j = r.json();
        assert_eq!(j["type"], "error");
        assert_eq!(j["error"]["type"], "invalid_request_error");
        let m = j["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("max_tokens: 4294967296 > 128000"), "{m}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn n_2_returns_two_choices_plain_and_streamed() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":2}"#;
    let r = request(h.addr, "POST", OPENAI, &[], body).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    let choices = j["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    let texts: Vec<String> = choices
        .iter()
        .enumerate()
        .map(|(k, c)| {
            assert_eq!(c["index"], k);
            assert_eq!(c["finish_reason"], "length");
            c["message"]["content"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(texts[0], texts[1], "choices differ");
    assert_eq!(texts[0], chaosgate::provider::filler_text(5));
    assert_eq!(j["usage"]["completion_tokens"], 10);

    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":2,"stream":true,"stream_options":{"include_usage":true}}"#;
    let s = request(h.addr, "POST", OPENAI, &[], body).await;
    assert!(s.complete);
    let mut streamed = [String::new(), String::new()];
    let mut finishes = [0, 0];
    let mut usage = None;
    for d in s.sse_data() {
        if d == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        for c in v["choices"].as_array().unwrap() {
            let k = c["index"].as_u64().unwrap() as usize;
            if let Some(t) = c["delta"]["content"].as_str() {
                streamed[k].push_str(t);
            }
            if c["finish_reason"].is_string() {
                finishes[k] += 1;
            }
        }
        if v["usage"].is_object() {
            usage = v["usage"]["completion_tokens"].as_u64();
        }
    }
    assert_eq!(streamed[0], texts[0]);
    assert_eq!(streamed[1], texts[1]);
    assert_eq!(finishes, [1, 1]);
    assert_eq!(usage, Some(10));
    h.shutdown().await;
}

#[tokio::test]
async fn embeddings_honour_base64_and_dimensions() {
    use base64::Engine as _;
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let body = r#"{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"base64","dimensions":384}"#;
    let r = request(h.addr, "POST", "/v1/embeddings", &[], body).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    for (i, d) in j["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(d["index"], i);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(d["embedding"].as_str().expect("a base64 string"))
            .unwrap();
        assert_eq!(raw.len(), 384 * 4);
        let v: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(v.iter().filter(|x| **x != 0.0).count() > 300, "non-zero values");
        let norm: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
    // default width is the model's; wider than the model is refused
    let r = request(
        h.addr,
        "POST",
        "/v1/embeddings",
        &[],
        r#"{"model":"text-embedding-3-small","input":"a"}"#,
    )
    .await;
    assert_eq!(r.json()["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    let r = request(
        h.addr,
        "POST",
        "/v1/embeddings",
        &[],
        r#"{"model":"text-embedding-3-small","input":"a","dimensions":4096}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "dimensions");
    let r = request(
        h.addr,
        "POST",
        "/v1/embeddings",
        &[],
        r#"{"model":"text-embedding-3-small","input":"a","encoding_format":"hex"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "encoding_format");
    h.shutdown().await;
}

#[tokio::test]
async fn models_list_and_retrieve_on_both_apis() {
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let list = request(h.addr, "GET", "/v1/models", &[], "").await.json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| !id.starts_with("claude")), "{ids:?}");
    let one = request(h.addr, "GET", "/v1/models/gpt-4o-mini", &[], "").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "gpt-4o-mini");
    assert_eq!(one.json()["object"], "model");
    let none = request(h.addr, "GET", "/v1/models/gpt-0", &[], "").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["error"]["code"], "model_not_found");
    h.shutdown().await;

    let (h, _) = start(Api::Anthropic, "", 1).await;
    let list = request(h.addr, "GET", "/v1/models", &[], "").await.json();
    for m in list["data"].as_array().unwrap() {
        assert!(m["id"].as_str().unwrap().starts_with("claude-"), "{m}");
        assert_eq!(m["type"], "model");
        assert_eq!(m["lifecycle"], "active");
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(m["display_name"].is_string());
    }
    assert_eq!(list["has_more"], false);
    let page = request(h.addr, "GET", "/v1/models?limit=1", &[], "").await.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    let next = format!("/v1/models?limit=1&after_id={}", page["last_id"].as_str().unwrap());
    let page2 = request(h.addr, "GET", &next, &[], "").await.json();
    assert_ne!(page2["first_id"], page["first_id"]);
    let bad = request(h.addr, "GET", "/v1/models?limit=0", &[], "").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
    let id = list["data"][0]["id"].as_str().unwrap();
    let one = request(h.addr, "GET", &format!("/v1/models/{id}"), &[], "").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], id);
    let none = request(h.addr, "GET", "/v1/models/gpt-4o", &[], "").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["error"]["type"], "not_found_error");
    h.shutdown().await;
}

#[tokio::test]
async fn anthropic_count_tokens_and_rate_limit_headers_on_every_response() {
    let (h, _) = start(Api::Anthropic, "", 1).await;
    let body = r#"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"abcdefgh"}],"system":"abcd"}"#;
    let r = request(h.addr, "POST", "/v1/messages/count_tokens", &[], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "input_tokens": 3 }));
    let bad = request(h.addr, "POST", "/v1/messages/count_tokens", &[], r#"{"model":"m"}"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");

    let replies = [
        r,
        bad,
        request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(false, 3)).await,
        request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(true, 3)).await,
        request(
            h.addr,
            "POST",
            ANTHROPIC,
            &[("x-chaosgate-fault", "status=529")],
            &anthropic_msg(false, 3),
        )
        .await,
        request(h.addr, "GET", "/v1/models", &[], "").await,
        request(h.addr, "GET", "/v1/nope", &[], "").await,
    ];
    for r in &replies {
        for dim in ["requests", "tokens", "input-tokens", "output-tokens"] {
            for part in ["limit", "remaining", "reset"] {
                let name = format!("anthropic-ratelimit-{dim}-{part}");
                assert!(r.header(&name).is_some(), "{} lacks {name}", r.status);
            }
        }
        assert!(r.header("request-id").is_some(), "{} lacks request-id", r.status);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn every_client_error_has_the_api_envelope() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let (h, _) = start(api, "", 1).await;
        let chat = if api == Api::OpenAi { OPENAI } else { ANTHROPIC };
        let big = "x".repeat(40 * 1024);
        let long = [("x-padding", big.as_str())];
        let cases: Vec<(u16, Reply)> = vec![
            (404, request(h.addr, "GET", "/v1/nope", &[], "").await),
            (404, request(h.addr, "POST", "/v2/chat", &[], "{}").await),
            (405, request(h.addr, "GET", chat, &[], "").await),
            (400, request(h.addr, "POST", chat, &[], "{not json").await),
            (
                415,
                request(h.addr, "POST", chat, &[("content-type", "text/plain")], "{}").await,
            ),
            (431, request(h.addr, "POST", chat, &long, "{}").await),
            (431, request(h.addr, "GET", "/v1/models", &long, "").await),
        ];
        for (want, r) in cases {
            assert_eq!(r.status, want, "{api:?}: {}", r.text());
            let j = r.json();
            match api {
                Api::OpenAi => {
                    let e = &j["error"];
                    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
                    assert_eq!(e["type"], "invalid_request_error", "{j}");
                    assert!(e.get("param").is_some() && e.get("code").is_some(), "{j}");
                    // an unknown URL is not an unknown model
                    assert!(e["code"].is_null(), "{want}: {j}");
                }
                Api::Anthropic => {
                    assert_eq!(j["type"], "error", "{j}");
                    assert!(
                        j["error"]["type"].is_string() && j["error"]["message"].is_string(),
                        "{j}"
                    );
                    assert!(j["request_id"].is_string(), "{j}");
                }
            }
            if want == 404 && api == Api::Anthropic {
                assert_eq!(j["error"]["type"], "not_found_error");
            }
        }
        // a body over the limit: 413 in the envelope, and the size is named
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = chaosgate::live::mock::MockConfig::new("small", api, Default::default(), 1);
        cfg.max_body_bytes = 100;
        let (h2, _) = chaosgate::live::mock::spawn(cfg, listener).await.unwrap();
        let r = request(h2.addr, "POST", chat, &[], &"x".repeat(500)).await;
        assert_eq!(r.status, 413);
        assert!(r.text().contains("100 bytes"), "{}", r.text());
        h2.shutdown().await;
        h.shutdown().await;
    }
}

#[tokio::test]
async fn forced_stream_fault_on_a_plain_request_is_refused_not_counted_as_a_stream_fault() {
    let (h, st) = start(Api::OpenAi, "", 1).await;
    let r = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "cut_after=3")],
        &openai_chat(false, 8),
    )
    .await;
    assert_eq!(r.status, 400);
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(m.contains("cut_after") && m.contains("not streamed"), "{m}");
    let r = request(
        h.addr,
        "POST",
        "/v1/embeddings",
        &[("x-chaosgate-fault", "no_terminal")],
        r#"{"model":"e","input":"a"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    // the same fault on a streamed request still cuts
    let s = request(
        h.addr,
        "POST",
        OPENAI,
        &[("x-chaosgate-fault", "cut_after=3")],
        &openai_chat(true, 8),
    )
    .await;
    assert!(!s.complete);
    let log = arrivals(h.addr).await;
    let verdicts: Vec<&str> = log.iter().map(|a| a["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["error:400", "error:400", "stream:cut"]);
    let m = &st.metrics;
    assert_eq!(
        m.requests[5].load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one stream fault, the streamed one"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn admin_errors_are_json_and_an_unnamed_phase_can_be_deleted() {
    let (h, st) = start(Api::OpenAi, "", 1).await;
    let big = format!(
        "{{\"errors\":[{{\"status\":503}}],\"description\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let r = request(h.addr, "POST", "/_chaosgate/phases", &[], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "chaosgate_admin_error");
    let r = request(h.addr, "DELETE", "/_chaosgate/phases/%FF", &[], "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "chaosgate_admin_error");
    let r = request(h.addr, "POST", "/_chaosgate/phases", &[], "{not").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "chaosgate_admin_error");
    for (method, path, want) in [("GET", "/_chaosgate/phases", 405), ("GET", "/_chaosgate/nope", 404)] {
        let r = request(h.addr, method, path, &[], "").await;
        assert_eq!(r.status, want, "{method} {path}");
        assert_eq!(r.json()["error"]["type"], "chaosgate_admin_error");
    }

    let r = request(
        h.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        r#"{"errors":[{"status":503}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let name = r.json()["name"].as_str().expect("a generated name").to_string();
    let r2 = request(
        h.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        r#"{"errors":[{"status":500}]}"#,
    )
    .await;
    let name2 = r2.json()["name"].as_str().unwrap().to_string();
    assert_ne!(name, name2);
    assert_eq!(
        request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2))
            .await
            .status,
        503
    );
    for n in [&name, &name2] {
        let d = request(h.addr, "DELETE", &format!("/_chaosgate/phases/{n}"), &[], "").await;
        assert_eq!(d.status, 200, "{}", d.text());
    }
    assert_eq!(
        request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2))
            .await
            .status,
        200
    );
    assert!(st.plan.lock().unwrap().status(0).is_empty());
    h.shutdown().await;
}

/// Sends `raw` on a fresh connection and reads until the peer closes or 10 s pass.
async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                // one response is enough: stop once its JSON body has closed
                let text = String::from_utf8_lossy(&got);
                if let Some(i) = text.find("\r\n\r\n") {
                    if text[i..].trim_end().ends_with('}') {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn unreadable_body_with_content_length_and_chunked_chunked_is_400_not_413() {
    // A valid ~150-byte body sent with both content-length and `transfer-encoding:
    // chunked, chunked`: the body is read as chunked and its framing is broken. It used
    // to be answered 413 "too large"; it is a 400 in the provider's envelope.
    for (api, path, body) in [
        (Api::OpenAi, OPENAI, openai_chat(false, 2)),
        (Api::Anthropic, ANTHROPIC, anthropic_msg(false, 2)),
    ] {
        let (h, _) = start(api, "", 1).await;
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\ncontent-length: {}\r\ntransfer-encoding: chunked, chunked\r\n\r\n{body}",
            body.len()
        );
        let got = raw_exchange(h.addr, raw.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 400"), "{api:?}: {got}");
        let json: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap_or("")).expect(&got);
        assert_eq!(json["error"]["type"], "invalid_request_error", "{got}");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Could not read the request body"));
        h.shutdown().await;
    }
}

#[tokio::test]
async fn request_body_that_never_arrives_gets_a_408() {
    // Headers, then no body: the read is bounded by `body_timeout` and answered 408.
    let profile = chaosgate::fault::Profile::from_toml("", "test.toml").unwrap();
    let mut config = chaosgate::live::mock::MockConfig::new("test", Api::OpenAi, profile, 1);
    config.body_timeout = Duration::from_millis(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (h, _) = chaosgate::live::mock::spawn(config, listener).await.unwrap();
    let raw = format!(
        "POST {OPENAI} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\""
    );
    let got = raw_exchange(h.addr, raw.as_bytes()).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    let json: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap_or("")).expect(&got);
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not arrive within 0.2 s"),
        "{got}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn plain_reply_has_content_length_equal_to_the_bytes_received() {
    // Plain JSON replies go out with content-length (as the providers send them), computed
    // from the template without building the body, not chunked.
    let (h, _) = start(Api::OpenAi, "", 1).await;
    for (n, max_tokens) in [(1, 5), (3, 7), (1, 128_000), (4, 50_000)] {
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"max_tokens":{max_tokens},"n":{n}}}"#
        );
        let r = request(h.addr, "POST", OPENAI, &[], &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.complete);
        assert_eq!(r.header("transfer-encoding"), None, "n={n}");
        let declared: usize = r.header("content-length").expect("content-length").parse().unwrap();
        assert_eq!(declared, r.body.len(), "n={n} max_tokens={max_tokens}");
        assert_eq!(r.json()["choices"].as_array().unwrap().len(), n);
    }
    h.shutdown().await;
    let (h, _) = start(Api::Anthropic, "", 1).await;
    for max_tokens in [1, 9, 128_000] {
        let body = format!(
            r#"{{"model":"claude-haiku-4-5","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let r = request(h.addr, "POST", ANTHROPIC, &[], &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let declared: usize = r.header("content-length").expect("content-length").parse().unwrap();
        assert_eq!(declared, r.body.len(), "max_tokens={max_tokens}");
        assert_eq!(r.json()["type"], "message");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn header_lines_over_100_get_a_json_431_not_hypers_empty_one() {
    // hyper refuses more than 100 header lines by default with an empty 431; the mock
    // raises hyper's limit and answers 101 lines itself, in the provider's envelope.
    let (h, _) = start(Api::OpenAi, "", 1).await;
    let extra: Vec<(String, String)> = (0..101).map(|i| (format!("x-fuzz-{i}"), "1".to_string())).collect();
    let headers: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = request(h.addr, "POST", OPENAI, &headers, &openai_chat(false, 2)).await;
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the limit is 100 lines"));
    h.shutdown().await;
}

#[tokio::test]
async fn admin_phase_named_empty_string_gets_a_name_that_can_be_deleted() {
    let (h, st) = start(Api::OpenAi, "", 1).await;
    let r = request(
        h.addr,
        "POST",
        "/_chaosgate/phases",
        &[],
        r#"{"name":"","errors":[{"status":503}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let name = r.json()["name"].as_str().unwrap().to_string();
    assert!(!name.is_empty());
    let d = request(h.addr, "DELETE", &format!("/_chaosgate/phases/{name}"), &[], "").await;
    assert_eq!(d.status, 200, "{}", d.text());
    assert!(st.plan.lock().unwrap().status(0).is_empty());
    h.shutdown().await;
}

/// `envelope = "bare"`: the provider's 429 envelope with none of its headers (no
/// retry-after, no rate-limit headers: Vertex AI's 429s, agentgateway #1500); `html`: the
/// page nginx answers in front of a provider it cannot reach (Bifrost #4005), still marked.
#[tokio::test]
async fn bare_and_html_envelopes_on_the_wire() {
    let p = "[baseline]\nrate_limit = { requests_per_min = 6000 }\n[[phase]]\nerrors = [{ status = 429, envelope = \"bare\" }]\n";
    let (h, _) = start(Api::OpenAi, p, 1).await;
    let r = request(h.addr, "POST", OPENAI, &[], &openai_chat(false, 2)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    for k in [
        "retry-after",
        "retry-after-ms",
        "x-ratelimit-remaining-requests",
        "x-should-retry",
    ] {
        assert!(r.header(k).is_none(), "{k}");
    }
    h.shutdown().await;
    let p = "[[phase]]\napplies_to = \"completions\"\nerrors = [{ status = 502, envelope = \"html\" }]\n";
    let (h, _) = start(Api::Anthropic, p, 1).await;
    let r = request(h.addr, "POST", ANTHROPIC, &[], &anthropic_msg(false, 3)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("<title>502 Bad Gateway</title>"), "{text}");
    assert!(r.header("request-id").is_none() && r.header("anthropic-ratelimit-requests-limit").is_none());
    assert!(chaosgate::provider::mark::find(&r.body).is_some(), "{text}");
    h.shutdown().await;
}
