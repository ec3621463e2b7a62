//! A Redis server for a run (`[gateway] redis = true`): the shared state of an external
//! gateway's replicas (LiteLLM's cooldowns, rate limits). `redis-server` (the Debian
//! package; `bash scripts/interop-setup redis`) on a free loopback port with persistence
//! off, its output in `redis.log` in the run directory; ready when it answers `PING`;
//! stopped (SIGTERM, then SIGKILL to its group) after the run, as a gateway process is.

use crate::live::process::{self, Prepared, RedisVars, Running};
use crate::time::Dur;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `redis-server` may take to answer `PING`.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The command that installs it.
pub const SETUP: &str = "bash scripts/interop-setup redis";

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    /// Its process.
    pub running: Running,
    /// What the templates see.
    pub vars: RedisVars,
}

/// `redis-server` on PATH, else in the places the Debian package puts it.
fn program() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("redis-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(
            [
                "/usr/bin/redis-server",
                "/usr/sbin/redis-server",
                "/usr/local/bin/redis-server",
            ]
            .map(Into::into),
        )
        .find(|p: &std::path::PathBuf| p.is_file())
}

/// Whether `redis-server` is installed (tests skip without it).
pub fn installed() -> bool {
    program().is_some()
}

/// Starts `redis-server` for the run in `run_dir` and waits until it answers `PING`.
pub async fn start(run_dir: &Path) -> anyhow::Result<Redis> {
    let program = program().ok_or_else(|| {
        anyhow::anyhow!(
            "[gateway] redis = true needs `redis-server`, which is not installed (not on PATH nor in /usr/bin): install it with `{SETUP}` (the Debian package redis-server)"
        )
    })?;
    let port = crate::live::net::free_port()?;
    let p = Prepared {
        program,
        args: [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
        .map(str::to_string)
        .to_vec(),
        env: Vec::new(),
        workdir: run_dir.to_path_buf(),
        ready_url: String::new(),
        base_url: String::new(),
        headers: Vec::new(),
        log_path: run_dir.join("redis.log"),
        notes: Vec::new(),
    };
    let mut running = process::start_program(
        &p,
        "redis-server",
        libc::SIGTERM,
        Dur::from_secs(5),
        &format!(" (install it with `{SETUP}`)"),
    )?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Err(e) = running.exited() {
            running.stop().await;
            anyhow::bail!(
                "redis-server on {addr}: {e} before it answered PING; last lines of {}:\n{}",
                p.log_path.display(),
                process::tail(&p.log_path, 15)
            );
        }
        if matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), ping(&addr)).await,
            Ok(Ok(true))
        ) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            running.stop().await;
            anyhow::bail!(
                "redis-server on {addr} did not answer PING within {} s; last lines of {}:\n{}",
                READY_TIMEOUT.as_secs(),
                p.log_path.display(),
                process::tail(&p.log_path, 15)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(Redis {
        running,
        vars: RedisVars {
            host: "127.0.0.1".into(),
            port,
            url: format!("redis://127.0.0.1:{port}"),
        },
    })
}

/// Sends `PING` to the Redis at `addr`; whether it answered `+PONG`.
pub async fn ping(addr: &str) -> std::io::Result<bool> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"PING\r\n").await?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    // "+PONG\r\n" may come in pieces; at most 64 bytes are read
    while got < buf.len() {
        let n = s.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].ends_with(b"\r\n") {
            break;
        }
    }
    Ok(&buf[..got] == b"+PONG\r\n")
}
