//! Process plumbing every binary shares, written once: logging set-up, signal handling, the
//! health and metrics router, and layered configuration (command line, env, file).

pub mod config_file;
pub mod health;
pub mod http_server;
pub mod logging;
pub mod process_metrics;
pub mod signals;
