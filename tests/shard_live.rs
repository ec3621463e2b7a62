//! Sharded live load (docs/sharding.md): N `chaosgate load` processes on loopback against
//! one target — the reference gateway in front of a mock — started together with
//! `--start-at`, merged by `chaosgate merge`, compared with one process running the same
//! seed; a killed shard; shards of other work.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets, processes

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chaosgate")
}

/// A child process killed (by its own pid) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 20 s) until something accepts connections on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on 127.0.0.1:{port} after 20 s");
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin())
            .args(args)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits for `p` at most `limit`, then kills it and fails.
fn wait_exit(p: &mut Proc, limit: Duration, what: &str) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "{what} still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaosgate-shard-live-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A mock (fixed 30 ms to answer, so latencies are steady; bodies over 6 KB refused with
/// 413) behind the reference gateway (no breaker: every answer is the mock's own). A
/// request's outcome depends on its shape alone — which the schedule fixes by its id — so
/// one process and three shards see the same failures.
struct Target {
    _mock: Proc,
    _gateway: Proc,
    url: String,
}

fn target(d: &Path) -> Target {
    let profile = d.join("profile.toml");
    std::fs::write(
        &profile,
        "[baseline]\nttft = { kind = \"fixed\", value = \"30ms\" }\ntokens_per_s = { mean = 2000 }\n",
    )
    .unwrap();
    let (mp, gp) = (free_port(), free_port());
    let mock = spawn(
        &[
            "mock",
            "--api",
            "openai",
            "--listen",
            &format!("127.0.0.1:{mp}"),
            "--seed",
            "1",
            "--profile",
            profile.to_str().unwrap(),
            "--max-body-bytes",
            "6000",
        ],
        &d.join("mock.log"),
    );
    wait_listening(mp);
    let gateway = spawn(
        &[
            "gateway",
            "--listen",
            &format!("127.0.0.1:{gp}"),
            "--target",
            &format!("m=http://127.0.0.1:{mp}"),
            "--breaker",
            "none",
            "--retries",
            "0",
            "--seed",
            "1",
        ],
        &d.join("gateway.log"),
    );
    wait_listening(gp);
    Target {
        _mock: mock,
        _gateway: gateway,
        url: format!("http://127.0.0.1:{gp}"),
    }
}

/// Two kinds: small chats the mock answers, and large prompts it refuses (413).
fn mix(d: &Path) -> PathBuf {
    let p = d.join("mix.toml");
    std::fs::write(
        &p,
        "[[kind]]\nname = \"chat\"\nweight = 0.7\nstream = false\nprompt_tokens = 20\nmax_tokens = 5\n\
         [[kind]]\nname = \"big\"\nweight = 0.3\nstream = false\nprompt_tokens = 3000\nmax_tokens = 5\n",
    )
    .unwrap();
    p
}

fn load_args<'a>(url: &'a str, mix: &'a str, rate: &'a str, duration: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "load",
        "--target",
        url,
        "--mix",
        mix,
        "--rate",
        rate,
        "--duration",
        duration,
        "--seed",
        seed,
        "--quiet",
    ]
}

/// `--start-at` `secs` from now, as Unix seconds.
fn start_in(secs: f64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    format!("{:.3}", now + secs)
}

fn counts(v: &Value) -> (u64, u64, u64, u64) {
    let r = &v["requests"];
    (
        r["scheduled"].as_u64().unwrap(),
        r["ok"].as_u64().unwrap(),
        r["failed"].as_u64().unwrap(),
        r["dropped"].as_u64().unwrap(),
    )
}

