//! # chaosgate
//!
//! A chaos and failover simulation harness for LLM API gateways: mock providers that fail
//! like real ones, traffic through the gateway under test, and detection time, failed
//! requests, failback and error-budget burn per setting — live, or in a virtual-time
//! simulator that runs the same core. The README has the tour; docs/architecture.md the
//! layers, which are the modules below, one per folder:
//!
//! | layer | modules |
//! | --- | --- |
//! | vocabulary | [`time`], [`rng`], [`diag`], [`record`] |
//! | the pure core | [`provider`] (wire formats), [`fault`] (fault model), [`traffic`], [`gateway`] (policy only), [`scenario`] (config assembly), [`analysis`] (records → numbers), [`profiles`] |
//! | the two drivers | [`sim`] (virtual time), [`live`] (mock, load client, proxy, processes) |
//! | the edges | [`run`] (sweeps × repeats), [`report`] (renderers), [`cli`] |
//!
//! The core never imports a driver (tests/layers.rs) and reads no clock, global RNG,
//! socket or file (clippy.toml). Simulating a scenario from a program:
//!
//! ```
//! let src = r#"
//! [providers.primary]
//! api = "openai"
//! [[providers.primary.phase]]
//! name = "outage"
//! start = "10s"
//! duration = "20s"
//! errors = [{ status = 502 }]
//! [providers.fallback]
//! api = "openai"
//! [gateway]
//! targets = ["primary", "fallback"]
//! health_check = { interval = "5s", timeout = "1s", unhealthy_threshold = 1, healthy_threshold = 1 }
//! fallback_on_failure = false
//! [traffic]
//! rate = 50.0
//! arrival = "constant"
//! duration = "60s"
//! "#;
//! let set = chaosgate::load_str("example.toml", src, std::path::Path::new("."), &[]).unwrap();
//! let opts = chaosgate::RunOptions::new(std::env::temp_dir());
//! let sweep = chaosgate::simulate(&set, &opts).unwrap();
//! let fault = &sweep.points[0].report.resilience.faults[0];
//! // probes every 5 s, N = 1: the gateway notices within one interval plus the probe time
//! assert!(fault.detection_gateway_s.unwrap() <= 6.0);
//! ```

pub mod analysis;
pub mod cli;
pub mod diag;
pub mod fault;
pub mod gateway;
pub mod live;
pub mod profiles;
pub mod provider;
pub mod record;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod suite;
pub mod time;
pub mod traffic;

pub use analysis::results::{RunReport, SweepReport};
pub use run::{run_live, simulate, RunOptions};
pub use scenario::{load, load_str, Scenario, ScenarioSet};
