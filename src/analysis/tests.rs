use super::*;
use crate::time::NS_PER_MS;

fn rec(
    id: u64,
    intended: Nanos,
    end: Nanos,
    outcome: Outcome,
    tokens: u32,
    first_token: Option<Nanos>,
) -> RequestRecord {
    RequestRecord {
        id,
        kind: 0,
        intended,
        sent: (outcome != Outcome::Dropped).then_some(intended),
        first_byte: first_token,
        first_token,
        end,
        outcome,
        output_tokens: tokens,
        input_tokens: 100,
        provider: Some("p".into()),
        stream: first_token.is_some(),
    }
}

#[test]
fn hand_computed_case() {
    // 4 requests in one second: two ok streams, one 502, one dropped.
    let mut a = Aggregator::new(
        NS_PER_S,
        vec!["chat".into()],
        SloThresholds {
            e2e: Some(500 * NS_PER_MS),
            ..Default::default()
        },
    );
    // stream: intended 0, first token 100 ms, 11 tokens, end 600 ms → TTFT 100, TPOT 50 ms, decode 20 tok/s
    a.add(
        &rec(0, 0, 600 * NS_PER_MS, Outcome::Ok, 11, Some(100 * NS_PER_MS)),
        &[50 * NS_PER_MS; 10],
        false,
    );
    // stream: intended 100 ms, first token 300, 5 tokens, end 500 → TTFT 200, TPOT 50, decode 20 tok/s; e2e 400 ms (good)
    a.add(
        &rec(
            1,
            100 * NS_PER_MS,
            500 * NS_PER_MS,
            Outcome::Ok,
            5,
            Some(300 * NS_PER_MS),
        ),
        &[50 * NS_PER_MS; 4],
        false,
    );
    a.add(
        &rec(2, 200 * NS_PER_MS, 210 * NS_PER_MS, Outcome::Http(502), 0, None),
        &[],
        false,
    );
    a.add(
        &rec(3, 300 * NS_PER_MS, 300 * NS_PER_MS, Outcome::Dropped, 0, None),
        &[],
        false,
    );
    let r = a.report(4, 0, NS_PER_S);
    assert_eq!(
        (r.requests.ok, r.requests.failed, r.requests.dropped, r.requests.sent),
        (2, 1, 1, 3)
    );
    assert!((r.error_rate - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(r.failures_by_kind.get("http_502"), Some(&1));
    assert!(
        (r.ttft_ms.p50 - 100.0).abs() < 0.2 && (r.ttft_ms.max - 200.0).abs() < 0.2,
        "{:?}",
        r.ttft_ms
    );
    assert!((r.tpot_ms.p50 - 50.0).abs() < 0.1, "{:?}", r.tpot_ms);
    assert_eq!(r.itl_ms.count, 14);
    assert!((r.output_tps.avg - 20.0).abs() < 1e-9, "{:?}", r.output_tps);
    assert!((r.throughput.output_tokens_per_s - 16.0).abs() < 1e-9);
    assert!((r.throughput.goodput_per_s - 1.0).abs() < 1e-9); // only the 400 ms one meets e2e ≤ 500 ms
    assert!((r.latency_ms.max - 600.0).abs() < 0.5);
}

#[test]
fn tps_stats_match_the_formula() {
    let t = Tps::of(&[100.0, 200.0, 150.0, 150.0]);
    assert_eq!((t.avg, t.peak, t.min), (150.0, 200.0, 100.0));
    let sd = (2500.0f64 * 2.0 / 4.0).sqrt();
    assert!((t.cv - sd / 150.0).abs() < 1e-12);
}

#[test]
fn per_phase_and_timeline() {
    let mut a = Aggregator::new(NS_PER_S, vec!["chat".into()], SloThresholds::default()).with_phases(vec![(
        "outage".into(),
        NS_PER_S,
        2 * NS_PER_S,
    )]);
    for i in 0..30u64 {
        let t = i * 100 * NS_PER_MS;
        let out = if (10..20).contains(&i) {
            Outcome::Http(503)
        } else {
            Outcome::Ok
        };
        a.add(&rec(i, t, t + 10 * NS_PER_MS, out, 1, None), &[], false);
    }
    let r = a.report(30, 0, 3 * NS_PER_S);
    assert_eq!(r.phases["outage"].failed, 10);
    assert_eq!(r.phases["outage"].ok, 0);
    assert_eq!(r.timeline.failed, vec![0, 10, 0]);
    assert_eq!(r.timeline.ok, vec![10, 0, 10]);
}

/// Records are counted once, in their (provider, kind) cell; the overall, per-provider
/// and per-kind views add the cells up. Hand-computed: 2 providers × 2 kinds, a kind the
/// mix does not name (`other`) and a dropped record (no provider).
#[test]
fn overall_providers_and_kinds_are_sums_of_cells() {
    let mut a = Aggregator::new(NS_PER_S, vec!["chat".into(), "embed".into()], SloThresholds::default());
    // (provider, kind, latency ms, outcome)
    let rows: [(&str, u32, u64, Outcome); 7] = [
        ("a", 0, 100, Outcome::Ok),
        ("a", 0, 300, Outcome::Http(502)),
        ("a", 1, 50, Outcome::Ok),
        ("b", 0, 200, Outcome::Ok),
        ("b", 1, 400, Outcome::Timeout),
        ("b", 7, 700, Outcome::Http(502)),
        ("a", 1, 0, Outcome::Dropped),
    ];
    for (id, &(p, kind, ms, outcome)) in rows.iter().enumerate() {
        let mut r = rec(id as u64, 0, ms * NS_PER_MS, outcome, 3, None);
        r.kind = kind;
        r.provider = (outcome != Outcome::Dropped).then(|| p.to_string());
        a.add(&r, &[], false);
    }
    let all = a.overall();
    assert_eq!((all.ok, all.failed, all.dropped), (3, 3, 1));
    assert_eq!(all.latency.len(), 6, "a dropped record has no latency");
    assert!((all.latency.quantile_ms(1.0) - 700.0).abs() < 0.5);
    assert!((all.latency.mean_ms() - 1750.0 / 6.0).abs() < 0.5);
    assert_eq!(all.failures().get("http_502"), Some(&2));
    assert_eq!(all.failures().get("timeout"), Some(&1));
    assert!((a.latency_quantile_ms(0.5) - all.latency.quantile_ms(0.5)).abs() < 1e-9);

    let p = a.providers();
    assert_eq!(p.keys().copied().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((p["a"].ok, p["a"].failed, p["a"].dropped), (2, 1, 0));
    assert_eq!((p["b"].ok, p["b"].failed), (1, 2));
    assert!((p["a"].latency.quantile_ms(1.0) - 300.0).abs() < 0.5);
    assert_eq!(p["b"].failures().get("http_502"), Some(&1));

    let k = a.per_kind();
    assert_eq!(k.keys().copied().collect::<Vec<_>>(), ["chat", "embed", "other"]);
    assert_eq!((k["chat"].ok, k["chat"].failed), (2, 1));
    assert_eq!((k["embed"].ok, k["embed"].failed, k["embed"].dropped), (1, 1, 1));
    assert_eq!((k["other"].ok, k["other"].failed), (0, 1));
    assert!((k["chat"].latency.mean_ms() - 200.0).abs() < 0.5);
    assert_eq!(k["other"].failures().get("http_502"), Some(&1));

    let r = a.report(7, 0, NS_PER_S);
    assert_eq!((r.requests.ok, r.requests.failed, r.requests.dropped), (3, 3, 1));
    assert_eq!(r.kinds["embed"].failed, 1);
}

/// Cells keep the uncorrected latency implied for requests sent on time; late, early and
/// unsent requests still give exactly the histograms of recording every sample (and the
/// schedule lag counts the on-time ones as zeros), in the overall, per-provider and
/// per-kind views and in the report.
#[test]
fn off_schedule_requests_read_as_recorded() {
    let mut a = Aggregator::new(NS_PER_S, vec!["chat".into(), "embed".into()], SloThresholds::default());
    let (mut latency, mut uncorrected, mut lag) = (Hist::new(3), Hist::new(3), Hist::new(3));
    // recorded directly per provider and per kind, to check the views built from cells
    let mut by_provider: BTreeMap<&str, (Hist, Hist)> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, (Hist, Hist)> = BTreeMap::new();
    for k in 0..400u64 {
        let intended = k * 7 * NS_PER_MS;
        let end = intended + (k % 37 + 1) * 13 * NS_PER_MS;
        let sent = match k % 5 {
            0 => None,                                  // never sent (e.g. connect error)
            1 => Some(intended + (k % 11) * NS_PER_MS), // late
            2 if intended > 0 => Some(intended - 1),    // early
            _ => Some(intended),                        // on time
        };
        let outcome = if sent.is_none() {
            Outcome::ConnectError
        } else {
            Outcome::Ok
        };
        let mut r = rec(k, intended, end, outcome, 3, None);
        r.sent = sent;
        r.kind = (k % 2) as u32;
        let provider = if k % 3 == 0 { "a" } else { "b" };
        r.provider = Some(provider.into());
        a.add(&r, &[], false);
        latency.record(end - intended);
        let kind = ["chat", "embed"][r.kind as usize];
        for (lat, unc) in [
            by_provider
                .entry(provider)
                .or_insert_with(|| (Hist::new(3), Hist::new(3))),
            by_kind.entry(kind).or_insert_with(|| (Hist::new(3), Hist::new(3))),
        ] {
            lat.record(end - intended);
            if let Some(s) = sent {
                unc.record(end - s);
            }
        }
        if let Some(s) = sent {
            uncorrected.record(end - s);
            lag.record(s.saturating_sub(intended));
        }
    }
    let g = a.overall();
    assert_eq!(g.latency.inner(), latency.inner());
    assert_eq!(g.latency_uncorrected.inner(), uncorrected.inner());
    assert_eq!(a.schedule_lag().inner(), lag.inner());
    let r = a.report(400, 0, 3 * NS_PER_S);
    assert_eq!(r.latency_ms, latency.summary());
    assert_eq!(r.latency_uncorrected_ms, uncorrected.summary());
    assert_eq!(r.schedule_lag_ms, lag.summary());
    // the per-provider and per-kind views are those of recording every sample, and the
    // report's figures are those of the full groups
    for (views, direct) in [(a.providers(), &by_provider), (a.per_kind(), &by_kind)] {
        assert_eq!(views.len(), direct.len());
        for (name, full) in &views {
            let (lat, unc) = &direct[name];
            assert_eq!(full.latency.inner(), lat.inner(), "{name}");
            assert_eq!(full.latency_uncorrected.inner(), unc.inner(), "{name}");
        }
    }
    for (name, full) in a.providers() {
        assert_eq!(r.providers[name], GroupReport::of(&full, r.duration_s), "{name}");
    }
    for (name, full) in a.per_kind() {
        assert_eq!(r.kinds[name], GroupReport::of(&full, r.duration_s), "{name}");
    }
}
