//! The events on the bus. Field names keep the old system's JSON shapes (`ObjectReady`,
//! `ObjectLoaded`) and add ours (attempt, graph version, schema version, the object itself).

use crate::{ObjectId, RawJson, RunId, Zone};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Version of the event schema; every event carries it.
pub const SCHEMA_VERSION: u32 = 1;

/// Seconds since the Unix epoch, as the old system's `ts`.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn object_ready() -> String {
    "ObjectReady".to_string()
}
fn object_loaded() -> String {
    "ObjectLoaded".to_string()
}
fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// "Object `id` may run now": sent once per attempt when all its parents are loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadyEvent {
    #[serde(default = "object_ready")]
    pub event: String,
    pub id: ObjectId,
    pub zone: Zone,
    pub name: String,
    pub run_id: RunId,
    /// Unix seconds when the event was sent.
    pub ts: u64,
    /// Kept for the old workers; always false.
    #[serde(default)]
    pub preflight_fail: bool,
    /// 1 for the first attempt. With run id and object id, the idempotency key.
    pub attempt: u32,
    pub graph_version: String,
    /// The whole object definition, every field as the user wrote it.
    pub object: RawJson,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
}

impl ReadyEvent {
    /// The idempotency key of this attempt: `run/object/attempt`.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.id, self.attempt)
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptStatus {
    #[serde(alias = "Loaded", alias = "LOADED")]
    Loaded,
    #[serde(alias = "Failed", alias = "FAILED")]
    Failed,
}

/// A worker's answer for one attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultEvent {
    #[serde(default = "object_loaded")]
    pub event: String,
    pub id: ObjectId,
    pub status: AttemptStatus,
    /// The object's zone, as the Ready event gave it. Only informative (the run knows each
    /// object's zone): an old worker's result with no zone, or one that does not parse, is
    /// still applied.
    #[serde(default, deserialize_with = "lenient_zone")]
    pub zone: Option<Zone>,
    /// A short word from the handler: what was loaded, or why it failed. An old worker's
    /// `null` reads as empty, a number or an object as its JSON.
    #[serde(default, deserialize_with = "lenient_text")]
    pub info: String,
    pub run_id: RunId,
    /// Absent in the old workers' results: taken as the current attempt.
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Whether a failure may be retried (ignored for `loaded`). Old workers: true.
    #[serde(default = "default_true", deserialize_with = "lenient_retryable")]
    pub retryable: bool,
    /// How long the handler ran, in milliseconds. A fraction (Python's
    /// `(time.time() - t0) * 1000`) is rounded; null or anything else reads as 0.
    #[serde(default, deserialize_with = "lenient_millis")]
    pub duration_ms: u64,
    /// Which worker answered (read as `info` is).
    #[serde(default, deserialize_with = "lenient_text")]
    pub worker: String,
    /// What the handler wrote (its stdout and stderr, or a response's body), bounded by the
    /// worker: head and tail kept with a marker between. Absent when there was none.
    #[serde(
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "String::is_empty"
    )]
    pub output: String,
    /// The handler only pretended (`simulate`): a load that is no data, never fresh for the
    /// schedule. Absent (false) from every real handler and from the old workers.
    #[serde(
        default,
        deserialize_with = "lenient_flag",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub simulated: bool,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
}

fn default_true() -> bool {
    true
}

/// A free-text field as the old workers fill it: a string as it is, `null` as empty, anything
/// else (a number, an object of figures) as its JSON, rather than refusing the whole result.
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A flag only `true` sets: null or anything not a boolean reads as false.
fn lenient_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(d)?
        .as_bool()
        .unwrap_or(false))
}

/// Whether a failure may be retried: `true` unless the worker says `false` (null, or anything
/// not a boolean, reads as the old workers' `true`).
fn lenient_retryable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_bool().unwrap_or(true))
}

