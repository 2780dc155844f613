//! What the schedule says of each object at a moment (for `GET /api/objects`): its latest and
//! next tick, its latest load, and whether it is fresh, stale, due (and why), paused or
//! inactive; and, per zone, how many objects are stale and by how much (for the metrics).

use super::tick::{Why, evaluate};
use super::timetable::Timetable;
use orchestrator_protocol::{ObjectId, Zone};
use serde::Serialize;

/// Where an object stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// It would run if the schedule ticked now (see `why`).
    Due,
    /// Loaded since its latest tick (or, without a frequency, since its parents' loads).
    Fresh,
    /// Not loaded since its latest tick, or never: it runs with the next due descendant.
    Stale,
    /// Paused (itself, or the whole schedule).
    Paused,
    /// `EtatObjet` is not `actif`.
    Inactive,
}

/// One object of the catalog at a moment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectStatus {
    pub id: ObjectId,
    pub name: String,
    pub zone: Zone,
    pub frequency: Option<String>,
    /// Unix ms of its latest load, if any.
    pub loaded_ms: Option<u64>,
    /// Its frequency's latest tick at or before the moment.
    pub latest_tick_ms: Option<u64>,
    /// Its frequency's next tick after the moment.
    pub next_tick_ms: Option<u64>,
    pub freshness: Freshness,
    /// Why it is due.
    pub why: Option<Why>,
}

/// Per zone (by [`Zone::index`]): objects with a frequency not loaded since their latest tick,
/// and the largest time since such a missed tick (ms).
pub type ZoneFreshness = [(u64, u64); 3];

impl Timetable {
    /// Every object at `now_ms`, in the catalog's order.
    pub fn status(&self, now_ms: u64) -> Vec<ObjectStatus> {
        let plan = evaluate(&self.graph, &self.catalog, now_ms, self.zone);
        let mut why = vec![None; self.graph.len()];
        for &(i, w) in &plan.run {
            why[i as usize] = Some(w);
        }
        self.graph
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let f = self.catalog.frequency[i].map(|f| &self.catalog.frequencies[f as usize]);
                let latest = f.and_then(|f| f.latest_tick(now_ms, self.zone));
                let loaded = self.catalog.loaded[i];
                let freshness = if !o.enabled {
                    Freshness::Inactive
                } else if self.state.paused || !self.catalog.active[i] {
                    Freshness::Paused
                } else if matches!(why[i], Some(Why::Due { .. } | Why::FollowsParent { .. })) {
                    Freshness::Due
                } else if loaded.is_none() || latest.is_some_and(|t| loaded < Some(t)) {
                    Freshness::Stale
                } else {
                    Freshness::Fresh
                };
                ObjectStatus {
                    id: o.id,
                    name: o.name.clone(),
                    zone: o.zone,
                    frequency: f.map(|f| f.text.to_string()),
                    loaded_ms: loaded,
                    latest_tick_ms: latest,
                    next_tick_ms: f.and_then(|f| f.next_tick(now_ms, self.zone)),
                    freshness,
                    why: why[i].filter(|_| freshness == Freshness::Due),
                }
            })
            .collect()
    }

    /// Per zone, the stale objects with a frequency and the largest lag past a missed tick.
    pub fn freshness(&self, now_ms: u64) -> ZoneFreshness {
        let ticks: Vec<Option<u64>> = self
            .catalog
            .frequencies
            .iter()
            .map(|f| f.latest_tick(now_ms, self.zone))
            .collect();
        let mut out = [(0u64, 0u64); 3];
        for (i, o) in self.graph.objects.iter().enumerate() {
            let Some(tick) = self.catalog.frequency[i].and_then(|f| ticks[f as usize]) else {
                continue;
            };
            if !self.catalog.active[i] || self.catalog.loaded[i].is_some_and(|at| at >= tick) {
                continue;
            }
            let slot = &mut out[o.zone.index()];
            slot.0 += 1;
            slot.1 = slot.1.max(now_ms.saturating_sub(tick));
        }
        out
    }
}
