//! Sharded simulator sweeps through the binary: `chaosgate sim --shard I/N --result PATH`
//! on every shard, then `chaosgate merge`, gives byte for byte what the unsharded `sim`
//! gives — JSON, text, JUnit, SVG chart, assertions and exit code — for 1, 2, 3 and more
//! shards than runs; a missing shard is refused (or, with `--allow-missing`, named in a
//! partial report that fails); shards of other work refuse to merge (docs/sharding.md, "Simulator sweeps").
//!
//! The sweep: the article's fast-failing incident at two probe intervals × 3 runs = 6 runs,
//! item k = point × 3 + run. Every process is bounded by [`LIMIT`].
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, processes

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SCENARIO: &str = "examples/incidents/3am-fast-fail.toml";
const SWEEP: &str = "gateway.health_check.interval=5s,60s";
/// Fails at the 60 s point (detection up to 43 s), holds at 5 s.
const ASSERT: &str = "resilience.detection_s.max <= 10";
/// The longest one chaosgate process may take.
const LIMIT: Duration = Duration::from_secs(240);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-shard-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs chaosgate in the repository's root with `env` added, killed past [`LIMIT`].
fn chaosgate_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let dir = tmp(&format!("io-{}", rand_name(args)));
    let (so, se) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .args(args)
        .current_dir(root())
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("JOB_COMPLETION_COUNT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chaosgate {args:?} took more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read(&so).unwrap(),
        stderr: std::fs::read_to_string(&se).unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn chaosgate(args: &[&str]) -> Out {
    chaosgate_env(args, &[])
}

/// A directory name for one invocation (tests run in parallel).
fn rand_name(args: &[&str]) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", N.fetch_add(1, Ordering::Relaxed), args.len())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The sweep's arguments to `sim`, plus `extra`.
fn sim_args<'a>(scenario: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sim", scenario, "--sweep", SWEEP, "--repeat", "3", "--quiet"];
    v.extend_from_slice(extra);
    v
}

/// What a report run leaves: exit code, stdout (the text report), JSON, JUnit, SVG.
#[derive(Debug, PartialEq)]
struct Report {
    code: i32,
    text: String,
    json: Vec<u8>,
    junit: Vec<u8>,
    chart: Vec<u8>,
}

fn report(dir: &Path, args: Vec<&str>) -> Report {
    let (json, junit, chart) = (dir.join("r.json"), dir.join("r.xml"), dir.join("r.svg"));
    let mut args = args;
    let outputs = ["--json", s(&json), "--junit", s(&junit), "--chart", s(&chart)];
    args.extend_from_slice(&outputs);
    let out = chaosgate(&args);
    assert!(out.code == 0 || out.code == 1, "{args:?}: {}", out.stderr);
    Report {
        code: out.code,
        text: String::from_utf8(out.stdout).unwrap(),
        json: std::fs::read(&json).unwrap(),
        junit: std::fs::read(&junit).unwrap(),
        chart: std::fs::read(&chart).unwrap(),
    }
}

/// The unsharded run, with the assertion.
fn whole() -> &'static Report {
    static W: OnceLock<Report> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tmp("whole");
        report(&dir, sim_args(SCENARIO, &["--assert", ASSERT]))
    })
}

/// Runs shards 0..n of the sweep (`extra` added to each), their files in `dir`.
fn shards(dir: &Path, n: u32, extra: &[&str]) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let file = dir.join(format!("s{i}.json"));
            let shard = format!("{i}/{n}");
            // every other shard reads the scenario by its absolute path: where the file
            // was read from is not part of the work
            let abs = root().join(SCENARIO);
            let scenario = if i % 2 == 1 { s(&abs) } else { SCENARIO };
            let mut args = sim_args(scenario, &["--shard", &shard, "--result", s(&file)]);
            args.extend_from_slice(extra);
            let out = chaosgate(&args);
            assert_eq!(out.code, 0, "shard {shard}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!("shard {shard} (shard-{i}): ran")),
                "{}",
                out.stderr
            );
            file
        })
        .collect()
}

/// The shards of 3, run once for the tests that need them.
fn three() -> &'static [PathBuf] {
    static T: OnceLock<Vec<PathBuf>> = OnceLock::new();
    T.get_or_init(|| shards(&tmp("three"), 3, &[]))
}

fn items(file: &Path) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["body"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["item"].as_u64().unwrap())
        .collect()
}

fn merge(files: &[PathBuf], extra: &[&str]) -> Out {
    let mut args = vec!["merge"];
    args.extend(files.iter().map(|f| s(f)));
    args.extend_from_slice(extra);
    chaosgate(&args)
}

