//! `chaosgate calibrate`: a ready profile fitted to the numbers on a dashboard.
//!
//! - **Latency**: a `quantiles` distribution (a lognormal body up to p95, a second
//!   lognormal slope above it). Clients measure every sent request, failures included, and
//!   the errors calibrate writes answer at once, so a share `e` of them sits below every
//!   ok latency: the measured quantile `q` is the ok distribution's quantile
//!   `(q − e) / (1 − e)`. The fit solves for the ok distribution in closed form so that the
//!   *measured* p50 / p95 / p99 are the targets exactly.
//! - **Errors**: one rule, `status` (default 500), with probability = the error rate.
//! - **Time to first token** (not on most dashboards): lognormal, p50 and p99 a quarter of
//!   the latency targets unless given.
//! - **Tokens per second**: a random walk (lag-one correlation 0.5, 1-s steps); with a
//!   peak and a min, bounded to `[min, peak]` with one dip to min and one burst to peak,
//!   6 s each, every 10 minutes. The walk's mean and CV are fitted by simulation: the
//!   throughput test of `profile-stats` (the load report's per-second bucket definition,
//!   which averages the streams ending in each second) is run on a long horizon and the
//!   parameters are corrected until its avg and CV are the targets.
//! - **Embeddings**: a lognormal latency with the given mean (p99 = 2.5 × p50).

use super::stats::{throughput_test, Workload};
use crate::fault::latency::{inverse_normal_cdf, Z95, Z99};
use crate::fault::throughput::{Excursions, Process};
use crate::fault::{Profile, Throughput};
use crate::time::{Dur, NS_PER_S};

/// Throughput targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TpsTargets {
    /// Average tokens/s.
    pub mean: f64,
    /// Coefficient of variation (0.123 for "±12.3 %").
    pub cv: f64,
    /// Peak, if known (needs `min` too).
    pub peak: Option<f64>,
    /// Min, if known (needs `peak` too).
    pub min: Option<f64>,
}

/// Everything calibrate fits to.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// Measured latency p50 / p95 / p99 of plain chat calls (absent: no `latency` line, so
    /// a plain call takes TTFT + tokens / tokens_per_s).
    pub latency: Option<[Dur; 3]>,
    /// Share of failed requests, in [0, 0.5).
    pub error_rate: f64,
    /// Status of the failures.
    pub error_status: u16,
    /// Time to first token p50 / p99 (default: a quarter of the latency targets, or none).
    pub ttft: Option<(Dur, Dur)>,
    /// Streaming throughput.
    pub tps: Option<TpsTargets>,
    /// Mean embeddings latency.
    pub embeddings_avg: Option<Dur>,
}

/// Lag-one correlation of the fitted walk.
pub const WALK_CORRELATION: f64 = 0.5;
/// Period of the fitted dips and bursts.
pub const EXCURSION_EVERY: Dur = Dur::from_secs(600);
/// Length of each dip and burst.
pub const EXCURSION_HOLD: Dur = Dur::from_secs(6);
/// Horizon of the throughput fit (long, so the fit is the profile's long-run behaviour,
/// not one seed's).
pub const FIT_HORIZON: Dur = Dur::from_secs(6 * 3600);
/// p99 / p50 of the fitted embeddings latency.
pub const EMBEDDINGS_SPREAD: f64 = 2.5;

impl Targets {
    /// Every problem with the targets, one message each.
    pub fn problems(&self) -> Vec<String> {
        let mut e = Vec::new();
        if let Some([p50, p95, p99]) = self.latency {
            if p50.0 == 0 {
                e.push("--p50 must be > 0".into());
            }
            if p95 < p50 {
                e.push(format!("--p95 ({p95}) must be ≥ --p50 ({p50})"));
            }
            if p99 < p95 {
                e.push(format!("--p99 ({p99}) must be ≥ --p95 ({p95})"));
            }
        }
        if !(self.error_rate.is_finite() && (0.0..0.5).contains(&self.error_rate)) {
            e.push(format!(
                "--error-rate must be a share in [0, 0.5) (0.0002 for 0.02 %), got {}",
                self.error_rate
            ));
        }
        if !(400..=599).contains(&self.error_status) {
            e.push(format!("--error-status must be 400–599, got {}", self.error_status));
        }
        if let Some((a, b)) = self.ttft {
            if a.0 == 0 || b < a {
                e.push(format!("need 0 < --ttft-p50 ≤ --ttft-p99, got {a} / {b}"));
            }
        }
        if let Some(t) = self.tps {
            if !(t.mean.is_finite() && t.mean > 0.0) {
                e.push(format!("--tps-mean must be a positive number, got {}", t.mean));
            }
            if !(t.cv.is_finite() && (0.0..2.0).contains(&t.cv)) {
                e.push(format!("--tps-cv must be in [0, 2) (0.123 for ±12.3 %), got {}", t.cv));
            }
            match (t.peak, t.min) {
                (Some(p), Some(m)) => {
                    if !(m.is_finite() && p.is_finite() && m > 0.0 && m < t.mean && t.mean < p) {
                        e.push(format!(
                            "need 0 < --tps-min < --tps-mean < --tps-peak, got {m} / {} / {p}",
                            t.mean
                        ));
                    }
                }
                (None, None) => {}
                _ => e.push("give --tps-peak and --tps-min together".into()),
            }
        }
        if self.embeddings_avg == Some(Dur(0)) {
            e.push("--embeddings-avg must be > 0".into());
        }
        e
    }
}

