//! The idle pause on a real broker: a consumer that waits for events a while stops fetching,
//! and still takes every event published later, whatever its kind (the reader of every
//! partition, a broadcast reader), however often its caller drops `next_batch` (as a `select!`
//! does); the members of a group never pause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/common/services.rs"]
mod services;

use orchestrator_bus::{Bus, Consumer, contract};
use orchestrator_bus_kafka::{KafkaBus, KafkaSettings};
use orchestrator_protocol::{ControlEvent, ReadyEvent, ResultEvent, RunId, Zone};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(60);

/// A bus with topics of its own whose consumers pause after 300 ms without an event.
async fn bus(kafka: &services::TestKafka, name: &str) -> KafkaBus {
    let mut s = KafkaSettings::new(&kafka.bootstrap);
    let p = services::unique_prefix(name);
    s.topic_ready = format!("{p}.ready");
    s.topic_loaded = format!("{p}.loaded");
    s.topic_progress = format!("{p}.progress");
    s.topic_failed = format!("{p}.failed");
    s.topic_dlq = format!("{p}.dlq");
    s.topic_control = format!("{p}.control");
    s.partitions = 3;
    s.idle_pause = Some(Duration::from_millis(300));
    let bus = KafkaBus::new(s).unwrap();
    bus.ensure_topics().await.unwrap();
    bus
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
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(100), c.next_batch(100)).await
            {
                panic!("nothing was published, yet {:?} arrived", batch.unwrap());
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
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(100), c.next_batch(100)).await
            {
                let batch = batch.unwrap();
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
async fn group_members_never_pause_and_share_every_event() {
    let kafka = services::kafka();
    let bus = bus(&kafka, "idle-group").await;
    let mut a = bus.ready_consumer(Zone::Raw, "workers").await.unwrap();
    let mut b = bus.ready_consumer(Zone::Raw, "workers").await.unwrap();
    // Three times the idle pause with nothing published: neither member pauses.
    let idle_until = Instant::now() + Duration::from_millis(900);
    while Instant::now() < idle_until {
        for c in [&mut a, &mut b] {
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(100), c.next_batch(100)).await
            {
                panic!("nothing was published, yet {:?} arrived", batch.unwrap());
            }
        }
    }
    assert_eq!(bus.idle_pause_count(), 0, "a group member paused");
    bus.publish_ready(readies(1000..1060)).await.unwrap();
    let seen = take(&mut [&mut a, &mut b], 60, |e: &ReadyEvent| e.id.0).await;
    assert_eq!(seen, (1000..1060).collect());
}
