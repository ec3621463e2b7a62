//! # chaosgate
//!
//! A chaos and failover simulation harness for LLM API gateways. See the README for the
//! tour; this crate guide names the parts:
//!
//! - [`fault`] — the provider fault model (pure: `now` and a seeded stream in, a verdict out);
//! - [`provider`] — OpenAI and Anthropic wire formats (bodies, SSE events, error envelopes);
//! - [`mock`] — the mock provider server that executes fault verdicts over HTTP;
//! - [`promtext`] — Prometheus text exposition, shared by every `/metrics` endpoint;
//! - [`time`], [`rng`], [`diag`] — integer-nanosecond time, labelled seeded streams,
//!   configuration diagnostics with file and line.

pub mod analysis;
pub mod assert;
pub mod cli;
pub mod commands;
pub mod cost;
pub mod diag;
pub mod external;
pub mod fault;
pub mod gateway;
pub mod limits;
pub mod load;
pub mod mock;
pub mod net;
pub mod platform;
pub mod promtext;
pub mod provider;
pub mod record;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod time;
pub mod traffic;
