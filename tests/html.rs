//! The HTML report (`--html`, docs/html-report.md) through the CLI: the simulator's page is
//! byte-identical for the same seed, self-contained (no external reference, a CSP that
//! forbids any load), carries every chart and the same key figures as the run's `--json`,
//! and stays bounded for a 4-hour run.
//!
//! `chromium_renders_every_report_kind_offline` (ignored: needs chromium,
//! `scripts/chromium-setup`; run by `.ci/run`) opens a run, sim, sweep, load and suite
//! report in headless Chromium with no usable proxy, checks that it renders with no console
//! message and that the charts and values are in the DOM, and saves screenshots under
//! `chaosgate-out/screenshots/`.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, processes

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-html-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs chaosgate with `args` in the repository root; panics unless it exits 0.
fn chaosgate(args: &[&str]) {
    let out = Command::new(bin()).args(args).current_dir(root()).output().unwrap();
    assert!(
        out.status.success(),
        "chaosgate {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `data-value="NAME" data-exact="X"` of a page, in order.
fn values(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("data-value=\"") {
        rest = &rest[i + 12..];
        let name = &rest[..rest.find('"').unwrap()];
        let after = &rest[name.len() + 1..];
        if let Some(x) = after.strip_prefix(" data-exact=\"") {
            out.push((name.to_string(), x[..x.find('"').unwrap()].to_string()));
        }
    }
    out
}

/// The JSON value at a figure's name (`resilience.detection_s.mean`;
/// `budget.alerts.NAME` reads the alert list).
fn at<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    if let Some(rule) = name.strip_prefix("budget.alerts.") {
        let alerts = json["budget"]["alerts"].as_array().unwrap();
        let a = alerts.iter().find(|a| a[0] == rule).expect(rule);
        return &a[1];
    }
    name.split('.').fold(json, |v, k| &v[k])
}

/// Each figure of `html` equals the JSON's (exactly: the page writes the number as the
/// JSON does; `never` for null). Returns how many were compared.
fn figures_match(html: &str, json: &serde_json::Value) -> usize {
    let mut n = 0;
    for (name, exact) in values(html) {
        if !name.contains('.') {
            continue;
        }
        let j = at(json, &name);
        if exact == "never" {
            assert!(j.is_null(), "{name}: page says never, JSON {j}");
        } else {
            let a: f64 = exact.parse().unwrap_or_else(|_| panic!("{name}: {exact}"));
            let b = j.as_f64().unwrap_or_else(|| panic!("{name}: JSON {j}"));
            assert_eq!(a, b, "{name}");
        }
        n += 1;
    }
    n
}

/// No resource is loaded from anywhere: no `src=` or `href=` at all, and the CSP.
fn self_contained(html: &str) {
    for attr in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(attr), "the page references a resource ({attr})");
    }
    assert!(html.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        chaosgate::report::html::CSP
    )));
    assert!(!html.contains("<script"), "no script");
}

