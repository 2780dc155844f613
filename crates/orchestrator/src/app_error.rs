//! Why the embedded run or the server stopped short, sorted by what the user must do about it:
//! the command maps each kind to its documented exit code.

use orchestrator_bus::BusError;
use orchestrator_engine::EngineError;
use orchestrator_engine::metrics::MetricsError;
use orchestrator_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// What was asked cannot work as given (an address, a handler, broker settings).
    #[error("{0}")]
    Invalid(String),
    /// The state store does not allow it (an unfinished run, nothing to resume, another
    /// writer, the writer lease lost).
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Worker(#[from] worker_runtime::WorkerError),
    #[error(transparent)]
    Handler(#[from] worker_runtime::SpecError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AppError {
    /// Whether the state store is the cause (the store's own errors, a refused run, a lost
    /// lease), as opposed to the settings or anything else.
    pub fn is_state(&self) -> bool {
        matches!(
            self,
            AppError::State(_) | AppError::Store(_) | AppError::Engine(EngineError::Store(_))
        )
    }
}
