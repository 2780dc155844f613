//! The contract every bus backend passes (enabled by the `contract` feature). Each check is a
//! function over `&dyn Bus`; the in-process bus runs them in `tests/contract.rs`, the Kafka bus in
//! its own tests. Delivery is at-least-once, so a check never counts on exactly-once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{AckToken, Bus, Consumer, Delivery};
use orchestrator_protocol::{
    ControlEvent, ObjectId, ProgressEvent, ProgressKind, RawJson, ReadyEvent, ResultEvent, RunId,
    SCHEMA_VERSION, Zone,
};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a check waits for events before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

pub fn ready(id: u64, zone: Zone) -> ReadyEvent {
    ReadyEvent {
        event: "ObjectReady".into(),
        id: ObjectId(id),
        zone,
        name: format!("o{id}"),
        run_id: RunId::new("run-1"),
        ts: 0,
        preflight_fail: false,
        attempt: 1,
        graph_version: "g".into(),
        object: RawJson::from_string(format!("{{\"IdObjet\":{id}}}")),
        schema_version: SCHEMA_VERSION,
    }
}

fn tokens<T>(batch: &[Delivery<T>]) -> Vec<AckToken> {
    batch.iter().map(|d| d.token).collect()
}

/// Reads from `consumer` until `want` distinct ids were seen (duplicates allowed), acknowledging
/// them if `ack`.
async fn collect<T>(
    consumer: &mut dyn Consumer<T>,
    want: usize,
    ack: bool,
    id: impl Fn(&T) -> u64,
) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < want {
        let batch = tokio::time::timeout_at(deadline, consumer.next_batch(100))
            .await
            .unwrap_or_else(|_| panic!("only {} of {want} events arrived in time", seen.len()))
            .unwrap();
        seen.extend(batch.iter().map(|d| id(&d.event)));
        if ack {
            consumer.ack(tokens(&batch)).await.unwrap();
        }
    }
    seen
}

/// Reads from every member of one group in turn (batches of at most `max`, acknowledged) until
/// `want` distinct ids were seen among them.
async fn members_collect<T, const N: usize>(
    mut members: [&mut Box<dyn Consumer<T>>; N],
    want: usize,
    max: usize,
    id: impl Fn(&T) -> u64,
) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {want} events arrived",
            seen.len()
        );
        for c in members.iter_mut() {
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(200), c.next_batch(max)).await
            {
                let batch = batch.unwrap();
                assert!(batch.len() <= max);
                seen.extend(batch.iter().map(|d| id(&d.event)));
                c.ack(tokens(&batch)).await.unwrap();
            }
        }
    }
    seen
}

/// The events of the next non-empty batch.
async fn next<T>(consumer: &mut dyn Consumer<T>) -> Vec<T> {
    loop {
        let batch = tokio::time::timeout(PATIENCE, consumer.next_batch(10))
            .await
            .expect("an event in time")
            .unwrap();
        if !batch.is_empty() {
            consumer.ack(tokens(&batch)).await.unwrap();
            return batch.into_iter().map(|d| d.event).collect();
        }
    }
}

/// Ready events reach the consumers of their own zone only.
pub async fn ready_events_reach_only_their_zone(bus: &dyn Bus) {
    let mut raw = bus.ready_consumer(Zone::Raw, "worker-raw").await.unwrap();
    let mut app = bus
        .ready_consumer(Zone::Application, "worker-application")
        .await
        .unwrap();
    bus.publish_ready(vec![
        ready(1001, Zone::Raw),
        ready(3001, Zone::Application),
        ready(1002, Zone::Raw),
    ])
    .await
    .unwrap();
    let got = collect(&mut *raw, 2, true, |e: &ReadyEvent| e.id.0).await;
    assert_eq!(got, BTreeSet::from([1001, 1002]));
    let seen = next(&mut *app).await;
    assert!(
        seen.iter()
            .all(|e| e.zone == Zone::Application && e.id == ObjectId(3001)),
        "{seen:?}"
    );
    assert!(seen[0].object.get().contains("3001"));
    // Nothing of another zone comes later either.
    bus.publish_ready(vec![ready(3002, Zone::Application)])
        .await
        .unwrap();
    let more = collect(&mut *app, 1, true, |e: &ReadyEvent| e.id.0).await;
    assert_eq!(more, BTreeSet::from([3002]));
}

/// Consumers of one group share a topic's events: together they see every one.
pub async fn consumers_of_one_group_share_the_work(bus: &dyn Bus) {
    let mut a = bus
        .ready_consumer(Zone::Standardized, "worker-standardized")
        .await
        .unwrap();
    let mut b = bus
        .ready_consumer(Zone::Standardized, "worker-standardized")
        .await
        .unwrap();
    bus.publish_ready(
        (0..100)
            .map(|i| ready(2000 + i, Zone::Standardized))
            .collect(),
    )
    .await
    .unwrap();
    let seen = members_collect([&mut a, &mut b], 100, 30, |e: &ReadyEvent| e.id.0).await;
    assert_eq!(seen, (2000..2100).collect::<BTreeSet<_>>());
}

