//! What the engine takes in: workers' results and progress from the bus, turned into the
//! scheduler's events and fed to their runs; and the steps it applies to every run at once.

use super::{Engine, Outbox};
use orchestrator_bus::{AckToken, BusError, Consumer, Delivery};
use orchestrator_core::scheduler::{Action, AttemptReport, AttemptText, Event, Run};
use orchestrator_protocol::{AttemptStatus, ProgressEvent, ProgressKind, ResultEvent, RunId, Zone};

impl Engine {
    /// Counts a result as received and turns it into the scheduler's event.
    pub(super) fn result_event(&mut self, r: ResultEvent) -> (RunId, Event, bool) {
        // The zone labels the metric only; an old worker may leave it out.
        let zone = r.zone.or_else(|| Zone::from_legacy_id(r.id.0));
        let loaded = r.status == AttemptStatus::Loaded;
        let (info, reason) = if loaded {
            (r.info, String::new())
        } else {
            (String::new(), r.info)
        };
        let report = AttemptReport {
            duration_ms: r.duration_ms,
            text: self.texts.share(
                AttemptText {
                    worker: r.worker,
                    info,
                    output: r.output,
                    reason: String::new(),
                }
                .shared(),
            ),
            simulated: r.simulated,
        };
        let event = match r.status {
            AttemptStatus::Loaded => {
                self.metrics.count_result(zone, true);
                Event::Loaded {
                    id: r.id,
                    attempt: r.attempt,
                    report,
                }
            }
            AttemptStatus::Failed => {
                self.metrics.count_result(zone, false);
                Event::Failed {
                    id: r.id,
                    attempt: r.attempt,
                    reason,
                    retryable: r.retryable,
                    report,
                }
            }
        };
        (r.run_id, event, true)
    }

    /// Feeds events to their runs; `bool` tells a result from a progress report.
    pub(super) fn apply(&mut self, events: Vec<(RunId, Event, bool)>, out: &mut Outbox) {
        let now = self.clock.now_ms();
        let mut actions = std::mem::take(&mut self.actions);
        for (run_id, event, is_result) in events {
            let Some(run) = self.runs.get_mut(&run_id) else {
                if is_result {
                    self.metrics
                        .results_ignored
                        .with_label_values(&["unknown_run"])
                        .inc();
                }
                tracing::debug!(run = %run_id, ?event, "report for an unknown run ignored");
                continue;
            };
            run.handle(event, now, &mut actions);
            self.carry_out(&run_id, &mut actions, out);
        }
        self.actions = actions;
    }

    /// Acts on every run (tick, interrupt) and carries out what each one returns.
    pub(super) fn each_run(
        &mut self,
        out: &mut Outbox,
        mut act: impl FnMut(&mut Run, u64, &mut Vec<Action>),
    ) {
        let now = self.clock.now_ms();
        let ids: Vec<RunId> = self.runs.keys().cloned().collect();
        let mut actions = std::mem::take(&mut self.actions);
        for id in ids {
            if let Some(run) = self.runs.get_mut(&id) {
                act(run, now, &mut actions);
            }
            self.carry_out(&id, &mut actions, out);
        }
        self.actions = actions;
    }
}

pub(super) fn tokens<T>(batch: &[Delivery<T>]) -> Vec<AckToken> {
    batch.iter().map(|d| d.token).collect()
}

/// What a consumer has right now, without waiting (`None` when nothing is there).
pub(super) async fn ready_now<T: Send>(
    consumer: &mut dyn Consumer<T>,
    max: usize,
) -> Result<Option<Vec<Delivery<T>>>, BusError> {
    // One poll, no timer: a zero timeout still waits for the timer wheel's next tick (about a
    // millisecond) when nothing is there, which capped the loop at a thousand turns a second.
    let mut batch = std::pin::pin!(consumer.next_batch(max));
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(batch.as_mut().poll(cx))).await;
    match polled {
        std::task::Poll::Ready(batch) => Ok(Some(batch?).filter(|b| !b.is_empty())),
        std::task::Poll::Pending => Ok(None),
    }
}

pub(super) fn progress_event(p: ProgressEvent) -> (RunId, Event, bool) {
    let event = match p.event {
        ProgressKind::AttemptStarted => Event::Started {
            id: p.id,
            attempt: p.attempt,
        },
        ProgressKind::Heartbeat => Event::Heartbeat {
            id: p.id,
            attempt: p.attempt,
        },
    };
    (p.run_id, event, false)
}
