//! The old system's Python workers publish an attempt that failed to `TOPIC_FAILED` (and
//! `TOPIC_DLQ`), not to `TOPIC_LOADED`, as a result (`{"event":"ObjectLoaded","status":"failed",…}`).
//! Told apart here from the orchestrator's own `ObjectFailed` events on that topic.

use serde::Deserialize;

/// The two fields that tell a worker's result from an orchestrator's event.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    status: Option<serde::de::IgnoredAny>,
}

/// Whether a message on `TOPIC_FAILED` is a worker's result: it has a `status` and is not one of
/// the orchestrator's `ObjectFailed` events. A message that is not JSON is not a result.
pub fn is_worker_result(payload: &[u8]) -> bool {
    match serde_json::from_slice::<Kind>(payload) {
        Ok(k) => k.status.is_some() && k.event.as_deref() != Some("ObjectFailed"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_workers_failures_are_results_our_failed_events_are_not() {
        assert!(is_worker_result(
            br#"{"event":"ObjectLoaded","id":2001,"status":"failed","zone":"2-Standardized","info":"boom","run_id":"r"}"#
        ));
        assert!(is_worker_result(
            br#"{"id":"2001","status":"FAILED","run_id":"r"}"#
        ));
        assert!(!is_worker_result(
            br#"{"event":"ObjectFailed","id":2001,"zone":"2-Standardized","name":"x","run_id":"r","attempt":3,"reason":"boom","upstream_failed":2,"ts":1,"schema_version":1}"#
        ));
        assert!(!is_worker_result(b"not json"));
    }
}
