//! Command-line interface: flags become a plan before any work starts.

use crate::provider::Api;
use crate::time::Dur;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// chaosgate — chaos and failover simulation harness for LLM API gateways.
#[derive(Debug, Parser)]
#[command(name = "chaosgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve mock LLM providers that fail on a seeded, scripted timeline.
    Mock(MockArgs),
    /// Send realistic LLM traffic to a URL and measure it (no coordinated omission).
    Load(Box<LoadArgs>),
    /// Run the reference gateway: health checks, circuit breakers, fallback.
    Gateway(GatewayArgs),
    /// Run a scenario live: mock providers, the gateway under test, traffic; resilience metrics.
    Run(RunArgs),
    /// Run a scenario in virtual time (same fault model, gateway policy and traffic).
    Sim(SimArgs),
    /// The article's incident, compressed, live through the reference gateway at two
    /// health-check intervals (no files needed, under a minute).
    Demo(DemoArgs),
    /// Write a ready-to-run directory for testing a gateway (scenario, config template,
    /// knobs, gotchas, the command to run).
    Init(super::init::InitArgs),
    /// Run the failure-mode catalogue against a gateway and print a scorecard.
    Suite(Box<SuiteArgs>),
    /// Print the JSON Schema of scenario files (for editors).
    Schema,
    /// What a client would measure against a fault profile (virtual time).
    ProfileStats(super::profiles::ProfileStatsArgs),
    /// Fit a fault profile to dashboard numbers (p50/p95/p99, error rate, tokens/s).
    Calibrate(super::profiles::CalibrateArgs),
    /// Write Prometheus recording and burn-rate alerting rules for a scenario's SLO.
    Rules(super::rules::RulesArgs),
    /// Combine shards' result files (`--shard I/N --result PATH`) into the report one
    /// machine would have written.
    Merge(super::merge::MergeArgs),
}

/// What `run` and `sim` share.
#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Scenario file (TOML). Required, except by `sim --swarm`.
    pub scenario: Option<PathBuf>,
    /// Override any key: --set gateway.health_check.interval=5s (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Sweep a key over values: --sweep gateway.health_check.interval=5s,30s,60s (repeatable; adds to [sweep]).
    #[arg(long, value_name = "PATH=V1,V2,…")]
    pub sweep: Vec<String>,
    /// Runs per sweep point (different seeds and fault-onset phases) for distributions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::run::limits::MAX_REPEAT)))]
    pub repeat: u32,
    /// Seed of the first run (default: the scenario's, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fail (exit 1) unless this holds, e.g. 'resilience.detection_s.max <= 10' (repeatable).
    #[arg(long = "assert", value_name = "PATH OP VALUE")]
    pub asserts: Vec<String>,
    /// Write the JSON report here; `-` writes it to stdout (the text report then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here (one test case per assertion per sweep point).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write an SVG chart here: failed requests and detection time against the swept value.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Write a self-contained HTML incident report here: timeline, error budget, latency
    /// percentiles, sweep chart (docs/html-report.md).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No progress line (on a terminal) or status lines (elsewhere), and only the summary:
    /// the table, warnings and failed assertions.
    #[arg(long)]
    pub quiet: bool,
    /// Let requests still in flight at the end pass (by default they fail the run: exit 1).
    #[arg(long)]
    pub allow_in_flight: bool,
    /// Run even when the planned requests, rate or memory are past chaosgate's limits
    /// (see docs/accounting-and-limits.md).
    #[arg(long)]
    pub allow_large: bool,
}

/// `chaosgate run`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("scenario", |a| a.required(true)))]
pub struct RunArgs {
    /// Scenario and report flags.
    #[command(flatten)]
    pub common: ScenarioArgs,
    /// Directory for run files (rendered gateway configs, gateway logs and events).
    /// Default: a new directory under the system's temp dir.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Live Prometheus metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Sharding across machines.
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

/// `chaosgate sim`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("scenario", |a| a.required_unless_present("swarm")))]
pub struct SimArgs {
    /// Scenario and report flags.
    #[command(flatten)]
    pub common: ScenarioArgs,
    /// Instead of a scenario: generate N random scenarios (seeds --seed, --seed+1, …) and
    /// check every simulation invariant on each (docs/invariants.md); exit 1 on a failure.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::run::swarm::MAX_SWARM)),
          conflicts_with_all = ["scenario", "set", "sweep", "repeat", "asserts", "json", "junit", "chart", "html", "allow_in_flight", "allow_large"])]
    pub swarm: Option<u32>,
    /// Worker threads for sweep points and repeats (default: every core).
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Sharding across machines (points × repeats).
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

