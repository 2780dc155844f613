//! The Redis state store: every batch of transitions is one MULTI/EXEC pipeline (one round
//! trip, all or nothing). Keys live under a prefix (`REDIS_PREFIX`, default `orch`):
//! `{prefix}:runs` (sorted set of run ids by creation time), `{prefix}:run:{id}` (the run's
//! record), `{prefix}:run:{id}:objects` and `{prefix}:run:{id}:dead` (hashes by object id),
//! `{prefix}:run:{id}:graph` (the object definitions it was submitted with, LZ4-compressed:
//! `redis_text.rs`),
//! `{prefix}:run:{id}:attempts` (ended attempts, by `OBJECT:ATTEMPT`; a finished run's records
//! and attempts are archived into packed buckets: `redis_archive.rs`), `{prefix}:catalog` (each
//! object's latest load, by any run; it does not expire). A finished run's
//! keys expire after the configured time; its id leaves the index at the next listing.
//! `{prefix}:writer` holds the writer lease (`HOLDER EPOCH`, with a TTL) and
//! `{prefix}:writer:epoch` its epoch counter: once a process holds the lease, each of its batches
//! runs as one Lua script that first checks the epoch, so a process that lost the lease can write
//! nothing more.

use super::redis_archive::Archive;
use super::redis_batch::{Keys, Out, write_batch};
use super::redis_lua::redact_url;
use super::redis_lua::{ACQUIRE, RELEASE, RENEW, backend_error, write_error};
use super::redis_text;
use super::{
    AttemptRecord, CatalogLoad, DeadLetter, RunHeader, ScheduleState, StateStore, StoreError,
    Transition, WriterLease,
};
use async_trait::async_trait;
use orchestrator_core::scheduler::ObjectRecord;
use orchestrator_protocol::{ObjectId, RunId};
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How long a clean stop waits for the archivings under way.
const ARCHIVING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The object definitions are written this much at a time.
const GRAPH_PIECE_BYTES: usize = 4 * 1024 * 1024;

/// The lease this handle holds: the value of the writer key and the epoch.
#[derive(Clone, Debug)]
struct Held {
    value: String,
    epoch: u64,
}

