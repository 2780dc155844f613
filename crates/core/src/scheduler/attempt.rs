//! One attempt's history: who ran it, when, how it ended and what its handler wrote. The run
//! leaves one record per ended attempt in its delta; the store keeps them, the run does not.
//! A record is small (its texts behind one shared pointer, none when there are none): the
//! scheduler makes one per completion, and attempts that said the same share one text.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Behind a pointer attempts can share (see [`SharedTexts`]); `None` when every text is
    /// empty (no allocation for an attempt that said nothing).
    pub fn shared(self) -> Option<Arc<AttemptText>> {
        let empty = self.worker.is_empty()
            && self.reason.is_empty()
            && self.info.is_empty()
            && self.output.is_empty();
        (!empty).then(|| Arc::new(self))
    }
}

/// One copy of each short attempt text seen lately: a run's attempts mostly say the same (their
/// worker's name, a handler's fixed note), and a copy each would cost about 200 bytes per
/// attempt for as long as the run is kept. Texts with output, or long ones, are kept as they are.
#[derive(Debug, Default)]
pub struct SharedTexts {
    seen: rustc_hash::FxHashSet<Arc<AttemptText>>,
}

impl SharedTexts {
    /// Distinct texts kept; past this the set starts again (a bound, not a cache policy).
    pub const MAX: usize = 4096;
    /// Texts longer than this (in bytes: worker, reason and info) are not shared.
    pub const LONGEST: usize = 256;

    /// `text`, or the copy already seen of it.
    pub fn share(&mut self, text: Option<Arc<AttemptText>>) -> Option<Arc<AttemptText>> {
        let text = text?;
        let length = text.worker.len() + text.reason.len() + text.info.len();
        if !text.output.is_empty() || length > Self::LONGEST {
            return Some(text);
        }
        if let Some(seen) = self.seen.get(&text) {
            return Some(seen.clone());
        }
        if self.seen.len() >= Self::MAX {
            self.seen.clear();
        }
        self.seen.insert(text.clone());
        Some(text)
    }
}

/// What a worker's result tells of an attempt besides loaded or failed (a failure's reason is
/// the event's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptReport {
    /// How long its handler ran.
    pub duration_ms: u64,
    /// The worker, a loaded attempt's note and the output.
    pub text: Option<Arc<AttemptText>>,
    /// The handler only pretended (`simulate`): a load that is no data.
    pub simulated: bool,
}

/// One ended attempt of one object, as the store keeps it. Its JSON leaves out `started_ms` when
/// the other fields give it (see [`AttemptRecord::derived_start`]): 29 bytes of each attempt a
/// store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredAttempt", into = "AttemptJson")]
pub struct AttemptRecord {
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// When its Ready event was sent (Unix milliseconds; 0 when not known).
    pub dispatched_ms: u64,
    /// When its handler started: its end less its duration (0 for an attempt that expired).
    pub started_ms: u64,
    /// When the orchestrator took its result (or gave up on it).
    pub ended_ms: u64,
    pub duration_ms: u64,
    pub text: Option<Arc<AttemptText>>,
    /// Its handler only pretended (`simulate`): no data was loaded.
    pub simulated: bool,
}

/// An attempt's JSON, written.
#[derive(Serialize)]
struct AttemptJson {
    attempt: u32,
    outcome: AttemptOutcome,
    dispatched_ms: u64,
    /// Only when it is not the one its other fields give.
    #[serde(skip_serializing_if = "Option::is_none")]
    started_ms: Option<u64>,
    ended_ms: u64,
    #[serde(skip_serializing_if = "is_zero")]
    duration_ms: u64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    text: Option<Arc<AttemptText>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    simulated: bool,
}

impl From<AttemptRecord> for AttemptJson {
    fn from(a: AttemptRecord) -> Self {
        let derived =
            AttemptRecord::derived_start(a.outcome, a.dispatched_ms, a.ended_ms, a.duration_ms);
        AttemptJson {
            attempt: a.attempt,
            outcome: a.outcome,
            dispatched_ms: a.dispatched_ms,
            started_ms: (a.started_ms != derived).then_some(a.started_ms),
            ended_ms: a.ended_ms,
            duration_ms: a.duration_ms,
            text: a.text,
            simulated: a.simulated,
        }
    }
}

/// An attempt's JSON, read back.
#[derive(Deserialize)]
struct StoredAttempt {
    attempt: u32,
    outcome: AttemptOutcome,
    #[serde(default)]
    dispatched_ms: u64,
    /// Left out when derived (and, before, when 0: then derived as 0 too).
    #[serde(default)]
    started_ms: Option<u64>,
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
            started_ms: s.started_ms.unwrap_or_else(|| {
                AttemptRecord::derived_start(s.outcome, s.dispatched_ms, s.ended_ms, s.duration_ms)
            }),
            ended_ms: s.ended_ms,
            duration_ms: s.duration_ms,
            text: s.text.shared(),
            simulated: s.simulated,
        }
    }
}

