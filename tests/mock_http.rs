//! Each fault kind observed over real HTTP on loopback: status, body shape, headers, cut
//! position, timing within tolerance — on fresh and reused keep-alive connections.

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
    let mut cfg = chaosgate::mock::MockConfig::new("small", Api::Anthropic, Default::default(), 1);
    cfg.max_body_bytes = 100;
    let (h, _) = chaosgate::mock::spawn(cfg, listener).await.unwrap();
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
    let mut cfg = chaosgate::mock::MockConfig::new("p", Api::OpenAi, profile, 1);
    cfg.probe = chaosgate::mock::probe::ProbeMatcher::none();
    cfg.probe.add_header_rule("user-agent=my-checker/1").unwrap();
    cfg.probe.add_prompt("ping");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (h, _) = chaosgate::mock::spawn(cfg, listener).await.unwrap();
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
