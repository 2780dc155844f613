//! The summary of a run users see: how many objects ended in each state, retries and time, per
//! zone (built from the run's counts).

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// True when every object loaded.
    pub fn all_loaded(&self) -> bool {
        self.loaded == self.objects
    }
}
