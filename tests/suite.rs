//! `chaosgate suite` end to end: the scorecard's outputs, pinned verdicts, bad input, and the
//! same verdicts simulated and live (docs/suite.md).
#![allow(clippy::disallowed_methods)] // drives the binary: files, processes

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-suite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn suite(args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(root())
        .arg("suite")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn verdicts(report: &serde_json::Value) -> Vec<(String, String)> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_scorecard_is_written_in_every_format() {
    let d = tmp("formats");
    let (json, junit, md) = (d.join("s.json"), d.join("s.xml"), d.join("s.md"));
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-400,fixture-502,fixture-hang",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("fixture-502") && out.contains("2 pass, 1 safe"), "{out}");
    // the JSON holds to its schema
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schema/suite-report.schema.json")).unwrap())
            .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        verdicts(&report),
        [
            ("fixture-400", "safe"),
            ("fixture-502", "pass"),
            ("fixture-hang", "pass")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // the 400s were passed on: the window failed whole, cleanly, and nothing moved
    let f = &report["entries"][0]["runs"][0]["figures"];
    assert_eq!(f["window_failed"], f["window_requests"]);
    assert_eq!(f["unclean_failures"], 0);
    assert!(f["detection_s"].is_null());
    // JUnit: one case per entry, none failed (every entry met its best)
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    assert!(doc.descendants().all(|n| !n.has_tag_name("failure")), "{xml}");
    // Markdown: a table row per entry
    let md = std::fs::read_to_string(&md).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| `fixture-")).count(), 3, "{md}");
}

#[test]
fn a_simulated_suite_is_byte_identical_run_to_run() {
    let d = tmp("determinism");
    let run = |name: &str| {
        let p = d.join(name);
        let o = suite(&["--entries", "tests/suite", "--quiet", "--json", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        std::fs::read(p).unwrap()
    };
    assert_eq!(run("a.json"), run("b.json"));
}

#[test]
fn pinned_verdicts_catch_a_change() {
    let d = tmp("expect");
    let pins = d.join("pins.toml");
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-502",
        "--quiet",
        "--write-expect",
        pins.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let written = std::fs::read_to_string(&pins).unwrap();
    assert!(written.contains("fixture-502 = \"pass\""), "{written}");
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-502",
        "--quiet",
        "--expect",
        pins.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // a gateway that neither falls back nor ejects the primary in time: the same entry
    // now fails (budget blown), and the pin says so
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-502",
        "--quiet",
        "--set",
        "gateway.fallback_on_failure=false",
        "--set",
        "gateway.retries.attempts=0",
        "--set",
        "gateway.health_check.interval=60s",
        "--set",
        "gateway.breaker.failures=1000",
        "--expect",
        pins.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("fixture-502: pinned pass, got fail"), "{}", text(&o));
    // --fail-on
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-400",
        "--quiet",
        "--fail-on",
        "safe",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn bad_input_gets_a_specific_error() {
    let d = tmp("bad");
    std::fs::write(
        d.join("typo.toml"),
        "name = \"typo\"\ntitle = \"t\"\nreports = [\"r\"]\nbest = \"pass\"\nfailovr = true\n",
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--entries".into(), "tests/suite".into(), "--only".into(), "nope".into()],
            "no entry named \"nope\"",
        ),
        (
            vec!["--entries".into(), d.display().to_string()],
            "typo.toml:5: unknown field `failovr`",
        ),
        (
            vec!["--entries".into(), "/nonexistent-dir".into()],
            "--entries /nonexistent-dir",
        ),
        (
            vec![
                "--gateway".into(),
                "examples/incidents/demo.toml".into(),
                "--entries".into(),
                "tests/suite".into(),
            ],
            "providers named `primary` and `fallback`",
        ),
        (
            vec![
                "--entries".into(),
                "tests/suite".into(),
                "--expect".into(),
                "README.md".into(),
            ],
            "README.md",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = suite(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: want {want:?} in {}", text(&o));
    }
}

#[test]
fn an_entry_that_cannot_run_is_an_error_not_a_pass() {
    // a --set the scenario refuses: every entry gets verdict error, exit 2
    let o = suite(&[
        "--entries",
        "tests/suite",
        "--only",
        "fixture-502",
        "--quiet",
        "--set",
        "gateway.request_timeout=-1s",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("error"), "{}", text(&o));
}

/// The live driver gives the same verdicts as the simulator (time compressed 4×; the
/// reference gateway scales every time of the scenario).
#[test]
fn live_verdicts_agree_with_the_simulator() {
    let d = tmp("live");
    let run = |live: bool| {
        let p = d.join(if live { "live.json" } else { "sim.json" });
        let mut args = vec![
            "--entries",
            "tests/suite",
            "--only",
            "fixture-400,fixture-502,fixture-hang,fixture-ping-stall",
            "--quiet",
            "--set",
            "time_scale=0.25",
            "--json",
            p.to_str().unwrap(),
        ];
        let rd = d.join("runs");
        if live {
            args.extend(["--live", "--run-dir", rd.to_str().unwrap()]);
        }
        let o = suite(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        r
    };
    let (sim, live) = (run(false), run(true));
    assert_eq!(live["mode"], "live");
    assert_eq!(verdicts(&sim), verdicts(&live));
}

/// The whole built-in catalogue against the reference gateway (simulated) keeps the
/// verdicts pinned in tests/suite/pins/builtin.toml: a change in chaosgate's fault model,
/// gateway policy or verdict rules that moves one shows here. After an intended change:
/// `chaosgate suite --write-expect tests/suite/pins/builtin.toml` and say why in the commit.
#[test]
fn the_catalogue_against_the_reference_gateway_keeps_its_pinned_verdicts() {
    let o = suite(&["--quiet", "--expect", "tests/suite/pins/builtin.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// A live subset of the catalogue through the reference gateway gives the simulator's
/// verdicts (time compressed 4×).
#[test]
fn catalogue_entries_live_agree_with_the_simulator() {
    let d = tmp("catalogue-live");
    let only = "grey-502,headers-never,stream-cut,both-down,context-length-400,retry-after-429";
    let run = |live: bool| {
        let p = d.join(if live { "live.json" } else { "sim.json" });
        let rd = d.join("runs");
        let mut args = vec![
            "--only",
            only,
            "--quiet",
            "--set",
            "time_scale=0.25",
            "--json",
            p.to_str().unwrap(),
        ];
        if live {
            args.extend(["--live", "--run-dir", rd.to_str().unwrap()]);
        }
        let o = suite(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        r
    };
    let (sim, live) = (run(false), run(true));
    assert_eq!(verdicts(&sim), verdicts(&live));
}
