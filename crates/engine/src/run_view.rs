//! What the HTTP API shows of one run: counts per state and a page of its objects, built the same
//! way from a run held in memory or from the records of the store.

use orchestrator_core::scheduler::{ObjectRecord, ObjectState, RunSummary};
use orchestrator_protocol::ObjectId;
use orchestrator_store::{RunHeader, RunOutcome};
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

/// A run as users see it, in the API and in `status --json`: its header with its summary.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub header: RunHeader,
    /// How it stands or ended: `running`, `succeeded`, `failed`, `cancelled`, `interrupted`.
    pub outcome: RunOutcome,
    pub summary: RunSummary,
}

impl From<RunHeader> for RunReport {
    fn from(header: RunHeader) -> Self {
        RunReport {
            summary: header.counts.summary(),
            outcome: header.outcome(),
            header,
        }
    }
}

/// One object's state in a run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectView {
    pub id: ObjectId,
    pub state: ObjectState,
    pub attempt: u32,
    pub failures: u32,
    pub retries: u32,
    /// A failed object's reason (its dead letter's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run with its counts and one page of its objects, ordered by id.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunView {
    pub run: RunReport,
    /// Objects per state (every object of the run, whatever the page).
    pub counts: BTreeMap<String, usize>,
    /// Objects that match the query's state filter.
    pub matching: usize,
    pub offset: usize,
    pub limit: usize,
    pub objects: Vec<ObjectView>,
}

impl RunView {
    /// Gives each failed object of the page its reason, from the run's dead letters.
    pub fn with_reasons(mut self, dead_letters: &[orchestrator_store::DeadLetter]) -> RunView {
        for o in &mut self.objects {
            if o.state == ObjectState::Failed {
                o.reason = dead_letters
                    .iter()
                    .find(|d| d.id == o.id)
                    .map(|d| d.reason.clone());
            }
        }
        self
    }

    /// Builds the view: the counts are the run's own (kept with every change, read at O(1));
    /// the page comes from `records`, which must come in id order: they are read only as far
    /// as the page reaches. Objects the stored records do not name never changed: they are
    /// waiting, and counted so.
    pub fn build(
        run: RunHeader,
        records: impl Iterator<Item = (ObjectId, ObjectRecord)>,
        query: &ObjectQuery,
    ) -> RunView {
        let limit = query.limit.min(MAX_PAGE);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for state in ObjectState::ALL {
            let n = run.counts.in_state(state);
            if n > 0 {
                counts.insert(state.as_str().to_string(), n);
            }
        }
        let total = match query.state {
            Some(state) => run.counts.in_state(state),
            None => run.objects,
        };
        let objects = records
            .filter(|(_, r)| query.state.is_none_or(|s| s == r.state))
            .skip(query.offset)
            .take(limit)
            .map(|(id, r)| ObjectView {
                id,
                state: r.state,
                attempt: r.attempt,
                failures: r.failures,
                retries: r.retries,
                reason: None,
            })
            .collect();
        RunView {
            run: run.into(),
            counts,
            matching: total,
            offset: query.offset,
            limit,
            objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::scheduler::ObjectRecord;
    use orchestrator_protocol::RunId;

    #[test]
    fn a_page_is_read_in_id_order_with_the_runs_own_counts() {
        let mut header = RunHeader::new(RunId::new("r"), 1);
        header.objects = 5;
        header.counts.zones[0].objects = 5;
        header.counts.zones[0].loaded = 3;
        header.counts.zones[0].waiting = 2;
        let state = |i: u64| {
            if i.is_multiple_of(2) {
                ObjectState::Loaded
            } else {
                ObjectState::Waiting
            }
        };
        let records = (0..5u64).map(|i| {
            let record = ObjectRecord {
                state: state(i),
                ..ObjectRecord::default()
            };
            (ObjectId(1000 + i), record)
        });
        let query = ObjectQuery {
            offset: 1,
            limit: 1,
            state: Some(ObjectState::Loaded),
        };
        let view = RunView::build(header, records, &query);
        let ids: Vec<u64> = view.objects.iter().map(|o| o.id.0).collect();
        assert_eq!(ids, [1002]);
        assert_eq!(view.matching, 3);
        assert_eq!(view.counts.get("waiting"), Some(&2));
    }
}
