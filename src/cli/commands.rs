//! What each subcommand does (kept out of `main.rs` so tests can call it in-process).

use crate::cli::{random_seed, ArrivalArg, GatewayArgs, LoadArgs, MockArgs};
use crate::fault::Profile;
use crate::live::mock::{self, MockConfig};
use crate::live::net::{self, ServerHandle};

/// `chaosgate mock`: serves one provider or every provider of a scenario until stopped.
pub async fn mock(args: MockArgs) -> anyhow::Result<u8> {
    let mut configs: Vec<(MockConfig, String)> = Vec::new();
    let seed;
    if let Some(path) = &args.scenario {
        let (scenario_seed, providers) = crate::scenario::load_providers(path)?;
        seed = args.seed.or(scenario_seed).unwrap_or_else(random_seed);
        for p in providers {
            configs.push((MockConfig::new(&p.name, p.api, p.profile, seed), p.listen));
        }
    } else {
        let api = args
            .api
            .ok_or_else(|| anyhow::anyhow!("--api or --scenario is required"))?;
        seed = args.seed.unwrap_or_else(random_seed);
        let profile = match &args.profile {
            Some(p) => Profile::load(p)?,
            None => Profile::default(),
        };
        let name = args.name.clone().unwrap_or_else(|| api.as_str().to_string());
        configs.push((MockConfig::new(&name, api, profile, seed), args.listen.clone()));
    }
    let mut handles: Vec<ServerHandle> = Vec::new();
    for (mut cfg, listen) in configs {
        cfg.allow_fault_header = !args.no_fault_header;
        cfg.admin_any_peer = args.admin_any_peer;
        cfg.max_body_bytes = args.max_body_bytes;
        if args.no_default_probes {
            cfg.probe = mock::probe::ProbeMatcher::none();
        }
        for rule in &args.probe_header {
            cfg.probe.add_header_rule(rule).map_err(anyhow::Error::msg)?;
        }
        for p in &args.probe_prompt {
            cfg.probe.add_prompt(p);
        }
        let listener = net::bind(&listen).await?;
        let name = cfg.name.clone();
        let api = cfg.api;
        let profile = cfg.profile.name.clone().unwrap_or_else(|| "pass-through".into());
        let (h, _state) = mock::spawn(cfg, listener).await?;
        println!(
            "chaosgate mock: {name} ({}) listening on http://{}  profile={profile}  seed={seed}",
            api.as_str(),
            h.addr
        );
        handles.push(h);
    }
    println!("chaosgate mock: reproduce with --seed {seed}; admin API at /_chaosgate/state; Ctrl-C to stop");
    crate::live::signal::shutdown_signal().await;
    for h in handles {
        h.shutdown().await;
    }
    Ok(0)
}

/// Builds the traffic table from `chaosgate load` flags.
pub fn traffic_from_args(a: &LoadArgs) -> anyhow::Result<crate::traffic::TrafficConfig> {
    use crate::traffic::{ArrivalKind, ThinkTime, TrafficConfig};
    let think_time = match (&a.think, a.pacing) {
        (Some(t), _) => Some(*t),
        (None, Some(p)) => Some(ThinkTime::Pacing { interval: p }),
        (None, None) => None,
    };
    let mut stages = Vec::new();
    for st in &a.stage {
        let (d, t) = st
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--stage {st:?}: expected DURATION:TARGET, e.g. 5m:200"))?;
        let duration: crate::time::Dur = d.parse().map_err(|e: String| anyhow::anyhow!("--stage {st:?}: {e}"))?;
        let target: f64 = t
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--stage {st:?}: {t:?} is not a rate in req/s"))?;
        stages.push(crate::traffic::Stage { duration, target });
    }
    let cfg = TrafficConfig {
        api: Some(a.api),
        stages,
        start_rate: a.start_rate,
        duration: a.duration,
        rate: a.rate,
        arrival: match a.arrival {
            ArrivalArg::Constant => ArrivalKind::Constant,
            ArrivalArg::Poisson => ArrivalKind::Poisson,
            ArrivalArg::Gamma => ArrivalKind::Gamma,
        },
        burstiness: a.burstiness,
        users: a.users,
        spawn_rate: a.spawn_rate,
        think_time,
        trace: a.trace.clone(),
        speed: a.speed,
        mix: a.mix.clone(),
        ..TrafficConfig::default()
    };
    let problems = cfg.problems();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems
            .into_iter()
            .map(|(k, m)| format!("--{}: {m}", k.to_string().replace('_', "-")))
            .collect();
        anyhow::bail!("{}", msgs.join("\n"));
    }
    Ok(cfg)
}

