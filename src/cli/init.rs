//! `chaosgate init GATEWAY [DIR]`: a ready-to-run directory for testing a gateway — the
//! scenario, the gateway's config template, the knobs worth sweeping and the known gotchas
//! (as comments), and the one command that runs it. The files are the shipped examples
//! (`examples/gateways/<name>/`, built into the binary), so what `init` writes is what the
//! interop suite runs against the real gateways.

use std::path::{Path, PathBuf};

/// The gateways `init` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitGateway {
    /// LiteLLM proxy (pip install 'litellm[proxy]', or scripts/interop-setup litellm).
    Litellm,
    /// Portkey AI gateway (npx @portkey-ai/gateway, or scripts/interop-setup portkey).
    Portkey,
    /// HAProxy.
    Haproxy,
    /// nginx.
    Nginx,
    /// Caddy.
    Caddy,
    /// TensorZero gateway (its Docker image's gateway binary, or scripts/interop-setup tensorzero).
    Tensorzero,
    /// chaosgate's own reference gateway, as an external process.
    Chaosgate,
    /// A gateway you start yourself (docker-compose, Kubernetes, staging).
    Running,
}

/// `chaosgate init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Which gateway.
    #[arg(value_enum)]
    pub gateway: InitGateway,
    /// Directory to create (default: chaosgate-<gateway>); must not exist or be empty.
    pub dir: Option<PathBuf>,
}

/// One file of a scaffold: its name and contents.
type File = (&'static str, &'static str);

/// A scaffold: its files, how to install the gateway, a sweep worth running, the gotchas.
struct Scaffold {
    files: &'static [File],
    /// The scenario's `command`, as the example writes it, and what a user's copy says.
    command: Option<(&'static str, &'static str)>,
    install: &'static str,
    /// The `time_scale` worth running at: `None` for real time (a gateway whose own
    /// accounting chaosgate cannot scale; a scaled run of it is marked UNRELIABLE).
    time_scale: Option<&'static str>,
    sweep: &'static str,
    gotchas: &'static [&'static str],
}

macro_rules! ex {
    ($g:literal, $f:literal) => {
        ($f, include_str!(concat!("../../examples/gateways/", $g, "/", $f)))
    };
}

