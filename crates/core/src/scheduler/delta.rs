//! What one step of a run changed: its header, the records that moved and the dead letters it
//! wrote or cleared. A store persists exactly this, all or nothing, before the step's actions
//! are carried out; a snapshot (header and records) is what a run is opened from again.

use super::attempt::AttemptRecord;
use super::header::RunHeader;
use super::state::ObjectRecord;
use orchestrator_protocol::ObjectId;
use serde::{Deserialize, Serialize};

/// An object that failed for good.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: ObjectId,
    pub attempt: u32,
    pub reason: String,
    pub at_ms: u64,
}

/// The changes of one or more steps of a run since the last delta was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct RunDelta {
    /// The header as it stands after them (status, counts, time of the change).
    pub header: RunHeader,
    /// Every dead letter of the run goes first (its failures run again).
    pub dead_letters_cleared: bool,
    /// The dead letters of these objects go (each runs again), before `dead_letters`.
    pub dead_letters_removed: Vec<ObjectId>,
    pub records: Vec<(ObjectId, ObjectRecord)>,
    pub dead_letters: Vec<DeadLetter>,
    /// The attempts that ended, each once.
    pub attempts: Vec<(ObjectId, AttemptRecord)>,
    /// Every object the run loaded, in the delta where the run finishes (once per run, not per
    /// step: the schedule's catalog takes them in one write).
    pub loads: Vec<LatestLoad>,
}

/// An object's load: when, by which attempt (of the run the delta is of).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestLoad {
    pub id: ObjectId,
    pub at_ms: u64,
    pub attempt: u32,
}

/// A stored run: what [`super::Run::from_snapshot`] opens it from. Objects the records do not
/// name never changed: they are waiting.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSnapshot {
    pub header: RunHeader,
    pub records: Vec<(ObjectId, ObjectRecord)>,
}
