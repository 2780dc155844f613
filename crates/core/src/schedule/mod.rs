//! Schedules by each object's `Fréquence`: which objects are due at a moment, which of their
//! ancestors are stale and run with them, which descendants follow, and which fresh ancestors
//! are skipped. Pure: the caller gives the moment, the time zone and each object's latest load.

mod catalog;
mod export;
mod frequency;
mod last_load;
mod status;
mod tick;
mod timetable;

pub use catalog::{Catalog, LoadedAt};
pub use export::export_with_last_runs;
pub use frequency::{Frequency, ScheduleZone, parse_frequency, parse_zone};
pub use last_load::parse_last_run;
pub use status::{Freshness, ObjectStatus, ZoneFreshness};
pub use tick::{TickPlan, Why, evaluate, evaluate_from};
pub use timetable::{Catchup, ScheduleState, TickRun, Timetable, TriggerError, catalog_hash};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod timetable_tests;
