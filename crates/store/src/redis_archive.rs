//! A finished run's objects and attempts, archived: once a run finishes, its two hashes (a field
//! per object and per attempt, about 370 bytes an object in Redis) are packed into buckets of
//! LZ4-compressed lines, and reads look there for what the hashes no longer hold
//! (`redis_archived_reads.rs`).

use super::redis_batch::Keys;
use super::redis_lua::{backend_error, write_error};
use super::redis_text;
use super::{RunHeader, RunStatus, StoreError, Transition};
use orchestrator_protocol::RunId;
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;

/// Objects per bucket: reading one object's attempts unpacks one bucket.
const BUCKET: u64 = 256;

/// Fields per HSCAN step, and packed bytes per staging write.
const SCAN_COUNT: usize = 2000;
const STAGE_BYTES: usize = 4 * 1024 * 1024;

/// A staging key left by an archiving that died goes after this long.
const STAGE_TTL_MS: u64 = 3_600_000;

/// Swaps the staged buckets in, if the writer still holds its epoch (`ARGV[1]`, empty when not
/// fenced), the run's record is still the finished one read (`ARGV[2]`: a run started again
/// meanwhile keeps its hashes) and every staged key is there; all or nothing. `ARGV[3]`: the
/// archive's time to live (empty: none); then per hash its staged key, archive and live hash.
const SWAP: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED writer epoch is now ' .. tostring(redis.call('GET', KEYS[1])))
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
for i = 4, #ARGV, 3 do
  if redis.call('EXISTS', ARGV[i]) == 0 then return 0 end
end
for i = 4, #ARGV, 3 do
  redis.call('RENAME', ARGV[i], ARGV[i + 1])
  redis.call('DEL', ARGV[i + 2])
  if ARGV[3] ~= '' then redis.call('EXPIRE', ARGV[i + 1], ARGV[3]) end
end
return 1
";

/// Tells one archiving's staging keys from another's (two may run at once: a run finished
/// twice in a row, or two processes).
fn staging_name() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("staged:{}:{nanos}:{n}", std::process::id())
}

/// The bucket of a field of either hash (`OBJECT` or `OBJECT:ATTEMPT`): one object's record and
/// attempts share it.
pub(crate) fn bucket_of(field: &str) -> u64 {
    field
        .split(':')
        .next()
        .and_then(|id| id.parse::<u64>().ok())
        .map_or(0, |id| id / BUCKET)
}

/// Each bucket's lines `field TAB value` as read (fields are numbers and colons, values compact
/// JSON: neither holds a tab or a newline); a field read again later wins.
type Lines = BTreeMap<u64, String>;

fn push_line(lines: &mut Lines, field: &str, value: &str) {
    write_line(lines.entry(bucket_of(field)).or_default(), field, value);
}

fn write_line(text: &mut String, field: &str, value: &str) {
    text.push_str(field);
    text.push('\t');
    text.push_str(value);
    text.push('\n');
}

/// One bucket's lines, each field once (its last line) in field order, compressed.
fn pack(lines: &str) -> Vec<u8> {
    let latest: BTreeMap<&str, &str> = lines.lines().filter_map(|l| l.split_once('\t')).collect();
    let mut text = String::with_capacity(lines.len());
    for (field, value) in latest {
        write_line(&mut text, field, value);
    }
    redis_text::pack(&text)
}

pub(crate) fn unpack(stored: Vec<u8>, key: &str) -> Result<Vec<(String, String)>, StoreError> {
    let text = redis_text::unpack(stored, key)?;
    text.lines()
        .map(|line| {
            line.split_once('\t')
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .ok_or_else(|| StoreError::Decode(format!("{key}: a line without a field")))
        })
        .collect()
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    key: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(format!("{key}: {e}")))
}

/// Archives, in the background, each run `batch` finished; one that fails stays in its hashes,
/// read as before. `archive` is called only for a batch that finishes a run (most do not).
pub(crate) fn archive_finished(
    batch: &[Transition],
    archive: impl FnOnce() -> Archive,
) -> Vec<tokio::task::JoinHandle<()>> {
    let archive = std::cell::LazyCell::new(archive);
    let mut started = Vec::new();
    for t in batch {
        if let Transition::Run(h) = t
            && h.status == RunStatus::Finished
        {
            let (archive, run) = ((*archive).clone(), h.run_id.clone());
            started.push(tokio::spawn(
                async move { archive.archive_or_warn(&run).await },
            ));
        }
    }
    started
}

