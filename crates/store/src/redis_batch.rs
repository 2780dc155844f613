//! A batch of transitions as Redis commands, and how it is sent: one MULTI/EXEC, or, for the
//! writer, one script that checks the writer's epoch first. Values are written straight into
//! the request (no string of their own per record), so a large batch costs its request alone.

use super::redis_lua::FENCED_BATCH;
use super::{CatalogLoad, DeadLetter, RunHeader, RunStatus, StoreError, Transition};
use orchestrator_core::scheduler::{AttemptRecord, ObjectRecord, ObjectState};
use orchestrator_protocol::{ObjectId, RunId};

/// Field/value pairs per HSET: Lua's `unpack` has a bounded stack.
const HSET_CHUNK: usize = 1000;

/// The store's keys under its prefix (see the Redis store's documentation).
#[derive(Clone, Copy)]
pub(crate) struct Keys<'a>(pub &'a str);

impl Keys<'_> {
    pub(crate) fn runs(self) -> String {
        format!("{}:runs", self.0)
    }
    pub(crate) fn run(self, run: &RunId) -> String {
        format!("{}:run:{}", self.0, run)
    }
    pub(crate) fn objects(self, run: &RunId) -> String {
        format!("{}:run:{}:objects", self.0, run)
    }
    pub(crate) fn dead(self, run: &RunId) -> String {
        format!("{}:run:{}:dead", self.0, run)
    }
    /// Ended attempts, by `OBJECT:ATTEMPT`.
    pub(crate) fn attempts(self, run: &RunId) -> String {
        format!("{}:run:{}:attempts", self.0, run)
    }
    /// A finished run's object records, archived: buckets of packed lines (`redis_archive.rs`).
    pub(crate) fn objects_archive(self, run: &RunId) -> String {
        format!("{}:run:{}:objects:archive", self.0, run)
    }
    /// A finished run's attempts, archived likewise.
    pub(crate) fn attempts_archive(self, run: &RunId) -> String {
        format!("{}:run:{}:attempts:archive", self.0, run)
    }
    /// The set in which the old system's Python workers remember the objects whose failure
    /// they published (see `forget_old_workers_failures`).
    pub(crate) fn old_workers_failed(self) -> String {
        format!("{}:failed", self.0)
    }
    /// Each object's latest load, by any run.
    pub(crate) fn catalog(self) -> String {
        format!("{}:catalog", self.0)
    }
    /// The schedule's state (JSON).
    pub(crate) fn schedule(self) -> String {
        format!("{}:schedule", self.0)
    }
    /// A catalog replaced through the API: its definitions, and what it replaced.
    pub(crate) fn catalog_objects(self) -> String {
        format!("{}:catalog:objects", self.0)
    }
    pub(crate) fn catalog_replaces(self) -> String {
        format!("{}:catalog:replaces", self.0)
    }
    pub(crate) fn graph(self, run: &RunId) -> String {
        format!("{}:run:{}:graph", self.0, run)
    }
    /// The writer lease: `HOLDER EPOCH`, with a TTL.
    pub(crate) fn writer(self) -> String {
        format!("{}:writer", self.0)
    }
    /// The writer lease's epoch counter.
    pub(crate) fn epoch(self) -> String {
        format!("{}:writer:epoch", self.0)
    }
}

/// Where a batch's commands go: a MULTI/EXEC pipeline, or the arguments of one script call
/// that first checks the writer's epoch. Arguments are written straight into the request,
/// with no copy of their own on the way.
pub(crate) enum Out {
    Pipeline {
        pipe: redis::Pipeline,
        current: Option<redis::Cmd>,
    },
    Fenced(redis::Cmd),
}

impl Out {
    /// `fence`: the epoch key and this writer's epoch, when it holds the lease.
    pub(crate) fn new(fence: Option<&(String, u64)>) -> Out {
        match fence {
            None => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                Out::Pipeline {
                    pipe,
                    current: None,
                }
            }
            Some((epoch_key, epoch)) => {
                let script = redis::Script::new(FENCED_BATCH);
                let mut call = redis::cmd("EVALSHA");
                call.arg(script.get_hash()).arg(1).arg(epoch_key).arg(epoch);
                Out::Fenced(call)
            }
        }
    }

    /// Starts a command of `argc` arguments (its name included).
    pub(crate) fn command(&mut self, argc: usize) -> &mut Self {
        match self {
            Out::Pipeline { pipe, current } => {
                if let Some(done) = current.replace(redis::Cmd::new()) {
                    pipe.add_command(done).ignore();
                }
            }
            Out::Fenced(call) => {
                call.arg(argc);
            }
        }
        self
    }

    pub(crate) fn arg<T: redis::ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        match self {
            Out::Pipeline {
                current: Some(cmd), ..
            } => {
                cmd.arg(arg);
            }
            Out::Pipeline { current: None, .. } => {}
            Out::Fenced(call) => {
                call.arg(arg);
            }
        }
        self
    }

    /// Sends it all, all or nothing (loading the script first if the server lacks it).
    pub(crate) async fn send(
        self,
        con: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<()> {
        match self {
            Out::Pipeline { mut pipe, current } => {
                if let Some(done) = current {
                    pipe.add_command(done).ignore();
                }
                pipe.query_async::<()>(con).await
            }
            Out::Fenced(call) => match call.query_async::<i64>(con).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(FENCED_BATCH)
                        .query_async::<String>(con)
                        .await?;
                    call.query_async::<i64>(con).await.map(|_| ())
                }
                other => other.map(|_| ()),
            },
        }
    }
}

