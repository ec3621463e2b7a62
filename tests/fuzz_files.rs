//! Mutation fuzzing of scenario, profile, mix, price and trace files.
//!
//! Each case takes a shipped scenario (or a small one built on a shipped mix, or on a
//! trace), picks that file or one it names, mutates its text (byte flips, number and
//! string substitutions such as 0, -1, 1e308, nan, inf and 100,000-character strings, key
//! deletions and duplications, type swaps, truncation) and runs `chaosgate sim` on the
//! scenario as a child process under a time limit and an address-space limit. A case
//! passes when the child
//! - exits 0 or 1 (a valid file: the run finished; 1 = an assertion of the file failed), or
//! - exits 2 with a diagnostic naming a file and line (`…/x.toml:12: …`),
//!
//! and fails on a panic (exit 101, "panicked"), an abort or signal (exit 134, SIGKILL by
//! the memory limit), a timeout, or a refusal without a file:line. A case whose file is
//! valid but plans gigantic work (more than `HEAVY` requests or probes) is counted apart:
//! refusing it is the whole-run planned-work check, not a per-key limit.
//!
//! `cargo test --test fuzz_files` runs a short deterministic pass; the long one is
//! `cargo test --release --test fuzz_files -- --ignored --nocapture` (`FUZZ_CASES`,
//! `FUZZ_SEED`, `FUZZ_JOBS` change it; `FUZZ_CASE=N` replays one case and keeps its files;
//! `FUZZ_BIN=path` fuzzes another build).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address-space limit of each child (bytes).
const MEMORY_LIMIT: u64 = 3 << 30;
/// Time limit of each case.
const TIME_LIMIT: Duration = Duration::from_secs(30);
/// Planned requests (or health probes) from which a valid file counts as heavy.
const HEAVY: f64 = 2e6;

/// splitmix64: small, seedable, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "4294967296",
    "18446744073709551616",
    "1e-300",
    "0.5",
    "65536",
    "99999999999",
    "1e12",
    "-0.0",
];

fn huge_string() -> String {
    format!("\"{}\"", "x".repeat(100_000))
}

const STRINGS: &[&str] = &[
    "\"\"",
    "\"0s\"",
    "\"-1s\"",
    "\"1ns\"",
    "\"99999999999d\"",
    "\"584942417y\"",
    "\"nan\"",
    "\"1e308s\"",
    "\"openai\"",
    "\"primary\"",
    "\"../../../../etc/passwd\"",
    "\"/dev/zero\"",
    "\"\\u0000\"",
    "5",
    "[]",
    "{}",
];

const VALUES: &[&str] = &[
    "true",
    "1",
    "-1",
    "\"x\"",
    "[1, 2]",
    "{ a = 1 }",
    "1.5",
    "1979-05-27T07:32:00Z",
    "[]",
    "[[]]",
    "nan",
];

/// Byte ranges of numbers (a digit run with an optional sign, fraction and exponent).
fn number_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            let start = if i > 0 && (b[i - 1] == b'-' || b[i - 1] == b'+') {
                i - 1
            } else {
                i
            };
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'e' || b[j] == b'_') {
                j += 1;
            }
            out.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of double-quoted strings (with their quotes).
fn string_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                out.push((i, j + 1));
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of values after `= ` on a line.
fn value_spans(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    for line in s.split_inclusive('\n') {
        if let Some(eq) = line.find(" = ") {
            let start = off + eq + 3;
            let end = off + line.trim_end().len();
            if end > start {
                out.push((start, end));
            }
        }
        off += line.len();
    }
    out
}

fn splice(s: &str, (a, b): (usize, usize), with: &str) -> String {
    let mut t = String::with_capacity(s.len() + with.len());
    t.push_str(&s[..a]);
    t.push_str(with);
    t.push_str(&s[b..]);
    t
}

