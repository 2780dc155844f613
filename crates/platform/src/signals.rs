//! Stopping on a signal: SIGTERM or Ctrl-C fire a cancellation token.

use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or Ctrl-C, then fires `shutdown`. Shared by every long-running process.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("signal received: stopping");
    shutdown.cancel();
}
