//! The subcommands, each in its own file; they print for people and return the exit code.

mod client;
mod config;
mod generate;
mod object_report;
mod plan;
mod run;
mod run_scheduled;
mod run_setup;
mod schedule;
mod serve;
mod status;
mod validate;

use crate::{EXIT_INVALID, EXIT_STATE};
use orchestrator::app_error::AppError;
use orchestrator::cli::SelectArgs;
use orchestrator::cli::{Command, InputArgs};
use orchestrator::input::load_file;
use orchestrator_core::diagnostics::Severity;
use orchestrator_core::graph::{Graph, LoadOptions};
use orchestrator_core::plan::Selection;
use orchestrator_store::{StateStore, StoreError, StoreSettings, open_store_with};
use std::sync::Arc;

/// Runs a subcommand; `matches` and `from_file` (the options the config file set) serve
/// `orchestrator config`.
pub fn dispatch(
    command: Command,
    matches: &clap::ArgMatches,
    from_file: &[String],
) -> anyhow::Result<i32> {
    match command {
        Command::Config(a) => {
            let cli = <orchestrator::cli::Cli as clap::CommandFactory>::command();
            // The global options (config file, logging), then the subcommand's.
            let mut args: Vec<clap::Arg> = cli.get_arguments().cloned().collect();
            if let Some(sub) = cli.find_subcommand("config") {
                args.extend(sub.get_arguments().cloned());
            }
            let sub_matches = matches.subcommand_matches("config").unwrap_or(matches);
            Ok(config::config(&args, sub_matches, from_file, &a))
        }
        Command::Validate(a) => Ok(validate::validate(a)),
        Command::Plan(a) => Ok(plan::plan(a)),
        Command::Generate(a) => generate::generate(a),
        Command::Schedule(a) => Ok(schedule::schedule(a)),
        Command::Run(a) if a.schedule.schedule => run_scheduled::run_scheduled_mode(*a),
        Command::Run(a) => run::run(*a),
        Command::Status(a) => status::status(a),
        Command::Serve(a) => serve::serve(*a),
        Command::Submit(a) => client::submit(a),
        Command::Runs(a) => client::runs(a),
    }
}

/// Says what stopped the embedded run or the server and gives the exit code: 2 for what was
/// asked (settings, a handler, a store URL), 3 for the state store, 4 for anything else.
pub fn report_app_error(e: &AppError) -> i32 {
    eprintln!("error: {e}");
    match e {
        AppError::Invalid(_) | AppError::Handler(_) | AppError::Store(StoreError::Url(_)) => {
            EXIT_INVALID
        }
        e if e.is_state() => EXIT_STATE,
        _ => crate::EXIT_ERROR,
    }
}

/// Loads a file for a command; on failure prints every problem and gives the exit code.
pub fn load_or_report(input: &InputArgs) -> Result<(Graph, String), i32> {
    let options = LoadOptions {
        missing_parents: input.missing_parents.into(),
        strict: input.strict,
        max_object_bytes: input.max_object_bytes,
    };
    let loaded = match load_file(&input.file, input.max_input_bytes, options) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_INVALID);
        }
    };
    let warnings = loaded.report.render(Some(Severity::Warning));
    match loaded.graph {
        Some(g) => Ok((g, warnings)),
        None => {
            eprint!("{}", loaded.report.render(None));
            eprintln!(
                "{}: {} error(s), {} warning(s); nothing was run",
                input.file.display(),
                loaded.report.error_count(),
                loaded.report.warning_count()
            );
            Err(EXIT_INVALID)
        }
    }
}

/// Opens a state store; a busy or unreachable store is a state problem (exit 3), reported here.
pub async fn open_or_report(
    url: &str,
    settings: &StoreSettings,
) -> Result<Arc<dyn StateStore>, i32> {
    open_store_with(url, settings).await.map_err(|e| {
        eprintln!("error: {e}");
        match e {
            StoreError::Url(_) => EXIT_INVALID,
            _ => EXIT_STATE,
        }
    })
}

/// The objects `--target` and `--zone` select; an unknown or disabled target is reported.
pub fn select_or_report(graph: &Graph, select: &SelectArgs) -> Result<Selection, i32> {
    Selection::for_targets(graph, &select.target_ids(), select.zone).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })
}