/// `chaosgate load`: runs the traffic against `--target` and reports.
pub async fn load(a: LoadArgs) -> anyhow::Result<u8> {
    use crate::analysis::SloThresholds;
    use crate::live::load::{self as live, LoadOptions};
    let shard = live_shard_plan(&a.shard)?;
    let csv = a
        .csv
        .as_ref()
        .map(|p| std::path::PathBuf::from(format!("{p}_stats.csv")));
    check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--csv", csv.as_deref()),
        ("--hlog", a.hlog.as_deref()),
        ("--html", a.html.as_deref()),
        ("--result", shard.as_ref().and_then(|p| p.result.as_deref())),
    ])?;
    let cfg = traffic_from_args(&a)?;
    let base = std::path::Path::new(".");
    let crate::traffic::TrafficPlan { mix, source } = cfg.plan(base, a.api)?;
    live::base_url(&a.target).map_err(anyhow::Error::msg)?;
    let work = crate::run::limits::Work::of(
        &source,
        crate::run::limits::Mode::Live {
            concurrency: a.concurrency.max(1),
        },
        a.bucket.0.max(1_000_000),
        1,
    );
    if let Some(note) = crate::run::limits::check("this load run", &work, a.allow_large)? {
        eprintln!("chaosgate: {note}");
    }
    let seed = a.seed.unwrap_or_else(random_seed);
    let mut opts = LoadOptions::new(&a.target, a.api, seed);
    opts.concurrency = a.concurrency.max(1);
    opts.timeout = a.timeout.0;
    opts.ttft_timeout = a.ttft_timeout.map(|d| d.0);
    opts.stall_timeout = a.stall_timeout.map(|d| d.0);
    opts.grace = a.grace.map_or(a.timeout.0, |d| d.0);
    opts.bucket = a.bucket.0.max(1_000_000);
    opts.slo = SloThresholds {
        ttft: a.slo_ttft.map(|d| d.0),
        tpot: a.slo_tpot.map(|d| d.0),
        e2e: a.slo_e2e.map(|d| d.0),
    };
    opts.api_key = a.api_key.clone();
    opts.phases = parse_phases(&a.phase)?;
    opts.start_latency = a.html.is_some();
    let fingerprint = crate::cli::shard::load_fingerprint(&a, &cfg, &opts)?;
    let mut start_wall = std::time::SystemTime::now();
    let mut late = 0;
    let mut shard_warnings = Vec::new();
    if let Some(p) = &shard {
        opts.shard = p.shard;
        if let Some(at) = p.start_at {
            let t0 = crate::cli::shard::start_instant(at, source.end(), "chaosgate load")?;
            late = t0.1;
            if late > 0 {
                shard_warnings.push(crate::cli::shard::late_warning(&p.name, late));
            }
            opts.t0 = Some(t0.0);
            start_wall = at;
        }
    }
    eprintln!(
        "chaosgate load: {} seed={seed} (reproduce the schedule with --seed {seed}){}",
        a.target,
        shard
            .as_ref()
            .map_or(String::new(), |p| format!("; shard {} ({})", p.shard, p.name))
    );
    let (stop_rx, signals) = crate::live::signal::stop_on_signal();
    opts.stop = Some(stop_rx);
    let exporter = start_metrics(&a.metrics).await?;
    let progress =
        crate::run::progress::Reporter::start("load", !a.quiet, vec![(String::new(), source.end())], 1, false);
    opts.live = progress.begin_run(0, 0);
    opts.metrics = exporter.as_ref().map(|x| x.exporter.load.clone());
    let result = live::run(source, mix, opts).await;
    progress.finish();
    signals.abort();
    let result = result?;
    let out = LoadOut {
        json: a.json.as_deref(),
        csv: a.csv.as_deref(),
        hlog: a.hlog.as_deref(),
        html: a.html.as_deref(),
        quiet: false,
        asserts: &[],
        junit: None,
    };
    let target = a.target.clone();
    render_load(
        &result,
        &target,
        seed,
        start_wall,
        a.users.unwrap_or(0),
        &out,
        &shard_warnings,
        None,
    )?;
    linger_metrics(exporter, &a.metrics, result.totals.interrupted).await;
    let (interrupted, in_flight) = (result.totals.interrupted, result.totals.in_flight_at_end);
    if let Some(p) = &shard {
        let mut body = crate::run::shard::LoadBody::of(
            result,
            start_wall,
            late,
            a.users.unwrap_or(0),
            a.allow_in_flight,
            shard_warnings,
        );
        body.target = target;
        crate::cli::shard::write_result(p, crate::run::shard::Kind::Load, fingerprint, seed, !interrupted, body)?;
    }
    Ok(crate::cli::shard::load_exit(
        "load",
        interrupted,
        in_flight,
        a.allow_in_flight,
    ))
}

/// `--phase NAME=START..END` windows.
pub fn parse_phases(v: &[String]) -> anyhow::Result<Vec<(String, crate::time::Nanos, crate::time::Nanos)>> {
    v.iter()
        .map(|p| {
            let err = || anyhow::anyhow!("--phase {p:?}: expected NAME=START..END, e.g. outage=60s..300s");
            let (name, range) = p.split_once('=').ok_or_else(err)?;
            let (s, e) = range.split_once("..").ok_or_else(err)?;
            let s: crate::time::Dur = s.parse().map_err(|m: String| anyhow::anyhow!("--phase {p:?}: {m}"))?;
            let e: crate::time::Dur = e.parse().map_err(|m: String| anyhow::anyhow!("--phase {p:?}: {m}"))?;
            if name.trim().is_empty() || e <= s {
                return Err(anyhow::anyhow!("--phase {p:?}: needs a name and END after START"));
            }
            Ok((name.trim().to_string(), s.0, e.0))
        })
        .collect()
}

