//! The end of each turn of the engine's loop: the batch written to the store (riding out a
//! store that is away for a while), then the events published, and what the bus refused for
//! good fed back to its runs.

use super::{Engine, EngineError, Outbox};
use crate::live::LiveUpdate;
use orchestrator_bus::pauses::pauses;
use orchestrator_bus::retry;
use orchestrator_core::scheduler::Event;
use orchestrator_protocol::{RunId, Zone};
use orchestrator_store::Transition;

/// The longest pause between two tries of a store write while the store is away (jitter
/// included).
const STORE_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

impl Engine {
    /// Writes a batch, riding out a store that is away for a while (Redis restarting): the
    /// batch is tried again with growing pauses, and nothing is published or taken from the bus
    /// meanwhile. A batch is a set of records, so writing it twice is harmless. Only an error
    /// that waiting cannot cure (fenced, a damaged file) or `stop` ends it.
    async fn store_until_ok(&self, batch: Vec<Transition>) -> Result<(), EngineError> {
        let mut pauses = pauses(retry::MIN_DELAY, STORE_MAX_PAUSE);
        let mut failed = false;
        loop {
            match self.store.apply(&batch).await {
                Ok(()) => {
                    if failed {
                        tracing::warn!("the state store is back; writing again");
                    }
                    return Ok(());
                }
                Err(e) if e.is_transient() && !self.stop.is_cancelled() => {
                    failed = true;
                    self.metrics.store_errors.inc();
                    let pause = pauses.next().unwrap_or(STORE_MAX_PAUSE);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "writing the state store failed; nothing is dispatched until it is back");
                    tokio::select! {
                        _ = self.stop.cancelled() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes the batch (with one delta per run the turn changed, however many events it
    /// took), then publishes: a Ready event is never out before its record is stored. What the
    /// bus refuses for good fails its object, in a turn of its own that follows at once.
    pub(super) async fn commit(&mut self, mut out: Outbox) -> Result<(), EngineError> {
        let followed = self
            .live
            .as_ref()
            .filter(|l| l.receiver_count() > 0)
            .cloned();
        loop {
            let mut updates = Vec::new();
            for id in std::mem::take(&mut out.touched) {
                if let Some(delta) = self.runs.get_mut(&id).and_then(|run| run.take_delta()) {
                    if followed.is_some() {
                        updates.push(std::sync::Arc::new(LiveUpdate::of(&delta)));
                    }
                    Transition::from_delta(delta, &mut out.tx);
                }
            }
            let refused = self.commit_one(out).await?;
            if let Some(live) = &followed {
                for update in updates {
                    let _ = live.send(update); // nobody left following: nothing to tell
                }
            }
            if refused.is_empty() {
                return Ok(());
            }
            out = Outbox::default();
            self.apply(refused, &mut out);
        }
    }

    /// Writes one batch and publishes its events; returns the failures of the objects whose
    /// Ready events the bus refused for good.
    async fn commit_one(&self, out: Outbox) -> Result<Vec<(RunId, Event, bool)>, EngineError> {
        if !out.tx.is_empty() {
            self.store_until_ok(out.tx).await?;
            self.metrics
                .store_batches
                .with_label_values(&[self.store.kind()])
                .inc();
        }
        // An event published twice (a send that timed out but had reached the broker) is
        // harmless: a worker's result and the orchestrator's records are keyed by attempt.
        let mut failures = Vec::new();
        if !out.ready.is_empty() {
            let refused =
                retry::publish_until_ok("publishing Ready events", &self.stop, out.ready, |r| {
                    self.bus.publish_ready(r)
                })
                .await?;
            for (ready, reason) in refused {
                tracing::error!(run = %ready.run_id, object = %ready.id, attempt = ready.attempt, %reason, "the bus refused the Ready event for good");
                let failed = Event::Failed {
                    id: ready.id,
                    attempt: Some(ready.attempt),
                    reason: format!("the Ready event can never be sent: {reason}"),
                    retryable: false,
                    report: Default::default(),
                };
                failures.push((ready.run_id, failed, false));
            }
        }
        if !out.failed.is_empty() {
            let refused =
                retry::publish_until_ok("publishing failed objects", &self.stop, out.failed, |f| {
                    self.bus.publish_failed(f)
                })
                .await?;
            for (failed, reason) in refused {
                tracing::error!(run = %failed.run_id, object = %failed.id, %reason, "the bus refused the failed-object event for good (the failure is stored)");
            }
        }
        if !out.control.is_empty() {
            let refused = retry::publish_until_ok(
                "publishing control messages",
                &self.stop,
                out.control,
                |c| self.bus.publish_control(c),
            )
            .await?;
            for (control, reason) in refused {
                tracing::error!(run = %control.run_id, %reason, "the bus refused a control message for good: the run's attempts in flight run to their end");
            }
        }
        for z in Zone::ALL {
            let (mut in_flight, mut waiting, mut running) = (0i64, 0i64, 0i64);
            for run in self.runs.values() {
                in_flight += i64::from(run.in_flight(z));
                waiting += run.waiting(z) as i64;
                running += run.counts().zone(z).running as i64;
            }
            let l = [z.as_str()];
            self.metrics.in_flight.with_label_values(&l).set(in_flight);
            self.metrics.waiting.with_label_values(&l).set(waiting);
            self.metrics.running.with_label_values(&l).set(running);
        }
        Ok(failures)
    }
}