/// A duration in milliseconds as a worker may write it: whole, fractional, or not at all.
fn lenient_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f > 0.0).map(|f| f.round() as u64))
        .unwrap_or(0))
}

/// A result's zone: `None` when absent, null or not a zone.
fn lenient_zone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Zone>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

impl ResultEvent {
    pub fn loaded(ready: &ReadyEvent, info: String, duration_ms: u64, worker: &str) -> Self {
        Self::new(
            ready,
            AttemptStatus::Loaded,
            info,
            true,
            duration_ms,
            worker,
        )
    }

    pub fn failed(
        ready: &ReadyEvent,
        reason: String,
        retryable: bool,
        duration_ms: u64,
        worker: &str,
    ) -> Self {
        Self::new(
            ready,
            AttemptStatus::Failed,
            reason,
            retryable,
            duration_ms,
            worker,
        )
    }

    fn new(
        ready: &ReadyEvent,
        status: AttemptStatus,
        info: String,
        retryable: bool,
        duration_ms: u64,
        worker: &str,
    ) -> Self {
        ResultEvent {
            event: object_loaded(),
            id: ready.id,
            status,
            zone: Some(ready.zone),
            info,
            run_id: ready.run_id.clone(),
            attempt: Some(ready.attempt),
            retryable,
            duration_ms,
            worker: worker.to_string(),
            output: String::new(),
            simulated: false,
            schema_version: SCHEMA_VERSION,
        }
    }

    /// The same result with the handler's output.
    pub fn with_output(mut self, output: String) -> Self {
        self.output = output;
        self
    }
}

fn object_failed() -> String {
    "ObjectFailed".to_string()
}

/// An object that failed for good (out of retries, or a failure that may not be retried),
/// published on `TOPIC_FAILED` and `TOPIC_DLQ` for whoever must act on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailedEvent {
    #[serde(default = "object_failed")]
    pub event: String,
    pub id: ObjectId,
    pub zone: Zone,
    pub name: String,
    pub run_id: RunId,
    /// The last attempt.
    pub attempt: u32,
    /// Why: the last failure's reason.
    pub reason: String,
    /// How many descendants will not run because of this failure.
    #[serde(default)]
    pub upstream_failed: usize,
    pub ts: u64,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
}

/// What a worker reports while it holds an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProgressKind {
    /// The worker took the attempt: its lease starts.
    AttemptStarted,
    /// The attempt still runs: its lease is renewed.
    Heartbeat,
}

/// `Started` and heartbeats, on their own topic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub event: ProgressKind,
    pub id: ObjectId,
    pub zone: Zone,
    pub run_id: RunId,
    pub attempt: u32,
    pub ts: u64,
    #[serde(default)]
    pub worker: String,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
}

impl ProgressEvent {
    pub fn new(kind: ProgressKind, ready: &ReadyEvent, worker: &str) -> Self {
        ProgressEvent {
            event: kind,
            id: ready.id,
            zone: ready.zone,
            run_id: ready.run_id.clone(),
            attempt: ready.attempt,
            ts: unix_seconds(),
            worker: worker.to_string(),
            schema_version: SCHEMA_VERSION,
        }
    }
}

/// What the orchestrator tells every worker at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlKind {
    /// The run was cancelled: stop its attempts (a program is killed, a request dropped) and
    /// answer them failed; take none of its Ready events that still come.
    CancelRun,
}

/// A message to every worker, on its own topic (`TOPIC_CONTROL`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlEvent {
    pub event: ControlKind,
    pub run_id: RunId,
    pub ts: u64,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
}

