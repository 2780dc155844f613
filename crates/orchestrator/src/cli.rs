//! The command line: subcommands and their options. Each option with an env variable keeps the
//! old system's name where it had one; the command line beats the environment.

use crate::input::DEFAULT_MAX_INPUT_BYTES;
use crate::progress::ProgressMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use orchestrator_core::graph::DEFAULT_MAX_OBJECT_BYTES;
use orchestrator_core::graph::MissingParents;
use orchestrator_core::scheduler::{SchedulerConfig, ZonePolicy};
use orchestrator_http::api_body::DEFAULT_SUBMIT_MEMORY_BYTES;
use orchestrator_protocol::{ObjectId, Zone};
use std::path::PathBuf;
use worker_runtime::HandlerSpec;

pub use crate::cli_client::{OBJECT_STATES, RunsArgs, RunsCommand, ServerArgs, SubmitArgs};
pub use crate::cli_schedule::{ScheduleArgs, ScheduleFlags};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Schedules graphs of data objects and runs their workers."
)]
pub struct Cli {
    /// A configuration file (TOML, YAML or JSON) of settings by their env names (KAFKA_BOOTSTRAP
    /// = "kafka:9092"); the environment and the command line override it.
    #[arg(long, global = true, env = "ORCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter (error, warn, info, debug, or a tracing directive such as orchestrator=debug).
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs every object of FILE in one process: scheduler, in-process bus and workers.
    Run(Box<RunArgs>),
    /// Checks FILE and reports every problem; exits 2 if it cannot run.
    Validate(ValidateArgs),
    /// Shows the levels, critical path and savings of a run of FILE.
    Plan(PlanArgs),
    /// Writes a seeded layered graph of N objects in the old format.
    Generate(GenerateArgs),
    /// A dry run of the schedule: which objects would run at a moment, and why (due by their
    /// `Fréquence`, a stale ancestor, following a parent), and which ancestors are skipped as
    /// fresh; from each object's `Lastrun`. Nothing runs.
    Schedule(ScheduleArgs),
    /// Shows the runs kept in a state directory.
    Status(StatusArgs),
    /// Runs the orchestrator as a service: runs from OBJECTS_PATH, workers over Kafka, state in
    /// Redis (or redb), health and metrics over HTTP.
    Serve(Box<ServeArgs>),
    /// Submits FILE to a running `serve` (its runs API); with --wait, follows the run to its end.
    Submit(SubmitArgs),
    /// The runs of a running `serve` (its runs API): list, show, cancel, rerun, retry, logs.
    Runs(RunsArgs),
    /// Prints the configuration `serve` would run with (command line > environment > config
    /// file > defaults), each setting with where it came from; secrets are hidden.
    Config(Box<ConfigArgs>),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MissingParentsArg {
    /// A parent not in the file is an error.
    Error,
    /// A parent not in the file is taken as already loaded elsewhere.
    External,
}

impl From<MissingParentsArg> for MissingParents {
    fn from(m: MissingParentsArg) -> Self {
        match m {
            MissingParentsArg::Error => MissingParents::Error,
            MissingParentsArg::External => MissingParents::External,
        }
    }
}

/// How a file is read and checked.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The object definitions: a JSON array in the old system's format.
    pub file: PathBuf,
    /// What a parent that is not in the file means.
    #[arg(long, value_enum, default_value_t = MissingParentsArg::Error)]
    pub missing_parents: MissingParentsArg,
    /// Treat warnings (noisy parents, layer inversions, …) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Refuse files larger than this.
    #[arg(long, default_value_t = DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,
    /// An object whose JSON is larger than this is an error (each event carries it whole).
    #[arg(long, env = "MAX_OBJECT_BYTES", default_value_t = DEFAULT_MAX_OBJECT_BYTES)]
    pub max_object_bytes: usize,
}

/// Which objects take part.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Build only these objects and the ancestors they need (repeatable).
    #[arg(long = "target", value_name = "ID")]
    pub targets: Vec<u64>,
    /// Build only the objects of this zone and the ancestors they need.
    #[arg(long)]
    pub zone: Option<Zone>,
}

