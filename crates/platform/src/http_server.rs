//! Every HTTP listener's accept loop (serve, `run --http`, the workers' health): bounded and
//! timed, so that connections that send nothing, send half a request or sit idle cannot take a
//! process's file descriptors or its health probes. At most `HTTP_MAX_CONNECTIONS` at once; past
//! them a small reserve serves only `/health/*` and `/metrics` (its connections get one second
//! for their request), and beyond it a connection is closed at once (counted in
//! `orchestrator_http_connections_refused_total`, logged at most once a second). A request's
//! headers must arrive within `HTTP_HEADER_TIMEOUT_SECONDS`, which also closes a keep-alive
//! connection idle that long. The limits, `MAX_EVENT_SUBSCRIBERS` among them, are read here.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections served at once (`HTTP_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Connections past the limit kept for health probes and scrapes.
pub const HEALTH_RESERVE: usize = 16;
/// Time for a request's headers, and for an idle keep-alive connection
/// (`HTTP_HEADER_TIMEOUT_SECONDS`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Followers of the runs API's live events at once (`MAX_EVENT_SUBSCRIBERS`).
pub const DEFAULT_EVENT_SUBSCRIBERS: usize = 64;
/// Time for a reserve connection's request headers: a probe sends its request at once, and a
/// connection that does not frees its place for the next probe within the second.
pub const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stopping server lets its requests under way finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections closed unserved: past the limit and the reserve, or a non-health request on a
/// reserve connection. One counter per process, registered by `process_metrics::register`.
static CONNECTIONS_REFUSED: OnceLock<prometheus::IntCounter> = OnceLock::new();

/// The process's refused-connections counter (made on first use).
pub fn connections_refused() -> Result<prometheus::IntCounter, prometheus::Error> {
    if let Some(counter) = CONNECTIONS_REFUSED.get() {
        return Ok(counter.clone());
    }
    let counter = prometheus::IntCounter::new(
        "orchestrator_http_connections_refused_total",
        "HTTP connections closed unserved: past HTTP_MAX_CONNECTIONS and the health reserve, or an API request on a reserve connection.",
    )?;
    Ok(CONNECTIONS_REFUSED.get_or_init(|| counter).clone())
}

/// The limits of a listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// Followers of `GET /api/events` at once (the API's, where a listener serves it).
    pub max_event_subscribers: usize,
}

impl HttpLimits {
    /// `HTTP_MAX_CONNECTIONS`, `HTTP_HEADER_TIMEOUT_SECONDS` and `MAX_EVENT_SUBSCRIBERS`, or
    /// the defaults (an unreadable value is the default, with a warning).
    pub fn from_env() -> HttpLimits {
        let read = |name: &str| -> Option<u64> {
            let text = std::env::var(name).ok()?;
            let value = text.trim().parse::<u64>().ok().filter(|v| *v > 0);
            if value.is_none() {
                tracing::warn!(%name, value = %text, "not a positive whole number: the default applies");
            }
            value
        };
        HttpLimits {
            max_connections: read("HTTP_MAX_CONNECTIONS")
                .map_or(DEFAULT_MAX_CONNECTIONS, |v| v as usize),
            header_timeout: read("HTTP_HEADER_TIMEOUT_SECONDS")
                .map_or(DEFAULT_HEADER_TIMEOUT, Duration::from_secs),
            max_event_subscribers: read("MAX_EVENT_SUBSCRIBERS")
                .map_or(DEFAULT_EVENT_SUBSCRIBERS, |v| v as usize),
        }
    }
}

/// Whether a request is a health probe or a scrape (what the reserve serves).
fn is_health(request: &Request<hyper::body::Incoming>) -> bool {
    let path = request.uri().path();
    path.starts_with("/health/") || path == "/metrics"
}

/// A refusal, logged at most once a second however many come.
fn refused(why: &'static str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let total = connections_refused().map_or(0, |c| {
        c.inc();
        c.get()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(refused = total, "HTTP connection refused: {why}");
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` fires.
pub async fn serve_limited(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let reserve = Arc::new(Semaphore::new(HEALTH_RESERVE));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or a connection reset before it was taken): wait a
                // moment rather than spin.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (permit, health_only) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    refused("past HTTP_MAX_CONNECTIONS and the health reserve");
                    drop(stream);
                    continue;
                }
            },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let router = router.clone();
                async move {
                    if health_only && !is_health(&request) {
                        refused("an API request on a health reserve connection");
                        return Ok::<_, Infallible>(busy());
                    }
                    router.oneshot(request.map(Body::new)).await
                }
            });
            let header_timeout = if health_only {
                limits.header_timeout.min(RESERVE_HEADER_TIMEOUT)
            } else {
                limits.header_timeout
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = &mut connection => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
            drop(permit);
        });
    }
}

/// 503 and close: the API's connections are all taken.
fn busy() -> Response<Body> {
    let mut response = Response::new(Body::from(
        "{\"error\":\"too many connections: try again later\"}",
    ));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Raises this process's soft limit of open files to its hard limit (a service default of
/// 1024 is easily reached by connections); what cannot be raised stays as it is.
pub fn raise_open_files_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::debug!(to = ?limit.maximum, "open files limit raised"),
                Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
            }
        }
    }
}
