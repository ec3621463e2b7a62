//! `chaosgate profile-stats` and `chaosgate calibrate`: arguments, files, output.

use crate::fault::Profile;
use crate::profiles::{calibrate, measure, stats, Workload};
use crate::time::{Dur, NS_PER_S};
use anyhow::{bail, Context};
use std::path::PathBuf;

/// `chaosgate profile-stats`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct ProfileStatsArgs {
    /// Fault profile (TOML).
    pub profile: PathBuf,
    /// Requests of the latency test.
    #[arg(long, default_value_t = 100_000)]
    pub samples: u64,
    /// Seed of every test.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here (`-`: stdout, the text report then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
    /// Stream the latency test's requests (latency = last token).
    #[arg(long)]
    pub stream: bool,
    /// max_tokens of every chat request.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: u32,
    /// Timeline every test spans.
    #[arg(long, default_value = "30m")]
    pub duration: Dur,
    /// New streams per second in the throughput test.
    #[arg(long, default_value_t = 20.0)]
    pub stream_rate: f64,
    /// Client timeout.
    #[arg(long, default_value = "30s")]
    pub timeout: Dur,
}

/// `chaosgate calibrate`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
#[command(group(clap::ArgGroup::new("what").args(["p50", "tps_mean", "embeddings_avg"]).multiple(true).required(true)))]
pub struct CalibrateArgs {
    /// Measured median latency of plain calls (e.g. 1240ms).
    #[arg(long, requires_all = ["p95", "p99"])]
    pub p50: Option<Dur>,
    /// Measured 95th percentile.
    #[arg(long, requires = "p50")]
    pub p95: Option<Dur>,
    /// Measured 99th percentile.
    #[arg(long, requires = "p50")]
    pub p99: Option<Dur>,
    /// Share of failed requests (0.0002 for 0.02 %).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// HTTP status of the failures.
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    /// Average streaming tokens/s.
    #[arg(long, requires = "tps_cv")]
    pub tps_mean: Option<f64>,
    /// Its coefficient of variation (0.123 for ±12.3 %).
    #[arg(long, requires = "tps_mean")]
    pub tps_cv: Option<f64>,
    /// Peak tokens/s (with --tps-min).
    #[arg(long, requires = "tps_mean")]
    pub tps_peak: Option<f64>,
    /// Min tokens/s (with --tps-peak).
    #[arg(long, requires = "tps_mean")]
    pub tps_min: Option<f64>,
    /// Median time to first token (default: p50 / 4).
    #[arg(long, requires = "ttft_p99")]
    pub ttft_p50: Option<Dur>,
    /// 99th-percentile time to first token (default: p99 / 4).
    #[arg(long, requires = "ttft_p50")]
    pub ttft_p99: Option<Dur>,
    /// Mean embeddings latency.
    #[arg(long)]
    pub embeddings_avg: Option<Dur>,
    /// Profile name.
    #[arg(long)]
    pub name: Option<String>,
    /// Profile description (default: the targets).
    #[arg(long)]
    pub description: Option<String>,
    /// API of the serve command in the header.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::provider::Api>(), default_value = "openai")]
    pub api: crate::provider::Api,
    /// Seed of the throughput fit and of the check printed in the header.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// max_tokens of the workload the throughput is fitted for.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: u32,
    /// New streams per second of the workload the throughput is fitted for.
    #[arg(long, default_value_t = 20.0)]
    pub stream_rate: f64,
    /// Write the fitted profile (TOML) here instead of stdout (`-`: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write the JSON report here (`-`: stdout, the profile then goes to stderr): the fitted
    /// profile's TOML and what `profile-stats` measures of it — the same as `profile-stats --json`.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<PathBuf>,
}

/// Runs `profile-stats`.
pub fn run_profile_stats(a: ProfileStatsArgs) -> anyhow::Result<u8> {
    let w = Workload {
        duration: a.duration,
        samples: a.samples,
        stream: a.stream,
        max_tokens: a.max_tokens,
        stream_rate: a.stream_rate,
        timeout: a.timeout,
        ..Workload::default()
    };
    let problems = w.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let profile = Profile::load(&a.profile)?;
    let s = measure(&profile, a.seed, &w);
    let text = stats::text(&s);
    if a.json.as_deref().is_some_and(super::commands::is_stdout) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(p) = &a.json {
        super::commands::write_json_out(p, &s)?;
    }
    Ok(0)
}

fn quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command line that reproduces a calibration (for the profile's header).
fn command_line(a: &CalibrateArgs) -> String {
    let mut s = "chaosgate calibrate".to_string();
    let mut flag = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s += &format!(" --{k} {}", quote(&v));
        }
    };
    flag("p50", a.p50.map(short));
    flag("p95", a.p95.map(short));
    flag("p99", a.p99.map(short));
    flag("error-rate", (a.error_rate != 0.0).then(|| a.error_rate.to_string()));
    flag(
        "error-status",
        (a.error_status != 500).then(|| a.error_status.to_string()),
    );
    flag("tps-mean", a.tps_mean.map(|v| v.to_string()));
    flag("tps-cv", a.tps_cv.map(|v| v.to_string()));
    flag("tps-peak", a.tps_peak.map(|v| v.to_string()));
    flag("tps-min", a.tps_min.map(|v| v.to_string()));
    flag("ttft-p50", a.ttft_p50.map(short));
    flag("ttft-p99", a.ttft_p99.map(short));
    flag("embeddings-avg", a.embeddings_avg.map(short));
    flag("name", a.name.clone());
    flag("description", a.description.clone());
    flag(
        "api",
        (a.api == crate::provider::Api::Anthropic).then(|| "anthropic".to_string()),
    );
    flag("seed", (a.seed != 1).then(|| a.seed.to_string()));
    flag("max-tokens", (a.max_tokens != 200).then(|| a.max_tokens.to_string()));
    flag(
        "stream-rate",
        (a.stream_rate != 20.0).then(|| a.stream_rate.to_string()),
    );
    s
}