impl SelectArgs {
    pub fn target_ids(&self) -> Vec<ObjectId> {
        self.targets.iter().map(|&t| ObjectId(t)).collect()
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the summary and problems as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many objects.
    #[arg(long)]
    pub objects: usize,
    /// Seed of the generator: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Standardized and application objects get 1 to K parents.
    #[arg(long, default_value_t = 3)]
    pub max_parents: usize,
    /// Write the old system's whole field set.
    #[arg(long)]
    pub full: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Keep the run's state in DIR (an embedded transactional store), so it can be resumed.
    #[arg(long, env = "ORCH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The state store by URL: memory://, redb://PATH or redis://HOST:PORT (overrides --state-dir).
    #[arg(long, env = "STATE_STORE_URL")]
    pub store: Option<String>,
    /// Prefix of every Redis key (with a redis:// store).
    #[arg(long, env = "REDIS_PREFIX", default_value = "orch")]
    pub redis_prefix: String,
    /// Seconds a finished run is kept in the store (0: forever); Redis expires its keys, the
    /// embedded store removes it when a later run finishes.
    #[arg(long, env = "RETRY_TTL_SECONDS", default_value_t = 604_800)]
    pub retry_ttl_seconds: u64,
    /// Finish the run kept in the state directory instead of starting a new one.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: run the failed and upstream-failed objects of a finished run again.
    #[arg(long, requires = "resume")]
    pub rerun_failed: bool,
    /// Handler for every zone: simulate[:MS[:FAIL_PROB]] (pretend work, to try it out),
    /// command:PROGRAM [ARGS...] or http:URL. Required for a new run (or --zone-handler for
    /// each zone); a resumed run keeps the handlers it was started with unless given again.
    #[arg(long, env = "HANDLER")]
    pub handler: Option<HandlerSpec>,
    /// Handler for one zone: ZONE=SPEC (repeatable), e.g. application=command:./build.sh.
    #[arg(long = "zone-handler", value_name = "ZONE=SPEC")]
    pub zone_handlers: Vec<String>,
    /// Tasks each zone's workers run at once.
    #[arg(long, env = "MAX_WORKERS", default_value_t = 16)]
    pub max_workers: usize,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// How often a running attempt heartbeats.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// An attempt running longer is stopped (its program killed) and retried.
    #[arg(long, env = "TASK_TIMEOUT_SECONDS")]
    pub task_timeout_seconds: Option<u64>,
    /// Bytes of each attempt's output kept (a program's stdout and stderr, a response's
    /// body): the head and the tail, with a marker between.
    #[arg(long, env = "ATTEMPT_OUTPUT_BYTES", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(0..=524_288))]
    pub attempt_output_bytes: u32,
    /// Seed of retry jitter and of `simulate` (random when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Serve /health/liveness, /health/readiness and /metrics on this address while running.
    #[arg(long, env = "HTTP_ADDR")]
    pub http: Option<String>,
    /// How progress is shown on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Print the final summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub schedule: ScheduleFlags,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// An object file to run at start-up (a restart continues its unfinished run instead);
    /// with --schedule, the catalog whose objects run by their frequencies.
    #[arg(long, env = "OBJECTS_PATH")]
    pub objects_path: Option<PathBuf>,
    /// What a parent that is not in the file means.
    #[arg(long, env = "MISSING_PARENTS", value_enum, default_value_t = MissingParentsArg::Error)]
    pub missing_parents: MissingParentsArg,
    /// Refuse object files (and `POST /api/runs` bodies) larger than this.
    #[arg(long, env = "MAX_INPUT_BYTES", default_value_t = DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,
    /// An object whose JSON is larger than this is refused at submission: each event carries
    /// it whole, and must fit in one broker message.
    #[arg(long, env = "MAX_OBJECT_BYTES", default_value_t = DEFAULT_MAX_OBJECT_BYTES)]
    pub max_object_bytes: usize,
    #[command(flatten)]
    pub kafka: orchestrator_bus_kafka::KafkaArgs,
    /// The state store by URL: redis://[user:password@]host:port[/db], rediss://…, redb://PATH.
    #[arg(long = "store", env = "REDIS_URL")]
    pub store_url: Option<String>,
    /// Redis host, when no URL is given.
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,
    /// Redis port, with REDIS_HOST.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// Keep the state in DIR instead (a single orchestrator process, no Redis).
    #[arg(long, env = "ORCH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_PREFIX", default_value = "orch")]
    pub redis_prefix: String,
    /// Seconds a finished run is kept in the store (0: forever); Redis expires its keys, the
    /// embedded store removes it when a later run finishes.
    #[arg(long, env = "RETRY_TTL_SECONDS", default_value_t = 604_800)]
    pub retry_ttl_seconds: u64,
    /// Seconds the writer lease lasts: a standby orchestrator takes over this long after the
    /// writer died (a clean stop hands over at once).
    #[arg(long, env = "WRITER_LEASE_SECONDS", default_value_t = 10)]
    pub writer_lease_seconds: u64,
    /// Address of the runs API, /health/* and /metrics (port 0 picks a free port). Default:
    /// 127.0.0.1:8080 without API tokens, 0.0.0.0:8080 with them.
    #[arg(long = "http", env = "HTTP_ADDR")]
    pub http: Option<String>,
    /// Also serve /health/* and /metrics alone on this address: probes and scrapes that
    /// connection floods on HTTP_ADDR cannot reach.
    #[arg(long = "health-addr", env = "HEALTH_ADDR")]
    pub health_addr: Option<String>,
    /// A read-write token of the runs API (`Authorization: Bearer TOKEN`); at least 16
    /// characters. Health and metrics stay open.
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// A file of API tokens, one per line: `ro TOKEN` (read-only) or `rw TOKEN` (read-write).
    #[arg(long, env = "API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// Memory the bodies of submissions in progress may hold together; past it `POST
    /// /api/runs` answers 503 with Retry-After.
    #[arg(long, env = "SUBMIT_MEMORY_BYTES", default_value_t = DEFAULT_SUBMIT_MEMORY_BYTES)]
    pub submit_memory_bytes: u64,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    #[command(flatten)]
    pub schedule: ScheduleFlags,
}

impl ServeArgs {
    /// The store's URL from --store/REDIS_URL, REDIS_HOST and REDIS_PORT, or --state-dir.
    pub fn store_url(&self) -> Option<String> {
        // An empty value (a compose file passing on an unset variable) is no value.
        if let Some(url) = self.store_url.as_ref().filter(|u| !u.is_empty()) {
            return Some(url.clone());
        }
        if let Some(host) = self.redis_host.as_ref().filter(|h| !h.is_empty()) {
            return Some(format!("redis://{host}:{}", self.redis_port));
        }
        self.state_dir
            .as_ref()
            .map(|d| orchestrator_store::state_dir_url(d))
    }
}

/// How the scheduler retries, leases and limits; shared by `run` and `serve`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Objects of one zone dispatched and not yet answered (default: 4 × --max-workers for
    /// `run`, 1000 for `serve`).
    #[arg(long, env = "MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u32>,
    /// Retries after a failed attempt.
    #[arg(long, env = "MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// First retry waits about this long (doubling, with jitter).
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest wait between retries.
    #[arg(long, env = "RETRY_CAP_MS", default_value_t = 60_000)]
    pub retry_cap_ms: u64,
    /// Backoff for one zone: ZONE=BASE_MS:CAP_MS (repeatable).
    #[arg(long = "zone-retry", value_name = "ZONE=BASE_MS:CAP_MS")]
    pub zone_retries: Vec<String>,
    /// An attempt with no heartbeat for this long has failed.
    #[arg(long, env = "LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// An attempt no worker has started after this long has failed (workers that send no
    /// Started event, as the old system's, rely on it).
    #[arg(long, env = "START_TIMEOUT_SECONDS")]
    pub start_timeout_seconds: Option<u64>,
}

