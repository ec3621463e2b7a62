use super::queue::{Ev, Queue, SLOT_BITS};
use super::*;
use crate::provider::Api;
use crate::time::{Dur, NS_PER_S};
use crate::traffic::{ArrivalKind, KindSpec, ThinkTime, TrafficConfig};
use std::path::Path;

/// Every simulation of these tests is checked under every invariant (as
/// `report::simulate_once_until` does in debug builds).
fn run(input: SimInput) -> SimOutput {
    let checked = input.clone();
    let out = super::run(input);
    invariants::assert_holds(&checked, &out);
    out
}

fn input(primary: &str, interval_s: u64, timeout_s: u64, rate: f64, secs: u64, seed: u64) -> SimInput {
    let gw: GatewayConfig = toml::from_str(&format!(
        r#"
targets = [{{ name = "primary" }}, {{ name = "fallback" }}]
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
        start_latency: false,
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

/// docs/semantics.md §1: hung probes, I = 60 s, T = 30 s, N = 1 → D in [30, 90], mean 60.
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
                if op == 5 && !q.has_side() {
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
/// A request slot takes two cache lines: the slots of requests in flight are touched at
/// random as they complete, and a third line per slot costs the simulator ≈ 10 % of its
/// speed (measured when the attempt rework first made it 256 bytes).
#[test]
fn a_request_slot_is_two_cache_lines() {
    assert_eq!(std::mem::size_of::<super::world::Req>(), 128);
}

mod invariant_checks {
    use super::super::invariants::{self, Horizon, Invariant, Violation};
    use super::*;
    use crate::gateway::{EventKind, GatewayEvent};

    /// A run that exercises every state change the invariants look at: a primary that
    /// answers 502 from 5 s to 15 s (probes too), health checks, an `article` breaker and
    /// retries with a small budget.
    fn featured(breaker: &str) -> (SimInput, SimOutput) {
        let mut i = input(
            "[[phase]]\nname = \"outage\"\nstart = \"5s\"\nduration = \"10s\"\nerrors = [{ status = 502 }]\n",
            1,
            1,
            50.0,
            30,
            7,
        );
        let extra: toml::Table = toml::from_str(&format!(
            r#"
health_check = {{ interval = "1s", timeout = "500ms", unhealthy_threshold = 3, healthy_threshold = 2 }}
breaker = {breaker}
retries = {{ attempts = 2, on_status = [502], min_per_s = 1, budget_ratio = 0.05 }}
fallback_on_failure = true
request_timeout = "2s"
"#
        ))
        .unwrap();
        let mut gw = toml::Table::try_from(&i.gateway).unwrap();
        gw.extend(extra);
        i.gateway = toml::Value::Table(gw).try_into().unwrap();
        let out = run(i.clone());
        (i, out)
    }

    const ARTICLE: &str =
        r#"{ kind = "article", failure_threshold = 3, recovery_timeout = "500ms", half_open_max_requests = 2 }"#;

    fn of(v: &[Violation], which: Invariant) -> Vec<&Violation> {
        v.iter().filter(|x| x.invariant == which).collect()
    }

    fn ev(t_ns: u64, target: &str, kind: EventKind) -> GatewayEvent {
        GatewayEvent {
            t_ns,
            target: target.into(),
            kind,
            replica: None,
        }
    }

    /// The invariants hold on a run that goes through every state change they check (so
    /// none of them holds vacuously there).
    #[test]
    fn a_featured_run_passes_every_invariant_and_exercises_them() {
        let (i, out) = featured(ARTICLE);
        assert_eq!(invariants::check(&i, &out), vec![]);
        for kind in [
            "retry",
            "ejected",
            "restored",
            "breaker_opened",
            "breaker_half_opened",
            "breaker_closed",
        ] {
            assert!(
                out.events
                    .iter()
                    .any(|e| serde_json::to_value(e).unwrap()["event"] == kind),
                "no {kind} event"
            );
        }
        let ends = out.ends.as_ref().unwrap();
        assert_eq!(ends.len() as u64, out.scheduled);
        assert!(ends.windows(2).all(|w| (w[0].end, w[0].id) < (w[1].end, w[1].id)));
    }

    #[test]
    fn ends_exactly_once_fails_on_a_request_ended_twice_or_never() {
        let (i, mut out) = featured(ARTICLE);
        let ends = out.ends.as_mut().unwrap();
        let twice = ends[10];
        ends.push(twice);
        let v = invariants::check(&i, &out);
        let e = of(&v, Invariant::EndsExactlyOnce);
        assert!(
            e.iter()
                .any(|x| x.request == Some(twice.id) && x.detail.contains("ended twice")),
            "{v:?}"
        );
        let ends = out.ends.as_mut().unwrap();
        ends.pop();
        let gone = ends.remove(3);
        let v = invariants::check(&i, &out);
        let e = of(&v, Invariant::EndsExactlyOnce);
        assert!(
            e.iter()
                .any(|x| x.detail.contains(&format!("first never ended: [{}]", gone.id))),
            "{v:?}"
        );
        out.ends = None;
        assert!(!of(&invariants::check(&i, &out), Invariant::EndsExactlyOnce).is_empty());
    }

    #[test]
    fn conservation_fails_when_a_scheduled_request_is_unaccounted_for() {
        let (i, mut out) = featured(ARTICLE);
        out.scheduled += 1;
        let v = invariants::check(&i, &out);
        assert!(
            of(&v, Invariant::Conservation)[0]
                .detail
                .starts_with("scheduled 1501 ≠ ok"),
            "{v:?}"
        );
        out.scheduled -= 1;
        out.in_flight_at_end = 1;
        let v = invariants::check(&i, &out);
        assert!(of(&v, Invariant::Conservation)
            .iter()
            .any(|x| x.detail.contains("in flight at the end of a run that was not stopped")));
    }

    #[test]
    fn breaker_transitions_fail_on_illegal_moves() {
        let (i, out) = featured(ARTICLE);
        // half-open straight from closed (the fallback's breaker never opened)
        let mut bad = out.events.clone();
        bad.push(ev(29 * NS_PER_S, "fallback", EventKind::BreakerHalfOpened));
        let v = invariants::breaker_transitions(&i.gateway, &bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].target.as_deref(), Some("fallback"));
        assert!(v[0].detail.contains("closed → half_opened"), "{}", v[0]);
        // opened for a wait the config does not give
        let bad = vec![ev(
            NS_PER_S,
            "primary",
            EventKind::BreakerOpened { until_ns: 3 * NS_PER_S },
        )];
        let v = invariants::breaker_transitions(&i.gateway, &bad);
        assert!(v[0].detail.contains("opened for 2000000000 ns"), "{v:?}");
        // half-open before the open period ends
        let bad = vec![
            ev(
                NS_PER_S,
                "primary",
                EventKind::BreakerOpened {
                    until_ns: NS_PER_S + NS_PER_S / 2,
                },
            ),
            ev(NS_PER_S + 1, "primary", EventKind::BreakerHalfOpened),
        ];
        assert!(invariants::breaker_transitions(&i.gateway, &bad)[0]
            .detail
            .contains("before the open period ended"));
        // a consecutive breaker never half-opens, and closes only from open
        let (c, _) = featured(r#"{ kind = "consecutive", failures = 3, base_ejection = "1s", max_ejection = "4s" }"#);
        let bad = vec![
            ev(NS_PER_S, "primary", EventKind::BreakerOpened { until_ns: 3 * NS_PER_S }),
            ev(3 * NS_PER_S, "primary", EventKind::BreakerHalfOpened),
        ];
        let v = invariants::breaker_transitions(&c.gateway, &bad);
        assert!(v[0].detail.contains("`consecutive`: open → half_opened"), "{v:?}");
        let v = invariants::breaker_transitions(&c.gateway, &[ev(1, "primary", EventKind::BreakerClosed)]);
        assert!(v[0].detail.contains("closed → closed"), "{v:?}");
        // no breaker configured: no breaker event at all
        let mut none = i.gateway.clone();
        none.breaker = None;
        assert!(!invariants::breaker_transitions(&none, &out.events).is_empty());
    }

    #[test]
    fn health_transitions_fail_on_a_restore_without_an_ejection() {
        let (i, out) = featured(ARTICLE);
        let t = 29 * NS_PER_S;
        let bad = vec![
            ev(t, "fallback", EventKind::ProbeResult { ok: true }),
            ev(t, "fallback", EventKind::Restored),
        ];
        let v = invariants::health_transitions(&i.gateway, &bad);
        assert!(
            v.iter().any(|x| x.detail == "restored without a prior ejection"),
            "{v:?}"
        );
        // ejected after one failure under `consecutive` rules with a threshold of 3, and
        // not right after a probe
        let bad = vec![
            ev(t, "primary", EventKind::ProbeResult { ok: false }),
            ev(t, "primary", EventKind::Ejected),
            ev(t + 1, "fallback", EventKind::Ejected),
        ];
        let v = invariants::health_transitions(&i.gateway, &bad);
        assert!(
            v[0].detail
                .contains("after 1 failed probes in a row; unhealthy_threshold is 3"),
            "{v:?}"
        );
        assert!(v
            .iter()
            .any(|x| x.target.as_deref() == Some("fallback") && x.detail.contains("not right after")));
        // two probes of one target closer than the interval: two in flight
        let bad = vec![
            ev(t, "primary", EventKind::ProbeResult { ok: true }),
            ev(t + 1, "primary", EventKind::ProbeResult { ok: true }),
        ];
        assert!(invariants::health_transitions(&i.gateway, &bad)[0]
            .detail
            .contains("shortest wait"));
        // the real run passes
        assert_eq!(invariants::health_transitions(&i.gateway, &out.events), vec![]);
    }

    #[test]
    fn retry_bounds_fail_past_the_attempts_or_the_budget() {
        let (i, mut out) = featured(ARTICLE);
        let mut bad = out.events.clone();
        bad.push(ev(29 * NS_PER_S, "primary", EventKind::Retry { attempt: 3 }));
        std::mem::swap(&mut out.events, &mut bad);
        let v = invariants::retry_bounds(&i.gateway, &out);
        assert!(v[0].detail.contains("retry attempt 3; retries.attempts is 2"), "{v:?}");
        // the budget: 1 token + 1/s + 0.05 per arrival; 10 retries in the first 100 ms
        // (5 arrivals at 50/s) are more than it holds
        out.events = (0..10)
            .map(|k| ev(k * 10_000_000, "primary", EventKind::Retry { attempt: 1 }))
            .collect();
        let v = invariants::retry_bounds(&i.gateway, &out);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("retry #2 by 0.010000000 s"), "{}", v[0]);
        std::mem::swap(&mut out.events, &mut bad);
        // a request that ended after more retries on its target than configured
        out.ends.as_mut().unwrap()[0].retries_on_last = 3;
        let v = invariants::retry_bounds(&i.gateway, &out);
        assert!(v[0].detail.contains("3 retries on its last target"), "{v:?}");
    }

    #[test]
    fn horizon_fails_on_anything_after_it() {
        let (i, mut out) = featured(ARTICLE);
        let h = Horizon::of(&i);
        // 30 s of traffic; 2 targets × (3 attempts × 2 s timeout + 2 waits × 5 s cap); a
        // probe may start 2 s after the traffic and take 0.5 s
        assert_eq!(h.traffic_end, 30 * NS_PER_S);
        assert_eq!(h.request_work, 2 * (3 * 2 + 2 * 5) * NS_PER_S);
        assert_eq!(h.probe_tail, 2 * NS_PER_S + NS_PER_S / 2);
        assert_eq!(h.end(), 62 * NS_PER_S);
        out.events
            .push(ev(h.end() + 1, "primary", EventKind::ProbeResult { ok: true }));
        out.faults[0].end = h.end() + 1;
        let e = &mut out.ends.as_mut().unwrap()[0];
        e.end = e.intended + h.request_work + 1;
        let v = invariants::horizon(&h, &out);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].detail.starts_with("gateway event ProbeResult"));
        assert!(v[1].detail.contains("more than the gateway's work bound"));
        assert!(v[2].detail.contains("reaches past the horizon"));
    }

    #[test]
    fn time_order_fails_on_an_event_out_of_order() {
        let (_, out) = featured(ARTICLE);
        let mut bad = out.events.clone();
        let n = bad.len();
        bad.swap(0, n - 1);
        assert!(!invariants::time_order(&bad).is_empty());
        assert_eq!(invariants::time_order(&out.events), vec![]);
    }

    #[test]
    fn rerun_identical_fails_on_a_differing_report() {
        assert_eq!(invariants::rerun_identical("{\"ok\": 1}", "{\"ok\": 1}"), vec![]);
        let v = invariants::rerun_identical("{\"ok\": 1}", "{\"ok\": 2}");
        assert_eq!(v[0].invariant, Invariant::RerunIdentical);
        assert!(v[0].detail.contains("differs at byte 7"), "{}", v[0]);
    }

    #[test]
    fn violations_are_capped_per_invariant() {
        let (i, _) = featured(ARTICLE);
        let bad: Vec<GatewayEvent> = (0..50).map(|k| ev(k, "primary", EventKind::BreakerClosed)).collect();
        let v = invariants::breaker_transitions(&i.gateway, &bad);
        assert_eq!(v.len(), invariants::MAX_VIOLATIONS_PER_INVARIANT + 1);
        assert_eq!(v.last().unwrap().detail, "…and 40 more violations of this invariant");
    }

    /// `assert_holds` (what debug builds run after each simulation) panics with the seed
    /// and each violation.
    #[test]
    #[should_panic(expected = "simulation invariants violated (seed 7")]
    fn assert_holds_panics_on_a_violation() {
        let (i, mut out) = featured(ARTICLE);
        out.scheduled += 1;
        invariants::assert_holds(&i, &out);
    }
}

/// Closed loop: `users` users spawned at `spawn_rate`/s with `think`, for `secs`, against a
/// primary that answers every request in exactly `latency` (a fixed non-streamed latency,
/// no faults) unless `primary` gives its own profile.
fn closed_input(users: u32, spawn_rate: f64, think: ThinkTime, primary: &str, secs: u64) -> SimInput {
    let mut i = input(primary, 60, 30, 1.0, secs, 1);
    i.source = Source::Closed {
        users,
        spawn_rate,
        think,
        duration: secs * NS_PER_S,
    };
    i
}

fn fixed_latency(latency: &str) -> String {
    format!("[baseline]\nlatency = {{ kind = \"fixed\", value = \"{latency}\" }}\n")
}

/// Requests that ended in each whole second (from the 100 ms analysis buckets).
fn ends_per_second(out: &SimOutput) -> Vec<u64> {
    let per = (NS_PER_S / out.aggregator.bucket_len()) as usize;
    out.aggregator
        .buckets
        .chunks(per)
        .map(|c| c.iter().map(|b| b.ok + b.failed).sum())
        .collect()
}

/// 5 users spawned at 2/s (user u at u/2 s), each answer exactly 300 ms, 700 ms of think
/// time, 20 s: user u starts at u/2 + k s for every k with that before 20 s, so it sends
/// ⌈(20 − u/2) / 1⌉ requests — 20, 20, 19, 19, 18 = 96 — and each ends 300 ms after it
/// starts. Ends per second: 2 in [0, 1) (users 0 and 1), 4 in [1, 2), then all 5.
#[test]
fn closed_loop_constant_think_by_hand() {
    let think = ThinkTime::Constant {
        value: Dur::from_millis(700),
    };
    let out = run(closed_input(5, 2.0, think, &fixed_latency("300ms"), 20));
    let per_user = |u: u64| (20_000 - u * 500).div_ceil(1_000);
    let want: u64 = (0..5).map(per_user).sum();
    assert_eq!(want, 96);
    assert_eq!(
        (out.scheduled, out.aggregator.records, out.in_flight_at_end),
        (96, 96, 0)
    );
    let r = out.aggregator.report(out.scheduled, 0, out.duration);
    assert_eq!((r.requests.ok, r.requests.failed), (96, 0), "{r:?}");
    assert!(
        (r.latency_ms.p50 - 300.0).abs() < 1.0 && (r.latency_ms.max - 300.0).abs() < 1.0,
        "{:?}",
        r.latency_ms
    );
    let mut ends = vec![2, 4];
    ends.resize(20, 5);
    assert_eq!(ends_per_second(&out), ends);
}

/// Constant pacing of 1 s (Locust's `constant_pacing`): with 300 ms answers each user
/// starts once a second whatever the answer took — 3 users spawned at 10/s over 10 s: 30;
/// with 1.5 s answers (slower than the interval) back to back: starts at s, s + 1.5, …,
/// s + 9.0 — 7 per user.
#[test]
fn closed_loop_pacing_by_hand() {
    let pacing = ThinkTime::Pacing {
        interval: Dur::from_secs(1),
    };
    let out = run(closed_input(3, 10.0, pacing, &fixed_latency("300ms"), 10));
    assert_eq!((out.scheduled, out.aggregator.records), (30, 30));
    let mut ends = vec![3; 10];
    ends.push(0);
    assert_eq!(ends_per_second(&out)[..10], ends[..10]);
    let out = run(closed_input(3, 10.0, pacing, &fixed_latency("1500ms"), 10));
    assert_eq!((out.scheduled, out.aggregator.records), (21, 21));
}

/// Answers that take no simulated time (an error after 0 s) and no think time: without a
/// floor a user would start requests forever at one instant and the run would never end.
/// The simulator's floor (`SIM_MIN_CYCLE`, 1 ms start to start) gives each of 2 users
/// 2,000 requests in 2 s.
#[test]
fn closed_loop_instant_answers_do_not_spin_at_one_instant() {
    let think = ThinkTime::Constant { value: Dur(0) };
    let mut input = closed_input(2, 2e9, think, "[baseline]\nerrors = [{ status = 502 }]\n", 2);
    // a time limit, not a speed check: without the floor the run would never end
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(120));
        watchdog.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    input.stop = Some(stop);
    let out = run(input);
    assert!(
        !out.interrupted,
        "still running after 120 s: a user loops at one instant"
    );
    assert_eq!(crate::traffic::users::SIM_MIN_CYCLE, crate::time::NS_PER_MS);
    assert_eq!((out.scheduled, out.aggregator.records), (4_000, 4_000));
    let r = out.aggregator.report(out.scheduled, 0, out.duration);
    assert_eq!(r.failures_by_kind.get("http_502"), Some(&4_000), "{r:?}");
    // the planned-work check's estimate (users × duration ÷ 1 ms) is met exactly: it bounds
    // what a simulated closed loop can send
    let input = closed_input(2, 2e9, think, "", 2);
    let max_open = 30 * NS_PER_S;
    let w = crate::run::limits::Work::of(&input.source, crate::run::limits::Mode::Sim { max_open }, NS_PER_S, 2);
    assert_eq!((w.requests, w.in_flight), (4_000.0, 2.0));
}

