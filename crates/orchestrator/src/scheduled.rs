//! The embedded scheduled mode (`orchestrator run FILE --schedule --state-dir DIR`): one process
//! that keeps running, starts a run at each tick of the objects' frequencies with in-process
//! workers, and keeps its runs, loads and ticks in the store, so that a restart (kill -9
//! included) continues where it stood: no tick started twice, none lost.

use crate::app_error::AppError;
use crate::embedded::{EmbeddedWorkers, RUN_WRITER_LEASE_MS, serve_http, spawn_workers};
use crate::runtime::Runtime;
use crate::writer_lease;
use chrono::{DateTime, Utc};
use orchestrator_bus::MemoryBus;
use orchestrator_core::diagnostics::MAX_LISTED_PROBLEMS;
use orchestrator_core::schedule::catalog_hash;
use orchestrator_core::scheduler::{InFlightOnRestore, SchedulerConfig};
use orchestrator_engine::open::open_stored;
use orchestrator_engine::open_schedule::{ScheduleOpenError, ScheduleSettings, open_timetable};
use orchestrator_engine::{DriveOptions, EngineSchedule};
use orchestrator_store::{StateStore, StoreSettings, open_store_with};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// What the scheduled mode runs with.
pub struct ScheduledRun {
    /// The catalog's object definitions (the file's text) and where they came from.
    pub text: String,
    pub source: String,
    pub settings: ScheduleSettings,
    pub workers: EmbeddedWorkers,
    pub config: SchedulerConfig,
    pub store_url: String,
    pub store_settings: StoreSettings,
    pub http: Option<String>,
}

/// Runs the schedule until `stop`; the runs under way then continue at the next start.
pub async fn run_scheduled(run: ScheduledRun, stop: CancellationToken) -> Result<(), AppError> {
    let store = open_store_with(&run.store_url, &run.store_settings).await?;
    let lease_stop = stop.clone();
    writer_lease::as_writer(store, RUN_WRITER_LEASE_MS, lease_stop, |store| {
        drive(run, store, stop)
    })
    .await
}

async fn drive(
    run: ScheduledRun,
    store: Arc<dyn StateStore>,
    stop: CancellationToken,
) -> Result<(), AppError> {
    let mut runtime = Runtime::new(store.clone(), &run.config)?;
    let http = serve_http(run.http.as_deref(), &mut runtime, Some(run.settings)).await?;
    let bus = Arc::new(MemoryBus::new());
    let stop_workers = CancellationToken::new();
    let handlers = run
        .workers
        .handlers
        .clone()
        .ok_or_else(|| AppError::Handler(worker_runtime::SpecError::no_handler()))?;
    let workers = spawn_workers(
        &run.workers,
        &handlers,
        fastrand::u64(..),
        &bus,
        &stop_workers,
    )?;
    let (mut engine, commands) = runtime.engine(bus.clone());
    engine.stop_retrying_on(stop.clone());
    // The runs a stop (or a kill) left unfinished go on; attempts in flight go out again.
    for header in store.runs().await? {
        if !header.status.is_unfinished() {
            continue;
        }
        let id = header.run_id.clone();
        match open_stored(&*store, header, &run.config, InFlightOnRestore::Resend).await {
            Ok(r) => {
                eprintln!("continuing run {id}");
                engine.add_run(r, None, |_, _, _| {}).await?;
            }
            Err(e) => tracing::error!(run = %id, error = %e, "cannot continue this run"),
        }
    }
    let source_hash = catalog_hash(&run.text);
    let clock = engine.clock();
    let (timetable, warnings) = open_timetable(&*store, run.text, &run.settings, clock.now_ms())
        .await
        .map_err(|e| match e {
            ScheduleOpenError::Invalid(report) => AppError::Invalid(format!(
                "{}{}: invalid catalog; nothing was scheduled",
                report.render(None),
                run.source
            )),
            ScheduleOpenError::Store(e) => e.into(),
        })?;
    for w in warnings.iter().take(MAX_LISTED_PROBLEMS) {
        eprintln!("warning: {w}");
    }
    let graph = timetable.graph();
    let with_frequency = timetable.catalog().frequency.iter().flatten().count();
    let next = timetable
        .next_wake(clock.now_ms())
        .and_then(|t| DateTime::<Utc>::from_timestamp_millis(t as i64))
        .map_or("never".to_string(), |t| t.to_rfc3339());
    eprintln!(
        "scheduling {} objects of {} ({with_frequency} with a frequency) in {}; first evaluation at {next}; Ctrl-C stops",
        graph.len(),
        run.source,
        run.settings.zone,
    );
    engine.set_schedule(EngineSchedule {
        timetable,
        config: run.config.clone(),
        source_hash,
    });
    http.state.ready.store(true, Ordering::Relaxed);
    let driven = engine
        .drive_with(stop, DriveOptions::server(), commands)
        .await;
    stop_workers.cancel();
    for w in workers {
        if let Ok(Err(e)) = w.await {
            tracing::error!(error = %e, "worker stopped with an error");
        }
    }
    http.stop.cancel();
    bus.close();
    driven?;
    eprintln!("stopped; runs under way continue at the next start");
    Ok(())
}
