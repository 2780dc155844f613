//! One tick: which objects run at a moment and why. An object with a frequency is due once it
//! has not loaded since its latest tick; one without follows its parents (due when a parent
//! loaded newer data than it has); an inactive object is never due. A due object runs with
//! every stale ancestor (not loaded since its own latest tick, or never) and every descendant
//! that follows it; a fresh ancestor is not run again: it counts as loaded.

use super::catalog::Catalog;
use super::frequency::ScheduleZone;
use crate::graph::Graph;
use orchestrator_protocol::ObjectId;
use serde::Serialize;
use std::collections::VecDeque;

/// Why an object runs at a tick.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Why {
    /// Its frequency ticked at `tick_ms` and it has not loaded since.
    Due { tick_ms: u64 },
    /// A parent loaded newer data than it has (it has no frequency of its own).
    FollowsParent { parent: ObjectId },
    /// An object that runs needs it, and it is stale.
    StaleAncestor { of: ObjectId },
    /// It follows an object that runs.
    FollowsRun { parent: ObjectId },
    /// An operator asked for it (`POST /api/objects/{id}/trigger`).
    Triggered,
}

/// What runs at one tick, parents before children, and the ancestors skipped as fresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TickPlan {
    /// Graph indexes, each once, in the graph's topological order.
    pub run: Vec<(u32, Why)>,
    /// Ancestors of objects that run, loaded since their latest tick: they count as loaded.
    pub fresh: Vec<u32>,
}

impl TickPlan {
    pub fn is_empty(&self) -> bool {
        self.run.is_empty()
    }
}

/// The plan at `now_ms`. O(objects + links) with one cron evaluation per distinct frequency, so
/// that a tick where nothing is due costs a pass over the objects.
pub fn evaluate(graph: &Graph, catalog: &Catalog, now_ms: u64, zone: ScheduleZone) -> TickPlan {
    evaluate_from(graph, catalog, now_ms, zone, &[])
}

/// As [`evaluate`], with `seeds` running whatever their frequency says (a trigger); without
/// seeds, the due objects.
pub fn evaluate_from(
    graph: &Graph,
    catalog: &Catalog,
    now_ms: u64,
    zone: ScheduleZone,
    seeds: &[(u32, Why)],
) -> TickPlan {
    let ticks: Vec<Option<u64>> = catalog
        .frequencies
        .iter()
        .map(|f| f.latest_tick(now_ms, zone))
        .collect();
    let n = graph.len();
    let stale = |i: usize| -> bool {
        match (catalog.frequency[i], catalog.loaded[i]) {
            (_, None) => true,
            (Some(f), Some(at)) => ticks[f as usize].is_some_and(|t| at < t),
            (None, Some(at)) => newer_parent(graph, catalog, i as u32, at).is_some(),
        }
    };
    // Due objects first (or the seeds alone).
    let due = |i: usize| -> Option<Why> {
        if !catalog.active[i] {
            return None;
        }
        match (catalog.frequency[i], catalog.loaded[i]) {
            (Some(f), loaded) => match ticks[f as usize] {
                Some(t) if t > catalog.ticks_after && loaded.is_none_or(|at| at < t) => {
                    Some(Why::Due { tick_ms: t })
                }
                _ => None,
            },
            (None, Some(at)) => newer_parent(graph, catalog, i as u32, at)
                .map(|parent| Why::FollowsParent { parent }),
            (None, None) => None,
        }
    };
    let mut why: Vec<Option<Why>> = if seeds.is_empty() {
        (0..n).map(due).collect()
    } else {
        let mut why = vec![None; n];
        for &(i, w) in seeds {
            why[i as usize] = Some(w);
        }
        why
    };
    // Then, from everything that runs, up to its stale ancestors and down to its followers
    // (children without a frequency), each object once: the closure of the run.
    let mut queue: VecDeque<u32> = (0..n as u32)
        .filter(|&i| why[i as usize].is_some())
        .collect();
    while let Some(i) = queue.pop_front() {
        let of = graph.objects[i as usize].id;
        for &p in graph.parents(i) {
            let pi = p as usize;
            if why[pi].is_none() && catalog.active[pi] && stale(pi) {
                why[pi] = Some(Why::StaleAncestor { of });
                queue.push_back(p);
            }
        }
        for &c in graph.children(i) {
            let ci = c as usize;
            if why[ci].is_none() && catalog.active[ci] && catalog.frequency[ci].is_none() {
                why[ci] = Some(Why::FollowsRun { parent: of });
                queue.push_back(c);
            }
        }
    }
    // The active parents of what runs that do not run themselves: fresh, counted as loaded.
    let mut fresh = vec![false; n];
    for i in 0..n {
        if why[i].is_some() {
            for &p in graph.parents(i as u32) {
                let pi = p as usize;
                fresh[pi] = why[pi].is_none() && catalog.active[pi];
            }
        }
    }
    TickPlan {
        run: graph
            .topo_order
            .iter()
            .filter_map(|&i| why[i as usize].map(|w| (i, w)))
            .collect(),
        fresh: (0..n as u32).filter(|&i| fresh[i as usize]).collect(),
    }
}

/// A parent of `i` that loaded after `at`, if any.
fn newer_parent(graph: &Graph, catalog: &Catalog, i: u32, at: u64) -> Option<ObjectId> {
    graph
        .parents(i)
        .iter()
        .find(|&&p| catalog.loaded[p as usize].is_some_and(|pa| pa > at))
        .map(|&p| graph.objects[p as usize].id)
}