/// Same seed ⇒ the same records, events and report, byte for byte, with uniform think
/// times, a two-kind mix and random errors (every draw seeded); another seed differs.
#[test]
fn closed_loop_same_seed_same_output() {
    let mk = |seed: u64| {
        let think = ThinkTime::Uniform {
            min: Dur::from_millis(100),
            max: Dur::from_secs(2),
        };
        let primary = "[baseline]\nttft = { kind = \"lognormal\", p50 = \"200ms\", p99 = \"900ms\" }\nerrors = [{ status = 502, probability = 0.2 }]\n";
        let mut i = closed_input(40, 8.0, think, primary, 30);
        i.seed = seed;
        let mut gw = toml::Table::try_from(&i.gateway).unwrap();
        gw.insert("fallback_on_failure".into(), true.into());
        i.gateway = toml::Value::Table(gw).try_into().unwrap();
        i.mix = Mix::new(vec![KindSpec::chat("a", true), KindSpec::chat("b", false)], Api::OpenAi).unwrap();
        let o = run(i);
        let r = o.aggregator.report(o.scheduled, o.in_flight_at_end, o.duration);
        (
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&o.events).unwrap(),
            o.scheduled,
        )
    };
    let a = mk(5);
    assert_eq!(a, mk(5));
    assert!(a.2 > 300, "{}", a.2);
    assert!(a.0.contains("\"fallback\""), "some requests fell back");
    assert_ne!(a.0, mk(6).0);
}

