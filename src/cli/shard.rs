//! The shard flags of `load`, `run` and `sim`, and `chaosgate merge` (docs/sharding.md).

use crate::run::shard::{self, Kind, ShardPlan};
use crate::traffic::shard::Shard;
use anyhow::{anyhow, bail};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Kubernetes' Indexed Job gives each pod its index in this variable.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The shard count when `--shard auto` has no `--shards`.
pub const COUNT_ENV: &str = "JOB_COMPLETION_COUNT";
/// The furthest ahead `--start-at` may be.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);
/// The longest shard name or region.
pub const MAX_LABEL: usize = 64;

/// How a command's work is split across machines.
#[derive(Debug, Default, clap::Args)]
pub struct ShardArgs {
    /// Run shard I of N (0-based, e.g. 0/3), or `auto`: the index from JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Job), the count from --shards or JOB_COMPLETION_COUNT.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// The shard count for `--shard auto`.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<u32>,
    /// This shard's name in the merged report (default: shard-I).
    #[arg(long, value_name = "NAME", requires = "shard")]
    pub shard_name: Option<String>,
    /// Where this shard runs (a label for per-region breakdowns).
    #[arg(long, value_name = "NAME")]
    pub region: Option<String>,
    /// The wall-clock time every shard starts its schedule at: RFC 3339
    /// (2026-12-06T12:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// Write the mergeable result file here (`chaosgate merge` reads it).
    #[arg(long, value_name = "PATH")]
    pub result: Option<PathBuf>,
}

/// The shard plan of `a`, reading the environment through `env`; `None` when the command
/// is neither sharded nor writing a result file. `live`: whether `--start-at` applies.
pub fn resolve(
    a: &ShardArgs,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
    live: bool,
) -> anyhow::Result<Option<ShardPlan>> {
    let shard = match a.shard.as_deref() {
        None => None,
        Some("auto") => {
            let index = env(INDEX_ENV).ok_or_else(|| {
                anyhow!("--shard auto: {INDEX_ENV} is not set (it is set in a Kubernetes Indexed Job's pods)")
            })?;
            let index: u32 = index
                .trim()
                .parse()
                .map_err(|_| anyhow!("--shard auto: {INDEX_ENV}={index:?} is not a whole number"))?;
            let count = match (a.shards, env(COUNT_ENV)) {
                (Some(n), _) => n,
                (None, Some(n)) => n
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("--shard auto: {COUNT_ENV}={n:?} is not a whole number"))?,
                (None, None) => bail!("--shard auto: give the shard count with --shards N or {COUNT_ENV}"),
            };
            Some(Shard::new(index, count).map_err(|e| anyhow!("--shard auto ({INDEX_ENV}={index}): {e}"))?)
        }
        Some(s) => {
            if a.shards.is_some() {
                bail!("--shards is for --shard auto; --shard {s} already says the count");
            }
            Some(s.parse::<Shard>().map_err(|e| anyhow!("--shard {e}"))?)
        }
    };
    if shard.is_some() && a.result.is_none() {
        bail!("--shard needs --result PATH: the file `chaosgate merge` combines");
    }
    let start_at = match &a.start_at {
        None => None,
        Some(_) if !live => bail!("--start-at is for live shards; the simulator runs in virtual time"),
        Some(t) => Some(parse_start_at(t, now)?),
    };
    if shard.is_none() && a.result.is_none() {
        if start_at.is_some() || a.region.is_some() {
            bail!("--start-at and --region label shards: give --shard I/N and --result PATH");
        }
        return Ok(None);
    }
    let shard = shard.unwrap_or(Shard::WHOLE);
    let name = a.shard_name.clone().unwrap_or_else(|| format!("shard-{}", shard.index));
    check_label("--shard-name", &name)?;
    if let Some(r) = &a.region {
        check_label("--region", r)?;
    }
    Ok(Some(ShardPlan {
        shard,
        name,
        region: a.region.clone(),
        start_at,
        result: a.result.clone(),
    }))
}

fn check_label(flag: &str, v: &str) -> anyhow::Result<()> {
    if v.is_empty() || v.len() > MAX_LABEL {
        bail!("{flag} {v:?}: 1 to {MAX_LABEL} characters");
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        bail!("{flag} {v:?}: {c:?} is not allowed (letters, digits, - _ . :)");
    }
    Ok(())
}

