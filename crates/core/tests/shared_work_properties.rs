//! Property tests of never two at once across runs: several runs over one random DAG, their
//! dispatches held and released by the core (`hold_if_shared`, `release_shared`) as the engine
//! does, workers answering in a random order and sometimes failing. At every step no object is
//! in flight in two runs; in the end every run loaded every object, nothing stays held, and an
//! object a run took from another was loaded by that run after this run's attempt was held.

mod common;

use common::graph;
use orchestrator_core::scheduler::{
    Action, AttemptReport, Event, ObjectState, Run, RunHeader, SchedulerConfig, ZonePolicy,
    hold_if_shared, release_shared,
};
use orchestrator_protocol::{ObjectId, RunId};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn config() -> SchedulerConfig {
    let mut c = SchedulerConfig {
        max_retries: 1_000,
        ..Default::default()
    };
    for z in &mut c.zones {
        *z = ZonePolicy {
            max_in_flight: Some(2),
            backoff_base_ms: 5,
            backoff_cap_ms: 20,
        };
    }
    c
}

/// A Ready event that went out: (run, object, attempt).
type Sent = (RunId, ObjectId, u32);

/// Carries out a run's actions as the engine does: a dispatch is held if its object is in
/// flight elsewhere, else it goes out.
fn carry_out(
    runs: &mut BTreeMap<RunId, Run>,
    run: &RunId,
    actions: Vec<Action>,
    sent: &mut Vec<Sent>,
) {
    for a in actions {
        if let Action::Dispatch { index, attempt } = a {
            let Some(id) = runs.get(run).map(|r| r.graph().id(index)) else {
                continue;
            };
            if hold_if_shared(runs, run, id, attempt).is_none() {
                sent.push((run.clone(), id, attempt));
            }
        }
    }
}

fn assert_never_two_at_once(runs: &BTreeMap<RunId, Run>, objects: usize) {
    for i in 0..objects as u32 {
        let in_flight: Vec<&RunId> = runs
            .iter()
            .filter(|(_, r)| r.record(i).state.is_in_flight())
            .map(|(id, _)| id)
            .collect();
        assert!(
            in_flight.len() <= 1,
            "object {i} in flight in {in_flight:?}"
        );
    }
}

fn simulate(zones: Vec<u8>, parents: Vec<Vec<u32>>, runs_n: usize, seed: u64) {
    let graph = graph(&zones, parents);
    let n = graph.len();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut runs: BTreeMap<RunId, Run> = BTreeMap::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut now = 0u64;
    // The runs start one after the other, each with its dispatches carried out.
    for k in 0..runs_n {
        let id = RunId::new(format!("run-{k}").as_str());
        let mut run = Run::new(
            graph.clone(),
            config(),
            RunHeader::new(id.clone(), seed ^ k as u64),
        );
        let mut actions = Vec::new();
        run.start(now, &mut actions);
        runs.insert(id.clone(), run);
        carry_out(&mut runs, &id, actions, &mut sent);
        assert_never_two_at_once(&runs, n);
    }
    let mut held_at: BTreeMap<(RunId, u32), u64> = BTreeMap::new();
    for step in 0..100_000u32 {
        now += 1;
        for (id, r) in &runs {
            for (i, _) in r.held() {
                held_at.entry((id.clone(), i)).or_insert(now);
            }
        }
        if sent.is_empty() {
            // Nothing out: retries wait on their timers.
            let ids: Vec<RunId> = runs.keys().cloned().collect();
            for id in ids {
                let mut actions = Vec::new();
                if let Some(r) = runs.get_mut(&id) {
                    r.tick(now + 50, &mut actions);
                }
                carry_out(&mut runs, &id, actions, &mut sent);
            }
            now += 50;
            if sent.is_empty() && runs.values().all(Run::is_finished) {
                break;
            }
        } else {
            // A worker answers one Ready event: late on, always loaded.
            let (run, id, attempt) = sent.swap_remove(rng.usize(..sent.len()));
            let fails = step < 2_000 && rng.u8(..4) == 0;
            let event = if fails {
                Event::Failed {
                    id,
                    attempt: Some(attempt),
                    reason: "flaky".into(),
                    retryable: true,
                    report: AttemptReport::default(),
                }
            } else {
                Event::Loaded {
                    id,
                    attempt: Some(attempt),
                    report: AttemptReport::default(),
                }
            };
            let mut actions = Vec::new();
            if let Some(r) = runs.get_mut(&run) {
                r.handle(event, now, &mut actions);
            }
            carry_out(&mut runs, &run, actions, &mut sent);
        }
        for (run, actions) in release_shared(&mut runs, now) {
            carry_out(&mut runs, &run, actions, &mut sent);
        }
        assert_never_two_at_once(&runs, n);
    }
    for (id, r) in &runs {
        assert!(r.is_finished(), "{id} did not finish");
        assert_eq!(r.summary().loaded, n, "{id}: not every object loaded");
        assert!(r.held().is_empty(), "{id}: still held");
        assert_eq!(r.counts().in_state(ObjectState::Held), 0);
    }
    // A load taken from another run is a load of that run after this attempt was held.
    for ((id, i), at) in held_at {
        let rec = runs[&id].record(i);
        assert!(
            rec.finished_ms >= at,
            "{id}: object {i} loaded before it was held"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_two_runs_have_one_object_in_flight(
        (zones, parents) in (1usize..25).prop_flat_map(|n| (
            proptest::collection::vec(0u8..3, n),
            (0..n)
                .map(|i| proptest::collection::vec(0..(i.max(1) as u32), 0..=(i.min(3))))
                .collect::<Vec<_>>(),
        )),
        runs in 2usize..4,
        seed in any::<u64>(),
    ) {
        simulate(zones, parents, runs, seed);
    }
}
