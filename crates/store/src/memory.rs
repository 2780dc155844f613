//! The in-memory store: the default when no state directory is given (nothing survives the
//! process).

use super::{
    AttemptRecord, CatalogLoad, DeadLetter, EndedAttempts, RunHeader, ScheduleState, StateStore,
    StoreError, Transition,
};
use async_trait::async_trait;
use orchestrator_core::scheduler::ObjectRecord;
use orchestrator_protocol::{ObjectId, RunId};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Inner {
    runs: Vec<RunHeader>,
    /// Records by run and object (hashed: written on every step, read rarely, sorted then).
    objects: HashMap<RunId, FxHashMap<ObjectId, ObjectRecord>>,
    dead: HashMap<RunId, Vec<DeadLetter>>,
    graphs: HashMap<RunId, std::sync::Arc<String>>,
    /// Ended attempts by run, in the batches they came in (kept as they are, not copied: an
    /// object's are found by reading its run's, which only operators do).
    attempts: HashMap<RunId, Vec<EndedAttempts>>,
    /// Each object's latest load, by any run.
    catalog: FxHashMap<ObjectId, CatalogLoad>,
    schedule: Option<ScheduleState>,
    catalog_objects: Option<(std::sync::Arc<String>, String)>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn apply(&self, batch: &[Transition]) -> Result<(), StoreError> {
        super::check_batch(batch)?;
        let mut inner = self.lock();
        let mut next = 0;
        while let Some(t) = batch.get(next) {
            next += 1;
            match t {
                Transition::Run(meta) => {
                    match inner.runs.iter_mut().find(|r| r.run_id == meta.run_id) {
                        Some(r) => *r = (**meta).clone(),
                        None => inner.runs.push((**meta).clone()),
                    }
                }
                Transition::Object { run, .. } => {
                    let objects = match inner.objects.get_mut(run) {
                        Some(o) => o,
                        None => inner.objects.entry(run.clone()).or_default(),
                    };
                    // The records of one run come together (this one first): one lookup of its
                    // map for all.
                    next -= 1;
                    while let Some(Transition::Object {
                        run: same,
                        id,
                        record,
                    }) = batch.get(next)
                        && same == run
                    {
                        objects.insert(*id, *record);
                        next += 1;
                    }
                }
                Transition::DeadLetter { run, letter } => inner
                    .dead
                    .entry(run.clone())
                    .or_default()
                    .push(letter.clone()),
                Transition::DeadLettersCleared { run } => {
                    inner.dead.remove(run);
                }
                Transition::DeadLetterRemoved { run, id } => {
                    if let Some(letters) = inner.dead.get_mut(run) {
                        letters.retain(|l| l.id != *id);
                    }
                }
                Transition::Attempts { run, attempts } => {
                    let kept = match inner.attempts.get_mut(run) {
                        Some(k) => k,
                        None => inner.attempts.entry(run.clone()).or_default(),
                    };
                    kept.push(attempts.clone());
                }
                Transition::Loads { run, loads } => {
                    for l in loads.iter() {
                        let newer = inner.catalog.get(&l.id).is_none_or(|c| c.at_ms <= l.at_ms);
                        if newer {
                            let load = CatalogLoad {
                                at_ms: l.at_ms,
                                run: run.clone(),
                                attempt: l.attempt,
                            };
                            inner.catalog.insert(l.id, load);
                        }
                    }
                }
                Transition::Graph { run, objects } => {
                    inner.graphs.insert(run.clone(), objects.clone());
                }
                Transition::Schedule(state) => inner.schedule = Some((**state).clone()),
                Transition::Catalog { objects, replaces } => {
                    inner.catalog_objects = Some((objects.clone(), replaces.clone()))
                }
            }
        }
        Ok(())
    }
    async fn runs(&self) -> Result<Vec<RunHeader>, StoreError> {
        let mut runs = self.lock().runs.clone();
        runs.sort_by(|a, b| (a.created_ms, &a.run_id).cmp(&(b.created_ms, &b.run_id)));
        Ok(runs)
    }
    async fn run(&self, run: &RunId) -> Result<Option<RunHeader>, StoreError> {
        Ok(self.lock().runs.iter().find(|m| &m.run_id == run).cloned())
    }
    async fn objects(&self, run: &RunId) -> Result<Vec<(ObjectId, ObjectRecord)>, StoreError> {
        let mut records: Vec<(ObjectId, ObjectRecord)> = self
            .lock()
            .objects
            .get(run)
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        records.sort_unstable_by_key(|(id, _)| *id);
        Ok(records)
    }
    async fn dead_letters(&self, run: &RunId) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.lock().dead.get(run).cloned().unwrap_or_default())
    }
    async fn attempts(&self, run: &RunId, id: ObjectId) -> Result<Vec<AttemptRecord>, StoreError> {
        // By attempt; an attempt recorded twice (expired, then its late result taken) is the
        // later record.
        let mut found: BTreeMap<u32, AttemptRecord> = BTreeMap::new();
        if let Some(batches) = self.lock().attempts.get(run) {
            for (_, a) in batches
                .iter()
                .flat_map(|b| b.iter())
                .filter(|(o, _)| *o == id)
            {
                found.insert(a.attempt, a.clone());
            }
        }
        Ok(found.into_values().collect())
    }
    async fn latest_loads(&self) -> Result<Vec<(ObjectId, CatalogLoad)>, StoreError> {
        let mut loads: Vec<(ObjectId, CatalogLoad)> = self
            .lock()
            .catalog
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        loads.sort_unstable_by_key(|(id, _)| *id);
        Ok(loads)
    }
    async fn schedule_state(&self) -> Result<Option<ScheduleState>, StoreError> {
        Ok(self.lock().schedule.clone())
    }
    async fn catalog_objects(&self) -> Result<Option<(String, String)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .catalog_objects
            .as_ref()
            .map(|(o, r)| (o.as_str().to_string(), r.clone())))
    }
    async fn graph(&self, run: &RunId) -> Result<Option<String>, StoreError> {
        Ok(self.lock().graphs.get(run).map(|g| g.as_str().to_string()))
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}