/// A request the gateway refuses at once (its only target's breaker is open: a 503 that
/// takes no time) ends for its user like any other, so users go on sending — one request
/// per 100 ms of think plus the 1 ms floor while refused — and are served again once the
/// breaker lets requests through. 4 users, 100 ms answers + 100 ms think; the primary
/// answers 502 in [2 s, 5 s); the breaker opens after 3 failures, for 1 s at a time. After
/// the outage every user completes one request per 200 ms: 70 per user in [6 s, 20 s).
#[test]
fn closed_loop_users_go_on_after_the_gateway_refuses() {
    let think = ThinkTime::Constant {
        value: Dur::from_millis(100),
    };
    let primary = "[baseline]\nlatency = { kind = \"fixed\", value = \"100ms\" }\n[[phase]]\nname = \"outage\"\nstart = \"2s\"\nduration = \"3s\"\nerrors = [{ status = 502 }]\n";
    let mut i = closed_input(4, 4.0, think, primary, 20);
    i.gateway = toml::from_str(
        "targets = [{ name = \"primary\" }]\nbreaker = { kind = \"consecutive\", failures = 3, base_ejection = \"1s\" }\n",
    )
    .unwrap();
    let out = run(i);
    let r = out.aggregator.report(out.scheduled, 0, out.duration);
    let refused = r.failures_by_kind.get("http_503").copied().unwrap_or(0);
    assert!(refused >= 10, "the gateway refused requests: {r:?}");
    assert_eq!(out.scheduled, out.aggregator.records);
    let after: u64 = ends_per_second(&out)[6..20].iter().sum();
    assert!(
        (4 * 69..=4 * 70).contains(&after),
        "{after} requests ended in [6 s, 20 s)"
    );
    assert_eq!(
        r.requests.failed,
        refused + r.failures_by_kind.get("http_502").copied().unwrap_or(0)
    );
}

