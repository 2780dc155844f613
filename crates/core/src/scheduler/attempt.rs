//! One attempt's history: who ran it, when, how it ended and what its handler wrote. The run
//! leaves one record per ended attempt in its delta; the store keeps them, the run does not.
//! A record is small (its texts behind one pointer, none when there are none): the scheduler
//! makes one per completion.

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

/// What was said of an attempt: by whom, why it failed or what it loaded, and its handler's
/// output (bounded by the worker: head and tail kept). Empty texts are left out of its JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptText {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub worker: String,
    /// Why it failed or expired.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A loaded attempt's note.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub info: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl AttemptText {
    /// `None` when every text is empty (no allocation for an attempt that said nothing).
    pub fn boxed(self) -> Option<Box<AttemptText>> {
        let empty = self.worker.is_empty()
            && self.reason.is_empty()
            && self.info.is_empty()
            && self.output.is_empty();
        (!empty).then(|| Box::new(self))
    }
}

/// What a worker's result tells of an attempt besides loaded or failed (a failure's reason is
/// the event's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptReport {
    /// How long its handler ran.
    pub duration_ms: u64,
    /// The worker, a loaded attempt's note and the output.
    pub text: Option<Box<AttemptText>>,
    /// The handler only pretended (`simulate`): a load that is no data.
    pub simulated: bool,
}

/// One ended attempt of one object, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredAttempt")]
pub struct AttemptRecord {
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// When its Ready event was sent (Unix milliseconds; 0 when not known).
    pub dispatched_ms: u64,
    /// When its handler started: its end less its duration (0 for an attempt that expired).
    #[serde(skip_serializing_if = "is_zero")]
    pub started_ms: u64,
    /// When the orchestrator took its result (or gave up on it).
    pub ended_ms: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub duration_ms: u64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub text: Option<Box<AttemptText>>,
    /// Its handler only pretended (`simulate`): no data was loaded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// An attempt's JSON, read back.
#[derive(Deserialize)]
struct StoredAttempt {
    attempt: u32,
    outcome: AttemptOutcome,
    #[serde(default)]
    dispatched_ms: u64,
    #[serde(default)]
    started_ms: u64,
    #[serde(default)]
    ended_ms: u64,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    simulated: bool,
    #[serde(flatten)]
    text: AttemptText,
}

impl From<StoredAttempt> for AttemptRecord {
    fn from(s: StoredAttempt) -> Self {
        AttemptRecord {
            attempt: s.attempt,
            outcome: s.outcome,
            dispatched_ms: s.dispatched_ms,
            started_ms: s.started_ms,
            ended_ms: s.ended_ms,
            duration_ms: s.duration_ms,
            text: s.text.boxed(),
            simulated: s.simulated,
        }
    }
}

impl AttemptRecord {
    /// The record of an attempt a worker answered (`reason`: why it failed, or empty).
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
        let text = if reason.is_empty() {
            report.text
        } else {
            let mut text = report.text.map(|t| *t).unwrap_or_default();
            text.reason = reason;
            Some(Box::new(text))
        };
        AttemptRecord {
            attempt,
            outcome,
            dispatched_ms,
            started_ms,
            ended_ms,
            duration_ms: report.duration_ms,
            text,
            simulated: report.simulated,
        }
    }

    /// An attempt the orchestrator gave up on (its lease or start deadline passed).
    pub fn expired(attempt: u32, reason: String, dispatched_ms: u64, ended_ms: u64) -> Self {
        AttemptRecord {
            attempt,
            outcome: AttemptOutcome::Expired,
            dispatched_ms,
            started_ms: 0,
            ended_ms,
            duration_ms: 0,
            text: AttemptText {
                reason,
                ..AttemptText::default()
            }
            .boxed(),
            simulated: false,
        }
    }

    pub fn worker(&self) -> &str {
        self.text.as_ref().map_or("", |t| &t.worker)
    }
    pub fn reason(&self) -> &str {
        self.text.as_ref().map_or("", |t| &t.reason)
    }
    pub fn info(&self) -> &str {
        self.text.as_ref().map_or("", |t| &t.info)
    }
    pub fn output(&self) -> &str {
        self.text.as_ref().map_or("", |t| &t.output)
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
