//! The README's commands, run as written, and the docs' relative links, checked.
//!
//! The conventions are stated in an HTML comment at the top of README.md:
//! - a fenced block whose info string starts with `sh` is run with `bash -e -o pipefail`, in
//!   file order, in a fresh temporary directory holding copies of `examples/` and
//!   `fault-profiles/`, with the built `chaosgate` first on PATH (a leading
//!   `cargo run --release --` is read as `chaosgate`), and must exit 0 within 60 s;
//! - `sh exit=N`: it must exit N instead;
//! - `sh server`: started in the background in its own process group; the test waits until
//!   every `--listen ADDR` in it accepts connections and stops the group when the next `##`
//!   heading begins (or the test ends);
//! - `sh skip`: never run;
//! - blocks that use `curl` are skipped when curl is not installed;
//! - any other info string is not run.
//!
//! Every block runs in its own process group, killed when the block ends, so a `cmd &` in
//! it cannot outlive it. TMPDIR points into the test's directory, so run directories the
//! commands create are removed with it.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BLOCK_LIMIT: Duration = Duration::from_secs(60);
const SERVER_READY_LIMIT: Duration = Duration::from_secs(30);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Run { expect: i32 },
    Server,
    Skip,
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    mode: Mode,
    script: String,
    /// Index of the `##` section the block is in (servers stop when it changes).
    section: usize,
}

/// The `sh` blocks of a markdown text, with their mode; other blocks are left out.
fn sh_blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut section = 0;
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim_start();
        if let Some(info) = line.strip_prefix("```") {
            let fence_line = i + 1;
            let mut body = String::new();
            let mut closed = false;
            for (_, inner) in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    closed = true;
                    break;
                }
                let cut = inner.len() - inner.trim_start().len();
                body.push_str(&inner[cut.min(indent)..]);
                body.push('\n');
            }
            if !closed {
                return Err(format!("README.md:{fence_line}: a code fence is never closed"));
            }
            let mut words = info.split_whitespace();
            if words.next() != Some("sh") {
                continue;
            }
            let mut mode = Mode::Run { expect: 0 };
            for w in words {
                mode = match w {
                    "skip" => Mode::Skip,
                    "server" => Mode::Server,
                    _ => match w.strip_prefix("exit=").map(str::parse::<i32>) {
                        Some(Ok(n)) => Mode::Run { expect: n },
                        _ => {
                            return Err(format!(
                                "README.md:{fence_line}: unknown annotation `{w}` on a sh block \
                                 (expected skip, server or exit=N)"
                            ))
                        }
                    },
                };
            }
            blocks.push(Block {
                line: fence_line,
                mode,
                script: body.replace("cargo run --release --", "chaosgate"),
                section,
            });
        } else if line.starts_with("## ") || line.starts_with("# ") {
            section += 1;
        }
    }
    Ok(blocks)
}

/// Every `--listen ADDR` in a server block.
fn listen_addrs(script: &str) -> Vec<SocketAddr> {
    let words: Vec<&str> = script.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--listen")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn has_curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether the child has exited, without reaping it: its pid, and so its process group's
/// id, stays reserved until [`stop_group`] has signalled the group.
fn has_exited(child: &Child) -> bool {
    // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child to be reaped later.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

/// Stops a process group this test started (SIGTERM, up to 3 s, then SIGKILL for whatever
/// is left, e.g. a `cmd &` that outlived the shell) and reaps its leader. The leader is
/// reaped only after both signals, so the group id cannot have been reused.
fn stop_group(child: &mut Child) -> std::process::ExitStatus {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: killpg only sends a signal to the group this test created for the child.
    unsafe { libc::killpg(pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !has_exited(child) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above; the leader is not reaped yet.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    child.wait().expect("wait for a child this test started")
}

/// Background servers (section, README line, child); stopped on drop, so a panic in the
/// test does not leave them running.
struct Servers(Vec<(usize, usize, Child)>);

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, _, child) in self.0.iter_mut() {
            stop_group(child);
        }
    }
}

struct Env {
    dir: PathBuf,
    path: String,
}

impl Env {
    fn spawn(&self, block: &Block, log: &Path) -> Child {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &block.script])
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env("TMPDIR", self.dir.join("tmp"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("README.md:{}: cannot start bash: {e}", block.line))
    }
}

