//! `chaosgate sim`: a scenario in virtual time, analysed like a live run.

use super::{run, SimInput, SimOutput, SimProvider};
use crate::analysis::budget::{self, BudgetReport};
use crate::analysis::resilience::{self, FaultReport};
use crate::analysis::LoadReport;
use crate::scenario::Scenario;
use crate::time::NS_PER_MS;
use serde::Serialize;

/// The report of one simulated run. Nothing in it depends on wall-clock time.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Simulated length of the run (s).
    pub duration_s: f64,
    /// Client-side measurements (the `chaosgate load` report).
    pub traffic: LoadReport,
    /// Per fault window of each provider.
    pub resilience: Vec<FaultReport>,
    /// Error budget.
    pub budget: BudgetReport,
    /// Gateway events emitted.
    pub gateway_events: usize,
}

/// Simulates `s` with `seed`.
pub fn simulate(s: &Scenario, seed: u64) -> anyhow::Result<(SimReport, SimOutput)> {
    let kinds = s.traffic.load_kinds(&s.dir)?;
    let api = s.traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mix = crate::traffic::Mix::new(kinds, api).map_err(anyhow::Error::msg)?;
    let source = s.traffic.source(&s.dir)?;
    if matches!(source, crate::traffic::Source::Closed { .. }) {
        anyhow::bail!("the simulator runs open-loop and trace traffic; closed-loop users need `chaosgate run`");
    }
    let input = SimInput {
        providers: s
            .providers
            .iter()
            .map(|p| SimProvider {
                name: p.name.clone(),
                profile: p.profile.clone(),
            })
            .collect(),
        gateway: s.gateway.clone(),
        source,
        mix,
        seed,
        bucket: 100 * NS_PER_MS,
    };
    let out = run(input);
    let traffic = out.aggregator.report(out.scheduled, 0, out.duration);
    let eps = 1.0 - s.slo.target;
    let resilience = out
        .faults
        .iter()
        .map(|f| resilience::analyze(&out.aggregator, f, &out.events, &s.detection, eps))
        .collect();
    let totals: Vec<u64> = out.aggregator.buckets.iter().map(|b| b.ok + b.failed).collect();
    let bad: Vec<u64> = out.aggregator.buckets.iter().map(|b| b.failed).collect();
    let budget = budget::analyze(
        s.slo.target,
        s.slo.period.secs_f64(),
        out.aggregator.bucket_len(),
        &totals,
        &bad,
        s.slo.rate,
    );
    let report = SimReport {
        scenario: s.name.clone(),
        seed,
        duration_s: crate::time::nanos_to_secs_f64(out.duration),
        traffic,
        resilience,
        budget,
        gateway_events: out.events.len(),
    };
    Ok((report, out))
}

/// The terminal summary.
pub fn text(r: &SimReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {}  seed {}  simulated {:.1} s",
        r.scenario, r.seed, r.duration_s
    );
    s.push_str(&crate::report::text(&r.traffic));
    for f in &r.resilience {
        let o = |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{v:.2} s"));
        let _ = writeln!(
            s,
            "\nfault {}/{} [{:.1} s, {:.1} s): detection gateway {} / traffic {} / client {}; failed {} ({} before detection, {} after); failback {}",
            f.provider,
            f.phase,
            f.onset_s,
            f.end_s,
            o(f.detection_gateway_s),
            o(f.detection_traffic_s),
            o(f.detection_client_s),
            f.failed_during,
            f.failed_before_detection,
            f.failed_after_detection,
            o(f.failback_s)
        );
    }
    let b = &r.budget;
    let _ = writeln!(
        s,
        "\nerror budget ({:.3} % over {:.0} days): {:.0} requests; this run used {:.2} % ({} failed); peak burn 5 min {:.1}×, 1 h {:.1}×",
        100.0 * b.target,
        b.period_s / 86_400.0,
        b.budget_requests,
        b.consumed_pct,
        b.failed,
        b.peak_burn_5m,
        b.peak_burn_1h
    );
    for (name, t) in &b.alerts {
        let _ = writeln!(
            s,
            "  alert {name:<18} {}",
            t.map_or("would not fire".into(), |t| format!("fires at {t:.1} s"))
        );
    }
    s
}
