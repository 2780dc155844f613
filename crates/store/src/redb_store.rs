//! The embedded transactional store (redb, one file): each batch of transitions is one write
//! transaction, so a kill -9 leaves either all of a batch or none of it. Finished runs older than
//! the retention are removed when another run finishes.

use super::redb_write::Tables;
use super::{
    AttemptRecord, CatalogLoad, DeadLetter, RunHeader, RunStatus, ScheduleState, StateStore,
    StoreError, Transition,
};
use async_trait::async_trait;
use orchestrator_core::scheduler::{AttemptOutcome, AttemptText, ObjectRecord};
use orchestrator_protocol::{ObjectId, RunId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
pub(crate) const OBJECTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("objects");
pub(crate) const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
pub(crate) const GRAPHS: TableDefinition<&str, &[u8]> = TableDefinition::new("graphs");
/// Ended attempts, one row per batch that wrote them (a JSON array of [`AttemptRow`]s), by run, the batch's first end time and a number that tells apart batches of the
/// same millisecond. One row per batch, at the end of the table: a row per attempt, keyed by
/// object, dirtied a page each and took a third of the embedded run's speed. An object's
/// attempts are found by reading its run's, which only operators do.
/// Each object's latest load, by any run (the schedule's catalog): written once per run, when
/// it finishes, so one commit writes each page once.
/// Its values: (load time in Unix ms, attempt, run id), as redb encodes them (no JSON to write
/// or read for each object).
pub(crate) const CATALOG: TableDefinition<u64, (u64, u32, &str)> = TableDefinition::new("catalog");
/// Settings kept under a name: `schedule` (the schedule's state, JSON), `catalog` and
/// `catalog.replaces` (a catalog replaced through the API, and what it replaced).
pub(crate) const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
pub(crate) const SCHEDULE: &str = "schedule";
pub(crate) const CATALOG_OBJECTS: &str = "catalog";
pub(crate) const CATALOG_REPLACES: &str = "catalog.replaces";
pub(crate) const ATTEMPTS: TableDefinition<(&str, u64, u32), &[u8]> =
    TableDefinition::new("attempts");

pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    /// How long a finished run is kept (`RETRY_TTL_SECONDS`, in ms); `None` keeps it.
    finished_ttl_ms: Option<u64>,
}

impl RedbStore {
    /// Opens (or creates) the store at `path`; finished runs are kept `finished_ttl` seconds
    /// (`None`: forever).
    pub fn open(path: PathBuf, finished_ttl: Option<u64>) -> Result<RedbStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = match create_guarded(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Busy { path }),
            Err(e) => return Err(err(&path, e)),
        };
        let store = RedbStore {
            db: Arc::new(db),
            path,
            finished_ttl_ms: finished_ttl.map(|s| s.saturating_mul(1000)),
        };
        // Create the tables so that readers never meet a missing one.
        let tx = store.db.begin_write().map_err(|e| err(&store.path, e))?;
        {
            tx.open_table(RUNS).map_err(|e| err(&store.path, e))?;
            tx.open_table(OBJECTS).map_err(|e| err(&store.path, e))?;
            tx.open_table(DEAD).map_err(|e| err(&store.path, e))?;
            tx.open_table(GRAPHS).map_err(|e| err(&store.path, e))?;
            tx.open_table(ATTEMPTS).map_err(|e| err(&store.path, e))?;
            tx.open_table(CATALOG).map_err(|e| err(&store.path, e))?;
            tx.open_table(SETTINGS).map_err(|e| err(&store.path, e))?;
        }
        tx.commit().map_err(|e| err(&store.path, e))?;
        Ok(store)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, &PathBuf) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (db, path) = (self.db.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || f(&db, &path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// `Database::create`, with redb's own panics turned into an error. Workaround: redb 3.1
/// asserts (`raw_file_len() >= layout().len()`) instead of returning an error when the file is
/// shorter than its header says (a truncated copy, a disk that filled up), which would end the
/// process with a backtrace. The panic's message is kept for the error, not printed.
fn create_guarded(path: &std::path::Path) -> Result<Database, redb::DatabaseError> {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Database::create(path));
    std::panic::set_hook(quiet);
    opened.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the file cannot be read".to_string());
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
            format!("damaged or truncated ({why})"),
        )))
    })
}

pub(crate) fn err(path: &std::path::Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend {
        store: path.display().to_string(),
        message: e.into().to_string(),
        transient: false,
    }
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Decode(e.to_string()))
}

