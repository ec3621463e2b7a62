//! A bare axum target for load benchmarks: answers every chat completion with the same
//! small JSON, nothing else.
//!   cargo run --release --example bare_target -- 127.0.0.1:9400
//! Used by scripts/bench-load (chaosgate load vs wrk against the same target).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use axum::routing::post;
use axum::Router;

#[tokio::main]
async fn main() {
    use axum::serve::ListenerExt;
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9400".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_target: cannot listen on {addr}: {e}");
            std::process::exit(2);
        }
    };
    let body = chaosgate::provider::openai::completion_body("chatcmpl-bare", "gpt-4o", 0, " ok", 5, 1, "stop");
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    println!("bare_target listening on http://{addr}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("bare_target: {e}");
        std::process::exit(2);
    }
}
