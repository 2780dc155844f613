//! How the engine drives (an embedded run or a server) and what a server asks of it.

use crate::run_view::{ObjectQuery, RunView};
use orchestrator_core::scheduler::Run;
use orchestrator_protocol::RunId;
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
}

pub(super) async fn next_command(
    commands: &mut Option<mpsc::Receiver<EngineCommand>>,
) -> Option<EngineCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