#[test]
fn merged_shards_are_byte_identical_to_the_unsharded_sweep() {
    let want = whole();
    assert_eq!(want.code, 1, "the 60 s point fails the assertion");
    let w: serde_json::Value = serde_json::from_slice(&want.json).unwrap();
    assert_eq!(w["points"].as_array().unwrap().len(), 2);
    assert_eq!(w["points"][0]["report"]["runs"], 3);
    assert_eq!(w["points"][0]["passed"], true);
    assert_eq!(w["points"][1]["passed"], false);
    // N = 1, 2, 3 and 8 (more shards than the 6 runs); the assertion given to the shards
    // (N = 1, 2) or to the merge (N = 3, 8): the same checks either way
    for (n, assert_on_shards) in [(1u32, true), (2, true), (3, false), (8, false)] {
        let dir = tmp(&format!("n{n}"));
        let files = if n == 3 && !assert_on_shards {
            three().to_vec()
        } else {
            let extra: &[&str] = if assert_on_shards { &["--assert", ASSERT] } else { &[] };
            shards(&dir, n, extra)
        };
        // each shard holds its items, k mod N = I, of the 6
        for (i, f) in files.iter().enumerate() {
            let want: Vec<u64> = (0..6).filter(|k| k % u64::from(n) == i as u64).collect();
            assert_eq!(items(f), want, "shard {i}/{n}");
        }
        if n == 8 {
            assert!(items(&files[6]).is_empty() && items(&files[7]).is_empty());
        }
        // the files in any order
        let mut given = files.clone();
        given.reverse();
        let mut args = vec!["merge"];
        args.extend(given.iter().map(|f| s(f)));
        args.push("--quiet");
        if !assert_on_shards {
            args.extend_from_slice(&["--assert", ASSERT]);
        }
        let got = report(&dir, args);
        assert_eq!(got.code, want.code, "N = {n}");
        assert_eq!(got.text, want.text, "N = {n}: text");
        assert!(got.json == want.json, "N = {n}: the JSON differs");
        assert!(got.junit == want.junit, "N = {n}: the JUnit differs");
        assert!(got.chart == want.chart, "N = {n}: the chart differs");
    }
}

