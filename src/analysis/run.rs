//! One run's analysis, shared by both drivers: its records → resilience per fault window,
//! the error budget, the attempt figures and the cost.

use super::attempts::AttemptsAcc;
use super::budget::{self, SloConfig};
use super::cost::{cost, CostReport, PriceTable, Usage};
use super::resilience::{self, DetectionConfig, Series};
use super::results::OneRun;
use super::Aggregator;
use crate::time::NS_PER_MS;

/// The analysis bucket of scenario runs (live and simulated): 100 ms.
pub const BUCKET: crate::time::Nanos = 100 * NS_PER_MS;

/// The cost of a run's ok requests per provider, when the scenario has `[cost] prices`
/// (`models[k]`: the model request kind k asks for).
pub fn run_cost(prices: Option<&PriceTable>, agg: &Aggregator, models: &[String]) -> Option<CostReport> {
    let table = prices?;
    let usage: Vec<Usage> = agg
        .usage()
        .into_iter()
        .flat_map(|(provider, kinds)| {
            kinds.iter().enumerate().filter(|(_, u)| u.0 > 0).map(
                move |(kind, &(requests, input_tokens, output_tokens))| Usage {
                    provider: provider.to_string(),
                    model: models.get(kind).cloned().unwrap_or_default(),
                    requests,
                    input_tokens,
                    output_tokens,
                },
            )
        })
        .collect();
    Some(cost(table, &usage))
}

/// The incident view of a run [`analyse`]d from the same records (the HTML report's
/// drawing; `agg` should keep by-start latency, [`Aggregator::with_start_latency`]).
pub fn incident_view(
    slo: &SloConfig,
    agg: &Aggregator,
    run: &OneRun,
    faults: &[crate::record::FaultEvent],
    events: &[crate::gateway::GatewayEvent],
    duration: crate::time::Nanos,
) -> super::incident::IncidentView {
    super::incident::IncidentView::build(
        agg,
        &run.traffic_share,
        faults,
        events,
        Some(super::incident::BudgetInput {
            target: slo.target,
            rate: slo.rate,
        }),
        duration,
    )
}

/// The analysis both drivers share: records → resilience and budget.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    slo: &SloConfig,
    detection: &DetectionConfig,
    seed: u64,
    shift: crate::time::Nanos,
    series: &Series,
    agg: &Aggregator,
    faults: &[crate::record::FaultEvent],
    events: &[crate::gateway::GatewayEvent],
    traffic: crate::analysis::LoadReport,
    duration: crate::time::Nanos,
    attempts: &AttemptsAcc,
) -> OneRun {
    let eps = 1.0 - slo.target;
    let attempts = attempts.finish(faults, duration, traffic.requests.in_flight_at_end);
    let faults = faults
        .iter()
        .map(|f| resilience::analyze(series, f, events, detection, eps))
        .collect();
    let (totals, bad) = agg.budget_counts();
    let budget = budget::analyze(
        slo.target,
        slo.period.secs_f64(),
        agg.bucket_len(),
        &totals,
        &bad,
        slo.rate,
    );
    OneRun {
        seed,
        onset_shift_s: crate::time::nanos_to_secs_f64(shift),
        duration_s: crate::time::nanos_to_secs_f64(duration),
        traffic,
        faults,
        budget,
        gateway_events: events.len(),
        cost: None,
        traffic_share: super::share::traffic_share(&Series::from_aggregator(agg)),
        attempts,
        incident: None,
    }
}
