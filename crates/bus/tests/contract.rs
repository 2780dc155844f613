//! The in-process bus against the bus contract (`orchestrator_bus::contract`).

use orchestrator_bus::contract;
use orchestrator_bus::{Bus, MemoryBus};

#[tokio::test]
async fn ready_events_reach_only_their_zone() {
    contract::ready_events_reach_only_their_zone(&MemoryBus::new()).await;
}

#[tokio::test]
async fn consumers_of_one_group_share_the_work() {
    contract::consumers_of_one_group_share_the_work(&MemoryBus::new()).await;
}

#[tokio::test]
async fn every_group_sees_every_event() {
    contract::every_group_sees_every_event(&MemoryBus::new()).await;
}

#[tokio::test]
async fn results_and_progress_round_trip() {
    contract::results_and_progress_round_trip(&MemoryBus::new()).await;
}

#[tokio::test]
async fn uncommitted_events_are_delivered_again() {
    contract::uncommitted_events_are_delivered_again(&MemoryBus::new()).await;
}

#[tokio::test]
async fn a_closed_bus_ends_consumers() {
    let bus = MemoryBus::new();
    let mut c = bus
        .result_consumer("g")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bus.close();
    assert!(c.next_batch(5).await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn every_control_consumer_sees_every_control_message() {
    contract::every_control_consumer_sees_every_control_message(&MemoryBus::new()).await;
}
