//! The embedded run: the engine, an in-process bus and in-process workers for the three zones in
//! one process; state in memory, in redb (`--state-dir`, so that a killed run resumes without
//! running a loaded object again) or on a shared Redis under the writer lease.

use crate::app_error::AppError;
use crate::progress::{self, ProgressMode};
use crate::runtime::{ApiSettings, Runtime};
use crate::writer_lease;
use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    DeadLetter, InFlightOnRestore, ObjectState, Run, RunHandlers, RunHeader, RunOptions,
    RunSummary, SchedulerConfig,
};
use orchestrator_engine::DriveOptions;
use orchestrator_engine::metrics::MetricsError;
use orchestrator_engine::open::{OpenError, new_header, open_snapshot};
use orchestrator_http::embedded::{HttpState, serve};
use orchestrator_protocol::{ObjectId, Zone};
use orchestrator_store::{AttemptRecord, StateStore, StoreSettings, open_store_with};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker_runtime::{HandlerSet, WorkerConfig, WorkerStats, run_worker};

/// How long the writer lease of `run` (and `run --schedule`) on a shared store lasts between
/// renewals: a run killed with kill -9 can be resumed this long after (a resume waits for it a
/// little longer).
pub(crate) const RUN_WRITER_LEASE_MS: u64 = 5_000;

/// Everything an embedded run needs, its file read and checked.
pub struct EmbeddedRun {
    /// The object file, kept with the run.
    pub source: String,
    pub graph: Arc<RunGraph>,
    /// The objects as compact JSON, stored with a new run (`None` with the memory store).
    pub objects: Option<Arc<String>>,
    pub options: RunOptions,
    pub seed: Option<u64>,
    pub workers: EmbeddedWorkers,
    pub config: SchedulerConfig,
    pub store_url: String,
    pub store_settings: StoreSettings,
    /// How the store is named in messages (the state directory, or the store's kind).
    pub store_name: Option<String>,
    /// Continue the store's latest run instead of starting one.
    pub resume: bool,
    /// With `resume`: run its failed, upstream-failed and cancelled objects again.
    pub rerun_failed: bool,
    /// Serve health and metrics on this address.
    pub http: Option<String>,
    pub progress: ProgressMode,
}

/// The in-process workers: their handlers and how they run them.
#[derive(Clone)]
pub struct EmbeddedWorkers {
    /// As the command line chose them (`None`: not given; a resumed run has its own).
    pub handlers: Option<HandlerSet>,
    pub max_workers: usize,
    pub heartbeat: Duration,
    pub task_timeout: Option<Duration>,
    /// Bytes of each attempt's output kept (`ATTEMPT_OUTPUT_BYTES`).
    pub output_bytes: usize,
}

/// How an embedded run ended.
pub struct EmbeddedOutcome {
    pub header: RunHeader,
    pub summary: RunSummary,
    pub dead_letters: Vec<DeadLetter>,
    /// The attempts of the first objects that failed for good (see [`SHOWN_FAILURES`]).
    pub failures: Vec<(ObjectId, Vec<AttemptRecord>)>,
    pub elapsed: Duration,
    /// It was already finished: nothing ran.
    pub already_finished: bool,
}

/// Objects that failed for good whose attempts an embedded run reports at its end.
pub const SHOWN_FAILURES: usize = 5;

/// Runs it to its end, or until `interrupt` fires (then the attempts in flight finish and the run
/// is stored as interrupted).
pub async fn run_embedded(
    run: EmbeddedRun,
    interrupt: CancellationToken,
) -> Result<EmbeddedOutcome, AppError> {
    let store = open_store_with(&run.store_url, &run.store_settings).await?;
    // A store others can share (Redis): write only while holding the writer lease, as `serve`.
    let stop = interrupt.clone();
    writer_lease::as_writer(store, RUN_WRITER_LEASE_MS, stop, |store| {
        drive(run, store, interrupt)
    })
    .await
}

