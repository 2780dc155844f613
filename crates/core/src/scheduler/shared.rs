//! Never two at once across runs: an object whose attempt one run has in flight is not sent by
//! another. The later run's attempt is *held* (an object state the run owns and the store keeps)
//! until that attempt ends; then it takes that attempt's load (it loaded after this attempt was
//! dispatched), or goes out itself. Pure: the runs are asked and changed here, the caller carries
//! out the actions they return.

use super::attempt::{AttemptReport, AttemptText};
use super::run::Run;
use super::state::ObjectState;
use super::steps::Action;
use orchestrator_protocol::{ObjectId, RunId};
use std::collections::BTreeMap;

impl Run {
    /// Attempt `attempt` of object `index`, just dispatched, waits for another run's attempt
    /// instead of going out: held (its Ready event is not sent, no deadline runs). False if
    /// that is not the attempt dispatched.
    pub fn hold(&mut self, index: u32, attempt: u32) -> bool {
        let rec = self.records[index as usize];
        if rec.attempt != attempt || rec.state != ObjectState::Dispatched {
            return false;
        }
        self.set_state(index, ObjectState::Held);
        self.records[index as usize].due_ms = 0;
        true
    }

    /// The objects held for another run's attempt, with their attempts.
    pub fn held(&self) -> Vec<(u32, u32)> {
        if self.header.counts.in_state(ObjectState::Held) == 0 {
            return Vec::new();
        }
        (0..self.graph.len() as u32)
            .filter(|&i| self.records[i as usize].state == ObjectState::Held)
            .map(|i| (i, self.records[i as usize].attempt))
            .collect()
    }

    /// The attempt held object `index` waited for ended. `loaded_by`: the run whose attempt
    /// loaded it since this attempt was dispatched, and whether that load was simulated: it is
    /// loaded here too (its attempt says by which run). `None`: this attempt goes out itself.
    pub fn release(
        &mut self,
        index: u32,
        attempt: u32,
        loaded_by: Option<(&RunId, bool)>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let now = self.advance(now);
        let rec = self.records[index as usize];
        if rec.attempt != attempt || rec.state != ObjectState::Held {
            return;
        }
        match loaded_by {
            Some((other, simulated)) => {
                let report = AttemptReport {
                    duration_ms: 0,
                    text: AttemptText {
                        worker: format!("run {other}"),
                        info: format!("loaded by run {other}, which had it in flight"),
                        ..AttemptText::default()
                    }
                    .shared(),
                    simulated,
                };
                self.load_object(index, attempt, report, now, out);
            }
            None => self.publish(index, attempt, now, out),
        }
        self.dispatch_ready(now, out);
        self.check_finished(out);
    }
}

/// Another run than `run` that has `id` in flight (dispatched or running), if any.
pub fn in_flight_elsewhere<'a>(
    runs: &'a BTreeMap<RunId, Run>,
    run: &RunId,
    id: ObjectId,
) -> Option<&'a RunId> {
    runs.iter()
        .filter(|(other, _)| *other != run)
        .find(|(_, r)| {
            r.graph()
                .index_of(id)
                .is_some_and(|i| r.record(i).state.is_in_flight())
        })
        .map(|(other, _)| other)
}

/// Another run than `run` that loaded `id` at or after `since_ms`, and whether it was
/// simulated.
pub fn loaded_elsewhere_since<'a>(
    runs: &'a BTreeMap<RunId, Run>,
    run: &RunId,
    id: ObjectId,
    since_ms: u64,
) -> Option<(&'a RunId, bool)> {
    runs.iter()
        .filter(|(other, _)| *other != run)
        .find_map(|(other, r)| {
            let rec = r.record(r.graph().index_of(id)?);
            (rec.state == ObjectState::Loaded && rec.finished_ms >= since_ms)
                .then_some((other, rec.simulated))
        })
}

/// Run `run` dispatched attempt `attempt` of `id`: if another run has `id` in flight, the
/// attempt is held and that run is returned (the Ready event must not go out).
pub fn hold_if_shared(
    runs: &mut BTreeMap<RunId, Run>,
    run: &RunId,
    id: ObjectId,
    attempt: u32,
) -> Option<RunId> {
    if runs.len() < 2 {
        return None;
    }
    let other = in_flight_elsewhere(runs, run, id)?.clone();
    let held = runs
        .get_mut(run)
        .and_then(|r| Some(r.hold(r.graph().index_of(id)?, attempt)))
        .unwrap_or(false);
    held.then_some(other)
}

/// Releases the held attempts whose object no other run has in flight any more, one after the
/// other (what one sends out is in flight for the next, so two held attempts of one object
/// never both go out): each takes the load of the run that loaded it since, or goes out.
/// Returns each released run's actions, in order, for the caller to carry out as any step's:
/// every Dispatch among them (a released attempt, or a child it made ready) through
/// [`hold_if_shared`].
pub fn release_shared(runs: &mut BTreeMap<RunId, Run>, now: u64) -> Vec<(RunId, Vec<Action>)> {
    let held: Vec<(RunId, u32, u32)> = runs
        .iter()
        .flat_map(|(id, r)| r.held().into_iter().map(move |(i, a)| (id.clone(), i, a)))
        .collect();
    let mut released = Vec::new();
    for (run_id, index, attempt) in held {
        let Some(run) = runs.get(&run_id) else {
            continue;
        };
        let id = run.graph().id(index);
        let dispatched_ms = run.record(index).dispatched_ms;
        if in_flight_elsewhere(runs, &run_id, id).is_some() {
            continue;
        }
        let loaded_by = loaded_elsewhere_since(runs, &run_id, id, dispatched_ms)
            .map(|(other, simulated)| (other.clone(), simulated));
        let mut actions = Vec::new();
        if let Some(run) = runs.get_mut(&run_id) {
            let by = loaded_by.as_ref().map(|(other, s)| (other, *s));
            run.release(index, attempt, by, now, &mut actions);
        }
        released.push((run_id, actions));
    }
    released
}
