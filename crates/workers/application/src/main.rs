//! The application layer's worker: takes Ready events of zone `Application` and runs the configured
//! handler. All its logic lives in worker-base.

fn main() {
    std::process::exit(worker_base::worker_main::worker_main(
        orchestrator_protocol::Zone::Application,
    ));
}
