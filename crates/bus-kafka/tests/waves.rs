//! The producer's waves on a real broker: sends made while others are in flight are held and
//! leave together, and nothing is lost, stuck or reordered for its key on the way, however many
//! publishers send at once (a worker's slots, the engine's batches).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::services;

use orchestrator_bus::{Bus, contract};
use orchestrator_protocol::{ReadyEvent, Zone};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(60);

/// Forty publishers at once, each sending its object's attempts 1 to 25 one publish after the
/// other (most of them held behind a wave in flight), then one batch of 2,000 more: every publish
/// returns, every event arrives, and each object's attempts arrive in the order they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_held_behind_a_wave_all_arrive_in_their_order() {
    let kafka = services::kafka();
    let bus = Arc::new(common::bus(&kafka, "waves", |s| s.partitions = 3).await);
    let mut ready = bus.ready_consumer(Zone::Raw, "workers").await.unwrap();
    let publishers: Vec<_> = (0..40u64)
        .map(|id| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for attempt in 1..=25 {
                    let mut e = contract::ready(id, Zone::Raw);
                    e.attempt = attempt;
                    bus.publish_ready(vec![e]).await.unwrap();
                }
            })
        })
        .collect();
    let batch: Vec<ReadyEvent> = (1000..3000)
        .map(|id| contract::ready(id, Zone::Raw))
        .collect();
    tokio::time::timeout(PATIENCE, bus.publish_ready(batch))
        .await
        .expect("the batch's publish never returned")
        .unwrap();
    for p in publishers {
        tokio::time::timeout(PATIENCE, p)
            .await
            .expect("a publisher's sends never returned")
            .unwrap();
    }

    let mut attempts: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    while attempts.values().map(Vec::len).sum::<usize>() < 40 * 25 + 2000 {
        assert!(Instant::now() < deadline, "not every event arrived");
        let Ok(batch) = tokio::time::timeout(Duration::from_secs(1), ready.next_batch(500)).await
        else {
            continue;
        };
        let batch = batch.unwrap();
        for d in &batch {
            attempts
                .entry(d.event.id.0)
                .or_default()
                .push(d.event.attempt);
        }
        ready
            .ack(batch.iter().map(|d| d.token).collect())
            .await
            .unwrap();
    }
    for id in 0..40 {
        assert_eq!(attempts[&id], (1..=25).collect::<Vec<u32>>(), "object {id}");
    }
    assert!((1000..3000).all(|id| attempts[&id] == [1]));
}
