//! The state store: each run's header, its objects' records, its dead letters and its object
//! definitions. One trait, backends named by URL (`memory://`, `redb://PATH`, `redis://…`);
//! every write is a batch of transitions applied all or nothing (Redis: one round trip).

mod memory;
mod redb_store;
mod redb_write;
mod redis_archive;
mod redis_archived_reads;
mod redis_batch;
mod redis_lua;
mod redis_store;
mod redis_text;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use redis_archive::StagedArchive;
pub use redis_lua::redact_url;
pub use redis_store::RedisStore;

use async_trait::async_trait;
pub use orchestrator_core::schedule::ScheduleState;
pub use orchestrator_core::scheduler::AttemptRecord;
pub use orchestrator_core::scheduler::LatestLoad;
pub use orchestrator_core::scheduler::{DeadLetter, RunHeader, RunOutcome, RunStatus};
use orchestrator_core::scheduler::{ObjectRecord, RunDelta};
use orchestrator_protocol::{ObjectId, RunId};
use std::path::PathBuf;
use std::sync::Arc;

/// Attempts that ended in one batch, each with its object; shared (see [`Transition::Attempts`]).
pub type EndedAttempts = Arc<Vec<(ObjectId, AttemptRecord)>>;

/// One change; a batch of them is applied all or nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Run(Box<RunHeader>),
    Object {
        run: RunId,
        id: ObjectId,
        record: ObjectRecord,
    },
    DeadLetter {
        run: RunId,
        letter: DeadLetter,
    },
    /// Every dead letter of the run goes (its failures run again): what failed is no longer
    /// dead; what fails again gets a letter of its own, later in the batch or after.
    DeadLettersCleared {
        run: RunId,
    },
    /// One object's dead letter goes (it runs again).
    DeadLetterRemoved {
        run: RunId,
        id: ObjectId,
    },
    /// Attempts that ended: each one's history, kept with the run. Shared, so that a store
    /// that keeps them in memory, or a batch kept to be written again, copies none.
    Attempts {
        run: RunId,
        attempts: EndedAttempts,
    },
    /// Objects a run loaded, for the schedule's catalog: each object's latest load is kept
    /// across runs (a later load replaces an earlier one, never the other way round).
    Loads {
        run: RunId,
        loads: Arc<Vec<LatestLoad>>,
    },
    /// The object definitions a run was submitted with (its file's JSON), kept so that another
    /// process can take the run over.
    Graph {
        run: RunId,
        objects: Arc<String>,
    },
    /// The schedule's state (the latest tick started, pauses), written with the run a tick
    /// starts so that no tick is started twice, nor lost.
    Schedule(Box<ScheduleState>),
    /// The schedule's catalog as replaced through the API: its object definitions, and the
    /// fingerprint of the `OBJECTS_PATH` text it replaced (see `catalog_hash`).
    Catalog {
        objects: Arc<String>,
        replaces: String,
    },
}

impl Transition {
    fn run_id(&self) -> Option<&RunId> {
        Some(match self {
            Transition::Schedule(_) | Transition::Catalog { .. } => return None,
            Transition::Run(h) => &h.run_id,
            Transition::Object { run, .. }
            | Transition::DeadLetter { run, .. }
            | Transition::DeadLettersCleared { run }
            | Transition::DeadLetterRemoved { run, .. }
            | Transition::Attempts { run, .. }
            | Transition::Loads { run, .. }
            | Transition::Graph { run, .. } => run,
        })
    }

