//! `orchestrator serve`: the server of the distributed mode (see `orchestrator::server`). This
//! command checks the settings, starts the runtime and maps the outcome to an exit code.

use crate::{EXIT_INVALID, EXIT_OK};
use anyhow::Context;
use orchestrator::cli::ServeArgs;
use orchestrator::server::{Server, run_server};
use orchestrator_bus_kafka::KafkaBus;
use orchestrator_engine::open_schedule::ScheduleSettings;
use orchestrator_http::auth::ApiTokens;
use orchestrator_store::StoreSettings;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default in-flight window per zone for a server.
const SERVE_IN_FLIGHT: u32 = 1000;

/// Default start timeout of a server: workers that send no Started event (the old system's)
/// and Ready events lost on the way are retried after this long.
const SERVE_START_TIMEOUT_MS: u64 = 300_000;

/// What `serve` checked of its settings before it starts anything.
pub struct Checked {
    config: orchestrator_core::scheduler::SchedulerConfig,
    settings: orchestrator_bus_kafka::KafkaSettings,
    store_url: String,
    schedule: Option<ScheduleSettings>,
    tokens: Arc<ApiTokens>,
}

/// The settings `serve` refuses to start with, and why (`config` says the same, exit 2).
pub fn check(args: &ServeArgs) -> Result<Checked, String> {
    let mut config = args
        .scheduler
        .config(SERVE_IN_FLIGHT)
        .map_err(|e| e.to_string())?;
    config
        .schedule_to_start_ms
        .get_or_insert(SERVE_START_TIMEOUT_MS);
    let settings = args.kafka.settings().map_err(|e| e.to_string())?;
    let store_url = args.store_url().ok_or(
        "serve needs a state store: set REDIS_URL (or REDIS_HOST), or --state-dir for a single process",
    )?;
    let schedule = match args.schedule.read() {
        _ if !args.schedule.schedule => None,
        Ok((zone, catchup)) => {
            if args
                .objects_path
                .as_ref()
                .is_none_or(|p| p.as_os_str().is_empty())
            {
                return Err("--schedule (SCHEDULE) needs OBJECTS_PATH: the catalog whose objects run by their frequencies".into());
            }
            Some(ScheduleSettings {
                zone,
                catchup,
                missing_parents: args.missing_parents.into(),
                max_object_bytes: args.max_object_bytes,
            })
        }
        Err(e) => return Err(e.to_string()),
    };
    let tokens = ApiTokens::load(args.api_token.as_deref(), args.api_tokens_file.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(Checked {
        config,
        settings,
        store_url,
        schedule,
        tokens: Arc::new(tokens),
    })
}

/// What `serve` uses where a setting is not given and its default is worked out rather than
/// written in the option: `config` shows these as defaults.
pub fn computed_defaults(args: &ServeArgs) -> Vec<(&'static str, String)> {
    // The tokens as serve reads them (settings it refuses are reported by `check`).
    let tokens = ApiTokens::load(args.api_token.as_deref(), args.api_tokens_file.as_deref())
        .is_ok_and(|t| !t.is_empty());
    vec![
        ("MAX_IN_FLIGHT", SERVE_IN_FLIGHT.to_string()),
        (
            "START_TIMEOUT_SECONDS",
            (SERVE_START_TIMEOUT_MS / 1000).to_string(),
        ),
        ("HTTP_ADDR", orchestrator::server::default_http_addr(tokens)),
    ]
}

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let Checked {
        config,
        settings,
        store_url,
        schedule,
        tokens,
    } = match check(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let server = runtime.block_on(async {
        // librdkafka refuses settings it does not know (an unknown or invalid property).
        KafkaBus::new(settings).map(|bus| Server {
            config,
            bus: Arc::new(bus),
            store_url,
            store_settings: StoreSettings::new(&args.redis_prefix, args.retry_ttl_seconds),
            tokens,
            http: args.http.clone(),
            health_addr: args.health_addr.clone(),
            writer_lease: Duration::from_secs(args.writer_lease_seconds.max(1)),
            objects_path: args.objects_path.clone(),
            missing_parents: args.missing_parents.into(),
            max_input_bytes: args.max_input_bytes,
            max_object_bytes: args.max_object_bytes,
            submit_memory_bytes: args.submit_memory_bytes,
            schedule,
        })
    });
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: Kafka: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let shutdown = CancellationToken::new();
    runtime.spawn(orchestrator_platform::signals::cancel_on_signal(
        shutdown.clone(),
    ));
    Ok(match runtime.block_on(run_server(server, shutdown)) {
        Ok(()) => EXIT_OK,
        Err(e) => super::report_app_error(&e),
    })
}
