//! One attempt's history: who ran it, when, how it ended and what its handler wrote. The run
//! leaves one record per ended attempt in its delta; the store keeps them, the run does not.

use serde::{Deserialize, Serialize};

/// How an attempt ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Loaded,
    Failed,
    /// No worker started it in time, or its worker stopped renewing its lease.
    Expired,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Loaded => "loaded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Expired => "expired",
        }
    }
}

/// What a worker's result tells of an attempt besides loaded or failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptReport {
    /// The worker that ran it (empty when it did not say).
    pub worker: String,
    /// How long its handler ran.
    pub duration_ms: u64,
    /// A loaded attempt's short note (a failure's reason is the event's own).
    pub info: String,
    /// What the handler wrote, bounded by the worker (head and tail kept).
    pub output: String,
}

/// One ended attempt of one object, as the store keeps it. Empty fields are left out of its
/// JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// Why it failed or expired.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A loaded attempt's note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    /// When its Ready event was sent (Unix milliseconds).
    pub dispatched_ms: u64,
    /// When its handler started: its end less its duration (0 for an attempt that expired).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started_ms: u64,
    /// When the orchestrator took its result (or gave up on it).
    pub ended_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duration_ms: u64,
    /// The handler's output (stdout and stderr, or an HTTP response's body), bounded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl AttemptRecord {
    /// The record of an attempt a worker answered.
    pub fn answered(
        attempt: u32,
        outcome: AttemptOutcome,
        reason: String,
        report: AttemptReport,
        dispatched_ms: u64,
        ended_ms: u64,
    ) -> AttemptRecord {
        let started_ms = ended_ms
            .saturating_sub(report.duration_ms)
            .max(dispatched_ms);
        AttemptRecord {
            attempt,
            outcome,
            reason,
            info: report.info,
            worker: report.worker,
            dispatched_ms,
            started_ms,
            ended_ms,
            duration_ms: report.duration_ms,
            output: report.output,
        }
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
