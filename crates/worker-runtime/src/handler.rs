//! The contract between the runtime and the code that does the work for one object.

use async_trait::async_trait;
use orchestrator_protocol::ReadyEvent;

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object is loaded; `info` is a short note for logs and the result event.
    Loaded { info: String },
    /// The attempt failed. A non-retryable failure goes to the dead-letter list at once.
    Failed { reason: String, retryable: bool },
}

/// An outcome with what the handler wrote (its stdout and stderr, or a response's body),
/// bounded: head and tail kept with a marker between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    pub outcome: Outcome,
    pub output: String,
}

impl From<Outcome> for Ran {
    fn from(outcome: Outcome) -> Ran {
        Ran {
            outcome,
            output: String::new(),
        }
    }
}

/// Does the work for one Ready task (run id, object id, zone, attempt and the object's JSON are
/// all in the event). Called concurrently; may be called twice for one attempt after a crash, so
/// it should be idempotent on `task.idempotency_key()`.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, task: &ReadyEvent) -> Ran;
    /// A short description for logs (`simulate:20`, `command:./load.sh`, …).
    fn describe(&self) -> String;
    /// Whether it only pretends to load (`simulate`): its loads are marked so, in the result
    /// and the attempt history, and never make an object fresh for the schedule.
    fn simulates(&self) -> bool {
        false
    }
}

/// Keeps the last `max` bytes of a text, on a character boundary, for failure reasons.
pub fn tail(text: &str, max: usize) -> String {
    let t = text.trim();
    if t.len() <= max {
        return t.to_string();
    }
    format!("…{}", &t[t.ceil_char_boundary(t.len() - max)..])
}
