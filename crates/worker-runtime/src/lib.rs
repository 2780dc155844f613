//! What every worker shares: the `Handler` trait, the built-in handlers (simulate, command,
//! http) chosen by a SPEC string, and the runtime that takes Ready tasks for one zone from a bus.

pub mod bounded_output;
pub mod cancels;
pub mod command;
pub mod handler;
pub mod http;
pub mod runtime;
pub mod seen_attempts;
pub mod simulate;
pub mod spec;
pub mod worker_main;

pub use handler::{Handler, Outcome, Ran};
/// The zone a worker serves: a worker binary needs nothing but this crate.
pub use orchestrator_protocol::Zone;
pub use runtime::{WorkerConfig, WorkerError, WorkerStats, run_worker};
pub use spec::{HandlerSet, HandlerSpec, SpecError};
