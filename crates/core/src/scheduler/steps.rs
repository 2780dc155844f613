//! The steps of a run, what they take and what they return: start (or resume), a worker's
//! report, a clock tick, cancel, interrupt and rerun of the failures.

use super::attempt::{AttemptRecord, AttemptReport};
use super::header::RunStatus;
use super::run::{InFlightOnRestore, Run, TimerKind};
use super::state::ObjectState;
use orchestrator_protocol::ObjectId;
use std::cmp::Reverse;

/// What workers (and the clock) tell a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started {
        id: ObjectId,
        attempt: u32,
    },
    Heartbeat {
        id: ObjectId,
        attempt: u32,
    },
    /// `attempt: None` (old workers) means the current attempt.
    Loaded {
        id: ObjectId,
        attempt: Option<u32>,
        report: AttemptReport,
    },
    Failed {
        id: ObjectId,
        attempt: Option<u32>,
        reason: String,
        retryable: bool,
        report: AttemptReport,
    },
}

/// Why an event changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoredReason {
    /// The id is not in this run.
    UnknownObject,
    /// The object already reached a terminal state.
    AlreadyFinished,
    /// The attempt is not the current one, or the object is not waiting for it.
    StaleAttempt,
}

impl IgnoredReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoredReason::UnknownObject => "unknown_object",
            IgnoredReason::AlreadyFinished => "already_finished",
            IgnoredReason::StaleAttempt => "stale_attempt",
        }
    }
}

/// What the caller must do (or may log and count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a Ready event for this attempt of object `index`.
    Dispatch { index: u32, attempt: u32 },
    /// A result was accepted; `elapsed_ms` runs from dispatch to result, of which the handler
    /// ran `task_ms` (as its worker reports it).
    ResultAccepted {
        index: u32,
        loaded: bool,
        /// A load by a handler that only pretended (`simulate`).
        simulated: bool,
        elapsed_ms: u64,
        task_ms: u64,
    },
    /// The attempt failed and will be retried after `delay_ms`.
    RetryScheduled {
        index: u32,
        failed_attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    /// Out of retries (or not retryable): the object failed for good; `upstream_failed` of its
    /// descendants will not run. Its dead letter is in the run's delta.
    DeadLettered {
        index: u32,
        attempt: u32,
        reason: String,
        upstream_failed: usize,
    },
    /// A worker held an attempt past its lease, or no worker started it in time.
    Expired {
        index: u32,
        attempt: u32,
        reason: String,
    },
    /// A result or progress report that changed nothing.
    Ignored {
        id: ObjectId,
        reason: IgnoredReason,
        is_result: bool,
    },
    /// Every object is terminal.
    Finished,
    /// The objects that had failed run again ([`Run::reset_failed`]): their dead letters go.
    FailuresReset,
}

impl Run {
    /// Starts (or resumes) the run at `now`: computes what waits on what, deals with the
    /// attempts that were in flight as the run's [`InFlightOnRestore`] says, re-arms retry
    /// timers and dispatches what is ready. An interrupted run runs again.
    pub fn start(&mut self, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        self.set_status(if self.header.cancelled {
            RunStatus::Cancelling
        } else {
            RunStatus::Running
        });
        for i in 0..self.graph.len() as u32 {
            self.pending_parents[i as usize] = self.unloaded_parents(i);
        }
        let cancelled = self.header.cancelled;
        for i in 0..self.graph.len() as u32 {
            let rec = self.records[i as usize];
            match rec.state {
                ObjectState::Waiting
                | ObjectState::Queued
                | ObjectState::RetryWait
                | ObjectState::Held
                    if cancelled =>
                {
                    self.finish(i, ObjectState::Cancelled, now)
                }
                ObjectState::Waiting | ObjectState::Queued => {
                    if self.pending_parents[i as usize] == 0 {
                        self.enqueue(i);
                    } else if rec.state == ObjectState::Queued {
                        self.set_state(i, ObjectState::Waiting);
                    }
                }
                ObjectState::Dispatched | ObjectState::Running => {
                    self.restore_in_flight(i, rec.attempt, now, out)
                }
                ObjectState::RetryWait => {
                    self.timers
                        .push(Reverse((rec.due_ms, i, rec.attempt, TimerKind::RetryDue)))
                }
                _ => {}
            }
        }
        self.tick(now, out);
    }

    pub(super) fn unloaded_parents(&self, i: u32) -> u32 {
        self.graph
            .parents(i)
            .iter()
            .filter(|&&p| self.records[p as usize].state != ObjectState::Loaded)
            .count() as u32
    }

