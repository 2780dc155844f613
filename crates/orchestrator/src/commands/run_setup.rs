//! What `run` and `run --schedule` read from the command line alike: the in-process workers,
//! the scheduler's settings and the store's URL.

use crate::EXIT_INVALID;
use orchestrator::cli::RunArgs;
use orchestrator::embedded::EmbeddedWorkers;
use orchestrator_core::scheduler::SchedulerConfig;
use orchestrator_store::state_dir_url;
use std::time::Duration;
use worker_runtime::HandlerSet;

/// The workers and the scheduler's settings; what is invalid is said, and exit 2 given.
pub fn workers_and_config(args: &RunArgs) -> Result<(EmbeddedWorkers, SchedulerConfig), i32> {
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        EXIT_INVALID
    };
    let handlers =
        HandlerSet::chosen(args.handler.clone(), &args.zone_handlers).map_err(|e| refuse(&e))?;
    let default_in_flight = (args.max_workers.max(1) as u32).saturating_mul(4);
    let config = args
        .scheduler
        .config(default_in_flight)
        .map_err(|e| refuse(&e))?;
    let workers = EmbeddedWorkers {
        handlers,
        max_workers: args.max_workers,
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        task_timeout: args.task_timeout_seconds.map(Duration::from_secs),
        output_bytes: args.attempt_output_bytes as usize,
    };
    Ok((workers, config))
}

/// `--store URL`, else `--state-dir DIR`'s store, else none.
pub fn store_url(args: &RunArgs) -> Option<String> {
    match (&args.store, &args.state_dir) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(dir)) => Some(state_dir_url(dir)),
        (None, None) => None,
    }
}
