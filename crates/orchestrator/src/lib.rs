//! The orchestrator's command-line application: its arguments, reading object files, and the
//! progress display. The work is done by the libraries: the core, the engine, the store, the
//! bus, the HTTP surface and the worker runtime.

pub mod cli;
pub mod input;
pub mod progress;
