//! The standardization layer's worker: takes Ready events of zone `Standardized` and runs the configured
//! handler. All its logic lives in worker-runtime.

fn main() {
    std::process::exit(worker_runtime::worker_main::worker_main(
        worker_runtime::Zone::Standardized,
    ));
}