/// The ok distribution's p50 / p95 / p99 (seconds) whose measured quantiles, with a share
/// `e` of instant failures mixed in, are `t` (seconds).
pub fn ok_quantiles(t: [f64; 3], e: f64) -> Result<[f64; 3], String> {
    let level = |q: f64| (q - e) / (1.0 - e);
    let (z1, z2, z3) = (
        inverse_normal_cdf(level(0.5)),
        inverse_normal_cdf(level(0.95)),
        inverse_normal_cdf(level(0.99)),
    );
    let (l50t, l95t, l99t) = (t[0].ln(), t[1].ln(), t[2].ln());
    // body (z ≤ Z95): ln x = l50 + s·z through the measured p50 and p95
    let s_body = if z2 > z1 { (l95t - l50t) / (z2 - z1) } else { 0.0 };
    let l50 = l50t - s_body * z1;
    let l95 = l50 + s_body * Z95;
    // tail (z > Z95): ln x = l95 + s·(z − Z95) through the measured p99
    if z3 <= Z95 {
        return Err(format!("an error rate of {e} leaves no room for a p99 tail"));
    }
    let s_tail = (l99t - l95) / (z3 - Z95);
    if s_tail < 0.0 {
        return Err(format!(
            "p99 ({:.0} ms) is too close to p95 ({:.0} ms) for an error rate of {e}: the ok answers' p95 alone is {:.0} ms",
            t[2] * 1e3,
            t[1] * 1e3,
            l95.exp() * 1e3
        ));
    }
    let l99 = l95 + s_tail * (Z99 - Z95);
    Ok([l50.exp(), l95.exp(), l99.exp()])
}

/// A duration for a TOML file: whole milliseconds from 100 ms up, else microseconds.
pub fn dur_text(secs: f64) -> String {
    let us = (secs * 1e6).round().max(0.0) as u64;
    if us >= 100_000 {
        format!("{}ms", (us as f64 / 1e3).round() as u64)
    } else {
        format!("{us}us")
    }
}

/// Rounds to `digits` significant digits.
pub fn sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let p = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * p).round() / p
}

fn walk(mean: f64, cv: f64, t: &TpsTargets) -> Throughput {
    let bounded = t.peak.is_some();
    let x = Excursions {
        every: EXCURSION_EVERY,
        hold: EXCURSION_HOLD,
    };
    Throughput {
        mean: sig(mean, 5),
        cv: sig(cv, 4),
        process: if cv > 0.0 {
            Process::RandomWalk
        } else {
            Process::Constant
        },
        correlation: WALK_CORRELATION,
        min: t.min,
        max: t.peak,
        dips: bounded.then_some(x),
        bursts: bounded.then_some(x),
        ..Throughput::constant(1.0)
    }
}

/// First guess of the walk's mean and CV: moments of the mixture "walk, or a dip at min,
/// or a burst at peak", ignoring clamping and bucket averaging.
fn first_guess(t: &TpsTargets) -> (f64, f64) {
    let (Some(hi), Some(lo)) = (t.peak, t.min) else {
        return (t.mean, t.cv);
    };
    let p = EXCURSION_HOLD.secs_f64() / EXCURSION_EVERY.secs_f64();
    let rest = 1.0 - 2.0 * p;
    let m = (t.mean - p * (hi + lo)) / rest;
    let second = (t.mean * t.mean * (1.0 + t.cv * t.cv) - p * (hi * hi + lo * lo)) / rest;
    let var = (second - m * m).max((0.01 * m).powi(2));
    (m, var.sqrt() / m)
}

