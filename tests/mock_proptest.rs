//! Property tests: arbitrary bodies to each endpoint never panic and always get a
//! provider-shaped 4xx; the fault plan is deterministic for any profile knobs.

use axum::body::Body;
use axum::http::Request;
use chaosgate::fault::Profile;
use chaosgate::mock::{router, MockConfig, MockState};
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
