//! Scenario tests of the scheduler: retries, dead letters, leases, limits, cancel, reset, resume.

use super::*;
use crate::objects::Criticality;
use crate::run_graph::{RunGraph, RunNode};
use orchestrator_protocol::{ObjectId, Zone};
use std::sync::Arc;

/// a(1000) -> b(2000) -> d(3000); a -> c(2001) -> d; e(1001) alone.
fn diamond() -> Arc<RunGraph> {
    let raw = orchestrator_protocol::RawJson::from_string("{}".into());
    let node = |id: u64, zone: Zone, criticality| RunNode {
        id: ObjectId(id),
        zone,
        criticality,
        name: id.to_string(),
        raw: raw.clone(),
    };
    let nodes = vec![
        node(1000, Zone::Raw, Criticality::Low),
        node(2000, Zone::Standardized, Criticality::Low),
        node(2001, Zone::Standardized, Criticality::High),
        node(3000, Zone::Application, Criticality::Low),
        node(1001, Zone::Raw, Criticality::Low),
    ];
    Arc::new(
        RunGraph::from_parents(nodes, vec![vec![], vec![0], vec![0], vec![1, 2], vec![]])
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn dispatched(out: &[Action]) -> Vec<(u32, u32)> {
    out.iter()
        .filter_map(|a| {
            if let Action::Dispatch { index, attempt } = a {
                Some((*index, *attempt))
            } else {
                None
            }
        })
        .collect()
}

fn new_run(graph: Arc<RunGraph>, config: SchedulerConfig, seed: u64) -> Run {
    Run::new(
        graph,
        config,
        RunHeader::new(orchestrator_protocol::RunId::new("t"), seed),
    )
}

fn id(i: u64) -> ObjectId {
    ObjectId(i)
}

/// A worker's Loaded of `attempt` (`None`: an old worker's, for the current attempt).
fn loaded_event(id: ObjectId, attempt: Option<u32>) -> Event {
    Event::Loaded {
        id,
        attempt,
        report: Default::default(),
    }
}

/// A worker's Failed of `attempt`.
fn failed_event(id: ObjectId, attempt: Option<u32>, reason: String, retryable: bool) -> Event {
    Event::Failed {
        id,
        attempt,
        reason,
        retryable,
        report: Default::default(),
    }
}

#[test]
fn releases_children_once_when_all_parents_loaded() {
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    // The longest path goes first: 1000 (rank 3) before 1001 (rank 1).
    assert_eq!(dispatched(&out), vec![(0, 1), (4, 1)]);
    out.clear();
    run.handle(loaded_event(id(1000), Some(1)), 1, &mut out);
    // Both standardized children; the high-criticality one first on equal rank.
    assert_eq!(dispatched(&out), vec![(2, 1), (1, 1)]);
    out.clear();
    run.handle(loaded_event(id(2000), Some(1)), 2, &mut out);
    assert!(dispatched(&out).is_empty());
    run.handle(loaded_event(id(2000), Some(1)), 2, &mut out);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Ignored {
            reason: IgnoredReason::AlreadyFinished,
            ..
        }
    )));
    out.clear();
    run.handle(loaded_event(id(2001), None), 3, &mut out);
    assert_eq!(dispatched(&out), vec![(3, 1)]);
    run.handle(loaded_event(id(3000), Some(1)), 4, &mut out);
    run.handle(loaded_event(id(1001), Some(1)), 4, &mut out);
    assert!(run.is_finished());
    assert_eq!(out.last(), Some(&Action::Finished));
    assert!(run.summary().all_loaded());
}

