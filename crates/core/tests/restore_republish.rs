//! A server's restart (`InFlightOnRestore::Republish`): attempts that were in flight are sent
//! again under the same attempt moments after the start, instead of waiting out their lease,
//! unless their worker reports first; a late result of that attempt is still taken, and a
//! cancelled run's in-flight attempts are only re-armed.

use orchestrator_core::graph::{LoadOptions, load_graph};
use orchestrator_core::plan::Selection;
use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    Action, Event, InFlightOnRestore, ObjectState, Run, RunHeader, RunSnapshot, SchedulerConfig,
};
use orchestrator_protocol::{ObjectId, RunId};
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
    let mut run = Run::new(g.clone(), config(), RunHeader::new(RunId::new("r"), 1));
    let mut out = Vec::new();
    run.start(0, &mut out);
    assert_eq!(dispatched(&out), vec![(0, 1), (1, 1)]);
    let stored = run.snapshot();

    let republish = InFlightOnRestore::Republish { after_ms: 2_000 };
    let mut restored = restore(&g, stored.clone(), republish);
    out.clear();
    restored.start(10, &mut out);
    assert!(
        dispatched(&out).is_empty(),
        "the results on the bus are read first"
    );
    // 1001's result was on the bus: taken, and nothing of it is sent again.
    restored.handle(
        Event::Loaded {
            id: ObjectId(1001),
            attempt: Some(1),
            report: Default::default(),
        },
        500,
        &mut out,
    );
    out.clear();
    restored.tick(2_009, &mut out);
    assert!(dispatched(&out).is_empty(), "{out:?}");
    restored.tick(2_010, &mut out);
    assert_eq!(
        dispatched(&out),
        vec![(1, 1)],
        "1002's attempt sent again, same attempt"
    );
    // The worker that had the first copy answers: taken, and the child goes out.
    out.clear();
    restored.handle(
        Event::Loaded {
            id: ObjectId(1002),
            attempt: Some(1),
            report: Default::default(),
        },
        2_020,
        &mut out,
    );
    assert_eq!(dispatched(&out), vec![(2, 1)]);
    assert_eq!(restored.record(1).state, ObjectState::Loaded);
    // Never retried: the start timeout and the lease are far away.
    out.clear();
    restored.tick(100_000, &mut out);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Expired { .. })),
        "{out:?}"
    );

    // A cancelled run sends nothing again: its in-flight attempts wait under a fresh lease.
    let mut stored = stored;
    stored.header.cancelled = true;
    let mut cancelled = restore(&g, stored, republish);
    out.clear();
    cancelled.start(10, &mut out);
    cancelled.tick(5_000, &mut out);
    assert!(dispatched(&out).is_empty(), "{out:?}");
    assert_eq!(cancelled.record(0).state, ObjectState::Running);
}

fn restore(g: &Arc<RunGraph>, stored: RunSnapshot, policy: InFlightOnRestore) -> Run {
    Run::from_snapshot(g.clone(), config(), stored, policy).unwrap_or_else(|e| panic!("{e}"))
}
