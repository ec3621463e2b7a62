use super::*;
use crate::provider::Api;
use crate::time::{Dur, NS_PER_S};
use crate::traffic::{ArrivalKind, KindSpec, TrafficConfig};
use std::path::Path;

fn input(primary: &str, interval_s: u64, timeout_s: u64, rate: f64, secs: u64, seed: u64) -> SimInput {
    let gw: GatewayConfig = toml::from_str(&format!(
        r#"
targets = [{{ name = "primary", url = "http://127.0.0.1:1" }}, {{ name = "fallback", url = "http://127.0.0.1:2" }}]
health_check = {{ interval = "{interval_s}s", timeout = "{timeout_s}s", unhealthy_threshold = 1, healthy_threshold = 1 }}
fallback_on_failure = false
"#
    ))
    .unwrap();
    let traffic = TrafficConfig {
        rate: Some(rate),
        duration: Some(Dur::from_secs(secs)),
        arrival: ArrivalKind::Constant,
        ..TrafficConfig::default()
    };
    let mut k = KindSpec::chat("chat", false);
    k.max_tokens = crate::traffic::Tokens::Fixed(8);
    SimInput {
        providers: vec![
            SimProvider {
                name: "primary".into(),
                profile: Profile::from_toml(primary, "p.toml").unwrap(),
                api: Api::OpenAi,
            },
            SimProvider {
                name: "fallback".into(),
                profile: Profile::default(),
                api: Api::OpenAi,
            },
        ],
        gateway: gw,
        source: traffic.source(Path::new(".")).unwrap(),
        mix: Mix::new(vec![k], crate::provider::Api::OpenAi).unwrap(),
        seed,
        bucket: 100 * crate::time::NS_PER_MS,
        slo: crate::analysis::SloThresholds::default(),
        stop: None,
        trace_ends: true,
    }
}

fn onset_profile(onset_ns: u64, fault: &str) -> String {
    format!("[[phase]]\nname = \"outage\"\nstart = \"{}ns\"\n{fault}\n", onset_ns)
}

const HANG: &str = "connection = [{ kind = \"hang\" }]";
const FAST_502: &str = "errors = [{ status = 502 }]";

fn detection(out: &SimOutput, onset: u64) -> f64 {
    out.events
        .iter()
        .find(|e| e.target == "primary" && e.kind == crate::gateway::EventKind::Ejected)
        .map(|e| (e.t_ns - onset) as f64 / NS_PER_S as f64)
        .expect("ejected")
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    (min, v.iter().sum::<f64>() / v.len() as f64, max)
}

#[test]
fn same_seed_same_output() {
    let mk = || run(input(&onset_profile(5 * NS_PER_S, FAST_502), 2, 1, 50.0, 20, 9));
    let (a, b) = (mk(), mk());
    let ra = serde_json::to_string(&a.aggregator.report(a.scheduled, 0, a.duration)).unwrap();
    let rb = serde_json::to_string(&b.aggregator.report(b.scheduled, 0, b.duration)).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(a.events, b.events);
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.scheduled, 1000);
}

/// SEMANTICS.md §1: hung probes, I = 60 s, T = 30 s, N = 1 → D in [30, 90], mean 60.
#[test]
fn hung_detection_matches_the_closed_form_over_1000_onset_phases() {
    let i = 60 * NS_PER_S;
    let d: Vec<f64> = (0..1000u64)
        .map(|k| {
            let onset = 100 * NS_PER_S + k * i / 1000 + 1;
            let out = run(input(&onset_profile(onset, HANG), 60, 30, 0.5, 300, k));
            detection(&out, onset)
        })
        .collect();
    let (min, mean, max) = stats(&d);
    assert!((min - 30.0).abs() / 30.0 < 0.01, "min {min}");
    assert!((mean - 60.0).abs() / 60.0 < 0.01, "mean {mean}");
    assert!((max - 90.0).abs() / 90.0 < 0.01, "max {max}");
}

/// Fast failure (502 on probes too), I = 5 s: D in [0, 5], mean 2.5.
#[test]
fn fast_fail_detection_matches_the_closed_form_over_1000_onset_phases() {
    let i = 5 * NS_PER_S;
    let d: Vec<f64> = (0..1000u64)
        .map(|k| {
            let onset = 20 * NS_PER_S + k * i / 1000 + 1;
            let out = run(input(&onset_profile(onset, FAST_502), 5, 30, 0.5, 40, k));
            detection(&out, onset)
        })
        .collect();
    let (min, mean, max) = stats(&d);
    assert!(min < 0.05 && (max - 5.0).abs() / 5.0 < 0.01, "min {min} max {max}");
    assert!((mean - 2.5).abs() / 2.5 < 0.01, "mean {mean}");
}