/// Parses `--breaker` quick forms.
pub fn parse_breaker(s: &str) -> anyhow::Result<Option<crate::gateway::BreakerConfig>> {
    use crate::gateway::BreakerConfig;
    use crate::time::Dur;
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    let (kind, args) = s.split_once(':').unwrap_or((s, ""));
    let a: Vec<&str> = args.split(',').map(str::trim).filter(|x| !x.is_empty()).collect();
    let bad = |why: &str| {
        anyhow::anyhow!("--breaker {s:?}: {why} (forms: consecutive:N,EJECT  article:N,RECOVERY,HALF_OPEN  rate:RATIO,MIN_CALLS,WAIT  none)")
    };
    let num = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| bad(&format!("{x:?} is not a whole number")))
    };
    let dur = |x: &str| x.parse::<Dur>().map_err(|e| bad(&e));
    Ok(Some(match kind {
        "consecutive" if a.len() == 2 => {
            let base = dur(a[1])?;
            BreakerConfig::Consecutive {
                failures: num(a[0])?,
                base_ejection: base,
                max_ejection: Dur(base.0.max(300_000_000_000)),
            }
        }
        "article" if a.len() == 3 => BreakerConfig::Article {
            failure_threshold: num(a[0])?,
            recovery_timeout: dur(a[1])?,
            half_open_max_requests: num(a[2])?,
        },
        "rate" | "failure_rate" | "failure-rate" if a.len() == 3 => {
            let ratio: f64 = a[0].parse().map_err(|_| bad("RATIO must be a number in (0, 1]"))?;
            let min = num(a[1])?;
            BreakerConfig::FailureRate {
                failure_rate_threshold: ratio,
                slow_call_rate_threshold: 1.0,
                slow_call_duration: Dur::from_secs(60),
                window_size: min.max(1),
                window: None,
                minimum_calls: min.max(1),
                wait_open: dur(a[2])?,
                half_open_calls: 10,
            }
        }
        "consecutive" | "article" | "rate" | "failure_rate" | "failure-rate" => {
            return Err(bad("wrong number of values"))
        }
        _ => return Err(bad("unknown kind")),
    }))
}

/// Builds the gateway's policy and wiring from a file and/or flags.
pub fn gateway_config(a: &GatewayArgs) -> anyhow::Result<crate::live::wiring::ProxyConfig> {
    use crate::gateway::TargetConfig;
    use crate::live::wiring::ProxyConfig;
    let mut proxy: ProxyConfig = match &a.config {
        Some(p) => {
            let text = crate::diag::read_config(p)?;
            let file = p.display().to_string();
            let doc: toml_edit::DocumentMut = text
                .parse()
                .map_err(|e| crate::diag::ConfigErrors::syntax(&text, &file, &e))?;
            let (cfg, problems) = ProxyConfig::from_doc(&doc);
            // flags may still supply what the file lacks (targets, …): their problems are
            // checked once all is merged, below
            let problems: Vec<_> = if a.target.is_empty() {
                problems
            } else {
                problems
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with(&crate::diag::Path::root().key("targets")))
                    .collect()
            };
            crate::diag::ConfigErrors::check(&text, &file, problems)?;
            cfg.ok_or_else(|| {
                anyhow::anyhow!(
                    "{file}: every target needs a `url` (targets from --target replace the file's, not their URLs)"
                )
            })?
        }
        None => ProxyConfig::new(toml::from_str("targets = []").expect("empty config"), Vec::new()),
    };
    if !a.target.is_empty() {
        let mut targets = Vec::new();
        let mut urls = Vec::new();
        for t in &a.target {
            let (name, url) = t
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--target {t:?}: expected NAME=URL"))?;
            targets.push(TargetConfig {
                name: name.trim().into(),
                weight: 1.0,
                cost_per_1k: None,
                max_cost_per_1k: None,
                max_latency: None,
                latency_backoff: None,
                api: None,
            });
            urls.push(url.trim().to_string());
        }
        proxy.policy.targets = targets;
        proxy.upstreams = urls;
    }
    if let Some(l) = &a.listen {
        proxy.listen = l.clone();
    }
    if a.pass_chaosgate_headers {
        proxy.pass_chaosgate_headers = true;
    }
    if let Some(w) = a.workers {
        proxy.workers = usize::from(w);
    }
    let cfg = &mut proxy.policy;
    if let Some(s) = a.strategy {
        cfg.strategy = s;
    }
    if a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.unhealthy_threshold.is_some()
        || a.healthy_threshold.is_some()
    {
        let mut h = cfg.health_check.clone().unwrap_or_default();
        if let Some(v) = a.health_interval {
            h.interval = v;
        }
        if let Some(v) = a.health_timeout {
            h.timeout = v;
        }
        if let Some(v) = a.unhealthy_threshold {
            h.unhealthy_threshold = v;
        }
        if let Some(v) = a.healthy_threshold {
            h.healthy_threshold = v;
        }
        cfg.health_check = Some(h);
    }
    if let Some(b) = &a.breaker {
        cfg.breaker = parse_breaker(b)?;
    }
    if let Some(r) = a.retries {
        cfg.retries.attempts = r;
    }
    let problems = proxy.problems();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
        anyhow::bail!("invalid gateway config:\n  {}", msgs.join("\n  "));
    }
    Ok(proxy)
}

/// `chaosgate gateway`: runs the reference gateway until Ctrl-C / SIGTERM.
pub async fn gateway(a: GatewayArgs) -> anyhow::Result<u8> {
    let cfg = gateway_config(&a)?;
    let seed = a.seed.unwrap_or_else(random_seed);
    let listener = net::bind(&cfg.listen).await?;
    let targets: Vec<String> = cfg
        .policy
        .targets
        .iter()
        .zip(&cfg.upstreams)
        .map(|(t, u)| format!("{}={u}", t.name))
        .collect();
    if cfg.pass_chaosgate_headers {
        eprintln!("chaosgate gateway: TEST ONLY: clients' x-chaosgate-* headers are passed to the upstreams");
    }
    let h = crate::live::proxy::spawn(cfg, listener, seed, a.events.as_deref()).await?;
    println!(
        "chaosgate gateway: listening on http://{}  targets {}  seed={seed}",
        h.server.addr,
        targets.join(", ")
    );
    crate::live::signal::shutdown_signal().await;
    h.shutdown().await;
    Ok(0)
}

