//! `chaosgate sim`: a scenario in virtual time, analysed like a live run.

use super::{run, SimInput, SimOutput, SimProvider};
use crate::analysis::resilience::Series;
use crate::analysis::results::OneRun;
use crate::analysis::run::{analyse, run_cost, BUCKET};
use crate::scenario::Scenario;

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
    let crate::traffic::TrafficPlan { mix, source } = (*s.plan).clone();
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
        start_latency: false,
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
    simulate_once_viewed(s, seed, shift, stop, false)
}

/// [`simulate_once_until`]; with `view`, the run also carries its incident view
/// ([`OneRun::incident`], what `--html` draws). The other figures are the same either way.
pub fn simulate_once_viewed(
    s: &Scenario,
    seed: u64,
    shift: crate::time::Nanos,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    view: bool,
) -> anyhow::Result<(OneRun, SimOutput)> {
    let mut input = sim_input(s, seed, shift, stop)?;
    input.start_latency = view;
    let models = input.mix.models();
    let planned = input.source.end();
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
        &s.slo,
        &s.detection,
        seed,
        shift,
        &series,
        &out.aggregator,
        &out.faults,
        &out.events,
        traffic,
        out.duration,
        &out.attempts,
    );
    one.cost = run_cost(s.prices.as_ref(), &out.aggregator, &models);
    if view {
        let v =
            crate::analysis::run::incident_view(&s.slo, &out.aggregator, &one, &out.faults, &out.events, out.duration);
        one.incident = Some(Box::new(v));
    }
    Ok((one, out))
}