/// Every consumer group sees every event of a topic (the orchestrator and, say, an audit
/// service both read the results); the members of one group share them.
pub async fn every_group_sees_every_event(bus: &dyn Bus) {
    let mut audit = bus.result_consumer("audit").await.unwrap();
    let mut first = bus.result_consumer("orchestrator").await.unwrap();
    let mut second = bus.result_consumer("orchestrator").await.unwrap();
    let results: Vec<ResultEvent> = (0..60)
        .map(|i| ResultEvent::loaded(&ready(1000 + i, Zone::Raw), String::new(), 1, "w"))
        .collect();
    bus.publish_results(results).await.unwrap();
    let all: BTreeSet<u64> = (1000..1060).collect();
    assert_eq!(
        collect(&mut *audit, 60, true, |r: &ResultEvent| r.id.0).await,
        all
    );
    // The orchestrator's two members: between them, every event.
    let members = [&mut first, &mut second];
    let seen = members_collect(members, 60, 20, |r: &ResultEvent| r.id.0).await;
    assert_eq!(seen, all);
}

/// Results and progress travel on their own topics with every field.
pub async fn results_and_progress_round_trip(bus: &dyn Bus) {
    let mut results = bus.result_consumer("orchestrator").await.unwrap();
    let mut progress = bus.progress_consumer("orchestrator").await.unwrap();
    let r = ready(1001, Zone::Raw);
    bus.publish_progress(vec![ProgressEvent::new(
        ProgressKind::AttemptStarted,
        &r,
        "w1",
    )])
    .await
    .unwrap();
    bus.publish_results(vec![ResultEvent::failed(
        &r,
        "boom".into(),
        false,
        12,
        "w1",
    )])
    .await
    .unwrap();
    let p = next(&mut *progress).await;
    assert_eq!(p[0].event, ProgressKind::AttemptStarted);
    assert_eq!(
        (p[0].id, p[0].attempt, p[0].worker.as_str()),
        (ObjectId(1001), 1, "w1")
    );
    let got = next(&mut *results).await;
    assert_eq!(
        (
            got[0].id,
            got[0].attempt,
            got[0].retryable,
            got[0].duration_ms
        ),
        (ObjectId(1001), Some(1), false, 12)
    );
    assert_eq!(got[0].info, "boom");
    // A handler's output travels with its result, whole.
    let output = "line 1\nline é 2\n".repeat(100);
    bus.publish_results(vec![
        ResultEvent::loaded(&r, "ok".into(), 3, "w1").with_output(output.clone()),
    ])
    .await
    .unwrap();
    let got = next(&mut *results).await;
    assert_eq!(got[0].output, output);
}

/// Every control consumer sees every control message published once it is reading (a
/// consumer starts from the end: a message published while it was being made may come
/// before it reads, so the check first waits until each one sees a probe).
pub async fn every_control_consumer_sees_every_control_message(bus: &dyn Bus) {
    let mut a = bus.control_consumer("w1").await.unwrap();
    let mut b = bus.control_consumer("w2").await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for consumer in [&mut a, &mut b] {
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no probe arrived");
            bus.publish_control(vec![ControlEvent::cancel_run(RunId::new("probe"))])
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(1), consumer.next_batch(100)).await;
            if let Ok(batch) = got {
                consumer.ack(tokens(&batch.unwrap())).await.unwrap();
                break;
            }
        }
    }
    let runs = ["run-x", "run-y", "run-z"];
    bus.publish_control(
        runs.iter()
            .map(|r| ControlEvent::cancel_run(RunId::new(*r)))
            .collect(),
    )
    .await
    .unwrap();
    for consumer in [&mut a, &mut b] {
        let mut seen = BTreeSet::new();
        while seen.len() < runs.len() {
            let batch = tokio::time::timeout_at(deadline, consumer.next_batch(100))
                .await
                .expect("the control messages arrive")
                .unwrap();
            seen.extend(
                batch
                    .iter()
                    .map(|d| d.event.run_id.to_string())
                    .filter(|r| r != "probe"),
            );
        }
        assert_eq!(seen, runs.iter().map(|r| r.to_string()).collect());
    }
}

/// What a consumer took but did not acknowledge comes again to the next consumer of its group;
/// what it acknowledged does not.
pub async fn uncommitted_events_are_delivered_again(bus: &dyn Bus) {
    let group = "redelivery";
    let mut first = bus.result_consumer(group).await.unwrap();
    let r = ready(1001, Zone::Raw);
    bus.publish_results(vec![ResultEvent::loaded(&r, "a".into(), 1, "w")])
        .await
        .unwrap();
    let got = collect(&mut *first, 1, true, |e: &ResultEvent| e.duration_ms).await;
    assert_eq!(got, BTreeSet::from([1]));
    bus.publish_results(vec![ResultEvent::loaded(&r, "b".into(), 2, "w")])
        .await
        .unwrap();
    let got = collect(&mut *first, 1, false, |e: &ResultEvent| e.duration_ms).await;
    assert_eq!(got, BTreeSet::from([2]));
    drop(first); // took 2, never acknowledged it
    let mut second = bus.result_consumer(group).await.unwrap();
    let got = collect(&mut *second, 1, true, |e: &ResultEvent| e.duration_ms).await;
    assert_eq!(
        got,
        BTreeSet::from([2]),
        "the unacknowledged event comes again, the acknowledged one does not"
    );
}
