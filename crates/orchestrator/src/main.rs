//! The `orchestrator` binary: parses the command line, sets up logging and runs a subcommand.
//! Exit codes: 0 success, 1 a run ended with failures, 2 invalid input or usage, 3 a state
//! directory problem (nothing to resume, another graph), 4 any other error, 130 interrupted,
//! 141 standard output closed (as after SIGPIPE).

/// `println!` for a command's output: a reader that went away (`validate | head`) ends the
/// command quietly, a write that fails (`/dev/full`) is an error message; never a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            crate::output_failed(e);
        }
    }};
}

/// `print!` for a command's output, as [`outln`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = write!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            crate::output_failed(e);
        }
    }};
}

mod commands;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use orchestrator::cli::{Cli, Command, LogFormat};
use orchestrator_platform::config_file::{LayeredError, parse_layered};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_STATE: i32 = 3;
pub const EXIT_ERROR: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 130;
/// Standard output was closed by its reader: the code a shell shows for SIGPIPE.
pub const EXIT_CLOSED_PIPE: i32 = 141;

/// Ends the process after standard output failed: quietly when its reader is gone, with the
/// error otherwise (a full disk). What the command stored is stored already.
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_CLOSED_PIPE);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(EXIT_ERROR);
}

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
    // A scheduled process tells when its ticks start runs, unless told otherwise.
    let scheduled = matches!(&cli.command, Command::Run(a) if a.schedule.schedule)
        || matches!(&cli.command, Command::Serve(a) if a.schedule.schedule);
    let default_level = matches.value_source("log_level") == Some(ValueSource::DefaultValue);
    let level = if scheduled && default_level {
        format!(
            "{},orchestrator_engine::engine::schedule=info",
            cli.log_level
        )
    } else {
        cli.log_level.clone()
    };
    orchestrator_platform::logging::init(&level, cli.log_format == LogFormat::Json, "warn");
    // Connections, sockets and state files all take descriptors: up to the hard limit.
    orchestrator_platform::http_server::raise_open_files_limit();
    let code = match commands::dispatch(cli.command, &matches, &from_file) {
        Ok(code) => code,
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                EXIT_CLOSED_PIPE
            } else {
                eprintln!("error: {e:#}");
                exit_code_of(&e)
            }
        }
    };
    std::process::exit(code);
}

/// The documented code of an error no command handled: the state store's (a full disk, a
/// damaged file, Redis away past the writer lease) is 3, any other 4.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    use orchestrator_engine::EngineError;
    use orchestrator_store::StoreError;
    let is_store = e.chain().any(|c| {
        c.downcast_ref::<StoreError>().is_some()
            || matches!(c.downcast_ref::<EngineError>(), Some(EngineError::Store(_)))
    });
    if is_store { EXIT_STATE } else { EXIT_ERROR }
}