/// `[gateway] replicas = N` behind the client's round robin, each with its own breaker:
/// constant 10 req/s, a hard 502 outage of the primary from t = 10 s to the end, a
/// consecutive breaker of k = 5 that stays open for the rest of the run, no health checks,
/// no retries, no fallback on failure. Request i goes to replica i mod N, so each replica
/// needs its own k failures before its breaker opens: N · k failed requests, not k.
#[test]
fn replicas_each_detect_on_their_own_so_a_hard_outage_fails_n_times_k() {
    let gateway = |replicas: u32| -> GatewayConfig {
        toml::from_str(&format!(
            r#"
targets = [{{ name = "primary" }}, {{ name = "fallback" }}]
breaker = {{ kind = "consecutive", failures = 5, base_ejection = "300s", max_ejection = "300s" }}
fallback_on_failure = false
replicas = {replicas}
"#
        ))
        .unwrap()
    };
    let onset = 10 * NS_PER_S + 1;
    let k = 5u64;
    for n in [1u32, 2, 3] {
        let mut i = input(&onset_profile(onset, FAST_502), 5, 1, 10.0, 30, 1);
        i.gateway = gateway(n);
        let out = run(i);
        let o = out.aggregator.overall();
        assert_eq!(o.failed, u64::from(n) * k, "replicas = {n}: N · k failures");
        let opened: Vec<(Option<u32>, Nanos)> = out
            .events
            .iter()
            .filter(|e| matches!(e.kind, crate::gateway::EventKind::BreakerOpened { .. }))
            .map(|e| (e.replica, e.t_ns))
            .collect();
        assert_eq!(opened.len(), n as usize, "one breaker opened per replica: {opened:?}");
        // request id j arrives at j · 100 ms; the first to fail is id 101 (10.1 s). Replica
        // r's k-th failure is the k-th id ≥ 101 with id mod N = r: it opens when that
        // answer comes back (the 502 is immediate at the mock's zero latency).
        for (r, t) in &opened {
            let r = r.map_or(0, u64::from);
            let ids: Vec<u64> = (101..).filter(|id| id % u64::from(n) == r).take(k as usize).collect();
            let kth = ids[k as usize - 1] * 100 * crate::time::NS_PER_MS;
            assert!(
                *t >= kth && *t < kth + 100 * crate::time::NS_PER_MS,
                "replica {r} opened at {t}, its 5th failure arrived at {kth}"
            );
        }
        if n == 1 {
            assert!(
                out.events.iter().all(|e| e.replica.is_none()),
                "alone: no replica field"
            );
        }
    }
}

