//! The engine's schedule: at each tick it starts the run the timetable plans (its state stored
//! in the same batch as the run, so no tick starts twice or is lost), keeps the timetable's
//! loads current as objects load, answers triggers and pauses, and keeps the schedule metrics.

use super::{Engine, Outbox};
use crate::open::{Submission, open_new};
use orchestrator_core::graph::Graph;
use orchestrator_core::graph::MissingParents;
use orchestrator_core::schedule::{Catalog, ObjectStatus, TickRun, Timetable, TriggerError};
use orchestrator_core::scheduler::{RunOptions, SchedulerConfig};
use orchestrator_protocol::{ObjectId, RunId, Zone};
use orchestrator_store::Transition;
use std::sync::Arc;
use std::time::Instant;

/// A schedule the engine keeps: the timetable and the settings its runs start with.
pub struct EngineSchedule {
    pub timetable: Timetable,
    pub config: SchedulerConfig,
    /// The fingerprint of the `OBJECTS_PATH` text the catalog came from (`catalog_hash`),
    /// stored with a catalog replaced through the API.
    pub source_hash: String,
}

/// The freshness gauges follow loads at most this often.
const FRESHNESS_EVERY_MS: u64 = 5_000;

/// What a trigger started, or why it started nothing.
pub type TriggerAnswer = Result<RunId, TriggerError>;

impl Engine {
    /// Starts runs by the objects' frequencies from now on; the loads of the runs it holds
    /// already (continued after a restart) count.
    pub fn set_schedule(&mut self, mut schedule: EngineSchedule) {
        for run in self.runs.values() {
            for l in run.loads() {
                schedule.timetable.loaded(l.id, l.at_ms);
            }
        }
        self.schedule = Some(schedule);
        self.observe_freshness(self.clock.now_ms());
    }

    /// When the schedule next needs the engine, if it has one.
    pub(super) fn schedule_wake(&self) -> Option<u64> {
        let now = self.clock.now_ms();
        self.schedule.as_ref()?.timetable.next_wake(now)
    }

    /// At a tick: the run it plans starts, with the schedule's state in the same batch.
    pub(super) fn on_schedule_tick(&mut self, out: &mut Outbox) {
        let now = self.clock.now_ms();
        let Some(schedule) = self.schedule.as_mut() else {
            return;
        };
        if schedule.timetable.next_wake(now).is_none_or(|w| w > now) {
            return;
        }
        let started = Instant::now();
        let tick = schedule.timetable.tick(now);
        self.metrics
            .schedule_tick_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.schedule_ticks.inc();
        let state = schedule.timetable.state().clone();
        out.tx.push(Transition::Schedule(Box::new(state)));
        if let Some(tick) = tick {
            self.start_tick_run(tick, "tick", out);
        }
        self.observe_freshness(now);
    }

    /// Starts `id` now with its stale ancestors and followers.
    pub(super) fn trigger(&mut self, id: ObjectId, out: &mut Outbox) -> Option<TriggerAnswer> {
        let now = self.clock.now_ms();
        let schedule = self.schedule.as_ref()?;
        let tick = match schedule.timetable.trigger(id, now, fastrand::u16(..)) {
            Ok(tick) => tick,
            Err(e) => return Some(Err(e)),
        };
        let run_id = tick.run_id.clone();
        self.start_tick_run(tick, "trigger", out);
        Some(Ok(run_id))
    }

    /// Pauses or resumes the schedule or one object, and stores it; `None` without a
    /// schedule, `Some(false)` for an unknown object.
    pub(super) fn pause(
        &mut self,
        object: Option<ObjectId>,
        paused: bool,
        out: &mut Outbox,
    ) -> Option<bool> {
        let schedule = self.schedule.as_mut()?;
        if !schedule.timetable.set_paused(object, paused) {
            return Some(false);
        }
        let state = schedule.timetable.state().clone();
        out.tx.push(Transition::Schedule(Box::new(state)));
        tracing::info!(object = ?object.map(|o| o.0), paused, "schedule paused or resumed");
        Some(true)
    }

    /// Schedules a new catalog from now on (validated by the caller) and stores it; its number
    /// of objects, or `None` without a schedule.
    pub(super) fn replace_catalog(
        &mut self,
        graph: Graph,
        catalog: Catalog,
        objects: Arc<String>,
        out: &mut Outbox,
    ) -> Option<usize> {
        let schedule = self.schedule.as_mut()?;
        let n = graph.len();
        schedule.timetable.replace(graph, catalog);
        out.tx.push(Transition::Catalog {
            objects,
            replaces: schedule.source_hash.clone(),
        });
        tracing::info!(objects = n, "the schedule's catalog was replaced");
        self.observe_freshness(self.clock.now_ms());
        Some(n)
    }

    /// Whether the schedule is paused, and every object of the catalog as it stands now
    /// (`None` without a schedule).
    pub(super) fn schedule_status(&self) -> Option<(bool, Vec<ObjectStatus>)> {
        let now = self.clock.now_ms();
        let timetable = &self.schedule.as_ref()?.timetable;
        Some((timetable.state().paused, timetable.status(now)))
    }

    /// An object loaded: the timetable counts it at once (the catalog in the store is written
    /// when its run finishes).
    pub(super) fn schedule_loaded(&mut self, id: ObjectId) {
        let now = self.clock.now_ms();
        if let Some(s) = self.schedule.as_mut() {
            s.timetable.loaded(id, now);
        }
        if now >= self.freshness_observed_ms + FRESHNESS_EVERY_MS {
            self.observe_freshness(now);
        }
    }

    fn start_tick_run(&mut self, tick: TickRun, cause: &'static str, out: &mut Outbox) {
        let Some(schedule) = self.schedule.as_ref() else {
            return;
        };
        if self.runs.contains_key(&tick.run_id) {
            return; // continued after a restart: it is under way
        }
        let now = self.clock.now_ms();
        let submission = Submission {
            text: tick.objects,
            source: format!("schedule ({cause})"),
            // Parents outside the run are fresh: loaded.
            options: RunOptions {
                missing_parents: MissingParents::External,
                ..RunOptions::default()
            },
            seed: Some(tick.tick_ms),
            strict: false,
            // Accepted when the catalog was read.
            max_object_bytes: usize::MAX,
            run_id: Some(tick.run_id.clone()),
        };
        match open_new(submission, &schedule.config, now) {
            Ok(prepared) => {
                tracing::info!(run = %tick.run_id, objects = tick.plan.run.len(), fresh = tick.plan.fresh.len(), cause, "schedule starts a run");
                self.metrics.schedule_runs.with_label_values(&[cause]).inc();
                self.begin_run(prepared.run, Some(prepared.objects), |_, _, _| {}, out);
            }
            // The catalog was validated as a whole: a part of it validates too.
            Err(e) => {
                tracing::error!(run = %tick.run_id, error = %e, "a scheduled run could not be opened")
            }
        }
    }

    /// Sets the stale-objects and freshness-lag gauges from the schedule's catalog at `now`.
    fn observe_freshness(&mut self, now: u64) {
        let Some(schedule) = self.schedule.as_ref() else {
            return;
        };
        let zones = schedule.timetable.freshness(now);
        self.freshness_observed_ms = now;
        for z in Zone::ALL {
            let (stale, lag_ms) = zones[z.index()];
            let l = [z.as_str()];
            self.metrics
                .schedule_stale
                .with_label_values(&l)
                .set(stale as i64);
            self.metrics
                .schedule_lag
                .with_label_values(&l)
                .set(lag_ms as f64 / 1000.0);
        }
    }
}
