//! Logging set-up: `tracing` to standard error, human (coloured on a terminal) or JSON, filtered
//! by a level or directive string.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; an unreadable `level` falls back to `default_level`.
pub fn init(level: &str, json: bool, default_level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
