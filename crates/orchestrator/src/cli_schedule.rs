//! The schedule's options: the dry run (`orchestrator schedule FILE --at TIME`) and the flags
//! that make `run` and `serve` start runs at each object's ticks.

use crate::cli::InputArgs;
use clap::Args;
use orchestrator_core::schedule::{Catchup, ScheduleZone, parse_zone};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The moment: an ISO 8601 time (`2026-11-30T06:10:00Z`; without an offset, in the time
    /// zone) or Unix seconds.
    #[arg(long, required_unless_present = "export")]
    pub at: Option<String>,
    /// Instead of a dry run, print the file with each object's `Lastrun` brought up to its
    /// latest load from the store (--state-dir or --store), every other field as written.
    #[arg(long, conflicts_with_all = ["at", "json"])]
    pub export: bool,
    /// The time zone ticks are evaluated in (an IANA name).
    #[arg(long, env = "SCHEDULE_TIMEZONE", default_value = "UTC")]
    pub timezone: String,
    /// Take each object's latest load from this state directory's catalog (where newer than
    /// its `Lastrun`).
    #[arg(long, conflicts_with = "store")]
    pub state_dir: Option<PathBuf>,
    /// Or from a state store by URL (redb://PATH, redis://HOST:PORT).
    #[arg(long)]
    pub store: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_PREFIX", default_value = "orch")]
    pub redis_prefix: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs by each object's `Fréquence`, for `run` and `serve`.
#[derive(Clone, Debug, Args)]
pub struct ScheduleFlags {
    /// Keep running and start a run at each tick of the objects' `Fréquence`: the due objects,
    /// their stale ancestors and the objects that follow them (fresh ancestors are not run
    /// again). `run` needs --state-dir (or --store); `serve` reads its catalog from OBJECTS_PATH.
    #[arg(long, env = "SCHEDULE")]
    pub schedule: bool,
    /// The time zone ticks are evaluated in (an IANA name such as Europe/Paris).
    #[arg(long, env = "SCHEDULE_TIMEZONE", default_value = "UTC")]
    pub schedule_timezone: String,
    /// Ticks missed while no orchestrator ran: `once` (they make one run at start-up) or
    /// `none` (they are skipped).
    #[arg(long, env = "SCHEDULE_CATCHUP", default_value = "once")]
    pub schedule_catchup: String,
}

impl ScheduleFlags {
    /// The time zone and catch-up rule, or why they are wrong.
    pub fn read(&self) -> Result<(ScheduleZone, Catchup), String> {
        let zone =
            parse_zone(&self.schedule_timezone).map_err(|e| format!("SCHEDULE_TIMEZONE: {e}"))?;
        Ok((zone, self.schedule_catchup.parse::<Catchup>()?))
    }
}
