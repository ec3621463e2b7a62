//! The platform profiles (fault-profiles/platforms/) reproduce the seed article's rows, as
//! `profile-stats` measures them in virtual time; `calibrate` → `profile-stats` comes back
//! to its targets; bad flags exit 2 with a message naming the flag.
//!
//! Sample sizes are chosen so the bounds hold for any seed, not just this one: with
//! 100,000 latency samples the p99's standard error is ≈ 0.9 % (the 5 % bound is > 5 σ);
//! over 4 hours of streams the CV's is ≤ 0.9 % (Together AI's ±31.2 %, the noisiest);
//! checked by hand over seeds 1–20 (worst: p99 −2.3 %, CV +3.0 %, avg −2.2 %). Error rates
//! of 0.01–0.67 % cannot be pinned to 5 % by 100,000 samples (0.01 % is 10 errors, ± 32 %),
//! so here they are held to a 4.5-σ binomial bound, and to 5 % by
//! `error_rates_within_five_percent`, an ignored test with ≥ 8,100 expected errors per
//! profile (`cargo test --release --test platforms -- --ignored`, ≈ 40 s on 2 cores).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::fault::Profile;
use chaosgate::profiles::calibrate::{self, Targets, TpsTargets};
use chaosgate::profiles::stats::{profile_stats, ProfileStats, Workload};
use chaosgate::time::Dur;
use std::path::PathBuf;
use std::process::Command;

/// One row as the article prints it; `None` where the article gives no number.
struct Row {
    name: &'static str,
    /// p50 / p95 / p99 in ms.
    latency: Option<[f64; 3]>,
    error_rate: f64,
    /// avg, peak, min, cv; peak and min only where the article gives them. Neutral,
    /// documented values (Sonnet, Groq) are checked the same way.
    tps: Option<(f64, Option<f64>, Option<f64>, f64)>,
    /// requests/s, average latency in ms.
    embeddings: Option<(f64, f64)>,
    /// How the opening comment quotes the row.
    quoted: &'static [&'static str],
}

const SONNET_TPS: Option<(f64, Option<f64>, Option<f64>, f64)> = Some((60.0, None, None, 0.1));

