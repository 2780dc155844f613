//! Property tests of the scheduler over random DAGs and random worker behaviour: results lost,
//! duplicated, reordered, stale and failing. Every trace is checked against the run's guarantees.

mod common;

use orchestrator_core::run_graph::RunGraph;
use orchestrator_core::scheduler::{
    Action, Event, ObjectState, Run, RunHeader, SchedulerConfig, ZonePolicy,
};
use orchestrator_protocol::{ObjectId, RunId, Zone};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Clone, Debug)]
struct Case {
    zones: Vec<u8>,
    parents: Vec<Vec<u32>>,
    max_retries: u32,
    limits: [Option<u32>; 3],
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..40)
        .prop_flat_map(|n| {
            let parents = (0..n)
                .map(|i| proptest::collection::vec(0..(i.max(1) as u32), 0..=(i.min(3))))
                .collect::<Vec<_>>();
            (
                proptest::collection::vec(0u8..3, n),
                parents,
                0u32..4,
                proptest::array::uniform3(proptest::option::of(1u32..4)),
                any::<u64>(),
            )
        })
        // The graph keeps parents of lower indices only, once each: a DAG (`common::graph`).
        .prop_map(|(zones, parents, max_retries, limits, seed)| Case {
            zones,
            parents,
            max_retries,
            limits,
            seed,
        })
}

fn build(case: &Case) -> Arc<RunGraph> {
    common::graph(&case.zones, case.parents.clone())
}

fn config(case: &Case) -> SchedulerConfig {
    let mut c = SchedulerConfig {
        max_retries: case.max_retries,
        lease_ms: 50,
        schedule_to_start_ms: Some(80),
        ..Default::default()
    };
    for (z, limit) in case.limits.iter().enumerate() {
        c.zones[z] = ZonePolicy {
            max_in_flight: *limit,
            backoff_base_ms: 10,
            backoff_cap_ms: 40,
        };
    }
    c
}

