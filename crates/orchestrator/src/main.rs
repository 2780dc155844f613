//! The `orchestrator` binary: parses the command line, sets up logging and runs a subcommand.
//! Exit codes: 0 success, 1 a run ended with failures, 2 invalid input or usage, 3 a state
//! directory problem (nothing to resume, another graph), 4 any other error, 130 interrupted.

mod commands;

use clap::{CommandFactory, FromArgMatches};
use orchestrator::cli::{Cli, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use worker_base::config_file::{LayeredError, parse_layered};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_STATE: i32 = 3;
pub const EXIT_ERROR: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 130;

fn main() {
    let parsed = parse_layered(Cli::command(), std::env::args_os().collect())
        .map_err(|e| match e {
            LayeredError::Clap(e) => e,
            LayeredError::File(e) => Cli::command().error(clap::error::ErrorKind::InvalidValue, e),
        })
        .and_then(|(m, from_file)| Ok((Cli::from_arg_matches(&m)?, m, from_file)));
    let (cli, matches, from_file) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            });
        }
    };
    init_logging(cli.log_format, &cli.log_level);
    let code = match commands::dispatch(cli.command, &matches, &from_file) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}
