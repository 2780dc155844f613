//! Opens a schedule: the catalog's definitions validated (frequencies included), each object's
//! latest load from `Lastrun` and then from the store's catalog, and the schedule's state as
//! the store last kept it.

use orchestrator_core::diagnostics::{Problem, Report, Severity};
use orchestrator_core::graph::{LoadOptions, MissingParents, load_graph};
use orchestrator_core::schedule::{Catalog, Catchup, ScheduleZone, Timetable};
use orchestrator_store::{StateStore, StoreError};

/// How a schedule reads its catalog and ticks.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleSettings {
    /// `SCHEDULE_TIMEZONE`.
    pub zone: ScheduleZone,
    /// `SCHEDULE_CATCHUP`.
    pub catchup: Catchup,
    pub missing_parents: MissingParents,
    pub max_object_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleOpenError {
    #[error(
        "invalid catalog: {} error(s), {} warning(s)",
        .0.error_count(),
        .0.warning_count()
    )]
    Invalid(Report),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The timetable of the definitions in `text` at `now_ms`, with its warnings.
pub async fn open_timetable(
    store: &dyn StateStore,
    text: String,
    settings: &ScheduleSettings,
    now_ms: u64,
) -> Result<(Timetable, Vec<Problem>), ScheduleOpenError> {
    let options = LoadOptions {
        missing_parents: settings.missing_parents,
        strict: false,
        max_object_bytes: settings.max_object_bytes,
    };
    let loaded = load_graph(text, options);
    let Some(graph) = loaded.graph else {
        return Err(ScheduleOpenError::Invalid(loaded.report));
    };
    let (mut catalog, report) = Catalog::from_graph(&graph, settings.zone, now_ms);
    if report.error_count() > 0 {
        return Err(ScheduleOpenError::Invalid(report));
    }
    for (id, load) in store.latest_loads().await? {
        if let Some(&i) = graph.index.get(&id) {
            let slot = &mut catalog.loaded[i as usize];
            if slot.is_none_or(|at| at < load.at_ms) {
                *slot = Some(load.at_ms);
            }
        }
    }
    let state = store.schedule_state().await?.unwrap_or_default();
    let warnings = loaded
        .report
        .problems
        .into_iter()
        .chain(report.problems)
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    let timetable = Timetable::new(
        graph,
        catalog,
        settings.zone,
        settings.catchup,
        state,
        now_ms,
    );
    Ok((timetable, warnings))
}
