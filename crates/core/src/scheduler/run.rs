//! One run as a state machine: events in, actions out. Guarantees: an object is dispatched only
//! when all its parents are loaded, a loaded object is never dispatched again, children are
//! released once, retries stay within the limit, and the same seed and inputs give the same trace.

use super::backoff::backoff_delay_ms;
use super::config::SchedulerConfig;
use super::queue::ReadyQueue;
use super::state::{ObjectRecord, ObjectState};
use super::summary::RunSummary;
use crate::run_graph::RunGraph;
use orchestrator_protocol::{ObjectId, Zone};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

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
    },
    Failed {
        id: ObjectId,
        attempt: Option<u32>,
        reason: String,
        retryable: bool,
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
    /// A result was accepted; `elapsed_ms` runs from dispatch to result.
    ResultAccepted {
        index: u32,
        loaded: bool,
        elapsed_ms: u64,
    },
    /// The attempt failed and will be retried after `delay_ms`.
    RetryScheduled {
        index: u32,
        failed_attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    /// Out of retries (or not retryable): the object failed for good; `upstream_failed` of its
    /// descendants will not run.
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

/// What a restored run does with the attempts that were in flight when it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InFlightOnRestore {
    /// Send them again, same attempt (the embedded run: its workers died with it).
    Resend,
    /// Leave them with their workers, which may still be running them, under a fresh lease: a
    /// worker that is alive reports or heartbeats; one that is gone lets the lease run out.
    Rearm,
    /// Send them again, same attempt, `after_ms` from the start unless a worker reports on them
    /// first (a server's restart): an event the dead process stored but never published goes
    /// out within moments rather than after its lease, the results already on the bus are read
    /// before (so that no object that loaded is sent again), and a worker that runs or has run
    /// that attempt drops the copy. A cancelled run's are only re-armed.
    Republish { after_ms: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    /// Cancelled: nothing new is dispatched; in-flight results are still recorded.
    Cancelling,
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    RetryDue,
    LeaseEnd,
    StartDeadline,
    /// An attempt in flight at a restart is sent again (see [`InFlightOnRestore::Republish`]).
    RepublishDue,
}

/// One run of one graph.
pub struct Run {
    graph: Arc<RunGraph>,
    config: SchedulerConfig,
    rng: fastrand::Rng,
    records: Vec<ObjectRecord>,
    /// Parents not yet loaded (or satisfied) per object.
    pending_parents: Vec<u32>,
    /// Queued objects per zone by priority: rank, then criticality, then first in.
    queues: [ReadyQueue; 3],
    in_flight: [u32; 3],
    /// Retry timers, whose delays vary: a heap.
    timers: BinaryHeap<Reverse<(u64, u32, u32, TimerKind)>>,
    /// Lease ends and start deadlines: always `now` plus a fixed time, so they come due in the
    /// order they were set and a FIFO queue holds them at O(1).
    deadlines: VecDeque<(u64, u32, u32, TimerKind)>,
    /// The latest time seen: the run's clock never goes back, even if the caller's does.
    clock: u64,
    terminal: usize,
    terminal_by_zone: [usize; 3],
    status: RunStatus,
    cancelled: bool,
    dirty: Vec<u32>,
    is_dirty: Vec<bool>,
    in_flight_on_restore: InFlightOnRestore,
}

impl Run {
    /// A new run; nothing is dispatched until [`Run::start`].
    pub fn new(graph: Arc<RunGraph>, config: SchedulerConfig, seed: u64) -> Run {
        let n = graph.len();
        let records = vec![ObjectRecord::default(); n];
        Self::with_records(graph, config, seed, records, false)
    }

    /// A run rebuilt from stored records (after a crash or to rerun failures).
    /// `records` must have one entry per node of `graph`.
    pub fn restore(
        graph: Arc<RunGraph>,
        config: SchedulerConfig,
        seed: u64,
        records: Vec<ObjectRecord>,
        cancelled: bool,
        in_flight: InFlightOnRestore,
    ) -> Run {
        let mut run = Self::with_records(graph, config, seed, records, cancelled);
        run.in_flight_on_restore = in_flight;
        run
    }

    fn with_records(
        graph: Arc<RunGraph>,
        config: SchedulerConfig,
        seed: u64,
        mut records: Vec<ObjectRecord>,
        cancelled: bool,
    ) -> Run {
        let n = graph.len();
        records.resize(n, ObjectRecord::default());
        Run {
            pending_parents: vec![0; n],
            graph,
            config,
            rng: fastrand::Rng::with_seed(seed),
            records,
            queues: Default::default(),
            in_flight: [0; 3],
            timers: BinaryHeap::new(),
            deadlines: VecDeque::new(),
            clock: 0,
            terminal: 0,
            terminal_by_zone: [0; 3],
            status: RunStatus::Running,
            cancelled,
            dirty: Vec::new(),
            is_dirty: vec![false; n],
            in_flight_on_restore: InFlightOnRestore::Resend,
        }
    }

    /// Starts (or resumes) the run at `now`: computes what waits on what, re-sends the attempts
    /// that were in flight (same attempt: their handlers may run twice, which the idempotency
    /// key allows), re-arms retry timers and dispatches what is ready.
    pub fn start(&mut self, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        let n = self.graph.len();
        self.terminal = 0;
        self.terminal_by_zone = [0; 3];
        self.in_flight = [0; 3];
        for i in 0..n as u32 {
            let pending = self
                .graph
                .parents(i)
                .iter()
                .filter(|&&p| self.records[p as usize].state != ObjectState::Loaded)
                .count() as u32;
            self.pending_parents[i as usize] = pending;
        }
        for i in 0..n as u32 {
            let rec = self.records[i as usize];
            match rec.state {
                s if s.is_terminal() => {
                    self.terminal += 1;
                    self.terminal_by_zone[self.graph.node(i).zone.index()] += 1;
                }
                ObjectState::Waiting | ObjectState::Queued => {
                    if self.cancelled {
                        self.finish(i, ObjectState::Cancelled, now);
                    } else if self.pending_parents[i as usize] == 0 {
                        self.enqueue(i);
                    } else if rec.state == ObjectState::Queued {
                        self.set_state(i, ObjectState::Waiting);
                    }
                }
                ObjectState::Dispatched | ObjectState::Running => match self.in_flight_on_restore {
                    _ if self.cancelled
                        && self.in_flight_on_restore == InFlightOnRestore::Resend =>
                    {
                        self.finish(i, ObjectState::Cancelled, now);
                    }
                    InFlightOnRestore::Resend => self.send(i, rec.attempt, now, out),
                    InFlightOnRestore::Republish { after_ms } if !self.cancelled => {
                        let zone = self.graph.node(i).zone.index();
                        self.in_flight[zone] += 1;
                        let r = &mut self.records[i as usize];
                        r.state = ObjectState::Dispatched;
                        r.due_ms = now.saturating_add(after_ms);
                        let due = r.due_ms;
                        self.timers
                            .push(Reverse((due, i, rec.attempt, TimerKind::RepublishDue)));
                    }
                    InFlightOnRestore::Rearm | InFlightOnRestore::Republish { .. } => {
                        let zone = self.graph.node(i).zone.index();
                        self.in_flight[zone] += 1;
                        let r = &mut self.records[i as usize];
                        r.state = ObjectState::Running;
                        r.due_ms = now.saturating_add(self.config.lease_ms);
                        let due = r.due_ms;
                        self.deadlines
                            .push_back((due, i, rec.attempt, TimerKind::LeaseEnd));
                    }
                },
                ObjectState::RetryWait => {
                    if self.cancelled {
                        self.finish(i, ObjectState::Cancelled, now);
                    } else {
                        self.timers.push(Reverse((
                            rec.due_ms,
                            i,
                            rec.attempt,
                            TimerKind::RetryDue,
                        )));
                    }
                }
                _ => {}
            }
        }
        if self.cancelled {
            self.status = RunStatus::Cancelling;
        }
        self.tick(now, out);
    }

    /// Applies one report from a worker.
    pub fn handle(&mut self, event: Event, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        match event {
            Event::Started { id, attempt } | Event::Heartbeat { id, attempt } => {
                self.progress(id, attempt, now, out)
            }
            Event::Loaded { id, attempt } => self.loaded(id, attempt, now, out),
            Event::Failed {
                id,
                attempt,
                reason,
                retryable,
            } => self.failed(id, attempt, reason, retryable, now, out),
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

    fn advance(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
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
        match (kind, rec.state) {
            (TimerKind::RetryDue, ObjectState::RetryWait) => {
                self.records[i as usize].due_ms = 0;
                self.enqueue(i);
            }
            (TimerKind::LeaseEnd, ObjectState::Running) => {
                let reason = format!(
                    "lease expired: no heartbeat for {} ms",
                    self.config.lease_ms
                );
                out.push(Action::Expired {
                    index: i,
                    attempt,
                    reason: reason.clone(),
                });
                self.fail_attempt(i, reason, true, now, out);
            }
            (TimerKind::RepublishDue, ObjectState::Dispatched) => {
                self.publish(i, attempt, now, out)
            }
            (TimerKind::StartDeadline, ObjectState::Dispatched) => {
                let reason = format!(
                    "no worker started it within {} ms",
                    self.config.schedule_to_start_ms.unwrap_or_default()
                );
                out.push(Action::Expired {
                    index: i,
                    attempt,
                    reason: reason.clone(),
                });
                self.fail_attempt(i, reason, true, now, out);
            }
            _ => {}
        }
    }

    /// Stops dispatching: waiting and queued objects become cancelled; in-flight attempts
    /// still report, and their results are recorded (no retries).
    pub fn cancel(&mut self, now: u64, out: &mut Vec<Action>) {
        let now = self.advance(now);
        if self.status == RunStatus::Finished {
            return;
        }
        self.cancelled = true;
        self.status = RunStatus::Cancelling;
        for i in 0..self.graph.len() as u32 {
            if matches!(
                self.records[i as usize].state,
                ObjectState::Waiting | ObjectState::Queued | ObjectState::RetryWait
            ) {
                self.finish(i, ObjectState::Cancelled, now);
            }
        }
        for q in &mut self.queues {
            q.clear();
        }
        self.check_finished(out);
    }

    /// Puts failed, upstream-failed and cancelled objects back to waiting (loaded ones are not
    /// touched) and runs them again. Attempt numbers keep counting up.
    pub fn reset_failed(&mut self, now: u64, out: &mut Vec<Action>) -> usize {
        let now = self.advance(now);
        let mut reset = 0;
        for i in 0..self.graph.len() {
            let r = &mut self.records[i];
            if matches!(
                r.state,
                ObjectState::Failed | ObjectState::UpstreamFailed | ObjectState::Cancelled
            ) {
                r.state = ObjectState::Waiting;
                r.failures = 0;
                r.due_ms = 0;
                r.finished_ms = 0;
                self.mark(i as u32);
                reset += 1;
            }
        }
        self.cancelled = false;
        self.status = RunStatus::Running;
        out.push(Action::FailuresReset);
        self.start(now, out);
        reset
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }
    pub fn is_finished(&self) -> bool {
        self.status == RunStatus::Finished
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
    pub fn graph(&self) -> &Arc<RunGraph> {
        &self.graph
    }
    pub fn record(&self, index: u32) -> &ObjectRecord {
        &self.records[index as usize]
    }
    pub fn records(&self) -> &[ObjectRecord] {
        &self.records
    }
    /// Objects dispatched and not yet answered, per zone.
    pub fn in_flight(&self, zone: Zone) -> u32 {
        self.in_flight[zone.index()]
    }
    /// Objects whose parents are loaded but that wait for room in their zone (or for a retry).
    pub fn waiting(&self, zone: Zone) -> usize {
        self.queues[zone.index()].len()
    }
    pub fn terminal_count(&self) -> usize {
        self.terminal
    }
    /// Objects of `zone` that reached a terminal state.
    pub fn terminal_in(&self, zone: Zone) -> usize {
        self.terminal_by_zone[zone.index()]
    }
    /// When the next timer is due, for the caller's sleep.
    pub fn next_deadline(&self) -> Option<u64> {
        let retry = self.timers.peek().map(|Reverse((due, ..))| *due);
        let deadline = self.deadlines.front().map(|(due, ..)| *due);
        match (retry, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    pub fn summary(&self) -> RunSummary {
        RunSummary::from_records(&self.graph, &self.records)
    }
    /// Indices whose record changed since the last call: what the store must write.
    pub fn take_changed(&mut self) -> Vec<u32> {
        for &i in &self.dirty {
            self.is_dirty[i as usize] = false;
        }
        std::mem::take(&mut self.dirty)
    }

    fn progress(&mut self, id: ObjectId, attempt: u32, now: u64, out: &mut Vec<Action>) {
        let Some(i) = self.graph.index_of(id) else {
            out.push(Action::Ignored {
                id,
                reason: IgnoredReason::UnknownObject,
                is_result: false,
            });
            return;
        };
        let rec = &mut self.records[i as usize];
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
        rec.state = ObjectState::Running;
        rec.due_ms = now.saturating_add(self.config.lease_ms);
        let due = rec.due_ms;
        self.deadlines
            .push_back((due, i, attempt, TimerKind::LeaseEnd));
        // Leases are soft state, not written to the store: a restored run re-sends (or
        // re-leases) every attempt in flight. This halves the writes of a run.
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

    fn loaded(&mut self, id: ObjectId, attempt: Option<u32>, now: u64, out: &mut Vec<Action>) {
        let Some((i, rec)) = self.unfinished(id, out) else {
            return;
        };
        let attempt = attempt.unwrap_or(rec.attempt);
        let was_sent = matches!(
            rec.state,
            ObjectState::Dispatched
                | ObjectState::Running
                | ObjectState::RetryWait
                | ObjectState::Queued
        );
        // The first Loaded of any attempt that was really sent is accepted: the work was done.
        if attempt == 0 || attempt > rec.attempt || !was_sent {
            out.push(Action::Ignored {
                id,
                reason: IgnoredReason::StaleAttempt,
                is_result: true,
            });
            return;
        }
        let zone = self.graph.node(i).zone.index();
        if rec.state.is_in_flight() {
            self.in_flight[zone] -= 1;
        }
        out.push(Action::ResultAccepted {
            index: i,
            loaded: true,
            elapsed_ms: now.saturating_sub(rec.dispatched_ms),
        });
        self.finish(i, ObjectState::Loaded, now);
        let graph = Arc::clone(&self.graph);
        for &c in graph.children(i) {
            let p = &mut self.pending_parents[c as usize];
            *p = p.saturating_sub(1);
            if *p == 0 && self.records[c as usize].state == ObjectState::Waiting && !self.cancelled
            {
                self.enqueue(c);
            }
        }
    }

    fn failed(
        &mut self,
        id: ObjectId,
        attempt: Option<u32>,
        reason: String,
        retryable: bool,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Some((i, rec)) = self.unfinished(id, out) else {
            return;
        };
        if attempt.unwrap_or(rec.attempt) != rec.attempt || !rec.state.is_in_flight() {
            out.push(Action::Ignored {
                id,
                reason: IgnoredReason::StaleAttempt,
                is_result: true,
            });
            return;
        }
        out.push(Action::ResultAccepted {
            index: i,
            loaded: false,
            elapsed_ms: now.saturating_sub(rec.dispatched_ms),
        });
        self.fail_attempt(i, reason, retryable, now, out);
    }

    /// The current attempt of in-flight object `i` failed.
    fn fail_attempt(
        &mut self,
        i: u32,
        reason: String,
        retryable: bool,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let zone = self.graph.node(i).zone;
        self.in_flight[zone.index()] -= 1;
        let rec = &mut self.records[i as usize];
        rec.failures += 1;
        let attempt = rec.attempt;
        if self.cancelled {
            self.finish(i, ObjectState::Cancelled, now);
            return;
        }
        if retryable && rec.failures <= self.config.max_retries {
            let policy = self.config.zone(zone);
            let delay = backoff_delay_ms(
                policy.backoff_base_ms,
                policy.backoff_cap_ms,
                rec.failures,
                self.rng.f64(),
            );
            rec.retries += 1;
            rec.state = ObjectState::RetryWait;
            rec.due_ms = now.saturating_add(delay);
            let due = rec.due_ms;
            self.timers
                .push(Reverse((due, i, attempt, TimerKind::RetryDue)));
            self.mark(i);
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

    fn enqueue(&mut self, i: u32) {
        let node = self.graph.node(i);
        self.queues[node.zone.index()].push(self.graph.rank(i), node.criticality as u8, i);
        self.set_state(i, ObjectState::Queued);
    }

    fn dispatch_ready(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.cancelled {
            return;
        }
        for z in 0..3 {
            let limit = self.config.zones[z].max_in_flight.unwrap_or(u32::MAX);
            while self.in_flight[z] < limit {
                let Some(i) = self.queues[z].pop() else {
                    break;
                };
                if self.records[i as usize].state != ObjectState::Queued {
                    continue; // loaded by a late result while it waited
                }
                let attempt = self.records[i as usize].attempt + 1;
                self.send(i, attempt, now, out);
            }
        }
    }

    fn send(&mut self, i: u32, attempt: u32, now: u64, out: &mut Vec<Action>) {
        let zone = self.graph.node(i).zone.index();
        self.in_flight[zone] += 1;
        self.publish(i, attempt, now, out);
    }

    /// Dispatches `attempt` of `i`, already counted in flight.
    fn publish(&mut self, i: u32, attempt: u32, now: u64, out: &mut Vec<Action>) {
        let rec = &mut self.records[i as usize];
        rec.attempt = attempt;
        rec.state = ObjectState::Dispatched;
        rec.dispatched_ms = now;
        rec.due_ms = 0;
        if let Some(limit) = self.config.schedule_to_start_ms {
            rec.due_ms = now.saturating_add(limit);
            self.deadlines
                .push_back((rec.due_ms, i, attempt, TimerKind::StartDeadline));
        }
        self.mark(i);
        out.push(Action::Dispatch { index: i, attempt });
    }

    fn finish(&mut self, i: u32, state: ObjectState, now: u64) {
        let rec = &mut self.records[i as usize];
        if !rec.state.is_terminal() {
            self.terminal += 1;
            self.terminal_by_zone[self.graph.node(i).zone.index()] += 1;
        }
        rec.state = state;
        rec.due_ms = 0;
        rec.finished_ms = now;
        self.mark(i);
    }

    fn set_state(&mut self, i: u32, state: ObjectState) {
        self.records[i as usize].state = state;
        self.mark(i);
    }

    fn mark(&mut self, i: u32) {
        if !self.is_dirty[i as usize] {
            self.is_dirty[i as usize] = true;
            self.dirty.push(i);
        }
    }

    fn check_finished(&mut self, out: &mut Vec<Action>) {
        if self.status != RunStatus::Finished && self.terminal == self.graph.len() {
            self.status = RunStatus::Finished;
            out.push(Action::Finished);
        }
    }
}
