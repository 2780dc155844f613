//! The writer lease: one orchestrator writes to a shared store (Redis) at a time. `serve`
//! stands by until the lease is free; `run` claims it or refuses to start.

use crate::app_error::AppError;
use orchestrator_engine::EngineError;
use orchestrator_http::role::{Role, SharedRole};
use orchestrator_store::{StateStore, StoreError, WriterLease};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Takes the lease, waiting up to `wait` for it (a process killed while holding it keeps it
/// until it expires); otherwise says who holds it.
pub async fn claim(
    store: &dyn StateStore,
    holder: &str,
    lease_ms: u64,
    wait: Duration,
) -> Result<(), AppError> {
    let deadline = std::time::Instant::now() + wait;
    let mut said = false;
    loop {
        match store.acquire_writer(holder, lease_ms).await? {
            WriterLease::Acquired { epoch } => {
                tracing::debug!(holder, epoch, "writer lease taken");
                return Ok(());
            }
            WriterLease::Held { holder: other } => {
                if std::time::Instant::now() >= deadline {
                    return Err(AppError::State(format!(
                        "another orchestrator ({other}) is writing to this state store; stop it, or use another REDIS_PREFIX"
                    )));
                }
                if !said {
                    eprintln!(
                        "waiting up to {} s for the writer lease held by {other}",
                        wait.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Waits for the writer lease, saying who holds it; its epoch, or `None` if stopped first.
pub async fn become_writer(
    store: &dyn StateStore,
    holder: &str,
    lease_ms: u64,
    shutdown: &CancellationToken,
    role: &SharedRole,
) -> Result<Option<u64>, AppError> {
    let mut said = String::new();
    let mut dead = String::new();
    loop {
        match store.take_over_writer(holder, lease_ms, &dead).await {
            Ok(WriterLease::Acquired { epoch }) => {
                tracing::info!(holder, epoch, "this orchestrator is the writer");
                return Ok(Some(epoch));
            }
            Ok(WriterLease::Held { holder: other }) if other != dead && is_dead_here(&other) => {
                // A writer of this host that is gone (killed): take its lease now rather than
                // wait for it to run out.
                tracing::warn!(writer = %other, "the writer's process is gone; taking its lease over");
                dead = other;
                continue;
            }
            Ok(WriterLease::Held { holder: other }) => {
                role.set(Role::Standby);
                if other != said {
                    tracing::warn!(writer = %other, "another orchestrator is the writer; standing by");
                    eprintln!("standing by: another orchestrator ({other}) is the writer");
                    said = other;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the state store; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis((lease_ms / 4).clamp(100, 2000))) => {}
        }
    }
}

/// Runs `work` on `store` as its one writer, as the one-process modes (`run`, `run --schedule`)
/// do on a store others may share: claims the lease (waiting up to a term and a second for a
/// killed holder's to run out), renews it while `work` runs, and hands it back after.
pub async fn as_writer<T, F>(
    store: Arc<dyn StateStore>,
    lease_ms: u64,
    stop: CancellationToken,
    work: impl FnOnce(Arc<dyn StateStore>) -> F,
) -> Result<T, AppError>
where
    F: std::future::Future<Output = Result<T, AppError>>,
{
    let wait = Duration::from_millis(lease_ms + 1_000);
    claim(&*store, &writer_id(), lease_ms, wait).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let keeper = tokio::spawn(keep_lease(store.clone(), lease_ms, stop, lost.clone()));
    let outcome = work(store.clone()).await;
    keeper.abort();
    hand_back(
        &*store,
        lost.load(std::sync::atomic::Ordering::Relaxed),
        outcome,
    )
    .await
}

/// Renews the lease a few times per term; when it is lost (taken over, or not renewed within its
/// term), stops everything.
pub async fn keep_lease(
    store: Arc<dyn StateStore>,
    lease_ms: u64,
    shutdown: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let mut last_ok = std::time::Instant::now();
    let term = Duration::from_millis(lease_ms);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(term / 3) => {}
        }
        match store.renew_writer(lease_ms).await {
            Ok(true) => last_ok = std::time::Instant::now(),
            Ok(false) => {
                tracing::error!(
                    "the writer lease was taken over by another orchestrator; stopping"
                );
                break;
            }
            Err(e) if last_ok.elapsed() < term => {
                tracing::warn!(error = %e, "could not renew the writer lease; retrying");
            }
            Err(e) => {
                tracing::error!(error = %e, "the writer lease ran out unrenewed; stopping");
                break;
            }
        }
    }
    lost.store(true, Ordering::Relaxed);
    shutdown.cancel();
}

/// Names this process in the writer lease: host, pid and a random suffix.
pub fn writer_id() -> String {
    format!(
        "{}/{}/{:04x}",
        host_name(),
        std::process::id(),
        fastrand::u16(..)
    )
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orchestrator".to_string())
}

/// Whether a lease value (`HOST/PID/SUFFIX EPOCH`) names a process of this host that no longer
/// runs: then nobody renews it, and waiting for it to run out only delays the run. Only where
/// `/proc` tells (Linux); a pid taken again by another process reads as alive (the safe side),
/// but our own pid under another name is a predecessor (a container restarted).
fn is_dead_here(lease: &str) -> bool {
    let holder = lease.split(' ').next().unwrap_or_default();
    let mut parts = holder.rsplitn(3, '/');
    let (_suffix, pid, host) = (parts.next(), parts.next(), parts.next());
    let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    host == Some(host_name().as_str())
        && std::path::Path::new("/proc/self").exists()
        && (pid == std::process::id() || !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// After the work is done or stopped: if the lease was lost (`lost`, or a write refused as
/// fenced), the outcome is that; otherwise the lease is given up so a standby takes over at once.
pub async fn hand_back<T>(
    store: &dyn StateStore,
    lost: bool,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
    let fenced = matches!(
        &result,
        Err(AppError::Engine(EngineError::Store(
            StoreError::Fenced { .. }
        ))) | Err(AppError::Store(StoreError::Fenced { .. }))
    );
    if fenced || lost {
        return Err(AppError::State(
            "this orchestrator lost the writer lease (another one took over, or the state store was unreachable for longer than the lease); it stopped without writing more".into(),
        ));
    }
    if let Err(e) = store.release_writer().await {
        tracing::warn!(error = %e, "could not release the writer lease (it expires by itself)");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_of_a_gone_process_of_this_host_is_dead_others_are_not() {
        let host = host_name();
        let mut child = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let gone = child.id();
        let _ = child.wait();
        assert!(is_dead_here(&format!("{host}/{gone}/beef 7")));
        assert!(is_dead_here(&format!(
            "{host}/{}/beef 7",
            std::process::id()
        )));
        // Alive (pid 1 always is), another host, or unreadable: not dead.
        assert!(!is_dead_here(&format!("{host}/1/beef 7")));
        assert!(!is_dead_here(&format!("elsewhere/{gone}/beef 7")));
        assert!(!is_dead_here("garbage"));
    }
}
