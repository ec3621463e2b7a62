//! The external-gateway spec (`[gateway]` with `kind = "external"`) and its templates: a
//! real gateway (LiteLLM, Portkey, HAProxy, nginx, your own) launched as a process with a
//! config rendered from the scenario. The live driver (`live/process.rs`) prepares,
//! starts, supervises and stops it.
//!
//! - **Config**: `config_template` is rendered with [minijinja] (Jinja syntax) into the run
//!   directory. Variables: `providers.<name>.{url,host,port,api}`, `gateway.port`,
//!   `values.<name>` (`[gateway.values]`, after `--set`, the sweep and `time_scale`),
//!   `config_path`, `run_dir`, `seed`, `time_scale`. Duration values render as humantime
//!   strings (`5s`); filters `secs` (whole seconds, at least 1: LiteLLM wants an integer),
//!   `ms` (whole milliseconds) and `secs_f` (fractional seconds) convert them. `args`,
//!   `env`, `ready_url`, `base_url` and `request_headers` are rendered the same way.

use crate::time::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn d_ready_timeout() -> Dur {
    Dur::from_secs(60)
}
fn d_stop_signal() -> String {
    "SIGTERM".into()
}
fn d_stop_grace() -> Dur {
    Dur::from_secs(10)
}
fn d_replicas() -> u32 {
    1
}

/// `[gateway]` with `kind = "external"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// Program: looked up on PATH, or a path relative to the scenario file.
    pub command: String,
    /// Arguments (templates).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the scenario file (default: the run directory).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Config template, relative to the scenario file.
    #[serde(default)]
    pub config_template: Option<PathBuf>,
    /// File name of the rendered config (default: the template's name without `.j2`).
    #[serde(default)]
    pub config_name: Option<String>,
    /// Port the gateway listens on; absent or 0 = a free port chosen by chaosgate.
    #[serde(default)]
    pub port: Option<u16>,
    /// Polled with GET until it answers below 500 (template).
    pub ready_url: String,
    /// How long to wait for readiness.
    #[serde(default = "d_ready_timeout")]
    pub ready_timeout: Dur,
    /// Where traffic goes (template; default `http://127.0.0.1:{{ gateway.port }}`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Headers added to every traffic request (values are templates).
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// API key sent with traffic (`Authorization: Bearer`, `x-api-key`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Signal that asks the gateway to stop (`SIGTERM`, `SIGINT`, `SIGQUIT`, `SIGHUP`, `SIGUSR1`).
    #[serde(default = "d_stop_signal")]
    pub stop_signal: String,
    /// Time between the stop signal and SIGKILL.
    #[serde(default = "d_stop_grace")]
    pub stop_grace: Dur,
    /// What `time_scale` cannot shrink in this gateway (free text; reported as warnings).
    #[serde(default)]
    pub not_scaled: Vec<String>,
    /// Scenario values for the templates (`values.<name>`); sweeps and `--set` address them
    /// as `gateway.values.<name>`.
    #[serde(default)]
    pub values: toml::Table,
    /// Instances of the gateway, each rendered with its own port (`gateway.port`,
    /// `gateway.replica`, `gateway.replicas`) and its own config file, behind the client's
    /// round robin (default 1, at most 16).
    #[serde(default = "d_replicas")]
    pub replicas: u32,
    /// Start a `redis-server` on a free loopback port for the run (persistence off), for
    /// the replicas' shared state: templates get `redis.host`, `redis.port`, `redis.url`.
    #[serde(default)]
    pub redis: bool,
}

/// `[gateway]` with `kind = "running"`: a gateway chaosgate does not start (docker-compose,
/// Kubernetes, staging). chaosgate binds the mocks where the providers' `listen` / `port`
/// say, prints their URLs for the gateway's config, waits until `ready_url` answers and
/// sends the traffic to `base_url`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningSpec {
    /// Where traffic goes, e.g. `http://127.0.0.1:4000`.
    pub base_url: String,
    /// Polled with GET until it answers below 500 (default: `base_url`).
    #[serde(default)]
    pub ready_url: Option<String>,
    /// How long to wait for readiness.
    #[serde(default = "d_ready_timeout")]
    pub ready_timeout: Dur,
    /// Headers added to every traffic request.
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// API key sent with traffic (`Authorization: Bearer`, `x-api-key`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// What `time_scale` cannot shrink in this gateway (reported as warnings; a running
    /// gateway's own intervals are never scaled).
    #[serde(default)]
    pub not_scaled: Vec<String>,
}

impl RunningSpec {
    /// Problems, at their keys in the `[gateway]` table.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        for (k, u) in [
            ("base_url", Some(&self.base_url)),
            ("ready_url", self.ready_url.as_ref()),
        ] {
            let Some(u) = u else { continue };
            match u.parse::<hyper::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
                _ => v.push((
                    key(k),
                    format!("expected an http:// URL with a host, like \"http://127.0.0.1:4000\", got {u:?}"),
                )),
            }
        }
        if self.ready_timeout.0 == 0 {
            v.push((key("ready_timeout"), "must be longer than 0s".into()));
        }
        v
    }

    /// Where readiness is polled.
    pub fn ready_url(&self) -> &str {
        self.ready_url.as_deref().unwrap_or(&self.base_url)
    }
}

/// The signal number of a name.
pub fn signal_number(name: &str) -> Option<i32> {
    Some(match name.trim().trim_start_matches("SIG") {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "HUP" => libc::SIGHUP,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "KILL" => libc::SIGKILL,
        _ => return None,
    })
}

