//! The orchestrator as an application: its command line, reading object files, the progress
//! display, and the two ways it runs, composed from the libraries (core, engine, store, bus,
//! HTTP, worker runtime): the embedded run and the server. The binary's commands parse, call
//! these and map the outcome to an exit code.

pub mod app_error;
pub mod cli;
pub mod cli_client;
pub mod cli_schedule;
pub mod client;
pub mod embedded;
pub mod input;
pub mod progress;
mod runtime;
pub mod scheduled;
pub mod server;
pub mod writer_lease;