/// One mutation of `s` (valid UTF-8 in, UTF-8 out; byte flips are made lossless-safe).
fn mutate(s: &str, rng: &mut Rng) -> (String, String) {
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    match rng.below(9) {
        0 => {
            let spans = number_spans(s);
            if spans.is_empty() {
                return mutate_bytes(s, rng);
            }
            let sp = *rng.pick(&spans);
            let n = *rng.pick(NUMBERS);
            (splice(s, sp, n), format!("number {:?} -> {n}", &s[sp.0..sp.1]))
        }
        1 => {
            let spans = string_spans(s);
            if spans.is_empty() {
                return mutate_bytes(s, rng);
            }
            let sp = *rng.pick(&spans);
            let w = if rng.below(8) == 0 {
                huge_string()
            } else {
                rng.pick(STRINGS).to_string()
            };
            let shown: String = w.chars().take(24).collect();
            (splice(s, sp, &w), format!("string {:?} -> {shown}", &s[sp.0..sp.1]))
        }
        2 => {
            let spans = value_spans(s);
            if spans.is_empty() {
                return mutate_bytes(s, rng);
            }
            let sp = *rng.pick(&spans);
            // half the time an extreme number in a key's real place (rate = 1e308 …)
            let v = if rng.below(2) == 0 {
                *rng.pick(NUMBERS)
            } else {
                *rng.pick(VALUES)
            };
            (splice(s, sp, v), format!("value {:?} -> {v}", &s[sp.0..sp.1]))
        }
        3 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut l = lines.clone();
            l.remove(i);
            (l.concat(), format!("delete line {}", i + 1))
        }
        4 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let j = rng.below(lines.len() + 1);
            let mut l: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
            let mut dup = lines[i].to_string();
            if !dup.ends_with('\n') {
                dup.push('\n');
            }
            l.insert(j, dup);
            (l.concat(), format!("duplicate line {} at {}", i + 1, j + 1))
        }
        5 => {
            // a known key with an extreme value, appended to a random table
            let keys = [
                "rate",
                "duration",
                "interval",
                "timeout",
                "users",
                "probability",
                "mean",
                "cv",
                "p99",
                "weight",
                "max_tokens",
                "time_scale",
                "period",
                "unhealthy_threshold",
                "speed",
                "status",
            ];
            let i = rng.below(lines.len() + 1);
            let k = rng.pick(&keys);
            let v = if rng.below(2) == 0 {
                rng.pick(NUMBERS).to_string()
            } else {
                rng.pick(STRINGS).to_string()
            };
            let mut l: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
            l.insert(i, format!("{k} = {v}\n"));
            (l.concat(), format!("insert `{k} = {v}` at line {}", i + 1))
        }
        6 => {
            let n = rng.below(s.len() + 1);
            let mut n = n;
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            (s[..n].to_string(), format!("truncate at byte {n}"))
        }
        _ => mutate_bytes(s, rng),
    }
}

fn mutate_bytes(s: &str, rng: &mut Rng) -> (String, String) {
    let mut b = s.as_bytes().to_vec();
    if b.is_empty() {
        return ("\u{0}".into(), "empty -> NUL".into());
    }
    let i = rng.below(b.len());
    let v = match rng.below(4) {
        0 => b[i] ^ (1 << rng.below(8)),
        1 => *rng.pick(b"[]{}=\"'#,.\n\\-+0123456789"),
        2 => 0,
        _ => rng.below(256) as u8,
    };
    b[i] = v;
    (
        String::from_utf8_lossy(&b).into_owned(),
        format!("byte {i} -> {v:#04x}"),
    )
}

/// A copy of the shipped files the cases mutate, plus scenarios built on a mix and traces.
struct Sandbox {
    root: PathBuf,
    scenarios: Vec<PathBuf>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

const FUZZ_TRAFFIC_MIX: &str = r#"# fuzz: a scenario on the shipped mix
[providers.primary]
api = "openai"
profile = "../../fault-profiles/flapping.toml"
[providers.fallback]
api = "openai"
profile = "../../fault-profiles/latency-tail.toml"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "5s", timeout = "2s", unhealthy_threshold = 2, healthy_threshold = 2 }
breaker = { kind = "consecutive", failures = 5, base_ejection = "30s", max_ejection = "300s" }
retries = { attempts = 1 }
[traffic]
rate = 20.0
duration = "60s"
mix = "../workloads/seed-three-tasks.toml"
[slo]
target = 0.999
ttft = "2s"
[[assert]]
expr = "resilience.failed_requests.max <= 100000"
[sweep]
"gateway.health_check.interval" = ["5s", "30s"]
"#;

