//! The redb store's write of one batch, in the caller's write transaction: each transition
//! into its table, and the finished runs past their retention removed with it.

use super::redb_store::{
    ATTEMPTS, CATALOG, CATALOG_OBJECTS, CATALOG_REPLACES, DEAD, GRAPHS, OBJECTS, RUNS, SCHEDULE,
    SETTINGS, decode, encode, encode_attempts, err,
};
use super::{RunHeader, RunStatus, StoreError, Transition};
use orchestrator_core::scheduler::{AttemptRecord, LatestLoad};
use orchestrator_protocol::{ObjectId, RunId};
use redb::{ReadableTable, Table, WriteTransaction};
use std::path::Path;

/// The tables a batch writes, open in one write transaction.
pub(crate) struct Tables<'t> {
    tx: &'t WriteTransaction,
    path: &'t Path,
    runs: Table<'t, &'static str, &'static [u8]>,
    objects: Table<'t, (&'static str, u64), &'static [u8]>,
    dead: Table<'t, (&'static str, u64), &'static [u8]>,
    graphs: Table<'t, &'static str, &'static [u8]>,
    attempts: Table<'t, (&'static str, u64, u32), &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(tx: &'t WriteTransaction, path: &'t Path) -> Result<Self, StoreError> {
        let e = |e: redb::TableError| err(path, e);
        Ok(Tables {
            tx,
            path,
            runs: tx.open_table(RUNS).map_err(e)?,
            objects: tx.open_table(OBJECTS).map_err(e)?,
            dead: tx.open_table(DEAD).map_err(e)?,
            graphs: tx.open_table(GRAPHS).map_err(e)?,
            attempts: tx.open_table(ATTEMPTS).map_err(e)?,
        })
    }

    /// Writes one transition.
    pub(crate) fn write(&mut self, t: &Transition) -> Result<(), StoreError> {
        let path = self.path;
        match t {
            Transition::Run(meta) => {
                let value = encode(meta)?;
                self.runs
                    .insert(meta.run_id.as_str(), value.as_slice())
                    .map_err(|e| err(path, e))?;
            }
            Transition::Object { run, id, record } => {
                let value = encode(record)?;
                self.objects
                    .insert((run.as_str(), id.0), value.as_slice())
                    .map_err(|e| err(path, e))?;
            }
            Transition::DeadLetter { run, letter } => {
                let value = encode(letter)?;
                self.dead
                    .insert((run.as_str(), letter.id.0), value.as_slice())
                    .map_err(|e| err(path, e))?;
            }
            Transition::DeadLettersCleared { run } => {
                let all = (run.as_str(), 0)..=(run.as_str(), u64::MAX);
                self.dead
                    .retain_in(all, |_, _| false)
                    .map_err(|e| err(path, e))?;
            }
            Transition::DeadLetterRemoved { run, id } => {
                self.dead
                    .remove((run.as_str(), id.0))
                    .map_err(|e| err(path, e))?;
            }
            Transition::Attempts { run, attempts } => self.write_attempts(run, attempts)?,
            Transition::Loads { run, loads } => self.write_loads(run, loads)?,
            Transition::Graph { run, objects } => {
                self.graphs
                    .insert(run.as_str(), objects.as_bytes())
                    .map_err(|e| err(path, e))?;
            }
            Transition::Schedule(state) => {
                let json =
                    serde_json::to_vec(&**state).map_err(|e| StoreError::Decode(e.to_string()))?;
                self.setting(SCHEDULE, &json)?;
            }
            Transition::Catalog { objects, replaces } => {
                self.setting(CATALOG_OBJECTS, objects.as_bytes())?;
                self.setting(CATALOG_REPLACES, replaces.as_bytes())?;
            }
        }
        Ok(())
    }

    fn setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path;
        let mut settings = self.tx.open_table(SETTINGS).map_err(|e| err(path, e))?;
        settings.insert(name, value).map_err(|e| err(path, e))?;
        Ok(())
    }

    /// One row for the batch's ended attempts, after the run's others of the same millisecond.
    fn write_attempts(
        &mut self,
        run: &RunId,
        ended: &[(ObjectId, AttemptRecord)],
    ) -> Result<(), StoreError> {
        let path = self.path;
        let at = ended.first().map_or(0, |(_, a)| a.ended_ms);
        let mut n = 0u32;
        while self
            .attempts
            .get((run.as_str(), at, n))
            .map_err(|e| err(path, e))?
            .is_some()
        {
            n += 1;
        }
        let value = encode_attempts(ended)?;
        self.attempts
            .insert((run.as_str(), at, n), value.as_slice())
            .map_err(|e| err(path, e))?;
        Ok(())
    }

    /// Each object's latest load in the catalog: a newer one it would replace stays.
    fn write_loads(&self, run: &RunId, loads: &[LatestLoad]) -> Result<(), StoreError> {
        let path = self.path;
        let mut catalog = self.tx.open_table(CATALOG).map_err(|e| err(path, e))?;
        for l in loads {
            // Written at once (insert hands the value it replaced back); a newer load it
            // replaced goes back (rare: a run that finished after a newer one).
            let replaced = catalog
                .insert(l.id.0, (l.at_ms, l.attempt, run.as_str()))
                .map_err(|e| err(path, e))?
                .and_then(|v| {
                    let (at, attempt, run) = v.value();
                    (at > l.at_ms).then(|| (at, attempt, run.to_string()))
                });
            if let Some((at, attempt, held)) = replaced {
                catalog
                    .insert(l.id.0, (at, attempt, held.as_str()))
                    .map_err(|e| err(path, e))?;
            }
        }
        Ok(())
    }

    /// Removes the runs that finished before `before`, with their objects, dead letters,
    /// attempts and definitions.
    pub(crate) fn remove_finished_before(&mut self, before: u64) -> Result<(), StoreError> {
        let path = self.path;
        let mut expired = Vec::new();
        for entry in self.runs.iter().map_err(|e| err(path, e))? {
            let (id, v) = entry.map_err(|e| err(path, e))?;
            // A record it cannot read is left alone: tidying never fails a write.
            let Ok(meta) = decode::<RunHeader>(v.value()) else {
                continue;
            };
            if meta.status == RunStatus::Finished && meta.updated_ms < before {
                expired.push(id.value().to_string());
            }
        }
        for id in &expired {
            let all = (id.as_str(), 0)..=(id.as_str(), u64::MAX);
            let e = |e| err(path, e);
            self.objects
                .retain_in(all.clone(), |_, _| false)
                .map_err(e)?;
            self.dead.retain_in(all, |_, _| false).map_err(e)?;
            let attempts = (id.as_str(), 0, 0)..=(id.as_str(), u64::MAX, u32::MAX);
            self.attempts.retain_in(attempts, |_, _| false).map_err(e)?;
            self.graphs.remove(id.as_str()).map_err(e)?;
            self.runs.remove(id.as_str()).map_err(e)?;
        }
        if !expired.is_empty() {
            tracing::info!(
                runs = expired.len(),
                "finished runs past their retention removed from the state store"
            );
        }
        Ok(())
    }
}
