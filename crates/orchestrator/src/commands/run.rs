//! `orchestrator run FILE`: the embedded run. Scheduler, in-process bus and in-process workers
//! for the three zones in one process; state in memory or, with --state-dir, in redb so that a
//! killed run can be resumed without running a loaded object again.

use super::load_or_report;
use super::writer_lease;
use crate::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_STATE};
use anyhow::Context;
use orchestrator::cli::RunArgs;
use orchestrator::progress;
use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    InFlightOnRestore, ObjectState, Run, RunOptions, RunSummary, SchedulerConfig,
};
use orchestrator_engine::Engine;
use orchestrator_engine::clock::now_ms;
use orchestrator_engine::metrics::Metrics;
use orchestrator_engine::open::{OpenError, new_run_id, open_snapshot};
use orchestrator_http::embedded::{HttpState, serve};
use orchestrator_protocol::Zone;
use orchestrator_store::{RunHeader, StateStore, StoreSettings, state_dir_url};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker_runtime::{HandlerSet, WorkerConfig, WorkerStats, run_worker};

/// How long `run`'s writer lease on a shared store lasts between renewals: a run killed with
/// kill -9 can be resumed this long after (a resume waits for it a little longer).
const RUN_WRITER_LEASE_MS: u64 = 5_000;

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let (mut graph, warnings) = match load_or_report(&args.input) {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    eprint!("{warnings}");
    let selection = match super::select_or_report(&graph, &args.select) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // A run kept in a store keeps its objects too (compact, and the run's graph reads them
    // there), so that another process (`serve` on the same Redis) can take it over.
    let objects =
        (args.state_dir.is_some() || args.store.is_some()).then(|| graph.rebase_on_compact());
    let run_graph = Arc::new(RunGraph::new(&graph, &selection));
    drop(graph);
    let handlers = match HandlerSet::new(args.handler.clone(), &args.zone_handlers) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let default_in_flight = (args.max_workers.max(1) as u32).saturating_mul(4);
    let config = match args.scheduler.config(default_in_flight) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let store_url = match (&args.store, &args.state_dir) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => state_dir_url(dir),
        (None, None) => "memory://".to_string(),
    };
    if args.resume && store_url.starts_with("memory") {
        eprintln!("error: --resume needs a state directory (--state-dir DIR) to resume from");
        return Ok(EXIT_INVALID);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let run = Prepared {
        graph: run_graph,
        objects,
        handlers,
        config,
    };
    runtime.block_on(execute(args, run, store_url))
}

/// What a run needs once its file is read and checked.
struct Prepared {
    graph: Arc<RunGraph>,
    /// The objects as compact JSON, to store with a new run (`None` with the memory store).
    objects: Option<Arc<String>>,
    handlers: HandlerSet,
    config: SchedulerConfig,
}

async fn execute(args: RunArgs, prepared: Prepared, store_url: String) -> anyhow::Result<i32> {
    let store_settings = StoreSettings::new(&args.redis_prefix, args.retry_ttl_seconds);
    let store = match super::open_or_report(&store_url, &store_settings).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // A store others can share (Redis): write only while holding the writer lease, as `serve`.
    let holder = writer_lease::writer_id();
    let wait = Duration::from_millis(RUN_WRITER_LEASE_MS + 1_000);
    if !writer_lease::claim_or_report(&*store, &holder, RUN_WRITER_LEASE_MS, wait).await? {
        return Ok(EXIT_STATE);
    }
    let interrupt = CancellationToken::new();
    let lease_lost = Arc::new(AtomicBool::new(false));
    let keeper = tokio::spawn(writer_lease::keep_lease(
        store.clone(),
        RUN_WRITER_LEASE_MS,
        interrupt.clone(),
        lease_lost.clone(),
    ));
    let code = drive_run(args, prepared, store.clone(), interrupt).await;
    keeper.abort();
    if let Some(code) =
        writer_lease::hand_back(&*store, lease_lost.load(Ordering::Relaxed), &code).await
    {
        return Ok(code);
    }
    code
}