impl ControlEvent {
    pub fn cancel_run(run_id: RunId) -> Self {
        ControlEvent {
            event: ControlKind::CancelRun,
            run_id,
            ts: unix_seconds(),
            schema_version: SCHEMA_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_worker_result_without_our_fields_parses() {
        let json = r#"{"event":"ObjectLoaded","id":2001,"status":"loaded","zone":"2-Standardized","info":"ok","run_id":"r1"}"#;
        let ev: ResultEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.id, ObjectId(2001));
        assert_eq!(ev.status, AttemptStatus::Loaded);
        assert_eq!(ev.attempt, None);
        assert!(ev.retryable);
        assert_eq!(ev.schema_version, SCHEMA_VERSION);
        // Some old workers echo the id as a string, or capitalise the status and zone.
        let json = r#"{"event":"ObjectLoaded","id":"2001","status":"FAILED","zone":"2-STANDARDIZED","run_id":"r1"}"#;
        let ev: ResultEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ev.id, ev.status, ev.zone),
            (
                ObjectId(2001),
                AttemptStatus::Failed,
                Some(Zone::Standardized)
            )
        );
        // The zone is informative: a result without one, or with one we cannot read, counts.
        for zone in [
            r#""#,
            r#","zone":null"#,
            r#","zone":"Bronze""#,
            r#","zone":2"#,
        ] {
            let json = format!(
                r#"{{"event":"ObjectLoaded","id":2001,"status":"loaded","run_id":"r1"{zone}}}"#
            );
            let ev: ResultEvent = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((ev.id, ev.zone), (ObjectId(2001), None), "{json}");
        }
        assert_eq!(ev.info, "");
    }

    #[test]
    fn a_result_with_loosely_typed_fields_is_read() {
        // Python's None for "nothing to say", or a dict of figures.
        let json = r#"{"event":"ObjectLoaded","id":1001,"status":"loaded","zone":"1-Raw","info":null,"run_id":"r1","worker":null}"#;
        let ev: ResultEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ev.info.as_str(), ev.worker.as_str()), ("", ""));
        let json = r#"{"event":"ObjectLoaded","id":1001,"status":"failed","zone":"1-Raw","info":{"rows":0,"error":"empty"},"run_id":"r1","worker":7}"#;
        let ev: ResultEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.info, r#"{"error":"empty","rows":0}"#);
        assert_eq!(ev.worker, "7");
        let json = r#"{"event":"ObjectLoaded","id":1001,"status":"failed","zone":"1-Raw","run_id":"r1","retryable":null}"#;
        let ev: ResultEvent = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert!(ev.retryable);
        // A duration in fractional milliseconds, or null.
        for (duration, ms) in [("12.6", 13), ("null", 0), ("-3.0", 0), ("250", 250)] {
            let json = format!(
                r#"{{"event":"ObjectLoaded","id":1001,"status":"loaded","zone":"1-Raw","run_id":"r1","duration_ms":{duration}}}"#
            );
            let ev: ResultEvent = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ev.duration_ms, ms, "{json}");
        }
    }

    #[test]
    fn ready_event_keeps_old_shape() {
        let text = std::sync::Arc::new(r#"[{"IdObjet":1001, "x": [1,2]}]"#.to_string());
        let object = RawJson::slice(text, 1..29).unwrap_or_else(|| panic!("range"));
        let ev = ReadyEvent {
            event: object_ready(),
            id: ObjectId(1001),
            zone: Zone::Raw,
            name: "Customers".into(),
            run_id: RunId::new("r1"),
            ts: 1,
            preflight_fail: false,
            attempt: 2,
            graph_version: "g".into(),
            object,
            schema_version: SCHEMA_VERSION,
        };
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&ev).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(v["event"], "ObjectReady");
        assert_eq!(v["id"], 1001);
        assert_eq!(v["zone"], "1-Raw");
        assert_eq!(v["preflight_fail"], false);
        assert_eq!(v["object"]["IdObjet"], 1001);
        assert_eq!(v["object"]["x"][1], 2);
        assert_eq!(ev.idempotency_key(), "r1/1001/2");
        let json = serde_json::to_string(&ev).unwrap_or_default();
        let back: ReadyEvent = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.object.get(), r#"{"IdObjet":1001, "x": [1,2]}"#);
    }
}