/// Writes the commands of a batch (no object definitions: see the store's `write_text`) to
/// `out`. A finished run's keys get `finished_ttl` seconds to live.
pub(crate) fn write_batch(
    keys: Keys<'_>,
    finished_ttl: Option<u64>,
    batch: &[&Transition],
    out: &mut Out,
) -> Result<(), StoreError> {
    // One HSET per run and hash, whatever the number of objects in the batch; each key is
    // made once per run (made per record it was 4 % of serve's CPU).
    let mut objects: ByRun<(u64, &ObjectRecord)> = Vec::new();
    let mut dead: ByRun<(u64, &DeadLetter)> = Vec::new();
    let mut attempts: ByRun<(AttemptField, &AttemptRecord)> = Vec::new();
    let mut catalog: Vec<(u64, CatalogLoad)> = Vec::new();
    let mut dispatched: Vec<u64> = Vec::new();
    let mut json = Vec::new();
    for t in batch {
        match t {
            Transition::Run(meta) => write_run(keys, finished_ttl, meta, out, &mut json)?,
            Transition::Object { run, id, record } => {
                if record.state == ObjectState::Dispatched {
                    dispatched.push(id.0);
                }
                of_run(&mut objects, run).push((id.0, record));
            }
            Transition::DeadLetter { run, letter } => {
                of_run(&mut dead, run).push((letter.id.0, letter));
            }
            Transition::DeadLettersCleared { run } => {
                // Letters earlier in the batch go with the rest; later ones are written after
                // (the hashes are written at the end).
                dead.retain(|(r, _)| *r != run);
                out.command(2).arg("DEL").arg(keys.dead(run));
            }
            Transition::DeadLetterRemoved { run, id } => {
                if let Some((_, letters)) = dead.iter_mut().find(|(r, _)| *r == run) {
                    letters.retain(|(field, _)| *field != id.0);
                }
                out.command(3).arg("HDEL").arg(keys.dead(run)).arg(id.0);
            }
            Transition::Attempts {
                run,
                attempts: ended,
            } => {
                of_run(&mut attempts, run).extend(
                    ended
                        .iter()
                        .map(|(id, a)| (AttemptField(*id, a.attempt), a)),
                );
            }
            Transition::Loads { run, loads } => {
                // One writer writes them in order, a run's when it finishes: the later wins.
                catalog.extend(loads.iter().map(|l| {
                    let load = CatalogLoad {
                        at_ms: l.at_ms,
                        run: run.clone(),
                        attempt: l.attempt,
                    };
                    (l.id.0, load)
                }));
            }
            // Written before the batch, in pieces (see the store's `write_text`).
            Transition::Graph { .. } => {}
            Transition::Catalog { replaces, .. } => {
                out.command(3)
                    .arg("SET")
                    .arg(keys.catalog_replaces())
                    .arg(replaces.as_str());
            }
            Transition::Schedule(state) => {
                encode(&mut json, &**state)?;
                out.command(3)
                    .arg("SET")
                    .arg(keys.schedule())
                    .arg(&json[..]);
            }
        }
    }
    if !catalog.is_empty() {
        let owned: Vec<(u64, &CatalogLoad)> = catalog.iter().map(|(k, v)| (*k, v)).collect();
        hset(out, vec![(keys.catalog(), owned)], &mut json)?;
    }
    hset(out, by_run_keyed(objects, |r| keys.objects(r)), &mut json)?;
    hset(out, by_run_keyed(dead, |r| keys.dead(r)), &mut json)?;
    hset(out, by_run_keyed(attempts, |r| keys.attempts(r)), &mut json)?;
    forget_old_workers_failures(keys, &dispatched, out);
    Ok(())
}

