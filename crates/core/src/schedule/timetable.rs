//! The schedule over time: the catalog's graph and loads, the ticks already started, pauses,
//! and what runs at each tick or trigger. Pure: the caller gives the moments, keeps the state
//! this returns in its store (with the run a tick starts), and starts the runs.

use super::catalog::Catalog;
use super::frequency::ScheduleZone;
use super::tick::{TickPlan, Why, evaluate};
use crate::graph::Graph;
use chrono::DateTime;
use orchestrator_protocol::{ObjectId, RunId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the store keeps of a schedule: the latest tick a run was started for (so that a
/// restart or a standby never starts it twice), and what is paused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The latest tick (Unix milliseconds) whose run was started, or that was skipped.
    #[serde(default)]
    pub ticked_ms: Option<u64>,
    /// The whole schedule is paused: no tick starts a run (triggers still do).
    #[serde(default)]
    pub paused: bool,
    /// Objects paused one by one: never due, never run as a stale ancestor.
    #[serde(default)]
    pub paused_objects: BTreeSet<ObjectId>,
}

/// Ticks missed while no orchestrator ran (`SCHEDULE_CATCHUP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Catchup {
    /// They collapse into one run at start-up.
    #[default]
    Once,
    /// They are skipped: the first run is at the first tick after start-up.
    None,
}

impl std::str::FromStr for Catchup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "once" => Ok(Catchup::Once),
            "none" => Ok(Catchup::None),
            other => Err(format!(
                "SCHEDULE_CATCHUP {other:?}: expected once (missed ticks collapse into one run at start-up) or none (they are skipped)"
            )),
        }
    }
}

/// A run to start: its id (derived from its tick), the objects' JSON (the run's objects alone;
/// parents outside it are fresh and count as loaded), and the plan it came from.
#[derive(Clone, Debug)]
pub struct TickRun {
    pub tick_ms: u64,
    pub run_id: RunId,
    pub objects: String,
    pub plan: TickPlan,
}

/// Why a trigger starts nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("object {0} is not in the catalog")]
    Unknown(ObjectId),
    #[error("object {0} is not active (EtatObjet is not actif)")]
    Inactive(ObjectId),
}

/// The schedule of one catalog.
#[derive(Debug)]
pub struct Timetable {
    pub(super) graph: Graph,
    pub(super) catalog: Catalog,
    /// `EtatObjet` as the definitions say: `catalog.active` is this less the paused objects.
    defined_active: Vec<bool>,
    pub(super) zone: ScheduleZone,
    pub(super) state: ScheduleState,
    /// A run is due at once (catch-up at start-up, a resume).
    evaluate_now: bool,
}

