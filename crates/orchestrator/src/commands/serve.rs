//! `orchestrator serve`: the long-running orchestrator of the distributed mode. It continues the
//! unfinished runs its store holds (a restart, kill -9 included, loses nothing), starts the run of
//! OBJECTS_PATH unless that graph's run is already under way, publishes Ready events on Kafka for
//! the workers, applies their results, and serves health and metrics.

use super::writer_lease::{become_writer, hand_back, keep_lease, writer_id};
use crate::{EXIT_INVALID, EXIT_OK, EXIT_STATE};
use anyhow::Context;
use orchestrator::cli::ServeArgs;
use orchestrator::input::read_limited;
use orchestrator_bus::Bus;
use orchestrator_bus_kafka::{KafkaBus, ensure_topics_with_retry};
use orchestrator_core::diagnostics::MAX_LISTED_PROBLEMS;
use orchestrator_core::scheduler::{InFlightOnRestore, RunOptions, SchedulerConfig};
use orchestrator_engine::clock::now_ms;
use orchestrator_engine::metrics::Metrics;
use orchestrator_engine::open::{Submission, SubmitError, open_new, open_stored};
use orchestrator_engine::{DriveOptions, Engine, EngineCommand};
use orchestrator_http::api::{ApiState, api_router};
use orchestrator_http::api_body::SubmitBudget;
use orchestrator_http::auth::ApiTokens;
use orchestrator_http::role::{Role, SharedRole};
use orchestrator_platform::health::{self, MetricsRender, ReadinessCheck};
use orchestrator_store::{StateStore, StoreError, StoreSettings, open_store_with, redact_url};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// After a restart, attempts that were in flight and that no worker reports on within this
/// long are published again (same attempt): time enough to read the results already on the bus.
const REPUBLISH_AFTER_MS: u64 = 2_000;

/// Default in-flight window per zone for a server.
const SERVE_IN_FLIGHT: u32 = 1000;

/// Default start timeout of a server: workers that send no Started event (the old system's)
/// and Ready events lost on the way are retried after this long.
const SERVE_START_TIMEOUT_MS: u64 = 300_000;

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let config = match args.scheduler.config(SERVE_IN_FLIGHT) {
        Ok(mut c) => {
            c.schedule_to_start_ms.get_or_insert(SERVE_START_TIMEOUT_MS);
            c
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let settings = match args.kafka.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let Some(store_url) = args.store_url() else {
        eprintln!(
            "error: serve needs a state store: set REDIS_URL (or REDIS_HOST), or --state-dir for a single process"
        );
        return Ok(EXIT_INVALID);
    };
    let tokens = match ApiTokens::load(args.api_token.as_deref(), args.api_tokens_file.as_deref()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(orchestrator_platform::signals::cancel_on_signal(
            shutdown.clone(),
        ));
        let store_settings = StoreSettings::new(&args.redis_prefix, args.retry_ttl_seconds);
        let store = match open_store_waiting(&store_url, &store_settings, &shutdown).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(EXIT_OK), // stopped before the store was reached
            Err(code) => return Ok(code),
        };
        tracing::info!(store = %redact_url(&store_url), "state store open");
        if let Some(warning) = store.durability_warning().await {
            tracing::warn!(store = %redact_url(&store_url), "{warning}");
            eprintln!("WARNING: {warning}");
        }
        let bus = match KafkaBus::new(settings) {
            Ok(bus) => Arc::new(bus),
            Err(e) => {
                // librdkafka refuses the settings (an unknown or invalid property).
                eprintln!("error: Kafka: {e}");
                return Ok(EXIT_INVALID);
            }
        };
        run_server(args, config, store, bus, tokens, shutdown).await
    })
}