#[test]
fn retries_with_backoff_then_dead_letters_and_fails_only_descendants() {
    let config = SchedulerConfig {
        max_retries: 2,
        ..Default::default()
    };
    let mut run = new_run(diamond(), config, 7);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(loaded_event(id(1000), Some(1)), 0, &mut out);
    let mut now = 10;
    for attempt in 1..=3 {
        out.clear();
        run.handle(
            failed_event(id(2000), Some(attempt), "x".into(), true),
            now,
            &mut out,
        );
        if attempt < 3 {
            let delay = out.iter().find_map(|a| {
                if let Action::RetryScheduled { delay_ms, .. } = a {
                    Some(*delay_ms)
                } else {
                    None
                }
            });
            let delay = delay.unwrap_or_else(|| panic!("no retry scheduled: {out:?}"));
            assert!(
                (500..=1000 * (1 << (attempt - 1))).contains(&delay),
                "delay {delay}"
            );
            // Nothing is re-sent before the backoff is over.
            out.clear();
            run.tick(now + delay - 1, &mut out);
            assert!(dispatched(&out).is_empty());
            now += delay;
            run.tick(now, &mut out);
            assert_eq!(dispatched(&out), vec![(1, attempt + 1)]);
        } else {
            assert!(
                out.iter().any(|a| matches!(
                    a,
                    Action::DeadLettered {
                        index: 1,
                        upstream_failed: 1,
                        ..
                    }
                )),
                "{out:?}"
            );
        }
    }
    run.handle(loaded_event(id(2001), Some(1)), now, &mut out);
    run.handle(loaded_event(id(1001), Some(1)), now, &mut out);
    assert!(run.is_finished());
    let s = run.summary();
    assert_eq!(
        (s.loaded, s.failed, s.upstream_failed, s.retries),
        (3, 1, 1, 2)
    );
    assert_eq!(run.record(3).state, ObjectState::UpstreamFailed);
}

#[test]
fn non_retryable_failures_are_not_retried_and_stale_failures_are_ignored() {
    let mut run = new_run(diamond(), SchedulerConfig::default(), 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    run.handle(
        failed_event(id(1000), Some(9), "old".into(), true),
        1,
        &mut out,
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Ignored {
            reason: IgnoredReason::StaleAttempt,
            ..
        }
    )));
    run.handle(
        failed_event(id(1000), Some(1), "bad input".into(), false),
        1,
        &mut out,
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::DeadLettered {
            index: 0,
            upstream_failed: 3,
            ..
        }
    )));
    run.handle(loaded_event(id(4242), Some(1)), 1, &mut out);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Ignored {
            reason: IgnoredReason::UnknownObject,
            ..
        }
    )));
}

#[test]
fn lease_runs_from_started_and_heartbeats_renew_it() {
    let config = SchedulerConfig {
        lease_ms: 100,
        ..Default::default()
    };
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    // Waiting in a queue: no lease yet, nothing expires.
    run.tick(10_000, &mut out);
    assert!(!out.iter().any(|a| matches!(a, Action::Expired { .. })));
    run.handle(
        Event::Started {
            id: id(1000),
            attempt: 1,
        },
        10_000,
        &mut out,
    );
    run.handle(
        Event::Heartbeat {
            id: id(1000),
            attempt: 1,
        },
        10_090,
        &mut out,
    );
    run.tick(10_150, &mut out);
    assert!(!out.iter().any(|a| matches!(a, Action::Expired { .. })));
    out.clear();
    run.tick(10_190, &mut out);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Expired {
                index: 0,
                attempt: 1,
                ..
            }
        )),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::RetryScheduled { index: 0, .. }))
    );
    // The late result of the expired attempt is still accepted: the work was done.
    out.clear();
    run.handle(loaded_event(id(1000), Some(1)), 10_200, &mut out);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::ResultAccepted {
            index: 0,
            loaded: true,
            ..
        }
    )));
    assert_eq!(dispatched(&out).len(), 2);
}

#[test]
fn schedule_to_start_timeout_covers_lost_ready_events() {
    let config = SchedulerConfig {
        schedule_to_start_ms: Some(50),
        ..Default::default()
    };
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    out.clear();
    run.tick(50, &mut out);
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Expired { .. }))
            .count(),
        2
    );
}

#[test]
fn zone_limit_holds_work_back_in_priority_order() {
    let mut config = SchedulerConfig::default();
    config.zones[Zone::Raw.index()].max_in_flight = Some(1);
    let mut run = new_run(diamond(), config, 1);
    let mut out = Vec::new();
    run.start(0, &mut out);
    assert_eq!(dispatched(&out), vec![(0, 1)]);
    assert_eq!(run.in_flight(Zone::Raw), 1);
    assert_eq!(run.waiting(Zone::Raw), 1);
    out.clear();
    run.handle(loaded_event(id(1000), Some(1)), 1, &mut out);
    assert!(dispatched(&out).contains(&(4, 1)));
}

mod attempts_and_retry;
mod stop_and_resume;
