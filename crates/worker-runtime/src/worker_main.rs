//! The shared entry point of the three worker binaries: reads their settings (the old system's
//! env names), then consumes their zone's Ready events from Kafka in consumer group
//! `worker-<zone>`, runs the handler and reports. SIGTERM or Ctrl-C: stop fetching, finish and
//! report what was started, commit, leave the group.

use crate::runtime::{WorkerConfig, WorkerStats, run_worker};
use crate::spec::HandlerSpec;
use clap::{CommandFactory, FromArgMatches, Parser};
use orchestrator_bus::Bus;
use orchestrator_bus_kafka::{KafkaArgs, KafkaBus, ensure_topics_with_retry};
use orchestrator_platform::config_file::LayeredError;
use orchestrator_platform::health::{self, MetricsRender, ReadinessCheck};
use orchestrator_protocol::Zone;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings every worker binary accepts; each has an environment variable.
#[derive(Debug, Parser)]
#[command(version)]
pub struct WorkerArgs {
    /// A configuration file (TOML, YAML or JSON) of settings by their env names; the
    /// environment and the command line override it.
    #[arg(long, env = "ORCH_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Tasks run at once.
    #[arg(long, env = "MAX_WORKERS", default_value_t = 4)]
    pub max_workers: usize,
    /// The handler SPEC: command:PROGRAM [ARGS...], http:URL, or simulate[:MS[:FAIL_PROB]]
    /// for a demo. Required: a worker never pretends to load by default.
    #[arg(long, env = "HANDLER")]
    pub handler: Option<HandlerSpec>,
    /// Address for /health/* and /metrics; port 0 picks a free port (logged).
    #[arg(long, env = "WORKER_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// A task running longer is stopped (its program killed) and reported failed (retryable).
    #[arg(long, env = "TASK_TIMEOUT_SECONDS")]
    pub task_timeout_seconds: Option<u64>,
    /// How often a running task heartbeats.
    #[arg(long, env = "HEARTBEAT_SECONDS", default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// Name of this worker in results (default: zone and process id).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// This worker's name in its layer's consumer group, kept across its restarts and unique
    /// among the layer's workers (a container or pod name): a restarted worker takes its
    /// partitions back at once instead of after the group's session timeout (Kafka static
    /// membership). Unset: a new member at each start.
    #[arg(long, env = "GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
    /// Bytes of each attempt's output (a program's stdout and stderr, a response's body) sent
    /// with its result: the head and the tail, with a marker between. At most 512 KiB, so that
    /// a result stays well under the broker's message limit.
    #[arg(long, env = "ATTEMPT_OUTPUT_BYTES", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(0..=524_288))]
    pub attempt_output_bytes: u32,
    /// Seed of the `simulate` handler.
    #[arg(long, env = "SIMULATE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Log filter.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log lines as JSON.
    #[arg(long, env = "LOG_FORMAT", default_value = "human")]
    pub log_format: String,
}

/// Exit code when the worker cannot start with its settings.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when the worker stopped on an error.
pub const EXIT_ERROR: i32 = 1;

/// Runs a worker binary for `zone`; returns the process exit code.
pub fn worker_main(zone: Zone) -> i32 {
    let parsed = orchestrator_platform::config_file::parse_layered(
        WorkerArgs::command(),
        std::env::args_os().collect(),
    )
    .map_err(|e| match e {
        LayeredError::Clap(e) => e,
        LayeredError::File(e) => {
            WorkerArgs::command().error(clap::error::ErrorKind::InvalidValue, e)
        }
    })
    .and_then(|(m, _)| WorkerArgs::from_arg_matches(&m));
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_CONFIG } else { 0 };
        }
    };
    orchestrator_platform::logging::init(&args.log_level, args.log_format == "json", "info");
    orchestrator_platform::http_server::raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(run(zone, args))
}

