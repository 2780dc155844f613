//! The server of the distributed mode (`orchestrator serve`): it stands by until it holds the
//! writer lease, continues the unfinished runs its store holds (a restart, kill -9 included,
//! loses nothing), starts the run of OBJECTS_PATH unless that graph's run is already under way,
//! publishes Ready events for the workers, applies their results, and serves the runs API,
//! health and metrics.

use crate::app_error::AppError;
use crate::input::read_limited;
use crate::runtime::{ApiSettings, Runtime};
use crate::writer_lease::{become_writer, hand_back, keep_lease, writer_id};
use orchestrator_bus::Bus;
use orchestrator_bus_kafka::{KafkaBus, ensure_topics_with_retry};
use orchestrator_core::diagnostics::MAX_LISTED_PROBLEMS;
use orchestrator_core::graph::MissingParents;
use orchestrator_core::schedule::catalog_hash;
use orchestrator_core::scheduler::{InFlightOnRestore, RunOptions, SchedulerConfig};
use orchestrator_engine::metrics::Metrics;
use orchestrator_engine::open::{Submission, SubmitError, open_new, open_stored};
use orchestrator_engine::open_schedule::{ScheduleOpenError, ScheduleSettings, open_timetable};
use orchestrator_engine::{DriveOptions, Engine, EngineCommand, EngineSchedule};
use orchestrator_http::api::api_router;
use orchestrator_http::auth::ApiTokens;
use orchestrator_http::role::{Role, SharedRole};
use orchestrator_platform::health::{self, MetricsRender, ReadinessCheck};
use orchestrator_store::{StateStore, StoreSettings, open_store_with, redact_url};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// After a restart, attempts that were in flight and that no worker reports on within this
/// long are published again (same attempt): time enough to read the results already on the bus.
const REPUBLISH_AFTER_MS: u64 = 2_000;

/// What a server runs with, its settings checked.
pub struct Server {
    pub config: SchedulerConfig,
    pub bus: Arc<KafkaBus>,
    pub store_url: String,
    pub store_settings: StoreSettings,
    pub tokens: Arc<ApiTokens>,
    /// Where the API listens; `None`: loopback without tokens, every address with them.
    pub http: Option<String>,
    /// A listener of its own for health and metrics (`HEALTH_ADDR`), if given.
    pub health_addr: Option<String>,
    pub writer_lease: Duration,
    /// A file whose run starts with the server (empty or `None`: none).
    pub objects_path: Option<PathBuf>,
    pub missing_parents: MissingParents,
    pub max_input_bytes: u64,
    pub max_object_bytes: usize,
    pub submit_memory_bytes: u64,
    /// Start runs by the frequencies of OBJECTS_PATH's objects (its catalog) instead of one
    /// run of it at start-up.
    pub schedule: Option<ScheduleSettings>,
}