/// The run itself, once the store is this process's.
async fn drive(
    embedded: EmbeddedRun,
    store: Arc<dyn StateStore>,
    interrupt: CancellationToken,
) -> Result<EmbeddedOutcome, AppError> {
    // One clock for the run's opening, the engine and the API.
    let mut runtime = Runtime::new(store.clone(), &embedded.config)?;
    let (mut run, rerun) = open(&embedded, &*store, runtime.clock.now_ms()).await?;
    if run.is_finished() && !rerun {
        return outcome(run.header().clone(), &*store, Duration::ZERO, true).await;
    }
    let handlers = run_handlers(&embedded.workers, &mut run)?;
    let http = serve_http(embedded.http.as_deref(), &mut runtime, None).await?;
    let bus = Arc::new(MemoryBus::new());
    let stop_workers = CancellationToken::new();
    let workers = spawn_workers(
        &embedded.workers,
        &handlers,
        run.header().seed,
        &bus,
        &stop_workers,
    )?;

    let started = Instant::now();
    let run_id = run.header().run_id.clone();
    let (mut engine, commands) = runtime.engine(bus.clone());
    // A new run's objects are stored with it; a resumed one has them already.
    let objects = embedded.objects.clone().filter(|_| !embedded.resume);
    engine
        .add_run(run, objects, |run, now, out| {
            if rerun {
                let n = run.reset_failed(now, out);
                eprintln!("running {n} failed, upstream-failed or cancelled objects again");
            }
        })
        .await?;
    let progress_task = tokio::spawn(progress::show(engine.progress(), embedded.progress));
    http.state.ready.store(true, Ordering::Relaxed);

    let driven = engine
        .drive_with(interrupt, DriveOptions::embedded(), commands)
        .await;
    engine.close_progress();
    stop_workers.cancel();
    for w in workers {
        if let Ok(Err(e)) = w.await {
            tracing::error!(error = %e, "worker stopped with an error");
        }
    }
    let _ = progress_task.await;
    http.stop.cancel();
    bus.close();
    driven?;
    let header = engine
        .run(&run_id)
        .map(|r| r.header().clone())
        .ok_or_else(|| AppError::State(format!("run {run_id} vanished from the engine")))?;
    outcome(header, &*store, started.elapsed(), false).await
}

async fn outcome(
    header: RunHeader,
    store: &dyn StateStore,
    elapsed: Duration,
    already_finished: bool,
) -> Result<EmbeddedOutcome, AppError> {
    let dead_letters = store.dead_letters(&header.run_id).await?;
    let mut failures = Vec::new();
    for d in dead_letters.iter().take(SHOWN_FAILURES) {
        failures.push((d.id, store.attempts(&header.run_id, d.id).await?));
    }
    Ok(EmbeddedOutcome {
        summary: header.counts.summary(),
        dead_letters,
        failures,
        header,
        elapsed,
        already_finished,
    })
}

/// The HTTP side of an embedded run (`--http`): health and metrics, and the runs API and the
/// web console over the engine it drives (no API tokens: bind it to loopback).
pub(crate) struct EmbeddedHttp {
    pub state: Arc<HttpState>,
    pub stop: CancellationToken,
}

/// Serves health, metrics, the runs API and the console on `http`, if given (the API built by
/// `runtime`, whose engine then takes its commands).
pub(crate) async fn serve_http(
    http: Option<&str>,
    runtime: &mut Runtime,
    schedule: Option<orchestrator_engine::open_schedule::ScheduleSettings>,
) -> Result<EmbeddedHttp, AppError> {
    let state = Arc::new(HttpState {
        metrics: runtime.metrics.clone(),
        ready: false.into(),
    });
    let stop = CancellationToken::new();
    let Some(addr) = http else {
        return Ok(EmbeddedHttp { state, stop });
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::Invalid(format!("--http {addr}: cannot listen: {e}")))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        let warning = format!(
            "the runs API and console on {local} are open to anyone who reaches them (run takes no API tokens): bind --http to 127.0.0.1, or use serve with API_TOKEN"
        );
        tracing::warn!("{warning}");
        eprintln!("WARNING: {warning}");
    }
    eprintln!("serving the console, the runs API, health and metrics on http://{local}");
    let api = runtime.api(ApiSettings::embedded(schedule));
    tokio::spawn(serve(listener, state.clone(), Some(api), stop.clone()));
    Ok(EmbeddedHttp { state, stop })
}

/// Tasks of the in-process workers.
pub(crate) type WorkerTasks = Vec<tokio::task::JoinHandle<Result<(), worker_runtime::WorkerError>>>;

