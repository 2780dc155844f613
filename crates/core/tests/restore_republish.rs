//! A server's restart (`InFlightOnRestore::Republish`): attempts that were in flight are sent
//! again at once under the same attempt, instead of waiting out their lease; a late result of
//! that attempt is still taken, and a cancelled run's in-flight attempts are only re-armed.

use orchestrator_core::graph::{LoadOptions, load_graph};
use orchestrator_core::plan::Selection;
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    Action, Event, InFlightOnRestore, ObjectState, Run, SchedulerConfig,
};
use orchestrator_protocol::ObjectId;
use std::sync::Arc;

fn graph() -> Arc<RunGraph> {
    let text = r#"[{"IdObjet":1001,"Zone":"1-Raw"},{"IdObjet":1002,"Zone":"1-Raw"},
        {"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":"1001,1002"}]"#;
    let g = load_graph(text, LoadOptions::default())
        .graph
        .unwrap_or_else(|| panic!("sample graph"));
    Arc::new(RunGraph::new(&g, &Selection::all(&g)))
}

fn dispatched(out: &[Action]) -> Vec<(u32, u32)> {
    let mut d: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch { index, attempt } => Some((*index, *attempt)),
            _ => None,
        })
        .collect();
    d.sort();
    d
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        lease_ms: 30_000,
        schedule_to_start_ms: Some(300_000),
        ..SchedulerConfig::default()
    }
}

#[test]
fn in_flight_attempts_go_out_again_at_once_with_the_same_attempt() {
    let g = graph();
    let mut run = Run::new(g.clone(), config(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    assert_eq!(dispatched(&out), vec![(0, 1), (1, 1)]);
    let records = run.records().to_vec();

    let mut restored = Run::restore(
        g.clone(),
        config(),
        1,
        records.clone(),
        false,
        InFlightOnRestore::Republish,
    );
    out.clear();
    restored.start(10, &mut out);
    assert_eq!(dispatched(&out), vec![(0, 1), (1, 1)], "sent again at once");
    // The worker that had the first copy answers: taken, and the child goes out.
    for id in [1001, 1002] {
        restored.handle(
            Event::Loaded {
                id: ObjectId(id),
                attempt: Some(1),
            },
            20,
            &mut out,
        );
    }
    assert_eq!(restored.record(2).state, ObjectState::Dispatched);
    assert_eq!(restored.record(0).state, ObjectState::Loaded);

    // A cancelled run sends nothing again: its in-flight attempts wait under a fresh lease.
    let mut cancelled = Run::restore(g, config(), 1, records, true, InFlightOnRestore::Republish);
    out.clear();
    cancelled.start(10, &mut out);
    assert!(dispatched(&out).is_empty(), "{out:?}");
    assert_eq!(cancelled.record(0).state, ObjectState::Running);
}
