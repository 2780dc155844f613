//! The contract's part on attempt history and single dead letters: every ended attempt of an
//! object read back in order with every field, kept apart per run and object; one object's
//! dead letter removed alone.

use super::*;
use orchestrator_core::scheduler::{AttemptRecord, AttemptText};

pub(crate) fn attempt(n: u32, outcome: AttemptOutcome, output: &str) -> AttemptRecord {
    let reason = if outcome == AttemptOutcome::Loaded {
        String::new()
    } else {
        format!("exit 1: failure {n}")
    };
    AttemptRecord {
        attempt: n,
        outcome,
        dispatched_ms: 100 * u64::from(n),
        started_ms: 100 * u64::from(n) + 5,
        ended_ms: 100 * u64::from(n) + 50,
        duration_ms: 45,
        text: AttemptText {
            worker: "worker-7".into(),
            reason,
            info: String::new(),
            output: output.to_string(),
        }
        .shared(),
        simulated: false,
    }
}

pub(crate) async fn attempts_are_kept_per_object_and_letters_go_one_by_one(store: &dyn StateStore) {
    let run = RunId::new("run-a");
    let other = RunId::new("run-b");
    let first = attempt(1, AttemptOutcome::Failed, "line 1\nline é 2\n");
    // An attempt with nothing said of it (no worker, reason or output) round-trips as such.
    let second = AttemptRecord {
        text: None,
        ..attempt(2, AttemptOutcome::Expired, "")
    };
    // A pretend load says so when read back.
    let third = AttemptRecord {
        simulated: true,
        ..attempt(3, AttemptOutcome::Loaded, "done")
    };
    let letter = |id: u64| DeadLetter {
        id: ObjectId(id),
        attempt: 1,
        reason: "bad".into(),
        at_ms: 5,
    };
    store
        .apply(&[
            Transition::Run(Box::new(meta("run-a", 1))),
            Transition::Run(Box::new(meta("run-b", 2))),
            Transition::Object {
                run: run.clone(),
                id: ObjectId(1001),
                record: record(ObjectState::Loaded, 3),
            },
            Transition::Object {
                run: other.clone(),
                id: ObjectId(1001),
                record: record(ObjectState::Failed, 1),
            },
            Transition::Attempts {
                run: run.clone(),
                attempts: std::sync::Arc::new(vec![
                    (ObjectId(1001), first.clone()),
                    (ObjectId(1001), second.clone()),
                ]),
            },
            Transition::Attempts {
                run: other.clone(),
                attempts: std::sync::Arc::new(vec![(
                    ObjectId(1001),
                    attempt(1, AttemptOutcome::Failed, "b"),
                )]),
            },
            Transition::DeadLetter {
                run: run.clone(),
                letter: letter(2001),
            },
            Transition::DeadLetter {
                run: run.clone(),
                letter: letter(2002),
            },
        ])
        .await
        .unwrap();
    // A later batch adds the third attempt and removes one letter.
    store
        .apply(&[
            Transition::DeadLetterRemoved {
                run: run.clone(),
                id: ObjectId(2001),
            },
            Transition::Attempts {
                run: run.clone(),
                attempts: std::sync::Arc::new(vec![(ObjectId(1001), third.clone())]),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.attempts(&run, ObjectId(1001)).await.unwrap(),
        vec![first, second, third]
    );
    let b = store.attempts(&other, ObjectId(1001)).await.unwrap();
    assert_eq!((b.len(), b[0].output()), (1, "b"));
    assert!(store.attempts(&run, ObjectId(9)).await.unwrap().is_empty());
    assert!(
        store
            .attempts(&RunId::new("nope"), ObjectId(1001))
            .await
            .unwrap()
            .is_empty()
    );
    let letters: Vec<u64> = store
        .dead_letters(&run)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id.0)
        .collect();
    assert_eq!(letters, [2002]);
}

/// The schedule's catalog: each object's latest load, by any run; a later load replaces an
/// earlier one, an earlier one written later replaces nothing.
pub(crate) async fn the_catalog_keeps_each_objects_latest_load(store: &dyn StateStore) {
    use orchestrator_store::LatestLoad;
    let load = |id: u64, at_ms: u64| LatestLoad {
        id: ObjectId(id),
        at_ms,
        attempt: 1,
    };
    let loads = |run: &str, list: Vec<LatestLoad>| Transition::Loads {
        run: RunId::new(run),
        loads: std::sync::Arc::new(list),
    };
    assert!(store.latest_loads().await.unwrap().is_empty());
    store
        .apply(&[loads("run-b", vec![load(1001, 150), load(1002, 150)])])
        .await
        .unwrap();
    // run-a finishes later, with an earlier load of 1001 and a newer one of 1003.
    store
        .apply(&[loads("run-a", vec![load(1001, 100), load(1003, 120)])])
        .await
        .unwrap();
    store
        .apply(&[loads("run-c", vec![load(1002, 300)])])
        .await
        .unwrap();
    let got: Vec<(u64, u64, String)> = store
        .latest_loads()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, c)| (id.0, c.at_ms, c.run.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (1001, 150, "run-b".to_string()),
            (1002, 300, "run-c".to_string()),
            (1003, 120, "run-a".to_string()),
        ]
    );
}