/// The handlers a run's workers run: those given on the command line (a new run keeps them; a
/// resumed one changes to them, which is said and logged), else those the run was started
/// with. None at all is refused: nothing is simulated unless asked for.
fn run_handlers(workers: &EmbeddedWorkers, run: &mut Run) -> Result<HandlerSet, AppError> {
    let run_id = run.header().run_id.clone();
    let stored = run.header().options.handlers.clone();
    match (&workers.handlers, stored) {
        (Some(given), stored) => {
            let chosen = RunHandlers::new(given.specs());
            if let Some(stored) = stored.filter(|s| *s != chosen) {
                let (from, to) = (describe(&stored), describe(&chosen));
                tracing::warn!(run = %run_id, %from, %to, "the run's handlers change");
                eprintln!("run {run_id}: handlers change from {from} to {to}");
            }
            run.set_handlers(chosen);
            Ok(given.clone())
        }
        (None, Some(stored)) => {
            let specs = Zone::ALL.map(|z| stored.zone(z));
            eprintln!(
                "run {run_id}: running with its handlers ({})",
                describe(&stored)
            );
            Ok(HandlerSet::from_specs(specs)?)
        }
        (None, None) => Err(AppError::Handler(worker_runtime::SpecError::no_handler())),
    }
}

/// `1-Raw=SPEC, 2-Standardized=SPEC, 3-Application=SPEC`, or one SPEC when they are the same.
fn describe(handlers: &RunHandlers) -> String {
    let specs = Zone::ALL.map(|z| handlers.zone(z));
    if specs.iter().all(|s| *s == specs[0]) {
        return specs[0].to_string();
    }
    Zone::ALL
        .iter()
        .map(|z| format!("{}={}", z.as_str(), handlers.zone(*z)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The in-process workers of the three zones, one task each.
pub(crate) fn spawn_workers(
    embedded: &EmbeddedWorkers,
    handlers: &HandlerSet,
    seed: u64,
    bus: &Arc<MemoryBus>,
    stop: &CancellationToken,
) -> Result<WorkerTasks, AppError> {
    let mut workers = Vec::new();
    for zone in Zone::ALL {
        let handler = handlers
            .spec(zone)
            .build_keeping(seed, embedded.output_bytes)?;
        let mut wc = WorkerConfig::new(zone);
        wc.max_workers = embedded.max_workers.max(1);
        wc.heartbeat_interval = embedded.heartbeat;
        wc.task_timeout = embedded.task_timeout;
        wc.worker_id = format!("embedded-{}", zone.short());
        let bus: Arc<dyn Bus> = bus.clone();
        workers.push(tokio::spawn(run_worker(
            bus,
            handler,
            wc,
            Arc::new(WorkerStats::new(zone).map_err(MetricsError::from)?),
            stop.clone(),
        )));
    }
    Ok(workers)
}

/// A new run, or the stored one to resume (and whether to rerun its failures).
async fn open(
    embedded: &EmbeddedRun,
    store: &dyn StateStore,
    now_ms: u64,
) -> Result<(Run, bool), AppError> {
    let runs = store.runs().await?;
    let latest = runs.last();
    let where_ = embedded
        .store_name
        .clone()
        .unwrap_or_else(|| store.kind().to_string());
    let (graph, config) = (&embedded.graph, &embedded.config);
    if !embedded.resume {
        if let Some(m) = latest.filter(|m| m.status.is_unfinished()) {
            return Err(AppError::State(format!(
                "{where_} holds unfinished run {} (from {}); add --resume to finish it, or use another --state-dir",
                m.run_id, m.source
            )));
        }
        let options = embedded.options.clone();
        let header = new_header(&embedded.source, options, embedded.seed, now_ms);
        return Ok((Run::new(graph.clone(), config.clone(), header), false));
    }
    let Some(header) = latest.cloned() else {
        return Err(AppError::State(format!(
            "nothing to resume: {where_} holds no run"
        )));
    };
    let (run_id, stored_source) = (header.run_id.clone(), header.source.clone());
    let policy = InFlightOnRestore::Resend;
    let run = match open_snapshot(store, graph.clone(), header, config, policy).await {
        Ok(run) => run,
        Err(OpenError::GraphMismatch(m)) => {
            return Err(AppError::State(format!(
                "refusing to resume run {run_id}: it runs graph version {} (from {stored_source}), but {} has graph version {}; \
                 the objects, zones or parents differ. Use another --state-dir to start a new run.",
                m.stored, embedded.source, m.found
            )));
        }
        Err(OpenError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(AppError::State(e.to_string())),
    };
    eprintln!(
        "resuming run {run_id}: {} of {} objects already loaded",
        run.counts().in_state(ObjectState::Loaded),
        graph.len()
    );
    Ok((run, embedded.rerun_failed))
}
