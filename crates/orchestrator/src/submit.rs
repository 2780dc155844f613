//! From submitted object definitions to a run ready to start: validation, selection, the run's
//! record. Shared by `serve`'s OBJECTS_PATH, the HTTP API and the embedded run's ids.

use crate::clock::now_ms;
use crate::store::{RunMeta, RunStatus};
use orchestrator_core::diagnostics::{Problem, Report, Severity};
use orchestrator_core::graph::{LoadOptions, MissingParents, load_graph};
use orchestrator_core::plan::{Selection, SelectionError, ZoneCounts};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{Run, SchedulerConfig};
use orchestrator_protocol::{ObjectId, RunId};
use std::sync::Arc;

/// What a user submits.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The object definitions: the JSON text of the file.
    pub text: String,
    /// Where it came from (a path, `api`), kept with the run.
    pub source: String,
    /// Build only these and their ancestors; empty for every object.
    pub targets: Vec<ObjectId>,
    /// A parent that is not in the file counts as loaded elsewhere.
    pub missing_parents_external: bool,
    /// Warnings are errors.
    pub strict: bool,
    /// Larger objects are refused (`MAX_OBJECT_BYTES`).
    pub max_object_bytes: usize,
}

/// A run that passed validation, with what to tell the submitter.
pub struct PreparedRun {
    pub meta: RunMeta,
    pub run: Run,
    /// The definitions, stored with the run so another process can take it over.
    pub objects: Arc<String>,
    /// Objects of the run per zone.
    pub zones: ZoneCounts,
    pub warnings: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "invalid object definitions: {} error(s), {} warning(s)",
        .0.error_count(),
        .0.warning_count()
    )]
    Invalid(Report),
    #[error(transparent)]
    Selection(#[from] SelectionError),
}

/// Validates `submission` and builds its run (not started).
pub fn prepare_run(
    submission: Submission,
    config: &SchedulerConfig,
) -> Result<PreparedRun, SubmitError> {
    let options = LoadOptions {
        missing_parents: if submission.missing_parents_external {
            MissingParents::External
        } else {
            MissingParents::Error
        },
        strict: submission.strict,
        max_object_bytes: submission.max_object_bytes,
    };
    let loaded = load_graph(submission.text, options);
    let Some(graph) = loaded.graph else {
        return Err(SubmitError::Invalid(loaded.report));
    };
    // Stored as its objects, compact: never the body as it came (padding included).
    let objects = Arc::new(graph.to_compact_json());
    let selection = Selection::for_targets(&graph, &submission.targets, None)?;
    let run_graph = Arc::new(RunGraph::new(&graph, &selection));
    drop(graph);
    let mut zones = ZoneCounts::default();
    for n in &run_graph.nodes {
        zones.add(n.zone);
    }
    let seed = fastrand::u64(..);
    let now = now_ms();
    let meta = RunMeta {
        run_id: new_run_id(seed),
        graph_version: run_graph.version().to_string(),
        source: submission.source,
        created_ms: now,
        updated_ms: now,
        status: RunStatus::Running,
        cancelled: false,
        seed,
        objects: run_graph.len(),
        summary: None,
        targets: submission.targets,
        missing_parents_external: submission.missing_parents_external,
        zone: None,
    };
    let warnings = loaded
        .report
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    Ok(PreparedRun {
        meta,
        run: Run::new(run_graph, config.clone(), seed),
        objects,
        zones,
        warnings,
    })
}

/// `run-20261122-071500-3fa2`: sortable, readable, unique enough for one store.
pub fn new_run_id(seed: u64) -> RunId {
    let secs = now_ms() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    RunId::new(format!(
        "run-{year:04}{month:02}{day:02}-{:02}{:02}{:02}-{:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        seed & 0xffff
    ))
}