impl SchedulerArgs {
    /// The scheduler's configuration; `default_in_flight` when --max-in-flight is not given.
    pub fn config(&self, default_in_flight: u32) -> Result<SchedulerConfig, String> {
        let max_in_flight = self.max_in_flight.unwrap_or(default_in_flight).max(1);
        let policy = ZonePolicy {
            max_in_flight: Some(max_in_flight),
            backoff_base_ms: self.retry_base_ms,
            backoff_cap_ms: self.retry_cap_ms,
        };
        let mut config = SchedulerConfig {
            max_retries: self.max_retries,
            lease_ms: self.lease_seconds.saturating_mul(1000).max(1),
            schedule_to_start_ms: self
                .start_timeout_seconds
                .map(|s| s.saturating_mul(1000).max(1)),
            zones: [policy; 3],
        };
        for spec in &self.zone_retries {
            let bad = || {
                format!(
                    "--zone-retry {spec:?}: expected ZONE=BASE_MS:CAP_MS, for example raw=500:30000"
                )
            };
            let (zone, times) = spec.split_once('=').ok_or_else(bad)?;
            let zone: Zone = zone.parse().map_err(|e| format!("--zone-retry: {e}"))?;
            let (base, cap) = times.split_once(':').ok_or_else(bad)?;
            let z = &mut config.zones[zone.index()];
            z.backoff_base_ms = base.trim().parse().map_err(|_| bad())?;
            z.backoff_cap_ms = cap.trim().parse().map_err(|_| bad())?;
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state directory of `run --state-dir`.
    #[arg(long, env = "ORCH_STATE_DIR", required_unless_present = "store")]
    pub state_dir: Option<PathBuf>,
    /// Or the state store by URL (redb://PATH, redis://HOST:PORT).
    #[arg(long, env = "STATE_STORE_URL")]
    pub store: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_PREFIX", default_value = "orch")]
    pub redis_prefix: String,
    /// One run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// One object of the run: its state and every attempt with its output (as `runs logs`).
    #[arg(long, value_name = "ID")]
    pub object: Option<u64>,
    /// Print JSON, with every object's state.
    #[arg(long)]
    pub json: bool,
}
