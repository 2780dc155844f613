//! Events as the JSON the bus carries. A Ready event's object definition was checked when its
//! file was read, so its text is copied in as it is rather than parsed again on every send (a
//! third of a Ready event's cost in serve, about 3.5 % of its CPU).

use crate::{
    ControlEvent, FailedEvent, ObjectId, ProgressEvent, ReadyEvent, ResultEvent, RunId, Zone,
};
use serde::Serialize;
use std::io::Write;

/// An event's JSON, byte for byte what `serde_json::to_vec` writes of it.
pub trait EventJson {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
}

macro_rules! as_serde_writes {
    ($($t:ty),*) => {$(
        impl EventJson for $t {
            fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
                serde_json::to_vec(self)
            }
        }
    )*};
}
as_serde_writes!(ResultEvent, ProgressEvent, FailedEvent, ControlEvent);

/// A Ready event's fields before its object, in their order.
#[derive(Serialize)]
struct ReadyHead<'a> {
    event: &'a str,
    id: ObjectId,
    zone: Zone,
    name: &'a str,
    run_id: &'a RunId,
    ts: u64,
    preflight_fail: bool,
    attempt: u32,
    graph_version: &'a str,
}

impl EventJson for ReadyEvent {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let object = self.object.get();
        if object.is_empty() {
            // Not a slice of a checked text: serde says what is wrong with it.
            return serde_json::to_vec(self);
        }
        let mut out = Vec::with_capacity(200 + self.name.len() + object.len());
        serde_json::to_writer(
            &mut out,
            &ReadyHead {
                event: &self.event,
                id: self.id,
                zone: self.zone,
                name: &self.name,
                run_id: &self.run_id,
                ts: self.ts,
                preflight_fail: self.preflight_fail,
                attempt: self.attempt,
                graph_version: &self.graph_version,
            },
        )?;
        out.pop(); // its closing brace
        out.extend_from_slice(b",\"object\":");
        out.extend_from_slice(object.as_bytes());
        write!(out, ",\"schema_version\":{}}}", self.schema_version)
            .map_err(serde_json::Error::io)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawJson;

    fn ready(name: &str, object: &str) -> ReadyEvent {
        ReadyEvent {
            event: "ObjectReady".into(),
            id: ObjectId(2001),
            zone: Zone::Standardized,
            name: name.into(),
            run_id: RunId::new("run-\"é\"-1"),
            ts: 1_796_000_000,
            preflight_fail: false,
            attempt: 3,
            graph_version: "abc123".into(),
            object: RawJson::from_string(object.to_string()),
            schema_version: 1,
        }
    }

    #[test]
    fn a_ready_events_json_is_what_serde_writes() {
        for (name, object) in [
            ("plain", r#"{"IdObjet":2001}"#),
            (
                "tab\tquote\"back\\slash é ☃",
                r#"{"IdObjet": 2001, "NomObjet": "a \" b", "x": [1, {"y": null}]}"#,
            ),
            ("", "[]"),
        ] {
            let event = ready(name, object);
            let fast = event.to_json().unwrap_or_default();
            let serde = serde_json::to_vec(&event).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&serde)
            );
        }
    }

    #[test]
    fn an_object_that_is_no_text_is_left_to_serde() {
        let mut event = ready("x", "{}");
        event.object = RawJson::from_string(String::new());
        assert!(event.to_json().is_err(), "an empty object is not JSON");
    }
}