/// Fits the walk so the throughput test of `base` (with the walk in its baseline) measures
/// the targets' avg and CV over [`FIT_HORIZON`]. Returns the walk and the long-run
/// figures it measured.
pub fn fit_throughput(
    base: &Profile,
    t: &TpsTargets,
    w: &Workload,
    seed: u64,
) -> Result<(Throughput, crate::analysis::Tps), String> {
    let fit_w = Workload {
        duration: FIT_HORIZON.max(w.duration),
        ..*w
    };
    let (mut mean, mut cv) = first_guess(t);
    let target_var = (t.cv * t.mean).powi(2);
    let mut best: Option<(f64, Throughput, crate::analysis::Tps)> = None;
    // (walk cv², measured variance) of the previous step, for a secant step on the CV:
    // the measured variance is close to affine in the walk's cv² (the dips and bursts add
    // a constant), so two points predict the cv² that gives the target.
    let mut prev: Option<(f64, f64)> = None;
    for _ in 0..30 {
        let spec = walk(mean, cv, t);
        let mut p = base.clone();
        p.baseline.tokens_per_s = Some(spec.clone());
        let m = throughput_test(&p, seed, &fit_w).ok_or("no stream completed in the fit")?;
        let err_mean = m.avg / t.mean - 1.0;
        let err_cv = if t.cv > 0.0 { m.cv / t.cv - 1.0 } else { 0.0 };
        let err = err_mean.abs().max(err_cv.abs());
        if best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, spec, m));
        }
        if err < 0.001 {
            break;
        }
        mean *= t.mean / m.avg;
        if t.cv == 0.0 {
            continue;
        }
        let var = (m.cv * m.avg).powi(2);
        let c2 = cv * cv;
        let secant = prev.and_then(|(c2p, vp)| {
            let slope = (var - vp) / (c2 - c2p);
            (slope.is_finite() && slope > 0.0).then(|| c2 + (target_var - var) / slope)
        });
        prev = Some((c2, var));
        cv = match secant {
            Some(next) if next > 0.0 => next.sqrt(),
            Some(_) => 0.0,
            None => cv * t.cv / m.cv.max(1e-9),
        };
        if cv < 1e-4 {
            return Err(format!(
                "a CV of {:.1} % is out of reach with peak {} and min {}: the dips and bursts alone (6 s each every 10 min) give {:.1} %",
                t.cv * 100.0,
                t.peak.unwrap_or_default(),
                t.min.unwrap_or_default(),
                m.cv * 100.0
            ));
        }
    }
    let (err, spec, m) = best.expect("at least one iteration");
    if err > 0.01 {
        return Err(format!(
            "the throughput fit did not converge (best: avg {:.1}, cv {:.1} % for targets {:.1}, {:.1} %)",
            m.avg,
            m.cv * 100.0,
            t.mean,
            t.cv * 100.0
        ));
    }
    Ok((spec, m))
}

/// The profile TOML's `[baseline]` lines (and the profile) for the targets.
pub struct Fitted {
    /// The fitted profile.
    pub profile: Profile,
    /// `[baseline]` body lines, TOML.
    pub baseline_toml: String,
    /// Long-run throughput figures of the fit, if fitted.
    pub tps_fit: Option<crate::analysis::Tps>,
}

fn walk_toml(t: &Throughput) -> String {
    let mut s = format!("{{ mean = {}, cv = {}", t.mean, t.cv);
    if t.process == Process::RandomWalk {
        s += &format!(", process = \"random_walk\", correlation = {}", t.correlation);
    }
    if let (Some(lo), Some(hi)) = (t.min, t.max) {
        s += &format!(", min = {lo}, max = {hi}");
    }
    for (k, x) in [("dips", t.dips), ("bursts", t.bursts)] {
        if let Some(x) = x {
            s += &format!(", {k} = {{ every = \"{}\", hold = \"{}\" }}", x.every, x.hold);
        }
    }
    s + " }"
}

