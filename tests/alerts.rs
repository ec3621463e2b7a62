//! `chaosgate rules` (docs/alerts.md): the rules file it writes, its errors, and — with
//! `promtool` (`scripts/prometheus-setup`; `cargo test --test alerts -- --ignored`) —
//! Prometheus's own verdict: `promtool check rules` accepts the file, and `promtool test
//! rules`, fed a simulated run's request and error counters, fires each burn-rate alert at
//! the first evaluation at or after the time chaosgate's budget analysis reports.
#![allow(clippy::disallowed_methods)] // tests drive the program: files, processes

use chaosgate::analysis::budget::{self, RULES};
use chaosgate::report::promrules::{self, yaml_quote, RuleGroup, RulesInput, Selector};
use chaosgate::time::NS_PER_S;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("alerts-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chaosgate(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn the_command_writes_the_rules_of_the_scenarios_slo() {
    let dir = tmp("cli");
    let out = dir.join("rules.yml");
    let o = chaosgate(&[
        "rules",
        "examples/incidents/3am-hang.toml",
        "--set",
        "slo.target=0.995",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrote 5 recording and 3 alerting rules"));
    let text = std::fs::read_to_string(&out).unwrap();
    // 99.5 %: thresholds 14.4 × 0.005 = 0.072, 6 × 0.005 = 0.03, 1 × 0.005 = 0.005
    for (name, th, long, short) in [
        ("page_14.4x_1h_5m", "0.072", "1h", "5m"),
        ("page_6x_6h_30m", "0.03", "6h", "30m"),
        ("ticket_1x_3d_6h", "0.005", "3d", "6h"),
    ] {
        let want = format!(
            "      - alert: \"{name}\"\n        expr: \"chaosgate_slo:error_ratio:rate{long}{{slo=\\\"3am-hang\\\"}} > {th} and chaosgate_slo:error_ratio:rate{short}{{slo=\\\"3am-hang\\\"}} > {th}\"\n"
        );
        assert!(text.contains(&want), "{want}\nnot in:\n{text}");
    }
    // stdout is the same text
    let o = chaosgate(&["rules", "examples/incidents/3am-hang.toml", "--set", "slo.target=0.995"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8(o.stdout).unwrap(), text);
}

#[test]
fn bad_inputs_get_a_clear_error() {
    for (args, want) in [
        (vec!["--requests", ""], "--requests \"\": empty"),
        (
            vec!["--errors", "http-errors"],
            "--errors \"http-errors\": unexpected `-`",
        ),
        (vec!["--errors", "rate(x[5m])"], "unexpected `(`"),
        (vec!["--requests", "x{code=5}"], "label `code`: expected a quoted value"),
        (vec!["--set", "slo.target=1.5"], "must be in (0, 1)"),
        (vec!["--set", "slo.target=0"], "must be in (0, 1)"),
        (vec!["--slo-name", ""], "SLO name (the `slo` label) is empty"),
    ] {
        let mut a = vec!["rules", "examples/incidents/3am-hang.toml"];
        a.extend(&args);
        let o = chaosgate(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(o.stdout.is_empty());
    }
}

// ---- promtool --------------------------------------------------------------------------

/// `promtool`, or `None` (with a message) when it is missing and not required.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var("CHAOSGATE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
        panic!("promtool not found and CHAOSGATE_REQUIRE_PROMTOOL=1: run scripts/prometheus-setup");
    }
    eprintln!("skipped: promtool not found (scripts/prometheus-setup installs it)");
    None
}

fn run_promtool(args: &[&str], dir: &Path) {
    let o = Command::new("promtool").args(args).current_dir(dir).output().unwrap();
    assert!(
        o.status.success(),
        "promtool {} failed ({}) in {}:\n{}{}",
        args.join(" "),
        o.status,
        dir.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// promtool's output when it fails (and it must).
fn promtool_fails(args: &[&str], dir: &Path) -> String {
    let o = Command::new("promtool").args(args).current_dir(dir).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success(),
        "promtool {} passed in {}, and must not:\n{text}",
        args.join(" "),
        dir.display()
    );
    text
}

fn default_input(slo: &str, s: &chaosgate::scenario::Scenario) -> RulesInput {
    RulesInput {
        slo: slo.to_string(),
        target: s.slo.target,
        period_s: s.slo.period.secs_f64(),
        requests: Selector::parse(promrules::DEFAULT_REQUESTS).unwrap(),
        errors: Selector::parse(promrules::DEFAULT_ERRORS).unwrap(),
    }
}

#[test]
#[ignore = "needs promtool: scripts/prometheus-setup"]
fn promtool_checks_the_generated_rules() {
    if promtool().is_none() {
        return;
    }
    let dir = tmp("check");
    // the defaults, and a name and selectors full of characters to escape
    for (file, extra) in [
        ("default.yml", vec![]),
        (
            "odd.yml",
            vec![
                "--slo-name",
                "we\"ird\\slo\nname\u{2028}é",
                "--requests",
                "sum{path=\"/v1/\\\"chat\\\"\",code!~`5\\d\\d`}",
                "--errors",
                "ns:http_requests_total{code=~'5..'}",
            ],
        ),
    ] {
        let out = dir.join(file);
        let mut a = vec![
            "rules",
            "examples/incidents/3am-hang.toml",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend(&extra);
        let o = chaosgate(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        run_promtool(&["check", "rules", file], &dir);
    }
}

/// One promtool unit-test file: counters sampled every `step` (= the evaluation
/// interval), `fill` seconds of good traffic before the run, checks of `alerts`.
struct Grid {
    step: u64,
    fill: u64,
    alerts: &'static [&'static str],
}

/// The errors counter's value before the run: a counter that has been counting for a long
/// time. (Prometheus's rate() never extrapolates a counter below zero; an errors counter
/// at 0 would make its window shorter than the requests counter's when a window's first
/// sample is not on its boundary, as in Prometheus 3's left-open ranges.)
const ERRORS_BEFORE: f64 = 1e6;

/// One alert's check: chaosgate's time and the evaluation Prometheus must fire at
/// (seconds since the run started; `None`: never).
struct Expect {
    name: String,
    chaosgate: Option<f64>,
    prometheus: Option<u64>,
}

/// The promtool test file for one run: input series and, per alert, the evaluation before
/// and at chaosgate's time (or, when chaosgate says it never fires, every evaluation of
/// the run). `early` moves the expected firing one evaluation earlier: a file promtool
/// must reject.
#[allow(clippy::too_many_arguments)]
fn promtool_test(
    rules_file: &str,
    g: &RuleGroup,
    grid: &Grid,
    totals: &[u64],
    bad: &[u64],
    bucket_s: f64,
    rate: f64,
    fired: &[(String, Option<f64>)],
    early: bool,
) -> (String, Vec<Expect>) {
    let per_step = (grid.step as f64 / bucket_s).round() as usize;
    assert!((per_step as f64 * bucket_s - grid.step as f64).abs() < 1e-9);
    let fill_n = grid.fill / grid.step;
    let run_n = totals.len().div_ceil(per_step);
    let r = grid.fill; // the run starts here
    let x = rate * grid.step as f64;
    let mut ok_vals = Vec::new();
    let mut err_vals = Vec::new();
    for k in 0..=fill_n {
        ok_vals.push(k as f64 * x);
        err_vals.push(ERRORS_BEFORE);
    }
    let base = fill_n as f64 * x;
    let (mut ok_sum, mut bad_sum) = (0u64, 0u64);
    for j in 0..run_n {
        for i in j * per_step..((j + 1) * per_step).min(totals.len()) {
            ok_sum += totals[i] - bad[i];
            bad_sum += bad[i];
        }
        ok_vals.push(base + ok_sum as f64);
        err_vals.push(ERRORS_BEFORE + bad_sum as f64);
    }
    let join = |v: &[f64]| v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(" ");
    let mut y = String::new();
    let _ = writeln!(y, "rule_files: [{}]", yaml_quote(rules_file));
    let _ = writeln!(y, "evaluation_interval: {}s", grid.step);
    y.push_str("tests:\n");
    let _ = writeln!(y, "  - interval: {}s", grid.step);
    y.push_str("    input_series:\n");
    let _ = writeln!(y, "      - series: 'chaosgate_load_requests_total{{outcome=\"ok\"}}'");
    let _ = writeln!(y, "        values: \"{}\"", join(&ok_vals));
    let _ = writeln!(
        y,
        "      - series: 'chaosgate_load_requests_total{{outcome=\"http_502\"}}'"
    );
    let _ = writeln!(y, "        values: \"{}\"", join(&err_vals));
    y.push_str("    alert_rule_test:\n");
    let check = |y: &mut String, t: u64, a: &promrules::Alert, firing: bool| {
        let _ = writeln!(y, "      - eval_time: {t}s");
        let _ = writeln!(y, "        alertname: {}", yaml_quote(&a.alert));
        if !firing {
            y.push_str("        exp_alerts: []\n");
            return;
        }
        y.push_str("        exp_alerts:\n          - exp_labels:\n");
        for (k, v) in &a.labels {
            let _ = writeln!(y, "              {k}: {}", yaml_quote(v));
        }
        y.push_str("            exp_annotations:\n");
        for (k, v) in &a.annotations {
            let _ = writeln!(y, "              {k}: {}", yaml_quote(v));
        }
    };
    let mut plan = Vec::new();
    for name in grid.alerts {
        let a = g.alerts.iter().find(|a| a.alert == *name).unwrap();
        let t = fired.iter().find(|(n, _)| n == name).unwrap().1;
        match t {
            Some(t) => {
                // the first evaluation at or after chaosgate's time (to the 100 ms bucket)
                let at = r + ((t * 10.0).round() as u64).div_ceil(grid.step * 10) * grid.step;
                let expect = if early { at - grid.step } else { at };
                check(&mut y, expect - grid.step, a, false);
                check(&mut y, expect, a, true);
                plan.push(Expect {
                    name: name.to_string(),
                    chaosgate: Some(t),
                    prometheus: Some(at - r),
                });
            }
            None => {
                for j in 0..=run_n as u64 {
                    check(&mut y, r + j * grid.step, a, false);
                }
                plan.push(Expect {
                    name: name.to_string(),
                    chaosgate: None,
                    prometheus: None,
                });
            }
        }
    }
    (y, plan)
}

/// Simulates `scenario`, checks chaosgate fires `must_fire`, then has promtool evaluate
/// the generated rules over the run's counters on each grid.
fn agree(scenario: &str, must_fire: &[&str], grids: &[Grid]) {
    let s = chaosgate::scenario::load_scenario(&root().join(scenario)).unwrap();
    let (run, out) = chaosgate::sim::once::simulate_once(&s, s.seed.unwrap_or(1), 0).unwrap();
    let (totals, bad) = out.aggregator.budget_counts();
    let bucket = out.aggregator.bucket_len();
    let bucket_s = bucket as f64 / NS_PER_S as f64;
    // the rate the budget analysis fills windows before the run with (docs/semantics.md §4)
    let run_s = totals.len() as f64 * bucket_s;
    let rate = s.slo.rate.unwrap_or(totals.iter().sum::<u64>() as f64 / run_s);
    let again = budget::analyze(s.slo.target, s.slo.period.secs_f64(), bucket, &totals, &bad, s.slo.rate);
    assert_eq!(again.alerts, run.budget.alerts, "the run's budget is these counts'");
    for name in must_fire {
        let t = run.budget.alerts.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            t.is_some(),
            "{scenario}: chaosgate never fires {name}: {:?}",
            run.budget.alerts
        );
    }
    let g = promrules::rule_group(&default_input(&s.name, &s)).unwrap();
    let dir = tmp(&s.name);
    std::fs::write(dir.join("rules.yml"), promrules::render_yaml(&g, &[])).unwrap();
    run_promtool(&["check", "rules", "rules.yml"], &dir);
    for grid in grids {
        let test = |early| {
            promtool_test(
                "rules.yml",
                &g,
                grid,
                &totals,
                &bad,
                bucket_s,
                rate,
                &run.budget.alerts,
                early,
            )
        };
        let (text, plan) = test(false);
        let file = format!("test-{}s.yml", grid.step);
        std::fs::write(dir.join(&file), text).unwrap();
        run_promtool(&["test", "rules", &file], &dir);
        // the check can fail: one evaluation earlier, every alert is not firing yet
        let early = format!("early-{}s.yml", grid.step);
        std::fs::write(dir.join(&early), test(true).0).unwrap();
        let failed = promtool_fails(&["test", "rules", &early], &dir);
        for e in plan.iter().filter(|e| e.chaosgate.is_some()) {
            assert!(
                failed.contains(&format!("alertname: {}, ", e.name)),
                "{} not in:\n{failed}",
                e.name
            );
        }
        for Expect {
            name,
            chaosgate: t,
            prometheus: at,
        } in plan
        {
            match (t, at) {
                (Some(t), Some(at)) => eprintln!(
                    "{}: {name}: chaosgate {t:.1} s, Prometheus (every {} s) fires at {at} s, not at {} s",
                    s.name,
                    grid.step,
                    at - grid.step
                ),
                _ => eprintln!("{}: {name}: never, in both (every {} s)", s.name, grid.step),
            }
        }
    }
}

/// The 14.4× page needs 1 h of history; every second.
const PAGE_1S: Grid = Grid {
    step: 1,
    fill: 3600 + 300,
    alerts: &["page_14.4x_1h_5m"],
};
/// The two pages need 6 h of history; every 10 s.
const PAGES: Grid = Grid {
    step: 10,
    fill: 6 * 3600 + 1800,
    alerts: &["page_14.4x_1h_5m", "page_6x_6h_30m"],
};
/// All three, with the ticket's 3 days of history; every minute (a 10 s grid over 3 days
/// is more samples than promtool lets one query load).
const ALL: Grid = Grid {
    step: 60,
    fill: 3 * 86_400 + 3600,
    alerts: &["page_14.4x_1h_5m", "page_6x_6h_30m", "ticket_1x_3d_6h"],
};

#[test]
#[ignore = "needs promtool: scripts/prometheus-setup"]
fn prometheus_fires_each_alert_when_chaosgate_says_hard_outage() {
    if promtool().is_none() {
        return;
    }
    assert_eq!(RULES.len(), 3);
    agree(
        "tests/alerts/outage.toml",
        &["page_14.4x_1h_5m", "page_6x_6h_30m", "ticket_1x_3d_6h"],
        &[PAGE_1S, PAGES, ALL],
    );
}

#[test]
#[ignore = "needs promtool: scripts/prometheus-setup"]
fn prometheus_fires_each_alert_when_chaosgate_says_3am_hang() {
    if promtool().is_none() {
        return;
    }
    agree(
        "examples/incidents/3am-hang.toml",
        &["page_14.4x_1h_5m"],
        &[PAGE_1S, PAGES, ALL],
    );
}