pub(crate) fn parse_asserts(v: &[String]) -> anyhow::Result<Vec<crate::analysis::assert::Assertion>> {
    v.iter()
        .map(|a| a.parse().map_err(|m: String| anyhow::anyhow!("--assert {m}")))
        .collect()
}

/// Prints, writes `--json` / `--junit`, and turns the assertions into an exit code.
fn finish(
    sw: &crate::analysis::results::SweepReport,
    a: &crate::cli::ScenarioArgs,
    command: &str,
) -> anyhow::Result<u8> {
    finish_with(sw, a, command, None)
}

/// [`finish`], with a merged run's per-shard breakdown (`chaosgate merge`: a table after
/// the report, `shards` in the JSON).
pub(crate) fn finish_with(
    sw: &crate::analysis::results::SweepReport,
    a: &crate::cli::ScenarioArgs,
    command: &str,
    shards: Option<&crate::analysis::shards::Breakdown>,
) -> anyhow::Result<u8> {
    render(
        sw,
        &Outputs {
            json: a.json.as_deref(),
            junit: a.junit.as_deref(),
            chart: a.chart.as_deref(),
            html: a.html.as_deref(),
            quiet: a.quiet,
            command: None,
            shards,
        },
        command,
    )
}

/// Where a sweep report goes: the report flags of `sim` / `run`, or of `chaosgate merge`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Outputs<'a> {
    /// `--json` (`-`: stdout).
    pub json: Option<&'a std::path::Path>,
    /// `--junit`.
    pub junit: Option<&'a std::path::Path>,
    /// `--chart`.
    pub chart: Option<&'a std::path::Path>,
    /// `--html`.
    pub html: Option<&'a std::path::Path>,
    /// `--quiet`.
    pub quiet: bool,
    /// The command line the HTML report names (default: this one, with the first seed
    /// unless it is a merge with a breakdown).
    pub command: Option<&'a str>,
    /// A merged run's per-shard breakdown: a table after the report, `shards` in the JSON.
    pub shards: Option<&'a crate::analysis::shards::Breakdown>,
}

