//! Thin: parse → run → exit code (0 ok, 1 an assertion failed, 2 usage/config/harness error).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaosgate: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Mock(args) => rt.block_on(chaosgate::cli::commands::mock(args)),
        Command::Load(args) => rt.block_on(chaosgate::cli::commands::load(*args)),
        Command::Gateway(args) => rt.block_on(chaosgate::cli::commands::gateway(args)),
        Command::Sim(args) => chaosgate::cli::commands::sim(args),
        Command::Run(args) => rt.block_on(chaosgate::cli::commands::run(args)),
        Command::Demo(args) => rt.block_on(chaosgate::cli::commands::demo(args)),
        Command::Init(args) => chaosgate::cli::init::init(args),
        Command::Suite(args) => rt.block_on(chaosgate::cli::suite::suite(*args)),
        Command::Schema => chaosgate::cli::commands::schema(),
        Command::ProfileStats(args) => chaosgate::cli::profiles::run_profile_stats(args),
        Command::Calibrate(args) => chaosgate::cli::profiles::run_calibrate(args),
        Command::Rules(args) => chaosgate::cli::rules::rules(args),
        Command::Merge(args) => chaosgate::cli::merge::merge(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("chaosgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