/// Archives, in the background, every finished run still in its hashes (a writer that died
/// before archiving, or a `run` that exited).
pub(crate) fn sweep(archive: Archive) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut con = archive.con.clone();
        let runs: Vec<String> = match redis::cmd("ZRANGE")
            .arg(Keys(&archive.prefix).runs())
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
        {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %archive.err(e), "listing the runs to archive failed: finished runs left in their hashes stay there until the next writer");
                return;
            }
        };
        for run in runs {
            let run = RunId::new(run.as_str());
            let live: bool = redis::cmd("EXISTS")
                .arg(Keys(&archive.prefix).objects(&run))
                .query_async(&mut con)
                .await
                .unwrap_or(false);
            if live {
                archive.archive_or_warn(&run).await;
            }
        }
    })
}

impl super::RedisStore {
    /// Archives `run` now if it is finished (the store does it by itself after the batch that
    /// finishes it): `true` when something moved.
    pub async fn archive_run(&self, run: &RunId) -> Result<bool, StoreError> {
        self.archive().archive(run).await
    }

    /// [`RedisStore::archive_run`] in its two steps, reading and staging then swapping (a test
    /// starts the run again between them).
    pub async fn stage_archive(&self, run: &RunId) -> Result<Option<StagedArchive>, StoreError> {
        self.archive().stage_run(run).await
    }
    pub async fn swap_archive(&self, staged: StagedArchive) -> Result<bool, StoreError> {
        self.archive().swap(staged).await
    }
}

/// A finished run's records and attempts staged, waiting to be swapped in.
pub struct StagedArchive {
    run_key: String,
    /// The run's record as read: the swap happens only if it is still that.
    header: String,
    /// Per hash: its staged key, archive and live hash.
    swap: Vec<String>,
}

/// What archiving and the archive's reads need of the store; cloned into the task that archives.
#[derive(Clone)]
pub(crate) struct Archive {
    pub(crate) con: ConnectionManager,
    pub(crate) prefix: String,
    pub(crate) finished_ttl: Option<u64>,
    pub(crate) shown_url: String,
    /// The epoch key and this writer's epoch, when it holds the lease.
    pub(crate) fence: Option<(String, u64)>,
}

impl Archive {
    pub(crate) fn err(&self, e: redis::RedisError) -> StoreError {
        backend_error(&self.shown_url, e)
    }

    async fn archive_or_warn(&self, run: &RunId) {
        if let Err(e) = self.archive(run).await {
            tracing::warn!(run = %run, error = %e, "archiving the finished run failed: its records stay as they are");
        }
    }

    /// Archives `run` if it is finished: `true` when something moved.
    pub(crate) async fn archive(&self, run: &RunId) -> Result<bool, StoreError> {
        match self.stage_run(run).await? {
            Some(staged) => self.swap(staged).await,
            None => Ok(false),
        }
    }

    /// The first step: the finished run's hashes read and merged with its archive under
    /// staging keys. `None`: not finished, or nothing to move.
    pub(crate) async fn stage_run(&self, run: &RunId) -> Result<Option<StagedArchive>, StoreError> {
        let keys = Keys(&self.prefix);
        let mut con = self.con.clone();
        let run_key = keys.run(run);
        let header: Option<String> = redis::cmd("GET")
            .arg(&run_key)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let Some(header) = header else {
            return Ok(None);
        };
        if decode::<RunHeader>(&header, &run_key)?.status != RunStatus::Finished {
            return Ok(None);
        }
        let mut swap: Vec<String> = Vec::new();
        let staging = staging_name();
        for (live, archived) in [
            (keys.objects(run), keys.objects_archive(run)),
            (keys.attempts(run), keys.attempts_archive(run)),
        ] {
            // Held as lines, a bucket's in one text: at 1,000,000 objects a map of the fields
            // took 135 MiB more of serve's memory.
            let fresh = self.scan(&live).await?;
            if fresh.is_empty() {
                continue;
            }
            let mut buckets = self.read_all(&archived).await?;
            for (bucket, text) in fresh {
                buckets.entry(bucket).or_default().push_str(&text);
            }
            let staged = format!("{archived}:{staging}");
            self.stage(&staged, &buckets).await?;
            swap.extend([staged, archived, live]);
        }
        Ok((!swap.is_empty()).then_some(StagedArchive {
            run_key,
            header,
            swap,
        }))
    }

