//! The orchestrator: loads object files, plans and runs them. The embedded run drives the pure
//! scheduler with an in-process bus, in-process workers and a state store; the HTTP surface
//! serves health and metrics.

pub mod api;
pub mod api_body;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod engine;
pub mod http;
pub mod input;
pub mod metrics;
pub mod open;
pub mod progress;
pub mod role;
pub mod run_view;
pub mod store;