/// `chaosgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Write the JSON report here; `-` writes it to stdout (the text report then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Override a key of the built-in scenario: --set traffic.rate=50 (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Seed of the first run (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress line (on a terminal) or status lines (elsewhere), and only the summary:
    /// the table, warnings and failed assertions.
    #[arg(long)]
    pub quiet: bool,
    /// Print the built-in scenario and exit (to copy and edit).
    #[arg(long)]
    pub print_scenario: bool,
}

/// `chaosgate gateway`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("targets_src").args(["config", "target"]).required(true)))]
pub struct GatewayArgs {
    /// Gateway config file (TOML); flags below override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long)]
    pub listen: Option<String>,
    /// An upstream, NAME=URL, repeatable, in priority order.
    #[arg(long, value_name = "NAME=URL")]
    pub target: Vec<String>,
    /// Routing strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<crate::gateway::Strategy>,
    /// Active health checks every D (turns them on).
    #[arg(long, value_parser = parse_positive_dur)]
    pub health_interval: Option<Dur>,
    /// Health probe timeout.
    #[arg(long, value_parser = parse_positive_dur)]
    pub health_timeout: Option<Dur>,
    /// Consecutive failed probes that eject.
    #[arg(long, value_parser = parse_count)]
    pub unhealthy_threshold: Option<u32>,
    /// Consecutive good probes that restore.
    #[arg(long, value_parser = parse_count)]
    pub healthy_threshold: Option<u32>,
    /// Passive breaker: consecutive:N,EJECT | article:N,RECOVERY,HALF_OPEN | rate:RATIO,MIN_CALLS,WAIT | none
    /// (`rate` may be spelt `failure_rate`, as in TOML).
    #[arg(long)]
    pub breaker: Option<String>,
    /// Retries per request on the same target.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: Option<u32>,
    /// Write gateway events as JSON lines here.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Seed of the gateway's own randomness (jitter, weighted routing).
    #[arg(long)]
    pub seed: Option<u64>,
    /// TEST ONLY: pass clients' x-chaosgate-* headers (forced faults) on to the upstreams;
    /// by default they are stripped, so no client can force faults on shared providers.
    #[arg(long)]
    pub pass_chaosgate_headers: bool,
    /// Worker threads serving clients, each with its own connections (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=crate::live::front::MAX_WORKERS as i64))]
    pub workers: Option<u16>,
}

/// `chaosgate suite`.
#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// The gateway under test: a scenario whose providers are `primary` and `fallback`
    /// (examples/gateways/*/scenario.toml, or `chaosgate init`'s). Default: the reference
    /// gateway (examples/gateways/builtin/scenario.toml, built in), simulated.
    #[arg(long, value_name = "SCENARIO")]
    pub gateway: Option<PathBuf>,
    /// Add the entries of every .toml file in DIR to the catalogue (docs/suite.md).
    #[arg(long, value_name = "DIR")]
    pub entries: Option<PathBuf>,
    /// Only these entries (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub only: Vec<String>,
    /// Leave these entries out.
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub skip: Vec<String>,
    /// Only entries with one of these tags.
    #[arg(long = "tag", value_delimiter = ',', value_name = "TAG,…")]
    pub tags: Vec<String>,
    /// List the entries (name, best verdict, tags, title) and exit.
    #[arg(long)]
    pub list: bool,
    /// Run a built-in gateway live (mocks, the reference gateway and traffic on loopback, in
    /// real time) instead of simulated. External gateways always run live.
    #[arg(long)]
    pub live: bool,
    /// Override a key of every entry's scenario: --set gateway.health_check.interval=5s (repeatable).
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Runs per entry (seeds seed, seed+1, …): the verdict is the worst, with the spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Seed of each entry's first run (default: the gateway scenario's, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Entries run at once (default: every core simulated, 3 live: live entries mostly wait).
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Exit 1 when an entry's verdict differs from the one pinned in FILE (TOML:
    /// `entry-name = "pass"` lines; `--write-expect` writes one).
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Write the verdicts of this run as an --expect file.
    #[arg(long, value_name = "FILE")]
    pub write_expect: Option<PathBuf>,
    /// Exit 1 when an entry's verdict is this or worse (e.g. `fail`).
    #[arg(long, value_name = "VERDICT", value_parser = ["safe", "degraded", "fail"])]
    pub fail_on: Option<String>,
    /// Write the JSON report here (schema/suite-report.schema.json); `-` for stdout.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here: one test case per entry, failed when below its best verdict.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the scorecard as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the scorecard as a self-contained HTML page here (docs/html-report.md).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Live runs: where each entry's run directory goes (default: a new temporary one).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// No line per finished entry.
    #[arg(long)]
    pub quiet: bool,
    /// Run entries past chaosgate's limits on planned requests, rate or memory.
    #[arg(long)]
    pub allow_large: bool,
}