#[test]
fn json_on_stdout_and_the_full_text_report_match_too() {
    let dir = tmp("stdout");
    let mut sim = sim_args(SCENARIO, &["--json", "-"]);
    sim.retain(|a| *a != "--quiet");
    let want = chaosgate(&sim);
    assert_eq!(want.code, 0, "{}", want.stderr);
    let got = merge(three(), &["--json", "-"]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert!(got.stdout == want.stdout, "the JSON on stdout differs");
    // the text report (every point in full) went to stderr on both; the same lines
    let report_lines = |e: &str| -> Vec<String> {
        e.lines()
            .filter(|l| !l.starts_with("simulated ") && !l.starts_with("chaosgate "))
            .map(String::from)
            .collect()
    };
    assert_eq!(report_lines(&got.stderr), report_lines(&want.stderr));
    assert!(got.stderr.contains("=== gateway.health_check.interval=60s ==="));
    let _ = std::fs::remove_dir_all(dir);
}

/// The HTML page of the merge is `sim --html`'s but for the command it names (the merge).
#[test]
fn merge_html_is_the_sim_page() {
    let dir = tmp("html");
    let (want, got) = (dir.join("sim.html"), dir.join("merge.html"));
    let out = chaosgate(&sim_args(SCENARIO, &["--html", s(&want)]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = merge(three(), &["--html", s(&got), "--quiet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (want, got) = (
        std::fs::read_to_string(&want).unwrap(),
        std::fs::read_to_string(&got).unwrap(),
    );
    let command = |page: &str| -> (String, String) {
        let tag = "<code data-value=\"command\">";
        let at = page.find(tag).expect("the command") + tag.len();
        let end = at + page[at..].find("</code>").unwrap();
        (page[at..end].to_string(), format!("{}{}", &page[..at], &page[end..]))
    };
    let (want_cmd, want_rest) = command(&want);
    let (got_cmd, got_rest) = command(&got);
    assert!(want_cmd.starts_with("chaosgate sim "), "{want_cmd}");
    assert!(got_cmd.starts_with("chaosgate merge "), "{got_cmd}");
    assert!(got_rest == want_rest, "the pages differ beyond the command");
    // both points' incident timelines are drawn (from the shards' first runs)
    assert!(!got.contains("No incident view was kept"));
    assert_eq!(
        got.matches("incident timeline").count(),
        want.matches("incident timeline").count()
    );
    assert!(got.contains("incident timeline"));
}

#[test]
fn a_missing_shard_is_refused_or_named_in_a_partial_report() {
    let files = three();
    let present = [files[0].clone(), files[2].clone()];
    let out = merge(&present, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("shard 1 of 3 missing"), "{}", out.stderr);
    assert!(out.stderr.contains("--allow-missing"), "{}", out.stderr);

    let dir = tmp("partial");
    let json = dir.join("p.json");
    let out = merge(&present, &["--allow-missing", "--json", s(&json), "--quiet"]);
    assert_eq!(out.code, 1, "a partial merge never passes: {}", out.stderr);
    assert!(
        out.stderr.contains("shard 1 of 3 missing; the report is partial"),
        "{}",
        out.stderr
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["partial"], true);
    assert_eq!(v["passed"], false);
    // shard 1 of 3 held items 1 and 4: run 1 of each point
    for p in v["points"].as_array().unwrap() {
        let r = &p["report"];
        assert_eq!(r["runs"], 2, "{}", p["params"]);
        assert_eq!(r["partial"], true);
        assert_eq!(p["passed"], false);
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(
            warnings.contains(&"partial merge: 1 of 3 runs of this point missing (run 1, of shard 1 of 3)"),
            "{warnings:?}"
        );
    }
    // the text says it too
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("UNRELIABLE"), "{text}");
}

#[test]
fn shards_of_other_work_refuse_to_merge() {
    let files = three();
    let dir = tmp("other");
    let run = |name: &str, extra: &[&str]| {
        let f = dir.join(name);
        let mut args = sim_args(SCENARIO, &["--shard", "1/3", "--result", s(&f)]);
        args.extend_from_slice(extra);
        let out = chaosgate(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        vec![files[0].clone(), f, files[2].clone()]
    };
    let seed = merge(&run("seed.json", &["--seed", "2"]), &[]);
    assert_eq!(seed.code, 2);
    assert!(
        seed.stderr.contains("not shards of the same work: seed 1 ≠ 2"),
        "{}",
        seed.stderr
    );
    let scenario = merge(&run("rate.json", &["--set", "traffic.rate=150"]), &[]);
    assert_eq!(scenario.code, 2);
    assert!(
        scenario
            .stderr
            .contains("not shards of the same work: scenario or schedule (fingerprint)"),
        "{}",
        scenario.stderr
    );
    let repeat = {
        let f = dir.join("repeat.json");
        let mut args = sim_args(SCENARIO, &["--shard", "1/3", "--result", s(&f)]);
        let at = args.iter().position(|a| *a == "3").unwrap();
        args[at] = "2";
        assert_eq!(chaosgate(&args).code, 0);
        merge(&[files[0].clone(), f, files[2].clone()], &[])
    };
    assert!(repeat.stderr.contains("fingerprint"), "{}", repeat.stderr);
    let checks = merge(&run("assert.json", &["--assert", ASSERT]), &[]);
    assert_eq!(checks.code, 2);
    assert!(
        checks
            .stderr
            .contains("different checks (--assert or --allow-in-flight)"),
        "{}",
        checks.stderr
    );
}

#[test]
fn shard_auto_reads_the_indexed_job_and_writes_the_same_file() {
    let dir = tmp("auto");
    let f = dir.join("auto.json");
    let out = chaosgate_env(
        &sim_args(SCENARIO, &["--shard", "auto", "--result", s(&f)]),
        &[("JOB_COMPLETION_INDEX", "1"), ("JOB_COMPLETION_COUNT", "3")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(std::fs::read(&f).unwrap() == std::fs::read(&three()[1]).unwrap());
}

#[test]
fn sim_shard_flags_are_checked() {
    let dir = tmp("flags");
    let r = dir.join("r.json");
    let refused = |extra: &[&str], why: &str| {
        let out = chaosgate(&sim_args(SCENARIO, extra));
        assert_eq!(out.code, 2, "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{extra:?}: {}", out.stderr);
    };
    refused(&["--shard", "0/2"], "--shard needs --result PATH");
    refused(&["--shard", "2/2", "--result", s(&r)], "0-based");
    refused(
        &["--shard", "0/2", "--result", s(&r), "--json", "x.json"],
        "`chaosgate merge`",
    );
    refused(
        &["--shard", "0/2", "--result", s(&r), "--start-at", "0"],
        "virtual time",
    );
    refused(
        &["--shard", "auto", "--result", s(&r)],
        "JOB_COMPLETION_INDEX is not set",
    );
    let out = chaosgate(&["sim", "--swarm", "2", "--shard", "0/2", "--result", s(&r)]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--swarm has no shards"), "{}", out.stderr);
    assert!(!r.exists(), "nothing ran, nothing written");
    // merge outputs of other kinds
    let out = merge(three(), &["--csv", s(&dir.join("c"))]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--csv and --hlog are for load shards"),
        "{}",
        out.stderr
    );
}
