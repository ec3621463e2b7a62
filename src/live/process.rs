//! External gateway processes: the config and every template field rendered
//! ([`prepare`], templates in [`crate::scenario::external`]), the process started in its own
//! group and supervised, and stopped cleanly.
//!
//! - **Process**: its own process group, stdout and stderr to `gateway.log` in the run
//!   directory; on Linux it is also killed if chaosgate itself dies. Readiness: `GET
//!   ready_url` until any status below 500 (or the process exits, or `ready_timeout`).
//! - **Stop**: `stop_signal` to the whole group, `stop_grace` to exit, then SIGKILL to the
//!   group — on success, failure, Ctrl-C and SIGTERM alike, so nothing is left behind.

use crate::scenario::external::{render, signal_number, template_env, ExternalSpec, ProviderVars};
use crate::time::Dur;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Prepared {
    /// Program.
    pub program: PathBuf,
    /// Rendered arguments.
    pub args: Vec<String>,
    /// Rendered environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: PathBuf,
    /// Readiness URL.
    pub ready_url: String,
    /// Traffic base URL.
    pub base_url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Log file.
    pub log_path: PathBuf,
    /// Notes (rounding of scaled values).
    pub notes: Vec<String>,
}

/// Which replica of the gateway is being prepared, and the run's shared services.
#[derive(Clone, Debug, Default)]
pub struct ReplicaVars {
    /// This replica (0-based).
    pub index: u32,
    /// Replicas in all (`[gateway] replicas`).
    pub of: u32,
    /// The run's Redis (`[gateway] redis = true`).
    pub redis: Option<RedisVars>,
}

/// A Redis server as the templates see it (`redis.host`, `redis.port`, `redis.url`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RedisVars {
    /// `127.0.0.1`
    pub host: String,
    /// Port.
    pub port: u16,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
}

/// Where replica `k` of `n` keeps its files: the run directory itself when the gateway
/// runs alone, else its own `replica-k` directory in it (config, log, `run_dir`).
pub fn replica_dir(run_dir: &Path, k: u32, n: u32) -> PathBuf {
    if n <= 1 {
        run_dir.to_path_buf()
    } else {
        run_dir.join(format!("replica-{k}"))
    }
}

/// Renders the config and every template field, for replica `replica.index` (its files in
/// `run_dir`: see [`replica_dir`]).
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    spec: &ExternalSpec,
    scenario_dir: &Path,
    run_dir: &Path,
    port: u16,
    providers: &BTreeMap<String, ProviderVars>,
    seed: u64,
    time_scale: f64,
    replica: &ReplicaVars,
) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(run_dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", run_dir.display()))?;
    let notes = Arc::new(Mutex::new(Vec::new()));
    let env = template_env(notes.clone());
    let values = serde_json::to_value(&spec.values)?;
    let config_path = spec.config_template.as_ref().map(|t| {
        let name = spec.config_name.clone().unwrap_or_else(|| {
            let n = t
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "gateway.conf".into());
            n.strip_suffix(".j2").map(str::to_string).unwrap_or(n)
        });
        run_dir.join(name)
    });
    let mut ctx = serde_json::json!({
        "providers": providers,
        "gateway": {
            "port": port,
            "replica": replica.index,
            "replicas": replica.of.max(1),
            "redis": replica.redis.is_some(),
        },
        "values": values,
        "config_path": config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "run_dir": run_dir.display().to_string(),
        "seed": seed,
        "time_scale": time_scale,
    });
    if let Some(r) = &replica.redis {
        ctx["redis"] = serde_json::to_value(r)?;
    }
    if let (Some(t), Some(out)) = (&spec.config_template, &config_path) {
        let tpath = scenario_dir.join(t);
        let src = std::fs::read_to_string(&tpath)
            .map_err(|e| anyhow::anyhow!("gateway.config_template {}: cannot read: {e}", tpath.display()))?;
        let text = render(&env, &tpath.display().to_string(), &src, &ctx)?;
        std::fs::write(out, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    }
    let r = |what: &str, t: &str| render(&env, what, t, &ctx);
    let args = spec
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| r(&format!("gateway.args[{i}]"), a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let envs = spec
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), r(&format!("gateway.env.{k}"), v)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let headers = spec
        .request_headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), r(&format!("gateway.request_headers.{k}"), v)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ready_url = r("gateway.ready_url", &spec.ready_url)?;
    let base_url = r(
        "gateway.base_url",
        spec.base_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:{{ gateway.port }}"),
    )?;
    let program = if spec.command.contains('/') {
        let p = scenario_dir.join(&spec.command);
        if p.exists() {
            // absolute: the child starts in `workdir`, where a relative path means something else
            std::path::absolute(&p).unwrap_or(p)
        } else {
            PathBuf::from(&spec.command)
        }
    } else {
        PathBuf::from(&spec.command)
    };
    let workdir = spec
        .workdir
        .as_ref()
        .map(|w| scenario_dir.join(w))
        .unwrap_or_else(|| run_dir.to_path_buf());
    let notes = notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Prepared {
        program,
        args,
        env: envs,
        workdir,
        ready_url,
        base_url,
        headers,
        log_path: run_dir.join("gateway.log"),
        notes,
    })
}

