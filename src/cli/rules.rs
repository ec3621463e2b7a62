//! `chaosgate rules`: Prometheus recording and burn-rate alerting rules for a scenario's
//! SLO (docs/alerts.md). The rules come from `report::promrules`; this file reads the
//! scenario and writes the file.

use crate::report::promrules::{self, RulesInput, Selector, DEFAULT_ERRORS, DEFAULT_REQUESTS};
use anyhow::{anyhow, bail};
use std::path::PathBuf;

/// `chaosgate rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// Scenario file (TOML): its `[slo]` target and period, and its name.
    pub scenario: PathBuf,
    /// Override a key of the scenario: --set slo.target=0.995 (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Write the rules here (default, or `-`: stdout).
    #[arg(long, short, value_name = "PATH|-")]
    pub out: Option<PathBuf>,
    /// PromQL selector of every request the SLO counts (a metric name and label matchers).
    #[arg(long, value_name = "SELECTOR", default_value = DEFAULT_REQUESTS)]
    pub requests: String,
    /// PromQL selector of the failed ones.
    #[arg(long, value_name = "SELECTOR", default_value = DEFAULT_ERRORS)]
    pub errors: String,
    /// Value of the `slo` label on every recorded series and alert (default: the scenario's name).
    #[arg(long, value_name = "NAME")]
    pub slo_name: Option<String>,
}

/// The rules text for `a` (what [`rules`] writes).
pub fn rules_text(a: &RulesArgs) -> anyhow::Result<String> {
    let requests = Selector::parse(&a.requests).map_err(|m| anyhow!("--requests {:?}: {m}", a.requests))?;
    let errors = Selector::parse(&a.errors).map_err(|m| anyhow!("--errors {:?}: {m}", a.errors))?;
    let set = crate::scenario::load(&a.scenario, &a.set)?;
    let first = &set.points[0].scenario;
    if set.points.iter().any(|p| p.scenario.slo != first.slo) {
        bail!(
            "{}: the sweep changes [slo]; the rules need one target: pick one with --set slo.target=…",
            a.scenario.display()
        );
    }
    let slo = a.slo_name.clone().unwrap_or_else(|| first.name.clone());
    let input = RulesInput {
        slo,
        target: first.slo.target,
        period_s: first.slo.period.secs_f64(),
        requests,
        errors,
    };
    let group = promrules::rule_group(&input).map_err(|m| anyhow!("{}: {m}", a.scenario.display()))?;
    let header = vec![
        format!(
            "Prometheus rules for the SLO {:?} (chaosgate rules {}).",
            input.slo,
            a.scenario.display()
        ),
        format!(
            "Target {} over {}: multi-window burn-rate alerts (docs/alerts.md).",
            promrules::number(input.target),
            first.slo.period
        ),
        format!("Requests: {}", input.requests),
        format!("Errors:   {}", input.errors),
        "Check: promtool check rules FILE".to_string(),
    ];
    Ok(promrules::render_yaml(&group, &header))
}

/// `chaosgate rules`: writes the rules file (or prints it).
pub fn rules(a: RulesArgs) -> anyhow::Result<u8> {
    let text = rules_text(&a)?;
    match a.out.as_deref() {
        None => print!("{text}"),
        Some(p) if p.as_os_str() == "-" => print!("{text}"),
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))?;
            eprintln!(
                "wrote {} recording and {} alerting rules to {} (check: promtool check rules {})",
                promrules::windows().len(),
                crate::analysis::budget::RULES.len(),
                p.display(),
                p.display()
            );
        }
    }
    Ok(0)
}