/// `--start-at`: RFC 3339 or Unix seconds, at most [`MAX_START_AHEAD`] after `now`.
pub fn parse_start_at(t: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let at = if let Ok(secs) = t.trim().parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            bail!("--start-at {t:?}: Unix seconds must be a finite number ≥ 0");
        }
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs_f64(secs))
            .ok_or_else(|| anyhow!("--start-at {t:?}: out of range"))?
    } else {
        humantime::parse_rfc3339_weak(t.trim()).map_err(|e| {
            anyhow!("--start-at {t:?}: {e} (expected RFC 3339, e.g. 2026-12-06T12:00:00Z, or Unix seconds)")
        })?
    };
    if let Ok(ahead) = at.duration_since(now) {
        if ahead > MAX_START_AHEAD {
            bail!(
                "--start-at {t:?} is {:.0} h from now: at most {} h ahead",
                ahead.as_secs_f64() / 3600.0,
                MAX_START_AHEAD.as_secs() / 3600
            );
        }
    }
    Ok(at)
}

/// The exit code of a load run or merge: 130 when interrupted, 1 with requests in flight
/// at the end (unless allowed), else 0; says why on stderr.
pub fn load_exit(command: &str, interrupted: bool, in_flight: u64, allow_in_flight: bool) -> u8 {
    if interrupted {
        eprintln!("chaosgate {command}: interrupted; the report above is partial");
        return 130;
    }
    if in_flight > 0 && !allow_in_flight {
        eprintln!(
            "chaosgate {command}: {in_flight} request(s) in flight at the end were never accounted for (--allow-in-flight accepts this)"
        );
        return 1;
    }
    0
}

/// Writes a shard's result file.
pub fn write_result<T: serde::Serialize>(
    plan: &ShardPlan,
    kind: Kind,
    fingerprint: String,
    seed: u64,
    complete: bool,
    body: T,
) -> anyhow::Result<()> {
    let Some(path) = &plan.result else {
        return Ok(());
    };
    let file = shard::ShardFile {
        chaosgate_shard: plan.header(kind, fingerprint, seed, complete),
        body,
    };
    shard::write(path, &file)?;
    eprintln!(
        "wrote {} (shard {} \"{}\"{})",
        path.display(),
        plan.shard,
        plan.name,
        if complete { "" } else { ", interrupted: partial" }
    );
    Ok(())
}

/// The instant a shard's schedule starts at (`--start-at`), and how late this process is
/// for it (ns; 0 when early). Refuses a start after the whole schedule's end.
pub fn start_instant(
    at: SystemTime,
    schedule_len: crate::time::Nanos,
    who: &str,
) -> anyhow::Result<(tokio::time::Instant, crate::time::Nanos)> {
    let (now, inow) = (SystemTime::now(), tokio::time::Instant::now());
    match at.duration_since(now) {
        Ok(ahead) => {
            if ahead > Duration::from_millis(100) {
                eprintln!(
                    "{who}: waiting {:.1} s for --start-at (Ctrl-C cancels)",
                    ahead.as_secs_f64()
                );
            }
            Ok((inow + ahead, 0))
        }
        Err(e) => {
            let late = e.duration();
            let late_ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
            if late_ns >= schedule_len {
                bail!(
                    "--start-at was {:.1} s ago, after the whole {:.1} s schedule: nothing of it is left to send (give a later --start-at)",
                    late.as_secs_f64(),
                    crate::time::nanos_to_secs_f64(schedule_len)
                );
            }
            Ok((inow.checked_sub(late).unwrap_or(inow), late_ns))
        }
    }
}

/// The warning of a shard that started after `--start-at`.
pub fn late_warning(name: &str, late: crate::time::Nanos) -> String {
    format!(
        "{name} started {:.3} s after --start-at: the requests already due were sent at once (their schedule lag and their latency from the intended time include the lateness)",
        crate::time::nanos_to_secs_f64(late)
    )
}

