//! Whether a Ready event fits in one message of the bus: an event that cannot fit can never be
//! sent, so its object fails for good with that reason instead of stopping the orchestrator.

use orchestrator_protocol::ReadyEvent;

/// Everything in a Ready event but the object and the name, at most (ids, zone, run id,
/// graph version, field names).
const ENVELOPE_BYTES: usize = 1024;

/// `Err` with the reason when `event` is larger than `limit` bytes of JSON. Cheap for the
/// events far from the limit (a bound from the object's size); exact near it.
pub fn check_ready_size(event: &ReadyEvent, limit: usize) -> Result<(), String> {
    // A name's characters take at most 6 bytes each in JSON (`\u001f`).
    let bound = event.object.get().len() + event.name.len() * 6 + ENVELOPE_BYTES;
    if bound <= limit {
        return Ok(());
    }
    let size = serde_json::to_vec(event).map_or(usize::MAX, |v| v.len());
    if size <= limit {
        return Ok(());
    }
    Err(format!(
        "the Ready event is {size} bytes, more than the bus's message limit of {limit} (the object's JSON is {} bytes): it can never be sent; lower MAX_OBJECT_BYTES or raise message.max.bytes in KAFKA_PROPERTIES and on the broker",
        event.object.get().len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_protocol::{ObjectId, RawJson, RunId, SCHEMA_VERSION, Zone};

    fn event(object_bytes: usize) -> ReadyEvent {
        let object = format!(r#"{{"IdObjet":1001,"Pad":"{}"}}"#, "x".repeat(object_bytes));
        ReadyEvent {
            event: "ObjectReady".into(),
            id: ObjectId(1001),
            zone: Zone::Raw,
            name: "n".into(),
            run_id: RunId::new("run-1"),
            ts: 0,
            preflight_fail: false,
            attempt: 1,
            graph_version: "v".into(),
            object: RawJson::from_string(object),
            schema_version: SCHEMA_VERSION,
        }
    }

    #[test]
    fn events_fit_up_to_the_limit_and_not_past_it() {
        assert!(check_ready_size(&event(100), 10_000).is_ok());
        let size = serde_json::to_vec(&event(20_000))
            .map(|v| v.len())
            .unwrap_or(0);
        assert!(check_ready_size(&event(20_000), size).is_ok());
        let why = check_ready_size(&event(20_000), size - 1)
            .err()
            .unwrap_or_default();
        assert!(why.contains(&format!("is {size} bytes")), "{why}");
    }
}