/// The article at 155 req/s: I = 60 s, T = 30 s, hung → ≈ 9,300 failed on average, ≈ 13,950
/// at worst; I = 5 s, fast fail → ≈ 390 / ≈ 775.
#[test]
fn the_articles_failed_request_counts() {
    let failed = |primary: String, i: u64, t: u64, secs: u64, seed: u64| {
        let out = run(input(&primary, i, t, 155.0, secs, seed));
        out.aggregator.overall().failed as f64
    };
    let phases = 24u64;
    let hung: Vec<f64> = (0..phases)
        .map(|k| {
            let onset = 10 * NS_PER_S + k * 60 * NS_PER_S / phases + 1;
            failed(onset_profile(onset, HANG), 60, 30, 170, k)
        })
        .collect();
    let (_, mean, max) = stats(&hung);
    // mean over evenly spaced phases of 155·(30 + U): 155·(30 + 30·(1 − 1/24)) = 9,106
    assert!((mean - 9_300.0).abs() / 9_300.0 < 0.03, "hung mean {mean}");
    assert!((max - 13_950.0).abs() / 13_950.0 < 0.03, "hung max {max}");
    let fast: Vec<f64> = (0..100u64)
        .map(|k| {
            let onset = 10 * NS_PER_S + k * 5 * NS_PER_S / 100 + 1;
            failed(onset_profile(onset, FAST_502), 5, 30, 20, k)
        })
        .collect();
    let (_, mean, max) = stats(&fast);
    assert!((mean - 390.0).abs() / 390.0 < 0.03, "fast mean {mean}");
    assert!((max - 775.0).abs() / 775.0 < 0.03, "fast max {max}");
}

fn stream_input(primary: &str, gateway_extra: &str) -> SimInput {
    let mut i = input(primary, 600, 1, 10.0, 10, 4);
    let extra: toml::Table = toml::from_str(gateway_extra).unwrap();
    let mut gw = toml::Table::try_from(&i.gateway).unwrap();
    gw.extend(extra);
    i.gateway = toml::Value::Table(gw).try_into().unwrap();
    let mut k = KindSpec::chat("chat", true);
    k.max_tokens = crate::traffic::Tokens::Fixed(8);
    i.mix = Mix::new(vec![k], crate::provider::Api::OpenAi).unwrap();
    i
}

/// As the live gateway: a stream that stalls after its first chunk ends with an in-band
/// error after `stall_timeout` of silence (no failover: bytes reached the client); one
/// that never sends its first chunk times out at `ttft_timeout` and falls back.
#[test]
fn stalls_after_the_first_byte_are_client_failures_before_it_fall_back() {
    let stall = "[baseline]\ntokens_per_s = { mean = 100 }\nstream = [{ kind = \"silent_stall\", after_tokens = 2 }]\n";
    let out = run(stream_input(
        stall,
        "stall_timeout = \"2s\"\nrequest_timeout = \"30s\"\nfallback_on_failure = true\n",
    ));
    let r = out.aggregator.report(out.scheduled, 0, out.duration);
    assert_eq!(r.requests.failed, 100, "{r:?}");
    assert_eq!(r.failures_by_kind.get("stream_error"), Some(&100));
    // second token at 10 ms, then 2 s of silence
    assert!((r.latency_ms.p50 - 2010.0).abs() < 30.0, "{}", r.latency_ms.p50);
    let hang = "[baseline]\nconnection = [{ kind = \"hang\" }]\n";
    let out = run(stream_input(
        hang,
        "ttft_timeout = \"1500ms\"\nrequest_timeout = \"30s\"\nfallback_on_failure = true\n",
    ));
    let r = out.aggregator.report(out.scheduled, 0, out.duration);
    assert_eq!(r.requests.failed, 0, "fell back to the healthy fallback: {r:?}");
    assert!((r.latency_ms.p50 - 1500.0).abs() < 20.0, "{}", r.latency_ms.p50);
    assert_eq!(r.providers.get("fallback").map(|g| g.ok), Some(100));
}

proptest::proptest! {
    /// The calendar queue pops exactly in `(time, sequence)` order, as one binary heap
    /// holding everything would: pushes at now, within a slot, across the wheel and
    /// beyond it (the far heap), and of the side event, interleaved with pops; and it
    /// knows when nothing is due by now.
    #[test]
    fn queue_pops_in_time_then_schedule_order(
        ops in proptest::collection::vec((0u8..6, 0u64..4, 0u64..1_000_000), 1..400),
    ) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut q = Queue::new();
        let mut want: BinaryHeap<Reverse<(Nanos, u32)>> = BinaryHeap::new();
        let mut now: Nanos = 0;
        let mut id = 0u32;
        let check_pop = |q: &mut Queue, want: &mut BinaryHeap<Reverse<(Nanos, u32)>>, now: &mut Nanos| {
            let got = q.pop().map(|(t, ev)| match ev {
                Ev::Done { r } => (t, r),
                _ => unreachable!(),
            });
            let exp = want.pop().map(|Reverse(x)| x);
            assert_eq!(got, exp);
            if let Some((t, _)) = got {
                *now = t;
            }
            assert_eq!(
                q.nothing_due_by(*now),
                want.peek().is_none_or(|Reverse((t, _))| *t > *now)
            );
        };
        for (op, scale, x) in ops {
            if op < 2 {
                check_pop(&mut q, &mut want, &mut now);
            } else {
                // same time, same slot, on the wheel, far beyond it
                let dt = match scale {
                    0 => 0,
                    1 => x % (1 << SLOT_BITS),
                    2 => x * 10_000,
                    _ => x * 100_000_000,
                };
                if op == 5 && q.side.is_none() {
                    q.push_side(now + dt, Ev::Done { r: id });
                } else {
                    q.push(now + dt, Ev::Done { r: id });
                }
                want.push(Reverse((now + dt, id)));
                id += 1;
            }
        }
        while !want.is_empty() {
            check_pop(&mut q, &mut want, &mut now);
        }
        proptest::prop_assert!(q.pop().is_none());
    }
}
