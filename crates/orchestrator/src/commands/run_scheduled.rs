//! `orchestrator run FILE --schedule --state-dir DIR`: the embedded scheduled mode (see
//! `orchestrator::scheduled`). This command checks the file and the options, starts it and
//! maps the outcome to an exit code.

use crate::{EXIT_INVALID, EXIT_OK};
use anyhow::Context;
use orchestrator::cli::RunArgs;
use orchestrator::input::read_limited;
use orchestrator::scheduled::{ScheduledRun, run_scheduled};
use orchestrator_engine::open_schedule::ScheduleSettings;
use orchestrator_store::StoreSettings;
use tokio_util::sync::CancellationToken;

pub fn run_scheduled_mode(args: RunArgs) -> anyhow::Result<i32> {
    let refuse = |why: &str| {
        eprintln!("error: {why}");
        Ok(EXIT_INVALID)
    };
    if args.resume || args.rerun_failed {
        return refuse(
            "--schedule continues what a stop left under way by itself: leave out --resume and --rerun-failed",
        );
    }
    if !args.select.target_ids().is_empty() || args.select.zone.is_some() {
        return refuse(
            "--schedule runs the objects due at each tick: leave out --target and --zone (pause objects through the API instead)",
        );
    }
    let Some(store_url) = super::run_setup::store_url(&args) else {
        return refuse(
            "--schedule needs --state-dir DIR (or --store URL): the ticks started and each object's latest load must survive a restart",
        );
    };
    let (zone, catchup) = match args.schedule.read() {
        Ok(z) => z,
        Err(e) => return refuse(&e),
    };
    // The file is validated again (frequencies included) when the schedule opens.
    let (_, warnings) = match super::load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    eprint!("{warnings}");
    let text = match read_limited(&args.input.file, args.input.max_input_bytes) {
        Ok(t) => t,
        Err(e) => return refuse(&e.to_string()),
    };
    let (workers, config) = match super::run_setup::workers_and_config(&args) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    if workers.handlers.is_none() {
        return refuse(&worker_runtime::SpecError::no_handler().to_string());
    }
    let run = ScheduledRun {
        text,
        source: args.input.file.display().to_string(),
        settings: ScheduleSettings {
            zone,
            catchup,
            missing_parents: args.input.missing_parents.into(),
            max_object_bytes: args.input.max_object_bytes,
        },
        workers,
        config,
        store_url,
        store_settings: StoreSettings::new(&args.redis_prefix, args.retry_ttl_seconds),
        http: args.http.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stop = CancellationToken::new();
    runtime.spawn(orchestrator_platform::signals::cancel_on_signal(
        stop.clone(),
    ));
    Ok(match runtime.block_on(run_scheduled(run, stop)) {
        Ok(()) => EXIT_OK,
        Err(e) => super::report_app_error(&e),
    })
}
