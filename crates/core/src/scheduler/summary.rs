//! The summary of a run: how many objects ended in each state, retries and time, per zone.

use super::state::{ObjectRecord, ObjectState};
use crate::run_graph::RunGraph;
use orchestrator_protocol::Zone;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSummary {
    pub objects: usize,
    pub loaded: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub cancelled: usize,
    /// Not terminal yet.
    pub pending: usize,
    pub retries: u64,
    /// From the zone's first dispatch to its last object's end, in milliseconds.
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub objects: usize,
    pub loaded: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub cancelled: usize,
    pub pending: usize,
    pub retries: u64,
    /// Indexed by `Zone::index()`.
    pub zones: [ZoneSummary; 3],
}

impl RunSummary {
    pub fn from_records(graph: &RunGraph, records: &[ObjectRecord]) -> RunSummary {
        let mut s = RunSummary {
            objects: records.len(),
            ..Default::default()
        };
        let mut first = [u64::MAX; 3];
        let mut last = [0u64; 3];
        for (i, r) in records.iter().enumerate() {
            let z = graph.node(i as u32).zone.index();
            let zs = &mut s.zones[z];
            zs.objects += 1;
            zs.retries += u64::from(r.retries);
            match r.state {
                ObjectState::Loaded => zs.loaded += 1,
                ObjectState::Failed => zs.failed += 1,
                ObjectState::UpstreamFailed => zs.upstream_failed += 1,
                ObjectState::Cancelled => zs.cancelled += 1,
                _ => zs.pending += 1,
            }
            if r.attempt > 0 && r.dispatched_ms > 0 {
                first[z] = first[z].min(r.dispatched_ms);
            }
            last[z] = last[z].max(r.finished_ms);
        }
        for z in Zone::ALL {
            let i = z.index();
            let zs = s.zones[i];
            s.loaded += zs.loaded;
            s.failed += zs.failed;
            s.upstream_failed += zs.upstream_failed;
            s.cancelled += zs.cancelled;
            s.pending += zs.pending;
            s.retries += zs.retries;
            if first[i] != u64::MAX {
                s.zones[i].duration_ms = last[i].saturating_sub(first[i]);
            }
        }
        s
    }

    /// True when every object loaded.
    pub fn all_loaded(&self) -> bool {
        self.loaded == self.objects
    }
}
