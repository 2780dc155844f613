//! The command line: subcommands and their options. Each option with an env variable keeps the
//! old system's name where it had one; the command line beats the environment.

use crate::input::DEFAULT_MAX_INPUT_BYTES;
use crate::progress::ProgressMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use orchestrator_core::graph::MissingParents;
use orchestrator_protocol::{ObjectId, Zone};
use std::path::PathBuf;
use worker_base::HandlerSpec;

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Schedules graphs of data objects and runs their workers."
)]
pub struct Cli {
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
    /// Shows the runs kept in a state directory.
    Status(StatusArgs),
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
    /// Seconds a finished run's Redis keys are kept (0: forever).
    #[arg(long, env = "RETRY_TTL_SECONDS", default_value_t = 604_800)]
    pub retry_ttl_seconds: u64,
    /// Finish the run kept in the state directory instead of starting a new one.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: run the failed and upstream-failed objects of a finished run again.
    #[arg(long, requires = "resume")]
    pub rerun_failed: bool,
    /// Handler for every zone: simulate[:MS[:FAIL_PROB]], command:PROGRAM [ARGS...] or http:URL.
    #[arg(long, env = "HANDLER", default_value = "simulate:200")]
    pub handler: HandlerSpec,
    /// Handler for one zone: ZONE=SPEC (repeatable), e.g. application=command:./build.sh.
    #[arg(long = "zone-handler", value_name = "ZONE=SPEC")]
    pub zone_handlers: Vec<String>,
    /// Tasks each zone's workers run at once.
    #[arg(long, env = "MAX_WORKERS", default_value_t = 16)]
    pub max_workers: usize,
    /// Objects of one zone dispatched and not yet answered (default: 4 × --max-workers).
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
    /// How often a running attempt heartbeats.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// An attempt running longer is stopped (its program killed) and retried.
    #[arg(long, env = "TASK_TIMEOUT_SECONDS")]
    pub task_timeout_seconds: Option<u64>,
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
    /// Print JSON, with every object's state.
    #[arg(long)]
    pub json: bool,
}