/// `chaosgate load`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("loop").args(["rate", "stage", "users", "trace"]).required(true)))]
pub struct LoadArgs {
    /// Base URL of an OpenAI- or Anthropic-compatible API (a mock, a gateway).
    #[arg(long)]
    pub target: String,
    /// API of request kinds that do not name one.
    #[arg(long, value_parser = parse_api, default_value = "openai")]
    pub api: Api,
    /// Open loop: requests per second.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Open loop: gap distribution.
    #[arg(long, value_enum, default_value = "poisson")]
    pub arrival: ArrivalArg,
    /// Gamma shape for --arrival gamma (1 = Poisson-like, smaller = burstier).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_shape)]
    pub burstiness: Option<f64>,
    /// Open loop in stages: ramp to TARGET req/s over DURATION, e.g. --stage 5m:200 --stage 30m:200.
    #[arg(long, value_name = "DURATION:TARGET")]
    pub stage: Vec<String>,
    /// Rate at t = 0 for --stage (default 0).
    #[arg(long, requires = "stage", allow_negative_numbers = true, value_parser = parse_rate0)]
    pub start_rate: Option<f64>,
    /// Report a time window separately, e.g. --phase outage=60s..300s (repeatable).
    #[arg(long, value_name = "NAME=START..END")]
    pub phase: Vec<String>,
    /// Closed loop: number of users (Locust's model).
    #[arg(long, value_parser = parse_users)]
    pub users: Option<u32>,
    /// Closed loop: users started per second (default: all at once).
    #[arg(long, requires = "users", allow_negative_numbers = true, value_parser = parse_rate)]
    pub spawn_rate: Option<f64>,
    /// Closed loop: think time after each answer, e.g. 500ms (or a range: 1s..3s); the
    /// same spellings as `think_time` in a scenario's [traffic].
    #[arg(long, requires = "users", conflicts_with = "pacing", value_parser = parse_think)]
    pub think: Option<crate::traffic::ThinkTime>,
    /// Closed loop: constant pacing, start-to-start interval per user.
    #[arg(long, requires = "users", value_parser = parse_positive_dur)]
    pub pacing: Option<Dur>,
    /// Replay a trace (JSONL or CSV of offsets and request attributes).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Trace replay speed factor.
    #[arg(long, requires = "trace", allow_negative_numbers = true, value_parser = parse_shape)]
    pub speed: Option<f64>,
    /// Run length (open and closed loop).
    #[arg(long, value_parser = parse_run_dur)]
    pub duration: Option<Dur>,
    /// Request mix file ([[kind]] tables); default: one plain chat kind.
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// Most requests in flight; a request that cannot start is counted as dropped.
    #[arg(long, default_value_t = 1000, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// Whole-request timeout.
    #[arg(long, default_value = "60s", value_parser = parse_positive_dur)]
    pub timeout: Dur,
    /// Time-to-first-token timeout.
    #[arg(long, value_parser = parse_positive_dur)]
    pub ttft_timeout: Option<Dur>,
    /// Longest silence between stream events.
    #[arg(long, value_parser = parse_positive_dur)]
    pub stall_timeout: Option<Dur>,
    /// How long to wait for in-flight requests after the schedule ends (default: --timeout).
    #[arg(long, value_parser = parse_dur)]
    pub grace: Option<Dur>,
    /// Time bucket of the per-second series.
    #[arg(long, default_value = "1s", value_parser = parse_positive_dur)]
    pub bucket: Dur,
    /// Goodput SLO: TTFT at most this.
    #[arg(long, value_parser = parse_positive_dur)]
    pub slo_ttft: Option<Dur>,
    /// Goodput SLO: time per output token at most this.
    #[arg(long, value_parser = parse_positive_dur)]
    pub slo_tpot: Option<Dur>,
    /// Goodput SLO: end-to-end latency at most this.
    #[arg(long, value_parser = parse_positive_dur)]
    pub slo_e2e: Option<Dur>,
    /// Run seed (default random; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the JSON report here; `-` writes it to stdout (the text report then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Write Locust-compatible CSV: PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv, PREFIX_exceptions.csv.
    #[arg(long)]
    pub csv: Option<String>,
    /// Write an HdrHistogram interval log (V2, DEFLATE) of latency per bucket.
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Write a self-contained HTML report here: timeline and latency percentiles
    /// (docs/html-report.md).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Sent as the API key.
    #[arg(long, default_value = "sk-chaosgate")]
    pub api_key: String,
    /// No progress line (on a terminal) or status lines (elsewhere), and only the summary:
    /// the table, warnings and failed assertions.
    #[arg(long)]
    pub quiet: bool,
    /// Let requests still in flight at the end pass (by default they fail the run: exit 1).
    #[arg(long)]
    pub allow_in_flight: bool,
    /// Run even when the planned requests, rate or memory are past chaosgate's limits
    /// (see docs/accounting-and-limits.md).
    #[arg(long)]
    pub allow_large: bool,
    /// Live Prometheus metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Sharding across machines.
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

/// `--arrival`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ArrivalArg {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps.
    Poisson,
    /// Gamma gaps (see --burstiness).
    Gamma,
}

