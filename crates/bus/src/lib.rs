//! The bus both sides talk through: a small trait (publish batches, consume batches, commit)
//! and the in-process implementation used by the embedded run. Kafka implements the same trait.

#[cfg(feature = "contract")]
pub mod contract;
mod memory;
pub mod pauses;
pub mod retry;

pub use memory::MemoryBus;

use async_trait::async_trait;
use orchestrator_protocol::{
    ControlEvent, FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, Zone,
};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    /// The broker cannot be reached, or did not take the events in time: trying again later
    /// may succeed.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus backend error: {0}")]
    Backend(String),
    /// Some events can never be sent (larger than a message may be); they are in
    /// [`Unsent::rejected`] with their reasons, and the others went out.
    #[error("events refused for good: {0}")]
    Rejected(String),
}

impl BusError {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Unavailable(_))
    }
}

/// What a publish did not send, and why. `events` are the ones worth sending again when the
/// error is transient (empty when it is not); `rejected` the ones that can never be sent (a
/// message too large), each with the reason, whatever happened to the others.
#[derive(Debug)]
pub struct Unsent<T> {
    pub error: BusError,
    pub events: Vec<T>,
    pub rejected: Vec<(T, String)>,
}

impl<T> Unsent<T> {
    /// Nothing worth sending again: the error is final.
    pub fn fatal(error: BusError) -> Self {
        Unsent {
            error,
            events: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// `events` to send again after a transient `error`.
    pub fn again(error: BusError, events: Vec<T>) -> Self {
        Unsent {
            error,
            events,
            rejected: Vec::new(),
        }
    }
}

impl<T> std::fmt::Display for Unsent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} events not sent)", self.error, self.events.len())
    }
}

impl<T: std::fmt::Debug> std::error::Error for Unsent<T> {}

impl<T> From<Unsent<T>> for BusError {
    fn from(u: Unsent<T>) -> BusError {
        u.error
    }
}

/// The outcome of a publish.
pub type Published<T> = Result<(), Unsent<T>>;

/// Names one delivered event, to acknowledge it once handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckToken(pub u64);

/// An event and the token that acknowledges it.
#[derive(Debug)]
pub struct Delivery<T> {
    pub event: T,
    pub token: AckToken,
}

/// A consumer of one topic, at-least-once: each delivered event is acknowledged by the caller
/// once handled (in any order). What a consumer delivered and nobody acknowledged is delivered
/// again, to this group's next consumer, after this one is gone.
#[async_trait]
pub trait Consumer<T>: Send {
    /// Waits for at least one event and returns up to `max`. An empty batch means the bus closed.
    /// Cancel-safe: dropping the future before it completes loses nothing.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery<T>>, BusError>;
    /// These events are handled: they will not be delivered again.
    async fn ack(&mut self, tokens: Vec<AckToken>) -> Result<(), BusError>;
}

/// Publishing and subscribing. Publishing takes batches so that a backend can keep many sends
/// in flight; a publish that fails hands back the events it did not send.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Published<ReadyEvent>;
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Published<ResultEvent>;
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Published<ProgressEvent>;
    /// Objects that failed for good, for whoever must act on them (Kafka: `TOPIC_FAILED` and
    /// `TOPIC_DLQ`). Nothing in the orchestrator consumes them.
    async fn publish_failed(&self, events: Vec<FailedEvent>) -> Published<FailedEvent>;
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
    /// Messages to every worker (a cancelled run).
    async fn publish_control(&self, events: Vec<ControlEvent>) -> Published<ControlEvent>;
    /// Every control message published from now on, whoever else reads them: each consumer
    /// sees them all (`member` names this one, for the broker's bookkeeping).
    async fn control_consumer(
        &self,
        member: &str,
    ) -> Result<Box<dyn Consumer<ControlEvent>>, BusError>;
}