fn scaffold(g: InitGateway) -> Scaffold {
    match g {
        InitGateway::Litellm => Scaffold {
            files: &[ex!("litellm", "scenario.toml"), ex!("litellm", "config.yaml.j2")],
            command: Some((
                "\"../../../.interop/bin/litellm\"        # written by scripts/interop-setup",
                "\"litellm\"        # on PATH (pip install 'litellm[proxy]'), or a path relative to this file",
            )),
            install: "pip install 'litellm[proxy]'   (or, in the chaosgate repository: bash scripts/interop-setup litellm)",
            time_scale: None,
            sweep: "--sweep gateway.values.cooldown_time=5s,10s,30s",
            gotchas: &[
                "LiteLLM re-sends a failed call to the next `order` unless max_fallbacks = 0, and retries it num_retries times: the scenario then measures its retries, not its routing.",
                "Start it with --keepalive_timeout 120 (the template does): uvicorn's 5 s default closes pooled connections under the client and shows up as spurious `reset` failures.",
                "Run it in real time (≈ 2.5 min a point): LiteLLM counts allowed_fails per wall-clock minute and takes whole seconds, so under time_scale its accounting is not the scenario's and every point is marked UNRELIABLE.",
            ],
        },
        InitGateway::Portkey => Scaffold {
            files: &[ex!("portkey", "scenario.toml")],
            command: Some((
                "\"../../../.interop/bin/portkey-gateway\"   # written by scripts/interop-setup",
                "\"portkey-gateway\"   # on PATH (a wrapper for `npx @portkey-ai/gateway`), or a path relative to this file",
            )),
            install: "npm install -g @portkey-ai/gateway   (or, in the chaosgate repository: bash scripts/interop-setup portkey)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.retry_attempts=0,1,2",
            gotchas: &[
                "Portkey has no health checks and no breaker: every request tries the failing target first; its routing config travels in the x-portkey-config header (request_headers).",
                "A stream that is cut after its first bytes is returned to the client as a truncated 200.",
            ],
        },
        InitGateway::Haproxy => Scaffold {
            files: &[ex!("haproxy", "scenario.toml"), ex!("haproxy", "haproxy.cfg.j2")],
            command: None,
            install: "apt-get install haproxy   (or: bash scripts/interop-setup haproxy)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.health_interval=1s,2s,5s --sweep gateway.values.fall=1,3",
            gotchas: &[
                "Active checks (GET /health) only: a provider answering 502 to completions while /health says 200 (a grey failure) is never taken out unless observe = true.",
                "retry_on never includes 429 here: HAProxy would retry a rate-limited request at once.",
            ],
        },
        InitGateway::Nginx => Scaffold {
            files: &[ex!("nginx", "scenario.toml"), ex!("nginx", "nginx.conf.j2")],
            command: None,
            install: "apt-get install nginx   (or: bash scripts/interop-setup nginx)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.max_fails=1,3 --sweep gateway.values.fail_timeout=5s,10s,30s",
            gotchas: &[
                "Passive only: with next_upstream_tries = 1 (no retry) a 502 is never counted as a failure, so the server is never taken out.",
                "fail_timeout is both the counting window and how long a server stays out.",
            ],
        },
        InitGateway::Caddy => Scaffold {
            files: &[ex!("caddy", "scenario.toml"), ex!("caddy", "Caddyfile.j2")],
            command: None,
            install: "apt-get install caddy   (or: bash scripts/interop-setup caddy)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.health_interval=1s,2s,5s",
            gotchas: &[
                "Passive health is off unless fail_duration > 0; retries (try_duration) are off at 0s.",
                "Active checks are GET /health: a grey failure (502 with /health 200) passes them.",
            ],
        },
        InitGateway::Tensorzero => Scaffold {
            files: &[ex!("tensorzero", "scenario.toml"), ex!("tensorzero", "tensorzero.toml.j2")],
            command: Some((
                "\"../../../.interop/bin/tensorzero-gateway\"   # written by scripts/interop-setup",
                "\"gateway\"   # TensorZero's gateway binary on PATH (as in its Docker image), or a path relative to this file",
            )),
            install: "TensorZero's gateway binary (Docker image tensorzero/gateway)   (or, in the chaosgate repository: bash scripts/interop-setup tensorzero)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.num_retries=0,1,2",
            gotchas: &[
                "TensorZero keeps no health state: every request tries the failing provider first, then the next one in `routing`; the primary never stops receiving traffic.",
                "Its OpenAI-compatible endpoint wants the model named tensorzero::function_name::chat (traffic.model); a plain gpt-4o is a 400.",
                "It rebuilds every answer (its own ids, no provider headers): only error bodies name the provider, so successful requests stay unattributed.",
            ],
        },
        InitGateway::Chaosgate => Scaffold {
            files: &[ex!("chaosgate", "scenario.toml"), ex!("chaosgate", "gateway.toml.j2")],
            command: None,
            install: "nothing: chaosgate itself (cargo install --locked --path . in its repository)",
            time_scale: Some("0.1"),
            sweep: "--sweep gateway.values.health_interval=2s,5s,30s",
            gotchas: &["fallback_on_failure = false measures the health checks alone; true hides each failure behind a fallback."],
        },
        InitGateway::Running => Scaffold {
            files: &[
                ex!("running", "scenario.toml"),
                ex!("running", "docker-compose.yml"),
                ex!("running", "litellm.yaml"),
            ],
            command: None,
            install: "your own: start the gateway (e.g. docker compose -f docker-compose.yml up -d) with its upstreams at the URLs chaosgate prints",
            time_scale: None,
            sweep: "(sweep your gateway's own settings between runs: chaosgate does not configure a running gateway)",
            gotchas: &[
                "The providers need fixed ports (port = 9001, 9002): your gateway's config names them.",
                "time_scale does not reach your gateway's own intervals: run at time_scale = 1, or scale its config by hand.",
            ],
        },
    }
}

/// `chaosgate init`: writes the scaffold, prints what to do next.
pub fn init(a: InitArgs) -> anyhow::Result<u8> {
    let name = format!("{:?}", a.gateway).to_lowercase();
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(format!("chaosgate-{name}")));
    let written = write(a.gateway, &dir)?;
    let sc = scaffold(a.gateway);
    println!("chaosgate init: wrote {} files to {}", written.len(), dir.display());
    for f in &written {
        println!("  {}", f.display());
    }
    println!("\nnext:\n  1. install the gateway: {}", sc.install);
    println!(
        "  2. read the comments in {} (the knobs are under [gateway.values])",
        dir.join("scenario.toml").display()
    );
    println!("  3. run it:   {}", run_command(&dir, a.gateway));
    println!("  4. sweep:    {} {}", run_command(&dir, a.gateway), sc.sweep);
    Ok(0)
}