const FUZZ_TRACE_CSV: &str = r#"# fuzz: a CSV trace replay
[providers.primary]
api = "openai"
profile = "../../fault-profiles/hard-down.toml"
[providers.fallback]
api = "anthropic"
profile = "../../fault-profiles/overloaded-529.toml"
[gateway]
targets = ["primary", "fallback"]
health_check = { interval = "2s", timeout = "1s" }
[traffic]
trace = "trace.csv"
speed = 2.0
[[traffic.kind]]
name = "chat"
stream = true
[[traffic.kind]]
name = "plain"
"#;

const TRACE_CSV: &str = "offset_ms,kind,prompt_tokens,max_tokens,stream\n0,chat,100,50,true\n120.5,plain,2000,10,false\n\"250\",chat,,,\n1000,plain,5,5,false\n30000,chat,800,300,true\n";

const FUZZ_TRACE_JSONL: &str = r#"# fuzz: a JSONL trace replay
[providers.a]
api = "openai"
profile = "../../fault-profiles/midstream-cut.toml"
[providers.b]
api = "openai"
profile = "../../fault-profiles/rate-limit-storm.toml"
[gateway]
targets = ["a", "b"]
[traffic]
trace = "trace.jsonl"
"#;

const TRACE_JSONL: &str = "{\"offset_ms\": 0, \"stream\": true, \"max_tokens\": 40}\n{\"offset\": \"1.5s\", \"prompt_tokens\": 900}\n{\"offset_ms\": 2500, \"model\": \"gpt-4o-mini\", \"stream\": false}\n{\"offset\": \"20s\", \"endpoint\": \"embeddings\"}\n";

impl Sandbox {
    fn new(name: &str, all: bool) -> Sandbox {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_files").join(name);
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "examples/incidents",
            "examples/scenarios",
            "examples/workloads",
            "examples/prices",
            "fault-profiles",
        ] {
            copy_dir(&repo.join(d), &root.join(d));
        }
        let fz = root.join("examples/fuzz");
        std::fs::create_dir_all(&fz).unwrap();
        for (f, t) in [
            ("mix.toml", FUZZ_TRAFFIC_MIX),
            ("trace-csv.toml", FUZZ_TRACE_CSV),
            ("trace.csv", TRACE_CSV),
            ("trace-jsonl.toml", FUZZ_TRACE_JSONL),
            ("trace.jsonl", TRACE_JSONL),
        ] {
            std::fs::write(fz.join(f), t).unwrap();
        }
        // the short run uses the quick scenarios; the long one every builtin one
        let mut scenarios: Vec<PathBuf> = vec![
            fz.join("mix.toml"),
            fz.join("trace-csv.toml"),
            fz.join("trace-jsonl.toml"),
            root.join("examples/incidents/brownout.toml"),
            root.join("examples/incidents/grey-failure.toml"),
            root.join("examples/incidents/midstream-cuts.toml"),
            root.join("examples/incidents/rate-limit-storm.toml"),
            root.join("examples/incidents/demo.toml"),
        ];
        if all {
            for f in ["3am-fast-fail", "3am-hang", "flapping"] {
                scenarios.push(root.join(format!("examples/incidents/{f}.toml")));
            }
            scenarios.push(root.join("examples/scenarios/cost-routing.toml"));
        }
        Sandbox { root, scenarios }
    }
}

