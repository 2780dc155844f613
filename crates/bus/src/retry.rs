//! Retrying a bus operation while the broker is unreachable: exponential backoff with jitter,
//! each failure logged, until it succeeds, fails for good, or `stop` fires.

use crate::{BusError, Published, Unsent};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first pause after a failure; pauses double, jittered so that processes that failed
/// together do not all try again together, and never exceed [`MAX_DELAY`] (jitter included).
pub const MIN_DELAY: Duration = Duration::from_millis(250);
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Runs `op` until it succeeds. A transient error ([`BusError::is_transient`]) is logged with
/// `what` and tried again after a growing pause; any other error is returned at once. Once
/// `stop` has fired, the pause under way ends, `op` gets one last try and its error is returned.
pub async fn until_ok<T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut op: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    with_state(what, stop, (), |()| {
        let attempt = op();
        async move { attempt.await.map_err(|e| (e, ())) }
    })
    .await
}

/// Publishes `events` with `publish` until every one is out, sending again only what a failed
/// publish handed back (see [`until_ok`] for the errors retried and `stop`). Returns the events
/// the bus refused for good (too large to ever be sent), with their reasons: the caller decides
/// what becomes of them.
pub async fn publish_until_ok<T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    events: Vec<T>,
    mut publish: F,
) -> Result<Vec<(T, String)>, BusError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Published<T>>,
{
    with_state(what, stop, (events, Vec::new()), |(events, mut refused)| {
        let attempt = publish(events);
        async move {
            match attempt.await {
                Ok(()) => Ok(refused),
                Err(Unsent {
                    error,
                    events,
                    rejected,
                }) => {
                    refused.extend(rejected);
                    match error {
                        // Only refusals: everything else went out.
                        BusError::Rejected(_) if events.is_empty() => Ok(refused),
                        error => Err((error, (events, refused))),
                    }
                }
            }
        }
    })
    .await
}

/// The loop both share: `op` takes the state and, when it fails, hands back the state to
/// try again with.
async fn with_state<S, T, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut state: S,
    mut op: F,
) -> Result<T, BusError>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<T, (BusError, S)>>,
{
    let mut pauses = crate::pauses::pauses(MIN_DELAY, MAX_DELAY);
    loop {
        match op(state).await {
            Ok(done) => return Ok(done),
            Err((error, again)) => {
                if !error.is_transient() || stop.is_cancelled() {
                    return Err(error);
                }
                let pause = pauses.next().unwrap_or(MAX_DELAY);
                tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "{what} failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                state = again;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing_until(n: u32, calls: &AtomicU32) -> Result<u32, BusError> {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call < n {
            Err(BusError::Unavailable(format!("down (call {call})")))
        } else {
            Ok(call)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_backend_error_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let stop = CancellationToken::new();
        let got = until_ok("publishing", &stop, || async { failing_until(6, &calls) }).await;
        assert!(matches!(got, Ok(6)), "{got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_that_is_not_transient_is_not_retried() {
        for error in [
            || BusError::Closed,
            || BusError::Backend("message too large".into()),
        ] {
            let calls = AtomicU32::new(0);
            let stop = CancellationToken::new();
            let got: Result<(), _> = until_ok("publishing", &stop, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(error())
            })
            .await;
            assert!(got.is_err_and(|e| !e.is_transient()));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_sends_again_only_what_was_not_sent() {
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let stop = CancellationToken::new();
        let got = publish_until_ok("publishing", &stop, vec![1, 2, 3, 4], |events| {
            batches.push(events.clone());
            // The first try sends the odd ones only.
            let unsent: Vec<u32> = events
                .into_iter()
                .filter(|e| batches.len() == 1 && e % 2 == 0)
                .collect();
            async move {
                if unsent.is_empty() {
                    Ok(())
                } else {
                    Err(Unsent::again(
                        BusError::Unavailable("timed out".into()),
                        unsent,
                    ))
                }
            }
        })
        .await;
        assert!(got.is_ok_and(|refused| refused.is_empty()));
        assert_eq!(batches, vec![vec![1, 2, 3, 4], vec![2, 4]]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_refused_for_good_are_handed_back_and_the_others_go_out() {
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let stop = CancellationToken::new();
        let got = publish_until_ok("publishing", &stop, vec![1, 2, 3, 4], |events| {
            batches.push(events.clone());
            // The first try: 3 can never be sent, 4 timed out; the second sends 4.
            let first = batches.len() == 1;
            async move {
                if !first {
                    return Ok(());
                }
                Err(Unsent {
                    error: BusError::Unavailable("timed out".into()),
                    events: vec![4],
                    rejected: vec![(3, "too large".to_string())],
                })
            }
        })
        .await;
        assert_eq!(got.ok(), Some(vec![(3, "too large".to_string())]));
        assert_eq!(batches, vec![vec![1, 2, 3, 4], vec![4]]);
        // Refusals alone end the publish at once.
        let only = publish_until_ok("publishing", &stop, vec![7], |_| async {
            Err(Unsent {
                error: BusError::Rejected("1 event".into()),
                events: Vec::new(),
                rejected: vec![(7, "too large".to_string())],
            })
        })
        .await;
        assert_eq!(only.ok().map(|r| r.len()), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_pause_and_allows_one_last_try() {
        let calls = AtomicU32::new(0);
        let stop = CancellationToken::new();
        let canceller = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                stop.cancel();
            })
        };
        let started = tokio::time::Instant::now();
        let got = until_ok("publishing", &stop, || async {
            failing_until(u32::MAX, &calls)
        })
        .await;
        canceller.await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_millis(60_100),
            "returned after {waited:?}: the pause under way did not end at the stop"
        );
        assert!(matches!(got, Err(BusError::Unavailable(_))), "{got:?}");
        let n = calls.load(Ordering::SeqCst);
        // 60 s of pauses growing from 250 ms to at most 10 s (jitter included), then the last try.
        assert!((8..=17).contains(&n), "{n} calls");
    }
}