fn run_command(dir: &Path, g: InitGateway) -> String {
    let sc = dir.join("scenario.toml");
    match scaffold(g).time_scale {
        None => format!("chaosgate run {}", sc.display()),
        Some(k) => format!("chaosgate run {} --set time_scale={k}", sc.display()),
    }
}

/// Writes `g`'s scaffold into `dir` (created; refused if it holds anything) and returns the
/// paths written.
pub fn write(g: InitGateway, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            anyhow::bail!("{} exists and is not empty: give another directory", dir.display());
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let sc = scaffold(g);
    let mut out = Vec::new();
    for (name, text) in sc.files {
        let mut text = text.to_string();
        if *name == "scenario.toml" {
            text = scenario_text(&text, &sc, dir, g)?;
        }
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        out.push(p);
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, readme_text(&sc, dir, g))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", readme.display()))?;
    out.push(readme);
    Ok(out)
}

/// The example's scenario, with its header saying how to run this copy, the gotchas
/// listed, and the command pointing at a program on PATH instead of the repository's
/// install directory.
fn scenario_text(example: &str, sc: &Scaffold, dir: &Path, g: InitGateway) -> anyhow::Result<String> {
    let mut text = example.to_string();
    if let Some((from, to)) = sc.command {
        anyhow::ensure!(
            text.contains(from),
            "the shipped example's command line changed: {from}"
        );
        text = text.replace(from, to);
    }
    // the example's first lines say how to run it from the repository
    let body: String = text
        .lines()
        .filter(|l| !(l.starts_with("# Run:") || l.starts_with("# (install first") || l.starts_with("# (after")))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut head = format!(
        "# Run: {}\n# Install the gateway first: {}\n#\n# Gotchas:\n",
        run_command(dir, g),
        sc.install
    );
    for x in sc.gotchas {
        head.push_str(&format!("# - {x}\n"));
    }
    head.push_str(&format!("# Worth sweeping: {}\n", sc.sweep));
    Ok(head + &body)
}

fn readme_text(sc: &Scaffold, dir: &Path, g: InitGateway) -> String {
    let mut s = format!(
        "# Testing {g:?} with chaosgate\n\nWritten by `chaosgate init`. The scenario (`scenario.toml`) starts two mock providers — the primary fails for a while, then recovers — and sends traffic through the gateway; the report says how long the gateway took to notice, how many requests failed and how much error budget that burned.\n\n1. Install the gateway: {}\n2. Run:\n\n   ```sh\n   {}\n   ```\n\n3. Sweep the knobs under `[gateway.values]`:\n\n   ```sh\n   {} {}\n   ```\n\nGotchas:\n\n",
        sc.install,
        run_command(dir, g),
        run_command(dir, g),
        sc.sweep
    );
    for x in sc.gotchas {
        s.push_str(&format!("- {x}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scaffold is a scenario chaosgate loads as written (templates found, command
    /// rewritten where the example used the repository's install directory).
    #[test]
    fn every_scaffold_loads() {
        for g in [
            InitGateway::Litellm,
            InitGateway::Portkey,
            InitGateway::Haproxy,
            InitGateway::Nginx,
            InitGateway::Caddy,
            InitGateway::Tensorzero,
            InitGateway::Chaosgate,
            InitGateway::Running,
        ] {
            let dir = std::env::temp_dir().join(format!("chaosgate-init-{g:?}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let files = write(g, &dir).unwrap();
            assert!(files.iter().all(|f| f.exists()));
            let s = crate::scenario::load(&dir.join("scenario.toml"), &[])
                .unwrap_or_else(|e| panic!("{g:?}: {e}"))
                .points
                .remove(0)
                .scenario;
            assert!(!s.providers.is_empty());
            let text = std::fs::read_to_string(dir.join("scenario.toml")).unwrap();
            assert!(text.starts_with("# Run: chaosgate run "), "{text}");
            assert_eq!(
                text.matches("# Run:").count(),
                1,
                "{g:?}: the example's own run line is gone"
            );
            assert!(
                !text.lines().any(|l| l.starts_with("command") && l.contains(".interop")),
                "{g:?}: the repository's install path leaked"
            );
            // a second init into the same directory is refused, naming it
            let e = write(g, &dir).unwrap_err().to_string();
            assert!(e.contains("exists and is not empty"), "{e}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
