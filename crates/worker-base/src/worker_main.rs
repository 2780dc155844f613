//! The shared entry point of the three worker binaries: reads their settings (the old system's
//! env names) and runs the worker for their zone on the configured bus.

use crate::spec::HandlerSpec;
use clap::Parser;
use orchestrator_protocol::Zone;

/// Settings every worker binary accepts; each has an env variable of the old system's name.
#[derive(Debug, Parser)]
pub struct WorkerArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// Tasks run at once.
    #[arg(long, env = "MAX_WORKERS", default_value_t = 4)]
    pub max_workers: usize,
    /// The handler SPEC: simulate[:MS[:FAIL_PROB]], command:PROGRAM [ARGS...] or http:URL.
    #[arg(long, env = "HANDLER", default_value = "simulate:100")]
    pub handler: HandlerSpec,
    /// Address for health and metrics (port 0 picks a free port).
    #[arg(long, env = "WORKER_HTTP_ADDR")]
    pub http_addr: Option<String>,
}

/// Exit code when the worker cannot start with its settings.
pub const EXIT_CONFIG: i32 = 2;

/// Runs a worker binary for `zone`; returns the process exit code.
pub fn worker_main(zone: Zone) -> i32 {
    let args = match WorkerArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_CONFIG } else { 0 };
        }
    };
    // The processes of a layer share their work through Kafka; this build has only the
    // in-process bus, which `orchestrator run` uses for the embedded mode.
    eprintln!(
        "{}-worker: no distributed bus in this build yet (KAFKA_BOOTSTRAP={}). \
         Use `orchestrator run FILE`, which runs the {} workers in-process with handler {}.",
        zone.short(),
        args.kafka_bootstrap.as_deref().unwrap_or("unset"),
        zone,
        args.handler
    );
    EXIT_CONFIG
}
