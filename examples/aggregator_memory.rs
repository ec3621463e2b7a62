//! Memory of the analysis for a one-hour run at 1,000 req/s (3.6 M requests), fed
//! synthetic records in end-time order as the live client would:
//!   cargo run --release --example aggregator_memory
//! Prints the peak RSS (VmHWM) before and after; the target is < 150 MB.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::analysis::{Aggregator, SloThresholds};
use chaosgate::record::{Outcome, RequestRecord};
use chaosgate::time::{NS_PER_MS, NS_PER_S};

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let before = vm_hwm_mb();
    let kinds = vec![
        "support-chat".to_string(),
        "summaries".to_string(),
        "embeddings".to_string(),
    ];
    let mut agg = Aggregator::new(NS_PER_S, kinds, SloThresholds::default());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let itl = vec![20 * NS_PER_MS; 50];
    let n = 3_600_000u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let intended = i * NS_PER_S / 1000;
        let lat = 50 * NS_PER_MS + x % (4 * NS_PER_S);
        let outcome = if x % 100 == 0 { Outcome::Http(502) } else { Outcome::Ok };
        let stream = i % 3 == 0;
        let rec = RequestRecord {
            id: i,
            kind: (i % 3) as u32,
            intended,
            sent: Some(intended + 100_000),
            first_byte: Some(intended + 200 * NS_PER_MS),
            first_token: stream.then_some(intended + 300 * NS_PER_MS),
            end: intended + lat,
            outcome,
            output_tokens: 51,
            input_tokens: 400,
            provider: Some(if x % 2 == 0 { "primary" } else { "fallback" }.to_string()),
            stream,
        };
        agg.add(&rec, if stream { &itl } else { &[] }, i % 3 == 2);
    }
    let r = agg.report(n, 0, 3600 * NS_PER_S);
    println!(
        "aggregated {} requests over {} buckets; p99 {:.0} ms; peak RSS {:.1} MB (process start {:.1} MB; target < 150 MB)",
        r.requests.ok + r.requests.failed,
        r.timeline.t_s.len(),
        r.latency_ms.p99,
        vm_hwm_mb(),
        before
    );
}