/// `chaosgate mock`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["api", "scenario"]).required(true)))]
pub struct MockArgs {
    /// Wire format of a single mock provider.
    #[arg(long, value_parser = parse_api)]
    pub api: Option<Api>,
    /// Address to listen on (single provider). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9001", requires = "api")]
    pub listen: String,
    /// Fault profile (TOML). Without one the mock is a healthy pass-through.
    #[arg(long, requires = "api")]
    pub profile: Option<PathBuf>,
    /// Provider name, shown in headers, logs and metrics (default: the api name).
    #[arg(long, requires = "api")]
    pub name: Option<String>,
    /// Serve every [providers.<name>] of a scenario file from this one process.
    #[arg(long, conflicts_with_all = ["api", "profile", "name"])]
    pub scenario: Option<PathBuf>,
    /// Run seed (default: the scenario's, else random; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ignore the per-request `x-chaosgate-fault` header.
    #[arg(long)]
    pub no_fault_header: bool,
    /// Serve the admin API (/_chaosgate/) to non-loopback peers too.
    #[arg(long)]
    pub admin_any_peer: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = crate::live::mock::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Also count requests with this header as health probes (NAME=VALUE, repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_probe_header)]
    pub probe_header: Vec<String>,
    /// Also count requests whose JSON body holds this text as a string as probes (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub probe_prompt: Vec<String>,
    /// Drop the default probe rules (x-chaosgate-probe: 1, LiteLLM's health-check prompts);
    /// GET /health stays a probe.
    #[arg(long)]
    pub no_default_probes: bool,
}

fn parse_probe_header(s: &str) -> Result<String, String> {
    crate::live::mock::probe::ProbeMatcher::none()
        .add_header_rule(s)
        .map(|()| s.to_string())
}

fn parse_think(s: &str) -> Result<crate::traffic::ThinkTime, String> {
    s.parse()
}

fn parse_api(s: &str) -> Result<Api, String> {
    s.parse()
}

// Value parsers: clap puts "invalid value 'X' for '--flag <FLAG>': " before each message,
// so every bad value names its flag. The limits are the configuration files' (see
// `diag::limits` and docs/configuration.md).

fn parse_number(s: &str, zero_ok: bool, max: f64) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    match crate::diag::limits::number(x, zero_ok, max) {
        Some(m) => Err(m),
        None => Ok(x),
    }
}

/// A request rate in (0, MAX_RATE] req/s.
fn parse_rate(s: &str) -> Result<f64, String> {
    parse_number(s, false, crate::diag::limits::MAX_RATE)
}

/// A request rate in [0, MAX_RATE] req/s.
fn parse_rate0(s: &str) -> Result<f64, String> {
    parse_number(s, true, crate::diag::limits::MAX_RATE)
}

/// A shape parameter or speed factor in (0, MAX_SHAPE].
fn parse_shape(s: &str) -> Result<f64, String> {
    parse_number(s, false, crate::diag::limits::MAX_SHAPE)
}