/// The files a scenario names (profile, mix, trace, prices), by the quoted paths in it.
fn referenced(scenario: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(scenario).unwrap_or_default();
    let dir = scenario.parent().unwrap();
    let mut out = Vec::new();
    for (a, b) in string_spans(&text) {
        let s = &text[a + 1..b - 1];
        if [".toml", ".csv", ".jsonl"].iter().any(|e| s.ends_with(e)) {
            let p = dir.join(s);
            if p.is_file() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    ran: usize,
    refused: usize,
    heavy: usize,
    failures: Vec<String>,
}

enum Verdict {
    Ran,
    Refused,
    Heavy,
    Bad(String),
}

/// Planned requests and health probes of a valid scenario set (upper estimates).
fn planned_work(scenario: &Path) -> Option<f64> {
    let set = std::panic::catch_unwind(|| chaosgate::scenario::load(scenario, &[]))
        .ok()?
        .ok()?;
    let mut total = 0.0;
    for p in &set.points {
        let s = &p.scenario;
        let dur_s = match s.traffic.source(&s.dir).ok()? {
            chaosgate::traffic::Source::Open(curve, _, _) => {
                total += curve.total();
                curve.duration_s()
            }
            chaosgate::traffic::Source::Closed { users, duration, .. } => {
                let d = duration as f64 / 1e9;
                total += f64::from(users) * d * 10.0;
                d
            }
            chaosgate::traffic::Source::Trace(t, speed) => {
                total += t.rows.len() as f64;
                t.rows.last().map_or(0.0, |(o, _)| *o as f64 / 1e9 / speed)
            }
        };
        if let Some(g) = s.gateway.builtin() {
            if let Some(h) = &g.health_check {
                let every = h.interval.0.min(h.edge_interval.map_or(u64::MAX, |d| d.0)).max(1) as f64 / 1e9;
                total += dur_s / every * g.targets.len() as f64;
            }
        }
    }
    Some(total)
}

/// Runs one case's `sim` in a child under the limits.
fn run_case(scenario: &Path, time_limit: Duration) -> Verdict {
    // FUZZ_BIN: fuzz another build (e.g. an older one, to compare)
    let bin = std::env::var_os("FUZZ_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_chaosgate").into());
    let mut cmd = Command::new(bin);
    cmd.arg("sim")
        .arg(scenario)
        .arg("--quiet")
        .arg("--jobs")
        .arg("1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn chaosgate");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut v);
        // drain the rest so the child never blocks on a full pipe
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&v).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if started.elapsed() > time_limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return match planned_work(scenario) {
            Some(w) if w > HEAVY => Verdict::Heavy,
            w => Verdict::Bad(format!("hang (> {time_limit:?}; planned work {w:?})")),
        };
    };
    let first = err.lines().take(4).collect::<Vec<_>>().join(" | ");
    if err.contains("panicked") {
        return Verdict::Bad(format!("panic: {first}"));
    }
    match status.code() {
        Some(0) | Some(1) => Verdict::Ran,
        Some(2) => {
            // a diagnostic with a file and line: "<path>.<ext>:<n>: "
            let located = err.lines().any(|l| {
                let l = l.trim_start();
                [".toml:", ".csv:", ".jsonl:", "--set:", "--sweep:"].iter().any(|ext| {
                    l.find(ext).is_some_and(|i| {
                        let rest = &l[i + ext.len()..];
                        rest.starts_with(|c: char| c.is_ascii_digit()) || ext.starts_with("--")
                    })
                }) || l.contains("] :")
                    || l.contains("]:")
            });
            if located {
                Verdict::Refused
            } else {
                Verdict::Bad(format!("refusal without file:line: {first}"))
            }
        }
        code => match planned_work(scenario) {
            Some(w) if w > HEAVY && code.is_none_or(|c| c == 134) => Verdict::Heavy,
            _ => Verdict::Bad(format!(
                "exit {code:?} (signal: {:?}): {first}",
                std::os::unix::process::ExitStatusExt::signal(&status)
            )),
        },
    }
}

