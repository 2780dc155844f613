//! One run as an aggregate: its header and its object records, changed only by its steps
//! (events in, actions out), each of which leaves a delta for the store. Guarantees: an object
//! is dispatched only when all its parents are loaded, a loaded object is never dispatched
//! again, children are released once, retries stay within the limit, and the same seed and
//! inputs give the same trace.

use super::attempt::AttemptRecord;
use super::config::SchedulerConfig;
use super::counts::RunCounts;
use super::delta::{DeadLetter, LatestLoad, RunDelta, RunSnapshot};
use super::header::{RunHandlers, RunHeader, RunStatus};
use super::queue::ReadyQueue;
use super::state::{ObjectRecord, ObjectState};
use super::summary::RunSummary;
use crate::run_graph::RunGraph;
use orchestrator_protocol::{ObjectId, Zone};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::steps::Action;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    RetryDue,
    LeaseEnd,
    StartDeadline,
    /// An attempt in flight at a restart is sent again (see [`InFlightOnRestore::Republish`]).
    RepublishDue,
}

/// The graph's version does not match the snapshot's: the objects, zones or parents differ.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("run {run}: its graph has version {found}, but the run was started on version {stored}")]
pub struct GraphMismatch {
    pub run: String,
    pub stored: String,
    pub found: String,
}

/// One run of one graph.
pub struct Run {
    pub(super) graph: Arc<RunGraph>,
    pub(super) config: SchedulerConfig,
    pub(super) rng: fastrand::Rng,
    pub(super) header: RunHeader,
    pub(super) records: Vec<ObjectRecord>,
    /// Parents not yet loaded (or satisfied) per object.
    pub(super) pending_parents: Vec<u32>,
    /// Queued objects per zone by priority: rank, then criticality, then first in.
    pub(super) queues: [ReadyQueue; 3],
    /// Retry timers, whose delays vary: a heap.
    pub(super) timers: BinaryHeap<Reverse<(u64, u32, u32, TimerKind)>>,
    /// Lease ends and start deadlines: always `now` plus a fixed time, so they come due in the
    /// order they were set and a FIFO queue holds them at O(1).
    pub(super) deadlines: VecDeque<(u64, u32, u32, TimerKind)>,
    /// The latest time seen: the run's clock never goes back, even if the caller's does.
    pub(super) clock: u64,
    pub(super) in_flight_on_restore: InFlightOnRestore,
    // What changed since the last delta.
    pub(super) dirty: Vec<u32>,
    pub(super) is_dirty: Vec<bool>,
    pub(super) header_changed: bool,
    pub(super) letters: Vec<DeadLetter>,
    pub(super) letters_cleared: bool,
    pub(super) letters_removed: Vec<ObjectId>,
    pub(super) attempts: Vec<(ObjectId, AttemptRecord)>,
    /// The run finished since the last delta: its loads go with the next one.
    pub(super) loads_due: bool,
    /// Objects in a terminal state (the counts' sum, kept apart for the check after each step).
    pub(super) terminal: usize,
}

impl Run {
    /// A new run of `graph`; nothing is dispatched until [`Run::start`]. The header's version
    /// and size are the graph's.
    pub fn new(graph: Arc<RunGraph>, config: SchedulerConfig, header: RunHeader) -> Run {
        let records = vec![ObjectRecord::default(); graph.len()];
        let mut run = Self::with_records(graph, config, header, records);
        run.header.status = RunStatus::Running;
        run.header.cancelled = false;
        run
    }

    /// A stored run opened again (after a crash, on a takeover, to resume or rerun it), with
    /// what to do with the attempts it had in flight. Refused if `graph` is not the graph the
    /// run was started on.
    pub fn from_snapshot(
        graph: Arc<RunGraph>,
        config: SchedulerConfig,
        snapshot: RunSnapshot,
        in_flight: InFlightOnRestore,
    ) -> Result<Run, GraphMismatch> {
        if snapshot.header.graph_version != graph.version() {
            return Err(GraphMismatch {
                run: snapshot.header.run_id.to_string(),
                stored: snapshot.header.graph_version,
                found: graph.version().to_string(),
            });
        }
        let mut records = vec![ObjectRecord::default(); graph.len()];
        for (id, record) in snapshot.records {
            if let Some(i) = graph.index_of(id) {
                records[i as usize] = record;
            }
        }
        let mut run = Self::with_records(graph, config, snapshot.header, records);
        run.in_flight_on_restore = in_flight;
        Ok(run)
    }

    fn with_records(
        graph: Arc<RunGraph>,
        config: SchedulerConfig,
        mut header: RunHeader,
        records: Vec<ObjectRecord>,
    ) -> Run {
        let n = graph.len();
        header.graph_version = graph.version().to_string();
        header.objects = n;
        // The counts of the records as they are (all waiting for a new run).
        header.counts = RunCounts::default();
        let mut terminal = 0;
        for (i, r) in records.iter().enumerate() {
            let zone = graph.zone(i as u32);
            header.counts.add(zone, r.state);
            header.counts.retried(zone, u64::from(r.retries));
            if r.attempt > 0 && r.dispatched_ms > 0 {
                header.counts.dispatched(zone, r.dispatched_ms);
            }
            header.counts.finished(zone, r.finished_ms);
            terminal += usize::from(r.state.is_terminal());
        }
        Run {
            pending_parents: vec![0; n],
            rng: fastrand::Rng::with_seed(header.seed),
            graph,
            config,
            header,
            records,
            queues: Default::default(),
            timers: BinaryHeap::new(),
            deadlines: VecDeque::new(),
            clock: 0,
            in_flight_on_restore: InFlightOnRestore::Resend,
            dirty: Vec::new(),
            is_dirty: vec![false; n],
            header_changed: true,
            letters: Vec::new(),
            letters_cleared: false,
            letters_removed: Vec::new(),
            attempts: Vec::new(),
            loads_due: false,
            terminal,
        }
    }

