//! The contract every bus backend passes. Each test body is generic over the bus; the in-process
//! bus runs it here, and other backends run the same bodies.

use orchestrator_bus::{Bus, MemoryBus};
use orchestrator_protocol::{
    ObjectId, ProgressEvent, ProgressKind, RawJson, ReadyEvent, ResultEvent, RunId, SCHEMA_VERSION,
    Zone,
};

fn ready(id: u64, zone: Zone) -> ReadyEvent {
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

async fn ready_events_reach_only_their_zone(bus: &dyn Bus) {
    let mut raw = bus
        .ready_consumer(Zone::Raw, "worker-raw")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut app = bus
        .ready_consumer(Zone::Application, "worker-app")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bus.publish_ready(vec![
        ready(1001, Zone::Raw),
        ready(3001, Zone::Application),
        ready(1002, Zone::Raw),
    ])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(
            raw.next_batch(10)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.id.0),
        );
    }
    assert_eq!(got, vec![1001, 1002]);
    let a = app.next_batch(10).await.unwrap_or_default();
    assert_eq!(a.iter().map(|e| e.id.0).collect::<Vec<_>>(), vec![3001]);
    assert!(a[0].object.get().contains("3001"));
    raw.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

async fn consumers_of_one_group_share_the_work(bus: &dyn Bus) {
    let mut a = bus
        .ready_consumer(Zone::Standardized, "worker-std")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = bus
        .ready_consumer(Zone::Standardized, "worker-std")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bus.publish_ready(
        (0..100)
            .map(|i| ready(2000 + i, Zone::Standardized))
            .collect(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let first = a.next_batch(30).await.unwrap_or_default();
    assert!(!first.is_empty() && first.len() <= 30);
    let mut seen: Vec<u64> = first.iter().map(|e| e.id.0).collect();
    while seen.len() < 100 {
        seen.extend(
            b.next_batch(100)
                .await
                .unwrap_or_default()
                .iter()
                .map(|e| e.id.0),
        );
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2000..2100).collect::<Vec<_>>(),
        "each event exactly once across the group"
    );
}

async fn results_and_progress_round_trip(bus: &dyn Bus) {
    let mut results = bus
        .result_consumer("orchestrator")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut progress = bus
        .progress_consumer("orchestrator")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = ready(1001, Zone::Raw);
    bus.publish_progress(vec![ProgressEvent::new(
        ProgressKind::AttemptStarted,
        &r,
        "w1",
    )])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    bus.publish_results(vec![ResultEvent::failed(
        &r,
        "boom".into(),
        false,
        12,
        "w1",
    )])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let p = progress.next_batch(10).await.unwrap_or_default();
    assert_eq!(p[0].event, ProgressKind::AttemptStarted);
    let got = results.next_batch(10).await.unwrap_or_default();
    assert_eq!(
        (
            got[0].id,
            got[0].attempt,
            got[0].retryable,
            got[0].duration_ms
        ),
        (ObjectId(1001), Some(1), false, 12)
    );
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn ready_events_reach_only_their_zone() {
        super::ready_events_reach_only_their_zone(&MemoryBus::new()).await;
    }
    #[tokio::test]
    async fn consumers_of_one_group_share_the_work() {
        super::consumers_of_one_group_share_the_work(&MemoryBus::new()).await;
    }
    #[tokio::test]
    async fn results_and_progress_round_trip() {
        super::results_and_progress_round_trip(&MemoryBus::new()).await;
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
}