impl Timetable {
    /// The schedule of `graph` as `state` left it, at `now_ms`: with [`Catchup::Once`] the
    /// ticks missed since `state.ticked_ms` make one run at once; with [`Catchup::None`] they
    /// are skipped.
    pub fn new(
        graph: Graph,
        mut catalog: Catalog,
        zone: ScheduleZone,
        catchup: Catchup,
        state: ScheduleState,
        now_ms: u64,
    ) -> Timetable {
        let defined_active = catalog.active.clone();
        if catchup == Catchup::None {
            catalog.ticks_after = catalog.ticks_after.max(now_ms);
        }
        let mut t = Timetable {
            graph,
            catalog,
            defined_active,
            zone,
            state,
            evaluate_now: catchup == Catchup::Once,
        };
        t.apply_pauses();
        t
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    pub fn state(&self) -> &ScheduleState {
        &self.state
    }
    pub fn zone(&self) -> ScheduleZone {
        self.zone
    }

    /// When the schedule next needs [`Timetable::tick`]: now (catch-up), or the earliest tick
    /// of any frequency after the latest one handled.
    pub fn next_wake(&self, now_ms: u64) -> Option<u64> {
        if self.evaluate_now {
            return Some(now_ms);
        }
        // The first tick after the latest handled one: a moment past if the process was
        // busy (or away) then; it is handled at once.
        let from = self.state.ticked_ms.unwrap_or(now_ms);
        self.catalog
            .frequencies
            .iter()
            .filter_map(|f| f.next_tick(from, self.zone))
            .min()
    }

    /// The run of the latest tick at or before `now_ms`, unless it was started already,
    /// nothing is due, or the schedule is paused. Either way that tick counts as handled: the
    /// caller stores [`Timetable::state`] with the run it starts (or alone).
    pub fn tick(&mut self, now_ms: u64) -> Option<TickRun> {
        self.evaluate_now = false;
        let tick_ms = self
            .catalog
            .frequencies
            .iter()
            .filter_map(|f| f.latest_tick(now_ms, self.zone))
            .max()?;
        if self.state.ticked_ms.is_some_and(|t| t >= tick_ms) {
            return None; // started before a restart, or by a process that stood where we stand
        }
        self.state.ticked_ms = Some(tick_ms);
        if self.state.paused {
            return None;
        }
        let plan = evaluate(&self.graph, &self.catalog, now_ms, self.zone);
        if plan.is_empty() {
            return None;
        }
        let run_id = RunId::new(format!("tick-{}", stamp(tick_ms)));
        Some(self.run_of(tick_ms, run_id, plan))
    }

    /// A run of `id` now, with its stale ancestors (and the objects that follow it), whatever
    /// its frequency says; `salt` tells two triggers of one second apart.
    pub fn trigger(&self, id: ObjectId, now_ms: u64, salt: u16) -> Result<TickRun, TriggerError> {
        let &i = self.graph.index.get(&id).ok_or(TriggerError::Unknown(id))?;
        if !self.defined_active[i as usize] {
            return Err(TriggerError::Inactive(id));
        }
        let plan = super::tick::evaluate_from(
            &self.graph,
            &self.catalog,
            now_ms,
            self.zone,
            &[(i, Why::Triggered)],
        );
        let run_id = RunId::new(format!("trigger-{}-{id}-{salt:04x}", stamp(now_ms)));
        Ok(self.run_of(now_ms, run_id, plan))
    }

    fn run_of(&self, tick_ms: u64, run_id: RunId, plan: TickPlan) -> TickRun {
        let size: usize = plan
            .run
            .iter()
            .map(|&(i, _)| self.graph.objects[i as usize].raw.get().len() + 1)
            .sum();
        let mut objects = String::with_capacity(size + 2);
        objects.push('[');
        for (n, &(i, _)) in plan.run.iter().enumerate() {
            if n > 0 {
                objects.push(',');
            }
            objects.push_str(self.graph.objects[i as usize].raw.get());
        }
        objects.push(']');
        TickRun {
            tick_ms,
            run_id,
            objects,
            plan,
        }
    }

    /// An object loaded at `at_ms` (a later load is never replaced by an earlier one).
    pub fn loaded(&mut self, id: ObjectId, at_ms: u64) {
        if let Some(&i) = self.graph.index.get(&id) {
            let slot = &mut self.catalog.loaded[i as usize];
            if slot.is_none_or(|t| t < at_ms) {
                *slot = Some(at_ms);
            }
        }
    }

    /// Schedules `graph` from now on (a catalog replaced): each object keeps the latest load
    /// known for its id, and the state (ticks handled, pauses of objects still there) stays.
    pub fn replace(&mut self, graph: Graph, mut catalog: Catalog) {
        for (i, o) in graph.objects.iter().enumerate() {
            if let Some(&old) = self.graph.index.get(&o.id) {
                let known = self.catalog.loaded[old as usize];
                let slot = &mut catalog.loaded[i];
                if known.is_some_and(|k| slot.is_none_or(|s| s < k)) {
                    *slot = known;
                }
            }
        }
        catalog.ticks_after = self.catalog.ticks_after;
        self.state
            .paused_objects
            .retain(|id| graph.index.contains_key(id));
        self.defined_active = catalog.active.clone();
        self.graph = graph;
        self.catalog = catalog;
        self.apply_pauses();
    }

    /// Pauses or resumes the whole schedule (`None`) or one object; `false` for an unknown
    /// object.
    pub fn set_paused(&mut self, object: Option<ObjectId>, paused: bool) -> bool {
        match object {
            None => self.state.paused = paused,
            Some(id) => {
                if !self.graph.index.contains_key(&id) {
                    return false;
                }
                if paused {
                    self.state.paused_objects.insert(id);
                } else {
                    self.state.paused_objects.remove(&id);
                }
                self.apply_pauses();
            }
        }
        true
    }

    fn apply_pauses(&mut self) {
        for (i, o) in self.graph.objects.iter().enumerate() {
            self.catalog.active[i] =
                self.defined_active[i] && !self.state.paused_objects.contains(&o.id);
        }
    }
}

/// A short fingerprint of a catalog's text (which `OBJECTS_PATH` a replaced catalog replaced).
pub fn catalog_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `20261130-060000`: a tick's moment in UTC, for run ids.
fn stamp(ms: u64) -> String {
    DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}