/// A run's record, its place in the list of runs, and a finished run's time to live.
fn write_run(
    keys: Keys<'_>,
    finished_ttl: Option<u64>,
    meta: &RunHeader,
    out: &mut Out,
    json: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let key = keys.run(&meta.run_id);
    encode(json, meta)?;
    out.command(3).arg("SET").arg(&key).arg(&json[..]);
    out.command(4)
        .arg("ZADD")
        .arg(keys.runs())
        .arg(meta.created_ms)
        .arg(meta.run_id.as_str());
    if let (RunStatus::Finished, Some(ttl)) = (meta.status, finished_ttl) {
        let id = &meta.run_id;
        let all = [
            key,
            keys.objects(id),
            keys.dead(id),
            keys.graph(id),
            keys.attempts(id),
            keys.objects_archive(id),
            keys.attempts_archive(id),
        ];
        for k in all {
            out.command(3)
                .arg("EXPIRE")
                .arg(k)
                .arg(ttl.min(i64::MAX as u64));
        }
    }
    Ok(())
}

/// For the old system's Python workers, when they share this Redis (same `REDIS_PREFIX`): they
/// publish an object's failure only once ever, remembering it in the set `{prefix}:failed`,
/// so a later failure of a retried object would never be heard of (its attempt would wait out
/// the start timeout). Every object dispatched in this batch leaves that set before its Ready
/// event goes out, so its next failure is published. Harmless without them: the set is absent.
fn forget_old_workers_failures(keys: Keys<'_>, dispatched: &[u64], out: &mut Out) {
    for chunk in dispatched.chunks(HSET_CHUNK) {
        out.command(2 + chunk.len())
            .arg("SREM")
            .arg(keys.old_workers_failed());
        for id in chunk {
            out.arg(id.to_string());
        }
    }
}

/// The field of one attempt in a run's hash of attempts.
pub(crate) fn attempt_field(id: ObjectId, attempt: u32) -> String {
    format!("{id}:{attempt}")
}

/// An attempt's field, written into the request as `OBJECT:ATTEMPT` (no string of its own).
struct AttemptField(ObjectId, u32);

impl redis::ToRedisArgs for AttemptField {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        // At most 20 digits, a colon and 10 digits.
        let mut field = [0u8; 32];
        let mut cursor = std::io::Cursor::new(&mut field[..]);
        let _ = write!(cursor, "{}:{}", self.0.0, self.1);
        let end = cursor.position() as usize;
        out.write_arg(&field[..end]);
    }
}

/// Items grouped by run, in the order the runs first came (a batch has a few runs at most).
type ByRun<'a, T> = Vec<(&'a RunId, Vec<T>)>;

fn of_run<'a, 'b, T>(groups: &'b mut ByRun<'a, T>, run: &'a RunId) -> &'b mut Vec<T> {
    let at = match groups.iter().position(|(r, _)| *r == run) {
        Some(at) => at,
        None => {
            groups.push((run, Vec::new()));
            groups.len() - 1
        }
    };
    &mut groups[at].1
}

/// The groups under their hashes' keys.
fn by_run_keyed<T>(groups: ByRun<'_, T>, key: impl Fn(&RunId) -> String) -> Vec<(String, Vec<T>)> {
    groups
        .into_iter()
        .map(|(run, items)| (key(run), items))
        .collect()
}

/// One HSET per hash and chunk of fields, each value as JSON.
fn hset<F: redis::ToRedisArgs, T: serde::Serialize>(
    out: &mut Out,
    hashes: Vec<(String, Vec<(F, &T)>)>,
    json: &mut Vec<u8>,
) -> Result<(), StoreError> {
    for (key, items) in hashes {
        for chunk in items.chunks(HSET_CHUNK) {
            out.command(2 + 2 * chunk.len()).arg("HSET").arg(&key);
            for (field, value) in chunk {
                encode(json, value)?;
                out.arg(field).arg(&json[..]);
            }
        }
    }
    Ok(())
}

fn encode<T: serde::Serialize>(buf: &mut Vec<u8>, v: &T) -> Result<(), StoreError> {
    buf.clear();
    serde_json::to_writer(&mut *buf, v).map_err(|e| StoreError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ToRedisArgs;

    #[test]
    fn an_attempts_field_is_written_as_it_is_read() {
        for (id, attempt) in [(1001, 1), (u64::MAX, u32::MAX), (0, 0)] {
            let written = AttemptField(ObjectId(id), attempt).to_redis_args();
            assert_eq!(written, [attempt_field(ObjectId(id), attempt).into_bytes()]);
        }
    }
}