/// An attempt in a row of attempts, as read back: an array, `[object, attempt, outcome,
/// dispatched_ms, started_ms, ended_ms, duration_ms, worker, reason, info, output, simulated]`,
/// without the field names a row would repeat for every attempt (see `encode_attempts`). Rows
/// written before `simulated` existed have eleven elements, and read as not simulated.
#[derive(serde::Deserialize)]
struct AttemptRow {
    object: u64,
    attempt: u32,
    outcome: AttemptOutcome,
    dispatched_ms: u64,
    started_ms: u64,
    ended_ms: u64,
    duration_ms: u64,
    worker: String,
    reason: String,
    info: String,
    output: String,
    #[serde(default)]
    simulated: bool,
}

fn record_of(row: AttemptRow) -> (u64, AttemptRecord) {
    let record = AttemptRecord {
        attempt: row.attempt,
        outcome: row.outcome,
        dispatched_ms: row.dispatched_ms,
        started_ms: row.started_ms,
        ended_ms: row.ended_ms,
        duration_ms: row.duration_ms,
        text: AttemptText {
            worker: row.worker,
            reason: row.reason,
            info: row.info,
            output: row.output,
        }
        .shared(),
        simulated: row.simulated,
    };
    (row.object, record)
}

pub(crate) fn encode_attempts(
    attempts: &[(ObjectId, AttemptRecord)],
) -> Result<Vec<u8>, StoreError> {
    let rows: Vec<_> = attempts
        .iter()
        .map(|(id, a)| {
            (
                id.0,
                a.attempt,
                a.outcome,
                a.dispatched_ms,
                a.started_ms,
                a.ended_ms,
                a.duration_ms,
                a.worker(),
                a.reason(),
                a.info(),
                a.output(),
                a.simulated,
            )
        })
        .collect();
    encode(&rows)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.to_string()))
}

#[async_trait]
impl StateStore for RedbStore {
    async fn apply(&self, batch: &[Transition]) -> Result<(), StoreError> {
        super::check_batch(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        // A run that finishes here is the moment to let go of those finished long ago, on the
        // clock the run records are written with.
        let finished_at = batch
            .iter()
            .filter_map(|t| match t {
                Transition::Run(meta) if meta.status == RunStatus::Finished => {
                    Some(meta.updated_ms)
                }
                _ => None,
            })
            .max();
        let expired_before = finished_at
            .zip(self.finished_ttl_ms)
            .map(|(now, ttl)| now.saturating_sub(ttl));
        // The write runs on a blocking thread, which needs a batch of its own.
        let batch = batch.to_vec();
        self.blocking(move |db, path| {
            let tx = db.begin_write().map_err(|e| err(path, e))?;
            {
                let mut tables = Tables::open(&tx, path)?;
                for t in &batch {
                    tables.write(t)?;
                }
                if let Some(before) = expired_before {
                    tables.remove_finished_before(before)?;
                }
            }
            tx.commit().map_err(|e| err(path, e))
        })
        .await
    }

    async fn runs(&self) -> Result<Vec<RunHeader>, StoreError> {
        self.blocking(|db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(RUNS).map_err(|e| err(path, e))?;
            let mut out: Vec<RunHeader> = Vec::new();
            for entry in table.iter().map_err(|e| err(path, e))? {
                let (_, v) = entry.map_err(|e| err(path, e))?;
                out.push(decode(v.value())?);
            }
            out.sort_by(|a, b| (a.created_ms, &a.run_id).cmp(&(b.created_ms, &b.run_id)));
            Ok(out)
        })
        .await
    }