impl AttemptRecord {
    /// When an attempt's handler started, from what its record says otherwise: its end less its
    /// duration, not before it was dispatched, for an attempt a worker answered; 0 for one that
    /// expired (no worker said it started).
    pub fn derived_start(
        outcome: AttemptOutcome,
        dispatched_ms: u64,
        ended_ms: u64,
        duration_ms: u64,
    ) -> u64 {
        if outcome == AttemptOutcome::Expired {
            0
        } else {
            ended_ms.saturating_sub(duration_ms).max(dispatched_ms)
        }
    }

    /// The record of an attempt a worker answered (`reason`: why it failed, or empty).
    pub fn answered(
        attempt: u32,
        outcome: AttemptOutcome,
        reason: String,
        report: AttemptReport,
        dispatched_ms: u64,
        ended_ms: u64,
    ) -> AttemptRecord {
        let started_ms = Self::derived_start(outcome, dispatched_ms, ended_ms, report.duration_ms);
        let text = if reason.is_empty() {
            report.text
        } else {
            let mut text = report.text.map(Arc::unwrap_or_clone).unwrap_or_default();
            text.reason = reason;
            Some(Arc::new(text))
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
            .shared(),
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

#[cfg(test)]
mod shared_texts_tests {
    use super::*;

    fn text(worker: &str, info: &str, output: &str) -> Option<Arc<AttemptText>> {
        AttemptText {
            worker: worker.into(),
            info: info.into(),
            output: output.into(),
            ..AttemptText::default()
        }
        .shared()
    }

    /// Whether both are the same copy.
    fn same(a: &Option<Arc<AttemptText>>, b: &Option<Arc<AttemptText>>) -> bool {
        matches!((a, b), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    }

    #[test]
    fn equal_short_texts_share_one_copy_and_others_keep_their_own() {
        let mut shared = SharedTexts::default();
        let a = shared.share(text("raw-1", "simulated", ""));
        let b = shared.share(text("raw-1", "simulated", ""));
        assert!(same(&a, &b));
        let c = shared.share(text("raw-2", "simulated", ""));
        assert!(!same(&a, &c));
        assert_eq!(c.as_deref().map(|t| t.worker.as_str()), Some("raw-2"));
        let with_output = shared.share(text("raw-1", "simulated", "rows: 3"));
        let again = shared.share(text("raw-1", "simulated", "rows: 3"));
        assert!(!same(&with_output, &again), "outputs are not kept");
        assert_eq!(with_output, again, "but are what they were");
        let long = "x".repeat(SharedTexts::LONGEST + 1);
        let l1 = shared.share(text("raw-1", &long, ""));
        let l2 = shared.share(text("raw-1", &long, ""));
        assert!(!same(&l1, &l2));
        assert_eq!(shared.share(None), None);
    }

    #[test]
    fn the_set_of_texts_stays_bounded() {
        let mut shared = SharedTexts::default();
        for i in 0..3 * SharedTexts::MAX {
            let t = shared.share(text(&format!("w{i}"), "", ""));
            assert_eq!(
                t.as_deref().map(|t| t.worker.clone()),
                Some(format!("w{i}"))
            );
        }
        assert!(shared.seen.len() <= SharedTexts::MAX);
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    fn report(duration_ms: u64) -> AttemptReport {
        AttemptReport {
            duration_ms,
            ..AttemptReport::default()
        }
    }

    #[test]
    fn a_start_the_record_gives_is_left_out_and_read_back_and_another_is_kept() {
        let loaded = AttemptRecord::answered(
            1,
            AttemptOutcome::Loaded,
            String::new(),
            report(40),
            100,
            200,
        );
        let expired = AttemptRecord::expired(2, "lease expired".into(), 100, 400);
        for a in [&loaded, &expired] {
            let json = serde_json::to_string(a).unwrap_or_default();
            assert!(!json.contains("started_ms"), "{json}");
            let back: AttemptRecord =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
            assert_eq!(&back, a);
        }
        assert_eq!(loaded.started_ms, 160);
        // A start no rule gives (a record written by an older version, say) is kept as it is.
        let odd = AttemptRecord {
            started_ms: 123,
            ..loaded.clone()
        };
        let json = serde_json::to_string(&odd).unwrap_or_default();
        assert!(json.contains(r#""started_ms":123"#), "{json}");
        assert_eq!(serde_json::from_str::<AttemptRecord>(&json).ok(), Some(odd));
        // Records of older versions: a start written is kept, one left out (0) is derived.
        let old = r#"{"attempt":1,"outcome":"loaded","dispatched_ms":100,"started_ms":160,"ended_ms":200,"duration_ms":40}"#;
        assert_eq!(
            serde_json::from_str::<AttemptRecord>(old)
                .ok()
                .map(|a| a.started_ms),
            Some(160)
        );
        let old_expired = r#"{"attempt":2,"outcome":"expired","dispatched_ms":100,"ended_ms":400,"reason":"lease expired"}"#;
        assert_eq!(
            serde_json::from_str::<AttemptRecord>(old_expired)
                .ok()
                .map(|a| a.started_ms),
            Some(0)
        );
    }
}