const ROWS: &[Row] = &[
    Row {
        name: "openai-direct-gpt4o",
        latency: Some([1240.0, 2890.0, 4120.0]),
        error_rate: 0.0002,
        tps: Some((184.2, Some(312.5), Some(98.7), 0.123)),
        embeddings: None,
        quoted: &["1,240", "2,890", "4,120", "0.02 %", "184.2", "312.5", "98.7", "±12.3 %"],
    },
    Row {
        name: "openrouter-gpt4o",
        latency: Some([1310.0, 3450.0, 5200.0]),
        error_rate: 0.0015,
        tps: Some((156.8, Some(289.3), Some(67.2), 0.189)),
        embeddings: None,
        quoted: &["1,310", "3,450", "5,200", "0.15 %", "156.8", "289.3", "67.2", "±18.9 %"],
    },
    Row {
        name: "portkey-gpt4o",
        latency: Some([1280.0, 2940.0, 4300.0]),
        error_rate: 0.0008,
        tps: Some((178.9, Some(301.4), Some(112.5), 0.087)),
        embeddings: None,
        quoted: &["1,280", "2,940", "4,300", "0.08 %", "178.9", "301.4", "112.5", "±8.7 %"],
    },
    Row {
        name: "together-ai-gpt4o",
        latency: Some([1520.0, 3890.0, 6100.0]),
        error_rate: 0.0042,
        tps: Some((131.7, Some(245.6), Some(43.8), 0.312)),
        embeddings: None,
        quoted: &["1,520", "3,890", "6,100", "0.42 %", "131.7", "245.6", "43.8", "±31.2 %"],
    },
    Row {
        name: "anthropic-direct-sonnet",
        latency: Some([1890.0, 4200.0, 6500.0]),
        error_rate: 0.0001,
        tps: SONNET_TPS,
        embeddings: None,
        quoted: &["1,890", "4,200", "6,500", "0.01 %", "not in the article"],
    },
    Row {
        name: "openrouter-sonnet",
        latency: Some([2050.0, 4890.0, 7800.0]),
        error_rate: 0.0023,
        tps: SONNET_TPS,
        embeddings: None,
        quoted: &["2,050", "4,890", "7,800", "0.23 %", "not in the article"],
    },
    Row {
        name: "portkey-sonnet",
        latency: Some([1920.0, 4310.0, 6700.0]),
        error_rate: 0.0011,
        tps: SONNET_TPS,
        embeddings: None,
        quoted: &["1,920", "4,310", "6,700", "0.11 %", "not in the article"],
    },
    Row {
        name: "together-ai-sonnet",
        latency: Some([1520.0, 3890.0, 6100.0]),
        error_rate: 0.0042,
        tps: SONNET_TPS,
        embeddings: None,
        quoted: &["1,520", "3,890", "6,100", "0.42 %", "no second Together AI"],
    },
    Row {
        name: "anyscale-sonnet",
        latency: Some([2340.0, 5600.0, 9200.0]),
        error_rate: 0.0067,
        tps: SONNET_TPS,
        embeddings: None,
        quoted: &["2,340", "5,600", "9,200", "0.67 %", "not in"],
    },
    Row {
        name: "martian",
        // not in the article: the OpenAI Direct GPT-4o row as a neutral stand-in
        latency: Some([1240.0, 2890.0, 4120.0]),
        error_rate: 0.0002,
        tps: Some((142.3, Some(267.8), Some(54.1), 0.224)),
        embeddings: None,
        quoted: &["142.3", "267.8", "54.1", "±22.4 %", "not in"],
    },
    Row {
        name: "openai-direct-embeddings",
        latency: None,
        error_rate: 0.0,
        tps: None,
        embeddings: Some((42.3, 780.0)),
        quoted: &["42.3 req/s", "780 ms"],
    },
    Row {
        name: "anyscale-embeddings",
        latency: None,
        error_rate: 0.0,
        tps: None,
        embeddings: Some((38.7, 890.0)),
        quoted: &["38.7 req/s", "890 ms"],
    },
    Row {
        name: "portkey-embeddings",
        latency: None,
        error_rate: 0.0,
        tps: None,
        embeddings: Some((41.1, 810.0)),
        quoted: &["41.1 req/s", "810 ms"],
    },
    Row {
        name: "openrouter-embeddings",
        latency: None,
        error_rate: 0.0,
        tps: None,
        embeddings: Some((35.2, 1020.0)),
        quoted: &["35.2 req/s", "1,020 ms"],
    },
    Row {
        name: "groq-llama3-70b",
        latency: None,
        error_rate: 0.0,
        tps: Some((300.0, None, None, 0.05)),
        embeddings: None,
        quoted: &["300+ tokens/sec", "not in the"],
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Profile {
    Profile::load(&root().join(format!("fault-profiles/platforms/{name}.toml"))).unwrap_or_else(|e| panic!("{e}"))
}

fn row(name: &str) -> &'static Row {
    ROWS.iter().find(|r| r.name == name).expect("a row")
}

/// The test workload: 100,000 latency samples and 4 hours of streams at 20/s (chat), the
/// default 30 minutes for the embeddings closed loop.
fn workload(r: &Row) -> Workload {
    let base = Workload::default();
    if r.embeddings.is_some() {
        base
    } else {
        Workload {
            duration: Dur::from_secs(4 * 3600),
            ..base
        }
    }
}

fn close(what: &str, got: f64, want: f64, tol: f64, seed: u64) {
    let d = got / want - 1.0;
    assert!(
        d.abs() <= tol,
        "{what}: measured {got:.4}, article {want} ({:+.2} %, bound ±{} %); reproduce with --seed {seed}",
        d * 100.0,
        tol * 100.0
    );
}

/// |failed − N·p| within 4.5 binomial standard deviations (+1 for discreteness).
fn binomial_ok(s: &ProfileStats, p: f64) {
    let n = s.requests as f64;
    let failed = s.error_rate * n;
    let sd = (n * p * (1.0 - p)).sqrt();
    assert!(
        (failed - n * p).abs() <= 4.5 * sd + 1.0,
        "{}: {failed} failed of {n}, expected {:.1} ± {sd:.1}",
        s.profile,
        n * p
    );
}

fn check(name: &str) {
    let r = row(name);
    let seed = 1;
    let s = profile_stats(&load(name), seed, &workload(r));
    if let Some([p50, p95, p99]) = r.latency {
        assert_eq!(s.latency_test, "chat");
        close("latency_ms.p50", s.latency_ms.p50, p50, 0.05, seed);
        close("latency_ms.p95", s.latency_ms.p95, p95, 0.05, seed);
        close("latency_ms.p99", s.latency_ms.p99, p99, 0.05, seed);
    }
    binomial_ok(&s, r.error_rate);
    match r.tps {
        Some((avg, peak, min, cv)) => {
            let t = s.output_tps.expect("a paced profile has output_tps");
            close("output_tps.avg", t.avg, avg, 0.05, seed);
            close("output_tps.cv", t.cv, cv, 0.05, seed);
            if let Some(peak) = peak {
                close("output_tps.peak", t.peak, peak, 0.05, seed);
            }
            if let Some(min) = min {
                close("output_tps.min", t.min, min, 0.05, seed);
            }
        }
        None => assert!(s.output_tps.is_none()),
    }
    match r.embeddings {
        Some((rps, avg)) => {
            let e = s.embeddings.expect("an embeddings profile has embeddings figures");
            close("embeddings.requests_per_s", e.requests_per_s, rps, 0.05, seed);
            close("embeddings.avg_latency_ms", e.avg_latency_ms, avg, 0.05, seed);
            assert_eq!(s.latency_test, "embeddings");
        }
        None => assert!(s.embeddings.is_none()),
    }
}

macro_rules! rows {
    ($($f:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $f() {
                check($name);
            }
        )*
    };
}

rows! {
    openai_direct_gpt4o => "openai-direct-gpt4o",
    openrouter_gpt4o => "openrouter-gpt4o",
    portkey_gpt4o => "portkey-gpt4o",
    together_ai_gpt4o => "together-ai-gpt4o",
    anthropic_direct_sonnet => "anthropic-direct-sonnet",
    openrouter_sonnet => "openrouter-sonnet",
    portkey_sonnet => "portkey-sonnet",
    together_ai_sonnet => "together-ai-sonnet",
    anyscale_sonnet => "anyscale-sonnet",
    martian => "martian",
    openai_direct_embeddings => "openai-direct-embeddings",
    anyscale_embeddings => "anyscale-embeddings",
    portkey_embeddings => "portkey-embeddings",
    openrouter_embeddings => "openrouter-embeddings",
    groq_llama3_70b => "groq-llama3-70b",
}

#[test]
fn exactly_the_listed_profiles_each_quoting_its_row() {
    let dir = root().join("fault-profiles/platforms");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = ROWS.iter().map(|r| r.name.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    for r in ROWS {
        let src = std::fs::read_to_string(dir.join(format!("{}.toml", r.name))).unwrap();
        let head: String = src
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(head.contains("seed article"), "{}: say which row", r.name);
        for q in r.quoted {
            assert!(head.contains(q), "{}: the opening comment should quote {q:?}", r.name);
        }
        for cmd in ["chaosgate profile-stats", "chaosgate calibrate", "chaosgate mock"] {
            assert!(
                head.contains(cmd),
                "{}: the opening comment should give `{cmd}`",
                r.name
            );
        }
        assert_eq!(load(r.name).name.as_deref(), Some(r.name));
    }
}

/// 5 % on the error rate needs (4.5 / 0.05)² = 8,100 expected errors per profile: 81 M
/// requests at 0.01 %. Run in release: `cargo test --release --test platforms -- --ignored`.
#[test]
#[ignore = "≈ 190 M requests: run in release with --ignored"]
fn error_rates_within_five_percent() {
    std::thread::scope(|scope| {
        for r in ROWS.iter().filter(|r| r.error_rate > 0.0) {
            scope.spawn(move || {
                let w = Workload {
                    samples: (8_100.0 / r.error_rate).ceil() as u64,
                    ..Workload::default()
                };
                let s = profile_stats(&load(r.name), 1, &w);
                close(&format!("{} error_rate", r.name), s.error_rate, r.error_rate, 0.05, 1);
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// calibrate → profile-stats

fn ms(n: u64) -> Dur {
    Dur::from_millis(n)
}

/// The brief's example plus the article's OpenAI Direct throughput, fitted for a light
/// workload (5 streams/s, so the fit runs in a debug build) and measured on another seed
/// over 8 hours: every figure within 2 % (seeds 1–30 by hand: p99 within 1.5 %, the rest
/// within 1 %).
#[test]
fn calibrate_then_profile_stats_round_trips_within_two_percent() {
    let targets = Targets {
        latency: Some([ms(1240), ms(2890), ms(4120)]),
        error_rate: 0.0002,
        error_status: 500,
        ttft: None,
        tps: Some(TpsTargets {
            mean: 184.2,
            cv: 0.123,
            peak: Some(312.5),
            min: Some(98.7),
        }),
        embeddings_avg: None,
    };
    let w = Workload {
        stream_rate: 5.0,
        ..Workload::default()
    };
    let fitted = calibrate::fit(&targets, &w, 1).unwrap();
    // what calibrate prints is what gets measured
    let profile = Profile::from_toml(&format!("[baseline]\n{}", fitted.baseline_toml), "fitted.toml").unwrap();
    assert_eq!(profile, fitted.profile);
    let seed = 3;
    let s = profile_stats(
        &profile,
        seed,
        &Workload {
            duration: Dur::from_secs(8 * 3600),
            samples: 150_000,
            ..w
        },
    );
    close("p50", s.latency_ms.p50, 1240.0, 0.02, seed);
    close("p95", s.latency_ms.p95, 2890.0, 0.02, seed);
    close("p99", s.latency_ms.p99, 4120.0, 0.02, seed);
    binomial_ok(&s, 0.0002);
    let t = s.output_tps.unwrap();
    close("avg", t.avg, 184.2, 0.02, seed);
    close("cv", t.cv, 0.123, 0.02, seed);
    close("peak", t.peak, 312.5, 0.02, seed);
    close("min", t.min, 98.7, 0.02, seed);
}

#[test]
fn an_error_share_shifts_the_fitted_quantiles_so_the_measured_ones_hit() {
    // 0.67 % instant errors (the Anyscale row): the profile's own quantiles sit above the
    // targets, the measured ones (errors included) on them
    let targets = Targets {
        latency: Some([ms(2340), ms(5600), ms(9200)]),
        error_rate: 0.0067,
        error_status: 500,
        ttft: None,
        tps: None,
        embeddings_avg: None,
    };
    let f = calibrate::fit(&targets, &Workload::default(), 1).unwrap();
    assert!(f.baseline_toml.contains("p50 = \"2350ms\""), "{}", f.baseline_toml);
    let seed = 4;
    let s = profile_stats(
        &f.profile,
        seed,
        &Workload {
            samples: 200_000,
            ..Workload::default()
        },
    );
    close("p50", s.latency_ms.p50, 2340.0, 0.02, seed);
    close("p95", s.latency_ms.p95, 5600.0, 0.02, seed);
    close("p99", s.latency_ms.p99, 9200.0, 0.02, seed);
    binomial_ok(&s, 0.0067);
}

// ---------------------------------------------------------------------------------------
// the command line

fn chaosgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-platforms-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn cli_calibrate_writes_a_profile_that_profile_stats_measures_on_target() {
    let file = tmp("fitted.toml");
    let json = tmp("stats.json");
    let (code, _, err) = chaosgate(&[
        "calibrate",
        "--p50",
        "1240ms",
        "--p95",
        "2890ms",
        "--p99",
        "4120ms",
        "--error-rate",
        "0.0002",
        "--embeddings-avg",
        "780ms",
        "--name",
        "mine",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("# Fitted by: chaosgate calibrate --p50 1240ms"),
        "{text}"
    );
    assert!(text.contains(&format!("--profile {}", file.display())), "{text}");
    let p = Profile::load(&file).unwrap();
    assert_eq!(p.name.as_deref(), Some("mine"));
    let (code, out, err) = chaosgate(&[
        "profile-stats",
        file.to_str().unwrap(),
        "--samples",
        "200000",
        "--duration",
        "10m",
        "--seed",
        "5",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("latency_ms") && out.contains("embeddings"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for (k, want) in [("p50", 1240.0), ("p95", 2890.0), ("p99", 4120.0)] {
        close(k, v["latency_ms"][k].as_f64().unwrap(), want, 0.02, 5);
    }
    assert!(v["error_rate"].as_f64().unwrap() < 0.001);
    assert!(v["output_tps"].is_null(), "no tokens_per_s, no throughput test");
    close(
        "avg_latency_ms",
        v["embeddings"]["avg_latency_ms"].as_f64().unwrap(),
        780.0,
        0.02,
        5,
    );
    assert!(v["embeddings"]["requests_per_s"].as_f64().unwrap() > 40.0);
    assert_eq!(v["workload"]["samples"], 200_000);
    assert_eq!(v["workload"]["max_tokens"], 200);
}

#[test]
fn cli_profile_stats_json_names() {
    let json = tmp("names.json");
    let (code, _, err) = chaosgate(&[
        "profile-stats",
        "fault-profiles/platforms/portkey-gpt4o.toml",
        "--samples",
        "2000",
        "--duration",
        "10m",
        "--stream",
        "--max-tokens",
        "100",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in ["p50", "p95", "p99"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "latency_ms.{k}");
    }
    assert!(v["error_rate"].is_f64());
    for k in ["avg", "peak", "min", "cv"] {
        assert!(v["output_tps"][k].as_f64().unwrap() > 0.0, "output_tps.{k}");
    }
    assert!(v["embeddings"].is_null());
    assert_eq!(v["workload"]["stream"], true);
    assert_eq!(v["workload"]["max_tokens"], 100);
    assert_eq!(v["latency_test"], "chat");
}

#[test]
fn cli_bad_input_exits_2_naming_the_problem() {
    let bad_profile = tmp("typo.toml");
    std::fs::write(
        &bad_profile,
        "[baseline]\nlatncy = { kind = \"fixed\", value = \"1s\" }\n",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["calibrate", "--p50", "3s", "--p95", "2s", "--p99", "4s"], "--p95"),
        (&["calibrate", "--p50", "1s", "--p95", "2s", "--p99", "1500ms"], "--p99"),
        (
            &[
                "calibrate",
                "--p50",
                "1s",
                "--p95",
                "2s",
                "--p99",
                "3s",
                "--error-rate",
                "-0.1",
            ],
            "--error-rate",
        ),
        (
            &[
                "calibrate",
                "--p50",
                "1s",
                "--p95",
                "2s",
                "--p99",
                "3s",
                "--error-rate",
                "0.7",
            ],
            "--error-rate",
        ),
        (
            &["calibrate", "--p50", "1240", "--p95", "2s", "--p99", "3s"],
            "invalid duration",
        ),
        (
            &["calibrate", "--p50", "soon", "--p95", "2s", "--p99", "3s"],
            "invalid duration",
        ),
        (&["calibrate", "--p50", "1s"], "--p95"),
        (&["calibrate", "--name", "x"], "required"),
        (&["calibrate", "--tps-mean", "-5", "--tps-cv", "0.1"], "--tps-mean"),
        (
            &["calibrate", "--tps-mean", "100", "--tps-cv", "0.1", "--tps-peak", "300"],
            "--tps-peak and --tps-min together",
        ),
        (
            &[
                "calibrate",
                "--tps-mean",
                "100",
                "--tps-cv",
                "0.1",
                "--tps-peak",
                "90",
                "--tps-min",
                "50",
            ],
            "--tps-min < --tps-mean < --tps-peak",
        ),
        (&["profile-stats", "no/such/profile.toml"], "cannot read"),
        (&["profile-stats", bad_profile.to_str().unwrap()], "typo.toml:2:"),
        (
            &["profile-stats", "fault-profiles/healthy.toml", "--samples", "0"],
            "--samples",
        ),
        (
            &["profile-stats", "fault-profiles/healthy.toml", "--duration", "10"],
            "invalid duration",
        ),
        (
            &["profile-stats", "fault-profiles/healthy.toml", "--stream-rate", "-1"],
            "--stream-rate",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = chaosgate(args);
        assert_eq!(code, 2, "{args:?} should exit 2; stdout {out}, stderr {err}");
        assert!(err.contains(want), "{args:?}: stderr should mention {want:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn an_unreachable_cv_is_refused_with_the_floor() {
    let (code, _, err) = chaosgate(&[
        "calibrate",
        "--tps-mean",
        "100",
        "--tps-cv",
        "0.01",
        "--tps-peak",
        "200",
        "--tps-min",
        "50",
        "--stream-rate",
        "2",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("out of reach") && err.contains("dips and bursts alone"),
        "{err}"
    );
}
