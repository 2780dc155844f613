//! One way to open a run: new, from object definitions (a file, an API submission), or again
//! from its stored snapshot (after a crash, on a standby's takeover, to resume or rerun it).
//! Commands and the API call these and only map the outcome to exit codes or statuses.

use orchestrator_core::diagnostics::{Problem, Report, Severity};
use orchestrator_core::graph::{Graph, LoadOptions, load_graph};
use orchestrator_core::plan::{Selection, SelectionError, ZoneCounts};
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    GraphMismatch, InFlightOnRestore, Run, RunHeader, RunOptions, RunSnapshot, SchedulerConfig,
};
use orchestrator_protocol::RunId;
use orchestrator_store::{StateStore, StoreError};
use std::sync::Arc;

/// What a user submits.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The object definitions: the JSON text of the file.
    pub text: String,
    /// Where it came from (a path, `api`), kept with the run.
    pub source: String,
    /// The selection and missing-parents rule the run is started with, kept with it.
    pub options: RunOptions,
    /// The run's seed; `None` draws one.
    pub seed: Option<u64>,
    /// Warnings are errors.
    pub strict: bool,
    /// Larger objects are refused (`MAX_OBJECT_BYTES`).
    pub max_object_bytes: usize,
    /// The run's id; `None` makes one of the time and seed (a schedule names its runs by tick).
    pub run_id: Option<RunId>,
}

/// A new run that passed validation, with what to tell the submitter.
pub struct PreparedRun {
    pub run: Run,
    /// The definitions as compact JSON, stored with the run so another process can take it
    /// over.
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

/// Why a stored run cannot be opened again.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0}: its object definitions are not in the store")]
    NoObjects(RunId),
    #[error("run {run}: its stored objects no longer validate: {why}")]
    Invalid { run: RunId, why: String },
    #[error("run {run}: {source}")]
    Selection { run: RunId, source: SelectionError },
    #[error(transparent)]
    GraphMismatch(#[from] GraphMismatch),
}

/// Validates `submission` and opens its run (not started) at `now_ms`.
pub fn open_new(
    submission: Submission,
    config: &SchedulerConfig,
    now_ms: u64,
) -> Result<PreparedRun, SubmitError> {
    let options = LoadOptions {
        missing_parents: submission.options.missing_parents,
        strict: submission.strict,
        max_object_bytes: submission.max_object_bytes,
    };
    let loaded = load_graph(submission.text, options);
    let Some(graph) = loaded.graph else {
        return Err(SubmitError::Invalid(loaded.report));
    };
    let warnings = loaded
        .report
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    let mut header = new_header(
        submission.source,
        submission.options,
        submission.seed,
        now_ms,
    );
    if let Some(id) = submission.run_id {
        header.run_id = id;
    }
    let (run, objects) = open_on_graph(graph, header, config)?;
    let mut zones = ZoneCounts::default();
    for n in run.graph().nodes() {
        zones.add(n.zone);
    }
    Ok(PreparedRun {
        run,
        objects,
        zones,
        warnings,
    })
}

/// The header of a new run from `source` started at `now_ms` with `options`; `seed` `None`
/// draws one. Its id is made of the time and the seed.
pub fn new_header(
    source: impl Into<String>,
    options: RunOptions,
    seed: Option<u64>,
    now_ms: u64,
) -> RunHeader {
    let seed = seed.unwrap_or_else(|| fastrand::u64(..));
    RunHeader::new(new_run_id(seed, now_ms), seed)
        .with_source(source)
        .with_options(options)
        .created_at(now_ms)
}

/// A new run on a validated graph: its selection cut out as the header's options say. Returns
/// the run and the objects to store with it (compact: never the text as it came).
pub fn open_on_graph(
    mut graph: Graph,
    header: RunHeader,
    config: &SchedulerConfig,
) -> Result<(Run, Arc<String>), SelectionError> {
    // From here on the objects live in their compact text alone, shared by the run's graph
    // (for the Ready events) and the store: the submitted text is let go.
    let objects = graph.rebase_on_compact();
    let run_graph = run_graph(graph, &header.options)?;
    Ok((Run::new(run_graph, config.clone(), header), objects))
}

fn run_graph(graph: Graph, options: &RunOptions) -> Result<Arc<RunGraph>, SelectionError> {
    let selection = Selection::for_targets(&graph, &options.targets, options.zone)?;
    Ok(Arc::new(RunGraph::from_graph(graph, &selection)))
}

/// Opens a stored run again: its graph rebuilt from the objects stored with it and the options
/// it was started with, its records as stored, its in-flight attempts dealt with as `policy`
/// says. Not started: the caller starts it (and may rerun its failures).
pub async fn open_stored(
    store: &dyn StateStore,
    header: RunHeader,
    config: &SchedulerConfig,
    policy: InFlightOnRestore,
) -> Result<Run, OpenError> {
    let run_id = header.run_id.clone();
    let objects = store
        .graph(&run_id)
        .await?
        .ok_or_else(|| OpenError::NoObjects(run_id.clone()))?;
    let loaded = load_graph(
        objects,
        LoadOptions {
            missing_parents: header.options.missing_parents,
            strict: false,
            // Accepted once: the limit of the day it was submitted holds.
            max_object_bytes: usize::MAX,
        },
    );
    let graph = loaded.graph.ok_or_else(|| OpenError::Invalid {
        run: run_id.clone(),
        why: loaded.report.render(None),
    })?;
    let graph = run_graph(graph, &header.options).map_err(|source| OpenError::Selection {
        run: run_id.clone(),
        source,
    })?;
    open_snapshot(store, graph, header, config, policy).await
}

/// Opens a stored run on a graph the caller rebuilt (the embedded run's `--resume` reads its
/// file again): refused if it is not the graph the run was started on.
pub async fn open_snapshot(
    store: &dyn StateStore,
    graph: Arc<RunGraph>,
    header: RunHeader,
    config: &SchedulerConfig,
    policy: InFlightOnRestore,
) -> Result<Run, OpenError> {
    let records = store.objects(&header.run_id).await?;
    let snapshot = RunSnapshot { header, records };
    Ok(Run::from_snapshot(graph, config.clone(), snapshot, policy)?)
}

/// `run-20261122-071500-3fa2`: sortable, readable, unique enough for one store.
fn new_run_id(seed: u64, now_ms: u64) -> RunId {
    let secs = now_ms / 1000;
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
