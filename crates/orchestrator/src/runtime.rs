//! The one way `run`, `run --schedule` and `serve` assemble what drives runs, once the store is
//! open: the process's metrics (its own and the engine's), the clock every moment comes from,
//! the runs API over the engine's read facade with the console's live view, and the engine on a
//! bus and that store. Each command adds what is its own (workers, a schedule, a standby).

use crate::app_error::AppError;
use orchestrator_bus::Bus;
use orchestrator_core::scheduler::SchedulerConfig;
use orchestrator_engine::clock::{Clock, WallClock};
use orchestrator_engine::live::{LiveSender, live_channel};
use orchestrator_engine::metrics::{Metrics, MetricsError};
use orchestrator_engine::open_schedule::ScheduleSettings;
use orchestrator_engine::reads::RunReads;
use orchestrator_engine::{Engine, EngineCommand};
use orchestrator_http::api::ApiState;
use orchestrator_http::api_body::{DEFAULT_SUBMIT_MEMORY_BYTES, SubmitBudget};
use orchestrator_http::auth::ApiTokens;
use orchestrator_http::role::SharedRole;
use orchestrator_platform::http_server::HttpLimits;
use orchestrator_store::StateStore;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How the runs API takes submissions and who may call it.
pub(crate) struct ApiSettings {
    pub tokens: Arc<ApiTokens>,
    pub role: Arc<SharedRole>,
    pub max_input_bytes: u64,
    pub max_object_bytes: usize,
    pub submit_memory_bytes: u64,
    pub schedule: Option<ScheduleSettings>,
}

impl ApiSettings {
    /// An embedded run's API: no tokens, this process the writer, the default limits.
    pub fn embedded(schedule: Option<ScheduleSettings>) -> ApiSettings {
        let role = Arc::new(SharedRole::default());
        role.set(orchestrator_http::role::Role::Writer);
        ApiSettings {
            tokens: Arc::new(ApiTokens::default()),
            role,
            max_input_bytes: crate::input::DEFAULT_MAX_INPUT_BYTES,
            max_object_bytes: orchestrator_core::graph::DEFAULT_MAX_OBJECT_BYTES,
            submit_memory_bytes: DEFAULT_SUBMIT_MEMORY_BYTES,
            schedule,
        }
    }
}

/// What drives runs in this process, before its engine exists.
pub(crate) struct Runtime {
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    store: Arc<dyn StateStore>,
    config: SchedulerConfig,
    /// The API's commands for the engine and the live view, once the API is built.
    api: Option<(mpsc::Receiver<EngineCommand>, LiveSender)>,
}

impl Runtime {
    /// The metrics (with the process's) and the clock, over an open store.
    pub fn new(store: Arc<dyn StateStore>, config: &SchedulerConfig) -> Result<Runtime, AppError> {
        let metrics = Arc::new(Metrics::new()?);
        orchestrator_platform::process_metrics::register(metrics.registry())
            .map_err(MetricsError::from)?;
        Ok(Runtime {
            metrics,
            clock: Arc::new(WallClock),
            store,
            config: config.clone(),
            api: None,
        })
    }

    /// The runs API's state: it reads and acts through the engine this runtime builds.
    pub fn api(&mut self, settings: ApiSettings) -> Arc<ApiState> {
        // Commands wait here until the engine drives.
        let (commands, received) = mpsc::channel(64);
        let live = live_channel();
        let reads = RunReads::new(commands, self.store.clone(), self.config.clone());
        self.api = Some((received, live.clone()));
        Arc::new(ApiState {
            reads: Arc::new(reads),
            clock: self.clock.clone(),
            max_input_bytes: settings.max_input_bytes,
            max_object_bytes: settings.max_object_bytes,
            role: settings.role,
            tokens: settings.tokens,
            budget: SubmitBudget::new(settings.submit_memory_bytes, settings.max_input_bytes),
            schedule: settings.schedule,
            live: Some(live),
            subscribers: Arc::new(tokio::sync::Semaphore::new(
                HttpLimits::from_env().max_event_subscribers,
            )),
        })
    }

    /// The engine on `bus`, reading this runtime's clock and feeding the API's live view; and
    /// the API's commands to drive it with (`None` without an API).
    pub fn engine(&mut self, bus: Arc<dyn Bus>) -> (Engine, Option<mpsc::Receiver<EngineCommand>>) {
        let engine = Engine::new(bus, self.store.clone(), self.metrics.clone())
            .with_clock(self.clock.clone());
        match self.api.take() {
            Some((commands, live)) => (engine.with_live(live), Some(commands)),
            None => (engine, None),
        }
    }
}
