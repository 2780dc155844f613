//! How one object moves through a run: progress and results of its attempts, retries, dead
//! letters and the descendants they block, queueing and dispatch.

use super::attempt::{AttemptOutcome, AttemptRecord, AttemptReport};
use super::backoff::backoff_delay_ms;
use super::delta::DeadLetter;
use super::header::RunStatus;
use super::run::{Run, TimerKind};
use super::state::{ObjectRecord, ObjectState};
use super::steps::{Action, IgnoredReason};
use orchestrator_protocol::ObjectId;
use std::cmp::Reverse;
use std::sync::Arc;

impl Run {
    /// A worker started or still runs an attempt: its lease starts again, and is stored.
    pub(super) fn progress(&mut self, id: ObjectId, attempt: u32, now: u64, out: &mut Vec<Action>) {
        let Some(i) = self.graph.index_of(id) else {
            out.push(Action::Ignored {
                id,
                reason: IgnoredReason::UnknownObject,
                is_result: false,
            });
            return;
        };
        let rec = self.records[i as usize];
        if rec.attempt != attempt || !rec.state.is_in_flight() {
            let reason = if rec.state.is_terminal() {
                IgnoredReason::AlreadyFinished
            } else {
                IgnoredReason::StaleAttempt
            };
            out.push(Action::Ignored {
                id,
                reason,
                is_result: false,
            });
            return;
        }
        self.start_lease(i, attempt, now);
    }

    /// Object `i` runs `attempt` under a lease from `now`: its end is stored and armed.
    pub(super) fn start_lease(&mut self, i: u32, attempt: u32, now: u64) {
        self.set_state(i, ObjectState::Running);
        let due = now.saturating_add(self.config.lease_ms);
        self.records[i as usize].due_ms = due;
        self.deadlines
            .push_back((due, i, attempt, TimerKind::LeaseEnd));
    }

    /// The index and record of the object a result names, unless it is unknown or already
    /// finished (then the result is ignored, and said so in `out`).
    fn unfinished(&self, id: ObjectId, out: &mut Vec<Action>) -> Option<(u32, ObjectRecord)> {
        let reason = match self.graph.index_of(id) {
            None => IgnoredReason::UnknownObject,
            Some(i) if !self.records[i as usize].state.is_terminal() => {
                return Some((i, self.records[i as usize]));
            }
            Some(_) => IgnoredReason::AlreadyFinished,
        };
        out.push(Action::Ignored {
            id,
            reason,
            is_result: true,
        });
        None
    }

    pub(super) fn loaded(
        &mut self,
        id: ObjectId,
        attempt: Option<u32>,
        report: AttemptReport,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Some((i, rec)) = self.unfinished(id, out) else {
            return;
        };
        let attempt = attempt.unwrap_or(rec.attempt);
        let was_sent = match rec.state {
            ObjectState::Dispatched
            | ObjectState::Running
            | ObjectState::RetryWait
            | ObjectState::Queued => true,
            // A held attempt never went out; an earlier one of the same object did.
            ObjectState::Held => attempt < rec.attempt,
            _ => false,
        };
        // The first Loaded of any attempt that was really sent is accepted: the work was done.
        if attempt == 0 || attempt > rec.attempt || !was_sent {
            return ignore_stale(id, out);
        }
        self.load_object(i, attempt, report, now, out);
    }

    /// Object `i` loaded by `attempt` (of this run, or taken from another run's): recorded,
    /// and the children it was the last parent of queued.
    pub(super) fn load_object(
        &mut self,
        i: u32,
        attempt: u32,
        report: AttemptReport,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let id = self.graph.id(i);
        let rec = self.records[i as usize];
        let elapsed_ms = now.saturating_sub(rec.dispatched_ms);
        let simulated = report.simulated;
        accept(i, (true, simulated), elapsed_ms, report.duration_ms, out);
        // A late Loaded of an earlier attempt: that attempt's own dispatch time is gone.
        let dispatched_ms = if attempt == rec.attempt {
            rec.dispatched_ms
        } else {
            0
        };
        self.attempts.push((
            id,
            AttemptRecord::answered(
                attempt,
                AttemptOutcome::Loaded,
                String::new(),
                report,
                dispatched_ms,
                now,
            ),
        ));
        self.finish(i, ObjectState::Loaded, now);
        self.records[i as usize].simulated = simulated;
        let graph = Arc::clone(&self.graph);
        let stopped = self.header.cancelled;
        for &c in graph.children(i) {
            let p = &mut self.pending_parents[c as usize];
            *p = p.saturating_sub(1);
            if *p == 0 && self.records[c as usize].state == ObjectState::Waiting && !stopped {
                self.enqueue(c);
            }
        }
    }

