//! Redis archives a finished run's records and attempts (packed buckets instead of a hash field
//! each): what the store reads is the same before and after, a run started again reads through
//! both and is archived again when it finishes, and the archive expires with the run.

use super::*;
use orchestrator_core::scheduler::AttemptRecord;
use orchestrator_store::RedisStore;

async fn exists(url: &str, key: &str) -> bool {
    let mut con = ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    ::redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

/// Waits for `key` to go (the background archiving), failing with `what` after 10 s.
async fn gone_within_10_s(url: &str, key: &str, what: &str) {
    let started = std::time::Instant::now();
    while exists(url, key).await {
        assert!(started.elapsed().as_secs() < 10, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Three objects in three buckets (ids 256 apart and far apart), a few attempts each.
fn run_batch(header: &RunHeader, attempts: u32) -> Vec<Transition> {
    let run = header.run_id.clone();
    let ids = [1001u64, 1300, 3_000_001];
    let mut batch = vec![Transition::Run(Box::new(header.clone()))];
    let mut ended: Vec<(ObjectId, AttemptRecord)> = Vec::new();
    for &id in &ids {
        batch.push(Transition::Object {
            run: run.clone(),
            id: ObjectId(id),
            record: record(ObjectState::Loaded, attempts),
        });
        for n in 1..=attempts {
            let outcome = if n == attempts {
                AttemptOutcome::Loaded
            } else {
                AttemptOutcome::Failed
            };
            ended.push((
                ObjectId(id),
                super::attempts::attempt(n, outcome, "out\tput\n"),
            ));
        }
    }
    batch.push(Transition::Attempts {
        run,
        attempts: std::sync::Arc::new(ended),
    });
    batch
}

/// A finished run's records and attempts in their hashes, unarchived (as a writer killed before
/// archiving leaves them): its record and its place among the runs written by hand, since a
/// batch that finishes a run sets its archiving off.
async fn left_in_its_hashes(store: &RedisStore, url: &str, prefix: &str, header: &RunHeader) {
    store.apply(&run_batch(header, 1)[1..]).await.unwrap();
    let mut con = ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let run = header.run_id.as_str();
    let _: () = ::redis::pipe()
        .cmd("SET")
        .arg(format!("{prefix}:run:{run}"))
        .arg(serde_json::to_string(header).unwrap())
        .ignore()
        .cmd("ZADD")
        .arg(format!("{prefix}:runs"))
        .arg(header.created_ms)
        .arg(run)
        .ignore()
        .query_async(&mut con)
        .await
        .unwrap();
}

async fn everything(store: &RedisStore, run: &RunId) -> String {
    let mut seen = format!("{:?}\n", store.objects(run).await.unwrap());
    for id in [1001u64, 1300, 3_000_001, 5] {
        seen.push_str(&format!(
            "{:?}\n",
            store.attempts(run, ObjectId(id)).await.unwrap()
        ));
    }
    seen
}

#[tokio::test]
async fn a_finished_run_is_archived_reads_the_same_and_runs_again_through_both() {
    let redis = services::redis();
    let prefix = services::unique_prefix("archive");
    let store = RedisStore::connect(&redis.url, &prefix, Some(3600))
        .await
        .unwrap();
    let mut header = meta("run-z", 1);
    let run = header.run_id.clone();
    store.apply(&run_batch(&header, 2)).await.unwrap();
    let live_objects = format!("{prefix}:run:run-z:objects");
    let live_attempts = format!("{prefix}:run:run-z:attempts");
    // Not finished: nothing to archive.
    assert!(!store.archive_run(&run).await.unwrap());
    let running = everything(&store, &run).await;
    assert!(running.contains("out\\tput"), "{running}");

    header.status = RunStatus::Finished;
    // The store archives by itself after the batch that finishes the run.
    store
        .apply(&[Transition::Run(Box::new(header.clone()))])
        .await
        .unwrap();
    gone_within_10_s(&redis.url, &live_objects, "the run was never archived").await;
    assert!(!exists(&redis.url, &live_attempts).await);
    assert!(exists(&redis.url, &format!("{live_objects}:archive")).await);
    assert!(exists(&redis.url, &format!("{live_attempts}:archive")).await);
    assert_eq!(
        everything(&store, &run).await,
        running,
        "archived, read the same"
    );
    assert!(
        !store.archive_run(&run).await.unwrap(),
        "nothing left to move"
    );

    // Run again (a rerun): a third attempt of one object, its record live again.
    header.status = RunStatus::Running;
    let third = super::attempts::attempt(3, AttemptOutcome::Loaded, "again");
    store
        .apply(&[
            Transition::Run(Box::new(header.clone())),
            Transition::Object {
                run: run.clone(),
                id: ObjectId(1300),
                record: record(ObjectState::Loaded, 3),
            },
            Transition::Attempts {
                run: run.clone(),
                attempts: std::sync::Arc::new(vec![(ObjectId(1300), third.clone())]),
            },
        ])
        .await
        .unwrap();
    let objects = store.objects(&run).await.unwrap();
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert_eq!(objects[1], (ObjectId(1300), record(ObjectState::Loaded, 3)));
    let attempts = store.attempts(&run, ObjectId(1300)).await.unwrap();
    assert_eq!(attempts.len(), 3, "two archived, one live: {attempts:?}");
    assert_eq!(attempts[2], third);
    let rerun = everything(&store, &run).await;

    header.status = RunStatus::Finished;
    store
        .apply(&[Transition::Run(Box::new(header.clone()))])
        .await
        .unwrap();
    gone_within_10_s(&redis.url, &live_objects, "the rerun was never archived").await;
    assert_eq!(
        everything(&store, &run).await,
        rerun,
        "archived again, merged"
    );
}

#[tokio::test]
async fn a_run_started_again_between_staging_and_swap_keeps_its_records() {
    // The swap checks that the run's record is still the finished one staged: a run started
    // again in between (a rerun) writes to its hashes, and a swap then would delete that.
    let redis = services::redis();
    let prefix = services::unique_prefix("archive-race");
    let store = RedisStore::connect(&redis.url, &prefix, None)
        .await
        .unwrap();
    let mut header = meta("run-r", 1);
    let run = header.run_id.clone();
    header.status = RunStatus::Finished;
    left_in_its_hashes(&store, &redis.url, &prefix, &header).await;
    let staged = store
        .stage_archive(&run)
        .await
        .unwrap()
        .expect("finished, with records");
    header.status = RunStatus::Running;
    store
        .apply(&[
            Transition::Run(Box::new(header.clone())),
            Transition::Object {
                run: run.clone(),
                id: ObjectId(1001),
                record: record(ObjectState::Loaded, 2),
            },
            Transition::Attempts {
                run: run.clone(),
                attempts: std::sync::Arc::new(vec![(
                    ObjectId(1001),
                    super::attempts::attempt(2, AttemptOutcome::Loaded, ""),
                )]),
            },
        ])
        .await
        .unwrap();
    assert!(
        !store.swap_archive(staged).await.unwrap(),
        "started again: no swap"
    );
    let numbers: Vec<u32> = store
        .attempts(&run, ObjectId(1001))
        .await
        .unwrap()
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(
        store.objects(&run).await.unwrap()[0],
        (ObjectId(1001), record(ObjectState::Loaded, 2))
    );
    // Finished again, it is archived with both attempts.
    header.status = RunStatus::Finished;
    header.updated_ms = 2;
    store
        .apply(&[Transition::Run(Box::new(header.clone()))])
        .await
        .unwrap();
    store.archive_run(&run).await.unwrap();
    assert!(!exists(&redis.url, &format!("{prefix}:run:run-r:objects")).await);
    assert_eq!(store.attempts(&run, ObjectId(1001)).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_clean_stop_archives_first_and_the_next_writer_archives_what_was_left() {
    let redis = services::redis();
    let prefix = services::unique_prefix("archive-writers");
    // A finished run left in its hashes (as by a writer killed before archiving): its record
    // written by hand, so that nothing archives it.
    let first = RedisStore::connect(&redis.url, &prefix, None)
        .await
        .unwrap();
    let mut left = meta("run-left", 1);
    left.status = RunStatus::Finished;
    left_in_its_hashes(&first, &redis.url, &prefix, &left).await;
    let before = everything(&first, &left.run_id).await;

    // A writer finishes a run and stops at once: its archiving is done when the lease goes.
    let writer = RedisStore::connect(&redis.url, &prefix, None)
        .await
        .unwrap();
    assert!(matches!(
        writer.acquire_writer("a", 10_000).await.unwrap(),
        WriterLease::Acquired { .. }
    ));
    let mut header = meta("run-w", 2);
    header.status = RunStatus::Finished;
    writer.apply(&run_batch(&header, 2)).await.unwrap();
    writer.release_writer().await.unwrap();
    assert!(!exists(&redis.url, &format!("{prefix}:run:run-w:objects")).await);
    assert!(exists(&redis.url, &format!("{prefix}:run:run-w:objects:archive")).await);
    // Taking the lease swept the run left behind too.
    assert!(!exists(&redis.url, &format!("{prefix}:run:run-left:objects")).await);
    assert_eq!(everything(&first, &left.run_id).await, before);
}