    pub fn header(&self) -> &RunHeader {
        &self.header
    }
    pub fn status(&self) -> RunStatus {
        self.header.status
    }
    pub fn is_finished(&self) -> bool {
        self.header.status == RunStatus::Finished
    }
    /// Finished, or interrupted with nothing left in flight: no step will change it.
    pub fn is_settled(&self) -> bool {
        match self.header.status {
            RunStatus::Finished => true,
            RunStatus::Interrupted => Zone::ALL.iter().all(|&z| self.in_flight(z) == 0),
            _ => false,
        }
    }
    pub fn graph(&self) -> &Arc<RunGraph> {
        &self.graph
    }
    pub fn record(&self, index: u32) -> &ObjectRecord {
        &self.records[index as usize]
    }
    /// Objects per zone and state (O(1)).
    pub fn counts(&self) -> &RunCounts {
        &self.header.counts
    }
    /// Objects dispatched and not yet answered, per zone.
    pub fn in_flight(&self, zone: Zone) -> u32 {
        let z = self.header.counts.zone(zone);
        (z.dispatched + z.running) as u32
    }
    /// Objects whose parents are loaded but that wait for room in their zone.
    pub fn waiting(&self, zone: Zone) -> usize {
        self.header.counts.zone(zone).queued
    }
    /// Objects of `zone` that reached a terminal state.
    pub fn terminal_in(&self, zone: Zone) -> usize {
        let z = self.header.counts.zone(zone);
        z.loaded + z.failed + z.upstream_failed + z.cancelled
    }
    pub fn terminal_count(&self) -> usize {
        self.terminal
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
        self.header.counts.summary()
    }

    /// What changed since the last call, for the store to persist before the actions are
    /// carried out; `None` when nothing did.
    pub fn take_delta(&mut self) -> Option<RunDelta> {
        if self.dirty.is_empty()
            && !self.header_changed
            && self.letters.is_empty()
            && !self.letters_cleared
            && self.letters_removed.is_empty()
            && self.attempts.is_empty()
            && !self.loads_due
        {
            return None;
        }
        self.header.updated_ms = self.header.updated_ms.max(self.clock);
        let mut records = Vec::with_capacity(self.dirty.len());
        for &i in &self.dirty {
            self.is_dirty[i as usize] = false;
            records.push((self.graph.id(i), self.records[i as usize]));
        }
        self.dirty.clear();
        self.header_changed = false;
        Some(RunDelta {
            header: self.header.clone(),
            dead_letters_cleared: std::mem::take(&mut self.letters_cleared),
            dead_letters_removed: std::mem::take(&mut self.letters_removed),
            records,
            dead_letters: std::mem::take(&mut self.letters),
            // Exactly as many as ended (stores may keep them for the run's life); the buffer
            // stays for the next batch.
            attempts: self.attempts.drain(..).collect(),
            loads: if std::mem::take(&mut self.loads_due) {
                self.loads()
            } else {
                Vec::new()
            },
        })
    }

    /// The run as a store would hold it after every delta: its header and every record.
    pub fn snapshot(&self) -> RunSnapshot {
        let mut header = self.header.clone();
        header.updated_ms = header.updated_ms.max(self.clock);
        RunSnapshot {
            header,
            records: (0..self.graph.len() as u32)
                .map(|i| (self.graph.id(i), self.records[i as usize]))
                .collect(),
        }
    }

    /// The handlers its in-process workers run from now on (kept with the run).
    pub fn set_handlers(&mut self, handlers: RunHandlers) {
        if self.header.options.handlers.as_ref() != Some(&handlers) {
            self.header.options.handlers = Some(handlers);
            self.header_changed = true;
        }
    }

    pub(super) fn advance(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
    }

    pub(super) fn set_status(&mut self, status: RunStatus) {
        if self.header.status != status {
            self.header.status = status;
            self.header_changed = true;
        }
    }

    pub(super) fn mark(&mut self, i: u32) {
        if !self.is_dirty[i as usize] {
            self.is_dirty[i as usize] = true;
            self.dirty.push(i);
        }
    }

    /// Every change of an object's state goes through here, so that the counts stay true.
    pub(super) fn set_state(&mut self, i: u32, state: ObjectState) {
        let zone = self.graph.zone(i);
        let from = self.records[i as usize].state;
        self.header.counts.moved(zone, from, state);
        match (from.is_terminal(), state.is_terminal()) {
            (false, true) => self.terminal += 1,
            (true, false) => self.terminal -= 1,
            _ => {}
        }
        self.records[i as usize].state = state;
        self.mark(i);
    }

    /// Object `i` reached terminal `state` at `now`.
    pub(super) fn finish(&mut self, i: u32, state: ObjectState, now: u64) {
        self.set_state(i, state);
        let rec = &mut self.records[i as usize];
        rec.due_ms = 0;
        rec.finished_ms = now;
        self.header.counts.finished(self.graph.zone(i), now);
    }

    pub(super) fn check_finished(&mut self, out: &mut Vec<Action>) {
        if self.header.status != RunStatus::Finished && self.terminal_count() == self.graph.len() {
            self.set_status(RunStatus::Finished);
            self.loads_due = true;
            out.push(Action::Finished);
        }
    }

    /// Every object this run really loaded (not by a handler that only pretended): when, and
    /// by which attempt.
    pub fn loads(&self) -> Vec<LatestLoad> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == ObjectState::Loaded && !r.simulated)
            .map(|(i, r)| LatestLoad {
                id: self.graph.id(i as u32),
                at_ms: r.finished_ms,
                attempt: r.attempt,
            })
            .collect()
    }
}