#[test]
fn sim_html_is_byte_identical_self_contained_and_says_what_the_json_says() {
    let d = tmp("sim");
    let (html, json) = (d.join("r.html"), d.join("r.json"));
    let args = [
        "sim",
        "examples/incidents/3am-fast-fail.toml",
        "--quiet",
        "--html",
        html.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    chaosgate(&args);
    let first = std::fs::read(&html).unwrap();
    chaosgate(&args);
    assert!(first == std::fs::read(&html).unwrap(), "same seed, same bytes");
    let page = String::from_utf8(first).unwrap();
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\" data-chaosgate-report=\"sim\">"));
    self_contained(&page);
    for chart in ["timeline", "budget", "latency"] {
        assert_eq!(
            page.matches(&format!("<figure data-chart=\"{chart}\"")).count(),
            1,
            "{chart}"
        );
    }
    assert!(!page.contains("data-chart=\"sweep\""), "one point: no sweep chart");
    let n = figures_match(&page, &j);
    assert!(n >= 17, "{n} figures compared");
    // the incident's own numbers: detected 43 s after onset in every view, one fault shaded
    assert!(page.contains("data-value=\"resilience.detection_s.mean\" data-exact=\"43\""));
    assert_eq!(
        page.matches("<rect class=\"fault\" data-provider=\"anthropic\"")
            .count(),
        1
    );
    for mark in ["detection_gateway", "detection_traffic", "detection_client", "failback"] {
        assert!(page.contains(&format!("data-mark=\"{mark}\"")), "{mark}");
    }
    // the gateway ejected and restored the primary; both providers were probed
    assert!(page.contains("class=\"event ejected\" data-target=\"anthropic\""));
    assert!(page.contains("class=\"event restored\" data-target=\"anthropic\""));
    assert!(page.contains("class=\"probe failed\""));
    // burn series for 5 min, 30 min, 1 h, 6 h; percentile curves overall and per provider
    for w in [300, 1800, 3600, 21600] {
        assert!(page.contains(&format!("class=\"burn\" data-window=\"{w}\"")), "{w}");
    }
    for g in ["all", "anthropic", "openai"] {
        assert!(page.contains(&format!("class=\"curve\" data-group=\"{g}\"")), "{g}");
    }
    // how to get it again, with the seed
    assert!(page.contains("chaosgate sim examples/incidents/3am-fast-fail.toml --quiet --html"));
    assert!(page.contains("--seed 1</code>"));
    assert!(page.len() < 400_000, "{} bytes", page.len());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sweep_html_draws_the_sweep_with_bands_and_the_table() {
    let d = tmp("sweep");
    let (html, json) = (d.join("s.html"), d.join("s.json"));
    chaosgate(&[
        "sim",
        "examples/incidents/3am-fast-fail.toml",
        "--quiet",
        "--sweep",
        "gateway.health_check.interval=5s,60s",
        "--repeat",
        "3",
        "--html",
        html.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(page.contains("data-chaosgate-report=\"sweep\""));
    self_contained(&page);
    assert_eq!(page.matches("<figure data-chart=\"sweep\"").count(), 1);
    assert_eq!(
        page.matches("<figure data-chart=\"timeline\"").count(),
        2,
        "one per point"
    );
    // three panels, each with a min–max whisker per point (3 runs)
    for panel in ["failed", "detection", "budget"] {
        assert!(page.contains(&format!("<g class=\"panel\" id=\"{panel}\">")), "{panel}");
    }
    assert_eq!(page.matches("class=\"whisker\"").count(), 3 * 2);
    // the table: header and one row per point
    let table = &page[page.find("<table data-table=\"sweep\">").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 3);
    assert!(table.contains("<td>5s</td>") && table.contains("<td>60s</td>"));
    // each point's figures are its JSON's
    let pts = j["points"].as_array().unwrap();
    let sections: Vec<&str> = page.split("<section class=\"point\"").skip(1).collect();
    assert_eq!(sections.len(), 2);
    for (sec, p) in sections.iter().zip(pts) {
        assert!(figures_match(sec, &p["report"]) >= 17);
    }
    assert!(page.contains("the first of 3 runs (seed 1)"));
    let _ = std::fs::remove_dir_all(&d);
}

/// A 4-hour run of a provider flapping every minute, with retries and fallbacks on every
/// failed attempt: thousands of events and 144,000 analysis buckets, drawn in at most 600
/// buckets and 2,000 markers, in a bounded file.
#[test]
fn a_four_hour_run_stays_under_2_mb() {
    let d = tmp("long");
    let scenario = d.join("long.toml");
    std::fs::write(
        &scenario,
        r#"
name = "long <flapping> & \"quoted\""
seed = 2
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "flapping"
start = "60s"
duration = "4h"
flapping = { period = "60s", duty = 0.5 }
errors = [{ status = 503 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "5s", timeout = "1s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = true
retries = { attempts = 1 }
[traffic]
rate = 3.0
arrival = "constant"
duration = "4h"
"#,
    )
    .unwrap();
    let html = d.join("long.html");
    chaosgate(&[
        "sim",
        scenario.to_str().unwrap(),
        "--quiet",
        "--html",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    self_contained(&page);
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
    assert!(
        page.contains("144000 analysis buckets of 100 ms are drawn 500 at a time"),
        "the page says so"
    );
    assert!(page.contains("<title>chaosgate sim: long &lt;flapping&gt; &amp; &quot;quoted&quot; (sim)</title>"));
    assert!(!page.contains("<flapping>"));
    let markers = page.matches("<path class=\"event ").count();
    assert!(markers > 100 && markers <= 2_000, "{markers}");
    // hundreds of flaps: every window shaded with a tooltip, none labelled or marked
    let windows = page.matches("<rect class=\"fault\"").count();
    assert!(windows > 200, "{windows}");
    assert!(page.contains(&format!("{windows} fault windows, shaded (hover for each)")));
    assert!(!page.contains("data-mark=\""));
    let _ = std::fs::remove_dir_all(&d);
}

/// A bad `--html` path is refused before the run, naming the flag.
#[test]
fn html_path_in_a_missing_directory_is_refused_before_the_run() {
    let out = Command::new(bin())
        .args([
            "sim",
            "examples/incidents/3am-fast-fail.toml",
            "--html",
            "/nonexistent-dir/r.html",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--html /nonexistent-dir/r.html: directory /nonexistent-dir does not exist"),
        "{err}"
    );
}

/// Regression: `--html -` wrote a file named `-`; only `--json` writes to stdout.
#[test]
fn html_dash_is_refused_not_written_to_a_file_named_dash() {
    let d = std::env::temp_dir().join(format!("chaosgate-html-dash-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let scenario = root().join("examples/incidents/3am-fast-fail.toml");
    let out = Command::new(bin())
        .args(["sim", scenario.to_str().unwrap(), "--html", "-", "--quiet"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--html -: only --json writes to stdout"), "{err}");
    assert!(!d.join("-").exists(), "no file named -");
    let _ = std::fs::remove_dir_all(&d);
}

// ------------------------------------------------------------------ Chromium

/// Runs `cmd` in its own process group until it exits or `limit` passes (then kills the
/// group: Chromium's helper processes too); its exit status, stdout and stderr (read from
/// files, so a chatty child never blocks).
fn bounded(mut cmd: Command, limit: Duration, scratch: &Path) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let (o, e) = (scratch.with_extension("out"), scratch.with_extension("err"));
    cmd.stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .stdin(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if t0.elapsed() > limit {
            // SAFETY: signals the process group this test started (its id is the child's pid)
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        ok,
        std::fs::read_to_string(&o).unwrap_or_default(),
        std::fs::read_to_string(&e).unwrap_or_default(),
    )
}

/// Headless Chromium, offline: no usable proxy, no first-run work, logging on stderr.
fn chromium(extra: &[String], url: &str, profile: &Path) -> Command {
    let mut c = Command::new(std::env::var("CHAOSGATE_CHROMIUM").unwrap_or_else(|_| "chromium".into()));
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--proxy-server=127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    c
}

fn have_chromium() -> bool {
    let name = std::env::var("CHAOSGATE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `chaosgate mock` on a free loopback port; its URL and the child.
fn mock() -> (String, std::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin())
        .args([
            "mock",
            "--api",
            "openai",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--seed",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the mock did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (url, child)
}

/// The live scenario of the `run` report: tests/run.rs's compressed incident, 15 s.
const LIVE: &str = r#"
name = "compressed-incident"
seed = 5
time_scale = 0.1
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "50s"
duration = "60s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "30s", timeout = "10s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
rate = 100.0
arrival = "constant"
duration = "150s"
"#;

#[test]
#[ignore = "needs chromium: scripts/chromium-setup"]
fn chromium_renders_every_report_kind_offline() {
    if !have_chromium() {
        assert!(
            std::env::var("CHAOSGATE_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "chromium not found and CHAOSGATE_REQUIRE_CHROMIUM=1: run scripts/chromium-setup"
        );
        eprintln!("skipped: chromium not found (scripts/chromium-setup)");
        return;
    }
    let d = tmp("chromium");
    let shots = root().join("chaosgate-out/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    // the five kinds, each with its JSON where it has one
    chaosgate(&[
        "sim",
        "examples/incidents/3am-fast-fail.toml",
        "--quiet",
        "--html",
        &p("sim.html"),
        "--json",
        &p("sim.json"),
    ]);
    chaosgate(&[
        "sim",
        "examples/incidents/3am-fast-fail.toml",
        "--quiet",
        "--sweep",
        "gateway.health_check.interval=5s,15s,30s,60s",
        "--repeat",
        "5",
        "--html",
        &p("sweep.html"),
        "--json",
        &p("sweep.json"),
    ]);
    chaosgate(&[
        "suite",
        "--quiet",
        "--only",
        "failback,flapping,retry-storm,both-down,brownout",
        "--html",
        &p("suite.html"),
    ]);
    std::fs::write(d.join("live.toml"), LIVE).unwrap();
    chaosgate(&[
        "run",
        &p("live.toml"),
        "--quiet",
        "--run-dir",
        &p("rundir"),
        "--html",
        &p("run.html"),
        "--json",
        &p("run.json"),
    ]);
    let (url, mut m) = mock();
    chaosgate(&[
        "load",
        "--target",
        &url,
        "--rate",
        "20",
        "--duration",
        "4s",
        "--seed",
        "3",
        "--quiet",
        "--html",
        &p("load.html"),
        "--json",
        &p("load.json"),
    ]);
    let _ = m.kill();
    let _ = m.wait();
    let cases: [(&str, &[&str]); 5] = [
        ("run", &["timeline", "budget", "latency"]),
        ("sim", &["timeline", "budget", "latency"]),
        ("sweep", &["sweep", "timeline", "budget", "latency"]),
        ("load", &["timeline", "latency"]),
        ("suite", &["scorecard"]),
    ];
    for (kind, charts) in cases {
        let file = d.join(format!("{kind}.html"));
        let page = std::fs::read_to_string(&file).unwrap();
        self_contained(&page);
        let url = format!("file://{}", file.display());
        let profile = d.join(format!("profile-{kind}"));
        let (ok, dom, log) = bounded(
            chromium(&["--dump-dom".into()], &url, &profile),
            Duration::from_secs(60),
            &d.join(format!("{kind}-dom")),
        );
        assert!(ok, "{kind}: chromium failed:\n{log}");
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
        assert!(console.is_empty(), "{kind}: console messages:\n{}", console.join("\n"));
        assert!(
            dom.contains(&format!("data-chaosgate-report=\"{kind}\"")),
            "{kind}: not rendered"
        );
        for c in charts {
            let at = dom
                .find(&format!("data-chart=\"{c}\""))
                .unwrap_or_else(|| panic!("{kind}: no {c} chart"));
            assert!(dom[at..].contains("<svg"), "{kind}: {c} has no drawing");
        }
        // the figures Chromium shows are the JSON's
        let json = d.join(format!("{kind}.json"));
        if kind != "suite" {
            let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            let n = match kind {
                "sweep" => dom
                    .split("<section class=\"point\"")
                    .skip(1)
                    .zip(j["points"].as_array().unwrap())
                    .map(|(sec, p)| figures_match(sec, &p["report"]))
                    .sum(),
                _ => figures_match(&dom, &j),
            };
            let min = if kind == "load" { 7 } else { 17 };
            assert!(n >= min, "{kind}: {n} figures compared");
        } else {
            assert!(
                dom.contains("data-entry=\"retry-storm\" data-verdict=\"fail\""),
                "suite verdicts"
            );
        }
        let png = shots.join(format!("{kind}.png"));
        let _ = std::fs::remove_file(&png);
        let (ok, _, log) = bounded(
            chromium(
                &[
                    format!("--screenshot={}", png.display()),
                    "--window-size=1366,2600".into(),
                    "--hide-scrollbars".into(),
                ],
                &url,
                &profile,
            ),
            Duration::from_secs(60),
            &d.join(format!("{kind}-shot")),
        );
        assert!(ok, "{kind}: screenshot failed:\n{log}");
        let bytes = std::fs::read(&png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{kind}: {} bytes",
            bytes.len()
        );
        eprintln!("{kind}: rendered offline, no console message; {}", png.display());
    }
}