/// The run itself, once the store is this process's: a new run or the stored one to resume,
/// driven to its end by the in-process workers.
async fn drive_run(
    args: RunArgs,
    prepared: Prepared,
    store: Arc<dyn StateStore>,
    interrupt: CancellationToken,
) -> anyhow::Result<i32> {
    let Prepared {
        graph,
        objects,
        handlers,
        config,
    } = prepared;
    let source = args.input.file.display().to_string();
    let Some((run, rerun)) = prepare_run(&args, &*store, &graph, &config, &source).await? else {
        return Ok(EXIT_STATE);
    };
    if run.is_finished() && !rerun {
        let summary = run.summary();
        eprintln!(
            "run {} already finished; add --rerun-failed to run its failures again",
            run.header().run_id
        );
        print_summary(run.header(), &summary, &*store, Duration::ZERO, args.json).await?;
        return Ok(if summary.all_loaded() {
            EXIT_OK
        } else {
            EXIT_FAILED
        });
    }

    let metrics = Arc::new(Metrics::new()?);
    let http_state = Arc::new(HttpState {
        metrics: metrics.clone(),
        ready: false.into(),
    });
    let stop_http = CancellationToken::new();
    if let Some(addr) = &args.http {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: --http {addr}: cannot listen: {e}");
                return Ok(EXIT_INVALID);
            }
        };
        eprintln!(
            "serving health and metrics on http://{}",
            listener.local_addr()?
        );
        tokio::spawn(serve(listener, http_state.clone(), stop_http.clone()));
    }

    let bus = Arc::new(MemoryBus::new());
    let stop_workers = CancellationToken::new();
    let mut workers = Vec::new();
    for zone in Zone::ALL {
        let handler = handlers.spec(zone).build(run.header().seed)?;
        let mut wc = WorkerConfig::new(zone);
        wc.max_workers = args.max_workers.max(1);
        wc.heartbeat_interval = Duration::from_secs(args.heartbeat_seconds.max(1));
        wc.task_timeout = args.task_timeout_seconds.map(Duration::from_secs);
        wc.worker_id = format!("embedded-{}", zone.short());
        let bus: Arc<dyn Bus> = bus.clone();
        workers.push(tokio::spawn(run_worker(
            bus,
            handler,
            wc,
            Arc::new(WorkerStats::new(zone)?),
            stop_workers.clone(),
        )));
    }

    let started = Instant::now();
    let run_id = run.header().run_id.clone();
    let mut engine = Engine::new(bus.clone(), store.clone(), metrics);
    engine
        // A new run's objects are stored with it; a resumed one has them already.
        .add_run(run, objects.filter(|_| !args.resume), |run, now, out| {
            if rerun {
                let n = run.reset_failed(now, out);
                eprintln!("running {n} failed, upstream-failed or cancelled objects again");
            }
        })
        .await?;
    let view = engine.progress();
    let progress_task = tokio::spawn(progress::show(view, args.progress));
    http_state.ready.store(true, Ordering::Relaxed);

    tokio::spawn(watch_signals(interrupt.clone()));
    let driven = engine.drive(interrupt.clone()).await;
    engine.close_progress();
    stop_workers.cancel();
    for w in workers {
        if let Ok(Err(e)) = w.await {
            tracing::error!(error = %e, "worker stopped with an error");
        }
    }
    let _ = progress_task.await;
    stop_http.cancel();
    bus.close();
    driven?;

    let run = engine
        .run(&run_id)
        .context("the run vanished from the engine")?;
    let summary = run.summary();
    print_summary(
        run.header(),
        &summary,
        &*store,
        started.elapsed(),
        args.json,
    )
    .await?;
    Ok(if interrupt.is_cancelled() {
        EXIT_INTERRUPTED
    } else if summary.all_loaded() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// A new run, or the stored one to resume. `None` after printing why the state directory
/// cannot be used as asked.
async fn prepare_run(
    args: &RunArgs,
    store: &dyn StateStore,
    graph: &Arc<RunGraph>,
    config: &SchedulerConfig,
    source: &str,
) -> anyhow::Result<Option<(Run, bool)>> {
    let runs = store.runs().await?;
    let latest = runs.last();
    let where_ = args
        .state_dir
        .as_ref()
        .map_or_else(|| store.kind().to_string(), |d| d.display().to_string());
    if !args.resume {
        if let Some(m) = latest.filter(|m| m.status.is_unfinished()) {
            eprintln!(
                "error: {where_} holds unfinished run {} (from {}); add --resume to finish it, or use another --state-dir",
                m.run_id, m.source
            );
            return Ok(None);
        }
        let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
        let now = now_ms();
        // The selection it was started with, so that another process can rebuild it.
        let options = RunOptions {
            targets: args.select.target_ids(),
            zone: args.select.zone,
            missing_parents: args.input.missing_parents.into(),
        };
        let header = RunHeader::new(new_run_id(seed, now), seed)
            .with_source(source)
            .with_options(options)
            .created_at(now);
        return Ok(Some((
            Run::new(graph.clone(), config.clone(), header),
            false,
        )));
    }
    let Some(header) = latest.cloned() else {
        eprintln!("error: nothing to resume: {where_} holds no run");
        return Ok(None);
    };
    let (run_id, stored_source) = (header.run_id.clone(), header.source.clone());
    let run = match open_snapshot(
        store,
        graph.clone(),
        header,
        config,
        InFlightOnRestore::Resend,
    )
    .await
    {
        Ok(run) => run,
        Err(OpenError::GraphMismatch(m)) => {
            eprintln!(
                "error: refusing to resume run {run_id}: it runs graph version {} (from {stored_source}), but {source} has graph version {}; \
                 the objects, zones or parents differ. Use another --state-dir to start a new run.",
                m.stored, m.found
            );
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "resuming run {run_id}: {} of {} objects already loaded",
        run.counts().in_state(ObjectState::Loaded),
        graph.len()
    );
    Ok(Some((run, args.rerun_failed)))
}

async fn watch_signals(interrupt: CancellationToken) {
    let mut count = 0;
    loop {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        count += 1;
        if count == 1 {
            eprintln!(
                "interrupted: finishing the attempts in flight (interrupt again to quit now)"
            );
            interrupt.cancel();
        } else {
            eprintln!(
                "interrupted twice: quitting now; resume with --resume if a state directory is set"
            );
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
}

async fn print_summary(
    meta: &RunHeader,
    s: &RunSummary,
    store: &dyn StateStore,
    elapsed: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let dead = store.dead_letters(&meta.run_id).await.unwrap_or_default();
    if json {
        let v = serde_json::json!({ "run_id": meta.run_id, "graph_version": meta.graph_version, "summary": s, "dead_letters": dead, "seconds": elapsed.as_secs_f64() });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "run {} (graph {}) in {:.2} s",
        meta.run_id,
        meta.graph_version,
        elapsed.as_secs_f64()
    );
    outln!(
        "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8} {:>10}",
        "zone",
        "objects",
        "loaded",
        "failed",
        "upstream_failed",
        "cancelled",
        "retries",
        "duration"
    );
    for z in Zone::ALL {
        let zs = &s.zones[z.index()];
        outln!(
            "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8} {:>9.2}s",
            z.as_str(),
            zs.objects,
            zs.loaded,
            zs.failed,
            zs.upstream_failed,
            zs.cancelled,
            zs.retries,
            zs.duration_ms as f64 / 1000.0
        );
    }
    outln!(
        "{:<16} {:>8} {:>8} {:>8} {:>16} {:>10} {:>8}",
        "total",
        s.objects,
        s.loaded,
        s.failed,
        s.upstream_failed,
        s.cancelled,
        s.retries
    );
    for d in dead.iter().take(20) {
        outln!(
            "dead letter: object {} (attempt {}): {}",
            d.id,
            d.attempt,
            d.reason
        );
    }
    if dead.len() > 20 {
        outln!(
            "... and {} more dead letters (orchestrator status --json)",
            dead.len() - 20
        );
    }
    Ok(())
}
