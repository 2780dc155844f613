//! One object of a run as an operator looks at it: its definition, state, neighbours, the
//! failed ancestor that blocks it, and its attempts (read from the store, outputs apart).

use orchestrator_core::scheduler::{AttemptOutcome, AttemptRecord, ObjectState, Run};
use orchestrator_protocol::{ObjectId, RawJson, RunId, Zone};
use serde::Serialize;
use std::collections::{HashSet, VecDeque};

/// An object of a run with everything known of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
pub struct ObjectDetail {
    pub run_id: RunId,
    pub id: ObjectId,
    pub name: String,
    pub zone: Zone,
    pub state: ObjectState,
    /// The latest attempt (0: never dispatched).
    pub attempt: u32,
    pub failures: u32,
    pub retries: u32,
    pub parents: Vec<ObjectId>,
    pub children: Vec<ObjectId>,
    /// For an upstream-failed object, the nearest failed ancestor that blocks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<ObjectId>,
    /// The object as it was submitted.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub definition: RawJson,
    /// Every ended attempt, oldest first (see `attempts/{n}/output` for each one's output).
    pub attempts: Vec<AttemptView>,
}

/// One ended attempt without its output, which may be long.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub info: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub worker: String,
    pub dispatched_ms: u64,
    pub started_ms: u64,
    pub ended_ms: u64,
    pub duration_ms: u64,
    /// Bytes of output kept (0: the handler wrote nothing, or its worker sends none).
    pub output_bytes: usize,
    /// Its handler only pretended (`simulate`): no data was loaded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        AttemptView {
            attempt: a.attempt,
            outcome: a.outcome,
            reason: a.reason().to_string(),
            info: a.info().to_string(),
            worker: a.worker().to_string(),
            dispatched_ms: a.dispatched_ms,
            started_ms: a.started_ms,
            ended_ms: a.ended_ms,
            duration_ms: a.duration_ms,
            output_bytes: a.output().len(),
            simulated: a.simulated,
        }
    }
}

impl ObjectDetail {
    /// Object `id` of `run` (`None` if the run has no such object); its attempts are for the
    /// caller to add from the store.
    pub fn of(run: &Run, id: ObjectId) -> Option<ObjectDetail> {
        let graph = run.graph();
        let i = graph.index_of(id)?;
        let record = run.record(i);
        let ids = |list: &[u32]| list.iter().map(|&p| graph.id(p)).collect::<Vec<_>>();
        Some(ObjectDetail {
            run_id: run.header().run_id.clone(),
            id,
            name: graph.name(i).to_string(),
            zone: graph.zone(i),
            state: record.state,
            attempt: record.attempt,
            failures: record.failures,
            retries: record.retries,
            parents: ids(graph.parents(i)),
            children: ids(graph.children(i)),
            blocked_by: (record.state == ObjectState::UpstreamFailed)
                .then(|| blocking_ancestor(run, i))
                .flatten(),
            definition: graph.node(i).raw.clone(),
            attempts: Vec::new(),
        })
    }
}

impl ObjectDetail {
    /// The detail with its ended attempts, as the store gives them (outputs left out).
    pub fn with_attempts(self, attempts: &[AttemptRecord]) -> ObjectDetail {
        ObjectDetail {
            attempts: attempts.iter().map(AttemptView::from).collect(),
            ..self
        }
    }
}

/// The nearest failed ancestor of object `i` (breadth first through its parents).
pub fn blocking_ancestor(run: &Run, i: u32) -> Option<ObjectId> {
    let graph = run.graph();
    let mut seen: HashSet<u32> = HashSet::new();
    let mut queue: VecDeque<u32> = graph.parents(i).iter().copied().collect();
    while let Some(p) = queue.pop_front() {
        if !seen.insert(p) {
            continue;
        }
        match run.record(p).state {
            ObjectState::Failed => return Some(graph.id(p)),
            ObjectState::UpstreamFailed => queue.extend(graph.parents(p)),
            _ => {}
        }
    }
    None
}