fn parse_dur(s: &str) -> Result<Dur, String> {
    let d: Dur = s.parse()?;
    match crate::diag::limits::dur_at_most(d, crate::diag::limits::MAX_DURATION) {
        Some(m) => Err(m),
        None => Ok(d),
    }
}

/// A duration in (0, MAX_DURATION].
fn parse_positive_dur(s: &str) -> Result<Dur, String> {
    let d: Dur = s.parse()?;
    match crate::diag::limits::positive_dur(d, crate::diag::limits::MAX_DURATION) {
        Some(m) => Err(m),
        None => Ok(d),
    }
}

/// A run length in (0, MAX_RUN].
fn parse_run_dur(s: &str) -> Result<Dur, String> {
    let d: Dur = s.parse()?;
    match crate::diag::limits::positive_dur(d, crate::diag::limits::MAX_RUN) {
        Some(m) => Err(m),
        None => Ok(d),
    }
}

fn parse_bounded(s: &str, max: u64) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number ≥ 1"))?;
    match crate::diag::limits::count(n, max) {
        Some(m) => Err(m),
        None => Ok(n),
    }
}

/// A threshold count in [1, MAX_COUNT].
fn parse_count(s: &str) -> Result<u32, String> {
    parse_bounded(s, crate::diag::limits::MAX_COUNT.into()).map(|n| n as u32)
}

/// Closed-loop users in [1, MAX_USERS].
fn parse_users(s: &str) -> Result<u32, String> {
    parse_bounded(s, crate::diag::limits::MAX_USERS.into()).map(|n| n as u32)
}

/// Most requests `load` keeps in flight.
pub const MAX_CONCURRENCY: u64 = 100_000;

fn parse_concurrency(s: &str) -> Result<usize, String> {
    parse_bounded(s, MAX_CONCURRENCY).map(|n| n as usize)
}

/// Most worker threads of `sim --jobs`.
pub const MAX_JOBS: u64 = 1_024;

pub(crate) fn parse_jobs(s: &str) -> Result<usize, String> {
    parse_bounded(s, MAX_JOBS).map(|n| n as usize)
}

/// A fresh seed from the OS (printed so the run can be reproduced).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish() % 1_000_000_000
}

/// `--metrics-listen` and `--metrics-linger` of `load` and `run` (docs/metrics.md).
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Serve live Prometheus metrics while the traffic runs: GET /metrics (the load
    /// client's), GET /sd (Prometheus HTTP service discovery of it and, in `run`, of the
    /// mocks and the reference gateway). Port 0 picks a free port; the address is printed.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Keep the metrics endpoint up this long after the traffic, so a scraper gets the
    /// final values (at most 10m; Ctrl-C ends it early).
    #[arg(long, value_name = "DURATION", requires = "metrics_listen", value_parser = parse_linger)]
    pub metrics_linger: Option<Dur>,
}