/// The fingerprint of a `load` run's work: the schedule and the analysis settings (the
/// traffic flags, the mix and trace files' contents, the API, the cap and timeouts, the
/// buckets, SLO thresholds and phases) and the seed — not the target, the region or the
/// shard's name.
pub fn load_fingerprint(
    a: &crate::cli::LoadArgs,
    cfg: &crate::traffic::TrafficConfig,
    opts: &crate::live::load::LoadOptions,
) -> anyhow::Result<String> {
    let contents = |p: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| shard::fingerprint(&String::from_utf8_lossy(&b)))
                    .map_err(|e| anyhow!("cannot read {}: {e}", p.display()))
            })
            .transpose()
    };
    let mut traffic = cfg.clone();
    traffic.mix = None;
    traffic.trace = None;
    let canonical = serde_json::json!({
        "kind": "load",
        "traffic": traffic,
        "mix": contents(&a.mix)?,
        "trace": contents(&a.trace)?,
        "api": a.api.as_str(),
        "concurrency": opts.concurrency,
        "timeout": opts.timeout,
        "ttft_timeout": opts.ttft_timeout,
        "stall_timeout": opts.stall_timeout,
        "grace": opts.grace,
        "bucket": opts.bucket,
        "slo": opts.slo,
        "phases": opts.phases,
        "seed": opts.seed,
    });
    Ok(shard::fingerprint(&canonical.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shard: Option<&str>, result: Option<&str>) -> ShardArgs {
        ShardArgs {
            shard: shard.map(String::from),
            result: result.map(PathBuf::from),
            ..ShardArgs::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const NOW: Duration = Duration::from_secs(1_796_558_400); // 2026-12-06T12:00:00Z

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn an_unsharded_command_has_no_plan() {
        assert_eq!(resolve(&ShardArgs::default(), &no_env, now(), true).unwrap(), None);
    }

    #[test]
    fn shard_flags_resolve() {
        let p = resolve(&args(Some("1/3"), Some("s1.json")), &no_env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::new(1, 3).unwrap());
        assert_eq!(p.name, "shard-1");
        // --result alone: one shard of one, mergeable
        let p = resolve(&args(None, Some("r.json")), &no_env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::WHOLE);
        let e = resolve(&args(Some("1/3"), None), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--result"), "{e}");
        let e = resolve(&args(Some("3/3"), Some("x")), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0-based"), "{e}");
    }

    #[test]
    fn shard_auto_reads_the_indexed_job() {
        let env = |k: &str| match k {
            INDEX_ENV => Some("2".to_string()),
            COUNT_ENV => Some("4".to_string()),
            _ => None,
        };
        let p = resolve(&args(Some("auto"), Some("r.json")), &env, now(), true)
            .unwrap()
            .unwrap();
        assert_eq!(p.shard, Shard::new(2, 4).unwrap());
        let mut a = args(Some("auto"), Some("r.json"));
        a.shards = Some(3);
        let p = resolve(&a, &env, now(), true).unwrap().unwrap();
        assert_eq!(p.shard, Shard::new(2, 3).unwrap());
        let e = resolve(&args(Some("auto"), Some("r.json")), &no_env, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX is not set"), "{e}");
        let only_index = |k: &str| (k == INDEX_ENV).then(|| "0".to_string());
        let e = resolve(&args(Some("auto"), Some("r.json")), &only_index, now(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--shards N"), "{e}");
    }

    #[test]
    fn start_at_and_labels_are_checked() {
        let at = parse_start_at("2026-12-06T12:00:30Z", now()).unwrap();
        assert_eq!(at.duration_since(now()).unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_start_at("1796558460", now()).unwrap(),
            now() + Duration::from_secs(60)
        );
        assert!(parse_start_at("tomorrow", now())
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
        assert!(parse_start_at("2026-12-09T12:00:00Z", now())
            .unwrap_err()
            .to_string()
            .contains("at most 24 h"));
        let mut a = args(Some("0/2"), Some("r.json"));
        a.start_at = Some("1796558460".into());
        let e = resolve(&a, &no_env, now(), false).unwrap_err().to_string();
        assert!(e.contains("virtual time"), "{e}");
        a.region = Some("eu west".into());
        let e = resolve(&a, &no_env, now(), true).unwrap_err().to_string();
        assert!(e.contains("' ' is not allowed"), "{e}");
    }
}