/// A running external gateway.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    pgid: i32,
    stop_signal: i32,
    stop_grace: Dur,
    /// Log file.
    pub log_path: PathBuf,
    stopped: bool,
}

/// Starts the gateway in its own process group, output to its log.
pub fn start(p: &Prepared, spec: &ExternalSpec) -> anyhow::Result<Running> {
    start_program(
        p,
        "the gateway",
        signal_number(&spec.stop_signal).unwrap_or(libc::SIGTERM),
        spec.stop_grace,
        " (not installed? scripts/interop-setup installs the gateways chaosgate ships configs for)",
    )
}

/// Starts `p.program` (`what`, in errors) in its own process group, output to its log;
/// `missing` is added to the error when the program is not found.
pub fn start_program(
    p: &Prepared,
    what: &str,
    stop_signal: i32,
    stop_grace: Dur,
    missing: &str,
) -> anyhow::Result<Running> {
    let log = std::fs::File::create(&p.log_path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.log_path.display()))?;
    let log2 = log.try_clone()?;
    let mut cmd = tokio::process::Command::new(&p.program);
    cmd.args(&p.args)
        .envs(p.env.iter().cloned())
        .current_dir(&p.workdir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        anyhow::anyhow!(
            "cannot start {what} `{}`: {e}{}",
            p.program.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                missing
            } else {
                ""
            }
        )
    })?;
    let pgid = child.id().map(|i| i as i32).unwrap_or(0);
    Ok(Running {
        child,
        pgid,
        stop_signal,
        stop_grace,
        log_path: p.log_path.clone(),
        stopped: false,
    })
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `url` with GET until it answers below 500 or `timeout` passes; `gone` is asked
/// before each try and ends the wait with its error (a process that exited). Returns how
/// long it took.
pub async fn poll_ready(
    url: &str,
    timeout: Dur,
    mut gone: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<std::time::Duration> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout.to_std();
    let client = crate::live::load::plain_client();
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("gateway.ready_url {url:?} is not a URL: {e}"))?;
    loop {
        gone()?;
        let req = hyper::Request::get(uri.clone())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("valid request");
        if let Ok(Ok(resp)) = tokio::time::timeout(std::time::Duration::from_secs(2), client.request(req)).await {
            if resp.status().as_u16() < 500 {
                return Ok(started.elapsed());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the gateway was not ready at {url} after {timeout}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

impl Running {
    /// An error if the process has exited.
    pub fn exited(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => Err(anyhow::anyhow!("it exited ({status})")),
            None => Ok(()),
        }
    }

    /// Waits until `url` answers below 500, the process exits, or `timeout` passes.
    pub async fn wait_ready(&mut self, url: &str, timeout: Dur) -> anyhow::Result<std::time::Duration> {
        let log = self.log_path.clone();
        let child = &mut self.child;
        poll_ready(url, timeout, || match child.try_wait()? {
            Some(status) => Err(anyhow::anyhow!("the gateway exited ({status}) before it was ready")),
            None => Ok(()),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}; last lines of {}:\n{}", log.display(), tail(&log, 15)))
    }

    /// Signals the group, waits the grace period, then kills the group.
    pub async fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.pgid > 0 {
            // SAFETY: plain syscall on our own child's process group.
            unsafe {
                libc::killpg(self.pgid, self.stop_signal);
            }
        }
        let _ = tokio::time::timeout(self.stop_grace.to_std(), self.child.wait()).await;
        if self.pgid > 0 {
            // SAFETY: as above; ESRCH when the group is already gone is fine.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait().await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.stopped && self.pgid > 0 {
            // SAFETY: as above. Last resort when a run is abandoned without `stop`.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }
}
