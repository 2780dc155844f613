//! The bus both sides talk through: a small trait (publish batches, consume batches, commit)
//! and the in-process implementation used by the embedded run. Kafka implements the same trait.

mod memory;

pub use memory::MemoryBus;

use async_trait::async_trait;
use orchestrator_protocol::{ProgressEvent, ReadyEvent, ResultEvent, Zone};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    #[error("bus backend error: {0}")]
    Backend(String),
}

/// A consumer of one topic, at-least-once: events returned by `next_batch` are handled by the
/// caller, then `commit` marks them done. A restart replays what was not committed.
#[async_trait]
pub trait Consumer<T>: Send {
    /// Waits for at least one event and returns up to `max`. An empty batch means the bus closed.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<T>, BusError>;
    /// Everything returned so far has been handled.
    async fn commit(&mut self) -> Result<(), BusError>;
}

/// Publishing and subscribing. Publishing takes batches so that a backend can keep many sends
/// in flight.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Result<(), BusError>;
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Result<(), BusError>;
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Result<(), BusError>;
    /// Ready events of one zone, shared by every consumer of `group`.
    async fn ready_consumer(
        &self,
        zone: Zone,
        group: &str,
    ) -> Result<Box<dyn Consumer<ReadyEvent>>, BusError>;
    async fn result_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError>;
    async fn progress_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError>;
}