/// The one rendering of a sweep report (`sim`, `run`, and `merge` of their shards): prints
/// the text report, writes the files asked for, and turns the assertions into an exit code.
pub(crate) fn render(sw: &crate::analysis::results::SweepReport, a: &Outputs<'_>, command: &str) -> anyhow::Result<u8> {
    let shards = a.shards;
    let out = Out::for_json(a.json);
    let sweep = !sw.axes.is_empty();
    if !a.quiet {
        for p in &sw.points {
            if sweep {
                let params: Vec<String> = p
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                out.print(&format!("\n=== {} ===\n", params.join(", ")));
            }
            out.print(&crate::report::text::run(&p.report));
        }
    }
    if sweep || a.quiet {
        out.print("\n");
        out.print(&crate::report::text::sweep_table(sw));
    }
    let n: usize = sw.points.iter().map(|p| p.checks.len()).sum();
    if n > 0 {
        let failed: usize = sw
            .points
            .iter()
            .map(|p| p.checks.iter().filter(|c| !c.passed).count())
            .sum();
        out.print(&format!("\nassertions: {} passed, {failed} failed\n", n - failed));
        out.print(&crate::report::text::failures(sw));
    }
    if let Some(b) = shards {
        out.print(&crate::report::text::shards(b));
    }
    if let Some(p) = &a.json {
        let mut v = sw.to_json();
        if let Some(b) = shards {
            v["shards"] = serde_json::to_value(b)?;
        }
        write_json_out(p, &v)?;
    }
    if let Some(p) = &a.junit {
        std::fs::write(p, crate::report::junit::junit(sw, command))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.chart {
        let (x_label, points) = crate::report::chart::chart_points(sw);
        let repeats = match sw.points.first() {
            Some(pt) if pt.report.runs > 1 => format!(", {} runs per point: mean, min–max", pt.report.runs),
            _ => String::new(),
        };
        let title = format!("{} ({}{repeats})", sw.scenario, sw.mode);
        let svg = crate::report::chart::sweep_svg(&title, &x_label, &points);
        std::fs::write(p, svg).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.html {
        // a merge is reproduced by the merge command itself (no --seed to add)
        let seed = sw.points.first().map(|pt| pt.report.seed).filter(|_| shards.is_none());
        let command = a.command.map_or_else(|| reproduce(seed), str::to_string);
        let page = crate::report::html::sweep_page(sw, &crate::report::html::Provenance::new(&command));
        write_html(p, &page)?;
    }
    Ok(if sw.passed { 0 } else { 1 })
}

fn run_options(a: &crate::cli::ScenarioArgs, run_dir: std::path::PathBuf) -> anyhow::Result<crate::run::RunOptions> {
    let mut o = crate::run::RunOptions::new(run_dir);
    o.repeat = a.repeat as usize;
    o.seed = a.seed;
    o.asserts = parse_asserts(&a.asserts)?;
    o.allow_in_flight = a.allow_in_flight;
    o.allow_large = a.allow_large;
    o.progress = !a.quiet;
    o.incident = a.html.is_some();
    Ok(o)
}

/// The command line that reproduces this run: this process's arguments, shell-quoted, with
/// `--seed SEED` added when they give none.
pub fn reproduce(seed: Option<u64>) -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        // the program by its name, not the path it was started from
        *first = "chaosgate".into();
    }
    if let Some(seed) = seed {
        if !args.iter().any(|a| a == "--seed" || a.starts_with("--seed=")) {
            args.push("--seed".into());
            args.push(seed.to_string());
        }
    }
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// `a` as a POSIX shell word.
fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Writes an HTML report ("wrote …" on stderr).
pub fn write_html(p: &std::path::Path, page: &str) -> anyhow::Result<()> {
    std::fs::write(p, page).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

/// Where the human-readable report goes: stdout, or stderr when `--json -` takes stdout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    stderr: bool,
}

impl Out {
    pub(crate) fn for_json(json: Option<&std::path::Path>) -> Out {
        Out {
            stderr: json.is_some_and(is_stdout),
        }
    }

    pub(crate) fn print(self, s: &str) {
        use std::io::Write;
        if self.stderr {
            let _ = std::io::stderr().lock().write_all(s.as_bytes());
        } else {
            let _ = std::io::stdout().lock().write_all(s.as_bytes());
        }
    }
}

/// `-`: stdout (`--json -`).
pub fn is_stdout(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}

/// Writes a JSON report to `p` ("wrote …" on stderr), or to stdout when `p` is `-`.
pub fn write_json_out<T: serde::Serialize>(p: &std::path::Path, v: &T) -> anyhow::Result<()> {
    if is_stdout(p) {
        use std::io::Write;
        let mut s = serde_json::to_string_pretty(v)?;
        s.push('\n');
        let mut o = std::io::stdout().lock();
        o.write_all(s.as_bytes())
            .and_then(|()| o.flush())
            .map_err(|e| anyhow::anyhow!("cannot write the JSON report to stdout: {e}"))
    } else {
        crate::report::write_json(p, v)?;
        eprintln!("wrote {}", p.display());
        Ok(())
    }
}

/// `--json`, `--junit` and `--chart` of `sim` and `run`, checked before the run.
fn check_report_paths(a: &crate::cli::ScenarioArgs) -> anyhow::Result<()> {
    check_output_paths(&[
        ("--json", a.json.as_deref()),
        ("--junit", a.junit.as_deref()),
        ("--chart", a.chart.as_deref()),
        ("--html", a.html.as_deref()),
    ])
}

/// Checks, before any work, that each output file can be written: its directory exists,
/// is a directory and is writable, and the file is not a directory. Nothing is created.
pub fn check_output_paths(paths: &[(&str, Option<&std::path::Path>)]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (flag, p) in paths {
        let Some(p) = p else { continue };
        if is_stdout(p) {
            if *flag != "--json" {
                problems.push(format!(
                    "{flag} -: only --json writes to stdout; give {flag} a file path"
                ));
            }
            continue;
        }
        if let Err(m) = output_path_problem(p) {
            problems.push(format!("{flag} {}: {m}", p.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "cannot write the output{}:\n  {}",
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )
    }
}

fn output_path_problem(p: &std::path::Path) -> Result<(), String> {
    if p.as_os_str().is_empty() {
        return Err("an empty path".into());
    }
    if p.is_dir() {
        return Err("is a directory (give a file name)".into());
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.exists() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let writable = |q: &std::path::Path| {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(q.as_os_str().as_bytes())
            // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
            .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    };
    if p.exists() {
        if !writable(p) {
            return Err("the file is not writable".into());
        }
    } else if !writable(&dir) {
        return Err(format!("directory {} is not writable", dir.display()));
    }
    Ok(())
}

/// `chaosgate sim`: a scenario (every sweep point, every repeat) in virtual time.
pub fn sim(a: crate::cli::SimArgs) -> anyhow::Result<u8> {
    if let Some(n) = a.swarm {
        if a.shard.shard.is_some() || a.shard.result.is_some() {
            anyhow::bail!(
                "--swarm has no shards or result file: give each worker its own seeds (--swarm N --seed S, S+N, …)"
            );
        }
        return Ok(swarm(n, a.common.seed.unwrap_or(1), a.jobs));
    }
    let shard = sim_shard_plan(&a.shard)?;
    if let Some(plan) = &shard {
        let c = &a.common;
        if c.json.is_some() || c.junit.is_some() || c.chart.is_some() || c.html.is_some() {
            anyhow::bail!(
                "a sim shard writes only its --result file: give --json, --junit, --chart, --html to `chaosgate merge` of all the shards' files"
            );
        }
        check_output_paths(&[("--result", plan.result.as_deref())])?;
    }
    check_report_paths(&a.common)?;
    let set = crate::scenario::load_with(scenario_path(&a.common)?, &a.common.set, &a.common.sweep)?;
    let mut o = run_options(&a.common, std::env::temp_dir())?;
    o.command = "sim";
    if let Some(j) = a.jobs {
        o.jobs = j.max(1);
    }
    // Ctrl-C / SIGTERM raise the stop flag: the runs stop within STOP_CHECK_EVERY events
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    o.stop = Some(stop.clone());
    crate::live::signal::spawn_stop_on_signal(stop);
    if let Some(plan) = &shard {
        return sim_shard(&set, &o, plan);
    }
    let started = std::time::Instant::now();
    let out = crate::run::simulate_interruptible(&set, &o)?;
    let sw = out.report;
    let wall = started.elapsed().as_secs_f64();
    let simulated: f64 = sw
        .points
        .iter()
        .map(|p| p.report.duration_s * p.report.runs as f64)
        .sum();
    let seed = set.points.first().map_or(1, |p| crate::run::base_seed(&p.scenario, &o));
    eprintln!(
        "simulated {simulated:.0} s in {wall:.3} s wall ({:.0}× real time, {} point{} × {} run{}); reproduce with --seed {seed}",
        simulated / wall.max(1e-9),
        sw.points.len(),
        if sw.points.len() == 1 { "" } else { "s" },
        o.repeat,
        if o.repeat == 1 { "" } else { "s" },
    );
    let code = finish(&sw, &a.common, "sim")?;
    if out.interrupted {
        eprintln!("chaosgate sim: interrupted; the report above is partial");
        return Ok(130);
    }
    Ok(code)
}

/// `chaosgate sim --shard I/N --result PATH`: this shard's runs, written for `chaosgate merge`.
fn sim_shard(
    set: &crate::scenario::ScenarioSet,
    o: &crate::run::RunOptions,
    plan: &crate::run::shard::ShardPlan,
) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let out = crate::run::sim_shard::run_shard(set, o, plan)?;
    let path = plan
        .result
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    eprintln!(
        "chaosgate sim: shard {} ({}): ran {} of its {} runs (of {}: {} point{} × {} run{}) in {:.3} s wall; wrote {path}",
        plan.shard,
        plan.name,
        out.ran,
        out.owned,
        set.points.len() * o.repeat.max(1),
        set.points.len(),
        plural(set.points.len()),
        o.repeat.max(1),
        plural(o.repeat.max(1)),
        started.elapsed().as_secs_f64(),
    );
    if out.interrupted {
        eprintln!("chaosgate sim: interrupted; {path} is marked incomplete");
        return Ok(130);
    }
    Ok(0)
}

/// The scenario file of `run` / `sim` (clap requires it, but for `sim --swarm`).
fn scenario_path(a: &crate::cli::ScenarioArgs) -> anyhow::Result<&std::path::Path> {
    a.scenario
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no scenario file given (chaosgate sim SCENARIO.toml, or sim --swarm N)"))
}

/// `chaosgate sim --swarm N --seed S`: generates the scenarios of seeds S, S+1, …, S+N−1
/// and checks every simulation invariant on each (`sim::invariants::swarm_case`), over
/// `jobs` threads. Prints progress and, per failure, the seed, what broke and how to
/// reproduce it (the scenario is also written to a file). Exit code 1 on any failure.
fn swarm(n: u32, seed: u64, jobs: Option<usize>) -> u8 {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
    let started = std::time::Instant::now();
    let opts = crate::scenario::generate::GenOptions::default();
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |c| c.get()))
        .clamp(1, n as usize);
    let next = AtomicUsize::new(0);
    let (done, requests, events) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let failures = std::sync::Mutex::new(Vec::new());
    let every = (u64::from(n) / 10).max(1);
    eprintln!(
        "swarm: {n} scenario{} from seed {seed}, {jobs} thread{}",
        plural(n as usize),
        plural(jobs)
    );
    std::thread::scope(|sc| {
        for _ in 0..jobs {
            sc.spawn(|| loop {
                let k = next.fetch_add(1, Relaxed);
                if k >= n as usize {
                    break;
                }
                let case = crate::run::swarm::swarm_case(seed.wrapping_add(k as u64), &opts);
                requests.fetch_add(case.requests, Relaxed);
                events.fetch_add(case.events, Relaxed);
                if !case.passed() {
                    report_swarm_failure(&case);
                    failures.lock().unwrap_or_else(|e| e.into_inner()).push(case.seed);
                }
                let d = done.fetch_add(1, Relaxed) + 1;
                if d % every == 0 || d == u64::from(n) {
                    eprintln!("swarm: {d}/{n} scenarios checked");
                }
            });
        }
    });
    let mut failed = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_unstable();
    let wall = started.elapsed().as_secs_f64();
    let (requests, events) = (requests.into_inner(), events.into_inner());
    if failed.is_empty() {
        println!(
            "swarm: {n} scenario{} passed every invariant (seeds {seed}..={}); {requests} requests, {events} simulator events; {wall:.2} s wall",
            plural(n as usize),
            seed.wrapping_add(u64::from(n) - 1)
        );
        0
    } else {
        println!(
            "swarm: {} of {n} scenarios FAILED (seeds {failed:?}); {requests} requests, {events} simulator events; {wall:.2} s wall",
            failed.len()
        );
        1
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Prints one failed swarm case: seed, violations, and how to reproduce it; writes its
/// scenario to `chaosgate-swarm-<seed>.toml` in the system's temp dir.
fn report_swarm_failure(case: &crate::run::swarm::SwarmCase) {
    let path = std::env::temp_dir().join(format!("chaosgate-swarm-{}.toml", case.seed));
    let written = std::fs::write(&path, &case.toml);
    let mut msg = case.failure_report();
    match written {
        Ok(()) => msg += &format!("\n  scenario written to {}", path.display()),
        Err(e) => msg += &format!("\n  (could not write the scenario to {}: {e})", path.display()),
    }
    eprintln!("{msg}");
}

pub(crate) fn default_run_dir(name: &str) -> std::path::PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("chaosgate-{name}-{secs}-{}", std::process::id()))
}

/// `chaosgate run`: a scenario live.
pub async fn run(a: crate::cli::RunArgs) -> anyhow::Result<u8> {
    let shard = live_shard_plan(&a.shard)?;
    check_report_paths(&a.common)?;
    check_output_paths(&[("--result", shard.as_ref().and_then(|p| p.result.as_deref()))])?;
    let set = crate::scenario::load_with(scenario_path(&a.common)?, &a.common.set, &a.common.sweep)?;
    let name = set.points.first().map(|p| p.scenario.name.clone()).unwrap_or_default();
    let dir = a.run_dir.clone().unwrap_or_else(|| default_run_dir(&name));
    // absolute: an external gateway starts inside it and is handed paths under it
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let o = run_options(&a.common, dir.clone())?;
    let seed = set.points.first().map_or(1, |p| crate::run::base_seed(&p.scenario, &o));
    eprintln!(
        "chaosgate run: {} — {} point{} × {} run{}, seed {seed} (reproduce the plans with --seed {seed}); run files in {}",
        name,
        set.points.len(),
        if set.points.len() == 1 { "" } else { "s" },
        o.repeat,
        if o.repeat == 1 { "" } else { "s" },
        dir.display()
    );
    let mut o = o;
    let fingerprint = crate::run::shard::work_fingerprint(&set, &o);
    if let Some(p) = &shard {
        o.shard = Some(p.shard);
        if let Some(at) = p.start_at {
            let len = set.points.first().map_or(0, |pt| pt.scenario.plan.source.end());
            o.start_at = Some(crate::cli::shard::start_instant(at, len, "chaosgate run")?.0);
        }
        eprintln!(
            "chaosgate run: shard {} ({}): its own mocks and gateway, its share of the traffic",
            p.shard, p.name
        );
    }
    let exporter = start_metrics(&a.metrics).await?;
    o.metrics = exporter.as_ref().map(|x| x.exporter.clone());
    let out = crate::run::run_live(&set, &o).await?;
    let code = finish(&out.report, &a.common, "run")?;
    if let Some(p) = &shard {
        let body = crate::run::shard::RunBody {
            scenario: name.clone(),
            axes: set.axes.clone(),
            points_planned: set.points.len(),
            repeat: o.repeat,
            points: out.recorded,
        };
        let complete = !out.interrupted;
        crate::cli::shard::write_result(p, crate::run::shard::Kind::Run, fingerprint, seed, complete, body)?;
    }
    linger_metrics(exporter, &a.metrics, out.interrupted).await;
    if out.interrupted {
        eprintln!("chaosgate run: interrupted; the report above is partial");
        return Ok(130);
    }
    Ok(code)
}

/// The built-in scenario of `chaosgate demo`.
pub const DEMO_SCENARIO: &str = include_str!("../../examples/incidents/demo.toml");

/// `chaosgate demo`: the article's incident, compressed, live, at two intervals.
pub async fn demo(a: crate::cli::DemoArgs) -> anyhow::Result<u8> {
    if a.print_scenario {
        print!("{DEMO_SCENARIO}");
        return Ok(0);
    }
    check_output_paths(&[("--json", a.json.as_deref())])?;
    let set = crate::scenario::load_str("<demo>", DEMO_SCENARIO, std::path::Path::new("."), &a.set)?;
    let dir = default_run_dir("demo");
    let mut o = crate::run::RunOptions::new(dir.clone());
    o.seed = a.seed;
    o.progress = !a.quiet;
    o.command = "demo";
    let out = Out::for_json(a.json.as_deref());
    let k = set.points.first().map_or(1.0, |p| p.scenario.time_scale);
    if !a.quiet {
        out.print(&format!(
            "chaosgate demo: the article's 3 AM incident — 155 req/s, the primary answering 502 for 4 minutes —\n\
             live through the reference gateway, health checks every 60 s and then every 5 s (no retries, no\n\
             per-request fallback), compressed {:.0}× (time_scale {k}). Scenario: chaosgate demo --print-scenario\n",
            1.0 / k
        ));
    }
    let started = std::time::Instant::now();
    let run = crate::run::run_live(&set, &o).await?;
    let sw = &run.report;
    out.print("\n");
    out.print(&crate::report::text::sweep_table(sw));
    out.print(&format!(
        "\nAt the incident's own scale (times ÷ {k}; requests ÷ {k}, as the same rate runs {:.0}× longer):\n",
        1.0 / k
    ));
    for p in &sw.points {
        let r = &p.report.resilience;
        let iv = p.params.values().next().and_then(|v| v.as_str()).unwrap_or("");
        out.print(&format!(
            "  interval {iv:>4}: detected after {} s, {} failed requests, {:.2} % of a 30-day 99.9 % budget\n",
            r.detection_s.mean.map_or("never".into(), |d| format!("{:.0}", d / k)),
            r.failed_requests.mean.map_or("?".into(), |f| format!("{:.0}", f / k)),
            p.report.budget.consumed_pct.mean.unwrap_or(0.0) / k,
        ));
    }
    if !a.quiet {
        out.print(&format!(
            "\n(The article: 60 s polling cost ≈14,000 failed requests; 5 s would have cost ≈780. Each run here\n\
             sees one fault onset; `chaosgate sim examples/incidents/3am-fast-fail.toml --repeat 200` gives the\n\
             distribution over onsets in a second.)  {:.0} s wall; run files in {}\n",
            started.elapsed().as_secs_f64(),
            dir.display()
        ));
    }
    if let Some(p) = &a.json {
        write_json_out(p, &sw.to_json())?;
    }
    Ok(if run.interrupted { 130 } else { 0 })
}

/// The JSON Schema of scenario files.
pub const SCENARIO_SCHEMA: &str = include_str!("../../schema/scenario.schema.json");

/// `chaosgate schema`: prints the scenario JSON Schema.
pub fn schema() -> anyhow::Result<u8> {
    print!("{SCENARIO_SCHEMA}");
    Ok(0)
}

/// The `--metrics-listen` endpoint, started, its address printed (port 0: the port taken).
async fn start_metrics(a: &crate::cli::MetricsArgs) -> anyhow::Result<Option<crate::live::exporter::MetricsServer>> {
    let Some(listen) = &a.metrics_listen else {
        return Ok(None);
    };
    let m = crate::live::exporter::serve(listen).await?;
    let addr = m.exporter.addr;
    eprintln!("chaosgate: metrics on http://{addr}/metrics (Prometheus service discovery: http://{addr}/sd)");
    Ok(Some(m))
}

/// Keeps the endpoint up `--metrics-linger` after the traffic (not after a Ctrl-C; a
/// Ctrl-C during the linger ends it), then stops it.
pub(crate) async fn linger_metrics(
    m: Option<crate::live::exporter::MetricsServer>,
    a: &crate::cli::MetricsArgs,
    interrupted: bool,
) {
    let Some(m) = m else { return };
    if let (Some(d), false) = (a.metrics_linger, interrupted) {
        if d.0 > 0 {
            eprintln!(
                "chaosgate: metrics stay up {:.1} s more (--metrics-linger)",
                crate::time::nanos_to_secs_f64(d.0)
            );
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_nanos(d.0)) => {}
                _ = crate::live::signal::shutdown_signal() => {}
            }
        }
    }
    m.shutdown().await;
}