    pub(super) fn failed(
        &mut self,
        id: ObjectId,
        attempt: Option<u32>,
        (reason, retryable): (String, bool),
        report: AttemptReport,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Some((i, rec)) = self.unfinished(id, out) else {
            return;
        };
        if attempt.unwrap_or(rec.attempt) != rec.attempt || !rec.state.is_in_flight() {
            return ignore_stale(id, out);
        }
        let elapsed_ms = now.saturating_sub(rec.dispatched_ms);
        accept(i, (false, false), elapsed_ms, report.duration_ms, out);
        self.attempts.push((
            id,
            AttemptRecord::answered(
                rec.attempt,
                AttemptOutcome::Failed,
                reason.clone(),
                report,
                rec.dispatched_ms,
                now,
            ),
        ));
        self.fail_attempt(i, reason, retryable, now, out);
    }

    /// The current attempt of in-flight object `i` failed.
    pub(super) fn fail_attempt(
        &mut self,
        i: u32,
        reason: String,
        retryable: bool,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let zone = self.graph.zone(i);
        let attempt = self.records[i as usize].attempt;
        let failures = self.records[i as usize].failures + 1;
        self.records[i as usize].failures = failures;
        if self.header.cancelled {
            self.finish(i, ObjectState::Cancelled, now);
            return;
        }
        if retryable && failures <= self.config.max_retries {
            let policy = self.config.zone(zone);
            let delay = backoff_delay_ms(
                policy.backoff_base_ms,
                policy.backoff_cap_ms,
                failures,
                self.rng.f64(),
            );
            self.set_state(i, ObjectState::RetryWait);
            self.header.counts.retried(zone, 1);
            let due = now.saturating_add(delay);
            let rec = &mut self.records[i as usize];
            rec.retries += 1;
            rec.due_ms = due;
            self.timers
                .push(Reverse((due, i, attempt, TimerKind::RetryDue)));
            out.push(Action::RetryScheduled {
                index: i,
                failed_attempt: attempt,
                delay_ms: delay,
                reason,
            });
            return;
        }
        self.finish(i, ObjectState::Failed, now);
        let upstream_failed = self.fail_descendants(i, now);
        self.letters.push(DeadLetter {
            id: self.graph.id(i),
            attempt,
            reason: reason.clone(),
            at_ms: now,
        });
        out.push(Action::DeadLettered {
            index: i,
            attempt,
            reason,
            upstream_failed,
        });
    }

    /// Marks every not-yet-run descendant of `root` upstream-failed; returns how many.
    fn fail_descendants(&mut self, root: u32, now: u64) -> usize {
        let graph = Arc::clone(&self.graph);
        let mut stack: Vec<u32> = graph.children(root).to_vec();
        let mut count = 0;
        while let Some(c) = stack.pop() {
            if matches!(
                self.records[c as usize].state,
                ObjectState::Waiting | ObjectState::Queued
            ) {
                self.finish(c, ObjectState::UpstreamFailed, now);
                count += 1;
                stack.extend_from_slice(graph.children(c));
            }
        }
        count
    }

    pub(super) fn enqueue(&mut self, i: u32) {
        let (zone, criticality) = (self.graph.zone(i), self.graph.criticality(i));
        self.queues[zone.index()].push(self.graph.rank(i), criticality as u8, i);
        self.set_state(i, ObjectState::Queued);
    }

    /// Dispatches queued objects while their zone has room, unless the run is stopping.
    pub(super) fn dispatch_ready(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.header.cancelled || self.header.status == RunStatus::Interrupted {
            return;
        }
        for zone in orchestrator_protocol::Zone::ALL {
            let z = zone.index();
            let limit = self.config.zones[z].max_in_flight.unwrap_or(u32::MAX);
            while self.in_flight(zone) < limit {
                let Some(i) = self.queues[z].pop() else {
                    break;
                };
                if self.records[i as usize].state != ObjectState::Queued {
                    continue; // loaded by a late result while it waited
                }
                let attempt = self.records[i as usize].attempt + 1;
                self.publish(i, attempt, now, out);
            }
        }
    }

    /// Dispatches `attempt` of `i`.
    pub(super) fn publish(&mut self, i: u32, attempt: u32, now: u64, out: &mut Vec<Action>) {
        self.set_state(i, ObjectState::Dispatched);
        self.header.counts.dispatched(self.graph.zone(i), now);
        let rec = &mut self.records[i as usize];
        rec.attempt = attempt;
        rec.dispatched_ms = now;
        rec.due_ms = 0;
        if let Some(limit) = self.config.schedule_to_start_ms {
            rec.due_ms = now.saturating_add(limit);
            self.deadlines
                .push_back((rec.due_ms, i, attempt, TimerKind::StartDeadline));
        }
        out.push(Action::Dispatch { index: i, attempt });
    }
}

/// A result for an attempt that is not the one in flight: it changes nothing.
fn ignore_stale(id: ObjectId, out: &mut Vec<Action>) {
    out.push(Action::Ignored {
        id,
        reason: IgnoredReason::StaleAttempt,
        is_result: true,
    });
}

/// A result taken: `(loaded, simulated)`.
fn accept(
    index: u32,
    (loaded, simulated): (bool, bool),
    elapsed_ms: u64,
    task_ms: u64,
    out: &mut Vec<Action>,
) {
    out.push(Action::ResultAccepted {
        index,
        loaded,
        simulated,
        elapsed_ms,
        task_ms,
    });
}