/// Serves until `shutdown` (or the writer lease is lost).
pub async fn run_server(server: Server, shutdown: CancellationToken) -> Result<(), AppError> {
    let Some(store) = open_store_waiting(&server, &shutdown).await? else {
        return Ok(()); // stopped before the store was reached
    };
    let url = redact_url(&server.store_url);
    tracing::info!(store = %url, "state store open");
    if let Some(warning) = store.durability_warning().await {
        tracing::warn!(store = %url, "{warning}");
        eprintln!("WARNING: {warning}");
    }
    let mut runtime = Runtime::new(store.clone(), &server.config)?;
    let metrics = runtime.metrics.clone();
    tokio::spawn(watch_dependencies(
        server.bus.clone(),
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let listener = listen(&server).await?;
    // A standby (another orchestrator holds the writer lease) is alive but not ready.
    let role = Arc::new(SharedRole::default());
    let api = runtime.api(ApiSettings {
        tokens: server.tokens.clone(),
        role: role.clone(),
        max_input_bytes: server.max_input_bytes,
        max_object_bytes: server.max_object_bytes,
        submit_memory_bytes: server.submit_memory_bytes,
        schedule: server.schedule,
    });
    let probes =
        health::health_router(readiness(&server, &store, &role), render(&server, &metrics));
    if let Some(addr) = &server.health_addr {
        let health = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AppError::Invalid(format!("HEALTH_ADDR {addr}: cannot listen: {e}")))?;
        let local = health.local_addr()?;
        tracing::info!(address = %local, "serving health and metrics");
        eprintln!("serving health and metrics on http://{local}");
        tokio::spawn(health::serve(health, probes.clone(), shutdown.clone()));
    }
    tokio::spawn(health::serve(
        listener,
        probes
            .merge(api_router(api))
            .merge(orchestrator_http::console::console_router()),
        shutdown.clone(),
    ));

    match ensure_topics_with_retry(&server.bus, &shutdown).await {
        Ok(()) => {}
        Err(_) if shutdown.is_cancelled() => return Ok(()), // stopped before Kafka was reached
        // Not a matter of waiting: the settings (credentials, properties) are wrong.
        Err(e) => return Err(AppError::Invalid(format!("Kafka: {e}"))),
    }
    // One writer at a time: stand by until the lease is ours, then keep it renewed.
    let lease_ms = server.writer_lease.as_millis().max(1000) as u64;
    let Some(epoch) = become_writer(&*store, &writer_id(), lease_ms, &shutdown, &role).await?
    else {
        return Ok(()); // stopped while standing by
    };
    metrics.writer.set(1);
    metrics
        .writer_epoch
        .set(i64::try_from(epoch).unwrap_or(i64::MAX));
    // The writer from now on, ready once its engine can read the bus (see `drive`).
    role.set(Role::Starting);
    let lost = Arc::new(AtomicBool::new(false));
    tokio::spawn(keep_lease(
        store.clone(),
        lease_ms,
        shutdown.clone(),
        lost.clone(),
    ));
    let bus: Arc<dyn Bus> = server.bus.clone();
    let (mut engine, commands) = runtime.engine(bus);
    engine.stop_retrying_on(shutdown.clone());
    let result = drive(&server, store.clone(), engine, commands, &role, shutdown).await;
    hand_back(&*store, lost.load(Ordering::Relaxed), result).await
}

/// The longest pause between two tries to reach the store at start-up (jitter included).
const STORE_WAIT_CAP: Duration = Duration::from_secs(5);

/// Opens the store, waiting with growing pauses while it is unreachable (Redis starting after
/// us); `None` if stopped first. Settings it refuses are an error at once.
async fn open_store_waiting(
    server: &Server,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<dyn StateStore>>, AppError> {
    let mut pauses = orchestrator_bus::pauses::pauses(Duration::from_millis(250), STORE_WAIT_CAP);
    loop {
        let pause = pauses.next().unwrap_or(STORE_WAIT_CAP);
        match open_store_with(&server.store_url, &server.store_settings).await {
            Ok(store) => return Ok(Some(store)),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "cannot reach the state store; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Where the API listens when `HTTP_ADDR` is not given: loopback without tokens, every address
/// with them.
pub fn default_http_addr(has_tokens: bool) -> String {
    let any = if has_tokens { "0.0.0.0" } else { "127.0.0.1" };
    format!("{any}:8080")
}

/// The API's listener; an open API (no tokens) on a reachable address is warned about.
async fn listen(server: &Server) -> Result<tokio::net::TcpListener, AppError> {
    let http = server
        .http
        .clone()
        .unwrap_or_else(|| default_http_addr(!server.tokens.is_empty()));
    let listener = tokio::net::TcpListener::bind(&http)
        .await
        .map_err(|e| AppError::Invalid(format!("HTTP_ADDR {http}: cannot listen: {e}")))?;
    let local = listener.local_addr()?;
    if server.tokens.is_empty() && !local.ip().is_loopback() {
        let warning = format!(
            "the runs API on {local} is open to anyone who reaches it: set API_TOKEN or API_TOKENS_FILE"
        );
        tracing::warn!("{warning}");
        eprintln!("WARNING: {warning}");
    }
    eprintln!("serving the runs API, health and metrics on http://{local}");
    tracing::info!(address = %local, "serving the runs API, health and metrics");
    Ok(listener)
}

/// Ready: the writer, with the broker and the store answering within a second.
fn readiness(
    server: &Server,
    store: &Arc<dyn StateStore>,
    role: &Arc<SharedRole>,
) -> ReadinessCheck {
    let (bus, store, role) = (server.bus.clone(), store.clone(), role.clone());
    Arc::new(move || {
        let (bus, store) = (bus.clone(), store.clone());
        let not_ready = role.not_ready();
        Box::pin(async move {
            if let Some(why) = not_ready {
                return Err(why.to_string());
            }
            bus.check(Duration::from_secs(1))
                .await
                .map_err(|e| format!("Kafka: {e}"))?;
            match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("store: {e}")),
                Err(_) => Err("store: no answer within 1 s".to_string()),
            }
        })
    })
}

/// Checks the broker and the store every 5 s for `orchestrator_dependency_up` (an alert on it
/// needs no probe of its own), until `shutdown`.
async fn watch_dependencies(
    bus: Arc<KafkaBus>,
    store: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let broker = bus.check(Duration::from_secs(2)).await.is_ok();
        let stored = matches!(
            tokio::time::timeout(Duration::from_secs(2), store.ping()).await,
            Ok(Ok(()))
        );
        for (name, up) in [("broker", broker), ("store", stored)] {
            metrics
                .dependency_up
                .with_label_values(&[name])
                .set(i64::from(up));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The metrics page, with the bus's count of messages it set aside.
fn render(server: &Server, metrics: &Arc<Metrics>) -> MetricsRender {
    let (metrics, bus) = (metrics.clone(), server.bus.clone());
    Arc::new(move || {
        health::catch_up(&metrics.messages_rejected, bus.malformed_count());
        health::catch_up(&metrics.bus_idle_pauses, bus.idle_pause_count());
        metrics.render()
    })
}

/// Opens the engine's consumers (then this orchestrator is ready: the writer, able to work),
/// continues the stored runs, starts OBJECTS_PATH's, and drives until shutdown.
async fn drive(
    server: &Server,
    store: Arc<dyn StateStore>,
    mut engine: Engine,
    commands: Option<tokio::sync::mpsc::Receiver<EngineCommand>>,
    role: &SharedRole,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    // Reading results from before the first Ready event goes out (waiting out a broker away).
    engine.open_consumers().await?;
    role.set(Role::Writer);
    let continuing = continue_stored(server, &*store, &mut engine).await?;
    // An empty OBJECTS_PATH (as a compose file may pass on) means no run at start-up.
    let objects_path = server
        .objects_path
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty());
    match (objects_path, &server.schedule) {
        (Some(path), Some(settings)) => {
            start_schedule(server, path, settings, &*store, &mut engine).await?
        }
        (Some(path), None) => start_objects_path(server, path, &continuing, &mut engine).await?,
        (None, _) => {}
    }
    engine
        .drive_with(shutdown, DriveOptions::server(), commands)
        .await?;
    tracing::info!("stopped; unfinished runs continue with the next orchestrator");
    Ok(())
}

/// Continues what the store holds unfinished; returns the graph versions under way.
async fn continue_stored(
    server: &Server,
    store: &dyn StateStore,
    engine: &mut Engine,
) -> Result<Vec<String>, AppError> {
    let mut continuing = Vec::new();
    // Attempts in flight stay with their workers; those never published go out again soon.
    let policy = InFlightOnRestore::Republish {
        after_ms: REPUBLISH_AFTER_MS,
    };
    let unfinished = store
        .runs()
        .await?
        .into_iter()
        .filter(|h| h.status.is_unfinished());
    for header in unfinished {
        let (id, version) = (header.run_id.clone(), header.graph_version.clone());
        match open_stored(store, header, &server.config, policy).await {
            Ok(run) => {
                tracing::info!(run = %id, graph = %version, "continuing an unfinished run");
                continuing.push(version);
                engine.add_run(run, None, |_, _, _| {}).await?;
            }
            Err(why) => tracing::error!(run = %id, %why, "cannot continue this run"),
        }
    }
    Ok(continuing)
}

/// Keeps OBJECTS_PATH as the schedule's catalog: from now on the engine starts a run at each
/// tick (the ticks missed while no orchestrator ran, as `SCHEDULE_CATCHUP` says).
async fn start_schedule(
    server: &Server,
    path: &std::path::Path,
    settings: &ScheduleSettings,
    store: &dyn StateStore,
    engine: &mut Engine,
) -> Result<(), AppError> {
    let file = read_limited(path, server.max_input_bytes)
        .map_err(|e| AppError::Invalid(format!("OBJECTS_PATH: {e}")))?;
    let source_hash = catalog_hash(&file);
    // A catalog replaced through the API holds until OBJECTS_PATH itself changes.
    let text = match store.catalog_objects().await? {
        Some((replaced, replaces)) if replaces == source_hash => {
            tracing::info!(catalog = %path.display(), "the catalog replaced through the API is scheduled (OBJECTS_PATH has not changed since)");
            replaced
        }
        _ => file,
    };
    let now = engine.clock().now_ms();
    let (timetable, warnings) = open_timetable(store, text, settings, now)
        .await
        .map_err(|e| match e {
            ScheduleOpenError::Invalid(report) => AppError::Invalid(format!(
                "{}{}: invalid catalog; nothing was scheduled",
                report.render(None),
                path.display()
            )),
            ScheduleOpenError::Store(e) => e.into(),
        })?;
    for p in warnings.iter().take(MAX_LISTED_PROBLEMS) {
        tracing::warn!(problem = %p, "catalog");
    }
    tracing::info!(objects = timetable.graph().len(), catalog = %path.display(), zone = %settings.zone, "scheduling the catalog's objects by their frequencies");
    engine.set_schedule(EngineSchedule {
        timetable,
        config: server.config.clone(),
        source_hash,
    });
    Ok(())
}

/// Starts the run of OBJECTS_PATH, unless its graph's run is already under way.
async fn start_objects_path(
    server: &Server,
    path: &std::path::Path,
    continuing: &[String],
    engine: &mut Engine,
) -> Result<(), AppError> {
    let text = read_limited(path, server.max_input_bytes)
        .map_err(|e| AppError::Invalid(format!("OBJECTS_PATH: {e}")))?;
    let submission = Submission {
        text,
        source: path.display().to_string(),
        options: RunOptions {
            missing_parents: server.missing_parents,
            ..RunOptions::default()
        },
        seed: None,
        strict: false,
        max_object_bytes: server.max_object_bytes,
        run_id: None,
    };
    let now = engine.clock().now_ms();
    let prepared = open_new(submission, &server.config, now).map_err(|e| match e {
        SubmitError::Invalid(report) => AppError::Invalid(format!(
            "{}{}: invalid object file; nothing was run",
            report.render(None),
            path.display()
        )),
        e => AppError::Invalid(format!("{}: {e}", path.display())),
    })?;
    for p in prepared.warnings.iter().take(MAX_LISTED_PROBLEMS) {
        tracing::warn!(problem = %p, "object file");
    }
    let header = prepared.run.header();
    if continuing.contains(&header.graph_version) {
        tracing::info!(graph = %header.graph_version, "the run of OBJECTS_PATH is already under way");
        return Ok(());
    }
    tracing::info!(run = %header.run_id, objects = header.objects, graph = %header.graph_version, "starting the run of OBJECTS_PATH");
    engine
        .add_run(prepared.run, Some(prepared.objects), |_, _, _| {})
        .await?;
    Ok(())
}
