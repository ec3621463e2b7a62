//! The real-time driver: mock provider servers, the load client, the reference gateway's
//! proxy, external gateway processes, sockets, and one live run of a scenario.

pub mod load;
pub mod mock;
pub mod net;
pub mod once;
pub mod process;
pub mod promtext;
pub mod proxy;
pub mod signal;
pub mod wiring;
