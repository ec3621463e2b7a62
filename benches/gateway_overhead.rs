//! Gateway overhead benchmark: `cargo bench --bench gateway_overhead`
//!
//! The latency a request sees through the reference gateway minus the latency straight to
//! the same pass-through mock, in one run on loopback, sequential requests on one
//! keep-alive connection (so queueing does not blur it), plain and streamed. Prints the
//! added p50 and p99 (targets: p50 ≤ 150 µs, p99 ≤ 1 ms). Not a timed test.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use bytes::Bytes;
use chaosgate::fault::Profile;
use chaosgate::live::mock::{self, MockConfig};
use chaosgate::live::proxy as server;
use chaosgate::live::wiring::ProxyConfig;
use chaosgate::provider::Api;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Instant;

const N: usize = 4000;

async fn measure(client: &Client<HttpConnector, Full<Bytes>>, url: &str, body: &Bytes) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 0..N + 200 {
        let req = hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let t = Instant::now();
        let resp = client.request(req).await.expect("request");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await.expect("body");
        if i >= 200 {
            h.record(t.elapsed().as_nanos() as u64).unwrap();
        }
    }
    h
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (m, _) = mock::spawn(MockConfig::new("mock", Api::OpenAi, Profile::default(), 1), l).await.unwrap();
        let cfg = ProxyConfig::from_toml_str(&format!("targets = [{{ name = \"mock\", url = \"http://{}\" }}]", m.addr)).unwrap();
        let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let g = server::spawn(cfg, gl, 1, None).await.unwrap();
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(conn);
        println!("gateway overhead: {N} sequential requests each way, one keep-alive connection, loopback");
        for (label, stream) in [("plain", false), ("streamed (16 tokens)", true)] {
            let body = Bytes::from(format!(
                r#"{{"model":"gpt-4o","max_tokens":16,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ));
            let direct = measure(&client, &format!("http://{}/v1/chat/completions", m.addr), &body).await;
            let via = measure(&client, &format!("http://{}/v1/chat/completions", g.server.addr), &body).await;
            let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{label:<22} direct p50 {:>7.1} µs p99 {:>7.1} µs | via gateway p50 {:>7.1} µs p99 {:>7.1} µs | added p50 {:>6.1} µs (target ≤ 150), p99 {:>6.1} µs (target ≤ 1000)",
                us(&direct, 0.5),
                us(&direct, 0.99),
                us(&via, 0.5),
                us(&via, 0.99),
                us(&via, 0.5) - us(&direct, 0.5),
                us(&via, 0.99) - us(&direct, 0.99)
            );
        }
        g.shutdown().await;
        m.shutdown().await;
    });
}