/// Each replica probes on its own (probe load scales with N) and ejects on its own probe
/// result; the invariants hold per replica.
#[test]
fn replicas_probe_and_eject_on_their_own() {
    let probes_and_ejections = |n: u32| {
        let mut i = input(&onset_profile(10 * NS_PER_S + 1, FAST_502), 5, 1, 10.0, 30, 3);
        i.gateway.replicas = n;
        let out = run(i);
        let probes = out
            .events
            .iter()
            .filter(|e| e.target == "primary" && matches!(e.kind, crate::gateway::EventKind::ProbeResult { .. }))
            .count();
        let mut ejected: Vec<Option<u32>> = out
            .events
            .iter()
            .filter(|e| e.target == "primary" && e.kind == crate::gateway::EventKind::Ejected)
            .map(|e| e.replica)
            .collect();
        ejected.sort();
        (probes, ejected)
    };
    let (one, ej1) = probes_and_ejections(1);
    assert_eq!(ej1, vec![None]);
    let (two, ej2) = probes_and_ejections(2);
    assert_eq!(ej2, vec![Some(0), Some(1)], "each replica ejects the primary itself");
    assert!(
        (2 * one).abs_diff(two) <= 1,
        "probe load scales with N: {one} alone, {two} with 2"
    );
}

/// Each replica has its own retry budget (`min_per_s` tokens a second, refilled per
/// replica): four replicas retry up to four times what one may, and the retry-bounds
/// invariant (checked by `run`) counts each replica's retries against its own budget.
#[test]
fn replicas_each_spend_their_own_retry_budget() {
    let retries = |n: u32| {
        let mut i = input(&onset_profile(NS_PER_S + 1, FAST_502), 600, 1, 200.0, 6, 2);
        i.gateway.health_check = None;
        i.gateway.retries.attempts = 3;
        i.gateway.retries.budget_ratio = 0.0;
        i.gateway.retries.min_per_s = 5.0;
        i.gateway.replicas = n;
        let out = run(i);
        out.events
            .iter()
            .filter(|e| matches!(e.kind, crate::gateway::EventKind::Retry { .. }))
            .count() as f64
    };
    let (one, four) = (retries(1), retries(4));
    // 5 s of outage: at most 5 · (1 + 6) per replica by the end, and the budget is spent
    assert!(one > 0.0 && one <= 35.0, "one replica: {one} retries");
    assert!(four > 3.0 * one, "four budgets: {four} retries vs {one} alone");
}
