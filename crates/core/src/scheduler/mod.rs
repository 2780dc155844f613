//! The scheduler: one run as a state machine that takes events (worker progress and results,
//! clock ticks, cancel, reset) and returns actions (dispatch, retry, dead letter). Pure: the
//! caller supplies the time and the random seed, so a run is reproducible.

mod backoff;
mod config;
mod queue;
mod run;
mod state;
mod summary;

pub use backoff::backoff_delay_ms;
pub use config::{SchedulerConfig, ZonePolicy};
pub use run::{Action, Event, IgnoredReason, InFlightOnRestore, Run, RunStatus};
pub use state::{ObjectRecord, ObjectState};
pub use summary::{RunSummary, ZoneSummary};

#[cfg(test)]
mod tests;