/// Drives a run with a seeded, misbehaving set of workers. Returns the trace and the run.
fn simulate(case: &Case, check: bool) -> (Vec<String>, Run) {
    let graph = build(case);
    let n = graph.len();
    let mut run = Run::new(
        graph.clone(),
        config(case),
        RunHeader::new(RunId::new("p"), case.seed),
    );
    let mut rng = fastrand::Rng::with_seed(case.seed ^ 0x5eed);
    let mut now = 0u64;
    let mut out = Vec::new();
    let mut trace = Vec::new();
    let mut bag: Vec<(u64, Event)> = Vec::new(); // (deliverable at, event)
    let mut loaded_count = vec![0u32; n];
    let mut retries = vec![0u32; n];
    run.start(now, &mut out);
    for step in 0..200_000u32 {
        let calm = step > 3_000; // later on, workers stop losing and failing so the run ends
        for action in out.drain(..) {
            if check {
                match &action {
                    Action::Dispatch { index, attempt } => {
                        for &p in graph.parents(*index) {
                            assert_eq!(
                                run.record(p).state,
                                ObjectState::Loaded,
                                "dispatched {index} before parent {p} loaded"
                            );
                        }
                        assert_eq!(
                            loaded_count[*index as usize], 0,
                            "loaded object {index} dispatched again"
                        );
                        assert!(
                            *attempt <= case.max_retries + 1 + 1,
                            "attempt {attempt} past the limit"
                        );
                    }
                    Action::ResultAccepted {
                        index,
                        loaded: true,
                        ..
                    } => {
                        loaded_count[*index as usize] += 1;
                        assert_eq!(
                            loaded_count[*index as usize], 1,
                            "object {index} loaded twice"
                        );
                    }
                    Action::RetryScheduled { index, .. } => {
                        retries[*index as usize] += 1;
                        assert!(
                            retries[*index as usize] <= case.max_retries,
                            "retries of {index} past the limit"
                        );
                    }
                    _ => {}
                }
            }
            if let Action::Dispatch { index, attempt } = action {
                let id = graph.node(index).id;
                let at = now + rng.u64(0..30);
                let fate = if calm { 0 } else { rng.u8(0..100) };
                match fate {
                    0..=59 => {
                        bag.push((at, Event::Started { id, attempt }));
                        bag.push((
                            at + rng.u64(0..40),
                            Event::Loaded {
                                id,
                                attempt: Some(attempt),
                                report: Default::default(),
                            },
                        ));
                    }
                    60..=69 => {
                        bag.push((at, Event::Started { id, attempt }));
                        bag.push((
                            at + rng.u64(0..40),
                            Event::Failed {
                                id,
                                attempt: Some(attempt),
                                reason: "boom".into(),
                                retryable: true,
                                report: Default::default(),
                            },
                        ));
                    }
                    70..=72 => {
                        bag.push((
                            at,
                            Event::Failed {
                                id,
                                attempt: Some(attempt),
                                reason: "bad".into(),
                                retryable: false,
                                report: Default::default(),
                            },
                        ));
                    }
                    73..=79 => {} // the Ready event was lost
                    80..=86 => bag.push((at, Event::Started { id, attempt })), // the result was lost
                    87..=93 => {
                        // duplicated delivery, one of them with no attempt (an old worker)
                        bag.push((
                            at,
                            Event::Loaded {
                                id,
                                attempt: Some(attempt),
                                report: Default::default(),
                            },
                        ));
                        bag.push((
                            at + 5,
                            Event::Loaded {
                                id,
                                attempt: None,
                                report: Default::default(),
                            },
                        ));
                        bag.push((at + 7, Event::Started { id, attempt }));
                    }
                    _ => {
                        // stale and unknown results
                        bag.push((
                            at,
                            Event::Failed {
                                id,
                                attempt: Some(attempt + 7),
                                reason: "stale".into(),
                                retryable: true,
                                report: Default::default(),
                            },
                        ));
                        bag.push((
                            at,
                            Event::Loaded {
                                id: ObjectId(1),
                                attempt: Some(1),
                                report: Default::default(),
                            },
                        ));
                        bag.push((at + 1, Event::Started { id, attempt }));
                        bag.push((
                            at + 2,
                            Event::Loaded {
                                id,
                                attempt: Some(attempt),
                                report: Default::default(),
                            },
                        ));
                    }
                }
            }
            trace.push(format!("{now}:{action:?}"));
        }
        if check && (step % 64 == 0 || run.is_finished()) {
            assert_counts_match_records(&run);
        }
        if run.is_finished() {
            break;
        }
        // Deliver a random deliverable event, or let time pass.
        let ready: Vec<usize> = (0..bag.len()).filter(|&k| bag[k].0 <= now).collect();
        if !ready.is_empty() && rng.u8(0..4) != 0 {
            let (_, event) = bag.swap_remove(ready[rng.usize(0..ready.len())]);
            run.handle(event, now, &mut out);
        } else {
            now += rng.u64(1..20);
            run.tick(now, &mut out);
        }
    }
    (trace, run)
}

/// The counts the run keeps step by step are the counts of its records, zone by zone.
fn assert_counts_match_records(run: &Run) {
    let graph = run.graph();
    for zone in Zone::ALL {
        for state in ObjectState::ALL {
            let recount = (0..graph.len() as u32)
                .filter(|&i| graph.node(i).zone == zone && run.record(i).state == state)
                .count();
            assert_eq!(
                run.counts().zone(zone).in_state(state),
                recount,
                "{zone:?} {state:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_run_ends_with_its_guarantees(case in case()) {
        let (_, run) = simulate(&case, true);
        prop_assert!(run.is_finished(), "run did not finish");
        let graph = run.graph().clone();
        for i in 0..graph.len() as u32 {
            let state = run.record(i).state;
            prop_assert!(state.is_terminal());
            match state {
                ObjectState::Loaded => {
                    for &p in graph.parents(i) {
                        prop_assert_eq!(run.record(p).state, ObjectState::Loaded);
                    }
                }
                ObjectState::UpstreamFailed => {
                    prop_assert!(graph.parents(i).iter().any(|&p| matches!(run.record(p).state, ObjectState::Failed | ObjectState::UpstreamFailed)));
                }
                ObjectState::Failed => {}
                other => prop_assert!(false, "unexpected end state {other:?}"),
            }
            prop_assert!(run.record(i).retries <= case.max_retries);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace(case in case()) {
        let (a, _) = simulate(&case, false);
        let (b, _) = simulate(&case, false);
        prop_assert_eq!(a, b);
    }
}