/// Fits every target. `w` is the workload the throughput fit stands for (its stream rate,
/// max_tokens, timeout); `seed` seeds the fit.
pub fn fit(t: &Targets, w: &Workload, seed: u64) -> Result<Fitted, String> {
    let problems = t.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let secs = |d: Dur| d.0 as f64 / NS_PER_S as f64;
    let mut lines = Vec::new();
    if let Some([p50, p95, p99]) = t.latency {
        let q = ok_quantiles([secs(p50), secs(p95), secs(p99)], t.error_rate)?;
        lines.push(format!(
            "latency = {{ kind = \"quantiles\", p50 = \"{}\", p95 = \"{}\", p99 = \"{}\", cap = \"60s\" }}",
            dur_text(q[0]),
            dur_text(q[1]),
            dur_text(q[2])
        ));
    }
    let ttft = match (t.ttft, t.latency) {
        (Some((a, b)), _) => Some((secs(a), secs(b))),
        (None, Some([p50, _, p99])) => Some((secs(p50) / 4.0, secs(p99) / 4.0)),
        (None, None) => None,
    };
    if let Some((tt50, tt99)) = ttft {
        lines.push(format!(
            "ttft = {{ kind = \"lognormal\", p50 = \"{}\", p99 = \"{}\" }}",
            dur_text(tt50),
            dur_text(tt99)
        ));
    }
    if let Some(avg) = t.embeddings_avg {
        let sigma = EMBEDDINGS_SPREAD.ln() / Z99;
        let p50 = secs(avg) / (sigma * sigma / 2.0).exp();
        lines.push(format!(
            "embedding_latency = {{ kind = \"lognormal\", p50 = \"{}\", p99 = \"{}\" }}",
            dur_text(p50),
            dur_text(p50 * EMBEDDINGS_SPREAD)
        ));
    }
    if t.error_rate > 0.0 {
        lines.push(format!(
            "errors = [{{ status = {}, probability = {} }}]",
            t.error_status, t.error_rate
        ));
    }
    let parse = |lines: &[String]| {
        Profile::from_toml(&format!("[baseline]\n{}\n", lines.join("\n")), "<calibrate>").map_err(|e| e.to_string())
    };
    let mut profile = parse(&lines)?;
    let mut tps_fit = None;
    if let Some(tps) = &t.tps {
        let (spec, m) = fit_throughput(&profile, tps, w, seed)?;
        let at = lines
            .iter()
            .position(|l| l.starts_with("ttft"))
            .map_or(lines.len(), |i| i + 1);
        lines.insert(at, format!("tokens_per_s = {}", walk_toml(&spec)));
        profile = parse(&lines)?;
        if profile.baseline.tokens_per_s.as_ref() != Some(&spec) {
            return Err("internal: the rendered tokens_per_s does not parse back to the fitted one".into());
        }
        tps_fit = Some(m);
    }
    Ok(Fitted {
        profile,
        baseline_toml: lines.join("\n") + "\n",
        tps_fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(ok: [f64; 3], e: f64, q: f64) -> f64 {
        // the mixture's quantile: the ok distribution at level (q − e)/(1 − e)
        let l = crate::fault::Latency::Quantiles {
            p50: Dur((ok[0] * 1e9) as u64),
            p95: Dur((ok[1] * 1e9) as u64),
            p99: Dur((ok[2] * 1e9) as u64),
            cap: None,
        };
        l.quantile((q - e) / (1.0 - e))
    }

    #[test]
    fn ok_quantiles_put_the_measured_quantiles_on_the_targets() {
        for (t, e) in [
            ([1.24, 2.89, 4.12], 0.0002),
            ([2.34, 5.6, 9.2], 0.0067),
            ([1.0, 1.0, 3.0], 0.1),
        ] {
            let ok = ok_quantiles(t, e).unwrap();
            for (i, q) in [0.5, 0.95, 0.99].into_iter().enumerate() {
                let m = measured(ok, e, q);
                assert!((m - t[i]).abs() / t[i] < 1e-6, "{t:?} e {e}: q{q} {m}");
            }
            assert!(ok[0] >= t[0] && ok[2] >= t[2], "errors at 0 pull quantiles down");
        }
        // no errors: the targets themselves
        let ok = ok_quantiles([1.24, 2.89, 4.12], 0.0).unwrap();
        assert!((ok[0] - 1.24).abs() < 1e-9 && (ok[2] - 4.12).abs() < 1e-9);
        // computed by hand (Python's statistics.NormalDist): e = 0.0067 puts the measured
        // p50 / p95 / p99 at ok levels 0.49663 / 0.94966 / 0.98993 (z = −0.00845, 1.64159,
        // 2.32382); through those, the ok distribution is 2.3505 / 5.6097 / 9.2169 s
        let ok = ok_quantiles([2.34, 5.6, 9.2], 0.0067).unwrap();
        for (got, want) in ok.iter().zip([2.3505, 5.6097, 9.2169]) {
            assert!((got - want).abs() < 0.0003, "{ok:?}");
        }
    }

    #[test]
    fn a_p99_hugging_p95_with_many_errors_is_refused_with_a_reason() {
        let e = ok_quantiles([1.0, 2.0, 2.0001], 0.04).unwrap_err();
        assert!(e.contains("too close to p95"), "{e}");
    }

    #[test]
    fn durations_and_rounding_for_toml() {
        assert_eq!(dur_text(1.2434), "1243ms");
        assert_eq!(dur_text(0.0421), "42100us");
        assert_eq!(sig(183.2649, 5), 183.26);
        assert_eq!(sig(0.061234, 4), 0.06123);
    }

    #[test]
    fn problems_name_the_flag() {
        let t = Targets {
            latency: Some([Dur::from_millis(3000), Dur::from_millis(2000), Dur::from_millis(4000)]),
            error_rate: -0.1,
            error_status: 200,
            ttft: None,
            tps: Some(TpsTargets {
                mean: 100.0,
                cv: 0.1,
                peak: Some(90.0),
                min: None,
            }),
            embeddings_avg: None,
        };
        let p = t.problems().join("\n");
        for want in [
            "--p95",
            "--error-rate",
            "--error-status",
            "--tps-peak and --tps-min together",
        ] {
            assert!(p.contains(want), "{p}");
        }
    }
}
