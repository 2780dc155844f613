//! The contract every state store passes: atomic batches (a refused one leaves nothing), runs in
//! creation order, every header field round-tripped, each run's objects and dead letters kept
//! apart; retention and writer fencing on the backends that claim them (redb, Redis). Each body is generic; one module per backend runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/services.rs"]
mod services;

use orchestrator_core::scheduler::{AttemptOutcome, ObjectRecord, ObjectState};
use orchestrator_protocol::{ObjectId, RunId};
use orchestrator_store::{
    DeadLetter, RunHeader, RunStatus, StateStore, StoreError, StoreSettings, Transition,
    WriterLease, open_store, open_store_with,
};

fn meta(id: &str, created_ms: u64) -> RunHeader {
    RunHeader {
        run_id: RunId::new(id),
        graph_version: "abc".into(),
        source: "objects.json".into(),
        created_ms,
        updated_ms: created_ms,
        status: RunStatus::Running,
        cancelled: false,
        seed: 7,
        objects: 2,
        options: Default::default(),
        counts: Default::default(),
    }
}

/// The ids of the runs a store holds, oldest first.
async fn run_ids(store: &dyn StateStore) -> Vec<String> {
    let runs = store.runs().await.unwrap();
    runs.into_iter().map(|m| m.run_id.to_string()).collect()
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
        .apply(&[
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
            // Held for another run's attempt: a state the store keeps like any other.
            Transition::Object {
                run: r2.clone(),
                id: ObjectId(2001),
                record: record(ObjectState::Held, 2),
            },
        ])
        .await
        .unwrap();
    // A later batch overwrites records and adds a dead letter.
    let mut finished = meta("run-1", 10);
    finished.status = RunStatus::Finished;
    store
        .apply(&[
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
    assert_eq!(store.run(&r1).await.unwrap(), Some(finished.clone()));
    assert_eq!(store.run(&r2).await.unwrap(), Some(meta("run-2", 20)));
    assert_eq!(store.run(&RunId::new("nope")).await.unwrap(), None);
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
        vec![
            (ObjectId(1001), record(ObjectState::Queued, 0)),
            (ObjectId(2001), record(ObjectState::Held, 2))
        ]
    );
    assert_eq!(store.dead_letters(&r1).await.unwrap().len(), 1);
    assert!(store.dead_letters(&r2).await.unwrap().is_empty());
    assert!(store.objects(&RunId::new("nope")).await.unwrap().is_empty());
    // The object definitions a run came with.
    let objects = std::sync::Arc::new(r#"[{"IdObjet":1001,"Zone":"1-Raw"}]"#.to_string());
    store
        .apply(&[Transition::Graph {
            run: r2.clone(),
            objects: objects.clone(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.graph(&r2).await.unwrap().as_deref(),
        Some(objects.as_str())
    );
    assert_eq!(store.graph(&r1).await.unwrap(), None);
    // A rerun clears the run's dead letters; a failure after the clear keeps its own.
    let letter = |id: u64| Transition::DeadLetter {
        run: r1.clone(),
        letter: DeadLetter {
            id: ObjectId(id),
            attempt: 5,
            reason: "again".into(),
            at_ms: 100,
        },
    };
    store
        .apply(&[
            letter(1001),
            Transition::DeadLettersCleared { run: r1.clone() },
            letter(3001),
        ])
        .await
        .unwrap();
    let left: Vec<u64> = store
        .dead_letters(&r1)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.0)
        .collect();
    assert_eq!(left, vec![3001]);
    store.ping().await.unwrap();
}

/// A batch refused part-way (its last transition names a run id no backend can key) leaves
/// nothing of it: not the run, not its objects, letters or definitions.
async fn a_refused_batch_leaves_nothing(store: &dyn StateStore) {
    let m = meta("run-half", 5);
    let run = m.run_id.clone();
    let batch = vec![
        Transition::Run(Box::new(m)),
        Transition::Object {
            run: run.clone(),
            id: ObjectId(1001),
            record: record(ObjectState::Loaded, 1),
        },
        Transition::Graph {
            run: run.clone(),
            objects: std::sync::Arc::new("[]".into()),
        },
        Transition::Object {
            run: RunId::new("run:half:objects"),
            id: ObjectId(1002),
            record: record(ObjectState::Loaded, 1),
        },
    ];
    let err = store.apply(&batch).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidRunId(_)), "{err}");
    assert!(store.runs().await.unwrap().is_empty());
    assert!(store.run(&run).await.unwrap().is_none());
    assert!(store.objects(&run).await.unwrap().is_empty());
    assert_eq!(store.graph(&run).await.unwrap(), None);
}

/// Every field of a run's header comes back as it was stored: what a process reopens a run
/// from (its options, counts, status, seed) is what the one before it stored.
async fn a_header_round_trips_with_every_field(store: &dyn StateStore) {
    use orchestrator_core::graph::MissingParents;
    use orchestrator_core::scheduler::{RunCounts, RunOptions};
    let mut counts = RunCounts::default();
    for (i, z) in counts.zones.iter_mut().enumerate() {
        let k = i + 1;
        (z.objects, z.waiting, z.queued, z.dispatched, z.running) =
            (45 * k, k, 2 * k, 3 * k, 4 * k);
        (z.retry_wait, z.loaded, z.failed) = (5 * k, 6 * k, 7 * k);
        (z.upstream_failed, z.cancelled, z.retries) = (8 * k, 9 * k, 10 * k as u64);
        z.held = 11 * k;
        (z.first_dispatch_ms, z.last_finish_ms) = (1_000 * k as u64, 2_000 * k as u64);
    }
    let header = RunHeader {
        run_id: RunId::new("run-every-field"),
        graph_version: "0123456789abcdef".into(),
        source: "/data/objets – été.json".into(),
        created_ms: 1_796_000_000_000,
        updated_ms: 1_796_000_123_456,
        status: RunStatus::Interrupted,
        cancelled: true,
        seed: u64::MAX - 7,
        objects: 135,
        options: RunOptions {
            targets: vec![ObjectId(3001), ObjectId(3002)],
            zone: Some(orchestrator_protocol::Zone::Standardized),
            missing_parents: MissingParents::External,
            handlers: Some(orchestrator_core::scheduler::RunHandlers::new([
                "command:./load.sh 'a b'".into(),
                "simulate:0:0".into(),
                "http:http://builder/build".into(),
            ])),
        },
        counts,
    };
    store
        .apply(&[Transition::Run(Box::new(header.clone()))])
        .await
        .unwrap();
    assert_eq!(
        store.run(&header.run_id).await.unwrap(),
        Some(header.clone())
    );
    assert_eq!(store.runs().await.unwrap(), vec![header.clone()]);
    // How a stored run ended reads the same from every store: finished with objects that
    // failed is failed; cancelled with objects cancelled is cancelled; all loaded succeeded.
    use orchestrator_store::RunOutcome;
    let mut finished = RunHeader {
        run_id: RunId::new("run-failed"),
        status: RunStatus::Finished,
        cancelled: false,
        ..header
    };
    let cancelled = RunHeader {
        run_id: RunId::new("run-cancelled"),
        cancelled: true,
        ..finished.clone()
    };
    let mut succeeded = RunHeader {
        run_id: RunId::new("run-succeeded"),
        ..finished.clone()
    };
    succeeded.counts = RunCounts::default();
    succeeded.counts.zones[0].objects = succeeded.objects;
    succeeded.counts.zones[0].loaded = succeeded.objects;
    finished.updated_ms += 1;
    store
        .apply(&[
            Transition::Run(Box::new(finished.clone())),
            Transition::Run(Box::new(cancelled.clone())),
            Transition::Run(Box::new(succeeded.clone())),
        ])
        .await
        .unwrap();
    for (id, outcome) in [
        ("run-failed", RunOutcome::Failed),
        ("run-cancelled", RunOutcome::Cancelled),
        ("run-succeeded", RunOutcome::Succeeded),
    ] {
        let stored = store.run(&RunId::new(id)).await.unwrap().unwrap();
        assert_eq!(stored.outcome(), outcome, "{id}");
    }
}

async fn an_empty_store_has_no_runs(store: &dyn StateStore) {
    assert!(store.runs().await.unwrap().is_empty());
    store.apply(&[]).await.unwrap();
}

mod attempts;
mod schedule;

mod memory {
    #[tokio::test]
    async fn the_schedule_state_is_written_with_its_run() {
        let store = super::open_store("memory://", None).unwrap();
        super::schedule::the_schedule_state_is_written_with_its_run(&*store).await;
    }
    #[tokio::test]
    async fn a_replaced_catalog_is_kept_with_what_it_replaced() {
        let store = super::open_store("memory://", None).unwrap();
        super::schedule::a_replaced_catalog_is_kept_with_what_it_replaced(&*store).await;
    }
    #[tokio::test]
    async fn the_catalog_keeps_each_objects_latest_load() {
        let store = super::open_store("memory://", None).unwrap();
        super::attempts::the_catalog_keeps_each_objects_latest_load(&*store).await;
    }
    #[tokio::test]
    async fn attempts_are_kept_per_object_and_letters_go_one_by_one() {
        let store = super::open_store("memory://", None).unwrap();
        super::attempts::attempts_are_kept_per_object_and_letters_go_one_by_one(&*store).await;
    }
    #[tokio::test]
    async fn a_refused_batch_leaves_nothing() {
        super::a_refused_batch_leaves_nothing(&*super::open_store("memory://", None).unwrap())
            .await;
    }
    #[tokio::test]
    async fn a_header_round_trips_with_every_field() {
        let store = super::open_store("memory://", None).unwrap();
        super::a_header_round_trips_with_every_field(&*store).await;
    }
    #[tokio::test]
    async fn batches_are_applied_and_read_back() {
        super::batches_are_applied_and_read_back(&*super::open_store("memory://", None).unwrap())
            .await;
    }
    #[tokio::test]
    async fn an_empty_store_has_no_runs() {
        super::an_empty_store_has_no_runs(&*super::open_store("memory://", None).unwrap()).await;
    }
}

mod redb {
    fn url(dir: &tempfile::TempDir) -> String {
        format!("redb://{}", dir.path().join("sub/state.redb").display())
    }
    #[tokio::test]
    async fn batches_are_applied_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        super::batches_are_applied_and_read_back(&*super::open_store(&url(&dir), None).unwrap())
            .await;
    }
    #[tokio::test]
    async fn the_schedule_state_is_written_with_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open_store(&url(&dir), None).unwrap();
        super::schedule::the_schedule_state_is_written_with_its_run(&*store).await;
    }
    #[tokio::test]
    async fn a_replaced_catalog_is_kept_with_what_it_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open_store(&url(&dir), None).unwrap();
        super::schedule::a_replaced_catalog_is_kept_with_what_it_replaced(&*store).await;
    }
    #[tokio::test]
    async fn the_catalog_keeps_each_objects_latest_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open_store(&url(&dir), None).unwrap();
        super::attempts::the_catalog_keeps_each_objects_latest_load(&*store).await;
    }
    #[tokio::test]
    async fn attempts_are_kept_per_object_and_letters_go_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open_store(&url(&dir), None).unwrap();
        super::attempts::attempts_are_kept_per_object_and_letters_go_one_by_one(&*store).await;
    }
    #[tokio::test]
    async fn an_empty_store_has_no_runs() {
        let dir = tempfile::tempdir().unwrap();
        super::an_empty_store_has_no_runs(&*super::open_store(&url(&dir), None).unwrap()).await;
    }
    #[tokio::test]
    async fn a_refused_batch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        super::a_refused_batch_leaves_nothing(&*super::open_store(&url(&dir), None).unwrap()).await;
    }
    #[tokio::test]
    async fn a_header_round_trips_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open_store(&url(&dir), None).unwrap();
        super::a_header_round_trips_with_every_field(&*store).await;
    }
    #[tokio::test]
    async fn what_was_committed_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::open_store(&url(&dir), None).unwrap();
            store
                .apply(&[super::Transition::Run(Box::new(super::meta("run-9", 1)))])
                .await
                .unwrap();
        }
        let store = super::open_store(&url(&dir), None).unwrap();
        assert_eq!(store.runs().await.unwrap().len(), 1);
    }

    /// A run with an object, a dead letter and its graph.
    fn run_batch(m: &super::RunHeader) -> Vec<super::Transition> {
        use super::*;
        vec![
            Transition::Run(Box::new(m.clone())),
            Transition::Object {
                run: m.run_id.clone(),
                id: ObjectId(1),
                record: record(ObjectState::Failed, 1),
            },
            Transition::DeadLetter {
                run: m.run_id.clone(),
                letter: DeadLetter {
                    id: ObjectId(1),
                    attempt: 1,
                    reason: "no".into(),
                    at_ms: 1,
                },
            },
            Transition::Graph {
                run: m.run_id.clone(),
                objects: std::sync::Arc::new("[]".into()),
            },
            Transition::Attempts {
                run: m.run_id.clone(),
                attempts: std::sync::Arc::new(vec![(
                    ObjectId(1),
                    attempts::attempt(1, AttemptOutcome::Failed, "x"),
                )]),
            },
        ]
    }

    #[tokio::test]
    async fn finished_runs_past_their_retention_go_when_another_run_finishes() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let finished = |id: &str, updated_ms: u64| {
            let mut m = meta(id, 1);
            m.status = RunStatus::Finished;
            m.updated_ms = updated_ms;
            m
        };
        let old = finished("run-old", now - 7_200_000);
        let recent = finished("run-recent", now - 60_000);
        let mut stalled = meta("run-stalled", 1); // unfinished: kept however old
        stalled.updated_ms = 1;
        {
            let keep_all = open_store(&url(&dir), None).unwrap();
            for m in [&old, &recent, &stalled] {
                keep_all.apply(&run_batch(m)).await.unwrap();
            }
        }
        // Kept one hour: a batch that finishes no run removes nothing.
        let store = open_store(&url(&dir), Some(3600)).unwrap();
        let mut new = meta("run-new", now);
        store.apply(&run_batch(&new)).await.unwrap();
        assert_eq!(store.runs().await.unwrap().len(), 4);
        new.status = RunStatus::Finished;
        store
            .apply(&[Transition::Run(Box::new(new.clone()))])
            .await
            .unwrap();
        assert_eq!(
            run_ids(&*store).await,
            ["run-recent", "run-stalled", "run-new"]
        );
        assert!(store.objects(&old.run_id).await.unwrap().is_empty());
        assert!(store.dead_letters(&old.run_id).await.unwrap().is_empty());
        assert_eq!(store.graph(&old.run_id).await.unwrap(), None);
        assert!(
            store
                .attempts(&old.run_id, ObjectId(1))
                .await
                .unwrap()
                .is_empty()
        );
        for kept in [&recent, &stalled, &new] {
            assert_eq!(
                store
                    .attempts(&kept.run_id, ObjectId(1))
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(store.objects(&kept.run_id).await.unwrap().len(), 1);
            assert_eq!(store.dead_letters(&kept.run_id).await.unwrap().len(), 1);
            assert!(store.graph(&kept.run_id).await.unwrap().is_some());
        }
    }
}

mod redis;
mod redis_archive;

#[test]
fn unknown_urls_are_refused_clearly() {
    let e = open_store("redis-ish://x", None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("expected memory://, redb://PATH or redis://HOST:PORT"),
        "{e}"
    );
}
