//! Platform profiles: what a client would measure against a fault profile
//! (`chaosgate profile-stats`, [`stats`]) and profiles fitted to dashboard numbers
//! (`chaosgate calibrate`, [`calibrate`]). The article's platforms ship as
//! `fault-profiles/platforms/*.toml`, each fitted with `calibrate` and checked with
//! `profile-stats` (tests/platforms.rs).

pub mod calibrate;
pub mod stats;

pub use stats::{profile_stats as measure, ProfileStats, Workload};
