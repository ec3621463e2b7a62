//! Terminal text: the load report's table, a run's summary, a sweep's table and its
//! failed assertions.

use crate::analysis::results::{best_point, Dist, RunReport, SweepReport};
use crate::analysis::LoadReport;
use std::fmt::Write as _;

/// The terminal table.
pub fn load(r: &LoadReport) -> String {
    let mut s = String::new();
    let q = &r.requests;
    let _ = writeln!(
        s,
        "requests   scheduled {}   sent {}   ok {}   failed {}   dropped {}   in flight at end {}   error rate {:.3} %",
        q.scheduled,
        q.sent,
        q.ok,
        q.failed,
        q.dropped,
        q.in_flight_at_end,
        100.0 * r.error_rate
    );
    let _ = writeln!(
        s,
        "throughput {:.1} req/s   {:.1} output tok/s   goodput {:.1} req/s   over {:.1} s",
        r.throughput.requests_per_s, r.throughput.output_tokens_per_s, r.throughput.goodput_per_s, r.duration_s
    );
    let _ = writeln!(
        s,
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "", "p50", "p95", "p99", "p99.9", "max", "mean", "count"
    );
    for (name, h) in [
        ("latency ms", &r.latency_ms),
        ("latency (uncorr.) ms", &r.latency_uncorrected_ms),
        ("schedule lag ms", &r.schedule_lag_ms),
        ("TTFT ms", &r.ttft_ms),
        ("ITL ms", &r.itl_ms),
        ("TPOT ms", &r.tpot_ms),
    ] {
        if h.count > 0 {
            let _ = writeln!(
                s,
                "{name:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8}",
                h.p50, h.p95, h.p99, h.p999, h.max, h.mean, h.count
            );
        }
    }
    if r.output_tps.avg > 0.0 {
        let t = &r.output_tps;
        let _ = writeln!(
            s,
            "\noutput tokens/s per stream: avg {:.1}   peak {:.1}   min {:.1}   stability (CV) ±{:.1} %",
            t.avg,
            t.peak,
            t.min,
            100.0 * t.cv
        );
    }
    if r.embeddings.requests_per_s > 0.0 {
        let _ = writeln!(
            s,
            "embeddings: {:.1} req/s   avg latency {:.1} ms",
            r.embeddings.requests_per_s, r.embeddings.avg_latency_ms
        );
    }
    for (title, groups) in [("provider", &r.providers), ("kind", &r.kinds), ("phase", &r.phases)] {
        if groups.is_empty()
            || (groups.len() == 1 && title != "phase" && groups.keys().next().is_some_and(|k| k == "unknown"))
        {
            continue;
        }
        let _ = writeln!(
            s,
            "\n{:<22} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
            title, "sent", "failed", "err %", "p50 ms", "p99 ms", "req/s"
        );
        for (name, g) in groups {
            let _ = writeln!(
                s,
                "{name:<22} {:>8} {:>8} {:>8.2} {:>9.1} {:>9.1} {:>9.1}",
                g.requests,
                g.failed,
                100.0 * g.error_rate,
                g.latency_ms.p50,
                g.latency_ms.p99,
                g.requests_per_s
            );
        }
    }
    if !r.failures_by_kind.is_empty() {
        let _ = writeln!(s, "\nfailures by kind");
        for (k, n) in &r.failures_by_kind {
            let _ = writeln!(s, "  {k:<20} {n}");
        }
    }
    s
}

