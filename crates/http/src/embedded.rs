//! The HTTP surface of `orchestrator run --http`: health and metrics (the shared router of
//! every binary), ready once the run has started, and, for the web console, the runs API and
//! the console itself.

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

/// Serves health and metrics, and with `api` the runs API and the console, until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    api: Option<Arc<crate::api::ApiState>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut routes = router(state);
    if let Some(api) = api {
        routes = routes
            .merge(crate::api::api_router(api))
            .merge(crate::console::console_router());
    }
    health::serve(listener, routes, shutdown).await
}
