//! Live updates, for the web console: after each batch is stored, each run it changed (its
//! header: status, outcome and counts) with the objects whose state changed, broadcast to
//! whoever follows. With nobody following, nothing is built.

use crate::run_view::RunReport;
use orchestrator_core::scheduler::{ObjectState, RunDelta};
use orchestrator_protocol::ObjectId;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One run's change in one stored batch.
#[derive(Clone, Debug, Serialize)]
pub struct LiveUpdate {
    /// The run's header with its outcome and summary, as `GET /api/runs` lists it.
    pub run: RunReport,
    pub objects: Vec<LiveObject>,
}

/// An object's state after the batch.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LiveObject {
    pub id: ObjectId,
    pub state: ObjectState,
    pub attempt: u32,
}

/// Where the engine sends its updates; subscribe to follow them.
pub type LiveSender = broadcast::Sender<Arc<LiveUpdate>>;

/// Updates a slow follower may fall behind by before it is told to read the run again.
const BACKLOG: usize = 1024;

pub fn live_channel() -> LiveSender {
    broadcast::channel(BACKLOG).0
}

impl LiveUpdate {
    pub fn of(delta: &RunDelta) -> LiveUpdate {
        LiveUpdate {
            run: RunReport::from(delta.header.clone()),
            objects: delta
                .records
                .iter()
                .map(|(id, r)| LiveObject {
                    id: *id,
                    state: r.state,
                    attempt: r.attempt,
                })
                .collect(),
        }
    }
}
