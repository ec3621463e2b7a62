//! Command-line interface: flags become a plan before any work starts.

use crate::provider::Api;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// chaosgate — chaos and failover simulation harness for LLM API gateways.
#[derive(Debug, Parser)]
#[command(name = "chaosgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve mock LLM providers that fail on a seeded, scripted timeline.
    Mock(MockArgs),
}

/// `chaosgate mock`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["api", "scenario"]).required(true)))]
pub struct MockArgs {
    /// Wire format of a single mock provider.
    #[arg(long, value_parser = parse_api)]
    pub api: Option<Api>,
    /// Address to listen on (single provider). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9001", requires = "api")]
    pub listen: String,
    /// Fault profile (TOML). Without one the mock is a healthy pass-through.
    #[arg(long, requires = "api")]
    pub profile: Option<PathBuf>,
    /// Provider name, shown in headers, logs and metrics (default: the api name).
    #[arg(long, requires = "api")]
    pub name: Option<String>,
    /// Serve every [providers.<name>] of a scenario file from this one process.
    #[arg(long, conflicts_with_all = ["api", "profile", "name"])]
    pub scenario: Option<PathBuf>,
    /// Run seed (default: the scenario's, else random; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ignore the per-request `x-chaosgate-fault` header.
    #[arg(long)]
    pub no_fault_header: bool,
    /// Serve the admin API (/_chaosgate/) to non-loopback peers too.
    #[arg(long)]
    pub admin_any_peer: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = crate::mock::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

fn parse_api(s: &str) -> Result<Api, String> {
    s.parse()
}

/// A fresh seed from the OS (printed so the run can be reproduced).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish() % 1_000_000_000
}
