//! The runs cancelled while this worker runs, told by the orchestrator's control messages: the
//! attempts of such a run are stopped (the handler's future dropped: a program is killed, a
//! request dropped), and its Ready events that still come are answered without running.

use orchestrator_bus::Bus;
use orchestrator_protocol::{ControlKind, RunId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Runs remembered (cancelled or with attempts here); the oldest is forgotten past this.
const REMEMBERED_RUNS: usize = 4096;

/// One token per run, cancelled when the run is.
#[derive(Default)]
pub struct RunCancels {
    inner: Mutex<(HashMap<RunId, CancellationToken>, VecDeque<RunId>)>,
}

impl RunCancels {
    /// The token of `run`: cancelled once the run is (already, if it was).
    pub fn token(&self, run: &RunId) -> CancellationToken {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, order) = &mut *guard;
        if let Some(t) = tokens.get(run) {
            return t.clone();
        }
        let token = CancellationToken::new();
        tokens.insert(run.clone(), token.clone());
        order.push_back(run.clone());
        if order.len() > REMEMBERED_RUNS
            && let Some(oldest) = order.pop_front()
        {
            tokens.remove(&oldest);
        }
        token
    }

    /// `run` is cancelled: its attempts here stop.
    pub fn cancel(&self, run: &RunId) {
        self.token(run).cancel();
    }
}

/// Reads the control messages until `stop`, cancelling the runs they name. While the topic
/// cannot be read (the orchestrator has not created it yet), tries again with backoff; the
/// attempts of a run cancelled meanwhile run to their end.
pub async fn listen(
    bus: Arc<dyn Bus>,
    member: String,
    cancels: Arc<RunCancels>,
    stop: CancellationToken,
) {
    let opened = orchestrator_bus::retry::until_ok("reading control messages", &stop, || {
        bus.control_consumer(&member)
    })
    .await;
    let Ok(mut consumer) = opened else {
        return; // stopping
    };
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            batch = consumer.next_batch(64) => batch,
        };
        let batch = match batch {
            Ok(b) if b.is_empty() => return, // the bus closed
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading control messages failed; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let tokens = batch.iter().map(|d| d.token).collect();
        for d in batch {
            match d.event.event {
                ControlKind::CancelRun => {
                    tracing::info!(run = %d.event.run_id, "run cancelled: its attempts here stop");
                    cancels.cancel(&d.event.run_id);
                }
            }
        }
        let _ = consumer.ack(tokens).await;
    }
}
