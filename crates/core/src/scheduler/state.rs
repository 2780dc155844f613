//! The state of one object in a run, as the store persists it.

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectState {
    /// Some parent is not loaded yet.
    Waiting,
    /// All parents loaded; waiting for room in its zone.
    Queued,
    /// A Ready event was sent; no worker has said it started.
    Dispatched,
    /// Another run has this object's attempt in flight: this run's attempt waits for it (never
    /// two at once), then takes its load, or goes out itself.
    Held,
    /// A worker started it and holds the lease.
    Running,
    /// The last attempt failed; the next waits for its backoff.
    RetryWait,
    Loaded,
    /// Out of retries (or failed for good): in the dead-letter list.
    Failed,
    /// An ancestor failed; never ran.
    UpstreamFailed,
    /// The run was cancelled before it ran.
    Cancelled,
}

impl ObjectState {
    pub const ALL: [ObjectState; 10] = [
        ObjectState::Waiting,
        ObjectState::Queued,
        ObjectState::Dispatched,
        ObjectState::Held,
        ObjectState::Running,
        ObjectState::RetryWait,
        ObjectState::Loaded,
        ObjectState::Failed,
        ObjectState::UpstreamFailed,
        ObjectState::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ObjectState::Loaded
                | ObjectState::Failed
                | ObjectState::UpstreamFailed
                | ObjectState::Cancelled
        )
    }
    pub fn is_in_flight(self) -> bool {
        matches!(self, ObjectState::Dispatched | ObjectState::Running)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::Waiting => "waiting",
            ObjectState::Queued => "queued",
            ObjectState::Dispatched => "dispatched",
            ObjectState::Held => "held",
            ObjectState::Running => "running",
            ObjectState::RetryWait => "retry_wait",
            ObjectState::Loaded => "loaded",
            ObjectState::Failed => "failed",
            ObjectState::UpstreamFailed => "upstream_failed",
            ObjectState::Cancelled => "cancelled",
        }
    }
}

/// What the store keeps per object of a run. Fields at zero are left out of its JSON (a queued
/// object's record is `{"state":"queued"}`): a run's first batch writes every object it queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectRecord {
    pub state: ObjectState,
    /// The current (latest) attempt; 0 before the first dispatch. Never goes back, so every
    /// attempt of a run has its own idempotency key, reruns included.
    #[serde(skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// Failed attempts since the last reset.
    #[serde(skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// Retries scheduled over the run's life.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Deadline of the current wait (retry due, lease end or start deadline); 0 for none.
    #[serde(skip_serializing_if = "is_zero")]
    pub due_ms: u64,
    /// When the current attempt was dispatched.
    #[serde(skip_serializing_if = "is_zero")]
    pub dispatched_ms: u64,
    /// When the object reached a terminal state.
    #[serde(skip_serializing_if = "is_zero")]
    pub finished_ms: u64,
    /// Loaded by a handler that only pretended (`simulate`): never a load for the schedule.
    #[serde(skip_serializing_if = "is_zero")]
    pub simulated: bool,
}

impl Default for ObjectRecord {
    fn default() -> Self {
        ObjectRecord {
            state: ObjectState::Waiting,
            attempt: 0,
            failures: 0,
            retries: 0,
            due_ms: 0,
            dispatched_ms: 0,
            finished_ms: 0,
            simulated: false,
        }
    }
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