/// A linger in [0, 10 min].
fn parse_linger(s: &str) -> Result<Dur, String> {
    let d: Dur = s.parse()?;
    if d.0 > crate::live::exporter::MAX_LINGER_S * crate::time::NS_PER_S {
        return Err(format!(
            "{s:?} is longer than {} s, the longest linger",
            crate::live::exporter::MAX_LINGER_S
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("chaosgate").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn json_dash_quiet_seed_and_set_mean_the_same_in_every_scenario_command() {
        let dash = Some(PathBuf::from("-"));
        for cmd in ["run", "sim"] {
            let Ok(Command::Run(RunArgs { common: c, .. }) | Command::Sim(SimArgs { common: c, .. })) = parse(&[
                cmd,
                "s.toml",
                "--json",
                "-",
                "--quiet",
                "--seed",
                "7",
                "--set",
                "traffic.rate=5",
            ]) else {
                panic!("{cmd} does not parse")
            };
            assert_eq!(
                (c.json, c.quiet, c.seed, c.set),
                (dash.clone(), true, Some(7), vec!["traffic.rate=5".to_string()])
            );
        }
        let Ok(Command::Demo(d)) = parse(&[
            "demo",
            "--json",
            "-",
            "--quiet",
            "--seed",
            "7",
            "--set",
            "traffic.rate=5",
        ]) else {
            panic!("demo does not parse")
        };
        assert_eq!(
            (d.json, d.quiet, d.seed, d.set),
            (dash.clone(), true, Some(7), vec!["traffic.rate=5".to_string()])
        );
        let Ok(Command::Load(l)) = parse(&[
            "load",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "5",
            "--json",
            "-",
            "--quiet",
            "--seed",
            "7",
        ]) else {
            panic!("load does not parse")
        };
        assert_eq!((l.json, l.quiet, l.seed), (dash.clone(), true, Some(7)));
        let Ok(Command::Calibrate(c)) = parse(&[
            "calibrate",
            "--p50",
            "1s",
            "--p95",
            "2s",
            "--p99",
            "3s",
            "--json",
            "-",
            "-o",
            "p.toml",
        ]) else {
            panic!("calibrate does not parse")
        };
        assert_eq!((c.json, c.output), (dash.clone(), Some(PathBuf::from("p.toml"))));
        let Ok(Command::ProfileStats(p)) = parse(&["profile-stats", "p.toml", "--json", "-"]) else {
            panic!("profile-stats does not parse")
        };
        assert_eq!(p.json, dash);
    }

    #[test]
    fn strategy_least_latency_is_accepted_with_a_dash_or_an_underscore() {
        for spelling in ["least-latency", "least_latency"] {
            let Ok(Command::Gateway(g)) =
                parse(&["gateway", "--target", "a=http://127.0.0.1:1", "--strategy", spelling])
            else {
                panic!("--strategy {spelling} does not parse")
            };
            assert_eq!(g.strategy, Some(crate::gateway::Strategy::LeastLatency));
        }
        for spelling in ["least-latency", "least_latency"] {
            let cfg: crate::gateway::GatewayConfig =
                toml::from_str(&format!("targets = []\nstrategy = \"{spelling}\"")).unwrap();
            assert_eq!(cfg.strategy, crate::gateway::Strategy::LeastLatency, "{spelling}");
        }
    }

    #[test]
    fn think_takes_a_duration_or_a_range_as_think_time_does() {
        use crate::traffic::ThinkTime;
        let think = |v: &str| match parse(&["load", "--target", "http://127.0.0.1:1", "--users", "2", "--think", v]) {
            Ok(Command::Load(l)) => Ok(l.think),
            Ok(_) => unreachable!(),
            Err(e) => Err(e.to_string()),
        };
        let ms = |n: u64| crate::time::Dur(n * crate::time::NS_PER_MS);
        assert_eq!(think("500ms"), Ok(Some(ThinkTime::Constant { value: ms(500) })));
        assert_eq!(
            think("1s..3s"),
            Ok(Some(ThinkTime::Uniform {
                min: ms(1000),
                max: ms(3000)
            }))
        );
        let e = think("soon").unwrap_err();
        assert!(e.contains("--think") && e.contains("\"1s..3s\""), "{e}");
        // the same spellings in a scenario's [traffic]
        for (text, want) in [
            ("\"500ms\"", ThinkTime::Constant { value: ms(500) }),
            (
                "\"1s..3s\"",
                ThinkTime::Uniform {
                    min: ms(1000),
                    max: ms(3000),
                },
            ),
            (
                "{ kind = \"constant\", value = \"500ms\" }",
                ThinkTime::Constant { value: ms(500) },
            ),
            (
                "{ kind = \"pacing\", interval = \"2s\" }",
                ThinkTime::Pacing { interval: ms(2000) },
            ),
        ] {
            let t: crate::traffic::TrafficConfig =
                toml::from_str(&format!("users = 2\nduration = \"1s\"\nthink_time = {text}")).unwrap();
            assert_eq!(t.think_time, Some(want), "{text}");
        }
        let bad = toml::from_str::<crate::traffic::TrafficConfig>("users = 2\nthink_time = \"soon\"").unwrap_err();
        assert!(bad.to_string().contains("a think time is a duration"), "{bad}");
        let bad = toml::from_str::<crate::traffic::TrafficConfig>(
            "users = 2\nthink_time = { kind = \"constant\", value = \"1s\", extra = 1 }",
        )
        .unwrap_err();
        assert!(bad.to_string().contains("extra"), "{bad}");
    }

    #[test]
    fn breaker_rate_is_also_spelt_failure_rate() {
        for kind in ["rate", "failure_rate", "failure-rate"] {
            let b = crate::cli::commands::parse_breaker(&format!("{kind}:0.5,10,30s")).unwrap();
            assert!(
                matches!(b, Some(crate::gateway::BreakerConfig::FailureRate { .. })),
                "{kind}"
            );
        }
    }
}
