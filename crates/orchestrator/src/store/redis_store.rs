//! The Redis state store: every batch of transitions is one MULTI/EXEC pipeline (one round
//! trip, all or nothing). Keys live under a prefix (`REDIS_PREFIX`, default `orch`):
//! `{prefix}:runs` (sorted set of run ids by creation time), `{prefix}:run:{id}` (the run's
//! record), `{prefix}:run:{id}:objects` and `{prefix}:run:{id}:dead` (hashes by object id),
//! `{prefix}:run:{id}:graph` (the object definitions it was submitted with). A finished run's
//! keys expire after the configured time.

use super::{DeadLetter, RunMeta, RunStatus, StateStore, StoreError, Transition};
use async_trait::async_trait;
use orchestrator_core::scheduler::ObjectRecord;
use orchestrator_protocol::{ObjectId, RunId};
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;

pub struct RedisStore {
    con: ConnectionManager,
    prefix: String,
    /// Seconds a finished run's keys are kept; `None` keeps them.
    finished_ttl: Option<u64>,
    /// The URL with any password hidden, for messages.
    shown_url: String,
}

/// The URL with its password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}{}", &url[..scheme + 3], shown, &url[at..])
        }
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`).
    pub async fn connect(
        url: &str,
        prefix: &str,
        finished_ttl: Option<u64>,
    ) -> Result<RedisStore, StoreError> {
        let shown_url = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| StoreError::Redis {
            url: shown_url.clone(),
            source: Box::new(e),
        })?;
        // A few quick tries at start-up; once connected, the manager reconnects by itself.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let con = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| StoreError::Redis {
                url: shown_url.clone(),
                source: Box::new(e),
            })?;
        Ok(RedisStore {
            con,
            prefix: prefix.to_string(),
            finished_ttl,
            shown_url,
        })
    }

    fn err(&self, e: redis::RedisError) -> StoreError {
        StoreError::Redis {
            url: self.shown_url.clone(),
            source: Box::new(e),
        }
    }

    fn runs_key(&self) -> String {
        format!("{}:runs", self.prefix)
    }
    fn run_key(&self, run: &RunId) -> String {
        format!("{}:run:{}", self.prefix, run)
    }
    fn objects_key(&self, run: &RunId) -> String {
        format!("{}:run:{}:objects", self.prefix, run)
    }
    fn dead_key(&self, run: &RunId) -> String {
        format!("{}:run:{}:dead", self.prefix, run)
    }
    fn graph_key(&self, run: &RunId) -> String {
        format!("{}:run:{}:graph", self.prefix, run)
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Decode(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(e.to_string()))
}

#[async_trait]
impl StateStore for RedisStore {
    async fn apply(&self, batch: Vec<Transition>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // One HSET per run and hash, whatever the number of objects in the batch.
        let mut objects: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        let mut dead: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for t in &batch {
            match t {
                Transition::Run(meta) => {
                    let key = self.run_key(&meta.run_id);
                    pipe.set(&key, encode(meta)?).ignore();
                    pipe.zadd(self.runs_key(), meta.run_id.as_str(), meta.created_ms)
                        .ignore();
                    if let (RunStatus::Finished, Some(ttl)) = (meta.status, self.finished_ttl) {
                        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
                        for k in [
                            key,
                            self.objects_key(&meta.run_id),
                            self.dead_key(&meta.run_id),
                            self.graph_key(&meta.run_id),
                        ] {
                            pipe.expire(k, ttl).ignore();
                        }
                    }
                }
                Transition::Object { run, id, record } => {
                    objects
                        .entry(self.objects_key(run))
                        .or_default()
                        .push((id.0, encode(record)?));
                }
                Transition::DeadLetter { run, letter } => {
                    dead.entry(self.dead_key(run))
                        .or_default()
                        .push((letter.id.0, encode(letter)?));
                }
                Transition::Graph { run, objects } => {
                    pipe.set(self.graph_key(run), objects.as_str()).ignore();
                }
            }
        }
        for (key, items) in objects.iter().chain(dead.iter()) {
            pipe.hset_multiple(key, items).ignore();
        }
        let mut con = self.con.clone();
        pipe.query_async::<()>(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    async fn runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.runs_key())
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
            .map(|id| self.run_key(&RunId::new(id.as_str())))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        // A run whose keys expired is left out (its id lingers in the index until pruned).
        let mut runs: Vec<RunMeta> = values
            .into_iter()
            .flatten()
            .map(|v| decode(&v))
            .collect::<Result<_, _>>()?;
        runs.sort_by(|a, b| (a.created_ms, &a.run_id).cmp(&(b.created_ms, &b.run_id)));
        Ok(runs)
    }

    async fn objects(&self, run: &RunId) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError> {
        let mut con = self.con.clone();
        let all: BTreeMap<u64, String> = redis::cmd("HGETALL")
            .arg(self.objects_key(run))
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        all.into_iter()
            .map(|(id, v)| Ok((ObjectId(id), decode(&v)?)))
            .collect()
    }

    async fn dead_letters(&self, run: &RunId) -> Result<Vec<DeadLetter>, StoreError> {
        let mut con = self.con.clone();
        let all: BTreeMap<u64, String> = redis::cmd("HGETALL")
            .arg(self.dead_key(run))
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        all.into_values().map(|v| decode(&v)).collect()
    }

    async fn graph(&self, run: &RunId) -> Result<Option<String>, StoreError> {
        let mut con = self.con.clone();
        redis::cmd("GET")
            .arg(self.graph_key(run))
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))
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
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:s3cret@cache:6380"),
            "rediss://app:***@cache:6380"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
