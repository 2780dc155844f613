//! The scheduler: one run as an aggregate (header and object records) that takes events (worker
//! progress and results, clock ticks, cancel, interrupt, rerun) and returns actions (dispatch,
//! retry, dead letter) and one delta for the store. Pure: the caller supplies the time, and the
//! run's seed every random draw, so a run is reproducible.

mod attempt;
mod backoff;
mod config;
mod counts;
mod delta;
mod header;
mod queue;
mod rerun;
mod run;
mod shared;
mod state;
mod steps;
mod summary;
mod transitions;

pub use attempt::{AttemptOutcome, AttemptRecord, AttemptReport, AttemptText, SharedTexts};
pub use backoff::backoff_delay_ms;
pub use config::{SchedulerConfig, ZonePolicy};
pub use counts::{RunCounts, ZoneCounts};
pub use delta::{DeadLetter, LatestLoad, RunDelta, RunSnapshot};
pub use header::{RunHandlers, RunHeader, RunOptions, RunOutcome, RunStatus};
pub use rerun::{Retried, RetryRefused};
pub use run::{GraphMismatch, InFlightOnRestore, Run};
pub use shared::{hold_if_shared, in_flight_elsewhere, loaded_elsewhere_since, release_shared};
pub use state::{ObjectRecord, ObjectState};
pub use steps::{Action, Event, IgnoredReason};
pub use summary::{RunSummary, ZoneSummary};

#[cfg(test)]
mod tests;