    /// The transitions that persist one run's delta, in the order a store applies them.
    pub fn from_delta(delta: RunDelta, batch: &mut Vec<Transition>) {
        let run = delta.header.run_id.clone();
        if delta.dead_letters_cleared {
            batch.push(Transition::DeadLettersCleared { run: run.clone() });
        }
        batch.extend(delta.dead_letters_removed.into_iter().map(|id| {
            Transition::DeadLetterRemoved {
                run: run.clone(),
                id,
            }
        }));
        batch.extend(
            delta
                .records
                .into_iter()
                .map(|(id, record)| Transition::Object {
                    run: run.clone(),
                    id,
                    record,
                }),
        );
        batch.extend(
            delta
                .dead_letters
                .into_iter()
                .map(|letter| Transition::DeadLetter {
                    run: run.clone(),
                    letter,
                }),
        );
        if !delta.loads.is_empty() {
            batch.push(Transition::Loads {
                run: run.clone(),
                loads: Arc::new(delta.loads),
            });
        }
        if !delta.attempts.is_empty() {
            batch.push(Transition::Attempts {
                run: run.clone(),
                attempts: Arc::new(delta.attempts),
            });
        }
        batch.push(Transition::Run(Box::new(delta.header)));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend refused or failed: `store` names it (a path or a redacted URL) and
    /// `transient` says whether the same request may succeed later.
    #[error("state store {store}: {message}")]
    Backend {
        store: String,
        message: String,
        transient: bool,
    },
    #[error(
        "state store {path} is in use by another process (a running orchestrator?); wait for it to finish or stop it"
    )]
    Busy { path: PathBuf },
    #[error("state store {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state store: a stored record cannot be read ({0}); the store may come from another version"
    )]
    Decode(String),
    #[error("state store URL {0:?}: expected memory://, redb://PATH or redis://HOST:PORT")]
    Url(String),
    #[error("state store: background task failed: {0}")]
    Task(String),
    #[error(
        "state store: run id {0:?} cannot be stored: use letters, digits, '.', '_' and '-' (at most 128)"
    )]
    InvalidRunId(String),
    #[error(
        "state store: this orchestrator is no longer the writer (writer epoch {ours}, another orchestrator took over); nothing more is written"
    )]
    Fenced { ours: u64 },
}

impl StoreError {
    /// Whether the same write may succeed later: the store unreachable, restarting or loading
    /// its data. A fenced writer, a damaged file or a record that does not decode are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                transient: true,
                ..
            }
        )
    }
}

/// Refuses a batch that names a run id no backend can key safely (empty, too long, or with a
/// separator such as `:` that would mix its keys with another run's), before any of it is
/// applied: every backend calls it first.
pub fn check_batch(batch: &[Transition]) -> Result<(), StoreError> {
    let mut checked: Option<&str> = None;
    for t in batch {
        let Some(id) = t.run_id().map(RunId::as_str) else {
            continue;
        };
        if checked == Some(id) {
            continue; // a batch names few runs, each many times
        }
        checked = Some(id);
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(StoreError::InvalidRunId(id.to_string()));
        }
    }
    Ok(())
}

/// An object's latest load as the catalog keeps it: when, by which run and attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogLoad {
    pub at_ms: u64,
    pub run: RunId,
    pub attempt: u32,
}

/// The outcome of asking for the writer lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterLease {
    /// This process is the writer; every later write is fenced by `epoch`.
    Acquired { epoch: u64 },
    /// Another process holds it.
    Held { holder: String },
}

