//! The command line: arguments ([`args`]) and one function per subcommand ([`commands`]).

// A driver: the command line reads files and clocks by design (clippy.toml denies it in the core).
#![allow(clippy::disallowed_methods)]

mod args;
pub mod commands;
pub mod init;
pub mod merge;
pub mod profiles;
pub mod rules;
pub mod shard;
pub mod suite;

pub use args::*;
