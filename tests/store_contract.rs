//! The contract every state store passes: atomic batches, runs in creation order, each run's
//! objects and dead letters kept apart. Each body is generic; one module per backend runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator::store::{DeadLetter, RunMeta, RunStatus, StateStore, Transition, open_store};
use orchestrator_core::scheduler::{ObjectRecord, ObjectState};
use orchestrator_protocol::{ObjectId, RunId};

fn meta(id: &str, created_ms: u64) -> RunMeta {
    RunMeta {
        run_id: RunId::new(id),
        graph_version: "abc".into(),
        source: "objects.json".into(),
        created_ms,
        updated_ms: created_ms,
        status: RunStatus::Running,
        cancelled: false,
        seed: 7,
        objects: 2,
        summary: None,
    }
}

fn record(state: ObjectState, attempt: u32) -> ObjectRecord {
    ObjectRecord {
        state,
        attempt,
        ..Default::default()
    }
}

async fn batches_are_applied_and_read_back(store: &dyn StateStore) {
    let r1 = RunId::new("run-1");
    let r2 = RunId::new("run-2");
    store
        .apply(vec![
            Transition::Run(Box::new(meta("run-2", 20))),
            Transition::Run(Box::new(meta("run-1", 10))),
            Transition::Object {
                run: r1.clone(),
                id: ObjectId(2001),
                record: record(ObjectState::Dispatched, 1),
            },
            Transition::Object {
                run: r1.clone(),
                id: ObjectId(1001),
                record: record(ObjectState::Loaded, 1),
            },
            Transition::Object {
                run: r2.clone(),
                id: ObjectId(1001),
                record: record(ObjectState::Queued, 0),
            },
        ])
        .await
        .unwrap();
    // A later batch overwrites records and adds a dead letter.
    let mut finished = meta("run-1", 10);
    finished.status = RunStatus::Finished;
    store
        .apply(vec![
            Transition::Run(Box::new(finished.clone())),
            Transition::Object {
                run: r1.clone(),
                id: ObjectId(2001),
                record: record(ObjectState::Failed, 4),
            },
            Transition::DeadLetter {
                run: r1.clone(),
                letter: DeadLetter {
                    id: ObjectId(2001),
                    attempt: 4,
                    reason: "exit 1".into(),
                    at_ms: 99,
                },
            },
        ])
        .await
        .unwrap();
    let runs = store.runs().await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec!["run-1", "run-2"]
    );
    assert_eq!(runs[0], finished);
    let objects = store.objects(&r1).await.unwrap();
    assert_eq!(
        objects,
        vec![
            (ObjectId(1001), record(ObjectState::Loaded, 1)),
            (ObjectId(2001), record(ObjectState::Failed, 4))
        ]
    );
    assert_eq!(
        store.objects(&r2).await.unwrap(),
        vec![(ObjectId(1001), record(ObjectState::Queued, 0))]
    );
    assert_eq!(store.dead_letters(&r1).await.unwrap().len(), 1);
    assert!(store.dead_letters(&r2).await.unwrap().is_empty());
    assert!(store.objects(&RunId::new("nope")).await.unwrap().is_empty());
}

async fn an_empty_store_has_no_runs(store: &dyn StateStore) {
    assert!(store.runs().await.unwrap().is_empty());
    store.apply(Vec::new()).await.unwrap();
}

mod memory {
    #[tokio::test]
    async fn batches_are_applied_and_read_back() {
        super::batches_are_applied_and_read_back(&*super::open_store("memory://").unwrap()).await;
    }
    #[tokio::test]
    async fn an_empty_store_has_no_runs() {
        super::an_empty_store_has_no_runs(&*super::open_store("memory://").unwrap()).await;
    }
}

mod redb {
    fn url(dir: &tempfile::TempDir) -> String {
        format!("redb://{}", dir.path().join("sub/state.redb").display())
    }
    #[tokio::test]
    async fn batches_are_applied_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        super::batches_are_applied_and_read_back(&*super::open_store(&url(&dir)).unwrap()).await;
    }
    #[tokio::test]
    async fn an_empty_store_has_no_runs() {
        let dir = tempfile::tempdir().unwrap();
        super::an_empty_store_has_no_runs(&*super::open_store(&url(&dir)).unwrap()).await;
    }
    #[tokio::test]
    async fn what_was_committed_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::open_store(&url(&dir)).unwrap();
            store
                .apply(vec![super::Transition::Run(Box::new(super::meta(
                    "run-9", 1,
                )))])
                .await
                .unwrap();
        }
        let store = super::open_store(&url(&dir)).unwrap();
        assert_eq!(store.runs().await.unwrap().len(), 1);
    }
}

#[test]
fn unknown_urls_are_refused_clearly() {
    let e = open_store("redis-ish://x")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("expected memory:// or redb://PATH"), "{e}");
}