impl ExternalSpec {
    /// Problems, each at its key in `[gateway]`.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        if self.command.trim().is_empty() {
            v.push((key("command"), "must name a program".into()));
        }
        if signal_number(&self.stop_signal).is_none() {
            v.push((
                key("stop_signal"),
                format!(
                    "unknown signal {:?} (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL)",
                    self.stop_signal
                ),
            ));
        }
        if self.ready_timeout.0 == 0 {
            v.push((key("ready_timeout"), "must be longer than 0s".into()));
        }
        if let Some(m) = crate::gateway::replicas_problem(self.replicas) {
            v.push((key("replicas"), m));
        }
        if self.replicas > 1 && self.port.is_some_and(|p| p != 0) {
            v.push((
                key("port"),
                format!(
                    "{} replicas cannot share one fixed port: leave `port` out (each replica gets a free one, `{{{{ gateway.port }}}}`)",
                    self.replicas
                ),
            ));
        }
        let env = template_env(Arc::default());
        let mut check = |at: crate::diag::Path, t: &str| {
            if let Err(e) = env.template_from_str(t) {
                v.push((at, format!("template error: {}", e.detail().unwrap_or("syntax error"))));
            }
        };
        check(key("ready_url"), &self.ready_url);
        if let Some(b) = &self.base_url {
            check(key("base_url"), b);
        }
        for (i, a) in self.args.iter().enumerate() {
            check(key("args").index(i), a);
        }
        for (k, x) in &self.env {
            check(key("env").key(k), x);
        }
        for (k, x) in &self.request_headers {
            check(key("request_headers").key(k), x);
        }
        v
    }
}

/// The template environment: strict undefined variables, the duration filters. Rounding
/// notes from `secs` / `ms` go to `notes`.
pub fn template_env(notes: Arc<Mutex<Vec<String>>>) -> minijinja::Environment<'static> {
    use minijinja::{Error, ErrorKind, Value};
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // config formats (TOML, YAML, JSON, HAProxy's) spell booleans in lowercase
    env.set_formatter(|out, state, value| {
        if value.kind() == minijinja::value::ValueKind::Bool {
            let b = value.is_true();
            out.write_str(if b { "true" } else { "false" })
                .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write"))
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    fn as_dur(v: &Value) -> Result<Dur, Error> {
        let s = v.to_string();
        s.parse::<Dur>()
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("not a duration: {e}")))
    }
    let n = notes.clone();
    env.add_filter("secs", move |v: Value| -> Result<u64, Error> {
        let d = as_dur(&v)?;
        let exact = d.secs_f64();
        let r = (exact.round() as u64).max(1);
        if (r as f64 - exact).abs() > 0.05 * exact {
            n.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                "{d} rendered as {r} whole seconds (the gateway takes integer seconds)"
            ));
        }
        Ok(r)
    });
    let n = notes;
    env.add_filter("ms", move |v: Value| -> Result<u64, Error> {
        let d = as_dur(&v)?;
        let exact = d.0 as f64 / 1e6;
        let r = exact.round() as u64;
        if (r as f64 - exact).abs() > 0.05 * exact {
            n.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{d} rendered as {r} ms"));
        }
        Ok(r)
    });
    env.add_filter("secs_f", |v: Value| -> Result<f64, Error> {
        Ok(as_dur(&v)?.secs_f64())
    });
    env
}

/// Renders one template string.
pub fn render(
    env: &minijinja::Environment<'_>,
    what: &str,
    t: &str,
    ctx: &serde_json::Value,
) -> anyhow::Result<String> {
    env.render_named_str(what, t, ctx).map_err(|e| {
        let mut m = format!("{what}: {e}");
        if let Some(d) = e.detail() {
            if !m.contains(d) {
                m.push_str(&format!(" ({d})"));
            }
        }
        anyhow::anyhow!(m)
    })
}

/// A provider as the templates see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProviderVars {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1`
    pub host: String,
    /// Port.
    pub port: u16,
    /// `openai` / `anthropic`.
    pub api: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_convert_durations_and_note_rounding() {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let env = template_env(notes.clone());
        let ctx = serde_json::json!({"values": {"i": "2s 500ms", "t": "300ms", "b": false}, "gateway": {"port": 4000}});
        let out = render(&env, "t", "{{ values.i | secs }} {{ values.i | ms }} {{ values.t | secs_f }} {{ values.i }} {{ gateway.port }} {{ values.b }}", &ctx).unwrap();
        assert_eq!(out, "3 2500 0.3 2s 500ms 4000 false");
        assert_eq!(notes.lock().unwrap().len(), 1, "2.5 s → 3 s is a 20 % change");
        let e = render(&env, "t", "{{ values.nope }}", &ctx).unwrap_err().to_string();
        assert!(e.contains("undefined"), "{e}");
        assert!(
            render(&env, "t", "{{ gateway.port | secs }}", &ctx).is_err(),
            "4000 is not a duration"
        );
    }

    #[test]
    fn problems_name_bad_signals_and_templates() {
        let s: ExternalSpec =
            toml::from_str("command = \"x\"\nready_url = \"http://{{ gateway.port \"\nstop_signal = \"SIGFOO\"\n")
                .unwrap();
        let p = s.problems();
        assert!(p.iter().any(|(k, _)| k.to_string() == "stop_signal"), "{p:?}");
        assert!(
            p.iter()
                .any(|(k, m)| k.to_string() == "ready_url" && m.contains("template")),
            "{p:?}"
        );
        assert!(toml::from_str::<ExternalSpec>("command = \"x\"\nready_url = \"u\"\nreadyurl = 1\n").is_err());
    }
}
