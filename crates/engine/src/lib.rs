//! The engine: the async loop that drives run aggregates over a bus and a state store (each
//! step's delta stored before its events go out), the one way runs are opened, the clock it
//! reads, its metrics and the read model of a run the API and the CLI show.

pub mod clock;
mod engine;
pub mod graph_view;
pub mod live;
pub mod metrics;
pub mod object_view;
pub mod open;
pub mod open_schedule;
pub mod reads;
pub mod run_view;

pub use engine::{
    DriveOptions, Engine, EngineCommand, EngineError, EngineSchedule, PauseAnswer, ProgressView,
    RerunAnswer, RerunRefused, TriggerAnswer,
};
