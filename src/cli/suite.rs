//! `chaosgate suite`: the failure-mode catalogue as a scorecard against a gateway
//! (`docs/suite.md`).

use super::args::SuiteArgs;
use crate::suite::{self, Entry, Filter, SuiteOptions, SuiteReport, Verdict};
use std::path::PathBuf;

/// Live entries run at once by default: each mostly waits on its timeline, so three fit
/// two cores (the whole catalogue against LiteLLM in about 9.5 minutes here).
const LIVE_JOBS: usize = 3;

fn list(entries: &[Entry]) -> String {
    let w = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for e in entries {
        s += &format!(
            "{:<w$}  {:<4}  {:<28}  {}\n",
            e.name,
            e.best.as_str(),
            e.tags.join(","),
            e.title
        );
    }
    s += &format!("{} entries\n", entries.len());
    s
}

/// Reads an `--expect` file: entry name → verdict.
fn read_expect(p: &std::path::Path) -> anyhow::Result<std::collections::BTreeMap<String, Verdict>> {
    let src = crate::diag::read_config(p)?;
    let t: toml::Table =
        toml::from_str(&src).map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.message().trim()))?;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in t {
        let Some(v) = v.as_str().and_then(Verdict::parse) else {
            anyhow::bail!(
                "{}: {k} = {v}: a verdict is \"pass\", \"safe\", \"degraded\", \"fail\" or \"error\"",
                p.display()
            )
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn expect_text(r: &SuiteReport) -> String {
    let mut s = format!(
        "# Verdicts of `chaosgate suite` against {} ({}), chaosgate {}: pin with --expect\n",
        r.gateway, r.mode, r.chaosgate
    );
    for e in &r.entries {
        s += &format!("{} = \"{}\"\n", e.name, e.verdict.as_str());
    }
    s
}

/// The command that reruns one entry as this suite ran it.
fn rerun(a: &SuiteArgs, e: &Entry) -> String {
    let mut c = String::from("chaosgate suite");
    if let Some(g) = &a.gateway {
        c += &format!(" --gateway {}", g.display());
    }
    if let Some(d) = &a.entries {
        c += &format!(" --entries {}", d.display());
    }
    if a.live {
        c += " --live";
    }
    for s in &a.set {
        c += &format!(" --set '{s}'");
    }
    if let Some(s) = a.seed {
        c += &format!(" --seed {s}");
    }
    c + &format!(" --only {}", e.name)
}

/// `chaosgate suite`.
pub async fn suite(a: SuiteArgs) -> anyhow::Result<u8> {
    use super::commands::{check_output_paths, is_stdout, write_json_out};
    check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--junit", a.junit.as_deref()),
        ("--markdown", a.markdown.as_deref()),
        ("--html", a.html.as_deref()),
        ("--write-expect", a.write_expect.as_deref()),
    ])?;
    let extra = match &a.entries {
        Some(d) => suite::from_dir(d).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let filter = Filter {
        only: a.only.clone(),
        skip: a.skip.clone(),
        tags: a.tags.clone(),
    };
    let entries =
        suite::select(suite::builtin().map_err(anyhow::Error::msg)?, extra, &filter).map_err(anyhow::Error::msg)?;
    if a.list {
        print!("{}", list(&entries));
        return Ok(0);
    }
    let expect = a.expect.as_deref().map(read_expect).transpose()?;
    let gateway = match &a.gateway {
        None => suite::merge::GatewayScenario {
            file: "examples/gateways/builtin/scenario.toml (built in)".into(),
            text: suite::DEFAULT_GATEWAY.into(),
            dir: PathBuf::from("."),
        },
        Some(p) => {
            let text = crate::diag::read_config(p)?;
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            suite::merge::GatewayScenario {
                file: p.display().to_string(),
                text,
                dir: abs.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
            }
        }
    };
    let mut o = SuiteOptions {
        gateway,
        sets: a.set.clone(),
        live: a.live,
        repeat: a.repeat as usize,
        seed: a.seed,
        jobs: 1,
        run_dir: PathBuf::new(),
        allow_large: a.allow_large,
        progress: !a.quiet,
    };
    let sim = suite::runner::simulated(&o).map_err(anyhow::Error::msg)?;
    o.jobs = a.jobs.unwrap_or(if sim {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        LIVE_JOBS
    });
    let dir = a
        .run_dir
        .clone()
        .unwrap_or_else(|| super::commands::default_run_dir("suite"));
    o.run_dir = std::path::absolute(&dir).unwrap_or(dir);
    let command = |e: &Entry| rerun(&a, e);
    if !a.quiet {
        eprintln!(
            "chaosgate suite: {} entr{} against {} ({}), {} at a time{}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            o.gateway.file,
            if sim { "simulated" } else { "live" },
            o.jobs,
            if sim {
                String::new()
            } else {
                format!("; run files in {}", o.run_dir.display())
            }
        );
    }
    let report = if sim {
        suite::runner::run_simulated(&entries, &o, &command)
    } else {
        suite::runner::run_live(&entries, &o, &command).await
    }
    .map_err(anyhow::Error::msg)?;
    let text = crate::suite::scorecard::text(&report);
    if a.json.as_deref().is_some_and(is_stdout) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(p) = &a.json {
        write_json_out(p, &report)?;
    }
    if let Some(p) = &a.junit {
        std::fs::write(p, crate::suite::scorecard::junit(&report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &a.markdown {
        std::fs::write(p, crate::suite::scorecard::markdown(&report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &a.html {
        let page = crate::suite::scorecard::html(
            &report,
            &crate::report::html::Provenance::new(&super::commands::reproduce(Some(report.seed))),
        );
        super::commands::write_html(p, &page)?;
    }
    if let Some(p) = &a.write_expect {
        std::fs::write(p, expect_text(&report)).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if report.partial {
        eprintln!("chaosgate suite: interrupted; the scorecard above is partial");
        return Ok(130);
    }
    let mut code = 0;
    if report.entries.iter().any(|e| e.error.is_some()) {
        eprintln!("chaosgate suite: some entries could not run (verdict error): see the scorecard");
        code = 2;
    }
    if let Some(exp) = expect {
        let mut diffs = Vec::new();
        for e in &report.entries {
            match exp.get(&e.name) {
                Some(v) if *v != e.verdict => {
                    diffs.push(format!("{}: pinned {}, got {}", e.name, v.as_str(), e.verdict.as_str()))
                }
                None => diffs.push(format!("{}: got {}, not pinned", e.name, e.verdict.as_str())),
                _ => {}
            }
        }
        if !diffs.is_empty() {
            eprintln!(
                "chaosgate suite: verdicts differ from --expect:\n  {}",
                diffs.join("\n  ")
            );
            code = code.max(1);
        }
    }
    if let Some(f) = &a.fail_on {
        let bound = Verdict::parse(f).unwrap_or(Verdict::Fail);
        let bad: Vec<&str> = report
            .entries
            .iter()
            .filter(|e| e.verdict >= bound && e.verdict != Verdict::Error)
            .map(|e| e.name.as_str())
            .collect();
        if !bad.is_empty() {
            eprintln!("chaosgate suite: {} at or below {f}: {}", bad.len(), bad.join(", "));
            code = code.max(1);
        }
    }
    Ok(code)
}
