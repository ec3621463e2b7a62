//! Configuration errors: every problem of a scenario (and the files it names) at once,
//! each at the line of the offending key; semantic nonsense refused; flags that name
//! themselves; output paths checked before a run starts.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_errors").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &Path, name: &str, text: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the binary; (exit code, stderr).
fn chaosgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaosgate"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sim(file: &Path, extra: &[&str]) -> (i32, String) {
    let mut a = vec!["sim", file.to_str().unwrap(), "--quiet"];
    a.extend_from_slice(extra);
    chaosgate(&a)
}

const OK: &str = r#"
[providers.a]
api = "openai"
[providers.b]
api = "openai"
[gateway]
targets = ["a", "b"]
health_check = { interval = "5s", timeout = "1s" }
[traffic]
rate = 5.0
duration = "4s"
"#;

/// Asserts `stderr` has a diagnostic `file:line: path: …` containing `what`.
fn has(stderr: &str, file: &Path, line: usize, path: &str, what: &str) {
    let head = format!("{}:{line}: {path}: ", file.display());
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_start().starts_with(&head) && l.contains(what)),
        "want `{head}…{what}` in:\n{stderr}"
    );
}

#[test]
fn the_shipped_minimal_scenario_still_runs() {
    let d = dir("ok");
    let f = write(&d, "s.toml", OK);
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unknown_key_wrong_type_and_bad_duration_are_three_errors_not_one() {
    let d = dir("three");
    let f = write(
        &d,
        "s.toml",
        r#"[providers.a]
api = "openai"
[gateway]
targets = ["a"]
retrys = 3
[gateway.health_check]
interval = "5 parsecs"
unhealthy_threshold = "three"
[traffic]
rate = 5.0
duration = "4s"
"#,
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("3 configuration errors"), "{err}");
    has(&err, &f, 5, "gateway.retrys", "unknown field `retrys`");
    has(&err, &f, 7, "gateway.health_check.interval", "");
    has(&err, &f, 8, "gateway.health_check.unhealthy_threshold", "invalid type");
}

#[test]
fn provider_errors_do_not_hide_gateway_and_traffic_errors() {
    let d = dir("seven");
    let f = write(
        &d,
        "s.toml",
        r#"[providers.a]
api = "openia"
prot = 9001
[providers.b]
api = "openai"
baseline = { errors = [{ status = 503, probability = 2.0 }] }
[gateway]
targets = ["a", "c"]
request_timeout = "0s"
[gateway.health_check]
interval = "5s"
unhealthy_threshold = 0
[traffic]
rate = -5.0
duration = "10s"
[slo]
period = "0s"
"#,
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 2, "providers.a.api", "unknown variant");
    has(&err, &f, 3, "providers.a.prot", "unknown field");
    has(
        &err,
        &f,
        6,
        "providers.b.baseline.errors[0].probability",
        "between 0 and 1",
    );
    has(&err, &f, 8, "gateway.targets[1]", "not a provider");
    has(&err, &f, 9, "gateway.request_timeout", "> 0");
    has(&err, &f, 12, "gateway.health_check.unhealthy_threshold", "≥ 1");
    has(&err, &f, 14, "traffic.rate", "-5");
    has(&err, &f, 17, "slo.period", "longer than 0s");
}

#[test]
fn gateway_health_check_interval_is_reported_at_its_own_line() {
    let d = dir("interval-line");
    let f = write(&d, "s.toml", OK);
    let (code, err) = sim(&f, &["--set", "gateway.health_check.interval=0s"]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 8, "gateway.health_check.interval", "must be > 0");
}

#[test]
fn problems_two_tables_deep_are_reported_at_the_line_of_their_exact_key() {
    // the policy's own checks (not serde's) in [gateway.health_check], [gateway.breaker],
    // [gateway.retries] and [[gateway.targets]]: each at its key's line, never at the
    // table header's
    let d = dir("two-deep");
    let f = write(
        &d,
        "s.toml",
        r#"[providers.a]
api = "openai"
[providers.b]
api = "openai"
[gateway]
strategy = "weighted"

[gateway.health_check]
timeout = "1s"
unhealthy_threshold = 2
interval = "0s"
healthy_threshold = 0

[gateway.breaker]
kind = "consecutive"
base_ejection = "30s"
failures = 0

[gateway.retries]
attempts = 1
on_status = [502, 700]

[[gateway.targets]]
name = "a"
[[gateway.targets]]
name = "b"
weight = 1e12

[traffic]
rate = 5.0
duration = "4s"
"#,
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    has(&e, &f, 11, "gateway.health_check.interval", "must be > 0");
    has(&e, &f, 12, "gateway.health_check.healthy_threshold", "must be ≥ 1");
    has(&e, &f, 17, "gateway.breaker.failures", "must be ≥ 1");
    has(&e, &f, 21, "gateway.retries.on_status[1]", "got 700");
    has(&e, &f, 27, "gateway.targets[1].weight", "must be at most");
    for header in [":8: ", ":14: ", ":19: ", ":23: ", ":25: "] {
        assert!(!e.contains(header), "nothing at a table header ({header}):\n{e}");
    }
    // a limit (the policy's maximum, a separate check) two tables deep, and the file's
    // own value under a swept key
    let f = write(
        &d,
        "t.toml",
        "[providers.a]\napi = \"openai\"\n[gateway]\ntargets = [\"a\"]\n[gateway.health_check]\ntimeout = \"1s\"\ninterval = \"1us\"\n[traffic]\nrate = 5.0\nduration = \"4s\"\n",
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    has(&e, &f, 7, "gateway.health_check.interval", "must be at least");
}

#[test]
fn breaker_inner_key_errors_are_reported_at_their_own_line() {
    // the defect: serde reads a tagged enum's table whole, so every error inside
    // [gateway.breaker] was reported once, at the `breaker` key's line
    let d = dir("breaker_lines");
    let f = write(
        &d,
        "s.toml",
        r#"[providers.a]
api = "openai"
[providers.b]
api = "openai"
[gateway]
targets = ["a", "b"]
[gateway.breaker]
kind = "consecutive"
failures = -3
bogus = 1
base_ejection = "soon"
[traffic]
rate = 5.0
duration = "4s"
retries = 1
"#,
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    has(
        &e,
        &f,
        9,
        "gateway.breaker.failures",
        "invalid value: integer `-3`, expected u32",
    );
    has(&e, &f, 10, "gateway.breaker.bogus", "unknown field `bogus`");
    has(&e, &f, 11, "gateway.breaker.base_ejection", "soon");
    has(&e, &f, 15, "traffic.retries", "unknown field");
    assert!(
        !e.contains(":7: gateway.breaker:"),
        "nothing at the breaker key itself:\n{e}"
    );
    // the other kinds, an inline table, and a wrong kind (still at `kind`)
    let f = write(
        &d,
        "t.toml",
        &OK.replace(
            "[traffic]",
            "breaker = { kind = \"failure_rate\", window_size = 1.5 }\n[traffic]",
        ),
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    has(&e, &f, 9, "gateway.breaker.window_size", "expected u32");
    let f = write(
        &d,
        "u.toml",
        &OK.replace(
            "[traffic]",
            "[gateway.breaker]\nkind = \"article\"\nrecovery_timeout = \"10s\"\nhalf_open_max_requests = \"five\"\n[traffic]",
        ),
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    has(&e, &f, 12, "gateway.breaker.half_open_max_requests", "expected u32");
    let f = write(
        &d,
        "v.toml",
        &OK.replace("[traffic]", "breaker = { kind = \"sometimes\" }\n[traffic]"),
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("gateway.breaker") && e.contains("sometimes"), "{e}");
    // a valid breaker still runs
    let f = write(
        &d,
        "w.toml",
        &OK.replace(
            "[traffic]",
            "[gateway.breaker]\nkind = \"consecutive\"\nfailures = 3\n[traffic]",
        ),
    );
    let (code, e) = sim(&f, &[]);
    assert_eq!(code, 0, "{e}");
}

#[test]
fn slo_period_0s_is_refused_not_zero_percent_of_budget() {
    let d = dir("slo-period");
    let f = write(&d, "s.toml", OK);
    let (code, err) = sim(&f, &["--set", "slo.period=0s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("slo.period: must be longer than 0s"), "{err}");
}

#[test]
fn gateway_targets_empty_list_is_refused() {
    let d = dir("targets-empty");
    let f = write(&d, "s.toml", OK);
    let (code, err) = sim(&f, &["--set", "gateway.targets=[]"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("gateway.targets: at least one target is required"),
        "{err}"
    );
}

#[test]
fn swept_key_set_to_minus_inf_in_the_base_file_is_refused() {
    let d = dir("swept-base");
    let f = write(
        &d,
        "s.toml",
        &format!("{OK}[sweep]\n\"gateway.health_check.unhealthy_threshold\" = [1, 3]\n"),
    );
    let (code, err) = sim(&f, &["--set", "gateway.health_check.unhealthy_threshold=-inf"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gateway.health_check.unhealthy_threshold"), "{err}");
    // and a bad value in the file itself, replaced by every point, is refused too
    let f = write(
        &d,
        "t.toml",
        &format!(
            "{}[sweep]\n\"gateway.health_check.interval\" = [\"5s\", \"10s\"]\n",
            OK.replace("\"5s\", timeout", "\"0s\", timeout")
        ),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 8, "gateway.health_check.interval", "must be > 0");
}

#[test]
fn swept_values_are_validated_like_any_other() {
    let d = dir("swept-points");
    let f = write(
        &d,
        "s.toml",
        &format!("{OK}[sweep]\n\"slo.period\" = [\"30d\", \"0s\"]\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("slo.period=0s") && err.contains("longer than 0s"), "{err}");
}

#[test]
fn an_empty_profile_is_refused() {
    let d = dir("empty-profile");
    write(&d, "empty.toml", "# nothing\n");
    let f = write(
        &d,
        "s.toml",
        &OK.replace("[providers.b]\n", "[providers.b]\nprofile = \"empty.toml\"\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("empty.toml:1:") && err.contains("the profile is empty"),
        "{err}"
    );
    has(&err, &f, 5, "providers.b.profile", "invalid");
}

#[test]
fn tokens_per_s_as_a_list_is_refused() {
    let d = dir("tps-list");
    write(&d, "p.toml", "[baseline]\ntokens_per_s = [1, 2]\n");
    let f = write(
        &d,
        "s.toml",
        &OK.replace("[providers.b]\n", "[providers.b]\nprofile = \"p.toml\"\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:2:") && err.contains("expected a table"), "{err}");
}

#[test]
fn cv_1e12_is_refused() {
    let d = dir("cv");
    write(
        &d,
        "p.toml",
        "[baseline]\ntokens_per_s = { mean = 50, cv = 1e12, process = \"random_walk\" }\n",
    );
    let f = write(
        &d,
        "s.toml",
        &OK.replace("[providers.b]\n", "[providers.b]\nprofile = \"p.toml\"\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("p.toml:2:") && err.contains("cv must be in [0, 10]"),
        "{err}"
    );
}

#[test]
fn non_finite_negative_and_absurd_numbers_name_key_and_value() {
    let d = dir("numbers");
    let f = write(&d, "s.toml", OK);
    for (set, want) in [
        (
            "traffic.rate=nan",
            "traffic.rate: must be a number in (0, 1000000], got NaN",
        ),
        ("traffic.rate=inf", "got inf"),
        ("traffic.rate=1e9", "got 1000000000"),
        ("traffic.duration=\"10000d\"", "traffic.duration: must be at most 7days"),
        (
            "gateway.request_timeout=\"1000d\"",
            "gateway.request_timeout: must be at most 30days",
        ),
        (
            "gateway.health_check.unhealthy_threshold=4000000000",
            "must be in [1, 10000]",
        ),
        ("time_scale=1e-300", "time_scale: must be a number in"),
        ("slo.rate=-1", "slo.rate"),
        ("detection.hold=\"0s\"", "detection.hold: must be longer than 0s"),
    ] {
        let (code, err) = sim(&f, &["--set", set]);
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(want), "{set}: want {want:?} in {err}");
    }
}

#[test]
fn mix_file_errors_come_with_the_scenario_errors() {
    let d = dir("mix");
    write(
        &d,
        "mix.toml",
        "[[kind]]\nname = \"a\"\nweight = -1\nmax_tokens = 0\nprompt_tokens = 2000000\n[[kind]]\nname = \"b\"\nstreem = true\n",
    );
    let f = write(
        &d,
        "s.toml",
        &OK.replace(
            "duration = \"4s\"",
            "duration = \"4s\"\nmix = \"mix.toml\"\nspeed = 2.0",
        ),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("traffic.speed"), "{err}");
    assert!(err.contains("mix.toml:3: kind[0].weight"), "{err}");
    assert!(err.contains("mix.toml:4: kind[0].max_tokens"), "{err}");
    assert!(err.contains("mix.toml:5: kind[0].prompt_tokens"), "{err}");
    assert!(err.contains("mix.toml:8: kind[1].streem"), "{err}");
}

#[test]
fn trace_file_errors_are_found_before_the_run() {
    let d = dir("trace");
    write(&d, "t.csv", "timestamp,prompt_tokens\nnope,12\n");
    let f = write(
        &d,
        "s.toml",
        &OK.replace("rate = 5.0\nduration = \"4s\"", "trace = \"t.csv\""),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("traffic.trace") && err.contains("t.csv"), "{err}");
}

#[test]
fn rate_minus_5_names_the_flag() {
    let (code, err) = chaosgate(&[
        "load",
        "--target",
        "http://127.0.0.1:1",
        "--rate",
        "-5",
        "--duration",
        "1s",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'--rate <RATE>'") && err.contains("got -5"), "{err}");
}

#[test]
fn load_timeout_0s_and_concurrency_0_are_refused_naming_the_flag() {
    for (flag, v) in [
        ("--timeout", "0s"),
        ("--concurrency", "0"),
        ("--users", "0"),
        ("--bucket", "0s"),
        ("--burstiness", "inf"),
    ] {
        let (code, err) = chaosgate(&[
            "load",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "5",
            "--duration",
            "1s",
            flag,
            v,
        ]);
        assert_eq!(code, 2, "{flag} {v}: {err}");
        assert!(
            err.contains(&format!("invalid value '{v}' for '{flag}")),
            "{flag} {v}: {err}"
        );
    }
    let (code, err) = chaosgate(&[
        "load",
        "--target",
        "http://127.0.0.1:1",
        "--rate",
        "5",
        "--duration",
        "0s",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value '0s' for '--duration"), "{err}");
    let (code, err) = chaosgate(&["sim", "x.toml", "--jobs", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'--jobs <JOBS>'"), "{err}");
}

#[test]
fn json_to_a_missing_directory_fails_before_the_run() {
    let d = dir("outputs");
    let f = write(&d, "s.toml", OK);
    for flag in ["--json", "--junit", "--chart"] {
        let (code, err) = sim(&f, &[flag, "/nonexistent/x.out"]);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag} /nonexistent/x.out: directory /nonexistent does not exist"
            )),
            "{flag}: {err}"
        );
        // refused before anything ran: no "simulated … s" line
        assert!(!err.contains("simulated"), "{flag}: {err}");
    }
    let (code, err) = sim(&f, &["--json", d.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    // load: checked before a single request is sent (the target is unreachable anyway)
    for flag in ["--json", "--csv", "--hlog"] {
        let (code, err) = chaosgate(&[
            "load",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "5",
            "--duration",
            "1s",
            flag,
            "/nonexistent/x",
        ]);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains(&format!("{flag} /nonexistent/x")) && err.contains("does not exist"),
            "{flag}: {err}"
        );
        assert!(!err.contains("chaosgate load: http"), "{flag}: {err}");
    }
}

// Found probing valid-but-extreme values (each hung `sim` past 20 s before the fix).

#[test]
fn health_check_interval_1ns_is_refused_not_a_hang() {
    let d = dir("interval-1ns");
    let f = write(&d, "s.toml", OK);
    let (code, err) = sim(&f, &["--set", "gateway.health_check.interval=1ns"]);
    assert_eq!(code, 2, "{err}");
    has(
        &err,
        &f,
        8,
        "gateway.health_check.interval",
        "must be at least 1ms, got 1ns",
    );
}

#[test]
fn time_scale_1e6_is_refused_not_a_hang() {
    let d = dir("time-scale-1e6");
    let f = write(&d, "s.toml", &format!("time_scale = 1e6\n{OK}"));
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 1, "time_scale", "makes the run");
    assert!(err.contains("at most 7days"), "{err}");
}

#[test]
fn tokens_per_s_step_1ns_and_mean_1e_300_are_refused() {
    let d = dir("tps-step");
    write(
        &d,
        "p.toml",
        "[baseline]\ntokens_per_s = { mean = 60, cv = 0.5, process = \"random_walk\", step = \"1ns\" }\n[[phase]]\nstart = \"1s\"\ntokens_per_s = { mean = 1e-300 }\n",
    );
    let f = write(
        &d,
        "s.toml",
        &OK.replace("[providers.b]\n", "[providers.b]\nprofile = \"p.toml\"\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("p.toml:2:") && err.contains("step must be at least 1ms"),
        "{err}"
    );
    assert!(
        err.contains("p.toml:5:") && err.contains("mean must be at least 0.01"),
        "{err}"
    );
}

#[test]
fn flapping_period_1ns_is_refused() {
    let d = dir("flap-1ns");
    write(
        &d,
        "p.toml",
        "[[phase]]\nstart = \"1s\"\nerrors = [{ status = 503 }]\nflapping = { period = \"1ns\", duty = 0.5 }\n",
    );
    let f = write(
        &d,
        "s.toml",
        &OK.replace("[providers.b]\n", "[providers.b]\nprofile = \"p.toml\"\n"),
    );
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:1:") || err.contains("p.toml:4:"), "{err}");
    assert!(err.contains("flapping.period must be at least 1ms"), "{err}");
}

/// Each of these hung `sim` on the previous build (killed after 15 s); now a diagnostic.
#[test]
fn traffic_rate_1e308_and_time_scale_1e300_and_1e_minus_300_are_refused_not_hangs() {
    let d = dir("old-hangs");
    let f = write(&d, "s.toml", OK);
    for (set, want) in [
        ("traffic.rate=1e308", "traffic.rate: must be a number in (0, 1000000]"),
        (
            "time_scale=1e300",
            "time_scale: must be a number in [0.000001, 1000000]",
        ),
        (
            "time_scale=1e-300",
            "time_scale: must be a number in [0.000001, 1000000]",
        ),
    ] {
        let (code, err) = sim(&f, &["--set", set]);
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(want), "{set}: want {want:?} in {err}");
    }
}

#[test]
fn gateway_replicas_above_16_and_0_are_refused_and_set_overrides() {
    let d = dir("replicas");
    let f = write(&d, "s.toml", &OK.replace("[gateway]\n", "[gateway]\nreplicas = 17\n"));
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 7, "gateway.replicas", "at most 16 replicas, got 17");
    let f = write(&d, "ok.toml", OK);
    let (code, err) = sim(&f, &["--set", "gateway.replicas=0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gateway.replicas: must be at least 1"), "{err}");
    let (code, err) = sim(&f, &["--set", "gateway.replicas=3"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn replicas_and_redis_on_a_running_gateway_and_redis_on_the_builtin_are_refused() {
    let d = dir("replicas_running");
    let running = "[providers.a]\napi = \"openai\"\nport = 9001\n[gateway]\nkind = \"running\"\nbase_url = \"http://127.0.0.1:4000\"\nreplicas = 2\nredis = true\n[traffic]\nrate = 5.0\nduration = \"4s\"\n";
    let f = write(&d, "r.toml", running);
    let (code, err) = chaosgate(&["run", f.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 7, "gateway.replicas", "started by you, not by chaosgate");
    has(&err, &f, 8, "gateway.redis", "start its Redis yourself");
    let f = write(&d, "b.toml", &OK.replace("[gateway]\n", "[gateway]\nredis = true\n"));
    let (code, err) = sim(&f, &[]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 7, "gateway.redis", "for external gateways");
    let x = "[providers.a]\napi = \"openai\"\n[gateway]\nkind = \"external\"\ncommand = \"x\"\nready_url = \"http://127.0.0.1:{{ gateway.port }}/\"\nreplicas = 20\nport = 4000\n[traffic]\nrate = 5.0\nduration = \"4s\"\n";
    let f = write(&d, "x.toml", &x.replace("replicas = 20", "replicas = 2"));
    let (code, err) = chaosgate(&["run", f.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 8, "gateway.port", "cannot share one fixed port");
    let f = write(&d, "x20.toml", &x.replace("port = 4000\n", ""));
    let (code, err) = chaosgate(&["run", f.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    has(&err, &f, 7, "gateway.replicas", "at most 16 replicas, got 20");
}

#[test]
fn metrics_flags_are_checked_before_any_traffic() {
    let base = [
        "load",
        "--target",
        "http://127.0.0.1:1",
        "--rate",
        "1",
        "--duration",
        "1s",
        "--quiet",
    ];
    let with = |extra: &[&str]| chaosgate(&[&base[..], extra].concat());
    let (code, err) = with(&["--metrics-linger", "5s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--metrics-listen"), "{err}");
    let (code, err) = with(&["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "11m"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"11m\" is longer than 600 s, the longest linger"),
        "{err}"
    );
    let (code, err) = with(&["--metrics-listen", "nonsense"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--metrics-listen: cannot listen on nonsense"), "{err}");
    // sim runs in virtual time: no metrics endpoint
    let (code, err) = chaosgate(&["sim", "examples/incidents/demo.toml", "--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
}
