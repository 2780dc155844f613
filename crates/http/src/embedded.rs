//! The orchestrator's HTTP surface while it runs: health and metrics (the shared router of
//! worker-base), ready once the run has started.

use axum::Router;
use orchestrator_engine::metrics::Metrics;
use orchestrator_platform::health::{self, MetricsRender, ReadinessCheck};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the handlers read.
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// Ready once the run has started (store open, workers up).
    pub ready: AtomicBool,
}

pub fn router(state: Arc<HttpState>) -> Router {
    let ready_state = state.clone();
    let ready: ReadinessCheck = Arc::new(move || {
        let up = ready_state.ready.load(Ordering::Relaxed);
        Box::pin(async move {
            if up {
                Ok(())
            } else {
                Err("the run has not started".to_string())
            }
        })
    });
    let metrics = state.metrics.clone();
    let render: MetricsRender = Arc::new(move || metrics.render());
    health::health_router(ready, render)
}

/// Serves until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    health::serve(listener, router(state), shutdown).await
}