#[test]
fn three_load_shards_merge_into_the_single_machine_report() {
    let d = dir("three");
    let t = target(&d);
    let mix = mix(&d);
    let mix = mix.to_str().unwrap();
    let base = load_args(&t.url, mix, "40", "3s", "7");

    // one process
    let single = d.join("single.json");
    let mut a = base.clone();
    a.extend(["--json", single.to_str().unwrap()]);
    let out = run(&a);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let single = json(&single);

    // three shards, two regions, started together
    let at = start_in(2.5);
    let files: Vec<PathBuf> = (0..3).map(|i| d.join(format!("s{i}.json"))).collect();
    let specs: Vec<(String, &str)> = (0..3)
        .map(|i| (format!("{i}/3"), if i < 2 { "eu-west" } else { "us-east" }))
        .collect();
    let mut procs: Vec<Proc> = specs
        .iter()
        .zip(&files)
        .enumerate()
        .map(|(i, ((shard, region), file))| {
            let mut a = base.clone();
            a.extend([
                "--shard",
                shard,
                "--region",
                region,
                "--start-at",
                &at,
                "--result",
                file.to_str().unwrap(),
            ]);
            spawn(&a, &d.join(format!("shard{i}.log")))
        })
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        assert_eq!(wait_exit(p, Duration::from_secs(60), "a shard"), 0, "shard {i}");
    }
    // each file is one shard's part, labelled
    let h: Value = json(&files[2]);
    assert_eq!(
        h["chaosgate_shard"]["shard"],
        serde_json::json!({"index": 2, "count": 3})
    );
    assert_eq!(h["chaosgate_shard"]["region"], "us-east");
    assert_eq!(h["chaosgate_shard"]["complete"], true);

    let merged = d.join("merged.json");
    let prefix = d.join("m");
    let (hlog, html, junit) = (d.join("m.hlog"), d.join("m.html"), d.join("m.xml"));
    let scheduled = counts(&single).0;
    let assert_sched = format!("requests.scheduled == {scheduled}");
    let mut args = vec!["merge".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    for (flag, v) in [
        ("--json", merged.display().to_string()),
        ("--csv", prefix.display().to_string()),
        ("--hlog", hlog.display().to_string()),
        ("--html", html.display().to_string()),
        ("--junit", junit.display().to_string()),
        ("--assert", assert_sched.clone()),
        ("--assert", "shards.partial == false".to_string()),
    ] {
        args.push(flag.into());
        args.push(v);
    }
    let out = Command::new(bin()).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = json(&merged);

    // the schedule exactly; the outcomes too (they depend on the request's shape alone)
    assert_eq!(counts(&m), counts(&single), "merged vs one process");
    assert!(scheduled > 60, "{scheduled}");
    let (_, ok, failed, _) = counts(&m);
    assert!(ok > 0 && failed > 0, "both kinds: {ok} ok, {failed} failed");
    assert_eq!(m["failures_by_kind"], single["failures_by_kind"]);
    assert_eq!(m["failures_by_kind"]["http_413"].as_u64(), Some(failed));
    for k in ["chat", "big"] {
        for f in ["sent", "failed"] {
            assert_eq!(m["kinds"][k][f], single["kinds"][k][f], "kind {k} {f}");
        }
    }
    // latencies: measured on another run, so not the same samples; with a fixed 30 ms
    // answer both medians sit at 30 ms plus loopback overhead (a few ms on a busy host)
    let p50 = |v: &Value| v["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50(&m) >= 30.0 && p50(&single) >= 30.0, "{} {}", p50(&m), p50(&single));
    assert!(
        (p50(&m) - p50(&single)).abs() < 25.0,
        "p50 {} vs {}",
        p50(&m),
        p50(&single)
    );
    // the merged latency histogram holds every shard's samples
    assert_eq!(m["latency_ms"]["count"].as_u64(), Some(ok + failed));

    // per shard and per region
    let sh = &m["shards"];
    assert_eq!(sh["count"], 3);
    assert_eq!(sh["partial"], false);
    let by_shard = sh["by_shard"].as_array().unwrap();
    assert_eq!(by_shard.len(), 3);
    let sum: u64 = by_shard.iter().map(|r| r["scheduled"].as_u64().unwrap()).sum();
    assert_eq!(sum, scheduled);
    for (i, r) in by_shard.iter().enumerate() {
        // shard i owns ids i, i + 3, …: a third of the schedule, rounded its way
        let share = scheduled / 3 + u64::from(scheduled % 3 > i as u64);
        assert_eq!(r["scheduled"].as_u64(), Some(share), "shard {i}");
    }
    let regions: Vec<(&str, u64)> = sh["by_region"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["shards"].as_u64().unwrap()))
        .collect();
    assert_eq!(regions, [("eu-west", 2), ("us-east", 1)]);
    assert!(text.contains("shards: 3 of 3 merged"), "{text}");
    assert!(text.contains("eu-west (2)"), "{text}");
    assert_eq!(m["checks"].as_array().unwrap().len(), 2);
    // the merged JSON is a load report, with its `shards` and `checks` sections
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/load-report.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&m)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut bad = m.clone();
    bad["shards"]["by_shard"][0]["ok"] = serde_json::json!("many");
    assert!(!v.is_valid(&bad));

    // the other outputs, from the merged data
    let stats = std::fs::read_to_string(format!("{}_stats.csv", prefix.display())).unwrap();
    let aggregated = stats.lines().find(|l| l.contains("Aggregated")).unwrap();
    assert!(
        aggregated.starts_with(&format!(",Aggregated,{},{failed},", ok + failed)),
        "{aggregated}"
    );
    assert!(std::fs::read_to_string(&hlog).unwrap().contains("HISTF"));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"0\""), "{xml}");

    // a failing assertion is exit code 1
    let mut args: Vec<String> = vec!["merge".into(), "--quiet".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--assert".into(), format!("requests.scheduled == {}", scheduled + 1)]);
    let out = Command::new(bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    // shards of other work refuse to merge: another seed, another rate
    for (file, rate, seed, why) in [
        (d.join("seed8.json"), "40", "8", "seed 7 ≠ 8"),
        (d.join("rate20.json"), "20", "7", "fingerprint"),
    ] {
        let mut a = load_args(&t.url, mix, rate, "1s", seed);
        a.extend(["--shard", "1/3", "--result", file.to_str().unwrap()]);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let out = run(&[
            "merge",
            files[0].to_str().unwrap(),
            file.to_str().unwrap(),
            files[2].to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            err.contains("not shards of the same work") && err.contains(why),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[cfg(unix)]
#[test]
fn a_killed_shard_is_reported_missing_never_dropped() {
    let d = dir("killed");
    let t = target(&d);
    let mix = mix(&d);
    let mix = mix.to_str().unwrap();
    let base = load_args(&t.url, mix, "30", "4s", "3");
    let at = start_in(2.0);
    let files: Vec<PathBuf> = (0..3).map(|i| d.join(format!("s{i}.json"))).collect();
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let mut a = base.clone();
            a.extend([
                "--shard",
                &shard,
                "--start-at",
                &at,
                "--result",
                files[i].to_str().unwrap(),
            ]);
            spawn(&a, &d.join(format!("shard{i}.log")))
        })
        .collect();
    // a second into the traffic: shard 1 killed outright, shard 2 stopped (SIGINT)
    std::thread::sleep(Duration::from_secs(3));
    let pid = |p: &Proc| libc::pid_t::try_from(p.0.id()).unwrap();
    // SAFETY: signals to our own children, by their pids
    unsafe {
        libc::kill(pid(&procs[1]), libc::SIGKILL);
        libc::kill(pid(&procs[2]), libc::SIGINT);
    }
    assert_eq!(wait_exit(&mut procs[0], Duration::from_secs(60), "shard 0"), 0);
    wait_exit(&mut procs[1], Duration::from_secs(10), "shard 1");
    assert_eq!(wait_exit(&mut procs[2], Duration::from_secs(10), "shard 2"), 130);
    assert!(!files[1].exists(), "a killed shard writes nothing");
    assert_eq!(json(&files[2])["chaosgate_shard"]["complete"], false);

    let present = [files[0].to_str().unwrap(), files[2].to_str().unwrap()];
    let out = run(&["merge", present[0], present[1]]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("shard 1 of 3 missing") && err.contains("shard 2 interrupted"),
        "{err}"
    );

    let merged = d.join("partial.json");
    let out = run(&[
        "merge",
        present[0],
        present[1],
        "--allow-missing",
        "--json",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let m = json(&merged);
    assert_eq!(m["partial"], true);
    assert_eq!(m["shards"]["missing"], serde_json::json!([1]));
    assert_eq!(m["shards"]["incomplete"], serde_json::json!([2]));
    assert!(
        m["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("shard 1 of 3 missing")),
        "{}",
        m["warnings"]
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MISSING"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_start_after_the_whole_schedule_is_refused() {
    let d = dir("late");
    let f = d.join("s.json");
    let out = run(&[
        "load",
        "--target",
        "http://127.0.0.1:9",
        "--rate",
        "5",
        "--duration",
        "2s",
        "--shard",
        "0/2",
        "--start-at",
        &start_in(-10.0),
        "--result",
        f.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("after the whole 2.0 s schedule"), "{err}");
    assert!(!f.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// 60 s of scenario at 0.1 (6 s): the primary answers 502 from 20.4 s for 20 s; probes
/// every 5 s (0.5 s) with one failure to eject; no fallback on failure, no retries.
const RUN_SCENARIO: &str = r#"
seed = 5
time_scale = 0.1
[providers.primary]
api = "openai"
[[providers.primary.phase]]
name = "outage"
start = "20.4s"
duration = "20s"
errors = [{ status = 502 }]
[providers.fallback]
api = "openai"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "5s", timeout = "2s", unhealthy_threshold = 1, healthy_threshold = 1 }
fallback_on_failure = false
retries = { attempts = 0 }
[traffic]
rate = 60.0
arrival = "constant"
duration = "60s"
"#;

#[test]
fn three_run_shards_merge_into_one_run_report() {
    let d = dir("run");
    let sc = d.join("sc.toml");
    std::fs::write(&sc, RUN_SCENARIO).unwrap();
    let sc = sc.to_str().unwrap();
    let single = d.join("single.json");
    let out = run(&["run", sc, "--quiet", "--json", single.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let single = json(&single);

    let at = start_in(3.0);
    let files: Vec<PathBuf> = (0..3).map(|i| d.join(format!("r{i}.json"))).collect();
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            spawn(
                &[
                    "run",
                    sc,
                    "--quiet",
                    "--shard",
                    &shard,
                    "--start-at",
                    &at,
                    "--result",
                    files[i].to_str().unwrap(),
                ],
                &d.join(format!("shard{i}.log")),
            )
        })
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        assert_eq!(wait_exit(p, Duration::from_secs(90), "a run shard"), 0, "shard {i}");
    }
    let merged = d.join("merged.json");
    let mut args: Vec<String> = vec!["merge".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend([
        "--json".into(),
        merged.display().to_string(),
        "--assert".into(),
        "traffic.requests.scheduled == 360".into(),
    ]);
    let out = Command::new(bin()).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("shards: 3 of 3 merged"), "{text}");
    let m = json(&merged);
    // one point: the JSON is its report
    let (s, r) = (&single, &m);
    // 60 req/s for 6 s, constant: the schedule exactly
    assert_eq!(r["traffic"]["requests"]["scheduled"], 360);
    assert_eq!(
        r["traffic"]["requests"]["scheduled"],
        s["traffic"]["requests"]["scheduled"]
    );
    assert_eq!(r["traffic"]["requests"]["sent"], 360);
    // the failures are the requests sent to the primary between the onset and its
    // ejection: each shard's gateway probes its own primary on the same timeline (same
    // seed, the shared start), so the counts agree up to requests at the ejection instant
    // (a few ms of timing on a busy host); 20 req/s per 0.1 s of detection delay
    let failed = |v: &Value| v["traffic"]["requests"]["failed"].as_u64().unwrap();
    assert!(failed(s) > 10 && failed(r) > 10, "{} {}", failed(s), failed(r));
    assert!(
        failed(r).abs_diff(failed(s)) <= 3 + failed(s) / 5,
        "{} vs {}",
        failed(r),
        failed(s)
    );
    // the fault window is the ground truth of every shard, once
    assert_eq!(r["resilience"]["faults"].as_array().unwrap().len(), 1);
    let det = |v: &Value| v["resilience"]["detection_s"]["mean"].as_f64().unwrap();
    assert!((det(r) - det(s)).abs() < 0.3, "detection {} vs {}", det(r), det(s));
    // the attempt figures join every shard's requests with what its own mocks saw
    assert_eq!(r["attempts"]["first"]["user_requests"], 360, "{}", r["attempts"]);
    assert_eq!(r["attempts"]["first"]["provider_attempts"], 360, "{}", r["attempts"]);
    assert_eq!(m["shards"]["count"], 3);
    assert_eq!(m["checks"].as_array().unwrap().len(), 1);
    assert_eq!(m["passed"], true);
    let _ = std::fs::remove_dir_all(&d);
}
