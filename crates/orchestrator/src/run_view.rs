//! What the HTTP API shows of one run: counts per state and a page of its objects, built the same
//! way from a run held in memory or from the records of the store.

use crate::store::RunMeta;
use orchestrator_core::scheduler::{ObjectRecord, ObjectState};
use orchestrator_protocol::ObjectId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest page the API returns.
pub const MAX_PAGE: usize = 10_000;

/// Which objects to list.
#[derive(Clone, Debug, Deserialize)]
pub struct ObjectQuery {
    #[serde(default)]
    pub offset: usize,
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Only objects in this state (`loaded`, `failed`, `running`, …).
    pub state: Option<ObjectState>,
}

fn default_limit() -> usize {
    100
}

impl Default for ObjectQuery {
    fn default() -> Self {
        ObjectQuery {
            offset: 0,
            limit: default_limit(),
            state: None,
        }
    }
}

/// One object's state in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectView {
    pub id: ObjectId,
    pub state: ObjectState,
    pub attempt: u32,
    pub failures: u32,
    pub retries: u32,
}

/// A run with its counts and one page of its objects, ordered by id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunView {
    pub run: RunMeta,
    /// Objects per state (every object of the run, whatever the page).
    pub counts: BTreeMap<String, usize>,
    /// Objects that match the query's state filter.
    pub matching: usize,
    pub offset: usize,
    pub limit: usize,
    pub objects: Vec<ObjectView>,
}

impl RunView {
    /// Builds the view; objects the records do not name (never changed) are waiting.
    pub fn build(
        run: RunMeta,
        records: impl Iterator<Item = (ObjectId, ObjectRecord)>,
        query: &ObjectQuery,
    ) -> RunView {
        let limit = query.limit.min(MAX_PAGE);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut matching = Vec::new();
        let mut seen = 0usize;
        for (id, r) in records {
            seen += 1;
            *counts.entry(r.state.as_str().to_string()).or_default() += 1;
            if query.state.is_none_or(|s| s == r.state) {
                matching.push(ObjectView {
                    id,
                    state: r.state,
                    attempt: r.attempt,
                    failures: r.failures,
                    retries: r.retries,
                });
            }
        }
        let unseen = run.objects.saturating_sub(seen);
        if unseen > 0 {
            *counts
                .entry(ObjectState::Waiting.as_str().to_string())
                .or_default() += unseen;
        }
        matching.sort_by_key(|o| o.id);
        let total = matching.len();
        let objects = matching
            .into_iter()
            .skip(query.offset)
            .take(limit)
            .collect();
        RunView {
            run,
            counts,
            matching: total,
            offset: query.offset,
            limit,
            objects,
        }
    }
}