pub struct RedisStore {
    con: ConnectionManager,
    prefix: String,
    /// Seconds a finished run's keys are kept; `None` keeps them.
    finished_ttl: Option<u64>,
    /// The URL with any password hidden, for messages.
    shown_url: String,
    /// Set once this handle took the writer lease: its writes are fenced from then on.
    writer: Mutex<Option<Held>>,
    /// Archivings under way (see `redis_archive.rs`): a clean stop waits for them.
    archiving: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`).
    pub async fn connect(
        url: &str,
        prefix: &str,
        finished_ttl: Option<u64>,
    ) -> Result<RedisStore, StoreError> {
        let shown_url = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| backend_error(&shown_url, e))?;
        // A few quick tries at start-up; once connected, the manager reconnects by itself.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let con = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| backend_error(&shown_url, e))?;
        Ok(RedisStore {
            con,
            prefix: prefix.to_string(),
            finished_ttl,
            shown_url,
            writer: Mutex::new(None),
            archiving: Mutex::new(Vec::new()),
        })
    }

    fn held(&self) -> Option<Held> {
        self.writer.lock().ok().and_then(|w| w.clone())
    }

    /// The epoch key and this handle's epoch, once it holds the writer lease.
    fn fence(&self) -> Option<(String, u64)> {
        self.held().map(|h| (self.keys().epoch(), h.epoch))
    }

    fn err(&self, e: redis::RedisError) -> StoreError {
        backend_error(&self.shown_url, e)
    }

    /// Sends commands all or nothing (fenced by the writer's epoch when it holds the lease).
    async fn send(&self, out: Out, fence: Option<&(String, u64)>) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        out.send(&mut con)
            .await
            .map_err(|e| write_error(&self.shown_url, fence.map(|f| f.1), e))
    }

    /// A hash keyed by object id, each value decoded, in object order.
    async fn by_object<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Vec<(ObjectId, T)>, StoreError> {
        let mut con = self.con.clone();
        let all: BTreeMap<u64, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        all.into_iter()
            .map(|(id, v)| Ok((ObjectId(id), decode(&v)?)))
            .collect()
    }

    /// The loads newer than what the catalog holds for their objects: an earlier load that
    /// comes later (a run that finished after a newer one) replaces nothing. One writer at a
    /// time, so nothing changes the catalog between this read and the batch's write.
    async fn newer_loads(
        &self,
        loads: &std::sync::Arc<Vec<super::LatestLoad>>,
    ) -> Result<std::sync::Arc<Vec<super::LatestLoad>>, StoreError> {
        let mut con = self.con.clone();
        let mut kept = Vec::with_capacity(loads.len());
        for chunk in loads.chunks(1000) {
            let fields: Vec<u64> = chunk.iter().map(|l| l.id.0).collect();
            let held: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys().catalog())
                .arg(fields)
                .query_async(&mut con)
                .await
                .map_err(|e| self.err(e))?;
            for (l, h) in chunk.iter().zip(held) {
                let at = h
                    .and_then(|v| decode::<CatalogLoad>(&v).ok())
                    .map(|c| c.at_ms);
                if at.is_none_or(|at| at <= l.at_ms) {
                    kept.push(*l);
                }
            }
        }
        Ok(std::sync::Arc::new(kept))
    }

    /// Writes a run's object definitions a piece at a time under a key of their own, then
    /// renames it into place: the definitions appear whole or not at all.
    async fn write_text(
        &self,
        key: String,
        objects: &std::sync::Arc<String>,
        fence: Option<&(String, u64)>,
    ) -> Result<(), StoreError> {
        let partial = format!("{key}:partial");
        let packed = redis_text::pack(objects);
        for (k, piece) in packed.chunks(GRAPH_PIECE_BYTES).enumerate() {
            let mut out = Out::new(fence);
            out.command(3)
                .arg(if k == 0 { "SET" } else { "APPEND" })
                .arg(&partial)
                .arg(piece);
            self.send(out, fence).await?;
        }
        let mut out = Out::new(fence);
        out.command(3).arg("RENAME").arg(partial).arg(key);
        self.send(out, fence).await
    }

    fn keys(&self) -> Keys<'_> {
        Keys(&self.prefix)
    }

    fn track(&self, started: Vec<tokio::task::JoinHandle<()>>) {
        if started.is_empty() {
            return;
        }
        if let Ok(mut archiving) = self.archiving.lock() {
            archiving.retain(|t| !t.is_finished());
            archiving.extend(started);
        }
    }

    pub(crate) fn archive(&self) -> Archive {
        Archive {
            con: self.con.clone(),
            prefix: self.prefix.clone(),
            finished_ttl: self.finished_ttl,
            shown_url: self.shown_url.clone(),
            fence: self.fence(),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(e.to_string()))
}

#[async_trait]
impl StateStore for RedisStore {
    async fn apply(&self, batch: &[Transition]) -> Result<(), StoreError> {
        super::check_batch(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        // A run's object definitions go first, on their own and in pieces: the client copies
        // each command two or three times on its way out, which for a million objects' 110 MB
        // must not happen at once. No header is written without its definitions.
        let fence = self.fence();
        let mut rest = Vec::with_capacity(batch.len());
        let mut newer = Vec::new();
        for t in batch {
            match t {
                Transition::Graph { run, objects } => {
                    let key = self.keys().graph(run);
                    self.write_text(key, objects, fence.as_ref()).await?
                }
                Transition::Catalog { objects, .. } => {
                    let key = self.keys().catalog_objects();
                    self.write_text(key, objects, fence.as_ref()).await?;
                    rest.push(t);
                }
                Transition::Loads { run, loads } => newer.push(Transition::Loads {
                    run: run.clone(),
                    loads: self.newer_loads(loads).await?,
                }),
                other => rest.push(other),
            }
        }
        rest.extend(newer.iter());
        let mut out = Out::new(fence.as_ref());
        write_batch(self.keys(), self.finished_ttl, &rest, &mut out)?;
        self.send(out, fence.as_ref()).await?;
        self.track(super::redis_archive::archive_finished(batch, || {
            self.archive()
        }));
        Ok(())
    }

    async fn acquire_writer(&self, holder: &str, ttl_ms: u64) -> Result<WriterLease, StoreError> {
        self.take_over_writer(holder, ttl_ms, "").await
    }

    async fn take_over_writer(
        &self,
        holder: &str,
        ttl_ms: u64,
        dead: &str,
    ) -> Result<WriterLease, StoreError> {
        let mut con = self.con.clone();
        let (epoch, current): (u64, String) = redis::Script::new(ACQUIRE)
            .key(self.keys().writer())
            .key(self.keys().epoch())
            .arg(holder)
            .arg(ttl_ms.max(1))
            .arg(dead)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        if epoch == 0 {
            return Ok(WriterLease::Held { holder: current });
        }
        if let Ok(mut w) = self.writer.lock() {
            *w = Some(Held {
                value: format!("{holder} {epoch}"),
                epoch,
            });
        }
        // The finished runs a writer that died (or a `run` that exited) left unarchived.
        self.track(vec![super::redis_archive::sweep(self.archive())]);
        Ok(WriterLease::Acquired { epoch })
    }

    async fn writer(&self) -> Result<Option<String>, StoreError> {
        let mut con = self.con.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.keys().writer())
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        // `HOLDER EPOCH`: the holder is everything before the epoch.
        Ok(value.map(|v| {
            v.rsplit_once(' ')
                .map_or(v.as_str(), |(h, _)| h)
                .to_string()
        }))
    }

    async fn renew_writer(&self, ttl_ms: u64) -> Result<bool, StoreError> {
        let Some(held) = self.held() else {
            return Ok(false);
        };
        let mut con = self.con.clone();
        let kept: i64 = redis::Script::new(RENEW)
            .key(self.keys().writer())
            .arg(&held.value)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        Ok(kept == 1)
    }

    async fn release_writer(&self) -> Result<(), StoreError> {
        let Some(held) = self.held() else {
            return Ok(());
        };
        // A clean stop lets its archivings finish first (a killed writer's are done again by
        // the next one).
        let archiving = self
            .archiving
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        let waited = tokio::time::timeout(ARCHIVING_WAIT, async {
            for task in archiving {
                let _ = task.await;
            }
        });
        if waited.await.is_err() {
            tracing::warn!(
                "archiving finished runs took over {ARCHIVING_WAIT:?}: the next writer archives them"
            );
        }
        let mut con = self.con.clone();
        redis::Script::new(RELEASE)
            .key(self.keys().writer())
            .arg(&held.value)
            .invoke_async::<i64>(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn runs(&self) -> Result<Vec<RunHeader>, StoreError> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys().runs())
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.keys().run(&RunId::new(id.as_str())))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        // A run whose keys expired is left out, and its id taken out of the index. (A run's
        // record and its id are written in one transaction: an id without a record expired.)
        let mut runs: Vec<RunHeader> = Vec::with_capacity(ids.len());
        let mut expired: Vec<&String> = Vec::new();
        for (id, value) in ids.iter().zip(values) {
            match value {
                Some(v) => runs.push(decode(&v)?),
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            let removed: Result<i64, _> = redis::cmd("ZREM")
                .arg(self.keys().runs())
                .arg(&expired)
                .query_async(&mut con)
                .await;
            if let Err(e) = removed {
                tracing::warn!(error = %self.err(e), "could not remove expired runs from the runs index");
            }
        }
        runs.sort_by(|a, b| (a.created_ms, &a.run_id).cmp(&(b.created_ms, &b.run_id)));
        Ok(runs)
    }

    async fn run(&self, run: &RunId) -> Result<Option<RunHeader>, StoreError> {
        let mut con = self.con.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.keys().run(run))
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        value.map(|v| decode(&v)).transpose()
    }

    async fn objects(&self, run: &RunId) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError> {
        self.archive().objects(run).await
    }

    async fn dead_letters(&self, run: &RunId) -> Result<Vec<DeadLetter>, StoreError> {
        let letters = self.by_object(self.keys().dead(run)).await?;
        Ok(letters.into_iter().map(|(_, l)| l).collect())
    }

    async fn attempts(&self, run: &RunId, id: ObjectId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.archive().attempts(run, id).await
    }

    async fn latest_loads(&self) -> Result<Vec<(ObjectId, CatalogLoad)>, StoreError> {
        self.by_object(self.keys().catalog()).await
    }

    async fn schedule_state(&self) -> Result<Option<ScheduleState>, StoreError> {
        let mut con = self.con.clone();
        let json: Option<String> = redis::cmd("GET")
            .arg(self.keys().schedule())
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        json.map(|j| decode(&j)).transpose()
    }

    async fn catalog_objects(&self) -> Result<Option<(String, String)>, StoreError> {
        let mut con = self.con.clone();
        let key = self.keys().catalog_objects();
        let (objects, replaces): (Option<Vec<u8>>, Option<String>) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("GET")
            .arg(self.keys().catalog_replaces())
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let Some((objects, replaces)) = objects.zip(replaces) else {
            return Ok(None);
        };
        Ok(Some((redis_text::unpack(objects, &key)?, replaces)))
    }

    async fn graph(&self, run: &RunId) -> Result<Option<String>, StoreError> {
        let mut con = self.con.clone();
        let key = self.keys().graph(run);
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        stored.map(|s| redis_text::unpack(s, &key)).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn durability_warning(&self) -> Option<String> {
        let mut con = self.con.clone();
        let get = |name: &'static str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
        // Managed servers may refuse CONFIG: then nothing can be said.
        let aof: Vec<String> = get("appendonly").query_async(&mut con).await.ok()?;
        let save: Vec<String> = get("save").query_async(&mut con).await.ok()?;
        let aof_on = aof.get(1).is_some_and(|v| v == "yes");
        let snapshots = save.get(1).is_some_and(|v| !v.trim().is_empty());
        if aof_on {
            None
        } else if snapshots {
            Some(format!(
                "Redis at {} keeps only periodic snapshots (save {:?}, appendonly no): a Redis crash loses the state written since the last one; set appendonly yes",
                self.shown_url,
                save.get(1).map(String::as_str).unwrap_or("")
            ))
        } else {
            Some(format!(
                "Redis at {} keeps NOTHING on disk (appendonly no, no save points): a Redis restart loses every run's state; set appendonly yes",
                self.shown_url
            ))
        }
    }
}
