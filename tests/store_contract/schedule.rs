//! The schedule's state: absent until written, written with the run a tick starts (all or
//! nothing), replaced whole by the next write, pauses included.

use super::meta;
use orchestrator_protocol::{ObjectId, RunId};
use orchestrator_store::{ScheduleState, StateStore, Transition};

pub(crate) async fn the_schedule_state_is_written_with_its_run(store: &dyn StateStore) {
    assert_eq!(store.schedule_state().await.unwrap(), None);
    let ticked = ScheduleState {
        ticked_ms: Some(1_796_000_000_000),
        ..Default::default()
    };
    store
        .apply(&[
            Transition::Graph {
                run: RunId::new("tick-20261130-060000"),
                objects: std::sync::Arc::new(r#"[{"IdObjet":1001}]"#.to_string()),
            },
            Transition::Run(Box::new(meta("tick-20261130-060000", 10))),
            Transition::Schedule(Box::new(ticked.clone())),
        ])
        .await
        .unwrap();
    assert_eq!(store.schedule_state().await.unwrap(), Some(ticked.clone()));
    assert!(
        store
            .run(&RunId::new("tick-20261130-060000"))
            .await
            .unwrap()
            .is_some()
    );
    // A batch refused as a whole leaves the state as it was.
    let later = ScheduleState {
        ticked_ms: Some(1_796_000_060_000),
        ..Default::default()
    };
    let refused = store
        .apply(&[
            Transition::Schedule(Box::new(later.clone())),
            Transition::Run(Box::new(meta("bad:id", 20))),
        ])
        .await;
    assert!(refused.is_err());
    assert_eq!(store.schedule_state().await.unwrap(), Some(ticked));
    // Pauses, alone: the whole state replaced.
    let paused = ScheduleState {
        paused: true,
        paused_objects: [ObjectId(1001), ObjectId(3002)].into(),
        ..later
    };
    store
        .apply(&[Transition::Schedule(Box::new(paused.clone()))])
        .await
        .unwrap();
    assert_eq!(store.schedule_state().await.unwrap(), Some(paused));
}

/// A catalog replaced through the API: absent until written, then read back whole with what it
/// replaced; a later replacement replaces both.
pub(crate) async fn a_replaced_catalog_is_kept_with_what_it_replaced(store: &dyn StateStore) {
    assert_eq!(store.catalog_objects().await.unwrap(), None);
    let big = format!("[{}]", vec![r#"{"IdObjet":1001}"#; 50_000].join(","));
    for (objects, replaces) in [(big.as_str(), "abc"), (r#"[{"IdObjet":1002}]"#, "def")] {
        store
            .apply(&[Transition::Catalog {
                objects: std::sync::Arc::new(objects.to_string()),
                replaces: replaces.to_string(),
            }])
            .await
            .unwrap();
        assert_eq!(
            store.catalog_objects().await.unwrap(),
            Some((objects.to_string(), replaces.to_string()))
        );
    }
}