/// The shard plan of `sim` (docs/sharding.md, "Simulator sweeps"): no `--start-at`.
fn sim_shard_plan(a: &crate::cli::shard::ShardArgs) -> anyhow::Result<Option<crate::run::shard::ShardPlan>> {
    crate::cli::shard::resolve(a, &|k| std::env::var(k).ok(), std::time::SystemTime::now(), false)
}

/// The shard plan of `load` and `run` (docs/sharding.md).
fn live_shard_plan(a: &crate::cli::shard::ShardArgs) -> anyhow::Result<Option<crate::run::shard::ShardPlan>> {
    crate::cli::shard::resolve(a, &|k| std::env::var(k).ok(), std::time::SystemTime::now(), true)
}

/// What a load report is written to.
pub struct LoadOut<'a> {
    /// `--json`.
    pub json: Option<&'a std::path::Path>,
    /// `--csv` prefix.
    pub csv: Option<&'a str>,
    /// `--hlog`.
    pub hlog: Option<&'a std::path::Path>,
    /// `--html`.
    pub html: Option<&'a std::path::Path>,
    /// Only the summary lines.
    pub quiet: bool,
    /// `--assert`s (merge).
    pub asserts: &'a [crate::analysis::assert::Assertion],
    /// `--junit` (merge).
    pub junit: Option<&'a std::path::Path>,
}