    /// The second step: the staged archive swapped in for the hashes, all or nothing (see
    /// [`SWAP`]). `false`: the run was started again (or another archiving swapped first).
    pub(crate) async fn swap(&self, staged: StagedArchive) -> Result<bool, StoreError> {
        let StagedArchive {
            run_key,
            header,
            swap,
        } = staged;
        let mut con = self.con.clone();
        let keys = Keys(&self.prefix);
        let (epoch_key, epoch) = match &self.fence {
            Some((key, epoch)) => (key.clone(), epoch.to_string()),
            None => (keys.epoch(), String::new()),
        };
        let script = redis::Script::new(SWAP);
        let mut call = script.prepare_invoke();
        let ttl = self.finished_ttl.map(|t| t.to_string()).unwrap_or_default();
        call.key(epoch_key)
            .key(run_key)
            .arg(epoch)
            .arg(header)
            .arg(ttl)
            .arg(swap);
        let done: i64 = call
            .invoke_async(&mut con)
            .await
            .map_err(|e| write_error(&self.shown_url, self.fence.as_ref().map(|f| f.1), e))?;
        Ok(done == 1)
    }

    /// Every field and value of a live hash, a step at a time (never one long reply).
    async fn scan(&self, key: &str) -> Result<Lines, StoreError> {
        let mut con = self.con.clone();
        let mut all = Lines::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut con)
                .await
                .map_err(|e| self.err(e))?;
            for (field, value) in page {
                push_line(&mut all, &field, &value);
            }
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// The packed buckets under a staging key, a few megabytes per write, expiring.
    async fn stage(&self, staged: &str, buckets: &Lines) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(staged).ignore();
        let mut pending = 0;
        for (bucket, lines) in buckets {
            let packed = pack(lines);
            pending += packed.len();
            pipe.cmd("HSET")
                .arg(staged)
                .arg(bucket)
                .arg(packed)
                .ignore();
            if pending >= STAGE_BYTES {
                pipe.query_async::<()>(&mut con)
                    .await
                    .map_err(|e| self.err(e))?;
                pipe = redis::pipe();
                pending = 0;
            }
        }
        pipe.cmd("PEXPIRE").arg(staged).arg(STAGE_TTL_MS).ignore();
        pipe.query_async::<()>(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Every field and value an archive holds.
    async fn read_all(&self, key: &str) -> Result<Lines, StoreError> {
        let mut con = self.con.clone();
        let buckets: Vec<(u64, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let mut all = Lines::new();
        for (bucket, packed) in buckets {
            all.insert(bucket, redis_text::unpack(packed, key)?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objects_record_and_attempts_share_a_bucket() {
        assert_eq!(bucket_of("1001"), bucket_of("1001:1"));
        assert_eq!(bucket_of("1001:12"), 1001 / BUCKET);
        assert_ne!(bucket_of("1001"), bucket_of("3001"));
    }

    #[test]
    fn a_bucket_unpacks_as_it_was_packed_each_field_at_its_latest() {
        let entries: BTreeMap<String, String> = [
            (
                "1001:1".to_string(),
                r#"{"attempt":1,"info":"a\tb\nc"}"#.to_string(),
            ),
            ("1001:2".to_string(), "{}".to_string()),
        ]
        .into();
        // serde_json escapes tabs and newlines inside strings: the values above are as stored.
        let mut lines = Lines::new();
        push_line(&mut lines, "1001:2", "{\"old\":true}");
        for (field, value) in &entries {
            push_line(&mut lines, field, value);
        }
        assert_eq!(lines.len(), 1, "one bucket");
        let back: BTreeMap<String, String> = unpack(pack(&lines[&(1001 / BUCKET)]), "k")
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .collect();
        assert_eq!(back, entries);
        assert!(unpack(redis_text::pack("no tab here\n"), "k").is_err());
    }
}