fn log_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn readme_commands_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme).unwrap();
    assert!(
        blocks.iter().filter(|b| b.mode != Mode::Skip).count() >= 10,
        "the README should have runnable sh blocks; found {blocks:?}"
    );

    let dir = std::env::temp_dir().join(format!("chaosgate-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    copy_dir(&root().join("examples"), &dir.join("examples"));
    copy_dir(&root().join("fault-profiles"), &dir.join("fault-profiles"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_chaosgate")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let env = Env { dir: dir.clone(), path };
    let curl = has_curl();

    let mut servers = Servers(Vec::new());
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, block) in blocks.iter().enumerate() {
        // Leaving a section stops its servers.
        servers.0.retain_mut(|(section, _, child)| {
            if *section != block.section {
                stop_group(child);
                false
            } else {
                true
            }
        });
        if block.mode == Mode::Skip {
            continue;
        }
        if !curl && block.script.contains("curl ") {
            eprintln!("README.md:{}: skipped, curl is not installed", block.line);
            continue;
        }
        let log = dir.join(format!("block-{i}-line-{}.log", block.line));
        match block.mode {
            Mode::Server => {
                let addrs = listen_addrs(&block.script);
                assert!(
                    !addrs.is_empty(),
                    "README.md:{}: a server block needs a --listen ADDR to wait for",
                    block.line
                );
                for a in &addrs {
                    assert!(
                        TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err(),
                        "README.md:{}: {a} is already in use before the server starts",
                        block.line
                    );
                }
                let mut child = env.spawn(block, &log);
                let deadline = Instant::now() + SERVER_READY_LIMIT;
                let ready = loop {
                    if addrs
                        .iter()
                        .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
                    {
                        break true;
                    }
                    if Instant::now() > deadline || has_exited(&child) {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                if !ready {
                    stop_group(&mut child);
                    failures.push(format!(
                        "README.md:{}: server not listening on {addrs:?}\n{}",
                        block.line,
                        log_of(&log)
                    ));
                    continue;
                }
                ran += 1;
                servers.0.push((block.section, block.line, child));
            }
            Mode::Run { expect } => {
                let started = Instant::now();
                let mut child = env.spawn(block, &log);
                let finished = loop {
                    if has_exited(&child) {
                        break true;
                    }
                    if started.elapsed() > BLOCK_LIMIT {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                // The shell's exit status: stopping the group does not change it once the
                // shell has exited; after a timeout it is discarded.
                let status = stop_group(&mut child);
                let status = finished.then_some(status);
                ran += 1;
                eprintln!(
                    "README.md:{}: {:.1} s, {status:?}",
                    block.line,
                    started.elapsed().as_secs_f64()
                );
                match status {
                    None => failures.push(format!(
                        "README.md:{}: still running after {BLOCK_LIMIT:?}\n{}",
                        block.line,
                        log_of(&log)
                    )),
                    Some(s) if s.code() != Some(expect) => failures.push(format!(
                        "README.md:{}: exit {:?}, expected {expect}\n--- script:\n{}--- output:\n{}",
                        block.line,
                        s.code(),
                        block.script,
                        log_of(&log)
                    )),
                    Some(_) => {}
                }
            }
            Mode::Skip => unreachable!(),
        }
    }
    drop(servers);
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} README blocks failed (files kept in {}):\n\n{}",
        failures.len(),
        dir.display(),
        failures.join("\n\n")
    );
}

/// GitHub's anchor for a heading: lowercase, letters, digits, `-` and `_` kept, spaces to
/// `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
        } else if !fence && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `[text](target)` links outside code blocks and code spans.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        // Drop code spans so `a](b)` inside backticks is not read as a link.
        let mut plain = String::new();
        for (k, part) in line.split('`').enumerate() {
            if k % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(p) = rest.find("](") {
            let after = &rest[p + 2..];
            match after.find(')') {
                Some(end) => {
                    out.push((i + 1, after[..end].to_string()));
                    rest = &after[end..];
                }
                None => break,
            }
        }
    }
    out
}

#[test]
fn relative_links_name_existing_files_and_headings() {
    let mut files = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut dead = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                dead.push(format!("{shown}:{line}: `{target}`: no file {path}"));
                continue;
            }
            if let Some(a) = anchor {
                if resolved.extension().is_some_and(|x| x == "md") {
                    let heads = anchors(&std::fs::read_to_string(&resolved).unwrap());
                    if !heads.iter().any(|h| h == a) {
                        dead.push(format!("{shown}:{line}: `{target}`: no heading #{a}"));
                    }
                }
            }
        }
    }
    assert!(checked > 20, "too few links found ({checked}): is the parser broken?");
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn sh_block_parser_reads_the_annotations() {
    let text = "# t\n```sh\nchaosgate a\n```\n## s\n```sh server\nx --listen 127.0.0.1:9\n```\n  ```sh exit=18\n  cargo run --release -- b\n  ```\n```sh skip\nc\n```\n```text\nd\n```\n";
    let b = sh_blocks(text).unwrap();
    assert_eq!(b.len(), 4);
    assert_eq!(b[0].mode, Mode::Run { expect: 0 });
    assert_eq!(b[1].mode, Mode::Server);
    assert_eq!(b[1].section, b[2].section);
    assert_ne!(b[0].section, b[1].section);
    assert_eq!(b[2].mode, Mode::Run { expect: 18 });
    assert_eq!(b[2].script, "chaosgate b\n");
    assert_eq!(b[3].mode, Mode::Skip);
    assert_eq!(listen_addrs(&b[1].script), vec!["127.0.0.1:9".parse().unwrap()]);
    assert!(sh_blocks("```sh bogus\nx\n```\n").is_err());
    assert!(sh_blocks("```sh\nx\n").is_err());
}
