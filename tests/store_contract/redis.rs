//! The contract on Redis, and what only a shared store promises: one writer at a time, a
//! replaced writer fenced, finished runs' keys expiring, a server that keeps nothing on disk.

use super::*;

async fn store(
    test: &str,
    ttl: Option<u64>,
) -> (services::TestRedis, std::sync::Arc<dyn StateStore>) {
    let redis = services::redis();
    let settings = StoreSettings {
        prefix: services::unique_prefix(test),
        finished_ttl: ttl,
    };
    let store = open_store_with(&redis.url, &settings).await.unwrap();
    (redis, store)
}

#[tokio::test]
async fn batches_are_applied_and_read_back() {
    let (_redis, store) = store("batches", None).await;
    super::batches_are_applied_and_read_back(&*store).await;
}
#[tokio::test]
async fn attempts_are_kept_per_object_and_letters_go_one_by_one() {
    let (_redis, store) = store("attempts", None).await;
    super::attempts::attempts_are_kept_per_object_and_letters_go_one_by_one(&*store).await;
}
#[tokio::test]
async fn the_schedule_state_is_written_with_its_run() {
    let (_redis, store) = store("schedule", None).await;
    store.acquire_writer("w", 10_000).await.unwrap();
    super::schedule::the_schedule_state_is_written_with_its_run(&*store).await;
}
#[tokio::test]
async fn a_replaced_catalog_is_kept_with_what_it_replaced() {
    let (_redis, store) = store("catalog-objects", None).await;
    store.acquire_writer("w", 10_000).await.unwrap();
    super::schedule::a_replaced_catalog_is_kept_with_what_it_replaced(&*store).await;
}
#[tokio::test]
async fn the_catalog_keeps_each_objects_latest_load() {
    let (_redis, store) = store("catalog", None).await;
    super::attempts::the_catalog_keeps_each_objects_latest_load(&*store).await;
}
#[tokio::test]
async fn the_catalog_of_the_writer_keeps_each_objects_latest_load() {
    let (_redis, store) = store("catalog-writer", None).await;
    store.acquire_writer("w", 10_000).await.unwrap();
    super::attempts::the_catalog_keeps_each_objects_latest_load(&*store).await;
}
#[tokio::test]
async fn a_refused_batch_leaves_nothing() {
    let (_redis, store) = store("half", None).await;
    super::a_refused_batch_leaves_nothing(&*store).await;
}
#[tokio::test]
async fn a_refused_batch_of_the_writer_leaves_nothing() {
    let (_redis, store) = store("half-writer", None).await;
    store.acquire_writer("w", 10_000).await.unwrap();
    super::a_refused_batch_leaves_nothing(&*store).await;
}
#[tokio::test]
async fn a_header_round_trips_with_every_field() {
    let (_redis, store) = store("header", None).await;
    super::a_header_round_trips_with_every_field(&*store).await;
}
#[tokio::test]
async fn batches_of_the_writer_are_applied_and_read_back() {
    // The writer's batches go through the fenced script: same contract.
    let (_redis, store) = store("writer-batches", None).await;
    let lease = store.acquire_writer("a", 10_000).await.unwrap();
    assert!(matches!(lease, WriterLease::Acquired { .. }), "{lease:?}");
    super::batches_are_applied_and_read_back(&*store).await;
}
#[tokio::test]
async fn one_writer_at_a_time_and_a_replaced_writer_is_fenced() {
    let redis = services::redis();
    let settings = StoreSettings {
        prefix: services::unique_prefix("lease"),
        finished_ttl: None,
    };
    let a = open_store_with(&redis.url, &settings).await.unwrap();
    let b = open_store_with(&redis.url, &settings).await.unwrap();
    let WriterLease::Acquired { epoch: first } = a.acquire_writer("a", 600).await.unwrap() else {
        panic!("the free lease was not acquired");
    };
    // B stands by while A holds and renews the lease.
    let held = b.acquire_writer("b", 600).await.unwrap();
    assert!(
        matches!(&held, WriterLease::Held { holder } if holder.starts_with("a ")),
        "{held:?}"
    );
    assert!(a.renew_writer(600).await.unwrap());
    a.apply(&[Transition::Run(Box::new(meta("run-a", 1)))])
        .await
        .unwrap();
    // A stalls past its term: B takes over with a higher epoch and A is fenced.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let WriterLease::Acquired { epoch: second } = b.acquire_writer("b", 5_000).await.unwrap()
    else {
        panic!("the expired lease was not taken over");
    };
    assert!(second > first);
    let e = a
        .apply(&[Transition::Run(Box::new(meta("run-late", 2)))])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    assert!(!a.renew_writer(600).await.unwrap(), "A's renewal must fail");
    assert_eq!(
        run_ids(&*b).await,
        ["run-a"],
        "nothing of A's late batch was written"
    );
    b.apply(&[Transition::Run(Box::new(meta("run-b", 3)))])
        .await
        .unwrap();
    // A clean stop hands over at once.
    a.release_writer().await.unwrap(); // not A's any more: changes nothing
    assert!(matches!(
        a.acquire_writer("a", 600).await.unwrap(),
        WriterLease::Held { .. }
    ));
    b.release_writer().await.unwrap();
    let WriterLease::Acquired { epoch: third } = a.acquire_writer("a", 60_000).await.unwrap()
    else {
        panic!("the released lease was not acquired");
    };
    assert!(third > second);
    // A lease whose holder is known to be gone is taken over at once, and only that one.
    let wrong = b.take_over_writer("b", 5_000, "b 1").await.unwrap();
    assert!(matches!(wrong, WriterLease::Held { .. }), "{wrong:?}");
    let held = format!("a {third}");
    let taken = b.take_over_writer("b", 5_000, &held).await.unwrap();
    assert!(
        matches!(taken, WriterLease::Acquired { epoch } if epoch > third),
        "{taken:?}"
    );
    let e = a
        .apply(&[Transition::Run(Box::new(meta("run-gone", 4)))])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
}
#[tokio::test]
async fn an_empty_store_has_no_runs() {
    let (_redis, store) = store("empty", None).await;
    super::an_empty_store_has_no_runs(&*store).await;
}
#[tokio::test]
async fn a_finished_runs_keys_expire() {
    let redis = services::redis();
    let prefix = services::unique_prefix("expire");
    let settings = StoreSettings {
        prefix: prefix.clone(),
        finished_ttl: Some(1),
    };
    let store = open_store_with(&redis.url, &settings).await.unwrap();
    let mut m = meta("run-x", 1);
    store
        .apply(&[
            Transition::Run(Box::new(m.clone())),
            Transition::Object {
                run: m.run_id.clone(),
                id: ObjectId(1),
                record: record(ObjectState::Loaded, 1),
            },
            Transition::Attempts {
                run: m.run_id.clone(),
                attempts: std::sync::Arc::new(vec![(
                    ObjectId(1),
                    super::attempts::attempt(1, AttemptOutcome::Loaded, ""),
                )]),
            },
        ])
        .await
        .unwrap();
    m.status = RunStatus::Finished;
    store
        .apply(&[Transition::Run(Box::new(m.clone()))])
        .await
        .unwrap();
    assert_eq!(store.runs().await.unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert!(store.runs().await.unwrap().is_empty());
    assert!(store.objects(&m.run_id).await.unwrap().is_empty());
    let mut con = ::redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let attempts: bool = ::redis::cmd("EXISTS")
        .arg(format!("{prefix}:run:run-x:attempts"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!attempts, "the attempts expire with the run");
    // The run was archived once finished (in the background): its archive expires too.
    for archive in ["objects:archive", "attempts:archive"] {
        let there: bool = ::redis::cmd("EXISTS")
            .arg(format!("{prefix}:run:run-x:{archive}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(!there, "{archive} expires with the run");
    }
    // Listing took the expired run's id out of the index.
    let client = ::redis::Client::open(redis.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<(String, f64)> = ::redis::cmd("ZRANGE")
        .arg(format!("{prefix}:runs"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(left, []);
}
#[tokio::test]
async fn a_server_that_keeps_nothing_on_disk_is_reported() {
    let (redis, store) = store("durability", None).await;
    if !redis.is_own() {
        return; // a server of the user's (REDIS_URL): not ours to reconfigure
    }
    // The test server runs with --save "" --appendonly no.
    let warning = store.durability_warning().await.unwrap_or_default();
    assert!(warning.contains("NOTHING on disk"), "{warning:?}");
    assert!(warning.contains("appendonly yes"), "{warning:?}");
    let client = ::redis::Client::open(redis.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(store.durability_warning().await, None);
}
#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let settings = StoreSettings::default();
    let e = open_store_with("redis://:hunter2@127.0.0.1:1/0", &settings)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("redis://:***@127.0.0.1:1/0"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
