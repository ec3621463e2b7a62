//! # chaosgate
//!
//! A chaos and failover simulation harness for LLM API gateways. See the README for the
//! tour and docs/architecture.md for the layers.

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
pub mod time;
pub mod traffic;
