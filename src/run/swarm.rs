//! A swarm: N scenarios from the generator, each simulated under every invariant of
//! [`crate::sim::invariants`] and rerun for byte-identical output (`chaosgate sim --swarm N`).

use crate::sim::invariants::{check, event_name, rerun_identical, Violation};
use crate::sim::SimOutput;

/// Largest `--swarm N`.
pub const MAX_SWARM: u32 = 100_000;

/// One scenario of a swarm, checked.
#[derive(Clone, Debug)]
pub struct SwarmCase {
    /// Its seed: the generator's and the simulation's (`chaosgate sim --swarm 1 --seed
    /// <seed>` runs it again).
    pub seed: u64,
    /// The generated scenario file.
    pub toml: String,
    /// The scenario could not be simulated (the generator made a bad scenario).
    pub error: Option<String>,
    /// What broke; empty when every invariant held.
    pub violations: Vec<Violation>,
    /// Requests scheduled in the checked run.
    pub requests: u64,
    /// Simulator events of the checked run.
    pub events: u64,
    /// The kinds of gateway event the checked run made (`retry`, `ejected`, …).
    pub event_kinds: std::collections::BTreeSet<&'static str>,
}

impl SwarmCase {
    /// Whether everything held.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.violations.is_empty()
    }

    /// What a failed case prints: its seed, what broke, and the command that reproduces it.
    pub fn failure_report(&self) -> String {
        let mut msg = format!("swarm: scenario seed {} FAILED\n", self.seed);
        if let Some(e) = &self.error {
            msg += &format!("  could not simulate it: {e}\n");
        }
        for v in &self.violations {
            msg += &format!("  {v}\n");
        }
        msg += &format!("  reproduce: chaosgate sim --swarm 1 --seed {}", self.seed);
        msg
    }
}

/// Generates the scenario of `seed` ([`crate::scenario::generate::scenario`]), simulates
/// it with the end trace and checks every invariant ([`check`]); if they hold, simulates
/// it twice more as `chaosgate sim --seed <seed> --json` would and checks that the two JSON
/// reports are byte-identical ([`rerun_identical`]).
pub fn swarm_case(seed: u64, opts: &crate::scenario::generate::GenOptions) -> SwarmCase {
    let g = crate::scenario::generate::scenario(seed, opts);
    let mut case = SwarmCase {
        seed,
        toml: g.toml,
        error: None,
        violations: Vec::new(),
        requests: 0,
        events: 0,
        event_kinds: Default::default(),
    };
    let checked = || -> anyhow::Result<(Vec<Violation>, SimOutput)> {
        let file = format!("swarm-{seed}.toml");
        let set = crate::scenario::load_str(&file, &case.toml, std::path::Path::new("."), &[])?;
        let s = &set.points[0].scenario;
        let mut input = crate::sim::once::sim_input(s, seed, 0, None)?;
        input.trace_ends = true;
        let out = crate::sim::run(input.clone());
        let mut v = check(&input, &out);
        if v.is_empty() {
            let mut o = super::RunOptions::new(std::path::PathBuf::new());
            o.seed = Some(seed);
            o.jobs = 1;
            let report = || -> anyhow::Result<String> {
                Ok(serde_json::to_string_pretty(&super::simulate(&set, &o)?.to_json())?)
            };
            v.extend(rerun_identical(&report()?, &report()?));
        }
        Ok((v, out))
    };
    match checked() {
        Ok((v, out)) => {
            case.violations = v;
            case.requests = out.scheduled;
            case.events = out.steps;
            case.event_kinds = out.events.iter().map(|e| event_name(&e.kind)).collect();
        }
        Err(e) => case.error = Some(format!("{e:#}")),
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_swarm_case_prints_its_seed_violation_and_reproduction() {
        let opts = crate::scenario::generate::GenOptions::default();
        let mut case = swarm_case(42, &opts);
        assert!(case.passed());
        case.violations = rerun_identical("a", "b");
        let m = case.failure_report();
        assert!(
            m.starts_with("swarm: scenario seed 42 FAILED\n  [rerun_identical]"),
            "{m}"
        );
        assert!(m.ends_with("reproduce: chaosgate sim --swarm 1 --seed 42"), "{m}");
        case.violations.clear();
        case.error = Some("bad scenario".into());
        assert!(!case.passed());
        assert!(case.failure_report().contains("could not simulate it: bad scenario"));
    }

    /// A small swarm: 50 generated scenarios, each checked under every invariant including
    /// the byte-identical rerun; together they go through every kind of gateway event.
    #[test]
    fn a_swarm_of_50_generated_scenarios_passes_every_invariant() {
        let opts = crate::scenario::generate::GenOptions::default();
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 1000..1050 {
            let case = swarm_case(seed, &opts);
            assert!(
                case.passed(),
                "seed {seed}: {:?} {:#?}\nreproduce: chaosgate sim --swarm 1 --seed {seed}\n{}",
                case.error,
                case.violations,
                case.toml
            );
            assert!(case.requests > 0);
            kinds.extend(case.event_kinds);
        }
        for k in [
            "probe_result",
            "ejected",
            "restored",
            "breaker_opened",
            "breaker_half_opened",
            "breaker_closed",
            "retry",
            "fallback",
        ] {
            assert!(kinds.contains(k), "no {k} event in the swarm: {kinds:?}");
        }
    }
}
