//! The scheduler's knobs: retries, leases, start timeout, and per-zone limits and backoff.

use orchestrator_protocol::Zone;
use serde::{Deserialize, Serialize};

/// Per-zone policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZonePolicy {
    /// Objects of this zone dispatched and not yet answered; `None` is unlimited.
    pub max_in_flight: Option<u32>,
    /// First retry waits about this long; each retry doubles it, up to the cap.
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for ZonePolicy {
    fn default() -> Self {
        ZonePolicy {
            max_in_flight: None,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// An attempt whose worker neither answers nor heartbeats for this long has failed.
    pub lease_ms: u64,
    /// An attempt that no worker has started after this long has failed (`None`: no limit).
    pub schedule_to_start_ms: Option<u64>,
    /// Indexed by `Zone::index()`.
    pub zones: [ZonePolicy; 3],
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_retries: 3,
            lease_ms: 30_000,
            schedule_to_start_ms: None,
            zones: [ZonePolicy::default(); 3],
        }
    }
}

impl SchedulerConfig {
    pub fn zone(&self, z: Zone) -> &ZonePolicy {
        &self.zones[z.index()]
    }
}