    async fn run(&self, run: &RunId) -> Result<Option<RunHeader>, StoreError> {
        let run = run.clone();
        self.blocking(move |db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(RUNS).map_err(|e| err(path, e))?;
            match table.get(run.as_str()).map_err(|e| err(path, e))? {
                Some(v) => Ok(Some(decode(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn objects(&self, run: &RunId) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError> {
        let run = run.clone();
        self.blocking(move |db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(OBJECTS).map_err(|e| err(path, e))?;
            let mut out = Vec::new();
            for entry in table
                .range((run.as_str(), 0)..=(run.as_str(), u64::MAX))
                .map_err(|e| err(path, e))?
            {
                let (k, v) = entry.map_err(|e| err(path, e))?;
                out.push((ObjectId(k.value().1), decode(v.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn dead_letters(&self, run: &RunId) -> Result<Vec<DeadLetter>, StoreError> {
        let run = run.clone();
        self.blocking(move |db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(DEAD).map_err(|e| err(path, e))?;
            let mut out = Vec::new();
            for entry in table
                .range((run.as_str(), 0)..=(run.as_str(), u64::MAX))
                .map_err(|e| err(path, e))?
            {
                let (_, v) = entry.map_err(|e| err(path, e))?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn attempts(&self, run: &RunId, id: ObjectId) -> Result<Vec<AttemptRecord>, StoreError> {
        let run = run.clone();
        self.blocking(move |db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(ATTEMPTS).map_err(|e| err(path, e))?;
            // By attempt; an attempt recorded twice (expired, then its late result taken) is
            // the later record, as on the other stores.
            let mut out: std::collections::BTreeMap<u32, AttemptRecord> = Default::default();
            for entry in table
                .range((run.as_str(), 0, 0)..=(run.as_str(), u64::MAX, u32::MAX))
                .map_err(|e| err(path, e))?
            {
                let (_, v) = entry.map_err(|e| err(path, e))?;
                let batch: Vec<AttemptRow> = decode(v.value())?;
                for (object, record) in batch.into_iter().map(record_of) {
                    if object == id.0 {
                        out.insert(record.attempt, record);
                    }
                }
            }
            Ok(out.into_values().collect())
        })
        .await
    }

    async fn latest_loads(&self) -> Result<Vec<(ObjectId, CatalogLoad)>, StoreError> {
        self.blocking(|db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(CATALOG).map_err(|e| err(path, e))?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(|e| err(path, e))? {
                let (k, v) = entry.map_err(|e| err(path, e))?;
                let (at_ms, attempt, run) = v.value();
                let load = CatalogLoad {
                    at_ms,
                    run: RunId::new(run),
                    attempt,
                };
                out.push((ObjectId(k.value()), load));
            }
            Ok(out)
        })
        .await
    }

    async fn schedule_state(&self) -> Result<Option<ScheduleState>, StoreError> {
        self.blocking(|db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(SETTINGS).map_err(|e| err(path, e))?;
            let value = table.get(SCHEDULE).map_err(|e| err(path, e))?;
            value
                .map(|v| decode::<ScheduleState>(v.value()))
                .transpose()
        })
        .await
    }

    async fn catalog_objects(&self) -> Result<Option<(String, String)>, StoreError> {
        self.blocking(|db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(SETTINGS).map_err(|e| err(path, e))?;
            let text = |key: &str| -> Result<Option<String>, StoreError> {
                let value = table.get(key).map_err(|e| err(path, e))?;
                Ok(value.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
            };
            Ok(text(CATALOG_OBJECTS)?.zip(text(CATALOG_REPLACES)?))
        })
        .await
    }

    async fn graph(&self, run: &RunId) -> Result<Option<String>, StoreError> {
        let run = run.clone();
        self.blocking(move |db, path| {
            let tx = db.begin_read().map_err(|e| err(path, e))?;
            let table = tx.open_table(GRAPHS).map_err(|e| err(path, e))?;
            let value = table.get(run.as_str()).map_err(|e| err(path, e))?;
            Ok(value.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "redb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_rows_of_today_and_of_before_simulated_read_back() {
        let rows = r#"[[1001,2,"loaded",10,11,20,9,"w","","rows=3","out",true],
                       [1002,1,"failed",10,11,20,9,"w","exit 1","","",false],
                       [1003,1,"loaded",10,11,20,9,"","","","out"]]"#;
        let read: Vec<(u64, AttemptRecord)> = decode::<Vec<AttemptRow>>(rows.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(record_of)
            .collect();
        let simulated: Vec<(u64, bool)> = read.iter().map(|(o, a)| (*o, a.simulated)).collect();
        assert_eq!(simulated, [(1001, true), (1002, false), (1003, false)]);
        assert_eq!(read[0].1.info(), "rows=3");
        assert_eq!(read[1].1.reason(), "exit 1");
        // What is written reads back as written.
        let written = encode_attempts(&[(ObjectId(1001), read[0].1.clone())])
            .unwrap_or_else(|e| panic!("{e}"));
        let again: Vec<AttemptRow> = decode(&written).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            record_of(again.into_iter().next().unwrap_or_else(|| panic!("a row"))),
            read[0]
        );
    }
}