/// Runs cases `[from, to)` of `seed` in `sandbox`, one at a time.
fn fuzz_range(sb: &Sandbox, seed: u64, cases: impl Iterator<Item = u64>, keep: bool) -> Tally {
    let mut t = Tally::default();
    for case in cases {
        let mut rng = Rng(seed ^ case.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let scenario = rng.pick(&sb.scenarios).clone();
        let mut files = vec![scenario.clone()];
        files.extend(referenced(&scenario));
        let target = rng.pick(&files).clone();
        let original = std::fs::read_to_string(&target).unwrap();
        let mut text = original.clone();
        let mut what = Vec::new();
        // mostly one mutation, so many files stay valid and reach the simulator
        let n = [1, 1, 1, 1, 2, 3][rng.below(6)];
        for _ in 0..n {
            let (m, w) = mutate(&text, &mut rng);
            text = m;
            what.push(w);
        }
        std::fs::write(&target, &text).unwrap();
        let v = run_case(&scenario, TIME_LIMIT);
        if !keep {
            std::fs::write(&target, &original).unwrap();
        }
        t.cases += 1;
        match v {
            Verdict::Ran => t.ran += 1,
            Verdict::Refused => t.refused += 1,
            Verdict::Heavy => t.heavy += 1,
            Verdict::Bad(m) => t.failures.push(format!(
                "case {case} (FUZZ_SEED={seed} FUZZ_CASE={case}): {} mutated [{}] running {}: {m}",
                target.strip_prefix(&sb.root).unwrap_or(&target).display(),
                what.join("; "),
                scenario.strip_prefix(&sb.root).unwrap_or(&scenario).display(),
            )),
        }
    }
    t
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn fuzz(name: &str, all: bool, default_cases: u64) -> Tally {
    let seed = env_u64("FUZZ_SEED", 14);
    if let Ok(c) = std::env::var("FUZZ_CASE") {
        let case: u64 = c.parse().expect("FUZZ_CASE=N");
        let sb = Sandbox::new(&format!("{name}-replay"), all);
        let t = fuzz_range(&sb, seed, case..case + 1, true);
        eprintln!("replayed case {case} in {}: {t:?}", sb.root.display());
        return t;
    }
    let cases = env_u64("FUZZ_CASES", default_cases);
    let jobs = env_u64("FUZZ_JOBS", 1).max(1);
    let started = Instant::now();
    let parts: Vec<Tally> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..jobs)
            .map(|j| {
                s.spawn(move || {
                    let sb = Sandbox::new(&format!("{name}-{j}"), all);
                    fuzz_range(&sb, seed, (j..cases).step_by(jobs as usize), false)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let mut t = Tally::default();
    for p in parts {
        t.cases += p.cases;
        t.ran += p.ran;
        t.refused += p.refused;
        t.heavy += p.heavy;
        t.failures.extend(p.failures);
    }
    eprintln!(
        "fuzz_files {name}: {} cases (seed {seed}) in {:.1} s: {} ran, {} refused with a file:line diagnostic, {} heavy (planned work), {} failures",
        t.cases,
        started.elapsed().as_secs_f64(),
        t.ran,
        t.refused,
        t.heavy,
        t.failures.len()
    );
    for f in &t.failures {
        eprintln!("  {f}");
    }
    t
}

#[test]
fn short_mutation_run_has_no_panic_hang_or_unlocated_refusal() {
    let t = fuzz("short", false, 250);
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
    // the mutations reach both sides: runs and refusals
    assert!(t.ran > 0 && t.refused > 0, "{t:?}");
}

#[test]
#[ignore = "long: ≥ 10,000 mutations; cargo test --release --test fuzz_files -- --ignored --nocapture"]
fn long_mutation_run_has_no_panic_hang_or_unlocated_refusal() {
    let t = fuzz("long", true, 10_000);
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
}

#[test]
fn mutators_are_deterministic_and_change_the_text() {
    let src = "a = 1\nb = \"5s\"\n[t]\nc = [1, 2]\n";
    let mut r1 = Rng(7);
    let mut r2 = Rng(7);
    for _ in 0..200 {
        let (m1, w1) = mutate(src, &mut r1);
        let (m2, w2) = mutate(src, &mut r2);
        assert_eq!((m1, w1), (m2, w2));
    }
    assert_eq!(number_spans("x = -12.5e3, y2 = 4"), vec![(4, 11), (18, 19)]);
    assert_eq!(string_spans("a = \"b\"\nc = \"d"), vec![(4, 7)]);
}