/// Runs `calibrate`: the fitted profile as TOML, checked by loading it back and measuring it.
pub fn run_calibrate(a: CalibrateArgs) -> anyhow::Result<u8> {
    let latency = match (a.p50, a.p95, a.p99) {
        (Some(x), Some(y), Some(z)) => Some([x, y, z]),
        _ => None,
    };
    let targets = calibrate::Targets {
        latency,
        error_rate: a.error_rate,
        error_status: a.error_status,
        ttft: a.ttft_p50.zip(a.ttft_p99),
        tps: a.tps_mean.zip(a.tps_cv).map(|(mean, cv)| calibrate::TpsTargets {
            mean,
            cv,
            peak: a.tps_peak,
            min: a.tps_min,
        }),
        embeddings_avg: a.embeddings_avg,
    };
    let w = Workload {
        max_tokens: a.max_tokens,
        stream_rate: a.stream_rate,
        ..Workload::default()
    };
    let problems = w.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let fitted = calibrate::fit(&targets, &w, a.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = a.name.clone().unwrap_or_else(|| "calibrated".into());
    let mut head = format!("# Fitted by: {}\n", command_line(&a));
    let mut what = Vec::new();
    if let Some([x, y, z]) = latency {
        what.push(format!(
            "latency p50 {} / p95 {} / p99 {}",
            short(x),
            short(y),
            short(z)
        ));
    }
    if a.error_rate > 0.0 {
        what.push(format!("{} % errors", sig_pct(a.error_rate)));
    }
    if let (Some(m), Some(c)) = (a.tps_mean, a.tps_cv) {
        let range = match (a.tps_peak, a.tps_min) {
            (Some(p), Some(n)) => format!(", peak {p}, min {n}"),
            _ => String::new(),
        };
        what.push(format!("{m} tokens/s (cv {c}{range})"));
    }
    if let Some(e) = a.embeddings_avg {
        what.push(format!("embeddings avg {}", short(e)));
    }
    let description = a
        .description
        .clone()
        .unwrap_or_else(|| format!("fitted to {}", what.join(", ")));
    let body = format!(
        "name = {name:?}\ndescription = {description:?}\n\n[baseline]\n{}",
        fitted.baseline_toml
    );
    let profile = Profile::from_toml(&body, "<calibrate>").context("the fitted profile does not load back")?;
    let mut check = profile.clone();
    check.name = Some(name.clone());
    let s = measure(&check, a.seed, &w);
    head += &format!(
        "# profile-stats (seed {}, {} of traffic) measures: {}latency p50 {:.0} / p95 {:.0} / p99 {:.0} ms, error rate {:.4} %",
        a.seed,
        short(w.duration),
        if s.latency_test == "embeddings" { "embeddings " } else { "" },
        s.latency_ms.p50,
        s.latency_ms.p95,
        s.latency_ms.p99,
        s.error_rate * 100.0
    );
    if let Some(t) = &s.output_tps {
        head += &format!(
            ";\n#   output_tps avg {:.1} / peak {:.1} / min {:.1} / cv {:.1} %",
            t.avg,
            t.peak,
            t.min,
            t.cv * 100.0
        );
    }
    if let Some(t) = &fitted.tps_fit {
        head += &format!(
            " (over the fit's {}: avg {:.1} / cv {:.1} %)",
            short(calibrate::FIT_HORIZON),
            t.avg,
            t.cv * 100.0
        );
    }
    if let Some(e) = &s.embeddings {
        head += &format!(
            ";\n#   embeddings {:.1} req/s, avg {:.0} ms",
            e.requests_per_s, e.avg_latency_ms
        );
    }
    let output = a.output.as_deref().filter(|p| !super::commands::is_stdout(p));
    let file = output.map_or("FILE".into(), |p| p.display().to_string());
    let api = a.api.as_str();
    head += &format!("\n# Serve: chaosgate mock --api {api} --listen 127.0.0.1:9001 --profile {file}\n");
    let out = head + &body;
    let json_stdout = a.json.as_deref().is_some_and(super::commands::is_stdout);
    match output {
        Some(p) => {
            std::fs::write(p, &out).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None if json_stdout => eprint!("{out}"),
        None => print!("{out}"),
    }
    if let Some(p) = &a.json {
        let v = serde_json::json!({ "profile_toml": out, "measured": s });
        super::commands::write_json_out(p, &v)?;
    }
    Ok(0)
}

/// A duration as calibrate writes it (`1240ms`, `42100us`; whole minutes and hours as such).
fn short(d: Dur) -> String {
    match d.0 {
        n if n >= 3600 * NS_PER_S && n % (3600 * NS_PER_S) == 0 => format!("{}h", n / (3600 * NS_PER_S)),
        n if n >= 60 * NS_PER_S && n % (60 * NS_PER_S) == 0 => format!("{}m", n / (60 * NS_PER_S)),
        _ => calibrate::dur_text(d.secs_f64()),
    }
}

fn sig_pct(r: f64) -> String {
    format!("{}", calibrate::sig(r * 100.0, 4))
}
