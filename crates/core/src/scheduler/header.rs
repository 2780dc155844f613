//! A run's header: who it is, what it was started with, where it stands and how many of its
//! objects are in each state. The scheduler keeps it; the store persists it with the records.

use super::counts::RunCounts;
use super::state::ObjectState;
use crate::graph::MissingParents;
use orchestrator_protocol::{ObjectId, RunId, Zone};
use serde::{Deserialize, Serialize};

/// Where a run stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Cancelled: nothing new is dispatched; in-flight results are still recorded.
    Cancelling,
    /// Every object reached a terminal state.
    Finished,
    /// Its process stopped before the end (interrupted, or died): nothing runs it now. Resuming
    /// it (or a server taking it over) continues where it stood.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Finished => "finished",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether a process still has work to do for the run (it is not finished).
    pub fn is_unfinished(self) -> bool {
        self != RunStatus::Finished
    }

    /// The status a reader reports: a run stored as running or cancelling whose process is gone
    /// (`writer_alive` false: no live process holds the store) is interrupted.
    pub fn seen_by_reader(self, writer_alive: bool) -> RunStatus {
        match self {
            RunStatus::Running | RunStatus::Cancelling if !writer_alive => RunStatus::Interrupted,
            s => s,
        }
    }
}

/// How a run stands or ended, as users and alerts read it: the one rule every reader uses
/// (the API, `runs list|show`, `status`, the console and the finished-runs metric).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Not finished: running or cancelling.
    Running,
    /// Finished with every object loaded.
    Succeeded,
    /// Finished with an object that did not load (failed or upstream-failed).
    Failed,
    /// Finished after a user's cancel stopped some of its objects.
    Cancelled,
    /// Its process stopped before the end; resuming it (or a server taking it over) continues.
    Interrupted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

/// What a run was started with, so that any process rebuilds the same run from its objects.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Build only these and their ancestors; empty for every object.
    #[serde(default)]
    pub targets: Vec<ObjectId>,
    /// Only this zone (with the ancestors it needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Zone>,
    /// What a parent that is not in the objects means.
    #[serde(default)]
    pub missing_parents: MissingParents,
    /// The handlers the run's in-process workers run, per zone (the embedded `run`): a resume,
    /// rerun or takeover runs the same ones. `None` where workers of their own choose (`serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handlers: Option<RunHandlers>,
}

/// Each zone's handler SPEC (`simulate:0:0`, `command:./load.sh`, `http:…`), as a run keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHandlers {
    #[serde(rename = "1-Raw")]
    pub raw: String,
    #[serde(rename = "2-Standardized")]
    pub standardized: String,
    #[serde(rename = "3-Application")]
    pub application: String,
}

impl RunHandlers {
    pub fn new(zones: [String; 3]) -> RunHandlers {
        let [raw, standardized, application] = zones;
        RunHandlers {
            raw,
            standardized,
            application,
        }
    }

    pub fn zone(&self, zone: Zone) -> &str {
        match zone {
            Zone::Raw => &self.raw,
            Zone::Standardized => &self.standardized,
            Zone::Application => &self.application,
        }
    }
}

/// The run's header, as the store keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    pub run_id: RunId,
    /// Hash of the run's graph: a resume with another graph is refused.
    pub graph_version: String,
    /// Where its objects came from (a path, `api`).
    pub source: String,
    pub created_ms: u64,
    /// The time of the latest change stored.
    pub updated_ms: u64,
    pub status: RunStatus,
    /// Cancelled by a user (not interrupted): what had not run is `cancelled`.
    pub cancelled: bool,
    /// Every random draw of the run (retry jitter, simulated outcomes) comes from it.
    pub seed: u64,
    pub objects: usize,
    #[serde(flatten)]
    pub options: RunOptions,
    /// Objects per zone and state, kept with every change.
    #[serde(default)]
    pub counts: RunCounts,
}

impl RunHeader {
    /// How the run stands or ended: derived from its status, its cancel and its counts, so a
    /// stored header of any age says the same to every reader.
    pub fn outcome(&self) -> RunOutcome {
        match self.status {
            RunStatus::Running | RunStatus::Cancelling => RunOutcome::Running,
            RunStatus::Interrupted => RunOutcome::Interrupted,
            RunStatus::Finished => {
                let counts = &self.counts;
                if self.cancelled && counts.in_state(ObjectState::Cancelled) > 0 {
                    RunOutcome::Cancelled
                } else if counts.in_state(ObjectState::Loaded) == self.objects {
                    RunOutcome::Succeeded
                } else {
                    RunOutcome::Failed
                }
            }
        }
    }

    /// The header of a new run; the scheduler fills in its graph's version and size.
    pub fn new(run_id: RunId, seed: u64) -> RunHeader {
        RunHeader {
            run_id,
            graph_version: String::new(),
            source: String::new(),
            created_ms: 0,
            updated_ms: 0,
            status: RunStatus::Running,
            cancelled: false,
            seed,
            objects: 0,
            options: RunOptions::default(),
            counts: RunCounts::default(),
        }
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    pub fn created_at(mut self, ms: u64) -> Self {
        self.created_ms = ms;
        self.updated_ms = ms;
        self
    }
}
