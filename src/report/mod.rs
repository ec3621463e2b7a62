//! Every renderer of a report: terminal text ([`text`]), JSON ([`write_json`], described by
//! `schema/load-report.schema.json` for `chaosgate load`), Locust-compatible CSV
//! ([`locust`]), an HdrHistogram interval log ([`hlog`]), JUnit XML ([`junit`]), SVG
//! charts ([`chart`]) and Prometheus burn-rate rules ([`promrules`]).

// A driver: renderers write files and stamp wall-clock times (clippy.toml denies it in the core).
#![allow(clippy::disallowed_methods)]

pub mod chart;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod locust;
pub mod promrules;
pub mod text;

use std::path::Path;

/// Writes pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(value)?;
    std::fs::write(path, s + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
