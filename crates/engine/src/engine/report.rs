//! What the engine does with a run's actions: Ready and failed-object events to publish,
//! metrics and logs; and the run noted as changed, so that its delta is stored with the turn.

use super::{Engine, Outbox};
use crate::metrics::Metrics;
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{Action, Run};
use orchestrator_protocol::{FailedEvent, ReadyEvent, RunId, SCHEMA_VERSION, Zone};

impl Engine {
    /// Turns a run's actions into events, metrics and logs, and notes the run as changed.
    pub(super) fn carry_out(&mut self, id: &RunId, actions: &mut Vec<Action>, out: &mut Outbox) {
        let scheduled = self.schedule.is_some();
        // Events carry the engine's time (its injected clock), in Unix seconds.
        let ts = self.clock.now_ms() / 1000;
        let Some(run) = self.runs.get_mut(id) else {
            actions.clear();
            return;
        };
        let graph = run.graph().clone();
        let ready_from = out.ready.len();
        let mut loaded_now = Vec::new();
        let m = &self.metrics;
        for action in actions.drain(..) {
            match action {
                Action::Dispatch { index, attempt } => {
                    out.ready
                        .push(ready_event(m, run, &graph, (index, attempt), ts));
                }
                Action::ResultAccepted {
                    index,
                    elapsed_ms,
                    loaded,
                    simulated,
                    task_ms,
                } => {
                    observe_result(m, graph.zone(index), elapsed_ms, task_ms);
                    if loaded {
                        tracing::info!(run = %id, object = %graph.id(index), zone = %graph.zone(index), elapsed_ms, simulated, "loaded");
                        // A pretend load makes nothing fresh.
                        if scheduled && !simulated {
                            loaded_now.push(graph.id(index));
                        }
                    }
                }
                Action::RetryScheduled {
                    index,
                    failed_attempt,
                    delay_ms,
                    reason,
                } => {
                    let zone = graph.zone(index);
                    m.retries.with_label_values(&[zone.as_str()]).inc();
                    tracing::info!(run = %id, object = %graph.id(index), attempt = failed_attempt, delay_ms, %reason, "attempt failed; retry scheduled");
                }
                Action::DeadLettered {
                    index,
                    attempt,
                    reason,
                    upstream_failed,
                } => {
                    let failed =
                        failed_event(m, id, &graph, (index, attempt), reason, upstream_failed, ts);
                    out.failed.push(failed);
                }
                Action::Expired {
                    index,
                    attempt,
                    reason,
                } => {
                    let zone = graph.zone(index);
                    m.leases_expired.with_label_values(&[zone.as_str()]).inc();
                    tracing::warn!(run = %id, object = %graph.id(index), attempt, %reason, "attempt expired");
                }
                Action::Ignored {
                    id: object,
                    reason,
                    is_result,
                } => {
                    if is_result {
                        m.results_ignored
                            .with_label_values(&[reason.as_str()])
                            .inc();
                    }
                    tracing::debug!(run = %id, %object, reason = reason.as_str(), "report ignored");
                }
                Action::Finished => finished(m, run),
                Action::FailuresReset => {
                    tracing::info!(run = %id, "failed objects run again; dead letters cleared")
                }
            }
        }
        if out.touched.last() != Some(id) {
            out.touched.push(id.clone());
        }
        for object in loaded_now {
            self.schedule_loaded(object);
        }
        self.hold_shared(ready_from, out);
    }
}

/// Dispatch to result, and that time split: the handler's, and the rest (broker hops, waiting
/// for a free worker).
fn observe_result(m: &Metrics, zone: Zone, elapsed_ms: u64, task_ms: u64) {
    let series = m.zone(zone);
    let seconds = |ms: u64| ms as f64 / 1000.0;
    series.dispatch_to_result.observe(seconds(elapsed_ms));
    series.task_seconds.observe(seconds(task_ms));
    series
        .queue_wait
        .observe(seconds(elapsed_ms.saturating_sub(task_ms)));
}

/// An object failed for good: counted, logged, and its `ObjectFailed` event.
fn failed_event(
    m: &Metrics,
    run: &RunId,
    graph: &RunGraph,
    (index, attempt): (u32, u32),
    reason: String,
    upstream_failed: usize,
    ts: u64,
) -> FailedEvent {
    let node = graph.node(index);
    m.dead_letters
        .with_label_values(&[node.zone.as_str()])
        .inc();
    tracing::error!(run = %run, object = %node.id, attempt, upstream_failed, %reason, "object failed for good");
    FailedEvent {
        event: "ObjectFailed".into(),
        id: node.id,
        zone: node.zone,
        name: node.name.to_string(),
        run_id: run.clone(),
        attempt,
        reason,
        upstream_failed,
        ts,
        schema_version: SCHEMA_VERSION,
    }
}

/// A run finished: counted by outcome and by what started it, and logged.
fn finished(metrics: &Metrics, run: &Run) {
    let header = run.header();
    let outcome = header.outcome();
    let cause = crate::metrics::run_cause(&header.run_id);
    metrics
        .runs_finished
        .with_label_values(&[outcome.as_str(), cause])
        .inc();
    if outcome == orchestrator_core::scheduler::RunOutcome::Succeeded {
        tracing::info!(run = %header.run_id, outcome = outcome.as_str(), "run finished");
    } else {
        let s = header.counts.summary();
        tracing::warn!(run = %header.run_id, outcome = outcome.as_str(), failed = s.failed, upstream_failed = s.upstream_failed, cancelled = s.cancelled, "run finished");
    }
}

fn ready_event(
    metrics: &Metrics,
    run: &Run,
    graph: &RunGraph,
    (index, attempt): (u32, u32),
    ts: u64,
) -> ReadyEvent {
    let node = graph.node(index);
    let header = run.header();
    tracing::info!(run = %header.run_id, object = %node.id, zone = %node.zone, attempt, "ready");
    metrics.zone(node.zone).ready_published.inc();
    ReadyEvent {
        event: "ObjectReady".into(),
        id: node.id,
        zone: node.zone,
        name: node.name.to_string(),
        run_id: header.run_id.clone(),
        ts,
        preflight_fail: false,
        attempt,
        graph_version: header.graph_version.clone(),
        object: node.raw.clone(),
        schema_version: SCHEMA_VERSION,
    }
}
