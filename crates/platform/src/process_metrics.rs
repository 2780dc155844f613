//! What every binary exports about itself: the process's CPU time, memory, open files and start
//! time (from /proc, on Linux), and `orchestrator_build_info{version, commit}` set to 1.

use prometheus::{IntGaugeVec, Opts, Registry};

/// The version and commit the binary was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("ORCHESTRATOR_COMMIT");

/// Adds the process metrics and the build's series to `registry`.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let info = IntGaugeVec::new(
        Opts::new(
            "orchestrator_build_info",
            "The version and commit this binary was built from (always 1).",
        ),
        &["version", "commit"],
    )?;
    info.with_label_values(&[VERSION, COMMIT]).set(1);
    registry.register(Box::new(info))
}