    /// An attempt that was in flight when the run stopped.
    fn restore_in_flight(&mut self, i: u32, attempt: u32, now: u64, out: &mut Vec<Action>) {
        let cancelled = self.header.cancelled;
        match self.in_flight_on_restore {
            InFlightOnRestore::Resend if cancelled => self.finish(i, ObjectState::Cancelled, now),
            InFlightOnRestore::Resend => self.publish(i, attempt, now, out),
            InFlightOnRestore::Republish { after_ms } if !cancelled => {
                self.set_state(i, ObjectState::Dispatched);
                let due = now.saturating_add(after_ms);
                self.records[i as usize].due_ms = due;
                self.timers
                    .push(Reverse((due, i, attempt, TimerKind::RepublishDue)));
            }
            InFlightOnRestore::Rearm | InFlightOnRestore::Republish { .. } => {
                self.start_lease(i, attempt, now)
            }
        }
    }

    /// Applies one report from a worker.
    pub fn handle(&mut self, event: Event, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        match event {
            Event::Started { id, attempt } | Event::Heartbeat { id, attempt } => {
                self.progress(id, attempt, now, out)
            }
            Event::Loaded {
                id,
                attempt,
                report,
            } => self.loaded(id, attempt, report, now, out),
            Event::Failed {
                id,
                attempt,
                reason,
                retryable,
                report,
            } => self.failed(id, attempt, (reason, retryable), report, now, out),
        }
        self.dispatch_ready(now, out);
        self.check_finished(out);
    }

    /// Fires the timers due at `now` (retries, leases, start deadlines) and dispatches.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        while let Some(&(due, i, attempt, kind)) = self.deadlines.front() {
            if due > now {
                break;
            }
            self.deadlines.pop_front();
            self.fire(due, i, attempt, kind, now, out);
        }
        while let Some(&Reverse((due, i, attempt, kind))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            self.fire(due, i, attempt, kind, now, out);
        }
        self.dispatch_ready(now, out);
        self.check_finished(out);
    }

    /// A timer came due; it acts only if the object still waits for exactly that deadline.
    fn fire(
        &mut self,
        due: u64,
        i: u32,
        attempt: u32,
        kind: TimerKind,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let rec = self.records[i as usize];
        if rec.attempt != attempt || rec.due_ms != due {
            return;
        }
        let expired = match (kind, rec.state) {
            (TimerKind::RetryDue, ObjectState::RetryWait) => {
                self.records[i as usize].due_ms = 0;
                self.enqueue(i);
                None
            }
            (TimerKind::RepublishDue, ObjectState::Dispatched) => {
                self.publish(i, attempt, now, out);
                None
            }
            (TimerKind::LeaseEnd, ObjectState::Running) => Some(format!(
                "lease expired: no heartbeat for {} ms",
                self.config.lease_ms
            )),
            (TimerKind::StartDeadline, ObjectState::Dispatched) => Some(format!(
                "no worker started it within {} ms",
                self.config.schedule_to_start_ms.unwrap_or_default()
            )),
            _ => None,
        };
        if let Some(reason) = expired {
            self.attempts.push((
                self.graph.id(i),
                AttemptRecord::expired(attempt, reason.clone(), rec.dispatched_ms, now),
            ));
            out.push(Action::Expired {
                index: i,
                attempt,
                reason: reason.clone(),
            });
            self.fail_attempt(i, reason, true, now, out);
        }
    }

    /// Cancelled by a user: waiting and queued objects become cancelled; in-flight attempts
    /// still report, and their results are recorded (no retries).
    pub fn cancel(&mut self, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        if self.header.status == RunStatus::Finished {
            return;
        }
        self.header.cancelled = true;
        self.set_status(RunStatus::Cancelling);
        for i in 0..self.graph.len() as u32 {
            if matches!(
                self.records[i as usize].state,
                ObjectState::Waiting
                    | ObjectState::Queued
                    | ObjectState::RetryWait
                    | ObjectState::Held
            ) {
                self.finish(i, ObjectState::Cancelled, now);
            }
        }
        for q in &mut self.queues {
            q.clear();
        }
        self.check_finished(out);
    }

    /// Its process stops (a signal): nothing new is dispatched; what is in flight still
    /// reports; what has not run stays as it is, so that resuming the run continues it.
    pub fn interrupt(&mut self, now: u64, out: &mut Vec<Action>) {
        self.advance(now);
        if self.header.status != RunStatus::Finished {
            self.set_status(RunStatus::Interrupted);
        }
        self.check_finished(out);
    }
}
