//! Never two at once: an object in flight in one run is not dispatched again by another run.
//! The later run's attempt waits (its Ready event held back); when the other attempt ends, it
//! takes that result if it loaded, or goes out itself if it did not.

use super::{Engine, Outbox};
use orchestrator_core::scheduler::{AttemptReport, AttemptText, Event, ObjectState};
use orchestrator_protocol::{ObjectId, ReadyEvent, RunId};

impl Engine {
    /// Holds back the Ready events from `out.ready[from..]` whose object another held run has
    /// in flight.
    pub(super) fn hold_shared(&mut self, from: usize, out: &mut Outbox) {
        if self.runs.len() < 2 || out.ready.len() <= from {
            return;
        }
        for ready in out.ready.split_off(from) {
            match self.in_flight_elsewhere(&ready.run_id, ready.id, &self.held_back) {
                Some(other) => {
                    tracing::info!(run = %ready.run_id, object = %ready.id, attempt = ready.attempt, %other, "in flight in another run: waits for its result");
                    self.held_back
                        .retain(|h| !(h.run_id == ready.run_id && h.id == ready.id));
                    self.held_back.push(ready);
                }
                None => out.ready.push(ready),
            }
        }
    }

    /// Lets go of what waited on attempts that ended this turn: an object loaded by the other
    /// run is loaded in this one too (the same attempt number, with a note saying by which
    /// run); one that did not load goes out.
    pub(super) fn release_shared(&mut self, out: &mut Outbox) {
        if self.held_back.is_empty() {
            return;
        }
        let mut taken = Vec::new();
        // Attempts that take their result in this call: no longer in flight either.
        let mut settled: Vec<ReadyEvent> = Vec::new();
        let list = std::mem::take(&mut self.held_back);
        for (k, ready) in list.iter().enumerate() {
            let Some(run) = self.runs.get(&ready.run_id) else {
                continue; // forgotten: finished or cancelled
            };
            let Some(i) = run.graph().index_of(ready.id) else {
                continue;
            };
            let record = run.record(i);
            if record.attempt != ready.attempt || record.state != ObjectState::Dispatched {
                continue; // this attempt is over (expired, cancelled): nothing waits
            }
            // What still waits (kept, or not looked at yet) is not in flight.
            let pending = self.held_back.iter().chain(&list[k + 1..]).chain(&settled);
            if self
                .in_flight_elsewhere(&ready.run_id, ready.id, pending)
                .is_some()
            {
                self.held_back.push(ready.clone());
            } else if let Some((other, simulated)) =
                self.loaded_elsewhere_since(&ready.run_id, ready.id, record.dispatched_ms)
            {
                let report = AttemptReport {
                    duration_ms: 0,
                    text: AttemptText {
                        worker: format!("run {other}"),
                        info: format!("loaded by run {other}, which had it in flight"),
                        ..Default::default()
                    }
                    .boxed(),
                    simulated,
                };
                let event = Event::Loaded {
                    id: ready.id,
                    attempt: Some(ready.attempt),
                    report,
                };
                taken.push((ready.run_id.clone(), event, false));
                settled.push(ready.clone());
            } else {
                out.ready.push(ready.clone());
            }
        }
        if !taken.is_empty() {
            self.apply(taken, out);
        }
    }

    /// Another run that has `id` in flight: dispatched (its Ready event out, not one of
    /// `held`) or running.
    fn in_flight_elsewhere<'a>(
        &self,
        run: &RunId,
        id: ObjectId,
        held: impl IntoIterator<Item = &'a ReadyEvent> + Clone,
    ) -> Option<RunId> {
        self.runs
            .iter()
            .filter(|(other, _)| *other != run)
            .find(|(other, r)| {
                r.graph()
                    .index_of(id)
                    .is_some_and(|i| match r.record(i).state {
                        ObjectState::Running => true,
                        ObjectState::Dispatched => !held
                            .clone()
                            .into_iter()
                            .any(|h| h.id == id && &h.run_id == *other),
                        _ => false,
                    })
            })
            .map(|(other, _)| other.clone())
    }

    fn loaded_elsewhere_since(
        &self,
        run: &RunId,
        id: ObjectId,
        since_ms: u64,
    ) -> Option<(RunId, bool)> {
        self.runs
            .iter()
            .filter(|(other, _)| *other != run)
            .find_map(|(other, r)| {
                let rec = r.record(r.graph().index_of(id)?);
                (rec.state == ObjectState::Loaded && rec.finished_ms >= since_ms)
                    .then(|| (other.clone(), rec.simulated))
            })
    }
}

/// What waits: Ready events held back, one per run and object.
pub(super) type HeldBack = Vec<ReadyEvent>;
