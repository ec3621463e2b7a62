//! `chaosgate sim`: a scenario in virtual time, analysed like a live run.

use super::{run, SimInput, SimOutput, SimProvider};
use crate::analysis::budget;
use crate::analysis::resilience::{self, Series};
use crate::run::report::OneRun;
use crate::scenario::Scenario;
use crate::time::NS_PER_MS;

/// The analysis bucket of scenario runs (live and simulated): 100 ms.
pub const BUCKET: crate::time::Nanos = 100 * NS_PER_MS;

/// Simulates `s` once with `seed`, every fault onset moved `shift` later.
pub fn simulate_once(s: &Scenario, seed: u64, shift: crate::time::Nanos) -> anyhow::Result<(OneRun, SimOutput)> {
    simulate_once_until(s, seed, shift, None)
}

/// The simulator's input for `s` with `seed`, every fault onset moved `shift` later,
/// stopping early when `stop` is raised. Debug builds keep the end trace (the invariants
/// need it).
pub fn sim_input(
    s: &Scenario,
    seed: u64,
    shift: crate::time::Nanos,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> anyhow::Result<SimInput> {
    let gateway = s.builtin_gateway()?.clone();
    let kinds = s.traffic.load_kinds(&s.dir)?;
    let api = s.traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mix = crate::traffic::Mix::new(kinds, api).map_err(anyhow::Error::msg)?;
    let source = s.traffic.source(&s.dir)?;
    Ok(SimInput {
        providers: s
            .providers
            .iter()
            .map(|p| {
                let mut profile = p.profile.clone();
                crate::scenario::scale::shift(&mut profile, shift);
                SimProvider {
                    name: p.name.clone(),
                    profile,
                    api: p.api,
                }
            })
            .collect(),
        gateway,
        source,
        mix,
        seed,
        bucket: BUCKET,
        slo: s.slo.thresholds(),
        stop,
        // debug builds (every test) check the run's invariants, which need the end trace
        trace_ends: cfg!(debug_assertions),
    })
}

/// [`simulate_once`], stopping early when `stop` is raised (the report is then partial).
/// Debug builds check every invariant of [`super::invariants::check`] on the run and
/// panic on a violation.
pub fn simulate_once_until(
    s: &Scenario,
    seed: u64,
    shift: crate::time::Nanos,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> anyhow::Result<(OneRun, SimOutput)> {
    let input = sim_input(s, seed, shift, stop)?;
    let models = input.mix.models();
    let planned = super::invariants::traffic_end(&input.source);
    #[cfg(debug_assertions)]
    let checked = input.clone();
    let out = run(input);
    #[cfg(debug_assertions)]
    super::invariants::assert_holds(&checked, &out);
    let mut traffic = out.aggregator.report(out.scheduled, out.in_flight_at_end, out.duration);
    if out.interrupted {
        traffic.partial = true;
        traffic.warnings.push(format!(
            "interrupted (Ctrl-C / SIGTERM) after {:.1} s of a planned {:.1} s of simulated time: this report is partial",
            crate::time::nanos_to_secs_f64(out.duration),
            crate::time::nanos_to_secs_f64(planned)
        ));
    }
    // where the simulator cut the fault windows still open (sim/mod.rs)
    let horizon = out.aggregator.last_end.max(planned);
    let series = Series::from_aggregator(&out.aggregator)
        .with_arrivals(out.arrivals.clone())
        .with_horizon(horizon);
    let mut one = analyse(
        s,
        seed,
        shift,
        &series,
        &out.aggregator,
        &out.faults,
        &out.events,
        traffic,
        out.duration,
    );
    one.cost = run_cost(s, &out.aggregator, &models);
    Ok((one, out))
}

/// The cost of a run's ok requests per provider, when the scenario has `[cost] prices`
/// (`models[k]`: the model request kind k asks for).
pub fn run_cost(s: &Scenario, agg: &crate::analysis::Aggregator, models: &[String]) -> Option<crate::cost::CostReport> {
    let table = s.prices.as_ref()?;
    let usage: Vec<crate::cost::Usage> = agg
        .usage()
        .into_iter()
        .flat_map(|(provider, kinds)| {
            kinds.iter().enumerate().filter(|(_, u)| u.0 > 0).map(
                move |(kind, &(requests, input_tokens, output_tokens))| crate::cost::Usage {
                    provider: provider.to_string(),
                    model: models.get(kind).cloned().unwrap_or_default(),
                    requests,
                    input_tokens,
                    output_tokens,
                },
            )
        })
        .collect();
    Some(crate::cost::cost(table, &usage))
}

/// The analysis both drivers share: records → resilience and budget.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    s: &Scenario,
    seed: u64,
    shift: crate::time::Nanos,
    series: &Series,
    agg: &crate::analysis::Aggregator,
    faults: &[crate::record::FaultEvent],
    events: &[crate::gateway::GatewayEvent],
    traffic: crate::analysis::LoadReport,
    duration: crate::time::Nanos,
) -> OneRun {
    let eps = 1.0 - s.slo.target;
    let faults = faults
        .iter()
        .map(|f| resilience::analyze(series, f, events, &s.detection, eps))
        .collect();
    let totals: Vec<u64> = agg.buckets.iter().map(|b| b.ok + b.failed).collect();
    let bad: Vec<u64> = agg.buckets.iter().map(|b| b.failed).collect();
    let budget = budget::analyze(
        s.slo.target,
        s.slo.period.secs_f64(),
        agg.bucket_len(),
        &totals,
        &bad,
        s.slo.rate,
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
    }
}