/// Prints and writes the report of a load run, whole or merged from shards (one function
/// for both, so a merge renders exactly what one machine would have): the text, the
/// warnings, the shards' breakdown, JSON, Locust CSV, hlog, HTML, assertions and JUnit.
/// Returns how many assertions failed.
#[allow(clippy::too_many_arguments)]
pub fn render_load(
    result: &crate::live::load::LoadResult,
    target: &str,
    seed: u64,
    start: std::time::SystemTime,
    users: u32,
    out: &LoadOut<'_>,
    warnings: &[String],
    shards: Option<&crate::analysis::shards::Breakdown>,
) -> anyhow::Result<usize> {
    let mut report = result.report();
    report.warnings.extend(warnings.iter().cloned());
    if shards.is_some_and(|b| b.partial) {
        report.partial = true;
    }
    let o = Out::for_json(out.json);
    if out.quiet {
        let q = &report.requests;
        o.print(&format!(
            "requests   scheduled {}   sent {}   ok {}   failed {}   dropped {}   p99 {:.1} ms\n",
            q.scheduled, q.sent, q.ok, q.failed, q.dropped, report.latency_ms.p99
        ));
    } else {
        o.print(&crate::report::text::load(&report));
    }
    for w in &report.warnings {
        o.print(&format!("warning: {w}\n"));
    }
    if let Some(b) = shards {
        o.print(&crate::report::text::shards(b));
    }
    let mut v = serde_json::to_value(&report)?;
    v["seed"] = serde_json::json!(seed);
    v["target"] = serde_json::json!(target);
    if let Some(b) = shards {
        v["shards"] = serde_json::to_value(b)?;
    }
    let checks: Vec<crate::analysis::assert::Check> = out.asserts.iter().map(|a| a.check(&v)).collect();
    let failed = checks.iter().filter(|c| !c.passed).count();
    if !checks.is_empty() {
        o.print(&format!(
            "\nassertions: {} passed, {failed} failed\n",
            checks.len() - failed
        ));
        for c in checks.iter().filter(|c| !c.passed) {
            o.print(&format!("  FAILED {}: {}\n", c.assertion, c.message));
        }
        v["checks"] = serde_json::to_value(&checks)?;
    }
    if let Some(p) = out.json {
        write_json_out(p, &v)?;
    }
    if let Some(p) = out.junit {
        let xml = crate::report::junit::junit_checks(
            &format!("chaosgate merge load {target}"),
            target,
            report.duration_s,
            &report.warnings,
            &checks,
        );
        std::fs::write(p, xml).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(prefix) = out.csv {
        crate::report::locust::write_locust_csv(
            prefix,
            &result.aggregator,
            &result.csv,
            report.duration_s,
            start,
            users,
        )?;
        eprintln!(
            "wrote {prefix}_stats.csv, {prefix}_stats_history.csv, {prefix}_failures.csv, {prefix}_exceptions.csv"
        );
    }
    if let Some(p) = out.hlog {
        crate::report::hlog::write_hlog(p, &result.aggregator, start)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = out.html {
        let agg = &result.aggregator;
        let share = crate::analysis::share::traffic_share(&crate::analysis::resilience::Series::from_aggregator(agg));
        let duration = (report.duration_s * 1e9) as crate::time::Nanos;
        let view = crate::analysis::incident::IncidentView::build(agg, &share, &[], &[], None, duration);
        let page = crate::report::html::load_page(
            &report,
            &view,
            target,
            seed,
            // a merge is reproduced by the merge command itself (no --seed to add)
            &crate::report::html::Provenance::new(&reproduce(Some(seed).filter(|_| shards.is_none()))),
        );
        write_html(p, &page)?;
    }
    Ok(failed)
}
