//! Scenario tests of a run stopped and continued: cancel, rerun of the failures, resume.

use super::*;

#[test]
fn cancel_stops_dispatch_but_records_in_flight_results() {
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.cancel(1, &mut out);
    assert_eq!(run.status(), RunStatus::Cancelling);
    out.clear();
    run.handle(loaded_event(id(1000), Some(1)), 2, &mut out);
    assert!(dispatched(&out).is_empty());
    run.handle(
        failed_event(id(1001), Some(1), "x".into(), true),
        2,
        &mut out,
    );
    assert!(run.is_finished());
    let s = run.summary();
    assert_eq!((s.loaded, s.cancelled), (1, 4));
}

#[test]
fn reset_failed_reruns_only_what_did_not_load_with_new_attempts() {
    let config = SchedulerConfig {
        max_retries: 0,
        ..Default::default()
    };
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(loaded_event(id(1000), Some(1)), 1, &mut out);
    run.handle(loaded_event(id(1001), Some(1)), 1, &mut out);
    run.handle(loaded_event(id(2001), Some(1)), 1, &mut out);
    run.handle(
        failed_event(id(2000), Some(1), "x".into(), true),
        1,
        &mut out,
    );
    assert!(run.is_finished());
    out.clear();
    assert_eq!(run.reset_failed(2, &mut out), 2);
    assert_eq!(dispatched(&out), vec![(1, 2)]);
    run.handle(loaded_event(id(2000), Some(2)), 3, &mut out);
    run.handle(loaded_event(id(3000), Some(1)), 3, &mut out);
    assert!(run.is_finished() && run.summary().all_loaded());
}

#[test]
fn restored_run_resends_in_flight_attempts_and_never_loaded_ones() {
    let graph = diamond();
    let mut run = new_run(graph.clone(), SchedulerConfig::default(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(loaded_event(id(1000), Some(1)), 1, &mut out);
    run.handle(
        Event::Started {
            id: id(2000),
            attempt: 1,
        },
        1,
        &mut out,
    );
    let stored = run.snapshot();
    let mut resumed = Run::from_snapshot(
        graph.clone(),
        SchedulerConfig::default(),
        stored.clone(),
        InFlightOnRestore::Resend,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.clear();
    resumed.start(5, &mut out);
    let mut sent = dispatched(&out);
    sent.sort();
    // 2000, 2001 and 1001 were in flight: sent again with the same attempt; 1000 is loaded.
    assert_eq!(sent, vec![(1, 1), (2, 1), (4, 1)]);

    // Distributed: left with their workers under a fresh lease; a late result is accepted,
    // and an attempt whose worker is gone expires at the lease's end and is retried.
    let config = SchedulerConfig {
        lease_ms: 100,
        ..Default::default()
    };
    let mut rearmed = Run::from_snapshot(graph, config, stored, InFlightOnRestore::Rearm)
        .unwrap_or_else(|e| panic!("{e}"));
    out.clear();
    rearmed.start(1_000, &mut out);
    assert!(dispatched(&out).is_empty(), "{out:?}");
    assert_eq!(rearmed.in_flight(Zone::Standardized), 2);
    rearmed.handle(loaded_event(id(2000), Some(1)), 1_010, &mut out);
    rearmed.handle(
        Event::Heartbeat {
            id: id(2001),
            attempt: 1,
        },
        1_050,
        &mut out,
    );
    out.clear();
    rearmed.tick(1_120, &mut out);
    let expired: Vec<u32> = out
        .iter()
        .filter_map(|a| {
            if let Action::Expired { index, .. } = a {
                Some(*index)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        expired,
        vec![4],
        "only 1001, with no heartbeat, expired: {out:?}"
    );
}
