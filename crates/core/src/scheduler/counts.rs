//! How many objects of a run are in each state, per zone: kept by the run with every change, so
//! reading them costs the same whatever the run's size, and stored with the records they count.

use super::state::ObjectState;
use super::summary::{RunSummary, ZoneSummary};
use orchestrator_protocol::Zone;
use serde::{Deserialize, Serialize};

/// One zone's objects by state, its retries and its first dispatch and latest end.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoneCounts {
    pub objects: usize,
    pub waiting: usize,
    pub queued: usize,
    pub dispatched: usize,
    /// Waiting for another run's attempt of the same object.
    pub held: usize,
    pub running: usize,
    pub retry_wait: usize,
    pub loaded: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub cancelled: usize,
    pub retries: u64,
    /// The zone's first dispatch (0 before any).
    pub first_dispatch_ms: u64,
    /// The latest time one of its objects reached a terminal state.
    pub last_finish_ms: u64,
}

impl ZoneCounts {
    pub fn in_state(&self, state: ObjectState) -> usize {
        match state {
            ObjectState::Waiting => self.waiting,
            ObjectState::Queued => self.queued,
            ObjectState::Dispatched => self.dispatched,
            ObjectState::Held => self.held,
            ObjectState::Running => self.running,
            ObjectState::RetryWait => self.retry_wait,
            ObjectState::Loaded => self.loaded,
            ObjectState::Failed => self.failed,
            ObjectState::UpstreamFailed => self.upstream_failed,
            ObjectState::Cancelled => self.cancelled,
        }
    }

    fn slot(&mut self, state: ObjectState) -> &mut usize {
        match state {
            ObjectState::Waiting => &mut self.waiting,
            ObjectState::Queued => &mut self.queued,
            ObjectState::Dispatched => &mut self.dispatched,
            ObjectState::Held => &mut self.held,
            ObjectState::Running => &mut self.running,
            ObjectState::RetryWait => &mut self.retry_wait,
            ObjectState::Loaded => &mut self.loaded,
            ObjectState::Failed => &mut self.failed,
            ObjectState::UpstreamFailed => &mut self.upstream_failed,
            ObjectState::Cancelled => &mut self.cancelled,
        }
    }

    /// Objects not in a terminal state.
    pub fn pending(&self) -> usize {
        self.waiting + self.queued + self.dispatched + self.held + self.running + self.retry_wait
    }
}

/// Every zone's counts, indexed by `Zone::index()`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub zones: [ZoneCounts; 3],
}

impl RunCounts {
    /// Objects in `state`, all zones.
    pub fn in_state(&self, state: ObjectState) -> usize {
        self.zones.iter().map(|z| z.in_state(state)).sum()
    }

    pub fn zone(&self, zone: Zone) -> &ZoneCounts {
        &self.zones[zone.index()]
    }

    /// A new object of `zone` in `state`.
    pub(super) fn add(&mut self, zone: Zone, state: ObjectState) {
        let z = &mut self.zones[zone.index()];
        z.objects += 1;
        *z.slot(state) += 1;
    }

    /// An object of `zone` moved from `from` to `to`.
    pub(super) fn moved(&mut self, zone: Zone, from: ObjectState, to: ObjectState) {
        if from != to {
            let z = &mut self.zones[zone.index()];
            *z.slot(from) = z.slot(from).saturating_sub(1);
            *z.slot(to) += 1;
        }
    }

    /// An object of `zone` was dispatched at `at`: the zone's first dispatch is the earliest.
    pub(super) fn dispatched(&mut self, zone: Zone, at: u64) {
        let z = &mut self.zones[zone.index()];
        if z.first_dispatch_ms == 0 || at < z.first_dispatch_ms {
            z.first_dispatch_ms = at;
        }
    }

    pub(super) fn finished(&mut self, zone: Zone, now: u64) {
        let z = &mut self.zones[zone.index()];
        z.last_finish_ms = z.last_finish_ms.max(now);
    }

    pub(super) fn retried(&mut self, zone: Zone, retries: u64) {
        self.zones[zone.index()].retries += retries;
    }

    /// The summary users see: terminal states, pending, retries and time per zone.
    pub fn summary(&self) -> RunSummary {
        let mut s = RunSummary::default();
        for (i, z) in self.zones.iter().enumerate() {
            let zs = ZoneSummary {
                objects: z.objects,
                loaded: z.loaded,
                failed: z.failed,
                upstream_failed: z.upstream_failed,
                cancelled: z.cancelled,
                pending: z.pending(),
                retries: z.retries,
                duration_ms: if z.first_dispatch_ms == 0 {
                    0
                } else {
                    z.last_finish_ms.saturating_sub(z.first_dispatch_ms)
                },
            };
            s.objects += zs.objects;
            s.loaded += zs.loaded;
            s.failed += zs.failed;
            s.upstream_failed += zs.upstream_failed;
            s.cancelled += zs.cancelled;
            s.pending += zs.pending;
            s.retries += zs.retries;
            s.zones[i] = zs;
        }
        s
    }
}