/// Opens the store, waiting with growing pauses while it is unreachable (Redis starting after
/// us); `None` if stopped first. Settings it refuses are reported at once (exit code).
async fn open_store_waiting(
    url: &str,
    settings: &StoreSettings,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<dyn StateStore>>, i32> {
    let mut pause = Duration::from_millis(250);
    loop {
        match open_store_with(url, settings).await {
            Ok(store) => return Ok(Some(store)),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "cannot reach the state store; retrying");
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(match e {
                    StoreError::Url(_) => EXIT_INVALID,
                    _ => EXIT_STATE,
                });
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

async fn run_server(
    args: ServeArgs,
    config: SchedulerConfig,
    store: Arc<dyn StateStore>,
    bus: Arc<KafkaBus>,
    tokens: Arc<ApiTokens>,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    let metrics = Arc::new(Metrics::new()?);

    let http = args.http.clone().unwrap_or_else(|| {
        if tokens.is_empty() {
            "127.0.0.1:8080"
        } else {
            "0.0.0.0:8080"
        }
        .to_string()
    });
    let listener = match tokio::net::TcpListener::bind(&http).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: HTTP_ADDR {http}: cannot listen: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let local = listener.local_addr()?;
    if tokens.is_empty() && !local.ip().is_loopback() {
        let warning = format!(
            "the runs API on {local} is open to anyone who reaches it: set API_TOKEN or API_TOKENS_FILE"
        );
        tracing::warn!("{warning}");
        eprintln!("WARNING: {warning}");
    }
    eprintln!("serving the runs API, health and metrics on http://{local}");
    tracing::info!(address = %local, "serving the runs API, health and metrics");
    // A standby (another orchestrator holds the writer lease) is alive but not ready.
    let role = Arc::new(SharedRole::default());
    let (probe_bus, probe_store, probe_role) = (bus.clone(), store.clone(), role.clone());
    let check: ReadinessCheck = Arc::new(move || {
        let (bus, store) = (probe_bus.clone(), probe_store.clone());
        let not_ready = probe_role.not_ready();
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
    });
    let (render_metrics, render_bus) = (metrics.clone(), bus.clone());
    let render: MetricsRender = Arc::new(move || {
        health::catch_up(
            &render_metrics.messages_rejected,
            render_bus.malformed_count(),
        );
        render_metrics.render()
    });
    // Commands of the runs API wait here until the engine drives.
    let (command_tx, commands) = tokio::sync::mpsc::channel(64);
    let api = Arc::new(ApiState {
        store: store.clone(),
        commands: command_tx,
        config: config.clone(),
        max_input_bytes: args.max_input_bytes,
        max_object_bytes: args.max_object_bytes,
        role: role.clone(),
        tokens,
        budget: SubmitBudget::new(args.submit_memory_bytes, args.max_input_bytes),
    });
    let router = health::health_router(check, render).merge(api_router(api));
    tokio::spawn(health::serve(listener, router, shutdown.clone()));

    match ensure_topics_with_retry(&bus, &shutdown).await {
        Ok(()) => {}
        Err(_) if shutdown.is_cancelled() => return Ok(EXIT_OK), // stopped before Kafka was reached
        Err(e) => {
            // Not a matter of waiting: the settings (credentials, properties) are wrong.
            eprintln!("error: Kafka: {e}");
            tracing::error!(error = %e, "cannot create the topics");
            return Ok(EXIT_INVALID);
        }
    }
    // One writer at a time: stand by until the lease is ours, then keep it renewed.
    let lease_ms = args.writer_lease_seconds.max(1) * 1000;
    let holder = writer_id();
    if !become_writer(&*store, &holder, lease_ms, &shutdown, &role).await? {
        return Ok(EXIT_OK); // stopped while standing by
    }
    // The writer from now on, ready once its engine can read the bus (see `drive`).
    role.set(Role::Starting);
    let lost = Arc::new(AtomicBool::new(false));
    tokio::spawn(keep_lease(
        store.clone(),
        lease_ms,
        shutdown.clone(),
        lost.clone(),
    ));
    let dyn_bus: Arc<dyn Bus> = bus;
    let mut engine = Engine::new(dyn_bus, store.clone(), metrics);
    engine.stop_retrying_on(shutdown.clone());
    let result = drive(
        args,
        config,
        store.clone(),
        engine,
        commands,
        &role,
        shutdown,
    )
    .await;
    if let Some(code) = hand_back(&*store, lost.load(Ordering::Relaxed), &result).await {
        return Ok(code);
    }
    result
}

/// Opens the engine's consumers (then this orchestrator is ready: the writer, able to work),
/// continues the stored runs, starts OBJECTS_PATH's, and drives until shutdown.
async fn drive(
    args: ServeArgs,
    config: SchedulerConfig,
    store: Arc<dyn StateStore>,
    mut engine: Engine,
    commands: tokio::sync::mpsc::Receiver<EngineCommand>,
    role: &SharedRole,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    // Reading results from before the first Ready event goes out (waiting out a broker away).
    engine.open_consumers().await?;
    role.set(Role::Writer);

    // 1. Continue what the store holds unfinished.
    let mut continuing = Vec::new();
    // Attempts in flight stay with their workers; those never published go out again soon.
    let policy = InFlightOnRestore::Republish {
        after_ms: REPUBLISH_AFTER_MS,
    };
    for header in store
        .runs()
        .await?
        .into_iter()
        .filter(|h| h.status.is_unfinished())
    {
        let (id, version) = (header.run_id.clone(), header.graph_version.clone());
        match open_stored(&*store, header, &config, policy).await {
            Ok(run) => {
                tracing::info!(run = %id, graph = %version, "continuing an unfinished run");
                continuing.push(version);
                engine.add_run(run, None, |_, _, _| {}).await?;
            }
            Err(why) => tracing::error!(run = %id, %why, "cannot continue this run"),
        }
    }

    // 2. The run of OBJECTS_PATH, unless its graph's run is already under way.
    // An empty OBJECTS_PATH (as a compose file may pass on) means no run at start-up.
    if let Some(path) = args
        .objects_path
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let text = match read_limited(path, args.max_input_bytes) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: OBJECTS_PATH: {e}");
                return Ok(EXIT_INVALID);
            }
        };
        let submission = Submission {
            text,
            source: path.display().to_string(),
            options: RunOptions {
                missing_parents: args.missing_parents.into(),
                ..RunOptions::default()
            },
            seed: None,
            strict: false,
            max_object_bytes: args.max_object_bytes,
        };
        let prepared = match open_new(submission, &config, now_ms()) {
            Ok(p) => p,
            Err(SubmitError::Invalid(report)) => {
                eprint!("{}", report.render(None));
                eprintln!(
                    "error: {}: invalid object file; nothing was run",
                    path.display()
                );
                return Ok(EXIT_INVALID);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Ok(EXIT_INVALID);
            }
        };
        for p in prepared.warnings.iter().take(MAX_LISTED_PROBLEMS) {
            tracing::warn!(problem = %p, "object file");
        }
        let header = prepared.run.header();
        if continuing.contains(&header.graph_version) {
            tracing::info!(graph = %header.graph_version, "the run of OBJECTS_PATH is already under way");
        } else {
            tracing::info!(run = %header.run_id, objects = header.objects, graph = %header.graph_version, "starting the run of OBJECTS_PATH");
            engine
                .add_run(prepared.run, Some(prepared.objects), |_, _, _| {})
                .await?;
        }
    }

    engine
        .drive_with(shutdown, DriveOptions::server(), Some(commands))
        .await?;
    tracing::info!("stopped; unfinished runs continue with the next orchestrator");
    Ok(EXIT_OK)
}
