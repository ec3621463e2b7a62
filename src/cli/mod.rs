//! The command line: arguments ([`args`]) and one function per subcommand ([`commands`]).

pub mod args;
pub mod commands;
pub mod profiles;

pub use args::*;
