//! The options of the runs API's command-line client: where a running `serve` is (and its
//! token), `submit` and `runs`.

use crate::cli::MissingParentsArg;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where a running `serve` is, and the token of its runs API.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The base URL of `serve`'s HTTP address.
    #[arg(
        long,
        env = "ORCHESTRATOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A token of the runs API (sent as `Authorization: Bearer TOKEN`).
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The object definitions to run.
    pub file: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Build only these objects and the ancestors they need (repeatable).
    #[arg(long = "target", value_name = "ID")]
    pub targets: Vec<u64>,
    /// A parent that is not in the file is loaded elsewhere.
    #[arg(long, value_enum, default_value_t = MissingParentsArg::Error)]
    pub missing_parents: MissingParentsArg,
    /// Follow the run until it finishes: exit 0 if every object loaded, 1 if not.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print JSON (the API's answer).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The states an object of a run can be in (`runs show --state`).
pub const OBJECT_STATES: [&str; 10] = [
    "waiting",
    "queued",
    "dispatched",
    "held",
    "running",
    "retry_wait",
    "loaded",
    "failed",
    "upstream_failed",
    "cancelled",
];

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The runs, newest first.
    List {
        /// Only runs in this status.
        #[arg(long, value_parser = ["running", "cancelling", "finished", "interrupted"])]
        status: Option<String>,
        /// Only runs with this outcome.
        #[arg(long, value_parser = ["running", "succeeded", "failed", "cancelled", "interrupted"])]
        outcome: Option<String>,
    },
    /// One run: its outcome, counts and summary, and its objects in one state (failed ones by
    /// default, each with the first line of its reason).
    Show {
        run: String,
        /// List the objects in this state.
        #[arg(long, default_value = "failed", value_parser = OBJECT_STATES)]
        state: String,
    },
    /// Cancels a run: nothing new is dispatched, and the attempts in flight are stopped.
    Cancel { run: String },
    /// Runs every failed, upstream-failed and cancelled object of a finished run again (new
    /// attempts; what loaded is not touched).
    Rerun {
        run: String,
        /// Follow the run to its end (exit 0: every object loaded, 1: not).
        #[arg(long)]
        wait: bool,
    },
    /// Runs one failed object again, with the descendants it blocked.
    Retry {
        run: String,
        object: u64,
        /// Follow the run to its end (exit 0: every object loaded, 1: not).
        #[arg(long)]
        wait: bool,
    },
    /// One object's state and every attempt: worker, times, outcome, reason and output.
    Logs {
        run: String,
        object: u64,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<u32>,
    },
}

#[cfg(test)]
mod tests {
    use orchestrator_core::scheduler::ObjectState;

    #[test]
    fn the_states_runs_show_takes_are_the_objects_states() {
        let states: Vec<&str> = ObjectState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, super::OBJECT_STATES);
    }
}
