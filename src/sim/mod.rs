//! The virtual-time simulator: the same fault plans, gateway policy and traffic schedule
//! as live runs, driven by a discrete-event loop in integer nanoseconds. No tokio, no
//! sockets, no clock: a 30-minute incident takes milliseconds and the same seed gives the
//! same records, byte for byte.
//!
//! Events are ordered by `(time, sequence)`: ties at equal timestamps go in the order they
//! were scheduled. What the loop models, per request: the gateway plans an order of
//! targets; each attempt asks the target's fault [`Plan`] for a verdict; an error, reset or
//! timeout before the first byte moves on (fallback, retries) as the live gateway does;
//! a stream that fails after its first byte is a client-visible failure. Health probes run
//! fixed-delay per the policy; a hung probe ends at its timeout. Closed-loop users run
//! through [`Users`], the live load client's code: a user's next start is queued when its
//! request finishes (`user_done`), never before 1 ms after its previous start
//! ([`SIM_MIN_CYCLE`]; docs/closed-loop.md).

pub mod invariants;
pub mod once;
mod queue;
mod world;

use crate::analysis::{Aggregator, SloThresholds};
use crate::fault::Profile;
use crate::gateway::{GatewayConfig, GatewayEvent};
use crate::provider::Api;
use crate::record::FaultEvent;
use crate::time::Nanos;
use crate::traffic::{Mix, Source};

/// One simulated provider.
#[derive(Clone, Debug)]
pub struct SimProvider {
    /// Name (must match a gateway target's name).
    pub name: String,
    /// Fault profile.
    pub profile: Profile,
    /// Wire format (what its error answers look like, for [`classify::from_error`]).
    pub api: Api,
}

/// Everything a simulated run needs.
#[derive(Clone, Debug)]
pub struct SimInput {
    /// Providers, in any order.
    pub providers: Vec<SimProvider>,
    /// The reference gateway's policy (targets named like providers).
    pub gateway: GatewayConfig,
    /// Traffic: open loop, trace, or closed-loop users.
    pub source: Source,
    /// Request mix.
    pub mix: Mix,
    /// Run seed.
    pub seed: u64,
    /// Time bucket of the analysis.
    pub bucket: Nanos,
    /// Latency targets for goodput (`[slo] ttft / tpot / e2e`).
    pub slo: SloThresholds,
    /// Raised to stop early (Ctrl-C): looked at every [`STOP_CHECK_EVERY`] events; the
    /// output then covers the simulated time reached and is marked interrupted.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Keep one [`invariants::RequestEnd`] per finished request in [`SimOutput::ends`]
    /// (for the invariant checks; off, it costs one untaken branch per request).
    pub trace_ends: bool,
    /// Keep, per bucket of intended start, the latency of the requests started in it (the
    /// HTML report's incident view, `analysis/incident.rs`); the reports do not change.
    pub start_latency: bool,
}

/// Events between two looks at [`SimInput::stop`] (a power of two: a mask test per event).
pub const STOP_CHECK_EVERY: u64 = 1 << 16;

/// What a simulated run produced: the same streams as a live run.
#[derive(Debug)]
pub struct SimOutput {
    /// Folded client records.
    pub aggregator: Aggregator,
    /// The attempts and requests folded for the attempt figures (`analysis/attempts.rs`).
    pub attempts: crate::analysis::attempts::AttemptsAcc,
    /// Gateway events.
    pub events: Vec<GatewayEvent>,
    /// Ground-truth fault windows.
    pub faults: Vec<FaultEvent>,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests scheduled but not finished when the run stopped (only when interrupted).
    pub in_flight_at_end: u64,
    /// Stopped early through [`SimInput::stop`].
    pub interrupted: bool,
    /// Simulated length: the traffic's planned length, or when interrupted the simulated
    /// time reached.
    pub duration: Nanos,
    /// Events processed.
    pub steps: u64,
    /// Per provider, the user-traffic attempts it received in each analysis bucket (what a
    /// live mock's arrival series counts; probes excluded).
    pub arrivals: std::collections::BTreeMap<String, Vec<u64>>,
    /// With [`SimInput::trace_ends`]: every finished request's end, sorted by end time then id.
    pub ends: Option<Vec<invariants::RequestEnd>>,
}

/// Runs the simulation to the end of the traffic (plus in-flight work): a [`world::World`]
/// stepped until its queue is empty.
///
/// # Panics
/// If a gateway target has no provider of the same name (validated by the scenario).
pub fn run(input: SimInput) -> SimOutput {
    let mut w = world::World::new(input);
    while w.step() {}
    w.into_output()
}

#[cfg(test)]
mod tests;