async fn run(zone: Zone, args: WorkerArgs) -> i32 {
    let mut settings = match args.kafka.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    // No task runs longer: an idle member's rejoin watch waits at least this long.
    settings.longest_task = args.task_timeout_seconds.map(Duration::from_secs);
    settings.group_instance_id = args
        .group_instance_id
        .clone()
        .filter(|id| !id.trim().is_empty());
    let Some(spec) = args.handler.clone() else {
        eprintln!(
            "error: no handler: set HANDLER (or --handler) to command:PROGRAM, http:URL, or simulate[:MS] for a demo"
        );
        return EXIT_CONFIG;
    };
    let handler = match spec.build_keeping(args.seed, args.attempt_output_bytes as usize) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let bus = match KafkaBus::new(settings) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let stats = match WorkerStats::new(zone) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: metrics: {e}");
            return EXIT_ERROR;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(orchestrator_platform::signals::cancel_on_signal(
        shutdown.clone(),
    ));
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = &args.http_addr
        && let Err(code) = serve_health(zone, addr, &bus, &stats, &ready, &shutdown).await
    {
        return code;
    }
    match ensure_topics_with_retry(&bus, &shutdown).await {
        Ok(()) => {}
        Err(_) if shutdown.is_cancelled() => return 0, // stopped before the broker was reached
        Err(e) => {
            // Not a matter of waiting: the settings (credentials, properties) are wrong.
            eprintln!("error: Kafka: {e}");
            tracing::error!(error = %e, "cannot create the topics");
            return EXIT_CONFIG;
        }
    }
    let mut config = WorkerConfig::new(zone);
    config.max_workers = args.max_workers.max(1);
    config.task_timeout = args.task_timeout_seconds.map(Duration::from_secs);
    config.heartbeat_interval = Duration::from_secs(args.heartbeat_seconds.max(1));
    if let Some(id) = args.worker_id {
        config.worker_id = id;
    }
    tracing::info!(zone = %zone, handler = %spec, max_workers = config.max_workers, group = %config.group, "worker started");
    ready.store(true, Ordering::Relaxed);
    let dyn_bus: Arc<dyn Bus> = bus.clone();
    match run_worker(dyn_bus, handler, config, stats, shutdown).await {
        Ok(()) => {
            tracing::info!(zone = %zone, "worker stopped");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "worker stopped on an error");
            EXIT_ERROR
        }
    }
}

/// Serves health and metrics on `addr` until `shutdown`; `Err` holds the exit code when it
/// cannot (the address, the metrics).
async fn serve_health(
    zone: Zone,
    addr: &str,
    bus: &Arc<KafkaBus>,
    stats: &Arc<WorkerStats>,
    ready: &Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> Result<(), i32> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: WORKER_HTTP_ADDR {addr}: cannot listen: {e}");
            return Err(EXIT_CONFIG);
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(zone = %zone, address = %local, "serving health and metrics");
    eprintln!("serving health and metrics on http://{local}");
    let registry = prometheus::Registry::new();
    let counters = zone_counter(
        "orchestrator_worker_messages_rejected_total",
        "Ready messages that could not be read, sent to the DLQ topic with the reason.",
        zone,
    )
    .and_then(|rejected| {
        let rejoins = zone_counter(
            "orchestrator_worker_group_rejoins_total",
            "Times the worker joined its group again, left without partitions while events waited.",
            zone,
        )?;
        let pauses = zone_counter(
            "orchestrator_worker_bus_idle_pauses_total",
            "Times the worker's consumers of Ready events and control messages stopped fetching, idle, to probe for events instead (KAFKA_IDLE_PAUSE_MS).",
            zone,
        )?;
        Ok((rejected, rejoins, pauses))
    });
    let (rejected, rejoins, pauses) = match counters {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: metrics: {e}");
            return Err(EXIT_ERROR);
        }
    };
    let registered = stats
        .register(&registry)
        .and_then(|()| registry.register(Box::new(rejected.clone())))
        .and_then(|()| registry.register(Box::new(rejoins.clone())))
        .and_then(|()| registry.register(Box::new(pauses.clone())))
        .and_then(|()| orchestrator_platform::process_metrics::register(&registry));
    if let Err(e) = registered {
        eprintln!("error: metrics: {e}");
        return Err(EXIT_ERROR);
    }
    let render_bus = bus.clone();
    let render: MetricsRender = Arc::new(move || {
        health::catch_up(&rejected, render_bus.malformed_count());
        health::catch_up(&rejoins, render_bus.rejoin_count());
        health::catch_up(&pauses, render_bus.idle_pause_count());
        let mut buf = Vec::new();
        let _ = prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut buf,
        );
        String::from_utf8(buf).unwrap_or_default()
    });
    let (ready_flag, probe_bus) = (ready.clone(), bus.clone());
    let check: ReadinessCheck = Arc::new(move || {
        let (up, bus) = (ready_flag.load(Ordering::Relaxed), probe_bus.clone());
        Box::pin(async move {
            if !up {
                return Err("not connected to Kafka yet".to_string());
            }
            bus.check(Duration::from_secs(1))
                .await
                .map_err(|e| format!("Kafka: {e}"))
        })
    });
    tokio::spawn(health::serve(
        listener,
        health::health_router(check, render),
        shutdown.clone(),
    ));
    Ok(())
}

/// A counter of the bus's, labelled with the worker's zone.
fn zone_counter(
    name: &str,
    help: &str,
    zone: Zone,
) -> Result<prometheus::IntCounter, prometheus::Error> {
    prometheus::IntCounter::with_opts(
        prometheus::Opts::new(name, help).const_label("zone", zone.as_str()),
    )
}
