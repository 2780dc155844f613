//! How the engine drives (an embedded run or a server) and what a server asks of it.

use super::TriggerAnswer;
use crate::run_view::{ObjectQuery, RunView};
use orchestrator_core::graph::Graph;
use orchestrator_core::schedule::{Catalog, ObjectStatus};
use orchestrator_core::scheduler::{RetryRefused, Run};
use orchestrator_protocol::{ObjectId, RunId};
use orchestrator_store::RunHeader;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How `drive_with` behaves.
#[derive(Clone, Copy, Debug)]
pub struct DriveOptions {
    /// Return when every run is settled (the embedded run); a server drives until shutdown.
    pub until_all_finished: bool,
    /// On shutdown, interrupt the runs and wait for the attempts in flight (the embedded run);
    /// a server leaves its runs to the next process.
    pub interrupt_on_shutdown: bool,
    /// Drop finished runs from memory (their records stay in the store).
    pub forget_finished: bool,
}

impl DriveOptions {
    pub fn embedded() -> Self {
        DriveOptions {
            until_all_finished: true,
            interrupt_on_shutdown: true,
            forget_finished: false,
        }
    }
    pub fn server() -> Self {
        DriveOptions {
            until_all_finished: false,
            interrupt_on_shutdown: false,
            forget_finished: true,
        }
    }
}

/// A reader of a held run (`None`: the engine does not hold it).
pub type LookAtRun = Box<dyn FnOnce(Option<&Run>) + Send>;

/// What a server asks of the engine while it drives.
pub enum EngineCommand {
    /// Start a run; its object definitions are stored with it.
    Submit {
        run: Box<Run>,
        objects: Arc<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Cancel a run; answers whether the engine had it.
    Cancel {
        run: RunId,
        reply: oneshot::Sender<bool>,
    },
    /// A run the engine holds, as it stands now (`None` if the engine does not hold it).
    Inspect {
        run: RunId,
        query: ObjectQuery,
        reply: oneshot::Sender<Option<RunView>>,
    },
    /// The headers of every run the engine holds.
    Runs {
        reply: oneshot::Sender<Vec<RunHeader>>,
    },
    /// Reads a run the engine holds: `look` gets it as it stands (`None` if not held) and
    /// sends what it needs back on a channel of its own.
    Look { run: RunId, look: LookAtRun },
    /// Whether the schedule is paused, and every object of its catalog as it stands
    /// (`None`: no schedule).
    Objects {
        reply: oneshot::Sender<Option<(bool, Vec<ObjectStatus>)>>,
    },
    /// Schedules a validated catalog from now on and stores its definitions; answers its
    /// number of objects (`None`: no schedule).
    ReplaceCatalog {
        graph: Box<Graph>,
        catalog: Box<Catalog>,
        objects: Arc<String>,
        reply: oneshot::Sender<Option<usize>>,
    },
    /// Runs an object now with its stale ancestors (`None`: no schedule).
    Trigger {
        object: ObjectId,
        reply: oneshot::Sender<Option<TriggerAnswer>>,
    },
    /// Pauses or resumes the whole schedule (`object: None`) or one object.
    Pause {
        object: Option<ObjectId>,
        paused: bool,
        reply: oneshot::Sender<PauseAnswer>,
    },
    /// Runs failures again: every failure of the run (`object: None`, refused while it runs),
    /// or one failed object with the descendants it blocked. `stored` is the run opened from
    /// the store, for when the engine does not hold it.
    Rerun {
        run: RunId,
        object: Option<ObjectId>,
        stored: Option<Box<Run>>,
        reply: oneshot::Sender<RerunAnswer>,
    },
}

/// How a pause or resume went.
#[derive(Debug, PartialEq, Eq)]
pub enum PauseAnswer {
    Done,
    /// The engine keeps no schedule.
    NoSchedule,
    UnknownObject,
}

/// How a rerun or retry went.
#[derive(Debug, PartialEq, Eq)]
pub enum RerunAnswer {
    /// This many objects run again.
    Done {
        reset: usize,
        /// A retry's roots: the object, or the failed ancestors that blocked it.
        retried: Vec<ObjectId>,
    },
    /// The engine does not hold the run: open it from the store and ask again.
    NotHeld,
    Refused(RerunRefused),
}

/// Why a rerun or retry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RerunRefused {
    #[error("run {0} is still running: cancel it or wait for it to finish before a rerun")]
    Running(RunId),
    #[error("run {0} has no failed, upstream-failed or cancelled objects to run again")]
    NothingFailed(RunId),
    #[error("run {0} is being cancelled: wait for it to finish, then rerun or retry")]
    Cancelling(RunId),
    #[error("run {run}: {why}")]
    Retry { run: RunId, why: RetryRefused },
}

pub(super) async fn next_command(
    commands: &mut Option<mpsc::Receiver<EngineCommand>>,
) -> Option<EngineCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
