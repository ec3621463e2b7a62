//! Property tests: arbitrary bodies to each endpoint never panic and always get a
//! provider-shaped 4xx; the fault plan is deterministic for any profile knobs.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use axum::body::Body;
use axum::http::Request;
use chaosgate::fault::Profile;
use chaosgate::live::mock::{router, MockConfig, MockState};
use chaosgate::provider::Api;
use proptest::prelude::*;
use tower::ServiceExt;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Bodies that are almost requests: random JSON-ish text and mutated real requests.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let real = prop_oneof![
        Just(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"#.to_string()),
        Just(r#"{"model":"claude","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}"#.to_string()),
        Just(r#"{"model":"text-embedding-3-small","input":"hi"}"#.to_string()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,120}".prop_map(String::into_bytes),
        (real, any::<usize>(), any::<u8>()).prop_map(|(s, at, b)| {
            let mut v = s.into_bytes();
            let i = at % v.len();
            v[i] = b;
            v
        }),
        (any::<bool>(), any::<i64>(), "[a-z]{0,8}").prop_map(|(stream, n, role)| {
            format!(
                r#"{{"model":"m","max_tokens":{n},"stream":{stream},"messages":[{{"role":"{role}","content":{n}}}]}}"#
            )
            .into_bytes()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_body_gets_a_provider_shaped_answer(body in bodies(), api_anthropic in any::<bool>(), route in 0usize..3) {
        let api = if api_anthropic { Api::Anthropic } else { Api::OpenAi };
        let path = match (api, route) {
            (Api::Anthropic, _) => "/v1/messages",
            (_, 0) | (_, 1) => "/v1/chat/completions",
            _ => "/v1/embeddings",
        };
        let rt = rt();
        let (status, bytes) = rt.block_on(async {
            let state = MockState::new(MockConfig::new("p", api, Profile::default(), 1));
            let app = router(state);
            let req = Request::post(path).header("content-type", "application/json").body(Body::from(body.clone())).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
            (status, bytes)
        });
        if status != 200 {
            prop_assert!((400..500).contains(&status), "status {status}");
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("error body is JSON");
            match api {
                Api::OpenAi => prop_assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{v}"),
                Api::Anthropic => prop_assert!(v["type"] == "error" && v["error"]["type"].is_string(), "{v}"),
            }
        }
    }

    /// Output limits: `max_tokens`/`n` beyond the providers' bounds get a 400 naming the
    /// field and the value; within them the body holds exactly n × max_tokens tokens.
    #[test]
    fn output_limits_are_enforced_and_honoured(
        max in prop_oneof![1u64..40, 128_001u64..u64::MAX],
        n in prop_oneof![1u64..4, 129u64..100_000],
        stream in any::<bool>(),
        anthropic in any::<bool>(),
    ) {
        let api = if anthropic { Api::Anthropic } else { Api::OpenAi };
        let (path, body) = match api {
            Api::OpenAi => ("/v1/chat/completions", format!(
                r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"max_tokens":{max},"n":{n},"stream":{stream}}}"#
            )),
            Api::Anthropic => ("/v1/messages", format!(
                r#"{{"model":"claude","max_tokens":{max},"messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#
            )),
        };
        let rt = rt();
        let (status, bytes) = rt.block_on(async {
            let app = router(MockState::new(MockConfig::new("p", api, Profile::default(), 1)));
            let req = Request::post(path).header("content-type", "application/json").body(Body::from(body)).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            (status, axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap())
        });
        let too_many_tokens = max > 128_000;
        let too_many_choices = api == Api::OpenAi && n > 128;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if too_many_tokens || too_many_choices {
            prop_assert_eq!(status, 400, "{}", text);
            let shown = if too_many_tokens { max } else { n };
            prop_assert!(text.contains(&shown.to_string()), "names the value: {}", text);
        } else {
            prop_assert_eq!(status, 200, "{}", text);
            let choices = if api == Api::OpenAi { n } else { 1 };
            let words = if stream {
                let key = if api == Api::OpenAi { "\"content\":\" " } else { "\"text_delta\",\"text\":\" " };
                text.matches(key).count() as u64
            } else {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                match api {
                    Api::OpenAi => v["choices"].as_array().unwrap().iter()
                        .map(|c| c["message"]["content"].as_str().unwrap().split_whitespace().count() as u64).sum(),
                    Api::Anthropic => v["content"][0]["text"].as_str().unwrap().split_whitespace().count() as u64,
                }
            };
            prop_assert_eq!(words, max * choices);
        }
    }

    #[test]
    fn same_seed_same_verdicts(seed in any::<u64>(), p in 0.0f64..1.0, cut in 0u32..10, gap_ms in 1u64..500) {
        let src = format!(
            "[baseline]\nttft = {{ kind = \"lognormal\", p50 = \"200ms\", p99 = \"2s\" }}\nerrors = [{{ status = 503, probability = {p} }}]\nstream = [{{ kind = \"cut\", probability = {p}, after_tokens = {cut} }}]\n[[phase]]\nstart = \"1s\"\nrandom = {{ mtbf = \"2s\", mttr = \"1s\" }}\nconnection = [{{ kind = \"reset\" }}]\n"
        );
        let profile = Profile::from_toml(&src, "p.toml").unwrap();
        let run = || {
            let mut plan = chaosgate::fault::Plan::new(&profile, seed, "provider/x");
            (0..200u64)
                .map(|i| {
                    let facts = chaosgate::fault::RequestFacts {
                        endpoint: chaosgate::fault::Endpoint::Chat,
                        stream: i % 3 == 0,
                        input_tokens: 5,
                        max_tokens: Some(20),
                    };
                    plan.decide(i * gap_ms * 1_000_000, &facts, None)
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }
}
