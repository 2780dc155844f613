//! The small HTTP surface every process serves: `/health/liveness` (the process is up),
//! `/health/readiness` (it can do its work) and `/metrics` (Prometheus text). Takes an
//! already-bound listener and a shutdown token, so tests bind port 0.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Answers readiness: `Ok` when ready, else why not.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;
/// Renders the metrics in Prometheus text format.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Brings a counter up to a total kept elsewhere (the bus's), at scrape time.
pub fn catch_up(counter: &prometheus::IntCounter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

#[derive(Clone)]
struct HealthState {
    ready: ReadinessCheck,
    metrics: MetricsRender,
}

/// The router, for embedding in a larger one.
pub fn health_router(ready: ReadinessCheck, metrics: MetricsRender) -> Router {
    Router::new()
        .route("/health/liveness", get(|| async { "ok\n" }))
        .route("/health/readiness", get(readiness))
        .route("/metrics", get(render))
        .with_state(HealthState { ready, metrics })
}

async fn readiness(State(state): State<HealthState>) -> impl IntoResponse {
    match (state.ready)().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn render(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (state.metrics)(),
    )
}

/// Serves `router` on `listener` until `shutdown` fires, within the connection limits and
/// timeouts of `HTTP_MAX_CONNECTIONS` and `HTTP_HEADER_TIMEOUT_SECONDS` (see `http_server`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = crate::http_server::HttpLimits::from_env();
    crate::http_server::serve_limited(listener, router, limits, shutdown).await
}
