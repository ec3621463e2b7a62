//! The real-time driver: mock provider servers, the load client, the reference gateway's
//! proxy, external gateway processes, sockets, and one live run of a scenario.

// A driver: the live driver reads clocks, sockets and files by design (clippy.toml denies it in the core).
#![allow(clippy::disallowed_methods)]

pub mod exporter;
pub mod front;
pub(crate) mod http1;
pub mod load;
pub mod mock;
pub mod net;
pub mod once;
mod process;
pub mod promtext;
pub mod proxy;
pub mod redis;
pub mod signal;
pub mod upstream;
pub mod wiring;
