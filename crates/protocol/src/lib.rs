//! What the orchestrator and the workers say to each other: object ids, zones, run ids and the
//! events that travel on the bus (Ready, Started/Heartbeat, Loaded/Failed), with their schema version.

mod event_json;
mod events;
mod ids;
mod raw_json;
mod trace;
mod zone;

pub use event_json::EventJson;
pub use events::{
    AttemptStatus, ControlEvent, ControlKind, FailedEvent, ProgressEvent, ProgressKind, ReadyEvent,
    ResultEvent, SCHEMA_VERSION, unix_seconds,
};
pub use ids::{ObjectId, RunId};
pub use raw_json::RawJson;
pub use trace::{Traced, traceparent};
pub use zone::{ParseZoneError, Zone};
