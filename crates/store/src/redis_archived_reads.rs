//! Reads of a run's records and attempts wherever they are: its live hashes, or the archive a
//! finished run's were packed into (`redis_archive.rs`); live first, since archiving moves fields
//! from one to the other and never back.

use super::redis_archive::{Archive, bucket_of, decode, unpack};
use super::redis_batch::Keys;
use super::{AttemptRecord, StoreError};
use orchestrator_core::scheduler::ObjectRecord;
use orchestrator_protocol::{ObjectId, RunId};
use std::collections::BTreeMap;

/// A live hash's fields and values, and an archive's buckets, as read in one transaction.
type LiveAndArchived = (Vec<(String, String)>, Vec<(u64, Vec<u8>)>);

impl Archive {
    /// A run's object records: its live hash read with its archive in one transaction (one or
    /// the other holds each object; the live one wins, written since), by object id.
    pub(crate) async fn objects(
        &self,
        run: &RunId,
    ) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError> {
        let keys = Keys(&self.prefix);
        let (live_key, archive_key) = (keys.objects(run), keys.objects_archive(run));
        let mut con = self.con.clone();
        let (live, archived): LiveAndArchived = redis::pipe()
            .atomic()
            .cmd("HGETALL")
            .arg(&live_key)
            .cmd("HGETALL")
            .arg(&archive_key)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let mut all: BTreeMap<u64, String> = BTreeMap::new();
        for (_, packed) in archived {
            for (field, value) in unpack(packed, &archive_key)? {
                all.insert(parse_id(&field, &archive_key)?, value);
            }
        }
        for (field, value) in live {
            all.insert(parse_id(&field, &live_key)?, value);
        }
        all.into_iter()
            .map(|(id, v)| Ok((ObjectId(id), decode(&v, &live_key)?)))
            .collect()
    }

    /// One object's ended attempts, from the live hashes or the archive (live first: archiving
    /// moves fields from one to the other, never back).
    pub(crate) async fn attempts(
        &self,
        run: &RunId,
        id: ObjectId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let keys = Keys(&self.prefix);
        let mut con = self.con.clone();
        let field = id.0.to_string();
        let live: Option<String> = redis::cmd("HGET")
            .arg(keys.objects(run))
            .arg(&field)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let record = match live {
            Some(r) => Some(r),
            None => self
                .bucket(&keys.objects_archive(run), &field)
                .await?
                .remove(&field),
        };
        let Some(record) = record else {
            return Ok(Vec::new());
        };
        let record: ObjectRecord = decode(&record, &keys.objects(run))?;
        if record.attempt == 0 {
            return Ok(Vec::new());
        }
        // The object's record says how many attempts it had; each has its field.
        let fields: Vec<String> = (1..=record.attempt)
            .map(|n| super::redis_batch::attempt_field(id, n))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys.attempts(run))
            .arg(&fields)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let archive_key = keys.attempts_archive(run);
        let mut bucket: Option<BTreeMap<String, String>> = None;
        let mut attempts = Vec::with_capacity(values.len());
        for (field, value) in fields.iter().zip(values) {
            let value = match value {
                Some(v) => Some(v),
                None => {
                    if bucket.is_none() {
                        bucket = Some(self.bucket(&archive_key, field).await?);
                    }
                    bucket.as_ref().and_then(|b| b.get(field).cloned())
                }
            };
            if let Some(v) = value {
                attempts.push(decode(&v, &archive_key)?);
            }
        }
        Ok(attempts)
    }

    /// The whole bucket of `field` in an archive (empty when absent).
    async fn bucket(&self, key: &str, field: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut con = self.con.clone();
        let packed: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(key)
            .arg(bucket_of(field))
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        Ok(match packed {
            Some(p) => unpack(p, key)?.into_iter().collect(),
            None => BTreeMap::new(),
        })
    }
}

fn parse_id(field: &str, key: &str) -> Result<u64, StoreError> {
    field
        .parse()
        .map_err(|_| StoreError::Decode(format!("{key}: field {field:?} is not an object id")))
}
