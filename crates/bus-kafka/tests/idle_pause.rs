//! The idle pause on a real broker: a consumer that waits for events a while stops fetching,
//! and still takes every event published later, whatever its kind (a group member, the reader of
//! every partition, a broadcast reader), however often its caller drops `next_batch` (as a
//! `select!` does), and when another member joins its group while it is paused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::services;

use orchestrator_bus::{Bus, Consumer, Delivery, contract};
use orchestrator_bus_kafka::KafkaBus;
use orchestrator_protocol::{ControlEvent, ReadyEvent, ResultEvent, RunId, Zone};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(60);

/// A bus with topics of its own whose consumers pause after 300 ms without an event.
async fn bus(kafka: &services::TestKafka, name: &str) -> KafkaBus {
    common::bus(kafka, name, |s| {
        s.partitions = 3;
        s.idle_pause = Some(Duration::from_millis(300));
    })
    .await
}

/// What `c.next_batch` returns within 100 ms; the call is dropped when the slice ends, as a
/// `select!` does.
async fn slice<T>(c: &mut Box<dyn Consumer<T>>) -> Option<Vec<Delivery<T>>> {
    let batch = tokio::time::timeout(Duration::from_millis(100), c.next_batch(100)).await;
    batch.ok().map(|b| b.unwrap())
}

/// Polls `consumers` in 100 ms slices (each `next_batch` dropped when its slice ends) until the
/// bus has counted `more` pauses; no event may arrive meanwhile.
async fn until_paused<T: std::fmt::Debug>(
    bus: &KafkaBus,
    consumers: &mut [&mut Box<dyn Consumer<T>>],
    more: u64,
) {
    let pauses = bus.idle_pause_count() + more;
    let deadline = Instant::now() + PATIENCE;
    while bus.idle_pause_count() < pauses {
        assert!(
            Instant::now() < deadline,
            "the consumers never paused: {} of {pauses} pauses",
            bus.idle_pause_count()
        );
        for c in consumers.iter_mut() {
            if let Some(batch) = slice(c).await {
                panic!("nothing was published, yet {batch:?} arrived");
            }
        }
    }
}

/// Takes events from `consumers` in 100 ms slices until `want` distinct keys were seen.
async fn take<T>(
    consumers: &mut [&mut Box<dyn Consumer<T>>],
    want: usize,
    key: impl Fn(&T) -> u64,
) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} events arrived",
            seen.len()
        );
        for c in consumers.iter_mut() {
            if let Some(batch) = slice(c).await {
                seen.extend(batch.iter().map(|d| key(&d.event)));
                c.ack(batch.iter().map(|d| d.token).collect())
                    .await
                    .unwrap();
            }
        }
    }
    seen
}

fn readies(ids: std::ops::Range<u64>) -> Vec<ReadyEvent> {
    ids.map(|id| contract::ready(id, Zone::Raw)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_of_every_partition_and_a_paused_broadcast_reader_take_every_later_event() {
    let kafka = services::kafka();
    let bus = bus(&kafka, "idle-results").await;
    let mut results = bus.result_consumer("orchestrator").await.unwrap();
    let mut control = bus.control_consumer("w1").await.unwrap();
    for round in 0..2u64 {
        until_paused(&bus, &mut [&mut results], 1).await;
        let sent: Vec<ResultEvent> = readies(1000..1030)
            .iter()
            .map(|r| ResultEvent::loaded(r, "ok".into(), round * 100 + r.id.0 % 100, "w"))
            .collect();
        bus.publish_results(sent).await.unwrap();
        let seen = take(&mut [&mut results], 30, |e: &ResultEvent| e.duration_ms).await;
        assert_eq!(seen, (round * 100..round * 100 + 30).collect());

        until_paused(&bus, &mut [&mut control], 1).await;
        let runs: Vec<ControlEvent> = (0..5)
            .map(|k| ControlEvent::cancel_run(RunId::new(format!("run-{round}-{k}"))))
            .collect();
        bus.publish_control(runs).await.unwrap();
        let seen = take(&mut [&mut control], 5, |e: &ControlEvent| {
            e.run_id
                .as_str()
                .rsplit('-')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or(99)
        })
        .await;
        assert_eq!(seen, (0..5).collect());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_group_member_takes_every_later_event() {
    let kafka = services::kafka();
    let bus = bus(&kafka, "idle-ready").await;
    let mut ready = bus.ready_consumer(Zone::Raw, "workers").await.unwrap();
    for round in 0..3u64 {
        until_paused(&bus, &mut [&mut ready], 1).await;
        let ids = 1000 + round * 100..1000 + round * 100 + 30;
        bus.publish_ready(readies(ids.clone())).await.unwrap();
        let seen = take(&mut [&mut ready], 30, |e: &ReadyEvent| e.id.0).await;
        assert_eq!(seen, ids.collect(), "round {round}");
    }
}

/// A member that a worker drives: one `next_batch` at a time, never dropped, each event sent
/// on `taken` with the member's name, until `stop`.
fn member(
    name: char,
    bus: Arc<KafkaBus>,
    taken: mpsc::UnboundedSender<(char, u64)>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = bus.ready_consumer(Zone::Raw, "workers").await.unwrap();
        loop {
            let batch = tokio::select! {
                batch = c.next_batch(100) => batch.unwrap(),
                () = stop.cancelled() => break,
            };
            for d in &batch {
                let _ = taken.send((name, d.event.id.0));
            }
            c.ack(batch.iter().map(|d| d.token).collect())
                .await
                .unwrap();
        }
        // Closing two members of one group at once can wait on Tansu for a rebalance that
        // never settles (with or without the pause): not what this test is about.
        std::mem::forget(c);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_while_another_is_paused_gets_partitions_and_events() {
    let kafka = services::kafka();
    let bus = Arc::new(bus(&kafka, "idle-join").await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let a = member('a', bus.clone(), tx.clone(), stop.clone());
    let deadline = Instant::now() + PATIENCE;
    while bus.idle_pause_count() < 1 {
        assert!(Instant::now() < deadline, "the first member never paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `b` joins: the group rebalances while `a` is paused, waiting in `next_batch`.
    let b = member('b', bus.clone(), tx, stop.clone());
    let mut by = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut next_id = 1000;
    // Until both members have taken events (`b` holds partitions once the rebalance is done).
    while by.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "only {by:?} took events: the join never completed"
        );
        bus.publish_ready(readies(next_id..next_id + 30))
            .await
            .unwrap();
        next_id += 30;
        let until = Instant::now() + Duration::from_secs(1);
        while let Ok(Some((name, id))) = tokio::time::timeout_at(until, rx.recv()).await {
            seen.insert(id);
            *by.entry(name).or_insert(0) += 1;
        }
    }
    while seen.len() < (next_id - 1000) as usize {
        let got = tokio::time::timeout_at(deadline, rx.recv()).await;
        let (_, id) = got.expect("every event in time").unwrap();
        seen.insert(id);
    }
    assert_eq!(seen, (1000..next_id).collect());
    stop.cancel();
    let _ = (a.await, b.await);
}