/// Backends implement this; each passes the contract tests in `tests/store_contract/`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Applies every transition, or none (one transaction, one round trip).
    async fn apply(&self, batch: &[Transition]) -> Result<(), StoreError>;
    /// Every run, oldest first.
    async fn runs(&self) -> Result<Vec<RunHeader>, StoreError>;
    /// One run's record, read by its id alone.
    async fn run(&self, run: &RunId) -> Result<Option<RunHeader>, StoreError>;
    /// A run's records, in id order.
    async fn objects(&self, run: &RunId) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError>;
    async fn dead_letters(&self, run: &RunId) -> Result<Vec<DeadLetter>, StoreError>;
    /// Every ended attempt of one object of a run, oldest first.
    async fn attempts(&self, run: &RunId, id: ObjectId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Each object's latest load, by any run: the schedule's catalog, in object order.
    async fn latest_loads(&self) -> Result<Vec<(ObjectId, CatalogLoad)>, StoreError>;
    /// The schedule's state, as last written (`None`: no schedule ever ran on this store).
    async fn schedule_state(&self) -> Result<Option<ScheduleState>, StoreError>;
    /// The catalog replaced through the API, if any: its definitions and the fingerprint of
    /// the `OBJECTS_PATH` text it replaced.
    async fn catalog_objects(&self) -> Result<Option<(String, String)>, StoreError>;
    /// The object definitions stored with a run.
    async fn graph(&self, run: &RunId) -> Result<Option<String>, StoreError>;
    /// Whether the store answers, for readiness probes.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Name for logs and metrics (`memory`, `redb`).
    fn kind(&self) -> &'static str;

    /// Why what is written may not survive a restart of the store, if it may not (a Redis server
    /// that keeps nothing on disk).
    async fn durability_warning(&self) -> Option<String> {
        None
    }

    /// One writer at a time among processes sharing the store: takes the writer lease for
    /// `ttl_ms` if nobody holds it. Once acquired, every `apply` of this handle is fenced: it
    /// fails with `StoreError::Fenced` after another process has taken the lease over. Stores
    /// that one process owns (memory, redb: the file lock) need no lease.
    async fn acquire_writer(&self, _holder: &str, _ttl_ms: u64) -> Result<WriterLease, StoreError> {
        Ok(WriterLease::Acquired { epoch: 0 })
    }
    /// As [`StateStore::acquire_writer`], and takes the lease over from `dead` (a lease value
    /// `HOLDER EPOCH`, as `WriterLease::Held` gives it) if it still holds it: its holder is
    /// known to be gone. A new epoch fences it all the same, were it alive after all.
    async fn take_over_writer(
        &self,
        holder: &str,
        ttl_ms: u64,
        _dead: &str,
    ) -> Result<WriterLease, StoreError> {
        self.acquire_writer(holder, ttl_ms).await
    }
    /// Who holds the writer lease now, if anyone: to a reader, a run stored as running with no
    /// writer alive was interrupted. A store one process owns (redb: its file lock) has no
    /// other writer while a reader has it open.
    async fn writer(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Extends the lease; `false` when it was lost (expired and taken, or never held).
    async fn renew_writer(&self, _ttl_ms: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Gives the lease up (on a clean stop), so that a standby takes over at once.
    async fn release_writer(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Settings of the stores that keep runs across processes (Redis, redb).
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Prefix of every Redis key (`REDIS_PREFIX`).
    pub prefix: String,
    /// Seconds a finished run is kept (`RETRY_TTL_SECONDS`); `None` keeps it. Redis expires its
    /// keys; redb removes it when a later run finishes.
    pub finished_ttl: Option<u64>,
}

impl StoreSettings {
    /// `finished_ttl_seconds` 0 keeps finished runs forever.
    pub fn new(prefix: &str, finished_ttl_seconds: u64) -> Self {
        StoreSettings {
            prefix: prefix.to_string(),
            finished_ttl: (finished_ttl_seconds > 0).then_some(finished_ttl_seconds),
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            prefix: "orch".to_string(),
            finished_ttl: Some(7 * 24 * 3600),
        }
    }
}

/// Opens the store a URL names: `memory://`, `redb://PATH` (a file; its directory is made) or
/// `redis://…` / `rediss://…`.
pub async fn open_store_with(
    url: &str,
    settings: &StoreSettings,
) -> Result<Arc<dyn StateStore>, StoreError> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Arc::new(
            RedisStore::connect(url, &settings.prefix, settings.finished_ttl).await?,
        ));
    }
    open_store(url, settings.finished_ttl)
}

/// Opens an embedded store by URL: `memory://` or `redb://PATH`, which keeps a finished run
/// `finished_ttl` seconds (`None`: forever).
pub fn open_store(url: &str, finished_ttl: Option<u64>) -> Result<Arc<dyn StateStore>, StoreError> {
    if url == "memory://" || url == "memory" {
        return Ok(Arc::new(MemoryStore::default()));
    }
    if let Some(path) = url.strip_prefix("redb://") {
        if path.is_empty() {
            return Err(StoreError::Url(url.to_string()));
        }
        return Ok(Arc::new(RedbStore::open(
            PathBuf::from(path),
            finished_ttl,
        )?));
    }
    Err(StoreError::Url(url.to_string()))
}

/// The URL `--state-dir DIR` stands for.
pub fn state_dir_url(dir: &std::path::Path) -> String {
    format!("redb://{}", dir.join("state.redb").display())
}
