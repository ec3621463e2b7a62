//! Mock overhead benchmark: `cargo bench --bench mock_overhead`
//!
//! Measures, in one run on loopback, the request rate of the mock provider with a
//! pass-through profile against a bare axum handler that returns the same bytes, for a
//! small JSON completion and for a streamed completion written one SSE event per token.
//! Prints each rate and the ratio mock / bare (target ≥ 0.85). Rounds alternate bare and
//! mock so drift on a shared machine hits both alike. Not a timed test: nothing asserts.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use chaosgate::fault::Profile;
use chaosgate::live::mock::{self, MockConfig};
use chaosgate::provider::{filler_token, openai, Api};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKENS: u32 = 16;
const CONCURRENCY: usize = 16;
const ROUND: Duration = Duration::from_millis(1500);
const ROUNDS: usize = 4;

fn chat_body(stream: bool) -> Bytes {
    let mut v = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": TOKENS,
        "stream": stream,
    });
    if stream {
        v["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(v.to_string())
}

/// The bare handler: what the simplest OpenAI-compatible mock must do — read the JSON
/// request (axum's `Json` extractor) and answer the same bytes the mock would.
fn bare_router() -> Router {
    async fn handler(axum::Json(req): axum::Json<serde_json::Value>) -> axum::response::Response {
        let stream = req["stream"].as_bool().unwrap_or(false);
        let text = chaosgate::provider::filler_text(TOKENS);
        if !stream {
            let b = openai::completion_body("chatcmpl-bare", "gpt-4o", 1_700_000_000, &text, 6, TOKENS, "length");
            return axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(b))
                .unwrap();
        }
        let mut items: Vec<Bytes> = vec![Bytes::from(openai::chunk_role("c", "gpt-4o", 1))];
        for i in 0..TOKENS {
            items.push(Bytes::from(openai::chunk_content("c", "gpt-4o", 1, filler_token(i))));
        }
        items.push(Bytes::from(openai::chunk_finish("c", "gpt-4o", 1, "length")));
        items.push(Bytes::from(openai::chunk_usage("c", "gpt-4o", 1, 6, TOKENS)));
        items.push(Bytes::from_static(openai::DONE.as_bytes()));
        let s = futures_util::stream::iter(items.into_iter().map(Ok::<_, std::io::Error>));
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(s))
            .unwrap()
    }
    Router::new().route("/v1/chat/completions", post(handler))
}

async fn load(url: String, body: Bytes, dur: Duration) -> f64 {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(conn);
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, body, done) = (client.clone(), url.clone(), body.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while t0.elapsed() < dur {
                let req = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let resp = client.request(req).await.expect("request");
                assert_eq!(resp.status(), 200);
                let _ = resp.into_body().collect().await.expect("body");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use axum::serve::ListenerExt;
        let bare_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_addr = bare_l.local_addr().unwrap();
        let bare_l = bare_l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(bare_l, bare_router()).await.unwrap() });
        let mock_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mock_h, _) = mock::spawn(MockConfig::new("bench", Api::OpenAi, Profile::default(), 1), mock_l).await.unwrap();
        let bare_url = format!("http://{bare_addr}/v1/chat/completions");
        let mock_url = format!("http://{}/v1/chat/completions", mock_h.addr);
        println!("mock overhead: {CONCURRENCY} connections, {ROUNDS} alternating rounds of {ROUND:?}, {TOKENS} tokens");
        for (label, stream) in [("small JSON", false), ("SSE, one write per token", true)] {
            let body = chat_body(stream);
            // warm-up
            load(bare_url.clone(), body.clone(), Duration::from_millis(300)).await;
            load(mock_url.clone(), body.clone(), Duration::from_millis(300)).await;
            let (mut bare, mut mock) = (0.0, 0.0);
            for _ in 0..ROUNDS {
                bare += load(bare_url.clone(), body.clone(), ROUND).await;
                mock += load(mock_url.clone(), body.clone(), ROUND).await;
            }
            bare /= ROUNDS as f64;
            mock /= ROUNDS as f64;
            println!(
                "{label:<26} bare axum {bare:>9.0} req/s   chaosgate mock {mock:>9.0} req/s   ratio {:.3} (target ≥ 0.85)",
                mock / bare
            );
        }
    });
}