/// The terminal summary of one report.
pub fn run(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {}  ({}, gateway {}, seed {}{}{})",
        r.scenario,
        r.mode,
        r.gateway.kind,
        r.seed,
        if r.runs > 1 {
            format!(", {} runs", r.runs)
        } else {
            String::new()
        },
        if r.time_scale != 1.0 {
            format!(", time_scale {}", r.time_scale)
        } else {
            String::new()
        },
    );
    s.push_str(&load(&r.traffic));
    let o = |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{v:.2} s"));
    // `never` only for what could be measured: an external or running gateway's own
    // events are not visible to chaosgate, so its gateway view is not applicable
    let gateway_view = |x: Option<f64>| {
        if r.gateway.kind == "builtin" {
            o(x)
        } else {
            format!("n/a ({} gateway: its events are not visible)", r.gateway.kind)
        }
    };
    for f in &r.resilience.faults {
        let _ = writeln!(
            s,
            "\nfault {}/{} [{:.1} s, {:.1} s): detection gateway {} / traffic {} / client {}; failed {} ({} before detection, {} after); failback {}",
            f.provider,
            f.phase,
            f.onset_s,
            f.end_s,
            gateway_view(f.detection_gateway_s),
            o(f.detection_traffic_s),
            o(f.detection_client_s),
            f.failed_during,
            f.failed_before_detection,
            f.failed_after_detection,
            o(f.failback_s)
        );
    }
    s.push_str(&traffic_share(&r.traffic_share));
    s.push_str(&attempts(&r.attempts.first));
    if r.runs > 1 {
        let row = |name: &str, d: &Dist, unit: &str| {
            let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.2}"));
            format!(
                "  {name:<22} min {:>9}  mean {:>9}  p95 {:>9}  max {:>9}{unit}{}\n",
                f(d.min),
                f(d.mean),
                f(d.p95),
                f(d.max),
                if d.missing > 0 {
                    format!("  ({} of {} never)", d.missing, d.n)
                } else {
                    String::new()
                }
            )
        };
        let _ = writeln!(s, "\nover {} runs:", r.runs);
        s.push_str(&row("detection_s", &r.resilience.detection_s, " s"));
        s.push_str(&row("failed_requests", &r.resilience.failed_requests, ""));
        s.push_str(&row("failback_s", &r.resilience.failback_s, " s"));
        s.push_str(&row("budget.consumed_pct", &r.budget.consumed_pct, " %"));
        let a = &r.attempts;
        for (name, d) in [
            ("attempts.amplification", &a.amplification),
            ("attempts.hangs", &a.hangs),
            ("attempts.truncated", &a.truncated_successes),
        ] {
            if d.n > d.missing {
                s.push_str(&row(name, d, ""));
            }
        }
    }
    let b = &r.budget;
    let _ = writeln!(
        s,
        "\nerror budget ({:.3} % over {:.0} days): {:.0} requests; this run used {} ; peak burn 5 min {}, 1 h {}",
        100.0 * b.target,
        b.period_s / 86_400.0,
        b.budget_requests,
        b.consumed_pct.short(" %", 2),
        b.peak_burn_5m.short("×", 1),
        b.peak_burn_1h.short("×", 1),
    );
    for (name, t) in &b.alerts {
        let _ = writeln!(
            s,
            "  alert {name:<18} {}",
            t.map_or("would not fire".into(), |t| format!("fires at {t:.1} s"))
        );
    }
    if let Some(c) = &r.cost {
        let reference = match (c.reference_usd, c.saving_pct) {
            (Some(r), Some(p)) => {
                format!(" — the same tokens at the reference price: {r:.4} USD, a saving of {p:.1} %")
            }
            _ => String::new(),
        };
        let _ = writeln!(s, "\ncost: {:.4} USD{reference}", c.total_usd);
        for (name, p) in &c.per_provider {
            let markup = p
                .total
                .markup_pct
                .map_or(String::new(), |m| format!(", {m:+.1} % vs its base price"));
            let _ = writeln!(
                s,
                "  {name:<18} {:>10.4} USD  {} requests, {} in / {} out tokens{markup}",
                p.total.usd, p.total.requests, p.total.input_tokens, p.total.output_tokens
            );
        }
        for u in &c.unpriced {
            let _ = writeln!(s, "  unpriced: {} / {} ({} requests)", u.provider, u.model, u.requests);
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// The "attempts" block of a run (`docs/semantics.md` §13): only the lines with data.
fn attempts(a: &crate::analysis::attempts::AttemptStats) -> String {
    let mut s = String::new();
    if let Some(x) = a.amplification {
        let _ = write!(
            s,
            "\nattempts: {x:.2} per request ({} at the providers for {} requests)",
            a.provider_attempts, a.user_requests
        );
        if let Some(f) = a.amplification_during_fault {
            let _ = write!(
                s,
                "; during the faults {f:.2} ({} for {})",
                a.fault_provider_attempts, a.fault_user_requests
            );
        }
        if let Some(m) = a.max_attempts_per_request {
            let _ = write!(s, "; at most {m} for one request");
        }
        s.push('\n');
    }
    if a.user_requests > 0 {
        let truncated = a.truncated_successes.map_or(
            "truncated successes unknown (attempts not matched to requests)".to_string(),
            |n| format!("{n} truncated successes (ok for the client, no complete answer from a provider)"),
        );
        let _ = writeln!(
            s,
            "  {truncated}; {} hangs (past the client's {:.1} s deadline, or in flight at the end)",
            a.hangs, a.hang_deadline_s
        );
    }
    if a.probes.values().any(|p| p.probes > 0) {
        let each: Vec<String> = a
            .probes
            .iter()
            .filter(|(_, p)| p.probes > 0)
            .map(|(name, p)| {
                let tokens = if p.completion_probes > 0 {
                    format!(
                        ", {} completions, {} output tokens",
                        p.completion_probes, p.probe_output_tokens
                    )
                } else {
                    String::new()
                };
                format!("{name} {:.2}/s ({}{tokens})", p.per_s, p.probes)
            })
            .collect();
        let _ = writeln!(s, "  health probes: {}", each.join(", "));
    }
    for (name, r) in &a.retry_after {
        let gap = match (r.min_gap_s, r.min_margin_s) {
            (Some(g), Some(m)) => format!(", shortest gap {g:.2} s (margin {m:+.2} s)"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  Retry-After at {name}: {} 429s carried it, {} followed by an attempt{gap}: {}",
            r.with_header,
            r.followed,
            if r.violations == 0 {
                "honoured".to_string()
            } else {
                format!("{} not honoured", r.violations)
            }
        );
    }
    s
}

/// The sweep table's rows: the header, then one row per point (the terminal table and the
/// HTML report print the same cells).
pub fn sweep_rows(sw: &SweepReport) -> Vec<Vec<String>> {
    let mut head: Vec<String> = sw
        .axes
        .iter()
        .map(|a| a.rsplit('.').next().unwrap_or(a).to_string())
        .collect();
    head.extend(
        ["detection s", "failed", "failback s", "budget %", "asserts"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut rows = vec![head];
    for p in &sw.points {
        let mut row: Vec<String> = sw
            .axes
            .iter()
            .map(|a| p.params.get(a).and_then(|v| v.as_str()).unwrap_or("").to_string())
            .collect();
        let r = &p.report;
        row.push(r.resilience.detection_s.short("", 2));
        row.push(r.resilience.failed_requests.short("", 0));
        row.push(r.resilience.failback_s.short("", 2));
        row.push(r.budget.consumed_pct.short("", 3));
        let mut verdict = if p.checks.is_empty() {
            "–".to_string()
        } else if p.passed {
            "pass".into()
        } else {
            format!(
                "FAIL {}/{}",
                p.checks.iter().filter(|c| !c.passed).count(),
                p.checks.len()
            )
        };
        if !r.warnings.is_empty() {
            // a point whose figures cannot be trusted says so in its row
            verdict.push_str(&format!(
                "  UNRELIABLE ({} warning{})",
                r.warnings.len(),
                if r.warnings.len() == 1 { "" } else { "s" }
            ));
        }
        row.push(verdict);
        rows.push(row);
    }
    rows
}

/// The comparison table of a sweep: one row per point.
pub fn sweep_table(sw: &SweepReport) -> String {
    let rows = sweep_rows(sw);
    let cols = rows[0].len();
    let w: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, x)| format!("{x:<width$}", width = w[c]))
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(s, "{}", w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>().join("  "));
        }
    }
    let unreliable = sw.points.iter().filter(|p| !p.report.warnings.is_empty()).count();
    if sw.points.len() > 1 && unreliable > 0 {
        let _ = writeln!(
            s,
            "{unreliable} point{} UNRELIABLE (warnings: see each point's report): never ranked, drawn hollow in --chart",
            if unreliable == 1 { "" } else { "s" }
        );
        let best = best_point(sw).map_or("none (no point can be ranked)".to_string(), |i| {
            sw.points[i]
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let _ = writeln!(s, "fewest failed requests among the reliable points: {best}");
    }
    s
}

/// Failed assertions, readable.
pub fn failures(sw: &SweepReport) -> String {
    let mut s = String::new();
    for p in &sw.points {
        for c in p.checks.iter().filter(|c| !c.passed) {
            let at = if p.params.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}]",
                    p.params
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(s, "  FAILED{at}: {} — {}", c.assertion, c.message);
        }
    }
    s
}

/// Columns of a traffic-share sparkline.
const SHARE_COLUMNS: usize = 40;

/// The traffic share as one sparkline per provider (each column the share over its
/// buckets; `·` where no attributed request started), with the whole run's share; empty
/// when no answer named a provider.
fn traffic_share(t: &crate::analysis::share::TrafficShare) -> String {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let n = t.requests.len();
    let (attributed, unattributed) = t.totals();
    if t.providers.is_empty() || n == 0 {
        return String::new();
    }
    let per = n.div_ceil(SHARE_COLUMNS);
    let mut s = format!(
        "\ntraffic share by provider (requests by start, 0–{:.0} s, {} per column; {} of {} unattributed):\n",
        n as f64 * t.bucket_s,
        {
            let w = per as f64 * t.bucket_s;
            if w.fract() == 0.0 {
                format!("{w:.0} s")
            } else {
                format!("{w:.1} s")
            }
        },
        unattributed,
        attributed + unattributed
    );
    for p in t.providers.keys() {
        let line: String = (0..n.div_ceil(per))
            .map(|c| match t.share_over(p, c * per, (c + 1) * per) {
                None => '·',
                Some(x) => LEVELS[(x * 8.0).round().clamp(0.0, 8.0) as usize],
            })
            .collect();
        let whole = t
            .share_over(p, 0, n)
            .map_or("–".to_string(), |x| format!("{:.1} %", 100.0 * x));
        let _ = writeln!(s, "  {p:<12} |{line}| {whole}");
    }
    s
}

/// The per-shard and per-region table of a merged run (`chaosgate merge`).
pub fn shards(b: &crate::analysis::shards::Breakdown) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nshards: {} of {} merged{}",
        b.by_shard.len(),
        b.count,
        if b.partial { " — PARTIAL" } else { "" }
    );
    let header = |s: &mut String, first: &str| {
        let _ = writeln!(
            s,
            "{first:<18} {:<12} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7}",
            "region", "scheduled", "ok", "failed", "dropped", "err %", "p50 ms", "p99 ms", "late s"
        );
    };
    header(&mut s, "shard");
    for r in &b.by_shard {
        let _ = writeln!(
            s,
            "{:<18} {:<12} {:>9} {:>9} {:>7} {:>7} {:>7.3} {:>9.1} {:>9.1} {:>7.2}{}",
            format!("{} ({})", r.name, r.index.unwrap_or(0)),
            r.region.as_deref().unwrap_or("-"),
            r.scheduled,
            r.ok,
            r.failed,
            r.dropped,
            100.0 * r.error_rate,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.late_s,
            if r.complete { "" } else { "  interrupted" }
        );
    }
    for i in &b.missing {
        let _ = writeln!(s, "{:<18} MISSING (no result file)", format!("shard {i}"));
    }
    if b.by_region.len() > 1 || b.by_region.first().is_some_and(|r| r.name != "-") {
        let _ = writeln!(s);
        header(&mut s, "region (shards)");
        for r in &b.by_region {
            let _ = writeln!(
                s,
                "{:<18} {:<12} {:>9} {:>9} {:>7} {:>7} {:>7.3} {:>9.1} {:>9.1} {:>7.2}",
                format!("{} ({})", r.name, r.shards),
                "",
                r.scheduled,
                r.ok,
                r.failed,
                r.dropped,
                100.0 * r.error_rate,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.late_s
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::share::TrafficShare;

    #[test]
    fn traffic_share_sparkline() {
        // 4 buckets of 1 s, one per column: a 100 %, 100 %, 0 %, none; b the reverse
        let t = TrafficShare {
            bucket_s: 1.0,
            requests: vec![2, 2, 2, 0],
            unattributed: vec![0, 1, 0, 0],
            providers: [
                ("a".to_string(), vec![Some(1.0), Some(1.0), Some(0.0), None]),
                ("b".to_string(), vec![Some(0.0), Some(0.0), Some(1.0), None]),
            ]
            .into_iter()
            .collect(),
        };
        let out = traffic_share(&t);
        assert!(out.contains("1 of 7 unattributed"), "{out}");
        assert!(out.contains("0–4 s, 1 s per column"), "{out}");
        assert!(out.contains("  a            |██ ·| 66.7 %"), "{out}");
        assert!(out.contains("  b            |  █·| 33.3 %"), "{out}");
        assert_eq!(traffic_share(&TrafficShare::default()), "");
    }
}
